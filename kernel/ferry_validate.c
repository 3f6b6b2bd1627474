/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ferry_validate.c: OS-independent validation for the ferry_layout module,
 * modelled on what Linux checks for prctl(PR_SET_MM, PR_SET_MM_MAP): every
 * address inside user space, ranges ordered, the data limit respected.  It
 * adds what FreeBSD needs: page alignment (vm_tsize and vm_dsize are page
 * counts), disjoint ranges, and ranges backed by the map.
 *
 * Built into the kernel module and, unchanged, into the Linux unit tests.
 */

#ifdef _KERNEL
#include <sys/param.h>
#include <sys/errno.h>
#else
#include <errno.h>
#include <stddef.h>
#endif

#include "ferry_validate.h"

static int
is_aligned(uint64_t v, uint64_t align)
{

	return ((v & (align - 1)) == 0);
}

/* Half-open ranges [a0, a1) and [b0, b1); empty ranges overlap nothing. */
static int
overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{

	if (a0 >= a1 || b0 >= b1)
		return (0);
	return (a0 < b1 && b0 < a1);
}

static int
in_bounds(const struct ferry_map_view *mv, uint64_t start, uint64_t end)
{

	return (start >= mv->mv_min && end <= mv->mv_max && start <= end);
}

static int
all_zero(const uint64_t *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] != 0)
			return (0);
	return (1);
}

/* The header rules shared by both request structs. */
static int
check_header(uint32_t version, uint32_t size, size_t want_size,
    uint32_t mask, uint32_t all, uint32_t spare0, const uint64_t *spare,
    size_t nspare)
{

	if (version == 0 || version > FERRY_LAYOUT_VERSION ||
	    size != want_size)
		return (EPROTONOSUPPORT);
	if ((mask & ~all) != 0 || spare0 != 0 || !all_zero(spare, nspare))
		return (EOPNOTSUPP);
	return (0);
}

int
ferry_layout_check_header(const struct ferry_layout *req)
{

	return (check_header(req->fl_version, req->fl_size,
	    sizeof(struct ferry_layout), req->fl_mask, FERRY_LF_ALL,
	    req->fl_spare0, req->fl_spare,
	    sizeof(req->fl_spare) / sizeof(req->fl_spare[0])));
}

int
ferry_layout_validate(const struct ferry_layout *l,
    const struct ferry_map_view *mv)
{
	uint64_t pg, ps;

	if (mv->mv_page_size == 0 || !is_aligned(mv->mv_page_size,
	    mv->mv_page_size))
		return (EINVAL);
	pg = mv->mv_page_size;

	/* 1. Alignment. */
	if (!is_aligned(l->fl_text_start, pg) ||
	    !is_aligned(l->fl_text_end, pg) ||
	    !is_aligned(l->fl_data_start, pg) ||
	    !is_aligned(l->fl_brk, pg) ||
	    !is_aligned(l->fl_stack_max, pg) ||
	    !is_aligned(l->fl_stack_top, 8) ||
	    !is_aligned(mv->mv_psstringssz, 8))
		return (EINVAL);

	/* 2. Order: text non-empty, data may be empty, stack non-empty. */
	if (l->fl_text_start >= l->fl_text_end ||
	    l->fl_data_start > l->fl_brk ||
	    l->fl_stack_max >= l->fl_stack_top ||
	    l->fl_stack_top - l->fl_stack_max < mv->mv_psstringssz)
		return (EDOM);
	ps = l->fl_stack_top - mv->mv_psstringssz;

	/* 3. Inside the map's user bounds. */
	if (!in_bounds(mv, l->fl_text_start, l->fl_text_end) ||
	    !in_bounds(mv, l->fl_data_start, l->fl_brk) ||
	    !in_bounds(mv, l->fl_stack_max, l->fl_stack_top))
		return (ERANGE);

	/* 4. Disjoint: text, data + break, stack growth area. */
	if (overlaps(l->fl_text_start, l->fl_text_end,
	    l->fl_data_start, l->fl_brk) ||
	    overlaps(l->fl_text_start, l->fl_text_end,
	    l->fl_stack_max, l->fl_stack_top) ||
	    overlaps(l->fl_data_start, l->fl_brk,
	    l->fl_stack_max, l->fl_stack_top))
		return (EADDRINUSE);

	/* 5. Backed by the map: text, data + break, ps_strings to top. */
	if (mv->mv_covered == NULL)
		return (ENOMEM);
	if (!mv->mv_covered(mv->mv_ctx, l->fl_text_start, l->fl_text_end))
		return (ENOMEM);
	if (l->fl_data_start < l->fl_brk &&
	    !mv->mv_covered(mv->mv_ctx, l->fl_data_start, l->fl_brk))
		return (ENOMEM);
	if (ps < l->fl_stack_top &&
	    !mv->mv_covered(mv->mv_ctx, ps, l->fl_stack_top))
		return (ENOMEM);

	/* 6. The data limit, as Linux's check_data_rlimit does. */
	if (mv->mv_data_limit != 0 &&
	    l->fl_brk - l->fl_data_start > mv->mv_data_limit)
		return (EFBIG);
	return (0);
}

int
ferry_layout_prepare(const struct ferry_layout *cur,
    const struct ferry_layout *req, const struct ferry_map_view *mv,
    struct ferry_layout *out)
{
	struct ferry_layout n;
	int error;

	error = ferry_layout_check_header(req);
	if (error != 0)
		return (error);
	n = *cur;
	if ((req->fl_mask & FERRY_LF_TEXT) != 0) {
		n.fl_text_start = req->fl_text_start;
		n.fl_text_end = req->fl_text_end;
	}
	if ((req->fl_mask & FERRY_LF_DATA) != 0) {
		n.fl_data_start = req->fl_data_start;
		n.fl_brk = req->fl_brk;
	}
	if ((req->fl_mask & FERRY_LF_STACK) != 0) {
		n.fl_stack_max = req->fl_stack_max;
		n.fl_stack_top = req->fl_stack_top;
	}
	error = ferry_layout_validate(&n, mv);
	if (error != 0)
		return (error);
	n.fl_ps_strings = n.fl_stack_top - mv->mv_psstringssz;
	n.fl_mask = req->fl_mask;
	*out = n;
	return (0);
}

int
ferry_layout_check_pid(long pid)
{

	return (pid > 0 ? 0 : ESRCH);
}

static const char *
layout_strerror(int err)
{

	switch (err) {
	case EINVAL:
		return ("a layout address is not page-aligned (the stack top "
		    "must be 8-byte aligned)");
	case EDOM:
		return ("a layout range is reversed or empty: its end is not "
		    "above its start");
	case ERANGE:
		return ("a layout range lies outside the target's user "
		    "address space");
	case EADDRINUSE:
		return ("the text, data/break and stack ranges overlap");
	case ENOMEM:
		return ("a layout range is not wholly mapped in the target; "
		    "map it before setting the layout");
	case EFBIG:
		return ("data plus break exceed the target's RLIMIT_DATA");
	case ESRCH:
		return ("no such process (the pid must be above 0), or it is "
		    "exiting");
	case EBUSY:
		return ("the target is not stopped for the caller: stop it "
		    "under ptrace, wait for the stop (also after PT_SC_REMOTE), "
		    "then call");
	default:
		return (NULL);
	}
}

const char *
ferry_layout_strerror(int op, int err)
{
	const char *s;

	if (err == 0)
		return ("success");
	s = NULL;
	if (op == FERRY_OP_SET_LAYOUT)
		s = layout_strerror(err);
	if (s != NULL)
		return (s);
	switch (err) {
	case EPERM:
		return ("the caller is not privileged (needs root outside a "
		    "jail)");
	case EACCES:
		return ("the caller may not debug the target process");
	case EFAULT:
		return ("the request points to memory the caller cannot "
		    "read or write");
	case EPROTONOSUPPORT:
		return ("ferry and the ferry_layout module disagree on the "
		    "ABI version or struct size");
	case EOPNOTSUPP:
		return ("the module does not know that operation or field, "
		    "or a reserved field is not zero");
	case ENOENT:
		return ("the ferry_layout kernel module is not loaded "
		    "(kldload ferry_layout)");
	case ENOSYS:
		return ("the ferry_layout system call is not available");
	default:
		return ("unexpected error from the ferry_layout module");
	}
}
