// A fleet relay's drain on SIGTERM (docs/fleet.md "Failover"): once the
// registry says it is draining (directors place nobody here any more), the
// join desk answers every listener's next request 300 "draining", and the
// relay waits, up to [fleet] drain_s, for its joined listeners to move:
// each asks a director again, joins another edge and leaves here (make
// before break: they keep hearing this relay until then). Then it stops.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace stentor::control {

class join_desk;

struct drain_result {
    size_t joined_at_start = 0;   // token-joined listeners when the drain began
    size_t still_joined = 0;      // when it ended (0: every one moved)
    uint64_t told = 0;            // requests answered 300 meanwhile
    double seconds = 0;
};

// Marks the desk draining and waits until it holds no binding or `limit`
// passed (checked every 20 ms). Listeners added by the profile or the API
// are not told anything: they cannot move by themselves.
drain_result drain_joined_listeners(join_desk& desk, std::chrono::milliseconds limit);

}  // namespace stentor::control
