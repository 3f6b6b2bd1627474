#!/bin/bash
# A container's network across checkpoint → restore:
#   run_container_net.sh FERRY OUT [restore|hook|migrate]
# Makes a bridge on this host (10.199.X.1/24, fd00:199:X::1/64) and a
# container the way a user would: `unshare --pid --mount --uts --ipc --net
# --fork`, a veth pair with the container end `eth0` inside (MAC, MTU 1400,
# 10.199.X.2/24, fd00:199:X::2/64, default routes via the bridge for both
# families) and the host end on the bridge. wl_net_server serves TCP on
# PORT inside. A client on this host gets "pong 1" over IPv4; ferry
# checkpoints the container (which ends it: the veth pair goes with its
# namespace) and restores it with --bridge; then the container's link,
# addresses and routes (as `ip` shows them inside) must be the ones before,
# the host end must be on the bridge again, and clients on this host must
# get "pong 2" (IPv4) and "pong 3" (IPv6) from the same server at the same
# addresses. Last the workload compares its interfaces (getifaddrs) with
# those it saw at start. Before the restore a stale neighbour entry for the
# container's IPv4 address is planted on the bridge; the restore's
# gratuitous ARP must have corrected it before any client asks. MODE hook: restore with --net-hook (a command that
# puts the host end on the bridge) instead of --bridge. MODE migrate (same host): `ferry serve --listen
# unix:… --bridge` and `ferry migrate` instead of checkpoint and restore
# (the source's host end is held down from the freeze and goes away at
# commit; the target's new one must be the only port on the bridge). Prints
#   PASS container-net: …   |   FAIL container-net: reason
# Leaves nothing running; removes the bridge and the cgroups the restore made.
set -u
if [ -z "${FERRY_UNDER_REAPER:-}" ]; then
	FERRY_UNDER_REAPER=1 exec python3 "$(dirname "$0")/reaper.py" bash "$0" "$@"
fi
FERRY="$1" OUT="$2" MODE="${3:-restore}"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$OUT/wl_net_server"
x=$(($$ % 250 + 1))
br="fbr$$" vh="fvh$$" dm="fdm$$" port=$((7000 + $$ % 1000))
ip4="10.199.$x.2" gw4="10.199.$x.1" ip6="fd00:199:$x::2" gw6="fd00:199:$x::1"
mac="02:00:0a:c7:$(printf %02x $x):02"
ctl="$(mktemp -d /tmp/ferry_ctnet.XXXXXX)"
img="$ctl/image"
restored="" nsinit="" launcher="" serve="" newcgs=""

rmdir_wait() { local i; for ((i = 0; i < 50; i++)); do rmdir "$1" 2>/dev/null || [ ! -d "$1" ] && return 0; sleep 0.1; done; echo "cgroup $1 left behind: it still holds a process" >&2; }

cleanup() {
	[ -n "$restored" ] && kill -9 "$restored" 2>/dev/null
	[ -n "$nsinit" ] && kill -9 "$nsinit" 2>/dev/null
	[ -n "$launcher" ] && kill -9 "$launcher" 2>/dev/null
	[ -n "$serve" ] && kill -9 "$serve" 2>/dev/null
	[ -e "$ctl/ctpid" ] && kill -9 "$(cat "$ctl/ctpid")" 2>/dev/null
	# The cgroups the restore made stay after the container ends (docs/containers.md).
	for d in $newcgs; do rmdir_wait "$d"; done
	ip link del "$vh" 2>/dev/null
	ip link del "$br" 2>/dev/null
	ip link del "$dm" 2>/dev/null
	rm -rf "$ctl"
}
trap cleanup EXIT
wait_for() { local i; for ((i = 0; i < $2; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
fail() { echo "FAIL container-net $MODE: $*"; exit 1; }
# One request from this host: the server's reply line.
ask() {
	python3 - "$1" "$port" <<'EOF'
import socket, sys, time
end = time.time() + 5
while True:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
        s.sendall(b"ping\n")
        print(s.makefile().readline().strip())
        break
    except OSError as e:
        if time.time() > end:
            print("no answer: %s" % e)
            break
        time.sleep(0.1)
EOF
}
# The container's network as `ip` shows it inside (kernel-made link-local lines aside).
shownet() {
	nsenter -t "$1" -n sh -c 'ip -o link show; ip -o addr show; ip route show; ip -6 route show' |
		sed -e 's/^[0-9]*: //' -e 's/@if[0-9]*//' -e 's/ link-netnsid [0-9]*//' -e 's/ *valid_lft.*//' -e 's/ qdisc [a-z_]*//' \
			-e 's/ state [A-Z]*//' -e 's/ qlen [0-9]*//' -e 's/ mode DEFAULT//' -e 's/ group default//' | grep -v 'fe80::' | sort
}

ip link add "$br" address 02:00:00:00:01:01 type bridge && ip addr add "$gw4/24" dev "$br" && ip addr add "$gw6/64" dev "$br" nodad &&
	ip link set "$br" up || fail "cannot make bridge $br"
inner="hostname ctnet-$$ && ip link set lo up && cut -d\" \" -f4 /proc/self/stat > $ctl/ctpid.tmp && mv $ctl/ctpid.tmp $ctl/ctpid &&
	while [ ! -e $ctl/netok ]; do sleep 0.05; done && exec $bin $ctl $port"
python3 "$here/launch.py" /bin/sh -c "exec unshare --pid --mount --uts --ipc --net --fork /bin/sh -c '$inner'" &
launcher=$!
wait_for "$ctl/ctpid" 100 || fail "the container did not start"
ct="$(cat "$ctl/ctpid")"
ip link add "$vh" type veth peer name eth0 netns "$ct" && ip link set "$vh" master "$br" up &&
	nsenter -t "$ct" -n sh -c "ip link set eth0 address $mac mtu 1400 && ip addr add $ip4/24 dev eth0 &&
		ip -6 addr add $ip6/64 dev eth0 nodad && ip link set eth0 up && ip route add default via $gw4 &&
		ip -6 route add default via $gw6" || fail "cannot set up the container's veth"
touch "$ctl/netok"
wait_for "$ctl/ready" 100 || fail "no ready within 10 s"
pid="$ct"
r="$(ask "$ip4")"
[ "$r" = "pong 1" ] || fail "before checkpoint, $ip4:$port answered \"$r\", not pong 1"
before="$(shownet "$pid")"

if [ "$MODE" = migrate ]; then
	sock="$ctl/serve.sock"
	"$FERRY" serve --listen "unix:$sock" --bridge "$br" --new-pidns --once >"$ctl/serve.log" 2>&1 &
	serve=$!
	wait_for "$sock" 100 || fail "serve did not listen: $(cat "$ctl/serve.log")"
	t0=$(date +%s%N)
	out="$("$FERRY" migrate "$pid" --to "unix:$sock" 2>&1)" || fail "migrate: $out ($(cat "$ctl/serve.log"))"
	t1=$(date +%s%N)
	{ wait "$launcher"; } 2>/dev/null
	launcher=""
	wait "$serve"
	serve=""
	log="$(cat "$ctl/serve.log")"
	restored="$(echo "$log" | sed -n 's/.*running as pid \([0-9]*\).*/\1/p')"
	nsinit="$(echo "$log" | sed -n 's/.*running as pid [0-9]* (namespace init \([0-9]*\)).*/\1/p')"
	[ -n "$restored" ] || fail "serve printed no pid: $log"
	for i in $(seq 50); do ip link show "$vh" >/dev/null 2>&1 || break; sleep 0.1; done
	ip link show "$vh" >/dev/null 2>&1 && fail "the source's host end $vh outlived the migrated container"
	ports="$(ip -o link show master "$br")"
	[ "$(echo "$ports" | grep -c .)" = 1 ] && echo "$ports" | grep -q ',UP' || fail "the bridge should have the target's host end as its one port, up: $ports"
	timing="migrate $(((t1 - t0) / 1000000)) ms ($(echo "$out" | grep -o 'downtime[^,]*' | head -1))"
else
	t0=$(date +%s%N)
	out="$("$FERRY" checkpoint "$pid" -o "$img" 2>&1)" || fail "checkpoint: $out"
	t1=$(date +%s%N)
	{ wait "$launcher"; } 2>/dev/null
	launcher=""
	for i in $(seq 50); do ip link show "$vh" >/dev/null 2>&1 || break; sleep 0.1; done
	ip link show "$vh" >/dev/null 2>&1 && fail "the host end $vh outlived the checkpointed container"
	inspect="$("$FERRY" inspect "$img" 2>&1)" || fail "inspect: $inspect"
	echo "$inspect" | grep -q "interface: eth0 veth up mac $mac mtu 1400 $ip4/24 $ip6/64 (host end $vh on bridge $br)" ||
		fail "inspect shows no eth0 as it was: $inspect"
	echo "$inspect" | grep -q "route: default via $gw4 dev eth0" || fail "inspect shows no default route: $inspect"

	# A stale neighbour entry, as a host that knew the container elsewhere has: the restore's gratuitous ARP must fix it.
	# (A second port, a veth pair of its own, keeps the bridge's carrier up: a carrier loss would flush the entry.)
	ip link add "$dm" type veth peer name "${dm}p" && ip link set "${dm}p" up && ip link set "$dm" master "$br" up || fail "cannot add a second port to $br"
	ip neigh replace "$ip4" lladdr 02:00:00:de:ad:01 dev "$br" nud stale || fail "cannot plant a stale neighbour entry"
	t2=$(date +%s%N)
	if [ "$MODE" = hook ]; then
		out="$("$FERRY" restore "$img" --net-hook "[ \"\$FERRY_CONTAINER_IF\" = eth0 ] && ip link set master $br up dev" 2>&1)" || fail "restore: $out"
		said="eth0's host end $vh was handed to --net-hook"
	else
		out="$("$FERRY" restore "$img" --bridge "$br" 2>&1)" || fail "restore: $out"
		said="eth0's host end $vh is attached to bridge $br"
	fi
	t3=$(date +%s%N)
	restored="$(echo "$out" | sed -n 's/^restored pid \([0-9]*\).*/\1/p')"
	nsinit="$(echo "$out" | sed -n 's/^restored pid [0-9]* (namespace init \([0-9]*\)).*/\1/p')"
	[ -n "$restored" ] || fail "restore printed no pid: $out"
	echo "$out" | grep -q "$said" || fail "restore did not say where the host end went: $out"
	for i in $(seq 20); do ip neigh show "$ip4" dev "$br" | grep -q "$mac" && break; sleep 0.05; done
	ip neigh show "$ip4" dev "$br" | grep -q "$mac" || fail "the restore did not announce $ip4 at $mac: $(ip neigh show "$ip4" dev "$br")"
	ip -o link show "$vh" | grep -q "master $br" || fail "the host end $vh is not on $br: $(ip -o link show "$vh" 2>&1)"
	timing="checkpoint $(((t1 - t0) / 1000000)) ms, restore $(((t3 - t2) / 1000000)) ms"
fi
newcgs="$(awk -F: '$2 != "" && $3 ~ /^\/ferry\/ct/ {print "/sys/fs/cgroup/" $2 $3}' "/proc/$restored/cgroup")"
[ "$(readlink /proc/$restored/ns/net)" != "$(readlink /proc/self/ns/net)" ] || fail "the restored process is in the host's network namespace"
after="$(shownet "$restored")"
[ "$after" = "$before" ] || fail "the container's network differs after restore: before [$(echo $before)] after [$(echo $after)]"
r="$(ask "$ip4")"
[ "$r" = "pong 2" ] || fail "after restore, $ip4:$port answered \"$r\", not pong 2"
r="$(ask "$ip6")"
[ "$r" = "pong 3" ] || fail "after restore, [$ip6]:$port answered \"$r\", not pong 3"

touch "$ctl/stop"
wait_for "$ctl/result" 100 || fail "no result (restored pid $restored $(kill -0 "$restored" 2>/dev/null && echo running || echo gone))"
res="$(head -n1 "$ctl/result")"
[ "$res" = PASS ] || fail "$res"
echo "PASS container-net $MODE: eth0 ($mac, mtu 1400, $ip4/24, $ip6/64, default routes) re-created on $br; the server answered at $ip4 and [$ip6] port $port after restore (pong 2, pong 3); $timing"
