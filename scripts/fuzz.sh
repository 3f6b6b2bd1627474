#!/bin/sh
# Runs every fuzz target (Tests/FerryFuzzTargets) under libFuzzer for
# FUZZ_SECONDS each. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The binary is built with FERRY_FUZZ=${FERRY_FUZZ:-1} (Package.swift: the
# sanitizers, "1" meaning fuzzer; e.g. FERRY_FUZZ=fuzzer,address) in its own
# build directory. Each target starts from seeds generated from valid images
# and messages plus what earlier runs found (.build/fuzz-corpus/<target>, not
# kept in git), and from the saved inputs in Tests/FuzzCorpus/<target>: a
# saved input that still fails stops the target at once, so the saved inputs
# are regression cases. A crash, hang (> FUZZ_TIMEOUT s) or allocation over
# FUZZ_MALLOC_MB is written to Tests/FuzzCorpus/<target>/ for fixing and
# committing with the fix. Exits non-zero if any target failed.
set -u
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
targets=${*:-"image-dir image-stream metadata-first wire handshake"}
[ "$seconds" = 0 ] && { echo "fuzz: skipped (0 seconds)"; exit 0; }
scratch=.build/fuzz
work=.build/fuzz-corpus
FERRY_FUZZ=${FERRY_FUZZ:-1} ${SWIFT:-swift} build --scratch-path "$scratch" --product ferry-fuzz >"$scratch.log" 2>&1 || {
    tail -n 40 "$scratch.log"; echo "fuzz: building ferry-fuzz failed (whole log: $scratch.log)"; exit 1; }
bin=$(FERRY_FUZZ=${FERRY_FUZZ:-1} ${SWIFT:-swift} build --scratch-path "$scratch" --product ferry-fuzz --show-bin-path)/ferry-fuzz
rm -rf "$work.seeds" && FERRY_FUZZ_SEEDS="$work.seeds" "$bin" || { echo "fuzz: writing seeds failed"; exit 1; }
failed=""
for t in $targets; do
    mkdir -p "$work/$t" "Tests/FuzzCorpus/$t"
    cp -n "$work.seeds/$t"/* "$work/$t/" 2>/dev/null
    echo "fuzz: $t for ${seconds}s"
    # Swift's own backtracer would wait on a crashing fuzz input; libFuzzer reports it.
    if ! SWIFT_BACKTRACE=enable=no FERRY_FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" \
        -timeout="${FUZZ_TIMEOUT:-10}" -malloc_limit_mb="${FUZZ_MALLOC_MB:-512}" -rss_limit_mb=2048 \
        -detect_leaks="${FUZZ_LEAKS:-1}" -print_final_stats=1 -artifact_prefix="Tests/FuzzCorpus/$t/" \
        "$work/$t" "Tests/FuzzCorpus/$t" >"$work/$t.log" 2>&1; then
        grep -E "ERROR|Fatal error|SUMMARY|artifact|Test unit written" "$work/$t.log" | head -n 20
        echo "fuzz: $t FAILED (log: $work/$t.log)"
        failed="$failed $t"
    else
        grep -E "stat::number_of_executed_units|stat::new_units_added" "$work/$t.log" | tr '\n' ' '; echo
    fi
done
[ -z "$failed" ] || { echo "fuzz: failed:$failed"; exit 1; }
echo "fuzz: no failures"
