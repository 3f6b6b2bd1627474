/* net_server: a TCP server in a container's network namespace, reached
 * from outside through the container's veth. Args: PORT.
 *
 * Listens on the wildcard address (IPv6 socket, dual-stack) at PORT; each
 * connection gets "pong N\n" (N counts the connections served, so a client
 * sees the count go on across a checkpoint) and is closed.
 * At start it records its network as getifaddrs shows it: every
 * interface's name, flags (up), MAC (AF_PACKET) and IPv4/IPv6 addresses
 * with their netmasks, IPv6 link-local ones included (the kernel makes them
 * again from the MAC). At stop the same must be there again, else FAIL.
 * Writes its pid (inside its pid namespace) to CTLDIR/ready. */
#include "wl.h"
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sys/socket.h>

static char net0[8192];

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One sorted line per (interface, address) pair. */
static void describe(char *out, size_t cap)
{
	struct ifaddrs *ifa, *i;
	char *lines[256];
	int n = 0;
	out[0] = 0;
	if (getifaddrs(&ifa) != 0) {
		snprintf(out, cap, "getifaddrs: %s", strerror(errno));
		return;
	}
	for (i = ifa; i != NULL && n < 256; i = i->ifa_next) {
		char a[INET6_ADDRSTRLEN] = "-", m[INET6_ADDRSTRLEN] = "-", line[256];
		if (i->ifa_addr == NULL)
			continue;
		int f = i->ifa_addr->sa_family;
		if (f == AF_INET) {
			inet_ntop(f, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, sizeof(a));
			if (i->ifa_netmask)
				inet_ntop(f, &((struct sockaddr_in *)i->ifa_netmask)->sin_addr, m, sizeof(m));
		} else if (f == AF_INET6) {
			inet_ntop(f, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, a, sizeof(a));
			if (i->ifa_netmask)
				inet_ntop(f, &((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr, m, sizeof(m));
		} else if (f == AF_PACKET) {
			struct sockaddr_ll *l = (struct sockaddr_ll *)i->ifa_addr;
			int o = 0;
			for (int k = 0; k < l->sll_halen && k < 8; k++)
				o += snprintf(a + o, sizeof(a) - o, "%02x%s", l->sll_addr[k], k + 1 < l->sll_halen ? ":" : "");
		} else {
			continue;
		}
		snprintf(line, sizeof(line), "%s %s %d %s/%s", i->ifa_name, (i->ifa_flags & IFF_UP) ? "up" : "down", f, a, m);
		lines[n++] = strdup(line);
	}
	freeifaddrs(ifa);
	qsort(lines, n, sizeof(lines[0]), cmp);
	size_t used = 0;
	for (int k = 0; k < n; k++) {
		int w = snprintf(out + used, cap - used, "%s; ", lines[k]);
		if (w > 0 && (size_t)w < cap - used)
			used += (size_t)w;
		free(lines[k]);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	int port = (int)wl_arg(argc, argv, 2, 7000);
	int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		wl_setup_fail("socket");
	int one = 1, zero = 0;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT };
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		wl_setup_fail("bind");
	if (listen(l, 16) != 0)
		wl_setup_fail("listen");
	describe(net0, sizeof(net0));
	wl_ready();
	unsigned long served = 0;
	while (!wl_stop()) {
		struct pollfd p = { .fd = l, .events = POLLIN };
		int r = poll(&p, 1, 200);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			wl_fail("poll: %s", strerror(errno));
			break;
		}
		if (r == 0)
			continue;
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			wl_fail("accept: %s", strerror(errno));
			break;
		}
		char req[64], reply[64];
		struct pollfd pc = { .fd = c, .events = POLLIN };
		if (poll(&pc, 1, 2000) > 0 && read(c, req, sizeof(req)) > 0) {
			snprintf(reply, sizeof(reply), "pong %lu\n", ++served);
			(void)!write(c, reply, strlen(reply));
		}
		close(c);
	}
	char net1[sizeof(net0)];
	describe(net1, sizeof(net1));
	size_t k = 0;
	while (net0[k] && net0[k] == net1[k])
		k++;
	k = k > 30 ? k - 30 : 0;
	WL_CHECK(strcmp(net0, net1) == 0, "network changed: was [...%.100s] now [...%.100s]", net0 + k, net1 + k);
	wl_finish();
}
