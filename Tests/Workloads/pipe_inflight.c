/* pipe_inflight: a pipe inside the process carries a byte stream
 * (byte k = f(k)). 32 KiB are written before ready and read slowly, 64
 * bytes per millisecond; the writer tops the pipe up to 32 KiB whenever it
 * holds less than 16 KiB, so data is always in flight. Every byte read must
 * continue the stream; FIONREAD must equal written - read; at stop the rest
 * is drained and checked. */
#include "wl.h"
#include <sys/ioctl.h>

#define BLOCK 32768
static int rfd, wfd;
static uint64_t wpos, rpos;

static uint8_t byte_at(uint64_t k)
{
	return (uint8_t)(k * 131 + (k >> 8) * 7 + (k >> 16));
}

static void put(size_t n)
{
	uint8_t buf[BLOCK];
	for (size_t i = 0; i < n; i++)
		buf[i] = byte_at(wpos + i);
	WL_CHECK(wl_write_all(wfd, buf, n) == 0, "write to pipe: %s", strerror(errno));
	wpos += n;
}

static int queued(void)
{
	int n = -1;
	ioctl(rfd, FIONREAD, &n);
	WL_CHECK((uint64_t)n == wpos - rpos, "pipe holds %d bytes, want %lu", n,
		 (unsigned long)(wpos - rpos));
	return n;
}

static void take(size_t want)
{
	uint8_t buf[BLOCK];
	ssize_t n = read(rfd, buf, want);
	if (n < 0 && errno == EINTR)
		return;
	WL_CHECK(n == (ssize_t)want, "read %zd of %zu queued bytes (%s)", n, want, strerror(errno));
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != byte_at(rpos + i)) {
			wl_fail("stream byte %lu is %#x, want %#x", (unsigned long)(rpos + i), buf[i],
				byte_at(rpos + i));
			break;
		}
	rpos += n > 0 ? n : 0;
}

static void step(void)
{
	int q = queued();
	if (q > 0)
		take(q < 64 ? q : 64);
	if (queued() < BLOCK / 2)
		put(BLOCK / 2);
}

static void final(void)
{
	int q = queued();
	if (q > 0)
		take(q);
	WL_CHECK(queued() == 0, "pipe not empty after draining");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int p[2];
	if (pipe2(p, O_NONBLOCK) != 0)
		wl_setup_fail("pipe");
	rfd = p[0];
	wfd = p[1];
	put(BLOCK);
	wl_ready();
	wl_loop(step, final, 1000);
}
