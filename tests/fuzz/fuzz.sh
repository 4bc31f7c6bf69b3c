#!/bin/sh
# Run the libFuzzer targets of a fuzz build, or merge what they found back into the seeds.
#
#   tests/fuzz/fuzz.sh run   BUILD_DIR [name...]   each target FUZZ_SECONDS (60) in turn
#   tests/fuzz/fuzz.sh merge BUILD_DIR [name...]   fold BUILD_DIR/corpus/<name> into the seeds
#
# `make fuzz` and `make fuzz-minimize` call this. Names are without "fuzz_" (arm, sse, ...);
# none means every target built in BUILD_DIR.
#
# run: target fuzz_<name> starts from its seeds, tests/fuzz/corpus/<name>, and from a work
# corpus kept in BUILD_DIR/corpus/<name>, where what it finds is written, so runs add up
# from one session to the next. Crashes go to BUILD_DIR/artifacts/<name>/, the log to
# BUILD_DIR/logs/<name>.log, and one summary line per target (seconds, executions, cov,
# ft, corpus) to BUILD_DIR/logs/summary.tsv. FUZZ_NICE (default 0) runs it under nice;
# FUZZ_ARGS adds libFuzzer flags. Exits nonzero when a target found a crash.
#
# merge: libFuzzer's -merge=1 into the seed directory: the seeds stay as they are, and
# only inputs of the work corpus that reach new code are added. Inputs over
# FUZZ_MERGE_MAX_LEN bytes (4096) are left out, and "new" counts edges only
# (FUZZ_MERGE_ARGS, default -use_counters=0), not hit counts: that keeps a few dozen
# files where the full feature set would take hundreds. The work corpus keeps them all,
# so the next run goes on from everything found.
set -u

mode=${1:-}
build=${2:-}
if [ -z "$mode" ] || [ -z "$build" ]; then
    echo "usage: $0 run|merge BUILD_DIR [name...]" >&2
    exit 2
fi
shift 2
here=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-60}
niceness=${FUZZ_NICE:-0}
max_len=${FUZZ_MERGE_MAX_LEN:-4096}
merge_args=${FUZZ_MERGE_ARGS:--use_counters=0}

names="$*"
if [ -z "$names" ]; then
    for bin in "$build"/fuzz_*; do
        [ -x "$bin" ] && names="$names ${bin##*/fuzz_}"
    done
fi
if [ -z "$names" ]; then
    echo "no fuzz targets in $build (build them with: make fuzz)" >&2
    exit 2
fi

# Leaks are bugs here too; UBSan findings stop the run as ASan's do.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

run_one() {
    name=$1
    bin="$build/fuzz_$name"
    seeds="$here/corpus/$name"
    work="$build/corpus/$name"
    arts="$build/artifacts/$name"
    log="$build/logs/$name.log"
    mkdir -p "$work" "$arts" "$build/logs" "$seeds"
    echo "== fuzz_$name: $seconds s, corpus $work + $seeds"
    start=$(date +%s)
    nice -n "$niceness" "$bin" -max_total_time="$seconds" -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$arts/" ${FUZZ_ARGS:-} "$work" "$seeds" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    done_line=$(grep -E '(DONE|pulse|NEW|REDUCE|INITED) +cov:' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(echo "$done_line" | sed -n 's/.*cov: *\([0-9]*\).*/\1/p')
    ft=$(echo "$done_line" | sed -n 's/.*ft: *\([0-9]*\).*/\1/p')
    files=$(find "$work" -type f | wc -l)
    crashes=$(find "$arts" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date +%F)" "$name" "$took" "${execs:-0}" \
        "${cov:-?}" "${ft:-?}" "$files" "$crashes" >>"$build/logs/summary.tsv"
    echo "   $took s, ${execs:-0} runs, cov ${cov:-?} ft ${ft:-?}, work corpus $files files," \
        "artifacts $crashes (exit $rc)"
    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 5
        return 1
    fi
    return 0
}

merge_one() {
    name=$1
    bin="$build/fuzz_$name"
    seeds="$here/corpus/$name"
    work="$build/corpus/$name"
    mkdir -p "$seeds"
    if [ ! -d "$work" ]; then
        echo "== fuzz_$name: no work corpus in $work; nothing to merge"
        return 0
    fi
    before=$(find "$seeds" -type f | wc -l)
    "$bin" -merge=1 -max_len="$max_len" -timeout=20 $merge_args "$seeds" "$work" \
        >"$build/logs/$name.merge.log" 2>&1 || {
        tail -n 5 "$build/logs/$name.merge.log"
        return 1
    }
    after=$(find "$seeds" -type f | wc -l)
    bytes=$(du -sb "$seeds" | cut -f1)
    echo "== fuzz_$name: seeds $before -> $after files, $bytes bytes"
    if [ "$after" -gt 200 ] || [ "$bytes" -gt 1048576 ]; then
        echo "   over 200 files or 1 MiB: lower FUZZ_MERGE_MAX_LEN or prune by hand" >&2
    fi
}

status=0
mkdir -p "$build/logs"
for name in $names; do
    if [ ! -x "$build/fuzz_$name" ]; then
        echo "no $build/fuzz_$name" >&2
        status=1
        continue
    fi
    case $mode in
    run) run_one "$name" || status=1 ;;
    merge) merge_one "$name" || status=1 ;;
    *)
        echo "unknown mode $mode" >&2
        exit 2
        ;;
    esac
done
exit $status
