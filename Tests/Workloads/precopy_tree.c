/* precopy_tree CTLDIR [MiB=64] [dirty MiB/s=4] [children=2]: a tree for
 * pre-copy. Every process (the parent and each child) owns a private
 * anonymous area of MiB/(children+1) whose pages hold a pattern of (process,
 * index, generation) and rewrites pages with a new generation at the dirty
 * rate (split among the processes); each step checks 1 MiB, stop checks
 * every page.
 * A pipe always holds ~64 sequence numbers in flight: with no children the
 * process's own stdout is the write end of a pipe whose read end it keeps
 * (what a shell's `| reader` leaves, both ends here); with children the
 * parent writes and the first child reads. The reader takes a number only
 * while more than 64 are queued (FIONREAD) and checks there is no gap; at
 * stop the parent closes its end and the child drains to EOF.
 * With children, a MAP_SHARED|MAP_ANONYMOUS page holds each process's step
 * counter (checked never to go back by the others) and a done word each
 * child writes before it exits with its verdict: the parent fails unless it
 * sees every child's done word with the child's last count, which a restore
 * that split the shared memory loses. */
#include "wl.h"
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096
#define INFLIGHT 64
#define MAXKIDS 8
#define DONE_MAGIC 0xd0e0000000000000ull

struct shared {
	volatile uint64_t seq[MAXKIDS + 1];
	volatile uint64_t done[MAXKIDS + 1];
};

static int me, kids;
static uint8_t *area;
static uint32_t *gen;
static size_t npages, check_at, dirty_at;
static long rate_mib;
static uint64_t t0, dirtied, steps;
static struct shared *sh;
static uint64_t seen[MAXKIDS + 1];
static int rd = -1, wr = -1;
static uint64_t sent, want;

static uint64_t seed(size_t i)
{
	return ((uint64_t)me << 60) ^ ((uint64_t)i << 20) ^ ((uint64_t)gen[i] << 40);
}

static void check_page(size_t i)
{
	long bad = wl_verify(area + i * PAGE, PAGE, seed(i));
	WL_CHECK(bad < 0, "process %d page %zu word %ld: pattern mismatch (gen %u)", me, i, bad, gen[i]);
}

static int get(int fd, uint64_t *v)
{
	ssize_t n;
	do
		n = read(fd, v, sizeof(*v));
	while (n < 0 && errno == EINTR);
	return n == sizeof(*v) ? 1 : n == 0 ? 0 : -1;
}

static void take(void)
{
	uint64_t v;
	int r = get(rd, &v);
	WL_CHECK(r == 1, "process %d: pipe read %s", me, r == 0 ? "hit EOF" : strerror(errno));
	if (r == 1) {
		WL_CHECK(v == want, "process %d: pipe gave %lu, expected %lu", me, (unsigned long)v, (unsigned long)want);
		want = v + 1;
	}
}

static void step(void)
{
	steps++;
	for (int k = 0; k < 256; k++, check_at = (check_at + 1) % npages)
		check_page(check_at);
	uint64_t due = (wl_now_ns(CLOCK_MONOTONIC) - t0) * (uint64_t)rate_mib * 256 / (uint64_t)(kids + 1) / 1000000000ull;
	for (int k = 0; dirtied < due && k < 4096; k++, dirtied++) {
		gen[dirty_at]++;
		wl_fill(area + dirty_at * PAGE, PAGE, seed(dirty_at));
		dirty_at = (dirty_at + 1) % npages;
	}
	if (wr >= 0 && !wl_has_failed()) {
		WL_CHECK(wl_write_all(wr, &sent, sizeof(sent)) == 0, "process %d: pipe write: %s", me, strerror(errno));
		sent++;
	}
	if (rd >= 0) {
		int queued = 0;
		while (ioctl(rd, FIONREAD, &queued) == 0 && queued > INFLIGHT * 8 && !wl_has_failed())
			take();
	}
	if (sh) {
		sh->seq[me] = steps;
		for (int k = 0; k <= kids; k++) {
			uint64_t s = sh->seq[k];
			WL_CHECK(s >= seen[k], "process %d: counter of process %d went back (%lu < %lu)", me, k,
				 (unsigned long)s, (unsigned long)seen[k]);
			seen[k] = s;
		}
	}
}

static void final(void)
{
	for (size_t i = 0; i < npages; i++)
		check_page(i);
}

static void setup_memory(long mib)
{
	npages = (size_t)mib * 256 / (size_t)(kids + 1);
	area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(npages, sizeof(*gen));
	if (area == MAP_FAILED || !gen)
		wl_setup_fail("allocate");
	madvise(area, npages * PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < npages; i++)
		wl_fill(area + i * PAGE, PAGE, seed(i));
	t0 = wl_now_ns(CLOCK_MONOTONIC);
}

static void __attribute__((noreturn)) child(long mib)
{
	setup_memory(mib);
	while (!wl_stop()) {
		step();
		wl_sleep_us(1000);
	}
	if (rd >= 0) {
		uint64_t v;
		int r;
		while ((r = get(rd, &v)) == 1) {
			WL_CHECK(v == want, "process %d: pipe gave %lu at the end, expected %lu", me, (unsigned long)v, (unsigned long)want);
			want = v + 1;
		}
		WL_CHECK(r == 0, "process %d: pipe read at the end: %s", me, strerror(errno));
		WL_CHECK(want > INFLIGHT, "process %d: only %lu numbers came through the pipe", me, (unsigned long)want);
	}
	final();
	sh->done[me] = DONE_MAGIC | steps;
	if (wl_has_failed())
		wl_finish(); /* the child's reason in the result; the parent fails on its status too */
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	long mib = wl_arg(argc, argv, 2, 64);
	rate_mib = wl_arg(argc, argv, 3, 4);
	kids = (int)wl_arg(argc, argv, 4, 2);
	if (mib < 1 || mib > 1024 || rate_mib < 0 || kids < 0 || kids > MAXKIDS) {
		errno = EINVAL;
		wl_setup_fail("MiB must be 1..1024, rate >= 0, children 0..8");
	}
	int p[2];
	if (pipe(p) != 0)
		wl_setup_fail("pipe");
	pid_t pids[MAXKIDS];
	if (kids == 0) {
		/* stdout is the pipe's write end; the read end stays open here too */
		if (dup2(p[1], 1) < 0)
			wl_setup_fail("dup2");
		close(p[1]);
		wr = 1;
		rd = p[0];
	} else {
		sh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (sh == MAP_FAILED)
			wl_setup_fail("mmap shared");
		for (int k = 0; k < kids; k++) {
			pids[k] = fork();
			if (pids[k] < 0)
				wl_setup_fail("fork");
			if (pids[k] == 0) {
				me = k + 1;
				if (me == 1) {
					rd = p[0];
				} else {
					close(p[0]);
				}
				close(p[1]);
				child(mib);
			}
		}
		close(p[0]);
		wr = p[1];
	}
	setup_memory(mib);
	wl_ready();
	while (!wl_stop()) {
		step();
		wl_sleep_us(1000);
	}
	final();
	if (kids == 0) {
		while (sent > want && !wl_has_failed())
			take();
		WL_CHECK(want > INFLIGHT, "only %lu numbers came through the pipe", (unsigned long)want);
	} else {
		close(wr);
		for (int k = 0; k < kids; k++) {
			int status = 0;
			WL_CHECK(waitpid(pids[k], &status, 0) == pids[k], "waitpid(child %d): %s", k + 1, strerror(errno));
			WL_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed (status 0x%x; its reason is in result if it wrote last)",
				 k + 1, status);
			uint64_t d = sh->done[k + 1];
			WL_CHECK((d & ~0xffffffffffffull) == DONE_MAGIC && (d & 0xffffffffffffull) >= seen[k + 1],
				 "child %d's done word 0x%lx is not in the shared page (last count seen %lu): the shared memory was split",
				 k + 1, (unsigned long)d, (unsigned long)seen[k + 1]);
		}
	}
	wl_finish();
}
