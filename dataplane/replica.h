// Building egress replicas from a per-packet template. Shared by the fan-out
// loop (worker.cc) and the micro-benchmarks (bench/bench_fanout.cc) so the
// benchmark measures the code that runs.
//
// Two ways to make a replica:
//  - copy:  one flat mbuf, the whole frame copied from the template, then the
//           destination MAC/IP/port and both checksums patched;
//  - chain: a header mbuf (42 bytes, patched the same way) chained to one
//           shared payload mbuf (refcount), as DPDK's ipv4_multicast does.
// Measured on this machine (bench_fanout, see README "Performance"): copy
// wins at every audio payload size we measured (40..1000 bytes), so the
// fan-out uses copy; chain stays here, measured, for larger frames and NICs
// where descriptors are cheap.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include <rte_byteorder.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>

#include "stentor/wire.h"
#include "stentor/dp_snapshot.h"

namespace stentor::dp {

inline constexpr unsigned max_frame_bytes = 1536;

using wire::csum_add;
using wire::csum_fold;
using wire::fold16x2;
using wire::store_be16;
using wire::eth_hdr_len;
using wire::ipv4_hdr_len;
using wire::udp_hdr_len;
using wire::l2l3l4;
using wire::off_ip_csum;
using wire::off_ip_dst;
using wire::off_udp_dport;
using wire::off_udp_csum;

// A 16-bit value (host order) as a native load of its big-endian bytes reads it.
constexpr uint16_t memory_order16(uint16_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little)
        return static_cast<uint16_t>((v << 8) | (v >> 8));
    else
        return v;
}

struct egress_template {
    // Both in memory order (the 16-bit words as a little-endian load reads
    // them: a one's-complement sum is the same in either byte order, RFC
    // 1071 2(B)), so a listener's address and port add to them as loaded.
    uint32_t ip_base;     // folded sum of the IPv4 header with dst = 0 and csum = 0
    uint32_t udp_base;    // folded sum of pseudo header + UDP header + payload with dst ip/port = 0
    uint16_t len;
    alignas(64) uint8_t frame[max_frame_bytes];
};

// Build the egress frame for one speaker packet: Ethernet (source = port
// MAC), IPv4 (source = relay, `tos`: the port's DSCP, by default EF, ECN 0;
// DF, TTL 64), UDP (source = session port), then the RTP bytes unchanged.
// Destination fields are zero; their checksum contribution is added per
// listener.
inline constexpr uint8_t tos_dscp_ef = 46 << 2;   // RFC 3246, what RFC 4594 gives telephony and interactive audio
inline void build_template(egress_template& t, const uint8_t* rtp, uint16_t rtp_len, const uint8_t* src_mac,
                           uint32_t src_ip_be, uint16_t src_port_be, uint8_t tos = tos_dscp_ef) noexcept {
    uint8_t* f = t.frame;
    std::memset(f, 0, 6);
    std::memcpy(f + 6, src_mac, 6);
    store_be16(f + 12, 0x0800);
    uint8_t* ip = f + eth_hdr_len;
    const uint16_t ip_total = static_cast<uint16_t>(ipv4_hdr_len + udp_hdr_len + rtp_len);
    ip[0] = 0x45;
    ip[1] = tos;                          // DSCP (port.dscp, default EF), ECN not-ECT
    store_be16(ip + 2, ip_total);
    store_be16(ip + 4, 0);                // id 0 with DF: never fragmented (RFC 6864)
    store_be16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    store_be16(ip + 10, 0);
    std::memcpy(ip + 12, &src_ip_be, 4);
    std::memset(ip + 16, 0, 4);
    uint8_t* udp = ip + ipv4_hdr_len;
    const uint16_t udp_len = static_cast<uint16_t>(udp_hdr_len + rtp_len);
    std::memcpy(udp, &src_port_be, 2);
    store_be16(udp + 2, 0);
    store_be16(udp + 4, udp_len);
    store_be16(udp + 6, 0);
    rte_memcpy(udp + udp_hdr_len, rtp, rtp_len);
    t.len = static_cast<uint16_t>(l2l3l4 + rtp_len);

    t.ip_base = memory_order16(csum_fold(csum_add(0, ip, ipv4_hdr_len)));
    uint32_t u = csum_add(0, ip + 12, 4);      // pseudo header: source (destination added per listener)
    u += 17 + udp_len;                          // zero, protocol, UDP length
    u = csum_add(u, udp, udp_len);              // header (dport 0, csum 0) + payload
    t.udp_base = memory_order16(csum_fold(u));
}

// Patch the per-listener fields of a frame whose first 42 bytes came from
// the template. The sums stay in memory order (egress_template): the
// address's two words and the port add as loaded, the result is stored as
// it is.
__attribute__((always_inline)) inline void patch_headers(uint8_t* d, const egress_template& t, const dp_listener& r, uint64_t mac_word) noexcept {
    std::memcpy(d, &mac_word, 6);
    std::memcpy(d + off_ip_dst, &r.ip_be, 4);
    std::memcpy(d + off_udp_dport, &r.port_be, 2);
    const uint32_t a = (r.ip_be & 0xffff) + (r.ip_be >> 16);   // at most 0x1fffe
    const uint16_t ic = static_cast<uint16_t>(~csum_fold(t.ip_base + a));
    std::memcpy(d + off_ip_csum, &ic, 2);
    uint16_t uc = static_cast<uint16_t>(~csum_fold(t.udp_base + a + r.port_be));
    if (uc == 0) uc = 0xffff;   // 0 means "no checksum" in UDP over IPv4 (either byte order)
    std::memcpy(d + off_udp_csum, &uc, 2);
}

// Flat copy: the whole frame into one mbuf, in 64-byte blocks (fixed-size
// copies the compiler turns into straight vector moves: no size dispatch as
// in rte_memcpy; the template buffer and the mbuf both have room for the
// rounding). `m` is a raw mbuf from rte_mempool_get_bulk: refcnt 1, one
// segment, next NULL are invariants of a freed mbuf; the rest is set here.
__attribute__((always_inline)) inline void build_replica_copy(rte_mbuf* m, const egress_template& t,
                                                              const dp_listener& r, uint64_t mac_word,
                                                              uint16_t port) noexcept {
    m->data_off = RTE_PKTMBUF_HEADROOM;
    m->ol_flags = 0;   // no offloads: checksums are complete; packet_type is RX-only
    uint8_t* d = static_cast<uint8_t*>(m->buf_addr) + RTE_PKTMBUF_HEADROOM;
    const uint32_t len = t.len;   // a local: stores to d must not make the compiler reload it
    // rte_mov64 is one AVX-512 move, two AVX2 or four SSE moves, per -march.
    for (uint32_t off = 0; off < len; off += 64) rte_mov64(d + off, t.frame + off);
    patch_headers(d, t, r, mac_word);
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    m->port = port;
}
static_assert(max_frame_bytes % 64 == 0);
static_assert(max_frame_bytes <= RTE_MBUF_DEFAULT_DATAROOM, "block copy may write up to the rounded length");

// Header mbuf chained to a shared payload mbuf holding frame[42..len).
__attribute__((always_inline)) inline void build_replica_chain(rte_mbuf* h, rte_mbuf* payload, const egress_template& t, const dp_listener& r,
                                uint64_t mac_word, uint16_t port) noexcept {
    uint8_t* d = rte_pktmbuf_mtod(h, uint8_t*);
    rte_memcpy(d, t.frame, l2l3l4);
    patch_headers(d, t, r, mac_word);
    h->data_len = l2l3l4;
    h->pkt_len = t.len;
    h->nb_segs = 2;
    h->next = payload;
    h->port = port;
    rte_mbuf_refcnt_update(payload, 1);
}

// ---------------------------------------------------------------- IPv6

// Ethernet + IPv6 (fixed header, no extension headers) + UDP: RTP starts at
// byte 62. Named apart from wire.h's parsing constants: these are only the
// shape of the frames the fan-out writes.
inline constexpr uint16_t ipv6_fixed_len = 40;
inline constexpr uint16_t l2l3l4_v6 = eth_hdr_len + ipv6_fixed_len + udp_hdr_len;   // 62
inline constexpr uint16_t off6_ip = eth_hdr_len;
inline constexpr uint16_t off6_ip_src = off6_ip + 8;
inline constexpr uint16_t off6_ip_dst = off6_ip + 24;
inline constexpr uint16_t off6_udp = off6_ip + ipv6_fixed_len;
inline constexpr uint16_t off6_udp_dport = off6_udp + 2;
inline constexpr uint16_t off6_udp_csum = off6_udp + 6;
inline constexpr uint16_t ethertype_ipv6 = 0x86dd;

struct egress_template6 {
    uint32_t udp_base;    // folded sum of pseudo header (source, length, next header) + UDP header + payload, dst ip/port = 0
    uint16_t len;
    alignas(64) uint8_t frame[max_frame_bytes];
};

// Folded sum of what a listener adds to the UDP checksum: its address (the
// pseudo header's destination) and its port. The control plane stores it in
// dp_listener6::udp_sum; tests recompute it apart.
inline uint16_t listener6_udp_sum(const uint8_t* ip, uint16_t port_host) noexcept {
    return csum_fold(csum_add(0, ip, 16) + port_host);
}

// The egress frame for one speaker packet towards IPv6 listeners: Ethernet
// (source = port MAC), IPv6 (traffic class `tclass`: the port's DSCP, as
// IPv4's TOS byte; flow label 0; hop limit 64; source = the port's IPv6
// address), UDP (source = session port), the RTP bytes unchanged. The same
// RTP bytes as the IPv4 template: a listener hears the same packet on
// either family.
inline void build_template6(egress_template6& t, const uint8_t* rtp, uint16_t rtp_len, const uint8_t* src_mac,
                            const uint8_t* src_ip, uint16_t src_port_be, uint8_t tclass = tos_dscp_ef) noexcept {
    uint8_t* f = t.frame;
    std::memset(f, 0, 6);
    std::memcpy(f + 6, src_mac, 6);
    store_be16(f + 12, ethertype_ipv6);
    uint8_t* ip = f + eth_hdr_len;
    const uint16_t udp_len = static_cast<uint16_t>(udp_hdr_len + rtp_len);
    wire::store_be32(ip, (uint32_t{6} << 28) | (uint32_t{tclass} << 20));   // version, traffic class, flow label 0
    store_be16(ip + 4, udp_len);                                             // payload length: UDP only, no extension headers
    ip[6] = 17;                                                              // next header: UDP
    ip[7] = 64;                                                              // hop limit
    std::memcpy(ip + 8, src_ip, 16);
    std::memset(ip + 24, 0, 16);
    uint8_t* udp = ip + ipv6_fixed_len;
    std::memcpy(udp, &src_port_be, 2);
    store_be16(udp + 2, 0);
    store_be16(udp + 4, udp_len);
    store_be16(udp + 6, 0);
    rte_memcpy(udp + udp_hdr_len, rtp, rtp_len);
    t.len = static_cast<uint16_t>(l2l3l4_v6 + rtp_len);
    uint32_t u = csum_add(0, src_ip, 16);   // pseudo header (RFC 8200 8.1): source ...
    u += 17 + udp_len;                       // ... next header, upper-layer length (< 2^16 here)
    u = csum_add(u, udp, udp_len);           // UDP header (dport 0, csum 0) + payload
    t.udp_base = csum_fold(u);
}

__attribute__((always_inline)) inline void patch_headers6(uint8_t* d, const egress_template6& t, const dp_listener6& r,
                                                          uint64_t mac_word) noexcept {
    std::memcpy(d, &mac_word, 6);
    std::memcpy(d + off6_ip_dst, r.ip, 16);
    std::memcpy(d + off6_udp_dport, &r.port_be, 2);
    uint16_t uc = static_cast<uint16_t>(~fold16x2(t.udp_base + r.udp_sum));
    if (uc == 0) uc = 0xffff;   // RFC 8200 8.1: a computed 0 is sent as 0xffff (0 is invalid in IPv6)
    store_be16(d + off6_udp_csum, uc);
}

// The IPv6 replica: the same flat copy as IPv4's, one address store of 16
// bytes instead of 4 and one checksum instead of two.
__attribute__((always_inline)) inline void build_replica6_copy(rte_mbuf* m, const egress_template6& t,
                                                               const dp_listener6& r, uint64_t mac_word,
                                                               uint16_t port) noexcept {
    m->data_off = RTE_PKTMBUF_HEADROOM;
    m->ol_flags = 0;
    uint8_t* d = static_cast<uint8_t*>(m->buf_addr) + RTE_PKTMBUF_HEADROOM;
    const uint32_t len = t.len;
    for (uint32_t off = 0; off < len; off += 64) rte_mov64(d + off, t.frame + off);
    patch_headers6(d, t, r, mac_word);
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    m->port = port;
}

}  // namespace stentor::dp
