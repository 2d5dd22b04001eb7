// Fan-out jobs: see fanout.h. The inner loop (run_list, both families) is the relay's
// hottest code: per replica one listener record load, one neighbour word
// load, a 64-byte block copy of the template and four header stores
// (replica.h). fanout_harness measures it beside dpdk-testpmd txonly.
#include "fanout.h"

#include <algorithm>
#include <type_traits>

#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "tx.h"

namespace stentor::dp {
namespace {

// The two circular lists of job ids (lcore.h): short jobs in arrival order,
// long jobs round robin.
inline void list_push(uint32_t* q, uint32_t head, uint32_t& count, uint32_t id) noexcept {
    q[(head + count) % max_jobs] = id;
    ++count;
}

inline void list_pop(uint32_t& head, uint32_t& count) noexcept {
    head = (head + 1) % max_jobs;
    --count;
}

// The listeners this job did not reach, counted per tier as misses, in
// constant time: the tiers after the job's are whole (their nb_live); in the
// job's own tier, its nb_live (both families) less the live listeners the
// job already served or counted (tier_seen). Walking the rest of the list
// instead cost a big session's abandoned packet up to 1.6 MB of reads in
// one loop iteration (half of 200 000 records), every other job and the RX
// queue waiting behind it, just when the lcore is behind already. A list
// republished while the job ran is counted by its new nb_live, as the
// walk did.
void abandon(worker* w, const dp_session* sess, const fanout_job& j) noexcept {
    const int shard = w->cfg.fanout_shard;
    uint64_t total = 0;
    for (uint32_t t = j.tier; t < max_tiers; ++t) {
        uint64_t live = 0;
        if (const dp_listener_list* l = sess->shards[shard].v4[t]) live += l->nb_live;
        // IPv6 listeners the packet did not fit were counted ipv6_too_big at its start.
        if (const dp_listener6_list* l = sess->shards[shard].v6[t]; l != nullptr && j.v6) live += l->nb_live;
        const uint64_t missed = t == j.tier ? (live > j.tier_seen ? live - j.tier_seen : 0) : live;
        w->c->tier_misses[t] += missed;
        total += missed;
    }
    w->c->drop(drop_reason::deadline) += total;
}

static_assert(2 * max_tiers <= 8, "fanout_job::lists holds a bit per tier and family");

// The live IPv6 listeners of a session's shard (what ipv6_too_big counts).
uint64_t live6(const dp_session& sess, uint32_t shard) noexcept {
    uint64_t live = 0;
    for (unsigned t = 0; t < max_tiers; ++t)
        if (const dp_listener6_list* l = sess.shards[shard].v6[t]) live += l->nb_live;
    return live;
}

// Where job j goes on: its record at (tier, fam, slot), for run_jobs to
// prefetch; nullptr past its last list.
const void* next_record(const dp_session& sess, int shard, const fanout_job& j) noexcept {
    for (uint32_t t = j.tier, slot = j.slot, fam = j.fam; t < max_tiers; ++t, slot = 0, fam = 0) {
        if (fam == 0) {
            if (const dp_listener_list* l = sess.shards[shard].v4[t]; l != nullptr && slot < l->nb_slots)
                return &l->chunks[slot / listener_chunk_size]->l[slot % listener_chunk_size];
            slot = 0;
        }
        if (const dp_listener6_list* l = sess.shards[shard].v6[t]; j.v6 && l != nullptr && slot < l->nb_slots)
            return &l->chunks[slot / listener6_chunk_size]->l[slot % listener6_chunk_size];
    }
    return nullptr;
}

// One list of the job's tier (either family) from j.slot to `end`: groups
// of one burst, mbufs for a group in one mempool call, unused ones (free
// slots, unresolved next hops) back in one. Returns the slots visited.
//
// No data prefetch: mbufs come back LIFO from the mempool cache, still
// warm; prefetching the group cost 0.88 -> 0.98 of txonly in
// fanout_harness (1 M listeners).
template <bool SinglePort, class List>
__attribute__((always_inline)) inline uint32_t run_list(worker* w, fanout_job& j, const List* l,
                                                        uint32_t end) noexcept {
    // The family's chunk size, the job's templates and the replica builder
    // (replica.h); records of both families answer is_live and carry
    // neigh_idx.
    constexpr bool v6 = std::is_same_v<List, dp_listener6_list>;
    constexpr uint32_t chunk_size = v6 ? listener6_chunk_size : listener_chunk_size;
    const auto* tmpl = [&] {
        if constexpr (v6)
            return j.tmpl6;
        else
            return j.tmpl;
    }();
    auto build = [](rte_mbuf* m, const auto& t, const auto& r, uint64_t mw, uint16_t port) {
        if constexpr (v6)
            build_replica6_copy(m, t, r, mw, port);
        else
            build_replica_copy(m, t, r, mw, port);
    };
    const dp_neigh* neigh = w->sh->neigh;
    lcore_counters* c = w->c;
    const uint32_t first = j.slot;
    while (j.slot < end) {
        const auto* chunk = l->chunks[j.slot / chunk_size];
        const uint32_t base = j.slot & ~(chunk_size - 1);
        const uint32_t stop = std::min(end, base + chunk_size);
        for (uint32_t i = j.slot - base; i < stop - base;) {
            const uint32_t n = std::min<uint32_t>(w->cfg.burst, stop - base - i);
            rte_mbuf* mb[max_burst];
            if (rte_mempool_get_bulk(w->cfg.pool, reinterpret_cast<void**>(mb), n) != 0) [[unlikely]] {
                for (const uint32_t e = i + n; i < e; ++i)
                    if (is_live(chunk->l[i])) {
                        ++c->drop(drop_reason::no_mbuf);
                        ++c->tier_misses[j.tier];
                        ++j.tier_seen;
                    }
                continue;
            }
            uint32_t k = 0;
            uint32_t unresolved = 0;   // live, dropped for want of a next hop
            uint64_t bytes = 0;
            for (const uint32_t e = i + n; i < e; ++i) {
                const auto& r = chunk->l[i];
                if (!is_live(r)) [[unlikely]]
                    continue;
                const dp_neigh& nb = neigh[r.neigh_idx];
                const uint64_t mw = nb.mac_word.load(std::memory_order_relaxed);
                if (!(mw & neigh_valid)) [[unlikely]] {
                    ++c->drop(drop_reason::neigh_unresolved);
                    ++unresolved;
                    continue;
                }
                rte_mbuf* m = mb[k++];
                if constexpr (SinglePort) {
                    build(m, tmpl[0], r, mw, w->sh->ethdev[0]);
                } else {
                    const uint16_t port = nb.port_id;
                    const auto& t = tmpl[port];
                    build(m, t, r, mw, w->sh->ethdev[port]);
                    bytes += t.len;
                    tx_stage(w, port, m);
                }
            }
            if constexpr (SinglePort) {
                bytes = uint64_t{k} * tmpl[0].len;
                tx_stage_bulk(w, 0, mb, k);
            }
            if (k < n) [[unlikely]]
                rte_mempool_put_bulk(w->cfg.pool, reinterpret_cast<void**>(mb + k), n - k);
            j.done += k;
            j.tier_seen += k + unresolved;
            c->tx_bytes += bytes;
            // A stop of the core since the last look (worker_config::
            // stop_cycles; one every stop_check_replicas slots): the
            // fan-out of this iteration ends here, and the job goes on
            // from the next slot after an RX poll.
            if (w->cfg.stop_cycles != 0 && (w->stop_left -= static_cast<int32_t>(n)) <= 0) {
                w->stop_left = stop_check_replicas;
                const uint64_t t = rte_rdtsc();
                if (t - w->seen_tsc > w->cfg.stop_cycles) [[unlikely]] {
                    w->cut = true;
                    ++c->fanout_cuts;
                    j.slot = base + i;
                    return j.slot - first;
                }
                w->seen_tsc = t;
            }
        }
        j.slot = stop;
    }
    return end - first;
}

// Build and stage up to `budget` replicas of the front job. Returns the
// number of slots visited; sets *finished when the job has no slots left.
//
// SinglePort: every next hop is on port 0 (the common shape, chosen once at
// start-up): the template is fixed and a whole group goes to TX at once.
template <bool SinglePort>
uint32_t run_slice(worker* w, const dp_snapshot& s, fanout_job& j, uint32_t budget, uint64_t now,
                   bool* finished) noexcept {
    *finished = false;
    const dp_session* sess = session_at(s, j.session_index);
    if (sess == nullptr || sess->generation != j.generation) {
        *finished = true;     // session (or its trunk twin) ended or replaced: nothing left to serve
        return 0;
    }
    const int shard = w->cfg.fanout_shard;
    if (now > j.deadline_tsc || (w->cfg.replica_budget != 0 && j.done >= w->cfg.replica_budget)) {
        abandon(w, sess, j);
        *finished = true;
        return 0;
    }
    uint32_t visited = 0;
    // Where this slice stops in a list of nb_slots: the budget left, and
    // the replica budget per packet (tests, replica_budget); j.slot when
    // either is spent (then the job goes on, or is given up, next slice).
    auto slice_end = [&](uint32_t nb_slots) {
        uint32_t end = std::min(nb_slots, j.slot + (budget - visited));
        if (w->cfg.replica_budget != 0) end = std::min(end, j.slot + (w->cfg.replica_budget - j.done));
        return end;
    };
    // To the next list the job walks (fanout_job::lists), or past the last.
    auto advance = [&] {
        const unsigned next = 2 * j.tier + j.fam + 1;
        const unsigned rest = next < 2 * max_tiers ? unsigned{j.lists} >> next : 0;
        const unsigned at = rest != 0 ? next + static_cast<unsigned>(__builtin_ctz(rest)) : 2 * max_tiers;
        if (at / 2 != j.tier) j.tier_seen = 0;
        j.tier = at / 2;
        j.fam = static_cast<uint8_t>(at % 2);
        j.slot = 0;
    };
    while (visited < budget && j.tier < max_tiers && !w->cut) {
        if (j.fam != 0) [[unlikely]] {
            // This tier's IPv6 listeners, after its IPv4 ones.
            const dp_listener6_list* l6 = sess->shards[shard].v6[j.tier];
            if (!j.v6 || l6 == nullptr || j.slot >= l6->nb_slots) {
                advance();
                continue;
            }
            const uint32_t end = slice_end(l6->nb_slots);
            if (end == j.slot) break;
            visited += run_list<SinglePort>(w, j, l6, end);
            continue;
        }
        const dp_listener_list* l = sess->shards[shard].v4[j.tier];
        if (l == nullptr || j.slot >= l->nb_slots) {
            advance();
            continue;
        }
        const uint32_t end = slice_end(l->nb_slots);
        if (end == j.slot) break;
        visited += run_list<SinglePort>(w, j, l, end);
    }
    if (j.tier >= max_tiers)
        *finished = true;
    else
        j.next_rec = next_record(*sess, shard, j);
    return visited;
}

// The records a job starts or goes on with are cold when it comes up (the
// lists of 10 000 sessions do not stay in the cache between two packets of
// one): prefetched one job ahead, so the misses overlap the current job's
// work. Four lines: 64 IPv4 records, the median session of a Zipf mix;
// the hardware prefetcher follows a longer run.
inline void prefetch_records(const void* p) noexcept {
    if (p == nullptr) return;
    const auto* c = static_cast<const char*>(p);
    rte_prefetch0(c);
    rte_prefetch0(c + 64);
    rte_prefetch0(c + 128);
    rte_prefetch0(c + 192);
}

// Serve jobs until `budget` replicas are visited or none is left: short jobs
// first, in arrival order, each to its end (tiny ones, of one TX burst or
// less, before the others while the oldest of those has waited less than a
// tenth of the frame deadline: they delay each bigger job by a fraction of
// a microsecond and would otherwise wait for all of them); then long jobs,
// one slice each, round robin. Short jobs take the whole budget while they
// keep up, that is while the oldest has waited less than a tenth of the
// frame deadline (short_wait_share); past that (more short work than the
// lcore can do: overload), and while long jobs wait, short jobs get half of
// each iteration's budget and long jobs the rest. So do they while
// long_backlog_jobs long jobs wait: short work the core just keeps up with,
// and long work piling up behind it (overload too).
//
// Why not always half: at 80 % of the lcore's capacity in a Zipf mix a long
// job is in flight nearly always, small sessions are a large share of the
// work, and the iteration's budget also pays the ingress, so their half was
// at times less than their load and they queued behind each other: a
// 10-listener session's p99 in the intervals where the core kept its pace
// was 61-290 us with the half, 49-79 us without (bench/workload_harness,
// PART latency_steady; docs/performance.md, fifth round).
// Why not always all: a steady stream of short jobs under overload (the
// mix's thousands of small sessions at 5x the capacity) starved every long
// one: not served, so not even given up at its deadline, they held the job
// slots, new packets of big sessions were dropped as jobs_full, and the big
// sessions (most of the listeners) heard nothing while the core served only
// its least efficient work (long jobs found 1.6 s old). Under overload misses
// land on both kinds, each job's lowest tiers last, counted per tier.
// Why the long backlog too: under the Zipf mix's overload the small
// sessions' work alone is most of a core, and at times the short jobs kept
// up with it (never 200 us behind) while long jobs got only what was left:
// they filled the job table, a fifth of all speaker packets were dropped
// whole as jobs_full, and the core delivered 42-55 Mpps instead of ~70, in
// windows that came and went within one run (docs/performance.md, ninth
// round).
unsigned run_jobs(worker* w, const dp_snapshot& s, uint64_t now, uint32_t budget, uint32_t* built) noexcept {
    const bool single = w->sh->nb_ports == 1;
    unsigned work = 0;
    uint32_t short_left = budget;
    // A job's start is its deadline less the frame deadline: the earlier
    // deadline is the older job.
    auto waited_long = [&](uint32_t id) {
        const uint64_t started = w->jobs[id].deadline_tsc - w->cfg.deadline_cycles;
        return now > started && now - started > w->short_wait_cycles;
    };
    // Tiny jobs first, unless the oldest other short job has waited too
    // long: then the older of the two first (arrival order).
    const bool tiny_first = w->fresh_count == 0 || !waited_long(w->fresh[w->fresh_head]);
    if (w->order_count > 0 && w->tiny_count + w->fresh_count > 0) {
        const bool late = (w->fresh_count > 0 && !tiny_first) ||
                          (w->tiny_count > 0 && waited_long(w->tiny[w->tiny_head]));
        if (late || w->order_count >= long_backlog_jobs) short_left = budget / 2;
    }
    while (budget > 0) {
        const bool any_short = w->tiny_count + w->fresh_count > 0;
        const bool is_short = any_short && (short_left > 0 || w->order_count == 0);
        if (!is_short && w->order_count == 0) break;
        const bool is_tiny = is_short && w->tiny_count > 0 &&
                             (tiny_first || w->fresh_count == 0 ||
                              w->jobs[w->tiny[w->tiny_head]].deadline_tsc <= w->jobs[w->fresh[w->fresh_head]].deadline_tsc);
        const uint32_t id = is_tiny    ? w->tiny[w->tiny_head]
                            : is_short ? w->fresh[w->fresh_head]
                                       : w->order[w->order_head];
        const uint32_t cap = is_short ? std::min(budget, w->order_count > 0 ? short_left : budget)
                                      : std::min(budget, w->cfg.slice - std::min(w->cfg.slice - 1, w->head_turn));
        {
            // The job after this one: the next short one, else the long one
            // whose turn comes next.
            uint32_t next = max_jobs;
            if (is_tiny && w->tiny_count > 1)
                next = w->tiny[(w->tiny_head + 1) % max_jobs];
            else if (is_short && w->fresh_count > (is_tiny ? 0u : 1u))
                next = w->fresh[(w->fresh_head + (is_tiny ? 0 : 1)) % max_jobs];
            else if (is_short ? w->order_count > 0 : w->order_count > 1)
                next = w->order[(w->order_head + (is_short ? 0 : 1)) % max_jobs];
            if (next != max_jobs) prefetch_records(w->jobs[next].next_rec);
        }
        bool finished = false;
        fanout_job& j = w->jobs[id];
        const uint32_t done = j.done;
        const uint32_t visited = single ? run_slice<true>(w, s, j, cap, now, &finished)
                                        : run_slice<false>(w, s, j, cap, now, &finished);
        *built += j.done - done;
        budget -= std::min(budget, std::max<uint32_t>(visited, 1));
        if (w->cut) [[unlikely]] budget = 0;
        if (is_short) short_left -= std::min(short_left, std::max<uint32_t>(visited, 1));
        work += visited + 1;
        if (is_short) {
            if (!finished) continue;   // budget spent: it goes on first next time
            if (is_tiny)
                list_pop(w->tiny_head, w->tiny_count);
            else
                list_pop(w->fresh_head, w->fresh_count);
        } else {
            w->head_turn += std::max<uint32_t>(visited, 1);
            if (!finished && w->head_turn < w->cfg.slice) continue;   // budget spent mid-turn: it goes on next time
            w->head_turn = 0;
            list_pop(w->order_head, w->order_count);
            if (!finished) {
                list_push(w->order, w->order_head, w->order_count, id);   // to the back
                continue;
            }
        }
        w->free_ids[w->nb_free++] = id;
    }
    return work;
}

// Speaker-packet messages from an ingress lcore or the mixer.
unsigned drain_in_ring(worker* w, const dp_snapshot* s, uint64_t now) noexcept {
    if (w->cfg.in_ring == nullptr) return 0;
    // No more than the job slots any packet may take (the reserve is for
    // short jobs, and a message's size is known only once it is taken): the
    // rest wait in the ring (whose producers count ring_full) instead of
    // being taken and dropped as jobs_full.
    if (w->nb_free <= short_job_reserve) return 0;
    const unsigned want = std::min(w->cfg.burst, w->nb_free - short_job_reserve);
    void* objs[max_burst];
    const unsigned n = rte_ring_sc_dequeue_burst(w->cfg.in_ring, objs, want, nullptr);
    for (unsigned i = 0; s != nullptr && i < n; ++i) {
        const rte_mbuf* m = static_cast<const rte_mbuf*>(objs[i]);
        const dp_session* sess = message_session_of(*s, m);
        if (sess == nullptr) [[unlikely]] {
            ++w->c->drop(drop_reason::stale_session);
            continue;
        }
        fanout_start_job(w, *sess, rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, now);
    }
    if (n > 0) rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
    return n;
}

}  // namespace

void fanout_prefetch_lists(const worker* w, const dp_session& sess) noexcept {
    const int shard = w->cfg.fanout_shard;
    for (unsigned t = 0; t < max_tiers; ++t) {
        if (const dp_listener_list* l = sess.shards[shard].v4[t]) rte_prefetch0(l);
        if (const dp_listener6_list* l = sess.shards[shard].v6[t]) rte_prefetch0(l);
    }
}

void fanout_start_job(worker* w, const dp_session& sess, const uint8_t* rtp, uint16_t rtp_len,
                      uint64_t now) noexcept {
    const uint32_t shard = static_cast<uint32_t>(w->cfg.fanout_shard);
    if (w->nb_free == 0) [[unlikely]] {
        // No slot for any job (an overloaded lcore, most of its packets):
        // the same verdicts as below without reading the lists' headers.
        if (has_listeners(sess, shard))
            ++w->c->drop(rtp_len > max_frame_bytes - wire::l2l3l4 ? drop_reason::rtp_too_large : drop_reason::jobs_full);
        return;
    }
    uint32_t slots = 0;
    unsigned lists = 0;   // fanout_job::lists
    for (unsigned t = 0; t < max_tiers; ++t) {
        if (const dp_listener_list* l = sess.shards[shard].v4[t]; l != nullptr && l->nb_slots > 0) {
            slots += l->nb_slots;
            lists |= 1u << (2 * t);
        }
        if (const dp_listener6_list* l = sess.shards[shard].v6[t]; l != nullptr && l->nb_slots > 0) {
            slots += l->nb_slots;   // IPv6 listeners count alike
            lists |= 1u << (2 * t + 1);
        }
    }
    if (slots == 0) return;
    // The ingress drops larger speaker packets (same reason); this keeps a
    // message from another producer from overrunning the template.
    if (rtp_len > max_frame_bytes - wire::l2l3l4) [[unlikely]] {
        ++w->c->drop(drop_reason::rtp_too_large);
        return;
    }
    // An IPv4 replica must fit the ports' MTU too, as an IPv6 one must
    // below: a speaker packet that filled the ingress port's MTU leaves
    // longer after SRTP egress added its tag and MKI, and an egress port
    // may have a smaller MTU than the ingress one. Such a frame would leave
    // over the MTU with DF set; the relay does not fragment. Not sent to
    // this shard's IPv4 listeners, counted once per packet; the IPv6
    // replicas, 20 bytes longer, do not fit either.
    bool fits4 = true;
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
        fits4 &= uint32_t{rtp_len} + wire::l2l3l4 <= w->sh->ports[p].max_frame;
    if (!fits4) [[unlikely]] {
        if (lists & 0x55u) ++w->c->drop(drop_reason::ipv4_too_big);
        if (lists & 0xaau) w->c->drop(drop_reason::ipv6_too_big) += live6(sess, shard);
        return;
    }
    const bool is_short = slots <= w->cfg.slice;
    if (w->nb_free <= (is_short ? 0u : short_job_reserve)) {
        ++w->c->drop(drop_reason::jobs_full);
        return;
    }
    const uint32_t id = w->free_ids[--w->nb_free];
    fanout_job& j = w->jobs[id];
    j.session_index = sess.index;
    j.generation = sess.generation;
    j.deadline_tsc = now + w->cfg.deadline_cycles;
    j.slot = 0;
    j.done = 0;
    j.tier_seen = 0;
    j.v6 = 0;
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
        build_template(j.tmpl[p], rtp, rtp_len, w->sh->ports[p].mac, w->sh->ports[p].ip_be, sess.udp_port_be,
                       w->sh->egress_tos[p]);
    if (has_listeners6(sess, shard)) [[unlikely]] {
        // The IPv6 header is 20 bytes longer: a packet that fitted the
        // port's MTU as IPv4 may not as IPv6 (no fragmenting: the relay is
        // not the source of the audio, and a path MTU is not ours to
        // discover per listener). Its IPv6 listeners miss it, counted.
        bool fits = rtp_len <= max_frame_bytes - l2l3l4_v6;
        for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
            fits &= uint32_t{rtp_len} + l2l3l4_v6 <= w->sh->ports[p].max_frame;
        if (fits) {
            j.v6 = 1;
            for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
                build_template6(j.tmpl6[p], rtp, rtp_len, w->sh->ports[p].mac, w->sh->ports[p].ip6, sess.udp_port_be,
                                w->sh->egress_tos[p]);
        } else {
            w->c->drop(drop_reason::ipv6_too_big) += live6(sess, shard);
        }
    }
    if (!j.v6) lists &= 0x55u;   // the IPv4 lists only
    j.lists = static_cast<uint8_t>(lists);
    const unsigned first = lists != 0 ? static_cast<unsigned>(__builtin_ctz(lists)) : 2 * max_tiers;
    j.tier = first / 2;
    j.fam = static_cast<uint8_t>(first % 2);
    j.next_rec = next_record(sess, static_cast<int>(shard), j);
    if (is_short) {
        // Short jobs run in arrival order, most within this iteration: their
        // first records are fetched now, while the rest of the burst goes
        // through ingress.
        prefetch_records(j.next_rec);
        if (slots <= tiny_job_slots)
            list_push(w->tiny, w->tiny_head, w->tiny_count, id);
        else
            list_push(w->fresh, w->fresh_head, w->fresh_count, id);
    } else {
        list_push(w->order, w->order_head, w->order_count, id);
    }
}

unsigned fanout_poll(worker* w, const dp_snapshot* s, uint64_t now, uint32_t budget, uint32_t* built) noexcept {
    unsigned work = drain_in_ring(w, s, now);
    if (s != nullptr) work += run_jobs(w, *s, now, budget, built);
    return work;
}

void fanout_init(worker* w) noexcept {
    for (uint32_t i = 0; i < max_jobs; ++i) {
        w->free_ids[i] = max_jobs - 1 - i;
        w->jobs[i].tmpl = w->tmpl_pool + i * max_ports;
        w->jobs[i].tmpl6 = w->tmpl6_pool + i * max_ports;
    }
    w->nb_free = max_jobs;
}

void fanout_release(worker* w) noexcept {
    // Jobs hold no mbufs (templates are copies); the ring may.
    if (w->cfg.in_ring == nullptr) return;
    void* obj;
    while (rte_ring_sc_dequeue(w->cfg.in_ring, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
}

// ---------------------------------------------------------------- messages

bool publish_message(dp_shared& sh, const dp_snapshot& s, rte_mbuf* m, bool to_recorder,
                     lcore_counters* c, int skip_shard) noexcept {
    bool ok = true;
    if (const dp_session* sess = message_session_of(s, m)) {
        for (uint32_t shard = 0; shard < s.nb_fanout_shards && shard < sh.nb_shards; ++shard) {
            if (static_cast<int>(shard) == skip_shard || !has_listeners(*sess, shard)) continue;
            rte_ring* r = sh.shard_rings[shard];
            if (r == nullptr) continue;
            rte_mbuf_refcnt_update(m, 1);
            if (rte_ring_enqueue(r, m) != 0) {
                rte_mbuf_refcnt_update(m, -1);
                ++c->drop(drop_reason::ring_full);
                ok = false;
            }
        }
    }
    if (to_recorder && sh.record_ring != nullptr) {
        rte_mbuf_refcnt_update(m, 1);
        if (rte_ring_enqueue(sh.record_ring, m) != 0) {
            rte_mbuf_refcnt_update(m, -1);
            ++c->drop(drop_reason::record_ring_full);
            ok = false;
        }
    }
    rte_pktmbuf_free(m);
    return ok;
}

bool publish_record(dp_shared& sh, rte_mbuf* m, lcore_counters* c) noexcept {
    bool ok = true;
    if (sh.record_ring == nullptr || rte_ring_enqueue(sh.record_ring, m) != 0) {
        if (sh.record_ring != nullptr) {
            ++c->drop(drop_reason::record_ring_full);
            ok = false;
        }
        rte_pktmbuf_free(m);
    }
    return ok;
}

}  // namespace stentor::dp
