// Bytes on the wire, as every stage reads and writes them: header lengths and
// offsets of the frames the relay handles, byte loads and stores that never
// assume alignment (an IPv4 header behind a 14-byte Ethernet header is only
// 2-byte aligned), and the RFC 1071 one's-complement sums.
//
// Header only and inline: the validator, the fan-out, the ARP/ICMP replies,
// the services (mixer, recorder), the tests and the fuzzers all use the same
// helpers, so there is one definition of "the UDP checksum" in the tree.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace stentor::wire {

// ---------------------------------------------------------------- layout

inline constexpr uint16_t eth_hdr_len = 14;
inline constexpr uint16_t ipv4_hdr_len = 20;   // IHL 5: the only IPv4 header length accepted
inline constexpr uint16_t udp_hdr_len = 8;
inline constexpr uint16_t icmp_hdr_len = 8;
inline constexpr uint16_t rtp_hdr_len = 12;
inline constexpr uint16_t arp_ipv4_len = 28;   // Ethernet/IPv4 ARP body (RFC 826)
inline constexpr uint16_t l2l3l4 = eth_hdr_len + ipv4_hdr_len + udp_hdr_len;   // 42: where RTP starts

inline constexpr uint16_t ethertype_ipv4 = 0x0800;
inline constexpr uint16_t ethertype_arp = 0x0806;
inline constexpr uint16_t ethertype_vlan = 0x8100;
inline constexpr uint16_t ethertype_qinq = 0x88a8;
inline constexpr uint16_t ethertype_qinq_old = 0x9100;   // pre-802.1ad QinQ, still seen on some switches

inline constexpr uint8_t ipproto_icmp = 1;
inline constexpr uint8_t ipproto_udp = 17;

// IPv6 (RFC 8200) and its neighbour discovery (RFC 4861).
inline constexpr uint16_t ethertype_ipv6 = 0x86dd;
inline constexpr uint16_t ipv6_hdr_len = 40;
inline constexpr uint16_t l2l3l4_v6 = eth_hdr_len + ipv6_hdr_len + udp_hdr_len;   // 62: where RTP starts over IPv6
inline constexpr uint8_t ipproto_hopopts = 0;      // extension headers (RFC 8200 4, IANA
inline constexpr uint8_t ipproto_routing = 43;     // "IPv6 Extension Header Types")
inline constexpr uint8_t ipproto_fragment = 44;
inline constexpr uint8_t ipproto_esp = 50;
inline constexpr uint8_t ipproto_ah = 51;
inline constexpr uint8_t ipproto_icmpv6 = 58;
inline constexpr uint8_t ipproto_none = 59;
inline constexpr uint8_t ipproto_dstopts = 60;
inline constexpr uint8_t ipproto_mobility = 135;
inline constexpr uint8_t ipproto_hip = 139;
inline constexpr uint8_t ipproto_shim6 = 140;
inline constexpr uint8_t icmp6_echo_request = 128;
inline constexpr uint8_t icmp6_echo_reply = 129;
inline constexpr uint8_t nd_router_solicit = 133;
inline constexpr uint8_t nd_router_advert = 134;
inline constexpr uint8_t nd_neighbor_solicit = 135;
inline constexpr uint8_t nd_neighbor_advert = 136;
inline constexpr uint8_t nd_redirect = 137;
inline constexpr uint8_t nd_opt_source_lla = 1;
inline constexpr uint8_t nd_opt_target_lla = 2;
inline constexpr uint16_t nd_hdr_len = 24;          // NS/NA: type..target (RFC 4861 4.3, 4.4)
inline constexpr uint8_t nd_hop_limit = 255;        // RFC 4861 7.1.1: on-link only
inline constexpr uint8_t na_flag_router = 0x80;
inline constexpr uint8_t na_flag_solicited = 0x40;
inline constexpr uint8_t na_flag_override = 0x20;

inline constexpr uint8_t ipv4_version_ihl5 = 0x45;      // version 4, IHL 5
inline constexpr uint16_t ipv4_frag_mask = 0x3fff;      // MF + fragment offset
inline constexpr uint16_t ipv4_flag_df = 0x4000;

// Offsets within an Ethernet/IPv4(IHL 5)/UDP frame.
inline constexpr uint16_t off_eth_dst = 0;
inline constexpr uint16_t off_eth_src = 6;
inline constexpr uint16_t off_eth_type = 12;
inline constexpr uint16_t off_ip = eth_hdr_len;
inline constexpr uint16_t off_ip_total_len = off_ip + 2;
inline constexpr uint16_t off_ip_frag = off_ip + 6;
inline constexpr uint16_t off_ip_ttl = off_ip + 8;
inline constexpr uint16_t off_ip_proto = off_ip + 9;
inline constexpr uint16_t off_ip_csum = off_ip + 10;
inline constexpr uint16_t off_ip_src = off_ip + 12;
inline constexpr uint16_t off_ip_dst = off_ip + 16;
inline constexpr uint16_t off_udp = off_ip + ipv4_hdr_len;
inline constexpr uint16_t off_udp_sport = off_udp;
inline constexpr uint16_t off_udp_dport = off_udp + 2;
inline constexpr uint16_t off_udp_len = off_udp + 4;
inline constexpr uint16_t off_udp_csum = off_udp + 6;
inline constexpr uint16_t off_rtp = l2l3l4;
// Offsets within an Ethernet/IPv6 frame (no extension header: the only kind accepted).
inline constexpr uint16_t off_ip6_plen = off_ip + 4;
inline constexpr uint16_t off_ip6_next = off_ip + 6;
inline constexpr uint16_t off_ip6_hlim = off_ip + 7;
inline constexpr uint16_t off_ip6_src = off_ip + 8;
inline constexpr uint16_t off_ip6_dst = off_ip + 24;
inline constexpr uint16_t off_l4_v6 = off_ip + ipv6_hdr_len;   // 54

// ---------------------------------------------------------------- loads and stores

// Network order to host order.
inline uint16_t load_be16(const uint8_t* p) noexcept {
    return static_cast<uint16_t>((static_cast<uint32_t>(p[0]) << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) noexcept {
    return (uint32_t{load_be16(p)} << 16) | load_be16(p + 2);
}

// Raw loads: the value stays in network order, as the _be fields want.
inline uint16_t load_raw16(const uint8_t* p) noexcept {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline uint32_t load_raw32(const uint8_t* p) noexcept {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// One swap and one store (the fan-out writes two of these per replica).
inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
    std::memcpy(p, &v, sizeof v);
}
inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    std::memcpy(p, &v, sizeof v);
}

// Branch-free 6-byte compare: this runs on every frame.
inline bool mac_equal(const uint8_t* a, const uint8_t* b) noexcept {
    return ((load_raw32(a) ^ load_raw32(b)) | static_cast<uint32_t>(load_raw16(a + 4) ^ load_raw16(b + 4))) == 0;
}

inline bool mac_is_broadcast(const uint8_t* a) noexcept {
    return ((load_raw32(a) ^ 0xffffffffu) | (load_raw16(a + 4) ^ 0xffffu)) == 0;
}

// Addresses no legitimate unicast peer uses as its source: "this network"
// 0/8 (RFC 1122 3.2.1.3, only valid while a host boots), loopback 127/8,
// and everything from 224/4 up (multicast, class E, limited broadcast).
// Accepting them would let a spoofer make the relay answer or forward to
// places it must never send to.
inline bool ipv4_src_unusable(uint8_t first_octet) noexcept {
    return first_octet == 0 || first_octet == 127 || first_octet >= 224;
}

// IPv6 sources no legitimate peer of the relay uses (RFC 4291 2.5): the
// unspecified address :: (only DAD probes, which the relay does not
// answer), loopback ::1, multicast ff00::/8, and IPv4-compatible ::/96,
// IPv4-mapped ::ffff:0:0/96 and IPv4-translated ::ffff:0:0:0/96 (RFC 2765;
// an IPv4 host in IPv6 clothes: the IPv4 rules would be bypassed; the
// control plane refuses the same three as peers, control/ip6.cc). Link-local
// is judged by the caller (allowed for neighbour discovery only).
inline bool ipv6_src_unusable(const uint8_t* a) noexcept {
    if (a[0] == 0xff) return true;
    uint64_t hi;
    uint32_t mid;
    std::memcpy(&hi, a, 8);
    std::memcpy(&mid, a + 8, 4);
    if (hi != 0) return false;
    static constexpr uint8_t mapped[4] = {0, 0, 0xff, 0xff};
    static constexpr uint8_t translated[4] = {0xff, 0xff, 0, 0};
    return mid == 0 || std::memcmp(a + 8, mapped, 4) == 0 || std::memcmp(a + 8, translated, 4) == 0;
}
inline bool ipv6_is_link_local(const uint8_t* a) noexcept { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }
inline bool ipv6_equal(const uint8_t* a, const uint8_t* b) noexcept {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a, 8);
    std::memcpy(&a1, a + 8, 8);
    std::memcpy(&b0, b, 8);
    std::memcpy(&b1, b + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}


// ---------------------------------------------------------------- RFC 1071 sums

// One's-complement sum of `len` bytes, loaded in host order. RFC 1071 2(B):
// the sum is byte-order independent up to a final swap, so summing native
// 64-bit words and swapping once at the end avoids a bswap per word. Each
// 8-byte word is added as two 32-bit halves into a 64-bit accumulator, which
// cannot overflow for any length a uint32_t can express in 8-byte steps
// (< 2^30 words * 2^33). Returns the sum folded to 16 bits (native order).
inline uint16_t sum_native(const uint8_t* p, uint32_t len) noexcept {
    uint64_t acc = 0;
    while (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, sizeof w);
        acc += (w & 0xffffffffu) + (w >> 32);
        p += 8;
        len -= 8;
    }
    if (len & 4) {
        uint32_t w;
        std::memcpy(&w, p, sizeof w);
        acc += w;
        p += 4;
    }
    if (len & 2) {
        uint16_t w;
        std::memcpy(&w, p, sizeof w);
        acc += w;
        p += 2;
    }
    if (len & 1) {
        // The odd byte sits at an even offset, i.e. the high-order byte of a
        // network-order word padded with zero (RFC 1071): low byte in memory
        // of a little-endian lane.
        if constexpr (std::endian::native == std::endian::little)
            acc += *p;
        else
            acc += static_cast<uint32_t>(*p) << 8;
    }
    // 2^16 == 1 (mod 0xffff): folding the wide accumulator keeps the sum.
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return static_cast<uint16_t>(acc);
}

// A received header/message carrying a correct checksum sums to 0xffff; the
// pattern is its own byte swap, so no swap is needed to verify.
inline bool csum_ok(const uint8_t* p, uint32_t len) noexcept {
    return sum_native(p, len) == 0xffff;
}

// The IPv4 header without options: five 32-bit words summed in a 64-bit
// accumulator, folded once. Every received speaker packet pays this, so it
// is spelled out rather than left to the general loop.
inline bool ipv4_hdr_csum_ok(const uint8_t* ip) noexcept {
    uint32_t w[5];
    std::memcpy(w, ip, sizeof w);
    uint64_t acc = uint64_t{w[0]} + w[1] + w[2] + w[3] + w[4];
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return acc == 0xffff;
}

// Adds `len` bytes to a running sum. The result, once folded, is in host
// order as the bytes are network order (big-endian) numbers, so
// `csum_add(0, {0x12, 0x34}, 2) == 0x1234`. An odd length pads the last byte
// with zero (RFC 1071); only the final chunk of a chained sum may have odd
// length. `sum` may be any value (end-around carry is applied), so partial
// sums chain freely.
inline uint32_t csum_add(uint32_t sum, const uint8_t* p, uint32_t len) noexcept {
    uint16_t s = sum_native(p, len);
    if constexpr (std::endian::native == std::endian::little)
        s = static_cast<uint16_t>((s << 8) | (s >> 8));
    const uint64_t t = static_cast<uint64_t>(sum) + s;
    return static_cast<uint32_t>((t & 0xffffffffu) + (t >> 32));
}

// Folds a running sum to 16 bits WITHOUT the final complement: callers that
// write a checksum field store `~csum_fold(sum)` (as big-endian), callers that
// verify compare the fold of the whole message with 0xffff. Keeping the
// complement out lets the fan-out derive per-listener checksums incrementally
// (RFC 1624) from one folded template sum.
inline uint16_t csum_fold(uint32_t sum) noexcept {
    sum = (sum & 0xffffu) + (sum >> 16);
    sum = (sum & 0xffffu) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// The IPv6/UDP or ICMPv6 checksum over the pseudo header (RFC 8200 8.1):
// source, destination, upper-layer length, next header, then the message
// (`len` bytes at `l4`). A received message with a correct checksum folds
// to 0xffff; a sender stores ~fold.
inline uint32_t ipv6_pseudo_sum(const uint8_t* ip6, uint32_t len, uint8_t next) noexcept {
    uint32_t sum = csum_add(0, ip6 + 8, 32);
    return sum + (len >> 16) + (len & 0xffff) + next;
}

// Fold a sum of two folded 16-bit values (at most 0x1fffe): one round.
inline uint32_t fold16x2(uint32_t s) noexcept { return (s & 0xffff) + (s >> 16); }

}  // namespace stentor::wire
