/* event_fds: an eventfd counter, a semaphore eventfd, a periodic timerfd, a
 * REALTIME absolute timerfd an hour away, a timerfd with an expiration not
 * read yet, a signalfd with a pending signal, an epoll watching several of
 * them, a dup of the pipe's write end, and a log written through two dup'ed
 * fds (one shared offset).
 *
 * While running: the counter eventfd holds exactly what was written since
 * the last drain; the epoll reports it (and only with its data word); the
 * log offset seen through both fds equals the bytes written.
 * At stop: the semaphore eventfd yields 1 five times then EAGAIN; the
 * pending timer tick and the pending SIGUSR2 are still there; the periodic
 * timer still ticks with a 20 ms period; the hour timer is armed about where
 * it was; the pipe becomes ready through the edge-triggered epoll watch, and
 * what is written through the dup of its write end comes out of the same
 * pipe; the log holds every record once, in order. */
#include "wl.h"
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#define REC 12
enum { DATA_CTR = 0xE1, DATA_PIPE = 0xE2, DATA_TICK = 0xE3 };

static int ctr, sem, tick, hour, pend, sfd, ep, pipefd[2], pipew2, log1, log2;
static uint64_t written_since_drain, steps, records, hour_deadline;
static char path[PATH_MAX];

static void record(int fd)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%010lu\n", (unsigned long)records);
	if (wl_write_all(fd, buf, REC) != 0) {
		wl_fail("write record %lu: %s", (unsigned long)records, strerror(errno));
		return;
	}
	records++;
	off_t a = lseek(log1, 0, SEEK_CUR), b = lseek(log2, 0, SEEK_CUR);
	WL_CHECK(a == (off_t)(records * REC) && b == a, "after %lu records the offsets are %ld and %ld",
		 (unsigned long)records, (long)a, (long)b);
}

/* Events the epoll reports right now, as a bit set of data words seen. */
static unsigned ready_now(int timeout_ms)
{
	struct epoll_event ev[8];
	int n = epoll_wait(ep, ev, 8, timeout_ms);
	unsigned seen = 0;
	for (int i = 0; i < n; i++) {
		switch (ev[i].data.u64) {
		case DATA_CTR: seen |= 1; break;
		case DATA_PIPE: seen |= 2; break;
		case DATA_TICK: seen |= 4; break;
		default: wl_fail("epoll reported unknown data %#llx", (unsigned long long)ev[i].data.u64);
		}
	}
	return seen;
}

static void step(void)
{
	uint64_t one = 1;
	WL_CHECK(write(ctr, &one, 8) == 8, "write eventfd: %s", strerror(errno));
	written_since_drain++;
	WL_CHECK(ready_now(0) & 1, "epoll does not report the eventfd with %lu in it", (unsigned long)written_since_drain);
	if (++steps % 50 == 0) {
		uint64_t v = 0;
		WL_CHECK(read(ctr, &v, 8) == 8 && v == written_since_drain, "eventfd held %lu, want %lu",
			 (unsigned long)v, (unsigned long)written_since_drain);
		written_since_drain = 0;
		WL_CHECK(!(ready_now(0) & 1), "epoll reports the drained eventfd");
	}
	record(steps & 1 ? log1 : log2);
	uint64_t ticks;
	(void)!read(tick, &ticks, 8); /* keep the periodic timer drained */
}

static void final(void)
{
	uint64_t v;
	for (int i = 0; i < 5; i++)
		WL_CHECK(read(sem, &v, 8) == 8 && v == 1, "semaphore read %d: %s (v %lu)", i, strerror(errno), (unsigned long)v);
	WL_CHECK(read(sem, &v, 8) < 0 && errno == EAGAIN, "semaphore eventfd not empty after 5 reads");
	WL_CHECK(read(pend, &v, 8) == 8 && v == 1, "the unread tick of the one-shot timer is gone (%s)", strerror(errno));

	struct signalfd_siginfo si;
	WL_CHECK(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2,
		 "signalfd did not deliver the pending SIGUSR2 (%s)", strerror(errno));

	struct itimerspec its;
	WL_CHECK(timerfd_gettime(tick, &its) == 0 && its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 20000000,
		 "periodic timer interval is %ld.%09ld", (long)its.it_interval.tv_sec, its.it_interval.tv_nsec);
	/* Drain the counter so epoll_wait waits for the timer instead of returning at once
	 * (just after a drain it is empty: the read must say EAGAIN). */
	v = 0;
	ssize_t got = read(ctr, &v, 8);
	if (written_since_drain == 0)
		WL_CHECK(got < 0 && errno == EAGAIN, "drained eventfd held %lu", (unsigned long)v);
	else
		WL_CHECK(got == 8 && v == written_since_drain, "eventfd held %lu, want %lu",
			 (unsigned long)v, (unsigned long)written_since_drain);
	(void)!read(tick, &v, 8);
	unsigned seen = 0;
	for (int i = 0; i < 10 && !(seen & 4); i++)
		seen |= ready_now(50);
	WL_CHECK(seen & 4, "the periodic timer stopped ticking");

	uint64_t now = wl_now_ns(CLOCK_REALTIME);
	WL_CHECK(timerfd_gettime(hour, &its) == 0, "timerfd_gettime(hour)");
	uint64_t left = (uint64_t)its.it_value.tv_sec * 1000000000ull + (uint64_t)its.it_value.tv_nsec;
	int64_t skew = (int64_t)(now + left) - (int64_t)hour_deadline;
	WL_CHECK(left > 0 && skew > -100000000 && skew < 100000000,
		 "hour timer fires %lld ns away from its deadline", (long long)skew);

	WL_CHECK(!(ready_now(0) & 2), "the empty pipe reads as ready");
	WL_CHECK(write(pipefd[1], "x", 1) == 1, "write pipe");
	WL_CHECK(ready_now(100) & 2, "the edge-triggered pipe watch did not fire");
	WL_CHECK(!(ready_now(0) & 2), "the edge-triggered pipe watch fired twice");
	char two[3] = { 0 };
	WL_CHECK(write(pipew2, "y", 1) == 1, "write through the dup of the pipe's write end");
	WL_CHECK(read(pipefd[0], two, 2) == 2 && memcmp(two, "xy", 2) == 0, "pipe gave \"%s\", want \"xy\"", two);

	WL_CHECK((fcntl(ctr, F_GETFL) & O_NONBLOCK) && (fcntl(ctr, F_GETFD) & FD_CLOEXEC), "eventfd flags lost");
	close(log1);
	close(log2);
	size_t cap = records * REC + 1;
	char *buf = malloc(cap), want[32];
	ssize_t n = buf ? wl_read_file(path, buf, cap) : -1;
	WL_CHECK(n == (ssize_t)(records * REC), "log has %zd bytes, want %lu", n, (unsigned long)(records * REC));
	for (unsigned long i = 0; n > 0 && i < records; i++) {
		snprintf(want, sizeof(want), "%010lu\n", i);
		if (memcmp(buf + i * REC, want, REC) != 0) {
			wl_fail("log record %lu is \"%.10s\"", i, buf + i * REC);
			break;
		}
	}
	free(buf);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	ctr = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sem = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
	tick = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	hour = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	pend = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (ctr < 0 || sem < 0 || tick < 0 || hour < 0 || pend < 0)
		wl_setup_fail("eventfd/timerfd");
	struct itimerspec periodic = { { 0, 20000000 }, { 0, 20000000 } }, once = { { 0, 0 }, { 0, 1000000 } };
	hour_deadline = wl_now_ns(CLOCK_REALTIME) + 3600ull * 1000000000ull;
	struct itimerspec abs_hour = { { 0, 0 }, { (time_t)(hour_deadline / 1000000000ull), (long)(hour_deadline % 1000000000ull) } };
	if (timerfd_settime(tick, 0, &periodic, NULL) || timerfd_settime(pend, 0, &once, NULL) ||
	    timerfd_settime(hour, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &abs_hour, NULL))
		wl_setup_fail("timerfd_settime");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) || (sfd = signalfd(-1, &set, SFD_NONBLOCK)) < 0)
		wl_setup_fail("signalfd");
	kill(getpid(), SIGUSR2);

	if (pipe2(pipefd, O_NONBLOCK) || (pipew2 = dup(pipefd[1])) < 0 || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		wl_setup_fail("pipe/dup/epoll");
	struct epoll_event e1 = { EPOLLIN, { .u64 = DATA_CTR } }, e2 = { EPOLLIN | EPOLLET, { .u64 = DATA_PIPE } },
			   e3 = { EPOLLIN, { .u64 = DATA_TICK } };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ctr, &e1) || epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &e2) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, tick, &e3))
		wl_setup_fail("epoll_ctl");

	/* Not O_APPEND: the two fds must keep sharing one offset. */
	log1 = open(wl_path(path, "shared.log"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (log1 < 0 || (log2 = dup(log1)) < 0)
		wl_setup_fail("open/dup log");
	wl_sleep_us(5000); /* the one-shot timer has expired: one unread tick */
	step();
	wl_ready();
	wl_loop(step, final, 2000);
}
