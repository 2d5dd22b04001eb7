// Flood: a registered speaker streams to 50 listeners at its real rate
// (one packet per 20 ms) while 100 k+ packets of unknown flows arrive
// interleaved in the same bursts: random sources, random destination ports in
// and out of the speaker range, random junk at every layer. Every registered
// packet must reach every listener exactly once, nothing may go anywhere
// else, and every unknown packet must be counted under the reason the
// validator gives it (the validator itself is the oracle for junk).
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "frames.h"
#include "harness.h"
#include "parse.h"
#include "stentor/dp_counters.h"

namespace stentor::test {
namespace {

using namespace frames;
using control::relay;
using control::relay_options;

struct listener_t {
    uint32_t ip;
    uint16_t port;
};

void resolve_listeners(relay& r, const ring_port& port, const std::vector<listener_t>& ls) {
    std::vector<uint32_t> ips;
    for (const auto& l : ls) ips.push_back(l.ip);
    EXPECT_TRUE(resolve(r, port, ips).empty());
}

// The validator's view of this port, to classify random junk.
dp::port_identity identity() {
    dp::port_identity id{};
    std::memcpy(id.mac, relay_mac, 6);
    id.ip_be = __builtin_bswap32(relay_ip);
    id.max_frame = 1514;
    id.udp_port_min = 40000;
    id.udp_port_max = 40999;
    return id;
}

class flood_gen {
public:
    explicit flood_gen(uint64_t seed) : _rng(seed) {}

    uint32_t u32() { return static_cast<uint32_t>(_rng()); }
    uint32_t below(uint32_t n) { return u32() % n; }

    // A usable unicast source that is neither ours nor the speaker's.
    uint32_t src_ip() {
        for (;;) {
            const uint32_t ip = u32();
            const uint8_t a = static_cast<uint8_t>(ip >> 24);
            if (a == 0 || a == 127 || a >= 224 || ip == relay_ip || ip == speaker_ip) continue;
            return ip;
        }
    }

    mac_t src_mac() {
        mac_t m;
        for (auto& b : m) b = static_cast<uint8_t>(u32());
        m[0] = static_cast<uint8_t>((m[0] & 0xfe) | 0x02);   // unicast, locally administered
        return m;
    }

    bytes random_bytes(size_t n) {
        bytes b(n);
        for (auto& x : b) x = static_cast<uint8_t>(u32());
        return b;
    }

    // One unknown packet; `kind` picks the family so each is well represented.
    bytes next(unsigned kind) {
        const uint16_t sport = static_cast<uint16_t>(1 + below(65535));
        switch (kind) {
        case 0:   // well-formed RTP from a random source into the speaker range
        case 1: {
            const uint16_t dport = static_cast<uint16_t>(40000 + below(1000));
            return eth(our_mac, src_mac(), 0x0800,
                       ipv4({.src = src_ip()}, udp(sport, dport, rtp(0x80, 111, u32(), 1, 20 + below(200)))));
        }
        case 2: {   // random destination port anywhere (mostly outside the range)
            const uint16_t dport = static_cast<uint16_t>(below(65536));
            return eth(our_mac, src_mac(), 0x0800,
                       ipv4({.src = src_ip()}, udp(sport, dport, random_bytes(below(300)))));
        }
        case 3:   // valid headers to us, random UDP payload in the range
            return eth(our_mac, src_mac(), 0x0800,
                       ipv4({.src = src_ip()}, udp(sport, static_cast<uint16_t>(40000 + below(1000)),
                                                   random_bytes(below(200)))));
        case 4: {   // our Ethernet header, random everything after
            return eth(our_mac, src_mac(), below(2) ? 0x0800 : static_cast<uint16_t>(u32()),
                       random_bytes(below(400)));
        }
        case 5: {   // a valid IPv4 header with random fields after it
            bytes f = eth(our_mac, src_mac(), 0x0800,
                          ipv4({.src = src_ip(), .proto = static_cast<uint8_t>(u32())}, random_bytes(below(300))));
            return f;
        }
        default:   // pure junk of random length, including runts and oversize
            return random_bytes(below(1600));
        }
    }

private:
    std::mt19937_64 _rng;
};

TEST(flood_test, registered_stream_loses_nothing_under_100k_unknown_packets) {
    const ring_port port = make_ring_port("flood0");
    auto prof = base_profile(port.name, 2);
    control::session_config sc = speaker_session();
    std::vector<listener_t> ls;
    for (uint32_t i = 0; i < 50; ++i) ls.push_back({0xc6120064 + i, static_cast<uint16_t>(6000 + i)});
    for (size_t i = 0; i < ls.size(); ++i) sc.listeners.push_back({ls[i].ip, ls[i].port, static_cast<unsigned>(i % 4)});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    resolve_listeners(r, port, ls);
    const unsigned pool0 = rte_mempool_in_use_count(r.pool());
    const unsigned test_pool0 = rte_mempool_in_use_count(test_pool());
    const auto before = all_counters(r);

    const dp::port_identity id = identity();
    flood_gen gen(0x5354454e544f52ULL);   // fixed seed: a failure replays
    constexpr unsigned ticks = 101;          // registered packets, odd
    constexpr unsigned per_tick = 1000;      // unknown packets around each
    std::map<std::string, uint64_t> want;    // expected drops by counter name
    uint64_t unknown = 0;
    // (listener ip, port) -> RTP sequences received
    std::map<std::pair<uint32_t, uint16_t>, std::vector<uint16_t>> got;
    uint64_t stray = 0;

    auto collect = [&] {
        for (const auto& f : drain(port)) {
            if (f.size() < 46 || be16(f.data() + 12) != 0x0800) {
                ++stray;
                continue;
            }
            const auto key = std::make_pair(be32(f.data() + 30), be16(f.data() + 36));
            bool registered = false;
            for (const auto& l : ls) registered |= l.ip == key.first && l.port == key.second;
            if (!registered) {
                ++stray;
                continue;
            }
            got[key].push_back(be16(f.data() + 44));
        }
    };

    const auto start = std::chrono::steady_clock::now();
    auto last_send = start - std::chrono::milliseconds(20);
    for (unsigned t = 0; t < ticks; ++t) {
        const unsigned at = gen.below(per_tick);
        for (unsigned k = 0; k < per_tick; ++k) {
            if (k == at) {
                // At the speaker's own rate (50 packets/s), so a policer sized
                // from the codec never has a reason to touch it.
                std::this_thread::sleep_until(last_send + std::chrono::milliseconds(20));
                last_send = std::chrono::steady_clock::now();
                inject(port, speaker_frame(static_cast<uint16_t>(t)));
            }
            bytes f;
            dp::parse_result pr;
            // Junk that happens to be a valid ARP/ICMP for us would be
            // answered, not dropped: redraw it (it is not "unknown traffic").
            do {
                f = gen.next(gen.below(8));
                pr = dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), id);
            } while (pr.kind == dp::pkt_kind::arp || pr.kind == dp::pkt_kind::icmp_echo);
            // Oracle: the first stage (flow key only) catches well-formed
            // IPv4/UDP to the speaker range; the validator classifies the rest.
            uint64_t key;
            const bool first_stage = dp::ingress_flow_key(f.data(), static_cast<uint32_t>(f.size()), id, &key);
            // STUN-shaped junk (UDP payload starting 0..3) goes to the join
            // stage, which this profile (no [join] keys) turns away as join/off.
            const std::string reason = first_stage || pr.kind == dp::pkt_kind::rtp ? "ingress/unknown_flow"
                                       : pr.kind == dp::pkt_kind::stun        ? "join/off"
                                                                              : std::string(dp::name_of(pr.reason));
            ++want["drop/" + reason];
            ++unknown;
            inject(port, f);
            if (k % 512 == 511) {   // keep the RX ring (4096) and the test pool from filling
                settle(r);
                collect();
            }
        }
        settle(r);
        collect();
    }
    for (int i = 0; i < 8; ++i) {
        settle(r);
        collect();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    EXPECT_GE(unknown, 100000u);
    EXPECT_EQ(0u, stray) << "egress to an unregistered address or non-IPv4 egress";
    ASSERT_EQ(ls.size(), got.size()) << "some listener got nothing";
    for (const auto& [key, seqs] : got) {
        ASSERT_EQ(ticks, seqs.size()) << std::hex << key.first << " lost or duplicated packets";
        for (unsigned t = 0; t < ticks; ++t) EXPECT_EQ(t, seqs[t]) << "order";
    }
    const auto after = all_counters(r);
    EXPECT_EQ(before.at("rtp_in") + ticks, after.at("rtp_in"));
    EXPECT_EQ(before.at("replicas_out") + uint64_t{ticks} * ls.size(), after.at("replicas_out"));
    EXPECT_EQ(before.at("rx_packets") + ticks + unknown, after.at("rx_packets"));
    for (const auto& [name, v] : after) {
        if (name.rfind("drop/", 0) != 0) continue;
        const uint64_t expect = want.count(name) ? want[name] : 0;
        EXPECT_EQ(before.at(name) + expect, v) << name;
    }
    EXPECT_GT(want["drop/ingress/unknown_flow"], 20000u) << "too few well-formed unknown flows to mean anything";
    for (unsigned i = 0; i < dp::max_tiers; ++i)
        EXPECT_EQ(0u, after.at("tier_misses/" + std::to_string(i)) - before.at("tier_misses/" + std::to_string(i)));
    r.flush();
    EXPECT_EQ(pool0, rte_mempool_in_use_count(r.pool())) << "relay mbufs leaked";
    EXPECT_EQ(test_pool0, rte_mempool_in_use_count(test_pool())) << "received mbufs leaked";
    std::printf("[ flood    ] %llu unknown + %u registered packets, %zu listeners, %.1f s; unknown_flow %llu, udp_port %llu\n",
                static_cast<unsigned long long>(unknown), ticks, ls.size(), secs,
                static_cast<unsigned long long>(want["drop/ingress/unknown_flow"]),
                static_cast<unsigned long long>(want["drop/ingress/udp_port"]));
}

}  // namespace
}  // namespace stentor::test
