/*
 * A tiny FreeBSD program that references every CFerryFreeBSD function, so
 * that kernel/check.sh can prove the shim links for x86_64-freebsd14
 * (libc, libutil).  It is linked, never run: run it on FreeBSD and it only
 * prints what it would call unless given a pid.
 */

#include <stdio.h>
#include <stdlib.h>

#include "CFerryFreeBSD.h"

typedef void (*anyfn)(void);

/* Not static: the linker must resolve every entry. */
extern const anyfn ferry_every[];
const anyfn ferry_every[] = {
	(anyfn)ferry_fb_attach, (anyfn)ferry_fb_detach,
	(anyfn)ferry_fb_continue, (anyfn)ferry_fb_kill,
	(anyfn)ferry_fb_spawn_traced, (anyfn)ferry_fb_cpuid,
	(anyfn)ferry_fb_xcr0,
	(anyfn)ferry_fb_waitpid, (anyfn)ferry_fb_wifstopped,
	(anyfn)ferry_fb_read, (anyfn)ferry_fb_write,
	(anyfn)ferry_fb_getregs, (anyfn)ferry_fb_setregs,
	(anyfn)ferry_fb_getfpregs, (anyfn)ferry_fb_xstate_info,
	(anyfn)ferry_fb_getxstate, (anyfn)ferry_fb_setxstate,
	(anyfn)ferry_fb_getfsbase, (anyfn)ferry_fb_setfsbase,
	(anyfn)ferry_fb_getgsbase, (anyfn)ferry_fb_setgsbase,
	(anyfn)ferry_fb_lwpinfo, (anyfn)ferry_fb_numlwps,
	(anyfn)ferry_fb_lwplist, (anyfn)ferry_fb_sc_remote,
	(anyfn)ferry_fb_vmmap, (anyfn)ferry_fb_vmmap_free,
	(anyfn)ferry_fb_vm_entry, (anyfn)ferry_fb_layout_sysno,
	(anyfn)ferry_fb_vm_layout, (anyfn)ferry_fb_layout_set,
	(anyfn)ferry_fb_jail_set, (anyfn)ferry_fb_jail_get,
	(anyfn)ferry_fb_jail_attach, (anyfn)ferry_fb_jail_remove,
	(anyfn)ferry_fb_rctl_add, (anyfn)ferry_fb_rctl_remove,
	(anyfn)ferry_layout_strerror, (anyfn)ferry_fb_native_sysno_limit,
};
#define	NFN	37

int
main(int argc, char **argv)
{
	struct ferry_fb_vmentry *v;
	struct ferry_fb_vm_layout l;
	int32_t n, sysno;
	size_t i, k;
	int rc;

	k = 0;
	for (i = 0; i < NFN; i++)
		k += ferry_every[i] != NULL;
	printf("%zu wrappers\n", k);
	rc = ferry_fb_layout_sysno(&sysno);
	printf("module: %s\n", rc == 0 ? "loaded" :
	    ferry_layout_strerror(FERRY_OP_SET_LAYOUT, -rc));
	if (argc < 2)
		return (0);
	if (ferry_fb_vmmap(atoi(argv[1]), &v, &n) == 0) {
		printf("%d map entries\n", n);
		ferry_fb_vmmap_free(v);
	}
	rc = ferry_fb_vm_layout(atoi(argv[1]), &l);
	if (rc != 0)
		printf("kern.proc.vm_layout: errno %d\n", -rc);
	else
		printf("text %#jx (%ju pages) data %#jx (%ju pages)\n",
		    (uintmax_t)l.text_addr, (uintmax_t)l.text_pages,
		    (uintmax_t)l.data_addr, (uintmax_t)l.data_pages);
	return (0);
}
