#include "ip6.h"

#include <cstring>

#include <fmt/format.h>

#include "config.h"
#include "session.h"

namespace stentor::control {

std::optional<std::string> ipv6_peer_refusal(const ipv6_bytes& a) {
    static constexpr uint8_t zero[16] = {};
    if (std::memcmp(a.data(), zero, 16) == 0) return "unspecified address (::)";
    if (std::memcmp(a.data(), zero, 15) == 0 && a[15] == 1) return "loopback address (::1)";
    if (a[0] == 0xff) return "multicast address (ff00::/8): a listener is one unicast host";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local address (fe80::/10) without a scope: the relay keeps no link scope for peers; "
               "give a global or unique-local address";
    if (std::memcmp(a.data(), zero, 10) == 0 && a[10] == 0xff && a[11] == 0xff)
        return fmt::format("IPv4-mapped address (::ffff:0:0/96): give the IPv4 address {} itself (the relay is dual stack)",
                           format_ipv4((uint32_t{a[12]} << 24) | (uint32_t{a[13]} << 16) | (uint32_t{a[14]} << 8) | a[15]));
    if (std::memcmp(a.data(), zero, 12) == 0)
        return "IPv4-compatible address (::/96, deprecated by RFC 4291): give the IPv4 address itself";
    if (std::memcmp(a.data(), zero, 8) == 0 && a[8] == 0xff && a[9] == 0xff && a[10] == 0 && a[11] == 0)
        return fmt::format("IPv4-translated address (::ffff:0:0:0/96, RFC 2765): give the IPv4 address {} itself",
                           format_ipv4((uint32_t{a[12]} << 24) | (uint32_t{a[13]} << 16) | (uint32_t{a[14]} << 8) | a[15]));
    // Whatever else the network layer calls no unicast host (100::/64, NAT64
    // 6to4 and Teredo of an IPv4 address that is not global, ...).
    return ipv6_special(a);
}

bool parse_ip_any(std::string_view s, std::optional<uint32_t>* v4, std::optional<ipv6_bytes>* v6, std::string* why) {
    v4->reset();
    v6->reset();
    if (s.find(':') == std::string_view::npos) {
        *v4 = parse_ipv4(s);
        if (!*v4) *why = "is not an IPv4 or IPv6 address";
        return v4->has_value();
    }
    if (s.find('%') != std::string_view::npos) {
        *why = "has a zone (%...): link-local peers are not accepted; give a global or unique-local address";
        return false;
    }
    *v6 = parse_ipv6(s);
    if (!*v6) *why = "is not an IPv4 or IPv6 address";
    return v6->has_value();
}

bool parse_endpoint_any(std::string_view s, std::optional<uint32_t>* v4, std::optional<ipv6_bytes>* v6,
                        unsigned* port, std::string* why) {
    v4->reset();
    v6->reset();
    std::string_view host, port_text;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            *why = "expected [IPV6]:PORT";
            return false;
        }
        host = s.substr(1, close - 1);
        port_text = s.substr(close + 2);
        if (host.find(':') == std::string_view::npos) {
            *why = "brackets hold an IPv6 address only";
            return false;
        }
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos) {
            *why = "expected ADDRESS:PORT";
            return false;
        }
        host = s.substr(0, colon);
        port_text = s.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            *why = "an IPv6 address needs brackets: [IPV6]:PORT";
            return false;
        }
    }
    uint64_t p = 0;
    if (port_text.empty() || port_text.size() > 5) {
        *why = "port must be 1..65535";
        return false;
    }
    for (char c : port_text) {
        if (c < '0' || c > '9') {
            *why = "port must be 1..65535";
            return false;
        }
        p = p * 10 + static_cast<uint64_t>(c - '0');
    }
    if (p == 0 || p > 65535) {
        *why = "port must be 1..65535";
        return false;
    }
    if (!parse_ip_any(host, v4, v6, why)) {
        std::string text;
        text.reserve(host.size() + why->size() + 3);
        text.append(1, '"').append(host).append("\" ").append(*why);
        why->swap(text);
        return false;
    }
    *port = static_cast<unsigned>(p);
    return true;
}

std::string format_endpoint6(const ipv6_bytes& a, unsigned port) {
    return fmt::format("[{}]:{}", format_ipv6(a), port);
}

uint16_t ipv6_listener_udp_sum(const ipv6_bytes& a, unsigned port) {
    uint32_t s = port & 0xffff;
    for (unsigned i = 0; i < 16; i += 2) s += (uint32_t{a[i]} << 8) | a[i + 1];
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

std::string format_peer(uint32_t ip, const std::optional<ipv6_addr>& ip6, unsigned port) {
    if (ip6) return format_endpoint6(*ip6, port);
    return fmt::format("{}:{}", format_ipv4(ip), port);
}

}  // namespace stentor::control
