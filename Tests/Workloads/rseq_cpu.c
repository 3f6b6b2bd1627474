/* rseq_cpu: glibc's registered rseq area (at __rseq_offset from the thread
 * pointer) is where sched_getcpu() reads the CPU. The loop pins itself to
 * each allowed CPU in turn and checks sched_getcpu() and the area's cpu_id
 * against the getcpu syscall (retrying a few times for a migration race).
 * A restore that does not re-register rseq leaves a stale cpu_id, caught
 * when the thread is moved to another CPU. At stop, registering the same
 * area again must fail with EBUSY (it is still registered). */
#include "wl.h"
#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

static cpu_set_t allowed;
static int cpus[CPU_SETSIZE], ncpu, at;

static struct rseq *area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static void check_cpu(void)
{
	int lib = -1, raw = -1, mine = -1;
	for (int tries = 0; tries < 10; tries++) {
		unsigned c;
		lib = sched_getcpu();
		mine = (int)__atomic_load_n(&area()->cpu_id, __ATOMIC_RELAXED);
		if (syscall(SYS_getcpu, &c, NULL, NULL) != 0)
			break;
		raw = (int)c;
		if (lib == raw && mine == raw)
			return;
	}
	wl_fail("sched_getcpu %d, rseq cpu_id %d, getcpu syscall %d", lib, mine, raw);
}

static void step(void)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpus[at], &one);
	if (ncpu > 1 && sched_setaffinity(0, sizeof(one), &one) != 0) {
		/* The target host may have fewer CPUs: drop this one, and with
		 * a single one left just check where we run. */
		WL_CHECK(errno == EINVAL, "sched_setaffinity: %s", strerror(errno));
		cpus[at] = cpus[--ncpu];
		if (ncpu == 1) {
			CPU_ZERO(&one);
			for (int c = 0; c < CPU_SETSIZE; c++)
				CPU_SET(c, &one);
			sched_setaffinity(0, sizeof(one), &one);
		}
	}
	at = (at + 1) % ncpu;
	check_cpu();
}

static void final(void)
{
	/* glibc registers at least 32 bytes even when __rseq_size says 20. */
	unsigned len = __rseq_size > 32 ? __rseq_size : 32;
	long r = syscall(SYS_rseq, area(), len, 0, RSEQ_SIG);
	if (r == 0) {
		wl_fail("rseq area was not registered after restore");
		syscall(SYS_rseq, area(), len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
	} else {
		WL_CHECK(errno == EBUSY, "re-registering rseq: %s, want EBUSY", strerror(errno));
	}
	sched_setaffinity(0, sizeof(allowed), &allowed);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	if (__rseq_size == 0) {
		errno = ENOSYS;
		wl_setup_fail("glibc did not register rseq (glibc.pthread.rseq=0?)");
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		wl_setup_fail("sched_getaffinity");
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[ncpu++] = c;
	step();
	wl_ready();
	wl_loop(step, final, 1000);
}
