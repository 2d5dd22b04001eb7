// The per-lcore loop: ingress (RX, validate, flow lookup, ARP/ICMP) and
// fan-out (replicate each speaker packet to the listeners of this lcore's
// shard). An lcore may do both (run to completion) or one of them; speaker
// packets reach other fan-out lcores over SPSC rings (mbuf refcount).
#pragma once

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "parse.h"
#include "stentor/dp_counters.h"
#include "stentor/dp_snapshot.h"

namespace stentor::dp {

inline constexpr unsigned max_burst = 64;
inline constexpr unsigned max_jobs = 64;          // packets in flight per fan-out lcore

// What every lcore shares; owned by the control plane, outlives the workers.
struct dp_shared {
    std::atomic<const dp_snapshot*> snapshot{nullptr};
    rte_rcu_qsbr* rcu = nullptr;
    dp_neigh* neigh = nullptr;                    // neighbour table
    uint32_t nb_neigh = 0;
    uint16_t nb_ports = 0;
    port_identity ports[max_ports]{};             // by port index (profile order)
    uint16_t ethdev[max_ports]{};                 // port index -> ethdev port_id
    dp_policer* policers = nullptr;               // limits.max_speakers entries
    uint32_t nb_policers = 0;
    // Speaker-packet messages (see below) for the service side: forwarded
    // sessions with recording on go to record_ring, mix sessions to
    // mixer_ring. nullptr = no consumer: such packets are not queued.
    rte_ring* record_ring = nullptr;
    rte_ring* mixer_ring = nullptr;
    rte_ring* shard_rings[max_fanout_shards]{};   // in_ring of each fan-out shard (multi-producer)
    uint32_t nb_shards = 0;
    std::atomic<bool> stop{false};
};

// A speaker-packet message is an mbuf whose data is exactly one RTP packet
// (header .. padding) and whose hash.usr is the session index. RX lcores turn
// accepted packets into messages; the mixer emits them; fan-out lcores and
// the recorder consume them. One mbuf may be shared (refcount) by several
// consumers, which only read it.
inline void set_message_session(rte_mbuf* m, uint32_t session_index) noexcept { m->hash.usr = session_index; }
inline uint32_t message_session(const rte_mbuf* m) noexcept { return m->hash.usr; }

// Hand a message to every fan-out shard that has listeners for the session
// (and, when record is set and a recorder is running, to the recorder).
// Consumes the caller's reference. Returns false if some ring was full.
// `skip_shard` (or -1) is a shard the caller already served directly.
bool publish_message(dp_shared& sh, const dp_snapshot& s, rte_mbuf* m, bool to_recorder,
                     lcore_counters* c, int skip_shard = -1) noexcept;

struct worker_config {
    unsigned lcore_id = 0;
    unsigned thread_id = 0;                       // RCU thread id and counters index
    bool do_rx = false;
    bool do_fanout = false;
    bool arp_owner = false;                       // sends ARP requests for wanted neighbours
    uint16_t rx_queue = 0;                        // polled on every port when do_rx
    uint16_t tx_queue = 0;                        // this lcore's TX queue on every port
    int fanout_shard = -1;                        // listener shard served when do_fanout
    unsigned burst = 32;
    uint64_t deadline_cycles = 0;                 // frame deadline in TSC cycles
    uint64_t drain_cycles = 0;                    // TX buffers flushed at least this often
    uint32_t replica_budget = 0;                  // test knob: max replicas per packet (0 = none)
    uint32_t slice = 1024;                        // replicas per job before rotating (~18 us at 57 Mpps)
    rte_mempool* pool = nullptr;
    rte_ring* in_ring = nullptr;                  // speaker-packet messages for this fan-out lcore
    lcore_counters* counters = nullptr;
    dp_shared* shared = nullptr;
};

// Entry point for rte_eal_remote_launch; arg is a worker_config*.
int worker_main(void* arg);

// One iteration of the loop; exposed so tests can drive a worker
// deterministically on the calling thread. Returns the work done.
struct worker;
worker* worker_create(const worker_config& cfg);
void worker_destroy(worker* w);
unsigned worker_poll(worker* w) noexcept;
void worker_flush(worker* w) noexcept;            // drain TX buffers now
unsigned worker_jobs_pending(const worker* w) noexcept;

}  // namespace stentor::dp
