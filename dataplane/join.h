// The join stage: a STUN Binding Request to a session port (parse.h's
// pkt_kind::stun) is checked here, cheapest first, and handed to the control
// plane's join desk only once both MACs hold (dp_join.h, docs/join.md).
//
// Order, and what each failure costs the relay (all counted as drop/join/*,
// none answered):
//   STUN shape and FINGERPRINT (stun.h) ........ a CRC                  } join_input, on the
//   token shape, key id, expiry ................. a few compares         } RX lcore that
//   this lcore's verification budget ............ a token bucket         } received it
//   session of the port, the token's session .... a scan of the sessions }
//   token tag (HMAC-SHA256) ..................... one MAC: all a forged   } join_verify_burst, on
//                                                 token costs            } the same RX lcore at
//   MESSAGE-INTEGRITY (HMAC-SHA1, the password) . a second MAC: needs a  } the end of its burst,
//                                                 real token             } or on a join lcore
//
// Where the MACs run is the profile's choice (dataplane.join_lcores): on
// the RX lcore, for the requests of each RX burst together once the burst is
// parsed (join_flush), or on a dedicated join lcore, which the RX lcores
// hand the request to over a ring (join_poll). Between the two stages the
// request waits in its own mbuf, what the first stage established written
// into its headroom (dp_join_pending), where the second stage later writes
// the dp_join_request for the desk.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "lcore.h"
#include "parse.h"

namespace stentor::dp {

// Consumes the mbuf (true: held for verification, or handed to a join
// lcore) or leaves it to the caller (false: dropped and counted).
bool join_input(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port, const parse_result& pr,
                uint64_t now) noexcept;

// RX lcore, after each RX burst: verify what join_input held. Returns how
// many it verified.
unsigned join_flush(worker* w, const dp_snapshot* s) noexcept;

// Join lcore: verify a burst of what the RX lcores handed over. Returns how
// many requests it took.
unsigned join_poll(worker* w, const dp_snapshot* s) noexcept;

// ARP-owner lcore: send the responses the join desk built. Returns how many.
unsigned join_reply_poll(worker* w) noexcept;

}  // namespace stentor::dp
