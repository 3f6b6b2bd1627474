/* chroot_root: a process chrooted into CTLDIR/jail (needs root) keeps its
 * root, its working directory outside that root (CTLDIR: chroot without
 * chdir), an fd opened before the chroot (outside.dat) and one opened inside
 * it by its in-root path (/inside.dat). Each step checks that "/" is the
 * jail, that "/inside.dat" is the file of the inside fd and that both fds
 * read their text; the protocol's files are reached relative to the
 * working directory. */
#include "wl.h"
#include <sys/stat.h>

static int outside, inside;
static struct stat jail;

static void reads(int fd, const char *name, const char *want)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	WL_CHECK(n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0, "%s reads \"%s\"", name, buf);
}

static void step(void)
{
	struct stat root, a, b;
	WL_CHECK(stat("/", &root) == 0 && root.st_dev == jail.st_dev && root.st_ino == jail.st_ino,
		 "the root is no longer the jail (ino %lu, want %lu)", (unsigned long)root.st_ino, (unsigned long)jail.st_ino);
	WL_CHECK(stat("/inside.dat", &a) == 0 && fstat(inside, &b) == 0 && a.st_ino == b.st_ino,
		 "/inside.dat is not the file of the inside fd");
	WL_CHECK(access("jail/inside.dat", F_OK) == 0, "the working directory is no longer CTLDIR, outside the root");
	reads(outside, "outside fd", "outside");
	reads(inside, "inside fd", "inside");
}

static int make(const char *path, const char *text)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		wl_setup_fail(path);
	return fd;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	if (chdir(wl_ctldir))
		wl_setup_fail("chdir CTLDIR");
	wl_ctldir = ".";
	wl_path(wl_stop_file, "stop");
	outside = make("outside.dat", "outside");
	if (mkdir("jail", 0755) || stat("jail", &jail))
		wl_setup_fail("mkdir jail");
	close(make("jail/inside.dat", "inside"));
	if (chroot("jail"))
		wl_setup_fail("chroot (needs root)");
	inside = open("/inside.dat", O_RDWR);
	if (inside < 0)
		wl_setup_fail("open /inside.dat");
	wl_ready();
	wl_loop(step, NULL, 1000);
}
