#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <cpuid.h>
#include <linux/sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define RET(x) ((x) < 0 ? -errno : (x))

long
ferry_ptrace(long request, pid_t pid, uint64_t addr, uint64_t data)
{
	errno = 0;
	long r = ptrace((enum __ptrace_request)request, pid, (void *)addr,
	    (void *)data);
	/* PEEK* return data; callers of those use errno == 0 to decide. */
	if (r == -1 && errno != 0)
		return -errno;
	return r;
}

long
ferry_syscall6(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
    uint64_t a5, uint64_t a6)
{
	long r = syscall(nr, a1, a2, a3, a4, a5, a6);
	return RET(r);
}

#define IOV_BATCH 1024

static long
vm_copy(pid_t pid, const struct ferry_iov *iov, size_t n, int write)
{
	struct iovec l[IOV_BATCH], r[IOV_BATCH];
	long total = 0;
	size_t i = 0;
	while (i < n) {
		size_t k = 0;
		for (; k < IOV_BATCH && i + k < n; k++) {
			l[k].iov_base = (void *)iov[i + k].local;
			l[k].iov_len = iov[i + k].len;
			r[k].iov_base = (void *)iov[i + k].remote;
			r[k].iov_len = iov[i + k].len;
		}
		ssize_t want = 0;
		for (size_t j = 0; j < k; j++)
			want += l[j].iov_len;
		ssize_t got = write ? process_vm_writev(pid, l, k, r, k, 0) :
		    process_vm_readv(pid, l, k, r, k, 0);
		if (got < 0)
			return -errno;
		total += got;
		if (got != want)
			return total; /* partial: the caller reports where */
		i += k;
	}
	return total;
}

long
ferry_vm_readv(pid_t pid, const struct ferry_iov *iov, size_t n)
{
	return vm_copy(pid, iov, n, 0);
}

long
ferry_vm_writev(pid_t pid, const struct ferry_iov *iov, size_t n)
{
	return vm_copy(pid, iov, n, 1);
}

static pid_t
clone3_fork(uint64_t flags, const pid_t *set_tid, size_t n)
{
	struct clone_args a;
	memset(&a, 0, sizeof(a));
	a.flags = flags;
	a.exit_signal = SIGCHLD;
	a.set_tid = (uint64_t)(uintptr_t)set_tid;
	a.set_tid_size = n;
	return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}

pid_t
ferry_spawn_traced(const char *path, char *const argv[], char *const envp[],
    const pid_t *set_tid, size_t n_set_tid, int new_pidns, int pidns_fd)
{
	int self_ns = -1;
	if (pidns_fd >= 0) {
		self_ns = open("/proc/thread-self/ns/pid_for_children",
		    O_RDONLY | O_CLOEXEC);
		if (self_ns < 0)
			return -errno;
		if (setns(pidns_fd, CLONE_NEWPID) != 0) {
			int e = errno;
			close(self_ns);
			return -e;
		}
	}
	pid_t pid = clone3_fork(new_pidns ? CLONE_NEWPID : 0, set_tid,
	    n_set_tid);
	if (pid == 0) {
		/* Child: only raw async-signal-safe calls from here on. */
		if (syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0) != 0)
			_exit(126);
		execve(path, argv, envp);
		_exit(127);
	}
	int err = pid < 0 ? errno : 0;
	if (self_ns >= 0) {
		setns(self_ns, CLONE_NEWPID);
		close(self_ns);
	}
	return pid < 0 ? -err : pid;
}

pid_t
ferry_spawn_pidns_init(const char *path, char *const argv[], char *const envp[])
{
	pid_t pid = clone3_fork(CLONE_NEWPID, NULL, 0);
	if (pid == 0) {
		setsid();
		execve(path, argv, envp);
		_exit(127);
	}
	return pid < 0 ? -errno : pid;
}

long
ferry_wait(pid_t pid, int *status, int nohang)
{
	for (;;) {
		pid_t r = waitpid(pid, status, __WALL | (nohang ? WNOHANG : 0));
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

uint64_t
ferry_xgetbv0(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return 0;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

void
ferry_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	__cpuid_count(leaf, sub, out[0], out[1], out[2], out[3]);
}

int
ferry_pipe(int fds[2], int flags)
{
	return pipe2(fds, flags) == 0 ? 0 : -errno;
}

long
ferry_tee(int fd_in, int fd_out, size_t len, unsigned flags)
{
	ssize_t r = tee(fd_in, fd_out, len, flags);
	return r < 0 ? -errno : r;
}

int
ferry_errno(void)
{
	return errno;
}

int
ferry_prlimit(pid_t pid, int resource, const uint64_t *new_limit,
    uint64_t *old_limit)
{
	long r = syscall(SYS_prlimit64, pid, resource, new_limit, old_limit);
	return r < 0 ? -errno : 0;
}
