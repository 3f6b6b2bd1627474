/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ferry_validate.h: the OS-independent checks of the ferry_layout module.
 *
 * Nothing here touches the kernel: the module fills a struct ferry_map_view
 * from the target's vmspace and calls these functions under the map lock;
 * the Linux unit tests (tests/test_validate.c) fill it from a table.
 *
 * Errno values (symbolic, so each OS gets its own numbers):
 *
 *	EPROTONOSUPPORT	unknown struct version or size
 *	EOPNOTSUPP	unknown op, unknown mask bit, non-zero spare field
 *	EINVAL		address not page-aligned (ps_strings: not 8-aligned)
 *	EDOM		reversed or empty range (end before start)
 *	ERANGE		address outside the map's user bounds
 *	EADDRINUSE	text, data and stack ranges overlap
 *	ENOMEM		range not wholly backed by mappings in the map
 *	EFBIG		data + break larger than the target's RLIMIT_DATA
 *
 * and, from the module itself (not from these functions):
 *
 *	EPERM		caller lacks the privilege (priv_check)
 *	EACCES		caller may not debug the target (p_candebug)
 *	EBUSY		target is not stopped for its tracer, the caller
 *	ESRCH		pid <= 0, no such process, or it is exiting
 *	EFAULT		the argument pointer is bad (copyin/copyout)
 */

#ifndef _FERRY_VALIDATE_H_
#define	_FERRY_VALIDATE_H_

#include "ferry_layout.h"

struct ferry_map_view {
	uint64_t	mv_min;		/* lowest user address */
	uint64_t	mv_max;		/* end of user space (exclusive) */
	uint64_t	mv_page_size;	/* a power of two */
	uint64_t	mv_psstringssz;	/* sv_psstringssz of the target's ABI */
	uint64_t	mv_data_limit;	/* RLIMIT_DATA of the target; 0: none */
	/*
	 * Non-zero when [start, end) is wholly backed by ordinary map
	 * entries (no hole, no guard entry).  Called only with
	 * mv_min <= start < end <= mv_max.
	 */
	int		(*mv_covered)(void *ctx, uint64_t start, uint64_t end);
	void		*mv_ctx;
};

/* Version, size, spare and mask checks of a layout request. */
int	ferry_layout_check_header(const struct ferry_layout *req);

/*
 * The whole SET_LAYOUT decision: check the header of req, merge the fields
 * it names into a copy of cur, and validate the result against mv.
 * Returns 0 and the new layout in *out, or an errno and leaves *out
 * untouched.  The caller applies *out only on 0, so a refused request
 * never changes anything.
 */
int	ferry_layout_prepare(const struct ferry_layout *cur,
	    const struct ferry_layout *req, const struct ferry_map_view *mv,
	    struct ferry_layout *out);

/* Validate a complete layout (all fields) against mv. */
int	ferry_layout_validate(const struct ferry_layout *l,
	    const struct ferry_map_view *mv);

/* The target pid of a request: ESRCH unless pid > 0. */
int	ferry_layout_check_pid(long pid);

/* A sentence for an errno returned by the module for op (FERRY_OP_*). */
const char *ferry_layout_strerror(int op, int err);

#endif /* !_FERRY_VALIDATE_H_ */
