// Trunks in the data plane (issue 13 items 1 and 2, docs/fleet.md): real
// EAL, ring ports, the relay's own workers polled on the test thread.
//
//  - An edge: one session fed by two origins' trunk flows (same SSRC, same
//    sequence numbers); the first copy of each (SSRC, sequence number) is
//    forwarded, the second dropped as drop/ingress/trunk_duplicate
//    (dataplane/dedup.h). Rows: interleaved copies, one origin alone (as a
//    single-origin session works today), gaps one origin fills for the
//    other, reordering, the 65535 -> 0 wrap, a copy that fails a per-flow
//    check, and an SSRC change.
//  - An origin: a trunk listener is a tier-0 listener that shedding never
//    takes, and gets the RTP unchanged.
//  - Over IPv6 (issue 15): the same with the origins' flows and a middle
//    tier's trunk listener on IPv6.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "dedup.h"
#include "frames6.h"
#include "harness.h"
#include "ip6.h"
#include "state.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;

constexpr uint32_t origin_a = 0xc6120002;   // 198.18.0.2
constexpr uint32_t origin_b = 0xc6120003;   // 198.18.0.3
constexpr uint16_t trunk_port = 40007;

// Session 7 on trunk_port as an edge's trunk session: 10 ms frames, no SRTP.
void create_trunk_session(control::relay_state& st) {
    control::session_params sp;
    sp.id = 7;
    sp.udp_port = trunk_port;
    sp.frame_ms = 10;
    sp.trunk = true;
    sp.srtp_ingress = control::srtp_ingress_mode::off;
    sp.srtp_egress = control::srtp_egress_mode::off;
    st.session_create(sp);
}

// One packet as it arrives: from which origin, its sequence number and SSRC;
// `corrupt`: its UDP payload damaged after the checksum (the flow's checks
// drop it).
struct arrival {
    uint32_t from;
    uint16_t seq;
    uint32_t ssrc = 1234;
    bool corrupt = false;
    uint32_t ts = 0;   // set by with_ts(): 20 ms per sequence number from the row's first
};

// Timestamps that follow the sequence numbers (across the wrap too).
std::vector<arrival> with_ts(std::vector<arrival> v) {
    if (v.empty()) return v;
    const uint16_t base = v.front().seq;
    for (auto& a : v) a.ts = 960u * static_cast<uint16_t>(a.seq - base);
    return v;
}

struct dedup_row {
    const char* what;
    std::vector<arrival> in;
    std::vector<uint16_t> out;      // sequence numbers the listener gets, in order
    uint64_t duplicates;            // drop/ingress/trunk_duplicate
    bool registered_ssrc = true;    // the flows expect SSRC 1234
};

std::vector<arrival> both(uint16_t first, unsigned n, bool b_first = false) {
    std::vector<arrival> v;
    for (unsigned k = 0; k < n; ++k) {
        const uint16_t s = static_cast<uint16_t>(first + k);
        v.push_back({b_first ? origin_b : origin_a, s});
        v.push_back({b_first ? origin_a : origin_b, s});
    }
    return v;
}
std::vector<uint16_t> run(uint16_t first, unsigned n) {
    std::vector<uint16_t> v;
    for (unsigned k = 0; k < n; ++k) v.push_back(static_cast<uint16_t>(first + k));
    return v;
}

// An edge relay with session 7 fed by trunk flows from A and B (10 ms
// frames: a 110-packet policer bucket, so 91 packets in a row pass).
struct edge_relay {
    ring_port port;
    control::profile prof;
    std::unique_ptr<relay> r;
    explicit edge_relay(bool registered_ssrc) : port(fresh_ring_port("trk")), prof(base_profile(port.name)) {
        prof.ingress.require_ssrc = registered_ssrc;
        r = std::make_unique<relay>(prof, relay_options{.launch = false});
        create_trunk_session(r->state());
        const std::optional<uint32_t> ssrc = registered_ssrc ? std::optional<uint32_t>(1234) : std::nullopt;
        r->state().speaker_add(7, origin_a, trunk_port, ssrc, true);
        r->state().speaker_add(7, origin_b, trunk_port, ssrc, true);
        r->state().listener_add(7, listener_ip, listener_port, 0);
        r->state().publish();
        EXPECT_TRUE(resolve(*r, port, {listener_ip}).empty());
    }
    void send(const arrival& a) const {
        frame_spec f;
        f.src_ip = a.from;
        f.src_port = trunk_port;
        f.dst_port = trunk_port;
        f.ssrc = a.ssrc;
        f.seq = a.seq;
        f.ts = a.ts;
        f.payload = 80;
        bytes b = rtp_frame(f);
        if (a.corrupt) b.back() ^= 0x5a;
        inject(port, b);
    }
    // Sequence numbers of what the listener got.
    std::vector<uint16_t> heard() const {
        std::vector<uint16_t> out;
        for (const auto& f : drain(port)) {
            if (f.size() < 54 || be32(f.data() + 30) != listener_ip) continue;
            out.push_back(be16(f.data() + 44));
        }
        return out;
    }
};

TEST(trunk_dedup, the_first_copy_of_each_packet_goes_on_the_second_is_counted) {
    std::vector<dedup_row> rows = {
        {"copies interleaved, A first", both(1000, 91), run(1000, 91), 91},
        {"copies interleaved, B first", both(1000, 91, true), run(1000, 91), 91},
        {"one origin alone: as a single-origin session", {}, run(500, 91), 0},
        {"A loses 5, 9 and 10: B's copies fill the gaps", {}, run(2000, 91), 91 - 3},
        {"B's copies run 3 packets late (reordered between the origins)", {}, run(3000, 91), 91},
        {"the sequence wraps 65535 -> 0", both(65500, 91), run(65500, 91), 91},
        {"A's copy damaged (UDP checksum): B's copy is the first that passes", {}, run(4000, 20), 20 - 1},
    };
    // Rows built from loops.
    for (unsigned k = 0; k < 91; ++k) rows[2].in.push_back({origin_a, static_cast<uint16_t>(500 + k)});
    for (unsigned k = 0; k < 91; ++k) {
        const uint16_t s = static_cast<uint16_t>(2000 + k);
        if (k != 5 && k != 9 && k != 10) rows[3].in.push_back({origin_a, s});
        rows[3].in.push_back({origin_b, s});
    }
    for (unsigned k = 0; k < 94; ++k) {
        if (k < 91) rows[4].in.push_back({origin_a, static_cast<uint16_t>(3000 + k)});
        if (k >= 3) rows[4].in.push_back({origin_b, static_cast<uint16_t>(3000 + k - 3)});
    }
    for (unsigned k = 0; k < 20; ++k) {
        const uint16_t s = static_cast<uint16_t>(4000 + k);
        rows[6].in.push_back({origin_a, s, 1234, k == 7});
        rows[6].in.push_back({origin_b, s});
    }
    for (auto& row : rows) {
        SCOPED_TRACE(row.what);
        row.in = with_ts(std::move(row.in));
        edge_relay e(row.registered_ssrc);
        const auto before = all_counters(*e.r);
        std::vector<uint16_t> got;
        // In bursts of 16 arrivals: the workers see several copies per poll.
        for (size_t i = 0; i < row.in.size(); ++i) {
            e.send(row.in[i]);
            if (i % 16 == 15) {
                settle(*e.r);
                for (auto s : e.heard()) got.push_back(s);
            }
        }
        settle(*e.r);
        for (auto s : e.heard()) got.push_back(s);
        const auto after = all_counters(*e.r);
        auto moved = [&](const std::string& n) { return after.at(n) - before.at(n); };
        EXPECT_EQ(got, row.out);
        EXPECT_EQ(moved("drop/ingress/trunk_duplicate"), row.duplicates);
        EXPECT_EQ(moved("rtp_in"), row.out.size());
        EXPECT_EQ(moved("drop/ingress/rtp_duplicate"), 0u) << "each flow saw its own stream once";
        EXPECT_EQ(moved("drop/ingress/policed"), 0u);
    }
}

TEST(trunk_dedup, an_ssrc_change_starts_a_new_stream_whose_sequence_numbers_are_not_duplicates) {
    // Flows registered without an SSRC (the origin listed none, or several):
    // the speaker restarts with a new SSRC and sequence numbers the old
    // stream used. Each flow's RTP tracking takes the new stream after its
    // quiet time (rtp_track.h: two packets, the old stream quiet 1 s); the
    // dedup table is keyed by (SSRC, seq), so none of them is a duplicate.
    edge_relay e(false);
    const auto before = all_counters(*e.r);
    for (const auto& a : with_ts(both(100, 40))) e.send(a);
    settle(*e.r);
    EXPECT_EQ(e.heard(), run(100, 40));
    // Pacing only: the old stream must have been quiet for rtp_resync_quiet_ms.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    for (unsigned k = 0; k < 40; ++k) {
        e.send({origin_a, static_cast<uint16_t>(110 + k), 5678, false, 7777777u + 960 * k});
        e.send({origin_b, static_cast<uint16_t>(110 + k), 5678, false, 7777777u + 960 * k});
    }
    settle(*e.r);
    const auto after = all_counters(*e.r);
    auto moved = [&](const std::string& n) { return after.at(n) - before.at(n); };
    // Seq 110 is each flow's first packet of the new SSRC (a candidate,
    // dropped as rtp_ssrc_change); 111 re-locks each flow (resync).
    EXPECT_EQ(e.heard(), run(111, 39)) << "111..149 were also seen under SSRC 1234: not duplicates under 5678";
    EXPECT_EQ(moved("drop/ingress/rtp_ssrc_change"), 2u);
    EXPECT_EQ(moved("rtp_resyncs"), 2u);
    EXPECT_EQ(moved("drop/ingress/trunk_duplicate"), 40u + 39u);
}

TEST(trunk_dedup, the_table_itself_over_wrap_reorder_and_two_ssrcs) {
    // The pure function (dataplane/dedup.h) the ingress calls, on its own.
    auto table = std::make_unique<dp::dp_dedup>();
    for (auto& s : table->slot) s.store(0);
    struct step {
        uint32_t ssrc;
        uint16_t seq;
        bool first;
        const char* what;
    };
    const step steps[] = {
        {1234, 65535, true, "a first copy"},
        {1234, 65535, false, "its second copy"},
        {1234, 0, true, "after the wrap"},
        {1234, 0, false, "after the wrap, again"},
        {5678, 0, true, "the same sequence number under another SSRC"},
        {1234, 3, true, "ahead"},
        {1234, 1, true, "late (reordered)"},
        {1234, 1, false, "late, again"},
        {1234, 3, false, "ahead, again"},
        {1234, static_cast<uint16_t>(3 + dp::dedup_window), true, "one window later the slot is someone else's"},
        {1234, 3, true, "so a copy that late counts as new"},
    };
    for (const auto& s : steps) {
        SCOPED_TRACE(s.what);
        EXPECT_EQ(dp::dedup_first(*table, __builtin_bswap32(s.ssrc), s.seq), s.first);
    }
}

// Over IPv6 (issue 15, docs/fleet.md "Trunks over IPv6"): an edge whose two
// origins send over IPv6 (their trunk flows are dp_flow6 entries, flagged
// for first copy like IPv4 ones) and that is also a middle tier (its own
// trunk listener of the next tier is IPv6, behind gateway6). The first copy
// of each packet reaches both the IPv4 listener and the IPv6 trunk, its RTP
// bytes as they came (SRTP off on a trunk session: an origin's ciphertext
// would pass the same); every second copy is counted; shedding never takes
// the IPv6 trunk.
TEST(trunk_dedup6, two_ipv6_origins_first_copy_to_both_families_the_trunk_never_shed) {
    namespace f6 = frames6;
    const ring_port port = fresh_ring_port("trk6");
    auto prof = base_profile(port.name);
    prof.ports[0].ipv6 = f6::relay6;
    prof.ports[0].prefix6_len = 64;
    prof.ports[0].gateway6 = f6::host6(0xfe);
    prof.ports[0].gateway6_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0x06, 0xfe};
    relay r(prof, relay_options{.launch = false});
    create_trunk_session(r.state());
    const f6::addr6 o_a = f6::host6(0x02), o_b = f6::host6(0x03);
    for (const auto& o : {o_a, o_b}) {
        control::speaker_spec s{0, trunk_port, 1234u, o};
        s.trunk = true;
        r.state().speaker_add(7, s);
    }
    const auto next_tier = *control::parse_ipv6("2001:db8:77::40");   // off the prefix: via gateway6
    control::listener_spec trunk6{0, trunk_port, 0, false, next_tier};
    trunk6.trunk = true;
    r.state().listener_add(7, trunk6);
    r.state().listener_add(7, listener_ip, listener_port, 0);
    r.state().publish();
    ASSERT_TRUE(resolve(r, port, {listener_ip}).empty());
    const auto v = r.state().session(7);
    ASSERT_TRUE(v.has_value());
    ASSERT_EQ(v->speakers.size(), 2u);
    for (const auto& s : v->speakers) EXPECT_TRUE(s.trunk && s.ip6.has_value());

    const auto before = all_counters(r);
    std::vector<uint16_t> heard4, heard6;
    std::vector<bytes> sent_rtp;
    auto collect = [&] {
        for (const auto& f : drain(port)) {
            if (f.size() >= 42 && be16(f.data() + 12) == 0x0800 && be32(f.data() + 30) == listener_ip) {
                heard4.push_back(be16(f.data() + 44));
                const uint16_t seq = be16(f.data() + 44);
                const bytes& want = sent_rtp[static_cast<uint16_t>(seq - 5000)];
                EXPECT_TRUE(f.size() == 42 + want.size() && std::equal(want.begin(), want.end(), f.begin() + 42))
                    << "IPv4 replica of seq " << seq << ": the RTP bytes as they came";
            } else if (f.size() >= 62 && be16(f.data() + 12) == 0x86dd &&
                       std::memcmp(f.data() + 38, next_tier.data(), 16) == 0) {
                EXPECT_EQ(be16(f.data() + 54), trunk_port) << "from the session's port";
                EXPECT_EQ(be16(f.data() + 56), trunk_port) << "to the next tier's session port";
                const uint16_t seq = be16(f.data() + 64);
                heard6.push_back(seq);
                const bytes& want = sent_rtp[static_cast<uint16_t>(seq - 5000)];
                EXPECT_TRUE(f.size() == 62 + want.size() && std::equal(want.begin(), want.end(), f.begin() + 62))
                    << "IPv6 trunk replica of seq " << seq << ": the RTP bytes as they came";
            }
        }
    };
    // 91 packets, both copies each, A's first for even sequence numbers and
    // B's first for odd ones; bursts of 16 arrivals.
    unsigned n = 0;
    for (uint16_t k = 0; k < 91; ++k) {
        const uint16_t seq = static_cast<uint16_t>(5000 + k);
        bytes rtp = frames::rtp(0x80, 111, 1234, seq, 0);
        for (unsigned i = 0; i < 80u + k % 7; ++i) rtp.push_back(static_cast<uint8_t>(i * 13 + k * 7 + 5));   // opaque bytes
        sent_rtp.push_back(rtp);
        const bytes udp = frames::udp(trunk_port, trunk_port, rtp);
        const f6::addr6 first = k % 2 == 0 ? o_a : o_b, second = k % 2 == 0 ? o_b : o_a;
        for (const auto& from : {first, second}) {
            inject(port, f6::ipv6({.src = from, .dst = f6::relay6}, udp));
            if (++n % 16 == 0) {
                settle(r);
                collect();
            }
        }
    }
    settle(r);
    collect();
    const auto after = all_counters(r);
    auto moved = [&](const std::string& c) { return after.at(c) - before.at(c); };
    EXPECT_EQ(heard4, run(5000, 91));
    EXPECT_EQ(heard6, run(5000, 91));
    EXPECT_EQ(moved("drop/ingress/trunk_duplicate"), 91u);
    EXPECT_EQ(moved("rtp_in"), 91u);
    EXPECT_EQ(moved("drop/ingress/rtp_duplicate"), 0u) << "each flow saw its own stream once";

    // The IPv6 trunk is never shed; the IPv4 listener is.
    const auto shed = r.state().shed_newest(0, 10);
    ASSERT_EQ(shed.size(), 1u);
    EXPECT_EQ(shed[0].ip, listener_ip);
    EXPECT_EQ(r.state().nb_listeners(), 1u);
}

TEST(trunk_listener, is_tier_0_never_shed_and_gets_the_rtp_unchanged) {
    const ring_port port = make_ring_port("trkorig0");
    auto prof = base_profile(port.name);
    prof.sessions.push_back(speaker_session());
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    constexpr uint32_t edge_ip = 0xc6120033;   // 198.18.0.51
    const uint32_t l2 = listener_ip + 1;
    r.state().listener_add(1, edge_ip, 40000, 0, false, true);   // the trunk, first
    r.state().listener_add(1, listener_ip, listener_port, 0);
    r.state().listener_add(1, l2, listener_port, 0);
    r.state().publish();
    // The overload controller sheds the lowest populated tier, newest first:
    // here tier 0; the trunk is skipped however many are asked for.
    const auto shed = r.state().shed_newest(0, 10);
    ASSERT_EQ(shed.size(), 2u);
    for (const auto& s : shed) EXPECT_NE(s.ip, edge_ip);
    r.state().publish();
    ASSERT_EQ(r.state().nb_listeners(), 1u);
    const auto lv = r.state().listeners(1, 0, 10);
    ASSERT_EQ(lv.size(), 1u);
    EXPECT_EQ(lv[0].ip, edge_ip);
    EXPECT_EQ(lv[0].tier, 0u);
    EXPECT_TRUE(resolve(r, port, {edge_ip}).empty());
    frame_spec f;
    f.seq = 42;
    f.payload = 91;
    const bytes in = rtp_frame(f);
    inject(port, in);
    settle(r);
    const auto out = drain(port);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(be32(out[0].data() + 30), edge_ip);
    EXPECT_EQ(be16(out[0].data() + 34), 40000) << "from the session's port";
    EXPECT_EQ(be16(out[0].data() + 36), 40000) << "to the edge's session port";
    ASSERT_EQ(out[0].size(), in.size());
    EXPECT_TRUE(std::equal(in.begin() + 42, in.end(), out[0].begin() + 42)) << "RTP header and payload unchanged";
}

}  // namespace
}  // namespace stentor::test
