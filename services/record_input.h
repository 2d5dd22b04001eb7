// The recorder's intake: what a speaker-packet message on the record ring
// means for the recordings. Pure over the message and the snapshot the
// recorder loaded for this poll; the recorder decides what to do with it
// (start a recording, open a track, push into the Ogg stream).
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "stentor/dp_snapshot.h"
#include "stentor/rtp.h"

namespace stentor::svc {

enum class record_verdict : uint8_t {
    record,          // a packet of a recorded stream: `out` is filled
    stale,           // its session ended or was replaced while it was queued (dp::message_session_of)
    not_recorded,    // RTP payload not locatable, or in a mix session not the mix itself
};

struct record_packet {
    const dp::dp_session* session = nullptr;
    rtp::view rtp;
    unsigned channels = 0;   // the Opus TOC's stereo flag: OpusHead channels of a new track
};

// `session` is filled for every verdict but stale (the recorder
// starts a recording for a session it sees, even before it can use a packet).
record_verdict read_record_message(const dp::dp_snapshot* snap, const rte_mbuf* m, record_packet& out) noexcept;

}  // namespace stentor::svc
