/* shm_single [alias|sealed]: one process with shared memory nobody else
 * maps: an 8-page MAP_SHARED|MAP_ANONYMOUS area and an 8-page memfd mapped
 * MAP_SHARED (its fd closed). Every step rewrites one page of each with a
 * new generation of a pattern and checks every page; /proc/self/maps must
 * show both areas shared ('s'). A restore carries them (as shared anonymous
 * memory). With `alias` the memfd is mapped a second time and each step
 * also checks that a write through one view shows through the other; with
 * `sealed` the memfd carries F_SEAL_SHRINK|F_SEAL_GROW, checked through
 * /proc/self/map_files at stop. ferry carries the alias (one memfd,
 * mapped twice) and refuses the sealed memfd (it would restore it unsealed). */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096
#define NPG 8
static char *anon, *mfd, *view;
static int sealed;
static uint64_t gen[2][NPG];
static uint64_t n;

static void check_shared_in_maps(void *addr, const char *what)
{
	static char buf[1 << 16];
	char want[32];
	ssize_t len = wl_read_file("/proc/self/maps", buf, sizeof(buf) - 1);
	if (len <= 0) {
		wl_fail("read /proc/self/maps");
		return;
	}
	buf[len] = 0;
	snprintf(want, sizeof(want), "\n%lx-", (unsigned long)addr);
	char *line = strstr(buf, want);
	if (!line) {
		wl_fail("%s at %p is not in /proc/self/maps", what, addr);
		return;
	}
	char *perms = strchr(line, ' ');
	WL_CHECK(perms && perms[4] == 's', "%s at %p is not a shared mapping", what, addr);
}

static void check_all(void)
{
	for (int i = 0; i < NPG; i++) {
		long bad = wl_verify(anon + i * PAGE, PAGE, gen[0][i] * 1000 + i);
		WL_CHECK(bad < 0, "anonymous shared page %d word %ld wrong", i, bad);
		bad = wl_verify(mfd + i * PAGE, PAGE, gen[1][i] * 1000 + 100 + i);
		WL_CHECK(bad < 0, "memfd page %d word %ld wrong", i, bad);
		if (view)
			WL_CHECK(memcmp(view + i * PAGE, mfd + i * PAGE, PAGE) == 0,
				 "memfd page %d differs between its two views", i);
	}
}

static void step(void)
{
	int i = n % NPG;
	n++;
	gen[0][i] = n;
	wl_fill(anon + i * PAGE, PAGE, gen[0][i] * 1000 + i);
	gen[1][i] = n;
	wl_fill(mfd + i * PAGE, PAGE, gen[1][i] * 1000 + 100 + i);
	check_all();
}

static void check_seals(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)mfd,
		 (unsigned long)(mfd + NPG * PAGE));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int seals = fd < 0 ? -1 : fcntl(fd, F_GET_SEALS);
	WL_CHECK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW),
		 "memfd seals 0x%x, want SHRINK|GROW", seals);
	if (fd >= 0)
		close(fd);
}

static void final(void)
{
	check_all();
	if (sealed)
		check_seals();
	check_shared_in_maps(anon, "the anonymous shared area");
	check_shared_in_maps(mfd, "the memfd area");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	anon = mmap(NULL, NPG * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	sealed = argc > 2 && strcmp(argv[2], "sealed") == 0;
	int fd = memfd_create("wl_shm_single", MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));
	if (anon == MAP_FAILED || fd < 0 || ftruncate(fd, NPG * PAGE) != 0)
		wl_setup_fail("shared areas");
	if (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
		wl_setup_fail("F_ADD_SEALS");
	mfd = mmap(NULL, NPG * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (argc > 2 && strcmp(argv[2], "alias") == 0)
		view = mmap(NULL, NPG * PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (mfd == MAP_FAILED || view == MAP_FAILED)
		wl_setup_fail("mmap memfd");
	close(fd);
	for (int i = 0; i < NPG; i++) {
		wl_fill(anon + i * PAGE, PAGE, i);
		wl_fill(mfd + i * PAGE, PAGE, 100 + i);
	}
	for (int i = 0; i < NPG; i++)
		step();
	final();
	wl_ready();
	wl_loop(step, final, 1000);
}
