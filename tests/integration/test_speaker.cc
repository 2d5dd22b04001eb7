// Speaker state in the data plane: real EAL, ring ports, the relay's own
// workers polled on the test thread.
#include <chrono>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "harness.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;

constexpr uint32_t listener_ip = 0xc6120064;   // 198.18.0.100
constexpr uint16_t listener_port = 6000;
constexpr size_t real_payload = 80;
constexpr size_t spoof_payload = 81;           // tells a spoof apart on the listener's side

// Issue 10 item 9: the policer entry of a speaker is written by one RX lcore
// only. Two RX lcores (queues 0 and 1 of one port) each receive a burst of
// exactly one full bucket (50 packets) of the same speaker, as when a RETA
// change moves the flow: each lcore polices with its own entry, so nothing is
// policed and nothing is written by two lcores. With one shared entry per
// speaker both lcores wrote the same bucket and about half was policed.
TEST(speaker_state, each_rx_queue_polices_a_speaker_with_its_own_entry) {
    rte_ring* rx[2];
    rte_ring* tx[8];
    for (int q = 0; q < 2; ++q) {
        rx[q] = rte_ring_create(("rq2_r" + std::to_string(q)).c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(nullptr, rx[q]);
    }
    rte_ring* txr = rte_ring_create("rq2_t", 4096, 0, RING_F_SC_DEQ);
    ASSERT_NE(nullptr, txr);
    for (auto& t : tx) t = txr;
    const int id = rte_eth_from_rings("rq2", rx, 2, tx, 8, 0);
    ASSERT_GE(id, 0);
    char dev[RTE_ETH_NAME_MAX_LEN];
    ASSERT_EQ(0, rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev));
    ring_port port{dev, rx[0], txr, static_cast<uint16_t>(id)};
    ring_port queue1 = port;
    queue1.rx = rx[1];

    auto prof = base_profile(port.name);
    prof.dataplane.rx_lcores = {1, 2};
    prof.ports[0].rx_queues = 2;
    prof.ports[0].tx_queues = 2;
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;   // 20 ms frames: the bucket holds 50 packets
    sc.speakers.push_back({speaker_ip, 5004, 1234});
    sc.listeners.push_back({listener_ip, listener_port, 0});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    EXPECT_TRUE(resolve(r, port, {listener_ip}).empty());
    const auto before = all_counters(r);
    size_t out = 0;
    for (uint16_t k = 0; k < 100; ++k) {
        frame_spec f;
        f.seq = k;
        f.ts = 960u * k;
        inject(k < 50 ? port : queue1, rtp_frame(f));
        if (k == 49) {   // one burst per queue: 64 packets in flight fill a fan-out lcore's job table
            settle(r);
            out += drain(port).size();
        }
    }
    settle(r);
    out += drain(port).size();
    EXPECT_EQ(100u, out);
    const auto after = all_counters(r);
    EXPECT_EQ(0u, after.at("drop/ingress/policed") - before.at("drop/ingress/policed"));
    EXPECT_EQ(100u, after.at("rtp_in") - before.at("rtp_in"));
    r.flush();
}

}  // namespace
}  // namespace stentor::test
