/*
 * Linux unit tests for ferry_validate.c: a table of good and bad layout
 * requests against a model map, and the pid check.  Prints one line per failure and
 * a final line "N passed, M failed"; exits non-zero if anything failed.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../ferry_validate.h"

#define	PG	0x1000ULL
#define	MAXU	0x800000000000ULL
#define	PSSZ	0x40ULL		/* stands in for sv_psstringssz */

struct ent {
	uint64_t	start, end;
	int		guard;
};

/* A model of a Linux-ABI process map under the Linuxulator. */
static const struct ent model[] = {
	{ 0x400000, 0x401000, 0 },		/* text */
	{ 0x401000, 0x403000, 0 },		/* text, second entry */
	{ 0x600000, 0x602000, 0 },		/* data */
	{ 0x602000, 0x610000, 0 },		/* heap */
	{ 0x7ffffffdd000 - 0x1000, 0x7ffffffdd000, 1 },	/* stack gap */
	{ 0x7ffffffdd000, 0x7ffffffff000, 0 },	/* stack */
	{ MAXU - PG, MAXU, 0 },			/* last user page */
};

static int
covered(void *ctx, uint64_t start, uint64_t end)
{
	const struct ent *e;
	size_t i, n;
	uint64_t at;

	(void)ctx;
	n = sizeof(model) / sizeof(model[0]);
	at = start;
	for (i = 0; i < n && at < end; i++) {
		e = &model[i];
		if (e->end <= at)
			continue;
		if (e->start > at || e->guard)
			return (0);
		at = e->end;
	}
	return (at >= end);
}

static const struct ferry_map_view view = {
	.mv_min = 0x1000,
	.mv_max = MAXU,
	.mv_page_size = PG,
	.mv_psstringssz = PSSZ,
	.mv_data_limit = 0x100000,
	.mv_covered = covered,
	.mv_ctx = NULL,
};

static struct ferry_layout
good(void)
{
	struct ferry_layout l;

	memset(&l, 0, sizeof(l));
	l.fl_version = FERRY_LAYOUT_VERSION;
	l.fl_size = sizeof(l);
	l.fl_mask = FERRY_LF_ALL;
	l.fl_text_start = 0x400000;
	l.fl_text_end = 0x403000;
	l.fl_data_start = 0x600000;
	l.fl_brk = 0x610000;
	l.fl_stack_max = 0x7ffffffdd000 - 0x100000;
	l.fl_stack_top = 0x7ffffffff000;
	return (l);
}

enum field {
	F_NONE, F_VERSION, F_SIZE, F_MASK, F_SPARE0, F_SPARE, F_TS, F_TE,
	F_DS, F_BRK, F_SMAX, F_STOP
};

struct lcase {
	const char	*name;
	enum field	f1;
	uint64_t	v1;
	enum field	f2;
	uint64_t	v2;
	int		want;
};

static const struct lcase lcases[] = {
	{ "good full layout", F_NONE, 0, F_NONE, 0, 0 },
	{ "good: empty data", F_BRK, 0x600000, F_NONE, 0, 0 },
	{ "good: unaligned stack top", F_STOP, 0x7fffffffefd8, F_NONE, 0, 0 },
	{ "good: text only", F_MASK, FERRY_LF_TEXT, F_NONE, 0, 0 },
	{ "good: text ends at map max", F_TS, MAXU - PG, F_TE, MAXU, 0 },
	{ "bad version 0", F_VERSION, 0, F_NONE, 0, EPROTONOSUPPORT },
	{ "bad version future", F_VERSION, 99, F_NONE, 0, EPROTONOSUPPORT },
	{ "bad size", F_SIZE, 8, F_NONE, 0, EPROTONOSUPPORT },
	{ "unknown mask bit", F_MASK, 0x80, F_NONE, 0, EOPNOTSUPP },
	{ "spare0 set", F_SPARE0, 1, F_NONE, 0, EOPNOTSUPP },
	{ "spare[] set", F_SPARE, 1, F_NONE, 0, EOPNOTSUPP },
	{ "unaligned text start", F_TS, 0x400010, F_NONE, 0, EINVAL },
	{ "unaligned text end", F_TE, 0x402fff, F_NONE, 0, EINVAL },
	{ "unaligned data start", F_DS, 0x600008, F_NONE, 0, EINVAL },
	{ "unaligned brk", F_BRK, 0x60f123, F_NONE, 0, EINVAL },
	{ "unaligned stack max", F_SMAX, 0x7ffff0000010, F_NONE, 0, EINVAL },
	{ "stack top not 8-aligned", F_STOP, 0x7fffffffeffc, F_NONE, 0,
	    EINVAL },
	{ "reversed text", F_TS, 0x403000, F_TE, 0x400000, EDOM },
	{ "empty text", F_TE, 0x400000, F_NONE, 0, EDOM },
	{ "reversed data", F_DS, 0x610000, F_BRK, 0x600000, EDOM },
	{ "reversed stack", F_SMAX, 0x7ffffffff000, F_STOP, 0x7ffffffdd000,
	    EDOM },
	{ "stack smaller than ps_strings", F_SMAX, 0x7fffffffe000,
	    F_STOP, 0x7fffffffe020, EDOM },
	{ "text below map min", F_TS, 0, F_NONE, 0, ERANGE },
	{ "data above map max", F_DS, MAXU, F_BRK, MAXU + PG, ERANGE },
	{ "stack top above map max", F_STOP, MAXU + 8, F_NONE, 0, ERANGE },
	{ "brk wraps past 2^64", F_DS, 0xfffffffffffff000ULL,
	    F_BRK, 0xfffffffffffff000ULL, ERANGE },
	{ "text overlaps data", F_TE, 0x601000, F_NONE, 0, EADDRINUSE },
	{ "data overlaps stack", F_BRK, 0x7ffffff00000, F_NONE, 0,
	    EADDRINUSE },
	{ "text inside stack area", F_TS, 0x7ffffffde000,
	    F_TE, 0x7ffffffdf000, EADDRINUSE },
	{ "text has a hole", F_TE, 0x404000, F_NONE, 0, ENOMEM },
	{ "text unmapped", F_TS, 0x100000, F_TE, 0x101000, ENOMEM },
	{ "data over unmapped brk", F_BRK, 0x611000, F_NONE, 0, ENOMEM },
	{ "ps_strings in the guard gap", F_STOP, 0x7ffffffdd000 - 8,
	    F_SMAX, 0x7ffffffd0000, ENOMEM },
	{ "data far away, unmapped", F_DS, 0x10000000, F_BRK, 0x10200000,
	    ENOMEM },
	{ NULL, F_NONE, 0, F_NONE, 0, 0 },
};

static void
set_field(struct ferry_layout *l, enum field f, uint64_t v)
{

	switch (f) {
	case F_NONE: break;
	case F_VERSION: l->fl_version = (uint32_t)v; break;
	case F_SIZE: l->fl_size = (uint32_t)v; break;
	case F_MASK: l->fl_mask = (uint32_t)v; break;
	case F_SPARE0: l->fl_spare0 = (uint32_t)v; break;
	case F_SPARE: l->fl_spare[3] = v; break;
	case F_TS: l->fl_text_start = v; break;
	case F_TE: l->fl_text_end = v; break;
	case F_DS: l->fl_data_start = v; break;
	case F_BRK: l->fl_brk = v; break;
	case F_SMAX: l->fl_stack_max = v; break;
	case F_STOP: l->fl_stack_top = v; break;
	}
}

static int passed, failed;

static void
expect(const char *name, int got, int want)
{

	if (got == want) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s: got %d (%s), want %d (%s)\n", name, got,
	    strerror(got), want, strerror(want));
}

static void
test_layout_table(void)
{
	struct ferry_layout cur, req, out, before;
	const struct lcase *c;
	int got;

	for (c = lcases; c->name != NULL; c++) {
		cur = good();
		req = good();
		set_field(&req, c->f1, c->v1);
		set_field(&req, c->f2, c->v2);
		memset(&out, 0xa5, sizeof(out));
		before = out;
		got = ferry_layout_prepare(&cur, &req, &view, &out);
		expect(c->name, got, c->want);
		/* A refused request leaves the output untouched. */
		if (got != 0)
			expect(c->name, memcmp(&out, &before, sizeof(out)), 0);
	}
}

static void
test_layout_extra(void)
{
	struct ferry_layout cur, req, out;
	struct ferry_map_view v;

	/* Only masked fields change; ps_strings is derived. */
	cur = good();
	req = good();
	req.fl_mask = FERRY_LF_DATA;
	req.fl_brk = 0x608000;
	req.fl_text_start = 0x123;	/* ignored: not in the mask */
	expect("merge: rc", ferry_layout_prepare(&cur, &req, &view, &out), 0);
	expect("merge: brk", out.fl_brk == 0x608000, 1);
	expect("merge: text kept", out.fl_text_start == 0x400000, 1);
	expect("merge: ps_strings", out.fl_ps_strings ==
	    0x7ffffffff000 - PSSZ, 1);

	/* A bad current layout is caught even with an empty mask. */
	cur = good();
	cur.fl_text_end = 0x401800;
	req = good();
	req.fl_mask = 0;
	expect("bad current, empty mask",
	    ferry_layout_prepare(&cur, &req, &view, &out), EINVAL);

	/* No coverage callback: nothing is backed. */
	v = view;
	v.mv_covered = NULL;
	cur = good();
	req = good();
	expect("no covered callback",
	    ferry_layout_prepare(&cur, &req, &v, &out), ENOMEM);

	/* RLIMIT_DATA. */
	v = view;
	v.mv_data_limit = 0x8000;
	expect("brk over RLIMIT_DATA",
	    ferry_layout_prepare(&cur, &req, &v, &out), EFBIG);
	v.mv_data_limit = 0x10000;
	expect("brk at RLIMIT_DATA",
	    ferry_layout_prepare(&cur, &req, &v, &out), 0);

	/* A bogus page size from the caller is refused, not divided by. */
	v = view;
	v.mv_page_size = 3000;
	expect("bad page size", ferry_layout_prepare(&cur, &req, &v, &out),
	    EINVAL);
}

static void
test_pid(void)
{

	expect("pid 1", ferry_layout_check_pid(1), 0);
	expect("pid 99999", ferry_layout_check_pid(99999), 0);
	expect("pid 0 (the kernel, or 'this process' to some calls)",
	    ferry_layout_check_pid(0), ESRCH);
	expect("pid -1 (every process, to kill)", ferry_layout_check_pid(-1),
	    ESRCH);
}

static void
test_strerror(void)
{
	static const int errs[] = { EINVAL, EDOM, ERANGE, EADDRINUSE, ENOMEM,
	    EFBIG, EPERM, EACCES, EBUSY, ESRCH, EFAULT, EPROTONOSUPPORT,
	    EOPNOTSUPP, ENOENT };
	const char *seen[sizeof(errs) / sizeof(errs[0])];
	size_t i, j, n;
	int distinct;

	n = sizeof(errs) / sizeof(errs[0]);
	for (i = 0; i < n; i++) {
		seen[i] = ferry_layout_strerror(FERRY_OP_SET_LAYOUT, errs[i]);
		expect("strerror not generic", strcmp(seen[i],
		    "unexpected error from the ferry_layout module") != 0, 1);
	}
	distinct = 1;
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (strcmp(seen[i], seen[j]) == 0)
				distinct = 0;
	expect("strerror: one sentence per errno", distinct, 1);
	expect("strerror EBUSY names the wait", strstr(ferry_layout_strerror(
	    FERRY_OP_SET_LAYOUT, EBUSY), "wait") != NULL, 1);
	expect("strerror unknown", strcmp(ferry_layout_strerror(
	    FERRY_OP_SET_LAYOUT, EXDEV),
	    "unexpected error from the ferry_layout module"), 0);
	expect("strerror success", strcmp(ferry_layout_strerror(0, 0),
	    "success"), 0);
}

int
main(void)
{

	test_layout_table();
	test_layout_extra();
	test_pid();
	test_strerror();
	printf("%d passed, %d failed\n", passed, failed);
	return (failed == 0 ? 0 : 1);
}
