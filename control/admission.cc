#include "admission.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "action_error.h"

namespace stentor::control {

listener_cost cost_of(unsigned frame_ms, unsigned max_bitrate_kbps, unsigned streams, unsigned trailer) {
    listener_cost c{};
    frame_ms = std::max(1u, frame_ms);
    c.pps = static_cast<double>(streams) * 1000.0 / frame_ms;
    // Admission plans for the session's highest bitrate (the speaker policer
    // lets no more through), not for what speakers happen to send now.
    c.payload = (max_bitrate_kbps * frame_ms + 7) / 8;
    static constexpr unsigned ip_header[nb_families] = {20, 40};   // IPv4, IPv6 (no options, no extension headers)
    for (unsigned f = 0; f < nb_families; ++f) {
        const unsigned frame = std::max(60u, 14 + ip_header[f] + 8 + 12 + c.payload + trailer);   // Ethernet minimum without FCS
        c.wire_bytes[f] = frame + 4 + 8 + 12;                                          // FCS, preamble+SFD, inter-frame gap
        c.bps[f] = c.pps * c.wire_bytes[f] * 8.0;
    }
    return c;
}

admission_config admission_config_from(const profile& p, const std::vector<uint32_t>& reported_mbps) {
    admission_config c;
    for (size_t i = 0; i < p.ports.size(); ++i) {
        c.port_names.push_back(p.ports[i].name);
        double mbps = p.ports[i].line_rate_mbps;
        if (mbps == 0 && i < reported_mbps.size()) mbps = reported_mbps[i];
        if (mbps == 0) mbps = 10000;   // speed unknown (link down at start): plan for 10 GbE
        c.line_rate_mbps.push_back(mbps);
    }
    c.nb_fanout_cores = static_cast<unsigned>(std::max<size_t>(1, p.dataplane.fanout_lcores.size()));
    c.fanout_pps_per_core = p.limits.fanout_pps_per_core;
    c.headroom_pct = p.limits.headroom_pct;
    c.tier_reserve_pct = {p.limits.tier0_reserve_pct, p.limits.tier1_reserve_pct, p.limits.tier2_reserve_pct, 0};
    c.join_rate_per_s = p.limits.join_rate_per_s;
    c.session_join_rate_per_s = p.limits.session_join_rate_per_s;
    return c;
}

admission::admission(admission_config c)
    : _cfg(std::move(c)), _port_used_bps(_cfg.line_rate_mbps.size(), 0.0),
      _global{static_cast<double>(_cfg.join_rate_per_s), clock::now()} {}

void admission::refill(bucket& b, double rate, clock::time_point now) const {
    const double dt = std::chrono::duration<double>(now - b.last).count();
    if (dt > 0) {
        b.tokens = std::min(rate, b.tokens + dt * rate);   // depth: one second of rate
        b.last = now;
    }
}

namespace {

// A rate in a refusal: whole units from 10 up, else three significant
// digits (one 64 kbit/s listener needs 0.0776 Mbit/s, not "0").
std::string rate_text(double v) {
    char b[32];
    if (v >= 10.0 || v == 0.0) std::snprintf(b, sizeof b, "%.0f", std::floor(v));   // never "free" more than is
    else std::snprintf(b, sizeof b, "%.3g", v);
    return b;
}

uint64_t listeners_at_port(const join_counts& n, unsigned f, size_t p) {
    uint64_t np = 0;
    for (unsigned t = 0; t < dp::max_tiers; ++t) np += n[f][p][t];
    return np;
}

// The load n puts on port p: each family at its own frame size.
double bps_at_port(const listener_cost& c, const join_counts& n, size_t p) {
    double bps = 0;
    for (unsigned f = 0; f < nb_families; ++f) bps += c.bps[f] * static_cast<double>(listeners_at_port(n, f, p));
    return bps;
}

uint64_t listeners_in(const join_counts& n) {
    uint64_t total = 0;
    for (unsigned f = 0; f < nb_families; ++f)
        for (size_t p = 0; p < dp::max_ports; ++p) total += listeners_at_port(n, f, p);
    return total;
}

}  // namespace

void admission::check_capacity(const listener_cost& c, const join_counts& n, const char* what) const {
    const double keep = (100.0 - _cfg.headroom_pct) / 100.0;
    uint64_t total = 0;
    unsigned lowest_tier = 0;   // the most restricted tier in the request decides
    for (unsigned f = 0; f < nb_families; ++f)
        for (size_t p = 0; p < dp::max_ports; ++p)
            for (unsigned t = 0; t < dp::max_tiers; ++t)
                if (n[f][p][t] != 0) {
                    total += n[f][p][t];
                    lowest_tier = std::max(lowest_tier, t);
                }
    if (total == 0) return;
    double reserved = 0;
    for (unsigned t = 0; t < lowest_tier; ++t) reserved += _cfg.tier_reserve_pct[t];
    const double tier_share = std::max(0.0, (100.0 - reserved) / 100.0);
    const std::string tier_note = lowest_tier > 0 && reserved > 0
                                      ? " (tier " + std::to_string(lowest_tier) + " may use " +
                                            std::to_string(static_cast<int>(100 - reserved)) + " % of it)"
                                      : "";
    for (size_t p = 0; p < _port_used_bps.size() && p < dp::max_ports; ++p) {
        const double need = bps_at_port(c, n, p);
        if (need == 0) continue;
        const double cap = _cfg.line_rate_mbps[p] * 1e6 * keep * tier_share;
        if (_port_used_bps[p] + need > cap + 1e-6)
            throw action_error(error_code::capacity,
                               std::string(what) + "port " + _cfg.port_names[p] + " is full: the request needs " +
                                   rate_text(need / 1e6) + " Mbit/s, " + rate_text(std::max(0.0, cap - _port_used_bps[p]) / 1e6) +
                                   " of " + rate_text(cap / 1e6) + " Mbit/s free (" + rate_text(_port_used_bps[p] / 1e6) +
                                   " planned)" + tier_note);
    }
    double cap_pps = _cfg.nb_fanout_cores * _cfg.fanout_pps_per_core * keep;
    if (_overload_cap) cap_pps = std::min(cap_pps, *_overload_cap);
    cap_pps *= tier_share;
    const double need_pps = c.pps * static_cast<double>(total);
    if (_used_pps + need_pps > cap_pps + 1e-6)
        throw action_error(error_code::capacity,
                           std::string(what) + "fan-out is full" + (_overload_cap ? " (lowered after overload)" : "") +
                               ": the request needs " + rate_text(need_pps) + " replicas/s, " +
                               rate_text(std::max(0.0, cap_pps - _used_pps)) + " of " + rate_text(cap_pps) +
                               " replicas/s free (" + rate_text(_used_pps) + " planned)" + tier_note);
}

void admission::add_load(const listener_cost& c, const join_counts& n, double sign) {
    for (size_t p = 0; p < dp::max_ports && p < _port_used_bps.size(); ++p)
        _port_used_bps[p] = std::max(0.0, _port_used_bps[p] + sign * bps_at_port(c, n, p));
    _used_pps = std::max(0.0, _used_pps + sign * c.pps * static_cast<double>(listeners_in(n)));
}

void admission::admit(uint32_t session_id, const listener_cost& c, const join_counts& n, clock::time_point now) {
    std::lock_guard g(_mu);
    const uint64_t total = listeners_in(n);
    if (total == 0) return;
    check_capacity(c, n, "");
    take_join_tokens(session_id, total, now);
    add_load(c, n, +1);
    _admitted += total;
}

void admission::take_join_tokens(uint32_t session_id, uint64_t total, clock::time_point now) {
    // Join rate: both buckets must hold `total` tokens. A request larger than
    // a bucket can ever hold would wait forever: refuse it as invalid.
    const double srate = _cfg.session_join_rate_per_s;
    const double grate = _cfg.join_rate_per_s;
    if (!_replay && static_cast<double>(total) > std::min(srate, grate))
        throw action_error(error_code::invalid,
                           std::to_string(total) + " joins in one request exceed the join-rate burst of " +
                               std::to_string(static_cast<uint64_t>(std::min(srate, grate))));
    refill(_global, grate, now);
    auto it = _sessions.find(session_id);
    bucket sb = it != _sessions.end() ? it->second : bucket{srate, now};
    refill(sb, srate, now);
    const double need_g = static_cast<double>(total) - _global.tokens;
    const double need_s = static_cast<double>(total) - sb.tokens;
    if (!_replay && (need_g > 0 || need_s > 0)) {
        const double wait = std::max(need_g / grate, need_s / srate);
        const unsigned retry = static_cast<unsigned>(std::max(1.0, std::ceil(wait)));
        if (it != _sessions.end()) it->second = sb;
        throw action_error(error_code::rate_limited,
                           std::string("join rate over ") + (need_s > 0 ? "the session's" : "the relay's") +
                               " limit; retry after " + std::to_string(retry) + " s",
                           retry);
    }
    if (!_replay) {
        _global.tokens -= static_cast<double>(total);
        sb.tokens -= static_cast<double>(total);
    }
    _sessions[session_id] = sb;
}

void admission::admit_move(uint32_t session_id, const listener_cost& c, ip_family f, unsigned port, unsigned to_tier,
                           clock::time_point now) {
    std::lock_guard g(_mu);
    if (port >= dp::max_ports || to_tier >= dp::max_tiers)
        throw action_error(error_code::invalid, "a listener's move names port " + std::to_string(port) + " and tier " +
                                                    std::to_string(to_tier) + ": out of range");
    join_counts n{};
    n[f][port][to_tier] = 1;
    // Judged without its own load (it is planned already), and the load put
    // back exactly as it was whatever the verdict (the saved values, not a
    // sum added back: doubles): the listener costs the same at every tier,
    // so a move changes no load.
    {
        struct put_back {
            admission& a;
            std::vector<double> ports;
            double pps;
            ~put_back() {
                a._port_used_bps.swap(ports);
                a._used_pps = pps;
            }
        } saved{*this, _port_used_bps, _used_pps};
        add_load(c, n, -1);
        check_capacity(c, n, "");
    }
    take_join_tokens(session_id, 1, now);
}

void admission::admit_load(const listener_cost& c, const join_counts& n) {
    std::lock_guard g(_mu);
    check_capacity(c, n, "one more stream for the session's listeners: ");
    add_load(c, n, +1);
}

void admission::release(const listener_cost& c, ip_family f, unsigned port, uint64_t n) {
    // Every leave comes here: no join_counts to build and walk.
    std::lock_guard g(_mu);
    const double k = static_cast<double>(n);
    if (port < _port_used_bps.size()) _port_used_bps[port] = std::max(0.0, _port_used_bps[port] - c.bps[f] * k);
    _used_pps = std::max(0.0, _used_pps - c.pps * k);
}

void admission::release_load(const listener_cost& c, const join_counts& n) {
    std::lock_guard g(_mu);
    add_load(c, n, -1);
}

void admission::reconfigure(const admission_config& c) {
    std::lock_guard g(_mu);
    if (c.line_rate_mbps.size() != _cfg.line_rate_mbps.size())
        throw action_error(error_code::invalid, "the number of ports cannot change without a restart");
    _cfg = c;
    _global.tokens = std::min(_global.tokens, static_cast<double>(_cfg.join_rate_per_s));
    for (auto& [id, b] : _sessions) b.tokens = std::min(b.tokens, static_cast<double>(_cfg.session_join_rate_per_s));
}

void admission::session_ended(uint32_t session_id) {
    std::lock_guard g(_mu);
    _sessions.erase(session_id);
}

void admission::count_refusal(error_code code) {
    std::lock_guard g(_mu);
    ++_refusals[std::string(name_of(code))];
}

void admission::set_replay(bool on) {
    std::lock_guard g(_mu);
    _replay = on;
}

void admission::set_overload_cap(std::optional<double> pps) {
    std::lock_guard g(_mu);
    _overload_cap = pps;
}

double admission::used_pps() const {
    std::lock_guard g(_mu);
    return _used_pps;
}

admission_report admission::report() const {
    std::lock_guard g(_mu);
    admission_report r{};
    const double keep = (100.0 - _cfg.headroom_pct) / 100.0;
    for (size_t p = 0; p < _port_used_bps.size(); ++p)
        r.ports.push_back({_cfg.port_names[p], _cfg.line_rate_mbps[p], _cfg.line_rate_mbps[p] * 1e6 * keep, _port_used_bps[p]});
    r.nb_fanout_cores = _cfg.nb_fanout_cores;
    r.fanout_pps_per_core = _cfg.fanout_pps_per_core;
    r.fanout_capacity_pps = _cfg.nb_fanout_cores * _cfg.fanout_pps_per_core * keep;
    r.overload_cap_pps = _overload_cap;
    r.used_pps = _used_pps;
    r.headroom_pct = _cfg.headroom_pct;
    r.tier_reserve_pct = _cfg.tier_reserve_pct;
    r.join_rate_per_s = _cfg.join_rate_per_s;
    r.session_join_rate_per_s = _cfg.session_join_rate_per_s;
    for (const error_code c : {error_code::capacity, error_code::session_full, error_code::rate_limited, error_code::invalid})
        r.refusals[std::string(name_of(c))] = 0;
    for (const auto& [k, v] : _refusals) r.refusals[k] = v;
    r.admitted = _admitted;
    return r;
}

}  // namespace stentor::control
