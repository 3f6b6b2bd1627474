/* anon_pattern CTLDIR [MiB=64] [dirty MiB/s=0]: a large anonymous area whose
 * pages are, by index: never touched (i%16==7), explicitly zeroed (i%16==3)
 * or filled with a pattern of (index, generation). A 16-page counter region
 * is rewritten every step; with a dirty rate, pattern pages are rewritten
 * with a new generation at that rate, so pre-copy keeps seeing dirty pages.
 * The loop checks 1 MiB per step; stop checks every page. */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096
#define CPAGES 16
enum { UNTOUCHED, ZERO, PATTERN };

static uint8_t *area;
static uint64_t *ctr;            /* CPAGES pages, word 0 of each = count */
static uint32_t *gen;            /* per-page generation, on the heap */
static size_t npages, check_at, dirty_at;
static long rate_mib;
static uint64_t count, t0, dirtied;
static const uint8_t zero[PAGE];

static int kind(size_t i)
{
	return i % 16 == 7 ? UNTOUCHED : i % 16 == 3 ? ZERO : PATTERN;
}

static uint64_t seed(size_t i)
{
	return ((uint64_t)i << 20) ^ ((uint64_t)gen[i] << 52);
}

static void check_page(size_t i, int read_untouched)
{
	uint8_t *p = area + i * PAGE;
	if (kind(i) == PATTERN) {
		long bad = wl_verify(p, PAGE, seed(i));
		WL_CHECK(bad < 0, "page %zu word %ld: pattern mismatch (gen %u)", i, bad, gen[i]);
	} else if (kind(i) == ZERO || read_untouched) {
		WL_CHECK(memcmp(p, zero, PAGE) == 0, "page %zu should be zero (%s)", i,
			 kind(i) == ZERO ? "zeroed" : "never touched");
	}
}

static void step(void)
{
	for (int k = 0; k < CPAGES; k++)
		WL_CHECK(ctr[k * PAGE / 8] == count, "counter page %d: %lu != %lu", k,
			 (unsigned long)ctr[k * PAGE / 8], (unsigned long)count);
	count++;
	for (int k = 0; k < CPAGES; k++)
		ctr[k * PAGE / 8] = count;
	for (int k = 0; k < 256; k++, check_at = (check_at + 1) % npages)
		check_page(check_at, 0);
	if (rate_mib > 0) {
		uint64_t due = (wl_now_ns(CLOCK_MONOTONIC) - t0) * (uint64_t)rate_mib * 256 / 1000000000ull;
		for (int k = 0; dirtied < due && k < 4096; k++, dirtied++) {
			while (kind(dirty_at) != PATTERN)
				dirty_at = (dirty_at + 1) % npages;
			gen[dirty_at]++;
			wl_fill(area + dirty_at * PAGE, PAGE, seed(dirty_at));
			dirty_at = (dirty_at + 1) % npages;
		}
	}
}

static void final(void)
{
	for (size_t i = 0; i < npages; i++)
		check_page(i, 1);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	long mib = wl_arg(argc, argv, 2, 64);
	rate_mib = wl_arg(argc, argv, 3, 0);
	if (mib < 1 || mib > 1024 || rate_mib < 0) {
		errno = EINVAL;
		wl_setup_fail("MiB must be 1..1024, rate >= 0");
	}
	npages = (size_t)mib * 256;
	area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ctr = mmap(NULL, CPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(npages, sizeof(*gen));
	if (area == MAP_FAILED || ctr == MAP_FAILED || !gen)
		wl_setup_fail("allocate");
	madvise(area, npages * PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < npages; i++) {
		if (kind(i) == PATTERN)
			wl_fill(area + i * PAGE, PAGE, seed(i));
		else if (kind(i) == ZERO)
			memset(area + i * PAGE, 0, PAGE);
	}
	t0 = wl_now_ns(CLOCK_MONOTONIC);
	wl_ready();
	wl_loop(step, final, 1000);
}
