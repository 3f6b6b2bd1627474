/* inet_sockets: TCP listeners and UDP sockets with options, one listener
 * shared with a forked child.
 *
 *   - l4: TCP 127.0.0.1:ephemeral, backlog 7, SO_REUSEADDR, TCP_NODELAY,
 *     SO_KEEPALIVE + TCP_KEEPIDLE 77 / KEEPINTVL 13 / KEEPCNT 4,
 *     SO_RCVBUF 65536, O_NONBLOCK; also held by the child (one socket,
 *     two processes).
 *   - l6: TCP [::1]:ephemeral, IPV6_V6ONLY on, SO_REUSEPORT, TCP_DEFER_ACCEPT 5.
 *   - ld: TCP [::]:ephemeral dual-stack (IPV6_V6ONLY off), SO_SNDBUF 32768,
 *     SO_LINGER on with 9 s.
 *   - u4: UDP 127.0.0.1:ephemeral, SO_BROADCAST; uc: UDP connected to u4.
 *   - u6: UDP [::1]:ephemeral, IPV6_UNICAST_HOPS 9, a classic socket
 *     filter (SO_ATTACH_FILTER) that drops 7-byte datagrams, locked with
 *     SO_LOCK_FILTER.
 *
 * At stop (after restore): every socket has its address, port, state and
 * options; each listener accepts a connection made to it then (ld through
 * IPv4, which needs V6ONLY off) and echoes bytes; datagrams go uc → u4,
 * u4 → uc, and to u6. The child checks its copy of l4 the same way.
 *
 * Modes (argv[2]): "pending" leaves a connection in l4's accept queue,
 * which the checkpoint must refuse by name; "established" accepts it and
 * keeps both ends with unread bytes in each direction (the server end with
 * SO_LINGER on, 3 s): after restore they are read, the linger is there, and
 * the connection carries bytes both ways. */
#include "wl.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/wait.h>

struct opt { int level, name, value; const char *label; };

static void set_linger(int fd, int seconds)
{
	struct linger l = { 1, seconds };
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) != 0)
		wl_setup_fail("SO_LINGER");
}

/* Drops a datagram of 7 bytes (the filter sees the UDP header too: 15). */
static struct sock_filter drop7[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 15, 0, 1),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, 0xffff),
};

static void check_filter(const char *who, int fd)
{
	struct sock_filter got[8];
	socklen_t n = 8;
	int locked = 0;
	socklen_t l = sizeof(locked);
	WL_CHECK(getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, got, &n) == 0 && n == sizeof(drop7) / sizeof(drop7[0]) && memcmp(got, drop7, sizeof(drop7)) == 0,
		 "%s: socket filter lost or changed (%u instructions)", who, (unsigned)n);
	WL_CHECK(getsockopt(fd, SOL_SOCKET, SO_LOCK_FILTER, &locked, &l) == 0 && locked == 1, "%s: SO_LOCK_FILTER lost", who);
}

static void check_linger(const char *who, int fd, int seconds)
{
	struct linger l = { 0, 0 };
	socklen_t len = sizeof(l);
	WL_CHECK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 && l.l_onoff && l.l_linger == seconds,
		 "%s: SO_LINGER is %d/%d, was on/%d", who, l.l_onoff, l.l_linger, seconds);
}

static int l4, l6, ld, u4, uc, u6;
static struct sockaddr_storage a_l4, a_l6, a_ld, a_u4, a_uc, a_u6;
static pid_t child;

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, level, name, &v, &len) != 0)
		return -12345;
	return v;
}

static void setopts(int fd, const struct opt *o, int n)
{
	for (int i = 0; i < n; i++)
		if (setsockopt(fd, o[i].level, o[i].name, &o[i].value, sizeof(int)) != 0)
			wl_setup_fail(o[i].label);
}

/* Options as read back after setting (buffers read doubled). */
static int want[6][12];

static void record(int which, int fd, const struct opt *o, int n)
{
	for (int i = 0; i < n; i++)
		want[which][i] = getint(fd, o[i].level, o[i].name);
}

static void check_opts(const char *who, int which, int fd, const struct opt *o, int n)
{
	for (int i = 0; i < n; i++) {
		int v = getint(fd, o[i].level, o[i].name);
		WL_CHECK(v == want[which][i], "%s: %s is %d, was %d", who, o[i].label, v, want[which][i]);
	}
}

static const struct opt o_l4[] = {
	{ SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR" }, { IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY" },
	{ SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE" }, { IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE" },
	{ IPPROTO_TCP, TCP_KEEPINTVL, 13, "TCP_KEEPINTVL" }, { IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT" },
	{ SOL_SOCKET, SO_RCVBUF, 65536, "SO_RCVBUF" },
};
static const struct opt o_l6[] = {
	{ IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY" }, { SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT" },
	{ IPPROTO_TCP, TCP_DEFER_ACCEPT, 5, "TCP_DEFER_ACCEPT" },
};
static const struct opt o_ld[] = {
	{ IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY" }, { SOL_SOCKET, SO_SNDBUF, 32768, "SO_SNDBUF" },
};
static const struct opt o_u4[] = { { SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST" } };
static const struct opt o_u6[] = { { IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9, "IPV6_UNICAST_HOPS" } };
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int make(int family, int type, const struct opt *o, int n, const char *addr, struct sockaddr_storage *out)
{
	int fd = socket(family, type, 0);
	if (fd < 0)
		wl_setup_fail("socket");
	setopts(fd, o, n);
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *s = (void *)&ss;
		s->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s->sin_addr);
		len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (void *)&ss;
		s->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s->sin6_addr);
		len = sizeof(*s);
	}
	if (bind(fd, (void *)&ss, len) != 0)
		wl_setup_fail("bind");
	len = sizeof(*out);
	getsockname(fd, (void *)out, &len);
	return fd;
}

static int same_name(int fd, const struct sockaddr_storage *want_ss)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (void *)&ss, &len) != 0)
		return 0;
	return memcmp(&ss, want_ss, len) == 0;
}

static int port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((struct sockaddr_in *)ss)->sin_port : ((struct sockaddr_in6 *)ss)->sin6_port);
}

/* Connects to the listener `l` (at `to`, or 127.0.0.1:its port when v4),
 * accepts, and sends bytes both ways. */
static void serve_once(const char *who, int l, const struct sockaddr_storage *to, int v4)
{
	struct sockaddr_storage dst = *to;
	socklen_t len = to->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (v4) {
		struct sockaddr_in *s = (void *)&dst;
		int port = port_of(to);
		memset(&dst, 0, sizeof(dst));
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		inet_pton(AF_INET, "127.0.0.1", &s->sin_addr);
		len = sizeof(*s);
	}
	int c = socket(dst.ss_family, SOCK_STREAM, 0);
	if (connect(c, (void *)&dst, len) != 0) {
		wl_fail("%s: connect: %s", who, strerror(errno));
		close(c);
		return;
	}
	/* TCP_DEFER_ACCEPT: the server sees the connection once data arrives. */
	WL_CHECK(write(c, "ping", 4) == 4, "%s: write: %s", who, strerror(errno));
	struct pollfd p = { l, POLLIN, 0 };
	WL_CHECK(poll(&p, 1, 5000) == 1, "%s: no connection to accept", who);
	int a = accept(l, NULL, NULL);
	if (a < 0) {
		wl_fail("%s: accept: %s", who, strerror(errno));
		close(c);
		return;
	}
	char buf[8] = { 0 };
	WL_CHECK(read(a, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0, "%s: server read", who);
	WL_CHECK(write(a, "pong", 4) == 4, "%s: server write", who);
	WL_CHECK(read(c, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0, "%s: client read", who);
	close(a);
	close(c);
}

static void check_listener(const char *who, int fd, const struct sockaddr_storage *ss, int backlog)
{
	WL_CHECK(same_name(fd, ss), "%s: bound elsewhere now (port was %d)", who, port_of(ss));
	WL_CHECK(getint(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1, "%s: not listening", who);
	/* A listener's tcpi_sacked is its backlog. */
	struct tcp_info ti = { 0 };
	socklen_t len = sizeof(ti);
	WL_CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && (int)ti.tcpi_sacked == backlog,
		 "%s: backlog %u, want %d", who, ti.tcpi_sacked, backlog);
}

static void udp_roundtrip(void)
{
	WL_CHECK(same_name(u4, &a_u4), "u4: bound elsewhere now");
	WL_CHECK(same_name(uc, &a_uc), "uc: bound elsewhere now");
	WL_CHECK(same_name(u6, &a_u6), "u6: bound elsewhere now");
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	WL_CHECK(getpeername(uc, (void *)&peer, &len) == 0 && memcmp(&peer, &a_u4, sizeof(struct sockaddr_in)) == 0,
		 "uc: no longer connected to u4");
	char buf[16];
	WL_CHECK(send(uc, "dgram1", 6, 0) == 6, "uc: send: %s", strerror(errno));
	struct pollfd p = { u4, POLLIN, 0 };
	WL_CHECK(poll(&p, 1, 2000) == 1, "u4: nothing received");
	struct sockaddr_storage from;
	len = sizeof(from);
	ssize_t n = recvfrom(u4, buf, sizeof(buf), MSG_DONTWAIT, (void *)&from, &len);
	WL_CHECK(n == 6 && memcmp(buf, "dgram1", 6) == 0, "u4: got %zd bytes", n);
	WL_CHECK(sendto(u4, "dgram2", 6, 0, (void *)&from, len) == 6, "u4: sendto: %s", strerror(errno));
	struct pollfd q = { uc, POLLIN, 0 };
	WL_CHECK(poll(&q, 1, 2000) == 1, "uc: nothing received");
	n = recv(uc, buf, sizeof(buf), MSG_DONTWAIT);
	WL_CHECK(n == 6 && memcmp(buf, "dgram2", 6) == 0, "uc: got %zd bytes", n);
	int s = socket(AF_INET6, SOCK_DGRAM, 0);
	/* u6's filter drops this one: without it, it would be read first. */
	WL_CHECK(sendto(s, "dropped", 7, 0, (void *)&a_u6, sizeof(struct sockaddr_in6)) == 7, "to u6: %s", strerror(errno));
	WL_CHECK(sendto(s, "dgram3", 6, 0, (void *)&a_u6, sizeof(struct sockaddr_in6)) == 6, "to u6: %s", strerror(errno));
	close(s);
	struct pollfd r = { u6, POLLIN, 0 };
	WL_CHECK(poll(&r, 1, 2000) == 1, "u6: nothing received");
	n = recv(u6, buf, sizeof(buf), MSG_DONTWAIT);
	WL_CHECK(n == 6 && memcmp(buf, "dgram3", 6) == 0, "u6: got %zd bytes", n);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	const char *mode = argc > 2 ? argv[2] : "";
	l4 = make(AF_INET, SOCK_STREAM, o_l4, N(o_l4), "127.0.0.1", &a_l4);
	l6 = make(AF_INET6, SOCK_STREAM, o_l6, N(o_l6), "::1", &a_l6);
	ld = make(AF_INET6, SOCK_STREAM, o_ld, N(o_ld), "::", &a_ld);
	if (listen(l4, 7) || listen(l6, 16) || listen(ld, 128))
		wl_setup_fail("listen");
	set_linger(ld, 9);
	fcntl(l4, F_SETFL, fcntl(l4, F_GETFL) | O_NONBLOCK);
	u4 = make(AF_INET, SOCK_DGRAM, o_u4, N(o_u4), "127.0.0.1", &a_u4);
	uc = make(AF_INET, SOCK_DGRAM, NULL, 0, "127.0.0.1", &a_uc);
	if (connect(uc, (void *)&a_u4, sizeof(struct sockaddr_in)) != 0)
		wl_setup_fail("connect uc");
	u6 = make(AF_INET6, SOCK_DGRAM, o_u6, N(o_u6), "::1", &a_u6);
	struct sock_fprog prog = { N(drop7), drop7 };
	int one = 1;
	if (setsockopt(u6, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0 ||
	    setsockopt(u6, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)) != 0)
		wl_setup_fail("socket filter");
	record(0, l4, o_l4, N(o_l4));
	record(1, l6, o_l6, N(o_l6));
	record(2, ld, o_ld, N(o_ld));
	record(3, u4, o_u4, N(o_u4));
	record(4, u6, o_u6, N(o_u6));
	int keep[2] = { -1, -1 };
	if (strcmp(mode, "pending") == 0 || strcmp(mode, "established") == 0) {
		keep[0] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(keep[0], (void *)&a_l4, sizeof(struct sockaddr_in)) != 0)
			wl_setup_fail("connect to l4");
		if (strcmp(mode, "established") == 0) {
			struct pollfd p = { l4, POLLIN, 0 };
			poll(&p, 1, 2000);
			keep[1] = accept(l4, NULL, NULL);
			if (keep[1] < 0)
				wl_setup_fail("accept");
			set_linger(keep[1], 3);
			/* Bytes left unread at each end (receive queues). */
			if (write(keep[0], "before", 6) != 6 || write(keep[1], "hello", 5) != 5)
				wl_setup_fail("write on the connection");
		}
	}
	child = fork();
	if (child < 0)
		wl_setup_fail("fork");
	if (child == 0) {
		/* The child holds l4 (and the rest) too; it checks its l4 at stop. */
		while (!wl_stop())
			wl_sleep_us(20000);
		check_listener("child l4", l4, &a_l4, 7);
		check_opts("child l4", 0, l4, o_l4, N(o_l4));
		_exit(wl_has_failed() ? 1 : 0);
	}
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	if (keep[1] >= 0) {
		/* established: the connection (both ends here) goes on with its unread bytes. */
		char buf[16] = { 0 };
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		WL_CHECK(getpeername(keep[0], (void *)&peer, &len) == 0 && memcmp(&peer, &a_l4, sizeof(struct sockaddr_in)) == 0,
			 "the client end is no longer connected to l4");
		check_linger("server end", keep[1], 3);
		WL_CHECK(read(keep[1], buf, 6) == 6 && memcmp(buf, "before", 6) == 0, "server end: unread bytes lost (%s)", buf);
		WL_CHECK(read(keep[0], buf, 5) == 5 && memcmp(buf, "hello", 5) == 0, "client end: unread bytes lost");
		WL_CHECK(write(keep[0], "after", 5) == 5 && read(keep[1], buf, 5) == 5 && memcmp(buf, "after", 5) == 0,
			 "client → server after restore");
		WL_CHECK(write(keep[1], "again", 5) == 5 && read(keep[0], buf, 5) == 5 && memcmp(buf, "again", 5) == 0,
			 "server → client after restore");
	} else if (keep[0] >= 0) {
		/* pending: the connection it holds is only there to be refused. */
		int st = 0;
		WL_CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's check failed (status %#x)", st);
		wl_finish();
	}
	check_listener("l4", l4, &a_l4, 7);
	check_listener("l6", l6, &a_l6, 16);
	check_listener("ld", ld, &a_ld, 128);
	check_opts("l4", 0, l4, o_l4, N(o_l4));
	check_opts("l6", 1, l6, o_l6, N(o_l6));
	check_opts("ld", 2, ld, o_ld, N(o_ld));
	check_linger("ld", ld, 9);
	check_opts("u4", 3, u4, o_u4, N(o_u4));
	check_opts("u6", 4, u6, o_u6, N(o_u6));
	check_filter("u6", u6);
	WL_CHECK(fcntl(l4, F_GETFL) & O_NONBLOCK, "l4 lost O_NONBLOCK");
	WL_CHECK(!(fcntl(l6, F_GETFL) & O_NONBLOCK), "l6 gained O_NONBLOCK");
	serve_once("l4", l4, &a_l4, 0);
	serve_once("l6", l6, &a_l6, 0);
	serve_once("ld", ld, &a_ld, 0);
	serve_once("ld via IPv4", ld, &a_ld, 1);
	udp_roundtrip();
	int st = 0;
	WL_CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's check failed (status %#x)", st);
	wl_finish();
}
