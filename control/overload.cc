#include "overload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <spdlog/spdlog.h>

#include "admission.h"
#include "state.h"

namespace stentor::control {

overload_sample sample_delta(const dp::lcore_counters& prev, const dp::lcore_counters& cur) {
    overload_sample d;
    auto sub = [](uint64_t a, uint64_t b) { return a >= b ? a - b : 0; };
    d.rtp_in = sub(cur.rtp_in, prev.rtp_in);
    d.replicas_out = sub(cur.replicas_out, prev.replicas_out);
    for (size_t t = 0; t < dp::max_tiers; ++t) d.tier_misses[t] = sub(cur.tier_misses[t], prev.tier_misses[t]);
    d.tx_full = sub(cur.drop(dp::drop_reason::tx_full), prev.drop(dp::drop_reason::tx_full));
    // Only the fan-out's own queues: a late mixer or a slow recording disk
    // (mixer_ring_full, record_ring_full) is no reason to shed listeners.
    for (size_t r = 0; r < dp::nb_drop_reasons; ++r)
        if (dp::is_fanout_overload(static_cast<dp::drop_reason>(r)))
            d.fanout_full += sub(cur.drops[r], prev.drops[r]);
    d.busy_cycles = sub(cur.busy_cycles, prev.busy_cycles);
    d.stalls = sub(cur.stalls, prev.stalls);
    d.stall_cycles = sub(cur.stall_cycles, prev.stall_cycles);
    d.idle_cycles = sub(cur.idle_cycles, prev.idle_cycles);
    return d;
}

overload_options overload_options_from(const overload_config& c) {
    overload_options o;
    o.enter_miss_ratio = c.enter_miss_ratio;
    o.enter_ticks = c.enter_ticks;
    o.exit_miss_ratio = c.exit_miss_ratio;
    o.min_hold = std::chrono::milliseconds(c.hold_ms);
    o.ramp = std::chrono::milliseconds(c.ramp_ms);
    o.cooldown_ticks = c.cooldown_ticks;
    o.shed_margin = c.shed_margin;
    o.max_shed_per_tick = c.max_shed_per_tick;
    return o;
}

void overload_controller::set_options(const overload_options& o) {
    std::lock_guard g(_mu);
    _o = o;
}

overload_controller::overload_controller(relay_state& st, admission* adm, overload_options o)
    : _st(st), _adm(adm), _o(o) {
    _status.state = "normal";
}

uint64_t overload_controller::tick(const overload_sample& d, clock::time_point now) {
    std::lock_guard g(_mu);
    ++_status.ticks;
    uint64_t missed = d.tx_full;
    for (auto m : d.tier_misses) missed += m;
    const double attempted = static_cast<double>(d.replicas_out + missed);
    const double ratio = attempted > 0 ? static_cast<double>(missed) / attempted : 0.0;
    // A full fan-out hand-off loses whole packets for a shard: always "missing".
    bool bad = ratio > _o.enter_miss_ratio || d.fanout_full > 0;
    // A stall that took a tenth of the tick or more explains its misses; a
    // few short preemptions inside a saturated tick do not.
    const uint64_t all_cycles = d.busy_cycles + d.idle_cycles + d.stall_cycles;
    const bool stalled = bad && d.stalls > 0 && d.stall_cycles * 10 >= all_cycles;
    // Misses in a tick where the fan-out did not run are a stall, not
    // saturation: count it, say it, shed nobody (the stall is over by the
    // time we see it, and cutting listeners would not have helped).
    if (stalled) {
        bad = false;
        ++_status.stall_ticks;
        char why[128];
        std::snprintf(why, sizeof why, "%llu stall(s), %.1f Mcycles not run, miss ratio %.4f: nobody shed",
                      static_cast<unsigned long long>(d.stalls), static_cast<double>(d.stall_cycles) / 1e6, ratio);
        _status.last_stall = why;
        spdlog::warn("overload: stall: {}", why);
    }
    const bool clean = ratio <= _o.exit_miss_ratio && d.fanout_full == 0;
    _status.last_miss_ratio = ratio;
    const uint64_t cyc = d.busy_cycles + d.idle_cycles;
    _status.busy_ratio = cyc > 0 ? static_cast<double>(d.busy_cycles) / static_cast<double>(cyc) : 0.0;
    if (_cooldown > 0) --_cooldown;
    uint64_t n = 0;
    if (stalled) {
        // neither counts towards shedding nor towards the hold
    } else if (!_overloaded) {
        _bad_streak = bad ? _bad_streak + 1 : 0;
        if (_bad_streak >= _o.enter_ticks) {
            _overloaded = true;
            ++_status.enter_count;
            _status.state = "overloaded";
            _clean_since.reset();
            n = shed(d, ratio);
        }
    } else if (bad) {
        _clean_since.reset();
        if (_ramp_since) {
            _ramp_since.reset();   // missing again on the way up: hold the cap where it is
            _status.state = "overloaded";
        }
        if (_cooldown == 0) n = shed(d, ratio);
    } else if (clean) {
        if (!_clean_since) _clean_since = now;
        if (now - *_clean_since >= _o.min_hold) {
            // Load stayed low: the cap rises linearly to the planned
            // capacity over `ramp`, then is lifted. A miss on the way up
            // re-enters overload at what was carried then.
            if (!_ramp_since) {
                _ramp_since = now;
                _ramp_from = _status.cap_pps.value_or(0);
                _status.state = "recovering";
            }
            const double f = _o.ramp.count() > 0
                                 ? std::chrono::duration<double>(now - *_ramp_since) / std::chrono::duration<double>(_o.ramp)
                                 : 1.0;
            const double full = _adm != nullptr ? _adm->report().fanout_capacity_pps : 0;
            if (f >= 1.0 || _ramp_from >= full) {
                _overloaded = false;
                _bad_streak = 0;
                _ramp_since.reset();
                _status.state = "normal";
                _status.cap_pps.reset();
                if (_adm != nullptr) _adm->set_overload_cap(std::nullopt);
            } else {
                const double cap = _ramp_from + (full - _ramp_from) * f;
                _status.cap_pps = cap;
                if (_adm != nullptr) _adm->set_overload_cap(cap);
            }
        }
    } else {
        _clean_since.reset();   // between the thresholds: neither shed nor count towards the hold
    }
    return n;
}

uint64_t overload_controller::shed(const overload_sample& d, double ratio) {
    uint64_t missed = d.tx_full;
    for (auto m : d.tier_misses) missed += m;
    // Listeners not reached per speaker packet is how many are too many.
    const double per_packet = static_cast<double>(missed) / static_cast<double>(std::max<uint64_t>(1, d.rtp_in));
    size_t k = static_cast<size_t>(std::ceil(per_packet * (1.0 + _o.shed_margin)));
    k = std::clamp<size_t>(k, 1, _o.max_shed_per_tick);
    // Lowest populated tier only: the next tier up is touched only if misses
    // persist after this one is gone (next shed, after the cooldown).
    const auto per_tier = _st.listeners_per_tier();
    int tier = -1;
    for (int t = static_cast<int>(dp::max_tiers) - 1; t >= 0; --t)
        if (per_tier[static_cast<size_t>(t)] > 0) {
            tier = t;
            break;
        }
    _cooldown = _o.cooldown_ticks;
    if (tier < 0) return 0;
    const auto recs = _st.shed_newest(static_cast<unsigned>(tier), k);
    if (recs.empty()) return 0;
    if (_on_shed) _on_shed(recs);
    shed_event e{};
    e.id = _next_event++;
    e.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    e.tier = static_cast<unsigned>(tier);
    e.listeners = recs.size();
    for (const auto& r : recs) ++e.by_session[r.session_id];
    e.miss_ratio = ratio;
    char why[160];
    std::snprintf(why, sizeof why, "%.1f replicas/packet undelivered (miss ratio %.4f, tx_full %llu, fanout_full %llu)",
                  per_packet, ratio, static_cast<unsigned long long>(d.tx_full),
                  static_cast<unsigned long long>(d.fanout_full));
    e.reason = why;
    if (_adm != nullptr) {
        // Admit no more than what is left after the shed until load falls.
        const double cap = _adm->used_pps();
        _adm->set_overload_cap(cap);
        _status.cap_pps = cap;
        e.cap_pps = cap;
    }
    ++_status.shed_events;
    _status.listeners_shed += recs.size();
    _status.shed_by_tier[e.tier] += recs.size();
    _events.push_back(std::move(e));
    while (_events.size() > _o.max_events) _events.pop_front();
    return recs.size();
}

overload_status overload_controller::status() const {
    std::lock_guard g(_mu);
    return _status;
}

std::vector<shed_event> overload_controller::events(uint64_t after_id) const {
    std::lock_guard g(_mu);
    std::vector<shed_event> v;
    for (const auto& e : _events)
        if (e.id > after_id) v.push_back(e);
    return v;
}

}  // namespace stentor::control
