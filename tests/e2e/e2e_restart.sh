#!/usr/bin/env bash
# End-to-end: nothing accepted is lost across a restart (issue 10).
# stentord (DPDK net_af_packet on a veth, journal on) gets over its HTTP API
# a second session with a speaker and 100 000 listeners (10 bulk requests),
# a session created and ended, the static listener l3 moved to another
# port; then SIGKILL, and a new stentord on the same profile. Checks: the
# same sessions, speakers and listeners (every field, in join order), the
# static section not loaded again, and the real listeners l1 and l2
# (GStreamer) hear the speaker (ffmpeg) again while l3 hears nothing on its
# old port. Prints "PASS <name>" / "FAIL <name> <reason>". Bounded (< 90 s).
#
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
SECONDS_OF_TONE=4
NB_LISTENERS=100000
T="e2e_restart"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
if [[ ! -x "$STENTORD" ]]; then
  fail "${T}_setup" "$STENTORD not built"; exit 1
fi
for tool in jq curl python3; do
  command -v "$tool" >/dev/null || { fail "${T}_setup" "$tool not installed"; exit 1; }
done

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
e2e_hook() { rm -rf "$WORK"; }
netlib_trap e2e_hook

if ! netlib_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

# dev-veth with a pinned gateway (the 100 000 listeners are off-link and
# need no ARP) and the journal in the work directory.
CONFIG="$WORK/restart.toml"
sed -e 's|^ipv4 = "198.18.0.1/24"|&\ngateway = "198.18.0.254"\ngateway_mac = "02:00:c6:12:00:fe"|' \
  configs/dev-veth.toml >"$CONFIG"
printf '\n[journal]\ndir = "%s/journal"\n' "$WORK" >>"$CONFIG"
if ! "$STENTORD" --check -c "$CONFIG" >"$WORK/check.log" 2>&1; then
  cat "$WORK/check.log" >&2
  fail "${T}_setup" "profile does not validate"; exit 1
fi
TOKEN=$(awk -F'"' '/^token = /{ print $2 }' "$CONFIG")
API_PORT=$(sed -n 's/^listen = "[^:]*:\([0-9]*\)".*/\1/p' "$CONFIG")
API="http://127.0.0.1:$API_PORT/api/v1"

# The API listens on loopback inside the relay's namespace.
api() {  # METHOD PATH [BODY_FILE]
  local method=$1 path=$2 body=${3:-}
  local args=(-s -o "$WORK/reply" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$body")
  ip netns exec "$NL_NS_RELAY" curl "${args[@]}" "$API$path"
}
expect() {  # NAME WANT_STATUS METHOD PATH [BODY_FILE]
  local name=$1 want=$2; shift 2
  local got
  got=$(api "$@")
  if [[ "$got" != "$want" ]]; then
    fail "${T}_$name" "$1 $2 answered $got, not $want: $(head -c 300 "$WORK/reply")"
    return 1
  fi
}
body() { printf '%s' "$1" >"$WORK/body.json"; echo "$WORK/body.json"; }

# Everything a restart must keep: sessions (every field, speakers) and each
# session's listeners in join order. Not their counters: those count since
# this stentord started (docs/metrics.md).
dump_state() {  # OUT
  local out=$1 ids id
  api GET /sessions >/dev/null
  jq -S '.sessions | map(del(.counters) | .speakers |= map(del(.counters))) | sort_by(.id)' "$WORK/reply" >"$out"
  ids=$(jq -r '.[].id' "$out")
  for id in $ids; do
    api GET "/sessions/$id/listeners?offset=0&limit=100000" >/dev/null
    { echo "session $id"; jq -c '.total, .listeners' "$WORK/reply"; } >>"$out"
  done
}

RELAY_LOG="$WORK/stentord-1.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$CONFIG" 300 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then
  fail "${T}_relay_ready" "first stentord not ready (rc $rc)"; exit 1
fi
if grep -q " journal: empty: the profile's static section (1 sessions) seeds the state" "$RELAY_LOG"; then
  pass "${T}_first_start_seeds_static"
else
  fail "${T}_first_start_seeds_static" "no seeding line: $(grep ' journal: ' "$RELAY_LOG" | tr '\n' ' ')"
fi

# --- accepted actions -----------------------------------------------------
ok=1
expect create_session 201 POST /sessions "$(body '{"name":"crowd","udp_port":40001,"max_bitrate_kbps":16}')" || ok=0
expect add_speaker 201 POST /sessions/2/speakers "$(body '{"ip":"198.18.0.11","port":5004,"ssrc":77}')" || ok=0
python3 - "$WORK" "$NB_LISTENERS" <<'EOF'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
per = 10000
for b in range(n // per):
    items = []
    for k in range(b * per, (b + 1) * per):
        host = k // 16   # 10.x.y.z via the gateway, 16 ports per address
        ip = f"10.{host // 62500}.{(host // 250) % 250}.{1 + host % 250}"
        items.append({"ip": ip, "port": 20000 + k % 16, "tier": 1 + k % 3})
    with open(f"{work}/bulk{b}.json", "w") as f:
        json.dump({"listeners": items}, f)
EOF
t0=$(date +%s.%N)
for f in "$WORK"/bulk*.json; do
  expect bulk_join 201 POST /sessions/2/listeners/bulk "$f" || { ok=0; break; }
done
t1=$(date +%s.%N)
echo "# $NB_LISTENERS joins over the API in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
expect create_gone 201 POST /sessions "$(body '{"name":"gone"}')" || ok=0
expect end_gone 200 DELETE /sessions/3 || ok=0
expect move_l3_del 200 DELETE /sessions/1/listeners/198.18.0.23:5004 || ok=0
expect move_l3_add 201 POST /sessions/1/listeners "$(body '{"ip":"198.18.0.23","port":5006,"tier":2}')" || ok=0
expect del_one 200 DELETE /sessions/2/listeners/10.0.0.1:20003 || ok=0
(( ok )) && pass "${T}_actions_accepted"
dump_state "$WORK/before.json"
total=$(grep -A1 '^session 2$' "$WORK/before.json" | tail -n1)
if [[ "$total" == $((NB_LISTENERS - 1)) ]]; then pass "${T}_listeners_before"; else fail "${T}_listeners_before" "session 2 has $total"; fi

# --- SIGKILL, start again ---------------------------------------------------
FIRST_PID=$RELAY_PID
if [[ "$(cat "/proc/$FIRST_PID/comm" 2>/dev/null)" != stentord ]]; then
  fail "${T}_sigkill" "pid $FIRST_PID is not stentord"; exit 1
fi
kill -KILL "$FIRST_PID"
wait "$FIRST_PID" 2>/dev/null || true
echo "# journal after SIGKILL: $(ls -l "$WORK/journal" | tail -n +2 | awk '{ print $9, $5 }' | tr '\n' ' ')"
RELAY_LOG="$WORK/stentord-2.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$CONFIG" 60 "$RELAY_LOG" 30 || rc=$?
if (( rc != 0 )); then
  fail "${T}_relay_ready_again" "second stentord not ready (rc $rc)"; exit 1
fi
pass "${T}_relay_ready_again"
grep ' journal: ' "$RELAY_LOG" | sed 's/^/# /'
if grep -q " journal: restored 2 sessions, 2 speakers, $((NB_LISTENERS + 2)) listeners" "$RELAY_LOG" \
   && grep -q " journal: the journal is the truth: the profile's static section is not loaded" "$RELAY_LOG" \
   && grep -q "(22 records applied, 0 skipped, 0 bytes dropped)" "$RELAY_LOG"; then   # 5 static + 17 API actions
  pass "${T}_restore_logged"
else
  fail "${T}_restore_logged" "unexpected journal lines: $(grep ' journal: ' "$RELAY_LOG" | tr '\n' ' ')"
fi
dump_state "$WORK/after.json"
if cmp -s "$WORK/before.json" "$WORK/after.json"; then
  pass "${T}_same_state"
else
  fail "${T}_same_state" "state differs: $(diff "$WORK/before.json" "$WORK/after.json" | head -c 400)"
fi

# --- and the room hears the speaker again ------------------------------------
declare -a WAVS LPIDS UDP_BEFORE
for i in 0 1 2; do
  ns=${NL_NS_LISTENERS[$i]}
  WAVS[i]="$WORK/l$((i + 1)).wav"
  UDP_BEFORE[i]=$(netlib_udp_in "$ns")
  netlib_listener_cmd "$ns" "${WAVS[i]}" 20
  "${NL_LISTENER_CMD[@]}" >"$WORK/listener$((i + 1)).log" 2>&1 &
  LPIDS[i]=$!
  netlib_track "${LPIDS[i]}"
done
for i in 0 1 2; do
  for _ in $(seq 50); do
    [[ -n "$(ip netns exec "${NL_NS_LISTENERS[$i]}" ss -Hlun 'sport = :5004' 2>/dev/null)" ]] && break
    sleep 0.1
  done
done
netlib_speaker_cmd "$SECONDS_OF_TONE"
spk_rc=0
timeout 15 "${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 || spk_rc=$?
(( spk_rc == 0 )) || fail "${T}_speaker" "ffmpeg exited with status $spk_rc"
sleep 1
for i in 0 1 2; do netlib_stop_pid "${LPIDS[i]}" INT 5; done
netlib_stop_pid "$RELAY_PID" INT 10
for i in 0 1; do
  n=$((i + 1))
  pkts=$(( $(netlib_udp_in "${NL_NS_LISTENERS[$i]}") - UDP_BEFORE[i] ))
  dur="?"
  [[ -s "${WAVS[i]}" ]] && read -r dur _ < <(netlib_wav_info "${WAVS[i]}")
  echo "# listener $n: $pkts UDP packets, duration $dur s"
  if [[ "$dur" != "?" ]] && awk -v d="$dur" -v e="$SECONDS_OF_TONE" 'BEGIN { exit !(d >= 0.9 * e && d <= 1.1 * e) }'; then
    pass "${T}_listener_${n}_hears_again"
  else
    fail "${T}_listener_${n}_hears_again" "duration $dur s not within 10% of $SECONDS_OF_TONE s ($pkts packets)"
  fi
done
pkts=$(( $(netlib_udp_in "${NL_NS_LISTENERS[2]}") - UDP_BEFORE[2] ))
if (( pkts == 0 )); then pass "${T}_moved_listener_not_on_old_port"; else fail "${T}_moved_listener_not_on_old_port" "l3 got $pkts packets on 5004"; fi

(( FAILS == 0 ))
