/* stack_pointers CTLDIR [depth=10000]: recurses DEPTH frames; each frame
 * holds a struct with its depth, a value derived from it, a pointer to
 * itself and a pointer to its parent frame's struct. A heap array and a
 * global also point into the stack. The bottom frame spins checking the
 * whole chain; at stop it checks again and each frame re-checks its own
 * struct and the pointer it keeps in a register-or-spill local as the
 * recursion unwinds (which also exercises every saved return address).
 * Made for stack relocation: every pointer must follow the moved stack. */
#include "wl.h"

struct frame {
	long depth;
	uint64_t value;
	struct frame *self, *parent;
};

static struct frame **by_depth;  /* heap array of pointers into the stack */
static struct frame *volatile top; /* global pointer to frame 0 */
static long depth_max;

static uint64_t value_of(long d) { return wl_mix((uint64_t)d) | 1; }

static int check_frame(struct frame *f, long d)
{
	if (f->depth != d || f->value != value_of(d) || f->self != f || by_depth[d] != f) {
		wl_fail("frame %ld at %p: depth %ld self %p heap %p", d, (void *)f, f->depth,
			(void *)f->self, (void *)by_depth[d]);
		return 0;
	}
	return 1;
}

static void check_chain(struct frame *bottom)
{
	struct frame *f = bottom;
	for (long d = depth_max - 1; d >= 0; d--, f = f->parent)
		if (!check_frame(f, d))
			return;
	WL_CHECK(f == NULL, "chain does not end after frame 0");
}

static void spin(struct frame *bottom)
{
	while (!wl_stop()) {
		check_chain(bottom);
		WL_CHECK(top == by_depth[0], "global top pointer changed");
		wl_sleep_us(5000);
	}
	check_chain(bottom);
}

static __attribute__((noinline)) long recurse(struct frame *parent, long d)
{
	struct frame me = { d, value_of(d), &me, parent };
	struct frame *volatile keep = &me;
	by_depth[d] = &me;
	if (d == 0)
		top = &me;
	if (d + 1 < depth_max)
		recurse(&me, d + 1);
	else {
		wl_ready();
		spin(&me);
	}
	/* Unwinding after restore: my own struct and my pointers. */
	WL_CHECK(keep == &me && me.parent == parent && check_frame(keep, d),
		 "frame %ld wrong while unwinding", d);
	return d;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	depth_max = wl_arg(argc, argv, 2, 10000);
	if (depth_max < 1 || depth_max > 50000) {
		errno = EINVAL;
		wl_setup_fail("depth must be 1..50000");
	}
	by_depth = calloc((size_t)depth_max, sizeof(*by_depth));
	if (!by_depth)
		wl_setup_fail("calloc");
	recurse(NULL, 0);
	wl_finish();
}
