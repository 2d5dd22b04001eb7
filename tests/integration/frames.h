// Layer-by-layer frame builders for the abuse tests (corpus, flood). Each
// layer wraps the next one's bytes and computes its own lengths and
// checksums from a naive reference sum (harness ip_checksum), never from the
// code under test. A test mangles one field afterwards and, where the row is
// about a later layer, calls fix_ipv4_checksum() so that only the field it is
// about is wrong.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "harness.h"

namespace stentor::test::frames {

// mac_t comes from harness.h.

inline constexpr mac_t our_mac{0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
inline constexpr mac_t peer_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
inline constexpr mac_t other_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};
inline constexpr mac_t bcast_mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline constexpr mac_t zero_mac{};

inline void put16(bytes& b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}

inline void put32(bytes& b, size_t off, uint32_t v) {
    put16(b, off, static_cast<uint16_t>(v >> 16));
    put16(b, off + 2, static_cast<uint16_t>(v));
}

inline bytes cat(bytes a, const bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

inline bytes eth(const mac_t& dst, const mac_t& src, uint16_t type, const bytes& payload) {
    bytes b(14);
    std::memcpy(b.data(), dst.data(), 6);
    std::memcpy(b.data() + 6, src.data(), 6);
    put16(b, 12, type);
    return cat(b, payload);
}

struct ipv4_opts {
    uint32_t src = speaker_ip;
    uint32_t dst = relay_ip;
    uint8_t proto = 17;
    uint8_t ihl_words = 5;        // > 5 appends NOP options (valid checksum)
    uint16_t flags_frag = 0x4000; // DF
};

inline void fix_ipv4_checksum(bytes& f, size_t ip_off = 14) {
    const size_t ihl = 4u * (f[ip_off] & 0x0f);
    put16(f, ip_off + 10, 0);
    put16(f, ip_off + 10, ip_checksum(f.data() + ip_off, ihl < 20 ? 20 : ihl));
}

inline bytes ipv4(const ipv4_opts& o, const bytes& payload) {
    const size_t hl = 4u * o.ihl_words;
    bytes b(hl, 0);
    b[0] = static_cast<uint8_t>(0x40 | o.ihl_words);
    put16(b, 2, static_cast<uint16_t>(hl + payload.size()));
    put16(b, 6, o.flags_frag);
    b[8] = 64;
    b[9] = o.proto;
    put32(b, 12, o.src);
    put32(b, 16, o.dst);
    for (size_t i = 20; i < hl; ++i) b[i] = 1;   // NOP options
    put16(b, 10, ip_checksum(b.data(), hl));
    return cat(b, payload);
}

// UDP checksum left 0 ("none", legal for IPv4): the relay does not verify it.
inline bytes udp(uint16_t sport, uint16_t dport, const bytes& payload) {
    bytes b(8, 0);
    put16(b, 0, sport);
    put16(b, 2, dport);
    put16(b, 4, static_cast<uint16_t>(8 + payload.size()));
    return cat(b, payload);
}

inline bytes rtp(uint8_t b0 = 0x80, uint8_t pt = 111, uint32_t ssrc = 1234, uint16_t seq = 1,
                 size_t payload = 80) {
    bytes b(12 + payload, 0);
    b[0] = b0;
    b[1] = pt;
    put16(b, 2, seq);
    put32(b, 4, 960u * seq);
    put32(b, 8, ssrc);
    for (size_t i = 0; i < payload; ++i) b[12 + i] = static_cast<uint8_t>(i * 7 + seq);
    return b;
}

inline bytes icmp(uint8_t type, uint8_t code, size_t data_len) {
    bytes b(8 + data_len, 0);
    b[0] = type;
    b[1] = code;
    put16(b, 4, 0x1234);
    put16(b, 6, 1);
    for (size_t i = 0; i < data_len; ++i) b[8 + i] = static_cast<uint8_t>(i);
    put16(b, 2, ip_checksum(b.data(), b.size()));
    return b;
}

// A frame from the registered speaker to session port 40000, good in every layer.
inline bytes speaker_frame(uint16_t seq = 1, size_t payload = 80, uint32_t ssrc = 1234) {
    return eth(our_mac, peer_mac, 0x0800, ipv4({}, udp(5004, 40000, rtp(0x80, 111, ssrc, seq, payload))));
}

inline bytes arp(uint16_t op, const mac_t& sha, uint32_t spa, const mac_t& tha, uint32_t tpa,
                 const mac_t& eth_dst) {
    return arp_frame(op, sha.data(), spa, tha.data(), tpa, eth_dst.data());
}

inline bool is_arp_request_from_relay(const bytes& f) {
    return f.size() >= 42 && be16(f.data() + 12) == 0x0806 && be16(f.data() + 20) == 1 &&
           std::memcmp(f.data() + 22, our_mac.data(), 6) == 0;
}

}  // namespace stentor::test::frames
