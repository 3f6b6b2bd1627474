/* shared_file: a parent and its child write numbered records into one log
 * opened once before the fork (not O_APPEND): they share one offset, so
 * records never overwrite each other. After restore the two fds must still
 * be one open file; if they came back as two opens, each would write at its
 * own offset and clobber the other's records.
 * Records are "P%010lu\n" (parent) and "C%010lu\n" (child). At stop the
 * child exits (1 if a write failed), the parent collects it, then checks the
 * file holds whole records only, the parent's 0..n-1 in order and the
 * child's 0..m-1 in order, nothing missing. */
#include "wl.h"
#include <sys/stat.h>
#include <sys/wait.h>

#define REC 12
static int fd;
static unsigned long mine;
static char tag = 'P';
static char path[PATH_MAX];

static void record(void)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%c%010lu\n", tag, mine);
	if (wl_write_all(fd, buf, REC) != 0) {
		wl_fail("write record %c%lu: %s", tag, mine, strerror(errno));
		return;
	}
	mine++;
}

static int check_sequence(const char *buf, size_t n, char who, unsigned long *count)
{
	unsigned long want = 0;
	for (size_t off = 0; off + REC <= n; off += REC) {
		if (buf[off] != who)
			continue;
		char num[11];
		memcpy(num, buf + off + 1, 10);
		num[10] = 0;
		if (strtoul(num, NULL, 10) != want || buf[off + REC - 1] != '\n') {
			wl_fail("record at %zu is \"%.11s\", want %c%010lu", off, buf + off, who, want);
			return -1;
		}
		want++;
	}
	*count = want;
	return 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	fd = open(wl_path(path, "shared.log"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_setup_fail("open log");
	pid_t kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0) {
		tag = 'C';
		while (!wl_stop() && !wl_has_failed()) {
			record();
			wl_sleep_us(700);
		}
		_exit(wl_has_failed() ? 1 : 0);
	}
	record();
	wl_ready();
	while (!wl_stop() && !wl_has_failed()) {
		record();
		wl_sleep_us(1000);
	}
	int st = 0;
	if (waitpid(kid, &st, 0) != kid)
		wl_fail("waitpid: %s", strerror(errno));
	else
		WL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with status %#x", st);
	struct stat sb;
	WL_CHECK(fstat(fd, &sb) == 0 && lseek(fd, 0, SEEK_CUR) == sb.st_size,
		 "the shared offset %ld is not at the end %ld", (long)lseek(fd, 0, SEEK_CUR), (long)sb.st_size);
	close(fd);
	size_t cap = (size_t)sb.st_size + 1;
	char *buf = malloc(cap);
	ssize_t n = buf ? wl_read_file(path, buf, cap) : -1;
	WL_CHECK(n >= 0 && n % REC == 0, "log size %zd is not whole records", n);
	unsigned long parent = 0, child = 0;
	if (n > 0 && !wl_has_failed() && check_sequence(buf, (size_t)n, 'P', &parent) == 0 &&
	    check_sequence(buf, (size_t)n, 'C', &child) == 0) {
		WL_CHECK(parent == mine, "the log has %lu parent records, the parent wrote %lu", parent, mine);
		WL_CHECK(child > 0 && (parent + child) * REC == (unsigned long)n, "%lu+%lu records in %zd bytes", parent, child, n);
	}
	free(buf);
	wl_finish();
}
