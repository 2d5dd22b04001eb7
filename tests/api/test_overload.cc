// Drop-on-overload: a deliberately small fan-out budget (replicas per packet
// per shard) and more listeners than it carries. Workers are polled on the
// test thread and the controller is fed the counter deltas with a simulated
// clock, so every run is the same.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "control_plane.h"
#include "fixture.h"
#include "ops_watch.h"
#include "overload.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_worker.h"

#include <rte_cycles.h>

namespace stentor::test {
namespace {

using control::control_plane;
using control::relay;
using clk = std::chrono::steady_clock;

// The controller alone, on a state with no listeners: it never sheds, but
// its state machine follows the samples it is given.
struct unit_state {
    dp::dp_shared sh;
    std::vector<dp::dp_neigh> neigh = std::vector<dp::dp_neigh>(16);
    control::profile p = [] {
        auto q = api_profile("none");
        q.limits.max_speakers = 4;
        return q;
    }();
    control::relay_state st{p, (sh.neigh = neigh.data(), sh.nb_neigh = 16, sh), 1};
};

// The speaker table (relay_state::speaker_add): a flow is (address, port,
// session port), so one address may speak in two sessions but not twice in
// one; a full table says so, and a slot a delete freed is busy until the
// next publish (its grace period), which says so too.
TEST(speaker_table, one_flow_per_session_port_and_a_full_table_told_from_busy_slots) {
    auto p = api_profile(fresh_ring_port("spk").name);
    p.limits.max_speakers = 4;
    relay r(p, control::relay_options{.launch = false});
    auto& st = r.state();
    auto refused = [&](uint32_t session, uint32_t ip, uint32_t ssrc) -> std::string {
        try {
            st.speaker_add(session, ip, 5006, ssrc);
        } catch (const control::action_error& e) {
            return std::to_string(static_cast<int>(e.code)) + " " + e.what();
        }
        return "added";
    };
    control::session_params a, b;
    a.udp_port = 40010;
    b.udp_port = 40011;
    const uint32_t s1 = st.session_create(a).id;
    const uint32_t s2 = st.session_create(b).id;
    const std::string exists = std::to_string(static_cast<int>(control::error_code::exists));
    const std::string capacity = std::to_string(static_cast<int>(control::error_code::capacity));
    EXPECT_EQ("added", refused(s1, 0xc612000b, 77));
    EXPECT_EQ(exists + " speaker 198.18.0.11:5006 exists", refused(s1, 0xc612000b, 78));
    EXPECT_EQ("added", refused(s2, 0xc612000b, 79)) << "same address and port, another session: another flow";
    EXPECT_EQ("added", refused(s2, 0xc612000c, 80));
    EXPECT_EQ("added", refused(s1, 0xc612000d, 81));
    EXPECT_EQ(capacity + " speaker table full (limits.max_speakers)", refused(s1, 0xc612000e, 82));
    st.speaker_del(s1, 0xc612000d, 5006);
    EXPECT_EQ(capacity + " speaker slots busy; retry after the next publish", refused(s1, 0xc612000e, 82));
    st.publish();
    EXPECT_EQ("added", refused(s1, 0xc612000e, 82));
    EXPECT_EQ(exists + " speaker 198.18.0.11:5006 exists", refused(s2, 0xc612000b, 83));
}

// Session ports (relay_state::session_create): an explicit port must be
// free; without one, the lowest free port of the ingress range is taken; a
// full range says so; a deleted session's port is free again.
TEST(session_ports, the_lowest_free_port_is_taken_and_a_full_range_is_told) {
    auto p = api_profile(fresh_ring_port("ports").name);
    p.ingress.udp_port_min = 40000;
    p.ingress.udp_port_max = 40003;
    relay r(p, control::relay_options{.launch = false});
    auto& st = r.state();
    auto create = [&](unsigned port) -> std::string {
        control::session_params sp;
        sp.udp_port = port;
        try {
            return std::to_string(st.session_create(sp).udp_port);
        } catch (const control::action_error& e) {
            return std::to_string(static_cast<int>(e.code)) + " " + e.what();
        }
    };
    const std::string exists = std::to_string(static_cast<int>(control::error_code::exists));
    const std::string capacity = std::to_string(static_cast<int>(control::error_code::capacity));
    EXPECT_EQ("40000", create(40000));
    EXPECT_EQ("40002", create(40002));
    EXPECT_EQ(exists + " udp_port 40002 used by another session", create(40002));
    EXPECT_EQ("40001", create(0));
    EXPECT_EQ("40003", create(0));
    EXPECT_EQ(capacity + " no free speaker port in the ingress range", create(0));
    uint32_t on_40001 = 0;
    for (const auto& v : st.sessions())
        if (v.udp_port == 40001) on_40001 = v.id;
    ASSERT_NE(0u, on_40001);
    st.session_end(on_40001);
    EXPECT_EQ("40001", create(0));
}

struct lst {
    uint32_t ip;
    unsigned port;
    unsigned tier;
};

class overload_test : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("ovl");
    std::unique_ptr<relay> r;
    std::unique_ptr<control_plane> cp;
    std::vector<lst> ls;
    std::map<uint64_t, uint64_t> received;   // (ip << 16 | port) -> replicas
    uint16_t seq = 1;
    clk::time_point now = clk::now();
    dp::lcore_counters prev{};

    void build(uint32_t budget, bool recording = false, unsigned record_ring = 8192) {
        auto p = api_profile(port.name);
        p.recording.dir = ::testing::TempDir();
        control::session_config sc = speaker_session();
        // 5 ms frames: the speaker policer allows 220 packets/s (10 % over
        // the stream rate), and the test sends one every 5 ms or more (real
        // time: the policer reads the TSC).
        sc.frame_ms = 5;
        sc.recording = recording;
        p.sessions.push_back(sc);
        control::relay_options ro;
        ro.launch = false;
        ro.replica_budget = budget;
        ro.record_ring_size = record_ring;
        r = std::make_unique<relay>(p, ro);
        control::control_options co;
        co.publisher = false;
        r->state().load_static(p);
        cp = std::make_unique<control_plane>(*r, p, co);
    }
    void join(unsigned n, unsigned tier) {
        for (unsigned i = 0; i < n; ++i) {
            const uint32_t ip = 0xcb007101 + static_cast<uint32_t>(ls.size());   // 203.0.113.1+, via the gateway
            r->state().listener_add(1, ip, 6000, tier);
            ls.push_back({ip, 6000, tier});
        }
        cp->commit();
    }
    static uint64_t key(uint32_t ip, unsigned port) { return uint64_t{ip} << 16 | port; }
    void settle() {
        for (int i = 0; i < 256; ++i)
            if (r->poll() == 0) break;
        r->flush();
    }
    // One controller tick: `packets` speaker packets, then the counters.
    uint64_t tick(unsigned packets) {
        for (unsigned k = 0; k < packets; ++k) {
            frame_spec fs;
            fs.seq = seq++;
            inject(port, rtp_frame(fs));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            settle();
            for (const auto& f : drain(port))
                if (f.size() > 42 && be16(f.data() + 12) == 0x0800) ++received[key(be32(f.data() + 30), be16(f.data() + 36))];
        }
        const auto cur = r->totals();
        const uint64_t shed = cp->overload().tick(control::sample_delta(prev, cur), now);
        prev = cur;
        now += std::chrono::milliseconds(100);
        cp->commit();
        return shed;
    }
    // Clean ticks until the controller is back to normal: the cap rises
    // monotonically and is lifted within hold (2 s) + ramp (5 s) of the last
    // missing tick. Returns the simulated time it took.
    std::chrono::milliseconds recover(unsigned packets_per_tick = 0) {
        std::optional<double> last;
        std::chrono::milliseconds t{0};
        while (cp->overload().status().state != "normal" && t < std::chrono::milliseconds(10000)) {
            tick(packets_per_tick);
            t += std::chrono::milliseconds(100);
            const auto cap = cp->overload().status().cap_pps;
            if (cap && last) {
                EXPECT_GE(*cap, *last) << "the cap only rises while recovering";
            }
            if (cap) last = cap;
        }
        EXPECT_EQ("normal", cp->overload().status().state);
        EXPECT_LE(t.count(), 7000 + 100) << "back to full capacity within hold + ramp";
        EXPECT_FALSE(cp->adm().report().overload_cap_pps.has_value());
        return t;
    }
    bool present(const lst& l) {
        for (const auto& v : r->state().listeners(1, 0, 1000000))
            if (v.ip == l.ip && v.port == l.port) return true;
        return false;
    }
};

TEST_F(overload_test, sheds_lowest_tier_newest_first_then_recovers_without_flapping) {
    build(40);
    join(20, 0);
    join(15, 1);
    join(30, 2);
    unsigned packets = 0;
    std::vector<uint64_t> shed_at;
    for (int t = 0; t < 45; ++t) {
        shed_at.push_back(tick(5));
        packets += 5;
    }
    // Tier 0 and tier 1 fit the budget (served first): they lost nothing.
    for (const auto& l : ls)
        if (l.tier < 2) {
            EXPECT_EQ(packets, received[key(l.ip, l.port)]) << "tier " << l.tier << " listener lost packets";
        }
    // Shed once, after 3 missing ticks: the 25 newest tier-2 listeners.
    EXPECT_EQ(25u, shed_at[2]);
    uint64_t total = 0;
    for (auto s : shed_at) total += s;
    EXPECT_EQ(25u, total);
    for (size_t i = 0; i < ls.size(); ++i) {
        const bool shed = ls[i].tier == 2 && i >= 20 + 15 + 5;
        EXPECT_EQ(!shed, present(ls[i])) << "listener " << i;
    }
    // The 5 tier-2 listeners that stayed get every packet after the shed.
    // The 5 oldest tier-2 listeners fit the budget all along.
    for (size_t i = 35; i < 40; ++i) EXPECT_EQ(packets, received[key(ls[i].ip, ls[i].port)]) << "kept tier-2 listener " << i;
    const auto st = cp->overload().status();
    EXPECT_EQ(1u, st.enter_count) << "no flapping";
    EXPECT_EQ(1u, st.shed_events);
    EXPECT_EQ(25u, st.shed_by_tier[2]);
    recover(5);
    const auto ev = cp->overload().events();
    ASSERT_EQ(1u, ev.size());
    EXPECT_EQ(2u, ev[0].tier);
    EXPECT_EQ(25u, ev[0].listeners);
    EXPECT_EQ(25u, ev[0].by_session.at(1));
    // Capacity is admitted again: a rejoin is accepted.
    r->state().listener_add(1, ls.back().ip, ls.back().port, 2);
    EXPECT_EQ(1u, r->state().session(1)->speakers.size()) << "speakers are never shed";
}

TEST_F(overload_test, admission_is_capped_while_overloaded) {
    build(10);
    join(10, 0);
    join(10, 3);
    // Shed happens on the third tick; capacity is capped to what is left.
    for (int t = 0; t < 3; ++t) tick(3);
    EXPECT_EQ("overloaded", cp->overload().status().state);
    ASSERT_TRUE(cp->adm().report().overload_cap_pps.has_value());
    try {
        r->state().listener_add(1, 0xcb0071f0, 6000, 0);
        FAIL() << "join admitted while overloaded";
    } catch (const control::action_error& e) {
        EXPECT_EQ("capacity", name_of(e.code));
    }
    // Clean ticks for the hold time (2 s of simulated clock), then the cap
    // rises over the ramp (5 s) and is lifted.
    recover(1);
    r->state().listener_add(1, 0xcb0071f0, 6000, 0);
}

TEST_F(overload_test, next_tier_only_after_the_lowest_is_gone) {
    build(30);
    join(20, 0);
    join(15, 1);
    join(10, 2);
    unsigned packets = 0;
    for (int t = 0; t < 40; ++t) {
        tick(4);
        packets += 4;
    }
    for (size_t i = 0; i < 20; ++i) EXPECT_EQ(packets, received[key(ls[i].ip, ls[i].port)]) << "tier 0 lost packets";
    const auto ev = cp->overload().events();
    ASSERT_EQ(2u, ev.size());
    EXPECT_EQ(2u, ev[0].tier);
    EXPECT_EQ(10u, ev[0].listeners);
    EXPECT_EQ(1u, ev[1].tier);
    EXPECT_EQ(5u, ev[1].listeners);
    // Tier 1: the 5 newest went, the 10 oldest stayed.
    for (size_t i = 20; i < 35; ++i) EXPECT_EQ(i < 30, present(ls[i])) << "tier-1 listener " << i;
    EXPECT_EQ(1u, cp->overload().status().enter_count);
    recover(4);
}

// A recorder that falls behind (slow disk; here: never polled) fills its
// ring. That loses recording data, counted as record_ring_full, and must not
// make the controller shed listeners: the fan-out kept up.
TEST_F(overload_test, full_record_ring_sheds_nobody) {
    build(0, /*recording=*/true, /*record_ring=*/16);
    join(10, 0);
    join(10, 3);
    unsigned packets = 0;
    uint64_t shed = 0;
    for (int t = 0; t < 8; ++t) {
        shed += tick(5);
        packets += 5;
    }
    const auto tot = r->totals();
    EXPECT_GE(tot.drop(dp::drop_reason::record_ring_full), packets - 16u) << "the record ring overflowed";
    EXPECT_EQ(0u, tot.drop(dp::drop_reason::ring_full));
    EXPECT_EQ(0u, tot.drop(dp::drop_reason::jobs_full));
    EXPECT_EQ(0u, shed);
    EXPECT_EQ(0u, cp->overload().status().enter_count);
    EXPECT_EQ("normal", cp->overload().status().state);
    for (const auto& l : ls) EXPECT_EQ(packets, received[key(l.ip, l.port)]) << "every listener got every packet";
}

TEST(overload_unit, service_queues_are_not_fanout_overload) {
    dp::lcore_counters prev{}, cur{};
    cur.drop(dp::drop_reason::record_ring_full) = 500;
    cur.drop(dp::drop_reason::mixer_ring_full) = 70;
    EXPECT_EQ(0u, control::sample_delta(prev, cur).fanout_full);
    cur.drop(dp::drop_reason::ring_full) = 3;
    cur.drop(dp::drop_reason::jobs_full) = 4;
    EXPECT_EQ(7u, control::sample_delta(prev, cur).fanout_full);
}

// The controller's rule (issue 10 item 11): the same misses shed when the
// fan-out ran the whole tick (saturation) and shed nobody when it did not
// run for part of it (a stall); a stall neither counts towards shedding nor
// resets a streak.
TEST(overload_unit, misses_during_a_stall_shed_nobody) {
    unit_state u;
    auto& st = u.st;
    control::overload_controller c(st, nullptr, {});
    auto t = clk::now();
    control::overload_sample stalled;
    stalled.replicas_out = 1000;
    stalled.tier_misses[3] = 300;
    stalled.stalls = 1;
    stalled.stall_cycles = 400000000;
    for (int i = 0; i < 10; ++i) c.tick(stalled, t += std::chrono::milliseconds(100));
    EXPECT_EQ("normal", c.status().state);
    EXPECT_EQ(10u, c.status().stall_ticks);
    EXPECT_EQ(0u, c.status().enter_count);
    EXPECT_FALSE(c.status().last_stall.empty());
    control::overload_sample saturated = stalled;
    saturated.stalls = 0;
    saturated.stall_cycles = 0;
    c.tick(saturated, t += std::chrono::milliseconds(100));
    c.tick(saturated, t += std::chrono::milliseconds(100));
    c.tick(stalled, t += std::chrono::milliseconds(100));   // neither counts nor resets
    c.tick(saturated, t += std::chrono::milliseconds(100));
    EXPECT_EQ("overloaded", c.status().state) << "three saturated ticks enter overload";
}

TEST(overload_unit, thresholds_and_hold) {
    // Controller alone, on a state with no listeners: never sheds, but its
    // state machine follows the thresholds.
    unit_state u;
    auto& st = u.st;
    control::overload_options o;
    o.enter_ticks = 2;
    control::overload_controller c(st, nullptr, o);
    auto t = clk::now();
    control::overload_sample bad;
    bad.replicas_out = 1000;
    bad.tier_misses[3] = 10;   // 1 % > 0.1 %
    control::overload_sample good;
    good.replicas_out = 1000;
    control::overload_sample slight = good;
    slight.tier_misses[3] = 1;   // 0.1 %: not enough to enter, too much to count as clean
    c.tick(bad, t);
    c.tick(good, t);
    c.tick(bad, t);
    EXPECT_EQ("normal", c.status().state) << "needs consecutive missing ticks";
    c.tick(bad, t);
    EXPECT_EQ("overloaded", c.status().state);
    c.tick(good, t += std::chrono::milliseconds(100));
    c.tick(slight, t += std::chrono::seconds(3));
    EXPECT_EQ("overloaded", c.status().state) << "not clean: the hold restarts";
    c.tick(good, t += std::chrono::milliseconds(100));
    c.tick(good, t += std::chrono::milliseconds(1900));
    EXPECT_EQ("overloaded", c.status().state);
    c.tick(good, t += std::chrono::milliseconds(100));
    EXPECT_EQ("normal", c.status().state);
    control::overload_sample ring;
    ring.fanout_full = 1;
    c.tick(ring, t);
    c.tick(ring, t);
    EXPECT_EQ("overloaded", c.status().state) << "a full hand-off ring always counts";
    EXPECT_EQ(2u, c.status().enter_count);
}

}  // namespace
}  // namespace stentor::test


namespace stentor::test {
namespace {

// Hold CPU `cpu` with a real-time busy loop for `ms`: the fan-out lcore
// pinned there does not run meanwhile (as under preemption or steal time).
void hog_cpu(unsigned cpu, unsigned ms) {
    std::thread t([ms] {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (std::chrono::steady_clock::now() < end) {
        }
    });
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
    sched_param sp{};
    sp.sched_priority = 10;
    const int rc = pthread_setschedparam(t.native_handle(), SCHED_FIFO, &sp);
    t.join();
    EXPECT_EQ(0, rc) << "SCHED_FIFO needs root";
}

// A stall is not an overload (issue 10 item 11): the fan-out lcore is kept
// off its CPU for 100 ms, then 400 ms, while a small session streams. Its
// packets miss their 20 ms deadline, but nobody is shed and the stall
// counter moves. (Before this change the controller saw the misses as
// overload: 4 missing ticks in a row, and it shed.)
TEST(overload_stall, a_stalled_fanout_lcore_sheds_nobody) {
    ring_port port = make_ring_port("ovlstall");
    auto p = api_profile(port.name);
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    sc.frame_ms = 5;
    sc.speakers.push_back({speaker_ip, 5004, 1234});
    for (uint32_t i = 0; i < 50; ++i) sc.listeners.push_back({0xcb007101 + i, 6000, 3});
    p.sessions.push_back(sc);
    control::relay_options ro;   // launch = true: the worker runs on its own lcore
    control::relay r(p, ro);
    control::control_options co;
    co.publisher = false;
    r.state().load_static(p);
    control::control_plane cp(r, p, co);
    r.start();
    const unsigned fanout_cpu = r.worker_lcores().at(0);
    dp::lcore_counters prev = r.totals();
    auto now = clk::now();
    uint16_t seq = 1;
    std::atomic<bool> stop{false};
    // Speaker at 200 pps on the test thread; a reader drains the TX ring.
    std::thread speaker([&] {
        while (!stop.load()) {
            frame_spec fs;
            fs.seq = seq++;
            inject(port, rtp_frame(fs));
            drain(port);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    uint64_t shed = 0;
    auto ticks = [&](int n) {
        for (int i = 0; i < n; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            const auto cur = r.totals();
            shed += cp.overload().tick(control::sample_delta(prev, cur), now += std::chrono::milliseconds(100));
            prev = cur;
        }
    };
    ticks(3);
    std::thread h1([&] { hog_cpu(fanout_cpu, 100); });
    ticks(4);
    h1.join();
    std::thread h2([&] { hog_cpu(fanout_cpu, 400); });
    ticks(8);
    h2.join();
    ticks(3);
    stop = true;
    speaker.join();
    const auto tot = r.totals();
    r.stop();
    EXPECT_GE(tot.stalls, 2u) << "both stalls seen by the loop";
    // 500 ms of hogging; the loop measures the gaps between its iterations,
    // which start a little after the hog takes the CPU (499 ms was seen).
    EXPECT_GE(tot.stall_cycles, rte_get_tsc_hz() * 4 / 10) << "most of the 0.5 s not run";
    EXPECT_EQ(0u, shed);
    const auto st = cp.overload().status();
    EXPECT_EQ(0u, st.listeners_shed);
    EXPECT_EQ(0u, st.enter_count);
    EXPECT_EQ(50u, r.state().session(1)->nb_listeners);
    std::printf("[ stall    ] stalls %llu, %.0f ms not run, tier-3 misses %llu, stall ticks %llu\n",
                static_cast<unsigned long long>(tot.stalls), 1e3 * double(tot.stall_cycles) / double(rte_get_tsc_hz()),
                static_cast<unsigned long long>(tot.tier_misses[3]), static_cast<unsigned long long>(st.stall_ticks));
}

}  // namespace
}  // namespace stentor::test

// The operator's log (control/ops_watch.cc, docs/operations.md "Logs"): the
// shed, the entry into overload and the re-admission each make one line;
// a neighbour whose MAC the ARP owner replaced makes one line naming both.
namespace stentor::test {
namespace {

struct captured_log {
    std::ostringstream out;
    std::shared_ptr<spdlog::logger> saved = spdlog::default_logger();
    captured_log() {
        spdlog::set_default_logger(
            std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)));
    }
    ~captured_log() { spdlog::set_default_logger(saved); }
    size_t count(const std::string& s) const {
        const auto t = out.str();
        size_t n = 0;
        for (auto p = t.find(s); p != std::string::npos; p = t.find(s, p + 1)) ++n;
        return n;
    }
};

TEST_F(overload_test, shed_overload_and_readmission_are_logged_once_each) {
    captured_log log;
    build(40);
    join(20, 0);
    join(15, 1);
    join(30, 2);
    control::ops_watch w(*cp);
    auto t = clk::now();
    w.poll(t);
    for (int i = 0; i < 6; ++i) {
        tick(5);
        w.poll(t += std::chrono::milliseconds(100));
    }
    for (int i = 0; i < 100 && cp->overload().status().state != "normal"; ++i) {
        tick(5);
        w.poll(t += std::chrono::milliseconds(100));
    }
    ASSERT_EQ("normal", cp->overload().status().state);
    EXPECT_EQ(1u, log.count("overload: entered: miss ratio")) << log.out.str();
    EXPECT_EQ(1u, log.count("overload: shed 25 listener(s) of tier 2 (by session 1: 25):")) << log.out.str();
    EXPECT_EQ(1u, log.count("overload: recovering: clean for the hold time")) << log.out.str();
    EXPECT_EQ(1u, log.count("overload: over: admission re-opened to full capacity (re-admit)")) << log.out.str();
}

TEST_F(overload_test, a_neighbour_mac_change_is_logged_with_both_macs) {
    captured_log log;
    build(1000);
    join(1, 0);   // 203.0.113.1 via the gateway: its neighbour entry exists
    auto& sh = r->shared();
    ASSERT_NE(nullptr, sh.neigh);
    // Entry 0 as the ARP owner leaves it: the gateway, valid MAC a, then b.
    dp::dp_neigh* e = nullptr;
    for (uint32_t i = 0; i < sh.nb_neigh && e == nullptr; ++i)
        if (sh.neigh[i].ip_be != 0) e = &sh.neigh[i];
    ASSERT_NE(nullptr, e) << "no neighbour entry for the gateway";
    const uint64_t valid = uint64_t{1} << 63;
    const uint64_t a = valid | 0x0a0000000002ull, b = valid | 0x0b0000000002ull;   // 02:00:00:00:00:0a / 0b
    const uint64_t before = e->mac_word.load();
    control::ops_watch w(*cp);
    auto t = clk::now();
    e->mac_word.store(a);
    w.poll(t);
    e->mac_word.store(a);
    w.poll(t += std::chrono::seconds(1));
    EXPECT_EQ(0u, log.count("neighbour ")) << log.out.str();
    e->mac_word.store(b);
    w.poll(t += std::chrono::seconds(1));
    e->mac_word.store(before);
    EXPECT_EQ(1u, log.count("neighbour 198.18.0.254 (port lan0): MAC changed 02:00:00:00:00:0a -> 02:00:00:00:00:0b (confirmed by a "
                        "fresh probe)"))
        << log.out.str();
}

}  // namespace
}  // namespace stentor::test
