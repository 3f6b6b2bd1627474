/* fd_kinds KIND: holds one kind of descriptor or mapping the kernel can
 * show, and at stop checks that it is still there with its state. Run
 * through checkpoint/restore, each kind must either pass (carried) or be
 * refused at checkpoint (KindWalkTests): never restored without it.
 * Kinds: file dir pipe pipe_reopen fifo fifo_data socket eventfd epoll signalfd timerfd
 * inotify fanotify userfaultfd pidfd memfd io_uring perf_event bpf procfile
 * ptmx devnull deleted anon_shared anon_private file_private file_shared_ro memfd_map
 * sysv_shm aio. */
#include "wl.h"
#include <linux/aio_abi.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <linux/perf_event.h>
#include <linux/bpf.h>
#include <linux/userfaultfd.h>

#define FD 20
static const char *kind;
static char path[PATH_MAX];
static volatile uint8_t *map;
static int peer = -1;

/* Moves a new descriptor to FD. */
static void at_fd(int fd, const char *what)
{
	if (fd < 0)
		wl_setup_fail(what);
	if (fd != FD && (dup2(fd, FD) != FD || close(fd) != 0))
		wl_setup_fail("dup2");
}

static mode_t fd_type(void)
{
	struct stat st;
	return fstat(FD, &st) == 0 ? st.st_mode & S_IFMT : 0;
}

static int is(const char *k) { return strcmp(kind, k) == 0; }

static void setup(void)
{
	if (is("file") || is("deleted")) {
		wl_path(path, "file");
		at_fd(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), "open");
		if (write(FD, "hello world", 11) != 11 || lseek(FD, 6, SEEK_SET) != 6)
			wl_setup_fail("write");
		if (is("deleted"))
			unlink(path);
	} else if (is("dir")) {
		at_fd(open("/", O_RDONLY | O_DIRECTORY), "open /");
	} else if (is("pipe")) {
		int p[2];
		if (pipe(p) || write(p[1], "abc", 3) != 3)
			wl_setup_fail("pipe");
		at_fd(p[0], "pipe");
		peer = p[1];
	} else if (is("pipe_reopen")) {
		/* A second open file of the read end (through /proc), non-blocking; the first stays blocking. */
		int p[2];
		char self[64];
		if (pipe(p))
			wl_setup_fail("pipe");
		snprintf(self, sizeof self, "/proc/self/fd/%d", p[0]);
		at_fd(open(self, O_RDONLY | O_NONBLOCK), "open /proc/self/fd");
		if (dup2(p[0], 31) != 31)
			wl_setup_fail("dup2");
		close(p[0]);
		peer = p[1];
	} else if (is("fifo") || is("fifo_data")) {
		wl_path(path, "fifo");
		if (mkfifo(path, 0600))
			wl_setup_fail("mkfifo");
		at_fd(open(path, O_RDWR), "open fifo");
		if (is("fifo_data") && write(FD, "xyz", 3) != 3)
			wl_setup_fail("write fifo");
	} else if (is("socket")) {
		int s[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, s))
			wl_setup_fail("socketpair");
		at_fd(s[0], "socket");
		peer = s[1];
		if (write(peer, "sock", 4) != 4)
			wl_setup_fail("write socket");
	} else if (is("eventfd")) {
		at_fd(eventfd(7, 0), "eventfd");
	} else if (is("epoll")) {
		int e = epoll_create1(0), p[2];
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
		if (pipe(p) || dup2(p[0], 30) != 30 || e < 0 || epoll_ctl(e, EPOLL_CTL_ADD, 30, &ev))
			wl_setup_fail("epoll");
		peer = p[1];
		at_fd(e, "epoll");
	} else if (is("signalfd")) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGUSR2);
		sigprocmask(SIG_BLOCK, &s, NULL);
		at_fd(signalfd(-1, &s, 0), "signalfd");
	} else if (is("timerfd")) {
		struct itimerspec t = { .it_value = { 3600, 0 } };
		int f = timerfd_create(CLOCK_MONOTONIC, 0);
		if (f < 0 || timerfd_settime(f, 0, &t, NULL))
			wl_setup_fail("timerfd");
		at_fd(f, "timerfd");
	} else if (is("inotify")) {
		int f = inotify_init1(0);
		if (f < 0 || inotify_add_watch(f, "/", IN_CREATE) < 0)
			wl_setup_fail("inotify");
		at_fd(f, "inotify");
	} else if (is("fanotify")) {
		at_fd(fanotify_init(FAN_CLASS_NOTIF, O_RDONLY), "fanotify_init");
	} else if (is("userfaultfd")) {
		struct uffdio_api api = { .api = UFFD_API };
		at_fd((int)syscall(SYS_userfaultfd, 0), "userfaultfd");
		if (ioctl(FD, UFFDIO_API, &api))
			wl_setup_fail("UFFDIO_API");
	} else if (is("pidfd")) {
		at_fd((int)syscall(SYS_pidfd_open, getpid(), 0), "pidfd_open");
	} else if (is("memfd")) {
		at_fd(memfd_create("kinds", 0), "memfd_create");
		if (write(FD, "memfd", 5) != 5)
			wl_setup_fail("write memfd");
	} else if (is("io_uring")) {
		uint8_t params[120] = { 0 };
		at_fd((int)syscall(SYS_io_uring_setup, 4, params), "io_uring_setup");
	} else if (is("perf_event")) {
		struct perf_event_attr a = { .type = PERF_TYPE_SOFTWARE, .size = sizeof a,
					     .config = PERF_COUNT_SW_TASK_CLOCK };
		at_fd((int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0), "perf_event_open");
	} else if (is("bpf")) {
		union bpf_attr a;
		memset(&a, 0, sizeof a);
		a.map_type = BPF_MAP_TYPE_ARRAY;
		a.key_size = 4;
		a.value_size = 4;
		a.max_entries = 1;
		at_fd((int)syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a), "bpf map");
	} else if (is("procfile")) {
		at_fd(open("/proc/self/status", O_RDONLY), "open /proc/self/status");
	} else if (is("ptmx")) {
		at_fd(posix_openpt(O_RDWR | O_NOCTTY), "posix_openpt");
	} else if (is("devnull")) {
		at_fd(open("/dev/null", O_RDWR), "open /dev/null");
	} else if (is("anon_shared") || is("anon_private")) {
		map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, (is("anon_shared") ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED)
			wl_setup_fail("mmap");
		map[100] = 0x5a;
	} else if (is("file_private") || is("memfd_map")) {
		int f = -1;
		if (is("file_private")) {
			wl_path(path, "mapped");
			f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		} else {
			f = memfd_create("kinds-map", 0);
		}
		if (f < 0 || ftruncate(f, 4096))
			wl_setup_fail("file to map");
		map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, is("memfd_map") ? MAP_SHARED : MAP_PRIVATE, f, 0);
		close(f);
		if (map == MAP_FAILED)
			wl_setup_fail("mmap");
		map[100] = 0x5a;
	} else if (is("file_shared_ro")) {
		/* Read-only now, of a file opened read-write: mprotect may make it writable. */
		wl_path(path, "mapped");
		int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (f < 0 || ftruncate(f, 4096))
			wl_setup_fail("file to map");
		map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, f, 0);
		close(f);
		if (map == MAP_FAILED)
			wl_setup_fail("mmap");
	} else if (is("sysv_shm")) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0)
			wl_setup_fail("shmget");
		map = shmat(id, NULL, 0);
		shmctl(id, IPC_RMID, NULL);
		if (map == (void *)-1)
			wl_setup_fail("shmat");
		map[100] = 0x5a;
	} else if (is("aio")) {
		aio_context_t ctx = 0;
		if (syscall(SYS_io_setup, 8, &ctx))
			wl_setup_fail("io_setup");
		map = (volatile uint8_t *)ctx;
	} else {
		errno = EINVAL;
		wl_setup_fail(kind);
	}
}

static void check(void)
{
	char buf[64] = { 0 };
	if (is("file")) {
		WL_CHECK(lseek(FD, 0, SEEK_CUR) == 6, "file offset %ld", (long)lseek(FD, 0, SEEK_CUR));
		WL_CHECK(read(FD, buf, 5) == 5 && memcmp(buf, "world", 5) == 0, "file reads \"%s\"", buf);
	} else if (is("deleted") || is("memfd")) {
		WL_CHECK(pread(FD, buf, 5, 0) == 5 && (memcmp(buf, "hello", 5) == 0 || memcmp(buf, "memfd", 5) == 0),
			 "%s reads \"%s\"", kind, buf);
	} else if (is("dir")) {
		WL_CHECK(fd_type() == S_IFDIR, "fd %d is no directory", FD);
	} else if (is("pipe")) {
		WL_CHECK(read(FD, buf, 3) == 3 && memcmp(buf, "abc", 3) == 0, "pipe reads \"%s\"", buf);
	} else if (is("pipe_reopen")) {
		WL_CHECK(fcntl(FD, F_GETFL) & O_NONBLOCK, "the reopened end lost O_NONBLOCK");
		WL_CHECK(!(fcntl(31, F_GETFL) & O_NONBLOCK), "the first end gained O_NONBLOCK");
		WL_CHECK(write(peer, "p", 1) == 1 && read(FD, buf, 1) == 1 && buf[0] == 'p', "the reopened end reads no byte");
	} else if (is("fifo") || is("fifo_data")) {
		WL_CHECK(fd_type() == S_IFIFO, "fd %d is no FIFO", FD);
		int n = -1;
		ioctl(FD, FIONREAD, &n);
		WL_CHECK(n == (is("fifo_data") ? 3 : 0), "FIFO holds %d bytes", n);
	} else if (is("socket")) {
		WL_CHECK(read(FD, buf, 4) == 4 && memcmp(buf, "sock", 4) == 0, "socket reads \"%s\"", buf);
	} else if (is("eventfd")) {
		uint64_t v = 0;
		WL_CHECK(read(FD, &v, 8) == 8 && v == 7, "eventfd reads %lu", (unsigned long)v);
	} else if (is("epoll")) {
		struct epoll_event ev;
		WL_CHECK(write(peer, "e", 1) == 1, "write to the watched pipe");
		WL_CHECK(epoll_wait(FD, &ev, 1, 1000) == 1 && ev.data.u64 == 77, "epoll lost its watch of fd 30");
	} else if (is("signalfd")) {
		kill(getpid(), SIGUSR2);
		struct signalfd_siginfo si;
		WL_CHECK(read(FD, &si, sizeof si) == sizeof si && si.ssi_signo == SIGUSR2, "signalfd read no SIGUSR2");
	} else if (is("timerfd")) {
		struct itimerspec t;
		WL_CHECK(timerfd_gettime(FD, &t) == 0 && t.it_value.tv_sec > 3000, "timerfd disarmed");
	} else if (is("anon_shared") || is("anon_private") || is("file_private") || is("memfd_map") || is("sysv_shm")) {
		WL_CHECK(map[100] == 0x5a, "%s mapping lost its byte", kind);
	} else if (is("file_shared_ro")) {
		if (mprotect((void *)map, 4096, PROT_READ | PROT_WRITE) == 0)
			map[7] = 7;
		else
			wl_fail("mprotect to write: %s", strerror(errno));
	} else if (is("aio")) {
		WL_CHECK(syscall(SYS_io_destroy, (aio_context_t)map) == 0, "io_destroy: %s", strerror(errno));
	} else {
		/* The rest: the descriptor is still of its kind. */
		char link[64], want[PATH_MAX] = { 0 };
		snprintf(link, sizeof link, "/proc/self/fd/%d", FD);
		WL_CHECK(readlink(link, want, sizeof want - 1) > 0, "fd %d is gone", FD);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	kind = argc > 2 ? argv[2] : "";
	setup();
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(10000);
	check();
	wl_finish();
}
