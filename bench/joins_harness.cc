// joins_harness: 1 M listeners joined through the bulk HTTP API while a
// session streams, on real EAL with the worker on lcore 1.
//
//   port 0  net_null (no RX): the million joiners, off-link via a gateway
//           with a static MAC, tier 1. The worker really builds and sends
//           their replicas (until the frame deadline abandons the rest).
//   port 1  net_ring: 100 already-admitted listeners (tier 0, on-link, ARP
//           answered by the harness) whose every packet is counted, and the
//           speaker's packets in (50 packets/s, 20 ms frames).
//
// Prints, and ends with:
//   RESULT joins_per_s=<bulk action + publish in the control plane>
//          http_1m_joins_s=<seconds for 1 M joins over HTTP> lost=<packets>
// lost = packets the 100 admitted listeners should have received while the
// joins went on, and did not. --json FILE also writes each measure as JSON
// lines for scripts/bench-report.py (bench/jsonl.h).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "api.h"
#include "control_plane.h"
#include "drivers.h"
#include "jsonl.h"
#include "relay.h"

namespace {

using namespace stentor;
using clk = std::chrono::steady_clock;

constexpr uint32_t ring_ip = 0xc6130001;      // 198.19.0.1
constexpr uint32_t speaker = 0xc613000a;      // 198.19.0.10
constexpr uint32_t first_admitted = 0xc6130064;   // 198.19.0.100 ..
constexpr unsigned nb_admitted = 100;
constexpr uint8_t ring_mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x02};
const char* token = "joins-harness-token-0123456789";

double secs(clk::time_point a, clk::time_point b) { return std::chrono::duration<double>(b - a).count(); }

void put16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v >> 8); p[1] = static_cast<uint8_t>(v); }
void put32(uint8_t* p, uint32_t v) { put16(p, static_cast<uint16_t>(v >> 16)); put16(p + 2, static_cast<uint16_t>(v)); }
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }

uint16_t csum(const uint8_t* p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) s += get16(p + i);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

void host_mac(uint32_t ip, uint8_t* m) {
    const uint8_t v[6] = {0x02, 0x00, static_cast<uint8_t>(ip >> 24), static_cast<uint8_t>(ip >> 16),
                          static_cast<uint8_t>(ip >> 8), static_cast<uint8_t>(ip)};
    std::memcpy(m, v, 6);
}

bool send(rte_mempool* mp, rte_ring* rx, uint16_t port_id, const uint8_t* f, size_t len) {
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    if (m == nullptr) return false;
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(len)), f, len);
    m->port = port_id;
    if (rte_ring_enqueue(rx, m) != 0) {
        rte_pktmbuf_free(m);
        return false;
    }
    return true;
}

void rtp(uint8_t* b, uint16_t seq) {   // 134-byte frame: 80 B Opus payload
    std::memset(b, 0, 134);
    std::memcpy(b, ring_mac, 6);
    host_mac(speaker, b + 6);
    put16(b + 12, 0x0800);
    b[14] = 0x45;
    put16(b + 16, 120);
    b[22] = 64;
    b[23] = 17;
    put32(b + 26, speaker);
    put32(b + 30, ring_ip);
    put16(b + 24, csum(b + 14, 20));
    put16(b + 34, 5004);
    put16(b + 36, 40000);
    put16(b + 38, 100);
    b[42] = 0x80;
    b[43] = 111;
    put16(b + 44, seq);
    put32(b + 46, seq * 960u);
    put32(b + 50, 1234);
}

std::string bulk_body(uint32_t from, uint32_t n, unsigned tier, uint16_t port_base) {
    std::string s;
    s.reserve(size_t{n} * 48);
    s += "{\"listeners\":[";
    char b[96];
    for (uint32_t i = 0; i < n; ++i) {
        const uint32_t k = from + i;
        // 10.0.0.0/8 via the gateway; last octet 1..250, 16 ports per address.
        const uint32_t host = k / 16;
        const uint32_t ip = 0x0a000000 | ((host / 250) << 8) | (1 + host % 250);
        std::snprintf(b, sizeof b, "%s{\"ip\":\"%u.%u.%u.%u\",\"port\":%u,\"tier\":%u}", i ? "," : "", ip >> 24,
                      (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, port_base + k % 16, tier);
        s += b;
    }
    s += "]}";
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    bench::jsonl out;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--json" && i + 1 < argc) {
            if (!out.open(argv[++i])) return 2;
        } else {
            std::printf("usage: joins_harness [--json FILE]\n");
            return a == "--help" ? 0 : 2;
        }
    }
    drivers::eal_params ep;
    ep.lcores = {0, 1};
    ep.memory_mb = 512;
    ep.file_prefix = "stentor-joins-" + std::to_string(::getpid());
    ep.vdevs = {"net_null0,no-rx=1"};
    ep.log_level = "error";
    try {
        drivers::eal_init(ep);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "joins_harness: %s\n", e.what());
        return 1;
    }
    rte_mempool* test_pool = drivers::make_pool("jh_pool", 4095, 0, 0);
    rte_ring* rx = rte_ring_create("jh_r", 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* tx = rte_ring_create("jh_t", 16384, 0, RING_F_SC_DEQ);
    rte_ring* txs[4] = {tx, tx, tx, tx};
    const int rid = rte_eth_from_rings("jh_ring", &rx, 1, txs, 4, 0);
    char ring_name[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(static_cast<uint16_t>(rid), ring_name);

    control::profile p;
    p.path = "joins_harness";
    p.eal.lcores = {0, 1};
    p.eal.mbufs = 16383;
    p.dataplane.rx_lcores = {1};
    p.dataplane.fanout_lcores = {1};
    p.dataplane.frame_deadline_us = 20000;
    control::port_config null_port;
    null_port.name = "null0";
    null_port.device = "net_null0";
    null_port.ipv4 = 0xc6120001;
    null_port.gateway = 0xc61200fe;
    null_port.gateway_mac = std::array<uint8_t, 6>{0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe};
    // Plan for 1 M listeners: admission must not be what limits the benchmark.
    null_port.line_rate_mbps = 1000000;
    control::port_config ring_port;
    ring_port.name = "ring0";
    ring_port.device = ring_name;
    ring_port.ipv4 = ring_ip;
    ring_port.mac = std::array<uint8_t, 6>{ring_mac[0], ring_mac[1], ring_mac[2], ring_mac[3], ring_mac[4], ring_mac[5]};
    p.ports = {null_port, ring_port};
    p.limits.max_listeners = 2500000;
    p.limits.max_listeners_per_session = 2500000;
    p.limits.join_rate_per_s = 4000000000u;
    p.limits.session_join_rate_per_s = 4000000000u;
    p.limits.fanout_pps_per_core = 4000000000u;
    p.api.token = token;
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    sc.max_bitrate_kbps = 32;
    sc.speakers.push_back({speaker, 5004, 1234});
    for (unsigned i = 0; i < nb_admitted; ++i) sc.listeners.push_back({first_admitted + i, 6000, 0});
    p.sessions.push_back(sc);

    int rc = 0;
    {
        control::relay r(p);
        // The controller would (rightly) shed the million tier-1 joiners that
        // one core cannot serve at 50 packets/s; this benchmark measures joins.
        control::control_options co;
        co.overload.enter_ticks = ~0u;
        control::control_plane cp(r, p, co);
        r.state().load_static(p);
        r.start();
        cp.start();
        control::api_options ao;
        ao.token = token;
        control::api_server api(cp, ao);

        // Pump: speaker packets in at 50/s, replicas out counted per
        // admitted listener, ARP answered for the on-link hosts.
        std::atomic<bool> stop{false};
        std::atomic<uint32_t> injected{0};
        std::atomic<uint32_t> count_from{0xffffffff};
        std::vector<std::atomic<uint64_t>> got(nb_admitted);
        std::atomic<uint64_t> probe_hits{0};
        std::thread pump([&] {
            auto next = clk::now();
            uint8_t f[134];
            while (!stop.load()) {
                if (clk::now() >= next) {
                    const uint32_t n = injected.load() + 1;
                    injected.store(n);
                    rtp(f, static_cast<uint16_t>(n));
                    send(test_pool, rx, static_cast<uint16_t>(rid), f, sizeof f);
                    next += std::chrono::milliseconds(20);
                }
                void* objs[64];
                const unsigned nb = rte_ring_dequeue_burst(tx, objs, 64, nullptr);
                for (unsigned i = 0; i < nb; ++i) {
                    auto* m = static_cast<rte_mbuf*>(objs[i]);
                    const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
                    if (m->data_len >= 42 && get16(d + 12) == 0x0806 && get16(d + 20) == 1) {
                        const uint32_t target = get32(d + 38);
                        uint8_t a[60] = {};
                        uint8_t hm[6];
                        host_mac(target, hm);
                        std::memcpy(a, ring_mac, 6);
                        std::memcpy(a + 6, hm, 6);
                        put16(a + 12, 0x0806);
                        put16(a + 14, 1);
                        put16(a + 16, 0x0800);
                        a[18] = 6;
                        a[19] = 4;
                        put16(a + 20, 2);
                        std::memcpy(a + 22, hm, 6);
                        put32(a + 28, target);
                        std::memcpy(a + 32, ring_mac, 6);
                        put32(a + 38, ring_ip);
                        send(test_pool, rx, static_cast<uint16_t>(rid), a, sizeof a);
                    } else if (m->data_len >= 54 && get16(d + 12) == 0x0800) {
                        const uint32_t dst = get32(d + 30);
                        const uint16_t seq = get16(d + 44);
                        if (dst >= first_admitted && dst < first_admitted + nb_admitted) {
                            if (seq > count_from.load()) ++got[dst - first_admitted];
                            if (seq == static_cast<uint16_t>(injected.load())) ++probe_hits;
                        }
                    }
                    rte_pktmbuf_free(m);
                }
                if (nb == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
        });
        // Wait until every admitted listener's neighbour is resolved
        // (bounded): a probe packet reaches all of them.
        const auto w0 = clk::now();
        while (secs(w0, clk::now()) < 10) {
            probe_hits.store(0);
            const uint32_t at = injected.load();
            while (injected.load() == at) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            std::this_thread::sleep_for(std::chrono::milliseconds(15));
            if (probe_hits.load() >= nb_admitted) break;
        }

        // A: the bulk action + publish in the control plane (another session).
        control::session_params sp2;
        sp2.max_bitrate_kbps = 32;
        const uint32_t s2 = r.state().session_create(sp2).id;
        std::vector<std::vector<control::listener_spec>> batches(10);
        for (uint32_t b = 0; b < 10; ++b)
            for (uint32_t i = 0; i < 100000; ++i) {
                const uint32_t k = b * 100000 + i, host = k / 16;
                batches[b].push_back({0x0b000000 | ((host / 250) << 8) | (1 + host % 250), 20000 + k % 16, 2});
            }
        const auto a0 = clk::now();
        for (const auto& b : batches) {
            r.state().listener_add_bulk(s2, b);
            cp.commit();
        }
        const double a_s = secs(a0, clk::now());
        r.state().session_end(s2);
        cp.commit();
        const double joins_per_s = 1e6 / a_s;
        std::printf("control plane: 1000000 joins (10 bulk actions of 100000, each published) in %.3f s: %.0f joins/s\n",
                    a_s, joins_per_s);
        out.write({{"bench", "joins"}, {"kind", "control_plane"}, {"joins", 1000000}, {"seconds", a_s},
                   {"per_s", joins_per_s}, {"what", "10 bulk actions of 100 000, each published, in the control plane"}});

        // B: 1 M joins over HTTP into the streaming session.
        std::vector<std::string> bodies;
        for (uint32_t b = 0; b < 10; ++b) bodies.push_back(bulk_body(b * 100000, 100000, 1, 30000));
        httplib::Client cli("127.0.0.1", static_cast<int>(api.port()));
        cli.set_keep_alive(true);
        cli.set_tcp_nodelay(true);
        cli.set_read_timeout(60);
        cli.set_bearer_token_auth(token);
        const uint32_t from = injected.load();
        count_from.store(from);
        const auto b0 = clk::now();
        for (const auto& body : bodies) {
            auto res = cli.Post("/api/v1/sessions/1/listeners/bulk", body, "application/json");
            if (!res || res->status != 201) {
                std::fprintf(stderr, "joins_harness: bulk request failed: %s\n", res ? res->body.c_str() : "no answer");
                rc = 1;
                break;
            }
        }
        const double http_s = secs(b0, clk::now());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        const uint32_t until = injected.load();
        count_from.store(from);
        // Stop counting at `until`: wait for those to drain, then stop.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        stop.store(true);
        pump.join();
        uint64_t lost = 0;
        // Packets numbered from+1 .. until (+ possibly a few more that also arrived).
        const uint64_t expected = until - from;
        for (unsigned i = 0; i < nb_admitted; ++i) lost += got[i].load() >= expected ? 0 : expected - got[i].load();
        const auto t = r.totals();
        std::printf("http: 1000000 joins in 10 bulk requests in %.3f s (%.0f joins/s); session 1 has %llu listeners\n",
                    http_s, 1e6 / http_s, static_cast<unsigned long long>(r.state().session(1)->nb_listeners));
        std::printf("stream: %llu packets while joining, %u admitted listeners, lost %llu; tier-1 misses %llu "
                    "(deadline), replicas out %llu\n",
                    static_cast<unsigned long long>(expected), nb_admitted, static_cast<unsigned long long>(lost),
                    static_cast<unsigned long long>(t.tier_misses[1]), static_cast<unsigned long long>(t.replicas_out));
        out.write({{"bench", "joins"}, {"kind", "http_bulk"}, {"joins", 1000000}, {"seconds", http_s}, {"per_s", 1e6 / http_s},
                   {"lost", lost}, {"what", "10 bulk HTTP requests of 100 000 into a streaming session"}});

        // C: single-listener adds over HTTP with keep-alive.
        control::session_params sp3;
        sp3.max_bitrate_kbps = 32;
        const uint32_t s3 = r.state().session_create(sp3).id;
        cp.commit();
        auto single = [&](unsigned threads, unsigned per_thread) {
            std::vector<std::thread> ts;
            std::atomic<unsigned> fails{0};
            const auto c0 = clk::now();
            for (unsigned t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    httplib::Client c("127.0.0.1", static_cast<int>(api.port()));
                    c.set_keep_alive(true);
                    c.set_tcp_nodelay(true);
                    c.set_bearer_token_auth(token);
                    for (unsigned i = 0; i < per_thread; ++i) {
                        const uint32_t ip = 0x0c000001 + (t * per_thread + i) + threads * 1000000u;
                        char b[96];
                        std::snprintf(b, sizeof b, "{\"ip\":\"%u.%u.%u.%u\",\"port\":5000}", ip >> 24, (ip >> 16) & 255,
                                      (ip >> 8) & 255, ip & 255);
                        auto res = c.Post("/api/v1/sessions/" + std::to_string(s3) + "/listeners", b, "application/json");
                        if (!res || res->status != 201) ++fails;
                    }
                });
            for (auto& th : ts) th.join();
            const double s = secs(c0, clk::now());
            std::printf("http single add, keep-alive, %u client(s): %u requests in %.3f s: %.0f requests/s (%u failed)\n",
                        threads, threads * per_thread, s, threads * per_thread / s, fails.load());
            out.write({{"bench", "joins"}, {"kind", "http_single"}, {"clients", threads}, {"joins", threads * per_thread},
                       {"seconds", s}, {"per_s", threads * per_thread / s}, {"failed", fails.load()},
                       {"what", "single listener adds over HTTP, keep-alive"}});
        };
        single(1, 2000);
        single(8, 1000);
        std::printf("RESULT joins_per_s=%.0f http_1m_joins_s=%.3f lost=%llu\n", joins_per_s, http_s,
                    static_cast<unsigned long long>(lost));
        out.write({{"bench", "joins"}, {"kind", "result"}, {"joins_per_s", joins_per_s}, {"http_1m_joins_s", http_s},
                   {"lost", lost}});
        std::fflush(stdout);
        cp.stop();
        r.stop();
    }
    drivers::eal_cleanup();
    return rc;
}
