#include "placement.h"

#include <algorithm>
#include <queue>

#include <fmt/format.h>

namespace stentor::fleet {

const char* place_error_name(place_error e) {
    switch (e) {
    case place_error::none: return "none";
    case place_error::bad_request: return "bad_request";
    case place_error::unknown_session: return "unknown_session";
    case place_error::no_capacity: return "no_capacity";
    case place_error::registry_stale: return "registry_stale";
    case place_error::registry_write: return "registry_write";
    }
    return "?";
}

uint64_t placement_core::pending(const std::string& edge, steady::time_point now) {
    auto it = _pending.find(edge);
    if (it == _pending.end()) return 0;
    auto& v = it->second;
    v.erase(v.begin(), std::find_if(v.begin(), v.end(), [&](const batch& b) { return now - b.at < _hold; }));
    uint64_t n = 0;
    for (const auto& b : v) n += b.n;
    if (v.empty()) _pending.erase(it);
    return n;
}

uint64_t placement_core::room(const relay_record& edge, steady::time_point now) {
    const uint64_t free = edge.slots > edge.listeners ? edge.slots - edge.listeners : 0;
    const uint64_t share = free / _directors;
    const uint64_t mine = pending(edge.id, now);
    return share > mine ? share - mine : 0;
}

plan_result placement_core::place(uint32_t session, uint32_t count, const std::string& region,
                                  steady::time_point now) {
    plan_result out;
    if (count == 0) {
        out.error = place_error::bad_request;
        out.reason = "listeners must be at least 1";
        return out;
    }
    for (const auto& [id, r] : _relays) {
        if (r.role != "origin" || r.draining) continue;
        for (const auto& [s, port] : r.sessions)
            if (s == session) {
                if (out.origins.empty()) out.port = port;
                out.origins.push_back(id);
            }
    }
    if (out.origins.empty()) {
        out.error = place_error::unknown_session;
        out.reason = fmt::format("session {} is on no live origin (none registered, draining or lease gone)", session);
        return out;
    }
    struct cand {
        const relay_record* r;
        uint64_t room;
        uint64_t load;   // listeners + this director's pending + placed now
        uint32_t placed;
    };
    std::vector<cand> cands;
    uint64_t total = 0;
    for (const auto& [id, r] : _relays) {
        if (r.role != "edge" || r.draining || r.slots == 0 || r.addresses.empty()) continue;
        if (!region.empty() && r.region != region) continue;
        const uint64_t room_now = room(r, now);
        if (room_now == 0) continue;
        cands.push_back({&r, room_now, r.listeners + pending(id, now), 0});
        total += room_now;
    }
    if (total < count) {
        out.error = place_error::no_capacity;
        out.reason = fmt::format("{} listeners asked, this director may place {} now ({} edges with room{}, {} "
                                 "directors share the free slots); nothing placed",
                                 count, total, cands.size(), region.empty() ? "" : " in region " + region,
                                 _directors);
        return out;
    }
    // Least loaded first, by (load / slots); ties by id for repeatability.
    // One heap step per listener: ~30 ns with a few hundred edges.
    auto worse = [&](size_t a, size_t b) {
        const auto& x = cands[a];
        const auto& y = cands[b];
        const double lx = static_cast<double>(x.load) / static_cast<double>(x.r->slots);
        const double ly = static_cast<double>(y.load) / static_cast<double>(y.r->slots);
        if (lx != ly) return lx > ly;
        return x.r->id > y.r->id;
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(worse)> heap(worse);
    for (size_t i = 0; i < cands.size(); ++i) heap.push(i);
    for (uint32_t left = count; left > 0;) {
        const size_t i = heap.top();
        heap.pop();
        auto& c = cands[i];
        // Up to the next edge's level in one step, at most what is left.
        uint32_t step = 1;
        if (!heap.empty()) {
            const auto& n = cands[heap.top()];
            const double target = static_cast<double>(n.load) / static_cast<double>(n.r->slots);
            const double gap = target * static_cast<double>(c.r->slots) - static_cast<double>(c.load);
            if (gap > 1) step = static_cast<uint32_t>(std::min<double>(gap, left));
        } else {
            step = left;
        }
        step = static_cast<uint32_t>(std::min<uint64_t>({step, left, c.room - c.placed}));
        c.placed += step;
        c.load += step;
        left -= step;
        if (c.placed < c.room) heap.push(i);
    }
    for (auto& c : cands) {
        if (c.placed == 0) continue;
        edge_pick p;
        p.edge = c.r->id;
        p.address = c.r->addresses.front();
        p.port = out.port;
        p.count = c.placed;
        p.carries = std::any_of(c.r->sessions.begin(), c.r->sessions.end(),
                                [&](const auto& s) { return s.first == session; });
        _pending[p.edge].push_back({now, c.placed});
        out.picks.push_back(std::move(p));
    }
    return out;
}

void placement_core::forget(const plan_result& p, steady::time_point placed_at) {
    for (const auto& pick : p.picks) {
        auto it = _pending.find(pick.edge);
        if (it == _pending.end()) continue;
        auto& v = it->second;
        for (auto b = v.begin(); b != v.end(); ++b)
            if (b->at == placed_at && b->n == pick.count) {
                v.erase(b);
                break;
            }
    }
}

}  // namespace stentor::fleet
