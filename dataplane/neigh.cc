#include "neigh.h"

#include <algorithm>
#include <cstring>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stentor/wire.h"
#include "tx.h"

namespace stentor::dp {
namespace {

using wire::load_be16;
using wire::store_be16;

inline bool take_token(token_bucket& tb, uint64_t now, uint64_t hz, uint64_t rate = reply_rate_per_s,
                       uint64_t burst = reply_burst) noexcept {
    return bucket_take(tb.tokens, tb.last_tsc, now, hz, rate, burst);
}

inline neigh_timing timing_of(const worker* w) noexcept {
    return {w->arp_window, w->arp_retry, w->arp_reachable};
}

static_assert(arp_handoff_rate == arp_request_rate && arp_handoff_burst == arp_request_burst,
              "an lcore hands over at most as many replies as the owner may have asked for");

// On an RX lcore other than the ARP owner: may a reply (ARP reply or NA)
// about entry `idx` (-1: no next hop of ours), received on port index
// `port`, go to the owner over dp_shared::arp_ring? Entries that can learn
// nothing from it are judged here, counted as the owner would count them
// (neigh_on_reply: `unsolicited`): a pinned entry, or one on another port.
// Both are immutable while a snapshot that names the entry is held. Then the
// lcore's hand-off budget: a flood of replies about real next hops spends
// it, not the ring the real replies of every RX lcore cross. Returns the
// drop reason, or count_ to hand the reply over.
drop_reason handoff_verdict(worker* w, int64_t idx, uint16_t port, drop_reason unsolicited, uint64_t now) noexcept {
    if (idx >= 0) {
        const dp_neigh& e = w->sh->neigh[idx];
        if ((e.flags & neigh_static) || e.port_id != port) return unsolicited;
    }
    if (!take_token(w->handoff_tb, now, w->hz, arp_handoff_rate, arp_handoff_burst))
        return drop_reason::arp_handoff_rate;
    return drop_reason::count_;
}

bool handoff(worker* w, rte_mbuf* m) noexcept {
    if (w->sh->arp_ring != nullptr && rte_ring_mp_enqueue(w->sh->arp_ring, m) == 0) return true;
    ++w->c->drop(drop_reason::arp_ring_full);
    return false;
}

// The neighbour entry an ARP reply from `spa` may be about (a next hop of
// ours), or -1. Read-only: any lcore may ask (the snapshot's table).
int64_t arp_entry_of(const worker* w, const dp_snapshot& s, uint32_t spa_be) noexcept {
    const int64_t idx = find_neigh(s, spa_be);
    return idx < 0 || static_cast<uint32_t>(idx) >= w->sh->nb_neigh ? -1 : idx;
}

// The neighbour entry an NA (its ICMPv6 message at `na`) may teach: a
// solicited NA about an IPv6 next hop of ours; else -1 and the reason it
// teaches nothing. Read-only, any lcore.
int64_t nd_entry_of(const worker* w, const dp_snapshot& s, const uint8_t* na, drop_reason* why) noexcept {
    const uint8_t flags = na[4];
    const int64_t idx = (flags & wire::na_flag_solicited) ? find_neigh6(s, na + 8) : -1;
    if (idx < 0 || static_cast<uint32_t>(idx) >= w->sh->nb_neigh || !(w->sh->neigh[idx].flags & neigh_ipv6)) {
        // Unsolicited, or about no next hop of ours. With the override
        // flag it asks to replace whatever MAC we hold: counted apart.
        *why = (flags & wire::na_flag_override) ? drop_reason::nd_override : drop_reason::nd_unsolicited;
        return -1;
    }
    return idx;
}

// A reply (op 2) from `spa` offering `sha`, received on port index `port`.
// Runs on the ARP-owner lcore only.
void arp_learn(worker* w, const dp_snapshot& s, uint32_t spa_be, const uint8_t* sha, uint16_t port,
               uint64_t now) noexcept {
    const int64_t idx = arp_entry_of(w, s, spa_be);
    if (idx < 0) {
        ++w->c->drop(drop_reason::arp_unsolicited);
        return;
    }
    neigh_on_reply(w->sh->neigh[idx], port, neigh_mac_word(sha), now, timing_of(w), *w->c);
}

void send_request(worker* w, dp_neigh& e, uint64_t now) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(w->cfg.pool);
    if (m == nullptr) {
        ++w->c->drop(drop_reason::no_mbuf);
        return;
    }
    const uint16_t port = e.port_id;
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 60));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    std::memset(d, 0, 60);
    std::memset(d, 0xff, 6);
    std::memcpy(d + 6, w->sh->ports[port].mac, 6);
    store_be16(d + 12, wire::ethertype_arp);
    uint8_t* a = d + wire::eth_hdr_len;
    store_be16(a, 1);
    store_be16(a + 2, wire::ethertype_ipv4);
    a[4] = 6;
    a[5] = 4;
    store_be16(a + 6, 1);
    std::memcpy(a + 8, w->sh->ports[port].mac, 6);
    std::memcpy(a + 14, &w->sh->ports[port].ip_be, 4);
    std::memcpy(a + 24, &e.ip_be, 4);
    neigh_request_sent(e, now);
    ++w->c->arp_requests;
    tx_control(w, port, m);
}

// A neighbour solicitation for an IPv6 next hop (RFC 4861 4.3, 7.2.2):
// from our address on the entry's port to the target's solicited-node
// group, with our link-layer address. Every probe is multicast, the
// re-probes and the confirming ones too (RFC 4861 suggests unicast for
// reachability): then a host that took the address over answers as well,
// and the state machine sees both MACs.
void send_solicitation(worker* w, dp_neigh& e, uint64_t now) noexcept {
    using namespace wire;
    const uint16_t port = e.port_id;
    const port_identity& id = w->sh->ports[port];
    if (!id.has_ip6) return;
    rte_mbuf* m = rte_pktmbuf_alloc(w->cfg.pool);
    if (m == nullptr) {
        ++w->c->drop(drop_reason::no_mbuf);
        return;
    }
    constexpr uint16_t icmp_len = nd_hdr_len + 8;
    constexpr uint16_t frame_len = eth_hdr_len + ipv6_hdr_len + icmp_len;   // 86
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, frame_len));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    std::memset(d, 0, frame_len);
    const uint8_t group_mac[6] = {0x33, 0x33, 0xff, e.ip6[13], e.ip6[14], e.ip6[15]};
    std::memcpy(d, group_mac, 6);
    std::memcpy(d + 6, id.mac, 6);
    store_be16(d + 12, ethertype_ipv6);
    uint8_t* ip = d + eth_hdr_len;
    ip[0] = 0x60;
    store_be16(ip + 4, icmp_len);
    ip[6] = ipproto_icmpv6;
    ip[7] = nd_hop_limit;
    std::memcpy(ip + 8, id.ip6, 16);
    const uint8_t sol[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, e.ip6[13], e.ip6[14], e.ip6[15]};
    std::memcpy(ip + 24, sol, 16);
    uint8_t* icmp = ip + ipv6_hdr_len;
    icmp[0] = nd_neighbor_solicit;
    std::memcpy(icmp + 8, e.ip6, 16);
    icmp[24] = nd_opt_source_lla;
    icmp[25] = 1;
    std::memcpy(icmp + 26, id.mac, 6);
    store_be16(icmp + 2, static_cast<uint16_t>(~csum_fold(csum_add(ipv6_pseudo_sum(ip, icmp_len, ipproto_icmpv6),
                                                                     icmp, icmp_len))));
    neigh_request_sent(e, now);
    ++w->c->nd_requests;
    tx_control(w, port, m);
}

// One entry: at most one request.
void visit(worker* w, dp_neigh& e, uint64_t now) noexcept {
    if (!neigh_visit(e, now, timing_of(w), *w->c)) return;
    if (!take_token(w->arp_req_tb, now, w->hz, arp_request_rate, arp_request_burst)) return;
    if (e.flags & neigh_ipv6)
        send_solicitation(w, e, now);
    else
        send_request(w, e, now);
}

// An NA (frame `d`, its ICMPv6 message at wire::off_l4_v6, its target
// link-layer address at `lla_off` or 0) received on port index `port`.
// Runs on the ARP-owner lcore only. Only a solicited NA for an IPv6 next
// hop of ours reaches the state machine, which believes it only inside the
// window of a solicitation we sent (neigh_fsm.h).
void nd_learn(worker* w, const dp_snapshot& s, const uint8_t* d, uint16_t lla_off, uint16_t port,
              uint64_t now) noexcept {
    drop_reason why = drop_reason::nd_unsolicited;
    const int64_t idx = nd_entry_of(w, s, d + wire::off_l4_v6, &why);
    if (idx < 0) {
        ++w->c->drop(why);
        return;
    }
    // No target link-layer address option (allowed in answer to a unicast
    // NS): the frame's source MAC, which the option must equal when present.
    const uint8_t* mac = lla_off != 0 ? d + lla_off : d + wire::off_eth_src;
    neigh_on_reply(w->sh->neigh[idx], port, neigh_mac_word(mac), now, timing_of(w), *w->c, nd_drops);
}

}  // namespace

void neigh_init(worker* w, uint64_t now) noexcept {
    w->arp_tb = {reply_burst, now};
    w->icmp_tb = {reply_burst, now};
    const neigh_timing t = neigh_timing_of(w->hz, w->cfg.arp_reachable_ms);
    w->arp_window = t.window;
    w->arp_retry = t.retry;
    w->arp_reachable = t.reachable;
    w->arp_version = UINT64_MAX;
    w->arp_req_tb = {arp_request_burst, now};
    w->nd_tb = {reply_burst, now};
    w->icmp6_tb = {reply_burst, now};
    w->handoff_tb = {arp_handoff_burst, now};
}

// Turn an ARP request for our address into the reply, in place (same size as
// the request: never an amplifier).
bool arp_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
               uint64_t now) noexcept {
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* a = d + pr.l3_off;
    const uint16_t op = load_be16(a + 6);
    if (op == 2) {
        if (!w->cfg.arp_owner) {
            // Neighbour state has one writer: hand the reply to the owner;
            // but one about no next hop of ours, or a pinned one, is dropped
            // here, counted as the owner would, and the rest only within
            // this lcore's hand-off budget: a flood must not fill the ring
            // the real replies (both families') cross.
            // (No snapshot yet: the owner counts it, nd_na_input alike.)
            const int64_t idx = s != nullptr ? arp_entry_of(w, *s, pr.src_ip_be) : -1;
            const drop_reason why = s != nullptr && idx < 0
                                        ? drop_reason::arp_unsolicited
                                        : handoff_verdict(w, idx, port, drop_reason::arp_unsolicited, now);
            if (why != drop_reason::count_) {
                ++w->c->drop(why);
                return false;
            }
            m->hash.fdir.lo = port;
            return handoff(w, m);
        }
        if (s != nullptr) arp_learn(w, *s, pr.src_ip_be, a + 8, port, now);
        else ++w->c->drop(drop_reason::arp_unsolicited);
        return false;
    }
    // A request for our address: answered, never learnt from (anyone can
    // send one with any sender address and MAC).
    ++w->c->arp_requests_in;
    if (!take_token(w->arp_tb, now, w->hz)) {
        ++w->c->drop(drop_reason::arp_rate);
        return false;
    }
    const uint8_t* mine = w->sh->ports[port].mac;
    uint8_t sender_mac[6];
    uint8_t sender_ip[4];
    std::memcpy(sender_mac, a + 8, 6);
    std::memcpy(sender_ip, a + 14, 4);
    std::memcpy(d, sender_mac, 6);
    std::memcpy(d + 6, mine, 6);
    store_be16(a + 6, 2);
    std::memcpy(a + 8, mine, 6);
    std::memcpy(a + 14, &w->sh->ports[port].ip_be, 4);
    std::memcpy(a + 18, sender_mac, 6);
    std::memcpy(a + 24, sender_ip, 4);
    ++w->c->arp_replies;
    tx_control(w, port, m);
    return true;
}

// Echo request to echo reply, in place.
bool icmp_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept {
    ++w->c->icmp_requests_in;
    if (!take_token(w->icmp_tb, now, w->hz)) {
        ++w->c->drop(drop_reason::icmp_rate);
        return false;
    }
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t tmp[6];
    std::memcpy(tmp, d, 6);
    std::memcpy(d, d + 6, 6);
    std::memcpy(d + 6, tmp, 6);
    uint8_t* ip = d + pr.l3_off;
    uint8_t src[4];
    std::memcpy(src, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, src, 4);
    ip[8] = 64;
    store_be16(ip + 10, 0);
    store_be16(ip + 10, static_cast<uint16_t>(~wire::csum_fold(wire::csum_add(0, ip, wire::ipv4_hdr_len))));
    uint8_t* icmp = d + pr.l4_off;
    icmp[0] = 0;   // echo reply
    store_be16(icmp + 2, 0);
    store_be16(icmp + 2, static_cast<uint16_t>(~wire::csum_fold(wire::csum_add(0, icmp, pr.icmp_len))));
    // Drop Ethernet padding beyond the IP datagram: the reply is never larger.
    const uint32_t len = pr.l3_off + load_be16(ip + 2);
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
    ++w->c->icmp_replies;
    tx_control(w, port, m);
    return true;
}

// An NS for our address (parse.cc checked it: hop limit 255, target ours,
// source usable, link-layer option equal to the frame's source) becomes the
// NA in place: solicited and override set, our MAC in a target link-layer
// address option when the NS had room for it (always, for a multicast NS,
// which must carry its own; RFC 4861 7.2.4 lets the answer to a unicast NS
// leave it out). Never longer than the NS: not an amplifier.
bool nd_ns_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept {
    using namespace wire;
    ++w->c->nd_requests_in;
    if (!take_token(w->nd_tb, now, w->hz)) {
        ++w->c->drop(drop_reason::nd_rate);
        return false;
    }
    const port_identity& id = w->sh->ports[port];
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* ip = d + pr.l3_off;
    uint8_t* icmp = d + pr.l4_off;
    std::memcpy(d, d + off_eth_src, 6);
    std::memcpy(d + off_eth_src, id.mac, 6);
    std::memcpy(ip + 24, ip + 8, 16);
    std::memcpy(ip + 8, id.ip6, 16);
    ip[7] = nd_hop_limit;
    const uint16_t na_len = pr.icmp_len >= nd_hdr_len + 8 ? nd_hdr_len + 8 : nd_hdr_len;
    store_be16(ip + 4, na_len);
    icmp[0] = nd_neighbor_advert;
    icmp[1] = 0;
    icmp[4] = na_flag_solicited | na_flag_override;
    icmp[5] = icmp[6] = icmp[7] = 0;
    // icmp + 8: the target, our address, stays.
    if (na_len > nd_hdr_len) {
        icmp[24] = nd_opt_target_lla;
        icmp[25] = 1;
        std::memcpy(icmp + 26, id.mac, 6);
    }
    store_be16(icmp + 2, 0);
    store_be16(icmp + 2, static_cast<uint16_t>(~csum_fold(csum_add(ipv6_pseudo_sum(ip, na_len, ipproto_icmpv6),
                                                                     icmp, na_len))));
    const uint32_t len = pr.l4_off + na_len;
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
    ++w->c->nd_replies;
    tx_control(w, port, m);
    return true;
}

bool nd_na_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                 uint64_t now) noexcept {
    if (!w->cfg.arp_owner) {
        // Neighbour state has one writer: hand the NA to the owner, with
        // its port and where its link-layer address option is; an NA that
        // can teach nothing (unsolicited, about no next hop of ours or a
        // pinned one) is dropped here, counted as the owner would, and the
        // rest go only within this lcore's hand-off budget, so that a flood
        // cannot fill the ring real replies cross.
        drop_reason why = drop_reason::nd_unsolicited;
        const int64_t idx =
            s != nullptr ? nd_entry_of(w, *s, rte_pktmbuf_mtod(m, const uint8_t*) + wire::off_l4_v6, &why) : -1;
        if (s == nullptr || idx >= 0) why = handoff_verdict(w, idx, port, drop_reason::nd_unsolicited, now);
        if (why != drop_reason::count_) {
            ++w->c->drop(why);
            return false;
        }
        m->hash.fdir.lo = port;
        m->hash.fdir.hi = pr.nd_lla_off;
        return handoff(w, m);
    }
    if (s != nullptr)
        nd_learn(w, *s, rte_pktmbuf_mtod(m, const uint8_t*), pr.nd_lla_off, port, now);
    else
        ++w->c->drop(drop_reason::nd_unsolicited);
    return false;
}

// ICMPv6 echo request to echo reply, in place, under the same bounds as
// ICMP echo: its own bucket of the same size, never longer than the request.
bool icmp6_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept {
    using namespace wire;
    ++w->c->icmp6_requests_in;
    if (!take_token(w->icmp6_tb, now, w->hz)) {
        ++w->c->drop(drop_reason::icmp6_rate);
        return false;
    }
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t tmp[16];
    std::memcpy(tmp, d, 6);
    std::memcpy(d, d + 6, 6);
    std::memcpy(d + 6, tmp, 6);
    uint8_t* ip = d + pr.l3_off;
    std::memcpy(tmp, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);   // the destination was our address
    std::memcpy(ip + 24, tmp, 16);
    ip[7] = 64;
    uint8_t* icmp = d + pr.l4_off;
    icmp[0] = icmp6_echo_reply;
    store_be16(icmp + 2, 0);
    store_be16(icmp + 2, static_cast<uint16_t>(~csum_fold(csum_add(ipv6_pseudo_sum(ip, pr.icmp_len, ipproto_icmpv6),
                                                                     icmp, pr.icmp_len))));
    const uint32_t len = pr.l4_off + pr.icmp_len;
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
    ++w->c->icmp6_replies;
    tx_control(w, port, m);
    return true;
}

unsigned neigh_poll(worker* w, const dp_snapshot* s, uint64_t now) noexcept {
    unsigned work = 0;
    if (w->sh->arp_ring != nullptr && !rte_ring_empty(w->sh->arp_ring)) {
        void* objs[max_burst];
        const unsigned n = rte_ring_sc_dequeue_burst(w->sh->arp_ring, objs, max_burst, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            auto* m = static_cast<rte_mbuf*>(objs[i]);
            const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
            const uint8_t* a = d + wire::eth_hdr_len;
            const auto port = static_cast<uint16_t>(m->hash.fdir.lo);
            const bool nd = wire::load_be16(d + wire::off_eth_type) == wire::ethertype_ipv6;
            // No snapshot yet: no next hop to learn, counted as the owner
            // counts one received directly (arp_input, nd_na_input).
            if (s == nullptr)
                ++w->c->drop(nd ? drop_reason::nd_unsolicited : drop_reason::arp_unsolicited);
            else if (nd)
                nd_learn(w, *s, d, static_cast<uint16_t>(m->hash.fdir.hi), port, now);
            else
                arp_learn(w, *s, wire::load_raw32(a + 14), a + 8, port, now);
            rte_pktmbuf_free(m);
        }
        work += n;
    }
    if (s == nullptr || now - w->last_arp_tsc < w->hz * arp_tick_us / 1000000) return work;
    w->last_arp_tsc = now;
    // Next hops new in this version first: a join is heard within a tick.
    if (s->version != w->arp_version) {
        w->arp_version = s->version;
        w->arp_fresh_pos = 0;
    }
    while (w->arp_fresh_pos < s->nb_neigh_fresh && w->arp_req_tb.tokens > 0) {
        const uint32_t idx = s->neigh_fresh[w->arp_fresh_pos++];
        if (idx < w->sh->nb_neigh) visit(w, w->sh->neigh[idx], now);
    }
    const uint32_t n = s->nb_neigh_active;
    for (uint32_t k = 0; k < std::min<uint32_t>(arp_visits_per_tick, n); ++k) {
        if (w->arp_scan_pos >= n) w->arp_scan_pos = 0;
        const uint32_t idx = s->neigh_active[w->arp_scan_pos++];
        if (idx < w->sh->nb_neigh) visit(w, w->sh->neigh[idx], now);
    }
    return work;
}

void neigh_release(worker* w) noexcept {
    if (!w->cfg.arp_owner || w->sh->arp_ring == nullptr) return;
    void* obj;
    while (rte_ring_sc_dequeue(w->sh->arp_ring, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
}

}  // namespace stentor::dp
