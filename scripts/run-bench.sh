#!/usr/bin/env bash
# Run every built benchmark: BUILD_DIR/bench/*_harness (packets-per-second
# harnesses) and BUILD_DIR/bench/bench_* (Google Benchmark), printing output;
# then write the report (docs/performance.md, "The report"):
#   BUILD_DIR/bench-report/report.md and its plots (scripts/bench-report.py),
#   BUILD_DIR/bench-report/data/ the run's raw outputs: each harness's
#   stdout (<name>.log), its JSON lines (<name>.jsonl, --json), Google
#   Benchmark's JSON (bench_<name>.json), the machine (machine.json).
#   scripts/run-bench.sh BUILD_DIR
# Environment:
#   BENCH_ONLY="fanout_harness drop_harness"  run only these (default: all)
#   BENCH_ARGS_<name>="..."                   extra arguments for one binary,
#                                             e.g. BENCH_ARGS_fanout_harness="--listeners 1000 100000"
#   BENCH_LABEL="..."                         a line under the report's title
#   BENCH_REPORT_DIR=DIR                      the report there instead of BUILD_DIR/bench-report
# Exit status: non-zero if any benchmark or the report failed; 0 (with a
# note) if none exist.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
OUT=${BENCH_REPORT_DIR:-$BUILD_DIR/bench-report}
DATA="$OUT/data"
# The harnesses that write JSON lines for the report (bench/jsonl.h).
JSON_HARNESSES=" fanout_harness drop_harness joins_harness join_harness "

shopt -s nullglob
rm -rf "$DATA"
mkdir -p "$DATA"
"$PY" scripts/bench-report.py --machine-facts "$DATA/machine.json" --build-dir "$BUILD_DIR"
ran=0
failed=()
for bin in "$BUILD_DIR"/bench/*_harness "$BUILD_DIR"/bench/bench_*; do
  [[ -f "$bin" && -x "$bin" ]] || continue
  name=$(basename "$bin")
  if [[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" $name "* ]]; then continue; fi
  printf '\n==================== %s ====================\n' "$name"
  ran=$((ran + 1))
  args=()
  if [[ "$JSON_HARNESSES" == *" $name "* ]]; then
    args+=(--json "$DATA/$name.jsonl")
  elif [[ "$name" == bench_* ]]; then
    args+=("--benchmark_out=$DATA/$name.json" --benchmark_out_format=json)
  fi
  extra_var="BENCH_ARGS_$name"
  # shellcheck disable=SC2206  # word splitting of the user's extra arguments is the point
  extra=(${!extra_var:-})
  rc=0
  "$bin" "${args[@]}" "${extra[@]}" 2>&1 | tee "$DATA/$name.log" || rc=${PIPESTATUS[0]}
  if (( rc != 0 )); then
    echo "$name: exited with status $rc"
    failed+=("$name")
  fi
done

if (( ran == 0 )); then
  echo "no benchmarks built yet (looked for $BUILD_DIR/bench/*_harness and $BUILD_DIR/bench/bench_*)"
  exit 0
fi
"$PY" scripts/bench-report.py --machine-facts "$DATA/machine.json" --finish
echo
if "$PY" scripts/bench-report.py "$DATA" -o "$OUT" --label "${BENCH_LABEL:-}"; then
  echo "report: $OUT/report.md"
else
  echo "bench-report.py failed"
  failed+=("bench-report")
fi
echo "$ran benchmark(s) run, ${#failed[@]} failed${failed:+: ${failed[*]}}"
(( ${#failed[@]} == 0 ))
