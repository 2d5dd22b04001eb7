// Admission arithmetic and policy, as tables: frame sizes, capacity per port
// and per fan-out core, headroom, tier reservations, join-rate buckets.
#include <gtest/gtest.h>

#include <optional>

#include "admission.h"
#include "control_plane.h"
#include "fixture.h"
#include "relay.h"
#include "state.h"
#include "stentor/srtp.h"

namespace stentor::test {
namespace {

using control::admission;
using control::admission_config;
using control::join_counts;

using control::family_ipv4;
using control::family_ipv6;

struct cost_case {
    unsigned frame_ms, kbps;
    unsigned payload, wire, wire6;
    double pps;
};

TEST(admission, frame_size_and_rate_arithmetic) {
    // wire = max(60, 14 + IP header + 8 + 12 + payload) + 4 FCS + 8 preamble/SFD + 12 IFG;
    // the IP header is 20 bytes for an IPv4 listener, 40 for an IPv6 one.
    const cost_case cases[] = {
        {20, 32, 80, 158, 178, 50},      // the design's 134-byte Opus frame (154 over IPv6)
        {20, 256, 640, 718, 738, 50},    // default session ceiling
        {10, 6, 8, 86, 106, 100},        // 62-byte frame (82 over IPv6)
        {5, 6, 4, 84, 102, 200},         // 58 bytes padded to the 60-byte minimum; 78 over IPv6, no padding
        {60, 510, 3825, 3903, 3923, 1000.0 / 60},
        {120, 6, 90, 168, 188, 1000.0 / 120},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::to_string(c.frame_ms) + " ms " + std::to_string(c.kbps) + " kbit/s");
        const auto k = control::cost_of(c.frame_ms, c.kbps);
        EXPECT_EQ(c.payload, k.payload);
        EXPECT_EQ(c.wire, k.wire_bytes[family_ipv4]);
        EXPECT_EQ(c.wire6, k.wire_bytes[family_ipv6]);
        EXPECT_DOUBLE_EQ(c.pps, k.pps);
        EXPECT_DOUBLE_EQ(c.pps * c.wire * 8, k.bps[family_ipv4]);
        EXPECT_DOUBLE_EQ(c.pps * c.wire6 * 8, k.bps[family_ipv6]);
    }
}

admission_config cfg(double mbps, double pps_per_core, unsigned cores, unsigned headroom) {
    admission_config c;
    c.port_names = {"p0"};
    c.line_rate_mbps = {mbps};
    c.fanout_pps_per_core = pps_per_core;
    c.nb_fanout_cores = cores;
    c.headroom_pct = headroom;
    // Deep buckets: the bisection below takes tokens on every probe.
    c.join_rate_per_s = 4000000000u;
    c.session_join_rate_per_s = 4000000000u;
    return c;
}

join_counts at(unsigned tier, uint64_t n, unsigned port = 0, control::ip_family f = family_ipv4) {
    join_counts j{};
    j[f][port][tier] = n;
    return j;
}

// The largest n admitted in one request, by bisection (each probe either
// commits and is released again, or changes nothing).
uint64_t max_admitted(admission& a, unsigned tier, unsigned frame_ms, unsigned kbps,
                      control::ip_family f = family_ipv4) {
    uint64_t lo = 0, hi = 3000000;
    while (lo < hi) {
        const uint64_t mid = (lo + hi + 1) / 2;
        try {
            a.admit(1, control::cost_of(frame_ms, kbps), at(tier, mid, 0, f));
            a.release(control::cost_of(frame_ms, kbps), f, 0, mid);
            lo = mid;
        } catch (const control::action_error&) {
            hi = mid - 1;
        }
    }
    return lo;
}

struct cap_case {
    const char* what;
    double mbps, pps_per_core;
    unsigned cores, headroom, frame_ms, kbps;
    uint64_t listeners;
    control::ip_family family = family_ipv4;
};

TEST(admission, capacity_is_the_lower_of_line_rate_and_fanout_minus_headroom) {
    const cap_case cases[] = {
        // 10e9 * 0.9 / (50 * 158 * 8) = 142405.06
        {"10 GbE, 32 kbit/s, line rate binds", 10000, 50e6, 1, 10, 20, 32, 142405},
        // 100e9 / 63200 = 1582278.48; fan-out 2 x 50 Mpps / 50 = 2 M
        {"100 GbE, no headroom, line rate binds", 100000, 50e6, 2, 0, 20, 32, 1582278},
        // fan-out 1 core x 1 Mpps x 0.9 / 50 pps = 18000
        {"slow core binds", 100000, 1e6, 1, 10, 20, 32, 18000},
        // two cores double it
        {"two cores", 100000, 1e6, 2, 10, 20, 32, 36000},
        // 10e9 * 0.5 / (50 * 718 * 8) = 17409.47
        {"50 % headroom, 256 kbit/s", 10000, 50e6, 1, 50, 20, 256, 17409},
        // 10 ms frames: 100 pps x 86 B x 8 = 68800 bit/s -> 130813.95
        {"10 ms, 6 kbit/s", 10000, 50e6, 1, 10, 10, 6, 130813},
        // IPv6 listeners: 20 bytes more a replica. 10e9 * 0.9 / (50 * 178 * 8) = 126404.49
        {"10 GbE, 32 kbit/s, IPv6 listeners", 10000, 50e6, 1, 10, 20, 32, 126404, family_ipv6},
        // 10e9 * 0.5 / (50 * 738 * 8) = 16937.67
        {"50 % headroom, 256 kbit/s, IPv6 listeners", 10000, 50e6, 1, 50, 20, 256, 16937, family_ipv6},
        // the fan-out counts replicas, whatever their size: 18000 as for IPv4
        {"slow core binds, IPv6 listeners", 100000, 1e6, 1, 10, 20, 32, 18000, family_ipv6},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        admission a(cfg(c.mbps, c.pps_per_core, c.cores, c.headroom));
        EXPECT_EQ(c.listeners, max_admitted(a, 0, c.frame_ms, c.kbps, c.family));
    }
}

// One request with listeners of both families (a bulk join): each is
// planned at its own frame size, and a leave gives back what its family took.
TEST(admission, each_family_is_planned_at_its_own_frame_size) {
    admission a(cfg(1, 50e6, 1, 10));   // 900 kbit/s; 256 kbit/s listeners: 287.2 (IPv4), 295.2 (IPv6) kbit/s
    const auto c = control::cost_of(20, 256);
    join_counts j{};
    j[family_ipv4][0][0] = 1;
    j[family_ipv6][0][0] = 2;
    a.admit(1, c, j);
    EXPECT_DOUBLE_EQ(287200.0 + 2 * 295200.0, a.report().ports[0].used_bps);
    EXPECT_DOUBLE_EQ(150.0, a.used_pps());
    try {
        a.admit(1, c, at(0, 1));
        FAIL() << "a fourth listener on a 0.9 Mbit/s plan";
    } catch (const control::action_error& e) {
        EXPECT_STREQ("port p0 is full: the request needs 0.287 Mbit/s, 0.0224 of 0.9 Mbit/s free (0.878 planned)", e.what());
    }
    a.release(c, family_ipv6, 0, 1);
    EXPECT_DOUBLE_EQ(287200.0 + 295200.0, a.report().ports[0].used_bps);
    a.release(c, family_ipv4, 0, 1);
    EXPECT_DOUBLE_EQ(295200.0, a.report().ports[0].used_bps);
}

TEST(admission, tiers_reserve_capacity_for_the_tiers_above) {
    auto c = cfg(100000, 1e6, 1, 0);   // 1 Mpps = 20000 listeners of 50 pps
    c.tier_reserve_pct = {20, 10, 10, 0};
    admission a(c);
    EXPECT_EQ(20000u, max_admitted(a, 0, 20, 32));   // tier 0: everything
    EXPECT_EQ(16000u, max_admitted(a, 1, 20, 32));   // not the 20 % kept for tier 0
    EXPECT_EQ(14000u, max_admitted(a, 2, 20, 32));   // nor the 10 % kept for tiers 0..1
    EXPECT_EQ(12000u, max_admitted(a, 3, 20, 32));
    // Tier 3 fills its share; tier 0 can still join into the reserve.
    a.admit(1, control::cost_of(20, 32), at(3, 12000));
    EXPECT_THROW(a.admit(1, control::cost_of(20, 32), at(3, 1)), control::action_error);
    EXPECT_THROW(a.admit(1, control::cost_of(20, 32), at(2, 2001)), control::action_error);
    a.admit(1, control::cost_of(20, 32), at(2, 2000));
    a.admit(1, control::cost_of(20, 32), at(0, 6000));
    try {
        a.admit(1, control::cost_of(20, 32), at(0, 1));
        FAIL() << "over capacity";
    } catch (const control::action_error& e) {
        EXPECT_EQ("capacity", name_of(e.code));
    }
}

// Issue 14: a refusal says what the request needs and what is free, not
// only what is planned ("port lan0 is full: 1 of 9000 Mbit/s planned" for a
// request of 9.2 Gbit/s told the operator nothing).
TEST(admission, a_refusal_says_what_the_request_needs_and_what_is_free) {
    struct row {
        const char* what;
        double mbps, pps_per_core;
        uint64_t admitted, asked;   // 256 kbit/s listeners: 0.2872 Mbit/s, 50 replicas/s each
        const char* reason;
    };
    const row rows[] = {
        {"port: 3000 admitted, 200 more", 1000, 50e6, 3000, 200,
         "port p0 is full: the request needs 57 Mbit/s, 38 of 900 Mbit/s free (861 planned)"},
        {"port: nothing planned, 32000 asked (9.2 Gbit/s)", 10000, 50e6, 0, 32000,
         "port p0 is full: the request needs 9190 Mbit/s, 9000 of 9000 Mbit/s free (0 planned)"},
        {"port: under ten Mbit/s shows three digits", 2, 50e6, 6, 1,
         "port p0 is full: the request needs 0.287 Mbit/s, 0.0768 of 1.8 Mbit/s free (1.72 planned)"},
        {"fan-out: 900 replicas/s, all planned", 100000, 1000, 18, 2,
         "fan-out is full: the request needs 100 replicas/s, 0 of 900 replicas/s free (900 planned)"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        admission a(cfg(r.mbps, r.pps_per_core, 1, 10));
        if (r.admitted != 0) a.admit(1, control::cost_of(20, 256), at(0, r.admitted));
        try {
            a.admit(1, control::cost_of(20, 256), at(0, r.asked));
            ADD_FAILURE() << "admitted";
        } catch (const control::action_error& e) {
            EXPECT_EQ("capacity", name_of(e.code));
            EXPECT_STREQ(r.reason, e.what());
        }
    }
}

TEST(admission, join_rate_buckets_per_session_and_overall) {
    auto c = cfg(100000, 50e6, 1, 0);
    c.join_rate_per_s = 100;
    c.session_join_rate_per_s = 60;
    admission a(c);
    const auto t0 = admission::clock::now();
    a.admit(1, control::cost_of(20, 32), at(0, 60), t0);
    try {
        a.admit(1, control::cost_of(20, 32), at(0, 1), t0);
        FAIL() << "session bucket empty";
    } catch (const control::action_error& e) {
        EXPECT_EQ("rate_limited", name_of(e.code));
        EXPECT_EQ(1u, e.retry_after_s);
    }
    a.admit(2, control::cost_of(20, 32), at(0, 40), t0);                  // overall bucket: 40 left
    try {
        a.admit(3, control::cost_of(20, 32), at(0, 30), t0);
        FAIL() << "relay bucket empty";
    } catch (const control::action_error& e) {
        EXPECT_EQ("rate_limited", name_of(e.code));
        EXPECT_EQ(1u, e.retry_after_s);                 // 30 tokens at 100/s: 0.3 s -> 1
    }
    // Refill: after half a second the relay has 50 tokens, session 3 its 60.
    a.admit(3, control::cost_of(20, 32), at(0, 30), t0 + std::chrono::milliseconds(500));
    // A request larger than a bucket's depth can never pass.
    try {
        a.admit(4, control::cost_of(20, 32), at(0, 61), t0 + std::chrono::seconds(10));
        FAIL() << "bigger than the burst";
    } catch (const control::action_error& e) {
        EXPECT_EQ("invalid", name_of(e.code));
    }
    // A refused request consumed nothing: the earlier bucket state stands.
    a.admit(4, control::cost_of(20, 32), at(0, 60), t0 + std::chrono::seconds(10));
}

TEST(admission, overload_cap_lowers_and_restores_capacity) {
    admission a(cfg(100000, 1e6, 1, 0));
    a.admit(1, control::cost_of(20, 32), at(0, 1000));
    a.set_overload_cap(a.used_pps());
    EXPECT_THROW(a.admit(1, control::cost_of(20, 32), at(0, 1)), control::action_error);
    a.release(control::cost_of(20, 32), family_ipv4, 0, 10);
    a.admit(1, control::cost_of(20, 32), at(0, 10));                      // back under the cap
    a.set_overload_cap(std::nullopt);
    a.admit(1, control::cost_of(20, 32), at(0, 5000));
    const auto r = a.report();
    EXPECT_DOUBLE_EQ(6000 * 50.0, r.used_pps);
    EXPECT_FALSE(r.overload_cap_pps.has_value());
}

// A relay (no workers) with its control plane on a 1 Mbit/s port: 900
// kbit/s planned after the 10 % headroom.
control::control_options no_publisher() {
    control::control_options co;
    co.publisher = false;
    return co;
}

struct one_mbit_relay {
    ring_port port;
    control::profile p;
    control::relay r;
    control::control_plane cp;
    explicit one_mbit_relay(const std::string& prefix)
        : port(fresh_ring_port(prefix)), p(one_mbit(api_profile(port.name))),
          r(p, control::relay_options{.launch = false}), cp(r, p, no_publisher()) {}
    static control::profile one_mbit(control::profile q) {
        q.ports[0].line_rate_mbps = 1;
        return q;
    }
};

// Issue 10 item 7: a listener of a forward session receives every speaker's
// stream, so admission plans one stream per speaker (a mix session is one
// stream whatever its speakers). Before this change every listener was
// planned as one stream: on the 1 Mbit/s port below, three listeners of a
// three-speaker session were admitted, 2.6 Mbit/s on a 0.9 Mbit/s plan.
// 256 kbit/s, 20 ms: 287.2 kbit/s per stream on the wire; 900 kbit/s planned.
TEST(admission_plan, a_forward_listener_costs_every_speaker_stream_a_mix_listener_one) {
    struct plan_case {
        const char* what;
        control::session_mode mode;
        unsigned speakers;
        unsigned admitted;   // listeners that fit
    };
    const plan_case cases[] = {
        {"forward, no speaker yet: planned as one stream", control::session_mode::forward, 0, 3},
        {"forward, one speaker", control::session_mode::forward, 1, 3},
        {"forward, two speakers", control::session_mode::forward, 2, 1},
        {"forward, three speakers", control::session_mode::forward, 3, 1},
        {"forward, four speakers: not even one listener", control::session_mode::forward, 4, 0},
        {"mix, three speakers: one mixed stream", control::session_mode::mix, 3, 3},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        one_mbit_relay env("admplan");
        auto& r = env.r;
        auto& cp = env.cp;
        control::session_params sp;
        sp.mode = c.mode;
        const uint32_t id = r.state().session_create(sp).id;
        for (unsigned k = 0; k < c.speakers; ++k) r.state().speaker_add(id, speaker_ip + k, 5004, 1000 + k);
        unsigned admitted = 0;
        for (unsigned i = 0; i < 5; ++i) {
            try {
                r.state().listener_add(id, 0xcb007101 + i, 6000, 0);
                ++admitted;
            } catch (const control::action_error& e) {
                EXPECT_EQ(control::error_code::capacity, e.code);
                break;
            }
        }
        EXPECT_EQ(c.admitted, admitted);
        const unsigned streams = c.mode == control::session_mode::mix ? 1 : std::max(1u, c.speakers);
        EXPECT_DOUBLE_EQ(admitted * streams * 50.0, cp.adm().used_pps());
        r.state().session_end(id);
        EXPECT_DOUBLE_EQ(0.0, cp.adm().used_pps()) << "an ended session holds no load";
    }
}

// A session whose listeners get SRTP (srtp.egress = "session_key") sends
// every replica with its tag and MKI: planned at srtp::max_trailer (20)
// bytes more per packet than the same session in the clear, for both
// families, and released alike.
TEST(admission_plan, an_srtp_session_plans_each_replica_with_its_tag_and_mki) {
    struct trailer_case {
        const char* what;
        std::optional<control::srtp_egress_mode> egress;
        unsigned trailer;
    };
    const trailer_case cases[] = {
        {"in the clear", control::srtp_egress_mode::off, 0},
        {"SRTP with the session key", control::srtp_egress_mode::session_key, srtp::max_trailer},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        one_mbit_relay env("admsrtp");
        auto& r = env.r;
        control::session_params sp;
        sp.srtp_egress = c.egress;
        const uint32_t id = r.state().session_create(sp).id;
        r.state().listener_add(id, 0xcb007101, 6000, 0);
        const auto k = control::cost_of(20, 256, 1, c.trailer);
        EXPECT_EQ(control::cost_of(20, 256).wire_bytes[family_ipv4] + c.trailer, k.wire_bytes[family_ipv4]);
        EXPECT_DOUBLE_EQ(k.bps[family_ipv4], env.cp.adm().report().ports[0].used_bps);
        r.state().session_end(id);
        EXPECT_DOUBLE_EQ(0.0, env.cp.adm().report().ports[0].used_bps) << "released at its own cost";
    }
}

// A speaker joining a forward session adds its stream to every listener:
// admission plans it or refuses the speaker, and the session is unchanged.
TEST(admission_plan, a_speaker_that_would_overfill_the_port_is_refused_and_changes_nothing) {
    one_mbit_relay env("admspk");
    auto& r = env.r;
    auto& cp = env.cp;
    const uint32_t id = r.state().session_create({}).id;
    r.state().speaker_add(id, speaker_ip, 5004, 1000);
    for (unsigned i = 0; i < 3; ++i) r.state().listener_add(id, 0xcb007101 + i, 6000, 0);
    EXPECT_DOUBLE_EQ(150.0, cp.adm().used_pps());
    try {
        r.state().speaker_add(id, speaker_ip + 1, 5004, 1001);
        FAIL() << "a second stream to 3 listeners (1.7 Mbit/s) was admitted on a 0.9 Mbit/s plan";
    } catch (const control::action_error& e) {
        EXPECT_EQ(control::error_code::capacity, e.code);
        EXPECT_NE(std::string::npos, std::string(e.what()).find("one more stream")) << e.what();
    }
    EXPECT_EQ(1u, r.state().session(id)->speakers.size());
    EXPECT_DOUBLE_EQ(150.0, cp.adm().used_pps());
    EXPECT_EQ(1u, cp.adm().report().refusals.at("capacity"));
    // With one listener left the second speaker fits; removing it frees its stream.
    r.state().listener_del(id, 0xcb007102, 6000);
    r.state().listener_del(id, 0xcb007103, 6000);
    r.state().speaker_add(id, speaker_ip + 1, 5004, 1001);
    EXPECT_DOUBLE_EQ(100.0, cp.adm().used_pps());
    r.state().speaker_del(id, speaker_ip + 1, 5004);
    EXPECT_DOUBLE_EQ(50.0, cp.adm().used_pps());
    r.state().speaker_del(id, speaker_ip, 5004);
    EXPECT_DOUBLE_EQ(50.0, cp.adm().used_pps()) << "the last speaker leaves: still planned as one stream";
}

}  // namespace
}  // namespace stentor::test
