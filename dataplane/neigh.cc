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

// A reply (op 2) from `spa` offering `sha`, received on port index `port`.
// Runs on the ARP-owner lcore only.
void arp_learn(worker* w, const dp_snapshot& s, uint32_t spa_be, const uint8_t* sha, uint16_t port,
               uint64_t now) noexcept {
    const int64_t idx = find_neigh(s, spa_be);
    if (idx < 0 || static_cast<uint32_t>(idx) >= w->sh->nb_neigh) {
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

// One entry: at most one request.
void visit(worker* w, dp_neigh& e, uint64_t now) noexcept {
    if (!neigh_visit(e, now, timing_of(w), *w->c)) return;
    if (!take_token(w->arp_req_tb, now, w->hz, arp_request_rate, arp_request_burst)) return;
    send_request(w, e, now);
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
            // Neighbour state has one writer: hand the reply to the owner.
            m->hash.fdir.lo = port;
            if (w->sh->arp_ring != nullptr && rte_ring_mp_enqueue(w->sh->arp_ring, m) == 0) return true;
            ++w->c->drop(drop_reason::arp_ring_full);
            return false;
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

unsigned neigh_poll(worker* w, const dp_snapshot* s, uint64_t now) noexcept {
    unsigned work = 0;
    if (w->sh->arp_ring != nullptr && !rte_ring_empty(w->sh->arp_ring)) {
        void* objs[max_burst];
        const unsigned n = rte_ring_sc_dequeue_burst(w->sh->arp_ring, objs, max_burst, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            auto* m = static_cast<rte_mbuf*>(objs[i]);
            const uint8_t* a = rte_pktmbuf_mtod(m, const uint8_t*) + wire::eth_hdr_len;
            if (s != nullptr)
                arp_learn(w, *s, wire::load_raw32(a + 14), a + 8, static_cast<uint16_t>(m->hash.fdir.lo), now);
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
