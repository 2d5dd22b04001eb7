// The services' clock: CLOCK_MONOTONIC in nanoseconds. The mixer's frame
// deadlines, the recorder's arrival times and the service threads' wake-ups
// are all on it, and tests drive the mixer with fake values on the same scale.
#pragma once

#include <time.h>

#include <cstdint>

namespace stentor::svc {

inline uint64_t mono_ns() noexcept {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

}  // namespace stentor::svc
