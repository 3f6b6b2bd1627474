#!/bin/sh
# vm/freebsd/run.sh: boot a FreeBSD 14 guest you supply and run ferry's
# FreeBSD checks in it.
#
# STATUS: NEVER RUN.  This script was written on a Linux machine that has
# no FreeBSD image and cannot run FreeBSD; it has not been executed against
# a guest, not once.  Treat every step as untested until someone runs it
# (see README.md).  Only `sh -n` and the no-image "skipped" path have run.
#
# Usage:
#   FREEBSD_IMAGE=/path/FreeBSD-14.x-amd64.qcow2 vm/freebsd/run.sh
#
# Environment:
#   FREEBSD_IMAGE     the guest disk (qcow2 or raw).  Not modified: qemu
#                     runs it with -snapshot.  Unset: prints one "skipped"
#                     line and exits 0 (nothing is checked, nothing passes).
#   FREEBSD_SSH_KEY   private key that the guest's root accepts
#                     (default ~/.ssh/id_ed25519)
#   FREEBSD_SSH_USER  default root (the module checks need root)
#   FREEBSD_SSH_PORT  host port forwarded to the guest's 22 (default 10022)
#   FREEBSD_MEM       guest memory in MiB (default 2048)
#   FREEBSD_BOOT_WAIT seconds to wait for ssh (default 600: TCG is slow)
#   FREEBSD_ACCEL     tcg (default) or kvm
#
# What it does: boots the image with qemu (-nographic, user-mode network
# with a hostfwd to ssh), copies kernel/, Sources/CFerryFreeBSD/ and this
# folder in over ssh, and in the guest: builds the module with `make`
# (needs /usr/src), kldloads it and linux64, runs the validator unit test,
# runs guest_module_test (the module's checks against a real stopped
# process, PT_SC_REMOTE and the wait after it, selectors, and a Linux mmap
# injected into a static non-PIE Linux program built here with gcc),
# builds the FerryFreeBSD Swift target if the guest has swift, unloads the
# module, prints a table of every step's result and powers off.  Exit
# status: 0 only if every guest step passed.
set -eu

if [ -z "${FREEBSD_IMAGE:-}" ]; then
	echo "vm/freebsd: skipped: FREEBSD_IMAGE is not set, no FreeBSD guest was booted and nothing was checked"
	exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
key=${FREEBSD_SSH_KEY:-$HOME/.ssh/id_ed25519}
user=${FREEBSD_SSH_USER:-root}
port=${FREEBSD_SSH_PORT:-10022}
mem=${FREEBSD_MEM:-2048}
wait_s=${FREEBSD_BOOT_WAIT:-600}
accel=${FREEBSD_ACCEL:-tcg}

[ -f "$FREEBSD_IMAGE" ] || { echo "vm/freebsd: no such image: $FREEBSD_IMAGE" >&2; exit 2; }
for t in qemu-system-x86_64 ssh tar; do
	command -v "$t" >/dev/null 2>&1 || { echo "vm/freebsd: $t is needed" >&2; exit 2; }
done
[ -f "$key" ] || { echo "vm/freebsd: no ssh key $key (FREEBSD_SSH_KEY)" >&2; exit 2; }

case "$FREEBSD_IMAGE" in
*.qcow2) fmt=qcow2 ;;
*) fmt=raw ;;
esac

work=$(mktemp -d)
log=$work/console.log
qemu-system-x86_64 -machine q35 -accel "$accel" -m "$mem" -smp 2 \
    -nographic -snapshot \
    -drive "file=$FREEBSD_IMAGE,format=$fmt,if=virtio" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device virtio-net-pci,netdev=n0 \
    </dev/null >"$log" 2>&1 &
qpid=$!
cleanup() {
	kill "$qpid" 2>/dev/null || true
	wait "$qpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

ssh_g() {
	ssh -i "$key" -p "$port" -o BatchMode=yes -o ConnectTimeout=10 \
	    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	    -o LogLevel=ERROR "$user@127.0.0.1" "$@"
}

echo "vm/freebsd: booting $FREEBSD_IMAGE ($accel; console log $log)"
t=0
until ssh_g true 2>/dev/null; do
	if ! kill -0 "$qpid" 2>/dev/null; then
		echo "vm/freebsd: qemu exited; console:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
	t=$((t + 10))
	if [ "$t" -ge "$wait_s" ]; then
		echo "vm/freebsd: no ssh after ${wait_s}s; console:" >&2
		tail -n 40 "$log" >&2
		exit 1
	fi
	sleep 10
done

# A static, non-PIE Linux program for the Linux-branded child of the guest
# test (and, later, the first checkpoint on the host -> restore in the
# guest): built here with the host's gcc.
linuxprog=$work/linux_pause
printf '%s\n' '#include <unistd.h>' 'int main(void) { for (;;) pause(); }' \
    >"$work/linux_pause.c"
if ! ${CC:-gcc} -static -no-pie -O2 -o "$linuxprog" "$work/linux_pause.c"; then
	echo "vm/freebsd: could not build a static Linux program; the Linux-branded child step will be skipped" >&2
fi

echo "vm/freebsd: copying sources in"
(cd "$root" && tar -cf - kernel Sources/CFerryFreeBSD Sources/FerryFreeBSD \
    Sources/FerryCore Sources/FerryImage Sources/CFerryCRC Sources/CFerryFile \
    vm/freebsd Package.swift) | ssh_g 'rm -rf /root/ferry && mkdir -p /root/ferry && tar -xf - -C /root/ferry'
if [ -f "$linuxprog" ]; then
	ssh_g 'cat > /root/ferry/linux_pause && chmod 755 /root/ferry/linux_pause' <"$linuxprog"
fi

echo "vm/freebsd: running the guest checks"
rc=0
ssh_g 'sh -s' <<'GUEST' || rc=$?
# Every step runs and gets a line in the table; the status is non-zero if
# any step failed.  A step that depends on a failed one is "skipped".
cd /root/ferry
table=/tmp/ferry-steps
: > $table
fail=0
step() {	# step NAME COMMAND...: run, record PASS/FAIL
	name=$1; shift
	echo "guest: == $name"
	if "$@"; then
		echo "PASS|$name" >> $table
	else
		echo "FAIL|$name (status $?)" >> $table
		fail=1
	fi
}
skip() { echo "SKIP|$1: $2" >> $table; }
echo "guest: $(uname -sr)"
have_src=0
[ -f /usr/src/sys/conf/kmod.mk ] && have_src=1
if [ $have_src = 1 ]; then
	step "build the module (kernel/Makefile, bsd.kmod.mk)" sh -c 'cd kernel && make clean >/dev/null 2>&1; make'
	kldunload ferry_layout 2>/dev/null || true
	step "kldload ferry_layout.ko" sh -c 'kldload ./kernel/ferry_layout.ko && kldstat -v | grep -q sys/ferry_layout'
else
	skip "build the module" "/usr/src is missing; install the matching source tree"
	skip "kldload ferry_layout.ko" "no module built"
fi
step "kldload linux64 (the Linuxulator)" sh -c 'kldstat -q -m linux64elf || kldload linux64'
step "validator unit test (FreeBSD cc)" sh -c 'cc -std=c99 -Wall -Werror -o /tmp/test_validate kernel/tests/test_validate.c kernel/ferry_validate.c && /tmp/test_validate'
shim=Sources/CFerryFreeBSD
step "build guest_module_test" cc -std=c11 -Wall -Werror -I$shim/include -o /tmp/guest_module_test \
    vm/freebsd/guest_module_test.c $shim/ferry_freebsd.c kernel/ferry_validate.c -lutil
if [ -x linux_pause ]; then
	step "guest_module_test (module, PT_SC_REMOTE, selectors, Linux mmap)" /tmp/guest_module_test ./linux_pause
else
	step "guest_module_test (module, PT_SC_REMOTE, selectors; no Linux child)" /tmp/guest_module_test
fi
skip "checkpoint a static non-PIE Linux program on the host, restore it here" \
    "not implemented: ferry has no FreeBSD restore command yet (docs/freebsd.md)"
if command -v swift >/dev/null 2>&1; then
	step "swift build --target FerryFreeBSD" swift build --target FerryFreeBSD
else
	skip "swift build --target FerryFreeBSD" "no swift in the guest"
fi
kldunload ferry_layout 2>/dev/null || true
echo
echo "guest: step results"
sed 's/|/  /' $table
exit $fail
GUEST

ssh_g 'shutdown -p now' >/dev/null 2>&1 || true
if [ "$rc" -eq 0 ]; then
	echo "vm/freebsd: guest checks passed"
else
	echo "vm/freebsd: guest checks FAILED (status $rc)"
fi
exit "$rc"
