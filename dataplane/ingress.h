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

}  // namespace stentor::dp
