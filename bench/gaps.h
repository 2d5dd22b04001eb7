// The wait of an arrival at a random moment, from the gaps it can fall in:
// the time a thread did not run (host_pace --gaps, the host's stops) or
// the time between two polls of an RX queue (workload_harness, PART
// latency_poll_wait). An arrival in a gap of length g waits the rest of
// it, so P(wait > x) = sum over gaps of max(0, g - x) / window.
#pragma once

#include <algorithm>
#include <vector>

namespace stentor::bench {

// Share of random arrivals in `window` that wait more than x. `ascending`:
// the gaps, sorted ascending, in the window's unit.
template <class T>
double share_waiting_over(const std::vector<T>& ascending, double window, double x) {
    double t = 0;
    for (auto it = std::upper_bound(ascending.begin(), ascending.end(), static_cast<T>(x)); it != ascending.end(); ++it)
        t += static_cast<double>(*it) - x;
    return window > 0 ? t / window : 0.0;
}

// The q-quantile of that wait (0 when more than 1 - q of arrivals wait
// not at all), in the gaps' unit: the smallest x with
// share_waiting_over(x) <= 1 - q, by bisection.
template <class T>
double arrival_wait_quantile(const std::vector<T>& ascending, double window, double q) {
    double lo = 0, hi = ascending.empty() ? 0 : static_cast<double>(ascending.back());
    if (share_waiting_over(ascending, window, lo) <= 1 - q) return 0.0;
    for (int i = 0; i < 60; ++i) {
        const double mid = (lo + hi) / 2;
        (share_waiting_over(ascending, window, mid) <= 1 - q ? hi : lo) = mid;
    }
    return hi;
}

}  // namespace stentor::bench
