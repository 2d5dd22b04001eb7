#include "metrics.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <strings.h>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <rte_cycles.h>

#include "api.h"
#include "capture.h"
#include "control_plane.h"
#include "counter_clear.h"
#include "dp_memory.h"
#include "fleet_trunks.h"
#include "stentor/dp_capture.h"
#include "stentor/services/mixer.h"
#include "stentor/services/recorder.h"
#include "stentor/services/service_thread.h"
#include "stats.h"
#include "version.h"

namespace stentor::control {

using nlohmann::json;

namespace {

// The rate view's fields, named once for the JSON (key) and for /metrics
// (stentor_port_<key>, stentor_lcore_<key>).
template <class Item>
struct rate_field {
    const char* key;
    const char* help;
    double Item::*field;
};

using port_rate = rate_view::port;
using lcore_rate = rate_view::lcore;

constexpr rate_field<port_rate> port_rates[] = {
    {"rx_pps", "Receive packets/s per port over the last tick.", &port_rate::rx_pps},
    {"tx_pps", "Transmit packets/s per port over the last tick.", &port_rate::tx_pps},
    {"rx_bps", "Receive bits/s per port (ethdev bytes).", &port_rate::rx_bps},
    {"tx_bps", "Transmit bits/s per port (ethdev bytes).", &port_rate::tx_bps},
};

constexpr rate_field<lcore_rate> lcore_rates[] = {
    {"rx_pps", "Packets/s received per worker lcore.", &lcore_rate::rx_pps},
    {"tx_pps", "Replicas/s sent per worker lcore.", &lcore_rate::tx_pps},
    {"tx_bps", "Bits/s sent per worker lcore.", &lcore_rate::tx_bps},
    {"busy_ratio", "Share of cycles in iterations that did work.", &lcore_rate::busy_ratio},
};

template <class Item, size_t N>
void add_rates(json& o, const rate_field<Item> (&fields)[N], const Item& item) {
    for (const auto& f : fields) o[f.key] = item.*f.field;
}

}  // namespace

json srtp_keys_json(const std::vector<srtp_key_info>& keys) {
    json a = json::array();
    for (const auto& k : keys) {
        json o{{"id", k.id}, {"suite", srtp::name_of(k.suite)}};
        o["mki"] = k.mki.len > 0 ? json(format_mki(k.mki)) : json(nullptr);
        o["active"] = k.active;
        a.push_back(std::move(o));
    }
    return a;
}

json session_json(const session_view& v, const relay* r) {
    // What the data plane counted for a speaker (or all of a session's).
    const auto traffic = [](const dp::dp_speaker_counts& c) {
        return json{{"packets_in", c.packets}, {"bytes_in", c.bytes}, {"policed", c.policed}, {"auth_drops", c.auth_drops}};
    };
    json sp = json::array();
    for (const auto& s : v.speakers) {
        json o{{"ip", s.ip6 ? format_ipv6(*s.ip6) : format_ipv4(s.ip)}, {"port", s.port}};
        o["ssrc"] = s.ssrc ? json(*s.ssrc) : json(nullptr);
        o["srtp_keys"] = srtp_keys_json(s.srtp_keys);
        o["counters"] = traffic(s.counts);
        if (s.trunk) o["trunk"] = true;   // an origin's trunk flow (docs/fleet.md)
        sp.push_back(std::move(o));
    }
    json tiers = json::array();
    for (unsigned t = 0; t < dp::max_tiers; ++t) tiers.push_back(v.listeners_per_tier[t]);
    json o{{"id", v.id},
           {"name", v.name},
           {"mode", name_of(v.mode)},
           {"udp_port", v.udp_port},
           {"max_listeners", v.max_listeners},
           {"recording", v.recording},
           {"frame_ms", v.frame_ms},
           {"max_bitrate_kbps", v.max_bitrate_kbps},
           {"listeners", v.nb_listeners},
           {"listeners_per_tier", tiers},
           {"listeners_ipv6", v.nb_listeners6},
           {"speakers", sp}};
    if (v.trunk) o["trunk"] = true;   // made by the fleet's trunks, not the API (docs/fleet.md)
    // SRTP: the modes and which keys are held (id, suite, MKI, active):
    // never a key's bytes (docs/srtp.md).
    o["srtp"] = {{"ingress", name_of(v.srtp_ingress.value_or(srtp_ingress_mode::off))},
                 {"egress", name_of(v.srtp_egress.value_or(srtp_egress_mode::off))},
                 {"keys", srtp_keys_json(v.srtp_keys)}};
    // The key its fleet trunk listeners' copy is sealed with (docs/fleet.md
    // "Trunk authentication"): its id and suite, never its bytes.
    if (!v.trunk_keys.empty()) o["srtp"]["trunk_keys"] = srtp_keys_json(v.trunk_keys);
    // Where each protected SSRC's numbering stands (docs/srtp.md "Late
    // joiners and the ROC"): a listener that joins now starts at `roc` and
    // `seq` (RFC 3711 3.3.1's ROC and s_l), which the application hands it
    // with the key. Null before the SSRC's first protected packet.
    if (v.srtp_egress.value_or(srtp_egress_mode::off) == srtp_egress_mode::session_key || !v.srtp_streams.empty()) {
        json streams = json::array();
        for (const auto& st : v.srtp_streams) {
            json e{{"ssrc", st.ssrc}};
            if (st.next_index != 0) {
                e["next_index"] = st.next_index;
                e["roc"] = st.next_index >> 16;
                e["seq"] = st.next_index & 0xffff;
            } else {
                e["next_index"] = nullptr;
                e["roc"] = nullptr;
                e["seq"] = nullptr;
            }
            // The journal's reservation (docs/srtp.md "Egress reservations"):
            // null on a relay without a journal.
            if (st.reserved == dp::srtp_egress_unlimited) e["reserved_below"] = nullptr;
            else e["reserved_below"] = st.reserved;
            streams.push_back(std::move(e));
        }
        o["srtp"]["streams"] = std::move(streams);
    }
    // Since the session was created (docs/metrics.md, per-session series).
    json counters = traffic(v.tally.speakers);
    counters["joins"] = v.tally.joins;
    counters["leaves"] = v.tally.leaves;
    counters["consent_expired"] = v.tally.consent_expired;
    counters["listeners_shed"] = v.tally.shed;
    o["counters"] = counters;
    if (r != nullptr && v.mode == session_mode::mix) {
        // What the mixer's encoder runs with (libopus' own answer), null
        // until the session's first frame; the reason if the mix failed.
        json enc = nullptr;
        if (const auto e = r->mix_encoder(v.id))
            enc = {{"channels", e->channels},
                   {"bitrate_bps", e->bitrate},
                   {"complexity", e->complexity},
                   {"settings_version", e->settings_version}};
        const auto err = r->mix_error(v.id);
        o["mix"] = {{"encoder", enc}, {"error", err ? json(*err) : json(nullptr)}};
    }
    return o;
}

// A recording as the API and stentorctl show it (docs/api.md, docs/audio.md).
json recording_json(const recording_info& r) {
    json tracks = json::array();
    for (const auto& t : r.tracks)
        tracks.push_back({{"ssrc", t.ssrc},
                          {"path", t.path},
                          {"start_offset_s", t.start_offset_s},
                          {"duration_s", t.duration_s},
                          {"bytes", t.bytes},
                          {"packets", t.stats.packets},
                          {"lost", t.stats.lost},
                          {"filled", t.stats.fillers},
                          {"paused_s", t.paused_s},
                          {"paused_packets", t.paused_packets},
                          {"waiting_for_disk", t.waiting_for_disk}});
    return {{"id", r.id},
            {"session", r.session_id},
            {"name", r.name},
            {"mode", r.mode},
            {"state", r.state},
            {"path", r.path.empty() ? json(nullptr) : json(r.path)},
            {"duration_s", r.duration_s},
            {"bytes", r.bytes},
            {"error", r.error.empty() ? json(nullptr) : json(r.error)},
            {"started_unix_ms", r.started_unix_ms},
            {"ended_unix_ms", r.ended_unix_ms == 0 ? json(nullptr) : json(r.ended_unix_ms)},
            // The span lost while the disk was full (filled with silence on
            // resume): the longest track's time, all tracks' packets.
            {"paused_s", r.paused_s},
            {"paused_packets", r.paused_packets},
            {"tracks", tracks}};
}

json sessions_json(control_plane& cp) {
    json a = json::array();
    for (const auto& v : cp.state().sessions()) a.push_back(session_json(v, &cp.rel()));
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

json stats_json(control_plane& cp, const api_status* api) {
    json counters = json::object();
    for (const auto& [k, v] : cp.rel().counters(true)) counters[k] = v;
    if (api != nullptr)
        api->counters.for_each([&](const char* name, const char*, uint64_t v) { counters[std::string("api/") + name] = v; });
    if (auto* d = cp.desk())
        d->stats().for_each([&](const char* name, const char*, uint64_t v) { counters[std::string("join/") + name] = v; });
    const auto tiers = cp.state().listeners_per_tier();
    const auto sessions = cp.state().sessions();
    size_t speakers = 0;
    uint64_t listeners6 = 0;
    for (const auto& s : sessions) {
        speakers += s.speakers.size();
        listeners6 += s.nb_listeners6;
    }
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
            {"listeners_ipv6", listeners6},
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
    const auto nics = cp.rel().nic_stats();
    for (size_t i = 0; i < reps.size(); ++i) {
        const auto& p = reps[i];
        json o{{"name", p.name},       {"device", p.device},     {"driver", p.driver},
               {"port_id", p.port_id}, {"mac", p.mac},           {"link_up", p.link_up},
               {"speed_mbps", p.speed_mbps}};
        o["rx_packets"] = i < dp::max_ports ? t.port_rx[i] : 0;
        o["tx_packets"] = i < dp::max_ports ? t.port_tx[i] : 0;
        if (i < rates.ports.size()) add_rates(o, port_rates, rates.ports[i]);
        // The NIC's own counters (rte_eth_stats) under testpmd's names; null
        // if the PMD keeps none (counter_clear.h).
        o["nic"] = i < nics.size() ? nic_json(nics[i]) : json(nullptr);
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
        json o{{"lcore", ids[i]}};
        per[i].for_each_scalar([&](const char* name, const char*, uint64_t v) { o[name] = v; });
        if (i < rates.lcores.size()) add_rates(o, lcore_rates, rates.lcores[i]);
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

json counter_help_json() {
    json h = json::object();
    for_each_named(dp::lcore_counters{}, {}, [&](const std::string& name, std::string_view help, uint64_t, bool) {
        h[name] = help;
    });
    const auto services = [&](const char* prefix, const auto& stats) {
        stats.for_each([&](const char* name, const char* help, uint64_t) { h[std::string(prefix) + "/" + name] = help; });
    };
    services("mixer", svc::mixer_stats{});
    services("recorder", svc::recorder_stats{});
    services("mixer/thread", svc::service_thread_stats{});
    services("recorder/thread", svc::service_thread_stats{});
    services("api", api_stats{});
    services("capture", dp::capture_lcore_stats{});
    services("capture", capture_stats{});
    return h;
}

namespace {

// Prometheus text exposition format 0.0.4: a family's HELP and TYPE once,
// then its samples.
class exposition {
public:
    explicit exposition(std::string& o) : _o(o) {}

    exposition& family(std::string_view name, const char* type, std::string_view help) {
        _name = name;
        _o += "# HELP ";
        _o += name;
        _o += ' ';
        // HELP escapes backslash and newline; a list's help starts lower-case.
        for (size_t i = 0; i < help.size(); ++i) {
            const char c = help[i];
            if (c == '\\') _o += "\\\\";
            else if (c == '\n') _o += "\\n";
            else _o += i == 0 ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
        }
        if (!help.empty() && help.back() != '.') _o += '.';
        _o += "\n# TYPE ";
        _o += name;
        _o += ' ';
        _o += type;
        _o += '\n';
        return *this;
    }

    exposition& sample(double v, const std::string& labels = "") {
        char b[64];
        std::snprintf(b, sizeof b, "%.17g", v);
        return put(b, labels);
    }

    // Counts exactly (a double loses them past 2^53).
    template <class T>
    exposition& sample(T v, const std::string& labels = "") requires std::is_integral_v<T> {
        return put(std::to_string(v), labels);
    }

private:
    exposition& put(const std::string& value, const std::string& labels) {
        _o += _name;
        if (!labels.empty()) _o += "{" + labels + "}";
        _o += ' ';
        _o += value;
        _o += '\n';
        return *this;
    }

    std::string& _o;
    std::string _name;
};

std::string lbl(const char* k, const std::string& v) {
    std::string e;
    for (char c : v) {
        if (c == '"' || c == '\\') e += '\\';
        if (c == '\n') {
            e += "\\n";
            continue;
        }
        e += c;
    }
    return std::string(k) + "=\"" + e + "\"";
}

// Counters of a list-generated struct (dp_counters.h, a service's stats):
// one family <prefix><field>_total per field, HELP from the list, one sample
// per labelled instance. visit(s, f) runs f(name, help, value) over s.
template <class T, class Visit>
void list_families(exposition& x, const std::string& prefix, std::string_view help_prefix,
                   const std::vector<std::pair<std::string, T>>& instances, Visit&& visit) {
    struct column {
        std::string name, help;
        std::vector<uint64_t> values;
    };
    std::vector<column> cols;
    visit(T{}, [&](const char* name, const char* help, uint64_t) {
        cols.push_back({prefix + name + "_total", std::string(help_prefix) + help, {}});
    });
    for (const auto& inst : instances) {
        size_t i = 0;
        visit(inst.second, [&](const char*, const char*, uint64_t v) { cols[i++].values.push_back(v); });
    }
    for (const auto& c : cols) {
        x.family(c.name, "counter", c.help);
        for (size_t i = 0; i < instances.size(); ++i) x.sample(c.values[i], instances[i].first);
    }
}

const auto scalars = [](const dp::lcore_counters& c, auto&& f) { c.for_each_scalar(f); };
const auto stats = [](const auto& s, auto&& f) { s.for_each(f); };

// Gauges from the rate view: one family per field, one sample per item.
template <class Item, size_t N, class Label>
void gauges(exposition& x, const char* prefix, const rate_field<Item> (&fields)[N], const std::vector<Item>& items,
            Label&& label) {
    for (const auto& f : fields) {
        x.family(std::string(prefix) + f.key, "gauge", f.help);
        for (const auto& it : items) x.sample(it.*f.field, label(it));
    }
}

// The process start, as a scraper tells restarts apart.
const double g_start_unix_s =
    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

// What the rate gauges show, as counters in base units (rate() over them
// gives the same numbers for any scrape interval), the NIC's own counters,
// and what this binary is.
void base_unit_families(exposition& x, control_plane& cp, const std::vector<dp::lcore_counters>& per,
                        const std::vector<unsigned>& ids) {
    const build_info b = build();
    x.family("stentor_build_info", "gauge",
             "Version, git revision and DPDK version of the running stentord (value always 1).")
        .sample(1, lbl("version", b.version) + "," + lbl("revision", b.git_revision) + "," + lbl("dpdk", b.dpdk_runtime));
    x.family("stentor_start_time_seconds", "gauge", "When this stentord started, Unix time in seconds.")
        .sample(g_start_unix_s);

    const double hz = static_cast<double>(rte_get_tsc_hz());
    using cycles = uint64_t dp::lcore_counters::*;
    for (const auto& [name, help, field] :
         {std::tuple{"stentor_lcore_busy_seconds_total", "Seconds a worker lcore spent in loop iterations that did work "
                                                         "(rate() is the busy ratio).", cycles{&dp::lcore_counters::busy_cycles}},
          std::tuple{"stentor_lcore_idle_seconds_total", "Seconds a worker lcore spent in empty polls.",
                     cycles{&dp::lcore_counters::idle_cycles}},
          std::tuple{"stentor_lcore_stall_seconds_total",
                     "Seconds a worker lcore did not run for longer than stall_us (preempted, steal time).",
                     cycles{&dp::lcore_counters::stall_cycles}}}) {
        x.family(name, "counter", help);
        for (size_t i = 0; i < per.size(); ++i)
            x.sample(hz > 0 ? static_cast<double>(per[i].*field) / hz : 0.0, lbl("lcore", std::to_string(ids[i])));
    }

    // The NIC's own counters (rte_eth_stats), as testpmd shows them.
    const auto reps = cp.rel().ports();
    const auto nics = cp.rel().nic_stats();
    using nic_field = uint64_t drivers::nic_stats::*;
    for (const auto& [name, help, field] : {
             std::tuple{"stentor_port_nic_rx_packets_total", "Packets the NIC received (ipackets).",
                        nic_field{&drivers::nic_stats::rx_packets}},
             std::tuple{"stentor_port_nic_tx_packets_total", "Packets the NIC sent (opackets).",
                        nic_field{&drivers::nic_stats::tx_packets}},
             std::tuple{"stentor_port_nic_rx_bytes_total", "Bytes the NIC received (ibytes).",
                        nic_field{&drivers::nic_stats::rx_bytes}},
             std::tuple{"stentor_port_nic_tx_bytes_total", "Bytes the NIC sent (obytes).",
                        nic_field{&drivers::nic_stats::tx_bytes}},
             std::tuple{"stentor_port_nic_rx_missed_total",
                        "Packets the NIC dropped: no RX descriptor free, the rx lcores did not poll in time (imissed).",
                        nic_field{&drivers::nic_stats::rx_missed}},
             std::tuple{"stentor_port_nic_rx_errors_total", "Erroneous packets the NIC received (ierrors).",
                        nic_field{&drivers::nic_stats::rx_errors}},
             std::tuple{"stentor_port_nic_tx_errors_total", "Packets the NIC failed to send (oerrors).",
                        nic_field{&drivers::nic_stats::tx_errors}},
             std::tuple{"stentor_port_nic_rx_nombuf_total", "Receive mbuf allocation failures (rx_nombuf).",
                        nic_field{&drivers::nic_stats::rx_nombuf}}}) {
        x.family(name, "counter", help);
        for (size_t i = 0; i < nics.size() && i < reps.size(); ++i)
            if (nics[i].valid) x.sample(nics[i].*field, lbl("port", reps[i].name));
    }
    x.family("stentor_port_link_up", "gauge", "1 while the port's link is up.");
    for (const auto& p : reps) x.sample(p.link_up ? 1 : 0, lbl("port", p.name));
    x.family("stentor_port_link_speed_bytes_per_second", "gauge", "The port's link speed as it reports it, in bytes/s.");
    for (const auto& p : reps) x.sample(uint64_t{p.speed_mbps} * 125000, lbl("port", p.name));

    // Admission's plan in base units (the _bps gauges above are bits/s).
    const auto rep = cp.adm().report();
    x.family("stentor_admission_port_capacity_bytes_per_second", "gauge", "Egress bytes/s admission plans with per port.");
    for (const auto& p : rep.ports) x.sample(p.capacity_bps / 8, lbl("port", p.name));
    x.family("stentor_admission_port_planned_bytes_per_second", "gauge", "Egress bytes/s of the admitted listeners per port.");
    for (const auto& p : rep.ports) x.sample(p.used_bps / 8, lbl("port", p.name));

    // The service threads that run the mixer and the recorder.
    list_families(x, "stentor_mixer_thread_", "mixer thread: ",
                  std::vector{std::pair{std::string(), cp.rel().mixer_thread_stats()}}, stats);
    list_families(x, "stentor_recorder_thread_", "recorder thread: ",
                  std::vector{std::pair{std::string(), cp.rel().recorder_thread_stats()}}, stats);
    std::map<std::string, uint64_t> by_state;
    uint64_t waiting = 0;
    for (const auto& r : cp.rel().recordings()) {
        ++by_state[r.state];
        for (const auto& t : r.tracks) waiting += t.waiting_for_disk;
    }
    x.family("stentor_recordings", "gauge", "Recordings this stentord holds, by state.");
    for (const auto& [st, n] : by_state) x.sample(n, lbl("state", st));
    x.family("stentor_recording_tracks_waiting_for_disk", "gauge",
             "Track files whose session ended while the disk held a write or fdatasync: open until it answers.")
        .sample(waiting);
}

// Per-session and per-speaker series, bounded (docs/metrics.md, "Label
// cardinality"): the sessions with the most listeners, and their speakers.
void session_families(exposition& x, const std::vector<session_view>& all, const metrics_options& mo) {
    const auto top = top_sessions(all, mo.top_sessions);
    std::vector<std::pair<const session_view*, const speaker_view*>> speakers;
    for (const auto* s : top)
        for (const auto& sp : s->speakers)
            if (speakers.size() < mo.top_speakers) speakers.emplace_back(s, &sp);
    x.family("stentor_metrics_sessions_exported", "gauge",
             "Sessions shown with per-session series (the api.metrics_top_sessions with the most listeners).")
        .sample(top.size());
    x.family("stentor_metrics_speakers_exported", "gauge",
             "Speakers shown with per-speaker series (of those sessions, at most api.metrics_top_speakers).")
        .sample(speakers.size());
    const auto sid = [](const session_view* s) { return lbl("session", std::to_string(s->id)); };
    x.family("stentor_session_info", "gauge", "A session's name and mode (value always 1).");
    for (const auto* s : top)
        x.sample(1, sid(s) + "," + lbl("name", s->name) + "," + lbl("mode", std::string(name_of(s->mode))));
    x.family("stentor_session_listeners", "gauge", "Listeners of the session.");
    for (const auto* s : top) x.sample(s->nb_listeners, sid(s));
    x.family("stentor_session_speakers", "gauge", "Registered speakers of the session.");
    for (const auto* s : top) x.sample(s->speakers.size(), sid(s));
    using tally_field = uint64_t session_tally::*;
    using counts_field = uint64_t dp::dp_speaker_counts::*;
    const std::tuple<const char*, const char*, counts_field> traffic[] = {
        {"packets_in_total", "speaker RTP packets accepted (passed every check and the policer)", &dp::dp_speaker_counts::packets},
        {"bytes_in_total", "bytes of those RTP packets (RTP header to padding)", &dp::dp_speaker_counts::bytes},
        {"policed_total", "speaker packets dropped by the speaker's token bucket", &dp::dp_speaker_counts::policed},
        {"auth_drops_total",
         "packets from a speaker's address refused as not its stream (SSRC mismatch, RTP sequence or timestamp "
         "implausible, duplicate, SSRC change)",
         &dp::dp_speaker_counts::auth_drops},
    };
    for (const auto& [suffix, help, field] : traffic) {
        x.family(std::string("stentor_session_") + suffix, "counter", std::string("Per session: ") + help + ".");
        for (const auto* s : top) x.sample(s->tally.speakers.*field, sid(s));
    }
    for (const auto& [suffix, help, field] : {
             std::tuple{"joins_total", "listeners added (API, bulk, token join, static)", tally_field{&session_tally::joins}},
             std::tuple{"leaves_total", "listeners removed by a delete or a token leave", tally_field{&session_tally::leaves}},
             std::tuple{"consent_expired_total", "token listeners removed after join.consent_timeout_s of silence",
                        tally_field{&session_tally::consent_expired}},
             std::tuple{"listeners_shed_total", "listeners shed by the overload controller", tally_field{&session_tally::shed}}}) {
        x.family(std::string("stentor_session_") + suffix, "counter", std::string("Per session: ") + help + ".");
        for (const auto* s : top) x.sample(s->tally.*field, sid(s));
    }
    for (const auto& [suffix, help, field] : traffic) {
        x.family(std::string("stentor_speaker_") + suffix, "counter", std::string("Per speaker: ") + help + ".");
        for (const auto& [s, sp] : speakers)
            x.sample(sp->counts.*field,
                     sid(s) + "," + lbl("speaker", format_peer(sp->ip, sp->ip6, sp->port)));
    }
}

}  // namespace

std::string prometheus_text(control_plane& cp, const api_status* api, const metrics_options& mo) {
    std::string o;
    o.reserve(32768);
    exposition x(o);
    const auto t = cp.totals();
    const auto rates = cp.rates();
    const auto ports = cp.prof().ports;
    const auto per = cp.rel().per_lcore();
    const auto ids = cp.rel().worker_lcores();

    // Every lcore counter of dp_counters.h, summed and per worker lcore.
    list_families(x, "stentor_", "sum over the worker lcores: ", std::vector{std::pair{std::string(), t}}, scalars);
    std::vector<std::pair<std::string, dp::lcore_counters>> by_lcore;
    for (size_t i = 0; i < per.size(); ++i) by_lcore.emplace_back(lbl("lcore", std::to_string(ids[i])), per[i]);
    list_families(x, "stentor_lcore_", "", by_lcore, scalars);

    using port_counts = uint64_t(dp::lcore_counters::*)[dp::max_ports];
    for (const auto& [name, help, counts] :
         {std::tuple{"stentor_port_rx_packets_total", "Packets received per port.", port_counts{&dp::lcore_counters::port_rx}},
          std::tuple{"stentor_port_tx_packets_total", "Packets sent per port.", port_counts{&dp::lcore_counters::port_tx}}}) {
        x.family(name, "counter", help);
        for (size_t i = 0; i < ports.size() && i < dp::max_ports; ++i) x.sample((t.*counts)[i], lbl("port", ports[i].name));
    }
    gauges(x, "stentor_port_", port_rates, rates.ports, [](const port_rate& p) { return lbl("port", p.name); });
    gauges(x, "stentor_lcore_", lcore_rates, rates.lcores,
           [](const lcore_rate& l) { return lbl("lcore", std::to_string(l.lcore_id)); });

    // Drop reasons: one family labelled by the stable name; what each means
    // (the list's help) as an info series, joinable on `reason`.
    x.family("stentor_drops_total", "counter", "Packets dropped, by reason (stage/reason).");
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i) x.sample(t.drops[i], lbl("reason", std::string(dp::drop_reason_names[i])));
    x.family("stentor_drop_reason_info", "gauge", "What each drop reason means (value always 1).");
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
        x.sample(1, lbl("reason", std::string(dp::drop_reason_names[i])) + "," +
                        lbl("help", std::string(dp::drop_reason_help[i])));
    x.family("stentor_tier_misses_total", "counter", "Replicas not delivered, by listener tier.");
    for (size_t i = 0; i < dp::max_tiers; ++i) x.sample(t.tier_misses[i], lbl("tier", std::to_string(i)));

    // The services' stats lists (stentor/services/mixer.h, recorder.h).
    list_families(x, "stentor_mixer_", "mixer: ", std::vector{std::pair{std::string(), cp.rel().mix_stats()}}, stats);
    list_families(x, "stentor_recorder_", "recorder: ", std::vector{std::pair{std::string(), cp.rel().rec_stats()}}, stats);
    // Packet capture (docs/capture.md): the workers' copies and the writer's.
    list_families(x, "stentor_capture_", "capture: ",
                  std::vector{std::pair{std::string(), cp.rel().captures().worker_stats()}}, stats);
    list_families(x, "stentor_capture_", "capture: ", std::vector{std::pair{std::string(), cp.rel().captures().stats()}}, stats);
    if (auto* d = cp.desk()) {
        list_families(x, "stentor_join_", "join desk: ", std::vector{std::pair{std::string(), d->stats()}}, stats);
        x.family("stentor_join_bindings", "gauge", "Listeners joined by token and under consent.").sample(d->bindings());
    }

    const auto sessions = cp.state().sessions();
    size_t speakers = 0;
    for (const auto& s : sessions) speakers += s.speakers.size();
    x.family("stentor_sessions", "gauge", "Sessions.").sample(sessions.size());
    x.family("stentor_speakers", "gauge", "Registered speakers.").sample(speakers);
    const auto tiers = cp.state().listeners_per_tier();
    x.family("stentor_listeners", "gauge", "Listeners, by tier.");
    for (size_t i = 0; i < dp::max_tiers; ++i) x.sample(tiers[i], lbl("tier", std::to_string(i)));
    uint64_t listeners6 = 0;
    for (const auto& s : sessions) listeners6 += s.nb_listeners6;
    x.family("stentor_listeners_ipv6", "gauge", "Listeners on IPv6 (of stentor_listeners).").sample(listeners6);
    // The data plane's tables (control/dp_memory.h), of this process.
    const dp_memory_usage mem = dp_memory_stats();
    x.family("stentor_dp_memory_bytes", "gauge",
             "Memory of the data plane's tables (listener records, sessions, flows, neighbours, policers): "
             "mapped (2 MiB slabs, kept once used, and large mappings) and in_use (allocated objects).");
    x.sample(mem.mapped_bytes, lbl("kind", "mapped"));
    x.sample(mem.in_use_bytes, lbl("kind", "in_use"));

    const auto rep = cp.adm().report();
    x.family("stentor_admission_refusals_total", "counter", "Refused joins, by reason.");
    for (const auto& [k, v] : rep.refusals) x.sample(v, lbl("reason", k));
    x.family("stentor_admission_capacity_pps", "gauge",
             "Fan-out replicas/s admission plans with (after headroom and any overload cap).")
        .sample(rep.overload_cap_pps ? std::min(*rep.overload_cap_pps, rep.fanout_capacity_pps) : rep.fanout_capacity_pps);
    x.family("stentor_admission_planned_pps", "gauge", "Replicas/s of the admitted listeners.").sample(rep.used_pps);
    x.family("stentor_admission_port_capacity_bps", "gauge", "Egress bits/s admission plans with per port.");
    for (const auto& p : rep.ports) x.sample(p.capacity_bps, lbl("port", p.name));
    x.family("stentor_admission_port_planned_bps", "gauge", "Egress bits/s of the admitted listeners per port.");
    for (const auto& p : rep.ports) x.sample(p.used_bps, lbl("port", p.name));

    const auto ov = cp.overload().status();
    x.family("stentor_overload_active", "gauge", "1 while the overload controller holds capacity down.")
        .sample(ov.state == "overloaded" ? 1 : 0);
    x.family("stentor_shed_events_total", "counter", "Shed actions of the overload controller.").sample(ov.shed_events);
    x.family("stentor_listeners_shed_total", "counter", "Listeners shed, by tier.");
    for (size_t i = 0; i < dp::max_tiers; ++i) x.sample(ov.shed_by_tier[i], lbl("tier", std::to_string(i)));

    // The API's own refusals and timeouts (api.h), and what it holds now.
    if (api != nullptr) {
        list_families(x, "stentor_api_", "api: ", std::vector{std::pair{std::string(), api->counters}}, stats);
        x.family("stentor_api_connections", "gauge", "Open API connections.").sample(api->connections);
        x.family("stentor_api_body_bytes", "gauge", "Bytes of request bodies the API holds now.").sample(api->body_bytes);
        x.family("stentor_api_body_bytes_peak", "gauge", "The most bytes of request bodies the API ever held at once.")
            .sample(api->body_bytes_peak);
        x.family("stentor_api_writes_waiting", "gauge", "Writes whose publish has not completed yet.")
            .sample(api->writes_waiting);
    }

    // [fleet] trunks (docs/fleet.md "Who a trunk may reach"): records the
    // relay's own rules refused, once each, by reason.
    cp.with_trunks([&](const trunk_reconciler& tr, const fleet::trunk_watch* watch) {
        // The registry view the plan comes from (docs/fleet.md "The
        // view"): whether it was ever read whole, how often the watch was
        // started again (an error, or the idle deadline: a member gone
        // silent), what it holds.
        if (watch != nullptr) {
            const auto ws = watch->status();
            x.family("stentor_fleet_trunk_view_loaded", "gauge",
                     "1 once the trunk watch has read the registry's relays and trunks whole.")
                .sample(ws.loaded ? 1 : 0);
            x.family("stentor_fleet_trunk_view_relays", "gauge", "Relay records in the trunk watch's view.")
                .sample(ws.relays);
            x.family("stentor_fleet_trunk_view_trunks", "gauge", "Trunk records in the trunk watch's view.")
                .sample(ws.trunks);
            x.family("stentor_fleet_trunk_watch_restarts_total", "counter",
                     "Trunk watches ended and the view read again (an etcd error, or no word for fleet's watch idle deadline).")
                .sample(ws.watch_restarts);
            x.family("stentor_fleet_trunk_plan_applies_total", "counter",
                     "Trunk plans applied (at each change of the view, and every second).")
                .sample(ws.applies);
            x.family("stentor_fleet_trunk_registry_refused_total", "counter",
                     "Registry keys the trunk watch did not act on (unreadable or misnamed), once each.")
                .sample(ws.records_refused);
        }
        const auto ts = tr.stats();
        x.family("stentor_fleet_trunk_refused_total", "counter",
                 "Trunk records refused by this relay's own rules (counted once each), by reason.");
        for (size_t i = 0; i < fleet::nb_trunk_refusal_reasons; ++i)
            x.sample(ts.refused[i], lbl("reason", fleet::trunk_refusal_names[i]));
        x.sample(ts.address_refused, lbl("reason", "peer_address_refused"));
        x.family("stentor_fleet_trunk_refused", "gauge", "Trunk records refused by this relay's own rules now.")
            .sample(ts.refused_now);
        x.family("stentor_fleet_trunk_sends", "gauge", "Trunk listeners this relay sends to.").sample(ts.sends);
        x.family("stentor_fleet_trunk_flows", "gauge", "Trunk flows this relay takes from origins.").sample(ts.flows);
        // Trunk authentication (docs/fleet.md "Trunk authentication").
        x.family("stentor_fleet_trunk_keys", "gauge", "Sessions whose trunk copies this relay protects with its trunk key.")
            .sample(ts.trunk_keys);
        x.family("stentor_fleet_trunk_flow_keys", "gauge", "Trunk flows whose speaker holds its origin's trunk key.")
            .sample(ts.flow_keys);
        x.family("stentor_fleet_trunk_flow_key_changes_total", "counter",
                 "Trunk flows moved to a restarted origin's new trunk key.")
            .sample(ts.flow_key_changes);
        // Replays into a trunk flow added again (docs/fleet.md "A trunk
        // flow added again"): where removed flows stood, bounded.
        const auto tf = cp.state().trunk_floors();
        x.family("stentor_fleet_trunk_floors", "gauge",
                 "Removed trunk flows whose replay floor this relay holds (limits.max_speakers at most).")
            .sample(tf.floors);
        x.family("stentor_fleet_trunk_floor_evictions_total", "counter",
                 "Trunk flow replay floors dropped to stay within limits.max_speakers (oldest first).")
            .sample(tf.evictions);
    });
    base_unit_families(x, cp, per, ids);
    session_families(x, sessions, mo);
    return o;
}

std::vector<const session_view*> top_sessions(const std::vector<session_view>& all, size_t n) {
    std::vector<const session_view*> v;
    v.reserve(all.size());
    for (const auto& s : all) v.push_back(&s);
    const auto first = [](const session_view* a, const session_view* b) {
        return a->nb_listeners != b->nb_listeners ? a->nb_listeners > b->nb_listeners : a->id < b->id;
    };
    n = std::min(n, v.size());
    std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), first);
    v.resize(n);
    return v;
}

bool scrape_allowed(const char* authorization, bool peer_is_loopback, const std::string& admin_token,
                    const std::string& metrics_token, bool loopback_open) {
    if (loopback_open && peer_is_loopback) return true;
    if (authorization == nullptr) return false;
    std::string_view v(authorization);
    if (v.size() < 7 || strncasecmp(v.data(), "Bearer ", 7) != 0) return false;
    const std::string presented(v.substr(7));
    // Both compared, whichever matches, so the time says nothing about which.
    const bool admin = token_equal(presented, admin_token);
    const bool scrape = !metrics_token.empty() && token_equal(presented, metrics_token);
    return admin || scrape;
}

}  // namespace stentor::control
