/* fifo_data: FIFOs (named pipes, in CTLDIR) keep their bytes, size and the
 * open mode and flags of each fd.
 *   big:  one O_RDWR fd, grown to 256 KiB, 100 KiB in flight.
 *   pair: a reader (O_RDONLY|O_NONBLOCK) and a writer (O_WRONLY), two open
 *         files of one FIFO, "hello fifo" in flight.
 *   wo:   only a writer (O_WRONLY) is held, "orphan!" in flight (the reader
 *         that was there is closed): reopening it needs a reader.
 *   ro:   only a reader (O_RDONLY|O_NONBLOCK), empty, no writer: reads EOF.
 * Each step checks every fd's access mode and O_NONBLOCK, the big FIFO's
 * size and every FIFO's unread byte count (FIONREAD); at stop the bytes are
 * read back (wo's through a new reader) and ro still reads EOF (no writer
 * was left open behind it). */
#include "wl.h"
#include <sys/ioctl.h>
#include <sys/stat.h>

#define BIG (256 * 1024)
#define INFLIGHT (100 * 1024)
static int big, pair_r, pair_w, wo, ro;
static char wo_path[PATH_MAX];

static uint8_t byte_at(size_t k) { return (uint8_t)(k * 29 + (k >> 11)); }

static void mode(int fd, const char *name, int want)
{
	int fl = fcntl(fd, F_GETFL);
	WL_CHECK(fl >= 0 && (fl & (O_ACCMODE | O_NONBLOCK)) == want, "%s: flags %#x, want mode/nonblock %#x", name,
		 fl, want);
}

static void unread(int fd, const char *name, int want)
{
	int n = -1;
	WL_CHECK(ioctl(fd, FIONREAD, &n) == 0 && n == want, "%s holds %d unread bytes, want %d", name, n, want);
}

static void step(void)
{
	mode(big, "big", O_RDWR);
	mode(pair_r, "pair reader", O_RDONLY | O_NONBLOCK);
	mode(pair_w, "pair writer", O_WRONLY);
	mode(wo, "wo writer", O_WRONLY);
	mode(ro, "ro reader", O_RDONLY | O_NONBLOCK);
	WL_CHECK(fcntl(big, F_GETPIPE_SZ) == BIG, "big FIFO is %d bytes, want %d", fcntl(big, F_GETPIPE_SZ), BIG);
	unread(big, "big", INFLIGHT);
	unread(pair_r, "pair", 10);
	unread(wo, "wo", 7);
	unread(ro, "ro", 0);
}

static void final(void)
{
	step();
	static uint8_t buf[INFLIGHT + 1];
	ssize_t n = read(big, buf, sizeof buf);
	WL_CHECK(n == INFLIGHT, "read %zd bytes back from the big FIFO, want %d", n, INFLIGHT);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != byte_at((size_t)i)) {
			wl_fail("big FIFO byte %zd is %#x, want %#x", i, buf[i], byte_at((size_t)i));
			break;
		}
	char s[32] = "";
	n = read(pair_r, s, sizeof s - 1);
	WL_CHECK(n == 10 && memcmp(s, "hello fifo", 10) == 0, "pair reads %zd bytes \"%s\"", n, s);
	WL_CHECK(write(pair_w, "x", 1) == 1 && read(pair_r, s, 1) == 1 && s[0] == 'x', "pair no longer connects its ends");
	int r = open(wo_path, O_RDONLY | O_NONBLOCK);
	memset(s, 0, sizeof s);
	n = r < 0 ? -1 : read(r, s, sizeof s - 1);
	WL_CHECK(n == 7 && memcmp(s, "orphan!", 7) == 0, "wo reads %zd bytes \"%s\" through a new reader", n, s);
	n = read(ro, s, 1);
	WL_CHECK(n == 0, "ro reads %zd (errno %d), not EOF: a writer is open behind it", n, n < 0 ? errno : 0);
}

static int fifo(const char *name, char *path)
{
	wl_path(path, name);
	unlink(path);
	return mkfifo(path, 0600);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	char p[PATH_MAX];
	if (fifo("fifo_big", p) || (big = open(p, O_RDWR)) < 0)
		wl_setup_fail("big FIFO");
	if (fcntl(big, F_SETPIPE_SZ, BIG) != BIG)
		wl_setup_fail("F_SETPIPE_SZ");
	static uint8_t data[INFLIGHT];
	for (size_t i = 0; i < INFLIGHT; i++)
		data[i] = byte_at(i);
	if (write(big, data, INFLIGHT) != INFLIGHT)
		wl_setup_fail("fill big FIFO");
	if (fifo("fifo_pair", p) || (pair_r = open(p, O_RDONLY | O_NONBLOCK)) < 0 || (pair_w = open(p, O_WRONLY)) < 0)
		wl_setup_fail("pair FIFO");
	if (write(pair_w, "hello fifo", 10) != 10)
		wl_setup_fail("write pair");
	int tmp;
	if (fifo("fifo_wo", wo_path) || (tmp = open(wo_path, O_RDONLY | O_NONBLOCK)) < 0 || (wo = open(wo_path, O_WRONLY)) < 0)
		wl_setup_fail("wo FIFO");
	if (write(wo, "orphan!", 7) != 7)
		wl_setup_fail("write wo");
	close(tmp);
	if (fifo("fifo_ro", p) || (ro = open(p, O_RDONLY | O_NONBLOCK)) < 0)
		wl_setup_fail("ro FIFO");
	wl_ready();
	wl_loop(step, final, 1000);
}
