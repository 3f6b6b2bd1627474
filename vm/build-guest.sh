#!/bin/bash
# vm/build-guest.sh: build (or reuse) the Linux test guest for vm/run.sh.
#
#   FERRY=/path/to/ferry vm/build-guest.sh     prints "KERNEL INITRD" paths
#
# The guest is Debian's own kernel (the linux-image-amd64 package, 6.1 on
# Debian 12: another kernel than the host's) booting a busybox initramfs that
# holds ferry, the guest agent (vm/guest/agent.c), the test workloads and
# exactly the shared libraries they load, copied from this host with their
# mtimes (restore refuses a mapped file whose size or mtime changed; a
# debootstrap guest matches only with the very same package versions, see
# README.md).
#
# Cached under vm/cache/: the kernel by package version, the initramfs by a
# hash of this script, init.sh, agent.c, ferry and the workloads.
#
# Environment: FERRY (required), VM_KERNEL_PKG (default linux-image-amd64),
# VM_CACHE (default vm/cache).  Errors are one line on stderr, status 2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${VM_CACHE:-$here/cache}
kpkg=${VM_KERNEL_PKG:-linux-image-amd64}
err() { echo "vm/build-guest: $*" >&2; exit 2; }

[ -n "${FERRY:-}" ] && [ -x "$FERRY" ] || err "FERRY must name the ferry binary to put in the guest (got '${FERRY:-}')"
for t in busybox cpio gzip dpkg-deb apt-get cc make ldd; do
	command -v $t >/dev/null 2>&1 || err "$t is needed (apt-get install busybox-static cpio)"
done
busybox_bin=$(command -v busybox)
ldd "$busybox_bin" >/dev/null 2>&1 && err "$busybox_bin is dynamically linked; install busybox-static"
mkdir -p "$cache"

# --- kernel: Debian's package, unpacked once per version -------------------
. "$here/kernel-pkg.sh"
kernel_pick
if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/modules/e1000.ko" ]; then
	kernel_unpack
	mkdir -p "$tmp/modules"
	# e1000 is all the guest needs (qemu's default NIC); no dependencies.
	kernel_module e1000 "$tmp/modules/e1000.ko"
	kernel_install modules
	rm -rf "$tmp"
	trap - EXIT
fi

# --- workloads: built at a fixed absolute path, the same in the guest -------
wl=$cache/wl
make -s -C "$root/Tests/Workloads" OUT="$wl" >/dev/null || err "building the workloads failed (make -C Tests/Workloads)"
# cpio (newc) keeps whole seconds only: give the files whole-second mtimes so
# the guest's copies have the same mtime as the host's, to the nanosecond.
for f in "$wl"/wl_*; do touch -m -d "@$(stat -c %Y "$f")" "$f"; done
agent_src=$here/guest/agent.c
agent=$cache/ferry-agent
if [ ! -x "$agent" ] || [ "$agent_src" -nt "$agent" ]; then
	cc -O2 -Wall -Werror -o "$agent" "$agent_src" || err "building $agent_src failed"
fi

# --- initramfs, keyed by its inputs ----------------------------------------
key=$( { cat "$0" "$here/guest/init.sh" "$agent_src" "$FERRY" "$agent" "$wl"/wl_*; echo "$real $ver"; stat -c '%n %s %Y' "$wl"/wl_*; } | sha256sum | cut -c1-16)
initrd=$cache/initrd-$key.cpio.gz
if [ ! -f "$initrd" ]; then
	st=$(mktemp -d "$cache/root.XXXXXX")
	trap 'rm -rf "$st"' EXIT
	mkdir -p "$st"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,proc,sys,dev,tmp,root,etc,lib/modules}
	# Debian 12's merged /usr, as on the host, so paths in /proc/PID/maps match.
	rmdir "$st/lib/modules" "$st/lib"
	ln -s usr/bin "$st/bin"; ln -s usr/sbin "$st/sbin"; ln -s usr/lib "$st/lib"; ln -s usr/lib64 "$st/lib64"
	mkdir -p "$st/usr/lib/modules"
	cp "$kdir"/modules/*.ko "$st/usr/lib/modules/"
	cp "$busybox_bin" "$st/usr/bin/busybox"
	for a in $("$busybox_bin" --list); do
		[ -e "$st/usr/bin/$a" ] || ln -s busybox "$st/usr/bin/$a"
	done
	install -m 0755 "$here/guest/init.sh" "$st/init"
	strip -o "$st/usr/local/bin/ferry" "$FERRY" 2>/dev/null || cp "$FERRY" "$st/usr/local/bin/ferry"
	cp "$agent" "$st/usr/local/bin/ferry-agent"
	mkdir -p "$st$wl"
	cp -a "$wl"/wl_* "$st$wl/"
	# Every shared object they load, copied with its mtime, at its real path,
	# plus the symlink names the dynamic linker asks for.
	copy_file() {  # PATH (may be a symlink chain)
		local p=$1 t
		while [ -L "$p" ]; do
			t=$(readlink "$p")
			mkdir -p "$st$(dirname "$(realpath -s "$p")")"
			[ -e "$st$p" ] || [ -L "$st$p" ] || cp -a "$p" "$st$p" 2>/dev/null || true
			case "$t" in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
		done
		p=$(realpath "$p")
		mkdir -p "$st$(dirname "$p")"
		cp -a "$p" "$st$p"
	}
	for b in "$FERRY" "$agent" "$wl"/wl_*; do
		case "$b" in *.py) continue ;; esac
		ldd "$b" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'
	done | sort -u | while read -r lib; do copy_file "$lib"; done
	# /lib, /lib64 are symlinks into /usr on the host: store what they point at.
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$st/etc/passwd"
	printf 'root:x:0:\n' >"$st/etc/group"
	(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp" || err "cpio failed"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$st"
	trap - EXIT
fi
echo "$kdir/vmlinuz $initrd"
