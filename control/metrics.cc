#include "metrics.h"

#include <cstdio>

#include "control_plane.h"
#include "stats.h"

namespace stentor::control {

using nlohmann::json;

json session_json(const session_view& v) {
    json sp = json::array();
    for (const auto& s : v.speakers) {
        json o{{"ip", format_ipv4(s.ip)}, {"port", s.port}};
        o["ssrc"] = s.ssrc ? json(*s.ssrc) : json(nullptr);
        sp.push_back(std::move(o));
    }
    json tiers = json::array();
    for (unsigned t = 0; t < dp::max_tiers; ++t) tiers.push_back(v.listeners_per_tier[t]);
    return {{"id", v.id},
            {"name", v.name},
            {"mode", name_of(v.mode)},
            {"udp_port", v.udp_port},
            {"max_listeners", v.max_listeners},
            {"recording", v.recording},
            {"frame_ms", v.frame_ms},
            {"max_bitrate_kbps", v.max_bitrate_kbps},
            {"listeners", v.nb_listeners},
            {"listeners_per_tier", tiers},
            {"speakers", sp}};
}

json sessions_json(control_plane& cp) {
    json a = json::array();
    for (const auto& v : cp.state().sessions()) a.push_back(session_json(v));
    return {{"sessions", a}};
}

json capacity_json(control_plane& cp) {
    const auto r = cp.adm().report();
    json ports = json::array();
    for (const auto& p : r.ports)
        ports.push_back({{"name", p.name},
                         {"line_rate_mbps", p.line_rate_mbps},
                         {"capacity_bps", p.capacity_bps},
                         {"planned_bps", p.used_bps}});
    json c{{"ports", ports},
           {"fanout_cores", r.nb_fanout_cores},
           {"fanout_pps_per_core", r.fanout_pps_per_core},
           {"fanout_capacity_pps", r.fanout_capacity_pps},
           {"planned_pps", r.used_pps},
           {"headroom_pct", r.headroom_pct},
           {"tier_reserve_pct", r.tier_reserve_pct},
           {"join_rate_per_s", r.join_rate_per_s},
           {"session_join_rate_per_s", r.session_join_rate_per_s},
           {"admitted_total", r.admitted}};
    c["overload_cap_pps"] = r.overload_cap_pps ? json(*r.overload_cap_pps) : json(nullptr);
    return c;
}

json stats_json(control_plane& cp) {
    json counters = json::object();
    for (const auto& [k, v] : cp.rel().counters(true)) counters[k] = v;
    const auto tiers = cp.state().listeners_per_tier();
    const auto sessions = cp.state().sessions();
    size_t speakers = 0;
    for (const auto& s : sessions) speakers += s.speakers.size();
    const auto rep = cp.adm().report();
    const auto ov = cp.overload().status();
    json shed{{"state", ov.state},
              {"ticks", ov.ticks},
              {"enter_count", ov.enter_count},
              {"events", ov.shed_events},
              {"listeners_shed", ov.listeners_shed},
              {"listeners_shed_per_tier", ov.shed_by_tier},
              {"last_miss_ratio", ov.last_miss_ratio},
              {"busy_ratio", ov.busy_ratio}};
    return {{"counters", counters},
            {"sessions", sessions.size()},
            {"speakers", speakers},
            {"listeners", tiers[0] + tiers[1] + tiers[2] + tiers[3]},
            {"listeners_per_tier", tiers},
            {"capacity", capacity_json(cp)},
            {"refusals", rep.refusals},
            {"overload", shed},
            {"publishes", cp.publishes()},
            {"published_version", cp.state().published_version()}};
}

json ports_json(control_plane& cp) {
    const auto rates = cp.rates();
    const auto t = cp.totals();
    json a = json::array();
    const auto reps = cp.rel().ports();
    for (size_t i = 0; i < reps.size(); ++i) {
        const auto& p = reps[i];
        json o{{"name", p.name},       {"device", p.device},     {"driver", p.driver},
               {"port_id", p.port_id}, {"mac", p.mac},           {"link_up", p.link_up},
               {"speed_mbps", p.speed_mbps}};
        o["rx_packets"] = i < dp::max_ports ? t.port_rx[i] : 0;
        o["tx_packets"] = i < dp::max_ports ? t.port_tx[i] : 0;
        if (i < rates.ports.size()) {
            o["rx_pps"] = rates.ports[i].rx_pps;
            o["tx_pps"] = rates.ports[i].tx_pps;
            o["rx_bps"] = rates.ports[i].rx_bps;
            o["tx_bps"] = rates.ports[i].tx_bps;
        }
        a.push_back(std::move(o));
    }
    return {{"ports", a}, {"interval_s", rates.interval_s}};
}

json lcores_json(control_plane& cp) {
    const auto rates = cp.rates();
    const auto per = cp.rel().per_lcore();
    const auto ids = cp.rel().worker_lcores();
    json a = json::array();
    for (size_t i = 0; i < per.size(); ++i) {
        json o{{"lcore", ids[i]},
               {"rx_packets", per[i].rx_packets},
               {"rtp_in", per[i].rtp_in},
               {"replicas_out", per[i].replicas_out},
               {"tx_bytes", per[i].tx_bytes},
               {"busy_cycles", per[i].busy_cycles},
               {"idle_cycles", per[i].idle_cycles}};
        if (i < rates.lcores.size()) {
            o["rx_pps"] = rates.lcores[i].rx_pps;
            o["tx_pps"] = rates.lcores[i].tx_pps;
            o["tx_bps"] = rates.lcores[i].tx_bps;
            o["busy_ratio"] = rates.lcores[i].busy_ratio;
        }
        a.push_back(std::move(o));
    }
    return {{"lcores", a}, {"interval_s", rates.interval_s}};
}

json drops_json(control_plane& cp) {
    const auto t = cp.totals();
    json d = json::object();
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i) d[std::string(dp::drop_reason_names[i])] = t.drops[i];
    json m = json::array();
    for (size_t i = 0; i < dp::max_tiers; ++i) m.push_back(t.tier_misses[i]);
    return {{"drops", d}, {"tier_misses", m}};
}

json events_json(control_plane& cp, uint64_t after_id) {
    json a = json::array();
    for (const auto& e : cp.overload().events(after_id)) {
        json by = json::object();
        for (const auto& [sid, n] : e.by_session) by[std::to_string(sid)] = n;
        a.push_back({{"id", e.id},
                     {"type", "shed"},
                     {"unix_ms", e.unix_ms},
                     {"tier", e.tier},
                     {"listeners", e.listeners},
                     {"by_session", by},
                     {"miss_ratio", e.miss_ratio},
                     {"cap_pps", e.cap_pps},
                     {"reason", e.reason}});
    }
    return {{"events", a}};
}

namespace {

void line(std::string& o, const char* name, const std::string& labels, double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", v);
    o += name;
    if (!labels.empty()) o += "{" + labels + "}";
    o += " ";
    o += b;
    o += "\n";
}

void head(std::string& o, const char* name, const char* type, const char* help) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string lbl(const char* k, const std::string& v) {
    std::string e;
    for (char c : v) {
        if (c == '"' || c == '\\') e += '\\';
        if (c == '\n') { e += "\\n"; continue; }
        e += c;
    }
    return std::string(k) + "=\"" + e + "\"";
}

}  // namespace

std::string prometheus_text(control_plane& cp) {
    std::string o;
    o.reserve(16384);
    const auto t = cp.totals();
    const auto rates = cp.rates();
    const auto ports = cp.prof().ports;
    const auto per = cp.rel().per_lcore();
    const auto ids = cp.rel().worker_lcores();

    head(o, "stentor_rx_packets_total", "counter", "Packets received from all ports.");
    line(o, "stentor_rx_packets_total", "", static_cast<double>(t.rx_packets));
    head(o, "stentor_rtp_in_total", "counter", "Speaker packets accepted.");
    line(o, "stentor_rtp_in_total", "", static_cast<double>(t.rtp_in));
    head(o, "stentor_replicas_out_total", "counter", "Listener packets handed to the NICs.");
    line(o, "stentor_replicas_out_total", "", static_cast<double>(t.replicas_out));

    head(o, "stentor_port_rx_packets_total", "counter", "Packets received per port.");
    for (size_t i = 0; i < ports.size() && i < dp::max_ports; ++i)
        line(o, "stentor_port_rx_packets_total", lbl("port", ports[i].name), static_cast<double>(t.port_rx[i]));
    head(o, "stentor_port_tx_packets_total", "counter", "Packets sent per port.");
    for (size_t i = 0; i < ports.size() && i < dp::max_ports; ++i)
        line(o, "stentor_port_tx_packets_total", lbl("port", ports[i].name), static_cast<double>(t.port_tx[i]));
    struct g {
        const char* name;
        const char* help;
        double rate_view::port::*f;
    };
    for (const g& x : {g{"stentor_port_rx_pps", "Receive packets/s per port over the last tick.", &rate_view::port::rx_pps},
                       g{"stentor_port_tx_pps", "Transmit packets/s per port over the last tick.", &rate_view::port::tx_pps},
                       g{"stentor_port_rx_bps", "Receive bits/s per port (ethdev bytes).", &rate_view::port::rx_bps},
                       g{"stentor_port_tx_bps", "Transmit bits/s per port (ethdev bytes).", &rate_view::port::tx_bps}}) {
        head(o, x.name, "gauge", x.help);
        for (const auto& p : rates.ports) line(o, x.name, lbl("port", p.name), p.*x.f);
    }
    struct gl {
        const char* name;
        const char* help;
        double rate_view::lcore::*f;
    };
    for (const gl& x : {gl{"stentor_lcore_rx_pps", "Packets/s received per worker lcore.", &rate_view::lcore::rx_pps},
                        gl{"stentor_lcore_tx_pps", "Replicas/s sent per worker lcore.", &rate_view::lcore::tx_pps},
                        gl{"stentor_lcore_tx_bps", "Bits/s sent per worker lcore.", &rate_view::lcore::tx_bps},
                        gl{"stentor_lcore_busy_ratio", "Share of cycles in iterations that did work.", &rate_view::lcore::busy_ratio}}) {
        head(o, x.name, "gauge", x.help);
        for (const auto& l : rates.lcores) line(o, x.name, lbl("lcore", std::to_string(l.lcore_id)), l.*x.f);
    }
    head(o, "stentor_lcore_replicas_out_total", "counter", "Replicas sent per worker lcore.");
    for (size_t i = 0; i < per.size(); ++i)
        line(o, "stentor_lcore_replicas_out_total", lbl("lcore", std::to_string(ids[i])), static_cast<double>(per[i].replicas_out));

    head(o, "stentor_drops_total", "counter", "Packets dropped, by reason (stage/reason).");
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
        line(o, "stentor_drops_total", lbl("reason", std::string(dp::drop_reason_names[i])), static_cast<double>(t.drops[i]));
    head(o, "stentor_tier_misses_total", "counter", "Replicas not delivered, by listener tier.");
    for (size_t i = 0; i < dp::max_tiers; ++i)
        line(o, "stentor_tier_misses_total", lbl("tier", std::to_string(i)), static_cast<double>(t.tier_misses[i]));

    const auto sessions = cp.state().sessions();
    size_t speakers = 0;
    for (const auto& s : sessions) speakers += s.speakers.size();
    head(o, "stentor_sessions", "gauge", "Sessions.");
    line(o, "stentor_sessions", "", static_cast<double>(sessions.size()));
    head(o, "stentor_speakers", "gauge", "Registered speakers.");
    line(o, "stentor_speakers", "", static_cast<double>(speakers));
    const auto tiers = cp.state().listeners_per_tier();
    head(o, "stentor_listeners", "gauge", "Listeners, by tier.");
    for (size_t i = 0; i < dp::max_tiers; ++i) line(o, "stentor_listeners", lbl("tier", std::to_string(i)), static_cast<double>(tiers[i]));

    const auto rep = cp.adm().report();
    head(o, "stentor_admission_refusals_total", "counter", "Refused joins, by reason.");
    for (const auto& [k, v] : rep.refusals) line(o, "stentor_admission_refusals_total", lbl("reason", k), static_cast<double>(v));
    head(o, "stentor_admission_capacity_pps", "gauge", "Fan-out replicas/s admission plans with (after headroom and any overload cap).");
    line(o, "stentor_admission_capacity_pps", "",
         rep.overload_cap_pps ? std::min(*rep.overload_cap_pps, rep.fanout_capacity_pps) : rep.fanout_capacity_pps);
    head(o, "stentor_admission_planned_pps", "gauge", "Replicas/s of the admitted listeners.");
    line(o, "stentor_admission_planned_pps", "", rep.used_pps);
    head(o, "stentor_admission_port_capacity_bps", "gauge", "Egress bits/s admission plans with per port.");
    for (const auto& p : rep.ports) line(o, "stentor_admission_port_capacity_bps", lbl("port", p.name), p.capacity_bps);
    head(o, "stentor_admission_port_planned_bps", "gauge", "Egress bits/s of the admitted listeners per port.");
    for (const auto& p : rep.ports) line(o, "stentor_admission_port_planned_bps", lbl("port", p.name), p.used_bps);

    const auto ov = cp.overload().status();
    head(o, "stentor_overload_active", "gauge", "1 while the overload controller holds capacity down.");
    line(o, "stentor_overload_active", "", ov.state == "overloaded" ? 1 : 0);
    head(o, "stentor_shed_events_total", "counter", "Shed actions of the overload controller.");
    line(o, "stentor_shed_events_total", "", static_cast<double>(ov.shed_events));
    head(o, "stentor_listeners_shed_total", "counter", "Listeners shed, by tier.");
    for (size_t i = 0; i < dp::max_tiers; ++i)
        line(o, "stentor_listeners_shed_total", lbl("tier", std::to_string(i)), static_cast<double>(ov.shed_by_tier[i]));
    return o;
}

}  // namespace stentor::control
