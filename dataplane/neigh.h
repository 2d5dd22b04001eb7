// ARP and ICMP for the relay's own addresses, and the neighbour table.
//
// Replies to requests for our addresses are built in place from the
// request (never larger: not an amplifier) and rate limited per lcore.
//
// The neighbour table's state machine (what a reply, a visit, a closing
// window do to an entry) is in neigh_fsm.h, without I/O; this file and
// neigh.cc are its I/O: the snapshot lookup, the request frames, the ring
// that hands replies to the ARP-owner lcore, and the reply and request
// budgets.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "lcore.h"
#include "neigh_fsm.h"
#include "parse.h"

namespace stentor::dp {

// Both consume the mbuf (true: it was sent or handed on) or leave it to the
// caller (false).
bool arp_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
               uint64_t now) noexcept;
bool icmp_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept;
// IPv6 (issue 15): an NS for our address answered with an NA built in its
// place (never larger); an NA considered for the neighbour it names (on the
// ARP owner, handed over like ARP replies); an ICMPv6 echo answered in place.
bool nd_ns_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept;
bool nd_na_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                 uint64_t now) noexcept;
bool icmp6_input(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr, uint64_t now) noexcept;

// ARP-owner lcore, once per loop iteration: replies handed over by other RX
// lcores, then (every arp_tick_us) close reply windows and send the
// requests that are due. Returns the work done.
unsigned neigh_poll(worker* w, const dp_snapshot* s, uint64_t now) noexcept;

void neigh_init(worker* w, uint64_t now) noexcept;
void neigh_release(worker* w) noexcept;

}  // namespace stentor::dp
