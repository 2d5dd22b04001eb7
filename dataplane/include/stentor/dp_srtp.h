// Encrypt once (docs/srtp.md): a session with srtp_egress protects each
// speaker packet (forward) or each mixed packet (mix) once, before fan-out,
// with its active session key; every replica then copies the ciphertext, as
// it copied the plaintext before (the RTP header, SSRC and sequence number
// are the same for every listener, so the ciphertext is too). The recorder
// and the mixer keep the plaintext.
//
// Who protects: the RX lcore that accepted the speaker packet (its crypto
// user is its RX queue; the stream state is the speaker's dp_policer entry,
// srtp_tx), and the mixer thread for the mix (user nb_rx_queues; its
// session's own stream state).
#pragma once

#include <cstring>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "stentor/dp_counters.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_snapshot.h"
#include "stentor/srtp.h"

namespace stentor::dp {

// The message `m` (one RTP packet, tagged) protected for the listeners:
// in place when `copy` is false and the mbuf has the tailroom, else in a new
// mbuf from `pool` with the same tag (the caller keeps `m`: the recorder
// wants the plaintext). nullptr when nothing can be sent (no key, no mbuf,
// cipher failure: counted; the caller drops `m`, which a failure in place
// may have left half-written). One SRTP protect per packet, no allocation but the
// mempool get.
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

}  // namespace stentor::dp
