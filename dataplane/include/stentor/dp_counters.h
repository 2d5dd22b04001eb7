// Counters and drop reasons, declared once. Both planes interpret this file:
// the data plane increments (one writer per lcore), the control plane sums and
// exports under the stable names below (`drop/<stage>/<reason>`).
//
// Each list is an X-macro in the manner of VPP's foreach_ip4_error: the list
// generates the enum, the exported names, the help text, the struct fields,
// the relaxed snapshot, the summation and every export, so adding a counter
// is one line. Names are append-only: dashboards and tests key on them.
// One name, one cause: a counter that several queues share tells nothing.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "stentor/stun.h"

namespace stentor::dp {

inline constexpr std::size_t cache_line = 64;

// _(enum name, exported name, help). Append only.
#define STENTOR_FOREACH_DROP_REASON(_)                                                                   \
    /* ingress: Ethernet */                                                                              \
    _(eth_runt, "ingress/eth_runt", "frame shorter than an Ethernet header")                             \
    _(eth_dst, "ingress/eth_dst", "destination MAC neither ours nor broadcast")                          \
    _(eth_src, "ingress/eth_src", "multicast/broadcast source MAC")                                      \
    _(eth_vlan, "ingress/eth_vlan", "802.1Q / QinQ tagged (not configured)")                            \
    _(eth_type, "ingress/eth_type", "ethertype we do not serve (LLDP, ...)")                      \
    _(oversize, "ingress/oversize", "frame longer than the port MTU allows")                             \
    /* ingress: IPv4 */                                                                                  \
    _(ipv4_runt, "ingress/ipv4_runt", "shorter than a minimal IPv4 header")                              \
    _(ipv4_version, "ingress/ipv4_version", "IP version is not 4")                                       \
    _(ipv4_ihl, "ingress/ipv4_ihl", "IHL < 5")                                                           \
    _(ipv4_options, "ingress/ipv4_options", "IHL > 5: options are not accepted")                         \
    _(ipv4_total_length, "ingress/ipv4_total_length", "total length < IHL*4 or beyond the bytes received") \
    _(ipv4_checksum, "ingress/ipv4_checksum", "IPv4 header checksum wrong")                             \
    _(ipv4_fragment, "ingress/ipv4_fragment", "MF set or fragment offset not 0")                        \
    _(ipv4_src, "ingress/ipv4_src", "source address unusable (0/8, loopback, multicast, broadcast, ours)") \
    _(ipv4_dst, "ingress/ipv4_dst", "destination address is not the relay's")                          \
    _(ipv4_proto, "ingress/ipv4_proto", "neither UDP nor ICMP")                                          \
    /* ingress: UDP */                                                                                   \
    _(udp_runt, "ingress/udp_runt", "shorter than a UDP header")                                         \
    _(udp_length, "ingress/udp_length", "UDP length disagrees with the IPv4 payload length")            \
    _(udp_port, "ingress/udp_port", "destination port outside the speaker range")                       \
    _(udp_checksum, "ingress/udp_checksum", "bad UDP checksum (NIC verdict or software)")               \
    /* ingress: RTP */                                                                                   \
    _(rtp_runt, "ingress/rtp_runt", "shorter than the 12-byte RTP header")                              \
    _(rtp_version, "ingress/rtp_version", "RTP version is not 2 (also STUN, DTLS, ZRTP, TURN data)")   \
    _(rtp_csrc, "ingress/rtp_csrc", "CSRC list runs past the end")                                       \
    _(rtp_extension, "ingress/rtp_extension", "header extension runs past the end")                     \
    _(rtp_padding, "ingress/rtp_padding", "padding count 0 or past the payload")                        \
    _(rtp_empty, "ingress/rtp_empty", "no payload after header, CSRCs, extension, padding")             \
    _(rtp_rtcp, "ingress/rtp_rtcp", "RTCP (payload type 72..76) on the media port")                     \
    /* ingress: flow */                                                                                  \
    _(unknown_flow, "ingress/unknown_flow", "no registered speaker for (src ip, src port, dst port)")   \
    _(ssrc_mismatch, "ingress/ssrc_mismatch", "speaker registered with another SSRC")                   \
    _(policed, "ingress/policed", "speaker over its rate (token bucket)")                               \
    /* ingress: ARP / ICMP */                                                                            \
    _(arp_invalid, "ingress/arp_invalid", "malformed ARP")                                               \
    _(arp_not_for_us, "ingress/arp_not_for_us", "ARP for an address we do not own")                     \
    _(icmp_invalid, "ingress/icmp_invalid", "malformed ICMP or bad checksum")                           \
    _(icmp_not_echo, "ingress/icmp_not_echo", "ICMP type we do not answer")                             \
    _(icmp_rate, "ingress/icmp_rate", "echo replies over their rate limit")                             \
    _(arp_rate, "ingress/arp_rate", "ARP replies over their rate limit")                                \
    /* egress */                                                                                         \
    _(no_mbuf, "egress/no_mbuf", "mempool empty when building replicas or replies")                     \
    _(tx_full, "egress/tx_full", "TX queue full after retries")                                          \
    _(neigh_unresolved, "egress/neigh_unresolved", "next hop MAC not known yet")                        \
    _(deadline, "egress/deadline", "frame deadline passed before this replica was built")               \
    _(ring_full, "egress/ring_full", "hand-off ring to a fan-out shard full (fan-out overload)")        \
    _(jobs_full, "egress/jobs_full", "fan-out lcore's job table full: packet not fanned out on that shard") \
    _(mixer_ring_full, "egress/mixer_ring_full", "hand-off ring to the mixer full (mixer late)")        \
    _(record_ring_full, "egress/record_ring_full", "hand-off ring to the recorder full (recorder late)") \
    _(stale_session, "egress/stale_session", "queued packet whose session ended or was replaced before fan-out") \
    _(arp_unsolicited, "ingress/arp_unsolicited", "ARP reply to no request of ours (or for a pinned neighbour): not learnt") \
    _(arp_late, "ingress/arp_late", "ARP reply after its request's window closed: not learnt") \
    _(arp_ring_full, "ingress/arp_ring_full", "ARP reply or NA for the ARP-owner lcore dropped: hand-off ring full") \
    /* ingress: RTP plausibility of a registered speaker, before the policer (rtp_track.h) */           \
    _(rtp_seq_jump, "ingress/rtp_seq_jump", "sequence number far from the speaker's stream (guessed, or a restart)") \
    _(rtp_ts_jump, "ingress/rtp_ts_jump", "timestamp implausible for the sequence number and the time elapsed") \
    _(rtp_duplicate, "ingress/rtp_duplicate", "sequence number already accepted, or older than the reorder window") \
    _(rtp_ssrc_change, "ingress/rtp_ssrc_change", "SSRC other than the stream's (speaker without a registered SSRC)") \
    /* ingress: frames the relay does not forward whatever their content (issue 10 item 8) */           \
    _(multi_segment, "ingress/multi_segment", "frame received in more than one mbuf: dropped before any parsing") \
    _(rtp_too_large, "ingress/rtp_too_large", "speaker RTP larger than the fan-out template holds (replica.h max_frame_bytes)") \
    _(arp_conflict, "ingress/arp_conflict", "ARP reply in a window that already brought two MACs for that next hop: not believed") \
    /* join: STUN Binding Requests to a session port (join.cc, docs/join.md); nothing is sent for any of these */ \
    _(join_off, "join/off", "STUN to a session port but joins are not configured ([join] has no keys)") \
    _(join_no_headroom, "join/no_headroom", "request mbuf without the headroom the hand-off to the join desk needs (a PMD's data_off)") \
    _(join_bad_token, "join/bad_token", "USERNAME is not a join token of this version") \
    _(join_unknown_key, "join/unknown_key", "token signed with a key id the relay does not hold") \
    _(join_expired, "join/expired", "token past its expiry") \
    _(join_no_session, "join/no_session", "no session on the port the request was sent to") \
    _(join_wrong_session, "join/wrong_session", "token for another session than the port's") \
    _(join_budget, "join/budget", "this lcore's verification budget spent: dropped before any MAC") \
    _(join_forged, "join/forged", "token tag wrong: forged or damaged (one MAC spent)") \
    _(join_bad_integrity, "join/bad_integrity", "MESSAGE-INTEGRITY wrong: not signed with the token's password") \
    _(join_ring_full, "join/ring_full", "verified request dropped: hand-off ring to the join desk full") \
    /* SRTP (docs/srtp.md): ingress in the order checked, before the policer; then egress */ \
    _(srtp_no_key, "ingress/srtp_no_key", "SRTP required but the speaker holds no key: dropped before any MAC") \
    _(srtp_truncated, "ingress/srtp_truncated", "SRTP packet shorter than RTP header, MKI, authentication tag and one payload byte") \
    _(srtp_mki, "ingress/srtp_mki", "MKI that none of the speaker's keys has (a wrong or retired key)") \
    _(srtp_replay, "ingress/srtp_replay", "SRTP index already accepted, or older than the 64-packet replay window") \
    _(srtp_auth, "ingress/srtp_auth", "SRTP authentication failed: forged, damaged or another key (one MAC spent)") \
    _(srtp_egress_no_key, "egress/srtp_no_key", "session protects its packets (srtp.egress) but holds no key yet: not sent") \
    _(srtp_protect_failed, "egress/srtp_protect_failed", "SRTP protection failed (cipher error): not sent") \
    _(join_handoff_full, "join/handoff_full", "request dropped after the cheap checks: hand-off ring to its join lcore full (dataplane.join_lcores)") \
    /* fleet (docs/fleet.md): ST 2022-7 style origin protection on an edge, after every per-flow check */ \
    _(trunk_duplicate, "ingress/trunk_duplicate", "second copy of an (SSRC, sequence number) already forwarded from another origin's trunk") \
    /* ingress: IPv6 (issue 15), in the order checked (parse.cc; docs/counters.md) */ \
    _(ipv6_off, "ingress/ipv6_off", "IPv6 frame on a port without an ipv6 address") \
    _(ipv6_runt, "ingress/ipv6_runt", "shorter than the 40-byte IPv6 header") \
    _(ipv6_version, "ingress/ipv6_version", "IPv6 ethertype, IP version not 6") \
    _(ipv6_jumbogram, "ingress/ipv6_jumbogram", "payload length 0 behind a hop-by-hop header: a jumbogram (RFC 2675)") \
    _(ipv6_payload_length, "ingress/ipv6_payload_length", "payload length beyond the bytes received") \
    _(ipv6_hop_by_hop, "ingress/ipv6_hop_by_hop", "hop-by-hop options header (router alert, jumbo payload, ...)") \
    _(ipv6_routing, "ingress/ipv6_routing", "routing header (type 0, segment routing, ...)") \
    _(ipv6_fragment, "ingress/ipv6_fragment", "fragment header (also atomic fragments)") \
    _(ipv6_dest_options, "ingress/ipv6_dest_options", "destination options header") \
    _(ipv6_ext_other, "ingress/ipv6_ext_other", "other extension header: AH, ESP, mobility, HIP, shim6, experimental") \
    _(ipv6_src, "ingress/ipv6_src", "source unusable (::, ::1, multicast, IPv4-mapped, -translated or -compatible, the relay's own)") \
    _(ipv6_src_link_local, "ingress/ipv6_src_link_local", "link-local source on anything but neighbour discovery") \
    _(ipv6_dst, "ingress/ipv6_dst", "destination neither the relay's address nor, for NS, its solicited-node group") \
    _(ipv6_next_header, "ingress/ipv6_next_header", "next header neither UDP nor ICMPv6 (TCP, no next header, ...)") \
    _(ipv6_udp_zero_checksum, "ingress/ipv6_udp_zero_checksum", "UDP over IPv6 with checksum 0 (mandatory in IPv6, RFC 8200 8.1)") \
    _(ipv6_unserved, "ingress/ipv6_unserved", "not counted any more: IPv6 speakers and joins are served (kept: names are append-only)") \
    _(icmp6_invalid, "ingress/icmp6_invalid", "malformed ICMPv6 or bad checksum") \
    _(icmp6_not_echo, "ingress/icmp6_not_echo", "ICMPv6 type we do not answer (errors, echo replies, router solicitations, MLD)") \
    _(icmp6_rate, "ingress/icmp6_rate", "ICMPv6 echo replies over their rate limit") \
    _(nd_hop_limit, "ingress/nd_hop_limit", "neighbour discovery with hop limit not 255: sent from off-link (RFC 4861 7.1)") \
    _(nd_invalid, "ingress/nd_invalid", "malformed NS/NA: code, length, multicast target, bad option, link-layer address not the frame's source") \
    _(nd_not_for_us, "ingress/nd_not_for_us", "NS for an address the relay does not own") \
    _(nd_dad, "ingress/nd_dad", "NS from :: (duplicate address detection): not answered, not defended") \
    _(nd_rate, "ingress/nd_rate", "NAs we send in answer over their rate limit") \
    _(nd_unsolicited, "ingress/nd_unsolicited", "NA answering no NS of ours (or for a pinned neighbour): not learnt") \
    _(nd_override, "ingress/nd_override", "NA with the override flag answering no NS of ours (unsolicited, or no next hop of ours): an attempt to replace a MAC") \
    _(nd_late, "ingress/nd_late", "NA after its solicitation's window closed: not learnt") \
    _(nd_conflict, "ingress/nd_conflict", "NA in a window that already brought two MACs for that next hop: not believed") \
    _(nd_router_advert, "ingress/nd_router_advert", "router advertisement: the relay takes no routes or prefixes from the wire") \
    _(nd_redirect, "ingress/nd_redirect", "ICMPv6 redirect: next hops come from the profile only") \
    /* IPv6 fan-out (replica.h): an IPv4 speaker's packet is 20 bytes longer as an IPv6 replica */ \
    _(ipv6_too_big, "egress/ipv6_too_big", "speaker packet too large for an IPv6 replica within the port MTU (or the template): that IPv6 listener missed it") \
    /* join over IPv6 (issue 15; join.cc): after the validator's own source checks */ \
    _(join_src, "join/src", "join from a source no listener may have: source port 0, IPv4 link-local 169.254/16, IPv6 discard-only 100::/64, or the relay's address on another port") \
    /* SRTP egress index (docs/srtp.md "Egress index"): dp_srtp.h egress_index */ \
    _(srtp_egress_late, "egress/srtp_late", "SRTP egress: packet older than the last one protected for its SSRC (reordered): not sent, so no egress index is used twice") \
    _(srtp_egress_streams, "egress/srtp_streams_full", "SRTP egress: the session already protects as many SSRCs as it has egress slots (16): not sent") \
    _(srtp_egress_unreserved, "egress/srtp_unreserved", "SRTP egress: the journal holds no reservation for this egress index yet (a new SSRC's first packets, or a journal that cannot write): not sent, so a restart never reuses an index") \
    /* fleet trunks (docs/fleet.md "Trunk authentication"): the session's trunk twin */ \
    _(trunk_no_key, "egress/trunk_no_key", "trunk listeners of a session without a trunk key on a relay whose trunks are authenticated: not sent") \
    /* neighbour hand-off (neigh.cc, docs/security.md "ARP"): an RX lcore's budget for what it hands the ARP owner */ \
    _(arp_handoff_rate, "ingress/arp_handoff_rate", "ARP reply or NA about a next hop of ours dropped by an RX lcore other than the ARP owner: its hand-off budget (the relay's request rate) spent") \
    /* IPv4 fan-out (fanout.cc): the IPv4 twin of ipv6_too_big */ \
    _(ipv4_too_big, "egress/ipv4_too_big", "speaker packet too large for an IPv4 replica within the ports' MTU (SRTP egress tag and MKI included): that shard's IPv4 listeners missed it, counted once per packet")

// Then one reason per refusal of the STUN parser (stun.h's list, in its
// order, as join/<name>): a request the parser refuses is counted by why.
#define STENTOR_FOREACH_ALL_DROP_REASONS(X, STUN_X) \
    STENTOR_FOREACH_DROP_REASON(X)                   \
    STENTOR_FOREACH_STUN_ERROR(STUN_X)

enum class drop_reason : uint16_t {
#define STENTOR_X(e, name, help) e,
#define STENTOR_STUN_X(n, text) join_stun_##n,
    STENTOR_FOREACH_ALL_DROP_REASONS(STENTOR_X, STENTOR_STUN_X)
#undef STENTOR_STUN_X
#undef STENTOR_X
    count_
};

inline constexpr std::size_t nb_drop_reasons = static_cast<std::size_t>(drop_reason::count_);

inline constexpr std::array<std::string_view, nb_drop_reasons> drop_reason_names = {
#define STENTOR_X(e, name, help) name,
#define STENTOR_STUN_X(n, text) "join/" #n,
    STENTOR_FOREACH_ALL_DROP_REASONS(STENTOR_X, STENTOR_STUN_X)
#undef STENTOR_STUN_X
#undef STENTOR_X
};

inline constexpr std::array<std::string_view, nb_drop_reasons> drop_reason_help = {
#define STENTOR_X(e, name, help) help,
#define STENTOR_STUN_X(n, text) "join request refused by the STUN parser: " text,
    STENTOR_FOREACH_ALL_DROP_REASONS(STENTOR_X, STENTOR_STUN_X)
#undef STENTOR_STUN_X
#undef STENTOR_X
};

// The drop reason of a STUN parser refusal (never stun_error::ok).
constexpr drop_reason join_drop_of(stun::stun_error e) noexcept {
    return static_cast<drop_reason>(static_cast<std::size_t>(drop_reason::join_stun_too_short) +
                                    static_cast<std::size_t>(e) - 1);
}
static_assert(static_cast<std::size_t>(stun::stun_error::too_short) == 1 &&
                  static_cast<std::size_t>(drop_reason::count_) - static_cast<std::size_t>(drop_reason::join_stun_too_short) ==
                      static_cast<std::size_t>(stun::stun_error::count_) - 1,
              "the STUN refusals follow the drop reasons one for one, in stun.h's order");

constexpr std::string_view name_of(drop_reason r) noexcept {
    return drop_reason_names[static_cast<std::size_t>(r)];
}

// The drop reasons that mean "the fan-out could not keep up": the only ones
// the overload controller sheds listeners for. A late mixer or a slow disk
// (mixer_ring_full, record_ring_full) is a service problem, not a reason to
// cut listeners in every session.
constexpr bool is_fanout_overload(drop_reason r) noexcept {
    return r == drop_reason::ring_full || r == drop_reason::jobs_full;
}

inline constexpr std::size_t max_tiers = 4;
inline constexpr std::size_t max_ports = 4;

// Scalar per-lcore counters: _(field, help). Append only.
#define STENTOR_FOREACH_LCORE_COUNTER(_)                                      \
    _(rx_packets, "packets received from ports by this lcore")                \
    _(rx_bytes, "bytes received from ports")                                  \
    _(rtp_in, "accepted speaker packets")                                      \
    _(replicas_out, "egress replicas handed to the NIC")                      \
    _(tx_bytes, "egress replica bytes handed to the NIC")                     \
    _(arp_replies, "ARP replies sent for the relay's addresses")              \
    _(arp_requests, "ARP requests sent to resolve next hops")                 \
    _(icmp_replies, "ICMP echo replies sent")                                 \
    _(busy_cycles, "TSC cycles in loop iterations that did work")             \
    _(idle_cycles, "TSC cycles in empty polls")                               \
    _(arp_requests_in, "ARP requests for the relay's addresses received (answered, never learnt from)") \
    _(neigh_mac_changed, "replies in a request's window offered a known neighbour a different MAC (held until confirmed)") \
    _(neigh_mac_confirmed, "MAC changes confirmed by a fresh probe and applied")  \
    _(neigh_mac_kept, "MAC changes refused: the neighbour's current MAC answered the confirming probe") \
    _(neigh_expired, "neighbours invalidated after unanswered re-probes") \
    _(stalls, "times the lcore did not run for longer than stall_us (preempted, steal time, page faults)") \
    _(stall_cycles, "TSC cycles of those stalls: neither busy nor idle") \
    _(neigh_conflict, "two MACs answered for a next hop being resolved: left unresolved, asked again") \
    _(rtp_resyncs, "speaker streams re-locked onto a new sequence (restart, or back after going quiet)") \
    _(join_verified, "join requests that passed both MACs, handed to the join desk") \
    _(join_replies, "STUN responses the join desk built, sent") \
    _(idle_sleeps, "times an idle worker slept (dataplane.idle = adaptive)") \
    _(idle_rx_wakeups, "sleeps ended by an Rx interrupt (adaptive, PMDs with Rx interrupts)") \
    /* show runtime (vppctl's): per stage, the iterations it did work in, what it did, the cycles it took */ \
    _(loops, "iterations of the lcore's loop, idle or not") \
    _(ingress_calls, "iterations whose ingress stage received packets (its packets: rx_packets)") \
    _(ingress_cycles, "TSC cycles of the ingress stage in those iterations: RX burst, parse, police, hand-off") \
    _(fanout_calls, "iterations whose fan-out stage took speaker packets or served jobs") \
    _(fanout_replicas, "replicas the fan-out stage built (replicas_out: those the NIC took)") \
    _(fanout_cycles, "TSC cycles of the fan-out stage in those iterations") \
    _(neigh_calls, "iterations whose neighbour stage learnt ARP replies or sent join replies") \
    _(neigh_packets, "ARP replies learnt from and join replies sent by the neighbour stage") \
    _(neigh_cycles, "TSC cycles of the neighbour stage in those iterations") \
    _(srtp_authenticated, "speaker SRTP packets authenticated and decrypted (docs/srtp.md)") \
    _(srtp_protected, "packets protected with a session key, once each before fan-out (docs/srtp.md)") \
    _(icmp_requests_in, "ICMP echo requests for the relay's addresses received (answered unless over the rate limit)") \
    _(busy_polls, "loop iterations that did work (vppctl's calls): busy_cycles over these is cycles per call") \
    _(idle_polls, "loop iterations that found nothing to do") \
    _(join_handoffs, "join requests handed to a join lcore after the cheap checks and the budget (dataplane.join_lcores)") \
    _(verify_calls, "iterations whose verify stage (a join lcore) checked join requests") \
    _(verify_requests, "join requests the verify stage checked") \
    _(verify_cycles, "TSC cycles of the verify stage in those iterations") \
    _(nd_replies, "neighbour advertisements sent for the relay's IPv6 addresses") \
    _(nd_requests, "neighbour solicitations sent to resolve IPv6 next hops") \
    _(nd_requests_in, "NS for the relay's IPv6 addresses received (answered, never learnt from)") \
    _(icmp6_replies, "ICMPv6 echo replies sent")                             \
    _(fanout_cuts, "fan-out iterations ended early by a stop of the lcore (stop_check_us): RX polled at once") \
    _(icmp6_requests_in, "ICMPv6 echo requests for the relay's IPv6 addresses received (answered unless over the rate limit)")

// Per-lcore counters: one writer (the owning lcore), read racily by the
// control plane. Plain uint64_t stores are atomic on x86-64; the control
// plane reads them with relaxed atomic loads via std::atomic_ref.
struct alignas(cache_line) lcore_counters {
#define STENTOR_X(f, help) uint64_t f;
    STENTOR_FOREACH_LCORE_COUNTER(STENTOR_X)
#undef STENTOR_X
    uint64_t drops[nb_drop_reasons];
    uint64_t tier_misses[max_tiers];   // replicas not sent, by listener tier
    uint64_t port_rx[max_ports];
    uint64_t port_tx[max_ports];

    uint64_t& drop(drop_reason r) noexcept { return drops[static_cast<std::size_t>(r)]; }
    uint64_t drop(drop_reason r) const noexcept { return drops[static_cast<std::size_t>(r)]; }

    // Visit every scalar counter: f(name, help, value).
    template <class F>
    void for_each_scalar(F&& f) const {
#define STENTOR_X(field, help) f(#field, help, field);
        STENTOR_FOREACH_LCORE_COUNTER(STENTOR_X)
#undef STENTOR_X
    }
};
static_assert(alignof(lcore_counters) == cache_line);
static_assert(sizeof(lcore_counters) % cache_line == 0);

namespace detail {
inline uint64_t relaxed(const uint64_t& v) noexcept {
    return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(v)).load(std::memory_order_relaxed);
}
}  // namespace detail

// Relaxed reads of counters that their writer is still writing.
inline lcore_counters snapshot(const lcore_counters& c) noexcept {
    lcore_counters s{};
#define STENTOR_X(f, help) s.f = detail::relaxed(c.f);
    STENTOR_FOREACH_LCORE_COUNTER(STENTOR_X)
#undef STENTOR_X
    for (std::size_t i = 0; i < nb_drop_reasons; ++i) s.drops[i] = detail::relaxed(c.drops[i]);
    for (std::size_t i = 0; i < max_tiers; ++i) s.tier_misses[i] = detail::relaxed(c.tier_misses[i]);
    for (std::size_t i = 0; i < max_ports; ++i) {
        s.port_rx[i] = detail::relaxed(c.port_rx[i]);
        s.port_tx[i] = detail::relaxed(c.port_tx[i]);
    }
    return s;
}

// t += snapshot(c)
inline void accumulate(lcore_counters& t, const lcore_counters& c) noexcept {
    const lcore_counters s = snapshot(c);
#define STENTOR_X(f, help) t.f += s.f;
    STENTOR_FOREACH_LCORE_COUNTER(STENTOR_X)
#undef STENTOR_X
    for (std::size_t i = 0; i < nb_drop_reasons; ++i) t.drops[i] += s.drops[i];
    for (std::size_t i = 0; i < max_tiers; ++i) t.tier_misses[i] += s.tier_misses[i];
    for (std::size_t i = 0; i < max_ports; ++i) {
        t.port_rx[i] += s.port_rx[i];
        t.port_tx[i] += s.port_tx[i];
    }
}

// Statistics structs of the services (mixer, recorder) use the same scheme:
//   #define FOREACH_X_STAT(_) _(field, "help") ...
//   struct x_stats { STENTOR_STAT_FIELDS(FOREACH_X_STAT) };
// which gives each struct its fields (zero-initialised), a visitor
// for_each(f(name, help, value)) and operator+= for summing.
#define STENTOR_STAT_FIELD_(f, help) uint64_t f = 0;
#define STENTOR_STAT_VISIT_(f, help) fn(#f, help, f);
#define STENTOR_STAT_ADD_(f, help) f += o.f;
#define STENTOR_STAT_RELAXED_(f, help) s.f = ::stentor::dp::detail::relaxed(f);
#define STENTOR_STAT_FIELDS(LIST, TYPE)                                            \
    LIST(STENTOR_STAT_FIELD_)                                                     \
    template <class F>                                                            \
    void for_each(F&& fn) const {                                                 \
        LIST(STENTOR_STAT_VISIT_)                                                 \
    }                                                                             \
    TYPE& operator+=(const TYPE& o) noexcept {                                    \
        LIST(STENTOR_STAT_ADD_)                                                   \
        return *this;                                                             \
    }                                                                             \
    /* relaxed reads while the owning thread still writes */                      \
    TYPE snapshot() const noexcept {                                              \
        TYPE s;                                                                   \
        LIST(STENTOR_STAT_RELAXED_)                                               \
        return s;                                                                 \
    }

}  // namespace stentor::dp
