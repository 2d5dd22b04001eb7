// rte_pcapng is experimental in DPDK 22.11 (stable since 23.11); this file
// is the data plane's only user.
#define ALLOW_EXPERIMENTAL_API 1

#include "capture.h"

#include <rte_cycles.h>
#include <rte_pcapng.h>
#include <rte_ring.h>

namespace stentor::dp {

void capture_burst(worker* w, uint16_t port, rte_mbuf* const* pkts, uint16_t n, capture_dir dir,
                   uint16_t queue) noexcept {
    const dp_capture& cap = *w->cap;
    capture_lcore_stats& st = cap.lcores[w->cfg.thread_id];
    const uint16_t udp_dst_be = dir == capture_dir::rx ? cap.udp_dst_be : 0;
    const uint32_t sample = cap.sample == 0 ? 1 : cap.sample;
    const uint64_t now = rte_rdtsc();
    // Sampling counts from each capture's start, per lcore.
    if (w->cap_id != cap.id) {
        w->cap_id = cap.id;
        w->cap_seen = 0;
    }
    const auto pdir = dir == capture_dir::rx ? RTE_PCAPNG_DIRECTION_IN : RTE_PCAPNG_DIRECTION_OUT;
    rte_mbuf* copies[max_burst];
    unsigned nb = 0;
    const auto hand_over = [&] {
        const unsigned put = rte_ring_enqueue_burst(cap.ring, reinterpret_cast<void* const*>(copies), nb, nullptr);
        st.copied += put;
        if (put < nb) {
            st.ring_full += nb - put;
            rte_pktmbuf_free_bulk(copies + put, nb - put);
        }
        nb = 0;
    };
    for (uint16_t i = 0; i < n; ++i) {
        const rte_mbuf* m = pkts[i];
        if (udp_dst_be != 0 && !capture_udp_dst_match(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, udp_dst_be))
            continue;
        // 1 in `sample`, counted per lcore: the first matched packet is kept.
        ++st.matched;
        if (sample > 1 && w->cap_seen++ % sample != 0) {
            ++st.sampled_out;
            continue;
        }
        rte_mbuf* c = rte_pcapng_copy(w->sh->ethdev[port], queue, m, cap.pool, cap.snaplen, now, pdir);
        if (c == nullptr) {
            ++st.no_mbuf;
            continue;
        }
        c->hash.usr = cap.id;
        copies[nb++] = c;
        if (nb == max_burst) hand_over();
    }
    if (nb > 0) hand_over();
}

}  // namespace stentor::dp
