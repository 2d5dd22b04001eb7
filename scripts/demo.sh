#!/usr/bin/env bash
# Stentor demo (what `make run` runs): one real speaker (ffmpeg, 440 Hz Opus
# over RTP) -> stentord (DPDK, net_af_packet on a veth) -> three real
# listeners (GStreamer, writing WAV files), all in throw-away network
# namespaces. Prints what each listener received and the relay's counters.
#
# Environment: DEMO_SECONDS (default 10), BUILD_DIR (default build),
#              STENTOR_CONFIG (default configs/dev-veth.toml).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
DEMO_SECONDS=${DEMO_SECONDS:-10}
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
CONFIG=${STENTOR_CONFIG:-configs/dev-veth.toml}
STENTORD="$BUILD_DIR/control/stentord"

if ! [[ "$DEMO_SECONDS" =~ ^[0-9]+$ ]] || (( DEMO_SECONDS < 2 || DEMO_SECONDS > 3600 )); then
  echo "demo: DEMO_SECONDS must be an integer between 2 and 3600 (got '$DEMO_SECONDS')" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (network namespaces, raw sockets)" >&2
  exit 2
fi
if [[ ! -x "$STENTORD" ]]; then
  echo "demo: $STENTORD not found; run 'make build' first" >&2
  exit 2
fi
if [[ ! -f "$CONFIG" ]]; then
  echo "demo: config $CONFIG not found" >&2
  exit 2
fi

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
demo_hook() { rm -rf "$WORK"; }
netlib_trap demo_hook

say() { echo "demo: $*"; }

say "building topology (prefix $NL_P): relay ${NL_RELAY_IP}, speaker ${NL_SPK_IP}, listeners ${NL_LISTENER_IPS[*]}"
netlib_up

RELAY_LOG="$WORK/stentord.log"
netlib_relay_cmd "$BUILD_DIR" "$CONFIG" $((DEMO_SECONDS + 30))
say "starting: ${NL_RELAY_CMD[*]}"
"${NL_RELAY_CMD[@]}" >"$RELAY_LOG" 2>&1 &
RELAY_PID=$!
netlib_track "$RELAY_PID"
# Show the relay's own output (startup, periodic stats) as it happens.
tail -n +1 -f --pid="$RELAY_PID" "$RELAY_LOG" 2>/dev/null | sed -u 's/^/  [stentord] /' &
netlib_track $!

rc=0
netlib_wait_for_line "$RELAY_LOG" '(^|[> ])stentord: ready' 30 "$RELAY_PID" || rc=$?
if (( rc != 0 )); then
  if (( rc == 2 )); then
    say "FAILED: stentord exited before printing 'stentord: ready'"
  else
    say "FAILED: stentord did not print 'stentord: ready' within 30 s"
  fi
  sleep 0.3
  exit 1
fi
say "relay is ready"

declare -a WAVS LPIDS UDP_BEFORE
for i in 0 1 2; do
  ns=${NL_NS_LISTENERS[$i]}
  WAVS[i]="/tmp/${NL_P}-l$((i + 1)).wav"
  rm -f "${WAVS[i]}"
  UDP_BEFORE[i]=$(netlib_udp_in "$ns")
  netlib_listener_cmd "$ns" "${WAVS[i]}" $((DEMO_SECONDS + 20))
  "${NL_LISTENER_CMD[@]}" >"$WORK/listener$((i + 1)).log" 2>&1 &
  LPIDS[i]=$!
  netlib_track "${LPIDS[i]}"
done
# Wait (bounded) until every listener has bound UDP 5004.
for i in 0 1 2; do
  for _ in $(seq 50); do
    if [[ -n "$(ip netns exec "${NL_NS_LISTENERS[$i]}" ss -Hlun 'sport = :5004' 2>/dev/null)" ]]; then
      break
    fi
    sleep 0.1
  done
done
say "3 listeners (GStreamer) up on UDP 5004"

netlib_speaker_cmd "$DEMO_SECONDS"
say "speaker (ffmpeg): ${DEMO_SECONDS} s of 440 Hz, Opus 64 kb/s, 20 ms frames -> ${NL_RELAY_IP}:40000"
timeout $((DEMO_SECONDS + 20)) "${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"
spk_rc=0
wait "$SPK_PID" || spk_rc=$?
if (( spk_rc != 0 )); then
  say "warning: speaker exited with status $spk_rc:"
  sed 's/^/  [ffmpeg] /' "$WORK/speaker.log" >&2 || true
fi
say "speaker finished; stopping listeners"
sleep 1   # let the jitter buffers drain
for i in 0 1 2; do
  netlib_stop_pid "${LPIDS[i]}" INT 5
done

say "stopping stentord (SIGINT)"
netlib_stop_pid "$RELAY_PID" INT 10
sleep 0.3

echo
echo "================ Stentor demo results ================"
fails=0
for i in 0 1 2; do
  ns=${NL_NS_LISTENERS[$i]}
  after=$(netlib_udp_in "$ns")
  pkts=$(( after - UDP_BEFORE[i] ))
  if [[ -s "${WAVS[i]}" ]]; then
    read -r dur freq < <(netlib_wav_info "${WAVS[i]}")
  else
    dur="?" freq="?"
  fi
  printf 'listener %d (%s): %5d UDP packets received, WAV %s: duration %s s, rough frequency %s Hz\n' \
    $((i + 1)) "${NL_LISTENER_IPS[$i]}" "$pkts" "${WAVS[i]}" "$dur" "$freq"
  (( pkts > 0 )) || fails=$((fails + 1))
done
echo "expected per listener: ~$((DEMO_SECONDS * 50)) packets (50/s), ~${DEMO_SECONDS} s, ~440 Hz"
echo
if grep -q '^=== stentord final counters ===' "$RELAY_LOG"; then
  echo "relay final counters:"
  sed -n '/^=== stentord final counters ===/,/^=== end ===/p' "$RELAY_LOG" | sed 's/^/  /'
else
  echo "relay did not print its final counters; last lines of its output:"
  tail -n 20 "$RELAY_LOG" | sed 's/^/  /'
  fails=$((fails + 1))
fi
echo "======================================================="
if (( fails > 0 )); then
  say "FAILED ($fails problem(s)); WAV files left in /tmp/${NL_P}-l*.wav"
  exit 1
fi
say "OK; WAV files left in /tmp/${NL_P}-l*.wav (play them with: play /tmp/${NL_P}-l1.wav)"
