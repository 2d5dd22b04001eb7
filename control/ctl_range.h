// stentorctl's --range (docs/api.md "Bulk"): many listeners in one word, for
// either family, with one parser. Pure, no-throw, table-tested
// (tests/unit/test_ctl_range.cc); stentorctl links it beside the relay's
// control library, which holds it too so the unit tests reach it.
//
//   RANGE   = ADDRS ":" PORTS
//   ADDRS   = A.B.C.D | A.B.C.D-E.F.G.H | A.B.C.D+N
//           | "[" IPV6 "]" | "[" IPV6-IPV6 "]" | "[" IPV6+N "]"
//   PORTS   = P | P-Q                         (1..65535)
//
// A-B is every address from A to B (B included, same family); A+N is N
// addresses from A. IPv6 addresses go in brackets, as in "[IPV6]:PORT"
// (their colons would otherwise run into the port's). The listeners are
// every address with every port, addresses outer; at most `max` of them,
// else a refusal that says how many were asked for.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stentor::ctl {

struct listener_range {
    bool ipv6 = false;
    // The first address as a 128-bit number (IPv4: in `lo`, hi 0).
    uint64_t hi = 0, lo = 0;
    uint64_t addresses = 0;          // how many addresses (>= 1)
    unsigned port_first = 0, port_last = 0;

    uint64_t size() const { return addresses * (port_last - port_first + 1); }
    // The i-th address (i < addresses): IPv4 in host order, IPv6 as 16
    // bytes in network order.
    uint32_t ipv4(uint64_t i) const;
    std::array<uint8_t, 16> ipv6_bytes(uint64_t i) const;
    // Its text: dotted quad, or RFC 5952 canonical IPv6 (no brackets).
    std::string address_text(uint64_t i) const;
};

// nullopt and *why (what is wrong, in words a user reads after "--range X: ")
// if `s` is not a RANGE or holds more than `max` listeners.
// A decimal integer, the whole string, no sign, within [lo, hi]: how
// stentorctl reads every number (CLI11 would take "-5" as 2^64-5).
std::optional<uint64_t> decimal(std::string_view s, uint64_t lo, uint64_t hi);

std::optional<listener_range> parse_listener_range(std::string_view s, uint64_t max, std::string* why);

}  // namespace stentor::ctl
