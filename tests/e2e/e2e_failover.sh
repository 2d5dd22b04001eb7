#!/usr/bin/env bash
# End-to-end: failover and drain in a fleet of real relays (issue 13 items 5
# and 6, docs/fleet.md "Failover"): the issue's whole fleet in namespaces
# (scripts/fleetnet.sh): a real etcd tuned for 1 s leases, two origins and
# three edges (stentord on net_af_packet veths, real trunks origin -> edge),
# two stentor-directors, ffmpeg speaking 440 Hz to both origins (through a
# tee: same SSRC and sequence numbers), and 30 stentor-listener --director
# clients placed by the directors.
#   e2e_failover_exclude       POST /v1/place checks "exclude" and places nobody on an excluded edge
#   e2e_failover_placed        every listener is placed, joins and is in its edge's table
#   e2e_failover_sigkill       edge-1 SIGKILLed: every listener it had moves
#                              to another edge and hears audio again; the gap
#                              of each is printed; 0 left without audio
#   e2e_failover_drain         edge-2 SIGTERMed: draining in the registry, its
#                              listeners told to move (300), each joins edge-3
#                              and leaves edge-2 before it stops
#   e2e_failover_origin_sigkill  origin-2 SIGKILLed: 0 packets lost at the
#                              listeners (the edges keep origin-1's copies)
#   e2e_failover_etcd_restart  etcd stopped and started again during the
#                              stream: 0 packets lost at any listener, no move,
#                              every live relay's key back
#   e2e_failover_etcd_lost     etcd's data lost (a new, empty etcd): the
#                              relays register again under new leases, the
#                              directors see the whole fleet, every listener
#                              hears audio again (the trunk keys went with
#                              the data: loss printed, not asserted)
#   e2e_failover_wav_440       three listeners' audio, decoded over the whole
#                              run (moves included), is 440 +- 5 Hz
# Prints "PASS <name>" / "FAIL <name> <reason>". Needs root. About 90 s.
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T="e2e_failover"
NB_LISTENERS=30

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
# shellcheck source=scripts/fleetnet.sh
source "$REPO/scripts/fleetnet.sh"
fleetnet_e2e_preflight
fleetnet_e2e_init fo 3 2
fleetnet_e2e_net
fleetnet_e2e_relays
fleetnet_e2e_directors 1 2
has_key() { [[ -n "$(fl_ectl get --print-value-only "/stentor/relays/$1" 2>/dev/null)" ]]; }
no_key() { ! has_key "$1"; }
director_sees() {   # N RELAYS...: director N's view holds exactly these relays
  local n=$1; shift
  local want got
  want=$(printf '%s\n' "$@" | sort | paste -sd,)
  got=$(nl_ns_exec "$FL_NS_CTL" curl -s -m 2 --cacert "$FL_DIR_CA" -H "Authorization: Bearer $FL_DIRECTOR_TOKEN" "$(fl_director_url "$n")/v1/registry" \
        | jq -r '[.relays[].id] | sort | join(",")' 2>/dev/null || true)
  [[ "$got" == "$want" ]]
}
for r in origin-1 origin-2 edge-1 edge-2 edge-3; do
  fl_wait_for 10 has_key "$r" || { fail "${T}_setup" "$r not registered"; exit 1; }
done
fl_wait_for 10 director_sees 1 origin-1 origin-2 edge-1 edge-2 edge-3 || { fail "${T}_setup" "director-1 does not see the fleet"; exit 1; }
fl_wait_for 10 director_sees 2 origin-1 origin-2 edge-1 edge-2 edge-3 || { fail "${T}_setup" "director-2 does not see the fleet"; exit 1; }
# Every edge carries the session before listeners come (real trunks: the
# director records one at the first placement on an edge).
fleetnet_warm_trunks 1 2 3 || { fail "${T}_setup" "trunks origin -> edges not up"; exit 1; }

# The exclusion hint: checked, and honoured.
c1=$(fl_dplace '{"session": 1, "listeners": 1, "exclude": "edge-1"}'); e1=$(jq -r .error "$WORK/place.json")
c2=$(fl_dplace '{"session": 1, "listeners": 2, "exclude": ["edge-1", "edge-2"]}'); e2=$(jq -r '[.placements[].edge] | unique | join(",")' "$WORK/place.json")
c3=$(fl_dplace '{"session": 1, "listeners": 1, "exclude": ["edge-1", "edge-2", "edge-3"]}'); e3=$(jq -r .error "$WORK/place.json")
if [[ "$c1 $e1 $c2 $e2 $c3 $e3" == "400 bad_request 200 edge-3 503 no_capacity" ]]; then pass "${T}_exclude"; else
  fail "${T}_exclude" "got: $c1 $e1 / $c2 $e2 / $c3 $e3"; fi

# The speaker: 440 Hz to both origins for longer than the test.
fleetnet_start_speaker 600

# --- placed --------------------------------------------------------------------
# Three of them decode what they hear into a WAV (moves included).
for ((k = 0; k < NB_LISTENERS; k++)); do
  if (( k < 3 )); then fleetnet_start_listener "$k" 600 --wav-dir "$WORK/wav-$k"; else fleetnet_start_listener "$k" 600; fi
done
hears() { grep -q 'join: joined via' "$WORK/lst-$1.err" 2>/dev/null; }
all_joined() { local k; for ((k = 0; k < NB_LISTENERS; k++)); do hears "$k" || return 1; done; }
fl_wait_for 20 all_joined || true
declare -A ON=()
missing=0
for ((k = 0; k < NB_LISTENERS; k++)); do
  hears "$k" || missing=$((missing + 1))
  e=$(fl_listener_edge "$k"); ON[$e]=$(( ${ON[$e]:-0} + 1 ))
done
# Each edge's listener table holds the listeners placed on it (joined by token).
table_ok=1
for i in 1 2 3; do
  n=$(fl_api "$i" GET /sessions/1 | jq -r '.listeners // empty' 2>/dev/null || true)
  [[ "$n" == "${ON[edge-$i]:-0}" ]] || { table_ok=0; echo "# edge-$i: listener table says '$n', ${ON[edge-$i]:-0} placed"; }
done
per_edge=$(for e in edge-1 edge-2 edge-3; do printf '%s=%s ' "$e" "${ON[$e]:-0}"; done)
echo "# placed: $per_edge"
n1=${ON[edge-1]:-0}
if (( missing == 0 && n1 > 0 && table_ok )); then pass "${T}_placed"; else fail "${T}_placed" "$missing listener(s) not joined; $per_edge"; fi

# Each listener's failovers so far (FAILOVER lines on its stdout).
moves() { grep -c '^FAILOVER' "$WORK/lst-$1.out" 2>/dev/null || true; }
last_move() { grep '^FAILOVER' "$WORK/lst-$1.out" 2>/dev/null | tail -n1; }

# --- SIGKILL edge-1 ------------------------------------------------------------------
declare -a VICTIMS=()
for ((k = 0; k < NB_LISTENERS; k++)); do [[ "$(fl_listener_edge "$k")" == edge-1 ]] && VICTIMS+=("$k"); done
rev=$(fl_ectl get /stentor/relays/edge-1 -w json 2>/dev/null | jq -r '.header.revision' || echo 0)
t0=$(date +%s.%N)
kill -KILL "${FL_PID[1]}" 2>/dev/null || true; wait "${FL_PID[1]}" 2>/dev/null || true
# When etcd deletes edge-1's key, from one watch (polling etcdctl is too slow on a loaded host).
# Bounded: after the loop's break the watch writes nothing more, so no
# SIGPIPE would end it; it outlived the test (and kept the namespace) before.
ip netns exec "$FL_NS_CTL" env ETCDCTL_API=3 timeout 40 etcdctl --endpoints=http://127.0.0.1:2379 watch --rev=$((rev + 1)) /stentor/relays/edge-1 2>/dev/null \
  | while read -r line; do [[ "$line" == DELETE ]] && { date +%s.%N >"$WORK/edge-1-gone"; break; }; done &
GONE_PID=$!
moved_back() { local k; for k in "${VICTIMS[@]}"; do grep -q '^FAILOVER reason=silence from=edge-1 .* gap_s=[0-9]' "$WORK/lst-$k.out" 2>/dev/null || return 1; done; }
fl_wait_for 15 moved_back || true
silent=0
for k in "${VICTIMS[@]}"; do
  line=$(grep '^FAILOVER reason=silence from=edge-1' "$WORK/lst-$k.out" 2>/dev/null | tail -n1 || true)
  echo "# listener $k: ${line:-no failover}"
  [[ "$line" =~ gap_s=[0-9] ]] || silent=$((silent + 1))
done
others_moved=0
for ((k = 0; k < NB_LISTENERS; k++)); do
  [[ " ${VICTIMS[*]} " == *" $k "* ]] && continue
  (( $(moves "$k") == 0 )) || others_moved=$((others_moved + 1))
done
now_on_1=0
for k in "${VICTIMS[@]}"; do [[ "$(fl_listener_edge "$k")" == edge-1 ]] && now_on_1=$((now_on_1 + 1)); done
gaps=$(for k in "${VICTIMS[@]}"; do sed -n 's/^FAILOVER reason=silence from=edge-1 .*gap_s=\([0-9.]*\).*/\1/p' "$WORK/lst-$k.out"; done | sort -n | paste -sd' ')
echo "# edge-1 SIGKILLed: ${#VICTIMS[@]} listener(s) moved, audio gaps (s): ${gaps:-none}"
if (( silent == 0 && now_on_1 == 0 && others_moved == 0 )); then
  pass "${T}_sigkill"
else
  fail "${T}_sigkill" "$silent of ${#VICTIMS[@]} listener(s) without audio again, $now_on_1 still on edge-1, $others_moved other listener(s) moved"
fi
fl_wait_for 5 test -s "$WORK/edge-1-gone" || true
if [[ -s "$WORK/edge-1-gone" ]]; then
  echo "# edge-1's key deleted $(awk -v a="$t0" -v b="$(cat "$WORK/edge-1-gone")" 'BEGIN { printf "%.2f", b - a }') s after SIGKILL (lease_ttl_s = 1)"
else
  echo "# edge-1's key still there $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after SIGKILL"
fi

# --- SIGTERM edge-2: drain ---------------------------------------------------------------
declare -a DRAINED=()
for ((k = 0; k < NB_LISTENERS; k++)); do [[ "$(fl_listener_edge "$k")" == edge-2 ]] && DRAINED+=("$k"); done
declare -A BEFORE=()
for k in "${DRAINED[@]}"; do BEFORE[$k]=$(moves "$k"); done
# The registry's revision now: afterwards a watch from the next one replays
# every change of edge-2's key since (a watch started in the background
# before the SIGTERM could connect too late on a loaded machine and see
# nothing).
etcd_ctl=(ip netns exec "$FL_NS_CTL" env ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379)
rev=$("${etcd_ctl[@]}" get /stentor/relays/edge-2 -w json 2>/dev/null | grep -o '"revision":[0-9]*' | head -n1 | cut -d: -f2)
kill -TERM "${FL_PID[2]}" 2>/dev/null || true
rc=0
wait "${FL_PID[2]}" || rc=$?
timeout 3 "${etcd_ctl[@]}" watch --rev=$((${rev:-0} + 1)) /stentor/relays/edge-2 >"$WORK/watch-edge-2.log" 2>&1 || true
drain_line=$(grep 'fleet: draining: .* told to move' "$WORK/relay-2.log" | tail -n1 || true)
echo "# edge-2: ${drain_line#*fleet: }"
bad=0
for k in "${DRAINED[@]}"; do
  line=$(grep '^FAILOVER reason=drain from=edge-2' "$WORK/lst-$k.out" 2>/dev/null | tail -n1 || true)
  echo "# listener $k: ${line:-no move}"
  [[ "$line" =~ to=edge-3\ .*gap_s=[0-9] ]] || bad=$((bad + 1))
  grep -q 'join: left edge edge-2' "$WORK/lst-$k.err" || bad=$((bad + 1))
done
if (( ${#DRAINED[@]} > 0 && bad == 0 && rc == 0 )) && [[ "$drain_line" == *"${#DRAINED[@]} joined listener(s) told to move; all gone"* ]] \
   && grep -q '"draining":true' "$WORK/watch-edge-2.log"; then
  pass "${T}_drain"
else
  fail "${T}_drain" "${#DRAINED[@]} listener(s) on edge-2, $bad problem(s), exit $rc, relay: ${drain_line:-no drain line}"
fi

# Fresh listeners for the phases below --------------------------------------------------
moves_total() { local k t=0; for ((k = 0; k < NB_LISTENERS; k++)); do t=$((t + $(moves "$k"))); done; echo "$t"; }
# start_fresh FROM TO: listeners FROM..TO-1, which measure loss over exactly
# one outage (the 12 above carry the losses of their moves in their totals).
start_fresh() {
  local k
  for ((k = $1; k < $2; k++)); do fleetnet_start_listener "$k" 600; done
  for ((k = $1; k < $2; k++)); do fl_wait_for 10 hears "$k" || return 1; done
}
# stop_count FROM TO: SIGINT them (their report, their leave); sets LOST, PK.
stop_count() {
  local k l p
  for ((k = $1; k < $2; k++)); do kill -INT "${FL_LPID[k]}" 2>/dev/null || true; done
  for ((k = $1; k < $2; k++)); do wait "${FL_LPID[k]}" 2>/dev/null || true; done
  LOST=0 PK=0
  for ((k = $1; k < $2; k++)); do
    l=$(jq -r '.summary.lost' "$WORK/lst-$k.json" 2>/dev/null || echo 999999)
    p=$(jq -r '.summary.packets' "$WORK/lst-$k.json" 2>/dev/null || echo 0)
    LOST=$((LOST + l)); PK=$((PK + p))
  done
}
# --- SIGKILL origin-2 -----------------------------------------------------------------------
m0=$(moves_total)
O=$NB_LISTENERS A=$((NB_LISTENERS + 3)) B=$((NB_LISTENERS + 6)) C=$((NB_LISTENERS + 9))
start_fresh "$O" "$A" || fail "${T}_origin_sigkill" "fresh listeners did not join"
sleep 1
kill -KILL "${FL_PID[9]}" 2>/dev/null || true; wait "${FL_PID[9]}" 2>/dev/null || true
# Its key lapses, the edge removes its flow; origin-1's copies go on.
fl_wait_for 10 no_key origin-2 || true
sleep 1
stop_count "$O" "$A"
m1=$(moves_total)
echo "# origin-2 SIGKILLed: $PK packets at 3 fresh listeners, $LOST lost; moves meanwhile: $((m1 - m0))"
if (( LOST == 0 && PK > 0 && m1 == m0 )) && no_key origin-2; then pass "${T}_origin_sigkill"; else
  fail "${T}_origin_sigkill" "lost $LOST of $PK packets, $((m1 - m0)) move(s)"; fi

# --- etcd stopped and started again --------------------------------------------------
m0=$(moves_total)
start_fresh "$A" "$B" || fail "${T}_etcd_restart" "fresh listeners did not join"
sleep 1
kill -TERM "$FL_ETCD_PID" 2>/dev/null || true; wait "$FL_ETCD_PID" 2>/dev/null || true
sleep 3
alive=1
for i in 0 3; do kill -0 "${FL_PID[i]}" 2>/dev/null || alive=0; done
if ! fleetnet_start_etcd; then fail "${T}_etcd_restart" "etcd did not start again"; exit 1; fi
restart_ok=0
if (( alive )) && fl_wait_for 10 has_key origin-1 && fl_wait_for 10 has_key edge-3 && no_key edge-1 && no_key edge-2 \
   && fl_wait_for 10 director_sees 1 origin-1 edge-3 && fl_wait_for 10 director_sees 2 origin-1 edge-3; then
  restart_ok=1
fi
sleep 1
stop_count "$A" "$B"
m1=$(moves_total)
echo "# etcd stopped 3 s and started again: $PK packets at 3 fresh listeners, $LOST lost; moves meanwhile: $((m1 - m0))"
if (( restart_ok && LOST == 0 && PK > 0 && m1 == m0 )); then pass "${T}_etcd_restart"; else
  fail "${T}_etcd_restart" "registry whole: $restart_ok, lost $LOST of $PK packets, $((m1 - m0)) move(s)"; fi

# --- etcd's data lost: a new, empty etcd -------------------------------------------------
# The relays register again under new leases. With real trunks the trunk
# keys are gone with the data (they are not bound to a lease): the edge
# loses the session until a placement records its trunk again, so there
# the test asks only that every listener hears audio again (and prints the
# loss); with static trunks nothing may be lost.
start_fresh "$B" "$C" || fail "${T}_etcd_lost" "fresh listeners did not join"
lease_of() { fl_ectl get -w json "/stentor/relays/$1" 2>/dev/null | jq -r '.kvs[0].lease // empty'; }
old_lease=$(lease_of edge-3)
kill -KILL "$FL_ETCD_PID" 2>/dev/null || true; wait "$FL_ETCD_PID" 2>/dev/null || true
rm -rf "$WORK/etcd"
sleep 2
if ! fleetnet_start_etcd; then fail "${T}_etcd_lost" "etcd did not start"; exit 1; fi
lost_ok=0
if fl_wait_for 10 has_key origin-1 && fl_wait_for 10 has_key edge-3 && fl_wait_for 10 director_sees 1 origin-1 edge-3 \
   && fl_wait_for 10 director_sees 2 origin-1 edge-3; then
  new_lease=$(lease_of edge-3)
  echo "# edge-3 registered again: lease $old_lease -> $new_lease"
  [[ -n "$new_lease" && "$new_lease" != "$old_lease" ]] && lost_ok=1
fi
# With real trunks: the edge ends the session when the empty etcd shows no
# trunk, its listeners hear nothing for 1 s and ask again, a placement
# records the trunk again and the edge takes the session back; give the
# listeners 3 s more to be placed, join and hear it.
if [[ "$FL_TRUNKS" == real ]]; then
  recreated() { (( $(grep -c 'trunk: session 1 created' "$WORK/relay-3.log" || true) >= 2 )); }
  fl_wait_for 15 recreated || echo "# edge-3 did not take session 1 back"
  sleep 3
fi
stop_count "$B" "$C"
echo "# etcd lost its data: $PK packets at 3 fresh listeners, $LOST lost (trunks: $FL_TRUNKS)"
if (( lost_ok )) && { [[ "$FL_TRUNKS" == real ]] || (( LOST == 0 )); }; then pass "${T}_etcd_lost"; else
  fail "${T}_etcd_lost" "new lease and whole registry: $lost_ok, lost $LOST (trunks: $FL_TRUNKS)"; fi

# Every listener stops (SIGINT: its report, its leave).
stop_count 0 "$A"
# 0 listeners left without audio: a move still open at exit prints gap_s=none.
none=$(cat "$WORK"/lst-*.out 2>/dev/null | grep -c '^FAILOVER .*gap_s=none' || true)
nohear=0
for ((k = 0; k < C; k++)); do
  [[ $(jq -r '.summary.packets' "$WORK/lst-$k.json" 2>/dev/null || echo 0) -gt 0 ]] || nohear=$((nohear + 1))
done
if (( none == 0 && nohear == 0 )); then pass "${T}_none_without_audio"; else
  fail "${T}_none_without_audio" "$none listener(s) ended a move without audio, $nohear heard nothing at all"; fi

# What three listeners heard over the whole run, moves included.
wav_bad=""
for k in 0 1 2; do
  read -r dur freq <<<"$(netlib_wav_info "$WORK/wav-$k/listener-0.wav")"
  echo "# listener $k: WAV $dur s at $freq Hz"
  awk -v f="$freq" -v d="$dur" 'BEGIN { exit !(f != "?" && f >= 435 && f <= 445 && d != "?" && d > 10) }' || wav_bad+=" $k:${dur}s@${freq}Hz"
done
if [[ -z "$wav_bad" ]]; then pass "${T}_wav_440"; else fail "${T}_wav_440" "not 440 +- 5 Hz:$wav_bad"; fi

(( FAILS == 0 ))
