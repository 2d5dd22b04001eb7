// The per-lcore loop. Shape borrowed from DPDK's l3fwd: rx_burst -> parse the
// burst -> act -> stage TX -> drain on a TSC timer -> report an RCU quiescent
// state; every drop is a counter. The stages live in their own files:
// ingress.cc, fanout.cc, neigh.cc (ARP/ICMP and neighbours) and tx.h.
#include <algorithm>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "fanout.h"
#include "ingress.h"
#include "join.h"
#include "lcore.h"
#include "neigh.h"
#include "stentor/dp_worker.h"
#include "tx.h"

namespace stentor::dp {

// An iteration does a bounded amount of work (one RX burst per port, 16
// fan-out slices of 1024 replicas: a few hundred microseconds at most).
// Time between iterations, or an iteration far longer than that, is time
// the lcore did not run: preemption, steal time on a VM, a page-fault
// storm. It is counted as a stall, not as busy time, so the overload
// controller can tell "could not run" from "ran and could not keep up".
inline constexpr uint64_t stall_us = 2000;


worker* worker_create(const worker_config& cfg) {
    auto* w = static_cast<worker*>(rte_zmalloc_socket("stentor_worker", sizeof(worker), cache_line,
                                                      static_cast<int>(rte_lcore_to_socket_id(cfg.lcore_id))));
    if (w == nullptr) return nullptr;
    w->cfg = cfg;
    if (w->cfg.burst == 0 || w->cfg.burst > max_burst) w->cfg.burst = 32;
    if (w->cfg.slice == 0) w->cfg.slice = 1024;
    w->c = cfg.counters;
    w->sh = cfg.shared;
    static const dp_capture never{};
    w->cap = w->sh->capture != nullptr ? w->sh->capture : &never;
    w->hz = rte_get_tsc_hz();
    w->tmpl_pool = static_cast<egress_template*>(
        rte_zmalloc("stentor_tmpl", sizeof(egress_template) * max_jobs * max_ports, cache_line));
    if (w->tmpl_pool == nullptr) {
        rte_free(w);
        return nullptr;
    }
    fanout_init(w);
    const uint64_t now = rte_rdtsc();
    neigh_init(w, now);
    w->join_burst = std::max<uint64_t>(1, uint64_t{w->sh->join_verify_per_s} / 20);
    w->join_tb.tokens = w->join_burst;
    w->join_tb.last_tsc = now;
    w->last_drain_tsc = now;
    w->stall_threshold = w->hz * stall_us / 1000000;
    return w;
}

void worker_destroy(worker* w) {
    if (w == nullptr) return;
    tx_flush_all(w);
    fanout_release(w);
    neigh_release(w);
    rte_free(w->tmpl_pool);
    rte_free(w);
}

unsigned worker_poll(worker* w) noexcept {
    const uint64_t start = rte_rdtsc();
    if (w->prev_end_tsc != 0 && start - w->prev_end_tsc > w->stall_threshold) [[unlikely]] {
        ++w->c->stalls;
        w->c->stall_cycles += start - w->prev_end_tsc;
    }
    const dp_snapshot* s = w->sh->snapshot.load(std::memory_order_acquire);
    unsigned work = 0;
    if (w->cfg.do_rx) work += ingress_poll(w, s, start);
    if (w->cfg.do_fanout) work += fanout_poll(w, s, start, 16);
    if (w->cfg.arp_owner) work += neigh_poll(w, s, start) + join_reply_poll(w);
    const uint64_t end = rte_rdtsc();
    if (end - w->last_drain_tsc >= w->cfg.drain_cycles) {
        tx_flush_all(w);
        w->last_drain_tsc = end;
    }
    if (w->sh->rcu != nullptr) rte_rcu_qsbr_quiescent(w->sh->rcu, w->cfg.thread_id);
    if (end - start > w->stall_threshold) [[unlikely]] {
        ++w->c->stalls;
        w->c->stall_cycles += end - start;
    } else if (work > 0) {
        w->c->busy_cycles += end - start;
    } else {
        w->c->idle_cycles += end - start;
    }
    if (w->prev_end_tsc != 0) w->prev_end_tsc = end;
    return work;
}

void worker_flush(worker* w) noexcept { tx_flush_all(w); }

unsigned worker_jobs_pending(const worker* w) noexcept { return w->order_count; }

int worker_main(void* arg) {
    auto* cfg = static_cast<worker_config*>(arg);
    worker* w = worker_create(*cfg);
    if (w == nullptr) return -1;
    rte_rcu_qsbr* rcu = cfg->shared->rcu;
    if (rcu != nullptr) {
        rte_rcu_qsbr_thread_register(rcu, cfg->thread_id);
        rte_rcu_qsbr_thread_online(rcu, cfg->thread_id);
    }
    w->prev_end_tsc = rte_rdtsc();   // from here on, gaps between iterations are stalls
    while (!cfg->shared->stop.load(std::memory_order_relaxed)) worker_poll(w);
    worker_destroy(w);
    if (rcu != nullptr) {
        rte_rcu_qsbr_thread_offline(rcu, cfg->thread_id);
        rte_rcu_qsbr_thread_unregister(rcu, cfg->thread_id);
    }
    return 0;
}

}  // namespace stentor::dp
