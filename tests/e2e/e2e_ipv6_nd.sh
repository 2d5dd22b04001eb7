#!/usr/bin/env bash
# End-to-end: IPv6 neighbour discovery and ICMPv6 echo against the Linux
# kernel (issue 15). stentord runs configs/dev-veth.toml with an ipv6
# address (2001:db8:5354::1/64) on a net_tap port whose kernel side lives in
# a throw-away namespace (2001:db8:5354::a). The kernel resolves the relay
# with a multicast NS and must learn its MAC from the relay's NA; ping -6
# must be answered; the kernel's own noise (MLD reports, router
# solicitations) must be dropped and counted; a DAD probe of the relay's
# address is neither answered nor defended (nd_dad).
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 40 s).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T="e2e_ipv6_nd"
PY=/usr/bin/python3
RELAY6=2001:db8:5354::1
HOST6=2001:db8:5354::a

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_tap_init "st6$$" ipv6-nd
NS=$NL_TAP_NS
TAP=$NL_TAP

netlib_tap_profile "$WORK/relay.toml" -e "s|^ipv4 = \"198.18.0.1/24\"|&\nipv6 = \"$RELAY6/64\"|"
grep -q "^ipv6 = \"$RELAY6/64\"" "$WORK/relay.toml" || { fail "${T}_setup" "could not add ipv6 to the profile"; exit 1; }

if ! netlib_tap_start_relay "$WORK/relay.toml" "$WORK/relay.log"; then
  fail "${T}_relay_ready" "no 'stentord: ready'"; exit 1
fi
netlib_tap_ns_up "$HOST6/64 nodad"
sleep 1   # the kernel's MLD reports and router solicitations go out

# The kernel resolves the relay (multicast NS to ff02::1:ff00:1) and pings
# it: five ICMPv6 echo requests from a raw socket (the kernel fills in the
# checksum), each reply matched by identifier and sequence.
got=$(timeout 20 ip netns exec "$NS" "$PY" - "$RELAY6" <<'PYEOF' || echo 0
import os, socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(2.0)
ident = os.getpid() & 0xffff
got = 0
for seq in range(5):
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, seq) + b"stentor-ipv6" * 4, (sys.argv[1], 0))
    deadline = time.time() + 2.0
    while time.time() < deadline:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        if len(data) >= 8 and data[0] == 129 and struct.unpack("!HH", data[4:8]) == (ident, seq):
            got += 1
            break
    time.sleep(0.2)
print(got)
PYEOF
)
if [[ "$got" == 5 ]]; then pass "${T}_ping6_answered"; else fail "${T}_ping6_answered" "$got of 5 echo replies"; fi
lladdr=$(ip -n "$NS" -6 neigh show "$RELAY6" dev "$TAP" | awk '{for (i = 1; i < NF; ++i) if ($i == "lladdr") print $(i + 1)}')
if [[ "$lladdr" == "02:53:54:00:00:01" ]]; then
  pass "${T}_kernel_learnt_the_relay_from_its_na"
else
  fail "${T}_kernel_learnt_the_relay_from_its_na" "neighbour entry: $(ip -n "$NS" -6 neigh show "$RELAY6" dev "$TAP")"
fi

# Another host claims the relay's address: its DAD probe (NS from ::) is
# neither answered nor defended, and counted.
ip -n "$NS" addr add "$RELAY6/128" dev "$TAP"
sleep 2
ip -n "$NS" addr del "$RELAY6/128" dev "$TAP" 2>/dev/null || true

netlib_tap_stop_relay
final() { netlib_counter "$WORK/relay.log" "$1"; }
nd_replies=$(final nd_replies)
echo6=$(final icmp6_replies)
dad=$(final drop/ingress/nd_dad)
hbh=$(final drop/ingress/ipv6_hop_by_hop)
echo "# relay: nd_replies=${nd_replies:-?} icmp6_replies=${echo6:-?} drop/ingress/nd_dad=${dad:-?} drop/ingress/ipv6_hop_by_hop=${hbh:-?} (the kernel's MLD reports)"
if [[ "${nd_replies:-0}" =~ ^[0-9]+$ ]] && (( nd_replies >= 1 )); then pass "${T}_ns_answered"; else fail "${T}_ns_answered" "nd_replies=${nd_replies:-missing}"; fi
if [[ "${echo6:-0}" =~ ^[0-9]+$ ]] && (( echo6 >= 5 )); then pass "${T}_echo_replies_counted"; else fail "${T}_echo_replies_counted" "icmp6_replies=${echo6:-missing}"; fi
if [[ "${dad:-0}" =~ ^[0-9]+$ ]] && (( dad >= 1 )); then pass "${T}_dad_probe_not_answered"; else fail "${T}_dad_probe_not_answered" "nd_dad=${dad:-missing}"; fi
(( FAILS == 0 ))
