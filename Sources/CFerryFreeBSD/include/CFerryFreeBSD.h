/*
 * CFerryFreeBSD: fixed-argument C wrappers over the FreeBSD calls that
 * Swift cannot make directly (variadic or macro-heavy ptrace, sysctl-based
 * libutil calls, the ferry_layout module's syscall, jail and rctl).
 *
 * Every function returns 0 (or a non-negative count where documented) on
 * success and -errno on failure, with results in out-parameters.  The
 * declarations use only fixed-width types so this header also parses on
 * Linux; the implementation (ferry_freebsd.c) compiles to nothing there.
 *
 * Thread arguments (tid) may be a pid or an lwpid: FreeBSD's ptrace takes
 * either, and register requests then act on that thread.
 *
 * Status: cross-compiled and linked for x86_64-freebsd14 with zig on Linux
 * (kernel/check.sh); never run on FreeBSD.
 */

#ifndef CFERRY_FREEBSD_H
#define	CFERRY_FREEBSD_H

#include <stddef.h>
#include <stdint.h>

#include "ferry_layout.h"
#include "ferry_validate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FreeBSD amd64 struct reg, field by field (sys/x86/include/reg.h). */
struct ferry_fb_regs {
	int64_t		r15, r14, r13, r12, r11, r10, r9, r8;
	int64_t		rdi, rsi, rbp, rbx, rdx, rcx, rax;
	uint32_t	trapno;
	uint16_t	fs, gs;
	uint32_t	err;
	uint16_t	es, ds;
	int64_t		rip, cs, rflags, rsp, ss;
};

/* The parts of struct ptrace_lwpinfo that restore uses. */
struct ferry_fb_lwpinfo {
	int32_t		lwpid;
	int32_t		event;		/* PL_EVENT_* */
	int32_t		flags;		/* PL_FLAG_* */
	int32_t		signo;		/* pl_siginfo.si_signo if PL_FLAG_SI */
	uint32_t	syscall_code;	/* at PL_FLAG_SCE/SCX stops */
	uint32_t	syscall_narg;
	uint64_t	sigmask[2];	/* first 128 signals of pl_sigmask */
	uint64_t	siglist[2];
	char		tdname[20];	/* MAXCOMLEN + 1 */
};

/* One map entry (kinfo_getvmmap or PT_VM_ENTRY). */
struct ferry_fb_vmentry {
	uint64_t	start, end;	/* [start, end) */
	uint64_t	offset;
	uint64_t	fileid;
	int32_t		type;		/* KVME_TYPE_*; -1 from PT_VM_ENTRY */
	int32_t		prot;		/* KVME_PROT_* (= VM_PROT_* bits) */
	int32_t		flags;		/* KVME_FLAG_*; 0 from PT_VM_ENTRY */
	int32_t		pad;
	char		path[1024];	/* PATH_MAX; "" if anonymous */
};

/* One jail parameter as jail_set(2)/jail_get(2) take it: raw bytes of the
 * parameter's kernel type (a NUL-terminated string, or an int), or a
 * boolean flag with value NULL and len 0. */
struct ferry_fb_jparam {
	const char	*name;
	void		*value;
	size_t		len;
};

/* Process control. */
int	ferry_fb_attach(int32_t pid);
int	ferry_fb_detach(int32_t pid, int32_t sig);
int	ferry_fb_continue(int32_t pid, int32_t sig);
int	ferry_fb_kill(int32_t pid);
/* fork, PT_TRACE_ME, execve(path) with an empty environment; waits for the
 * SIGTRAP stop of the exec.  *pid gets the child; -ECHILD if it stopped
 * otherwise or exited (the exec failed). */
int	ferry_fb_spawn_traced(const char *path, int32_t *pid);
/* CPUID leaf/subleaf: out[0..3] = eax, ebx, ecx, edx. */
void	ferry_fb_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
/* XCR0 (xgetbv 0): the XSAVE components the kernel enabled. */
uint64_t	ferry_fb_xcr0(void);
/* Returns the pid reaped (0 with nohang and nothing to reap) or -errno. */
int	ferry_fb_waitpid(int32_t pid, int32_t *status, int32_t nohang);
int	ferry_fb_wifstopped(int32_t status, int32_t *sig);

/* Memory (PT_IO).  *done gets the bytes moved (short at unmapped pages). */
int	ferry_fb_read(int32_t pid, uint64_t addr, void *buf, size_t len,
	    size_t *done);
int	ferry_fb_write(int32_t pid, uint64_t addr, const void *buf, size_t len,
	    size_t *done);

/* Registers. */
int	ferry_fb_getregs(int32_t tid, struct ferry_fb_regs *out);
int	ferry_fb_setregs(int32_t tid, const struct ferry_fb_regs *in);
/* 512-byte FXSAVE64 image (struct fpreg). */
int	ferry_fb_getfpregs(int32_t tid, void *buf, size_t len);
int	ferry_fb_xstate_info(int32_t tid, uint64_t *mask, uint32_t *len);
int	ferry_fb_getxstate(int32_t tid, void *buf, size_t len);
int	ferry_fb_setxstate(int32_t tid, const void *buf, size_t len);
int	ferry_fb_getfsbase(int32_t tid, uint64_t *base);
int	ferry_fb_setfsbase(int32_t tid, uint64_t base);
int	ferry_fb_getgsbase(int32_t tid, uint64_t *base);
int	ferry_fb_setgsbase(int32_t tid, uint64_t base);

/* Threads. */
int	ferry_fb_lwpinfo(int32_t tid, struct ferry_fb_lwpinfo *out);
int	ferry_fb_numlwps(int32_t pid, int32_t *n);
/* Fills up to cap lwpids; *n gets the number filled. */
int	ferry_fb_lwplist(int32_t pid, int32_t *tids, int32_t cap, int32_t *n);

/*
 * PT_SC_REMOTE (FreeBSD 14+): run syscall sysno with nargs (<= 8) args in
 * the stopped thread tid of process pid.  The number is looked up in the
 * target's own table: a Linux-ABI target takes Linux x86-64 numbers.
 * Refused with -EINVAL before any request: nargs > 8, sysno >= sysno_limit
 * (the size of the target ABI's table; a number past it would run nosys and
 * send SIGSYS to the target), and 0 and 198, which the kernel takes as
 * syscall(2)/__syscall(2) indirection for every ABI (so Linux read and
 * lremovexattr cannot be injected).  FerryCore's RemoteSyscall.check makes
 * the same decision with a sentence.
 *
 * The kernel runs the syscall by un-suspending the thread and stops it
 * again, which clears P_WAITED: until the tracer waits, every later ptrace
 * request fails with EBUSY.  So after every request that reached the kernel
 * (success or not) this calls waitpid(pid, WNOHANG) and accepts "nothing to
 * reap" (ptrace(2): the stop event exists only if the thread ran).
 *
 * Returns 0 when the request went through; the syscall's own result is in
 * *ret0 and *ret1 and its errno in *sc_errno.  -ESRCH if the target died
 * (the wait reaped its exit); otherwise ptrace's or waitpid's -errno.
 */
int	ferry_fb_sc_remote(int32_t pid, int32_t tid, uint32_t sysno,
	    uint32_t sysno_limit, const uint64_t *args, uint32_t nargs,
	    int64_t *ret0, int64_t *ret1, int32_t *sc_errno);
/* The size of the native FreeBSD syscall table (SYS_MAXSYSCALL). */
uint32_t	ferry_fb_native_sysno_limit(void);

/* Maps.  ferry_fb_vmmap allocates *out; free it with ferry_fb_vmmap_free. */
int	ferry_fb_vmmap(int32_t pid, struct ferry_fb_vmentry **out,
	    int32_t *count);
void	ferry_fb_vmmap_free(struct ferry_fb_vmentry *v);
/* PT_VM_ENTRY iterator: start with *cookie = 0; -ENOENT after the last. */
int	ferry_fb_vm_entry(int32_t pid, int32_t *cookie,
	    struct ferry_fb_vmentry *out);

/*
 * The layout of a process, from the kern.proc.vm_layout sysctl
 * (KERN_PROC_VM_LAYOUT, FreeBSD 14+; needs debug rights on the target).
 * The kernel gives the text, data and stack sizes in pages, unconverted.
 */
struct ferry_fb_vm_layout {
	uint64_t	min_user_addr, max_user_addr;
	uint64_t	text_addr, text_pages;		/* vm_taddr, vm_tsize */
	uint64_t	data_addr, data_pages;		/* vm_daddr, vm_dsize */
	uint64_t	stack_addr, stack_pages;	/* vm_maxsaddr, vm_ssize */
	uint64_t	shared_page_addr, shared_page_size;
	int32_t		map_flags;			/* KMAP_FLAG_* */
	int32_t		pad;
};
int	ferry_fb_vm_layout(int32_t pid, struct ferry_fb_vm_layout *out);

/*
 * The ferry_layout kernel module: SET_LAYOUT only.  On success *l holds the
 * layout now in force (read-only fields filled).
 */
int	ferry_fb_layout_sysno(int32_t *sysno);	/* -ENOENT: not loaded */
int	ferry_fb_layout_set(int32_t pid, struct ferry_layout *l);

/* Jails and RCTL.  errmsg (may be NULL) gets the kernel's message. */
int	ferry_fb_jail_set(struct ferry_fb_jparam *params, uint32_t n,
	    int32_t flags, char *errmsg, size_t errlen);	/* returns jid */
int	ferry_fb_jail_get(struct ferry_fb_jparam *params, uint32_t n,
	    int32_t flags, char *errmsg, size_t errlen);	/* returns jid */
int	ferry_fb_jail_attach(int32_t jid);
int	ferry_fb_jail_remove(int32_t jid);
int	ferry_fb_rctl_add(const char *rule);
int	ferry_fb_rctl_remove(const char *filter);

#ifdef __cplusplus
}
#endif

#endif /* !CFERRY_FREEBSD_H */
