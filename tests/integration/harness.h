// Shared by the integration tests: EAL once per process, ring-backed ports
// (packets in through one rte_ring, out through another), a packet builder
// and a relay driven on the test thread so every run is deterministic.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "config.h"
#include "relay.h"

namespace stentor::test {

using bytes = std::vector<uint8_t>;
using mac_t = std::array<uint8_t, 6>;

inline constexpr uint8_t relay_mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
inline constexpr uint32_t relay_ip = 0xc6120001;      // 198.18.0.1
inline constexpr uint32_t gateway_ip = 0xc61200fe;    // 198.18.0.254
inline constexpr uint32_t speaker_ip = 0xc612000a;    // 198.18.0.10
inline constexpr uint32_t listener_ip = 0xc6120064;   // 198.18.0.100: the tests' on-link listener
inline constexpr uint16_t listener_port = 6000;

rte_mempool* test_pool();

// A port whose RX reads `rx` and whose TX writes `tx`.
struct ring_port {
    std::string name;
    rte_ring* rx = nullptr;
    rte_ring* tx = nullptr;
    uint16_t port_id = 0;
};
ring_port make_ring_port(const std::string& name, unsigned tx_ring_size = 16384);
// A port named `prefix` + a number never used before in this process.
ring_port fresh_ring_port(const std::string& prefix);

// Minimal profile: one port on `port_name`, 198.18.0.1/24 gw .254, ingress
// 40000-40999, one fan-out lcore (or `shards`).
control::profile base_profile(const std::string& port_name, unsigned shards = 1);

// Session 1 on UDP 40000 with the speaker rtp_frame() sends as by default
// (speaker_ip:5004, SSRC 1234); tests add listeners and settings.
inline control::session_config speaker_session() {
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    sc.speakers.push_back({speaker_ip, 5004, 1234});
    return sc;
}

struct frame_spec {
    uint8_t dst_mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
    uint8_t src_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
    uint32_t src_ip = speaker_ip;
    uint32_t dst_ip = relay_ip;
    uint16_t src_port = 5004;
    uint16_t dst_port = 40000;
    uint32_t ssrc = 1234;
    uint16_t seq = 1;
    uint32_t ts = 960;
    size_t payload = 80;
};
bytes rtp_frame(const frame_spec& f);
// Any UDP payload with f's addresses and ports (checksums valid).
bytes udp_frame(const frame_spec& f, const bytes& payload);
bytes arp_frame(uint16_t op, const uint8_t* sender_mac, uint32_t sender_ip, const uint8_t* target_mac,
                uint32_t target_ip, const uint8_t* eth_dst);

// `ol_flags`: what a NIC would have said of the frame (RTE_MBUF_F_RX_*,
// e.g. its L4 checksum verdict); net_ring hands the mbuf over as it is.
void inject(const ring_port& p, const bytes& frame, uint64_t ol_flags = 0);
std::vector<bytes> drain(const ring_port& p);

uint16_t ip_checksum(const uint8_t* ip, size_t len);
uint16_t be16(const uint8_t* p);
uint32_t be32(const uint8_t* p);

// Answer every ARP request the relay sent (found in `out`) for addresses in
// the given (ip -> mac) table; returns the frames that were not ARP requests.
std::vector<bytes> answer_arp(const ring_port& p, const std::vector<bytes>& out,
                              const std::vector<std::pair<uint32_t, std::array<uint8_t, 6>>>& hosts);

// The MAC a test host at `ip` answers ARP with: 02:00:<ip bytes>.
mac_t host_mac(uint32_t ip);

// Counters by their exported names (control/stats.h).
std::map<std::string, uint64_t> all_counters(const control::relay& r);
// One counter; a name that does not exist fails the test.
uint64_t counter(const control::relay& r, const std::string& name);

// Poll the relay's workers until a round does no work (bounded), then drain
// their TX buffers.
void settle(control::relay& r);

// Answer the relay's ARP requests for the gateway and `hosts` like real hosts
// would, over three of the ARP owner's 100 ms rounds. Returns every frame
// that was not an ARP request (callers decide whether any is allowed).
std::vector<bytes> resolve(control::relay& r, const ring_port& port, const std::vector<uint32_t>& hosts);

}  // namespace stentor::test
