// The control plane's model of the relay: sessions, speakers, listeners and
// neighbours. It owns the truth; the data plane sees it only through the
// immutable snapshots this class publishes (RCU, copy-on-write chunks).
//
// Every operation is one "action" function, called alike by the static
// profile loader, the HTTP API and the CLI. An action either succeeds or
// throws action_error and changes nothing.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "action_error.h"
#include "config.h"
#include "session.h"
#include "stentor/dp_snapshot.h"

namespace stentor::dp {
struct dp_shared;
}

namespace stentor::control {

class admission;
class journal;
struct state_image;

// One listener removed by the overload controller (shed_newest).
struct shed_record {
    uint32_t session_id;
    uint32_t ip;
    unsigned port;
    unsigned tier;
    std::optional<ipv6_addr> ip6 = std::nullopt;    // an IPv6 listener (ip 0)
};

struct listener_view {
    uint32_t ip;
    unsigned port;
    unsigned tier;
    uint64_t seq;                    // join order (newest = highest), for shedding
    std::optional<ipv6_addr> ip6 = std::nullopt;    // an IPv6 listener (ip 0)
};

struct speaker_view {
    uint32_t ip;
    unsigned port;
    std::optional<uint32_t> ssrc;
    uint32_t slot = 0;               // policer slot in the data plane
    std::vector<srtp_key_info> srtp_keys;   // ids, suites, MKIs: never the keys
    bool trunk = false;              // an origin's trunk flow (docs/fleet.md)
    std::optional<ipv6_addr> ip6 = std::nullopt;    // a speaker on IPv6 (ip 0)
    // What the data plane counted for this speaker since it was added
    // (its policer entries, summed over the RX queues; docs/metrics.md).
    dp::dp_speaker_counts counts{};
};

// Why a listener leaves (relay_state::listener_del): counted per session.
enum class listener_removal : uint8_t { leave, consent_expired };

// What happened to a session since it was created (monotonic; a restart
// starts them again). Exported per session by /metrics and telemetry.
struct session_tally {
    dp::dp_speaker_counts speakers{};   // its speakers' packets (data plane, dp_session_counts)
    uint64_t joins = 0;                 // listeners added: API, bulk, token join, static (not journal replay)
    uint64_t leaves = 0;                // listeners removed by a delete or a token leave
    uint64_t consent_expired = 0;       // token listeners removed after consent_timeout_s of silence
    uint64_t shed = 0;                  // listeners removed by the overload controller
};

// One SSRC a session protects for (docs/srtp.md "Late joiners and the
// ROC"): where its egress numbering stands, so that the application can
// hand a listener that joins now the rollover counter with the key.
struct srtp_stream_view {
    uint32_t ssrc = 0;                  // host order
    uint64_t next_index = 0;            // the next egress index (0: nothing protected yet)
    uint64_t reserved = 0;              // the journal's reservation (0: none yet; ~0: no journal)
};

// A session as created: its params with the id, name, udp_port and
// max_listeners resolved, and what it holds now.
struct session_view : session_params {
    uint64_t nb_listeners;
    uint64_t listeners_per_tier[dp::max_tiers];
    uint64_t nb_listeners6 = 0;      // of nb_listeners, those on IPv6
    std::vector<speaker_view> speakers;
    std::vector<srtp_key_info> srtp_keys;   // egress (session) keys, the active one marked
    std::vector<srtp_key_info> trunk_keys;  // the trunk key its trunk listeners' copy is protected with (trunk_key_set)
    std::vector<srtp_stream_view> srtp_streams;   // the SSRCs it protects for (egress or trunk key)
    session_tally tally{};
};

// Which key set an SRTP key action is about: the session's (egress) or a
// speaker's (ingress).
struct srtp_key_owner {
    uint32_t session_id = 0;
    std::optional<std::pair<uint32_t, unsigned>> speaker;   // (ip, port); nullopt = the session
    std::optional<ipv6_addr> speaker_ip6 = std::nullopt;    // the speaker is on IPv6 (speaker's ip 0)
};

class relay_state {
public:
    // `shared` carries the snapshot slot, the RCU variable and the neighbour
    // table (limits.max_neighbours entries) that the data plane reads.
    relay_state(const profile& p, dp::dp_shared& shared, unsigned nb_fanout_shards);
    ~relay_state();
    relay_state(const relay_state&) = delete;
    relay_state& operator=(const relay_state&) = delete;

    // --- actions (one per operation) -------------------------------------
    session_view session_create(const session_params& sp);
    void session_end(uint32_t id);
    // trunk: an origin's flow of a fleet trunk (docs/fleet.md): the
    // session's trunk flows share one first-copy table (ST 2022-7), count
    // as one stream for admission, and are not journaled.
    void speaker_add(uint32_t session_id, uint32_t ip, unsigned port, std::optional<uint32_t> ssrc, bool trunk = false);
    void speaker_del(uint32_t session_id, uint32_t ip, unsigned port);
    // by_token: the listener joined by token (the join desk); journaled
    // with it, so that after a restart it is under consent again.
    // trunk: a fleet trunk to an edge (docs/fleet.md): admitted and counted
    // like any listener, never shed by the overload controller, not journaled
    // (the trunk keys in etcd are its truth).
    void listener_add(uint32_t session_id, uint32_t ip, unsigned port, unsigned tier, bool by_token = false,
                      bool trunk = false);
    void listener_del(uint32_t session_id, uint32_t ip, unsigned port,
                      listener_removal why = listener_removal::leave);
    // All or nothing: every item is validated (and admitted) before any is
    // added, so a refusal names the first bad item and changes nothing.
    void listener_add_bulk(uint32_t session_id, const std::vector<listener_spec>& items);
    // All or nothing too: every item must be a listener of the session, at
    // most once; the first that is not refuses the request ("listeners[i]:
    // ...") and nothing is removed. One journal record, one publish.
    void listener_del_bulk(uint32_t session_id, const std::vector<listener_addr>& items);
    // Either family (issue 15): the spec's ip6, when set, names an IPv6
    // peer; these are the actions the API, the journal and the join desk
    // call. IPv6 listeners live in lists of their own (dp_listener6) and
    // share everything else with IPv4 ones: the session's limit, the join
    // order (shedding, paging), admission, the journal.
    void speaker_add(uint32_t session_id, const speaker_spec& s);
    void speaker_del(uint32_t session_id, const listener_addr& a);
    void listener_add(uint32_t session_id, const listener_spec& l);
    void listener_del(uint32_t session_id, const listener_addr& a, listener_removal why = listener_removal::leave);
    // Moves a listener (either family) to another tier in one step, under
    // the state mutex, so that no published snapshot lacks it: its slot
    // leaves the old tier's list and takes one in the new tier's list of the
    // same shard; the session's counts, admission's and the join order
    // follow, and it is the newest listener of its new tier (shed first,
    // as a join there would be). It keeps "joined by token"; a session's
    // tally counts neither a join nor a leave. Admission judges the new
    // tier as a join there (admission::admit_move: the reserves of the
    // tiers above it, the join rates). One journal record
    // (listener_tier). Returns false, changing nothing and writing
    // nothing, when the listener is at `tier` already. Throws action_error
    // and changes nothing: not_found (no such session or listener),
    // invalid (a tier out of range; a fleet trunk listener, whose tier is
    // the trunk's), capacity and rate_limited (admission; the journal
    // cannot write), as listener_add does.
    bool listener_set_tier(uint32_t session_id, const listener_addr& a, unsigned tier);
    // Overload shedding: remove up to `k` listeners of `tier`, newest first,
    // across all sessions. Speakers are never touched.
    std::vector<shed_record> shed_newest(unsigned tier, size_t k);

    // SRTP keys (docs/srtp.md): never journaled, never shown. Adding a key
    // to a set announces it (packets under it are accepted, or, for the
    // session, listeners can be given it); activating the session's key
    // makes the relay protect with it from the next publish; removing ends
    // the overlap. The key bytes are wiped when the key is freed.
    void srtp_key_add(const srtp_key_owner& o, srtp_key_spec&& k);
    void srtp_key_activate(uint32_t session_id, const std::string& id);
    void srtp_key_del(const srtp_key_owner& o, const std::string& id);
    // Trunk authentication (docs/fleet.md "Trunk authentication"): the key
    // this relay protects the session's trunk listeners' copy with (SRTP,
    // one protect per packet for all its edges, at the packet's claimed
    // egress index). Returns false when a key with this id already is the
    // session's trunk key (nothing changes), true when set or replaced (the
    // new key is in place before the old one goes). Throws action_error:
    // not_found (no session), invalid (a bad key). Never journaled.
    bool trunk_key_set(uint32_t session_id, srtp_key_spec&& k);
    // Removes it; throws not_found when the session has none.
    void trunk_key_clear(uint32_t session_id);
    // true (a profile with [fleet] trunk_key_file): a session's trunk
    // listeners get nothing while it has no trunk key (counted
    // egress/trunk_no_key), and every trunk flow (speaker_add trunk=true)
    // must authenticate with its speaker keys (srtp_key_add on the
    // speaker), whatever the session's srtp.ingress.
    void set_trunk_auth(bool required);
    // The profile's static keys for the sessions and speakers that exist
    // (at every start: keys are not in the journal). Throws action_error
    // naming the session and key.
    void load_static_keys(const profile& p);

    // Called outside the state mutex after a session is created (ended=false)
    // or ended (ended=true), so the observer may call back into this object.
    void set_session_observer(std::function<void(uint32_t session_id, bool ended)> fn);
    // Admission control consulted by listener_add/_bulk (under the state
    // mutex) and told about every listener that leaves. nullptr = none.
    void set_admission(admission* a);

    // New [limits] (SIGHUP reload). Sizes of tables allocated at start
    // (max_sessions, max_speakers, max_neighbours) cannot change: the caller
    // refuses those. Speaker policers follow speaker_burst_pct from the next
    // publish; lower listener limits refuse joins, they remove nobody.
    void set_limits(const limits_config& l);
    // Write-ahead journal (journal.h): from now on every accepted action is
    // encoded under the state mutex and publish() writes and syncs it before
    // the change counts as published; while the journal cannot write,
    // actions are refused (capacity). nullptr = none.
    void set_journal(journal* j);
    // SRTP egress reservations (docs/srtp.md "Egress reservations"), with a
    // journal: an egress index is used only below a limit the journal holds,
    // so a restart resumes every SSRC above what the last run could have
    // used. srtp_reserve() queues a record for every protected SSRC whose
    // reservation runs low (or that has none); true if it queued any, and
    // the next publish writes them and then raises the limits. The control
    // plane's loop calls it every srtp_reserve_poll while `*reserving` (if
    // given) comes back true: it queued, or a session's egress needs
    // reservations (a journal, tables).
    bool srtp_reserve(bool* reserving = nullptr);
    static constexpr uint64_t srtp_reserve_block = 4096;   // indices per reservation (82 s at 50 packets/s)
    // The journal's restore: indices below `limit` of the session's SSRC
    // `ssrc_be` (wire order) may have been used; the session, now or when
    // created again under its id, starts that SSRC above them.
    void srtp_reserved(uint32_t session_id, uint32_t ssrc_be, uint64_t limit);
    // Ingress marks (docs/srtp.md "Ingress marks"), with a journal: where
    // each SRTP speaker's stream stands, written down when it moved (the
    // control plane's tick); a restarted relay starts the speaker's fresh
    // stream from there, so what was accepted before cannot be replayed
    // and the ROC goes on. true if a record was queued.
    bool srtp_mark_ingress();
    // The journal's restore of one mark.
    void srtp_ingress_marked(uint32_t session_id, const listener_addr& speaker, uint32_t ssrc_be, uint64_t index);
    // Trunk floors (docs/fleet.md "A trunk flow added again"): a trunk
    // flow removed (speaker_del, session_end) leaves where its stream stood
    // under its key ids; added again under one of them, its fresh stream
    // starts there (keyset::floor), so a packet captured before is a
    // replay. At most limits.max_speakers are held; past that the least
    // recently written goes (evictions).
    struct trunk_floor_stats {
        size_t floors = 0;
        uint64_t evictions = 0;
    };
    trunk_floor_stats trunk_floors() const;
    // The journal's restore (a snapshot's session_ids record): ids below
    // `next` were given, live or ended; automatic ids start above them.
    void session_ids_given(uint64_t next);
    // Journal replay at start: admission plans the replayed listeners (a
    // smaller profile refuses them) but takes no join tokens: they joined
    // before the restart.
    void set_replay(bool on);
    // The whole model, copied under the mutex (snapshots, tests).
    state_image image() const;

    // Apply everything changed since the last call: build the next snapshot,
    // swap it in, write the journal, wait for the grace period, free what is
    // no longer shared.
    void publish();

    // Load the static section of the profile (sessions, speakers, listeners).
    void load_static(const profile& p);

    // --- queries -----------------------------------------------------------
    std::vector<session_view> sessions() const;
    std::optional<session_view> session(uint32_t id) const;
    // A page of a session's listeners in join order: after the listener
    // whose seq is `after` (a cursor: the last seq of the previous page;
    // O(log n + limit)), then skipping `offset` more (walked, not copied).
    std::vector<listener_view> listeners(uint32_t session_id, size_t offset, size_t limit,
                                         std::optional<uint64_t> after = std::nullopt) const;
    uint64_t nb_listeners() const;
    // The listeners (session, ip, port, tier): those that joined by token
    // when by_token_only, else all.
    std::vector<shed_record> listener_refs(bool by_token_only) const;
    // The next hops (host order, deduplicated) of these listener addresses
    // whose neighbour entry holds no MAC yet: ARP not answered. A join is
    // heard only once its next hop is resolved (control_plane::wait_resolved).
    std::vector<uint32_t> unresolved_next_hops(const std::vector<uint32_t>& ips) const;
    // Either family, one lock for all: for each peer, 1 when the neighbour
    // entry of its next hop holds a MAC (or the peer has no route or no entry:
    // nothing to wait for), else 0. What the join desk waits on before it
    // answers a join (docs/join.md).
    std::vector<uint8_t> next_hops_resolved(const std::vector<listener_addr>& peers) const;
    uint64_t published_version() const;

    // IPv6 next hops (issue 15; docs/architecture.md "IPv6 next hops"). The
    // neighbour entry an IPv6 destination is sent through: the address itself
    // when it is in a port's ipv6 prefix, else that port's gateway6; the
    // entry is created on first use (resolved by NS/NA, or pinned by
    // gateway6_mac) and held until every reference is dropped. Throws
    // action_error: invalid (no route), capacity (limits.max_neighbours).
    // Code inside relay_state::impl (listener actions, under the mutex)
    // calls impl::route6 / neigh6_available / neigh6_ref / neigh6_unref
    // directly; these lock and are for everyone else (tests, tools).
    struct next_hop6 {
        uint32_t neigh_idx;   // index in dp_shared::neigh: what a listener record stores
        uint16_t port_idx;    // egress port (profile order)
        ipv6_addr via;        // the next hop's address
    };
    next_hop6 next_hop6_ref(const ipv6_addr& dst);
    void next_hop6_unref(uint32_t neigh_idx);
    // The entry holds a MAC (either family): a destination behind it is heard.
    bool next_hop_resolved(uint32_t neigh_idx) const;
    // The MAC the fan-out sends to through the entry (nullopt: none yet).
    std::optional<std::array<uint8_t, 6>> next_hop_mac(uint32_t neigh_idx) const;
    std::array<uint64_t, dp::max_tiers> listeners_per_tier() const;

    // Publish batching. Every successful action bumps a change mark; an
    // action's caller takes change_mark() afterwards and waits until a
    // publish covering it has passed its grace period, i.e. the change is
    // what the data plane forwards with (and, with a journal, on disk).
    // Many callers share one publish.
    uint64_t change_mark() const;
    bool wait_published(uint64_t mark, std::chrono::milliseconds timeout) const;
    // The publisher sleeps here until something is pending (or timeout).
    bool wait_pending(std::chrono::milliseconds timeout) const;
    bool has_pending() const;

    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

}  // namespace stentor::control
