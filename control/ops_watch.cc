#include "ops_watch.h"

#include <arpa/inet.h>

#include <atomic>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config.h"
#include "control_plane.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_snapshot.h"

namespace stentor::control {

namespace {

std::string mac_of_word(uint64_t w) {
    // bits 0..47: the MAC in wire order in memory bytes 0..5 (dp_neigh).
    uint8_t b[8];
    std::memcpy(b, &w, sizeof b);
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

constexpr uint64_t mac_valid = uint64_t{1} << 63;

}  // namespace

ops_watch::ops_watch(control_plane& cp) : _cp(cp) {}

void ops_watch::poll(clock::time_point now) {
    overload();
    if (_first || now - _last_slow >= std::chrono::seconds(1)) {
        // First call: remember the state as it is, say nothing about it.
        refusals();
        links();
        neighbours();
        _last_slow = now;
        _first = false;
    }
}

void ops_watch::overload() {
    auto& ovl = _cp.overload();
    for (const auto& e : ovl.events(_last_event)) {
        std::string by;
        for (const auto& [sid, n] : e.by_session) by += fmt::format("{}{}: {}", by.empty() ? "" : ", ", sid, n);
        spdlog::warn("overload: shed {} listener(s) of tier {} (by session {}): {}; admission capped at {:.0f} pps",
                     e.listeners, e.tier, by, e.reason, e.cap_pps);
        _last_event = e.id;
    }
    const auto st = ovl.status();   // stalls: overload.cc logs each itself
    if (st.state != _ovl_state) {
        if (st.state == "overloaded" && _ovl_state == "normal")
            spdlog::warn("overload: entered: miss ratio {:.4f}; shedding the lowest tier", st.last_miss_ratio);
        else if (st.state == "overloaded")
            spdlog::warn("overload: missing again while recovering: admission cap held at {:.0f} pps",
                         st.cap_pps.value_or(0));
        else if (st.state == "recovering")
            spdlog::info("overload: recovering: clean for the hold time, admission cap rising from {:.0f} pps",
                         st.cap_pps.value_or(0));
        else if (st.state == "normal")
            spdlog::info("overload: over: admission re-opened to full capacity (re-admit)");
        _ovl_state = st.state;
    }
}

void ops_watch::refusals() {
    const auto rep = _cp.adm().report();
    uint64_t total = 0;
    std::string parts;
    for (const auto& [reason, n] : rep.refusals) {
        const uint64_t before = _refusals[reason];
        if (n > before) {
            total += n - before;
            parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", reason, n - before);
        }
        _refusals[reason] = n;
    }
    if (total > 0 && !_first) spdlog::warn("admission: refused {} request(s) in the last second: {}", total, parts);
}

void ops_watch::links() {
    for (const auto& p : _cp.rel().ports()) {
        auto it = _link_up.find(p.name);
        if (it == _link_up.end()) {
            _link_up[p.name] = p.link_up;
            if (!p.link_up) spdlog::warn("port {}: link down at start", p.name);
            continue;
        }
        if (it->second == p.link_up) continue;
        it->second = p.link_up;
        if (p.link_up)
            spdlog::info("port {}: link up ({} Mbit/s)", p.name, p.speed_mbps);
        else
            spdlog::warn("port {}: link down", p.name);
    }
}

void ops_watch::neighbours() {
    const auto& sh = _cp.rel().shared();
    if (sh.neigh == nullptr) return;
    _neigh.resize(sh.nb_neigh, {0, 0});
    for (uint32_t i = 0; i < sh.nb_neigh; ++i) {
        auto& n = sh.neigh[i];
        // ip_be is written by the control plane under its state mutex;
        // mac_word by the ARP owner. Both are read here without a lock: a
        // torn view lasts one second and only decides whether to log.
        const uint32_t ip = std::atomic_ref<uint32_t>(n.ip_be).load(std::memory_order_relaxed);
        const uint64_t mac = n.mac_word.load(std::memory_order_relaxed);
        auto& seen = _neigh[i];
        if (!_first && ip != 0 && ip == seen.ip_be && (mac & mac_valid) != 0 && (seen.mac & mac_valid) != 0 &&
            mac != seen.mac) {
            const auto& ports = _cp.prof().ports;
            const uint16_t pid = n.port_id;
            spdlog::warn("neighbour {} (port {}): MAC changed {} -> {} (confirmed by a fresh probe)",
                         format_ipv4(ntohl(ip)), pid < ports.size() ? ports[pid].name : std::to_string(pid),
                         mac_of_word(seen.mac), mac_of_word(mac));
        }
        seen = {ip, mac};
    }
}

}  // namespace stentor::control
