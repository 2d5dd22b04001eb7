// The control plane around a running relay: admission, the overload
// controller, counter rates and the publisher. No transport here: the HTTP
// API (api.h), /metrics (metrics.h) and telemetry (telemetry.h) are faces
// that read it.
//
// Publishing: actions change the model under the state mutex and return; a
// publisher thread wakes as soon as something is pending and publishes it
// (build, swap, RCU grace period) so that everything that arrived meanwhile
// rides the same publish (group commit). A write is acknowledged once the
// publish covering it has passed its grace period: acknowledged means
// forwarding. Every 100 ms the same thread runs the overload controller and
// samples counter rates.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "admission.h"
#include "config.h"
#include "join_desk.h"
#include "join_mint.h"
#include "overload.h"
#include "relay.h"
#include "stentor/dp_counters.h"

namespace stentor::fleet {
class trunk_watch;
}

namespace stentor::control {

class trunk_reconciler;

struct rate_view {
    struct port {
        std::string name;
        double rx_pps, tx_pps, rx_bps, tx_bps;
    };
    struct lcore {
        unsigned lcore_id;
        double rx_pps, tx_pps, tx_bps, busy_ratio;
    };
    double interval_s = 0;
    std::vector<port> ports;
    std::vector<lcore> lcores;
};

struct control_options {
    bool publisher = true;                              // run the publisher/tick thread
    std::chrono::milliseconds tick{100};                // overload controller and rates
    std::chrono::microseconds min_publish_gap{500};     // batch window between publishes
    overload_options overload{};
};

// The keys of `next` that `running` holds under the same id with another
// secret ("join.keys[i].secret"): a key file rewritten in place changes no
// profile text, so changed_settings() cannot see it. stentord adds these to
// a SIGHUP's changed settings.
std::vector<std::string> join_secret_changes(const join_config& running, const join_config& next);

class control_plane {
public:
    control_plane(relay& r, const profile& p, control_options o = {});
    ~control_plane();
    control_plane(const control_plane&) = delete;
    control_plane& operator=(const control_plane&) = delete;

    void start();
    void stop();

    // Wait until the changes made so far are published (acknowledge =
    // forwarding), at most `wait`. True once they are; false if the wait ran
    // out first (a reader holding up the grace period, a stalled publisher):
    // the changes stay accepted and go out with the next publish that
    // completes, so the caller must say "accepted, not yet forwarding".
    // With no publisher thread (tests on launch=false relays) publishes
    // inline and returns true.
    bool commit(std::chrono::milliseconds wait = std::chrono::seconds(10));
    // After commit() of a join: wait, at most limits.join_resolve_ms, until
    // the next hops of these listener addresses have answered ARP, so that
    // an acknowledged join hears the next packet. Returns the next hops
    // still unresolved (empty: every listener is heard).
    std::vector<uint32_t> wait_resolved(const std::vector<uint32_t>& listener_ips);
    // One controller tick from the relay's counters (the thread calls it
    // every `tick`; tests may call it themselves).
    void tick(std::chrono::steady_clock::time_point now);

    // SIGHUP: apply `next`, a profile whose `changed` settings (dotted
    // paths, changed_settings()) differ from the running one. All or
    // nothing: if any changed setting cannot change live the reload is
    // refused, each such setting with its reason, and nothing changes.
    // Live: [limits] except table sizes, [overload], [mixer] (running
    // mixes take the new bitrate, complexity, jitter, concealment, timeout
    // and decoder cap at their next frame boundary; `channels` applies to
    // sessions whose mix starts afterwards), and join.keys, mint_key_id and
    // token_ttl_s on a relay that started with keys (the data plane
    // verifies with the new key set once an RCU grace period has passed,
    // new tokens are minted with the new minting key; at least one key must
    // stay). Everything else needs a restart.
    struct reload_result {
        std::vector<std::string> applied;    // settings now in effect
        std::vector<std::string> refused;    // "setting: why", when the reload was refused
        std::vector<std::string> notes;      // "setting: when", applied settings that do not act at once
    };
    reload_result reload(const profile& next, const std::vector<std::string>& changed);
    unsigned join_resolve_ms() const { return _join_resolve_ms.load(std::memory_order_relaxed); }
    // Join tokens are minted with the running keys, which a SIGHUP may
    // rotate: the minter of the moment (keep it for a whole batch), and the
    // [join] settings the relay runs with now (prof().join is the start's).
    std::shared_ptr<const token_minter> minter() const;
    join_config running_join() const;

    relay& rel() { return _r; }
    relay_state& state() { return _r.state(); }
    admission& adm() { return *_adm; }
    overload_controller& overload() { return *_ovl; }
    // The join desk when [join] has keys (listeners join by token), else nullptr.
    join_desk* desk() { return _desk.get(); }
    const profile& prof() const { return _p; }
    rate_view rates() const;
    dp::lcore_counters totals() const { return _r.totals(); }
    uint64_t publishes() const { return _publishes.load(); }
    // [fleet]: the trunks' reconciler, for /metrics (stentord sets it when
    // the trunks start and clears it before they stop), and the watch that
    // feeds it. with_trunks calls f under the lock that set_trunks takes,
    // so both outlive it; set_trunks(nullptr) clears both.
    void set_trunks(const trunk_reconciler* r, const fleet::trunk_watch* w = nullptr);
    void with_trunks(const std::function<void(const trunk_reconciler&, const fleet::trunk_watch*)>& f) const;

private:
    void run();

    relay& _r;
    profile _p;
    control_options _o;
    std::unique_ptr<admission> _adm;
    std::unique_ptr<overload_controller> _ovl;
    std::unique_ptr<join_desk> _desk;
    std::thread _thr;
    std::atomic<bool> _stop{false};
    std::atomic<uint64_t> _publishes{0};
    std::atomic<unsigned> _join_resolve_ms{0};
    mutable std::mutex _join_mu;                        // _join and _minter (SIGHUP writes, API reads)
    join_config _join;
    std::shared_ptr<const token_minter> _minter;
    std::vector<uint32_t> _port_speeds;                 // reported at start (admission)
    mutable std::mutex _trunks_mu;
    const trunk_reconciler* _trunks = nullptr;
    const fleet::trunk_watch* _trunk_watch = nullptr;
    mutable std::mutex _rates_mu;
    rate_view _rates;
    dp::lcore_counters _prev_total{};
    std::vector<dp::lcore_counters> _prev_lcore;
    std::vector<std::pair<uint64_t, uint64_t>> _prev_port_bytes;   // ibytes, obytes
    std::chrono::steady_clock::time_point _next_ingress_mark{};     // SRTP ingress marks (tick)
    std::chrono::steady_clock::time_point _prev_at{};
    bool _have_prev = false;
};

}  // namespace stentor::control
