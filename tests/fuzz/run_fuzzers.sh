#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for a bounded time, two at a time (CI has 2 cores).
#   tests/fuzz/run_fuzzers.sh BUILD_DIR        (FUZZ_SECONDS, default 60; FUZZ_JOBS, default 2;
#                                               FUZZ_TARGETS, default all four)
# Each target starts from its committed seed corpus (tests/fuzz/corpus/<target>, read only: new
# inputs go to BUILD_DIR/fuzz-work/<target>/corpus) and writes crashes to
# BUILD_DIR/fuzz-work/<target>/. Exit status: non-zero when any target crashed, leaked a sanitizer
# report, timed out on one input or ran out of memory; the offending input's path is printed.
# A crash found this way becomes a regression test: commit the input under
# tests/fuzz/regressions/<corpus name>/ (replayed here, once each, before fuzzing) and fix the code.
set -euo pipefail

BUILD=${1:?usage: run_fuzzers.sh BUILD_DIR}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-fuzz_spec_file fuzz_checkpoint fuzz_idx fuzz_image}"

# ASan's defaults work with Debian's (uninstrumented) LibTorch here; see tests/fuzz/CMakeLists.txt.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1

run_one() {
  local target=$1
  local work="$BUILD/fuzz-work/${target#fuzz_}"
  local corpus_name=${target#fuzz_}
  rm -rf "$work" && mkdir -p "$work/corpus"
  export TMPDIR="$work"
  local log="$work/log.txt"
  local regressions=("$HERE/regressions/$corpus_name"/*)
  if [ -e "${regressions[0]}" ] && ! "$BUILD/$target" "${regressions[@]}" >"$work/regressions.txt" 2>&1; then
    echo "fuzz: $target FAILED on a committed regression input; see $work/regressions.txt" >&2
    tail -n 40 "$work/regressions.txt" >&2
    return 1
  fi
  if "$BUILD/$target" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=3072 \
      -max_len=131072 -print_final_stats=1 -artifact_prefix="$work/" \
      "$work/corpus" "$HERE/corpus/$corpus_name" >"$log" 2>&1; then
    echo "fuzz: $target ok: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') inputs in ${SECONDS_EACH}s"
  else
    echo "fuzz: $target FAILED; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
    return 1
  fi
}
export -f run_one
export BUILD SECONDS_EACH HERE

printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
