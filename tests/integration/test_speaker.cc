// Speakers in the data plane: real EAL, ring ports, the relay's own workers
// polled on the test thread.
//
// Spoofed speakers (issue 10 item 4): a spoofer that knows the speaker's
// address, ports and SSRC but cannot see the stream (a blind spoofer) floods
// packets with guessed sequence numbers and timestamps. Before the RTP
// plausibility check (dataplane/rtp_track.h) those packets reached every
// listener and spent the real speaker's policer budget; now each is dropped
// before the policer and counted by why it was implausible.
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

constexpr size_t real_payload = 80;
constexpr size_t spoof_payload = 81;           // tells a spoof apart on the listener's side

TEST(spoofed_speaker, blind_400pps_spoofer_neither_reaches_listeners_nor_drains_the_real_speaker) {
    const ring_port port = make_ring_port("spoof0");
    auto prof = base_profile(port.name);
    auto sc = speaker_session();   // frame_ms 20: 50 packets/s, policer 55 packets/s, 55 deep
    sc.listeners.push_back({listener_ip, listener_port, 0});
    prof.sessions.push_back(sc);
    relay r(prof, relay_options{.launch = false});
    r.state().load_static(prof);
    EXPECT_TRUE(resolve(r, port, {listener_ip}).empty());
    const unsigned pool0 = rte_mempool_in_use_count(r.pool());
    const auto before = all_counters(r);

    // The real speaker: 300 packets at its own rate (one per 20 ms), random
    // first sequence number and timestamp as RFC 3550 asks. The spoofer: 8
    // packets between two real ones (400 packets/s) from the same address and
    // ports with the same SSRC, each with a guessed sequence number and
    // timestamp. Fixed seed: a failure replays.
    std::mt19937_64 rng(0x73706f6f66ULL);
    constexpr unsigned real_n = 300, spoof_per_real = 8;
    const uint16_t seq0 = static_cast<uint16_t>(rng());
    const uint32_t ts0 = static_cast<uint32_t>(rng());
    std::vector<uint16_t> got_real;
    unsigned got_spoof = 0;
    auto collect = [&] {
        for (const auto& f : drain(port)) {
            ASSERT_GE(f.size(), 54u);
            ASSERT_EQ(listener_ip, be32(f.data() + 30));
            if (f.size() == 54 + spoof_payload)
                ++got_spoof;
            else
                got_real.push_back(be16(f.data() + 44));
        }
    };
    auto last = std::chrono::steady_clock::now();
    for (unsigned k = 0; k < real_n; ++k) {
        // Pacing only (nothing asserts on time): the policer refills by the
        // clock, so the real speaker must keep to its rate.
        std::this_thread::sleep_until(last + std::chrono::milliseconds(20));
        last = std::chrono::steady_clock::now();
        // The real packet lands at a random place among the spoofs: the
        // spoofer does not know when the speaker sends either.
        const unsigned at = static_cast<unsigned>(rng() % (spoof_per_real + 1));
        for (unsigned s = 0; s <= spoof_per_real; ++s) {
            if (s == at) {
                frame_spec real;
                real.seq = static_cast<uint16_t>(seq0 + k);
                real.ts = ts0 + 960 * k;
                real.payload = real_payload;
                inject(port, rtp_frame(real));
                continue;
            }
            frame_spec spoof;   // same address, ports and SSRC as the real speaker
            spoof.seq = static_cast<uint16_t>(rng());
            spoof.ts = static_cast<uint32_t>(rng());
            spoof.payload = spoof_payload;
            inject(port, rtp_frame(spoof));
        }
        settle(r);
        collect();
    }
    settle(r);
    collect();

    const auto after = all_counters(r);
    auto moved = [&](const std::string& n) { return after.at(n) - before.at(n); };
    EXPECT_EQ(real_n, got_real.size()) << "real packets lost: the spoofer drained the real speaker's bucket";
    for (unsigned k = 0; got_real.size() == real_n && k < real_n; ++k)
        EXPECT_EQ(static_cast<uint16_t>(seq0 + k), got_real[k]) << "order";
    EXPECT_EQ(0u, got_spoof) << "spoofed audio reached the listener";
    EXPECT_EQ(0u, moved("drop/ingress/policed"));
    EXPECT_EQ(real_n, moved("rtp_in"));
    EXPECT_EQ(uint64_t{real_n} * spoof_per_real, moved("drop/ingress/rtp_seq_jump") +
                                                     moved("drop/ingress/rtp_ts_jump") +
                                                     moved("drop/ingress/rtp_duplicate"))
        << "every spoof counted under one of the plausibility reasons";
    EXPECT_EQ(0u, moved("rtp_resyncs")) << "the live speaker's stream was never given up";
    std::printf("[ spoof    ] real %zu/%u, spoofs forwarded %u; seq_jump %llu ts_jump %llu duplicate %llu\n",
                got_real.size(), real_n, got_spoof, static_cast<unsigned long long>(moved("drop/ingress/rtp_seq_jump")),
                static_cast<unsigned long long>(moved("drop/ingress/rtp_ts_jump")),
                static_cast<unsigned long long>(moved("drop/ingress/rtp_duplicate")));
    r.flush();
    EXPECT_EQ(pool0, rte_mempool_in_use_count(r.pool())) << "mbuf leak";
}

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
    auto sc = speaker_session();   // 20 ms frames: the bucket holds 50 packets
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
