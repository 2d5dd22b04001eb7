// The runtime state every lcore, service thread and the control plane share,
// and the speaker-packet message that travels between them. Owned by the
// control plane (relay.cc), which outlives the workers and the services.
#pragma once

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "stentor/dp_counters.h"
#include "stentor/dp_port.h"
#include "stentor/dp_snapshot.h"
#include "stentor/join_token.h"

namespace stentor::dp {

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
    uint32_t nb_rx_queues = 1;                    // RX lcores, one RX queue index each
    // Speaker-packet messages (see below) for the services: forwarded
    // sessions with recording on go to record_ring, mix sessions to
    // mixer_ring. nullptr = no consumer: such packets are not queued.
    rte_ring* record_ring = nullptr;
    rte_ring* mixer_ring = nullptr;
    // ARP replies received by an RX lcore that is not the ARP owner, handed
    // to the owner (multi-producer, single consumer): neighbour state has
    // one writer.
    rte_ring* arp_ring = nullptr;
    // Listener joins (dp_join.h, docs/join.md). join_ring == nullptr: joins
    // are off ([join] has no keys) and STUN is dropped as join/off.
    // join_ring: verified requests, RX lcores -> the join desk (MP/SC);
    // join_reply_ring: responses, the desk -> the ARP owner, which sends them.
    rte_ring* join_ring = nullptr;
    rte_ring* join_reply_ring = nullptr;
    // Token keys by key id (nullptr: not held). Set before the workers start
    // and immutable while they run.
    const join::token_key* const* join_keys = nullptr;
    uint32_t join_verify_per_s = 0;               // MAC verifications per second, per RX lcore
    std::atomic<uint32_t> unix_now{0};            // wall clock (s) for token expiry, set by the control plane
    rte_ring* shard_rings[max_fanout_shards]{};   // in_ring of each fan-out shard (multi-producer)
    uint32_t nb_shards = 0;
    std::atomic<bool> stop{false};
};

// The entry of speaker slot `slot` that the RX lcore of queue `rx_queue` owns.
inline dp_policer& policer_of(dp_shared& sh, uint32_t rx_queue, uint32_t slot) noexcept {
    return sh.policers[size_t{rx_queue} * sh.nb_policers + slot];
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
    const uint32_t i = message_session(m);
    if (i >= s.nb_sessions) return nullptr;
    const dp_session* sess = s.sessions[i];
    if (sess->generation == 0 || static_cast<uint32_t>(sess->generation) != message_generation(m)) return nullptr;
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
