# shellcheck shell=bash
# The FL_* variables are used by the scripts that source this file.
# shellcheck disable=SC2034
# A fleet of real relays in network namespaces, for the fleet's end-to-end
# tests and the failover benchmark (tests/e2e/e2e_failover.sh,
# bench/failover_bench.sh). Sourced after scripts/netlib.sh (its namespace,
# PID and cleanup helpers).
#
#   ${P}br    br0: the data LAN 198.18.0.0/24     br1: the control LAN 198.19.0.0/24
#   ${P}ctl   d0 198.18.0.5 (br0: listeners ask the directors here)
#             c0 198.19.0.5 (br1: etcd for the relays; the directors use it too)
#   ${P}o1    origin-1: stv-relay on br0, DPDK owns 198.18.0.1; c0 198.19.0.11 (etcd, kernel)
#   ${P}o2    origin-2 (two origins): DPDK 198.18.0.9; c0 198.19.0.20
#   ${P}e<i>  edge-<i>:  stv-relay on br0, DPDK owns 198.18.0.(1+i); c0 198.19.0.(11+i)
#   ${P}spk   veth0 198.18.0.10 (ffmpeg, the speaker: from :5004, SSRC 1234, to
#             origin-1; with two origins through a tee that sends every packet
#             to both, same SSRC and sequence numbers, as a dual-homed speaker)
#   ${P}l1-3  veth0 198.18.0.21-23 (stentor-listener --director clients, many per namespace)
#
# The relays' control traffic (etcd) goes over the control LAN so that the
# data LAN carries only what a relay's DPDK port must see. Every relay
# runs with its own API on its namespace's loopback, its own DPDK file
# prefix, idle workers sleeping (several relays share 2 cores).
#
# Trunks origin -> edge: FL_TRUNKS=real (the default) leaves them to the
# fleet: the director records a trunk when it first places a listener on an
# edge, the edge takes the session and the origin sends it there
# (fleet/trunks.h). FL_TRUNKS=static gives the origin each edge as a static
# listener and each edge the origin as the session's speaker flow instead:
# the same packets, set up by the profiles (how these tests ran before the
# data plane had trunks).

FL_DATA_NET=198.18.0
FL_CTL_NET=198.19.0
FL_CTL_IP=198.19.0.5          # etcd
FL_DIR_IP=198.18.0.5          # directors
FL_ORIGIN_IP=198.18.0.1
FL_SPK_IP=198.18.0.10
FL_LISTENER_IPS=(198.18.0.21 198.18.0.22 198.18.0.23)
FL_SESSION_PORT=40000
FL_ETCD_URL="http://$FL_CTL_IP:2379"
FL_API_TOKEN=fleet-e2e-api-token-000
FL_DIRECTOR_TOKEN=fleet-e2e-director-token
FL_TRUNKS=${FL_TRUNKS:-real}

# fleetnet_init PREFIX NB_EDGES WORKDIR [NB_ORIGINS]: names; call after
# netlib_init PREFIX. Relay indices: 0 origin-1, 1..NB_EDGES the edges, 9
# origin-2 (FL_RELAYS lists those in use).
fleetnet_init() {
  FL_P=$1 FL_NB_EDGES=$2 FL_WORK=$3 FL_NB_ORIGINS=${4:-1}
  FL_NS_BR="${FL_P}br"
  FL_NS_CTL="${FL_P}ctl"
  FL_NS_SPK="${FL_P}spk"
  FL_NS_L=("${FL_P}l1" "${FL_P}l2" "${FL_P}l3")
  FL_NS_RELAY=()
  FL_NS_RELAY[0]="${FL_P}o1"
  local i
  FL_RELAYS=(0)
  for ((i = 1; i <= FL_NB_EDGES; i++)); do FL_NS_RELAY[i]="${FL_P}e$i"; FL_RELAYS+=("$i"); done
  if (( FL_NB_ORIGINS == 2 )); then FL_NS_RELAY[9]="${FL_P}o2"; FL_RELAYS+=(9); fi
  # netlib_down removes exactly these.
  NL_ALL_NS=("${FL_NS_RELAY[@]}" "$FL_NS_CTL" "$FL_NS_SPK" "${FL_NS_L[@]}" "$FL_NS_BR")
  FL_KEY="$FL_WORK/join-1.key"
  FL_TRUNK_KEY="$FL_WORK/trunk.key"
}

fl_relay_name() { if (( $1 == 0 )); then echo origin-1; elif (( $1 == 9 )); then echo origin-2; else echo "edge-$1"; fi; }
fl_relay_ip() { if (( $1 == 9 )); then echo "$FL_DATA_NET.9"; else echo "$FL_DATA_NET.$((1 + $1))"; fi; }
fl_relay_ctl_ip() { echo "$FL_CTL_NET.$((11 + $1))"; }

# fl_port NS IF BRIDGE PEER [IP]: a veth from NS into the bridge namespace's BRIDGE.
fl_port() {
  local ns=$1 ifname=$2 bridge=$3 peer=$4 addr=${5:-}
  ip link add "$ifname" netns "$ns" type veth peer name "$peer" netns "$FL_NS_BR"
  nl_ns_exec "$FL_NS_BR" ip link set "$peer" master "$bridge" up
  if [[ -n "$addr" ]]; then
    nl_ns_exec "$ns" ip addr add "$addr/24" dev "$ifname"
    nl_offload_off "$ns" "$ifname" tx off
  fi
  nl_ns_exec "$ns" ip link set "$ifname" up
}

# fleetnet_up: the namespaces and links above. Fails on any error.
fleetnet_up() {
  local i ns
  nl_ns_add "$FL_NS_BR"
  for b in br0 br1; do
    nl_ns_exec "$FL_NS_BR" ip link add "$b" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    nl_ns_exec "$FL_NS_BR" ip link set "$b" up
  done
  nl_ns_add "$FL_NS_CTL"
  fl_port "$FL_NS_CTL" d0 br0 p-ctl "$FL_DIR_IP"
  fl_port "$FL_NS_CTL" c0 br1 q-ctl "$FL_CTL_IP"
  for i in "${FL_RELAYS[@]}"; do
    ns=${FL_NS_RELAY[i]}
    nl_ns_add "$ns"
    ip link add stv-relay netns "$ns" type veth peer name "p-r$i" netns "$FL_NS_BR"
    nl_ns_exec "$FL_NS_BR" ip link set "p-r$i" master br0 up
    nl_ns_exec "$ns" ip link set stv-relay promisc on up
    nl_offload_off "$ns" stv-relay tx off rx off
    nl_offload_off "$FL_NS_BR" "p-r$i" tx off
    fl_port "$ns" c0 br1 "q-r$i" "$(fl_relay_ctl_ip "$i")"
  done
  nl_ns_add "$FL_NS_SPK"
  fl_port "$FL_NS_SPK" veth0 br0 p-spk "$FL_SPK_IP"
  for i in 0 1 2; do
    nl_ns_add "${FL_NS_L[i]}"
    fl_port "${FL_NS_L[i]}" veth0 br0 "p-l$i" "${FL_LISTENER_IPS[i]}"
  done
  (umask 077; openssl rand -hex 32 >"$FL_KEY")
  # The fleet's trunk key, the same file for every relay (docs/fleet.md "Trunk authentication").
  (umask 077; openssl rand -hex 32 >"$FL_TRUNK_KEY")
}

# fleetnet_cleanup_dpdk: the relays' DPDK runtime directories.
fleetnet_cleanup_dpdk() { rm -rf /var/run/dpdk/stentor-"${FL_P}"* 2>/dev/null || true; }

fl_ectl() {
  ETCDCTL_API=3 nl_ns_exec "$FL_NS_CTL" timeout 5 etcdctl --endpoints=http://127.0.0.1:2379 --dial-timeout=1s \
    --command-timeout=2s "$@"
}

# fleetnet_start_etcd: one member in ${P}ctl, tuned for 1 s leases (etcd
# grants nothing below 1.5 x its election timeout: docs/fleet.md). Its data
# stays in $FL_WORK/etcd across restarts; sets FL_ETCD_PID.
fleetnet_start_etcd() {
  ip netns exec "$FL_NS_CTL" etcd --name default --data-dir "$FL_WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:2379,$FL_ETCD_URL" --advertise-client-urls "$FL_ETCD_URL" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --heartbeat-interval 50 --election-timeout 500 \
    --log-level warn >>"$FL_WORK/etcd.log" 2>&1 &
  FL_ETCD_PID=$!
  netlib_track "$FL_ETCD_PID"
  local i
  for ((i = 0; i < 100; i++)); do
    fl_ectl endpoint health >/dev/null 2>&1 && return 0
    kill -0 "$FL_ETCD_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# fleetnet_relay_profile I OUT [LEASE_TTL_S] [DRAIN_S]: relay I's profile (0: the origin).
fleetnet_relay_profile() {
  local i=$1 out=$2 ttl=${3:-1} drain=${4:-10} name role
  name=$(fl_relay_name "$i")
  role=edge; (( i == 0 || i == 9 )) && role=origin
  cat >"$out" <<EOF
# $name for the namespace fleet (scripts/fleetnet.sh).
[eal]
lcores = [0, 1]
main_lcore = 0
memory_mb = 256
hugepages = false
file_prefix = "stentor-${FL_P}r$i"
pci_allow = []
vdevs = ["net_af_packet0,iface=stv-relay"]
mbufs = 8191
mbuf_cache = 256
log_level = "notice"

[dataplane]
rx_lcores = [1]
fanout_lcores = [1]
burst = 32
stats_interval_s = 0
idle = "adaptive"

[[port]]
name = "lan0"
device = "net_af_packet0"
rx_queues = 1
tx_queues = 1
ipv4 = "$(fl_relay_ip "$i")/24"
mac = "02:53:54:00:01:$(printf '%02x' "$i")"
line_rate_mbps = 1000

[ingress]
udp_port_min = 40000
udp_port_max = 40999
require_ssrc = true

[limits]
max_sessions = 16
max_speakers = 16
max_listeners = 20000
max_listeners_per_session = 20000
join_rate_per_s = 100000
headroom_pct = 10

[api]
listen = "127.0.0.1:8080"
token = "$FL_API_TOKEN"
plain_http = true

[join]
keys = [{ id = 1, secret_file = "$FL_KEY" }]
consent_timeout_s = 5
rebind_after_s = 2

[fleet]
etcd = ["$FL_ETCD_URL"]
# A lab's own namespaces: etcd in plain HTTP said explicitly (docs/fleet.md "Running etcd securely").
allow_plaintext = true
relay_id = "$name"
role = "$role"
region = "dev"
lease_ttl_s = $ttl
refresh_ms = 250
drain_s = $drain
trunk_peers = ["$FL_DATA_NET.0/24"]
trunk_key_file = "$FL_TRUNK_KEY"
EOF
  if (( i == 0 || i == 9 )); then
    cat >>"$out" <<EOF

[[session]]
id = 1
name = "fleet"
mode = "forward"
udp_port = $FL_SESSION_PORT
  [[session.speaker]]
  ip = "$FL_SPK_IP"
  port = 5004
  ssrc = 1234
EOF
    if [[ "$FL_TRUNKS" == static ]]; then
      local e
      for ((e = 1; e <= FL_NB_EDGES; e++)); do
        printf '  [[session.listener]]\n  ip = "%s"\n  port = %s\n  tier = 0\n' "$(fl_relay_ip "$e")" "$FL_SESSION_PORT" >>"$out"
      done
    fi
  elif [[ "$FL_TRUNKS" == static ]]; then
    cat >>"$out" <<EOF

[[session]]
id = 1
name = "fleet"
mode = "forward"
udp_port = $FL_SESSION_PORT
  [[session.speaker]]
  ip = "$FL_ORIGIN_IP"
  port = $FL_SESSION_PORT
  ssrc = 1234
EOF
  fi
}

# fleetnet_launch_relay I LOG: start relay I in its namespace; sets FL_PID[I].
fleetnet_launch_relay() {
  local i=$1 log=$2
  ip netns exec "${FL_NS_RELAY[i]}" stdbuf -oL -eL "$FL_BUILD/control/stentord" -c "$FL_WORK/relay-$i.toml" \
    --file-prefix "stentor-${FL_P}r$i" >"$log" 2>&1 &
  FL_PID[i]=$!
  netlib_track "${FL_PID[i]}"
}
# fleetnet_wait_relay I LOG: 0 once it is ready, else shows the end of LOG.
fleetnet_wait_relay() {
  local i=$1 log=$2 rc=0
  netlib_wait_for_line "$log" 'stentord: ready' 30 "${FL_PID[i]}" || rc=$?
  if (( rc != 0 )); then echo "--- $(fl_relay_name "$i") ---" >&2; tail -n 20 "$log" >&2; fi
  return "$rc"
}
# fleetnet_start_relay I LOG: both.
fleetnet_start_relay() { fleetnet_launch_relay "$1" "$2"; fleetnet_wait_relay "$1" "$2"; }

# fl_director_tls: a self-signed certificate for $FL_DIR_IP (made once per
# lab): a director off loopback serves HTTPS only (docs/fleet.md); curl and
# stentor-listener verify it with $FL_DIR_CA.
fl_director_tls() {
  FL_DIR_CA="$FL_WORK/director.crt"
  [[ -s "$FL_DIR_CA" && -s "$FL_WORK/director.key" ]] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$FL_DIR_IP" \
    -addext "subjectAltName=IP:$FL_DIR_IP" -keyout "$FL_WORK/director.key" -out "$FL_DIR_CA" >/dev/null 2>&1 || return 1
  chmod 600 "$FL_WORK/director.key"
}

# fleetnet_start_director N: director-N on $FL_DIR_IP:(8089+N), HTTPS; sets FL_DIR_PID[N].
fleetnet_start_director() {
  local n=$1
  fl_director_tls || return 1
  cat >"$FL_WORK/director-$n.toml" <<EOF
[fleet]
etcd = ["http://127.0.0.1:2379"]
[join]
keys = [{ id = 1, secret_file = "$FL_KEY" }]
token_ttl_s = 600
[director]
listen = "$FL_DIR_IP:$((8089 + n))"
director_id = "director-$n"
token = "$FL_DIRECTOR_TOKEN"
tls_cert = "$FL_DIR_CA"
tls_key = "$FL_WORK/director.key"
stale_s = 30
hold_ms = 1000
threads = 2
EOF
  ip netns exec "$FL_NS_CTL" "$FL_BUILD/control/stentor-director" serve -c "$FL_WORK/director-$n.toml" \
    >"$FL_WORK/director-$n.log" 2>&1 &
  FL_DIR_PID[n]=$!
  netlib_track "${FL_DIR_PID[n]}"
  netlib_wait_for_line "$FL_WORK/director-$n.log" '^director: ready' 15 "${FL_DIR_PID[n]}"
}
fl_director_url() { echo "https://$FL_DIR_IP:$((8089 + $1))"; }

# fleetnet_start_listener K SECONDS [ARGS...]: listener K (0-based) in
# ${P}l(K%3+1) placed by the directors (half of them ask director 2 first);
# output in $FL_WORK/lst-K.{out,err,json}; sets FL_LPID[K].
fleetnet_start_listener() {
  local k=$1 secs=$2; shift 2
  local ns=${FL_NS_L[k % 3]} ip=${FL_LISTENER_IPS[k % 3]} first=1 second=2
  (( k % 2 == 1 )) && { first=2; second=1; }
  ip netns exec "$ns" env STENTOR_DIRECTOR_TOKEN="$FL_DIRECTOR_TOKEN" STENTOR_DIRECTOR_CA="$FL_DIR_CA" "$FL_BUILD/tools/stentor-listener" \
    --listen "$ip:0" --director "$(fl_director_url $first)" --director "$(fl_director_url $second)" \
    --session 1 --consent-interval 1 --failover-after 1 --seconds "$secs" --json "$FL_WORK/lst-$k.json" -q "$@" \
    >"$FL_WORK/lst-$k.out" 2>"$FL_WORK/lst-$k.err" &
  FL_LPID[k]=$!
  netlib_track "${FL_LPID[k]}"
}

# fl_listener_edge K: the edge listener K was last placed on ("" if none).
fl_listener_edge() {
  sed -n 's/.*placed on edge \([^ ]*\) .*/\1/p' "$FL_WORK/lst-$1.err" 2>/dev/null | tail -n1
}

# fl_api I METHOD PATH: relay I's API (in its namespace); the body on stdout.
fl_api() {
  nl_ns_exec "${FL_NS_RELAY[$1]}" curl -s -m 5 -X "$2" -H "Authorization: Bearer $FL_API_TOKEN" "http://127.0.0.1:8080/api/v1$3"
}

# fleetnet_warm_trunks EDGE_INDEX...: with real trunks, make each edge carry
# the session before listeners are placed there: a placement of one
# listener on that edge alone (the director records the trunk), then wait
# until the edge's record lists session 1. The placement's token is unused.
fleetnet_warm_trunks() {
  [[ "$FL_TRUNKS" == real ]] || return 0
  local i e others all=() rec k
  for ((e = 1; e <= FL_NB_EDGES; e++)); do all+=("\"edge-$e\""); done
  for i in "$@"; do
    others=$(printf '%s\n' "${all[@]}" | grep -vx "\"edge-$i\"" | paste -sd,)
    nl_ns_exec "$FL_NS_CTL" curl -s -m 5 --cacert "$FL_DIR_CA" -o /dev/null -H "Authorization: Bearer $FL_DIRECTOR_TOKEN" \
      -d "{\"session\": 1, \"listeners\": 1, \"exclude\": [$others]}" "$(fl_director_url 1)/v1/place" || return 1
  done
  for i in "$@"; do
    for ((k = 0; k < 100; k++)); do
      rec=$(fl_ectl get --print-value-only "/stentor/relays/edge-$i" 2>/dev/null || true)
      jq -e '[.sessions[][0]] | index(1) != null' <<<"$rec" >/dev/null 2>&1 && break
      sleep 0.1
    done
    (( k < 100 )) || { echo "fleetnet: edge-$i does not carry session 1 after its trunk was recorded" >&2; return 1; }
  done
}

# fleetnet_start_speaker SECONDS: ffmpeg, 440 Hz Opus 20 ms, SSRC 1234, from
# 198.18.0.10:5004 to origin-1, or (two origins) to a tee that sends each
# packet to both, same SSRC and sequence numbers. Sets FL_SPK_PIDS.
fleetnet_start_speaker() {
  local secs=$1 dest="$FL_ORIGIN_IP:$FL_SESSION_PORT" local_port=5004
  FL_SPK_PIDS=()
  if (( FL_NB_ORIGINS == 2 )); then
    printf '%s\n' \
      'import socket, sys' \
      'rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 6000)); rx.settimeout(30)' \
      'tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.bind((sys.argv[1], 5004))' \
      'dests = [(a, int(sys.argv[4])) for a in sys.argv[2:4]]' \
      'n = 0' \
      'try:' \
      '    while True:' \
      '        d = rx.recv(2048)' \
      '        for a in dests: tx.sendto(d, a)' \
      '        n += 1' \
      'except socket.timeout:' \
      '    pass' \
      'print("tee: %d packets, two copies each" % n)' >"$FL_WORK/tee.py"
    nl_ns_exec "$FL_NS_SPK" ip link set lo up
    ip netns exec "$FL_NS_SPK" /usr/bin/python3 "$FL_WORK/tee.py" "$FL_SPK_IP" "$FL_ORIGIN_IP" "$(fl_relay_ip 9)" \
      "$FL_SESSION_PORT" >"$FL_WORK/tee.log" 2>&1 &
    FL_SPK_PIDS+=("$!")
    netlib_track "$!"
    dest=127.0.0.1:6000 local_port=6002
    sleep 0.3
  fi
  ip netns exec "$FL_NS_SPK" ffmpeg -hide_banner -nostdin -loglevel warning -re \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$secs" -ac 2 -c:a libopus -b:a 64k -frame_duration 20 \
    -application audio -f rtp -payload_type 111 -ssrc 1234 \
    "rtp://$dest?pkt_size=1200&localrtpport=$local_port" >"$FL_WORK/speaker.log" 2>&1 &
  FL_SPK_PIDS+=("$!")
  netlib_track "$!"
}

# --- The end-to-end tests' fleet (tests/e2e/e2e_failover.sh, e2e_director6.sh) ---
# Each step reports a broken setup as "FAIL ${T}_setup <reason>" through the
# caller's fail and exits; they use the caller's T and BUILD_DIR.
#   fleetnet_e2e_preflight            root, the binaries, the tools
#   fleetnet_e2e_init TAG NB_EDGES NB_ORIGINS   netlib + fleetnet names (prefix
#                                     TAG$$, 8 characters), WORK, cleanup on exit
#                                     (KEEP_WORK=1 keeps WORK)
#   fleetnet_e2e_net                  fleetnet_up
#   fleetnet_e2e_relays [HOOK]        etcd, every relay's profile (HOOK I FILE
#                                     may edit relay I's), checked, all started
#                                     at once (each initialises its EAL on its
#                                     own; idle workers sleep) and ready
#   fleetnet_e2e_directors N...       those directors, ready
#   fl_wait_for SECONDS CMD...        poll CMD every 0.1 s
#   fl_dplace BODY                    POST /v1/place to director 1

fleetnet_e2e_preflight() {
  local b tool
  if [[ $(id -u) -ne 0 ]]; then fail "${T}_setup" "needs root (network namespaces)"; exit 1; fi
  for b in control/stentord control/stentor-director tools/stentor-listener; do
    [[ -x "$BUILD_DIR/$b" ]] || { fail "${T}_setup" "$BUILD_DIR/$b not built"; exit 1; }
  done
  for tool in etcd etcdctl ffmpeg jq curl openssl; do
    command -v "$tool" >/dev/null || { fail "${T}_setup" "$tool not installed (scripts/deps.sh)"; exit 1; }
  done
}

fleetnet_e2e_init() {
  local p="$1$$"
  p=${p:0:8}
  FL_BUILD=$BUILD_DIR
  netlib_init "$p"
  WORK=$(mktemp -d "/tmp/stentor-${T#e2e_}.XXXXXX")
  fleetnet_init "$p" "$2" "$WORK" "$3"
  netlib_trap fl_e2e_hook
}
fl_e2e_hook() {
  fleetnet_cleanup_dpdk
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}

fleetnet_e2e_net() {
  if ! fleetnet_up >"$WORK/net.log" 2>&1; then
    cat "$WORK/net.log" >&2; fail "${T}_setup" "could not build the namespace fleet"; exit 1
  fi
}

fleetnet_e2e_relays() {
  local hook=${1:-} i
  if ! fleetnet_start_etcd; then
    tail -20 "$WORK/etcd.log" >&2; fail "${T}_setup" "etcd did not start"; exit 1
  fi
  for i in "${FL_RELAYS[@]}"; do
    fleetnet_relay_profile "$i" "$WORK/relay-$i.toml" 1 10
    [[ -z "$hook" ]] || "$hook" "$i" "$WORK/relay-$i.toml"
    if ! "$BUILD_DIR/control/stentord" --check -c "$WORK/relay-$i.toml" >"$WORK/check-$i.log" 2>&1; then
      cat "$WORK/check-$i.log" >&2; fail "${T}_setup" "relay $i's profile does not validate"; exit 1
    fi
  done
  for i in "${FL_RELAYS[@]}"; do fleetnet_launch_relay "$i" "$WORK/relay-$i.log"; done
  for i in "${FL_RELAYS[@]}"; do
    if ! fleetnet_wait_relay "$i" "$WORK/relay-$i.log"; then fail "${T}_setup" "$(fl_relay_name "$i") not ready"; exit 1; fi
  done
}

fleetnet_e2e_directors() {
  local n
  for n in "$@"; do
    if ! fleetnet_start_director "$n"; then
      cat "$WORK/director-$n.log" >&2; fail "${T}_setup" "director-$n not ready"; exit 1
    fi
  done
}

fl_wait_for() {
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}

# fl_dplace BODY: "HTTP_CODE" (000 when none) with the reply in $WORK/place.json.
fl_dplace() {
  nl_ns_exec "$FL_NS_CTL" curl -s -m 5 --cacert "$FL_DIR_CA" -o "$WORK/place.json" -w '%{http_code}' -H "Authorization: Bearer $FL_DIRECTOR_TOKEN" \
    -d "$1" "$(fl_director_url 1)/v1/place" || echo 000
}
