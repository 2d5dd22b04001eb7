#!/usr/bin/env bash
# End-to-end: Stentor's DPDK telemetry commands through the telemetry socket
# of a running stentord (net_null profile), with more sessions (300) than a
# telemetry dict holds (256). Read with DPDK's own client
# (dpdk-telemetry.py) and with a plain socket client that pages through
# /stentor/sessions with its cursor. Prints PASS/FAIL lines. Bounded
# (< 40 s); stops only the stentord it started.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T=e2e_telemetry
STENTORD="$BUILD_DIR/control/stentord"
PREFIX="stentor-e2e-tel-$$"
WORK=$(mktemp -d /tmp/stentor-e2e-tel.XXXXXX)
PY=/usr/bin/python3
PID=
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; }
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "stentord not built"; exit 1; fi
TELE=$(command -v dpdk-telemetry.py || true)
if [[ -z "$TELE" ]]; then fail "${T}_setup" "dpdk-telemetry.py missing (Debian package dpdk)"; exit 1; fi

PORT=$(( 20000 + ($$ + 7919) % 20000 ))
sed -e "s/^listen = .*/listen = \"127.0.0.1:$PORT\"/" configs/bench-null.toml >"$WORK/p.toml"
export STENTOR_TOKEN=bench-token-change-me-please
"$STENTORD" -c "$WORK/p.toml" --file-prefix "$PREFIX" --duration 40 >"$WORK/d.log" 2>&1 &
PID=$!
API="http://127.0.0.1:$PORT"
for _ in $(seq 1 150); do
  curl -sf "$API/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -sf "$API/api/v1/health" >/dev/null; then fail "${T}_setup" "no API"; tail -20 "$WORK/d.log"; exit 1; fi

# 299 more sessions (the profile has session 1): 300 in all.
"$PY" - "$API" "$STENTOR_TOKEN" <<'PY' || { fail "${T}_setup" "could not create the sessions"; exit 1; }
import http.client, json, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
h = {"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"}
for i in range(2, 301):
    c.request("POST", "/api/v1/sessions", json.dumps({"id": i}), h)
    r = c.getresponse(); r.read()
    assert r.status == 201, (i, r.status)
PY

SOCK="/var/run/dpdk/$PREFIX/dpdk_telemetry.v2"
# A plain client of the telemetry socket (SOCK_SEQPACKET, one JSON reply per
# command): pages through /stentor/sessions with its cursor, asks every
# session for itself, and tries bad parameters.
if "$PY" - "$SOCK" >"$WORK/client.out" 2>&1 <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
info = json.loads(s.recv(1024))
size = info["max_output_len"]
def ask(cmd):
    s.send(cmd.encode())
    reply = s.recv(size)
    return json.loads(reply)[cmd.split(",")[0]]
ids, cursor, pages = [], None, 0
while True:
    a = ask("/stentor/sessions" + ("," + str(cursor) if cursor is not None else ""))
    assert "error" not in a, a
    assert a["total"] == 300, a["total"]
    ids += a["ids"]
    pages += 1
    if "next" not in a:
        break
    cursor = a["next"]
assert ids == list(range(1, 301)), ids[:5]
assert pages == 2, pages
for i in ids:
    one = ask("/stentor/session,%d" % i)
    assert one["id"] == i, one
    assert isinstance(one["listeners"], int) and isinstance(one["counters"]["packets_in"], int), one
for cmd, code in [("/stentor/session", "invalid"), ("/stentor/session,abc", "invalid"),
                  ("/stentor/session,4000", "not_found"), ("/stentor/stats,1", "invalid"),
                  ("/stentor/port,nope", "not_found")]:
    a = ask(cmd)
    assert a.get("error") == code and a.get("reason"), (cmd, a)
lc = ask("/stentor/lcores")["lcores"]["1"]
assert isinstance(lc["busy_ppm"], int), lc
counters = ask("/stentor/counters")
assert isinstance(counters["drop"]["ingress"]["eth_runt"], int), counters["drop"]["ingress"]
print("sessions", len(ids), "pages", pages)
PY
then pass "${T}_300_sessions_paged"; else fail "${T}_300_sessions_paged" "$(tail -c 400 "$WORK/client.out")"; fi

# DPDK's own client reads the same commands.
out=$(printf '/stentor/session,300\n/stentor/session,x\n/stentor/build\n' |
      timeout 10 "$PY" "$TELE" -f "$PREFIX" 2>&1)
if grep -q '"id": 300' <<<"$out" && grep -q '"error": "invalid"' <<<"$out" && grep -q '"dpdk": "DPDK' <<<"$out"; then
  pass "${T}_dpdk_client"; else fail "${T}_dpdk_client" "unexpected: ${out:0:300}"; fi
