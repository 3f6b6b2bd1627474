#!/bin/bash
# Checkpoint → restore → verify, for one workload:
#   run_cr.sh FERRY OUT NAME [ARGS...]
# Starts OUT/wl_NAME CTLDIR ARGS, waits for ready, runs `FERRY checkpoint`
# (which kills it), reaps it, runs `FERRY restore $RESTORE_ARGS`, lets the
# restored process run, asks for its verdict and prints one line:
#   PASS NAME  |  FAIL NAME: reason
# Exit status 0 on PASS. Leaves nothing running. RESTORE_TIMEOUT (s, 1200)
# bounds the restore (seconds on hardware; under qemu TCG a 256 MiB restore
# took over 300 s). DAMAGE=flip|truncate damages
# pages.img before the restore, which must then refuse it (PASS if it does).
# BEFORE_RESTORE is shell code run between checkpoint and restore.
set -u
# Orphans of the killed tree must be reaped at once (their pids are restored).
if [ -z "${FERRY_UNDER_REAPER:-}" ]; then
	FERRY_UNDER_REAPER=1 exec python3 "$(dirname "$0")/reaper.py" bash "$0" "$@"
fi
FERRY="$1" OUT="$2" NAME="$3"
shift 3
bin="$OUT/wl_$NAME"
[ "$NAME" = python_loop ] && bin="$OUT/wl_python_loop.py"
ctl="$(mktemp -d /tmp/ferry_wl.XXXXXX)"
img="$ctl/image"
restored=""
cleanup() {
	[ -n "$restored" ] && kill -9 "$restored" 2>/dev/null
	[ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$ctl"
}
trap cleanup EXIT
wait_for() { local i; for ((i = 0; i < $2; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
fail() { echo "FAIL $NAME: $*"; exit 1; }

# The workload starts with a clean slate (launch.py): only stdio, no blocked
# or ignored signals inherited from whoever runs this script.
python3 "$(dirname "$0")/launch.py" "$bin" "$ctl" "$@" &
pid=$!
wait_for "$ctl/ready" 100 || fail "no ready within 10 s"
sleep "${SETTLE:-0.3}"
if [ -n "${LEAVE_RUNNING:-}" ]; then
	# Checkpoint without stopping it for good: the original must go on correctly.
	out="$("$FERRY" checkpoint "$pid" -o "$img" --leave-running 2>&1)" || fail "checkpoint --leave-running: $out"
	kill -0 "$pid" 2>/dev/null || fail "the process died after checkpoint --leave-running"
	[ -s "$img/meta.img" ] || fail "no image written"
	sleep "${RUN_AFTER:-0.5}"
	touch "$ctl/stop"
	wait_for "$ctl/result" 150 || fail "no result from the process left running"
	res="$(head -n1 "$ctl/result")"
	[ "$res" = PASS ] || fail "$res"
	echo "PASS $NAME (left running)"
	exit 0
fi
if [ -n "${STREAM:-}" ]; then
	# No image on disk: checkpoint to a pipe read by restore as it arrives.
	# shellcheck disable=SC2086
	out="$( { "$FERRY" checkpoint "$pid" --stream - 2>"$ctl/ckpt.err" | "$FERRY" restore --stream - ${RESTORE_ARGS:-}; } 2>&1)" ||
		fail "checkpoint | restore: $(cat "$ctl/ckpt.err") $out"
	{ wait "$pid"; } 2>/dev/null
	origpid=$pid
	pid=""
else
	out="$("$FERRY" checkpoint "$pid" -o "$img" 2>&1)" || fail "checkpoint: $out"
	{ wait "$pid"; } 2>/dev/null
	origpid=$pid
	pid=""
	# BEFORE_RESTORE: shell code run (eval) between the checkpoint and the
	# restore, e.g. to take away what the restore must re-create.
	[ -n "${BEFORE_RESTORE:-}" ] && eval "$BEFORE_RESTORE"
	if [ -n "${DAMAGE:-}" ]; then
		# DAMAGE=flip|truncate: a damaged pages.img must be refused with one
		# line, and nothing restored may be left running.
		size="$(stat -c %s "$img/pages.img")"
		case "$DAMAGE" in
		flip) python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$img/pages.img" $((size * 3 / 4)) ;;
		truncate) truncate -s $((size - 5)) "$img/pages.img" ;;
		*) fail "unknown DAMAGE $DAMAGE" ;;
		esac
		# shellcheck disable=SC2086
		out="$("$FERRY" restore "$img" ${RESTORE_ARGS:-} 2>&1)" && fail "restore accepted a damaged pages.img ($DAMAGE): $out"
		[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "not one line: $out"
		for ((i = 0; i < 50; i++)); do kill -0 "$origpid" 2>/dev/null || break; sleep 0.02; done
		kill -0 "$origpid" 2>/dev/null && fail "pid $origpid still runs after a refused restore"
		echo "PASS $NAME (refused: $out)"
		exit 0
	fi
	# shellcheck disable=SC2086
	# Bounded: a restore that hangs (as --new-pidns did on Linux 6.1) is a FAIL, not a stuck suite.
	out="$(timeout "${RESTORE_TIMEOUT:-1200}" "$FERRY" restore "$img" ${RESTORE_ARGS:-} 2>&1)" ||
		fail "restore (status $?; 124: still running after ${RESTORE_TIMEOUT:-1200} s): $out"
fi
restored="$(echo "$out" | sed -n 's/^restored pid \([0-9]*\).*/\1/p')"
[ -n "$restored" ] || fail "restore printed no pid: $out"
# ferry fills memory through a userfaultfd of the process's own: nothing of it may remain.
ls -l "/proc/$restored/fd" 2>/dev/null | grep -q userfaultfd && fail "a userfaultfd was left open in the restored process"
grep -q '^VmFlags:.* um' "/proc/$restored/smaps" 2>/dev/null && fail "a userfaultfd registration was left in the restored process"
sleep "${RUN_AFTER:-0.5}"
touch "$ctl/stop"
if ! wait_for "$ctl/result" 150; then
	if kill -0 "$restored" 2>/dev/null; then fail "no result within 15 s (restored pid $restored still running)"; fi
	fail "no result: the restored process (pid $restored, was $origpid) died"
fi
res="$(head -n1 "$ctl/result")"
[ "$res" = PASS ] || fail "$res"
echo "PASS $NAME"
