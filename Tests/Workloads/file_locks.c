/* file_locks: the process holds an flock (exclusive) on one file, two POSIX
 * locks on another (read on bytes 10-19, write from 100 to EOF) and an OFD
 * write lock on a third. At stop a forked child, through its own opens,
 * finds every lock still held: flock and OFD conflict, and F_GETLK reports
 * each POSIX range with the process as owner (and no lock elsewhere).
 * With "shared", a child forked after the locks holds the same open files
 * (so a restore opens them once and both inherit them) until stop. */
#include "wl.h"
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>

static char pa[PATH_MAX], pb[PATH_MAX], pc[PATH_MAX];
static int fa, fb, fc;
static pid_t holder;

static int lk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock l = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &l);
}

/* F_GETLK from the child: the owner pid of a conflicting lock, 0 if none. */
static pid_t owner(int fd, off_t start, off_t len)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, F_GETLK, &l) != 0)
		return -1;
	return l.l_type == F_UNLCK ? 0 : l.l_pid;
}

static int child_checks(pid_t parent)
{
	int a = open(pa, O_RDWR), b = open(pb, O_RDWR), c = open(pc, O_RDWR);
	if (a < 0 || b < 0 || c < 0)
		return 10;
	if (flock(a, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 11; /* the flock is gone */
	if (owner(b, 12, 1) != parent)
		return 12; /* the read lock on 10-19 is gone */
	if (owner(b, 5000, 1) != parent)
		return 13; /* the write lock from 100 is gone */
	if (owner(b, 50, 10) != 0)
		return 14; /* a lock where there was none */
	if (lk(b, F_SETLK, F_RDLCK, 10, 10) != 0)
		return 15; /* a read lock where there was a read lock must be shareable */
	if (lk(c, F_OFD_SETLK, F_WRLCK, 0, 0) == 0 || (errno != EAGAIN && errno != EACCES))
		return 16; /* the OFD lock is gone */
	return 0;
}

/* Each step, through new opens of its own (no fork: a child caught between
 * its exit and its reaping would be a zombie): the flock and the OFD lock
 * still conflict. */
static void step(void)
{
	int a = open(pa, O_RDWR | O_CLOEXEC), c = open(pc, O_RDWR | O_CLOEXEC);
	WL_CHECK(a >= 0 && c >= 0, "open: %s", strerror(errno));
	WL_CHECK(flock(a, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK, "flock lost");
	WL_CHECK(lk(c, F_OFD_SETLK, F_WRLCK, 0, 0) != 0 && (errno == EAGAIN || errno == EACCES), "OFD lock lost");
	close(a);
	close(c);
}

static void final(void)
{
	if (holder > 0) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
	}
	step();
	pid_t parent = getpid(), p = fork();
	if (p == 0)
		_exit(child_checks(parent));
	int st = 0;
	WL_CHECK(p > 0 && waitpid(p, &st, 0) == p, "fork/wait: %s", strerror(errno));
	static const char *what[] = { "", "", "", "", "", "", "", "", "", "", "child open", "flock lost",
				      "POSIX read lock 10-19 lost", "POSIX write lock from 100 lost",
				      "a POSIX lock appeared at 50-59", "read lock not shareable", "OFD lock lost" };
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 99;
	WL_CHECK(code == 0, "lock check: %s (%d)", code >= 10 && code <= 16 ? what[code] : "child died", code);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	wl_path(pa, "a");
	wl_path(pb, "b");
	wl_path(pc, "c");
	fa = open(pa, O_RDWR | O_CREAT, 0600);
	fb = open(pb, O_RDWR | O_CREAT, 0600);
	fc = open(pc, O_RDWR | O_CREAT, 0600);
	if (fa < 0 || fb < 0 || fc < 0)
		wl_setup_fail("open");
	if (flock(fa, LOCK_EX | LOCK_NB))
		wl_setup_fail("flock");
	if (lk(fb, F_SETLK, F_RDLCK, 10, 10) || lk(fb, F_SETLK, F_WRLCK, 100, 0))
		wl_setup_fail("POSIX locks");
	if (lk(fc, F_OFD_SETLK, F_WRLCK, 0, 0))
		wl_setup_fail("OFD lock");
	if (argc > 2 && !strcmp(argv[2], "shared")) {
		holder = fork();
		if (holder < 0)
			wl_setup_fail("fork");
		if (holder == 0)
			for (;;)
				pause();
	}
	wl_ready();
	wl_loop(step, final, 1000);
}
