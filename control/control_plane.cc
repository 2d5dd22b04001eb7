#include "control_plane.h"

#include <algorithm>
#include <optional>
#include <string>

#include "stentor/dp_shared.h"
#include "stentor/services/mixer.h"
#include "telemetry.h"

namespace stentor::control {

namespace {
// How often the loop looks for SRTP egress reservations to make while a
// session protects on a relay with a journal: a new SSRC's first packets
// wait this long (plus one sync) for their first reservation.
constexpr std::chrono::milliseconds srtp_reserve_poll{10};
}  // namespace

using clock_t_ = std::chrono::steady_clock;

control_plane::control_plane(relay& r, const profile& p, control_options o) : _r(r), _p(p), _o(o) {
    for (const auto& pr : r.ports()) _port_speeds.push_back(pr.speed_mbps);
    _adm = std::make_unique<admission>(admission_config_from(p, _port_speeds));
    _join_resolve_ms.store(p.limits.join_resolve_ms);
    _join = p.join;
    _minter = std::make_shared<const token_minter>(p.join);
    _ovl = std::make_unique<overload_controller>(r.state(), _adm.get(), o.overload);
    r.state().set_admission(_adm.get());
    // Rates read 0 until the first tick has two samples to compare.
    for (const auto& pc : p.ports) _rates.ports.push_back({pc.name, 0, 0, 0, 0});
    for (unsigned l : r.worker_lcores()) _rates.lcores.push_back({l, 0, 0, 0, 0});
    if (r.shared().join_ring != nullptr) {
        join_desk_config jc;
        jc.consent_timeout_s = p.join.consent_timeout_s;
        jc.rebind_after_s = p.join.rebind_after_s;
        jc.max_spent_tokens = p.join.max_spent_tokens;
        jc.source_join_rate_per_s = p.join.source_join_rate_per_s;
        jc.source_join_burst = p.join.source_join_burst;
        jc.max_bindings_per_source = p.join.max_bindings_per_source;
        _desk = std::make_unique<join_desk>(*this, r.shared(), jc);
        _ovl->set_shed_observer([d = _desk.get()](const std::vector<shed_record>& recs) { d->forget_shed(recs); });
    }
}

control_plane::~control_plane() {
    stop();
    telemetry_detach(this);
    _r.state().set_admission(nullptr);
}

void control_plane::start() {
    if (!_o.publisher || _thr.joinable()) return;
    if (_desk) {
        // Whatever the journal restored that joined by token (in token mode:
        // everything) is put under consent before the first request is taken.
        _desk->adopt_existing(clock_t_::now(), !_p.join.static_listeners);
        _desk->start();
    }
    _stop.store(false);
    _thr = std::thread([this] { run(); });
}

void control_plane::stop() {
    if (_desk) _desk->stop();
    _stop.store(true);
    if (_thr.joinable()) _thr.join();
}

void control_plane::run() {
    auto next_tick = clock_t_::now() + _o.tick;
    while (!_stop.load(std::memory_order_relaxed)) {
        auto now = clock_t_::now();
        if (now >= next_tick) {
            tick(now);
            next_tick += _o.tick;
            if (next_tick < now) next_tick = now + _o.tick;
        }
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now) +
                          std::chrono::milliseconds(1);
        // SRTP egress reservations (docs/srtp.md "Egress reservations"): a
        // protected SSRC waits for its first one, so look often while any
        // session protects on a relay with a journal; queued records make
        // wait_pending return at once.
        bool reserving = false;
        state().srtp_reserve(&reserving);
        const auto cap = reserving ? srtp_reserve_poll : std::chrono::milliseconds(100);
        if (state().wait_pending(std::min<std::chrono::milliseconds>(wait, cap))) {
            state().publish();
            _publishes.fetch_add(1, std::memory_order_relaxed);
            // Batch window: whatever arrives in the next moment rides the next
            // publish together instead of one publish per request.
            std::this_thread::sleep_for(_o.min_publish_gap);
        }
    }
}

bool control_plane::commit(std::chrono::milliseconds wait) {
    const uint64_t mark = state().change_mark();
    if (!_thr.joinable()) {
        state().publish();
        _publishes.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    return state().wait_published(mark, wait);
}

std::vector<uint32_t> control_plane::wait_resolved(const std::vector<uint32_t>& listener_ips) {
    auto left = state().unresolved_next_hops(listener_ips);
    const auto deadline = clock_t_::now() + std::chrono::milliseconds(join_resolve_ms());
    // The ARP lcore asks for a new next hop within one ARP tick of the
    // publish; a neighbour on the LAN answers in well under a millisecond.
    while (!left.empty() && clock_t_::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        left = state().unresolved_next_hops(left);   // a next hop routes to itself
    }
    return left;
}

namespace {

bool is_live_join_key(const std::string& key) {
    return key == "join.keys" || key.starts_with("join.keys[") || key == "join.mint_key_id" ||
           key == "join.token_ttl_s";
}

std::string ids_of(const join_config& jc) {
    std::string ids;
    for (const auto& k : jc.keys) ids += (ids.empty() ? "" : ", ") + std::to_string(k.id);
    return ids;
}

// Why a setting cannot change while the relay runs; nullopt if it can.
std::optional<std::string> why_not_live(const std::string& key) {
    static const char* const live_limits[] = {
        "limits.join_rate_per_s",   "limits.session_join_rate_per_s", "limits.headroom_pct",
        "limits.fanout_pps_per_core", "limits.tier0_reserve_pct",     "limits.tier1_reserve_pct",
        "limits.tier2_reserve_pct", "limits.speaker_burst_pct",        "limits.join_resolve_ms",
        "limits.max_listeners",     "limits.max_listeners_per_session"};
    for (const char* k : live_limits)
        if (key == k) return std::nullopt;
    // Every [mixer] key (svc::mix_settings): running encoders take the new
    // version at their next frame boundary; `channels` applies to sessions
    // whose mix starts afterwards (an encoder's channel count is fixed).
    if (key.starts_with("overload.") || key.starts_with("mixer.")) return std::nullopt;
    if (key.starts_with("limits.")) return "a table size allocated at start: needs a restart";
    if (key.starts_with("session[") || key == "session") return "static sessions are loaded at start: use the API, or restart";
    if (key.starts_with("api.")) return "the API listens with the settings it started with: needs a restart";
    // The keys rotate live (reload() checks that some stay); the rest of
    // [join] sizes and shapes the data plane and the desk at start.
    if (is_live_join_key(key)) return std::nullopt;
    if (key.starts_with("join.")) return "read at start (the verification budget, consent and mode): needs a restart";
    if (key.starts_with("fleet.")) return "read at start (the registry, its access and the trunk key): needs a restart";
    return "needs a restart (EAL, ports, lcores, ingress, recording and journal are set up at start)";
}

}  // namespace

control_plane::reload_result control_plane::reload(const profile& next, const std::vector<std::string>& changed) {
    reload_result out;
    for (const auto& k : changed)
        if (auto why = why_not_live(k)) out.refused.push_back(k + ": " + *why);
    if (!out.refused.empty()) return out;
    // Checked before anything changes: admission refuses a port count change,
    // the mixer settings libopus cannot run with (the profile loader checks
    // the same ranges, so this is a second line).
    const bool mixer_changed = std::any_of(changed.begin(), changed.end(),
                                           [](const std::string& k) { return k.starts_with("mixer."); });
    if (mixer_changed)
        if (auto why = svc::check(mix_settings_of(next.mixer))) {
            out.refused.push_back("mixer: " + *why);
            return out;
        }
    const bool join_changed = std::any_of(changed.begin(), changed.end(), is_live_join_key);
    const join_config running = running_join();
    if (join_changed && running.keys.empty()) {
        out.refused.push_back("join.keys: joins are off (the relay started without keys): needs a restart");
        return out;
    }
    if (join_changed && next.join.keys.empty()) {
        out.refused.push_back("join.keys: without any key nobody could join or refresh: keep at least one (turning "
                              "joins off needs a restart)");
        return out;
    }
    // The keys first: the only step that could still throw (a secret
    // token_key refuses; the loader has checked them), before anything else
    // changes.
    if (join_changed) {
        _r.set_join_keys(next.join);
        auto m = std::make_shared<const token_minter>(next.join);
        std::lock_guard g(_join_mu);
        _join = next.join;
        _minter = std::move(m);
    }
    auto ac = admission_config_from(next, _port_speeds);
    _adm->reconfigure(ac);
    if (mixer_changed) _r.set_mix_settings(next.mixer);
    state().set_limits(next.limits);
    _ovl->set_options(overload_options_from(next.overload));
    _join_resolve_ms.store(next.limits.join_resolve_ms);
    out.applied = changed;
    for (const auto& k : changed)
        if (k == "mixer.channels")
            out.notes.push_back(k + ": for mixes that start from now on; a running mix keeps its channel count");
    if (join_changed) {
        out.notes.push_back("join.keys: keys " + ids_of(next.join) + " live, minting with key " +
                            std::to_string(next.join.mint_key_id) + ", tokens live " +
                            std::to_string(next.join.token_ttl_s) + " s by default");
        std::string removed;
        for (const auto& k : running.keys)
            if (next.join.key(k.id) == nullptr) removed += (removed.empty() ? "" : ", ") + std::to_string(k.id);
        if (!removed.empty())
            out.notes.push_back("join.keys: tokens of key " + removed +
                                " are refused from now on (drop/join/unknown_key); listeners that joined with one "
                                "are removed once silent for join.consent_timeout_s unless they renew");
    }
    return out;
}

std::shared_ptr<const token_minter> control_plane::minter() const {
    std::lock_guard g(_join_mu);
    return _minter;
}

join_config control_plane::running_join() const {
    std::lock_guard g(_join_mu);
    return _join;
}

std::vector<std::string> join_secret_changes(const join_config& running, const join_config& next) {
    std::vector<std::string> out;
    for (size_t i = 0; i < next.keys.size(); ++i)
        if (const join_key* k = running.key(next.keys[i].id); k != nullptr && k->secret != next.keys[i].secret)
            out.push_back("join.keys[" + std::to_string(i) + "].secret");
    return out;
}

void control_plane::tick(clock_t_::time_point now) {
    const auto total = _r.totals();
    const auto per = _r.per_lcore();
    const auto ids = _r.worker_lcores();
    std::vector<std::pair<uint64_t, uint64_t>> bytes;
    for (const auto& pc : _p.ports) {
        uint64_t ib = 0, ob = 0;
        for (const auto& [k, v] : _r.port_counters()) {
            if (k == "port/" + pc.name + "/ibytes") ib = v;
            if (k == "port/" + pc.name + "/obytes") ob = v;
        }
        bytes.emplace_back(ib, ob);
    }
    if (_have_prev) {
        _ovl->tick(sample_delta(_prev_total, total), now);
        const double dt = std::max(1e-6, std::chrono::duration<double>(now - _prev_at).count());
        rate_view rv;
        rv.interval_s = dt;
        auto rate = [dt](uint64_t a, uint64_t b) { return a >= b ? static_cast<double>(a - b) / dt : 0.0; };
        for (size_t i = 0; i < _p.ports.size() && i < dp::max_ports; ++i)
            rv.ports.push_back({_p.ports[i].name, rate(total.port_rx[i], _prev_total.port_rx[i]),
                                rate(total.port_tx[i], _prev_total.port_tx[i]),
                                8 * rate(bytes[i].first, _prev_port_bytes[i].first),
                                8 * rate(bytes[i].second, _prev_port_bytes[i].second)});
        for (size_t i = 0; i < per.size() && i < _prev_lcore.size(); ++i) {
            const auto& c = per[i];
            const auto& q = _prev_lcore[i];
            const double cyc = static_cast<double>((c.busy_cycles - q.busy_cycles) + (c.idle_cycles - q.idle_cycles));
            rv.lcores.push_back({ids[i], rate(c.rx_packets, q.rx_packets), rate(c.replicas_out, q.replicas_out),
                                 8 * rate(c.tx_bytes, q.tx_bytes),
                                 cyc > 0 ? static_cast<double>(c.busy_cycles - q.busy_cycles) / cyc : 0.0});
        }
        std::lock_guard g(_rates_mu);
        _rates = std::move(rv);
    }
    // SRTP ingress marks (docs/srtp.md "Ingress marks"), once a second.
    if (now >= _next_ingress_mark) {
        state().srtp_mark_ingress();
        _next_ingress_mark = now + std::chrono::seconds(1);
    }
    _prev_total = total;
    _prev_lcore = per;
    _prev_port_bytes = bytes;
    _prev_at = now;
    _have_prev = true;
}

rate_view control_plane::rates() const {
    std::lock_guard g(_rates_mu);
    return _rates;
}

void control_plane::set_trunks(const trunk_reconciler* r, const fleet::trunk_watch* w) {
    std::lock_guard lk(_trunks_mu);
    _trunks = r;
    _trunk_watch = r != nullptr ? w : nullptr;
}

void control_plane::with_trunks(const std::function<void(const trunk_reconciler&, const fleet::trunk_watch*)>& f) const {
    std::lock_guard lk(_trunks_mu);
    if (_trunks != nullptr) f(*_trunks, _trunk_watch);
}

}  // namespace stentor::control
