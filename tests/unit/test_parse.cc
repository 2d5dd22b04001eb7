// Ingress validator tests. The core is a golden table: one row per input frame,
// described in words, with the packet kind or drop reason it must produce.
// Frames come from a small builder whose every field defaults to a good Opus
// RTP packet from a speaker to the relay, with correct lengths and checksums;
// a row overrides only what it is about. Checksums in the builder come from a
// naive reference sum, never from the code under test.
//
// Every parse runs on a copy that ends exactly at a PROT_NONE page, so a read
// past the received length faults even in builds without ASan.
#include "parse.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace stentor::dp {
namespace {

using bytes = std::vector<uint8_t>;
using mac_t = std::array<uint8_t, 6>;
using R = drop_reason;
using wire::csum_add;
using wire::csum_fold;

constexpr uint32_t ip4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return (a << 24) | (b << 16) | (c << 8) | d;
}

constexpr mac_t our_mac{0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
constexpr mac_t peer_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
constexpr mac_t other_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};
constexpr mac_t bcast_mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr mac_t mcast_mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
constexpr uint32_t our_ip = ip4(198, 18, 0, 1);
constexpr uint32_t peer_ip = ip4(198, 18, 0, 10);
constexpr uint16_t peer_port = 5004;
constexpr uint16_t default_dport = 40100;
constexpr uint32_t default_ssrc = 0x5354e701;

// Host-order value as it sits in memory in network order (the _be fields).
uint32_t be32(uint32_t v) {
    const uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    uint32_t r;
    std::memcpy(&r, b, 4);
    return r;
}

uint16_t be16(uint16_t v) {
    const uint8_t b[2] = {uint8_t(v >> 8), uint8_t(v)};
    uint16_t r;
    std::memcpy(&r, b, 2);
    return r;
}

port_identity test_self() {
    port_identity self{};
    std::memcpy(self.mac, our_mac.data(), 6);
    self.ip_be = be32(our_ip);
    self.max_frame = 1514;
    self.udp_port_min = 40000;
    self.udp_port_max = 40999;
    return self;
}

// Reference RFC 1071 sum, written the slow obvious way.
uint16_t ref_fold(const uint8_t* p, size_t n, uint32_t sum = 0) {
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t(p[i]) << 8) | p[i + 1];
    if (n & 1)
        sum += uint32_t(p[n - 1]) << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(sum);
}

uint16_t ref_checksum(const bytes& b) {
    return uint16_t(~ref_fold(b.data(), b.size()));
}

void put8(bytes& b, uint8_t v) { b.push_back(v); }
void put16(bytes& b, uint16_t v) {
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
}
void put32(bytes& b, uint32_t v) {
    put16(b, uint16_t(v >> 16));
    put16(b, uint16_t(v));
}
void put_mac(bytes& b, const mac_t& m) { b.insert(b.end(), m.begin(), m.end()); }
void set16(bytes& b, size_t off, uint16_t v) {
    b[off] = uint8_t(v >> 8);
    b[off + 1] = uint8_t(v);
}

// ---- the builder ----------------------------------------------------------

struct eth_spec {
    mac_t dst = our_mac;
    mac_t src = peer_mac;
    std::vector<uint16_t> tags;   // TPIDs, outermost first; each gets VID 100
    uint16_t type = 0x0800;
};

struct ipv4_spec {
    uint8_t version = 4;
    uint8_t ihl = 5;                       // > 5: NOP options are written
    std::optional<uint16_t> total_length;  // default: the true length
    uint16_t id = 0x1234;
    uint16_t frag = 0x4000;                // DF, offset 0
    uint8_t ttl = 64;
    std::optional<uint8_t> proto;          // default: from the L4 kind
    uint32_t src = peer_ip;
    uint32_t dst = our_ip;
    std::optional<uint16_t> checksum;      // default: correct
    uint16_t checksum_xor = 0;             // corrupt the (default) checksum
};

struct udp_spec {
    uint16_t sport = peer_port;
    uint16_t dport = default_dport;
    std::optional<uint16_t> length;
};

struct rtp_spec {
    uint8_t version = 2;
    bool marker = false;
    uint8_t pt = 111;                      // dynamic PT, as Opus uses
    uint16_t seq = 4711;
    uint32_t ts = 96000;
    uint32_t ssrc = default_ssrc;
    uint8_t cc = 0;                        // CSRCs written
    std::optional<uint8_t> cc_field;       // CC in the header, default cc
    bool ext = false;
    uint16_t ext_words = 0;                // extension words written
    std::optional<uint16_t> ext_len_field; // length in the header, default ext_words
    size_t payload = 80;                   // one 20 ms Opus frame
    uint8_t padding = 0;                   // padding bytes written (P set if > 0)
    std::optional<uint8_t> pad_count;      // last padding byte, default padding
};

struct icmp_spec {
    uint8_t type = 8;
    uint8_t code = 0;
    uint16_t id = 0x77;
    uint16_t seq = 1;
    size_t data = 56;
    uint16_t checksum_xor = 0;
};

struct arp_spec {
    uint16_t htype = 1;
    uint16_t ptype = 0x0800;
    uint8_t hlen = 6;
    uint8_t plen = 4;
    uint16_t op = 1;
    mac_t sha = peer_mac;
    uint32_t spa = peer_ip;
    mac_t tha{};
    uint32_t tpa = our_ip;
    std::optional<size_t> body_len;        // truncate the 28-byte body
};

enum class l3_kind { ipv4, arp, raw };
enum class l4_kind { udp, icmp, raw };

struct frame_spec {
    eth_spec eth;
    l3_kind l3 = l3_kind::ipv4;
    bytes l3_raw;
    ipv4_spec ip;
    l4_kind l4 = l4_kind::udp;
    bytes l4_raw;
    udp_spec udp;
    std::optional<bytes> udp_payload;      // instead of the RTP packet
    rtp_spec rtp;
    icmp_spec icmp;
    arp_spec arp;
    size_t min_frame = 0;                  // pad with trailer_fill to this (60: Ethernet minimum)
    uint8_t trailer_fill = 0;
    std::optional<size_t> cut;             // truncate the finished frame
};

bytes build_rtp(const rtp_spec& r) {
    bytes b;
    const bool p = r.padding > 0 || r.pad_count.has_value();
    put8(b, uint8_t((r.version << 6) | (p ? 0x20 : 0) | (r.ext ? 0x10 : 0) | (r.cc_field.value_or(r.cc) & 0x0f)));
    put8(b, uint8_t((r.marker ? 0x80 : 0) | (r.pt & 0x7f)));
    put16(b, r.seq);
    put32(b, r.ts);
    put32(b, r.ssrc);
    for (uint8_t i = 0; i < r.cc; ++i)
        put32(b, 0xc5c00000u + i);
    if (r.ext) {
        put16(b, 0xbede);   // RFC 8285 one-byte header form
        put16(b, r.ext_len_field.value_or(r.ext_words));
        for (uint16_t i = 0; i < r.ext_words; ++i)
            put32(b, 0x10aa0000u + i);
    }
    for (size_t i = 0; i < r.payload; ++i)
        put8(b, uint8_t(0x40 + i));
    if (p) {
        const size_t n = std::max<size_t>(r.padding, 1);
        b.insert(b.end(), n - 1, 0);
        put8(b, r.pad_count.value_or(r.padding));
    }
    return b;
}

bytes build_udp(const frame_spec& f) {
    const bytes payload = f.udp_payload ? *f.udp_payload : build_rtp(f.rtp);
    const uint16_t len = uint16_t(8 + payload.size());
    bytes b;
    put16(b, f.udp.sport);
    put16(b, f.udp.dport);
    put16(b, f.udp.length.value_or(len));
    put16(b, 0);
    b.insert(b.end(), payload.begin(), payload.end());
    // Correct UDP checksum for realism; the validator does not check it.
    bytes pseudo;
    put32(pseudo, f.ip.src);
    put32(pseudo, f.ip.dst);
    put16(pseudo, 17);
    put16(pseudo, len);
    pseudo.insert(pseudo.end(), b.begin(), b.end());
    uint16_t c = ref_checksum(pseudo);
    set16(b, 6, c == 0 ? 0xffff : c);
    return b;
}

bytes build_icmp(const icmp_spec& m) {
    bytes b;
    put8(b, m.type);
    put8(b, m.code);
    put16(b, 0);
    put16(b, m.id);
    put16(b, m.seq);
    for (size_t i = 0; i < m.data; ++i)
        put8(b, uint8_t(0x10 + i));
    set16(b, 2, uint16_t(ref_checksum(b) ^ m.checksum_xor));
    return b;
}

bytes build_arp(const arp_spec& a) {
    bytes b;
    put16(b, a.htype);
    put16(b, a.ptype);
    put8(b, a.hlen);
    put8(b, a.plen);
    put16(b, a.op);
    put_mac(b, a.sha);
    put32(b, a.spa);
    put_mac(b, a.tha);
    put32(b, a.tpa);
    if (a.body_len)
        b.resize(*a.body_len);
    return b;
}

bytes build_ipv4(const frame_spec& f) {
    bytes l4;
    switch (f.l4) {
    case l4_kind::udp: l4 = build_udp(f); break;
    case l4_kind::icmp: l4 = build_icmp(f.icmp); break;
    case l4_kind::raw: l4 = f.l4_raw; break;
    }
    const ipv4_spec& ip = f.ip;
    const size_t opt_len = ip.ihl > 5 ? (ip.ihl - 5) * 4u : 0;
    bytes b;
    put8(b, uint8_t((ip.version << 4) | (ip.ihl & 0x0f)));
    put8(b, 0xb8);   // DSCP EF, as audio is marked
    put16(b, ip.total_length.value_or(uint16_t(20 + opt_len + l4.size())));
    put16(b, ip.id);
    put16(b, ip.frag);
    put8(b, ip.ttl);
    put8(b, ip.proto.value_or(f.l4 == l4_kind::icmp ? 1 : 17));
    put16(b, 0);
    put32(b, ip.src);
    put32(b, ip.dst);
    b.insert(b.end(), opt_len, 0x01);   // NOP options
    set16(b, 10, ip.checksum.value_or(uint16_t(ref_checksum(b) ^ ip.checksum_xor)));
    b.insert(b.end(), l4.begin(), l4.end());
    return b;
}

bytes build(const frame_spec& f) {
    bytes b;
    put_mac(b, f.eth.dst);
    put_mac(b, f.eth.src);
    for (uint16_t tpid : f.eth.tags) {
        put16(b, tpid);
        put16(b, 100);
    }
    put16(b, f.eth.type);
    bytes l3;
    switch (f.l3) {
    case l3_kind::ipv4: l3 = build_ipv4(f); break;
    case l3_kind::arp: l3 = build_arp(f.arp); break;
    case l3_kind::raw: l3 = f.l3_raw; break;
    }
    b.insert(b.end(), l3.begin(), l3.end());
    if (b.size() < f.min_frame)
        b.resize(f.min_frame, f.trailer_fill);
    if (f.cut)
        b.resize(std::min(*f.cut, b.size()));
    return b;
}

frame_spec rtp_frame() { return {}; }

frame_spec icmp_frame() {
    frame_spec f;
    f.l4 = l4_kind::icmp;
    return f;
}

// As ARP arrives on the wire: broadcast request, padded to the 60-byte minimum.
frame_spec arp_frame() {
    frame_spec f;
    f.eth.dst = bcast_mac;
    f.eth.type = 0x0806;
    f.l3 = l3_kind::arp;
    f.min_frame = 60;
    return f;
}

template <class Tweak>
bytes rtp_with(Tweak t) {
    frame_spec f = rtp_frame();
    t(f);
    return build(f);
}

template <class Tweak>
bytes icmp_with(Tweak t) {
    frame_spec f = icmp_frame();
    t(f);
    return build(f);
}

template <class Tweak>
bytes arp_with(Tweak t) {
    frame_spec f = arp_frame();
    t(f);
    return build(f);
}

bytes rtp_good() { return build(rtp_frame()); }

// A bare 12-byte RTP header with the given first two bytes, for hand-made payloads.
bytes rtp_header(uint8_t b0, uint8_t b1) {
    bytes b;
    put8(b, b0);
    put8(b, b1);
    put16(b, 1);
    put32(b, 960);
    put32(b, default_ssrc);
    return b;
}

bytes stun_binding_request() {
    bytes b;
    put16(b, 0x0001);      // Binding Request
    put16(b, 0);           // no attributes
    put32(b, 0x2112a442);  // magic cookie
    for (int i = 0; i < 12; ++i)
        put8(b, uint8_t(0xa0 + i));
    return b;
}

bytes rtcp_sr() {
    bytes b;
    put8(b, 0x80);
    put8(b, 200);
    put16(b, 6);
    put32(b, default_ssrc);
    put32(b, 0xe8a1b2c3);  // NTP seconds
    put32(b, 0x80000000);  // NTP fraction
    put32(b, 96000);
    put32(b, 50);
    put32(b, 4000);
    return b;
}

bytes rtcp_rr() {
    bytes b;
    put8(b, 0x81);   // one report block
    put8(b, 201);
    put16(b, 7);
    put32(b, default_ssrc);
    for (int i = 0; i < 6; ++i)
        put32(b, 0x01020304u * uint32_t(i));
    return b;
}

// ---- the table ------------------------------------------------------------

// Expected fields of an accepted packet, host order. Only those meaningful
// for the kind are compared.
struct expect {
    uint16_t l3_off = 14;
    uint16_t l4_off = 34;
    uint16_t rtp_off = 42;
    uint16_t rtp_len = 92;
    uint16_t payload_off = 54;
    uint16_t payload_len = 80;
    uint32_t src_ip = peer_ip;
    uint16_t sport = peer_port;
    uint16_t dport = default_dport;
    uint32_t ssrc = default_ssrc;
    uint16_t icmp_len = 64;
};

struct row {
    std::string what;
    bytes pkt;
    pkt_kind kind;
    drop_reason reason;          // count_ when accepted
    std::optional<expect> exp;   // for accepted rows
};

row good_rtp(std::string what, bytes pkt, expect e = {}) {
    return {std::move(what), std::move(pkt), pkt_kind::rtp, R::count_, e};
}
row good_arp(std::string what, bytes pkt, expect e = {}) {
    return {std::move(what), std::move(pkt), pkt_kind::arp, R::count_, e};
}
row good_icmp(std::string what, bytes pkt, expect e = {}) {
    return {std::move(what), std::move(pkt), pkt_kind::icmp_echo, R::count_, e};
}
row good_stun(std::string what, bytes pkt, expect e = {}) {
    return {std::move(what), std::move(pkt), pkt_kind::stun, R::count_, e};
}
row bad(std::string what, bytes pkt, drop_reason r) {
    return {std::move(what), std::move(pkt), pkt_kind::drop, r, std::nullopt};
}

const std::vector<row>& table() {
    static const std::vector<row> rows = [] {
        const bytes good = rtp_good();
        std::vector<row> t = {
            // --- accepted RTP
            good_rtp("plain Opus RTP, 80-byte payload", good),
            good_rtp("RTP with 2 CSRCs", rtp_with([](frame_spec& f) { f.rtp.cc = 2; }),
                     {.rtp_len = 100, .payload_off = 62}),
            good_rtp("RTP with 15 CSRCs (CC maximum)", rtp_with([](frame_spec& f) { f.rtp.cc = 15; }),
                     {.rtp_len = 152, .payload_off = 114}),
            good_rtp("RTP with a 2-word header extension",
                     rtp_with([](frame_spec& f) { f.rtp.ext = true; f.rtp.ext_words = 2; }),
                     {.rtp_len = 104, .payload_off = 66}),
            good_rtp("RTP with an empty header extension (length 0)",
                     rtp_with([](frame_spec& f) { f.rtp.ext = true; }), {.rtp_len = 96, .payload_off = 58}),
            good_rtp("RTP with 4 bytes of padding", rtp_with([](frame_spec& f) { f.rtp.padding = 4; }),
                     {.rtp_len = 96}),
            good_rtp("RTP with 1 byte of padding (the count itself)",
                     rtp_with([](frame_spec& f) { f.rtp.padding = 1; }), {.rtp_len = 93}),
            good_rtp("RTP with CSRC, extension and padding together",
                     rtp_with([](frame_spec& f) {
                         f.rtp.cc = 1;
                         f.rtp.ext = true;
                         f.rtp.ext_words = 1;
                         f.rtp.padding = 3;
                     }),
                     {.rtp_len = 107, .payload_off = 66}),
            good_rtp("1-byte payload, frame padded to 60 by Ethernet: trailer ignored",
                     rtp_with([](frame_spec& f) {
                         f.rtp.payload = 1;
                         f.min_frame = 60;
                         f.trailer_fill = 0xaa;
                     }),
                     {.rtp_len = 13, .payload_len = 1}),
            good_rtp("P bit with Ethernet trailer: padding count read at the UDP end, not the frame end",
                     rtp_with([](frame_spec& f) {
                         f.rtp.payload = 1;
                         f.rtp.padding = 2;
                         f.min_frame = 60;
                         f.trailer_fill = 0xee;
                     }),
                     {.rtp_len = 15, .payload_len = 1}),
            good_rtp("lowest speaker port 40000", rtp_with([](frame_spec& f) { f.udp.dport = 40000; }),
                     {.dport = 40000}),
            good_rtp("highest speaker port 40999", rtp_with([](frame_spec& f) { f.udp.dport = 40999; }),
                     {.dport = 40999}),
            good_rtp("payload type 71, just below the RTCP range", rtp_with([](frame_spec& f) { f.rtp.pt = 71; })),
            good_rtp("payload type 77, just above the RTCP range", rtp_with([](frame_spec& f) { f.rtp.pt = 77; })),
            good_rtp("marker bit set (second byte 0xef)", rtp_with([](frame_spec& f) { f.rtp.marker = true; })),
            good_rtp("frame of exactly max_frame (1514) bytes",
                     rtp_with([](frame_spec& f) { f.rtp.payload = 1460; }),
                     {.rtp_len = 1472, .payload_len = 1460}),
            good_rtp("DF clear, TTL 1, other SSRC and source port",
                     rtp_with([](frame_spec& f) {
                         f.ip.frag = 0;
                         f.ip.ttl = 1;
                         f.rtp.ssrc = 0xdeadbeef;
                         f.udp.sport = 65535;
                     }),
                     {.sport = 65535, .ssrc = 0xdeadbeef}),
            good_rtp("source just outside the refused ranges (1.0.0.1)",
                     rtp_with([](frame_spec& f) { f.ip.src = ip4(1, 0, 0, 1); }), {.src_ip = ip4(1, 0, 0, 1)}),
            good_rtp("source 223.255.255.254, the last unicast address",
                     rtp_with([](frame_spec& f) { f.ip.src = ip4(223, 255, 255, 254); }),
                     {.src_ip = ip4(223, 255, 255, 254)}),

            // --- accepted ARP and ICMP
            good_arp("ARP request for us, broadcast, padded to 60", build(arp_frame())),
            good_arp("ARP request for us, unicast to our MAC (cache refresh)",
                     arp_with([](frame_spec& f) { f.eth.dst = our_mac; })),
            good_arp("ARP reply to our MAC",
                     arp_with([](frame_spec& f) {
                         f.eth.dst = our_mac;
                         f.arp.op = 2;
                         f.arp.tha = our_mac;
                     })),
            good_arp("ARP request without Ethernet padding (42 bytes)",
                     arp_with([](frame_spec& f) { f.min_frame = 0; })),
            good_icmp("ICMP echo request, 56 data bytes", icmp_with([](frame_spec&) {})),
            good_icmp("ICMP echo request, odd length (57 data bytes)",
                      icmp_with([](frame_spec& f) { f.icmp.data = 57; }), {.icmp_len = 65}),
            good_icmp("ICMP echo request with no data, Ethernet trailer of 0xff ignored by the checksum",
                      icmp_with([](frame_spec& f) {
                          f.icmp.data = 0;
                          f.min_frame = 60;
                          f.trailer_fill = 0xff;
                      }),
                      {.icmp_len = 8}),

            // --- Ethernet
            bad("empty frame", {}, R::eth_runt),
            bad("13 bytes: one short of an Ethernet header", bytes(good.begin(), good.begin() + 13), R::eth_runt),
            bad("1515 bytes: one over max_frame", rtp_with([](frame_spec& f) { f.rtp.payload = 1461; }),
                R::oversize),
            bad("9000-byte jumbo", rtp_with([](frame_spec& f) { f.rtp.payload = 9000 - 54; }), R::oversize),
            bad("oversize wins over a multicast source",
                rtp_with([](frame_spec& f) {
                    f.rtp.payload = 1500;
                    f.eth.src = mcast_mac;
                }),
                R::oversize),
            bad("multicast source MAC", rtp_with([](frame_spec& f) { f.eth.src = mcast_mac; }), R::eth_src),
            bad("broadcast source MAC", rtp_with([](frame_spec& f) { f.eth.src = bcast_mac; }), R::eth_src),
            bad("multicast source wins over a VLAN tag",
                rtp_with([](frame_spec& f) {
                    f.eth.src = mcast_mac;
                    f.eth.tags = {0x8100};
                }),
                R::eth_src),
            bad("802.1Q tagged", rtp_with([](frame_spec& f) { f.eth.tags = {0x8100}; }), R::eth_vlan),
            bad("QinQ 802.1ad (88a8 outer, 8100 inner)", rtp_with([](frame_spec& f) { f.eth.tags = {0x88a8, 0x8100}; }),
                R::eth_vlan),
            bad("old QinQ TPID 9100", rtp_with([](frame_spec& f) { f.eth.tags = {0x9100}; }), R::eth_vlan),
            bad("IPv6 ethertype",
                rtp_with([](frame_spec& f) {
                    f.eth.type = 0x86dd;
                    f.l3 = l3_kind::raw;
                    f.l3_raw = bytes(48, 0);
                    f.l3_raw[0] = 0x60;
                }),
                R::ipv6_off),   // this identity has no IPv6 address: test_parse6.cc has the IPv6 rows
            bad("LLDP to our MAC", rtp_with([](frame_spec& f) { f.eth.type = 0x88cc; }), R::eth_type),
            bad("802.3 length field instead of an ethertype", rtp_with([](frame_spec& f) { f.eth.type = 0x0026; }),
                R::eth_type),
            bad("IPv4 to another host's MAC", rtp_with([](frame_spec& f) { f.eth.dst = other_mac; }), R::eth_dst),
            bad("IPv4 to the broadcast MAC", rtp_with([](frame_spec& f) { f.eth.dst = bcast_mac; }), R::eth_dst),
            bad("IPv4 to a multicast MAC", rtp_with([](frame_spec& f) { f.eth.dst = mcast_mac; }), R::eth_dst),
            bad("MAC differing only in the last byte", rtp_with([](frame_spec& f) { f.eth.dst[5] = 0x02; }),
                R::eth_dst),
            bad("ICMP echo to the broadcast MAC", icmp_with([](frame_spec& f) { f.eth.dst = bcast_mac; }), R::eth_dst),
            bad("ARP to another host's MAC", arp_with([](frame_spec& f) { f.eth.dst = other_mac; }), R::eth_dst),
            bad("ARP to a multicast MAC", arp_with([](frame_spec& f) { f.eth.dst = mcast_mac; }), R::eth_dst),

            // --- IPv4
            bad("IPv4 ethertype and nothing else (14 bytes)", rtp_with([](frame_spec& f) { f.cut = 14; }),
                R::ipv4_runt),
            bad("19 bytes of IPv4 header", rtp_with([](frame_spec& f) { f.cut = 33; }), R::ipv4_runt),
            bad("version 6 under the IPv4 ethertype", rtp_with([](frame_spec& f) { f.ip.version = 6; }),
                R::ipv4_version),
            bad("version 0", rtp_with([](frame_spec& f) { f.ip.version = 0; }), R::ipv4_version),
            bad("version wins over a bad checksum",
                rtp_with([](frame_spec& f) {
                    f.ip.version = 5;
                    f.ip.checksum_xor = 0x0100;
                }),
                R::ipv4_version),
            bad("IHL 4", rtp_with([](frame_spec& f) { f.ip.ihl = 4; }), R::ipv4_ihl),
            bad("IHL 0", rtp_with([](frame_spec& f) { f.ip.ihl = 0; }), R::ipv4_ihl),
            bad("IHL 6: one word of options", rtp_with([](frame_spec& f) { f.ip.ihl = 6; }), R::ipv4_options),
            bad("IHL 15: full 40 bytes of options", rtp_with([](frame_spec& f) { f.ip.ihl = 15; }),
                R::ipv4_options),
            bad("IHL 15 but only 30 bytes of IPv4 received",
                rtp_with([](frame_spec& f) {
                    f.ip.ihl = 15;
                    f.cut = 14 + 30;
                }),
                R::ipv4_total_length),
            bad("total length 19, below the header", rtp_with([](frame_spec& f) { f.ip.total_length = 19; }),
                R::ipv4_total_length),
            bad("total length 0", rtp_with([](frame_spec& f) { f.ip.total_length = 0; }), R::ipv4_total_length),
            bad("total length one beyond the bytes received", rtp_with([](frame_spec& f) { f.ip.total_length = 121; }),
                R::ipv4_total_length),
            bad("frame truncated inside the UDP payload", rtp_with([](frame_spec& f) { f.cut = 100; }),
                R::ipv4_total_length),
            bad("header checksum off by one bit", rtp_with([](frame_spec& f) { f.ip.checksum_xor = 0x0001; }),
                R::ipv4_checksum),
            bad("header checksum zero", rtp_with([](frame_spec& f) { f.ip.checksum = 0; }), R::ipv4_checksum),
            bad("MF set (first fragment)", rtp_with([](frame_spec& f) { f.ip.frag = 0x2000; }), R::ipv4_fragment),
            bad("fragment offset 185 (last fragment)", rtp_with([](frame_spec& f) { f.ip.frag = 185; }),
                R::ipv4_fragment),
            bad("DF with offset 1", rtp_with([](frame_spec& f) { f.ip.frag = 0x4001; }), R::ipv4_fragment),
            bad("fragment wins over a bad UDP length",
                rtp_with([](frame_spec& f) {
                    f.ip.frag = 0x2000;
                    f.udp.length = 3;
                }),
                R::ipv4_fragment),
            bad("source 0.0.0.0", rtp_with([](frame_spec& f) { f.ip.src = 0; }), R::ipv4_src),
            bad("source 0.1.2.3 (this-network block)", rtp_with([](frame_spec& f) { f.ip.src = ip4(0, 1, 2, 3); }),
                R::ipv4_src),
            bad("source 127.0.0.1", rtp_with([](frame_spec& f) { f.ip.src = ip4(127, 0, 0, 1); }), R::ipv4_src),
            bad("multicast source 224.0.0.251", rtp_with([](frame_spec& f) { f.ip.src = ip4(224, 0, 0, 251); }),
                R::ipv4_src),
            bad("class E source 240.0.0.1", rtp_with([](frame_spec& f) { f.ip.src = ip4(240, 0, 0, 1); }),
                R::ipv4_src),
            bad("broadcast source", rtp_with([](frame_spec& f) { f.ip.src = ip4(255, 255, 255, 255); }), R::ipv4_src),
            bad("spoofed source: our own address", rtp_with([](frame_spec& f) { f.ip.src = our_ip; }), R::ipv4_src),
            bad("ICMP from our own address", icmp_with([](frame_spec& f) { f.ip.src = our_ip; }), R::ipv4_src),
            bad("destination another relay address", rtp_with([](frame_spec& f) { f.ip.dst = ip4(198, 18, 0, 2); }),
                R::ipv4_dst),
            bad("destination broadcast with our MAC",
                rtp_with([](frame_spec& f) { f.ip.dst = ip4(255, 255, 255, 255); }), R::ipv4_dst),
            bad("ICMP echo to another address", icmp_with([](frame_spec& f) { f.ip.dst = ip4(198, 18, 0, 3); }),
                R::ipv4_dst),
            bad("TCP",
                rtp_with([](frame_spec& f) {
                    f.l4 = l4_kind::raw;
                    f.l4_raw = bytes(20, 0);
                    f.ip.proto = 6;
                }),
                R::ipv4_proto),
            bad("IGMP", rtp_with([](frame_spec& f) { f.ip.proto = 2; }), R::ipv4_proto),

            // --- UDP
            bad("7 bytes of UDP",
                rtp_with([](frame_spec& f) {
                    f.l4 = l4_kind::raw;
                    f.l4_raw = bytes(7, 0);
                }),
                R::udp_runt),
            bad("no UDP bytes at all",
                rtp_with([](frame_spec& f) {
                    f.l4 = l4_kind::raw;
                    f.l4_raw = {};
                }),
                R::udp_runt),
            bad("UDP length 7", rtp_with([](frame_spec& f) { f.udp.length = 7; }), R::udp_length),
            bad("UDP length 0", rtp_with([](frame_spec& f) { f.udp.length = 0; }), R::udp_length),
            bad("UDP length one past the IPv4 payload", rtp_with([](frame_spec& f) { f.udp.length = 101; }),
                R::udp_length),
            bad("UDP length short of the IPv4 payload", rtp_with([](frame_spec& f) { f.udp.length = 96; }),
                R::udp_length),
            bad("port 39999, just below the range", rtp_with([](frame_spec& f) { f.udp.dport = 39999; }),
                R::udp_port),
            bad("port 41000, just above the range", rtp_with([](frame_spec& f) { f.udp.dport = 41000; }),
                R::udp_port),
            bad("port 5004", rtp_with([](frame_spec& f) { f.udp.dport = 5004; }), R::udp_port),
            bad("port 0", rtp_with([](frame_spec& f) { f.udp.dport = 0; }), R::udp_port),

            // --- RTP
            bad("11 bytes of RTP", rtp_with([](frame_spec& f) { f.udp_payload = bytes(11, 0x80); }), R::rtp_runt),
            bad("empty UDP datagram", rtp_with([](frame_spec& f) { f.udp_payload = bytes{}; }), R::rtp_runt),
            bad("RTCP RR without report blocks (8 bytes) is a runt first",
                rtp_with([](frame_spec& f) { f.udp_payload = bytes{0x80, 201, 0, 1, 0x53, 0x54, 0xe7, 0x01}; }),
                R::rtp_runt),
            // Version 0 with CC 0 starts 0x00: that is STUN (row below); CC 4 keeps it RTP-shaped.
            bad("RTP version 0", rtp_with([](frame_spec& f) { f.rtp.version = 0; f.rtp.cc = 4; }), R::rtp_version),
            bad("RTP version 1", rtp_with([](frame_spec& f) { f.rtp.version = 1; }), R::rtp_version),
            bad("RTP version 3", rtp_with([](frame_spec& f) { f.rtp.version = 3; }), R::rtp_version),
            // A listener's join request (RFC 7983: first byte 0..3): the join
            // stage checks the STUN message itself (stun.h, join.cc).
            good_stun("STUN binding request to a session port",
                      rtp_with([](frame_spec& f) { f.udp_payload = stun_binding_request(); })),
            bad("RTCP SR (PT 200)", rtp_with([](frame_spec& f) { f.udp_payload = rtcp_sr(); }), R::rtp_rtcp),
            bad("RTCP RR (PT 201) with a report block", rtp_with([](frame_spec& f) { f.udp_payload = rtcp_rr(); }),
                R::rtp_rtcp),
            bad("payload type 72", rtp_with([](frame_spec& f) { f.rtp.pt = 72; }), R::rtp_rtcp),
            bad("payload type 76 with marker (RTCP APP, 204)",
                rtp_with([](frame_spec& f) {
                    f.rtp.pt = 76;
                    f.rtp.marker = true;
                }),
                R::rtp_rtcp),
            bad("CC 15 in a 32-byte packet",
                rtp_with([](frame_spec& f) {
                    f.rtp.cc_field = 15;
                    f.rtp.payload = 20;
                }),
                R::rtp_csrc),
            bad("CC 3 with 8 bytes after the header",
                rtp_with([](frame_spec& f) {
                    f.rtp.cc_field = 3;
                    f.rtp.payload = 8;
                }),
                R::rtp_csrc),
            bad("X set, 2 bytes after the header",
                rtp_with([](frame_spec& f) {
                    bytes p = rtp_header(0x90, 111);
                    p.push_back(0xbe);
                    p.push_back(0xde);
                    f.udp_payload = p;
                }),
                R::rtp_extension),
            bad("X set after a CSRC, extension header cut",
                rtp_with([](frame_spec& f) {
                    bytes p = rtp_header(0x91, 111);
                    put32(p, 0xc5c00000);
                    p.push_back(0xbe);
                    f.udp_payload = p;
                }),
                R::rtp_extension),
            bad("extension length 30 words past the end",
                rtp_with([](frame_spec& f) {
                    f.rtp.ext = true;
                    f.rtp.ext_len_field = 30;
                }),
                R::rtp_extension),
            bad("extension length 0xffff",
                rtp_with([](frame_spec& f) {
                    f.rtp.ext = true;
                    f.rtp.ext_len_field = 0xffff;
                }),
                R::rtp_extension),
            bad("padding count 0", rtp_with([](frame_spec& f) {
                    f.rtp.padding = 1;
                    f.rtp.pad_count = 0;
                }),
                R::rtp_padding),
            bad("padding count 200 in a 23-byte packet",
                rtp_with([](frame_spec& f) {
                    f.rtp.payload = 10;
                    f.rtp.padding = 1;
                    f.rtp.pad_count = 200;
                }),
                R::rtp_padding),
            bad("padding count one past the payload",
                rtp_with([](frame_spec& f) {
                    f.rtp.payload = 4;
                    f.rtp.padding = 4;
                    f.rtp.pad_count = 9;
                }),
                R::rtp_padding),
            bad("header only, no payload", rtp_with([](frame_spec& f) { f.rtp.payload = 0; }), R::rtp_empty),
            bad("padding takes the whole payload",
                rtp_with([](frame_spec& f) {
                    f.rtp.payload = 0;
                    f.rtp.padding = 4;
                }),
                R::rtp_empty),
            bad("extension takes the whole payload",
                rtp_with([](frame_spec& f) {
                    f.rtp.payload = 0;
                    f.rtp.ext = true;
                    f.rtp.ext_words = 2;
                }),
                R::rtp_empty),
            bad("CSRCs only",
                rtp_with([](frame_spec& f) {
                    f.rtp.payload = 0;
                    f.rtp.cc = 2;
                }),
                R::rtp_empty),

            // --- ARP
            bad("ARP body of 27 bytes", arp_with([](frame_spec& f) {
                    f.min_frame = 0;
                    f.arp.body_len = 27;
                }),
                R::arp_invalid),
            bad("ARP with nothing after the Ethernet header", arp_with([](frame_spec& f) {
                    f.min_frame = 0;
                    f.arp.body_len = 0;
                }),
                R::arp_invalid),
            bad("ARP hlen 8", arp_with([](frame_spec& f) { f.arp.hlen = 8; }), R::arp_invalid),
            bad("ARP plen 16", arp_with([](frame_spec& f) { f.arp.plen = 16; }), R::arp_invalid),
            bad("ARP htype 6 (IEEE 802)", arp_with([](frame_spec& f) { f.arp.htype = 6; }), R::arp_invalid),
            bad("ARP ptype IPv6", arp_with([](frame_spec& f) { f.arp.ptype = 0x86dd; }), R::arp_invalid),
            bad("ARP op 3 (RARP request)", arp_with([](frame_spec& f) { f.arp.op = 3; }), R::arp_invalid),
            bad("ARP op 0", arp_with([](frame_spec& f) { f.arp.op = 0; }), R::arp_invalid),
            bad("ARP sender MAC differs from the Ethernet source",
                arp_with([](frame_spec& f) { f.arp.sha = other_mac; }), R::arp_invalid),
            bad("ARP sender MAC multicast", arp_with([](frame_spec& f) { f.arp.sha = mcast_mac; }), R::arp_invalid),
            bad("ARP probe: sender IP 0.0.0.0", arp_with([](frame_spec& f) { f.arp.spa = 0; }), R::arp_invalid),
            bad("ARP sender IP multicast", arp_with([](frame_spec& f) { f.arp.spa = ip4(224, 0, 0, 1); }),
                R::arp_invalid),
            bad("ARP sender IP broadcast", arp_with([](frame_spec& f) { f.arp.spa = ip4(255, 255, 255, 255); }),
                R::arp_invalid),
            bad("ARP sender claims our own IP (address conflict)",
                arp_with([](frame_spec& f) { f.arp.spa = our_ip; }), R::arp_invalid),
            bad("ARP request for another address", arp_with([](frame_spec& f) { f.arp.tpa = ip4(198, 18, 0, 2); }),
                R::arp_not_for_us),
            bad("ARP reply about another address",
                arp_with([](frame_spec& f) {
                    f.eth.dst = our_mac;
                    f.arp.op = 2;
                    f.arp.tpa = ip4(198, 18, 0, 9);
                }),
                R::arp_not_for_us),
            bad("gratuitous ARP from a neighbour", arp_with([](frame_spec& f) { f.arp.tpa = peer_ip; }),
                R::arp_not_for_us),

            // --- ICMP
            bad("ICMP checksum off by one bit", icmp_with([](frame_spec& f) { f.icmp.checksum_xor = 0x0001; }),
                R::icmp_invalid),
            bad("7 bytes of ICMP",
                rtp_with([](frame_spec& f) {
                    f.l4 = l4_kind::raw;
                    f.l4_raw = {8, 0, 0xf7, 0xff, 0, 0, 0};
                    f.ip.proto = 1;
                }),
                R::icmp_invalid),
            bad("ICMP echo reply", icmp_with([](frame_spec& f) { f.icmp.type = 0; }), R::icmp_not_echo),
            bad("ICMP port unreachable", icmp_with([](frame_spec& f) {
                    f.icmp.type = 3;
                    f.icmp.code = 3;
                }),
                R::icmp_not_echo),
            bad("ICMP echo request with code 1", icmp_with([](frame_spec& f) { f.icmp.code = 1; }), R::icmp_not_echo),
            bad("ICMP timestamp request", icmp_with([](frame_spec& f) { f.icmp.type = 13; }), R::icmp_not_echo),
        };
        return t;
    }();
    return rows;
}

// ---- running the parser on guarded memory -----------------------------------

// Places the frame so that its last byte is the last byte before a PROT_NONE
// page: any read past `len` faults.
class guarded_frame {
public:
    explicit guarded_frame(const bytes& b) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        _map_len = (b.size() + page - 1) / page * page + page;
        void* m = mmap(nullptr, _map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            std::abort();
        _map = static_cast<uint8_t*>(m);
        uint8_t* guard = _map + _map_len - page;
        if (mprotect(guard, page, PROT_NONE) != 0)
            std::abort();
        _data = guard - b.size();
        if (!b.empty())
            std::memcpy(_data, b.data(), b.size());
        _len = uint32_t(b.size());
    }
    ~guarded_frame() { munmap(_map, _map_len); }
    guarded_frame(const guarded_frame&) = delete;
    guarded_frame& operator=(const guarded_frame&) = delete;

    parse_result parse(const port_identity& self) const { return parse_packet(_data, _len, self); }

private:
    uint8_t* _map = nullptr;
    size_t _map_len = 0;
    uint8_t* _data = nullptr;
    uint32_t _len = 0;
};

parse_result parse_guarded(const bytes& b, const port_identity& self = test_self()) {
    return guarded_frame(b).parse(self);
}

std::string reason_name(drop_reason r) {
    return r == R::count_ ? std::string("(none)") : std::string(name_of(r));
}

TEST(ParseTable, Rows) {
    const port_identity self = test_self();
    ASSERT_GE(table().size(), 45u);
    for (const row& r : table()) {
        SCOPED_TRACE(r.what);
        const parse_result res = parse_guarded(r.pkt, self);
        EXPECT_EQ(int(res.kind), int(r.kind));
        EXPECT_EQ(reason_name(res.reason), reason_name(r.reason));
        if (!r.exp || res.kind != r.kind)
            continue;
        const expect& e = *r.exp;
        EXPECT_EQ(res.l3_off, e.l3_off);
        EXPECT_EQ(res.src_ip_be, be32(e.src_ip));
        if (r.kind == pkt_kind::rtp) {
            EXPECT_EQ(res.l4_off, e.l4_off);
            EXPECT_EQ(res.rtp_off, e.rtp_off);
            EXPECT_EQ(res.rtp_len, e.rtp_len);
            EXPECT_EQ(res.payload_off, e.payload_off);
            EXPECT_EQ(res.payload_len, e.payload_len);
            EXPECT_EQ(res.src_port_be, be16(e.sport));
            EXPECT_EQ(res.dst_port_be, be16(e.dport));
            EXPECT_EQ(res.ssrc_be, be32(e.ssrc));
            // The parsed regions tile the UDP payload exactly.
            EXPECT_LE(res.payload_off + res.payload_len, res.rtp_off + res.rtp_len);
            EXPECT_EQ(res.rtp_off + res.rtp_len, 42 + (r.pkt[38] << 8 | r.pkt[39]) - 8);
        } else if (r.kind == pkt_kind::icmp_echo) {
            EXPECT_EQ(res.l4_off, e.l4_off);
            EXPECT_EQ(res.icmp_len, e.icmp_len);
        } else if (r.kind == pkt_kind::stun) {
            EXPECT_EQ(res.l4_off, e.l4_off);
            EXPECT_EQ(res.rtp_off, e.rtp_off);   // the STUN message
            EXPECT_EQ(res.rtp_off + res.rtp_len, 42 + (r.pkt[38] << 8 | r.pkt[39]) - 8);
            EXPECT_EQ(res.src_port_be, be16(e.sport));
            EXPECT_EQ(res.dst_port_be, be16(e.dport));
        }
    }
}

TEST(ParseTable, CoversEveryIngressReason) {
    // Reasons decided after the validator (flow table, policer, NIC offload
    // flags, reply rate limits) cannot come out of parse_packet.
    const std::set<drop_reason> not_from_validator = {R::unknown_flow, R::ssrc_mismatch, R::policed,
                                                      R::udp_checksum, R::icmp_rate, R::arp_rate};
    std::set<drop_reason> seen;
    for (const row& r : table())
        if (r.kind == pkt_kind::drop)
            seen.insert(r.reason);
    // Every ingress reason: the enum runs eth_runt .. arp_rate, then egress.
    for (auto i = size_t(R::eth_runt); i < size_t(R::no_mbuf); ++i) {
        const auto r = drop_reason(i);
        if (not_from_validator.contains(r))
            EXPECT_FALSE(seen.contains(r)) << name_of(r);
        else
            EXPECT_TRUE(seen.contains(r)) << "no table row for " << name_of(r);
    }
    // IPv6's reasons (appended after the egress ones) have their own table
    // and coverage test in test_parse6.cc; the row above reaches ipv6_off.
    for (auto i = size_t(R::no_mbuf); i < nb_drop_reasons; ++i)
        if (drop_reason(i) < R::ipv6_off || drop_reason(i) > R::nd_redirect) {
            EXPECT_FALSE(seen.contains(drop_reason(i))) << name_of(drop_reason(i));
        }
    // All four accepted kinds (rtp, arp, icmp_echo, stun) are in the table
    // as well, and drop.
    std::set<pkt_kind> kinds;
    for (const row& r : table())
        kinds.insert(r.kind);
    EXPECT_EQ(kinds.size(), 5u);
}

// ---- truncation -----------------------------------------------------------

// Every strict prefix of a good frame is dropped, by the layer whose length
// check it fails, without reading past the prefix (guard page).
void check_prefixes(const bytes& full, pkt_kind full_kind) {
    const port_identity self = test_self();
    ASSERT_EQ(int(parse_guarded(full, self).kind), int(full_kind));
    for (size_t n = 0; n < full.size(); ++n) {
        SCOPED_TRACE("prefix length " + std::to_string(n));
        const parse_result res = parse_guarded(bytes(full.begin(), full.begin() + ptrdiff_t(n)), self);
        ASSERT_EQ(int(res.kind), int(pkt_kind::drop));
        ASSERT_NE(res.reason, R::count_);
        if (n < 14) {
            EXPECT_EQ(res.reason, R::eth_runt);
        } else if (full_kind == pkt_kind::arp) {
            EXPECT_EQ(res.reason, R::arp_invalid);
        } else if (n < 34) {
            EXPECT_EQ(res.reason, R::ipv4_runt);
        } else {
            EXPECT_EQ(res.reason, R::ipv4_total_length);
        }
    }
}

TEST(ParseTruncation, PlainRtpEveryPrefixDropped) {
    check_prefixes(rtp_good(), pkt_kind::rtp);
}

TEST(ParseTruncation, CsrcExtensionPaddingEveryPrefixDropped) {
    check_prefixes(rtp_with([](frame_spec& f) {
                       f.rtp.cc = 3;
                       f.rtp.ext = true;
                       f.rtp.ext_words = 2;
                       f.rtp.padding = 5;
                   }),
                   pkt_kind::rtp);
}

TEST(ParseTruncation, IcmpEveryPrefixDropped) {
    check_prefixes(icmp_with([](frame_spec& f) { f.icmp.data = 33; }), pkt_kind::icmp_echo);
}

TEST(ParseTruncation, ArpEveryPrefixDropped) {
    check_prefixes(arp_with([](frame_spec& f) { f.min_frame = 0; }), pkt_kind::arp);
}

// Random bytes behind a valid Ethernet/IPv4/UDP prefix must never read out
// of bounds (guard page) and, when accepted as RTP, must describe regions
// inside the frame.
TEST(ParseTruncation, RandomRtpPayloadsStayInBounds) {
    const port_identity self = test_self();
    std::mt19937 rng(20240601);
    for (int iter = 0; iter < 3000; ++iter) {
        bytes payload(rng() % 80);
        for (auto& b : payload)
            b = uint8_t(rng());
        if (!payload.empty())
            payload[0] = uint8_t(0x80 | (payload[0] & 0x3f));   // mostly version 2
        const bytes f = rtp_with([&](frame_spec& s) { s.udp_payload = payload; });
        const parse_result res = parse_guarded(f, self);
        if (res.kind == pkt_kind::rtp) {
            EXPECT_LE(size_t(res.payload_off) + res.payload_len, f.size());
            EXPECT_GT(res.payload_len, 0u);
            EXPECT_EQ(res.rtp_len, payload.size());
        } else {
            ASSERT_EQ(int(res.kind), int(pkt_kind::drop));
        }
    }
}

// ---- identity -------------------------------------------------------------

TEST(ParseIdentity, SinglePortRangeAndSmallerMtu) {
    port_identity self = test_self();
    self.udp_port_min = self.udp_port_max = 40100;
    self.max_frame = 1014;
    EXPECT_EQ(int(parse_guarded(rtp_good(), self).kind), int(pkt_kind::rtp));
    EXPECT_EQ(parse_guarded(rtp_with([](frame_spec& f) { f.udp.dport = 40101; }), self).reason, R::udp_port);
    EXPECT_EQ(parse_guarded(rtp_with([](frame_spec& f) { f.rtp.payload = 961; }), self).reason, R::oversize);
    EXPECT_EQ(int(parse_guarded(rtp_with([](frame_spec& f) { f.rtp.payload = 960; }), self).kind),
              int(pkt_kind::rtp));
}

// ---- checksums ------------------------------------------------------------

TEST(ParseChecksum, Rfc1071Example) {
    // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 2ddf0, folds to ddf2.
    const uint8_t v[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(csum_fold(csum_add(0, v, 8)), 0xddf2);
    EXPECT_EQ(uint16_t(~csum_fold(csum_add(0, v, 8))), 0x220d);
}

TEST(ParseChecksum, Ipv4HeaderVector) {
    // Textbook header 192.168.0.1 -> 192.168.0.199, checksum 0xb861.
    uint8_t h[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(csum_fold(csum_add(0, h, 20)), 0xffff);   // verifies
    h[10] = h[11] = 0;
    EXPECT_EQ(uint16_t(~csum_fold(csum_add(0, h, 20))), 0xb861);   // computes
}

TEST(ParseChecksum, OddLengthPadsTheLastByteHigh) {
    const uint8_t one[] = {0x01};
    EXPECT_EQ(csum_fold(csum_add(0, one, 1)), 0x0100);
    const uint8_t three[] = {0x12, 0x34, 0x56};
    EXPECT_EQ(csum_fold(csum_add(0, three, 3)), 0x1234 + 0x5600);
    EXPECT_EQ(csum_add(0, three, 0), 0u);
}

TEST(ParseChecksum, HostOrderResultAndChaining) {
    const uint8_t w[] = {0x12, 0x34};
    EXPECT_EQ(csum_add(0, w, 2), 0x1234u);
    EXPECT_EQ(csum_add(0x10000, w, 2), 0x11234u);
    // End-around carry from the top of the 32-bit running sum.
    const uint8_t one[] = {0x00, 0x01};
    EXPECT_EQ(csum_fold(csum_add(0xffffffffu, one, 2)), csum_fold(0xffffffffu) % 0xffff + 1);
    // Split at any even offset: same folded sum as in one go.
    bytes b(301);
    for (size_t i = 0; i < b.size(); ++i)
        b[i] = uint8_t(i * 37 + 11);
    const uint16_t whole = csum_fold(csum_add(0, b.data(), uint32_t(b.size())));
    for (size_t split = 0; split <= b.size(); split += 2) {
        const uint32_t s = csum_add(0, b.data(), uint32_t(split));
        EXPECT_EQ(csum_fold(csum_add(s, b.data() + split, uint32_t(b.size() - split))), whole) << split;
    }
}

TEST(ParseChecksum, FoldEdges) {
    EXPECT_EQ(csum_fold(0), 0);
    EXPECT_EQ(csum_fold(0xffff), 0xffff);
    EXPECT_EQ(csum_fold(0x10000), 1);
    EXPECT_EQ(csum_fold(0x1fffe), 0xffff);
    EXPECT_EQ(csum_fold(0xffffffffu), 0xffff);
    EXPECT_EQ(csum_fold(0x2fffe), 1);   // needs the second fold
}

TEST(ParseChecksum, MatchesReferenceAtEveryLengthAndAlignment) {
    // Expected: the reference sum of the bytes added to the start value with
    // end-around carry.
    const auto expected = [](uint32_t start, uint16_t body) {
        uint64_t s = uint64_t(start) + body;
        while (s >> 16)
            s = (s & 0xffff) + (s >> 16);
        return uint16_t(s);
    };
    std::mt19937 rng(7);
    bytes buf(2100);
    for (auto& b : buf)
        b = uint8_t(rng());
    for (uint32_t len = 0; len <= 2048; len += (len < 80 ? 1 : 13)) {
        for (size_t align = 0; align < 8; ++align) {
            const uint8_t* p = buf.data() + align;
            const uint32_t start = (len & 1) ? rng() : 0;
            EXPECT_EQ(csum_fold(csum_add(start, p, len)), expected(start, ref_fold(p, len)))
                << "len " << len << " align " << align;
        }
    }
}

TEST(ParseChecksum, AllOnesAndAllZeros) {
    const bytes ones(64, 0xff);
    EXPECT_EQ(csum_fold(csum_add(0, ones.data(), 64)), 0xffff);
    const bytes zeros(64, 0);
    EXPECT_EQ(csum_fold(csum_add(0, zeros.data(), 64)), 0);
    EXPECT_EQ(csum_fold(csum_add(0, ones.data(), 63)), ref_fold(ones.data(), 63));
}

}  // namespace
}  // namespace stentor::dp
