/* append_log: CTLDIR/append.log opened O_APPEND; numbered 9-byte lines are
 * written continuously, and after each write the file size and offset must
 * equal lines*9. At stop one more line is written after lseek(fd, 0) (it must
 * still append: O_APPEND survived), then the file must hold every number
 * exactly once, in order. */
#include "wl.h"
#include <sys/stat.h>

#define LINE 9
static int fd;
static unsigned long lines;
static char path[PATH_MAX];

static char *fmt_line(char *buf, unsigned long i)
{
	snprintf(buf, 32, "%08lu\n", i % 100000000ul);
	return buf;
}

static void append(void)
{
	char buf[32];
	fmt_line(buf, lines);
	if (wl_write_all(fd, buf, LINE) != 0) {
		wl_fail("write line %lu: %s", lines, strerror(errno));
		return;
	}
	lines++;
	struct stat st;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	WL_CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)(lines * LINE),
		 "after %lu lines the file has %ld bytes", lines, (long)st.st_size);
	WL_CHECK(pos == (off_t)(lines * LINE), "after %lu lines the offset is %ld", lines, (long)pos);
}

static void step(void)
{
	for (int i = 0; i < 4 && !wl_has_failed(); i++)
		append();
}

static void final(void)
{
	int fl = fcntl(fd, F_GETFL);
	WL_CHECK(fl >= 0 && (fl & O_APPEND), "O_APPEND lost (flags %#x)", fl);
	lseek(fd, 0, SEEK_SET);
	append();
	close(fd);
	size_t cap = lines * LINE + 1;
	char *buf = malloc(cap), want[32];
	ssize_t n = buf ? wl_read_file(path, buf, cap) : -1;
	WL_CHECK(n == (ssize_t)(lines * LINE), "file has %zd bytes, want %lu", n, lines * LINE);
	for (unsigned long i = 0; n > 0 && i < lines; i++) {
		if (memcmp(buf + i * LINE, fmt_line(want, i), LINE) != 0) {
			wl_fail("line %lu is \"%.8s\"", i, buf + i * LINE);
			break;
		}
	}
	free(buf);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	fd = open(wl_path(path, "append.log"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0)
		wl_setup_fail("open log");
	step();
	wl_ready();
	wl_loop(step, final, 1000);
}
