/* membarrier_reg: the process registers for private expedited membarriers
 * (plain and RSEQ where the kernel has it) and global expedited ones; every
 * step issues the private barriers, which fail with EPERM if the
 * registration was lost, and where the kernel tells them (6.3+) compares
 * the registrations. A kernel without
 * membarrier fails the setup. */
#include "wl.h"
#include <linux/membarrier.h>
#include <sys/syscall.h>

static int have_rseq;
static long registered = -1; /* GET_REGISTRATIONS (Linux 6.3+), -1 without it */

static long mb(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

static void step(void)
{
	WL_CHECK(mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0, "private expedited membarrier: %s", strerror(errno));
	if (have_rseq)
		WL_CHECK(mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) == 0, "private expedited rseq membarrier: %s",
			 strerror(errno));
	if (registered >= 0)
		WL_CHECK(mb(512 /* MEMBARRIER_CMD_GET_REGISTRATIONS */) == registered, "registrations %#lx, want %#lx",
			 mb(512), registered);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	if (mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
		wl_setup_fail("membarrier register");
	have_rseq = mb(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) == 0;
	(void)mb(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
	registered = mb(512);
	wl_ready();
	wl_loop(step, step, 1000);
}
