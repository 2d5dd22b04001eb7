// The one TX path. Every packet the lcore sends (replicas, ARP/ICMP replies,
// ARP requests) leaves through tx_burst_or_drop: a full TX ring gets a few
// more tries (a few microseconds), then the remainder is dropped and counted
// as egress/tx_full. Never spin forever, never leak an mbuf.
#pragma once

#include <algorithm>
#include <cstdint>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "capture.h"
#include "lcore.h"

namespace stentor::dp {

inline constexpr unsigned tx_retries = 64;

// Sends n packets on the lcore's TX queue of `port` (port index); returns
// the number the NIC took. The rest are freed and counted.
inline uint16_t tx_burst_or_drop(worker* w, uint16_t port, rte_mbuf** pkts, uint16_t n) noexcept {
    const uint16_t eth = w->sh->ethdev[port];
    // Copied before the NIC owns them: what is handed to the TX queue.
    if (capture_wanted(w, capture_tx_bit(port))) [[unlikely]]
        capture_burst(w, port, pkts, n, capture_dir::tx, w->cfg.tx_queue);
    uint16_t sent = rte_eth_tx_burst(eth, w->cfg.tx_queue, pkts, n);
    for (unsigned tries = 0; sent < n && tries < tx_retries; ++tries) {
        rte_pause();
        sent = static_cast<uint16_t>(sent + rte_eth_tx_burst(eth, w->cfg.tx_queue, pkts + sent, n - sent));
    }
    w->c->port_tx[port] += sent;
    if (sent < n) [[unlikely]] {
        w->c->drop(drop_reason::tx_full) += n - sent;
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
    return sent;
}

// Replicas: counted as replicas_out as well.
inline void tx_flush_port(worker* w, uint16_t port) noexcept {
    tx_buffer& b = w->tx[port];
    if (b.n == 0) return;
    w->c->replicas_out += tx_burst_or_drop(w, port, b.pkts, b.n);
    b.n = 0;
}

inline void tx_flush_all(worker* w) noexcept {
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p) tx_flush_port(w, p);
}

inline void tx_stage(worker* w, uint16_t port, rte_mbuf* m) noexcept {
    tx_buffer& b = w->tx[port];
    b.pkts[b.n++] = m;
    if (b.n == w->cfg.burst) tx_flush_port(w, port);
}

// Append built replicas to a port's TX buffer in one go (single-port path).
inline void tx_stage_bulk(worker* w, uint16_t port, rte_mbuf** m, uint32_t n) noexcept {
    tx_buffer& b = w->tx[port];
    if (b.n == 0 && n == w->cfg.burst) [[likely]] {
        // A whole burst with nothing staged before it: hand it to the NIC as is.
        w->c->replicas_out += tx_burst_or_drop(w, port, m, static_cast<uint16_t>(n));
        return;
    }
    while (n > 0) {
        const uint32_t take = std::min<uint32_t>(w->cfg.burst - b.n, n);
        for (uint32_t i = 0; i < take; ++i) b.pkts[b.n + i] = m[i];
        b.n = static_cast<uint16_t>(b.n + take);
        m += take;
        n -= take;
        if (b.n == w->cfg.burst) tx_flush_port(w, port);
    }
}

// ARP/ICMP replies and ARP requests: rare and rate limited, so they go out
// at once on their own instead of sharing the replicas' TX buffers.
inline void tx_control(worker* w, uint16_t port, rte_mbuf* m) noexcept {
    tx_burst_or_drop(w, port, &m, 1);
}

}  // namespace stentor::dp
