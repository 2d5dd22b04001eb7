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
    // IPv6 (issue 15): the relay's global unicast address on this port, in
    // wire order; has_ip6 0 = the port speaks no IPv6 (every IPv6 frame is
    // dropped as ipv6_off). The relay keeps no link-local address: it
    // sends NS and everything else from ip6 (RFC 4861 7.2.2 allows any of
    // the interface's addresses), so no neighbour ever needs one.
    uint8_t ip6[16];
    uint8_t has_ip6;
};

}  // namespace stentor::dp
