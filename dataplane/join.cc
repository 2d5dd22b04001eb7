#include "join.h"

#include <rte_ring.h>

#include "join_mac.h"
#include "neigh_fsm.h"
#include "stentor/dp_join.h"
#include "stentor/join_token.h"
#include "stentor/stun.h"
#include "stentor/wire.h"
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

// What join_input established, kept in the request's headroom until the
// MACs run (at the end of the RX burst, or on a join lcore). The second
// stage reads it whole and writes the dp_join_request over it.
struct dp_join_pending {
    uint8_t raw[join::token_raw_len];   // the decoded token (key id, session, ..., tag)
    uint32_t src_ip_be;
    uint16_t src_port_be;
    uint16_t dst_port_be;               // the port it was sent to: names the session
    uint16_t stun_off;                  // STUN message offset in the frame
    uint16_t stun_len;
    uint16_t integrity_off;             // MESSAGE-INTEGRITY's offset in the message
    uint8_t port;                       // port index it arrived on
    uint8_t leave;
};
static_assert(sizeof(dp_join_pending) <= sizeof(dp_join_request), "both live in the same headroom bytes");

inline void store_pending(rte_mbuf* m, const dp_join_pending& p) noexcept {
    std::memcpy(rte_pktmbuf_mtod(m, char*) - sizeof(dp_join_request), &p, sizeof p);
}
inline dp_join_pending load_pending(const rte_mbuf* m) noexcept {
    dp_join_pending p;
    std::memcpy(&p, rte_pktmbuf_mtod(m, const char*) - sizeof(dp_join_request), sizeof p);
    return p;
}

// The join lcore of a source: one client's requests stay in order on one
// lcore (a leave never overtakes the refresh before it).
inline uint32_t join_lcore_of(uint32_t ip_be, uint16_t port_be, uint32_t n) noexcept {
    const uint64_t h = (uint64_t{ip_be} << 16 | port_be) * 0x9e3779b97f4a7c15ull;
    return static_cast<uint32_t>(((h >> 32) * n) >> 32);
}

// The MACs of n pending requests, and the hand-off of those that hold to
// the join desk. Frees what fails. Three passes: per request the key, the
// session and the token MAC (HMAC-SHA256, SHA-NI: all a forged token
// costs); MESSAGE-INTEGRITY of the survivors together (join_mac.h: in
// AVX-512/AVX2 lanes by whole groups); the hand-off of what holds, in one
// ring operation.
unsigned join_verify_burst(worker* w, const dp_snapshot* s, rte_mbuf* const* mbufs, unsigned n) noexcept {
    static_assert(join_password_len == join_password_chars && max_burst <= mi_max_batch);
    lcore_counters* c = w->c;
    const dp_shared& sh = *w->sh;
    rte_mbuf* failed[max_burst];
    unsigned nb_failed = 0;
    auto fail = [&](rte_mbuf* m, drop_reason why) noexcept {
        ++c->drop(why);
        failed[nb_failed++] = m;
    };
    // Not necessarily the table join_input saw: a reload in between may
    // have removed the key (counted unknown_key here).
    const dp_join_keys* keys = sh.join_keys.load(std::memory_order_acquire);
    dp_join_request req[max_burst];
    mi_request mi[max_burst] = {};   // zeroed (1.5 KB a burst): GCC cannot see that only [0, nb) is read
    rte_mbuf* held[max_burst];
    unsigned nb = 0;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = mbufs[i];
        const dp_join_pending p = load_pending(m);
        const join::token_key* key = keys != nullptr ? keys->by_id[p.raw[1]] : nullptr;
        if (key == nullptr) {
            fail(m, drop_reason::join_unknown_key);
            continue;
        }
        const dp_session* sess = s != nullptr ? session_of_port(*s, p.dst_port_be) : nullptr;
        if (sess == nullptr) {
            fail(m, drop_reason::join_no_session);
            continue;
        }
        if (sess->id != wire::load_be32(p.raw + 2)) {
            fail(m, drop_reason::join_wrong_session);
            continue;
        }
        uint8_t mac[join::token_mac_len];
        join::token_mac(*key, p.raw, mac);
        if (!join::check_tag(p.raw, mac)) {
            fail(m, drop_reason::join_forged);
            continue;
        }
        dp_join_request& r = req[nb];
        r = dp_join_request{};
        join::password_of(mac, r.password);
        join::token_fields f;
        join::fields_of(p.raw, f);
        r.nonce = f.nonce;
        r.session_id = f.session_id;
        r.expiry = f.expiry;
        r.src_ip_be = p.src_ip_be;
        r.src_port_be = p.src_port_be;
        r.stun_off = p.stun_off;
        r.stun_len = p.stun_len;
        r.key_id = f.key_id;
        r.tier = f.tier;
        r.leave = p.leave;
        r.port = p.port;
        mi[nb] = {rte_pktmbuf_mtod(m, uint8_t*) + p.stun_off, p.integrity_off, r.password};
        held[nb++] = m;
    }
    bool ok[max_burst];
    if (w->mi != nullptr) {
        mi_check(w->mi, mi, nb, ok);
    } else {
        for (unsigned k = 0; k < nb; ++k)
            ok[k] = stun::check_integrity(mi[k].msg, mi[k].integrity_off, mi[k].password, join_password_len);
    }
    rte_mbuf* pass[max_burst];
    unsigned nb_pass = 0;
    for (unsigned k = 0; k < nb; ++k) {
        if (!ok[k]) {
            fail(held[k], drop_reason::join_bad_integrity);
            continue;
        }
        store_join_request(held[k], req[k]);
        pass[nb_pass++] = held[k];
    }
    const unsigned q = nb_pass == 0 ? 0 : rte_ring_mp_enqueue_burst(sh.join_ring, reinterpret_cast<void**>(pass), nb_pass, nullptr);
    for (unsigned k = q; k < nb_pass; ++k) fail(pass[k], drop_reason::join_ring_full);
    c->join_verified += q;
    if (nb_failed > 0) rte_pktmbuf_free_bulk(failed, nb_failed);
    return n;
}

}  // namespace

bool join_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                uint64_t now) noexcept {
    lcore_counters* c = w->c;
    const dp_shared& sh = *w->sh;
    const dp_join_keys* keys = sh.join_keys.load(std::memory_order_acquire);
    if (sh.join_ring == nullptr || keys == nullptr || s == nullptr) {
        ++c->drop(drop_reason::join_off);
        return false;
    }
    const uint8_t* msg = rte_pktmbuf_mtod(m, const uint8_t*) + pr.rtp_off;
    stun::request_view v;
    if (const auto e = stun::parse_request(msg, pr.rtp_len, v); e != stun::stun_error::ok) {
        ++c->drop(join_drop_of(e));
        return false;
    }
    dp_join_pending p;
    join::token_fields f;
    if (!join::decode_token(v.username, v.username_len, p.raw, f)) {
        ++c->drop(drop_reason::join_bad_token);
        return false;
    }
    if (keys->by_id[f.key_id] == nullptr) {
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
    // The headroom carries the request to its verification and then to the
    // desk; a PMD leaves at least RTE_PKTMBUF_HEADROOM, so this only fails
    // on a damaged mbuf.
    if (rte_pktmbuf_headroom(m) < sizeof(dp_join_request)) [[unlikely]] {
        ++c->drop(drop_reason::join_no_headroom);
        return false;
    }
    p.src_ip_be = pr.src_ip_be;
    p.src_port_be = pr.src_port_be;
    p.dst_port_be = pr.dst_port_be;
    p.stun_off = pr.rtp_off;
    p.stun_len = pr.rtp_len;
    p.integrity_off = v.integrity_offset;
    p.port = static_cast<uint8_t>(port);
    p.leave = v.leave ? 1 : 0;
    store_pending(m, p);
    if (sh.nb_join_lcores != 0) {
        rte_ring* r = sh.join_handoff[join_lcore_of(pr.src_ip_be, pr.src_port_be, sh.nb_join_lcores)];
        if (rte_ring_mp_enqueue(r, m) != 0) {
            ++c->drop(drop_reason::join_handoff_full);
            return false;
        }
        ++c->join_handoffs;
        return true;
    }
    w->join_batch[w->nb_join_batch++] = m;
    return true;
}

unsigned join_flush(worker* w, const dp_snapshot* s) noexcept {
    const unsigned n = w->nb_join_batch;
    if (n == 0) return 0;
    w->nb_join_batch = 0;
    return join_verify_burst(w, s, w->join_batch, n);
}

unsigned join_poll(worker* w, const dp_snapshot* s) noexcept {
    rte_ring* r = w->cfg.join_in;
    if (r == nullptr || rte_ring_empty(r)) return 0;
    rte_mbuf* pkts[max_burst];
    const unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), w->cfg.burst, nullptr);
    return n == 0 ? 0 : join_verify_burst(w, s, pkts, n);
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
