/* shm_fork [anon|memfd|sysv|file]: a parent and its child share one page
 * of memory — MAP_SHARED|MAP_ANONYMOUS inherited across fork (default), a
 * memfd mapped MAP_SHARED before the fork (its fd closed), a System V
 * segment attached before the fork (marked IPC_RMID), or a MAP_SHARED
 * mapping of the regular file CTLDIR/shm_fork.dat. Each counts up its own
 * word in the page every millisecond; each sees the other's word advance
 * (at least every 5 s: a checkpoint may hold one side a while) and never go
 * back. At stop the parent raises a
 * flag in the page; the child must see it and exit 0, which it can only if
 * the page is still shared. ferry carries anon and memfd (one object mapped
 * by both) and sysv (the segment re-created with its id, attached by both;
 * sysv_shm checks more of it); a shared file stays shared through the
 * file, and is carried. */
#include "wl.h"
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <signal.h>
#include <sys/wait.h>

struct page {
	volatile uint64_t seq[2]; /* 0: parent, 1: child */
	volatile uint64_t stop;
};

static struct page *pg;

static struct page *share(const char *mode)
{
	void *p = MAP_FAILED;
	if (strcmp(mode, "anon") == 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	} else if (strcmp(mode, "memfd") == 0) {
		int fd = memfd_create("wl_shm_fork", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, 4096) != 0)
			wl_setup_fail("memfd_create");
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	} else if (strcmp(mode, "sysv") == 0) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0)
			wl_setup_fail("shmget");
		p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			p = MAP_FAILED;
		/* Gone once both have detached (exited). */
		shmctl(id, IPC_RMID, NULL);
	} else if (strcmp(mode, "file") == 0) {
		char path[PATH_MAX];
		int fd = open(wl_path(path, "shm_fork.dat"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, 4096) != 0)
			wl_setup_fail("create shm_fork.dat");
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	} else {
		errno = EINVAL;
		wl_setup_fail("mode (anon, memfd, sysv or file)");
	}
	if (p == MAP_FAILED)
		wl_setup_fail("map the shared page");
	return p;
}

/* One side's step: count up, check the other side. Returns 0 when the
 * other side has not moved for more than 5 s. */
struct side {
	int me;
	uint64_t seen, seen_at;
};

static int step(struct side *s)
{
	pg->seq[s->me]++;
	uint64_t other = pg->seq[1 - s->me], now = wl_now_ns(CLOCK_MONOTONIC);
	if (other < s->seen) {
		wl_fail("%s's counter went back from %lu to %lu", s->me ? "parent" : "child",
			(unsigned long)s->seen, (unsigned long)other);
	} else if (other > s->seen) {
		s->seen = other;
		s->seen_at = now;
	} else if (now - s->seen_at > 5000000000ull) {
		return 0;
	}
	return 1;
}

static __attribute__((noreturn)) void child(void)
{
	struct side s = { 1, 0, wl_now_ns(CLOCK_MONOTONIC) };
	/* Exit 0 on the parent's flag; 1 when its counter stops (not shared any more). */
	while (!pg->stop) {
		if (!step(&s) || wl_has_failed())
			_exit(1);
		if (getppid() == 1)
			_exit(2);
		wl_sleep_us(1000);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	pg = share(argc > 2 ? argv[2] : "anon");
	pid_t kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0)
		child();
	struct side s = { 0, 0, wl_now_ns(CLOCK_MONOTONIC) };
	while (pg->seq[1] == 0)
		wl_sleep_us(1000);
	wl_ready();
	while (!wl_stop()) {
		if (!step(&s))
			wl_fail("the child's counter stopped at %lu: the page is no longer shared",
				(unsigned long)s.seen);
		wl_sleep_us(1000);
	}
	pg->stop = 1;
	int status = 0;
	pid_t r = wl_wait_child(kid, 2000000000ull, &status);
	if (r == 0) {
		wl_fail("the child never saw the stop flag: the page is no longer shared");
	} else {
		WL_CHECK(r == kid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "child ended with status 0x%x", status);
	}
	wl_finish();
}
