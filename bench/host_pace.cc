// host_pace: does this CPU keep its pace? A check of the platform, not of
// Stentor: it walks a buffer (reads, one 8-byte word of each 16, like the
// fan-out's walk of listener records) on the calling thread for a number of
// seconds and counts the bytes walked in every 20 ms bin. On a dedicated
// core every bin walks about as much as the best one; on a shared VM the
// host takes part of the core away now and then, and those bins fall to a
// fraction of the best. Run it pinned where the fan-out lcore would run,
// with nothing else on that CPU:
//
//   taskset -c 1 build/bench/host_pace [--mib 64] [--seconds 8]
//
// It prints each bin under 60 % of the best (time, share) and a summary:
//   host_pace mib=<m> seconds=<s> best_gbps=<g> bins=<n> under_60pct=<a> under_33pct=<b> worst=<share>
// docs/performance.md ("Fifth round") has what it found on the CI VM and why
// it matters for workload_harness's latency part.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <x86intrin.h>
#include <time.h>

namespace {

double tsc_hz() {
    timespec a{}, b{};
    clock_gettime(CLOCK_MONOTONIC, &a);
    const uint64_t t0 = __rdtsc();
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 200000000L);
    const double ns = static_cast<double>((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec));
    return static_cast<double>(__rdtsc() - t0) * 1e9 / ns;
}

}  // namespace

int main(int argc, char** argv) {
    size_t mib = 64;
    double seconds = 8;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--mib" && i + 1 < argc)
            mib = std::strtoul(argv[++i], nullptr, 10);
        else if (a == "--seconds" && i + 1 < argc)
            seconds = std::strtod(argv[++i], nullptr);
        else {
            std::fprintf(stderr, "usage: %s [--mib N] [--seconds S]\n", argv[0]);
            return 2;
        }
    }
    if (mib == 0 || mib > 1024 || !(seconds > 0 && seconds <= 600)) {
        std::fprintf(stderr, "host_pace: --mib 1..1024, --seconds (0, 600]\n");
        return 2;
    }
    const size_t words = (mib << 20) / sizeof(uint64_t);
    std::vector<uint64_t> buf;
    try {
        buf.assign(words, 1);   // written once: every page is mapped before the walk
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "host_pace: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    const double hz = tsc_hz();
    const uint64_t bin_cycles = static_cast<uint64_t>(hz / 50);   // 20 ms
    const size_t nb_bins = static_cast<size_t>(seconds * 50);
    std::vector<double> walked(nb_bins, 0.0);
    constexpr size_t chunk_words = (64 << 10) / sizeof(uint64_t);   // 64 KiB between clock reads
    const uint64_t start = __rdtsc();
    const uint64_t end = start + static_cast<uint64_t>(seconds * hz);
    uint64_t sum = 0;
    size_t pos = 0;
    for (uint64_t now = start; now < end; now = __rdtsc()) {
        for (size_t i = 0; i < chunk_words; i += 2) sum += buf[pos + i];
        pos += chunk_words;
        if (pos + chunk_words > words) pos = 0;
        const size_t k = static_cast<size_t>((__rdtsc() - start) / bin_cycles);
        if (k < nb_bins) walked[k] += static_cast<double>(chunk_words * sizeof(uint64_t));
    }
    const double best = *std::max_element(walked.begin(), walked.end());
    size_t under60 = 0, under33 = 0;
    double worst = 1;
    for (size_t k = 0; k < nb_bins; ++k) {
        const double share = best > 0 ? walked[k] / best : 0;
        worst = std::min(worst, share);
        if (share < 0.6) {
            ++under60;
            std::printf("bin at %zu ms: %.2f of the best\n", k * 20, share);
        }
        if (share < 1.0 / 3) ++under33;
    }
    std::printf("host_pace mib=%zu seconds=%.1f best_gbps=%.1f bins=%zu under_60pct=%zu under_33pct=%zu worst=%.2f%s\n",
                mib, seconds, best * 50 / 1e9, nb_bins, under60, under33, worst, sum == 0 ? " (sum 0)" : "");
    return 0;
}
