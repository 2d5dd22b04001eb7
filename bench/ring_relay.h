// What the one-relay latency harnesses share (trunk_hop_harness,
// idle_wake_harness): one relay on a ring ethdev, its worker launched on
// lcore 1 as in production (RX and fan-out), its listeners behind a gateway
// with a static MAC (no ARP on the way); the harness, on the main lcore,
// builds RTP frames with valid checksums, puts one on the RX ring and spins
// on the TX ring until the replica is there (TSC).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
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

namespace stentor::bench {

using mac_addr = std::array<uint8_t, 6>;

inline constexpr uint32_t gateway_ip = 0xc61200fe;   // 198.18.0.254
inline constexpr mac_addr gateway_mac = {0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe};

// EAL on lcores 0 and 1 (256 MB, file prefix "stentor-<tag>-<pid>") and a
// small mbuf pool for the harness's own packets.
inline rte_mempool* start_eal(const std::string& tag) {
    drivers::eal_params ep;
    ep.lcores = {0, 1};
    ep.memory_mb = 256;
    ep.file_prefix = "stentor-" + tag + "-" + std::to_string(::getpid());
    ep.log_level = "error";
    drivers::eal_init(ep);
    rte_mempool* pool = rte_pktmbuf_pool_create((tag + "_pool").c_str(), 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (pool == nullptr) throw std::runtime_error("pool");
    return pool;
}

// A ring ethdev: what the relay sends lands on tx, what the harness puts on
// rx is what it receives.
struct ring_port {
    rte_ring* rx;
    rte_ring* tx;
    std::string device;
};

inline ring_port make_ring_port(const std::string& name) {
    ring_port rp{};
    rp.rx = rte_ring_create((name + "_r").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rp.tx = rte_ring_create((name + "_t").c_str(), 1024, 0, RING_F_SC_DEQ);
    if (rp.rx == nullptr || rp.tx == nullptr) throw std::runtime_error("ring create");
    rte_ring* txs[1] = {rp.tx};
    const int id = rte_eth_from_rings(name.c_str(), &rp.rx, 1, txs, 1, 0);
    if (id < 0) throw std::runtime_error("rte_eth_from_rings");
    char dev[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev);
    rp.device = dev;
    return rp;
}

// One relay's profile on `device`: lcores 0 and 1, RX and fan-out on lcore
// 1, no stats line, port lan0 at relay_ip/24 with the static gateway.
inline control::profile ring_relay_profile(const std::string& path, const std::string& device, uint32_t relay_ip,
                                           const mac_addr& relay_mac) {
    control::profile p;
    p.path = path;
    p.eal.lcores = {0, 1};
    p.eal.mbufs = 8191;
    p.dataplane.rx_lcores = {1};
    p.dataplane.fanout_lcores = {1};
    p.dataplane.stats_interval_s = 0;
    control::port_config pc;
    pc.name = "lan0";
    pc.device = device;
    pc.ipv4 = relay_ip;
    pc.prefix_len = 24;
    pc.gateway = gateway_ip;
    pc.gateway_mac = gateway_mac;
    pc.mac = relay_mac;
    pc.line_rate_mbps = 10000;
    p.ports.push_back(pc);
    return p;
}

// The relay and its control plane (no publisher thread): setup(relay) puts
// the sessions in, then both start; 100 ms for the worker to come up.
// Stopped when it goes.
struct running_relay {
    control::relay r;
    control::control_plane cp;

    template <class Setup>
    running_relay(const control::profile& p, Setup setup) : r(p), cp(r, p, no_publisher()) {
        setup(r);
        r.start();
        cp.commit();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ~running_relay() {
        cp.stop();
        r.stop();
    }
    running_relay(const running_relay&) = delete;
    running_relay& operator=(const running_relay&) = delete;

    std::optional<uint64_t> counter(const std::string& name) {
        for (const auto& [k, v] : r.counters(true))
            if (k == name) return v;
        return std::nullopt;
    }

private:
    static control::control_options no_publisher() {
        control::control_options co;
        co.publisher = false;
        return co;
    }
};

inline void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
inline uint32_t sum16(uint32_t s, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1) s += uint32_t{p[n - 1]} << 8;
    return s;
}
inline uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

struct rtp_frame_spec {
    mac_addr dst_mac;
    mac_addr src_mac;
    uint32_t src_ip;
    uint32_t dst_ip;
    uint16_t sport;
    uint16_t dport;
    uint16_t seq;
    uint32_t ts;
    size_t payload;   // bytes after the RTP header (a 64 kbit/s Opus frame: 120)
};

// Ethernet, IPv4 and UDP around `udp_payload` (s.seq, s.ts and s.payload
// unused); the IPv4 and UDP checksums valid.
inline std::vector<uint8_t> udp_frame(const rtp_frame_spec& s, const std::vector<uint8_t>& udp_payload) {
    std::vector<uint8_t> b(14 + 20 + 8 + udp_payload.size(), 0);
    std::memcpy(b.data(), s.dst_mac.data(), 6);
    std::memcpy(b.data() + 6, s.src_mac.data(), 6);
    put16(b.data() + 12, 0x0800);
    uint8_t* ip = b.data() + 14;
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(b.size() - 14));
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, s.src_ip);
    put32(ip + 16, s.dst_ip);
    put16(ip + 10, fold(sum16(0, ip, 20)));
    uint8_t* u = ip + 20;
    const size_t ulen = b.size() - 34;
    put16(u, s.sport);
    put16(u + 2, s.dport);
    put16(u + 4, static_cast<uint16_t>(ulen));
    std::memcpy(u + 8, udp_payload.data(), udp_payload.size());
    const uint32_t sum = sum16(0, ip + 12, 8) + 17 + static_cast<uint32_t>(ulen);
    const uint16_t c = fold(sum16(sum, u, ulen));
    put16(u + 6, c == 0 ? 0xffff : c);
    return b;
}

// An RTP packet (PT 111, SSRC 1234, s.seq, s.ts) and `s.payload` bytes.
inline std::vector<uint8_t> rtp_packet(const rtp_frame_spec& s) {
    std::vector<uint8_t> rtp(12 + s.payload);
    rtp[0] = 0x80;
    rtp[1] = 111;
    put16(rtp.data() + 2, s.seq);
    put32(rtp.data() + 4, s.ts);
    put32(rtp.data() + 8, 1234);
    for (size_t i = 12; i < rtp.size(); ++i) rtp[i] = static_cast<uint8_t>(i);
    return rtp;
}

// Ethernet, IPv4, UDP, RTP (PT 111, SSRC 1234) and `payload` bytes; the
// IPv4 and UDP checksums valid.
inline std::vector<uint8_t> rtp_frame(const rtp_frame_spec& s) { return udp_frame(s, rtp_packet(s)); }

// One packet through the relay: replicas that came after an earlier
// packet's deadline are freed first, then `frame` goes on the RX ring and
// the TX ring is polled until its replica is there. The TSC cycles from
// enqueue to dequeue; none (lost) after 50 ms, far past any sleep the worker
// may take.
inline std::optional<uint64_t> time_one(rte_mempool* pool, const ring_port& port, const std::vector<uint8_t>& frame) {
    for (void* late = nullptr; rte_ring_sc_dequeue(port.tx, &late) == 0;)
        rte_pktmbuf_free(static_cast<rte_mbuf*>(late));
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) throw std::runtime_error("pool empty");
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(), frame.size());
    const uint64_t a = rte_rdtsc();
    if (rte_ring_sp_enqueue(port.rx, m) != 0) throw std::runtime_error("rx ring full");
    const uint64_t limit = a + rte_get_tsc_hz() / 20;
    void* out = nullptr;
    bool got = false;
    while (rte_rdtsc() < limit)
        if (rte_ring_sc_dequeue(port.tx, &out) == 0) {
            got = true;
            break;
        }
    const uint64_t b = rte_rdtsc();
    if (!got) return std::nullopt;
    rte_pktmbuf_free(static_cast<rte_mbuf*>(out));
    return b - a;
}

inline double us_per_tsc() { return 1e6 / static_cast<double>(rte_get_tsc_hz()); }

// The q-quantile of v (nearest rank; 0 for none).
inline double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace stentor::bench
