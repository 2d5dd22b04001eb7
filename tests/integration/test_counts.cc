// Per-speaker and per-session counters (docs/metrics.md): what the data
// plane counts for each speaker (its policer entry) and each session
// (dp_session_counts), read through relay_state's views. Real EAL, ring
// ports, workers polled on the test thread.
//
// The counts are checked against the relay's global counters, which these
// tests do not touch: whatever the policer decides (it refills by the clock),
// the per-speaker and per-session counts must say the same as rtp_in,
// drop/ingress/policed and the SSRC/plausibility drops.
#include <gtest/gtest.h>

#include "harness.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;

constexpr uint32_t speaker2_ip = 0xc612000b;   // 198.18.0.11

struct counts_test : ::testing::Test {
    ring_port port = fresh_ring_port("cnt");
    control::profile prof = base_profile(port.name);

    void SetUp() override {
        auto sc = speaker_session();
        sc.speakers.push_back({speaker2_ip, 5006, 777});
        sc.listeners.push_back({listener_ip, listener_port, 0});
        prof.sessions.push_back(sc);
    }

    static control::session_view view(relay& r, uint32_t id) {
        const auto v = r.state().session(id);
        EXPECT_TRUE(v.has_value()) << "session " << id;
        return v.value_or(control::session_view{});
    }
    static const control::speaker_view* speaker(const control::session_view& v, uint32_t ip) {
        for (const auto& s : v.speakers)
            if (s.ip == ip) return &s;
        return nullptr;
    }
};

frame_spec from(uint32_t ip, uint16_t src_port, uint32_t ssrc, uint16_t seq) {
    frame_spec f;
    f.src_ip = ip;
    f.src_port = src_port;
    f.ssrc = ssrc;
    f.seq = seq;
    f.ts = 960u * seq;
    return f;
}

// One table: what each speaker sends, and what its counters and the
// session's must show. 91 packets of speaker 1 in one go overrun its bucket
// (55 deep at 50 packets/s): the split between accepted and policed is the
// policer's, and the counts must agree with the global counters exactly.
TEST_F(counts_test, speaker_and_session_counts_agree_with_the_global_counters) {
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    EXPECT_TRUE(resolve(r, port, {listener_ip}).empty());
    const auto before = all_counters(r);

    struct row {
        const char* what;
        uint32_t ip;
        uint16_t src_port;
        uint32_t ssrc;
        unsigned count;
    };
    const row rows[] = {
        {"speaker 1, its SSRC, more than one bucket", speaker_ip, 5004, 1234, 91},
        {"speaker 1, another SSRC: auth drops (ssrc_mismatch)", speaker_ip, 5004, 999, 7},
        {"speaker 2, its SSRC", speaker2_ip, 5006, 777, 13},
        {"an unknown flow: counted by nobody's speaker", 0xc6120063, 5004, 1234, 5},
    };
    uint16_t seq = 100;
    for (const auto& w : rows) {
        for (unsigned i = 0; i < w.count; ++i) inject(port, rtp_frame(from(w.ip, w.src_port, w.ssrc, seq++)));
        settle(r);
        drain(port);
    }
    // Speaker 1 again, a sequence number far behind: an RTP plausibility drop.
    inject(port, rtp_frame(from(speaker_ip, 5004, 1234, 3)));
    settle(r);
    drain(port);

    const auto after = all_counters(r);
    auto moved = [&](const std::string& n) { return after.at(n) - before.at(n); };
    const auto v = view(r, 1);
    const auto* s1 = speaker(v, speaker_ip);
    const auto* s2 = speaker(v, speaker2_ip);
    ASSERT_NE(nullptr, s1);
    ASSERT_NE(nullptr, s2);
    EXPECT_EQ(13u, s2->counts.packets);
    EXPECT_EQ(13u * (12 + 80), s2->counts.bytes) << "RTP header and payload";
    EXPECT_EQ(0u, s2->counts.policed + s2->counts.auth_drops);
    EXPECT_EQ(91u, s1->counts.packets + s1->counts.policed) << "every packet of its own stream accepted or policed";
    EXPECT_GT(s1->counts.policed, 0u) << "91 packets at once overrun a 55-packet bucket";
    EXPECT_EQ(moved("rtp_in"), s1->counts.packets + s2->counts.packets);
    EXPECT_EQ(moved("drop/ingress/policed"), s1->counts.policed);
    EXPECT_EQ(7u + 1u, s1->counts.auth_drops) << "7 SSRC mismatches and one sequence far behind";
    EXPECT_EQ(moved("drop/ingress/ssrc_mismatch") + moved("drop/ingress/rtp_seq_jump") +
                  moved("drop/ingress/rtp_duplicate") + moved("drop/ingress/rtp_ts_jump"),
              s1->counts.auth_drops);
    EXPECT_EQ(5u, moved("drop/ingress/unknown_flow"));
    // The session: both speakers' counts.
    EXPECT_EQ(s1->counts.packets + s2->counts.packets, v.tally.speakers.packets);
    EXPECT_EQ(s1->counts.bytes + s2->counts.bytes, v.tally.speakers.bytes);
    EXPECT_EQ(s1->counts.policed, v.tally.speakers.policed);
    EXPECT_EQ(s1->counts.auth_drops, v.tally.speakers.auth_drops);
    r.flush();
}

// A session's counts are its own and never go back: a speaker that leaves
// takes its per-speaker series with it, not the session's packets; a new
// session in the slot of an ended one starts from zero; a speaker added in
// a reused policer slot starts from zero.
TEST_F(counts_test, session_counts_survive_speakers_and_start_afresh_in_a_reused_slot) {
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    EXPECT_TRUE(resolve(r, port, {listener_ip}).empty());
    for (uint16_t i = 0; i < 9; ++i) inject(port, rtp_frame(from(speaker2_ip, 5006, 777, static_cast<uint16_t>(10 + i))));
    settle(r);
    drain(port);
    const auto v1 = view(r, 1);
    ASSERT_EQ(9u, v1.tally.speakers.packets);

    r.state().speaker_del(1, speaker2_ip, 5006);
    r.state().publish();
    const auto v2 = view(r, 1);
    EXPECT_EQ(nullptr, speaker(v2, speaker2_ip));
    EXPECT_EQ(9u, v2.tally.speakers.packets) << "the session keeps what its departed speaker sent";

    // The same speaker back: a fresh policer entry, counted from zero; the
    // session goes on from 9.
    r.state().speaker_add(1, speaker2_ip, 5006, 777);
    r.state().publish();
    for (uint16_t i = 0; i < 4; ++i) inject(port, rtp_frame(from(speaker2_ip, 5006, 777, static_cast<uint16_t>(500 + i))));
    settle(r);
    drain(port);
    const auto v3 = view(r, 1);
    ASSERT_NE(nullptr, speaker(v3, speaker2_ip));
    EXPECT_EQ(4u, speaker(v3, speaker2_ip)->counts.packets);
    EXPECT_EQ(13u, v3.tally.speakers.packets);

    // End the session; a new one takes its slot (index) and starts at zero.
    r.state().session_end(1);
    r.state().publish();
    control::session_params sp;
    sp.id = 2;
    sp.udp_port = 40000;
    r.state().session_create(sp);
    r.state().speaker_add(2, speaker2_ip, 5006, 777);
    r.state().publish();
    EXPECT_EQ(0u, view(r, 2).tally.speakers.packets) << "nothing of session 1 in session 2's slot";
    for (uint16_t i = 0; i < 3; ++i) inject(port, rtp_frame(from(speaker2_ip, 5006, 777, static_cast<uint16_t>(900 + i))));
    settle(r);
    drain(port);
    EXPECT_EQ(3u, view(r, 2).tally.speakers.packets);
    r.flush();
}

// Listener tallies: joins (single and bulk), leaves, consent expiries and
// sheds, per session.
TEST_F(counts_test, listener_tallies_count_each_way_in_and_out) {
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    EXPECT_EQ(1u, view(r, 1).tally.joins) << "the static listener";
    for (uint32_t i = 0; i < 5; ++i) r.state().listener_add(1, 0xc6120080 + i, 7000, 3);
    r.state().listener_add_bulk(1, {{0xc6120090, 7000, 3}, {0xc6120091, 7000, 3}, {0xc6120092, 7000, 2}});
    r.state().listener_del(1, 0xc6120080, 7000);
    r.state().listener_del(1, 0xc6120081, 7000, control::listener_removal::consent_expired);
    const auto shed = r.state().shed_newest(3, 2);
    ASSERT_EQ(2u, shed.size());
    const auto v = view(r, 1);
    EXPECT_EQ(1u + 5 + 3, v.tally.joins);
    EXPECT_EQ(1u, v.tally.leaves);
    EXPECT_EQ(1u, v.tally.consent_expired);
    EXPECT_EQ(2u, v.tally.shed);
    EXPECT_EQ(9u - 4, v.nb_listeners);
}

// busy_polls and idle_polls count loop iterations (vppctl's calls): every
// iteration is busy, idle or stalled, so the three add up to the polls.
TEST_F(counts_test, every_loop_iteration_is_counted_busy_idle_or_stalled) {
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    const auto before = all_counters(r);
    constexpr unsigned polls = 37;
    for (uint16_t i = 0; i < 5; ++i) inject(port, rtp_frame(from(speaker2_ip, 5006, 777, static_cast<uint16_t>(10 + i))));
    for (unsigned i = 0; i < polls; ++i) r.poll();
    r.flush();
    drain(port);
    const auto after = all_counters(r);
    auto moved = [&](const std::string& n) { return after.at(n) - before.at(n); };
    EXPECT_EQ(polls, moved("busy_polls") + moved("idle_polls") + moved("stalls"));
    EXPECT_GE(moved("busy_polls"), 1u) << "the iteration that took the packets";
}

}  // namespace
}  // namespace stentor::test
