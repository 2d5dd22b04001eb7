#!/usr/bin/env bash
# e2e-timeout: 900   (the clang builds of the targets count: slow on a loaded 2-core host)
# Short libFuzzer smoke of every fuzz target (clang, ASan + UBSan): builds
# them with fuzz/build.sh and runs each for at most 200 k inputs or 15 s,
# whichever comes first (the six together stay around a minute once
# built). The long runs (>= 10 M executions) are `make fuzz`,
# outside CI. Prints "PASS <target>_smoke" / "FAIL <target>_smoke <reason>".
# Environment: BUILD_DIR (default build); binaries and the working corpus go
# to BUILD_DIR/fuzz.
set -uo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
OUT="$BUILD_DIR/fuzz"
TARGETS=(fuzz_parse fuzz_profile fuzz_api fuzz_journal fuzz_arp fuzz_stun)

if ! bash "$REPO/fuzz/build.sh" "$OUT" >"$BUILD_DIR/fuzz-build.log" 2>&1; then
  for t in "${TARGETS[@]}"; do echo "FAIL ${t}_smoke build failed (see $BUILD_DIR/fuzz-build.log)"; done
  exit 1
fi

status=0
for t in "${TARGETS[@]}"; do
  line=$(FUZZ_OUT="$OUT" FUZZ_ARGS="-runs=200000" bash "$REPO/fuzz/run.sh" 15 "$t" 2>&1)
  rc=$?
  echo "$line"
  summary=$(grep "^FUZZ $t " <<<"$line" || true)
  execs=$(grep -o 'execs=[0-9]*' <<<"$summary" | cut -d= -f2)
  if (( rc == 0 )) && [[ -n "$summary" ]] && (( ${execs:-0} > 0 )); then
    echo "PASS ${t}_smoke"
  else
    echo "FAIL ${t}_smoke rc=$rc ${summary:-no summary}"
    status=1
  fi
done
exit $status
