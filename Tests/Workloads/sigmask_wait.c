/*
 * sigmask_wait — threads that wait with a temporary signal mask.
 *
 * The main thread waits in sigsuspend (woken by an ITIMER_REAL SIGALRM every
 * 50 ms); four other threads wait in sigsuspend, ppoll, pselect6 and
 * epoll_pwait (woken by SIGUSR1 the main thread sends them). Each thread
 * has its own mask (a real-time signal of its own in it) and a temporary
 * mask that opens only its wake-up signal. After every return each thread
 * checks that the call failed with EINTR (or timed out) and that its mask
 * is exactly its own again: a checkpointer that loses the kernel's saved
 * mask leaves a thread with the temporary one.
 * Final check: every thread still wakes, and no mask was ever wrong.
 */
#include "wl.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

#define WAITERS 4
static const char *names[WAITERS] = { "sigsuspend", "ppoll", "pselect6", "epoll_pwait" };
static pthread_t tids[WAITERS];
static volatile long wakes[WAITERS];
static volatile long main_wakes;
static int epfd;

static void on_signal(int sig) { (void)sig; }

/* The thread's own mask: SIGALRM, SIGUSR1 and SIGRTMIN + 1 + who (who = -1: main, also SIGUSR2). */
static void own_mask(sigset_t *s, int who)
{
	sigemptyset(s);
	sigaddset(s, SIGALRM);
	sigaddset(s, SIGUSR1);
	sigaddset(s, SIGRTMIN + 2 + who);
	if (who < 0)
		sigaddset(s, SIGUSR2);
}

/* The temporary mask: everything but `open`. */
static void temporary_mask(sigset_t *s, int open)
{
	sigfillset(s);
	sigdelset(s, open);
}

static void check_mask(int who, const char *thread, const char *call)
{
	sigset_t want, cur;
	own_mask(&want, who);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == 32 || sig == 33)
			continue; /* glibc's own */
		if (sigismember(&want, sig) != sigismember(&cur, sig)) {
			wl_fail("%s thread: signal %d is %s after %s returned", thread, sig,
				sigismember(&cur, sig) ? "blocked" : "unblocked", call);
			return;
		}
	}
}

static void check_result(int who, const char *thread, const char *call, int r, int err)
{
	if (!(r == 0 || (r < 0 && err == EINTR)))
		wl_fail("%s returned %d, errno %d", call, r, err);
	check_mask(who, thread, call);
}

static void *waiter(void *arg)
{
	int who = (int)(long)arg & (WAITERS - 1);
	sigset_t own, tmp;
	own_mask(&own, who);
	pthread_sigmask(SIG_SETMASK, &own, NULL);
	temporary_mask(&tmp, SIGUSR1);
	for (;;) {
		struct timespec ts = { 2, 0 };
		struct epoll_event ev;
		int r = 0;
		switch (who) {
		case 0: r = sigsuspend(&tmp); break;
		case 1: r = ppoll(NULL, 0, &ts, &tmp); break;
		case 2: r = pselect(0, NULL, NULL, NULL, &ts, &tmp); break;
		case 3: r = epoll_pwait(epfd, &ev, 1, 2000, &tmp); break;
		}
		int err = errno;
		check_result(who, names[who], names[who], r, err);
		__atomic_add_fetch(&wakes[who], 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* One wait of the main thread; kicks the waiters. */
static void main_wait(void)
{
	sigset_t tmp;
	temporary_mask(&tmp, SIGALRM);
	int r = sigsuspend(&tmp);
	int err = errno;
	check_result(-1, "main", "sigsuspend", r, err);
	main_wakes++;
	for (int i = 0; i < WAITERS; i++)
		pthread_kill(tids[i], SIGUSR1);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) || sigaction(SIGUSR1, &sa, NULL))
		wl_setup_fail("sigaction");
	sigset_t own;
	own_mask(&own, -1);
	pthread_sigmask(SIG_SETMASK, &own, NULL);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		wl_setup_fail("epoll_create1");
	for (int i = 0; i < WAITERS; i++)
		if (pthread_create(&tids[i], NULL, waiter, (void *)(long)i))
			wl_setup_fail("pthread_create");
	struct itimerval it = { { 0, 50000 }, { 0, 50000 } };
	if (setitimer(ITIMER_REAL, &it, NULL))
		wl_setup_fail("setitimer");
	wl_ready();
	while (!wl_stop())
		main_wait();
	/* Every thread still wakes up (within 5 s). */
	long before[WAITERS];
	for (int i = 0; i < WAITERS; i++)
		before[i] = __atomic_load_n(&wakes[i], __ATOMIC_SEQ_CST);
	for (int round = 0; round < 100; round++) {
		main_wait();
		int all = 1;
		for (int i = 0; i < WAITERS; i++)
			all &= __atomic_load_n(&wakes[i], __ATOMIC_SEQ_CST) > before[i];
		if (all)
			wl_finish();
	}
	for (int i = 0; i < WAITERS; i++)
		if (__atomic_load_n(&wakes[i], __ATOMIC_SEQ_CST) == before[i])
			wl_fail("%s thread no longer wakes", names[i]);
	wl_finish();
}
