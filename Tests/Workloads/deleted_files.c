/* deleted_files [big|nodir|mapped]: regular files unlinked while open keep
 * their contents, offset, flags and mode. In CTLDIR: "ghost.a" (20000 bytes
 * of pattern, mode 0604, opened O_RDWR|O_APPEND) and
 * "ghost.b" (empty, opened O_WRONLY, mode 06604 — set-user-ID and set-group-ID
 * bits, which a chown clears — and mtime 123456 s) are unlinked; "ghost.c" is
 * unlinked and a new file is created under its name (the restore must not
 * touch it: it holds "new"). ghost.a is also dup'ed (one open file) and
 * inherited by a child. Each step appends a byte to ghost.a and checks the
 * size and the last byte. At stop: /proc/self/fd shows each at its old path
 * "(deleted)", with its contents, flags, offset, mode, no link (st_nlink
 * 0), and the dup shares the offset.
 * Modes a checkpoint must refuse: `big` (ghost.a grows to 2 MiB of data, over the
 * --ghost-limit the test passes), `nodir` (ghost.a lives in a directory
 * removed too), `mapped` (ghost.a is mapped MAP_SHARED as well). */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SIZE 20000
static int a, a2, b, c;
static size_t size = SIZE;
static char path_a[PATH_MAX + 16], path_b[PATH_MAX], path_c[PATH_MAX];
static pid_t kid;

static uint8_t byte_at(size_t k) { return (uint8_t)(k * 11 + (k >> 7)); }

static void check_fd(int fd, const char *path, int flags, mode_t mode)
{
	char link[64], target[PATH_MAX + 32], want[PATH_MAX + 32];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t len = readlink(link, target, sizeof target - 1);
	target[len < 0 ? 0 : len] = 0;
	snprintf(want, sizeof want, "%s (deleted)", path);
	WL_CHECK(strcmp(target, want) == 0, "fd %d is %s, want %s", fd, target, want);
	struct stat st;
	WL_CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0 && (st.st_mode & 07777) == mode,
		 "fd %d: links %ld mode %o, want 0 and %o", fd, (long)st.st_nlink, st.st_mode & 07777, mode);
	int fl = fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND);
	WL_CHECK(fl == flags, "fd %d flags %#x, want %#x", fd, fl, flags);
}

static void step(void)
{
	uint8_t x = byte_at(size);
	WL_CHECK(write(a, &x, 1) == 1, "append to ghost.a");
	size++;
	struct stat st;
	uint8_t last = 0;
	WL_CHECK(fstat(a, &st) == 0 && (size_t)st.st_size == size, "ghost.a is %ld bytes, want %zu", (long)st.st_size, size);
	WL_CHECK(pread(a, &last, 1, size - 1) == 1 && last == x, "ghost.a's last byte %#x, want %#x", last, x);
}

static void final(void)
{
	check_fd(a, path_a, O_RDWR | O_APPEND, 0604);
	check_fd(b, path_b, O_WRONLY, 06604);
	static uint8_t buf[(2 << 20) + 100000];
	ssize_t got = pread(a, buf, size, 0);
	WL_CHECK(got == (ssize_t)size, "ghost.a: pread %zd of %zu", got, size);
	/* The pattern, then (big) zeros to 2 MiB, then the appended bytes. */
	for (ssize_t i = 0; i < got; i++)
		if (buf[i] != (i >= SIZE && i < (2 << 20) && size > (2 << 20) ? 0 : byte_at(i))) {
			wl_fail("ghost.a byte %zd is %#x", i, buf[i]);
			break;
		}
	WL_CHECK(lseek(a, 0, SEEK_CUR) == (off_t)size, "ghost.a offset %ld, want %zu (O_APPEND)", (long)lseek(a, 0, SEEK_CUR), size);
	lseek(a, 99, SEEK_SET);
	WL_CHECK(lseek(a2, 0, SEEK_CUR) == 99, "the dup of ghost.a has offset %ld, want 99", (long)lseek(a2, 0, SEEK_CUR));
	struct stat st;
	WL_CHECK(fstat(b, &st) == 0 && st.st_size == 0, "ghost.b is %ld bytes, want 0", (long)st.st_size);
	WL_CHECK(st.st_mtim.tv_sec == 123456 && st.st_mtim.tv_nsec == 789, "ghost.b's mtime is %ld.%09ld, want 123456.000000789",
		 (long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
	char now[8] = { 0 };
	WL_CHECK(pread(c, now, sizeof now, 0) == 3 && strcmp(now, "new") == 0, "the new ghost.c holds \"%s\", want \"new\"", now);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	const char *mode = argc > 2 ? argv[2] : "";
	char dir[PATH_MAX];
	wl_path(dir, "sub");
	if (mkdir(dir, 0755))
		wl_setup_fail("mkdir sub");
	snprintf(path_a, sizeof path_a, "%s/ghost.a", strcmp(mode, "nodir") == 0 ? dir : wl_ctldir);
	wl_path(path_b, "ghost.b");
	wl_path(path_c, "ghost.c");
	a = open(path_a, O_RDWR | O_APPEND | O_CREAT | O_EXCL, 0604);
	b = open(path_b, O_WRONLY | O_CREAT | O_EXCL, 0600);
	int old_c = open(path_c, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (a < 0 || b < 0 || old_c < 0)
		wl_setup_fail("create the files");
	const struct timespec times[2] = { { 0, UTIME_OMIT }, { 123456, 789 } };
	if (fchmod(a, 0604) || fchmod(b, 06604) || futimens(b, times))
		wl_setup_fail("fchmod/futimens");
	static uint8_t buf[SIZE];
	for (size_t i = 0; i < SIZE; i++)
		buf[i] = byte_at(i);
	if (write(a, buf, SIZE) != SIZE || write(old_c, "old", 3) != 3)
		wl_setup_fail("write");
	if (strcmp(mode, "big") == 0) {
		/* Zeros written, not a hole: 2 MiB of data. */
		static uint8_t zeros[(2 << 20) - SIZE];
		size = 2 << 20;
		if (write(a, zeros, sizeof zeros) != sizeof zeros)
			wl_setup_fail("write big");
	}
	if (unlink(path_a) || unlink(path_b) || unlink(path_c))
		wl_setup_fail("unlink");
	c = open(path_c, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (c < 0 || write(c, "new", 3) != 3)
		wl_setup_fail("the new ghost.c");
	if (strcmp(mode, "nodir") == 0 && rmdir(dir))
		wl_setup_fail("rmdir sub");
	close(old_c);
	a2 = dup(a);
	if (a2 < 0)
		wl_setup_fail("dup");
	kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0)
		for (;;)
			pause();
	/* The parent alone maps it (a mapping shared with the child is refused as shared memory first). */
	if (strcmp(mode, "mapped") == 0 && mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0) == MAP_FAILED)
		wl_setup_fail("mmap");
	wl_ready();
	wl_loop(step, final, 1000);
}
