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
// The relay's trunks are authenticated, as a fleet's are unless its profiles
// say allow_unauthenticated_trunks (docs/fleet.md "Trunk authentication"):
// the trunk flow holds the trunk key and every trunk packet is sealed with
// it (AEAD_AES_128_GCM, by the harness, before the clock starts), so the
// hop includes the edge's open (one GCM decrypt and tag check).
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
#include "stentor/srtp.h"

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

// The trunk key both ends hold (any 28 bytes: the harness is both ends).
std::vector<uint8_t> trunk_master() {
    std::vector<uint8_t> m(srtp::master_len(srtp::suite::aead_aes_128_gcm));
    for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<uint8_t>(0x5a + 7 * i);
    return m;
}

// The same frame as the origin seals it: its RTP protected with the trunk
// key at the index of its sequence number (the harness sends fewer than
// 65 536 packets: ROC 0).
std::vector<uint8_t> sealed_frame(const srtp::keyset& ks, uint32_t src, uint16_t sport, uint16_t dport, uint16_t seq,
                                  uint32_t ts) {
    const rtp_frame_spec s{relay_mac, gateway_mac, src, relay_ip, sport, dport, seq, ts, 120};
    auto rtp = rtp_packet(s);
    const auto n = static_cast<uint32_t>(rtp.size());
    rtp.resize(n + srtp::max_trailer);
    const uint32_t len = srtp::protect(ks, 0, seq, rtp.data(), n, 12);
    if (len == 0) throw std::runtime_error("protecting a trunk packet failed");
    rtp.resize(len);
    return udp_frame(s, rtp);
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
        uint64_t lost = 0, trunk_dup = 1, opened = 0;
        const auto master = trunk_master();
        srtp::key* key = srtp::key_create(srtp::suite::aead_aes_128_gcm, master.data(), master.size(), 1);
        if (key == nullptr) throw std::runtime_error("trunk key");
        srtp::keyset ks{};
        ks.nb_keys = 1;
        ks.suite_id = static_cast<uint8_t>(srtp::suite::aead_aes_128_gcm);
        ks.keys[0] = key;
        {
            running_relay rr(p, [&master](control::relay& r) {
                r.state().set_trunk_auth(true);
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
                control::srtp_key_spec k;
                k.id = "trunk-0123456789abcdef";
                k.suite = srtp::suite::aead_aes_128_gcm;
                k.master = control::secure_bytes(master.size());
                std::memcpy(k.master.data(), master.data(), master.size());
                r.state().srtp_key_add({2, std::make_pair(origin_ip, 40001u)}, std::move(k));
                r.state().listener_add(2, listener2_ip, 6000, 1);
            });
            const unsigned warm = 100;
            for (unsigned i = 0; i < 2 * (packets + warm); ++i) {
                const bool trunk = (i & 1) != 0;
                const unsigned k = i / 2;
                const auto f = trunk ? sealed_frame(ks, origin_ip, 40001, 40001, static_cast<uint16_t>(9 + k), 960u * k)
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
            opened = rr.counter("srtp_authenticated").value_or(0);
        }
        srtp::key_free(key);
        std::printf("# one relay, worker polling on lcore 1, a packet every 0.5 ms alternating a speaker's and a "
                    "trunk's, %u each\n",
                    packets);
        std::printf("speaker packet ingress->egress (one relay, reference)  p50 %6.2f us  p99 %6.2f us  max %7.2f us\n",
                    pct(relay_us, 0.5), pct(relay_us, 0.99), pct(relay_us, 1.0));
        std::printf("trunk packet   ingress->egress (one hop added)          p50 %6.2f us  p99 %6.2f us  max %7.2f us\n",
                    pct(hop_us, 0.5), pct(hop_us, 0.99), pct(hop_us, 1.0));
        std::printf("# lost %llu, trunk_duplicate %llu (0: every trunk packet was a first copy), trunk packets "
                    "authenticated %llu (AEAD_AES_128_GCM)\n",
                    static_cast<unsigned long long>(lost), static_cast<unsigned long long>(trunk_dup),
                    static_cast<unsigned long long>(opened));
        std::printf("RESULT hop_p50_us=%.2f hop_p99_us=%.2f relay_p50_us=%.2f relay_p99_us=%.2f\n", pct(hop_us, 0.5),
                    pct(hop_us, 0.99), pct(relay_us, 0.5), pct(relay_us, 0.99));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "trunk_hop_harness: %s\n", e.what());
        return 1;
    }
    drivers::eal_cleanup();
    return 0;
}
