#ifndef CFERRYFILE_H
#define CFERRYFILE_H
#include <stdint.h>

/* Reserves the blocks of [offset, offset + length) of the regular file fd
 * without changing its size (Linux fallocate, FALLOC_FL_KEEP_SIZE).
 * 0, or -errno; -EOPNOTSUPP where the OS has no such call (FreeBSD's
 * posix_fallocate would change the size). */
int ferry_preallocate(int fd, int64_t offset, int64_t length);

#endif
