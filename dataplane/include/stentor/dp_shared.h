// The runtime state every lcore, service thread and the control plane share,
// and the speaker-packet message that travels between them. Owned by the
// control plane (relay.cc), which outlives the workers and the services.
#pragma once

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "stentor/dp_capture.h"
#include "stentor/dp_counters.h"
#include "stentor/dp_port.h"
#include "stentor/dp_snapshot.h"
#include "stentor/join_token.h"

namespace stentor::dp {

// What the speakers of one session sent, as one RX queue saw it: entry
// [rx_queue * nb_session_counts + session index] of dp_shared::session_counts.
// One writer (RX lcore q, like dp_policer). A session slot is reused by a
// later session; the entry carries the generation of the session it counts,
// and the writer starts it afresh when it meets another generation, so no
// one has to reset it (and a reader takes only entries of the generation it
// asks for: session_counts_of). Kept per session, not derived from its
// speakers' entries, so a session's counts never go back when a speaker
// leaves (Prometheus counters must be monotonic).
struct alignas(cache_line) dp_session_counts {
    uint64_t generation;               // the session's; 0 = never used
    dp_speaker_counts c;
};
static_assert(sizeof(dp_session_counts) == cache_line);
inline constexpr unsigned max_join_lcores = 16;

// Hand-offs to dp_shared::arp_ring (neigh.cc, docs/security.md "ARP"): an
// RX lcore other than the ARP owner hands over at most arp_handoff_burst
// replies (ARP replies and NAs about non-pinned next hops of ours) at once,
// refilled at arp_handoff_rate per second: the owner's request budget
// (neigh_fsm.h arp_request_rate, arp_request_burst), so no lcore ever has
// more genuine replies to hand over than that. The excess is dropped there
// (drop/ingress/arp_handoff_rate). The ring holds every other RX lcore's
// whole burst and a burst to spare, so a flood on any number of queues
// cannot fill it while the owner polls it.
inline constexpr unsigned arp_handoff_burst = 256;
inline constexpr unsigned arp_handoff_rate = 2560;
constexpr unsigned arp_ring_size(unsigned nb_rx_lcores) noexcept {
    const unsigned want = (nb_rx_lcores > 1 ? nb_rx_lcores : 1) * arp_handoff_burst;
    unsigned size = 1;
    while (size < want) size <<= 1;
    return size;   // usable: size - 1 >= (nb_rx_lcores - 1) * burst + burst - 1
}
static_assert(arp_ring_size(1) == 256 && arp_ring_size(2) == 512 && arp_ring_size(3) == 1024);

// The join token keys the data plane verifies with (docs/join.md "Keys and
// rotation"): by key id, nullptr where no key is held. Immutable once
// published (dp_shared::join_keys).
struct dp_join_keys {
    const join::token_key* by_id[256];
};

struct dp_shared {
    std::atomic<const dp_snapshot*> snapshot{nullptr};
    rte_rcu_qsbr* rcu = nullptr;
    dp_neigh* neigh = nullptr;                    // neighbour table
    uint32_t nb_neigh = 0;
    uint16_t nb_ports = 0;
    port_identity ports[max_ports]{};             // by port index (profile order)
    uint16_t ethdev[max_ports]{};                 // port index -> ethdev port_id
    uint8_t egress_tos[max_ports]{};              // IPv4 TOS byte of replicas: port.dscp << 2 (ECN 0); IPv6 traffic class alike
    dp_policer* policers = nullptr;               // nb_rx_queues * nb_policers entries (see dp_policer)
    uint32_t nb_policers = 0;                     // speaker slots: limits.max_speakers
    // Per (RX queue, session index) counters of the session's speakers
    // (dp_session_counts): nb_rx_queues * nb_session_counts entries,
    // queue-major. nullptr: not kept (tests that build their own dp_shared).
    dp_session_counts* session_counts = nullptr;
    uint32_t nb_session_counts = 0;               // session slots: limits.max_sessions
    uint32_t nb_rx_queues = 1;                    // RX lcores, one RX queue index each
    // Speaker-packet messages (see below) for the services: forwarded
    // sessions with recording on go to record_ring, mix sessions to
    // mixer_ring. nullptr = no consumer: such packets are not queued.
    rte_ring* record_ring = nullptr;
    rte_ring* mixer_ring = nullptr;
    // ARP replies received by an RX lcore that is not the ARP owner, handed
    // to the owner (multi-producer, single consumer): neighbour state has
    // one writer. Sized by arp_ring_size() below.
    rte_ring* arp_ring = nullptr;
    // Listener joins (dp_join.h, docs/join.md). join_ring == nullptr: joins
    // are off ([join] has no keys) and STUN is dropped as join/off.
    // join_ring: verified requests, RX lcores -> the join desk (MP/SC);
    // join_reply_ring: responses, the desk -> the ARP owner, which sends them.
    rte_ring* join_ring = nullptr;
    rte_ring* join_reply_ring = nullptr;
    // Token keys by key id (join_keys == nullptr: joins are off). Replaced
    // as a whole when a SIGHUP changes join.keys, like a snapshot: the
    // control plane stores the new table, waits an RCU grace period, frees
    // the old one; an lcore loads it once per join_input or per verified
    // burst and never keeps it past its quiescent state.
    std::atomic<const dp_join_keys*> join_keys{nullptr};
    uint32_t join_verify_per_s = 0;               // MAC verifications per second, per RX lcore
    // Dedicated join lcores (dataplane.join_lcores; docs/join.md "Who checks
    // what"). nb_join_lcores == 0: each RX lcore verifies what it receives.
    // Otherwise an RX lcore runs only the cheap checks and its budget and
    // hands the request to join lcore hash(source) % nb_join_lcores over
    // join_handoff[i] (MP/SC); that lcore runs the MACs.
    rte_ring* join_handoff[max_join_lcores]{};
    uint32_t nb_join_lcores = 0;
    std::atomic<uint32_t> unix_now{0};            // wall clock (s) for token expiry, set by the control plane
    // Packet capture (dp_capture.h); nullptr: never (workers then test one
    // that is always off).
    dp_capture* capture = nullptr;
    rte_ring* shard_rings[max_fanout_shards]{};   // in_ring of each fan-out shard (multi-producer)
    uint32_t nb_shards = 0;
    std::atomic<bool> stop{false};
};

// The entry of speaker slot `slot` that the RX lcore of queue `rx_queue` owns.
inline dp_policer& policer_of(dp_shared& sh, uint32_t rx_queue, uint32_t slot) noexcept {
    return sh.policers[size_t{rx_queue} * sh.nb_policers + slot];
}

// Count on the session's entry of this RX queue (the RX lcore of the queue
// only). Starts the entry afresh for a new generation: the counts first,
// then the generation with release order, so a reader that sees the new
// generation sees zeroed counts (or later ones).
inline dp_speaker_counts* session_counts_for(dp_shared& sh, uint32_t rx_queue, uint32_t session_index,
                                             uint64_t generation) noexcept {
    if (sh.session_counts == nullptr || session_index >= sh.nb_session_counts) [[unlikely]]
        return nullptr;
    dp_session_counts& e = sh.session_counts[size_t{rx_queue} * sh.nb_session_counts + session_index];
    if (e.generation != generation) [[unlikely]] {
        e.c = dp_speaker_counts{};
        std::atomic_ref<uint64_t>(e.generation).store(generation, std::memory_order_release);
    }
    return &e.c;
}

// Relaxed reads of one speaker's counts (its policer entry), while the RX
// lcore may still write them.
inline dp_speaker_counts speaker_counts_of(const dp_policer& p) noexcept {
    return {detail::relaxed(p.counts.packets), detail::relaxed(p.counts.bytes), detail::relaxed(p.counts.policed),
            detail::relaxed(p.counts.auth_drops)};
}

inline dp_speaker_counts& operator+=(dp_speaker_counts& a, const dp_speaker_counts& b) noexcept {
    a.packets += b.packets;
    a.bytes += b.bytes;
    a.policed += b.policed;
    a.auth_drops += b.auth_drops;
    return a;
}

// What session `session_index` of generation `generation` counted, summed
// over the RX queues (control plane). An entry of another generation (an
// older session in the slot, or none yet) counts nothing; one whose writer
// started it afresh while it was read is read again.
inline dp_speaker_counts session_counts_of(const dp_shared& sh, uint32_t session_index, uint64_t generation) noexcept {
    dp_speaker_counts t{};
    if (sh.session_counts == nullptr || session_index >= sh.nb_session_counts) return t;
    for (uint32_t q = 0; q < sh.nb_rx_queues; ++q) {
        const dp_session_counts& e = sh.session_counts[size_t{q} * sh.nb_session_counts + session_index];
        auto& gen = const_cast<uint64_t&>(e.generation);
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (std::atomic_ref<uint64_t>(gen).load(std::memory_order_acquire) != generation) break;
            const dp_speaker_counts c{detail::relaxed(e.c.packets), detail::relaxed(e.c.bytes),
                                      detail::relaxed(e.c.policed), detail::relaxed(e.c.auth_drops)};
            std::atomic_thread_fence(std::memory_order_acquire);
            if (std::atomic_ref<uint64_t>(gen).load(std::memory_order_relaxed) == generation) {
                t += c;
                break;
            }
        }
    }
    return t;
}

// A speaker-packet message is an mbuf whose data is exactly one RTP packet
// (header .. padding), tagged with the session it belongs to: the session's
// index in the snapshot and the low 32 bits of its generation. RX lcores
// turn accepted packets into messages; the mixer emits them; fan-out lcores
// and the services consume them. One mbuf may be shared (refcount) by
// several consumers, which only read it.
//
// The generation is what keeps audio from crossing sessions: a session slot
// is reused as soon as its session ends, and a message may still sit in a
// ring when that happens. Every consumer resolves the tag with
// message_session_of() and drops (and counts) a message whose session is
// gone or was replaced. The tag lives in mbuf->hash (8 bytes, free once the
// RX path is done with RSS): fdir.lo = index, fdir.hi = generation.
inline void set_message_session(rte_mbuf* m, uint32_t session_index, uint64_t generation) noexcept {
    m->hash.fdir.lo = session_index;
    m->hash.fdir.hi = static_cast<uint32_t>(generation);
}
inline uint32_t message_session(const rte_mbuf* m) noexcept { return m->hash.fdir.lo; }
inline uint32_t message_generation(const rte_mbuf* m) noexcept { return m->hash.fdir.hi; }

// The session a message was accepted for, as the snapshot `s` has it now;
// nullptr when it ended or its slot now holds another session.
inline const dp_session* message_session_of(const dp_snapshot& s, const rte_mbuf* m) noexcept {
    const dp_session* sess = session_at(s, message_session(m));
    if (sess == nullptr || sess->generation == 0 || static_cast<uint32_t>(sess->generation) != message_generation(m)) return nullptr;
    return sess;
}

// Where a message may go. Each queue has its own full counter, so an
// operator (and the overload controller) can tell which consumer fell behind.
//
// Hand a message to every fan-out shard that has listeners for the session
// (and, when to_recorder is set and a recorder is running, to the recorder).
// Consumes the caller's reference. Returns false if some ring was full.
// `skip_shard` (or -1) is a shard the caller already served directly.
bool publish_message(dp_shared& sh, const dp_snapshot& s, rte_mbuf* m, bool to_recorder,
                     lcore_counters* c, int skip_shard = -1) noexcept;

// Hand a message to the recorder only (a session whose listeners get
// another mbuf: the SRTP ciphertext, dp_srtp.h). Consumes the caller's
// reference. Returns false if the ring was full (counted).
bool publish_record(dp_shared& sh, rte_mbuf* m, lcore_counters* c) noexcept;

// The mix's RTP SSRC: a fixed function of the session id (murmur3's 32-bit
// finaliser of id ^ 'STNR'), so listeners and recordings see the same SSRC
// for a session across relay restarts, and it never equals a small id.
constexpr uint32_t mix_ssrc(uint32_t session_id) noexcept {
    uint32_t h = session_id ^ 0x53544e52u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h == 0 ? 1 : h;
}

inline constexpr uint8_t mix_payload_type = 111;

}  // namespace stentor::dp
