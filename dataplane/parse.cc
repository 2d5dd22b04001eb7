// Ingress validator. The checks run in the order documented in parse.h's
// contract (Ethernet, then ARP or IPv4, then ICMP or UDP, then RTP); the first
// failing check names the drop reason, so counters tell an operator exactly
// which layer a bad sender got wrong. Every read is preceded by a length check
// against the bytes actually received (or, past the IPv4 header, against the
// IPv4 total length, which is itself bounded by the bytes received).
#include "parse.h"

#include <cstring>

namespace stentor::dp {
namespace {

using namespace wire;

constexpr parse_result drop(drop_reason r) noexcept {
    parse_result res;
    res.reason = r;
    return res;
}

parse_result parse_rtp(const uint8_t* d, uint32_t udp_len, parse_result res) noexcept {
    constexpr uint32_t rtp_off = eth_hdr_len + ipv4_hdr_len + udp_hdr_len;
    const uint32_t rtp_len = udp_len - udp_hdr_len;
    const uint8_t* r = d + rtp_off;

    if (rtp_len < rtp_hdr_len)
        return drop(drop_reason::rtp_runt);
    const uint8_t b0 = r[0];
    // Also what rejects ZRTP (16..19), DTLS (20..63) and TURN channel data
    // (64..79) sent to a speaker port (RFC 7983 7): their top two bits read
    // as version 0 or 1. STUN (0..3) went to the join stage before.
    if ((b0 >> 6) != 2)
        return drop(drop_reason::rtp_version);
    // RTCP SR/RR/SDES/BYE/APP (200..204) with the marker bit masked off read
    // as payload types 72..76 (RFC 5761 4): not media, never forwarded.
    if (static_cast<uint8_t>((r[1] & 0x7f) - 72) <= 4)
        return drop(drop_reason::rtp_rtcp);

    uint32_t hdr = rtp_hdr_len + 4u * (b0 & 0x0f);
    if (hdr > rtp_len)
        return drop(drop_reason::rtp_csrc);
    if (b0 & 0x10) {
        // Extension: 16-bit profile, 16-bit length in 32-bit words (RFC 3550 5.3.1).
        if (hdr + 4 > rtp_len)
            return drop(drop_reason::rtp_extension);
        hdr += 4 + 4u * load_be16(r + hdr + 2);
        if (hdr > rtp_len)
            return drop(drop_reason::rtp_extension);
    }
    uint32_t pad = 0;
    if (b0 & 0x20) {
        // The last octet counts the padding, itself included (RFC 3550 5.1).
        pad = r[rtp_len - 1];
        if (pad == 0 || hdr + pad > rtp_len)
            return drop(drop_reason::rtp_padding);
    }
    const uint32_t payload_len = rtp_len - hdr - pad;
    if (payload_len == 0)
        return drop(drop_reason::rtp_empty);

    res.kind = pkt_kind::rtp;
    res.rtp_off = static_cast<uint16_t>(rtp_off);
    res.rtp_len = static_cast<uint16_t>(rtp_len);
    res.payload_off = static_cast<uint16_t>(rtp_off + hdr);
    res.payload_len = static_cast<uint16_t>(payload_len);
    res.ssrc_be = load_raw32(r + 8);
    return res;
}

parse_result parse_udp(const uint8_t* d, uint32_t ip_payload_len, const port_identity& self, parse_result res) noexcept {
    constexpr uint32_t l4_off = eth_hdr_len + ipv4_hdr_len;
    const uint8_t* u = d + l4_off;

    if (ip_payload_len < udp_hdr_len)
        return drop(drop_reason::udp_runt);
    const uint32_t udp_len = load_be16(u + 4);
    // Equality, not <=: bytes between the UDP end and the IPv4 end would be
    // forwarded as part of nothing, and a mismatch is how smuggling starts.
    if (udp_len < udp_hdr_len || udp_len != ip_payload_len)
        return drop(drop_reason::udp_length);
    const uint16_t dport = load_be16(u + 2);
    if (dport < self.udp_port_min || dport > self.udp_port_max)
        return drop(drop_reason::udp_port);

    res.l4_off = static_cast<uint16_t>(l4_off);
    res.src_port_be = load_raw16(u);
    res.dst_port_be = load_raw16(u + 2);
    // A listener's join request (RFC 7983: STUN starts 0..3). The STUN
    // message is the join stage's to check (stun.h): only its place here.
    if (udp_len > udp_hdr_len && u[udp_hdr_len] < 4) {
        res.kind = pkt_kind::stun;
        res.rtp_off = static_cast<uint16_t>(l4_off + udp_hdr_len);
        res.rtp_len = static_cast<uint16_t>(udp_len - udp_hdr_len);
        return res;
    }
    return parse_rtp(d, udp_len, res);
}

parse_result parse_icmp(const uint8_t* d, uint32_t ip_payload_len, parse_result res) noexcept {
    constexpr uint32_t l4_off = eth_hdr_len + ipv4_hdr_len;
    const uint8_t* m = d + l4_off;

    if (ip_payload_len < icmp_hdr_len)
        return drop(drop_reason::icmp_invalid);
    // Checked before the type so that a corrupt echo request counts as
    // invalid, not as "not echo"; the reply path then copies the data as is.
    if (!csum_ok(m, ip_payload_len))
        return drop(drop_reason::icmp_invalid);
    if (m[0] != 8 || m[1] != 0)
        return drop(drop_reason::icmp_not_echo);

    res.kind = pkt_kind::icmp_echo;
    res.l4_off = static_cast<uint16_t>(l4_off);
    res.icmp_len = static_cast<uint16_t>(ip_payload_len);
    return res;
}

parse_result parse_ipv4(const uint8_t* d, uint32_t len, const port_identity& self) noexcept {
    // Unicast to us only: the relay never acts on broadcast or multicast IPv4.
    if (!mac_equal(d, self.mac))
        return drop(drop_reason::eth_dst);
    const uint32_t avail = len - eth_hdr_len;
    const uint8_t* ip = d + eth_hdr_len;
    if (avail < ipv4_hdr_len)
        return drop(drop_reason::ipv4_runt);
    const uint8_t vihl = ip[0];
    if ((vihl >> 4) != 4)
        return drop(drop_reason::ipv4_version);
    const uint32_t ihl_bytes = 4u * (vihl & 0x0f);
    if (ihl_bytes < ipv4_hdr_len)
        return drop(drop_reason::ipv4_ihl);
    // A header that claims more bytes than arrived is a length error first;
    // one that fits is refused for carrying options (speakers never need
    // them, and fixed offsets keep the rest of the path simple).
    if (ihl_bytes > ipv4_hdr_len)
        return drop(ihl_bytes > avail ? drop_reason::ipv4_total_length : drop_reason::ipv4_options);
    // Short frames arrive padded to 60 bytes: bytes past total_length are
    // Ethernet padding and are ignored from here on.
    const uint32_t total = load_be16(ip + 2);
    if (total < ipv4_hdr_len || total > avail)
        return drop(drop_reason::ipv4_total_length);
    if (!ipv4_hdr_csum_ok(ip))
        return drop(drop_reason::ipv4_checksum);
    // MF or a non-zero offset; DF and the reserved bit are not our concern.
    if (load_be16(ip + 6) & 0x3fff)
        return drop(drop_reason::ipv4_fragment);
    const uint32_t src = load_raw32(ip + 12);
    if (ipv4_src_unusable(ip[12]) || src == self.ip_be)
        return drop(drop_reason::ipv4_src);
    if (load_raw32(ip + 16) != self.ip_be)
        return drop(drop_reason::ipv4_dst);

    parse_result res;
    res.l3_off = static_cast<uint16_t>(eth_hdr_len);
    res.src_ip_be = src;
    const uint8_t proto = ip[9];
    if (proto == ipproto_udp)
        return parse_udp(d, total - ipv4_hdr_len, self, res);
    if (proto == ipproto_icmp)
        return parse_icmp(d, total - ipv4_hdr_len, res);
    return drop(drop_reason::ipv4_proto);
}

parse_result parse_arp(const uint8_t* d, uint32_t len, const port_identity& self) noexcept {
    if (!mac_equal(d, self.mac) && !mac_is_broadcast(d))
        return drop(drop_reason::eth_dst);
    if (len - eth_hdr_len < arp_ipv4_len)
        return drop(drop_reason::arp_invalid);
    const uint8_t* a = d + eth_hdr_len;
    // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4 in one compare.
    static constexpr uint8_t fixed[6] = {0x00, 0x01, 0x08, 0x00, 6, 4};
    if (std::memcmp(a, fixed, sizeof fixed) != 0)
        return drop(drop_reason::arp_invalid);
    const uint16_t op = load_be16(a + 6);
    if (op != 1 && op != 2)
        return drop(drop_reason::arp_invalid);
    const uint8_t* sha = a + 8;
    // A sender hardware address that differs from the frame's source is how
    // ARP cache poisoning through a proxy looks; a multicast one is never a host.
    if ((sha[0] & 1) || !mac_equal(sha, d + 6))
        return drop(drop_reason::arp_invalid);
    const uint32_t spa = load_raw32(a + 14);
    // Same unusable set as IPv4 sources, plus a peer claiming our own address
    // (a conflict to count, never a neighbour to learn). This also drops
    // RFC 5227 probes (sender 0.0.0.0): we do not defend addresses by probe.
    if (ipv4_src_unusable(a[14]) || spa == self.ip_be)
        return drop(drop_reason::arp_invalid);
    // Requests for other hosts and replies addressed to others alike: we only
    // answer for, and only learn from exchanges about, our own address.
    if (load_raw32(a + 24) != self.ip_be)
        return drop(drop_reason::arp_not_for_us);

    parse_result res;
    res.kind = pkt_kind::arp;
    res.l3_off = static_cast<uint16_t>(eth_hdr_len);
    res.src_ip_be = spa;
    return res;
}

}  // namespace

parse_result parse_packet(const uint8_t* data, uint32_t len, const port_identity& self) noexcept {
    if (len < eth_hdr_len)
        return drop(drop_reason::eth_runt);
    // Also bounds every later offset to 16 bits (max_frame is a uint16_t).
    if (len > self.max_frame)
        return drop(drop_reason::oversize);
    // I/G bit of the source: no frame is legitimately sent from a group address.
    if (data[6] & 1)
        return drop(drop_reason::eth_src);
    const uint16_t type = load_be16(data + 12);
    if (type == ethertype_ipv4)
        return parse_ipv4(data, len, self);
    if (type == ethertype_arp)
        return parse_arp(data, len, self);
    if (type == ethertype_vlan || type == ethertype_qinq || type == ethertype_qinq_old)
        return drop(drop_reason::eth_vlan);
    return drop(drop_reason::eth_type);
}

}  // namespace stentor::dp
