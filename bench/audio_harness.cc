// Mixer and recorder capacity (issue 6), printed as
//   RESULT mixer_speakers_per_core=<n> recorded_sessions=<n> lost=<packets>
//
// Mixer: one mix session, N speakers each sending a 20 ms 64 kbit/s stereo
// Opus frame per period (all talking at once: the worst case; DTX speakers
// cost nothing). Per frame period the mixer thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID) for taking N packets, decoding, mixing, limiting
// and encoding once; speakers per core = N * 20 ms / median CPU per period.
//
// Recorder: K recorded forward sessions, one speaker each, fed in real time
// (50 packets/s per session) into the record ring exactly as the RX lcores
// do (rte_ring_enqueue, never waiting); the recorder thread writes Ogg Opus
// with io_uring to a temporary directory. A message the ring refuses is lost
// data-plane work; the largest K with 0 lost and 0 write errors is reported.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include <opus/opus.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "drivers.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_worker.h"
#include "stentor/services/clock.h"
#include "stentor/services/mixer.h"
#include "stentor/services/recorder.h"

namespace {

using namespace stentor;

uint64_t cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

// 50 frames (1 s) of a tone, 20 ms: what a speaker sends. Music-grade
// (stereo, 64 kbit/s, CELT) or voice (mono, 24 kbit/s, VoIP: SILK/hybrid).
std::vector<std::vector<uint8_t>> encode_tone(double hz, bool voice = false) {
    int err = 0;
    const int ch = voice ? 1 : 2;
    OpusEncoder* enc = opus_encoder_create(48000, ch, voice ? OPUS_APPLICATION_VOIP : OPUS_APPLICATION_AUDIO, &err);
    opus_encoder_ctl(enc, OPUS_SET_BITRATE(voice ? 24000 : 64000));
    std::vector<std::vector<uint8_t>> out;
    std::vector<float> pcm(960 * 2);
    size_t t = 0;
    for (int f = 0; f < 50; ++f) {
        for (int i = 0; i < 960; ++i, ++t)
            for (int c = 0; c < ch; ++c)
                pcm[size_t(ch * i + c)] = static_cast<float>(0.2 * std::sin(2 * std::numbers::pi * hz * double(t) / 48000.0));
        std::vector<uint8_t> p(1500);
        p.resize(static_cast<size_t>(opus_encode_float(enc, pcm.data(), 960, p.data(), 1500)));
        out.push_back(std::move(p));
    }
    opus_encoder_destroy(enc);
    return out;
}

rte_mbuf* message(rte_mempool* pool, uint32_t session_index, uint16_t seq, uint32_t ts, uint32_t ssrc,
                  const std::vector<uint8_t>& opus) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) return nullptr;
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(12 + opus.size())));
    d[0] = 0x80;
    d[1] = 111;
    d[2] = static_cast<uint8_t>(seq >> 8);
    d[3] = static_cast<uint8_t>(seq);
    for (int i = 0; i < 4; ++i) d[4 + i] = static_cast<uint8_t>(ts >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) d[8 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
    std::memcpy(d + 12, opus.data(), opus.size());
    dp::set_message_session(m, session_index, session_index + 1);   // fake_snapshot: generation = index + 1
    return m;
}

// A snapshot with `n` sessions of one mode and no listeners (the mixed
// packets go nowhere: fan-out is measured elsewhere).
struct fake_snapshot {
    std::vector<dp::dp_session> sessions;
    std::vector<dp::dp_session*> ptrs;
    dp::dp_snapshot snap{};
    fake_snapshot(uint32_t n, uint8_t mode, uint8_t record) : sessions(n), ptrs(n) {
        for (uint32_t i = 0; i < n; ++i) {
            sessions[i] = dp::dp_session{};
            sessions[i].id = i + 1;
            sessions[i].index = i;
            sessions[i].mode = mode;
            sessions[i].record = record;
            sessions[i].generation = i + 1;
            ptrs[i] = &sessions[i];
        }
        snap.version = 1;
        snap.nb_sessions = n;
        snap.sessions = ptrs.data();
    }
};

struct mix_result {
    unsigned speakers;
    double median_us, p10_us, p90_us;
    uint64_t frames_out, late, plc;
};

mix_result bench_mixer(rte_mempool* pool, unsigned n, const std::vector<std::vector<std::vector<uint8_t>>>& tones) {
    fake_snapshot fs(1, dp::session_mode_mix, 0);
    dp::dp_shared sh;
    sh.snapshot.store(&fs.snap);
    rte_ring* ring = rte_ring_create(("bench_mix" + std::to_string(n)).c_str(), 4096, 0, RING_F_SC_DEQ);
    svc::mixer_config mc;
    mc.pool = pool;
    mc.shared = &sh;
    mc.in_ring = ring;
    std::vector<double> per_tick;
    uint64_t frames = 0, late = 0, plc = 0;
    {
        svc::mixer mx(mc);
        const uint64_t period = 20000000;
        uint64_t now = 1000000000;
        const unsigned warm = 10, measured = 250;
        for (unsigned k = 0; k < warm + measured; ++k) {
            // The RX side's work (not the mixer's): N speaker packets queued.
            for (unsigned s = 0; s < n; ++s) {
                const auto& t = tones[s % tones.size()];
                rte_mbuf* m = message(pool, 0, static_cast<uint16_t>(k), 960 * k, 1000 + s, t[k % t.size()]);
                if (m != nullptr && rte_ring_enqueue(ring, m) != 0) rte_pktmbuf_free(m);
            }
            const uint64_t c0 = cpu_ns();
            mx.poll(now);
            const uint64_t c1 = cpu_ns();
            if (k >= warm) per_tick.push_back(double(c1 - c0) / 1000.0);
            now += period;
        }
        frames = mx.stats().frames_out;
        late = mx.stats().late;
        plc = mx.stats().plc_frames;
    }
    rte_ring_free(ring);
    std::sort(per_tick.begin(), per_tick.end());
    auto q = [&](double p) { return per_tick[static_cast<size_t>(p * double(per_tick.size() - 1))]; };
    return {n, q(0.5), q(0.1), q(0.9), frames, late, plc};
}

struct rec_result {
    unsigned sessions;
    uint64_t sent, lost, write_errors, files;
    double mb_written;
};

rec_result bench_recorder(rte_mempool* pool, unsigned k, double seconds, const std::vector<std::vector<uint8_t>>& tone) {
    fake_snapshot fs(k, dp::session_mode_forward, 1);
    dp::dp_shared sh;
    sh.snapshot.store(&fs.snap);
    rte_ring* ring = rte_ring_create(("bench_rec" + std::to_string(k)).c_str(), 8192, 0, RING_F_SC_DEQ);
    sh.record_ring = ring;
    char tmpl[] = "/tmp/stentor-bench-rec-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    svc::recorder_options ro;
    ro.dir = dir;
    // Capacity, not the profile's cap (recording.max_tracks, 1024 by default).
    ro.max_tracks = 1u << 20;
    rec_result res{k, 0, 0, 0, 0, 0};
    {
        svc::recorder rec(ro, sh, ring);
        rec.set_threaded(true);
        std::atomic<bool> stop{false};
        // The recorder thread exactly as the relay runs it: poll (online),
        // io (offline: files, writes, syncs), and sleep 2 ms when there was
        // nothing to do.
        std::thread thr([&] {
            while (!stop.load()) {
                const unsigned w = rec.poll() + rec.io(svc::mono_ns());
                if (w == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        });
        const uint64_t period = 20000000;
        const uint64_t t0 = svc::mono_ns();
        const unsigned periods = static_cast<unsigned>(seconds * 50);
        for (unsigned p = 0; p < periods; ++p) {
            const uint64_t due = t0 + p * period;
            while (svc::mono_ns() < due) std::this_thread::sleep_for(std::chrono::microseconds(200));
            for (unsigned s = 0; s < k; ++s) {
                rte_mbuf* m = message(pool, s, static_cast<uint16_t>(p), 960 * p, 5000 + s, tone[p % tone.size()]);
                ++res.sent;
                if (m == nullptr || rte_ring_enqueue(ring, m) != 0) {
                    ++res.lost;   // what an RX lcore would count as ring_full and move on
                    if (m != nullptr) rte_pktmbuf_free(m);
                }
            }
        }
        rec.finalise_all();
        stop.store(true);
        thr.join();
        rec.set_threaded(false);
        const auto st = rec.stats();
        res.write_errors = st.write_errors;
        res.files = st.files_finalised;
        res.mb_written = double(st.bytes_written) / 1e6;
    }
    rte_ring_free(ring);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return res;
}

}  // namespace

int main() {
    drivers::eal_params ep;
    ep.lcores = {0};
    ep.memory_mb = 256;
    ep.file_prefix = "stentor-audio-bench-" + std::to_string(::getpid());
    ep.log_level = "error";
    drivers::eal_init(ep);
    rte_mempool* pool = drivers::make_pool("audio_bench", 16383, 0, 0);

    std::vector<std::vector<std::vector<uint8_t>>> tones, voices;
    for (double hz : {220.0, 330.0, 440.0, 550.0, 660.0, 770.0, 880.0, 990.0}) {
        tones.push_back(encode_tone(hz));
        voices.push_back(encode_tone(hz, true));
    }

    double per_core_at_100 = 0;
    for (bool voice : {false, true}) {
        std::printf("mixer: one session, N speakers all talking (%s), mixer CPU per 20 ms period\n",
                    voice ? "voice: 24 kbit/s mono VoIP Opus" : "music: 64 kbit/s stereo Opus");
        std::printf("%8s %12s %12s %12s %10s %14s\n", "speakers", "median_us", "p10_us", "p90_us", "core_%", "speakers/core");
        for (unsigned n : {1u, 10u, 50u, 100u, 200u}) {
            const auto r = bench_mixer(pool, n, voice ? voices : tones);
            const double core = r.median_us / 20000.0;
            const double per_core = double(n) / core;
            // RESULT: the worst case (everyone talking, music-grade streams).
            if (n == 100 && !voice) per_core_at_100 = per_core;
            std::printf("%8u %12.1f %12.1f %12.1f %9.1f%% %14.0f   (frames_out %llu, late %llu, plc %llu)\n", n,
                        r.median_us, r.p10_us, r.p90_us, 100 * core, per_core,
                        static_cast<unsigned long long>(r.frames_out), static_cast<unsigned long long>(r.late),
                        static_cast<unsigned long long>(r.plc));
        }
    }

    std::printf("\nrecorder: K recorded sessions, 50 packets/s each, 3 s real time, record ring 8192\n");
    std::printf("%8s %10s %8s %8s %8s %10s\n", "sessions", "sent", "lost", "errors", "files", "MB");
    unsigned best = 0;
    for (unsigned k : {100u, 500u, 1000u, 2000u, 4000u}) {
        const auto r = bench_recorder(pool, k, 3.0, tones[2]);
        std::printf("%8u %10llu %8llu %8llu %8llu %10.1f\n", k, static_cast<unsigned long long>(r.sent),
                    static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.write_errors),
                    static_cast<unsigned long long>(r.files), r.mb_written);
        if (r.lost != 0 || r.write_errors != 0 || r.files != k) break;
        best = k;
    }
    std::printf("RESULT mixer_speakers_per_core=%.0f recorded_sessions=%u lost=0\n", per_core_at_100, best);
    rte_mempool_free(pool);
    drivers::eal_cleanup();
    return 0;
}
