#!/usr/bin/env bash
# The failover gap (issue 13 benchmark, goal p99 <= 2 s): in namespaces
# (scripts/fleetnet.sh) a real etcd tuned for 1 s leases, an origin, two
# edges with lease_ttl_s = 1, two directors, ffmpeg speaking to the origin,
# and N stentor-listener --director clients (--failover-after 1) all placed
# on edge-1 (edge-2 starts after them; by default it already carries the
# session, as an edge of a popular session does: its trunk is recorded
# before the kill; --cold leaves that to the first failover placement, so
# the gap then includes the trunk's setup). edge-1 is SIGKILLed; every listener
# notices the silence, asks a director again (naming edge-1), joins edge-2
# and prints the audio gap it heard (the receive times of the last packet
# before and the first after). Prints the gaps' p50, p99 and max over the
# listeners, and one machine-readable line:
#   FAILOVER_BENCH listeners=N moved=M without_audio=K p50_s=.. p99_s=.. max_s=.. detect_p50_s=..
#
#   failover_bench.sh [--listeners N] [--cold] [--build DIR]
# Needs root; prints "FAILOVER_BENCH skipped=<why>" and exits 0 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
N=50
BUILD=""
COLD=0
while (( $# )); do
  case $1 in
    --listeners) N=$2; shift 2 ;;
    --cold) COLD=1; shift ;;
    --build) BUILD=$2; shift 2 ;;
    *) echo "usage: failover_bench.sh [--listeners N] [--cold] [--build DIR]" >&2; exit 2 ;;
  esac
done
# Run from the build tree (meson copies this script to BUILD/bench) or the source tree.
if [[ -z "$BUILD" ]]; then
  if [[ -x "$HERE/../control/stentord" ]]; then BUILD=$(cd "$HERE/.." && pwd); else BUILD=build; fi
fi
# meson writes the source root into the copy in the build tree.
REPO=${STENTOR_SOURCE_ROOT:-@SOURCE_ROOT@}
[[ "$REPO" == @* ]] && REPO=$(cd "$HERE/.." && pwd)
[[ "$BUILD" = /* ]] || BUILD="$(pwd)/$BUILD"

skip() { echo "failover: skipped: $1"; echo "FAILOVER_BENCH skipped=$(tr ' ' _ <<<"$1")"; exit 0; }
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces)"
[[ -n "$REPO" && -f "$REPO/scripts/fleetnet.sh" ]] || skip "source tree not found (set STENTOR_SOURCE_ROOT)"
for b in control/stentord control/stentor-director tools/stentor-listener; do
  [[ -x "$BUILD/$b" ]] || skip "$BUILD/$b not built"
done
for tool in etcd etcdctl ffmpeg jq curl openssl; do command -v "$tool" >/dev/null || skip "$tool not installed"; done

FL_BUILD=$BUILD
# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
# shellcheck source=scripts/fleetnet.sh
source "$REPO/scripts/fleetnet.sh"
P="fb$$"
P=${P:0:8}
netlib_init "$P"
WORK=$(mktemp -d /tmp/stentor-failover-bench.XXXXXX)
fleetnet_init "$P" 2 "$WORK"
hook() { fleetnet_cleanup_dpdk; rm -rf "$WORK"; }
netlib_trap hook

fleetnet_up >"$WORK/net.log" 2>&1 || { cat "$WORK/net.log" >&2; echo "failover: the namespaces could not be built" >&2; exit 1; }
fleetnet_start_etcd || { tail "$WORK/etcd.log" >&2; echo "failover: etcd did not start" >&2; exit 1; }
for i in 0 1 2; do fleetnet_relay_profile "$i" "$WORK/relay-$i.toml" 1 10; done
has_key() { [[ -n "$(fl_ectl get --print-value-only "/stentor/relays/$1" 2>/dev/null)" ]]; }
sees() {   # RELAYS...: both directors' views hold exactly these
  local want got n
  want=$(printf '%s\n' "$@" | sort | paste -sd,)
  for n in 1 2; do
    got=$(nl_ns_exec "$FL_NS_CTL" curl -s -m 2 --cacert "$FL_DIR_CA" -H "Authorization: Bearer $FL_DIRECTOR_TOKEN" "$(fl_director_url "$n")/v1/registry" \
          | jq -r '[.relays[].id] | sort | join(",")' 2>/dev/null || true)
    [[ "$got" == "$want" ]] || return 1
  done
}
wait_for() { local n=$(( $1 * 10 )); shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done; return 1; }

fleetnet_start_relay 1 "$WORK/relay-1.log" || exit 1
fleetnet_start_relay 0 "$WORK/relay-0.log" || exit 1
fleetnet_start_director 1 || exit 1
fleetnet_start_director 2 || exit 1
wait_for 10 sees origin-1 edge-1 || { echo "failover: the directors do not see origin-1 and edge-1" >&2; exit 1; }
fleetnet_warm_trunks 1 || { echo "failover: no trunk to edge-1" >&2; exit 1; }
ip netns exec "$FL_NS_SPK" ffmpeg -hide_banner -nostdin -loglevel warning -re \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=600" -ac 2 -c:a libopus -b:a 64k -frame_duration 20 \
  -application audio -f rtp -payload_type 111 -ssrc 1234 \
  "rtp://$FL_ORIGIN_IP:$FL_SESSION_PORT?pkt_size=1200&localrtpport=5004" >"$WORK/speaker.log" 2>&1 &
netlib_track $!

for ((k = 0; k < N; k++)); do fleetnet_start_listener "$k" 600; done
joined() { local k; for ((k = 0; k < N; k++)); do grep -q 'join: joined via' "$WORK/lst-$k.err" 2>/dev/null || return 1; done; }
wait_for 30 joined || { echo "failover: not every listener joined edge-1" >&2; exit 1; }
fleetnet_start_relay 2 "$WORK/relay-2.log" || exit 1
wait_for 10 sees origin-1 edge-1 edge-2 || { echo "failover: the directors do not see edge-2" >&2; exit 1; }
if (( ! COLD )); then fleetnet_warm_trunks 2 || { echo "failover: no trunk to edge-2" >&2; exit 1; }; fi
sleep 2   # audio flowing everywhere; edge-2's origin trunk up

kill -KILL "${FL_PID[1]}"
wait "${FL_PID[1]}" 2>/dev/null || true
moved() { local k; for ((k = 0; k < N; k++)); do grep -q '^FAILOVER .*gap_s=[0-9]' "$WORK/lst-$k.out" 2>/dev/null || return 1; done; }
wait_for 20 moved || true
sleep 0.5
for ((k = 0; k < N; k++)); do kill -INT "${FL_LPID[k]}" 2>/dev/null || true; done
for ((k = 0; k < N; k++)); do wait "${FL_LPID[k]}" 2>/dev/null || true; done

gaps=$(cat "$WORK"/lst-*.out | sed -n 's/^FAILOVER .* gap_s=\([0-9.]*\) .*/\1/p' | sort -n)
detects=$(cat "$WORK"/lst-*.out | sed -n 's/^FAILOVER .* detect_s=\([0-9.]*\) .*/\1/p' | sort -n)
without=$(cat "$WORK"/lst-*.out | grep -c '^FAILOVER .*gap_s=none' || true)
moved_n=$(grep -c . <<<"$gaps" || true)
# Nearest-rank percentiles over the sorted gaps.
pct() { awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "na"; exit } i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print v[i] }'; }
p50=$(pct 50 <<<"$gaps"); p99=$(pct 99 <<<"$gaps"); max=$(pct 100 <<<"$gaps"); d50=$(pct 50 <<<"$detects")
echo "failover: edge-1 SIGKILLed under $N listeners (lease_ttl_s 1, --failover-after 1, trunks $FL_TRUNKS, edge-2 $( ((COLD)) && echo cold || echo 'carrying the session')): $moved_n moved, $without without audio"
echo "failover: audio gap p50 $p50 s, p99 $p99 s, max $max s (silence noticed after a median $d50 s)"
echo "FAILOVER_BENCH listeners=$N cold=$COLD moved=$moved_n without_audio=$without p50_s=$p50 p99_s=$p99 max_s=$max detect_p50_s=$d50"
