// The per-lcore context: everything one worker owns, cache-aligned, written
// only by its lcore. Each stage (ingress.cc, fanout.cc, neigh.cc, tx.h) reads
// and writes its own part; loop.cc creates it and runs the iteration.
#pragma once

#include <cstdint>

#include "join_mac.h"
#include "replica.h"
#include "stentor/dp_capture.h"
#include "stentor/dp_counters.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_worker.h"

namespace stentor::dp {

// One ingress packet to replicate to this lcore's shard of a session.
struct fanout_job {
    uint32_t session_index;
    uint64_t generation;
    uint64_t deadline_tsc;
    uint32_t tier;
    uint32_t slot;
    uint32_t done;           // replicas built, for the test budget
    uint32_t tier_seen;      // live listeners of `tier` (both families) served or counted so far
    uint8_t fam;             // within `tier`: 0 = the IPv4 list, 1 = the IPv6 list
    uint8_t v6;              // tmpl6 built: the session has IPv6 listeners here and the packet fits
    // The lists the job walks, bit 2 * tier + fam: those that held slots
    // when it started (IPv6 ones only when v6). run_slice goes from one to
    // the next set bit instead of stepping through every tier and family:
    // most sessions have one or two lists of the eight, and the steps cost
    // a 10-listener job ~80 instructions (a listener who joins an empty
    // tier after the packet arrived does not get it, as if the packet had
    // been a moment earlier).
    uint8_t lists;
    // The listener record the job goes on with (prefetched one job ahead
    // by run_jobs). Only ever prefetched, never read through: it may point
    // into a list version retired since (a prefetch does not fault).
    const void* next_rec;
    egress_template* tmpl;   // [max_ports], owned by the worker's template pool
    egress_template6* tmpl6; // [max_ports], the IPv6 templates (built only when v6)
};

struct tx_buffer {
    uint16_t n;
    rte_mbuf* pkts[max_burst];
};

struct token_bucket {
    uint64_t tokens;
    uint64_t last_tsc;
};

// What the classifier told join_input about a request held for join_flush.
// Either family: an IPv6 source stays in the frame (Ethernet/IPv6 without
// extension headers, the only kind the validator passes), read there by
// join_flush, so the IPv4 path carries nothing more than before.
struct join_rx {
    uint32_t src_ip_be;     // IPv4 source (0 for IPv6)
    uint16_t src_port_be;
    uint16_t dst_port_be;   // the port it was sent to: names the session
    uint16_t stun_off;      // STUN message offset in the frame
    uint16_t stun_len;
    uint8_t port;           // port index it arrived on
    uint8_t ipv6;           // 1: IPv6 (pkt_kind::stun6)
};

struct alignas(cache_line) worker {
    worker_config cfg;
    lcore_counters* c;
    dp_shared* sh;
    const dp_capture* cap;          // sh->capture, or one that is always off
    uint32_t cap_id;                // the capture cap_seen counts for
    uint64_t cap_seen;              // its matched packets on this lcore (sampling)
    uint64_t hz;

    // fan-out jobs (fanout.cc): `fresh` holds short jobs (one slice or less)
    // in arrival order, served before any long one; `order` is the round
    // robin of long jobs; both circular lists of job ids. `free_ids` a stack.
    uint32_t fresh[max_jobs];
    uint32_t fresh_head;
    uint32_t fresh_count;
    // Short jobs of one TX burst or less (tiny_job_slots): served before the
    // other short ones while the oldest of those has waited less than
    // short_wait_cycles (run_jobs).
    uint32_t tiny[max_jobs];
    uint32_t tiny_head;
    uint32_t tiny_count;
    uint32_t order[max_jobs];
    uint32_t order_head;
    uint32_t order_count;
    // Slots the long job at order_head has visited in its current turn. A
    // turn is one slice (cfg.slice), and it may span loop iterations: an
    // iteration whose budget ends inside it leaves the job at the head, so
    // the next iteration goes on with it (its lines still in the cache)
    // instead of starting the next long job cold.
    uint32_t head_turn;
    uint32_t free_ids[max_jobs];
    uint32_t nb_free;
    fanout_job jobs[max_jobs];
    egress_template* tmpl_pool;   // max_jobs * max_ports, rte_malloc'ed
    egress_template6* tmpl6_pool; // the same for IPv6

    // TX
    tx_buffer tx[max_ports];
    uint64_t last_drain_tsc;

    // stalls: the loop notices time it did not run (loop.cc)
    uint64_t prev_end_tsc;          // 0 outside worker_main (tests poll at their own pace)
    uint64_t stall_threshold;       // TSC cycles
    uint64_t short_wait_cycles;     // fanout.cc run_jobs: the frame deadline / short_wait_share
    uint32_t busy_streak;           // polls in a row that found work (cfg.spare_budget)
    // A stop of the core noticed in the middle of the fan-out
    // (cfg.stop_cycles; fanout.cc run_list): the TSC of the last look, the
    // replica slots left before the next (stop_check_replicas), and
    // whether this iteration's fan-out ends at once so RX is polled.
    uint64_t seen_tsc;
    int32_t stop_left;
    bool cut;

    // neighbours (ARP owner) and control replies
    uint64_t last_arp_tsc;
    uint32_t arp_scan_pos;          // in the snapshot's neigh_active list
    uint32_t arp_fresh_pos;         // in the snapshot's neigh_fresh list
    uint64_t arp_version;           // snapshot version the fresh list came from
    uint64_t arp_window;            // reply window, TSC cycles
    uint64_t arp_retry;             // between probes of an unanswered or stale entry
    uint64_t arp_reachable;         // a confirmed MAC is re-probed after this
    token_bucket arp_req_tb;        // requests we send (arp_request_rate, arp_request_burst)
    token_bucket arp_tb;
    token_bucket icmp_tb;
    token_bucket nd_tb;             // NAs we answer NSes with: the ARP reply budget, its own bucket
    token_bucket icmp6_tb;          // ICMPv6 echo replies: the ICMP budget, its own bucket
    token_bucket handoff_tb;        // replies handed to the ARP owner (not the owner): arp_handoff_rate, _burst

    // join requests (join.cc): MAC verifications this lcore may spend
    token_bucket join_tb;
    uint64_t join_burst;            // bucket depth: 50 ms of dp_shared::join_verify_per_s
    // the join requests of this RX burst, checked and verified together
    // once the burst is parsed (join_flush)
    uint16_t nb_join_batch;
    uint64_t join_now;              // the burst's TSC (the budget's clock)
    rte_mbuf* join_batch[max_burst];
    join_rx join_info[max_burst];
    mi_batcher* mi;                 // MESSAGE-INTEGRITY in lanes (join_mac.h); nullptr: one by one

    // adaptive idle (loop.cc): empty polls in a row, the next sleep, and
    // the ports whose RX queue interrupt this lcore's epoll watches
    uint32_t empty_polls;
    uint32_t sleep_us;
    uint32_t intr_ports;
};

}  // namespace stentor::dp
