// Sums the per-lcore counters (one writer each) into named totals, the one
// place that turns dp_counters.h into the names exported by the CLI, the
// API, /metrics and telemetry. Names come from the X-macro lists there.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stentor/dp_counters.h"

namespace stentor::control {

using counter_list = std::vector<std::pair<std::string, uint64_t>>;

// Names: rx_packets, rtp_in, replicas_out, ..., drop/ingress/<reason>,
// drop/egress/<reason>, tier_misses/<t>, port/<name>/rx_packets|tx_packets.
counter_list named_counters(const dp::lcore_counters& total, const std::vector<std::string>& port_names,
                            bool include_zero);

// A service's stats struct (STENTOR_STAT_FIELDS) as <prefix>/<field>.
template <class Stats>
void append_stats(counter_list& out, const char* prefix, const Stats& s, bool include_zero) {
    s.for_each([&](const char* name, const char*, uint64_t v) {
        if (include_zero || v != 0) out.emplace_back(std::string(prefix) + "/" + name, v);
    });
}

}  // namespace stentor::control
