#!/usr/bin/env bash
# dpdk-dumpcap against stentord (docs/capture.md, "dpdk-dumpcap"): a
# hugepage profile with capture.pdump = true, a real ffmpeg stream through
# it, and DPDK's own dpdk-dumpcap attaching as a secondary process and
# writing 30 packets (or a few more: it stops at a burst's end) of port 0;
# tshark reads them as the speaker's RTP in and the replicas out. Then the refusal that goes with it: the same profile
# without hugepages fails `stentord --check` naming capture.pdump.
#
# Hugepages: the machines this runs on have none reserved, so the test
# reserves what it needs (vm.nr_hugepages), mounts its own hugetlbfs and
# puts both back on exit. Where that is impossible (not root, no memory) it
# prints "# skipped: ..." and no PASS.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 60 s).
#
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
T="e2e_pdump"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces, hugepages)"; exit 1
fi
[[ -x "$STENTORD" ]] || { fail "${T}_setup" "$STENTORD not built"; exit 1; }
for t in tshark ffmpeg dpdk-dumpcap; do
  command -v "$t" >/dev/null || { fail "${T}_setup" "$t not installed (scripts/deps.sh)"; exit 1; }
done

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
HUGE="$WORK/huge"
PAGES_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
MOUNTED=0
e2e_hook() {
  if (( MOUNTED )); then
    rm -f "$HUGE"/* 2>/dev/null || true
    umount "$HUGE" 2>/dev/null || true
  fi
  echo "$PAGES_BEFORE" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
  rm -rf "$WORK"
}
netlib_trap e2e_hook

# 128 MB of EAL memory in 2 MB pages, and some room.
NEED=96
free_pages=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
if (( free_pages < NEED )); then
  echo $((PAGES_BEFORE + NEED - free_pages)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
  free_pages=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
fi
if (( free_pages < NEED )); then
  echo "# skipped: only $free_pages free 2 MB hugepages and vm.nr_hugepages could not give $NEED"
  exit 0
fi
mkdir -p "$HUGE"
if ! mount -t hugetlbfs -o pagesize=2M nodev "$HUGE"; then
  echo "# skipped: cannot mount hugetlbfs"
  exit 0
fi
MOUNTED=1

if ! netlib_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

sed -e 's/^hugepages = false/hugepages = true/' -e 's/^memory_mb = 512/memory_mb = 128/' \
    -e 's/^stats_interval_s = 5/stats_interval_s = 0/' configs/dev-veth.toml >"$WORK/relay.toml"
printf '\n[capture]\npdump = true\ndir = "%s"\n' "$WORK/captures" >>"$WORK/relay.toml"

# The refusal first: no hugepages, no secondary process.
sed -e 's/^hugepages = true/hugepages = false/' "$WORK/relay.toml" >"$WORK/nohuge.toml"
rc=0
"$STENTORD" --check -c "$WORK/nohuge.toml" >"$WORK/check.log" 2>&1 || rc=$?
if (( rc == 1 )) && grep -q 'capture.pdump: dpdk-dumpcap attaches as a DPDK secondary process, which needs eal.hugepages = true' "$WORK/check.log"; then
  pass "${T}_check_refuses_pdump_without_hugepages"
else
  cat "$WORK/check.log" >&2
  fail "${T}_check_refuses_pdump_without_hugepages" "stentord --check exit $rc"
fi

RELAY_LOG="$WORK/stentord.log"
if ! netlib_start_relay "$BUILD_DIR" "$WORK/relay.toml" 40 "$RELAY_LOG" 20; then
  fail "${T}_relay_ready" "stentord (hugepages, pdump) not ready"; exit 1
fi
pass "${T}_relay_ready"

netlib_speaker_cmd 15
"${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"
sleep 1

# dpdk-dumpcap: a secondary process of the relay's file prefix, port 0,
# both directions, 30 packets.
rc=0
timeout 20 ip netns exec "$NL_NS_RELAY" dpdk-dumpcap --file-prefix="stentor-$NL_P" -i 0 -c 30 -q \
  -w "$WORK/dump.pcapng" >"$WORK/dumpcap.log" 2>&1 || rc=$?
sed 's/^/# [dumpcap] /' "$WORK/dumpcap.log" | grep -v 'cannot be used\|not driven by the primary' | head -5
if (( rc == 0 )) && [[ -s "$WORK/dump.pcapng" ]]; then
  tshark -r "$WORK/dump.pcapng" -d udp.port==40000,rtp -T fields -E separator=/t \
    -e ip.src -e ip.dst -e udp.dstport -e rtp.p_type -e rtp.ssrc -e icmp.type >"$WORK/d.tsv" 2>"$WORK/tshark.err" || true
  n=$(wc -l <"$WORK/d.tsv")
  in=$(awk -F'\t' '$1 == "198.18.0.10" && $2 == "198.18.0.1" && $3 == 40000 && $4 == 111 && $5 == "0x000004d2"' "$WORK/d.tsv" | wc -l)
  out=$(awk -F'\t' '$1 == "198.18.0.1" && $2 ~ /^198\.18\.0\.2[123]$/ && $3 == 5004 && $4 == 111 && $5 == "0x000004d2"' "$WORK/d.tsv" | wc -l)
  # (An ICMP error quotes the UDP header it answers: tshark decodes that
  # as RTP too, so ICMP is counted apart.)
  rtp=$(awk -F'\t' '$4 != "" && $6 == ""' "$WORK/d.tsv" | wc -l)
  echo "# dpdk-dumpcap: $n packets read by tshark: $in speaker RTP in, $out replicas out, $((n - rtp)) not RTP"
  # dumpcap stops at a burst boundary past -c. Every RTP packet on the port
  # is the stream: the speaker's in, its replicas out (the rest are the
  # listeners' ICMP port-unreachable answers: nothing listens on 5004).
  if (( n >= 30 && in > 0 && out > 0 && rtp == in + out )); then
    pass "${T}_dumpcap_sees_the_stream"
  else
    sed 's/^/[tshark] /' "$WORK/tshark.err" >&2
    fail "${T}_dumpcap_sees_the_stream" "$n packets (want >= 30), $in RTP in, $out replicas out, $rtp RTP"
  fi
else
  cat "$WORK/dumpcap.log" >&2
  fail "${T}_dumpcap_sees_the_stream" "dpdk-dumpcap exited $rc"
fi

netlib_stop_pid "$SPK_PID" INT 5
netlib_stop_pid "$RELAY_PID" INT 15
exit $(( FAILS > 0 ))
