// ST 2022-7 style first-copy selection on an edge (docs/fleet.md, "Origin
// protection"): the table is dp_dedup (stentor/dp_snapshot.h), one per
// session fed by trunk flows. Pure over the table and the packet's fields:
// the lcore (ingress.cc), the integration tests and bench share it.
//
// Why a tag table with one atomic exchange and not the 64-bit bitmap of
// rtp_track.h: the two origins' flows of a session may land on two RX
// queues (RSS hashes the source address), so the window has two writers.
// A bitmap and a highest sequence number move together and would need a
// lock or a CAS loop; a slot per sequence number (mod 256) holding the tag
// of the packet that took it needs one exchange, and the exchange's old
// value says who was first. Steering both flows to one queue with rte_flow
// would keep one writer, but not every PMD has it (net_af_packet, net_ring,
// the tap and veth set-ups this project tests on do not), so the table works
// everywhere and costs one locked instruction per accepted trunk packet, on
// a line that the two lcores share only at the stream's rate (50 packets/s).
#pragma once

#include <atomic>
#include <cstdint>

#include "stentor/dp_snapshot.h"

namespace stentor::dp {

// (SSRC, 1, seq): never 0, so a zeroed slot matches nothing.
constexpr uint64_t dedup_tag(uint32_t ssrc_be, uint16_t seq) noexcept {
    return (uint64_t{ssrc_be} << 32) | (uint64_t{1} << 16) | seq;
}

constexpr uint32_t dedup_slot(uint32_t ssrc_be, uint16_t seq) noexcept {
    // The SSRC's bits rotate where a stream starts in the table, so two
    // streams of one session (two speakers) do not walk the same slots in step.
    return (seq ^ ssrc_be ^ (ssrc_be >> 16)) & (dedup_window - 1);
}

// True for the first copy of (ssrc, seq) (the caller forwards it), false for
// a later one. `seq` in host order, `ssrc_be` as received. A duplicate costs
// one load; a first copy one exchange (relaxed: the tag itself is the only
// data the lcores share).
inline bool dedup_first(dp_dedup& d, uint32_t ssrc_be, uint16_t seq) noexcept {
    const uint64_t tag = dedup_tag(ssrc_be, seq);
    std::atomic<uint64_t>& s = d.slot[dedup_slot(ssrc_be, seq)];
    if (s.load(std::memory_order_relaxed) == tag) return false;
    return s.exchange(tag, std::memory_order_relaxed) != tag;
}

}  // namespace stentor::dp
