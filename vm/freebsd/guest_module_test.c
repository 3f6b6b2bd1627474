/*
 * guest_module_test.c: the FreeBSD checks of the ferry_layout module, run
 * inside a FreeBSD 14 guest by vm/freebsd/run.sh after kldload, as root.
 *
 * NEVER RUN: written and cross-linked on Linux (kernel/check.sh links it
 * for x86_64-freebsd14); no FreeBSD machine was available.  Expected
 * results below come from reading the module's code, not from a run.
 *
 * It forks a child, stops it under ptrace, reads its layout (SET_LAYOUT
 * with an empty mask copies the layout in force out; the kern.proc.vm_layout
 * sysctl must agree), and checks each refusal's errno, that refusals change
 * nothing, and EBUSY (running; signal-stopped but not traced) / EPERM /
 * ESRCH (pid 0, no such process).  Then PT_SC_REMOTE: a native getpid through
 * the shim, EBUSY on the next request when the wait after a raw request is
 * skipped, the FreeBSD selectors round-tripped through PT_GETREGS/SETREGS,
 * and, given a static Linux x86-64 program as argv[1], an injected Linux
 * mmap (number 9) into that Linux-branded child stopped at its exec.
 * Prints "N passed, M failed".
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <machine/reg.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "CFerryFreeBSD.h"

static int passed, failed;

static void
expect(const char *what, int op, int got, int want)
{

	if (got == want) {
		passed++;
		printf("ok   %s\n", what);
		return;
	}
	failed++;
	printf("FAIL %s: got %d (%s), want %d\n", what, got,
	    ferry_layout_strerror(op, -got), want);
}

static int
set_with(pid_t pid, const struct ferry_layout *base, uint64_t *field,
    uint64_t v, uint64_t *field2, uint64_t v2)
{
	struct ferry_layout l;

	l = *base;
	l.fl_mask = FERRY_LF_ALL;
	/* field/field2 point into base; write the same offsets of l. */
	*(uint64_t *)((char *)&l + ((char *)field - (char *)base)) = v;
	if (field2 != NULL)
		*(uint64_t *)((char *)&l + ((char *)field2 - (char *)base)) =
		    v2;
	return (ferry_fb_layout_set(pid, &l));
}

/* PT_SC_REMOTE and the stop it leaves behind, in a native child. */
static void
check_sc_remote(pid_t child)
{
	struct ptrace_sc_remote sc;
	struct reg r, r2;
	int64_t r0, r1;
	int32_t e, st;
	int rc;

	rc = ferry_fb_sc_remote(child, child, SYS_getpid,
	    ferry_fb_native_sysno_limit(), NULL, 0, &r0, &r1, &e);
	expect("PT_SC_REMOTE getpid", 0, rc, 0);
	expect("remote getpid is the child", 0, r0 == child && e == 0 ? 0 : -1,
	    0);
	expect("indirection number 0 refused", 0, ferry_fb_sc_remote(child,
	    child, 0, ferry_fb_native_sysno_limit(), NULL, 0, &r0, &r1, &e),
	    -EINVAL);
	expect("number past the table refused", 0, ferry_fb_sc_remote(child,
	    child, ferry_fb_native_sysno_limit(),
	    ferry_fb_native_sysno_limit(), NULL, 0, &r0, &r1, &e), -EINVAL);

	/* The raw request without the wait: the next request is EBUSY. */
	memset(&sc, 0, sizeof(sc));
	sc.pscr_syscall = SYS_getpid;
	expect("raw PT_SC_REMOTE", 0,
	    ptrace(PT_SC_REMOTE, child, (caddr_t)&sc, sizeof(sc)) == 0 ? 0 :
	    -errno, 0);
	errno = 0;
	rc = ptrace(PT_GETREGS, child, (caddr_t)&r, 0) == 0 ? 0 : -errno;
	expect("EBUSY until the stop is waited for", 0, rc, -EBUSY);
	expect("waitpid WNOHANG reaps the new stop", 0,
	    ferry_fb_waitpid(child, &st, 1), child);
	expect("PT_GETREGS after the wait", 0,
	    ptrace(PT_GETREGS, child, (caddr_t)&r, 0) == 0 ? 0 : -errno, 0);

	/* FreeBSD's selectors, as FerryCore's SegmentSelectors.of(.freebsd). */
	expect("cs is GUCODE_SEL 0x43", 0, r.r_cs == 0x43 ? 0 : -1, 0);
	expect("ss is GUDATA_SEL 0x3b", 0, r.r_ss == 0x3b ? 0 : -1, 0);
	expect("PT_SETREGS with the same selectors", 0,
	    ptrace(PT_SETREGS, child, (caddr_t)&r, 0) == 0 ? 0 : -errno, 0);
	ptrace(PT_GETREGS, child, (caddr_t)&r2, 0);
	expect("selectors round-trip", 0, r2.r_cs == r.r_cs &&
	    r2.r_ss == r.r_ss ? 0 : -1, 0);
	r2.r_cs = 0x33;	/* Linux's __USER_CS: FreeBSD's 32-bit code segment */
	rc = ptrace(PT_SETREGS, child, (caddr_t)&r2, 0) == 0 ? 0 : -errno;
	printf("     PT_SETREGS with cs 0x33: %d (accepted means the thread "
	    "would run 32-bit code)\n", rc);
	ptrace(PT_SETREGS, child, (caddr_t)&r, 0);
}

/*
 * A Linux-branded child: fork, PT_TRACE_ME, exec the static Linux program
 * at path, and inject Linux mmap (9) at the exec stop; write and read back
 * a word through PT_IO.
 */
static void
check_linux_child(const char *path)
{
	uint64_t args[6];
	int64_t r0, r1;
	int32_t e, st;
	uint64_t w, back;
	size_t done;
	pid_t c;
	int rc;

	c = fork();
	if (c == 0) {
		ptrace(PT_TRACE_ME, 0, NULL, 0);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	ferry_fb_waitpid(c, &st, 0);
	expect("Linux child stopped at exec", 0,
	    WIFSTOPPED(st) ? 0 : -1, 0);
	args[0] = 0;
	args[1] = 0x1000;
	args[2] = 3;		/* PROT_READ | PROT_WRITE */
	args[3] = 0x22;		/* Linux MAP_PRIVATE | MAP_ANONYMOUS */
	args[4] = (uint64_t)-1;
	args[5] = 0;
	rc = ferry_fb_sc_remote(c, c, 9, 313, args, 6, &r0, &r1, &e);
	expect("injected Linux mmap", 0, rc, 0);
	printf("     Linux mmap returned %#jx, errno %d\n", (uintmax_t)r0, e);
	expect("Linux mmap succeeded", 0, e == 0 && r0 > 0 ? 0 : -1, 0);
	if (e == 0 && r0 > 0) {
		w = 0x6665727279ULL;
		ferry_fb_write(c, (uint64_t)r0, &w, sizeof(w), &done);
		back = 0;
		ferry_fb_read(c, (uint64_t)r0, &back, sizeof(back), &done);
		expect("PT_IO round trip in the new mapping", 0,
		    back == w ? 0 : -1, 0);
	}
	kill(c, SIGKILL);
	ferry_fb_waitpid(c, &st, 0);
}

int
main(int argc, char **argv)
{
	struct ferry_layout l0, l1;
	struct ferry_layout *b;
	struct ferry_fb_vm_layout kv;
	pid_t child, helper, other;
	int32_t sysno, st;
	int rc;

	expect("module loaded", 0, ferry_fb_layout_sysno(&sysno), 0);
	child = fork();
	if (child == 0) {
		for (;;)
			pause();
	}
	expect("PT_ATTACH", 0, ferry_fb_attach(child), 0);
	expect("waitpid stop", 0, ferry_fb_waitpid(child, &st, 0), child);

	memset(&l0, 0, sizeof(l0));
	l0.fl_version = FERRY_LAYOUT_VERSION;
	l0.fl_size = sizeof(l0);
	rc = ferry_fb_layout_set(child, &l0);	/* empty mask: read */
	expect("SET_LAYOUT, empty mask", FERRY_OP_SET_LAYOUT, rc, 0);
	expect("kern.proc.vm_layout", 0, ferry_fb_vm_layout(child, &kv), 0);
	expect("sysctl agrees on text and data", 0,
	    kv.text_addr == l0.fl_text_start && kv.data_addr ==
	    l0.fl_data_start && kv.data_addr + kv.data_pages * 4096 ==
	    l0.fl_brk ? 0 : -1, 0);
	printf("     text %#jx-%#jx data %#jx brk %#jx stack %#jx-%#jx "
	    "ps_strings %#jx\n", (uintmax_t)l0.fl_text_start,
	    (uintmax_t)l0.fl_text_end, (uintmax_t)l0.fl_data_start,
	    (uintmax_t)l0.fl_brk, (uintmax_t)l0.fl_stack_max,
	    (uintmax_t)l0.fl_stack_top, (uintmax_t)l0.fl_ps_strings);
	b = &l0;

	expect("SET same layout", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_brk, b->fl_brk, NULL, 0), 0);
	expect("unaligned text start", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_text_start, b->fl_text_start + 8,
	    NULL, 0), -EINVAL);
	expect("reversed text", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_text_start, b->fl_text_end,
	    &b->fl_text_end, b->fl_text_start), -EDOM);
	expect("text past map max", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_text_end, b->fl_map_max + 0x1000,
	    NULL, 0), -ERANGE);
	expect("data overlaps text", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_data_start, b->fl_text_start,
	    NULL, 0), -EADDRINUSE);
	expect("brk over unmapped pages", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_brk, b->fl_brk + 0x40000000,
	    NULL, 0), -ENOMEM);

	memset(&l1, 0, sizeof(l1));
	l1.fl_version = FERRY_LAYOUT_VERSION;
	l1.fl_size = sizeof(l1);
	ferry_fb_layout_set(child, &l1);
	expect("refusals changed nothing", 0,
	    memcmp(&l0, &l1, sizeof(l0)) == 0 ? 0 : -1, 0);

	expect("pid 0", FERRY_OP_SET_LAYOUT,
	    set_with(0, b, &b->fl_brk, b->fl_brk, NULL, 0), -ESRCH);
	expect("pid -1", FERRY_OP_SET_LAYOUT,
	    set_with(-1, b, &b->fl_brk, b->fl_brk, NULL, 0), -ESRCH);

	/* Stopped by a signal but not traced by the caller: refused. */
	other = fork();
	if (other == 0) {
		for (;;)
			pause();
	}
	kill(other, SIGSTOP);
	waitpid(other, &st, WUNTRACED);
	expect("signal-stopped, not traced", FERRY_OP_SET_LAYOUT,
	    set_with(other, b, &b->fl_brk, b->fl_brk, NULL, 0), -EBUSY);
	kill(other, SIGKILL);
	waitpid(other, &st, 0);
	expect("no such process", FERRY_OP_SET_LAYOUT,
	    set_with(99998, b, &b->fl_brk, b->fl_brk, NULL, 0), -ESRCH);

	helper = fork();
	if (helper == 0) {
		if (setuid(65534) != 0)
			_exit(2);
		_exit(set_with(child, b, &b->fl_brk, b->fl_brk, NULL, 0) ==
		    -EPERM ? 0 : 1);
	}
	ferry_fb_waitpid(helper, &st, 0);
	expect("unprivileged caller", 0,
	    WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1, 0);

	check_sc_remote(child);
	if (argc > 1)
		check_linux_child(argv[1]);
	else
		printf("skip Linux-branded child: no static Linux program "
		    "given\n");

	expect("unknown op 1", 0, syscall(sysno, 1, child, &l1) ==
	    -1 ? -errno : 0, -EOPNOTSUPP);

	expect("PT_CONTINUE", 0, ferry_fb_continue(child, 0), 0);
	expect("running target", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_brk, b->fl_brk, NULL, 0), -EBUSY);

	kill(child, SIGKILL);
	ferry_fb_waitpid(child, &st, 0);
	printf("%d passed, %d failed\n", passed, failed);
	return (failed == 0 ? 0 : 1);
}
