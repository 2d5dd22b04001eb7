#!/usr/bin/env bash
# End-to-end recording: a real speaker -> stentord (forward mode, recording on)
# -> Ogg Opus file, checked with the tools a publisher would use (opusinfo,
# ffprobe, ffmpeg + sox).
#   1. ffmpeg sends a 10 s 440 Hz tone: the file is accepted by opusinfo and
#      ffprobe, lasts 10 s within one 20 ms frame, and contains the tone.
#   2. stentor-speaker sends 3 s tone, 4 s silence, 3 s tone with DTX on (the
#      silence is mostly not sent at all): the file still lasts 10 s and the
#      tone comes back at 7 s.
#   3. ffmpeg sends a tone, stentord is killed with SIGKILL 4 s after the
#      recording's file appeared (<name>.opus.part); the next stentord on the
#      same directory closes the file, renames it <name>.opus and lists it as
#      "recovered"; opusinfo, ffprobe and ffmpeg accept it, and it lasts to
#      within one second of the kill. Then, through stentorctl and the API,
#      the recovered recording is deleted by its id (its file goes, the list
#      no longer has it) and the new, live recording of the same session is
#      refused (409: still being written).
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 90 s).
#
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
SPEAKER="$BUILD_DIR/tools/stentor-speaker"
STENTORCTL="$BUILD_DIR/control/stentorctl"
TOKEN=$(awk -F'"' '/^token = / { print $2; exit }' configs/dev-veth.toml)
PY=/usr/bin/python3
T="e2e_record"
FRAME_S=0.020

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
for b in "$STENTORD" "$SPEAKER" "$STENTORCTL"; do
  if [[ ! -x "$b" ]]; then fail "${T}_setup" "$b not built"; exit 1; fi
done
for t in opusinfo ffprobe ffmpeg sox; do
  command -v "$t" >/dev/null || { fail "${T}_setup" "$t not installed"; exit 1; }
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

# make_profile OUT RECDIR: dev-veth with session 1 recorded into RECDIR. The
# API listens on 127.0.0.1:8080 inside the relay's own namespace, so it can
# never collide with another run.
make_profile() {
  local out=$1 dir=$2
  sed -e 's/^recording = false/recording = true/' \
      -e 's/^stats_interval_s = 5/stats_interval_s = 0/' \
      configs/dev-veth.toml >"$out"
  printf '\n[recording]\ndir = "%s"\n' "$dir" >>"$out"
}

# run_relay TAG: start stentord on $WORK/TAG.toml; sets RELAY_PID, RELAY_LOG.
run_relay() {
  local tag=$1 rc=0
  RELAY_LOG="$WORK/$tag.stentord.log"
  netlib_start_relay "$BUILD_DIR" "$WORK/$tag.toml" 60 "$RELAY_LOG" 15 || rc=$?
  if (( rc != 0 )); then
    fail "${T}_${tag}_relay_ready" "stentord not ready (rc $rc)"
    return 1
  fi
  pass "${T}_${tag}_relay_ready"
}

# check_file TAG DIR WANT_S: the one recording in DIR lasts WANT_S s +- a frame,
# passes opusinfo and ffprobe, and has a 440 Hz tone in [1 s, 2.5 s]
# (and, for the DTX run, again in [7.5 s, 9 s]).
check_file() {
  local tag=$1 dir=$2 want=$3 files n f dur info_dur freq
  files=("$dir"/*.opus)
  n=${#files[@]}
  if (( n != 1 )) || [[ ! -s "${files[0]}" ]]; then
    fail "${T}_${tag}_file" "expected one recording in $dir, found $n: $(ls -l "$dir" 2>&1 | tr '\n' ' ')"
    return
  fi
  f=${files[0]}
  pass "${T}_${tag}_file"
  if [[ -n "${E2E_KEEP:-}" ]]; then cp "$f" "$E2E_KEEP/$tag.opus"; fi
  echo "# $tag: $(basename "$f") $(stat -c %s "$f") bytes"

  if opusinfo "$f" >"$WORK/$tag.opusinfo" 2>&1 && ! grep -qiE 'error|warning' "$WORK/$tag.opusinfo"; then
    pass "${T}_${tag}_opusinfo"
  else
    sed 's/^/[opusinfo] /' "$WORK/$tag.opusinfo" >&2
    fail "${T}_${tag}_opusinfo" "opusinfo rejected the file or warned"
  fi
  info_dur=$(awk -F'[:ms ]+' '/Playback length/ { print $(NF-1) + 60 * $(NF-2) }' "$WORK/$tag.opusinfo" 2>/dev/null || true)

  dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$f" 2>"$WORK/$tag.ffprobe.err" || true)
  echo "# $tag: ffprobe duration ${dur:-?} s, opusinfo playback length ${info_dur:-?} s (want $want s +- $FRAME_S)"
  if [[ -s "$WORK/$tag.ffprobe.err" ]]; then sed 's/^/[ffprobe] /' "$WORK/$tag.ffprobe.err" >&2; fi
  # opusinfo's playback length is the audio a player plays (pre-skip taken
  # off); ffprobe reports the last granule position, pre-skip included
  # (312 samples, 6.5 ms), so it gets that much more room.
  if [[ "$info_dur" =~ ^[0-9.]+$ ]] &&
     awk -v d="$info_dur" -v w="$want" -v f="$FRAME_S" 'BEGIN { exit !(d >= w - f && d <= w + f) }'; then
    pass "${T}_${tag}_duration"
  else
    fail "${T}_${tag}_duration" "opusinfo playback length ${info_dur:-none} not $want +- $FRAME_S s"
  fi
  if [[ "$dur" =~ ^[0-9.]+$ && ! -s "$WORK/$tag.ffprobe.err" ]] &&
     awk -v d="$dur" -v w="$want" -v f="$FRAME_S" 'BEGIN { exit !(d >= w - f && d <= w + f + 0.0066) }'; then
    pass "${T}_${tag}_ffprobe"
  else
    fail "${T}_${tag}_ffprobe" "ffprobe duration ${dur:-none} not $want +- $FRAME_S s (+ pre-skip), or ffprobe complained"
  fi

  # Decode like a player would and look for the tone.
  if ffmpeg -hide_banner -nostdin -loglevel error -i "$f" -ac 1 -ar 48000 "$WORK/$tag.decoded.wav" 2>"$WORK/$tag.dec.err"; then
    freq=$(sox "$WORK/$tag.decoded.wav" -n trim 1 1.5 stat 2>&1 | awk '/Rough[ \t]+frequency/ { print $3 }')
    echo "# $tag: rough frequency ${freq:-?} Hz in [1 s, 2.5 s]"
    if [[ "$freq" =~ ^[0-9]+$ ]] && (( freq >= 435 && freq <= 445 )); then
      pass "${T}_${tag}_tone"
    else
      fail "${T}_${tag}_tone" "rough frequency ${freq:-none} Hz not 440 +- 5"
    fi
    if [[ "$tag" == dtx ]]; then
      # Silence where the speaker was silent, the tone again after it: the
      # DTX gap sits at the right place on the timeline.
      local rms_gap rms_back
      rms_gap=$(sox "$WORK/$tag.decoded.wav" -n trim 4 2 stat 2>&1 | awk '/RMS[ \t]+amplitude/ { print $3 }')
      freq=$(sox "$WORK/$tag.decoded.wav" -n trim 7.5 1.5 stat 2>&1 | awk '/Rough[ \t]+frequency/ { print $3 }')
      rms_back=$(sox "$WORK/$tag.decoded.wav" -n trim 7.5 1.5 stat 2>&1 | awk '/RMS[ \t]+amplitude/ { print $3 }')
      echo "# dtx: RMS ${rms_gap:-?} in the gap [4 s, 6 s], ${rms_back:-?} at ${freq:-?} Hz in [7.5 s, 9 s]"
      if awk -v g="${rms_gap:-1}" -v b="${rms_back:-0}" 'BEGIN { exit !(g < 0.01 && b > 0.1) }' &&
         [[ "$freq" =~ ^[0-9]+$ ]] && (( freq >= 435 && freq <= 445 )); then
        pass "${T}_${tag}_timeline"
      else
        fail "${T}_${tag}_timeline" "gap RMS ${rms_gap:-?} (want < 0.01), tone after gap RMS ${rms_back:-?} at ${freq:-?} Hz"
      fi
    fi
  else
    sed 's/^/[ffmpeg] /' "$WORK/$tag.dec.err" >&2
    fail "${T}_${tag}_tone" "ffmpeg could not decode the recording"
  fi
}

stop_relay() {
  netlib_stop_pid "$RELAY_PID" INT 15
  if grep -q '^=== stentord final counters ===' "$RELAY_LOG"; then
    echo "# relay: rtp_in=$(netlib_counter "$RELAY_LOG" rtp_in) recorder/bytes_written=$(netlib_counter "$RELAY_LOG" recorder/bytes_written) recorder/write_errors=$(netlib_counter "$RELAY_LOG" recorder/write_errors)"
  else
    tail -n 20 "$RELAY_LOG" >&2
  fi
}

# ---- 1. ffmpeg, 10 s tone ---------------------------------------------------
mkdir -p "$WORK/rec-tone"
make_profile "$WORK/tone.toml" "$WORK/rec-tone"
if run_relay tone; then
  netlib_speaker_cmd 10
  spk_rc=0
  timeout 20 "${NL_SPEAKER_CMD[@]}" >"$WORK/tone.speaker.log" 2>&1 || spk_rc=$?
  (( spk_rc == 0 )) || { sed 's/^/[ffmpeg] /' "$WORK/tone.speaker.log" >&2; fail "${T}_tone_speaker" "ffmpeg exited $spk_rc"; }
  sleep 0.5
  # End the session through the API: the recording must be final (path and
  # duration) in the very next answer.
  ctl=(ip netns exec "$NL_NS_RELAY" "$STENTORCTL" --api 127.0.0.1:8080 --token "$TOKEN")
  if "${ctl[@]}" session end 1 >"$WORK/ctl.log" 2>&1 &&
     "${ctl[@]}" show recordings --json >"$WORK/recordings.json" 2>>"$WORK/ctl.log"; then
    read -r st dur path < <("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))["recordings"]
print(r[0]["state"], r[0]["duration_s"], r[0]["path"]) if len(r) == 1 else print("? ? ?")' "$WORK/recordings.json")
    echo "# api: state $st, duration_s $dur, path $path"
    if [[ "$st" == finalised && -s "$path" ]] &&
       awk -v d="$dur" -v f="$FRAME_S" 'BEGIN { exit !(d >= 10 - f && d <= 10 + f) }'; then
      pass "${T}_tone_api_final_at_session_end"
    else
      cat "$WORK/recordings.json" >&2
      fail "${T}_tone_api_final_at_session_end" "after 'session end': state $st, duration $dur, path $path"
    fi
    "${ctl[@]}" show recordings | sed 's/^/# /'
  else
    cat "$WORK/ctl.log" >&2
    fail "${T}_tone_api_final_at_session_end" "stentorctl failed"
  fi
  stop_relay
  # ffmpeg's libopus encoder sends its 312-sample delay as one more frame
  # (501 packets); the OpusHead pre-skip takes it off again: 10 s.
  check_file tone "$WORK/rec-tone" 10
fi

# ---- 2. stentor-speaker, DTX on, 3 s tone + 4 s silence + 3 s tone ----------
sox -n -r 48000 -b 16 -c 2 "$WORK/t.wav" synth 3 sine 440 vol 0.5
sox -n -r 48000 -b 16 -c 2 "$WORK/s.wav" trim 0.0 4.0
sox "$WORK/t.wav" "$WORK/s.wav" "$WORK/t.wav" "$WORK/dtx.wav"
mkdir -p "$WORK/rec-dtx"
make_profile "$WORK/dtx.toml" "$WORK/rec-dtx"
if run_relay dtx; then
  spk_rc=0
  timeout 20 ip netns exec "$NL_NS_SPK" "$SPEAKER" --wav "$WORK/dtx.wav" --dtx on --ssrc 1234 \
    --bind "$NL_SPK_IP:5004" --dest "$NL_RELAY_IP:40000" -q >"$WORK/dtx.speaker.log" 2>&1 || spk_rc=$?
  sed 's/^/# /' "$WORK/dtx.speaker.log"
  (( spk_rc == 0 )) || fail "${T}_dtx_speaker" "stentor-speaker exited $spk_rc"
  sleep 0.5
  stop_relay
  # 500 frames of 960 samples, no encoder delay frame: 10 s less the 312
  # samples of pre-skip, well within a frame.
  check_file dtx "$WORK/rec-dtx" 10
fi

# ---- 3. SIGKILL while recording, then a new start ---------------------------
mkdir -p "$WORK/rec-kill"
make_profile "$WORK/kill.toml" "$WORK/rec-kill"
cp "$WORK/kill.toml" "$WORK/kill2.toml"
if run_relay kill; then
  netlib_speaker_cmd 12
  "${NL_SPEAKER_CMD[@]}" >"$WORK/kill.speaker.log" 2>&1 &
  SPK_PID=$!
  netlib_track "$SPK_PID"
  # The recording starts with the first packet: its .part file appears then.
  t0=""
  for ((i = 0; i < 500; i++)); do
    if compgen -G "$WORK/rec-kill/*.opus.part" >/dev/null; then t0=$(date +%s.%N); break; fi
    sleep 0.01
  done
  if [[ -z "$t0" ]]; then
    fail "${T}_kill_part_file" "no .part file in $WORK/rec-kill within 5 s: $(ls "$WORK/rec-kill" 2>&1 | tr '\n' ' ')"
  else
    pass "${T}_kill_part_file"
    sleep 4
    kill -KILL "$RELAY_PID"
    t_kill=$(date +%s.%N)
    wait "$RELAY_PID" 2>/dev/null || true
    netlib_stop_pid "$SPK_PID" INT 5
    elapsed=$(awk -v a="$t0" -v b="$t_kill" 'BEGIN { printf "%.3f", b - a }')
    parts=("$WORK"/rec-kill/*.opus.part)
    echo "# kill: SIGKILL ${elapsed} s after the file appeared; left: $(ls "$WORK/rec-kill" | tr '\n' ' ')"
    if run_relay kill2; then
      ctl=(ip netns exec "$NL_NS_RELAY" "$STENTORCTL" --api 127.0.0.1:8080 --token "$TOKEN")
      if "${ctl[@]}" show recordings --json >"$WORK/kill.recordings.json" 2>"$WORK/kill.ctl.log"; then
        read -r st dur path < <("$PY" -c '
import json, sys
r = [x for x in json.load(open(sys.argv[1]))["recordings"] if x["state"] != "recording"]
print(r[0]["state"], r[0]["duration_s"], r[0]["path"]) if len(r) == 1 else print("? ? ?")' "$WORK/kill.recordings.json")
        echo "# api after restart: state $st, duration_s $dur, path $path"
        if [[ "$st" == recovered && -s "$path" && "$path" != *.part && ${#parts[@]} -eq 1 && ! -e "${parts[0]}" ]]; then
          pass "${T}_kill_listed_recovered"
        else
          cat "$WORK/kill.recordings.json" >&2
          fail "${T}_kill_listed_recovered" "state $st, path $path, .part before: ${parts[*]}"
        fi
        # Within one second of the kill (and never longer than the time it ran).
        if awk -v d="$dur" -v e="$elapsed" 'BEGIN { exit !(d >= e - 1.0 && d <= e + 0.1) }'; then
          pass "${T}_kill_within_a_second"
        else
          fail "${T}_kill_within_a_second" "recovered duration $dur s, killed $elapsed s after the recording started"
        fi
        if [[ -s "$path" ]]; then
          pdur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$path" 2>"$WORK/kill.ffprobe.err" || true)
          if opusinfo "$path" >"$WORK/kill.opusinfo" 2>&1 && ! grep -qiE 'error|warning' "$WORK/kill.opusinfo" &&
             [[ "$pdur" =~ ^[0-9.]+$ && ! -s "$WORK/kill.ffprobe.err" ]] &&
             awk -v p="$pdur" -v d="$dur" 'BEGIN { exit !(p >= d - 0.001 && p <= d + 0.0075) }' &&
             ffmpeg -hide_banner -nostdin -loglevel error -i "$path" -f null - 2>"$WORK/kill.dec.err" && [[ ! -s "$WORK/kill.dec.err" ]]; then
            pass "${T}_kill_plays"
          else
            sed 's/^/[opusinfo] /' "$WORK/kill.opusinfo" >&2
            cat "$WORK/kill.ffprobe.err" "$WORK/kill.dec.err" >&2 2>/dev/null || true
            fail "${T}_kill_plays" "opusinfo, ffprobe (${pdur:-?} s) or ffmpeg rejected the recovered file"
          fi
        fi
        # Delete the recovered recording by its id; the session's live one
        # (the relay recreated session 1 from the profile) is refused.
        read -r rid live_id < <("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))["recordings"]
rec = [x["id"] for x in r if x["state"] == "recovered"]
live = [x["id"] for x in r if x["state"] == "recording"]
print(rec[0] if len(rec) == 1 else "?", live[0] if len(live) == 1 else "?")' "$WORK/kill.recordings.json")
        del_rc=0
        "${ctl[@]}" recording delete "$rid" >"$WORK/kill.delete.out" 2>&1 || del_rc=$?
        live_rc=0
        "${ctl[@]}" recording delete "$live_id" >"$WORK/kill.delete_live.out" 2>&1 || live_rc=$?
        "${ctl[@]}" show recordings --json >"$WORK/kill.after_delete.json" 2>>"$WORK/kill.ctl.log" || true
        left=$("$PY" -c '
import json, sys
print(" ".join(str(x["id"]) for x in json.load(open(sys.argv[1]))["recordings"]))' "$WORK/kill.after_delete.json" 2>/dev/null || echo "?")
        sed 's/^/# /' "$WORK/kill.delete.out" "$WORK/kill.delete_live.out"
        if (( del_rc == 0 && live_rc == 1 )) && [[ -n "$path" && ! -e "$path" && "$left" == "$live_id" ]] &&
           grep -q "deleted recording $rid of session 1: 1 files" "$WORK/kill.delete.out" &&
           grep -q "still being written" "$WORK/kill.delete_live.out"; then
          pass "${T}_delete"
        else
          fail "${T}_delete" "delete $rid exit $del_rc, delete live $live_id exit $live_rc, listed after: $left, file $path $( [[ -e "$path" ]] && echo still there)"
        fi
      else
        cat "$WORK/kill.ctl.log" >&2
        fail "${T}_kill_listed_recovered" "stentorctl failed"
      fi
      stop_relay
    fi
  fi
fi

(( FAILS == 0 ))
