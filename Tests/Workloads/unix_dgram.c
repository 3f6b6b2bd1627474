/* unix_dgram: Unix sockets that are not one end of a pair.
 *
 *   - srv: datagram, bound to CTLDIR/dg.sock (mode 0640); c1 and c2
 *     (unnamed) connected to it. Queued on srv, in order: "one" from c1,
 *     "two" from c2, "three" from an unnamed socket closed since, "four"
 *     from nb (bound to the abstract name @ferry-dg-PID).
 *   - gone: datagram bound to CTLDIR/gone.sock, the file removed, with
 *     "lost?" queued from an unnamed socket.
 *   - ab: datagram bound to @ferry-ab-PID, nothing queued, SO_PASSCRED on.
 *   - self: datagram bound to CTLDIR/self.sock and connected to itself,
 *     with "me" queued from itself; shut down for writing.
 *   - us: stream, never bound, SO_PASSCRED on.
 *   - bs: stream bound to CTLDIR/bs.sock, not listening (zdtm sk-unix-unconn).
 *
 * At stop (after restore): every name (getsockname, getpeername) is as
 * before; srv reads its four datagrams in order with their sender names
 * (none, none, none, @ferry-dg-PID); gone reads "lost?" and gone.sock is
 * still absent; self reads "me" from itself and cannot send; each client
 * sends again to srv; ab receives; bs listens and accepts a connection. */
#include "wl.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stddef.h>

static int srv, c1, c2, nb, gone, ab, self_, us, bs;
static struct sockaddr_un a_srv, a_gone, a_nb, a_ab, a_self, a_bs;
static socklen_t l_nb, l_ab;

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", wl_ctldir, name);
	return sizeof(*a);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *prefix)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "%s-%d", prefix, (int)getpid());
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int dgram(void)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fd < 0)
		wl_setup_fail("socket");
	return fd;
}

static void send_to(int fd, const char *what, const struct sockaddr_un *to)
{
	if (sendto(fd, what, strlen(what), 0, (const void *)to, sizeof(*to)) != (ssize_t)strlen(what))
		wl_setup_fail("sendto");
}

/* Reads one datagram from fd: its text must be `want`, its sender's name
 * `from` (length `from_len`; 0: unnamed). */
static void expect(const char *who, int fd, const char *want, const struct sockaddr_un *from, socklen_t from_len)
{
	char buf[64] = { 0 };
	struct sockaddr_un a;
	socklen_t al = sizeof(a);
	memset(&a, 0, sizeof(a));
	ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT, (void *)&a, &al);
	if (n < 0) {
		wl_fail("%s: nothing to read (wanted \"%s\"): %s", who, want, strerror(errno));
		return;
	}
	WL_CHECK((size_t)n == strlen(want) && memcmp(buf, want, n) == 0, "%s: read \"%s\", wanted \"%s\"", who, buf, want);
	if (from_len == 0)
		WL_CHECK(al <= offsetof(struct sockaddr_un, sun_path), "%s: \"%s\" came from a named socket (%.*s)", who, want, (int)(al - 2), a.sun_path);
	else
		WL_CHECK(al >= from_len && memcmp(&a, from, from_len) == 0, "%s: \"%s\" came from another sender", who, want);
}

/* The length getsockname reports for a path name: the family, the path and its NUL. */
static socklen_t plen(const struct sockaddr_un *a)
{
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
}

static int same_name(int fd, const struct sockaddr_un *want, socklen_t len, int peer)
{
	struct sockaddr_un a;
	socklen_t al = sizeof(a);
	memset(&a, 0, sizeof(a));
	if ((peer ? getpeername(fd, (void *)&a, &al) : getsockname(fd, (void *)&a, &al)) != 0)
		return 0;
	return al >= len && memcmp(&a, want, len) == 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	struct sockaddr_un tmp;
	srv = dgram();
	path_addr(&a_srv, "dg.sock");
	unlink(a_srv.sun_path);
	if (bind(srv, (void *)&a_srv, sizeof(a_srv)) != 0 || chmod(a_srv.sun_path, 0640) != 0)
		wl_setup_fail("bind srv");
	c1 = dgram();
	c2 = dgram();
	if (connect(c1, (void *)&a_srv, sizeof(a_srv)) != 0 || connect(c2, (void *)&a_srv, sizeof(a_srv)) != 0)
		wl_setup_fail("connect c1/c2");
	if (send(c1, "one", 3, 0) != 3 || send(c2, "two", 3, 0) != 3)
		wl_setup_fail("send c1/c2");
	int anon = dgram();
	send_to(anon, "three", &a_srv);
	close(anon);
	nb = dgram();
	l_nb = abstract_addr(&a_nb, "ferry-dg");
	if (bind(nb, (void *)&a_nb, l_nb) != 0)
		wl_setup_fail("bind nb");
	send_to(nb, "four", &a_srv);

	gone = dgram();
	path_addr(&a_gone, "gone.sock");
	unlink(a_gone.sun_path);
	if (bind(gone, (void *)&a_gone, sizeof(a_gone)) != 0)
		wl_setup_fail("bind gone");
	anon = dgram();
	send_to(anon, "lost?", &a_gone);
	close(anon);
	unlink(a_gone.sun_path);

	ab = dgram();
	l_ab = abstract_addr(&a_ab, "ferry-ab");
	int one = 1;
	if (bind(ab, (void *)&a_ab, l_ab) != 0 || setsockopt(ab, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
		wl_setup_fail("bind ab");

	self_ = dgram();
	path_addr(&a_self, "self.sock");
	unlink(a_self.sun_path);
	if (bind(self_, (void *)&a_self, sizeof(a_self)) != 0 || connect(self_, (void *)&a_self, sizeof(a_self)) != 0)
		wl_setup_fail("bind/connect self");
	if (send(self_, "me", 2, 0) != 2)
		wl_setup_fail("send self");
	shutdown(self_, SHUT_WR);

	us = socket(AF_UNIX, SOCK_STREAM, 0);
	if (us < 0 || setsockopt(us, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
		wl_setup_fail("us");
	bs = socket(AF_UNIX, SOCK_STREAM, 0);
	path_addr(&a_bs, "bs.sock");
	unlink(a_bs.sun_path);
	if (bs < 0 || bind(bs, (void *)&a_bs, sizeof(a_bs)) != 0)
		wl_setup_fail("bind bs");

	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);

	WL_CHECK(same_name(srv, &a_srv, plen(&a_srv), 0), "srv: not bound to dg.sock");
	WL_CHECK(same_name(c1, &a_srv, plen(&a_srv), 1) && same_name(c2, &a_srv, plen(&a_srv), 1), "c1/c2: not connected to dg.sock");
	struct stat st;
	WL_CHECK(stat(a_srv.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0640, "dg.sock: not a socket of mode 0640");
	expect("srv", srv, "one", NULL, 0);
	expect("srv", srv, "two", NULL, 0);
	expect("srv", srv, "three", NULL, 0);
	expect("srv", srv, "four", &a_nb, l_nb);
	WL_CHECK(send(c1, "again1", 6, 0) == 6 && send(c2, "again2", 6, 0) == 6, "c1/c2: send after restore: %s", strerror(errno));
	expect("srv", srv, "again1", NULL, 0);
	expect("srv", srv, "again2", NULL, 0);

	WL_CHECK(same_name(gone, &a_gone, plen(&a_gone), 0), "gone: not bound to gone.sock");
	WL_CHECK(access(a_gone.sun_path, F_OK) != 0, "gone.sock exists again");
	expect("gone", gone, "lost?", NULL, 0);

	WL_CHECK(same_name(ab, &a_ab, l_ab, 0), "ab: not bound to its abstract name");
	int v = 0;
	socklen_t vl = sizeof(v);
	WL_CHECK(getsockopt(ab, SOL_SOCKET, SO_PASSCRED, &v, &vl) == 0 && v == 1, "ab: SO_PASSCRED off");
	anon = dgram();
	WL_CHECK(sendto(anon, "hi", 2, 0, (void *)&a_ab, l_ab) == 2, "to ab: %s", strerror(errno));
	close(anon);
	char buf[8];
	WL_CHECK(recv(ab, buf, sizeof(buf), MSG_DONTWAIT) == 2, "ab: nothing received");

	WL_CHECK(same_name(self_, &a_self, plen(&a_self), 0) && same_name(self_, &a_self, plen(&a_self), 1), "self: not bound and connected to self.sock");
	expect("self", self_, "me", &a_self, plen(&a_self) - 1);
	WL_CHECK(send(self_, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EPIPE, "self: can send after SHUT_WR");

	memset(&tmp, 0, sizeof(tmp));
	socklen_t tl = sizeof(tmp);
	WL_CHECK(getsockname(us, (void *)&tmp, &tl) == 0 && tl <= offsetof(struct sockaddr_un, sun_path), "us: has a name now");
	v = 0;
	vl = sizeof(v);
	WL_CHECK(getsockopt(us, SOL_SOCKET, SO_PASSCRED, &v, &vl) == 0 && v == 1, "us: SO_PASSCRED off");

	WL_CHECK(same_name(bs, &a_bs, plen(&a_bs), 0), "bs: not bound to bs.sock");
	WL_CHECK(listen(bs, 1) == 0, "bs: listen: %s", strerror(errno));
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	WL_CHECK(connect(c, (void *)&a_bs, sizeof(a_bs)) == 0, "bs: connect: %s", strerror(errno));
	int a = accept(bs, NULL, NULL);
	WL_CHECK(a >= 0 && write(c, "ok", 2) == 2 && read(a, buf, 2) == 2, "bs: no connection");
	wl_finish();
}
