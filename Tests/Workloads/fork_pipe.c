/* fork_pipe: a ring of pipes parent -> child1 -> child2 -> parent with 4
 * sequence numbers always in flight. Each process checks it receives
 * 0,1,2,... with no gap; children exit with status 0 (ok), 1 (gap) or 2
 * (I/O error). At stop the parent stops sending, drains the ring, closes
 * its end (EOF ripples through), and collects the children's statuses. */
#include "wl.h"
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#define INFLIGHT 4

static int get(int fd, uint64_t *v)
{
	ssize_t n;
	do
		n = read(fd, v, sizeof(*v));
	while (n < 0 && errno == EINTR);
	return n == sizeof(*v) ? 1 : n == 0 ? 0 : -1;
}

/* Child: forward numbers from in to out, checking continuity. */
static void relay(int in, int out)
{
	uint64_t v, want = 0;
	int r;
	while ((r = get(in, &v)) == 1) {
		if (v != want++)
			_exit(1);
		if (wl_write_all(out, &v, sizeof(v)) != 0)
			_exit(2);
	}
	_exit(r == 0 ? 0 : 2);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	int p[3][2]; /* p[0]: parent->c1, p[1]: c1->c2, p[2]: c2->parent */
	for (int i = 0; i < 3; i++)
		if (pipe(p[i]) != 0)
			wl_setup_fail("pipe");
	pid_t kid[2];
	for (int k = 0; k < 2; k++) {
		kid[k] = fork();
		if (kid[k] < 0)
			wl_setup_fail("fork");
		if (kid[k] == 0) {
			int in = p[k][0], out = p[k + 1][1];
			for (int i = 0; i < 3; i++)
				for (int j = 0; j < 2; j++)
					if (p[i][j] != in && p[i][j] != out)
						close(p[i][j]);
			relay(in, out);
		}
	}
	int out = p[0][1], in = p[2][0];
	close(p[0][0]); close(p[1][0]); close(p[1][1]); close(p[2][1]);
	uint64_t sent = 0, want = 0, v;
	for (; sent < INFLIGHT; sent++)
		if (wl_write_all(out, &sent, sizeof(sent)) != 0)
			wl_setup_fail("write");
	wl_ready();
	int stopping = 0;
	while (!wl_has_failed()) {
		if (!stopping && wl_stop()) {
			stopping = 1;
			close(out);
		}
		struct pollfd pfd = { in, POLLIN, 0 };
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		int r = get(in, &v);
		if (r == 0)
			break; /* EOF: the ring is drained */
		WL_CHECK(r == 1, "read from ring: %s", strerror(errno));
		WL_CHECK(r != 1 || v == want, "parent got %lu, want %lu", (unsigned long)v, (unsigned long)want);
		want++;
		if (!stopping) {
			wl_sleep_us(500);
			WL_CHECK(wl_write_all(out, &sent, sizeof(sent)) == 0, "write to ring: %s", strerror(errno));
			sent++;
		}
	}
	if (!stopping)
		close(out);
	WL_CHECK(want == sent, "sent %lu numbers, %lu came back", (unsigned long)sent, (unsigned long)want);
	for (int k = 0; k < 2; k++) {
		int st = 0;
		if (waitpid(kid[k], &st, 0) != kid[k])
			wl_fail("waitpid child %d: %s", k + 1, strerror(errno));
		else
			WL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: %s %d", k + 1,
				 WIFEXITED(st) ? "exit status" : "killed by signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	wl_finish();
}
