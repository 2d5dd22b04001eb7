// Integration: mix mode and recordings through the whole relay (real EAL,
// ring ethdev, workers, mixer and recorder polled on the test thread with a
// fake CLOCK_MONOTONIC for the mixer). Speakers send real Opus; the mixed
// stream and the recordings are decoded back.
#include <sys/mount.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "audio_util.h"
#include "harness.h"
#include "metrics.h"
#include "stentor/services/mixer.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;

constexpr uint32_t speaker2_ip = 0xc612000b;   // 198.18.0.11
constexpr uint64_t ms = 1000000;

// Speakers are policed at their stream rate plus limits.speaker_burst_pct
// (10 %), with a second of burst: the test sends at the stream rate.
void pace() { usleep(20 * 1000); }

// Answer the relay's ARP for the listener and the gateway; anything else
// that left meanwhile is not this test's business.
void resolve_listener(relay& r, const ring_port& port) {
    resolve(r, port, {listener_ip});
    drain(port);
}

struct rtp_out {
    uint8_t pt;
    bool marker;
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
    std::vector<uint8_t> payload;
};

// The frames the relay sent to our listener, as RTP.
std::vector<rtp_out> to_listener(const std::vector<bytes>& frames) {
    std::vector<rtp_out> v;
    for (const auto& f : frames) {
        if (f.size() < 54 || be16(f.data() + 12) != 0x0800) continue;
        EXPECT_EQ(be32(f.data() + 30), listener_ip);
        EXPECT_EQ(be16(f.data() + 36), listener_port);
        const uint8_t* r = f.data() + 42;
        v.push_back({static_cast<uint8_t>(r[1] & 0x7f), (r[1] & 0x80) != 0, be16(r + 2), be32(r + 4), be32(r + 8),
                     std::vector<uint8_t>(r + 12, f.data() + f.size())});
    }
    return v;
}

// Power of `hz` in a mono signal (Goertzel), normalised by the total power.
double tone_share(const std::vector<float>& x, double hz) {
    const double w = 2 * std::numbers::pi * hz / 48000.0, c = 2 * std::cos(w);
    double s1 = 0, s2 = 0, total = 0;
    for (float v : x) {
        const double s0 = v + c * s1 - s2;
        s2 = s1;
        s1 = s0;
        total += double(v) * v;
    }
    const double p = s1 * s1 + s2 * s2 - c * s1 * s2;
    return total > 0 ? 2 * p / (total * static_cast<double>(x.size())) : 0;
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class audio_test : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/stentor-audio-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override {
        if (mounted) umount2(dir.c_str(), MNT_DETACH);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    ring_port port = fresh_ring_port("au");
    std::string dir;
    bool mounted = false;
};

// Two speakers (440 Hz and 660 Hz) into one mix session, with a loss burst
// on one and a DTX gap on the other. The listener gets one stream: the
// session's SSRC, continuous sequence numbers and timestamps, PT 111, both
// tones; the recording of the session is that stream.
TEST_F(audio_test, mixer_output_is_one_continuous_stream_with_both_speakers) {
    auto prof = base_profile(port.name);
    relay r(prof, relay_options{.launch = false, .recording_dir = dir});
    control::session_params sp;
    sp.id = 7;
    sp.mode = control::session_mode::mix;
    sp.udp_port = 40000;
    sp.recording = true;
    r.state().session_create(sp);
    r.state().speaker_add(7, speaker_ip, 5004, 1234);
    r.state().speaker_add(7, speaker2_ip, 5004, 5678);
    r.state().listener_add(7, listener_ip, listener_port, 0);
    r.state().publish();
    resolve_listener(r, port);
    const unsigned in_use0 = rte_mempool_in_use_count(r.pool());

    const size_t frames = 91;
    const auto a = opus_tone(440, frames, 2, 0.3);
    const auto b = opus_tone(660, frames, 2, 0.3);
    const uint64_t t0 = 1000 * ms;
    std::vector<rtp_out> out;
    uint16_t seq_a = 100;
    for (size_t k = 0; k < frames + 10; ++k) {
        const uint64_t now = t0 + k * 20 * ms;
        if (k < frames) {
            // Speaker A: DTX from frame 40 to 59 (nothing sent; sequence
            // numbers continue afterwards, timestamps jump).
            if (k < 40 || k >= 60) inject(port, speaker_frame(speaker_ip, seq_a++, 1000 + 960 * uint32_t(k), 1234, a[k]));
            // Speaker B: frames 20..22 lost (sequence numbers skipped).
            if (k < 20 || k > 22)
                inject(port, speaker_frame(speaker2_ip, static_cast<uint16_t>(7 + k), 99 + 960 * uint32_t(k), 5678, b[k]));
        }
        pace();
        settle(r);                 // RX: speaker packets to the mixer ring
        r.poll_services(now);      // mixer tick(s) due at `now`; recorder
        settle(r);                 // fan-out of the mixed packet
        for (auto& o : to_listener(drain(port))) out.push_back(std::move(o));
    }
    const auto ms_ = r.mix_stats();
    EXPECT_EQ(ms_.packets_in, 2 * frames - 20 - 3);
    EXPECT_GE(ms_.plc_frames, 3u) << "speaker B's lost frames concealed";
    EXPECT_GE(ms_.silent_frames, 10u) << "speaker A's DTX gap is silence";
    EXPECT_EQ(ms_.late, 0u);
    EXPECT_EQ(ms_.decode_errors, 0u);

    // One packet per 20 ms period from the first period a speaker played
    // (60 ms after its first packet) until both had played out, plus the
    // 3 concealed periods after the last packet (plc_max_frames), then DTX.
    ASSERT_EQ(out.size(), frames + 3);
    EXPECT_EQ(ms_.frames_out, out.size());
    EXPECT_TRUE(out.front().marker) << "first packet starts a talkspurt";
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].pt, 111) << i;
        EXPECT_EQ(out[i].ssrc, dp::mix_ssrc(7)) << i;
        if (i == 0) continue;
        EXPECT_EQ(static_cast<uint16_t>(out[i].seq - out[i - 1].seq), 1) << "sequence at " << i;
        EXPECT_EQ(out[i].ts - out[i - 1].ts, 960u) << "timestamp at " << i;
        EXPECT_FALSE(out[i].marker) << i;
    }
    EXPECT_NE(dp::mix_ssrc(7), 1234u);
    EXPECT_NE(dp::mix_ssrc(7), 5678u);

    // Decode what the listener got: both tones, neither clipped away.
    int err = 0;
    OpusDecoder* dec = opus_decoder_create(48000, 1, &err);
    std::vector<float> pcm, frame(5760);
    for (const auto& o : out) {
        const int n = opus_decode_float(dec, o.payload.data(), static_cast<int>(o.payload.size()), frame.data(), 5760, 0);
        ASSERT_GT(n, 0);
        pcm.insert(pcm.end(), frame.begin(), frame.begin() + n);
    }
    opus_decoder_destroy(dec);
    // Frames 5..35: both speakers talking, after the jitter buffer filled.
    const std::vector<float> both(pcm.begin() + 5 * 960, pcm.begin() + 35 * 960);
    const double s440 = tone_share(both, 440), s660 = tone_share(both, 660);
    EXPECT_GT(s440, 0.25) << "440 Hz share " << s440;
    EXPECT_GT(s660, 0.25) << "660 Hz share " << s660;
    // During A's DTX gap (its frames 40..59 play at ticks ~43..62): B only.
    const std::vector<float> gap(pcm.begin() + 46 * 960, pcm.begin() + 58 * 960);
    EXPECT_GT(tone_share(gap, 660), 0.7);
    EXPECT_LT(tone_share(gap, 440), 0.05);

    // The recording of a mix session is the mix, finalised when it ends.
    r.state().session_end(7);
    const auto rec = r.recording(7);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->state, "finalised") << rec->error;
    EXPECT_EQ(rec->mode, "mix");
    ASSERT_EQ(rec->tracks.size(), 1u);
    EXPECT_EQ(rec->tracks[0].ssrc, dp::mix_ssrc(7));
    EXPECT_NE(rec->path.find("-mix.opus"), std::string::npos) << rec->path;
    const auto f = read_ogg_opus(slurp(rec->path));
    ASSERT_TRUE(f.ok) << f.why;
    EXPECT_EQ(f.channels, 2u);
    EXPECT_EQ(f.pcm_total, static_cast<int64_t>(out.size()) * 960 - 312);
    EXPECT_EQ(f.decoded, f.pcm_total);
    EXPECT_NEAR(rec->duration_s, (static_cast<double>(out.size()) * 960 - 312) / 48000, 1e-6);
    EXPECT_EQ(rec->bytes, std::filesystem::file_size(rec->path));

    r.state().publish();
    r.poll_services(t0 + 10000 * ms);
    settle(r);
    drain(port);
    EXPECT_EQ(r.mix_stats().frames_out, out.size()) << "an ended session's mixer state is gone";
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(r.pool())) << "no mbuf leaked by mixer or recorder";
}

// Forward mode, recording on: loss and a DTX gap in the speaker's stream.
// The listener receives every packet unchanged; the file keeps the timeline,
// and its path and duration are there as soon as session_end returns.
TEST_F(audio_test, forward_recording_keeps_the_timeline_and_is_final_at_session_end) {
    auto prof = base_profile(port.name);
    relay r(prof, relay_options{.launch = false, .recording_dir = dir});
    control::session_params sp;
    sp.id = 3;
    sp.name = "town-hall";
    sp.udp_port = 40000;
    sp.recording = true;
    r.state().session_create(sp);
    r.state().speaker_add(3, speaker_ip, 5004, 1234);
    r.state().listener_add(3, listener_ip, listener_port, 0);
    r.state().publish();
    resolve_listener(r, port);
    {
        const auto rec = r.recording(3);
        ASSERT_TRUE(rec.has_value()) << "announced when the session is created";
        EXPECT_EQ(rec->state, "recording");
        EXPECT_EQ(rec->name, "town-hall");
        EXPECT_TRUE(rec->path.empty());
    }

    const auto tone = opus_tone(440, 100);
    uint16_t seq = 65530;                      // wraps
    const uint32_t ts0 = 0xffffffffu - 960 * 10;   // wraps too
    size_t sent = 0;
    for (uint32_t k = 0; k < 100; ++k) {
        if (k == 20 || k == 21) {
            ++seq;                             // lost
            continue;
        }
        if (k >= 50 && k < 80) continue;       // DTX: not sent, sequence continues
        inject(port, speaker_frame(speaker_ip, seq++, ts0 + 960 * k, 1234, tone[k]));
        ++sent;
        pace();
        settle(r);
        r.poll_services(0);
    }
    EXPECT_EQ(to_listener(drain(port)).size(), sent) << "forwarding is not affected by recording";

    r.state().session_end(3);                  // the observer finalises before returning
    const auto rec = r.recording(3);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->state, "finalised") << rec->error;
    EXPECT_TRUE(rec->error.empty());
    EXPECT_GT(rec->ended_unix_ms, 0);
    ASSERT_EQ(rec->tracks.size(), 1u);
    EXPECT_EQ(rec->tracks[0].stats.lost, 2u);
    EXPECT_EQ(rec->tracks[0].stats.fillers, 32u);
    EXPECT_EQ(rec->tracks[0].stats.packets, sent);
    EXPECT_NEAR(rec->duration_s, (100 * 960 - 312) / 48000.0, 1e-9);
    ASSERT_TRUE(std::filesystem::exists(rec->path)) << rec->path;
    EXPECT_EQ(rec->path.rfind(dir + "/session-3-", 0), 0u) << rec->path;
    EXPECT_NE(rec->path.find("-000004d2.opus"), std::string::npos) << rec->path;
    EXPECT_EQ(rec->bytes, std::filesystem::file_size(rec->path));

    const auto f = read_ogg_opus(slurp(rec->path));
    ASSERT_TRUE(f.ok) << f.why;
    EXPECT_EQ(f.channels, 2u);
    EXPECT_EQ(f.pre_skip, 312u);
    EXPECT_EQ(f.vendor, "stentor");
    EXPECT_TRUE(f.pages.front().bos);
    EXPECT_TRUE(f.pages.back().eos);
    EXPECT_EQ(f.pages.back().granule, 100 * 960);
    EXPECT_EQ(f.pcm_total, 100 * 960 - 312);
    EXPECT_EQ(f.decoded, f.pcm_total);
    EXPECT_GT(f.rms_first_second, 0.1);
    bool has_title = false;
    for (const auto& c : f.comments) has_title |= c == "TITLE=town-hall";
    EXPECT_TRUE(has_title);

    // Packets after the end are not a new recording.
    r.state().publish();
    EXPECT_EQ(r.recordings().size(), 1u);
    EXPECT_EQ(counter(r, "recorder/files_finalised"), 1u);
}

// A full disk pauses the recording instead of failing it for good (issue
// 10, "Nothing lost across a restart"): a 32 KiB tmpfs with 24 KiB of
// ballast fills within a second of audio; the track pauses (state, reason,
// counters), its packets are counted and not recorded; the ballast goes,
// the next retry writes again and the recording resumes; at the end the
// file plays the whole timeline, the paused stretch as silence, and says
// how much was lost. The listener gets every packet throughout.
TEST_F(audio_test, disk_full_pauses_the_recording_and_it_resumes_when_space_returns) {
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=32k") != 0) GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
    mounted = true;
    const std::string ballast = dir + "/ballast";
    {
        std::ofstream b(ballast, std::ios::binary);
        const std::string kib(1024, 'x');
        for (int i = 0; i < 24; ++i) b << kib;
        ASSERT_TRUE(b.good());
    }
    auto prof = base_profile(port.name);
    relay r(prof, relay_options{.launch = false, .recording_dir = dir});
    control::session_params sp;
    sp.id = 4;
    sp.udp_port = 40000;
    sp.recording = true;
    r.state().session_create(sp);
    r.state().speaker_add(4, speaker_ip, 5004, 1234);
    r.state().listener_add(4, listener_ip, listener_port, 0);
    r.state().publish();
    resolve_listener(r, port);
    const auto tone = opus_tone(440, 50, 2, 0.3);
    uint32_t k = 0;
    size_t got = 0;
    auto send = [&] {
        inject(port, speaker_frame(speaker_ip, static_cast<uint16_t>(k), 960 * k, 1234, tone[k % tone.size()]));
        ++k;
        pace();
        settle(r);
        r.poll_services(0);
        got += to_listener(drain(port)).size();
    };
    auto state = [&] { return r.recording(4).value_or(control::recording_info{}).state; };
    while (k < 150) send();
    ASSERT_EQ(state(), "paused") << "24 KiB of audio into 8 KiB of free space";
    {
        const auto rec = r.recording(4);
        EXPECT_NE(rec->error.find("No space left on device"), std::string::npos) << rec->error;
        EXPECT_GT(rec->paused_packets, 0u);
        // The API shows the span being lost while it is lost.
        const auto j = control::recording_json(*rec);
        EXPECT_EQ(j.at("state"), "paused");
        EXPECT_EQ(j.at("paused_packets").get<uint64_t>(), rec->paused_packets);
        EXPECT_EQ(j.at("tracks").at(0).at("paused_packets").get<uint64_t>(), rec->paused_packets);
    }
    EXPECT_EQ(counter(r, "recorder/disk_full_pauses"), 1u);
    EXPECT_EQ(counter(r, "recorder/error_dropped"), 0u) << "paused, not failed";
    // Space returns: within a retry interval (1 s) the track writes again.
    std::filesystem::remove(ballast);
    const uint32_t before_resume = k;
    while (state() == "paused" && k < before_resume + 500) send();
    ASSERT_EQ(state(), "recording") << "did not resume within " << k - before_resume << " packets";
    for (int i = 0; i < 50; ++i) send();
    EXPECT_EQ(got, k) << "forwarding never waited for the disk";
    r.state().session_end(4);
    const auto rec = r.recording(4);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->state, "finalised") << rec->error;
    ASSERT_EQ(rec->tracks.size(), 1u);
    const auto& t = rec->tracks[0];
    EXPECT_EQ(t.stats.packets + t.paused_packets, k) << "every packet is either in the file or counted as lost";
    EXPECT_EQ(rec->paused_packets, counter(r, "recorder/paused_packets"));
    EXPECT_GT(rec->paused_s, 0.0);
    EXPECT_EQ(t.stats.fillers, t.paused_packets) << "the lost stretch is filled, frame for frame";
    // What the API answers for it (GET /api/v1/sessions/4/recording): the
    // lost span, for the recording and for its track.
    const auto j = control::recording_json(*rec);
    EXPECT_EQ(j.at("paused_packets").get<uint64_t>(), rec->paused_packets);
    EXPECT_EQ(j.at("paused_s").get<double>(), rec->paused_s);
    EXPECT_EQ(j.at("tracks").at(0).at("paused_packets").get<uint64_t>(), t.paused_packets);
    EXPECT_EQ(j.at("tracks").at(0).at("paused_s").get<double>(), t.paused_s);
    EXPECT_GT(j.at("tracks").at(0).at("paused_s").get<double>(), 0.0);
    EXPECT_NEAR(rec->duration_s, (k * 960 - 312) / 48000.0, 1e-9) << "the timeline holds across the pause";
    const auto f = read_ogg_opus(slurp(rec->path));
    ASSERT_TRUE(f.ok) << f.why;
    EXPECT_TRUE(f.pages.back().eos);
    EXPECT_EQ(f.pcm_total, k * 960 - 312);
    EXPECT_EQ(f.decoded, f.pcm_total);
}

}  // namespace
}  // namespace stentor::test

namespace stentor::test {
namespace {

// A session slot is reused as soon as its session ends. Packets of the old
// session still queued (here: one in the fan-out shard ring, one in the
// record ring) must not be fanned out to, or recorded into, the session that
// took the slot: every message carries its session's generation.
TEST_F(audio_test, queued_packets_of_an_ended_session_never_reach_its_successor) {
    auto prof = base_profile(port.name);
    relay r(prof, relay_options{.launch = false, .recording_dir = dir});
    control::session_params sp;
    sp.id = 3;
    sp.udp_port = 40000;
    sp.recording = true;
    r.state().session_create(sp);
    r.state().speaker_add(3, speaker_ip, 5004, 1234);
    r.state().listener_add(3, listener_ip, listener_port + 1, 0);
    r.state().publish();
    resolve_listener(r, port);
    const auto tone = opus_tone(440, 3, 2, 0.3);
    // Session 3 ends while two of its packets are still queued: one in the
    // record ring (accepted by RX from the snapshot that still had session
    // 3) and one in the fan-out shard ring (handed over, not yet polled).
    r.state().session_end(3);
    inject(port, speaker_frame(speaker_ip, 10, 9600, 1234, tone[0]));
    r.poll();
    r.flush();
    EXPECT_EQ(1u, drain(port).size()) << "session 3's listener, before the end is published";
    const bytes queued = speaker_frame(speaker_ip, 11, 10560, 1234, tone[1]);
    ASSERT_TRUE(r.inject_rtp(3, queued.data() + 42, static_cast<uint16_t>(queued.size() - 42)));
    r.state().publish();
    // The successor reuses the slot: same port, same speaker, a listener.
    sp.id = 4;
    r.state().session_create(sp);
    r.state().speaker_add(4, speaker_ip, 5004, 1234);
    r.state().listener_add(4, listener_ip, listener_port, 0);
    r.state().publish();
    settle(r);
    r.poll_services(1000 * ms);
    settle(r);
    EXPECT_TRUE(drain(port).empty()) << "a packet of session 3 reached session 4's listener";
    EXPECT_EQ(1u, counter(r, "drop/egress/stale_session")) << "the shard ring's packet of session 3";
    EXPECT_EQ(1u, r.rec_stats().stale) << "the record ring's packet of session 3";
    // Session 4's own audio flows and is recorded; nothing of session 3 is.
    inject(port, speaker_frame(speaker_ip, 12, 11520, 1234, tone[2]));
    settle(r);
    r.poll_services(1020 * ms);
    EXPECT_EQ(1u, to_listener(drain(port)).size());
    r.state().session_end(4);
    const auto rec = r.recording(4);
    ASSERT_TRUE(rec.has_value());
    ASSERT_EQ(1u, rec->tracks.size());
    EXPECT_EQ(1u, rec->tracks[0].stats.packets) << "session 3's queued packet was recorded into session 4";
}

}  // namespace
}  // namespace stentor::test
