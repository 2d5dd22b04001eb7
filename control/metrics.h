// The numbers the control plane exports, built once here and served three
// ways: JSON for the API and stentorctl, Prometheus text at /metrics, and
// DPDK telemetry commands (/stentor/...). Names are stable: drop reasons
// keep the dp_counters.h names ("ingress/udp_port").
#pragma once

#include <string>

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
std::string prometheus_text(control_plane& cp, const api_status* api = nullptr);

}  // namespace stentor::control
