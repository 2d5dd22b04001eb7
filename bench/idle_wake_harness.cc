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
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "config.h"
#include "control_plane.h"
#include "drivers.h"
#include "relay.h"
#include "stats.h"

namespace {

using namespace stentor;

constexpr uint32_t relay_ip = 0xc6120001;     // 198.18.0.1
constexpr uint32_t gateway_ip = 0xc61200fe;   // 198.18.0.254
constexpr uint32_t speaker_ip = 0xc612000a;   // 198.18.0.10
constexpr uint32_t listener_ip = 0x0b000001;  // 11.0.0.1, off-link
constexpr uint8_t relay_mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 6> gateway_mac = {0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe};

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
uint32_t sum16(uint32_t s, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) s += uint32_t{p[n - 1]} << 8;
    return s;
}
uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

// A speaker frame: Ethernet, IPv4, UDP 5004 -> 40000, RTP (PT 111, SSRC
// 1234), 80 bytes of payload; checksums valid.
std::vector<uint8_t> speaker_frame(uint16_t seq, uint32_t ts) {
    std::vector<uint8_t> b(14 + 20 + 8 + 12 + 80, 0);
    std::memcpy(b.data(), relay_mac, 6);
    std::memcpy(b.data() + 6, gateway_mac.data(), 6);
    b[6] = 0x02;
    b[11] = 0x0a;
    put16(b.data() + 12, 0x0800);
    uint8_t* ip = b.data() + 14;
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(b.size() - 14));
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, speaker_ip);
    put32(ip + 16, relay_ip);
    put16(ip + 10, fold(sum16(0, ip, 20)));
    uint8_t* u = ip + 20;
    const size_t ulen = b.size() - 34;
    put16(u, 5004);
    put16(u + 2, 40000);
    put16(u + 4, static_cast<uint16_t>(ulen));
    uint8_t* rtp = u + 8;
    rtp[0] = 0x80;
    rtp[1] = 111;
    put16(rtp + 2, seq);
    put32(rtp + 4, ts);
    put32(rtp + 8, 1234);
    for (size_t i = 12; i < 92; ++i) rtp[i] = static_cast<uint8_t>(i);
    const uint32_t s = sum16(0, ip + 12, 8) + 17 + static_cast<uint32_t>(ulen);
    const uint16_t c = fold(sum16(s, u, ulen));
    put16(u + 6, c == 0 ? 0xffff : c);
    return b;
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
    const std::string name = "iw" + std::to_string(serial++);
    rte_ring* rx = rte_ring_create((name + "_r").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* tx = rte_ring_create((name + "_t").c_str(), 1024, 0, RING_F_SC_DEQ);
    if (rx == nullptr || tx == nullptr) throw std::runtime_error("ring create");
    rte_ring* txs[1] = {tx};
    const int id = rte_eth_from_rings(name.c_str(), &rx, 1, txs, 1, 0);
    if (id < 0) throw std::runtime_error("rte_eth_from_rings");
    char dev[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev);

    control::profile p;
    p.path = "idle_wake_harness";
    p.eal.lcores = {0, 1};
    p.eal.mbufs = 8191;
    p.dataplane.rx_lcores = {1};
    p.dataplane.fanout_lcores = {1};
    p.dataplane.stats_interval_s = 0;
    p.dataplane.idle_adaptive = adaptive;
    p.dataplane.idle_sleep_max_us = sleep_max_us;
    control::port_config pc;
    pc.name = "lan0";
    pc.device = dev;
    pc.ipv4 = relay_ip;
    pc.prefix_len = 24;
    pc.gateway = gateway_ip;
    pc.gateway_mac = gateway_mac;
    pc.mac = std::array<uint8_t, 6>{relay_mac[0], relay_mac[1], relay_mac[2], relay_mac[3], relay_mac[4], relay_mac[5]};
    pc.line_rate_mbps = 10000;
    p.ports.push_back(pc);
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    sc.speakers.push_back({speaker_ip, 5004, 1234});
    sc.listeners.push_back({listener_ip, 6000, 0});
    p.sessions.push_back(sc);

    result res;
    {
        control::relay r(p);
        control::control_options co;
        co.publisher = false;
        control::control_plane cp(r, p, co);
        r.state().load_static(p);
        r.start();
        cp.commit();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));

        // CPU of everything but this thread over a second with no packet.
        const double p0 = process_cpu_s(), t0 = thread_cpu_s();
        std::this_thread::sleep_for(std::chrono::seconds(1));
        res.idle_cpu_pct = 100.0 * ((process_cpu_s() - p0) - (thread_cpu_s() - t0));

        std::mt19937 rng(7);
        std::uniform_int_distribution<int> gap_us(2000, 20000);
        const double us_per_tsc = 1e6 / static_cast<double>(rte_get_tsc_hz());
        for (unsigned i = 0; i < packets; ++i) {
            std::this_thread::sleep_for(std::chrono::microseconds(gap_us(rng)));
            // A replica that came after its 50 ms is not the next packet's.
            for (void* late = nullptr; rte_ring_sc_dequeue(tx, &late) == 0;)
                rte_pktmbuf_free(static_cast<rte_mbuf*>(late));
            const auto f = speaker_frame(static_cast<uint16_t>(100 + i), 960u * (100 + i));
            rte_mbuf* m = rte_pktmbuf_alloc(pool);
            if (m == nullptr) throw std::runtime_error("pool empty");
            std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
            const uint64_t a = rte_rdtsc();
            if (rte_ring_sp_enqueue(rx, m) != 0) throw std::runtime_error("rx ring full");
            void* out = nullptr;
            // Bounded: 50 ms is far past any sleep the worker may take.
            const uint64_t limit = a + rte_get_tsc_hz() / 20;
            bool got = false;
            while (rte_rdtsc() < limit)
                if (rte_ring_sc_dequeue(tx, &out) == 0) {
                    got = true;
                    break;
                }
            const uint64_t b = rte_rdtsc();
            if (!got) {
                ++res.lost;
                continue;
            }
            rte_pktmbuf_free(static_cast<rte_mbuf*>(out));
            res.wake_us.push_back(static_cast<double>(b - a) * us_per_tsc);
        }
        for (const auto& [k, v] : r.counters(true))
            if (k == "idle_sleeps") res.sleeps = v;
        cp.stop();
        r.stop();
    }
    return res;
}

double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
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
    drivers::eal_params ep;
    ep.lcores = {0, 1};
    ep.memory_mb = 256;
    ep.file_prefix = "stentor-idle-" + std::to_string(::getpid());
    ep.log_level = "error";
    try {
        drivers::eal_init(ep);
        rte_mempool* pool = rte_pktmbuf_pool_create("iw_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        if (pool == nullptr) throw std::runtime_error("pool");
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
