// Ingress packet validation: every layer (Ethernet, IPv4, UDP, RTP) is checked
// against the bytes actually received before any other work is done. Pure
// function over bytes (no mbuf), so unit tests, fuzzers and the lcore loop all
// run the same code. Inline: it is the first thing every received packet hits.
#pragma once

#include <cstdint>

#include "stentor/dp_counters.h"

namespace stentor::dp {

// The relay's own identity on one port, as the validator needs it.
// Multi-byte fields in network byte order where marked _be.
struct port_identity {
    uint8_t mac[6];
    uint32_t ip_be;            // relay address on this port
    uint16_t max_frame;        // MTU + 14 (+4 if VLAN ever allowed); longer frames are dropped
    uint16_t udp_port_min;     // host order: speaker ingress range
    uint16_t udp_port_max;
};

enum class pkt_kind : uint8_t {
    drop,       // see parse_result::reason
    rtp,        // a well-formed RTP packet to a speaker port: look up the flow next
    arp,        // a well-formed ARP request/reply (Ethernet/IPv4) to consider
    icmp_echo,  // a well-formed ICMP echo request to the relay's address
};

struct parse_result {
    pkt_kind kind = pkt_kind::drop;
    drop_reason reason = drop_reason::count_;   // valid when kind == drop
    uint16_t l3_off = 0;       // IPv4 / ARP header offset
    uint16_t l4_off = 0;       // UDP / ICMP header offset
    uint16_t rtp_off = 0;      // RTP header offset (= UDP payload)
    uint16_t rtp_len = 0;      // whole UDP payload length (RTP header .. padding), forwarded byte-identical
    uint16_t payload_off = 0;  // first byte of the codec payload (after CSRCs and extension)
    uint16_t payload_len = 0;  // codec payload length (excluding padding)
    uint32_t src_ip_be = 0;
    uint16_t src_port_be = 0;
    uint16_t dst_port_be = 0;
    uint32_t ssrc_be = 0;
    uint16_t icmp_len = 0;     // ICMP message length (header + data) for echo
};

// Classify one frame. `len` is the number of bytes received (data_len).
parse_result parse_packet(const uint8_t* data, uint32_t len, const port_identity& self) noexcept;

// First stage of ingress. For a plain IPv4/UDP frame to us and to the
// speaker port range, sets *key to flow_key(source, source port, destination
// port) and returns true; the caller drops it as unknown_flow when no speaker
// has that key, before the IPv4 checksum, the UDP length and the RTP header
// are looked at: only registered flows pay for full validation. Everything
// parse_packet checks before the ports (frame size, MACs, ethertype,
// version, IHL, total length, fragments, source and destination addresses,
// protocol) is checked here the same way, so the only change for an unknown
// flow is that a corrupt one is counted as unknown_flow rather than by its
// corruption. Returns false for anything else: parse_packet decides.
inline bool ingress_flow_key(const uint8_t* d, uint32_t len, const port_identity& self, uint64_t* key) noexcept {
    if (len < 42 || len > self.max_frame) return false;
    if ((d[6] & 1) || d[12] != 0x08 || d[13] != 0x00) return false;
    if (__builtin_memcmp(d, self.mac, 6) != 0) return false;
    const uint8_t* ip = d + 14;
    if (ip[0] != 0x45 || ip[9] != 17) return false;
    const uint32_t total = uint32_t{ip[2]} << 8 | ip[3];
    if (total < 28 || total > len - 14) return false;
    if (((ip[6] << 8) | ip[7]) & 0x3fff) return false;
    uint32_t src, dst;
    __builtin_memcpy(&src, ip + 12, 4);
    __builtin_memcpy(&dst, ip + 16, 4);
    if (dst != self.ip_be || src == self.ip_be || ip[12] == 0 || ip[12] == 127 || ip[12] >= 224) return false;
    const uint16_t dport = static_cast<uint16_t>(ip[22] << 8 | ip[23]);
    if (dport < self.udp_port_min || dport > self.udp_port_max) return false;
    uint16_t sport_be, dport_be;
    __builtin_memcpy(&sport_be, ip + 20, 2);
    __builtin_memcpy(&dport_be, ip + 22, 2);
    *key = (uint64_t{src} << 32) | (uint64_t{sport_be} << 16) | dport_be;   // = flow_key()
    return true;
}

// RFC 1071 one's-complement sum helpers shared with the fan-out.
uint32_t csum_add(uint32_t sum, const uint8_t* p, uint32_t len) noexcept;
uint16_t csum_fold(uint32_t sum) noexcept;

}  // namespace stentor::dp
