#!/usr/bin/env bash
# End-to-end over loopback: stentor-speaker -> stentor-listener, no relay.
# Checks that the probe counts exactly what the speaker did to the stream:
#   tools_probe_tone            3 s of 440 Hz in real time: 150 packets, no loss,
#                               latency from --embed-time, WAV of 3 s at ~440 Hz
#   tools_probe_impairments     known drops, duplicates and swaps across a
#                               sequence-number wrap: exact loss/dup/reorder counts
#   tools_probe_poll_fallback   the same with --no-uring (poll() receive path)
#   tools_probe_dtx             DTX on a WAV with 1 s of silence in the middle:
#                               fewer packets, no false loss, one marker per
#                               talkspurt the speaker sent, WAV still 3 s
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (~15 s).
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
SPEAKER="$BUILD_DIR/tools/stentor-speaker"
LISTENER="$BUILD_DIR/tools/stentor-listener"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
T="tools_probe"

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }

for b in "$SPEAKER" "$LISTENER"; do
  if [[ ! -x "$b" ]]; then fail "${T}_setup" "$b not built"; exit 1; fi
done

WORK=$(mktemp -d /tmp/stentor-tools-probe.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_listener NAME ARGS... : starts stentor-listener on a free loopback port
# (tries a few random ones: other suites may hold ports) and sets LPID, LPORT.
start_listener() {
  local name=$1; shift
  local try
  for try in 1 2 3 4 5; do
    LPORT=$((20000 + RANDOM % 30000))
    : >"$WORK/$name.err"  # exists before the background child opens it, for the grep below
    "$LISTENER" --listen "127.0.0.1:$LPORT" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LPID=$!
    PIDS+=("$LPID")
    local i
    for i in $(seq 50); do
      if grep -q '^stentor-listener: ready' "$WORK/$name.err"; then return 0; fi
      if ! kill -0 "$LPID" 2>/dev/null; then break; fi
      sleep 0.05
    done
    kill "$LPID" 2>/dev/null || true
    wait "$LPID" 2>/dev/null || true
  done
  return 1
}

# wait_listener NAME : waits (bounded by the listener's own --seconds) and checks it exited 0.
wait_listener() {
  local rc=0
  wait "$LPID" || rc=$?
  if (( rc != 0 )); then
    echo "--- $1 listener stderr ---" >&2; cat "$WORK/$1.err" >&2
    return 1
  fi
}

# jq-like checks on the listener's JSON: prints "ok" or what differs.
check_json() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
path, listener = sys.argv[1], int(sys.argv[2])
want = dict(a.split("=", 1) for a in sys.argv[3:])
l = json.load(open(path))["listeners"][listener]
bad = []
for k, v in want.items():
    if k.startswith("stream0."):
        got = l["streams"][0].get(k[8:]) if l["streams"] else None
    else:
        got = l.get(k)
    if str(got) != v:
        bad.append(f"{k}={got}(want {v})")
print("ok" if not bad else " ".join(bad))
PYEOF
}

# --- (a) real-time tone ---------------------------------------------------------
name="${T}_tone"
if start_listener tone --idle 1.5 --seconds 12 --latency --json "$WORK/tone.json" --wav-dir "$WORK/tone"; then
  "$SPEAKER" --tone 440 --seconds 3 --dest "127.0.0.1:$LPORT" --bind 127.0.0.1:0 --ssrc 1234 --embed-time \
    >"$WORK/tone-speaker.out" 2>&1 || true
  if ! wait_listener tone; then
    fail "$name" "listener failed"
  else
    res=$(check_json "$WORK/tone.json" 0 packets=150 lost=0 duplicates=0 reordered=0 stream0.ssrc=1234)
    lat=$("$PY" -c 'import json,sys; l=json.load(open(sys.argv[1]))["listeners"][0]["latency_ms"]; print("none" if l is None else "%d %.3f" % (l["count"], l["avg"]))' "$WORK/tone.json")
    wav="$WORK/tone/listener-0.wav"
    dur=$(soxi -D "$wav" 2>/dev/null || echo 0)
    freq=$(sox "$wav" -n remix 1 trim 0.5 2 stat 2>&1 | awk '/Rough[[:space:]]+frequency/ {print $3}')
    if [[ "$res" != ok ]]; then
      fail "$name" "$res"
    elif [[ "$lat" == none || ${lat%% *} != 150 ]] || ! awk -v a="${lat#* }" 'BEGIN { exit !(a >= 0 && a < 50) }'; then
      fail "$name" "latency not measured on every packet or implausible: $lat"
    elif ! awk -v d="$dur" 'BEGIN { exit !(d > 2.98 && d < 3.02) }'; then
      fail "$name" "decoded WAV lasts $dur s, want 3.00"
    elif [[ -z "$freq" ]] || ! awk -v f="$freq" 'BEGIN { exit !(f > 430 && f < 450) }'; then
      fail "$name" "dominant frequency '$freq' Hz, want ~440"
    else
      echo "$name: 150 packets, loss 0, latency avg ${lat#* } ms, WAV $dur s, $freq Hz"
      pass "$name"
    fi
  fi
else
  fail "$name" "listener did not start"
fi

# --- (b) injected impairments, io_uring and poll receive paths ---------------------
# 100 packets starting at seq 65500 (wraps at index 36). Dropped: 3, 20-22, 60
# (5 lost; never the last packet, whose loss no receiver can see). Duplicated:
# 10, 11, 50 (3). Swapped: 7, 40 (2 late). Received: 100 - 5 + 3 = 98.
run_impairments() {
  local name=$1; shift
  if ! start_listener "$name" --idle 1 --seconds 10 --json "$WORK/$name.json" "$@"; then
    fail "$name" "listener did not start"; return
  fi
  "$SPEAKER" --tone 440 --seconds 2 --dest "127.0.0.1:$LPORT" --bind 127.0.0.1:0 --seq 65500 --rate-multiplier 10 \
    --test-drop 3,20-22,60 --test-dup 10,11,50 --test-swap 7,40 >"$WORK/$name-speaker.out" 2>&1 || true
  if ! wait_listener "$name"; then fail "$name" "listener failed"; return; fi
  local res
  res=$(check_json "$WORK/$name.json" 0 packets=98 expected=100 lost=5 duplicates=3 reordered=2)
  if [[ "$res" == ok ]]; then
    echo "$name: packets 98, lost 5, duplicates 3, reordered 2 (as injected)"
    pass "$name"
  else
    fail "$name" "$res"
  fi
}
run_impairments "${T}_impairments"
run_impairments "${T}_poll_fallback" --no-uring
if ! grep -qs 'via poll' "$WORK/${T}_poll_fallback.err"; then
  fail "${T}_poll_fallback_used" "listener did not report the poll backend"
fi

# --- (c) DTX -----------------------------------------------------------------------
name="${T}_dtx"
# -D: no dither, so the file (and libopus's DTX decisions) are the same every run.
sox -D -n -r 48000 -b 16 -c 1 "$WORK/tone1.wav" synth 1 sine 440 vol 0.5 &&
  sox -D -n -r 48000 -b 16 -c 1 "$WORK/silence1.wav" trim 0 1 &&
  sox -D "$WORK/tone1.wav" "$WORK/silence1.wav" "$WORK/tone1.wav" "$WORK/dtx.wav"
if start_listener dtx --idle 1 --seconds 10 --json "$WORK/dtx.json" --wav-dir "$WORK/dtx"; then
  "$SPEAKER" --wav "$WORK/dtx.wav" --dtx on --dest "127.0.0.1:$LPORT" --bind 127.0.0.1:0 --rate-multiplier 5 \
    >"$WORK/dtx-speaker.out" 2>&1 || true
  if ! wait_listener dtx; then
    fail "$name" "listener failed"
  else
    got=$("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))["listeners"][0]["streams"][0]; print(s["packets"], s["lost"], s["markers"])' "$WORK/dtx.json" 2>/dev/null || echo "0 0 0")
    read -r pk lost markers <<<"$got"
    dur=$(soxi -D "$WORK/dtx/listener-0.wav" 2>/dev/null || echo 0)
    # libopus sends comfort-noise refresh frames inside a long silence, so the
    # number of talkspurts is the speaker's to report; each must carry a marker.
    spurts=$(sed -n 's/.*talkspurts \([0-9]*\).*/\1/p' "$WORK/dtx-speaker.out")
    spurts=${spurts:-0}
    if (( pk >= 150 || pk < 100 )); then
      fail "$name" "$pk packets with DTX on; want fewer than the 150 frames (and at least the 100 tone frames)"
    elif (( lost != 0 )); then
      fail "$name" "DTX gap counted as $lost lost packets"
    elif (( spurts < 2 || markers != spurts )); then
      fail "$name" "$markers marker bits received, speaker sent $spurts talkspurts (want equal, >= 2)"
    elif ! awk -v d="$dur" 'BEGIN { exit !(d > 2.98 && d < 3.02) }'; then
      fail "$name" "decoded WAV lasts $dur s, want 3.00"
    else
      echo "$name: $pk of 150 frames sent, markers $markers = talkspurts, WAV $dur s"
      pass "$name"
    fi
  fi
else
  fail "$name" "listener did not start"
fi

exit $(( FAILS > 0 ? 1 : 0 ))
