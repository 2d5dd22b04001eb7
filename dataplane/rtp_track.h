// RTP sequence and timestamp plausibility of a registered speaker's packets,
// checked before the policer (issue 10 item 4). Until SRTP authenticates
// speakers (issue 12), anyone who knows a speaker's address, ports and SSRC
// can send packets the flow lookup accepts. A spoofer who cannot see the
// stream (blind) does not know its current sequence number and timestamp, so
// its packets are far from them; dropping those before the policer keeps them
// from reaching listeners and from spending the real speaker's bucket.
//
// The rule, in the spirit of RFC 3550 A.1 (probation, MAX_DROPOUT,
// MAX_MISORDER) but bounded by the time that passed, because a blind guess
// must land in a window that stays small while the real speaker is live:
//
//  - ahead by d (1..32767): accepted when d <= seq_slack + elapsed * rate_pps
//    (elapsed: since the newest accepted packet arrived; rate_pps: the flow's
//    policer rate, limits.speaker_burst_pct over the stream's) and its timestamp moved forward by at
//    most ts_slack + elapsed at 48 kHz (Opus RTP clock, RFC 7587). Loss,
//    network outages and DTX gaps (timestamps jump by the silent time,
//    sequence numbers stay contiguous) all fit: the window grows with the
//    time that passed. Reordering by up to seq_slack packets fits at once.
//    The timestamp may follow either of the two newest accepted packets:
//    should a guess ever land, the real speaker's next packet still follows
//    the one before it, so the guess costs the speaker one packet (the
//    sequence number it took), not the time until its timestamps catch up.
//  - behind by 0..63 and not accepted yet: accepted (a reordered packet) when
//    its timestamp is within ts_slack of either reference; accepted already:
//    duplicate.
//  - behind by 64..max_late: duplicate (a copy, or too late to be audio).
//  - anything else: seq_jump; a sequence number in the window with an
//    implausible timestamp: ts_jump; another SSRC (speakers registered
//    without one): ssrc_change.
//  - a new stream (a restarted sender, or one that comes back after the
//    window gave up on it): rejected packets are followed as a candidate; a
//    candidate that runs resync_packets consecutive plausible packets while
//    the current stream has been quiet (nothing accepted ahead) for
//    resync_quiet_ms takes over. Random guesses never form a candidate, and a
//    live speaker is never quiet that long, so a blind spoofer cannot take a
//    live stream over; a restarted speaker loses at most resync_quiet_ms.
//  - the first packet of a fresh entry starts the stream.
//
// Pure function over the state and the packet's fields: the lcore, the unit
// tests (tests/unit/test_rtp_track.cc) and docs/security.md share it. Only
// packets of registered flows get here, a few hundred per second per
// speaker: the one division (elapsed TSC to ms) is on nobody's budget.
#pragma once

#include <cstdint>

#include "stentor/dp_snapshot.h"

namespace stentor::dp {

enum class rtp_verdict : uint8_t {
    accept,        // in sequence (or reordered within the window)
    resync,        // accepted: a new stream took over (counted as rtp_resyncs)
    seq_jump,
    ts_jump,
    duplicate,
    ssrc_change,
};

inline constexpr uint32_t rtp_clock_per_ms = 48;             // Opus: 48 kHz always (RFC 7587 4.1)
inline constexpr uint32_t rtp_seq_slack = 8;                 // packets of reordering accepted at once
inline constexpr uint32_t rtp_ts_slack = 1000 * rtp_clock_per_ms;   // 1 s of media: jitter, reordering, frame size
inline constexpr uint32_t rtp_reorder_window = 64;           // bits in dp_rtp_track::seen
inline constexpr uint32_t rtp_max_late = 1024;               // behind more than this is a jump, not a copy
inline constexpr uint32_t rtp_resync_packets = 2;            // RFC 3550's MIN_SEQUENTIAL
inline constexpr uint64_t rtp_resync_quiet_ms = 1000;        // > a DTX keep-alive interval (400 ms)
inline constexpr uint64_t rtp_max_elapsed_ms = 12ull * 3600 * 1000;   // windows stop growing: no overflow

namespace detail {

inline uint64_t elapsed_ms(uint64_t from_tsc, uint64_t now, uint64_t hz) noexcept {
    if (now <= from_tsc) return 0;
    const uint64_t ms = (now - from_tsc) / (hz / 1000 == 0 ? 1 : hz / 1000);
    return ms < rtp_max_elapsed_ms ? ms : rtp_max_elapsed_ms;
}

inline uint32_t seq_window(uint64_t ms, uint32_t rate_pps) noexcept {
    const uint64_t w = rtp_seq_slack + ms * rate_pps / 1000;
    return w < 32767 ? static_cast<uint32_t>(w) : 32767;
}

inline uint32_t ts_window(uint64_t ms) noexcept {
    const uint64_t w = rtp_ts_slack + ms * rtp_clock_per_ms;
    return w < 0x7fffffff ? static_cast<uint32_t>(w) : 0x7fffffff;
}

// Is (seq, ts) the plausible next packet after (from_seq, from_ts), `ms` later?
inline bool follows(uint16_t from_seq, uint32_t from_ts, uint16_t seq, uint32_t ts, uint64_t ms,
                    uint32_t rate_pps) noexcept {
    const int32_t d = static_cast<int16_t>(static_cast<uint16_t>(seq - from_seq));
    const int64_t dt = static_cast<int32_t>(ts - from_ts);
    return d > 0 && static_cast<uint32_t>(d) <= seq_window(ms, rate_pps) && dt >= 0 && dt <= ts_window(ms);
}

// Does `ts` follow the reference (ref_ts at ref_tsc), `ms` later?
inline bool ts_follows(uint32_t ref_ts, uint32_t ts, uint64_t ms) noexcept {
    const int64_t dt = static_cast<int32_t>(ts - ref_ts);
    return dt >= 0 && dt <= ts_window(ms);
}

// Is `ts` near the reference (a reordered packet)?
inline bool ts_near(uint32_t ref_ts, uint32_t ts) noexcept {
    const int64_t dt = static_cast<int32_t>(ts - ref_ts);
    return dt >= -int64_t{rtp_ts_slack} && dt <= int64_t{rtp_ts_slack};
}

inline void start_stream(dp_rtp_track& t, uint16_t seq, uint32_t ts, uint32_t ssrc_be, uint64_t now) noexcept {
    t.last_tsc = now == 0 ? 1 : now;   // 0 means "no stream yet"
    t.prev_tsc = t.last_tsc;
    t.seen = 1;
    t.max_seq = seq;
    t.max_ts = ts;
    t.prev_ts = ts;
    t.ssrc_be = ssrc_be;
    t.cand_count = 0;
}

}  // namespace detail

// `seq` and `ts` in host order; `ssrc_be` as received; `now` and `hz` in TSC
// ticks; `rate_pps` the flow's policer packet rate.
inline rtp_verdict rtp_track_check(dp_rtp_track& t, uint16_t seq, uint32_t ts, uint32_t ssrc_be, uint64_t now,
                                   uint64_t hz, uint32_t rate_pps) noexcept {
    using namespace detail;
    if (t.last_tsc == 0) {
        start_stream(t, seq, ts, ssrc_be, now);
        return rtp_verdict::accept;
    }
    const uint64_t ms = elapsed_ms(t.last_tsc, now, hz);
    rtp_verdict v;
    if (ssrc_be != t.ssrc_be) {
        v = rtp_verdict::ssrc_change;
    } else {
        const int32_t d = static_cast<int16_t>(static_cast<uint16_t>(seq - t.max_seq));
        if (d > 0) {
            if (static_cast<uint32_t>(d) > seq_window(ms, rate_pps)) {
                v = rtp_verdict::seq_jump;
            } else if (!ts_follows(t.max_ts, ts, ms) &&
                       !ts_follows(t.prev_ts, ts, elapsed_ms(t.prev_tsc, now, hz))) {
                v = rtp_verdict::ts_jump;
            } else {
                t.seen = static_cast<uint32_t>(d) >= rtp_reorder_window ? 1 : (t.seen << d) | 1;
                t.prev_ts = t.max_ts;
                t.prev_tsc = t.last_tsc;
                t.max_seq = seq;
                t.max_ts = ts;
                t.last_tsc = now;
                return rtp_verdict::accept;
            }
        } else {
            const uint32_t back = static_cast<uint32_t>(-d);
            if (back < rtp_reorder_window) {
                if ((t.seen >> back) & 1) {
                    v = rtp_verdict::duplicate;
                } else if (!ts_near(t.max_ts, ts) && !ts_near(t.prev_ts, ts)) {
                    v = rtp_verdict::ts_jump;
                } else {
                    t.seen |= uint64_t{1} << back;
                    return rtp_verdict::accept;
                }
            } else {
                v = back <= rtp_max_late ? rtp_verdict::duplicate : rtp_verdict::seq_jump;
            }
        }
    }
    // Rejected: follow it as a possible new stream. A candidate that keeps
    // going is not displaced by packets that do not follow it (a blind flood
    // would otherwise reset it on every guess); one that stopped for four
    // packet intervals (at the stream's nominal rate, rate_pps / 2) is.
    const uint64_t hold_tsc = rate_pps != 0 ? hz * 8 / rate_pps : hz / 10;
    if (t.cand_count != 0 && ssrc_be == t.cand_ssrc_be &&
        follows(t.cand_seq, t.cand_ts, seq, ts, elapsed_ms(t.cand_tsc, now, hz), rate_pps)) {
        ++t.cand_count;
    } else if (t.cand_count == 0 || now - t.cand_tsc > hold_tsc) {
        t.cand_count = 1;
        t.cand_ssrc_be = ssrc_be;
    } else {
        return v;
    }
    t.cand_seq = seq;
    t.cand_ts = ts;
    t.cand_tsc = now;
    if (t.cand_count >= rtp_resync_packets && elapsed_ms(t.last_tsc, now, hz) >= rtp_resync_quiet_ms) {
        start_stream(t, seq, ts, ssrc_be, now);
        return rtp_verdict::resync;
    }
    return v;
}

}  // namespace stentor::dp
