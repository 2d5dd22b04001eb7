#include "stentor/services/service_thread.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include <rte_lcore.h>
#include <spdlog/spdlog.h>

#include "stentor/services/clock.h"

namespace stentor::svc {

service_thread::service_thread(service_thread_config cfg, step_fn step, step_fn offline)
    : _cfg(std::move(cfg)), _step(std::move(step)), _offline(std::move(offline)) {}

service_thread::~service_thread() { stop(); }

void service_thread::start() {
    if (running()) return;
    // The CPUs of every listed lcore, checked here so that a bad list is an
    // error of start() and not a thread running where it should not.
    std::vector<unsigned> cpus;
    for (unsigned lcore : _cfg.lcores) {
        if (lcore >= RTE_MAX_LCORE || !rte_lcore_is_enabled(lcore))
            throw std::invalid_argument("service thread " + _cfg.name + ": lcore " + std::to_string(lcore) +
                                        " is not an EAL lcore");
        const rte_cpuset_t cs = rte_lcore_cpuset(lcore);
        for (unsigned c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &cs) && std::find(cpus.begin(), cpus.end(), c) == cpus.end()) cpus.push_back(c);
    }
    if (_cfg.rcu != nullptr && rte_rcu_qsbr_thread_register(_cfg.rcu, _cfg.rcu_thread_id) != 0)
        throw std::invalid_argument("service thread " + _cfg.name + ": RCU reader id " +
                                    std::to_string(_cfg.rcu_thread_id) + " out of range");
    {
        std::lock_guard lk(_mu);
        _stop = false;
    }
    try {
        _thread = std::thread([this, cpus = std::move(cpus)]() mutable { run(std::move(cpus)); });
    } catch (...) {
        if (_cfg.rcu != nullptr) rte_rcu_qsbr_thread_unregister(_cfg.rcu, _cfg.rcu_thread_id);
        throw;
    }
}

void service_thread::stop() {
    if (!running()) return;
    {
        std::lock_guard lk(_mu);
        _stop = true;
    }
    _cv.notify_all();
    _thread.join();
    if (_cfg.rcu != nullptr) rte_rcu_qsbr_thread_unregister(_cfg.rcu, _cfg.rcu_thread_id);
}

std::string service_thread::last_error() const {
    std::lock_guard lk(_mu);
    return _last_error;
}

void service_thread::failed(const char* what) {
    const uint64_t n = ++_stats.failures;
    {
        std::lock_guard lk(_mu);
        _last_error = what;
    }
    spdlog::error("stentor: service thread {}: step failed ({} so far), going on: {}", _cfg.name, n, what);
}

void service_thread::run(std::vector<unsigned> cpus) {
    // Pinned and named from inside, before the first step runs anywhere else.
    if (!cpus.empty()) {
        cpu_set_t cs;
        CPU_ZERO(&cs);
        for (unsigned c : cpus) CPU_SET(c, &cs);
        pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
    }
    pthread_setname_np(pthread_self(), _cfg.name.substr(0, 15).c_str());
    rte_rcu_qsbr* const rcu = _cfg.rcu;
    const unsigned id = _cfg.rcu_thread_id;
    std::unique_lock lk(_mu);
    while (!_stop) {
        lk.unlock();
        const uint64_t now = mono_ns();
        uint64_t wake;
        // Online only while stepping: asleep, the thread never delays a
        // publish's grace period. Offline again even when the step threw,
        // or every later publish would wait for this reader forever.
        if (rcu != nullptr) rte_rcu_qsbr_thread_online(rcu, id);
        try {
            wake = _step(now);
        } catch (const std::exception& e) {
            failed(e.what());
            wake = now + _cfg.failure_backoff_ns;
        } catch (...) {
            failed("unknown exception");
            wake = now + _cfg.failure_backoff_ns;
        }
        if (rcu != nullptr) {
            rte_rcu_qsbr_quiescent(rcu, id);
            rte_rcu_qsbr_thread_offline(rcu, id);
        }
        if (_offline) {
            const uint64_t t = mono_ns();
            try {
                wake = std::min(wake, _offline(t));
            } catch (const std::exception& e) {
                failed(e.what());
                wake = std::min(wake, t + _cfg.failure_backoff_ns);
            } catch (...) {
                failed("unknown exception");
                wake = std::min(wake, t + _cfg.failure_backoff_ns);
            }
        }
        ++_stats.steps;
        lk.lock();
        const uint64_t after = mono_ns();
        if (wake > after && !_stop)
            _cv.wait_for(lk, std::chrono::nanoseconds(std::min(wake - after, max_sleep_ns)), [this] { return _stop; });
    }
}

}  // namespace stentor::svc
