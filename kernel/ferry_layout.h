/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ferry_layout.h: the userland ABI of the ferry_layout kernel module.
 *
 * The module adds one system call, found at run time by
 * modfind(FERRY_LAYOUT_MODNAME) and modstat() (ms.data.intval is the
 * syscall number):
 *
 *	int ferry_layout(int op, pid_t pid, void *arg);
 *
 * op is FERRY_OP_SET_LAYOUT; arg points to a struct ferry_layout in the
 * caller's memory.  The call returns 0, or -1 with errno set (see
 * docs/freebsd.md and ferry_layout_strerror()).
 *
 * The module does only what ptrace and sysctl cannot: reading the layout is
 * the kern.proc.vm_layout sysctl (KERN_PROC_VM_LAYOUT), fs/gs bases are
 * PT_SETFSBASE/PT_SETGSBASE, and PCB_FULL_IRET is already set on every
 * thread ferry can touch (on every switch-out, by set_regs and by
 * cpu_ptrace_setbase).  Every other op answers EOPNOTSUPP.
 *
 * Versioning: every struct starts with a version and a size.  The module
 * refuses a version or size it does not know with EPROTONOSUPPORT.  New
 * fields are added at the end, in the spare words, with a new mask bit and
 * a new version; old callers keep working because the module accepts every
 * version up to its own.
 *
 * This header is included by the kernel module (_KERNEL), by the userland
 * shim (Sources/CFerryFreeBSD) and by the Linux unit tests.
 */

#ifndef _FERRY_LAYOUT_H_
#define	_FERRY_LAYOUT_H_

#ifdef _KERNEL
#include <sys/types.h>
#else
#include <stdint.h>
#endif

#define	FERRY_LAYOUT_MODNAME	"sys/ferry_layout"
#define	FERRY_LAYOUT_VERSION	1

/* The operation (the first argument of the syscall). */
#define	FERRY_OP_SET_LAYOUT	2	/* validate and set, all or none */

/*
 * Layout fields, FreeBSD names in brackets.  All addresses are user virtual
 * addresses in the target; "end" values are exclusive.
 *
 * FERRY_LF_TEXT	fl_text_start [vm_taddr], fl_text_end
 *			[vm_taddr + ctob(vm_tsize)]
 * FERRY_LF_DATA	fl_data_start [vm_daddr], fl_brk
 *			[vm_daddr + ctob(vm_dsize)]: the heap only.  For a
 *			Linux process fl_data_start is round_page(start_brk)
 *			(never start_data: Linux randomises start_brk up to
 *			1 GiB past the bss and leaves the gap unmapped) and
 *			fl_brk is round_page(brk), since FreeBSD's break is
 *			page granular (FerryCore's FreeBSDLayoutPlan).
 * FERRY_LF_STACK	fl_stack_max [vm_maxsaddr, lowest address the stack
 *			may grow to], fl_stack_top [vm_stacktop].
 *
 * Read-only, ignored on input; on success SET copies the whole layout now
 * in force back to arg, filling these:
 *	fl_ps_strings	[vm_stacktop - sv_psstringssz]: where the kernel
 *			looks for struct ps_strings (argv/env for ps and
 *			procstat).  To place ps_strings at P, set
 *			fl_stack_top = P + (fl_stack_top - fl_ps_strings)
 *			as returned by an earlier SET.
 *	fl_stack_size	[ctob(vm_ssize)]
 *	fl_map_min, fl_map_max	the user bounds of the target's map.
 */
#define	FERRY_LF_TEXT		0x00000001u
#define	FERRY_LF_DATA		0x00000002u
#define	FERRY_LF_STACK		0x00000004u
#define	FERRY_LF_ALL		(FERRY_LF_TEXT | FERRY_LF_DATA | FERRY_LF_STACK)

struct ferry_layout {
	uint32_t	fl_version;	/* FERRY_LAYOUT_VERSION */
	uint32_t	fl_size;	/* sizeof(struct ferry_layout) */
	uint32_t	fl_mask;	/* SET: FERRY_LF_* to change */
	uint32_t	fl_spare0;	/* must be 0 */
	uint64_t	fl_text_start;
	uint64_t	fl_text_end;
	uint64_t	fl_data_start;
	uint64_t	fl_brk;
	uint64_t	fl_stack_max;
	uint64_t	fl_stack_top;
	uint64_t	fl_ps_strings;	/* read-only */
	uint64_t	fl_stack_size;	/* read-only */
	uint64_t	fl_map_min;	/* read-only */
	uint64_t	fl_map_max;	/* read-only */
	uint64_t	fl_spare[4];	/* must be 0 */
};

#endif /* !_FERRY_LAYOUT_H_ */
