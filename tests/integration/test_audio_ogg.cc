// The Ogg Opus track writer on its own (no EAL, no I/O): RTP packets in,
// pages out, read back with libogg and decoded with opusfile. Each case is a
// stream shape a recording meets: clean, loss, DTX gap, timestamp wrap,
// reordering, duplicates, a sender that restarts its clock.
//
// Then ogg_repair (closing a file that was cut off) over a table of what a
// crash or a full disk leaves, on real files.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "audio_util.h"
#include "ogg_opus_track.h"
#include "ogg_repair.h"

namespace stentor::test {
namespace {

using svc::ogg_opus_track;

struct pkt {
    uint16_t seq;
    uint32_t ts;
    size_t frame;       // index into the tone
    uint64_t at_ns;     // arrival
};

struct result {
    ogg_file_info file;
    svc::track_stats st;
    uint64_t granule;
    double duration;
};

result run(const std::vector<pkt>& in, size_t tone_frames = 200) {
    static const auto tone = opus_tone(440, 200);
    (void)tone_frames;
    ogg_opus_track t(0x1234, 2, 312, {{"TITLE", "test"}});
    for (const auto& p : in) {
        const auto& f = tone[p.frame % tone.size()];
        t.push(p.seq, p.ts, f.data(), static_cast<uint32_t>(f.size()), p.at_ns);
    }
    t.finish();
    const std::string& s = t.pending();
    result r;
    r.file = read_ogg_opus(std::vector<uint8_t>(s.begin(), s.end()));
    r.st = t.stats();
    r.granule = t.granule();
    r.duration = t.duration_s();
    return r;
}

std::vector<pkt> clean(size_t n, uint16_t seq0 = 100, uint32_t ts0 = 5000) {
    std::vector<pkt> v;
    for (size_t i = 0; i < n; ++i)
        v.push_back({static_cast<uint16_t>(seq0 + i), static_cast<uint32_t>(ts0 + 960 * i), i, 20000000ull * i});
    return v;
}

// Structure every recording must have (RFC 7845).
void check_structure(const result& r) {
    ASSERT_TRUE(r.file.ok) << r.file.why;
    ASSERT_GE(r.file.pages.size(), 3u);
    EXPECT_TRUE(r.file.pages[0].bos) << "OpusHead alone on a BOS page";
    EXPECT_EQ(r.file.pages[0].packets, 1);
    EXPECT_EQ(r.file.pages[0].granule, 0);
    EXPECT_EQ(r.file.pages[1].granule, 0) << "OpusTags page";
    EXPECT_FALSE(r.file.pages[1].bos);
    EXPECT_TRUE(r.file.pages.back().eos);
    for (size_t i = 0; i + 1 < r.file.pages.size(); ++i) EXPECT_FALSE(r.file.pages[i].eos) << "page " << i;
    for (size_t i = 1; i < r.file.pages.size(); ++i)
        EXPECT_GE(r.file.pages[i].granule, r.file.pages[i - 1].granule) << "granule decreases at page " << i;
    for (const auto& p : r.file.pages) EXPECT_EQ(p.serial, 0x1234u);
    EXPECT_EQ(r.file.channels, 2u);
    EXPECT_EQ(r.file.pre_skip, 312u);
    EXPECT_EQ(r.file.vendor, "stentor");
    EXPECT_EQ(r.file.pages.back().granule, static_cast<int64_t>(r.granule));
    // What a player plays equals the timeline: every sample is decodable.
    EXPECT_EQ(r.file.pcm_total, static_cast<int64_t>(r.granule) - 312);
    EXPECT_EQ(r.file.decoded, r.file.pcm_total);
}

TEST(ogg_track, clean_stream_of_91_packets) {
    const auto r = run(clean(91));
    check_structure(r);
    EXPECT_EQ(r.granule, 91u * 960);
    EXPECT_NEAR(r.duration, (91 * 960 - 312) / 48000.0, 1e-9);
    EXPECT_EQ(r.st.packets, 91u);
    EXPECT_EQ(r.st.fillers, 0u);
    EXPECT_EQ(r.st.lost, 0u);
    EXPECT_GT(r.file.rms_first_second, 0.1) << "the tone is there";
    // Pages are cut at least once per second of audio.
    EXPECT_GE(r.file.pages.size(), 2u + 2u);
}

TEST(ogg_track, loss_is_filled_and_counted) {
    auto in = clean(100);
    in.erase(in.begin() + 40, in.begin() + 43);   // 3 lost
    in.erase(in.begin() + 10);                    // 1 lost
    const auto r = run(in);
    check_structure(r);
    EXPECT_EQ(r.granule, 100u * 960) << "the timeline keeps its length";
    EXPECT_EQ(r.st.lost, 4u);
    EXPECT_EQ(r.st.fillers, 4u);
    EXPECT_EQ(r.st.packets, 96u);
}

TEST(ogg_track, dtx_gap_keeps_the_timeline) {
    // 50 packets, then the sender is silent for 3 s (no packets, sequence
    // numbers continue), then 50 more.
    std::vector<pkt> in;
    for (uint32_t i = 0; i < 50; ++i) in.push_back({static_cast<uint16_t>(i), 960 * i, i, 20000000ull * i});
    for (uint32_t i = 50; i < 100; ++i)
        in.push_back({static_cast<uint16_t>(i), 960 * (i + 150), i, 20000000ull * (i + 150)});
    const auto r = run(in);
    check_structure(r);
    EXPECT_EQ(r.granule, 250u * 960);
    EXPECT_NEAR(r.duration, 5.0 - 312 / 48000.0, 1e-9);
    EXPECT_EQ(r.st.lost, 0u) << "DTX is not loss";
    EXPECT_EQ(r.st.fillers, 150u);
}

TEST(ogg_track, timestamp_wrap) {
    const auto r = run(clean(60, 65500, 0xffffffffu - 960 * 20));
    check_structure(r);
    EXPECT_EQ(r.granule, 60u * 960);
    EXPECT_EQ(r.st.fillers, 0u);
    EXPECT_EQ(r.st.lost, 0u) << "sequence wrap is not loss";
}

TEST(ogg_track, reordering_within_the_window_is_undone) {
    auto in = clean(50);
    std::swap(in[20], in[21]);
    std::swap(in[30], in[33]);
    const auto r = run(in);
    check_structure(r);
    EXPECT_EQ(r.granule, 50u * 960);
    EXPECT_EQ(r.st.fillers, 0u);
    EXPECT_EQ(r.st.lost, 0u);
    EXPECT_GE(r.st.reordered, 2u);
    // Packet order in the file follows the timestamps: packet k+2 (after the
    // two headers) is frame k of the tone.
    static const auto tone = opus_tone(440, 200);
    ASSERT_EQ(r.file.packets.size(), 52u);
    for (size_t k = 0; k < 50; ++k) EXPECT_EQ(r.file.packets[k + 2], tone[k]) << "frame " << k;
}

TEST(ogg_track, duplicates_are_dropped) {
    auto in = clean(30);
    in.insert(in.begin() + 11, in[10]);
    in.insert(in.begin() + 20, in[5]);   // far behind: already written
    const auto r = run(in);
    check_structure(r);
    EXPECT_EQ(r.granule, 30u * 960);
    EXPECT_EQ(r.st.packets, 30u);
    EXPECT_EQ(r.st.duplicates + r.st.late, 2u);
}

TEST(ogg_track, clock_restart_follows_arrival_time) {
    // After 25 packets the sender restarts with a random timestamp; arrival
    // times say the stream simply went on.
    std::vector<pkt> in = clean(25);
    for (uint32_t i = 25; i < 50; ++i)
        in.push_back({static_cast<uint16_t>(100 + i), 0x40000000u + 960 * i, i, 20000000ull * i});
    const auto r = run(in);
    check_structure(r);
    EXPECT_EQ(r.granule, 50u * 960);
}

// The recorder's once-a-second flush: with the speaker quiet past the hold
// time, the reorder window and the open page reach pending() without the
// stream ending; with packets still coming, the window stays held.
TEST(ogg_track, flush_puts_held_audio_on_a_page_without_ending_the_stream) {
    static const auto tone = opus_tone(440, 20);
    ogg_opus_track t(0x1234, 2, 312, {{"TITLE", "test"}}, 5);
    const uint64_t ms = 1000000;
    for (uint32_t i = 0; i < 20; ++i) t.push(static_cast<uint16_t>(i), 960 * i, tone[i].data(), static_cast<uint32_t>(tone[i].size()), 20 * ms * i);
    t.flush(19 * 20 * ms + 100 * ms, 200 * ms);   // 100 ms after the last packet: window held
    auto r = read_ogg_opus(std::vector<uint8_t>(t.pending().begin(), t.pending().end()));
    EXPECT_EQ(r.pages.back().granule, 15 * 960) << "the 5 held packets are not written yet";
    EXPECT_FALSE(r.pages.back().eos);
    t.flush(19 * 20 * ms + 300 * ms, 200 * ms);   // 300 ms: the speaker went quiet
    r = read_ogg_opus(std::vector<uint8_t>(t.pending().begin(), t.pending().end()));
    EXPECT_EQ(r.pages.back().granule, 20 * 960);
    EXPECT_FALSE(r.pages.back().eos);
    EXPECT_EQ(r.pcm_total, 20 * 960 - 312) << "what is on pages plays";
    EXPECT_FALSE(t.finished());
}

// A file as a crash or a full disk leaves it, repaired in place.
struct repair_case {
    const char* what;
    size_t keep;                   // bytes of the 60-packet stream kept (0: all)
    bool garbage;                  // not Ogg at all
    bool finish;                   // the writer ended the stream itself
    bool ok;
    const char* why;               // !ok
};

TEST(ogg_repair, closes_what_a_crash_leaves_and_refuses_what_is_not_a_recording) {
    static const auto tone = opus_tone(440, 60);
    std::string whole, unfinished;
    size_t headers = 0;
    {
        ogg_opus_track t(0x1234, 2, 312, {{"TITLE", "repair"}}, 5);
        headers = t.pending().size();
        for (uint32_t i = 0; i < 60; ++i)
            t.push(static_cast<uint16_t>(i), 960 * i, tone[i].data(), static_cast<uint32_t>(tone[i].size()), 20000000ull * i);
        t.flush(60 * 20000000ull + 1000000000ull, 200000000);
        unfinished = t.pending();
        t.finish();
        whole = t.pending();
    }
    const repair_case cases[] = {
        {"whole pages, no end-of-stream", 0, false, false, true, ""},
        {"last page torn", unfinished.size() - 20, false, false, true, ""},
        {"only the headers", headers, false, false, true, ""},
        {"finished already: left as it is", 0, false, true, true, ""},
        {"empty", 1, false, false, false, "empty file"},
        {"OpusHead torn", 20, false, false, false, "no complete Ogg page"},
        {"not Ogg", 0, true, false, false, "no complete Ogg page"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        std::string bytes = c.garbage ? std::string(4000, 'x') : c.finish ? whole : unfinished;
        if (c.keep > 0) bytes.resize(c.keep == 1 ? 0 : c.keep);
        char path[] = "/tmp/stentor-repair-XXXXXX";
        const int fd = mkstemp(path);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        const auto before = read_ogg_opus(std::vector<uint8_t>(bytes.begin(), bytes.end()));
        const svc::repair_result r = svc::repair_ogg_opus(fd);
        close(fd);
        std::vector<uint8_t> after;
        {
            std::ifstream in(path, std::ios::binary);
            after.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        unlink(path);
        EXPECT_EQ(r.ok, c.ok) << r.why;
        if (!c.ok) {
            EXPECT_EQ(r.why, c.why);
            EXPECT_EQ(after.size(), bytes.size()) << "a file that is not a recording is left as it is";
            continue;
        }
        EXPECT_EQ(r.changed, !c.finish);
        EXPECT_EQ(r.pre_skip, 312u);
        EXPECT_EQ(r.channels, 2u);
        EXPECT_EQ(r.bytes, after.size());
        const auto f = read_ogg_opus(after);
        ASSERT_FALSE(f.pages.empty());
        EXPECT_TRUE(f.pages.back().eos);
        EXPECT_EQ(f.pages.back().granule, before.pages.back().granule) << "ends at the last whole page";
        EXPECT_EQ(r.granule, before.pages.back().granule);
        if (before.pages.back().granule > 0) {
            ASSERT_TRUE(f.ok) << f.why;
            EXPECT_EQ(f.pcm_total, before.pages.back().granule - 312);
            EXPECT_EQ(f.decoded, f.pcm_total);
        }
        bool titled = false;
        for (const auto& [k, v] : r.tags) titled |= k == "TITLE" && v == "repair";
        EXPECT_TRUE(titled);
    }
}

}  // namespace
}  // namespace stentor::test
