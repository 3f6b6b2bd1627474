#!/bin/bash
# Live-migration benchmark: wl_anon_pattern of each size and dirty rate,
# migrated between two network namespaces (veth), pre-copy and stop-and-copy.
#   FERRY=.build/release/ferry WL=.build/workloads SIZES="256 1024" RATES="0 4 64" RUNS=1 bash bench/migrate_bench.sh
# Prints one line per run and a markdown table (median of the passing runs).
# A run counts only if the migrated workload verifies itself (PASS) on the
# target. Makes and removes its namespaces; leaves nothing running.
set -u
FERRY="$(realpath "${FERRY:-.build/release/ferry}")"
WL="$(realpath "${WL:-.build/workloads}")"
SIZES="${SIZES:-256 1024}" RATES="${RATES:-0 4 64}" RUNS="${RUNS:-1}"
LAUNCH="$(dirname "$(realpath "$0")")/../Tests/Workloads/launch.py"
SRC=ferry-bench-src-$$ DST=ferry-bench-dst-$$
out="$(mktemp -d /tmp/ferry-migbench.XXXXXX)"
started=()
cleanup() {
	for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null; done
	ip netns del "$SRC" 2>/dev/null; ip netns del "$DST" 2>/dev/null
	rm -rf "$out"
}
trap cleanup EXIT
ip netns add "$SRC"; ip netns add "$DST"
ip link add vs$$ netns "$SRC" type veth peer name vd$$ netns "$DST"
ip -n "$SRC" addr add 10.77.0.1/24 dev vs$$; ip -n "$DST" addr add 10.77.0.2/24 dev vd$$
ip -n "$SRC" link set vs$$ up; ip -n "$DST" link set vd$$ up
ip -n "$SRC" link set lo up; ip -n "$DST" link set lo up
cat >"$out/summary.py" <<'PY'
import json, statistics, sys
size, rate, mode, runs = sys.argv[1:5]
rs = [json.loads(line) for line in sys.stdin if line.strip()]
def m(k):
    return statistics.median(r[k] for r in rs)
print(f"| {size} | {rate} | {mode} | {len(rs)}/{runs} | {m('downtime_ms'):.0f} | {m('total_ms'):.0f} | "
      f"{m('bytes') / 1048576:.0f} | {m('rounds'):.0f} | {m('rss_src') / 1024:.0f} / {m('rss_dst') / 1024:.0f} |")
PY
wait_for() { for _ in $(seq "$2"); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

echo "ferry: $FERRY   sizes (MiB): $SIZES   dirty rates (MiB/s): $RATES   runs: $RUNS"
rows=()
for size in $SIZES; do
	for rate in $RATES; do
		for mode in precopy stop-and-copy; do
			flag=""; [ "$mode" = stop-and-copy ] && flag=--no-precopy
			res=()
			for ((i = 1; i <= RUNS; i++)); do
				ctl="$out/$size-$rate-$mode-$i"; mkdir -p "$ctl"
				ip netns exec "$DST" /usr/bin/time -f %M -o "$ctl/serve.rss" "$FERRY" serve --listen 10.77.0.2:7071 --insecure --new-pidns --once >"$ctl/serve.log" 2>&1 &
				serve=$!
				wait_for_log() { for _ in $(seq 100); do grep -q listening "$ctl/serve.log" && return 0; sleep 0.1; done; return 1; }
				wait_for_log
				pid="$(ip netns exec "$SRC" python3 "$LAUNCH" "$WL/wl_anon_pattern" "$ctl" "$size" "$rate" & echo $!)"
				started+=("$pid" "$serve")
				wait_for "$ctl/ready" 600 || { echo "  $size MiB $rate MiB/s $mode: no ready"; continue; }
				sleep 1
				json="$(ip netns exec "$SRC" /usr/bin/time -f %M -o "$ctl/migrate.rss" "$FERRY" migrate "$pid" --to 10.77.0.2:7071 --insecure --json $flag 2>"$ctl/err")"
				wait "$serve" 2>/dev/null
				sleep 0.5
				touch "$ctl/stop"
				if ! wait_for "$ctl/result" 600; then verdict="no result"; else verdict="$(head -n1 "$ctl/result")"; fi
				tpid="$(echo "$json" | sed -n 's/.*"target_pid":\([0-9]*\).*/\1/p')"
				kill -9 "$pid" $tpid 2>/dev/null
				echo "  $size MiB  $rate MiB/s  $mode  run $i: $verdict  $json $(tr '\n' ' ' <"$ctl/err")"
				rss="$(tail -n1 "$ctl/migrate.rss" 2>/dev/null)/$(tail -n1 "$ctl/serve.rss" 2>/dev/null)"
				echo "    peak RSS KiB migrate/serve: $rss"
				[ -z "$json" ] && sed 's/^/    serve: /' "$ctl/serve.log"
				[ -n "$json" ] && [ "$verdict" = PASS ] && res+=("${json%\}},\"rss_src\":$(tail -n1 "$ctl/migrate.rss"),\"rss_dst\":$(tail -n1 "$ctl/serve.rss")}")
			done
			if [ ${#res[@]} -gt 0 ] && [ -n "${res[0]}" ]; then
				rows+=("$(printf '%s\n' "${res[@]}" | python3 "$out/summary.py" "$size" "$rate" "$mode" "$RUNS")")
			else
				rows+=("| $size | $rate | $mode | 0/$RUNS | – | – | – | – | – |")
			fi
		done
	done
done
echo
echo "| MiB | dirty MiB/s | mode | PASS | downtime ms | total ms | MiB sent | rounds | peak RSS MiB migrate / serve |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
