#!/usr/bin/env bash
# End-to-end: the fleet's registry and director with real processes (issue 13
# items 3, 4, 6, 7): a real etcd on loopback, an origin and an edge stentord
# (configs/dev-fleet-*.toml: net_null ports, idle workers sleeping, [fleet]),
# a stentor-director, curl as the application backend.
#   - both relays register under leases; the director places listeners on the
#     edge and records the trunk once;
#   - etcd SIGKILLed: the relays go on; etcd back: their keys are there;
#   - the edge SIGKILLed: its key is gone within its lease (2 s, printed), the
#     director stops placing there;
#   - the edge again, then SIGTERM: draining in the registry first, then gone.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 90 s).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
DIRECTOR="$BUILD_DIR/control/stentor-director"
T="e2e_fleet"
PY=/usr/bin/python3

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

for bin in "$STENTORD" "$DIRECTOR"; do
  [[ -x "$bin" ]] || { fail "${T}_setup" "$bin not built"; exit 1; }
done
command -v etcd >/dev/null && command -v etcdctl >/dev/null || { fail "${T}_setup" "etcd/etcdctl missing (scripts/deps.sh)"; exit 1; }

WORK=$(mktemp -d /tmp/stentor-fleet.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CP=$(free_port); PP=$(free_port); DP=$(free_port); AE=$(free_port); AO=$(free_port)
ETCD_URL="http://127.0.0.1:$CP"
export ETCDCTL_API=3
ectl() { timeout 5 etcdctl --endpoints="$ETCD_URL" --dial-timeout=1s --command-timeout=2s "$@"; }

ETCD_PID=""
start_etcd() {
  etcd --name default --data-dir "$WORK/etcd" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
    --initial-cluster "default=http://127.0.0.1:$PP" --log-level warn >>"$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  for _ in $(seq 100); do ectl endpoint health >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
# key_value KEY: the value, or nothing.
key_value() { ectl get --print-value-only "$1" 2>/dev/null || true; }
# wait_for SECONDS CMD...: poll every 0.1 s; 0 if CMD succeeded in time.
wait_for() {
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}
has_key() { [[ -n "$(key_value "$1")" ]]; }
no_key() { [[ -z "$(key_value "$1")" ]]; }

# make_profile ROLE OUT API_PORT: the dev profile pointed at our etcd and API port.
# The fleet's trunk key (docs/fleet.md "Trunk authentication") in place of
# the dev profiles' allow_unauthenticated_trunks: the same file for both.
TRUNK_KEY="$WORK/trunk.key"
(umask 077; openssl rand -hex 32 >"$TRUNK_KEY")
make_profile() {
  sed -e "s|^etcd = .*|etcd = [\"$ETCD_URL\"]|" -e "s|^listen = .*|listen = \"127.0.0.1:$3\"|" \
    -e "s|^allow_unauthenticated_trunks = true$|trunk_key_file = \"$TRUNK_KEY\"|" \
    "configs/dev-fleet-$1.toml" >"$2"
}
RELAY_PID=""
start_relay() {   # ROLE PROFILE LOG
  "$STENTORD" -c "$2" --file-prefix "stfleet-$1-$$" >"$3" 2>&1 &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  wait_for 20 grep -q 'stentord: ready' "$3"
}

if ! start_etcd; then fail "${T}_etcd" "etcd did not start"; cat "$WORK/etcd.log" >&2; exit 1; fi
pass "${T}_etcd"

make_profile origin "$WORK/origin.toml" "$AO"
make_profile edge "$WORK/edge.toml" "$AE"
if ! start_relay origin "$WORK/origin.toml" "$WORK/origin.log"; then
  fail "${T}_origin_ready" "no 'stentord: ready'"; tail -20 "$WORK/origin.log" >&2; exit 1
fi
ORIGIN_PID=$RELAY_PID
if ! start_relay edge "$WORK/edge.toml" "$WORK/edge.log"; then
  fail "${T}_edge_ready" "no 'stentord: ready'"; tail -20 "$WORK/edge.log" >&2; exit 1
fi
EDGE_PID=$RELAY_PID

EK=/stentor/relays/edge-1
OK=/stentor/relays/origin-1
if wait_for 5 has_key "$EK" && wait_for 5 has_key "$OK"; then
  pass "${T}_registered"
  echo "# edge record: $(key_value "$EK")"
  echo "# origin record: $(key_value "$OK")"
else
  fail "${T}_registered" "keys $EK / $OK not in etcd"
fi
if key_value "$OK" | jq -e '.role == "origin" and .sessions == [[1, 40000, [1234]]]' >/dev/null \
   && key_value "$EK" | jq -e '.role == "edge" and .slots > 0 and .addresses == ["198.18.0.1"] and .draining == false' >/dev/null; then
  pass "${T}_records"
else
  fail "${T}_records" "records lack role, slots, addresses or sessions"
fi
if grep -q 'idle: adaptive' "$WORK/edge.log"; then pass "${T}_edge_idle_adaptive"; else fail "${T}_edge_idle_adaptive" "no 'idle: adaptive' line"; fi

# --- the director ---------------------------------------------------------------
KEYFILE="$WORK/join-1.key"
(umask 077; openssl rand -hex 32 >"$KEYFILE")
DTOKEN=fleet-e2e-director-token
cat >"$WORK/director.toml" <<EOF
[fleet]
etcd = ["$ETCD_URL"]
[join]
keys = [{ id = 1, secret_file = "$KEYFILE" }]
[director]
listen = "127.0.0.1:$DP"
director_id = "d-e2e"
token = "$DTOKEN"
stale_s = 3
EOF
"$DIRECTOR" serve -c "$WORK/director.toml" >"$WORK/director.log" 2>&1 &
DIR_PID=$!
PIDS+=("$DIR_PID")
if ! wait_for 10 grep -q '^director: ready' "$WORK/director.log"; then
  fail "${T}_director_ready" "no 'director: ready'"; cat "$WORK/director.log" >&2; exit 1
fi
pass "${T}_director_ready"
place() {   # N [SESSION]: prints "HTTP_CODE BODY"
  curl -s -m 5 -o "$WORK/place.json" -w '%{http_code}' -H "Authorization: Bearer $DTOKEN" \
    -d "{\"session\": ${2:-1}, \"listeners\": $1}" "http://127.0.0.1:$DP/v1/place" || echo 000
}
code=$(place 5)
if [[ "$code" == 200 ]] && jq -e '(.placements | length) == 5 and all(.placements[]; .edge == "edge-1" and .address == "198.18.0.1" and .port == 40000 and (.token | length) == 48 and (.password | length) == 22) and .trunks_created == 1' "$WORK/place.json" >/dev/null; then
  pass "${T}_place"
else
  fail "${T}_place" "HTTP $code: $(head -c 300 "$WORK/place.json")"
fi
if key_value /stentor/trunks/1/edge-1 | jq -e '.origin == "origin-1" and .udp_port == 40000' >/dev/null; then
  pass "${T}_trunk_recorded"
else
  fail "${T}_trunk_recorded" "no trunk key /stentor/trunks/1/edge-1"
fi
code=$(place 3)
if [[ "$code" == 200 ]] && jq -e '.trunks_created == 0' "$WORK/place.json" >/dev/null; then pass "${T}_trunk_once"; else fail "${T}_trunk_once" "HTTP $code: $(head -c 200 "$WORK/place.json")"; fi
if curl -s -m 5 -H "Authorization: Bearer $DTOKEN" "http://127.0.0.1:$DP/v1/registry" \
   | jq -e '(.relays | map(.id) | sort) == ["edge-1", "origin-1"] and .directors == 1 and .trunks == 1 and .stale == false' >/dev/null; then
  pass "${T}_registry_view"
else
  fail "${T}_registry_view" "GET /v1/registry does not show the two relays, one director, one trunk"
fi
code=$(place 1 9)
if [[ "$code" == 404 ]] && jq -e '.error == "unknown_session"' "$WORK/place.json" >/dev/null; then pass "${T}_unknown_session"; else fail "${T}_unknown_session" "HTTP $code"; fi
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -d '{"session":1,"listeners":1}' "http://127.0.0.1:$DP/v1/place" || echo 000)
if [[ "$code" == 401 ]]; then pass "${T}_needs_token"; else fail "${T}_needs_token" "HTTP $code without a token"; fi

# --- etcd down and back -----------------------------------------------------------
kill -KILL "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null || true
sleep 2
alive=1
kill -0 "$EDGE_PID" 2>/dev/null || alive=0
kill -0 "$ORIGIN_PID" 2>/dev/null || alive=0
if (( alive )); then pass "${T}_relays_survive_etcd_down"; else fail "${T}_relays_survive_etcd_down" "a relay exited"; fi
# stale_s = 3: within it the director still places, past it it refuses.
sleep 2
code=$(place 1)
if [[ "$code" == 503 ]] && jq -e '.error == "registry_stale"' "$WORK/place.json" >/dev/null; then
  pass "${T}_director_refuses_when_stale"
  echo "# director: $(jq -r .reason "$WORK/place.json")"
else
  fail "${T}_director_refuses_when_stale" "HTTP $code: $(head -c 200 "$WORK/place.json")"
fi
if grep -q 'fleet: etcd unreachable' "$WORK/edge.log"; then pass "${T}_relay_logs_etcd_lost"; else fail "${T}_relay_logs_etcd_lost" "no 'fleet: etcd unreachable' line"; fi
if ! start_etcd; then fail "${T}_etcd_restart" "etcd did not start again"; exit 1; fi
if wait_for 10 has_key "$EK" && wait_for 10 has_key "$OK"; then pass "${T}_keys_back_after_etcd_restart"; else fail "${T}_keys_back_after_etcd_restart" "keys missing"; fi
if wait_for 10 bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$DP/healthz) == 200 ]]"; then
  pass "${T}_director_fresh_again"
else
  fail "${T}_director_fresh_again" "healthz not 200"
fi

# --- the edge SIGKILLed ---------------------------------------------------------------
t0=$(date +%s.%N)
kill -KILL "$EDGE_PID"; wait "$EDGE_PID" 2>/dev/null || true
if wait_for 6 no_key "$EK"; then
  t1=$(date +%s.%N)
  echo "# edge SIGKILLed: its key gone after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s (lease_ttl_s = 2)"
  pass "${T}_sigkill_key_gone"
else
  fail "${T}_sigkill_key_gone" "key $EK still there 6 s after SIGKILL (lease_ttl_s = 2)"
fi
code=$(place 1)
if [[ "$code" == 503 ]] && jq -e '.error == "no_capacity"' "$WORK/place.json" >/dev/null; then pass "${T}_no_placement_on_dead_edge"; else fail "${T}_no_placement_on_dead_edge" "HTTP $code: $(head -c 200 "$WORK/place.json")"; fi

# --- the edge again, then SIGTERM: draining first -----------------------------------------
if ! start_relay edge "$WORK/edge.toml" "$WORK/edge2.log"; then fail "${T}_edge_restart" "no ready"; exit 1; fi
EDGE_PID=$RELAY_PID
wait_for 5 has_key "$EK" || fail "${T}_edge_reregistered" "no key"
ectl watch "$EK" >"$WORK/watch.log" 2>&1 &
WPID=$!
PIDS+=("$WPID")
sleep 0.5
kill -TERM "$EDGE_PID"
wait "$EDGE_PID" 2>/dev/null || true
sleep 0.5
kill "$WPID" 2>/dev/null || true
if grep -q '"draining":true' "$WORK/watch.log" && grep -q '^DELETE' "$WORK/watch.log" \
   && grep -q 'fleet: draining: the registry says so' "$WORK/edge2.log"; then
  pass "${T}_sigterm_drains_then_leaves"
else
  fail "${T}_sigterm_drains_then_leaves" "watch saw: $(tr '\n' ' ' <"$WORK/watch.log" | head -c 300)"
fi
no_key "$EK" && pass "${T}_sigterm_key_gone" || fail "${T}_sigterm_key_gone" "key still there"

kill -TERM "$DIR_PID" "$ORIGIN_PID" 2>/dev/null || true
wait "$DIR_PID" "$ORIGIN_PID" 2>/dev/null || true
(( FAILS == 0 ))
