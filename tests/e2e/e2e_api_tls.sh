#!/usr/bin/env bash
# End-to-end: the control API over HTTPS (issue 12 item 4). A throwaway CA
# and server certificate made here with openssl; stentord (net_null
# profile) serves the API with them; curl --cacert and stentorctl --cacert
# get through, plain HTTP and a wrong CA do not; the profile check refuses
# plain HTTP off loopback, a group-readable key, a key of another
# certificate. Prints PASS/FAIL lines. Bounded (< 40 s); stops only the
# stentord it started.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T=api_tls
STENTORD="$BUILD_DIR/control/stentord"
CTL="$BUILD_DIR/control/stentorctl"
PREFIX="stentor-e2e-tls-$$"
WORK=$(mktemp -d /tmp/stentor-e2e-tls.XXXXXX)
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; }
if [[ ! -x "$STENTORD" || ! -x "$CTL" ]]; then fail "${T}_setup" "stentord/stentorctl not built"; exit 1; fi
for tool in openssl curl; do
  command -v "$tool" >/dev/null || { fail "${T}_setup" "$tool missing (scripts/deps.sh)"; exit 1; }
done

# --- a CA, a server certificate for 127.0.0.1 signed by it, a second CA ---
cd "$WORK"
mkcert() {   # name subject-alt-names CA-prefix
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$1" 2>/dev/null &&
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext" &&
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 -extfile "$1.ext" \
    -out "$1.pem" 2>/dev/null
}
mkca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
    -subj "/CN=$1" -days 2 2>/dev/null
}
if mkca ca && mkca other-ca && mkcert server "IP:127.0.0.1,DNS:localhost" ca && mkcert stranger "IP:127.0.0.1" other-ca; then
  chmod 600 server.key stranger.key
  pass "${T}_certificates"
else
  fail "${T}_certificates" "openssl could not make the test CA"; exit 1
fi
cd "$REPO"

PORT=$(( 20000 + ($$ + 7) % 20000 ))
# The bench profile with HTTPS instead of plain HTTP.
profile() {   # listen-address extra-lines...
  sed -e "s/^listen = .*/listen = \"$1\"/" -e '/^plain_http = /d' -e '/^# Plain HTTP, said explicitly/,/^# (docs\/api.md "HTTPS")./d' \
    configs/bench-null.toml | awk -v extra="$2" '{ print } /^token = / { print extra }'
}
profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/server.key\"" >"$WORK/p.toml"

# --- the profile check -------------------------------------------------------
check_row() {   # name expected-substring profile-text
  printf '%s\n' "$3" >"$WORK/c.toml"
  local out
  if out=$("$STENTORD" -c "$WORK/c.toml" --check 2>&1); then
    fail "${T}_check_$1" "accepted"
  elif grep -qF -- "$2" <<<"$out"; then
    pass "${T}_check_$1"
  else
    fail "${T}_check_$1" "unexpected: ${out:0:300}"
  fi
}
if out=$("$STENTORD" -c "$WORK/p.toml" --check 2>&1); then pass "${T}_check_tls_profile"; else fail "${T}_check_tls_profile" "${out:0:300}"; fi
check_row plain_off_loopback "api.plain_http: plain HTTP only on a loopback address (127.0.0.0/8): 0.0.0.0 is reachable" \
  "$(sed -e "s/^listen = .*/listen = \"0.0.0.0:$PORT\"/" configs/bench-null.toml)"
check_row plain_not_said "api.listen: the API on 127.0.0.1:$PORT needs HTTPS (api.tls_cert and api.tls_key) or, on a loopback address only, plain_http = true" \
  "$(profile "127.0.0.1:$PORT" "")"
check_row key_without_cert "api.tls_key: set together with api.tls_cert" \
  "$(profile "127.0.0.1:$PORT" "tls_key = \"$WORK/server.key\"")"
check_row wrong_key "api.tls_key: $WORK/stranger.key: is not the private key of the certificate in api.tls_cert" \
  "$(profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/stranger.key\"")"
check_row cert_not_pem "api.tls_cert: $WORK/server.key: not a PEM certificate" \
  "$(profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.key\"
tls_key = \"$WORK/server.key\"")"
check_row both "api.plain_http: true, but api.tls_cert and api.tls_key are set" \
  "$(profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/server.key\"
plain_http = true")"
cp "$WORK/server.key" "$WORK/open.key"; chmod 644 "$WORK/open.key"
check_row key_mode "api.tls_key: $WORK/open.key: readable or writable by group or others (mode 0644)" \
  "$(profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/open.key\"")"
# Line and column of the setting to blame.
check_row names_the_line "c.toml:$(grep -n '^tls_key = ' <(profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/stranger.key\"") | cut -d: -f1):11: api.tls_key:" \
  "$(profile "127.0.0.1:$PORT" "tls_cert = \"$WORK/server.pem\"
tls_key = \"$WORK/stranger.key\"")"

# --- the relay over HTTPS ----------------------------------------------------
export STENTOR_TOKEN=bench-token-change-me-please
"$STENTORD" -c "$WORK/p.toml" --file-prefix "$PREFIX" --duration 30 >"$WORK/d.log" 2>&1 &
PID=$!
URL="https://127.0.0.1:$PORT"
for _ in $(seq 1 150); do
  curl -sf --cacert "$WORK/ca.pem" "$URL/api/v1/health" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if curl -sf --cacert "$WORK/ca.pem" "$URL/api/v1/health" | grep -q '"ok"'; then pass "${T}_curl_cacert"
else fail "${T}_curl_cacert" "no health answer over HTTPS"; cat "$WORK/d.log"; exit 1; fi
grep -q "api: https://127.0.0.1:$PORT/api/v1" "$WORK/d.log" && pass "${T}_logged_https" || fail "${T}_logged_https" "no https line"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/ca.pem" "$URL/api/v1/stats")
[[ "$code" == 401 ]] && pass "${T}_token_still_required" || fail "${T}_token_still_required" "got $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/ca.pem" -H "Authorization: Bearer $STENTOR_TOKEN" "$URL/api/v1/stats")
[[ "$code" == 200 ]] && pass "${T}_curl_authorized" || fail "${T}_curl_authorized" "got $code"
if curl -s --max-time 5 "http://127.0.0.1:$PORT/api/v1/health" >"$WORK/plain.out" 2>&1 && grep -q '"ok"' "$WORK/plain.out"; then
  fail "${T}_plain_http_refused" "plain HTTP answered"; else pass "${T}_plain_http_refused"; fi
curl -s --max-time 5 --cacert "$WORK/other-ca.pem" "$URL/api/v1/health" >/dev/null 2>&1; rc=$?
[[ $rc == 60 ]] && pass "${T}_wrong_ca_refused" || fail "${T}_wrong_ca_refused" "curl exit $rc (want 60: peer certificate not verified)"
curl -s --max-time 5 "$URL/api/v1/health" >/dev/null 2>&1; rc=$?
[[ $rc == 60 ]] && pass "${T}_system_cas_refuse_it" || fail "${T}_system_cas_refuse_it" "curl exit $rc"
# TLS 1.2 at least (RFC 8996).
if curl -s --max-time 5 --cacert "$WORK/ca.pem" --tlsv1.2 --tls-max 1.2 "$URL/api/v1/health" | grep -q '"ok"' &&
   curl -s --max-time 5 --cacert "$WORK/ca.pem" --tlsv1.3 "$URL/api/v1/health" | grep -q '"ok"'; then
  pass "${T}_tls12_and_tls13"; else fail "${T}_tls12_and_tls13" "one of them failed"; fi

# stentorctl: verified by default; --cacert picks the CA; https is the
# default scheme with --cacert.
ctl_row() {   # name expected-status expected-substring args...
  local name=$1 want=$2 says=$3; shift 3
  local out rc
  out=$("$CTL" "$@" 2>&1); rc=$?
  if [[ $rc == "$want" ]] && grep -qF -- "$says" <<<"$out"; then pass "${T}_ctl_$name"
  else fail "${T}_ctl_$name" "exit $rc: ${out:0:300}"; fi
}
ctl_row cacert 0 "LISTENERS" --api "$URL" --cacert "$WORK/ca.pem" show sessions
ctl_row https_by_default_with_cacert 0 "LISTENERS" show sessions --api "127.0.0.1:$PORT" --cacert "$WORK/ca.pem"
ctl_row write 0 "added listener 203.0.113.5:6000" --api "$URL" --cacert "$WORK/ca.pem" listener add 1 203.0.113.5:6000
ctl_row bulk 0 "added 200 listener(s) to session 1 in 2 request(s)" --api "$URL" --cacert "$WORK/ca.pem" \
  listener add 1 --range 203.0.113.10-203.0.113.11:7000-7099 --chunk 100
ctl_row bulk_delete 0 "removed 200 listener(s)" --api "$URL" --cacert "$WORK/ca.pem" \
  listener del 1 --range 203.0.113.10-203.0.113.11:7000-7099
ctl_row wrong_ca 1 "is not signed by the CA in $WORK/other-ca.pem" --api "$URL" --cacert "$WORK/other-ca.pem" show sessions
ctl_row system_cas 1 "give the relay's CA with --cacert FILE" --api "$URL" show sessions
ctl_row plain_to_https 1 "cannot reach the API at http://127.0.0.1:$PORT" --api "http://127.0.0.1:$PORT" show sessions
# The key never appears in what the relay says.
keybody=$(grep -v '^-----' "$WORK/server.key" | tr -d '\n' | cut -c1-40)
if grep -qF -- "$keybody" "$WORK/d.log"; then fail "${T}_key_not_logged" "key material in the log"; else pass "${T}_key_not_logged"; fi
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
