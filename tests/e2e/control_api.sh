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
# Join tokens (docs/join.md): one key, readable by its owner only.
(umask 077; printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f >"$WORK/join-3.key")
printf '\n[join]\nkeys = [ { id = 3, secret_file = "%s" } ]\n' "$WORK/join-3.key" >>"$WORK/p.toml"
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
# Tokens minted by the daemon verify with an implementation that is not the
# relay's (Python's hmac), and their passwords are the derived ones.
if "${CTLA[@]}" tokens mint --session 1 --count 1000 --tier 2 --ttl 300 >"$WORK/tokens" 2>"$WORK/err" &&
   /usr/bin/python3 - "$WORK/join-3.key" "$WORK/tokens" <<'PY'
import base64, hashlib, hmac, struct, sys, time
key = bytes.fromhex(open(sys.argv[1]).read().strip())
lines = open(sys.argv[2]).read().split("\n")[:-1]
assert len(lines) == 1000, len(lines)
nonces = set()
for line in lines:
    token, password = line.split(" ")
    raw = base64.urlsafe_b64decode(token + "==")
    v, kid, sid, tier, flags, exp, nonce = struct.unpack(">BBIBBIQ", raw[:20])
    mac = hmac.new(key, b"stentor-join-v1" + raw[:20], hashlib.sha256).digest()
    assert (v, kid, sid, tier, flags) == (1, 3, 1, 2, 0), (v, kid, sid, tier, flags)
    assert abs(exp - (time.time() + 300)) < 30, exp
    assert raw[20:] == mac[:16], token
    assert password == base64.urlsafe_b64encode(mac[16:]).rstrip(b"=").decode(), password
    nonces.add(nonce)
assert len(nonces) == 1000
PY
then pass "${T}_cli_tokens_mint"; else fail "${T}_cli_tokens_mint" "$(head -c 300 "$WORK/err")"; fi
grep -q "join: keys 3 live, minting with key 3" "$WORK/d.log" && pass "${T}_join_keys_logged" || fail "${T}_join_keys_logged" "no join line"
# A key file others can read is refused at start, naming the file and the setting.
chmod 644 "$WORK/join-3.key"
if out=$("$STENTORD" -c "$WORK/p.toml" --check 2>&1); then fail "${T}_join_key_mode" "accepted a 0644 key file"
elif grep -q "join.keys\[0\].secret_file: $WORK/join-3.key: readable or writable by group or others (mode 0644)" <<<"$out"; then
  pass "${T}_join_key_mode"; else fail "${T}_join_key_mode" "unexpected: ${out:0:300}"; fi
