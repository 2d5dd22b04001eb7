#!/usr/bin/env bash
# End-to-end: fleet trunks over IPv6 (issue 15 item 1, docs/fleet.md "Trunks
# over IPv6"): e2e_trunks.sh with TRUNK_FAMILY=ipv6. Two origins and an edge
# in namespaces with a real etcd; the relays' trunk addresses, the trunks and
# the speaker on IPv6 (every neighbour found by NS/NA), the edge's
# trunk_family = "ipv6"; origin-1 SIGKILLed mid-stream: the edge's listener
# loses 0 packets and hears 440 Hz. Prints "PASS e2e_trunks_ipv6_<name>" /
# "FAIL ...". Bounded (~40 s).
set -euo pipefail
TRUNK_FAMILY=ipv6 exec "$(dirname "$0")/e2e_trunks.sh" "$@"
