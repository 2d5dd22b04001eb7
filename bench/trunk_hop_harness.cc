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
#include <array>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <rte_cycles.h>

#include "ring_relay.h"
#include "state.h"

namespace {

using namespace stentor;
using namespace stentor::bench;

constexpr uint32_t relay_ip = 0xc6120003;      // 198.18.0.3: the edge
constexpr uint32_t speaker_ip = 0xc612000a;    // 198.18.0.10
constexpr uint32_t origin_ip = 0xc6120002;     // 198.18.0.2: the origin the trunk comes from
constexpr uint32_t listener1_ip = 0x0b000001;  // 11.0.0.1, off-link
constexpr uint32_t listener2_ip = 0x0b000002;  // 11.0.0.2, off-link
constexpr mac_addr relay_mac = {0x02, 0x53, 0x54, 0x00, 0x00, 0x03};

// RTP PT 111, SSRC 1234, 120 bytes of payload (a 64 kbit/s Opus frame) from
// src:sport to the relay's dport; checksums valid.
std::vector<uint8_t> frame(uint32_t src, uint16_t sport, uint16_t dport, uint16_t seq, uint32_t ts) {
    return rtp_frame({relay_mac, gateway_mac, src, relay_ip, sport, dport, seq, ts, 120});
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
    try {
        rte_mempool* pool = start_eal("hop");
        const ring_port port = make_ring_port("hop");
        control::profile p = ring_relay_profile("trunk_hop_harness", port.device, relay_ip, relay_mac);
        p.limits.speaker_burst_pct = 10000;   // 2000 packets/s per flow: far above a real stream

        std::vector<double> relay_us, hop_us;
        uint64_t lost = 0, trunk_dup = 1;
        {
            running_relay rr(p, [](control::relay& r) {
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
            });
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
                const auto tsc = time_one(pool, port, f);
                if (!tsc) {
                    ++lost;
                    continue;
                }
                if (k < warm) continue;
                (trunk ? hop_us : relay_us).push_back(static_cast<double>(*tsc) * us_per_tsc());
            }
            trunk_dup = rr.counter("drop/ingress/trunk_duplicate").value_or(trunk_dup);
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
