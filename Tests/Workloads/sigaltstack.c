/* sigaltstack: an alternate signal stack (64 KiB, mmap'd) is set and
 * SIGUSR1's handler has SA_ONSTACK. The loop checks sigaltstack() still
 * reports it and raises SIGUSR1 now and then; in the handler the address of
 * a local must lie inside the alternate stack and sigaltstack() must report
 * SS_ONSTACK. The same is checked for a final signal at stop. */
#include "wl.h"
#include <signal.h>
#include <sys/mman.h>

#define ALT_SIZE (64 * 1024)
static uint8_t *alt;
static volatile sig_atomic_t runs, bad;
static volatile uintptr_t seen;

static void on_usr1(int sig)
{
	volatile int local = sig;
	stack_t cur;
	seen = (uintptr_t)&local;
	if (seen < (uintptr_t)alt || seen >= (uintptr_t)alt + ALT_SIZE)
		bad = 1;
	else if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_ONSTACK))
		bad = 2;
	runs++;
}

static void step(void)
{
	stack_t ss;
	WL_CHECK(sigaltstack(NULL, &ss) == 0 && ss.ss_sp == alt && ss.ss_size == ALT_SIZE &&
		 ss.ss_flags == 0, "sigaltstack now %p+%zu flags %d", ss.ss_sp, ss.ss_size, ss.ss_flags);
	int before = runs;
	raise(SIGUSR1);
	WL_CHECK(runs == before + 1, "SIGUSR1 handler did not run");
	WL_CHECK(bad == 0, "handler local at %#lx: %s (alt stack %p+%d)", (unsigned long)seen,
		 bad == 1 ? "not on the alternate stack" : "SS_ONSTACK not reported", (void *)alt, ALT_SIZE);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		wl_setup_fail("mmap");
	stack_t ss = { .ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0 };
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
	sigemptyset(&sa.sa_mask);
	if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
		wl_setup_fail("sigaltstack/sigaction");
	step();
	wl_ready();
	wl_loop(step, NULL, 20000);
}
