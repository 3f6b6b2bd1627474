/* fdt_shared: processes sharing one descriptor table (clone with
 * CLONE_FILES, not CLONE_VM). The parent holds a pipe with "hello" in it
 * and a shared page; it clones a child with CLONE_FILES (the table is
 * shared) and forks another (a copy of the table). After a restore, at
 * stop, the parent dup2's the pipe's write end to fd 100: the sharing child
 * must see fd 100, read "hello" from the pipe and close the read end; the
 * parent must then find the read end closed (the same table), and the
 * forked child must not see fd 100 (a table of its own). */
#define _GNU_SOURCE
#include "wl.h"
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define NEWFD 100

struct page {
	volatile int phase; /* 1: parent made NEWFD; 2, 3: children done */
	char why[2][200];
};

static struct page *pg;
static int pfd[2];

static int sharer(void *arg)
{
	(void)arg;
	while (pg->phase < 1)
		wl_sleep_us(1000);
	char buf[8] = "";
	if (fcntl(NEWFD, F_GETFD) < 0)
		snprintf(pg->why[0], sizeof(pg->why[0]), "sharing child: fd %d opened by the parent is not in its table (%s)", NEWFD, strerror(errno));
	else if (read(pfd[0], buf, 5) != 5 || memcmp(buf, "hello", 5) != 0)
		snprintf(pg->why[0], sizeof(pg->why[0]), "sharing child: the pipe read \"%.5s\", not hello", buf);
	else if (close(pfd[0]) != 0)
		snprintf(pg->why[0], sizeof(pg->why[0]), "sharing child: close of the read end: %s", strerror(errno));
	return pg->why[0][0] ? 1 : 0;
}

static void own(void)
{
	while (pg->phase < 1)
		wl_sleep_us(1000);
	if (fcntl(NEWFD, F_GETFD) >= 0)
		snprintf(pg->why[1], sizeof(pg->why[1]), "forked child: fd %d of the parent's table is in its own", NEWFD);
	else if (fcntl(pfd[0], F_GETFD) < 0)
		snprintf(pg->why[1], sizeof(pg->why[1]), "forked child: its copy of the pipe's read end is gone");
	_exit(pg->why[1][0] ? 1 : 0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pg == MAP_FAILED || pipe(pfd) != 0 || write(pfd[1], "hello", 5) != 5)
		wl_setup_fail("page or pipe");
	static char stack[64 << 10] __attribute__((aligned(16)));
	pid_t a = clone(sharer, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (a < 0)
		wl_setup_fail("clone(CLONE_FILES)");
	pid_t b = fork();
	if (b < 0)
		wl_setup_fail("fork");
	if (b == 0)
		own();
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(10000);
	WL_CHECK(dup2(pfd[1], NEWFD) == NEWFD, "dup2: %s", strerror(errno));
	pg->phase = 1;
	int st = 0;
	pid_t r = wl_wait_child(a, 3000000000ull, &st);
	if (r != a || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("sharing child ended with 0x%x (%d): %s", st, (int)r, pg->why[0]);
	else if (fcntl(pfd[0], F_GETFD) >= 0)
		wl_fail("the read end the sharing child closed is still in the parent's table: not one table");
	r = wl_wait_child(b, 3000000000ull, &st);
	if (r != b || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("forked child ended with 0x%x (%d): %s", st, (int)r, pg->why[1]);
	wl_finish();
}
