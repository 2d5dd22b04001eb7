// The relay's own identity on one port, as the validator and the replies
// need it. Plain data, no DPDK types: the parser, its unit tests and its
// fuzzer include it without EAL.
#pragma once

#include <cstdint>

namespace stentor::dp {

// Multi-byte fields in network byte order where marked _be.
struct port_identity {
    uint8_t mac[6];
    uint32_t ip_be;            // relay address on this port
    uint16_t max_frame;        // MTU + 14 (+4 if VLAN ever allowed); longer frames are dropped
    uint16_t udp_port_min;     // host order: speaker ingress range
    uint16_t udp_port_max;
};

}  // namespace stentor::dp
