// The numbers the control plane exports, built once here and served three
// ways: JSON for the API and stentorctl, Prometheus text at /metrics, and
// DPDK telemetry commands (/stentor/...). Names are stable: drop reasons
// keep the dp_counters.h names ("ingress/udp_port").
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "state.h"
#include "stentor/services/recording.h"

namespace stentor::control {

class control_plane;
class relay;
struct api_status;

// With `r`, a mix session also shows its mixer state ("mix": encoder, error).
nlohmann::json session_json(const session_view& v, const relay* r = nullptr);
nlohmann::json sessions_json(control_plane& cp);
nlohmann::json recording_json(const svc::recording_info& r);
// With `api` (the API serving the request), its counters too (api/<name>).
nlohmann::json stats_json(control_plane& cp, const api_status* api = nullptr);
nlohmann::json ports_json(control_plane& cp);
nlohmann::json lcores_json(control_plane& cp);
nlohmann::json drops_json(control_plane& cp);
nlohmann::json events_json(control_plane& cp, uint64_t after_id);
nlohmann::json capacity_json(control_plane& cp);

// Every counter name /api/v1/stats and telemetry show (lcore counters,
// drop/<reason>, mixer/..., recorder/...) with its help, from the lists.
nlohmann::json counter_help_json();

// Prometheus text exposition format 0.0.4. The counters of dp_counters.h
// and of the services' stats are generated from their lists (names
// stentor_<field>_total, stentor_lcore_<field>_total{lcore},
// stentor_mixer_<field>_total, stentor_recorder_<field>_total; HELP from
// the list); drop reasons are stentor_drops_total{reason} with their help
// in stentor_drop_reason_info{reason,help}. With `api`, the API's counters
// (stentor_api_<field>_total, from STENTOR_FOREACH_API_STAT) and gauges.
//
// Then (docs/metrics.md) counters in base units for what the gauges above
// show as rates (stentor_lcore_{busy,idle,stall}_seconds_total, the NIC's
// stentor_port_nic_*_total), stentor_build_info, and per-session and
// per-speaker series for the `top_sessions` sessions with the most
// listeners and at most `top_speakers` of their speakers.
struct metrics_options {
    unsigned top_sessions = 20;
    unsigned top_speakers = 100;
};
std::string prometheus_text(control_plane& cp, const api_status* api = nullptr, const metrics_options& o = {});

// The sessions that get per-session series: the `n` with the most
// listeners, ties to the lower id, in that order.
std::vector<const session_view*> top_sessions(const std::vector<session_view>& all, size_t n);

// Who may read /metrics: the admin token, the metrics token (if set), or
// anyone from a loopback address when `loopback_open`. `authorization` is
// the request's Authorization header (nullptr: none).
bool scrape_allowed(const char* authorization, bool peer_is_loopback, const std::string& admin_token,
                    const std::string& metrics_token, bool loopback_open);

}  // namespace stentor::control
