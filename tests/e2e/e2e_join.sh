#!/usr/bin/env bash
# End-to-end: listeners join by token (issue 11, docs/join.md) against the
# real relay (stentord, DPDK net_af_packet on a veth), with real peers:
#   e2e_join_nat          stentor-listener --join in a namespace behind a
#                         second one doing nftables MASQUERADE hears the
#                         speaker's 440 Hz (WAV), and the relay's listener
#                         table holds the NAT's outside address, not the
#                         private one
#   e2e_join_aioice       aioice (python3-aioice) asks with a minted token:
#                         the answer's MESSAGE-INTEGRITY and FINGERPRINT
#                         verify in aioice, XOR-MAPPED-ADDRESS is its own;
#                         then its STENTOR-LEAVE is answered the same way
#   e2e_join_stunclient_unanswered  coturn's turnutils_stunclient (a plain
#                         Binding Request) gets nothing; a drop/join/<parser reason>
#   e2e_join_forged_silent  forged token, wrong password, expired token: no
#                         byte back, drop/join/{forged,bad_integrity,expired}
#   e2e_join_consent      a joined listener killed by SIGKILL (no leave) is
#                         removed within consent_timeout_s + the 1 s sweep
#                         (+ 1 s slack), join/consent_expired, and its port
#                         receives nothing more
#   e2e_join_leave        SIGTERM: the listener's STENTOR-LEAVE removes it at
#                         once (join/left)
#   e2e_join_rebind       the NAT's outside address changes mid-stream (the
#                         kernel drops the masqueraded mappings): the token
#                         moves to the new mapping (join/rebound) and the
#                         listener keeps hearing the stream
#   e2e_join_rotate       SIGHUP adds key 2 and mints with it: tokens of both
#                         keys join; SIGHUP removes key 1: its token gets
#                         nothing (drop/join/unknown_key), a key-2 token
#                         that left is refused as spent, a new one joins
# The setup and the aioice, forged and consent checks are shared with
# e2e_join6.sh (scripts/joinnet.sh).
# Prints "PASS <name>" / "FAIL <name> <reason>". Needs root. About 30 s.
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T="e2e_join"
CONSENT_S=5
REBIND_S=2
NAT_OUT_IP=198.18.0.30       # the NAT's outside address (on the relay's LAN)
NAT_OUT_IP2=198.18.0.31      # ... after the "rebinding"
NAT_IN_IP=198.19.0.1         # private side (198.18.0.0/15: never routed)
PRIV_IP=198.19.0.2

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
# shellcheck source=scripts/joinnet.sh
source "$REPO/scripts/joinnet.sh"
joinnet_preflight jq curl nft ffmpeg sox turnutils_stunclient
netlib_init ""
NS_NAT="${NL_P}nat"
NS_PRIV="${NL_P}priv"
NL_ALL_NS+=("$NS_PRIV" "$NS_NAT")   # netlib_down removes them too
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
e2e_hook() { rm -rf "$WORK"; }
netlib_trap e2e_hook
joinnet_init 4 "$WORK"

# --- the network: netlib's LAN, plus a listener behind a NAT -----------------
#   ${P}priv veth0 198.19.0.2/24 --- veth1 198.19.0.1/24 ${P}nat veth0 198.18.0.30/24 --- br0
nat_up() {
  nl_ns_add "$NS_NAT"
  nl_ns_add "$NS_PRIV"
  ip link add veth0 netns "$NS_NAT" type veth peer name p-nat netns "$NL_NS_BR"
  nl_ns_exec "$NL_NS_BR" ip link set p-nat master br0 up
  nl_ns_exec "$NS_NAT" ip addr add "$NAT_OUT_IP/24" dev veth0
  nl_ns_exec "$NS_NAT" ip link set veth0 up
  ip link add veth1 netns "$NS_NAT" type veth peer name veth0 netns "$NS_PRIV"
  nl_ns_exec "$NS_NAT" ip addr add "$NAT_IN_IP/24" dev veth1
  nl_ns_exec "$NS_NAT" ip link set veth1 up
  nl_ns_exec "$NS_PRIV" ip addr add "$PRIV_IP/24" dev veth0
  nl_ns_exec "$NS_PRIV" ip link set veth0 up
  nl_ns_exec "$NS_PRIV" ip route add default via "$NAT_IN_IP"
  nl_offload_off "$NS_PRIV" veth0 tx off
  nl_offload_off "$NS_NAT" veth0 tx off
  nl_offload_off "$NS_NAT" veth1 tx off
  nl_ns_exec "$NS_NAT" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
  nl_ns_exec "$NS_NAT" nft -f - <<EOF
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "veth0" masquerade
  }
}
EOF
}
if ! { joinnet_up && nat_up; } >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

# --- the relay: dev-veth with [join] ------------------------------------------
CONFIG="$WORK/join.toml"
if ! joinnet_profile "$CONFIG" "$CONSENT_S" "$REBIND_S"; then
  fail "${T}_setup" "profile does not validate"; exit 1
fi
parser_refusals() {  # the STUN parser's refusals: the sum of drop/join/<reason> over stun.h's reasons
  jn_api GET /stats >/dev/null
  jq -r '[.counters | to_entries[] | select(.key | test("^drop/join/(too_short|too_long|not_stun|bad_cookie|bad_length|wrong_type|bad_attribute|attribute_after_fingerprint|attribute_after_integrity|unknown_comprehension_required|duplicate_attribute|bad_attribute_value|no_username|username_too_long|no_integrity|no_fingerprint|bad_fingerprint)$")) | .value] | add // 0' "$WORK/reply"
}

rc=0
joinnet_start_relay 120 || rc=$?
if (( rc != 0 )); then
  fail "${T}_setup" "stentord not ready (rc $rc)"; exit 1
fi
RELAY_LOG=$JN_RELAY_LOG
# An expired token first, so that it has expired by the time it is used.
if ! jn_mint 1 1 >"$WORK/expired.tok" || ! jn_mint 8 >"$WORK/tokens"; then
  fail "${T}_setup" "could not mint tokens"; exit 1
fi
mapfile -t TOKS <"$WORK/tokens"

# The speaker: 440 Hz for the whole run (it is stopped at the end).
joinnet_start_speaker 90

# --- 1. nat ---------------------------------------------------------------------
name="${T}_nat"
jn_run_listener nat "$NS_PRIV" "$PRIV_IP:0" 0 4 --wav-dir "$WORK/natwav"
if mapped=$(jn_joined_as nat 5) && [[ -n "$mapped" ]]; then
  table=$(jn_listeners | tr '\n' ' ')
  rc=0; wait "$LPID" || rc=$?
  read -r dur freq < <(netlib_wav_info "$WORK/natwav/listener-0.wav")
  echo "# $name: joined as $mapped; table: $table; WAV $dur s, ~$freq Hz"
  if [[ "${mapped%:*}" != "$NAT_OUT_IP" ]]; then
    fail "$name" "relay saw $mapped, not the NAT's outside address $NAT_OUT_IP"
  elif ! grep -qw -- "$mapped" <<<"$table" || grep -q -- "$PRIV_IP" <<<"$table"; then
    fail "$name" "listener table '$table' lacks $mapped or holds the private $PRIV_IP"
  elif (( rc != 0 )); then
    fail "$name" "listener exited $rc: $(tail -n3 "$WORK/nat.err" | tr '\n' ' ')"
  elif [[ "$freq" == "?" ]] || ! awk -v f="$freq" 'BEGIN { exit !(f >= 435 && f <= 445) }'; then
    fail "$name" "WAV ($dur s) rough frequency $freq Hz, not 440 +- 5"
  else
    pass "$name"
  fi
else
  fail "$name" "never joined: $(tr '\n' ' ' <"$WORK/nat.err")"
fi

# --- 2. aioice --------------------------------------------------------------------
joinnet_test_aioice "${T}_aioice" "${NL_NS_LISTENERS[2]}" "${NL_LISTENER_IPS[2]}" 1.5

# --- 3. turnutils_stunclient: a plain Binding Request ---------------------------
name="${T}_stunclient_unanswered"
n0=$(jn_nb_listeners); m0=$(parser_refusals); r0=$(jn_counter join_replies)
ip netns exec "${NL_NS_LISTENERS[2]}" timeout 4 turnutils_stunclient -p "$JN_SESSION_PORT" "$JN_RELAY" \
  >"$WORK/stunclient.out" 2>&1 && rc=0 || rc=$?
n1=$(jn_nb_listeners); m1=$(parser_refusals); r1=$(jn_counter join_replies)
echo "# $name: stunclient exit $rc, STUN parser refusals (drop/join/<reason>) $m0 -> $m1, join_replies $r0 -> $r1, listeners $n0 -> $n1"
if grep -qiE 'XOR-MAPPED|Success|mapped' "$WORK/stunclient.out"; then
  fail "$name" "stunclient got an answer: $(tr '\n' ' ' <"$WORK/stunclient.out" | head -c 300)"
elif (( m1 <= m0 )); then
  fail "$name" "no drop/join/<parser reason> moved ($m0 -> $m1)"
elif (( r1 != r0 || n1 != n0 )); then
  fail "$name" "join_replies $r0 -> $r1, listeners $n0 -> $n1 (want no change)"
else
  pass "$name"
fi

# --- 4. forged token, wrong password, expired token: silence ---------------------
read -r exp_tok exp_pw <"$WORK/expired.tok"
joinnet_test_forged_silent "${T}_forged_silent" "${NL_NS_LISTENERS[2]}" "${NL_LISTENER_IPS[2]}" \
  "expired $exp_tok $exp_pw"

# --- 5. consent: SIGKILL, no leave -----------------------------------------------
joinnet_test_consent "${T}_consent" "${NL_NS_LISTENERS[0]}" "${NL_LISTENER_IPS[0]}" 3 5 "$CONSENT_S"

# --- 6. leave: SIGTERM -----------------------------------------------------------------
name="${T}_leave"
L2_IP=${NL_LISTENER_IPS[1]}
jn_run_listener leave "${NL_NS_LISTENERS[1]}" "$L2_IP:6000" 4 30
if jn_joined_as leave 5 >/dev/null && jn_has_listener "$L2_IP:6000"; then
  l0=$(jn_counter join/left)
  kill -TERM "$LPID"
  rc=0; wait "$LPID" || rc=$?
  l1=$(jn_counter join/left)
  if jn_has_listener "$L2_IP:6000"; then
    fail "$name" "still listed after the listener exited"
  elif (( l1 != l0 + 1 )); then
    fail "$name" "join/left $l0 -> $l1, want +1"
  elif ! grep -q '^stentor-listener: join: left$' "$WORK/leave.err" || (( rc != 0 )); then
    fail "$name" "listener exited $rc: $(tail -n2 "$WORK/leave.err" | tr '\n' ' ')"
  else
    pass "$name"
  fi
else
  fail "$name" "never joined: $(tr '\n' ' ' <"$WORK/leave.err")"
fi

# --- 7. rebind: the NAT's mapping changes mid-stream -------------------------------
name="${T}_rebind"
jn_run_listener rebind "$NS_PRIV" "$PRIV_IP:0" 5 20
if mapped=$(jn_joined_as rebind 5) && [[ -n "$mapped" ]]; then
  sleep 1
  b0=$(jn_counter join/rebound)
  # Removing the address the mappings use makes the kernel drop them
  # (masquerade's address notifier); the next request goes out from the new one.
  nl_ns_exec "$NS_NAT" ip addr del "$NAT_OUT_IP/24" dev veth0
  nl_ns_exec "$NS_NAT" ip addr add "$NAT_OUT_IP2/24" dev veth0
  t_move=$(jn_now)
  moved=""
  for _ in $(seq 100); do
    if jn_listeners | grep -q "^$NAT_OUT_IP2:"; then moved=$(jn_now); break; fi
    kill -0 "$LPID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n "$moved" ]]; then
    u0=$(netlib_udp_in "$NS_PRIV"); sleep 2; u1=$(netlib_udp_in "$NS_PRIV")
    b1=$(jn_counter join/rebound)
    table=$(jn_listeners | tr '\n' ' ')
    n409=$(grep -c 'refused: 409' "$WORK/rebind.err" || true)
    echo "# $name: moved to $NAT_OUT_IP2 $(jn_elapsed "$t_move" "$moved") s after the change (after $n409 answers 409); $((u1 - u0)) datagrams in the next 2 s; table: $table"
    if (( b1 != b0 + 1 )); then
      fail "$name" "join/rebound $b0 -> $b1, want +1"
    elif grep -q -- "$mapped" <<<"$table"; then
      fail "$name" "the old mapping $mapped is still listed"
    elif (( u1 - u0 < 80 )); then
      fail "$name" "only $((u1 - u0)) datagrams in 2 s after the rebinding (want >= 80 of 100)"
    else
      pass "$name"
    fi
  else
    fail "$name" "not moved to $NAT_OUT_IP2 within 10 s: $(tail -n3 "$WORK/rebind.err" | tr '\n' ' ')"
  fi
  netlib_stop_pid "$LPID" TERM 3
else
  fail "$name" "never joined: $(tr '\n' ' ' <"$WORK/rebind.err")"
fi

# --- 8. rotate: the signing keys change on SIGHUP, no restart -----------------------
# Key 2 added and minting, then key 1 removed: a key-1 token (minted at the
# start) and a key-2 token both join while both keys are live; after the
# second SIGHUP the key-1 token gets nothing (drop/join/unknown_key), the
# key-2 token that joined and left is refused as spent, and a new key-2
# token joins.
name="${T}_rotate"
umask 077
openssl rand -hex 32 >"$WORK/join-2.key"
umask 022
set_keys() {  # KEYS MINT_ID: rewrites [join]'s keys and mint_key_id ([join] is the profile's last section)
  sed -i -e '/^keys = /d' -e '/^mint_key_id = /d' "$CONFIG"
  printf 'keys = [%s]\nmint_key_id = %s\n' "$1" "$2" >>"$CONFIG"
  kill -HUP "$RELAY_PID"
}
ask_key() {  # TOKEN PASSWORD -> the peer's verdict line (it leaves again when joined)
  jn_ask "${NL_NS_LISTENERS[2]}" "${NL_LISTENER_IPS[2]}" "$1" "$2" 1.5 leave || true
}
old_tok=$(jn_tok 6); old_pw=$(jn_pw 6)
bad=""
set_keys "{ id = 1, secret_file = \"$WORK/join-1.key\" }, { id = 2, secret_file = \"$WORK/join-2.key\" }" 2
if netlib_wait_for_line "$RELAY_LOG" ' reload:   join.keys: keys 1, 2 live, minting with key 2' 5 "$RELAY_PID"; then
  if read -r new_tok new_pw < <(jn_mint 1) && [[ $(jq -r .key_id "$WORK/reply") == 2 ]]; then
    out_old=$(ask_key "$old_tok" "$old_pw"); out_new=$(ask_key "$new_tok" "$new_pw")
    echo "# $name: keys 1, 2: key-1 token: $out_old; key-2 token: $out_new"
    [[ "$out_old" == "ok RESPONSE "* ]] || bad+=" key-1 token refused while key 1 is live;"
    [[ "$out_new" == "ok RESPONSE "* ]] || bad+=" key-2 token refused;"
    set_keys "{ id = 2, secret_file = \"$WORK/join-2.key\" }" 2
    if netlib_wait_for_line "$RELAY_LOG" ' reload:   join.keys: tokens of key 1 are refused' 5 "$RELAY_PID"; then
      u0=$(jn_counter drop/join/unknown_key)
      # The key-2 token above left, so it is spent (join/refused_spent); a
      # fresh one minted with key 2 joins.
      out_old=$(ask_key "$old_tok" "$old_pw"); out_spent=$(ask_key "$new_tok" "$new_pw")
      out_new="not minted"
      read -r fresh_tok fresh_pw < <(jn_mint 1) && out_new=$(ask_key "$fresh_tok" "$fresh_pw")
      u1=$(jn_counter drop/join/unknown_key)
      echo "# $name: key 2 only: key-1 token: $out_old; the key-2 token that left: $out_spent; a new key-2 token: $out_new; drop/join/unknown_key $u0 -> $u1"
      [[ "$out_old" == silent* ]] || bad+=" key-1 token answered after its key was removed ($out_old);"
      (( u1 > u0 )) || bad+=" drop/join/unknown_key $u0 -> $u1;"
      [[ "$out_spent" == *"token spent"* ]] || bad+=" a key-2 token that left was not refused as spent ($out_spent);"
      [[ "$out_new" == "ok RESPONSE "* ]] || bad+=" key-2 token refused after the second reload;"
    else
      bad+=" second reload not applied: $(grep ' reload:' "$RELAY_LOG" | tail -n3 | tr '\n' ' ');"
    fi
  else
    bad+=" minting after the reload: key $(jq -r .key_id "$WORK/reply" 2>/dev/null);"
  fi
else
  bad+=" first reload not applied: $(grep ' reload:' "$RELAY_LOG" | tail -n3 | tr '\n' ' ');"
fi
if [[ -z "$bad" ]]; then pass "$name"; else fail "$name" "$bad"; fi

netlib_stop_pid "$JN_SPK_PID" TERM 3
netlib_stop_pid "$RELAY_PID" INT 10
(( FAILS == 0 ))
