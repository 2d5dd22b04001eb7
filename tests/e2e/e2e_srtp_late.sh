#!/usr/bin/env bash
# End-to-end: a listener that joins an encrypted session after its egress
# index passed 65 535 (docs/srtp.md "Late joiners and the ROC"), with peers
# we did not write:
#   ffmpeg speaker (plain RTP, starting sequence number 65 236: the index
#   wraps after 6 s) -> stentord (srtp egress session_key) -> GStreamer
#   listeners decrypting with srtpdec.
#   - listener 1 runs from the start (ROC 0 in its caps): the tone, the
#     whole duration, across the wrap;
#   - 8 s in, the session's srtp.streams shows ROC 1; listener 2 starts then
#     with roc=(uint)<that ROC> in its caps: it decodes the tone from there
#     on; listener 3 starts at the same moment with roc=(uint)0 (what
#     srtpdec and libsrtp2 assume when told nothing): it decodes nothing.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 60 s).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
SECS=14
JOIN_AT=8
T="e2e_srtp_late"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then fail "${T}_setup" "needs root (network namespaces)"; exit 1; fi
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "$STENTORD not built"; exit 1; fi
if ! gst-inspect-1.0 srtpdec >/dev/null 2>&1; then fail "${T}_setup" "GStreamer srtpdec missing (gstreamer1.0-plugins-bad)"; exit 1; fi

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
e2e_hook() { [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"; }
netlib_trap e2e_hook
if ! netlib_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

K1=$(openssl rand -base64 30)
TOKEN=$(awk -F'"' '/^token = / { print $2; exit }' configs/dev-veth.toml)

# dev-veth with session 1 protecting towards its listeners with a session key.
sed -e 's/^recording = false/recording = false\nsrtp_egress = "session_key"/' \
    -e 's/^stats_interval_s = 5/stats_interval_s = 0/' \
    configs/dev-veth.toml >"$WORK/late.toml"

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$WORK/late.toml" 60 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then fail "${T}_relay_ready" "stentord did not start (rc $rc)"; exit 1; fi
pass "${T}_relay_ready"

api() { netlib_api "$TOKEN" "$@"; }   # api METHOD PATH [BODY]
out=$(api POST /api/v1/sessions/1/srtp/keys "{\"id\":\"k1\",\"key\":\"$K1\",\"mki\":\"01\"}")
if grep -q '"key":"k1"' <<<"$out"; then pass "${T}_session_key_set"; else fail "${T}_session_key_set" "$out"; fi
if api GET /api/v1/sessions/1 | jq -e '.srtp.streams == []' >/dev/null; then
  pass "${T}_no_stream_before_the_first_packet"
else
  fail "${T}_no_stream_before_the_first_packet" "$(api GET /api/v1/sessions/1 | jq -c .srtp)"
fi

CAPS="application/x-srtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111,ssrc=(uint)1234,srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80,srtp-key=(buffer)$(netlib_hex_of "$K1"),mki=(buffer)01"
declare -a WAVS LPIDS
listen() {  # listen INDEX ROC
  local i=$1 ns=${NL_NS_LISTENERS[$1]}
  WAVS[i]="$WORK/l$((i + 1)).wav"
  ip netns exec "$ns" timeout --foreground -s INT -k 5 40 gst-launch-1.0 -q -e \
    udpsrc port=5004 caps="$CAPS,roc=(uint)$2" '!' srtpdec '!' rtpjitterbuffer latency=50 '!' rtpopusdepay \
    '!' opusdec '!' audioconvert '!' wavenc '!' filesink "location=${WAVS[i]}" >"$WORK/listener$((i + 1)).log" 2>&1 &
  LPIDS[i]=$!
  netlib_track "${LPIDS[i]}"
  for _ in $(seq 50); do
    [[ -n "$(ip netns exec "$ns" ss -Hlun 'sport = :5004' 2>/dev/null)" ]] && break
    sleep 0.1
  done
}
listen 0 0

ip netns exec "$NL_NS_SPK" timeout 30 ffmpeg -hide_banner -nostdin -loglevel warning -re \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECS" \
  -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio \
  -f rtp -payload_type 111 -ssrc 1234 -seq 65236 \
  "rtp://$NL_RELAY_IP:40000?pkt_size=1200&localrtpport=5004" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"

sleep "$JOIN_AT"
STREAMS=$(api GET /api/v1/sessions/1 | jq -c '.srtp.streams')
ROC=$(jq -r '.[0].roc // empty' <<<"$STREAMS")
echo "# srtp.streams $JOIN_AT s in: $STREAMS"
if [[ "$ROC" == 1 ]] && jq -e '.[0].ssrc == 1234 and .[0].next_index == 65536 * .[0].roc + .[0].seq and .[0].reserved_below == null' <<<"$STREAMS" >/dev/null; then
  pass "${T}_session_shows_roc_1_after_the_wrap"
else
  fail "${T}_session_shows_roc_1_after_the_wrap" "streams $STREAMS"
fi
listen 1 "${ROC:-1}"
listen 2 0

spk_rc=0
wait "$SPK_PID" || spk_rc=$?
(( spk_rc == 0 )) || { sed 's/^/[ffmpeg] /' "$WORK/speaker.log" >&2; fail "${T}_speaker" "ffmpeg exited $spk_rc"; }
sleep 1
for i in 0 1 2; do netlib_stop_pid "${LPIDS[i]}" INT 5; done
netlib_stop_pid "$RELAY_PID" INT 10

info() {  # info INDEX -> "duration freq"
  local dur="?" freq="?"
  [[ -s "${WAVS[$1]}" ]] && read -r dur freq < <(netlib_wav_info "${WAVS[$1]}")
  echo "$dur $freq"
}
read -r dur1 freq1 < <(info 0)
read -r dur2 freq2 < <(info 1)
dur3=0
[[ -s "${WAVS[2]}" ]] && dur3=$(soxi -D "${WAVS[2]}" 2>/dev/null || echo 0)
echo "# listener 1 (from the start): $dur1 s, $freq1 Hz; listener 2 (late, told ROC $ROC): $dur2 s, $freq2 Hz; listener 3 (late, ROC 0): $dur3 s"
if [[ "$dur1" != "?" ]] && awk -v d="$dur1" -v e="$SECS" -v f="$freq1" 'BEGIN { exit !(d >= 0.9 * e && d <= 1.1 * e && f >= 435 && f <= 445) }'; then
  pass "${T}_listener_from_the_start_hears_across_the_wrap"
else
  fail "${T}_listener_from_the_start_hears_across_the_wrap" "duration $dur1 s (want $SECS +- 10%), $freq1 Hz"
fi
left=$((SECS - JOIN_AT))
if [[ "$dur2" != "?" ]] && awk -v d="$dur2" -v l="$left" -v f="$freq2" 'BEGIN { exit !(d >= 0.6 * l && d <= 1.2 * l && f >= 435 && f <= 445) }'; then
  pass "${T}_late_listener_told_the_roc_hears_the_rest"
else
  fail "${T}_late_listener_told_the_roc_hears_the_rest" "duration $dur2 s (want about $left s), $freq2 Hz; $(tail -c 300 "$WORK/listener2.log")"
fi
if awk -v d="$dur3" 'BEGIN { exit !(d < 0.1) }'; then
  pass "${T}_late_listener_not_told_decodes_nothing"
else
  fail "${T}_late_listener_not_told_decodes_nothing" "listener 3 (ROC 0) decoded $dur3 s"
fi

(( FAILS == 0 ))
