#include "telemetry.h"

#include <cmath>
#include <cstdio>
#include <mutex>

#include <rte_telemetry.h>

#include "control_plane.h"
#include "metrics.h"

namespace stentor::control {
namespace {

std::mutex g_mu;                 // telemetry runs callbacks on its own thread
control_plane* g_cp = nullptr;

void flatten_into(const nlohmann::json& j, const std::string& prefix, nlohmann::json& out) {
    if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it)
            flatten_into(it.value(), prefix.empty() ? it.key() : prefix + "/" + it.key(), out);
    } else if (j.is_array()) {
        for (size_t i = 0; i < j.size(); ++i) flatten_into(j[i], prefix + "/" + std::to_string(i), out);
    } else {
        out[prefix] = j;
    }
}

nlohmann::json build(const std::string& cmd) {
    // The counters' meanings come from the lists and need no relay.
    if (cmd == "/stentor/help") return counter_help_json();
    std::lock_guard g(g_mu);
    if (g_cp == nullptr) return nlohmann::json::object();
    control_plane& cp = *g_cp;
    if (cmd == "/stentor/stats") {
        auto s = stats_json(cp);
        s.erase("capacity");   // its own command: keeps this one under 256 entries
        return s;
    }
    if (cmd == "/stentor/drops") return drops_json(cp);
    if (cmd == "/stentor/sessions") return sessions_json(cp);
    if (cmd == "/stentor/ports") return ports_json(cp);
    if (cmd == "/stentor/lcores") return lcores_json(cp);
    if (cmd == "/stentor/capacity") return capacity_json(cp);
    if (cmd == "/stentor/events") return events_json(cp, 0);
    return nlohmann::json::object();
}

int on_cmd(const char* cmd, const char* /*params*/, rte_tel_data* d) {
    nlohmann::json flat;
    try {
        flat = telemetry_flatten(build(cmd));
    } catch (const std::exception&) {
        return -1;
    }
    rte_tel_data_start_dict(d);
    size_t n = 0;
    for (auto it = flat.begin(); it != flat.end() && n < RTE_TEL_MAX_DICT_ENTRIES; ++it, ++n) {
        std::string k = it.key().substr(0, RTE_TEL_MAX_STRING_LEN - 1);
        const auto& v = it.value();
        if (v.is_number_unsigned()) {
            rte_tel_data_add_dict_u64(d, k.c_str(), v.get<uint64_t>());
        } else if (v.is_number_integer()) {
            rte_tel_data_add_dict_int(d, k.c_str(), static_cast<int>(v.get<int64_t>()));
        } else if (v.is_number_float()) {
            const double x = v.get<double>();
            if (x >= 0 && x < 1.8e19 && x == std::floor(x)) {
                rte_tel_data_add_dict_u64(d, k.c_str(), static_cast<uint64_t>(x));
            } else {
                char b[40];
                std::snprintf(b, sizeof b, "%.6g", x);
                rte_tel_data_add_dict_string(d, k.c_str(), b);
            }
        } else if (v.is_string()) {
            rte_tel_data_add_dict_string(d, k.c_str(), v.get<std::string>().substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
        } else if (v.is_boolean()) {
            rte_tel_data_add_dict_int(d, k.c_str(), v.get<bool>() ? 1 : 0);
        } else {
            rte_tel_data_add_dict_string(d, k.c_str(), "null");
        }
    }
    return 0;
}

}  // namespace

nlohmann::json telemetry_flatten(const nlohmann::json& j) {
    nlohmann::json out = nlohmann::json::object();
    flatten_into(j, "", out);
    return out;
}

nlohmann::json telemetry_query(const std::string& cmd) { return telemetry_flatten(build(cmd)); }

void telemetry_attach(control_plane* cp) {
    static std::once_flag once;
    std::call_once(once, [] {
        const struct {
            const char* cmd;
            const char* help;
        } cmds[] = {
            {"/stentor/stats", "Stentor counters, listeners per tier, refusals, overload state"},
            {"/stentor/drops", "Stentor drops by reason (stage/reason) and tier misses"},
            {"/stentor/sessions", "Stentor sessions"},
            {"/stentor/ports", "Stentor ports with packets/s and bits/s"},
            {"/stentor/lcores", "Stentor worker lcores with packets/s and busy ratio"},
            {"/stentor/capacity", "Stentor admission capacity"},
            {"/stentor/events", "Stentor overload shed events"},
            {"/stentor/help", "Stentor counters: what each name in /stentor/stats and /stentor/drops means"},
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
