#include "stats.h"

namespace stentor::control {

counter_list named_counters(const dp::lcore_counters& t, const std::vector<std::string>& port_names,
                            bool include_zero) {
    counter_list out;
    for_each_named(t, port_names, [&](std::string name, std::string_view, uint64_t v, bool sparse) {
        if (include_zero || !sparse || v != 0) out.emplace_back(std::move(name), v);
    });
    return out;
}

}  // namespace stentor::control
