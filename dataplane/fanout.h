// Fan-out: replicate each speaker packet to this lcore's shard of the
// session's listeners.
//
// Fan-out works on "jobs": one ingress packet to replicate to one shard's
// listeners. A job owns a copy of the egress frame (the template, built once
// per packet and egress port) and a position (tier, slot); it holds no pointer
// into the snapshot across loop iterations, so the lcore can report an RCU
// quiescent state every iteration even while a million-listener packet is
// half done. Jobs are served in slices, round robin, so a small session's
// packet is not stuck behind a huge one (and a job of one slice or less is
// served before any long job's next slice); a job past its deadline is abandoned
// and the listeners it did not reach are counted per tier.
#pragma once

#include <cstdint>

#include "lcore.h"

namespace stentor::dp {

inline bool has_listeners6(const dp_session& sess, uint32_t shard) noexcept {
    bool any = false;
    for (unsigned t = 0; t < max_tiers; ++t) any |= sess.shards[shard].v6[t] != nullptr;
    return any;
}

inline bool has_listeners(const dp_session& sess, uint32_t shard) noexcept {
    bool any = false;
    for (unsigned t = 0; t < max_tiers; ++t) any |= sess.shards[shard].v4[t] != nullptr;
    return any || has_listeners6(sess, shard);
}

// Prefetch what fanout_start_job reads of `sess` beyond the session itself:
// the headers of this lcore's lists (slot counts, first chunk). `sess` must
// be in the cache or on its way (ingress prefetches it a stage earlier).
void fanout_prefetch_lists(const worker* w, const dp_session& sess) noexcept;

// Create a fan-out job for one speaker packet (RTP bytes) of `sess` on this
// lcore's shard; `sess` comes from the snapshot loaded this iteration.
void fanout_start_job(worker* w, const dp_session& sess, const uint8_t* rtp, uint16_t rtp_len,
                      uint64_t now) noexcept;

// Take messages from the lcore's in_ring (no more than there are free jobs)
// and serve the jobs until about `budget` replicas are visited: short jobs
// (one slice or less) first, then long ones a slice each, round robin.
// Returns the work done (messages taken, slots visited, slices run); adds
// the replicas built to *built.
unsigned fanout_poll(worker* w, const dp_snapshot* s, uint64_t now, uint32_t budget, uint32_t* built) noexcept;

void fanout_init(worker* w) noexcept;
void fanout_release(worker* w) noexcept;   // free what is left in the in_ring

}  // namespace stentor::dp
