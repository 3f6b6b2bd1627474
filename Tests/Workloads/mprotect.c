/* mprotect: four 4-page areas with protections ---, r--, r-x and rw-,
 * each holding a known pattern (the r-x one also a tiny function returning
 * 42). /proc/self/maps must show the same protections after restore, the
 * contents must be intact, and the code must still run. */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096
#define LEN (4 * PAGE)
#define NA 4
static const int prot[NA] = { PROT_NONE, PROT_READ, PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE };
static const char *perms[NA] = { "---p", "r--p", "r-xp", "rw-p" };
static uint8_t *area[NA];
static const uint8_t code[] = { 0xb8, 42, 0, 0, 0, 0xc3 }; /* mov eax,42; ret */
static int tick;

static void check_maps(void)
{
	static char buf[1 << 16];
	ssize_t n = wl_read_file("/proc/self/maps", buf, sizeof(buf) - 1);
	buf[n < 0 ? 0 : n] = 0;
	for (int a = 0; a < NA; a++) {
		char key[64];
		int l = snprintf(key, sizeof(key), "%lx-%lx ", (unsigned long)area[a],
				 (unsigned long)(area[a] + LEN));
		char *line = strstr(buf, key);
		WL_CHECK(line && (line == buf || line[-1] == '\n'), "area %s at %p not one mapping in maps",
			 perms[a], (void *)area[a]);
		if (line)
			WL_CHECK(strncmp(line + l, perms[a], 4) == 0, "area at %p: maps says %.4s, want %s",
				 (void *)area[a], line + l, perms[a]);
	}
}

static void check_content(int a)
{
	size_t off = a == 2 ? PAGE : 0; /* first page of r-x holds code */
	WL_CHECK(wl_verify(area[a] + off, LEN - off, (uint64_t)a << 24) < 0, "area %s content changed", perms[a]);
}

static void step(void)
{
	for (int a = 1; a < NA; a++)
		check_content(a);
	WL_CHECK(memcmp(area[2], code, sizeof(code)) == 0, "code bytes changed");
	WL_CHECK(((int (*)(void))area[2])() == 42, "code in r-x area does not return 42");
	if (tick++ % 20 == 0)
		check_maps();
}

static void final(void)
{
	check_maps();
	if (mprotect(area[0], LEN, PROT_READ) != 0)
		wl_fail("mprotect PROT_NONE area: %s", strerror(errno));
	else
		check_content(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	/* One reservation, split into areas with unmapped holes between them
	 * so the kernel cannot merge neighbours. */
	uint8_t *base = mmap(NULL, (2 * NA + 1) * LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		wl_setup_fail("mmap");
	for (int a = 0; a < NA; a++) {
		area[a] = base + (2 * a + 1) * LEN;
		munmap(base + 2 * a * LEN, LEN);
		if (a == NA - 1)
			munmap(base + 2 * NA * LEN, LEN);
		if (mprotect(area[a], LEN, PROT_READ | PROT_WRITE) != 0)
			wl_setup_fail("mprotect rw");
		size_t off = a == 2 ? PAGE : 0;
		wl_fill(area[a] + off, LEN - off, (uint64_t)a << 24);
		if (a == 2) {
			memset(area[a], 0xcc, PAGE);
			memcpy(area[a], code, sizeof(code));
		}
	}
	for (int a = 0; a < NA; a++)
		if (mprotect(area[a], LEN, prot[a]) != 0)
			wl_setup_fail("mprotect");
	__builtin___clear_cache((char *)area[2], (char *)area[2] + PAGE);
	wl_ready();
	wl_loop(step, final, 5000);
}
