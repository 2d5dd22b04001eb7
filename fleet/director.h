// stentor-director's engine (docs/fleet.md): the registry watched from
// etcd, placements by placement_core, trunks recorded with create-if-absent
// transactions, join tokens minted by the caller's minter (the relays' own
// code: control/join_mint.cc). Stateless across restarts: everything it
// knows comes from etcd; it writes only its own lease-bound key and trunk
// keys, never anything per listener.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "placement.h"
#include "etcd_client.h"
#include "registry.h"

namespace stentor::fleet {

class etcd_client;

struct director_options {
    etcd_endpoints etcd;                      // client URLs and how to reach them (TLS, user)
    std::string prefix = "/stentor";
    std::string director_id;
    unsigned lease_ttl_s = 2;                 // the director's own key
    // Serve from the last view this long after etcd last confirmed it (a
    // watch event or progress notification, or a whole read), then refuse.
    std::chrono::seconds stale{10};
    // A watch that brings nothing for this long is ended and the whole view
    // read again (0: stale / 2, so a quiet registry is confirmed before
    // it goes stale; docs/fleet.md "The view").
    std::chrono::milliseconds watch_idle{0};
    std::chrono::milliseconds hold{3000};     // see placement_core
};

struct minted {
    std::string token;
    std::string password;
};
// (session, tier, count) -> count fresh tokens; throws on failure.
using mint_fn = std::function<std::vector<minted>(uint32_t session, uint8_t tier, size_t count)>;

struct placement {
    std::string edge;
    std::string address;
    uint16_t port = 0;
    std::string token;
    std::string password;
};

struct place_request {
    uint32_t session = 0;
    uint32_t count = 0;
    std::string region;
    uint8_t tier = 1;
    // "ipv4" | "ipv6": the family of the address the listener joins (each
    // placement's `address`); anything else is a bad_request (400).
    std::string family = "ipv4";
};

struct place_answer {
    place_error error = place_error::none;
    std::string reason;
    std::vector<placement> placements;
    unsigned trunks_created = 0;        // by this request's transactions
};

struct director_status {
    size_t relays = 0;
    size_t edges_live = 0;              // edges not draining
    unsigned directors = 0;
    size_t trunks = 0;
    double view_age_s = 0;              // since etcd last answered
    bool stale = false;
    uint64_t watch_restarts = 0;
    // Registry keys not taken (a relay record without a lease, unreadable,
    // or whose id is not its key's name; a director key without a lease or
    // not {"id": <name>}; a trunk key whose session is not 1..4294967295 in
    // trunk_key()'s form): once per key until it is deleted or mended.
    uint64_t records_refused = 0;
    std::string last_error;
};

class director {
public:
    director(director_options o, mint_fn mint);
    ~director();
    director(const director&) = delete;
    director& operator=(const director&) = delete;

    // Starts the registration and watch threads; returns once the first
    // view is loaded or `wait` passed (then etcd is down: the director
    // refuses until it answers).
    void start(std::chrono::milliseconds wait = std::chrono::seconds(5));
    void stop();

    // `exclude`: edges the caller does not want (a client that lost its
    // edge names it: the registry may still hold it until its lease lapses).
    place_answer place(const place_request& req, const std::vector<std::string>& exclude = {});
    director_status status() const;
    // The view, for GET /v1/registry.
    std::vector<relay_record> relays() const;

private:
    void watch_loop();
    void lease_loop();
    void load_full(etcd_client& c, int64_t* revision);
    // nullptr: deleted. `lease`: the key's etcd lease (0: none).
    void apply(const std::string& key, const std::string* value, int64_t lease);
    void touch();
    void refuse(const std::string& key, const std::string& why);   // under _mu
    void count_directors();                                         // under _mu

    director_options _o;
    mint_fn _mint;
    mutable std::mutex _mu;
    std::condition_variable _cv;
    placement_core _core;
    std::set<std::pair<uint32_t, std::string>> _trunks;   // (session, edge) known in etcd
    std::set<std::string> _directors;
    // When etcd last confirmed the view (the watch's own stream: an event,
    // a progress notification, a whole read): what freshness follows.
    steady::time_point _contact{};
    // When etcd last answered anything (the lease keep-alive too, maybe
    // through another member): whether a trunk record is worth trying.
    steady::time_point _answered{};
    bool _loaded = false;
    uint64_t _watch_restarts = 0;
    refused_keys _refused;   // keys in etcd now whose refusal was counted
    std::string _last_error;
    std::atomic<bool> _stop{false};
    std::thread _watch_thread;
    std::thread _lease_thread;
    std::mutex _txn_mu;                                    // one etcd client for trunk transactions
    std::unique_ptr<etcd_client> _txn;
};

}  // namespace stentor::fleet
