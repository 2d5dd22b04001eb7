#!/usr/bin/env bash
# End-to-end: real speaker (ffmpeg) -> stentord (DPDK net_af_packet on a veth)
# -> three real listeners (GStreamer -> WAV), in throw-away namespaces.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 60 s).
#
# Environment: BUILD_DIR (default build), STENTOR_CONFIG (default
#              configs/dev-veth.toml).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
CONFIG=${STENTOR_CONFIG:-configs/dev-veth.toml}
STENTORD="$BUILD_DIR/control/stentord"
SECONDS_OF_TONE=5
T="e2e_demo"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
if [[ ! -x "$STENTORD" ]]; then
  fail "${T}_setup" "$STENTORD not built"; exit 1
fi
if [[ ! -f "$CONFIG" ]]; then
  fail "${T}_setup" "config $CONFIG missing"; exit 1
fi

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

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$CONFIG" 40 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then
  if (( rc == 2 )); then
    fail "${T}_relay_ready" "stentord exited before 'stentord: ready'"
  else
    fail "${T}_relay_ready" "no 'stentord: ready' within 15 s"
  fi
  exit 1
fi
pass "${T}_relay_ready"

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
    if [[ -n "$(ip netns exec "${NL_NS_LISTENERS[$i]}" ss -Hlun 'sport = :5004' 2>/dev/null)" ]]; then
      break
    fi
    sleep 0.1
  done
done

netlib_speaker_cmd "$SECONDS_OF_TONE"
timeout 15 "${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"
spk_rc=0
wait "$SPK_PID" || spk_rc=$?
if (( spk_rc != 0 )); then
  sed 's/^/[ffmpeg] /' "$WORK/speaker.log" >&2 || true
  fail "${T}_speaker" "ffmpeg exited with status $spk_rc"
fi
sleep 1
for i in 0 1 2; do
  netlib_stop_pid "${LPIDS[i]}" INT 5
done
netlib_stop_pid "$RELAY_PID" INT 10

for i in 0 1 2; do
  n=$((i + 1))
  pkts=$(( $(netlib_udp_in "${NL_NS_LISTENERS[$i]}") - UDP_BEFORE[i] ))
  dur="?" freq="?"
  if [[ -s "${WAVS[i]}" ]]; then
    read -r dur freq < <(netlib_wav_info "${WAVS[i]}")
  fi
  echo "# listener $n: $pkts UDP packets, duration $dur s, rough frequency $freq Hz"
  if [[ "$dur" != "?" ]] && awk -v d="$dur" -v e="$SECONDS_OF_TONE" 'BEGIN { exit !(d >= 0.9 * e && d <= 1.1 * e) }'; then
    pass "${T}_listener_${n}_duration"
  else
    fail "${T}_listener_${n}_duration" "duration $dur s not within 10% of $SECONDS_OF_TONE s ($pkts packets received)"
  fi
  if [[ "$freq" != "?" ]] && awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
    pass "${T}_listener_${n}_freq"
  else
    fail "${T}_listener_${n}_freq" "rough frequency $freq Hz not 440 +- 5 Hz"
  fi
done

if grep -q '^=== stentord final counters ===' "$RELAY_LOG" && grep -q '^=== end ===' "$RELAY_LOG"; then
  pass "${T}_relay_final_counters"
  rtp_in=$(netlib_counter "$RELAY_LOG" rtp_in)
  replicas=$(netlib_counter "$RELAY_LOG" replicas_out)
  echo "# relay: rtp_in=${rtp_in:-?} replicas_out=${replicas:-?} (speaker sent ~$((SECONDS_OF_TONE * 50)))"
  if [[ "$rtp_in" =~ ^[0-9]+$ && "$replicas" =~ ^[0-9]+$ ]] && (( rtp_in >= SECONDS_OF_TONE * 50 * 9 / 10 )) \
     && (( replicas * 100 >= 3 * rtp_in * 99 )); then
    pass "${T}_relay_no_drops_registered_flow"
  else
    fail "${T}_relay_no_drops_registered_flow" "rtp_in=${rtp_in:-missing} replicas_out=${replicas:-missing}; want rtp_in >= 90% of sent and replicas_out >= 3*rtp_in*0.99"
  fi
  # The dev profile shares cores: its worker sleeps when idle (issue 13).
  if grep -q '^idle = "adaptive"' "$CONFIG"; then
    sleeps=$(netlib_counter "$RELAY_LOG" idle_sleeps)
    echo "# relay: $(grep -m1 'idle: ' "$RELAY_LOG" || echo 'no idle line'), idle_sleeps=${sleeps:-?}"
    if grep -q 'idle: adaptive' "$RELAY_LOG" && [[ "$sleeps" =~ ^[0-9]+$ ]] && (( sleeps > 0 )); then
      pass "${T}_relay_idle_adaptive"
    else
      fail "${T}_relay_idle_adaptive" "profile says idle = adaptive but the relay logged no 'idle: adaptive' or idle_sleeps=${sleeps:-missing}"
    fi
  fi
else
  echo "--- stentord output ---" >&2; tail -n 30 "$RELAY_LOG" >&2 || true
  fail "${T}_relay_final_counters" "stentord did not print its final counters block"
fi

(( FAILS == 0 ))
