#!/bin/bash
# Builds every workload and runs each without any checkpoint:
# start -> wait for ready (10 s) -> sleep 0.5 s -> touch stop -> wait for
# result (10 s). Prints a table and "N passed, M failed"; exits 1 on failure.
#   Tests/Workloads/run_plain.sh [OUT] [NAME...]
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$(realpath -m "${1:-$HERE/../../.build/workloads}")"
shift $(( $# > 0 ? 1 : 0 ))
make -s -C "$HERE" OUT="$OUT" || { echo "build failed"; exit 1; }

# name and extra arguments; a name may appear twice with other arguments.
CASES=(
	"anon_pattern" "anon_pattern 256 32"
	"heap_grow" "file_map_private" "file_map_shared" "mprotect"
	"threads_tls" "fork_pipe" "append_log" "pipe_inflight" "signals"
	"sigaltstack" "sleep_syscall" "fpu_regs" "rseq_cpu" "getpid_same"
	"cmdline_same" "itimer" "stack_pointers" "clock_loop" "python_loop"
)
[ $# -gt 0 ] && CASES=("$@")

wait_for() { # file, timeout in tenths of a second
	local i
	for ((i = 0; i < $2; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}

pass=0 fail=0
printf '%-28s %-8s %6s %s\n' WORKLOAD STATUS TIME DETAIL
for c in "${CASES[@]}"; do
	read -r name args <<<"$c"
	bin="$OUT/wl_$name"
	[ "$name" = python_loop ] && bin="$OUT/wl_python_loop.py"
	ctl="$(mktemp -d /tmp/wl_ctl.XXXXXX)"
	start=$(date +%s%N)
	# shellcheck disable=SC2086
	"$bin" "$ctl" $args >"$ctl/log" 2>&1 </dev/null &
	pid=$!
	status=PASS detail=""
	if ! wait_for "$ctl/ready" 100; then
		status=FAIL detail="no ready within 10 s"
	else
		[ "$(tr -d '\n' <"$ctl/ready")" = "$pid" ] || { status=FAIL; detail="ready pid mismatch"; }
		sleep 0.5
		touch "$ctl/stop"
		if ! wait_for "$ctl/result" 100; then
			status=FAIL detail="no result within 10 s"
		fi
	fi
	if [ -e "$ctl/result" ]; then
		res="$(head -n1 "$ctl/result")"
		wait "$pid"; rc=$?
		if [ "$res" != PASS ]; then status=FAIL detail="$res"
		elif [ $rc -ne 0 ]; then status=FAIL detail="result PASS but exit status $rc"
		fi
	else
		kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
	fi
	secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	printf '%-28s %-8s %5ss %s\n' "$c" "$status" "$secs" "$detail"
	if [ $status = PASS ]; then pass=$((pass + 1)); rm -rf "$ctl"
	else fail=$((fail + 1)); echo "  (control dir kept: $ctl)"; fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
