// ARP and ICMP for the relay's own addresses, and the neighbour table's
// resolution: replies built in place from the request (never larger: not an
// amplifier) and rate limited per lcore; ARP requests for next hops the
// control plane asked for, paced by the ARP-owner lcore.
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

// Both consume the mbuf (true: it was sent) or leave it to the caller (false).
bool arp_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
               uint64_t now) noexcept;
bool icmp_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept;

// ARP-owner lcore: ask for next hops not resolved yet (or flagged by the
// control plane), paced.
void neigh_solicit(worker* w, uint64_t now) noexcept;

void neigh_init(worker* w, uint64_t now) noexcept;

}  // namespace stentor::dp
