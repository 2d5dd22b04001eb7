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
STENTORD="$BUILD_DIR/control/stentord"
T="e2e_idle_intr"
PY=/usr/bin/python3
PACKETS=100

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

[[ $(id -u) -eq 0 ]] || { fail "${T}_setup" "needs root (network namespaces, tap)"; exit 1; }
[[ -x "$STENTORD" ]] || { fail "${T}_setup" "$STENTORD not built"; exit 1; }

P="sti$$"
P=${P:0:10}
NS="${P}ns"
TAP="${P}tap"
WORK=$(mktemp -d /tmp/stentor-idle-intr.XXXXXX)
RELAY_PID=""
cleanup() {
  [[ -n "$RELAY_PID" ]] && kill -KILL "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$TAP" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

API=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|^vdevs = .*|vdevs = [\"net_tap0,iface=$TAP\"]|" -e 's|^device = "net_af_packet0"|device = "net_tap0"|' \
    -e "s|^listen = .*|listen = \"127.0.0.1:$API\"|" configs/dev-veth.toml >"$WORK/relay.toml"
grep -q '^idle = "adaptive"' "$WORK/relay.toml" || { fail "${T}_setup" "dev-veth.toml is not adaptive"; exit 1; }

"$STENTORD" -c "$WORK/relay.toml" --file-prefix "$P" >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
for _ in $(seq 150); do grep -q 'stentord: ready' "$WORK/relay.log" && break; sleep 0.1; done
if ! grep -q 'stentord: ready' "$WORK/relay.log"; then
  fail "${T}_relay_ready" "no 'stentord: ready'"; tail -20 "$WORK/relay.log" >&2; exit 1
fi
if grep -q 'idle: adaptive, port lan0: Rx interrupts' "$WORK/relay.log"; then
  pass "${T}_port_has_rx_interrupts"
else
  fail "${T}_port_has_rx_interrupts" "$(grep '^idle:' "$WORK/relay.log" || echo 'no idle line')"
fi

# The tap's kernel side becomes the speaker's and the listener's host.
ip netns add "$NS"
ip link set "$TAP" netns "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add 198.18.0.10/24 dev "$TAP"
ip -n "$NS" addr add 198.18.0.21/24 dev "$TAP"
ip -n "$NS" link set "$TAP" up

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

kill -INT "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true
RELAY_PID=""
wakeups=$(awk '/^=== stentord final counters ===/ {b=1; next} /^=== end ===/ {b=0} b && $1 == "idle_rx_wakeups" {print $2}' "$WORK/relay.log")
sleeps=$(awk '/^=== stentord final counters ===/ {b=1; next} /^=== end ===/ {b=0} b && $1 == "idle_sleeps" {print $2}' "$WORK/relay.log")
echo "# relay: idle_sleeps=${sleeps:-0} idle_rx_wakeups=${wakeups:-0}"
if [[ "${wakeups:-0}" =~ ^[0-9]+$ ]] && (( ${wakeups:-0} > 0 )); then
  pass "${T}_woken_by_rx_interrupts"
else
  fail "${T}_woken_by_rx_interrupts" "idle_rx_wakeups=${wakeups:-missing}"
fi
(( FAILS == 0 ))
