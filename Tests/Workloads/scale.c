/* scale: a small process with one dimension grown, for the scaling
 * benchmarks (bench/scale_bench.py) and their tests.
 *   wl_scale CTLDIR threads N    N-1 extra threads, each sleeping in short
 *                                nanosleeps and counting in its own TLS
 *   wl_scale CTLDIR mappings N   N one-page anonymous mappings, protections
 *                                alternating RW / R so none merge, each
 *                                holding its own index
 *   wl_scale CTLDIR fds N        N descriptors of /dev/null (the lowest free
 *                                numbers after stdio)
 *   wl_scale CTLDIR procs N      a tree of N processes: N-1 children, each
 *                                with its own private pattern page, each
 *                                reporting its verdict through its exit code
 * At stop: every thread has counted since the restore, every mapping holds
 * its index with its protection, every fd is /dev/null with its flags,
 * every child exited 0. */
#include "wl.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

static long n;
static volatile int done;
static __thread unsigned long tls_count;
static unsigned long *counts;   /* published by each thread: its TLS count */

static void *sleeper(void *arg)
{
	long i = (long)arg;
	while (!done) {
		tls_count++;
		__atomic_store_n(&counts[i], tls_count, __ATOMIC_RELAXED);
		wl_sleep_us(20000);
	}
	return NULL;
}

static int run_threads(void)
{
	counts = calloc((size_t)n, sizeof(*counts));
	pthread_t *th = calloc((size_t)n, sizeof(*th));
	pthread_attr_t attr;
	if (!counts || !th || pthread_attr_init(&attr) || pthread_attr_setstacksize(&attr, 64 << 10))
		wl_setup_fail("allocation");
	for (long i = 1; i < n; i++)
		if (pthread_create(&th[i], &attr, sleeper, (void *)i))
			wl_setup_fail("pthread_create");
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	unsigned long *seen = calloc((size_t)n, sizeof(*seen));
	for (long i = 1; i < n; i++)
		seen[i] = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
	for (int round = 0; round < 500; round++) {
		long behind = 0;
		for (long i = 1; i < n; i++)
			behind += __atomic_load_n(&counts[i], __ATOMIC_RELAXED) == seen[i];
		if (behind == 0)
			break;
		if (round == 499)
			wl_fail("%ld of %ld threads made no progress after stop", behind, n - 1);
		wl_sleep_us(20000);
	}
	done = 1;
	for (long i = 1; i < n; i++)
		pthread_join(th[i], NULL);
	return 0;
}

static int run_mappings(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char **maps = calloc((size_t)n, sizeof(*maps));
	if (!maps)
		wl_setup_fail("allocation");
	/* One reservation, then a page each, so neighbours alternate protection. */
	char *base = mmap(NULL, (size_t)(n * page), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		wl_setup_fail("mmap reservation");
	for (long i = 0; i < n; i++) {
		maps[i] = base + i * page;
		if (mprotect(maps[i], (size_t)page, PROT_READ | PROT_WRITE))
			wl_setup_fail("mprotect");
		memcpy(maps[i], &i, sizeof(i));
		memset(maps[i] + sizeof(i), (int)(i & 0xff), 64);
		if ((i & 1) && mprotect(maps[i], (size_t)page, PROT_READ))
			wl_setup_fail("mprotect read-only");
	}
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	for (long i = 0; i < n && !wl_has_failed(); i++) {
		long v;
		memcpy(&v, maps[i], sizeof(v));
		WL_CHECK(v == i, "mapping %ld holds %ld", i, v);
		for (int k = 0; k < 64; k++)
			WL_CHECK((unsigned char)maps[i][sizeof(i) + k] == (i & 0xff), "mapping %ld byte %d", i, k);
	}
	/* Protections, as /proc/self/maps shows them. */
	char line[512], path[64];
	snprintf(path, sizeof(path), "/proc/self/maps");
	FILE *f = fopen(path, "r");
	long ro = 0, rw = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		/* A neighbouring mapping may have merged with the first or last page. */
		if (lo < (unsigned long)base)
			lo = (unsigned long)base;
		if (hi > (unsigned long)(base + n * page))
			hi = (unsigned long)(base + n * page);
		if (lo >= hi)
			continue;
		if (strncmp(perms, "r--p", 4) == 0)
			ro += (long)(hi - lo) / page;
		else if (strncmp(perms, "rw-p", 4) == 0)
			rw += (long)(hi - lo) / page;
	}
	if (f)
		fclose(f);
	WL_CHECK(ro == n / 2 && rw == n - n / 2, "protections: %ld read-only and %ld read-write pages, want %ld and %ld",
		 ro, rw, n / 2, n - n / 2);
	return 0;
}

static int run_fds(void)
{
	int first = -1;
	for (long i = 0; i < n; i++) {
		int fd = open("/dev/null", (i & 1) ? O_WRONLY : O_RDONLY);
		if (fd < 0)
			wl_setup_fail("open /dev/null");
		if (first < 0)
			first = fd;
		if ((i & 3) == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC))
			wl_setup_fail("F_SETFD");
	}
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	struct stat null;
	if (stat("/dev/null", &null))
		wl_fail("stat /dev/null: %s", strerror(errno));
	for (long i = 0; i < n && !wl_has_failed(); i++) {
		int fd = first + (int)i;
		struct stat st;
		int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
		WL_CHECK(fstat(fd, &st) == 0 && st.st_rdev == null.st_rdev, "fd %d is not /dev/null", fd);
		WL_CHECK(fl >= 0 && (fl & O_ACCMODE) == ((i & 1) ? O_WRONLY : O_RDONLY), "fd %d access mode %d", fd, fl);
		WL_CHECK(fdfl >= 0 && !!(fdfl & FD_CLOEXEC) == ((i & 3) == 0), "fd %d close-on-exec %d", fd, fdfl);
	}
	return 0;
}

static void child(long index)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(3);
	for (long k = 0; k < page; k++)
		p[k] = (unsigned char)(index * 7 + k);
	while (!wl_stop())
		wl_sleep_us(50000);
	for (long k = 0; k < page; k++)
		if (p[k] != (unsigned char)(index * 7 + k))
			_exit(4);
	_exit(0);
}

static int run_procs(void)
{
	pid_t *kids = calloc((size_t)n, sizeof(*kids));
	if (!kids)
		wl_setup_fail("allocation");
	for (long i = 1; i < n; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			wl_setup_fail("fork");
		if (kids[i] == 0)
			child(i);
	}
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(20000);
	for (long i = 1; i < n; i++) {
		int status;
		pid_t r;
		while ((r = waitpid(kids[i], &status, 0)) < 0 && errno == EINTR)
			;
		WL_CHECK(r == kids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "child %ld (pid %d): waitpid %d, status %#x", i, kids[i], r, status);
	}
	return 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	const char *kind = argc > 2 ? argv[2] : "threads";
	n = wl_arg(argc, argv, 3, 10);
	if (n < 1)
		n = 1;
	if (strcmp(kind, "threads") == 0)
		run_threads();
	else if (strcmp(kind, "mappings") == 0)
		run_mappings();
	else if (strcmp(kind, "fds") == 0)
		run_fds();
	else if (strcmp(kind, "procs") == 0)
		run_procs();
	else {
		errno = EINVAL;
		wl_setup_fail(kind);
	}
	wl_finish();
}
