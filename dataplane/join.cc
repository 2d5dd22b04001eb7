#include "join.h"

#include <rte_ring.h>

#include "neigh_fsm.h"
#include "stentor/dp_join.h"
#include "stentor/join_token.h"
#include "stentor/stun.h"
#include "tx.h"

namespace stentor::dp {
namespace {

// The session a port serves. Sessions are few (limits.max_sessions, 1024 at
// most by default) and join requests a small share of traffic; a linear scan
// of the snapshot's session pointers keeps the snapshot free of another index.
const dp_session* session_of_port(const dp_snapshot& s, uint16_t port_be) noexcept {
    for (uint32_t i = 0; i < s.nb_sessions; ++i) {
        const dp_session* sess = s.sessions[i];
        if (sess->generation != 0 && sess->udp_port_be == port_be) return sess;
    }
    return nullptr;
}

}  // namespace

bool join_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                uint64_t now) noexcept {
    lcore_counters* c = w->c;
    const dp_shared& sh = *w->sh;
    if (sh.join_ring == nullptr || sh.join_keys == nullptr || s == nullptr) {
        ++c->drop(drop_reason::join_off);
        return false;
    }
    const uint8_t* msg = rte_pktmbuf_mtod(m, const uint8_t*) + pr.rtp_off;
    stun::request_view v;
    if (const auto e = stun::parse_request(msg, pr.rtp_len, v); e != stun::stun_error::ok) {
        ++c->drop(join_drop_of(e));
        return false;
    }
    uint8_t raw[join::token_raw_len];
    join::token_fields f;
    if (!join::decode_token(v.username, v.username_len, raw, f)) {
        ++c->drop(drop_reason::join_bad_token);
        return false;
    }
    const join::token_key* key = sh.join_keys[f.key_id];
    if (key == nullptr) {
        ++c->drop(drop_reason::join_unknown_key);
        return false;
    }
    if (f.expiry <= sh.unix_now.load(std::memory_order_relaxed)) {
        ++c->drop(drop_reason::join_expired);
        return false;
    }
    // Everything above is a handful of compares on the packet alone; from
    // here on each request costs a scan of the sessions and MACs, so a flood
    // of well-shaped requests is cut to the budget first.
    if (!bucket_take(w->join_tb.tokens, w->join_tb.last_tsc, now, w->hz, sh.join_verify_per_s,
                     w->join_burst)) {
        ++c->drop(drop_reason::join_budget);
        return false;
    }
    const dp_session* sess = session_of_port(*s, pr.dst_port_be);
    if (sess == nullptr) {
        ++c->drop(drop_reason::join_no_session);
        return false;
    }
    if (sess->id != f.session_id) {
        ++c->drop(drop_reason::join_wrong_session);
        return false;
    }
    // The headroom carries the verdict to the desk; a PMD leaves at least
    // RTE_PKTMBUF_HEADROOM, so this only fails on a damaged mbuf.
    if (rte_pktmbuf_headroom(m) < sizeof(dp_join_request)) [[unlikely]] {
        ++c->drop(drop_reason::join_no_headroom);
        return false;
    }
    uint8_t mac[join::token_mac_len];
    join::token_mac(*key, raw, mac);
    if (!join::check_tag(raw, mac)) {
        ++c->drop(drop_reason::join_forged);
        return false;
    }
    dp_join_request r{};
    join::password_of(mac, r.password);
    if (!stun::check_integrity(msg, v, r.password, join_password_len)) {
        ++c->drop(drop_reason::join_bad_integrity);
        return false;
    }
    r.nonce = f.nonce;
    r.session_id = f.session_id;
    r.expiry = f.expiry;
    r.src_ip_be = pr.src_ip_be;
    r.src_port_be = pr.src_port_be;
    r.stun_off = pr.rtp_off;
    r.stun_len = pr.rtp_len;
    r.key_id = f.key_id;
    r.tier = f.tier;
    r.leave = v.leave ? 1 : 0;
    r.port = static_cast<uint8_t>(port);
    store_join_request(m, r);
    if (rte_ring_mp_enqueue(sh.join_ring, m) != 0) {
        ++c->drop(drop_reason::join_ring_full);
        return false;
    }
    ++c->join_verified;
    return true;
}

unsigned join_reply_poll(worker* w) noexcept {
    rte_ring* r = w->sh->join_reply_ring;
    if (r == nullptr || rte_ring_empty(r)) return 0;
    void* objs[max_burst];
    const unsigned n = rte_ring_sc_dequeue_burst(r, objs, max_burst, nullptr);
    for (unsigned i = 0; i < n; ++i) {
        auto* m = static_cast<rte_mbuf*>(objs[i]);
        const uint16_t port = m->port;
        if (port >= w->sh->nb_ports) [[unlikely]] {
            rte_pktmbuf_free(m);
            continue;
        }
        ++w->c->join_replies;
        tx_control(w, port, m);
    }
    return n;
}

}  // namespace stentor::dp
