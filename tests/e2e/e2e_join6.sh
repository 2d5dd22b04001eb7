#!/usr/bin/env bash
# End-to-end: listeners join by token over IPv6 (issue 15, docs/join.md)
# against the real relay (stentord, DPDK net_af_packet on a veth), with real
# peers, in throw-away namespaces. The speaker is the usual IPv4 ffmpeg one:
# an IPv4 speaker's stream reaches listeners that joined over IPv6.
#   e2e_join6_listener    stentor-listener --join --relay [RELAY6]:40000 from
#                         [L6]:6000: joined as its own IPv6 address
#                         (XOR-MAPPED-ADDRESS family 2), listed by the API as
#                         an IPv6 listener, writes a WAV at 440 Hz, and its
#                         leave on exit removes it (join/left)
#   e2e_join6_aioice      aioice (python3-aioice) asks over IPv6 with a minted
#                         token: MESSAGE-INTEGRITY and FINGERPRINT verify in
#                         aioice, XOR-MAPPED-ADDRESS is its own IPv6 address;
#                         its STENTOR-LEAVE is answered the same way
#   e2e_join6_forged_silent  forged token, wrong password over IPv6: no byte
#                         back, drop/join/{forged,bad_integrity}
#   e2e_join6_consent     a listener joined over IPv6 and killed by SIGKILL
#                         (no leave) is removed within consent_timeout_s + 2 s
#                         (join/consent_expired)
# The relay finds the listeners' MACs by neighbour discovery (nothing pinned).
# Prints "PASS <name>" / "FAIL <name> <reason>". Needs root. About 25 s.
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
STENTORD="$BUILD_DIR/control/stentord"
LISTENER="$BUILD_DIR/tools/stentor-listener"
PEER="$REPO/tests/tools/join_peer.py"
PY=/usr/bin/python3
T="e2e_join6"
CONSENT_S=5
SESSION_PORT=40000
RELAY6=2001:db8:100::1
L6=(2001:db8:100::21 2001:db8:100::22 2001:db8:100::23)

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }

if [[ $(id -u) -ne 0 ]]; then
  fail "${T}_setup" "needs root (network namespaces)"; exit 1
fi
for b in "$STENTORD" "$LISTENER"; do
  [[ -x "$b" ]] || { fail "${T}_setup" "$b not built"; exit 1; }
done
for tool in jq curl ffmpeg sox; do
  command -v "$tool" >/dev/null || { fail "${T}_setup" "$tool not installed (scripts/deps.sh)"; exit 1; }
done
if ! "$PY" -c 'import aioice.stun' 2>/dev/null; then
  fail "${T}_setup" "python3-aioice missing (scripts/deps.sh installs it)"; exit 1
fi

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
# netlib's hosts are IPv4 only: each listener namespace gets an IPv6 address
# on the relay's link too (no DAD: the namespaces are fresh).
for i in 0 1 2; do
  ns=${NL_NS_LISTENERS[$i]}
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null
  ip netns exec "$ns" ip -6 addr add "${L6[$i]}/64" dev veth0 nodad
done

# --- the relay: dev-veth with an IPv6 address and [join] ---------------------
umask 077
openssl rand -hex 32 >"$WORK/join-1.key"
umask 022
CONFIG="$WORK/join6.toml"
sed 's|^ipv4 = "198.18.0.1/24"|&\nipv6 = "'"$RELAY6"'/64"|' configs/dev-veth.toml >"$CONFIG"
cat >>"$CONFIG" <<EOF

[join]
keys = [{ id = 1, secret_file = "$WORK/join-1.key" }]
consent_timeout_s = $CONSENT_S
rebind_after_s = 2
EOF
if ! grep -q "^ipv6 = " "$CONFIG" || ! "$STENTORD" --check -c "$CONFIG" >"$WORK/check.log" 2>&1; then
  cat "$WORK/check.log" >&2 || true
  fail "${T}_setup" "profile does not validate"; exit 1
fi
API_TOKEN=$(awk -F'"' '/^token = /{ print $2 }' "$CONFIG")
API_PORT=$(sed -n 's/^listen = "[^:]*:\([0-9]*\)".*/\1/p' "$CONFIG")
API="http://127.0.0.1:$API_PORT/api/v1"

api() {  # METHOD PATH [BODY] -> reply in $WORK/reply, prints the HTTP status
  local method=$1 path=$2 body=${3:-}
  local args=(-s -o "$WORK/reply" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $API_TOKEN")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  ip netns exec "$NL_NS_RELAY" curl "${args[@]}" "$API$path"
}
counter() {  # NAME: a counter of GET /stats (0 when absent)
  api GET /stats >/dev/null
  jq -r --arg n "$1" '.counters[$n] // 0' "$WORK/reply"
}
listeners() {  # session 1's listeners, one "[ip]:port" (IPv6) or "ip:port" a line
  api GET "/sessions/1/listeners?limit=1000" >/dev/null
  jq -r '.listeners[] | if (.ip | contains(":")) then "[\(.ip)]:\(.port)" else "\(.ip):\(.port)" end' "$WORK/reply"
}
has_listener() { listeners | grep -qxF -- "$1"; }
mint() {  # COUNT -> "TOKEN PASSWORD" lines
  local code
  code=$(api POST /sessions/1/tokens "{\"count\":$1,\"tier\":0}")
  [[ "$code" == 201 ]] || { echo "mint answered $code: $(head -c 200 "$WORK/reply")" >&2; return 1; }
  jq -r '.tokens[] | "\(.token) \(.password)"' "$WORK/reply"
}

RELAY_LOG="$WORK/stentord.log"
rc=0
netlib_start_relay "$BUILD_DIR" "$CONFIG" 90 "$RELAY_LOG" 20 || rc=$?
if (( rc != 0 )); then
  fail "${T}_setup" "stentord not ready (rc $rc)"; exit 1
fi
if ! mint 6 >"$WORK/tokens"; then
  fail "${T}_setup" "could not mint tokens"; exit 1
fi
mapfile -t TOKS <"$WORK/tokens"
tok() { cut -d' ' -f1 <<<"${TOKS[$1]}"; }
pw() { cut -d' ' -f2 <<<"${TOKS[$1]}"; }

netlib_speaker_cmd 60
"${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
SPK_PID=$!
netlib_track "$SPK_PID"

# run_listener NAME NS LISTEN TOKEN_INDEX SECONDS [ARGS...]: sets LPID.
run_listener() {
  local name=$1 ns=$2 listen=$3 i=$4 secs=$5; shift 5
  ip netns exec "$ns" "$LISTENER" --listen "$listen" --join --relay "[$RELAY6]:$SESSION_PORT" \
    --token "$(tok "$i")" --password "$(pw "$i")" --consent-interval 1 --seconds "$secs" \
    --json "$WORK/$name.json" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  LPID=$!
  netlib_track "$LPID"
}
# joined_as NAME [TIMEOUT_S]: waits for "join: joined via ... as [IP]:PORT"; prints it.
joined_as() {
  local name=$1 t=${2:-5}
  netlib_wait_for_line "$WORK/$name.err" 'join: joined via .* as ' "$t" "$LPID" || return 1
  sed -n 's/^stentor-listener: join: joined via .* as \(\[[0-9a-f:]*\]:[0-9]*\)$/\1/p' "$WORK/$name.err" | head -n1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# --- 1. stentor-listener over IPv6: join, hear, leave ----------------------------
name="${T}_listener"
want="[${L6[0]}]:6000"
l0=$(counter join/left)
run_listener l6 "${NL_NS_LISTENERS[0]}" "$want" 0 4 --wav-dir "$WORK/wav"
if mapped=$(joined_as l6 8) && [[ -n "$mapped" ]]; then
  table=$(listeners | tr '\n' ' ')
  rc=0; wait "$LPID" || rc=$?
  l1=$(counter join/left)
  dur="?" freq="?"
  [[ -s "$WORK/wav/listener-0.wav" ]] && read -r dur freq < <(netlib_wav_info "$WORK/wav/listener-0.wav")
  echo "# $name: joined as $mapped; table: $table; WAV $dur s, ~$freq Hz; join/left $l0 -> $l1"
  if [[ "$mapped" != "$want" ]]; then
    fail "$name" "relay saw $mapped, not $want"
  elif ! grep -qwF -- "$want" <<<"$table"; then
    fail "$name" "listener table '$table' lacks $want"
  elif (( rc != 0 )); then
    fail "$name" "listener exited $rc: $(tail -n3 "$WORK/l6.err" | tr '\n' ' ')"
  elif [[ "$freq" == "?" ]] || ! awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
    fail "$name" "WAV ($dur s) rough frequency $freq Hz, not 440 +- 5"
  elif (( l1 != l0 + 1 )) || has_listener "$want" || ! grep -q '^stentor-listener: join: left$' "$WORK/l6.err"; then
    fail "$name" "the leave on exit: join/left $l0 -> $l1, still listed: $(has_listener "$want" && echo yes || echo no)"
  else
    pass "$name"
  fi
else
  fail "$name" "never joined: $(tr '\n' ' ' <"$WORK/l6.err")"
fi

# --- 2. aioice over IPv6 ------------------------------------------------------------
name="${T}_aioice"
before=$(counter join/joined)
out=$(ip netns exec "${NL_NS_LISTENERS[1]}" "$PY" "$PEER" ask "${L6[1]}" "$RELAY6" "$SESSION_PORT" \
        "$(tok 1)" "$(pw 1)" 3 leave 2>&1) && rc=0 || rc=$?
after=$(counter join/joined)
echo "# $name: $out"
if (( rc != 0 )) || [[ "$out" != "ok RESPONSE ${L6[1]}:"*" left" ]]; then
  fail "$name" "aioice: $out"
elif (( after != before + 1 )); then
  fail "$name" "join/joined went $before -> $after, want +1"
elif listeners | grep -qF "[${L6[1]}]:"; then
  fail "$name" "still listed after its leave"
else
  pass "$name"
fi

# --- 3. forged token, wrong password over IPv6: silence -----------------------------
name="${T}_forged_silent"
t2=$(tok 2); p2=$(pw 2)
c=${t2:40:1}; [[ "$c" == A ]] && c=B || c=A
forged="${t2:0:40}$c${t2:41}"
r0=$(counter join_replies)
bad=""
for row in "forged $forged $p2" "bad_integrity $t2 ${p2:0:21}x"; do
  read -r reason t p <<<"$row"
  c0=$(counter "drop/join/$reason")
  out=$(ip netns exec "${NL_NS_LISTENERS[2]}" "$PY" "$PEER" ask "${L6[2]}" "$RELAY6" "$SESSION_PORT" \
          "$t" "$p" 1.0 2>&1) || true
  c1=$(counter "drop/join/$reason")
  echo "# $name: $reason: $out; drop/join/$reason $c0 -> $c1"
  [[ "$out" == silent* ]] || bad+=" $reason answered ($out);"
  (( c1 == c0 + 1 )) || bad+=" drop/join/$reason $c0 -> $c1;"
done
r1=$(counter join_replies)
(( r1 == r0 )) || bad+=" join_replies $r0 -> $r1;"
listeners | grep -qF "[${L6[2]}]:" && bad+=" a listener was added;"
if [[ -z "$bad" ]]; then pass "$name"; else fail "$name" "$bad"; fi

# --- 4. consent over IPv6: SIGKILL, no leave ------------------------------------------
name="${T}_consent"
want="[${L6[2]}]:6000"
run_listener consent "${NL_NS_LISTENERS[2]}" "$want" 3 30
if joined_as consent 8 >/dev/null && has_listener "$want"; then
  e0=$(counter join/consent_expired)
  kill -KILL "$LPID"; wait "$LPID" 2>/dev/null || true
  t_kill=$(now)
  gone=""
  for _ in $(seq 100); do
    if ! has_listener "$want"; then gone=$(now); break; fi
    sleep 0.1
  done
  e1=$(counter join/consent_expired)
  if [[ -z "$gone" ]]; then
    fail "$name" "still listed 10 s after SIGKILL"
  else
    took=$(elapsed "$t_kill" "$gone")
    echo "# $name: removed $took s after SIGKILL; join/consent_expired $e0 -> $e1"
    if ! awk -v t="$took" -v c="$CONSENT_S" 'BEGIN { exit !(t <= c + 2) }'; then
      fail "$name" "removed $took s after SIGKILL, want <= $((CONSENT_S + 2)) s"
    elif (( e1 != e0 + 1 )); then
      fail "$name" "join/consent_expired $e0 -> $e1, want +1"
    else
      pass "$name"
    fi
  fi
else
  fail "$name" "never joined: $(tr '\n' ' ' <"$WORK/consent.err")"
fi

netlib_stop_pid "$SPK_PID" TERM 3
netlib_stop_pid "$RELAY_PID" INT 10
(( FAILS == 0 ))
