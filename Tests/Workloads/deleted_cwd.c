/* deleted_cwd: a process and its child keep as working directory
 * CTLDIR/gone (mode 0710), removed while the parent is in it; the child,
 * forked after, inherits it (zdtm cwd01).
 * Each checks that /proc/self/cwd reads "CTLDIR/gone (deleted)", that "."
 * has no links left and its mode, and that CTLDIR/gone does not exist; the
 * child reports through its exit status. */
#include "wl.h"
#include <sys/stat.h>

static char gone[PATH_MAX], want[PATH_MAX + 16];
static pid_t kid;

static void check(const char *who)
{
	char link[PATH_MAX + 16] = "";
	struct stat st;
	ssize_t n = readlink("/proc/self/cwd", link, sizeof link - 1);
	WL_CHECK(n > 0 && strcmp(link, want) == 0, "%s: cwd is \"%s\", want \"%s\"", who, link, want);
	WL_CHECK(stat(".", &st) == 0 && st.st_nlink == 0 && (st.st_mode & 07777) == 0710,
		 "%s: the cwd has %lu links and mode %o (want 0 and 710)", who, (unsigned long)st.st_nlink, st.st_mode & 07777);
	WL_CHECK(access(gone, F_OK) != 0 && errno == ENOENT, "%s: %s exists again", who, gone);
}

static void step(void)
{
	check("parent");
}

static void final(void)
{
	int st = -1;
	WL_CHECK(wl_wait_child(kid, 5000000000ull, &st) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "the child's checks failed (status %d)", st);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	wl_path(gone, "gone");
	snprintf(want, sizeof want, "%s (deleted)", gone);
	umask(0);
	if (mkdir(gone, 0710) || chdir(gone) || rmdir(gone))
		wl_setup_fail("mkdir/chdir/rmdir CTLDIR/gone");
	/* The child inherits the removed directory. */
	kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0) {
		while (!wl_stop() && !wl_has_failed()) {
			check("child");
			wl_sleep_us(1000);
		}
		check("child");
		_exit(wl_has_failed() ? 1 : 0);
	}
	wl_ready();
	wl_loop(step, final, 1000);
}
