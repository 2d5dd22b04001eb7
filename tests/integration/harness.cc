#include "harness.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "drivers.h"

namespace stentor::test {

// The services and the control plane log through spdlog's default logger
// (stentord installs control/log.h's); in the tests it writes to stderr,
// where the tests that capture log lines read them.
[[maybe_unused]] const bool log_to_stderr = [] {
    spdlog::set_default_logger(spdlog::stderr_logger_mt("tests"));
    return true;
}();

rte_mempool* test_pool() {
    static rte_mempool* p = drivers::make_pool("it_pool", 8191, 0, 0);
    return p;
}

ring_port make_ring_port(const std::string& name, unsigned tx_ring_size) {
    ring_port p;
    p.name = name;
    p.rx = rte_ring_create((name + "_r").c_str(), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    // Every TX queue writes the same ring (multi-producer): one place to read.
    p.tx = rte_ring_create((name + "_t").c_str(), tx_ring_size, 0, RING_F_SC_DEQ);
    if (!p.rx || !p.tx) throw std::runtime_error("ring create " + name);
    rte_ring* txs[8] = {p.tx, p.tx, p.tx, p.tx, p.tx, p.tx, p.tx, p.tx};
    const int id = rte_eth_from_rings(name.c_str(), &p.rx, 1, txs, 8, 0);
    if (id < 0) throw std::runtime_error("rte_eth_from_rings " + name);
    p.port_id = static_cast<uint16_t>(id);
    char dev[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(p.port_id, dev) == 0) p.name = dev;
    return p;
}

control::profile base_profile(const std::string& port_name, unsigned shards) {
    control::profile p;
    p.path = "integration";
    p.eal.lcores = {0, 1};
    p.eal.mbufs = 8191;
    p.eal.mbuf_cache = 0;    // exact in-use accounting in tests
    p.dataplane.rx_lcores = {1};
    p.dataplane.fanout_lcores.clear();
    for (unsigned s = 0; s < shards; ++s) p.dataplane.fanout_lcores.push_back(1 + s);
    p.dataplane.frame_deadline_us = 1000000;   // deterministic: a test never hits it by accident
    control::port_config pc;
    pc.name = "lan0";
    pc.device = port_name;
    pc.ipv4 = relay_ip;
    pc.prefix_len = 24;
    pc.gateway = gateway_ip;
    pc.mac = std::array<uint8_t, 6>{relay_mac[0], relay_mac[1], relay_mac[2], relay_mac[3], relay_mac[4], relay_mac[5]};
    pc.tx_queues = shards + 1;
    pc.rx_queues = 1;
    pc.rx_desc = 1024;
    pc.tx_desc = 1024;
    p.ports.push_back(pc);
    p.limits.max_neighbours = 1024;
    return p;
}

namespace {
void put16(bytes& b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}
void put32(bytes& b, size_t off, uint32_t v) {
    put16(b, off, static_cast<uint16_t>(v >> 16));
    put16(b, off + 2, static_cast<uint16_t>(v));
}
}  // namespace

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }

uint16_t ip_checksum(const uint8_t* ip, size_t len) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < len; i += 2) s += be16(ip + i);
    if (len & 1) s += uint32_t{ip[len - 1]} << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

bytes udp_frame(const frame_spec& f, const bytes& payload) {
    const size_t n = payload.size();
    bytes b(14 + 20 + 8 + n, 0);
    std::memcpy(b.data(), f.dst_mac, 6);
    std::memcpy(b.data() + 6, f.src_mac, 6);
    put16(b, 12, 0x0800);
    b[14] = 0x45;
    put16(b, 16, static_cast<uint16_t>(20 + 8 + n));
    b[22] = 64;
    b[23] = 17;
    put32(b, 26, f.src_ip);
    put32(b, 30, f.dst_ip);
    put16(b, 24, ip_checksum(b.data() + 14, 20));
    put16(b, 34, f.src_port);
    put16(b, 36, f.dst_port);
    put16(b, 38, static_cast<uint16_t>(8 + n));
    std::copy(payload.begin(), payload.end(), b.begin() + 42);
    // A valid UDP checksum, as a real sender's kernel writes it.
    bytes ph(12 + 8 + n);
    std::memcpy(ph.data(), b.data() + 26, 8);
    ph[9] = 17;
    ph[10] = b[38];
    ph[11] = b[39];
    std::copy(b.begin() + 34, b.end(), ph.begin() + 12);
    uint16_t c = ip_checksum(ph.data(), ph.size());
    if (c == 0) c = 0xffff;
    put16(b, 40, c);
    return b;
}

bytes rtp_frame(const frame_spec& f) {
    bytes rtp(12 + f.payload, 0);
    rtp[0] = 0x80;
    rtp[1] = 111;
    put16(rtp, 2, f.seq);
    put32(rtp, 4, f.ts);
    put32(rtp, 8, f.ssrc);
    for (size_t i = 0; i < f.payload; ++i) rtp[12 + i] = static_cast<uint8_t>(i * 7 + f.seq);
    return udp_frame(f, rtp);
}

ring_port fresh_ring_port(const std::string& prefix) {
    static int n = 0;
    return make_ring_port(prefix + std::to_string(n++));
}

bytes arp_frame(uint16_t op, const uint8_t* sender_mac, uint32_t sender_ip, const uint8_t* target_mac,
                uint32_t target_ip, const uint8_t* eth_dst) {
    bytes b(60, 0);
    std::memcpy(b.data(), eth_dst, 6);
    std::memcpy(b.data() + 6, sender_mac, 6);
    put16(b, 12, 0x0806);
    put16(b, 14, 1);
    put16(b, 16, 0x0800);
    b[18] = 6;
    b[19] = 4;
    put16(b, 20, op);
    std::memcpy(b.data() + 22, sender_mac, 6);
    put32(b, 28, sender_ip);
    std::memcpy(b.data() + 32, target_mac, 6);
    put32(b, 38, target_ip);
    return b;
}

void inject(const ring_port& p, const bytes& frame, uint64_t ol_flags) {
    rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
    if (m == nullptr) throw std::runtime_error("test pool empty");
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())));
    if (d == nullptr) throw std::runtime_error("frame too large");
    std::memcpy(d, frame.data(), frame.size());
    m->port = p.port_id;
    m->ol_flags = ol_flags;
    if (rte_ring_enqueue(p.rx, m) != 0) throw std::runtime_error("rx ring full");
}

std::vector<bytes> drain(const ring_port& p) {
    std::vector<bytes> out;
    void* obj;
    while (rte_ring_dequeue(p.tx, &obj) == 0) {
        auto* m = static_cast<rte_mbuf*>(obj);
        const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
        out.emplace_back(d, d + m->data_len);
        rte_pktmbuf_free(m);
    }
    return out;
}

std::vector<bytes> answer_arp(const ring_port& p, const std::vector<bytes>& out,
                              const std::vector<std::pair<uint32_t, std::array<uint8_t, 6>>>& hosts) {
    std::vector<bytes> rest;
    for (const auto& f : out) {
        if (f.size() >= 42 && be16(f.data() + 12) == 0x0806 && be16(f.data() + 20) == 1) {
            const uint32_t target = be32(f.data() + 38);
            for (const auto& [ip, mac] : hosts)
                if (ip == target) inject(p, arp_frame(2, mac.data(), ip, relay_mac, relay_ip, relay_mac));
            continue;
        }
        rest.push_back(f);
    }
    return rest;
}

mac_t host_mac(uint32_t ip) {
    return {0x02, 0x00, static_cast<uint8_t>(ip >> 24), static_cast<uint8_t>(ip >> 16), static_cast<uint8_t>(ip >> 8),
            static_cast<uint8_t>(ip)};
}

std::map<std::string, uint64_t> all_counters(const control::relay& r) {
    std::map<std::string, uint64_t> m;
    for (const auto& [k, v] : r.counters(true)) m[k] = v;
    return m;
}

uint64_t counter(const control::relay& r, const std::string& name) {
    for (const auto& [k, v] : r.counters(true))
        if (k == name) return v;
    ADD_FAILURE() << "no counter " << name;
    return 0;
}

void settle(control::relay& r) {
    for (int i = 0; i < 8192; ++i)
        if (r.poll() == 0) break;
    r.flush();
}

std::vector<bytes> resolve(control::relay& r, const ring_port& port, const std::vector<uint32_t>& hosts) {
    std::vector<std::pair<uint32_t, mac_t>> table{{gateway_ip, host_mac(gateway_ip)}};
    for (uint32_t ip : hosts) table.emplace_back(ip, host_mac(ip));
    std::vector<bytes> other;
    for (int round = 0; round < 3; ++round) {
        r.poll();
        r.flush();
        for (auto& f : answer_arp(port, drain(port), table)) other.push_back(std::move(f));
        settle(r);
        usleep(110 * 1000);   // the ARP owner asks every 100 ms
    }
    return other;
}

}  // namespace stentor::test

namespace {

class eal_env : public ::testing::Environment {
public:
    void SetUp() override {
        stentor::drivers::eal_params ep;
        ep.lcores = {0, 1};
        ep.memory_mb = 512;
        ep.file_prefix = "stentor-it-" + std::to_string(::getpid());
        ep.log_level = "error";
        stentor::drivers::eal_init(ep);
    }
    void TearDown() override { stentor::drivers::eal_cleanup(); }
};

[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new eal_env);

}  // namespace
