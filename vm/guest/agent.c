/*
 * ferry-agent: the guest side of vm/run.sh.  Runs inside the test guest
 * (pid 1's child) and in nothing else.  No authentication: it listens on
 * the guest's user-mode NIC, which qemu reaches only through a hostfwd on
 * the host's 127.0.0.1.
 *
 *   ferry-agent serve PORT      accept connections; each sends one line
 *                                "R <shell command>\n" (run: output and a
 *                                final "@@rc=N" line come back) or
 *                                "S <shell command>\n" (stream: the socket is
 *                                the command's stdin and stdout, raw).
 *   ferry-agent launch PROG ARGS...
 *                                start PROG detached with a clean slate
 *                                (stdio /dev/null, no other fds, empty signal
 *                                mask, default dispositions, own session) and
 *                                return at once: the guest's launch.py.
 *   ferry-agent recv PORT        accept one connection, copy it to stdout.
 *   ferry-agent send IP PORT     connect, copy stdin to it, half-close, wait
 *                                for the peer to close.
 *   ferry-agent settime NS       set CLOCK_REALTIME (ns since the epoch): the
 *                                host's clock, as NTP would on a real host.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "ferry-agent: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void clean_slate(void)
{
	sigset_t none;
	struct sigaction sa;
	int s;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (s = 1; s < 65; s++)
		sigaction(s, &sa, NULL);
}

static int copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t n, w, off;

	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : 0;
		for (off = 0; off < n; off += w) {
			w = write(out, buf + off, n - off);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0)
				return -1;
		}
	}
}

static int listen_on(int port)
{
	struct sockaddr_in a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (listen(fd, 16) < 0)
		die("listen");
	return fd;
}

static void serve_one(int c)
{
	char line[8192];
	size_t n = 0;
	int st = 0, run;
	pid_t p;

	while (n < sizeof(line) - 1) {
		ssize_t r = read(c, line + n, 1);
		if (r <= 0)
			_exit(1);
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	if (n < 2 || (line[0] != 'R' && line[0] != 'S') || line[1] != ' ')
		_exit(1);
	run = line[0] == 'R';
	p = fork();
	if (p < 0)
		_exit(1);
	if (p == 0) {
		int null = open("/dev/null", O_RDWR);
		clean_slate();
		dup2(run ? null : c, 0);
		dup2(c, 1);
		dup2(run ? c : null, 2);	/* stream: stdout is binary */
		if (null > 2)
			close(null);
		execl("/bin/sh", "sh", "-c", line + 2, (char *)NULL);
		_exit(127);
	}
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (run) {
		int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		dprintf(c, "\n@@rc=%d\n", rc);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "serve") == 0) {
		int l = listen_on(atoi(argv[2]));
		signal(SIGCHLD, SIG_IGN); /* handlers are reaped by the kernel */
		signal(SIGPIPE, SIG_IGN);
		for (;;) {
			int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			if (fork() == 0) {
				close(l);
				/* the handler waits for its shell: default SIGCHLD */
				signal(SIGCHLD, SIG_DFL);
				/* not CLOEXEC any more: the shell gets it as fds 0-2 only */
				serve_one(c);
			}
			close(c);
		}
	}
	if (argc >= 3 && strcmp(argv[1], "launch") == 0) {
		pid_t p = fork();
		if (p < 0)
			die("fork");
		if (p > 0) {
			int st;
			waitpid(p, &st, 0);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
		}
		setsid();
		if (fork() != 0)
			_exit(0);
		clean_slate();
		{
			int null = open("/dev/null", O_RDWR), fd;
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			for (fd = 3; fd < 1024; fd++)
				close(fd);
		}
		execv(argv[2], argv + 2);
		_exit(127);
	}
	if (argc >= 3 && strcmp(argv[1], "recv") == 0) {
		int l = listen_on(atoi(argv[2])), c;
		while ((c = accept(l, NULL, NULL)) < 0 && errno == EINTR)
			;
		if (c < 0)
			die("accept");
		close(l);
		return copy_fd(c, 1) < 0 ? 1 : 0;
	}
	if (argc >= 4 && strcmp(argv[1], "send") == 0) {
		struct sockaddr_in a;
		char b[256];
		int fd, tries;

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons(atoi(argv[3]));
		if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
			fprintf(stderr, "ferry-agent: bad address %s\n", argv[2]);
			return 2;
		}
		for (tries = 0;; tries++) {	/* the receiver may not listen yet */
			fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0)
				die("socket");
			if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
				break;
			close(fd);
			if (tries >= 100)
				die("connect");
			usleep(100000);
		}
		signal(SIGPIPE, SIG_IGN);
		if (copy_fd(0, fd) < 0)
			die("send");
		shutdown(fd, SHUT_WR);
		while (read(fd, b, sizeof(b)) > 0)
			;
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "settime") == 0) {
		long long ns = atoll(argv[2]);
		struct timespec ts = { ns / 1000000000LL, ns % 1000000000LL };
		if (clock_settime(CLOCK_REALTIME, &ts) != 0)
			die("clock_settime");
		return 0;
	}
	fprintf(stderr, "usage: ferry-agent serve PORT | launch PROG ARGS... | recv PORT | send IP PORT | settime NS\n");
	return 2;
}
