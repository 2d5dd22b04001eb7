#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan + UBSan + libFuzzer).
#   fuzz/build.sh [OUT_DIR]          (default: build-fuzz)
# Not part of meson on purpose: the project is configured with g++, and
# libFuzzer/sanitizer coverage needs clang. Sources are compiled directly.
# toml++ is compiled header-only (-DTOML_HEADER_ONLY=1) so the TOML parser
# itself is instrumented and fuzzed, not just our use of it.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${1:-build-fuzz}
[[ "$OUT" = /* ]] || OUT="$REPO/$OUT"
mkdir -p "$OUT"

CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz/build.sh: $CXX not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

# DPDK headers as system headers (only rte_config.h is reached today);
# -march from libdpdk.pc kept so the build matches the meson one.
DPDK_CFLAGS=$(pkg-config --cflags libdpdk | sed 's/-I/-isystem /g')

COMMON=(-std=c++20 -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -Wall -Wextra -Werror
        -I"$REPO/dataplane" -I"$REPO/dataplane/include" -I"$REPO/control" -I"$REPO/fleet")

build() {
  local name=$1; shift
  # Only rebuild when a source (or a header listed in DEPS) is newer than
  # the binary.
  local newest
  # shellcheck disable=SC2086
  newest=$(ls -t "$@" ${DEPS:-} "$REPO/fuzz/build.sh" | head -n1)
  if [[ -x "$OUT/$name" && "$OUT/$name" -nt "$newest" ]]; then
    echo "fuzz/build.sh: $name up to date"
    return
  fi
  echo "fuzz/build.sh: building $name"
  # In the background: the targets build in parallel (see the wait below).
  # shellcheck disable=SC2086
  "$CXX" "${COMMON[@]}" $EXTRA -o "$OUT/$name" "$@" $LIBS &
  pids+=($!)
}
pids=()

EXTRA="" LIBS="" DEPS="" build fuzz_parse "$REPO/fuzz/fuzz_parse.cc" "$REPO/dataplane/parse.cc"

# toml++ 3.3.0 has a debug-only assertion in parse_key() that a header such
# as "[\x11dataplane]" trips (upstream marzer/tomlplusplus PR #301); release
# builds, which is what stentord ships (g++, NDEBUG), return a clean
# parse_error there. TOML_ASSERT is therefore compiled out like in release so
# fuzzing can go deeper; FUZZ_TOML_ASSERTS=1 keeps it to re-check upstream.
TOML_FLAGS="-DTOML_HEADER_ONLY=1"
[[ "${FUZZ_TOML_ASSERTS:-0}" = 1 ]] || TOML_FLAGS+=" -DTOML_ASSERT(expr)=static_assert(true)"

# config.cc loads [api] TLS files with GnuTLS (control/tls_files.cc) and SRTP key
# files (control/srtp_keys.cc, dataplane/srtp.cc: libcrypto); [fleet] takes
# trunk_peers (fleet/peer_nets.cc), the etcd password (fleet/etcd_client.cc:
# libcurl; its excerpts of what etcd answered: fleet/log_escape.cc) and the
# trunk key file (fleet/trunk_key.cc: libcrypto).
FLEET_SRC=("$REPO/fleet/peer_nets.cc" "$REPO/fleet/etcd_client.cc" "$REPO/fleet/trunk_key.cc" "$REPO/fleet/log_escape.cc")
FLEET_DEPS="$REPO/fleet/peer_nets.h $REPO/fleet/etcd_client.h $REPO/fleet/trunk_key.h $REPO/fleet/log_escape.h"
EXTRA="$TOML_FLAGS $DPDK_CFLAGS" LIBS="-lfmt -lgnutls -lcrypto -lcurl" DEPS="$REPO/control/config.h $REPO/control/session.h $REPO/control/tls_files.h $REPO/control/srtp_keys.h $REPO/control/dp_memory.h $FLEET_DEPS" \
  build fuzz_profile "$REPO/fuzz/fuzz_profile.cc" "$REPO/control/config.cc" "$REPO/control/ipv6.cc" "$REPO/control/ip6.cc" "$REPO/control/tls_files.cc" "$REPO/control/srtp_keys.cc" "$REPO/control/dp_memory.cc" "$REPO/dataplane/srtp.cc" "${FLEET_SRC[@]}"

# The API request parser (control/api_parse.cc) with the IPv4 helpers it
# shares with the profile loader (control/config.cc).
EXTRA="$TOML_FLAGS $DPDK_CFLAGS" LIBS="-lfmt -lgnutls -lcrypto -lcurl" \
  DEPS="$REPO/control/api_parse.h $REPO/control/config.h $REPO/control/state.h $REPO/control/session.h $REPO/control/action_error.h $REPO/control/srtp_keys.h $REPO/control/dp_memory.h $FLEET_DEPS" \
  build fuzz_api "$REPO/fuzz/fuzz_api.cc" "$REPO/control/api_parse.cc" "$REPO/control/config.cc" "$REPO/control/ipv6.cc" "$REPO/control/ip6.cc" "$REPO/control/tls_files.cc" "$REPO/control/srtp_keys.cc" "$REPO/control/dp_memory.cc" "$REPO/dataplane/srtp.cc" "${FLEET_SRC[@]}"

# The journal reader (control/journal_format.cc); CRC32C is DPDK's
# rte_hash_crc, whose CPU-flag probe lives in librte_eal.
EXTRA="$DPDK_CFLAGS" LIBS="-lrte_eal" \
  DEPS="$REPO/control/journal_format.h $REPO/control/session.h" \
  build fuzz_journal "$REPO/fuzz/fuzz_journal.cc" "$REPO/control/journal_format.cc"

# The neighbour state machine (dataplane/neigh_fsm.h): header-only, so the
# target compiles the very functions neigh.cc calls.
EXTRA="" LIBS="" \
  DEPS="$REPO/dataplane/neigh_fsm.h $REPO/dataplane/include/stentor/dp_snapshot.h $REPO/dataplane/include/stentor/dp_counters.h" \
  build fuzz_arp "$REPO/fuzz/fuzz_arp.cc"

# The STUN codec of the token join (dataplane/stun.cc): HMAC-SHA1 from
# libcrypto, CRC-32 from ISA-L, as in the meson build. ISA-L's CRC is
# assembly, which ASan does not see into: tests/unit/test_stun.cc checks it
# against a guard page at every length instead.
EXTRA="" LIBS="-lcrypto -lisal" \
  DEPS="$REPO/dataplane/include/stentor/stun.h $REPO/dataplane/include/stentor/wire.h $REPO/dataplane/sha_block.h $REPO/dataplane/stun_mac.h" \
  build fuzz_stun "$REPO/fuzz/fuzz_stun.cc" "$REPO/dataplane/stun.cc"

status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
(( status == 0 )) || { echo "fuzz/build.sh: build failed" >&2; exit 1; }
echo "fuzz/build.sh: targets in $OUT"
