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
 * op is one of FERRY_OP_*; arg points to a struct ferry_layout (layout ops)
 * or a struct ferry_pcb (PCB ops) in the caller's memory.  The call returns
 * 0, or -1 with errno set (see docs/freebsd.md and ferry_layout_strerror()).
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

/* Operations (the first argument of the syscall). */
#define	FERRY_OP_GET_LAYOUT	1	/* read vmspace layout fields */
#define	FERRY_OP_SET_LAYOUT	2	/* validate and set them, all or none */
#define	FERRY_OP_GET_PCB	3	/* read a thread's PCB fields */
#define	FERRY_OP_SET_PCB	4	/* set a thread's PCB fields */
#define	FERRY_OP_MAX		4

/*
 * Layout fields, FreeBSD names in brackets.  All addresses are user virtual
 * addresses in the target; "end" values are exclusive.
 *
 * FERRY_LF_TEXT	fl_text_start [vm_taddr], fl_text_end
 *			[vm_taddr + ctob(vm_tsize)]
 * FERRY_LF_DATA	fl_data_start [vm_daddr], fl_brk
 *			[vm_daddr + ctob(vm_dsize)].  FreeBSD's break is
 *			page granular: userland rounds Linux's brk up.
 * FERRY_LF_STACK	fl_stack_max [vm_maxsaddr, lowest address the stack
 *			may grow to], fl_stack_top [vm_stacktop].
 *
 * Read-only, filled by GET and ignored by SET:
 *	fl_ps_strings	[vm_stacktop - sv_psstringssz]: where the kernel
 *			looks for struct ps_strings (argv/env for ps and
 *			procstat).  To place ps_strings at P, set
 *			fl_stack_top = P + (fl_stack_top - fl_ps_strings)
 *			as read by GET.
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

/*
 * PCB fields of one thread (fp_tid, an lwpid of the process given as pid).
 *
 * GET fills fp_flags with the raw pcb_flags word and fp_fsbase/fp_gsbase
 * with pcb_fsbase/pcb_gsbase.  SET changes what fp_mask names:
 *
 * FERRY_PF_FSBASE	pcb_fsbase = fp_fsbase, tf_fs = the user fs selector
 * FERRY_PF_GSBASE	pcb_gsbase = fp_gsbase, tf_gs = the user gs selector
 * FERRY_PF_FULL_IRET	set PCB_FULL_IRET (always implied by the two above)
 *
 * fp_flags is ignored by SET: pcb_flags is never written wholesale.
 */
#define	FERRY_PF_FSBASE		0x00000001u
#define	FERRY_PF_GSBASE		0x00000002u
#define	FERRY_PF_FULL_IRET	0x00000004u
#define	FERRY_PF_ALL		(FERRY_PF_FSBASE | FERRY_PF_GSBASE | \
				    FERRY_PF_FULL_IRET)

/* pcb_flags bits as reported in fp_flags (values of sys/amd64/include/pcb.h). */
#define	FERRY_PCB_FULL_IRET	0x0001u

struct ferry_pcb {
	uint32_t	fp_version;	/* FERRY_LAYOUT_VERSION */
	uint32_t	fp_size;	/* sizeof(struct ferry_pcb) */
	uint32_t	fp_mask;	/* SET: FERRY_PF_* to change */
	int32_t		fp_tid;		/* lwpid of the thread */
	uint32_t	fp_flags;	/* GET: pcb_flags */
	uint32_t	fp_spare0;	/* must be 0 */
	uint64_t	fp_fsbase;
	uint64_t	fp_gsbase;
	uint64_t	fp_spare[4];	/* must be 0 */
};

#endif /* !_FERRY_LAYOUT_H_ */
