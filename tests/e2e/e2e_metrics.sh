#!/usr/bin/env bash
# End-to-end: a real Prometheus server (Debian's prometheus package) scrapes
# a real stentord every second with the read-only metrics token, while a
# real speaker (ffmpeg) reaches three listeners through the relay; Prometheus'
# HTTP API then answers rate() queries with the replicas the relay sends
# (three per speaker packet), and every query of the shipped Grafana
# dashboard (docs/grafana/stentor.json) with data. promtool checks the
# exposition. Everything runs inside throw-away namespaces, Prometheus on
# the relay namespace's loopback. Prints PASS/FAIL lines. Bounded (< 90 s).
#
# Environment: BUILD_DIR (default build).
set -uo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
T="e2e_metrics"
PY=/usr/bin/python3

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }
FAILS=0

if [[ $(id -u) -ne 0 ]]; then fail "${T}_setup" "needs root (network namespaces)"; exit 1; fi
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "$STENTORD not built"; exit 1; fi
for tool in prometheus promtool curl; do
  if ! command -v "$tool" >/dev/null; then fail "${T}_setup" "$tool missing (scripts/deps.sh)"; exit 1; fi
done

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
e2e_hook() { rm -rf "$WORK"; }
netlib_trap e2e_hook

if ! netlib_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

# The dev profile (one session, speaker 198.18.0.10:5004 SSRC 1234, three
# listeners) with a read-only metrics token and join keys (the join desk's
# series are on the dashboard). Both loopback ports are inside the relay's
# namespace, so any free number will do.
API_PORT=9180
PROM_PORT=9190
ADMIN_TOKEN=dev-token-change-me-please
SCRAPE_TOKEN=scrape-token-$$-0123456789
sed -e "s/^listen = .*/listen = \"127.0.0.1:$API_PORT\"/" \
    -e "s/^token = .*/token = \"$ADMIN_TOKEN\"\nmetrics_token = \"$SCRAPE_TOKEN\"\nmetrics_top_sessions = 5/" \
    configs/dev-veth.toml >"$WORK/p.toml"
(umask 077; printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f >"$WORK/join.key")
printf '\n[join]\nkeys = [ { id = 1, secret_file = "%s" } ]\n' "$WORK/join.key" >>"$WORK/p.toml"

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$WORK/p.toml" 80 "$RELAY_LOG" 15 || rc=$?
if (( rc != 0 )); then fail "${T}_relay_ready" "stentord not ready (rc $rc)"; exit 1; fi
in_relay() { ip netns exec "$NL_NS_RELAY" "$@"; }
API="http://127.0.0.1:$API_PORT"

# Who may scrape: the metrics token reads /metrics and nothing else.
code() { in_relay curl -s -o /dev/null -w '%{http_code}' "$@"; }
c1=$(code -H "Authorization: Bearer $SCRAPE_TOKEN" "$API/metrics")
c2=$(code -H "Authorization: Bearer $SCRAPE_TOKEN" "$API/api/v1/stats")
c3=$(code "$API/metrics")
c4=$(code -H "Authorization: Bearer $ADMIN_TOKEN" "$API/metrics")
if [[ "$c1 $c2 $c3 $c4" == "200 401 401 200" ]]; then pass "${T}_scrape_token"
else fail "${T}_scrape_token" "metrics token /metrics $c1, /api/v1/stats $c2, none $c3, admin $c4"; fi

# promtool on a real scrape.
in_relay curl -s -H "Authorization: Bearer $SCRAPE_TOKEN" "$API/metrics" >"$WORK/scrape.txt"
if out=$(promtool check metrics <"$WORK/scrape.txt" 2>&1) && [[ -z "$out" ]]; then pass "${T}_promtool"
else fail "${T}_promtool" "${out:0:300}"; fi

# Prometheus: its own config and data dir, a 1 s scrape with the metrics
# token from a file.
printf '%s' "$SCRAPE_TOKEN" >"$WORK/scrape.token"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: stentor
    static_configs:
      - targets: ['127.0.0.1:$API_PORT']
    authorization:
      credentials_file: $WORK/scrape.token
EOF
if ! out=$(promtool check config "$WORK/prometheus.yml" 2>&1); then fail "${T}_prometheus_config" "${out:0:300}"; exit 1; fi
in_relay prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
netlib_track "$PROM_PID"
PROM="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 1 150); do
  in_relay curl -sf "$PROM/-/ready" >/dev/null 2>&1 && break
  kill -0 "$PROM_PID" 2>/dev/null || break
  sleep 0.1
done
if ! in_relay curl -sf "$PROM/-/ready" >/dev/null 2>&1; then
  fail "${T}_prometheus_ready" "$(tail -c 300 "$WORK/prometheus.log")"; exit 1
fi
pass "${T}_prometheus_ready"

# query EXPR: Prometheus' answer (JSON) to an instant query.
query() { in_relay curl -s --get --data-urlencode "query=$1" "$PROM/api/v1/query"; }
# value EXPR: the first sample's value, or "".
value() {
  query "$1" | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
r = d.get("data", {}).get("result", [])
print(r[0]["value"][1] if d.get("status") == "success" and r else "")'
}

# A speaker for 12 s: 50 packets/s, each replicated to three listeners.
netlib_speaker_cmd 12
timeout 20 "${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"

# Wait (bounded) until Prometheus has seen the stream start, then until its
# 5 s windows lie wholly inside the stream (rate() over a window that starts
# before the first packet is the stream's rate times the share it covers).
for _ in $(seq 1 60); do
  v=$(value 'stentor_rtp_in_total')
  [[ -n "$v" && "$v" != 0 ]] && break
  sleep 0.5
done
sleep 7
# All at one evaluation time, so every rate covers the same scrapes.
AT=$("$PY" -c 'import time; print("%.3f" % (time.time() - 0.5))')
value_at() {
  in_relay curl -s --get --data-urlencode "query=$1" --data-urlencode "time=$AT" "$PROM/api/v1/query" | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
r = d.get("data", {}).get("result", [])
print(r[0]["value"][1] if d.get("status") == "success" and r else "")'
}
REPL=$(value_at 'rate(stentor_replicas_out_total[5s])')
UP=$(value 'up{job="stentor"}')
[[ "$UP" == 1 ]] && pass "${T}_target_up" || fail "${T}_target_up" "up = '$UP'"
# ffmpeg sends 50 packets/s (20 ms frames); three listeners: 150 replicas/s,
# less what a worker that lost its core abandoned (tier misses: deadline,
# mempool) or could not send (tx_full, unresolved next hop). On a quiet host
# that is nothing; on a loaded one it is counted, and the sum stays 3 per
# accepted speaker packet.
MISSED='(sum(increase(stentor_tier_misses_total[5s])) + sum(increase(stentor_drops_total{reason=~"egress/(tx_full|neigh_unresolved)"}[5s])))'
LOST=$(value_at "$MISSED")
if [[ -n "$REPL" && -n "$LOST" ]] && "$PY" -c "import sys; r, m = float('$REPL'), float('$LOST') / 5; sys.exit(0 if 100 <= r + m <= 200 and r > 0 else 1)"; then
  pass "${T}_rate_replicas"; else fail "${T}_rate_replicas" "rate(stentor_replicas_out_total[5s]) = '$REPL' (+ '$LOST' missed in 5 s), expected ~150"; fi
# Over the same scrapes, three replicas (sent or counted as missed) per
# accepted speaker packet.
RATIO=$(value_at "(sum(increase(stentor_replicas_out_total[5s])) + $MISSED) / sum(increase(stentor_rtp_in_total[5s]))")
if [[ -n "$RATIO" ]] && "$PY" -c "import sys; r = float('$RATIO'); sys.exit(0 if 2.9 <= r <= 3.1 else 1)"; then
  pass "${T}_replicas_per_packet"; else fail "${T}_replicas_per_packet" "ratio '$RATIO', expected 3"; fi
SESS=$(value_at 'rate(stentor_session_packets_in_total{session="1"}[5s])')
SPKR=$(value_at 'rate(stentor_speaker_packets_in_total{session="1",speaker="198.18.0.10:5004"}[5s])')
RTP=$(value_at 'rate(stentor_rtp_in_total[5s])')
# The session's, the speaker's and the relay's counts are read one after the
# other in one scrape: a packet may fall between them.
if [[ -n "$SESS" && -n "$SPKR" && -n "$RTP" ]] && "$PY" -c "import sys; a, b, c = float('$SESS'), float('$SPKR'), float('$RTP'); sys.exit(0 if 35 <= a <= 65 and abs(a - b) <= 1 and abs(a - c) <= 1 else 1)"; then
  pass "${T}_rate_per_session_and_speaker"; else fail "${T}_rate_per_session_and_speaker" "session '$SESS', speaker '$SPKR', relay '$RTP', expected ~50 each"; fi
if (( FAILS > 0 )); then
  in_relay curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$API/api/v1/stats" | "$PY" -c 'import json,sys
c = json.load(sys.stdin)["counters"]
print("counters:", {k: v for k, v in c.items() if v and not k.startswith(("mixer", "recorder", "api"))})' >&2
fi
BI=$(value 'count(stentor_build_info{version!="",revision!="",dpdk=~"DPDK.*"})')
[[ "$BI" == 1 ]] && pass "${T}_build_info" || fail "${T}_build_info" "count = '$BI'"

# The dashboard: every stentor_ series it names is one the relay exposes,
# and every query runs on Prometheus and returns data (the recorder's
# recordings-by-state, empty without a recording, excepted).
if "$PY" - "$REPO/docs/grafana/stentor.json" "$WORK/scrape.txt" "$PROM" "$NL_NS_RELAY" >"$WORK/dash.out" 2>&1 <<'PY'
import json, re, subprocess, sys, urllib.parse
dash = json.load(open(sys.argv[1]))
families = {l.split()[2] for l in open(sys.argv[2]) if l.startswith("# TYPE ")}
prom, ns = sys.argv[3], sys.argv[4]
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert len(exprs) >= 40, len(exprs)
bad = []
for e in exprs:
    for name in set(re.findall(r"\b(stentor_[a-z0-9_]+)", e)):
        if name not in families:
            bad.append("unknown series " + name)
    q = e.replace("$__rate_interval", "5s").replace("$instance", ".*")
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    out = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", url], capture_output=True, text=True).stdout
    d = json.loads(out)
    if d.get("status") != "success":
        bad.append("query failed: %s: %s" % (q, d.get("error")))
    elif not d["data"]["result"] and "stentor_recordings" not in q:
        bad.append("no data: " + q)
print("%d queries" % len(exprs))
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
then pass "${T}_dashboard_queries"; else fail "${T}_dashboard_queries" "$(tail -c 400 "$WORK/dash.out" | tr '\n' ';')"; fi

exit 0
