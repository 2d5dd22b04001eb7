// Integration, IPv6 fan-out (issue 15): real EAL, ring-backed ethdev ports,
// the relay's own workers polled on the test thread. One session carries
// listeners of both families; an IPv6 speaker's packet and an IPv4
// speaker's packet reach every one of them, field by field, with the same
// RTP bytes.
//
// IPv6 listeners here sit behind the port's gateway6, whose MAC the profile
// pins (gateway6_mac): the fan-out is under test, not neighbour discovery
// (the network layer's own tests drive NS/NA).
#include <array>
#include <cstring>
#include <set>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "harness.h"
#include "ip6.h"
#include "stentor/dp_counters.h"

namespace stentor::test {
namespace {

using control::ipv6_addr;
using control::relay;
using control::relay_options;

ipv6_addr v6(const char* t) { return *control::parse_ipv6(t); }

const ipv6_addr relay_ip6 = v6("2001:db8:100::1");
const ipv6_addr gateway6 = v6("2001:db8:100::fe");
constexpr mac_t gateway6_mac{0x02, 0x00, 0x00, 0x00, 0x06, 0xfe};
const ipv6_addr speaker_ip6 = v6("2001:db8:100::10");

control::profile dual_profile(const std::string& port_name) {
    auto p = base_profile(port_name);
    p.ports[0].ipv6 = relay_ip6;
    p.ports[0].prefix6_len = 64;
    p.ports[0].gateway6 = gateway6;
    p.ports[0].gateway6_mac = std::array<uint8_t, 6>{gateway6_mac[0], gateway6_mac[1], gateway6_mac[2],
                                                     gateway6_mac[3], gateway6_mac[4], gateway6_mac[5]};
    return p;
}

// A listener of either family.
struct peer {
    uint32_t ip = 0;                    // IPv4 (host order), or 0
    std::optional<ipv6_addr> ip6;
    uint16_t port = 0;
    bool operator<(const peer& o) const { return std::tie(ip, ip6, port) < std::tie(o.ip, o.ip6, o.port); }
};

void put16(bytes& b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}

// RFC 1071, naive: the reference the replicas' checksums must verify with.
uint16_t sum16(const uint8_t* p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) s += be16(p + i);
    if (n & 1) s += uint32_t{p[n - 1]} << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

bytes rtp_bytes(uint16_t seq, size_t payload) {
    bytes rtp(12 + payload, 0);
    rtp[0] = 0x80;
    rtp[1] = 111;
    put16(rtp, 2, seq);
    put16(rtp, 4, static_cast<uint16_t>((960u * seq) >> 16));
    put16(rtp, 6, static_cast<uint16_t>(960u * seq));
    put16(rtp, 10, 1234);   // SSRC 1234
    for (size_t i = 0; i < payload; ++i) rtp[12 + i] = static_cast<uint8_t>(i * 7 + seq);
    return rtp;
}

// Ethernet/IPv6/UDP from the IPv6 speaker to the session port, with the
// UDP checksum a sender's kernel writes (mandatory over IPv6).
bytes speaker6_frame(const bytes& rtp, uint16_t sport = 5004, uint16_t dport = 40000,
                     const ipv6_addr& src = speaker_ip6) {
    const size_t ul = 8 + rtp.size();
    bytes b(14 + 40 + ul, 0);
    std::memcpy(b.data(), relay_mac, 6);
    const uint8_t src_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x10};
    std::memcpy(b.data() + 6, src_mac, 6);
    put16(b, 12, 0x86dd);
    uint8_t* ip = b.data() + 14;
    ip[0] = 0x60;
    put16(b, 18, static_cast<uint16_t>(ul));
    ip[6] = 17;
    ip[7] = 64;
    std::memcpy(ip + 8, src.data(), 16);
    std::memcpy(ip + 24, relay_ip6.data(), 16);
    put16(b, 54, sport);
    put16(b, 56, dport);
    put16(b, 58, static_cast<uint16_t>(ul));
    std::copy(rtp.begin(), rtp.end(), b.begin() + 62);
    bytes ph(ip + 8, ip + 40);
    for (uint8_t x : {uint8_t(0), uint8_t(0), uint8_t(ul >> 8), uint8_t(ul), uint8_t(0), uint8_t(0), uint8_t(0), uint8_t(17)})
        ph.push_back(x);
    ph.insert(ph.end(), b.begin() + 54, b.end());
    uint16_t c = static_cast<uint16_t>(~sum16(ph.data(), ph.size()));
    if (c == 0) c = 0xffff;
    put16(b, 60, c);
    return b;
}

bool on_link4(uint32_t ip) { return (ip & 0xffffff00) == (relay_ip & 0xffffff00); }

// Which listener a replica is for, and that every field is right: the
// family's headers, the relay's addresses, the session port as source,
// a UDP checksum that verifies against the naive sum, the RTP bytes as
// the speaker sent them.
peer check_replica(const bytes& f, const bytes& rtp, uint8_t tclass = 46 << 2) {
    peer p;
    EXPECT_EQ(0, std::memcmp(f.data() + 6, relay_mac, 6)) << "src mac";
    const uint16_t type = be16(f.data() + 12);
    if (type == 0x0800) {
        EXPECT_EQ(42 + rtp.size(), f.size()) << "IPv4 frame length";
        if (f.size() != 42 + rtp.size()) return p;
        const uint8_t* ip = f.data() + 14;
        p.ip = be32(ip + 16);
        p.port = be16(ip + 22);
        const mac_t want = on_link4(p.ip) ? host_mac(p.ip) : host_mac(gateway_ip);
        EXPECT_EQ(0, std::memcmp(f.data(), want.data(), 6)) << "dst mac";
        EXPECT_EQ(0x45, ip[0]);
        EXPECT_EQ(tclass, ip[1]);
        EXPECT_EQ(f.size() - 14, be16(ip + 2));
        EXPECT_EQ(0x4000, be16(ip + 6));
        EXPECT_EQ(64, ip[8]);
        EXPECT_EQ(17, ip[9]);
        EXPECT_EQ(relay_ip, be32(ip + 12));
        EXPECT_EQ(0, ip_checksum(ip, 20)) << "IPv4 header checksum";
        const uint8_t* udp = ip + 20;
        EXPECT_EQ(40000, be16(udp)) << "source port = session port";
        EXPECT_EQ(f.size() - 34, be16(udp + 4));
        bytes ph(12);
        std::memcpy(ph.data(), ip + 12, 8);
        ph[9] = 17;
        ph[10] = udp[4];
        ph[11] = udp[5];
        ph.insert(ph.end(), udp, f.data() + f.size());
        EXPECT_NE(0, be16(udp + 6));
        EXPECT_EQ(0xffff, sum16(ph.data(), ph.size())) << "UDP checksum";
        EXPECT_EQ(0, std::memcmp(f.data() + 42, rtp.data(), rtp.size())) << "RTP bytes identical";
        return p;
    }
    EXPECT_EQ(0x86dd, type) << "ethertype";
    EXPECT_EQ(62 + rtp.size(), f.size()) << "IPv6 frame length";
    if (type != 0x86dd || f.size() != 62 + rtp.size()) return p;
    const uint8_t* ip = f.data() + 14;
    ipv6_addr dst;
    std::memcpy(dst.data(), ip + 24, 16);
    p.ip6 = dst;
    p.port = be16(ip + 42);
    EXPECT_EQ(0, std::memcmp(f.data(), gateway6_mac.data(), 6)) << "dst mac: the pinned gateway6";
    EXPECT_EQ(0x60 | (tclass >> 4), ip[0]) << "version 6, traffic class";
    EXPECT_EQ((tclass & 0x0f) << 4, ip[1]) << "traffic class, flow label 0";
    EXPECT_EQ(0, ip[2]);
    EXPECT_EQ(0, ip[3]);
    EXPECT_EQ(f.size() - 54, be16(ip + 4)) << "payload length";
    EXPECT_EQ(17, ip[6]) << "next header UDP";
    EXPECT_EQ(64, ip[7]) << "hop limit";
    EXPECT_EQ(0, std::memcmp(ip + 8, relay_ip6.data(), 16)) << "source = the port's ipv6";
    const uint8_t* udp = ip + 40;
    EXPECT_EQ(40000, be16(udp)) << "source port = session port";
    EXPECT_EQ(f.size() - 54, be16(udp + 4));
    bytes ph(ip + 8, ip + 40);
    const size_t ul = f.size() - 54;
    for (uint8_t x : {uint8_t(0), uint8_t(0), uint8_t(ul >> 8), uint8_t(ul), uint8_t(0), uint8_t(0), uint8_t(0), uint8_t(17)})
        ph.push_back(x);
    ph.insert(ph.end(), udp, f.data() + f.size());
    EXPECT_NE(0, be16(udp + 6)) << "UDP checksum present (mandatory)";
    EXPECT_EQ(0xffff, sum16(ph.data(), ph.size())) << "UDP checksum";
    EXPECT_EQ(0, std::memcmp(f.data() + 62, rtp.data(), rtp.size())) << "RTP bytes identical";
    return p;
}

class ipv6_fanout : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("v6");
};

// 91 listeners in one session: 30 IPv4 on-link, 15 IPv4 behind the gateway,
// 46 IPv6 behind gateway6, in two tiers; 7 packets of odd and even sizes
// from an IPv6 speaker.
TEST_F(ipv6_fanout, one_ipv6_speaker_to_91_listeners_of_both_families_field_by_field) {
    auto prof = dual_profile(port.name);
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    const unsigned in_use0 = rte_mempool_in_use_count(r.pool());
    r.state().load_static(prof);
    r.state().speaker_add(1, control::speaker_spec{0, 5004, 1234, speaker_ip6});
    std::set<peer> want;
    std::vector<uint32_t> v4;
    for (uint32_t i = 0; i < 30; ++i) v4.push_back(0xc6120064 + i);   // 198.18.0.100+
    for (uint32_t i = 0; i < 15; ++i) v4.push_back(0xcb007101 + i);   // 203.0.113.1+ via the gateway
    for (size_t i = 0; i < v4.size(); ++i) {
        r.state().listener_add(1, control::listener_spec{v4[i], static_cast<unsigned>(6000 + i), static_cast<unsigned>(i % 2)});
        want.insert(peer{v4[i], std::nullopt, static_cast<uint16_t>(6000 + i)});
    }
    for (unsigned i = 0; i < 46; ++i) {
        ipv6_addr a = v6("2001:db8:200::");
        a[13] = static_cast<uint8_t>(i * 37);   // sums that wrap differently
        a[14] = static_cast<uint8_t>(i >> 8);
        a[15] = static_cast<uint8_t>(i + 1);
        const uint16_t lp = static_cast<uint16_t>(i == 0 ? 65535 : 7000 + i);
        r.state().listener_add(1, control::listener_spec{0, lp, i % 2, false, a});
        want.insert(peer{0, a, lp});
    }
    r.state().publish();
    ASSERT_EQ(91u, want.size());
    EXPECT_TRUE(resolve(r, port, v4).empty()) << "only ARP may leave while resolving (gateway6 is pinned: no NS)";

    const size_t sizes[] = {80, 81, 1, 160, 320, 999, 41};
    for (uint16_t k = 0; k < 7; ++k) {
        const bytes rtp = rtp_bytes(static_cast<uint16_t>(100 + k), sizes[k]);
        inject(port, speaker6_frame(rtp));
        settle(r);
        const auto out = drain(port);
        ASSERT_EQ(91u, out.size()) << "packet " << k;
        std::set<peer> seen;
        for (const auto& f : out) {
            const peer p = check_replica(f, rtp);
            EXPECT_TRUE(want.count(p)) << "egress to an unregistered listener";
            EXPECT_TRUE(seen.insert(p).second) << "duplicate replica";
        }
    }
    EXPECT_EQ(7u, counter(r, "rtp_in"));
    EXPECT_EQ(7u * 91u, counter(r, "replicas_out"));
    EXPECT_EQ(0u, counter(r, "drop/egress/neigh_unresolved"));
    EXPECT_EQ(0u, counter(r, "drop/ingress/ipv6_unserved"));
    r.flush();
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(r.pool()));
}

// An IPv4 speaker's packets reach IPv6 listeners with the same RTP bytes;
// one too large to fit the port's MTU as IPv6 (20 more header bytes)
// reaches the IPv4 listener only, and each IPv6 listener that missed it is
// counted.
TEST_F(ipv6_fanout, ipv4_speaker_to_ipv6_listeners_and_what_does_not_fit_as_ipv6) {
    auto prof = dual_profile(port.name);
    prof.sessions.push_back(speaker_session());   // IPv4 speaker 198.18.0.10:5004, SSRC 1234
    relay r(prof, relay_options{.launch = false});
    const unsigned in_use0 = rte_mempool_in_use_count(r.pool());
    r.state().load_static(prof);
    std::set<peer> want6;
    for (unsigned i = 0; i < 5; ++i) {
        ipv6_addr a = v6("2001:db8:300::1");
        a[15] = static_cast<uint8_t>(1 + i);
        r.state().listener_add(1, control::listener_spec{0, 9000 + i, 0, false, a});
        want6.insert(peer{0, a, static_cast<uint16_t>(9000 + i)});
    }
    r.state().listener_add(1, control::listener_spec{listener_ip, listener_port, 0});
    r.state().publish();
    EXPECT_TRUE(resolve(r, port, {listener_ip}).empty());

    const uint16_t mtu_rtp4 = static_cast<uint16_t>(prof.ports[0].mtu - 28);   // fills the MTU as IPv4
    const size_t payloads[] = {80, 41, size_t{mtu_rtp4} - 12};
    for (uint16_t k = 0; k < 3; ++k) {
        frame_spec fs;
        fs.seq = static_cast<uint16_t>(10 + k);
        fs.payload = payloads[k];
        const bytes in = rtp_frame(fs);
        const bytes rtp(in.begin() + 42, in.end());
        inject(port, in);
        settle(r);
        const auto out = drain(port);
        const bool fits6 = rtp.size() + 62 <= prof.ports[0].mtu + 14u;
        ASSERT_EQ(fits6 ? 6u : 1u, out.size()) << "packet " << k;
        std::set<peer> seen6;
        for (const auto& f : out) {
            const peer p = check_replica(f, rtp);
            if (p.ip6) {
                EXPECT_TRUE(want6.count(p));
                EXPECT_TRUE(seen6.insert(p).second);
            } else {
                EXPECT_EQ(listener_ip, p.ip);
            }
        }
    }
    EXPECT_EQ(5u, counter(r, "drop/egress/ipv6_too_big")) << "the last packet, once per IPv6 listener";
    EXPECT_EQ(0u, counter(r, "drop/egress/ipv4_too_big")) << "it fits as IPv4";
    EXPECT_EQ(3u, counter(r, "rtp_in"));
    r.flush();
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(r.pool()));
}

// An IPv6 speaker is a flow of its own: its whole key must match. The same
// source port from another IPv6 address, the registered address to another
// session port, and an address that differs in its last bit are unknown
// flows; nothing leaves for them.
TEST_F(ipv6_fanout, ipv6_speaker_flow_matches_its_whole_key_only) {
    auto prof = dual_profile(port.name);
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    r.state().speaker_add(1, control::speaker_spec{0, 5004, 1234, speaker_ip6});
    r.state().listener_add(1, control::listener_spec{0, 9000, 0, false, v6("2001:db8:300::1")});
    r.state().publish();
    settle(r);
    drain(port);
    const bytes rtp = rtp_bytes(1, 80);
    bytes other_port = speaker6_frame(rtp, 5005);
    bytes other_session_port = speaker6_frame(rtp, 5004, 40001);
    ipv6_addr flipped = speaker_ip6;
    flipped[15] ^= 1;
    bytes last_bit = speaker6_frame(rtp, 5004, 40000, flipped);
    for (const bytes* f : {&other_port, &other_session_port, &last_bit}) inject(port, *f);
    settle(r);
    EXPECT_TRUE(drain(port).empty());
    EXPECT_EQ(3u, counter(r, "drop/ingress/unknown_flow") + counter(r, "drop/ingress/udp_port"));
    EXPECT_EQ(0u, counter(r, "drop/ingress/udp_checksum")) << "the test's frames are valid";
    EXPECT_EQ(0u, counter(r, "rtp_in"));
    inject(port, speaker6_frame(rtp));
    settle(r);
    EXPECT_EQ(1u, drain(port).size());
}

// A packet given up part way counts each live listener it did not reach
// once, across both families of its tier and the whole tiers after it
// (fanout.cc abandon: nb_live less the live listeners the job already
// served, in constant time). Tier 0: 12 IPv4 then 12 IPv6 slots, every
// third left (16 live); tier 1: 4 IPv4 and 4 IPv6. The per-packet budget
// stops the job in the IPv4 list, in the IPv6 list, at the tier's end, or
// never.
TEST_F(ipv6_fanout, a_packet_given_up_counts_each_missed_listener_of_both_families_once) {
    struct row {
        unsigned budget;
        uint64_t missed;   // per packet
        const char* what;
    };
    const row rows[] = {
        {3, 21, "stops in tier 0's IPv4 list"},
        {10, 14, "stops in tier 0's IPv6 list"},
        {16, 8, "tier 0 whole, tier 1 missed"},
        {19, 5, "stops in tier 1's IPv4 list"},
        {24, 0, "reaches every live listener"},
    };
    for (const row& t : rows) {
        ring_port p = fresh_ring_port("abandon6");
        auto prof = dual_profile(p.name);
        prof.sessions.push_back(speaker_session());
        relay r(prof, relay_options{.launch = false, .replica_budget = t.budget});
        r.state().load_static(prof);
        std::vector<uint32_t> v4;
        for (unsigned tier = 0; tier < 2; ++tier) {
            const unsigned n = tier == 0 ? 12 : 4;
            for (unsigned i = 0; i < n; ++i) {
                const uint32_t ip = 0xcb007101 + tier * 100 + i;   // via the gateway
                r.state().listener_add(1, control::listener_spec{ip, 6000, tier});
                if (tier == 1 || i % 3 != 2) v4.push_back(ip);
            }
            for (unsigned i = 0; i < n; ++i) {
                ipv6_addr a = v6("2001:db8:300::");
                a[14] = static_cast<uint8_t>(tier);
                a[15] = static_cast<uint8_t>(i + 1);
                r.state().listener_add(1, control::listener_spec{0, 7000, tier, false, a});
            }
        }
        for (unsigned i = 2; i < 12; i += 3) {
            r.state().listener_del(1, control::listener_addr{0xcb007101 + i, 6000});
            ipv6_addr a = v6("2001:db8:300::");
            a[15] = static_cast<uint8_t>(i + 1);
            r.state().listener_del(1, control::listener_addr{0, 7000, a});
        }
        r.state().publish();
        EXPECT_TRUE(resolve(r, p, v4).empty()) << t.what;
        const unsigned packets = 5;
        for (unsigned k = 0; k < packets; ++k) {
            frame_spec fs;
            fs.seq = static_cast<uint16_t>(k);
            inject(p, rtp_frame(fs));
            settle(r);
            drain(p);
        }
        EXPECT_EQ(packets * t.missed, counter(r, "drop/egress/deadline")) << t.what;
        EXPECT_EQ(packets * 24u, counter(r, "replicas_out") + counter(r, "tier_misses/0") + counter(r, "tier_misses/1"))
            << t.what;
        EXPECT_EQ(packets * (t.budget >= 16 ? 0u : 16u - t.budget), counter(r, "tier_misses/0")) << t.what;
        r.flush();
        EXPECT_EQ(0u, rte_mempool_in_use_count(r.pool())) << "mbuf leak: " << t.what;
    }
}

// Shedding and leaving take IPv6 listeners out like IPv4 ones: newest
// first across both families, and the data plane stops sending to them at
// the next publish.
TEST_F(ipv6_fanout, shedding_takes_the_newest_of_both_families) {
    auto prof = dual_profile(port.name);
    prof.sessions.push_back(speaker_session());
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    r.state().listener_add(1, control::listener_spec{listener_ip, listener_port, 1});
    r.state().listener_add(1, control::listener_spec{0, 9001, 1, false, v6("2001:db8:300::1")});
    r.state().listener_add(1, control::listener_spec{listener_ip + 1, listener_port, 1});
    r.state().listener_add(1, control::listener_spec{0, 9002, 1, false, v6("2001:db8:300::2")});
    r.state().publish();
    EXPECT_TRUE(resolve(r, port, {listener_ip, listener_ip + 1}).empty());
    const auto shed = r.state().shed_newest(1, 2);
    ASSERT_EQ(2u, shed.size());
    ASSERT_TRUE(shed[0].ip6.has_value());
    EXPECT_EQ(v6("2001:db8:300::2"), *shed[0].ip6) << "newest first";
    EXPECT_EQ(9002u, shed[0].port);
    EXPECT_EQ(listener_ip + 1, shed[1].ip);
    EXPECT_FALSE(shed[1].ip6.has_value());
    r.state().listener_del(1, control::listener_addr{0, 9001, v6("2001:db8:300::1")});
    r.state().publish();
    frame_spec fs;
    fs.seq = 5;
    inject(port, rtp_frame(fs));
    settle(r);
    const auto out = drain(port);
    ASSERT_EQ(1u, out.size()) << "only the oldest IPv4 listener is left";
    EXPECT_EQ(listener_ip, be32(out[0].data() + 30));
    const auto page = r.state().listeners(1, 0, 10);
    ASSERT_EQ(1u, page.size());
    EXPECT_EQ(0u, r.state().session(1)->nb_listeners - 1);
}

}  // namespace
}  // namespace stentor::test
