// The per-lcore loop. Shape borrowed from DPDK's l3fwd: rx_burst -> parse the
// burst -> act -> stage TX -> drain on a TSC timer -> report an RCU quiescent
// state; every drop is a counter. The stages live in their own files:
// ingress.cc, fanout.cc, neigh.cc (ARP/ICMP and neighbours) and tx.h.
#include <algorithm>
#include <cerrno>
#include <ctime>

#include <sys/prctl.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_interrupts.h>
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

// An iteration does a bounded amount of work (one RX burst per port, about
// worker_config::iteration_budget replicas of fan-out: tens of microseconds).
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
    if (w->cfg.iteration_budget == 0) w->cfg.iteration_budget = 512;
    w->c = cfg.counters;
    w->sh = cfg.shared;
    static const dp_capture never{};
    w->cap = w->sh->capture != nullptr ? w->sh->capture : &never;
    w->hz = rte_get_tsc_hz();
    w->tmpl_pool = static_cast<egress_template*>(
        rte_zmalloc("stentor_tmpl", sizeof(egress_template) * max_jobs * max_ports, cache_line));
    w->tmpl6_pool = static_cast<egress_template6*>(
        rte_zmalloc("stentor_tmpl6", sizeof(egress_template6) * max_jobs * max_ports, cache_line));
    if (w->tmpl_pool == nullptr || w->tmpl6_pool == nullptr) {
        rte_free(w->tmpl_pool);
        rte_free(w->tmpl6_pool);
        rte_free(w);
        return nullptr;
    }
    fanout_init(w);
    const uint64_t now = rte_rdtsc();
    neigh_init(w, now);
    w->join_burst = std::max<uint64_t>(1, uint64_t{w->sh->join_verify_per_s} / 20);
    w->join_tb.tokens = w->join_burst;
    w->join_tb.last_tsc = now;
    // Only where joins are verified: a join lcore, or an RX lcore when
    // there is none.
    if (w->sh->join_ring != nullptr && (w->cfg.do_join || (w->cfg.do_rx && w->sh->nb_join_lcores == 0)))
        w->mi = mi_batcher_create(static_cast<mi_mode>(w->cfg.mi_mode));   // nullptr: one by one
    w->last_drain_tsc = now;
    w->stall_threshold = w->hz * stall_us / 1000000;
    w->short_wait_cycles = w->cfg.deadline_cycles / short_wait_share;
    return w;
}

void worker_destroy(worker* w) {
    if (w == nullptr) return;
    tx_flush_all(w);
    fanout_release(w);
    neigh_release(w);
    mi_batcher_destroy(w->mi);
    rte_free(w->tmpl_pool);
    rte_free(w->tmpl6_pool);
    rte_free(w);
}

unsigned worker_poll(worker* w) noexcept {
    const uint64_t start = rte_rdtsc();
    if (w->prev_end_tsc != 0 && start - w->prev_end_tsc > w->stall_threshold) [[unlikely]] {
        ++w->c->stalls;
        w->c->stall_cycles += start - w->prev_end_tsc;
    }
    const dp_snapshot* s = w->sh->snapshot.load(std::memory_order_acquire);
    lcore_counters* c = w->c;
    ++c->loops;
    // show runtime: each stage's cycles, counted when it did work. One TSC
    // read after each stage this lcore runs (one more than before per stage
    // past the first: a few dozen cycles per iteration, never per packet);
    // the last one is the iteration's end.
    unsigned work = 0;
    uint64_t t = start;
    if (w->cfg.do_rx) {
        const unsigned n = ingress_poll(w, s, start);
        const uint64_t now = rte_rdtsc();
        if (n != 0) {
            ++c->ingress_calls;
            c->ingress_cycles += now - t;
        }
        t = now;
        work += n;
    }
    if (w->cfg.do_fanout) {
        uint32_t built = 0;
        const uint32_t budget = w->cfg.spare_budget != 0 && w->busy_streak < spare_polls ? w->cfg.spare_budget
                                                                                          : w->cfg.iteration_budget;
        // From here, a stop of the core ends the fan-out early (stop_cycles):
        // a stop during the ingress above is not looked for, so a long
        // ingress (a burst of packets) never starves the fan-out.
        w->seen_tsc = t;
        w->stop_left = stop_check_replicas;
        w->cut = false;
        const unsigned n = fanout_poll(w, s, start, budget, &built);
        const uint64_t now = rte_rdtsc();
        if (n != 0) {
            ++c->fanout_calls;
            c->fanout_replicas += built;
            c->fanout_cycles += now - t;
        }
        t = now;
        work += n;
    }
    if (w->cfg.do_join) {
        const unsigned n = join_poll(w, s);
        const uint64_t now = rte_rdtsc();
        if (n != 0) {
            ++c->verify_calls;
            c->verify_requests += n;
            c->verify_cycles += now - t;
        }
        t = now;
        work += n;
    }
    if (w->cfg.arp_owner) {
        const unsigned n = neigh_poll(w, s, start) + join_reply_poll(w);
        const uint64_t now = rte_rdtsc();
        if (n != 0) {
            ++c->neigh_calls;
            c->neigh_packets += n;
            c->neigh_cycles += now - t;
        }
        t = now;
        work += n;
    }
    const uint64_t end = t != start ? t : rte_rdtsc();
    // TX buffers go out when the drain interval has passed, or at once when
    // no fan-out job is left: nothing would fill them soon, so a small
    // session's last replicas would wait up to tx_drain_us (100 us) for
    // company. A loaded lcore always has jobs and keeps full bursts. And
    // after a stop of the core (w->cut): what was staged before it has
    // waited the whole stop already, and would wait again for the burst
    // of packets that arrived meanwhile to go through ingress.
    if (end - w->last_drain_tsc >= w->cfg.drain_cycles || worker_jobs_pending(w) == 0 || w->cut) {
        tx_flush_all(w);
        w->last_drain_tsc = end;
    }
    if (w->sh->rcu != nullptr) rte_rcu_qsbr_quiescent(w->sh->rcu, w->cfg.thread_id);
    if (end - start > w->stall_threshold) [[unlikely]] {
        ++w->c->stalls;
        w->c->stall_cycles += end - start;
    } else if (work > 0) {
        w->c->busy_cycles += end - start;
        ++w->c->busy_polls;
    } else {
        w->c->idle_cycles += end - start;
        ++w->c->idle_polls;
    }
    if (w->prev_end_tsc != 0) w->prev_end_tsc = end;
    w->busy_streak = work == 0 ? 0 : std::min(w->busy_streak + 1, spare_polls);
    return work;
}

void worker_flush(worker* w) noexcept { tx_flush_all(w); }

unsigned worker_jobs_pending(const worker* w) noexcept { return w->tiny_count + w->fresh_count + w->order_count; }

// ---------------------------------------------------------------------------
// Adaptive idle (dataplane.idle = "adaptive", docs/profiles.md "Idle
// workers"). Only worker_main's idle branch runs this: a poll that found
// work pays one compare more, never a syscall.

// Empty polls in a row before the first sleep: ~5 us of spinning on this
// class of VM (an empty poll of one port is ~80 ns), so a burst's tail or
// the next packet of a busy stream does not pay a sleep.
inline constexpr uint32_t idle_polls = 64;
inline constexpr uint32_t idle_sleep_min_us = 10;

namespace {

// Once on the worker's own thread: RTE_EPOLL_PER_THREAD is this thread's
// epoll instance. A port whose queue cannot be added stays on sleeps.
void idle_init(worker* w) noexcept {
    // The default 50 us timer slack would stretch every short sleep.
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    w->sleep_us = idle_sleep_min_us;
    w->intr_ports = 0;
    if (!w->cfg.do_rx) return;
    uint32_t ok = 0;
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p) {
        if ((w->cfg.rx_intr_ports & (1u << p)) == 0) continue;
        if (rte_eth_dev_rx_intr_ctl_q(w->sh->ethdev[p], w->cfg.rx_queue, RTE_EPOLL_PER_THREAD,
                                      RTE_INTR_EVENT_ADD, nullptr) == 0)
            ok |= 1u << p;
    }
    // Interrupts help only if every port this lcore polls can raise one:
    // otherwise a packet on the silent port would wait the whole timeout.
    const uint32_t all = w->sh->nb_ports >= 32 ? ~0u : (1u << w->sh->nb_ports) - 1;
    if (ok == all) w->intr_ports = ok;
}

void idle_sleep(worker* w, rte_rcu_qsbr* rcu) noexcept {
    tx_flush_all(w);   // nothing staged waits for the sleep
    const uint64_t t0 = rte_rdtsc();
    // Offline while asleep: a publish's grace period does not wait for us.
    // The next poll loads the snapshot again after coming back online.
    if (rcu != nullptr) rte_rcu_qsbr_thread_offline(rcu, w->cfg.thread_id);
    if (w->intr_ports != 0) {
        // -ENOTSUP from PMDs whose queue interrupt is always armed (net_tap).
        for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
            rte_eth_dev_rx_intr_enable(w->sh->ethdev[p], w->cfg.rx_queue);
        rte_epoll_event ev[max_ports];
        // Whole milliseconds: work that other lcores hand over by ring
        // raises no interrupt, and waits at most this long.
        const int timeout_ms = static_cast<int>((w->cfg.idle_sleep_max_us + 999) / 1000);
        const int n = rte_epoll_wait(RTE_EPOLL_PER_THREAD, ev, static_cast<int>(max_ports), timeout_ms);
        for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
            rte_eth_dev_rx_intr_disable(w->sh->ethdev[p], w->cfg.rx_queue);
        if (n > 0) ++w->c->idle_rx_wakeups;
    } else {
        timespec ts{0, static_cast<long>(w->sleep_us) * 1000};
        ::clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
        w->sleep_us = std::min(w->sleep_us * 2, std::max(w->cfg.idle_sleep_max_us, idle_sleep_min_us));
    }
    if (rcu != nullptr) rte_rcu_qsbr_thread_online(rcu, w->cfg.thread_id);
    const uint64_t t1 = rte_rdtsc();
    ++w->c->idle_sleeps;
    w->c->idle_cycles += t1 - t0;   // asleep is idle, not a stall
    w->prev_end_tsc = t1;
}

}  // namespace

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
    if (!cfg->idle_adaptive) {
        while (!cfg->shared->stop.load(std::memory_order_relaxed)) worker_poll(w);
    } else {
        idle_init(w);
        while (!cfg->shared->stop.load(std::memory_order_relaxed)) {
            if (worker_poll(w) != 0) {
                w->empty_polls = 0;
                w->sleep_us = idle_sleep_min_us;
            } else if (++w->empty_polls >= idle_polls && worker_jobs_pending(w) == 0) {
                // Stays at idle_polls: after a sleep one empty poll is
                // enough to sleep again (the backoff grows meanwhile).
                w->empty_polls = idle_polls;
                idle_sleep(w, rcu);
            }
        }
    }
    worker_destroy(w);
    if (rcu != nullptr) {
        rte_rcu_qsbr_thread_offline(rcu, cfg->thread_id);
        rte_rcu_qsbr_thread_unregister(rcu, cfg->thread_id);
    }
    return 0;
}

}  // namespace stentor::dp
