/* The process side of the TCP repair guard (FerryLinux/RepairGuard.swift):
 * starting it, and descriptors passed over its channel. */
#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

pid_t
ferry_spawn_guard(const char *path, char *const argv[], int channel, int lock)
{
	/* The channel goes to fd 3, the lock to 4; one already at 3 or 4 is
	 * moved first (dup2 onto itself would keep its close-on-exec flag, and
	 * the lock at 3 would be overwritten by the channel). */
	int moved = -1, moved_lock = -1;
	if (channel == 3 || channel == 4) {
		moved = fcntl(channel, F_DUPFD_CLOEXEC, 10);
		if (moved < 0)
			return -errno;
		channel = moved;
	}
	if (lock == 3 || lock == 4) {
		moved_lock = fcntl(lock, F_DUPFD_CLOEXEC, 10);
		if (moved_lock < 0) {
			int e = errno;
			if (moved >= 0)
				close(moved);
			return -e;
		}
		lock = moved_lock;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	/* No descriptor of ferry's but the channel: a caller reading ferry's
	 * output to its end must not wait for the guard. */
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
	posix_spawn_file_actions_adddup2(&fa, 0, 1);
	posix_spawn_file_actions_adddup2(&fa, 0, 2);
	posix_spawn_file_actions_adddup2(&fa, channel, 3);
	posix_spawn_file_actions_adddup2(&fa, lock, 4);
	posix_spawn_file_actions_addclosefrom_np(&fa, 5);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	/* Its own session and process group: a ^C or hang-up of ferry's
	 * terminal does not reach it. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	extern char **environ;
	int r = posix_spawn(&pid, path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (moved >= 0)
		close(moved);
	if (moved_lock >= 0)
		close(moved_lock);
	return r == 0 ? pid : -r;
}

long
ferry_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	char control[CMSG_SPACE(sizeof(int) * FERRY_GUARD_MAX_FDS)];
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	memset(control, 0, sizeof(control));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	if (nfds < 0 || nfds > FERRY_GUARD_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		m.msg_control = control;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

long
ferry_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int dontwait)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	char control[CMSG_SPACE(sizeof(int) * FERRY_GUARD_MAX_FDS)];
	struct msghdr m;
	memset(&m, 0, sizeof(m));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = control;
	m.msg_controllen = sizeof(control);
	*nfds = 0;
	ssize_t n;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int got[FERRY_GUARD_MAX_FDS];
		if (k > FERRY_GUARD_MAX_FDS)
			k = FERRY_GUARD_MAX_FDS;
		memcpy(got, CMSG_DATA(c), sizeof(int) * k);
		for (int i = 0; i < k; i++) {
			if (*nfds < maxfds)
				fds[(*nfds)++] = got[i];
			else
				close(got[i]);
		}
	}
	/* MSG_CTRUNC: descriptors beyond the buffer were closed by the kernel. */
	return n;
}


/* The lock: a process-shared robust mutex in a memfd page. */
void *
ferry_guard_lock_new(int *fd_out)
{
	int fd = memfd_create("ferry-repair-guard", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (ftruncate(fd, sizeof(pthread_mutex_t)) != 0) {
		close(fd);
		return NULL;
	}
	pthread_mutex_t *m = mmap(NULL, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	int r = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	if (r == 0)
		r = pthread_mutex_lock(m);
	if (r != 0) {
		munmap(m, sizeof(pthread_mutex_t));
		close(fd);
		errno = r;
		return NULL;
	}
	*fd_out = fd;
	return m;
}

void
ferry_guard_lock_release(void *lock)
{
	pthread_mutex_unlock(lock);
	munmap(lock, sizeof(pthread_mutex_t));
}

int
ferry_guard_lock_wait(int fd)
{
	pthread_mutex_t *m = mmap(NULL, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	int r;
	do
		r = pthread_mutex_lock(m);
	while (r == EINTR);
	if (r == 0)
		return 0;
	return r == EOWNERDEAD ? 1 : -r;
}

/* A SOCK_SEQPACKET Unix socket and the abstract address of `name` in *a,
 * its length in *len: the socket or -errno. */
static int
hold_socket(const char *name, struct sockaddr_un *a, socklen_t *len)
{
	size_t n = strlen(name);
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (n == 0 || n + 1 > sizeof(a->sun_path))
		return -EINVAL;
	memcpy(a->sun_path + 1, name, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

int
ferry_hold_listen(const char *name)
{
	struct sockaddr_un a;
	socklen_t len;
	int fd = hold_socket(name, &a, &len);
	if (fd < 0)
		return fd;
	if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 16) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int
ferry_hold_connect(const char *name)
{
	struct sockaddr_un a;
	socklen_t len;
	int fd = hold_socket(name, &a, &len);
	if (fd < 0)
		return fd;
	int r;
	do
		r = connect(fd, (struct sockaddr *)&a, len);
	while (r != 0 && errno == EINTR);
	if (r != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

long
ferry_peer_uid(int fd)
{
	struct ucred c;
	socklen_t len = sizeof(c);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0)
		return -1;
	return (long)c.uid;
}
