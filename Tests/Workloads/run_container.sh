#!/bin/bash
# Container checkpoint → restore → verify:
#   run_container.sh FERRY OUT MODE
# MODE init:  the workload is its container's pid 1
#      child: a shell is pid 1 and the workload pid 2 (the restore starts
#             ferry's own init as pid 1 and the workload joins its namespaces)
# Makes a container the way a user would: cgroups (cpu quota, memory limit,
# pids.max) made here, then `unshare --pid --mount --uts --ipc --net --fork`
# with a hostname set inside and the loopback device up, running
# wl_container_check as a CPU hog holding 24 MiB.
# Measures the hog's CPU share before the checkpoint and after the restore,
# checks the restored process's namespaces, hostname, pid inside the
# container and cgroup limits, then lets the workload verify itself (a child
# allocating beyond the memory limit must be OOM-killed). Prints
#   PASS container MODE: measurements   |   FAIL container MODE: reason
# Leaves nothing running and removes every cgroup it or the restore made.
set -u
if [ -z "${FERRY_UNDER_REAPER:-}" ]; then
	FERRY_UNDER_REAPER=1 exec python3 "$(dirname "$0")/reaper.py" bash "$0" "$@"
fi
FERRY="$1" OUT="$2" MODE="$3"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$OUT/wl_container_check"
QUOTA=${QUOTA:-20000} PERIOD=100000 MEM_MIB=${MEM_MIB:-64} HOG_MIB=${HOG_MIB:-160} RES_MIB=${RES_MIB:-24} PIDS=64
CG=/sys/fs/cgroup
name="ferry-test/ct-$$"
host="ferry-ct-$$"
ctl="$(mktemp -d /tmp/ferry_ct.XXXXXX)"
img="$ctl/image"
restored="" nsinit="" newcgs="" launcher=""

rmdir_wait() { local i; for ((i = 0; i < 50; i++)); do rmdir "$1" 2>/dev/null || [ ! -d "$1" ] && return 0; sleep 0.1; done; echo "cgroup $1 left behind: it still holds a process" >&2; }

cleanup() {
	[ -n "$restored" ] && kill -9 "$restored" 2>/dev/null
	[ -n "$nsinit" ] && kill -9 "$nsinit" 2>/dev/null
	for p in $(cat $CG/{cpu,memory,pids}/"$name"/cgroup.procs 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	[ -n "$launcher" ] && kill -9 "$launcher" 2>/dev/null
	# A killed process leaves its cgroup only once it has exited, which takes
	# longer on a loaded machine: each directory gets up to 5 s.
	for d in $newcgs; do rmdir_wait "$d"; done
	for c in cpu memory pids; do rmdir_wait "$CG/$c/$name"; rmdir "$CG/$c/ferry-test" 2>/dev/null; done
	rm -rf "$ctl"
}
trap cleanup EXIT
wait_for() { local i; for ((i = 0; i < $2; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
fail() { echo "FAIL container $MODE: $*"; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU share of PID over 1.5 s, in percent of one CPU.
cpu_pct() {
	local a b hz
	hz=$(getconf CLK_TCK)
	a=$(ticks "$1") || return 1
	sleep 1.5
	b=$(ticks "$1") || return 1
	echo $(((b - a) * 100 * 100 / hz / 150))
}

for c in cpu memory pids; do mkdir -p "$CG/$c/$name" || fail "mkdir $CG/$c/$name"; done
echo $PERIOD >"$CG/cpu/$name/cpu.cfs_period_us" && echo $QUOTA >"$CG/cpu/$name/cpu.cfs_quota_us" &&
	echo $((MEM_MIB << 20)) >"$CG/memory/$name/memory.limit_in_bytes" && echo $PIDS >"$CG/pids/$name/pids.max" ||
	fail "cannot set the test cgroup's limits"

join="for c in cpu memory pids; do echo \$\$ > $CG/\$c/$name/cgroup.procs || exit 1; done"
ns="unshare --pid --mount --uts --ipc --net --fork"
if [ "$MODE" = init ]; then
	inner="hostname $host && ip link set lo up && exec $bin $ctl 1 $HOG_MIB $RES_MIB"
else
	inner="hostname $host && ip link set lo up && { $bin $ctl 1 $HOG_MIB $RES_MIB & wait; }"
fi
python3 "$here/launch.py" /bin/sh -c "$join; exec $ns /bin/sh -c '$inner'" &
launcher=$!
wait_for "$ctl/ready" 100 || fail "no ready within 10 s"
innerpid="$(head -n1 "$ctl/ready")"
pid=""
for p in $(cat "$CG/cpu/$name/cgroup.procs"); do
	[ "$(readlink "/proc/$p/exe")" = "$bin" ] && pid=$p
done
[ -n "$pid" ] || fail "cannot find the workload's host pid"
sleep 0.3
before=$(cpu_pct "$pid") || fail "cannot measure the CPU share before"

out="$("$FERRY" checkpoint "$pid" -o "$img" 2>&1)" || fail "checkpoint: $out"
{ wait "$launcher"; } 2>/dev/null
launcher=""
inspect="$("$FERRY" inspect "$img" 2>&1)" || fail "inspect: $inspect"
echo "$inspect" | grep -q "hostname: $host" || fail "inspect shows no hostname $host: $inspect"
echo "$inspect" | grep -q "cpu quota $QUOTA/$PERIOD" || fail "inspect shows no cpu quota: $inspect"
echo "$inspect" | grep -q "loopback: up" || fail "inspect shows no loopback up: $inspect"

out="$("$FERRY" restore "$img" 2>&1)" || fail "restore: $out"
restored="$(echo "$out" | sed -n 's/^restored pid \([0-9]*\).*/\1/p')"
nsinit="$(echo "$out" | sed -n 's/^restored pid [0-9]* (namespace init \([0-9]*\)).*/\1/p')"
newcgs="$(echo "$out" | sed -n 's/^note: container: cgroup \(.*\)$/\1/p')"
[ -n "$restored" ] || fail "restore printed no pid: $out"
[ -n "$newcgs" ] || fail "restore made no cgroup: $out"

# Namespaces: all five are new (not ferry's), and the same as the init's.
for n in pid mnt uts ipc net; do
	[ "$(readlink /proc/$restored/ns/$n)" != "$(readlink /proc/self/ns/$n)" ] || fail "the restored process is in the host's $n namespace"
	[ -z "$nsinit" ] || [ "$(readlink /proc/$restored/ns/$n)" = "$(readlink /proc/$nsinit/ns/$n)" ] ||
		fail "the restored process's $n namespace is not its init's"
done
nspid="$(awk '/^NSpid:/ {print $NF}' /proc/$restored/status)"
[ "$nspid" = "$innerpid" ] || fail "pid inside the container $nspid, was $innerpid"
nsenter -t "$restored" -n ip -o link show lo | grep -q '<LOOPBACK,UP' || fail "loopback not up in the restored network namespace"
h="$(nsenter -t "$restored" -u hostname)" || fail "nsenter -u"
[ "$h" = "$host" ] || fail "hostname in the restored uts namespace: $h, was $host"
# cgroups: the restored process is in the new ones, which carry the limits.
for c in cpu memory pids; do
	d="$(grep -E "^[0-9]+:([^:]*,)?$c(,[^:]*)?:" /proc/$restored/cgroup | cut -d: -f3)"
	echo "$newcgs" | grep -qx "$CG/$c$d" || fail "$c cgroup of the restored process is $d, not one the restore made ($newcgs)"
done
cgcpu="$(echo "$newcgs" | grep "^$CG/cpu/")" cgmem="$(echo "$newcgs" | grep "^$CG/memory/")" cgpids="$(echo "$newcgs" | grep "^$CG/pids/")"
[ "$(cat "$cgcpu/cpu.cfs_quota_us")" = $QUOTA ] || fail "cpu.cfs_quota_us is $(cat "$cgcpu/cpu.cfs_quota_us")"
[ "$(cat "$cgcpu/cpu.cfs_period_us")" = $PERIOD ] || fail "cpu.cfs_period_us is $(cat "$cgcpu/cpu.cfs_period_us")"
[ "$(cat "$cgmem/memory.limit_in_bytes")" = $((MEM_MIB << 20)) ] || fail "memory.limit_in_bytes is $(cat "$cgmem/memory.limit_in_bytes")"
[ "$(cat "$cgpids/pids.max")" = $PIDS ] || fail "pids.max is $(cat "$cgpids/pids.max")"
# The restored memory (written by ferry before the process ran) is charged to the new cgroup.
usage=$(cat "$cgmem/memory.usage_in_bytes")
anon=$(awk '/^RssAnon:/ {print $2 * 1024}' /proc/$restored/status)
[ "$usage" -ge "$anon" ] && [ "$usage" -ge $((RES_MIB << 20)) ] || fail "the new memory cgroup holds $usage bytes, less than the restored process's $anon anonymous bytes or its $RES_MIB MiB: its pages are charged elsewhere"

sleep 0.3
after=$(cpu_pct "$restored") || fail "cannot measure the CPU share after restore"
limit=$((QUOTA * 100 / PERIOD))
[ "$after" -le $((limit + 8)) ] || fail "CPU share after restore ${after}% > quota ${limit}% + 8"
[ "$after" -ge 3 ] || fail "CPU share after restore ${after}%: the hog does not run"
[ "$before" -le $((limit + 8)) ] || fail "CPU share before checkpoint ${before}% > quota ${limit}% + 8 (test set-up)"

touch "$ctl/stop"
wait_for "$ctl/result" 150 || fail "no result (restored pid $restored $(kill -0 "$restored" 2>/dev/null && echo running || echo gone))"
res="$(head -n1 "$ctl/result")"
[ "$res" = PASS ] || fail "$res"
# The hog was killed by the restored cgroup's limit, not by a global OOM.
ooms="$(awk '$1 == "oom_kill" {print $2}' "$cgmem/memory.oom_control")"
[ "${ooms:-0}" -ge 1 ] || fail "no OOM kill counted in $cgmem (oom_kill ${ooms:-?})"
echo "PASS container $MODE: cpu ${before}% before, ${after}% after restore (quota ${limit}%); ${HOG_MIB} MiB hog OOM-killed under ${MEM_MIB} MiB (oom_kill $ooms), $((usage >> 20)) MiB charged to the new cgroup after restore ($RES_MIB MiB resident); hostname $host, pid $innerpid inside"
