// Ingress packet validation: every layer (Ethernet, IPv4, UDP, RTP) is checked
// against the bytes actually received before any other work is done. Pure
// function over bytes (no mbuf), so unit tests, fuzzers and the lcore loop all
// run the same code. Inline: it is the first thing every received packet hits.
#pragma once

#include <cstdint>

#include "stentor/dp_counters.h"
#include "stentor/dp_port.h"
#include "stentor/wire.h"

namespace stentor::dp {

enum class pkt_kind : uint8_t {
    drop,       // see parse_result::reason
    rtp,        // a well-formed RTP packet to a speaker port: look up the flow next
    arp,        // a well-formed ARP request/reply (Ethernet/IPv4) to consider
    icmp_echo,  // a well-formed ICMP echo request to the relay's address
    stun,       // UDP to a session port whose payload starts 0..3 (RFC 7983): a join request to verify
    // IPv6 (issue 15): the same layers, checked by parse_ipv6 (parse.cc).
    rtp6,       // a well-formed RTP packet over IPv6 to a speaker port (checksum not 0; verified after the flow lookup)
    stun6,      // a join request over IPv6 (UDP checksum verified)
    icmp6_echo, // a well-formed ICMPv6 echo request to the relay's address
    nd_ns,      // a neighbour solicitation for the relay's address: answer with an NA
    nd_na,      // a neighbour advertisement to consider (only one we asked for is learnt)
};

struct parse_result {
    pkt_kind kind = pkt_kind::drop;
    drop_reason reason = drop_reason::count_;   // valid when kind == drop
    uint16_t l3_off = 0;       // IPv4 / ARP header offset
    uint16_t l4_off = 0;       // UDP / ICMP header offset
    uint16_t rtp_off = 0;      // RTP header offset (= UDP payload); for stun, the STUN message
    uint16_t rtp_len = 0;      // whole UDP payload length (RTP header .. padding), forwarded byte-identical
    uint16_t payload_off = 0;  // first byte of the codec payload (after CSRCs and extension)
    uint16_t payload_len = 0;  // codec payload length (excluding padding)
    uint32_t src_ip_be = 0;
    uint16_t src_port_be = 0;
    uint16_t dst_port_be = 0;
    uint32_t ssrc_be = 0;
    uint16_t icmp_len = 0;     // ICMP message length (header + data) for echo; ICMPv6 message length
    uint16_t nd_lla_off = 0;   // NS/NA: frame offset of the link-layer address option's MAC (0: none)
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
    using namespace wire;
    if (len < l2l3l4 || len > self.max_frame) return false;
    if ((d[off_eth_src] & 1) || load_be16(d + off_eth_type) != ethertype_ipv4) return false;
    if (!mac_equal(d + off_eth_dst, self.mac)) return false;
    if (d[off_ip] != ipv4_version_ihl5 || d[off_ip_proto] != ipproto_udp) return false;
    const uint32_t total = load_be16(d + off_ip_total_len);
    if (total < ipv4_hdr_len + udp_hdr_len || total > len - eth_hdr_len) return false;
    if (load_be16(d + off_ip_frag) & ipv4_frag_mask) return false;
    const uint32_t src = load_raw32(d + off_ip_src);
    if (load_raw32(d + off_ip_dst) != self.ip_be || src == self.ip_be || ipv4_src_unusable(d[off_ip_src]))
        return false;
    const uint16_t dport = load_be16(d + off_udp_dport);
    if (dport < self.udp_port_min || dport > self.udp_port_max) return false;
    // STUN (first byte 0..3, RFC 7983) is a listener's join request, not a
    // speaker flow: parse_packet takes it to the join stage.
    if (len > l2l3l4 && d[l2l3l4] < 4) return false;
    *key = (uint64_t{src} << 32) | (uint64_t{load_raw16(d + off_udp_sport)} << 16) | load_raw16(d + off_udp_dport);   // = flow_key()
    return true;
}

}  // namespace stentor::dp
