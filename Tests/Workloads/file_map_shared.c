/* file_map_shared: a MAP_SHARED mapping of a 32-page file in CTLDIR. Every
 * step writes sequence number n into every word of page n%32 through the
 * map; the map must keep what was written and, at stop, pread of the file
 * (reopened by path) must show exactly the same pages. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096
#define NPG 32
#define WORDS (PAGE / 8)
static uint64_t *map;
static uint64_t seq;             /* pages 0..seq-1 have been written */
static char path[PATH_MAX];

/* The last sequence number written to page i after seq writes (0: none). */
static uint64_t want(int i)
{
	if (seq <= (uint64_t)i)
		return 0;
	return (seq - 1 - i) / NPG * NPG + i + 1;
}

static void check_map(int i)
{
	for (int w = 0; w < WORDS; w++)
		if (map[i * WORDS + w] != want(i)) {
			wl_fail("map page %d word %d: %lu, want %lu", i, w,
				(unsigned long)map[i * WORDS + w], (unsigned long)want(i));
			return;
		}
}

static void step(void)
{
	check_map(seq % NPG);
	int i = seq % NPG;
	seq++;
	for (int w = 0; w < WORDS; w++)
		map[i * WORDS + w] = seq;
	check_map(i);
}

static void final(void)
{
	static uint64_t page[WORDS];
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		wl_fail("reopen %s: %s", path, strerror(errno));
		return;
	}
	for (int i = 0; i < NPG; i++) {
		check_map(i);
		WL_CHECK(pread(fd, page, PAGE, (off_t)i * PAGE) == PAGE, "short pread");
		for (int w = 0; w < WORDS; w++)
			if (page[w] != want(i)) {
				wl_fail("file page %d word %d: %lu, want %lu (write via map lost)",
					i, w, (unsigned long)page[w], (unsigned long)want(i));
				break;
			}
	}
	struct stat st;
	WL_CHECK(fstat(fd, &st) == 0 && st.st_size == NPG * PAGE, "file size changed");
	close(fd);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int fd = open(wl_path(path, "map_shared.dat"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, NPG * PAGE) != 0)
		wl_setup_fail("create file");
	map = mmap(NULL, NPG * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		wl_setup_fail("mmap");
	close(fd);
	for (int i = 0; i < 2 * NPG; i++)
		step();
	wl_ready();
	wl_loop(step, final, 1000);
}
