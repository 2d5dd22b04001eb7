#include "counter_clear.h"

#include <chrono>
#include <string>

#include "control_plane.h"
#include "metrics.h"

namespace stentor::control {

using nlohmann::json;

namespace {

// cur -= base wherever base has a counter (an unsigned number) at the same
// place; everything else in cur is left alone.
void subtract(json& cur, const json& base) {
    if (cur.is_object() && base.is_object()) {
        for (auto it = base.begin(); it != base.end(); ++it)
            if (auto c = cur.find(it.key()); c != cur.end()) subtract(*c, it.value());
    } else if (cur.is_array() && base.is_array()) {
        for (size_t i = 0; i < cur.size() && i < base.size(); ++i) subtract(cur[i], base[i]);
    } else if (cur.is_number_unsigned() && base.is_number_unsigned()) {
        const uint64_t a = cur.get<uint64_t>(), b = base.get<uint64_t>();
        if (a >= b) cur = a - b;   // else the counter restarted: shown as it is
    }
}

// The key an item of a list is known by (lcore id, port name), as text.
std::string key_of(const json& item, const char* key) {
    const auto it = item.find(key);
    if (it == item.end()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
}

// Only these fields of each item are counters.
json pick(const json& list, const char* key, const std::vector<std::string>& fields) {
    json out = json::object();
    if (!list.is_array()) return out;
    for (const auto& item : list) {
        json o = json::object();
        for (const auto& f : fields)
            if (auto it = item.find(f); it != item.end()) o[f] = *it;
        out[key_of(item, key)] = std::move(o);
    }
    return out;
}

std::vector<std::string> lcore_counter_names() {
    std::vector<std::string> v;
    dp::lcore_counters{}.for_each_scalar([&](const char* name, const char*, uint64_t) { v.emplace_back(name); });
    return v;
}

}  // namespace

json nic_json(const drivers::nic_stats& n) {
    if (!n.valid) return nullptr;
    return {{"ipackets", n.rx_packets}, {"opackets", n.tx_packets}, {"ibytes", n.rx_bytes},   {"obytes", n.tx_bytes},
            {"imissed", n.rx_missed},   {"ierrors", n.rx_errors},   {"oerrors", n.tx_errors}, {"rx_nombuf", n.rx_nombuf}};
}

int64_t counter_baseline::clear(control_plane& cp, const api_status* api) {
    // Read outside the mutex (the builders take the relay's own locks).
    const json s = stats_json(cp, api);
    json st{{"counters", s.value("counters", json::object())}, {"refusals", s.value("refusals", json::object())}};
    json dr = drops_json(cp);
    json lc = pick(lcores_json(cp)["lcores"], "lcore", lcore_counter_names());
    json po = pick(ports_json(cp)["ports"], "name", {"rx_packets", "tx_packets", "nic"});
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard g(_mu);
    _stats = std::move(st);
    _drops = std::move(dr);
    _lcores = std::move(lc);
    _ports = std::move(po);
    _at = now;
    return now;
}

std::optional<int64_t> counter_baseline::cleared_unix_ms() const {
    std::lock_guard g(_mu);
    return _at;
}

void counter_baseline::stats(json& j) const {
    std::lock_guard g(_mu);
    if (_at) subtract(j, _stats);
    j["cleared_unix_ms"] = _at ? json(*_at) : json(nullptr);
}

void counter_baseline::drops(json& j) const {
    std::lock_guard g(_mu);
    if (_at) subtract(j, _drops);
    j["cleared_unix_ms"] = _at ? json(*_at) : json(nullptr);
}

void counter_baseline::apply(json& j, const json& base, const char* list, const char* key) const {
    if (_at)
        if (auto l = j.find(list); l != j.end() && l->is_array())
            for (auto& item : *l)
                if (auto b = base.find(key_of(item, key)); b != base.end()) subtract(item, *b);
    j["cleared_unix_ms"] = _at ? json(*_at) : json(nullptr);
}

void counter_baseline::lcores(json& j) const {
    std::lock_guard g(_mu);
    apply(j, _lcores, "lcores", "lcore");
}

void counter_baseline::ports(json& j) const {
    std::lock_guard g(_mu);
    apply(j, _ports, "ports", "name");
}

}  // namespace stentor::control
