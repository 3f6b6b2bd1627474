/* clock_loop: vDSO clock_gettime(MONOTONIC/REALTIME/BOOTTIME) and
 * gettimeofday in a loop. MONOTONIC and BOOTTIME never go backward;
 * REALTIME is after 2020 and agrees with gettimeofday and with the raw
 * clock_gettime syscall (a stale vDSO data page after restore shows here). */
#include "wl.h"
#include <sys/syscall.h>
#include <sys/time.h>

#define NS 1000000000ll
static int64_t last_mono, last_boot;

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * NS + t->tv_nsec;
}

static void step(void)
{
	struct timespec m, b, r, sm, sr;
	struct timeval tv;
	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_BOOTTIME, &b);
	clock_gettime(CLOCK_REALTIME, &r);
	gettimeofday(&tv, NULL);
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &sm);
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &sr);
	int64_t mono = ts_ns(&m), boot = ts_ns(&b), real = ts_ns(&r);
	int64_t tod = (int64_t)tv.tv_sec * NS + tv.tv_usec * 1000;
	WL_CHECK(mono >= last_mono, "MONOTONIC went back %lld ns", (long long)(last_mono - mono));
	WL_CHECK(boot >= last_boot, "BOOTTIME went back %lld ns", (long long)(last_boot - boot));
	WL_CHECK(m.tv_nsec >= 0 && m.tv_nsec < NS && r.tv_nsec >= 0 && r.tv_nsec < NS,
		 "tv_nsec out of range");
	WL_CHECK(r.tv_sec > 1577836800, "REALTIME %lld before 2020", (long long)r.tv_sec);
	WL_CHECK(tod - real > -NS && tod - real < NS,
		 "gettimeofday and REALTIME differ by %lld ns", (long long)(tod - real));
	WL_CHECK(ts_ns(&sm) >= mono && ts_ns(&sm) - mono < NS,
		 "vDSO MONOTONIC %lld vs syscall %lld", (long long)mono, (long long)ts_ns(&sm));
	WL_CHECK(ts_ns(&sr) - real > -NS && ts_ns(&sr) - real < NS,
		 "vDSO REALTIME %lld vs syscall %lld", (long long)real, (long long)ts_ns(&sr));
	last_mono = mono;
	last_boot = boot;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	step();
	wl_ready();
	wl_loop(step, NULL, 200);
}
