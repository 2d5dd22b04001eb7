// A fleet relay's trunks (docs/fleet.md, "Trunks"): the plan that
// fleet::trunk_watch derives from etcd, applied through relay_state's
// actions, the same ones the API calls:
//
//  - a send: listener_add(session, {edge address (IPv4 or IPv6), port,
//    tier 0, trunk}) — admitted like any listener, never shed, not journaled;
//  - an edge session: session_create(id, UDP port, trunk, SRTP off both
//    ways: an origin's SRTP ciphertext passes through unchanged, the fleet
//    encrypts each packet once and the edge's listeners decrypt with the
//    origin's session key);
//  - a flow: speaker_add(session, {origin address, port, SSRC, trunk}).
//
// With trunk authentication ([fleet] trunk_key_file; docs/fleet.md "Trunk
// authentication") also the keys, derived from the fleet's secret
// (fleet/trunk_key.h), never read from etcd:
//  - as an origin: trunk_key_set(session, key(session, this relay, its
//    epoch)) before its trunk listeners of the session, again at every
//    apply (a session re-created under the same id needs it again), and
//    trunk_key_clear when it no longer sends the session;
//  - as an edge: srtp_key_add on each flow's speaker, key(session, origin,
//    the origin's epoch from its record); when the origin's record shows a
//    new epoch (it restarted) the new key is added, then the old one
//    removed.
//
// The reconciler remembers what it made and undoes exactly that when the
// plan drops it; an action that fails stays out of what it made and is
// tried again at the next apply (trunk_watch applies every second). A
// session that already existed (the API made it) is used, never ended.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "config.h"
#include "trunks.h"

namespace stentor::control {

class relay_state;

// Trunk authentication of this relay: off without a secret.
struct trunk_auth_config {
    std::shared_ptr<const secure_bytes> secret;   // the fleet's trunk key (profile: fleet.trunk_key)
    std::string self;                             // this relay's id
    uint64_t epoch = 0;                           // this run's epoch, as its record advertises it
    bool on() const { return secret != nullptr; }
};

struct trunk_apply_stats {
    uint64_t applies = 0;
    size_t sends = 0;          // trunk listeners in place
    size_t sessions = 0;       // edge sessions in place (made or used)
    size_t flows = 0;          // origin flows in place
    uint64_t refusals = 0;     // actions refused (retried at the next apply)
    uint64_t idle_deleted = 0; // trunk keys this edge deleted after trunk_idle_s without a listener
    // Trunk records the relay's own rules refused (fleet::trunk_refusal_reason),
    // each counted once when it appears (not per apply); `refused_now`: how
    // many are refused at present.
    std::array<uint64_t, fleet::nb_trunk_refusal_reasons> refused{};
    size_t refused_now = 0;
    // Trunk listeners and flows the listener address rules refused
    // (check_peer, check_peer6: multicast, loopback, the relay's own
    // address, ...), counted once each like `refused`.
    uint64_t address_refused = 0;
    // Trunk authentication: sessions this origin has set its trunk key on,
    // flows whose speaker has the origin's key, and the flows moved to a
    // restarted origin's new key.
    size_t trunk_keys = 0;
    size_t flow_keys = 0;
    uint64_t flow_key_changes = 0;
    // Refusals and plan problems logged and not cleared since (each is
    // logged once until it clears; at most trunk_reconciler::max_told).
    size_t told = 0;
};

class trunk_reconciler {
public:
    // `delete_key(session)`: delete this edge's trunk key of the session (a
    // transaction; true if deleted); called when a session the trunks feed
    // has had no listener for `idle` (0: never). May throw.
    using delete_fn = std::function<bool(uint32_t session)>;
    // `max_sends`: trunk listeners one session is sent to at most ([fleet]
    // max_trunk_sends_per_session): those in place stay, new ones past it
    // are refused (trunk_sends_over_cap), counted and logged once.
    explicit trunk_reconciler(relay_state& st, std::chrono::seconds idle = std::chrono::seconds(0),
                              delete_fn delete_key = nullptr, trunk_auth_config auth = {}, size_t max_sends = 64);
    // Make the relay do `want`: undo what it no longer has, then add what is
    // missing. One log line per change and per new refusal.
    void apply(const fleet::trunk_plan& want);
    trunk_apply_stats stats() const;
    // Refusals and problems remembered as logged, at most: past it new ones
    // are counted (`refusals`) but not logged, until some clear.
    static constexpr size_t max_told = 1024;

private:
    // session, ip (0 over IPv6), port, IPv6 address (over IPv6)
    using send_key = std::tuple<uint32_t, uint32_t, uint16_t, std::optional<fleet::addr6>>;
    // + ssrc
    using flow_key = std::tuple<uint32_t, uint32_t, uint16_t, std::optional<fleet::addr6>, std::optional<uint32_t>>;
    void refused(const std::string& what, const std::string& why);
    // True the first time `line` is met (log it); remembered while every
    // apply meets it again, forgotten at the first apply that does not.
    bool tell(const std::string& line);
    // The SRTP key of (session, origin, epoch), from the fleet's secret.
    srtp_key_spec trunk_key(uint32_t session, const std::string& origin, uint64_t epoch) const;
    // Origin side: the session's trunk key set (true) or why not (refused, false).
    bool key_session(uint32_t session);
    // Edge side: the flow's speaker holds the key of the origin's `epoch`.
    void key_flow(const flow_key& k, const std::string& origin, uint64_t epoch);

    relay_state& _st;
    mutable std::mutex _mu;
    std::set<send_key> _sends;
    std::map<uint32_t, bool> _sessions;     // id -> made by the trunks (false: used, not ours to end)
    std::set<flow_key> _flows;
    std::set<std::string> _told;            // refusals already logged (once each until they clear)
    std::set<std::string> _told_now;        // of those, met again by the apply in progress
    bool _told_full = false;                // max_told reached: said once
    std::set<fleet::trunk_refusal> _refused;   // what the last plan refused (counted and logged when new)
    trunk_auth_config _auth;
    std::set<uint32_t> _keyed;                 // sessions this origin set its trunk key on
    std::map<flow_key, uint64_t> _flow_epoch;  // the origin epoch whose key each flow's speaker holds
    std::chrono::seconds _idle;
    delete_fn _delete_key;
    size_t _max_sends;
    std::map<uint32_t, std::chrono::steady_clock::time_point> _empty_since;   // edge sessions without a listener
    trunk_apply_stats _stats;
};

// The relay's trunk watch with its reconciler; nullptr without [fleet].
struct fleet_trunks {
    std::unique_ptr<trunk_reconciler> reconciler;
    std::unique_ptr<fleet::trunk_watch> watch;
};
// `trunk_epoch`: this run's epoch (fleet::draw_trunk_epoch), the one the
// registrar advertises; with a trunk key the relay_state is told that trunks
// authenticate (set_trunk_auth) before the watch starts.
std::unique_ptr<fleet_trunks> fleet_trunks_start(const profile& p, relay_state& st, uint64_t trunk_epoch);

}  // namespace stentor::control
