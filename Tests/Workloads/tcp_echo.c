/* tcp_echo: an established TCP connection to a peer outside the tree,
 * carrying bytes both ways all the time.
 *
 * At start the workload double-forks an echo peer (so the peer is not its
 * descendant: it is reparented away), which listens on 127.0.0.1, accepts
 * one connection and echoes every byte back; the workload connects to it.
 * Then it sends an 8-byte counter, waits for it to come back, checks it,
 * sends the next (every ~10 ms). A recv or send error (EPERM or EINVAL of
 * a socket left in TCP_REPAIR mode), a wrong echo, the peer closing, or 50
 * polls of 200 ms in a row without the echo (10 s of running, time frozen
 * by a checkpoint not counted) is a failure.
 *
 * The peer's pid is in CTLDIR/peer. It writes the number of messages it echoed to CTLDIR/echoed
 * (20 digits, rewritten in place): a test sees the connection carry data
 * by that number growing. The peer leaves when the connection ends (the
 * workload exits or its socket is closed), or after 120 s without data
 * (the workload was checkpointed and never restored), or when CTLDIR/stop
 * has existed for 10 s with no data. */
#include "wl.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void peer(int l)
{
	int c = accept(l, NULL, NULL);
	close(l);
	if (c < 0)
		_exit(1);
	char p[PATH_MAX];
	int out = open(wl_path(p, "echoed"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	unsigned long long echoed = 0;
	int idle = 0, stopped = 0;
	for (;;) {
		struct pollfd pf = { .fd = c, .events = POLLIN };
		int n = poll(&pf, 1, 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			idle++;
			if (wl_stop())
				stopped++;
			if (idle >= 120 || stopped >= 10)
				_exit(0);
			continue;
		}
		idle = stopped = 0;
		char buf[4096];
		ssize_t r = recv(c, buf, sizeof(buf), 0);
		if (r <= 0)
			_exit(0);
		if (wl_write_all(c, buf, (size_t)r) != 0)
			_exit(0);
		echoed += (unsigned long long)r / 8;
		char line[32];
		snprintf(line, sizeof(line), "%020llu\n", echoed);
		if (out >= 0)
			(void)!pwrite(out, line, 21, 0);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) != 0)
		wl_setup_fail("listen for the peer");
	pid_t mid = fork();
	if (mid < 0)
		wl_setup_fail("fork");
	if (mid == 0) {
		setsid();
		pid_t p = fork();
		if (p == 0)
			peer(l);
		char line[32];
		snprintf(line, sizeof(line), "%d\n", (int)p);
		_exit(p < 0 || wl_write_atomic("peer", line) != 0 ? 1 : 0);
	}
	int st = 0;
	if (waitpid(mid, &st, 0) != mid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_setup_fail("start the peer");
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		wl_setup_fail("connect to the peer");
	close(l);
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	wl_ready();

	uint64_t next = 1, got_value = 0;
	size_t got = 0;
	int waiting = 0, misses = 0;
	unsigned char buf[8];
	while (!wl_stop() || waiting) {
		if (wl_has_failed())
			break;
		if (!waiting) {
			memcpy(buf, &next, 8);
			ssize_t n = send(s, buf, 8, MSG_NOSIGNAL);
			if (n != 8) {
				wl_fail("send of message %llu: %s", (unsigned long long)next, n < 0 ? strerror(errno) : "short");
				break;
			}
			waiting = 1;
			got = 0;
			misses = 0;
		}
		struct pollfd pf = { .fd = s, .events = POLLIN };
		int pr = poll(&pf, 1, 200);
		ssize_t r = recv(s, (char *)&got_value + got, 8 - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (pr == 0 && ++misses >= 50) {
				wl_fail("no echo of message %llu for 50 polls of 200 ms", (unsigned long long)next);
				break;
			}
			continue;
		}
		if (r < 0) {
			wl_fail("recv of the echo of message %llu: %s", (unsigned long long)next, strerror(errno));
			break;
		}
		if (r == 0) {
			wl_fail("the peer closed the connection at message %llu", (unsigned long long)next);
			break;
		}
		got += (size_t)r;
		if (got < 8)
			continue;
		if (got_value != next) {
			wl_fail("echo %llu where %llu was sent", (unsigned long long)got_value, (unsigned long long)next);
			break;
		}
		next++;
		waiting = 0;
		got_value = 0;
		wl_sleep_us(10000);
	}
	if (!wl_has_failed() && next < 2)
		wl_fail("no message went both ways");
	close(s);
	wl_finish();
}
