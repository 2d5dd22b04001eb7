// Sums the per-lcore counters (one writer each) into named totals, the one
// place that turns dp_counters.h into the names exported by the CLI, the
// API, /metrics and telemetry. Names and help come from the X-macro lists
// there (and from the services' stats lists), never from a hand-kept copy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stentor/dp_counters.h"

namespace stentor::control {

using counter_list = std::vector<std::pair<std::string, uint64_t>>;

// Every named counter of a sum with its help,
// f(std::string name, std::string_view help, uint64_t value, bool sparse):
// the lcore scalars (rx_packets, ...), port/<name>/rx_packets|tx_packets,
// drop/<stage>/<reason> and tier_misses/<t>. Sparse ones (drops, tier
// misses) are the ones listings may leave out while they are zero.
template <class F>
void for_each_named(const dp::lcore_counters& t, const std::vector<std::string>& port_names, F&& f) {
    t.for_each_scalar([&](const char* name, const char* help, uint64_t v) { f(std::string(name), help, v, false); });
    for (size_t p = 0; p < port_names.size() && p < dp::max_ports; ++p) {
        f("port/" + port_names[p] + "/rx_packets", "packets received on this port", t.port_rx[p], false);
        f("port/" + port_names[p] + "/tx_packets", "packets sent on this port", t.port_tx[p], false);
    }
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
        f("drop/" + std::string(dp::drop_reason_names[i]), dp::drop_reason_help[i], t.drops[i], true);
    for (size_t i = 0; i < dp::max_tiers; ++i)
        f("tier_misses/" + std::to_string(i), "replicas of this listener tier not sent", t.tier_misses[i], true);
}

// Names: see for_each_named.
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
