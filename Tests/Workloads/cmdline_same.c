/* cmdline_same: /proc/self/cmdline, /proc/self/environ and the
 * /proc/self/exe link must read the same after restore as at start, and
 * cmdline must match the argv strings in memory. */
#include "wl.h"

#define CAP 65536
static char cmd0[CAP], env0[CAP], exe0[PATH_MAX], buf[CAP];
static ssize_t cmdlen0, envlen0;
static int g_argc;
static char **g_argv;

static void compare(const char *path, const char *want, ssize_t wantlen)
{
	ssize_t n = wl_read_file(path, buf, CAP);
	WL_CHECK(n == wantlen && memcmp(buf, want, (size_t)n) == 0,
		 "%s changed (len %zd -> %zd)", path, wantlen, n);
}

static void step(void)
{
	char exe[PATH_MAX];
	compare("/proc/self/cmdline", cmd0, cmdlen0);
	compare("/proc/self/environ", env0, envlen0);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n < 0 ? 0 : n] = 0;
	WL_CHECK(strcmp(exe, exe0) == 0, "exe link changed %s -> %s", exe0, exe);
}

static void final(void)
{
	/* argv strings in memory, joined with NULs, are what cmdline shows. */
	size_t off = 0;
	for (int i = 0; i < g_argc; i++) {
		size_t l = strlen(g_argv[i]) + 1;
		WL_CHECK(off + l <= (size_t)cmdlen0 && memcmp(cmd0 + off, g_argv[i], l) == 0,
			 "argv[%d] differs from cmdline", i);
		off += l;
	}
	WL_CHECK(off == (size_t)cmdlen0, "cmdline has %zd bytes, argv %zu", cmdlen0, off);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	g_argc = argc;
	g_argv = argv;
	cmdlen0 = wl_read_file("/proc/self/cmdline", cmd0, CAP);
	envlen0 = wl_read_file("/proc/self/environ", env0, CAP);
	ssize_t n = readlink("/proc/self/exe", exe0, sizeof(exe0) - 1);
	if (cmdlen0 <= 0 || envlen0 < 0 || n <= 0)
		wl_setup_fail("read /proc/self");
	exe0[n] = 0;
	wl_ready();
	wl_loop(step, final, 20000);
}
