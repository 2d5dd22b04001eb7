#include "state.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <rte_rcu_qsbr.h>

#include "admission.h"
#include "dp_memory.h"
#include "ip6.h"
#include "journal.h"
#include "stentor/dp_srtp.h"
#include "stentor/dp_worker.h"
#include "stentor/srtp.h"

namespace stentor::control {
namespace {

using dp::dp_listener;
using dp::dp_listener_chunk;
using dp::dp_listener_list;
using dp::listener_chunk_size;
using dp::max_tiers;
using dp::dp_listener6;
using dp::dp_listener6_chunk;
using dp::dp_listener6_list;
using dp::listener6_chunk_size;

// What the data plane reads comes from dp_memory (2 MiB pages) and goes
// back there: dp_free, never std::free.
template <typename T>
T* alloc_zeroed(size_t bytes) {
    return static_cast<T*>(dp_alloc(bytes));
}

inline uint64_t ep_key(uint32_t ip, unsigned port) { return (uint64_t{ip} << 16) | port; }

// A setting the shared rules refused (config.h), as the action says it.
std::string describe(const setting_error& e) { return e.setting + ": " + e.reason; }
action_error invalid(const setting_error& e) { return action_error(error_code::invalid, describe(e)); }

// An IPv6 listener: the address and port rules the profile shares
// (config.h check_peer6), the tier. The route is route6's ("no route to
// ...", as docs/api.md says), not check_listener's wording.
std::optional<setting_error> check_listener6(const listener_spec& l, const profile& p) {
    if (auto e = check_peer6("listener", *l.ip6, l.port, p)) return e;
    if (l.tier >= dp::max_tiers)
        return setting_error{"tier", std::to_string(l.tier) + " is out of range 0.." + std::to_string(dp::max_tiers - 1)};
    return std::nullopt;
}

inline bool in_subnet(uint32_t ip, uint32_t net, unsigned prefix) {
    const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
    return (ip & mask) == (net & mask);
}

// The listeners of one (session, shard, tier) of one family, in
// copy-on-write chunks: IPv4 (8-byte dp_listener) or IPv6 (32-byte
// dp_listener6) records, the same scheme.
template <class Chunk, class List>
struct chunked_list {
    using chunk_type = Chunk;
    static constexpr uint32_t chunk_size = sizeof(Chunk::l) / sizeof(Chunk::l[0]);
    std::vector<Chunk*> chunks;
    std::vector<bool> fresh;              // copied (private) since the last publish
    std::vector<uint32_t> free_slots;
    uint32_t nb_slots = 0;
    uint32_t nb_live = 0;
    bool dirty = false;
    List* published = nullptr;
};
using list_state = chunked_list<dp_listener_chunk, dp_listener_list>;
using list6_state = chunked_list<dp_listener6_chunk, dp_listener6_list>;
static_assert(list_state::chunk_size == listener_chunk_size && list6_state::chunk_size == listener6_chunk_size);

// An IPv6 listener's key in the maps and join orders that IPv4 listeners
// key by ep_key() (48 bits): bit 62 set, the low bits an id into
// impl::ep6_by_id (its address and port). join_order::hole (all ones) is
// never an id. For an IPv6 listener, listener_rec::neigh holds the
// neighbour entry's index (neigh6_unref takes it), not an address.
inline constexpr uint64_t key6_tag = uint64_t{1} << 62;
inline bool is_key6(uint64_t k) { return (k >> 62) == 1; }

struct ep6 {
    ipv6_addr ip;
    uint16_t port;
    bool operator==(const ep6&) const = default;
};
struct ep6_hash {
    size_t operator()(const ep6& e) const noexcept {
        uint64_t h, l;
        std::memcpy(&h, e.ip.data(), 8);
        std::memcpy(&l, e.ip.data() + 8, 8);
        uint64_t k = h ^ (l * 0x9e3779b97f4a7c15ULL) ^ e.port;
        k ^= k >> 29;
        k *= 0xbf58476d1ce4e5b9ULL;
        k ^= k >> 32;
        return static_cast<size_t>(k);
    }
};

struct listener_rec {
    uint8_t shard;
    uint8_t tier;
    uint8_t port_idx;     // egress port (admission accounts load per port)
    uint8_t flags;        // lrec_by_token: under consent (join_desk.h); lrec_trunk: a fleet trunk
    uint32_t slot;
    uint32_t neigh;
    uint32_t order_pos;   // index in its session's join_order for its tier (kept by compaction)
    uint64_t seq;
};
static_assert(sizeof(listener_rec) == 24, "listener_rec grew: 1 M listeners pay for every byte");
constexpr uint8_t lrec_by_token = 0x01;
constexpr uint8_t lrec_trunk = 0x02;   // never shed, never journaled (docs/fleet.md)
// The one place a listener's flags are made, for either family.
constexpr uint8_t lrec_flags(bool by_token, bool trunk) {
    return static_cast<uint8_t>((by_token ? lrec_by_token : 0) | (trunk ? lrec_trunk : 0));
}

// The join order of one (session, tier): appended on join (seq only grows,
// so the vector stays sorted). Each listener knows its entry's index
// (listener_rec::order_pos), so a leave punches its hole in O(1), without a
// search; holes are squeezed out once they are three quarters of the
// entries, and the entries that move tell their listener their new index
// (amortised: at most one map update per three leaves). Paging and shedding
// read it in place: no copy or sort of a session under the state mutex
// (issue 10 item 10: at 1 M listeners that copy+sort held the mutex for
// ~0.3 s per page request and every join waited behind it).
// (A search per leave instead, binary then interpolated, cost bench_joins
// BM_listener_del_publish 13 -> 6.5, then -> ~9.5 M leaves/s at 1 M.)
struct join_order {
    static constexpr uint64_t hole = ~uint64_t{0};   // ep_key() is 48 bits: never a key
    struct entry {
        uint64_t seq;
        uint64_t key;
    };
    std::vector<entry> e;
    size_t holes = 0;

    uint32_t add(uint64_t seq, uint64_t key) {
        e.push_back({seq, key});
        return static_cast<uint32_t>(e.size() - 1);
    }
    // Punch the hole at `pos`; `moved(key, new_pos)` is told of every live
    // entry a compaction moves.
    template <class Moved>
    void remove(uint32_t pos, Moved&& moved) {
        if (pos >= e.size() || e[pos].key == hole) return;
        e[pos].key = hole;
        if (++holes > 64 && holes * 4 > e.size() * 3) {
            size_t j = 0;
            for (size_t i = 0; i < e.size(); ++i) {
                if (e[i].key == hole) continue;
                if (i != j) {
                    e[j] = e[i];
                    moved(e[j].key, static_cast<uint32_t>(j));
                }
                ++j;
            }
            e.resize(j);
            holes = 0;
        }
    }
    size_t live() const { return e.size() - holes; }
};

// The session as created (id, name, port and limit resolved) and its state.
struct session_state : session_params {
    uint32_t index = 0;
    uint64_t generation = 0;
    std::vector<speaker_view> speakers;
    std::unordered_map<uint64_t, listener_rec> listeners;
    std::array<join_order, max_tiers> order;   // per tier, oldest first
    // [shard * max_tiers + tier] for the session's listeners, then the same
    // again for its fleet trunk listeners (list_at), which the data plane
    // serves from the session's trunk twin (dp_session::trunk).
    std::vector<list_state> lists;
    std::vector<list6_state> lists6;      // the same for IPv6 listeners
    std::unordered_map<ep6, uint64_t, ep6_hash> keys6;   // IPv6 listener -> its key in `listeners`
    std::vector<uint64_t> shard_live;
    uint64_t tier_live[max_tiers]{};
    join_counts live{};                   // [family][egress port][tier]: what admission holds for this session
    bool dirty = true;
    dp::dp_session* published = nullptr;
    // SRTP keys (never journaled: keys do not rest on disk, docs/srtp.md).
    srtp_keyset_model srtp_tx;                          // egress: the session key(s)
    std::map<uint32_t, srtp_keyset_model> speaker_keys; // ingress, by speaker slot
    srtp::keyset* srtp_tx_published = nullptr;
    // Trunk authentication (docs/fleet.md): the key the trunk listeners'
    // copy is protected with (relay_state::trunk_key_set), and the twin
    // the data plane serves them from (nullptr: no trunk listener).
    srtp_keyset_model trunk_tx;
    srtp::keyset* trunk_tx_published = nullptr;
    dp::dp_session* trunk_published = nullptr;
    // First-copy table of the session's trunk flows (dp_dedup), allocated
    // with the first one, freed after the grace period of the session's end.
    dp::dp_dedup* dedup = nullptr;
    // Egress index high-water marks by SSRC (dp_srtp_egress), allocated when
    // the session first protects, freed after the grace period of its end.
    dp::dp_srtp_egress* srtp_streams = nullptr;
    session_tally tally{};                // joins, leaves, ... (the speakers' counts come from the data plane)

    // Distinct streams the speakers bring: each speaker's, but the trunk
    // flows of a session (its origins) carry one stream together (the
    // edge forwards the first copy of each packet).
    unsigned speaker_streams() const {
        unsigned n = 0;
        bool trunk = false;
        for (const auto& sp : speakers) {
            if (sp.trunk) trunk = true;
            else ++n;
        }
        return n + (trunk ? 1 : 0);
    }
    // Where a listener's list is: its own lists or the trunk listeners' half.
    size_t list_at(bool trunk, unsigned shard, unsigned tier) const {
        return (trunk ? lists.size() / 2 : 0) + size_t{shard} * max_tiers + tier;
    }
    bool has_trunk_flow() const {
        return std::any_of(speakers.begin(), speakers.end(), [](const speaker_view& v) { return v.trunk; });
    }
    // Streams each listener receives: every speaker's in a forward session
    // (planned as one before the first speaker arrives), the mix otherwise.
    unsigned streams() const {
        return mode == session_mode::mix ? 1u : std::max(1u, speaker_streams());
    }
    // Egress SRTP (fixed at the session's creation) adds its tag and MKI
    // to every replica: planned at the largest (AES-GCM's 16-byte tag and
    // the longest MKI), a few bytes above HMAC-SHA1-80's 10.
    unsigned trailer() const {
        return srtp_egress && *srtp_egress == srtp_egress_mode::session_key ? srtp::max_trailer : 0;
    }
    listener_cost per_listener() const { return cost_of(frame_ms, max_bitrate_kbps, streams(), trailer()); }
    listener_cost one_stream() const { return cost_of(frame_ms, max_bitrate_kbps, 1, trailer()); }
};

struct neigh_state {
    uint32_t idx;
    uint64_t refs;
};

}  // namespace

struct relay_state::impl {
    profile prof;
    dp::dp_shared& sh;
    unsigned nb_shards;
    mutable std::mutex mu;
    std::mutex publish_mu;                                          // one publish at a time
    mutable std::condition_variable published_cv;                   // publish finished (grace period passed)
    mutable std::condition_variable pending_cv;                     // something to publish
    uint64_t changes = 0;                                           // bumped by every successful action
    uint64_t built_changes = 0;                                     // `changes` covered by the last snapshot built
    uint64_t published_changes = 0;                                 // ... and whose grace period has passed
    std::shared_ptr<std::function<void(uint32_t, bool)>> observer;
    admission* adm = nullptr;
    journal* jr = nullptr;
    std::string jr_pending;                                         // records since the last publish took them
    std::string jr_error;                                           // the journal cannot write: actions refused

    std::map<uint32_t, std::unique_ptr<session_state>> sessions;   // by id
    std::vector<session_state*> by_index;
    std::vector<uint32_t> free_index;
    bool replay = false;                                            // journal replay: not counted in session tallies
    uint64_t nb_listeners = 0;
    uint64_t next_seq = 1;
    uint64_t next_generation = 1;
    uint64_t version = 0;
    // Automatic session ids are given upwards from here: above every id
    // created so far, ended ones included (the journal keeps it across
    // restarts), so none is given twice while they last. A join token is
    // bound to its session's id (docs/join.md): an ended session's id given
    // again would let its unexpired tokens join whatever session took it.
    uint64_t next_session_id = 1;

    std::unordered_map<uint32_t, neigh_state> neigh_by_ip;          // next hop (host order)
    std::unordered_map<ipv6_addr, neigh_state, ipv6_addr_hash> neigh6_by_ip;   // IPv6 next hops
    std::vector<ipv6_addr> neigh6_addr;                             // by entry index: its IPv6 next hop
    std::vector<uint32_t> neigh_free;
    std::vector<uint32_t> neigh_release;                            // freed after the next grace period
    std::vector<uint32_t> speaker_free;                             // policer slots
    std::vector<ep6> ep6_by_id;                                     // IPv6 listener keys (key6_tag | id)
    std::vector<uint32_t> ep6_free;
    bool flows6_dirty = true;
    dp::dp_flow6* flows6 = nullptr;
    uint32_t flow6_mask = 0;
    std::vector<uint32_t> speaker_release;

    bool flows_dirty = true;
    bool neigh_dirty = true;
    bool index_dirty = true;
    dp::dp_flow* flows = nullptr;
    uint32_t flow_mask = 0;
    dp::dp_neigh_key* neigh_keys = nullptr;
    uint32_t neigh_key_mask = 0;
    dp::dp_neigh6_key* neigh6_keys = nullptr;
    uint32_t neigh6_key_mask = 0;
    uint32_t* neigh_active = nullptr;                               // published: indices some listener uses
    uint32_t nb_neigh_active = 0;
    std::vector<uint32_t> neigh_fresh;                              // allocated since the last publish
    dp::dp_session** sess_array = nullptr;
    dp::dp_snapshot* root = nullptr;
    dp::dp_session empty_session{};                                 // occupies free indexes

    std::vector<void*> retired;

    // A dirty listener list (either family) published afresh: the old
    // version retired, the new one built from the chunks (nullptr when the
    // list is empty). Returns what the session's snapshot points at.
    template <typename Published, typename State>
    const Published* publish_list(State& l) {
        if (l.dirty) {
            if (l.published) retired.push_back(l.published);
            l.published = nullptr;
            if (l.nb_slots > 0) {
                // A small list carries a copy of its records right after
                // its header (dp_snapshot.h, listener_inline_max), chunks[0]
                // pointing at the copy; a bigger one points at the chunks.
                const bool small = l.nb_slots <= dp::listener_inline_max;
                const size_t bytes = sizeof(l.chunks[0]->l[0]) * l.nb_slots;
                auto* pl = alloc_zeroed<Published>(small ? dp::listener_inline_offset + bytes
                                                         : sizeof(Published) + sizeof(void*) * l.chunks.size());
                pl->nb_slots = l.nb_slots;
                pl->nb_live = l.nb_live;
                pl->nb_chunks = small ? 1 : static_cast<uint32_t>(l.chunks.size());
                if (small) {
                    auto* at = reinterpret_cast<char*>(pl) + dp::listener_inline_offset;
                    std::memcpy(at, l.chunks[0]->l, bytes);
                    pl->chunks[0] = reinterpret_cast<typename State::chunk_type*>(at);
                } else {
                    std::copy(l.chunks.begin(), l.chunks.end(), pl->chunks);
                }
                l.published = pl;
            }
            l.dirty = false;
            std::fill(l.fresh.begin(), l.fresh.end(), false);
        }
        return l.published;
    }
    // SRTP: keys replaced or removed, freed (wiped) after the grace period;
    // the published keysets by speaker slot and their array.
    std::vector<srtp::key*> retired_keys;
    // Egress index high-water marks by session id: (slot tag, next index),
    // of ended sessions and, from the journal's restore, of sessions before
    // a restart. A session created (again) under the id starts its SSRCs
    // above them. With a journal they are also on disk (srtp_reserve
    // records); at most max_egress_hw ended sessions are kept, the oldest
    // ended forgotten first (docs/srtp.md "Egress reservations").
    struct egress_marks {
        uint64_t ended = 0;                                 // egress_hw_seq when it ended (0: restored)
        std::vector<std::pair<uint64_t, uint64_t>> marks;   // (tag, next)
    };
    std::map<uint32_t, egress_marks> egress_hw;
    std::map<uint64_t, uint32_t> egress_hw_ended;                  // ended seq -> session id, oldest first
    uint64_t egress_hw_seq = 0;
    static constexpr size_t max_egress_hw = 65536;
    // Packets an ended session's lcores may still protect between the read
    // of its marks and the grace period (a few at 50 packets/s; generous).
    static constexpr uint64_t egress_hw_margin = 1024;
    // Egress reservations (relay_state::srtp_reserve): on with a journal.
    // Sessions whose egress table exists; reservations journaled and not
    // yet durable (applied to the slots by publish once they are).
    bool srtp_reserving = false;
    std::set<uint32_t> srtp_tables;
    // Sessions where a new SSRC is likely (table just built, speaker just
    // added), looked at on every call (every 10 ms) for srtp_watch_for;
    // every table once per srtp_scan_every (a refill has 41 s of margin).
    // Scanning all tables every 10 ms would read 16 lines of each under the
    // state mutex: 160 000 lines per 10 ms at 10 000 encrypted sessions.
    std::map<uint32_t, std::chrono::steady_clock::time_point> srtp_watch;
    std::chrono::steady_clock::time_point srtp_next_scan{};
    static constexpr std::chrono::seconds srtp_watch_for{10};
    static constexpr std::chrono::seconds srtp_scan_every{1};
    void watch_srtp(uint32_t id) {
        if (srtp_reserving) srtp_watch[id] = std::chrono::steady_clock::now() + srtp_watch_for;
    }
    struct reservation {
        uint32_t session_id;
        uint64_t generation;
        uint64_t tag;
        uint64_t limit;
    };
    std::vector<reservation> reservations;
    std::vector<reservation> reservations_inflight;                 // taken by a publish, not yet durable
    // Ingress marks (docs/srtp.md "Ingress marks"): where each SRTP
    // speaker's stream stood when the journal last wrote it, by (session,
    // speaker address, port); stamped into the speaker's keyset so that a
    // fresh stream (after a restart) goes on from there.
    using speaker_key = std::tuple<uint32_t, uint32_t, ipv6_addr, unsigned>;
    struct ingress_mark {
        uint32_t ssrc_be = 0;
        uint64_t index = 0;
    };
    std::map<speaker_key, ingress_mark> ingress_marks;
    static constexpr uint64_t ingress_mark_step = 256;
    static speaker_key key_of(uint32_t session_id, const speaker_view& sp) {
        return {session_id, sp.ip, sp.ip6.value_or(ipv6_addr{}), sp.port};
    }
    // Trunk floors (docs/fleet.md "A trunk flow added again"): where a
    // trunk flow's stream stood when the flow was removed, by (session,
    // origin address, port, the trunk key's id). A trunk key's id names the
    // origin's epoch, and its bytes follow from (session, origin, epoch):
    // a flow added again under a key with that id meets the same indices
    // again, so its fresh stream starts from the floor (keyset::floor, as
    // the journal's marks do) and what was captured before is a replay.
    // Not tied to the session's life (an edge ends an idle trunk session
    // and makes it again under the same key) nor to the journal (trunks are
    // not journaled). Bounded: at most limits.max_speakers floors (one for
    // every flow the speaker table can hold at once), the least recently
    // written evicted first and counted.
    using trunk_floor_key = std::tuple<uint32_t, uint32_t, ipv6_addr, unsigned, std::string>;
    struct trunk_floor {
        uint32_t ssrc_be = 0;
        uint64_t index = 0;
        uint64_t age = 0;          // trunk_floor_ages' key: the order floors were written in
    };
    std::map<trunk_floor_key, trunk_floor> trunk_floors;
    std::map<uint64_t, trunk_floor_key> trunk_floor_ages;          // oldest first
    uint64_t trunk_floor_clock = 0;
    uint64_t trunk_floor_evictions = 0;
    // A removed trunk flow's slot until its grace period has passed: read
    // again then, when no RX lcore writes its entries any more.
    struct trunk_floor_pending {
        uint32_t session_id;
        speaker_view sp;
        std::vector<std::string> key_ids;
    };
    std::map<uint32_t, trunk_floor_pending> trunk_floor_slots;     // by policer slot
    size_t trunk_floor_cap() const { return std::max<size_t>(1, prof.limits.max_speakers); }
    // The highest index any RX queue's entry of `slot` accepted, and its
    // SSRC (racy reads of whole words while lcores may still write, as
    // mark_ingress does; exact after the slot's grace period).
    ingress_mark best_ingress(uint32_t slot) const {
        ingress_mark best;
        for (uint32_t q = 0; q < sh.nb_rx_queues; ++q) {
            const dp::dp_policer& e = dp::policer_of(sh, q, slot);
            if (__atomic_load_n(&e.srtp_rx.started, __ATOMIC_RELAXED) == 0) continue;
            const uint64_t top = __atomic_load_n(&e.srtp_rx.top, __ATOMIC_RELAXED);
            if (top > best.index) best = {__atomic_load_n(&e.srtp_rx.ssrc_be, __ATOMIC_RELAXED), top};
        }
        return best;
    }
    // Record where the flow's stream stands under each of its key ids.
    void write_trunk_floor(uint32_t session_id, const speaker_view& sp, const std::vector<std::string>& ids,
                           const ingress_mark& m) {
        if (m.index == 0) return;
        for (const auto& id : ids) {
            trunk_floor_key k{session_id, sp.ip, sp.ip6.value_or(ipv6_addr{}), sp.port, id};
            auto it = trunk_floors.find(k);
            if (it != trunk_floors.end()) {
                if (it->second.ssrc_be == m.ssrc_be && it->second.index >= m.index) continue;
                trunk_floor_ages.erase(it->second.age);
            } else {
                while (trunk_floors.size() >= trunk_floor_cap() && !trunk_floor_ages.empty()) {
                    trunk_floors.erase(trunk_floor_ages.begin()->second);
                    trunk_floor_ages.erase(trunk_floor_ages.begin());
                    ++trunk_floor_evictions;
                }
                it = trunk_floors.emplace(k, trunk_floor{}).first;
            }
            it->second = {m.ssrc_be, m.index, ++trunk_floor_clock};
            trunk_floor_ages.emplace(it->second.age, k);
            keys_dirty = true;   // a flow added again meanwhile gets the higher floor at the next publish
        }
    }
    // A trunk flow goes (speaker_del, session_end): its floor now, and again
    // once its slot's grace period has passed (release_slots). Before its
    // keys are dropped: the floor is bound to their ids.
    void note_trunk_floor(uint32_t session_id, const session_state& s, const speaker_view& sp) {
        if (!sp.trunk) return;
        const auto k = s.speaker_keys.find(sp.slot);
        if (k == s.speaker_keys.end()) return;
        trunk_floor_pending p{session_id, sp, {}};
        for (const auto& info : k->second.info(false)) p.key_ids.push_back(info.id);
        write_trunk_floor(session_id, sp, p.key_ids, best_ingress(sp.slot));
        trunk_floor_slots[sp.slot] = std::move(p);
    }
    // The floor of a trunk speaker whose keyset holds one of the ids.
    const trunk_floor* trunk_floor_of(uint32_t session_id, const speaker_view& sp,
                                      const srtp_keyset_model& m) const {
        if (!sp.trunk || trunk_floors.empty()) return nullptr;
        const trunk_floor* best = nullptr;
        for (const auto& info : m.info(false)) {
            const auto it =
                trunk_floors.find({session_id, sp.ip, sp.ip6.value_or(ipv6_addr{}), sp.port, info.id});
            if (it != trunk_floors.end() && (best == nullptr || it->second.index > best->index)) best = &it->second;
        }
        return best;
    }
    static void raise_mark(std::vector<std::pair<uint64_t, uint64_t>>& hw, uint64_t tag, uint64_t next) {
        auto it = std::find_if(hw.begin(), hw.end(), [&](const auto& p) { return p.first == tag; });
        if (it == hw.end()) hw.emplace_back(tag, next);
        else it->second = std::max(it->second, next);
    }
    std::vector<srtp::keyset*> speaker_keysets;                     // by slot (limits.max_speakers)
    const srtp::keyset** speaker_keys_arr = nullptr;
    bool keys_dirty = true;
    // Trunk authentication (set_trunk_auth): trunk listeners get only what
    // the trunk key protected, trunk flows must authenticate.
    bool trunk_auth = false;
    unsigned srtp_users() const { return sh.nb_rx_queues + 1; }     // RX lcores + the mixer

    // The keys of a set that goes away (its session or speaker), freed
    // after the grace period; the next snapshot stops naming them.
    void drop_keys(srtp_keyset_model& m) {
        for (auto* k : m.release_all()) retired_keys.push_back(k);
    }
    void take_retired(srtp_keyset_model& m) {
        for (auto* k : m.retire()) retired_keys.push_back(k);
    }

    impl(const profile& p, dp::dp_shared& s, unsigned shards) : prof(p), sh(s), nb_shards(shards) {
        // The slot lists of the tables [limits] sizes (relay.cc allocates
        // the tables): at the ceilings tens of megabytes, named if refused.
        const auto reserve = [](auto& v, uint32_t n, std::string_view table, const char* setting) {
            try {
                v.reserve(n);
            } catch (const std::bad_alloc&) {
                throw table_alloc_failed(table, setting, std::string(setting) + " " + std::to_string(n), n,
                                         sizeof(v[0]));
            }
        };
        reserve(neigh_free, sh.nb_neigh, "the neighbour slot list", "limits.max_neighbours");
        reserve(speaker_free, p.limits.max_speakers, "the speaker slot list", "limits.max_speakers");
        reserve(speaker_keysets, p.limits.max_speakers, "the speakers' SRTP key list", "limits.max_speakers");
        for (uint32_t i = sh.nb_neigh; i-- > 0;) neigh_free.push_back(i);
        for (uint32_t i = p.limits.max_speakers; i-- > 0;) speaker_free.push_back(i);
        speaker_keysets.assign(p.limits.max_speakers, nullptr);
    }

    ~impl() {
        sh.snapshot.store(nullptr, std::memory_order_release);
        if (sh.rcu != nullptr) rte_rcu_qsbr_synchronize(sh.rcu, RTE_QSBR_THRID_INVALID);
        for (void* p : retired) dp_free(p);
        for (auto& [id, s] : sessions) {
            for (auto& l : s->lists) {
                for (auto* c : l.chunks) dp_free(c);
                dp_free(l.published);
            }
            for (auto& l : s->lists6) {
                for (auto* c : l.chunks) dp_free(c);
                dp_free(l.published);
            }
            dp_free(s->published);
            dp_free(s->srtp_tx_published);
            dp_free(s->trunk_published);
            dp_free(s->trunk_tx_published);
            dp_free(s->dedup);
            dp_free(s->srtp_streams);
        }
        for (auto* ks : speaker_keysets) dp_free(ks);
        dp_free(speaker_keys_arr);
        for (auto* k : retired_keys) srtp::key_free(k);
        dp_free(flows);
        dp_free(flows6);
        dp_free(neigh_keys);
        dp_free(neigh6_keys);
        dp_free(neigh_active);
        dp_free(sess_array);
        if (root) dp_free(const_cast<uint32_t*>(root->neigh_fresh));
        dp_free(root);
    }

    void mark_changed() {
        if (changes++ == built_changes) pending_cv.notify_all();
    }

    // An action that cannot be made durable is not accepted (nothing changes).
    void check_journal() const {
        if (!jr_error.empty())
            throw action_error(error_code::capacity, "journal: " + jr_error + "; changes are refused until it can write again");
    }
    void journal_record(const jr::record& r) {
        if (jr != nullptr) jr::encode(r, jr_pending);
    }

    session_state& get(uint32_t id) {
        auto it = sessions.find(id);
        if (it == sessions.end())
            throw action_error(error_code::not_found, "no session " + std::to_string(id));
        return *it->second;
    }

    // ---- neighbours

    // Next hop for a listener: itself when on-link on a port, else the first
    // port's gateway. Returns (next hop, port index).
    std::pair<uint32_t, uint16_t> route(uint32_t ip) const {
        for (size_t p = 0; p < prof.ports.size(); ++p)
            if (in_subnet(ip, prof.ports[p].ipv4, prof.ports[p].prefix_len))
                return {ip, static_cast<uint16_t>(p)};
        for (size_t p = 0; p < prof.ports.size(); ++p)
            if (prof.ports[p].gateway) return {*prof.ports[p].gateway, static_cast<uint16_t>(p)};
        throw action_error(error_code::invalid, "no route to " + format_ipv4(ip) +
                                               ": not on a port's subnet and no gateway configured");
    }

    // Reserve the neighbour entry for a next hop (check only: no change).
    bool neigh_available(uint32_t nexthop) const {
        return neigh_by_ip.count(nexthop) != 0 || !neigh_free.empty();
    }

    // Unreferenced entries stay resolved (a listener that leaves and comes
    // back needs no new ARP) until the table runs low; then they are
    // released, and reused only after the grace period of the next publish.
    void reclaim_idle() {
        if (neigh_free.size() >= std::max<size_t>(1, sh.nb_neigh / 8)) return;
        for (auto it = neigh_by_ip.begin(); it != neigh_by_ip.end();) {
            if (it->second.refs == 0) {
                neigh_release.push_back(it->second.idx);
                it = neigh_by_ip.erase(it);
                neigh_dirty = true;
            } else {
                ++it;
            }
        }
        for (auto it = neigh6_by_ip.begin(); it != neigh6_by_ip.end();) {
            if (it->second.refs == 0) {
                neigh_release.push_back(it->second.idx);
                it = neigh6_by_ip.erase(it);
                neigh_dirty = true;
            } else {
                ++it;
            }
        }
    }

    uint32_t neigh_ref(uint32_t nexthop, uint16_t port) {
        auto it = neigh_by_ip.find(nexthop);
        if (it != neigh_by_ip.end()) {
            if (it->second.refs++ == 0) neigh_dirty = true;   // back in the active list
            return it->second.idx;
        }
        const uint32_t idx = neigh_free.back();
        neigh_free.pop_back();
        // The entry is in no published snapshot (fresh, or released after a
        // grace period): the control plane is its only writer until publish.
        dp::dp_neigh& e = sh.neigh[idx];
        e.mac_word.store(0, std::memory_order_relaxed);
        e.cand_word = e.probe_tsc = e.confirmed_tsc = 0;
        e.outstanding = e.saw_current = e.saw_cand = e.confirming = e.unanswered = e.resolved_now = e.conflict = 0;
        e.port_id = port;
        e.ip_be = __builtin_bswap32(nexthop);
        e.flags = 0;
        const auto& pc = prof.ports[port];
        if (pc.gateway && *pc.gateway == nexthop && pc.gateway_mac) {
            // Static neighbour: valid at once, never asked for, never learnt.
            uint64_t word = 0;
            std::memcpy(&word, pc.gateway_mac->data(), 6);
            e.flags = dp::neigh_static;
            e.mac_word.store(word | dp::neigh_valid, std::memory_order_relaxed);
        }
        neigh_by_ip.emplace(nexthop, neigh_state{idx, 1});
        neigh_fresh.push_back(idx);
        neigh_dirty = true;
        return idx;
    }

    void neigh_unref(uint32_t nexthop) {
        auto it = neigh_by_ip.find(nexthop);
        if (it == neigh_by_ip.end()) return;
        if (--it->second.refs == 0) neigh_dirty = true;   // out of the active list: no longer asked for
    }

    // ---- IPv6 next hops (issue 15; docs/architecture.md "IPv6 next hops")
    //
    // The interface IPv6 listeners use, like route()/neigh_ref() for IPv4:
    //   auto [nexthop, port] = route6(ip);          // throws action_error(invalid)
    //   if (!neigh6_available(nexthop)) throw ...;   // capacity (max_neighbours)
    //   const uint32_t idx = neigh6_ref(nexthop, port);   // the listener's neigh_idx
    //   ... neigh6_unref(idx) when it leaves (by index: no 16-byte key to keep).
    // The entries live in the same table as IPv4 next hops (one free list,
    // limits.max_neighbours in all), flagged dp::neigh_ipv6; the ARP owner
    // resolves them with neighbour solicitations under the same rules.

    // Next hop for an IPv6 listener: itself when it is in a port's ipv6
    // prefix, else the gateway6 of the first port that has one. Returns
    // (next hop, port index).
    std::pair<ipv6_addr, uint16_t> route6(const ipv6_addr& ip) const {
        for (size_t p = 0; p < prof.ports.size(); ++p)
            if (prof.ports[p].ipv6 && ipv6_same_prefix(ip, *prof.ports[p].ipv6, prof.ports[p].prefix6_len))
                return {ip, static_cast<uint16_t>(p)};
        for (size_t p = 0; p < prof.ports.size(); ++p)
            if (prof.ports[p].ipv6 && prof.ports[p].gateway6) return {*prof.ports[p].gateway6, static_cast<uint16_t>(p)};
        throw action_error(error_code::invalid, "no route to " + format_ipv6(ip) +
                                               ": not in a port's ipv6 prefix and no gateway6 configured");
    }

    bool neigh6_available(const ipv6_addr& nexthop) const {
        return neigh6_by_ip.count(nexthop) != 0 || !neigh_free.empty();
    }

    uint32_t neigh6_ref(const ipv6_addr& nexthop, uint16_t port) {
        auto it = neigh6_by_ip.find(nexthop);
        if (it != neigh6_by_ip.end()) {
            if (it->second.refs++ == 0) neigh_dirty = true;
            return it->second.idx;
        }
        const uint32_t idx = neigh_free.back();
        neigh_free.pop_back();
        dp::dp_neigh& e = sh.neigh[idx];
        e.mac_word.store(0, std::memory_order_relaxed);
        e.cand_word = e.probe_tsc = e.confirmed_tsc = 0;
        e.outstanding = e.saw_current = e.saw_cand = e.confirming = e.unanswered = e.resolved_now = e.conflict = 0;
        e.port_id = port;
        e.ip_be = 0;
        std::memcpy(e.ip6, nexthop.data(), 16);
        e.flags = dp::neigh_ipv6;
        const auto& pc = prof.ports[port];
        if (pc.gateway6 && *pc.gateway6 == nexthop && pc.gateway6_mac) {
            uint64_t word = 0;
            std::memcpy(&word, pc.gateway6_mac->data(), 6);
            e.flags |= dp::neigh_static;
            e.mac_word.store(word | dp::neigh_valid, std::memory_order_relaxed);
        }
        neigh6_by_ip.emplace(nexthop, neigh_state{idx, 1});
        if (neigh6_addr.size() < sh.nb_neigh) neigh6_addr.resize(sh.nb_neigh);
        neigh6_addr[idx] = nexthop;
        neigh_fresh.push_back(idx);
        neigh_dirty = true;
        return idx;
    }

    void neigh6_unref(uint32_t neigh_idx) {
        if (neigh_idx >= neigh6_addr.size()) return;
        auto it = neigh6_by_ip.find(neigh6_addr[neigh_idx]);
        if (it == neigh6_by_ip.end() || it->second.idx != neigh_idx) return;
        if (--it->second.refs == 0) neigh_dirty = true;
    }

    // The entry's MAC is known (NA answered, or pinned): what a join waits
    // for before it is heard (either family).
    bool neigh_resolved(uint32_t neigh_idx) const {
        return neigh_idx < sh.nb_neigh && (sh.neigh[neigh_idx].mac_word.load(std::memory_order_acquire) & dp::neigh_valid);
    }

    // ---- listener slots (copy-on-write chunks)

    // A slot for one more listener of list `l` (either family): a freed
    // one first (slots are stable, so a free slot is reused in place), else
    // the next past the end.
    template <class L>
    static uint32_t take_slot(L& l) {
        if (l.free_slots.empty()) return l.nb_slots++;
        const uint32_t slot = l.free_slots.back();
        l.free_slots.pop_back();
        return slot;
    }

    // The record at `slot` (< l.nb_slots: take_slot gave it), in a chunk
    // private to this publish (copied on the first write since the last
    // one). Either family. Slots past nb_slots are zero in every chunk (a
    // new chunk is zeroed, a copy zeroes them), so the copy takes only the
    // chunk's slots in use and writes each of its lines once: a small
    // session's chunk is mostly past its end.
    template <class L>
    auto& writable_slot(L& l, uint32_t slot) {
        using chunk = typename L::chunk_type;
        using record = std::remove_reference_t<decltype(l.chunks[0]->l[0])>;
        const uint32_t ci = slot / L::chunk_size;
        while (l.chunks.size() <= ci) {
            l.chunks.push_back(alloc_zeroed<chunk>(sizeof(chunk)));
            l.fresh.push_back(true);
        }
        if (!l.fresh[ci]) {
            auto* copy = static_cast<chunk*>(dp_alloc_uninit(sizeof(chunk)));
            const uint32_t used = std::min(L::chunk_size, l.nb_slots - ci * L::chunk_size);
            std::memcpy(copy->l, l.chunks[ci]->l, sizeof(record) * used);
            std::memset(copy->l + used, 0, sizeof(record) * (L::chunk_size - used));
            retired.push_back(l.chunks[ci]);
            l.chunks[ci] = copy;
            l.fresh[ci] = true;
        }
        l.dirty = true;
        return l.chunks[ci]->l[slot % L::chunk_size];
    }

    void add_listener(session_state& s, uint32_t ip, unsigned port, unsigned tier, bool by_token, bool trunk = false) {
        // A free slot is one with port 0 (dp_listener): every caller checks
        // the port (check_listener, the trunk plan); this keeps it so.
        if (port == 0 || port > 65535) throw action_error(error_code::invalid, "listener port must be 1..65535");
        const auto [nexthop, port_idx] = route(ip);
        if (!neigh_available(nexthop))
            throw action_error(error_code::capacity, "neighbour table full (limits.max_neighbours)");
        // pick the least loaded shard of this session
        uint8_t shard = 0;
        for (unsigned k = 1; k < nb_shards; ++k)
            if (s.shard_live[k] < s.shard_live[shard]) shard = static_cast<uint8_t>(k);
        list_state& l = s.lists[s.list_at(trunk, shard, tier)];
        const uint32_t slot = take_slot(l);
        const uint32_t nidx = neigh_ref(nexthop, port_idx);
        dp_listener& r = writable_slot(l, slot);
        r.ip_be = __builtin_bswap32(ip);
        r.port_be = __builtin_bswap16(static_cast<uint16_t>(port));
        r.neigh_idx = static_cast<uint16_t>(nidx);   // < limits.max_neighbours <= dp::max_neigh_entries
        ++l.nb_live;
        ++s.shard_live[shard];
        ++s.tier_live[tier];
        ++s.live[family_ipv4][port_idx][tier];
        ++nb_listeners;
        const uint64_t seq = next_seq++;
        const uint32_t pos = s.order[tier].add(seq, ep_key(ip, port));
        s.listeners.emplace(ep_key(ip, port), listener_rec{shard, static_cast<uint8_t>(tier), static_cast<uint8_t>(port_idx),
                                                           lrec_flags(by_token, trunk),
                                                           slot, nexthop, pos, seq});
        s.dirty = true;
    }

    void remove_listener(session_state& s, std::unordered_map<uint64_t, listener_rec>::iterator it) {
        if (is_key6(it->first)) return remove_listener6(s, it);
        const listener_rec rec = it->second;
        list_state& l = s.lists[s.list_at(rec.flags & lrec_trunk, rec.shard, rec.tier)];
        dp_listener& r = writable_slot(l, rec.slot);
        std::memset(&r, 0, sizeof r);
        l.free_slots.push_back(rec.slot);
        --l.nb_live;
        --s.shard_live[rec.shard];
        --s.tier_live[rec.tier];
        --s.live[family_ipv4][rec.port_idx][rec.tier];
        --nb_listeners;
        neigh_unref(rec.neigh);
        if (adm != nullptr) adm->release(s.per_listener(), family_ipv4, rec.port_idx, 1);
        s.listeners.erase(it);
        s.order[rec.tier].remove(rec.order_pos, [&](uint64_t key, uint32_t pos) { s.listeners.find(key)->second.order_pos = pos; });
        s.dirty = true;
    }

    // ---- IPv6 listeners (issue 15)

    uint64_t key6_alloc(const ep6& e) {
        uint32_t id;
        if (!ep6_free.empty()) {
            id = ep6_free.back();
            ep6_free.pop_back();
            ep6_by_id[id] = e;
        } else {
            id = static_cast<uint32_t>(ep6_by_id.size());
            ep6_by_id.push_back(e);
        }
        return key6_tag | id;
    }
    const ep6& ep6_of(uint64_t key) const { return ep6_by_id[static_cast<uint32_t>(key)]; }

    // The caller checked the route and the neighbour table (route6,
    // neigh6_available) and admitted the listener.
    void add_listener6(session_state& s, const ipv6_addr& ip, unsigned port, unsigned tier, bool by_token,
                       bool trunk = false) {
        const auto [nexthop, port_idx] = route6(ip);
        uint8_t shard = 0;
        for (unsigned k = 1; k < nb_shards; ++k)
            if (s.shard_live[k] < s.shard_live[shard]) shard = static_cast<uint8_t>(k);
        list6_state& l = s.lists6[s.list_at(trunk, shard, tier)];
        const uint32_t slot = take_slot(l);
        const uint32_t nidx = neigh6_ref(nexthop, port_idx);
        dp_listener6& r = writable_slot(l, slot);
        std::memcpy(r.ip, ip.data(), 16);
        r.port_be = __builtin_bswap16(static_cast<uint16_t>(port));
        r.neigh_idx = nidx;
        r.udp_sum = ipv6_listener_udp_sum(ip, port);
        r.flags = dp::listener_flag_live;
        ++l.nb_live;
        ++s.shard_live[shard];
        ++s.tier_live[tier];
        ++s.live[family_ipv6][port_idx][tier];
        ++nb_listeners;
        const uint64_t seq = next_seq++;
        const ep6 e{ip, static_cast<uint16_t>(port)};
        const uint64_t key = key6_alloc(e);
        const uint32_t pos = s.order[tier].add(seq, key);
        s.listeners.emplace(key, listener_rec{shard, static_cast<uint8_t>(tier), static_cast<uint8_t>(port_idx),
                                              lrec_flags(by_token, trunk), slot, nidx, pos, seq});
        s.keys6.emplace(e, key);
        s.dirty = true;
    }

    void remove_listener6(session_state& s, std::unordered_map<uint64_t, listener_rec>::iterator it) {
        const uint64_t key = it->first;
        const listener_rec rec = it->second;
        list6_state& l = s.lists6[s.list_at(rec.flags & lrec_trunk, rec.shard, rec.tier)];
        dp_listener6& r = writable_slot(l, rec.slot);
        std::memset(&r, 0, sizeof r);
        l.free_slots.push_back(rec.slot);
        --l.nb_live;
        --s.shard_live[rec.shard];
        --s.tier_live[rec.tier];
        --s.live[family_ipv6][rec.port_idx][rec.tier];
        --nb_listeners;
        neigh6_unref(rec.neigh);
        if (adm != nullptr) adm->release(s.per_listener(), family_ipv6, rec.port_idx, 1);
        s.keys6.erase(ep6_of(key));
        ep6_free.push_back(static_cast<uint32_t>(key));
        s.listeners.erase(it);
        s.order[rec.tier].remove(rec.order_pos, [&](uint64_t k, uint32_t pos) { s.listeners.find(k)->second.order_pos = pos; });
        s.dirty = true;
    }

    // A listener moves to `tier` (relay_state::listener_set_tier; the
    // caller checked and admitted it): either family, the same shard.
    // Under the state mutex, so a publish sees it before or after, never
    // in neither list.
    void move_listener(session_state& s, std::unordered_map<uint64_t, listener_rec>::iterator it, unsigned tier) {
        const uint64_t key = it->first;
        listener_rec& rec = it->second;
        const bool trunk = (rec.flags & lrec_trunk) != 0;
        auto move_slot = [&](auto& lists) {
            auto& from = lists[s.list_at(trunk, rec.shard, rec.tier)];
            auto& to = lists[s.list_at(trunk, rec.shard, tier)];
            auto& old = writable_slot(from, rec.slot);
            auto copy = old;
            std::memset(&old, 0, sizeof old);
            from.free_slots.push_back(rec.slot);
            --from.nb_live;
            const uint32_t slot = take_slot(to);
            writable_slot(to, slot) = copy;   // the list is the tier: the record is the same
            ++to.nb_live;
            return slot;
        };
        const ip_family fam = is_key6(key) ? family_ipv6 : family_ipv4;
        const uint32_t slot = fam == family_ipv6 ? move_slot(s.lists6) : move_slot(s.lists);
        --s.tier_live[rec.tier];
        ++s.tier_live[tier];
        --s.live[fam][rec.port_idx][rec.tier];
        ++s.live[fam][rec.port_idx][tier];
        // Out of the old tier's join order (a hole: the compaction's moves
        // never name this key), then the newest of the new one.
        s.order[rec.tier].remove(rec.order_pos, [&](uint64_t k, uint32_t pos) { s.listeners.find(k)->second.order_pos = pos; });
        const uint64_t seq = next_seq++;
        rec.order_pos = s.order[tier].add(seq, key);
        rec.seq = seq;
        rec.tier = static_cast<uint8_t>(tier);
        rec.slot = slot;
        s.dirty = true;
    }

    // The key of a session's listener at (ip, ip6, port), or nullopt.
    std::optional<uint64_t> key_of(const session_state& s, uint32_t ip, const std::optional<ipv6_addr>& ip6,
                                   unsigned port) const {
        if (ip6) {
            auto it = s.keys6.find(ep6{*ip6, static_cast<uint16_t>(port)});
            if (it == s.keys6.end()) return std::nullopt;
            return it->second;
        }
        const uint64_t k = ep_key(ip, port);
        if (!s.listeners.count(k)) return std::nullopt;
        return k;
    }

    // A listener key as the views name it: (ip, port, ip6).
    void addr_of(uint64_t key, uint32_t* ip, unsigned* port, std::optional<ipv6_addr>* ip6) const {
        if (is_key6(key)) {
            const ep6& e = ep6_of(key);
            *ip = 0;
            *port = e.port;
            *ip6 = e.ip;
        } else {
            *ip = static_cast<uint32_t>(key >> 16);
            *port = static_cast<unsigned>(key & 0xffff);
            ip6->reset();
        }
    }

    // ---- publish

    // The policer rates of a session's speakers (either family).
    void set_flow_fields(dp::dp_flow& f, const session_state& s, const speaker_view& sp) const {
        f.session_index = s.index;
        f.has_ssrc = sp.ssrc.has_value();
        // A trunk flow on a relay whose trunks are authenticated
        // (set_trunk_auth) must authenticate with its speaker keys whatever
        // the session's srtp.ingress: the trunk key the edge derived.
        f.srtp_in = s.srtp_ingress == srtp_ingress_mode::required || (sp.trunk && trunk_auth) ? 1 : 0;
        f.dedup = sp.trunk && s.dedup != nullptr ? 1 : 0;   // an origin's trunk flow: first copy wins (either family)
        // Its packets read the policer entry's SRTP line: authenticated, or
        // protected towards listeners or (trunk_auth) trunk listeners.
        f.srtp_line = f.srtp_in || s.trailer() != 0 || trunk_auth ? 1 : 0;
        f.ssrc_be = sp.ssrc ? __builtin_bswap32(*sp.ssrc) : 0;
        f.speaker_index = sp.slot;
        // Policer: the stream's packet rate and the session's highest
        // bitrate (plus RTP headers), speaker_burst_pct above them,
        // sustained; the bucket (dp::policer_burst_ms deep) absorbs jitter.
        // Admission plans the nominal rate and keeps the burst inside its
        // headroom (config check).
        const uint64_t pct = 100 + prof.limits.speaker_burst_pct;
        const uint32_t pps = static_cast<uint32_t>((uint64_t{1000} * pct + 100 * std::max(1u, s.frame_ms) - 1) /
                                                   (100 * std::max(1u, s.frame_ms)));
        f.rate_pps = pps;
        f.rate_bytes = static_cast<uint32_t>(uint64_t{s.max_bitrate_kbps} * 1000 / 8 * pct / 100) + pps * 12;
    }

    // IPv6 speakers: the whole key in every slot (dp_flow6), compared whole.
    void build_flows6() {
        size_t n = 0;
        for (auto& [id, s] : sessions)
            for (const auto& sp : s->speakers) n += sp.ip6.has_value();
        dp::dp_flow6* f = nullptr;
        uint32_t size = 0;
        if (n > 0) {
            size = 16;
            while (size < 2 * n) size <<= 1;
            f = alloc_zeroed<dp::dp_flow6>(sizeof(dp::dp_flow6) * size);
            for (auto& [id, s] : sessions)
                for (const auto& sp : s->speakers) {
                    if (!sp.ip6) continue;
                    const uint16_t sport = __builtin_bswap16(static_cast<uint16_t>(sp.port));
                    const uint16_t dport = __builtin_bswap16(static_cast<uint16_t>(s->udp_port));
                    uint32_t i = dp::flow6_hash(sp.ip6->data(), sport, dport) & (size - 1);
                    while (f[i].f.key != 0) i = (i + 1) & (size - 1);
                    std::memcpy(f[i].src, sp.ip6->data(), 16);
                    f[i].src_port_be = sport;
                    f[i].dst_port_be = dport;
                    f[i].f.key = 1;
                    set_flow_fields(f[i].f, *s, sp);
                }
        }
        if (flows6) retired.push_back(flows6);
        flows6 = f;
        flow6_mask = size == 0 ? 0 : size - 1;
    }

    void build_flows() {
        build_flows6();
        size_t n = 0;
        for (auto& [id, s] : sessions) n += s->speakers.size();
        uint32_t size = 16;
        while (size < 2 * n) size <<= 1;
        auto* f = alloc_zeroed<dp::dp_flow>(sizeof(dp::dp_flow) * size);
        for (auto& [id, s] : sessions)
            for (const auto& sp : s->speakers) {
                if (sp.ip6) continue;   // build_flows6
                const uint64_t key = dp::flow_key(__builtin_bswap32(sp.ip),
                                                  __builtin_bswap16(static_cast<uint16_t>(sp.port)),
                                                  __builtin_bswap16(static_cast<uint16_t>(s->udp_port)));
                uint32_t i = dp::flow_hash(key) & (size - 1);
                while (f[i].key != 0) i = (i + 1) & (size - 1);
                f[i].key = key;
                set_flow_fields(f[i], *s, sp);
            }
        if (flows) retired.push_back(flows);
        flows = f;
        flow_mask = size - 1;
    }

    // Every speaker slot's keyset anew (speakers are few; key changes rare).
    void build_speaker_keys() {
        for (auto*& ks : speaker_keysets) {
            if (ks) retired.push_back(ks);
            ks = nullptr;
        }
        for (auto& [id, s] : sessions)
            for (auto& [slot, m] : s->speaker_keys) {
                if (slot >= speaker_keysets.size()) continue;
                srtp::keyset* ks = m.build();
                speaker_keysets[slot] = ks;
                if (ks == nullptr || (ingress_marks.empty() && trunk_floors.empty())) continue;
                for (const auto& sp : s->speakers) {
                    if (sp.slot != slot) continue;
                    if (const auto mk = ingress_marks.find(key_of(id, sp)); mk != ingress_marks.end()) {
                        ks->floor = mk->second.index;
                        ks->floor_ssrc_be = mk->second.ssrc_be;
                    }
                    // A trunk flow added again under a key it had: from
                    // where it stood (the higher of the two, or the floor
                    // bound to the key when they name other SSRCs).
                    if (const trunk_floor* f = trunk_floor_of(id, sp, m);
                        f != nullptr && (ks->floor_ssrc_be != f->ssrc_be || f->index > ks->floor)) {
                        ks->floor = f->index;
                        ks->floor_ssrc_be = f->ssrc_be;
                    }
                }
            }
        auto* a = alloc_zeroed<const srtp::keyset*>(sizeof(void*) * std::max<size_t>(1, speaker_keysets.size()));
        for (size_t i = 0; i < speaker_keysets.size(); ++i) a[i] = speaker_keysets[i];
        if (speaker_keys_arr) retired.push_back(speaker_keys_arr);
        speaker_keys_arr = a;
    }

    void build_neigh_keys() {
        uint32_t size = 16;
        while (size < 2 * neigh_by_ip.size()) size <<= 1;
        auto* k = alloc_zeroed<dp::dp_neigh_key>(sizeof(dp::dp_neigh_key) * size);
        for (const auto& [ip, n] : neigh_by_ip) {
            const uint32_t ip_be = __builtin_bswap32(ip);
            uint32_t i = dp::flow_hash(ip_be) & (size - 1);
            while (k[i].ip_be != 0) i = (i + 1) & (size - 1);
            k[i].ip_be = ip_be;
            k[i].neigh_idx = n.idx;
        }
        if (neigh_keys) retired.push_back(neigh_keys);
        neigh_keys = k;
        neigh_key_mask = size - 1;
        dp::dp_neigh6_key* k6 = nullptr;
        uint32_t size6 = 0;
        if (!neigh6_by_ip.empty()) {
            size6 = 16;
            while (size6 < 2 * neigh6_by_ip.size()) size6 <<= 1;
            k6 = alloc_zeroed<dp::dp_neigh6_key>(sizeof(dp::dp_neigh6_key) * size6);
            for (const auto& [ip, n] : neigh6_by_ip) {
                uint32_t i = dp::neigh6_hash(ip.data()) & (size6 - 1);
                while (k6[i].used != 0) i = (i + 1) & (size6 - 1);
                std::memcpy(k6[i].ip, ip.data(), 16);
                k6[i].neigh_idx = n.idx;
                k6[i].used = 1;
            }
        }
        if (neigh6_keys) retired.push_back(neigh6_keys);
        neigh6_keys = k6;
        neigh6_key_mask = size6 == 0 ? 0 : size6 - 1;
        auto* a = alloc_zeroed<uint32_t>(sizeof(uint32_t) * std::max<size_t>(1, neigh_by_ip.size() + neigh6_by_ip.size()));
        uint32_t n = 0;
        for (const auto& [ip, ns] : neigh_by_ip)
            if (ns.refs > 0) a[n++] = ns.idx;
        for (const auto& [ip, ns] : neigh6_by_ip)
            if (ns.refs > 0) a[n++] = ns.idx;
        if (neigh_active) retired.push_back(neigh_active);
        neigh_active = a;
        nb_neigh_active = n;
    }

    // The session's trunk twin (dp_session::trunk): its trunk listeners'
    // lists, and on a relay whose trunks are authenticated the trunk key
    // (srtp_egress set: without a key the data plane sends them nothing).
    // nullptr, and none published, while the session has no trunk listener.
    const dp::dp_session* build_trunk_twin(session_state& s, dp::dp_session& d) {
        if (s.trunk_published) retired.push_back(s.trunk_published);
        s.trunk_published = nullptr;
        if (s.trunk_tx_published) retired.push_back(s.trunk_tx_published);
        s.trunk_tx_published = nullptr;
        uint64_t live = 0;
        for (size_t i = s.list_at(true, 0, 0); i < s.lists.size(); ++i) live += s.lists[i].nb_live + s.lists6[i].nb_live;
        // No trunk listener: no twin (nothing serves a list the last one
        // left). Its lists stay unpublished (and their chunks writable in
        // place) until one comes back: no snapshot can reach them.
        if (live == 0) return nullptr;
        auto* t = alloc_zeroed<dp::dp_session>(sizeof(dp::dp_session));
        for (unsigned sh_i = 0; sh_i < nb_shards; ++sh_i)
            for (unsigned k = 0; k < max_tiers; ++k) {
                t->shards[sh_i].v4[k] = publish_list<dp_listener_list>(s.lists[s.list_at(true, sh_i, k)]);
                t->shards[sh_i].v6[k] = publish_list<dp_listener6_list>(s.lists6[s.list_at(true, sh_i, k)]);
            }
        t->id = d.id;
        t->index = d.index | dp::trunk_twin_bit;
        t->udp_port_be = d.udp_port_be;
        t->mode = dp::session_mode_forward;
        t->record = 0;
        t->nb_listeners = static_cast<uint32_t>(live);
        t->generation = d.generation;
        t->srtp_egress = trunk_auth ? 1 : 0;
        s.trunk_tx_published = trunk_auth ? s.trunk_tx.build() : nullptr;
        t->srtp_tx = s.trunk_tx_published;
        s.trunk_published = t;
        d.trunk = t;
        return t;
    }

    void build_session(session_state& s) {
        auto* d = alloc_zeroed<dp::dp_session>(sizeof(dp::dp_session));
        d->id = s.id;
        d->index = s.index;
        d->udp_port_be = __builtin_bswap16(static_cast<uint16_t>(s.udp_port));
        d->mode = s.mode == session_mode::mix ? dp::session_mode_mix : dp::session_mode_forward;
        d->record = s.recording ? 1 : 0;
        d->nb_listeners = static_cast<uint32_t>(s.listeners.size());
        d->generation = s.generation;
        d->srtp_ingress = s.srtp_ingress == srtp_ingress_mode::required ? 1 : 0;
        d->srtp_egress = s.srtp_egress == srtp_egress_mode::session_key ? 1 : 0;
        if (s.srtp_tx_published) retired.push_back(s.srtp_tx_published);
        s.srtp_tx_published = s.srtp_tx.build();
        d->srtp_tx = s.srtp_tx_published;
        d->dedup = s.dedup;
        const dp::dp_session* twin = build_trunk_twin(s, *d);
        const bool twin_protects = twin != nullptr && twin->srtp_egress;
        if ((d->srtp_egress || twin_protects) && s.srtp_streams == nullptr) {
            // Zeroed: every SSRC starts at its speaker's own numbers, unless
            // an earlier session under this id protected for it: then above
            // what that one used (egress_hw, docs/srtp.md "Egress index").
            s.srtp_streams = alloc_zeroed<dp::dp_srtp_egress>(sizeof(dp::dp_srtp_egress));
            // With a journal nothing is reserved yet (limit 0): srtp_reserve.
            if (!srtp_reserving)
                for (auto& sl : s.srtp_streams->slot) sl.limit.store(dp::srtp_egress_unlimited, std::memory_order_relaxed);
            if (const auto it = egress_hw.find(s.id); it != egress_hw.end()) {
                // Where the data plane looks for the SSRC (its hash, then probes).
                for (const auto& [tag, next] : it->second.marks)
                    if (auto* sl = dp::egress_slot(*s.srtp_streams, static_cast<uint32_t>(tag)))
                        sl->next.store(next + egress_hw_margin, std::memory_order_relaxed);
            }
            srtp_tables.insert(s.id);
            watch_srtp(s.id);
        }
        d->srtp_streams = s.srtp_streams;
        for (unsigned sh_i = 0; sh_i < nb_shards; ++sh_i)
            for (unsigned t = 0; t < max_tiers; ++t) {
                d->shards[sh_i].v4[t] = publish_list<dp_listener_list>(s.lists[s.list_at(false, sh_i, t)]);
                d->shards[sh_i].v6[t] = publish_list<dp_listener6_list>(s.lists6[s.list_at(false, sh_i, t)]);
            }
        if (s.published) retired.push_back(s.published);
        s.published = d;
        s.dirty = false;
    }

    // Build the next snapshot and swap it in; the caller waits for the grace
    // period (without the state mutex, so actions keep flowing) and then
    // frees `retired` and the released slots.
    void publish() {
        reclaim_idle();
        bool changed = flows_dirty || neigh_dirty || index_dirty || keys_dirty;
        for (auto& [id, s] : sessions)
            if (s->dirty) {
                build_session(*s);
                changed = true;
                index_dirty = true;
            }
        if (!changed && root != nullptr) return;
        if (flows_dirty) build_flows();
        if (neigh_dirty) build_neigh_keys();
        if (keys_dirty) build_speaker_keys();
        if (index_dirty) {
            auto* a = alloc_zeroed<dp::dp_session*>(sizeof(void*) * std::max<size_t>(1, by_index.size()));
            for (size_t i = 0; i < by_index.size(); ++i)
                a[i] = by_index[i] ? by_index[i]->published : &empty_session;
            if (sess_array) retired.push_back(sess_array);
            sess_array = a;
        }
        auto* r = alloc_zeroed<dp::dp_snapshot>(sizeof(dp::dp_snapshot));
        r->version = ++version;
        r->nb_sessions = static_cast<uint32_t>(by_index.size());
        r->flow_mask = flow_mask;
        r->neigh_key_mask = neigh_key_mask;
        r->nb_fanout_shards = nb_shards;
        r->flows = flows;
        r->neigh_keys = neigh_keys;
        r->neigh6_keys = neigh6_keys;
        r->neigh6_key_mask = neigh6_key_mask;
        r->sessions = sess_array;
        r->neigh_active = neigh_active;
        r->nb_neigh_active = nb_neigh_active;
        r->speaker_keys = speaker_keys_arr;
        r->flows6 = flows6;
        r->flow6_mask = flow6_mask;
        r->nb_speaker_keys = static_cast<uint32_t>(speaker_keysets.size());
        if (!neigh_fresh.empty()) {
            auto* f = alloc_zeroed<uint32_t>(sizeof(uint32_t) * neigh_fresh.size());
            std::memcpy(f, neigh_fresh.data(), sizeof(uint32_t) * neigh_fresh.size());
            r->neigh_fresh = f;
            r->nb_neigh_fresh = static_cast<uint32_t>(neigh_fresh.size());
            neigh_fresh.clear();
        }
        if (root) {
            if (root->neigh_fresh) retired.push_back(const_cast<uint32_t*>(root->neigh_fresh));
            retired.push_back(root);
        }
        root = r;
        flows_dirty = neigh_dirty = index_dirty = keys_dirty = false;
        sh.snapshot.store(r, std::memory_order_release);
    }

    // After the grace period of the snapshot that stopped using them.
    void release_slots(const std::vector<uint32_t>& neighs, const std::vector<uint32_t>& speakers) {
        for (uint32_t idx : neighs) {
            dp::dp_neigh& e = sh.neigh[idx];
            e.ip_be = 0;
            std::memset(e.ip6, 0, sizeof e.ip6);
            e.flags = 0;
            e.mac_word.store(0, std::memory_order_relaxed);
            neigh_free.push_back(idx);
        }
        for (uint32_t slot : speakers) {
            // A removed trunk flow's entries are final now: its floor exact.
            if (const auto p = trunk_floor_slots.find(slot); p != trunk_floor_slots.end()) {
                write_trunk_floor(p->second.session_id, p->second.sp, p->second.key_ids, best_ingress(slot));
                trunk_floor_slots.erase(p);
            }
            speaker_free.push_back(slot);
        }
    }

    // The next automatic session id: next_session_id, which no live or
    // ended session has had. Past 4294967295 (only after an explicit id that
    // high) the lowest id no live session holds: ids of ended sessions come
    // back then (docs/api.md). sessions.size() < limits.max_sessions < 2^32,
    // so there is always one.
    uint32_t automatic_session_id() const {
        if (next_session_id <= UINT32_MAX) return static_cast<uint32_t>(next_session_id);
        uint32_t id = 1;
        for (const auto& [k, v] : sessions) {
            if (k > id) break;
            if (k == id) ++id;
        }
        return id;
    }

    state_image image() const {
        state_image img;
        img.next_session_id = next_session_id;
        img.sessions.reserve(sessions.size());
        img.listeners.reserve(nb_listeners);
        // What the fleet's trunks made (sessions, flows, listeners) is not
        // journaled: etcd holds it and the trunk watch rebuilds it at start.
        for (const auto& [id, s] : sessions) {
            if (s->trunk) continue;
            auto& o = img.sessions.emplace_back();
            o.p = static_cast<const session_params&>(*s);
            for (const auto& sp : s->speakers)
                if (!sp.trunk) o.speakers.push_back({sp.ip, sp.port, sp.ssrc, sp.ip6});
            for (const auto& [k, r] : s->listeners) {
                if (r.flags & lrec_trunk) continue;
                if (is_key6(k)) {
                    const ep6& e = ep6_of(k);
                    img.listeners.push_back({r.seq, id, 0, e.port, r.tier, (r.flags & lrec_by_token) != 0, e.ip});
                    continue;
                }
                img.listeners.push_back({r.seq, id, static_cast<uint32_t>(k >> 16), static_cast<uint16_t>(k & 0xffff),
                                         r.tier, (r.flags & lrec_by_token) != 0, {}});
            }
        }
        // SRTP egress reservations: the live tables' (their limits), then
        // what is remembered of ended and earlier sessions.
        for (const auto& [id, hw] : egress_hw)
            for (const auto& [tag, next] : hw.marks)
                img.egress_marks.push_back({id, static_cast<uint32_t>(tag), next});
        for (const uint32_t id : srtp_tables) {
            const auto it = sessions.find(id);
            if (it == sessions.end() || it->second->srtp_streams == nullptr) continue;
            for (const auto& sl : it->second->srtp_streams->slot) {
                const uint64_t tag = sl.tag.load(std::memory_order_acquire);
                const uint64_t lim = sl.limit.load(std::memory_order_acquire);
                if (tag == 0 || lim == 0 || lim == dp::srtp_egress_unlimited) continue;
                img.egress_marks.push_back({id, static_cast<uint32_t>(tag), lim});
            }
        }
        for (const auto& [k, m] : ingress_marks)
            if (sessions.count(std::get<0>(k)) != 0)
                img.ingress_marks.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), m.ssrc_be,
                                             m.index});
        // And the reservations whose records ride the write that ends this
        // epoch (or a later one): the old journal that holds them goes once
        // the snapshot is written, and their limits may reach the slots.
        for (const auto* q : {&reservations_inflight, &reservations})
            for (const auto& r : *q) img.egress_marks.push_back({r.session_id, static_cast<uint32_t>(r.tag), r.limit});
        return img;
    }

    // The session `id` has ended (again): its marks are the newest ended;
    // at most max_egress_hw ended sessions' are kept, the oldest go.
    egress_marks& ended_marks(uint32_t id) {
        auto& hw = egress_hw[id];
        if (hw.ended != 0) egress_hw_ended.erase(hw.ended);
        hw.ended = ++egress_hw_seq;
        egress_hw_ended.emplace(hw.ended, id);
        while (egress_hw_ended.size() > max_egress_hw) {
            const uint32_t old = egress_hw_ended.begin()->second;
            egress_hw_ended.erase(egress_hw_ended.begin());
            if (old != id) egress_hw.erase(old);
        }
        return hw;
    }

    // relay_state::srtp_reserve, under the mutex.
    bool reserve_egress() {
        if (!srtp_reserving || jr == nullptr) return false;
        const auto now = std::chrono::steady_clock::now();
        const bool full = now >= srtp_next_scan;
        if (full) srtp_next_scan = now + srtp_scan_every;
        std::vector<uint32_t> ids;
        for (auto w = srtp_watch.begin(); w != srtp_watch.end();)
            if (w->second <= now) {
                w = srtp_watch.erase(w);
            } else {
                if (!full) ids.push_back(w->first);
                ++w;
            }
        if (full) ids.assign(srtp_tables.begin(), srtp_tables.end());
        bool any = false;
        for (const uint32_t id : ids) {
            const auto it = sessions.find(id);
            if (it == sessions.end() || it->second->srtp_streams == nullptr) continue;
            session_state& s = *it->second;
            for (auto& sl : s.srtp_streams->slot) {
                const uint64_t tag = sl.tag.load(std::memory_order_acquire);
                if (tag == 0) continue;
                const uint64_t limit = sl.limit.load(std::memory_order_acquire);
                if (limit == dp::srtp_egress_unlimited) continue;
                const uint64_t next = sl.next.load(std::memory_order_acquire);
                const uint64_t want = sl.want.load(std::memory_order_relaxed);
                // Where the SSRC's numbering is: its mark, or the first
                // proposal the data plane refused; neither: nothing to do yet.
                if (next == 0 && want == 0) continue;
                const uint64_t at = next != 0 ? next : want - 1;
                if (limit > at && limit - at > srtp_reserve_block / 2) continue;
                const auto same = [&](const reservation& r) {
                    return r.session_id == id && r.generation == s.generation && r.tag == tag;
                };
                if (std::any_of(reservations.begin(), reservations.end(), same) ||
                    std::any_of(reservations_inflight.begin(), reservations_inflight.end(), same))
                    continue;   // its record is on the way
                const uint64_t to = std::min(std::max(limit, at) + srtp_reserve_block, srtp::index_mask + 1);
                if (to <= limit) continue;                        // 2^48: the key must change anyway
                journal_record(jr::rec_srtp_reserve{id, static_cast<uint32_t>(tag), to});
                reservations.push_back({id, s.generation, tag, to});
                any = true;
            }
        }
        if (any) mark_changed();
        return any;
    }

    // Once the records are durable: the slots may use what they reserve.
    void apply_reservations(const std::vector<reservation>& done) {
        for (const auto& r : done) {
            const auto it = sessions.find(r.session_id);
            if (it == sessions.end() || it->second->generation != r.generation || it->second->srtp_streams == nullptr)
                continue;
            for (auto& sl : it->second->srtp_streams->slot) {
                if (sl.tag.load(std::memory_order_acquire) != r.tag) continue;
                const uint64_t cur = sl.limit.load(std::memory_order_relaxed);
                if (cur != dp::srtp_egress_unlimited && r.limit > cur) sl.limit.store(r.limit, std::memory_order_release);
                break;
            }
        }
    }

    // relay_state::srtp_mark_ingress, under the mutex.
    bool mark_ingress() {
        if (jr == nullptr || sh.policers == nullptr) return false;
        bool any = false;
        for (const auto& [id, s] : sessions)
            for (const auto& sp : s->speakers) {
                if (s->speaker_keys.find(sp.slot) == s->speaker_keys.end()) continue;
                // The highest index any RX queue's entry accepted (each entry
                // has one writer; these are racy reads of whole words).
                const ingress_mark best = best_ingress(sp.slot);
                if (best.index == 0) continue;
                auto& m = ingress_marks[key_of(id, sp)];
                // A record per ingress_mark_step packets of a speaker (5 s
                // at 50 packets/s): what a restart can let be replayed.
                if (m.ssrc_be == best.ssrc_be && m.index + ingress_mark_step > best.index) continue;
                m = best;
                journal_record(jr::rec_srtp_ingress_mark{id, sp.ip, sp.ip6, sp.port, best.ssrc_be, best.index});
                any = true;
            }
        if (any) mark_changed();
        return any;
    }

    session_view view(const session_state& s) const {
        session_view v{};
        static_cast<session_params&>(v) = s;
        v.nb_listeners = s.listeners.size();
        v.nb_listeners6 = s.keys6.size();
        for (unsigned t = 0; t < max_tiers; ++t) v.listeners_per_tier[t] = s.tier_live[t];
        v.speakers = s.speakers;
        for (auto& sp : v.speakers)
            if (auto it = s.speaker_keys.find(sp.slot); it != s.speaker_keys.end()) sp.srtp_keys = it->second.info(false);
        v.srtp_keys = s.srtp_tx.info(true);
        v.trunk_keys = s.trunk_tx.info(true);
        if (s.srtp_streams != nullptr)
            for (const auto& sl : s.srtp_streams->slot) {
                const uint64_t tag = sl.tag.load(std::memory_order_acquire);
                if (tag == 0) continue;
                const uint64_t lim = sl.limit.load(std::memory_order_acquire);
                v.srtp_streams.push_back({__builtin_bswap32(static_cast<uint32_t>(tag)),
                                          sl.next.load(std::memory_order_acquire), lim});
            }
        // Read under the mutex: a slot's entries are zeroed (speaker_add)
        // only under it, so these are this speaker's.
        if (sh.policers != nullptr)
            for (auto& sp : v.speakers)
                for (uint32_t q = 0; q < sh.nb_rx_queues; ++q) sp.counts += dp::speaker_counts_of(dp::policer_of(sh, q, sp.slot));
        v.tally = s.tally;
        v.tally.speakers = dp::session_counts_of(sh, s.index, s.generation);
        return v;
    }
};

relay_state::relay_state(const profile& p, dp::dp_shared& shared, unsigned nb_fanout_shards)
    : _impl(std::make_unique<impl>(p, shared, std::max(1u, nb_fanout_shards))) {
    if (nb_fanout_shards > dp::max_fanout_shards)
        throw std::invalid_argument("too many fan-out shards");
}

relay_state::~relay_state() = default;

session_view relay_state::session_create(const session_params& sp) {
    std::unique_lock g(_impl->mu);
    auto& im = *_impl;
    const auto& lim = im.prof.limits;
    im.check_journal();
    if (auto e = check_session(sp, im.prof)) throw invalid(*e);
    if (im.sessions.size() >= lim.max_sessions)
        throw action_error(error_code::capacity, "session table full (limits.max_sessions)");
    uint32_t id = sp.id;
    if (id == 0) id = im.automatic_session_id();
    if (im.sessions.count(id)) throw action_error(error_code::exists, "session " + std::to_string(id) + " exists");
    unsigned port = sp.udp_port;
    // The ports in use, once: looking for a free one walked every session
    // per candidate port (10 000 sessions: 50 M comparisons per create,
    // under the state lock).
    std::vector<bool> in_use(65536, false);
    for (auto& [k, s] : im.sessions) in_use[s->udp_port & 0xffff] = true;
    auto port_used = [&](unsigned p) { return in_use[p & 0xffff]; };
    if (port == 0) {
        for (unsigned p = im.prof.ingress.udp_port_min; p <= im.prof.ingress.udp_port_max; ++p)
            if (!port_used(p)) {
                port = p;
                break;
            }
        if (port == 0) throw action_error(error_code::capacity, "no free speaker port in the ingress range");
    } else if (port_used(port)) {
        throw action_error(error_code::exists, "udp_port " + std::to_string(port) + " used by another session");
    }
    auto s = std::make_unique<session_state>();
    static_cast<session_params&>(*s) = sp;
    s->id = id;
    if (s->name.empty()) s->name = "session-" + std::to_string(id);
    s->udp_port = port;
    if (s->max_listeners == 0) s->max_listeners = lim.max_listeners_per_session;
    if (!s->srtp_ingress) s->srtp_ingress = im.prof.srtp.ingress;
    if (!s->srtp_egress) s->srtp_egress = im.prof.srtp.egress;
    s->generation = im.next_generation++;
    s->lists.resize(2 * size_t{im.nb_shards} * max_tiers);   // the listeners', then the trunk listeners' (list_at)
    s->lists6.resize(2 * size_t{im.nb_shards} * max_tiers);
    s->shard_live.assign(im.nb_shards, 0);
    if (!im.free_index.empty()) {
        s->index = im.free_index.back();
        im.free_index.pop_back();
        im.by_index[s->index] = s.get();
    } else {
        s->index = static_cast<uint32_t>(im.by_index.size());
        im.by_index.push_back(s.get());
    }
    im.index_dirty = true;
    session_view v = im.view(*s);
    if (!s->trunk) im.journal_record(jr::rec_session_create{static_cast<const session_params&>(*s)});
    im.sessions.emplace(id, std::move(s));
    im.next_session_id = std::max(im.next_session_id, uint64_t{id} + 1);
    im.mark_changed();
    const auto obs = im.observer;
    g.unlock();
    if (obs) (*obs)(id, false);
    return v;
}

void relay_state::session_end(uint32_t id) {
    std::unique_lock g(_impl->mu);
    auto& im = *_impl;
    im.check_journal();
    session_state& s = im.get(id);
    while (!s.listeners.empty()) im.remove_listener(s, s.listeners.begin());
    for (auto& l : s.lists) {
        for (auto* c : l.chunks) im.retired.push_back(c);
        if (l.published) im.retired.push_back(l.published);
    }
    for (auto& l : s.lists6) {
        for (auto* c : l.chunks) im.retired.push_back(c);
        if (l.published) im.retired.push_back(l.published);
    }
    if (s.published) im.retired.push_back(s.published);
    if (!s.speakers.empty()) im.flows_dirty = true;
    for (const auto& sp : s.speakers) {
        im.note_trunk_floor(id, s, sp);
        im.speaker_release.push_back(sp.slot);
    }
    if (s.srtp_tx_published) im.retired.push_back(s.srtp_tx_published);
    s.srtp_tx_published = nullptr;
    if (s.trunk_published) im.retired.push_back(s.trunk_published);
    s.trunk_published = nullptr;
    if (s.trunk_tx_published) im.retired.push_back(s.trunk_tx_published);
    s.trunk_tx_published = nullptr;
    if (s.dedup) im.retired.push_back(s.dedup);   // RX lcores may hold it until the grace period
    s.dedup = nullptr;
    if (s.srtp_streams) {
        // What a later session under this id must start above: read now,
        // while lcores may still protect a packet or two until the grace
        // period (egress_hw_margin covers them).
        // With a journal the reservation is the mark: what a crash after
        // this point would restore too.
        auto& hw = im.ended_marks(id);
        for (const auto& sl : s.srtp_streams->slot) {
            const uint64_t tag = sl.tag.load(std::memory_order_acquire);
            if (tag == 0) continue;
            uint64_t next = sl.next.load(std::memory_order_acquire);
            if (const uint64_t lim = sl.limit.load(std::memory_order_acquire); lim != dp::srtp_egress_unlimited)
                next = std::max(next, lim);
            impl::raise_mark(hw.marks, tag, next);
        }
        im.retired.push_back(s.srtp_streams);
        s.srtp_streams = nullptr;
        im.srtp_tables.erase(id);
        im.srtp_watch.erase(id);
    }
    for (auto it = im.ingress_marks.lower_bound({id, 0, ipv6_addr{}, 0});
         it != im.ingress_marks.end() && std::get<0>(it->first) == id;)
        it = im.ingress_marks.erase(it);
    im.drop_keys(s.srtp_tx);
    im.drop_keys(s.trunk_tx);
    for (auto& [slot, m] : s.speaker_keys) im.drop_keys(m);
    if (!s.speaker_keys.empty()) im.keys_dirty = true;
    s.speaker_keys.clear();
    im.by_index[s.index] = nullptr;
    im.free_index.push_back(s.index);
    im.index_dirty = true;
    const bool trunk = s.trunk;
    im.sessions.erase(id);
    if (im.adm != nullptr) im.adm->session_ended(id);
    if (!trunk) im.journal_record(jr::rec_session_end{id});
    im.mark_changed();
    const auto obs = im.observer;
    g.unlock();
    if (obs) (*obs)(id, true);
}

void relay_state::speaker_add(uint32_t session_id, uint32_t ip, unsigned port, std::optional<uint32_t> ssrc,
                              bool trunk) {
    speaker_spec sp{ip, port, ssrc, std::nullopt};
    sp.trunk = trunk;
    speaker_add(session_id, sp);
}

void relay_state::speaker_add(uint32_t session_id, const speaker_spec& spec) {
    const bool trunk = spec.trunk;
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    im.check_journal();
    session_state& s = im.get(session_id);
    const uint32_t ip = spec.ip6 ? 0 : spec.ip;
    const unsigned port = spec.port;
    const auto ssrc = spec.ssrc;
    if (auto e = check_speaker({ip, port, ssrc, spec.ip6}, im.prof)) throw invalid(*e);
    // A flow is (address, port, session port) and a session's port is its
    // own (session_create), so only this session's speakers can clash. The
    // whole table is walked only when no slot is free, to tell a full table
    // from slots still in their grace period: a relay with 10 000 sessions
    // walked 20 000 speakers per add (the workload harness's set-up spent
    // most of its 18 s there).
    for (const auto& sp : s.speakers)
        if (sp.ip6 == spec.ip6 && sp.ip == ip && sp.port == port)
            throw action_error(error_code::exists, "speaker " + format_peer(ip, spec.ip6, port) + " exists");
    if (auto e = check_speaker_ssrc({ip, port, ssrc}, s, im.prof)) throw invalid(*e);
    if (im.speaker_free.empty()) {
        size_t total = 0;
        for (auto& [k, o] : im.sessions) total += o->speakers.size();
        if (total >= im.prof.limits.max_speakers)
            throw action_error(error_code::capacity, "speaker table full (limits.max_speakers)");
        throw action_error(error_code::capacity, "speaker slots busy; retry after the next publish");
    }
    // A forward session's listeners each receive every speaker's stream: a
    // second speaker doubles what they cost (admission plans it, or the
    // speaker is refused and nothing changes).
    const unsigned before = s.speaker_streams();
    const unsigned after = before + (trunk && s.has_trunk_flow() ? 0 : 1);
    const bool adds_stream = s.mode == session_mode::forward && std::max(1u, after) > std::max(1u, before);
    if (adds_stream && im.adm != nullptr) {
        try {
            im.adm->admit_load(s.one_stream(), s.live);
        } catch (const action_error& e) {
            im.adm->count_refusal(e.code);
            throw;
        }
    }
    const uint32_t slot = im.speaker_free.back();
    im.speaker_free.pop_back();
    // The slot was idle for a whole grace period: no RX lcore writes any of
    // its per-queue entries now.
    for (uint32_t q = 0; q < im.sh.nb_rx_queues; ++q) dp::policer_of(im.sh, q, slot) = dp::dp_policer{};
    if (trunk && s.dedup == nullptr) {
        // Zeroed: no tag matches. Published with the session (build_session).
        s.dedup = alloc_zeroed<dp::dp_dedup>(sizeof(dp::dp_dedup));
        s.dirty = true;
    }
    s.speakers.push_back({ip, port, ssrc, slot, {}, trunk, spec.ip6});
    im.flows_dirty = true;
    if (s.srtp_streams != nullptr) im.watch_srtp(session_id);   // its SSRC will want a reservation soon
    if (!trunk) im.journal_record(jr::rec_speaker_add{session_id, {ip, port, ssrc, spec.ip6}});
    im.mark_changed();
}

void relay_state::speaker_del(uint32_t session_id, uint32_t ip, unsigned port) {
    speaker_del(session_id, listener_addr{ip, port, std::nullopt});
}

void relay_state::speaker_del(uint32_t session_id, const listener_addr& a) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    im.check_journal();
    session_state& s = im.get(session_id);
    const uint32_t ip = a.ip6 ? 0 : a.ip;
    const unsigned port = a.port;
    auto it = std::find_if(s.speakers.begin(), s.speakers.end(),
                           [&](const speaker_view& v) { return v.ip6 == a.ip6 && v.ip == ip && v.port == port; });
    if (it == s.speakers.end())
        throw action_error(error_code::not_found, "no speaker " + format_peer(ip, a.ip6, port));
    im.note_trunk_floor(session_id, s, *it);
    im.speaker_release.push_back(it->slot);
    if (auto k = s.speaker_keys.find(it->slot); k != s.speaker_keys.end()) {
        im.drop_keys(k->second);
        s.speaker_keys.erase(k);
        im.keys_dirty = true;
    }
    const unsigned before = s.speaker_streams();
    const bool trunk = it->trunk;
    s.speakers.erase(it);
    if (s.mode == session_mode::forward && std::max(1u, s.speaker_streams()) < std::max(1u, before) && im.adm != nullptr)
        im.adm->release_load(s.one_stream(), s.live);
    im.flows_dirty = true;
    if (!trunk) im.journal_record(jr::rec_speaker_del{session_id, ip, port, a.ip6});
    im.mark_changed();
}

void relay_state::listener_add(uint32_t session_id, uint32_t ip, unsigned port, unsigned tier, bool by_token,
                                bool trunk) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    try {
        im.check_journal();
        session_state& s = im.get(session_id);
        if (auto e = check_listener({ip, port, tier}, im.prof)) throw invalid(*e);
        if (s.listeners.count(ep_key(ip, port)))
            throw action_error(error_code::exists, "listener " + format_ipv4(ip) + ":" + std::to_string(port) + " exists");
        if (s.listeners.size() >= s.max_listeners)
            throw action_error(error_code::session_full, "session " + std::to_string(session_id) + " is full");
        if (im.nb_listeners >= im.prof.limits.max_listeners)
            throw action_error(error_code::capacity, "relay listener limit reached (limits.max_listeners)");
        const auto [nexthop, port_idx] = im.route(ip);
        if (!im.neigh_available(nexthop))
            throw action_error(error_code::capacity, "neighbour table full (limits.max_neighbours)");
        if (im.adm != nullptr) {
            join_counts jc{};
            jc[family_ipv4][port_idx][tier] = 1;
            im.adm->admit(session_id, s.per_listener(), jc);
        }
        im.add_listener(s, ip, port, tier, by_token, trunk);
        if (!im.replay) ++s.tally.joins;
        if (im.jr != nullptr && !trunk) jr::encode_listener_add(session_id, {ip, port, tier, by_token}, im.jr_pending);
        im.mark_changed();
    } catch (const action_error& e) {
        if (im.adm != nullptr) im.adm->count_refusal(e.code);
        throw;
    }
}

void relay_state::listener_add(uint32_t session_id, const listener_spec& l) {
    if (!l.ip6) return listener_add(session_id, l.ip, l.port, l.tier, l.by_token, l.trunk);
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    try {
        im.check_journal();
        session_state& s = im.get(session_id);
        if (auto e = check_listener6(l, im.prof)) throw invalid(*e);
        if (im.key_of(s, 0, l.ip6, l.port))
            throw action_error(error_code::exists, "listener " + format_endpoint6(*l.ip6, l.port) + " exists");
        if (s.listeners.size() >= s.max_listeners)
            throw action_error(error_code::session_full, "session " + std::to_string(session_id) + " is full");
        if (im.nb_listeners >= im.prof.limits.max_listeners)
            throw action_error(error_code::capacity, "relay listener limit reached (limits.max_listeners)");
        const auto [nexthop, port_idx] = im.route6(*l.ip6);
        if (!im.neigh6_available(nexthop))
            throw action_error(error_code::capacity, "neighbour table full (limits.max_neighbours)");
        if (im.adm != nullptr) {
            join_counts jc{};
            jc[family_ipv6][port_idx][l.tier] = 1;
            im.adm->admit(session_id, s.per_listener(), jc);
        }
        im.add_listener6(s, *l.ip6, l.port, l.tier, l.by_token, l.trunk);
        if (!im.replay) ++s.tally.joins;
        if (im.jr != nullptr && !l.trunk) jr::encode_listener_add(session_id, l, im.jr_pending);
        im.mark_changed();
    } catch (const action_error& e) {
        if (im.adm != nullptr) im.adm->count_refusal(e.code);
        throw;
    }
}

void relay_state::listener_del(uint32_t session_id, const listener_addr& a, listener_removal why) {
    if (!a.ip6) return listener_del(session_id, a.ip, a.port, why);
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    im.check_journal();
    session_state& s = im.get(session_id);
    const auto k = im.key_of(s, 0, a.ip6, a.port);
    if (!k) throw action_error(error_code::not_found, "no listener " + format_endpoint6(*a.ip6, a.port));
    const auto it = s.listeners.find(*k);
    const bool trunk = (it->second.flags & lrec_trunk) != 0;
    im.remove_listener(s, it);
    if (!im.replay) ++(why == listener_removal::consent_expired ? s.tally.consent_expired : s.tally.leaves);
    if (!trunk) im.journal_record(jr::rec_listener_del{session_id, 0, a.port, a.ip6});
    im.mark_changed();
}

void relay_state::listener_add_bulk(uint32_t session_id, const std::vector<listener_spec>& items) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    try {
        im.check_journal();
        session_state& s = im.get(session_id);
        auto item_error = [&](size_t i, error_code code, const std::string& why) {
            return action_error(code, "listeners[" + std::to_string(i) + "]: " + why);
        };
        // Validate everything first: nothing changes unless all items pass.
        join_counts jc{};
        std::vector<uint64_t> keys;
        keys.reserve(items.size());
        std::unordered_map<uint32_t, bool> new_neigh;   // next hops not yet in the table
        std::unordered_map<ep6, bool, ep6_hash> seen6;  // IPv6 items (duplicates)
        std::unordered_map<ep6, bool, ep6_hash> new_neigh6;
        for (size_t i = 0; i < items.size(); ++i) {
            const auto& it = items[i];
            if (it.ip6) {
                if (auto e = check_listener6(it, im.prof)) throw item_error(i, error_code::invalid, describe(*e));
                if (im.key_of(s, 0, it.ip6, it.port))
                    throw item_error(i, error_code::exists, "listener " + format_endpoint6(*it.ip6, it.port) + " exists");
                if (!seen6.emplace(ep6{*it.ip6, static_cast<uint16_t>(it.port)}, true).second)
                    throw action_error(error_code::exists, "listener " + format_endpoint6(*it.ip6, it.port) +
                                                               " appears twice in the request");
                std::pair<ipv6_addr, uint16_t> via;
                try {
                    via = im.route6(*it.ip6);
                } catch (const action_error& e) {
                    throw item_error(i, e.code, e.what());
                }
                if (im.neigh6_by_ip.count(via.first) == 0) new_neigh6.emplace(ep6{via.first, 0}, true);
                ++jc[family_ipv6][via.second][it.tier];
                continue;
            }
            if (auto e = check_listener(it, im.prof)) throw item_error(i, error_code::invalid, describe(*e));
            const uint64_t k = ep_key(it.ip, it.port);
            if (s.listeners.count(k))
                throw item_error(i, error_code::exists,
                                 "listener " + format_ipv4(it.ip) + ":" + std::to_string(it.port) + " exists");
            keys.push_back(k);
            const auto [nexthop, port_idx] = im.route(it.ip);
            if (im.neigh_by_ip.count(nexthop) == 0) new_neigh.emplace(nexthop, true);
            ++jc[family_ipv4][port_idx][it.tier];
        }
        std::sort(keys.begin(), keys.end());
        if (auto d = std::adjacent_find(keys.begin(), keys.end()); d != keys.end())
            throw action_error(error_code::exists,
                               "listener " + format_ipv4(static_cast<uint32_t>(*d >> 16)) + ":" +
                                   std::to_string(*d & 0xffff) + " appears twice in the request");
        if (s.listeners.size() + items.size() > s.max_listeners)
            throw action_error(error_code::session_full,
                               "session " + std::to_string(session_id) + " has room for " +
                                   std::to_string(s.max_listeners - s.listeners.size()) + " more listeners, not " +
                                   std::to_string(items.size()));
        if (im.nb_listeners + items.size() > im.prof.limits.max_listeners)
            throw action_error(error_code::capacity, "relay listener limit reached (limits.max_listeners)");
        if (new_neigh.size() + new_neigh6.size() > im.neigh_free.size())
            throw action_error(error_code::capacity, "neighbour table full (limits.max_neighbours)");
        if (im.adm != nullptr) im.adm->admit(session_id, s.per_listener(), jc);
        // Grow geometrically: reserve(size + n) on every request would
        // rehash the whole map each time (libstdc++ grows to exactly that).
        const size_t want = s.listeners.size() + items.size();
        if (want > s.listeners.bucket_count() * s.listeners.max_load_factor())
            s.listeners.reserve(std::max(want, 2 * s.listeners.size()));
        for (const auto& it : items) {
            if (it.ip6)
                im.add_listener6(s, *it.ip6, it.port, it.tier, it.by_token);
            else
                im.add_listener(s, it.ip, it.port, it.tier, it.by_token);
        }
        if (!im.replay) s.tally.joins += items.size();
        if (!items.empty()) {
            if (im.jr != nullptr) jr::encode_listener_add_bulk(session_id, items, im.jr_pending);
            im.mark_changed();
        }
    } catch (const action_error& e) {
        if (im.adm != nullptr) im.adm->count_refusal(e.code);
        throw;
    }
}

void relay_state::listener_del(uint32_t session_id, uint32_t ip, unsigned port, listener_removal why) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    im.check_journal();
    session_state& s = im.get(session_id);
    auto it = s.listeners.find(ep_key(ip, port));
    if (it == s.listeners.end())
        throw action_error(error_code::not_found, "no listener " + format_ipv4(ip) + ":" + std::to_string(port));
    const bool trunk = (it->second.flags & lrec_trunk) != 0;
    im.remove_listener(s, it);
    if (!im.replay) ++(why == listener_removal::consent_expired ? s.tally.consent_expired : s.tally.leaves);
    if (!trunk) im.journal_record(jr::rec_listener_del{session_id, ip, port});
    im.mark_changed();
}

void relay_state::listener_del_bulk(uint32_t session_id, const std::vector<listener_addr>& items) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    im.check_journal();
    session_state& s = im.get(session_id);
    std::vector<uint64_t> keys;
    keys.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
        const auto k = im.key_of(s, items[i].ip, items[i].ip6, items[i].port);
        if (!k)
            throw action_error(error_code::not_found, "listeners[" + std::to_string(i) + "]: no listener " +
                                                          format_peer(items[i].ip, items[i].ip6, items[i].port));
        keys.push_back(*k);
    }
    std::vector<uint64_t> sorted = keys;
    std::sort(sorted.begin(), sorted.end());
    if (auto d = std::adjacent_find(sorted.begin(), sorted.end()); d != sorted.end()) {
        uint32_t ip;
        unsigned port;
        std::optional<ipv6_addr> ip6;
        im.addr_of(*d, &ip, &port, &ip6);
        throw action_error(error_code::invalid, "listener " + format_peer(ip, ip6, port) + " appears twice in the request");
    }
    if (items.empty()) return;
    std::vector<bool> trunk(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) trunk[i] = (s.listeners.find(keys[i])->second.flags & lrec_trunk) != 0;
    for (const uint64_t k : keys) im.remove_listener(s, s.listeners.find(k));
    // The record sheds use: (session, ip, port) removals, replayed one by one.
    if (im.jr != nullptr) {
        jr::rec_listeners_removed r;
        r.items.reserve(items.size());
        for (size_t i = 0; i < items.size(); ++i)
            if (!trunk[i]) r.items.push_back({session_id, items[i].ip, items[i].port, items[i].ip6});
        if (!r.items.empty()) jr::encode(r, im.jr_pending);
    }
    im.mark_changed();
}

bool relay_state::listener_set_tier(uint32_t session_id, const listener_addr& a, unsigned tier) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    try {
        session_state& s = im.get(session_id);
        if (tier >= max_tiers)
            throw action_error(error_code::invalid, "tier: " + std::to_string(tier) + " is out of range 0.." +
                                                        std::to_string(max_tiers - 1));
        const auto k = im.key_of(s, a.ip, a.ip6, a.port);
        if (!k) throw action_error(error_code::not_found, "no listener " + format_peer(a.ip, a.ip6, a.port));
        const auto it = s.listeners.find(*k);
        if (it->second.flags & lrec_trunk)
            throw action_error(error_code::invalid, "listener " + format_peer(a.ip, a.ip6, a.port) +
                                                        " is a fleet trunk: its tier is the trunk's, it does not move");
        if (it->second.tier == tier) return false;
        im.check_journal();
        const ip_family fam = is_key6(*k) ? family_ipv6 : family_ipv4;
        if (im.adm != nullptr) im.adm->admit_move(session_id, s.per_listener(), fam, it->second.port_idx, tier);
        im.move_listener(s, it, tier);
        im.journal_record(jr::rec_listener_tier{session_id, a.ip6 ? 0 : a.ip, a.port, tier, a.ip6});
        im.mark_changed();
        return true;
    } catch (const action_error& e) {
        if (im.adm != nullptr) im.adm->count_refusal(e.code);
        throw;
    }
}

std::vector<shed_record> relay_state::shed_newest(unsigned tier, size_t k) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    std::vector<shed_record> out;
    if (tier >= max_tiers || k == 0) return out;
    // Newest first across sessions: a max-heap of each session's newest live
    // entry of this tier, walked back from the end of its join order. k
    // removals cost O(k log sessions), whatever the sessions hold.
    struct head {
        uint64_t seq;
        session_state* s;
        size_t pos;   // index in s->order[tier].e
        bool operator<(const head& o) const { return seq < o.seq; }
    };
    // A fleet trunk is never shed: it carries a whole edge's listeners.
    auto newest_from = [tier](session_state* s, size_t end) -> std::optional<head> {
        const auto& e = s->order[tier].e;
        for (size_t i = end; i-- > 0;)
            if (e[i].key != join_order::hole && !(s->listeners.find(e[i].key)->second.flags & lrec_trunk))
                return head{e[i].seq, s, i};
        return std::nullopt;
    };
    std::priority_queue<head> q;
    for (auto& [id, s] : im.sessions)
        if (s->tier_live[tier] != 0)
            if (auto h = newest_from(s.get(), s->order[tier].e.size())) q.push(*h);
    std::vector<std::pair<session_state*, uint64_t>> victims;
    while (victims.size() < k && !q.empty()) {
        const head h = q.top();
        q.pop();
        victims.emplace_back(h.s, h.s->order[tier].e[h.pos].key);
        if (auto n = newest_from(h.s, h.pos)) q.push(*n);
    }
    // Removing compacts the order vectors: only after the walk.
    for (const auto& [s, key] : victims) {
        auto it = s->listeners.find(key);
        shed_record rec{s->id, 0, 0, tier, {}};
        im.addr_of(key, &rec.ip, &rec.port, &rec.ip6);
        out.push_back(rec);
        im.remove_listener(*s, it);
        ++s->tally.shed;
    }
    if (!victims.empty()) {
        // Shedding protects the listeners that stay: it goes on while the
        // journal cannot write, and its record waits with the others.
        if (im.jr != nullptr) {
            jr::rec_listeners_removed r;
            for (const auto& o : out) r.items.push_back({o.session_id, o.ip, o.port, o.ip6});
            jr::encode(r, im.jr_pending);
        }
        im.mark_changed();
    }
    return out;
}

void relay_state::set_limits(const limits_config& l) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    im.prof.limits = l;
    im.flows_dirty = true;   // policer rates
    im.mark_changed();
}

void relay_state::set_session_observer(std::function<void(uint32_t session_id, bool ended)> fn) {
    std::lock_guard g(_impl->mu);
    _impl->observer = fn ? std::make_shared<std::function<void(uint32_t, bool)>>(std::move(fn)) : nullptr;
}

void relay_state::set_admission(admission* a) {
    std::lock_guard g(_impl->mu);
    _impl->adm = a;
}

void relay_state::set_journal(journal* j) {
    auto& im = *_impl;
    std::lock_guard g(im.mu);
    im.jr = j;
    im.jr_pending.clear();
    im.jr_error.clear();
    im.reservations.clear();
    im.reservations_inflight.clear();
    if (j != nullptr && !im.srtp_reserving) {
        // From now on every egress index needs a journaled reservation,
        // also in the tables built before (the restore's): nothing of them
        // is reserved yet.
        im.srtp_reserving = true;
        for (const uint32_t id : im.srtp_tables)
            if (const auto it = im.sessions.find(id); it != im.sessions.end() && it->second->srtp_streams != nullptr) {
                for (auto& sl : it->second->srtp_streams->slot) sl.limit.store(0, std::memory_order_release);
                im.watch_srtp(id);
            }
    }
}

bool relay_state::srtp_reserve(bool* reserving) {
    std::lock_guard g(_impl->mu);
    const bool queued = _impl->reserve_egress();
    if (reserving != nullptr)
        *reserving = queued || (_impl->srtp_reserving && _impl->jr != nullptr && !_impl->srtp_tables.empty());
    return queued;
}

relay_state::trunk_floor_stats relay_state::trunk_floors() const {
    std::lock_guard g(_impl->mu);
    return {_impl->trunk_floors.size(), _impl->trunk_floor_evictions};
}

bool relay_state::srtp_mark_ingress() {
    std::lock_guard g(_impl->mu);
    return _impl->mark_ingress();
}

void relay_state::srtp_ingress_marked(uint32_t session_id, const listener_addr& speaker, uint32_t ssrc_be,
                                      uint64_t index) {
    auto& im = *_impl;
    std::lock_guard g(im.mu);
    speaker_view sp{};
    sp.ip = speaker.ip;
    sp.port = speaker.port;
    sp.ip6 = speaker.ip6;
    im.ingress_marks[impl::key_of(session_id, sp)] = {ssrc_be, index};
    im.keys_dirty = true;
    im.mark_changed();
}

void relay_state::srtp_reserved(uint32_t session_id, uint32_t ssrc_be, uint64_t limit) {
    auto& im = *_impl;
    std::lock_guard g(im.mu);
    const uint64_t tag = uint64_t{1} << 32 | ssrc_be;
    // A session that is not there (ended before the restart) counts as
    // ended now, so that what is remembered stays bounded across restarts.
    const auto live = im.sessions.find(session_id);
    auto& hw = live != im.sessions.end() ? im.egress_hw[session_id] : im.ended_marks(session_id);
    impl::raise_mark(hw.marks, tag, limit);
    // A live session's table built already (the restore publishes between
    // records): its SSRC continues above the limit.
    if (live != im.sessions.end() && live->second->srtp_streams != nullptr)
        if (auto* sl = dp::egress_slot(*live->second->srtp_streams, ssrc_be)) {
            uint64_t cur = sl->next.load(std::memory_order_relaxed);
            while (cur < limit && !sl->next.compare_exchange_weak(cur, limit, std::memory_order_relaxed)) {
            }
        }
}

void relay_state::set_replay(bool on) {
    std::lock_guard g(_impl->mu);
    _impl->replay = on;
    if (_impl->adm != nullptr) _impl->adm->set_replay(on);
}

void relay_state::session_ids_given(uint64_t next) {
    std::lock_guard g(_impl->mu);
    _impl->next_session_id = std::max(_impl->next_session_id, std::min<uint64_t>(next, uint64_t{UINT32_MAX} + 1));
}

state_image relay_state::image() const {
    std::lock_guard g(_impl->mu);
    return _impl->image();
}

void relay_state::publish() {
    auto& im = *_impl;
    std::lock_guard pg(im.publish_mu);
    std::vector<void*> retired;
    std::vector<srtp::key*> retired_keys;
    std::vector<uint32_t> neighs, speakers;
    uint64_t target;
    std::string records;
    std::optional<state_image> img;
    journal* jr;
    // Group commit: one write and one sync for every action since the last
    // publish, on a thread of its own so that the sync overlaps building the
    // snapshot and the grace period (bench_joins --journal-only, 1 M
    // listeners in acknowledged bulks of 100 000, shared VM: journal on/off
    // 0.744 with the sync after the build, 0.790 overlapped).
    std::future<bool> written;
    {
        std::lock_guard g(im.mu);
        target = im.changes;
        im.built_changes = target;
        jr = im.jr;
        if (jr != nullptr) {
            // Reservations (srtp_reserve) ride this write; their limits
            // reach the slots only once it is durable (below).
            im.reservations_inflight.swap(im.reservations);
            records.swap(im.jr_pending);
            // The copy is taken with the records it reflects, all of which
            // are written below before the new epoch starts.
            if (jr->compaction_due()) img = im.image();
            if (!records.empty()) written = std::async(std::launch::async, [jr, &records] { return jr->append(records); });
        }
        im.publish();
        retired.swap(im.retired);
        retired_keys.swap(im.retired_keys);
        neighs.swap(im.neigh_release);
        speakers.swap(im.speaker_release);
    }
    // Grace period outside the state mutex: actions go on meanwhile. Every
    // online worker passes a quiescent state (one loop iteration) after the
    // store; then nothing references the old version.
    if (im.sh.rcu != nullptr) rte_rcu_qsbr_synchronize(im.sh.rcu, RTE_QSBR_THRID_INVALID);
    const bool durable = jr == nullptr || (written.valid() ? written.get() : jr->append(records));
    if (durable && img) jr->compact(std::move(*img));
    for (void* p : retired) dp_free(p);
    for (auto* k : retired_keys) srtp::key_free(k);
    {
        std::lock_guard g(im.mu);
        im.release_slots(neighs, speakers);
        if (durable) {
            im.published_changes = std::max(im.published_changes, target);
            im.jr_error.clear();
            im.apply_reservations(im.reservations_inflight);
            im.reservations_inflight.clear();
        } else {
            im.reservations.insert(im.reservations.begin(), im.reservations_inflight.begin(),
                                   im.reservations_inflight.end());
            im.reservations_inflight.clear();
            // Forwarding already, not durable: not acknowledged. The records
            // stay first in line for the next publish, which retries.
            records.append(im.jr_pending);
            im.jr_pending.swap(records);
            im.jr_error = jr->error();
        }
    }
    im.published_cv.notify_all();
}

void relay_state::load_static(const profile& p) {
    for (const auto& sc : p.sessions) {
        session_create(sc);
        for (const auto& s : sc.speakers) speaker_add(sc.id, s);
        for (const auto& l : sc.listeners) listener_add(sc.id, listener_spec{l.ip, l.port, l.tier, false, l.ip6});
    }
    load_static_keys(p);
    publish();
}

namespace {
action_error srtp_refused(srtp_keyset_model::refusal r, const std::string& why) {
    switch (r) {
    case srtp_keyset_model::refusal::exists: return action_error(error_code::exists, why);
    case srtp_keyset_model::refusal::not_found: return action_error(error_code::not_found, why);
    case srtp_keyset_model::refusal::full: return action_error(error_code::invalid, why);
    default: return action_error(error_code::invalid, why);
    }
}
}  // namespace

void relay_state::srtp_key_add(const srtp_key_owner& o, srtp_key_spec&& k) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    session_state& s = im.get(o.session_id);
    std::string why;
    if (!o.speaker) {
        if (const auto r = s.srtp_tx.add(std::move(k), im.srtp_users(), &why); r != srtp_keyset_model::refusal::none)
            throw srtp_refused(r, why);
        s.dirty = true;
    } else {
        const auto [ip, port] = *o.speaker;
        auto it = std::find_if(s.speakers.begin(), s.speakers.end(), [&](const speaker_view& v) {
            return v.ip6 == o.speaker_ip6 && (o.speaker_ip6 || v.ip == ip) && v.port == port;
        });
        if (it == s.speakers.end())
            throw action_error(error_code::not_found, "no speaker " + format_peer(ip, o.speaker_ip6, port));
        if (k.activate) throw action_error(error_code::invalid, "activate: a speaker's keys are all accepted; only session keys are activated");
        auto& m = s.speaker_keys[it->slot];
        if (const auto r = m.add(std::move(k), im.srtp_users(), &why); r != srtp_keyset_model::refusal::none) {
            if (m.empty()) s.speaker_keys.erase(it->slot);
            throw srtp_refused(r, why);
        }
        im.keys_dirty = true;
    }
    im.mark_changed();
}

void relay_state::srtp_key_activate(uint32_t session_id, const std::string& id) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    session_state& s = im.get(session_id);
    std::string why;
    if (const auto r = s.srtp_tx.activate(id, &why); r != srtp_keyset_model::refusal::none) throw srtp_refused(r, why);
    s.dirty = true;
    im.mark_changed();
}

void relay_state::srtp_key_del(const srtp_key_owner& o, const std::string& id) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    session_state& s = im.get(o.session_id);
    std::string why;
    if (!o.speaker) {
        if (const auto r = s.srtp_tx.remove(id, true, &why); r != srtp_keyset_model::refusal::none)
            throw srtp_refused(r, why);
        im.take_retired(s.srtp_tx);
        s.dirty = true;
    } else {
        const auto [ip, port] = *o.speaker;
        auto it = std::find_if(s.speakers.begin(), s.speakers.end(), [&](const speaker_view& v) {
            return v.ip6 == o.speaker_ip6 && (o.speaker_ip6 || v.ip == ip) && v.port == port;
        });
        if (it == s.speakers.end())
            throw action_error(error_code::not_found, "no speaker " + format_peer(ip, o.speaker_ip6, port));
        auto m = s.speaker_keys.find(it->slot);
        if (m == s.speaker_keys.end()) throw action_error(error_code::not_found, "no key \"" + id + "\"");
        if (const auto r = m->second.remove(id, false, &why); r != srtp_keyset_model::refusal::none)
            throw srtp_refused(r, why);
        im.take_retired(m->second);
        if (m->second.empty()) s.speaker_keys.erase(m);
        im.keys_dirty = true;
    }
    im.mark_changed();
}

bool relay_state::trunk_key_set(uint32_t session_id, srtp_key_spec&& k) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    session_state& s = im.get(session_id);
    const auto now = s.trunk_tx.info(true);
    if (std::any_of(now.begin(), now.end(), [&](const srtp_key_info& i) { return i.id == k.id; })) return false;
    // Added and activated before the old one goes: a refusal (a bad key)
    // leaves the old key protecting, and nothing changed.
    const std::string id = k.id;
    k.activate = true;
    std::string why;
    if (const auto r = s.trunk_tx.add(std::move(k), im.srtp_users(), &why); r != srtp_keyset_model::refusal::none)
        throw srtp_refused(r, "trunk key: " + why);
    for (const auto& old : now) s.trunk_tx.remove(old.id, false, &why);
    im.take_retired(s.trunk_tx);
    s.dirty = true;
    im.mark_changed();
    return true;
}

void relay_state::trunk_key_clear(uint32_t session_id) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    session_state& s = im.get(session_id);
    if (s.trunk_tx.empty()) throw action_error(error_code::not_found, "session " + std::to_string(session_id) + " has no trunk key");
    im.drop_keys(s.trunk_tx);
    s.dirty = true;
    im.mark_changed();
}

void relay_state::set_trunk_auth(bool required) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    if (im.trunk_auth == required) return;
    im.trunk_auth = required;
    for (auto& [id, s] : im.sessions) s->dirty = true;   // the twins' srtp_egress
    im.flows_dirty = true;                               // the trunk flows' srtp_in
    im.flows6_dirty = true;
    im.mark_changed();
}

void relay_state::load_static_keys(const profile& p) {
    const auto copy = [](const srtp_key_config& kc, bool activate) {
        srtp_key_spec k;
        k.id = kc.id;
        k.suite = kc.suite;
        k.mki = kc.mki;
        k.master = secure_bytes(kc.master->size());
        std::memcpy(k.master.data(), kc.master->data(), kc.master->size());
        k.activate = activate;
        return k;
    };
    for (const auto& sc : p.sessions) {
        if (!session(sc.id)) continue;   // ended through the API since (journal)
        for (size_t i = 0; i < sc.srtp_keys.size(); ++i) srtp_key_add({sc.id, std::nullopt}, copy(sc.srtp_keys[i], i == 0));
        for (size_t i = 0; i < sc.speakers.size() && i < sc.speaker_srtp_keys.size(); ++i)
            for (const auto& kc : sc.speaker_srtp_keys[i]) {
                try {
                    srtp_key_add({sc.id, std::make_pair(sc.speakers[i].ip, sc.speakers[i].port), sc.speakers[i].ip6},
                                 copy(kc, false));
                } catch (const action_error& e) {
                    if (e.code != error_code::not_found) throw;   // speaker removed through the API since
                }
            }
    }
}

std::vector<session_view> relay_state::sessions() const {
    std::lock_guard g(_impl->mu);
    std::vector<session_view> out;
    for (auto& [id, s] : _impl->sessions) out.push_back(_impl->view(*s));
    return out;
}

std::optional<session_view> relay_state::session(uint32_t id) const {
    std::lock_guard g(_impl->mu);
    auto it = _impl->sessions.find(id);
    if (it == _impl->sessions.end()) return std::nullopt;
    return _impl->view(*it->second);
}

std::vector<listener_view> relay_state::listeners(uint32_t session_id, size_t offset, size_t limit,
                                                  std::optional<uint64_t> after) const {
    std::lock_guard g(_impl->mu);
    auto it = _impl->sessions.find(session_id);
    if (it == _impl->sessions.end()) throw action_error(error_code::not_found, "no session " + std::to_string(session_id));
    const session_state& s = *it->second;
    // Join order across tiers: a merge of the (at most four) tier orders,
    // started at the cursor (binary search) or at the beginning, skipping
    // `offset` live entries. With a cursor a page costs O(log n + limit);
    // an offset walks (not copies) what it skips.
    std::array<size_t, max_tiers> pos{};
    for (unsigned t = 0; t < max_tiers; ++t) {
        const auto& e = s.order[t].e;
        pos[t] = after ? static_cast<size_t>(std::upper_bound(e.begin(), e.end(), *after,
                                                              [](uint64_t v, const join_order::entry& a) {
                                                                  return v < a.seq;
                                                              }) -
                                             e.begin())
                       : 0;
    }
    auto next_entry = [&]() -> std::optional<std::pair<unsigned, const join_order::entry*>> {
        std::optional<std::pair<unsigned, const join_order::entry*>> best;
        for (unsigned t = 0; t < max_tiers; ++t) {
            const auto& e = s.order[t].e;
            while (pos[t] < e.size() && e[pos[t]].key == join_order::hole) ++pos[t];
            if (pos[t] < e.size() && (!best || e[pos[t]].seq < best->second->seq)) best.emplace(t, &e[pos[t]]);
        }
        if (best) ++pos[best->first];
        return best;
    };
    for (size_t skipped = 0; skipped < offset; ++skipped)
        if (!next_entry()) return {};
    std::vector<listener_view> out;
    out.reserve(std::min(limit, s.listeners.size()));
    while (out.size() < limit) {
        const auto n = next_entry();
        if (!n) break;
        listener_view v{0, 0, n->first, n->second->seq, {}};
        _impl->addr_of(n->second->key, &v.ip, &v.port, &v.ip6);
        out.push_back(v);
    }
    return out;
}

std::vector<uint32_t> relay_state::unresolved_next_hops(const std::vector<uint32_t>& ips) const {
    std::lock_guard g(_impl->mu);
    const auto& im = *_impl;
    std::vector<uint32_t> out;
    for (const uint32_t ip : ips) {
        const uint32_t nexthop = im.route(ip).first;
        auto it = im.neigh_by_ip.find(nexthop);
        if (it == im.neigh_by_ip.end()) continue;
        if (im.sh.neigh[it->second.idx].mac_word.load(std::memory_order_acquire) & dp::neigh_valid) continue;
        if (std::find(out.begin(), out.end(), nexthop) == out.end()) out.push_back(nexthop);
    }
    return out;
}

std::vector<uint8_t> relay_state::next_hops_resolved(const std::vector<listener_addr>& peers) const {
    std::lock_guard g(_impl->mu);
    const auto& im = *_impl;
    std::vector<uint8_t> out(peers.size(), 1);
    for (size_t i = 0; i < peers.size(); ++i) {
        const auto& p = peers[i];
        try {
            if (p.ip6) {
                auto it = im.neigh6_by_ip.find(im.route6(*p.ip6).first);
                if (it != im.neigh6_by_ip.end()) out[i] = im.neigh_resolved(it->second.idx) ? 1 : 0;
            } else {
                auto it = im.neigh_by_ip.find(im.route(p.ip).first);
                if (it != im.neigh_by_ip.end()) out[i] = im.neigh_resolved(it->second.idx) ? 1 : 0;
            }
        } catch (const action_error&) {
            // no route: nothing to wait for
        }
    }
    return out;
}

relay_state::next_hop6 relay_state::next_hop6_ref(const ipv6_addr& dst) {
    std::lock_guard g(_impl->mu);
    auto& im = *_impl;
    const auto [via, port] = im.route6(dst);
    if (!im.neigh6_available(via))
        throw action_error(error_code::capacity, "neighbour table full (limits.max_neighbours)");
    const uint32_t idx = im.neigh6_ref(via, port);
    im.mark_changed();
    return {idx, port, via};
}

void relay_state::next_hop6_unref(uint32_t neigh_idx) {
    std::lock_guard g(_impl->mu);
    _impl->neigh6_unref(neigh_idx);
    _impl->mark_changed();
}

bool relay_state::next_hop_resolved(uint32_t neigh_idx) const {
    std::lock_guard g(_impl->mu);
    return _impl->neigh_resolved(neigh_idx);
}

std::optional<std::array<uint8_t, 6>> relay_state::next_hop_mac(uint32_t neigh_idx) const {
    std::lock_guard g(_impl->mu);
    if (!_impl->neigh_resolved(neigh_idx)) return std::nullopt;
    const uint64_t w = _impl->sh.neigh[neigh_idx].mac_word.load(std::memory_order_acquire);
    std::array<uint8_t, 6> mac;
    std::memcpy(mac.data(), &w, 6);
    return mac;
}

std::vector<shed_record> relay_state::listener_refs(bool by_token_only) const {
    std::lock_guard g(_impl->mu);
    std::vector<shed_record> out;
    for (const auto& [id, s] : _impl->sessions)
        for (const auto& [k, r] : s->listeners)
            // A fleet trunk is never under consent, whatever the mode: the
            // trunk keys in etcd are its truth (docs/join.md "What the desk decides").
            if (((r.flags & lrec_by_token) || !by_token_only) && !(r.flags & lrec_trunk)) {
                shed_record rec{id, 0, 0, r.tier, {}};
                _impl->addr_of(k, &rec.ip, &rec.port, &rec.ip6);
                out.push_back(rec);
            }
    return out;
}

uint64_t relay_state::nb_listeners() const {
    std::lock_guard g(_impl->mu);
    return _impl->nb_listeners;
}

uint64_t relay_state::published_version() const {
    std::lock_guard g(_impl->mu);
    return _impl->version;
}

std::array<uint64_t, dp::max_tiers> relay_state::listeners_per_tier() const {
    std::lock_guard g(_impl->mu);
    std::array<uint64_t, dp::max_tiers> t{};
    for (const auto& [id, s] : _impl->sessions)
        for (unsigned i = 0; i < max_tiers; ++i) t[i] += s->tier_live[i];
    return t;
}

uint64_t relay_state::change_mark() const {
    std::lock_guard g(_impl->mu);
    return _impl->changes;
}

bool relay_state::wait_published(uint64_t mark, std::chrono::milliseconds timeout) const {
    std::unique_lock g(_impl->mu);
    return _impl->published_cv.wait_for(g, timeout, [&] { return _impl->published_changes >= mark; });
}

bool relay_state::wait_pending(std::chrono::milliseconds timeout) const {
    std::unique_lock g(_impl->mu);
    return _impl->pending_cv.wait_for(
        g, timeout, [&] { return _impl->changes != _impl->built_changes || !_impl->jr_pending.empty(); });
}

bool relay_state::has_pending() const {
    std::lock_guard g(_impl->mu);
    return _impl->changes != _impl->built_changes || !_impl->jr_pending.empty();
}

}  // namespace stentor::control
