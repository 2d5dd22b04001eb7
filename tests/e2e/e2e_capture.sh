#!/usr/bin/env bash
# End-to-end packet capture (docs/capture.md): a real speaker (ffmpeg) streams
# through stentord (dev-veth profile, three listeners in their namespaces);
# `stentorctl capture` takes session 1's ingress and port lan0's TX while the
# stream runs, and tshark (Wireshark's reader, no code of ours) opens the files
# and decodes them as RTP:
#   1. session ingress, --count 40: 40 packets, all 198.18.0.10:5004 ->
#      198.18.0.1:40000, RTP payload type 111, SSRC 1234, sequence numbers
#      consecutive.
#   2. lan0 TX, --count 60: 60 RTP replicas from 198.18.0.1:40000 to the three
#      listeners' port 5004, 20 each, SSRC 1234, the same sequence numbers to
#      every listener.
#   3. bounds: --duration 1 ends with max_seconds, --bytes 2000 ends with
#      max_bytes and the file's packet blocks fit in 2000 bytes.
#   4. a bad request (unknown port) is refused with its reason, exit status 1,
#      and no file appears.
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
TOKEN=$(awk -F'"' '/^token = / { print $2; exit }' configs/dev-veth.toml)
T="e2e_capture"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
for b in "$STENTORD" "$STENTORCTL"; do
  if [[ ! -x "$b" ]]; then fail "${T}_setup" "$b not built"; exit 1; fi
done
for t in tshark ffmpeg; do
  command -v "$t" >/dev/null || { fail "${T}_setup" "$t not installed (scripts/deps.sh)"; exit 1; }
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

CAPDIR="$WORK/captures"
sed -e 's/^stats_interval_s = 5/stats_interval_s = 0/' configs/dev-veth.toml >"$WORK/relay.toml"
printf '\n[capture]\ndir = "%s"\nmax_packets = 1000\nmax_seconds = 20\n' "$CAPDIR" >>"$WORK/relay.toml"

RELAY_LOG="$WORK/stentord.log"
if ! netlib_start_relay "$BUILD_DIR" "$WORK/relay.toml" 50 "$RELAY_LOG" 15; then
  fail "${T}_relay_ready" "stentord not ready"; exit 1
fi
pass "${T}_relay_ready"

ctl=(ip netns exec "$NL_NS_RELAY" "$STENTORCTL" --api 127.0.0.1:8080 --token "$TOKEN")

# A 20 s tone: the captures below take a few seconds of it.
netlib_speaker_cmd 20
"${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"
sleep 1   # the listeners' next hops answer ARP; the stream is flowing

# tshark's view: one line per packet, tab-separated fields, RTP decoded on
# the session's port (either direction).
fields() {  # FILE FIELD...
  local f=$1; shift
  local args=()
  for x in "$@"; do args+=(-e "$x"); done
  tshark -r "$f" -d udp.port==40000,rtp -T fields -E separator=/t "${args[@]}" 2>"$WORK/tshark.err"
}

# ---- 1. session 1's ingress -------------------------------------------------
if "${ctl[@]}" capture --session 1 --count 40 -w "$WORK/session.pcapng" >"$WORK/cap1.log" 2>&1; then
  sed 's/^/# /' "$WORK/cap1.log"
  fields "$WORK/session.pcapng" ip.src udp.srcport ip.dst udp.dstport rtp.p_type rtp.ssrc rtp.seq >"$WORK/s.tsv" || true
  n=$(wc -l <"$WORK/s.tsv")
  bad=$(awk -F'\t' '!($1 == "198.18.0.10" && $2 == 5004 && $3 == "198.18.0.1" && $4 == 40000 && $5 == 111 && $6 == "0x000004d2")' "$WORK/s.tsv" | head -3)
  gaps=$(awk -F'\t' 'NR > 1 && $7 != (prev + 1) % 65536 { g++ } { prev = $7 } END { print g + 0 }' "$WORK/s.tsv")
  echo "# session ingress: $n packets read by tshark, sequence gaps $gaps"
  if (( n == 40 )) && [[ -z "$bad" ]] && (( gaps == 0 )); then
    pass "${T}_session_ingress_rtp"
  else
    sed 's/^/[tshark] /' "$WORK/tshark.err" >&2
    fail "${T}_session_ingress_rtp" "$n packets (want 40), gaps $gaps, unexpected: ${bad:-none}"
  fi
else
  cat "$WORK/cap1.log" >&2
  fail "${T}_session_ingress_rtp" "stentorctl capture --session 1 failed"
fi

# ---- 2. lan0's TX: the replicas ---------------------------------------------
if "${ctl[@]}" capture --tx lan0 --count 60 -w "$WORK/tx.pcapng" >"$WORK/cap2.log" 2>&1; then
  sed 's/^/# /' "$WORK/cap2.log"
  fields "$WORK/tx.pcapng" ip.src udp.srcport ip.dst udp.dstport rtp.p_type rtp.ssrc rtp.seq >"$WORK/t.tsv" || true
  n=$(wc -l <"$WORK/t.tsv")
  bad=$(awk -F'\t' '!($1 == "198.18.0.1" && $2 == 40000 && $3 ~ /^198\.18\.0\.2[123]$/ && $4 == 5004 && $5 == 111 && $6 == "0x000004d2")' "$WORK/t.tsv" | head -3)
  per=$(awk -F'\t' '{ c[$3]++ } END { for (k in c) printf "%s=%d ", k, c[k] }' "$WORK/t.tsv")
  # Every listener got the same sequence numbers (a replica per packet).
  seqsets=$(awk -F'\t' '{ s[$3] = s[$3] " " $7 } END { for (k in s) print s[k] }' "$WORK/t.tsv" | sort -u | wc -l)
  echo "# lan0 tx: $n packets read by tshark: $per; distinct per-listener sequence lists: $seqsets"
  if (( n == 60 )) && [[ -z "$bad" ]] && [[ "$per" == *"198.18.0.21=20 "* && "$per" == *"198.18.0.22=20 "* && "$per" == *"198.18.0.23=20 "* ]]; then
    pass "${T}_port_tx_rtp"
  else
    sed 's/^/[tshark] /' "$WORK/tshark.err" >&2
    fail "${T}_port_tx_rtp" "$n packets (want 60, 20 per listener: $per), unexpected: ${bad:-none}"
  fi
  # A replica leaves a packet's TX burst in listener order, so capturing
  # 60 from the middle of a burst may start on any listener; the sets of
  # sequence numbers still agree when every listener saw whole packets.
  if (( seqsets == 1 )); then
    pass "${T}_port_tx_same_packets_to_every_listener"
  else
    fail "${T}_port_tx_same_packets_to_every_listener" "$seqsets different sequence lists"
  fi
else
  cat "$WORK/cap2.log" >&2
  fail "${T}_port_tx_rtp" "stentorctl capture --tx lan0 failed"
fi

# ---- 3. bounds ---------------------------------------------------------------
# reason_of LOG: the stop reason stentorctl printed ("capture N done (REASON): ...").
reason_of() { sed -n 's/^capture [0-9]* done (\([a-z_]*\)).*/\1/p' "$1" | head -1; }
if "${ctl[@]}" capture --session 1 --duration 1 -w "$WORK/time.pcapng" >"$WORK/cap3.log" 2>&1 &&
   [[ "$(reason_of "$WORK/cap3.log")" == max_seconds ]] && tshark -r "$WORK/time.pcapng" >/dev/null 2>&1; then
  pass "${T}_bound_time"
else
  cat "$WORK/cap3.log" >&2
  fail "${T}_bound_time" "--duration 1 did not end with max_seconds and a readable file"
fi
if "${ctl[@]}" capture --rx lan0 --bytes 2000 -w "$WORK/bytes.pcapng" >"$WORK/cap4.log" 2>&1 &&
   [[ "$(reason_of "$WORK/cap4.log")" == max_bytes ]]; then
  # capinfos's data size counts the frames; the blocks around them make
  # the bound: read the relay's own count of block bytes.
  blocks=$("${ctl[@]}" capture list --json | awk -F': ' '/"bytes"/ { gsub(/,/, "", $2); v = $2 } END { print v }')
  n=$(tshark -r "$WORK/bytes.pcapng" 2>/dev/null | wc -l)
  echo "# --bytes 2000: $n packets, ${blocks:-?} bytes of packet blocks"
  if [[ "$blocks" =~ ^[0-9]+$ ]] && (( blocks <= 2000 && n > 0 )); then
    pass "${T}_bound_bytes"
  else
    fail "${T}_bound_bytes" "packet blocks ${blocks:-?} bytes for a 2000-byte bound, $n packets"
  fi
else
  cat "$WORK/cap4.log" >&2
  fail "${T}_bound_bytes" "--bytes 2000 did not end with max_bytes"
fi

# ---- 4. a bad request --------------------------------------------------------
before=$(ls "$CAPDIR" | wc -l)
rc=0
"${ctl[@]}" capture --rx wan7 --count 5 -w "$WORK/never.pcapng" >"$WORK/cap5.log" 2>&1 || rc=$?
if (( rc == 1 )) && grep -q 'HTTP 400 invalid: port: no port named "wan7" (ports: lan0)' "$WORK/cap5.log" &&
   [[ ! -e "$WORK/never.pcapng" && $(ls "$CAPDIR" | wc -l) -eq $before ]]; then
  pass "${T}_bad_request_refused"
else
  cat "$WORK/cap5.log" >&2
  fail "${T}_bad_request_refused" "exit $rc, or no reason, or a file appeared"
fi

netlib_stop_pid "$SPK_PID" INT 5
netlib_stop_pid "$RELAY_PID" INT 15
if grep -q '^=== stentord final counters ===' "$RELAY_LOG"; then
  echo "# relay: rtp_in=$(netlib_counter "$RELAY_LOG" rtp_in) replicas_out=$(netlib_counter "$RELAY_LOG" replicas_out) capture/written=$(netlib_counter "$RELAY_LOG" capture/written) capture/ring_full=$(netlib_counter "$RELAY_LOG" capture/ring_full)"
fi
exit $(( FAILS > 0 ))
