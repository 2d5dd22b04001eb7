// Recordings over HTTP when the disk does not answer: the real relay (its
// workers and recorder thread), the real HTTP server, and a recording
// directory on slow_fs (tests/integration/slow_fs.h: a FUSE file system
// whose writes block in the kernel while the test holds them, as on a
// stalled disk). Needs /dev/fuse and root, as the recorder's integration
// tests do.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "../integration/eventually.h"
#include "../integration/slow_fs.h"
#include "fixture.h"

namespace stentor::test {
namespace {

using json = nlohmann::json;

// A session's end gave up on a write its disk never answered: the recording
// is in `error`, its track `waiting_for_disk` (the recording's JSON and the
// gauge say so), and a DELETE is answered 409 `recording` with a reason
// that says why and what to wait for, and deletes nothing. Once the disk
// answers, the track is closed and the same DELETE removes the recording.
TEST(recording_api, a_recording_waiting_for_its_disk_is_refused_409_saying_so_until_the_disk_answers) {
    std::string why;
    auto fs = slow_fs::mount(why);
    ASSERT_NE(fs, nullptr) << why;
    ring_port port = fresh_ring_port("recapi");
    auto p = api_profile(port.name);
    control::session_config sc = speaker_session();
    sc.recording = true;
    p.sessions.push_back(sc);
    p.recording.dir = fs->dir();
    control::relay_options ro;
    ro.launch = true;
    ro.record_end_timeout_ns = 1000000000;   // the session's end gives up after 1 s (10 s by default)
    api_env env(p, ro);
    // Declared after the relay and the API: the held calls answer before
    // their threads (the recorder's, the API's) are joined.
    release_holds guard{*fs};

    const auto rec = env.get("/api/v1/sessions/1/recording");
    ASSERT_EQ(200, rec.status) << rec.text;
    const uint64_t id = rec.body["id"].get<uint64_t>();
    const std::string path = "/api/v1/recordings/" + std::to_string(id);

    fs->hold(slow_fs::op::write);
    // Half a second of the speaker (SSRC 1234): one track, its pages written
    // by the recorder's flush or at the end, and held.
    for (uint16_t k = 0; k < 25; ++k) {
        frame_spec f;
        f.seq = static_cast<uint16_t>(100 + k);
        f.ts = 960u * (k + 1);
        inject(port, rtp_frame(f));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(eventually([&] {
        const auto r = env.get(path);
        return r.status == 200 && r.body["tracks"].size() == 1;
    })) << "the speaker's packets made no track: " << env.get(path).text;

    // Still being written: the first 409, its own reason.
    const auto live = env.del(path);
    EXPECT_EQ(409, live.status) << live.text;
    EXPECT_EQ("recording", live.body.value("error", ""));
    EXPECT_NE(std::string::npos, live.body.value("reason", "").find("is still being written: end its session first"))
        << live.text;

    const auto ended = env.del("/api/v1/sessions/1");   // gives up on the held write after 1 s
    ASSERT_EQ(200, ended.status) << ended.text;
    ASSERT_TRUE(fs->wait_held(slow_fs::op::write, std::chrono::seconds(5))) << "no write reached the disk";

    const auto stuck = env.get(path);
    ASSERT_EQ(200, stuck.status);
    EXPECT_EQ("error", stuck.body["state"]) << stuck.text;
    ASSERT_EQ(1u, stuck.body["tracks"].size());
    EXPECT_EQ(true, stuck.body["tracks"][0]["waiting_for_disk"]) << stuck.text;
    const auto metrics = env.get("/metrics");
    EXPECT_NE(std::string::npos, metrics.text.find("\nstentor_recording_tracks_waiting_for_disk 1\n"));

    const auto refused = env.del(path);
    EXPECT_EQ(409, refused.status) << refused.text;
    EXPECT_EQ("recording", refused.body.value("error", ""));
    EXPECT_EQ("recording " + std::to_string(id) +
                  " (session 1) cannot be deleted yet: its session has ended, but a write or sync of its track "
                  "files is still waiting for the disk (the tracks say waiting_for_disk); once the disk answers, "
                  "the files are closed and it can be deleted",
              refused.body.value("reason", ""));
    const auto after = env.get(path);
    EXPECT_EQ(stuck.body, after.body) << "a refused delete changes nothing";

    fs->release_all();
    ASSERT_TRUE(eventually([&] {
        const auto r = env.get(path);
        return r.status == 200 && r.body["tracks"].size() == 1 && r.body["tracks"][0]["waiting_for_disk"] == false;
    })) << "the track was not closed once the disk answered: " << env.get(path).text;
    EXPECT_NE(std::string::npos,
              env.get("/metrics").text.find("\nstentor_recording_tracks_waiting_for_disk 0\n"));
    const auto gone = env.del(path);
    EXPECT_EQ(200, gone.status) << gone.text;
    EXPECT_EQ(id, gone.body.value("deleted", uint64_t{0}));
    EXPECT_EQ(1u, gone.body["files"].size()) << gone.text;
    EXPECT_EQ(404, env.get(path).status);
}

}  // namespace
}  // namespace stentor::test
