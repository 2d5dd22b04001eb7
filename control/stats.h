// Sums the per-lcore counters (one writer each) into named totals, the one
// place that turns dp_counters.h into the names exported by the CLI, the
// API, /metrics and telemetry.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stentor/dp_counters.h"

namespace stentor::control {

using counter_list = std::vector<std::pair<std::string, uint64_t>>;

// Relaxed reads of counters that workers are still writing.
dp::lcore_counters snapshot_counters(const dp::lcore_counters& c) noexcept;
void accumulate(dp::lcore_counters& total, const dp::lcore_counters& c) noexcept;

// Names: rx_packets, rtp_in, replicas_out, ..., drop/ingress/<reason>,
// drop/egress/<reason>, tier_misses/<t>, port/<name>/rx_packets|tx_packets.
counter_list named_counters(const dp::lcore_counters& total, const std::vector<std::string>& port_names,
                            bool include_zero);

}  // namespace stentor::control
