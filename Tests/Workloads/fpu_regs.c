/* fpu_regs: ymm0..ymm7 (AVX, if cpuid and XCR0 allow) or xmm0..xmm7 (SSE)
 * are loaded once with a pattern and then compared with it in a tight asm
 * loop that never reloads or spills them. The loop checks the stop file and
 * naps with raw syscalls (access, nanosleep), which keep vector registers,
 * so the values stay live in the registers from ready until stop, across
 * any checkpoint. MXCSR is set to round-toward-zero and checked at the end.
 * The asm compares once more after seeing stop, then returns 0, or 1+N as
 * soon as register N lost its value. `wl_fpu_regs CTLDIR sse` forces SSE. */
#include "wl.h"
#include <cpuid.h>

/* long fpu_loop(const void *pattern, const char *stop_path, long inner) */
#define CMP_AVX(i) \
	"vpcmpeqb 32*" #i "(%r12), %ymm" #i ", %ymm8\n vpmovmskb %ymm8, %eax\n" \
	"cmp $-1, %eax\n mov $" #i "+1, %edx\n jne 9f\n"
#define CMP_SSE(i) \
	"movdqa %xmm" #i ", %xmm8\n pcmpeqb 32*" #i "(%r12), %xmm8\n pmovmskb %xmm8, %eax\n" \
	"cmp $0xffff, %eax\n mov $" #i "+1, %edx\n jne 9f\n"
#define LOAD_AVX(i) "vmovdqu 32*" #i "(%r12), %ymm" #i "\n"
#define LOAD_SSE(i) "movdqu 32*" #i "(%r12), %xmm" #i "\n"
#define ALL8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define FPU_LOOP(name, LOAD, CMP)                                               \
	__asm__(".text\n .globl " #name "\n .type " #name ", @function\n" #name ":\n" \
		"push %rbx\n push %r12\n push %r13\n sub $16, %rsp\n"                \
		"mov %rdi, %r12\n mov %rsi, %r13\n mov %rdx, %rbx\n"                 \
		ALL8(LOAD)                                                           \
		"1: mov %rbx, %rcx\n"                                                \
		"2:\n" ALL8(CMP) "dec %rcx\n jnz 2b\n"                               \
		"movq $0, (%rsp)\n movq $1000000, 8(%rsp)\n"                         \
		"mov $35, %eax\n mov %rsp, %rdi\n xor %esi, %esi\n syscall\n"        \
		"mov $21, %eax\n mov %r13, %rdi\n xor %esi, %esi\n syscall\n"        \
		"test %rax, %rax\n jnz 1b\n"                                         \
		ALL8(CMP) "xor %edx, %edx\n"                                         \
		"9: mov %rdx, %rax\n add $16, %rsp\n pop %r13\n pop %r12\n pop %rbx\n" \
		"ret\n .size " #name ", .-" #name "\n")

long fpu_loop_avx(const void *pattern, const char *stop_path, long inner);
long fpu_loop_sse(const void *pattern, const char *stop_path, long inner);
FPU_LOOP(fpu_loop_avx, LOAD_AVX, CMP_AVX);
FPU_LOOP(fpu_loop_sse, LOAD_SSE, CMP_SSE);

static uint8_t pattern[8 * 32] __attribute__((aligned(32)));

static int have_avx(void)
{
	unsigned a, b, c, d, lo, hi;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AVX) || !(c & bit_OSXSAVE))
		return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int avx = have_avx() && !(argc > 2 && strcmp(argv[2], "sse") == 0);
	wl_fill(pattern, sizeof(pattern), 0xf00d);
	unsigned mxcsr = 0x1f80 | (3u << 13), got = 0; /* masked, round to zero */
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
	wl_ready();
	long r = avx ? fpu_loop_avx(pattern, wl_stop_file, 100000)
		     : fpu_loop_sse(pattern, wl_stop_file, 100000);
	if (avx)
		__asm__ volatile("vzeroupper");
	__asm__ volatile("stmxcsr %0" : "=m"(got));
	WL_CHECK(r == 0, "%s%ld lost its value", avx ? "ymm" : "xmm", r - 1);
	WL_CHECK((got & ~0x3fu) == (mxcsr & ~0x3fu), "MXCSR %#x, want %#x", got, mxcsr);
	WL_CHECK(wl_verify(pattern, sizeof(pattern), 0xf00d) < 0, "pattern memory changed");
	wl_finish();
}
