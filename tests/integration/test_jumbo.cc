// Jumbo frames and chained mbufs (issue 10 item 8): real EAL, a ring port,
// the relay's own workers polled on the test thread. A frame that arrives in
// more than one segment is dropped first and counted, never parsed on its
// first segment (an ARP or ICMP reply built in place on a chain would leave
// with its tail and break the fast-free rules of the TX path); RTP too large
// for the fan-out template is counted, not silently lost.
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "harness.h"
#include "replica.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;

constexpr uint32_t peer_ip = 0xc6120005;       // 198.18.0.5

// Puts `frame` into the port's RX ring as a chain of mbufs cut at `cuts`.
void inject_chain(const ring_port& p, const bytes& frame, std::vector<size_t> cuts) {
    cuts.push_back(frame.size());
    rte_mbuf* head = nullptr;
    size_t off = 0;
    for (size_t end : cuts) {
        rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
        ASSERT_NE(nullptr, m);
        auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(end - off)));
        ASSERT_NE(nullptr, d);
        std::memcpy(d, frame.data() + off, end - off);
        off = end;
        if (head == nullptr)
            head = m;
        else
            ASSERT_EQ(0, rte_pktmbuf_chain(head, m));
    }
    head->port = p.port_id;
    ASSERT_EQ(0, rte_ring_enqueue(p.rx, head));
}

// A counter by name; 0 (and a failure) when the relay has no such counter.
uint64_t value(const std::map<std::string, uint64_t>& m, const std::string& name) {
    const auto it = m.find(name);
    EXPECT_TRUE(it != m.end()) << "no counter " << name;
    return it == m.end() ? 0 : it->second;
}

bytes echo_request(size_t data) {
    bytes p(14 + 20 + 8 + data, 0);
    std::memcpy(p.data(), relay_mac, 6);
    const mac_t peer = host_mac(peer_ip);
    std::memcpy(p.data() + 6, peer.data(), 6);
    p[12] = 0x08;
    p[14] = 0x45;
    p[16] = static_cast<uint8_t>((20 + 8 + data) >> 8);
    p[17] = static_cast<uint8_t>(20 + 8 + data);
    p[22] = 64;
    p[23] = 1;
    for (int i = 0; i < 4; ++i) p[26 + i] = static_cast<uint8_t>(peer_ip >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) p[30 + i] = static_cast<uint8_t>(relay_ip >> (24 - 8 * i));
    uint16_t c = ip_checksum(p.data() + 14, 20);
    p[24] = static_cast<uint8_t>(c >> 8);
    p[25] = static_cast<uint8_t>(c);
    p[34] = 8;
    for (size_t i = 0; i < data; ++i) p[42 + i] = static_cast<uint8_t>(i);
    c = ip_checksum(p.data() + 34, 8 + data);
    p[36] = static_cast<uint8_t>(c >> 8);
    p[37] = static_cast<uint8_t>(c);
    return p;
}

class jumbo_test : public ::testing::Test {
protected:
    void start(unsigned mtu) {
        prof = base_profile(port.name);
        prof.ports[0].mtu = mtu;
        auto sc = speaker_session();
        sc.listeners.push_back({listener_ip, listener_port, 0});
        prof.sessions.push_back(sc);
        r = std::make_unique<relay>(prof, relay_options{.launch = false});
        r->state().load_static(prof);
        EXPECT_TRUE(resolve(*r, port, {listener_ip}).empty());
        pool0 = rte_mempool_in_use_count(r->pool());
        test_pool0 = rte_mempool_in_use_count(test_pool());
    }
    void TearDown() override {
        r->flush();
        EXPECT_EQ(pool0, rte_mempool_in_use_count(r->pool())) << "relay mbufs leaked";
        EXPECT_EQ(test_pool0, rte_mempool_in_use_count(test_pool())) << "received mbufs (or their segments) leaked";
        r.reset();
    }
    ring_port port = fresh_ring_port("jumbo");
    control::profile prof;
    std::unique_ptr<relay> r;
    unsigned pool0 = 0, test_pool0 = 0;
};

struct chain_row {
    const char* what;
    bytes frame;
    std::vector<size_t> cuts;   // segment boundaries
};

TEST_F(jumbo_test, chained_frames_are_dropped_first_and_counted_never_answered) {
    start(1500);
    const mac_t peer = host_mac(peer_ip);
    const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t zero[6] = {};
    const bytes arp = arp_frame(1, peer.data(), peer_ip, zero, relay_ip, bcast);   // 60 bytes, 42 of ARP
    frame_spec fs;
    fs.seq = 7;
    fs.ts = 960 * 7;
    const std::vector<chain_row> rows = {
        {"ARP request for us, the whole ARP in the first segment, padding in the second", arp, {42}},
        {"ARP request for us in three segments", arp, {14, 30}},
        {"ICMP echo request, headers and 8 bytes of data first, the rest chained", echo_request(56), {50}},
        {"registered speaker's RTP, headers first, payload chained", rtp_frame(fs), {54}},
        {"registered speaker's RTP, whole frame first, an empty-ish tail segment", rtp_frame(fs), {rtp_frame(fs).size() - 1}},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const auto before = all_counters(*r);
        inject_chain(port, row.frame, row.cuts);
        settle(*r);
        const auto out = drain(port);
        EXPECT_TRUE(out.empty()) << out.size() << " frames sent in answer to a chained frame";
        const auto after = all_counters(*r);
        EXPECT_EQ(value(before, "drop/ingress/multi_segment") + 1, value(after, "drop/ingress/multi_segment"));
        for (const auto& [name, v] : after) {
            if (name == "drop/ingress/multi_segment" || name == "rx_packets" || name == "rx_bytes" ||
                name == "busy_cycles" || name == "idle_cycles" || name == "stalls" || name == "stall_cycles" ||
                name == "idle_sleeps" || name == "idle_rx_wakeups" || name == "port/lan0/rx_packets" ||
                name == "loops" || name == "ingress_calls" || name == "ingress_cycles" || name == "busy_polls" ||
                name == "idle_polls")
                continue;
            EXPECT_EQ(value(before, name), v) << name << " moved";
        }
    }
    // The same frames in one segment are answered / forwarded (positive control).
    inject(port, arp);
    inject(port, rtp_frame(fs));
    settle(*r);
    EXPECT_EQ(2u, drain(port).size());
}

TEST_F(jumbo_test, rtp_too_large_for_the_fanout_template_is_counted) {
    // MTU 2000: frames up to 2014 bytes fit one 2048-byte mbuf, but the
    // fan-out template holds 1536 bytes (replica.h): RTP of up to 1494 bytes.
    start(2000);
    constexpr size_t max_rtp = dp::max_frame_bytes - 42;
    struct size_row {
        const char* what;
        size_t rtp_len;
        bool forwarded;
    };
    const std::vector<size_row> rows = {
        {"largest RTP the template holds", max_rtp, true},
        {"one byte more", max_rtp + 1, false},
        {"a 1958-byte RTP packet (MTU 2000)", 2000 - 28 - 14, false},
        {"an ordinary Opus packet afterwards", 92, true},
    };
    uint16_t seq = 1;
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const auto before = all_counters(*r);
        frame_spec fs;
        fs.seq = seq;
        fs.ts = 960u * seq;
        ++seq;
        fs.payload = row.rtp_len - 12;
        inject(port, rtp_frame(fs));
        settle(*r);
        const auto out = drain(port);
        const auto after = all_counters(*r);
        EXPECT_EQ(row.forwarded ? 1u : 0u, out.size());
        EXPECT_EQ(value(before, "drop/ingress/rtp_too_large") + (row.forwarded ? 0 : 1),
                  value(after, "drop/ingress/rtp_too_large"));
        EXPECT_EQ(value(before, "rtp_in") + (row.forwarded ? 1 : 0), value(after, "rtp_in"));
    }
}

}  // namespace
}  // namespace stentor::test
