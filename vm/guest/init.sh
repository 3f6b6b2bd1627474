#!/bin/sh
# /init of ferry's test guest (vm/build-guest.sh packs it into the
# initramfs).  Mounts the basics, brings up the NICs, starts the agent, and
# prints FERRY-GUEST-READY on the serial console.  Kernel command line:
#   ferry.ip2=ADDR/PREFIX   address of the second NIC (guest-to-guest link)
export PATH=/usr/local/bin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
# /tmp stays on the initramfs (already in RAM and writable): a tmpfs over it
# would hide the workloads when the checkout, and so vm/cache/wl, is under
# /tmp (a CI clone may be), and restore would not find their executables.
chmod 1777 /tmp
hostname ferry-guest
ip2=$(sed -n 's/.*ferry\.ip2=\([^ ]*\).*/\1/p' /proc/cmdline)
for m in /lib/modules/*.ko; do insmod "$m" || echo "init: insmod $m failed"; done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
if [ -n "$ip2" ]; then ip link set eth1 up && ip addr add "$ip2" dev eth1; fi
echo "init: kernel $(uname -r), cpu: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -cx 'avx\|avx2\|xsave' ) of xsave/avx/avx2"
ip -brief addr
echo FERRY-GUEST-READY
# The agent becomes pid 1: it ignores SIGCHLD, so the kernel reaps every
# orphan at once (a checkpoint kills a workload whose pid a restore may need).
exec ferry-agent serve 7000
