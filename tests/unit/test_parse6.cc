// The IPv6 half of the validator (issue 15): a golden table, one row per
// frame, described in words, with the packet kind or the drop reason it must
// produce. Frames come from a builder whose every field defaults to a good
// IPv6/UDP/RTP packet from a speaker to the relay; upper-layer checksums come
// from a naive reference sum here, never from the code under test. Every
// parse runs on a copy that ends at a PROT_NONE page, so a read past the
// received length faults.
#include "parse.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace stentor::dp {
namespace {

using bytes = std::vector<uint8_t>;
using mac_t = std::array<uint8_t, 6>;
using addr6 = std::array<uint8_t, 16>;
using R = drop_reason;

constexpr mac_t our_mac{0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
constexpr mac_t peer_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
constexpr mac_t other_mac{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};
constexpr mac_t bcast_mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
// 2001:db8:5354::1 (ours), ::a (a speaker), fe80::1 (a router)
constexpr addr6 our6{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr addr6 peer6{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a};
constexpr addr6 other6{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b};
constexpr addr6 router_ll{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr addr6 all_nodes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr addr6 all_routers{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
constexpr addr6 our_solicited{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x01};
constexpr addr6 unspecified{};
constexpr uint16_t speaker_port = 40100;

port_identity test_self() {
    port_identity self{};
    std::memcpy(self.mac, our_mac.data(), 6);
    self.ip_be = 0x010012c6;   // 198.18.0.1
    self.max_frame = 1514;
    self.udp_port_min = 40000;
    self.udp_port_max = 40999;
    std::memcpy(self.ip6, our6.data(), 16);
    self.has_ip6 = 1;
    return self;
}

mac_t group_mac(const addr6& a) { return {0x33, 0x33, a[12], a[13], a[14], a[15]}; }

// Appends without vector::insert (GCC 12 at -O3 warns about it: a false
// -Warray-bounds).
void append(bytes& b, const bytes& x) {
    const size_t n = b.size();
    b.resize(n + x.size());
    if (!x.empty()) std::memcpy(b.data() + n, x.data(), x.size());
}

void put16(bytes& b, size_t off, unsigned v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}

// Reference RFC 1071 sum, the slow obvious way.
uint16_t ref_checksum(const bytes& pseudo_and_msg) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < pseudo_and_msg.size(); i += 2) sum += (uint32_t(pseudo_and_msg[i]) << 8) | pseudo_and_msg[i + 1];
    if (pseudo_and_msg.size() & 1) sum += uint32_t(pseudo_and_msg.back()) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

struct frame6 {
    mac_t eth_dst = our_mac;
    mac_t eth_src = peer_mac;
    uint8_t version = 6;
    addr6 src = peer6;
    addr6 dst = our6;
    uint8_t next = 17;              // of the IPv6 header (an extension's type when ext is set)
    uint8_t hop_limit = 64;
    bytes ext;                      // extension header bytes before the message
    bytes msg;                      // the upper-layer message; its checksum is filled in
    int plen = -1;                  // payload length override
    bool fix_checksum = true;
    size_t trailing = 0;            // Ethernet padding after the payload
};

bytes build(const frame6& f) {
    bytes msg = f.msg;
    const uint8_t upper = f.ext.empty() ? f.next : 0xff;
    if (f.fix_checksum && (upper == 17 || upper == 58)) {
        const size_t at = upper == 17 ? 6 : 2;
        if (msg.size() >= at + 2) {
            msg[at] = msg[at + 1] = 0;
            bytes ps(f.src.begin(), f.src.end());
            append(ps, bytes(f.dst.begin(), f.dst.end()));
            const uint32_t len = static_cast<uint32_t>(msg.size());
            append(ps, bytes{uint8_t(len >> 24), uint8_t(len >> 16), uint8_t(len >> 8), uint8_t(len), 0, 0, 0, upper});
            append(ps, bytes(msg.begin(), msg.end()));
            uint16_t c = ref_checksum(ps);
            if (upper == 17 && c == 0) c = 0xffff;
            put16(msg, at, c);
        }
    }
    bytes b(14 + 40, 0);
    std::memcpy(b.data(), f.eth_dst.data(), 6);
    std::memcpy(b.data() + 6, f.eth_src.data(), 6);
    put16(b, 12, 0x86dd);
    b[14] = static_cast<uint8_t>(f.version << 4);
    const size_t payload = f.ext.size() + msg.size();
    put16(b, 18, f.plen >= 0 ? unsigned(f.plen) : unsigned(payload));
    b[20] = f.next;
    b[21] = f.hop_limit;
    std::memcpy(b.data() + 22, f.src.data(), 16);
    std::memcpy(b.data() + 38, f.dst.data(), 16);
    append(b, bytes(f.ext.begin(), f.ext.end()));
    append(b, bytes(msg.begin(), msg.end()));
    append(b, bytes(f.trailing, 0));
    return b;
}

bytes rtp(uint8_t b0 = 0x80, size_t payload = 80) {
    bytes r(12 + payload, 0);
    r[0] = b0;
    r[1] = 111;
    put16(r, 2, 7);
    r[8] = 0x53;
    r[11] = 1;
    for (size_t i = 0; i < payload; ++i) r[12 + i] = static_cast<uint8_t>(i * 5 + 1);
    return r;
}

bytes udp(const bytes& payload, uint16_t dport = speaker_port, int len = -1) {
    bytes u(8, 0);
    put16(u, 0, 5004);
    put16(u, 2, dport);
    put16(u, 4, len >= 0 ? unsigned(len) : unsigned(8 + payload.size()));
    append(u, bytes(payload.begin(), payload.end()));
    return u;
}

bytes icmp6(uint8_t type, uint8_t code, size_t body) {
    bytes m(4 + body, 0);
    m[0] = type;
    m[1] = code;
    for (size_t i = 4; i < m.size(); ++i) m[i] = static_cast<uint8_t>(i);
    return m;
}

// NS for `target`, with a source link-layer address option when `slla`.
bytes ns(const addr6& target, const mac_t* slla = &peer_mac) {
    bytes m(24, 0);
    m[0] = 135;
    std::memcpy(m.data() + 8, target.data(), 16);
    if (slla != nullptr) {
        append(m, bytes{1, 1});
        m.insert(m.end(), slla->begin(), slla->end());
    }
    return m;
}

bytes na(uint8_t flags, const addr6& target, const mac_t* tlla = &peer_mac) {
    bytes m(24, 0);
    m[0] = 136;
    m[4] = flags;
    std::memcpy(m.data() + 8, target.data(), 16);
    if (tlla != nullptr) {
        append(m, bytes{2, 1});
        m.insert(m.end(), tlla->begin(), tlla->end());
    }
    return m;
}

// The first 20 bytes of a STUN binding request (RFC 5389 6): a join
// request's shape as far as the validator looks.
bytes stun_request6() { return {0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; }

template <class F>
bytes with(F&& f) {
    frame6 fr;
    fr.msg = udp(rtp());
    f(fr);
    return build(fr);
}

// A multicast NS for our address from a speaker, as Linux sends it.
frame6 ns_frame() {
    frame6 fr;
    fr.eth_dst = group_mac(our_solicited);
    fr.dst = our_solicited;
    fr.next = 58;
    fr.hop_limit = 255;
    fr.msg = ns(our6);
    return fr;
}

frame6 na_frame(uint8_t flags = 0x60) {
    frame6 fr;
    fr.next = 58;
    fr.hop_limit = 255;
    fr.msg = na(flags, peer6);
    return fr;
}

template <class F>
bytes ns_with(F&& f) {
    frame6 fr = ns_frame();
    f(fr);
    return build(fr);
}

template <class F>
bytes na_with(F&& f) {
    frame6 fr = na_frame();
    f(fr);
    return build(fr);
}

bytes echo_with(auto&& f) {
    frame6 fr;
    fr.next = 58;
    fr.msg = icmp6(128, 0, 60);
    f(fr);
    return build(fr);
}

// An extension header of `len8` 8-byte units whose next header is UDP.
bytes ext(uint8_t len8 = 0) {
    bytes e(8 * (1 + len8), 0);
    e[0] = 17;
    e[1] = len8;
    return e;
}

struct row {
    std::string what;
    bytes pkt;
    pkt_kind kind;
    drop_reason reason;
};

row good(std::string what, bytes pkt, pkt_kind k) { return {std::move(what), std::move(pkt), k, R::count_}; }
row bad(std::string what, bytes pkt, drop_reason r) { return {std::move(what), std::move(pkt), pkt_kind::drop, r}; }

const std::vector<row>& table() {
    static const std::vector<row> rows = [] {
        const auto none = [](frame6&) {};
        std::vector<row> t = {
            // --- accepted
            good("RTP over IPv6 to a session port", with(none), pkt_kind::rtp6),
            good("RTP over IPv6 with 6 bytes of Ethernet padding", with([](frame6& f) { f.trailing = 6; }), pkt_kind::rtp6),
            good("STUN binding request over IPv6", with([](frame6& f) { f.msg = udp(stun_request6()); }), pkt_kind::stun6),
            good("ICMPv6 echo request", echo_with(none), pkt_kind::icmp6_echo),
            good("NS to our solicited-node group with a source link-layer address", build(ns_frame()), pkt_kind::nd_ns),
            good("NS unicast to us without a link-layer option", ns_with([](frame6& f) {
                     f.eth_dst = our_mac;
                     f.dst = our6;
                     f.msg = ns(our6, nullptr);
                 }),
                 pkt_kind::nd_ns),
            good("NS from a router's link-local address", ns_with([](frame6& f) { f.src = router_ll; }), pkt_kind::nd_ns),
            good("NS with a nonce option after the link-layer one", ns_with([](frame6& f) {
                     append(f.msg, bytes{14, 1, 1, 2, 3, 4, 5, 6});
                 }),
                 pkt_kind::nd_ns),
            good("solicited NA with its target link-layer address", build(na_frame()), pkt_kind::nd_na),
            good("solicited NA from link-local, no link-layer option", na_with([](frame6& f) {
                     f.src = router_ll;
                     f.msg = na(0x60, router_ll, nullptr);
                 }),
                 pkt_kind::nd_na),
            good("unsolicited NA with override to all-nodes (judged by the neighbour stage)", na_with([](frame6& f) {
                     f.eth_dst = group_mac(all_nodes);
                     f.dst = all_nodes;
                     f.msg = na(0x20, peer6);
                 }),
                 pkt_kind::nd_na),

            // --- Ethernet
            bad("IPv6 to another host's MAC", with([](frame6& f) { f.eth_dst = other_mac; }), R::eth_dst),
            bad("IPv6 to the broadcast MAC", with([](frame6& f) { f.eth_dst = bcast_mac; }), R::eth_dst),
            bad("our address at a group MAC", with([](frame6& f) { f.eth_dst = group_mac(our6); }), R::eth_dst),
            bad("our solicited-node group at another group MAC",
                ns_with([](frame6& f) { f.eth_dst = group_mac(all_nodes); }), R::eth_dst),

            // --- IPv6 header
            bad("39 bytes of IPv6 header", [] {
                    bytes b = with([](frame6&) {});
                    b.resize(14 + 39);
                    return b;
                }(), R::ipv6_runt),
            bad("IPv6 ethertype carrying version 4", with([](frame6& f) { f.version = 4; }), R::ipv6_version),
            bad("version 0", with([](frame6& f) { f.version = 0; }), R::ipv6_version),
            bad("jumbogram: payload length 0 behind a hop-by-hop header", with([](frame6& f) {
                    f.next = 0;
                    f.ext = {17, 0, 0xc2, 4, 0, 0, 0x01, 0x00};   // jumbo payload option, 65536 bytes
                    f.plen = 0;
                }),
                R::ipv6_jumbogram),
            bad("payload length beyond the bytes received", with([](frame6& f) { f.plen = 1400; }),
                R::ipv6_payload_length),
            bad("payload length one more than received", with([](frame6& f) { f.plen = 8 + 92 + 1; }),
                R::ipv6_payload_length),
            bad("hop-by-hop header (router alert)", with([](frame6& f) {
                    f.next = 0;
                    f.ext = {17, 0, 5, 2, 0, 0, 1, 0};
                }),
                R::ipv6_hop_by_hop),
            bad("routing header type 0", with([](frame6& f) {
                    f.next = 43;
                    f.ext = ext(2);
                }),
                R::ipv6_routing),
            bad("segment routing header (type 4)", with([](frame6& f) {
                    f.next = 43;
                    f.ext = ext(2);
                    f.ext[2] = 4;
                }),
                R::ipv6_routing),
            bad("first fragment", with([](frame6& f) {
                    f.next = 44;
                    f.ext = {17, 0, 0, 1, 0, 0, 0, 42};
                }),
                R::ipv6_fragment),
            bad("atomic fragment (offset 0, no M)", with([](frame6& f) {
                    f.next = 44;
                    f.ext = {17, 0, 0, 0, 0, 0, 0, 42};
                }),
                R::ipv6_fragment),
            bad("destination options (padding only)", with([](frame6& f) {
                    f.next = 60;
                    f.ext = ext(0);
                }),
                R::ipv6_dest_options),
            bad("chain: destination options then routing", with([](frame6& f) {
                    f.next = 60;
                    f.ext = ext(0);
                    f.ext[0] = 43;
                    bytes r = ext(2);
                    append(f.ext, bytes(r.begin(), r.end()));
                }),
                R::ipv6_dest_options),
            bad("AH", with([](frame6& f) {
                    f.next = 51;
                    f.ext = ext(2);
                }),
                R::ipv6_ext_other),
            bad("ESP", with([](frame6& f) {
                    f.next = 50;
                    f.ext = ext(2);
                }),
                R::ipv6_ext_other),
            bad("experimental extension 253", with([](frame6& f) {
                    f.next = 253;
                    f.ext = ext(0);
                }),
                R::ipv6_ext_other),
            bad("source ::1", with([](frame6& f) { f.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}; }),
                R::ipv6_src),
            bad("source multicast ff02::1", with([](frame6& f) { f.src = all_nodes; }), R::ipv6_src),
            bad("source IPv4-mapped ::ffff:198.18.0.10",
                with([](frame6& f) { f.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 10}; }),
                R::ipv6_src),
            bad("source IPv4-translated ::ffff:0:198.18.0.1 (RFC 2765)",
                echo_with([](frame6& f) { f.src = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 198, 18, 0, 1}; }),
                R::ipv6_src),
            bad("source the relay's own address (spoofed)", with([](frame6& f) { f.src = our6; }), R::ipv6_src),
            bad("source :: on UDP", with([](frame6& f) { f.src = unspecified; }), R::ipv6_src),
            bad("UDP from a link-local source", with([](frame6& f) { f.src = router_ll; }), R::ipv6_src_link_local),
            bad("echo from a link-local source", echo_with([](frame6& f) { f.src = router_ll; }),
                R::ipv6_src_link_local),
            bad("destination another host", with([](frame6& f) { f.dst = other6; }), R::ipv6_dst),
            bad("destination all-routers ff02::2", with([](frame6& f) {
                    f.dst = all_routers;
                    f.eth_dst = group_mac(all_routers);
                }),
                R::ipv6_dst),
            bad("UDP to our solicited-node group", with([](frame6& f) {
                    f.dst = our_solicited;
                    f.eth_dst = group_mac(our_solicited);
                }),
                R::ipv6_dst),
            bad("echo request to all-nodes (a reflector)", echo_with([](frame6& f) {
                    f.dst = all_nodes;
                    f.eth_dst = group_mac(all_nodes);
                }),
                R::ipv6_dst),
            bad("TCP SYN", with([](frame6& f) {
                    f.next = 6;
                    f.msg = bytes(20, 0);
                }),
                R::ipv6_next_header),
            bad("no next header (59)", with([](frame6& f) {
                    f.next = 59;
                    f.msg = {};
                }),
                R::ipv6_next_header),

            // --- UDP
            bad("7 bytes of UDP", with([](frame6& f) { f.msg = bytes{0x13, 0x8c, 0x9c, 0xa4, 0, 7, 0}; }), R::udp_runt),
            bad("UDP length shorter than the payload length (smuggled tail)",
                with([](frame6& f) { f.msg = udp(rtp(), speaker_port, 8 + 12 + 40); }), R::udp_length),
            bad("DNS query to port 53", with([](frame6& f) { f.msg = udp(bytes(30, 0), 53); }), R::udp_port),
            bad("UDP checksum 0 (legal over IPv4 only)", with([](frame6& f) {
                    f.fix_checksum = false;
                    f.msg = udp(rtp());
                }),
                R::ipv6_udp_zero_checksum),
            // An RTP packet's checksum waits for its flow (ingress.cc
            // rtp_input6): an unknown flow is dropped without one, a
            // registered flow's packet is checked there (test_corpus6.cc).
            good("RTP over IPv6 with a wrong UDP checksum (checked after the flow lookup)", [] {
                    bytes b = with([](frame6&) {});
                    b[14 + 40 + 6] ^= 0x21;
                    return b;
                }(), pkt_kind::rtp6),
            good("RTP over IPv6 with a payload byte flipped after the checksum (checked after the flow lookup)", [] {
                    bytes b = with([](frame6&) {});
                    b[80] ^= 0x01;
                    return b;
                }(), pkt_kind::rtp6),
            // A join request's is checked by the join stage, within its
            // budget (join.cc join_flush; tests/api/test_join.cc).
            good("STUN over IPv6 with a wrong UDP checksum (checked by the join stage)", [] {
                    bytes b = with([](frame6& f) { f.msg = udp(stun_request6()); });
                    b[14 + 40 + 6] ^= 0x21;
                    return b;
                }(), pkt_kind::stun6),
            good("STUN over IPv6 with a byte flipped after the checksum (checked by the join stage)", [] {
                    bytes b = with([](frame6& f) { f.msg = udp(stun_request6()); });
                    b[14 + 40 + 8 + 12] ^= 0x01;   // the transaction id
                    return b;
                }(), pkt_kind::stun6),
            bad("STUN-looking UDP6 longer than any join request (549 bytes), wrong checksum: refused before the sum",
                [] {
                    bytes m = stun_request6();
                    m.resize(549, 0x5a);
                    bytes b = with([&](frame6& f) { f.msg = udp(m); });
                    b[14 + 40 + 6] ^= 0x21;
                    return b;
                }(),
                R::join_stun_too_long),
            bad("STUN over IPv6 with UDP checksum 0", with([](frame6& f) {
                    f.fix_checksum = false;
                    f.msg = udp(stun_request6());
                }),
                R::ipv6_udp_zero_checksum),
            bad("RTP version 1 over IPv6", with([](frame6& f) { f.msg = udp(rtp(0x40)); }), R::rtp_version),
            bad("zero-length UDP payload", with([](frame6& f) { f.msg = udp({}); }), R::rtp_runt),

            // --- ICMPv6
            bad("3 bytes of ICMPv6", echo_with([](frame6& f) {
                    f.msg = {128, 0, 0};
                    f.fix_checksum = false;
                }),
                R::icmp6_invalid),
            bad("echo request with a bad checksum", [] {
                    bytes b = echo_with([](frame6&) {});
                    b[14 + 40 + 3] ^= 1;
                    return b;
                }(), R::icmp6_invalid),
            bad("echo request with code 1", echo_with([](frame6& f) { f.msg[1] = 1; }), R::icmp6_invalid),
            bad("echo reply (unsolicited)", echo_with([](frame6& f) { f.msg[0] = 129; }), R::icmp6_not_echo),
            bad("destination unreachable", echo_with([](frame6& f) { f.msg = icmp6(1, 4, 52); }), R::icmp6_not_echo),
            bad("packet too big", echo_with([](frame6& f) { f.msg = icmp6(2, 0, 52); }), R::icmp6_not_echo),
            bad("router solicitation", echo_with([](frame6& f) {
                    f.msg = icmp6(133, 0, 4);
                    f.hop_limit = 255;
                }),
                R::icmp6_not_echo),
            bad("router advertisement from the router, to all-nodes", echo_with([](frame6& f) {
                    f.src = router_ll;
                    f.dst = all_nodes;
                    f.eth_dst = group_mac(all_nodes);
                    f.hop_limit = 255;
                    f.msg = icmp6(134, 0, 12);
                }),
                R::nd_router_advert),
            bad("redirect to another first hop", echo_with([](frame6& f) {
                    f.src = router_ll;
                    f.hop_limit = 255;
                    f.msg = icmp6(137, 0, 36);
                }),
                R::nd_redirect),

            // --- neighbour discovery
            bad("NS with hop limit 64 (routed from off-link)", ns_with([](frame6& f) { f.hop_limit = 64; }),
                R::nd_hop_limit),
            bad("NA with hop limit 254", na_with([](frame6& f) { f.hop_limit = 254; }), R::nd_hop_limit),
            bad("NS from :: (duplicate address detection)", ns_with([](frame6& f) {
                    f.src = unspecified;
                    f.msg = ns(our6, nullptr);
                }),
                R::nd_dad),
            bad("NS with code 1", ns_with([](frame6& f) { f.msg[1] = 1; }), R::nd_invalid),
            bad("NS of 20 bytes", ns_with([](frame6& f) { f.msg.resize(20); }), R::nd_invalid),
            bad("NS for a multicast target", ns_with([](frame6& f) { f.msg[8] = 0xff; }), R::nd_invalid),
            bad("NS option of length 0", ns_with([](frame6& f) { f.msg[25] = 0; }), R::nd_invalid),
            bad("NS option running past the end", ns_with([](frame6& f) { f.msg[25] = 2; }), R::nd_invalid),
            bad("NS link-layer address not the frame's source (poisoning)",
                ns_with([](frame6& f) { f.msg = ns(our6, &other_mac); }), R::nd_invalid),
            bad("multicast NS without a source link-layer address", ns_with([](frame6& f) { f.msg = ns(our6, nullptr); }),
                R::nd_invalid),
            bad("NS for our address to all-nodes (solicited-node group or unicast only)", ns_with([](frame6& f) {
                    f.eth_dst = group_mac(all_nodes);
                    f.dst = all_nodes;
                }),
                R::ipv6_dst),
            bad("NA to all-nodes claiming to be solicited", na_with([](frame6& f) {
                    f.eth_dst = group_mac(all_nodes);
                    f.dst = all_nodes;
                }),
                R::nd_invalid),
            bad("NA target link-layer address not the frame's source",
                na_with([](frame6& f) { f.msg = na(0x60, peer6, &other_mac); }), R::nd_invalid),
            bad("NA with two target link-layer options", na_with([](frame6& f) {
                    append(f.msg, bytes{2, 1});
                    append(f.msg, bytes(peer_mac.begin(), peer_mac.end()));
                }),
                R::nd_invalid),
            bad("NS for another address, unicast to us", ns_with([](frame6& f) {
                    f.eth_dst = our_mac;
                    f.dst = our6;
                    f.msg = ns(other6);
                }),
                R::nd_not_for_us),
            bad("NS for another address sharing our low 24 bits", ns_with([](frame6& f) {
                    addr6 t = our6;
                    t[4] = 0x77;
                    f.msg = ns(t);
                }),
                R::nd_not_for_us),
        };
        return t;
    }();
    return rows;
}

// The frame at the very end of a readable page; the next is PROT_NONE.
parse_result parse_guarded(const bytes& b, const port_identity& self = test_self()) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    auto* base = static_cast<uint8_t*>(mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(base, MAP_FAILED);
    mprotect(base + page, page, PROT_NONE);
    uint8_t* at = base + page - b.size();
    if (!b.empty()) std::memcpy(at, b.data(), b.size());
    const parse_result r = parse_packet(at, static_cast<uint32_t>(b.size()), self);
    munmap(base, 2 * page);
    return r;
}

std::string reason_name(drop_reason r) { return r == R::count_ ? std::string("(none)") : std::string(name_of(r)); }

TEST(Parse6Table, Rows) {
    ASSERT_GE(table().size(), 60u);
    for (const row& r : table()) {
        SCOPED_TRACE(r.what);
        const parse_result res = parse_guarded(r.pkt);
        EXPECT_EQ(int(res.kind), int(r.kind));
        EXPECT_EQ(reason_name(res.reason), reason_name(r.reason));
        if (res.kind == pkt_kind::drop) continue;
        EXPECT_EQ(res.l3_off, 14);
        EXPECT_EQ(res.l4_off, 54);
        if (res.kind == pkt_kind::rtp6) {
            EXPECT_EQ(res.rtp_off, 62);
            EXPECT_EQ(res.rtp_len, (r.pkt[58] << 8 | r.pkt[59]) - 8);
            EXPECT_EQ(res.payload_off, 74);
            EXPECT_EQ(res.payload_len, res.rtp_len - 12);
        }
        if (res.kind == pkt_kind::icmp6_echo || res.kind == pkt_kind::nd_ns || res.kind == pkt_kind::nd_na) {
            EXPECT_EQ(res.icmp_len, r.pkt[18] << 8 | r.pkt[19]);
        }
        if (res.kind == pkt_kind::nd_ns || res.kind == pkt_kind::nd_na) {
            if (res.nd_lla_off != 0) {
                EXPECT_EQ(0, std::memcmp(r.pkt.data() + res.nd_lla_off, r.pkt.data() + 6, 6));
                EXPECT_EQ(res.nd_lla_off, 54 + 24 + 2);
            }
        }
    }
}

TEST(Parse6Table, NoRowsTwice) {
    std::set<std::string> seen;
    for (const row& r : table()) EXPECT_TRUE(seen.insert(r.what).second) << r.what;
}

// Every IPv6 reason the validator can give is in the table; the rest are
// decided later (reply budgets, the neighbour state machine, ingress).
TEST(Parse6Table, CoversEveryIpv6Reason) {
    const std::set<drop_reason> not_from_validator = {R::ipv6_off, R::ipv6_unserved, R::icmp6_rate, R::nd_rate,
                                                      R::nd_unsolicited, R::nd_override, R::nd_late, R::nd_conflict};
    std::set<drop_reason> seen;
    std::set<pkt_kind> kinds;
    for (const row& r : table()) {
        kinds.insert(r.kind);
        if (r.kind == pkt_kind::drop) seen.insert(r.reason);
    }
    for (auto i = size_t(R::ipv6_off); i <= size_t(R::nd_redirect); ++i) {
        const auto r = drop_reason(i);
        if (not_from_validator.contains(r))
            EXPECT_FALSE(seen.contains(r)) << name_of(r);
        else
            EXPECT_TRUE(seen.contains(r)) << "no table row for " << name_of(r);
    }
    EXPECT_EQ(kinds.size(), 6u) << "drop and the five IPv6 kinds";
}

TEST(Parse6, PortWithoutIpv6DropsEveryIpv6Frame) {
    port_identity self = test_self();
    self.has_ip6 = 0;
    for (const row& r : table()) {
        if (r.pkt.size() < 14 || (r.kind == pkt_kind::drop && r.reason == R::eth_dst)) continue;
        SCOPED_TRACE(r.what);
        const parse_result res = parse_guarded(r.pkt, self);
        EXPECT_EQ(reason_name(res.reason), reason_name(R::ipv6_off));
    }
}

// Every strict prefix of a good frame is dropped by the length check of the
// layer it cuts, without reading past it (guard page).
TEST(Parse6, EveryPrefixDropped) {
    for (const bytes& full : {with([](frame6&) {}), build(ns_frame()), echo_with([](frame6&) {})}) {
        for (size_t n = 0; n < full.size(); ++n) {
            SCOPED_TRACE("prefix length " + std::to_string(n));
            const parse_result res = parse_guarded(bytes(full.begin(), full.begin() + ptrdiff_t(n)));
            ASSERT_EQ(int(res.kind), int(pkt_kind::drop));
            const drop_reason want = n < 14 ? R::eth_runt : n < 54 ? R::ipv6_runt : R::ipv6_payload_length;
            EXPECT_EQ(reason_name(res.reason), reason_name(want));
        }
    }
}

}  // namespace
}  // namespace stentor::dp
