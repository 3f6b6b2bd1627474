/* high_fds: descriptors at high numbers, where a restorer might keep its
 * own: files at 700, 900, 999 and 1000 (each its own file in CTLDIR,
 * holding its number, with the offset at that number of bytes), and a pipe
 * at 701 (read) / 998 (write) with bytes in flight. The soft RLIMIT_NOFILE
 * is raised to 1100 for them. Every step and at stop: each fd is still the
 * file of its own name (same inode as the path), reads its own contents
 * and keeps its offset; the pipe still carries the stream. */
#include "wl.h"
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

static const int files[] = { 700, 900, 999, 1000 };
#define NFILES (int)(sizeof(files) / sizeof(files[0]))
#define PIPE_R 701
#define PIPE_W 998
static unsigned char next_in, next_out;

static void check_files(void)
{
	for (int i = 0; i < NFILES; i++) {
		int fd = files[i];
		char name[32], path[PATH_MAX], buf[32], want[32];
		snprintf(name, sizeof(name), "fd%d.dat", fd);
		struct stat a, b;
		if (fstat(fd, &a) != 0 || stat(wl_path(path, name), &b) != 0) {
			wl_fail("fd %d: fstat/stat: %s", fd, strerror(errno));
			return;
		}
		WL_CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev, "fd %d is not %s any more", fd, name);
		int n = snprintf(want, sizeof(want), "file at fd %d\n", fd);
		WL_CHECK(pread(fd, buf, n, 0) == n && memcmp(buf, want, n) == 0, "fd %d reads other contents", fd);
		WL_CHECK(lseek(fd, 0, SEEK_CUR) == fd, "fd %d: offset %ld, want %d", fd, (long)lseek(fd, 0, SEEK_CUR), fd);
	}
}

static void step(void)
{
	check_files();
	/* Keep 64 bytes in flight: write 16, read 16. */
	unsigned char buf[16];
	for (int i = 0; i < 16; i++)
		buf[i] = next_out++;
	WL_CHECK(wl_write_all(PIPE_W, buf, 16) == 0, "write to the pipe at %d: %s", PIPE_W, strerror(errno));
	WL_CHECK(read(PIPE_R, buf, 16) == 16, "read from the pipe at %d: %s", PIPE_R, strerror(errno));
	for (int i = 0; i < 16; i++)
		WL_CHECK(buf[i] == next_in++, "pipe byte %d out of sequence", i);
}

static void final(void)
{
	check_files();
	int n = -1;
	WL_CHECK(ioctl(PIPE_R, FIONREAD, &n) == 0 && n == 64, "pipe holds %d bytes, want 64", n);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		wl_setup_fail("getrlimit");
	if (rl.rlim_cur < 1100) {
		rl.rlim_cur = 1100;
		if (rl.rlim_max < 1100)
			rl.rlim_max = 1100;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			wl_setup_fail("setrlimit(RLIMIT_NOFILE, 1100)");
	}
	for (int i = 0; i < NFILES; i++) {
		char name[32], path[PATH_MAX], text[32];
		snprintf(name, sizeof(name), "fd%d.dat", files[i]);
		int fd = open(wl_path(path, name), O_RDWR | O_CREAT | O_TRUNC, 0644);
		int n = snprintf(text, sizeof(text), "file at fd %d\n", files[i]);
		if (fd < 0 || wl_write_all(fd, text, n) != 0 || ftruncate(fd, 4096) != 0)
			wl_setup_fail("create file");
		if (dup2(fd, files[i]) != files[i])
			wl_setup_fail("dup2 to a high fd");
		close(fd);
		if (lseek(files[i], files[i], SEEK_SET) != files[i])
			wl_setup_fail("lseek");
	}
	int p[2];
	if (pipe(p) != 0 || dup2(p[0], PIPE_R) != PIPE_R || dup2(p[1], PIPE_W) != PIPE_W)
		wl_setup_fail("pipe at high fds");
	close(p[0]);
	close(p[1]);
	unsigned char buf[64];
	for (int i = 0; i < 64; i++)
		buf[i] = next_out++;
	if (wl_write_all(PIPE_W, buf, 64) != 0)
		wl_setup_fail("fill the pipe");
	step();
	wl_ready();
	wl_loop(step, final, 1000);
}
