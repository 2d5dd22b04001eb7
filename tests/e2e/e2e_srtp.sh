#!/usr/bin/env bash
# End-to-end SRTP (docs/srtp.md) with peers we did not write:
#   ffmpeg speaker sending SRTP (AES_CM_128_HMAC_SHA1_80, key from the
#   profile's key file) -> stentord (srtp ingress required, egress
#   session_key, recording on) -> GStreamer listeners decrypting with srtpdec.
#   - listeners 1 and 2 hold the session keys k1 (MKI 01) and k2 (MKI 02):
#     WAVs of 440 +- 5 Hz lasting the sent duration; the session key rotates
#     k1 -> k2 over the API while the stream runs;
#   - listener 2's packets are also captured and decrypted again afterwards:
#     sequence numbers contiguous (no packet lost across the rotation);
#   - listener 3 holds a wrong key: it decodes nothing;
#   - a spoofer in the speaker's namespace (same address, port and SSRC, it
#     watches the stream and forges the next sequence numbers) sends 4 packets
#     per real one without the key: none forwarded, the speaker loses none and
#     is never policed;
#   - the recording holds the plaintext (440 Hz);
#   - the speaker's key file rewritten in place and SIGHUP mid-stream: the
#     reload is refused by name and the old key still opens every packet
#     (rtp_in == sent, the WAVs' duration, contiguous sequence numbers);
#   - no key appears in the relay's log, any API answer, /metrics or telemetry.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 90 s).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
SECS=6
T="e2e_srtp"

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

# Keys: master key || salt, 30 bytes, base64 (SDES / ffmpeg form); hex for
# GStreamer's caps.
SPK_KEY=$(openssl rand -base64 30)
K1=$(openssl rand -base64 30)
K2=$(openssl rand -base64 30)
WRONG=$(openssl rand -base64 30)
umask 077
printf '%s\n' "$SPK_KEY" >"$WORK/speaker.key"
umask 022
TOKEN=$(awk -F'"' '/^token = / { print $2; exit }' configs/dev-veth.toml)

# dev-veth with session 1 requiring SRTP from its speaker (key file), protecting
# towards listeners with a session key (set over the API), recorded.
sed -e 's/^recording = false/recording = true\nsrtp_ingress = "required"\nsrtp_egress = "session_key"/' \
    -e 's/^stats_interval_s = 5/stats_interval_s = 0/' \
    -e "s|^  ssrc = 1234|  ssrc = 1234\n  [[session.speaker.srtp_key]]\n  id = \"spk1\"\n  key_file = \"$WORK/speaker.key\"|" \
    configs/dev-veth.toml >"$WORK/srtp.toml"
printf '\n[recording]\ndir = "%s"\n' "$WORK/rec" >>"$WORK/srtp.toml"
mkdir -p "$WORK/rec"

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$WORK/srtp.toml" 60 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then fail "${T}_relay_ready" "stentord did not start (rc $rc)"; exit 1; fi
pass "${T}_relay_ready"

api() { netlib_api "$TOKEN" "$@"; }   # api METHOD PATH [BODY]
out=$(api POST /api/v1/sessions/1/srtp/keys "{\"id\":\"k1\",\"key\":\"$K1\",\"mki\":\"01\"}")
if grep -q '"key":"k1"' <<<"$out"; then pass "${T}_session_key_set"; else fail "${T}_session_key_set" "$out"; fi
if api GET /api/v1/sessions/1 | jq -e '.srtp.ingress == "required" and .srtp.egress == "session_key" and .srtp.keys[0].id == "k1" and .srtp.keys[0].active' >/dev/null; then
  pass "${T}_session_shows_modes"
else
  fail "${T}_session_shows_modes" "$(api GET /api/v1/sessions/1 | head -c 300)"
fi

CAPS_COMMON="media=audio,clock-rate=48000,encoding-name=OPUS,payload=111,ssrc=(uint)1234,srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80,roc=(uint)0"
CAPS_GOOD="application/x-srtp,$CAPS_COMMON,srtp-key=(buffer)$(netlib_hex_of "$K1"),mki=(buffer)01,srtp-key2=(buffer)$(netlib_hex_of "$K2"),mki2=(buffer)02"
CAPS_WRONG="application/x-srtp,$CAPS_COMMON,srtp-key=(buffer)$(netlib_hex_of "$WRONG"),mki=(buffer)01"
declare -a WAVS LPIDS
for i in 0 1 2; do
  ns=${NL_NS_LISTENERS[$i]}
  WAVS[i]="$WORK/l$((i + 1)).wav"
  caps=$CAPS_GOOD
  (( i == 2 )) && caps=$CAPS_WRONG
  # Listener 2 also dumps every packet srtpdec let through (the decrypted
  # RTP: its sequence numbers are checked below).
  dump=()
  (( i == 1 )) && dump=(t. '!' queue '!' fakesink dump=true)
  ip netns exec "$ns" timeout --foreground -s INT -k 5 30 gst-launch-1.0 -q -e \
    udpsrc port=5004 caps="$caps" '!' srtpdec '!' tee name=t \
    t. '!' queue '!' rtpjitterbuffer latency=50 '!' rtpopusdepay '!' opusdec \
    '!' audioconvert '!' wavenc '!' filesink "location=${WAVS[i]}" "${dump[@]}" >"$WORK/listener$((i + 1)).log" 2>&1 &
  LPIDS[i]=$!
  netlib_track "${LPIDS[i]}"
done
ip netns exec "$NL_NS_L2" tshark -q -i veth0 -f "udp dst port 5004" -F pcap -w "$WORK/l2.pcap" >"$WORK/tshark.log" 2>&1 &
TSHARK_PID=$!
netlib_track "$TSHARK_PID"
for i in 0 1 2; do
  for _ in $(seq 50); do
    [[ -n "$(ip netns exec "${NL_NS_LISTENERS[$i]}" ss -Hlun 'sport = :5004' 2>/dev/null)" ]] && break
    sleep 0.1
  done
done
netlib_wait_for_line "$WORK/tshark.log" "Capturing on" 15 "$TSHARK_PID" || fail "${T}_setup" "tshark (listener 2) did not start"

# The spoofer: learns the stream from the speaker's own interface and forges
# sequence numbers and timestamps a few packets ahead of it (plausible: they
# pass the cheap checks and cost a MAC; the real packet with that number
# comes later and must still pass), 4 per 20 ms, without the key.
cat >"$WORK/spoof.py" <<'EOF'
import os, random, sys, time
from scapy.all import IP, UDP, Raw, conf, send, sniff
conf.verb = 0
secs = float(sys.argv[1])
# lfilter, not a BPF filter: scapy compiles those with tcpdump, not installed.
first = sniff(iface="veth0", lfilter=lambda p: UDP in p and p[UDP].sport == 5004 and p[UDP].dport == 40000,
              count=1, timeout=10)
if not first:
    print("spoof: no stream seen"); sys.exit(1)
p = bytes(first[0][UDP].payload)
seq0, ts0, t0 = int.from_bytes(p[2:4], "big"), int.from_bytes(p[4:8], "big"), time.time()
sent = 0
end = t0 + secs
while time.time() < end:
    k = int((time.time() - t0) / 0.02) + 3
    pkts = []
    for _ in range(4):
        rtp = bytes([0x80, 111]) + ((seq0 + k) & 0xffff).to_bytes(2, "big") + ((ts0 + 960 * k) & 0xffffffff).to_bytes(4, "big") \
            + (1234).to_bytes(4, "big") + os.urandom(100)
        pkts.append(IP(src="198.18.0.10", dst="198.18.0.1") / UDP(sport=5004, dport=40000) / Raw(rtp))
    send(pkts)
    sent += len(pkts)
    time.sleep(0.02)
print("spoof: sent", sent)
EOF
# The speaker's own packets, counted on its interface (the spoofer's are
# told apart by their UDP length: 8 + 112).
ip netns exec "$NL_NS_SPK" tshark -q -i veth0 -f "udp dst port 40000 and udp[4:2] != 120" -F pcap -w "$WORK/spk.pcap" >"$WORK/tshark-spk.log" 2>&1 &
TSHARK_SPK=$!
netlib_track "$TSHARK_SPK"
netlib_wait_for_line "$WORK/tshark-spk.log" "Capturing on" 15 "$TSHARK_SPK" || fail "${T}_setup" "tshark (speaker) did not start"
ip netns exec "$NL_NS_SPK" timeout 20 /usr/bin/python3 "$WORK/spoof.py" "$((SECS - 2))" >"$WORK/spoof.log" 2>&1 &
SPOOF_PID=$!
netlib_track "$SPOOF_PID"
sleep 1   # scapy loaded and sniffing

ip netns exec "$NL_NS_SPK" timeout 20 ffmpeg -hide_banner -nostdin -loglevel warning -re \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECS" \
  -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio \
  -f rtp -payload_type 111 -ssrc 1234 -srtp_out_suite AES_CM_128_HMAC_SHA1_80 -srtp_out_params "$SPK_KEY" \
  "srtp://$NL_RELAY_IP:40000?pkt_size=1200&localrtpport=5004" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"
# Rotation under the running stream: announce k2, switch to it, retire k1.
sleep 2
api POST /api/v1/sessions/1/srtp/keys "{\"id\":\"k2\",\"key\":\"$K2\",\"mki\":\"02\"}" >"$WORK/rot1.json"
sleep 1
api POST /api/v1/sessions/1/srtp/active '{"id":"k2"}' >"$WORK/rot2.json"
sleep 1
api DELETE /api/v1/sessions/1/srtp/keys/k1 >"$WORK/rot3.json"
if grep -q '"key":"k2"' "$WORK/rot1.json" && grep -q '"active":"k2"' "$WORK/rot2.json" && grep -q '"removed":"k1"' "$WORK/rot3.json"; then
  pass "${T}_rotation_api"
else
  fail "${T}_rotation_api" "$(cat "$WORK"/rot*.json)"
fi
# The speaker's key file rewritten in place, then SIGHUP, while the stream
# runs: the reload is refused naming that file's setting, and the old key
# (the one ffmpeg sends with) goes on opening the speaker's packets. The
# checks below cover the stream after it: every packet sent taken in
# (rtp_in == sent), the WAVs' duration, listener 2's contiguous sequence
# numbers.
NEW_SPK_KEY=$(openssl rand -base64 30)
printf '%s\n' "$NEW_SPK_KEY" >"$WORK/speaker.key"   # same inode: the profile's text is unchanged
kill -HUP "$RELAY_PID"
if netlib_wait_for_line "$RELAY_LOG" 'reload:   session\[0\]\.speaker\[0\]\.srtp_key\[0\]\.key_file: ' 5 "$RELAY_PID" &&
   grep -q 'reload: refused, nothing changed (1 setting(s)' "$RELAY_LOG"; then
  pass "${T}_speaker_key_file_rewritten_reload_refused"
else
  fail "${T}_speaker_key_file_rewritten_reload_refused" "$(grep ' reload: ' "$RELAY_LOG" | tr '\n' '|')"
fi
spk_rc=0
wait "$SPK_PID" || spk_rc=$?
(( spk_rc == 0 )) || { sed 's/^/[ffmpeg] /' "$WORK/speaker.log" >&2; fail "${T}_speaker" "ffmpeg exited $spk_rc"; }
wait "$SPOOF_PID" || true
sleep 1
netlib_stop_pid "$TSHARK_SPK" INT 5
SENT=$(tshark -r "$WORK/spk.pcap" 2>/dev/null | wc -l)
sleep 1
for i in 0 1 2; do netlib_stop_pid "${LPIDS[i]}" INT 5; done
netlib_stop_pid "$TSHARK_PID" INT 5

# Secrets nowhere: API answers, /metrics, telemetry, the relay's log.
{
  for p in /api/v1/sessions /api/v1/sessions/1 /api/v1/stats /api/v1/drops /api/v1/events /api/v1/capacity \
           /api/v1/lcores /api/v1/ports /metrics /api/v1/recordings; do
    api GET "$p"; echo
  done
  if command -v dpdk-telemetry.py >/dev/null; then
    for c in /stentor/stats /stentor/drops /stentor/sessions; do
      echo "$c" | timeout 10 /usr/bin/python3 "$(command -v dpdk-telemetry.py)" -f "stentor-$NL_P" 2>&1 || true
    done
  fi
} >"$WORK/answers.txt"
netlib_stop_pid "$RELAY_PID" INT 10
cat "$RELAY_LOG" >>"$WORK/answers.txt"
leaks=0
for k in "$SPK_KEY" "$NEW_SPK_KEY" "$K1" "$K2"; do
  h=$(netlib_hex_of "$k")
  for needle in "$k" "${k:0:16}" "${h:0:24}" "$(tr 'a-f' 'A-F' <<<"${h:0:24}")"; do
    if grep -qF -- "$needle" "$WORK/answers.txt"; then leaks=$((leaks + 1)); fi
  done
done
if (( leaks == 0 )) && [[ $(wc -c <"$WORK/answers.txt") -gt 1000 ]]; then
  pass "${T}_no_key_in_answers_logs_metrics_telemetry"
else
  fail "${T}_no_key_in_answers_logs_metrics_telemetry" "$leaks key forms found ($(wc -c <"$WORK/answers.txt") bytes searched)"
fi

# Listeners 1 and 2: the tone, the whole duration; listener 3: nothing.
for i in 0 1; do
  n=$((i + 1)) dur="?" freq="?"
  [[ -s "${WAVS[i]}" ]] && read -r dur freq < <(netlib_wav_info "${WAVS[i]}")
  echo "# listener $n: duration $dur s, rough frequency $freq Hz"
  if [[ "$dur" != "?" ]] && awk -v d="$dur" -v e="$SECS" 'BEGIN { exit !(d >= 0.9 * e && d <= 1.1 * e) }'; then
    pass "${T}_listener_${n}_duration"
  else
    fail "${T}_listener_${n}_duration" "duration $dur s not within 10% of $SECS s"
  fi
  if [[ "$freq" != "?" ]] && awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
    pass "${T}_listener_${n}_freq"
  else
    fail "${T}_listener_${n}_freq" "rough frequency $freq Hz not 440 +- 5 Hz"
  fi
done
dur3=0
[[ -s "${WAVS[2]}" ]] && dur3=$(soxi -D "${WAVS[2]}" 2>/dev/null || echo 0)
if awk -v d="$dur3" 'BEGIN { exit !(d < 0.1) }'; then
  pass "${T}_wrong_key_decodes_nothing"
else
  fail "${T}_wrong_key_decodes_nothing" "listener 3 (wrong key) decoded $dur3 s"
fi

# Listener 2: every packet that reached it (the capture) came out of srtpdec
# decrypted, across the rotation: the same sequence numbers, in order. The
# packets the relay missed under load (frame deadline, counted below) are
# missing from both.
tshark -r "$WORK/l2.pcap" -d udp.port==5004,rtp -T fields -e rtp.seq 2>/dev/null >"$WORK/l2.captured"
# fakesink dump: "00000000 (0x...): 80 6f SS SS ..." per buffer (bytes 2..3: the sequence number).
awk '/^00000000 / { print $5 $6 }' "$WORK/listener2.log" | while read -r x; do echo $((16#$x)); done >"$WORK/l2.decrypted"
ncap=$(wc -l <"$WORK/l2.captured")
ndec=$(wc -l <"$WORK/l2.decrypted")
gaps=$(awk 'NR > 1 { d = ($1 - p + 65536) % 65536; if (d != 1) g += d - 1 } { p = $1 } END { print g + 0 }' "$WORK/l2.decrypted")
echo "# listener 2: $ncap packets captured, $ndec decrypted by srtpdec ($gaps sequence numbers missing in between); speaker sent $SENT"
if (( ncap > 0 )) && cmp -s "$WORK/l2.captured" "$WORK/l2.decrypted"; then
  pass "${T}_every_packet_decrypted_across_rotation"
else
  fail "${T}_every_packet_decrypted_across_rotation" "captured $ncap, decrypted $ndec"
fi

# The relay: every real packet authenticated and forwarded, no spoof through,
# the speaker never policed.
rtp_in=$(netlib_counter "$RELAY_LOG" rtp_in)
replicas=$(netlib_counter "$RELAY_LOG" replicas_out)
auth=$(netlib_counter "$RELAY_LOG" drop/ingress/srtp_auth)
policed=$(netlib_counter "$RELAY_LOG" drop/ingress/policed)
protected=$(netlib_counter "$RELAY_LOG" srtp_protected)
spoofed=$(awk '/spoof: sent/ { print $3 }' "$WORK/spoof.log")
echo "# relay: rtp_in=${rtp_in:-?} replicas_out=${replicas:-?} srtp_protected=${protected:-?} srtp_auth=${auth:-0} policed=${policed:-0}; speaker sent $SENT, spoofer ${spoofed:-?}"
# Every replica accounted for: sent, or missed by the frame deadline /
# unresolved next hop / full TX queue (a loaded test machine stalls the
# lcore), never for SRTP.
missed=0
for c in drop/egress/deadline drop/egress/neigh_unresolved drop/egress/tx_full drop/egress/no_mbuf; do
  v=$(netlib_counter "$RELAY_LOG" "$c" || true)
  missed=$((missed + ${v:-0}))
done
if [[ "$rtp_in" == "$SENT" && "$protected" == "$SENT" && "$replicas" =~ ^[0-9]+$ ]] && (( replicas + missed == 3 * SENT )); then
  pass "${T}_speaker_lost_nothing_each_packet_protected_once"
else
  fail "${T}_speaker_lost_nothing_each_packet_protected_once" "rtp_in=${rtp_in:-?} replicas_out=${replicas:-?} (+$missed missed) srtp_protected=${protected:-?}, sent $SENT"
fi
# The spoofs: each dropped under one reason (most after one MAC), none accepted.
refused=0
for c in drop/ingress/srtp_auth drop/ingress/srtp_replay drop/ingress/rtp_seq_jump drop/ingress/rtp_ts_jump drop/ingress/rtp_duplicate; do
  v=$(netlib_counter "$RELAY_LOG" "$c" || true)
  refused=$((refused + ${v:-0}))
done
echo "# spoofs: ${spoofed:-?} sent, $refused refused (srtp_auth ${auth:-0})"
if [[ -n "$spoofed" ]] && (( spoofed > 0 && refused == spoofed && ${auth:-0} > 0 )) && [[ "${policed:-0}" == 0 ]]; then
  pass "${T}_spoofer_gets_nothing_through"
else
  fail "${T}_spoofer_gets_nothing_through" "spoofer sent ${spoofed:-?} ($(head -c 200 "$WORK/spoof.log")), refused $refused, srtp_auth=${auth:-0} policed=${policed:-0}"
fi

# The recording: the plaintext, decodable, the tone.
rec=$(find "$WORK/rec" -name '*.opus' | head -n 1)
freq="?"
if [[ -n "$rec" ]] && ffmpeg -hide_banner -nostdin -loglevel error -i "$rec" -ac 1 "$WORK/rec.wav" 2>"$WORK/rec.err"; then
  read -r _ freq < <(netlib_wav_info "$WORK/rec.wav")
fi
if [[ "$freq" != "?" ]] && awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
  pass "${T}_recording_is_plaintext"
else
  fail "${T}_recording_is_plaintext" "recording ${rec:-none}: rough frequency $freq Hz"
fi

(( FAILS == 0 ))
