#include "ctl_range.h"

#include <arpa/inet.h>

#include <algorithm>
#include <compare>

namespace stentor::ctl {

// A decimal integer, whole string, no sign, within [lo, hi].
std::optional<uint64_t> decimal(std::string_view s, uint64_t lo, uint64_t hi) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    if (v < lo || v > hi) return std::nullopt;
    return v;
}

namespace {

// A 128-bit address value: IPv4 in lo.
struct u128 {
    uint64_t hi = 0, lo = 0;
    auto operator<=>(const u128&) const = default;
};

// a - b, a >= b.
u128 sub(u128 a, u128 b) {
    u128 r{a.hi - b.hi, a.lo - b.lo};
    if (a.lo < b.lo) --r.hi;
    return r;
}
// a + n; *carry set when it runs past 2^128.
u128 add(u128 a, uint64_t n, bool* carry) {
    u128 r{a.hi, a.lo + n};
    *carry = false;
    if (r.lo < a.lo && ++r.hi == 0) *carry = true;
    return r;
}

// Decimal text of a 128-bit number (long division by 10 in 32-bit halves).
std::string decimal128(u128 v) {
    if (v.hi == 0) return std::to_string(v.lo);
    std::string out;
    while (v.hi != 0 || v.lo != 0) {
        const uint64_t rh = v.hi % 10;
        v.hi /= 10;
        const uint64_t c1 = (rh << 32) | (v.lo >> 32);
        const uint64_t c0 = ((c1 % 10) << 32) | (v.lo & 0xffffffffu);
        v.lo = ((c1 / 10) << 32) | (c0 / 10);
        out.push_back(static_cast<char>('0' + c0 % 10));
    }
    std::reverse(out.begin(), out.end());
    return out;
}


std::optional<u128> address(std::string_view s, bool v6) {
    const std::string z(s);
    if (v6) {
        if (z.find('%') != std::string::npos) return std::nullopt;   // no zone: listeners have no link scope
        in6_addr a{};
        if (inet_pton(AF_INET6, z.c_str(), &a) != 1) return std::nullopt;
        u128 r;
        for (int i = 0; i < 8; ++i) r.hi = (r.hi << 8) | a.s6_addr[i];
        for (int i = 8; i < 16; ++i) r.lo = (r.lo << 8) | a.s6_addr[i];
        return r;
    }
    in_addr a{};
    if (inet_pton(AF_INET, z.c_str(), &a) != 1) return std::nullopt;   // strict dotted quad
    return u128{0, ntohl(a.s_addr)};
}

}  // namespace

uint32_t listener_range::ipv4(uint64_t i) const { return static_cast<uint32_t>(lo + i); }

std::array<uint8_t, 16> listener_range::ipv6_bytes(uint64_t i) const {
    bool carry = false;
    const u128 v = add({hi, lo}, i, &carry);
    std::array<uint8_t, 16> b{};
    for (int k = 0; k < 8; ++k) {
        b[7 - k] = static_cast<uint8_t>(v.hi >> (8 * k));
        b[15 - k] = static_cast<uint8_t>(v.lo >> (8 * k));
    }
    return b;
}

std::string listener_range::address_text(uint64_t i) const {
    char text[INET6_ADDRSTRLEN] = {};
    if (ipv6) {
        const auto b = ipv6_bytes(i);
        inet_ntop(AF_INET6, b.data(), text, sizeof text);
    } else {
        const in_addr a{htonl(ipv4(i))};
        inet_ntop(AF_INET, &a, text, sizeof text);
    }
    return text;
}

std::optional<listener_range> parse_listener_range(std::string_view s, uint64_t max, std::string* why) {
    auto bad = [why](std::string w) -> std::optional<listener_range> {
        *why = std::move(w);
        return std::nullopt;
    };
    const char* const forms =
        "addresses are not A.B.C.D, A.B.C.D-E.F.G.H, A.B.C.D+N or, in brackets, [IPV6], [IPV6-IPV6], [IPV6+N]";
    listener_range r;
    std::string_view addrs, ports;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find("]:");
        if (close == std::string_view::npos) return bad("no \"]:\" after the IPv6 addresses");
        r.ipv6 = true;
        addrs = s.substr(1, close - 1);
        ports = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos) return bad("no ':' before the ports");
        addrs = s.substr(0, colon);
        if (addrs.find(':') != std::string_view::npos)
            return bad("IPv6 addresses go in brackets: [A-B]:P[-Q] or [A+N]:P[-Q]");
        ports = s.substr(colon + 1);
    }
    const auto dash_p = ports.find('-');
    const auto p0 = decimal(ports.substr(0, dash_p), 1, 65535);
    const auto p1 = dash_p == std::string_view::npos ? p0 : decimal(ports.substr(dash_p + 1), 1, 65535);
    if (!p0 || !p1) return bad("ports are not P or P-Q (1..65535)");

    const auto dash = addrs.find('-'), plus = addrs.find('+');
    if (dash != std::string_view::npos && plus != std::string_view::npos) return bad(forms);
    const auto first = address(addrs.substr(0, std::min(dash, plus)), r.ipv6);
    if (!first) {
        // The other family's address where this one's was expected.
        if (address(addrs.substr(0, std::min(dash, plus)), !r.ipv6))
            return bad(r.ipv6 ? "an IPv4 address in brackets: brackets are for IPv6" : forms);
        return bad(forms);
    }
    u128 last = *first;
    if (dash != std::string_view::npos) {
        const auto end = address(addrs.substr(dash + 1), r.ipv6);
        if (!end) {
            if (address(addrs.substr(dash + 1), !r.ipv6)) return bad("a range's two ends are of two families");
            return bad(forms);
        }
        last = *end;
    } else if (plus != std::string_view::npos) {
        const auto n = decimal(addrs.substr(plus + 1), 1, UINT64_MAX);
        if (!n) return bad("+N is not a count of addresses 1.." + std::to_string(UINT64_MAX));
        bool carry = false;
        last = add(*first, *n - 1, &carry);
        if (carry || (!r.ipv6 && last.lo > 0xffffffffu))
            return bad(std::string("+") + std::to_string(*n) + " runs past the last " + (r.ipv6 ? "IPv6" : "IPv4") +
                       " address");
    }
    if (last < *first || *p1 < *p0) return bad("a range ends before it starts");
    const u128 span = sub(last, *first);   // addresses - 1
    if (span.hi != 0 || span.lo >= max) {
        bool carry = false;
        const u128 count = add(span, 1, &carry);
        return bad((carry ? std::string("2^128") : decimal128(count)) + " addresses, more than " +
                   std::to_string(max) + " listeners");
    }
    r.hi = first->hi;
    r.lo = first->lo;
    r.addresses = span.lo + 1;
    r.port_first = static_cast<unsigned>(*p0);
    r.port_last = static_cast<unsigned>(*p1);
    // addresses <= max and ports <= 65535: the product fits 64 bits.
    if (r.size() > max) return bad(std::to_string(r.size()) + " listeners, more than " + std::to_string(max));
    return r;
}

}  // namespace stentor::ctl
