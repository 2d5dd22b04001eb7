// Ingress: RX burst -> first-stage flow filter -> full validation (parse.h)
// -> flow lookup, SSRC, UDP checksum, policer -> speaker-packet message to
// the fan-out shards (and the recorder) or to the mixer. ARP and ICMP echo
// go to neigh.cc; every other packet is dropped and counted by reason.
#pragma once

#include <cstdint>

#include "lcore.h"

namespace stentor::dp {

// Poll every port's RX queue of this lcore once. Returns packets received.
unsigned ingress_poll(worker* w, const dp_snapshot* s, uint64_t now) noexcept;

// The UDP checksum of a received datagram, either family: the NIC's verdict
// when it gave one (RTE_MBUF_F_RX_L4_CKSUM_GOOD/BAD), else summed here over
// the pseudo header and `udp_len` bytes from `l4_off`. A zero checksum is
// "none" over IPv4 and never valid over IPv6.
bool udp_sum_ok(const rte_mbuf* m, const uint8_t* d, uint16_t l3_off, uint16_t l4_off, uint16_t udp_len,
                bool v6) noexcept;

}  // namespace stentor::dp
