// IPv6 frame builders for the integration tests (issue 15): the IPv6 twin of
// frames.h. Each layer computes its own lengths; the upper-layer checksums
// (UDP over IPv6, ICMPv6) come from the harness's naive reference sum over
// the pseudo header, never from the code under test.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "frames.h"
#include "harness.h"

namespace stentor::test::frames6 {

using frames::put16;
using addr6 = std::array<uint8_t, 16>;

// 2001:db8:5354::/64 on the test port: the relay is ::1, hosts ::a and up.
inline constexpr addr6 relay6{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
inline constexpr addr6 router_ll{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
inline constexpr addr6 all_nodes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
inline constexpr addr6 unspecified{};

inline addr6 host6(uint8_t last, uint8_t hi = 0) {
    return {0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, hi, last};
}
inline addr6 solicited(const addr6& a) {
    return {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a[13], a[14], a[15]};
}
inline mac_t group_mac(const addr6& a) { return {0x33, 0x33, a[12], a[13], a[14], a[15]}; }

inline void append(bytes& b, const bytes& x) {
    const size_t n = b.size();
    b.resize(n + x.size());
    if (!x.empty()) std::memcpy(b.data() + n, x.data(), x.size());
}

// The checksum field of an upper-layer message over IPv6 (RFC 8200 8.1).
inline uint16_t l4_checksum6(const addr6& src, const addr6& dst, uint8_t next, const bytes& msg) {
    bytes ps(40 + msg.size(), 0);
    std::memcpy(ps.data(), src.data(), 16);
    std::memcpy(ps.data() + 16, dst.data(), 16);
    ps[34] = static_cast<uint8_t>(msg.size() >> 8);
    ps[35] = static_cast<uint8_t>(msg.size());
    ps[39] = next;
    if (!msg.empty()) std::memcpy(ps.data() + 40, msg.data(), msg.size());
    return ip_checksum(ps.data(), ps.size());
}

struct ipv6_opts {
    mac_t eth_dst = frames::our_mac;
    mac_t eth_src = frames::peer_mac;
    addr6 src = host6(0x0a);
    addr6 dst = relay6;
    uint8_t next = 17;            // of the fixed header; an extension's type when `ext` is set
    uint8_t hop_limit = 64;
    uint8_t version = 6;
    bytes ext{};                  // extension headers before the message
    int plen = -1;                // payload length override
    bool checksum = true;         // fill the UDP / ICMPv6 checksum
};

// Ethernet + IPv6 + (extensions) + msg, with msg's checksum filled in.
inline bytes ipv6(const ipv6_opts& o, bytes msg) {
    const uint8_t upper = o.ext.empty() ? o.next : uint8_t{0xff};
    if (o.checksum && (upper == 17 || upper == 58)) {
        const size_t at = upper == 17 ? 6 : 2;
        if (msg.size() >= at + 2) {
            msg[at] = msg[at + 1] = 0;
            uint16_t c = l4_checksum6(o.src, o.dst, upper, msg);
            if (upper == 17 && c == 0) c = 0xffff;
            put16(msg, at, c);
        }
    }
    bytes b(54, 0);
    std::memcpy(b.data(), o.eth_dst.data(), 6);
    std::memcpy(b.data() + 6, o.eth_src.data(), 6);
    put16(b, 12, 0x86dd);
    b[14] = static_cast<uint8_t>(o.version << 4);
    put16(b, 18, static_cast<uint16_t>(o.plen >= 0 ? o.plen : int(o.ext.size() + msg.size())));
    b[20] = o.next;
    b[21] = o.hop_limit;
    std::memcpy(b.data() + 22, o.src.data(), 16);
    std::memcpy(b.data() + 38, o.dst.data(), 16);
    append(b, o.ext);
    append(b, msg);
    return b;
}

inline bytes icmp6(uint8_t type, uint8_t code, size_t body) {
    bytes m(4 + body, 0);
    m[0] = type;
    m[1] = code;
    for (size_t i = 4; i < m.size(); ++i) m[i] = static_cast<uint8_t>(i);
    return m;
}

// Neighbour solicitation for `target`; with a source link-layer address
// option when `slla` is given.
inline bytes ns(const addr6& target, const mac_t* slla) {
    bytes m(24, 0);
    m[0] = 135;
    std::memcpy(m.data() + 8, target.data(), 16);
    if (slla != nullptr) {
        append(m, bytes{1, 1});
        append(m, bytes(slla->begin(), slla->end()));
    }
    return m;
}

// Neighbour advertisement (flags: 0x40 solicited, 0x20 override).
inline bytes na(uint8_t flags, const addr6& target, const mac_t* tlla) {
    bytes m(24, 0);
    m[0] = 136;
    m[4] = flags;
    std::memcpy(m.data() + 8, target.data(), 16);
    if (tlla != nullptr) {
        append(m, bytes{2, 1});
        append(m, bytes(tlla->begin(), tlla->end()));
    }
    return m;
}

// A host at `from` (MAC `mac`) solicits the relay's address, as Linux does.
inline bytes ns_for_relay(const addr6& from, const mac_t& mac) {
    return ipv6({.eth_dst = group_mac(solicited(relay6)), .eth_src = mac, .src = from, .dst = solicited(relay6),
                 .next = 58, .hop_limit = 255},
                ns(relay6, &mac));
}

// The host at `target` answers the relay's solicitation.
inline bytes na_to_relay(const addr6& target, const mac_t& mac, uint8_t flags = 0x60) {
    return ipv6({.eth_src = mac, .src = target, .next = 58, .hop_limit = 255}, na(flags, target, &mac));
}

// Is `f` a neighbour solicitation from the relay, and for which target.
inline bool is_ns_from_relay(const bytes& f, addr6* target = nullptr) {
    if (f.size() < 86 || be16(f.data() + 12) != 0x86dd || f[20] != 58 || f[54] != 135) return false;
    if (std::memcmp(f.data() + 6, frames::our_mac.data(), 6) != 0) return false;
    if (target != nullptr) std::memcpy(target->data(), f.data() + 62, 16);
    return true;
}

}  // namespace stentor::test::frames6
