// Integration: real EAL, ring-backed ethdev ports, the relay's own workers
// polled on the test thread. Golden packets in, exact packets out.
#include <array>
#include <chrono>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "harness.h"
#include "stentor/dp_counters.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;
struct listener_t {
    uint32_t ip;
    uint16_t port;
    unsigned tier;
};

// The relay asks for its listeners' neighbours; nothing else may leave meanwhile.
void resolve_listeners(relay& r, const ring_port& port, const std::vector<listener_t>& ls) {
    std::vector<uint32_t> ips;
    for (const auto& l : ls) ips.push_back(l.ip);
    EXPECT_TRUE(resolve(r, port, ips).empty()) << "unexpected non-ARP egress while resolving";
}

bool on_link(uint32_t ip) { return (ip & 0xffffff00) == (relay_ip & 0xffffff00); }

void check_replica(const bytes& f, const bytes& in, const listener_t& l, uint8_t tos = 46 << 2) {
    ASSERT_EQ(f.size(), in.size()) << "frame length";
    const mac_t want = on_link(l.ip) ? host_mac(l.ip) : host_mac(gateway_ip);
    EXPECT_EQ(0, std::memcmp(f.data(), want.data(), 6)) << "dst mac";
    EXPECT_EQ(0, std::memcmp(f.data() + 6, relay_mac, 6)) << "src mac";
    EXPECT_EQ(0x0800, be16(f.data() + 12));
    const uint8_t* ip = f.data() + 14;
    EXPECT_EQ(0x45, ip[0]);
    EXPECT_EQ(tos, ip[1]) << "DSCP (port.dscp, EF by default), ECN 0";
    EXPECT_EQ(in.size() - 14, be16(ip + 2)) << "total length";
    EXPECT_EQ(0x4000, be16(ip + 6)) << "DF, no fragment";
    EXPECT_EQ(64, ip[8]);
    EXPECT_EQ(17, ip[9]);
    EXPECT_EQ(relay_ip, be32(ip + 12));
    EXPECT_EQ(l.ip, be32(ip + 16));
    EXPECT_EQ(0, ip_checksum(ip, 20)) << "IPv4 header checksum";
    const uint8_t* udp = ip + 20;
    EXPECT_EQ(be16(in.data() + 36), be16(udp)) << "source port = session port";
    EXPECT_EQ(l.port, be16(udp + 2));
    EXPECT_EQ(in.size() - 34, be16(udp + 4));
    // UDP checksum over pseudo header + datagram must verify.
    bytes ph(12 + (f.size() - 34));
    std::memcpy(ph.data(), ip + 12, 8);
    ph[9] = 17;
    ph[10] = udp[4];
    ph[11] = udp[5];
    std::memcpy(ph.data() + 12, udp, f.size() - 34);
    EXPECT_NE(0, be16(udp + 6)) << "UDP checksum present";
    EXPECT_EQ(0, ip_checksum(ph.data(), ph.size())) << "UDP checksum";
    EXPECT_EQ(0, std::memcmp(f.data() + 42, in.data() + 42, in.size() - 42)) << "RTP bytes identical";
}

class relay_test : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("it");
};

TEST_F(relay_test, one_speaker_to_91_listeners_field_by_field) {
    auto prof = base_profile(port.name);
    control::session_config sc = speaker_session();
    std::vector<listener_t> ls;
    for (uint32_t i = 0; i < 60; ++i) ls.push_back({0xc6120064 + i, static_cast<uint16_t>(6000 + i), 0});   // 198.18.0.100+
    for (uint32_t i = 0; i < 31; ++i) ls.push_back({0xcb007101 + i, static_cast<uint16_t>(7000 + i), 0});   // 203.0.113.1+ via gw
    for (const auto& l : ls) sc.listeners.push_back({l.ip, l.port, l.tier});
    prof.sessions.push_back(sc);

    relay r(prof, relay_options{.launch = false});
    const unsigned in_use0 = rte_mempool_in_use_count(r.pool());
    r.state().load_static(prof);
    resolve_listeners(r, port, ls);

    // 7 packets of different payload sizes (odd, even, tiny, large).
    const size_t sizes[] = {80, 81, 1, 160, 320, 999, 41};
    for (uint16_t k = 0; k < 7; ++k) {
        frame_spec fs;
        fs.seq = static_cast<uint16_t>(100 + k);
        fs.payload = sizes[k];
        const bytes in = rtp_frame(fs);
        inject(port, in);
        settle(r);
        const auto out = drain(port);
        ASSERT_EQ(out.size(), ls.size()) << "packet " << k;
        std::set<std::pair<uint32_t, uint16_t>> seen;
        for (const auto& f : out) {
            const uint32_t dst = be32(f.data() + 30);
            const uint16_t dport = be16(f.data() + 36);
            const listener_t* l = nullptr;
            for (const auto& c : ls)
                if (c.ip == dst && c.port == dport) l = &c;
            ASSERT_NE(l, nullptr) << "egress to an unregistered address";
            EXPECT_TRUE(seen.emplace(dst, dport).second) << "duplicate replica";
            check_replica(f, in, *l);
        }
    }
    EXPECT_EQ(7u, counter(r, "rtp_in"));
    EXPECT_EQ(7u * 91u, counter(r, "replicas_out"));
    EXPECT_EQ(0u, counter(r, "drop/egress/neigh_unresolved"));
    r.flush();
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(r.pool()));
}

// Replicas carry the port's DSCP (default EF, tested above); a profile may
// set another. And the loop counts, per stage, what `stentorctl show
// runtime` shows: iterations with work, packets, cycles.
TEST_F(relay_test, dscp_from_the_profile_and_runtime_counters_per_stage) {
    auto prof = base_profile(port.name);
    prof.ports[0].dscp = 34;   // AF41
    control::session_config sc = speaker_session();
    std::vector<listener_t> ls;
    for (uint32_t i = 0; i < 13; ++i) ls.push_back({0xc6120064 + i, static_cast<uint16_t>(6000 + i), 0});
    for (const auto& l : ls) sc.listeners.push_back({l.ip, l.port, l.tier});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, ls);
    const auto before = r.totals();
    for (uint16_t k = 0; k < 5; ++k) {
        frame_spec fs;
        fs.seq = static_cast<uint16_t>(300 + k);
        const bytes in = rtp_frame(fs);
        inject(port, in);
        settle(r);
        const auto out = drain(port);
        ASSERT_EQ(ls.size(), out.size());
        for (const auto& f : out) {
            const listener_t* l = nullptr;
            for (const auto& c : ls)
                if (c.ip == be32(f.data() + 30)) l = &c;
            ASSERT_NE(nullptr, l);
            check_replica(f, in, *l, 34 << 2);
        }
    }
    const auto t = r.totals();
    EXPECT_EQ(5u * 13u, t.fanout_replicas - before.fanout_replicas);
    EXPECT_EQ(5u, t.rx_packets - before.rx_packets);
    EXPECT_LE(1u, t.ingress_calls - before.ingress_calls);
    EXPECT_GE(5u, t.ingress_calls - before.ingress_calls);
    EXPECT_LE(1u, t.fanout_calls - before.fanout_calls);
    EXPECT_LT(0u, t.ingress_cycles - before.ingress_cycles);
    EXPECT_LT(0u, t.fanout_cycles - before.fanout_cycles);
    EXPECT_LE(t.ingress_calls - before.ingress_calls, t.loops - before.loops);
    EXPECT_LE(t.fanout_calls - before.fanout_calls, t.loops - before.loops);
}

struct bad_case {
    const char* what;
    frame_spec spec;
    const char* counter;
    void (*mangle)(bytes&);
};

TEST_F(relay_test, malformed_and_unknown_input_produces_no_egress) {
    auto prof = base_profile(port.name);
    control::session_config sc = speaker_session();
    sc.listeners.push_back({0xc6120064, 6000, 0});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, {{0xc6120064, 6000, 0}});
    const unsigned in_use0 = rte_mempool_in_use_count(r.pool());

    auto with = [](auto f) {
        frame_spec s;
        f(s);
        return s;
    };
    const std::vector<bad_case> cases = {
        {"unknown source port", with([](frame_spec& s) { s.src_port = 5006; }), "drop/ingress/unknown_flow", nullptr},
        {"unknown source address", with([](frame_spec& s) { s.src_ip = 0xc6120063; }), "drop/ingress/unknown_flow", nullptr},
        {"session port without speaker", with([](frame_spec& s) { s.dst_port = 40001; }), "drop/ingress/unknown_flow", nullptr},
        {"wrong SSRC", with([](frame_spec& s) { s.ssrc = 99; }), "drop/ingress/ssrc_mismatch", nullptr},
        {"port outside speaker range", with([](frame_spec& s) { s.dst_port = 5000; }), "drop/ingress/udp_port", nullptr},
        {"not our address", with([](frame_spec& s) { s.dst_ip = 0xc6120002; }), "drop/ingress/ipv4_checksum", nullptr},
        {"bad IPv4 checksum", {}, "drop/ingress/ipv4_checksum", [](bytes& b) { b[24] ^= 0xff; }},
        {"fragment", {}, "drop/ingress/ipv4_checksum", [](bytes& b) { b[20] |= 0x20; }},
        {"RTP version 1", {}, "drop/ingress/rtp_version", [](bytes& b) { b[42] = 0x40; }},
        {"truncated to Ethernet", {}, "drop/ingress/eth_runt", [](bytes& b) { b.resize(10); }},
        {"IPv6 ethertype on a port without ipv6", {}, "drop/ingress/ipv6_off", [](bytes& b) { b[12] = 0x86; b[13] = 0xdd; }},
        {"not our MAC", {}, "drop/ingress/eth_dst", [](bytes& b) { b[5] = 0x77; }},
        {"own source address", with([](frame_spec& s) { s.src_ip = relay_ip; }), "drop/ingress/ipv4_src", nullptr},
        {"registered flow, corrupted payload (UDP checksum wrong)", {}, "drop/ingress/udp_checksum",
         [](bytes& b) { b[60] ^= 0x55; }},
    };
    for (const auto& c : cases) {
        bytes f = rtp_frame(c.spec);
        if (c.mangle) c.mangle(f);
        // "not our address" keeps a valid checksum via the builder; expect ipv4_dst
        const std::string expect = std::string(c.what) == "not our address" ? "drop/ingress/ipv4_dst" : c.counter;
        const uint64_t before = counter(r, expect);
        inject(port, f);
        settle(r);
        EXPECT_TRUE(drain(port).empty()) << c.what;
        EXPECT_EQ(before + 1, counter(r, expect)) << c.what;
    }
    EXPECT_EQ(0u, counter(r, "replicas_out"));
    EXPECT_EQ(0u, counter(r, "rtp_in"));
    r.flush();
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(r.pool()));
}

// One RX burst carrying packets of several sessions between strangers (the
// ingress looks up a burst's flows and prefetches their state in a first
// pass, dropping unknown flows there, then handles the rest in order,
// ingress.cc flow_stage): every row goes its own way, each session's
// packets reach exactly its listeners in the order they came, each stranger
// is counted by its reason, and the ARP request in the middle is answered.
TEST_F(relay_test, one_burst_of_four_sessions_and_strangers_each_row_goes_its_own_way) {
    auto prof = base_profile(port.name);
    std::vector<std::vector<listener_t>> members(4);
    std::vector<listener_t> all;
    for (uint32_t k = 0; k < 4; ++k) {
        control::session_config sc;
        sc.id = 1 + k;
        sc.udp_port = static_cast<uint16_t>(40000 + k);
        sc.speakers.push_back({speaker_ip + k, 5004, 1234 + k});
        for (uint32_t i = 0; i <= k; ++i) {   // 1, 2, 3, 4 listeners
            const listener_t l{0xc6120064 + 10 * k + i, static_cast<uint16_t>(6000 + k), 0};
            members[k].push_back(l);
            all.push_back(l);
            sc.listeners.push_back({l.ip, l.port, l.tier});
        }
        prof.sessions.push_back(sc);
    }
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, all);
    const unsigned in_use0 = rte_mempool_in_use_count(r.pool());
    const auto c0 = all_counters(r);

    // -1: a stranger, its counter; else the session it belongs to.
    struct row {
        int session;
        frame_spec spec;
        const char* counter;
        void (*mangle)(bytes&);
    };
    auto of = [](uint32_t k, uint16_t seq) {
        frame_spec f;
        f.src_ip = speaker_ip + k;
        f.dst_port = static_cast<uint16_t>(40000 + k);
        f.ssrc = 1234 + k;
        f.seq = seq;
        f.payload = 40 + 10 * k + seq;
        return f;
    };
    auto with = [](frame_spec f, auto g) {
        g(f);
        return f;
    };
    const std::vector<row> rows = {
        {0, of(0, 1), nullptr, nullptr},
        {-1, with(of(1, 1), [](frame_spec& f) { f.src_port = 5006; }), "drop/ingress/unknown_flow", nullptr},
        {1, of(1, 1), nullptr, nullptr},
        {-1, of(2, 1), "drop/ingress/eth_runt", [](bytes& b) { b.resize(10); }},
        {2, of(2, 1), nullptr, nullptr},
        {-1, with(of(3, 1), [](frame_spec& f) { f.ssrc = 99; }), "drop/ingress/ssrc_mismatch", nullptr},
        {-2, {}, nullptr, nullptr},   // the ARP request
        {3, of(3, 1), nullptr, nullptr},
        {-1, with(of(0, 2), [](frame_spec& f) { f.src_ip = 0xc6120063; }), "drop/ingress/unknown_flow", nullptr},
        {0, of(0, 2), nullptr, nullptr},
        {3, of(3, 2), nullptr, nullptr},
        {-1, of(1, 2), "drop/ingress/udp_checksum", [](bytes& b) { b[60] ^= 0x55; }},
        {1, of(1, 2), nullptr, nullptr},
    };
    const mac_t peer = host_mac(0xc6120005);
    const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t zero[6] = {};
    std::vector<std::vector<bytes>> sent(4);
    std::map<std::string, uint64_t> want;
    unsigned packets = 0;
    for (const auto& rw : rows) {
        bytes f = rw.session == -2 ? arp_frame(1, peer.data(), 0xc6120005, zero, relay_ip, bcast) : rtp_frame(rw.spec);
        if (rw.mangle) rw.mangle(f);
        if (rw.session >= 0) {
            sent[rw.session].push_back(f);
            ++packets;
        }
        if (rw.counter != nullptr) ++want[rw.counter];
        inject(port, f);
    }
    ASSERT_LE(rows.size(), 32u) << "the rows must fit one RX burst";
    settle(r);
    const auto out = drain(port);

    // Per listener, the replicas in arrival order.
    std::map<std::pair<uint32_t, uint16_t>, std::vector<bytes>> got;
    unsigned arp_replies = 0;
    for (const auto& f : out) {
        if (be16(f.data() + 12) == 0x0806) {
            ++arp_replies;
            EXPECT_EQ(0, std::memcmp(f.data(), peer.data(), 6)) << "ARP reply to the asker";
            continue;
        }
        got[{be32(f.data() + 30), be16(f.data() + 36)}].push_back(f);
    }
    EXPECT_EQ(1u, arp_replies);
    size_t replicas = 0;
    for (uint32_t k = 0; k < 4; ++k)
        for (const auto& l : members[k]) {
            const auto& g = got[{l.ip, l.port}];
            ASSERT_EQ(sent[k].size(), g.size()) << "session " << k << " listener " << l.ip;
            for (size_t i = 0; i < g.size(); ++i) check_replica(g[i], sent[k][i], l);
            replicas += g.size();
        }
    EXPECT_EQ(replicas, out.size() - arp_replies) << "no replica to anyone else";
    EXPECT_EQ(packets, counter(r, "rtp_in") - c0.at("rtp_in"));
    EXPECT_EQ(replicas, counter(r, "replicas_out") - c0.at("replicas_out"));
    for (const auto& [name, n] : want) EXPECT_EQ(n, counter(r, name) - c0.at(name)) << name;
    r.flush();
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(r.pool()));
}

TEST_F(relay_test, answers_arp_and_ping_for_its_address_only) {
    auto prof = base_profile(port.name);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    const mac_t peer = host_mac(0xc6120005);
    const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t zero[6] = {};
    inject(port, arp_frame(1, peer.data(), 0xc6120005, zero, relay_ip, bcast));
    settle(r);
    auto out = drain(port);
    ASSERT_EQ(1u, out.size());
    const bytes& a = out[0];
    EXPECT_EQ(60u, a.size()) << "reply no larger than the request";
    EXPECT_EQ(0, std::memcmp(a.data(), peer.data(), 6));
    EXPECT_EQ(2, be16(a.data() + 20));
    EXPECT_EQ(0, std::memcmp(a.data() + 22, relay_mac, 6));
    EXPECT_EQ(relay_ip, be32(a.data() + 28));
    EXPECT_EQ(0xc6120005u, be32(a.data() + 38));

    inject(port, arp_frame(1, peer.data(), 0xc6120005, zero, 0xc6120002, bcast));
    settle(r);
    EXPECT_TRUE(drain(port).empty());
    EXPECT_EQ(1u, counter(r, "drop/ingress/arp_not_for_us"));

    // ICMP echo request, 64 bytes of data
    bytes p(14 + 20 + 8 + 64, 0);
    std::memcpy(p.data(), relay_mac, 6);
    std::memcpy(p.data() + 6, peer.data(), 6);
    p[12] = 0x08;
    p[14] = 0x45;
    p[16] = 0;
    p[17] = static_cast<uint8_t>(20 + 8 + 64);
    p[22] = 64;
    p[23] = 1;
    const uint32_t src = 0xc6120005;
    for (int i = 0; i < 4; ++i) p[26 + i] = static_cast<uint8_t>(src >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) p[30 + i] = static_cast<uint8_t>(relay_ip >> (24 - 8 * i));
    uint16_t c = ip_checksum(p.data() + 14, 20);
    p[24] = static_cast<uint8_t>(c >> 8);
    p[25] = static_cast<uint8_t>(c);
    p[34] = 8;
    p[38] = 0x12;
    p[40] = 0;
    p[41] = 1;
    for (int i = 0; i < 64; ++i) p[42 + i] = static_cast<uint8_t>(i);
    c = ip_checksum(p.data() + 34, 8 + 64);
    p[36] = static_cast<uint8_t>(c >> 8);
    p[37] = static_cast<uint8_t>(c);
    inject(port, p);
    settle(r);
    out = drain(port);
    ASSERT_EQ(1u, out.size());
    const bytes& e = out[0];
    ASSERT_EQ(p.size(), e.size());
    EXPECT_EQ(0, e[34]) << "echo reply";
    EXPECT_EQ(src, be32(e.data() + 30));
    EXPECT_EQ(relay_ip, be32(e.data() + 26));
    EXPECT_EQ(0, ip_checksum(e.data() + 14, 20));
    EXPECT_EQ(0, ip_checksum(e.data() + 34, 8 + 64));
    EXPECT_EQ(1u, counter(r, "icmp_replies"));
    EXPECT_EQ(1u, counter(r, "arp_replies"));
}

TEST_F(relay_test, live_join_and_leave_take_effect_at_publish) {
    auto prof = base_profile(port.name);
    control::session_config sc = speaker_session();
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    const listener_t a{0xc6120064, 6000, 0}, b{0xc6120065, 6001, 1};
    r.state().listener_add(1, a.ip, a.port, a.tier);
    r.state().listener_add(1, b.ip, b.port, b.tier);
    r.state().publish();
    resolve_listeners(r, port, {a, b});
    auto send = [&](uint16_t seq) {
        frame_spec fs;
        fs.seq = seq;
        inject(port, rtp_frame(fs));
        settle(r);
        std::set<uint32_t> got;
        for (const auto& f : drain(port)) got.insert(be32(f.data() + 30));
        return got;
    };
    EXPECT_EQ((std::set<uint32_t>{a.ip, b.ip}), send(1));
    r.state().listener_del(1, a.ip, a.port);
    r.state().publish();
    EXPECT_EQ((std::set<uint32_t>{b.ip}), send(2));
    r.state().listener_add(1, a.ip, a.port, 2);
    r.state().publish();
    // The neighbour entry stayed cached while a was away: no new ARP needed.
    EXPECT_EQ((std::set<uint32_t>{a.ip, b.ip}), send(3));
    r.state().session_end(1);
    r.state().publish();
    EXPECT_TRUE(send(4).empty());
    EXPECT_EQ(1u, counter(r, "drop/ingress/unknown_flow"));
}

TEST_F(relay_test, shards_and_tiers_every_listener_every_packet) {
    auto prof = base_profile(port.name, 3);
    control::session_config sc = speaker_session();
    sc.frame_ms = 5;   // 400 packets/s, 200-packet bucket: the 91-packet burst is in profile
    std::vector<listener_t> ls;
    for (uint32_t i = 0; i < 120; ++i) ls.push_back({0xc6120020 + i, static_cast<uint16_t>(6000 + i), i % 4});
    for (const auto& l : ls) sc.listeners.push_back({l.ip, l.port, l.tier});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, ls);
    const unsigned packets = 91;
    std::map<uint32_t, unsigned> got;
    for (unsigned k = 0; k < packets; ++k) {
        frame_spec fs;
        fs.seq = static_cast<uint16_t>(k);
        inject(port, rtp_frame(fs));
        if (k % 7 == 0) {   // let jobs pile up across shards in between
            settle(r);
            for (const auto& f : drain(port)) ++got[be32(f.data() + 30)];
        }
    }
    for (int i = 0; i < 10; ++i) {
        settle(r);
        for (const auto& f : drain(port)) ++got[be32(f.data() + 30)];
    }
    ASSERT_EQ(ls.size(), got.size());
    for (const auto& [ip, n] : got) EXPECT_EQ(packets, n) << std::hex << ip;
    EXPECT_EQ(packets * ls.size(), counter(r, "replicas_out"));
    r.flush();
    EXPECT_EQ(0u, rte_mempool_in_use_count(r.pool())) << "mbuf leak";
}

TEST_F(relay_test, budget_exhaustion_misses_lowest_tier_only_and_counts_add_up) {
    auto prof = base_profile(port.name, 3);
    control::session_config sc = speaker_session();
    std::vector<listener_t> ls;
    // 30 tier-0 then 30 tier-3: each of the 3 shards gets 10 + 10
    for (uint32_t i = 0; i < 30; ++i) ls.push_back({0xc6120020 + i, 6000, 0});
    for (uint32_t i = 0; i < 30; ++i) ls.push_back({0xc6120050 + i, 6000, 3});
    for (const auto& l : ls) sc.listeners.push_back({l.ip, l.port, l.tier});
    prof.sessions.push_back(sc);
    // Injected fan-out budget: 15 replicas per packet per shard.
    relay r(prof, relay_options{.launch = false, .replica_budget = 15});
    r.state().load_static(prof);
    resolve_listeners(r, port, ls);
    const unsigned packets = 11;
    std::map<uint32_t, unsigned> got;
    for (unsigned k = 0; k < packets; ++k) {
        frame_spec fs;
        fs.seq = static_cast<uint16_t>(k);
        inject(port, rtp_frame(fs));
        settle(r);
        for (const auto& f : drain(port)) ++got[be32(f.data() + 30)];
    }
    for (const auto& l : ls) {
        if (l.tier == 0) {
            EXPECT_EQ(packets, got[l.ip]) << "tier 0 listener lost packets";
        }
    }
    EXPECT_EQ(0u, counter(r, "tier_misses/0"));
    EXPECT_EQ(0u, counter(r, "tier_misses/1"));
    EXPECT_EQ(0u, counter(r, "tier_misses/2"));
    EXPECT_EQ(packets * 15u, counter(r, "tier_misses/3"));
    EXPECT_EQ(packets * ls.size(), counter(r, "replicas_out") + counter(r, "tier_misses/3"));
    r.flush();
    EXPECT_EQ(0u, rte_mempool_in_use_count(r.pool())) << "mbuf leak";
}

}  // namespace
}  // namespace stentor::test

namespace stentor::test {
namespace {

TEST_F(relay_test, speaker_over_rate_is_policed_other_session_loses_nothing) {
    auto prof = base_profile(port.name);
    control::session_config a, b;
    a.id = 1;
    a.udp_port = 40000;
    a.speakers.push_back({speaker_ip, 5004, 1234});
    a.listeners.push_back({0xc6120064, 6000, 0});
    b.id = 2;
    b.udp_port = 40002;
    b.frame_ms = 5;   // 220 pps allowed, 220 deep: the well-behaved speaker below stays inside
    b.speakers.push_back({0xc612000b, 5004, 42});
    b.listeners.push_back({0xc6120065, 6000, 0});
    prof.sessions.push_back(a);
    prof.sessions.push_back(b);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, {{0xc6120064, 6000, 0}, {0xc6120065, 6000, 0}});
    // Speaker A floods 500 packets at once: 10x its 50 packets/s for a
    // second, all in one go. The bucket holds a second at the policer's
    // rate, 10 % over the stream's (55).
    // Speaker B sends 100 packets interleaved.
    const auto t0 = std::chrono::steady_clock::now();
    std::map<uint32_t, unsigned> got;
    unsigned b_sent = 0;
    for (unsigned k = 0; k < 500; ++k) {
        frame_spec fa;
        fa.seq = static_cast<uint16_t>(k);
        inject(port, rtp_frame(fa));
        if (k % 5 == 0 && b_sent < 100) {
            frame_spec fb;
            fb.src_ip = 0xc612000b;
            fb.dst_port = 40002;
            fb.ssrc = 42;
            fb.seq = static_cast<uint16_t>(b_sent++);
            inject(port, rtp_frame(fb));
        }
        if (k % 16 == 0) {
            settle(r);
            for (const auto& f : drain(port)) ++got[be32(f.data() + 30)];
        }
    }
    settle(r);
    for (const auto& f : drain(port)) ++got[be32(f.data() + 30)];
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(100u, b_sent);
    EXPECT_EQ(100u, got[0xc6120065]) << "the other session's listener lost packets";
    const unsigned passed = got[0xc6120064];
    // 55 from the bucket plus what 55 packets/s refilled while the test ran.
    EXPECT_GE(passed, 55u);
    EXPECT_LE(passed, 55u + static_cast<unsigned>(55 * secs) + 1);
    EXPECT_EQ(500u - passed, counter(r, "drop/ingress/policed"));
    r.flush();
    EXPECT_EQ(0u, rte_mempool_in_use_count(r.pool())) << "mbuf leak";
}

}  // namespace
}  // namespace stentor::test

namespace stentor::test {
namespace {

TEST(relay_backpressure, full_tx_queue_is_retried_then_dropped_and_counted_without_leaks) {
    // A TX ring of 64 slots (63 usable) that nobody drains: the NIC is stuck.
    ring_port port = make_ring_port("bp0", 64);
    auto prof = base_profile(port.name);
    control::session_config sc = speaker_session();
    std::vector<listener_t> ls;
    for (uint32_t i = 0; i < 91; ++i) ls.push_back({0xcb007101 + i, 6000, 0});   // via the gateway
    for (const auto& l : ls) sc.listeners.push_back({l.ip, l.port, l.tier});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, ls);
    inject(port, rtp_frame(frame_spec{}));
    settle(r);   // bounded: returns although the queue stays full
    EXPECT_EQ(63u, counter(r, "replicas_out"));
    EXPECT_EQ(91u - 63u, counter(r, "drop/egress/tx_full"));
    EXPECT_EQ(63u, drain(port).size());
    r.flush();
    EXPECT_EQ(0u, rte_mempool_in_use_count(r.pool())) << "mbuf leak";
}

}  // namespace
}  // namespace stentor::test

namespace stentor::test {
namespace {

TEST(relay_static_neighbour, pinned_gateway_mac_is_used_never_asked_for_never_overwritten) {
    ring_port port = make_ring_port("static0");
    auto prof = base_profile(port.name);
    const mac_t pinned{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};
    prof.ports[0].gateway_mac = pinned;
    control::session_config sc = speaker_session();
    sc.listeners.push_back({0xcb007101, 6000, 0});   // 203.0.113.1, via the gateway
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    settle(r);
    EXPECT_TRUE(drain(port).empty()) << "no ARP request for a pinned gateway";
    // A gateway that claims another MAC does not move the pinned one.
    const mac_t other = host_mac(gateway_ip);
    inject(port, arp_frame(2, other.data(), gateway_ip, relay_mac, relay_ip, relay_mac));
    settle(r);
    inject(port, rtp_frame(frame_spec{}));
    settle(r);
    const auto out = drain(port);
    ASSERT_EQ(1u, out.size());
    EXPECT_EQ(0, std::memcmp(out[0].data(), pinned.data(), 6));
    EXPECT_EQ(0u, counter(r, "arp_requests"));
}

}  // namespace
// A packet given up part way (here by the injected per-packet budget; the
// frame deadline takes the same path) counts each live listener it did not
// reach once, whether it stopped before or after the middle of the list
// (the two ways fanout.cc counts) and with leavers' empty slots on both
// sides of where it stopped. 40 tier-0 slots on one shard, every 4th from
// slot 3 left: 30 live.
TEST(relay_abandon, each_missed_live_listener_is_counted_once) {
    struct row {
        unsigned budget;
        const char* what;
    };
    const row rows[] = {
        {5, "stops in the first half: counted as nb_live minus those passed"},
        {25, "stops in the second half: counted over what is left"},
        {29, "stops one live listener short of the end"},
        {30, "reaches every live listener: nothing missed"},
    };
    for (const row& t : rows) {
        ring_port port = fresh_ring_port("abandon");
        auto prof = base_profile(port.name, 1);
        control::session_config sc = speaker_session();
        std::vector<listener_t> ls;
        for (uint32_t i = 0; i < 40; ++i) ls.push_back({0xc6120020 + i, 6000, 0});
        for (const auto& l : ls) sc.listeners.push_back({l.ip, l.port, l.tier});
        prof.sessions.push_back(sc);
        relay r(prof, relay_options{.launch = false, .replica_budget = t.budget});
        r.state().load_static(prof);
        std::vector<listener_t> live;
        for (uint32_t i = 0; i < 40; ++i) {
            if (i % 4 == 3)
                r.state().listener_del(1, ls[i].ip, ls[i].port);
            else
                live.push_back(ls[i]);
        }
        r.state().publish();
        resolve_listeners(r, port, live);
        const unsigned packets = 7;
        for (unsigned k = 0; k < packets; ++k) {
            frame_spec fs;
            fs.seq = static_cast<uint16_t>(k);
            inject(port, rtp_frame(fs));
            settle(r);
            drain(port);
        }
        const uint64_t missed = packets * (30u - std::min(30u, t.budget));
        EXPECT_EQ(missed, counter(r, "tier_misses/0")) << t.what;
        EXPECT_EQ(missed, counter(r, "drop/egress/deadline")) << t.what;
        EXPECT_EQ(packets * 30u, counter(r, "replicas_out") + counter(r, "tier_misses/0")) << t.what;
        r.flush();
        EXPECT_EQ(0u, rte_mempool_in_use_count(r.pool())) << "mbuf leak: " << t.what;
    }
}

}  // namespace stentor::test
