// Ingress validator. The checks run in the order documented in parse.h's
// contract (Ethernet, then ARP, IPv4 or IPv6, then ICMP, ICMPv6 or UDP, then
// RTP); the first
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

template <uint32_t rtp_off = eth_hdr_len + ipv4_hdr_len + udp_hdr_len>
parse_result parse_rtp(const uint8_t* d, uint32_t udp_len, parse_result res) noexcept {
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

// ---------------------------------------------------------------- IPv6

// RFC 8200 8.1: the upper-layer checksum over the pseudo header and the
// message. Over IPv6 it is mandatory for UDP too.
bool ipv6_l4_csum_ok(const uint8_t* ip, uint32_t len, uint8_t next) noexcept {
    return csum_fold(csum_add(ipv6_pseudo_sum(ip, len, next), ip + ipv6_hdr_len, len)) == 0xffff;
}

parse_result parse_udp6(const uint8_t* d, uint32_t plen, const port_identity& self, parse_result res) noexcept {
    constexpr uint32_t l4_off = eth_hdr_len + ipv6_hdr_len;
    const uint8_t* u = d + l4_off;
    if (plen < udp_hdr_len)
        return drop(drop_reason::udp_runt);
    const uint32_t udp_len = load_be16(u + 4);
    if (udp_len < udp_hdr_len || udp_len != plen)
        return drop(drop_reason::udp_length);
    const uint16_t dport = load_be16(u + 2);
    if (dport < self.udp_port_min || dport > self.udp_port_max)
        return drop(drop_reason::udp_port);
    // Zero means "no checksum" over IPv4 only; over IPv6 a sender that
    // computes 0 sends 0xffff (RFC 8200 8.1), so 0 is never valid, whatever
    // a NIC says of it. Two bytes, no sum: refused here for every kind.
    if (u[6] == 0 && u[7] == 0)
        return drop(drop_reason::ipv6_udp_zero_checksum);
    res.l4_off = static_cast<uint16_t>(l4_off);
    res.src_port_be = load_raw16(u);
    res.dst_port_be = load_raw16(u + 2);
    // IPv6 has no header checksum: the UDP checksum is the only check of
    // the addresses' integrity. Neither kind is summed here. An RTP
    // packet's waits for its flow (ingress.cc rtp_input6): an unknown flow
    // is dropped by its key alone, as over IPv4, and only a registered
    // flow's packet is summed (or taken on the NIC's verdict). A join
    // request's is checked by the join stage (join.cc join_flush) after
    // its cheap checks and the join budget, before its source is stored or
    // any MAC spent: a flood of them past the budget costs no sum.
    if (udp_len > udp_hdr_len && u[udp_hdr_len] < 4) {
        // Longer than any join request (the STUN parser would refuse it,
        // join/too_long): refused here, so the join stage's batch holds
        // only what may be a request.
        if (udp_len - udp_hdr_len > stun::max_request_len)
            return drop(drop_reason::join_stun_too_long);
        res.kind = pkt_kind::stun6;
        res.rtp_off = static_cast<uint16_t>(l4_off + udp_hdr_len);
        res.rtp_len = static_cast<uint16_t>(udp_len - udp_hdr_len);
        return res;
    }
    res = parse_rtp<l2l3l4_v6>(d, udp_len, res);
    if (res.kind == pkt_kind::rtp) res.kind = pkt_kind::rtp6;
    return res;
}

// The options of an NS or NA (RFC 4861 4.6), from `off` to `end` of the
// ICMPv6 message `m`. Every option has a non-zero length and ends inside
// the message; a link-layer address option (`want`) is 8 bytes and names
// the frame's source MAC (as ARP's sender address must: a different one is
// how poisoning through a proxy looks). Returns false if malformed; sets
// *lla to the MAC's offset in `m` (0: absent).
bool nd_options(const uint8_t* d, const uint8_t* m, uint32_t off, uint32_t end, uint8_t want, uint32_t* lla) noexcept {
    *lla = 0;
    while (off < end) {
        if (end - off < 8) return false;
        const uint32_t olen = 8u * m[off + 1];
        if (olen == 0 || olen > end - off) return false;
        if (m[off] == want) {
            if (olen != 8 || *lla != 0 || !mac_equal(m + off + 2, d + off_eth_src)) return false;
            *lla = off + 2;
        }
        off += olen;
    }
    return true;
}

// `dst_group`: sent to our solicited-node group or to all-nodes;
// `dst_all_nodes`: to all-nodes.
parse_result parse_icmp6(const uint8_t* d, uint32_t plen, const port_identity& self, bool dst_group,
                         bool dst_all_nodes, bool src_link_local, parse_result res) noexcept {
    constexpr uint32_t l4_off = eth_hdr_len + ipv6_hdr_len;
    const uint8_t* ip = d + eth_hdr_len;
    const uint8_t* m = d + l4_off;
    if (plen < 4 || !ipv6_l4_csum_ok(ip, plen, ipproto_icmpv6))
        return drop(drop_reason::icmp6_invalid);
    const uint8_t type = m[0];
    res.l4_off = static_cast<uint16_t>(l4_off);
    res.icmp_len = static_cast<uint16_t>(plen);
    if (type == icmp6_echo_request) {
        // Never to a group (a reflector), never to a link-local source.
        if (dst_group)
            return drop(drop_reason::ipv6_dst);
        if (src_link_local)
            return drop(drop_reason::ipv6_src_link_local);
        if (plen < 8 || m[1] != 0)
            return drop(drop_reason::icmp6_invalid);
        res.kind = pkt_kind::icmp6_echo;
        return res;
    }
    if (type == nd_neighbor_solicit || type == nd_neighbor_advert) {
        // Hop limit 255: only a sender on the link can have sent it.
        if (ip[7] != nd_hop_limit)
            return drop(drop_reason::nd_hop_limit);
        if (m[1] != 0 || plen < nd_hdr_len || m[8] == 0xff)
            return drop(drop_reason::nd_invalid);
        const bool ns = type == nd_neighbor_solicit;
        uint32_t lla = 0;
        if (!nd_options(d, m, nd_hdr_len, plen, ns ? nd_opt_source_lla : nd_opt_target_lla, &lla))
            return drop(drop_reason::nd_invalid);
        if (ns) {
            // A solicitation goes to the target's solicited-node group or
            // to the target itself (RFC 4861 4.3, 7.2.2), never to
            // all-nodes: one there is no question to us.
            if (dst_all_nodes)
                return drop(drop_reason::ipv6_dst);
            // Multicast solicitations carry the sender's link-layer address
            // (RFC 4861 4.3): the only way the answer can be addressed.
            if (dst_group && lla == 0)
                return drop(drop_reason::nd_invalid);
            if (!ipv6_equal(m + 8, self.ip6))
                return drop(drop_reason::nd_not_for_us);
            res.kind = pkt_kind::nd_ns;
        } else {
            // An NA to a group must not claim to be solicited (RFC 4861 7.1.2).
            if (dst_group && (m[4] & na_flag_solicited))
                return drop(drop_reason::nd_invalid);
            res.kind = pkt_kind::nd_na;
        }
        res.nd_lla_off = lla == 0 ? 0 : static_cast<uint16_t>(l4_off + lla);
        return res;
    }
    if (type == nd_router_advert)
        return drop(drop_reason::nd_router_advert);
    if (type == nd_redirect)
        return drop(drop_reason::nd_redirect);
    return drop(drop_reason::icmp6_not_echo);
}

parse_result parse_ipv6(const uint8_t* d, uint32_t len, const port_identity& self) noexcept {
    // Our MAC, or an IPv6 group MAC (33:33:..., RFC 2464 7) whose
    // destination is checked below; never broadcast.
    const bool group_mac = d[0] == 0x33 && d[1] == 0x33;
    if (!group_mac && !mac_equal(d, self.mac))
        return drop(drop_reason::eth_dst);
    if (!self.has_ip6)
        return drop(drop_reason::ipv6_off);
    const uint32_t avail = len - eth_hdr_len;
    const uint8_t* ip = d + eth_hdr_len;
    if (avail < ipv6_hdr_len)
        return drop(drop_reason::ipv6_runt);
    if ((ip[0] >> 4) != 6)
        return drop(drop_reason::ipv6_version);
    const uint32_t plen = load_be16(ip + 4);
    const uint8_t next = ip[6];
    // A jumbogram says payload length 0 and carries its length in a
    // hop-by-hop option (RFC 2675); no frame of ours is one.
    if (plen == 0 && next == ipproto_hopopts)
        return drop(drop_reason::ipv6_jumbogram);
    // Bytes past the payload length are Ethernet padding.
    if (plen > avail - ipv6_hdr_len)
        return drop(drop_reason::ipv6_payload_length);
    // No extension header is accepted: neither speakers nor neighbour
    // discovery need one, and chains are where parsers and filters
    // disagree (RFC 7112, RFC 9098). Each kind is counted on its own.
    switch (next) {
    case ipproto_hopopts: return drop(drop_reason::ipv6_hop_by_hop);
    case ipproto_routing: return drop(drop_reason::ipv6_routing);
    case ipproto_fragment: return drop(drop_reason::ipv6_fragment);
    case ipproto_dstopts: return drop(drop_reason::ipv6_dest_options);
    case ipproto_esp:
    case ipproto_ah:
    case ipproto_mobility:
    case ipproto_hip:
    case ipproto_shim6:
    case 253:
    case 254: return drop(drop_reason::ipv6_ext_other);
    default: break;
    }
    const uint8_t* src = ip + 8;
    if (ipv6_src_unusable(src) || ipv6_equal(src, self.ip6)) {
        // An NS from :: is duplicate address detection (RFC 4862 5.4.3):
        // counted apart; the relay neither answers nor defends.
        static constexpr uint8_t unspecified[16] = {};
        if (ipv6_equal(src, unspecified) && next == ipproto_icmpv6 && plen >= 1 && ip[ipv6_hdr_len] == nd_neighbor_solicit)
            return drop(drop_reason::nd_dad);
        return drop(drop_reason::ipv6_src);
    }
    const uint8_t* dst = ip + 24;
    bool dst_group = false;
    bool dst_all_nodes = false;
    if (ipv6_equal(dst, self.ip6)) {
        if (group_mac)
            return drop(drop_reason::eth_dst);
    } else {
        // Our solicited-node group ff02::1:ffXX:XXXX (NS) or all-nodes
        // ff02::1 (unsolicited NAs, RAs: counted by type; an NS there is
        // refused in parse_icmp6), at the group MAC that belongs to that
        // address.
        static constexpr uint8_t sol[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
        static constexpr uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
        const bool solicited = std::memcmp(dst, sol, 13) == 0 && dst[13] == self.ip6[13] && dst[14] == self.ip6[14] &&
                               dst[15] == self.ip6[15];
        if (!solicited && !ipv6_equal(dst, all_nodes))
            return drop(drop_reason::ipv6_dst);
        if (!group_mac || std::memcmp(d + 2, dst + 12, 4) != 0)
            return drop(drop_reason::eth_dst);
        dst_group = true;
        dst_all_nodes = !solicited;
    }
    const bool src_link_local = ipv6_is_link_local(src);

    parse_result res;
    res.l3_off = static_cast<uint16_t>(eth_hdr_len);
    if (next == ipproto_icmpv6)
        return parse_icmp6(d, plen, self, dst_group, dst_all_nodes, src_link_local, res);
    if (next != ipproto_udp)
        return drop(drop_reason::ipv6_next_header);
    if (dst_group)
        return drop(drop_reason::ipv6_dst);
    if (src_link_local)
        return drop(drop_reason::ipv6_src_link_local);
    return parse_udp6(d, plen, self, res);
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
    if (type == ethertype_ipv6)
        return parse_ipv6(data, len, self);
    if (type == ethertype_vlan || type == ethertype_qinq || type == ethertype_qinq_old)
        return drop(drop_reason::eth_vlan);
    return drop(drop_reason::eth_type);
}

}  // namespace stentor::dp
