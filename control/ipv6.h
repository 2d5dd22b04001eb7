// IPv6 addresses in the control plane (issue 15): the type, text form,
// prefixes, and the rules a relay address, a gateway and a listener address
// meet. Addresses are 16 bytes in network order (as on the wire), unlike
// IPv4 addresses, which the control plane keeps in host order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace stentor::control {

using ipv6_addr = std::array<uint8_t, 16>;

struct ipv6_addr_hash {
    size_t operator()(const ipv6_addr& a) const noexcept {
        uint64_t h, l;
        std::memcpy(&h, a.data(), 8);
        std::memcpy(&l, a.data() + 8, 8);
        uint64_t k = h ^ (l * 0x9e3779b97f4a7c15ULL);
        k ^= k >> 29;
        k *= 0xbf58476d1ce4e5b9ULL;
        k ^= k >> 32;
        return static_cast<size_t>(k);
    }
};

// RFC 4291 text forms ("2001:db8::1", "::ffff:192.0.2.1"), via inet_pton:
// no zone ("%eth0"), no brackets, no prefix. nullopt if not an address.
std::optional<ipv6_addr> parse_ipv6(std::string_view s);
// RFC 5952 canonical text (inet_ntop: lower case, longest zero run as ::).
std::string format_ipv6(const ipv6_addr& a);
std::string cidr6(const ipv6_addr& a, unsigned prefix);

// The first `prefix` bits of a and b agree (prefix 0..128).
bool ipv6_same_prefix(const ipv6_addr& a, const ipv6_addr& b, unsigned prefix) noexcept;

// a's bits after the first `prefix` are all 0: in a's prefix of that length,
// a is the Subnet-Router anycast address (RFC 4291 2.6.1), which every
// router on the link answers; a /127 has none (RFC 6164).
bool ipv6_is_subnet_router_anycast(const ipv6_addr& a, unsigned prefix) noexcept;

inline bool ipv6_is_link_local(const ipv6_addr& a) noexcept { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }
inline bool ipv6_is_multicast(const ipv6_addr& a) noexcept { return a[0] == 0xff; }

// Why `a` cannot be a unicast host on the internet, or nullopt: unspecified,
// loopback, multicast, link-local, IPv4-mapped/-compatible/-translated (an
// IPv4 host in IPv6 clothes: it would bypass the IPv4 rules), a NAT64
// (64:ff9b::/96), 6to4 (2002::/16) or Teredo (2001::/32) address whose
// IPv4 address is not global (ipv4_special: multicast, loopback,
// broadcast, ...; RFC 1918 private, RFC 6598 shared), the discard-only
// prefix 100::/64 (RFC 6666). The documentation prefix is allowed (tests
// use it), and so are these forms of a global IPv4 host.
std::optional<std::string> ipv6_special(const ipv6_addr& a);

// The IPv6 solicited-node multicast address of `a` (RFC 4291 2.7.1):
// ff02::1:ff00:0/104 plus a's low 24 bits; and its Ethernet group MAC
// 33:33 + the address's last 4 bytes (RFC 2464 7).
ipv6_addr ipv6_solicited_node(const ipv6_addr& a) noexcept;

}  // namespace stentor::control
