#include "CFerryCRC.h"
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* Reflected CRC-32C. Every function below works on the raw register (no
 * pre/post inversion); ferry_crc32c adds the inversions. */
#define POLY 0x82f63b78u

static uint32_t table[8][256];
static int state; /* 1 software, 2 hardware; set once by init() */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
init_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^
			    table[0][table[t - 1][i] & 0xff];
}

static uint32_t
crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		    table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		    table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		    table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
/*
 * The hardware path runs three independent crc32 streams over three
 * consecutive parts A, B, C of one block, so the instruction's latency
 * (3 cycles, one per cycle throughput) is hidden. The register is linear:
 *
 *   raw(s, A|B|C) = shift(raw(s, A), |B|+|C|) ^ shift(raw(0, B), |C|) ^ raw(0, C)
 *
 * where shift(x, n) = x * x^(8n) mod P is the effect of n zero bytes on the
 * register, a fixed linear map for a fixed n: four byte-indexed tables of
 * 256 words each (built once, below). Blocks use two part lengths, a large one
 * for the bulk and a small one for what is left; the rest goes through one
 * stream.
 */
#define LONG_PART 4096
#define SHORT_PART 256

/* shift tables: [0] by one part, [1] by two parts; [byte of x][value]. */
static uint32_t shift_long[2][4][256];
static uint32_t shift_short[2][4][256];

/* x advanced over n zero bytes, one byte at a time (used only to build tables). */
static uint32_t
zeros_slow(uint32_t x, size_t n)
{
	while (n--)
		x = (x >> 8) ^ table[0][x & 0xff];
	return x;
}

static void
init_shift(uint32_t t[4][256], size_t n)
{
	uint32_t basis[32];
	for (int i = 0; i < 32; i++)
		basis[i] = zeros_slow(1u << i, n);
	for (int byte = 0; byte < 4; byte++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t r = 0;
			for (int bit = 0; bit < 8; bit++)
				if (v & (1u << bit))
					r ^= basis[byte * 8 + bit];
			t[byte][v] = r;
		}
}

static inline uint32_t
shift(uint32_t t[4][256], uint32_t x)
{
	return t[0][x & 0xff] ^ t[1][(x >> 8) & 0xff] ^ t[2][(x >> 16) & 0xff] ^
	    t[3][x >> 24];
}

static inline uint64_t
load64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	/* Three streams of `part` bytes each, then combine. */
#define BLOCKS(part, tables)                                                  \
	while (len >= 3 * (size_t)(part)) {                                   \
		uint64_t a = crc, b = 0, c = 0;                               \
		for (size_t k = 0; k < (part); k += 8) {                      \
			a = __builtin_ia32_crc32di(a, load64(p + k));         \
			b = __builtin_ia32_crc32di(b, load64(p + (part) + k));\
			c = __builtin_ia32_crc32di(c,                         \
			    load64(p + 2 * (part) + k));                      \
		}                                                             \
		crc = shift(tables[1], (uint32_t)a) ^                         \
		    shift(tables[0], (uint32_t)b) ^ (uint32_t)c;              \
		p += 3 * (size_t)(part);                                      \
		len -= 3 * (size_t)(part);                                    \
	}
	BLOCKS(LONG_PART, shift_long)
	BLOCKS(SHORT_PART, shift_short)
#undef BLOCKS
	uint64_t c = crc;
	while (len >= 8) {
		c = __builtin_ia32_crc32di(c, load64(p));
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

static void
init(void)
{
	init_table();
	state = 1;
#if defined(__x86_64__)
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2)) {
		init_shift(shift_long[0], LONG_PART);
		init_shift(shift_long[1], 2 * LONG_PART);
		init_shift(shift_short[0], SHORT_PART);
		init_shift(shift_short[1], 2 * SHORT_PART);
		state = 2;
	}
#endif
}

uint32_t
ferry_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, init);
	crc = ~crc;
#if defined(__x86_64__)
	if (state == 2)
		return ~crc_hw(crc, buf, len);
#endif
	return ~crc_sw(crc, buf, len);
}

uint32_t
ferry_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, init);
	return ~crc_sw(~crc, buf, len);
}

int
ferry_crc32c_hw(void)
{
	pthread_once(&once, init);
	return state == 2;
}
