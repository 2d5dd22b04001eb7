// `stentorctl clear counters` (vppctl's "clear runtime", "clear errors",
// "clear interfaces" in one): the relay records what its counters read now
// and the API's reads show the difference from then on. Nothing is written
// into a counter: every lcore stays the only writer of its own (dp_counters.h),
// the services and the NIC keep theirs, and /metrics and DPDK telemetry keep
// showing the monotonic totals Prometheus' rate() needs (docs/api.md).
//
// Which parts of an answer are counters is said here, once per read:
//   GET /api/v1/stats   "counters" (every named counter), "refusals"
//   GET /api/v1/drops   "drops", "tier_misses"
//   GET /api/v1/lcores  each lcore's dp_counters.h scalars (by lcore id)
//   GET /api/v1/ports   each port's rx_packets, tx_packets and "nic" (by name)
// Gauges and rates (sessions, listeners, capacity, pps, busy ratio) are
// never touched. A counter that went backwards since the clear (a port
// restarted its statistics) is shown as it is.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>

#include "relay.h"

namespace stentor::control {

class control_plane;
struct api_status;

// A port's NIC counters as the API shows them ("nic" of GET
// /api/v1/ports): the rte_eth_stats names, null when the PMD keeps none.
nlohmann::json nic_json(const drivers::nic_stats& n);

class counter_baseline {
public:
    // Records the baseline now (with `api`, the API's own counters too);
    // returns its time (Unix ms).
    int64_t clear(control_plane& cp, const api_status* api = nullptr);
    std::optional<int64_t> cleared_unix_ms() const;

    // The answer of a read, made relative to the last clear (unchanged if
    // there was none); adds "cleared_unix_ms" (null if never cleared).
    void stats(nlohmann::json& j) const;
    void drops(nlohmann::json& j) const;
    void lcores(nlohmann::json& j) const;
    void ports(nlohmann::json& j) const;

private:
    void apply(nlohmann::json& j, const nlohmann::json& base, const char* list, const char* key) const;

    mutable std::mutex _mu;
    std::optional<int64_t> _at;
    nlohmann::json _stats, _drops, _lcores, _ports;
};

}  // namespace stentor::control
