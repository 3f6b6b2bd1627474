#!/bin/bash
# `make demo`: live migration between two "hosts" — network namespaces joined
# by a veth pair. A self-checking workload starts on the source, `ferry serve`
# (mutual TLS) receives it on the target, `ferry migrate` moves it; it keeps
# running there and checks its own state. (The checkpoint/restore demo is
# scripts/demo-checkpoint.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY="$PWD/.build/debug/ferry"
OUT=.build/workloads
make -s -C Tests/Workloads OUT="$PWD/$OUT"
tag=$$
SRC=ferry-demo-src-$tag DST=ferry-demo-dst-$tag
ctl="$(mktemp -d /tmp/ferry-demo.XXXXXX)"
cleanup() {
	[ -n "${serve:-}" ] && kill "$serve" 2>/dev/null
	for p in $(pgrep -f "wl_threads_tls $ctl" || true); do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$SRC" 2>/dev/null || true
	ip netns del "$DST" 2>/dev/null || true
	rm -rf "$ctl"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

echo "== two hosts: network namespaces $SRC (10.77.0.1) and $DST (10.77.0.2), joined by a veth pair"
ip netns add "$SRC"; ip netns add "$DST"
ip link add vsrc$tag netns "$SRC" type veth peer name vdst$tag netns "$DST"
ip -n "$SRC" addr add 10.77.0.1/24 dev vsrc$tag; ip -n "$DST" addr add 10.77.0.2/24 dev vdst$tag
ip -n "$SRC" link set vsrc$tag up; ip -n "$DST" link set vdst$tag up
ip -n "$SRC" link set lo up; ip -n "$DST" link set lo up

echo "== certificates for mutual TLS (a throwaway CA)"
pki="$ctl/pki"; mkdir "$pki"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 1 -subj "/CN=ferry demo CA"
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' >"$pki/ext"
for h in source target; do
	ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/$h.key" -out "$pki/$h.csr" -subj "/CN=$h"
	ossl x509 -req -in "$pki/$h.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/$h.pem" -days 1 -extfile "$pki/ext"
done
tls() { echo --cert "$pki/$1.pem" --key "$pki/$1.key" --ca "$pki/ca.pem"; }

echo "== target: ferry serve --listen 10.77.0.2:7070 $(tls target | sed "s|$pki/||g") --new-pidns --once"
# shellcheck disable=SC2046
ip netns exec "$DST" "$FERRY" serve --listen 10.77.0.2:7070 $(tls target) --new-pidns --once >"$ctl/serve.log" 2>&1 &
serve=$!
wait_for_line() { for _ in $(seq 100); do grep -q "$2" "$1" && return 0; sleep 0.1; done; cat "$1"; exit 1; }
wait_for_line "$ctl/serve.log" "listening on"
sed 's/^/   target: /' "$ctl/serve.log"

echo "== source: a workload with 4 threads, each with its own TLS value and counter"
# A subshell starts it, so it is not this shell's job (no "Killed" notice when migrate ends it).
pid="$(ip netns exec "$SRC" python3 Tests/Workloads/launch.py "$OUT/wl_threads_tls" "$ctl" & echo $!)"
wait_for "$ctl/ready"
sleep 0.5
ps -o pid,stat,nlwp,time,cmd -p "$pid"

echo "== source: ferry migrate $pid --to 10.77.0.2:7070 $(tls source | sed "s|$pki/||g")"
# shellcheck disable=SC2046
ip netns exec "$SRC" "$FERRY" migrate "$pid" --to 10.77.0.2:7070 $(tls source)
wait "$serve" 2>/dev/null || true
serve=
sed 's/^/   target: /' "$ctl/serve.log" | tail -n +2
alive() { ps -p "$1" -o stat= 2>/dev/null | grep -qv Z; }
for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
echo "== the source process $pid is gone: $(alive "$pid" && echo "no, still running!" || echo "yes")"
sleep 1
echo "== on the target it keeps running (in its own pid namespace):"
ps -o pid,stat,nlwp,time,cmd -p "$(pgrep -f "wl_threads_tls $ctl")"
touch "$ctl/stop"
wait_for "$ctl/result"
echo "== its own verdict after the migration: $(cat "$ctl/result")"
grep -q PASS "$ctl/result"
