#include "ingress.h"

#include <algorithm>
#include <cstddef>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "capture.h"
#include "dedup.h"
#include "fanout.h"
#include "join.h"
#include "neigh.h"
#include "parse.h"
#include "rtp_track.h"
#include "stentor/dp_srtp.h"
#include "stentor/srtp.h"
#include "stentor/wire.h"

namespace stentor::dp {

bool udp_sum_ok(const rte_mbuf* m, const uint8_t* d, uint16_t l3_off, uint16_t l4_off, uint16_t udp_len,
                bool v6) noexcept {
    const uint64_t f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    if (f == RTE_MBUF_F_RX_L4_CKSUM_GOOD) return true;
    if (f == RTE_MBUF_F_RX_L4_CKSUM_BAD) return false;
    const uint8_t* udp = d + l4_off;
    // No checksum: allowed over IPv4 only (parse_udp6 already refused an
    // IPv6 one: ipv6_udp_zero_checksum).
    if (udp[6] == 0 && udp[7] == 0) return !v6;
    // The pseudo header's source and destination addresses (RFC 768, RFC
    // 8200 8.1: over IPv6 the length is 32 bits, the same sum below 64 KiB).
    uint32_t sum = v6 ? wire::csum_add(0, d + l3_off + 8, 32) : wire::csum_add(0, d + l3_off + 12, 8);
    sum += wire::ipproto_udp + udp_len;
    sum = wire::csum_add(sum, udp, udp_len);
    return wire::csum_fold(sum) == 0xffff;
}

namespace {

// Dropped RX mbufs go back in one mempool put when they are plain: our pool,
// refcount 1, one segment, direct. A received one-segment mbuf has next NULL
// (the invariant every PMD keeps), so unlike rte_pktmbuf_free_bulk this never
// touches the mbuf's second cache line. Anything else takes the general path.
// Measured: drop harness 31.8 -> see README "Performance".
void free_rx_bulk(rte_mempool* pool, rte_mbuf** m, unsigned n) noexcept {
    void* plain[max_burst];
    unsigned np = 0;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* b = m[i];
        if (b->pool == pool && rte_mbuf_refcnt_read(b) == 1 && b->nb_segs == 1 &&
            (b->ol_flags & (RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL)) == 0) [[likely]]
            plain[np++] = b;
        else
            rte_pktmbuf_free(b);
    }
    if (np > 0) rte_mempool_put_bulk(pool, plain, np);
}

// UDP checksum of a speaker packet, either family (pr.kind rtp or rtp6):
// udp_sum_ok (ingress.h). Only packets of registered flows get here, a few
// hundred per second per speaker. We re-checksum what we forward, so a
// corrupted payload must be stopped here or it leaves with a valid checksum.
bool udp_checksum_ok(const rte_mbuf* m, const uint8_t* d, const parse_result& pr) noexcept {
    return udp_sum_ok(m, d, pr.l3_off, pr.l4_off, static_cast<uint16_t>(wire::udp_hdr_len + pr.rtp_len),
                      pr.kind == pkt_kind::rtp6);
}

// Token bucket per (speaker, RX queue), in packets and bytes: this lcore's
// own entry (see dp_policer), so no other lcore writes it. Only speaker
// packets that passed validation and flow lookup get here: a few hundred per
// second per speaker, so the division is not on anyone's budget.
bool police(worker* w, dp_policer& b, const dp_flow& f, uint16_t bytes, uint64_t now) noexcept {
    if (f.rate_pps == 0) return true;
    const uint64_t pkt_cap = uint64_t{f.rate_pps} * policer_scale * policer_burst_ms / 1000;
    const uint64_t byte_cap = uint64_t{f.rate_bytes} * policer_scale * policer_burst_ms / 1000;
    if (b.last_tsc == 0) {
        b.pkt_tokens = pkt_cap;
        b.byte_tokens = byte_cap;
        b.last_tsc = now;
    }
    const uint64_t elapsed = now - b.last_tsc;
    if (elapsed > 0) {
        const uint64_t us = elapsed * 1000000 / w->hz;
        if (us > 0) {
            b.pkt_tokens = std::min(pkt_cap, b.pkt_tokens + us * f.rate_pps * policer_scale / 1000000);
            b.byte_tokens = std::min(byte_cap, b.byte_tokens + us * f.rate_bytes * policer_scale / 1000000);
            b.last_tsc += us * w->hz / 1000000;
        }
    }
    const uint64_t need_b = uint64_t{bytes} * policer_scale;
    if (b.pkt_tokens < policer_scale || b.byte_tokens < need_b) return false;
    b.pkt_tokens -= policer_scale;
    b.byte_tokens -= need_b;
    return true;
}

// The drop reason of an RTP stream verdict other than accept/resync.
constexpr drop_reason implausible_reason(rtp_verdict v) noexcept {
    switch (v) {
    case rtp_verdict::ts_jump: return drop_reason::rtp_ts_jump;
    case rtp_verdict::duplicate: return drop_reason::rtp_duplicate;
    case rtp_verdict::ssrc_change: return drop_reason::rtp_ssrc_change;
    default: return drop_reason::rtp_seq_jump;
    }
}

// The drop reason of an SRTP verdict other than ok.
constexpr drop_reason srtp_reason(srtp::verdict v) noexcept {
    switch (v) {
    case srtp::verdict::truncated: return drop_reason::srtp_truncated;
    case srtp::verdict::unknown_mki: return drop_reason::srtp_mki;
    case srtp::verdict::replay: return drop_reason::srtp_replay;
    default: return drop_reason::srtp_auth;
    }
}

// A packet of a registered flow `f`, either family: the UDP checksum
// after the SSRC when `check_udp` (IPv4; rtp_input6 checks IPv6's before it
// calls this), then one path for both. Returns true when the mbuf was
// handed on (the mixer owns it), false when the caller frees it.
bool rtp_flow_input(worker* w, const dp_snapshot& s, rte_mbuf* m, const uint8_t* d, const parse_result& pr,
                    const dp_flow* f, bool check_udp, uint64_t now) noexcept {
    lcore_counters* c = w->c;
    // The slot is always in range (the control plane allocates slots below
    // limits.max_speakers); a flow outside it would be neither checked nor
    // policed, so refuse it rather than trust it.
    if (f->speaker_index >= w->sh->nb_policers) [[unlikely]] {
        ++c->drop(drop_reason::unknown_flow);
        return false;
    }
    // The speaker's entry (bucket, stream, counts) and its session's counts:
    // this lcore's own (one writer each, dp_snapshot.h / dp_shared.h).
    dp_policer& e = policer_of(*w->sh, w->cfg.rx_queue, f->speaker_index);
    const dp_session* sess = s.sessions[f->session_index];
    dp_speaker_counts* sc = session_counts_for(*w->sh, w->cfg.rx_queue, sess->index, sess->generation);
    dp_speaker_counts scratch;
    if (sc == nullptr) [[unlikely]]
        sc = &scratch;
    if (f->has_ssrc && f->ssrc_be != pr.ssrc_be) {
        ++c->drop(drop_reason::ssrc_mismatch);
        ++e.counts.auth_drops;
        ++sc->auth_drops;
        return false;
    }
    if (check_udp && !udp_checksum_ok(m, d, pr)) {
        ++c->drop(drop_reason::udp_checksum);
        return false;
    }
    // The fan-out builds every replica from a fixed-size template (one
    // 1536-byte frame, replica.h); a larger packet cannot be forwarded, so it
    // is dropped here, counted, before it moves the stream or the bucket
    // (with room for the SRTP tag and MKI when the session protects, and
    // for the trunk key's when its trunk listeners' copy is protected too).
    const unsigned trailers = (sess->srtp_egress ? srtp::max_trailer : 0) +
                              (sess->trunk != nullptr && sess->trunk->srtp_egress ? srtp::max_trailer : 0);
    if (pr.rtp_len > max_frame_bytes - wire::l2l3l4 - trailers) [[unlikely]] {
        ++c->drop(drop_reason::rtp_too_large);
        return false;
    }
    uint8_t* rtp = rte_pktmbuf_mtod_offset(m, uint8_t*, pr.rtp_off);
    uint16_t rtp_len = pr.rtp_len;
    // SRTP (docs/srtp.md): the cheap checks first (length, MKI, replay
    // window: no MAC), then the plausibility of the sequence number on a
    // copy of the stream state, then one MAC; only an authentic packet moves
    // any state or reaches the policer, so a forger spends neither the
    // speaker's bucket nor its stream.
    const srtp::keyset* ks = nullptr;
    srtp::rx_plan plan;
    if (f->srtp_in) {
        ks = f->speaker_index < s.nb_speaker_keys ? s.speaker_keys[f->speaker_index] : nullptr;
        if (ks == nullptr) {
            ++c->drop(drop_reason::srtp_no_key);
            return false;
        }
        const srtp::verdict sv = srtp::rx_check(*ks, e.srtp_rx, rtp, rtp_len, pr.payload_off - pr.rtp_off, &plan);
        if (sv != srtp::verdict::ok) {
            ++c->drop(srtp_reason(sv));
            ++e.counts.auth_drops;
            ++sc->auth_drops;
            return false;
        }
    }
    // Before the policer: a blind spoofer's guesses must not spend the real
    // speaker's bucket (rtp_track.h). With SRTP the verdict is taken on a
    // copy: a rejected packet may move only the candidate-stream fields (as
    // without SRTP; a candidate takes over only through an authenticated
    // packet), an accepted one commits after its MAC.
    dp_rtp_track track = e.rtp;
    const rtp_verdict rv = rtp_track_check(track, wire::load_be16(rtp + 2), wire::load_be32(rtp + 4), pr.ssrc_be,
                                           now, w->hz, f->rate_pps);
    if (rv != rtp_verdict::accept && rv != rtp_verdict::resync) {
        e.rtp = track;
        ++c->drop(implausible_reason(rv));
        ++e.counts.auth_drops;
        ++sc->auth_drops;
        return false;
    }
    if (ks != nullptr) {
        if (srtp::rx_unprotect(*ks, w->cfg.rx_queue, rtp, plan) != srtp::verdict::ok) {
            ++c->drop(drop_reason::srtp_auth);
            ++e.counts.auth_drops;
            ++sc->auth_drops;
            return false;
        }
        srtp::rx_commit(e.srtp_rx, plan, pr.ssrc_be);
        ++c->srtp_authenticated;
        rtp_len = static_cast<uint16_t>(plan.hdr_len + plan.body_len);   // plaintext: tag and MKI gone
    }
    e.rtp = track;
    if (rv == rtp_verdict::resync) ++c->rtp_resyncs;
    if (!police(w, e, *f, rtp_len, now)) {
        ++c->drop(drop_reason::policed);
        ++e.counts.policed;
        ++sc->policed;
        return false;
    }
    // ST 2022-7 (dedup.h, docs/fleet.md): a trunk flow's packet is claimed
    // last, once every per-flow check passed, so each origin's flow keeps
    // its own stream state and bucket whole (when an origin goes, the other
    // flow is already in step) and a copy that fails a check never takes
    // the place of the one that would pass.
    if (f->dedup && sess->dedup != nullptr && !dedup_first(*sess->dedup, pr.ssrc_be, wire::load_be16(rtp + 2))) {
        ++c->drop(drop_reason::trunk_duplicate);
        return false;
    }
    ++c->rtp_in;
    ++e.counts.packets;
    e.counts.bytes += pr.rtp_len;
    ++sc->packets;
    sc->bytes += pr.rtp_len;
    // From here on the mbuf is a speaker-packet message: RTP only.
    rte_pktmbuf_adj(m, pr.rtp_off);
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - rtp_len));
    set_message_session(m, f->session_index, sess->generation);
    if (sess->mode == session_mode_mix) {
        // The mixer owns it now; its output comes back as messages.
        if (w->sh->mixer_ring == nullptr || rte_ring_enqueue(w->sh->mixer_ring, m) != 0) {
            ++c->drop(drop_reason::mixer_ring_full);
            return false;
        }
        return true;
    }
    bool record = sess->record != 0;
    rte_mbuf* fan = m;
    // The session's fleet trunk listeners (dp_session::trunk): on a relay
    // whose trunks are authenticated their copy is protected with the trunk
    // key, at an egress index claimed as the listeners' is under srtp.egress
    // (the same index when both protect: two keys, one numbering).
    const dp_session* twin = sess->trunk;
    const bool trunk_protect = twin != nullptr && twin->srtp_egress != 0;
    uint64_t index = no_egress_index;
    if (sess->srtp_egress || trunk_protect) {
        // Encrypt once (dp_srtp.h): the listeners' copy is protected here,
        // the recorder keeps the plaintext. The index is claimed from the
        // session's high-water mark for the SSRC (never one used before,
        // whatever the speaker's numbers do), proposed from the speaker's
        // own: the one just authenticated, else estimated from its sequence
        // number against what this entry saw last.
        if (record && sess->srtp_egress) {
            // The recording keeps every accepted packet, also one the
            // listeners do not get (egress/srtp_late below).
            rte_mbuf_refcnt_update(m, 1);   // publish_record consumes one reference
            publish_record(*w->sh, m, c);
            record = false;
        }
        const uint16_t seq = wire::load_be16(rtp + 2);
        const bool same = e.srtp_tx.started != 0 && e.srtp_tx.ssrc_be == pr.ssrc_be;
        bool restart = rv == rtp_verdict::resync;
        uint64_t in_index;
        if (ks != nullptr) {
            in_index = plan.index;
            restart = restart || plan.fresh != 0;
        } else if (restart || !same || !srtp::estimate_index(e.srtp_tx.in_top, true, seq, &in_index)) {
            in_index = seq;   // a new stream of the speaker's: its ROC 0
            restart = true;
        }
        index = claim_egress_index(*sess, e.srtp_tx, in_index, pr.ssrc_be, restart, c);
        // Without an index neither copy that needs one is sent; a plain
        // session's listeners still get theirs.
        if (index == no_egress_index && sess->srtp_egress) return false;
        if (sess->srtp_egress) {
            fan = protect_message(*sess, m, index, w->cfg.rx_queue, sess->record != 0, w->cfg.pool, c);
            if (fan == nullptr) return false;
        }
    }
    const int skip = w->cfg.do_fanout ? w->cfg.fanout_shard : -1;
    if (twin != nullptr && (!trunk_protect || index != no_egress_index)) {
        // Trunks first: each carries a whole edge.
        if (rte_mbuf* t = trunk_message(*twin, fan, index, w->cfg.rx_queue, w->cfg.pool, c)) {
            if (w->cfg.do_fanout) fanout_start_job(w, *twin, rte_pktmbuf_mtod(t, const uint8_t*), t->data_len, now);
            publish_message(*w->sh, s, t, false, c, skip);
        }
    }
    if (w->cfg.do_fanout)
        fanout_start_job(w, *sess, rte_pktmbuf_mtod(fan, const uint8_t*), fan->data_len, now);
    if (fan != m) {
        // A copy: the caller frees m; publish_message consumes the copy.
        publish_message(*w->sh, s, fan, false, c, skip);
        return false;
    }
    rte_mbuf_refcnt_update(m, 1);   // publish_message consumes one reference
    publish_message(*w->sh, s, m, record, c, skip);
    return false;
}

// An IPv4 speaker's packet: its flow by (source, source port, port). `f`:
// the flow rx_port's first stage found for the packet's key, nullptr when
// that stage did not key it (then it is looked up here).
bool rtp_input(worker* w, const dp_snapshot& s, rte_mbuf* m, const uint8_t* d, const parse_result& pr,
               uint64_t now, const dp_flow* f) noexcept {
    if (f == nullptr) f = find_flow(s, flow_key(pr.src_ip_be, pr.src_port_be, pr.dst_port_be));
    if (f == nullptr) {
        ++w->c->drop(drop_reason::unknown_flow);
        return false;
    }
    return rtp_flow_input(w, s, m, d, pr, f, true, now);
}

// An IPv6 speaker's packet: its flow by the whole key (source address,
// source port, port; dp_flow6), then the same path as IPv4's: SSRC, SRTP,
// plausibility, policer, the same message and the same fan-out, so its
// replicas carry the RTP bytes IPv4 ones do.
//
// An unknown flow is dropped by its key alone, before any checksum: a
// flood of spoofed 1500-byte datagrams to session ports must cost what it
// costs over IPv4, not a sum over every byte (parse_udp6 refused a zero
// checksum and nothing else). A registered flow's checksum comes right
// after the lookup, before the SSRC: IPv6 has no header checksum, so it is
// the only check of the addresses, and a packet whose source was damaged
// into a registered key must be refused as damaged, not charged to that
// speaker (ssrc_mismatch counts in its auth_drops).
bool rtp_input6(worker* w, const dp_snapshot& s, rte_mbuf* m, const uint8_t* d, const parse_result& pr,
                uint64_t now) noexcept {
    const dp_flow* f = find_flow6(s, d + pr.l3_off + 8, pr.src_port_be, pr.dst_port_be);
    if (f == nullptr) {
        ++w->c->drop(drop_reason::unknown_flow);
        return false;
    }
    if (!udp_checksum_ok(m, d, pr)) {
        ++w->c->drop(drop_reason::udp_checksum);
        return false;
    }
    return rtp_flow_input(w, s, m, d, pr, f, false, now);
}


// The first stage of a burst: each IPv4 UDP packet's flow by its key alone
// (see parse.h). A packet of no flow is dropped here, counted, and leaves
// the burst; the others stay in `pkts` (compacted, in order), each with its
// flow in `flows` (nullptr: not a speaker candidate, parse_packet decides).
// For the flows found, what their packets will touch is prefetched in
// stages: the policer entry, the session's counts and pointer, then the
// session, then (on a fan-out lcore) its lists' headers. Each stage issues
// its loads for the whole burst before the next waits on any, so a burst
// of packets of different sessions (a relay with thousands: none of their
// state stays cached between two packets of one, with the listener records
// streaming through) waits about one miss per stage, not one per packet
// and stage (workload_harness mix: rtp_flow_input was 20 % of the lcore,
// stalled on the session). The flow table's slots are the first stage
// (fourteenth round); the fourth round's version of it, which cost the
// unknown-flow drop path 40 instructions per frame, was not kept.
// Flow table slots from which flow_stage prefetches a burst's slots first:
// 8 192 slots of 32 bytes (256 KiB, a core's L2 or less) and up, that is
// from about 4 096 speakers (the table is at most half full).
inline constexpr uint32_t flow_stage_min_slots = 8192;

uint16_t flow_stage(worker* w, const dp_snapshot* s, rte_mbuf** pkts, uint16_t n, const port_identity& id,
                    const dp_flow** flows, rte_mbuf** to_free, unsigned& nb_free) noexcept {
    lcore_counters* c = w->c;
    dp_shared& sh = *w->sh;
    const uint32_t q = w->cfg.rx_queue;
    // A big flow table (thousands of speakers: megabytes) does not stay in
    // the cache, and a burst's packets are of different speakers, so each
    // one's slot is a miss. Then the keys and slots of the whole burst come
    // first, the slots prefetched, so the misses overlap instead of coming
    // one per packet (docs/performance.md, fourteenth round: the Zipf mix,
    // 20 063 speakers, +4 %). A small table is a cache hit: the extra pass
    // would only cost the drop path (~9 % of an unknown-flow flood's rate),
    // so there each key is taken as its packet comes. Key 0 is no key: a
    // flow's key has a port in the relay's range, never 0.
    const bool staged = s != nullptr && n > 1 && s->flow_mask + 1 >= flow_stage_min_slots;
    uint64_t keys[max_burst];
    uint32_t slots[max_burst];
    if (staged)
        for (uint16_t i = 0; i < n; ++i) {
            const rte_mbuf* m = pkts[i];
            keys[i] = 0;
            slots[i] = 0;
            if (m->nb_segs == 1 && ingress_flow_key(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, id, &keys[i])) {
                slots[i] = flow_hash(keys[i]) & s->flow_mask;
                rte_prefetch0(&s->flows[slots[i]]);
            }
        }
    uint16_t k = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        c->rx_bytes += m->pkt_len;
        uint64_t key = 0;
        uint32_t slot = 0;
        if (staged) {
            key = keys[i];
            slot = slots[i];
        } else if (s != nullptr && m->nb_segs == 1 &&
                   ingress_flow_key(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, id, &key)) {
            slot = flow_hash(key) & s->flow_mask;
        }
        const dp_flow* f = nullptr;
        if (key != 0) {
            f = find_flow_at(*s, key, slot);
            if (f == nullptr) {
                ++c->drop(drop_reason::unknown_flow);
                to_free[nb_free++] = m;
                continue;
            }
            if (f->speaker_index < sh.nb_policers) {
                // The RTP stream, the bucket and the counts: the entry's
                // first two lines (dp_policer); its SRTP state on the
                // third only for a flow that uses it (dp_flow::srtp_line).
                const dp_policer& e = policer_of(sh, q, f->speaker_index);
                rte_prefetch0(&e.rtp);
                rte_prefetch0(&e.last_tsc);
                if (f->srtp_line) rte_prefetch0(&e.srtp_rx);
            }
            if (f->session_index < s->nb_sessions) rte_prefetch0(&s->sessions[f->session_index]);
            if (sh.session_counts != nullptr && f->session_index < sh.nb_session_counts)
                rte_prefetch0(&sh.session_counts[size_t{q} * sh.nb_session_counts + f->session_index]);
        }
        pkts[k] = m;
        flows[k++] = f;
    }
    if (k < 2) return k;   // nothing to overlap: the packet's own loads come soon enough
    const int shard = w->cfg.do_fanout ? w->cfg.fanout_shard : -1;
    for (uint16_t i = 0; i < k; ++i) {
        if (flows[i] == nullptr || flows[i]->session_index >= s->nb_sessions) continue;
        const dp_session* sess = s->sessions[flows[i]->session_index];
        rte_prefetch0(sess);
        // The shard's list pointers, both families: one line (dp_shard_lists).
        if (shard >= 0) rte_prefetch0(&sess->shards[shard]);
    }
    if (shard < 0) return k;
    for (uint16_t i = 0; i < k; ++i)
        if (flows[i] != nullptr && flows[i]->session_index < s->nb_sessions)
            fanout_prefetch_lists(w, *s->sessions[flows[i]->session_index]);
    return k;
}

unsigned rx_port(worker* w, const dp_snapshot* s, uint16_t port, uint64_t now) noexcept {
    rte_mbuf* pkts[max_burst];
    const uint16_t nb_rx = rte_eth_rx_burst(w->sh->ethdev[port], w->cfg.rx_queue, pkts, w->cfg.burst);
    if (nb_rx == 0) return 0;
    // Before anything reads or rewrites the packets (replies are built in place).
    if (capture_wanted(w, capture_rx_bit(port))) [[unlikely]]
        capture_burst(w, port, pkts, nb_rx, capture_dir::rx, w->cfg.rx_queue);
    lcore_counters* c = w->c;
    c->rx_packets += nb_rx;
    c->port_rx[port] += nb_rx;
    rte_mbuf* to_free[max_burst];
    unsigned nb_free = 0;
    const port_identity& id = w->sh->ports[port];
    // No software prefetch of packet headers: on this machine (net_null, warm
    // mempool cache) prefetching 1 or 8 ahead measured slower than none
    // (drop harness 39.5 -> see README); a NIC with DDIO places received
    // headers in the cache as well.
    //
    // First stage: flows, unknown ones dropped (flow_stage). The flow found
    // there is the one rtp_input uses.
    const dp_flow* flows[max_burst];
    const uint16_t nb = flow_stage(w, s, pkts, nb_rx, id, flows, to_free, nb_free);
    for (uint16_t i = 0; i < nb; ++i) {
        rte_mbuf* m = pkts[i];
        // A frame in more than one segment (only possible if a PMD scatters:
        // profiles refuse an MTU one mbuf cannot hold) is dropped before any
        // parsing. Parsed on its first segment it could be answered: an ARP
        // or ICMP reply built in place on a chain would leave with its tail
        // and break the TX path's one-segment fast-free assumption.
        if (m->nb_segs != 1) [[unlikely]] {
            ++c->drop(drop_reason::multi_segment);
            to_free[nb_free++] = m;
            continue;
        }
        const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
        const dp_flow* flow = flows[i];
        const parse_result pr = parse_packet(d, m->data_len, id);
        bool consumed = false;
        switch (pr.kind) {
        case pkt_kind::rtp:
            if (s == nullptr)
                ++c->drop(drop_reason::unknown_flow);
            else
                consumed = rtp_input(w, *s, m, d, pr, now, flow);
            break;
        case pkt_kind::arp:
            consumed = arp_input(w, s, m, port, pr, now);
            break;
        case pkt_kind::icmp_echo:
            consumed = icmp_input(w, m, port, pr, now);
            break;
        case pkt_kind::stun:
        case pkt_kind::stun6:   // validated to the UDP header; its checksum is the join stage's (join_flush)
            consumed = join_input(w, s, m, port, pr, now);
            break;
        case pkt_kind::drop:
            ++c->drops[static_cast<unsigned>(pr.reason)];
            break;
        case pkt_kind::rtp6:
            if (s == nullptr)
                ++c->drop(drop_reason::unknown_flow);
            else
                consumed = rtp_input6(w, *s, m, d, pr, now);
            break;
        case pkt_kind::icmp6_echo:
            consumed = icmp6_input(w, m, port, pr, now);
            break;
        case pkt_kind::nd_ns:
            consumed = nd_ns_input(w, m, port, pr, now);
            break;
        case pkt_kind::nd_na:
            consumed = nd_na_input(w, s, m, port, pr, now);
            break;
        }
        if (!consumed) to_free[nb_free++] = m;
    }
    if (nb_free > 0) free_rx_bulk(w->cfg.pool, to_free, nb_free);
    join_flush(w, s);   // the join requests of this burst, together (join.h)
    return nb_rx;
}

}  // namespace

// RX comes first: while a port's queue hands out full bursts, up to
// rx_bursts_per_poll of them are taken in one iteration, so a backlog (a
// burst of talk, an iteration that ran long) drains within a few
// iterations instead of at one burst per ~1 024 replicas of fan-out. Every
// speaker packet must reach the recorder and its stream's state even when
// the fan-out is behind (that is what deadline misses and the overload
// controller are for), and a packet waiting in the RX ring is latency for
// every listener of its session. Bounded, so a flood still leaves the
// fan-out most of each iteration (an unknown-flow drop is ~20 ns).
inline constexpr unsigned rx_bursts_per_poll = 4;

unsigned ingress_poll(worker* w, const dp_snapshot* s, uint64_t now) noexcept {
    unsigned work = 0;
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
        for (unsigned b = 0; b < rx_bursts_per_poll; ++b) {
            const unsigned n = rx_port(w, s, p, now);
            work += n;
            if (n < w->cfg.burst) break;
        }
    return work;
}

}  // namespace stentor::dp
