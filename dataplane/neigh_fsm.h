// The neighbour state machine of the ARP-owner lcore, without I/O.
//
// Neighbours are learnt only from answers to questions the relay asked
// (docs/security.md, "ARP"): the ARP owner sends a request and opens a reply
// window; a reply inside the window resolves an unresolved entry or confirms
// the known MAC; a reply offering a known neighbour a different MAC is held
// as a candidate (neigh_mac_changed) and applied only if a fresh request's
// window brings that MAC, no other, and not the current one. Requests from
// others, replies nobody asked for and replies after their window change
// nothing and are counted; so do replies in a window that brought two MACs
// while it resolved the entry (neigh_conflict, then arp_conflict for each
// later one). Confirmed entries are re-probed after
// `reachable`; re-probes left unanswered arp_max_unanswered times invalidate
// them.
//
// Pure functions over one dp_neigh, the time and the lcore's counters:
// neigh.cc does the I/O around them (the snapshot lookup, the request mbuf,
// the hand-off ring, the request budget), and the unit tests
// (tests/unit/test_neigh_fsm.cc) and the fuzzer (fuzz/fuzz_arp.cc) run the
// same code with a simulated clock. Times are TSC cycles compared by
// unsigned difference, so a TSC that wraps past 2^64 changes nothing.
// Only the ARP owner calls them; fan-out lcores only read mac_word.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "stentor/dp_counters.h"
#include "stentor/dp_snapshot.h"

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
static_assert(reply_rate_per_s >= reply_burst && arp_request_rate >= arp_request_burst,
              "bucket_take() refills at most `rate` tokens after a second");

// The timing above in TSC cycles.
struct neigh_timing {
    uint64_t window;      // a reply counts if it arrives at most this long after our request
    uint64_t retry;       // between requests for an unresolved or stale entry
    uint64_t reachable;   // a confirmed MAC is re-probed after this
};

// reachable_ms 0: arp_reachable_ms (tests shorten it).
constexpr neigh_timing neigh_timing_of(uint64_t hz, uint64_t reachable_ms) noexcept {
    return {hz * arp_window_ms / 1000, hz * arp_retry_ms / 1000,
            hz * (reachable_ms != 0 ? reachable_ms : arp_reachable_ms) / 1000};
}

// Token bucket: one token per grant, `rate` per second refilled up to
// `burst`. A second or more refills `rate` tokens (a full bucket: every
// budget here has rate >= burst): elapsed x rate wraps past 2^64 after
// 2^64 / rate cycles (38 days of a 2.2 GHz TSC at the request rate), and the
// wrapped refill could be 0 (fuzz_arp's second finding).
inline bool bucket_take(uint64_t& tokens, uint64_t& last_tsc, uint64_t now, uint64_t hz, uint64_t rate,
                        uint64_t burst) noexcept {
    const uint64_t elapsed = now - last_tsc;
    const uint64_t add = elapsed >= hz ? rate : elapsed * rate / hz;
    if (add > 0) {
        tokens = tokens + add < burst ? tokens + add : burst;
        last_tsc = now;
    }
    if (tokens == 0) return false;
    --tokens;
    return true;
}

inline uint64_t neigh_mac_word(const uint8_t* mac) noexcept {
    uint64_t word = 0;
    std::memcpy(&word, mac, 6);
    return word | neigh_valid;
}

// What an ARP reply did to the entry it names.
enum class reply_verdict : uint8_t {
    unsolicited,   // never asked (pinned, other port, no request yet): drop/ingress/arp_unsolicited
    late,          // no reply window open: drop/ingress/arp_late
    in_conflict,   // the window already brought two MACs: nothing in it is believed: drop/ingress/arp_conflict
    learnt,        // resolved an unresolved entry
    confirmed,     // the current MAC answered
    conflict,      // a second MAC in the window that resolved the entry: unresolved again (neigh_conflict)
    candidate,     // a different MAC for a known neighbour: held (neigh_mac_changed when it is a new one)
    refused,       // in the window confirming a candidate, yet another MAC: the change is refused (neigh_mac_changed)
};

// The drop reasons of the replies a family's state machine refuses: ARP
// replies for IPv4 next hops, neighbour advertisements for IPv6 ones (the
// same rules, issue 15; docs/security.md "Neighbour discovery").
struct neigh_drops {
    drop_reason unsolicited, late, conflict;
};
inline constexpr neigh_drops arp_drops{drop_reason::arp_unsolicited, drop_reason::arp_late, drop_reason::arp_conflict};
inline constexpr neigh_drops nd_drops{drop_reason::nd_unsolicited, drop_reason::nd_late, drop_reason::nd_conflict};

// A reply offering `word` (neigh_mac_word) for entry `n`, received on port
// index `port` at `now`. Either family: an IPv6 entry's replies are the
// solicited NAs that name it (`drops` = nd_drops).
inline reply_verdict neigh_on_reply(dp_neigh& n, uint16_t port, uint64_t word, uint64_t now,
                                    const neigh_timing& t, lcore_counters& c,
                                    const neigh_drops& drops = arp_drops) noexcept {
    if (n.port_id != port || (n.flags & neigh_static) || n.probe_tsc == 0) {
        ++c.drop(drops.unsolicited);
        return reply_verdict::unsolicited;
    }
    if (!n.outstanding || now - n.probe_tsc > t.window) {
        ++c.drop(drops.late);
        return reply_verdict::late;
    }
    const uint64_t cur = n.mac_word.load(std::memory_order_relaxed);
    if (n.conflict) {
        // Whichever MAC it offers, the real host's or the spoofer's: the
        // window is not believed any more (counted, so that a spoofer who
        // keeps answering shows beyond the one neigh_conflict).
        ++c.drop(drops.conflict);
        return reply_verdict::in_conflict;
    }
    if (n.resolved_now && word != cur) {
        // Two hosts answered for one address while it was being resolved (a
        // spoofer racing the real host): send to neither until a request's
        // window brings one MAC only. Unreachable beats redirected.
        n.mac_word.store(0, std::memory_order_relaxed);
        n.conflict = 1;
        n.resolved_now = 0;
        ++c.neigh_conflict;
        return reply_verdict::conflict;
    }
    if (!(cur & neigh_valid) && !n.confirming) {
        // Unresolved: the first answer to our question resolves it at once
        // (a join is heard within milliseconds).
        n.mac_word.store(word, std::memory_order_relaxed);
        n.resolved_now = 1;
        n.saw_current = 1;
        n.confirmed_tsc = now;
        n.unanswered = 0;
        return reply_verdict::learnt;
    }
    if (word == cur) {
        n.saw_current = 1;
        n.confirmed_tsc = now;
        n.unanswered = 0;
        return reply_verdict::confirmed;
    }
    if (n.confirming) {
        // The window of the request that confirms cand_word. Another MAC in
        // it (a third party, or a spoofer who raced the re-probe with one MAC
        // and the confirming request with another) refuses the change:
        // cand_word 0 until the window closes. Before, the last MAC of this
        // window replaced the candidate and was applied when it closed,
        // though no earlier window had offered it (fuzz_arp's third finding).
        if (word == n.cand_word) {
            n.saw_cand = 1;
            return reply_verdict::candidate;
        }
        if (n.cand_word != 0) {
            n.cand_word = 0;
            ++c.neigh_mac_changed;
        }
        n.saw_cand = 1;   // answered, if not by the MAC in use: not an unanswered probe
        return reply_verdict::refused;
    }
    if (n.cand_word != word) {
        n.cand_word = word;
        ++c.neigh_mac_changed;
    }
    n.saw_cand = 1;
    return reply_verdict::candidate;
}

// The request for `e` left at `now`: its reply window opens. probe_tsc 0
// means "never asked", so a request sent when the (wrapped) TSC reads 0 is
// dated one cycle earlier: its window is a cycle shorter, its retry a cycle
// sooner. Dated 0, its reply was counted unsolicited and the entry asked
// again as soon as the window closed (fuzz_arp's first finding).
inline void neigh_request_sent(dp_neigh& e, uint64_t now) noexcept {
    e.probe_tsc = now != 0 ? now : now - 1;
    e.outstanding = 1;
    e.resolved_now = 0;
    e.conflict = 0;
    e.saw_current = 0;
    e.saw_cand = 0;
}

// The end of a request's reply window.
inline void neigh_close_window(dp_neigh& e, lcore_counters& c) noexcept {
    e.outstanding = 0;
    e.resolved_now = 0;
    if (e.conflict) {
        e.conflict = 0;
        e.cand_word = 0;
        e.confirming = 0;
        return;   // unresolved: neigh_visit() asks again after the retry interval
    }
    if (e.confirming) {
        // The fresh request sent for a candidate: switch only if the
        // candidate answered, and neither the current MAC nor any other did.
        if (e.saw_cand && !e.saw_current && e.cand_word != 0) {
            // The new MAC starts with no unanswered probes: its
            // predecessor's (the re-probes that found the host gone) used
            // to carry over and invalidate it after one (fuzz_arp's fourth
            // finding).
            e.mac_word.store(e.cand_word, std::memory_order_relaxed);
            e.confirmed_tsc = e.probe_tsc;
            e.unanswered = 0;
            ++c.neigh_mac_confirmed;
        } else if (e.saw_current) {
            ++c.neigh_mac_kept;
        }
        e.cand_word = 0;
        e.confirming = 0;
    } else if (e.saw_cand) {
        e.confirming = 1;   // ask again now: neigh_visit() says the confirming request is due
    }
    if (!e.saw_current && !e.saw_cand) ++e.unanswered;
}

// The owner looks at `e` at `now`: closes a window that has ended,
// invalidates a MAC nobody confirms, and says whether a request is due. The
// caller sends it if its request budget allows (then neigh_request_sent()),
// or asks again at a later visit.
inline bool neigh_visit(dp_neigh& e, uint64_t now, const neigh_timing& t, lcore_counters& c) noexcept {
    if ((e.flags & neigh_static) || (e.ip_be == 0 && !(e.flags & neigh_ipv6))) return false;
    if (e.outstanding) {
        if (now - e.probe_tsc <= t.window) return false;   // still waiting for replies
        neigh_close_window(e, c);
    }
    const uint64_t cur = e.mac_word.load(std::memory_order_relaxed);
    if (e.confirming) return true;
    if (!(cur & neigh_valid)) return e.probe_tsc == 0 || now - e.probe_tsc >= t.retry;
    if (now - e.confirmed_tsc < t.reachable) return false;
    if (e.unanswered >= arp_max_unanswered) {
        // Gone: stop sending to a MAC nobody confirms (the fan-out counts
        // neigh_unresolved); keep asking while a listener uses it.
        e.mac_word.store(0, std::memory_order_relaxed);
        e.unanswered = 0;
        ++c.neigh_expired;
    }
    return now - e.probe_tsc >= t.retry;
}

}  // namespace stentor::dp
