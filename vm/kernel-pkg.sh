# vm/kernel-pkg.sh: Debian's kernel package for the qemu guests, sourced by
# build-guest.sh and guest-test.sh, which set kpkg (the package to follow,
# e.g. linux-image-amd64), cache (vm/cache) and err (prints, exits 2).
#
#   kernel_pick            sets real (the versioned package it depends on),
#                          ver (apt's candidate) and kdir (its cache directory)
#   kernel_unpack          downloads real=ver and unpacks it under a new
#                          $tmp/x (an EXIT trap removes $tmp); sets krel
#   kernel_module NAME OUT the module NAME of the unpacked package as a plain
#                          .ko at OUT (busybox insmod reads no .ko.xz/.ko.zst)
#   kernel_install DIR     $tmp/DIR (the caller's modules) to $kdir/DIR, and
#                          the kernel, its config and release if $kdir lacks
#                          them; vmlinuz comes last, so a $kdir with vmlinuz
#                          has the rest (each script checks its own DIR)

kernel_candidate() {
	real=$kpkg
	local dep
	dep=$(apt-cache depends "$kpkg" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1 || true)
	[ -n "$dep" ] && real=$dep
	ver=$(apt-cache policy "$real" 2>/dev/null | sed -n 's/^ *Candidate: //p' || true)
}

kernel_pick() {
	kernel_candidate
	# A fresh machine may have no package lists yet (CI): read them once.
	if { [ -z "$ver" ] || [ "$ver" = "(none)" ]; } && [ "$(id -u)" = 0 ]; then
		timeout 300 apt-get update -qq >/dev/null 2>&1 || true
		kernel_candidate
	fi
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || err "no kernel package '$real' (from VM_KERNEL_PKG=$kpkg) in apt's lists; run apt-get update or pick another"
	kdir=$cache/kernel/${real}_$ver
}

kernel_unpack() {
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/kdl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && timeout 600 apt-get download "$real=$ver" >"$tmp/apt.log" 2>&1) ||
		err "cannot download kernel package $real=$ver: $(grep -m1 -E '^(E|W):' "$tmp/apt.log" || tail -n1 "$tmp/apt.log")"
	dpkg-deb -x "$tmp"/*.deb "$tmp/x" || err "cannot unpack $tmp/*.deb"
	krel=$(ls "$tmp/x/lib/modules" | head -n1)
}

kernel_module() {
	local f
	f=$(find "$tmp/x/lib/modules/$krel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \) | head -n1)
	[ -n "$f" ] || err "$real has no module $1"
	case "$f" in
	*.ko) cp "$f" "$2" ;;
	*.xz) xz -dc "$f" >"$2" || err "cannot decompress $f" ;;
	*.zst) zstd -dc "$f" >"$2" || err "cannot decompress $f" ;;
	esac
}

kernel_install() {
	mkdir -p "$kdir"
	rm -rf "${kdir:?}/$1" && mv "$tmp/$1" "$kdir/$1"
	[ -f "$kdir/vmlinuz" ] && return 0
	cp "$tmp/x/boot/config-$krel" "$kdir/config"
	echo "$krel" >"$kdir/release"
	cp "$tmp/x/boot/vmlinuz-$krel" "$kdir/vmlinuz.tmp" && mv "$kdir/vmlinuz.tmp" "$kdir/vmlinuz"
}
