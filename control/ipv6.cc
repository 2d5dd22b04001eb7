#include "ipv6.h"

#include <algorithm>

#include <arpa/inet.h>

#include <fmt/format.h>

#include "config.h"   // ipv4_special, format_ipv4

namespace stentor::control {

std::optional<ipv6_addr> parse_ipv6(std::string_view s) {
    // INET6_ADDRSTRLEN (46) covers the longest form with an embedded IPv4.
    // inet_pton reads a C string: a NUL inside would end the address there
    // and let "2001:db8::7\0junk" pass as 2001:db8::7 (parse_ipv4 refuses
    // it too).
    if (s.empty() || s.size() >= INET6_ADDRSTRLEN || s.find('\0') != std::string_view::npos) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    ipv6_addr a{};
    if (::inet_pton(AF_INET6, buf, a.data()) != 1) return std::nullopt;
    return a;
}

std::string format_ipv6(const ipv6_addr& a) {
    char buf[INET6_ADDRSTRLEN];
    if (::inet_ntop(AF_INET6, a.data(), buf, sizeof buf) == nullptr) return "?";
    return buf;
}

std::string cidr6(const ipv6_addr& a, unsigned prefix) {
    ipv6_addr net{};
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned bits = prefix > 8 * i ? std::min(8u, prefix - 8 * i) : 0u;
        net[i] = static_cast<uint8_t>(a[i] & (bits == 0 ? 0 : 0xff << (8 - bits)));
    }
    return fmt::format("{}/{}", format_ipv6(net), prefix);
}

bool ipv6_same_prefix(const ipv6_addr& a, const ipv6_addr& b, unsigned prefix) noexcept {
    if (prefix > 128) prefix = 128;
    const unsigned whole = prefix / 8;
    if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
    const unsigned rest = prefix % 8;
    if (rest == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return ((a[whole] ^ b[whole]) & mask) == 0;
}

bool ipv6_is_subnet_router_anycast(const ipv6_addr& a, unsigned prefix) noexcept {
    if (prefix >= 127) return false;
    for (unsigned b = prefix; b < 128; ++b)
        if ((a[b / 8] & (0x80u >> (b % 8))) != 0) return false;
    return true;
}

std::optional<std::string> ipv6_special(const ipv6_addr& a) {
    static constexpr uint8_t zero[16] = {};
    if (std::memcmp(a.data(), zero, 16) == 0) return "the unspecified address ::";
    if (std::memcmp(a.data(), zero, 15) == 0 && a[15] == 1) return "the loopback address ::1";
    if (ipv6_is_multicast(a)) return "a multicast address (ff00::/8)";
    if (ipv6_is_link_local(a)) return "a link-local address (fe80::/10)";
    if (std::memcmp(a.data(), zero, 10) == 0 && a[10] == 0xff && a[11] == 0xff)
        return "an IPv4-mapped address (::ffff:0:0/96): use the IPv4 address";
    if (std::memcmp(a.data(), zero, 12) == 0) return "an IPv4-compatible address (::/96, deprecated)";
    if (std::memcmp(a.data(), zero, 8) == 0 && a[8] == 0xff && a[9] == 0xff && a[10] == 0 && a[11] == 0)
        return "an IPv4-translated address (::ffff:0:0:0/96, RFC 2765): use the IPv4 address";
    // An IPv4 host in IPv6 clothes: a NAT64 gateway (RFC 6052 well-known
    // prefix), a 6to4 relay (RFC 3056) or a Teredo relay (RFC 4380) would
    // carry the packet to the IPv4 address inside, which must be a global
    // one: these forms are defined only for global IPv4 addresses (RFC
    // 6052 3.1 names RFC 1918 and RFC 6598 space; a 6to4 site and a
    // Teredo client's mapping are public addresses). Anything else inside
    // is a forgery or a host the relay must not reach this way (multicast,
    // loopback, a private network behind someone's translator).
    const auto v4_at = [&](size_t i, uint32_t x = 0) {
        return ((uint32_t{a[i]} << 24) | (uint32_t{a[i + 1]} << 16) | (uint32_t{a[i + 2]} << 8) | a[i + 3]) ^ x;
    };
    const auto not_global = [](uint32_t ip) -> std::optional<std::string> {
        if (auto why = ipv4_special(ip)) return *why;
        if ((ip >> 24) == 10 || (ip >> 20) == 0xac1 || (ip >> 16) == 0xc0a8) return "a private address (RFC 1918)";
        if ((ip >> 22) == (0x64400000u >> 22)) return "shared address space (100.64.0.0/10, RFC 6598)";
        return std::nullopt;
    };
    static constexpr uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (std::memcmp(a.data(), nat64, 12) == 0)
        if (auto why = not_global(v4_at(12)))
            return fmt::format("a NAT64 address (64:ff9b::/96, RFC 6052) of {}, which is not a global IPv4 address: {}",
                               format_ipv4(v4_at(12)), *why);
    if (a[0] == 0x20 && a[1] == 0x02)
        if (auto why = not_global(v4_at(2)))
            return fmt::format("a 6to4 address (2002::/16, RFC 3056) of {}, which is not a global IPv4 address: {}",
                               format_ipv4(v4_at(2)), *why);
    // Teredo: 2001:0::/32, the server's IPv4 address, flags, then the
    // client's mapped port and IPv4 address, both inverted (RFC 4380 4).
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
        if (auto why = not_global(v4_at(12, 0xffffffffu)))
            return fmt::format("a Teredo address (2001::/32, RFC 4380) of client {}, which is not a global IPv4 address: {}",
                               format_ipv4(v4_at(12, 0xffffffffu)), *why);
        if (auto why = not_global(v4_at(4)))
            return fmt::format("a Teredo address (2001::/32, RFC 4380) of server {}, which is not a global IPv4 address: {}",
                               format_ipv4(v4_at(4)), *why);
    }
    static constexpr uint8_t discard[8] = {0x01, 0x00, 0, 0, 0, 0, 0, 0};
    if (std::memcmp(a.data(), discard, 8) == 0) return "in the discard-only prefix 100::/64 (RFC 6666)";
    return std::nullopt;
}

ipv6_addr ipv6_solicited_node(const ipv6_addr& a) noexcept {
    ipv6_addr s{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a[13], a[14], a[15]};
    return s;
}

}  // namespace stentor::control
