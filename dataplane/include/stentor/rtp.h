// One view of an RTP header (RFC 3550 5.1) for everything that reads speaker
// packets after the ingress accepted them: the mixer, the recorder, the tools
// and the tests. The ingress validator (dataplane/parse.cc) is stricter and
// counts each failure by reason; this view only locates the fields and the
// codec payload of a message that was already validated, and refuses (false)
// anything it cannot locate, so a service never reads past its buffer.
#pragma once

#include <cstdint>

#include "stentor/wire.h"

namespace stentor::rtp {

inline constexpr uint8_t version = 2;

struct view {
    bool marker = false;
    uint8_t payload_type = 0;
    uint16_t seq = 0;              // host order
    uint32_t ts = 0;               // host order
    uint32_t ssrc = 0;             // host order
    const uint8_t* payload = nullptr;   // codec payload: after CSRCs and extension, before padding
    uint32_t len = 0;
};

// Locates the payload of the RTP packet p[0..n). False when the packet is
// not version 2 or its CSRC list, extension or padding do not fit, or no
// payload byte is left.
inline bool parse(const uint8_t* p, uint32_t n, view& v) noexcept {
    if (n < wire::rtp_hdr_len || (p[0] >> 6) != version) return false;
    uint32_t off = wire::rtp_hdr_len + 4u * (p[0] & 0x0f);
    if (off > n) return false;
    if (p[0] & 0x10) {
        if (off + 4 > n) return false;
        off += 4 + 4u * wire::load_be16(p + off + 2);
    }
    uint32_t end = n;
    if (p[0] & 0x20) {
        if (p[n - 1] == 0 || p[n - 1] > n) return false;
        end -= p[n - 1];
    }
    if (off >= end) return false;
    v.marker = (p[1] & 0x80) != 0;
    v.payload_type = static_cast<uint8_t>(p[1] & 0x7f);
    v.seq = wire::load_be16(p + 2);
    v.ts = wire::load_be32(p + 4);
    v.ssrc = wire::load_be32(p + 8);
    v.payload = p + off;
    v.len = end - off;
    return true;
}

// Sequence numbers and timestamps are compared modulo 2^16 and 2^32.
constexpr int16_t seq_diff(uint16_t a, uint16_t b) noexcept { return static_cast<int16_t>(a - b); }
constexpr int32_t ts_diff(uint32_t a, uint32_t b) noexcept { return static_cast<int32_t>(a - b); }

}  // namespace stentor::rtp
