// The networks a relay exchanges trunks with: [fleet] trunk_peers
// (docs/fleet.md "Who a trunk may reach", docs/security.md). The registry
// says *which* relay is where; this list, in the operator's profile and
// nowhere in etcd, bounds *where* that can be. An origin adds a trunk
// listener only at an address inside it, an edge takes a trunk flow only
// from an address inside it; so whoever can write etcd's keys cannot point
// a relay's trunks at a third party, nor feed an edge from outside.
//
// Pure and allocation-light: read once from the profile, asked per trunk
// record by plan_trunks (never per packet).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stentor::fleet {

// One CIDR of either family: the network's address with its host bits zero.
struct peer_net {
    bool ipv6 = false;
    uint32_t ip4 = 0;                    // host order (IPv4)
    std::array<uint8_t, 16> ip6{};       // network order (IPv6)
    unsigned prefix_len = 0;             // 0..32 or 0..128
    bool operator==(const peer_net&) const = default;
};

// "10.20.0.0/16" or "2001:db8:77::/48". nullopt and *why (what is wrong,
// never the input's echo alone) when it is not one: no '/', an address
// that is not one, a prefix length out of range or not a plain decimal,
// an IPv6 zone, host bits set ("10.20.0.1/16": the network is named, so a
// typo that widens or narrows the list is never taken silently).
std::optional<peer_net> parse_peer_net(const std::string& s, std::string* why);
std::string format_peer_net(const peer_net& n);

struct peer_allowlist {
    std::vector<peer_net> nets;
    // Empty: nothing is allowed (a relay whose list was never set sends no
    // trunk and takes none: fail closed).
    bool allows(uint32_t ip4) const;
    bool allows(const std::array<uint8_t, 16>& ip6) const;
    std::string describe() const;   // "10.20.0.0/16, 2001:db8:77::/48" or "nothing"
};

}  // namespace stentor::fleet
