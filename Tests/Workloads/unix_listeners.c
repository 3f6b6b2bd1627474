/* unix_listeners: listening Unix sockets on a path name (mode 0600), on an
 * abstract name (shared with a forked child, as server workers share one),
 * and on a path the program removed after bind. At stop the parent checks
 * each is still listening under its name with its type, the path's mode,
 * that the removed path is still absent, and that new clients connect to
 * the path and abstract listeners and are accepted. */
#include "wl.h"
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

static socklen_t address(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(a->sun_path + (abstract ? 1 : 0), name, n);
	return offsetof(struct sockaddr_un, sun_path) + n + 1;
}

static int listener(int type, const char *name, int abstract)
{
	struct sockaddr_un a;
	socklen_t len = address(&a, name, abstract);
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 7) != 0)
		wl_setup_fail("listener");
	return fd;
}

static void still_named(int fd, const char *name, int abstract, int type, const char *what)
{
	struct sockaddr_un want, got;
	socklen_t wlen = address(&want, name, abstract), glen = sizeof(got);
	int acc = 0, ty = 0;
	socklen_t l = sizeof(int);
	WL_CHECK(getsockname(fd, (struct sockaddr *)&got, &glen) == 0 &&
		 memcmp(got.sun_path, want.sun_path, wlen - offsetof(struct sockaddr_un, sun_path) - (abstract ? 0 : 1)) == 0,
		 "%s: no longer named %s", what, name);
	WL_CHECK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) == 0 && acc == 1, "%s: not listening", what);
	l = sizeof(int);
	WL_CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &ty, &l) == 0 && ty == type, "%s: type %d", what, ty);
}

static void serves(int fd, const char *name, int abstract, int type, const char *what)
{
	struct sockaddr_un a;
	socklen_t len = address(&a, name, abstract);
	int c = socket(AF_UNIX, type, 0);
	WL_CHECK(c >= 0 && connect(c, (struct sockaddr *)&a, len) == 0, "%s: connect: %s", what, strerror(errno));
	int s = accept(fd, NULL, NULL);
	WL_CHECK(s >= 0, "%s: accept: %s", what, strerror(errno));
	if (s >= 0 && c >= 0) {
		char b[4] = "";
		WL_CHECK(send(c, "ping", 4, 0) == 4 && recv(s, b, 4, 0) == 4 && memcmp(b, "ping", 4) == 0, "%s: no data over the new connection", what);
	}
	close(c);
	close(s);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	char path[PATH_MAX], gone[PATH_MAX], abstract[64];
	wl_path(path, "listen.sock");
	wl_path(gone, "removed.sock");
	snprintf(abstract, sizeof(abstract), "ferry-wl-listeners-%d", (int)getpid());
	int lp = listener(SOCK_STREAM, path, 0);
	if (chmod(path, 0600) != 0)
		wl_setup_fail("chmod");
	int la = listener(SOCK_SEQPACKET, abstract, 1);
	int lg = listener(SOCK_STREAM, gone, 0);
	if (unlink(gone) != 0)
		wl_setup_fail("unlink");
	pid_t kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0) {
		close(lp);
		close(lg);
		while (!wl_stop())
			wl_sleep_us(20000);
		_exit(0);
	}
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	still_named(lp, path, 0, SOCK_STREAM, "path listener");
	still_named(la, abstract, 1, SOCK_SEQPACKET, "abstract listener");
	still_named(lg, gone, 0, SOCK_STREAM, "listener on a removed path");
	struct stat st;
	WL_CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0600, "socket file %s: mode %o", path,
		 (unsigned)st.st_mode);
	WL_CHECK(access(gone, F_OK) != 0, "the removed path %s exists again", gone);
	serves(lp, path, 0, SOCK_STREAM, "path listener");
	serves(la, abstract, 1, SOCK_SEQPACKET, "abstract listener");
	int st2 = 0;
	WL_CHECK(waitpid(kid, &st2, 0) == kid && WIFEXITED(st2) && WEXITSTATUS(st2) == 0, "child status %d", st2);
	unlink(path);
	wl_finish();
}
