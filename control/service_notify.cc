#include "service_notify.h"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace stentor::control {

std::optional<std::string> not_alive(const liveness_sample& prev, const liveness_sample& cur,
                                     const std::vector<unsigned>& lcores) {
    for (size_t i = 0; i < cur.worker_cycles.size() && i < prev.worker_cycles.size(); ++i)
        if (cur.worker_cycles[i] == prev.worker_cycles[i])
            return fmt::format("worker lcore {} has not run its loop since the last check",
                               i < lcores.size() ? lcores[i] : static_cast<unsigned>(i));
    if (cur.worker_cycles.size() != prev.worker_cycles.size()) return std::string("the set of workers changed");
    if (cur.control_ticks == prev.control_ticks) return std::string("the control plane's tick has not run");
    if (cur.main_loops == prev.main_loops) return std::string("the main loop has not run");
    return std::nullopt;
}

service_notifier::service_notifier() {
    _enabled = std::getenv("NOTIFY_SOCKET") != nullptr;
    uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is us.
    if (sd_watchdog_enabled(0, &usec) > 0) _watchdog = std::chrono::microseconds(usec);
}

service_notifier::~service_notifier() { stop_watchdog(); }

void service_notifier::send(const std::string& msg) {
    if (!_enabled) return;
    const int r = sd_notify(0, msg.c_str());
    if (r < 0) spdlog::warn("systemd: sd_notify({}) failed: {}", msg.substr(0, msg.find('\n')), std::strerror(-r));
}

void service_notifier::ready(std::string_view status) { send(fmt::format("READY=1\nSTATUS={}", status)); }
void service_notifier::reloading() { send("RELOADING=1\nSTATUS=reloading the profile"); }
void service_notifier::stopping() { send("STOPPING=1\nSTATUS=draining"); }
void service_notifier::status(std::string_view s) { send(fmt::format("STATUS={}", s)); }

void service_notifier::start_watchdog(std::function<liveness_sample()> sample, std::vector<unsigned> lcores) {
    if (!_enabled || _watchdog.count() == 0 || _thr.joinable()) return;
    _stop = false;
    _thr = std::thread([this, sample = std::move(sample), lcores = std::move(lcores)] {
        const auto period = _watchdog / 2;
        liveness_sample prev = sample();
        bool reported = false;
        std::unique_lock lk(_mu);
        while (!_cv.wait_for(lk, period, [this] { return _stop; })) {
            lk.unlock();
            liveness_sample cur = sample();
            const auto why = not_alive(prev, cur, lcores);
            if (!why) {
                send("WATCHDOG=1");
                if (reported) spdlog::warn("watchdog: running again; pinging systemd again");
                reported = false;
            } else if (!reported) {
                spdlog::critical("watchdog: {}: not pinging systemd (it restarts the service after WatchdogSec)",
                                 *why);
                reported = true;
            }
            prev = std::move(cur);
            lk.lock();
        }
    });
}

void service_notifier::stop_watchdog() {
    {
        std::lock_guard g(_mu);
        _stop = true;
    }
    _cv.notify_all();
    if (_thr.joinable()) _thr.join();
}

}  // namespace stentor::control
