// The control plane's numbers as DPDK telemetry commands, readable with
// `dpdk-telemetry.py -f <file-prefix>` next to the EAL's own (/ethdev/...):
//   /stentor/stats /stentor/drops /stentor/sessions /stentor/ports
//   /stentor/lcores /stentor/capacity /stentor/events /stentor/help
// Each answers a flat dict ("capacity/planned_pps": 1234, ...): telemetry
// in DPDK 22.11 nests containers only one level deep and caps a dict at 256
// entries, so nested JSON is flattened with '/'-joined keys.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace stentor::control {

class control_plane;

// Register the commands once per process and point them at `cp` (nullptr
// detaches: the commands then answer an empty dict).
void telemetry_attach(control_plane* cp);
// Detach only if `cp` is the one attached (control_plane's destructor).
void telemetry_detach(control_plane* cp);

// What a command answers, as JSON (for tests; the same data the callback adds).
nlohmann::json telemetry_query(const std::string& cmd);

// The flattening used by the callbacks.
nlohmann::json telemetry_flatten(const nlohmann::json& j);

}  // namespace stentor::control
