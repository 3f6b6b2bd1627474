#ifndef CFERRYCRC_H
#define CFERRYCRC_H
#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start with 0).
 * Uses the SSE4.2 crc32 instruction (three interleaved streams) when the CPU has it, a table otherwise.
 * OS-neutral: builds the same on Linux and FreeBSD. */
uint32_t ferry_crc32c(uint32_t crc, const void *buf, size_t len);

/* The same with the table (software) path whatever the CPU: tests compare
 * the two. */
uint32_t ferry_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* 1 when the hardware path is in use (for benchmarks and `ferry check`). */
int ferry_crc32c_hw(void);

#endif
