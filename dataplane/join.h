// The join stage: a STUN Binding Request to a session port (parse.h's
// pkt_kind::stun) is checked here, cheapest first, and handed to the control
// plane's join desk only once both MACs hold (dp_join.h, docs/join.md).
//
// Order, and what each failure costs the relay (all counted as drop/join/*,
// none answered):
//   STUN shape and FINGERPRINT (stun.h) ........ a CRC
//   token shape, key id, expiry ................. a few compares
//   this lcore's verification budget ............ a token bucket
//   session of the port, the token's session .... a scan of the sessions
//   token tag (HMAC-SHA256) ..................... one MAC: all a forged token costs
//   MESSAGE-INTEGRITY (HMAC-SHA1, the password) . a second MAC: needs a real token
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "lcore.h"
#include "parse.h"

namespace stentor::dp {

// Consumes the mbuf (true: handed to the join desk) or leaves it to the
// caller (false).
bool join_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                uint64_t now) noexcept;

// ARP-owner lcore: send the responses the join desk built. Returns how many.
unsigned join_reply_poll(worker* w) noexcept;

}  // namespace stentor::dp
