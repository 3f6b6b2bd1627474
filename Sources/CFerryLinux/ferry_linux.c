#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cpuid.h>
#include <linux/sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <malloc.h>
#include <stdio.h>

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

/* Reads the loopback device's flags, or sets IFF_UP when set_up != 0:
 * the flags, or -errno. Async-signal-safe. */
static int
loopback_flags(int set_up)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int r = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (r == 0 && set_up) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	int e = errno;
	close(s);
	if (r != 0)
		return -e;
	return set_up ? 0 : (ifr.ifr_flags & 0xffff);
}

/* Runs body(arg) on this thread inside pid's namespace of type nstype
 * (link `name` in /proc/PID/ns/), then returns to this thread's own:
 * body's result, or -errno when entering or leaving failed. */
static int
in_ns_of(pid_t pid, const char *name, int nstype, int (*body)(void *),
    void *arg)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)pid, name);
	int target = open(p, O_RDONLY | O_CLOEXEC);
	if (target < 0)
		return -errno;
	snprintf(p, sizeof(p), "/proc/thread-self/ns/%s", name);
	int self = open(p, O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		int e = errno;
		close(target);
		return -e;
	}
	int r;
	if (setns(target, nstype) != 0) {
		r = -errno;
	} else {
		r = body(arg);
		/* Back before anything else can run on this thread. */
		if (setns(self, nstype) != 0)
			r = -errno;
	}
	close(self);
	close(target);
	return r;
}

static int
loopback_up_body(void *arg)
{
	(void)arg;
	int f = loopback_flags(0);
	return f < 0 ? f : (f & IFF_UP) != 0;
}

int
ferry_netns_loopback_up(pid_t pid)
{
	return in_ns_of(pid, "net", CLONE_NEWNET, loopback_up_body, NULL);
}

struct socket_args { int domain, type, proto, fd; };

static int
socket_body(void *arg)
{
	struct socket_args *a = arg;
	a->fd = socket(a->domain, a->type | SOCK_CLOEXEC, a->proto);
	return a->fd < 0 ? -errno : a->fd;
}

int
ferry_netns_socket(pid_t pid, int domain, int type, int proto)
{
	struct socket_args a = { domain, type, proto, -1 };
	int r = in_ns_of(pid, "net", CLONE_NEWNET, socket_body, &a);
	/* Made, but this thread could not go back: refused as a failure. */
	if (r < 0 && a.fd >= 0)
		close(a.fd);
	return r;
}

/* In a fresh child, before exec: the container parts. 0 or the failed step. */
static int
ct_child_setup(const struct ferry_ct_spawn *ct, int new_uts)
{
	if (ct == NULL)
		return 0;
	for (size_t i = 0; i < ct->n_cgroup; i++)
		if (write(ct->cgroup_fds[i], "0", 1) != 1)
			return 1;
	for (size_t i = 0; i < ct->n_join; i++)
		if (setns(ct->join_fds[i], 0) != 0)
			return 2;
	if (ct->clone_flags & CLONE_NEWNS) {
		/* As unshare(1) does: nothing mounted inside propagates out. */
		if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
			return 4;
	}
	if (new_uts && ct->hostname != NULL &&
	    sethostname(ct->hostname, strlen(ct->hostname)) != 0)
		return 3;
	if (new_uts && ct->domainname != NULL &&
	    setdomainname(ct->domainname, strlen(ct->domainname)) != 0)
		return 5;
	if ((ct->clone_flags & CLONE_NEWNET) && ct->loopback_up &&
	    loopback_flags(IFF_UP) != 0)
		return 6;
	return 0;
}

pid_t
ferry_spawn_traced_ct(const char *path, char *const argv[], char *const envp[],
    const pid_t *set_tid, size_t n_set_tid, int new_pidns, int pidns_fd,
    const struct ferry_ct_spawn *ct)
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
	uint64_t flags = (new_pidns ? CLONE_NEWPID : 0) |
	    (ct != NULL ? ct->clone_flags : 0);
	pid_t pid = clone3_fork(flags, set_tid, n_set_tid);
	if (pid == 0) {
		/* Child: only raw async-signal-safe calls from here on. */
		int step = ct_child_setup(ct, (flags & CLONE_NEWUTS) != 0);
		if (step != 0)
			_exit(100 + step);
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

int
ferry_timens_for_children(long long monotonic_ns, long long boottime_ns)
{
	char buf[128];
	long long v[2] = { monotonic_ns, boottime_ns };
	int n = 0, fd, i;

	if (unshare(CLONE_NEWTIME) != 0)
		return -errno;
	for (i = 0; i < 2; i++) {
		long long s = v[i] / 1000000000LL, ns = v[i] % 1000000000LL;
		if (ns < 0) {
			ns += 1000000000LL;
			s -= 1;
		}
		n += snprintf(buf + n, sizeof(buf) - n, "%s %lld %lld\n",
		    i == 0 ? "monotonic" : "boottime", s, ns);
	}
	/* /proc/TID (not /proc/self, the leader): the offsets belong to this
	 * thread's time_for_children; thread-self has no timens_offsets. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/timens_offsets",
	    (long)syscall(SYS_gettid));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, n) != n) {
		int e = errno;
		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

pid_t
ferry_spawn_traced(const char *path, char *const argv[], char *const envp[],
    const pid_t *set_tid, size_t n_set_tid, int new_pidns, int pidns_fd)
{
	return ferry_spawn_traced_ct(path, argv, envp, set_tid, n_set_tid,
	    new_pidns, pidns_fd, NULL);
}

pid_t
ferry_spawn_pidns_init_ct(const char *path, char *const argv[],
    char *const envp[], uint64_t extra_flags, const char *hostname,
    const char *domainname, int loopback_up)
{
	pid_t pid = clone3_fork(CLONE_NEWPID | extra_flags, NULL, 0);
	if (pid == 0) {
		struct ferry_ct_spawn ct;
		memset(&ct, 0, sizeof(ct));
		ct.clone_flags = extra_flags;
		ct.hostname = hostname;
		ct.domainname = domainname;
		ct.loopback_up = loopback_up;
		int step = ct_child_setup(&ct, (extra_flags & CLONE_NEWUTS) != 0);
		if (step != 0)
			_exit(100 + step);
		/* The init must not hold ferry's stdout (a caller reading it to
		 * EOF would wait as long as the namespace lives). */
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		syscall(SYS_close_range, 3, ~0U, 0);
		setsid();
		execve(path, argv, envp);
		_exit(127);
	}
	return pid < 0 ? -errno : pid;
}

pid_t
ferry_spawn_pidns_init(const char *path, char *const argv[], char *const envp[])
{
	return ferry_spawn_pidns_init_ct(path, argv, envp, 0, NULL, NULL, 0);
}

static int
uname_body(void *arg)
{
	return uname((struct utsname *)arg) == 0 ? 0 : -errno;
}

int
ferry_uts_names(pid_t pid, char *host, size_t host_len, char *domain,
    size_t domain_len)
{
	struct utsname u;
	int r = in_ns_of(pid, "uts", CLONE_NEWUTS, uname_body, &u);
	if (r == 0) {
		snprintf(host, host_len, "%s", u.nodename);
		snprintf(domain, domain_len, "%s", u.domainname);
	}
	return r;
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

/* ---- `ferry check` probes ---- */

#include <sys/mman.h>
#include <sys/ioctl.h>
#include <linux/prctl.h>
#include <linux/userfaultfd.h>

long
ferry_prctl(int option, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5)
{
	long r = syscall(SYS_prctl, option, a2, a3, a4, a5);
	return RET(r);
}

long
ferry_ioctl(int fd, unsigned long request, uint64_t arg)
{
	long r = syscall(SYS_ioctl, fd, request, arg);
	return RET(r);
}

/* A child by raw clone (no atfork handlers): returns 0 in the child. */
static pid_t
raw_fork(void)
{
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

/* Waits for `pid`; its exit status 0 → 0, 1..254 → -status (an errno). */
static int
reap_status(pid_t pid)
{
	int st = 0;
	if (ferry_wait(pid, &st, 0) < 0)
		return -ECHILD;
	if (!WIFEXITED(st))
		return -EINTR;
	return -WEXITSTATUS(st);
}

/* Parses the unsigned field `n` (1-based) of a /proc/PID/stat text. */
static int
stat_field(const char *buf, size_t len, int n, uint64_t *out)
{
	size_t i = len;
	while (i > 0 && buf[i - 1] != ')')
		i--;
	if (i == 0)
		return -1;
	int field = 2; /* the ')' ends field 2 */
	while (i < len) {
		while (i < len && buf[i] == ' ')
			i++;
		field++;
		uint64_t v = 0;
		int digits = 0;
		while (i < len && buf[i] != ' ' && buf[i] != '\n') {
			if (buf[i] >= '0' && buf[i] <= '9') {
				v = v * 10 + (uint64_t)(buf[i] - '0');
				digits++;
			}
			i++;
		}
		if (field == n) {
			if (!digits)
				return -1;
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* Runs `body` in a raw child; its return (0 or an errno) is the child's
 * exit status. 0 or -errno. */
static int
in_child(int (*body)(void))
{
	pid_t pid = raw_fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		syscall(SYS_exit_group, body());
	return reap_status(pid);
}

static int
set_mm_map_child(void)
{
	char buf[1024];
	int fd = (int)syscall(SYS_open, "/proc/self/stat", O_RDONLY, 0);
	if (fd < 0)
		return EPROTO;
	long n = syscall(SYS_read, fd, buf, sizeof(buf));
	syscall(SYS_close, fd);
	if (n <= 0)
		return EPROTO;
	static const int fields[] = {26, 27, 28, 45, 46, 47, 48, 49, 50, 51};
	uint64_t v[10];
	for (int k = 0; k < 10; k++)
		if (stat_field(buf, (size_t)n, fields[k], &v[k]) != 0)
			return EPROTO;
	struct prctl_mm_map m;
	memset(&m, 0, sizeof(m));
	m.start_code = v[0];
	m.end_code = v[1];
	m.start_stack = v[2];
	m.start_data = v[3];
	m.end_data = v[4];
	m.start_brk = v[5];
	m.arg_start = v[6];
	m.arg_end = v[7];
	m.env_start = v[8];
	m.env_end = v[9];
	m.brk = (uint64_t)syscall(SYS_brk, 0);
	m.auxv = NULL;
	m.auxv_size = 0; /* keep the saved auxv */
	m.exe_fd = (uint32_t)-1; /* keep /proc/self/exe */
	long r = syscall(SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, &m, sizeof(m), 0);
	return r == 0 ? 0 : errno;
}

int
ferry_probe_set_mm_map(void)
{
	return in_child(set_mm_map_child);
}

static int
pid_one_child(void)
{
	return syscall(SYS_getpid) == 1 ? 0 : EPROTO;
}

static int
newpid_child(void)
{
	if (syscall(SYS_unshare, CLONE_NEWPID) != 0)
		return errno;
	int r = in_child(pid_one_child);
	return r < 0 ? -r : 0;
}

int
ferry_probe_newpid(void)
{
	return in_child(newpid_child);
}

pid_t
ferry_clone3_exit(const pid_t *set_tid, size_t n, int new_pidns)
{
	pid_t pid = clone3_fork(new_pidns ? CLONE_NEWPID : 0, set_tid, n);
	if (pid < 0)
		return -errno;
	if (pid == 0)
		syscall(SYS_exit_group, 0);
	int st = 0;
	ferry_wait(pid, &st, 0);
	return pid;
}

int
ferry_uffd_open(int flags)
{
	long fd = syscall(SYS_userfaultfd, flags);
	if (fd >= 0)
		return (int)fd;
	int e = errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -e;
	fd = ioctl(dev, _IO(0xAA, 0x00) /* USERFAULTFD_IOC_NEW */, flags);
	e = errno;
	close(dev);
	return fd >= 0 ? (int)fd : -e;
}

int
ferry_uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len,
    uint64_t *done)
{
	uint64_t off = 0;
	int retries = 0;
	while (off < len) {
		struct uffdio_copy c = {
			.dst = dst + off, .src = src + off, .len = len - off,
			.mode = UFFDIO_COPY_MODE_DONTWAKE, .copy = 0,
		};
		if (ioctl(fd, UFFDIO_COPY, &c) == 0) {
			off = len;
			break;
		}
		int e = errno;
		if (c.copy > 0) {
			off += (uint64_t)c.copy;
			continue;
		}
		/* EAGAIN without progress: the address space is changing. */
		if ((e == EAGAIN || e == EINTR) && ++retries < 1000)
			continue;
		*done = off;
		return -e;
	}
	*done = off;
	return 0;
}

int
ferry_uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };
	return ioctl(fd, UFFDIO_UNREGISTER, &r) == 0 ? 0 : -errno;
}

int
ferry_fd_of_process(pid_t pid, int remote_fd)
{
	long pidfd = syscall(434 /* pidfd_open */, pid, 0);
	if (pidfd < 0)
		return -errno;
	long fd = syscall(438 /* pidfd_getfd */, (int)pidfd, remote_fd, 0);
	int e = errno;
	close((int)pidfd);
	return fd >= 0 ? (int)fd : -e;
}

static size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

int
ferry_probe_soft_dirty(void)
{
	size_t ps = page_size();
	volatile char *p = mmap(NULL, ps, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	p[0] = 1;
	int r;
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (write(fd, "4", 1) != 1) {
		r = -errno;
		close(fd);
		goto out;
	}
	close(fd);
	p[0] = 2;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)p / ps * 8);
	if (pread(fd, &e, 8, off) != 8)
		r = -errno;
	else
		r = (e >> 55) & 1;
	close(fd);
out:
	munmap((void *)p, ps);
	return r;
}

/* The page frame number of the page a pure read fault maps at `p`, from
 * /proc/self/pagemap (bits 0-54; root only): 0 when it cannot be read or
 * the page is not present. */
static uint64_t
read_fault_pfn(volatile char *p)
{
	size_t ps = page_size();
	(void)p[0];
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)p / ps * 8);
	ssize_t n = pread(fd, &e, 8, off);
	close(fd);
	if (n != 8 || !(e >> 63))
		return 0;
	return e & ((1ULL << 55) - 1);
}

void
ferry_probe_zero_pfns(uint64_t *small, uint64_t *huge)
{
	size_t ps = page_size(), hs = 2u << 20;
	*small = 0;
	*huge = 0;
	volatile char *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		*small = read_fault_pfn(p);
		munmap((void *)p, ps);
	}
	/* A read fault in a 2 MiB-aligned THP area maps the huge zero page
	 * where the kernel uses one; otherwise the small one again. */
	char *q = mmap(NULL, 2 * hs, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q == MAP_FAILED)
		return;
	char *aligned = (char *)(((uintptr_t)q + hs - 1) & ~(uintptr_t)(hs - 1));
	madvise(aligned, hs, MADV_HUGEPAGE);
	uint64_t pfn = read_fault_pfn(aligned);
	if (pfn != 0 && pfn != *small)
		*huge = pfn;
	munmap(q, 2 * hs);
}

/* linux/fs.h of 6.7+ (this system's headers are older). */
struct ferry_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask;
	uint64_t return_mask;
};
struct ferry_page_region {
	uint64_t start, end, categories;
};
#define FERRY_PAGEMAP_SCAN _IOWR('f', 16, struct ferry_pm_scan_arg)
#define FERRY_PM_SCAN_WP_MATCHING (1ULL << 0)
#define FERRY_PM_SCAN_CHECK_WPASYNC (1ULL << 1)
#define FERRY_PAGE_IS_WRITTEN (1ULL << 1)
#define FERRY_PAGE_IS_PRESENT (1ULL << 3)
#define FERRY_UFFD_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define FERRY_UFFD_FEATURE_WP_ASYNC (1ULL << 15)

/* One PAGEMAP_SCAN over [start, end), looping from walk_end; pages with
 * the category counted (or regions when count_pages == 0). */
static long
pagemap_scan(int fd, uint64_t start, uint64_t end, uint64_t flags,
    uint64_t category, int count_pages)
{
	struct ferry_page_region vec[64];
	long total = 0;
	uint64_t at = start;
	while (at < end) {
		struct ferry_pm_scan_arg a;
		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.flags = flags;
		a.start = at;
		a.end = end;
		a.vec = (uint64_t)(uintptr_t)vec;
		a.vec_len = 64;
		a.category_mask = category;
		a.return_mask = category;
		long n = ioctl(fd, FERRY_PAGEMAP_SCAN, &a);
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			total += count_pages ?
			    (long)((vec[i].end - vec[i].start) / page_size()) : 1;
		if (a.walk_end <= at)
			break;
		at = a.walk_end;
	}
	return total;
}

/* `pages` fresh anonymous pages, each written once; NULL (errno) if not. */
static char *
touched_pages(size_t pages)
{
	size_t ps = page_size();
	char *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	for (size_t i = 0; i < pages; i++)
		((volatile char *)p)[i * ps] = 1;
	return p;
}

long
ferry_probe_pagemap_scan(size_t pages)
{
	size_t ps = page_size();
	char *p = touched_pages(pages);
	if (p == NULL)
		return -errno;
	long r;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
	} else {
		r = pagemap_scan(fd, (uint64_t)(uintptr_t)p,
		    (uint64_t)(uintptr_t)p + pages * ps, 0,
		    FERRY_PAGE_IS_PRESENT, 1);
		close(fd);
	}
	munmap(p, pages * ps);
	return r;
}

/* uffd WP_ASYNC over `pages` touched pages of ferry's own, armed by a first
 * PAGEMAP_SCAN (PM_SCAN_WP_MATCHING), as pre-copy does it; then `act` on
 * them, and a scan counting PAGE_IS_WRITTEN pages: that count, or -errno. */
static long
wp_probe(size_t pages, void (*act)(char *p, size_t pages, size_t ps, size_t arg), size_t arg)
{
	size_t ps = page_size();
	size_t len = pages * ps;
	char *p = touched_pages(pages);
	if (p == NULL)
		return -errno;
	long r;
	int pm = -1;
	int uffd = ferry_uffd_open(O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		r = uffd;
		goto out;
	}
	struct uffdio_api api;
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	api.features = FERRY_UFFD_FEATURE_WP_ASYNC |
	    FERRY_UFFD_FEATURE_WP_UNPOPULATED;
	if (ioctl(uffd, UFFDIO_API, &api) != 0) {
		r = -errno;
		goto out;
	}
	struct uffdio_register reg;
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uint64_t)(uintptr_t)p;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
		r = -errno;
		goto out;
	}
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0) {
		r = -errno;
		goto out;
	}
	uint64_t s = (uint64_t)(uintptr_t)p, e = s + len;
	uint64_t fl = FERRY_PM_SCAN_WP_MATCHING | FERRY_PM_SCAN_CHECK_WPASYNC;
	r = pagemap_scan(pm, s, e, fl, FERRY_PAGE_IS_WRITTEN, 1);
	if (r < 0)
		goto out;
	act(p, pages, ps, arg);
	r = pagemap_scan(pm, s, e, fl, FERRY_PAGE_IS_WRITTEN, 1);
out:
	if (pm >= 0)
		close(pm);
	if (uffd >= 0)
		close(uffd);
	munmap(p, len);
	return r;
}

static void
write_some(char *p, size_t pages, size_t ps, size_t writes)
{
	for (size_t i = 0; i < writes && i < pages; i++)
		((volatile char *)p)[(i * 7 % pages) * ps] = 2;
}

static void
drop_all(char *p, size_t pages, size_t ps, size_t unused)
{
	(void)unused;
	madvise(p, pages * ps, MADV_DONTNEED);
}

long
ferry_probe_wp_scan(size_t pages, size_t writes)
{
	return wp_probe(pages, write_some, writes);
}

long
ferry_probe_wp_scan_dropped(size_t pages)
{
	return wp_probe(pages, drop_all, 0);
}


int
ferry_malloc_keep_below(size_t bytes)
{
	return mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1 && mallopt(M_TRIM_THRESHOLD, (int)bytes) == 1 ? 0 : -1;
}
