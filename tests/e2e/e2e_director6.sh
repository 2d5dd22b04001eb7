#!/usr/bin/env bash
# End-to-end: a director places IPv6 listeners (issue 15, docs/fleet.md
# "Placing listeners"): the namespace fleet (scripts/fleetnet.sh) with one
# origin and two edges, a real etcd, stentor-director and ffmpeg speaking
# 440 Hz; edge-1 is dual stack (its port also has 2001:db8:78::2/64, which
# its record advertises in addresses6), edge-2 has IPv4 only. Trunks stay on
# IPv4.
#   e2e_director6_place        POST /v1/place "family": "ipv6" places on edge-1
#                              only, at 2001:db8:78::2
#   e2e_director6_no_ipv6_room the same excluding edge-1: 503 no_capacity
#                              naming IPv6 (edge-2 has room but no IPv6)
#   e2e_director6_bad_family   "ipv7", 6, "IPv6": 400 bad_request with a reason
#   e2e_director6_ipv4_default no family: IPv4 addresses, as before the field
#   e2e_director6_listener     stentor-listener --director --listen
#                              [2001:db8:78::21]:0 is placed on edge-1, joins
#                              it over IPv6 (neighbours found by NS/NA) and
#                              hears 440 +- 5 Hz
# Prints "PASS <name>" / "FAIL <name> <reason>". Needs root. About 30 s.
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T="e2e_director6"
EDGE6=2001:db8:78::2
L6=2001:db8:78::21

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
# shellcheck source=scripts/fleetnet.sh
source "$REPO/scripts/fleetnet.sh"
fleetnet_e2e_preflight
fleetnet_e2e_init d6 2 1
fleetnet_e2e_net
# The listener's namespace on IPv6 too (fresh namespace: no DAD).
LNS=${FL_NS_L[0]}
ip netns exec "$LNS" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null
ip netns exec "$LNS" ip -6 addr add "$L6/64" dev veth0 nodad
# edge-1 dual stack: its port's IPv6 address (advertised: addresses6).
edge1_ipv6() { if (( $1 == 1 )); then sed -i 's|^ipv4 = ".*/24"$|&\nipv6 = "'"$EDGE6"'/64"|' "$2"; fi; }
fleetnet_e2e_relays edge1_ipv6
grep -q "^ipv6 = \"$EDGE6/64\"" "$WORK/relay-1.toml" || { fail "${T}_setup" "edge-1's profile has no IPv6 address"; exit 1; }
fleetnet_e2e_directors 1
director_sees() {   # the director's view: every relay, edge-1 with its IPv6 address
  nl_ns_exec "$FL_NS_CTL" curl -s -m 2 --cacert "$FL_DIR_CA" -H "Authorization: Bearer $FL_DIRECTOR_TOKEN" "$(fl_director_url 1)/v1/registry" \
    | jq -e --arg a "$EDGE6" '([.relays[].id] | sort) == ["edge-1", "edge-2", "origin-1"]
                              and ([.relays[] | select(.id == "edge-1") | .addresses6[0]] == [$a])' >/dev/null 2>&1
}
fl_wait_for 15 director_sees || { fail "${T}_setup" "the director does not see the fleet with edge-1's IPv6 address"; exit 1; }
fleetnet_warm_trunks 1 2 || { fail "${T}_setup" "trunks origin -> edges not up"; exit 1; }

# --- the API --------------------------------------------------------------------
code=$(fl_dplace '{"session": 1, "listeners": 4, "family": "ipv6"}')
got=$(jq -c '[.placements[] | [.edge, .address]] | unique' "$WORK/place.json" 2>/dev/null || true)
if [[ "$code" == 200 && "$got" == "[[\"edge-1\",\"$EDGE6\"]]" ]]; then pass "${T}_place"; else
  fail "${T}_place" "HTTP $code: $got $(head -c 200 "$WORK/place.json")"; fi

code=$(fl_dplace '{"session": 1, "listeners": 1, "family": "ipv6", "exclude": ["edge-1"]}')
if [[ "$code" == 503 ]] && jq -e '.error == "no_capacity" and (.reason | contains("IPv6"))' "$WORK/place.json" >/dev/null; then
  pass "${T}_no_ipv6_room"; else fail "${T}_no_ipv6_room" "HTTP $code: $(head -c 300 "$WORK/place.json")"; fi

bad=""
for body in '{"session": 1, "listeners": 1, "family": "ipv7"}' '{"session": 1, "listeners": 1, "family": 6}' \
            '{"session": 1, "listeners": 1, "family": "IPv6"}'; do
  code=$(fl_dplace "$body")
  if [[ "$code" != 400 ]] || ! jq -e '.error == "bad_request" and (.reason | test("family"))' "$WORK/place.json" >/dev/null; then
    bad+="$body -> HTTP $code $(head -c 200 "$WORK/place.json"); "
  fi
done
if [[ -z "$bad" ]]; then pass "${T}_bad_family"; else fail "${T}_bad_family" "$bad"; fi

code=$(fl_dplace '{"session": 1, "listeners": 4}')
got=$(jq -c '[.placements[].address] | unique | map(test("^198\\.18\\.0\\.[23]$")) | all' "$WORK/place.json" 2>/dev/null || true)
if [[ "$code" == 200 && "$got" == true ]]; then pass "${T}_ipv4_default"; else
  fail "${T}_ipv4_default" "HTTP $code: $(head -c 300 "$WORK/place.json")"; fi

# --- a listener over IPv6, placed by the director ---------------------------------
fleetnet_start_speaker 60
name="${T}_listener"
rc=0
ip netns exec "$LNS" env STENTOR_DIRECTOR_TOKEN="$FL_DIRECTOR_TOKEN" STENTOR_DIRECTOR_CA="$FL_DIR_CA" "$BUILD_DIR/tools/stentor-listener" \
  --listen "[$L6]:0" --director "$(fl_director_url 1)" --session 1 --consent-interval 1 --failover-after 2 \
  --seconds 6 --wav-dir "$WORK/wav" --json "$WORK/l6.json" -q >"$WORK/l6.out" 2>"$WORK/l6.err" || rc=$?
placed=$(sed -n 's/.*placed on edge \([^ ]*\) (\([^)]*\)).*/\1 \2/p' "$WORK/l6.err" | head -n1)
dur="?" freq="?"
[[ -s "$WORK/wav/listener-0.wav" ]] && read -r dur freq < <(netlib_wav_info "$WORK/wav/listener-0.wav")
echo "# $name: placed: ${placed:-none}; WAV $dur s, ~$freq Hz"
if (( rc != 0 )); then
  fail "$name" "listener exited $rc: $(tail -n3 "$WORK/l6.err" | tr '\n' ' ')"
elif [[ "$placed" != "edge-1 "*"$EDGE6"* ]]; then
  fail "$name" "not placed on edge-1 at $EDGE6: $(tr '\n' ' ' <"$WORK/l6.err" | head -c 400)"
elif ! grep -q "join: joined via .*\[$L6\]" "$WORK/l6.err"; then
  fail "$name" "no join over IPv6: $(tr '\n' ' ' <"$WORK/l6.err" | head -c 400)"
elif [[ "$freq" == "?" ]] || ! awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
  fail "$name" "WAV ($dur s) rough frequency $freq Hz, not 440 +- 5"
else
  pass "$name"
fi

exit $(( FAILS > 0 ))
