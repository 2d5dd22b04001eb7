#include "fleet_drain.h"

#include <thread>

#include "join_desk.h"

namespace stentor::control {

drain_result drain_joined_listeners(join_desk& desk, std::chrono::milliseconds limit) {
    using clk = std::chrono::steady_clock;
    drain_result r;
    const auto t0 = clk::now();
    const uint64_t told0 = desk.stats().told_to_move;
    r.joined_at_start = desk.bindings();
    desk.set_draining(true);
    while (desk.bindings() != 0 && clk::now() - t0 < limit)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r.still_joined = desk.bindings();
    r.told = desk.stats().told_to_move - told0;
    r.seconds = std::chrono::duration<double>(clk::now() - t0).count();
    return r;
}

}  // namespace stentor::control
