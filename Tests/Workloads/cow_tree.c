/* cow_tree [pages] [written] [frames]: a parent fills `pages` (256) anonymous pages
 * and 16 pages of a MAP_PRIVATE mapping of CTLDIR/cow_tree.dat (every one
 * written, so each is a copied page), then forks a child. With `written`
 * (1, the default) the parent rewrites pages i%4==0 and the child pages
 * i%4==1 after the fork; the other pages stay untouched in both, so they are
 * still the same physical page in both (copy-on-write). With written=0 no
 * page is rewritten: all of them stay shared. Anonymous pages i%16==15 are
 * only read before the fork (the kernel's zero page in both): they must read
 * as zero and, where both have them, be on one frame.
 *
 * Both keep reading (never writing) their pages. At stop the parent
 * creates CTLDIR/cow_tree.ask; the child answers with its /proc/self/pagemap
 * entries of both mappings in CTLDIR/cow_tree.frames (its own /proc view
 * works in any pid namespace), and the parent compares them with its own:
 * untouched pages must share the frame, rewritten ones must not (PFNs read
 * as 0 without CAP_SYS_ADMIN: that is a failure, so run it as root). Then
 * it creates CTLDIR/cow_tree.go; the child checks every page's contents and
 * exits 0 (1: wrong contents), which the parent checks. With frames=0 the
 * pagemap comparison is skipped (contents only: a restore into another
 * layout copies inherited pages instead of sharing them). */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096ul
#define FILE_PAGES 16

static char *anon, *filemap;
static long pages;
static int written, frames;

/* The generation a page holds for one side (0 parent, 1 child): 1 as
 * filled before the fork, 2 rewritten by the parent, 3 by the child. */
static uint64_t generation(long i, int side)
{
	if (written && i % 4 == 0 && side == 0)
		return 2;
	if (written && i % 4 == 1 && side == 1)
		return 3;
	return 1;
}

/* Read, never written: the zero page. */
static int zero_page(int region, long i)
{
	return region == 0 && i % 16 == 15;
}

static int shared_page(long i)
{
	return !written || i % 4 >= 2;
}

static uint64_t seed(int region, long i, uint64_t gen)
{
	return ((uint64_t)region << 56) | ((uint64_t)gen << 40) | ((uint64_t)i << 9);
}

/* The page `i` of region 0 (anonymous) or 1 (file). */
static char *page_at(int region, long i)
{
	return (region ? filemap : anon) + (size_t)i * PAGE;
}

static long region_pages(int region)
{
	return region ? FILE_PAGES : pages;
}

static void rewrite(int side)
{
	for (int r = 0; r < 2; r++)
		for (long i = 0; i < region_pages(r); i++)
			if (generation(i, side) != 1 && !zero_page(r, i))
				wl_fill(page_at(r, i), PAGE, seed(r, i, generation(i, side)));
}

/* Checks `count` pages from `from` (wrapping); returns 0 on a bad one. */
static int check(int side, long from, long count, char *why, size_t cap)
{
	long total = pages + FILE_PAGES;
	for (long k = 0; k < count && k < total; k++) {
		long j = (from + k) % total;
		int r = j >= pages;
		long i = r ? j - pages : j;
		const uint64_t *w = (const uint64_t *)page_at(r, i);
		int bad = 0;
		if (zero_page(r, i)) {
			for (size_t k = 0; k < PAGE / 8; k++)
				bad |= w[k] != 0;
		} else {
			bad = wl_verify(w, PAGE, seed(r, i, generation(i, side))) >= 0;
		}
		if (bad) {
			snprintf(why, cap, "%s page %ld of the %s mapping: wrong contents", side ? "child" : "parent", i,
				 r ? "file" : "anonymous");
			return 0;
		}
	}
	return 1;
}

static int read_pagemap(const char *base, long n, uint64_t *out)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t want = n * 8;
	ssize_t got = pread(fd, out, (size_t)want, (off_t)((uintptr_t)base / PAGE * 8));
	close(fd);
	return got == want ? 0 : -1;
}

/* The child's answer to cow_tree.ask: its pagemap entries of both mappings. */
static void send_frames(void)
{
	long n = pages + FILE_PAGES;
	uint64_t *e = calloc((size_t)n, 8);
	char path[PATH_MAX], tmp[PATH_MAX];
	if (!e || read_pagemap(page_at(0, 0), pages, e) != 0 || read_pagemap(page_at(1, 0), FILE_PAGES, e + pages) != 0)
		_exit(3);
	int fd = open(wl_path(tmp, "cow_tree.frames.tmp"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || wl_write_all(fd, e, (size_t)n * 8) != 0 || close(fd) != 0 || rename(tmp, wl_path(path, "cow_tree.frames")) != 0)
		_exit(3);
	free(e);
}

static __attribute__((noreturn)) void child(int done)
{
	char go[PATH_MAX], ask[PATH_MAX], why[200];
	int answered = 0;
	wl_path(go, "cow_tree.go");
	wl_path(ask, "cow_tree.ask");
	rewrite(1);
	if (write(done, "x", 1) != 1)
		_exit(2);
	close(done);
	long at = 0;
	while (access(go, F_OK) != 0) {
		if (getppid() == 1)
			_exit(2);
		if (!check(1, at, 64, why, sizeof(why)))
			_exit(1);
		at += 64;
		if (!answered && access(ask, F_OK) == 0) {
			send_frames();
			answered = 1;
		}
		wl_sleep_us(10000);
	}
	_exit(check(1, 0, pages + FILE_PAGES, why, sizeof(why)) ? 0 : 1);
}

/* Untouched pages share the child's frame (`theirs`), rewritten ones do not. */
static void check_frames(const uint64_t *theirs, int region)
{
	long n = region_pages(region);
	uint64_t *mine = calloc((size_t)n, 8);
	const uint64_t pfn = (1ull << 55) - 1, present = 1ull << 63;
	if (!mine || read_pagemap(page_at(region, 0), n, mine) != 0) {
		wl_fail("cannot read /proc/self/pagemap: %s", strerror(errno));
		goto out;
	}
	const char *what = region ? "file" : "anonymous";
	for (long i = 0; i < n && !wl_has_failed(); i++) {
		uint64_t a = mine[i], b = theirs[i];
		if (zero_page(region, i) && (!(a & present) || !(b & present))) {
			continue; /* not populated on one side (yet): it reads the zero page when touched */
		} else if (zero_page(region, i) && (a & pfn) == (b & pfn)) {
			continue;
		} else if (zero_page(region, i)) {
			wl_fail("A page is not shared: zero page %ld has frame 0x%lx in the parent, 0x%lx in the child", i,
				(unsigned long)(a & pfn), (unsigned long)(b & pfn));
		} else if (!(a & present) || !(b & present)) {
			wl_fail("%s page %ld not present (parent 0x%lx, child 0x%lx)", what, i, (unsigned long)a, (unsigned long)b);
		} else if ((a & pfn) == 0) {
			wl_fail("pagemap shows no PFNs (needs root with CAP_SYS_ADMIN)");
		} else if (shared_page(i)) {
			WL_CHECK((a & pfn) == (b & pfn), "A page is not shared: %s page %ld of %ld has frame 0x%lx in the parent, 0x%lx in the child",
				 what, i, n, (unsigned long)(a & pfn), (unsigned long)(b & pfn));
		} else {
			WL_CHECK((a & pfn) != (b & pfn), "%s page %ld, written after the fork, shares its frame 0x%lx with the child",
				 what, i, (unsigned long)(a & pfn));
		}
	}
out:
	free(mine);
}

/* Asks the child for its pagemap entries and compares them with ours. */
static void compare_frames(void)
{
	char ask[PATH_MAX], path[PATH_MAX];
	long n = pages + FILE_PAGES;
	uint64_t *theirs = calloc((size_t)n, 8);
	int fd = open(wl_path(ask, "cow_tree.ask"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	uint64_t until = wl_now_ns(CLOCK_MONOTONIC) + 10000000000ull;
	while (access(wl_path(path, "cow_tree.frames"), F_OK) != 0 && wl_now_ns(CLOCK_MONOTONIC) < until)
		wl_sleep_us(10000);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!theirs || fd < 0 || read(fd, theirs, (size_t)n * 8) != n * 8) {
		wl_fail("no pagemap entries from the child");
	} else {
		check_frames(theirs, 0);
		check_frames(theirs + pages, 1);
	}
	if (fd >= 0)
		close(fd);
	free(theirs);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	pages = wl_arg(argc, argv, 2, 256);
	written = (int)wl_arg(argc, argv, 3, 1);
	frames = (int)wl_arg(argc, argv, 4, 1);
	if (pages < 4 || pages > (1l << 20)) {
		errno = EINVAL;
		wl_setup_fail("pages (4..1048576)");
	}
	char path[PATH_MAX], go[PATH_MAX], why[200];
	unlink(wl_path(go, "cow_tree.ask"));
	unlink(wl_path(go, "cow_tree.frames"));
	unlink(wl_path(go, "cow_tree.go"));
	int fd = open(wl_path(path, "cow_tree.dat"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, FILE_PAGES * PAGE) != 0)
		wl_setup_fail("create cow_tree.dat");
	filemap = mmap(NULL, FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	anon = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED || filemap == MAP_FAILED)
		wl_setup_fail("mmap");
	for (int r = 0; r < 2; r++)
		for (long i = 0; i < region_pages(r); i++)
			if (zero_page(r, i))
				(void)*(volatile char *)page_at(r, i);
			else
				wl_fill(page_at(r, i), PAGE, seed(r, i, 1));
	int done[2];
	if (pipe2(done, O_CLOEXEC) != 0)
		wl_setup_fail("pipe");
	pid_t kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0) {
		close(done[0]);
		child(done[1]);
	}
	close(done[1]);
	rewrite(0);
	/* Ready once the child has rewritten its pages. */
	char c;
	if (read(done[0], &c, 1) != 1)
		wl_setup_fail("wait for the child");
	close(done[0]);
	wl_ready();
	long at = 0;
	while (!wl_stop()) {
		if (!check(0, at, 64, why, sizeof(why)))
			wl_fail("%s", why);
		at += 64;
		wl_sleep_us(10000);
	}
	if (!check(0, 0, pages + FILE_PAGES, why, sizeof(why)))
		wl_fail("%s", why);
	if (frames)
		compare_frames();
	int gofd = open(go, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (gofd >= 0)
		close(gofd);
	int status = 0;
	pid_t r = wl_wait_child(kid, 5000000000ull, &status);
	if (r == 0) {
		wl_fail("the child did not end after cow_tree.go");
	} else {
		WL_CHECK(r == kid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "child ended with status 0x%x (1: its pages have wrong contents)", status);
	}
	wl_finish();
}
