#!/usr/bin/env bash
# End-to-end over IPv6 (issue 15): a real speaker (ffmpeg) on IPv6 ->
# stentord (DPDK net_af_packet on a veth) -> two GStreamer listeners on IPv6
# and one on IPv4, in the same session, in throw-away namespaces. No static
# neighbour entry anywhere: the speaker's kernel finds the relay's MAC with a
# neighbour solicitation the relay answers, and the relay finds its IPv6
# listeners' MACs with solicitations their kernels answer.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 60 s).
#
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
STENTORCTL="$BUILD_DIR/control/stentorctl"
SECONDS_OF_TONE=5
T="e2e_ipv6"
RELAY6=2001:db8:100::1
SPK6=2001:db8:100::10
L6=(2001:db8:100::21 2001:db8:100::22)

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
for b in "$STENTORD" "$STENTORCTL"; do
  if [[ ! -x "$b" ]]; then fail "${T}_setup" "$b not built"; exit 1; fi
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
# netlib's hosts are IPv4 only: give the speaker and listeners 1 and 2 an
# IPv6 address on the same link (no DAD: the namespaces are fresh).
v6_host() {  # ns addr
  ip netns exec "$1" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null
  ip netns exec "$1" ip -6 addr add "$2/64" dev veth0 nodad
}
v6_host "$NL_NS_SPK" "$SPK6"
v6_host "${NL_NS_LISTENERS[0]}" "${L6[0]}"
v6_host "${NL_NS_LISTENERS[1]}" "${L6[1]}"

# The dev profile plus the port's IPv6 address; no gateway6, no neighbour pinned.
CONFIG="$WORK/dev-veth-ipv6.toml"
sed 's|^ipv4 = "198.18.0.1/24"|&\nipv6 = "'"$RELAY6"'/64"|' configs/dev-veth.toml >"$CONFIG"
if ! grep -q "^ipv6 = " "$CONFIG"; then
  fail "${T}_setup" "could not add ipv6 to the profile"; exit 1
fi

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$CONFIG" 40 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then
  fail "${T}_relay_ready" "stentord did not get ready (rc $rc)"; exit 1
fi
pass "${T}_relay_ready"

ctl() {
  ip netns exec "$NL_NS_RELAY" "$STENTORCTL" --api 127.0.0.1:8080 --token dev-token-change-me-please "$@"
}
# Session 1 (static): speaker 198.18.0.10, listeners .21 .22 .23 on IPv4.
# Listeners 1 and 2 move to IPv6; the speaker comes on IPv6.
ok=1
ctl listener del 1 198.18.0.21:5004 >/dev/null || ok=0
ctl listener del 1 198.18.0.22:5004 >/dev/null || ok=0
ctl listener add 1 "[${L6[0]}]:5004" >/dev/null || ok=0
ctl listener add 1 "[${L6[1]}]:5004" >/dev/null || ok=0
ctl speaker add 1 "[$SPK6]:5004" --ssrc 1234 >/dev/null || ok=0
if (( ok )) && ctl --json show session 1 >"$WORK/session.json" && grep -q "$SPK6" "$WORK/session.json"; then
  pass "${T}_registered_over_the_api"
else
  fail "${T}_registered_over_the_api" "stentorctl could not register the IPv6 speaker and listeners"
fi

declare -a WAVS LPIDS
for i in 0 1 2; do
  ns=${NL_NS_LISTENERS[$i]}
  WAVS[i]="$WORK/l$((i + 1)).wav"
  if (( i < 2 )); then
    # udpsrc bound to the listener's IPv6 address.
    LCMD=(ip netns exec "$ns" timeout --foreground -s INT -k 5 20 gst-launch-1.0 -q -e
      udpsrc address="${L6[$i]}" port=5004
      caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111"
      '!' rtpjitterbuffer latency=50 '!' rtpopusdepay '!' opusdec '!' audioconvert
      '!' wavenc '!' filesink "location=${WAVS[i]}")
  else
    netlib_listener_cmd "$ns" "${WAVS[i]}" 20
    LCMD=("${NL_LISTENER_CMD[@]}")
  fi
  "${LCMD[@]}" >"$WORK/listener$((i + 1)).log" 2>&1 &
  LPIDS[i]=$!
  netlib_track "${LPIDS[i]}"
done
for i in 0 1 2; do
  for _ in $(seq 50); do
    if [[ -n "$(ip netns exec "${NL_NS_LISTENERS[$i]}" ss -Hlun 'sport = :5004' 2>/dev/null)" ]]; then
      break
    fi
    sleep 0.1
  done
done

# Speaker: ffmpeg from [SPK6]:5004 to the relay's IPv6 address.
timeout 15 ip netns exec "$NL_NS_SPK" ffmpeg -hide_banner -nostdin -loglevel warning -re \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECONDS_OF_TONE" \
  -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio \
  -f rtp -payload_type 111 -ssrc 1234 \
  "rtp://[$RELAY6]:40000?pkt_size=1200&localrtpport=5004" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"
spk_rc=0
wait "$SPK_PID" || spk_rc=$?
if (( spk_rc != 0 )); then
  sed 's/^/[ffmpeg] /' "$WORK/speaker.log" >&2 || true
  fail "${T}_speaker" "ffmpeg exited with status $spk_rc"
fi
sleep 1

# Neighbour discovery, both ways, with nothing pinned: the speaker's kernel
# learnt the relay's MAC from its NA; the listeners' kernels learnt it from
# the relay's NS (its source link-layer address option).
relay_mac=$(awk -F'"' '/^mac = /{ print $2; exit }' "$CONFIG")
if ip netns exec "$NL_NS_SPK" ip -6 neigh show "$RELAY6" | grep -qi "lladdr $relay_mac"; then
  pass "${T}_speaker_resolved_the_relay_by_ns_na"
else
  fail "${T}_speaker_resolved_the_relay_by_ns_na" "speaker's neighbour table: $(ip netns exec "$NL_NS_SPK" ip -6 neigh show | tr '\n' ';')"
fi
for i in 0 1 2; do
  netlib_stop_pid "${LPIDS[i]}" INT 5
done
netlib_stop_pid "$RELAY_PID" INT 10

for i in 0 1 2; do
  n=$((i + 1))
  fam=$( (( i < 2 )) && echo ipv6 || echo ipv4 )
  dur="?" freq="?"
  if [[ -s "${WAVS[i]}" ]]; then
    read -r dur freq < <(netlib_wav_info "${WAVS[i]}")
  fi
  echo "# listener $n ($fam): duration $dur s, rough frequency $freq Hz"
  if [[ "$dur" != "?" ]] && awk -v d="$dur" -v e="$SECONDS_OF_TONE" 'BEGIN { exit !(d >= 0.9 * e && d <= 1.1 * e) }'; then
    pass "${T}_listener_${n}_${fam}_duration"
  else
    fail "${T}_listener_${n}_${fam}_duration" "duration $dur s not within 10% of $SECONDS_OF_TONE s"
  fi
  if [[ "$freq" != "?" ]] && awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
    pass "${T}_listener_${n}_${fam}_freq"
  else
    fail "${T}_listener_${n}_${fam}_freq" "rough frequency $freq Hz not 440 +- 5 Hz"
  fi
done

if grep -q '^=== stentord final counters ===' "$RELAY_LOG"; then
  rtp_in=$(netlib_counter "$RELAY_LOG" rtp_in)
  replicas=$(netlib_counter "$RELAY_LOG" replicas_out)
  unresolved=$(netlib_counter "$RELAY_LOG" drop/egress/neigh_unresolved)
  echo "# relay: rtp_in=${rtp_in:-?} replicas_out=${replicas:-?} neigh_unresolved=${unresolved:-0}"
  if [[ "$rtp_in" =~ ^[0-9]+$ && "$replicas" =~ ^[0-9]+$ ]] && (( rtp_in >= SECONDS_OF_TONE * 50 * 9 / 10 )) \
     && (( replicas * 100 >= 3 * rtp_in * 95 )); then
    pass "${T}_relay_forwarded_the_ipv6_speaker"
  else
    fail "${T}_relay_forwarded_the_ipv6_speaker" "rtp_in=${rtp_in:-missing} replicas_out=${replicas:-missing}"
  fi
else
  tail -n 30 "$RELAY_LOG" >&2 || true
  fail "${T}_relay_final_counters" "stentord did not print its final counters block"
fi

(( FAILS == 0 ))
