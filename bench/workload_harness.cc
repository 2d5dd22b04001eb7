// workload_harness: the workload a relay really carries, on one fan-out core,
// beside dpdk-testpmd txonly and the kernel peers a user would pick instead
// (issue 15). Parts, each in its own process (its own EAL), the testpmd
// reference run on the same lcore before each:
//
//  sizes    sessions of 10, 100, 1 000, 10 000 listeners (several of each,
//           round robin), speaker packets handed to the fan-out lcore as
//           messages in bursts of 32 by the main lcore (bench/feeder.h), as
//           fast as the lcore takes them: replicas/s per size.
//  kernel   the same 1 000-client fan-out by the Linux kernel on the same
//           core (taskset): bench/kernel_fanout (sendmmsg, batches of 1024,
//           one socket, prebuilt iovecs) and GStreamer's multiudpsink fed by
//           fakesrc, into a network namespace whose route ends in a veth whose
//           peer is down (every datagram crosses UDP, IP, routing, the
//           neighbour and the device layer and is dropped by the driver).
//  mix      10 000 sessions whose sizes follow a Zipf law (2 M listeners), 1
//           to 3 speakers each taking turns, one talker per session at 50
//           packets/s (20 ms Opus frames): the speaker packets arrive on the
//           worker's own RX queue at their scheduled times and go through the
//           real ingress (validation, flow lookup, RTP tracking, policer)
//           before the fan-out, while the main lcore joins and removes
//           listeners through relay_state's actions and publishes every
//           100 ms. Delivered replicas/s (the offered load is above one
//           core's, so this is the core's capacity under this mix).
//  latency  the same mix thinned to 80 % of that capacity, plus 64 small
//           sessions (10 listeners, 50 packets/s) whose packets carry their
//           arrival TSC: arrival (scheduled time on the RX queue) to the TX
//           burst of each replica, p50 / p99 / p99.9; split into the wait
//           in the RX queue (latency_rx_wait) and the relay's share, from
//           the rx_burst to the TX burst (latency_after_rx); the relay's
//           share of the replicas at or above the p99 (latency_tail); and
//           the RX wait of a random arrival computed from every gap between
//           two RX polls (latency_poll_wait; WORKLOAD_GAPS=file writes the
//           gaps of 2 us or more, in us, one per line).
//  ipv6     bench/fanout_harness --family ipv6: one session of 1 M IPv6
//           listeners beside txonly sending a frame of the IPv6 replica's
//           length (txonly builds IPv4 only), as a child process.
//
// How packets reach the RX queue (mix, latency): net_null's RX queue
// (no-rx=1) hands out nothing; an ethdev RX callback (rte_eth_add_rx_callback)
// takes an mbuf from the relay's pool for each speaker frame that is due,
// as a NIC refills one descriptor per packet received, and writes the frame
// into it (with the checksum flags a NIC sets). It runs on the worker's
// lcore, so its cost is charged to Stentor; the frame's checksums are the
// speaker's work, not the NIC's, so they come from the template's sums
// plus the fields that change (checked against full sums at start-up). A
// TX callback reads the probes' stamps.
//
// The last line:
//   RESULT ipv6_ratio=<x> small_session_ratio=<y> zipf_ratio=<z> kernel_sendmmsg_ratio=<k> latency_p99_us=<l>
// ipv6_ratio comes from bench/fanout_harness --family ipv6 (1 M IPv6
// listeners beside txonly with a frame of the same length), run as a child.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "config.h"
#include "drivers.h"
#include "feeder.h"
#include "gaps.h"
#include "reference.h"
#include "relay.h"
#include "startup.h"
#include "stentor/dp_counters.h"

namespace {

using namespace stentor;
using clk = std::chrono::steady_clock;
using bench::stats;
using bench::summarise;

constexpr unsigned opus_payload = 80;
constexpr unsigned rtp_len = 12 + opus_payload;
constexpr unsigned frame_len = 14 + 20 + 8 + rtp_len;   // 134
// A probe's frame is 8 bytes longer: after its Opus bytes, the TSC of the
// rx_burst that handed it to the relay (so a replica tells how long it
// waited in the "NIC" and how long in the relay). The TX callback tells a
// probe's replicas by their length, without reading every replica's bytes
// (tx_probe).
constexpr unsigned probe_pad = 8;
constexpr unsigned worker_lcore = 1;
constexpr uint32_t relay_ip = 0xc6120001;               // 198.18.0.1/24
constexpr uint32_t gateway_ip = 0xc61200fe;


// SIGINT/SIGTERM in the parent: the children get it too and end; the parent
// finishes the part it is in (so the sink namespace is deleted) and stops.
volatile sig_atomic_t interrupted = 0;
void on_signal(int) { interrupted = 1; }

double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) s += get16(p + i);
    if (n & 1) s += static_cast<uint32_t>(p[n - 1]) << 8;
    return s;
}
uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

std::vector<uint8_t> rtp_packet() {
    std::vector<uint8_t> p(rtp_len);
    p[0] = 0x80;
    p[1] = 111;
    p[11] = 1;
    for (unsigned i = 12; i < rtp_len; ++i) p[i] = static_cast<uint8_t>(i);
    return p;
}

// The relay every part runs: one port (net_null), the worker on lcore 1,
// listeners off-link behind a gateway with a static MAC.
control::profile base_profile(const std::string& prefix, const std::string& vdev) {
    control::profile p;
    p.path = "workload_harness";
    p.eal.lcores = {0, worker_lcore};
    p.eal.memory_mb = 2048;
    p.eal.file_prefix = prefix;
    p.eal.vdevs = {vdev};
    p.eal.mbufs = 32767;
    p.eal.mbuf_cache = 256;
    p.eal.log_level = "error";
    p.dataplane.rx_lcores = {worker_lcore};
    p.dataplane.fanout_lcores = {worker_lcore};
    p.dataplane.stats_interval_s = 0;
    p.dataplane.idle_adaptive = false;   // busy polling: a sleeping worker would add its wake-up to the latency
    control::port_config pc;
    pc.name = "null0";
    pc.device = "net_null0";
    pc.ipv4 = relay_ip;
    pc.prefix_len = 24;
    pc.gateway = gateway_ip;
    pc.gateway_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0, 0xfe};
    pc.tx_desc = 1024;
    p.ports.push_back(pc);
    p.ingress.udp_port_min = 20000;
    p.ingress.udp_port_max = 59999;
    p.limits.max_sessions = 16384;
    p.limits.max_speakers = 32768;
    p.limits.max_listeners = 8000000;
    p.limits.max_listeners_per_session = 8000000;
    return p;
}

uint64_t drop_of(const dp::lcore_counters& t, dp::drop_reason r) { return t.drops[static_cast<size_t>(r)]; }

// ------------------------------------------------------------------ sizes

int part_sizes(const std::vector<unsigned>& sizes, unsigned reps, double window, unsigned total,
               unsigned iteration_budget) {
    auto p = base_profile("stentor-wl-sizes-" + std::to_string(::getpid()), "net_null0,no-rx=1");
    drivers::eal_init(control::eal_params_of(p));
    {
        control::relay r(p, control::relay_options{.iteration_budget = iteration_budget});
        r.start();
        auto replicas = [&] { return r.totals().replicas_out; };
        uint32_t next_ip = 0x0a000001;
        std::vector<uint32_t> ids;
        for (unsigned n : sizes) {
            for (uint32_t id : ids) r.state().session_end(id);
            ids.clear();
            const unsigned nb = std::clamp(total / n, 1u, 1000u);
            for (unsigned k = 0; k < nb; ++k) {
                control::session_params sp;
                sp.udp_port = 20000 + k;   // explicit: see part_mix
                ids.push_back(r.state().session_create(sp).id);
                std::vector<control::listener_spec> ls(n);
                for (auto& l : ls) l = {next_ip++, 5004, 0, false};
                r.state().listener_add_bulk(ids.back(), ls);
            }
            r.state().publish();
            bench::message_feeder feeder(r.pool(), r.shared().shard_rings[0], rtp_packet());
            feeder.set_sessions(bench::resolve_sessions(r.shared(), ids));
            const uint64_t ahead = std::max<uint64_t>(uint64_t{4} * n, 256 * 1024);
            std::vector<double> mpps;
            const auto before = r.totals();
            for (unsigned rep = 0; rep < reps; ++rep) {
                const uint64_t start = replicas();
                const auto t0 = clk::now();
                const uint64_t fed = feeder.run(window, ahead, 960, [&] { return bench::replicas_disposed(r.totals()); });
                const double el = secs_since(t0);
                if (std::getenv("WORKLOAD_DEBUG")) {
                    const auto t = r.totals();
                    std::fprintf(stderr, "size %u rep %u: fed=%llu sent=%llu busy=%llu idle=%llu stall=%llu\n", n, rep,
                                 static_cast<unsigned long long>(fed),
                                 static_cast<unsigned long long>(replicas() - start),
                                 static_cast<unsigned long long>(t.busy_cycles),
                                 static_cast<unsigned long long>(t.idle_cycles),
                                 static_cast<unsigned long long>(t.stall_cycles));
                }
                mpps.push_back(static_cast<double>(replicas() - start) / el / 1e6);
                for (uint64_t prev = replicas();;) {   // drain: ring empty, nothing sent for 10 ms
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    const uint64_t cur = replicas();
                    if (cur == prev && rte_ring_count(r.shared().shard_rings[0]) == 0) break;
                    prev = cur;
                }
            }
            const auto after = r.totals();
            const stats s = summarise(mpps);
            std::printf("PART sizes listeners=%u sessions=%u mpps_median=%.2f mpps_min=%.2f mpps_max=%.2f reps=%u "
                        "deadline_misses=%llu jobs_full=%llu\n",
                        n, nb, s.median, s.min, s.max, reps,
                        static_cast<unsigned long long>(drop_of(after, dp::drop_reason::deadline) -
                                                        drop_of(before, dp::drop_reason::deadline)),
                        static_cast<unsigned long long>(drop_of(after, dp::drop_reason::jobs_full) -
                                                        drop_of(before, dp::drop_reason::jobs_full)));
            std::fflush(stdout);
        }
        r.stop();
    }
    drivers::eal_cleanup();
    return 0;
}

// ------------------------------------------------------------ mix, latency

// The q-quantile of sorted TSC-cycle samples, in microseconds (0 if none).
double quantile_us(const std::vector<uint32_t>& sorted, double q, uint64_t hz) {
    if (sorted.empty()) return 0.0;
    const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())));
    return static_cast<double>(sorted[i]) * 1e6 / static_cast<double>(hz);
}

// One speaker stream as the RX callback emits it.
struct stream {
    uint64_t phase;          // TSC offset within the 20 ms period
    uint32_t session;        // index into mix_source::sessions
    uint32_t first_speaker;  // its session's, copied here so the RX callback can
    uint8_t nb_speakers;     // prefetch the talker a few streams ahead
};

struct session_info {
    uint32_t id;
    uint16_t udp_port;
    uint32_t listeners;
    uint32_t first_speaker;  // index into mix_source::speakers
    uint8_t nb_speakers;
    bool probe;
    std::atomic<uint8_t> active{1};
};

struct speaker_info {
    uint32_t ip;
    uint16_t port;
    uint32_t ssrc;
    uint16_t seq;
    uint32_t ts_base;
};

// State the RX and TX callbacks share with the main thread; written by the
// worker lcore only, except the atomics.
struct mix_source {
    std::vector<session_info> sessions;
    std::vector<speaker_info> speakers;
    std::vector<stream> streams;   // sorted by phase
    uint8_t relay_mac[6];
    uint32_t relay_ip_host;
    uint64_t period;               // 20 ms in TSC cycles
    uint64_t turn_periods;         // talker changes every this many periods
    uint64_t t0;
    uint64_t cycle = 0;            // periods since t0
    size_t cursor = 0;             // next stream in this period
    rte_mempool* pool = nullptr;   // the relay's: where the "NIC" takes an mbuf per frame
    uint64_t late_limit;           // a packet due longer ago than this was lost by the "NIC"
    uint64_t virtual_now = 0;      // inline mode: the clock the schedule follows (else the TSC)
    std::atomic<bool> running{false};
    // counters (worker lcore only; read by main after the phase, or racy
    // approximate reads for progress)
    std::atomic<uint64_t> emitted{0};
    std::atomic<uint64_t> missed{0};
    std::atomic<uint64_t> offered_replicas{0};
    // latency probes: udp source ports [probe_lo, probe_hi]
    uint16_t probe_lo = 0, probe_hi = 0;
    std::atomic<bool> sample{false};
    std::vector<uint32_t> samples;   // TSC cycles, preallocated
    std::vector<uint64_t> sample_due;   // their scheduled arrival (WORKLOAD_DEBUG timeline)
    std::vector<uint32_t> after_rx;     // their share after the rx_burst: in the relay
    std::atomic<size_t> nb_samples{0};
    // The RX part of the probes' latency: scheduled arrival to the rx_burst
    // that handed the probe to the relay (time in the "NIC" queue).
    std::vector<uint32_t> rx_waits;
    std::atomic<size_t> nb_rx_waits{0};
    // Every gap between two polls of the RX queue (TSC cycles) while
    // sampling: the RX wait a packet arriving at a random moment would see
    // is the rest of the gap it arrived in (PART latency_poll_wait).
    std::vector<uint32_t> poll_gaps;
    std::atomic<size_t> nb_poll_gaps{0};
    uint64_t last_poll = 0;
    uint8_t frame[frame_len];        // template
    // The template's checksum sums, so a frame's checksums cost a few adds
    // (a speaker computed them, not the relay's core): the IPv4 header with
    // source and checksum zero; the UDP pseudo header's destination,
    // protocol and length, the UDP header with ports and checksum zero,
    // and the RTP bytes that never change (0-1 and 20 on).
    uint32_t ip_sum0 = 0;
    uint32_t udp_sum0 = 0;
};

void build_frame_template(mix_source& m) {
    uint8_t* f = m.frame;
    std::memset(f, 0, sizeof m.frame);
    std::memcpy(f, m.relay_mac, 6);
    const uint8_t src_mac[6] = {0x02, 0x53, 0x50, 0x4b, 0x00, 0x01};
    std::memcpy(f + 6, src_mac, 6);
    put16(f + 12, 0x0800);
    uint8_t* ip = f + 14;
    ip[0] = 0x45;
    ip[1] = 0xb8;
    put16(ip + 2, 20 + 8 + rtp_len);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 16, m.relay_ip_host);
    uint8_t* udp = ip + 20;
    put16(udp + 4, 8 + rtp_len);
    uint8_t* rtp = udp + 8;
    rtp[0] = 0x80;
    rtp[1] = 111;
    for (unsigned i = 12; i < rtp_len; ++i) rtp[i] = static_cast<uint8_t>(i * 7);
    m.ip_sum0 = sum16(ip, 20);
    m.udp_sum0 = sum16(ip + 16, 4) + 17 + (8 + rtp_len) + sum16(udp, 8) + sum16(rtp, 2) + sum16(rtp + 20, rtp_len - 20);
}

// Writes one speaker frame into d: what a real speaker sends. Its
// checksums from the template's sums and the fields that change, as the
// speaker's own stack would have them (frame_checksums_ok checks them once
// at start-up against a full sum).
void emit_frame(const mix_source& src, uint8_t* d, const session_info& s, speaker_info& sp, uint64_t due,
                uint64_t rx_tsc) {
    std::memcpy(d, src.frame, frame_len);
    // A probe's 8 bytes more (its RX TSC) add to the lengths (the IPv4
    // total length; the UDP length twice, in its header and in the pseudo
    // header) and to the UDP sum.
    const unsigned pad = s.probe ? probe_pad : 0;
    uint8_t* ip = d + 14;
    put32(ip + 12, sp.ip);
    if (pad != 0) {
        put16(ip + 2, 20 + 8 + rtp_len + pad);
        put16(ip + 24, 8 + rtp_len + pad);
        std::memcpy(d + frame_len, &rx_tsc, sizeof rx_tsc);
    }
    put16(ip + 10, static_cast<uint16_t>(~fold(src.ip_sum0 + pad + (sp.ip >> 16) + (sp.ip & 0xffff))));
    uint8_t* udp = ip + 20;
    put16(udp, sp.port);
    put16(udp + 2, s.udp_port);
    uint8_t* rtp = udp + 8;
    const uint16_t seq = sp.seq++;
    const uint32_t ts = sp.ts_base + static_cast<uint32_t>(src.cycle * 960);
    put16(rtp + 2, seq);
    put32(rtp + 4, ts);
    put32(rtp + 8, sp.ssrc);
    if (s.probe) std::memcpy(rtp + 12, &due, sizeof due);
    const uint32_t sum = src.udp_sum0 + 2 * pad + (sp.ip >> 16) + (sp.ip & 0xffff) + sp.port + s.udp_port + seq +
                         (ts >> 16) + (ts & 0xffff) + (sp.ssrc >> 16) + (sp.ssrc & 0xffff) + sum16(rtp + 12, 8) +
                         (pad != 0 ? sum16(d + frame_len, pad) : 0);
    const uint16_t c = static_cast<uint16_t>(~fold(sum));
    put16(udp + 6, c == 0 ? 0xffff : c);
}

// A frame's IPv4 header and UDP checksums, summed over every byte.
bool frame_checksums_ok(const uint8_t* d) {
    const uint8_t* ip = d + 14;
    if (fold(sum16(ip, 20)) != 0xffff) return false;
    const unsigned udp_len = get16(ip + 24);
    if (get16(ip + 2) != 20 + udp_len) return false;
    const uint32_t pseudo = sum16(ip + 12, 8) + 17 + udp_len;
    return fold(sum16(ip + 20, udp_len, pseudo)) == 0xffff;
}

// Writes one speaker packet into m, with the checksum flags a NIC with RX
// checksum offload sets.
void emit(mix_source& src, rte_mbuf* mb, const session_info& s, speaker_info& sp, uint64_t due, uint64_t rx_tsc) {
    emit_frame(src, rte_pktmbuf_mtod(mb, uint8_t*), s, sp, due, rx_tsc);
    const uint16_t len = static_cast<uint16_t>(frame_len + (s.probe ? probe_pad : 0));
    mb->data_len = len;
    mb->pkt_len = len;
    mb->nb_segs = 1;
    mb->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

uint16_t rx_source(uint16_t port, uint16_t, rte_mbuf* pkts[], uint16_t nb_pkts, uint16_t max_pkts, void* arg) {
    auto& src = *static_cast<mix_source*>(arg);
    uint16_t out = nb_pkts;   // net_null with no-rx=1: none
    if (src.running.load(std::memory_order_relaxed)) {
        const uint64_t now = src.virtual_now != 0 ? src.virtual_now : rte_rdtsc();
        if (src.sample.load(std::memory_order_relaxed)) {
            const size_t n = src.nb_poll_gaps.load(std::memory_order_relaxed);
            if (src.last_poll != 0 && n < src.poll_gaps.size()) {
                src.poll_gaps[n] = static_cast<uint32_t>(std::min<uint64_t>(now - src.last_poll, UINT32_MAX));
                src.nb_poll_gaps.store(n + 1, std::memory_order_relaxed);
            }
            src.last_poll = now;
        } else {
            src.last_poll = 0;
        }
        while (out < max_pkts) {
            const stream& st = src.streams[src.cursor];
            const uint64_t due = src.t0 + src.cycle * src.period + st.phase;
            if (due > now) break;
            {
                // A NIC writes received frames by DMA at no cost to the core;
                // this "NIC" is charged to it, so it keeps its own misses
                // off the relay's time: the state of the stream 8 ahead (the
                // same period's talker; a stream in the next period may get
                // a talker not prefetched, which is only a miss).
                const stream& ahead = src.streams[(src.cursor + 8) % src.streams.size()];
                rte_prefetch0(&src.sessions[ahead.session]);
                const uint32_t k = static_cast<uint32_t>((src.cycle / src.turn_periods + ahead.session) % ahead.nb_speakers);
                rte_prefetch0(&src.speakers[ahead.first_speaker + k]);
            }
            session_info& s = src.sessions[st.session];
            if (s.active.load(std::memory_order_relaxed)) {
                // The talker of this period: turns rotate through the speakers.
                const uint32_t k = static_cast<uint32_t>((src.cycle / src.turn_periods + st.session) % st.nb_speakers);
                speaker_info& sp = src.speakers[st.first_speaker + k];
                rte_mbuf* mb = nullptr;
                if (now - due > src.late_limit || (mb = rte_pktmbuf_alloc(src.pool)) == nullptr) {
                    ++sp.seq;   // lost before the relay saw it (late, or no mbuf): a gap in the stream
                    src.missed.fetch_add(1, std::memory_order_relaxed);
                } else {
                    pkts[out++] = mb;
                    mb->port = port;   // as the PMD sets it
                    emit(src, mb, s, sp, due, now);
                    if (s.probe && src.sample.load(std::memory_order_relaxed)) {
                        const size_t n = src.nb_rx_waits.load(std::memory_order_relaxed);
                        if (n < src.rx_waits.size()) {
                            src.rx_waits[n] = static_cast<uint32_t>(std::min<uint64_t>(now - due, UINT32_MAX));
                            src.nb_rx_waits.store(n + 1, std::memory_order_relaxed);
                        }
                    }
                    src.offered_replicas.fetch_add(s.listeners, std::memory_order_relaxed);
                }
            }
            if (++src.cursor == src.streams.size()) {
                src.cursor = 0;
                ++src.cycle;
            }
        }
        src.emitted.fetch_add(out - nb_pkts, std::memory_order_relaxed);
    }
    return out;
}

uint16_t tx_probe(uint16_t, uint16_t, rte_mbuf* pkts[], uint16_t nb_pkts, void* arg) {
    auto& src = *static_cast<mix_source*>(arg);
    if (!src.sample.load(std::memory_order_relaxed)) return nb_pkts;
    const uint64_t now = rte_rdtsc();
    size_t n = src.nb_samples.load(std::memory_order_relaxed);
    for (uint16_t i = 0; i < nb_pkts; ++i) {
        // Only a probe's replicas have its length (probe_pad): the others'
        // bytes are not read (this callback runs on the worker's core, and
        // its cost is load the relay carries while the latency is measured).
        if (pkts[i]->pkt_len != frame_len + probe_pad) continue;
        const uint8_t* d = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
        const uint16_t sport = get16(d + 34);
        if (sport < src.probe_lo || sport > src.probe_hi || n >= src.samples.size()) continue;
        uint64_t stamp;
        std::memcpy(&stamp, d + 42 + 12, sizeof stamp);
        const uint64_t dt = now - stamp;
        src.sample_due[n] = stamp;
        uint64_t rx;
        std::memcpy(&rx, d + frame_len, sizeof rx);
        src.after_rx[n] = static_cast<uint32_t>(std::min<uint64_t>(now - rx, UINT32_MAX));
        src.samples[n++] = static_cast<uint32_t>(std::min<uint64_t>(dt, UINT32_MAX));
    }
    src.nb_samples.store(n, std::memory_order_relaxed);
    return nb_pkts;
}

struct mix_options {
    unsigned sessions = 10000;
    unsigned listeners = 2000000;
    double zipf_s = 1.0;
    unsigned reps = 3;
    double window = 2.0;
    unsigned churn = 10000;        // joins and leaves per second, each
    double load = 0.8;             // latency: share of the measured capacity
    double latency_seconds = 4.0;
    unsigned probes = 64;
    unsigned probe_listeners = 10;
    uint64_t seed = 15;
    unsigned iteration_budget = 0;   // 0: the worker's default
    unsigned spare_budget = 0;       // 0: the relay's default (relay_options::spare_budget)
    int stop_check_us = -1;          // < 0: the worker's default (dp::stop_check_us); 0: off
    unsigned inline_ms = 0;          // > 0: no threads, virtual time (for callgrind)
};

int part_mix(const mix_options& o) {
    auto p = base_profile("stentor-wl-mix-" + std::to_string(::getpid()), "net_null0,no-rx=1");
    if (o.inline_ms > 0) p.dataplane.frame_deadline_us = 3600u * 1000000u;   // valgrind: no deadline
    drivers::eal_init(control::eal_params_of(p));
    int rc = 0;
    {
        control::relay_options ro{.launch = o.inline_ms == 0, .iteration_budget = o.iteration_budget,
                                  .spare_budget = o.spare_budget};
        if (o.stop_check_us >= 0)
            ro.stop_cycles = rte_get_tsc_hz() * static_cast<uint64_t>(o.stop_check_us) / 1000000;
        else if (o.inline_ms > 0)
            ro.stop_cycles = rte_get_tsc_hz() * 3600;   // counted as launched, never cut by valgrind's slow clock
        control::relay r(p, ro);
        auto& state = r.state();
        const uint64_t hz = rte_get_tsc_hz();
        std::mt19937_64 rng(o.seed);
        auto src = std::make_unique<mix_source>();
        std::memcpy(src->relay_mac, r.shared().ports[0].mac, 6);
        src->relay_ip_host = relay_ip;
        src->period = hz / 50;
        src->turn_periods = 100;    // a talker holds the floor for 2 s
        src->late_limit = hz / 500; // 2 ms: about what a 1024-descriptor RX ring holds at this rate
        src->pool = r.pool();
        build_frame_template(*src);

        // Zipf sizes: rank i gets L * i^-s / H, at least one listener.
        std::vector<uint32_t> sizes(o.sessions);
        {
            double h = 0;
            for (unsigned i = 1; i <= o.sessions; ++i) h += std::pow(i, -o.zipf_s);
            uint64_t sum = 0;
            for (unsigned i = 1; i <= o.sessions; ++i) {
                sizes[i - 1] = std::max<uint32_t>(1, static_cast<uint32_t>(std::llround(o.listeners * std::pow(i, -o.zipf_s) / h)));
                sum += sizes[i - 1];
            }
            if (sum < o.listeners) sizes[0] += static_cast<uint32_t>(o.listeners - sum);
            else sizes[0] -= static_cast<uint32_t>(std::min<uint64_t>(sum - o.listeners, sizes[0] - 1));
        }
        const auto t_setup = clk::now();
        uint32_t next_ip = 0x0a000001;
        uint32_t next_speaker_ip = 0x64400001;   // 100.64.0.0/10
        std::vector<std::deque<uint32_t>> members(o.sessions + o.probes);
        src->sessions = std::vector<session_info>(o.sessions + o.probes);
        uint64_t total_listeners = 0;
        for (unsigned i = 0; i < o.sessions + o.probes; ++i) {
            const bool probe = i >= o.sessions;
            control::session_params sp;
            // Explicit ports, so every run's sessions sit on the same ones
            // (the probes at the top of the range).
            sp.udp_port = probe ? 59999 - (o.probes - 1) + (i - o.sessions) : 20000 + i;
            const auto v = state.session_create(sp);
            session_info& s = src->sessions[i];
            s.id = v.id;
            s.udp_port = static_cast<uint16_t>(v.udp_port);
            s.probe = probe;
            s.listeners = probe ? o.probe_listeners : sizes[i];
            s.nb_speakers = probe ? 1 : static_cast<uint8_t>(1 + i % 3);
            s.first_speaker = static_cast<uint32_t>(src->speakers.size());
            for (unsigned k = 0; k < s.nb_speakers; ++k) {
                speaker_info spk{next_speaker_ip++, 5000, static_cast<uint32_t>(src->speakers.size() + 1),
                                 static_cast<uint16_t>(rng()), static_cast<uint32_t>(rng())};
                state.speaker_add(s.id, spk.ip, spk.port, spk.ssrc);
                src->speakers.push_back(spk);
            }
            std::vector<control::listener_spec> ls(s.listeners);
            for (auto& l : ls) {
                l = {next_ip, 5004, 0, false};
                members[i].push_back(next_ip++);
            }
            state.listener_add_bulk(s.id, ls);
            total_listeners += s.listeners;
        }
        src->probe_lo = src->sessions[o.sessions].udp_port;
        src->probe_hi = src->sessions.back().udp_port;
        state.publish();
        for (uint32_t i = 0; i < src->sessions.size(); ++i) {
            std::uniform_int_distribution<uint64_t> ph(0, src->period - 1);
            src->streams.push_back({ph(rng), i, src->sessions[i].first_speaker, src->sessions[i].nb_speakers});
        }
        std::sort(src->streams.begin(), src->streams.end(), [](const stream& a, const stream& b) { return a.phase < b.phase; });
        // The frames' checksums as emit_frame sums them, against a full
        // sum, for every session (probes with their stamps) and a few cycles.
        std::mt19937_64 stamps(1);   // its own: the run's rng draws as before
        for (uint32_t i = 0; i < src->sessions.size(); ++i) {
            const session_info& si = src->sessions[i];
            speaker_info sp = src->speakers[si.first_speaker + i % si.nb_speakers];
            uint8_t f[frame_len + probe_pad];
            src->cycle = i % 7 * 1000003u;
            emit_frame(*src, f, si, sp, stamps(), stamps());
            if (!frame_checksums_ok(f)) {
                std::printf("PART mix error=frame_checksum session=%u\n", i);
                return 1;
            }
        }
        src->cycle = 0;
        // Every probe replica of the latency window, with the time it was due.
        src->samples.resize(static_cast<size_t>(1.5 * o.probes * o.probe_listeners * 50 * (o.latency_seconds + 1)) + 1024);
        src->sample_due.resize(src->samples.size());
        src->after_rx.resize(src->samples.size());
        const bool timeline = std::getenv("WORKLOAD_DEBUG") != nullptr;
        std::vector<uint64_t> publish_tsc;   // WORKLOAD_DEBUG: when each churn publish started
        src->rx_waits.resize(size_t{1} << 20);
        src->poll_gaps.resize(static_cast<size_t>(5e6 * (o.latency_seconds + 1)));
        std::printf("# mix: %u sessions (Zipf s=%.2f: largest %u, median %u, smallest %u listeners), %zu speakers, "
                    "%llu listeners in all with %u probe sessions of %u; set up in %.1f s\n",
                    o.sessions, o.zipf_s, sizes.front(), sizes[sizes.size() / 2], sizes.back(), src->speakers.size(),
                    static_cast<unsigned long long>(total_listeners), o.probes, o.probe_listeners, secs_since(t_setup));
        std::fflush(stdout);

        const uint16_t eth = r.shared().ethdev[0];
        const auto* rx_cb = rte_eth_add_rx_callback(eth, 0, rx_source, src.get());
        const auto* tx_cb = rte_eth_add_tx_callback(eth, 0, tx_probe, src.get());
        // Joins and leaves: every 100 ms, churn/10 listeners leave (the
        // oldest of a session picked by size) and as many join (a session
        // picked the same way), then one publish, as the control plane's
        // publisher tick does.
        std::discrete_distribution<uint32_t> pick(sizes.begin(), sizes.end());
        uint64_t joins = 0, leaves = 0, publishes = 0;
        double publish_s = 0;
        auto churn_tick = [&] {
            const unsigned k = o.churn / 10;
            for (unsigned i = 0; i < k; ++i) {
                const uint32_t a = pick(rng);
                if (members[a].size() > 1) {
                    state.listener_del(src->sessions[a].id, members[a].front(), 5004);
                    members[a].pop_front();
                    ++leaves;
                }
                const uint32_t b = pick(rng);
                state.listener_add(src->sessions[b].id, next_ip, 5004, 0);
                members[b].push_back(next_ip++);
                ++joins;
            }
            const auto t = clk::now();
            if (timeline) publish_tsc.push_back(rte_rdtsc());
            state.publish();
            publish_s += secs_since(t);
            ++publishes;
        };
        if (rx_cb == nullptr || tx_cb == nullptr) {
            std::printf("PART mix error=ethdev_callbacks_unavailable\n");
            rc = 1;
        } else if (o.inline_ms > 0) {
            // Virtual time, 1 ms steps: the packets due in a step are handed
            // over and the worker polled until idle; so every packet is
            // served (no overload) and the instruction count per replica is
            // the mix's own (bench/count_instructions.sh mix).
            src->t0 = hz;
            src->virtual_now = src->t0;
            src->running.store(true);
            const auto before = r.totals();
            for (unsigned ms = 0; ms < o.inline_ms; ++ms) {
                src->virtual_now += hz / 1000;
                while (r.poll() > 0) {
                }
                if (o.churn > 0 && ms % 100 == 99) churn_tick();
            }
            r.flush();
            const auto after = r.totals();
            std::printf("PART mix_inline ms=%u replicas_out=%llu speaker_packets=%llu offered_replicas=%llu "
                        "policed=%llu deadline_misses=%llu jobs_full=%llu joins=%llu leaves=%llu\n",
                        o.inline_ms, static_cast<unsigned long long>(after.replicas_out - before.replicas_out),
                        static_cast<unsigned long long>(after.rtp_in - before.rtp_in),
                        static_cast<unsigned long long>(src->offered_replicas.load()),
                        static_cast<unsigned long long>(drop_of(after, dp::drop_reason::policed)),
                        static_cast<unsigned long long>(drop_of(after, dp::drop_reason::deadline)),
                        static_cast<unsigned long long>(drop_of(after, dp::drop_reason::jobs_full)),
                        static_cast<unsigned long long>(joins), static_cast<unsigned long long>(leaves));
            rte_eth_remove_rx_callback(eth, 0, rx_cb);
            rte_eth_remove_tx_callback(eth, 0, tx_cb);
        } else {
            // The probes' TX callback only while the latency part runs: in
            // the mix's capacity windows it would read no stamp, and its call
            // on every TX burst (~1 % of the core) is no cost a NIC has. Taken
            // off before the worker starts; added again, at run time, below.
            rte_eth_remove_tx_callback(eth, 0, tx_cb);
            const rte_eth_rxtx_callback* probe_cb = nullptr;
            r.start();
            src->t0 = rte_rdtsc() + hz / 100;
            src->running.store(true);

            // The worker's pace every 10 ms (latency window): replicas built
            // per busy cycle and deadline misses, to tell the intervals in
            // which the core ran at its speed from those in which it did not
            // (below).
            struct pace {
                uint64_t tsc, replicas, busy, deadline;
            };
            std::vector<pace> paces;
            bool pacing = false;
            auto run_for = [&](double seconds) {
                const auto t = clk::now();
                auto next = t;
                for (unsigned tick = 0; secs_since(t) < seconds; ++tick) {
                    next += std::chrono::milliseconds(10);
                    if (o.churn > 0 && tick % 10 == 0) churn_tick();
                    std::this_thread::sleep_until(next);
                    if (pacing) {
                        const auto now = r.totals();
                        paces.push_back({rte_rdtsc(), now.replicas_out, now.busy_cycles, drop_of(now, dp::drop_reason::deadline)});
                    }
                }
            };

            // The worker's busy cycles over all its cycles between two readings.
            auto busy_share = [](const auto& b, const auto& a) {
                const double busy = static_cast<double>(a.busy_cycles - b.busy_cycles);
                return busy / std::max(1.0, busy + static_cast<double>(a.idle_cycles - b.idle_cycles) +
                                                static_cast<double>(a.stall_cycles - b.stall_cycles));
            };

            run_for(0.5);   // warm-up: every stream has started, jobs in flight
            std::vector<double> delivered, offered;
            const auto before = r.totals();
            for (unsigned rep = 0; rep < o.reps; ++rep) {
                const auto b = r.totals();
                const uint64_t o0 = src->offered_replicas.load();
                const auto t = clk::now();
                run_for(o.window);
                const double el = secs_since(t);
                const auto a = r.totals();
                delivered.push_back(static_cast<double>(a.replicas_out - b.replicas_out) / el / 1e6);
                offered.push_back(static_cast<double>(src->offered_replicas.load() - o0) / el / 1e6);
                // Each window on its own: a run whose windows differ says when.
                std::printf("# mix window %u: delivered_mpps=%.2f deadline_misses=%llu jobs_full=%llu "
                            "iterations_per_ms=%.1f\n",
                            rep, delivered.back(),
                            static_cast<unsigned long long>(drop_of(a, dp::drop_reason::deadline) -
                                                            drop_of(b, dp::drop_reason::deadline)),
                            static_cast<unsigned long long>(drop_of(a, dp::drop_reason::jobs_full) -
                                                            drop_of(b, dp::drop_reason::jobs_full)),
                            static_cast<double>(a.busy_polls - b.busy_polls) / (1e3 * el));
            }
            const auto after = r.totals();
            const stats d = summarise(delivered);
            const stats off = summarise(offered);
            auto delta = [&](dp::drop_reason why) {
                return static_cast<unsigned long long>(drop_of(after, why) - drop_of(before, why));
            };
            // Saturated: the core could not carry all that was offered, so
            // what it delivered is its capacity under this mix. Otherwise
            // the figure is only the offered load (raise --mix-listeners).
            const bool saturated = d.median < 0.97 * off.median || delta(dp::drop_reason::deadline) > 0 ||
                                   delta(dp::drop_reason::jobs_full) > 0;
            std::printf("PART mix delivered_mpps_median=%.2f delivered_mpps_min=%.2f delivered_mpps_max=%.2f "
                        "saturated=%d offered_mpps=%.2f reps=%u speaker_pps=%.0f deadline_misses=%llu jobs_full=%llu policed=%llu "
                        "rtp_drops=%llu rx_missed=%llu joins=%llu leaves=%llu publishes=%llu publish_ms_mean=%.2f busy_share=%.2f "
                        "stall_ms=%.1f iterations_per_ms=%.1f rx_bursts_per_iteration=%.2f\n",
                        d.median, d.min, d.max, saturated ? 1 : 0, off.median, o.reps,
                        static_cast<double>(after.rtp_in - before.rtp_in) / (o.reps * o.window),
                        delta(dp::drop_reason::deadline), delta(dp::drop_reason::jobs_full),
                        delta(dp::drop_reason::policed),
                        delta(dp::drop_reason::rtp_seq_jump) + delta(dp::drop_reason::rtp_ts_jump) +
                            delta(dp::drop_reason::rtp_duplicate) + delta(dp::drop_reason::unknown_flow),
                        static_cast<unsigned long long>(src->missed.load()), static_cast<unsigned long long>(joins),
                        static_cast<unsigned long long>(leaves), static_cast<unsigned long long>(publishes),
                        publishes ? 1000.0 * publish_s / static_cast<double>(publishes) : 0.0,
                        busy_share(before, after),
                        1e3 * static_cast<double>(after.stall_cycles - before.stall_cycles) / static_cast<double>(hz),
                        static_cast<double>(after.busy_polls - before.busy_polls) / (1e3 * o.reps * o.window),
                        static_cast<double>(after.ingress_calls - before.ingress_calls) /
                            std::max(1.0, static_cast<double>(after.busy_polls - before.busy_polls)));
            std::fflush(stdout);

            // Latency: the mix thinned to `load` of the capacity just measured
            // (whole sessions silenced, in a random order), probes on.
            const double target = o.load * d.median * 1e6;   // replicas/s
            std::vector<uint32_t> order(o.sessions);
            for (uint32_t i = 0; i < o.sessions; ++i) order[i] = i;
            std::shuffle(order.begin(), order.end(), rng);
            double kept = static_cast<double>(o.probes) * o.probe_listeners * 50.0;
            for (uint32_t i : order) {
                const double add = static_cast<double>(src->sessions[i].listeners) * 50.0;
                const bool on = kept + add <= target;
                if (on) kept += add;
                src->sessions[i].active.store(on ? 1 : 0, std::memory_order_relaxed);
            }
            probe_cb = rte_eth_add_tx_callback(eth, 0, tx_probe, src.get());
            if (probe_cb == nullptr) std::printf("PART latency error=tx_callback_unavailable\n");
            run_for(0.5);
            const auto lb = r.totals();
            const uint64_t r0 = lb.replicas_out;
            const uint64_t missed0 = src->missed.load();
            src->nb_samples.store(0);
            src->nb_rx_waits.store(0);
            src->nb_poll_gaps.store(0);
            src->sample.store(true);
            pacing = true;
            const auto t = clk::now();
            run_for(o.latency_seconds);
            src->sample.store(false);
            pacing = false;
            const double el = secs_since(t);
            const auto la = r.totals();
            const double load_mpps = o.latency_seconds > 0 ? static_cast<double>(la.replicas_out - r0) / el / 1e6 : 0.0;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));   // the worker leaves tx_probe
            std::vector<uint32_t> v(src->samples.begin(), src->samples.begin() + static_cast<long>(src->nb_samples.load()));
            std::sort(v.begin(), v.end());
            auto pct = [&](double q) { return quantile_us(v, q, hz); };
            // What a long tail can come from, so a run says which it was:
            // the worker not running (stalls: a gap or an iteration over
            // 2 ms, i.e. preemption or steal), the RX queue overrun (the
            // "NIC" lost packets due over 2 ms ago), the job table full, and
            // deadline misses (the core was overloaded after all).
            std::printf("PART latency samples=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f load_mpps=%.2f "
                        "load_share=%.2f deadline_misses=%llu jobs_full=%llu rx_missed=%llu stalls=%llu stall_ms=%.1f "
                        "busy_share=%.2f fanout_cuts=%llu\n",
                        v.size(), pct(0.5), pct(0.99), pct(0.999), v.empty() ? 0.0 : pct(1.0), load_mpps,
                        d.median > 0 ? load_mpps / d.median : 0.0,
                        static_cast<unsigned long long>(drop_of(la, dp::drop_reason::deadline) -
                                                        drop_of(lb, dp::drop_reason::deadline)),
                        static_cast<unsigned long long>(drop_of(la, dp::drop_reason::jobs_full) -
                                                        drop_of(lb, dp::drop_reason::jobs_full)),
                        static_cast<unsigned long long>(src->missed.load() - missed0),
                        static_cast<unsigned long long>(la.stalls - lb.stalls),
                        1e3 * static_cast<double>(la.stall_cycles - lb.stall_cycles) / static_cast<double>(hz),
                        busy_share(lb, la), static_cast<unsigned long long>(la.fanout_cuts - lb.fanout_cuts));
            if (timeline) {
                for (size_t k = 0; k < dp::nb_drop_reasons; ++k)
                    if (la.drops[k] != lb.drops[k])
                        std::fprintf(stderr, "latency window drop %s=%llu\n", std::string(dp::drop_reason_names[k]).c_str(),
                                     static_cast<unsigned long long>(la.drops[k] - lb.drops[k]));
                // Where the slow samples fall: time since the last churn
                // publish started, and since the last talker turn, 10 ms bins.
                const size_t ns = src->nb_samples.load();
                const uint64_t slow = hz / 2000;   // 500 us
                const uint64_t bin = hz / 100;
                std::map<uint64_t, std::pair<size_t, size_t>> by_pub, by_turn;   // bin -> (all, slow)
                for (size_t i = 0; i < ns; ++i) {
                    const uint64_t due = src->sample_due[i];
                    const bool is_slow = src->samples[i] > slow;
                    auto it = std::upper_bound(publish_tsc.begin(), publish_tsc.end(), due);
                    if (it != publish_tsc.begin()) {
                        auto& b = by_pub[(due - *(it - 1)) / bin];
                        ++b.first;
                        b.second += is_slow;
                    }
                    if (due > src->t0) {
                        auto& b = by_turn[((due - src->t0) % (src->period * src->turn_periods)) / bin];
                        ++b.first;
                        b.second += is_slow;
                    }
                }
                for (const auto& [k, v] : by_pub)
                    std::fprintf(stderr, "since_publish_ms=%llu samples=%zu slow=%zu\n", static_cast<unsigned long long>(k * 10), v.first, v.second);
                for (const auto& [k, v] : by_turn)
                    if (v.second > 0)
                        std::fprintf(stderr, "since_turn_ms=%llu samples=%zu slow=%zu\n", static_cast<unsigned long long>(k * 10), v.first, v.second);
            }
            // The first n samples of v, sorted, as a PART line of quantiles.
            auto print_part = [&](const char* part, const std::vector<uint32_t>& v, size_t n) {
                std::vector<uint32_t> w(v.begin(), v.begin() + static_cast<long>(std::min(n, v.size())));
                std::sort(w.begin(), w.end());
                auto q = [&](double x) { return quantile_us(w, x, hz); };
                std::printf("PART %s samples=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n", part, w.size(), q(0.5),
                            q(0.99), q(0.999), w.empty() ? 0.0 : q(1.0));
            };
            // The RX share of it: time the probes waited in the "NIC" queue.
            print_part("latency_rx_wait", src->rx_waits, src->nb_rx_waits.load());
            // The relay's share: from that rx_burst to the replica's TX
            // burst, per replica (what a probe waits for once the core has
            // it: the ingress of its burst, the short jobs ahead of it, the
            // TX buffer).
            print_part("latency_after_rx", src->after_rx, src->nb_samples.load());
            // The tail's own split: of the replicas at or above the p99, the
            // median of the relay's share (the rest of each is the RX wait).
            {
                const size_t ns = src->nb_samples.load();
                const uint32_t p99c = v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(0.99 * v.size()))];
                std::vector<uint32_t> tail;
                for (size_t i = 0; i < ns; ++i)
                    if (src->samples[i] >= p99c) tail.push_back(src->after_rx[i]);
                std::sort(tail.begin(), tail.end());
                std::printf("PART latency_tail samples=%zu after_rx_p50_us=%.1f after_rx_p90_us=%.1f\n", tail.size(),
                            quantile_us(tail, 0.5, hz), quantile_us(tail, 0.9, hz));
            }
            // The RX wait of a packet arriving at a random moment, from the
            // worker's poll times alone (bench/gaps.h: host_pace --gaps
            // computes the host's floor with it from its TSC jumps). Beside it, how many
            // gaps were long: a gap is an iteration, or a host stop plus
            // the iteration it fell in.
            {
                std::vector<uint32_t> g(src->poll_gaps.begin(),
                                        src->poll_gaps.begin() + static_cast<long>(src->nb_poll_gaps.load()));
                std::sort(g.begin(), g.end());
                const double us = 1e6 / static_cast<double>(hz);   // per TSC cycle
                // The gaps over c cycles.
                auto over_cycles = [&](double c) { return g.end() - std::upper_bound(g.begin(), g.end(), static_cast<uint32_t>(c)); };
                if (const char* f = std::getenv("WORKLOAD_GAPS")) {
                    if (FILE* out = std::fopen(f, "w")) {
                        for (auto it = std::lower_bound(g.begin(), g.end(), static_cast<uint32_t>(2 / us)); it != g.end(); ++it)
                            std::fprintf(out, "%.2f\n", *it * us);   // the gaps of 2 us or more
                        std::fclose(out);
                    }
                }
                double total = 0;
                for (uint32_t x : g) total += x;
                auto wait_q = [&](double q) { return bench::arrival_wait_quantile(g, total, q) * us; };
                auto over = [&](double gap_us) { return static_cast<size_t>(over_cycles(gap_us / us)); };
                const double mean_us = g.empty() ? 0 : total / static_cast<double>(g.size()) * us;
                std::printf("PART latency_poll_wait polls=%zu mean_gap_us=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
                            "gaps_over_10us=%zu gaps_over_20us=%zu gaps_over_50us=%zu max_gap_us=%.1f\n",
                            g.size(), mean_us, wait_q(0.5), wait_q(0.99), wait_q(0.999), over(10), over(20), over(50),
                            g.empty() ? 0.0 : g.back() * us);
            }
            std::fflush(stdout);

            // The same probes, only those that arrived and left while the
            // core ran at its own pace: this VM's host takes most of a core
            // away now and then (a memory walk alone on the worker's CPU,
            // no relay running, drops to 0.1-0.3 of its rate in 20 ms bins
            // for 60-120 ms about every 1.5 s; docs/performance.md, "Fifth
            // round"), and at 80 % load a core even 1.3 times slower is a
            // queue that lasts until the frame deadline. A 10 ms interval is
            // "off" when the worker built fewer than 60 % of its median
            // replicas per busy cycle or missed a deadline, and so is the
            // interval after one (it drains the queue). A probe is counted
            // when it arrived and left in intervals that were not off. The
            // headline p99 above counts every probe; this line says what the
            // scheduler does while the core is there.
            {
                const size_t np = paces.size();
                // Each interval's pace, replicas per busy cycle; judged (>= 0)
                // only when the worker was busy at least a fifth of it.
                std::vector<double> rate(np, -1.0);
                std::vector<double> rates;   // the judged ones, sorted below
                for (size_t i = 1; i < np; ++i) {
                    const uint64_t busy = paces[i].busy - paces[i - 1].busy;
                    const uint64_t span = paces[i].tsc - paces[i - 1].tsc;
                    if (span > 0 && busy * 5 >= span) {
                        rate[i] = static_cast<double>(paces[i].replicas - paces[i - 1].replicas) / static_cast<double>(busy);
                        rates.push_back(rate[i]);
                    }
                }
                std::sort(rates.begin(), rates.end());
                const double median_rate = rates.empty() ? 0 : rates[rates.size() / 2];
                // Slow: under 60 % of the median pace. At 80 % load a core at
                // that pace is a third over its capacity.
                constexpr double slow_pace = 0.6;
                std::vector<uint8_t> slow(np, 0), missed_in(np, 0);
                size_t nb_slow = 0, nb_missed = 0;
                for (size_t i = 1; i < np; ++i) {
                    if (rate[i] >= 0 && rate[i] < slow_pace * median_rate) slow[i] = 1, ++nb_slow;
                    if (paces[i].deadline != paces[i - 1].deadline) missed_in[i] = 1, ++nb_missed;
                }
                // The interval after an off one drains the queue the off one left.
                std::vector<uint8_t> after(np, 0);
                for (size_t i = 2; i < np; ++i) after[i] = (slow[i - 1] | missed_in[i - 1]) && !(slow[i] | missed_in[i]);
                // Interval i covers (paces[i-1].tsc, paces[i].tsc]; before the
                // first pace or after the last: not judged, left out.
                auto interval_of = [&](uint64_t when) -> size_t {   // 0: not judged
                    if (np < 2 || when <= paces.front().tsc || when > paces.back().tsc) return 0;
                    return static_cast<size_t>(
                        std::lower_bound(paces.begin(), paces.end(), when, [](const pace& a, uint64_t w) { return a.tsc < w; }) -
                        paces.begin());
                };
                auto off = [&](uint64_t when) {
                    const size_t i = interval_of(when);
                    return i == 0 || slow[i] != 0 || missed_in[i] != 0 || after[i] != 0;
                };
                std::vector<uint32_t> steady;
                const size_t ns = src->nb_samples.load();
                for (size_t i = 0; i < ns; ++i)
                    if (!off(src->sample_due[i]) && !off(src->sample_due[i] + src->samples[i])) steady.push_back(src->samples[i]);
                if (timeline) {   // WORKLOAD_DEBUG: each 10 ms interval, and its probes over 200 us
                    std::vector<unsigned> bad(np, 0), all(np, 0);
                    for (size_t i = 0; i < ns; ++i) {
                        const size_t k = interval_of(src->sample_due[i]);
                        if (k == 0) continue;
                        ++all[k];
                        if (src->samples[i] > hz / 5000) ++bad[k];
                    }
                    for (size_t i = 1; i < np; ++i)
                        std::fprintf(stderr, "PACE %zu busy=%.2f pace=%.1f miss=%llu slow=%d probes=%u over200us=%u\n", i,
                                     double(paces[i].busy - paces[i - 1].busy) / double(paces[i].tsc - paces[i - 1].tsc),
                                     double(paces[i].replicas - paces[i - 1].replicas) / std::max(1.0, double(paces[i].busy - paces[i - 1].busy)) * hz / 1e6,
                                     (unsigned long long)(paces[i].deadline - paces[i - 1].deadline), slow[i], all[i], bad[i]);
                }
                std::sort(steady.begin(), steady.end());
                auto spct = [&](double q) { return quantile_us(steady, q, hz); };
                std::printf("PART latency_steady samples=%zu share=%.3f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
                            "intervals=%zu slow=%zu with_deadline_misses=%zu median_pace_per_us=%.1f\n",
                            steady.size(), ns ? static_cast<double>(steady.size()) / static_cast<double>(ns) : 0.0, spct(0.5),
                            spct(0.99), spct(0.999), steady.empty() ? 0.0 : spct(1.0), np > 0 ? np - 1 : 0, nb_slow, nb_missed,
                            median_rate * static_cast<double>(hz) / 1e6);
                std::fflush(stdout);
            }
            src->running.store(false);
            r.stop();
            rte_eth_remove_rx_callback(eth, 0, rx_cb);
            if (probe_cb != nullptr) rte_eth_remove_tx_callback(eth, 0, probe_cb);
        }
    }
    drivers::eal_cleanup();
    return rc;
}

// ------------------------------------------------------------------ kernel

// A network namespace whose 10.99.0.0/16 route ends in a veth whose peer is
// down. A blackhole route would not do: the kernel refuses the datagram at
// the route lookup (EINVAL) before any skb exists, so nothing of the stack
// would be measured.
class sink_namespace {
public:
    explicit sink_namespace(std::string name) : _name(std::move(name)) {
        const std::string n = _name;
        _ok = sh("ip netns add " + n) && sh("ip -n " + n + " link set lo up") &&
              sh("ip -n " + n + " link add vsink0 type veth peer name vsink1") &&
              sh("ip -n " + n + " addr add 10.98.0.1/24 dev vsink0") && sh("ip -n " + n + " link set vsink0 up") &&
              sh("ip -n " + n + " route add 10.99.0.0/16 via 10.98.0.2 dev vsink0 onlink") &&
              sh("ip -n " + n + " neigh add 10.98.0.2 lladdr 02:00:00:00:00:02 dev vsink0 nud permanent");
    }
    ~sink_namespace() { sh("ip netns del " + _name + " 2>/dev/null"); }
    sink_namespace(const sink_namespace&) = delete;
    sink_namespace& operator=(const sink_namespace&) = delete;
    bool ok() const { return _ok; }
    const std::string& name() const { return _name; }
    // Datagrams the veth dropped: every one the kernel really processed.
    uint64_t dropped() const {
        const std::string cmd = "ip netns exec " + _name + " cat /sys/class/net/vsink0/statistics/tx_dropped";
        FILE* f = ::popen(cmd.c_str(), "r");
        if (f == nullptr) return 0;
        unsigned long long v = 0;
        if (std::fscanf(f, "%llu", &v) != 1) v = 0;
        ::pclose(f);
        return v;
    }
    static bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

private:
    std::string _name;
    bool _ok = false;
};

std::vector<std::string> run_lines(const std::string& cmd) {
    std::vector<std::string> out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return out;
    char line[4096];
    while (std::fgets(line, sizeof line, f)) out.emplace_back(line);
    ::pclose(f);
    return out;
}

std::optional<double> field(const std::string& line, const std::string& key) {
    const std::string k = key + "=";
    size_t at = 0;
    while ((at = line.find(k, at)) != std::string::npos) {
        if (at == 0 || line[at - 1] == ' ') return std::strtod(line.c_str() + at + k.size(), nullptr);
        at += k.size();
    }
    return std::nullopt;
}

struct kernel_figures {
    std::vector<double> sendmmsg_mpps;
    std::vector<double> multiudpsink_mpps;
    std::string note;
};

kernel_figures run_kernel_peers(const std::string& bin_dir, unsigned clients, unsigned reps, double seconds) {
    kernel_figures k;
    if (::geteuid() != 0) {
        k.note = "not root: no network namespace";
        return k;
    }
    sink_namespace ns("stentor-wl-" + std::to_string(::getpid()));
    if (!ns.ok()) {
        k.note = "could not create the sink namespace (ip netns, veth)";
        return k;
    }
    const std::string in_ns = "ip netns exec " + ns.name() + " taskset -c " + std::to_string(worker_lcore) + " ";
    std::string client_list;
    for (unsigned i = 0; i < clients; ++i) {
        if (i) client_list += ',';
        client_list += "10.99." + std::to_string((i + 1) >> 8) + "." + std::to_string((i + 1) & 0xff) + ":5004";
    }
    const bool have_gst = sink_namespace::sh("command -v gst-launch-1.0");
    for (unsigned rep = 0; rep < reps && !interrupted; ++rep) {
        const uint64_t d0 = ns.dropped();
        for (const auto& l : run_lines(in_ns + bin_dir + "/kernel_fanout --clients " + std::to_string(clients) +
                                        " --seconds " + std::to_string(seconds) + " 2>&1")) {
            std::printf("# %s", l.c_str());
            if (auto v = field(l, "msgs_per_s"); v && l.rfind("kernel_sendmmsg", 0) == 0) {
                const double el = field(l, "seconds").value_or(seconds);
                const double seen = static_cast<double>(ns.dropped() - d0);
                // The device's count is the truth: what the stack carried to the driver.
                k.sendmmsg_mpps.push_back(std::min(*v, seen / el) / 1e6);
            }
        }
        if (!have_gst) continue;
        // fakesrc: the cheapest feed there is (no receive path), so this is
        // an upper bound for multiudpsink. Timed by gst-launch itself
        // ("Execution ended after", PLAYING to EOS), not its start-up.
        const unsigned buffers = static_cast<unsigned>(std::max(100.0, seconds * 500.0));
        const uint64_t g0 = ns.dropped();
        const std::string gst = in_ns + "gst-launch-1.0 fakesrc num-buffers=" + std::to_string(buffers) +
                                " sizetype=fixed sizemax=" + std::to_string(rtp_len) +
                                " filltype=zero ! multiudpsink sync=false async=false clients=" + client_list + " 2>&1";
        const auto t1 = clk::now();
        const auto out = run_lines(gst);
        double el = secs_since(t1);
        for (const auto& l : out) {
            unsigned h = 0, mi = 0;
            double sec = 0;
            const auto at = l.find("Execution ended after ");
            if (at != std::string::npos && std::sscanf(l.c_str() + at + 22, "%u:%u:%lf", &h, &mi, &sec) == 3)
                el = h * 3600.0 + mi * 60.0 + sec;
        }
        const double seen = static_cast<double>(ns.dropped() - g0);
        std::printf("# gst-launch fakesrc ! multiudpsink clients=%u buffers=%u datagrams=%.0f seconds=%.3f\n", clients,
                    buffers, seen, el);
        if (seen < 0.5 * buffers * clients)
            for (const auto& l : out) std::printf("#   %s", l.c_str());
        if (seen > 0 && el > 0) k.multiudpsink_mpps.push_back(seen / el / 1e6);
    }
    if (!have_gst) k.note = "gst-launch-1.0 not installed";
    return k;
}

// ------------------------------------------------------------------ parent

struct part_output {
    std::vector<std::string> lines;
    int status = -1;
};

part_output run_part(const std::vector<std::string>& args) {
    std::string cmd = "/proc/" + std::to_string(::getpid()) + "/exe";
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) cmd.assign(self, static_cast<size_t>(n));
    for (const auto& a : args) cmd += " " + a;
    cmd += " 2>&1";
    part_output out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return out;
    char line[8192];
    while (std::fgets(line, sizeof line, f)) {
        std::fputs(line, stdout);
        std::fflush(stdout);
        out.lines.emplace_back(line);
    }
    const int st = ::pclose(f);
    out.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

std::string fmt_ratio(std::optional<double> v) {
    if (!v || !std::isfinite(*v)) return "na";
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", *v);
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Stentor workload harness (issue 15): sessions of every size, a Zipf mix, kernel peers, latency"};
    std::string part;
    std::vector<unsigned> sizes{10, 100, 1000, 10000};
    unsigned reps = 3;
    double window = 1.0;
    unsigned size_total = 100000;
    unsigned ref_seconds = 4;
    unsigned kernel_clients = 1000;
    double kernel_seconds = 2.0;
    unsigned small_size = 1000;
    unsigned ipv6_listeners = 1000000;
    mix_options mo;
    app.add_option("--part", part, "run one part in this process (sizes, mix); default: all, each in a child");
    app.add_option("--sizes", sizes, "session sizes (listeners) of the sizes part");
    app.add_option("--reps", reps, "repetitions of every measurement");
    app.add_option("--window", window, "seconds per repetition (sizes)");
    app.add_option("--size-listeners", size_total, "listeners per size: sessions = this / size (1..1000)");
    app.add_option("--small-size", small_size, "the size small_session_ratio and the kernel ratios compare (listeners)");
    app.add_option("--ref-seconds", ref_seconds, "seconds of dpdk-testpmd txonly before each part");
    app.add_option("--kernel-clients", kernel_clients, "clients of the kernel peers (sendmmsg, multiudpsink)");
    app.add_option("--kernel-seconds", kernel_seconds, "seconds per kernel peer run");
    app.add_option("--ipv6-listeners", ipv6_listeners, "IPv6 listeners of the IPv6 part (one session)");
    app.add_option("--mix-sessions", mo.sessions, "sessions of the Zipf mix");
    app.add_option("--mix-listeners", mo.listeners, "listeners of the Zipf mix");
    app.add_option("--zipf-s", mo.zipf_s, "Zipf exponent of the session sizes");
    app.add_option("--mix-window", mo.window, "seconds per repetition (mix)");
    app.add_option("--churn", mo.churn, "joins and leaves per second, each, during the mix (0: none)");
    app.add_option("--load", mo.load, "latency: share of the measured capacity carried by the mix");
    app.add_option("--latency-seconds", mo.latency_seconds, "latency: seconds of samples");
    app.add_option("--probes", mo.probes, "latency: probe sessions (small sessions whose packets are stamped)");
    app.add_option("--probe-listeners", mo.probe_listeners, "latency: listeners per probe session");
    app.add_option("--iteration-budget", mo.iteration_budget,
                   "replicas per worker loop iteration (0: the data plane's default; worker_config::iteration_budget)");
    app.add_option("--spare-budget", mo.spare_budget,
                   "replicas per iteration while the core has time to spare (0: the relay's default; "
                   "worker_config::spare_budget)");
    app.add_option("--stop-check-us", mo.stop_check_us,
                   "mix: a stop of the worker longer than this ends an iteration's fan-out (-1: the data plane's "
                   "dp::stop_check_us; 0: off; worker_config::stop_cycles)");
    app.add_option("--inline-ms", mo.inline_ms,
                   "with --part mix: no threads, this many virtual milliseconds (instruction counts under callgrind)");
    CLI11_PARSE(app, argc, argv);
    mo.reps = reps;

    if (part == "sizes") return part_sizes(sizes, reps, window, size_total, mo.iteration_budget);
    if (part == "mix") return part_mix(mo);
    if (!part.empty()) {
        std::fprintf(stderr, "unknown --part %s (sizes, mix)\n", part.c_str());
        return 2;
    }

    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGINT, on_signal);
    ::signal(SIGTERM, on_signal);
    std::printf("# machine: %u CPUs; frame %u bytes (%u-byte Opus payload); worker on lcore %u; "
                "testpmd txonly on the same lcore before each part\n",
                std::thread::hardware_concurrency(), frame_len, opus_payload, worker_lcore);
    std::fflush(stdout);
    std::vector<double> ref;
    auto testpmd = [&] {
        const auto v = bench::run_testpmd({"txonly", "net_null0", {"--txpkts=" + std::to_string(frame_len)}, "Tx-pps",
                                           ref_seconds, 1});
        ref.insert(ref.end(), v.begin(), v.end());
        const stats s = summarise(v);
        std::printf("# testpmd txonly: median %.2f Mpps over %zu samples\n", s.median, v.size());
        std::fflush(stdout);
    };
    auto common = [&] {
        return std::vector<std::string>{"--reps", std::to_string(reps), "--iteration-budget",
                                        std::to_string(mo.iteration_budget), "--spare-budget",
                                        std::to_string(mo.spare_budget), "--stop-check-us",
                                        std::to_string(mo.stop_check_us)};
    };

    // 1. sessions of every size
    testpmd();
    auto a = common();
    a.insert(a.end(), {"--part", "sizes", "--window", std::to_string(window), "--size-listeners",
                       std::to_string(size_total)});
    for (unsigned n : sizes) a.insert(a.end(), {"--sizes", std::to_string(n)});
    const part_output ps = run_part(a);
    std::map<unsigned, double> by_size;
    for (const auto& l : ps.lines)
        if (l.rfind("PART sizes ", 0) == 0)
            by_size[static_cast<unsigned>(field(l, "listeners").value_or(0))] = field(l, "mpps_median").value_or(0);

    if (interrupted) return 130;
    // 2. kernel peers, same core
    testpmd();
    char exe[4096];
    const ssize_t en = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string bin_dir = en > 0 ? std::string(exe, static_cast<size_t>(en)) : std::string(argv[0]);
    bin_dir = bin_dir.substr(0, bin_dir.find_last_of('/'));
    const kernel_figures kf = run_kernel_peers(bin_dir, kernel_clients, reps, kernel_seconds);

    if (interrupted) return 130;
    // 3. Zipf mix and latency
    testpmd();
    auto m = common();
    m.insert(m.end(), {"--part", "mix", "--mix-sessions", std::to_string(mo.sessions), "--mix-listeners",
                       std::to_string(mo.listeners), "--zipf-s", std::to_string(mo.zipf_s), "--mix-window",
                       std::to_string(mo.window), "--churn", std::to_string(mo.churn), "--load", std::to_string(mo.load),
                       "--latency-seconds", std::to_string(mo.latency_seconds), "--probes", std::to_string(mo.probes),
                       "--probe-listeners", std::to_string(mo.probe_listeners)});
    const part_output pm = run_part(m);
    if (interrupted) return 130;
    std::optional<double> zipf_mpps, p99, steady_p99, steady_share;
    bool zipf_saturated = false;
    for (const auto& l : pm.lines) {
        if (l.rfind("PART mix ", 0) == 0) {
            zipf_mpps = field(l, "delivered_mpps_median");
            zipf_saturated = field(l, "saturated").value_or(0) != 0;
        }
        if (l.rfind("PART latency ", 0) == 0) p99 = field(l, "p99_us");
        if (l.rfind("PART latency_steady ", 0) == 0) {
            steady_p99 = field(l, "p99_us");
            steady_share = field(l, "share");
        }
    }
    // The platform beside it: the worker's CPU walking memory alone, in
    // 20 ms and 1 ms bins (bench/host_pace). Bins far under the best are
    // time the host took the core away, which the latency's tail includes.
    std::optional<double> host_slow_bins, host_bins, host_slow_ms, host_episodes;
    {
        const std::string cmd = "taskset -c " + std::to_string(worker_lcore) + " " + bin_dir + "/host_pace --seconds 4 2>&1";
        for (const auto& l : run_lines(cmd))
            if (l.rfind("host_pace ", 0) == 0) {
                std::printf("# host: %s", l.c_str());
                host_slow_bins = field(l, "under_60pct");
                host_bins = field(l, "bins");
                host_slow_ms = field(l, "ms_under_25pct");
                host_episodes = field(l, "episodes");
            }
        std::fflush(stdout);
    }
    // And the latency a relay that took no time would show on that CPU: the
    // rest of the host's stop a packet arrives in (host_pace --gaps), as long
    // as the latency window. No relay measured there can do better.
    std::optional<double> floor_p99;
    {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.1f", std::max(1.0, mo.latency_seconds));
        const std::string cmd =
            "taskset -c " + std::to_string(worker_lcore) + " " + bin_dir + "/host_pace --gaps --seconds " + secs + " 2>&1";
        for (const auto& l : run_lines(cmd))
            if (l.rfind("host_gaps ", 0) == 0) {
                std::printf("# host: %s", l.c_str());
                floor_p99 = field(l, "floor_p99_us");
            }
        std::fflush(stdout);
    }

    if (interrupted) return 130;
    // 4. IPv6: one session of ipv6_listeners IPv6 listeners, beside testpmd
    // txonly sending a frame of the IPv6 replica's length (154 bytes: txonly
    // builds IPv4 only, so the reference is an IPv4 frame as long as ours).
    // fanout_harness --family ipv6 measures both, alternating, on lcore 1.
    std::optional<double> ipv6_ratio;
    {
        const std::string cmd = bin_dir + "/fanout_harness --family ipv6 --listeners " + std::to_string(ipv6_listeners) +
                                " --reps " + std::to_string(reps) + " 2>&1";
        std::printf("# ipv6: %s\n", cmd.c_str());
        for (const auto& l : run_lines(cmd)) {
            if (l.rfind("RESULT ", 0) == 0) std::printf("# ipv6: %s", l.c_str());
            if (l.rfind("ipv6_ratio=", 0) == 0) ipv6_ratio = std::strtod(l.c_str() + 11, nullptr);
        }
        if (!ipv6_ratio) std::printf("# ipv6: fanout_harness printed no ipv6_ratio\n");
        std::fflush(stdout);
    }

    // Summary
    const stats rs = summarise(ref);
    std::printf("\n# summary (replicas/s; ratios to testpmd txonly median %.2f Mpps, %zu samples, %.2f-%.2f)\n",
                rs.median, ref.size(), rs.min, rs.max);
    std::printf("# %-28s %10s %8s\n", "workload", "Mpps", "ratio");
    auto ratio_of = [&](double v) { return rs.median > 0 ? fmt_ratio(v / rs.median) : std::string("na"); };
    for (const auto& [n, v] : by_size)
        std::printf("# %-28s %10.2f %8s\n", ("sessions of " + std::to_string(n)).c_str(), v, ratio_of(v).c_str());
    if (zipf_mpps) std::printf("# %-28s %10.2f %8s\n", "Zipf mix", *zipf_mpps, ratio_of(*zipf_mpps).c_str());
    if (zipf_mpps && !zipf_saturated)
        std::printf("# the mix did not saturate the core: its figure is the offered load, not the capacity, and the "
                    "latency load is 80 %% of that; raise --mix-listeners\n");
    const double small = by_size.count(small_size) ? by_size[small_size] : 0.0;
    std::optional<double> small_ratio, zipf_ratio, k_ratio, g_ratio;
    if (small > 0 && rs.median > 0) small_ratio = small / rs.median;
    if (zipf_mpps && rs.median > 0) zipf_ratio = *zipf_mpps / rs.median;
    const stats ks = summarise(kf.sendmmsg_mpps), gs = summarise(kf.multiudpsink_mpps);
    if (!kf.sendmmsg_mpps.empty()) {
        std::printf("# %-28s %10.3f %8s  Stentor (sessions of %u) / it: %.1fx\n", "kernel sendmmsg", ks.median, "",
                    small_size, small / ks.median);
        if (small > 0) k_ratio = small / ks.median;
    }
    if (!kf.multiudpsink_mpps.empty()) {
        std::printf("# %-28s %10.3f %8s  Stentor (sessions of %u) / it: %.1fx\n", "GStreamer multiudpsink", gs.median,
                    "", small_size, small / gs.median);
        if (small > 0) g_ratio = small / gs.median;
    }
    if (!kf.note.empty()) std::printf("# kernel peers: %s\n", kf.note.c_str());
    std::printf("kernel_peers clients=%u sendmmsg_mpps=%.3f multiudpsink_mpps=%.3f sendmmsg_ratio=%s "
                "multiudpsink_ratio=%s\n",
                kernel_clients, ks.median, gs.median, fmt_ratio(k_ratio).c_str(), fmt_ratio(g_ratio).c_str());
    if (ipv6_ratio)
        std::printf("# %-28s %10s %8s  (%u IPv6 listeners, txonly with a frame of the same length)\n", "IPv6 fan-out", "",
                    fmt_ratio(ipv6_ratio).c_str(), ipv6_listeners);
    std::string steady_us = "na";
    if (steady_p99) {
        char b[32];
        std::snprintf(b, sizeof b, "%.1f", *steady_p99);
        steady_us = b;
    }
    if (p99 && floor_p99)
        std::printf("# latency reference: a relay that took no time would show p99 %.1f us on this CPU (the host's own "
                    "stops, host_pace --gaps); Stentor's p99 is %.1f us above it\n",
                    *floor_p99, *p99 - *floor_p99);
    if (p99)
        std::printf("# latency, %u-listener sessions at %.0f %% load: p99 %.1f us over every probe; %s us over the %s of "
                    "probes that arrived and left while the core kept its pace (PART latency_steady); host_pace: %s\n",
                    mo.probe_listeners, 100 * mo.load, *p99, steady_us.c_str(), fmt_ratio(steady_share).c_str(),
                    host_bins ? (std::to_string(std::lround(host_slow_bins.value_or(0))) + " of " +
                                 std::to_string(std::lround(*host_bins)) + " 20 ms bins under 60 % of the best, " +
                                 std::to_string(std::lround(host_slow_ms.value_or(0))) + " 1 ms bins under 25 % of the median in " +
                                 std::to_string(std::lround(host_episodes.value_or(0))) + " episodes")
                                    .c_str()
                              : "did not run");
    std::printf("RESULT ipv6_ratio=%s small_session_ratio=%s zipf_ratio=%s kernel_sendmmsg_ratio=%s latency_p99_us=%s\n",
                fmt_ratio(ipv6_ratio).c_str(), fmt_ratio(small_ratio).c_str(), fmt_ratio(zipf_ratio).c_str(), fmt_ratio(k_ratio).c_str(),
                p99 ? fmt_ratio(*p99).c_str() : "na");
    return (ps.status == 0 && pm.status == 0) ? 0 : 1;
}
