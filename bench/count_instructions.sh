#!/usr/bin/env bash
# Instructions per replica on the fan-out lcore, by session size: valgrind
# --tool=callgrind on `fanout_harness --inline-packets` (one thread, the
# harness feeds bursts of messages and polls the worker until it is idle).
# Only what runs inside dp::worker_poll is counted: ingress, fan-out, TX
# including the PMD's tx_burst; the harness's own feeding is not. Two runs per
# size (K and 3K packets) and their difference, so set-up and warm-up cancel.
# Deterministic: the figures do not depend on the machine's load, which is
# why they guide performance work on a shared machine (docs/performance.md).
#
#   bench/count_instructions.sh BUILD_DIR [sizes...]     (default 10 100 1000 10000 1000000)
#   bench/count_instructions.sh BUILD_DIR mix            the Zipf mix of workload_harness, scaled to
#                                                        1 000 sessions and 200 000 listeners
#
# `mix` runs `workload_harness --part mix --inline-ms` (virtual time: the
# speaker packets due each millisecond arrive through the worker's RX queue
# and the real ingress, the worker is polled until idle, joins and leaves
# every 100 ms): instructions per replica of the mix, without overload. The
# harness's RX callback runs inside worker_poll; its cost is printed apart and
# taken out of the figure.
#
# BUILD_DIR must hold a build without AVX-512 instructions: valgrind 3.19
# (Debian 12) cannot decode them, and the default -march=native emits them
# on a CPU that has them. For example:
#   meson setup build-cg -Dcpu_arch=x86-64-v3 -Ddebug=true -Db_ndebug=true
#   ninja -C build-cg bench/fanout_harness
# Environment: BURST (messages per feed, default 32), TOP (functions listed
# per size, default 6; 0 = none), FAMILY (ipv4 or ipv6: the listeners' family,
# fanout_harness --family), KEEP=1 keeps the callgrind files in $TMPDIR.
set -euo pipefail

BUILD_DIR=${1:?usage: $0 BUILD_DIR [sizes...]}
shift
sizes=("$@")
((${#sizes[@]})) || sizes=(10 100 1000 10000 1000000)
BURST=${BURST:-32}
TOP=${TOP:-6}
bin="$BUILD_DIR/bench/fanout_harness"
[[ -x "$bin" ]] || { echo "$bin not built" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind not installed (scripts/deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stentor-cg.XXXXXX")
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$tmp"' EXIT

run() {   # size packets sessions -> callgrind file; prints replicas_out
    local n=$1 k=$2 s=$3 out="$tmp/cg.$1.$2"
    valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect='stentor::dp::worker_poll(*' \
        "$bin" --listeners "$n" --sessions "$s" --inline-packets "$k" --inline-burst "$BURST" ${FAMILY:+--family "$FAMILY"} 2>"$out.err" |
        sed -n 's/.*replicas_out=\([0-9]*\).*/\1/p'
    grep -q "Unrecognised instruction" "$out.err" && { echo "valgrind cannot run $bin (AVX-512? see above)" >&2; exit 1; }
    return 0
}

total() { callgrind_annotate --auto=no "$1" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,; }

if [[ "${sizes[0]}" == mix ]]; then
    wl="$BUILD_DIR/bench/workload_harness"
    [[ -x "$wl" ]] || { echo "$wl not built" >&2; exit 1; }
    MIX_ARGS=${MIX_ARGS:---mix-sessions 1000 --mix-listeners 200000}
    declare -A rep
    for ms in 100 300; do
        out="$tmp/cg.mix.$ms"
        # shellcheck disable=SC2086
        valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
            --toggle-collect='stentor::dp::worker_poll(*' \
            "$wl" --part mix --inline-ms "$ms" $MIX_ARGS 2>"$out.err" >"$out.log" || { cat "$out.log" "$out.err" >&2; exit 1; }
        grep -q "Unrecognised instruction" "$out.err" && { echo "valgrind cannot run $wl (AVX-512?)" >&2; exit 1; }
        rep[$ms]=$(sed -n 's/.*replicas_out=\([0-9]*\).*/\1/p' "$out.log")
        grep "^# mix\|^PART" "$out.log" | sed 's/^/# /'
    done
    # The ethdev callbacks the harness installs (its packet source and the
    # latency probe's TX hook), inclusive.
    incl() { callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$1" 2>/dev/null |
             awk '/rte_eth_call_(rx|tx)_callbacks/ { gsub(",", "", $1); s += $1 } END { print s + 0 }'; }
    a=$(total "$tmp/cg.mix.100"); b=$(total "$tmp/cg.mix.300")
    ca=$(incl "$tmp/cg.mix.100"); cb=$(incl "$tmp/cg.mix.300")
    awk -v a="$a" -v b="$b" -v ca="${ca:-0}" -v cb="${cb:-0}" -v ra="${rep[100]}" -v rb="${rep[300]}" 'BEGIN {
        n = rb - ra
        printf "mix instructions_per_replica=%.2f (the harness ethdev callbacks: %.2f more, not counted) replicas=%d\n", (b - a - (cb - ca)) / n, (cb - ca) / n, n }'
    exit 0
fi

echo "# instructions per replica inside worker_poll (callgrind, burst $BURST, $(basename "$BUILD_DIR"))"
for n in "${sizes[@]}"; do
    # about 300 k replicas between the two runs; at least one burst
    k=$(( 150000 / n )); (( k < BURST )) && (( n < 150000 / BURST )) && k=$BURST
    (( k < 1 )) && k=1
    s=1; (( n <= 10000 )) && s=4
    r1=$(run "$n" "$k" "$s"); r2=$(run "$n" $((3 * k)) "$s")
    i1=$(total "$tmp/cg.$n.$k"); i2=$(total "$tmp/cg.$n.$((3 * k))")
    awk -v n="$n" -v a="$i1" -v b="$i2" -v ra="$r1" -v rb="$r2" -v k="$k" \
        'BEGIN { printf "listeners=%d instructions_per_replica=%.2f packets=%d replicas=%d\n", n, (b - a) / (rb - ra), 2 * k, rb - ra }'
    if (( TOP > 0 )); then
        /usr/bin/python3 - "$tmp/cg.$n.$k" "$tmp/cg.$n.$((3 * k))" "$((r2 - r1))" "$TOP" <<'PY'
import re, subprocess, sys
def load(f):
    out = subprocess.run(['callgrind_annotate', '--auto=no', '--inclusive=no', '--threshold=100', f],
                         capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        m = re.match(r'\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S*?):(.*)$', line)
        if not m or 'PROGRAM TOTALS' in line:
            continue
        name = re.sub(r'\s*\[[^\]]*\]$', '', m.group(3)).replace('(anonymous namespace)::', '')
        name = re.sub(r'\(.*', '', name)
        d[name] = d.get(name, 0) + int(m.group(1).replace(',', ''))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
per = float(sys.argv[3])
rows = sorted(((b.get(k, 0) - a.get(k, 0)) / per, k) for k in set(a) | set(b))
for v, k in reversed(rows[-int(sys.argv[4]):]):
    print(f'    {v:8.2f}  {k[-90:]}')
PY
    fi
done
