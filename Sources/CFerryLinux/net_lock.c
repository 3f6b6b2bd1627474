/* The network lock of an established connection during a freeze
 * (FerryLinux/NetworkLock.swift): a classic BPF filter that keeps no byte. */
#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <errno.h>
#include <linux/filter.h>
#include <sys/socket.h>

int
ferry_socket_drop_all(int fd)
{
	struct sock_filter drop[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { .len = 1, .filter = drop };
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}
