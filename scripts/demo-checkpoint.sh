#!/bin/bash
# `make demo`: checkpoint a running self-checking program, show the image,
# restore it, and show that it continues and that its state is intact.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=.build/debug/ferry
OUT=.build/workloads
make -s -C Tests/Workloads OUT="$PWD/$OUT"
ctl="$(mktemp -d /tmp/ferry-demo.XXXXXX)"
trap 'kill -9 ${pid:-} ${restored:-} 2>/dev/null; rm -rf "$ctl"' EXIT
wait_for() { for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

echo "== starting a demo workload: a process with 4 threads, each with its own TLS value and counter"
"$OUT/wl_threads_tls" "$ctl" </dev/null >/dev/null 2>&1 & pid=$!
wait_for "$ctl/ready"
echo "   pid $pid is running"
sleep 0.5
echo "== ferry checkpoint $pid -o $ctl/image"
$FERRY checkpoint "$pid" -o "$ctl/image"
wait "$pid" 2>/dev/null || true
pid=
echo "== ferry inspect $ctl/image (first lines)"
$FERRY inspect "$ctl/image" >"$ctl/inspect.txt"
head -n 25 "$ctl/inspect.txt"
echo "== ferry restore $ctl/image"
line="$($FERRY restore "$ctl/image")"
echo "   $line"
restored="$(echo "$line" | sed -n 's/^restored pid \([0-9]*\).*/\1/p')"
sleep 1
echo "== the restored process keeps running:"
ps -o pid,stat,nlwp,time,cmd -p "$restored"
touch "$ctl/stop"
wait_for "$ctl/result"
echo "== its own verdict after restore: $(cat "$ctl/result")"
grep -q PASS "$ctl/result"
