// Unknown-traffic drop harness: how many packets per second one ingress
// lcore receives and drops, beside what dpdk-testpmd --forward-mode=io moves
// on the same core (net_null, same frame size) in the same run.
//
// EAL on net_null, the relay's own worker (RX + validate + flow lookup +
// count + bulk free) polled on the main lcore, one core, as testpmd's one
// forwarding lcore; no listeners reached. Three workloads:
//   unknown_flow  - every frame a well-formed IPv4/UDP/RTP packet to a
//                   registered session port from an address nobody registered:
//                   the whole validator and the flow lookup run, then the drop.
//                   This is the flood a relay actually sees, and the RESULT.
//   garbage       - net_null's own zeroed frames (dropped at the ethertype).
//   unknown_flow6 - the same over IPv6 (a valid UDP checksum, to the port's
//                   ipv6): the IPv6 validator and find_flow6, then the drop.
//                   No UDP checksum may be summed for it (ingress.cc
//                   rtp_input6); --frame 1514 is the 1500-byte spoofed flood.
// net_null's RX does not write packet data (copy=0): it hands out mbufs from
// the pool as they are, so writing the unknown-flow frame into every mbuf of
// the pool before the worker starts makes net_null "receive" it forever.
//
// Repetitions (1 s windows) give the median and the spread. Last line:
//   RESULT drop_mpps=<x> testpmd_io_mpps=<y> ratio=<x/y> workload=unknown_flow garbage_mpps=<z> unknown6_mpps=<w>
// --json FILE also writes the three series (samples included) as JSON lines
// for scripts/bench-report.py (bench/jsonl.h).
// --count-packets K: no testpmd, no clock: the worker polled until it has
// dropped K unknown-flow frames, then exit; for callgrind
// (bench/count_join_instructions.sh BUILD_DIR drop), which counts what a
// dropped frame costs inside worker_poll. --workload unknown_flow6 counts
// the IPv6 frames instead.
#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "config.h"
#include "drivers.h"
#include "jsonl.h"
#include "stentor/wire.h"
#include "reference.h"
#include "relay.h"
#include "startup.h"

namespace {

using namespace stentor;
using clock_type = std::chrono::steady_clock;

constexpr uint32_t relay_ip = 0xc6120001;   // 198.18.0.1
constexpr std::array<uint8_t, 6> relay_mac{0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
// 2001:db8:5354::1, the port's ipv6; ::a, the registered IPv6 speaker;
// 2001:db8:7107::7, the unknown one.
constexpr control::ipv6_addr relay_ip6{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr control::ipv6_addr speaker_ip6{0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a};
constexpr control::ipv6_addr unknown_ip6{0x20, 0x01, 0x0d, 0xb8, 0x71, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07};
// Ethernet, IPv6, UDP, RTP header and one payload byte.
constexpr unsigned min_frame6 = 14 + 40 + 8 + 12 + 1;

using bench::stats;
using bench::summarise;

void print_stats(const char* what, const stats& s) {
    const double spread = s.median > 0 ? 100.0 * (s.max - s.min) / s.median : 0;
    std::printf("%-34s median %6.2f Mpps  min %6.2f  max %6.2f  spread %4.1f%%\n", what, s.median, s.min, s.max,
                spread);
}

// dpdk-testpmd io forwarding on lcore 1 for `secs`; the Rx-pps figures it
// printed once a second, the first two (ramp-up) skipped.
std::vector<double> run_testpmd(unsigned secs, unsigned frame) {
    return bench::run_testpmd(
        {"io", "net_null0,size=" + std::to_string(frame), {}, "Rx-pps", secs + 2, 2});
}

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}

// The parts both frames share: Ethernet from the unknown sender's MAC to
// the relay's, and UDP 5004 -> session port 40000 (`udp_len` bytes, the
// checksum left 0) carrying an RTP header (version 2, PT 111, SSRC 0x5354).
void put_eth(uint8_t* b, uint16_t ethertype) {
    std::memcpy(b, relay_mac.data(), 6);
    const uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x07};
    std::memcpy(b + 6, src_mac, 6);
    put16(b + 12, ethertype);
}
void put_udp_rtp(uint8_t* udp, uint16_t udp_len) {
    put16(udp, 5004);
    put16(udp + 2, 40000);
    put16(udp + 4, udp_len);
    uint8_t* rtp = udp + 8;
    rtp[0] = 0x80;
    rtp[1] = 111;
    put32(rtp + 8, 0x5354);
}

// A good RTP/UDP/IPv4 frame of `len` bytes from 203.0.113.7:5004 (never
// registered) to session port 40000.
std::vector<uint8_t> unknown_flow_frame(unsigned len) {
    std::vector<uint8_t> b(len, 0);
    put_eth(b.data(), 0x0800);
    uint8_t* ip = b.data() + 14;
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(len - 14));
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, 0xcb007107);
    put32(ip + 16, relay_ip);
    put16(ip + 10, static_cast<uint16_t>(~wire::csum_fold(wire::csum_add(0, ip, 20))));
    put_udp_rtp(ip + 20, static_cast<uint16_t>(len - 34));
    return b;
}

// The same from [2001:db8:7107::7]:5004 over IPv6, its UDP checksum valid
// (what a sender's kernel writes; a damaged one would be dropped the same).
std::vector<uint8_t> unknown_flow6_frame(unsigned len) {
    std::vector<uint8_t> b(len, 0);
    put_eth(b.data(), 0x86dd);
    uint8_t* ip = b.data() + 14;
    const auto ul = static_cast<uint16_t>(len - 54);
    ip[0] = 0x60;
    put16(ip + 4, ul);
    ip[6] = 17;
    ip[7] = 64;
    std::memcpy(ip + 8, unknown_ip6.data(), 16);
    std::memcpy(ip + 24, relay_ip6.data(), 16);
    uint8_t* udp = ip + 40;
    put_udp_rtp(udp, ul);
    const auto c = static_cast<uint16_t>(~wire::csum_fold(wire::csum_add(wire::ipv6_pseudo_sum(ip, ul, 17), udp, ul)));
    put16(udp + 6, c == 0 ? 0xffff : c);
    return b;
}

struct fill_arg {
    const std::vector<uint8_t>* frame;
};

void fill_mbuf(rte_mempool*, void* opaque, void* obj, unsigned) {
    auto* a = static_cast<fill_arg*>(opaque);
    auto* m = static_cast<rte_mbuf*>(obj);
    // Where rte_pktmbuf_reset() will put the data when net_null allocates it.
    auto* d = static_cast<uint8_t*>(m->buf_addr) + RTE_PKTMBUF_HEADROOM;
    std::memcpy(d, a->frame->data(), a->frame->size());
}

control::profile bench_profile(unsigned frame) {
    control::profile p;
    p.path = "drop_harness";
    // The worker is polled on the main lcore: lcore 0 is enough.
    p.eal.lcores = {0};
    p.eal.memory_mb = 1024;
    p.eal.file_prefix = "stentor-drop-" + std::to_string(::getpid());
    p.eal.vdevs = {"net_null0,size=" + std::to_string(frame)};
    p.eal.mbufs = 16383;
    p.eal.mbuf_cache = 256;
    p.eal.log_level = "error";
    p.dataplane.rx_lcores = {0};
    p.dataplane.fanout_lcores = {0};
    p.dataplane.stats_interval_s = 0;
    control::port_config pc;
    pc.name = "null0";
    pc.device = "net_null0";
    pc.ipv4 = relay_ip;
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    pc.mac = relay_mac;
    pc.ipv6 = relay_ip6;
    pc.prefix6_len = 64;
    p.ports.push_back(pc);
    // One registered session and speaker per family, so each flow lookup
    // probes a real table and misses, as under attack.
    control::session_config sc;
    sc.id = 1;
    sc.udp_port = 40000;
    sc.speakers.push_back({0xc612000a, 5004, 1234});
    sc.speakers.push_back({0, 5004, 1234, speaker_ip6});
    p.sessions.push_back(sc);
    return p;
}

// Polls the relay's worker on this (main) lcore for `reps` one-second
// windows; returns Mpps received (= dropped) per window and checks that every
// packet was dropped under `expect_counter`. launch=false: the same worker
// code the lcores run, but the harness decides when it runs, so one relay
// serves both workloads (the pool is refilled in between).
std::vector<double> measure(control::relay& r, unsigned reps, const char* expect_counter) {
    const auto count = [&](const char* name) {
        for (const auto& [k, v] : r.counters(true))
            if (k == name) return v;
        return uint64_t{0};
    };
    const auto c0 = r.totals();
    const uint64_t d0 = count(expect_counter);
    const auto run_for = [&](std::chrono::milliseconds d) {
        const auto end = clock_type::now() + d;
        while (clock_type::now() < end)
            for (int i = 0; i < 1024; ++i) r.poll();
    };
    run_for(std::chrono::milliseconds(300));   // warm-up: caches, branch predictors
    std::vector<double> mpps;
    for (unsigned i = 0; i < reps; ++i) {
        const uint64_t rx0 = r.totals().rx_packets;
        const auto t0 = clock_type::now();
        run_for(std::chrono::milliseconds(1000));
        const uint64_t rx1 = r.totals().rx_packets;
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        mpps.push_back(static_cast<double>(rx1 - rx0) / s / 1e6);
    }
    r.flush();
    const auto t = r.totals();
    const uint64_t rx = t.rx_packets - c0.rx_packets;
    const uint64_t dropped = count(expect_counter) - d0;
    std::printf("# %s: rx %llu, dropped %llu, rtp_in %llu, replicas_out %llu\n", expect_counter,
                static_cast<unsigned long long>(rx), static_cast<unsigned long long>(dropped),
                static_cast<unsigned long long>(t.rtp_in - c0.rtp_in),
                static_cast<unsigned long long>(t.replicas_out - c0.replicas_out));
    if (t.rtp_in != c0.rtp_in || t.replicas_out != c0.replicas_out || dropped != rx || rx == 0) {
        std::printf("# ERROR: not everything received was dropped as %s\n", expect_counter);
        std::exit(1);
    }
    return mpps;
}

// --count-packets K (see the top).
int count_packets(unsigned frame, uint64_t k, bool v6) {
    const control::profile p = bench_profile(frame);
    drivers::eal_init(control::eal_params_of(p));   // bench_profile: log level "error"
    uint64_t rx = 0, polls = 0;
    {
        control::relay r(p, control::relay_options{.launch = false});
        r.state().load_static(p);
        const auto frame_bytes = v6 ? unknown_flow6_frame(frame) : unknown_flow_frame(frame);
        fill_arg fa{&frame_bytes};
        rte_mempool_obj_iter(r.pool(), fill_mbuf, &fa);
        const uint64_t rx0 = r.totals().rx_packets;
        while (r.totals().rx_packets - rx0 < k)
            for (int i = 0; i < 64; ++i, ++polls) r.poll();
        rx = r.totals().rx_packets - rx0;
    }
    drivers::eal_cleanup();
    std::printf("COUNT rx=%llu polls=%llu\n", static_cast<unsigned long long>(rx), static_cast<unsigned long long>(polls));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    unsigned reps = 7;
    unsigned frame = 134;   // one Opus listener stream's frame (DESIGN.md)
    std::string json_path;
    std::string workload = "unknown_flow";   // --count-packets only: or unknown_flow6
    uint64_t count_k = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--count-packets") count_k = std::strtoull(argv[i + 1], nullptr, 10);
        if (a == "--reps") reps = static_cast<unsigned>(std::atoi(argv[i + 1]));
        if (a == "--frame") frame = static_cast<unsigned>(std::atoi(argv[i + 1]));
        if (a == "--json") json_path = argv[i + 1];
        if (a == "--workload") workload = argv[i + 1];
    }
    bench::jsonl out;
    if (!out.open(json_path)) return 2;
    reps = std::max(3u, reps);
    frame = std::clamp(frame, 60u, 1514u);
    const bool count_v6 = workload == "unknown_flow6";
    if (!count_v6 && workload != "unknown_flow") {
        std::fprintf(stderr, "--workload: unknown_flow or unknown_flow6\n");
        return 2;
    }
    if (count_k > 0) {
        if (count_v6 && frame < min_frame6) {
            std::fprintf(stderr, "--workload unknown_flow6 needs --frame %u or more\n", min_frame6);
            return 2;
        }
        return count_packets(frame, count_k, count_v6);
    }
    std::printf("# machine: %u CPUs; frame %u bytes; ingress worker on the main lcore; %u x 1 s windows\n",
                std::thread::hardware_concurrency(), frame, reps);
    std::fflush(stdout);

    // The reference first, in a child process with its own EAL.
    std::printf("# reference: dpdk-testpmd --forward-mode=io on lcore 1 (net_null,size=%u)\n", frame);
    std::fflush(stdout);
    const std::vector<double> ref_v = run_testpmd(reps, frame);
    const stats ref = summarise(ref_v);

    const control::profile p = bench_profile(frame);
    drivers::eal_init(control::eal_params_of(p));   // bench_profile: log level "error"
    stats garbage{}, unknown{}, unknown6{};
    std::vector<double> garbage_v, unknown_v, unknown6_v;
    const bool with_v6 = frame >= min_frame6;
    {
        control::relay r(p, control::relay_options{.launch = false});
        r.state().load_static(p);
        const auto frame_bytes = unknown_flow_frame(frame);
        fill_arg fa{&frame_bytes};
        rte_mempool_obj_iter(r.pool(), fill_mbuf, &fa);
        unknown_v = measure(r, reps, "drop/ingress/unknown_flow");
        unknown = summarise(unknown_v);
        // Then net_null's own garbage: zero every mbuf of the pool.
        const std::vector<uint8_t> zeros(frame, 0);
        fill_arg fz{&zeros};
        rte_mempool_obj_iter(r.pool(), fill_mbuf, &fz);
        garbage_v = measure(r, reps, "drop/ingress/eth_type");
        garbage = summarise(garbage_v);
        // Last, so the two series above stay comparable with earlier runs.
        if (with_v6) {
            const auto frame6 = unknown_flow6_frame(frame);
            fill_arg f6{&frame6};
            rte_mempool_obj_iter(r.pool(), fill_mbuf, &f6);
            unknown6_v = measure(r, reps, "drop/ingress/unknown_flow");
            unknown6 = summarise(unknown6_v);
        }
    }
    drivers::eal_cleanup();

    print_stats("testpmd io forward (lcore 1)", ref);
    print_stats("drop unknown_flow (1 lcore)", unknown);
    print_stats("drop garbage/eth_type (1 lcore)", garbage);
    if (with_v6)
        print_stats("drop unknown_flow IPv6 (1 lcore)", unknown6);
    else
        std::printf("# no IPv6 workload: a %u-byte frame cannot hold one (%u bytes at least)\n", frame, min_frame6);
    if (ref.median <= 0) {
        std::printf("testpmd printed no Rx-pps figures\n");
        return 1;
    }
    out.write({{"bench", "drop"}, {"kind", "testpmd_io"}, {"frame", frame},
               {"what", "dpdk-testpmd --forward-mode=io on lcore 1 (net_null)"},
               {"mpps", bench::series(ref_v, ref.median, ref.min, ref.max)}});
    out.write({{"bench", "drop"}, {"kind", "unknown_flow"}, {"frame", frame},
               {"what", "well-formed RTP from unregistered sources, received and dropped on one core"},
               {"mpps", bench::series(unknown_v, unknown.median, unknown.min, unknown.max)}});
    out.write({{"bench", "drop"}, {"kind", "garbage"}, {"frame", frame},
               {"what", "zeroed frames, dropped at the ethertype, one core"},
               {"mpps", bench::series(garbage_v, garbage.median, garbage.min, garbage.max)}});
    if (with_v6)
        out.write({{"bench", "drop"}, {"kind", "unknown_flow6"}, {"frame", frame},
                   {"what", "well-formed RTP over IPv6 from unregistered sources, received and dropped on one core"},
                   {"mpps", bench::series(unknown6_v, unknown6.median, unknown6.min, unknown6.max)}});
    out.write({{"bench", "drop"}, {"kind", "result"}, {"drop_mpps", unknown.median}, {"testpmd_io_mpps", ref.median},
               {"ratio", unknown.median / ref.median}, {"garbage_mpps", garbage.median},
               {"unknown6_mpps", unknown6.median}});
    std::printf("RESULT drop_mpps=%.2f testpmd_io_mpps=%.2f ratio=%.3f workload=unknown_flow garbage_mpps=%.2f "
                "unknown6_mpps=%.2f\n",
                unknown.median, ref.median, unknown.median / ref.median, garbage.median, unknown6.median);
    return 0;
}
