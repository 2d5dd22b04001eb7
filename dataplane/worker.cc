// Per-lcore loop. Shape borrowed from DPDK's l3fwd: rx_burst -> parse the
// burst -> act -> stage TX -> drain on a TSC timer; every drop is a counter.
//
// Fan-out works on "jobs": one ingress packet to replicate to one shard's
// listeners. A job owns a copy of the egress frame (the template, built once
// per packet and egress port) and a position (tier, slot); it holds no pointer
// into the snapshot across loop iterations, so the lcore can report an RCU
// quiescent state every iteration even while a million-listener packet is
// half done. Jobs are served in slices, round robin, so a small session's
// packet is not stuck behind a huge one; a job past its deadline is abandoned
// and the listeners it did not reach are counted per tier.
#include "worker.h"

#include "replica.h"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>

namespace stentor::dp {
namespace {

struct fanout_job {
    uint32_t session_index;
    uint64_t generation;
    uint64_t deadline_tsc;
    uint32_t tier;
    uint32_t slot;
    uint32_t done;        // replicas built, for the test budget
    egress_template* tmpl;   // [max_ports], owned by the worker's job pool
};

struct tx_buffer {
    uint16_t n;
    rte_mbuf* pkts[max_burst];
};

struct token_bucket {
    uint64_t tokens;
    uint64_t last_tsc;
};

}  // namespace

struct alignas(cache_line) worker {
    worker_config cfg;
    lcore_counters* c;
    dp_shared* sh;
    uint64_t hz;

    // job queue: `order` is a circular list of job ids, `free_ids` a stack
    uint32_t order[max_jobs];
    uint32_t order_head;
    uint32_t order_count;
    uint32_t free_ids[max_jobs];
    uint32_t nb_free;
    fanout_job jobs[max_jobs];
    egress_template* tmpl_pool;   // max_jobs * max_ports, rte_malloc'ed


    tx_buffer tx[max_ports];
    uint64_t last_drain_tsc;
    uint64_t last_arp_tsc;
    uint32_t arp_scan_pos;
    token_bucket arp_tb;
    token_bucket icmp_tb;
};

namespace {

inline uint16_t load_be16(const uint8_t* p) noexcept {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return rte_be_to_cpu_16(v);
}


// Reply budget: ARP and ICMP replies are capped so the relay cannot be used to
// reflect a flood; 1000/s per lcore with a burst of 100.
constexpr uint64_t reply_rate_per_s = 1000;
constexpr uint64_t reply_burst = 100;

inline bool take_token(token_bucket& tb, uint64_t now, uint64_t hz) noexcept {
    uint64_t elapsed = now - tb.last_tsc;
    uint64_t add = elapsed * reply_rate_per_s / hz;
    if (add > 0) {
        tb.tokens = std::min(reply_burst, tb.tokens + add);
        tb.last_tsc = now;
    }
    if (tb.tokens == 0) return false;
    --tb.tokens;
    return true;
}

void tx_flush_port(worker* w, uint16_t port) noexcept {
    tx_buffer& b = w->tx[port];
    if (b.n == 0) return;
    uint16_t sent = rte_eth_tx_burst(w->sh->ethdev[port], w->cfg.tx_queue, b.pkts, b.n);
    // A full TX ring gets a few more tries (a few microseconds), then the
    // remainder is dropped and counted: never spin forever, never leak.
    for (unsigned tries = 0; sent < b.n && tries < 64; ++tries) {
        rte_pause();
        sent += rte_eth_tx_burst(w->sh->ethdev[port], w->cfg.tx_queue, b.pkts + sent, b.n - sent);
    }
    w->c->replicas_out += sent;
    w->c->port_tx[port] += sent;
    if (sent < b.n) {
        w->c->drops[static_cast<unsigned>(drop_reason::tx_full)] += b.n - sent;
        rte_pktmbuf_free_bulk(b.pkts + sent, b.n - sent);
    }
    b.n = 0;
}

inline void tx_stage(worker* w, uint16_t port, rte_mbuf* m) noexcept {
    tx_buffer& b = w->tx[port];
    b.pkts[b.n++] = m;
    if (b.n == w->cfg.burst) tx_flush_port(w, port);
}

// ARP/ICMP replies and ARP requests: rare and rate limited, so they go out
// at once on their own instead of sharing the replicas' TX buffers.
void tx_control(worker* w, uint16_t port, rte_mbuf* m) noexcept {
    if (rte_eth_tx_burst(w->sh->ethdev[port], w->cfg.tx_queue, &m, 1) == 1) {
        ++w->c->port_tx[port];
        return;
    }
    ++w->c->drops[static_cast<unsigned>(drop_reason::tx_full)];
    rte_pktmbuf_free(m);
}

void flush_all(worker* w) noexcept {
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p) tx_flush_port(w, p);
}

// ---------------------------------------------------------------- templates

// ---------------------------------------------------------------- jobs

inline bool jobs_full(const worker* w) noexcept { return w->nb_free == 0; }

inline bool has_listeners(const dp_session& sess, uint32_t shard) noexcept {
    bool any = false;
    for (unsigned t = 0; t < max_tiers; ++t) any |= sess.lists[shard][t] != nullptr;
    return any;
}

// Create a fan-out job for one speaker-packet message (RTP bytes of a
// session). Called with the snapshot the caller loaded for this iteration.
void start_job(worker* w, const dp_snapshot& s, uint32_t session_index, const uint8_t* rtp,
               uint16_t rtp_len, uint64_t now) noexcept {
    if (session_index >= s.nb_sessions) return;
    const dp_session* sess = s.sessions[session_index];
    const uint32_t shard = static_cast<uint32_t>(w->cfg.fanout_shard);
    if (!has_listeners(*sess, shard)) return;
    if (rtp_len > max_frame_bytes - l2l3l4) return;   // the validator already bounds it by the MTU
    if (jobs_full(w)) {
        ++w->c->drops[static_cast<unsigned>(drop_reason::ring_full)];
        return;
    }
    const uint32_t id = w->free_ids[--w->nb_free];
    fanout_job& j = w->jobs[id];
    j.session_index = session_index;
    j.generation = sess->generation;
    j.deadline_tsc = now + w->cfg.deadline_cycles;
    j.tier = 0;
    j.slot = 0;
    j.done = 0;
    for (uint16_t p = 0; p < w->sh->nb_ports; ++p)
        build_template(j.tmpl[p], rtp, rtp_len, w->sh->ports[p].mac, w->sh->ports[p].ip_be, sess->udp_port_be);
    w->order[(w->order_head + w->order_count) % max_jobs] = id;
    ++w->order_count;
}

void finish_front(worker* w) noexcept {
    const uint32_t id = w->order[w->order_head];
    w->order_head = (w->order_head + 1) % max_jobs;
    --w->order_count;
    w->free_ids[w->nb_free++] = id;
}

void rotate_front(worker* w) noexcept {
    const uint32_t id = w->order[w->order_head];
    w->order_head = (w->order_head + 1) % max_jobs;
    w->order[(w->order_head + w->order_count - 1) % max_jobs] = id;
}

// The listeners this job did not reach: counted per tier as misses.
void abandon(worker* w, const dp_session* sess, const fanout_job& j) noexcept {
    const int shard = w->cfg.fanout_shard;
    uint64_t total = 0;
    for (uint32_t t = j.tier; t < max_tiers; ++t) {
        const dp_listener_list* l = sess->lists[shard][t];
        if (l == nullptr) continue;
        uint64_t missed = 0;
        for (uint32_t slot = (t == j.tier ? j.slot : 0); slot < l->nb_slots; ++slot) {
            const dp_listener& r = l->chunks[slot / listener_chunk_size]->l[slot % listener_chunk_size];
            missed += r.flags & listener_flag_live;
        }
        w->c->tier_misses[t] += missed;
        total += missed;
    }
    w->c->drops[static_cast<unsigned>(drop_reason::deadline)] += total;
}


// Build and stage up to `budget` replicas of the front job. Returns the
// number of slots visited; sets *finished when the job has no slots left.
// Append built replicas to a port's TX buffer in one go (single-port path).
inline void tx_stage_bulk(worker* w, uint16_t port, rte_mbuf** m, uint32_t n) noexcept {
    tx_buffer& b = w->tx[port];
    if (b.n == 0 && n == w->cfg.burst) [[likely]] {
        // A whole burst with nothing staged before it: hand it to the NIC as is.
        uint16_t sent = rte_eth_tx_burst(w->sh->ethdev[port], w->cfg.tx_queue, m, static_cast<uint16_t>(n));
        for (unsigned tries = 0; sent < n && tries < 64; ++tries) {
            rte_pause();
            sent += rte_eth_tx_burst(w->sh->ethdev[port], w->cfg.tx_queue, m + sent, static_cast<uint16_t>(n - sent));
        }
        w->c->replicas_out += sent;
        w->c->port_tx[port] += sent;
        if (sent < n) {
            w->c->drops[static_cast<unsigned>(drop_reason::tx_full)] += n - sent;
            rte_pktmbuf_free_bulk(m + sent, n - sent);
        }
        return;
    }
    while (n > 0) {
        const uint32_t room = w->cfg.burst - b.n;
        const uint32_t take = std::min(room, n);
        for (uint32_t i = 0; i < take; ++i) b.pkts[b.n + i] = m[i];
        b.n = static_cast<uint16_t>(b.n + take);
        m += take;
        n -= take;
        if (b.n == w->cfg.burst) tx_flush_port(w, port);
    }
}

// SinglePort: every next hop is on port 0 (the common shape, chosen once at
// start-up): the template is fixed and a whole group goes to TX at once.
// Measured with callgrind on the inline harness (20 packets x 10 k
// listeners): 113 -> see README "Performance" for the per-replica figures.
template <bool SinglePort>
uint32_t run_slice(worker* w, const dp_snapshot& s, uint32_t budget, bool* finished) noexcept {
    fanout_job& j = w->jobs[w->order[w->order_head]];
    *finished = false;
    if (j.session_index >= s.nb_sessions || s.sessions[j.session_index]->generation != j.generation) {
        *finished = true;     // session ended or replaced: nothing left to serve
        return 0;
    }
    const dp_session* sess = s.sessions[j.session_index];
    const int shard = w->cfg.fanout_shard;
    const uint64_t now = rte_rdtsc();
    if (now > j.deadline_tsc || (w->cfg.replica_budget != 0 && j.done >= w->cfg.replica_budget)) {
        abandon(w, sess, j);
        *finished = true;
        return 0;
    }
    const dp_neigh* neigh = w->sh->neigh;
    lcore_counters* c = w->c;
    uint32_t visited = 0;
    while (visited < budget && j.tier < max_tiers) {
        const dp_listener_list* l = sess->lists[shard][j.tier];
        if (l == nullptr || j.slot >= l->nb_slots) {
            ++j.tier;
            j.slot = 0;
            continue;
        }
        uint32_t end = std::min(l->nb_slots, j.slot + (budget - visited));
        if (w->cfg.replica_budget != 0)
            end = std::min(end, j.slot + (w->cfg.replica_budget - j.done));
        if (end == j.slot) break;   // budget reached: abandoned on the next slice
        while (j.slot < end) {
            const dp_listener_chunk* chunk = l->chunks[j.slot / listener_chunk_size];
            const uint32_t base = j.slot & ~(listener_chunk_size - 1);
            const uint32_t stop = std::min(end, base + listener_chunk_size);
            // Groups of one burst: mbufs for the group in one mempool call,
            // unused ones (free slots, unresolved next hops) go back in one.
            for (uint32_t i = j.slot - base; i < stop - base;) {
                const uint32_t n = std::min<uint32_t>(w->cfg.burst, stop - base - i);
                rte_mbuf* mb[max_burst];
                if (rte_mempool_get_bulk(w->cfg.pool, reinterpret_cast<void**>(mb), n) != 0) [[unlikely]] {
                    for (const uint32_t e = i + n; i < e; ++i)
                        if (chunk->l[i].flags & listener_flag_live) {
                            ++c->drops[static_cast<unsigned>(drop_reason::no_mbuf)];
                            ++c->tier_misses[j.tier];
                        }
                    continue;
                }
                uint32_t k = 0;
                uint64_t bytes = 0;
                // No data prefetch: mbufs come back LIFO from the mempool
                // cache, still warm; prefetching the group cost 0.88 -> 0.98
                // of txonly in fanout_harness (1 M listeners).
                for (const uint32_t e = i + n; i < e; ++i) {
                    const dp_listener& r = chunk->l[i];
                    if (!(r.flags & listener_flag_live)) [[unlikely]]
                        continue;
                    const dp_neigh& nb = neigh[r.neigh_idx];
                    const uint64_t mw = nb.mac_word.load(std::memory_order_relaxed);
                    if (!(mw & neigh_valid)) [[unlikely]] {
                        ++c->drops[static_cast<unsigned>(drop_reason::neigh_unresolved)];
                        continue;
                    }
                    rte_mbuf* m = mb[k++];
                    if constexpr (SinglePort) {
                        build_replica_copy(m, j.tmpl[0], r, mw, w->sh->ethdev[0]);
                    } else {
                        const uint16_t port = nb.port_id;
                        const egress_template& t = j.tmpl[port];
                        build_replica_copy(m, t, r, mw, w->sh->ethdev[port]);
                        bytes += t.len;
                        tx_stage(w, port, m);
                    }
                }
                if constexpr (SinglePort) {
                    bytes = uint64_t{k} * j.tmpl[0].len;
                    tx_stage_bulk(w, 0, mb, k);
                }
                if (k < n) [[unlikely]]
                    rte_mempool_put_bulk(w->cfg.pool, reinterpret_cast<void**>(mb + k), n - k);
                j.done += k;
                c->tx_bytes += bytes;
            }
            visited += stop - j.slot;
            j.slot = stop;
        }
    }
    if (j.tier >= max_tiers) *finished = true;
    return visited;
}

// Serve the jobs round robin, one slice each, until `slices` slices ran or no
// job is left.
unsigned run_jobs(worker* w, const dp_snapshot& s, unsigned slices) noexcept {
    unsigned work = 0;
    while (w->order_count > 0 && slices-- > 0) {
        bool finished = false;
        work += w->sh->nb_ports == 1 ? run_slice<true>(w, s, w->cfg.slice, &finished)
                                     : run_slice<false>(w, s, w->cfg.slice, &finished);
        if (finished)
            finish_front(w);
        else if (w->order_count > 1)
            rotate_front(w);
        ++work;
    }
    return work;
}

// ---------------------------------------------------------------- ARP / ICMP

void learn_neighbour(worker* w, const dp_snapshot& s, uint32_t ip_be, const uint8_t* mac,
                     uint16_t port) noexcept {
    const int64_t idx = find_neigh(s, ip_be);
    if (idx < 0 || static_cast<uint32_t>(idx) >= w->sh->nb_neigh) return;
    dp_neigh& n = w->sh->neigh[idx];
    if (n.port_id != port) return;
    if (n.want.load(std::memory_order_relaxed) & neigh_static) return;   // pinned by the profile
    uint64_t word = 0;
    std::memcpy(&word, mac, 6);
    word |= neigh_valid;
    n.mac_word.store(word, std::memory_order_relaxed);
}

// Turn an ARP request for our address into the reply, in place (same size as
// the request: never an amplifier).
bool handle_arp(worker* w, const dp_snapshot* s, rte_mbuf* m, uint16_t port,
                const parse_result& pr, uint64_t now) noexcept {
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* a = d + pr.l3_off;
    const uint16_t op = load_be16(a + 6);
    if (s != nullptr) learn_neighbour(w, *s, pr.src_ip_be, a + 8, port);
    if (op != 1) return false;
    if (!take_token(w->arp_tb, now, w->hz)) {
        ++w->c->drops[static_cast<unsigned>(drop_reason::arp_rate)];
        return false;
    }
    const uint8_t* mine = w->sh->ports[port].mac;
    uint8_t sender_mac[6];
    uint8_t sender_ip[4];
    std::memcpy(sender_mac, a + 8, 6);
    std::memcpy(sender_ip, a + 14, 4);
    std::memcpy(d, sender_mac, 6);
    std::memcpy(d + 6, mine, 6);
    store_be16(a + 6, 2);
    std::memcpy(a + 8, mine, 6);
    std::memcpy(a + 14, &w->sh->ports[port].ip_be, 4);
    std::memcpy(a + 18, sender_mac, 6);
    std::memcpy(a + 24, sender_ip, 4);
    ++w->c->arp_replies;
    tx_control(w, port, m);
    return true;
}

bool handle_icmp(worker* w, rte_mbuf* m, uint16_t port, const parse_result& pr,
                 uint64_t now) noexcept {
    if (!take_token(w->icmp_tb, now, w->hz)) {
        ++w->c->drops[static_cast<unsigned>(drop_reason::icmp_rate)];
        return false;
    }
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t tmp[6];
    std::memcpy(tmp, d, 6);
    std::memcpy(d, d + 6, 6);
    std::memcpy(d + 6, tmp, 6);
    uint8_t* ip = d + pr.l3_off;
    uint8_t src[4];
    std::memcpy(src, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, src, 4);
    ip[8] = 64;
    store_be16(ip + 10, 0);
    store_be16(ip + 10, static_cast<uint16_t>(~csum_fold(csum_add(0, ip, ipv4_hdr_len))));
    uint8_t* icmp = d + pr.l4_off;
    icmp[0] = 0;   // echo reply
    store_be16(icmp + 2, 0);
    store_be16(icmp + 2, static_cast<uint16_t>(~csum_fold(csum_add(0, icmp, pr.icmp_len))));
    // Drop Ethernet padding beyond the IP datagram: the reply is never larger.
    const uint32_t len = pr.l3_off + load_be16(ip + 2);
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - len));
    ++w->c->icmp_replies;
    tx_control(w, port, m);
    return true;
}

void send_arp_requests(worker* w, uint64_t now) noexcept {
    // Every 100 ms look at up to 256 neighbour entries and ask for those not
    // resolved yet (or flagged by the control plane): at most 2560 requests/s.
    if (now - w->last_arp_tsc < w->hz / 10) return;
    w->last_arp_tsc = now;
    const uint32_t n = w->sh->nb_neigh;
    if (n == 0) return;
    for (uint32_t k = 0; k < std::min<uint32_t>(256, n); ++k) {
        dp_neigh& e = w->sh->neigh[w->arp_scan_pos];
        w->arp_scan_pos = (w->arp_scan_pos + 1) % n;
        if (e.ip_be == 0) continue;
        const bool valid = e.mac_word.load(std::memory_order_relaxed) & neigh_valid;
        const uint16_t want = e.want.load(std::memory_order_relaxed);
        if (want & neigh_static) continue;
        if (valid && !(want & neigh_want)) continue;
        e.want.store(0, std::memory_order_relaxed);
        rte_mbuf* m = rte_pktmbuf_alloc(w->cfg.pool);
        if (m == nullptr) {
            ++w->c->drops[static_cast<unsigned>(drop_reason::no_mbuf)];
            return;
        }
        const uint16_t port = e.port_id;
        auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 60));
        if (d == nullptr) {
            rte_pktmbuf_free(m);
            return;
        }
        std::memset(d, 0, 60);
        std::memset(d, 0xff, 6);
        std::memcpy(d + 6, w->sh->ports[port].mac, 6);
        store_be16(d + 12, 0x0806);
        uint8_t* a = d + 14;
        store_be16(a, 1);
        store_be16(a + 2, 0x0800);
        a[4] = 6;
        a[5] = 4;
        store_be16(a + 6, 1);
        std::memcpy(a + 8, w->sh->ports[port].mac, 6);
        std::memcpy(a + 14, &w->sh->ports[port].ip_be, 4);
        std::memcpy(a + 24, &e.ip_be, 4);
        ++w->c->arp_requests;
        tx_control(w, port, m);
    }
}

// ---------------------------------------------------------------- ingress

// Dropped RX mbufs go back in one mempool put when they are plain: our pool,
// refcount 1, one segment, direct. A received one-segment mbuf has next NULL
// (the invariant every PMD keeps), so unlike rte_pktmbuf_free_bulk this never
// touches the mbuf's second cache line. Anything else takes the general path.
// Measured: drop harness 31.8 -> see README "Performance".
void free_rx_bulk(rte_mempool* pool, rte_mbuf** m, unsigned n) noexcept {
    void* plain[max_burst];
    unsigned np = 0;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* b = m[i];
        if (b->pool == pool && rte_mbuf_refcnt_read(b) == 1 && b->nb_segs == 1 &&
            (b->ol_flags & (RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL)) == 0) [[likely]]
            plain[np++] = b;
        else
            rte_pktmbuf_free(b);
    }
    if (np > 0) rte_mempool_put_bulk(pool, plain, np);
}

// UDP checksum of a speaker packet: the NIC's verdict when it gave one, else
// checked in software (only packets of registered flows get here, a few
// hundred per second per speaker). We re-checksum what we forward, so a
// corrupted payload must be stopped here or it leaves with a valid checksum.
bool udp_checksum_ok(const rte_mbuf* m, const uint8_t* d, const parse_result& pr) noexcept {
    const uint64_t f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    if (f == RTE_MBUF_F_RX_L4_CKSUM_GOOD) return true;
    if (f == RTE_MBUF_F_RX_L4_CKSUM_BAD) return false;
    const uint8_t* udp = d + pr.l4_off;
    if (udp[6] == 0 && udp[7] == 0) return true;   // no checksum (allowed over IPv4)
    const uint16_t udp_len = static_cast<uint16_t>(8 + pr.rtp_len);
    uint32_t sum = csum_add(0, d + pr.l3_off + 12, 8);   // source and destination addresses
    sum += 17 + udp_len;
    sum = csum_add(sum, udp, udp_len);
    return csum_fold(sum) == 0xffff;
}

// Token bucket per speaker, in packets and bytes. Only speaker packets that
// passed validation and flow lookup get here: a few hundred per second per
// speaker, so the division is not on anyone's budget.
bool police(worker* w, const dp_flow& f, uint16_t bytes, uint64_t now) noexcept {
    if (f.rate_pps == 0 || f.speaker_index >= w->sh->nb_policers) return true;
    dp_policer& b = w->sh->policers[f.speaker_index];
    const uint64_t pkt_cap = uint64_t{f.rate_pps} * policer_scale * policer_burst_ms / 1000;
    const uint64_t byte_cap = uint64_t{f.rate_bytes} * policer_scale * policer_burst_ms / 1000;
    if (b.last_tsc == 0) {
        b.pkt_tokens = pkt_cap;
        b.byte_tokens = byte_cap;
        b.last_tsc = now;
    }
    const uint64_t elapsed = now - b.last_tsc;
    if (elapsed > 0) {
        const uint64_t us = elapsed * 1000000 / w->hz;
        if (us > 0) {
            b.pkt_tokens = std::min(pkt_cap, b.pkt_tokens + us * f.rate_pps * policer_scale / 1000000);
            b.byte_tokens = std::min(byte_cap, b.byte_tokens + us * f.rate_bytes * policer_scale / 1000000);
            b.last_tsc += us * w->hz / 1000000;
        }
    }
    const uint64_t need_b = uint64_t{bytes} * policer_scale;
    if (b.pkt_tokens < policer_scale || b.byte_tokens < need_b) return false;
    b.pkt_tokens -= policer_scale;
    b.byte_tokens -= need_b;
    return true;
}

unsigned rx_port(worker* w, const dp_snapshot* s, uint16_t port, uint64_t now) noexcept {
    rte_mbuf* pkts[max_burst];
    const uint16_t nb_rx = rte_eth_rx_burst(w->sh->ethdev[port], w->cfg.rx_queue, pkts, w->cfg.burst);
    if (nb_rx == 0) return 0;
    lcore_counters* c = w->c;
    c->rx_packets += nb_rx;
    c->port_rx[port] += nb_rx;
    rte_mbuf* to_free[max_burst];
    unsigned nb_free = 0;
    const port_identity& id = w->sh->ports[port];
    // No software prefetch of packet headers: on this machine (net_null, warm
    // mempool cache) prefetching 1 or 8 ahead measured slower than none
    // (drop harness 39.5 -> see README); a NIC with DDIO places received
    // headers in the cache as well.
    for (uint16_t i = 0; i < nb_rx; ++i) {
        rte_mbuf* m = pkts[i];
        c->rx_bytes += m->pkt_len;
        // Multi-segment frames are never audio we accept: validate the first
        // segment only and let the length checks drop what does not fit.
        const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
        // First stage: unknown flows go by their key alone (see parse.h).
        uint64_t key;
        if (s != nullptr && ingress_flow_key(d, m->data_len, id, &key) && find_flow(*s, key) == nullptr) {
            ++c->drops[static_cast<unsigned>(drop_reason::unknown_flow)];
            to_free[nb_free++] = m;
            continue;
        }
        const parse_result pr = parse_packet(d, m->data_len, id);
        bool consumed = false;
        switch (pr.kind) {
        case pkt_kind::rtp: {
            const dp_flow* f = s ? find_flow(*s, flow_key(pr.src_ip_be, pr.src_port_be, pr.dst_port_be))
                                 : nullptr;
            if (f == nullptr) {
                ++c->drops[static_cast<unsigned>(drop_reason::unknown_flow)];
                break;
            }
            if (f->has_ssrc && f->ssrc_be != pr.ssrc_be) {
                ++c->drops[static_cast<unsigned>(drop_reason::ssrc_mismatch)];
                break;
            }
            if (!udp_checksum_ok(m, d, pr)) {
                ++c->drops[static_cast<unsigned>(drop_reason::udp_checksum)];
                break;
            }
            if (!police(w, *f, pr.rtp_len, now)) {
                ++c->drops[static_cast<unsigned>(drop_reason::policed)];
                break;
            }
            ++c->rtp_in;
            // From here on the mbuf is a speaker-packet message: RTP only.
            rte_pktmbuf_adj(m, pr.rtp_off);
            rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - pr.rtp_len));
            set_message_session(m, f->session_index);
            const dp_session* sess = s->sessions[f->session_index];
            if (sess->mode == session_mode_mix) {
                // The mixer owns it now; its output comes back as messages.
                if (w->sh->mixer_ring == nullptr || rte_ring_enqueue(w->sh->mixer_ring, m) != 0) {
                    ++c->drops[static_cast<unsigned>(drop_reason::ring_full)];
                    break;
                }
                consumed = true;
                break;
            }
            if (w->cfg.do_fanout)
                start_job(w, *s, f->session_index, rte_pktmbuf_mtod(m, const uint8_t*), pr.rtp_len, now);
            rte_mbuf_refcnt_update(m, 1);   // publish_message consumes one reference
            publish_message(*w->sh, *s, m, sess->record != 0, c, w->cfg.do_fanout ? w->cfg.fanout_shard : -1);
            break;
        }
        case pkt_kind::arp:
            consumed = handle_arp(w, s, m, port, pr, now);
            break;
        case pkt_kind::icmp_echo:
            consumed = handle_icmp(w, m, port, pr, now);
            break;
        case pkt_kind::drop:
            ++c->drops[static_cast<unsigned>(pr.reason)];
            break;
        }
        if (!consumed) to_free[nb_free++] = m;
    }
    if (nb_free > 0) free_rx_bulk(w->cfg.pool, to_free, nb_free);
    return nb_rx;
}

// Speaker-packet messages from an ingress lcore or the mixer.
unsigned drain_in_ring(worker* w, const dp_snapshot* s, uint64_t now) noexcept {
    if (w->cfg.in_ring == nullptr) return 0;
    void* objs[max_burst];
    const unsigned n = rte_ring_sc_dequeue_burst(w->cfg.in_ring, objs, w->cfg.burst, nullptr);
    for (unsigned i = 0; s != nullptr && i < n; ++i) {
        const rte_mbuf* m = static_cast<const rte_mbuf*>(objs[i]);
        start_job(w, *s, message_session(m), rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, now);
    }
    if (n > 0) rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
    return n;
}

}  // namespace

bool publish_message(dp_shared& sh, const dp_snapshot& s, rte_mbuf* m, bool to_recorder,
                     lcore_counters* c, int skip_shard) noexcept {
    bool ok = true;
    const uint32_t si = message_session(m);
    if (si < s.nb_sessions) {
        const dp_session* sess = s.sessions[si];
        for (uint32_t shard = 0; shard < s.nb_fanout_shards && shard < sh.nb_shards; ++shard) {
            if (static_cast<int>(shard) == skip_shard || !has_listeners(*sess, shard)) continue;
            rte_ring* r = sh.shard_rings[shard];
            if (r == nullptr) continue;
            rte_mbuf_refcnt_update(m, 1);
            if (rte_ring_enqueue(r, m) != 0) {
                rte_mbuf_refcnt_update(m, -1);
                ++c->drops[static_cast<unsigned>(drop_reason::ring_full)];
                ok = false;
            }
        }
    }
    if (to_recorder && sh.record_ring != nullptr) {
        rte_mbuf_refcnt_update(m, 1);
        if (rte_ring_enqueue(sh.record_ring, m) != 0) {
            rte_mbuf_refcnt_update(m, -1);
            ++c->drops[static_cast<unsigned>(drop_reason::ring_full)];
            ok = false;
        }
    }
    rte_pktmbuf_free(m);
    return ok;
}

worker* worker_create(const worker_config& cfg) {
    auto* w = static_cast<worker*>(rte_zmalloc_socket("stentor_worker", sizeof(worker), cache_line,
                                                      static_cast<int>(rte_lcore_to_socket_id(cfg.lcore_id))));
    if (w == nullptr) return nullptr;
    w->cfg = cfg;
    if (w->cfg.burst == 0 || w->cfg.burst > max_burst) w->cfg.burst = 32;
    if (w->cfg.slice == 0) w->cfg.slice = 1024;
    w->c = cfg.counters;
    w->sh = cfg.shared;
    w->hz = rte_get_tsc_hz();
    w->tmpl_pool = static_cast<egress_template*>(
        rte_zmalloc("stentor_tmpl", sizeof(egress_template) * max_jobs * max_ports, cache_line));
    if (w->tmpl_pool == nullptr) {
        rte_free(w);
        return nullptr;
    }
    for (uint32_t i = 0; i < max_jobs; ++i) {
        w->free_ids[i] = max_jobs - 1 - i;
        w->jobs[i].tmpl = w->tmpl_pool + i * max_ports;
    }
    w->nb_free = max_jobs;
    const uint64_t now = rte_rdtsc();
    w->arp_tb = {reply_burst, now};
    w->icmp_tb = {reply_burst, now};
    w->last_drain_tsc = now;
    return w;
}

void worker_destroy(worker* w) {
    if (w == nullptr) return;
    flush_all(w);
    // Jobs hold no mbufs (templates are copies).
    if (w->cfg.in_ring != nullptr) {
        void* obj;
        while (rte_ring_sc_dequeue(w->cfg.in_ring, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
    }
    rte_free(w->tmpl_pool);
    rte_free(w);
}

unsigned worker_poll(worker* w) noexcept {
    const uint64_t start = rte_rdtsc();
    const dp_snapshot* s = w->sh->snapshot.load(std::memory_order_acquire);
    unsigned work = 0;
    if (w->cfg.do_rx)
        for (uint16_t p = 0; p < w->sh->nb_ports; ++p) work += rx_port(w, s, p, start);
    if (w->cfg.do_fanout) {
        work += drain_in_ring(w, s, start);
        if (s != nullptr) work += run_jobs(w, *s, 16);
    }
    if (w->cfg.arp_owner) send_arp_requests(w, start);
    const uint64_t end = rte_rdtsc();
    if (end - w->last_drain_tsc >= w->cfg.drain_cycles) {
        flush_all(w);
        w->last_drain_tsc = end;
    }
    if (w->cfg.shared->rcu != nullptr) rte_rcu_qsbr_quiescent(w->cfg.shared->rcu, w->cfg.thread_id);
    if (work > 0)
        w->c->busy_cycles += end - start;
    else
        w->c->idle_cycles += end - start;
    return work;
}

void worker_flush(worker* w) noexcept {
    flush_all(w);
}

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
    while (!cfg->shared->stop.load(std::memory_order_relaxed)) worker_poll(w);
    worker_destroy(w);
    if (rcu != nullptr) {
        rte_rcu_qsbr_thread_offline(rcu, cfg->thread_id);
        rte_rcu_qsbr_thread_unregister(rcu, cfg->thread_id);
    }
    return 0;
}

}  // namespace stentor::dp
