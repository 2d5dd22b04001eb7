// The workers' half of a packet capture (stentor/dp_capture.h): copy the
// matching packets of one burst into pcapng blocks and hand them to the
// capture writer. Called only when the burst's port has its bit set in
// dp_capture::on (the one test per burst lives at the call sites: ingress.cc
// after rte_eth_rx_burst, tx.h before rte_eth_tx_burst).
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "lcore.h"

namespace stentor::dp {

enum class capture_dir : uint8_t { rx, tx };

// Copies (rte_pcapng_copy) the packets of pkts[0..n) that match the running
// capture into its ring; never blocks, never fails the burst: a full ring or
// an empty capture pool is counted (capture_lcore_stats) and the copy
// skipped. `queue` is the RX or TX queue the burst belongs to.
void capture_burst(worker* w, uint16_t port, rte_mbuf* const* pkts, uint16_t n, capture_dir dir,
                   uint16_t queue) noexcept;

// True when the burst's port has its bit set: the one test per burst.
inline bool capture_wanted(const worker* w, uint32_t bit) noexcept {
    return (w->cap->on.load(std::memory_order_acquire) & bit) != 0;
}

}  // namespace stentor::dp
