#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time and report, per target, the
# executions reached and the findings (crash/leak/timeout/oom artifacts).
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: $FUZZ_SECONDS or 300, all targets)
# Prints one line per target:
#   FUZZ <target> execs=<n> seconds=<s> corpus=<n> findings=<n>
# and exits non-zero if any target produced a finding or failed to run.
# Extra libFuzzer flags for every target: FUZZ_ARGS (e.g. "-max_len=4096").
# The growing corpus lives in $FUZZ_OUT/corpus_<name> (default build-fuzz/),
# seeded read-only from fuzz/corpus_<name>, so the git tree stays clean.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
SECONDS_EACH=${1:-${FUZZ_SECONDS:-300}}
shift || true
OUT=${FUZZ_OUT:-$REPO/build-fuzz}
TARGETS=("$@")
(( ${#TARGETS[@]} > 0 )) || TARGETS=(fuzz_parse fuzz_profile fuzz_api fuzz_journal fuzz_arp fuzz_stun)

bash "$REPO/fuzz/build.sh" "$OUT" >/dev/null

status=0
for t in "${TARGETS[@]}"; do
  short=${t#fuzz_}
  corpus="$OUT/corpus_$short"
  art="$OUT/artifacts_$short/"
  log="$OUT/$t.log"
  mkdir -p "$corpus" "$art"
  seeds=()
  [[ -d "$REPO/fuzz/corpus_$short" ]] && seeds=("$REPO/fuzz/corpus_$short")
  dict=()
  [[ -f "$REPO/fuzz/$short.dict" ]] && dict=(-dict="$REPO/fuzz/$short.dict")
  before=$(find "$art" -type f | wc -l)
  rc=0
  # -rss_limit/-timeout: a slow or memory-hungry input is a finding too.
  "$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" ${FUZZ_ARGS:-} \
    "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  # A crashed run prints no "Done" line: fall back to the last status line.
  execs=$( { grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true; } | grep -o '[0-9]*$' | tail -n1 || true)
  secs=$( { grep -o 'Done [0-9]* runs in [0-9]* second' "$log" || true; } | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -n1 || true)
  after=$(find "$art" -type f | wc -l)
  findings=$((after - before))
  ncorpus=$(find "$corpus" -type f | wc -l)
  echo "FUZZ $t execs=${execs:-0} seconds=${secs:-?} corpus=$ncorpus findings=$findings"
  if (( rc != 0 || findings > 0 )); then
    echo "  $t: exit $rc; see $log and $art" >&2
    grep -m5 -E 'ERROR|SUMMARY|runtime error' "$log" >&2 || true
    status=1
  fi
done
exit $status
