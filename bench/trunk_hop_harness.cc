// Added latency per trunk hop (issue 13, docs/fleet.md "Trunks").
//
// A trunk hop is one relay more on the packet's way: the edge receives what
// the origin sent (the origin's replica: RTP unchanged, from the origin's
// address and the session's port) on a trunk flow, runs the first-copy table
// (dataplane/dedup.h) and fans it out. So the hop adds the edge's ingress ->
// egress for a trunk packet, plus the wire. This harness measures that beside
// the reference, one relay's ingress -> egress for a speaker's packet, in the
// same relay and the same run, alternating packet by packet:
//
//   session 1: a speaker (198.18.0.10:5004) and one listener   (reference)
//   session 2: a trunk (SRTP off, trunk flow from the origin
//              198.18.0.2:40001, first-copy table) and one listener   (hop)
//
// One relay on a ring ethdev, its worker launched on lcore 1 and polling, as
// in production (TX drained on its timer, dataplane.tx_drain_us); the
// harness on the main lcore puts a packet on the RX ring every 0.5 ms and
// spins on the TX ring until the replica is there (TSC). Listeners sit
// behind a gateway with a static MAC (no ARP on the way). A wire hop (NIC,
// switch, NIC) adds its own latency; with several relays on one machine's
// cores (dev profiles) the scheduler's does too: take the quoted figure on
// a quiet machine.
//
//   trunk_hop_harness [--packets N]
// Last line: RESULT hop_p50_us=<x> hop_p99_us=<h> relay_p50_us=<y> relay_p99_us=<z>
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
#include "state.h"

namespace {

using namespace stentor;

constexpr uint32_t relay_ip = 0xc6120003;      // 198.18.0.3: the edge
constexpr uint32_t gateway_ip = 0xc61200fe;    // 198.18.0.254
constexpr uint32_t speaker_ip = 0xc612000a;    // 198.18.0.10
constexpr uint32_t origin_ip = 0xc6120002;     // 198.18.0.2: the origin the trunk comes from
constexpr uint32_t listener1_ip = 0x0b000001;  // 11.0.0.1, off-link
constexpr uint32_t listener2_ip = 0x0b000002;  // 11.0.0.2, off-link
constexpr std::array<uint8_t, 6> relay_mac = {0x02, 0x53, 0x54, 0x00, 0x00, 0x03};
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

// RTP PT 111, SSRC 1234, 120 bytes of payload (a 64 kbit/s Opus frame) from
// src:sport to the relay's dport; checksums valid.
std::vector<uint8_t> frame(uint32_t src, uint16_t sport, uint16_t dport, uint16_t seq, uint32_t ts) {
    std::vector<uint8_t> b(14 + 20 + 8 + 12 + 120, 0);
    std::memcpy(b.data(), relay_mac.data(), 6);
    std::memcpy(b.data() + 6, gateway_mac.data(), 6);
    put16(b.data() + 12, 0x0800);
    uint8_t* ip = b.data() + 14;
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(b.size() - 14));
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, src);
    put32(ip + 16, relay_ip);
    put16(ip + 10, fold(sum16(0, ip, 20)));
    uint8_t* u = ip + 20;
    const size_t ulen = b.size() - 34;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, static_cast<uint16_t>(ulen));
    uint8_t* rtp = u + 8;
    rtp[0] = 0x80;
    rtp[1] = 111;
    put16(rtp + 2, seq);
    put32(rtp + 4, ts);
    put32(rtp + 8, 1234);
    for (size_t i = 12; i < ulen - 8; ++i) rtp[i] = static_cast<uint8_t>(i);
    const uint32_t s = sum16(0, ip + 12, 8) + 17 + static_cast<uint32_t>(ulen);
    const uint16_t c = fold(sum16(s, u, ulen));
    put16(u + 6, c == 0 ? 0xffff : c);
    return b;
}

double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    unsigned packets = 2000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--packets" && i + 1 < argc) packets = static_cast<unsigned>(std::stoul(argv[++i]));
        else {
            std::fprintf(stderr, "usage: trunk_hop_harness [--packets N]\n");
            return 2;
        }
    }
    drivers::eal_params ep;
    ep.lcores = {0, 1};
    ep.memory_mb = 256;
    ep.file_prefix = "stentor-hop-" + std::to_string(::getpid());
    ep.log_level = "error";
    try {
        drivers::eal_init(ep);
        rte_mempool* pool = rte_pktmbuf_pool_create("hop_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        if (pool == nullptr) throw std::runtime_error("pool");
        rte_ring* rx = rte_ring_create("hop_r", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        rte_ring* tx = rte_ring_create("hop_t", 1024, 0, RING_F_SC_DEQ);
        if (rx == nullptr || tx == nullptr) throw std::runtime_error("ring create");
        rte_ring* txs[1] = {tx};
        const int id = rte_eth_from_rings("hop", &rx, 1, txs, 1, 0);
        if (id < 0) throw std::runtime_error("rte_eth_from_rings");
        char dev[RTE_ETH_NAME_MAX_LEN];
        rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev);

        control::profile p;
        p.path = "trunk_hop_harness";
        p.eal.lcores = {0, 1};
        p.eal.mbufs = 8191;
        p.dataplane.rx_lcores = {1};
        p.dataplane.fanout_lcores = {1};
        p.dataplane.stats_interval_s = 0;
        p.limits.speaker_burst_pct = 10000;   // 2000 packets/s per flow: far above a real stream
        control::port_config pc;
        pc.name = "lan0";
        pc.device = dev;
        pc.ipv4 = relay_ip;
        pc.prefix_len = 24;
        pc.gateway = gateway_ip;
        pc.gateway_mac = gateway_mac;
        pc.mac = relay_mac;
        pc.line_rate_mbps = 10000;
        p.ports.push_back(pc);

        std::vector<double> relay_us, hop_us;
        uint64_t lost = 0, trunk_dup = 1;
        {
            control::relay r(p);
            control::control_options co;
            co.publisher = false;
            control::control_plane cp(r, p, co);
            control::session_params sp;
            sp.id = 1;
            sp.udp_port = 40000;
            r.state().session_create(sp);
            r.state().speaker_add(1, speaker_ip, 5004, 1234u);
            r.state().listener_add(1, listener1_ip, 6000, 1);
            sp.id = 2;
            sp.udp_port = 40001;
            sp.trunk = true;
            sp.srtp_ingress = control::srtp_ingress_mode::off;
            sp.srtp_egress = control::srtp_egress_mode::off;
            r.state().session_create(sp);
            r.state().speaker_add(2, origin_ip, 40001, 1234u, true);
            r.state().listener_add(2, listener2_ip, 6000, 1);
            r.start();
            cp.commit();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            const double us_per_tsc = 1e6 / static_cast<double>(rte_get_tsc_hz());
            const unsigned warm = 100;
            for (unsigned i = 0; i < 2 * (packets + warm); ++i) {
                const bool trunk = (i & 1) != 0;
                const unsigned k = i / 2;
                const auto f = trunk ? frame(origin_ip, 40001, 40001, static_cast<uint16_t>(9 + k), 960u * k)
                                     : frame(speaker_ip, 5004, 40000, static_cast<uint16_t>(5 + k), 960u * k);
                // 0.5 ms apart: the worker polls idle between packets, as with audio.
                const uint64_t next = rte_rdtsc() + rte_get_tsc_hz() / 2000;
                while (rte_rdtsc() < next) {
                }
                for (void* late = nullptr; rte_ring_sc_dequeue(tx, &late) == 0;)
                    rte_pktmbuf_free(static_cast<rte_mbuf*>(late));
                rte_mbuf* m = rte_pktmbuf_alloc(pool);
                if (m == nullptr) throw std::runtime_error("pool empty");
                std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
                const uint64_t a = rte_rdtsc();
                if (rte_ring_sp_enqueue(rx, m) != 0) throw std::runtime_error("rx ring full");
                const uint64_t limit = a + rte_get_tsc_hz() / 20;
                void* out = nullptr;
                bool got = false;
                while (rte_rdtsc() < limit)
                    if (rte_ring_sc_dequeue(tx, &out) == 0) {
                        got = true;
                        break;
                    }
                const uint64_t b = rte_rdtsc();
                if (!got) {
                    ++lost;
                    continue;
                }
                rte_pktmbuf_free(static_cast<rte_mbuf*>(out));
                if (k < warm) continue;
                (trunk ? hop_us : relay_us).push_back(static_cast<double>(b - a) * us_per_tsc);
            }
            for (const auto& [name, v] : r.counters(true))
                if (name == "drop/ingress/trunk_duplicate") trunk_dup = v;
            cp.stop();
            r.stop();
        }
        std::printf("# one relay, worker polling on lcore 1, a packet every 0.5 ms alternating a speaker's and a "
                    "trunk's, %u each\n",
                    packets);
        std::printf("speaker packet ingress->egress (one relay, reference)  p50 %6.2f us  p99 %6.2f us  max %7.2f us\n",
                    pct(relay_us, 0.5), pct(relay_us, 0.99), pct(relay_us, 1.0));
        std::printf("trunk packet   ingress->egress (one hop added)          p50 %6.2f us  p99 %6.2f us  max %7.2f us\n",
                    pct(hop_us, 0.5), pct(hop_us, 0.99), pct(hop_us, 1.0));
        std::printf("# lost %llu, trunk_duplicate %llu (0: every trunk packet was a first copy)\n",
                    static_cast<unsigned long long>(lost), static_cast<unsigned long long>(trunk_dup));
        std::printf("RESULT hop_p50_us=%.2f hop_p99_us=%.2f relay_p50_us=%.2f relay_p99_us=%.2f\n", pct(hop_us, 0.5),
                    pct(hop_us, 0.99), pct(relay_us, 0.5), pct(relay_us, 0.99));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "trunk_hop_harness: %s\n", e.what());
        return 1;
    }
    drivers::eal_cleanup();
    return 0;
}
