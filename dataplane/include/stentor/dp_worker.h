// How the control plane starts the data plane: one worker per lcore, each
// configured here and launched with rte_eal_remote_launch(worker_main). The
// loop itself (ingress, fan-out, neighbours, TX) is private to dataplane/.
#pragma once

#include <cstdint>

#include <rte_mempool.h>
#include <rte_ring.h>

#include "stentor/dp_counters.h"
#include "stentor/dp_shared.h"

namespace stentor::dp {

inline constexpr unsigned max_burst = 64;
// Packets in flight per fan-out lcore. Under overload the long jobs (big
// sessions) pile up until their frame deadline abandons them, lowest tier
// first: at 10 000 long packets/s and a 20 ms deadline that is 200 jobs, so
// the jobs table must hold them or jobs_full would drop whole packets
// instead (every tier alike). 256 jobs: ~1.6 MB of templates per worker
// with four ports, of which only the jobs in flight are touched.
inline constexpr unsigned max_jobs = 256;
// Job slots only short jobs (one slice or less) may take: a small session's
// packet is not refused because big sessions' packets fill the table.
inline constexpr unsigned short_job_reserve = 16;
// Short jobs of at most this many replicas (one TX burst) go before the
// other short jobs (fanout.cc run_jobs).
inline constexpr unsigned tiny_job_slots = 32;
// Short jobs take a whole iteration's budget while the oldest of them has
// waited less than the frame deadline divided by this (2 ms at the default
// 20 ms); past it (more short work than the lcore can do), half while long
// jobs wait (fanout.cc run_jobs). Long enough that the backlog of a burst or
// of a stop of the core (a shared host's vCPU stops of up to ~3 ms) drains
// at full speed; short enough that under a lasting excess the long jobs get
// their half with 90 % of their deadline left. (200 us until the tenth
// round: every host stop longer than that halved the small sessions' speed
// while they caught up, and their p99 at 80 % load was 94-468 us instead of
// 51-59; docs/performance.md.)
inline constexpr unsigned short_wait_share = 10;
// ... or while this many long jobs wait: short jobs that keep up, but with
// so little left that the big sessions' packets pile up towards the job
// table's end (jobs_full: whole packets lost, every tier alike). Half the
// table: far above what a core that keeps up holds (a few), far below full.
inline constexpr unsigned long_backlog_jobs = max_jobs / 2;
// worker_config::spare_budget applies while the lcore had an idle poll in
// its last this many iterations (~1-2 ms of a busy core).
inline constexpr unsigned spare_polls = 256;
// A jump of the TSC longer than this between two looks during the fan-out
// (one every stop_check_replicas, ~1.5 us of work) is a stop of the core: the
// host took the vCPU away, or an SMI or interrupt ran. Whatever arrived
// meanwhile waits in the RX queue, so the iteration's fan-out ends at once
// and RX is polled instead of the iteration's budget being served first
// (worker_config::stop_cycles; docs/performance.md, eleventh round).
inline constexpr unsigned stop_check_us = 5;
// Replica slots between two looks at the TSC for a stop (stop_check_us):
// after the TX group that reaches them. A look (rdtsc) costs ~11 ns on
// this class of VM: after every group of 32 it was ~2.5 % of a saturated
// lcore (docs/performance.md, fourteenth round).
inline constexpr unsigned stop_check_replicas = 128;

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
    uint32_t arp_reachable_ms = 0;                // confirmed neighbours re-probed after this (0 = 30 s, neigh.h)
    uint32_t slice = 1024;                        // replicas per job before rotating (~18 us at 57 Mpps)
    // dataplane.idle = "adaptive": worker_main sleeps after idle_polls empty
    // polls in a row (loop.cc). rx_intr_ports: port indexes (bit i = port i)
    // whose RX queues were configured with Rx interrupts.
    bool idle_adaptive = false;
    uint32_t idle_sleep_max_us = 1000;
    uint32_t rx_intr_ports = 0;
    // Replicas of fan-out per loop iteration, between two RX polls: bounds
    // how long a speaker packet waits in its RX queue (512: ~17 us at
    // 30 Mpps) and amortises the iteration's fixed cost (~0.3-1 instruction
    // per replica at 512; bench/count_instructions.sh). The profile's
    // dataplane.iteration_budget sets it (relay.cc). 1024 until the fifth
    // round: a small session's p99 at 80 % load was ~60-70 us with 1024,
    // ~45-60 us with 512, for +0.2-0.6 instructions per replica of 173-175
    // (docs/performance.md).
    uint32_t iteration_budget = 512;
    // Replicas per iteration while the lcore has time to spare: it found
    // nothing to do in one of its last spare_polls iterations (0: always
    // iteration_budget). A core with spare time polls RX twice as often,
    // so after a stop of the core a small session's packet waits less in
    // the RX queue behind the backlog; a saturated core (never idle) keeps
    // the longer iterations that amortise the loop's cost. relay.cc: half
    // the iteration budget when workers run on their lcores.
    uint32_t spare_budget = 0;
    // TSC cycles: a gap longer than this between two TX groups of the
    // fan-out ends the iteration's fan-out (stop_check_us; counted as
    // fanout_cuts). 0: never looked at. relay.cc: stop_check_us when
    // workers run on their lcores; tests that poll by hand set their own.
    uint64_t stop_cycles = 0;
    rte_mempool* pool = nullptr;
    rte_ring* in_ring = nullptr;                  // speaker-packet messages for this fan-out lcore
    bool do_join = false;                         // a dedicated join lcore: verifies what join_in brings
    // How MESSAGE-INTEGRITY of a burst is computed (dataplane/join_mac.h's
    // mi_mode: 0 best lanes the CPU has, 1 one by one); tests and benchmarks.
    uint8_t mi_mode = 0;
    rte_ring* join_in = nullptr;                  // its dp_shared::join_handoff ring
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
