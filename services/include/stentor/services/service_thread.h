// A service's thread: runs one step function over and over on a thread
// pinned to the CPUs of a list of EAL lcores, as a reader of the data
// plane's snapshots (rte_rcu_qsbr) that is online only while it works, and
// asleep between steps. Several relays share small machines (two cores):
// a service thread never busy-polls; it runs again when its step asks to,
// and a stop() wakes it at once.
//
// A service may split its step in two: the step proper, online as a
// reader, and an offline step run right after the thread went offline, for
// work that blocks (the recorder's open, fsync, close, rename): a reader
// that blocks while online holds every publish's grace period for as long
// as the disk takes (issue 10, item 6).
//
// A step that throws does not end the thread (and with it the process, via
// std::terminate): the exception is counted, kept as last_error(), logged
// on stderr, and the thread goes on after failure_backoff_ns. Services
// catch what belongs to one session themselves (mixer::session_error()),
// so that one failing session does not cost the others a step; this is the
// net below that.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <rte_rcu_qsbr.h>

#include "stentor/dp_counters.h"

namespace stentor::svc {

// Counters of one service thread (its writer), read racily by the control
// plane: exported as <service>/thread/<field>. Append only.
#define STENTOR_FOREACH_SERVICE_THREAD_STAT(_) \
    _(steps, "steps run: online as a snapshot reader, the service's work, offline again (then its offline work)") \
    _(failures, "steps that threw: counted, logged on stderr, and the thread went on")

struct alignas(dp::cache_line) service_thread_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_SERVICE_THREAD_STAT, service_thread_stats)
};

struct service_thread_config {
    std::string name;                   // thread name (top, perf; first 15 characters)
    std::vector<unsigned> lcores;       // EAL lcores whose CPUs it may run on; empty: not pinned
    rte_rcu_qsbr* rcu = nullptr;        // the snapshot's QSBR variable; nullptr: not a reader
    unsigned rcu_thread_id = 0;         // its reader id in `rcu`
    uint64_t failure_backoff_ns = 100000000;   // pause after a step threw
};

class service_thread {
public:
    // One step of the service at CLOCK_MONOTONIC time `now_ns`; returns when
    // to step again (<= now: at once). Sleeps longer than max_sleep_ns are
    // cut to it.
    using step_fn = std::function<uint64_t(uint64_t now_ns)>;
    static constexpr uint64_t max_sleep_ns = 1000000000;

    // `offline` (may be empty) runs after every `step`, with the thread
    // offline as a reader; it returns a wake time too, and the thread sleeps
    // until the earlier of the two.
    service_thread(service_thread_config cfg, step_fn step, step_fn offline = {});
    ~service_thread();
    service_thread(const service_thread&) = delete;
    service_thread& operator=(const service_thread&) = delete;

    // Registers the RCU reader and starts the thread. Throws
    // std::invalid_argument (an lcore that EAL did not enable, an RCU id out
    // of range) before anything started; no-op when running.
    void start();
    // Wakes the thread, waits for its step to finish, joins, unregisters the
    // reader. Idempotent.
    void stop();
    bool running() const noexcept { return _thread.joinable(); }

    service_thread_stats stats() const noexcept { return _stats.snapshot(); }
    std::string last_error() const;
    const std::string& name() const noexcept { return _cfg.name; }

private:
    void run(std::vector<unsigned> cpus);
    void failed(const char* what);

    service_thread_config _cfg;
    step_fn _step;
    step_fn _offline;
    std::thread _thread;
    mutable std::mutex _mu;             // _stop and _last_error; the sleep waits on _cv
    std::condition_variable _cv;
    bool _stop = false;
    std::string _last_error;
    service_thread_stats _stats{};
};

}  // namespace stentor::svc
