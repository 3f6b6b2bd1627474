/* heap_grow: malloc'd blocks of many sizes (small ones from the brk heap,
 * large ones mmap'd by malloc) keep their patterns; sbrk(0) never goes
 * backward. At stop — i.e. after restore — the heap is grown further with
 * sbrk and malloc, written and verified, which needs the kernel's brk to
 * have been restored. */
#include "wl.h"

#define NBLK 512
static uint64_t *blk[NBLK];
static size_t len[NBLK];
static char *brk0;
static int at;

static size_t size_of(int i)
{
	return i % 64 == 0 ? (size_t)(256 + i) * 1024 : (size_t)(16 + (i * 37) % 4000) * 8;
}

static void check_block(int i)
{
	long bad = wl_verify(blk[i], len[i], (uint64_t)i << 32);
	WL_CHECK(bad < 0, "block %d (%zu bytes) word %ld corrupted", i, len[i], bad);
}

static void step(void)
{
	char *cur = sbrk(0);
	WL_CHECK(cur >= brk0, "sbrk(0) went backward %p -> %p", (void *)brk0, (void *)cur);
	for (int k = 0; k < 32; k++, at = (at + 1) % NBLK)
		check_block(at);
}

static void final(void)
{
	for (int i = 0; i < NBLK; i++)
		check_block(i);
	/* Grow with raw sbrk: 4 MiB past the current break. */
	char *old = sbrk(0);
	size_t grow = 4 << 20;
	char *p = sbrk((intptr_t)grow);
	if (p == (void *)-1) {
		wl_fail("sbrk(+4 MiB) failed after restore: %s", strerror(errno));
		return;
	}
	WL_CHECK(p == old && (char *)sbrk(0) == old + grow, "sbrk moved break wrongly");
	wl_fill(p, grow, 0xabcdef);
	WL_CHECK(wl_verify(p, grow, 0xabcdef) < 0, "sbrk'd memory does not hold data");
	/* Grow through malloc: many more small blocks, verified, then freed. */
	uint64_t *more[2048];
	for (int i = 0; i < 2048; i++) {
		more[i] = malloc(2048);
		if (!more[i]) {
			wl_fail("malloc after restore failed");
			return;
		}
		wl_fill(more[i], 2048, (uint64_t)i << 40);
	}
	for (int i = 0; i < 2048; i++) {
		WL_CHECK(wl_verify(more[i], 2048, (uint64_t)i << 40) < 0, "new block %d bad", i);
		free(more[i]);
	}
	for (int i = 0; i < NBLK; i += 2)
		free(blk[i]);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	for (int i = 0; i < NBLK; i++) {
		len[i] = size_of(i);
		blk[i] = malloc(len[i]);
		if (!blk[i])
			wl_setup_fail("malloc");
		wl_fill(blk[i], len[i], (uint64_t)i << 32);
	}
	for (int i = 1; i < NBLK; i += 3) { /* holes in the heap */
		free(blk[i]);
		len[i] = size_of(i) / 2;
		blk[i] = malloc(len[i]);
		if (!blk[i])
			wl_setup_fail("malloc");
		wl_fill(blk[i], len[i], (uint64_t)i << 32);
	}
	brk0 = sbrk(0);
	wl_ready();
	wl_loop(step, final, 2000);
}
