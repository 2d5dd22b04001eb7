#include "stats.h"

namespace stentor::control {

counter_list named_counters(const dp::lcore_counters& t, const std::vector<std::string>& port_names,
                            bool include_zero) {
    counter_list out;
    t.for_each_scalar([&](const char* name, const char*, uint64_t v) { out.emplace_back(name, v); });
    for (size_t p = 0; p < port_names.size() && p < dp::max_ports; ++p) {
        out.emplace_back("port/" + port_names[p] + "/rx_packets", t.port_rx[p]);
        out.emplace_back("port/" + port_names[p] + "/tx_packets", t.port_tx[p]);
    }
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
        if (include_zero || t.drops[i] != 0)
            out.emplace_back("drop/" + std::string(dp::drop_reason_names[i]), t.drops[i]);
    for (size_t i = 0; i < dp::max_tiers; ++i)
        if (include_zero || t.tier_misses[i] != 0)
            out.emplace_back("tier_misses/" + std::to_string(i), t.tier_misses[i]);
    return out;
}

}  // namespace stentor::control
