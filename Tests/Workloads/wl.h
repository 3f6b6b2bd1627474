/*
 * wl.h — shared protocol helpers for ferry's self-checking workloads.
 *
 * Protocol (see README.md):
 *   wl_NAME CTLDIR [args...]
 *   - set up, then write the pid to CTLDIR/ready (via ready.tmp + rename);
 *   - loop checking invariants; each iteration checks CTLDIR/stop;
 *   - when stop exists: final verification, write CTLDIR/result
 *     ("PASS\n" or "FAIL: reason\n") atomically, exit 0 / 1.
 *
 * Header-only: every function is static inline so each workload is one .c.
 * Nothing here uses stdio buffering; output goes through write().
 */
#ifndef FERRY_WL_H
#define FERRY_WL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *wl_ctldir = ".";
static char wl_stop_file[PATH_MAX];
static char wl_reason[256];
static int wl_failed;

/* Build CTLDIR/name into buf (PATH_MAX bytes). */
static inline char *wl_path(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", wl_ctldir, name);
	return buf;
}

/* Record a failure; the first reason wins. Thread-safe, not signal-safe
 * (signal handlers should set a flag and let the loop call wl_fail). */
static inline void wl_fail(const char *fmt, ...)
{
	if (__atomic_exchange_n(&wl_failed, 1, __ATOMIC_SEQ_CST))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(wl_reason, sizeof(wl_reason), fmt, ap);
	va_end(ap);
	for (char *p = wl_reason; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

#define WL_CHECK(cond, ...) \
	do { if (!(cond)) wl_fail(__VA_ARGS__); } while (0)

static inline int wl_has_failed(void)
{
	return __atomic_load_n(&wl_failed, __ATOMIC_SEQ_CST);
}

static inline int wl_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write CTLDIR/name atomically: name.tmp, then rename. */
static inline int wl_write_atomic(const char *name, const char *data)
{
	char tmp[PATH_MAX], dst[PATH_MAX], tname[NAME_MAX];
	snprintf(tname, sizeof(tname), "%s.tmp", name);
	wl_path(tmp, tname);
	wl_path(dst, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int rc = wl_write_all(fd, data, strlen(data));
	rc |= fsync(fd);
	rc |= close(fd);
	if (rc == 0)
		rc = rename(tmp, dst);
	return rc;
}

/* Write the verdict and exit: 0 on PASS, 1 on FAIL. */
static inline __attribute__((noreturn)) void wl_finish(void)
{
	char line[sizeof(wl_reason) + 16];
	if (wl_has_failed())
		snprintf(line, sizeof(line), "FAIL: %s\n", wl_reason);
	else
		snprintf(line, sizeof(line), "PASS\n");
	/* Only the file: stderr may be a closed pipe after restore. */
	if (wl_write_atomic("result", line) != 0)
		_exit(2);
	_exit(wl_has_failed() ? 1 : 0);
}

/* A set-up step failed before ready: report it as the verdict and exit. */
static inline __attribute__((noreturn)) void wl_setup_fail(const char *what)
{
	wl_fail("setup: %s: %s", what, strerror(errno));
	wl_finish();
}

/* Parse CTLDIR; argv[2..] stay for the workload. */
static inline void wl_init(int argc, char **argv)
{
	if (argc < 2) {
		static const char usage[] = "usage: wl_NAME CTLDIR [args...]\n";
		(void)!write(STDERR_FILENO, usage, sizeof(usage) - 1);
		_exit(2);
	}
	wl_ctldir = argv[1];
	wl_path(wl_stop_file, "stop");
}

/* Numeric argument argv[i] or a default. */
static inline long wl_arg(int argc, char **argv, int i, long dflt)
{
	return i < argc ? strtol(argv[i], NULL, 0) : dflt;
}

static inline void wl_ready_pid(pid_t pid)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	if (wl_write_atomic("ready", buf) != 0)
		wl_setup_fail("write ready");
}

static inline void wl_ready(void)
{
	wl_ready_pid(getpid());
}

/* Cheap: one access() per call. */
static inline int wl_stop(void)
{
	return access(wl_stop_file, F_OK) == 0;
}

static inline uint64_t wl_now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep the whole interval, resuming after signal handlers. */
static inline void wl_sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Read a whole (small) file; returns bytes read or -1. */
static inline ssize_t wl_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return (ssize_t)got;
}

/* The common shape: call step() every period_us until stop appears, then
 * final() once, then report. step and final may be NULL. */
static inline __attribute__((noreturn)) void
wl_loop(void (*step)(void), void (*final)(void), long period_us)
{
	while (!wl_stop()) {
		if (step)
			step();
		if (period_us > 0)
			wl_sleep_us(period_us);
	}
	if (step)
		step();
	if (final)
		final();
	wl_finish();
}

/* Deterministic 64-bit mix used for patterns (splitmix64 finaliser). */
static inline uint64_t wl_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Fill / check a buffer of 64-bit words with wl_mix(seed + i). Returns the
 * index of the first bad word or -1. */
static inline void wl_fill(void *p, size_t bytes, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < bytes / 8; i++)
		w[i] = wl_mix(seed + i);
}

static inline long wl_verify(const void *p, size_t bytes, uint64_t seed)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < bytes / 8; i++)
		if (w[i] != wl_mix(seed + i))
			return (long)i;
	return -1;
}

/* Waits up to timeout_ns for child `kid` (polling every 10 ms). Returns its
 * pid with *status set, or 0 after killing (SIGKILL) and reaping a child
 * that did not end in time. */
static inline pid_t wl_wait_child(pid_t kid, uint64_t timeout_ns, int *status)
{
	uint64_t until = wl_now_ns(CLOCK_MONOTONIC) + timeout_ns;
	pid_t r;
	while ((r = waitpid(kid, status, WNOHANG)) == 0 && wl_now_ns(CLOCK_MONOTONIC) < until)
		wl_sleep_us(10000);
	if (r == 0) {
		kill(kid, SIGKILL);
		waitpid(kid, status, 0);
	}
	return r;
}

#endif /* FERRY_WL_H */
