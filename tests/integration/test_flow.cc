// rte_flow ingress filter: chosen by capability. Ring ports have no rte_flow
// support, so the filter must say so cleanly, install nothing, and leave the
// software path (which always runs) doing all of the filtering.
#include <set>
#include <unistd.h>

#include <gtest/gtest.h>

#include "flow.h"
#include "frames.h"
#include "harness.h"

namespace stentor::test {
namespace {

using namespace frames;

TEST(flow_filter, port_range_masks_cover_the_range_exactly) {
    for (const auto& [lo, hi] : std::vector<std::pair<uint16_t, uint16_t>>{
             {40000, 40999}, {0, 65535}, {1, 1}, {1024, 2047}, {5, 65534}, {65535, 65535}}) {
        const auto blocks = drivers::port_range_masks(lo, hi);
        ASSERT_FALSE(blocks.empty());
        EXPECT_LE(blocks.size(), 32u) << lo << ".." << hi;
        std::vector<int> hits(65536, 0);
        for (const auto& [value, mask] : blocks) {
            EXPECT_EQ(value & mask, value) << "value has bits outside its mask";
            for (uint32_t p = 0; p < 65536; ++p)
                if ((p & mask) == value) ++hits[p];
        }
        for (uint32_t p = 0; p < 65536; ++p) ASSERT_EQ(p >= lo && p <= hi ? 1 : 0, hits[p]) << "port " << p;
    }
    EXPECT_TRUE(drivers::port_range_masks(2, 1).empty());
}

TEST(flow_filter, ring_port_reports_not_supported_and_software_path_filters) {
    const ring_port port = make_ring_port("flow0");
    auto prof = base_profile(port.name);
    control::session_config sc = speaker_session();
    sc.listeners.push_back({0xc6120064, 6000, 0});
    prof.sessions.push_back(sc);
    control::relay r(prof, control::relay_options{.launch = false});
    r.state().load_static(prof);

    drivers::flow_filter_spec spec;
    spec.relay_ip = relay_ip;
    spec.udp_port_min = 40000;
    spec.udp_port_max = 40999;
    spec.speakers.push_back({speaker_ip, 5004, 40000});
    drivers::flow_filter f = drivers::install_ingress_filter(port.port_id, spec);
    EXPECT_FALSE(f.active);
    EXPECT_TRUE(f.rules.empty());
    EXPECT_NE(std::string::npos, f.reason.find("not supported")) << f.reason;
    drivers::remove_ingress_filter(f);   // a no-op on an inactive filter
    EXPECT_FALSE(f.active);

    // Nothing changed: the software path forwards the speaker and drops the rest.
    const std::vector<std::pair<uint32_t, mac_t>> hosts{{gateway_ip, mac_t{2, 0, 0, 0, 0, 0xfe}},
                                                        {0xc6120064, mac_t{2, 0, 0, 0, 0, 0x64}}};
    for (int round = 0; round < 3; ++round) {
        r.poll();
        r.flush();
        answer_arp(port, drain(port), hosts);
        for (int i = 0; i < 64 && r.poll() != 0; ++i) {
        }
        r.flush();
        usleep(110 * 1000);
    }
    drain(port);
    inject(port, speaker_frame(7));
    inject(port, eth(our_mac, peer_mac, 0x0800, ipv4({.src = 0xcb007107}, udp(5004, 40000, rtp()))));
    for (int i = 0; i < 64 && r.poll() != 0; ++i) {
    }
    r.flush();
    const auto out = drain(port);
    ASSERT_EQ(1u, out.size());
    EXPECT_EQ(0xc6120064u, be32(out[0].data() + 30));
    uint64_t unknown = 0;
    for (const auto& [k, v] : r.counters(true))
        if (k == "drop/ingress/unknown_flow") unknown = v;
    EXPECT_EQ(1u, unknown);
}

}  // namespace
}  // namespace stentor::test
