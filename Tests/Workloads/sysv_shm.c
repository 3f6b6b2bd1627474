/* sysv_shm: a parent and its child share two System V shared memory
 * segments. A: a key of its own, 5000 bytes (not a page multiple), mode
 * 0640, attached by the parent read-write (the child inherits that attach)
 * and by the child a second time with SHM_RDONLY. B: IPC_PRIVATE, three
 * pages, mode 0600, attached by the parent before the fork and removed
 * (IPC_RMID) at once, so it lives on only through the attaches; the child
 * mprotects its middle page read-only (one attach, three mappings).
 * Each side counts up its own word in A every millisecond and sees the
 * other's advance — the child reads the parent's through its read-only
 * attach — (at least every 5 s) and never go back. At stop the parent
 * raises a flag; the child then checks, after a restore as before it: the
 * patterns written into A and B before the checkpoint, that its SHM_RDONLY
 * attach cannot be made writable (EACCES), that /proc/self/maps shows each
 * attach at its address with its shmid and protection, and what
 * shmctl(IPC_STAT) tells of both ids (key, mode, size, SHM_DEST, attach
 * counts). The parent checks A too, then removes it. */
#include "wl.h"
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define A_SIZE 5000
#define B_SIZE (3 * 4096)
#define PATTERN_AT 512

struct page {
	volatile uint64_t seq[2]; /* 0: parent, 1: child */
	volatile uint64_t stop;
	char why[256];             /* the child's failure, read by the parent */
};

static struct page *pg;        /* A, read-write */
static const struct page *ro;  /* A, the child's SHM_RDONLY attach */
static char *b;                /* B */
static int id_a, id_b;
static key_t key_a;

struct side {
	int me;
	uint64_t seen, seen_at;
};

/* One side's step: count up, check the other side through `view`.
 * Returns 0 when the other side has not moved for more than 5 s. */
static int step(struct side *s, const struct page *view, char *why, size_t cap)
{
	pg->seq[s->me]++;
	uint64_t other = view->seq[1 - s->me], now = wl_now_ns(CLOCK_MONOTONIC);
	if (other < s->seen) {
		snprintf(why, cap, "%s's counter went back from %lu to %lu", s->me ? "parent" : "child",
			 (unsigned long)s->seen, (unsigned long)other);
		return 0;
	} else if (other > s->seen) {
		s->seen = other;
		s->seen_at = now;
	} else if (now - s->seen_at > 5000000000ull) {
		snprintf(why, cap, "%s's counter stopped at %lu: the segment is no longer shared",
			 s->me ? "parent" : "child", (unsigned long)other);
		return 0;
	}
	return 1;
}

/* The /proc/self/maps line of the mapping at `addr`: its protection and inode. */
static int maps_entry(void *addr, char prot[5], unsigned long *inode)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	char line[512];
	int found = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, off, ino;
		char p[5], dev[16];
		if (sscanf(line, "%lx-%lx %4s %lx %15s %lu", &start, &end, p, &off, dev, &ino) == 6 &&
		    start == (unsigned long)addr) {
			memcpy(prot, p, 5);
			*inode = ino;
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Checks one segment's IPC_STAT; writes the first difference into why. */
static int check_stat(int id, key_t key, unsigned mode, size_t size, int dest, unsigned long nattch, char *why, size_t cap)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) != 0) {
		snprintf(why, cap, "shmctl(%d, IPC_STAT): %s", id, strerror(errno));
		return 0;
	}
	if (ds.shm_perm.__key != key || (ds.shm_perm.mode & 0777) != mode || ds.shm_segsz != size ||
	    !!(ds.shm_perm.mode & SHM_DEST) != dest || ds.shm_nattch != nattch) {
		snprintf(why, cap, "shmid %d: key 0x%x mode 0%o size %zu nattch %lu, not key 0x%x mode 0%o%s size %zu nattch %lu",
			 id, ds.shm_perm.__key, ds.shm_perm.mode, (size_t)ds.shm_segsz, (unsigned long)ds.shm_nattch,
			 key, mode, dest ? " (SHM_DEST)" : "", size, nattch);
		return 0;
	}
	return 1;
}

static int check_map(void *addr, const char *want_prot, int id, char *why, size_t cap)
{
	char prot[5];
	unsigned long ino;
	if (maps_entry(addr, prot, &ino) != 0) {
		snprintf(why, cap, "no mapping starts at %p", addr);
		return 0;
	}
	if (strcmp(prot, want_prot) != 0 || ino != (unsigned long)id) {
		snprintf(why, cap, "mapping at %p is %s of inode %lu, not %s of shmid %d", addr, prot, ino, want_prot, id);
		return 0;
	}
	return 1;
}

static int child_checks(char *why, size_t cap)
{
	long bad = wl_verify((const char *)ro + PATTERN_AT, A_SIZE - PATTERN_AT, 0xa);
	if (bad >= 0) {
		snprintf(why, cap, "segment A differs at byte %ld", bad + PATTERN_AT);
		return 0;
	}
	bad = wl_verify(b, B_SIZE, 0xb);
	if (bad >= 0) {
		snprintf(why, cap, "segment B differs at byte %ld", bad);
		return 0;
	}
	if (mprotect((void *)ro, 4096, PROT_READ | PROT_WRITE) == 0 || errno != EACCES) {
		snprintf(why, cap, "the SHM_RDONLY attach could be made writable (or: %s)", strerror(errno));
		return 0;
	}
	return check_map(pg, "rw-s", id_a, why, cap) && check_map((void *)ro, "r--s", id_a, why, cap) &&
	       check_map(b, "rw-s", id_b, why, cap) && check_map(b + 4096, "r--s", id_b, why, cap) &&
	       check_map(b + 8192, "rw-s", id_b, why, cap) &&
	       /* A: the parent's attach, the child's copy of it and its read-only one. */
	       check_stat(id_a, key_a, 0640, A_SIZE, 0, 3, why, cap) &&
	       /* B: the parent's attach and the child's, in three mappings. */
	       check_stat(id_b, IPC_PRIVATE, 0600, B_SIZE, 1, 4, why, cap);
}

static __attribute__((noreturn)) void child(void)
{
	ro = shmat(id_a, NULL, SHM_RDONLY);
	if (ro == (void *)-1) {
		snprintf(pg->why, sizeof(pg->why), "child: shmat(SHM_RDONLY): %s", strerror(errno));
		_exit(1);
	}
	if (mprotect(b + 4096, 4096, PROT_READ) != 0) {
		snprintf(pg->why, sizeof(pg->why), "child: mprotect of B: %s", strerror(errno));
		_exit(1);
	}
	struct side s = { 1, 0, wl_now_ns(CLOCK_MONOTONIC) };
	char why[256] = "";
	while (!ro->stop) {
		if (!step(&s, ro, why, sizeof(why)))
			break;
		if (getppid() == 1)
			_exit(2);
		wl_sleep_us(1000);
	}
	if (!why[0])
		child_checks(why, sizeof(why));
	if (why[0]) {
		snprintf(pg->why, sizeof(pg->why), "child: %s", why);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	key_a = (key_t)(0x5f000000 | (getpid() & 0xffffff));
	id_a = shmget(key_a, A_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	id_b = shmget(IPC_PRIVATE, B_SIZE, IPC_CREAT | 0600);
	if (id_a < 0 || id_b < 0)
		wl_setup_fail("shmget");
	pg = shmat(id_a, NULL, 0);
	b = shmat(id_b, NULL, 0);
	if (pg == (void *)-1 || b == (void *)-1)
		wl_setup_fail("shmat");
	/* B lives on through the attaches only. */
	shmctl(id_b, IPC_RMID, NULL);
	wl_fill((char *)pg + PATTERN_AT, A_SIZE - PATTERN_AT, 0xa);
	wl_fill(b, B_SIZE, 0xb);
	pid_t kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0)
		child();
	struct side s = { 0, 0, wl_now_ns(CLOCK_MONOTONIC) };
	while (pg->seq[1] == 0 && !pg->why[0])
		wl_sleep_us(1000);
	wl_ready();
	char why[256] = "";
	while (!wl_stop()) {
		if (!step(&s, pg, why, sizeof(why))) {
			wl_fail("%s", why);
			break;
		}
		wl_sleep_us(1000);
	}
	if (!wl_has_failed() && !check_stat(id_a, key_a, 0640, A_SIZE, 0, 3, why, sizeof(why)))
		wl_fail("parent: %s", why);
	pg->stop = 1;
	int status = 0;
	pid_t r = wl_wait_child(kid, 2000000000ull, &status);
	if (r == 0) {
		wl_fail("the child never saw the stop flag: the segment is no longer shared");
	} else if (!(r == kid && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		wl_fail("child ended with status 0x%x: %s", status, pg->why);
	}
	shmdt(pg);
	shmctl(id_a, IPC_RMID, NULL);
	wl_finish();
}
