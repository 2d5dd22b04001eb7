# shellcheck shell=bash
# The JN_* variables and TOKS are used by the scripts that source this file.
# shellcheck disable=SC2034
# Token joins against the real relay on netlib's LAN, either family: the
# setup and the checks tests/e2e/e2e_join.sh (IPv4) and e2e_join6.sh (IPv6)
# share. Sourced after scripts/netlib.sh; uses the caller's REPO, BUILD_DIR,
# T (the test name prefix) and its pass / fail.
#
#   joinnet_preflight TOOL...     root, binaries, tools, aioice (fails ${T}_setup)
#   joinnet_init 4|6 WORKDIR      addresses and names for the family
#   joinnet_up                    netlib_up; over IPv6 each listener namespace
#                                 gets an IPv6 address on the relay's link too
#   joinnet_profile OUT CONSENT_S REBIND_S   dev-veth with [join] (and, over
#                                 IPv6, the port's IPv6 address); validated
#   joinnet_start_relay DURATION  stentord, ready; sets RELAY_PID, JN_RELAY_LOG
#   joinnet_start_speaker SECONDS ffmpeg's 440 Hz (IPv4 in both families)
#   jn_api, jn_counter, jn_listeners, jn_has_listener, jn_nb_listeners,
#   jn_mint, jn_tok, jn_pw, jn_run_listener, jn_joined_as, jn_now, jn_elapsed
#   joinnet_test_aioice, joinnet_test_forged_silent, joinnet_test_consent:
#                                 the tests both families run the same way
#
# The relay's address for clients is JN_RELAY (198.18.0.1 or 2001:db8:100::1),
# the listener namespaces' addresses JN_L[0..2] (netlib's 198.18.0.21-23, or
# 2001:db8:100::21-23 beside them). jn_ep IP PORT writes an endpoint the way
# the API list and stentor-listener do: "ip:port" or "[ip]:port".

JN_SESSION_PORT=40000
JN_RELAY6=2001:db8:100::1
JN_L6=(2001:db8:100::21 2001:db8:100::22 2001:db8:100::23)
JN_PEER_PY=/usr/bin/python3

joinnet_init() {
  JN_FAMILY=$1 JN_WORK=$2
  JN_PEER="$REPO/tests/tools/join_peer.py"
  JN_LISTENER="$BUILD_DIR/tools/stentor-listener"
  if [[ "$JN_FAMILY" == 6 ]]; then
    JN_RELAY=$JN_RELAY6
    JN_L=("${JN_L6[@]}")
    JN_STATIC_PORT=""   # dev-veth.toml lists no IPv6 listener
  else
    JN_RELAY=$NL_RELAY_IP
    JN_L=("${NL_LISTENER_IPS[@]}")
    JN_STATIC_PORT=5004   # dev-veth.toml's static listeners: each of JN_L at :5004
  fi
}

jn_ep() { if [[ "$1" == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }

# joinnet_preflight TOOL...: fails ${T}_setup and exits unless all is there.
joinnet_preflight() {
  local b tool
  if [[ $(id -u) -ne 0 ]]; then
    fail "${T}_setup" "needs root (network namespaces)"; exit 1
  fi
  for b in "$BUILD_DIR/control/stentord" "$BUILD_DIR/tools/stentor-listener"; do
    [[ -x "$b" ]] || { fail "${T}_setup" "$b not built"; exit 1; }
  done
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { fail "${T}_setup" "$tool not installed (scripts/deps.sh)"; exit 1; }
  done
  if ! "$JN_PEER_PY" -c 'import aioice.stun' 2>/dev/null; then
    fail "${T}_setup" "python3-aioice missing (scripts/deps.sh installs it)"; exit 1
  fi
}

# joinnet_up: netlib's topology; over IPv6 each listener namespace also gets
# JN_L[i]/64 on its veth (no DAD: the namespaces are fresh).
joinnet_up() {
  netlib_up || return 1
  [[ "$JN_FAMILY" == 6 ]] || return 0
  local i ns
  for i in 0 1 2; do
    ns=${NL_NS_LISTENERS[$i]}
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.veth0.disable_ipv6=0 >/dev/null || return 1
    ip netns exec "$ns" ip -6 addr add "${JN_L[$i]}/64" dev veth0 nodad || return 1
  done
}

# joinnet_profile OUT CONSENT_S REBIND_S: configs/dev-veth.toml with
# [join] (key 1 in $JN_WORK/join-1.key) and, over IPv6, the port's IPv6
# address JN_RELAY6/64; checked with stentord --check. Sets JN_CONFIG,
# JN_API_TOKEN, JN_API. Returns 1 (the check's output on stderr) if it
# does not validate.
joinnet_profile() {
  JN_CONFIG=$1
  (umask 077; openssl rand -hex 32 >"$JN_WORK/join-1.key")
  if [[ "$JN_FAMILY" == 6 ]]; then
    sed 's|^ipv4 = "198.18.0.1/24"|&\nipv6 = "'"$JN_RELAY6"'/64"|' "$REPO/configs/dev-veth.toml" >"$JN_CONFIG"
    grep -q "^ipv6 = " "$JN_CONFIG" || { echo "joinnet: no ipv6 line in the profile" >&2; return 1; }
  else
    cp "$REPO/configs/dev-veth.toml" "$JN_CONFIG"
  fi
  cat >>"$JN_CONFIG" <<EOF

[join]
keys = [{ id = 1, secret_file = "$JN_WORK/join-1.key" }]
consent_timeout_s = $2
rebind_after_s = $3
EOF
  if ! "$BUILD_DIR/control/stentord" --check -c "$JN_CONFIG" >"$JN_WORK/check.log" 2>&1; then
    cat "$JN_WORK/check.log" >&2
    return 1
  fi
  JN_API_TOKEN=$(awk -F'"' '/^token = /{ print $2 }' "$JN_CONFIG")
  JN_API="http://127.0.0.1:$(sed -n 's/^listen = "[^:]*:\([0-9]*\)".*/\1/p' "$JN_CONFIG")/api/v1"
}

jn_api() {  # METHOD PATH [BODY] -> reply in $JN_WORK/reply, prints the HTTP status
  local method=$1 path=$2 body=${3:-}
  local args=(-s -o "$JN_WORK/reply" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $JN_API_TOKEN")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  ip netns exec "$NL_NS_RELAY" curl "${args[@]}" "$JN_API$path"
}
jn_counter() {  # NAME: a counter of GET /stats (0 when absent)
  jn_api GET /stats >/dev/null
  jq -r --arg n "$1" '.counters[$n] // 0' "$JN_WORK/reply"
}
jn_listeners() {  # session 1's listeners, one jn_ep a line
  jn_api GET "/sessions/1/listeners?limit=1000" >/dev/null
  jq -r '.listeners[] | if (.ip | contains(":")) then "[\(.ip)]:\(.port)" else "\(.ip):\(.port)" end' "$JN_WORK/reply"
}
jn_has_listener() { jn_listeners | grep -qxF -- "$1"; }
jn_nb_listeners() { jn_listeners | wc -l; }
# jn_listed_from IP: session 1's listeners at IP but for the profile's static one.
jn_listed_from() {
  local static=""
  [[ -n "$JN_STATIC_PORT" ]] && static=$(jn_ep "$1" "$JN_STATIC_PORT")
  jn_listeners | awk -v p="$(jn_ep "$1" "")" -v s="$static" 'index($0, p) == 1 && $0 != s'
}
jn_mint() {  # COUNT [TTL_S] -> "TOKEN PASSWORD" lines
  local body="{\"count\":$1,\"tier\":0${2:+,\"ttl_s\":$2}}" code
  code=$(jn_api POST /sessions/1/tokens "$body")
  [[ "$code" == 201 ]] || { echo "mint answered $code: $(head -c 200 "$JN_WORK/reply")" >&2; return 1; }
  jq -r '.tokens[] | "\(.token) \(.password)"' "$JN_WORK/reply"
}
# jn_tok I / jn_pw I: token I of TOKS (lines "TOKEN PASSWORD", the caller's mapfile).
jn_tok() { cut -d' ' -f1 <<<"${TOKS[$1]}"; }
jn_pw() { cut -d' ' -f2 <<<"${TOKS[$1]}"; }

# joinnet_start_relay DURATION: stentord on JN_CONFIG, ready within 20 s;
# log in JN_RELAY_LOG. Returns netlib_start_relay's status.
joinnet_start_relay() {
  JN_RELAY_LOG="$JN_WORK/stentord.log"
  netlib_start_relay "$BUILD_DIR" "$JN_CONFIG" "$1" "$JN_RELAY_LOG" 20
}

# joinnet_start_speaker SECONDS: netlib's ffmpeg speaker (440 Hz, IPv4);
# sets JN_SPK_PID.
joinnet_start_speaker() {
  netlib_speaker_cmd "$1"
  "${NL_SPEAKER_CMD[@]}" >"$JN_WORK/speaker.log" 2>&1 &
  JN_SPK_PID=$!
  netlib_track "$JN_SPK_PID"
}

# jn_run_listener NAME NS LISTEN TOKEN_INDEX SECONDS [ARGS...]: stentor-listener
# --join to JN_RELAY in the background; sets LPID.
jn_run_listener() {
  local name=$1 ns=$2 listen=$3 i=$4 secs=$5; shift 5
  ip netns exec "$ns" "$JN_LISTENER" --listen "$listen" --join --relay "$(jn_ep "$JN_RELAY" "$JN_SESSION_PORT")" \
    --token "$(jn_tok "$i")" --password "$(jn_pw "$i")" --consent-interval 1 --seconds "$secs" \
    --json "$JN_WORK/$name.json" "$@" >"$JN_WORK/$name.out" 2>"$JN_WORK/$name.err" &
  LPID=$!
  netlib_track "$LPID"
}
# jn_joined_as NAME [TIMEOUT_S]: waits for "join: joined via ... as EP";
# prints EP ("ip:port" or "[ip]:port", by the family).
jn_joined_as() {
  local name=$1 t=${2:-5} ep='[0-9.]*:[0-9]*'
  [[ "$JN_FAMILY" == 6 ]] && ep='\[[0-9a-f:]*\]:[0-9]*'
  netlib_wait_for_line "$JN_WORK/$name.err" 'join: joined via .* as ' "$t" "$LPID" || return 1
  sed -n "s/^stentor-listener: join: joined via .* as \\($ep\\)\$/\\1/p" "$JN_WORK/$name.err" | head -n1
}
jn_now() { date +%s.%N; }
jn_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# jn_ask NS IP TOKEN PASSWORD WAIT_S [leave]: join_peer.py (aioice) from IP in NS.
jn_ask() {
  local ns=$1 ip=$2; shift 2
  ip netns exec "$ns" "$JN_PEER_PY" "$JN_PEER" ask "$ip" "$JN_RELAY" "$JN_SESSION_PORT" "$@" 2>&1
}

# joinnet_test_aioice NAME NS IP WAIT_S: aioice asks from IP with token 1:
# the answer verifies in aioice and maps to its own address, join/joined
# +1, and its STENTOR-LEAVE removes it again.
joinnet_test_aioice() {
  local name=$1 ns=$2 ip=$3 wait_s=$4 before after out rc
  before=$(jn_counter join/joined)
  out=$(jn_ask "$ns" "$ip" "$(jn_tok 1)" "$(jn_pw 1)" "$wait_s" leave) && rc=0 || rc=$?
  after=$(jn_counter join/joined)
  echo "# $name: $out"
  if (( rc != 0 )) || [[ "$out" != "ok RESPONSE $ip:"*" left" ]]; then
    fail "$name" "aioice: $out"
  elif (( after != before + 1 )); then
    fail "$name" "join/joined went $before -> $after, want +1"
  elif [[ -n "$(jn_listed_from "$ip")" ]]; then
    fail "$name" "still listed after its leave"
  else
    pass "$name"
  fi
}

# joinnet_test_forged_silent NAME NS IP ["REASON TOKEN PASSWORD"]...: token
# 2 with a tag character changed (drop/join/forged) and with a wrong
# password (drop/join/bad_integrity), then the caller's rows, each from IP:
# no byte back, its drop/join/<reason> +1; join_replies and the listener
# count unchanged and nobody listed at IP.
joinnet_test_forged_silent() {
  local name=$1 ns=$2 ip=$3; shift 3
  local t2 p2 c forged n0 n1 r0 r1 bad="" row reason t p c0 c1 out
  t2=$(jn_tok 2); p2=$(jn_pw 2)
  c=${t2:40:1}; [[ "$c" == A ]] && c=B || c=A
  forged="${t2:0:40}$c${t2:41}"                 # a tag character changed
  n0=$(jn_nb_listeners); r0=$(jn_counter join_replies)
  for row in "forged $forged $p2" "bad_integrity $t2 ${p2:0:21}x" "$@"; do
    read -r reason t p <<<"$row"
    c0=$(jn_counter "drop/join/$reason")
    out=$(jn_ask "$ns" "$ip" "$t" "$p" 1.0) || true
    c1=$(jn_counter "drop/join/$reason")
    echo "# $name: $reason: $out; drop/join/$reason $c0 -> $c1"
    [[ "$out" == silent* ]] || bad+=" $reason answered ($out);"
    (( c1 == c0 + 1 )) || bad+=" drop/join/$reason $c0 -> $c1;"
  done
  n1=$(jn_nb_listeners); r1=$(jn_counter join_replies)
  (( r1 == r0 && n1 == n0 )) || bad+=" join_replies $r0 -> $r1, listeners $n0 -> $n1;"
  [[ -z "$(jn_listed_from "$ip")" ]] || bad+=" a listener was added;"
  if [[ -z "$bad" ]]; then pass "$name"; else fail "$name" "$bad"; fi
}

# joinnet_test_consent NAME NS IP TOKEN_INDEX JOIN_TIMEOUT_S CONSENT_S: a
# listener joined from IP:6000 and SIGKILLed (no leave) is removed within
# CONSENT_S + 2 s (join/consent_expired +1); the same port, then a plain
# socket, heard the stream before the removal and nothing after it.
joinnet_test_consent() {
  local name=$1 ns=$2 ip=$3 i=$4 join_t=$5 consent_s=$6
  local want e0 e1 t_kill gone took n_before n_after cpid
  want=$(jn_ep "$ip" 6000)
  jn_run_listener consent "$ns" "$want" "$i" 30
  if ! { jn_joined_as consent "$join_t" >/dev/null && jn_has_listener "$want"; }; then
    fail "$name" "never joined: $(tr '\n' ' ' <"$JN_WORK/consent.err")"
    return
  fi
  e0=$(jn_counter join/consent_expired)
  sleep 1
  kill -KILL "$LPID"; wait "$LPID" 2>/dev/null || true
  t_kill=$(jn_now)
  # The same port, now a plain socket: packets keep coming until consent expires.
  ip netns exec "$ns" "$JN_PEER_PY" "$JN_PEER" count "$ip" 6000 12 "$JN_WORK/consent.count" &
  cpid=$!; netlib_track "$cpid"
  gone=""
  for _ in $(seq 100); do
    if ! jn_has_listener "$want"; then gone=$(jn_now); break; fi
    sleep 0.1
  done
  if [[ -z "$gone" ]]; then
    fail "$name" "still listed 10 s after SIGKILL"
    return
  fi
  sleep 2
  netlib_stop_pid "$cpid" TERM 1
  e1=$(jn_counter join/consent_expired)
  took=$(jn_elapsed "$t_kill" "$gone")
  n_before=$(awk -v g="$gone" '$1 != "ready" && $1 <= g' "$JN_WORK/consent.count" | wc -l)
  n_after=$(awk -v g="$gone" '$1 != "ready" && $1 > g + 0.1' "$JN_WORK/consent.count" | wc -l)
  echo "# $name: removed $took s after SIGKILL; join/consent_expired $e0 -> $e1; port heard $n_before packets before, $n_after after"
  if ! awk -v t="$took" -v c="$consent_s" 'BEGIN { exit !(t <= c + 2) }'; then
    fail "$name" "removed $took s after SIGKILL, want <= $((consent_s + 2)) s"
  elif (( e1 != e0 + 1 )); then
    fail "$name" "join/consent_expired $e0 -> $e1, want +1"
  elif (( n_before == 0 )); then
    fail "$name" "the port heard nothing before the removal (the count cannot be trusted)"
  elif (( n_after != 0 )); then
    fail "$name" "$n_after packets reached the port after the removal"
  else
    pass "$name"
  fi
}
