#!/usr/bin/env bash
# Run every built benchmark: BUILD_DIR/bench/*_harness (packets-per-second
# harnesses) and BUILD_DIR/bench/bench_* (Google Benchmark), printing output.
#   scripts/run-bench.sh BUILD_DIR
# Exit status: non-zero if any benchmark failed; 0 (with a note) if none exist.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}

shopt -s nullglob
ran=0
failed=()
for bin in "$BUILD_DIR"/bench/*_harness "$BUILD_DIR"/bench/bench_*; do
  [[ -f "$bin" && -x "$bin" ]] || continue
  printf '\n==================== %s ====================\n' "$(basename "$bin")"
  ran=$((ran + 1))
  rc=0
  "$bin" || rc=$?
  if (( rc != 0 )); then
    echo "$(basename "$bin"): exited with status $rc"
    failed+=("$(basename "$bin")")
  fi
done

if (( ran == 0 )); then
  echo "no benchmarks built yet (looked for $BUILD_DIR/bench/*_harness and $BUILD_DIR/bench/bench_*)"
  exit 0
fi
echo
echo "$ran benchmark(s) run, ${#failed[@]} failed${failed:+: ${failed[*]}}"
(( ${#failed[@]} == 0 ))
