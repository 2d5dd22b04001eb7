#include "neigh.h"

#include <algorithm>
#include <cstring>

#include <rte_mbuf.h>

#include "stentor/wire.h"
#include "tx.h"

namespace stentor::dp {
namespace {

using wire::load_be16;
using wire::store_be16;

inline bool take_token(token_bucket& tb, uint64_t now, uint64_t hz) noexcept {
    uint64_t elapsed = now - tb.last_tsc;
    uint64_t add = elapsed * reply_rate_per_s / hz;
    if (add > 0) {
        tb.tokens = std::min(reply_burst, tb.tokens + add);
        tb.last_tsc = now;
    }
    if (tb.tokens == 0) return false;
    --tb.tokens;
    return true;
}

void learn_neighbour(worker* w, const dp_snapshot& s, uint32_t ip_be, const uint8_t* mac,
                     uint16_t port) noexcept {
    const int64_t idx = find_neigh(s, ip_be);
    if (idx < 0 || static_cast<uint32_t>(idx) >= w->sh->nb_neigh) return;
    dp_neigh& n = w->sh->neigh[idx];
    if (n.port_id != port) return;
    if (n.want.load(std::memory_order_relaxed) & neigh_static) return;   // pinned by the profile
    uint64_t word = 0;
    std::memcpy(&word, mac, 6);
    word |= neigh_valid;
    n.mac_word.store(word, std::memory_order_relaxed);
}

}  // namespace

void neigh_init(worker* w, uint64_t now) noexcept {
    w->arp_tb = {reply_burst, now};
    w->icmp_tb = {reply_burst, now};
}

// Turn an ARP request for our address into the reply, in place (same size as
// the request: never an amplifier).
bool arp_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
               uint64_t now) noexcept {
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* a = d + pr.l3_off;
    const uint16_t op = load_be16(a + 6);
    if (s != nullptr) learn_neighbour(w, *s, pr.src_ip_be, a + 8, port);
    if (op != 1) return false;
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

void neigh_solicit(worker* w, uint64_t now) noexcept {
    // Every 100 ms look at up to 256 neighbour entries and ask for those not
    // resolved yet (or flagged by the control plane): at most 2560 requests/s.
    if (now - w->last_arp_tsc < w->hz / 10) return;
    w->last_arp_tsc = now;
    const uint32_t n = w->sh->nb_neigh;
    if (n == 0) return;
    for (uint32_t k = 0; k < std::min<uint32_t>(256, n); ++k) {
        dp_neigh& e = w->sh->neigh[w->arp_scan_pos];
        w->arp_scan_pos = (w->arp_scan_pos + 1) % n;
        if (e.ip_be == 0) continue;
        const bool valid = e.mac_word.load(std::memory_order_relaxed) & neigh_valid;
        const uint16_t want = e.want.load(std::memory_order_relaxed);
        if (want & neigh_static) continue;
        if (valid && !(want & neigh_want)) continue;
        e.want.store(0, std::memory_order_relaxed);
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
        ++w->c->arp_requests;
        tx_control(w, port, m);
    }
}

}  // namespace stentor::dp
