/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ferry_kmod.c: the ferry_layout kernel module for FreeBSD amd64.
 *
 * One system call, registered in a free slot of the native sysent table
 * (SYSCALL_MODULE with NO_SYSCALL); userland finds its number with
 * modfind("sys/ferry_layout") and modstat():
 *
 *	int ferry_layout(int op, pid_t pid, void *arg);
 *
 * It is called by the native FreeBSD restorer (ferry), never by the Linux
 * process being restored: a Linux-ABI process dispatches through the
 * Linux sysent table and cannot reach this syscall.
 *
 * One op, SET_LAYOUT (ferry_layout.h): the FreeBSD counterpart of
 * prctl(PR_SET_MM, PR_SET_MM_MAP) for the vmspace fields vm_taddr/vm_tsize,
 * vm_daddr/vm_dsize, vm_maxsaddr and vm_stacktop.  Validated by
 * ferry_validate.c, then all named fields are set, or none; the layout in
 * force is copied back out.  Needs the privilege, p_candebug, and a target
 * stopped for the caller as its tracer.
 *
 * Nothing else: reading the layout is the kern.proc.vm_layout sysctl;
 * fs/gs bases are PT_SETFSBASE/PT_SETGSBASE; PCB_FULL_IRET is set on every
 * switch-out and by set_regs and cpu_ptrace_setbase, so every thread a
 * tracer can touch already leaves through the full iret path.
 *
 * The restore's stub ELF (FerryCore's LinuxStubELF) has a text segment
 * over [start_code, end_code) and a bss-only last segment over
 * [start_brk, round_page(brk)), so imgact_elf sets vm_taddr/vm_tsize and
 * vm_daddr/vm_dsize itself.  SET_LAYOUT remains for an empty heap (the stub
 * then has no data segment) and for the stack fields.
 *
 * UNVERIFIED: compile-checked on Linux against the FreeBSD headers that
 * zig ships, never built with bsd.kmod.mk, never loaded, never run.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <sys/proc.h>
#include <sys/priv.h>
#include <sys/resourcevar.h>
#include <sys/sysent.h>
#include <sys/sysproto.h>

#include <vm/vm.h>
#include <vm/vm_param.h>
#include <vm/pmap.h>
#include <vm/vm_map.h>
#include <vm/vm_extern.h>


#include "ferry_layout.h"
#include "ferry_validate.h"

/*
 * Privilege asked of the caller of SET_LAYOUT.  PRIV_MODULE0..15 are
 * reserved for third-party modules; root on the host holds them, a jailed
 * root does not (prison_priv_check denies what it does not list).
 */
#define	FERRY_PRIV	PRIV_MODULE0

/*
 * The arguments, one syscall slot (register_t) each.  sysproto.h's PADL_/
 * PADR_ macros are #undef'd at its end, so the slots are declared whole
 * and narrowed in ferry_layout_syscall().
 */
struct ferry_layout_args {
	register_t	op;		/* int */
	register_t	pid;		/* pid_t */
	register_t	arg;		/* void * */
};

/*
 * Whether p is stopped for its tracer, which must be the caller, with the
 * stop already waited for (the conditions kern_ptrace() asks of every
 * request) and every thread suspended: then no thread of it runs user code
 * or changes its vmspace.  A process stopped only by a signal does not
 * count: the caller must trace it.
 */
static bool
ferry_stopped(struct thread *td, struct proc *p)
{

	PROC_LOCK_ASSERT(p, MA_OWNED);
	if ((p->p_flag & P_STOPPED_TRACE) == 0 ||
	    (p->p_flag & (P_TRACED | P_WAITED)) != (P_TRACED | P_WAITED) ||
	    p->p_pptr != td->td_proc)
		return (false);
	return (p->p_suspcount == p->p_numthreads);
}

/*
 * Look up pid and check the caller.  On success the process is returned
 * locked.  Distinct errnos: ESRCH (pid <= 0, none, exiting, in exec),
 * EACCES (may not debug it), EBUSY (not stopped for the caller).
 */
static int
ferry_target(struct thread *td, pid_t pid, struct proc **pp)
{
	struct proc *p;

	if (ferry_layout_check_pid(pid) != 0)
		return (ESRCH);
	if (pget(pid, PGET_NOTWEXIT | PGET_NOTINEXEC | PGET_NOTID, &p) != 0)
		return (ESRCH);
	if ((p->p_flag & (P_SYSTEM | P_KPROC)) != 0 ||
	    p_candebug(td, p) != 0) {
		PROC_UNLOCK(p);
		return (EACCES);
	}
	if (!ferry_stopped(td, p)) {
		PROC_UNLOCK(p);
		return (EBUSY);
	}
	*pp = p;
	return (0);
}

static void
ferry_read_layout(struct vmspace *vm, vm_offset_t psz, struct ferry_layout *l)
{

	bzero(l, sizeof(*l));
	l->fl_version = FERRY_LAYOUT_VERSION;
	l->fl_size = sizeof(*l);
	l->fl_text_start = (uintptr_t)vm->vm_taddr;
	l->fl_text_end = l->fl_text_start + ctob(vm->vm_tsize);
	l->fl_data_start = (uintptr_t)vm->vm_daddr;
	l->fl_brk = l->fl_data_start + ctob(vm->vm_dsize);
	l->fl_stack_max = (uintptr_t)vm->vm_maxsaddr;
	l->fl_stack_top = vm->vm_stacktop;
	l->fl_ps_strings = vm->vm_stacktop - psz;
	l->fl_stack_size = ctob(vm->vm_ssize);
	l->fl_map_min = vm_map_min(&vm->vm_map);
	l->fl_map_max = vm_map_max(&vm->vm_map);
}

/*
 * mv_covered for ferry_validate.c: [start, end) lies in ordinary map
 * entries with no hole.  Guard entries (the stack gap) and submaps do not
 * count.  Called with the map locked.
 */
static int
ferry_covered(void *ctx, uint64_t start, uint64_t end)
{
	vm_map_t map;
	vm_map_entry_t entry;
	vm_offset_t at;

	map = ctx;
	if (!vm_map_lookup_entry(map, start, &entry))
		return (0);
	at = start;
	for (;;) {
		if (entry == &map->header || entry->start > at)
			return (0);
		if ((entry->eflags &
		    (MAP_ENTRY_GUARD | MAP_ENTRY_IS_SUB_MAP)) != 0)
			return (0);
		if (entry->end >= end)
			return (1);
		at = entry->end;
		entry = vm_map_entry_succ(entry);
	}
}

/*
 * Start of SET_LAYOUT: copy the request in (before any lock), check its
 * header, the privilege and the target, then hold the process and reference
 * its vmspace, with the process unlocked.  End with ferry_layout_leave().
 */
static int
ferry_layout_enter(struct thread *td, pid_t pid, void *uaddr,
    struct ferry_layout *req, struct proc **pp, struct vmspace **vmp,
    struct ferry_map_view *mv)
{
	struct proc *p;
	rlim_t datalim;
	int error;

	error = copyin(uaddr, req, sizeof(*req));
	if (error != 0)
		return (error);
	error = ferry_layout_check_header(req);
	if (error != 0)
		return (error);
	if (priv_check(td, FERRY_PRIV) != 0)
		return (EPERM);
	error = ferry_target(td, pid, &p);
	if (error != 0)
		return (error);
	bzero(mv, sizeof(*mv));
	mv->mv_page_size = PAGE_SIZE;
	mv->mv_psstringssz = p->p_sysent->sv_psstringssz;
	datalim = lim_cur_proc(p, RLIMIT_DATA);
	mv->mv_data_limit = datalim == RLIM_INFINITY ? 0 : datalim;
	_PHOLD(p);
	PROC_UNLOCK(p);
	*vmp = vmspace_acquire_ref(p);
	if (*vmp == NULL) {
		PRELE(p);
		return (ESRCH);
	}
	mv->mv_min = vm_map_min(&(*vmp)->vm_map);
	mv->mv_max = vm_map_max(&(*vmp)->vm_map);
	mv->mv_covered = ferry_covered;
	mv->mv_ctx = &(*vmp)->vm_map;
	*pp = p;
	return (0);
}

static void
ferry_layout_leave(struct proc *p, struct vmspace *vm)
{

	vmspace_free(vm);
	PRELE(p);
}

/* Store a validated layout.  Nothing here can fail. */
static void
ferry_apply_layout(struct vmspace *vm, const struct ferry_layout *l)
{

	if ((l->fl_mask & FERRY_LF_TEXT) != 0) {
		vm->vm_taddr = (caddr_t)(uintptr_t)l->fl_text_start;
		vm->vm_tsize = btoc(l->fl_text_end - l->fl_text_start);
	}
	if ((l->fl_mask & FERRY_LF_DATA) != 0) {
		vm->vm_daddr = (caddr_t)(uintptr_t)l->fl_data_start;
		vm->vm_dsize = btoc(l->fl_brk - l->fl_data_start);
	}
	if ((l->fl_mask & FERRY_LF_STACK) != 0) {
		vm->vm_maxsaddr = (caddr_t)(uintptr_t)l->fl_stack_max;
		vm->vm_stacktop = l->fl_stack_top;
	}
}

/*
 * SET_LAYOUT.  Locking: the user struct is copied in before any lock.  The
 * process lock (a mutex) is held only for the checks; the process is held
 * (PHOLD) and its vmspace referenced while the map lock (an sx lock, which
 * may sleep) is taken.  Under the map lock the current layout is read and
 * the request validated against the map; then the process lock is taken
 * again, the stop re-checked (another thread of the tracer could have
 * resumed the target meanwhile), and the fields stored together.  kern_break
 * reads vm_daddr/vm_dsize under the same map lock, so it never sees half a
 * layout.
 *
 * Known gap [I]: vm_dsize is changed without racct_set(RACCT_DATA), so with
 * RACCT enabled the data accounting of the target is stale until its next
 * brk.
 */
static int
ferry_set_layout(struct thread *td, pid_t pid, void *uaddr)
{
	struct ferry_layout req, cur, out;
	struct ferry_map_view mv;
	struct vmspace *vm;
	struct proc *p;
	int error;

	error = ferry_layout_enter(td, pid, uaddr, &req, &p, &vm, &mv);
	if (error != 0)
		return (error);
	vm_map_lock(&vm->vm_map);
	ferry_read_layout(vm, mv.mv_psstringssz, &cur);
	error = ferry_layout_prepare(&cur, &req, &mv, &out);
	if (error == 0) {
		PROC_LOCK(p);
		if (!ferry_stopped(td, p) || p->p_vmspace != vm)
			error = EBUSY;
		else
			ferry_apply_layout(vm, &out);
		PROC_UNLOCK(p);
	}
	if (error == 0)
		ferry_read_layout(vm, mv.mv_psstringssz, &cur);
	vm_map_unlock(&vm->vm_map);
	ferry_layout_leave(p, vm);
	if (error != 0)
		return (error);
	return (copyout(&cur, uaddr, sizeof(cur)));
}

static int
ferry_layout_syscall(struct thread *td, void *v)
{
	struct ferry_layout_args *uap;
	void *arg;
	pid_t pid;

	uap = v;
	pid = (pid_t)uap->pid;
	arg = (void *)(uintptr_t)uap->arg;
	switch ((int)uap->op) {
	case FERRY_OP_SET_LAYOUT:
		return (ferry_set_layout(td, pid, arg));
	default:
		return (EOPNOTSUPP);
	}
}

static struct sysent ferry_layout_sysent = {
	.sy_narg = sizeof(struct ferry_layout_args) / sizeof(register_t),
	.sy_call = ferry_layout_syscall,
};

/* NO_SYSCALL: let kern_syscalls.c pick a free lkmnosys slot. */
static int ferry_layout_offset = NO_SYSCALL;

static int
ferry_layout_modevent(struct module *mod __unused, int what,
    void *arg __unused)
{

	switch (what) {
	case MOD_LOAD:
		printf("ferry_layout: ABI %d, syscall %d\n",
		    FERRY_LAYOUT_VERSION, ferry_layout_offset);
		return (0);
	case MOD_UNLOAD:
		return (0);
	default:
		return (EOPNOTSUPP);
	}
}

SYSCALL_MODULE(ferry_layout, &ferry_layout_offset, &ferry_layout_sysent,
    ferry_layout_modevent, NULL);
MODULE_VERSION(ferry_layout, FERRY_LAYOUT_VERSION);
