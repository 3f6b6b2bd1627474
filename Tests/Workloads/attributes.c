/* attributes: kernel attributes a program sets and relies on survive the
 * restore: per thread (a second thread has its own) scheduling policy, nice
 * value, timer slack and robust futex list; per process the OOM score,
 * THP opt-out, child-subreaper flag, no_new_privs and personality; and a
 * child's parent-death signal (its parent is in the tree). */
#include "wl.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct thread_attrs {
	int policy, nice;
	unsigned long slack;
	void *robust_head;
	size_t robust_len;
};

static volatile int done;
static struct thread_attrs main_want, worker_want;
static volatile int worker_ok = 1;
static char worker_reason[200];

static void read_attrs(struct thread_attrs *a)
{
	a->policy = sched_getscheduler(0);
	errno = 0;
	a->nice = getpriority(PRIO_PROCESS, (id_t)gettid());
	a->slack = (unsigned long)prctl(PR_GET_TIMERSLACK);
	syscall(SYS_get_robust_list, 0, &a->robust_head, &a->robust_len);
}

static int same(const struct thread_attrs *a, const struct thread_attrs *b, char *why, size_t n)
{
	if (a->policy != b->policy) { snprintf(why, n, "policy %d -> %d", a->policy, b->policy); return 0; }
	if (a->nice != b->nice) { snprintf(why, n, "nice %d -> %d", a->nice, b->nice); return 0; }
	if (a->slack != b->slack) { snprintf(why, n, "timer slack %lu -> %lu", a->slack, b->slack); return 0; }
	if (a->robust_head != b->robust_head || a->robust_len != b->robust_len) {
		snprintf(why, n, "robust list %p/%zu -> %p/%zu", a->robust_head, a->robust_len, b->robust_head, b->robust_len);
		return 0;
	}
	return 1;
}

static void *worker(void *arg)
{
	(void)arg;
	struct sched_param p = { 0 };
	if (sched_setscheduler(0, SCHED_BATCH, &p) != 0 || setpriority(PRIO_PROCESS, (id_t)gettid(), 7) != 0 ||
	    prctl(PR_SET_TIMERSLACK, 777777UL) != 0) {
		snprintf(worker_reason, sizeof(worker_reason), "worker setup: %s", strerror(errno));
		worker_ok = 0;
	}
	read_attrs(&worker_want);
	while (!done) {
		struct thread_attrs now;
		read_attrs(&now);
		if (worker_ok && !same(&worker_want, &now, worker_reason, sizeof(worker_reason)))
			worker_ok = 0;
		wl_sleep_us(5000);
	}
	return NULL;
}

static int read_int(const char *path)
{
	char buf[32] = { 0 };
	if (wl_read_file(path, buf, sizeof(buf) - 1) <= 0)
		return -99999;
	return atoi(buf);
}

static void check(void)
{
	struct thread_attrs now;
	char why[200];
	read_attrs(&now);
	if (!same(&main_want, &now, why, sizeof(why)))
		wl_fail("main thread: %s", why);
	WL_CHECK(read_int("/proc/self/oom_score_adj") == 345, "oom_score_adj %d, want 345", read_int("/proc/self/oom_score_adj"));
	WL_CHECK(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "THP disable %d, want 1", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	int sub = 0;
	prctl(PR_GET_CHILD_SUBREAPER, &sub);
	WL_CHECK(sub == 1, "child subreaper %d, want 1", sub);
	WL_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs %d, want 1", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	WL_CHECK(personality(0xffffffff) == ADDR_NO_RANDOMIZE, "personality 0x%x, want 0x%x", personality(0xffffffff), ADDR_NO_RANDOMIZE);
	WL_CHECK(worker_ok, "worker thread: %s", worker_reason);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, "345", 3) != 3)
		wl_setup_fail("oom_score_adj");
	close(fd);
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 ||
	    prctl(PR_SET_TIMERSLACK, 123456UL) != 0 || setpriority(PRIO_PROCESS, 0, 3) != 0 ||
	    personality(ADDR_NO_RANDOMIZE) < 0)
		wl_setup_fail("prctl/setpriority/personality");
	/* A child that dies with its parent: SIGKILL on parent death, checked by the parent at the end. */
	int pipefd[2];
	if (pipe(pipefd) != 0)
		wl_setup_fail("pipe");
	pid_t child = fork();
	if (child == 0) {
		close(pipefd[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGUSR2) != 0)
			_exit(2);
		for (;;) {
			int sig = 0;
			prctl(PR_GET_PDEATHSIG, &sig);
			char c = sig == SIGUSR2 ? 'y' : 'n';
			if (write(pipefd[1], &c, 1) != 1)
				_exit(3);
			wl_sleep_us(50000);
		}
	}
	close(pipefd[1]);
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL) != 0)
		wl_setup_fail("pthread_create");
	while (!worker_want.slack)
		wl_sleep_us(1000);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		wl_setup_fail("no_new_privs");
	read_attrs(&main_want);
	wl_ready();
	while (!wl_stop()) {
		check();
		wl_sleep_us(5000);
	}
	check();
	char c = 0, last = 0;
	int flags = fcntl(pipefd[0], F_GETFL);
	fcntl(pipefd[0], F_SETFL, flags | O_NONBLOCK);
	while (read(pipefd[0], &c, 1) == 1)
		last = c;
	WL_CHECK(last == 'y', "child's parent-death signal lost (last report '%c')", last ? last : '-');
	done = 1;
	pthread_join(th, NULL);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	wl_finish();
}
