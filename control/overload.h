// Drop-on-overload controller. Every tick (100 ms in stentord) it reads how
// many replicas the data plane failed to deliver (deadline misses per tier,
// TX-queue-full drops and the fan-out's own hand-off queues, never the
// mixer's or the recorder's). Fan-out serves tiers in order,
// so overload lands on the lowest populated tier first; when that keeps
// happening the controller sheds whole listeners of the lowest tier, newest
// first, and caps admission at the load that was carried, instead of letting
// every listener's audio break up. When misses stay away for a minimum hold
// time it lifts the cap (hysteresis: separate enter and exit thresholds).
// Shed listeners are not re-added: clients rejoin (and are admitted again).
// Speakers are never shed.
//
// tick() takes counter deltas and the time, so tests drive it without a
// running daemon; sample() builds the deltas from a relay's counters.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "stentor/dp_counters.h"

namespace stentor::control {

class relay_state;
class admission;
struct shed_record;

struct overload_options {
    double enter_miss_ratio = 0.001;     // undelivered / attempted replicas in a tick that counts as "missing"
    unsigned enter_ticks = 3;            // consecutive missing ticks before shedding starts
    double exit_miss_ratio = 0.0;        // a tick at or below this counts as "clean"
    std::chrono::milliseconds min_hold{2000};   // clean for this long before the admission cap is lifted
    unsigned cooldown_ticks = 2;         // after a shed, ticks to watch its effect before shedding again
    double shed_margin = 0.0;
    // Misses in a tick where the fan-out was stalled (did not run) for at
    // least a tenth of it are a stall, not saturation: nobody is shed.            // shed this fraction more than the measured misses per packet
    size_t max_shed_per_tick = 200000;
    size_t max_events = 1024;            // events kept for GET /events
    // After the hold, the admission cap rises linearly to the computed
    // capacity over this time (then it is lifted): back to full capacity at
    // most min_hold + ramp after the last missing tick.
    std::chrono::milliseconds ramp{5000};
};

// The profile's [overload] section as controller options.
overload_options overload_options_from(const overload_config& c);

// Counter movement over one tick (relay totals, current minus previous).
struct overload_sample {
    uint64_t rtp_in = 0;                 // speaker packets accepted
    uint64_t replicas_out = 0;
    std::array<uint64_t, dp::max_tiers> tier_misses{};
    uint64_t tx_full = 0;
    uint64_t fanout_full = 0;            // fan-out shard rings and job tables full (dp::is_fanout_overload)
    uint64_t busy_cycles = 0;
    uint64_t idle_cycles = 0;
    uint64_t stalls = 0;                 // the fan-out did not run for a while (dp: stall_us)
    uint64_t stall_cycles = 0;
};
overload_sample sample_delta(const dp::lcore_counters& prev, const dp::lcore_counters& cur);

struct shed_event {
    uint64_t id;
    int64_t unix_ms;
    unsigned tier;
    uint64_t listeners;
    std::map<uint32_t, uint64_t> by_session;
    double miss_ratio;
    double cap_pps;                      // admission cap set after the shed
    std::string reason;                  // what the controller saw
};

struct overload_status {
    std::string state;                   // "normal" | "overloaded" | "recovering"
    uint64_t stall_ticks = 0;            // ticks with misses while the fan-out was stalled: nobody shed
    std::string last_stall;              // when and how long, for the operator
    uint64_t ticks;
    uint64_t enter_count;                // times the controller entered overload
    uint64_t shed_events;
    uint64_t listeners_shed;
    std::array<uint64_t, dp::max_tiers> shed_by_tier;
    double last_miss_ratio;
    double busy_ratio;
    std::optional<double> cap_pps;
};

class overload_controller {
public:
    using clock = std::chrono::steady_clock;
    overload_controller(relay_state& st, admission* adm, overload_options o = {});

    // One control step; returns the listeners shed in this tick.
    uint64_t tick(const overload_sample& d, clock::time_point now);

    overload_status status() const;
    // New thresholds (SIGHUP reload): from the next tick on; the state
    // (overloaded, streaks, cap) carries over.
    void set_options(const overload_options& o);
    std::vector<shed_event> events(uint64_t after_id = 0) const;
    // Told which listeners each shed removed (the join desk forgets their
    // bindings: a shed listener that asks again is a new join, admitted or
    // refused like one). Set before the first tick; called under the
    // controller's lock, so it must not call back into the controller.
    void set_shed_observer(std::function<void(const std::vector<shed_record>&)> fn) { _on_shed = std::move(fn); }

private:
    uint64_t shed(const overload_sample& d, double ratio);

    relay_state& _st;
    admission* _adm;
    overload_options _o;
    mutable std::mutex _mu;
    bool _overloaded = false;
    unsigned _bad_streak = 0;
    unsigned _cooldown = 0;
    std::optional<clock::time_point> _clean_since;
    std::optional<clock::time_point> _ramp_since;   // recovering: cap rising since
    double _ramp_from = 0;
    overload_status _status{};
    std::deque<shed_event> _events;
    uint64_t _next_event = 1;
    std::function<void(const std::vector<shed_record>&)> _on_shed;
};

}  // namespace stentor::control
