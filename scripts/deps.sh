#!/usr/bin/env bash
# Install the Debian 12 packages Stentor needs to build, run and test.
# Idempotent and silent when everything is already installed; runs
# `apt-get update` only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  meson ninja-build pkg-config g++ clang libclang-rt-14-dev
  libdpdk-dev dpdk dpdk-dev liburing-dev libopus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libmicrohttpd-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libfmt-dev
  libogg-dev libopusfile-dev libpcap-dev libnuma-dev
  libfuse3-dev   # tests: slow_fs, a FUSE disk whose calls the recorder tests hold
  libcurl4-openssl-dev libcpp-httplib-dev
  libssl-dev     # join tokens (HMAC-SHA256) and STUN MESSAGE-INTEGRITY (HMAC-SHA1); stentorctl's HTTPS
  libgnutls28-dev  # the API's HTTPS: libmicrohttpd serves TLS with GnuTLS; the profile check loads the certificate with it
  libsrtp2-dev   # SRTP: the reference peer of the unit tests and bench/srtp_harness
  libisal-dev    # STUN FINGERPRINT: CRC-32 with PCLMULQDQ (also a dependency of libdpdk-dev)
  libipsec-mb-dev   # join: MESSAGE-INTEGRITY of a burst in AVX-512/AVX2 lanes (also a dependency of libdpdk-dev)
  libspdlog-dev  # the daemon's log (control/log.h)
  libsystemd-dev # sd_notify: readiness, watchdog, reload under systemd (control/service_notify.h)
  # real peers and tools for the demo and end-to-end tests
  ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  sox opus-tools python3-scapy tshark iproute2 ethtool procps jq
  gstreamer1.0-plugins-bad   # srtpdec: SRTP listeners of e2e_srtp
  python3-aioice coturn nftables   # join: a STUN peer we did not write, coturn's stunclient, NAT
  etcd-server etcd-client          # fleet: the registry the relays and directors share (tests start their own)
  openssl curl   # e2e_api_tls: a throwaway CA and certificate, a TLS client we did not write
  groff-base     # ctl_doc test: the generated man page renders without warnings
  prometheus     # e2e_metrics: a real Prometheus scrapes stentord; promtool checks /metrics
  valgrind       # bench/count_instructions.sh: instructions per replica (callgrind)
  python3-matplotlib               # scripts/bench-report.py: the benchmark report's plots
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -E)
  else
    echo "deps.sh: missing packages (${missing[*]}) and not root; install them or run as root" >&2
    exit 1
  fi
else
  SUDO=()
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark would otherwise ask whether non-root users may capture packets.
echo "wireshark-common wireshark-common/install-setuid boolean false" | "${SUDO[@]}" debconf-set-selections
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" >/dev/null
echo "deps.sh: done"
