# shellcheck shell=bash
# The NL_* variables and arrays are used by the scripts that source this file.
# shellcheck disable=SC2034
# Stentor test-network library: sourced by scripts/demo.sh and tests/e2e/*.sh.
#
# Topology (all names start with a per-run prefix P, default "st$$", so that
# parallel runs never collide; every name stays <= 15 characters):
#
#   ${P}relay  stv-relay (no kernel IP: the DPDK relay owns 198.18.0.1 on it)
#        |
#   ${P}br     br0 (Linux bridge) with ports p-relay, p-spk, p-l1, p-l2, p-l3
#        |
#   ${P}spk    veth0 198.18.0.10/24   (speaker)
#   ${P}spk2   veth0 198.18.0.11/24   (second speaker; only with NL_WITH_SPK2=1)
#   ${P}l1     veth0 198.18.0.21/24   (listener 1)
#   ${P}l2     veth0 198.18.0.22/24   (listener 2)
#   ${P}l3     veth0 198.18.0.23/24   (listener 3)
#
# Both ends of every veth pair are created directly inside their namespaces,
# so nothing ever appears in the root namespace. IPv6 is off everywhere.
#
# Usage:
#   source scripts/netlib.sh
#   netlib_init            # or: netlib_init myprefix
#   netlib_trap            # tear down + stop our own PIDs on EXIT/INT/TERM
#   netlib_up
#   ip netns exec "$NL_NS_L1" some-command & netlib_track $!
#   ...

NL_RELAY_IP=198.18.0.1
NL_SPK_IP=198.18.0.10
NL_SPK2_IP=198.18.0.11
NL_WITH_SPK2=${NL_WITH_SPK2:-0}   # 1: netlib_up also creates ${P}spk2 (mix-mode tests)
NL_LISTENER_IPS=(198.18.0.21 198.18.0.22 198.18.0.23)
NL_RELAY_IF=stv-relay

NL_PIDS=()
NL_CLEANED=0
NL_CLEANUP_HOOK=""

nl_log() { echo "netlib: $*" >&2; }

# netlib_init [PREFIX]: choose the prefix and derive the namespace names.
netlib_init() {
  NL_P=${1:-st$$}
  if (( ${#NL_P} > 10 )); then
    nl_log "prefix '$NL_P' too long (max 10 characters)"
    return 1
  fi
  NL_NS_BR="${NL_P}br"
  NL_NS_RELAY="${NL_P}relay"
  NL_NS_SPK="${NL_P}spk"
  NL_NS_SPK2="${NL_P}spk2"
  NL_NS_L1="${NL_P}l1"
  NL_NS_L2="${NL_P}l2"
  NL_NS_L3="${NL_P}l3"
  NL_NS_LISTENERS=("$NL_NS_L1" "$NL_NS_L2" "$NL_NS_L3")
  NL_ALL_NS=("$NL_NS_RELAY" "$NL_NS_SPK" "$NL_NS_SPK2" "${NL_NS_LISTENERS[@]}" "$NL_NS_BR")
}

nl_ns_exec() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

nl_ns_add() {
  local ns=$1
  ip netns add "$ns"
  nl_ns_exec "$ns" ip link set lo up
  # New interfaces inherit "default", so set it before any veth is created.
  nl_ns_exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

nl_offload_off() {  # ns ifname flags...
  local ns=$1 ifname=$2; shift 2
  if command -v ethtool >/dev/null 2>&1; then
    nl_ns_exec "$ns" ethtool -K "$ifname" "$@" >/dev/null 2>&1 || \
      nl_log "warning: ethtool -K $ifname $* failed in $ns"
  fi
}

# nl_add_host NS IP BRIDGE_PORT: host namespace with veth0 bridged into ${P}br.
nl_add_host() {
  local ns=$1 addr=$2 brport=$3
  nl_ns_add "$ns"
  ip link add veth0 netns "$ns" type veth peer name "$brport" netns "$NL_NS_BR"
  nl_ns_exec "$NL_NS_BR" ip link set "$brport" master br0 up
  nl_ns_exec "$ns" ip addr add "$addr/24" dev veth0
  nl_ns_exec "$ns" ip link set veth0 up
  # Complete UDP checksums on the wire (the relay validates them).
  nl_offload_off "$ns" veth0 tx off
}

# netlib_up: create the whole topology. Fails (non-zero) on any error.
netlib_up() {
  [[ -n "${NL_P:-}" ]] || netlib_init ""
  if ip netns list | grep -qw -- "$NL_NS_BR"; then
    nl_log "namespaces with prefix $NL_P already exist; tearing them down first"
    netlib_down
  fi

  nl_ns_add "$NL_NS_BR"
  nl_ns_exec "$NL_NS_BR" ip link add br0 type bridge stp_state 0 forward_delay 0 \
    mcast_snooping 0
  nl_ns_exec "$NL_NS_BR" ip link set br0 up

  # Relay side: no IP in the kernel; DPDK (net_af_packet) owns 198.18.0.1.
  nl_ns_add "$NL_NS_RELAY"
  ip link add "$NL_RELAY_IF" netns "$NL_NS_RELAY" type veth peer name p-relay netns "$NL_NS_BR"
  nl_ns_exec "$NL_NS_BR" ip link set p-relay master br0 up
  nl_ns_exec "$NL_NS_RELAY" sysctl -q -w "net.ipv6.conf.$NL_RELAY_IF.disable_ipv6=1" >/dev/null
  nl_ns_exec "$NL_NS_RELAY" ip link set "$NL_RELAY_IF" promisc on up
  # af_packet on a veth: without this the kernel may hand over packets with
  # partial (not yet computed) checksums.
  nl_offload_off "$NL_NS_RELAY" "$NL_RELAY_IF" tx off rx off
  nl_offload_off "$NL_NS_BR" p-relay tx off

  nl_add_host "$NL_NS_SPK" "$NL_SPK_IP" p-spk
  if [[ "$NL_WITH_SPK2" == 1 ]]; then
    nl_add_host "$NL_NS_SPK2" "$NL_SPK2_IP" p-spk2
  fi
  local i
  for i in 0 1 2; do
    nl_add_host "${NL_NS_LISTENERS[$i]}" "${NL_LISTENER_IPS[$i]}" "p-l$((i + 1))"
  done
}

# netlib_down: delete everything with our prefix. Idempotent.
netlib_down() {
  [[ -n "${NL_P:-}" ]] || return 0
  local ns
  for ns in "${NL_ALL_NS[@]}"; do
    if [[ -e "/run/netns/$ns" ]]; then
      ip netns del "$ns" 2>/dev/null || nl_log "warning: could not delete netns $ns"
    fi
  done
  # DPDK runtime directory of the relay started with --file-prefix stentor-$P.
  rm -rf "/var/run/dpdk/stentor-$NL_P" 2>/dev/null || true
}

# netlib_track PID...: remember PIDs we started so cleanup stops only them.
netlib_track() { NL_PIDS+=("$@"); }

# netlib_stop_pid PID [SIGNAL] [TIMEOUT_S]: signal one PID, wait for it,
# escalate to SIGTERM and then SIGKILL. Only for PIDs this script started.
netlib_stop_pid() {
  local pid=$1 sig=${2:-TERM} timeout_s=${3:-5} i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout_s * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && [[ "$sig" != TERM ]]; then
    kill -s TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if kill -0 "$pid" 2>/dev/null; then
    kill -s KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# netlib_cleanup: stop tracked PIDs, run the caller's hook, tear down.
netlib_cleanup() {
  (( NL_CLEANED == 0 )) || return 0
  NL_CLEANED=1
  local pid
  for pid in "${NL_PIDS[@]}"; do
    netlib_stop_pid "$pid" TERM 3
  done
  if [[ -n "$NL_CLEANUP_HOOK" ]]; then
    "$NL_CLEANUP_HOOK" || true
  fi
  netlib_down
}

# netlib_trap [HOOK]: install EXIT/INT/TERM traps; HOOK (a function name) runs
# after our processes are stopped and before the namespaces are removed.
netlib_trap() {
  NL_CLEANUP_HOOK=${1:-}
  trap 'netlib_cleanup' EXIT
  trap 'echo "interrupted" >&2; netlib_cleanup; exit 130' INT
  trap 'netlib_cleanup; exit 143' TERM
}

# netlib_udp_in NS: the namespace's Udp InDatagrams counter.
netlib_udp_in() {
  nl_ns_exec "$1" cat /proc/net/snmp | awk '
    $1 == "Udp:" && !hdr { for (i = 2; i <= NF; i++) col[$i] = i; hdr = 1; next }
    $1 == "Udp:" && hdr  { print $col["InDatagrams"]; exit }'
}

# netlib_wait_for_line FILE PATTERN TIMEOUT_S [PID]: wait until FILE has a line
# matching PATTERN (grep -E); fail early if PID dies. Returns 0 when found.
netlib_wait_for_line() {
  local file=$1 pattern=$2 timeout_s=$3 pid=${4:-} i
  for ((i = 0; i < timeout_s * 10; i++)); do
    if grep -qE -- "$pattern" "$file" 2>/dev/null; then
      return 0
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
      return 2
    fi
    sleep 0.1
  done
  return 1
}

# netlib_relay_cmd BUILD_DIR CONFIG DURATION: the command line that runs the
# relay inside ${P}relay (line-buffered so "stentord: ready" is seen at once).
netlib_relay_cmd() {
  local build=$1 config=$2 duration=$3
  NL_RELAY_CMD=(ip netns exec "$NL_NS_RELAY" stdbuf -oL -eL "$build/control/stentord"
    -c "$config" --file-prefix "stentor-$NL_P" --duration "$duration")
}

# netlib_start_relay BUILD_DIR CONFIG DURATION LOG TIMEOUT_S: start the relay
# (netlib_relay_cmd) with its output in LOG, track it, set RELAY_PID and wait
# for "stentord: ready". Returns 0 when ready; otherwise shows the end of LOG
# on stderr and returns 1 (timeout) or 2 (stentord exited first).
netlib_start_relay() {
  local build=$1 config=$2 duration=$3 log=$4 timeout_s=$5 rc=0
  netlib_relay_cmd "$build" "$config" "$duration"
  "${NL_RELAY_CMD[@]}" >"$log" 2>&1 &
  RELAY_PID=$!
  netlib_track "$RELAY_PID"
  netlib_wait_for_line "$log" '(^|[> ])stentord: ready' "$timeout_s" "$RELAY_PID" || rc=$?
  if (( rc != 0 )); then
    echo "--- stentord output ---" >&2; tail -n 30 "$log" >&2 || true
  fi
  return "$rc"
}

# netlib_counter FILE NAME: value of a counter line "<name> <value>" from the
# relay's final counters block (empty if absent).
netlib_counter() {
  awk -v n="$2" '
    /^=== stentord final counters ===/ { inblk = 1; next }
    /^=== end ===/ { inblk = 0 }
    inblk && $1 == n { v = $2 }
    END { if (v != "") print v }' "$1"
}

# Listener: GStreamer, RTP/Opus on UDP 5004 -> WAV. SIGINT finalises the WAV.
# `timeout --foreground` forwards a signal to gst-launch exactly once; without
# it timeout signals the child and then its whole process group, and a second
# SIGINT makes gst-launch abort before wavenc has written the WAV header.
# netlib_listener_cmd NS OUT_WAV MAX_SECONDS -> NL_LISTENER_CMD array.
netlib_listener_cmd() {
  local ns=$1 out=$2 max_s=$3
  NL_LISTENER_CMD=(ip netns exec "$ns" timeout --foreground -s INT -k 5 "$max_s" gst-launch-1.0 -q -e
    udpsrc port=5004
    caps="application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111"
    '!' rtpjitterbuffer latency=50 '!' rtpopusdepay '!' opusdec '!' audioconvert
    '!' wavenc '!' filesink "location=$out")
}

# Speaker: ffmpeg 440 Hz Opus/RTP from 198.18.0.10:5004, SSRC 1234, to the relay.
# netlib_speaker_cmd SECONDS -> NL_SPEAKER_CMD array.
netlib_speaker_cmd() {
  local secs=$1
  NL_SPEAKER_CMD=(ip netns exec "$NL_NS_SPK" ffmpeg -hide_banner -nostdin -loglevel warning -re
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$secs"
    -ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio
    -f rtp -payload_type 111 -ssrc 1234
    "rtp://$NL_RELAY_IP:40000?pkt_size=1200&localrtpport=5004")
}

# netlib_api TOKEN METHOD PATH [JSON_BODY] -> the relay's API answer (from
# the relay's namespace, its API on 127.0.0.1:8080).
netlib_api() {
  local args=(-sS -m 5 -X "$2" -H "Authorization: Bearer $1" "http://127.0.0.1:8080$3")
  [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
  ip netns exec "$NL_NS_RELAY" curl "${args[@]}"
}

# netlib_hex_of BASE64 -> the bytes as lower-case hex (SRTP keys for
# GStreamer's caps from the SDES / ffmpeg form).
netlib_hex_of() { base64 -d <<<"$1" | od -An -tx1 | tr -d ' \n'; }

# netlib_wav_info WAV -> prints "DURATION FREQ" (either may be "?").
netlib_wav_info() {
  local wav=$1 dur freq trim_len
  dur=$(soxi -D "$wav" 2>/dev/null || true)
  [[ -n "$dur" ]] || dur="?"
  freq="?"
  if [[ "$dur" != "?" ]]; then
    # Skip the first second (jitter buffer start-up); analyse up to 3 s.
    trim_len=$(awk -v d="$dur" 'BEGIN { t = d - 1.5; if (t > 3) t = 3; if (t < 0.5) t = 0; printf "%.2f", t }')
    if [[ "$trim_len" != "0.00" ]]; then
      freq=$(sox "$wav" -n remix 1 trim 1 "$trim_len" stat 2>&1 | awk '/Rough[ \t]+frequency/ { print $3 }')
      [[ -n "$freq" ]] || freq="?"
    fi
  fi
  echo "$dur $freq"
}

# --- One relay on a net_tap port ---------------------------------------------
# For a PMD other than af_packet (tests/e2e/e2e_idle_intr.sh: Rx interrupts;
# e2e_ipv6_nd.sh: the kernel's own IPv6 neighbour discovery). stentord runs
# in the root namespace on configs/dev-veth.toml with its port on net_tap;
# once it is ready the tap's kernel side moves into a throw-away namespace
# ${P}ns that plays every peer. No bridge, no veth; IPv6 is left on. Uses
# the caller's REPO, BUILD_DIR, T and fail (a broken setup: FAIL ${T}_setup).
#   netlib_tap_init PREFIX WORKTAG     root and stentord checked; NL_TAP_NS,
#                                      NL_TAP, WORK; EXIT/INT/TERM cleanup
#   netlib_tap_profile OUT [SED_ARGS...]
#   netlib_tap_start_relay CONFIG LOG  sets RELAY_PID; 0 once ready
#   netlib_tap_ns_up "ADDR/LEN [FLAGS...]"...
#   netlib_tap_stop_relay              SIGINT; its final counters in its LOG

# netlib_tap_init PREFIX WORKTAG: fails ${T}_setup and exits unless root
# and stentord built; then the names (PREFIX: up to 10 characters), WORK
# (/tmp/stentor-WORKTAG.XXXXXX) and the cleanup (our PIDs, the namespace, the
# tap if it is still in the root namespace, WORK, the relay's DPDK runtime
# directory).
netlib_tap_init() {
  [[ $(id -u) -eq 0 ]] || { fail "${T}_setup" "needs root (network namespaces, tap)"; exit 1; }
  [[ -x "$BUILD_DIR/control/stentord" ]] || { fail "${T}_setup" "$BUILD_DIR/control/stentord not built"; exit 1; }
  netlib_init "${1:0:10}" || exit 1
  NL_TAP_NS="${NL_P}ns"
  NL_TAP="${NL_P}tap"
  WORK=$(mktemp -d "/tmp/stentor-$2.XXXXXX")
  NL_ALL_NS=("$NL_TAP_NS")   # netlib_down removes exactly this one
  netlib_trap nl_tap_hook
}
nl_tap_hook() {
  ip link del "$NL_TAP" 2>/dev/null || true
  rm -rf "$WORK"
}

# netlib_tap_profile OUT [SED_ARGS...]: configs/dev-veth.toml on net_tap
# (iface ${P}tap), its API on a free loopback port; SED_ARGS edit it further.
netlib_tap_profile() {
  local out=$1 api; shift
  api=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  sed -e "s|^vdevs = .*|vdevs = [\"net_tap0,iface=$NL_TAP\"]|" -e 's|^device = "net_af_packet0"|device = "net_tap0"|' \
      -e "s|^listen = .*|listen = \"127.0.0.1:$api\"|" "$@" "$REPO/configs/dev-veth.toml" >"$out"
}

# netlib_tap_start_relay CONFIG LOG: stentord in the root namespace (it
# creates the tap), tracked; waits 15 s for "stentord: ready". Returns 0
# when ready; otherwise shows the end of LOG on stderr.
netlib_tap_start_relay() {
  local config=$1 log=$2 rc=0
  "$BUILD_DIR/control/stentord" -c "$config" --file-prefix "stentor-$NL_P" >"$log" 2>&1 &
  RELAY_PID=$!
  netlib_track "$RELAY_PID"
  netlib_wait_for_line "$log" 'stentord: ready' 15 "$RELAY_PID" || rc=$?
  (( rc == 0 )) || tail -20 "$log" >&2
  return "$rc"
}

# netlib_tap_ns_up "ADDR/LEN [FLAGS...]"...: the tap's kernel side into
# ${P}ns with these addresses (e.g. "2001:db8::a/64 nodad"), up.
netlib_tap_ns_up() {
  local a args
  ip netns add "$NL_TAP_NS"
  ip link set "$NL_TAP" netns "$NL_TAP_NS"
  ip -n "$NL_TAP_NS" link set lo up
  for a in "$@"; do
    read -ra args <<<"$a"
    ip -n "$NL_TAP_NS" addr add "${args[0]}" dev "$NL_TAP" "${args[@]:1}"
  done
  ip -n "$NL_TAP_NS" link set "$NL_TAP" up
}

# netlib_tap_stop_relay: SIGINT, wait for it to write its final counters
# block (netlib_counter LOG NAME reads it).
netlib_tap_stop_relay() {
  kill -INT "$RELAY_PID"
  wait "$RELAY_PID" 2>/dev/null || true
}
