#!/usr/bin/env bash
# End-to-end: dataplane.idle = "adaptive" on a PMD with Rx interrupts
# (issue 13 item 7). stentord runs configs/dev-veth.toml on a net_tap port
# instead of af_packet; the tap interface is moved into a throw-away
# namespace that plays speaker (198.18.0.10) and listener (198.18.0.21).
# The worker sleeps in rte_epoll_wait between the speaker's packets (20 ms
# apart) and is woken by the packet itself: every packet must reach the
# listener and idle_rx_wakeups must move.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 40 s).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T="e2e_idle_intr"
PY=/usr/bin/python3
PACKETS=100

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_tap_init "sti$$" idle-intr
NS=$NL_TAP_NS

netlib_tap_profile "$WORK/relay.toml"
grep -q '^idle = "adaptive"' "$WORK/relay.toml" || { fail "${T}_setup" "dev-veth.toml is not adaptive"; exit 1; }

if ! netlib_tap_start_relay "$WORK/relay.toml" "$WORK/relay.log"; then
  fail "${T}_relay_ready" "no 'stentord: ready'"; exit 1
fi
if grep -q 'idle: adaptive, port lan0: Rx interrupts' "$WORK/relay.log"; then
  pass "${T}_port_has_rx_interrupts"
else
  fail "${T}_port_has_rx_interrupts" "$(grep '^idle:' "$WORK/relay.log" || echo 'no idle line')"
fi

# The tap's kernel side becomes the speaker's and the listener's host.
netlib_tap_ns_up 198.18.0.10/24 198.18.0.21/24

counts=$(timeout 30 ip netns exec "$NS" "$PY" - "$PACKETS" <<'PYEOF'
import socket, struct, sys, time
n = int(sys.argv[1])
lst = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
lst.bind(("198.18.0.21", 5004))
lst.settimeout(0.05)
spk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
spk.bind(("198.18.0.10", 5004))
got = 0
def drain():
    global got
    try:
        while True:
            lst.recv(2048)
            got += 1
    except socket.timeout:
        pass
# Warm-up: ARP both ways (the relay resolves its listener in 100 ms rounds).
for i in range(10):
    spk.sendto(struct.pack("!BBHII", 0x80, 111, i, 960 * i, 1234) + bytes(80), ("198.18.0.1", 40000))
    time.sleep(0.1)
drain()
got = 0
lat = []
for i in range(10, 10 + n):
    t0 = time.perf_counter()
    spk.sendto(struct.pack("!BBHII", 0x80, 111, i, 960 * i, 1234) + bytes(80), ("198.18.0.1", 40000))
    try:
        lst.recv(2048)
        got += 1
        lat.append((time.perf_counter() - t0) * 1e6)
    except socket.timeout:
        pass
    time.sleep(max(0.0, 0.02 - (time.perf_counter() - t0)))
drain()
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0
print(n, got, "%.0f" % p(0.5), "%.0f" % p(0.99))
PYEOF
) || counts="$PACKETS 0"
read -r sent got p50 p99 <<<"$counts"
echo "# speaker sent $sent packets 20 ms apart, listener 198.18.0.21 received $got"
echo "# send -> receive through the sleeping relay (kernel tap path both ways included): p50 ${p50:-?} us, p99 ${p99:-?} us"
if (( got >= sent )); then pass "${T}_every_packet_forwarded"; else fail "${T}_every_packet_forwarded" "$got of $sent"; fi

netlib_tap_stop_relay
wakeups=$(netlib_counter "$WORK/relay.log" idle_rx_wakeups)
sleeps=$(netlib_counter "$WORK/relay.log" idle_sleeps)
echo "# relay: idle_sleeps=${sleeps:-0} idle_rx_wakeups=${wakeups:-0}"
if [[ "${wakeups:-0}" =~ ^[0-9]+$ ]] && (( ${wakeups:-0} > 0 )); then
  pass "${T}_woken_by_rx_interrupts"
else
  fail "${T}_woken_by_rx_interrupts" "idle_rx_wakeups=${wakeups:-missing}"
fi
(( FAILS == 0 ))
