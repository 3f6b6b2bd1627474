#!/bin/bash
# Image size and restore time of a tree whose child shares PAGES pages of
# private memory copy-on-write with its parent (wl_cow_tree PAGES 0: none
# rewritten after the fork), checkpointed with copy-on-write sharing (the
# default) and with --no-cow-sharing (every process's pages stored, the
# restore's behaviour before sharing was kept). Each run checks the
# workload's verdict after the restore (frames shared or not, contents).
#   FERRY=.build/release/ferry WL=.build/workloads PAGES=65536 RUNS=3 bash bench/cow_bench.sh
# Prints one line per run and a markdown table of medians. Leaves nothing running.
set -u
HERE="$(dirname "$(realpath "$0")")"
if [ -z "${FERRY_BENCH_REAPED:-}" ]; then
	FERRY_BENCH_REAPED=1 exec python3 "$HERE/../Tests/Workloads/reaper.py" bash "$(realpath "$0")" "$@"
fi
FERRY="$(realpath "${FERRY:-.build/release/ferry}")"
WL="$(realpath "${WL:-.build/workloads}")"
PAGES="${PAGES:-65536}" RUNS="${RUNS:-3}"
LAUNCH="$HERE/../Tests/Workloads/launch.py"
out="$(mktemp -d /tmp/ferry-cowbench.XXXXXX)"
cleanup() {
	for d in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -- "$out/" && kill -9 "${d#/proc/}" 2>/dev/null
	done
	rm -rf "$out"
}
trap cleanup EXIT
wait_for() { for _ in $(seq "$2"); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
now() { date +%s.%N; }
n=0
for mode in shared no-cow-sharing; do
	for r in $(seq "$RUNS"); do
		n=$((n + 1)); ctl="$out/w$n"; mkdir -p "$ctl"
		# With --no-cow-sharing the frames are not shared after the restore: only contents are checked.
		frames=1; extra=(); [ "$mode" = no-cow-sharing ] && { frames=0; extra=(--no-cow-sharing); }
		python3 "$LAUNCH" "$WL/wl_cow_tree" "$ctl" "$PAGES" 0 "$frames" </dev/null >/dev/null 2>&1 &
		launcher=$!
		wait_for "$ctl/ready" 600 || { echo "FAIL: workload not ready"; continue; }
		pid="$(tr -d ' \n' <"$ctl/ready")"
		"$FERRY" checkpoint "$pid" -o "$ctl/img" "${extra[@]}" >/dev/null 2>"$ctl/ckpt.err" || { echo "FAIL: checkpoint: $(tail -n1 "$ctl/ckpt.err")"; continue; }
		wait "$launcher" 2>/dev/null
		size=$(stat -c %s "$ctl/img/pages.img")
		t0=$(now)
		"$FERRY" restore "$ctl/img" >/dev/null 2>"$ctl/restore.err" || { echo "FAIL: restore: $(tail -n1 "$ctl/restore.err")"; continue; }
		t1=$(now)
		touch "$ctl/stop"
		wait_for "$ctl/result" 300
		verdict="$(head -n1 "$ctl/result" 2>/dev/null || echo "no result")"
		printf '%s run %d: pages.img %d bytes, restore %.3f s, %s\n' "$mode" "$r" "$size" "$(echo "$t1 - $t0" | bc)" "$verdict" | tee -a "$out/runs.txt"
		rm -rf "$ctl/img"
	done
done
echo
python3 - "$out/runs.txt" "$RUNS" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) run \d+: pages.img (\d+) bytes, restore ([\d.]+) s", line)
    if m:
        rows.setdefault(m[1], []).append((int(m[2]), float(m[3])))
print(f"| mode | pages.img (MiB) | restore (s, median of {sys.argv[2]}) |")
print("| --- | --- | --- |")
for mode, runs in rows.items():
    print(f"| {mode} | {runs[0][0] / 1048576:.1f} | {statistics.median(t for _, t in runs):.3f} |")
PY
