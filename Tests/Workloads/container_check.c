/* container_check: run inside a container (own pid, uts, … namespaces, in
 * a cgroup with limits). Checks that the hostname (uname) and getpid() stay
 * what they were at start. Args: HOG (1 = burn CPU in the main loop, so a
 * CPU quota can be measured from outside; 0 = nap), MIB (at stop, a child
 * allocates and touches MIB MiB: with a memory limit below that it must be
 * OOM-killed or fail to allocate; 0 = no such check), RES (0: MiB of
 * patterned anonymous memory kept resident and verified at stop, so a
 * restore has something to charge to the memory cgroup). */
#include "wl.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>

static pid_t pid0;
static char host0[65];

static void check(void)
{
	struct utsname u;
	WL_CHECK(uname(&u) == 0, "uname: %s", strerror(errno));
	WL_CHECK(strcmp(u.nodename, host0) == 0, "hostname changed \"%s\" -> \"%s\"", host0, u.nodename);
	WL_CHECK(getpid() == pid0, "getpid changed %d -> %d", pid0, getpid());
}

/* 0: the allocation was stopped (OOM kill or ENOMEM); else what happened. */
static void memory_hog(long mib)
{
	pid_t c = fork();
	if (c < 0) {
		wl_fail("fork for the memory hog: %s", strerror(errno));
		return;
	}
	if (c == 0) {
		size_t len = (size_t)mib << 20;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(3);
		for (size_t i = 0; i < len; i += 4096)
			p[i] = 1;
		_exit(0);
	}
	int st = 0;
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		wl_fail("a %ld MiB allocation succeeded: no memory limit in force", mib);
	else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
		wl_fail("the memory hog died of signal %d, not an OOM kill", WTERMSIG(st));
	else if (WIFEXITED(st) && WEXITSTATUS(st) != 3)
		wl_fail("the memory hog exited %d", WEXITSTATUS(st));
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	long hog = wl_arg(argc, argv, 2, 0), mib = wl_arg(argc, argv, 3, 0), res = wl_arg(argc, argv, 4, 0);
	size_t res_len = (size_t)res << 20;
	void *resident = NULL;
	if (res > 0) {
		resident = mmap(NULL, res_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (resident == MAP_FAILED)
			wl_setup_fail("mmap resident");
		wl_fill(resident, res_len, 0xc0ffee);
	}
	struct utsname u;
	if (uname(&u) != 0)
		wl_setup_fail("uname");
	snprintf(host0, sizeof(host0), "%s", u.nodename);
	pid0 = getpid();
	wl_ready();
	uint64_t next = 0;
	volatile uint64_t spin = 0;
	for (;;) {
		uint64_t now = wl_now_ns(CLOCK_MONOTONIC);
		if (now >= next) {
			if (wl_stop())
				break;
			check();
			next = now + 20 * 1000000ull;
		}
		if (hog) {
			for (int i = 0; i < 100000; i++)
				spin++;
		} else {
			wl_sleep_us(5000);
		}
	}
	check();
	if (resident != NULL) {
		long bad = wl_verify(resident, res_len, 0xc0ffee);
		WL_CHECK(bad < 0, "resident memory word %ld changed", bad);
	}
	if (mib > 0)
		memory_hog(mib);
	wl_finish();
}
