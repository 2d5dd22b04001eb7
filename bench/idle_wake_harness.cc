// Wake-up latency of an idle relay (issue 13 item 7, dataplane.idle).
//
// One relay on a ring ethdev, its worker launched on lcore 1 as in
// production, session 1 with one listener behind a gateway with a static MAC
// (no ARP on the way). The harness, on the main lcore, puts one speaker
// packet on the RX ring after a gap of 2..20 ms (an audio stream has a frame
// every 20 ms, so an adaptive worker is asleep at some point of its backoff
// when it comes), then spins on the TX ring until the replica is there: the
// time from the packet's arrival to its replica's TX. Printed for
// idle = "poll" and idle = "adaptive": median, p99 and max in microseconds,
// and the CPU the relay's threads use while nothing arrives.
//
// On a machine whose cores other work shares, both figures include the
// scheduler's delays (a polling worker preempted for milliseconds): run it
// on a quiet machine for the figure to quote.
//
// net_ring has no Rx interrupt: this measures the sleep path. A PMD with Rx
// interrupts wakes on the packet itself (docs/profiles.md "Idle workers").
//
//   idle_wake_harness [--packets N] [--sleep-max-us U]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <time.h>

#include "ring_relay.h"
#include "stats.h"

namespace {

using namespace stentor;
using namespace stentor::bench;

constexpr uint32_t relay_ip = 0xc6120001;     // 198.18.0.1
constexpr uint32_t speaker_ip = 0xc612000a;   // 198.18.0.10
constexpr uint32_t listener_ip = 0x0b000001;  // 11.0.0.1, off-link
constexpr mac_addr relay_mac = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
constexpr mac_addr speaker_mac = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a};

// A speaker frame: Ethernet, IPv4, UDP 5004 -> 40000, RTP (PT 111, SSRC
// 1234), 80 bytes of payload; checksums valid.
std::vector<uint8_t> speaker_frame(uint16_t seq, uint32_t ts) {
    return rtp_frame({relay_mac, speaker_mac, speaker_ip, relay_ip, 5004, 40000, seq, ts, 80});
}

double thread_cpu_s() {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}
double process_cpu_s() {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

struct result {
    std::vector<double> wake_us;
    double idle_cpu_pct = 0;
    uint64_t sleeps = 0;
    uint64_t lost = 0;
};

result run(bool adaptive, unsigned sleep_max_us, unsigned packets, rte_mempool* pool) {
    static unsigned serial = 0;
    const ring_port port = make_ring_port("iw" + std::to_string(serial++));
    control::profile p = ring_relay_profile("idle_wake_harness", port.device, relay_ip, relay_mac);
    p.dataplane.idle_adaptive = adaptive;
    p.dataplane.idle_sleep_max_us = sleep_max_us;
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    sc.speakers.push_back({speaker_ip, 5004, 1234});
    sc.listeners.push_back({listener_ip, 6000, 0});
    p.sessions.push_back(sc);

    result res;
    {
        running_relay rr(p, [&p](control::relay& r) { r.state().load_static(p); });

        // CPU of everything but this thread over a second with no packet.
        const double p0 = process_cpu_s(), t0 = thread_cpu_s();
        std::this_thread::sleep_for(std::chrono::seconds(1));
        res.idle_cpu_pct = 100.0 * ((process_cpu_s() - p0) - (thread_cpu_s() - t0));

        std::mt19937 rng(7);
        std::uniform_int_distribution<int> gap_us(2000, 20000);
        for (unsigned i = 0; i < packets; ++i) {
            std::this_thread::sleep_for(std::chrono::microseconds(gap_us(rng)));
            const auto tsc = time_one(pool, port, speaker_frame(static_cast<uint16_t>(100 + i), 960u * (100 + i)));
            if (!tsc) {
                ++res.lost;
                continue;
            }
            res.wake_us.push_back(static_cast<double>(*tsc) * us_per_tsc());
        }
        res.sleeps = rr.counter("idle_sleeps").value_or(0);
    }
    return res;
}

}  // namespace

int main(int argc, char** argv) {
    unsigned packets = 200, sleep_max_us = 1000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--packets" && i + 1 < argc) packets = static_cast<unsigned>(std::stoul(argv[++i]));
        else if (a == "--sleep-max-us" && i + 1 < argc) sleep_max_us = static_cast<unsigned>(std::stoul(argv[++i]));
        else {
            std::fprintf(stderr, "usage: idle_wake_harness [--packets N] [--sleep-max-us U]\n");
            return 2;
        }
    }
    try {
        rte_mempool* pool = start_eal("idle");
        std::printf("# packet on the RX ring -> replica on the TX ring, one listener, gaps 2..20 ms, %u packets\n",
                    packets);
        std::printf("# worker on lcore 1 (net_ring: no Rx interrupt, sleeps of 10..%u us)\n", sleep_max_us);
        result both[2];
        for (const bool adaptive : {false, true}) {
            const auto r = run(adaptive, sleep_max_us, packets, pool);
            both[adaptive ? 1 : 0] = r;
            std::printf("idle=%-8s wake_us p50=%.1f p99=%.1f max=%.1f  idle_cpu=%.1f%%  sleeps=%llu lost=%llu\n",
                        adaptive ? "adaptive" : "poll", pct(r.wake_us, 0.5), pct(r.wake_us, 0.99),
                        pct(r.wake_us, 1.0), r.idle_cpu_pct, static_cast<unsigned long long>(r.sleeps),
                        static_cast<unsigned long long>(r.lost));
            std::fflush(stdout);
        }
        std::printf("RESULT idle_wake_p50_us=%.1f idle_wake_p99_us=%.1f idle_cpu_pct=%.1f poll_wake_p99_us=%.1f "
                    "poll_cpu_pct=%.1f\n",
                    pct(both[1].wake_us, 0.5), pct(both[1].wake_us, 0.99), both[1].idle_cpu_pct,
                    pct(both[0].wake_us, 0.99), both[0].idle_cpu_pct);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idle_wake_harness: %s\n", e.what());
        return 1;
    }
    drivers::eal_cleanup();
    return 0;
}
