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
#                         back, drop/join/{forged,bad_integrity}, nobody added
#   e2e_join6_consent     a listener joined over IPv6 and killed by SIGKILL
#                         (no leave) is removed within consent_timeout_s + 2 s
#                         (join/consent_expired), and its port receives
#                         nothing more
# The setup and the aioice, forged and consent checks are e2e_join.sh's, for
# IPv6 (scripts/joinnet.sh).
# The relay finds the listeners' MACs by neighbour discovery (nothing pinned).
# Prints "PASS <name>" / "FAIL <name> <reason>". Needs root. About 25 s.
# Environment: BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T="e2e_join6"
CONSENT_S=5

FAILS=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; FAILS=$((FAILS + 1)); }

# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
# shellcheck source=scripts/joinnet.sh
source "$REPO/scripts/joinnet.sh"
joinnet_preflight jq curl ffmpeg sox
netlib_init ""
WORK=$(mktemp -d "/tmp/${NL_P}.XXXXXX")
e2e_hook() { rm -rf "$WORK"; }
netlib_trap e2e_hook
joinnet_init 6 "$WORK"
L6=("${JN_L[@]}")

# netlib's LAN; each listener namespace with an IPv6 address on it too.
if ! joinnet_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2
  fail "${T}_setup" "could not build the namespace topology"; exit 1
fi

# --- the relay: dev-veth with an IPv6 address and [join] ---------------------
if ! joinnet_profile "$WORK/join6.toml" "$CONSENT_S" 2; then
  fail "${T}_setup" "profile does not validate"; exit 1
fi
rc=0
joinnet_start_relay 90 || rc=$?
if (( rc != 0 )); then
  fail "${T}_setup" "stentord not ready (rc $rc)"; exit 1
fi
if ! jn_mint 6 >"$WORK/tokens"; then
  fail "${T}_setup" "could not mint tokens"; exit 1
fi
mapfile -t TOKS <"$WORK/tokens"
joinnet_start_speaker 60

# --- 1. stentor-listener over IPv6: join, hear, leave ----------------------------
name="${T}_listener"
want="[${L6[0]}]:6000"
l0=$(jn_counter join/left)
jn_run_listener l6 "${NL_NS_LISTENERS[0]}" "$want" 0 4 --wav-dir "$WORK/wav"
if mapped=$(jn_joined_as l6 8) && [[ -n "$mapped" ]]; then
  table=$(jn_listeners | tr '\n' ' ')
  rc=0; wait "$LPID" || rc=$?
  l1=$(jn_counter join/left)
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
  elif (( l1 != l0 + 1 )) || jn_has_listener "$want" || ! grep -q '^stentor-listener: join: left$' "$WORK/l6.err"; then
    fail "$name" "the leave on exit: join/left $l0 -> $l1, still listed: $(jn_has_listener "$want" && echo yes || echo no)"
  else
    pass "$name"
  fi
else
  fail "$name" "never joined: $(tr '\n' ' ' <"$WORK/l6.err")"
fi

# --- 2. aioice over IPv6 ------------------------------------------------------------
joinnet_test_aioice "${T}_aioice" "${NL_NS_LISTENERS[1]}" "${L6[1]}" 3

# --- 3. forged token, wrong password over IPv6: silence -----------------------------
joinnet_test_forged_silent "${T}_forged_silent" "${NL_NS_LISTENERS[2]}" "${L6[2]}"

# --- 4. consent over IPv6: SIGKILL, no leave ------------------------------------------
joinnet_test_consent "${T}_consent" "${NL_NS_LISTENERS[2]}" "${L6[2]}" 3 8 "$CONSENT_S"

netlib_stop_pid "$JN_SPK_PID" TERM 3
netlib_stop_pid "$RELAY_PID" INT 10
(( FAILS == 0 ))
