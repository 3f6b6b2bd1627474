#!/bin/bash
# Freeze time of pre-copy against stop-and-copy for a process holding a pipe
# and for a tree: wl_precopy_tree (MiB in total, dirty MiB/s, children; with
# no children the process's stdout is a pipe it also reads), migrated on
# this host over a Unix socket to `ferry serve --new-pidns`.
#   FERRY=.build/release/ferry WL=.build/workloads CASES="1024:4:0 1024:4:2" RUNS=3 bash bench/tree_bench.sh
# Prints one JSON summary per run (with "case", "mode" and the workload's
# verdict after the move) and a markdown table of medians. Leaves nothing running.
set -u
HERE="$(dirname "$(realpath "$0")")"
if [ -z "${FERRY_BENCH_REAPED:-}" ]; then
	FERRY_BENCH_REAPED=1 exec python3 "$HERE/../Tests/Workloads/reaper.py" bash "$(realpath "$0")" "$@"
fi
FERRY="$(realpath "${FERRY:-.build/release/ferry}")"
WL="$(realpath "${WL:-.build/workloads}")"
CASES="${CASES:-1024:4:0 1024:4:2}" RUNS="${RUNS:-1}"
LAUNCH="$HERE/../Tests/Workloads/launch.py"
out="$(mktemp -d /tmp/ferry-treebench.XXXXXX)"
sock="$out/serve.sock"
"$FERRY" serve --listen "unix:$sock" --new-pidns >"$out/serve.log" 2>&1 &
serve=$!
cleanup() {
	kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null
	for d in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -- "$out/" && kill -9 "${d#/proc/}" 2>/dev/null
	done
	rm -rf "$out"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
wait_for() { for _ in $(seq "$2"); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
n=0
for c in $CASES; do
	IFS=: read -r mib rate kids <<<"$c"
	for mode in precopy stop-and-copy; do
		for r in $(seq "$RUNS"); do
			n=$((n + 1)); ctl="$out/w$n"; mkdir -p "$ctl"
			(python3 "$LAUNCH" "$WL/wl_precopy_tree" "$ctl" "$mib" "$rate" "$kids" </dev/null >/dev/null 2>&1 &)
			wait_for "$ctl/ready" 600 || { echo "FAIL: workload not ready"; continue; }
			sleep 2
			pid="$(tr -d ' \n' <"$ctl/ready")"
			extra=(); [ "$mode" = stop-and-copy ] && extra=(--no-precopy)
			json="$("$FERRY" migrate "$pid" --to "unix:$sock" --json "${extra[@]}" 2>"$ctl/migrate.err" | tail -n1)"
			sleep 0.5
			touch "$ctl/stop"
			wait_for "$ctl/result" 300
			verdict="$(cat "$ctl/result" 2>/dev/null || echo "no result: $(cat "$ctl/migrate.err")")"
			echo "{\"case\":\"$c\",\"mode\":\"$mode\",\"verdict\":\"$(echo "$verdict" | tr -d '\n"')\",\"summary\":${json:-null}}" | tee -a "$out/runs.jsonl"
		done
	done
done
echo "| MiB:dirty MiB/s:children | mode | passing runs | freeze (downtime) ms | start of tracking ms | total ms | rounds |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
python3 - "$out/runs.jsonl" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["case"], r["mode"]), []).append(r)
for (case, mode), rs in rows.items():
    ok = [r["summary"] for r in rs if r["verdict"] == "PASS" and r["summary"]]
    if not ok:
        print(f"| {case} | {mode} | 0/{len(rs)} | | | | |"); continue
    m = lambda k: statistics.median(s[k] for s in ok)
    print(f"| {case} | {mode} | {len(ok)}/{len(rs)} | {m('downtime_ms'):.1f} | {m('precopy_freeze_ms'):.1f} | {m('total_ms'):.0f} | {m('rounds'):.0f} |")
PY
