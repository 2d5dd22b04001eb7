#!/usr/bin/env bash
# End-to-end: stentord as an operator runs it (issue 14 items 1 and 2).
#  - --version; --check --host on this host, on a fake good host and a fake
#    bad one (--host-root: a /sys and /proc tree built here);
#  - start-up failures name the key and the fix, never DPDK's usage text
#    (an lcore this host lacks, hugepages it has none of, a prefix in use,
#    a directory for -c);
#  - the service side of systemd against a socket-level NOTIFY_SOCKET peer
#    (tests/tools/notify_peer.py; systemd is not PID 1 here, so no
#    systemd-run): READY=1 only once the API answers, WATCHDOG=1, RELOADING=1
#    and READY=1 on SIGHUP, STOPPING=1 on SIGTERM; the unit file passes
#    systemd-analyze verify;
#  - the log: timestamps and levels, audit lines for mutating calls without
#    the token, admission refusals per second, reopen on SIGHUP after a
#    logrotate-style rename; the DPDK runtime directory gone after exit;
#  - (root) a port's link follows its kernel interface, and a second relay
#    on an interface another one drives is refused.
# Bounded (< 60 s); stops only the processes it started.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T=e2e_ops
STENTORD="$BUILD_DIR/control/stentord"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
WORK=$(mktemp -d /tmp/stentor-e2e-ops.XXXXXX)
PIDS=()
NS=
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [[ -n "$NS" ]] && ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; }
check() { local name=$1; shift; if "$@"; then pass "${T}_$name"; else fail "${T}_$name" "${WHY:-}"; fi; }
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "stentord not built"; exit 1; fi
wait_for() {  # FILE PATTERN(ERE) TIMEOUT_DS
  local i; for ((i = 0; i < $3; i++)); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1
}

# --- --version ---------------------------------------------------------------
out=$("$STENTORD" --version 2>&1)
WHY="$out"
check version bash -c '[[ $0 == "stentord "*" ("*")"* && $0 == *"dpdk: DPDK 22.11"* && $0 == *"build: buildtype="*"cpu_arch="* ]]' "$out"

# --- --check --host on this host --------------------------------------------
out=$("$STENTORD" --check --host -c configs/bench-null.toml 2>&1); rc=$?
WHY="rc=$rc ${out:0:400}"
check host_check_real bash -c '[[ $1 == 0 && $0 == *"eal.lcores: lcores 0-1 exist"* && $0 == *"profile ok; host: 0 failed"* ]]' "$out" "$rc"

# --- fake hosts ----------------------------------------------------------------
fake_host() {  # DIR: the two-node host lab-x710-10g.toml runs on
  local r=$1 n
  mkdir -p "$r/sys/devices/system/cpu" "$r/proc/self" "$r/proc/irq/24" "$r/sys/kernel/iommu_groups/12" \
    "$r/sys/bus/pci/drivers/vfio-pci" "$r/sys/bus/pci/drivers/i40e" "$r/sys/bus/pci/devices/0000:3b:00.0"
  echo 0-23 >"$r/sys/devices/system/cpu/online"
  printf 'Name:\tstentord\nCpus_allowed_list:\t0-23\n' >"$r/proc/self/status"
  for n in 0 1; do
    mkdir -p "$r/sys/devices/system/node/node$n/hugepages/hugepages-2048kB"
    [[ $n == 0 ]] && echo 0-11 >"$r/sys/devices/system/node/node$n/cpulist" || echo 12-23 >"$r/sys/devices/system/node/node$n/cpulist"
    echo 2048 >"$r/sys/devices/system/node/node$n/hugepages/hugepages-2048kB/nr_hugepages"
    echo 2048 >"$r/sys/devices/system/node/node$n/hugepages/hugepages-2048kB/free_hugepages"
  done
  echo 'hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0' >"$r/proc/mounts"
  ln -s ../../../bus/pci/drivers/vfio-pci "$r/sys/bus/pci/devices/0000:3b:00.0/driver"
  ln -s ../../../kernel/iommu_groups/12 "$r/sys/bus/pci/devices/0000:3b:00.0/iommu_group"
  echo 0 >"$r/sys/bus/pci/devices/0000:3b:00.0/numa_node"
  echo 1-9 >"$r/sys/devices/system/cpu/isolated"
  echo 1-9 >"$r/sys/devices/system/cpu/nohz_full"
  echo 0 >"$r/proc/irq/24/smp_affinity_list"
  mkdir -p "$r/sys/kernel/mm/transparent_hugepage"
  echo 'always [madvise] never' >"$r/sys/kernel/mm/transparent_hugepage/enabled"
}
LAB="$WORK/lab.toml"
sed -e 's/^token = .*/token = "3f9c1d0be07a44c2b1e2f4a5d6c7b8a9"/' configs/lab-x710-10g.toml >"$LAB"
chmod 600 "$LAB"   # an inline token in a profile others can read is a warning
fake_host "$WORK/good"
out=$("$STENTORD" --check --host --host-root "$WORK/good" -c "$LAB" 2>&1); rc=$?
WHY="rc=$rc $out"
check host_check_good bash -c '[[ $1 == 0 && $0 == *": 0 failed, 0 warning(s)"* && $0 != *"FAIL  "* && $0 != *"warn  "* ]]' "$out" "$rc"
fake_host "$WORK/bad"
echo 0-1 >"$WORK/bad/sys/devices/system/cpu/online"
rm -rf "$WORK/bad/sys/devices/system/node/node0/hugepages"
ln -sfn ../../../bus/pci/drivers/i40e "$WORK/bad/sys/bus/pci/devices/0000:3b:00.0/driver"
echo 0-23 >"$WORK/bad/proc/irq/24/smp_affinity_list"
out=$("$STENTORD" --check --host --host-root "$WORK/bad" -c "$LAB" 2>&1); rc=$?
WHY="rc=$rc $out"
check host_check_bad bash -c '[[ $1 == 1 &&
  $0 == *"FAIL  $2:24: eal.lcores: lcores 2-9 do not exist on this host (CPUs 0-1)"* &&
  $0 == *"FAIL  $2:31: eal.hugepages: none reserved on NUMA node 0 — see README \"Hugepages\""* &&
  $0 == *"FAIL  $2:34: eal.pci_allow[0]: 0000:3b:00.0 is bound to i40e"*"dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"* &&
  $0 == *"warn  $2: host.irq: 1 IRQ(s) may run on worker lcores 1-9 (IRQ 24)"* ]]' "$out" "$rc" "$LAB"

# --- start-up failures on this host ---------------------------------------------
PORT=$(( 20000 + ($$ + 4409) % 20000 ))
P="$WORK/p.toml"
sed -e "s/^listen = .*/listen = \"127.0.0.1:$PORT\"/" -e 's/^stats_interval_s = 5/stats_interval_s = 0/' \
  configs/bench-null.toml >"$P"
no_usage() { [[ $1 != *"Usage:"* && $1 != *"EAL common options"* && $1 != *"EAL initialisation failed: Invalid argument"* ]]; }
NCPU=$(getconf _NPROCESSORS_CONF)
if (( NCPU < 120 )); then
  sed -e "s/^lcores = \[0, 1\]/lcores = [0, 1, $NCPU]/" "$P" >"$WORK/lcore.toml"
  out=$("$STENTORD" -c "$WORK/lcore.toml" --file-prefix "ops-lc-$$" 2>&1); rc=$?
  WHY="rc=$rc $out"
  if [[ $rc == 1 && $out == *"eal.lcores: lcore $NCPU does not exist on this host (CPUs 0-"* ]] && no_usage "$out"; then
    pass "${T}_startup_lcore"; else fail "${T}_startup_lcore" "$WHY"; fi
fi
if ! grep -qv '^0$' /sys/devices/system/node/node0/hugepages/hugepages-*/nr_hugepages 2>/dev/null; then
  sed -e 's/^hugepages = false/hugepages = true/' "$P" >"$WORK/huge.toml"
  out=$("$STENTORD" -c "$WORK/huge.toml" --file-prefix "ops-hp-$$" 2>&1); rc=$?
  WHY="rc=$rc $out"
  check startup_hugepages bash -c '[[ $1 == 1 && $0 == *"eal.hugepages: none reserved on NUMA node 0 — see README \"Hugepages\""* && $0 != *"Permission denied"* ]]' "$out" "$rc"
fi
out=$("$STENTORD" -c "$WORK" 2>&1); rc=$?
WHY="rc=$rc $out"
check startup_directory bash -c '[[ $1 == 1 && $0 == *"$2:1:1: file: is a directory"* ]]' "$out" "$rc" "$WORK"
# Anything but a small regular file is refused before it is read, by
# --check and at start (and by SIGHUP: the same loader). Before, /dev/zero
# was read until memory ran out and a FIFO until a writer came. Address
# space and time are bounded here so that a regression fails instead of
# eating the machine.
mkfifo "$WORK/fifo.toml"
{ cat "$P"; head -c 1048576 /dev/zero | tr '\0' '#'; echo; } >"$WORK/big.toml"
while read -r name file want; do
  for mode in check start; do
    args=(-c "$file"); [[ $mode == check ]] && args=(--check -c "$file")
    out=$( (ulimit -v 4194304; exec timeout -k 5 20 "$STENTORD" "${args[@]}" --file-prefix "ops-file-$$") 2>&1); rc=$?
    WHY="rc=$rc ${out:0:300}"
    check "profile_${name}_$mode" bash -c '[[ $1 == 1 && $0 == *"$2:1:1: file: $3"* ]]' "$out" "$rc" "$file" "$want"
  done
done <<ROWS
dev_zero /dev/zero is a character device; give a profile file (a regular file of at most 1048576 bytes)
fifo $WORK/fifo.toml is a FIFO; give a profile file
over_1mib $WORK/big.toml larger than 1048576 bytes (1 MiB): not a profile
ROWS

# Tables [limits] sizes that the host cannot give: one line naming the
# setting, its line and the bytes asked, exit 1, nothing left behind (EAL
# cleaned up, its runtime directory removed). Before, the start died of
# "stentord: std::bad_alloc". The host's memory is an address-space limit
# here (ulimit -v), so that the row is the same on every machine: the
# profile's own peak plus 64 MiB, under which the profile starts and the
# same profile with its speakers' policers at their ceiling
# (limits.max_speakers 1048576: over 64 MiB) cannot. One malloc arena: thread arenas reserve 64 MiB of
# address space each, as threads happen to need them.
export MALLOC_ARENA_MAX=1
"$STENTORD" -c "$P" --file-prefix "ops-peak-$$" --duration 30 >"$WORK/peak.log" 2>&1 &
PEAK_PID=$!
PIDS+=("$PEAK_PID")
wait_for "$WORK/peak.log" 'stentord: ready' 150
peak_kb=$(awk '/^VmPeak:/ { print $2 }' "/proc/$PEAK_PID/status" 2>/dev/null)
kill -TERM "$PEAK_PID"; wait "$PEAK_PID"
if [[ -z "$peak_kb" ]]; then
  fail "${T}_startup_tables_too_big" "no VmPeak: $(tail -3 "$WORK/peak.log")"
else
  limit_kb=$((peak_kb + 65536))
  out=$( (ulimit -v "$limit_kb"; exec "$STENTORD" -c "$P" --file-prefix "ops-fit-$$" --duration 1) 2>&1); rc=$?
  WHY="under ulimit -v $limit_kb: rc=$rc $(tail -3 <<<"$out")"
  check startup_fits_the_limit bash -c '[[ $1 == 0 && $0 == *"stentord: ready"* ]]' "$out" "$rc"
  sed -e 's/^max_speakers = 4096 /max_speakers = 1048576 /' "$P" >"$WORK/tables.toml"
  line=$(grep -n '^max_speakers = ' "$WORK/tables.toml" | cut -d: -f1)
  out=$( (ulimit -v "$limit_kb"; exec "$STENTORD" -c "$WORK/tables.toml" --file-prefix "ops-tbl-$$") 2>&1); rc=$?
  WHY="under ulimit -v $limit_kb: rc=$rc $out"
  check startup_tables_too_big bash -c '[[ $1 == 1 &&
    $0 == *"critical stentord: not started: $2:$3: limits.max_speakers: the speakers'"'"' policers cannot be allocated: limits.max_speakers 1048576 x 1 RX lcore(s) (dataplane.rx_lcores) x "*" B = "*" bytes ("*" MiB); lower limits.max_speakers or give the relay more memory"* &&
    $(grep -c " critical " <<<"$0") == 1 && $0 != *"bad_alloc"* && $0 != *"port null0"* &&
    ! -e /var/run/dpdk/ops-tbl-$4 && ! -e ${XDG_RUNTIME_DIR:-/tmp}/dpdk/ops-tbl-$4 ]]' "$out" "$rc" "$WORK/tables.toml" "$line" "$$"
fi
unset MALLOC_ARENA_MAX

# --- the service: sd_notify, watchdog, log, audit, reload, drain ---------------
PREFIX="ops-svc-$$"
SOCK="$WORK/notify.sock"
"$PY" tests/tools/notify_peer.py "$SOCK" --seconds 50 >"$WORK/notify.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/notify.log" LISTENING 50 || { fail "${T}_notify_peer" "did not start"; exit 1; }
LOG="$WORK/stentord.log"
NOTIFY_SOCKET="$SOCK" WATCHDOG_USEC=1000000 "$STENTORD" -c "$P" --file-prefix "$PREFIX" --duration 40 \
  --log-file "$LOG" >"$WORK/d.out" 2>&1 &
SVC=$!
PIDS+=("$SVC")
API="http://127.0.0.1:$PORT/api/v1"
TOKEN=bench-token-change-me-please
health_at_ready=no
for _ in $(seq 150); do
  if grep -q 'READY=1' "$WORK/notify.log"; then
    curl -sf -m 2 "$API/health" >/dev/null && health_at_ready=yes
    break
  fi
  # Before READY=1 the API may or may not answer; nothing to assert.
  sleep 0.1
done
WHY="health at READY=1: $health_at_ready; $(cat "$WORK/notify.log")"
check ready_when_api_answers [ "$health_at_ready" = yes ]
sleep 1.5
nwd=$(grep -c 'WATCHDOG=1' "$WORK/notify.log")
WHY="$nwd WATCHDOG=1 in 1.5 s at WATCHDOG_USEC=1000000"
check watchdog_pings [ "$nwd" -ge 2 ]

auth=(-H "Authorization: Bearer $TOKEN")
curl -s -o /dev/null "${auth[@]}" -X POST -d '{"ip":"198.18.5.5","port":5004}' "$API/sessions/1/listeners"
curl -s -o /dev/null "${auth[@]}" -X POST -d '{"ip":"198.18.5.5","port":5004}' "$API/sessions/1/listeners"
curl -s -o /dev/null -H "Authorization: Bearer wrong-token-0123456789" -X DELETE "$API/sessions/1?token=$TOKEN"
wait_for "$LOG" 'admission: refused 1 request\(s\) in the last second: exists 1' 30
WHY=$(grep -E 'audit|admission' "$LOG")
check audit_lines bash -c 'grep -qE "^[0-9-]{10}T[0-9:.]{12}[+-][0-9:]{5} info api: audit: 127\.0\.0\.1 POST /api/v1/sessions/1/listeners -> 20[12]$" "$0" &&
  grep -qE " warning api: audit: 127\.0\.0\.1 POST /api/v1/sessions/1/listeners -> 409 exists$" "$0" &&
  grep -qE " warning api: audit: 127\.0\.0\.1 DELETE /api/v1/sessions/1 -> 401 unauthorized$" "$0"' "$LOG"
check admission_refusals_per_second grep -q ' warning admission: refused 1 request(s) in the last second: exists 1' "$LOG"
WHY=$(grep -n "$TOKEN" "$LOG" "$WORK/d.out" | head -3)
check no_token_in_log bash -c '! grep -q "$1" "$0"' "$LOG" "$TOKEN"
check placeholder_token_warned grep -q 'warning start-up: .*api.token: a shipped placeholder' "$LOG"

# logrotate: rename, SIGHUP, the new file takes the next lines.
mv "$LOG" "$LOG.1"
kill -HUP "$SVC"
wait_for "$WORK/notify.log" 'READY=1\|STATUS=ready \(reloaded\)' 50
wait_for "$LOG" 'reload: .*nothing changed' 50
WHY="$(ls "$WORK") / $(cat "$LOG" 2>/dev/null | head -3)"
check log_reopened_on_hup bash -c 'grep -q "stentord: ready" "$0.1" && grep -q "reload: .*nothing changed" "$0" && ! grep -q "stentord: ready" "$0"' "$LOG"
WHY=$(cat "$WORK/notify.log")
check reload_notified bash -c 'awk "/RELOADING=1/ { r = NR } /READY=1/ && r && NR > r { ok = 1 } END { exit !ok }" "$0"' "$WORK/notify.log"

kill -TERM "$SVC"
wait "$SVC"; rc=$?
WHY="rc=$rc $(tail -3 "$WORK/notify.log")"
check stop_drains_and_notifies bash -c '[[ $1 == 0 ]] && grep -q STOPPING=1 "$0" && grep -q "stentord: draining" "$2"' "$WORK/notify.log" "$rc" "$LOG"
WHY=$(ls -la "/var/run/dpdk/$PREFIX" 2>&1)
check runtime_dir_removed bash -c '[[ ! -e /var/run/dpdk/$0 && ! -e ${XDG_RUNTIME_DIR:-/tmp}/dpdk/$0 ]]' "$PREFIX"

# --- the unit file ---------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  sed -e "s|@bindir@|$BUILD_DIR/control|g" packaging/systemd/stentord.service.in >"$WORK/stentord.service"
  out=$(systemd-analyze verify "$WORK/stentord.service" 2>&1); rc=$?
  WHY="rc=$rc $out"
  check unit_verifies [ "$rc" = 0 ]
fi

# --- (root) a port's link follows its interface; one relay per interface -----
if [[ $(id -u) -ne 0 ]]; then fail "${T}_link" "needs root (network namespaces)"; exit 1; fi
NS="stops$$"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip link add stv-relay netns "$NS" type veth peer name p-relay netns "$NS"
ip -n "$NS" link set stv-relay up
ip -n "$NS" link set p-relay up
V="$WORK/veth.toml"
sed -e 's/^stats_interval_s = 5/stats_interval_s = 0/' configs/dev-veth.toml >"$V"
ip netns exec "$NS" "$STENTORD" -c "$V" --file-prefix "ops-veth-$$" --duration 30 --log-file "$WORK/veth.log" \
  >"$WORK/veth.out" 2>&1 &
VPID=$!
PIDS+=("$VPID")
wait_for "$WORK/veth.log" 'stentord: ready' 150 || { fail "${T}_link" "relay not ready: $(tail -5 "$WORK/veth.log")"; exit 1; }
VTOKEN=$(awk -F'"' '/^token = /{ print $2 }' "$V")
link() { ip netns exec "$NS" curl -s -H "Authorization: Bearer $VTOKEN" http://127.0.0.1:8080/api/v1/ports | jq -r '.ports[0].link_up'; }
before=$(link)
ip -n "$NS" link set p-relay down   # the veth's carrier goes with its peer
wait_for "$WORK/veth.log" 'port lan0: link down' 30
after=$(link)
ip -n "$NS" link set p-relay up
wait_for "$WORK/veth.log" 'port lan0: link up' 30
again=$(link)
WHY="API link $before -> $after -> $again; $(grep 'port lan0' "$WORK/veth.log")"
check link_follows_interface bash -c '[[ $0 == true && $1 == false && $2 == true ]] &&
  grep -q " warning port lan0: link down" "$3" && grep -q " info port lan0: link up" "$3"' "$before" "$after" "$again" "$WORK/veth.log"
sed -e 's/^listen = .*/listen = "127.0.0.1:8081"/' "$V" >"$WORK/veth2.toml"
out=$(ip netns exec "$NS" "$STENTORD" -c "$WORK/veth2.toml" --file-prefix "ops-veth2-$$" --duration 5 2>&1); rc=$?
WHY="rc=$rc $out"
check second_relay_on_interface_refused bash -c '[[ $1 == 1 && $0 == *"port[0].device: interface stv-relay is driven by another stentord (pid $2)"* ]]' "$out" "$rc" "$VPID"
kill -TERM "$VPID"; wait "$VPID"
