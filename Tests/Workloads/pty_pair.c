/* pty_pair: pseudo-terminals survive the restore with their index, settings
 * and unread bytes. The root (a session leader without a terminal, as
 * launch.py starts it) holds three masters:
 *   pty A: child C makes its slave the controlling terminal of a new session
 *     (canonical mode, echo on, custom erase character, window size 33x101),
 *     and grandchild G's group the foreground group. The root writes
 *     "hello\npart" on the master (one line and a partial one; the echo
 *     "hello\r\npart" waits on the master), C writes "out1\n" on the slave
 *     (ONLCR: "out1\r\n" waits on the master).
 *   pty B: master and slave in the root, raw, exclusive, the master
 *     non-blocking; {0, 0x7f, 0x15, 'x'} wait on the slave, "abc\n" on the master.
 *   pty C: a master never unlocked (locked).
 * After the restore: same indices, the master waits with exactly the echo
 * and output (nothing echoed twice, no \r added), C still has its terminal,
 * foreground group, termios and window size, reads "hello\n" then nothing
 * until the root completes the partial line; pty B's bytes and modes; pty
 * C still locked. */
#include "wl.h"
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

static int ma, mb, sb, mc;
static int ia, ib, ic;
static pid_t c, g;
static int to_c[2], from_c[2];
static struct termios tb_saved;

static int index_of(int m)
{
	unsigned n = 0;
	if (ioctl(m, TIOCGPTN, &n) != 0)
		return -1;
	return (int)n;
}

static int inq(int fd)
{
	int n = -1;
	ioctl(fd, FIONREAD, &n);
	return n;
}

static void wait_inq(int fd, int n)
{
	for (int i = 0; i < 5000 && inq(fd) < n; i++)
		wl_sleep_us(1000);
}

static ssize_t read_avail(int fd, char *buf, size_t cap)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 2000) != 1)
		return -1;
	return read(fd, buf, cap);
}

static void send_c(char x)
{
	if (write(to_c[1], &x, 1) != 1)
		wl_fail("write to C");
}

static char recv_c(char *msg, size_t cap)
{
	ssize_t n = read(from_c[0], msg, cap - 1);
	if (n <= 0)
		return 0;
	msg[n] = 0;
	return msg[0];
}

/* C: the session with pty A as its terminal. Messages from the root: 'w'
 * write "out1\n"; 'v' verify (answer "ok" or a reason); 'p' read the rest
 * of the partial line. */
static void child_c(void)
{
	char path[64], cmd, buf[256];
	setsid();
	signal(SIGTTOU, SIG_IGN);
	close(to_c[1]);
	close(from_c[0]);
	snprintf(path, sizeof(path), "/dev/pts/%d", ia);
	int s = open(path, O_RDWR);
	if (s < 0 || ioctl(s, TIOCSCTTY, 0) != 0)
		_exit(3);
	struct termios t;
	tcgetattr(s, &t);
	t.c_cc[VERASE] = 0x08;
	cfsetospeed(&t, B9600);
	tcsetattr(s, TCSANOW, &t);
	struct termios saved;
	tcgetattr(s, &saved);
	struct winsize ws = { .ws_row = 33, .ws_col = 101 };
	ioctl(s, TIOCSWINSZ, &ws);
	if ((g = fork()) == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	setpgid(g, g);
	tcsetpgrp(s, g);
	while (read(to_c[0], &cmd, 1) == 1) {
		const char *why = "ok";
		if (cmd == 'w') {
			if (write(s, "out1\n", 5) != 5)
				why = "write on the slave";
		} else if (cmd == 'v') {
			struct termios now;
			struct winsize w2;
			pid_t sid = -1;
			int ctty = open("/dev/tty", O_RDWR);
			tcgetattr(s, &now);
			ioctl(s, TIOCGWINSZ, &w2);
			ioctl(s, TIOCGSID, &sid);
			if (ctty < 0)
				why = "no controlling terminal (/dev/tty)";
			else if (sid != getpid())
				why = "the terminal's session is not C's";
			else if (tcgetpgrp(s) != g)
				why = "the foreground group is not G's";
			else if (now.c_lflag != saved.c_lflag || now.c_iflag != saved.c_iflag || now.c_oflag != saved.c_oflag ||
				 now.c_cflag != saved.c_cflag || memcmp(now.c_cc, saved.c_cc, NCCS) != 0)
				why = "termios changed";
			else if (cfgetospeed(&now) != B9600)
				why = "output speed changed";
			else if (w2.ws_row != 33 || w2.ws_col != 101)
				why = "window size changed";
			else if (!(ttyname(s) && strcmp(ttyname(s), path) == 0))
				why = "ttyname changed";
			else {
				tcsetpgrp(s, getpgrp());
				ssize_t n = read_avail(s, buf, sizeof(buf));
				struct pollfd p = { .fd = s, .events = POLLIN };
				if (n != 6 || memcmp(buf, "hello\n", 6) != 0)
					why = "the first line is not \"hello\\n\"";
				else if (poll(&p, 1, 100) != 0)
					why = "the partial line became readable";
			}
			if (ctty >= 0)
				close(ctty);
		} else if (cmd == 'p') {
			ssize_t n = read_avail(s, buf, sizeof(buf));
			if (n != 8 || memcmp(buf, "partial\n", 8) != 0)
				why = "the partial line did not complete to \"partial\\n\"";
		}
		if (write(from_c[1], why, strlen(why)) < 0)
			_exit(4);
	}
	kill(g, SIGKILL);
	_exit(0);
}

static void check_root(void)
{
	WL_CHECK(index_of(ma) == ia && index_of(mb) == ib && index_of(mc) == ic, "pty indices %d %d %d, want %d %d %d",
		 index_of(ma), index_of(mb), index_of(mc), ia, ib, ic);
	int locked = 0;
	ioctl(mc, TIOCGPTLCK, &locked);
	WL_CHECK(locked == 1, "pty C is not locked");
	ioctl(mb, TIOCGPTLCK, &locked);
	WL_CHECK(locked == 0, "pty B is locked");
	WL_CHECK(fcntl(mb, F_GETFL) & O_NONBLOCK, "pty B's master lost O_NONBLOCK");
}

int main(int argc, char **argv)
{
	char msg[256];
	wl_init(argc, argv);
	if (getsid(0) != getpid())
		wl_setup_fail("not a session leader (start it with setsid)");
	ma = posix_openpt(O_RDWR | O_NOCTTY);
	mb = posix_openpt(O_RDWR | O_NOCTTY);
	mc = posix_openpt(O_RDWR | O_NOCTTY);
	if (ma < 0 || mb < 0 || mc < 0 || unlockpt(ma) || unlockpt(mb))
		wl_setup_fail("posix_openpt/unlockpt");
	ia = index_of(ma); ib = index_of(mb); ic = index_of(mc);
	if (pipe(to_c) || pipe(from_c))
		wl_setup_fail("pipe");
	if ((c = fork()) == 0)
		child_c();
	close(to_c[0]);
	close(from_c[1]);
	/* pty B: raw, exclusive, bytes both ways. */
	sb = open(ptsname(mb), O_RDWR | O_NOCTTY);
	if (sb < 0)
		wl_setup_fail("open pty B's slave");
	struct termios t;
	tcgetattr(sb, &t);
	cfmakeraw(&t);
	tcsetattr(sb, TCSANOW, &t);
	tcgetattr(sb, &tb_saved);
	ioctl(sb, TIOCEXCL);
	fcntl(mb, F_SETFL, fcntl(mb, F_GETFL) | O_NONBLOCK);
	if (write(mb, "\0\x7f\x15x", 4) != 4 || write(sb, "abc\n", 4) != 4)
		wl_setup_fail("write pty B");
	wait_inq(sb, 4);
	wait_inq(mb, 4);
	/* pty A: wait until C set it up (its foreground group is G), then the bytes. */
	for (int i = 0; i < 5000; i++) {
		pid_t fg = -1;
		char path[64];
		snprintf(path, sizeof(path), "/dev/pts/%d", ia);
		int s = open(path, O_RDWR | O_NOCTTY);
		if (s >= 0) {
			fg = tcgetpgrp(s);
			close(s);
		}
		if (fg > 0 && fg != c)
			break;
		wl_sleep_us(1000);
	}
	if (write(ma, "hello\npart", 10) != 10)
		wl_setup_fail("write pty A's master");
	wait_inq(ma, 11);
	send_c('w');
	if (recv_c(msg, sizeof(msg)) != 'o')
		wl_setup_fail("C could not write on its terminal");
	wait_inq(ma, 17);
	if (inq(ma) != 17 || inq(mb) != 4 || inq(sb) != 4)
		wl_setup_fail("queued bytes not as set up");
	check_root();
	if (wl_has_failed())
		wl_setup_fail("state wrong before the checkpoint");
	wl_ready();
	while (!wl_stop()) {
		check_root();
		wl_sleep_us(10000);
	}
	check_root();
	/* pty A's master holds the echo and C's output, once each. */
	char buf[256];
	ssize_t n = read_avail(ma, buf, sizeof(buf));
	WL_CHECK(n == 17 && memcmp(buf, "hello\r\npartout1\r\n", 17) == 0, "pty A's master read %zd bytes, not the echo and output (%.*s)",
		 n, n > 0 ? (int)n : 0, buf);
	send_c('v');
	if (recv_c(msg, sizeof(msg)) != 'o' || strcmp(msg, "ok") != 0)
		wl_fail("C: %s", msg);
	if (write(ma, "ial\n", 4) != 4)
		wl_fail("write pty A's master");
	send_c('p');
	if (recv_c(msg, sizeof(msg)) != 'o' || strcmp(msg, "ok") != 0)
		wl_fail("C: %s", msg);
	/* pty B. */
	int excl = 0;
	ioctl(sb, TIOCGEXCL, &excl);
	WL_CHECK(excl == 1, "pty B is not exclusive");
	tcgetattr(sb, &t);
	WL_CHECK(t.c_lflag == tb_saved.c_lflag && t.c_iflag == tb_saved.c_iflag && t.c_oflag == tb_saved.c_oflag &&
		 memcmp(t.c_cc, tb_saved.c_cc, NCCS) == 0, "pty B's termios changed");
	n = read_avail(sb, buf, sizeof(buf));
	WL_CHECK(n == 4 && memcmp(buf, "\0\x7f\x15x", 4) == 0, "pty B's slave read %zd bytes, not the 4 written", n);
	n = read_avail(mb, buf, sizeof(buf));
	WL_CHECK(n == 4 && memcmp(buf, "abc\n", 4) == 0, "pty B's master read %zd bytes, not \"abc\\n\"", n);
	close(to_c[1]);  /* C kills G and exits */
	while (wait(NULL) > 0)
		;
	wl_finish();
}
