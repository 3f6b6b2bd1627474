/* inet_unbound: TCP and UDP sockets created and never bound, with options,
 * some shut down.
 *
 *   - t4: TCP IPv4, SO_KEEPALIVE, TCP_NODELAY, SO_PRIORITY 5, SO_MARK 7,
 *     SO_DONTROUTE, SO_SNDBUF 40000, SO_BINDTODEVICE "lo", TCP_SYNCNT 3.
 *   - t6: TCP IPv6, IPV6_V6ONLY on, SO_REUSEADDR, SO_REUSEPORT,
 *     IPV6_TCLASS 0x20, TCP_NOTSENT_LOWAT 12345, SO_TIMESTAMP.
 *   - tr: TCP IPv4 shut down for reading (shutdown says ENOTCONN and sets the bit).
 *   - u4: UDP IPv4, SO_BROADCAST, SO_NO_CHECK, IP_TOS 0x10, IP_RECVTTL,
 *     shut down for reading.
 *   - u6: UDP IPv6, IPV6_RECVTCLASS, shut down both ways.
 *
 * At stop (after restore): each is still unbound (getsockname: port 0),
 * has its options and its device, and poll shows its shutdown state
 * (POLLRDHUP for a receive shutdown; POLLHUP on u6); t4 connects to a
 * listener on 127.0.0.1 (made then) through lo and carries bytes; u4 sends
 * a datagram (binding it) that arrives. */
#include "wl.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/ip.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

struct opt { int level, name, value; const char *label; };
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct opt o_t4[] = {
	{ SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE" }, { IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY" },
	{ SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY" }, { SOL_SOCKET, SO_MARK, 7, "SO_MARK" },
	{ SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE" }, { SOL_SOCKET, SO_SNDBUF, 40000, "SO_SNDBUF" },
	{ IPPROTO_TCP, TCP_SYNCNT, 3, "TCP_SYNCNT" },
};
static const struct opt o_t6[] = {
	{ IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY" }, { SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR" },
	{ SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT" }, { IPPROTO_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS" },
	{ IPPROTO_TCP, TCP_NOTSENT_LOWAT, 12345, "TCP_NOTSENT_LOWAT" }, { SOL_SOCKET, SO_TIMESTAMP, 1, "SO_TIMESTAMP" },
};
static const struct opt o_u4[] = {
	{ SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST" }, { SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK" },
	{ IPPROTO_IP, IP_TOS, 0x10, "IP_TOS" }, { IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL" },
};
static const struct opt o_u6[] = { { IPPROTO_IPV6, IPV6_RECVTCLASS, 1, "IPV6_RECVTCLASS" } };

static int want[5][8];
static int t4, t6, tr, u4, u6;

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, level, name, &v, &len) != 0)
		return -12345;
	return v;
}

static int make(int family, int type, const struct opt *o, int n, int which)
{
	int fd = socket(family, type, 0);
	if (fd < 0)
		wl_setup_fail("socket");
	for (int i = 0; i < n; i++)
		if (setsockopt(fd, o[i].level, o[i].name, &o[i].value, sizeof(int)) != 0)
			wl_setup_fail(o[i].label);
	for (int i = 0; i < n; i++)
		want[which][i] = getint(fd, o[i].level, o[i].name);
	return fd;
}

static void check(const char *who, int fd, const struct opt *o, int n, int which)
{
	for (int i = 0; i < n; i++) {
		int v = getint(fd, o[i].level, o[i].name);
		WL_CHECK(v == want[which][i], "%s: %s is %d, was %d", who, o[i].label, v, want[which][i]);
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	WL_CHECK(getsockname(fd, (void *)&ss, &len) == 0, "%s: getsockname: %s", who, strerror(errno));
	int port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port) : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	WL_CHECK(port == 0, "%s: bound to port %d now", who, port);
}

static short events(int fd)
{
	struct pollfd p = { fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
	poll(&p, 1, 0);
	return p.revents;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	t4 = make(AF_INET, SOCK_STREAM, o_t4, N(o_t4), 0);
	if (setsockopt(t4, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) != 0)
		wl_setup_fail("SO_BINDTODEVICE");
	t6 = make(AF_INET6, SOCK_STREAM, o_t6, N(o_t6), 1);
	tr = make(AF_INET, SOCK_STREAM, NULL, 0, 2);
	u4 = make(AF_INET, SOCK_DGRAM, o_u4, N(o_u4), 3);
	u6 = make(AF_INET6, SOCK_DGRAM, o_u6, N(o_u6), 4);
	/* On a socket that is not connected shutdown says ENOTCONN and sets the bits all the same. */
	shutdown(tr, SHUT_RD);
	shutdown(u4, SHUT_RD);
	shutdown(u6, SHUT_RDWR);
	if (!(events(tr) & POLLRDHUP) || !(events(u4) & POLLRDHUP) || (events(u4) & POLLHUP) || !(events(u6) & POLLHUP))
		wl_setup_fail("shutdown state not shown by poll");
	if (events(t4) & POLLRDHUP)
		wl_setup_fail("t4 shows POLLRDHUP");
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	check("t4", t4, o_t4, N(o_t4), 0);
	check("t6", t6, o_t6, N(o_t6), 1);
	check("tr", tr, NULL, 0, 2);
	check("u4", u4, o_u4, N(o_u4), 3);
	check("u6", u6, o_u6, N(o_u6), 4);
	char dev[16] = { 0 };
	socklen_t dl = sizeof(dev);
	WL_CHECK(getsockopt(t4, SOL_SOCKET, SO_BINDTODEVICE, dev, &dl) == 0 && strcmp(dev, "lo") == 0, "t4: bound to device \"%s\"", dev);
	WL_CHECK(!(events(t4) & POLLRDHUP), "t4: shut down for reading now");
	WL_CHECK(!(events(t6) & POLLRDHUP), "t6: shut down for reading now");
	WL_CHECK(events(tr) & POLLRDHUP, "tr: no longer shut down for reading");
	WL_CHECK((events(u4) & POLLRDHUP) && !(events(u4) & POLLHUP), "u4: shutdown state %#x, want receive only", events(u4));
	WL_CHECK(events(u6) & POLLHUP, "u6: no longer shut down both ways");

	/* t4 still works: connect to a listener made now, bytes both ways. */
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	socklen_t al = sizeof(a);
	WL_CHECK(bind(l, (void *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 && getsockname(l, (void *)&a, &al) == 0, "listener: %s", strerror(errno));
	WL_CHECK(connect(t4, (void *)&a, sizeof(a)) == 0, "t4: connect: %s", strerror(errno));
	int c = accept(l, NULL, NULL);
	char buf[8] = { 0 };
	WL_CHECK(c >= 0 && write(t4, "ping", 4) == 4 && read(c, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0, "t4: bytes to the server");
	WL_CHECK(c >= 0 && write(c, "pong", 4) == 4 && read(t4, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0, "t4: bytes from the server");

	/* u4 sends (which binds it) to a receiver made now. */
	int r = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ra = { .sin_family = AF_INET };
	inet_pton(AF_INET, "127.0.0.1", &ra.sin_addr);
	socklen_t rl = sizeof(ra);
	WL_CHECK(bind(r, (void *)&ra, sizeof(ra)) == 0 && getsockname(r, (void *)&ra, &rl) == 0, "receiver: %s", strerror(errno));
	WL_CHECK(sendto(u4, "dgram", 5, 0, (void *)&ra, sizeof(ra)) == 5, "u4: sendto: %s", strerror(errno));
	struct pollfd p = { r, POLLIN, 0 };
	WL_CHECK(poll(&p, 1, 2000) == 1 && recv(r, buf, sizeof(buf), 0) == 5 && memcmp(buf, "dgram", 5) == 0, "u4: datagram did not arrive");
	wl_finish();
}
