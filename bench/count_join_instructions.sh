#!/usr/bin/env bash
# Instructions per verified join request on the RX lcore (issue 11's full
# path: classifier, STUN parse and FINGERPRINT, token decode, budget, token
# MAC, MESSAGE-INTEGRITY, the hand-off to join_ring, mbuf handling):
# valgrind --tool=callgrind on `join_harness --count-verified K`, which
# cycles 4096 valid requests RX ring -> worker -> join_ring -> RX ring on the
# main lcore. Only what runs inside dp::worker_poll is counted (the
# harness's ring moves are not). Two runs, K and 3K, and their difference,
# so set-up and warm-up cancel. Deterministic, so it guides performance work
# on a shared machine where timings do not (docs/performance.md).
#
#   bench/count_join_instructions.sh BUILD_DIR [lanes|single|rtp|drop]   (default lanes)
#
# lanes: MESSAGE-INTEGRITY in ipsec-mb's lanes. ipsec-mb picks its code at
# run time from CPUID, and under valgrind it gets AVX2 (8 lanes), not the
# AVX-512 the relay uses on this machine: compare like with like.
# single: MESSAGE-INTEGRITY one by one (SHA-NI).
# rtp: per IPv4 speaker packet instead (`join_harness --count-rtp K`: the
# registered speaker's packets through the same RX stage to one listener),
# and drop: per unknown-flow frame dropped (`drop_harness --count-packets K`,
# net_null): the RX stage is shared, so a change made for joins is counted
# on both.
#
# BUILD_DIR must hold a build without AVX-512 instructions (valgrind 3.19
# cannot decode them), e.g.
#   meson setup build-cg -Dcpu_arch=x86-64-v3 -Ddebug=true -Db_ndebug=true
#   ninja -C build-cg bench/join_harness bench/drop_harness
# Environment: K (default 20000), TOP (functions listed, default 14; 0 =
# none), KEEP=1 keeps the callgrind files in $TMPDIR.
set -euo pipefail

BUILD_DIR=${1:?usage: $0 BUILD_DIR [lanes|single]}
MODE=${2:-lanes}
K=${K:-20000}
TOP=${TOP:-14}
bin="$BUILD_DIR/bench/join_harness"
[[ "$MODE" == drop ]] && bin="$BUILD_DIR/bench/drop_harness"
[[ -x "$bin" ]] || { echo "$bin not built" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind not installed (scripts/deps.sh)" >&2; exit 1; }
case "$MODE" in
lanes | single) args=(--count-mi "$MODE" --count-verified) what="verified join request" field=verified ;;
rtp) args=(--count-rtp) what="IPv4 speaker packet (one listener)" field=rtp_in ;;
drop) args=(--count-packets) what="unknown-flow frame dropped" field=rx ;;
*) echo "mode: lanes, single, rtp or drop" >&2; exit 2 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stentor-cgj.XXXXXX")
[[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$tmp"' EXIT

run() {   # K -> callgrind file; prints the count of what was measured
    local k=$1 out="$tmp/cg.$1"
    valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect='stentor::dp::worker_poll(*' \
        "$bin" "${args[@]}" "$k" >"$out.log" 2>"$out.err" ||
        { cat "$out.log" "$out.err" >&2; exit 1; }
    grep -q "Unrecognised instruction" "$out.err" && { echo "valgrind cannot run $bin (AVX-512? see above)" >&2; exit 1; }
    sed -n "s/^COUNT $field=\([0-9]*\).*/\1/p" "$out.log"
}

total() { callgrind_annotate --auto=no "$1" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,; }

v1=$(run "$K"); v2=$(run $((3 * K)))
i1=$(total "$tmp/cg.$K"); i2=$(total "$tmp/cg.$((3 * K))")
echo "# instructions per $what inside worker_poll (callgrind, $MODE, $(basename "$BUILD_DIR"))"
awk -v a="$i1" -v b="$i2" -v va="$v1" -v vb="$v2" -v m="$MODE" -v f="$field" \
    'BEGIN { printf "%s mode=%s instructions_per_%s=%.1f %s=%d\n", (m == "lanes" || m == "single") ? "join" : m, m, f, (b - a) / (vb - va), f, vb - va }'
# Under valgrind OpenSSL finds no SHA-NI and ipsec-mb no AVX-512: the SHA
# compressions run other code than on the machine, so the figure that
# guides work on the rest of the path leaves them out (libcrypto's and
# libIPSec_MB's own functions: SHA*_Transform and the lanes).
/usr/bin/python3 - "$tmp/cg.$K" "$tmp/cg.$((3 * K))" "$((v2 - v1))" "$TOP" "$MODE" <<'PY'
import re, subprocess, sys
def load(f):
    out = subprocess.run(['callgrind_annotate', '--auto=no', '--inclusive=no', '--threshold=100', f],
                         capture_output=True, text=True).stdout
    d, lib = {}, {}
    for line in out.splitlines():
        m = re.match(r'\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S*?):(.*)$', line)
        if not m or 'PROGRAM TOTALS' in line:
            continue
        obj = re.search(r'\[([^\]]*)\]\s*$', m.group(3))
        obj = obj.group(1) if obj else ''
        name = re.sub(r'\s*\[[^\]]*\]$', '', m.group(3)).replace('(anonymous namespace)::', '')
        name = re.sub(r'\(.*', '', name)
        if not name.startswith('stentor') and obj:
            name = f'{name} ({obj.rsplit("/", 1)[-1]})'
        n = int(m.group(1).replace(',', ''))
        d[name] = d.get(name, 0) + n
        if 'libcrypto' in obj or 'libIPSec_MB' in obj:
            lib[name] = lib.get(name, 0) + n
    return d, lib
(a, la), (b, lb) = load(sys.argv[1]), load(sys.argv[2])
per = float(sys.argv[3])
rows = sorted(((b.get(k, 0) - a.get(k, 0)) / per, k) for k in set(a) | set(b))
compress = (sum(lb.values()) - sum(la.values())) / per
total = (sum(b.values()) - sum(a.values())) / per
if compress != 0 or sys.argv[5] in ('lanes', 'single'):
    print(f'join outside_compressions={total - compress:.1f} compressions={compress:.1f} (libcrypto, libIPSec_MB)')
for v, k in reversed(rows[-int(sys.argv[4]):]):
    if int(sys.argv[4]) > 0:
        print(f'    {v:8.2f}  {k[-90:]}')
PY
