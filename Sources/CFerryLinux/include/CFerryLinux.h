#ifndef CFERRYLINUX_H
#define CFERRYLINUX_H
/* Fixed-argument wrappers for what Swift cannot call directly on Linux
 * (variadic ptrace/prctl/syscall, GNU-only process_vm_*, clone3).
 * Every function returns -errno on failure unless said otherwise. */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

long ferry_ptrace(long request, pid_t pid, uint64_t addr, uint64_t data);
long ferry_syscall6(long nr, uint64_t a1, uint64_t a2, uint64_t a3,
    uint64_t a4, uint64_t a5, uint64_t a6);

/* Vectored copies between this process and pid: n pairs of
 * (local, remote, len). Returns bytes moved or -errno. */
struct ferry_iov {
	uint64_t local;
	uint64_t remote;
	uint64_t len;
};
long ferry_vm_readv(pid_t pid, const struct ferry_iov *iov, size_t n);
long ferry_vm_writev(pid_t pid, const struct ferry_iov *iov, size_t n);

/* Starts `path` as a traced child stopped at its exec (SIGTRAP), with
 * clone3: set_tid (n entries, innermost namespace first) gives exact pids;
 * new_pidns != 0 adds CLONE_NEWPID; pidns_fd >= 0 first joins that pid
 * namespace for children (setns on this thread, undone afterwards).
 * Returns the child's pid in our namespace or -errno. The child is traced
 * by the calling thread. */
pid_t ferry_spawn_traced(const char *path, char *const argv[],
    char *const envp[], const pid_t *set_tid, size_t n_set_tid,
    int new_pidns, int pidns_fd);

/* Starts `path` detached (not traced) in a new pid namespace as its init,
 * with argv/envp; returns its pid in our namespace or -errno. */
/* unshare(CLONE_NEWTIME) for the calling thread's future children and set
 * the new namespace's CLOCK_MONOTONIC/BOOTTIME offsets (ns). 0 or -errno. */
int ferry_timens_for_children(long long monotonic_ns, long long boottime_ns);
pid_t ferry_spawn_pidns_init(const char *path, char *const argv[],
    char *const envp[]);

/* Container parts of a spawn (restore of a containerized process). */
struct ferry_ct_spawn {
	/* Extra clone3 flags (CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET,
	 * CLONE_NEWNS) for namespaces the child creates itself. */
	uint64_t clone_flags;
	/* Namespace fds the child joins with setns(fd, 0) before exec (in the
	 * child, which is single-threaded and shares no fs_struct, so joining
	 * a mount namespace works there). */
	const int *join_fds;
	size_t n_join;
	/* cgroup.procs (or v1 tasks) files opened for writing: the child
	 * writes "0" to each, so it is in every cgroup before it runs. */
	const int *cgroup_fds;
	size_t n_cgroup;
	/* sethostname / setdomainname in the child when not NULL (only with a
	 * new or joined uts namespace). */
	const char *hostname;
	const char *domainname;
	/* Bring the loopback device up (with a new network namespace). */
	int loopback_up;
};

/* ferry_spawn_traced with container parts (ct may be NULL). A failure in
 * the child (cgroup write, setns, sethostname) makes it exit with status
 * 100 + the step (1 cgroup, 2 setns, 3 hostname, 4 mount propagation,
 * 5 domainname, 6 loopback) before exec; the caller sees that instead of the exec stop. */
pid_t ferry_spawn_traced_ct(const char *path, char *const argv[],
    char *const envp[], const pid_t *set_tid, size_t n_set_tid,
    int new_pidns, int pidns_fd, const struct ferry_ct_spawn *ct);

/* ferry_spawn_pidns_init, also creating the namespaces in extra_flags and
 * setting hostname/domainname (may be NULL) and the loopback device's state
 * in them before exec. */
pid_t ferry_spawn_pidns_init_ct(const char *path, char *const argv[],
    char *const envp[], uint64_t extra_flags, const char *hostname,
    const char *domainname, int loopback_up);

/* Whether the loopback device of pid's network namespace is up (setns on
 * this thread and back): 1, 0, or -errno. */
int ferry_netns_loopback_up(pid_t pid);

/* A socket made in pid's network namespace (setns on this thread, socket,
 * setns back); it stays in that namespace. The fd (O_CLOEXEC) or -errno. */
int ferry_netns_socket(pid_t pid, int domain, int type, int proto);

/* The uts names of `pid` (setns into its uts namespace on this thread
 * and back). 0 or -errno. */
int ferry_uts_names(pid_t pid, char *host, size_t host_len, char *domain,
    size_t domain_len);

/* waitpid with __WALL; returns pid, status in *status, or -errno. */
long ferry_wait(pid_t pid, int *status, int nohang);

/* CPU: XCR0 (0 if no OSXSAVE), XSAVE standard-format size for XCR0,
 * and raw cpuid. */
uint64_t ferry_xgetbv0(void);
void ferry_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4]);

/* Makes a pipe; fds[0] read end, fds[1] write end. */
int ferry_pipe(int fds[2], int flags);
/* tee(2) from fd_in to fd_out without consuming: bytes or -errno. */
long ferry_tee(int fd_in, int fd_out, size_t len, unsigned flags);

/* prlimit64: limits as {soft, hard}; either pointer may be NULL. */
int ferry_prlimit(pid_t pid, int resource, const uint64_t *new_limit,
    uint64_t *old_limit);

/* prctl and ioctl with fixed arguments: result or -errno. */
long ferry_prctl(int option, uint64_t a2, uint64_t a3, uint64_t a4,
    uint64_t a5);
long ferry_ioctl(int fd, unsigned long request, uint64_t arg);

/* `ferry check` probes. Each one that needs a process of its own runs in a
 * child made here (raw clone, only async-signal-safe calls in the child),
 * reaped before returning. */
/* The child calls prctl(PR_SET_MM, PR_SET_MM_MAP) with its own current
 * values (from /proc/self/stat and brk(0); auxv and exe_fd unchanged).
 * 0 or -errno (-EPROTO if the child could not read its values). */
int ferry_probe_set_mm_map(void);
/* The child unshares CLONE_NEWPID and forks; the grandchild must see
 * getpid() == 1. 0, -errno, or -EPROTO when the pid is not 1. */
int ferry_probe_newpid(void);
/* clone3 with set_tid (n entries, innermost first; new_pidns adds
 * CLONE_NEWPID); the child exits at once and is reaped. Its pid in our
 * namespace or -errno. */
pid_t ferry_clone3_exit(const pid_t *set_tid, size_t n, int new_pidns);
/* userfaultfd(2) (falling back to /dev/userfaultfd): an fd or -errno. */
int ferry_uffd_open(int flags);
/* UFFDIO_COPY of `len` bytes from `src` (here) to `dst` in the process the
 * userfaultfd `fd` belongs to, without waking (nothing waits on it); partial
 * copies are continued. 0 when everything was copied, otherwise -errno with
 * *done = the bytes copied before the failure (-EEXIST: the page at
 * dst + *done is already populated). */
int ferry_uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len,
    uint64_t *done);
/* UFFDIO_UNREGISTER of [start, start + len): 0 or -errno. */
int ferry_uffd_unregister(int fd, uint64_t start, uint64_t len);
/* A copy of descriptor `remote_fd` of process `pid` in this process
 * (pidfd_open + pidfd_getfd, close-on-exec), or -errno. */
int ferry_fd_of_process(pid_t pid, int remote_fd);

/* Serve allocations up to `bytes` from the heap and keep up to `bytes` of
 * freed heap memory (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD); 0 on success. */
int ferry_malloc_keep_below(size_t bytes);
/* Soft-dirty: clear_refs 4, write a fresh page, read pagemap bit 55.
 * 1 set, 0 not set, or -errno. */
int ferry_probe_soft_dirty(void);
/* The PFNs of the shared zero page and of the huge zero page's first
 * small page (0 where not found: not root, no THP zero page). */
void ferry_probe_zero_pfns(uint64_t *small, uint64_t *huge);
/* PAGEMAP_SCAN on /proc/self/pagemap over `pages` touched anonymous pages
 * (category PAGE_IS_PRESENT): regions returned, or -errno. */
long ferry_probe_pagemap_scan(size_t pages);
/* Dirty tracking as pre-copy does it: uffd WP_ASYNC on `pages` pages, an
 * arming PAGEMAP_SCAN (PM_SCAN_WP_MATCHING), writes to `writes` of them,
 * then a scan counting PAGE_IS_WRITTEN pages: that count, or -errno. */
long ferry_probe_wp_scan(size_t pages, size_t writes);
/* The same tracking over `pages` pages, armed, then all of them dropped
 * with MADV_DONTNEED: how many the next scan reports written (this kernel
 * reports all: their PTEs are empty, not write-protected), or -errno. */
long ferry_probe_wp_scan_dropped(size_t pages);

/* errno of the calling thread. */
int ferry_errno(void);

/* What sock_diag reports of the AF_UNIX socket with inode `inode` (in
 * ferry's network namespace). The name is raw: an abstract name starts
 * with a NUL byte. */
#define FERRY_UNIX_MAX_ICONS 256
struct ferry_unix_info {
	uint8_t type, state, shutdown;
	/* rqueue: bytes to read, or a listener's queued connections; wqueue: a
	 * listener's backlog, or the memory of what a connected socket sent
	 * that its peer has not read. vfs_inode: the inode of a path name's file. */
	uint32_t peer, rqueue, wqueue, incoming, vfs_inode;
	int name_len;
	char name[108];
	/* A listener's queued connections (UNIX_DIAG_ICONS): the inode of each
	 * one's client, oldest first; the first FERRY_UNIX_MAX_ICONS of `incoming`. */
	uint32_t icons[FERRY_UNIX_MAX_ICONS];
};
/* 0, or -errno (-ENOENT: no such unix socket). unix_diag.c. */
int ferry_unix_diag(uint32_t inode, struct ferry_unix_info *out);

/* The TCP repair guard (repair_guard.c). Starts `path` with `argv` in a
 * session of its own, stdin/out/err on /dev/null, `channel` as fd 3, `lock`
 * as fd 4 and no other descriptor; returns its pid or -errno. */
#define FERRY_GUARD_MAX_FDS 4
pid_t ferry_spawn_guard(const char *path, char *const argv[], int channel, int lock);
/* Attaches a socket filter that drops every incoming segment (0 or -errno). */
int ferry_socket_drop_all(int fd);
/* A process-shared robust mutex in a memfd, locked by the calling thread:
 * its mapping, the memfd in *fd_out; NULL and errno on failure. The kernel
 * wakes a waiter when the locking thread dies (robust futex list, handled
 * as the dying thread releases its memory: before its descriptors are
 * closed and before its tracees are detached). */
void *ferry_guard_lock_new(int *fd_out);
/* Unlocks and unmaps it. */
void ferry_guard_lock_release(void *lock);
/* Waits for the lock in memfd `fd`: 0 when its holder unlocked it, 1 when
 * the holder died, -errno on failure. */
int ferry_guard_lock_wait(int fd);
/* sendmsg of `buf` with `fds` (SCM_RIGHTS, at most FERRY_GUARD_MAX_FDS),
 * MSG_NOSIGNAL: bytes sent or -errno. */
long ferry_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* recvmsg into `buf`, received descriptors (close-on-exec) into `fds`, their
 * count in *nfds: bytes received (0 at the end) or -errno. */
long ferry_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int dontwait);
/* The repair guard's hold socket: a SOCK_SEQPACKET Unix socket at abstract
 * name `name` (no leading NUL given), close-on-exec. `listen` binds and
 * listens, `connect` connects: the descriptor or -errno. */
int ferry_hold_listen(const char *name);
int ferry_hold_connect(const char *name);
/* The uid of the process at the other end of Unix socket `fd` (SO_PEERCRED), or -1. */
long ferry_peer_uid(int fd);

#endif
