/* File calls the Swift Glibc module does not expose (they need _GNU_SOURCE). */
#define _GNU_SOURCE
#include "CFerryFile.h"
#include <errno.h>
#include <fcntl.h>
#if defined(__linux__)
#include <linux/falloc.h>
#endif

int
ferry_preallocate(int fd, int64_t offset, int64_t length)
{
#if defined(__linux__)
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) == 0)
		return 0;
	return -errno;
#else
	(void)fd;
	(void)offset;
	(void)length;
	return -EOPNOTSUPP;
#endif
}
