// How a service takes speaker-packet messages (stentor/dp_shared.h) off its
// ring: bursts of 64 until a short burst says the ring is empty, each message
// read by `take` and then freed in bulk (the service only ever reads a
// message: its mbuf may be shared with the fan-out shards).
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

namespace stentor::svc {

inline constexpr unsigned message_burst = 64;

// take(rte_mbuf*) must not free or keep the mbuf. Returns the messages taken.
template <class Take>
unsigned drain_messages(rte_ring* ring, Take&& take) {
    if (ring == nullptr) return 0;
    unsigned work = 0;
    void* objs[message_burst];
    unsigned nb;
    do {
        nb = rte_ring_dequeue_burst(ring, objs, message_burst, nullptr);
        for (unsigned i = 0; i < nb; ++i) take(static_cast<rte_mbuf*>(objs[i]));
        if (nb > 0) rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), nb);
        work += nb;
    } while (nb == message_burst);
    return work;
}

}  // namespace stentor::svc
