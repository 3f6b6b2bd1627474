/* sock_diag for AF_UNIX sockets: what the kernel knows of one socket by inode. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include "CFerryLinux.h"

int ferry_unix_diag(uint32_t inode, struct ferry_unix_info *out)
{
	memset(out, 0, sizeof(*out));
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req r;
	} req;
	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.nlh.nlmsg_seq = 1;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = ~0u;
	req.r.udiag_ino = inode;
	req.r.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
	req.r.udiag_cookie[0] = ~0u;
	req.r.udiag_cookie[1] = ~0u;
	if (send(nl, &req, sizeof(req), 0) != (ssize_t)sizeof(req)) {
		int e = errno;
		close(nl);
		return -e;
	}
	static __thread char buf[65536];
	ssize_t n = recv(nl, buf, sizeof(buf), 0);
	int e = errno;
	close(nl);
	if (n < 0)
		return -e;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (size_t)n))
		return -EBADMSG;
	if (h->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *err = NLMSG_DATA(h);
		return err->error ? err->error : -ENOENT;
	}
	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
		return -EBADMSG;
	struct unix_diag_msg *m = NLMSG_DATA(h);
	out->type = m->udiag_type;
	out->state = m->udiag_state;
	int left = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*m));
	struct nlattr *a = (struct nlattr *)((char *)m + NLMSG_ALIGN(sizeof(*m)));
	while (left >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
		void *p = (char *)a + NLA_HDRLEN;
		int len = a->nla_len - NLA_HDRLEN;
		switch (a->nla_type) {
		case UNIX_DIAG_NAME:
			if (len > (int)sizeof(out->name))
				len = sizeof(out->name);
			memcpy(out->name, p, len);
			out->name_len = len;
			break;
		case UNIX_DIAG_VFS:
			if (len >= (int)sizeof(struct unix_diag_vfs)) {
				struct unix_diag_vfs v;
				memcpy(&v, p, sizeof(v));
				out->vfs_inode = v.udiag_vfs_ino;
			}
			break;
		case UNIX_DIAG_PEER:
			if (len >= 4)
				memcpy(&out->peer, p, 4);
			break;
		case UNIX_DIAG_ICONS:
			out->incoming = len / 4;
			memcpy(out->icons, p, (out->incoming < FERRY_UNIX_MAX_ICONS ? out->incoming : FERRY_UNIX_MAX_ICONS) * 4);
			break;
		case UNIX_DIAG_RQLEN:
			if (len >= (int)sizeof(struct unix_diag_rqlen)) {
				struct unix_diag_rqlen q;
				memcpy(&q, p, sizeof(q));
				out->rqueue = q.udiag_rqueue;
				out->wqueue = q.udiag_wqueue;
			}
			break;
		case UNIX_DIAG_SHUTDOWN:
			if (len >= 1)
				out->shutdown = *(uint8_t *)p;
			break;
		}
		left -= NLA_ALIGN(a->nla_len);
		a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
	}
	return 0;
}
