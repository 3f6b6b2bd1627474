/* proc_files: fds on the process's own /proc files come back naming the
 * restored process: /proc/self/maps read 10 bytes in (its position kept),
 * /proc/self/status and the /proc/self directory. Each step checks that
 * status read through its fd (and through the directory fd) shows this
 * process (the last NSpid is getpid(), also in a fresh pid namespace) and
 * that maps shows this process's own mapping of a marker page. */
#include "wl.h"
#include <sys/mman.h>

static int maps, status, dir;
static char *marker;

static int shows_me(int fd, const char *name)
{
	static char buf[8192];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return wl_fail("%s reads %zd (errno %d)", name, n, errno), 0;
	buf[n] = 0;
	char *l = strstr(buf, "\nNSpid:");
	if (!l)
		return wl_fail("%s has no NSpid line", name), 0;
	char *end = strchr(l + 1, '\n');
	if (end)
		*end = 0;
	char *last = strrchr(l, '\t');
	long pid = last ? strtol(last + 1, NULL, 10) : -1;
	WL_CHECK(pid == getpid(), "%s shows process %ld, not this one (%d)", name, pid, (int)getpid());
	return 1;
}

static void step(void)
{
	shows_me(status, "status fd");
	int s = openat(dir, "status", O_RDONLY);
	WL_CHECK(s >= 0, "openat(/proc/self dir fd, status) failed (errno %d)", errno);
	if (s >= 0) {
		shows_me(s, "status through the directory fd");
		close(s);
	}
	WL_CHECK(lseek(maps, 0, SEEK_CUR) == 10, "maps position %ld, want 10", (long)lseek(maps, 0, SEEK_CUR));
	static char buf[1 << 16];
	ssize_t n = pread(maps, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	char want[32];
	snprintf(want, sizeof want, "%lx-", (unsigned long)marker);
	WL_CHECK(strstr(buf, want) != NULL, "maps fd does not show this process's marker page %s", want);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	marker = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	maps = open("/proc/self/maps", O_RDONLY);
	status = open("/proc/self/status", O_RDONLY);
	dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
	char ten[10];
	if (marker == MAP_FAILED || maps < 0 || status < 0 || dir < 0 || read(maps, ten, 10) != 10)
		wl_setup_fail("open /proc/self files");
	wl_ready();
	wl_loop(step, NULL, 1000);
}
