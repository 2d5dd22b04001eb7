// Counters and drop reasons, declared once. Both planes interpret this file:
// the data plane increments (one writer per lcore), the control plane sums and
// exports under the stable names below (`/drop/<stage>/<reason>`).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace stentor::dp {

inline constexpr std::size_t cache_line = 64;

// Every reason a packet can be dropped. Append only: names are exported.
enum class drop_reason : uint16_t {
    // ingress: Ethernet
    eth_runt,              // frame shorter than an Ethernet header
    eth_dst,               // destination MAC neither ours nor broadcast
    eth_src,               // multicast/broadcast source MAC
    eth_vlan,              // 802.1Q / QinQ tagged (not configured)
    eth_type,              // ethertype we do not serve (IPv6, LLDP, ...)
    oversize,              // frame longer than the port MTU allows
    // ingress: IPv4
    ipv4_runt,             // shorter than a minimal IPv4 header
    ipv4_version,          // version != 4
    ipv4_ihl,              // IHL < 5
    ipv4_options,          // IHL > 5: options are not accepted
    ipv4_total_length,     // total length < IHL*4 or beyond the bytes received
    ipv4_checksum,         // header checksum wrong
    ipv4_fragment,         // MF set or fragment offset != 0
    ipv4_src,              // source address unusable (0, loopback, multicast, broadcast, ours)
    ipv4_dst,              // destination address is not the relay's
    ipv4_proto,            // neither UDP nor ICMP
    // ingress: UDP
    udp_runt,              // shorter than a UDP header
    udp_length,            // UDP length field disagrees with the IPv4 payload length
    udp_port,              // destination port outside the speaker range
    udp_checksum,          // NIC reported a bad L4 checksum
    // ingress: RTP
    rtp_runt,              // shorter than the 12-byte RTP header
    rtp_version,           // version != 2
    rtp_csrc,              // CSRC list runs past the end
    rtp_extension,         // header extension runs past the end
    rtp_padding,           // padding count 0 or past the payload
    rtp_empty,             // no payload left after header, CSRCs, extension, padding
    rtp_rtcp,              // RTCP (payload type 72..76) on the media port
    // ingress: flow
    unknown_flow,          // no registered speaker for (src ip, src port, dst port)
    ssrc_mismatch,         // speaker registered with another SSRC
    policed,               // speaker over its rate (token bucket)
    // ingress: ARP / ICMP
    arp_invalid,           // malformed ARP
    arp_not_for_us,        // ARP for an address we do not own
    icmp_invalid,          // malformed ICMP or bad checksum
    icmp_not_echo,         // ICMP type we do not answer
    icmp_rate,             // echo replies over their rate limit
    arp_rate,              // ARP replies over their rate limit
    // egress
    no_mbuf,               // mempool empty when building replicas
    tx_full,               // TX queue full after retries within the deadline
    neigh_unresolved,      // next hop MAC not known yet
    deadline,              // frame deadline passed before this replica was built
    ring_full,             // hand-off ring to a fan-out lcore was full
    count_
};

inline constexpr std::size_t nb_drop_reasons = static_cast<std::size_t>(drop_reason::count_);

// Stable names, in enum order. The static_assert below keeps them in step.
inline constexpr std::array<std::string_view, nb_drop_reasons> drop_reason_names = {
    "ingress/eth_runt",       "ingress/eth_dst",           "ingress/eth_src",
    "ingress/eth_vlan",       "ingress/eth_type",          "ingress/oversize",
    "ingress/ipv4_runt",      "ingress/ipv4_version",      "ingress/ipv4_ihl",
    "ingress/ipv4_options",   "ingress/ipv4_total_length", "ingress/ipv4_checksum",
    "ingress/ipv4_fragment",  "ingress/ipv4_src",          "ingress/ipv4_dst",
    "ingress/ipv4_proto",     "ingress/udp_runt",          "ingress/udp_length",
    "ingress/udp_port",       "ingress/udp_checksum",      "ingress/rtp_runt",
    "ingress/rtp_version",    "ingress/rtp_csrc",          "ingress/rtp_extension",
    "ingress/rtp_padding",    "ingress/rtp_empty",         "ingress/rtp_rtcp",
    "ingress/unknown_flow",   "ingress/ssrc_mismatch",     "ingress/policed",
    "ingress/arp_invalid",    "ingress/arp_not_for_us",    "ingress/icmp_invalid",
    "ingress/icmp_not_echo",  "ingress/icmp_rate",         "ingress/arp_rate",
    "egress/no_mbuf",         "egress/tx_full",            "egress/neigh_unresolved",
    "egress/deadline",        "egress/ring_full",
};
static_assert(drop_reason_names.size() == nb_drop_reasons);
static_assert(drop_reason_names.back() == "egress/ring_full", "name table out of step with enum");

constexpr std::string_view name_of(drop_reason r) noexcept {
    return drop_reason_names[static_cast<std::size_t>(r)];
}

inline constexpr std::size_t max_tiers = 4;
inline constexpr std::size_t max_ports = 4;

// Per-lcore counters: one writer (the owning lcore), read racily by the
// control plane. Plain uint64_t stores are atomic on x86-64; the control
// plane reads them with relaxed atomic loads via std::atomic_ref.
struct alignas(cache_line) lcore_counters {
    uint64_t rx_packets;          // packets received from ports by this lcore
    uint64_t rx_bytes;
    uint64_t rtp_in;              // accepted speaker packets
    uint64_t replicas_out;        // egress packets handed to the NIC
    uint64_t tx_bytes;
    uint64_t arp_replies;
    uint64_t arp_requests;        // requests we sent to resolve neighbours
    uint64_t icmp_replies;
    uint64_t busy_cycles;         // TSC cycles in iterations that did work
    uint64_t idle_cycles;         // TSC cycles in empty polls
    uint64_t drops[nb_drop_reasons];
    uint64_t tier_misses[max_tiers];   // replicas not sent, by listener tier
    uint64_t port_rx[max_ports];
    uint64_t port_tx[max_ports];
};
static_assert(alignof(lcore_counters) == cache_line);
static_assert(sizeof(lcore_counters) % cache_line == 0);

}  // namespace stentor::dp
