// The neighbour state machine (dataplane/neigh_fsm.h) without EAL: a table of
// event sequences on one entry, each described in words, with what every
// step must do (the reply's verdict, whether a request is due) and the MAC
// the fan-out reads afterwards, and the counters each row must end with.
// The clock is simulated (1 TSC tick = 1 ns); the same rows run from a TSC
// just below 2^64 so every one of them crosses the wrap. The same code runs
// in neigh.cc (tests/integration/test_neigh.cc drives it through real EAL)
// and in fuzz/fuzz_arp.cc.
#include "neigh_fsm.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace stentor::dp {
namespace {

using V = reply_verdict;

constexpr uint64_t hz = 1000000000;   // 1 tick = 1 ns
constexpr uint64_t ms = hz / 1000;
constexpr uint16_t port = 1;

// MACs: the real host, an attacker, a third party; "none": unresolved.
enum mac_id : int { none = -1, host = 0, spoof = 1, other = 2, pinned = 3 };
const uint8_t macs[4][6] = {{0x02, 0x00, 0x00, 0x00, 0x0a, 0x01},
                            {0x02, 0xba, 0xd0, 0x00, 0x00, 0x01},
                            {0x02, 0xba, 0xd0, 0x00, 0x00, 0x02},
                            {0x02, 0x00, 0x00, 0x00, 0x99, 0x99}};

enum class op { visit, reply, reply_other_port };

struct step {
    uint64_t at_ms;   // since the row's start
    op what;
    int mac;          // reply: the MAC offered
    int want;         // visit: 1 if a request is due (the test sends it); reply: the verdict
    int in_use;       // the MAC in use afterwards
};

struct counts {
    uint64_t unsolicited = 0, late = 0, conflict = 0, changed = 0, confirmed = 0, kept = 0, expired = 0,
             in_conflict = 0;   // drop/ingress/arp_conflict
    bool operator==(const counts&) const = default;
};

struct row {
    std::string what;
    bool is_static;
    uint32_t reachable_ms;   // 0: the relay's 30 s
    std::vector<step> steps;
    counts want;
};

step ask(uint64_t at, int in_use = none) { return {at, op::visit, none, 1, in_use}; }
step idle(uint64_t at, int in_use = none) { return {at, op::visit, none, 0, in_use}; }
step reply(uint64_t at, int mac, V v, int in_use) { return {at, op::reply, mac, static_cast<int>(v), in_use}; }

std::vector<row> table() {
    std::vector<row> rows;
    rows.push_back({"a new next hop: asked at once, the reply 3 ms later resolves it; not asked again while confirmed",
                    false, 0,
                    {ask(0), reply(3, host, V::learnt, host), idle(600, host), idle(29999, host)},
                    {}});
    rows.push_back({"a reply before any request of ours: unsolicited, not learnt", false, 0,
                    {reply(0, spoof, V::unsolicited, none), ask(1), reply(2, host, V::learnt, host)},
                    {.unsolicited = 1}});
    rows.push_back({"a reply on another port than the next hop's: unsolicited", false, 0,
                    {ask(0), {1, op::reply_other_port, spoof, static_cast<int>(V::unsolicited), none},
                     reply(2, host, V::learnt, host)},
                    {.unsolicited = 1}});
    rows.push_back({"the window is 500 ms: a reply at 500 ms counts, at 501 ms it is late; asked again after 1 s", false,
                    0,
                    {ask(0), idle(501), reply(501, host, V::late, none), idle(999), ask(1000),
                     reply(1500, host, V::learnt, host)},
                    {.late = 1}});
    rows.push_back({"unanswered: one request per second, not more", false, 0,
                    {ask(0), idle(500), idle(600), idle(999), ask(1000), idle(1999), ask(2000)},
                    {}});
    rows.push_back({"a pinned neighbour: never asked for, replies unsolicited, its MAC never moves", true, 0,
                    {idle(0, pinned), reply(1, spoof, V::unsolicited, pinned), idle(40000, pinned),
                     reply(40001, spoof, V::unsolicited, pinned)},
                    {.unsolicited = 2}});
    rows.push_back({"a spoofer races the first resolution: sent to neither, later replies in that window ignored, "
                    "asked again after 1 s and resolved by a window with one MAC",
                    false, 0,
                    {ask(0), reply(1, host, V::learnt, host), reply(2, spoof, V::conflict, none),
                     reply(3, host, V::in_conflict, none), idle(501), ask(1000), reply(1001, host, V::learnt, host)},
                    {.conflict = 1, .in_conflict = 1}});
    rows.push_back({"after the conflict every reply in that window is counted and ignored, the spoofer's, the host's, "
                    "a third MAC's; the next window is clean again",
                    false, 0,
                    {ask(0), reply(1, spoof, V::learnt, spoof), reply(2, host, V::conflict, none),
                     reply(3, spoof, V::in_conflict, none), reply(4, host, V::in_conflict, none),
                     reply(5, other, V::in_conflict, none), reply(499, spoof, V::in_conflict, none),
                     reply(501, host, V::late, none), idle(600), ask(1000), reply(1001, host, V::learnt, host),
                     reply(1002, host, V::confirmed, host)},
                    {.late = 1, .conflict = 1, .in_conflict = 4}});
    rows.push_back({"the same MAC twice in the resolving window is no conflict", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), reply(2, host, V::confirmed, host)},
                    {}});
    rows.push_back({"a confirmed MAC is re-probed after 30 s; its answer keeps it", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), idle(30000, host), ask(30001, host),
                     reply(30002, host, V::confirmed, host), idle(30600, host), idle(60001, host), ask(60002, host)},
                    {}});
    rows.push_back({"the re-probe brings another MAC: a candidate, the old MAC held; the confirming request goes out "
                    "when the window closes; the candidate alone answers it: switched, and confirmed as of that request",
                    false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, spoof, V::candidate, host),
                     reply(30003, spoof, V::candidate, host), idle(30400, host), ask(30502, host),
                     reply(30503, spoof, V::candidate, host), idle(31002, host), idle(31003, spoof),
                     idle(60501, spoof), ask(60502, spoof)},
                    {.changed = 1, .confirmed = 1}});
    rows.push_back({"the same, but the host answers the confirming request too: kept", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, spoof, V::candidate, host),
                     ask(30502, host), reply(30503, spoof, V::candidate, host),
                     reply(30504, host, V::confirmed, host), idle(31003, host), idle(60503, host),
                     ask(60504, host)},
                    {.changed = 1, .kept = 1}});
    rows.push_back({"the host answers the re-probe and a spoofer too: still a candidate, the confirming request decides",
                    false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, host, V::confirmed, host),
                     reply(30003, spoof, V::candidate, host), ask(30502, host), reply(30503, host, V::confirmed, host),
                     idle(31003, host)},
                    {.changed = 1, .kept = 1}});
    rows.push_back({"nobody answers the confirming request: the old MAC stays, neither confirmed nor kept", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, spoof, V::candidate, host),
                     ask(30502, host), idle(31003, host), ask(31502, host)},
                    {.changed = 1}});
    rows.push_back({"the confirming request is answered by a MAC never offered before, alone: the change is refused, "
                    "the old MAC stays and is re-probed a second later",
                    false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, spoof, V::candidate, host),
                     ask(30502, host), reply(30503, other, V::refused, host), reply(30504, spoof, V::refused, host),
                     idle(31003, host), ask(31502, host)},
                    {.changed = 2}});
    rows.push_back({"the candidate and another MAC answer the confirming request: refused, whatever the order", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, spoof, V::candidate, host),
                     ask(30502, host), reply(30503, spoof, V::candidate, host), reply(30504, other, V::refused, host),
                     reply(30505, spoof, V::refused, host), idle(31003, host)},
                    {.changed = 2}});
    rows.push_back({"two candidates in the re-probe: the last one is held, the confirming request decides on it", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), reply(30002, other, V::candidate, host),
                     reply(30003, spoof, V::candidate, host), ask(30502, host), reply(30503, spoof, V::candidate, host),
                     idle(31003, spoof)},
                    {.changed = 2, .confirmed = 1}});
    rows.push_back({"two re-probes unanswered, then the host moved (candidate, confirmed): the new MAC starts with no "
                    "unanswered probes: invalidated after its own three unanswered re-probes, not after one",
                    false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), ask(31001, host), ask(32001, host),
                     reply(32002, spoof, V::candidate, host), ask(32502, host), reply(32503, spoof, V::candidate, host),
                     idle(33003, spoof), ask(62502, spoof), ask(63502, spoof), ask(64502, spoof), ask(65502, none)},
                    {.changed = 1, .confirmed = 1, .expired = 1}});
    rows.push_back({"three re-probes in a row unanswered: invalidated at the next visit and asked for again", false, 0,
                    {ask(0), reply(1, host, V::learnt, host), ask(30001, host), idle(30502, host), ask(31001, host),
                     idle(32000, host), ask(32001, host), ask(33001, none), reply(33002, host, V::learnt, host)},
                    {.expired = 1}});
    rows.push_back({"a short reachable time (700 ms, the integration tests' knob) re-probes after 700 ms", false, 700,
                    {ask(0), reply(1, host, V::learnt, host), idle(700, host), ask(1000, host),
                     reply(1001, host, V::confirmed, host), idle(1700, host), ask(2000, host)},
                    {}});
    return rows;
}

std::string name(int mac) { return mac == none ? "none" : std::to_string(mac); }

struct fsm_test : ::testing::TestWithParam<uint64_t> {};

TEST_P(fsm_test, table) {
    const uint64_t t0 = GetParam();
    // Every row for an IPv4 next hop (ARP replies) and for an IPv6 one
    // (neighbour advertisements, issue 15): the same rules, the drops
    // counted under each family's names.
    for (const bool v6 : {false, true})
    for (const row& r : table()) {
        SCOPED_TRACE(r.what + (v6 ? " (IPv6 next hop)" : ""));
        const neigh_drops& drops = v6 ? nd_drops : arp_drops;
        dp_neigh e;
        std::memset(static_cast<void*>(&e), 0, sizeof e);   // as control/state.cc hands a fresh entry over
        e.ip_be = v6 ? 0 : 0x650012c6;
        e.ip6[0] = v6 ? 0x20 : 0;
        e.ip6[15] = v6 ? 0x65 : 0;
        e.flags = v6 ? neigh_ipv6 : 0;
        e.port_id = port;
        if (r.is_static) {
            e.flags |= neigh_static;
            e.mac_word.store(neigh_mac_word(macs[pinned]), std::memory_order_relaxed);
        }
        const neigh_timing t = neigh_timing_of(hz, r.reachable_ms);
        lcore_counters c{};
        for (size_t k = 0; k < r.steps.size(); ++k) {
            const step& s = r.steps[k];
            SCOPED_TRACE("step " + std::to_string(k) + " at " + std::to_string(s.at_ms) + " ms");
            const uint64_t now = t0 + s.at_ms * ms;
            if (s.what == op::visit) {
                const bool due = neigh_visit(e, now, t, c);
                EXPECT_EQ(s.want != 0, due);
                if (due) neigh_request_sent(e, now);
            } else {
                const uint16_t p = s.what == op::reply ? port : port ^ 1;
                EXPECT_EQ(s.want, static_cast<int>(neigh_on_reply(e, p, neigh_mac_word(macs[s.mac]), now, t, c, drops)));
            }
            const uint64_t w = e.mac_word.load(std::memory_order_relaxed);
            EXPECT_EQ(s.in_use == none ? 0 : neigh_mac_word(macs[s.in_use]), w)
                << "in use: want " << name(s.in_use);
        }
        const counts got{c.drop(drops.unsolicited), c.drop(drops.late), c.neigh_conflict,
                         c.neigh_mac_changed, c.neigh_mac_confirmed, c.neigh_mac_kept, c.neigh_expired,
                         c.drop(drops.conflict)};
        const neigh_drops& other = v6 ? arp_drops : nd_drops;
        EXPECT_EQ(0u, c.drop(other.unsolicited) + c.drop(other.late) + c.drop(other.conflict)) << "the other family's";
        EXPECT_EQ(r.want, got) << "counters: unsolicited " << got.unsolicited << " late " << got.late << " conflict "
                               << got.conflict << " changed " << got.changed << " confirmed " << got.confirmed
                               << " kept " << got.kept << " expired " << got.expired << " in_conflict "
                               << got.in_conflict;
    }
}

// From 1 s after boot, from 0.2 s before the TSC wraps past 2^64, and with
// the first request of every row sent when the TSC reads exactly 0 (0 is
// also "never asked" in probe_tsc; fuzz_arp's first finding).
INSTANTIATE_TEST_SUITE_P(clock, fsm_test, ::testing::Values(hz, uint64_t{0} - 200 * ms, uint64_t{0}),
                         [](const auto& i) {
                             return i.param == hz ? std::string("boot")
                                                  : i.param == 0 ? std::string("tsc_zero") : std::string("wrap");
                         });

// The request budget (neigh.cc keeps one per lcore): burst, then rate.
TEST(neigh_bucket, burst_then_rate) {
    uint64_t tokens = 3;
    uint64_t last = hz;
    int granted = 0;
    for (int k = 0; k < 10; ++k) granted += bucket_take(tokens, last, hz, hz, 10, 3);
    EXPECT_EQ(3, granted) << "the burst, then nothing at the same instant";
    EXPECT_FALSE(bucket_take(tokens, last, hz + 99 * ms, hz, 10, 3)) << "10/s: not before 100 ms";
    EXPECT_TRUE(bucket_take(tokens, last, hz + 100 * ms, hz, 10, 3));
    EXPECT_FALSE(bucket_take(tokens, last, hz + 100 * ms, hz, 10, 3));
}

// A budget spent, then silence long enough that elapsed x rate no longer
// fits in 64 bits: 2^56 cycles (a year at 2.2 GHz) x 2560 is 10 x 2^64, which
// wrapped to a refill of 0 and refused the next request (fuzz_arp's second
// finding, there with a smaller TSC rate and a jump of 2^61).
TEST(neigh_bucket, refills_after_any_silence) {
    constexpr uint64_t tsc_hz = 2200000000;
    for (const uint64_t silence : {uint64_t{1} << 56, uint64_t{1} << 62, tsc_hz, 2 * tsc_hz + 1}) {
        uint64_t tokens = 0;
        uint64_t last = 5;
        EXPECT_TRUE(bucket_take(tokens, last, 5 + silence, tsc_hz, arp_request_rate, arp_request_burst))
            << "after " << silence << " cycles";
        EXPECT_EQ(arp_request_burst - 1, tokens);
    }
}

}  // namespace
}  // namespace stentor::dp
