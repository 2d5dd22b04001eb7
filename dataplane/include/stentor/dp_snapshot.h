// The immutable view of the relay's state that the data plane reads.
//
// The control plane owns the truth and builds a new dp_snapshot whenever
// something changes; it swaps the root pointer in (release store), waits for
// an RCU grace period (rte_rcu_qsbr: every worker reports a quiescent state
// once per loop iteration) and only then frees what the old version no longer
// shares. Listener arrays are chunked so that a join or a leave copies one
// 4 KiB chunk (at most: its slots in use) and one pointer array, not the
// world.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "stentor/dp_counters.h"
#include "stentor/srtp.h"

namespace stentor::dp {

inline constexpr uint32_t max_fanout_shards = 32;

// One IPv4 listener as the fan-out loop streams it: 8 bytes, so one cache
// line carries eight listeners and 1 M listeners take 8 MB. The replica's
// checksum deltas are derived from the address and port as it is built (a
// few ALU instructions, against a record twice as long to stream); a free
// slot is all zero (no listener has port 0). The next hop's index is 16 bits,
// so the neighbour table has at most 65 536 entries (limits.max_neighbours).
struct alignas(8) dp_listener {
    uint32_t ip_be;        // destination address, network order
    uint16_t port_be;      // destination UDP port, network order; 0 = free slot
    uint16_t neigh_idx;    // next hop (itself or the gateway) in the neighbour table
};
static_assert(sizeof(dp_listener) == 8);
static_assert(alignof(dp_listener) == 8);
inline constexpr uint32_t max_neigh_entries = 65536;   // dp_listener::neigh_idx

inline constexpr uint8_t listener_flag_live = 0x01;   // dp_listener6: a free slot has flags 0

inline constexpr uint8_t session_mode_forward = 0;    // speaker packets fanned out unchanged
inline constexpr uint8_t session_mode_mix = 1;        // speakers go to the mixer; its output is fanned out

// Listeners per chunk: 4 KiB, one small page. A join or a leave copies
// the chunk it writes (its slots in use), once per publish; the control
// core's copies go through the cache the fan-out core shares, so they are
// kept small (docs/performance.md, fourteenth round). The fan-out loop
// pays one chunk pointer load per 512 replicas, and its hardware stream
// stops at every 4 KiB page whatever the chunk size.
inline constexpr uint32_t listener_chunk_size = 512;

struct dp_listener_chunk {
    dp_listener l[listener_chunk_size];
};
static_assert(sizeof(dp_listener_chunk) == 4096);

// One IPv6 listener: 32 bytes (two per cache line; 1 M IPv6 listeners take
// 32 MB). The address is the only field that grew; the UDP checksum delta
// (the pseudo header's destination words and the port, folded) is all the
// per-listener arithmetic a replica needs: IPv6 has no header checksum, and
// the UDP checksum is mandatory (RFC 8200 8.1), so it is always written.
// IPv6 listeners live in lists of their own (dp_shard_lists::v6 in
// dp_session::shards), so the IPv4 loop and its 8-byte records are
// untouched.
struct alignas(32) dp_listener6 {
    uint8_t ip[16];        // destination address, network order
    uint16_t port_be;      // destination UDP port, network order
    uint8_t flags;         // listener_flag_*
    uint8_t pad0_;
    uint32_t neigh_idx;    // next hop (itself or the router) in the neighbour table
    uint16_t udp_sum;      // folded sum of the eight address words + port (pseudo header delta)
    uint8_t pad_[6];
};
static_assert(sizeof(dp_listener6) == 32);
static_assert(alignof(dp_listener6) == 32);

// Whether a slot holds a listener (the fan-out's test, either family).
inline bool is_live(const dp_listener& r) noexcept { return r.port_be != 0; }
inline bool is_live(const dp_listener6& r) noexcept { return (r.flags & listener_flag_live) != 0; }

// Chunks of the same 4 KiB as IPv4's: a join copies as many bytes.
inline constexpr uint32_t listener6_chunk_size = 128;

struct dp_listener6_chunk {
    dp_listener6 l[listener6_chunk_size];
};
static_assert(sizeof(dp_listener6_chunk) == 4096);

// The listeners of one (session, fan-out shard, tier). Slots are stable: a
// leave clears a slot's flags and a later join of the same tier reuses it, so a
// fan-out in progress that resumes at slot N never skips or repeats a listener
// that stayed. Tiers live in separate lists and are served in order, so when
// time runs out the lowest tier misses the packet.
struct dp_listener_list {
    uint32_t nb_slots;                 // slots in use (live or free) across the chunks
    uint32_t nb_live;                  // live listeners
    uint32_t nb_chunks;
    uint32_t pad_;
    dp_listener_chunk* chunks[];       // nb_chunks pointers (flexible array)
};

// A list of at most listener_inline_max slots (either family: one chunk)
// is published with its records right after its header, at
// listener_inline_offset, and chunks[0] points there: a copy made at
// publish time (the control plane's chunks stay the copy-on-write master).
// The fan-out reads it as any list, but the header's line already holds
// its first records and the rest follow it, so a small session's packet
// waits for one cache miss (the header, prefetched by the ingress) where
// it waited for two in a row (the header, then the chunk it names). Most
// sessions of a real relay are small (docs/performance.md, ninth round).
inline constexpr uint32_t listener_inline_max = 128;
inline constexpr size_t listener_inline_offset = 32;
static_assert(sizeof(dp_listener_list) + sizeof(void*) <= listener_inline_offset &&
              listener_inline_offset % alignof(dp_listener6) == 0 && listener_inline_offset % alignof(dp_listener) == 0);
static_assert(listener_inline_max <= listener6_chunk_size && listener_inline_max <= listener_chunk_size);

struct dp_dedup;   // below
// The IPv6 listeners of one (session, fan-out shard, tier): same rules.
struct dp_listener6_list {
    uint32_t nb_slots;
    uint32_t nb_live;
    uint32_t nb_chunks;
    uint32_t pad_;
    dp_listener6_chunk* chunks[];
};

struct dp_srtp_egress;

// One fan-out shard's lists of a session, by tier; nullptr = no listeners
// there. Within a tier the IPv4 list is served first, then the IPv6 one;
// tiers stay in order across both families. Both families on one line:
// every packet of the session reads all eight pointers (the fan-out's
// start, fanout_prefetch_lists). As two arrays [shard][tier] side by side
// they were two or three lines more per packet, at offsets 56 and 1 080
// (docs/performance.md, fifteenth round).
struct alignas(64) dp_shard_lists {
    const dp_listener_list* v4[max_tiers];
    const dp_listener6_list* v6[max_tiers];
};
static_assert(sizeof(dp_shard_lists) == 64);

struct dp_session {
    uint32_t id;
    uint32_t index;                    // position in dp_snapshot::sessions
    uint16_t udp_port_be;              // relay's source port towards listeners (= speaker ingress port)
    uint8_t mode;                      // session_mode_*
    uint8_t record;                    // 1: speaker packets (forward) or the mix go to the recorder
    uint32_t nb_listeners;
    uint64_t generation;               // changes when the session is recreated
    // SRTP (docs/srtp.md). srtp_egress: every packet to the listeners is
    // protected once with srtp_tx's active key; with srtp_tx nullptr (no
    // key yet) nothing is sent (egress/srtp_no_key). srtp_ingress: every
    // speaker's packets must authenticate (dp_flow::srtp_in says the same
    // per flow; the session's flag is for the API's view).
    const srtp::keyset* srtp_tx;
    uint8_t srtp_ingress;
    uint8_t srtp_egress;
    uint8_t pad_[6];
    // The session's first-copy table when trunk flows feed it (dp_flow::dedup);
    // nullptr otherwise. Mutable (atomics): the session's lifetime, not a version's.
    dp_dedup* dedup;
    // The session's fleet trunk listeners (docs/fleet.md "Trunk
    // authentication"), served from a twin of the session: a dp_session of
    // their own (index | trunk_twin_bit, the same generation, id and port;
    // forward, not recorded, its own lists), so that their copy of a packet
    // can differ from the listeners' (protected once more, with the trunk
    // key, when srtp_egress is set on the twin: srtp_tx is then the trunk
    // key, nullptr = none yet: egress/trunk_no_key). The fan-out serves the
    // twin's jobs as any session's (session_at). nullptr: no trunk listener.
    // In the first line with the fields above: every speaker packet reads
    // it, and at the end (past 2 KiB of list pointers) it was a cache miss
    // of its own per packet in a relay of thousands of sessions
    // (docs/performance.md, eighth round).
    const dp_session* trunk;
    // The listener lists of each fan-out shard, by tier, one cache line a
    // shard (dp_shard_lists): a speaker packet reads its session's first
    // line and one more.
    dp_shard_lists shards[max_fanout_shards];
    // The session's egress index high-water marks, one per SSRC it protects
    // (dp_srtp_egress); nullptr when srtp_egress is off. Mutable (atomics):
    // the session's lifetime, not a version's. At the end: only protected
    // sessions read it.
    dp_srtp_egress* srtp_streams;
};

// What ingress reads of every packet's session is in its first cache line
// (flow_stage prefetches that one and the shard's list pointers).
static_assert(offsetof(dp_session, trunk) + sizeof(dp_session::trunk) <= 64 && offsetof(dp_session, shards) == 64);

// A twin's index (dp_session::trunk): its session's with the top bit set,
// so a job or a message tagged with it resolves to the twin (session_at).
inline constexpr uint32_t trunk_twin_bit = 1u << 31;

// Encrypt once, never twice (docs/srtp.md "Egress index"): for each SSRC a
// session protects towards its listeners, the next egress index it may use
// (index + 1 of the last one protected; 0 = none yet). Every packet claims
// its index here with one compare-and-swap that only moves up, so no
// (session key, SSRC, index) is protected twice within the session's life,
// whichever RX lcores, speaker entries (an RSS move, a speaker removed and
// added again, two flows with one SSRC) or the mixer protect for that SSRC:
// the per-entry state (srtp::tx_stream) only proposes an index. The speaker
// packet's own sequence number is rewritten to the claimed index, so the
// listeners see one continuous stream across a speaker's restart. One slot
// per cache line (the lcores of two speakers never share one); slots are
// taken by SSRC with a CAS on `tag` and never given back while the session
// lives. Allocated zeroed by the control plane with the session's egress,
// freed after the grace period of the session's end (like dp_dedup).
//
// Across restarts (docs/srtp.md "Egress reservations"): on a relay with a
// journal, an index may be used only once the journal holds a reservation
// above it (`limit`, raised by the control plane after its record is
// synced; 0 = nothing reserved yet), so a restart resumes every SSRC above
// whatever the last run could have used. A packet at or above the limit is
// not sent (egress/srtp_unreserved); the first one of a slot leaves its
// proposal in `want`, so the control plane knows where to reserve from.
// Without a journal the limit is srtp_egress_unlimited from the start.
inline constexpr uint32_t srtp_egress_slots = 16;
inline constexpr uint64_t srtp_egress_unlimited = ~uint64_t{0};
struct alignas(64) dp_srtp_egress_slot {
    std::atomic<uint64_t> tag;         // 1 << 32 | SSRC (network order); 0 = free
    std::atomic<uint64_t> next;        // next egress index this SSRC may use (48 bits)
    // Indices below it are reserved (journaled); the control plane writes it.
    // A table constructed (tests, benches) has none to wait for; the control
    // plane's zeroed one is set by whether the relay journals.
    std::atomic<uint64_t> limit{srtp_egress_unlimited};
    std::atomic<uint64_t> want;        // a refused proposal + 1 while nothing was claimed; data plane writes
    uint64_t pad_[4];
};
static_assert(sizeof(dp_srtp_egress_slot) == 64);
struct dp_srtp_egress {
    dp_srtp_egress_slot slot[srtp_egress_slots];
};

// Speaker flow table: (source ip, source port, destination port) -> session.
// Open addressing, power-of-two size, at most half full, built whole by the
// control plane (speakers are few; listeners are many).
struct dp_flow {
    uint64_t key;                      // flow_key(); 0 = empty slot
    uint32_t session_index;
    uint32_t ssrc_be;                  // expected SSRC when has_ssrc
    uint32_t speaker_index;            // stable slot in dp_shared::policers
    uint32_t rate_pps;                 // policer: packets per second
    uint32_t rate_bytes;               // policer: UDP payload bytes per second
    uint8_t has_ssrc;
    uint8_t srtp_in;                   // 1: packets must authenticate with dp_snapshot::speaker_keys[speaker_index]
    uint8_t dedup;                     // 1: a trunk flow from an origin: first copy wins (dp_session::dedup)
    // 1: its packets use the SRTP line of their policer entry (srtp_in, or
    // a session or trunk twin that protects its egress): a prefetch hint
    // for flow_stage only, so a stale one costs a miss, never a verdict.
    uint8_t srtp_line;
};
static_assert(sizeof(dp_flow) == 32);

// ST 2022-7 style origin protection (docs/fleet.md): an edge receives a
// session from two (or more) origins over trunk flows, each a flow of its
// own (own policer, own RTP stream state, maybe on another RX queue). The
// copies of one packet share an (SSRC, sequence number); the first to pass
// every per-flow check is forwarded, a later one is dropped
// (drop/ingress/trunk_duplicate). One table per session, shared by all its
// trunk flows whichever RX lcore receives them: slot (seq ^ ssrc) % window
// holds the tag (SSRC, 1, seq) of the last packet that claimed it, and a
// claim is one atomic exchange (dataplane/dedup.h), so two lcores racing
// with the two copies of a packet agree on exactly one first. A slot is
// overwritten `dedup_window` packets later: a copy that arrives later than
// that (5.1 s of 20 ms frames) counts as new. Written by RX lcores only
// (atomics); the control plane allocates it zeroed with the session's first
// trunk flow and frees it after the grace period of the session's end.
inline constexpr uint32_t dedup_window = 256;
struct alignas(64) dp_dedup {
    std::atomic<uint64_t> slot[dedup_window];
};
static_assert(sizeof(dp_dedup) == dedup_window * 8);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
// IPv6 speaker flows: (source address, source port, destination port) ->
// the same per-flow fields as dp_flow (`f`, whose key is 1 for a used slot).
// The whole key is compared: a hash collision never lets a stranger in.
struct dp_flow6 {
    uint8_t src[16];                   // source address, network order
    uint16_t src_port_be;
    uint16_t dst_port_be;
    uint32_t pad_;
    dp_flow f;                         // f.key: 0 = empty slot, 1 = used
};
static_assert(sizeof(dp_flow6) == 56);

// Where one speaker's RTP stream stands, as one RX queue has seen it: what
// dataplane/rtp_track.h needs to tell the speaker's next packet from a
// guessed one (docs/security.md, "Spoofed speakers"). Plain data, zeroed by
// the control plane with the rest of the entry.
struct dp_rtp_track {
    uint64_t last_tsc;                 // arrival of the packet that set max_seq; 0 = no stream yet
    uint64_t seen;                     // bit i: sequence number max_seq - i was accepted
    uint64_t prev_tsc;                 // the newest packet before it (second timestamp reference)
    uint64_t cand_tsc;                 // candidate new stream: arrival of its newest packet
    uint32_t max_ts;                   // RTP timestamp of max_seq (host order)
    uint32_t prev_ts;
    uint32_t ssrc_be;                  // the stream's SSRC
    uint32_t cand_ts;
    uint32_t cand_ssrc_be;
    uint16_t max_seq;                  // newest sequence number accepted (host order)
    uint16_t cand_seq;
    uint16_t cand_count;               // consecutive packets of the candidate; 0 = none
    uint16_t pad16_;
    uint32_t pad32_;
};
static_assert(sizeof(dp_rtp_track) == 64);

// Token bucket of one speaker as one RX queue sees it: entry
// [rx_queue * nb_policers + speaker_index] of dp_shared::policers
// (policer_of()). RX lcore q polls queue q of every port and is the only one
// that writes queue q's entries, so each entry has exactly one writer and
// needs neither a lock nor an atomic; queue-major order keeps two lcores off
// each other's cache lines. RSS keeps a flow on one queue; if a RETA change
// moves it, the flow meets its entry for the new queue (a fresh bucket) and
// the old entry goes idle. The control plane resets a slot's entries only
// after a grace period in which no snapshot named the slot
// (relay_state::speaker_add).
// The speaker's RTP stream state lives in the same entry: same single writer,
// and it is checked right before the bucket is charged.
// The SRTP state of the speaker's stream lives here too (same writer): the
// ingress replay window and ROC (srtp_rx) and, for a session that protects
// towards listeners, the offset from the speaker's index to the egress
// index (srtp_tx: a proposal only; the session's dp_srtp_egress decides).
// A speaker's flow that RSS moves to another queue meets fresh SRTP state
// there: its ingress ROC restarts at 0 (wrong only after 65 536 packets,
// ~22 min at 50 packets/s; docs/srtp.md "How it runs"); its egress
// continues above the session's high-water mark for the SSRC.
//
// The speaker's counters live there too (the same writer, the same cache
// lines the policer already touches): read by the control plane with
// relaxed loads (speaker_counts_of), zeroed with the entry when the slot
// goes to a new speaker, so they count one speaker from its start.
struct dp_speaker_counts {
    uint64_t packets;                  // RTP packets accepted (rtp_in)
    uint64_t bytes;                    // their RTP bytes (header .. padding)
    uint64_t policed;                  // dropped by the token bucket
    uint64_t auth_drops;               // from its address but not its stream: SSRC, RTP plausibility
};

// The entry's layout: what every packet of a plain session touches (the
// stream, the bucket, the counts: 120 bytes) on two whole cache lines, the
// SRTP state on a third that only a protected session's packets load. At 168 bytes,
// not line-aligned, the entry took three or four lines per packet, each a
// miss when thousands of speakers talk (docs/performance.md, fifteenth
// round).
struct alignas(64) dp_policer {
    dp_rtp_track rtp;                  // line 0
    uint64_t last_tsc;                 // line 1. 0 = fresh: the bucket fills on first use
    uint64_t pkt_tokens;               // scaled by policer_scale
    uint64_t byte_tokens;              // scaled by policer_scale
    dp_speaker_counts counts;
    alignas(64) srtp::stream srtp_rx;  // line 2
    srtp::tx_stream srtp_tx;
};
static_assert(sizeof(dp_policer) == 192 && offsetof(dp_policer, last_tsc) == 64 &&
              offsetof(dp_policer, counts) + sizeof(dp_speaker_counts) <= 128 && offsetof(dp_policer, srtp_rx) == 128);
inline constexpr uint64_t policer_scale = 1024;
inline constexpr uint64_t policer_burst_ms = 1000;  // bucket depth: a second of stream at the policer rate

constexpr uint64_t flow_key(uint32_t src_ip_be, uint16_t src_port_be, uint16_t dst_port_be) noexcept {
    // Never 0 for a valid flow: the parser refuses source 0.0.0.0.
    return (uint64_t{src_ip_be} << 32) | (uint64_t{src_port_be} << 16) | dst_port_be;
}

constexpr uint32_t flow_hash(uint64_t key) noexcept {
    key ^= key >> 29;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 32;
    return static_cast<uint32_t>(key);
}

// Neighbour IP -> neighbour index, for learning MACs from ARP. Same scheme.
struct dp_neigh_key {
    uint32_t ip_be;                    // 0 = empty
    uint32_t neigh_idx;
};

// IPv6 neighbour address -> neighbour index, for learning MACs from
// neighbour advertisements (neigh.cc). Same scheme; used = 0 is empty.
struct dp_neigh6_key {
    uint8_t ip[16];                    // wire order
    uint32_t neigh_idx;
    uint32_t used;
};
static_assert(sizeof(dp_neigh6_key) == 24);

inline uint32_t neigh6_hash(const uint8_t* ip) noexcept {
    uint64_t h, l;
    __builtin_memcpy(&h, ip, 8);
    __builtin_memcpy(&l, ip + 8, 8);
    return flow_hash(h ^ (l * 0x9e3779b97f4a7c15ULL));
}

struct dp_snapshot {
    uint64_t version;
    uint32_t nb_sessions;
    uint32_t flow_mask;                // flows has flow_mask + 1 slots
    uint32_t neigh_key_mask;           // neigh_keys has neigh_key_mask + 1 slots
    uint32_t nb_fanout_shards;
    const dp_flow* flows;
    const dp_neigh_key* neigh_keys;    // every neighbour in the table (replies are matched here)
    dp_session* const* sessions;       // nb_sessions pointers
    // Neighbours some listener uses now: the ARP owner keeps these resolved
    // and fresh, and asks for nothing else (a next hop no listener uses any
    // more is not probed). `neigh_fresh`: allocated since the previous
    // version, probed first so a join is heard within milliseconds.
    const uint32_t* neigh_active;
    const uint32_t* neigh_fresh;
    uint32_t nb_neigh_active;
    uint32_t nb_neigh_fresh;
    // Speakers' SRTP keys by speaker slot (dp_flow::speaker_index);
    // nb_speaker_keys entries, nullptr = no key (a flow that needs one
    // drops its packets as ingress/srtp_no_key).
    const srtp::keyset* const* speaker_keys;
    uint32_t nb_speaker_keys;
    // IPv6 next hops in the table (issue 15): NAs are matched here.
    // nullptr when there are none.
    const dp_neigh6_key* neigh6_keys;
    uint32_t neigh6_key_mask;
    // IPv6 speaker flows (find_flow6): flow6_mask + 1 slots, at most half
    // full; nullptr when no speaker is on IPv6.
    uint32_t flow6_mask;
    const dp_flow6* flows6;
};

// The session (or trunk twin, trunk_twin_bit) at `index` in snapshot `s`;
// nullptr when there is none. Callers compare the generation.
inline const dp_session* session_at(const dp_snapshot& s, uint32_t index) noexcept {
    const uint32_t i = index & ~trunk_twin_bit;
    if (i >= s.nb_sessions) return nullptr;
    const dp_session* sess = s.sessions[i];
    return (index & trunk_twin_bit) != 0 ? sess->trunk : sess;
}

// The flow of `key` from its first slot (flow_hash(key) & s.flow_mask),
// for a caller that prefetched that slot.
inline const dp_flow* find_flow_at(const dp_snapshot& s, uint64_t key, uint32_t i) noexcept {
    for (;;) {
        const dp_flow& f = s.flows[i];
        if (f.key == key) return &f;
        if (f.key == 0) return nullptr;
        i = (i + 1) & s.flow_mask;
    }
}

inline const dp_flow* find_flow(const dp_snapshot& s, uint64_t key) noexcept {
    return find_flow_at(s, key, flow_hash(key) & s.flow_mask);
}

inline uint32_t flow6_hash(const uint8_t* src, uint16_t src_port_be, uint16_t dst_port_be) noexcept {
    uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + 8, 8);
    return flow_hash(a ^ flow_hash(b ^ (uint64_t{src_port_be} << 16 | dst_port_be)) ^ (b << 7));
}

inline bool flow6_match(const dp_flow6& f, const uint8_t* src, uint16_t src_port_be, uint16_t dst_port_be) noexcept {
    return f.src_port_be == src_port_be && f.dst_port_be == dst_port_be && std::memcmp(f.src, src, 16) == 0;
}

// nullptr when s has no IPv6 flows or none matches the whole key.
inline const dp_flow* find_flow6(const dp_snapshot& s, const uint8_t* src, uint16_t src_port_be,
                                 uint16_t dst_port_be) noexcept {
    if (s.flows6 == nullptr) return nullptr;
    uint32_t i = flow6_hash(src, src_port_be, dst_port_be) & s.flow6_mask;
    for (;;) {
        const dp_flow6& f = s.flows6[i];
        if (f.f.key == 0) return nullptr;
        if (flow6_match(f, src, src_port_be, dst_port_be)) return &f.f;
        i = (i + 1) & s.flow6_mask;
    }
}

inline int64_t find_neigh(const dp_snapshot& s, uint32_t ip_be) noexcept {
    uint32_t i = flow_hash(ip_be) & s.neigh_key_mask;
    for (;;) {
        const dp_neigh_key& k = s.neigh_keys[i];
        if (k.ip_be == ip_be) return k.neigh_idx;
        if (k.ip_be == 0) return -1;
        i = (i + 1) & s.neigh_key_mask;
    }
}

inline int64_t find_neigh6(const dp_snapshot& s, const uint8_t* ip) noexcept {
    if (s.neigh6_keys == nullptr) return -1;
    uint32_t i = neigh6_hash(ip) & s.neigh6_key_mask;
    for (;;) {
        const dp_neigh6_key& k = s.neigh6_keys[i];
        if (k.used == 0) return -1;
        if (__builtin_memcmp(k.ip, ip, 16) == 0) return k.neigh_idx;
        i = (i + 1) & s.neigh6_key_mask;
    }
}

// Neighbour table. Who writes what (docs/architecture.md, "Shared writes"):
// The table is family-aware (issue 15): an entry with neigh_ipv6 in flags
// is an IPv6 next hop at ip6 (ip_be 0), resolved by neighbour solicitation
// instead of ARP, by the same state machine (neigh_fsm.h).
//  - ip_be, ip6, port_id, flags: the control plane, only while the entry is in no
//    published snapshot (allocated from the free list after the grace period
//    of its release); immutable while any snapshot references it.
//  - mac_word: the MAC in use, read by every fan-out lcore. Written by the
//    control plane before publication (0, or a pinned MAC for a static
//    neighbour) and afterwards only by the ARP-owner lcore.
//  - everything else: the ARP-owner lcore only. ARP replies that another RX
//    lcore receives are handed to it over dp_shared::arp_ring.
// The control plane reads mac_word (atomically) to know when a join's next
// hop is resolved. One cache line per entry.
struct alignas(64) dp_neigh {
    std::atomic<uint64_t> mac_word;    // bit 63 valid, bits 0..47 MAC (wire order in memory bytes 0..5)
    uint32_t ip_be;                    // next-hop address (0 = unused entry)
    uint16_t port_id;                  // egress port (index)
    uint16_t flags;                    // neigh_static: pinned MAC, never asked for, never learnt
    // ARP owner's state machine (neigh.cc)
    uint64_t cand_word;                // a different MAC offered by a reply, held until a fresh probe confirms it
    uint64_t probe_tsc;                // last request sent (0 = never)
    uint64_t confirmed_tsc;            // last reply that confirmed mac_word
    uint8_t outstanding;               // a request is out and its reply window open
    uint8_t saw_current;               // in this window: a reply with mac_word's MAC
    uint8_t saw_cand;                  // in this window: a reply with cand_word's MAC
    uint8_t confirming;                // this window's request was sent to confirm cand_word
    uint8_t unanswered;                // probes in a row without a reply
    uint8_t resolved_now;              // this window's first reply resolved the entry
    uint8_t conflict;                  // this window brought two MACs for an unresolved entry
    uint8_t ip6[16];                   // IPv6 next-hop address (wire order) when flags has neigh_ipv6
};
static_assert(sizeof(dp_neigh) == 64);

inline constexpr uint64_t neigh_valid = uint64_t{1} << 63;
inline constexpr uint16_t neigh_static = 0x8000;
inline constexpr uint16_t neigh_ipv6 = 0x4000;   // an IPv6 next hop (ip6), resolved by NS/NA

}  // namespace stentor::dp
