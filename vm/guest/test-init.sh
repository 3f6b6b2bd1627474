#!/bin/sh
# /init of the test guest that vm/guest-test.sh boots: Debian 12's 6.1
# kernel runs the host's already-built test bundle on the host's own
# userland.  The host's root comes in read-only over virtio-9p (mount tag
# hostroot), under an overlay whose upper layer is a tmpfs, so nothing the
# tests write reaches the host.  It mounts proc, sysfs, devtmpfs, fresh
# tmpfs on /tmp and /run, and cgroup v2 only, as stock Debian 12 has it;
# then it makes the overlay the root with switch_root (not chroot: a chroot
# is no mount namespace's root, so /proc paths read from another mount
# namespace, as `ip netns exec` makes, would begin with the chroot's
# directory) and runs itself again there as `init run-tests`: /test.conf's
# command from its directory, the output between markers on the console
# (the host collects it), then power-off.
export PATH=/usr/bin:/usr/sbin
if [ "${1:-}" = run-tests ]; then
	# Stage 2, pid 1 in the overlay root: the host's userland, busybox beside.
	bb=/run/guest-test/busybox
	. /run/guest-test/test.conf
	echo "test-init: running in $TEST_DIR: $TEST_CMD"
	echo "GUEST-TEST-BEGIN $($bb date -u +%Y-%m-%dT%H:%M:%SZ)"
	$bb sh -c "cd '$TEST_DIR' && exec $TEST_CMD" </dev/null 2>&1
	st=$?
	echo "GUEST-TEST-END $($bb date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "GUEST-TEST-EXIT $st"
	if [ -n "$TEST_XUNIT" ] && [ -s "$TEST_XUNIT" ]; then
		echo GUEST-TEST-XUNIT-BEGIN
		$bb cat "$TEST_XUNIT"
		echo
		echo GUEST-TEST-XUNIT-END
	fi
	$bb sync
	$bb poweroff -f
	echo o >/proc/sysrq-trigger
	$bb sleep 60
fi
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
hostname ferry-guest-test
# Loopback up, as Debian's ifupdown brings it up (the tests serve and
# connect on 127.0.0.1).
ip link set lo up
echo "test-init: kernel $(uname -r), $(grep -c '^processor' /proc/cpuinfo) cpu(s), $(sed -n 's/^MemTotal: *//p' /proc/meminfo) memory"
echo "test-init: cpu model: $(sed -n "s/^model name\t*: *//p" /proc/cpuinfo | head -n1)"
# Dependencies first (modules.order, written by guest-test.sh).
while read -r m; do
	insmod "/modules/$m.ko" || echo "test-init: insmod $m failed"
done </modules/modules.order
fail() { echo "test-init: $*"; echo "GUEST-TEST-EXIT 125"; poweroff -f; echo o >/proc/sysrq-trigger; sleep 60; }
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /lower ||
	fail "cannot mount the host's root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 rw /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "cannot mount the overlay (lower 9p, upper tmpfs)"
n=/newroot
mount -t proc proc $n/proc
mount -t sysfs sys $n/sys
mount -t cgroup2 none $n/sys/fs/cgroup || fail "cannot mount cgroup2"
mount -t devtmpfs dev $n/dev
mkdir -p $n/dev/pts $n/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $n/dev/pts
mount -t tmpfs -o mode=1777 shm $n/dev/shm
mount -t tmpfs -o mode=1777 tmp $n/tmp
mount -t tmpfs -o mode=0755 run $n/run
# The host's /mnt holds only its own mounts (nothing the tests use).
mount -t tmpfs -o mode=0755 mnt $n/mnt
# Stage 2 needs busybox, this script and its command in the new root.
g=$n/run/guest-test
mkdir -p $g
cp /usr/bin/busybox /init /test.conf $g/
. /test.conf
echo "test-init: mounts: $(grep -c . /proc/mounts); cgroup: $(cat $n/sys/fs/cgroup/cgroup.controllers)"
exec switch_root $n /run/guest-test/busybox sh /run/guest-test/init run-tests
fail "switch_root failed"
