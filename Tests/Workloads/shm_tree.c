/* shm_tree: a parent and two children share memory in several ways, set up
 * before the forks:
 *   A: 4 pages of MAP_SHARED|MAP_ANONYMOUS — page 0 holds a counter per
 *      process and the stop flag, page 1 a pattern written before the forks,
 *      page 2 a mailbox, page 3 stays zero (the parent makes it read-only,
 *      splitting its mapping of A in two);
 *   B: 2 pages of /dev/zero mapped MAP_SHARED — a second counter per process;
 *   the second child also maps page 2 of A a second time (mremap with
 *      old_size 0: the same object at another address and offset) and
 *      writes its counter into the mailbox through that alias.
 * Every process counts up its words every millisecond and checks that the
 * others' words advance (at least every 5 s: a checkpoint may hold one side
 * a while) and never go back. At stop the parent raises the flag; each child
 * checks the pattern and the zero page and exits 0; the parent checks that
 * the mailbox, read through its own mapping of A, holds the alias's last
 * write. After a restore that split any of this into copies, a counter
 * stops or the mailbox disagrees. */
#include "wl.h"
#include <sys/mman.h>
#include <signal.h>
#include <sys/wait.h>

#define NPROC 3
#define PAGE 4096

struct head {
	volatile uint64_t seq[NPROC];
	volatile uint64_t stop;
};

static unsigned char *A, *B, *alias;

static struct head *head(void) { return (struct head *)A; }
static volatile uint64_t *bseq(void) { return (volatile uint64_t *)(B + PAGE); }

struct side {
	int me;
	uint64_t seen[2][NPROC], seen_at[2][NPROC];
};

static int pattern_ok(void)
{
	for (int i = 0; i < PAGE; i++)
		if (A[PAGE + i] != (unsigned char)(i * 7 + 3))
			return 0;
	for (int i = 0; i < PAGE; i++)
		if (A[3 * PAGE + i] != 0)
			return 0;
	return 1;
}

/* Returns 0 when another process's word has not moved for 5 s or went back. */
static int step(struct side *s)
{
	head()->seq[s->me]++;
	bseq()[s->me]++;
	if (alias) {
		uint64_t v = head()->seq[s->me];
		*(volatile uint64_t *)alias = v;
		if (*(volatile uint64_t *)(A + 2 * PAGE) != v) {
			wl_fail("the alias of page 2 and A's page 2 differ in process %d", (int)getpid());
			return 0;
		}
	}
	uint64_t now = wl_now_ns(CLOCK_MONOTONIC);
	for (int r = 0; r < 2; r++) {
		for (int p = 0; p < NPROC; p++) {
			if (p == s->me)
				continue;
			uint64_t v = r == 0 ? head()->seq[p] : bseq()[p];
			if (v < s->seen[r][p]) {
				wl_fail("process %d's counter in %s went back from %lu to %lu", p, r ? "B" : "A",
					(unsigned long)s->seen[r][p], (unsigned long)v);
				return 0;
			} else if (v > s->seen[r][p]) {
				s->seen[r][p] = v;
				s->seen_at[r][p] = now;
			} else if (now - s->seen_at[r][p] > 5000000000ull) {
				wl_fail("process %d's counter in %s stopped at %lu: the memory is no longer shared", p, r ? "B" : "A",
					(unsigned long)v);
				return 0;
			}
		}
	}
	return 1;
}

static void init_side(struct side *s, int me)
{
	memset(s, 0, sizeof(*s));
	s->me = me;
	uint64_t now = wl_now_ns(CLOCK_MONOTONIC);
	for (int r = 0; r < 2; r++)
		for (int p = 0; p < NPROC; p++)
			s->seen_at[r][p] = now;
}

static __attribute__((noreturn)) void child(int me)
{
	struct side s;
	if (me == 2) {
		alias = mremap(A + 2 * PAGE, 0, PAGE, MREMAP_MAYMOVE);
		if (alias == MAP_FAILED)
			_exit(3);
	}
	init_side(&s, me);
	while (!head()->stop) {
		if (!step(&s))
			_exit(1);
		if (getppid() == 1)
			_exit(2);
		wl_sleep_us(1000);
	}
	_exit(pattern_ok() ? 0 : 4);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	A = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
	if (A == MAP_FAILED || zero < 0)
		wl_setup_fail("map A or open /dev/zero");
	B = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, zero, 0);
	close(zero);
	if (B == MAP_FAILED)
		wl_setup_fail("map /dev/zero shared");
	for (int i = 0; i < PAGE; i++)
		A[PAGE + i] = (unsigned char)(i * 7 + 3);
	pid_t kids[NPROC - 1];
	for (int k = 1; k < NPROC; k++) {
		kids[k - 1] = fork();
		if (kids[k - 1] < 0)
			wl_setup_fail("fork");
		if (kids[k - 1] == 0)
			child(k);
	}
	if (mprotect(A + 3 * PAGE, PAGE, PROT_READ) != 0)
		wl_setup_fail("mprotect");
	struct side s;
	init_side(&s, 0);
	while (head()->seq[1] == 0 || head()->seq[2] == 0)
		wl_sleep_us(1000);
	wl_ready();
	while (!wl_stop() && step(&s))
		wl_sleep_us(1000);
	head()->stop = 1;
	for (int k = 0; k < NPROC - 1; k++) {
		int status = 0;
		uint64_t until = wl_now_ns(CLOCK_MONOTONIC) + 3000000000ull;
		pid_t r;
		while ((r = waitpid(kids[k], &status, WNOHANG)) == 0 && wl_now_ns(CLOCK_MONOTONIC) < until)
			wl_sleep_us(10000);
		if (r == 0) {
			kill(kids[k], SIGKILL);
			waitpid(kids[k], &status, 0);
			wl_fail("child %d never saw the stop flag: the memory is no longer shared", k + 1);
		} else {
			WL_CHECK(r == kids[k] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
				 "child %d ended with status 0x%x (1: a counter stopped, 4: pattern or zero page changed)", k + 1, status);
		}
	}
	WL_CHECK(pattern_ok(), "the pattern page or the zero page of A changed");
	WL_CHECK(*(volatile uint64_t *)(A + 2 * PAGE) == head()->seq[2],
		 "the mailbox holds %lu, the alias's last write was %lu", (unsigned long)*(volatile uint64_t *)(A + 2 * PAGE),
		 (unsigned long)head()->seq[2]);
	wl_finish();
}
