// Fan-out harness: how many replicas per second one fan-out lcore builds and
// sends, beside what dpdk-testpmd --forward-mode=txonly sends from the same
// core in the same run (the cost of building a packet from a template and
// sending it: the ceiling DESIGN.md names).
//
// EAL on net_null (no-rx: the lcore only fans out), sessions of N listeners
// (N = 1 k, 10 k, 100 k, 1 M by default), one fan-out lcore (lcore 1). Speaker
// packets are handed to the shard as messages from the main lcore in bursts
// of 32, as an RX lcore hands them over (bench/feeder.h), with a few
// milliseconds of work queued ahead so the fan-out lcore never idles.
// Repetitions give the median and spread. The last line is
//   RESULT fanout_mpps=<x> txonly_mpps=<y> ratio=<x/y> listeners=<N> lcores=1
// for the largest N. --json FILE also writes every series (samples
// included) as JSON lines for scripts/bench-report.py (bench/jsonl.h);
// --no-reference skips testpmd (and the RESULT line).
//
// --family ipv6: the listeners are IPv6 hosts (32-byte records,
// Ethernet+IPv6+UDP replicas, 154-byte frames for an 80-byte payload) and
// testpmd txonly sends IPv4 frames of the same length (DPDK 22.11's txonly
// has no IPv6 mode: --tx-ip takes IPv4 only); the RESULT line then ends in
// family=ipv6 and a line `ipv6_ratio=<x>` follows.
//
// --inline-packets K: no threads; the main thread feeds bursts of
// --inline-burst messages and polls the worker until it is idle, K packets in
// all: deterministic, for instruction counts (bench/count_instructions.sh).
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "config.h"
#include "ip6.h"
#include "drivers.h"
#include "feeder.h"
#include "jsonl.h"
#include "reference.h"
#include "relay.h"

namespace {

using namespace stentor;
using clock_type = std::chrono::steady_clock;

using bench::stats;
using bench::summarise;

std::vector<double> run_testpmd(unsigned secs, unsigned frame) {
    return bench::run_testpmd({"txonly", "net_null0", {"--txpkts=" + std::to_string(frame)}, "Tx-pps", secs, 1});
}

std::vector<uint8_t> rtp_packet(uint16_t seq, size_t payload) {
    std::vector<uint8_t> p(12 + payload);
    p[0] = 0x80;
    p[1] = 111;
    p[2] = static_cast<uint8_t>(seq >> 8);
    p[3] = static_cast<uint8_t>(seq);
    const uint32_t ts = seq * 960u;
    p[4] = static_cast<uint8_t>(ts >> 24);
    p[5] = static_cast<uint8_t>(ts >> 16);
    p[6] = static_cast<uint8_t>(ts >> 8);
    p[7] = static_cast<uint8_t>(ts);
    p[11] = 1;
    for (size_t i = 0; i < payload; ++i) p[12 + i] = static_cast<uint8_t>(i);
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Stentor fan-out harness"};
    std::vector<unsigned> sizes{1000, 10000, 100000, 1000000};
    unsigned reps = 5;
    double window = 2.0;
    unsigned ref_secs = 5;
    size_t payload = 80;
    app.add_option("--listeners", sizes, "session sizes to measure");
    app.add_option("--reps", reps, "repetitions per size");
    app.add_option("--window", window, "seconds per repetition");
    app.add_option("--ref-seconds", ref_secs, "seconds of dpdk-testpmd txonly before each repetition of the largest size");
    app.add_option("--payload", payload, "Opus payload bytes (80 -> 134-byte frames)");
    unsigned latency_samples = 20;
    app.add_option("--latency-samples", latency_samples,
                   "packets sent one at a time per size, each timed from ingress to its last replica");
    std::string json_path;
    app.add_option("--json", json_path, "also write every series as JSON lines here (scripts/bench-report.py)");
    bool no_reference = false;
    app.add_flag("--no-reference", no_reference,
                 "skip dpdk-testpmd (and the RESULT line that needs it): quick runs that only exercise the harness");
    unsigned inline_packets = 0;
    unsigned inline_burst = 32;
    unsigned nb_sessions = 1;
    app.add_option("--inline-packets", inline_packets,
                   "instead: poll the worker on the main thread for this many packets of the first size "
                   "(deterministic; for valgrind --tool=callgrind instruction counts per replica)");
    app.add_option("--inline-burst", inline_burst, "messages fed per burst in --inline-packets mode (1..64)");
    app.add_option("--sessions", nb_sessions, "sessions of each size, fed round robin");
    std::string family = "ipv4";
    app.add_option("--family", family, "listeners' family: ipv4 or ipv6")->check(CLI::IsMember({"ipv4", "ipv6"}));
    CLI11_PARSE(app, argc, argv);
    const bool v6 = family == "ipv6";
    const unsigned frame = static_cast<unsigned>(14 + (v6 ? 40 : 20) + 8 + 12 + payload);
    bench::jsonl out;
    if (!out.open(json_path)) return 2;

    std::printf("# machine: %u CPUs; frame %u bytes; fan-out on lcore 1\n", std::thread::hardware_concurrency(), frame);
    std::printf("# reference: dpdk-testpmd --forward-mode=txonly --txpkts=%u on lcore 1 (net_null)%s\n", frame,
                v6 ? "; IPv4 frames of the IPv6 replicas' length (22.11 txonly sends no IPv6)" : "");
    std::printf("# listeners: %s\n", family.c_str());
    std::fflush(stdout);

    control::profile p;
    p.path = "fanout_harness";
    p.eal.lcores = {0, 1};
    p.eal.memory_mb = 1024;
    p.eal.file_prefix = "stentor-fanout-" + std::to_string(::getpid());
    p.eal.vdevs = {"net_null0,no-rx=1"};
    p.eal.mbufs = 16383;
    p.eal.mbuf_cache = 256;
    p.eal.log_level = "error";
    p.dataplane.rx_lcores = {1};
    p.dataplane.fanout_lcores = {1};
    p.dataplane.frame_deadline_us = 1000000;
    p.dataplane.stats_interval_s = 0;
    control::port_config pc;
    pc.name = "null0";
    pc.device = "net_null0";
    pc.ipv4 = 0xc6120001;
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    pc.gateway_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0, 0xfe};
    pc.tx_desc = 1024;
    pc.ipv6 = *control::parse_ipv6("2001:db8:100::1");
    pc.prefix6_len = 64;
    pc.gateway6 = *control::parse_ipv6("2001:db8:100::fe");
    pc.gateway6_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0x06, 0xfe};
    p.ports.push_back(pc);
    // Listener i: 10.0.0.1 + i via the IPv4 gateway, or 2001:db8:1::/48 + i
    // via gateway6 (both pinned: no ARP or ND in the way).
    auto add_listener = [v6](control::relay_state& st, uint32_t sid, uint32_t i) {
        if (!v6) return st.listener_add(sid, 0x0a000001 + i, 5004, 0);
        control::ipv6_addr a = *control::parse_ipv6("2001:db8:1::");
        a[12] = static_cast<uint8_t>(i >> 24);
        a[13] = static_cast<uint8_t>(i >> 16);
        a[14] = static_cast<uint8_t>(i >> 8);
        a[15] = static_cast<uint8_t>(i);
        st.listener_add(sid, control::listener_spec{0, 5004, 0, false, a});
    };
    p.limits.max_listeners = 4000000;
    p.limits.max_listeners_per_session = 4000000;

    drivers::eal_params ep{p.eal.lcores, 0, p.eal.memory_mb, false, p.eal.file_prefix, {}, p.eal.vdevs, "error"};
    if (inline_packets > 0) {
        // Under valgrind a million-listener packet takes minutes: no deadline.
        p.dataplane.frame_deadline_us = 3600u * 1000000u;
        drivers::eal_init(ep);
        {
            // The stop check runs as on a launched worker (its instructions
            // are counted), with a threshold valgrind's slow clock never reaches.
            control::relay r(p, control::relay_options{.launch = false, .stop_cycles = rte_get_tsc_hz() * 3600});
            std::vector<uint32_t> ids;
            for (unsigned k = 0; k < nb_sessions; ++k) {
                control::session_params sp;
                ids.push_back(r.state().session_create(sp).id);
                for (unsigned i = 0; i < sizes.front(); ++i)
                    add_listener(r.state(), ids.back(), k * sizes.front() + i);
            }
            r.state().publish();
            bench::message_feeder feeder(r.pool(), r.shared().shard_rings[0], rtp_packet(1, payload));
            feeder.set_sessions(bench::resolve_sessions(r.shared(), ids));
            for (unsigned k = 0; k < inline_packets;) {
                k += feeder.feed(std::min(inline_burst, inline_packets - k));
                while (r.poll() > 0) {
                }
            }
            r.flush();
            std::printf("inline: packets=%u listeners=%u sessions=%u burst=%u replicas_out=%llu\n", inline_packets,
                        sizes.front(), nb_sessions, inline_burst,
                        static_cast<unsigned long long>(r.totals().replicas_out));
        }
        drivers::eal_cleanup();
        return 0;
    }
    std::vector<double> ref;
    drivers::eal_init(ep);
    double last_x = 0;
    unsigned last_n = 0;
    {
        control::relay r(p);
        r.start();
        const auto pkt = rtp_packet(1, payload);
        std::vector<uint32_t> session_ids;
        uint32_t next_ip = 0;   // listener index (add_listener)
        uint64_t have = 0;
        for (unsigned n : sizes) {
            // fresh sessions of n listeners each
            for (uint32_t id : session_ids) r.state().session_end(id);
            session_ids.clear();
            const auto t0 = clock_type::now();
            for (unsigned k = 0; k < nb_sessions; ++k) {
                control::session_params sp;
                sp.frame_ms = 20;
                session_ids.push_back(r.state().session_create(sp).id);
                for (unsigned i = 0; i < n; ++i) add_listener(r.state(), session_ids.back(), next_ip++);
            }
            r.state().publish();
            const double join_s = std::chrono::duration<double>(clock_type::now() - t0).count();
            have = n;
            bench::message_feeder feeder(r.pool(), r.shared().shard_rings[0], pkt);
            feeder.set_sessions(bench::resolve_sessions(r.shared(), session_ids));

            // latency: one packet alone, ingress to last replica
            auto replicas = [&] { return r.totals().replicas_out; };
            auto wait_for = [&](uint64_t target, double timeout) {
                const auto t = clock_type::now();
                // Poll gently: reading the counters pulls the fan-out lcore's
                // cache line away from it; a tight loop here halved its rate.
                while (replicas() < target) {
                    if (std::chrono::duration<double>(clock_type::now() - t).count() > timeout) return false;
                    std::this_thread::sleep_for(std::chrono::microseconds(50));
                }
                return true;
            };
            std::vector<double> lat;
            for (unsigned k = 0; k < latency_samples; ++k) {
                const uint64_t before = replicas();
                const auto ts = clock_type::now();
                if (feeder.feed(1) != 1) break;
                if (!wait_for(before + have, 5.0)) break;
                lat.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - ts).count());
            }

            // throughput: bursts of 32 messages, a few milliseconds of work
            // (at least 4 packets) queued ahead. For the largest size, each
            // repetition is paired with a testpmd txonly run on the same core
            // just before it (our workers stopped meanwhile), so load from
            // other tenants of the machine hits both sides alike.
            const bool paired = n == sizes.back() && !no_reference;
            const uint64_t ahead = std::max<uint64_t>(uint64_t{4} * n, 256 * 1024);
            std::vector<double> mpps;
            for (unsigned rep = 0; rep < reps; ++rep) {
                if (paired) {
                    r.stop();
                    const auto v = run_testpmd(ref_secs, frame);
                    ref.insert(ref.end(), v.begin(), v.end());
                    r.start();
                }
                const uint64_t start = replicas();
                const auto ts = clock_type::now();
                const uint64_t injected = feeder.run(window, ahead, 960, [&] { return bench::replicas_disposed(r.totals()); });
                const double el = std::chrono::duration<double>(clock_type::now() - ts).count();
                const uint64_t sent = replicas() - start;
                mpps.push_back(static_cast<double>(sent) / el / 1e6);
                if (std::getenv("FANOUT_DEBUG")) {
                    const auto t = r.totals();
                    std::fprintf(stderr, "rep %u: injected=%llu sent=%llu deadline=%llu jobs_full=%llu busy=%llu idle=%llu\n", rep,
                                 (unsigned long long)injected, (unsigned long long)sent,
                                 (unsigned long long)t.drops[static_cast<size_t>(dp::drop_reason::deadline)],
                                 (unsigned long long)t.drops[static_cast<size_t>(dp::drop_reason::jobs_full)],
                                 (unsigned long long)t.busy_cycles, (unsigned long long)t.idle_cycles);
                }
                // Drain before the next repetition: the ring empty and nothing
                // sent for 10 ms.
                for (uint64_t prev = replicas();;) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    const uint64_t cur = replicas();
                    if (cur == prev && rte_ring_count(r.shared().shard_rings[0]) == 0) break;
                    prev = cur;
                }
            }
            const stats s = summarise(mpps);
            const double bytes_per_listener =
                v6 ? 32.0 + 8.0 / dp::listener6_chunk_size : 16.0 + 8.0 / dp::listener_chunk_size;
            std::printf("listeners=%u sessions=%u fanout_mpps median=%.2f min=%.2f max=%.2f reps=%u join_s=%.2f "
                        "dp_bytes_per_listener=%.3f",
                        n, nb_sessions, s.median, s.min, s.max, reps, join_s, bytes_per_listener);
            if (!lat.empty()) {
                const stats l = summarise(lat);
                std::printf(" ingress_to_last_replica_ms median=%.2f min=%.2f max=%.2f", l.median, l.min, l.max);
            }
            std::printf("\n");
            std::fflush(stdout);
            out.write({{"bench", "fanout"}, {"kind", "fanout"}, {"listeners", n}, {"frame", frame}, {"window_s", window},
                       {"join_s", join_s}, {"mpps", bench::series(mpps, s.median, s.min, s.max)}});
            if (!lat.empty()) {
                const stats l = summarise(lat);
                out.write({{"bench", "fanout"}, {"kind", "latency"}, {"listeners", n},
                           {"what", "ingress to last replica, one packet alone"},
                           {"ms", bench::series(lat, l.median, l.min, l.max)}});
            }
            last_x = s.median;
            last_n = n;
        }
        const auto t = r.totals();
        std::printf("# drops: tx_full=%llu no_mbuf=%llu deadline=%llu ring_full=%llu\n",
                    static_cast<unsigned long long>(t.drops[static_cast<size_t>(dp::drop_reason::tx_full)]),
                    static_cast<unsigned long long>(t.drops[static_cast<size_t>(dp::drop_reason::no_mbuf)]),
                    static_cast<unsigned long long>(t.drops[static_cast<size_t>(dp::drop_reason::deadline)]),
                    static_cast<unsigned long long>(t.drops[static_cast<size_t>(dp::drop_reason::ring_full)]));
        r.stop();
    }
    drivers::eal_cleanup();
    if (no_reference) {
        out.write({{"bench", "fanout"}, {"kind", "result"}, {"fanout_mpps", last_x}, {"txonly_mpps", nullptr},
                   {"listeners", last_n}, {"lcores", 1}});
        std::printf("# --no-reference: dpdk-testpmd not run, no RESULT line\n");
        return 0;
    }
    if (ref.empty()) {
        std::printf("testpmd printed no Tx-pps figures\n");
        return 1;
    }
    const stats rs = summarise(ref);
    out.write({{"bench", "fanout"}, {"kind", "txonly"}, {"frame", frame}, {"mpps", bench::series(ref, rs.median, rs.min, rs.max)},
               {"what", "dpdk-testpmd --forward-mode=txonly --txpkts=" + std::to_string(frame) + " on lcore 1 (net_null)"}});
    out.write({{"bench", "fanout"}, {"kind", "result"}, {"fanout_mpps", last_x}, {"txonly_mpps", rs.median},
               {"ratio", last_x / rs.median}, {"listeners", last_n}, {"lcores", 1}, {"family", family}});
    std::printf("txonly_mpps median=%.2f min=%.2f max=%.2f samples=%zu\n", rs.median, rs.min, rs.max, ref.size());
    std::printf("RESULT fanout_mpps=%.2f txonly_mpps=%.2f ratio=%.3f listeners=%u lcores=1%s\n", last_x, rs.median,
                last_x / rs.median, last_n, v6 ? " family=ipv6" : "");
    if (v6) std::printf("ipv6_ratio=%.3f\n", last_x / rs.median);
    return 0;
}
