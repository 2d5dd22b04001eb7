#include "telemetry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include <rte_telemetry.h>

#include "control_plane.h"
#include "json_text.h"
#include "metrics.h"
#include "version.h"

namespace stentor::control {
namespace {

using nlohmann::json;

std::mutex g_mu;                 // telemetry runs callbacks on its own threads
control_plane* g_cp = nullptr;

// DPDK 22.11's limits (rte_telemetry.h; the 16 KiB answer is telemetry.c's
// MAX_OUTPUT_LEN, which it reports as max_output_len in /info).
constexpr size_t max_dict = RTE_TEL_MAX_DICT_ENTRIES;
constexpr size_t max_array = RTE_TEL_MAX_ARRAY_ENTRIES;
constexpr size_t max_string = RTE_TEL_MAX_STRING_LEN - 1;
// Ids in one page of /stentor/sessions and /stentor/recordings.
constexpr size_t page_ids = 256;
// Shed events: the sessions named per event (largest first).
constexpr size_t event_sessions = 32;

json error(const std::string& code, const std::string& reason) { return {{"error", code}, {"reason", reason}}; }

struct refusal {
    json answer;
};

[[noreturn]] void refuse(const std::string& code, const std::string& reason) { throw refusal{error(code, reason)}; }

std::string trimmed(const char* p) {
    std::string_view s = p != nullptr ? p : "";
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    return std::string(s);
}

std::optional<uint64_t> parse_u64(std::string_view s) {
    uint64_t v = 0;
    if (s.empty()) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

void no_param(const std::string& cmd, const std::string& p) {
    if (!p.empty()) refuse("invalid", cmd + " takes no parameter (got \"" + p + "\")");
}

uint64_t id_param(const std::string& cmd, const std::string& p, const char* what) {
    if (p.empty()) refuse("invalid", cmd + " needs a parameter: " + cmd + ",<" + what + ">");
    const auto v = parse_u64(p);
    if (!v || *v > 0xffffffffULL) refuse("invalid", "\"" + p + "\" is not a " + what + " (an integer 0..4294967295)");
    return *v;
}

// A cursor: absent (start) or an id; the page holds the ids after it.
uint64_t cursor_param(const std::string& p) {
    if (p.empty()) return 0;
    const auto v = parse_u64(p);
    if (!v) refuse("invalid", "\"" + p + "\" is not a cursor (the \"next\" of the previous page, an integer)");
    return *v + 1;
}

json id_page(std::vector<uint64_t> ids, uint64_t from) {
    std::sort(ids.begin(), ids.end());
    json page = json::array();
    auto it = std::lower_bound(ids.begin(), ids.end(), from);
    for (; it != ids.end() && page.size() < page_ids; ++it) page.push_back(*it);
    json o{{"total", ids.size()}, {"ids", page}};
    if (it != ids.end()) o["next"] = page.back();
    return o;
}

// "a/b/c" names as nested objects ({"a": {"b": {"c": v}}}); a name that is
// both a value and a prefix keeps its value under "_".
json nest(const std::vector<std::pair<std::string, json>>& items) {
    json root = json::object();
    for (const auto& [name, v] : items) {
        json* at = &root;
        size_t start = 0;
        for (;;) {
            const size_t slash = name.find('/', start);
            const std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
            if (slash == std::string::npos) {
                if ((*at)[part].is_object()) (*at)[part]["_"] = v;
                else (*at)[part] = v;
                break;
            }
            json& next = (*at)[part];
            if (!next.is_null() && !next.is_object()) next = json{{"_", next}};
            at = &next;
            start = slash + 1;
        }
    }
    return root;
}

// The subtree of `tree` at "a/b" (or all of it for "").
json subtree(const json& tree, const std::string& prefix, const std::string& cmd) {
    if (prefix.empty()) return tree;
    const json* at = &tree;
    size_t start = 0;
    while (start <= prefix.size()) {
        const size_t slash = prefix.find('/', start);
        const std::string part = prefix.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (!at->is_object() || !at->contains(part)) refuse("not_found", cmd + ": nothing named \"" + prefix + "\"");
        at = &(*at)[part];
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return at->is_object() ? *at : json{{prefix.substr(prefix.rfind('/') + 1), *at}};
}

std::vector<std::pair<std::string, json>> all_counters(control_plane& cp) {
    std::vector<std::pair<std::string, json>> items;
    for (const auto& [k, v] : cp.rel().counters(true)) items.emplace_back(k, v);
    if (auto* d = cp.desk())
        d->stats().for_each([&](const char* name, const char*, uint64_t v) { items.emplace_back(std::string("join/") + name, v); });
    return items;
}

json session_answer(control_plane& cp, uint64_t id) {
    const auto v = cp.state().session(static_cast<uint32_t>(id));
    if (!v) refuse("not_found", "no session " + std::to_string(id));
    return session_json(*v, &cp.rel());
}

json port_answer(control_plane& cp, const std::string& p) {
    if (p.empty()) refuse("invalid", "/stentor/port needs a parameter: /stentor/port,<name> (or its index)");
    const json ports = ports_json(cp)["ports"];
    const auto idx = parse_u64(p);
    for (size_t i = 0; i < ports.size(); ++i)
        if (ports[i]["name"] == p || (idx && *idx == i)) return ports[i];
    refuse("not_found", "no port \"" + p + "\"");
}

json lcores_answer(control_plane& cp) {
    const json l = lcores_json(cp);
    json by_id = json::object();
    for (const auto& o : l["lcores"]) by_id[std::to_string(o["lcore"].get<unsigned>())] = o;
    return {{"lcores", by_id}, {"interval_s", l["interval_s"]}};
}

json lcore_answer(control_plane& cp, const std::string& p) {
    const uint64_t id = id_param("/stentor/lcore", p, "lcore id");
    const json all = lcores_json(cp);
    for (const auto& o : all["lcores"])
        if (o["lcore"] == id) return o;
    refuse("not_found", "lcore " + std::to_string(id) + " is not a worker lcore");
}

json events_answer(control_plane& cp, const std::string& p, size_t budget) {
    uint64_t after = 0;
    if (!p.empty()) {
        const auto v = parse_u64(p);
        if (!v) refuse("invalid", "\"" + p + "\" is not an event id (the \"next\" of the previous page)");
        after = *v;
    }
    json events = json::object();
    json all = events_json(cp, after)["events"];
    std::optional<uint64_t> next, last;
    size_t used = 64;
    for (auto& e : all) {
        // The sessions an event shed from, largest first, at most
        // event_sessions of them; how many were left out is said.
        std::vector<std::pair<uint64_t, std::string>> by;
        for (auto it = e["by_session"].begin(); it != e["by_session"].end(); ++it)
            by.emplace_back(it.value().get<uint64_t>(), it.key());
        std::sort(by.begin(), by.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        json kept = json::object();
        for (size_t i = 0; i < by.size() && i < event_sessions; ++i) kept[by[i].second] = by[i].first;
        e["by_session"] = kept;
        e["by_session_omitted"] = by.size() > event_sessions ? by.size() - event_sessions : 0;
        const uint64_t id = e["id"].get<uint64_t>();
        const size_t size = json_text(telemetry_shape(e)).size() * 3 / 2 + 16;
        if (used + size > budget || events.size() == max_dict) {
            next = last.value_or(after);
            break;
        }
        used += size;
        last = id;
        events[std::to_string(id)] = e;
    }
    json o{{"events", events}};
    if (next) o["next"] = *next;
    return o;
}

json help_answer(const std::string& p) {
    const json h = counter_help_json();
    if (p.empty()) {
        std::map<std::string, uint64_t> groups;
        for (auto it = h.begin(); it != h.end(); ++it) ++groups[it.key().substr(0, it.key().find('/'))];
        json g = json::object();
        for (const auto& [k, n] : groups) g[k] = n;
        return {{"groups", g}, {"usage", "/stentor/help,<counter name or prefix, e.g. drop/ingress>"}};
    }
    if (h.contains(p)) return {{p, h[p]}};
    std::vector<std::pair<std::string, json>> items;
    for (auto it = h.begin(); it != h.end(); ++it)
        if (it.key().starts_with(p + "/")) items.emplace_back(it.key().substr(p.size() + 1), it.value());
    if (items.empty()) refuse("not_found", "no counter named \"" + p + "\" or under it");
    return nest(items);
}

json answer_of(const std::string& cmd, const std::string& p, size_t budget) {
    if (cmd == "/stentor/help") return help_answer(p);
    if (cmd == "/stentor/build") {
        no_param(cmd, p);
        const build_info b = build();
        return {{"version", b.version},       {"revision", b.git_revision}, {"dpdk", b.dpdk_runtime},
                {"dpdk_build", b.dpdk_build}, {"buildtype", b.build_type},  {"cpu_arch", b.cpu_arch}};
    }
    if (g_cp == nullptr) refuse("unavailable", "no relay is running in this process");
    control_plane& cp = *g_cp;
    if (cmd == "/stentor/stats") {
        no_param(cmd, p);
        auto s = stats_json(cp);
        s.erase("capacity");   // /stentor/capacity
        s.erase("counters");   // /stentor/counters
        return s;
    }
    if (cmd == "/stentor/counters") return subtree(nest(all_counters(cp)), p, cmd);
    if (cmd == "/stentor/drops") {
        no_param(cmd, p);
        const json d = drops_json(cp);
        std::vector<std::pair<std::string, json>> items;
        for (auto it = d["drops"].begin(); it != d["drops"].end(); ++it) items.emplace_back(it.key(), it.value());
        return {{"drops", nest(items)}, {"tier_misses", d["tier_misses"]}};
    }
    if (cmd == "/stentor/sessions") {
        const uint64_t from = cursor_param(p);
        std::vector<uint64_t> ids;
        for (const auto& s : cp.state().sessions()) ids.push_back(s.id);
        return id_page(std::move(ids), from);
    }
    if (cmd == "/stentor/session") return session_answer(cp, id_param(cmd, p, "session id"));
    if (cmd == "/stentor/ports") {
        no_param(cmd, p);
        return ports_json(cp);
    }
    if (cmd == "/stentor/port") return port_answer(cp, p);
    if (cmd == "/stentor/lcores") {
        no_param(cmd, p);
        return lcores_answer(cp);
    }
    if (cmd == "/stentor/lcore") return lcore_answer(cp, p);
    if (cmd == "/stentor/capacity") {
        no_param(cmd, p);
        return capacity_json(cp);
    }
    if (cmd == "/stentor/events") return events_answer(cp, p, budget);
    if (cmd == "/stentor/recordings") {
        const uint64_t from = cursor_param(p);
        std::vector<uint64_t> ids;
        for (const auto& r : cp.rel().recordings()) ids.push_back(r.session_id);
        return id_page(std::move(ids), from);
    }
    if (cmd == "/stentor/recording") {
        const uint64_t id = id_param(cmd, p, "session id");
        const auto r = cp.rel().recording(static_cast<uint32_t>(id));
        if (!r) refuse("not_found", "session " + std::to_string(id) + " has no recording");
        return recording_json(*r);
    }
    refuse("unknown", "no command " + cmd);
}

// ------------------------------------------------------------------ shape

std::string key_of(const std::string& k) {
    std::string s = k.empty() ? "_" : k;
    for (char& c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/')) c = '_';
    return s.substr(0, max_string);
}

json rounded(double x) {
    if (!std::isfinite(x)) return 0;
    if (x < 0) return static_cast<int64_t>(std::llround(x));
    return static_cast<uint64_t>(std::llround(x));
}

// A fraction as an integer in the unit its key names.
std::pair<std::string, json> fraction(const std::string& k, double x) {
    const auto with = [&](std::string_view suffix, std::string_view unit, double scale) -> std::optional<std::pair<std::string, json>> {
        if (k.size() > suffix.size() && k.ends_with(suffix))
            return std::pair{k.substr(0, k.size() - suffix.size()) + std::string(unit), rounded(x * scale)};
        return std::nullopt;
    };
    if (auto r = with("_ratio", "_ppm", 1e6)) return *r;
    if (auto r = with("_s", "_ms", 1e3)) return *r;
    if (auto r = with("_mbps", "_kbps", 1e3)) return *r;
    return {k, rounded(x)};
}

json scalar(const json& v) {
    if (v.is_boolean()) return v.get<bool>() ? 1u : 0u;
    if (v.is_number_float()) return rounded(v.get<double>());
    return v;
}

}  // namespace

json telemetry_shape(const json& j) {
    if (j.is_object()) {
        json out = json::object();
        for (auto it = j.begin(); it != j.end(); ++it) {
            const json& v = it.value();
            if (v.is_null()) continue;
            if (v.is_number_float()) {
                auto [k, x] = fraction(it.key(), v.get<double>());
                out[key_of(k)] = x;
            } else {
                out[key_of(it.key())] = telemetry_shape(v);
            }
        }
        return out;
    }
    if (j.is_array()) {
        bool numbers = true, strings = true;
        for (const auto& e : j) {
            numbers = numbers && (e.is_number() || e.is_boolean());
            strings = strings && e.is_string();
        }
        if (numbers || strings) {
            json out = json::array();
            for (const auto& e : j) out.push_back(scalar(e));
            return out;
        }
        json out = json::object();   // DPDK arrays hold scalars only
        for (size_t i = 0; i < j.size(); ++i)
            if (!j[i].is_null()) out[std::to_string(i)] = telemetry_shape(j[i]);
        return out;
    }
    return scalar(j);
}

namespace {

// What DPDK 22.11 cannot send whole; nullopt when it fits.
std::optional<std::string> over_limits(const json& j, const std::string& path) {
    if (j.is_object()) {
        if (j.size() > max_dict)
            return (path.empty() ? std::string("the answer") : path) + " has " + std::to_string(j.size()) +
                   " entries, more than a telemetry dict holds (" + std::to_string(max_dict) + ")";
        for (auto it = j.begin(); it != j.end(); ++it)
            if (auto r = over_limits(it.value(), path.empty() ? it.key() : path + "/" + it.key())) return r;
    } else if (j.is_array() && j.size() > max_array) {
        return path + " has " + std::to_string(j.size()) + " entries, more than a telemetry array holds (" +
               std::to_string(max_array) + ")";
    }
    return std::nullopt;
}

// Bytes DPDK writes for it: its JSON puts a space after every ':' and ','.
// json_text: a string that is not UTF-8 (a session's name) counts as its
// U+FFFDs, at least its own size, instead of throwing.
size_t rendered_size(const json& j) {
    size_t n = json_text(j).size();
    if (j.is_structured())
        for (const auto& e : j) n += 2 + rendered_size(e) - json_text(e).size();
    return n;
}

json checked(const std::string& cmd, const json& shaped) {
    if (auto why = over_limits(shaped, ""))
        return error("too_large", *why + ": ask for less (see docs/metrics.md, Telemetry)");
    const size_t size = rendered_size(shaped) + cmd.size() + 8;
    if (size > telemetry_max_output)
        return error("too_large", "the answer would take " + std::to_string(size) + " bytes, more than DPDK telemetry's " +
                                      std::to_string(telemetry_max_output) +
                                      ": ask for less (a parameter, see docs/metrics.md, Telemetry)");
    return shaped;
}

json answer(const std::string& cmd, const std::string& params) {
    std::lock_guard g(g_mu);
    try {
        return checked(cmd, telemetry_shape(answer_of(cmd, params, telemetry_max_output - cmd.size() - 64)));
    } catch (const refusal& r) {
        return r.answer;
    } catch (const std::exception& e) {
        return error("internal", e.what());
    }
}

// ------------------------------------------------------------------ DPDK

std::string tel_string(const std::string& s) {
    // DPDK keeps 127 bytes; a longer string (a recording's path) keeps its
    // end, which tells more than its start.
    return s.size() <= max_string ? s : "..." + s.substr(s.size() - (max_string - 3));
}

void fill_dict(rte_tel_data* d, const json& o);

rte_tel_data* tel_container(const json& v) {
    rte_tel_data* c = rte_tel_data_alloc();
    if (c == nullptr) return nullptr;
    if (v.is_object()) {
        fill_dict(c, v);
        return c;
    }
    bool negative = false, strings = !v.empty();
    for (const auto& e : v) {
        negative = negative || (e.is_number_integer() && !e.is_number_unsigned());
        strings = strings && e.is_string();
    }
    rte_tel_data_start_array(c, strings ? RTE_TEL_STRING_VAL : negative ? RTE_TEL_INT_VAL : RTE_TEL_U64_VAL);
    for (const auto& e : v) {
        if (strings) rte_tel_data_add_array_string(c, tel_string(e.get<std::string>()).c_str());
        else if (negative) rte_tel_data_add_array_int(c, static_cast<int>(std::clamp<int64_t>(e.get<int64_t>(), INT32_MIN, INT32_MAX)));
        else rte_tel_data_add_array_u64(c, e.get<uint64_t>());
    }
    return c;
}

void fill_dict(rte_tel_data* d, const json& o) {
    rte_tel_data_start_dict(d);
    for (auto it = o.begin(); it != o.end(); ++it) {
        const char* k = it.key().c_str();
        const json& v = it.value();
        if (v.is_structured()) {
            rte_tel_data* c = tel_container(v);
            if (c != nullptr && rte_tel_data_add_dict_container(d, k, c, 0) != 0) rte_tel_data_free(c);
        } else if (v.is_number_unsigned()) {
            rte_tel_data_add_dict_u64(d, k, v.get<uint64_t>());
        } else if (v.is_number_integer()) {
            rte_tel_data_add_dict_int(d, k, static_cast<int>(std::clamp<int64_t>(v.get<int64_t>(), INT32_MIN, INT32_MAX)));
        } else if (v.is_string()) {
            rte_tel_data_add_dict_string(d, k, tel_string(v.get<std::string>()).c_str());
        }
    }
}

int on_cmd(const char* cmd, const char* params, rte_tel_data* d) {
    fill_dict(d, answer(cmd, trimmed(params)));
    return 0;
}

}  // namespace

json telemetry_query(const std::string& cmd, const std::string& params) { return answer(cmd, params); }

void telemetry_attach(control_plane* cp) {
    static std::once_flag once;
    std::call_once(once, [] {
        // Help texts: DPDK keeps 63 characters.
        const struct {
            const char* cmd;
            const char* help;
        } cmds[] = {
            {"/stentor/stats", "Stentor summary: sessions, listeners, refusals, overload"},
            {"/stentor/counters", "Stentor counters, nested. Param: prefix (drop/ingress)"},
            {"/stentor/drops", "Stentor drops by stage and reason, tier misses"},
            {"/stentor/sessions", "Stentor session ids, paged. Param: next of the last page"},
            {"/stentor/session", "Stentor session with counters. Param: session id"},
            {"/stentor/ports", "Stentor ports with their NIC counters"},
            {"/stentor/port", "Stentor port. Param: port name or index"},
            {"/stentor/lcores", "Stentor worker lcores and their counters"},
            {"/stentor/lcore", "Stentor worker lcore. Param: lcore id"},
            {"/stentor/capacity", "Stentor admission capacity"},
            {"/stentor/events", "Stentor shed events, paged. Param: next of the last page"},
            {"/stentor/recordings", "Stentor recordings' session ids, paged. Param: next"},
            {"/stentor/recording", "Stentor recording. Param: session id"},
            {"/stentor/build", "Stentor version, git revision, DPDK version"},
            {"/stentor/help", "Stentor counter help. Param: counter name or prefix"},
        };
        for (const auto& c : cmds) rte_telemetry_register_cmd(c.cmd, on_cmd, c.help);
    });
    std::lock_guard g(g_mu);
    g_cp = cp;
}

void telemetry_detach(control_plane* cp) {
    std::lock_guard g(g_mu);
    if (g_cp == cp) g_cp = nullptr;
}

}  // namespace stentor::control
