#!/bin/sh
# run_fuzz.sh - owns the timed libFuzzer runs: runs each harness of a
# HAKMEM_FUZZ build for SECONDS seconds on a working copy of its seed corpus
# inside the build directory (the source tree is only read), prints each
# harness's execution count, and exits non-zero if libFuzzer found anything.
#
# Usage: tests/fuzz/run_fuzz.sh BUILD_DIR SECONDS [harness...]
#   harness: malloc, arena (default: both, one after the other)
# Files: BUILD_DIR/fuzz-run/corpus_<h>/ (grows across runs),
#        BUILD_DIR/fuzz-run/<h>.log, crashes as BUILD_DIR/fuzz-run/artifacts/<h>-*.
# Environment: FUZZ_RSS_MB (default 3072), FUZZ_ARGS (extra libFuzzer flags).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [malloc|arena]..." >&2
    exit 2
fi
build=$(cd "$1" && pwd) || exit 2
secs=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
harnesses=${*:-malloc arena}
rss=${FUZZ_RSS_MB:-3072}
out=$build/fuzz-run
mkdir -p "$out/artifacts"

status=0
for h in $harnesses; do
    bin=$build/fuzz_$h
    if [ ! -x "$bin" ]; then
        echo "run_fuzz: $bin missing (configure with -DHAKMEM_FUZZ=ON and build it)" >&2
        exit 2
    fi
    corpus=$out/corpus_$h
    mkdir -p "$corpus"
    cp "$src/corpus_$h"/* "$corpus"/
    log=$out/$h.log
    echo "run_fuzz: fuzz_$h for ${secs}s (log: $log)"
    # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
    "$bin" -max_total_time="$secs" -rss_limit_mb="$rss" -timeout=60 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$h-" \
        ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "fuzz_$h: stat::number_of_executed_units: ${execs:-?} (exit $rc)"
    if [ "$rc" -ne 0 ] || [ -z "$execs" ]; then
        echo "run_fuzz: fuzz_$h FAILED; the end of its log:" >&2
        tail -n 60 "$log" >&2
        ls -l "$out/artifacts" >&2
        status=1
    fi
done
exit $status
