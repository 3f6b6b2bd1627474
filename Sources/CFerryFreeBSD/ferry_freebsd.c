/*
 * ferry_freebsd.c: the FreeBSD calls behind CFerryFreeBSD.h.  Thin: each
 * wrapper makes one call (or one short sequence) and turns errno into a
 * negative return.  The whole file is FreeBSD-only; on Linux it is empty.
 *
 * Cross-compiled and linked for x86_64-freebsd14 by kernel/check.sh (zig);
 * never run on FreeBSD.
 */

#ifdef __FreeBSD__

#include <sys/param.h>
#include <sys/types.h>
#include <sys/jail.h>
#include <sys/linker.h>
#include <sys/module.h>
#include <sys/ptrace.h>
#include <sys/rctl.h>
#include <sys/sysctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <machine/reg.h>

#include <errno.h>
#include <libutil.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "CFerryFreeBSD.h"

_Static_assert(sizeof(struct ferry_fb_regs) == sizeof(struct reg),
    "ferry_fb_regs must mirror struct reg");
_Static_assert(sizeof(struct ferry_fb_vmentry) -
    offsetof(struct ferry_fb_vmentry, path) == PATH_MAX,
    "path buffer must be PATH_MAX");

static int
neg_errno(void)
{

	return (errno != 0 ? -errno : -EIO);
}

/* ptrace(2) returning 0 or -errno. */
static int
pt(int req, pid_t pid, void *addr, int data)
{

	errno = 0;
	if (ptrace(req, pid, (caddr_t)addr, data) == -1)
		return (neg_errno());
	return (0);
}

int
ferry_fb_attach(int32_t pid)
{

	return (pt(PT_ATTACH, pid, NULL, 0));
}

int
ferry_fb_detach(int32_t pid, int32_t sig)
{

	return (pt(PT_DETACH, pid, (void *)1, sig));
}

int
ferry_fb_continue(int32_t pid, int32_t sig)
{

	return (pt(PT_CONTINUE, pid, (void *)1, sig));
}

int
ferry_fb_kill(int32_t pid)
{

	return (pt(PT_KILL, pid, NULL, 0));
}

int
ferry_fb_spawn_traced(const char *path, int32_t *pid)
{
	char *const argv[] = { (char *)path, NULL };
	char *const envp[] = { NULL };
	pid_t child, r;
	int st;

	child = fork();
	if (child == -1)
		return (neg_errno());
	if (child == 0) {
		if (ptrace(PT_TRACE_ME, 0, NULL, 0) == 0)
			execve(path, argv, envp);
		_exit(127);
	}
	do {
		r = waitpid(child, &st, 0);
	} while (r == -1 && errno == EINTR);
	if (r == -1)
		return (neg_errno());
	if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
		if (WIFSTOPPED(st))
			(void)kill(child, SIGKILL);
		return (-ECHILD);
	}
	*pid = child;
	return (0);
}

void
ferry_fb_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
	uint32_t a, b, c, d;

	__asm__ __volatile__("cpuid"
	    : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
	    : "a"(leaf), "c"(subleaf));
	out[0] = a;
	out[1] = b;
	out[2] = c;
	out[3] = d;
}

uint64_t
ferry_fb_xcr0(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32 | lo);
}

int
ferry_fb_waitpid(int32_t pid, int32_t *status, int32_t nohang)
{
	pid_t r;
	int st;

	st = 0;
	do
		r = waitpid(pid, &st, nohang ? WNOHANG : 0);
	while (r == -1 && errno == EINTR);
	if (r == -1)
		return (neg_errno());
	*status = st;
	return (r);
}

int
ferry_fb_wifstopped(int32_t status, int32_t *sig)
{

	if (!WIFSTOPPED(status))
		return (0);
	*sig = WSTOPSIG(status);
	return (1);
}

static int
pt_io(int op, int32_t pid, uint64_t addr, void *buf, size_t len,
    size_t *done)
{
	struct ptrace_io_desc io;
	int error;

	io.piod_op = op;
	io.piod_offs = (void *)(uintptr_t)addr;
	io.piod_addr = buf;
	io.piod_len = len;
	error = pt(PT_IO, pid, &io, 0);
	*done = error == 0 ? io.piod_len : 0;
	return (error);
}

int
ferry_fb_read(int32_t pid, uint64_t addr, void *buf, size_t len,
    size_t *done)
{

	return (pt_io(PIOD_READ_D, pid, addr, buf, len, done));
}

int
ferry_fb_write(int32_t pid, uint64_t addr, const void *buf, size_t len,
    size_t *done)
{

	/* PIOD_WRITE_I also writes read-only (text) mappings. */
	return (pt_io(PIOD_WRITE_I, pid, addr, (void *)(uintptr_t)buf, len,
	    done));
}

int
ferry_fb_getregs(int32_t tid, struct ferry_fb_regs *out)
{
	struct reg r;
	int error;

	error = pt(PT_GETREGS, tid, &r, 0);
	if (error == 0)
		memcpy(out, &r, sizeof(r));
	return (error);
}

int
ferry_fb_setregs(int32_t tid, const struct ferry_fb_regs *in)
{
	struct reg r;

	memcpy(&r, in, sizeof(r));
	return (pt(PT_SETREGS, tid, &r, 0));
}

int
ferry_fb_getfpregs(int32_t tid, void *buf, size_t len)
{
	struct fpreg f;
	int error;

	if (len < sizeof(f))
		return (-EINVAL);
	error = pt(PT_GETFPREGS, tid, &f, 0);
	if (error == 0)
		memcpy(buf, &f, sizeof(f));
	return (error);
}

int
ferry_fb_xstate_info(int32_t tid, uint64_t *mask, uint32_t *len)
{
	struct ptrace_xstate_info xi;
	int error;

	error = pt(PT_GETXSTATE_INFO, tid, &xi, sizeof(xi));
	if (error == 0) {
		*mask = xi.xsave_mask;
		*len = xi.xsave_len;
	}
	return (error);
}

int
ferry_fb_getxstate(int32_t tid, void *buf, size_t len)
{

	if (len > INT_MAX)
		return (-EINVAL);
	return (pt(PT_GETXSTATE, tid, buf, (int)len));
}

int
ferry_fb_setxstate(int32_t tid, const void *buf, size_t len)
{

	if (len > INT_MAX)
		return (-EINVAL);
	return (pt(PT_SETXSTATE, tid, (void *)(uintptr_t)buf, (int)len));
}

static int
getbase(int req, int32_t tid, uint64_t *base)
{
	unsigned long v;
	int error;

	error = pt(req, tid, &v, 0);
	if (error == 0)
		*base = v;
	return (error);
}

static int
setbase(int req, int32_t tid, uint64_t base)
{
	unsigned long v;

	v = base;
	return (pt(req, tid, &v, 0));
}

int
ferry_fb_getfsbase(int32_t tid, uint64_t *base)
{

	return (getbase(PT_GETFSBASE, tid, base));
}

int
ferry_fb_setfsbase(int32_t tid, uint64_t base)
{

	return (setbase(PT_SETFSBASE, tid, base));
}

int
ferry_fb_getgsbase(int32_t tid, uint64_t *base)
{

	return (getbase(PT_GETGSBASE, tid, base));
}

int
ferry_fb_setgsbase(int32_t tid, uint64_t base)
{

	return (setbase(PT_SETGSBASE, tid, base));
}

int
ferry_fb_lwpinfo(int32_t tid, struct ferry_fb_lwpinfo *out)
{
	struct ptrace_lwpinfo pl;
	int error, i;

	error = pt(PT_LWPINFO, tid, &pl, sizeof(pl));
	if (error != 0)
		return (error);
	memset(out, 0, sizeof(*out));
	out->lwpid = pl.pl_lwpid;
	out->event = pl.pl_event;
	out->flags = pl.pl_flags;
	if ((pl.pl_flags & PL_FLAG_SI) != 0)
		out->signo = pl.pl_siginfo.si_signo;
	out->syscall_code = pl.pl_syscall_code;
	out->syscall_narg = pl.pl_syscall_narg;
	for (i = 0; i < 4; i++) {
		out->sigmask[i / 2] |= (uint64_t)pl.pl_sigmask.__bits[i] <<
		    (32 * (i % 2));
		out->siglist[i / 2] |= (uint64_t)pl.pl_siglist.__bits[i] <<
		    (32 * (i % 2));
	}
	strlcpy(out->tdname, pl.pl_tdname, sizeof(out->tdname));
	return (0);
}

/* A ptrace request whose result is a count. */
static int
pt_count(int req, pid_t pid, void *addr, int data, int32_t *n)
{
	int r;

	errno = 0;
	r = ptrace(req, pid, (caddr_t)addr, data);
	if (r == -1)
		return (neg_errno());
	*n = r;
	return (0);
}

int
ferry_fb_numlwps(int32_t pid, int32_t *n)
{

	return (pt_count(PT_GETNUMLWPS, pid, NULL, 0, n));
}

int
ferry_fb_lwplist(int32_t pid, int32_t *tids, int32_t cap, int32_t *n)
{

	_Static_assert(sizeof(lwpid_t) == sizeof(int32_t), "lwpid_t");
	return (pt_count(PT_GETLWPLIST, pid, tids, cap, n));
}

/* Consume the stop a remote syscall leaves behind (see the header). */
static int
sc_remote_reap(int32_t pid)
{
	pid_t r;
	int st;

	st = 0;
	do
		r = waitpid(pid, &st, WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == -1)
		return (neg_errno());
	if (r != 0 && (WIFEXITED(st) || WIFSIGNALED(st)))
		return (-ESRCH);
	return (0);
}

int
ferry_fb_sc_remote(int32_t pid, int32_t tid, uint32_t sysno,
    uint32_t sysno_limit, const uint64_t *args, uint32_t nargs,
    int64_t *ret0, int64_t *ret1, int32_t *sc_errno)
{
	struct ptrace_sc_remote sc;
	syscallarg_t a[8];
	uint32_t i;
	int error, reap;

	if (nargs > nitems(a) || sysno >= sysno_limit ||
	    sysno == SYS_syscall || sysno == SYS___syscall)
		return (-EINVAL);
	for (i = 0; i < nargs; i++)
		a[i] = (syscallarg_t)args[i];
	memset(&sc, 0, sizeof(sc));
	sc.pscr_syscall = sysno;
	sc.pscr_nargs = nargs;
	sc.pscr_args = a;
	error = pt(PT_SC_REMOTE, tid, &sc, sizeof(sc));
	reap = sc_remote_reap(pid);
	if (error != 0)
		return (error);
	if (reap != 0)
		return (reap);
	*ret0 = (int64_t)sc.pscr_ret.sr_retval[0];
	*ret1 = (int64_t)sc.pscr_ret.sr_retval[1];
	*sc_errno = sc.pscr_ret.sr_error;
	return (0);
}

uint32_t
ferry_fb_native_sysno_limit(void)
{

	return (SYS_MAXSYSCALL);
}

int
ferry_fb_vmmap(int32_t pid, struct ferry_fb_vmentry **out, int32_t *count)
{
	struct kinfo_vmentry *kv;
	struct ferry_fb_vmentry *v;
	int i, n;

	errno = 0;
	kv = kinfo_getvmmap(pid, &n);
	if (kv == NULL)
		return (neg_errno());
	v = calloc(n > 0 ? n : 1, sizeof(*v));
	if (v == NULL) {
		free(kv);
		return (-ENOMEM);
	}
	for (i = 0; i < n; i++) {
		v[i].start = kv[i].kve_start;
		v[i].end = kv[i].kve_end;
		v[i].offset = kv[i].kve_offset;
		v[i].fileid = kv[i].kve_vn_fileid;
		v[i].type = kv[i].kve_type;
		v[i].prot = kv[i].kve_protection;
		v[i].flags = kv[i].kve_flags;
		strlcpy(v[i].path, kv[i].kve_path, sizeof(v[i].path));
	}
	free(kv);
	*out = v;
	*count = n;
	return (0);
}

void
ferry_fb_vmmap_free(struct ferry_fb_vmentry *v)
{

	free(v);
}

int
ferry_fb_vm_entry(int32_t pid, int32_t *cookie, struct ferry_fb_vmentry *out)
{
	struct ptrace_vm_entry pve;
	int error;

	memset(&pve, 0, sizeof(pve));
	memset(out, 0, sizeof(*out));
	pve.pve_entry = *cookie;
	pve.pve_path = out->path;
	pve.pve_pathlen = sizeof(out->path);
	error = pt(PT_VM_ENTRY, pid, &pve, 0);
	if (error != 0)
		return (error);
	*cookie = pve.pve_entry;
	out->start = pve.pve_start;
	out->end = pve.pve_end + 1;	/* pve_end is inclusive */
	out->offset = pve.pve_offset;
	out->fileid = (uint64_t)pve.pve_fileid;
	out->type = -1;
	out->prot = (int32_t)pve.pve_prot;
	return (0);
}

int
ferry_fb_layout_sysno(int32_t *sysno)
{
	struct module_stat ms;
	int id;

	id = modfind(FERRY_LAYOUT_MODNAME);
	if (id == -1)
		return (errno == ENOENT ? -ENOENT : neg_errno());
	memset(&ms, 0, sizeof(ms));
	ms.version = sizeof(ms);
	if (modstat(id, &ms) == -1)
		return (neg_errno());
	*sysno = ms.data.intval;
	return (0);
}

static int
layout_call(int op, int32_t pid, void *arg)
{
	int32_t sysno;
	int error;

	error = ferry_fb_layout_sysno(&sysno);
	if (error != 0)
		return (error);
	errno = 0;
	if (syscall(sysno, op, (pid_t)pid, arg) == -1)
		return (neg_errno());
	return (0);
}

int
ferry_fb_layout_set(int32_t pid, struct ferry_layout *l)
{

	return (layout_call(FERRY_OP_SET_LAYOUT, pid, l));
}

int
ferry_fb_vm_layout(int32_t pid, struct ferry_fb_vm_layout *out)
{
	struct kinfo_vm_layout kvm;
	size_t len;
	int mib[4];

	mib[0] = CTL_KERN;
	mib[1] = KERN_PROC;
	mib[2] = KERN_PROC_VM_LAYOUT;
	mib[3] = pid;
	len = sizeof(kvm);
	memset(&kvm, 0, sizeof(kvm));
	if (sysctl(mib, nitems(mib), &kvm, &len, NULL, 0) == -1)
		return (neg_errno());
	memset(out, 0, sizeof(*out));
	out->min_user_addr = kvm.kvm_min_user_addr;
	out->max_user_addr = kvm.kvm_max_user_addr;
	out->text_addr = kvm.kvm_text_addr;
	out->text_pages = kvm.kvm_text_size;
	out->data_addr = kvm.kvm_data_addr;
	out->data_pages = kvm.kvm_data_size;
	out->stack_addr = kvm.kvm_stack_addr;
	out->stack_pages = kvm.kvm_stack_size;
	out->shared_page_addr = kvm.kvm_shp_addr;
	out->shared_page_size = kvm.kvm_shp_size;
	out->map_flags = kvm.kvm_map_flags;
	return (0);
}

/*
 * Build the name/value iovec pairs jail_set(2)/jail_get(2) take, plus an
 * "errmsg" pair when a buffer is given.
 */
static int
jail_call(int get, struct ferry_fb_jparam *params, uint32_t n,
    int32_t flags, char *errmsg, size_t errlen)
{
	struct iovec *iov;
	uint32_t i, k;
	int jid;

	iov = calloc(2 * (size_t)n + 2, sizeof(*iov));
	if (iov == NULL)
		return (-ENOMEM);
	k = 0;
	for (i = 0; i < n; i++) {
		iov[k].iov_base = (void *)(uintptr_t)params[i].name;
		iov[k++].iov_len = strlen(params[i].name) + 1;
		iov[k].iov_base = params[i].value;
		iov[k++].iov_len = params[i].len;
	}
	if (errmsg != NULL && errlen > 0) {
		errmsg[0] = '\0';
		iov[k].iov_base = (void *)(uintptr_t)"errmsg";
		iov[k++].iov_len = sizeof("errmsg");
		iov[k].iov_base = errmsg;
		iov[k++].iov_len = errlen;
	}
	errno = 0;
	jid = get ? jail_get(iov, k, flags) : jail_set(iov, k, flags);
	if (jid == -1)
		jid = neg_errno();
	else if (get)
		for (i = 0; i < n; i++)	/* lengths the kernel wrote */
			params[i].len = iov[2 * i + 1].iov_len;
	free(iov);
	return (jid);
}

int
ferry_fb_jail_set(struct ferry_fb_jparam *params, uint32_t n, int32_t flags,
    char *errmsg, size_t errlen)
{

	return (jail_call(0, params, n, flags, errmsg, errlen));
}

int
ferry_fb_jail_get(struct ferry_fb_jparam *params, uint32_t n, int32_t flags,
    char *errmsg, size_t errlen)
{

	return (jail_call(1, params, n, flags, errmsg, errlen));
}

int
ferry_fb_jail_attach(int32_t jid)
{

	return (jail_attach(jid) == -1 ? neg_errno() : 0);
}

int
ferry_fb_jail_remove(int32_t jid)
{

	return (jail_remove(jid) == -1 ? neg_errno() : 0);
}

/* rctl(8)'s rule text; ENOSYS when kern.racct.enable is 0. */
int
ferry_fb_rctl_add(const char *rule)
{

	if (rctl_add_rule(rule, strlen(rule) + 1, NULL, 0) == -1)
		return (neg_errno());
	return (0);
}

int
ferry_fb_rctl_remove(const char *filter)
{

	if (rctl_remove_rule(filter, strlen(filter) + 1, NULL, 0) == -1)
		return (neg_errno());
	return (0);
}

#endif /* __FreeBSD__ */
