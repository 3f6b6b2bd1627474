/* itimer: ITIMER_REAL fires every 50 ms and SIGALRM's handler counts. The
 * loop checks getitimer() still reports a 50 ms interval. At stop (after
 * restore) the counter must keep increasing: 2..12 ticks in 300 ms. */
#include "wl.h"
#include <signal.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

static void step(void)
{
	struct itimerval it;
	WL_CHECK(getitimer(ITIMER_REAL, &it) == 0 && it.it_interval.tv_sec == 0 &&
		 it.it_interval.tv_usec == 50000, "ITIMER_REAL interval now %ld.%06ld",
		 (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec);
	WL_CHECK(it.it_value.tv_sec > 0 || it.it_value.tv_usec > 0, "ITIMER_REAL disarmed");
}

static void final(void)
{
	int before = ticks;
	wl_sleep_us(300000);
	int n = ticks - before;
	WL_CHECK(n >= 2 && n <= 12, "%d SIGALRM ticks in 300 ms after restore, want 2..12", n);
	struct sigaction sa;
	sigaction(SIGALRM, NULL, &sa);
	WL_CHECK(sa.sa_handler == on_alarm, "SIGALRM handler changed");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	struct itimerval it = { { 0, 50000 }, { 0, 50000 } };
	if (sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &it, NULL) != 0)
		wl_setup_fail("setitimer");
	while (ticks < 2)
		wl_sleep_us(10000);
	wl_ready();
	wl_loop(step, final, 10000);
}
