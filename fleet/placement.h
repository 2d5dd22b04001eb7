// The director's placement arithmetic (docs/fleet.md "Placing listeners"),
// apart from etcd and HTTP so that tables can test it: a view of the
// registry's relays, the placements this director made recently, and the
// choice of edges for a request.
//
// Never overshoot an edge's admission, with several directors and no write
// per listener: each director may fill only its share of an edge's free
// slots (free / live directors), and counts each of its own placements
// against the edge for hold_ms (long enough for the listener to join and the
// edge to report it), so between two registry refreshes it cannot place
// more than its share. The cost: a listener that joined is counted twice
// for up to hold_ms (in the edge's report and as pending), which can only
// make the director place less, never more. The balance between edges is
// taken from a better estimate: the edge's report plus what this director
// placed since that report arrived, times the number of directors (they
// share the requests). fleet_harness, 8 M listeners over 48 edges through
// two directors: imbalance 23 % ordering by report + pending, 12 % by
// report + own placements since it, 3.4 % with the directors' factor.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "registry.h"

namespace stentor::fleet {

using steady = std::chrono::steady_clock;

enum class place_error {
    none,
    bad_request,        // 400
    unknown_session,    // 404: no live origin carries the session
    no_capacity,        // 503: the edges' free share cannot take them all (nothing placed)
    registry_stale,     // 503: etcd unreachable for longer than stale_s
    registry_write,     // 503: a trunk could not be recorded in etcd
};
const char* place_error_name(place_error e);

// The address family a listener joins over (POST /v1/place "family",
// docs/fleet.md "Placing listeners"): an edge is a candidate only with an
// address of that family (`addresses` for IPv4, `addresses6` for IPv6),
// and the placement carries its first one.
enum class addr_family { ipv4, ipv6 };
const char* family_name(addr_family f);
// "ipv4" | "ipv6"; nullopt and *why (naming the value) on anything else.
std::optional<addr_family> parse_family(const std::string& text, std::string* why);

struct edge_pick {
    std::string edge;
    std::string address;        // of the request's family
    uint16_t port = 0;
    uint32_t count = 0;         // listeners placed on it by this request
    bool carries = false;       // the edge already has the session (no trunk needed)
};

struct plan_result {
    place_error error = place_error::none;
    std::string reason;
    uint16_t port = 0;                        // the session's UDP port
    std::vector<std::string> origins;         // live origins carrying the session
    std::vector<edge_pick> picks;             // edges with count > 0
};

class placement_core {
public:
    explicit placement_core(std::chrono::milliseconds hold) : _hold(hold) {}

    // The registry as the watch sees it.
    // A new report: what this director placed before it counts as joined
    // for the balance (not for the room, which keeps its hold).
    void upsert(const relay_record& r) {
        _relays[r.id] = r;
        if (auto it = _pending.find(r.id); it != _pending.end()) it->second.since_report = 0;
    }
    void erase(const std::string& id) { _relays.erase(id); }
    void clear() { _relays.clear(); }
    void set_directors(unsigned n) { _directors = n == 0 ? 1 : n; }
    unsigned directors() const { return _directors; }
    const std::map<std::string, relay_record>& relays() const { return _relays; }

    // Choose edges for `count` listeners of `session` (only edges labelled
    // `region` unless empty, never one named in `exclude`, only edges with
    // an address of `family`, whose first one each pick carries), least loaded
    // first (estimated load over slots, above), and count them as pending.
    // All or nothing. `exclude` is a client's hint after a failover: the
    // edge it just lost may still be in the registry until its lease lapses.
    plan_result place(uint32_t session, uint32_t count, const std::string& region, steady::time_point now,
                      const std::vector<std::string>& exclude = {}, addr_family family = addr_family::ipv4);
    // Undo a plan's pending counts (its trunk could not be recorded).
    void forget(const plan_result& p, steady::time_point placed_at);

    // Free slots this director may still fill on an edge now.
    uint64_t room(const relay_record& edge, steady::time_point now);
    uint64_t pending(const std::string& edge, steady::time_point now);

private:
    struct batch {
        steady::time_point at;
        uint32_t n;
    };
    // One edge's recent placements, oldest first, and their sum: a flash
    // crowd of small requests leaves many batches in hold_ms, and each
    // request must not walk them all.
    struct pending_list {
        std::deque<batch> q;
        uint64_t sum = 0;
        uint64_t since_report = 0;   // placed since the edge's last report arrived
    };
    std::chrono::milliseconds _hold;
    std::map<std::string, relay_record> _relays;
    std::map<std::string, pending_list> _pending;   // by edge
    uint64_t expire(pending_list& p, steady::time_point now) const;
    struct cand {
        const relay_record* r;
        uint64_t room;
        uint64_t load;   // listeners + this director's pending + placed now
        uint32_t placed;
        pending_list* pl;
    };
    std::vector<cand> _cands;   // scratch of place(), kept to spare an allocation
    std::vector<size_t> _heap;
    unsigned _directors = 1;
};

}  // namespace stentor::fleet
