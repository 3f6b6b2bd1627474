#!/bin/bash
# vm/guest-test.sh: run the already-built test bundle inside a qemu guest
# that boots Debian 12's own kernel (6.1) with cgroup v2 only, on this host's
# userland, and collect its output.
#
#   swift build --build-tests && vm/guest-test.sh [BUNDLE ARGS...]
#   vm/guest-test.sh --filter CheckTests          one suite
#
# The guest (TCG: KVM here is KVM-PVM, which hangs a normal guest) mounts
# this host's / read-only over virtio-9p under an overlay with a tmpfs upper
# layer, so nothing the tests write reaches the host; then it mounts proc,
# sysfs, devtmpfs, /tmp, /run and cgroup2 on /sys/fs/cgroup, chroots into it
# and runs the bundle from this checkout (vm/guest/test-init.sh).  Swift is
# not needed in the guest: the bundle is an executable, run as `swift test
# --skip-build` runs it, and it finds the Swift runtime, ferry and the
# workloads (prebuilt here) at the same paths as on the host.
#
# Environment: VM_MEM (MiB, 4096), VM_SMP (2; multi-threaded TCG),
# VM_CPU (max,-pku,-mpx), VM_TEST_WAIT (s, 14400: qemu is killed after it),
# VM_KERNEL_PKG (linux-image-amd64), VM_CACHE (vm/cache), GUEST_TEST_BUNDLE
# (.build/debug/ferryPackageTests.xctest), GUEST_TEST_LIBRARY (swift-testing:
# the bundle's --testing-library; empty runs it without the flag).
# Output: vm/logs/guest-test-RUN/ (console.log: the whole serial console;
# tests.log: the bundle's output; tests.xml: its xUnit file; summary.txt:
# per-suite counts from it, vm/test-summary.py, which also reads a run cut
# short from tests.log; qemu.log).  Exit status: the bundle's,
# 2 for a setup error, 124 when VM_TEST_WAIT ran out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${VM_CACHE:-$here/cache}
kpkg=${VM_KERNEL_PKG:-linux-image-amd64}
mem=${VM_MEM:-4096}
smp=${VM_SMP:-2}
cpu=${VM_CPU:-max,-pku,-mpx}
wait_s=${VM_TEST_WAIT:-14400}
bundle=${GUEST_TEST_BUNDLE:-$root/.build/debug/ferryPackageTests.xctest}
library=${GUEST_TEST_LIBRARY-swift-testing}
err() { echo "vm/guest-test: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || err "run as root (qemu's 9p passthrough of /, and the tests need root)"
for t in qemu-system-x86_64 busybox cpio gzip dpkg-deb apt-get make; do
	command -v $t >/dev/null 2>&1 || err "$t is needed (make vm-deps)"
done
[ -x "$bundle" ] || err "no test bundle at $bundle: run swift build --build-tests first"
busybox_bin=$(command -v busybox)
ldd "$busybox_bin" >/dev/null 2>&1 && err "$busybox_bin is dynamically linked; install busybox-static"
# The tests build the workloads with make if they are missing; built here, the
# guest only checks that they are up to date.
make -s -C "$root/Tests/Workloads" OUT="$root/.build/workloads" >/dev/null || err "building the workloads failed"

# --- kernel and the modules the guest loads, from Debian's package ----------
# Loaded in this order (each after what it depends on): virtio PCI and 9p
# for the host's root, overlay for the writable layer, veth for the tests
# that join network namespaces (stock Debian loads it on demand; the chroot
# has no 6.1 modules to load from).
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
netfs fscache 9pnet 9pnet_virtio 9p overlay veth"
. "$here/kernel-pkg.sh"
kernel_pick
tdir=$kdir/test-modules  # beside build-guest.sh's modules/ (e1000 only)
if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$tdir/modules.order" ]; then
	kernel_unpack
	mkdir -p "$tmp/test-modules"
	for m in $modules; do
		kernel_module "$m" "$tmp/test-modules/$m.ko"
		echo "$m" >>"$tmp/test-modules/modules.order"
	done
	kernel_install test-modules
	rm -rf "$tmp"
	trap - EXIT
fi

# --- initramfs: busybox, the init, the modules, the command -----------------
run_id=$(date +%Y%m%d-%H%M%S)
logs=$here/logs/guest-test-$run_id
mkdir -p "$logs"
st=$(mktemp -d /tmp/ferry-guest-test.XXXXXX)
qpid=
cleanup() {  # under set -e: no command here may fail
	if [ -n "$qpid" ]; then
		kill "$qpid" 2>/dev/null || true
		sleep 1
		kill -9 "$qpid" 2>/dev/null || true
	fi
	rm -rf "$st"
}
trap cleanup EXIT
trap 'echo "vm/guest-test: interrupted; logs in $logs" >&2; exit 130' INT TERM
mkdir -p "$st/r/usr/bin" "$st/r/modules" "$st/r/proc" "$st/r/sys" "$st/r/dev" "$st/r/tmp"
ln -s usr/bin "$st/r/bin"; ln -s usr/bin "$st/r/sbin"; ln -s bin "$st/r/usr/sbin"
cp "$busybox_bin" "$st/r/usr/bin/busybox"
for a in $("$busybox_bin" --list); do
	[ -e "$st/r/usr/bin/$a" ] || ln -s busybox "$st/r/usr/bin/$a"
done
install -m 0755 "$here/guest/test-init.sh" "$st/r/init"
cp "$tdir"/* "$st/r/modules/"
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }  # one shell word, single-quoted
cmd="env -i HOME=/root TERM=dumb NO_COLOR=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $(q "$bundle")"
xunit=
if [ -n "$library" ]; then
	cmd="$cmd --testing-library $(q "$library")"
	# Per-test results (suite, skip reason, failure), printed after the run.
	[ "$library" = swift-testing ] && xunit=/tmp/guest-test.xml && cmd="$cmd --xunit-output $xunit"
fi
for a in "$@"; do cmd="$cmd $(q "$a")"; done
{ echo "TEST_DIR=$(q "$root")"; echo "TEST_CMD=$(q "$cmd")"; echo "TEST_XUNIT=$(q "$xunit")"; } >"$st/r/test.conf"
initrd=$st/initrd.cpio.gz
(cd "$st/r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$initrd" || err "cpio failed"

# --- boot, wait for the power-off, collect ----------------------------------
accel=tcg
[ "$smp" -gt 1 ] && accel=tcg,thread=multi
echo "vm/guest-test: booting $(cat "$kdir/release" 2>/dev/null || basename "$kdir") ($smp cpu, $mem MiB, $accel); console: $logs/console.log"
echo "vm/guest-test: in the guest: cd $root && $cmd"
t0=$SECONDS
nice -n 19 qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "$mem" -smp "$smp" \
	-nodefaults -display none -no-reboot -serial "file:$logs/console.log" \
	-kernel "$kdir/vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 loglevel=4" \
	-fsdev "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap" \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	</dev/null >"$logs/qemu.log" 2>&1 &
qpid=$!
status=
while kill -0 "$qpid" 2>/dev/null; do
	if [ $((SECONDS - t0)) -ge "$wait_s" ]; then
		echo "vm/guest-test: no power-off within ${wait_s}s (VM_TEST_WAIT); stopping qemu" >&2
		status=124
		break
	fi
	sleep 5
done
[ -z "$status" ] && { wait "$qpid" || true; qpid=; }
sed -n '/^GUEST-TEST-BEGIN/,/^GUEST-TEST-EXIT/p' "$logs/console.log" | tr -d '\r' >"$logs/tests.log"
tr -d '\r' <"$logs/console.log" | sed -n '/^GUEST-TEST-XUNIT-BEGIN/,/^GUEST-TEST-XUNIT-END/{//!p}' >"$logs/tests.xml"
if [ -s "$logs/tests.xml" ] && python3 "$here/test-summary.py" "$logs/tests.xml" >"$logs/summary.txt" 2>&1; then
	cat "$logs/summary.txt"
fi
if [ -z "$status" ]; then
	status=$(sed -n 's/^GUEST-TEST-EXIT \([0-9]*\).*/\1/p' "$logs/console.log" | tail -n1)
	[ -n "$status" ] || { status=2; echo "vm/guest-test: the guest stopped without reporting (last console lines below)" >&2
		tail -n 15 "$logs/console.log" | sed 's/^/  | /' >&2; }
fi
echo "vm/guest-test: $((SECONDS - t0)) s, status $status; the tests' output: $logs/tests.log"
exit "$status"
