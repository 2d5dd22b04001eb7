// systemd integration (docs/operations.md, "Install as a service"): the
// unit is Type=notify; stentord says READY=1 once its ports are up and the
// API listens, RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1
// when it starts to drain, and pings the watchdog (WatchdogSec=) from a
// thread that first checks that the workers and the control plane still
// run. Without NOTIFY_SOCKET (not started by systemd) every call is a no-op.
// libsystemd's sd_notify does the talking.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace stentor::control {

// What the watchdog compares between two of its checks: every worker's
// loop cycle count (busy + idle + stall: moves on every iteration), the
// control plane's tick count and the main loop's.
struct liveness_sample {
    std::vector<uint64_t> worker_cycles;   // per worker lcore
    uint64_t control_ticks = 0;
    uint64_t main_loops = 0;
};
// Why the relay is not alive (the first part that did not move between
// `prev` and `cur`), or nullopt. `lcores` names the workers.
std::optional<std::string> not_alive(const liveness_sample& prev, const liveness_sample& cur,
                                     const std::vector<unsigned>& lcores);

class service_notifier {
public:
    service_notifier();
    ~service_notifier();
    service_notifier(const service_notifier&) = delete;
    service_notifier& operator=(const service_notifier&) = delete;

    bool enabled() const { return _enabled; }
    // 0 when systemd asked for no watchdog.
    std::chrono::microseconds watchdog_interval() const { return _watchdog; }

    void ready(std::string_view status);
    void reloading();
    void stopping();
    void status(std::string_view status);

    // Ping the watchdog every half interval while `sample` shows every part
    // moving; once it does not, stop pinging (systemd then kills and
    // restarts the service) and log which part stopped. No-op without a
    // watchdog.
    void start_watchdog(std::function<liveness_sample()> sample, std::vector<unsigned> lcores);
    void stop_watchdog();

private:
    void send(const std::string& msg);

    bool _enabled = false;
    std::chrono::microseconds _watchdog{0};
    std::thread _thr;
    std::mutex _mu;
    std::condition_variable _cv;
    bool _stop = false;
};

}  // namespace stentor::control
