/*
 * guest_module_test.c: the FreeBSD checks of the ferry_layout module, run
 * inside a FreeBSD 14 guest by vm/freebsd/run.sh after kldload, as root.
 *
 * NEVER RUN: written and cross-linked on Linux (kernel/check.sh links it
 * for x86_64-freebsd14); no FreeBSD machine was available.  Expected
 * results below come from reading the module's code, not from a run.
 *
 * It forks a child, stops it under ptrace, and checks GET/SET of the layout
 * and PCB, each refusal's errno, that refusals change nothing, and EBUSY /
 * EPERM / EACCES / ESRCH.  Prints "N passed, M failed".
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
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

int
main(void)
{
	struct ferry_layout l0, l1;
	struct ferry_layout *b;
	struct ferry_pcb pcb;
	pid_t child, helper;
	uint64_t fs;
	int32_t sysno, tids[64], n, st;
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
	rc = ferry_fb_layout_get(child, &l0);
	expect("GET_LAYOUT", FERRY_OP_GET_LAYOUT, rc, 0);
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
	ferry_fb_layout_get(child, &l1);
	expect("refusals changed nothing", 0,
	    memcmp(&l0, &l1, sizeof(l0)) == 0 ? 0 : -1, 0);

	n = 0;
	ferry_fb_lwplist(child, tids, 64, &n);
	memset(&pcb, 0, sizeof(pcb));
	pcb.fp_version = FERRY_LAYOUT_VERSION;
	pcb.fp_size = sizeof(pcb);
	pcb.fp_tid = n > 0 ? tids[0] : 0;
	expect("GET_PCB", FERRY_OP_GET_PCB, ferry_fb_pcb_get(child, &pcb), 0);
	fs = 0;
	ferry_fb_getfsbase(pcb.fp_tid, &fs);
	expect("pcb_fsbase == PT_GETFSBASE", 0,
	    pcb.fp_fsbase == fs ? 0 : -1, 0);
	pcb.fp_mask = FERRY_PF_FULL_IRET;
	expect("SET_PCB full iret", FERRY_OP_SET_PCB,
	    ferry_fb_pcb_set(child, &pcb), 0);
	expect("PCB_FULL_IRET now set", 0,
	    (pcb.fp_flags & FERRY_PCB_FULL_IRET) != 0 ? 0 : -1, 0);

	expect("system process (pid 0)", FERRY_OP_SET_LAYOUT,
	    set_with(0, b, &b->fl_brk, b->fl_brk, NULL, 0), -EACCES);
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

	expect("PT_CONTINUE", 0, ferry_fb_continue(child, 0), 0);
	expect("running target", FERRY_OP_SET_LAYOUT,
	    set_with(child, b, &b->fl_brk, b->fl_brk, NULL, 0), -EBUSY);

	kill(child, SIGKILL);
	ferry_fb_waitpid(child, &st, 0);
	printf("%d passed, %d failed\n", passed, failed);
	return (failed == 0 ? 0 : 1);
}
