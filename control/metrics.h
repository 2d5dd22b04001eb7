// The numbers the control plane exports, built once here and served three
// ways: JSON for the API and stentorctl, Prometheus text at /metrics, and
// DPDK telemetry commands (/stentor/...). Names are stable: drop reasons
// keep the dp_counters.h names ("ingress/udp_port").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "state.h"

namespace stentor::control {

class control_plane;

nlohmann::json session_json(const session_view& v);
nlohmann::json sessions_json(control_plane& cp);
nlohmann::json stats_json(control_plane& cp);
nlohmann::json ports_json(control_plane& cp);
nlohmann::json lcores_json(control_plane& cp);
nlohmann::json drops_json(control_plane& cp);
nlohmann::json events_json(control_plane& cp, uint64_t after_id);
nlohmann::json capacity_json(control_plane& cp);

// Prometheus text exposition format 0.0.4.
std::string prometheus_text(control_plane& cp);

}  // namespace stentor::control
