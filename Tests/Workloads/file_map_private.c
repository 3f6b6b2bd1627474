/* file_map_private: a MAP_PRIVATE mapping of a 64-page file in CTLDIR.
 * Pages with i%3==0 are written (copy-on-write) and must keep the written
 * content; the rest must still match the file, and the file itself must be
 * unchanged. */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096
#define NPG 64
static uint8_t *map;
static char path[PATH_MAX];
static int at;

static uint64_t file_seed(int i) { return 0x1000000ull * (uint64_t)i; }
static uint64_t cow_seed(int i) { return 0xc0c0000000ull + (uint64_t)i; }

static void check_page(int i)
{
	uint64_t s = i % 3 == 0 ? cow_seed(i) : file_seed(i);
	WL_CHECK(wl_verify(map + i * PAGE, PAGE, s) < 0, "page %d lost its %s content", i,
		 i % 3 == 0 ? "copy-on-write" : "file");
}

static void step(void)
{
	for (int k = 0; k < 8; k++, at = (at + 1) % NPG)
		check_page(at);
}

static void final(void)
{
	static uint8_t page[PAGE];
	for (int i = 0; i < NPG; i++)
		check_page(i);
	int fd = open(path, O_RDONLY);
	WL_CHECK(fd >= 0, "reopen %s: %s", path, strerror(errno));
	for (int i = 0; fd >= 0 && i < NPG; i++)
		WL_CHECK(pread(fd, page, PAGE, (off_t)i * PAGE) == PAGE &&
			 wl_verify(page, PAGE, file_seed(i)) < 0, "file page %d changed", i);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	static uint8_t page[PAGE];
	wl_init(argc, argv);
	int fd = open(wl_path(path, "map_private.dat"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		wl_setup_fail("create file");
	for (int i = 0; i < NPG; i++) {
		wl_fill(page, PAGE, file_seed(i));
		if (wl_write_all(fd, page, PAGE) != 0)
			wl_setup_fail("write file");
	}
	map = mmap(NULL, NPG * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		wl_setup_fail("mmap");
	close(fd);
	for (int i = 0; i < NPG; i += 3)
		wl_fill(map + i * PAGE, PAGE, cow_seed(i));
	wl_ready();
	wl_loop(step, final, 2000);
}
