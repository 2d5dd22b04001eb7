#!/usr/bin/env bash
# End-to-end: stentord (net_null profile) with its HTTP API, driven by curl
# and stentorctl, and read through dpdk-telemetry.py. Prints PASS/FAIL lines.
# Bounded (< 30 s); stops only the stentord it started.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T=control_api
STENTORD="$BUILD_DIR/control/stentord"
CTL="$BUILD_DIR/control/stentorctl"
PREFIX="stentor-e2e-api-$$"
WORK=$(mktemp -d /tmp/stentor-e2e-api.XXXXXX)
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; }
if [[ ! -x "$STENTORD" || ! -x "$CTL" ]]; then fail "${T}_setup" "stentord/stentorctl not built"; exit 1; fi
# The bench profile on a free port of its own.
PORT=$(( 20000 + $$ % 20000 ))
sed -e "s/^listen = .*/listen = \"127.0.0.1:$PORT\"/" configs/bench-null.toml >"$WORK/p.toml"
export STENTOR_TOKEN=bench-token-change-me-please
"$STENTORD" -c "$WORK/p.toml" --file-prefix "$PREFIX" --duration 25 >"$WORK/d.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done
CTLA=("$CTL" --api "127.0.0.1:$PORT")
if curl -sf "http://127.0.0.1:$PORT/api/v1/health" | grep -q '"ok"'; then pass "${T}_health"; else fail "${T}_health" "no health answer"; cat "$WORK/d.log"; exit 1; fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/stats")
[[ "$code" == 401 ]] && pass "${T}_token_required" || fail "${T}_token_required" "got $code"
if "${CTLA[@]}" listener add 1 203.0.113.5:6000 --tier 1 >/dev/null && [[ $("${CTLA[@]}" show session 1 --json) == *'"listeners": 1'* ]]; then
  pass "${T}_cli_listener_add"; else fail "${T}_cli_listener_add" "listener not added"; fi
if "${CTLA[@]}" listener add 1 127.0.0.1:6000 2>"$WORK/err"; then fail "${T}_cli_refusal" "loopback accepted"
elif grep -q invalid "$WORK/err"; then pass "${T}_cli_refusal"; else fail "${T}_cli_refusal" "no reason"; fi
top_out=$("${CTLA[@]}" top --iterations 2 --interval-ms 200 2>&1)
if grep -q null0 <<<"$top_out"; then pass "${T}_cli_top"; else fail "${T}_cli_top" "no port line"; fi
metrics=$(curl -s -H "Authorization: Bearer $STENTOR_TOKEN" "http://127.0.0.1:$PORT/metrics")
if grep -q 'stentor_drops_total{reason="ingress/eth_type"}' <<<"$metrics"; then
  pass "${T}_metrics"; else fail "${T}_metrics" "drop metric missing"; fi
if command -v dpdk-telemetry.py >/dev/null; then
  out=$(echo "/stentor/stats" | timeout 10 /usr/bin/python3 "$(command -v dpdk-telemetry.py)" -f "$PREFIX" 2>&1)
  if grep -q '"listeners": 1' <<<"$out"; then pass "${T}_telemetry"; else fail "${T}_telemetry" "unexpected: ${out:0:200}"; fi
fi
if "${CTLA[@]}" listener del 1 203.0.113.5:6000 >/dev/null && [[ $("${CTLA[@]}" show session 1 --json) == *'"listeners": 0'* ]]; then
  pass "${T}_cli_listener_del"; else fail "${T}_cli_listener_del" "listener not removed"; fi
