#include "fleet_member.h"

#include <algorithm>
#include <cmath>

#include "control_plane.h"
#include "relay.h"
#include "state.h"
#include "stentor/dp_shared.h"
#include "trunk_key.h"

namespace stentor::control {

fleet::relay_record fleet_record(const profile& p, relay& r, control_plane& cp, uint64_t trunk_epoch) {
    fleet::relay_record rec;
    rec.id = p.fleet.relay_id;
    rec.role = p.fleet.role;
    rec.region = p.fleet.region;
    for (uint32_t ip : p.fleet.advertise) rec.addresses.push_back(format_ipv4(ip));
    for (const auto& ip : p.fleet.advertise6) rec.addresses6.push_back(format_ipv6(ip));
    rec.trunk_family = p.fleet.trunk_family;
    rec.trunk_auth = p.fleet.trunk_key != nullptr;
    if (rec.trunk_auth) rec.trunk_epoch = fleet::format_trunk_epoch(trunk_epoch);
    const admission_report a = cp.adm().report();
    double port_bps = 0, line = 0;
    for (const auto& port : a.ports) {
        port_bps += port.capacity_bps;
        line += port.line_rate_mbps;
    }
    // Slots: what admission lets in, counted in nominal Opus listeners, by
    // whichever runs out first (the ports' bits or the fan-out cores' packets).
    const double slots = std::min(port_bps / fleet::nominal_listener_bps,
                                  a.fanout_capacity_pps / fleet::nominal_listener_pps);
    rec.slots = static_cast<uint64_t>(std::max(0.0, std::floor(slots)));
    rec.line_rate_mbps = static_cast<uint64_t>(line);
    rec.listeners = r.state().nb_listeners();
    fleet_sessions_of(r.state(), rec);
    return rec;
}

void fleet_sessions_of(const relay_state& st, fleet::relay_record& rec) {
    for (const auto& s : st.sessions()) {
        rec.sessions.emplace_back(s.id, static_cast<uint16_t>(s.udp_port));
        // The SSRCs its speakers registered with: an edge's trunk flow from
        // this relay expects them (docs/fleet.md, "Trunks"). A relay's trunk
        // flows pass on their origins' SSRCs, so a middle tier lists them too.
        std::vector<uint32_t> ss;
        if (s.mode == session_mode::mix)
            ss.push_back(dp::mix_ssrc(s.id));   // what leaves a mix session: the mix, under its own SSRC
        else
            for (const auto& sp : s.speakers)
                if (sp.ssrc) ss.push_back(*sp.ssrc);
        std::sort(ss.begin(), ss.end());
        ss.erase(std::unique(ss.begin(), ss.end()), ss.end());
        if (!ss.empty()) rec.ssrcs[s.id] = std::move(ss);
    }
    std::sort(rec.sessions.begin(), rec.sessions.end());
}

std::optional<std::string> fleet_log::poll(const fleet::registrar& reg) {
    const auto st = reg.status();
    std::optional<std::string> line;
    if (st.registered && (!_registered || st.lease != _lease)) {
        line = "fleet: registered in etcd as " + reg.key() + (_first ? "" : " (again)") + ", lease " +
               std::to_string(st.lease);
        _first = false;
    } else if (!st.registered && st.clash && !_clash) {
        // Another relay's record: never overwritten (fleet/registrar.h).
        line = "fleet: NOT registered: " + st.last_error;
    } else if (!st.registered && !st.clash && st.failures > 0 && (_registered || !_failing)) {
        // Also when it never got in (etcd not up yet, or refusing this
        // relay's certificate or password): the operator sees why at once.
        line = "fleet: etcd unreachable or refusing (" + st.last_error +
               "); forwarding goes on, retrying every refresh";
    }
    if (line) {
        _failing = !st.registered && !st.clash;
        _clash = st.clash;
        _registered = st.registered;
        _lease = st.lease;
    }
    return line;
}

std::unique_ptr<fleet::registrar> fleet_join(const profile& p, relay& r, control_plane& cp, uint64_t trunk_epoch) {
    if (!p.fleet.enabled) return nullptr;
    fleet::registrar_options o;
    o.etcd = p.fleet.etcd;
    o.prefix = p.fleet.prefix;
    o.relay_id = p.fleet.relay_id;
    o.lease_ttl_s = p.fleet.lease_ttl_s;
    o.refresh_ms = p.fleet.refresh_ms;
    auto reg = std::make_unique<fleet::registrar>(o, [&p, &r, &cp, trunk_epoch] { return fleet_record(p, r, cp, trunk_epoch); });
    reg->start();
    return reg;
}

}  // namespace stentor::control
