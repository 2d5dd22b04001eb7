// The control plane's numbers as DPDK telemetry commands, readable with
// `dpdk-telemetry.py -f <file-prefix>` next to the EAL's own (/ethdev/...).
// docs/metrics.md ("Telemetry") lists every command and its parameter:
//   /stentor/stats  /stentor/counters[,<prefix>]  /stentor/drops
//   /stentor/sessions[,<after id>]  /stentor/session,<id>
//   /stentor/ports  /stentor/port,<name>  /stentor/lcores  /stentor/lcore,<id>
//   /stentor/capacity  /stentor/events[,<after id>]
//   /stentor/recordings  /stentor/recording,<session id>
//   /stentor/build  /stentor/help[,<name or prefix>]
//
// Answers are nested dicts (DPDK 22.11 nests containers), never a flat dict
// cut at 256 keys: a list that can outgrow one answer (sessions, events) is
// paged with a cursor ("next"), and an answer that would not fit DPDK's
// limits (256 entries a dict, 512 an array, 16 KiB in all) is refused with
// a reason instead of being cut. Numbers stay numbers: DPDK telemetry has no
// floating point, so a fraction is sent as an integer in a smaller unit
// named in its key (x_ratio -> x_ppm, x_s -> x_ms, x_mbps -> x_kbps; other
// fractions, packets/s and bits/s, are rounded). A bad or missing parameter
// answers {"error": <code>, "reason": <text>}.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace stentor::control {

class control_plane;

// Register the commands once per process and point them at `cp` (nullptr
// detaches: the commands then answer an error).
void telemetry_attach(control_plane* cp);
// Detach only if `cp` is the one attached (control_plane's destructor).
void telemetry_detach(control_plane* cp);

// What a command answers, as JSON exactly as the telemetry socket shows it
// (after the rules above), or {"error", "reason"}. For tests.
nlohmann::json telemetry_query(const std::string& cmd, const std::string& params = "");

// The rules above applied to any JSON: keys DPDK accepts, fractions as
// integers in the unit their key names, arrays of objects as dicts keyed by
// index, booleans as 0/1, nulls left out.
nlohmann::json telemetry_shape(const nlohmann::json& j);

// DPDK 22.11 telemetry's limits, which telemetry_query checks.
inline constexpr size_t telemetry_max_output = 16384;

}  // namespace stentor::control
