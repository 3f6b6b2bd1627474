#!/bin/bash
# Live-migration benchmark: wl_anon_pattern of each size and dirty rate,
# migrated between two network namespaces (veth), pre-copy and stop-and-copy;
# with CRIU=/path/to/criu also CRIU's modes on the same workloads in the same
# run: `criu dump --page-server` to a `criu page-server` in the target
# namespace + `criu restore`, and lazy pages (`criu dump --lazy-pages`,
# `criu lazy-pages`, `criu restore --lazy-pages`).
#   FERRY=.build/release/ferry WL=.build/workloads SIZES="256 1024" RATES="0 4 64" RUNS=3 CRIU=/tmp/criu-peer/criu bash bench/migrate_bench.sh
# Prints one line per run and a markdown table (median of the passing runs).
# A run counts only if the migrated workload verifies itself (PASS) on the
# target. Makes and removes its namespaces; leaves nothing running.
set -u
HERE="$(dirname "$(realpath "$0")")"
# Under a child subreaper: killed sources and CRIU's restored trees are
# reaped at once (this sandbox's init is slow, and CRIU needs the pids).
if [ -z "${FERRY_BENCH_REAPED:-}" ]; then
	FERRY_BENCH_REAPED=1 exec python3 "$HERE/../Tests/Workloads/reaper.py" bash "$(realpath "$0")" "$@"
fi
FERRY="$(realpath "${FERRY:-.build/release/ferry}")"
WL="$(realpath "${WL:-.build/workloads}")"
SIZES="${SIZES:-256 1024}" RATES="${RATES:-0 4 64}" RUNS="${RUNS:-1}" CRIU="${CRIU:-}"
LAUNCH="$HERE/../Tests/Workloads/launch.py"
SRC=ferry-bench-src-$$ DST=ferry-bench-dst-$$
out="$(mktemp -d /tmp/ferry-migbench.XXXXXX)"
started=()
cleanup() {
	for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in $(ctl_pids "$out/"); do kill -9 "$p" 2>/dev/null; done
	ip netns del "$SRC" 2>/dev/null; ip netns del "$DST" 2>/dev/null
	rm -rf "$out"
}
# Pids whose command line holds $1 (a control directory of this run).
ctl_pids() {
	local d
	for d in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -- "$1" && echo "${d#/proc/}"
	done
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
start = f"{m('precopy_freeze_ms'):.0f}" if all('precopy_freeze_ms' in r for r in rs) else "–"
print(f"| {size} | {rate} | {mode} | {len(rs)}/{runs} | {m('downtime_ms'):.0f} | {start} | {m('total_ms'):.0f} | "
      f"{m('bytes') / 1048576:.0f} | {m('rounds'):.0f} | {m('rss_src') / 1024:.0f} / {m('rss_dst') / 1024:.0f} |")
PY
# Median of each downtime phase over the runs of one configuration.
cat >"$out/phases.py" <<'PY'
import json, statistics, sys
size, rate = sys.argv[1:3]
rs = [json.loads(line) for line in sys.stdin if line.strip()]
def split(key):
    names = []
    for r in rs:
        for n, _ in r.get(key, []):
            if n not in names: names.append(n)
    return ", ".join(f"{n} {statistics.median(dict(r.get(key, [])).get(n, 0) for r in rs):.1f}" for n in names)
print(f"| {size} | {rate} | {statistics.median(r['downtime_ms'] for r in rs):.1f} | {split('downtime_phases')} | {split('target_phases')} |")
PY
wait_for() { for _ in $(seq "$2"); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# CRIU side by side. This kernel has no soft-dirty, so CRIU has no pre-copy
# here: its downtime is the whole freeze → running on the target. The
# workload runs as the init of its own pid namespace (so the restored copy
# gets its pids even while a lazy-pages source still exists), started with
# nsenter --net only (`ip netns exec` would also give it a mount namespace of
# its own, which CRIU would have to dump). Times: page-server mode,
# downtime = CRIU's own "Frozen time" (freeze → dump done) + copying the
# non-page images + `criu restore -d` (returns once the tree runs); total =
# dump start → restore returned. Lazy pages: downtime = dump start → restore
# returned (includes CRIU's few ms before the freeze: an upper bound); total
# = until every page has moved (dump and lazy-pages daemon exited).
criu_one() {   # criu_one MODE SIZE RATE CTL  → prints a JSON line or FAIL: …
	local mode=$1 size=$2 rate=$3 ctl=$4 port=7082
	mkdir -p "$ctl/s" "$ctl/t"
	local ns_src="--net=/run/netns/$SRC" ns_dst="--net=/run/netns/$DST"
	local init
	init="$(nsenter "$ns_src" unshare --pid --fork setsid python3 "$LAUNCH" "$WL/wl_anon_pattern" "$ctl" "$size" "$rate" </dev/null >/dev/null 2>&1 & echo $!)"
	wait_for "$ctl/ready" 600 || { echo "FAIL: workload not ready"; return; }
	sleep 1
	local pid
	pid="$(tr -d ' \n' <"/proc/$init/task/$init/children")"
	local t0 t1 t2 t3 frozen rc
	if [ "$mode" = page-server ]; then
		nsenter "$ns_dst" /usr/bin/time -f %M -o "$ctl/ps.rss" "$CRIU" page-server -D "$ctl/t" --address 10.77.0.2 --port $port -o ps.log >"$ctl/ps.out" 2>&1 &
		local ps=$!
		for _ in $(seq 200); do nsenter "$ns_dst" ss -ltn 2>/dev/null | grep -q ":$port " && break; sleep 0.01; done
		t0=$(date +%s%N)
		nsenter "$ns_src" /usr/bin/time -f %M -o "$ctl/dump.rss" "$CRIU" dump -t "$pid" -D "$ctl/s" --page-server --address 10.77.0.2 --port $port --display-stats -o dump.log >"$ctl/dump.out" 2>&1
		rc=$?; t1=$(date +%s%N)
		wait $ps
		if [ $rc != 0 ]; then echo "FAIL: criu dump --page-server rc $rc: $(grep -h Error "$ctl/s/dump.log" | grep -v RLIMIT_NOFILE | tail -n2 | tr '\n' ' ')"; kill -9 "$init" "$pid" 2>/dev/null; return; fi
		cp "$ctl/s/"*.img "$ctl/t/"
		nsenter "$ns_dst" /usr/bin/time -f %M -o "$ctl/rst.rss" "$CRIU" restore -D "$ctl/t" -d -o restore.log >"$ctl/rst.out" 2>&1
		rc=$?; t2=$(date +%s%N); t3=$t2
		frozen=$(sed -n 's/^Frozen time: \([0-9]*\) us/\1/p' "$ctl/dump.out")
		[ -z "$frozen" ] && frozen=$(( (t1 - t0) / 1000 ))
		if [ $rc != 0 ]; then echo "FAIL: criu restore rc $rc: $(grep -h Error "$ctl/t/restore.log" | grep -v RLIMIT_NOFILE | tail -n2 | tr '\n' ' ')"; return; fi
		local down=$(( frozen / 1000 + (t2 - t1) / 1000000 ))
		local src_rss dst_rss
		src_rss=$(tail -n1 "$ctl/dump.rss"); dst_rss=$(( $(tail -n1 "$ctl/ps.rss") > $(tail -n1 "$ctl/rst.rss") ? $(tail -n1 "$ctl/ps.rss") : $(tail -n1 "$ctl/rst.rss") ))
	else
		t0=$(date +%s%N)
		nsenter "$ns_src" /usr/bin/time -f %M -o "$ctl/dump.rss" "$CRIU" dump -t "$pid" -D "$ctl/s" --lazy-pages --address 10.77.0.1 --port $port --display-stats -o dump.log >"$ctl/dump.out" 2>&1 &
		local dump=$!
		for _ in $(seq 6000); do
			nsenter "$ns_src" ss -ltn 2>/dev/null | grep -q ":$port " && break
			kill -0 $dump 2>/dev/null || break
			sleep 0.005
		done
		if ! kill -0 $dump 2>/dev/null; then wait $dump; echo "FAIL: criu dump --lazy-pages rc $?: $(grep -h Error "$ctl/s/dump.log" | grep -v RLIMIT_NOFILE | tail -n2 | tr '\n' ' ')"; kill -9 "$init" "$pid" 2>/dev/null; return; fi
		t1=$(date +%s%N)
		cp "$ctl/s/"*.img "$ctl/t/"
		nsenter "$ns_dst" /usr/bin/time -f %M -o "$ctl/lazy.rss" "$CRIU" lazy-pages --page-server --address 10.77.0.1 --port $port -D "$ctl/t" -o lazy.log >"$ctl/lazy.out" 2>&1 &
		local lazy=$!
		for _ in $(seq 2000); do [ -S "$ctl/t/lazy-pages.socket" ] && break; kill -0 $lazy 2>/dev/null || break; sleep 0.005; done
		nsenter "$ns_dst" /usr/bin/time -f %M -o "$ctl/rst.rss" "$CRIU" restore -D "$ctl/t" --lazy-pages -d -o restore.log >"$ctl/rst.out" 2>&1
		rc=$?; t2=$(date +%s%N)
		if [ $rc != 0 ]; then
			echo "FAIL: criu restore --lazy-pages rc $rc: $(grep -h Error "$ctl/t/restore.log" "$ctl/t/lazy.log" "$ctl/s/dump.log" | grep -v RLIMIT_NOFILE | tail -n4 | tr '\n' ' ')"
			[ -n "${CRIU_LOGS:-}" ] && mkdir -p "$CRIU_LOGS" && cp "$ctl/t/restore.log" "$ctl/t/lazy.log" "$ctl/s/dump.log" "$CRIU_LOGS/"
			kill -9 $dump $lazy "$init" "$pid" 2>/dev/null; return
		fi
		timeout 120 tail --pid=$dump -f /dev/null; timeout 30 tail --pid=$lazy -f /dev/null
		t3=$(date +%s%N)
		local down=$(( (t2 - t0) / 1000000 ))
		local src_rss dst_rss
		src_rss=$(tail -n1 "$ctl/dump.rss" 2>/dev/null || echo 0); dst_rss=$(( $(tail -n1 "$ctl/lazy.rss" 2>/dev/null || echo 0) > $(tail -n1 "$ctl/rst.rss") ? $(tail -n1 "$ctl/lazy.rss" 2>/dev/null || echo 0) : $(tail -n1 "$ctl/rst.rss") ))
	fi
	kill -9 "$init" 2>/dev/null   # the source's pid-namespace holder (its init is gone or a zombie)
	sleep 0.5
	touch "$ctl/stop"
	local verdict="no result"
	wait_for "$ctl/result" 600 && verdict="$(head -n1 "$ctl/result")"
	for p in $(ctl_pids "$ctl"); do kill -9 "$p" 2>/dev/null; done
	if [ "$verdict" != PASS ]; then echo "FAIL: on the target: $verdict"; return; fi
	echo "{\"downtime_ms\":$down,\"total_ms\":$(( (t3 - t0) / 1000000 )),\"bytes\":$(( size * 1048576 )),\"rounds\":1,\"rss_src\":$src_rss,\"rss_dst\":$dst_rss}"
}

criu_bench() {
	echo
	echo "CRIU: $CRIU ($("$CRIU" --version 2>/dev/null | head -n1)); no soft-dirty on this kernel: no pre-copy, downtime = freeze → running on the target"
	local crows=()
	for size in $SIZES; do
		for rate in $RATES; do
			for mode in page-server lazy-pages; do
				local res=() i
				for ((i = 1; i <= RUNS; i++)); do
					local ctl="$out/criu-$size-$rate-$mode-$i"
					local line
					line="$(criu_one $mode $size $rate "$ctl")"
					echo "  criu $mode $size MiB $rate MiB/s run $i: $line"
					case "$line" in \{*) res+=("$line") ;; esac
				done
				if [ ${#res[@]} -gt 0 ]; then
					crows+=("$(printf '%s\n' "${res[@]}" | python3 "$out/summary.py" "$size" "$rate" "criu $mode" "$RUNS")")
				else
					crows+=("| $size | $rate | criu $mode | 0/$RUNS | – | – | – | – | – | – |")
				fi
			done
		done
	done
	echo
	echo "| MiB | dirty MiB/s | mode | PASS | downtime ms | start freeze ms | total ms | MiB sent | rounds | peak RSS MiB source / target |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	printf '%s\n' "${rows[@]}" "${crows[@]}" | sort -t'|' -k2,2n -k3,3n -s
}

echo "ferry: $FERRY   sizes (MiB): $SIZES   dirty rates (MiB/s): $RATES   runs: $RUNS   $(date -u '+%F %T UTC')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)   CPUs: $(nproc)"
rows=() splits=()
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
				[ "$mode" = precopy ] && splits+=("$(printf '%s\n' "${res[@]}" | python3 "$out/phases.py" "$size" "$rate")")
			else
				rows+=("| $size | $rate | $mode | 0/$RUNS | – | – | – | – | – | – |")
			fi
		done
	done
done
echo
echo "| MiB | dirty MiB/s | mode | PASS | downtime ms | start freeze ms | total ms | MiB sent | rounds | peak RSS MiB migrate / serve |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
echo "Pre-copy downtime split (medians, ms): source from the freeze to the ACK; target from the first byte of the final image to the ACK"
echo
echo "| MiB | dirty MiB/s | downtime | source phases | target phases |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${splits[@]}"
[ -n "$CRIU" ] && criu_bench
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
