#!/usr/bin/env bash
# End-to-end: stentord's signals (issue 10, "Nothing lost across a restart").
# SIGHUP reloads what can change live (limits, overload thresholds, mixer
# settings) and refuses the rest, naming each setting, changing nothing; a
# profile that does not parse is refused with its file:line; SIGTERM drains
# (API closed first, final counters) and exits 0. Before this change SIGHUP
# killed the daemon.
# Rows 1-4: net_null profile, loopback API, unprivileged. Row 5 (a mixer
# change reaching a session that is mixing) needs root: stentord on
# configs/dev-veth-mix.toml in network namespaces (scripts/netlib.sh), a real
# ffmpeg speaker and a listener that logs the size of every packet.
# Bounded (< 60 s); stops only the processes it started.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
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

# 5. A [mixer] change reaches a session that is mixing: a speaker talks into
#    mix session 1 at 64 kbit/s; SIGHUP with bitrate_kbps = 16; the session's
#    encoder says 16000 bit/s through the API (libopus' own answer), the
#    mixer counts one encoder retuned, and the listener's packets shrink from
#    ~160 to ~40 bytes of Opus (64 vs 16 kbit/s at 20 ms) without a restart.
#    Before this change the reload was refused ("mixer.bitrate_kbps: the
#    mixer reads its settings at start").
M=${T}_hup_applies_mixer
if [[ $(id -u) -ne 0 ]]; then fail "$M" "needs root (network namespaces)"; exit 1; fi
for tool in ffmpeg jq python3; do
  command -v "$tool" >/dev/null || { fail "$M" "$tool not installed"; exit 1; }
done
# shellcheck source=scripts/netlib.sh
source "$REPO/scripts/netlib.sh"
netlib_init ""
e2e_hook() { rm -rf "$WORK"; }
netlib_trap e2e_hook
if ! netlib_up >"$WORK/netlib.log" 2>&1; then
  cat "$WORK/netlib.log" >&2; fail "$M" "could not build the namespace topology"; exit 1
fi
MIX="$WORK/mix.toml"
sed -e 's/^stats_interval_s = 5/stats_interval_s = 0/' configs/dev-veth-mix.toml >"$MIX"
printf '\n[mixer]\nbitrate_kbps = 64\n' >>"$MIX"
MTOKEN=$(awk -F'"' '/^token = /{ print $2 }' "$MIX")
MAPI="http://127.0.0.1:$(sed -n 's/^listen = "[^:]*:\([0-9]*\)".*/\1/p' "$MIX")/api/v1"
mapi() { ip netns exec "$NL_NS_RELAY" curl -s -H "Authorization: Bearer $MTOKEN" "$MAPI$1"; }
# channels, bit/s, complexity, settings version of session 1's encoder
encoder() { mapi /sessions/1 | jq -r '.mix.encoder | "\(.channels) \(.bitrate_bps) \(.complexity) v\(.settings_version)"'; }
RELAY_LOG="$WORK/mix.log"
if ! netlib_start_relay "$BUILD_DIR" "$MIX" 40 "$RELAY_LOG" 15; then fail "$M" "stentord not ready"; exit 1; fi
# The listener: one line "<unix time> <RTP payload bytes>" per packet.
ip netns exec "$NL_NS_L1" timeout 30 python3 -u -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5004))
while True:
    d = s.recv(2048)
    print(f"{time.time():.3f} {len(d) - 12}")
' >"$WORK/sizes.txt" 2>"$WORK/rx.err" &
netlib_track $!
for _ in $(seq 50); do
  [[ -n "$(ip netns exec "$NL_NS_L1" ss -Hlun 'sport = :5004' 2>/dev/null)" ]] && break
  sleep 0.1
done
netlib_speaker_cmd 10
"${NL_SPEAKER_CMD[@]}" >"$WORK/speaker.log" 2>&1 &
netlib_track $!
sleep 4
enc_before=$(encoder)
t_hup=$(date +%s.%N)
sed -i -e 's/^bitrate_kbps = 64$/bitrate_kbps = 16/' "$MIX"
kill -HUP "$RELAY_PID"
netlib_wait_for_line "$RELAY_LOG" ' reload: applied 1 setting\(s\): mixer.bitrate_kbps' 5 "$RELAY_PID"
applied=$?
sleep 4
enc_after=$(encoder)
retuned=$(mapi /stats | jq '.counters["mixer/encoders_retuned"]')
# Mean payload over 3 s before the SIGHUP and over 3 s from 1 s after it.
read -r before after < <(awk -v h="$t_hup" '
  $1 > h - 3 && $1 <= h { b += $2; nb++ }
  $1 > h + 1 && $1 <= h + 4 { a += $2; na++ }
  END { printf "%.1f %.1f\n", nb ? b / nb : 0, na ? a / na : 0 }' "$WORK/sizes.txt")
echo "# mixer: encoder $enc_before -> $enc_after, encoders_retuned $retuned, mean Opus payload $before B -> $after B"
if (( applied == 0 )) && [[ "$enc_before" == "2 64000 5 v1" ]] &&
   [[ "$enc_after" == "2 16000 5 v2" ]] &&
   [[ "$retuned" == 1 ]] && awk -v b="$before" -v a="$after" 'BEGIN { exit !(b > 120 && a > 0 && a < 60) }'; then
  pass "$M"
else
  fail "$M" "reload applied: $([[ $applied == 0 ]] && echo yes || echo no) ($(grep ' reload: ' "$RELAY_LOG" | tail -2 | tr '\n' ' ')), encoder $enc_before -> $enc_after, retuned $retuned, payload $before -> $after B"
fi
