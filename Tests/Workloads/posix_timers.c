/* posix_timers: POSIX timers (timer_create) of several kinds, with a gap in
 * their ids (one timer deleted):
 *   periodic: CLOCK_MONOTONIC, SIGEV_SIGNAL SIGUSR1, sival_int 0x1111, 20 ms;
 *   far:      CLOCK_REALTIME, SIGEV_SIGNAL SIGRTMIN+1, sival_ptr, one-shot 60 s;
 *   thread:   CLOCK_BOOTTIME, SIGEV_THREAD_ID to a second thread,
 *             SIGRTMIN+2, sival_int 0x3333, 30 ms;
 *   cpu:      CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, one-shot 1000 s of CPU.
 * Handlers check si_code SI_TIMER, si_timerid and si_value, and that the
 * thread timer's signal arrives in its thread. The loop checks each timer's
 * period with timer_gettime. At stop (after restore): /proc/self/timers
 * lists the same ids with the same clocks, both periodic timers keep firing
 * (counts rise over 300 ms), the one-shots are still armed with less time
 * left than they were given. */
#include "wl.h"
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>

static timer_t periodic, far, thr, cpu, gone;
static volatile sig_atomic_t ticks_periodic, ticks_thread, bad;
static volatile pid_t thread_tid;
static volatile int thread_stop;
static char bad_what[64];

static void mark_bad(const char *what)
{
	if (!bad) {
		strncpy(bad_what, what, sizeof(bad_what) - 1);
		bad = 1;
	}
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code != SI_TIMER)
		mark_bad("si_code not SI_TIMER");
	if (sig == SIGUSR1) {
		if (si->si_timerid != (int)(long)periodic)
			mark_bad("SIGUSR1 si_timerid");
		if (si->si_value.sival_int != 0x1111)
			mark_bad("SIGUSR1 si_value");
		ticks_periodic++;
	} else if (sig == SIGRTMIN + 2) {
		if (si->si_timerid != (int)(long)thr)
			mark_bad("thread timer si_timerid");
		if (si->si_value.sival_int != 0x3333)
			mark_bad("thread timer si_value");
		if (syscall(SYS_gettid) != thread_tid)
			mark_bad("thread timer signal in another thread");
		ticks_thread++;
	} else {
		mark_bad("unexpected timer signal");
	}
}

static void *second(void *arg)
{
	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	while (!__atomic_load_n(&thread_stop, __ATOMIC_SEQ_CST))
		wl_sleep_us(5000);
	return NULL;
}

static void make(timer_t *t, clockid_t clk, int notify, int sig, union sigval v, pid_t tid,
		 long value_ns, long interval_ns)
{
	struct sigevent se;
	memset(&se, 0, sizeof(se));
	se.sigev_notify = notify;
	se.sigev_signo = sig;
	se.sigev_value = v;
	if (notify == SIGEV_THREAD_ID)
		se._sigev_un._tid = tid;
	if (timer_create(clk, &se, t) != 0)
		wl_setup_fail("timer_create");
	struct itimerspec it = { { interval_ns / 1000000000, interval_ns % 1000000000 },
				 { value_ns / 1000000000, value_ns % 1000000000 } };
	if (value_ns && timer_settime(*t, 0, &it, NULL) != 0)
		wl_setup_fail("timer_settime");
}

static long ns(struct timespec ts) { return ts.tv_sec * 1000000000L + ts.tv_nsec; }

static void check_period(timer_t t, const char *name, long interval)
{
	struct itimerspec it;
	if (timer_gettime(t, &it) != 0) {
		wl_fail("timer_gettime(%s): %s", name, strerror(errno));
		return;
	}
	WL_CHECK(ns(it.it_interval) == interval, "%s interval %ld ns, want %ld", name, ns(it.it_interval), interval);
	WL_CHECK(ns(it.it_value) > 0, "%s disarmed", name);
}

static void step(void)
{
	check_period(periodic, "periodic", 20000000);
	check_period(far, "far", 0);
	check_period(thr, "thread", 30000000);
	check_period(cpu, "cpu", 0);
	WL_CHECK(!bad, "timer signal: %s", bad_what);
}

/* The "ID:" and "ClockID:" pairs of /proc/self/timers, in order. */
static int proc_timers(int ids[8], int clocks[8])
{
	char buf[4096];
	ssize_t len = wl_read_file("/proc/self/timers", buf, sizeof(buf) - 1);
	if (len < 0)
		return -1;
	buf[len] = 0;
	int n = 0;
	for (char *p = buf; p && *p && n < 8; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (sscanf(p, "ID: %d", &ids[n]) == 1)
			continue;
		if (sscanf(p, "ClockID: %d", &clocks[n]) == 1)
			n++;
	}
	return n;
}

static int expect_ids[8], expect_clocks[8], expect_n;

static void final(void)
{
	int p0 = ticks_periodic, t0 = ticks_thread;
	wl_sleep_us(300000);
	int dp = ticks_periodic - p0, dt = ticks_thread - t0;
	WL_CHECK(dp >= 3 && dp <= 40, "%d periodic ticks in 300 ms after restore, want 3..40", dp);
	WL_CHECK(dt >= 2 && dt <= 30, "%d thread timer ticks in 300 ms after restore, want 2..30", dt);
	step();
	struct itimerspec it;
	timer_gettime(far, &it);
	WL_CHECK(ns(it.it_value) > 0 && ns(it.it_value) <= 60000000000L, "far timer has %ld ns left", ns(it.it_value));
	timer_gettime(cpu, &it);
	WL_CHECK(ns(it.it_value) > 0 && ns(it.it_value) <= 1000000000000L, "cpu timer has %ld ns left", ns(it.it_value));
	int ids[8], clocks[8];
	int n = proc_timers(ids, clocks);
	WL_CHECK(n == expect_n, "/proc/self/timers lists %d timers, want %d", n, expect_n);
	for (int i = 0; i < n && i < expect_n; i++)
		WL_CHECK(ids[i] == expect_ids[i] && clocks[i] == expect_clocks[i],
			 "/proc/self/timers entry %d: id %d clock %d, want id %d clock %d", i, ids[i], clocks[i],
			 expect_ids[i], expect_clocks[i]);
	WL_CHECK(timer_gettime(gone, &it) != 0 && errno == EINVAL, "the deleted timer's id answers");
	__atomic_store_n(&thread_stop, 1, __ATOMIC_SEQ_CST);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct sigaction sa = { .sa_sigaction = on_timer, .sa_flags = SA_SIGINFO | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGRTMIN + 2, &sa, NULL) != 0)
		wl_setup_fail("sigaction");
	pthread_t th;
	if (pthread_create(&th, NULL, second, NULL) != 0)
		wl_setup_fail("pthread_create");
	while (!thread_tid)
		wl_sleep_us(1000);
	make(&periodic, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, (union sigval){ .sival_int = 0x1111 }, 0,
	     20000000, 20000000);
	make(&gone, CLOCK_MONOTONIC, SIGEV_NONE, 0, (union sigval){ 0 }, 0, 0, 0);
	make(&far, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 1, (union sigval){ .sival_ptr = &far }, 0,
	     60000000000L, 0);
	make(&thr, CLOCK_BOOTTIME, SIGEV_THREAD_ID, SIGRTMIN + 2, (union sigval){ .sival_int = 0x3333 }, thread_tid,
	     30000000, 30000000);
	make(&cpu, CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, (union sigval){ 0 }, 0, 1000000000000L, 0);
	if (timer_delete(gone) != 0)
		wl_setup_fail("timer_delete");
	expect_n = proc_timers(expect_ids, expect_clocks);
	if (expect_n != 4)
		wl_setup_fail("/proc/self/timers");
	while (ticks_periodic < 2 || ticks_thread < 2)
		wl_sleep_us(10000);
	wl_ready();
	wl_loop(step, final, 10000);
}
