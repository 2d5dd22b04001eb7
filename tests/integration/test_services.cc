// The services wing on its own, with real EAL, rings, mbufs and libopus.
//
// The service thread (stentor/services/service_thread.h) with real lcores,
// a real rte_rcu_qsbr variable and a real thread: a step that throws is
// counted and the thread goes on, the RCU reader is offline whenever the
// thread is not stepping (also after a throw), the thread runs on its
// lcores' CPUs, sleeps when its step asks to, and a bad lcore or reader id
// is refused before anything starts.
//
// The mixer (stentor/services/mixer.h): a session whose mix cannot run
// fails alone, says why, and the other session is served.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>

#include "audio_util.h"
#include "eventually.h"
#include "harness.h"
#include "stentor/dp_shared.h"
#include "stentor/rtp.h"
#include "stentor/services/mixer.h"
#include "stentor/services/service_thread.h"

namespace stentor::test {
namespace {

using svc::service_thread;
using svc::service_thread_config;

constexpr uint64_t ms = 1000000;

struct qsbr {
    rte_rcu_qsbr* v = nullptr;
    explicit qsbr(unsigned readers) {
        const size_t sz = rte_rcu_qsbr_get_memsize(readers);
        v = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, (sz + RTE_CACHE_LINE_SIZE - 1) & ~size_t{RTE_CACHE_LINE_SIZE - 1}));
        rte_rcu_qsbr_init(v, readers);
    }
    ~qsbr() { std::free(v); }
    // What a publish waits for: every registered reader quiescent since now
    // (an offline reader counts as quiescent). Bounded, never blocking.
    bool grace_period_ends() const {
        const uint64_t t = rte_rcu_qsbr_start(v);
        return eventually([&] { return rte_rcu_qsbr_check(v, t, false) == 1; });
    }
};

// What a step may throw; the thread must survive each and say what it was.
struct throw_case {
    const char* what;
    std::function<void()> raise;
    const char* last_error;
};

const throw_case throw_cases[] = {
    {"std::runtime_error", [] { throw std::runtime_error("opus_encoder_create failed"); }, "opus_encoder_create failed"},
    {"std::bad_alloc", [] { throw std::bad_alloc(); }, "std::bad_alloc"},
    {"not a std::exception", [] { throw 42; }, "unknown exception"},
};

TEST(service_thread, a_step_that_throws_is_counted_and_the_thread_goes_on) {
    for (const auto& c : throw_cases) {
        SCOPED_TRACE(c.what);
        qsbr rcu(1);
        std::atomic<unsigned> calls{0};
        service_thread t(service_thread_config{.name = "test-throw", .lcores = {}, .rcu = rcu.v, .rcu_thread_id = 0,
                                               .failure_backoff_ns = 1 * ms},
                         [&](uint64_t now) -> uint64_t {
                             // Throws on its 2nd step only, while online as a reader.
                             if (++calls == 2) c.raise();
                             return now + 1 * ms;
                         });
        t.start();
        ASSERT_TRUE(eventually([&] { return calls.load() >= 5; })) << "the thread stopped stepping after the throw";
        EXPECT_TRUE(t.running());
        EXPECT_EQ(t.stats().failures, 1u);
        EXPECT_EQ(t.last_error(), c.last_error);
        EXPECT_TRUE(rcu.grace_period_ends()) << "the reader stayed online after the throw: publishes would hang";
        t.stop();
        EXPECT_FALSE(t.running());
        EXPECT_EQ(t.stats().failures, 1u);
    }
}

// Several relays share a two-core machine: between steps the thread sleeps
// as long as its step asked (here: far longer than the test), is offline as
// a reader meanwhile, and stop() wakes it.
TEST(service_thread, sleeps_offline_between_steps_and_stop_wakes_it) {
    qsbr rcu(1);
    std::atomic<unsigned> calls{0};
    service_thread t(service_thread_config{.name = "test-sleep", .lcores = {}, .rcu = rcu.v, .rcu_thread_id = 0},
                     [&](uint64_t now) -> uint64_t {
                         ++calls;
                         return now + 3600 * 1000 * ms;
                     });
    t.start();
    ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
    EXPECT_TRUE(rcu.grace_period_ends()) << "asleep but online: every publish would wait for it";
    // A sleep is cut to max_sleep_ns (1 s), so a stalled test thread may see
    // one more step per second it was away; a busy loop would add millions.
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto away_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LE(calls.load(), 2u + static_cast<unsigned>(away_s));
    t.stop();
    EXPECT_FALSE(t.running());
    t.stop();   // idempotent
}

// The offline step (where the recorder does its disk I/O) runs after the
// thread went offline as a reader: while it is blocked, a publish's grace
// period ends; and its wake time counts (here: the online step asks for an
// hour, the offline one for 1 ms, and the thread keeps stepping).
TEST(service_thread, the_offline_step_runs_offline_and_its_wake_time_counts) {
    qsbr rcu(1);
    std::atomic<unsigned> online{0}, offline{0};
    std::mutex m;
    std::condition_variable cv;
    bool blocked = false, release = false;
    service_thread t(
        service_thread_config{.name = "test-offline", .lcores = {}, .rcu = rcu.v, .rcu_thread_id = 0},
        [&](uint64_t now) -> uint64_t {
            ++online;
            return now + 3600 * 1000 * ms;
        },
        [&](uint64_t now) -> uint64_t {
            if (++offline == 3) {
                std::unique_lock lk(m);
                blocked = true;
                cv.notify_all();
                cv.wait(lk, [&] { return release; });
            }
            return now + 1 * ms;
        });
    t.start();
    {
        std::unique_lock lk(m);
        ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(20), [&] { return blocked; }))
            << "the offline step's wake time was not honoured: " << offline.load() << " offline steps";
    }
    EXPECT_TRUE(rcu.grace_period_ends()) << "the thread was online during its offline step";
    {
        std::lock_guard lk(m);
        release = true;
    }
    cv.notify_all();
    ASSERT_TRUE(eventually([&] { return offline.load() >= 4; }));
    t.stop();
    EXPECT_EQ(online.load(), offline.load()) << "one offline step after each step";
    EXPECT_EQ(t.stats().failures, 0u);
}

// Pinned to the CPUs of the lcores it was given, from its first step on.
TEST(service_thread, runs_on_its_lcores_cpus) {
    for (unsigned lcore : {0u, 1u}) {
        SCOPED_TRACE(lcore);
        cpu_set_t seen;
        CPU_ZERO(&seen);
        std::atomic<bool> stepped{false};
        service_thread t(service_thread_config{.name = "test-pin", .lcores = {lcore}},
                         [&](uint64_t now) -> uint64_t {
                             if (!stepped.load()) {
                                 pthread_getaffinity_np(pthread_self(), sizeof seen, &seen);
                                 stepped.store(true);
                             }
                             return now + 1000 * ms;
                         });
        t.start();
        ASSERT_TRUE(eventually([&] { return stepped.load(); }));
        t.stop();
        rte_cpuset_t want = rte_lcore_cpuset(lcore);
        EXPECT_TRUE(CPU_EQUAL(&seen, &want));
    }
}

// Bad input: a clear error from start(), no thread, and the reader id is
// free again for a good configuration.
TEST(service_thread, refuses_an_lcore_eal_did_not_enable_or_a_reader_id_out_of_range) {
    qsbr rcu(1);
    struct bad {
        const char* what;
        service_thread_config cfg;
        std::string message;
    } const cases[] = {
        {"lcore not in EAL's list", {.name = "test-bad", .lcores = {0, 7}, .rcu = rcu.v, .rcu_thread_id = 0},
         "service thread test-bad: lcore 7 is not an EAL lcore"},
        {"lcore beyond RTE_MAX_LCORE", {.name = "test-bad", .lcores = {RTE_MAX_LCORE}},
         "service thread test-bad: lcore " + std::to_string(RTE_MAX_LCORE) + " is not an EAL lcore"},
        {"reader id beyond the QSBR variable", {.name = "test-bad", .lcores = {}, .rcu = rcu.v, .rcu_thread_id = 1},
         "service thread test-bad: RCU reader id 1 out of range"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        unsigned calls = 0;
        service_thread t(c.cfg, [&](uint64_t now) -> uint64_t {
            ++calls;
            return now;
        });
        try {
            t.start();
            ADD_FAILURE() << "started";
        } catch (const std::invalid_argument& e) {
            EXPECT_EQ(e.what(), c.message);
        }
        EXPECT_FALSE(t.running());
        EXPECT_EQ(calls, 0u);
    }
    // Nothing was left registered: the grace period does not wait for a
    // reader that never ran.
    EXPECT_TRUE(rcu.grace_period_ends());
}

}  // namespace
}  // namespace stentor::test

// ---------------------------------------------------------------- a failing mix session

namespace stentor::test {
namespace {

// Two mix sessions on one mixer, driven through its API on the test thread
// with a fake clock: session 7 is good, session 8 gets a frame setting
// Opus cannot encode. The mixer's output comes back on the record ring
// (both sessions record), so the test sees exactly what it published.
struct two_sessions {
    dp::dp_session sess[2]{};
    dp::dp_session* ptrs[2]{&sess[0], &sess[1]};
    dp::dp_snapshot snap{};
    dp::dp_shared sh;
    rte_ring* in = nullptr;
    rte_ring* out = nullptr;

    explicit two_sessions(const std::string& tag) {
        for (uint32_t i = 0; i < 2; ++i) {
            sess[i].id = 7 + i;
            sess[i].index = i;
            sess[i].mode = dp::session_mode_mix;
            sess[i].record = 1;
            sess[i].generation = 100 + i;
        }
        snap.version = 1;
        snap.nb_sessions = 2;
        snap.sessions = ptrs;
        in = rte_ring_create(("mixin_" + tag).c_str(), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
        out = rte_ring_create(("mixout_" + tag).c_str(), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
        sh.snapshot.store(&snap);
        sh.record_ring = out;
    }
    ~two_sessions() {
        for (rte_ring* r : {in, out}) {
            void* obj;
            while (rte_ring_dequeue(r, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
            rte_ring_free(r);
        }
    }
    void speak(uint32_t index, uint16_t seq, uint32_t ts, uint32_t ssrc, const std::vector<uint8_t>& opus) {
        const auto p = rtp_packet(seq, ts, ssrc, opus);
        rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
        ASSERT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(p.size())), p.data(), p.size());
        dp::set_message_session(m, index, sess[index].generation);
        ASSERT_EQ(rte_ring_enqueue(in, m), 0);
    }
    // A mixer reading this snapshot and ring, mixing stereo (the defaults).
    svc::mixer_config config() {
        svc::mixer_config mc;
        mc.pool = test_pool();
        mc.shared = &sh;
        mc.in_ring = in;
        return mc;
    }
    // (ssrc, seq) of every mixed packet published since the last call.
    std::vector<std::pair<uint32_t, uint16_t>> published() {
        std::vector<std::pair<uint32_t, uint16_t>> v;
        void* obj;
        while (rte_ring_dequeue(out, &obj) == 0) {
            auto* m = static_cast<rte_mbuf*>(obj);
            rtp::view rv;
            EXPECT_TRUE(rtp::parse(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, rv));
            v.emplace_back(rv.ssrc, rv.seq);
            rte_pktmbuf_free(m);
        }
        return v;
    }
};

struct bad_frame_case {
    unsigned frame_ms;
    const char* why;
};

// 0 made the old mixer tick forever (a frame of 0 ns never moves the
// deadline); 7 and 1000 are not Opus frame durations.
const bad_frame_case bad_frames[] = {
    {0, "no frame at all"},
    {7, "between Opus durations"},
    {1000, "longer than Opus' 120 ms"},
};

TEST(mixer_session_failure, a_session_opus_cannot_mix_fails_alone_and_the_other_is_served) {
    const size_t frames = 50;
    const auto a = opus_tone(440, frames, 2, 0.3);
    const auto b = opus_tone(660, frames, 2, 0.3);
    int n = 0;
    for (const auto& c : bad_frames) {
        SCOPED_TRACE(c.why);
        two_sessions t(std::to_string(n++));   // ring names must be unique
        const unsigned in_use0 = rte_mempool_in_use_count(test_pool());
        std::vector<std::pair<uint32_t, uint16_t>> out;
        {
            svc::mixer mx(t.config());
            mx.set_session_frame_ms(7, 20);
            mx.set_session_frame_ms(8, c.frame_ms);
            const uint64_t t0 = 1000 * ms;
            for (size_t k = 0; k < frames + 10; ++k) {
                if (k < frames) {
                    t.speak(0, static_cast<uint16_t>(k), 960 * uint32_t(k), 1234, a[k]);
                    t.speak(1, static_cast<uint16_t>(k), 960 * uint32_t(k), 5678, b[k]);
                }
                mx.poll(t0 + k * 20 * ms);
                for (const auto& p : t.published()) out.push_back(p);
            }
            const auto st = mx.stats().snapshot();
            EXPECT_EQ(st.packets_in, 2 * frames);
            EXPECT_EQ(st.decode_errors, 0u);
            EXPECT_EQ(st.encode_errors, 0u);
            // Session 8: failed once, said why, and every packet of it dropped
            // and counted; nothing of it was published.
            EXPECT_EQ(st.session_errors, 1u);
            EXPECT_EQ(st.failed_session_packets, frames);
            EXPECT_EQ(mx.session_error(8), "frame_ms " + std::to_string(c.frame_ms) +
                                               " is not an Opus frame duration (5, 10, 20, 40, 60, 80, 100 or 120 ms)");
            EXPECT_EQ(mx.session_error(7), std::nullopt);
            EXPECT_EQ(mx.nb_speakers(), 1u) << "the failed session holds no decoder";
            // Session 7: one packet per period from its first played frame
            // to 3 concealed periods after its last (as in test_audio), all
            // its own, in sequence.
            EXPECT_EQ(out.size(), frames + 3);
            EXPECT_EQ(st.frames_out, out.size());
            for (size_t i = 0; i < out.size(); ++i) {
                EXPECT_EQ(out[i].first, dp::mix_ssrc(7)) << i;
                if (i > 0) {
                    EXPECT_EQ(static_cast<uint16_t>(out[i].second - out[i - 1].second), 1) << i;
                }
            }
        }
        EXPECT_EQ(in_use0, rte_mempool_in_use_count(test_pool())) << "mbufs leaked";
    }
}

// The failure belongs to the session, not to its id: once the failed
// session ends and a new one under the same id starts with a setting Opus
// can encode, it mixes and the old error is gone.
TEST(mixer_session_failure, a_new_session_under_the_same_id_mixes_again) {
    const auto a = opus_tone(440, 10, 2, 0.3);
    two_sessions t("again");
    svc::mixer mx(t.config());
    mx.set_session_frame_ms(8, 7);
    uint64_t now = 1000 * ms;
    t.speak(1, 0, 0, 5678, a[0]);
    mx.poll(now);
    ASSERT_TRUE(mx.session_error(8).has_value());
    // Session 8 ends; a new session 8 (next generation) takes the slot.
    mx.set_session_frame_ms(8, 20);
    t.sess[1].generation = 102;
    size_t out = 0;
    for (uint32_t k = 0; k < 10; ++k) {
        t.speak(1, static_cast<uint16_t>(k), 960 * k, 5678, a[k]);
        now += 20 * ms;
        mx.poll(now);
        for (const auto& p : t.published()) {
            EXPECT_EQ(p.first, dp::mix_ssrc(8));
            ++out;
        }
    }
    EXPECT_EQ(mx.session_error(8), std::nullopt);
    EXPECT_GT(out, 0u);
    EXPECT_EQ(mx.stats().session_errors, 1u);
}

}  // namespace
}  // namespace stentor::test

// ---------------------------------------------------------------- SSRC churn in a mix

namespace stentor::test {
namespace {

// A mixer counter by its exported name (mixer/<name>); nullopt if the mixer
// has no such counter.
std::optional<uint64_t> mixer_stat(const svc::mixer_stats& s, const std::string& name) {
    std::optional<uint64_t> v;
    s.for_each([&](const char* n, const char*, uint64_t x) {
        if (name == n) v = x;
    });
    return v;
}

// Issue 10, item 2: every new SSRC of a mixed session got an Opus decoder
// (up to 1024 per session). 100 invented SSRCs, two packets each: the
// default cap (16 decoders per mixed session) holds, the refused SSRCs are
// counted once each and logged once each, their packets counted apart.
TEST(mixer_caps, ssrc_churn_gets_at_most_the_cap_of_decoders) {
    const auto a = opus_tone(440, 2, 2, 0.3);
    const unsigned nb_ssrc = 100, cap = 16;
    two_sessions t("churn");
    testing::internal::CaptureStderr();
    svc::mixer mx(t.config());
    uint64_t now = 1000 * ms;
    for (uint32_t k = 0; k < 2; ++k) {
        for (uint32_t s = 0; s < nb_ssrc; ++s) t.speak(0, static_cast<uint16_t>(k), 960 * k, 0x5000 + s, a[k]);
        mx.poll(now);
        now += 20 * ms;
        t.published();
    }
    const std::string log = testing::internal::GetCapturedStderr();
    const auto st = mx.stats().snapshot();
    EXPECT_EQ(mx.nb_speakers(), cap);
    EXPECT_EQ(st.speakers_added, cap);
    EXPECT_EQ(mixer_stat(st, "speakers_refused"), nb_ssrc - cap) << "one per refused SSRC";
    EXPECT_EQ(mixer_stat(st, "refused_packets"), 2 * (nb_ssrc - cap)) << "every packet of a refused SSRC";
    size_t lines = 0;
    for (size_t p = log.find("refused"); p != std::string::npos; p = log.find("refused", p + 1)) ++lines;
    EXPECT_EQ(lines, nb_ssrc - cap) << "logged once per refused SSRC, not per packet:\n" << log;
}

}  // namespace
}  // namespace stentor::test

// ---------------------------------------------------------------- new settings while sessions mix

namespace stentor::test {
namespace {

// One mixed packet as a listener gets it: whose, how large, and whether
// its TOC says stereo (RFC 6716 3.1, bit 2).
struct mixed_packet {
    uint32_t ssrc;
    size_t payload;
    bool stereo;
};

std::vector<mixed_packet> drain_mixed(rte_ring* out) {
    std::vector<mixed_packet> v;
    void* obj;
    while (rte_ring_dequeue(out, &obj) == 0) {
        auto* m = static_cast<rte_mbuf*>(obj);
        rtp::view rv;
        EXPECT_TRUE(rtp::parse(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, rv));
        v.push_back({rv.ssrc, rv.len, rv.len > 0 && (rv.payload[0] & 0x04) != 0});
        rte_pktmbuf_free(m);
    }
    return v;
}

double mean_payload(const std::vector<mixed_packet>& v, uint32_t ssrc, size_t skip) {
    size_t n = 0, sum = 0, seen = 0;
    for (const auto& p : v)
        if (p.ssrc == ssrc && seen++ >= skip) {
            sum += p.payload;
            ++n;
        }
    return n == 0 ? 0.0 : static_cast<double>(sum) / static_cast<double>(n);
}

// Issue 10, "SIGHUP reloads ... mixer settings": a new settings version
// reaches the encoder of a session that is mixing at its next frame
// boundary, read back from libopus (OPUS_GET_BITRATE, OPUS_GET_COMPLEXITY)
// and seen in what it sends (64 -> 16 kbit/s: the packets shrink to a
// quarter); its channel count stays (an encoder's is fixed) while a session
// whose mix starts after the reload gets the new one; a session's
// max_bitrate_kbps caps its encoder; a lowered decoder cap refuses the next
// new SSRC; settings libopus cannot run with are refused and change nothing.
// Before this change the mixer read its settings once, at start.
TEST(mixer_reload, new_settings_reach_running_encoders_at_the_next_frame) {
    const size_t frames = 200;
    const auto a = opus_tone(440, frames, 2, 0.3);
    const auto b = opus_tone(660, frames, 2, 0.3);
    two_sessions t("reload");
    svc::mixer mx(t.config());
    const uint32_t mix7 = dp::mix_ssrc(7), mix8 = dp::mix_ssrc(8);
    EXPECT_EQ(1u, mx.settings_version());
    uint64_t now = 1000 * ms;
    std::vector<mixed_packet> before, after;
    size_t k = 0;
    auto run = [&](size_t until, bool with_8, std::vector<mixed_packet>& out) {
        for (; k < until; ++k) {
            t.speak(0, static_cast<uint16_t>(k), 960 * uint32_t(k), 1234, a[k]);
            if (with_8) t.speak(1, static_cast<uint16_t>(k), 960 * uint32_t(k), 5678, b[k]);
            mx.poll(now);
            now += 20 * ms;
            for (const auto& p : drain_mixed(t.out)) out.push_back(p);
        }
    };
    run(60, false, before);
    const svc::mix_encoder_report at_start{2, 64000, 5, 1};
    EXPECT_EQ(mx.encoder_report(7), at_start);
    EXPECT_EQ(mx.encoder_report(8), std::nullopt) << "session 8 has not started mixing";

    // Refused: nothing changes, not even the version.
    for (const auto& [what, bad] : std::vector<std::pair<std::string, svc::mix_settings>>{
             {"bitrate below Opus' 6 kbit/s", {.bitrate = 5999}},
             {"three channels", {.channels = 3}},
             {"complexity 11", {.complexity = 11}},
             {"no decoder at all", {.max_decoders_per_session = 0}}}) {
        SCOPED_TRACE(what);
        EXPECT_THROW(mx.set_settings(bad), std::invalid_argument);
        EXPECT_EQ(1u, mx.settings_version());
        EXPECT_EQ(svc::mix_settings{}, mx.settings());
    }

    svc::mix_settings next;
    next.channels = 1;
    next.bitrate = 16000;
    next.complexity = 2;
    next.max_decoders_per_session = 1;
    EXPECT_EQ(2u, mx.set_settings(next));
    EXPECT_EQ(next, mx.settings());
    EXPECT_EQ(mx.encoder_report(7), at_start) << "the mixer thread has not polled since";
    mx.set_session_max_bitrate(8, 12000);   // session 8's max_bitrate_kbps = 12
    run(200, true, after);

    const auto st = mx.stats().snapshot();
    EXPECT_EQ(1u, st.settings_loaded);
    EXPECT_EQ(1u, st.encoders_retuned) << "session 7 once; session 8 started with version 2";
    const svc::mix_encoder_report retuned{2, 16000, 2, 2};
    EXPECT_EQ(mx.encoder_report(7), retuned) << "channels stay, bitrate and complexity follow";
    const svc::mix_encoder_report started_after{1, 12000, 2, 2};
    EXPECT_EQ(mx.encoder_report(8), started_after) << "new channel count; capped at its max_bitrate_kbps";
    // What listeners get: 64 kbit/s is 160 bytes per 20 ms frame, 16 kbit/s
    // 40 (VBR varies around it; the first frames after a change settle).
    const double b7 = mean_payload(before, mix7, 10), a7 = mean_payload(after, mix7, 10);
    std::printf("[ reload   ] session 7 mean payload %.1f B at 64 kbit/s, %.1f B at 16 kbit/s\n", b7, a7);
    EXPECT_GT(b7, 120.0);
    EXPECT_LT(a7, 60.0);
    // A stereo encoder may code a frame as mono at 16 kbit/s (libopus
    // decides per frame), a mono one never codes stereo: session 8's TOCs
    // all say mono.
    for (const auto& p : before) EXPECT_TRUE(p.stereo);
    size_t n8 = 0;
    for (const auto& p : after)
        if (p.ssrc == mix8) {
            EXPECT_FALSE(p.stereo) << "session 8 started after the reload: mono";
            ++n8;
        }
    EXPECT_GT(n8, 100u);
    EXPECT_EQ(0u, st.encode_errors);

    // The decoder cap of the new version (1): a second SSRC in session 7 is refused.
    const auto c = opus_tone(550, 2, 2, 0.3);
    t.speak(0, 0, 0, 4321, c[0]);
    mx.poll(now);
    drain_mixed(t.out);
    EXPECT_EQ(1u, mx.stats().snapshot().speakers_refused);
}

// The sequence lock under a real race: a control thread writes versions as
// fast as it can while the mixer thread polls (no session: a poll is then
// little more than the settings read, so the two race millions of times);
// every version the mixer takes was written whole (its seven fields derive
// from one number), never a mix of two. Without the sequence check (reading
// whenever seq moved) this run counted over a million polls that ran with a
// torn version, on one CPU (the writer preempted mid-write) as on two.
TEST(mixer_reload, a_version_is_taken_whole_or_not_at_all) {
    two_sessions t("seqlock");
    svc::mixer mx(t.config());
    auto of = [](unsigned j) {
        svc::mix_settings s;
        s.channels = 1 + j % 2;
        s.bitrate = 6000 + j * 1000;
        s.complexity = j % 11;
        s.jitter_ms = j;
        s.plc_max_frames = j % 50;
        s.speaker_timeout_ms = 1000 + j;
        s.max_decoders_per_session = 1 + j;
        return s;
    };
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        // EAL pinned this process's main thread to one CPU and a new thread
        // inherits that: let the writer run on any CPU, so that it races
        // the poll loop for real where the host has more than one.
        cpu_set_t all;
        CPU_ZERO(&all);
        for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
        pthread_setaffinity_np(pthread_self(), sizeof all, &all);
        for (unsigned i = 0; !stop.load(std::memory_order_relaxed); ++i) mx.set_settings(of(i % 500));
    });
    ASSERT_TRUE(eventually([&] { return mx.settings_version() > 100; })) << "the writer runs";
    const uint64_t v0 = mx.settings_version();
    uint64_t torn = 0, polls = 0;
    // Until 10 000 versions were taken, at most 20 M polls (about a second).
    for (; polls < 20000000 && mx.stats().settings_loaded < 10000; ++polls) {
        mx.poll(1000 * ms + polls);
        const svc::mix_settings& s = mx.settings_in_use();
        if (s == svc::mix_settings{}) continue;   // the constructor's version
        if (!(s == of((s.bitrate - 6000) / 1000))) ++torn;
    }
    const uint64_t written = mx.settings_version() - v0;
    stop.store(true);
    writer.join();
    const auto taken = mx.stats().snapshot().settings_loaded;
    std::printf("[ seqlock  ] %llu polls, %llu versions written meanwhile, %llu taken, %llu torn\n",
                static_cast<unsigned long long>(polls), static_cast<unsigned long long>(written),
                static_cast<unsigned long long>(taken), static_cast<unsigned long long>(torn));
    EXPECT_EQ(0u, torn);
    EXPECT_GT(written, 1000u) << "the race was run";
    EXPECT_GT(taken, 0u) << "a writer that never stops still leaves the reader gaps";
}

}  // namespace
}  // namespace stentor::test
