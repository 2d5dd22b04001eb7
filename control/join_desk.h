// The join desk: the control plane's side of a listener joining by itself
// (docs/join.md). The RX lcores verify each STUN Binding Request (both MACs,
// dataplane/join.cc) and hand it over on dp_shared::join_ring; the desk
// decides what it means and answers through dp_shared::join_reply_ring.
//
//   - a new token: admission and the listener table (relay_state's
//     listener_add, the same action the API calls); answered once the join
//     is published and its next hop resolved, so that the answer means
//     "you are hearing the stream", as an API join does;
//   - the token's own address again: consent refreshed (no state mutex);
//   - the token from another address: refused while the first address
//     keeps refreshing, moved there once it has been silent for
//     rebind_after_s (a NAT rebinding); a replayed request therefore only
//     refreshes, and a captured one cannot add an address;
//   - a new token from an address already joined to the session: the
//     listener renews its token (the old one is forgotten) and takes the
//     new token's tier (docs/join.md "Renewal and tier");
//   - STENTOR-LEAVE: removed at once.
// A joined listener that sends nothing for consent_timeout_s is removed
// (RFC 7675 in spirit): the relay never streams to an address that stopped
// asking. And none starts or keeps a stream for an address that did not
// show it receives: every request but a leave must echo the STENTOR-COOKIE
// the desk sent to that address (a keyed MAC of the address, the session
// and a time slot, at most two consent timeouts old); one without it is
// answered 438 with a fresh cookie and changes nothing, so a token holder
// who forges its source address cannot aim the stream at someone else. The desk owns its tables (one thread); it holds one binding per
// admitted listener, so admission bounds its size.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ip6.h"
#include "session.h"
#include "stentor/dp_counters.h"
#include "stentor/join_token.h"

struct rte_mbuf;

namespace stentor::dp {
struct dp_shared;
struct dp_join_request;
}

namespace stentor::control {

class control_plane;
struct shed_record;

struct join_desk_config {
    unsigned consent_timeout_s = 30;   // a joined listener silent this long is removed
    unsigned rebind_after_s = 10;      // a token may move to a new address once its old one is silent this long
    unsigned batch = 4096;             // requests taken per pass (one publish covers them)
    // docs/join.md "Spent tokens and sources" (profile [join], same names).
    unsigned max_spent_tokens = 1048576;       // tokens that left, remembered until their expiry
    unsigned source_join_rate_per_s = 100;     // joins per second per source (IPv4 address, IPv6 /64)
    unsigned source_join_burst = 1000;
    unsigned max_bindings_per_source = 1000;   // token listeners one source holds, all sessions together
};

// _(field, help). Exported as join_<field> (metrics, telemetry, stats).
#define STENTOR_FOREACH_JOIN_STAT(_)                                                                  \
    _(requests, "verified requests taken from the data plane")                                         \
    _(joined, "listeners added by a join request")                                                     \
    _(refreshed, "consent refreshes of a joined listener")                                             \
    _(renewed, "joined listeners that moved to a new token of the same session")                       \
    _(rebound, "tokens moved to a new address after the old one stopped refreshing (NAT rebinding)")   \
    _(left, "listeners removed by an explicit leave")                                                  \
    _(consent_expired, "joined listeners removed after consent_timeout_s without a request")           \
    _(challenged, "requests without a valid cookie for their address: answered 438 with one, nothing changed") \
    _(refused_in_use, "token in use at another address that still refreshes (409)")                    \
    _(refused_capacity, "join refused: relay at capacity (503)")                                       \
    _(refused_session_full, "join refused: session full (486)")                                        \
    _(refused_rate_limited, "join refused: join rate limit (429, with a retry time)")                  \
    _(refused_gone, "join refused: the session ended meanwhile (404)")                                 \
    _(refused_invalid, "join refused: the token's tier or address is not acceptable (400)")            \
    _(leave_unknown, "leave for a token not joined at that address (404)")                             \
    _(unresolved, "joins answered before their next hop answered ARP (join_resolve_ms passed)")        \
    _(reply_ring_full, "responses dropped: the ring to the data plane was full")                      \
    _(reply_unbuildable, "responses not sent: they would not fit in their request")                    \
    _(told_to_move, "requests answered 300 while the relay drains (fleet): the listener asks a director again") \
    _(session_gone, "bindings dropped because their session ended (their listeners went with it)")     \
    _(shed, "bindings dropped because the overload controller shed their listener (its next request is a new join)") \
    _(refused_spent, "token refused: it left before (a token that left is spent until its expiry) (403)")           \
    _(refused_expired, "token refused by the desk: it expired before the desk's last sweep, which may have forgotten it as spent (403)") \
    _(spent_full, "leaves whose token could not be remembered as spent: the table was full (join.max_spent_tokens)") \
    _(refused_source_rate, "join refused: its source (IPv4 address, IPv6 /64) joined too fast (429, with a retry time)") \
    _(refused_source_bindings, "join refused: its source holds join.max_bindings_per_source listeners (429)")       \
    _(refused_registered, "token refused at an address that holds a listener it did not join (the operator's, a trunk's) (409)")

struct join_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_JOIN_STAT, join_stats)
};

class join_desk {
public:
    join_desk(control_plane& cp, dp::dp_shared& sh, const join_desk_config& cfg);
    ~join_desk();
    join_desk(const join_desk&) = delete;
    join_desk& operator=(const join_desk&) = delete;

    // The listeners already in the table when the desk starts (restored from
    // the journal after a restart) that joined by token are put under
    // consent as if they had just refreshed: each must send its next
    // request within consent_timeout_s (its token binds to it then) or it is
    // removed. `all` (join.mode = "token"): every listener, whatever the
    // journal says. Returns how many.
    size_t adopt_existing(std::chrono::steady_clock::time_point now, bool all);

    void start();   // the desk's thread: polls the ring, sleeps 1 ms when it is empty
    void stop();

    // One pass: take up to cfg.batch requests, answer them, sweep consent
    // once a second. Tests drive it themselves. Returns requests taken.
    unsigned poll(std::chrono::steady_clock::time_point now);

    join_stats stats() const;
    size_t bindings() const;
    // The wall clock (unix seconds) the desk gives the data plane
    // (sh.unix_now, for token expiry) and sweeps spent tokens by: time(2)
    // unless a test steps its own.
    void set_wall_clock(uint32_t (*clock)()) { _wall = clock; }
    size_t spent_tokens() const { return _nb_spent.load(std::memory_order_relaxed); }

    // A fleet relay draining (SIGTERM, docs/fleet.md "Failover"): every
    // request but a leave is answered 300 "draining" (a joined listener's
    // consent is still refreshed, so it keeps the stream until it has joined
    // elsewhere and left here); no new listener is let in.
    void set_draining(bool on) { _draining.store(on, std::memory_order_relaxed); }
    bool draining() const { return _draining.load(std::memory_order_relaxed); }

    // The overload controller shed these listeners (any thread): their
    // bindings go at the desk's next pass, so a shed listener's next request
    // is not answered "refreshed" for a stream it no longer gets, but meets
    // admission again as a new join. Listeners without a binding are ignored.
    void forget_shed(const std::vector<shed_record>& recs);

    struct token_ref {
        uint64_t nonce;
        uint32_t key_id;
        bool operator==(const token_ref&) const = default;
    };
    // A listener of either family: `ip` as dp_join_request::src carries it
    // (16 bytes, wire order; an IPv4 address as ::ffff:a.b.c.d), so one
    // table serves both and a token that moves across families is one more
    // address like any other (one token, one address).
    struct addr_ref {
        uint32_t session_id;
        uint16_t port;
        ipv6_addr ip;
        bool operator==(const addr_ref&) const = default;
        bool is_v4() const noexcept;
        listener_addr listener() const;   // as relay_state names it
    };

private:
    struct binding {
        addr_ref addr;
        uint8_t tier;
        std::chrono::steady_clock::time_point last_seen;
        uint32_t expiry = 0;   // the token's (unix seconds); 0: not known (adopted at start)
    };
    // What one source (an IPv4 address, or an IPv6 /64: one subscriber's
    // prefix) holds and may still spend. An entry exists while the source
    // holds a binding or its bucket is refilling, so the table is bounded
    // by the bindings plus the sources that joined within
    // source_join_burst / source_join_rate_per_s seconds.
    struct source_state {
        uint32_t bindings = 0;
        double tokens = 0;
        std::chrono::steady_clock::time_point refilled{};
    };
    struct token_hash {
        size_t operator()(const token_ref& t) const noexcept { return t.nonce ^ (uint64_t{t.key_id} << 56); }
    };
    struct addr_hash {
        size_t operator()(const addr_ref& a) const noexcept {
            return ipv6_addr_hash{}(a.ip) ^ ((uint64_t{a.session_id} << 16 | a.port) * 0x9e3779b97f4a7c15ULL);
        }
    };
    struct pending_reply {
        rte_mbuf* m;
        addr_ref at;
        std::chrono::steady_clock::time_point deadline;   // answered then even if its next hop is still unresolved
    };

    void run();
    void handle(rte_mbuf* m, std::chrono::steady_clock::time_point now, std::vector<pending_reply>& wait);
    void sweep(std::chrono::steady_clock::time_point now);
    void answer_resolved(std::chrono::steady_clock::time_point now);
    void bind(const token_ref& t, const binding& b);
    void unbind(const token_ref& t);
    // The source key of an address: the address for IPv4, its /64 for IPv6.
    static ipv6_addr source_of(const addr_ref& a) noexcept;
    // 0: the source may join now; else the refusal's retry time in seconds
    // (and `why` says which limit). Takes the join's token when it is 0.
    // `holds`: the request re-adds a listener the source already holds (a
    // renewal that changes its tier): its bucket only, not its bindings.
    unsigned source_admit(const addr_ref& a, std::chrono::steady_clock::time_point now, bool& rate,
                          bool holds = false);
    void spend(const token_ref& t, uint32_t expiry);
    void reply(rte_mbuf* m, unsigned code = 0, const char* reason = nullptr, uint32_t retry_after_ms = 0);
    // The cookie of request r's source (address, port) in its session for
    // time slot `slot`: the slot (4 bytes) and 12 bytes of HMAC-SHA256
    // under _cookie_key.
    void make_cookie(const dp::dp_join_request& r, uint32_t slot, uint8_t* out) const;
    // A cookie made for r's source in the current slot or the one before.
    bool cookie_ok(const dp::dp_join_request& r, const uint8_t* cookie) const;
    uint32_t cookie_slot(std::chrono::steady_clock::time_point now) const;
    void send(rte_mbuf* m);

    control_plane& _cp;
    dp::dp_shared& _sh;
    join_desk_config _cfg;
    std::unordered_map<token_ref, binding, token_hash> _by_token;
    std::unordered_map<addr_ref, token_ref, addr_hash> _by_addr;
    // Bindings per session: the sweep finds ended sessions in O(sessions),
    // not by a search per binding.
    std::unordered_map<uint32_t, uint32_t> _per_session;
    std::unordered_map<ipv6_addr, source_state, ipv6_addr_hash> _sources;
    // Tokens that left, until their expiry (unix seconds): at most
    // max_spent_tokens; the map by expiry lets the sweep forget the expired
    // ones without a walk.
    std::unordered_map<token_ref, uint32_t, token_hash> _spent;
    std::multimap<uint32_t, token_ref> _spent_by_expiry;
    std::atomic<size_t> _nb_spent{0};
    // Every spent token whose expiry is below this (unix seconds) may have
    // been forgotten by a sweep: a request carrying such an expiry is
    // refused here whatever the data plane's clock said when it checked it
    // (it reads sh.unix_now, set at each poll, before the request waited in
    // the ring). Raised by each sweep; lowered only when the wall clock
    // stepped back by more than clock_step_back_s (then logged).
    uint32_t _forgotten_below = 0;
    uint32_t (*_wall)() = nullptr;   // set_wall_clock; nullptr: time(2)
    uint32_t wall() const { return _wall != nullptr ? _wall() : static_cast<uint32_t>(std::time(nullptr)); }
    // Joins published, their answers waiting for the next hop (at most
    // limits.join_resolve_ms): the desk goes on meanwhile, so one listener
    // whose next hop never answers ARP holds up nobody else's answer.
    std::vector<pending_reply> _pending;
    std::chrono::steady_clock::time_point _next_sweep{};
    uint64_t _next_adopted = 1;       // token refs of adopted listeners (key id 0: never a real token's)
    mutable std::mutex _stats_mu;   // stats() from other threads; the desk updates under it once per pass
    join_stats _stats, _published;
    std::atomic<size_t> _nb_bindings{0};
    std::thread _thr;
    std::atomic<bool> _stop{false};
    std::atomic<bool> _draining{false};
    std::mutex _shed_mu;                 // forget_shed -> the desk's thread
    std::vector<addr_ref> _shed_inbox;
    std::unique_ptr<join::token_key> _cookie_key;   // HMAC-SHA256 states of a secret drawn at start: a restart makes every client ask once more
    uint32_t _slot = 0;                      // the current pass's cookie slot (cookie_slot)
};

}  // namespace stentor::control
