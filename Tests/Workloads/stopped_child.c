/* stopped_child: two children in a group stop — one by SIGSTOP, one by
 * SIGTSTP (default action) — each counting in a shared page while it runs.
 * Each step checks that each has a stop report with its signal pending for
 * the parent (waitid WNOWAIT) and that neither count moves.
 * At stop the parent's waitpid(WUNTRACED) must report each stopped by its
 * own signal (the stop was reported before the checkpoint and consumed
 * with WNOWAIT only, zdtm stopped), then SIGCONT lets them count again and
 * exit. Each child leads its own process group. */
#include "wl.h"
#include <sys/mman.h>

static volatile long *counts;
static pid_t kids[2];
static const int sigs[2] = { SIGSTOP, SIGTSTP };
static long frozen[2];

/* The child's pending stop report, left in place (WNOWAIT): 0 when there is none. */
static int stop_report(pid_t pid)
{
	siginfo_t info;
	memset(&info, 0, sizeof info);
	if (waitid(P_PID, (id_t)pid, &info, WSTOPPED | WNOWAIT | WNOHANG) != 0 || info.si_pid != pid || info.si_code != CLD_STOPPED)
		return 0;
	return info.si_status;
}

static void step(void)
{
	for (int i = 0; i < 2; i++) {
		WL_CHECK(stop_report(kids[i]) == sigs[i], "child %d: its stop report says signal %d, want %d", i, stop_report(kids[i]), sigs[i]);
		WL_CHECK(counts[i] == frozen[i], "child %d counted while stopped (%ld, was %ld)", i, counts[i], frozen[i]);
	}
}

static void final(void)
{
	for (int i = 0; i < 2; i++) {
		int st = 0;
		pid_t r = waitpid(kids[i], &st, WUNTRACED | WNOHANG);
		WL_CHECK(r == kids[i] && WIFSTOPPED(st) && WSTOPSIG(st) == sigs[i],
			 "child %d: waitpid(WUNTRACED) gave %d, status %#x (want stopped by %d)", i, (int)r, st, sigs[i]);
		kill(kids[i], SIGCONT);
	}
	uint64_t until = wl_now_ns(CLOCK_MONOTONIC) + 5000000000ull;
	while ((counts[0] == frozen[0] || counts[1] == frozen[1]) && wl_now_ns(CLOCK_MONOTONIC) < until)
		wl_sleep_us(1000);
	WL_CHECK(counts[0] != frozen[0] && counts[1] != frozen[1], "a child did not run again after SIGCONT");
	for (int i = 0; i < 2; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		wl_setup_fail("mmap");
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			wl_setup_fail("fork");
		/* Each child leads a process group of its own, which is not orphaned
		 * (its parent is in another group of the same session): SIGTSTP
		 * stops a member of an orphaned group no more. */
		if (kids[i] == 0 && setpgid(0, 0) == 0)
			for (;;) {
				counts[i]++;
				wl_sleep_us(100);
			}
		setpgid(kids[i], kids[i]);
		while (counts[i] == 0)
			wl_sleep_us(100);
		siginfo_t info;
		if (kill(kids[i], sigs[i]) || waitid(P_PID, kids[i], &info, WSTOPPED | WNOWAIT))
			wl_setup_fail("stop a child");
		frozen[i] = counts[i];
	}
	wl_ready();
	wl_loop(step, final, 1000);
}
