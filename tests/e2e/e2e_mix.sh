#!/usr/bin/env bash
# End-to-end mix mode: two real speakers (ffmpeg, 440 Hz and 660 Hz, from two
# namespaces) -> stentord (configs/dev-veth-mix.toml: session 1 in mix mode,
# recording on) -> three real listeners (GStreamer -> WAV). Every listener
# must hear one stream that contains both tones, for as long as the speakers
# spoke; the recording of the mix must contain both tones too.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 60 s).
#
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
CONFIG=configs/dev-veth-mix.toml
SECONDS_OF_TONE=6
PY=/usr/bin/python3
T="e2e_mix"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "$STENTORD not built"; exit 1; fi
if ! "$PY" -c 'import numpy' 2>/dev/null; then
  fail "${T}_setup" "$PY has no numpy (Debian: python3-numpy)"; exit 1
fi

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
NL_WITH_SPK2=1
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
e2e_hook() { rm -rf "$WORK"; }
netlib_trap e2e_hook

if ! netlib_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

# The shipped profile, recording into our scratch directory, API off.
mkdir -p "$WORK/rec"
sed -e 's/^recording = false/recording = true/' \
    -e 's/^listen = "127.0.0.1:8080"/listen = "127.0.0.1:0"/' \
    -e 's/^stats_interval_s = 5/stats_interval_s = 0/' "$CONFIG" >"$WORK/mix.toml"
printf '\n[recording]\ndir = "%s"\n' "$WORK/rec" >>"$WORK/mix.toml"

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$WORK/mix.toml" 40 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then
  fail "${T}_relay_ready" "stentord not ready (rc $rc)"; exit 1
fi
pass "${T}_relay_ready"

declare -a WAVS LPIDS
for i in 0 1 2; do
  WAVS[i]="$WORK/l$((i + 1)).wav"
  netlib_listener_cmd "${NL_NS_LISTENERS[$i]}" "${WAVS[i]}" 20
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

# speaker NS FREQ SSRC: ffmpeg tone at FREQ Hz from NS:5004 with SSRC.
speaker() {
  ip netns exec "$1" ffmpeg -hide_banner -nostdin -loglevel warning -re \
    -f lavfi -i "sine=frequency=$2:sample_rate=48000:duration=$SECONDS_OF_TONE" \
    -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio \
    -f rtp -payload_type 111 -ssrc "$3" "rtp://$NL_RELAY_IP:40000?pkt_size=1200&localrtpport=5004"
}
timeout 20 bash -c "$(declare -f speaker); SECONDS_OF_TONE=$SECONDS_OF_TONE NL_RELAY_IP=$NL_RELAY_IP speaker $NL_NS_SPK 440 1234" \
  >"$WORK/speaker1.log" 2>&1 &
S1=$!
netlib_track "$S1"
timeout 20 bash -c "$(declare -f speaker); SECONDS_OF_TONE=$SECONDS_OF_TONE NL_RELAY_IP=$NL_RELAY_IP speaker $NL_NS_SPK2 660 5678" \
  >"$WORK/speaker2.log" 2>&1 &
S2=$!
netlib_track "$S2"
for p in "$S1" "$S2"; do
  src=0
  wait "$p" || src=$?
  if (( src != 0 )); then
    cat "$WORK"/speaker*.log >&2
    fail "${T}_speakers" "an ffmpeg speaker exited with status $src"
  fi
done
sleep 1
for i in 0 1 2; do netlib_stop_pid "${LPIDS[i]}" INT 5; done
netlib_stop_pid "$RELAY_PID" INT 15

# tones WAV START LEN -> "p440 p660 duration": share of the signal power in
# +-15 Hz around each tone (first channel, [START, START+LEN] s).
tones() {
  "$PY" - "$@" <<'PYEOF'
import sys, wave
import numpy as np
path, start, length = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
try:
    w = wave.open(path, "rb")
except Exception as e:
    print("? ? ?"); sys.exit(0)
rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
raw = w.readframes(n)
dtype = {2: np.int16, 4: np.int32}.get(width)
if dtype is None or n == 0:
    print("? ? ?"); sys.exit(0)
x = np.frombuffer(raw, dtype=dtype).reshape(-1, ch)[:, 0].astype(np.float64)
seg = x[int(start * rate):int((start + length) * rate)]
if len(seg) < rate // 2:
    print(f"? ? {n / rate:.3f}"); sys.exit(0)
spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
freqs = np.fft.rfftfreq(len(seg), 1.0 / rate)
total = spec.sum() or 1.0
def share(f):
    return spec[(freqs > f - 15) & (freqs < f + 15)].sum() / total
print(f"{share(440):.3f} {share(660):.3f} {n / rate:.3f}")
PYEOF
}

# Both tones present, each with a fair share: two speakers at the same level
# mixed into one stream, not one speaker winning or clipping into noise.
check_tones() {
  local name=$1 wav=$2 want_dur=$3 p440 p660 dur
  read -r p440 p660 dur < <(tones "$wav" 1 3)
  echo "# $name: duration $dur s, power share 440 Hz $p440, 660 Hz $p660"
  if [[ "$p440" != "?" ]] && awk -v a="$p440" -v b="$p660" 'BEGIN { exit !(a >= 0.2 && b >= 0.2 && a + b >= 0.8) }'; then
    pass "${T}_${name}_both_tones"
  else
    fail "${T}_${name}_both_tones" "440 Hz share $p440, 660 Hz share $p660 (want each >= 0.2, together >= 0.8)"
  fi
  if [[ -n "$want_dur" ]]; then
    if [[ "$dur" != "?" ]] && awk -v d="$dur" -v e="$want_dur" 'BEGIN { exit !(d >= 0.9 * e && d <= 1.1 * e) }'; then
      pass "${T}_${name}_duration"
    else
      fail "${T}_${name}_duration" "duration $dur s not within 10% of $want_dur s"
    fi
  fi
}

for i in 0 1 2; do
  check_tones "listener_$((i + 1))" "${WAVS[i]}" "$SECONDS_OF_TONE"
done

if grep -q '^=== stentord final counters ===' "$RELAY_LOG"; then
  frames=$(netlib_counter "$RELAY_LOG" mixer/frames_out)
  rtp_in=$(netlib_counter "$RELAY_LOG" rtp_in)
  replicas=$(netlib_counter "$RELAY_LOG" replicas_out)
  echo "# relay: rtp_in=${rtp_in:-?} mixer/frames_out=${frames:-?} replicas_out=${replicas:-?} mixer/plc_frames=$(netlib_counter "$RELAY_LOG" mixer/plc_frames) mixer/late=$(netlib_counter "$RELAY_LOG" mixer/late)"
  # One mixed stream: about one frame per 20 ms while anyone speaks, not one
  # per speaker packet; every frame to the three listeners.
  if [[ "$frames" =~ ^[0-9]+$ && "$replicas" =~ ^[0-9]+$ && "$rtp_in" =~ ^[0-9]+$ ]] &&
     (( frames >= SECONDS_OF_TONE * 50 * 9 / 10 && frames <= SECONDS_OF_TONE * 50 * 12 / 10 )) &&
     (( rtp_in >= 2 * SECONDS_OF_TONE * 50 * 9 / 10 )) && (( replicas >= 3 * frames * 99 / 100 )); then
    pass "${T}_one_stream"
  else
    fail "${T}_one_stream" "rtp_in=${rtp_in:-?} mixer/frames_out=${frames:-?} replicas_out=${replicas:-?}"
  fi
else
  tail -n 30 "$RELAY_LOG" >&2
  fail "${T}_one_stream" "stentord printed no final counters"
fi

# The recording of a mix session is the mix: one track, both tones.
files=("$WORK"/rec/*-mix.opus)
if (( ${#files[@]} == 1 )) && [[ -s "${files[0]}" ]] && opusinfo "${files[0]}" >"$WORK/opusinfo.txt" 2>&1; then
  pass "${T}_recording_opusinfo"
  ffmpeg -hide_banner -nostdin -loglevel error -i "${files[0]}" -ac 2 -ar 48000 "$WORK/rec.wav" || true
  check_tones recording "$WORK/rec.wav" ""
else
  ls -l "$WORK/rec" >&2 || true
  cat "$WORK/opusinfo.txt" >&2 2>/dev/null || true
  fail "${T}_recording_opusinfo" "no single mix recording accepted by opusinfo"
fi

(( FAILS == 0 ))
