#include "join.h"

#include <rte_prefetch.h>
#include <rte_ring.h>

#include <cstddef>
#include <cstring>

#include "ingress.h"
#include "join_mac.h"
#include "neigh_fsm.h"
#include "stentor/dp_join.h"
#include "stentor/join_token.h"
#include "stentor/stun.h"
#include "stentor/wire.h"
#include "tx.h"

namespace stentor::dp {
namespace {

static_assert(stun::fixed_username_len == join::token_text_len, "parse_request's fixed layout is a join token's");

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

// What the cheap checks established about a request, until its MACs run
// (at the end of the RX burst, or on a join lcore). On the way to a join
// lcore it travels in the request's headroom, `req` last, so that its
// bytes already sit where the desk reads the dp_join_request
// (dp_join.h); the MAC stage only adds the password.
struct dp_join_pending {
    uint8_t raw[join::token_raw_len];   // the decoded token (key id, session, ..., tag)
    uint16_t integrity_off;             // MESSAGE-INTEGRITY's offset in the message
    uint16_t dst_port_be;               // the port it was sent to: names the session
    dp_join_request req;                // all but the password
};
static_assert(offsetof(dp_join_pending, req) + sizeof(dp_join_request) == sizeof(dp_join_pending),
              "req ends the pending bytes, where the desk reads it");
static_assert(sizeof(dp_join_pending) <= RTE_PKTMBUF_HEADROOM, "a PMD leaves at least this much");

inline void store_pending(rte_mbuf* m, const dp_join_pending& p) noexcept {
    std::memcpy(rte_pktmbuf_mtod(m, char*) - sizeof p, &p, sizeof p);
}
inline void load_pending(const rte_mbuf* m, dp_join_pending& p) noexcept {
    std::memcpy(&p, rte_pktmbuf_mtod(m, const char*) - sizeof p, sizeof p);
}

// The join lcore of a source: one client's requests stay in order on one
// lcore (a leave never overtakes the refresh before it). Either family: the
// 16-byte source folded to 32 bits (an IPv4 source's fold is its address
// XOR the mapped prefix's word, so it spreads as before).
inline uint32_t join_lcore_of(const uint8_t* src, uint16_t port_be, uint32_t n) noexcept {
    uint32_t w[4];
    std::memcpy(w, src, 16);
    const uint32_t ip = w[0] ^ w[1] ^ w[2] ^ w[3];
    const uint64_t h = (uint64_t{ip} << 16 | port_be) * 0x9e3779b97f4a7c15ull;
    return static_cast<uint32_t>(((h >> 32) * n) >> 32);
}

// An IPv6 source a listener may not join from, beyond what the validator
// already refused for every packet (multicast, ::, ::1, IPv4-mapped and
// -compatible, this port's own address: ingress/ipv6_src; link-local:
// ingress/ipv6_src_link_local): the discard-only prefix 100::/64 (RFC
// 6666), and the relay's address on any other port (an answer would go
// to the relay itself). The control plane refuses these and more for
// listeners (config.h check_peer6: NAT64/6to4 forms of special IPv4
// addresses, a prefix's subnet-router anycast, ...): a request from one of
// those passes here, costs its MACs and is answered 400 by the desk's
// listener_add (after its cookie). Here they cost no MAC and get no answer.
bool join_src6_refused(const dp_shared& sh, const uint8_t* src) noexcept {
    static constexpr uint8_t discard[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
    if (std::memcmp(src, discard, 8) == 0) return true;
    for (uint16_t p = 0; p < sh.nb_ports; ++p)
        if (sh.ports[p].has_ip6 && wire::ipv6_equal(src, sh.ports[p].ip6)) return true;
    return false;
}

// An IPv4 source a listener may not join from, beyond what the validator
// refused for every packet (0/8, 127/8, multicast and above, this port's
// own address): link-local 169.254/16 (RFC 3927: not routed, and the
// control plane refuses it for listeners), and the relay's address on any
// other port (an answer would go to the relay itself). As for IPv6: no MAC,
// no answer, counted join/src.
bool join_src4_refused(const dp_shared& sh, uint32_t src_be) noexcept {
    const uint32_t src = __builtin_bswap32(src_be);
    if ((src >> 16) == 0xa9fe) return true;   // 169.254/16
    for (uint16_t p = 0; p < sh.nb_ports; ++p)
        if (sh.ports[p].ip_be == src_be) return true;
    return false;
}

// Failed requests of one stage, counted by reason and freed together.
struct fail_list {
    explicit fail_list(lcore_counters* counters) noexcept : c(counters) {}
    lcore_counters* c;
    unsigned n = 0;
    rte_mbuf* m[max_burst];
    void add(rte_mbuf* mb, drop_reason why) noexcept {
        ++c->drop(why);
        m[n++] = mb;
    }
    void free() noexcept {
        if (n > 0) rte_pktmbuf_free_bulk(m, n);
    }
};

// The MACs of n pending requests, and the hand-off of those that hold to
// the join desk. Frees what fails. Three passes: per request the key, the
// session and the token MAC (HMAC-SHA256, SHA-NI: all a forged token
// costs); MESSAGE-INTEGRITY of the survivors together (join_mac.h: in
// AVX-512/AVX2 lanes by whole groups); the hand-off of what holds, in one
// ring operation.
void join_verify_burst(worker* w, const dp_snapshot* s, dp_join_pending* pend, rte_mbuf* const* mbufs,
                       unsigned n) noexcept {
    static_assert(join_password_len == join_password_chars && max_burst <= mi_max_batch);
    lcore_counters* c = w->c;
    const dp_shared& sh = *w->sh;
    fail_list failed(c);
    // Not necessarily the table the cheap checks saw: a reload in between
    // may have removed the key (counted unknown_key here).
    const dp_join_keys* keys = sh.join_keys.load(std::memory_order_acquire);
    mi_request mi[max_burst] = {};   // zeroed (1.5 KB a burst): GCC cannot see that only [0, nb) is read
    unsigned held[max_burst];
    unsigned nb = 0;
    // A burst's requests mostly name one session (a flash crowd): the scan
    // of the sessions runs once per port that changes, not per request.
    uint16_t last_port_be = 0;
    const dp_session* last_sess = nullptr;
    bool have_last = false;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = mbufs[i];
        dp_join_pending& p = pend[i];
        const join::token_key* key = keys != nullptr ? keys->by_id[p.raw[1]] : nullptr;
        if (key == nullptr) {
            failed.add(m, drop_reason::join_unknown_key);
            continue;
        }
        if (!have_last || p.dst_port_be != last_port_be) {
            last_sess = s != nullptr ? session_of_port(*s, p.dst_port_be) : nullptr;
            last_port_be = p.dst_port_be;
            have_last = true;
        }
        const dp_session* sess = last_sess;
        if (sess == nullptr) {
            failed.add(m, drop_reason::join_no_session);
            continue;
        }
        if (sess->id != p.req.session_id) {
            failed.add(m, drop_reason::join_wrong_session);
            continue;
        }
        uint8_t mac[join::token_mac_len];
        join::token_mac(*key, p.raw, mac);
        if (!join::check_tag(p.raw, mac)) {
            failed.add(m, drop_reason::join_forged);
            continue;
        }
        join::password_of(mac, p.req.password);
        mi[nb] = {rte_pktmbuf_mtod(m, uint8_t*) + p.req.stun_off, p.integrity_off, p.req.password};
        held[nb++] = i;
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
        rte_mbuf* m = mbufs[held[k]];
        if (!ok[k]) {
            failed.add(m, drop_reason::join_bad_integrity);
            continue;
        }
        store_join_request(m, pend[held[k]].req);
        pass[nb_pass++] = m;
    }
    const unsigned q = nb_pass == 0 ? 0 : rte_ring_mp_enqueue_burst(sh.join_ring, reinterpret_cast<void**>(pass), nb_pass, nullptr);
    for (unsigned k = q; k < nb_pass; ++k) failed.add(pass[k], drop_reason::join_ring_full);
    c->join_verified += q;
    failed.free();
}

// The cheap checks of one request (join.h's order), into `p`. The budget is
// the caller's, last.
drop_reason join_check(const dp_shared& sh, const uint8_t* frame, const join_rx& x, const dp_join_keys& keys,
                       uint32_t unix_now, dp_join_pending& p) noexcept {
    const uint8_t* msg = frame + x.stun_off;
    // Port 0 is no one's socket (RFC 768: "no source port"); an answer to it
    // would be a packet to nobody, or to a stack that takes it as its own.
    if (x.src_port_be == 0) return drop_reason::join_src;
    if (x.ipv6 ? join_src6_refused(sh, frame + wire::off_ip6_src) : join_src4_refused(sh, x.src_ip_be))
        return drop_reason::join_src;
    stun::request_view v;
    if (const auto e = stun::parse_request(msg, x.stun_len, v); e != stun::stun_error::ok) return join_drop_of(e);
    join::token_fields f;
    if (!join::decode_token(v.username, v.username_len, p.raw, f)) return drop_reason::join_bad_token;
    if (keys.by_id[f.key_id] == nullptr) return drop_reason::join_unknown_key;
    if (f.expiry <= unix_now) return drop_reason::join_expired;
    p.integrity_off = v.integrity_offset;
    p.dst_port_be = x.dst_port_be;
    dp_join_request& r = p.req;
    r.nonce = f.nonce;
    r.session_id = f.session_id;
    r.expiry = f.expiry;
    if (x.ipv6)
        std::memcpy(r.src, frame + wire::off_ip6_src, 16);
    else
        join_src_v4(r.src, x.src_ip_be);
    r.src_port_be = x.src_port_be;
    r.stun_off = x.stun_off;
    r.stun_len = x.stun_len;
    r.cookie_off = v.cookie != nullptr ? static_cast<uint16_t>(v.cookie - msg) : 0;
    r.key_id = f.key_id;
    r.tier = f.tier;
    r.leave = v.leave ? 1 : 0;
    r.port = x.port;
    r.ipv6 = x.ipv6;
    std::memset(r.pad_, 0, sizeof r.pad_);
    return drop_reason::count_;
}

}  // namespace

bool join_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                uint64_t now) noexcept {
    const dp_shared& sh = *w->sh;
    if (sh.join_ring == nullptr || s == nullptr || sh.join_keys.load(std::memory_order_relaxed) == nullptr) {
        ++w->c->drop(drop_reason::join_off);
        return false;
    }
    // The headroom carries the request to its verification and then to the
    // desk; a PMD leaves at least RTE_PKTMBUF_HEADROOM, so this only fails
    // on a damaged mbuf.
    if (rte_pktmbuf_headroom(m) < sizeof(dp_join_pending)) [[unlikely]] {
        ++w->c->drop(drop_reason::join_no_headroom);
        return false;
    }
    // The checks wait for the end of the burst (join_flush): meanwhile the
    // rest of the message and the headroom line the request is written to
    // come into the cache. Checked one by one as they arrived, the
    // attribute walk waited for each line in turn (perf: most of
    // parse_request's time sat on its first loads).
    const uint8_t* msg = rte_pktmbuf_mtod(m, const uint8_t*) + pr.rtp_off;
    for (unsigned off = 64; off < pr.rtp_len; off += 64) rte_prefetch0(msg + off);
    rte_prefetch0(msg + pr.rtp_len - 1);
    __builtin_prefetch(rte_pktmbuf_mtod(m, const char*) - sizeof(dp_join_request), 1);
    const unsigned i = w->nb_join_batch++;
    w->join_batch[i] = m;
    w->join_info[i] = {pr.src_ip_be, pr.src_port_be, pr.dst_port_be, pr.rtp_off, pr.rtp_len, static_cast<uint8_t>(port),
                       static_cast<uint8_t>(pr.kind == pkt_kind::stun6)};
    w->join_now = now;
    return true;
}

unsigned join_flush(worker* w, const dp_snapshot* s) noexcept {
    const unsigned n = w->nb_join_batch;
    if (n == 0) return 0;
    w->nb_join_batch = 0;
    lcore_counters* c = w->c;
    const dp_shared& sh = *w->sh;
    fail_list failed(c);
    const dp_join_keys* keys = sh.join_keys.load(std::memory_order_acquire);
    if (keys == nullptr || s == nullptr) [[unlikely]] {   // keys withdrawn since join_input
        for (unsigned i = 0; i < n; ++i) failed.add(w->join_batch[i], drop_reason::join_off);
        failed.free();
        return 0;
    }
    const uint32_t unix_now = sh.unix_now.load(std::memory_order_relaxed);
    // Everything in join_check is a handful of compares on the packet alone;
    // from here on each request costs a scan of the sessions and MACs, so a
    // flood of well-shaped requests is cut to the budget first. One refill
    // per burst (all its requests share the burst's TSC): bucket_take's
    // later calls in the same burst would add nothing.
    bool refilled = false;
    auto take = [&]() noexcept {
        if (!refilled) {
            refilled = true;
            return bucket_take(w->join_tb.tokens, w->join_tb.last_tsc, w->join_now, w->hz, sh.join_verify_per_s,
                               w->join_burst);
        }
        if (w->join_tb.tokens == 0) return false;
        --w->join_tb.tokens;
        return true;
    };
    dp_join_pending pend[max_burst];
    rte_mbuf* ok[max_burst];
    unsigned nb = 0;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = w->join_batch[i];
        const join_rx& x = w->join_info[i];
        const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
        drop_reason why = join_check(sh, frame, x, *keys, unix_now, pend[nb]);
        if (why == drop_reason::count_ && !take()) why = drop_reason::join_budget;
        // IPv6 has no header checksum: the UDP checksum is what vouches for
        // the source the answer goes to and the desk registers. Checked
        // here (the NIC's verdict, else summed), within the budget, so a
        // flood past it costs no sum; IPv4's header checksum was checked
        // by the validator, and the MACs cover the message itself.
        if (why == drop_reason::count_ && x.ipv6 &&
            !udp_sum_ok(m, frame, static_cast<uint16_t>(wire::eth_hdr_len),
                        static_cast<uint16_t>(x.stun_off - wire::udp_hdr_len),
                        static_cast<uint16_t>(x.stun_len + wire::udp_hdr_len), true))
            why = drop_reason::udp_checksum;
        if (why != drop_reason::count_) {
            failed.add(m, why);
            continue;
        }
        ok[nb++] = m;
    }
    if (sh.nb_join_lcores == 0) {
        failed.free();
        join_verify_burst(w, s, pend, ok, nb);
        return n;
    }
    // To the join lcores, one ring operation per lcore and burst, in
    // arrival order per lcore (a stable counting sort by lcore).
    const uint32_t nl = sh.nb_join_lcores;
    uint8_t lcore_of[max_burst];
    unsigned start[max_join_lcores + 1] = {};
    for (unsigned k = 0; k < nb; ++k) {
        store_pending(ok[k], pend[k]);
        lcore_of[k] = static_cast<uint8_t>(join_lcore_of(pend[k].req.src, pend[k].req.src_port_be, nl));
        ++start[lcore_of[k] + 1];
    }
    for (uint32_t l = 0; l < nl; ++l) start[l + 1] += start[l];
    rte_mbuf* by_lcore[max_burst];
    unsigned fill[max_join_lcores];
    for (uint32_t l = 0; l < nl; ++l) fill[l] = start[l];
    for (unsigned k = 0; k < nb; ++k) by_lcore[fill[lcore_of[k]]++] = ok[k];
    for (uint32_t l = 0; l < nl; ++l) {
        const unsigned cnt = start[l + 1] - start[l];
        if (cnt == 0) continue;
        rte_mbuf** b = by_lcore + start[l];
        const unsigned q = rte_ring_mp_enqueue_burst(sh.join_handoff[l], reinterpret_cast<void**>(b), cnt, nullptr);
        c->join_handoffs += q;
        for (unsigned k = q; k < cnt; ++k) failed.add(b[k], drop_reason::join_handoff_full);
    }
    failed.free();
    return n;
}

unsigned join_poll(worker* w, const dp_snapshot* s) noexcept {
    rte_ring* r = w->cfg.join_in;
    if (r == nullptr || rte_ring_empty(r)) return 0;
    rte_mbuf* pkts[max_burst];
    const unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), w->cfg.burst, nullptr);
    if (n == 0) return 0;
    dp_join_pending pend[max_burst];
    for (unsigned i = 0; i < n; ++i) load_pending(pkts[i], pend[i]);
    join_verify_burst(w, s, pend, pkts, n);
    return n;
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
