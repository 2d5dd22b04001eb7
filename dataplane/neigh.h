// ARP and ICMP for the relay's own addresses, and the neighbour table.
//
// Replies to requests for our addresses are built in place from the
// request (never larger: not an amplifier) and rate limited per lcore.
//
// Neighbours are learnt only from answers to questions the relay asked
// (docs/security.md, "ARP"): the ARP-owner lcore sends a request and opens
// a reply window; a reply inside the window resolves an unresolved entry or
// confirms the known MAC; a reply offering a known neighbour a different MAC
// is held as a candidate (neigh_mac_changed) and applied only if a fresh
// request's window brings that MAC and not the current one. Requests from
// others, replies nobody asked for and replies after their window change
// nothing and are counted. Confirmed entries are re-probed after
// `reachable`; unanswered re-probes invalidate them. Only next hops some
// listener uses are asked for.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "lcore.h"
#include "parse.h"

namespace stentor::dp {

// Reply budget: ARP and ICMP replies are capped so the relay cannot be used to
// reflect a flood; 1000/s per lcore with a burst of 100.
inline constexpr uint64_t reply_rate_per_s = 1000;
inline constexpr uint64_t reply_burst = 100;

// Neighbour timing. A LAN answers ARP within microseconds to a few
// milliseconds; half a second is generous for a loaded host and short for a
// blind spoofer who must guess when we asked.
inline constexpr uint64_t arp_window_ms = 500;
inline constexpr uint64_t arp_retry_ms = 1000;          // unanswered or stale entries: one request per second
inline constexpr uint64_t arp_reachable_ms = 30000;     // confirmed MACs are re-probed after 30 s (as Linux's base_reachable_time)
inline constexpr unsigned arp_max_unanswered = 3;       // re-probes in a row without a reply: the entry is invalidated
inline constexpr uint64_t arp_tick_us = 10000;          // the owner's neighbour tick
inline constexpr uint64_t arp_request_rate = 2560;      // requests we send per second at most
inline constexpr uint64_t arp_request_burst = 256;
inline constexpr unsigned arp_visits_per_tick = 256;    // active entries looked at per tick

// Both consume the mbuf (true: it was sent or handed on) or leave it to the
// caller (false).
bool arp_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
               uint64_t now) noexcept;
bool icmp_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept;

// ARP-owner lcore, once per loop iteration: replies handed over by other RX
// lcores, then (every arp_tick_us) close reply windows and send the
// requests that are due. Returns the work done.
unsigned neigh_poll(worker* w, const dp_snapshot* s, uint64_t now) noexcept;

void neigh_init(worker* w, uint64_t now) noexcept;
void neigh_release(worker* w) noexcept;

}  // namespace stentor::dp
