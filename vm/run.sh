#!/bin/bash
# vm/run.sh: migrate self-checking workloads between this host and qemu
# guests running another kernel (Debian 12's 6.1) and another CPU model, and
# print a table: crossing, workload, result, downtime.
#
#   FERRY=.build/release/ferry vm/run.sh          (make vm-test does this)
#
# Guests (TCG; KVM here is KVM-PVM, which hangs a normal guest):
#   A  -cpu $VM_CPU_A (default max,-pku,-mpx: AVX/AVX2, XCR0 0x7 like the
#      host; plain max adds PKRU and MPX to XCR0, which this host lacks)
#   B  -cpu $VM_CPU_B (default that without AVX and what needs it: XCR0 0x3)
# Each has a user-mode NIC (the agent, vm/guest/agent.c, behind a hostfwd on
# 127.0.0.1) and both share a second NIC, a qemu socket link on 127.0.0.1,
# for guest-to-guest streams.  Nothing leaves this machine.
#
# Transports: `cold` (checkpoint --stream - piped into restore --stream - on
# the other side) and `live` (ferry serve on the target, ferry migrate --json
# on the source, mutual TLS with a CA made for the run; pre-copy expected out
# of the host, the warned stop-and-copy fallback out of 6.1 guests).
#
# Environment: FERRY (required), VM_CASES (filter: a regex on "SRC DST
# WORKLOAD EXPECT", e.g. "^host A clock_loop pass$"), VM_GUESTS (A B),
# VM_REPEAT (1), VM_CPU_A, VM_CPU_B, VM_MEM (MiB, 1024), VM_BOOT_WAIT (s, 240),
# VM_CASE_WAIT (s, 120), VM_TRANSPORTS (cold live), VM_CONSOLE_TAIL (15),
# VM_KERNEL_PKG (build-guest.sh), FREEBSD_IMAGE (see vm/freebsd/).
# Logs: vm/logs/RUN/ (console-A.log, console-B.log, one log per case,
# results.txt).  Exit status: 0 when every case got its expected result.
set -uo pipefail
if [ -z "${FERRY_VM_REAPER:-}" ]; then
	# Restored processes on the host outlive their `ferry restore`; reap them.
	FERRY_VM_REAPER=1 exec python3 "$(dirname "$0")/../Tests/Workloads/reaper.py" bash "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
agentctl="python3 $here/agentctl.py"
launch="python3 $root/Tests/Workloads/launch.py"
cpu_a=${VM_CPU_A:-max,-pku,-mpx}
cpu_b=${VM_CPU_B:-max,-pku,-mpx,-avx,-avx2,-fma,-f16c,-vaes,-vpclmulqdq}
mem=${VM_MEM:-1024}
boot_wait=${VM_BOOT_WAIT:-240}
case_wait=${VM_CASE_WAIT:-120}
transports=${VM_TRANSPORTS:-cold live}
repeat=${VM_REPEAT:-1}
guests=${VM_GUESTS:-A B}
console_tail=${VM_CONSOLE_TAIL:-15}
run_id=$(date +%Y%m%d-%H%M%S)
logs=$here/logs/$run_id
mkdir -p "$logs"
t_start=$(date +%s)

die() { echo "vm/run: $*" >&2; exit 2; }
[ -n "${FERRY:-}" ] && [ -x "$FERRY" ] || die "FERRY must name a ferry binary (make vm-test builds one)"
FERRY=$(realpath "$FERRY")
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
[ "$(id -u)" = 0 ] || die "run as root (ferry needs ptrace and PR_SET_MM)"
for g in $guests; do [[ $g == [AB] ]] || die "VM_GUESTS: unknown guest '$g' (A, B or both)"; done
for t in $transports; do [[ $t == cold || $t == live ]] || die "VM_TRANSPORTS: unknown transport '$t' (cold, live)"; done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "VM_REPEAT must be a positive number (got '$repeat')"

# --- cleanup: every qemu we started, every process we launched or restored --
qemu_pids=()
host_pids=()
scratch=$(mktemp -d /tmp/ferry-vm.XXXXXX)
cleanup() {
	local p
	trap '' INT TERM  # a second signal (a group's, then the reaper's) must not cut the cleanup short
	for p in "${host_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${qemu_pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${qemu_pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$scratch" "/tmp/ferry-vm-$run_id"
	# Nothing of this run may be left: its qemus name this run's log directory.
	local left
	left=$(pgrep -f "$logs/console-" || true)
	if [ -n "$left" ]; then
		echo "vm/run: qemu still running after cleanup (pids $(echo $left)); killing" >&2
		kill -9 $left 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'echo "vm/run: interrupted; logs in $logs" >&2; exit 130' INT TERM

# --- FreeBSD: the same runner, when an image is given -----------------------
if [ -z "${FREEBSD_IMAGE:-}" ]; then
	freebsd_note="FreeBSD pair not run: FREEBSD_IMAGE is not set (vm/freebsd/README.md)"
else
	freebsd_note=""
fi

# --- the guest image ----------------------------------------------------------
echo "vm/run: building or reusing the guest image (vm/cache/)"
read -r kernel initrd < <(FERRY="$FERRY" "$here/build-guest.sh" 2>"$logs/build-guest.log") || true
[ -n "${initrd:-}" ] || die "$(tail -n1 "$logs/build-guest.log") (log: $logs/build-guest.log)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A port sport cpu ip2 qpid
boot() {  # NAME CPU LINK(listen|connect) LINKPORT IP2
	local name=$1 c=$2 mode=$3 lport=$4 addr=$5 p log mac pv=VM_PORT_$1
	p=${!pv:-$(free_port)}
	sport[$name]=$(free_port)  # the guest's `ferry serve` (7070) from the host
	log=$logs/console-$name.log
	mac=52:54:00:00:09:0$([ "$name" = A ] && echo 1 || echo 2)
	qemu-system-x86_64 -accel tcg -cpu "$c" -m "$mem" -smp 1 \
		-nodefaults -display none -no-reboot -serial "file:$log" \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 loglevel=4 ferry.ip2=$addr" \
		-netdev "user,id=n0,restrict=off,hostfwd=tcp:127.0.0.1:$p-:7000,hostfwd=tcp:127.0.0.1:${sport[$name]}-:7070" \
		-device e1000,netdev=n0,mac=52:54:00:12:34:5$([ "$name" = A ] && echo 1 || echo 2) \
		-netdev "socket,id=n1,$mode=127.0.0.1:$lport" -device e1000,netdev=n1,mac=$mac \
		</dev/null >"$logs/qemu-$name.log" 2>&1 &
	qpid[$name]=$!
	qemu_pids+=("$!")
	port[$name]=$p cpu[$name]=$c ip2[$name]=${addr%/*}
}
wait_boot() {  # NAME
	local name=$1 t0=$SECONDS
	while ! $agentctl "${port[$name]}" wait 3 >/dev/null 2>&1; do
		if ! kill -0 "${qpid[$name]}" 2>/dev/null; then
			wait "${qpid[$name]}"
			local st=$? why
			why=$(grep -h -m1 'Kernel panic' "$logs/console-$name.log" 2>/dev/null)
			[ -n "$why" ] || why=$(grep -hv '^[[:space:]]*$' "$logs/qemu-$name.log" "$logs/console-$name.log" 2>/dev/null | tail -n1)
			[ -n "$why" ] || why="nothing on the console (firmware or kernel loader failed: too little memory for the initramfs?)"
			echo "vm/run: guest $name: qemu exited (status $st) before the guest booted: $why (console log: $logs/console-$name.log)" >&2
			[ -s "$logs/console-$name.log" ] && tail -n "$console_tail" "$logs/console-$name.log" | sed 's/^/  | /' >&2
			exit 2
		fi
		if [ $((SECONDS - t0)) -ge "$boot_wait" ]; then
			echo "vm/run: guest $name did not boot within ${boot_wait}s (console log: $logs/console-$name.log)" >&2
			[ -s "$logs/console-$name.log" ] && tail -n "$console_tail" "$logs/console-$name.log" | sed 's/^/  | /' >&2
			exit 2
		fi
	done
	# The guest's clock from the host's (an RTC gives whole seconds): a
	# restore continues CLOCK_MONOTONIC by the wall time elapsed since the
	# checkpoint, so the two wall clocks must agree, as NTP makes them.
	$agentctl "${port[$name]}" run "ferry-agent settime $(date +%s%N)" >/dev/null 2>&1
	echo "vm/run: guest $name up in $((SECONDS - t0)) s: $($agentctl "${port[$name]}" run 'uname -r; ferry-agent 2>/dev/null; grep -m1 "^flags" /proc/cpuinfo | grep -ow "avx2\|avx\|xsave" | tr "\n" " "' 2>/dev/null | tr '\n' ' ')"
}

link=$(free_port)
tb=$SECONDS
declare -A booted
mode=listen  # the first guest listens on the guests' link, the second connects
for g in $guests; do
	case $g in
	A) boot A "$cpu_a" $mode "$link" 10.9.0.1/24 ;;
	B) boot B "$cpu_b" $mode "$link" 10.9.0.2/24 ;;
	esac
	booted[$g]=1
	[ $mode = listen ] && sleep 1
	mode=connect
done
for g in $guests; do wait_boot "$g"; done
boot_s=$((SECONDS - tb))

# What each guest's ferry says about itself (kernel features, CPU).
for g in $guests; do
	$agentctl "${port[$g]}" run "ferry check 2>&1" 60 >"$logs/check-$g.txt" 2>&1
	echo "vm/run: guest $g: ferry check: $(grep -i 'pagemap_scan' "$logs/check-$g.txt" | head -n1 | tr -s ' ')"
done
"$FERRY" check >"$logs/check-host.txt" 2>&1

# --- live transport: a throwaway CA and one certificate per side (mutual TLS)
pki_host=$scratch/pki pki_guest=/tmp/ferry-pki
make_pki() {
	local h
	mkdir -p "$pki_host"
	printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' >"$pki_host/ext"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki_host/ca.key" \
		-out "$pki_host/ca.pem" -days 1 -subj "/CN=ferry vm-test CA $run_id" || return 1
	for h in host A B; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki_host/$h.key" \
			-out "$pki_host/$h.csr" -subj "/CN=ferry-vm-$h" &&
		openssl x509 -req -in "$pki_host/$h.csr" -CA "$pki_host/ca.pem" -CAkey "$pki_host/ca.key" -CAcreateserial \
			-out "$pki_host/$h.pem" -days 1 -extfile "$pki_host/ext" || return 1
	done
	for h in $guests; do  # each guest gets the CA and its own key, never the CA's key
		(cd "$pki_host" && tar -cf - ca.pem "$h.pem" "$h.key" | base64) |
			$agentctl "${port[$h]}" stream "mkdir -p $pki_guest && cd $pki_guest && base64 -d | tar -xf - && chmod 600 $h.key" 30 || return 1
	done
}
if [[ " $transports " == *" live "* ]]; then
	command -v openssl >/dev/null || die "openssl is missing (the live transport makes TLS certificates): apt-get install openssl"
	make_pki >"$logs/pki.log" 2>&1 || die "could not make or install the TLS certificates (log: $logs/pki.log)"
fi

# --- sides: the host or a guest ----------------------------------------------
side_sh() {  # SIDE CMD [TIMEOUT]: run a shell command there
	if [ "$1" = host ]; then bash -c "$2"; else $agentctl "${port[$1]}" run "$2" "${3:-20}"; fi
}
declare -A dead
# A guest that stopped answering (hung mid-migration, crashed) fails its
# remaining cases at once instead of timing out in each.
side_alive() {  # SIDE
	[ "$1" = host ] && return 0
	[ -z "${dead[$1]:-}" ] || return 1
	if ! $agentctl "${port[$1]}" wait 15 >/dev/null 2>&1; then
		dead[$1]=1
		echo "vm/run: guest $1 stopped answering (console log: $logs/console-$1.log)" >&2
		return 1
	fi
}
side_put() {  # SIDE CMD: run a shell command there with our stdin
	if [ "$1" = host ]; then bash -c "$2"; else $agentctl "${port[$1]}" stream "$2" 60; fi
}
side_launch() {  # SIDE CTL PROG ARGS...: start a workload, print its pid
	local side=$1 ctl=$2 i
	shift 2
	side_sh "$side" "mkdir -p $ctl" || return 1
	if [ "$side" = host ]; then
		(cd "$ctl" && exec env $launch_env $launch "$@" "$ctl" "${wl_args[@]}") &
		host_pids+=("$!")
	else
		side_sh "$side" "cd $ctl && env $launch_env ferry-agent launch $* $ctl ${wl_args[*]}" || return 1
	fi
	local t0=$SECONDS
	while [ $((SECONDS - t0)) -lt 30 ]; do
		side_sh "$side" "cat $ctl/ready 2>/dev/null" 10 2>/dev/null | grep -E '^[0-9]+$' && return 0
		sleep 0.2
	done
	return 1
}
side_result() {  # SIDE CTL: ask for the verdict, print the result line
	local side=$1 ctl=$2 r t0=$SECONDS
	side_sh "$side" "touch $ctl/stop" 10
	while [ $((SECONDS - t0)) -lt "$case_wait" ]; do
		r=$(side_sh "$side" "cat $ctl/result 2>/dev/null" 10 2>/dev/null | head -n1)
		[ -n "$r" ] && { echo "$r"; return 0; }
		sleep 0.5
	done
	echo "FAIL: no result within ${case_wait}s"
}
# Checkpoint on SIDE to stdout (the process is killed, or left running).
side_checkpoint() {  # SIDE PID [--leave-running]
	if [ "$1" = host ]; then
		"$FERRY" checkpoint "$2" --stream - ${3:-} 2>"$case_log.ckpt"
	else
		$agentctl "${port[$1]}" stream "ferry checkpoint $2 --stream - ${3:-} 2>/tmp/ckpt.err; echo \$? >/tmp/ckpt.rc" "$case_wait" </dev/null
		$agentctl "${port[$1]}" run "cat /tmp/ckpt.err; exit \$(cat /tmp/ckpt.rc)" >"$case_log.ckpt" 2>&1
	fi
}
# Restore from stdin on SIDE; prints ferry's output and "@@rc=N".
side_restore() {  # SIDE
	if [ "$1" = host ]; then
		"$FERRY" restore --stream - --new-pidns $restore_extra 2>&1
		echo "@@rc=$?"
	else
		$agentctl "${port[$1]}" stream "ferry restore --stream - --new-pidns $restore_extra 2>&1; echo @@rc=\$?" "$case_wait"
	fi
}

# --- transports: move PID from SRC to DST; set `outcome` and `downtime_ms` --
# cold: checkpoint | restore.  host↔guest streams go through the agent's
# hostfwd; guest→guest streams go over the guests' own socket link.
# live: `ferry serve --once` on DST, `ferry migrate PID --to DST --json` on
# SRC, mutual TLS with the run's CA (serve refuses to start without
# authentication; the guests' serve too).  Addresses: a guest's serve (7070) is
# reached from the host through its second hostfwd and from the other guest
# over the guests' link; the host's serve listens on 127.0.0.1, which a guest
# reaches as 10.0.2.2 (slirp's alias for the host's loopback).  A refusal
# leaves the source running (migrate resumes it): --leave-running is moot.
# Also sets live_note: how the memory moved (pre-copy rounds, or the
# stop-and-copy fallback and its warning), checked against what the source's
# kernel offers (PAGEMAP_SCAN: 6.7+; the guests run 6.1).
live_tls() {  # SIDE
	local d=$pki_guest
	[ "$1" = host ] && d=$pki_host
	echo "--cert $d/$1.pem --key $d/$1.key --ca $d/ca.pem"
}
transport_live() {  # SRC DST PID [--leave-running]
	local src=$1 dst=$2 pid=$3 listen to sp="" t0 out err rc json rounds mdir=/tmp/ferry-vm-$run_id/migrate
	local gdir=/tmp/ferry-vm-$run_id/serve-${case_log##*/}
	downtime_ms=0 restored_pid="" restore_rc=1 restore_msg="" live_note=""
	case "$dst" in
	host) listen=127.0.0.1:$(free_port); to=10.0.2.2:${listen##*:} ;;
	*) listen=0.0.0.0:7070; to=${ip2[$dst]}:7070 ;;
	esac
	[ "$src" = host ] && to=127.0.0.1:${sport[$dst]}
	# The allowances migrate asks for count only where serve permits them too.
	local serve="ferry serve --listen $listen $(live_tls "$dst") --new-pidns --once --timeout 60 $restore_extra"
	echo "$serve" >"$case_log.serve"
	if [ "$dst" = host ]; then
		# serve itself, not under timeout: the cleanup's kill -9 must reach it
		# (a killed timeout left its serve listening); it is bounded below.
		"$FERRY" ${serve#ferry } >>"$case_log.serve" 2>&1 &
		sp=$!
		host_pids+=("$sp")
	else
		# Its own log (a stale "listening on" sent migrate to a serve not yet
		# listening) and its pid, to stop it (busybox has no pkill).
		$agentctl "${port[$dst]}" run "mkdir -p $gdir && echo \$\$ >$gdir/serve.pid && exec $serve >$gdir/serve.log 2>&1" "$case_wait" >/dev/null 2>&1 &
		sp=$!
	fi
	local slog=$gdir/serve.log
	[ "$dst" = host ] && slog=$case_log.serve
	t0=$SECONDS
	until side_sh "$dst" "grep -q '^listening on' $slog" 10 >/dev/null 2>&1; do
		if [ $((SECONDS - t0)) -ge 30 ] || ! kill -0 "$sp" 2>/dev/null; then
			restore_msg="ferry serve did not start listening on $dst within 30 s (log $case_log.serve)"
			[ "$dst" = host ] || side_sh "$dst" "cat $gdir/serve.log; kill \$(cat $gdir/serve.pid)" 10 >>"$case_log.serve" 2>&1
			kill "$sp" 2>/dev/null
			wait "$sp" 2>/dev/null
			echo "$restore_msg" >"$case_log.restore"
			return
		fi
		sleep 0.3
	done
	local ferry=ferry
	[ "$src" = host ] && ferry=$FERRY
	side_sh "$src" "mkdir -p $mdir && timeout $case_wait $ferry migrate $pid --to $to $(live_tls "$src") --json $restore_extra \
		>$mdir/json 2>$mdir/err; echo \$? >$mdir/rc" "$((case_wait + 5))" >/dev/null 2>&1
	json=$(side_sh "$src" "cat $mdir/json" 10 2>/dev/null)
	err=$(side_sh "$src" "cat $mdir/err" 10 2>/dev/null)
	rc=$(side_sh "$src" "cat $mdir/rc" 10 2>/dev/null)
	{ echo "ferry migrate $pid --to $to (rc ${rc:-?})"; echo "$err"; echo "$json"; } >"$case_log.migrate"
	# serve --once ends after this migration; give it the case's bound, then stop it.
	t0=$SECONDS
	while kill -0 "$sp" 2>/dev/null && [ $((SECONDS - t0)) -lt 30 ]; do sleep 0.3; done
	if kill -0 "$sp" 2>/dev/null; then
		[ "$dst" = host ] || side_sh "$dst" "kill \$(cat $gdir/serve.pid)" 10 >/dev/null 2>&1
		kill "$sp" 2>/dev/null
	fi
	wait "$sp" 2>/dev/null
	[ "$dst" = host ] || side_sh "$dst" "cat $gdir/serve.log" 10 >>"$case_log.serve" 2>&1
	out=$(cat "$case_log.serve")
	echo "$out" >"$case_log.restore"
	if [ "$rc" != 0 ] || [ -z "$json" ]; then
		restore_msg=$(echo "$err" | grep -v '^warning' | grep -m1 . || echo "ferry migrate exited with status ${rc:-?} and printed nothing")
		return
	fi
	restore_rc=0
	restored_pid=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_pid"])' 2>/dev/null)
	downtime_ms=$(echo "$json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["downtime_ms"]))' 2>/dev/null)
	rounds=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rounds"])' 2>/dev/null)
	[ "$dst" = host ] && [ -n "$restored_pid" ] && host_pids+=("$restored_pid")
	# How the memory moved must match what the source's kernel has.
	local warn
	warn=$(echo "$err" | grep -m1 '^warning:.*stop-and-copy' | cut -c1-160)
	if grep -qE '^ok *(dirty_tracking|soft_dirty)' "$logs/check-$src.txt"; then
		# The kernel can track (uffd-wp with PAGEMAP_SCAN, or soft-dirty on
		# 6.1): pre-copy, unless the process itself rules it
		# out (bytes in pipes, several processes: docs/migration.md), which
		# must be warned about too; a kernel feature failing here is wrong.
		if [ "${rounds:-0}" -ge 2 ] && [ -z "$warn" ]; then
			live_note="pre-copy: $((rounds - 1)) round(s) + final"
		elif [ "${rounds:-0}" = 1 ] && [ -n "$warn" ] && ! echo "$warn" | grep -qiE 'uffd|userfaultfd|pagemap|wp_async'; then
			live_note="stop-and-copy, warned (the process, not the kernel): ${warn#warning: }"
		else
			live_fail="expected pre-copy from $src (rounds ${rounds:-?}): ${warn:-no warning}"
		fi
	else
		if [ -n "$warn" ] && [ "${rounds:-0}" = 1 ]; then
			live_note="stop-and-copy fallback, warned: ${warn#warning: }"
		else
			live_fail="expected the stop-and-copy fallback and its warning from $src (neither PAGEMAP_SCAN nor soft-dirty); rounds ${rounds:-?}, warning: '${warn:-none}'"
		fi
	fi
}
transport_cold() {  # SRC DST PID [--leave-running]
	local src=$1 dst=$2 pid=$3 lr=${4:-} t0 t1 out
	t0=$(date +%s%N)
	if [ "$src" != host ] && [ "$dst" != host ]; then
		$agentctl "${port[$dst]}" run "ferry-agent recv 9000 | ferry restore --stream - --new-pidns $restore_extra 2>&1" "$case_wait" \
			>"$case_log.restore" 2>&1 &
		local rpid=$! rc
		$agentctl "${port[$src]}" run "ferry checkpoint $pid --stream - $lr 2>/tmp/ckpt.err | ferry-agent send ${ip2[$dst]} 9000; cat /tmp/ckpt.err" "$case_wait" \
			>"$case_log.ckpt" 2>&1
		wait "$rpid"
		rc=$?
		out="$(cat "$case_log.restore")"$'\n'"@@rc=$rc"
	else
		out=$(side_checkpoint "$src" "$pid" $lr | side_restore "$dst")
	fi
	t1=$(date +%s%N)
	downtime_ms=$(((t1 - t0) / 1000000))
	echo "$out" >"$case_log.restore"
	restored_pid=$(echo "$out" | sed -n 's/^restored pid \([0-9]*\).*/\1/p' | head -n1)
	restore_rc=$(echo "$out" | sed -n 's/^@@rc=//p' | tail -n1)
	[ "$dst" = host ] && [ -n "$restored_pid" ] && host_pids+=("$restored_pid")
	restore_msg=$(echo "$out" | grep -v '^@@rc=' | grep -m1 -i 'cannot\|error\|refus' || true)
}

# The init of the restored process's pid namespace, from restore's or serve's output.
restored_nsinit() { sed -n 's/.*namespace init \([0-9]*\).*/\1/p' "$case_log.restore" 2>/dev/null | head -n1; }

# CPU flags of a side (cpuinfo names), one per line, sorted.
side_flags() {
	local f=$logs/flags-$1.txt
	[ -s "$f" ] || side_sh "$1" "grep -m1 '^flags' /proc/cpuinfo" | sed 's/^flags[^:]*://' | tr ' ' '\n' | sed '/^$/d' | sort >"$f"
	cat "$f"
}
# cpuinfo name → glibc.cpu.hwcaps name, for what glibc picks code by.
glibc_hwcap() {
	case "$1" in
	xsavec) echo XSAVEC ;; avx) echo AVX ;; avx2) echo AVX2 ;; fma) echo FMA ;; bmi1) echo BMI1 ;;
	bmi2) echo BMI2 ;; movbe) echo MOVBE ;; popcnt) echo POPCNT ;; sse4_1) echo SSE4_1 ;;
	sse4_2) echo SSE4_2 ;; ssse3) echo SSSE3 ;; abm) echo LZCNT ;; avx512*) echo "${1^^}" ;;
	rtm) echo RTM ;;  # glibc picks *_rtm string functions (xtest) where the CPU has RTM
	esac
}
# A workload restricted to what both CPUs have: glibc told not to use what
# the target lacks (GLIBC_TUNABLES), and restore told that the process does
# not use those features (--allow-missing-cpu-features).  Sets launch_env,
# restore_extra and restricted (the features, or empty).
restrict_to_common() {  # SRC DST
	local extra caps="" f h
	extra=$(comm -23 <(side_flags "$1") <(side_flags "$2") | tr '\n' ',' | sed 's/,$//')
	restricted=$extra launch_env="" restore_extra=""
	[ -n "$extra" ] || return 0
	for f in ${extra//,/ }; do h=$(glibc_hwcap "$f"); [ -n "$h" ] && caps="$caps,-$h"; done
	[ -n "$caps" ] && launch_env="GLIBC_TUNABLES=glibc.cpu.hwcaps=${caps#,}"
	restore_extra="--allow-missing-cpu-features $extra"
}
side_xcr0() { grep -o -m1 'XCR0 0x[0-9a-f]*' "$logs/check-$1.txt" | cut -d' ' -f2; }
# The target enables more XSAVE components than the source: glibc's lazy-
# binding trampoline would overflow its XSAVE buffer; bind eagerly instead.
restrict_xsave_growth() {  # SRC DST
	local s d
	s=$(side_xcr0 "$1") d=$(side_xcr0 "$2")
	[ -n "$s" ] && [ -n "$d" ] && (( (d & ~s) != 0 )) || return 0
	launch_env="LD_BIND_NOW=1${launch_env:+ $launch_env}"
	restore_extra="$restore_extra --allow-xsave-growth"
}

nfail=0
row() {  # CROSSING WORKLOAD TRANSPORT RESULT DOWNTIME: RESULT is "VERDICT[: detail]"
	local verdict=${4%%[: (]*} detail=""
	[ "$verdict" != "$4" ] && detail=${4#"$verdict"} && detail=${detail#: } && detail=${detail# }
	printf '%-32s %-15s %-9s %-9s %-9s %s\n' "$1" "$2" "$3" "$verdict" "$5" "$detail" | tee -a "$logs/results.txt"
}
# run_case SRC DST EXPECT WORKLOAD [ARGS...]; EXPECT is pass or refused
run_case() {
	local src=$1 dst=$2 expect=$3 name=$4 crossing ctl pid res lr=""
	shift 4
	wl_args=("$@")
	[[ "$src $dst $name $expect" =~ ${VM_CASES:-.} ]] || return 0
	# Cases with a guest this run did not boot (VM_GUESTS) are left out.
	[ "$src" = host ] || [ -n "${booted[$src]:-}" ] || return 0
	[ "$dst" = host ] || [ -n "${booted[$dst]:-}" ] || return 0
	crossing="$src($(side_kernel "$src"))→$dst($(side_kernel "$dst"))"
	local base=$src-$dst-$name-$expect r
	launch_env="" restore_extra="" restricted=""
	[ "$expect" = pass ] && restrict_to_common "$src" "$dst" && restrict_xsave_growth "$src" "$dst"
	[ -n "$launch_env$restore_extra" ] && echo "$launch_env | $restore_extra" >"$logs/$base.restricted"
	for transport in $transports; do
	for ((r = 1; r <= repeat; r++)); do
		local label=$crossing
		# Each transport and repetition has its own control directory and logs.
		ctl=/tmp/ferry-vm-$run_id/$base-$transport-$r
		case_log=$logs/$base-$transport$([ "$repeat" = 1 ] || echo "-$r")
		if ! side_alive "$src" || ! side_alive "$dst"; then
			row "$label" "$name" "$transport" "FAIL: a guest of this crossing does not answer (console logs in $logs)" -
			nfail=$((nfail + 1))
			continue
		fi
		pid=$(side_launch "$src" "$ctl" "$(wl_path "$name")")
		[ "$src" = host ] && [ -n "$pid" ] && host_pids+=("$pid")
		if [ -z "$pid" ]; then row "$label" "$name" "$transport" "FAIL: no ready from the workload on $src" "-"; nfail=$((nfail + 1)); continue; fi
		# CTLDIR must hold the same files on the target (README of Workloads)
		side_sh "$src" "cd $ctl && tar -cf - . | base64" | side_put "$dst" "mkdir -p $ctl && cd $ctl && base64 -d | tar -xf -" >/dev/null 2>&1
		[ "$expect" = refused ] && lr=--leave-running
		sleep 0.3
		live_note="" live_fail=""
		"transport_$transport" "$src" "$dst" "$pid" $lr
		if [ "$restore_rc" = 0 ] && [ -n "$restored_pid" ]; then
			res=$(side_result "$dst" "$ctl")
			# Not PASS: is the process (and its pid namespace's init) still
			# there, and did the kernel log a fault of either?
			[ "$res" = PASS ] || side_sh "$dst" "for p in $restored_pid $(restored_nsinit); do echo \"pid \$p: \$(cat /proc/\$p/stat 2>/dev/null || echo gone)\"; done
				for t in /proc/$restored_pid/task/*; do echo \$t: \$(cut -d' ' -f3 \$t/stat) \$(cat \$t/wchan 2>/dev/null); done
				dmesg | grep -iE 'ferry|wl_|segfault|traps:|invalid opcode|killed process' | tail -n 20" >"$case_log.diag" 2>&1
			if [ "$expect" = refused ]; then
				res="FAIL: restored, but should have been refused ($res)"
			fi
		else
			local why
			why=$(echo "${restore_msg:-$(grep -v '^@@rc=' "$case_log.restore" | tail -n3 | tr '\n' ' ')}" | sed 's/^[^:]*: //' | cut -c1-400)
			[ -n "${why// /}" ] || why="no answer from the target within ${case_wait}s (hung?)"
			if [ "$expect" = refused ]; then
				# The refusal must leave the source intact (it was left running).
				src_res=$(side_result "$src" "$ctl")
				left=$(side_sh "$dst" "ps -o pid,args 2>/dev/null | grep -c '[w]l_$name'" 2>/dev/null | head -n1)
				if [ "$src_res" = PASS ] && [ "${left:-0}" = 0 ]; then
					res="REFUSED: (expected) $why"
				else
					res="FAIL: refused but source says '$src_res', target left ${left:-?} process(es): $why"
				fi
			else
				res="FAIL: restore: $why (log $case_log.restore)"
			fi
		fi
		[ "$res" = PASS ] && [ -n "$live_fail" ] && res="FAIL: $live_fail"
		case "$res" in PASS | REFUSED*) ;; *) nfail=$((nfail + 1)) ;; esac
		if [ "$res" = PASS ]; then
			local notes=$live_note
			[ -n "$launch_env" ] && notes="${notes:+$notes; }restricted to both CPUs: $launch_env"
			res="PASS${notes:+: $notes}"
		fi
		row "$label" "$name" "$transport" "$res" "$([ "$restore_rc" = 0 ] && echo "${downtime_ms} ms" || echo -)"
		# busybox: killall (by name; there is no pkill)
		[ "$src" = host ] || side_sh "$src" "killall -9 wl_$name 2>/dev/null; true" >/dev/null 2>&1
		[ "$dst" = host ] || side_sh "$dst" "killall -9 wl_$name 2>/dev/null; true" >/dev/null 2>&1
		[ "$src" = host ] && pkill -9 -f "$ctl" 2>/dev/null
		[ "$dst" = host ] && pkill -9 -f "$ctl" 2>/dev/null
	done
	done
}
wl_path() { echo "$here/cache/wl/wl_$1"; }
side_kernel() {
	case "$1" in
	host) uname -r | cut -d- -f1 ;;
	*) echo "6.1,${cpu[$1]%%,*}$([[ "${cpu[$1]}" == *-avx* ]] && echo -noavx)" ;;
	esac
}

printf '%-32s %-15s %-9s %-9s %-9s %s\n' crossing workload transport result downtime detail | tee "$logs/results.txt"
printf '%-32s %-15s %-9s %-9s %-9s %s\n' -------- -------- --------- ------ -------- ------ | tee -a "$logs/results.txt"
# host → guest A: another kernel (6.18 → 6.1: the vDSO differs, ferry
# proxies it) and another CPU (TCG's: no XSAVEC, SHA-NI, RDSEED, VPCLMULQDQ).
# An unrestricted process is refused (glibc's lazy-binding trampoline on the
# host uses XSAVEC: it would die of SIGILL on the first unresolved call);
# "pass" cases restrict glibc to what both CPUs have (restrict_to_common).
run_case host A refused clock_loop
run_case host A pass clock_loop
run_case host A pass threads_tls
run_case host A pass stack_pointers
run_case host A pass anon_pattern 16
run_case host A pass signals
run_case host A pass getpid_same
run_case host A pass sleep_syscall
# guest A → host: TCG's CPU features are a subset of the host's
run_case A host pass clock_loop
run_case A host pass threads_tls
run_case A host pass stack_pointers
run_case A host pass anon_pattern 16
run_case A host pass sleep_syscall
# guest B has no AVX (XCR0 0x3): the host's AVX state cannot go there
run_case host B refused clock_loop
run_case B host pass clock_loop
run_case B host pass fpu_regs sse
# guest → guest over the guests' own link.  B → A: A enables AVX state B's
# processes never sized buffers for (refused unless they bind eagerly).
run_case B A refused threads_tls
run_case B A pass clock_loop
run_case B A pass threads_tls
run_case A B refused threads_tls

# FreeBSD guest: vm/freebsd/run.sh boots it and runs the module checks.  A
# Linux ⇄ FreeBSD migration row needs ferry built for FreeBSD, which does not
# exist yet (Swift does not cross-compile to FreeBSD here): it says so.
if [ -n "${FREEBSD_IMAGE:-}" ]; then
	if FREEBSD_SSH_PORT=$(free_port) sh "$here/freebsd/run.sh" >"$logs/freebsd.log" 2>&1; then
		row "freebsd guest" "module checks" - "PASS (log $logs/freebsd.log)" -
	else
		row "freebsd guest" "module checks" - "FAIL: $(tail -n1 "$logs/freebsd.log") (log $logs/freebsd.log)" -
		nfail=$((nfail + 1))
	fi
	row "host→freebsd" "(all)" - "NOT-RUN: no ferry binary for FreeBSD yet (Swift does not cross-compile to FreeBSD here)" -
fi

total_s=$(($(date +%s) - t_start))
echo
echo "vm/run: guests booted in ${boot_s} s; whole run ${total_s} s; logs in $logs"
[ -n "$freebsd_note" ] && echo "vm/run: $freebsd_note"
if [ "$nfail" -gt 0 ]; then
	echo "vm/run: $nfail case(s) did not get their expected result"
	exit 1
fi
echo "vm/run: every case got its expected result"
