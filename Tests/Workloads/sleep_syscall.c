/* sleep_syscall: one thread sleeps in nanosleep(1 s) over and over; another
 * blocks in read() on an empty pipe that a helper thread writes a sequence
 * number to every 300 ms. nanosleep must not return early: on EINTR the
 * remaining time must be sane (at most the request plus the thread's timer
 * slack: the kernel reports the slack-extended expiry, so a sleep
 * interrupted within the slack of its start reports more than it asked
 * for) and is slept; a completed sleep must have
 * taken >= 1 s of CLOCK_MONOTONIC. The reader must see 0,1,2,... At stop
 * both the sleeper and the reader must complete another round. */
#include "wl.h"
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#define NS 1000000000ll
static volatile int done;
static volatile unsigned long sleeps, reads;
static int pfd[2];

static void on_usr1(int sig) { (void)sig; }

static void *sleeper(void *arg)
{
	(void)arg;
	long long slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (slack < 0)
		slack = 0;
	while (!done) {
		struct timespec req = { 1, 0 }, rem;
		uint64_t t0 = wl_now_ns(CLOCK_MONOTONIC);
		while (nanosleep(&req, &rem) != 0) {
			if (errno != EINTR || rem.tv_sec < 0 || rem.tv_nsec < 0 || rem.tv_nsec >= NS ||
			    rem.tv_sec * NS + rem.tv_nsec > req.tv_sec * NS + req.tv_nsec + slack) {
				wl_fail("nanosleep: %s, remaining %ld.%09ld", strerror(errno),
					(long)rem.tv_sec, rem.tv_nsec);
				return NULL;
			}
			req = rem;
		}
		int64_t took = (int64_t)(wl_now_ns(CLOCK_MONOTONIC) - t0);
		WL_CHECK(took >= NS - 1000000, "nanosleep(1 s) returned after %lld ns", (long long)took);
		sleeps++;
	}
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	uint64_t v;
	for (;;) {
		ssize_t n = read(pfd[0], &v, sizeof(v));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return NULL;
		if (n != sizeof(v) || v != reads) {
			wl_fail("pipe read %zd bytes, value %lu, want %lu", n, (unsigned long)v, reads);
			return NULL;
		}
		reads++;
	}
}

static void *writer(void *arg)
{
	(void)arg;
	for (uint64_t v = 0; !done; v++) {
		WL_CHECK(wl_write_all(pfd[1], &v, sizeof(v)) == 0, "pipe write: %s", strerror(errno));
		wl_sleep_us(300000);
	}
	close(pfd[1]);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigemptyset(&sa.sa_mask);
	pthread_t th[3];
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || pipe(pfd) != 0 ||
	    pthread_create(&th[0], NULL, sleeper, NULL) || pthread_create(&th[1], NULL, reader, NULL) ||
	    pthread_create(&th[2], NULL, writer, NULL))
		wl_setup_fail("setup");
	while (reads == 0)
		wl_sleep_us(10000);
	pthread_kill(th[0], SIGUSR1); /* exercise the EINTR path once */
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(50000);
	unsigned long s0 = sleeps, r0 = reads;
	for (int i = 0; i < 250 && !wl_has_failed() && (sleeps == s0 || reads == r0); i++)
		wl_sleep_us(10000);
	WL_CHECK(sleeps > s0, "sleeper made no progress after restore (%lu sleeps)", s0);
	WL_CHECK(reads > r0, "reader made no progress after restore (%lu reads)", r0);
	done = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	wl_finish();
}
