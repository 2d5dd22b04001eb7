// Packet capture (docs/capture.md): what the control plane publishes to the
// workers so that they copy matching packets into pcapng blocks, and the
// per-lcore counters of that copying.
//
// The workers test `on` once per received burst (for the port's RX bit) and
// once per burst handed to a TX queue (for its TX bit); while no capture
// runs that test is all a capture costs. While one runs, the matching
// packets of the burst are copied (rte_pcapng_copy, from `pool`) and
// enqueued on `ring` (MP/SC) in one go; a full ring or an empty pool skips
// the copy and counts it, it never waits. The capture writer on the control
// plane (control/capture.cc) drains the ring into the file.
//
// Publication: the control plane writes every other field, then stores `on`
// with release order; a worker loads `on` with acquire order and reads the
// fields only when its bit is set. Before it changes the fields again the
// control plane stores 0 and waits for an RCU grace period, so no worker is
// still copying with the old ones. Copies carry the capture's id in
// mbuf->hash.usr, so one left in the ring by an earlier capture is never
// written into a later one.
#pragma once

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "stentor/dp_counters.h"

namespace stentor::dp {

// Bits of dp_capture::on, by port index (profile order).
constexpr uint32_t capture_rx_bit(uint16_t port) noexcept { return 1u << port; }
constexpr uint32_t capture_tx_bit(uint16_t port) noexcept { return 1u << (16 + port); }
static_assert(max_ports <= 16, "capture bits: 16 RX and 16 TX ports");

// _(field, help). Append only: exported as capture/<field>.
#define STENTOR_FOREACH_CAPTURE_LCORE_STAT(_)                                                       \
    _(matched, "packets that matched a running capture (port and direction, session port)")        \
    _(sampled_out, "matched packets a capture's 1-in-N sampling left out")                          \
    _(copied, "copies handed to the capture ring")                                                   \
    _(ring_full, "copies dropped because the capture ring was full: the capture writer fell behind") \
    _(no_mbuf, "copies not made because the capture mempool was empty")

// One per worker (by its thread_id), written only by that worker.
struct alignas(cache_line) capture_lcore_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_CAPTURE_LCORE_STAT, capture_lcore_stats)
};
static_assert(sizeof(capture_lcore_stats) % cache_line == 0);

struct alignas(cache_line) dp_capture {
    // RX and TX bits of the captured ports (capture_rx_bit, capture_tx_bit);
    // 0: no capture.
    std::atomic<uint32_t> on{0};
    uint32_t id = 0;                  // the capture's id, stamped on its copies
    uint16_t udp_dst_be = 0;          // nonzero: only IPv4/UDP frames to this port (a session's ingress)
    uint32_t snaplen = 0;             // bytes of each frame kept
    uint32_t sample = 1;              // copy 1 in N matched packets (per lcore)
    rte_mempool* pool = nullptr;      // the copies' own small pool
    rte_ring* ring = nullptr;         // workers (MP) -> capture writer (SC)
    capture_lcore_stats* lcores = nullptr;   // [nb_lcores], by worker thread_id
    uint32_t nb_lcores = 0;
};
static_assert(alignof(dp_capture) == cache_line);

// The tag of a capture's copies.
inline uint32_t capture_tag(const rte_mbuf* m) noexcept { return m->hash.usr; }

// Whether a frame is IPv4/UDP to destination port `port_be` (network order):
// the filter of a session's ingress capture. Looks at the bytes only (no
// validation: a malformed packet to the session's port is what an operator
// wants to see, and the drop counters say why it was dropped). Pure; the
// unit tests call it.
inline bool capture_udp_dst_match(const uint8_t* d, uint32_t len, uint16_t port_be) noexcept {
    if (len < 14 + 20 + 8 || d[12] != 0x08 || d[13] != 0x00) return false;
    const uint8_t* ip = d + 14;
    const uint32_t ihl = (ip[0] & 0x0fu) * 4u;
    if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 17) return false;
    // Not a later fragment: its bytes at the UDP header are payload.
    if (((ip[6] & 0x1fu) | ip[7]) != 0) return false;
    if (len < 14 + ihl + 8) return false;
    const uint8_t* udp = ip + ihl;
    uint16_t dst;
    __builtin_memcpy(&dst, udp + 2, 2);
    return dst == port_be;
}

}  // namespace stentor::dp
