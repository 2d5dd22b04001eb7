// The service thread (services/include/stentor/services/service_thread.h)
// with real EAL lcores, a real rte_rcu_qsbr variable and a real thread: a
// step that throws is counted and the thread goes on, the RCU reader is
// offline whenever the thread is not stepping (also after a throw), the
// thread runs on its lcores' CPUs, sleeps when its step asks to, and a bad
// lcore or reader id is refused before anything starts.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>

#include "stentor/services/service_thread.h"

namespace stentor::test {
namespace {

using svc::service_thread;
using svc::service_thread_config;

constexpr uint64_t ms = 1000000;

// Bounded wait for a condition another thread makes true; false on timeout.
bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

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
        EXPECT_EQ(t.failures(), 1u);
        EXPECT_EQ(t.last_error(), c.last_error);
        EXPECT_TRUE(rcu.grace_period_ends()) << "the reader stayed online after the throw: publishes would hang";
        t.stop();
        EXPECT_FALSE(t.running());
        EXPECT_EQ(t.failures(), 1u);
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
