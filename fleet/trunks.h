// Trunks in the data plane (docs/fleet.md, "Trunks"): what a relay does for
// the trunk keys <prefix>/trunks/<session>/<edge> of the registry.
//
//  - As a source (its id among a trunk's origins): send the session to the
//    edge's first advertised address of the trunk's family, port = the
//    session's UDP port, as a reserved tier-0 listener (flagged trunk:
//    never shed, admitted).
//  - As the edge: carry the session on the same UDP port (the fleet's
//    convention) and take each live origin's packets as a speaker flow of
//    it (SSRC from the origin's record when it lists exactly one); the
//    edge keeps the first copy of each packet (ST 2022-7, dataplane/dedup.h).
//  - Both (a middle tier): both, so trees of depth 2+ need nothing more.
//
// plan_trunks() is the arithmetic, pure and table-tested; trunk_watch keeps
// the registry view from etcd (one range, then a watch, on its own thread)
// and hands the plan to the relay (control/fleet_trunks.cc), which applies
// it through relay_state's actions. The watch thread never touches a worker.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "etcd_client.h"
#include "peer_nets.h"
#include "registry.h"

namespace stentor::fleet {

class etcd_client;

// An IPv6 address, 16 bytes in network order (as control/ipv6.h keeps them;
// fleet/ includes nothing of control/).
using addr6 = std::array<uint8_t, 16>;

// Source side: send `session` to the edge at ip:port (host order), or at
// [ip6]:port when the trunk runs over IPv6 (ip 0).
struct trunk_send {
    uint32_t session = 0;
    uint32_t ip = 0;
    uint16_t port = 0;
    std::string edge;
    std::optional<addr6> ip6 = std::nullopt;
    auto operator<=>(const trunk_send&) const = default;
};

// Edge side: a speaker flow of `session` from an origin at ip:port, or at
// [ip6]:port over IPv6 (ip 0). `epoch`: with trunk authentication, the
// origin's epoch as its record says (the flow's key derives from it: a
// restarted origin's new epoch is a new plan, and the edge moves to the
// new key); nullopt without.
struct trunk_flow {
    uint32_t session = 0;
    uint32_t ip = 0;
    uint16_t port = 0;
    std::optional<uint32_t> ssrc;
    std::string origin;
    std::optional<addr6> ip6 = std::nullopt;
    std::optional<uint64_t> epoch = std::nullopt;
    auto operator<=>(const trunk_flow&) const = default;
};

// The two ends of one (origin, edge) trunk: the family the edge's record
// asks for (relay_record::trunk_family) and the first advertised address of
// that family of each. "ipv4": both IPv4 addresses; "ipv6": both IPv6
// addresses; "auto": IPv6 when both advertise one, else IPv4. Both sides
// compute it from the same two records, so the origin sends from the
// address the edge expects. `origin` may be nullptr on the source side (its
// own record not in the view yet): enough for an IPv4 trunk, which needs
// only the edge's address there; the other families wait for it.
struct trunk_ends {
    bool ipv6 = false;
    uint32_t origin = 0, edge = 0;   // IPv4, host order
    addr6 origin6{}, edge6{};
};
std::optional<trunk_ends> trunk_ends_of(const relay_record* origin, const relay_record& edge, std::string* why);

// A trunk the relay's own rules refuse (docs/security.md "The registry"):
// nothing is sent or taken for it. `reason` is a stable counter name.
#define STENTOR_FOREACH_TRUNK_REFUSAL(_)                                                                      \
    _(edge_outside_trunk_peers, "an origin's trunk to an edge address outside [fleet] trunk_peers")          \
    _(origin_outside_trunk_peers, "an edge's trunk flow from an origin address outside [fleet] trunk_peers") \
    _(relay_without_lease, "a trunk naming a relay whose registry record is not under a lease")               \
    _(trunk_auth_mismatch,                                                                                    \
      "a trunk to or from a relay whose record disagrees on trunk authentication (trunk_auth, trunk_epoch)")    \
    _(origin_address_shared,                                                                                  \
      "an edge's trunk flow from an origin whose record resolves to the same address and port as another origin's of the trunk: neither is taken") \
    _(trunk_port_mismatch,                                                                                    \
      "a trunk whose udp_port is not the session's UDP port on the origin (the fleet's one port per session)")  \
    _(trunk_sends_over_cap,                                                                                   \
      "an origin's trunk listener past [fleet] max_trunk_sends_per_session of its session")
enum class trunk_refusal_reason : uint8_t {
#define STENTOR_TRUNK_REFUSAL_ENUM(name, help) name,
    STENTOR_FOREACH_TRUNK_REFUSAL(STENTOR_TRUNK_REFUSAL_ENUM)
#undef STENTOR_TRUNK_REFUSAL_ENUM
};
inline constexpr const char* trunk_refusal_names[] = {
#define STENTOR_TRUNK_REFUSAL_NAME(name, help) #name,
    STENTOR_FOREACH_TRUNK_REFUSAL(STENTOR_TRUNK_REFUSAL_NAME)
#undef STENTOR_TRUNK_REFUSAL_NAME
};
inline constexpr const char* trunk_refusal_help[] = {
#define STENTOR_TRUNK_REFUSAL_HELP(name, help) help,
    STENTOR_FOREACH_TRUNK_REFUSAL(STENTOR_TRUNK_REFUSAL_HELP)
#undef STENTOR_TRUNK_REFUSAL_HELP
};
inline constexpr size_t nb_trunk_refusal_reasons = sizeof(trunk_refusal_names) / sizeof(trunk_refusal_names[0]);

struct trunk_refusal {
    trunk_refusal_reason reason{};
    std::string what;   // "trunk 7 -> e9: edge address 203.0.113.9 is outside fleet.trunk_peers (...)"
    auto operator<=>(const trunk_refusal&) const = default;
};

struct trunk_plan {
    std::vector<trunk_send> sends;                // sorted
    std::map<uint32_t, uint16_t> sessions;        // edge side: session id -> UDP port
    std::vector<trunk_flow> flows;                // sorted
    std::vector<std::string> problems;            // trunks that cannot be acted on, and why
    std::vector<trunk_refusal> refused;           // trunks the relay's own rules refuse (sorted)
    bool operator==(const trunk_plan&) const = default;
};

// What relay `self` must do, given the live relays (key = relay id) and the
// trunk records. A relay whose key is gone is neither sent to nor received
// from (its lease lapsed: dead or cut off); when it registers again, the
// plan has it again. `unleased`: relays whose record exists without a lease
// (a registrar always writes under one: such a record was written by hand
// or by someone else), neither sent to nor received from, and a trunk that
// names one is refused (relay_without_lease). `peers`: a send only to an
// edge address, a flow only from an origin address, inside it; else
// refused (edge_/origin_outside_trunk_peers). `auth`: this relay protects
// and checks its trunks with the fleet's trunk key (docs/fleet.md "Trunk
// authentication"): it sends only to edges whose record says trunk_auth
// true and takes only from origins that say so with a well-formed
// trunk_epoch (the flow carries it); without, only with relays that say
// false. Any other pairing is refused (trunk_auth_mismatch): one side would
// drop every packet. Two origins of a trunk whose addresses are one flow's
// source are neither taken (origin_address_shared): an edge holds one key
// per flow. A source sends a session only if its own record lists it, and
// only to the port it lists for it (else trunk_port_mismatch). An edge
// whose every origin is refused carries nothing for the record (no session
// either).
trunk_plan plan_trunks(const std::string& self, const std::map<std::string, relay_record>& relays,
                       const std::vector<trunk_record>& trunks, const peer_allowlist& peers,
                       const std::map<std::string, relay_record>& unleased = {}, bool auth = false);

// "198.18.0.1" -> host-order address; nullopt if not dotted-quad IPv4.
std::optional<uint32_t> parse_ipv4(const std::string& s);
// "2001:db8::1" -> 16 bytes; nullopt if not an IPv6 address (no zone).
std::optional<addr6> parse_ipv6(const std::string& s);

struct trunk_watch_options {
    etcd_endpoints etcd;   // URLs and access (TLS, user): etcd_client.h
    std::string prefix = "/stentor";
    std::string relay_id;
    // [fleet] trunk_peers: where trunks may go and come from (empty: nowhere).
    peer_allowlist peers;
    // Trunk authentication on ([fleet] trunk_key_file): plan_trunks' `auth`.
    bool trunk_auth = false;
    // The plan is applied again this often even if nothing changed, so an
    // action that failed (a session not created yet on a source) is retried.
    std::chrono::milliseconds retry{1000};
    // A watch that brings nothing (no event, no progress notification) for
    // this long is ended and the whole view read again, through the next
    // endpoint if this one is gone silent (a member cut off from its
    // cluster keeps the connection and says nothing): the director's rule
    // (docs/fleet.md "The view"). A quiet registry is read again this often.
    std::chrono::milliseconds watch_idle{10000};
};

struct trunk_watch_status {
    bool loaded = false;            // a whole view has been read at least once
    size_t relays = 0;
    size_t trunks = 0;
    uint64_t watch_restarts = 0;
    uint64_t applies = 0;
    // Registry keys not acted on: a relay record unreadable or whose "id"
    // is not its key's name, a trunk key whose session is not 1..4294967295
    // in trunk_key()'s form or whose record names another (session, edge).
    // Once per key until it is deleted or mended.
    uint64_t records_refused = 0;
    std::string last_error;
};

class trunk_watch {
public:
    // `apply` runs on the watch's apply thread, never concurrently with
    // itself, with the whole plan: at the first view, at every change of the
    // plan, and every `retry`.
    trunk_watch(trunk_watch_options o, std::function<void(const trunk_plan&)> apply);
    ~trunk_watch();   // stop()
    trunk_watch(const trunk_watch&) = delete;
    trunk_watch& operator=(const trunk_watch&) = delete;

    void start();
    void stop();
    trunk_watch_status status() const;
    // Delete the trunk key (session, edge) with a transaction comparing its
    // revision as this watch last saw it, so a key a director re-created
    // meanwhile stays. True if this call deleted it; false if it was gone
    // or changed. Throws etcd_error when etcd does not answer.
    bool delete_trunk(uint32_t session, const std::string& edge);

private:
    void watch_loop();
    void apply_loop();
    void load_full(etcd_client& c, int64_t* revision);
    // value nullptr: deleted; lease 0: none (a relay record is then set aside). Under _mu.
    void on_key(const std::string& key, const std::string* value, int64_t mod_revision, int64_t lease);
    void replan();                                                   // under _mu
    void refuse(const std::string& key, std::string why);           // under _mu

    trunk_watch_options _o;
    std::function<void(const trunk_plan&)> _apply;
    mutable std::mutex _mu;
    std::condition_variable _cv;
    std::map<std::string, relay_record> _relays;
    std::map<std::string, relay_record> _unleased;   // relay records without a lease: never acted on
    std::map<std::pair<uint32_t, std::string>, trunk_record> _trunks;
    std::map<std::pair<uint32_t, std::string>, int64_t> _trunk_rev;   // mod_revision of each trunk key
    refused_keys _refused;   // keys in etcd now whose refusal was counted
    trunk_plan _plan;
    uint64_t _plan_version = 0;     // bumped when _plan changes
    trunk_watch_status _st;
    std::atomic<bool> _stop{false};
    std::thread _watch_thread;
    std::thread _apply_thread;
};

}  // namespace stentor::fleet
