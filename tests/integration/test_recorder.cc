// The recorder on its own (stentor/services/recorder.h), with real EAL, a
// real record ring and mbufs, real Opus and real files: what an attacker or
// a failing disk can do to it (issue 10).
//
// - SSRC churn: a recorded session fed with packets of 100 invented SSRCs
//   opens at most the cap of files; the rest are refused, counted once per
//   SSRC and logged once per SSRC; the process' fd count stays bounded.
// - A recording cut off (what a SIGKILL leaves: the bytes that reached the
//   kernel, maybe a torn last page, no end-of-stream) is closed by the next
//   recorder that starts on the directory and listed as recovered; a file a
//   live recorder still holds is left alone; one it cannot open (a link, a
//   directory, a FIFO) is logged once and counted.
// - A stalled disk (slow_fs.h: open, fsync, rename held in the kernel):
//   the recorder thread sits in those calls offline as a snapshot reader,
//   so a publish (its RCU grace period) and the API's reads go on.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "audio_util.h"
#include "eventually.h"
#include "harness.h"
#include "slow_fs.h"
#include "stentor/dp_shared.h"
#include "stentor/services/clock.h"
#include "stentor/services/recorder.h"

namespace stentor::test {
namespace {

// Entries of /proc/self/fd: every file the process holds open.
size_t open_fds() {
    size_t n = 0;
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    while (const dirent* e = readdir(d))
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n - 1;   // the DIR's own
}

size_t files_in(const std::string& dir) {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) n += e.is_regular_file() ? 1 : 0;
    return n;
}

// A recorder counter by its exported name (recorder/<name>); nullopt if the
// recorder has no such counter.
std::optional<uint64_t> stat_of(const svc::recorder_stats& s, const std::string& name) {
    std::optional<uint64_t> v;
    s.for_each([&](const char* n, const char*, uint64_t x) {
        if (name == n) v = x;
    });
    return v;
}

// One forward session with recording on, as the data plane's snapshot shows
// it, and the record ring the RX lcores would hand its packets to.
struct recorded_session {
    dp::dp_session sess{};
    dp::dp_session* ptrs[1]{&sess};
    dp::dp_snapshot snap{};
    dp::dp_shared sh;
    rte_ring* ring = nullptr;
    std::string dir;

    // The recordings' directory: a fresh one under `parent` (a slow_fs mount, say).
    explicit recorded_session(const std::string& tag, uint32_t id = 9, const std::string& parent = "/tmp") {
        sess.id = id;
        sess.index = 0;
        sess.mode = dp::session_mode_forward;
        sess.record = 1;
        sess.generation = 200;
        snap.version = 1;
        snap.nb_sessions = 1;
        snap.sessions = ptrs;
        ring = rte_ring_create(("rec_" + tag).c_str(), 8192, SOCKET_ID_ANY, RING_F_SC_DEQ);
        sh.snapshot.store(&snap);
        sh.record_ring = ring;
        std::string tmpl = parent + "/stentor-rec-XXXXXX";
        if (mkdtemp(tmpl.data()) != nullptr) dir = tmpl;
    }
    ~recorded_session() {
        void* obj;
        while (rte_ring_dequeue(ring, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
        rte_ring_free(ring);
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void speak(uint16_t seq, uint32_t ts, uint32_t ssrc, const std::vector<uint8_t>& opus) {
        const auto p = rtp_packet(seq, ts, ssrc, opus);
        rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
        ASSERT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(p.size())), p.data(), p.size());
        dp::set_message_session(m, sess.index, sess.generation);
        ASSERT_EQ(rte_ring_enqueue(ring, m), 0);
    }
    svc::recorder_options options() const {
        svc::recorder_options o;
        o.dir = dir;
        return o;
    }
};

// Issue 10, item 2: one file, fd and Ogg track per new SSRC without a cap
// (1500 invented SSRCs took a relay's API down with FD_SETSIZE). Each
// invented SSRC sends two packets; the cap (32 per recording, the default)
// holds, the refused SSRCs are counted once each and their packets apart.
TEST(recorder_caps, ssrc_churn_opens_at_most_the_cap_of_files) {
    recorded_session t("churn");
    ASSERT_FALSE(t.dir.empty());
    const auto tone = opus_tone(440, 2, 2, 0.3);
    const unsigned nb_ssrc = 100, cap = 32;
    const size_t fds0 = open_fds();
    testing::internal::CaptureStderr();
    {
        svc::recorder rec(t.options(), t.sh, t.ring);
        for (unsigned k = 0; k < 2; ++k) {
            for (uint32_t s = 0; s < nb_ssrc; ++s) t.speak(static_cast<uint16_t>(k), 960 * k, 0x5000 + s, tone[k]);
            rec.poll();
            rec.io(svc::mono_ns());   // what the recorder thread does offline: the files
        }
        // Twice the cap would be one fd per track plus the recorder's own few.
        EXPECT_LE(open_fds(), fds0 + cap + 4) << "fds grew with the invented SSRCs";
        const auto info = rec.recording(t.sess.id);
        ASSERT_TRUE(info.has_value());
        EXPECT_EQ(info->tracks.size(), cap);
        const auto st = rec.stats();
        EXPECT_EQ(st.files_opened, cap);
        EXPECT_EQ(stat_of(st, "tracks_refused"), nb_ssrc - cap) << "one per refused SSRC";
        EXPECT_EQ(stat_of(st, "refused_packets"), 2 * (nb_ssrc - cap)) << "every packet of a refused SSRC";
        rec.session_ended(t.sess.id);
        EXPECT_EQ(rec.stats().files_finalised, cap);
    }
    const std::string log = testing::internal::GetCapturedStderr();
    size_t lines = 0;
    for (size_t p = log.find("refused"); p != std::string::npos; p = log.find("refused", p + 1)) ++lines;
    EXPECT_EQ(lines, nb_ssrc - cap) << "logged once per refused SSRC, not per packet:\n" << log;
    EXPECT_EQ(files_in(t.dir), cap);
    EXPECT_LE(open_fds(), fds0 + 1) << "every track file closed at the end";
}

// The relay-wide cap (recording.max_tracks: every open track file) holds
// too, and says which cap refused; a refused SSRC gets its track once the
// files it waited for are closed (here: the session is recreated).
TEST(recorder_caps, the_relay_cap_counts_open_files_and_frees_them_at_the_end) {
    recorded_session t("relaycap");
    ASSERT_FALSE(t.dir.empty());
    const auto tone = opus_tone(440, 1, 2, 0.3);
    auto o = t.options();
    o.max_tracks = 10;
    testing::internal::CaptureStderr();
    svc::recorder rec(o, t.sh, t.ring);
    for (uint32_t s = 0; s < 100; ++s) t.speak(0, 0, 0x5000 + s, tone[0]);
    rec.poll();
    rec.io(svc::mono_ns());
    EXPECT_EQ(rec.recording(t.sess.id)->tracks.size(), 10u);
    EXPECT_EQ(rec.stats().tracks_refused, 90u);
    // The session ends and is created again (next generation): its old
    // files close, and SSRCs refused before get tracks in the new recording.
    rec.session_ended(t.sess.id);
    t.sess.generation = 201;
    for (uint32_t s = 90; s < 95; ++s) t.speak(1, 960, 0x5000 + s, tone[0]);
    rec.poll();
    rec.io(svc::mono_ns());
    const std::string log = testing::internal::GetCapturedStderr();
    const auto again = rec.recording(t.sess.id);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->state, "recording");
    EXPECT_EQ(again->tracks.size(), 5u);
    EXPECT_EQ(rec.stats().tracks_refused, 90u) << "nothing refused the second time";
    EXPECT_EQ(rec.stats().files_opened, 15u);
    EXPECT_NE(log.find("the relay has recording.max_tracks open (10 tracks)"), std::string::npos) << log;
}

// Issue 10, item 6: the recorder thread blocked in open()/fsync() (up to
// 10 s) while it was online as an RCU reader, so every publish (a join, a
// leave, a session change) waited for the disk. Here the relay runs for
// real (worker on its lcore, recorder on its service thread, RCU), the
// recordings go to a FUSE file system whose create, fsync and rename the
// test holds in the kernel, and while each is held a publish must complete
// and the API's read of the recordings must answer.
TEST(recorder_offline_io, a_stalled_disk_holds_no_publish_and_no_api_read) {
    std::string why;
    auto fs = slow_fs::mount(why);
    ASSERT_NE(fs, nullptr) << why;
    ring_port port = fresh_ring_port("rio");
    auto prof = base_profile(port.name);
    control::relay r(prof, control::relay_options{.launch = true, .recording_dir = fs->dir()});
    // Destroyed before the relay: whatever the outcome, the disk answers
    // again before the relay finalises its recordings on the way out.
    release_holds guard{*fs};
    control::session_params sp;
    sp.id = 3;
    sp.udp_port = 40000;
    sp.recording = true;
    r.state().session_create(sp);
    r.state().speaker_add(3, speaker_ip, 5004, 1234);
    // The publishes below carry joins to another session (3 ends meanwhile).
    control::session_params other;
    other.id = 4;
    other.udp_port = 40001;
    r.state().session_create(other);
    r.state().publish();
    r.start();
    const auto tone = opus_tone(440, 100, 2, 0.3);
    uint16_t seq = 0;
    auto speak = [&](unsigned n) {
        for (unsigned k = 0; k < n; ++k, ++seq) {
            inject(port, speaker_frame(speaker_ip, seq, 960u * seq, 1234, tone[seq % tone.size()]));
            std::this_thread::sleep_for(std::chrono::milliseconds(10));   // within the speaker's policer
        }
    };
    uint32_t next_listener = 0;
    // While `o` is held: one publish with a change in it, and one API read.
    auto publish_and_read_while_held = [&](slow_fs::op o, const char* what) {
        SCOPED_TRACE(what);
        ASSERT_TRUE(fs->wait_held(o)) << "the recorder never reached the held call";
        r.state().listener_add(4, 0xc6120080 + next_listener++, listener_port, 0);
        background pub([&] { r.state().publish(); });
        background read([&] { (void)r.recordings(); });
        EXPECT_TRUE(eventually([&] { return pub.done(); }, std::chrono::seconds(10)))
            << "a publish waited for the disk: the recorder was an online RCU reader in " << what;
        EXPECT_TRUE(eventually([&] { return read.done(); }, std::chrono::seconds(10)))
            << "reading the recordings waited for the disk in " << what;
        fs->release(o);
    };

    // 1. The track's file is created (open with O_CREAT) when its first
    //    packet arrives.
    fs->hold(slow_fs::op::create);
    speak(1);
    publish_and_read_while_held(slow_fs::op::create, "open(O_CREAT)");
    speak(60);   // more than a second of audio: pages reach the file
    // 2. The session ends: its file is fsynced (and renamed) before the end
    //    answers. Ending waits for that by design; publishes do not.
    fs->hold(slow_fs::op::fsync);
    {
        background end([&] { r.state().session_end(3); });
        publish_and_read_while_held(slow_fs::op::fsync, "fsync");
    }
    r.stop();
    const auto rec = r.recording(3);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->state, "finalised") << rec->error;
    ASSERT_EQ(rec->tracks.size(), 1u);
    EXPECT_EQ(rec->tracks[0].stats.packets, 61u);
    EXPECT_GT(fs->calls(slow_fs::op::fsync), 0u);
}

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void spit(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Drives the recorder's writes until what it wrote stops growing and it has
// synced at least once: the pages out and on disk.
bool written_and_synced(svc::recorder& rec) {
    uint64_t last = ~uint64_t{0};
    return eventually([&] {
        rec.io(svc::mono_ns());
        const auto st = rec.stats();
        const bool stable = st.bytes_written == last && st.syncs > 0;
        last = st.bytes_written;
        return stable;
    });
}

// The recorder fed `n` frames of `tone` on SSRC 1234, its pages written and
// synced: the path of the one track's .part file ("" if not so).
std::string recorded_part(svc::recorder& rec, recorded_session& t, const std::vector<std::vector<uint8_t>>& tone,
                          uint32_t n) {
    for (uint32_t k = 0; k < n; ++k) t.speak(static_cast<uint16_t>(k), 960 * k, 1234, tone[k]);
    rec.poll();
    if (!written_and_synced(rec)) return "";
    const auto live = rec.recording(t.sess.id);
    if (!live.has_value() || live->tracks.size() != 1) return "";
    return live->tracks[0].path;
}

// What is left of a recording when its process dies, as the next start finds it.
struct cut_case {
    const char* what;
    size_t cut_bytes;              // taken off the end of what the recorder had written
    bool recoverable;
};

const cut_case cut_cases[] = {
    {"killed between two writes: whole pages, no end-of-stream", 0, true},
    {"killed in the middle of a write: the last page torn", 37, true},
};

// Issue 10, "Nothing lost across a restart": before, a file cut off this
// way had no end-of-stream page and nothing closed it. A recorder writes
// 4 s of audio; while it still records, its .part file is copied (the
// bytes a SIGKILL leaves: what reached the kernel) into a directory of its
// own, cut as the case says; a recorder started there closes it, renames it
// and lists it as recovered, and it plays up to its last whole page.
TEST(recorder_recovery, a_recording_cut_off_is_closed_at_start_and_listed_recovered) {
    recorded_session t("cut");
    ASSERT_FALSE(t.dir.empty());
    const auto tone = opus_tone(440, 200, 2, 0.3);
    svc::recorder rec(t.options(), t.sh, t.ring);
    // Pages out and written, up to the once-a-second flush and fdatasync
    // that puts the last stretch on a page of its own.
    const std::string part = recorded_part(rec, t, tone, 200);
    ASSERT_NE(part.find(".opus.part"), std::string::npos) << part;
    const auto written = slurp(part);
    ASSERT_EQ(written.size(), rec.recording(t.sess.id)->tracks[0].bytes);

    // A recorder starting on the live directory leaves the locked file alone.
    {
        svc::recorder other(t.options(), t.sh, nullptr);
        EXPECT_TRUE(other.recordings().empty()) << "took a file a live recorder holds";
        EXPECT_EQ(other.stats().recovered, 0u);
    }
    EXPECT_TRUE(std::filesystem::exists(part));

    for (const auto& c : cut_cases) {
        SCOPED_TRACE(c.what);
        char tmpl[] = "/tmp/stentor-crash-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        const std::string crash = tmpl;
        const std::string name = std::filesystem::path(part).filename();
        std::vector<uint8_t> left(written.begin(), written.end() - static_cast<long>(c.cut_bytes));
        spit(crash + "/" + name, left);
        // What a player could make of it: the whole pages (libogg's view).
        const auto before = read_ogg_opus(left);
        ASSERT_FALSE(before.pages.empty());
        EXPECT_FALSE(before.pages.back().eos) << "a file cut off has no end-of-stream page";
        const int64_t want_granule = before.pages.back().granule;

        svc::recorder_options o = t.options();
        o.dir = crash;
        svc::recorder next(o, t.sh, nullptr);
        const auto all = next.recordings();
        ASSERT_EQ(all.size(), 1u);
        const auto& r = all[0];
        EXPECT_EQ(r.state, "recovered") << r.error;
        EXPECT_EQ(r.session_id, t.sess.id);
        ASSERT_EQ(r.tracks.size(), 1u);
        EXPECT_EQ(r.tracks[0].ssrc, 1234u);
        EXPECT_EQ(r.path, crash + "/" + name.substr(0, name.size() - 5)) << "renamed without .part";
        EXPECT_FALSE(std::filesystem::exists(crash + "/" + name));
        EXPECT_EQ(next.stats().recovered, 1u);
        EXPECT_NEAR(r.duration_s, static_cast<double>(want_granule - 312) / 48000.0, 1e-9);
        EXPECT_GT(r.duration_s, 4.0 - 1.1) << "at most about a second lost of 4 s";
        EXPECT_EQ(r.bytes, std::filesystem::file_size(r.path));
        const auto f = read_ogg_opus(slurp(r.path));
        ASSERT_TRUE(f.ok) << f.why;
        EXPECT_TRUE(f.pages.back().eos);
        EXPECT_EQ(f.pages.back().granule, want_granule);
        EXPECT_EQ(f.pcm_total, want_granule - 312);
        EXPECT_EQ(f.decoded, f.pcm_total);
        std::error_code ec;
        std::filesystem::remove_all(crash, ec);
    }
    rec.session_ended(t.sess.id);
    const auto fin = rec.recording(t.sess.id);
    ASSERT_TRUE(fin.has_value());
    EXPECT_EQ(fin->state, "finalised") << fin->error;
    EXPECT_EQ(fin->path.find(".part"), std::string::npos) << fin->path;
    EXPECT_FALSE(std::filesystem::exists(part)) << "renamed at the end";
}

// What the recorder creates and what it opens again at start: recordings
// are the sessions' audio (decrypted when the session was SRTP), so a
// directory it creates is 0750 and its files have no bits for others; at
// start it closes only regular files of its own kind, never through a
// symbolic link (another user's link into a directory root writes would
// have root truncate its target); and a TITLE no session name may be (an
// escape sequence for the tables that list it) is not shown.
TEST(recorder_recovery, files_are_private_links_are_not_followed_and_a_bad_title_is_not_shown) {
    recorded_session t("own");
    ASSERT_FALSE(t.dir.empty());
    svc::recorder_options o = t.options();
    o.dir = t.dir + "/made/here";
    const auto tone = opus_tone(440, 60, 2, 0.3);
    svc::recorder rec(o, t.sh, t.ring);
    rec.session_started(t.sess.id, "talk\x1b[2J", "forward");   // the control plane refuses such a name; a file may say anything
    const std::string part = recorded_part(rec, t, tone, 60);
    ASSERT_FALSE(part.empty()) << "no track written";
    struct stat st{};
    ASSERT_EQ(0, ::stat(o.dir.c_str(), &st));
    EXPECT_EQ(0750u, st.st_mode & 0777u) << "a directory the recorder made";
    ASSERT_EQ(0, ::stat(part.c_str(), &st));
    EXPECT_EQ(0u, st.st_mode & 0037u) << std::oct << (st.st_mode & 0777u) << ": group write or any bit for others";

    char tmpl[] = "/tmp/stentor-crash-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string crash = tmpl;
    const std::string name = std::filesystem::path(part).filename();
    spit(crash + "/" + name, slurp(part));
    // A link named like a cut-off recording, to a file that is not one.
    const std::string target = crash + "-precious";
    spit(target, {'k', 'e', 'e', 'p'});
    const std::string link = crash + "/session-8-20260101T000000Z-4d2.opus.part";
    ASSERT_EQ(0, ::symlink(target.c_str(), link.c_str()));

    svc::recorder_options co = t.options();
    co.dir = crash;
    {
        svc::recorder next(co, t.sh, nullptr);
        const auto all = next.recordings();
        ASSERT_EQ(all.size(), 1u) << "only the regular file";
        EXPECT_EQ(all[0].session_id, t.sess.id);
        EXPECT_EQ(all[0].state, "recovered") << all[0].error;
        EXPECT_EQ(all[0].name, "session-9") << "the file's TITLE is not a name to show";
    }
    EXPECT_EQ(slurp(target), (std::vector<uint8_t>{'k', 'e', 'e', 'p'})) << "the link's target untouched";
    EXPECT_TRUE(std::filesystem::is_symlink(link)) << "the link left as it was";
    rec.session_ended(t.sess.id);
    std::error_code ec;
    std::filesystem::remove_all(crash, ec);
    std::filesystem::remove(target, ec);
}

// Before, a .part the recorder could not open as a regular file at start
// (a link, which it does not follow; a directory; a FIFO; no permission) was
// skipped without a word: audio an operator would look for, listed nowhere.
// Each is now left as it is, logged once with the reason and counted
// (recorder/recover_skipped); a file a live recorder holds is no such case.
TEST(recorder_recovery, a_part_file_it_cannot_open_is_logged_once_and_counted) {
    recorded_session t("skip");
    ASSERT_FALSE(t.dir.empty());
    const std::string target = t.dir + "-precious";
    spit(target, {'k', 'e', 'e', 'p'});
    struct row {
        const char* what;
        std::string name;
        std::function<int(const std::string&)> make;
        const char* reason;
    };
    const std::vector<row> rows = {
        {"a link", "session-8-20260101T000000Z-4d2.opus.part",
         [&](const std::string& p) { return ::symlink(target.c_str(), p.c_str()); }, "a symbolic link (not followed)"},
        {"a directory", "session-9-20260101T000000Z-4d2.opus.part",
         [](const std::string& p) { return ::mkdir(p.c_str(), 0750); }, "cannot open it: Is a directory"},
        {"a FIFO", "session-10-20260101T000000Z-4d2.opus.part",
         [](const std::string& p) { return ::mkfifo(p.c_str(), 0600); }, "not a regular file"},
    };
    for (const auto& r : rows) ASSERT_EQ(0, r.make(t.dir + "/" + r.name)) << r.what;
    testing::internal::CaptureStderr();
    std::optional<uint64_t> skipped, recovered;
    size_t listed = 0;
    {
        svc::recorder rec(t.options(), t.sh, nullptr);
        skipped = stat_of(rec.stats(), "recover_skipped");
        recovered = stat_of(rec.stats(), "recovered");
        listed = rec.recordings().size();
    }
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_EQ(skipped, std::optional<uint64_t>(rows.size())) << "one per file";
    EXPECT_EQ(recovered, std::optional<uint64_t>(0));
    EXPECT_EQ(listed, 0u);
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const std::string line = "cannot recover " + t.dir + "/" + r.name + ": " + r.reason + "; left as it is";
        const size_t at = log.find(line);
        EXPECT_NE(at, std::string::npos) << log;
        if (at != std::string::npos) {
            EXPECT_EQ(log.find(line, at + 1), std::string::npos) << "logged once:\n" << log;
        }
        struct stat st{};
        EXPECT_EQ(0, ::lstat((t.dir + "/" + r.name).c_str(), &st)) << "left where it was";
    }
    EXPECT_EQ(slurp(target), (std::vector<uint8_t>{'k', 'e', 'e', 'p'}));
    std::error_code ec;
    std::filesystem::remove(target, ec);
}

// Four 20 ms frames from each of two SSRCs (0x1111, 0x2222): a recording of two tracks.
void record_two_tracks(recorded_session& t, svc::recorder& rec) {
    const auto tone = opus_tone(440, 4, 2, 0.3);
    for (uint16_t i = 0; i < 4; ++i) {
        t.speak(i, i * 960u, 0x1111, tone[i]);
        t.speak(i, i * 960u, 0x2222, tone[i]);
    }
    rec.poll();
    rec.io(svc::mono_ns());
}

// A message of a session whose recording ended, still in the snapshot
// (the end reached the recorder before the publish that drops the session),
// is counted after_end, not recorded again. The recorder keeps ended
// generations for that, and only while their session is in the snapshot:
// a relay that ended a session every few minutes for months kept one entry
// for each. 100 sessions, one after the other, each recorded and ended.
TEST(recorder_ended, a_late_message_of_an_ended_session_is_refused_and_the_generations_held_stay_bounded) {
    recorded_session t("ended");
    ASSERT_FALSE(t.dir.empty());
    const auto tone = opus_tone(440, 1, 2, 0.3);
    svc::recorder rec(t.options(), t.sh, t.ring);
    const unsigned sessions = 100;
    size_t most = 0;
    for (unsigned i = 0; i < sessions; ++i) {
        t.sess.generation = 1000 + i;   // the same id, created again
        t.speak(0, 0, 0x1111, tone[0]);
        rec.poll();
        rec.io(svc::mono_ns());
        rec.session_ended(t.sess.id);
        t.speak(1, 960, 0x1111, tone[0]);   // late: after the end, before the publish
        rec.poll();
        most = std::max(most, rec.ended_generations());
    }
    const auto st = rec.stats();
    EXPECT_EQ(st.after_end, sessions) << "every late message refused, the last ones' after pruning too";
    EXPECT_EQ(st.files_opened, sessions);
    EXPECT_EQ(st.files_finalised, sessions);
    EXPECT_LE(most, 64u) << "one generation held per session ever recorded";
    EXPECT_GE(rec.ended_generations(), 1u) << "the live session's own generation stays";
}

// Deleting a recording (DELETE /api/v1/recordings/{id}): its files, once
// it is closed; one still being written stays. Two recordings of one
// session have their own ids (static sessions keep their id across
// restarts); a link planted under a track's name goes, never its target; a
// file that cannot be unlinked keeps the recording listed with the reason.
TEST(recorder_delete, only_a_closed_recording_is_deleted_each_by_its_id) {
    recorded_session t("delete");
    ASSERT_FALSE(t.dir.empty());
    const auto tone = opus_tone(440, 4, 2, 0.3);
    svc::recorder rec(t.options(), t.sh, t.ring);
    using rs = svc::recorder::remove_status;
    EXPECT_EQ(rec.remove(1).status, rs::not_found) << "no recording yet";

    // First recording: two tracks (two SSRCs).
    record_two_tracks(t, rec);
    ASSERT_EQ(files_in(t.dir), 2u);
    const uint64_t first = rec.recording(t.sess.id)->id;
    EXPECT_NE(first, 0u);
    const auto live = rec.remove(first);
    EXPECT_EQ(live.status, rs::recording) << "still written: left as it is";
    EXPECT_EQ(live.info.state, "recording");
    EXPECT_EQ(files_in(t.dir), 2u);
    rec.session_ended(t.sess.id);
    ASSERT_EQ(rec.recording_by_id(first)->state, "finalised");

    // The same session id again (next generation): a second recording, one
    // track, its own id.
    t.sess.generation = 201;
    for (uint16_t i = 0; i < 4; ++i) t.speak(i, i * 960u, 0x3333, tone[i]);
    rec.poll();
    rec.io(svc::mono_ns());
    const uint64_t second = rec.recording(t.sess.id)->id;
    EXPECT_NE(second, first);
    EXPECT_EQ(rec.remove(second).status, rs::recording);
    rec.session_ended(t.sess.id);
    ASSERT_EQ(files_in(t.dir), 3u);
    ASSERT_EQ(rec.recordings().size(), 2u);

    const auto old = rec.remove(first);
    ASSERT_EQ(old.status, rs::removed) << old.error;
    EXPECT_EQ(old.unlinked.size(), 2u) << "both tracks of the first";
    EXPECT_EQ(old.info.session_id, t.sess.id);
    EXPECT_EQ(files_in(t.dir), 1u);
    ASSERT_EQ(rec.recordings().size(), 1u);
    EXPECT_EQ(rec.recordings()[0].id, second) << "the other one stays";
    EXPECT_FALSE(rec.recording_by_id(first).has_value());
    EXPECT_EQ(rec.remove(first).status, rs::not_found) << "an id is never reused";

    const auto latest = rec.remove(second);
    ASSERT_EQ(latest.status, rs::removed) << latest.error;
    EXPECT_EQ(latest.unlinked.size(), 1u);
    EXPECT_EQ(files_in(t.dir), 0u);
    EXPECT_TRUE(rec.recordings().empty());
}

TEST(recorder_delete, a_planted_link_goes_not_its_target_and_a_file_that_stays_keeps_the_recording_listed) {
    recorded_session t("delete2");
    ASSERT_FALSE(t.dir.empty());
    svc::recorder rec(t.options(), t.sh, t.ring);
    using rs = svc::recorder::remove_status;
    record_two_tracks(t, rec);
    rec.session_ended(t.sess.id);
    const auto r = rec.recording(t.sess.id);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->tracks.size(), 2u);
    const std::string a = r->tracks[0].path, b = r->tracks[1].path;

    // Track a is now a link to a file outside the directory; track b a
    // directory, which unlink(2) refuses (EISDIR).
    char outside_tmpl[] = "/tmp/stentor-rec-outside-XXXXXX";
    const int ofd = mkstemp(outside_tmpl);
    ASSERT_GE(ofd, 0);
    ::close(ofd);
    const std::string outside = outside_tmpl;
    ASSERT_EQ(::unlink(a.c_str()), 0);
    ASSERT_EQ(::symlink(outside.c_str(), a.c_str()), 0);
    ASSERT_EQ(::unlink(b.c_str()), 0);
    ASSERT_EQ(::mkdir(b.c_str(), 0700), 0);

    testing::internal::CaptureStderr();
    const auto res = rec.remove(r->id);
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_EQ(res.status, rs::failed);
    EXPECT_NE(res.error.find("unlink " + b + ": Is a directory"), std::string::npos) << res.error;
    EXPECT_EQ(res.unlinked, std::vector<std::string>{a}) << "the link went";
    EXPECT_TRUE(std::filesystem::exists(outside)) << "its target did not";
    const auto still = rec.recording_by_id(r->id);
    ASSERT_TRUE(still.has_value()) << "listed again, with the reason";
    EXPECT_NE(still->error.find("delete: unlink " + b), std::string::npos) << still->error;
    EXPECT_NE(log.find("deleting recording " + std::to_string(r->id) + " of session 9"), std::string::npos) << log;

    // Once the directory is gone the delete goes through.
    ASSERT_EQ(::rmdir(b.c_str()), 0);
    EXPECT_EQ(rec.remove(r->id).status, rs::removed);
    EXPECT_FALSE(rec.recording_by_id(r->id).has_value());
    ::unlink(outside.c_str());
}

// A disk that never answers (issue 10's stalled disk, here at the end of a
// session): a write, or the end's own fdatasync. Finalise gives up after
// its timeout (10 s; 1 s here) and the recording fails; the track's file
// is left as it is, open, since closing, cutting or renaming it would wait
// on that disk (for the inode a stuck write holds; the session's end, and
// with it the recorder thread, used to wait for ever). Meanwhile a delete
// answers waiting_for_disk (the API: 409 recording, saying so) and leaves
// it: the request queued in io_uring points at its track. Once the disk
// answers, the file is closed under its final name, as finalise would
// have, and it can go.
TEST(recorder_delete, a_recording_whose_last_write_or_sync_the_disk_still_holds_stays_until_it_answers) {
    struct row {
        slow_fs::op held;
        const char* error;
    };
    for (const row& w : {row{slow_fs::op::write, "write: no completion within 1 s"},
                         row{slow_fs::op::fsync, "fdatasync: no completion within 1 s"}}) {
        SCOPED_TRACE(w.error);
        std::string why;
        auto fs = slow_fs::mount(why);
        ASSERT_NE(fs, nullptr) << why;
        recorded_session t("delete3", 9, fs->dir());
        ASSERT_FALSE(t.dir.empty());
        auto o = t.options();
        o.end_timeout_ns = 1000000000;
        svc::recorder rec(o, t.sh, t.ring);
        // Destroyed before the recorder: the held calls answer before it
        // closes its ring, whatever the outcome.
        release_holds guard{*fs};
        using rs = svc::recorder::remove_status;
        fs->hold(w.held);
        record_two_tracks(t, rec);
        const auto live = rec.recording(t.sess.id);
        ASSERT_TRUE(live.has_value());
        const uint64_t id = live->id;
        {
            background end([&] { rec.session_ended(t.sess.id); });   // waits 1 s, then gives up
            // Destroyed before `end` is joined: a thread that submitted to
            // io_uring cannot exit while its request is held.
            release_holds release_before_join{*fs};
            ASSERT_TRUE(eventually([&] { return end.done(); }, std::chrono::seconds(20)))
                << "the session's end waited on the stuck disk past its 1 s";
            ASSERT_TRUE(fs->wait_held(w.held, std::chrono::seconds(1))) << "the call never reached the disk";
            const auto failed = rec.recording_by_id(id);
            ASSERT_TRUE(failed.has_value());
            EXPECT_EQ(failed->state, "error");
            EXPECT_EQ(failed->error, w.error);
            ASSERT_EQ(failed->tracks.size(), 2u);
            for (const auto& tr : failed->tracks) {
                EXPECT_TRUE(tr.path.ends_with(".opus.part")) << "left as it was: " << tr.path;
                EXPECT_TRUE(tr.waiting_for_disk);
            }

            const auto held = rec.remove(id);
            EXPECT_EQ(held.status, rs::waiting_for_disk) << "deleted while its request was queued";
            EXPECT_EQ(held.info.state, "error");
            EXPECT_TRUE(held.unlinked.empty());
            EXPECT_EQ(files_in(t.dir), 2u);
        }   // the disk answers

        // The next steps reap the answers and close the files.
        std::optional<svc::recording_info> after;
        EXPECT_TRUE(eventually([&] {
            rec.io(svc::mono_ns());
            after = rec.recording_by_id(id);
            return after.has_value() && after->tracks.size() == 2 && !after->tracks[0].path.ends_with(".part") &&
                   !after->tracks[1].path.ends_with(".part");
        })) << "the files were not closed once the disk answered";
        ASSERT_TRUE(after.has_value());
        EXPECT_EQ(after->state, "error") << "what failed stays said";
        for (const auto& tr : after->tracks) {
            EXPECT_TRUE(tr.path.ends_with(".opus")) << tr.path;
            EXPECT_FALSE(tr.waiting_for_disk);
            EXPECT_TRUE(std::filesystem::exists(tr.path)) << tr.path;
            EXPECT_GT(tr.bytes, 0u) << "the pages landed";
        }
        const auto gone = rec.remove(id);
        EXPECT_EQ(gone.status, rs::removed) << gone.error;
        EXPECT_EQ(gone.unlinked.size(), 2u);
        EXPECT_FALSE(rec.recording_by_id(id).has_value());
        EXPECT_EQ(files_in(t.dir), 0u);
    }
}

}  // namespace
}  // namespace stentor::test
