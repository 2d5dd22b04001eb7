#!/usr/bin/env bash
# End-to-end: stentord's signals (issue 10, "Nothing lost across a restart").
# SIGHUP reloads what can change live (limits, overload thresholds) and
# refuses the rest, naming each setting, changing nothing; a profile that does
# not parse is refused with its file:line; SIGTERM drains (API closed first,
# final counters) and exits 0. Before this change SIGHUP killed the daemon.
# net_null profile, loopback API; bounded (< 30 s); stops only its stentord.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
T=e2e_signals
STENTORD="$BUILD_DIR/control/stentord"
PREFIX="stentor-e2e-sig-$$"
WORK=$(mktemp -d /tmp/stentor-e2e-sig.XXXXXX)
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1 $2"; }
if [[ ! -x "$STENTORD" ]]; then fail "${T}_setup" "stentord not built"; exit 1; fi
PORT=$(( 20000 + ($$ + 7919) % 20000 ))
sed -e "s/^listen = .*/listen = \"127.0.0.1:$PORT\"/" configs/bench-null.toml >"$WORK/p.toml"
TOKEN=bench-token-change-me-please
"$STENTORD" -c "$WORK/p.toml" --file-prefix "$PREFIX" --duration 25 >"$WORK/d.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null; then fail "${T}_start" "no API"; cat "$WORK/d.log"; exit 1; fi
cap() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/capacity"; }
# Wait (bounded) for a line to appear in the daemon's log.
wait_log() { for _ in $(seq 1 50); do grep -q "$1" "$WORK/d.log" && return 0; sleep 0.1; done; return 1; }

# 1. A live change: headroom 10 -> 30 shows in the capacity answer.
before=$(cap)
sed -i -e 's/^headroom_pct = 10 /headroom_pct = 30 /' "$WORK/p.toml"
kill -HUP "$PID"
if wait_log "reload: applied 1 setting(s): limits.headroom_pct" && [[ $(cap) == *'"headroom_pct":30'* ]] && [[ "$before" == *'"headroom_pct":10'* ]]; then
  pass "${T}_hup_applies_limits"; else fail "${T}_hup_applies_limits" "$(grep reload "$WORK/d.log" | tail -2) $(cap | head -c 200)"; fi

# 2. A change that needs a restart: refused, named, nothing changed (the
#    headroom edit made with it is not applied either).
sed -i -e 's/^headroom_pct = 30 /headroom_pct = 40 /' -e 's/^lcores = \[0, 1\]/lcores = [0, 1, 2]/' "$WORK/p.toml"
kill -HUP "$PID"
if wait_log "reload:   eal.lcores: needs a restart" && [[ $(cap) == *'"headroom_pct":30'* ]]; then
  pass "${T}_hup_refuses_restart_settings"; else fail "${T}_hup_refuses_restart_settings" "$(grep reload "$WORK/d.log" | tail -3)"; fi

# 3. A profile that does not parse: refused with file:line:setting.
printf '[limits]\nheadroom_pct = 95\n' >>"$WORK/p.toml"
kill -HUP "$PID"
if wait_log "reload: refused: $WORK/p.toml:" && kill -0 "$PID" 2>/dev/null; then
  pass "${T}_hup_refuses_a_bad_profile"; else fail "${T}_hup_refuses_a_bad_profile" "$(grep reload "$WORK/d.log" | tail -2)"; fi

# 4. SIGTERM drains and exits 0 with the final counters.
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
if [[ $rc -eq 0 ]] && grep -q "stentord: draining: API closed" "$WORK/d.log" && grep -q "=== end ===" "$WORK/d.log"; then
  pass "${T}_term_drains"; else fail "${T}_term_drains" "rc=$rc $(tail -3 "$WORK/d.log")"; fi
