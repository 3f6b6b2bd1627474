/* cgroup_member: cgroup membership survives the restore. In a v1
 * hierarchy (the freezer one, or with "named" a hierarchy name=ferry_wl the
 * workload mounts at CTLDIR/cg) the process puts itself into
 * ferry_wl_PID/p, its child into ferry_wl_PID/p/c (nested below its
 * parent's) and its second thread into ferry_wl_PID/t (v1 places threads
 * one by one); where the cgroup v2 hierarchy is mounted, the process (and
 * so its child) goes into ferry_wl_PID there too. The directories made are
 * listed deepest first in CTLDIR/cgroup_dirs (a test may remove them, or
 * unmount the named hierarchy, between checkpoint and restore).
 * At stop, /proc/self/cgroup, the child's /proc/PID/cgroup and the
 * thread's /proc/self/task/TID/cgroup must read as they did at ready; then
 * everything moves back and the directories (and the mount) go. */
#include "wl.h"
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define ROOT_MAX 1024
static char v1root[ROOT_MAX], v2root[ROOT_MAX], base1[ROOT_MAX + 32], base2[ROOT_MAX + 32];
static char orig1[ROOT_MAX], orig2[ROOT_MAX];
static char dirs[8][ROOT_MAX + 64];
static int ndirs;
static volatile int thread_tid, thread_ready, done;

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = wl_write_all(fd, s, strlen(s));
	close(fd);
	return rc;
}

static int read_text(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = 0;
	return 0;
}

/* Moves task `id` (0: the caller) into DIR/FILE, making DIR first. */
static void join(const char *dir, const char *file, int id, int record)
{
	char p[PATH_MAX + 32], v[32];
	if (mkdir(dir, 0755) == 0 && record)
		snprintf(dirs[ndirs++], sizeof(dirs[0]), "%s", dir);
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	snprintf(v, sizeof(v), "%d", id);
	if (write_str(p, v) != 0)
		wl_setup_fail(p);
}

/* The mount point of the first cgroup mount of `type` whose options hold `opt`. */
static int find_mount(const char *type, const char *opt, char *out)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char src[256], point[ROOT_MAX], fstype[64], opts[512];
	int found = 0;
	if (!f)
		return 0;
	while (!found && fscanf(f, "%255s %1023s %63s %511s %*d %*d", src, point, fstype, opts) == 4) {
		if (strcmp(fstype, type))
			continue;
		if (!opt) {
			found = 1;
		} else {
			for (char *t = strtok(opts, ","); t && !found; t = strtok(NULL, ","))
				found = !strcmp(t, opt);
		}
		if (found)
			snprintf(out, ROOT_MAX, "%s", point);
	}
	fclose(f);
	return found;
}

/* The path of this process's cgroup in the hierarchy whose controllers are `key` ("" for v2). */
static void own_path(const char *key, char *out)
{
	char text[4096];
	snprintf(out, ROOT_MAX, "/");
	if (read_text("/proc/self/cgroup", text, sizeof(text)) != 0)
		return;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
		if (!p)
			continue;
		*p = 0;
		if (!strcmp(c + 1, key)) {
			snprintf(out, ROOT_MAX, "%s", p + 1);
			return;
		}
	}
}

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = (int)syscall(SYS_gettid);
	char d[PATH_MAX + 8];
	snprintf(d, sizeof(d), "%s/t", base1);
	join(d, "tasks", thread_tid, 1);
	__atomic_store_n(&thread_ready, 1, __ATOMIC_SEQ_CST);
	while (!done)
		usleep(20000);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int named = argc > 2 && !strcmp(argv[2], "named");
	const char *key;
	char mnt[PATH_MAX];
	if (named) {
		wl_path(mnt, "cg");
		if (mkdir(mnt, 0755) != 0)
			wl_setup_fail("mkdir CTLDIR/cg");
		if (mount("none", mnt, "cgroup", 0, "none,name=ferry_wl") != 0)
			wl_setup_fail("mount -t cgroup -o none,name=ferry_wl");
		if (strlen(mnt) >= sizeof(v1root))
			wl_setup_fail("CTLDIR too long");
		memcpy(v1root, mnt, strlen(mnt) + 1);
		key = "name=ferry_wl";
	} else {
		if (!find_mount("cgroup", "freezer", v1root))
			wl_setup_fail("no freezer hierarchy mounted");
		key = "freezer";
	}
	int has_v2 = find_mount("cgroup2", NULL, v2root);
	own_path(key, orig1);
	own_path("", orig2);
	snprintf(base1, sizeof(base1), "%s/ferry_wl_%d", v1root, (int)getpid());
	char d[PATH_MAX + 16];
	if (mkdir(base1, 0755) != 0)
		wl_setup_fail("mkdir of the v1 cgroup");
	join(strcat(strcpy(d, base1), "/p"), "cgroup.procs", 0, 1);
	if (has_v2) {
		snprintf(base2, sizeof(base2), "%s/ferry_wl_%d", v2root, (int)getpid());
		join(base2, "cgroup.procs", 0, 1);
	}
	pthread_t th;
	if (pthread_create(&th, NULL, thread_main, NULL) != 0)
		wl_setup_fail("pthread_create");
	while (!__atomic_load_n(&thread_ready, __ATOMIC_SEQ_CST))
		usleep(1000);
	int ready[2];
	if (pipe(ready) != 0)
		wl_setup_fail("pipe");
	pid_t child = fork();
	if (child < 0)
		wl_setup_fail("fork");
	if (child == 0) {
		join(strcat(strcpy(d, base1), "/p/c"), "cgroup.procs", 0, 0);
		(void)!write(ready[1], "x", 1);
		for (;;)
			pause();
	}
	char x;
	if (read(ready[0], &x, 1) != 1)
		wl_setup_fail("child setup");
	close(ready[0]);
	close(ready[1]);
	/* c is made by the child: listed before p (deepest first). */
	snprintf(dirs[ndirs++], sizeof(dirs[0]), "%s/p/c", base1);
	char list[8 * (ROOT_MAX + 65) + 8] = "";
	for (int i = ndirs - 1; i >= 0; i--) {
		if (strstr(dirs[i], "/p/c") || strstr(dirs[i], "/t"))
			strcat(strcat(list, dirs[i]), "\n");
	}
	for (int i = ndirs - 1; i >= 0; i--) {
		if (!strstr(dirs[i], "/p/c") && !strstr(dirs[i], "/t"))
			strcat(strcat(list, dirs[i]), "\n");
	}
	strcat(strcat(list, base1), "\n");
	if (wl_write_atomic("cgroup_dirs", list) != 0)
		wl_setup_fail("write cgroup_dirs");

	char self_want[4096], child_want[4096], thread_want[4096], path[2 * ROOT_MAX + 32];
	char child_file[64], thread_file[64];
	snprintf(child_file, sizeof(child_file), "/proc/%d/cgroup", (int)child);
	snprintf(thread_file, sizeof(thread_file), "/proc/self/task/%d/cgroup", thread_tid);
	if (read_text("/proc/self/cgroup", self_want, sizeof(self_want)) || read_text(child_file, child_want, sizeof(child_want)) ||
	    read_text(thread_file, thread_want, sizeof(thread_want)))
		wl_setup_fail("read cgroup files");
	if (!strcmp(self_want, child_want) || !strcmp(self_want, thread_want))
		wl_setup_fail("the child or thread did not move");
	wl_ready();
	while (!wl_stop())
		usleep(50000);

	char got[4096];
	if (read_text("/proc/self/cgroup", got, sizeof(got)) || strcmp(got, self_want))
		wl_fail("process cgroups changed: was [%s] now [%s]", self_want, got);
	else if (read_text(child_file, got, sizeof(got)) || strcmp(got, child_want))
		wl_fail("child cgroups changed: was [%s] now [%s]", child_want, got);
	else if (read_text(thread_file, got, sizeof(got)) || strcmp(got, thread_want))
		wl_fail("thread cgroups changed: was [%s] now [%s]", thread_want, got);

	/* Clean up: the child goes, everyone moves back, the directories go. */
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	done = 1;
	pthread_join(th, NULL);
	snprintf(path, sizeof(path), "%s%s/cgroup.procs", v1root, strcmp(orig1, "/") ? orig1 : "");
	write_str(path, "0");
	if (has_v2) {
		snprintf(path, sizeof(path), "%s%s/cgroup.procs", v2root, strcmp(orig2, "/") ? orig2 : "");
		write_str(path, "0");
	}
	for (int i = 0; i < 50; i++) {
		char all[sizeof(list)];
		strcpy(all, list);
		int left = 0;
		for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
			if (rmdir(line) != 0 && errno != ENOENT)
				left = 1;
		if (!left)
			break;
		usleep(20000);
	}
	if (named)
		umount(v1root);
	wl_finish();
}
