/* sessions: session ids and process groups survive the restore. The root
 * leads its session (launch.py starts it with setsid); child A leads a group
 * of its own, child B joins A's group, child C leads a session of its own,
 * and C's child D stays in C's session and group. The root checks every id
 * before and after. */
#include "wl.h"
#include <signal.h>
#include <sys/wait.h>

static pid_t a, b, c, d;
static int dpipe[2];

static void sleeper(void)
{
	for (;;)
		pause();
}

static void check(void)
{
	pid_t me = getpid();
	WL_CHECK(getsid(0) == me, "root: session %d, want %d", getsid(0), me);
	WL_CHECK(getpgid(0) == me, "root: group %d, want %d", getpgid(0), me);
	WL_CHECK(getpgid(a) == a, "A: group %d, want %d", getpgid(a), a);
	WL_CHECK(getsid(a) == me, "A: session %d, want %d", getsid(a), me);
	WL_CHECK(getpgid(b) == a, "B: group %d, want A %d", getpgid(b), a);
	WL_CHECK(getsid(c) == c, "C: session %d, want %d", getsid(c), c);
	WL_CHECK(getpgid(c) == c, "C: group %d, want %d", getpgid(c), c);
	WL_CHECK(getsid(d) == c, "D: session %d, want C %d", getsid(d), c);
	WL_CHECK(getpgid(d) == c, "D: group %d, want C %d", getpgid(d), c);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	if (getsid(0) != getpid())
		wl_setup_fail("not a session leader (start it with setsid)");
	if ((a = fork()) == 0) {
		setpgid(0, 0);
		sleeper();
	}
	setpgid(a, a);
	if ((b = fork()) == 0) {
		setpgid(0, a);
		sleeper();
	}
	setpgid(b, a);
	if (pipe(dpipe) != 0)
		wl_setup_fail("pipe");
	if ((c = fork()) == 0) {
		setsid();
		pid_t dd = fork();
		if (dd == 0)
			sleeper();
		if (write(dpipe[1], &dd, sizeof(dd)) != sizeof(dd))
			_exit(2);
		sleeper();
	}
	if (read(dpipe[0], &d, sizeof(d)) != sizeof(d))
		wl_setup_fail("read D's pid");
	close(dpipe[0]);
	close(dpipe[1]);
	while (getsid(c) != c || getpgid(b) != a)
		wl_sleep_us(1000);
	check();
	if (wl_has_failed())
		wl_setup_fail("ids wrong before the checkpoint");
	wl_ready();
	while (!wl_stop()) {
		check();
		wl_sleep_us(10000);
	}
	check();
	kill(d, SIGKILL);
	kill(c, SIGKILL);
	kill(b, SIGKILL);
	kill(a, SIGKILL);
	while (wait(NULL) > 0)
		;
	wl_finish();
}
