#!/usr/bin/env bash
# End-to-end: trunks in the data plane and ST 2022-7 origin protection
# (issue 13 items 1 and 2, docs/fleet.md "Trunks"), in network namespaces:
#
#   ${P}etcd   etcd on 10.77.0.100 (control bridge br1)
#   ${P}o1     stentord origin-1, DPDK 198.18.0.1 (br0) + kernel 10.77.0.1 (br1)
#   ${P}o2     stentord origin-2, DPDK 198.18.0.2        + kernel 10.77.0.2
#   ${P}e1     stentord edge-1,   DPDK 198.18.0.3        + kernel 10.77.0.3
#   ${P}spk    198.18.0.10: stentor-speaker (440 Hz Opus) -> a tee that sends
#              each packet from :5004 to both origins (same SSRC, same seq)
#   ${P}l1     198.18.0.21: stentor-listener, a listener of the edge
#
# The trunk key /stentor/trunks/1/edge-1 names both origins (as a director
# writes it): each origin sends session 1 to the edge as a tier-0 trunk
# listener, the edge takes it from both and keeps the first copy of each
# packet. Origin-1 is SIGKILLed mid-stream: the listener loses 0 packets
# (counted by RTP sequence number), hears 440 Hz, and the edge's counters
# show the duplicates it dropped. After the kill the trunk key file is
# rewritten in place and origin-2 and the edge get SIGHUP: both refuse the
# reload by name, and the trunk goes on with the old key (still 0 lost).
# Prints "PASS <name>" / "FAIL <name> <why>". Bounded (~40 s).
#
# TRUNK_FAMILY=ipv6 (what e2e_trunks_ipv6.sh sets; issue 15, docs/fleet.md
# "Trunks over IPv6"): the same with the data addresses the trunks use on
# IPv6: the relays' ports get 2001:db8:77::1-3/64 beside their IPv4, advertise
# both, and the edge asks for IPv6 trunks ([fleet] trunk_family = "ipv6");
# the speaker is 2001:db8:77::10 (a static IPv6 speaker of the origins'
# profiles) and the tee sends to the origins' IPv6 addresses. Every address
# between the relays is found by neighbour discovery (nothing pinned); the
# listener stays on IPv4 (stentor-listener is IPv4 only), so one session
# carries both families.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
SPEAKER="$BUILD_DIR/tools/stentor-speaker"
LISTENER="$BUILD_DIR/tools/stentor-listener"
FAMILY=${TRUNK_FAMILY:-ipv4}
case "$FAMILY" in
  ipv4) T="e2e_trunks" ;;
  ipv6) T="e2e_trunks_ipv6" ;;
  *) echo "FAIL e2e_trunks_setup TRUNK_FAMILY=$FAMILY is neither ipv4 nor ipv6"; exit 1 ;;
esac
SECS=8          # the speaker's stream
KILL_AT=3       # origin-1 SIGKILLed this many seconds into it
PY=/usr/bin/python3

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then fail "${T}_setup" "needs root (network namespaces)"; exit 1; fi
for bin in "$STENTORD" "$SPEAKER" "$LISTENER"; do
  [[ -x "$bin" ]] || { fail "${T}_setup" "$bin not built"; exit 1; }
done
command -v etcd >/dev/null && command -v etcdctl >/dev/null || { fail "${T}_setup" "etcd/etcdctl missing (scripts/deps.sh)"; exit 1; }
command -v sox >/dev/null || { fail "${T}_setup" "sox missing (scripts/deps.sh)"; exit 1; }

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"   # nl_ns_add, nl_add_host, netlib_* helpers; our own topology
P="stt$$"
[[ $FAMILY == ipv6 ]] && P="st6$$"
P=${P:0:10}
NS_BR="${P}br"; NS_ETCD="${P}etcd"; NS_SPK="${P}spk"; NS_L1="${P}l1"
RELAYS=(o1 o2 e1)
declare -A NS_OF=([o1]="${P}o1" [o2]="${P}o2" [e1]="${P}e1")
declare -A DATA_IP=([o1]=198.18.0.1 [o2]=198.18.0.2 [e1]=198.18.0.3)
declare -A DATA_IP6=([o1]=2001:db8:77::1 [o2]=2001:db8:77::2 [e1]=2001:db8:77::3)
declare -A CTL_IP=([o1]=10.77.0.1 [o2]=10.77.0.2 [e1]=10.77.0.3)
# The addresses the trunks and the speaker use, of the family under test.
SPK_IP=198.18.0.10
if [[ $FAMILY == ipv6 ]]; then SPK_IP=2001:db8:77::10; fi
trunk_ip() { if [[ $FAMILY == ipv6 ]]; then echo "${DATA_IP6[$1]}"; else echo "${DATA_IP[$1]}"; fi; }
trunk_ep() { if [[ $FAMILY == ipv6 ]]; then echo "[${DATA_IP6[$1]}]:40000"; else echo "${DATA_IP[$1]}:40000"; fi; }
declare -A ID_OF=([o1]=origin-1 [o2]=origin-2 [e1]=edge-1)
declare -A ROLE_OF=([o1]=origin [o2]=origin [e1]=edge)
declare -A PID_OF=()
ETCD_IP=10.77.0.100
ETCD_URL="http://$ETCD_IP:2379"
ALL_NS=("$NS_BR" "$NS_ETCD" "$NS_SPK" "$NS_L1" "${NS_OF[o1]}" "${NS_OF[o2]}" "${NS_OF[e1]}")

WORK=$(mktemp -d "/tmp/stentor-trunks.XXXXXX")
# The fleet's trunk key (docs/fleet.md "Trunk authentication"): one file,
# mode 0600, for every relay.
TRUNK_KEY="$WORK/trunk.key"
(umask 077; openssl rand -hex 32 >"$TRUNK_KEY")
MYPIDS=()
cleanup() {
  local p
  for p in "${MYPIDS[@]}"; do netlib_stop_pid "$p" TERM 3; done
  for ns in "${ALL_NS[@]}"; do [[ -e "/run/netns/$ns" ]] && ip netns del "$ns" 2>/dev/null || true; done
  for r in "${RELAYS[@]}"; do rm -rf "/var/run/dpdk/stentor-$P-$r" 2>/dev/null || true; done
  [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# --- topology ---------------------------------------------------------------------
setup() {
  nl_ns_add "$NS_BR"
  ip netns exec "$NS_BR" ip link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  ip netns exec "$NS_BR" ip link add br1 type bridge stp_state 0 forward_delay 0
  ip netns exec "$NS_BR" ip link set br0 up
  ip netns exec "$NS_BR" ip link set br1 up
  # NL_NS_BR is what nl_add_host bridges into (br0).
  NL_NS_BR=$NS_BR
  local r ns
  for r in "${RELAYS[@]}"; do
    ns=${NS_OF[$r]}
    nl_ns_add "$ns"
    # Data: the DPDK relay owns DATA_IP on stv-relay (net_af_packet), no kernel IP.
    ip link add stv-relay netns "$ns" type veth peer name "p-$r" netns "$NS_BR"
    ip netns exec "$NS_BR" ip link set "p-$r" master br0 up
    ip netns exec "$ns" ip link set stv-relay promisc on up
    nl_offload_off "$ns" stv-relay tx off rx off
    nl_offload_off "$NS_BR" "p-$r" tx off
    # Control: the kernel's address, for etcd and nothing else.
    ip link add ctl0 netns "$ns" type veth peer name "c-$r" netns "$NS_BR"
    ip netns exec "$NS_BR" ip link set "c-$r" master br1 up
    ip netns exec "$ns" ip addr add "${CTL_IP[$r]}/24" dev ctl0
    ip netns exec "$ns" ip link set ctl0 up
  done
  nl_ns_add "$NS_ETCD"
  ip link add ctl0 netns "$NS_ETCD" type veth peer name c-etcd netns "$NS_BR"
  ip netns exec "$NS_BR" ip link set c-etcd master br1 up
  ip netns exec "$NS_ETCD" ip addr add "$ETCD_IP/24" dev ctl0
  ip netns exec "$NS_ETCD" ip link set ctl0 up
  nl_add_host "$NS_SPK" 198.18.0.10 p-spk
  if [[ $FAMILY == ipv6 ]]; then   # the speaker on IPv6 too (no DAD: the namespace is fresh)
    ip netns exec "$NS_SPK" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null
    ip netns exec "$NS_SPK" ip -6 addr add "$SPK_IP/64" dev veth0 nodad
  fi
  nl_add_host "$NS_L1" 198.18.0.21 p-l1
}
if ! setup >"$WORK/setup.log" 2>&1; then cat "$WORK/setup.log" >&2; fail "${T}_setup" "could not build the namespaces"; exit 1; fi

# --- etcd -------------------------------------------------------------------------------
export ETCDCTL_API=3
ectl() { ip netns exec "$NS_ETCD" timeout 5 etcdctl --endpoints="$ETCD_URL" --dial-timeout=1s --command-timeout=2s "$@"; }
ip netns exec "$NS_ETCD" etcd --name default --data-dir "$WORK/etcd" --listen-client-urls "$ETCD_URL" \
  --advertise-client-urls "$ETCD_URL" --listen-peer-urls "http://127.0.0.1:2380" \
  --initial-advertise-peer-urls "http://127.0.0.1:2380" --initial-cluster "default=http://127.0.0.1:2380" \
  --log-level warn >"$WORK/etcd.log" 2>&1 &
MYPIDS+=("$!")
etcd_ok=0
for _ in $(seq 100); do ectl endpoint health >/dev/null 2>&1 && { etcd_ok=1; break; }; sleep 0.1; done
(( etcd_ok )) || { cat "$WORK/etcd.log" >&2; fail "${T}_etcd" "etcd did not start"; exit 1; }
pass "${T}_etcd"

# --- the relays -------------------------------------------------------------------------
profile() {   # RELAY -> profile on stdout
  local r=$1
  local n ipv6_line="" advertise="\"${DATA_IP[$r]}\"" family_line="" peers="\"198.18.0.0/24\""
  n=${DATA_IP[$r]##*.}
  if [[ $FAMILY == ipv6 ]]; then
    ipv6_line="ipv6 = \"${DATA_IP6[$r]}/64\""
    advertise="\"${DATA_IP[$r]}\", \"${DATA_IP6[$r]}\""
    family_line='trunk_family = "ipv6"'
    peers="\"198.18.0.0/24\", \"2001:db8:77::/64\""
  fi
  cat <<EOF
[eal]
lcores = [0, 1]
main_lcore = 0
memory_mb = 256
hugepages = false
file_prefix = "stentor-$P-$r"
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
ipv4 = "${DATA_IP[$r]}/24"
$ipv6_line
mac = "02:53:54:00:00:0$n"
line_rate_mbps = 0

[ingress]
udp_port_min = 40000
udp_port_max = 40999

[limits]
max_sessions = 16
max_speakers = 64
max_listeners = 1000
max_listeners_per_session = 1000
max_neighbours = 64

[api]
listen = "127.0.0.1:8080"
token = "trunks-e2e-token-0123456789"
plain_http = true

[fleet]
etcd = ["$ETCD_URL"]
# A lab's own namespaces: etcd in plain HTTP said explicitly (docs/fleet.md "Running etcd securely").
allow_plaintext = true
relay_id = "${ID_OF[$r]}"
role = "${ROLE_OF[$r]}"
region = "e2e"
lease_ttl_s = 2
refresh_ms = 250
advertise = [$advertise]
trunk_peers = [$peers]
trunk_key_file = "$TRUNK_KEY"
$family_line
EOF
  if [[ ${ROLE_OF[$r]} == origin ]]; then
    cat <<EOF

[[session]]
id = 1
name = "trunked"
mode = "forward"
udp_port = 40000

  [[session.speaker]]
  ip = "$SPK_IP"
  port = 5004
  ssrc = 1234
EOF
  fi
}
start_relay() {   # RELAY
  local r=$1
  profile "$r" >"$WORK/$r.toml"
  ip netns exec "${NS_OF[$r]}" stdbuf -oL -eL "$STENTORD" -c "$WORK/$r.toml" --file-prefix "stentor-$P-$r" \
    >"$WORK/$r.log" 2>&1 &
  PID_OF[$r]=$!
  MYPIDS+=("$!")
}
for r in "${RELAYS[@]}"; do start_relay "$r"; done
for r in "${RELAYS[@]}"; do
  if ! netlib_wait_for_line "$WORK/$r.log" 'stentord: ready' 30 "${PID_OF[$r]}"; then
    tail -20 "$WORK/$r.log" >&2; fail "${T}_${r}_ready" "no 'stentord: ready'"; exit 1
  fi
done
pass "${T}_relays_ready"
api() {   # RELAY PATH
  ip netns exec "${NS_OF[$1]}" curl -s -m 5 -H "Authorization: Bearer trunks-e2e-token-0123456789" "http://127.0.0.1:8080$2"
}
wait_for() {   # SECONDS CMD...
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}
registered() { [[ -n "$(ectl get --print-value-only "/stentor/relays/$1" 2>/dev/null)" ]]; }
if wait_for 10 registered origin-1 && wait_for 10 registered origin-2 && wait_for 10 registered edge-1; then
  pass "${T}_registered"
else
  fail "${T}_registered" "a relay's key is missing"; exit 1
fi
if ectl get --print-value-only /stentor/relays/origin-1 | jq -e '.sessions == [[1, 40000, [1234]]]' >/dev/null; then
  pass "${T}_origin_record_lists_ssrc"
else
  fail "${T}_origin_record_lists_ssrc" "$(ectl get --print-value-only /stentor/relays/origin-1)"
fi
if [[ $FAMILY == ipv6 ]]; then
  # The records carry the IPv6 addresses beside the IPv4 ones, and the
  # edge's trunk family.
  if ectl get --print-value-only /stentor/relays/edge-1 \
       | jq -e '.addresses == ["198.18.0.3"] and .addresses6 == ["2001:db8:77::3"] and .trunk_family == "ipv6"' >/dev/null; then
    pass "${T}_records_carry_ipv6"
    echo "# edge record: $(ectl get --print-value-only /stentor/relays/edge-1 | jq -c '{addresses, addresses6, trunk_family}')"
  else
    fail "${T}_records_carry_ipv6" "$(ectl get --print-value-only /stentor/relays/edge-1)"
  fi
fi

# --- the trunk, as a director records it ---------------------------------------------------
ectl put /stentor/trunks/1/edge-1 \
  '{"session":1,"edge":"edge-1","origins":["origin-1","origin-2"],"origin":"origin-1","udp_port":40000,"created_by":"e2e"}' >/dev/null
# Two trunk flows, from the origins' addresses of the family under test.
edge_has_two_flows() {
  api e1 /api/v1/sessions/1 | jq -e --arg a "$(trunk_ip o1)" --arg b "$(trunk_ip o2)" \
    '.trunk == true and ([.speakers[] | select(.trunk) | .ip] | sort) == ([$a, $b] | sort)' >/dev/null 2>&1
}
origin_sends() {
  api "$1" /api/v1/sessions/1/listeners | jq -e --arg e "$(trunk_ip e1)" \
    '.listeners | any(.ip == $e and .port == 40000 and .tier == 0)' >/dev/null 2>&1
}
if wait_for 10 edge_has_two_flows && wait_for 10 origin_sends o1 && wait_for 10 origin_sends o2; then
  pass "${T}_trunk_set_up"
  echo "# edge session: $(api e1 /api/v1/sessions/1 | jq -c '{udp_port, trunk, speakers: [.speakers[] | {ip, port, ssrc, trunk}], srtp: .srtp.ingress}')"
else
  fail "${T}_trunk_set_up" "edge: $(api e1 /api/v1/sessions/1 | head -c 300); o1: $(api o1 /api/v1/sessions/1/listeners | head -c 200)"
  tail -5 "$WORK/e1.log" "$WORK/o1.log" >&2
  exit 1
fi
# Trunk authentication: each record says so with its run's epoch; each
# origin protects session 1's trunk copy with the key of its own epoch, and
# the edge's flow from it holds the same key id (both derived from the file).
epoch_of() { ectl get --print-value-only "/stentor/relays/$1" | jq -r 'select(.trunk_auth == true) | .trunk_epoch'; }
key_id_of() { local e; e=$(epoch_of "$1"); [[ ${#e} == 16 ]] && echo "trunk-$e"; }
flow_key_ids_ok() {
  local a b
  a=$(key_id_of origin-1) && b=$(key_id_of origin-2) || return 1
  api e1 /api/v1/sessions/1 | jq -e --arg ia "$(trunk_ip o1)" --arg ib "$(trunk_ip o2)" --arg ka "$a" --arg kb "$b" \
    '[.speakers[] | select(.trunk) | {ip, k: [.srtp_keys[].id]}] | sort_by(.ip)
       == ([{ip: $ia, k: [$ka]}, {ip: $ib, k: [$kb]}] | sort_by(.ip))' >/dev/null 2>&1
}
origin_trunk_key_ok() {   # RELAY ID: its session 1 shows the trunk key of its own epoch (GET /sessions/1)
  api "$1" /api/v1/sessions/1 | jq -e --arg k "$(key_id_of "$2")" \
    '.srtp.trunk_keys == [{id: $k, suite: "AEAD_AES_128_GCM", mki: null, active: .srtp.trunk_keys[0].active}]' >/dev/null 2>&1
}
if wait_for 10 flow_key_ids_ok && wait_for 5 origin_trunk_key_ok o1 origin-1 && wait_for 5 origin_trunk_key_ok o2 origin-2 \
   && grep -qF "session 1: its trunk copies are protected with key $(key_id_of origin-1)" "$WORK/o1.log"; then
  pass "${T}_trunks_authenticated"
  echo "# epochs: origin-1 $(epoch_of origin-1), origin-2 $(epoch_of origin-2); edge flows: $(api e1 /api/v1/sessions/1 | jq -c '[.speakers[] | select(.trunk) | {ip, keys: [.srtp_keys[] | {id, suite}]}]')"
else
  fail "${T}_trunks_authenticated" "records: $(ectl get --print-value-only /stentor/relays/origin-1 | jq -c '{trunk_auth, trunk_epoch}'); origin-1: $(api o1 /api/v1/sessions/1 | jq -c '.srtp' | head -c 300); edge: $(api e1 /api/v1/sessions/1 | jq -c '[.speakers[] | {ip, srtp_keys}]' | head -c 400)"
fi
# --- a registry writer's fake edge (docs/security.md §14) --------------------------------
# An edge record at an address outside the relays' trunk_peers, under a lease
# (as a registrar would write it), and a trunk key naming it: origin-2 must
# add no trunk listener there, log it once and count it by reason.
if [[ $FAMILY == ipv6 ]]; then
  VICTIM=2001:db8:99::9
  VREC='{"id":"victim","role":"edge","addresses":["198.18.0.99"],"addresses6":["2001:db8:99::9"],"trunk_family":"ipv6","slots":1000,"listeners":0}'
else
  VICTIM=203.0.113.9
  VREC='{"id":"victim","role":"edge","addresses":["203.0.113.9"],"slots":1000,"listeners":0}'
fi
VLEASE=$(ectl lease grant 120 | awk '{ print $2 }')
ectl put --lease="$VLEASE" /stentor/relays/victim "$VREC" >/dev/null
ectl put /stentor/trunks/1/victim \
  '{"session":1,"edge":"victim","origins":["origin-2"],"origin":"origin-2","udp_port":40000,"created_by":"attacker"}' >/dev/null
metric() {   # RELAY NAME: the sample's value, or nothing
  api "$1" /metrics | awk -v n="$2" '$1 == n { print $2 }'
}
refused_metric() {   # RELAY REASON: the counter's value, or nothing
  metric "$1" "stentor_fleet_trunk_refused_total{reason=\"$2\"}"
}
if wait_for 10 grep -qF "edge address $VICTIM is outside fleet.trunk_peers" "$WORK/o2.log"; then
  sleep 1.5   # more applies: still once
  n_log=$(grep -cF "edge address $VICTIM is outside fleet.trunk_peers" "$WORK/o2.log")
  n_metric=$(refused_metric o2 edge_outside_trunk_peers)
  if ! api o2 /api/v1/sessions/1/listeners | jq -e --arg v "$VICTIM" '.listeners | any(.ip == $v)' >/dev/null 2>&1 \
     && [[ "$n_log" == 1 && "$n_metric" == 1 ]]; then
    pass "${T}_fake_edge_outside_trunk_peers_refused"
  else
    fail "${T}_fake_edge_outside_trunk_peers_refused" "log lines $n_log, metric ${n_metric:-absent}, listeners $(api o2 /api/v1/sessions/1/listeners | head -c 300)"
  fi
else
  fail "${T}_fake_edge_outside_trunk_peers_refused" "no refusal line in origin-2's log"
fi
ectl del /stentor/trunks/1/victim >/dev/null
ectl lease revoke "$VLEASE" >/dev/null
# The trunk watch's view on /metrics (docs/metrics.md): read whole, the
# relays and trunk records it holds, plans applied. Origin-2 watches the
# same registry as everyone (the three relays under leases, and the trunk key
# of session 1 towards edge-1 at least).
m_loaded=$(metric o2 stentor_fleet_trunk_view_loaded)
m_relays=$(metric o2 stentor_fleet_trunk_view_relays)
m_trunks=$(metric o2 stentor_fleet_trunk_view_trunks)
m_applies=$(metric o2 stentor_fleet_trunk_plan_applies_total)
m_restarts=$(metric o2 stentor_fleet_trunk_watch_restarts_total)
if [[ "$m_loaded" == 1 && "${m_relays:-0}" -ge 3 && "${m_trunks:-0}" -ge 1 && "${m_applies:-0}" -ge 1 && -n "$m_restarts" ]]; then
  pass "${T}_trunk_watch_on_metrics"
else
  fail "${T}_trunk_watch_on_metrics" "loaded=${m_loaded:-absent} relays=${m_relays:-absent} trunks=${m_trunks:-absent} applies=${m_applies:-absent} restarts=${m_restarts:-absent}"
fi
# The edge's listener (static, over the edge's API).
code=$(ip netns exec "${NS_OF[e1]}" curl -s -m 5 -o "$WORK/add.json" -w '%{http_code}' \
  -H "Authorization: Bearer trunks-e2e-token-0123456789" -d '{"ip":"198.18.0.21","port":5004,"tier":1}' \
  http://127.0.0.1:8080/api/v1/sessions/1/listeners || echo 000)
[[ "$code" == 20[01] ]] && pass "${T}_edge_listener" || { fail "${T}_edge_listener" "HTTP $code $(cat "$WORK/add.json")"; exit 1; }

# --- the stream --------------------------------------------------------------------------
ip netns exec "$NS_L1" "$LISTENER" --listen 198.18.0.21:5004 --seconds $((SECS + 6)) --idle 3 \
  --wav-dir "$WORK" --json "$WORK/listener.json" -q >"$WORK/listener.log" 2>&1 &
LPID=$!
MYPIDS+=("$LPID")
# The tee: one stream, two copies (same SSRC, sequence numbers, payload),
# sent from 198.18.0.10:5004 to both origins, as a dual-homed speaker does.
# It also writes the last sequence number it sent to a file: what a forger
# on the path reads off the wire (RTP headers travel in clear).
cat >"$WORK/tee.py" <<'EOF'
import os, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 6000)); rx.settimeout(3)
tx = socket.socket(fam, socket.SOCK_DGRAM); tx.bind((sys.argv[1], 5004))
n = 0
try:
    while True:
        d = rx.recv(2048)
        tx.sendto(d, (sys.argv[2], 40000)); tx.sendto(d, (sys.argv[3], 40000)); n += 1
        with open(sys.argv[4] + ".tmp", "w") as f:
            f.write("%d %d\n" % (int.from_bytes(d[2:4], "big"), int.from_bytes(d[4:8], "big")))
        os.replace(sys.argv[4] + ".tmp", sys.argv[4])
except socket.timeout:
    pass
print("tee: %d packets, two copies each" % n)
EOF
ip netns exec "$NS_SPK" ip link set lo up
ip netns exec "$NS_SPK" "$PY" "$WORK/tee.py" "$SPK_IP" "$(trunk_ip o1)" "$(trunk_ip o2)" "$WORK/tee.seq" >"$WORK/tee.log" 2>&1 &
TPID=$!
MYPIDS+=("$TPID")
sleep 0.3
ip netns exec "$NS_SPK" "$SPEAKER" --tone 440 --seconds "$SECS" --ssrc 1234 --dest 127.0.0.1:6000 \
  >"$WORK/speaker.log" 2>&1 &
SPID=$!
MYPIDS+=("$SPID")
# A forger on the data network (docs/security.md §14): the next packet of
# the stream, forged: origin-2's source address and port, SSRC 1234, the
# sequence number after the last one on the wire (a plausible one: the
# edge's sequence check lets it through to the MAC), a payload and tag of
# random bytes (it has no key), sent to the edge's session port ahead of
# the real packet. Unauthenticated, it would take the first-copy slot and
# be heard. IP_TRANSPARENT lets a root socket send from an address that is
# not its own.
cat >"$WORK/forge.py" <<'EOF'
import os, socket, struct, sys, time
src, dst, n, seqfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
v6 = ":" in src
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, 75, 1)   # IPV6_TRANSPARENT
else:
    s.setsockopt(socket.IPPROTO_IP, 19, 1)     # IP_TRANSPARENT
s.bind((src, 40000))
for i in range(n):
    seq, ts = (int(x) for x in open(seqfile).read().split())
    rtp = struct.pack("!BBHII", 0x80, 111, (seq + 1) & 0xffff, (ts + 960) & 0xffffffff, 1234)
    s.sendto(rtp + os.urandom(80 + 16), (dst, 40000))
    time.sleep(0.02)
print("forge: %d packets from %s:40000" % (n, src))
EOF
FORGED=37
auth_drops_o2() {
  api e1 /api/v1/sessions/1 | jq --arg a "$(trunk_ip o2)" '[.speakers[] | select(.ip == $a) | .counters.auth_drops] | add // 0'
}
sleep 1
forged_before=$(auth_drops_o2)
ip netns exec "$NS_SPK" "$PY" "$WORK/forge.py" "$(trunk_ip o2)" "$(trunk_ip e1)" "$FORGED" "$WORK/tee.seq" \
  >"$WORK/forge.log" 2>&1 || true
sleep 0.5
forged_after=$(auth_drops_o2)
echo "# $(cat "$WORK/forge.log"); the edge's flow from origin-2: auth_drops $forged_before -> $forged_after"
sleep "$((KILL_AT - 1))"
kill -KILL "${PID_OF[o1]}"
wait "${PID_OF[o1]}" 2>/dev/null || true
echo "# origin-1 SIGKILLed ${KILL_AT} s into the stream"
# The fleet's trunk key file rewritten in place, then SIGHUP to origin-2
# and the edge, now the stream's only path: each refuses the reload naming
# fleet.trunk_key_file (the key is read at start only) and the trunk goes
# on with the old key, so the listener below loses no packet after it
# either.
openssl rand -hex 32 >"$TRUNK_KEY"   # same inode: the profiles' text is unchanged
why=""
for r in o2 e1; do kill -HUP "${PID_OF[$r]}"; done
for r in o2 e1; do
  netlib_wait_for_line "$WORK/$r.log" 'reload:   fleet\.trunk_key_file: ' 5 "${PID_OF[$r]}" || why+=" $r named nothing;"
  grep -q 'reload: refused, nothing changed (1 setting(s)' "$WORK/$r.log" || why+=" $r did not refuse;"
done
if [[ -z "$why" ]]; then pass "${T}_trunk_key_file_rewritten_reload_refused"
else fail "${T}_trunk_key_file_rewritten_reload_refused" "$why $(grep -h ' reload: ' "$WORK/o2.log" "$WORK/e1.log" | tr '\n' '|')"; fi
wait "$SPID" || true
wait "$TPID" || true
wait "$LPID" || true
sent=$(awk '/stentor-speaker: sent/ { print $3 }' "$WORK/speaker.log")
echo "# $(head -1 "$WORK/speaker.log"); $(cat "$WORK/tee.log")"
if [[ -s "$WORK/listener.json" ]]; then
  got=$(jq '.summary.packets' "$WORK/listener.json")
  lost=$(jq '.summary.lost' "$WORK/listener.json")
  dups=$(jq '.summary.duplicates' "$WORK/listener.json")
  echo "# listener: $got packets, lost $lost (by RTP sequence number), duplicates $dups; speaker sent $sent"
  if [[ -n "$sent" && "$got" == "$sent" && "$lost" == 0 && "$dups" == 0 ]]; then
    pass "${T}_sigkill_origin_loses_no_packet"
  else
    fail "${T}_sigkill_origin_loses_no_packet" "sent $sent, heard $got, lost $lost, duplicates $dups"
  fi
else
  fail "${T}_sigkill_origin_loses_no_packet" "no listener report: $(tail -3 "$WORK/listener.log")"
fi
wav=$(ls "$WORK"/listener-0.wav 2>/dev/null || true)
if [[ -n "$wav" ]]; then
  read -r dur freq <<<"$(netlib_wav_info "$wav")"
  echo "# WAV: $dur s, $freq Hz"
  if [[ "$freq" != "?" ]] && awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
    pass "${T}_hears_440hz"
  else
    fail "${T}_hears_440hz" "frequency $freq Hz, duration $dur s"
  fi
else
  fail "${T}_hears_440hz" "no WAV"
fi
# The forged packets: every one dropped by the edge as failing SRTP
# authentication (the listener's exact count above shows none was heard).
if [[ -n "$forged_after" && -n "$forged_before" ]] && (( forged_after - forged_before == FORGED )) \
   && grep -qF "forge: $FORGED packets" "$WORK/forge.log"; then
  pass "${T}_forged_trunk_packets_dropped"
else
  fail "${T}_forged_trunk_packets_dropped" "auth_drops ${forged_before:-?} -> ${forged_after:-?} for $FORGED forged; $(cat "$WORK/forge.log")"
fi
# Origin-1's lease lapses: the edge stops taking from it, keeps origin-2.
if wait_for 8 grep -qF "fleet: trunk: session 1 no longer taken from $(trunk_ep o1)" "$WORK/e1.log"; then
  pass "${T}_dead_origin_flow_removed"
else
  fail "${T}_dead_origin_flow_removed" "no 'no longer taken from $(trunk_ep o1)' line in the edge's log"
fi
# The edge's counters: duplicates dropped while both origins were live.
netlib_stop_pid "${PID_OF[e1]}" TERM 10
dupdrop=$(netlib_counter "$WORK/e1.log" drop/ingress/trunk_duplicate)
echo "# edge: drop/ingress/trunk_duplicate ${dupdrop:-0}"
if [[ -n "$dupdrop" ]] && (( dupdrop > 0 )); then pass "${T}_edge_counts_duplicates"; else fail "${T}_edge_counts_duplicates" "trunk_duplicate ${dupdrop:-absent}"; fi
# Each forgery is dropped under one of the trunk flow's reasons: most at
# the MAC (srtp_auth); one whose real packet won the race to the edge is
# already a replay of its index (srtp_replay), one sent on a stale sequence
# number a sequence-check drop. Together they are at least the forgeries
# (the flow's auth_drops above counted exactly FORGED), and the MAC was
# reached.
authdrop=$(netlib_counter "$WORK/e1.log" drop/ingress/srtp_auth)
forgedrop=0
for r in srtp_auth srtp_replay rtp_seq_jump rtp_duplicate rtp_ts_jump; do
  v=$(netlib_counter "$WORK/e1.log" "drop/ingress/$r")
  forgedrop=$((forgedrop + ${v:-0}))
done
echo "# edge: drop/ingress/srtp_auth ${authdrop:-0}, with replay and sequence-check drops $forgedrop"
if [[ -n "$authdrop" ]] && (( authdrop > 0 && forgedrop >= FORGED )); then
  pass "${T}_edge_counts_forged_packets"
else
  fail "${T}_edge_counts_forged_packets" "drop/ingress/srtp_auth ${authdrop:-absent}, all trunk-flow drops $forgedrop, $FORGED forged"
fi
# The origin says where it sent the trunk (over IPv6: found by NS/NA alone).
if grep -qF "trunk: session 1 sent to edge-1 ($(trunk_ep e1))" "$WORK/o2.log"; then
  pass "${T}_origin_sends_to_the_edge_s_${FAMILY}_address"
else
  fail "${T}_origin_sends_to_the_edge_s_${FAMILY}_address" "no 'sent to edge-1 ($(trunk_ep e1))' line in origin-2's log"
fi
netlib_stop_pid "${PID_OF[o2]}" TERM 10
(( FAILS == 0 ))
