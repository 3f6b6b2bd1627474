/* file_lease: leases (F_SETLEASE) on open files come back. In CTLDIR:
 * lease_rd.dat opened O_RDONLY with a read lease (and a dup of that fd),
 * lease_wr.dat opened O_RDWR with a write lease, plain.dat opened without
 * a lease. Each step checks F_GETLEASE on every fd; at stop both leases
 * are still the process's own: it can release them (F_UNLCK). */
#include "wl.h"
#include <signal.h>

static int rd, rd_dup, wr, plain;

static void lease_is(int fd, const char *name, int want)
{
	int got = fcntl(fd, F_GETLEASE);
	WL_CHECK(got == want, "%s: F_GETLEASE %d (errno %d), want %d", name, got, got < 0 ? errno : 0, want);
}

static void step(void)
{
	lease_is(rd, "read-lease fd", F_RDLCK);
	lease_is(rd_dup, "dup of the read-lease fd", F_RDLCK);
	lease_is(wr, "write-lease fd", F_WRLCK);
	lease_is(plain, "fd without a lease", F_UNLCK);
}

static void final(void)
{
	step();
	WL_CHECK(fcntl(wr, F_SETLEASE, F_UNLCK) == 0 && fcntl(rd, F_SETLEASE, F_UNLCK) == 0,
		 "leases do not release (errno %d)", errno);
	lease_is(rd, "released read-lease fd", F_UNLCK);
	lease_is(wr, "released write-lease fd", F_UNLCK);
}

static int file(const char *name, int flags)
{
	char p[PATH_MAX];
	wl_path(p, name);
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || write(fd, name, strlen(name)) < 0)
		wl_setup_fail(name);
	close(fd);
	return open(p, flags);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	/* A lease break would signal SIGIO: nothing here breaks one, but it must not kill. */
	signal(SIGIO, SIG_IGN);
	rd = file("lease_rd.dat", O_RDONLY);
	wr = file("lease_wr.dat", O_RDWR);
	plain = file("plain.dat", O_RDONLY);
	if (rd < 0 || wr < 0 || plain < 0)
		wl_setup_fail("open");
	if (fcntl(rd, F_SETLEASE, F_RDLCK) || fcntl(wr, F_SETLEASE, F_WRLCK))
		wl_setup_fail("F_SETLEASE");
	rd_dup = dup(rd);
	wl_ready();
	wl_loop(step, final, 1000);
}
