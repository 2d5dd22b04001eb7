#!/usr/bin/env bash
# Run every Stentor test suite and print one summary line "N passed, M failed".
#   scripts/run-tests.sh BUILD_DIR
# Suites: GoogleTest binaries (unit, integration) and tests/e2e/*.sh scripts
# (each prints "PASS <name>" / "FAIL <name> <reason>" lines).
# Exit status: 1 if anything failed or nothing ran.
# Environment: GTEST_TIMEOUT (s, default 1200), E2E_TIMEOUT (s, default 300;
# a script's own "# e2e-timeout: S" line may raise it for that script).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
BUILD_DIR=${1:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
export BUILD_DIR
GTEST_TIMEOUT=${GTEST_TIMEOUT:-1200}
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3

TMP=$(mktemp -d /tmp/stentor-tests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

PASSED=0
FAILED=0
FAILED_NAMES=()

banner() { printf '\n==================== %s ====================\n' "$*"; }

# --- GoogleTest binaries ------------------------------------------------------
GTESTS=(tests/unit/unit_tests tests/integration/integration_tests tests/api/api_tests tests/fleet/fleet_tests)
for rel in "${GTESTS[@]}"; do
  bin="$BUILD_DIR/$rel"
  name=$(basename "$rel")
  if [[ ! -x "$bin" ]]; then
    echo "(skipping $name: $bin not built)"
    continue
  fi
  banner "$name"
  xml="$TMP/$name.xml"
  rc=0
  t0=$SECONDS
  timeout --foreground -k 10 "$GTEST_TIMEOUT" "$bin" --gtest_output="xml:$xml" || rc=$?
  if [[ ! -s "$xml" ]]; then
    echo "$name: exited with status $rc and wrote no XML report (crash or timeout)"
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$name(exit $rc, no report)")
    continue
  fi
  # Prints: "<passed> <failed>" then one failed test name per line.
  counts=$("$PY" - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except ET.ParseError as e:
    print("0 0"); print("!unparsable-report"); sys.exit(0)
passed, failed = 0, []
for tc in root.iter("testcase"):
    name = f'{tc.get("classname")}.{tc.get("name")}'
    if tc.find("failure") is not None or tc.find("error") is not None:
        failed.append(name)
    elif tc.get("result") == "skipped" or tc.get("status") == "notrun" \
            or tc.find("skipped") is not None:
        continue
    else:
        passed += 1
print(passed, len(failed))
for f in failed:
    print(f)
PYEOF
)
  read -r p f <<<"$(head -n1 <<<"$counts")"
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  while IFS= read -r line; do
    [[ -n "$line" ]] && FAILED_NAMES+=("$name:$line")
  done < <(tail -n +2 <<<"$counts")
  if grep -q '^!unparsable-report' <<<"$counts"; then
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$name(unparsable XML report)")
  elif (( rc != 0 && f == 0 )); then
    echo "$name: exited with status $rc but its report lists no failure"
    f=1; FAILED=$((FAILED + 1)); FAILED_NAMES+=("$name(exit $rc)")
  fi
  echo "$name: $p passed, $f failed ($((SECONDS - t0)) s)"
done

# --- end-to-end scripts -------------------------------------------------------
shopt -s nullglob
for script in tests/e2e/*.sh; do
  name=$(basename "$script" .sh)
  banner "$name"
  out="$TMP/$name.out"
  set +e
  # A script that builds what it runs (fuzz_smoke: clang with sanitizers)
  # may ask for more time with a "# e2e-timeout: SECONDS" line.
  limit=$(grep -m1 -oP '^# e2e-timeout: \K[0-9]+' "$script" || true)
  t0=$SECONDS
  (( ${limit:-0} > E2E_TIMEOUT )) || limit=$E2E_TIMEOUT
  timeout --foreground -k 10 "$limit" bash "$script" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  p=$(grep -c '^PASS ' "$out" || true)
  f=$(grep -c '^FAIL ' "$out" || true)
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  while read -r _ tname _; do
    FAILED_NAMES+=("$tname")
  done < <(grep '^FAIL ' "$out" || true)
  if (( rc != 0 && f == 0 )); then
    echo "$name: exited with status $rc without reporting a FAIL"
    f=1; FAILED=$((FAILED + 1)); FAILED_NAMES+=("$name(exit $rc)")
  fi
  echo "$name: $p passed, $f failed ($((SECONDS - t0)) s)"
done

# --- summary ------------------------------------------------------------------
banner "summary"
if (( ${#FAILED_NAMES[@]} > 0 )); then
  echo "failed:"
  printf '  %s\n' "${FAILED_NAMES[@]}"
fi
if (( PASSED == 0 )); then
  echo "no test passed (nothing built or nothing ran)"
fi
echo "(every suite: $SECONDS s)"
echo "$PASSED passed, $FAILED failed"
if (( FAILED > 0 || PASSED == 0 )); then
  exit 1
fi
