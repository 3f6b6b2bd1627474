/* signals: SIGUSR1 has an SA_SIGINFO|SA_RESTART handler with sa_mask
 * {SIGHUP, SIGWINCH}; SIGPIPE is ignored; SIGUSR2 is blocked and was raised
 * before ready, so it stays pending. The loop checks the dispositions, the
 * mask and the pending set, and queues SIGUSR1 to itself with a value. At
 * stop: SIGUSR2 must still be pending; SIGUSR1 is queued once more (the
 * handler checks si_code, si_value and that sa_mask is in effect); then
 * SIGUSR2 is unblocked and its handler must run. */
#include "wl.h"
#include <signal.h>

static volatile sig_atomic_t usr1_runs, usr1_bad, usr2_runs;
static volatile int usr1_value;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;
	(void)uc;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (sig != SIGUSR1 || si->si_signo != SIGUSR1 || si->si_code != SI_QUEUE ||
	    si->si_value.sival_int != usr1_value || si->si_pid != getpid())
		usr1_bad = 1;
	if (!sigismember(&cur, SIGHUP) || !sigismember(&cur, SIGWINCH) || !sigismember(&cur, SIGUSR1))
		usr1_bad = 2;
	usr1_runs++;
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2_runs++;
}

static void check_state(void)
{
	struct sigaction sa;
	sigset_t s;
	sigaction(SIGUSR1, NULL, &sa);
	WL_CHECK(sa.sa_sigaction == on_usr1, "SIGUSR1 handler changed");
	WL_CHECK((sa.sa_flags & (SA_SIGINFO | SA_RESTART)) == (SA_SIGINFO | SA_RESTART),
		 "SIGUSR1 flags %#x lack SA_SIGINFO|SA_RESTART", sa.sa_flags);
	WL_CHECK(sigismember(&sa.sa_mask, SIGHUP) && sigismember(&sa.sa_mask, SIGWINCH) &&
		 !sigismember(&sa.sa_mask, SIGTERM), "SIGUSR1 sa_mask changed");
	sigaction(SIGPIPE, NULL, &sa);
	WL_CHECK(sa.sa_handler == SIG_IGN, "SIGPIPE no longer ignored");
	sigaction(SIGUSR2, NULL, &sa);
	WL_CHECK(sa.sa_handler == on_usr2, "SIGUSR2 handler changed");
	sigprocmask(SIG_BLOCK, NULL, &s);
	WL_CHECK(sigismember(&s, SIGUSR2) && !sigismember(&s, SIGUSR1), "signal mask changed");
	sigpending(&s);
	WL_CHECK(sigismember(&s, SIGUSR2), "SIGUSR2 no longer pending");
	WL_CHECK(usr2_runs == 0, "SIGUSR2 handler ran while blocked");
	WL_CHECK(usr1_bad == 0, "SIGUSR1 handler saw wrong %s", usr1_bad == 1 ? "siginfo" : "mask");
}

static void send_usr1(void)
{
	int before = usr1_runs;
	usr1_value++;
	sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = usr1_value });
	WL_CHECK(usr1_runs == before + 1, "SIGUSR1 handler did not run (%d runs)", before);
}

static void step(void)
{
	check_state();
	send_usr1();
}

static void final(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &s, NULL);
	WL_CHECK(usr2_runs == 1, "pending SIGUSR2 delivered %d times on unblock", usr2_runs);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGHUP);
	sigaddset(&sa.sa_mask, SIGWINCH);
	struct sigaction s2 = { .sa_handler = on_usr2 };
	sigset_t blk;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR2);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &s2, NULL) ||
	    signal(SIGPIPE, SIG_IGN) == SIG_ERR || sigprocmask(SIG_BLOCK, &blk, NULL))
		wl_setup_fail("signal setup");
	raise(SIGUSR2);
	check_state();
	wl_ready();
	wl_loop(step, final, 10000);
}
