/* memfd_fds: memfds held by file descriptors keep their name, contents,
 * size, mode, seals, flags and offsets. Three memfds:
 *  - "wl_plain" (MFD_CLOEXEC, no sealing): 10000 bytes of pattern, mode
 *    0640, O_APPEND set, offset 1234; its seals must read F_SEAL_SEAL.
 *  - "wl_sealed" (MFD_ALLOW_SEALING): 5000 bytes, sealed WRITE|SHRINK|GROW;
 *    a write and an ftruncate must fail with EPERM.
 *  - "wl_mapped" (MFD_ALLOW_SEALING, unsealed): 4 pages mapped MAP_SHARED,
 *    held at fd m, dup'ed to d (one open file: one offset), reopened through
 *    /proc/self/fd as r (its own offset), and inherited by a child (the same
 *    open file as m). Every step writes a word through the mapping and
 *    reads it back with pread on m, and writes one with pwrite on r and
 *    reads it in the mapping: the fds and the mapping must stay one file.
 * The child moves the shared offset of m at stop; the parent must see it
 * (m and d), while r keeps its own. The mapping's pages and the fd's
 * contents are one object: the image stores them once. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PLAIN 10000
#define SEALED 5000
#define PAGES 4
static int plain, sealed, m, d, r;
static uint64_t *map;
static uint64_t n;
static pid_t kid;
static int go[2];

static uint8_t byte_at(size_t k, int salt) { return (uint8_t)(k * 7 + salt + (k >> 8)); }

static void check_name(int fd, const char *want)
{
	char link[64], target[256];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t len = readlink(link, target, sizeof target - 1);
	target[len < 0 ? 0 : len] = 0;
	WL_CHECK(strcmp(target, want) == 0, "fd %d is %s, want %s", fd, target, want);
}

static void check_bytes(int fd, size_t size, int salt, const char *what)
{
	static uint8_t buf[PLAIN];
	struct stat st;
	WL_CHECK(fstat(fd, &st) == 0 && (size_t)st.st_size == size, "%s: size %ld, want %zu", what, (long)st.st_size, size);
	ssize_t got = pread(fd, buf, size, 0);
	WL_CHECK(got == (ssize_t)size, "%s: pread %zd of %zu bytes", what, got, size);
	for (ssize_t i = 0; i < got; i++)
		if (buf[i] != byte_at(i, salt)) {
			wl_fail("%s: byte %zd is %#x, want %#x", what, i, buf[i], byte_at(i, salt));
			break;
		}
}

static void step(void)
{
	n++;
	size_t w = n % (PAGES * 4096 / 8);
	map[w] = n;
	uint64_t v = 0;
	WL_CHECK(pread(m, &v, 8, w * 8) == 8 && v == n, "word %zu: the mapping wrote %lu, fd %d reads %lu", w, (unsigned long)n, m,
		 (unsigned long)v);
	size_t w2 = (w + 17) % (PAGES * 4096 / 8);
	v = n * 3;
	WL_CHECK(pwrite(r, &v, 8, w2 * 8) == 8, "pwrite on fd %d", r);
	WL_CHECK(map[w2] == n * 3, "word %zu: fd %d wrote %lu, the mapping shows %lu", w2, r, (unsigned long)(n * 3),
		 (unsigned long)map[w2]);
}

static void final(void)
{
	step();
	check_name(plain, "/memfd:wl_plain (deleted)");
	check_name(sealed, "/memfd:wl_sealed (deleted)");
	check_name(m, "/memfd:wl_mapped (deleted)");
	check_bytes(plain, PLAIN, 1, "wl_plain");
	check_bytes(sealed, SEALED, 2, "wl_sealed");
	WL_CHECK(lseek(plain, 0, SEEK_CUR) == 1234, "wl_plain offset %ld, want 1234", (long)lseek(plain, 0, SEEK_CUR));
	int fl = fcntl(plain, F_GETFL);
	WL_CHECK((fl & O_APPEND) && (fl & O_ACCMODE) == O_RDWR, "wl_plain flags %#x, want O_RDWR|O_APPEND", fl);
	WL_CHECK(fcntl(plain, F_GETFD) == FD_CLOEXEC, "wl_plain fd flags %d, want FD_CLOEXEC", fcntl(plain, F_GETFD));
	WL_CHECK(fcntl(m, F_GETFD) == 0, "wl_mapped fd flags %d, want 0", fcntl(m, F_GETFD));
	struct stat st;
	WL_CHECK(fstat(plain, &st) == 0 && (st.st_mode & 07777) == 0640, "wl_plain mode %o, want 640", st.st_mode & 07777);
	WL_CHECK(fcntl(plain, F_GET_SEALS) == F_SEAL_SEAL, "wl_plain seals %#x, want F_SEAL_SEAL", fcntl(plain, F_GET_SEALS));
	int want = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;
	WL_CHECK(fcntl(sealed, F_GET_SEALS) == want, "wl_sealed seals %#x, want %#x", fcntl(sealed, F_GET_SEALS), want);
	WL_CHECK(pwrite(sealed, "x", 1, 0) < 0 && errno == EPERM, "wl_sealed took a write");
	WL_CHECK(ftruncate(sealed, 1) < 0 && errno == EPERM, "wl_sealed took an ftruncate");
	WL_CHECK(fcntl(m, F_GET_SEALS) == 0, "wl_mapped seals %#x, want none", fcntl(m, F_GET_SEALS));
	/* m and d: one open file; r: its own. The child moves the shared offset to 777. */
	lseek(r, 55, SEEK_SET);
	WL_CHECK(write(go[1], "g", 1) == 1, "wake the child");
	int status = 0;
	WL_CHECK(waitpid(kid, &status, 0) == kid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ended with 0x%x", status);
	WL_CHECK(lseek(m, 0, SEEK_CUR) == 777, "fd m offset %ld after the child's lseek, want 777 (shared open file)",
		 (long)lseek(m, 0, SEEK_CUR));
	WL_CHECK(lseek(d, 0, SEEK_CUR) == 777, "fd d offset %ld, want 777 (dup of m)", (long)lseek(d, 0, SEEK_CUR));
	WL_CHECK(lseek(r, 0, SEEK_CUR) == 55, "fd r offset %ld, want 55 (its own open file)", (long)lseek(r, 0, SEEK_CUR));
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	static uint8_t buf[PLAIN];
	plain = memfd_create("wl_plain", MFD_CLOEXEC);
	sealed = memfd_create("wl_sealed", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	m = memfd_create("wl_mapped", MFD_ALLOW_SEALING);
	if (plain < 0 || sealed < 0 || m < 0)
		wl_setup_fail("memfd_create");
	for (size_t i = 0; i < PLAIN; i++)
		buf[i] = byte_at(i, 1);
	if (write(plain, buf, PLAIN) != PLAIN || fchmod(plain, 0640) || fcntl(plain, F_SETFL, O_APPEND) ||
	    lseek(plain, 1234, SEEK_SET) != 1234)
		wl_setup_fail("wl_plain");
	for (size_t i = 0; i < SEALED; i++)
		buf[i] = byte_at(i, 2);
	if (write(sealed, buf, SEALED) != SEALED || fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW))
		wl_setup_fail("wl_sealed");
	if (ftruncate(m, PAGES * 4096))
		wl_setup_fail("ftruncate wl_mapped");
	map = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	if (map == MAP_FAILED)
		wl_setup_fail("mmap wl_mapped");
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", m);
	d = dup(m);
	r = open(path, O_RDWR | O_CLOEXEC);
	if (d < 0 || r < 0 || pipe(go))
		wl_setup_fail("dup, reopen, pipe");
	kid = fork();
	if (kid < 0)
		wl_setup_fail("fork");
	if (kid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(lseek(m, 777, SEEK_SET) == 777 ? 0 : 4);
	}
	close(go[0]);
	wl_ready();
	wl_loop(step, final, 1000);
}
