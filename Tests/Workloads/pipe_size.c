/* pipe_size: pipes resized with F_SETPIPE_SZ keep their size. One pipe is
 * grown to 256 KiB and holds 100 KiB in flight (more than a default pipe
 * holds), one is shrunk to one page; a third keeps the default. Each step
 * checks every size with F_GETPIPE_SZ, and that the small pipe still
 * refuses a write past its page (EAGAIN); at stop the big pipe's bytes are
 * read back and checked. A fourth pipe, grown to 128 KiB, is full (zdtm
 * pipe03): at stop it refuses one more byte and gives its bytes back. */
#include "wl.h"

#define BIG (256 * 1024)
#define INFLIGHT (100 * 1024)
#define FULL (128 * 1024)
static int big[2], small[2], plain[2], full[2];
static long small_size, plain_size;

static uint8_t byte_at(size_t k) { return (uint8_t)(k * 13 + (k >> 9)); }

static void step(void)
{
	WL_CHECK(fcntl(big[1], F_GETPIPE_SZ) == BIG, "big pipe is %d bytes, want %d", fcntl(big[1], F_GETPIPE_SZ), BIG);
	WL_CHECK(fcntl(small[1], F_GETPIPE_SZ) == small_size, "small pipe is %d bytes, want %ld",
		 fcntl(small[1], F_GETPIPE_SZ), small_size);
	WL_CHECK(fcntl(plain[1], F_GETPIPE_SZ) == plain_size, "plain pipe is %d bytes, want %ld",
		 fcntl(plain[1], F_GETPIPE_SZ), plain_size);
}

static void final(void)
{
	step();
	/* The small pipe holds one page: a second page does not fit. */
	static uint8_t page[65536];
	ssize_t n = write(small[1], page, (size_t)small_size);
	WL_CHECK(n == small_size, "small pipe took %zd of %ld bytes", n, small_size);
	n = write(small[1], page, 1);
	WL_CHECK(n < 0 && errno == EAGAIN, "small pipe took a byte past its size (%zd)", n);
	n = write(full[1], page, 1);
	WL_CHECK(n < 0 && errno == EAGAIN, "the full pipe took another byte (%zd)", n);
	static uint8_t back[FULL + 1];
	n = read(full[0], back, sizeof back);
	WL_CHECK(n == FULL, "read %zd bytes back from the full pipe, want %d", n, FULL);
	for (ssize_t i = 0; i < n; i++)
		if (back[i] != byte_at((size_t)i + 7)) {
			wl_fail("full pipe byte %zd is %#x, want %#x", i, back[i], byte_at((size_t)i + 7));
			break;
		}
	static uint8_t buf[INFLIGHT + 1];
	n = read(big[0], buf, sizeof buf);
	WL_CHECK(n == INFLIGHT, "read %zd bytes back from the big pipe, want %d", n, INFLIGHT);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != byte_at((size_t)i)) {
			wl_fail("big pipe byte %zd is %#x, want %#x", i, buf[i], byte_at((size_t)i));
			break;
		}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	if (pipe2(big, O_NONBLOCK) || pipe2(small, O_NONBLOCK) || pipe2(plain, O_NONBLOCK) || pipe2(full, O_NONBLOCK))
		wl_setup_fail("pipe2");
	if (fcntl(full[1], F_SETPIPE_SZ, FULL) != FULL)
		wl_setup_fail("F_SETPIPE_SZ full");
	static uint8_t page4k[4096];
	for (size_t off = 0; off < FULL; off += sizeof page4k) {
		for (size_t i = 0; i < sizeof page4k; i++)
			page4k[i] = byte_at(off + i + 7);
		if (write(full[1], page4k, sizeof page4k) != sizeof page4k)
			wl_setup_fail("fill the full pipe");
	}
	if (fcntl(big[1], F_SETPIPE_SZ, BIG) != BIG)
		wl_setup_fail("F_SETPIPE_SZ big");
	small_size = fcntl(small[1], F_SETPIPE_SZ, 4096);
	if (small_size <= 0)
		wl_setup_fail("F_SETPIPE_SZ small");
	plain_size = fcntl(plain[1], F_GETPIPE_SZ);
	static uint8_t data[INFLIGHT];
	for (size_t i = 0; i < INFLIGHT; i++)
		data[i] = byte_at(i);
	if (write(big[1], data, INFLIGHT) != INFLIGHT)
		wl_setup_fail("fill big pipe");
	wl_ready();
	wl_loop(step, final, 1000);
}
