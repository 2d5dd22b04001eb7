#!/usr/bin/env bash
# End-to-end: SIGHUP after a secret file was rewritten in place (same path,
# so the same profile text, but a new secret). stentord reads these files
# only at start: the reload is refused naming each one (api.token_file,
# api.tls_cert and api.tls_key, a speaker's SRTP key_file,
# fleet.trunk_key_file) and nothing changes. The old API token still opens
# the API and the new one does not, the old certificate is still served,
# and a live setting edited in the same reload (limits.headroom_pct) is not
# applied either. With the old contents back, the next SIGHUP applies it.
# Before, such a reload logged "nothing changed" while the old secret stayed
# in use (docs/profiles.md "Reload").
# net_null profile, the API over HTTPS on loopback, the registry (etcd)
# unreachable on purpose: unprivileged. Bounded (< 60 s); stops only the
# stentord it started.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T=e2e_reload_secrets
STENTORD="$BUILD_DIR/control/stentord"
PREFIX="stentor-e2e-rsec-$$"
WORK=$(mktemp -d /tmp/stentor-e2e-rsec.XXXXXX)
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; }
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "stentord not built"; exit 1; fi
for tool in openssl curl; do
  command -v "$tool" >/dev/null || { fail "${T}_setup" "$tool missing (scripts/deps.sh)"; exit 1; }
done

# --- the secrets: a CA and two server certificates (the running one and its
#     renewal), two API tokens, two speaker SRTP keys, two trunk keys -------
cd "$WORK" || exit 1
umask 077
mkcert() {   # name CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" \
    2>/dev/null &&
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$1.ext" &&
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 -extfile "$1.ext" \
    -out "$1.pem" 2>/dev/null
}
if ! { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=ca \
         -days 2 2>/dev/null && mkcert old ca && mkcert new ca; }; then
  fail "${T}_setup" "openssl could not make the test certificates"; exit 1
fi
OLD_TOKEN=$(openssl rand -hex 24)
NEW_TOKEN=$(openssl rand -hex 24)
printf '%s\n' "$OLD_TOKEN" >old.token
printf '%s\n' "$NEW_TOKEN" >new.token
openssl rand -base64 30 >old.srtp
openssl rand -base64 30 >new.srtp
openssl rand -hex 32 >old.trunk
openssl rand -hex 32 >new.trunk
# The files the profile names, written in place (same inode) from here on.
put() { cat "$WORK/$1" >"$WORK/$2"; }   # put SOURCE NAMED-FILE
put old.pem server.pem; put old.key server.key; put old.token api.token; put old.srtp speaker.srtp
put old.trunk trunk.key
umask 022
cd "$REPO" || exit 1

PORT=$(( 20000 + ($$ + 3571) % 20000 ))
ETCD_PORT=$(( 20000 + ($$ + 3572) % 20000 ))   # nothing listens: the relay keeps trying, runs on
P="$WORK/p.toml"
sed -e "s/^listen = .*/listen = \"127.0.0.1:$PORT\"/" -e 's/^stats_interval_s = 5/stats_interval_s = 0/' \
    -e '/^plain_http = /d' \
    -e "s|^token = .*|token_file = \"$WORK/api.token\"\ntls_cert = \"$WORK/server.pem\"\ntls_key = \"$WORK/server.key\"|" \
    -e 's/^recording = false/recording = false\nsrtp_ingress = "required"/' \
    -e "s|^  ssrc = 1234|  ssrc = 1234\n  [[session.speaker.srtp_key]]\n  id = \"spk1\"\n  key_file = \"$WORK/speaker.srtp\"|" \
    configs/bench-null.toml >"$P"
cat >>"$P" <<EOF

[fleet]
etcd = ["http://127.0.0.1:$ETCD_PORT"]
relay_id = "rsec-$$"
role = "origin"
trunk_peers = ["198.18.0.0/24"]
trunk_key_file = "$WORK/trunk.key"
EOF
if ! out=$("$STENTORD" --check -c "$P" 2>&1); then fail "${T}_setup" "profile: ${out:0:400}"; exit 1; fi

LOG="$WORK/d.log"
"$STENTORD" -c "$P" --file-prefix "$PREFIX" --duration 50 >"$LOG" 2>&1 &
PID=$!
API="https://127.0.0.1:$PORT/api/v1"
# HTTP status of GET /capacity with a token.
status() { curl -s -o /dev/null -w '%{http_code}' -m 3 --cacert "$WORK/ca.pem" -H "Authorization: Bearer $1" "$API/capacity"; }
headroom() {
  curl -s -m 3 --cacert "$WORK/ca.pem" -H "Authorization: Bearer $OLD_TOKEN" "$API/capacity" |
    sed -n 's/.*"headroom_pct":\([0-9]*\).*/\1/p'
}
# SHA-256 fingerprint of the certificate the API serves, and of a file's.
served() { openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$WORK/ca.pem" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256; }
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
for _ in $(seq 150); do
  [[ $(status "$OLD_TOKEN") == 200 ]] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [[ $(status "$OLD_TOKEN") != 200 ]]; then fail "${T}_start" "no API: $(tail -5 "$LOG")"; exit 1; fi
if [[ $(headroom) == 10 && $(served) == "$(fingerprint "$WORK/old.pem")" ]]; then pass "${T}_start"
else fail "${T}_start" "headroom $(headroom), served $(served)"; exit 1; fi

# SIGHUP, then wait (bounded) until the reload's outcome and every line
# after it is in the log; RELOAD holds this reload's lines.
RELOAD=
hup() {
  local from i
  from=$(($(wc -l <"$LOG") + 1))
  kill -HUP "$PID"
  for i in $(seq 100); do
    RELOAD=$(tail -n "+$from" "$LOG" | grep ' reload: ')
    # The outcome line comes first, the refused settings after it: wait
    # for as many setting lines as the outcome announces.
    local want
    want=$(sed -n 's/.*reload: refused, nothing changed (\([0-9]*\) setting(s).*/\1/p' <<<"$RELOAD")
    if [[ -n "$want" ]]; then
      (( $(grep -c ' reload:   ' <<<"$RELOAD") >= want )) && return 0
    elif grep -qE ' reload: (applied|refused|.*nothing changed)' <<<"$RELOAD"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}
# Each row: rewrite secret files in place (and headroom_pct, a live
# setting, with them), SIGHUP; the reload is refused naming exactly the
# secrets' settings; the old token opens the API, the new one does not, the
# old certificate is served, headroom_pct is what it was. Then the old
# contents go back (in place too).
row() {   # name  "source:file-the-profile-names ..."  expected-refused-settings...
  local name=$1 pairs=$2 want_head why="" k pr
  shift 2
  want_head=$(headroom)
  sed -i -e "s/^headroom_pct = [0-9]* /headroom_pct = $((want_head + 10)) /" "$P"
  for pr in $pairs; do put "${pr%%:*}" "${pr#*:}"; done
  hup || why+=" no reload outcome in the log;"
  grep -q "reload: refused, nothing changed ($# setting(s) cannot change live):" <<<"$RELOAD" || why+=" count;"
  for k in "$@"; do grep -qF " reload:   $k: " <<<"$RELOAD" || why+=" $k not named;"; done
  (( $(grep -c ' reload:   ' <<<"$RELOAD") == $# )) || why+=" other settings named;"
  [[ $(status "$OLD_TOKEN") == 200 ]] || why+=" old token refused;"
  [[ $(status "$NEW_TOKEN") == 401 ]] || why+=" new token let in;"
  [[ $(served) == "$(fingerprint "$WORK/old.pem")" ]] || why+=" the served certificate changed;"
  [[ $(headroom) == "$want_head" ]] || why+=" headroom_pct $(headroom), not $want_head;"
  kill -0 "$PID" 2>/dev/null || why+=" stentord exited;"
  if [[ -z "$why" ]]; then pass "${T}_$name"; else fail "${T}_$name" "$why $(tr '\n' '|' <<<"$RELOAD")"; fi
  for pr in $pairs; do k=${pr%%:*}; put "old.${k#new.}" "${pr#*:}"; done
  sed -i -e "s/^headroom_pct = [0-9]* /headroom_pct = $want_head /" "$P"
}

row token_file new.token:api.token api.token_file
row tls_certificate_renewed "new.pem:server.pem new.key:server.key" api.tls_cert api.tls_key
row srtp_key_file new.srtp:speaker.srtp "session[0].speaker[0].srtp_key[0].key_file"
row trunk_key_file new.trunk:trunk.key fleet.trunk_key_file

# Every secret as it was, headroom_pct edited: applied, and only it.
sed -i -e 's/^headroom_pct = [0-9]* /headroom_pct = 30 /' "$P"
hup
if grep -q 'reload: applied 1 setting(s): limits.headroom_pct$' <<<"$RELOAD" && [[ $(headroom) == 30 ]] &&
   [[ $(status "$OLD_TOKEN") == 200 ]]; then
  pass "${T}_old_secrets_back_reload_applies"
else
  fail "${T}_old_secrets_back_reload_applies" "headroom $(headroom) $(tr '\n' '|' <<<"$RELOAD")"
fi

kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
if [[ $rc -eq 0 ]] && grep -q "=== end ===" "$LOG"; then pass "${T}_term"; else fail "${T}_term" "rc=$rc $(tail -3 "$LOG")"; fi
