/* unix_sockets: a parent and a child joined by a socketpair of each type
 * (stream, datagram, seqpacket) with data queued both ways, and a stream
 * pair both processes hold both ends of (shared across fork) with data
 * queued. Options are set on some ends (SO_SNDBUF, SO_RCVBUF, SO_PASSCRED,
 * SO_PEEK_OFF) and the child shuts down its stream end for writing. At
 * stop each process checks the queued data arrives whole and in order, the
 * options and the end of the stream, and that the datagram pair still
 * carries a new message. The child exits 0 (ok) or 1 (with the reason in
 * CTLDIR/child). */
#include "wl.h"
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static const int types[3] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
static const char *names[3] = { "stream", "dgram", "seqpacket" };
#define MSGS 3

static int opt(int fd, int name)
{
	int v = -2;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, name, &v, &len) != 0)
		return -3;
	return v;
}

/* Message i of direction dir ("p2c"/"c2p") on pair t. */
static int message(char *buf, size_t cap, const char *dir, int t, int i)
{
	return snprintf(buf, cap, "%s-%s-%d-%.*s", dir, names[t], i, i * 7, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

static void send_all(int fd, const char *dir, int t)
{
	char buf[128];
	for (int i = 0; i < MSGS; i++) {
		int n = message(buf, sizeof(buf), dir, t, i);
		if (send(fd, buf, n, 0) != n)
			wl_setup_fail("send");
	}
}

/* Reads what was queued (without waiting) and checks it. */
static void expect_all(int fd, const char *dir, int t)
{
	char want[512], got[512];
	if (types[t] == SOCK_STREAM) {
		int w = 0;
		for (int i = 0; i < MSGS; i++)
			w += message(want + w, sizeof(want) - w, dir, t, i);
		ssize_t n = 0, r;
		while (n < w && (r = recv(fd, got + n, sizeof(got) - n, MSG_DONTWAIT)) > 0)
			n += r;
		WL_CHECK(n == w && memcmp(got, want, w) == 0, "%s %s: %zd of %d queued bytes came back", dir, names[t], n, w);
		return;
	}
	for (int i = 0; i < MSGS; i++) {
		int w = message(want, sizeof(want), dir, t, i);
		ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
		WL_CHECK(n == w && memcmp(got, want, w) == 0, "%s %s message %d: got %zd bytes (want %d): %s", dir, names[t], i, n, w,
			 n < 0 ? strerror(errno) : "different");
	}
}

static void live_message_arrives(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char got[16];
	WL_CHECK(poll(&p, 1, 10000) == 1, "no live datagram after the queued ones");
	ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	WL_CHECK(n == 4 && memcmp(got, "live", 4) == 0, "live datagram: %zd bytes", n);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	int sp[3][2], sh[2];
	for (int t = 0; t < 3; t++)
		if (socketpair(AF_UNIX, types[t], 0, sp[t]) != 0)
			wl_setup_fail("socketpair");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sh) != 0)
		wl_setup_fail("socketpair (shared)");
	int on = 1, sndbuf = 65536, rcvbuf = 32768, zero = 0;
	if (setsockopt(sp[0][0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0 ||
	    setsockopt(sp[1][1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0 ||
	    setsockopt(sp[1][0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0 ||
	    setsockopt(sp[2][0], SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) != 0)
		wl_setup_fail("setsockopt");
	if (send(sh[0], "shared-data", 11, 0) != 11)
		wl_setup_fail("send (shared)");
	for (int t = 0; t < 3; t++)
		send_all(sp[t][0], "p2c", t);
	pid_t kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0) {
		for (int t = 0; t < 3; t++)
			close(sp[t][0]);
		int want_rcvbuf = opt(sp[1][1], SO_RCVBUF);
		for (int t = 0; t < 3; t++)
			send_all(sp[t][1], "c2p", t);
		if (shutdown(sp[0][1], SHUT_WR) != 0)
			_exit(2);
		while (!wl_stop())
			wl_sleep_us(20000);
		for (int t = 0; t < 3; t++)
			expect_all(sp[t][1], "p2c", t);
		WL_CHECK(opt(sp[1][1], SO_RCVBUF) == want_rcvbuf, "child dgram SO_RCVBUF %d, want %d", opt(sp[1][1], SO_RCVBUF), want_rcvbuf);
		live_message_arrives(sp[1][1]);
		if (wl_has_failed()) {
			wl_write_atomic("child", wl_reason);
			_exit(1);
		}
		_exit(0);
	}
	for (int t = 0; t < 3; t++)
		close(sp[t][1]);
	/* Ready once the child's data is queued (and its stream end shut). */
	for (int t = 0; t < 3; t++) {
		struct pollfd p = { sp[t][0], POLLIN, 0 };
		if (poll(&p, 1, 10000) != 1)
			wl_setup_fail("the child's data");
	}
	wl_sleep_us(100000);
	/* Peek at two bytes of the first seqpacket message: SO_PEEK_OFF moves to 2. */
	char peek[2];
	if (recv(sp[2][0], peek, 2, MSG_PEEK) != 2)
		wl_setup_fail("peek");
	int want_sndbuf = opt(sp[0][0], SO_SNDBUF), want_peek = opt(sp[2][0], SO_PEEK_OFF);
	wl_ready();
	while (!wl_stop() && !wl_has_failed())
		wl_sleep_us(20000);
	for (int t = 0; t < 3; t++) {
		WL_CHECK(opt(sp[t][0], SO_TYPE) == types[t], "%s: SO_TYPE %d", names[t], opt(sp[t][0], SO_TYPE));
		WL_CHECK(opt(sp[t][0], SO_DOMAIN) == AF_UNIX, "%s: SO_DOMAIN %d", names[t], opt(sp[t][0], SO_DOMAIN));
	}
	WL_CHECK(opt(sp[0][0], SO_SNDBUF) == want_sndbuf, "stream SO_SNDBUF %d, want %d", opt(sp[0][0], SO_SNDBUF), want_sndbuf);
	WL_CHECK(opt(sp[1][0], SO_PASSCRED) == 1, "dgram SO_PASSCRED %d", opt(sp[1][0], SO_PASSCRED));
	WL_CHECK(want_peek == 2 && opt(sp[2][0], SO_PEEK_OFF) == want_peek, "seqpacket SO_PEEK_OFF %d, want %d", opt(sp[2][0], SO_PEEK_OFF), want_peek);
	int off = 0;
	setsockopt(sp[2][0], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	for (int t = 0; t < 3; t++)
		expect_all(sp[t][0], "c2p", t);
	char c;
	WL_CHECK(recv(sp[0][0], &c, 1, MSG_DONTWAIT) == 0, "the child's stream end is no longer shut down for writing");
	char got[32];
	ssize_t n = recv(sh[1], got, sizeof(got), MSG_DONTWAIT);
	WL_CHECK(n == 11 && memcmp(got, "shared-data", 11) == 0, "shared pair: %zd bytes", n);
	WL_CHECK(send(sp[1][0], "live", 4, 0) == 4, "live datagram: %s", strerror(errno));
	int st = 0;
	if (waitpid(kid, &st, 0) != kid) {
		wl_fail("waitpid: %s", strerror(errno));
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char why[256] = "";
		char path[PATH_MAX];
		wl_read_file(wl_path(path, "child"), why, sizeof(why));
		wl_fail("child: status %d: %s", st, why);
	}
	wl_finish();
}
