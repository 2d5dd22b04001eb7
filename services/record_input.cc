#include "record_input.h"

#include "stentor/dp_shared.h"

namespace stentor::svc {

record_verdict read_record_message(const dp::dp_snapshot* snap, const rte_mbuf* m, record_packet& out) noexcept {
    const dp::dp_session* dsp = snap != nullptr ? dp::message_session_of(*snap, m) : nullptr;
    if (dsp == nullptr) return record_verdict::stale;
    const dp::dp_session& ds = *dsp;
    out.session = &ds;
    if (m->nb_segs != 1 || !rtp::parse(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, out.rtp))
        return record_verdict::not_recorded;
    // In mix mode only the mixer's own stream is the recording.
    if (ds.mode == dp::session_mode_mix && out.rtp.ssrc != dp::mix_ssrc(ds.id)) return record_verdict::not_recorded;
    out.channels = (out.rtp.payload[0] & 0x04) ? 2 : 1;   // TOC stereo flag (RFC 6716 3.1)
    return record_verdict::record;
}

}  // namespace stentor::svc
