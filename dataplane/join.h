// The join stage: a STUN Binding Request to a session port (parse.h's
// pkt_kind::stun) is checked here, cheapest first, and handed to the control
// plane's join desk only once both MACs hold (dp_join.h, docs/join.md).
//
// Order, and what each failure costs the relay (all counted as drop/join/*,
// none answered):
//   STUN shape and FINGERPRINT (stun.h) ........ a CRC                  } join_flush, on the
//   token shape, key id, expiry ................. a few compares         } RX lcore that
//   this lcore's verification budget ............ a token bucket         } received it, once
//                                                                         } its RX burst is parsed
//   session of the port, the token's session .... a scan of the sessions }
//   token tag (HMAC-SHA256) ..................... one MAC: all a forged   } join_verify_burst, on
//                                                 token costs            } the same RX lcore right
//   MESSAGE-INTEGRITY (HMAC-SHA1, the password) . a second MAC: needs a  } after, or on a join
//                                                 real token             } lcore
//
// join_input only holds the request (and prefetches the rest of its
// message and the headroom it will write); join_flush runs the cheap checks
// on the whole RX burst's requests together, then either their MACs (on
// the RX lcore) or the hand-off to the join lcores (dataplane.join_lcores),
// one ring operation per join lcore, whose join_poll runs the MACs. Between
// the two stages on different lcores the request waits in its own mbuf,
// what the checks established written into its headroom
// (dp_join_pending), ending where the dp_join_request for the desk goes.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "lcore.h"
#include "parse.h"

namespace stentor::dp {

// Consumes the mbuf (true: held for join_flush, which frees it if it fails
// a check) or leaves it to the caller (false: joins are off, or a damaged
// mbuf; dropped and counted).
bool join_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                uint64_t now) noexcept;

// RX lcore, after each RX burst: check what join_input held, then verify it
// or hand it to the join lcores. Returns how many requests it took.
unsigned join_flush(worker* w, const dp_snapshot* s) noexcept;

// Join lcore: verify a burst of what the RX lcores handed over. Returns how
// many requests it took.
unsigned join_poll(worker* w, const dp_snapshot* s) noexcept;

// ARP-owner lcore: send the responses the join desk built. Returns how many.
unsigned join_reply_poll(worker* w) noexcept;

}  // namespace stentor::dp
