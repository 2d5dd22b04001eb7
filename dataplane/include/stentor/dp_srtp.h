// Encrypt once (docs/srtp.md): a session with srtp_egress protects each
// speaker packet (forward) or each mixed packet (mix) once, before fan-out,
// with its active session key; every replica then copies the ciphertext, as
// it copied the plaintext before (the RTP header, SSRC and sequence number
// are the same for every listener, so the ciphertext is too). The recorder
// and the mixer keep the plaintext.
//
// Who protects: the RX lcore that accepted the speaker packet (its crypto
// user is its RX queue; its proposal for the index is the speaker's
// dp_policer entry, srtp_tx), and the mixer thread for the mix (user
// nb_rx_queues; its session's own tx_stream). The index itself is claimed
// from the session's dp_srtp_egress (egress_index below), which no two
// packets of one SSRC ever get alike.
#pragma once

#include <atomic>
#include <cstring>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "stentor/dp_counters.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_snapshot.h"
#include "stentor/srtp.h"

namespace stentor::dp {

inline constexpr uint64_t no_egress_index = ~uint64_t{0};
// egress_index's refusal of an index the journal has not reserved yet
// (dp_srtp_egress_slot::limit); claim_egress_index turns it into
// no_egress_index after counting it.
inline constexpr uint64_t unreserved_egress_index = ~uint64_t{0} - 1;

// The slot of `ssrc_be` in the session's table, taken if the SSRC has none
// yet; nullptr when every slot belongs to another SSRC. A slot is never
// given back while the session lives (its high-water mark is what keeps
// the SSRC's indices unique), so a lookup is a load per probe.
inline dp_srtp_egress_slot* egress_slot(dp_srtp_egress& t, uint32_t ssrc_be) noexcept {
    const uint64_t tag = uint64_t{1} << 32 | ssrc_be;
    const uint32_t h = (ssrc_be ^ ssrc_be >> 16) * 0x9e3779b1u >> 28;   // 4 bits: srtp_egress_slots
    static_assert(srtp_egress_slots == 16);
    for (uint32_t i = 0; i < srtp_egress_slots; ++i) {
        dp_srtp_egress_slot& s = t.slot[(h + i) & (srtp_egress_slots - 1)];
        uint64_t cur = s.tag.load(std::memory_order_acquire);
        if (cur == 0 && s.tag.compare_exchange_strong(cur, tag, std::memory_order_acq_rel)) return &s;
        if (cur == tag) return &s;
    }
    return nullptr;
}

// The egress index of one packet of `ssrc_be` (docs/srtp.md "Egress index"),
// claimed so that no index of the SSRC is ever handed out twice in the
// session's life: the index must be at or above the slot's `next`, and
// moving `next` past it is one CAS, whoever else (another RX lcore, another
// entry of the speaker, the mixer) protects for the SSRC.
//  - `in_index`: the speaker's extended index (the one authenticated, or
//    estimated from its sequence number by the caller);
//  - `restart`: the speaker's stream started again (a resync, a fresh SRTP
//    stream): its numbers say nothing about what was sent before.
// The proposal is in_index + the entry's offset (the speaker's own numbers
// while nothing went back: the same on every origin of a fleet). If it is
// below `next`: a restart, a fresh entry, or a proposal far behind (another
// entry of the SSRC ran ahead) continues at `next`, so listeners see the
// numbers go on by one; a packet a little behind (reordered, < 64) is
// refused (no_egress_index: the caller counts egress/srtp_late) rather
// than given an index out of its order. One CAS per packet: lock-free,
// no allocation.
inline uint64_t egress_index(dp_srtp_egress_slot& slot, srtp::tx_stream& st, uint64_t in_index, uint32_t ssrc_be,
                             bool restart) noexcept {
    const bool fresh = st.started == 0 || st.ssrc_be != ssrc_be;
    uint64_t next = slot.next.load(std::memory_order_relaxed);
    for (;;) {
        uint64_t idx = (in_index + st.offset) & srtp::index_mask;
        if (fresh || restart) {
            // A slot never used starts at the speaker's own numbers (offset
            // 0); one with a past continues above it.
            idx = next == 0 ? in_index : next;
        } else if (idx < next) {
            if (next - idx <= srtp::replay_window) return no_egress_index;
            idx = next;
        }
        if (idx > srtp::index_mask) [[unlikely]]
            return no_egress_index;   // 2^48 packets: the key must change (RFC 3711 9.2)
        if (idx >= slot.limit.load(std::memory_order_acquire)) [[unlikely]] {
            // Not reserved in the journal yet: a restart could not know it
            // was used. The control plane reserves from the first proposal.
            if (next == 0) slot.want.store(idx + 1, std::memory_order_relaxed);
            return unreserved_egress_index;
        }
        if (slot.next.compare_exchange_weak(next, idx + 1, std::memory_order_relaxed)) {
            st.offset = (idx - in_index) & srtp::index_mask;
            st.ssrc_be = ssrc_be;
            st.started = 1;
            return idx;
        }
    }
}

// One packet's egress index for a session that protects (its listeners'
// copy under srtp.egress, its trunk listeners' under the trunk key): the
// SSRC's slot in the session's table, the claim (egress_index), and the
// sender's highest own index moved on. no_egress_index when nothing may be
// protected, counted (egress/srtp_streams_full: no slot for the SSRC;
// egress/srtp_late: behind the mark). Shared by the RX lcores and the mixer.
inline uint64_t claim_egress_index(const dp_session& sess, srtp::tx_stream& st, uint64_t in_index, uint32_t ssrc_be,
                                   bool restart, lcore_counters* c) noexcept {
    dp_srtp_egress_slot* slot = sess.srtp_streams != nullptr ? egress_slot(*sess.srtp_streams, ssrc_be) : nullptr;
    const uint64_t index = slot != nullptr ? egress_index(*slot, st, in_index, ssrc_be, restart) : no_egress_index;
    if (index >= unreserved_egress_index) [[unlikely]] {
        ++c->drop(slot == nullptr                      ? drop_reason::srtp_egress_streams
                  : index == unreserved_egress_index ? drop_reason::srtp_egress_unreserved
                                                     : drop_reason::srtp_egress_late);
        return no_egress_index;
    }
    if (restart || in_index > st.in_top)
        st.in_top = in_index;
    return index;
}

// The message `m` (one RTP packet, tagged) protected for the listeners:
// in place when `copy` is false and the mbuf has the tailroom, else in a new
// mbuf from `pool` with the same tag (the caller keeps `m`: the recorder
// wants the plaintext). nullptr when nothing can be sent (no key, no mbuf,
// cipher failure: counted; the caller drops `m`, which a failure in place
// may have left half-written). One SRTP protect per packet, no allocation but the
// mempool get. `index` is the claimed egress index (egress_index): the
// copy's RTP sequence number is rewritten to its low 16 bits, so what the
// listeners estimate the ROC from is the relay's numbering, not the speaker's.
inline rte_mbuf* protect_message(const dp_session& sess, rte_mbuf* m, uint64_t index, unsigned user, bool copy,
                                 rte_mempool* pool, lcore_counters* c) noexcept {
    const srtp::keyset* ks = sess.srtp_tx;
    if (ks == nullptr) [[unlikely]] {
        ++c->drop(drop_reason::srtp_egress_no_key);
        return nullptr;
    }
    const uint32_t len = m->data_len;
    rte_mbuf* out = m;
    if (copy || rte_pktmbuf_tailroom(m) < srtp::max_trailer) {
        out = rte_pktmbuf_alloc(pool);
        if (out == nullptr) [[unlikely]] {
            ++c->drop(drop_reason::no_mbuf);
            return nullptr;
        }
        std::memcpy(rte_pktmbuf_mtod(out, uint8_t*), rte_pktmbuf_mtod(m, const uint8_t*), len);
        out->hash = m->hash;   // the message's session tag
    }
    uint8_t* d = rte_pktmbuf_mtod(out, uint8_t*);
    d[2] = static_cast<uint8_t>(index >> 8);
    d[3] = static_cast<uint8_t>(index);
    const uint32_t hdr = srtp::rtp_header_len(d, len);
    const uint32_t n = hdr != 0 ? srtp::protect(*ks, user, index, d, len, hdr) : 0;
    if (n == 0) [[unlikely]] {
        ++c->drop(drop_reason::srtp_protect_failed);
        if (out != m) rte_pktmbuf_free(out);
        return nullptr;
    }
    out->data_len = static_cast<uint16_t>(n);
    out->pkt_len = n;
    ++c->srtp_protected;
    return out;
}

// The trunk twin's copy of a message (docs/fleet.md "Trunk
// authentication"): `fan`, what the session's listeners get (plaintext, or
// the session key's ciphertext), copied into a new mbuf tagged with the
// twin (dp_session::trunk) and, on a relay whose trunks are authenticated
// (twin.srtp_egress), protected once with the trunk key at `index`, the
// egress index claimed for the packet (its sequence number rewritten to it,
// as the listeners' copy is under srtp.egress): one copy for every edge of
// the session, whatever their number. nullptr when nothing can be sent (no
// trunk key: egress/trunk_no_key; no mbuf; cipher failure: counted).
inline rte_mbuf* trunk_message(const dp_session& twin, rte_mbuf* fan, uint64_t index, unsigned user,
                               rte_mempool* pool, lcore_counters* c) noexcept {
    rte_mbuf* out;
    if (twin.srtp_egress) {
        if (twin.srtp_tx == nullptr) [[unlikely]] {
            ++c->drop(drop_reason::trunk_no_key);
            return nullptr;
        }
        out = protect_message(twin, fan, index, user, true, pool, c);
        if (out == nullptr) [[unlikely]]
            return nullptr;
    } else {
        out = rte_pktmbuf_alloc(pool);
        if (out == nullptr) [[unlikely]] {
            ++c->drop(drop_reason::no_mbuf);
            return nullptr;
        }
        std::memcpy(rte_pktmbuf_mtod(out, uint8_t*), rte_pktmbuf_mtod(fan, const uint8_t*), fan->data_len);
        out->data_len = fan->data_len;
        out->pkt_len = fan->data_len;
    }
    set_message_session(out, twin.index, twin.generation);
    return out;
}

}  // namespace stentor::dp
