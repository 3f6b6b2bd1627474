/* precopy_churn CTLDIR [MiB=32] [layout=0]: memory that changes behind the
 * back of write tracking while pre-copy runs. An anonymous area of MiB in
 * 64-page chunks; every step (1 ms) one chunk, in rotation, gets the next of:
 *   0 MADV_DONTNEED (its pages read as zero from then on),
 *   1 re-filled with a new pattern generation (after being dropped),
 *   2 MADV_DONTNEED, then every 4th page read (maps the zero page),
 *   3 explicitly zeroed with memset (written zeros over a pattern),
 *   4 re-filled with a new pattern generation.
 * A separate 16-page mapping (between PROT_NONE guards, so it stays its own
 * mapping) is replaced every 8 steps: munmap + mmap MAP_FIXED at the same
 * address, then filled with a new generation — the mappings look the same
 * but the new one is not the one registered for tracking.
 * With layout=1, a 32-page mapping elsewhere also appears and disappears
 * every 16 steps (the mappings differ between pre-copy and the end).
 * Expected contents are tracked per page (generation 0 = zero); the loop
 * checks 64 pages per step, stop checks every page. */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096
#define CHUNK 64
#define BPAGES 16
#define XPAGES 32

static uint8_t *area, *bmap, *xmap;
static uint32_t *gen, bgen;
static size_t npages, nchunks, chunk_at, check_at;
static uint64_t steps;
static long layout;
static volatile uint8_t sink;

static uint64_t seed(size_t i, uint32_t g)
{
	return ((uint64_t)i << 24) ^ ((uint64_t)g << 48) ^ 0x5eedull;
}

static void check_page(size_t i)
{
	uint8_t *p = area + i * PAGE;
	if (gen[i] == 0) {
		static const uint8_t zero[PAGE];
		WL_CHECK(memcmp(p, zero, PAGE) == 0, "page %zu should be zero (dropped or zeroed)", i);
	} else {
		long bad = wl_verify(p, PAGE, seed(i, gen[i]));
		WL_CHECK(bad < 0, "page %zu word %ld: pattern mismatch (generation %u)", i, bad, gen[i]);
	}
}

static void fill_chunk(size_t c)
{
	for (size_t i = c * CHUNK; i < (c + 1) * CHUNK; i++) {
		gen[i]++;
		if (gen[i] == 0)
			gen[i] = 1;
		wl_fill(area + i * PAGE, PAGE, seed(i, gen[i]));
	}
}

static void replace_b(void)
{
	if (munmap(bmap, BPAGES * PAGE) != 0)
		wl_fail("munmap of the replaced mapping: %s", strerror(errno));
	void *p = mmap(bmap, BPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p != bmap)
		wl_fail("mmap MAP_FIXED of the replaced mapping: %s", strerror(errno));
	bgen++;
	wl_fill(bmap, BPAGES * PAGE, seed(1u << 30, bgen));
}

static void step(void)
{
	size_t c = chunk_at % nchunks;
	uint8_t *p = area + c * CHUNK * PAGE;
	switch ((chunk_at / nchunks + c) % 5) {
	case 0:
	case 2:
		if (madvise(p, CHUNK * PAGE, MADV_DONTNEED) != 0)
			wl_fail("madvise(MADV_DONTNEED): %s", strerror(errno));
		for (size_t i = c * CHUNK; i < (c + 1) * CHUNK; i++)
			gen[i] = 0;
		if ((chunk_at / nchunks + c) % 5 == 2)
			for (size_t k = 0; k < CHUNK; k += 4)
				sink += p[k * PAGE];
		break;
	case 3:
		memset(p, 0, CHUNK * PAGE);
		for (size_t i = c * CHUNK; i < (c + 1) * CHUNK; i++)
			gen[i] = 0;
		break;
	default:
		fill_chunk(c);
	}
	chunk_at++;
	if (++steps % 8 == 0)
		replace_b();
	if (layout && steps % 16 == 0) {
		if (xmap) {
			munmap(xmap, XPAGES * PAGE);
			xmap = NULL;
		} else {
			xmap = mmap(NULL, XPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (xmap == MAP_FAILED)
				wl_fail("mmap of the extra mapping: %s", strerror(errno));
			else
				wl_fill(xmap, XPAGES * PAGE, seed(1u << 31, (uint32_t)steps));
		}
	}
	for (int k = 0; k < 64; k++, check_at = (check_at + 1) % npages)
		check_page(check_at);
	long bad = wl_verify(bmap, BPAGES * PAGE, seed(1u << 30, bgen));
	WL_CHECK(bad < 0, "replaced mapping word %ld: pattern mismatch (generation %u)", bad, bgen);
}

static void final(void)
{
	for (size_t i = 0; i < npages; i++)
		check_page(i);
	long bad = wl_verify(bmap, BPAGES * PAGE, seed(1u << 30, bgen));
	WL_CHECK(bad < 0, "replaced mapping word %ld: pattern mismatch (generation %u)", bad, bgen);
	if (xmap) {
		/* Filled at the step that created it: steps was a multiple of 16 then. */
		bad = wl_verify(xmap, XPAGES * PAGE, seed(1u << 31, (uint32_t)(steps - steps % 16)));
		WL_CHECK(bad < 0, "extra mapping word %ld: pattern mismatch", bad);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	long mib = wl_arg(argc, argv, 2, 32);
	layout = wl_arg(argc, argv, 3, 0);
	if (mib < 1 || mib > 1024) {
		errno = EINVAL;
		wl_setup_fail("MiB must be 1..1024");
	}
	npages = (size_t)mib * 256;
	nchunks = npages / CHUNK;
	area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(npages, sizeof(*gen));
	uint8_t *g = mmap(NULL, (BPAGES + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || g == MAP_FAILED || !gen)
		wl_setup_fail("allocate");
	bmap = g + PAGE;
	if (mprotect(bmap, BPAGES * PAGE, PROT_READ | PROT_WRITE) != 0)
		wl_setup_fail("mprotect");
	madvise(area, npages * PAGE, MADV_NOHUGEPAGE);
	for (size_t c = 0; c < nchunks; c++)
		fill_chunk(c);
	bgen = 1;
	wl_fill(bmap, BPAGES * PAGE, seed(1u << 30, bgen));
	wl_ready();
	wl_loop(step, final, 1000);
}
