#!/usr/bin/env bash
# The benchmark report (scripts/run-bench.sh + scripts/bench-report.py,
# docs/performance.md "The report"), tested two ways:
#   1. real: scripts/run-bench.sh runs fanout_harness alone at tiny sizes
#      (100 and 1000 listeners, 2 x 0.3 s, 20 timed packets, no testpmd
#      reference: a few seconds) into a report directory of the test's own;
#      the report's fan-out and latency tables carry exactly the medians and
#      quantiles of the harness's JSON lines, its plots are SVG, and what was
#      not run is listed as not measured.
#   2. synthetic (made-up numbers, labelled so in the files): drop, joins,
#      join and Google Benchmark inputs and a RESULT-only log, so that every
#      section of the generator runs: each shows its numbers, the drop ratio
#      is computed, nothing is listed as not measured.
# Prints "PASS <name>" / "FAIL <name> <reason>" lines. Bounded (< 30 s).
#
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
PY=/usr/bin/python3
T="tools_bench_report"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

[[ -x "$BUILD_DIR/bench/fanout_harness" ]] || { fail "${T}_setup" "$BUILD_DIR/bench/fanout_harness not built"; exit 1; }
"$PY" -c 'import matplotlib' 2>/dev/null || { fail "${T}_setup" "python3-matplotlib not installed (scripts/deps.sh)"; exit 1; }

WORK=$(mktemp -d /tmp/stentor-bench-report.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# ---- 1. a real, tiny run through run-bench.sh --------------------------------
rc=0
BENCH_ONLY=fanout_harness BENCH_REPORT_DIR="$WORK/real" BENCH_LABEL="tools_bench_report: tiny real run" \
  BENCH_ARGS_fanout_harness="--listeners 100 1000 --reps 2 --window 0.3 --latency-samples 20 --no-reference" \
  timeout 60 bash scripts/run-bench.sh "$BUILD_DIR" >"$WORK/run.log" 2>&1 || rc=$?
if (( rc == 0 )) && [[ -s "$WORK/real/report.md" && -s "$WORK/real/data/fanout_harness.jsonl" ]]; then
  pass "${T}_run_bench_writes_a_report"
else
  tail -20 "$WORK/run.log" >&2
  fail "${T}_run_bench_writes_a_report" "run-bench.sh exit $rc"
  exit 1
fi

# check.py REPORT_DIR: the report's tables against the JSON lines it was made
# from. Prints one line per problem; silent when all agree.
cat >"$WORK/check.py" <<'PYEOF'
import json, math, os, re, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
mode = sys.argv[2]
rep = open(os.path.join(d, "report.md")).read()
recs = []
for f in os.listdir(os.path.join(d, "data")):
    if f.endswith(".jsonl"):
        recs += [json.loads(l) for l in open(os.path.join(d, "data", f)) if l.strip()]
def num(n): return f"{n:,}".replace(",", " ")
def q(s, p):
    s = sorted(s); k = (len(s) - 1) * p; lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
problems = []
fan = [r for r in recs if r["bench"] == "fanout" and r["kind"] == "fanout"]
lat = [r for r in recs if r["bench"] == "fanout" and r["kind"] == "latency"]
if mode == "real" and sorted(r["listeners"] for r in fan) != [100, 1000]:
    problems.append("fanout_harness wrote %s, not 100 and 1000 listeners" % [r["listeners"] for r in fan])
for r in fan:
    s = r["mpps"]
    row = f"| {num(r['listeners'])} | {s['median']:.2f} M | {s['min']:.2f} – {s['max']:.2f} | {len(s['samples'])} |"
    if row not in rep: problems.append("no fan-out row " + row)
for r in lat:
    s = r["ms"]["samples"]
    row = f"| {num(r['listeners'])} | {len(s)} | {q(s, .5):.3f} | {q(s, .9):.3f} | {q(s, .99):.3f} | {max(s):.3f} |"
    if row not in rep: problems.append("no latency row " + row)
plots = re.findall(r"!\[[^]]*\]\(([^)]+)\)", rep)
for p in plots:
    try:
        root = ET.parse(os.path.join(d, p)).getroot()
        if not root.tag.endswith("svg"): problems.append(p + " is not SVG")
    except Exception as e:
        problems.append(f"{p}: {e}")
want = {"real": ["fanout.svg", "latency.svg"], "synthetic": ["fanout.svg", "drop.svg", "joins.svg", "latency.svg"]}[mode]
if sorted(plots) != sorted(want): problems.append(f"plots {plots}, want {want}")
if mode == "real":
    for m in ("drop rate", "joins", "fan-out reference (dpdk-testpmd txonly)"):
        if not re.search(r"## Not measured in this run[\s\S]*- " + re.escape(m), rep):
            problems.append("not listed as not measured: " + m)
    if "CPUs online" not in rep:
        problems.append("no machine line")
if mode == "synthetic":
    for s in ("| Stentor, unknown flow | 40.00 | 38.00 – 41.00 | 7.5 % |", "Unknown-flow drop / testpmd io: **0.800**",
              "| joins in the control plane (bulk action + publish) | 4.59 M |",
              "| token verifications, one core (median) | 1.34 M |",
              "| `audio_harness` | mixer_speakers_per_core=685 recorded_sessions=500 lost=0 |",
              "| `bench_synthetic` | `bm_replica/80` | 22.5 ns | 44.40 M |",
              "| testpmd txonly | 58.80 M | 55.20 – 59.80 | 3 samples |"):
        if s not in rep: problems.append("missing: " + s)
    if "Not measured" in rep: problems.append("a section is listed as not measured")
print("\n".join(problems))
PYEOF

out=$("$PY" "$WORK/check.py" "$WORK/real" real)
if [[ -z "$out" ]]; then
  pass "${T}_real_tables_match_the_json"
else
  echo "$out" >&2
  fail "${T}_real_tables_match_the_json" "$(head -1 <<<"$out")"
fi

# ---- 2. synthetic inputs: every section ---------------------------------------
S="$WORK/synthetic/data"
mkdir -p "$S"
cp "$WORK/real/data/fanout_harness.jsonl" "$WORK/real/data/machine.json" "$S/"
# SYNTHETIC numbers, made up for this test only: never a measurement.
cat >>"$S/fanout_harness.jsonl" <<'EOF'
{"bench":"fanout","kind":"txonly","synthetic":true,"frame":134,"mpps":{"median":58.8,"min":55.2,"max":59.8,"samples":[55.2,58.8,59.8]}}
EOF
cat >"$S/drop_harness.jsonl" <<'EOF'
{"bench":"drop","kind":"testpmd_io","synthetic":true,"frame":134,"mpps":{"median":50.0,"min":49.0,"max":51.0,"samples":[49.0,50.0,51.0]}}
{"bench":"drop","kind":"unknown_flow","synthetic":true,"frame":134,"mpps":{"median":40.0,"min":38.0,"max":41.0,"samples":[38.0,40.0,41.0]}}
{"bench":"drop","kind":"garbage","synthetic":true,"frame":134,"mpps":{"median":46.0,"min":45.0,"max":47.0,"samples":[45.0,46.0,47.0]}}
{"bench":"drop","kind":"result","synthetic":true,"drop_mpps":40.0,"testpmd_io_mpps":50.0,"ratio":0.8,"garbage_mpps":46.0}
EOF
cat >"$S/joins_harness.jsonl" <<'EOF'
{"bench":"joins","kind":"control_plane","synthetic":true,"joins":1000000,"seconds":0.2179,"per_s":4590000}
{"bench":"joins","kind":"http_bulk","synthetic":true,"joins":1000000,"seconds":1.6,"per_s":625000,"lost":0}
{"bench":"joins","kind":"http_single","synthetic":true,"clients":8,"joins":8000,"seconds":0.64,"per_s":12500,"failed":0}
EOF
cat >"$S/join_harness.jsonl" <<'EOF'
{"bench":"join","kind":"verify","synthetic":true,"per_s":{"median":1344285,"min":1210000,"max":1380000,"samples":[1210000,1344285,1380000]}}
{"bench":"join","kind":"hmac_ref","synthetic":true,"per_s":{"median":449776,"min":430000,"max":480000,"samples":[430000,449776,480000]}}
{"bench":"join","kind":"flash","synthetic":true,"joins":1000000,"offered":1000000,"seconds":4.327,"per_s":231107,"lost":0}
EOF
printf 'synthetic log for tools_bench_report\nRESULT mixer_speakers_per_core=685 recorded_sessions=500 lost=0\n' >"$S/audio_harness.log"
cat >"$S/bench_synthetic.json" <<'EOF'
{"context":{"synthetic":true},"benchmarks":[{"name":"bm_replica/80","run_type":"iteration","real_time":22.5,"time_unit":"ns","items_per_second":44400000}]}
EOF
rc=0
"$PY" scripts/bench-report.py "$S" -o "$WORK/synthetic" --label "SYNTHETIC inputs (tools_bench_report)" >"$WORK/syn.log" 2>&1 || rc=$?
out=$( (( rc == 0 )) && "$PY" "$WORK/check.py" "$WORK/synthetic" synthetic || echo "bench-report.py exit $rc: $(cat "$WORK/syn.log")")
if [[ -z "$out" ]]; then
  pass "${T}_every_section_from_synthetic_inputs"
else
  echo "$out" >&2
  fail "${T}_every_section_from_synthetic_inputs" "$(head -1 <<<"$out")"
fi

# A bad input stops the generator with the file and line, not a half report.
printf '{"bench":"fanout"\n' >"$S/broken.jsonl"
rc=0
"$PY" scripts/bench-report.py "$S" -o "$WORK/broken" >"$WORK/broken.log" 2>&1 || rc=$?
if (( rc != 0 )) && grep -q 'broken.jsonl:1: not JSON' "$WORK/broken.log" && [[ ! -e "$WORK/broken/report.md" ]]; then
  pass "${T}_bad_input_names_file_and_line"
else
  cat "$WORK/broken.log" >&2
  fail "${T}_bad_input_names_file_and_line" "exit $rc"
fi
exit $(( FAILS > 0 ))
