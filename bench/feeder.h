// Speaker-packet messages fed to a fan-out lcore the way an RX lcore hands
// them over (dataplane/ingress.cc -> publish_message): one RTP packet per
// mbuf, tagged with (session index, generation), on the shard's ring. Here in
// bursts of up to 32, as an RX queue delivers them, round robin over a set of
// sessions.
//
// Why bursts: the first fan-out harness handed one packet at a time and slept
// between checks; a 1 000-listener packet is ~17 us of work, so the fan-out
// lcore idled between packets and the harness measured its own feeding
// (docs/performance.md, "Sessions of every size"). A relay's RX lcore takes
// up to a burst of speaker packets per poll; the feeder keeps the ring stocked
// the same way and never reads the worker's counters while it feeds, except
// to bound the work queued ahead (at most every half millisecond).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "stentor/dp_shared.h"
#include "stentor/dp_snapshot.h"

namespace stentor::bench {

struct session_ref {
    uint32_t index;
    uint64_t generation;
    uint32_t listeners;   // on the fed shard: the replicas one message makes
};

// The snapshot's (index, generation) of each session id, in the order given.
inline std::vector<session_ref> resolve_sessions(const dp::dp_shared& sh, const std::vector<uint32_t>& ids) {
    std::vector<session_ref> out;
    const dp::dp_snapshot* s = sh.snapshot.load(std::memory_order_acquire);
    if (s == nullptr) return out;
    for (uint32_t id : ids)
        for (uint32_t i = 0; i < s->nb_sessions; ++i)
            if (s->sessions[i]->generation != 0 && s->sessions[i]->id == id) {
                out.push_back({i, s->sessions[i]->generation, s->sessions[i]->nb_listeners});
                break;
            }
    return out;
}

class message_feeder {
public:
    static constexpr unsigned max_feed = 64;

    message_feeder(rte_mempool* pool, rte_ring* ring, std::vector<uint8_t> rtp)
        : _pool(pool), _ring(ring), _rtp(std::move(rtp)) {}

    void set_sessions(std::vector<session_ref> s) {
        _sessions = std::move(s);
        _next = 0;
        _per_round = 0;
        for (const auto& r : _sessions) _per_round += r.listeners;
    }

    // Replicas one message makes on average over the round robin.
    double replicas_per_message() const {
        return _sessions.empty() ? 0.0 : static_cast<double>(_per_round) / static_cast<double>(_sessions.size());
    }

    // Builds up to n (<= max_feed) messages and enqueues them in one burst;
    // returns how many the ring took (the others go back to the pool).
    unsigned feed(unsigned n) noexcept {
        if (_sessions.empty()) return 0;
        n = std::min(n, max_feed);
        rte_mbuf* m[max_feed];
        if (rte_pktmbuf_alloc_bulk(_pool, m, n) != 0) return 0;
        const uint16_t len = static_cast<uint16_t>(_rtp.size());
        for (unsigned i = 0; i < n; ++i) {
            auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m[i], len));
            std::memcpy(d, _rtp.data(), len);
            const session_ref& s = _sessions[_next];
            _next = _next + 1 == _sessions.size() ? 0 : _next + 1;
            dp::set_message_session(m[i], s.index, s.generation);
        }
        const unsigned ok = rte_ring_enqueue_burst(_ring, reinterpret_cast<void**>(m), n, nullptr);
        if (ok < n) rte_pktmbuf_free_bulk(m + ok, n - ok);
        _fed += ok;
        return ok;
    }

    uint64_t fed() const noexcept { return _fed; }

    // Feed for `seconds`, keeping at most `ahead` replicas queued (messages
    // in the ring and jobs not done) and the ring below `ring_depth`
    // messages. `done()` reads the replicas the worker has sent; it is called
    // only when the estimate says the queue may be short, and at most every
    // 500 us. Returns the messages fed.
    template <class Done>
    uint64_t run(double seconds, uint64_t ahead, unsigned ring_depth, Done&& done) {
        const uint64_t hz = rte_get_tsc_hz();
        const uint64_t t0 = rte_rdtsc();
        const uint64_t end = t0 + static_cast<uint64_t>(seconds * static_cast<double>(hz));
        const uint64_t recheck = hz / 2000;
        const double per = std::max(1.0, replicas_per_message());
        uint64_t fed0 = _fed;
        uint64_t base = done();
        uint64_t queued_from = _fed;   // replicas fed since `base` was read ~ (fed - queued_from) * per
        uint64_t last_read = t0;
        for (uint64_t now = t0; now < end; now = rte_rdtsc()) {
            const double in_flight = static_cast<double>(_fed - queued_from) * per;
            if (in_flight > static_cast<double>(ahead)) {
                if (now - last_read < recheck) {
                    for (int i = 0; i < 64; ++i) rte_pause();
                    continue;
                }
                const uint64_t d = done();
                // Replicas the worker sent since the last read: that much of
                // the queue is gone.
                const uint64_t gone_msgs = static_cast<uint64_t>(static_cast<double>(d - base) / per);
                queued_from = std::min(_fed, queued_from + gone_msgs);
                base = d;
                last_read = now;
                continue;
            }
            const unsigned used = rte_ring_count(_ring);
            if (used + 32 > ring_depth) {
                for (int i = 0; i < 64; ++i) rte_pause();
                continue;
            }
            // A burst, but no more than the queue is short of.
            const double room = (static_cast<double>(ahead) - in_flight) / per;
            feed(static_cast<unsigned>(std::clamp(room, 1.0, 32.0)));
        }
        return _fed - fed0;
    }

private:
    rte_mempool* _pool;
    rte_ring* _ring;
    std::vector<uint8_t> _rtp;
    std::vector<session_ref> _sessions;
    size_t _next = 0;
    uint64_t _per_round = 0;
    uint64_t _fed = 0;
};

}  // namespace stentor::bench
