#include "peer_nets.h"

#include <arpa/inet.h>

#include <algorithm>

#include <fmt/format.h>

namespace stentor::fleet {

namespace {

bool same_prefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, unsigned len) {
    const unsigned bytes = len / 8, bits = len % 8;
    if (!std::equal(a.begin(), a.begin() + bytes, b.begin())) return false;
    if (bits == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

uint32_t mask4(unsigned len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

}  // namespace

std::optional<peer_net> parse_peer_net(const std::string& s, std::string* why) {
    const auto fail = [&](const std::string& w) -> std::optional<peer_net> {
        *why = w;
        return std::nullopt;
    };
    if (s.find('\0') != std::string::npos) return fail("holds a NUL byte");
    const auto slash = s.find('/');
    if (slash == std::string::npos)
        return fail("not a network: ADDRESS/PREFIX (e.g. \"10.20.0.0/16\" or \"2001:db8:77::/48\"); one host is /32 "
                    "or /128");
    const std::string addr = s.substr(0, slash), len = s.substr(slash + 1);
    if (len.empty() || len.size() > 3 || !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return fail(fmt::format("prefix length \"{}\" is not a number", len));
    const unsigned plen = static_cast<unsigned>(std::stoul(len));
    peer_net n;
    n.prefix_len = plen;
    in_addr a4{};
    if (inet_pton(AF_INET, addr.c_str(), &a4) == 1) {
        if (plen > 32) return fail(fmt::format("prefix length {} is past 32 (IPv4)", plen));
        n.ip4 = ntohl(a4.s_addr);
        if ((n.ip4 & ~mask4(plen)) != 0) {
            peer_net net = n;
            net.ip4 &= mask4(plen);
            return fail(fmt::format("host bits set: the network is {}", format_peer_net(net)));
        }
        return n;
    }
    if (addr.find('%') != std::string::npos) return fail("an IPv6 zone (%...) has no place in a network");
    if (inet_pton(AF_INET6, addr.c_str(), n.ip6.data()) != 1)
        return fail(fmt::format("\"{}\" is not an IPv4 or IPv6 address", addr));
    n.ipv6 = true;
    if (plen > 128) return fail(fmt::format("prefix length {} is past 128 (IPv6)", plen));
    peer_net net = n;
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned from = i * 8;
        if (from >= plen) net.ip6[i] = 0;
        else if (from + 8 > plen) net.ip6[i] &= static_cast<uint8_t>(0xff << (8 - (plen - from)));
    }
    if (net.ip6 != n.ip6) return fail(fmt::format("host bits set: the network is {}", format_peer_net(net)));
    return n;
}

std::string format_peer_net(const peer_net& n) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (n.ipv6) {
        inet_ntop(AF_INET6, n.ip6.data(), buf, sizeof buf);
    } else {
        const in_addr a{htonl(n.ip4)};
        inet_ntop(AF_INET, &a, buf, sizeof buf);
    }
    return fmt::format("{}/{}", buf, n.prefix_len);
}

bool peer_allowlist::allows(uint32_t ip4) const {
    return std::any_of(nets.begin(), nets.end(),
                       [&](const peer_net& n) { return !n.ipv6 && (ip4 & mask4(n.prefix_len)) == n.ip4; });
}

bool peer_allowlist::allows(const std::array<uint8_t, 16>& ip6) const {
    return std::any_of(nets.begin(), nets.end(),
                       [&](const peer_net& n) { return n.ipv6 && same_prefix(ip6, n.ip6, n.prefix_len); });
}

std::string peer_allowlist::describe() const {
    if (nets.empty()) return "nothing";
    std::string s;
    for (const auto& n : nets) s += (s.empty() ? "" : ", ") + format_peer_net(n);
    return s;
}

}  // namespace stentor::fleet
