// SRTP harness (issue 12, docs/srtp.md):
//
//  1. Fan-out with egress SRTP on vs off, same run, same session of N
//     listeners on one fan-out lcore (net_null, as fanout_harness): "off"
//     fans out the plain RTP packet, "on" protects each packet once with the
//     session key (srtp::protect, what the RX lcore runs; its cost is inside
//     the measured loop) and fans out the ciphertext. Repetitions alternate
//     off/on so load from other tenants hits both alike.
//  2. Ingress SRTP per core: authenticate + decrypt (srtp::rx_check,
//     rx_unprotect, rx_commit: what ingress.cc calls for a speaker packet)
//     over a stream of protected packets, and the drop rate for forged
//     packets that pass the cheap checks (right sequence number, wrong tag:
//     one MAC each); beside a bare libsrtp2 srtp_unprotect loop over the same
//     packets on the same core.
//  3. Egress per core: the egress index and one protect, what an RX lcore
//     runs per speaker packet of a session_key session: the old
//     srtp::tx_index (the speaker's own numbers) beside dp::egress_index
//     (the claim from the session's high-water mark, one CAS), alternated
//     in the same run.
//
// The last line is
//   RESULT srtp_fanout_ratio=<on/off> srtp_ingress_pps=<x> srtp_ref_pps=<y> listeners=<n>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <srtp2/srtp.h>

#include "config.h"
#include "drivers.h"
#include "reference.h"
#include "relay.h"
#include "stentor/dp_srtp.h"
#include "stentor/srtp.h"

namespace {

using namespace stentor;
using clock_type = std::chrono::steady_clock;
using bench::stats;
using bench::summarise;

std::vector<uint8_t> rtp_packet(uint16_t seq, size_t payload) {
    std::vector<uint8_t> p(12 + payload);
    p[0] = 0x80;
    p[1] = 111;
    p[2] = static_cast<uint8_t>(seq >> 8);
    p[3] = static_cast<uint8_t>(seq);
    const uint32_t ts = seq * 960u;
    for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<uint8_t>(ts >> (24 - 8 * i));
    p[11] = 1;
    for (size_t i = 0; i < payload; ++i) p[12 + i] = static_cast<uint8_t>(i);
    return p;
}

std::vector<uint8_t> master(uint8_t seed) {
    std::vector<uint8_t> m(30);
    for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<uint8_t>(seed + 13 * i);
    return m;
}

void pin_to(unsigned cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Packets per second of `step(i)` over `window` seconds, in batches.
template <class F>
double rate(double window, F&& step) {
    uint64_t n = 0;
    const auto t0 = clock_type::now();
    double el = 0;
    while ((el = std::chrono::duration<double>(clock_type::now() - t0).count()) < window)
        for (int k = 0; k < 1024; ++k) step(n++);
    return static_cast<double>(n) / el;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Stentor SRTP harness"};
    unsigned listeners = 1000000;
    unsigned reps = 5;
    double window = 2.0;
    size_t payload = 80;
    unsigned cpu = 1;
    app.add_option("--listeners", listeners, "session size for the fan-out on/off comparison");
    app.add_option("--reps", reps, "repetitions (each: off and on for the fan-out, ours and libsrtp2 for ingress)");
    app.add_option("--window", window, "seconds per repetition");
    app.add_option("--payload", payload, "Opus payload bytes");
    app.add_option("--cpu", cpu, "core of the fan-out lcore and of the ingress loops");
    CLI11_PARSE(app, argc, argv);

    // ---------------------------------------------------------- ingress
    srtp_init();
    constexpr unsigned nb = 4096;   // distinct packets, replayed with growing indices
    const auto m = master(7);
    srtp::key* k = srtp::key_create(srtp::suite::aes_cm_128_hmac_sha1_80, m.data(), m.size(), 1);
    srtp::keyset ks{};
    ks.nb_keys = 1;
    ks.suite_id = static_cast<uint8_t>(srtp::suite::aes_cm_128_hmac_sha1_80);
    ks.keys[0] = k;
    srtp_policy_t pol;
    std::memset(&pol, 0, sizeof pol);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
    pol.ssrc.type = ssrc_any_inbound;
    pol.key = const_cast<uint8_t*>(m.data());
    pol.window_size = 1024;
    pol.allow_repeat_tx = 1;
    // Protected packets of one stream (index 0..nb-1), and forgeries of the
    // same headers with a wrong tag.
    std::vector<std::vector<uint8_t>> prot(nb), forged(nb);
    srtp::stream tx{};
    for (unsigned i = 0; i < nb; ++i) {
        auto p = rtp_packet(static_cast<uint16_t>(i), payload);
        const uint32_t n = static_cast<uint32_t>(p.size());
        p.resize(n + srtp::max_trailer);
        p.resize(srtp::protect(ks, 0, srtp::tx_index(tx, static_cast<uint16_t>(i), 0x01000000), p.data(), n, 12));
        prot[i] = p;
        forged[i] = p;
        forged[i].back() ^= 0x5a;
    }
    pin_to(cpu);
    std::vector<double> ours, ref, forged_rate;
    std::vector<uint8_t> buf(2048);
    for (unsigned rep = 0; rep < reps; ++rep) {
        // Ours: the stream state starts afresh at each lap over the packets,
        // so the replay window accepts each once; each packet is copied first
        // (decryption is in place), for libsrtp2 alike.
        srtp::stream rx{};
        uint64_t ok = 0;
        ours.push_back(rate(window, [&](uint64_t i) {
            const auto& p = prot[i % nb];
            std::memcpy(buf.data(), p.data(), p.size());
            if (i % nb == 0) rx = srtp::stream{};
            srtp::rx_plan plan;
            if (srtp::rx_check(ks, rx, buf.data(), static_cast<uint32_t>(p.size()), 12, &plan) == srtp::verdict::ok &&
                srtp::rx_unprotect(ks, 0, buf.data(), plan) == srtp::verdict::ok) {
                srtp::rx_commit(rx, plan, 0x01000000);
                ++ok;
            }
        }));
        if (ok == 0) {
            std::printf("ingress: nothing authenticated\n");
            return 1;
        }
        // libsrtp2: a fresh context per lap over the same packets, created
        // outside the timed part (with Debian's NSS backend srtp_create
        // costs ~5 ms, as much as ~300 packets).
        uint64_t ref_ok = 0, ref_n = 0;
        double ref_s = 0;
        while (ref_s < window) {
            srtp_t ctx = nullptr;
            srtp_create(&ctx, &pol);
            const auto t0 = clock_type::now();
            for (unsigned i = 0; i < nb; ++i) {
                const auto& p = prot[i];
                std::memcpy(buf.data(), p.data(), p.size());
                int len = static_cast<int>(p.size());
                ref_ok += srtp_unprotect(ctx, buf.data(), &len) == srtp_err_status_ok;
            }
            ref_s += std::chrono::duration<double>(clock_type::now() - t0).count();
            ref_n += nb;
            srtp_dealloc(ctx);
        }
        ref.push_back(static_cast<double>(ref_n) / ref_s);
        if (ref_ok != ref_n) {
            std::printf("ingress: libsrtp2 refused %llu packets\n", static_cast<unsigned long long>(ref_n - ref_ok));
            return 1;
        }
        // Forged: right sequence numbers (past the cheap checks), wrong tag.
        srtp::stream frx{};
        uint64_t dropped = 0;
        forged_rate.push_back(rate(window, [&](uint64_t i) {
            const auto& p = forged[i % nb];
            std::memcpy(buf.data(), p.data(), p.size());
            srtp::rx_plan plan;
            if (srtp::rx_check(ks, frx, buf.data(), static_cast<uint32_t>(p.size()), 12, &plan) == srtp::verdict::ok &&
                srtp::rx_unprotect(ks, 0, buf.data(), plan) == srtp::verdict::auth)
                ++dropped;
        }));
        if (dropped == 0) {
            std::printf("ingress: no forgery reached the MAC\n");
            return 1;
        }
    }
    const stats so = summarise(ours), sr = summarise(ref), sf = summarise(forged_rate);
    std::printf("# ingress on cpu %u, %zu-byte SRTP packets (AES_CM_128_HMAC_SHA1_80), copy + authenticate + decrypt\n", cpu,
                prot[0].size());
    std::printf("srtp_ingress_mpps median=%.3f min=%.3f max=%.3f reps=%u\n", so.median / 1e6, so.min / 1e6, so.max / 1e6, reps);
    std::printf("libsrtp2_unprotect_mpps median=%.3f min=%.3f max=%.3f reps=%u\n", sr.median / 1e6, sr.min / 1e6,
                sr.max / 1e6, reps);
    {
        // Egress per core: the index and one protect, what an RX lcore runs
        // per speaker packet of a session_key session. "tx_index": the
        // speaker's own numbers (before the egress index fix); "claim": the
        // session's high-water mark (dp::egress_index, one CAS). Alternated.
        dp::dp_srtp_egress streams{};
        dp::dp_srtp_egress_slot* slot = dp::egress_slot(streams, 0x01000000);
        srtp::stream old_st{};
        srtp::tx_stream new_st{};
        std::vector<double> a, b;
        uint64_t seq = 0;
        auto pkt = rtp_packet(0, payload);
        const uint32_t n = static_cast<uint32_t>(pkt.size());
        pkt.resize(n + srtp::max_trailer);
        for (unsigned rep = 0; rep < reps; ++rep)
            for (const bool claim : {false, true}) {
                const auto t0 = clock_type::now();
                constexpr unsigned iters = 200000;
                for (unsigned i = 0; i < iters; ++i, ++seq) {
                    const auto s16 = static_cast<uint16_t>(seq);
                    uint64_t idx;
                    if (claim) {
                        uint64_t in = s16;
                        const bool restart = new_st.started == 0 || !srtp::estimate_index(new_st.in_top, true, s16, &in);
                        idx = dp::egress_index(*slot, new_st, in, 0x01000000, restart);
                        if (restart || in > new_st.in_top) new_st.in_top = in;
                    } else {
                        idx = srtp::tx_index(old_st, s16, 0x01000000);
                    }
                    pkt[2] = static_cast<uint8_t>(idx >> 8);
                    pkt[3] = static_cast<uint8_t>(idx);
                    if (srtp::protect(ks, 0, idx, pkt.data(), n, 12) == 0) std::abort();
                }
                (claim ? b : a).push_back(iters / std::chrono::duration<double>(clock_type::now() - t0).count());
            }
        const stats sa = summarise(a), sb = summarise(b);
        std::printf("egress_tx_index_protect_mpps median=%.3f min=%.3f max=%.3f reps=%u\n", sa.median / 1e6, sa.min / 1e6,
                    sa.max / 1e6, reps);
        std::printf("egress_claim_protect_mpps median=%.3f min=%.3f max=%.3f reps=%u\n", sb.median / 1e6, sb.min / 1e6,
                    sb.max / 1e6, reps);
    }
    {
        // A trunk seal (docs/fleet.md "Trunk authentication"): what an origin
        // adds per packet of a session with authenticated trunks, whatever
        // its number of edges: a copy of the listeners' packet (here one the
        // session key protected: payload + 11 bytes) into a new buffer and
        // one AEAD_AES_128_GCM protect with the trunk key. Beside it, the
        // same copy with the session's AES_CM_128_HMAC_SHA1_80 protect.
        const auto tm = master(9);
        std::vector<uint8_t> gm(tm.begin(), tm.end());
        gm.resize(srtp::master_len(srtp::suite::aead_aes_128_gcm));
        srtp::key* gk = srtp::key_create(srtp::suite::aead_aes_128_gcm, gm.data(), gm.size(), 1);
        if (gk == nullptr) std::abort();
        srtp::keyset gks{};
        gks.nb_keys = 1;
        gks.suite_id = static_cast<uint8_t>(srtp::suite::aead_aes_128_gcm);
        gks.keys[0] = gk;
        const auto inner = rtp_packet(0, payload + 11);
        std::vector<uint8_t> out(inner.size() + srtp::max_trailer);
        std::vector<double> g, c;
        uint64_t idx = 0;
        for (unsigned rep = 0; rep < reps; ++rep)
            for (const bool gcm : {true, false}) {
                const auto t0 = clock_type::now();
                constexpr unsigned iters = 200000;
                for (unsigned i = 0; i < iters; ++i, ++idx) {
                    std::memcpy(out.data(), inner.data(), inner.size());
                    out[2] = static_cast<uint8_t>(idx >> 8);
                    out[3] = static_cast<uint8_t>(idx);
                    if (srtp::protect(gcm ? gks : ks, 0, idx, out.data(), static_cast<uint32_t>(inner.size()), 12) == 0)
                        std::abort();
                }
                (gcm ? g : c).push_back(iters / std::chrono::duration<double>(clock_type::now() - t0).count());
            }
        // The edge's open of the same: rx_check + rx_unprotect (GCM in one
        // pass into scratch, then copied back), each packet copied first.
        std::vector<std::vector<uint8_t>> sealed(nb);
        for (unsigned i = 0; i < nb; ++i) {
            std::vector<uint8_t> q(inner);
            q.resize(inner.size() + srtp::max_trailer);
            q[2] = static_cast<uint8_t>(i >> 8);
            q[3] = static_cast<uint8_t>(i);
            q.resize(srtp::protect(gks, 0, i, q.data(), static_cast<uint32_t>(inner.size()), 12));
            sealed[i] = std::move(q);
        }
        std::vector<double> opened;
        std::vector<uint8_t> obuf(2048);
        for (unsigned rep = 0; rep < reps; ++rep) {
            srtp::stream rx{};
            uint64_t ok = 0;
            opened.push_back(rate(window, [&](uint64_t i) {
                const auto& q = sealed[i % nb];
                std::memcpy(obuf.data(), q.data(), q.size());
                if (i % nb == 0) rx = srtp::stream{};
                srtp::rx_plan plan;
                if (srtp::rx_check(gks, rx, obuf.data(), static_cast<uint32_t>(q.size()), 12, &plan) == srtp::verdict::ok &&
                    srtp::rx_unprotect(gks, 0, obuf.data(), plan) == srtp::verdict::ok) {
                    srtp::rx_commit(rx, plan, 0x01000000);
                    ++ok;
                }
            }));
            if (ok == 0) {
                std::printf("trunk open: nothing authenticated\n");
                std::abort();
            }
        }
        const stats so2 = summarise(opened);
        std::printf("trunk_open_gcm_mpps median=%.3f min=%.3f max=%.3f reps=%u (copy + check + AEAD_AES_128_GCM open)\n",
                    so2.median / 1e6, so2.min / 1e6, so2.max / 1e6, reps);
        const stats sg = summarise(g), sc = summarise(c);
        std::printf("trunk_seal_gcm_mpps median=%.3f min=%.3f max=%.3f reps=%u (copy + AEAD_AES_128_GCM, %zu bytes)\n",
                    sg.median / 1e6, sg.min / 1e6, sg.max / 1e6, reps, inner.size());
        std::printf("copy_protect_cm_mpps median=%.3f min=%.3f max=%.3f reps=%u (copy + AES_CM_128_HMAC_SHA1_80)\n",
                    sc.median / 1e6, sc.min / 1e6, sc.max / 1e6, reps);
        srtp::key_free(gk);
    }
    std::printf("srtp_forged_drop_mpps median=%.3f min=%.3f max=%.3f reps=%u (one MAC each)\n", sf.median / 1e6,
                sf.min / 1e6, sf.max / 1e6, reps);
    std::fflush(stdout);

    // ---------------------------------------------------------- fan-out
    control::profile p;
    p.path = "srtp_harness";
    p.eal.lcores = {0, cpu};
    p.eal.memory_mb = 1024;
    p.eal.file_prefix = "stentor-srtp-" + std::to_string(::getpid());
    p.eal.vdevs = {"net_null0,no-rx=1"};
    p.eal.log_level = "error";
    p.dataplane.rx_lcores = {cpu};
    p.dataplane.fanout_lcores = {cpu};
    p.dataplane.frame_deadline_us = 1000000;
    p.dataplane.stats_interval_s = 0;
    control::port_config pc;
    pc.name = "null0";
    pc.device = "net_null0";
    pc.ipv4 = 0xc6120001;
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    pc.gateway_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0, 0xfe};
    p.ports.push_back(pc);
    p.limits.max_listeners = 4000000;
    p.limits.max_listeners_per_session = 4000000;
    // Back on any core for the main thread (the relay's lcore takes `cpu`).
    cpu_set_t all;
    CPU_ZERO(&all);
    for (unsigned c = 0; c < std::thread::hardware_concurrency(); ++c) CPU_SET(c, &all);
    pthread_setaffinity_np(pthread_self(), sizeof all, &all);

    drivers::eal_params ep{p.eal.lcores, 0, p.eal.memory_mb, false, p.eal.file_prefix, {}, p.eal.vdevs, "error"};
    drivers::eal_init(ep);
    double off_med = 0, on_med = 0;
    {
        control::relay r(p);
        r.start();
        control::session_params sp;
        sp.name = "bench";
        const uint32_t sid = r.state().session_create(sp).id;
        for (unsigned i = 0; i < listeners; ++i) r.state().listener_add(sid, 0x0a000001 + i, 5004, 0);
        r.state().publish();
        auto replicas = [&] { return r.totals().replicas_out; };
        auto wait_for = [&](uint64_t target, double timeout) {
            const auto t = clock_type::now();
            while (replicas() < target) {
                if (std::chrono::duration<double>(clock_type::now() - t).count() > timeout) return false;
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
            return true;
        };
        srtp::key* sk = srtp::key_create(srtp::suite::aes_cm_128_hmac_sha1_80, m.data(), m.size(), 1);
        srtp::keyset sks{};
        sks.nb_keys = 1;
        sks.mki_len = 1;
        sks.mki[0] = 1;
        sks.suite_id = static_cast<uint8_t>(srtp::suite::aes_cm_128_hmac_sha1_80);
        sks.keys[0] = sk;
        srtp::stream stx{};
        std::vector<double> off, on;
        uint16_t seq = 0;
        for (unsigned rep = 0; rep < reps; ++rep) {
            for (const bool protect : {false, true}) {
                const uint64_t start = replicas();
                uint64_t injected = 0;
                const auto ts = clock_type::now();
                double el = 0;
                while ((el = std::chrono::duration<double>(clock_type::now() - ts).count()) < window) {
                    const uint64_t done = replicas() - start;
                    if (injected * listeners < done + 3ull * listeners) {
                        auto pkt = rtp_packet(seq, payload);
                        if (protect) {
                            const uint32_t n = static_cast<uint32_t>(pkt.size());
                            pkt.resize(n + srtp::max_trailer);
                            pkt.resize(srtp::protect(sks, 0, srtp::tx_index(stx, seq, 0x01000000), pkt.data(), n, 12));
                        }
                        ++seq;
                        if (r.inject_rtp(sid, pkt.data(), static_cast<uint16_t>(pkt.size()))) ++injected;
                    } else {
                        std::this_thread::sleep_for(std::chrono::microseconds(listeners >= 100000 ? 200 : 20));
                    }
                }
                const uint64_t sent = replicas() - start;
                (protect ? on : off).push_back(static_cast<double>(sent) / el / 1e6);
                wait_for(start + injected * listeners, 10.0);
            }
        }
        const stats a = summarise(off), b = summarise(on);
        std::printf("# fan-out on cpu %u, %u listeners, frames %zu (off) / %zu (on) bytes\n", cpu, listeners, 54 + payload,
                    54 + payload + 11);
        std::printf("fanout_off_mpps median=%.2f min=%.2f max=%.2f reps=%u\n", a.median, a.min, a.max, reps);
        std::printf("fanout_srtp_mpps median=%.2f min=%.2f max=%.2f reps=%u\n", b.median, b.min, b.max, reps);
        off_med = a.median;
        on_med = b.median;
        r.stop();
        srtp::key_free(sk);
    }
    drivers::eal_cleanup();
    srtp::key_free(k);
    std::printf("RESULT srtp_fanout_ratio=%.3f srtp_ingress_pps=%.0f srtp_ref_pps=%.0f listeners=%u\n",
                off_med > 0 ? on_med / off_med : 0.0, so.median, sr.median, listeners);
    return 0;
}
