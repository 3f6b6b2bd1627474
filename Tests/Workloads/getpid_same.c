/* getpid_same: getpid(), the raw getpid syscall, gettid and a second
 * thread's tid must be the same after restore as before, and equal the
 * pid written to CTLDIR/ready. */
#include "wl.h"
#include <pthread.h>
#include <sys/syscall.h>

static pid_t pid0, tid0;
static volatile pid_t thread_tid;
static volatile int done;

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = gettid();
	while (!done) {
		WL_CHECK(gettid() == thread_tid, "thread tid changed %d -> %d", thread_tid, gettid());
		wl_sleep_us(10000);
	}
	return NULL;
}

static void step(void)
{
	pid_t p = getpid(), sp = (pid_t)syscall(SYS_getpid), t = gettid();
	WL_CHECK(p == pid0, "getpid changed %d -> %d", pid0, p);
	WL_CHECK(sp == pid0, "SYS_getpid changed %d -> %d", pid0, sp);
	WL_CHECK(t == tid0, "gettid changed %d -> %d", tid0, t);
}

static void final(void)
{
	char path[PATH_MAX], buf[32] = {0};
	WL_CHECK(wl_read_file(wl_path(path, "ready"), buf, sizeof(buf) - 1) > 0, "cannot read ready");
	WL_CHECK(atoi(buf) == pid0, "ready says %d, pid %d", atoi(buf), pid0);
	WL_CHECK(thread_tid != 0 && thread_tid != tid0, "thread tid %d bad", thread_tid);
	done = 1;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	pid0 = getpid();
	tid0 = gettid();
	WL_CHECK(pid0 == tid0, "main tid %d != pid %d", tid0, pid0);
	pthread_t th;
	if (pthread_create(&th, NULL, thread_main, NULL) != 0)
		wl_setup_fail("pthread_create");
	while (!thread_tid)
		wl_sleep_us(1000);
	wl_ready();
	while (!wl_stop()) {
		step();
		wl_sleep_us(5000);
	}
	step();
	final();
	pthread_join(th, NULL);
	wl_finish();
}
