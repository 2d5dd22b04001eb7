#!/usr/bin/python3
"""Stentor benchmark report: a Markdown summary and SVG plots from the
machine-readable outputs of a `make bench` run (docs/performance.md, "The
report").

    scripts/bench-report.py DATA_DIR [-o OUT_DIR] [--label TEXT]
    scripts/bench-report.py --machine-facts FILE [--build-dir DIR]   (run-bench.sh, before the harnesses)
    scripts/bench-report.py --machine-facts FILE --finish             (after them: the load average at the end)

DATA_DIR holds what scripts/run-bench.sh writes there:
    <harness>.jsonl     --json output of fanout_harness, drop_harness, joins_harness, join_harness
                        (one JSON object per line: "bench", "kind", series with their samples)
    <harness>.log       the harness's stdout (only its RESULT lines are read, for harnesses without --json)
    bench_<name>.json   Google Benchmark's --benchmark_out (JSON)
    machine.json        --machine-facts
OUT_DIR (default DATA_DIR/..) receives report.md and fanout.svg, drop.svg,
joins.svg, latency.svg for the series that were measured. Anything missing is
listed under "Not measured in this run"; nothing is made up.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import subprocess
import sys


# ----------------------------------------------------------------------------- inputs

def read_jsonl(path):
    """The objects of a JSON lines file; a line that is not JSON is an error."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"bench-report: {path}:{n}: not JSON: {e}")
    return out


RESULT_RE = re.compile(r"^RESULT (.*)$")


def read_results(log):
    """The key=value pairs of a log's RESULT lines (the harnesses print them for machines)."""
    res = {}
    with open(log, errors="replace") as f:
        for line in f:
            m = RESULT_RE.match(line.strip())
            if m:
                for kv in m.group(1).split():
                    if "=" in kv:
                        k, v = kv.split("=", 1)
                        res[k] = v
    return res


def load(data_dir):
    d = {"records": [], "results": {}, "gbench": {}, "machine": {}, "sources": []}
    for p in sorted(glob.glob(os.path.join(data_dir, "*.jsonl"))):
        d["records"] += read_jsonl(p)
        d["sources"].append(os.path.basename(p))
    for p in sorted(glob.glob(os.path.join(data_dir, "*.log"))):
        name = os.path.basename(p)[:-4]
        r = read_results(p)
        if r:
            d["results"][name] = r
    for p in sorted(glob.glob(os.path.join(data_dir, "bench_*.json"))):
        try:
            with open(p) as f:
                d["gbench"][os.path.basename(p)[:-5]] = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"bench-report: {p}: skipped: {e}", file=sys.stderr)
    mp = os.path.join(data_dir, "machine.json")
    if os.path.exists(mp):
        with open(mp) as f:
            d["machine"] = json.load(f)
    return d


def pick(records, bench, kind):
    return [r for r in records if r.get("bench") == bench and r.get("kind") == kind]


# ----------------------------------------------------------------------------- numbers

def num(n):
    """1000000 -> '1 000 000' (the docs' style)."""
    return f"{n:,}".replace(",", " ")


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (int,)) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return num(int(v))
    return f"{v:.{digits}f}"


def rate(v):
    """12345678 -> '12.35 M'."""
    if v is None:
        return "–"
    for div, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"


def quantile(samples, q):
    s = sorted(samples)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ----------------------------------------------------------------------------- plots

def plt_setup():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # Text stays text in the SVG: small files, diffable, searchable.
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "stentor"   # stable ids: the same data gives the same file
    matplotlib.rcParams["font.size"] = 9
    return plt


FORMAT = "svg"


def save(fig, out_dir, name):
    name = name.rsplit(".", 1)[0] + "." + FORMAT
    path = os.path.join(out_dir, name)
    meta = {"Date": None} if FORMAT == "svg" else {}
    fig.savefig(path, format=FORMAT, bbox_inches="tight", metadata=meta, dpi=120)
    return name


def plot_fanout(plt, fan, txonly, out_dir):
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    xs = [r["listeners"] for r in fan]
    med = [r["mpps"]["median"] for r in fan]
    lo = [r["mpps"]["median"] - r["mpps"]["min"] for r in fan]
    hi = [r["mpps"]["max"] - r["mpps"]["median"] for r in fan]
    ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label="Stentor fan-out, one lcore (median, min–max)")
    if txonly:
        t = txonly["mpps"]
        ax.axhline(t["median"], color="tab:red", linestyle="--", label="dpdk-testpmd txonly, same lcore (median)")
        ax.axhspan(t["min"], t["max"], color="tab:red", alpha=0.12, label="testpmd min–max")
    ax.set_xscale("log")
    ax.set_xlabel("listeners in the session")
    ax.set_ylabel("replicas per second (M)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Fan-out rate vs listeners, %d-byte frames" % fan[0].get("frame", 134))
    name = save(fig, out_dir, "fanout.svg")
    plt.close(fig)
    return name


def plot_drop(plt, rows, out_dir):
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    labels = [r[0] for r in rows]
    med = [r[1]["median"] for r in rows]
    err = [[r[1]["median"] - r[1]["min"] for r in rows], [r[1]["max"] - r[1]["median"] for r in rows]]
    colors = ["tab:red" if "testpmd" in r[0] else "tab:blue" for r in rows]
    ax.barh(labels, med, xerr=err, color=colors, capsize=3)
    ax.set_xlabel("Mpps on one lcore (median, min–max)")
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("Unknown-traffic drop rate beside dpdk-testpmd io")
    name = save(fig, out_dir, "drop.svg")
    plt.close(fig)
    return name


def plot_joins(plt, rows, out_dir):
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.2))
    labels = [r[0] for r in rows]
    vals = [r[1] for r in rows]
    ax.barh(labels, vals, color="tab:green")
    ax.set_xscale("log")
    ax.set_xlabel("per second (log scale)")
    ax.invert_yaxis()
    ax.grid(True, axis="x", which="both", alpha=0.3)
    for i, v in enumerate(vals):
        ax.text(v, i, " " + rate(v), va="center", fontsize=8)
    ax.set_title("Joins")
    name = save(fig, out_dir, "joins.svg")
    plt.close(fig)
    return name


def plot_latency(plt, lat, out_dir):
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for r in lat:
        s = sorted(r["ms"]["samples"])
        n = len(s)
        ax.step(s, [(i + 1) / n for i in range(n)], where="post", label=f"{num(r['listeners'])} listeners ({n} packets)")
    ax.set_xscale("log")
    ax.set_xlabel("ingress to last replica (ms), one packet alone")
    ax.set_ylabel("fraction of packets")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Latency distribution (CDF)")
    name = save(fig, out_dir, "latency.svg")
    plt.close(fig)
    return name


# ----------------------------------------------------------------------------- report

def report(d, out_dir, label):
    plt = plt_setup()
    recs = d["records"]
    md = []
    missing = []
    m = d["machine"]
    md.append("# Stentor benchmark report\n")
    if label:
        md.append(f"> {label}\n")
    when = m.get("date", "unknown date")
    md.append(f"Run {when} on **{m.get('cpu_model', 'an unknown CPU')}**, {m.get('cpus', '?')} CPUs online, "
              f"kernel {m.get('kernel', '?')}; DPDK {m.get('dpdk', '?')}; Stentor {m.get('git', '?')}"
              f" ({m.get('build', 'build options unknown')}). Load average {m.get('load_start', '?')} before the "
              f"harnesses, {m.get('load_end', '?')} after: every figure shares the machine with whatever else "
              "ran, which is why each harness measures its reference in the same run. "
              "Generated by `scripts/bench-report.py` from " + ", ".join(d["sources"] or ["no JSON lines"]) + ".\n")

    # Summary: the RESULT of each harness.
    results = {}
    for r in recs:
        if r.get("kind") == "result":
            results[r["bench"] + "_harness"] = {k: v for k, v in r.items() if k not in ("bench", "kind")}
    for name, r in d["results"].items():
        results.setdefault(name, r)
    md.append("## Summary\n")
    if results:
        md.append("| harness | RESULT |\n| --- | --- |")
        for name in sorted(results):
            kv = " ".join(f"{k}={fmt(v, 3) if isinstance(v, float) or v is None else v}"
                          for k, v in results[name].items())
            md.append(f"| `{name}` | {kv} |")
        md.append("")
    else:
        md.append("No harness printed a RESULT.\n")

    # Fan-out.
    fan = sorted(pick(recs, "fanout", "fanout"), key=lambda r: r["listeners"])
    tx = pick(recs, "fanout", "txonly")
    tx = tx[-1] if tx else None
    if fan:
        md.append("## Fan-out: replicas per second vs listeners\n")
        md.append(f"![fan-out vs listeners]({plot_fanout(plt, fan, tx, out_dir)})\n")
        md.append("One speaker stream into one session of N listeners, fan-out on one lcore "
                  "(`build/bench/fanout_harness`).\n")
        md.append("| listeners | replicas/s (median) | min – max | repetitions | listeners per core at 50 packets/s"
                  + (" | × testpmd txonly |" if tx else " |"))
        md.append("| --- | --- | --- | --- | ---" + (" | --- |" if tx else " |"))
        for r in fan:
            s = r["mpps"]
            row = (f"| {num(r['listeners'])} | {s['median']:.2f} M | {s['min']:.2f} – {s['max']:.2f} | "
                   f"{len(s['samples'])} | {rate(s['median'] * 1e6 / 50)} |")
            if tx:
                row += f" {s['median'] / tx['mpps']['median']:.3f} |"
            md.append(row)
        if tx:
            t = tx["mpps"]
            md.append(f"| testpmd txonly | {t['median']:.2f} M | {t['min']:.2f} – {t['max']:.2f} | "
                      f"{len(t['samples'])} sample{'' if len(t['samples']) == 1 else 's'} | |" + (" 1 |" if tx else ""))
        md.append("")
        if not tx:
            md.append("The dpdk-testpmd txonly reference was not run (`--no-reference`).\n")
            missing.append("fan-out reference (dpdk-testpmd txonly)")
    else:
        missing.append("fan-out (fanout_harness --json)")

    # Drop.
    drop_rows = []
    for kind, lab in (("testpmd_io", "dpdk-testpmd io forward"), ("unknown_flow", "Stentor, unknown flow"),
                      ("garbage", "Stentor, garbage (ethertype)"), ("unknown_flow6", "Stentor, unknown flow (IPv6)")):
        p = pick(recs, "drop", kind)
        if p:
            drop_rows.append((lab, p[-1]["mpps"], p[-1].get("what", "")))
    if drop_rows:
        md.append("## Unknown-traffic drop rate beside dpdk-testpmd io\n")
        md.append(f"![drop rate]({plot_drop(plt, drop_rows, out_dir)})\n")
        md.append("| | Mpps (median) | min – max | spread | what |\n| --- | --- | --- | --- | --- |")
        for lab, s, what in drop_rows:
            spread = 100 * (s["max"] - s["min"]) / s["median"] if s["median"] else 0
            md.append(f"| {lab} | {s['median']:.2f} | {s['min']:.2f} – {s['max']:.2f} | {spread:.1f} % | {what} |")
        ref = [s for lab, s, _ in drop_rows if lab.startswith("dpdk")]
        unk = [s for lab, s, _ in drop_rows if "unknown" in lab]
        if ref and unk and ref[0]["median"]:
            md.append(f"\nUnknown-flow drop / testpmd io: **{unk[0]['median'] / ref[0]['median']:.3f}**.")
        md.append("")
    else:
        missing.append("drop rate (drop_harness --json)")

    # Joins.
    join_rows = []
    for r in pick(recs, "joins", "control_plane"):
        join_rows.append(("joins in the control plane (bulk action + publish)", r["per_s"]))
    for r in pick(recs, "joins", "http_bulk"):
        join_rows.append(("joins over HTTP, bulk requests of 100 000", r["per_s"]))
    for r in pick(recs, "joins", "http_single"):
        join_rows.append((f"single adds over HTTP, {r['clients']} client(s)", r["per_s"]))
    for r in pick(recs, "join", "flash"):
        join_rows.append((f"token joins, flash crowd of {num(r['offered'])}, one core", r["per_s"]))
    for r in pick(recs, "join", "verify"):
        join_rows.append(("token verifications, one core (median)", r["per_s"]["median"]))
    for r in pick(recs, "join", "hmac_ref"):
        join_rows.append(("reference: OpenSSL HMAC() SHA-1, same core", r["per_s"]["median"]))
    if join_rows:
        md.append("## Joins\n")
        md.append(f"![joins]({plot_joins(plt, join_rows, out_dir)})\n")
        md.append("| measure | per second |\n| --- | --- |")
        for lab, v in join_rows:
            md.append(f"| {lab} | {rate(v)} |")
        for r in pick(recs, "joins", "http_bulk"):
            md.append(f"\nPackets lost by already-admitted listeners while 1 M joined over HTTP: **{r.get('lost', '?')}**.")
        for r in pick(recs, "join", "flash"):
            md.append(f"\nFlash crowd: {num(r['joins'])} of {num(r['offered'])} joined in {r['seconds']:.3f} s; "
                      f"packets lost by admitted tier-0 listeners: **{r.get('lost', '?')}**.")
        md.append("")
    else:
        missing.append("joins (joins_harness --json, join_harness --json)")

    # Latency.
    lat = sorted(pick(recs, "fanout", "latency"), key=lambda r: r["listeners"])
    if lat:
        md.append("## Latency: ingress to last replica\n")
        md.append(f"![latency CDF]({plot_latency(plt, lat, out_dir)})\n")
        md.append("One speaker packet at a time, timed from its hand-off to the fan-out lcore until the last "
                  "replica was counted sent (`fanout_harness`, `--latency-samples`).\n")
        md.append("| listeners | packets | median ms | p90 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- | --- |")
        for r in lat:
            s = r["ms"]["samples"]
            md.append(f"| {num(r['listeners'])} | {len(s)} | {quantile(s, 0.5):.3f} | {quantile(s, 0.9):.3f} | "
                      f"{quantile(s, 0.99):.3f} | {max(s):.3f} |")
        md.append("")
    else:
        missing.append("latency distribution (fanout_harness --json)")

    # Google Benchmark.
    if d["gbench"]:
        md.append("## Micro-benchmarks (Google Benchmark)\n")
        md.append("| binary | benchmark | time | items/s |\n| --- | --- | --- | --- |")
        for binary, g in sorted(d["gbench"].items()):
            for b in g.get("benchmarks", []):
                if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                    continue
                ips = b.get("items_per_second")
                md.append(f"| `{binary}` | `{b['name']}` | {b.get('real_time', 0):.1f} {b.get('time_unit', '')} | "
                          f"{rate(ips) if ips else '–'} |")
        md.append("")
    else:
        missing.append("micro-benchmarks (bench_* --benchmark_out)")

    if missing:
        md.append("## Not measured in this run\n")
        for x in missing:
            md.append(f"- {x}")
        md.append("")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(md))
    return missing


# ----------------------------------------------------------------------------- machine facts

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts(path, build_dir, finish):
    if finish:
        with open(path) as f:
            m = json.load(f)
        m["load_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    else:
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        git = sh(["git", "-C", repo, "describe", "--always", "--dirty"]) or "?"
        build = "?"
        if build_dir:
            opts = sh(["meson", "introspect", build_dir, "--buildoptions"])
            try:
                o = {x["name"]: x["value"] for x in json.loads(opts)}
                build = f"buildtype={o.get('buildtype')}, cpu_arch={o.get('cpu_arch')}"
            except (json.JSONDecodeError, TypeError, KeyError):
                pass
        m = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu_model": model,
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "dpdk": sh(["pkg-config", "--modversion", "libdpdk"]) or "?",
            "git": git,
            "build": build,
            "load_start": " ".join(open("/proc/loadavg").read().split()[:3]),
        }
    with open(path, "w") as f:
        json.dump(m, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", help="directory of the run's outputs")
    ap.add_argument("-o", "--out", help="where report.md and the plots go (default: DATA_DIR/..)")
    ap.add_argument("--label", default="", help="a line under the title (sizes, purpose of the run)")
    ap.add_argument("--format", choices=("svg", "png"), default="svg", help="plot format (default svg)")
    ap.add_argument("--machine-facts", metavar="FILE", help="record the machine and the build in FILE, then exit")
    ap.add_argument("--build-dir", help="with --machine-facts: the meson build directory")
    ap.add_argument("--finish", action="store_true", help="with --machine-facts: add the load average at the end")
    a = ap.parse_args()
    if a.machine_facts:
        machine_facts(a.machine_facts, a.build_dir, a.finish)
        return 0
    if not a.data_dir:
        ap.error("DATA_DIR is required")
    if not os.path.isdir(a.data_dir):
        sys.exit(f"bench-report: {a.data_dir}: not a directory")
    global FORMAT
    FORMAT = a.format
    out = a.out or os.path.dirname(os.path.abspath(a.data_dir.rstrip("/")))
    os.makedirs(out, exist_ok=True)
    d = load(a.data_dir)
    missing = report(d, out, a.label)
    print(f"bench-report: {os.path.join(out, 'report.md')}"
          + (f" ({len(missing)} section(s) not measured: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
