// Packet capture over the API and stentorctl (docs/capture.md), against a
// relay whose worker runs on lcore 1 while a speaker streams into a ring
// port: start, status, the file served back, bad requests answered 4xx with
// their reason and nothing changed, stentorctl's exit statuses; and, against
// a stand-in relay that cuts the transfer, stentorctl's -w FILE either whole
// or as it was.
#include <dirent.h>
#include <climits>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "capture.h"
#include "fixture.h"

namespace stentor::test {
namespace {

using nlohmann::json;

// A speaker streaming 50 packets/s into the port until destroyed; what the
// relay sends is taken off the TX ring meanwhile.
struct streamer {
    const ring_port& port;
    std::atomic<bool> stop{false};
    std::thread th;
    explicit streamer(const ring_port& p) : port(p) {
        th = std::thread([this] {
            uint16_t seq = 1;
            while (!stop.load()) {
                frame_spec fs;
                fs.seq = seq;
                fs.ts = 960u * seq;
                ++seq;
                inject(port, rtp_frame(fs));
                drain(port);
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        });
    }
    ~streamer() {
        stop.store(true);
        th.join();
    }
};

size_t pcap_packets(const std::string& path, std::vector<uint16_t>* dst_ports = nullptr) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    EXPECT_NE(p, nullptr) << err;
    if (p == nullptr) return 0;
    size_t n = 0;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        ++n;
        if (dst_ports != nullptr && h->caplen >= 38) dst_ports->push_back(be16(d + 36));
    }
    pcap_close(p);
    return n;
}

struct run_result {
    int status;
    std::string out;
};

run_result run(const std::string& args) {
    const std::string cmd = std::string(STENTORCTL_PATH) + " " + args + " 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    run_result r{-1, ""};
    if (f == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    const int st = pclose(f);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

class capture_api : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("capi");
    std::string dir;
    std::unique_ptr<api_env> env;

    void SetUp() override {
        char tmpl[] = "/tmp/stentor-capapi-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        auto p = api_profile(port.name);
        p.capture.dir = dir;
        p.capture.max_packets = 1000;
        p.capture.max_seconds = 30;
        p.capture.max_mib = 4;
        control::session_config sc = speaker_session();
        sc.listeners.push_back({0xcb007105, 6000, 0});   // 203.0.113.5 via the gateway (static MAC)
        p.sessions.push_back(sc);
        control::relay_options ro;
        ro.launch = true;
        env = std::make_unique<api_env>(p, ro);
    }
    void TearDown() override {
        env.reset();
        if (DIR* d = opendir(dir.c_str())) {
            while (dirent* e = readdir(d))
                if (e->d_name[0] != '.') ::unlink((dir + "/" + e->d_name).c_str());
            closedir(d);
        }
        ::rmdir(dir.c_str());
    }

    // Polls the capture until it is no longer running (bounded).
    json wait_done(uint32_t id) {
        json j;
        for (int i = 0; i < 500; ++i) {
            j = env->get("/api/v1/captures/" + std::to_string(id)).body;
            if (j.value("state", "") != "running") break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return j;
    }
};

TEST_F(capture_api, a_session_capture_is_served_back_as_pcapng) {
    streamer s(port);
    auto r = env->post("/api/v1/captures", {{"session", 1}, {"max_packets", 10}});
    ASSERT_EQ(201, r.status) << r.text;
    const uint32_t id = r.body["id"];
    EXPECT_EQ("running", r.body["state"]);
    EXPECT_EQ(40000, r.body["target"]["udp_port"]);
    // Absent bounds are the profile's.
    EXPECT_EQ(10u, r.body["bounds"]["max_packets"]);
    EXPECT_EQ(30u, r.body["bounds"]["max_seconds"]);
    EXPECT_EQ(4u << 20, r.body["bounds"]["max_bytes"]);
    EXPECT_EQ(0u, r.body["file"].get<std::string>().rfind(dir + "/", 0)) << "under capture.dir";
    // Not ready while it runs.
    const auto early = env->get("/api/v1/captures/" + std::to_string(id) + "/file");
    if (early.status != 200) {
        EXPECT_EQ(409, early.status);
        EXPECT_EQ("not_ready", early.body["error"]);
    }
    const json done = wait_done(id);
    EXPECT_EQ("done", done["state"]) << done.dump();
    EXPECT_EQ("max_packets", done["stop_reason"]);
    EXPECT_EQ(10u, done["packets"]);
    const std::string file = done["file"];
    EXPECT_EQ(".pcapng", file.substr(file.size() - 7));
    // The file, over HTTP, byte for byte what the relay wrote.
    const auto f = env->get("/api/v1/captures/" + std::to_string(id) + "/file");
    ASSERT_EQ(200, f.status);
    EXPECT_EQ(done["file_bytes"].get<uint64_t>(), f.text.size());
    ASSERT_GE(f.text.size(), 4u);
    EXPECT_EQ(std::string("\x0a\x0d\x0d\x0a", 4), f.text.substr(0, 4)) << "a pcapng section header";
    std::vector<uint16_t> ports;
    EXPECT_EQ(10u, pcap_packets(file, &ports));
    for (uint16_t p : ports) EXPECT_EQ(40000, p);
    // Listed; then removed with its file.
    const auto list = env->get("/api/v1/captures");
    ASSERT_EQ(1u, list.body["captures"].size());
    EXPECT_EQ(id, list.body["captures"][0]["id"]);
    const auto del = env->del("/api/v1/captures/" + std::to_string(id));
    EXPECT_EQ(200, del.status);
    EXPECT_TRUE(del.body["file_removed"].get<bool>());
    EXPECT_NE(0, ::access(file.c_str(), F_OK));
    const auto gone = env->get("/api/v1/captures/" + std::to_string(id) + "/file");
    EXPECT_EQ(409, gone.status);
    EXPECT_NE(std::string::npos, gone.body["reason"].get<std::string>().find("removed")) << gone.text;
}

TEST_F(capture_api, bad_requests_are_4xx_with_a_reason_and_change_nothing) {
    struct row {
        const char* what;
        const char* method;
        const char* path;
        std::string body;
        int status;
        const char* error;
        const char* says;
    };
    const std::vector<row> rows = {
        {"unknown port", "POST", "/api/v1/captures", R"({"port":"wan9","direction":"rx"})", 400, "invalid",
         "no port named \"wan9\" (ports: lan0)"},
        {"unknown session", "POST", "/api/v1/captures", R"({"session":9})", 404, "not_found", "no session 9"},
        {"above capture.max_packets", "POST", "/api/v1/captures", R"({"session":1,"max_packets":1001})", 400,
         "invalid", "max_packets: 1001 is above this relay's limit 1000 (capture.max_packets)"},
        {"above capture.max_mib", "POST", "/api/v1/captures", R"({"session":1,"max_bytes":4194305})", 400,
         "invalid", "capture.max_mib"},
        {"a path", "POST", "/api/v1/captures", R"({"session":1,"file":"/etc/cron.d/x"})", 400, "invalid",
         "unknown field \"file\""},
        {"no direction", "POST", "/api/v1/captures", R"({"port":"lan0"})", 400, "invalid", "\"direction\""},
        {"unknown capture", "GET", "/api/v1/captures/42", "", 404, "not_found", "no capture 42"},
        {"stop an unknown capture", "POST", "/api/v1/captures/42/stop", "", 404, "not_found", "no capture 42"},
        {"file of an unknown capture", "GET", "/api/v1/captures/42/file", "", 404, "not_found", "no capture 42"},
        {"capture id 0", "GET", "/api/v1/captures/0", "", 404, "not_found", "no capture 0"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const auto r = env->call(row.method, row.path, row.body);
        EXPECT_EQ(row.status, r.status) << r.text;
        EXPECT_EQ(row.error, r.body.value("error", "")) << r.text;
        EXPECT_NE(std::string::npos, r.body.value("reason", "").find(row.says)) << r.text;
    }
    EXPECT_TRUE(env->get("/api/v1/captures").body["captures"].empty());
    EXPECT_EQ(0, ::rmdir(dir.c_str())) << "no file was made";
    ASSERT_EQ(0, ::mkdir(dir.c_str(), 0750));
    // One at a time: 409 naming the running one; its file is not ready.
    const auto a = env->post("/api/v1/captures", {{"port", "lan0"}, {"direction", "tx"}});
    ASSERT_EQ(201, a.status) << a.text;
    const auto b = env->post("/api/v1/captures", {{"session", 1}});
    EXPECT_EQ(409, b.status);
    EXPECT_EQ("exists", b.body["error"]);
    EXPECT_NE(std::string::npos, b.body["reason"].get<std::string>().find("capture 1 (port lan0 tx) is running"))
        << b.text;
    const auto nf = env->get("/api/v1/captures/1/file");
    EXPECT_EQ(409, nf.status);
    EXPECT_NE(std::string::npos, nf.body["reason"].get<std::string>().find("still running")) << nf.text;
    const auto stopped = env->post("/api/v1/captures/1/stop", json());
    EXPECT_EQ(400, stopped.status) << "stop takes no body";
    const auto ok = env->call("POST", "/api/v1/captures/1/stop");
    EXPECT_EQ(200, ok.status) << ok.text;
    EXPECT_EQ("done", ok.body["state"]);
    EXPECT_EQ("stopped", ok.body["stop_reason"]);
    // Stopping again answers the same, changes nothing.
    EXPECT_EQ(ok.body, env->call("POST", "/api/v1/captures/1/stop").body);
}

TEST_F(capture_api, stentorctl_capture_writes_the_file_where_its_operator_says) {
    streamer s(port);
    const std::string base = "--api 127.0.0.1:" + std::to_string(env->api->port()) + " --token " + test_token + " ";
    char local_tmpl[] = "/tmp/stentor-capcli-XXXXXX";
    ASSERT_NE(mkdtemp(local_tmpl), nullptr);
    const std::string local = std::string(local_tmpl) + "/session.pcapng";
    auto r = run(base + "capture --session 1 --count 8 -w " + local);
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("done (max_packets): 8 packets")) << r.out;
    std::vector<uint16_t> ports;
    EXPECT_EQ(8u, pcap_packets(local, &ports));
    for (uint16_t p : ports) EXPECT_EQ(40000, p);
    // TX of the port, sampled, to standard output.
    const int st = std::system((std::string(STENTORCTL_PATH) + " " + base + "capture --tx lan0 --count 3 --sample 2 -w - 2>/dev/null > " +
                                local + ".tx").c_str());
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    EXPECT_EQ(3u, pcap_packets(local + ".tx"));
    r = run(base + "capture list");
    EXPECT_EQ(0, r.status);
    EXPECT_NE(std::string::npos, r.out.find("session 1 ingress (udp 40000)")) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("port lan0 tx")) << r.out;
    // Detached, then stopped and fetched by id.
    r = run(base + "capture --rx lan0 --detach");
    ASSERT_EQ(0, r.status) << r.out;
    std::string last;
    {
        std::istringstream lines(r.out);
        for (std::string l; std::getline(lines, l);)
            if (!l.empty()) last = l;
    }
    const unsigned n = static_cast<unsigned>(std::stoul(last));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));   // ~10 packets
    r = run(base + "capture stop " + std::to_string(n) + " --json");
    EXPECT_EQ(0, r.status) << r.out;
    const json stopped = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(stopped.is_discarded()) << r.out;
    EXPECT_EQ("stopped", stopped["stop_reason"]);
    EXPECT_LT(0u, stopped["packets"].get<uint64_t>());
    r = run(base + "capture fetch " + std::to_string(n) + " -w " + local + ".rx");
    EXPECT_EQ(0, r.status) << r.out;
    EXPECT_EQ(stopped["packets"].get<uint64_t>(), pcap_packets(local + ".rx"));
    // Refused by the relay: 1; usage: 2.
    r = run(base + "capture --rx wan9");
    EXPECT_EQ(1, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("HTTP 400 invalid: port: no port named \"wan9\"")) << r.out;
    r = run(base + "capture --count 5");
    EXPECT_EQ(2, r.status) << r.out;
    r = run(base + "capture --session 1 --count 0");
    EXPECT_EQ(1, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("\"max_packets\" must be an integer 1..")) << r.out;
    r = run(base + "capture fetch 999 -w " + local + ".none");
    EXPECT_EQ(1, r.status) << r.out;
    for (const char* ext : {"", ".tx", ".rx"}) ::unlink((local + ext).c_str());
    ::rmdir(local_tmpl);
}

// ---------------------------------------------- -w FILE: whole, or untouched

// A stand-in for the relay's capture API on loopback: the file's transfer
// fails the ways a real relay (a file it cannot read to the end, a crash)
// or the network can make it fail, at a point the test chooses.
struct fake_relay {
    enum class body {
        whole,       // Content-Length and every byte
        chunked,     // chunked, every byte
        cut,         // Content-Length, half the bytes, then the connection closes
        hang,        // Content-Length, half the bytes, then nothing until released
        no_length,   // every byte, no length, the connection closes at the end
    };
    body mode;
    std::string file;
    uint64_t record_bytes;   // file_bytes in the capture's record
    httplib::Server srv;
    int port = 0;
    std::thread th;
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;

    fake_relay(body m, std::string f) : mode(m), file(std::move(f)), record_bytes(file.size()) {
        const auto record = [this](const char* state) {
            return json{{"id", 7},          {"state", state},        {"what", "session 1 ingress (udp 40000)"},
                        {"packets", 3},     {"bytes", 300},          {"file_bytes", record_bytes},
                        {"stop_reason", "max_packets"},              {"file", "/relay/stentor-7-session1-20260101T000000Z.pcapng"},
                        {"bounds", {{"max_packets", 3}, {"max_seconds", 60}, {"max_bytes", 1 << 20}}}}
                .dump();
        };
        srv.Post("/api/v1/captures", [record](const httplib::Request&, httplib::Response& res) {
            res.status = 201;
            res.set_content(record("running"), "application/json");
        });
        srv.Get(R"(/api/v1/captures/7)", [record](const httplib::Request&, httplib::Response& res) {
            res.set_content(record("done"), "application/json");
        });
        srv.Get(R"(/api/v1/captures/7/file)", [this](const httplib::Request&, httplib::Response& res) {
            const size_t half = file.size() / 2;
            if (mode == body::chunked) {
                res.set_chunked_content_provider("application/x-pcapng", [this, half](size_t off, httplib::DataSink& sink) {
                    if (off == 0) return sink.write(file.data(), half);
                    if (off < file.size()) return sink.write(file.data() + off, file.size() - off);
                    sink.done();
                    return true;
                });
                return;
            }
            if (mode == body::no_length) {
                res.set_content_provider("application/x-pcapng", [this](size_t off, httplib::DataSink& sink) {
                    if (off < file.size()) return sink.write(file.data() + off, file.size() - off);
                    sink.done();
                    return true;
                });
                return;
            }
            res.set_content_provider(file.size(), "application/x-pcapng",
                                     [this, half](size_t off, size_t, httplib::DataSink& sink) {
                                         if (mode == body::whole) return sink.write(file.data() + off, file.size() - off);
                                         if (off < half) return sink.write(file.data() + off, half - off);
                                         if (mode == body::hang) {
                                             std::unique_lock lk(mu);
                                             cv.wait(lk, [this] { return released; });
                                         }
                                         return false;   // the connection is closed mid-body
                                     });
        });
        port = srv.bind_to_any_port("127.0.0.1");
        th = std::thread([this] { srv.listen_after_bind(); });
    }
    ~fake_relay() {
        {
            std::lock_guard g(mu);
            released = true;
        }
        cv.notify_all();
        srv.stop();
        th.join();
    }
    std::string api() const { return "--api 127.0.0.1:" + std::to_string(port) + " --token t "; }
};

// Bytes standing for a pcapng: big enough that half of it goes out on its own.
std::string fake_pcapng() {
    std::string s("\x0a\x0d\x0d\x0a", 4);
    for (size_t i = 0; s.size() < 256 * 1024; ++i) s.push_back(static_cast<char>(i * 131 % 251));
    return s;
}

std::string slurp_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void spit_file(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << bytes;
}

// Names in `dir` (dot-files too), sorted.
std::vector<std::string> names_in(const std::string& dir) {
    std::vector<std::string> v;
    if (DIR* d = opendir(dir.c_str())) {
        while (const dirent* e = readdir(d))
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) v.emplace_back(e->d_name);
        closedir(d);
    }
    std::sort(v.begin(), v.end());
    return v;
}

struct scratch_dir {
    std::string path;
    scratch_dir() {
        char tmpl[] = "/tmp/stentor-fetch-XXXXXX";
        if (mkdtemp(tmpl) != nullptr) path = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// Before, `-w FILE` was opened O_TRUNC and written as the bytes came: a
// transfer cut off left a truncated pcapng under FILE's name (over what FILE
// held), and a body without a length that ended early looked whole. Each row
// fetches capture 7 over an existing FILE; FILE must end up either as it was
// or the whole file, mode 0600, and nothing else in the directory.
TEST(capture_fetch, a_failed_transfer_leaves_the_file_as_it_was_and_a_whole_one_replaces_it) {
    struct row {
        const char* what;
        fake_relay::body mode;
        bool record_says_more;   // the capture's file_bytes one more than served
        const char* command;     // after "capture "
        int status;
        bool replaced;
        const char* says;
    };
    const std::vector<row> rows = {
        {"the whole file", fake_relay::body::whole, false, "fetch 7 -w", 0, true, "wrote "},
        {"the whole file, chunked", fake_relay::body::chunked, false, "fetch 7 -w", 0, true, "wrote "},
        {"the relay closes the connection halfway", fake_relay::body::cut, false, "fetch 7 -w", 1, false,
         "cannot fetch capture 7"},
        {"a body without a length: nothing tells a cut one apart", fake_relay::body::no_length, false, "fetch 7 -w",
         1, false, "did not say the file's size"},
        {"capture --session: whole", fake_relay::body::whole, false, "--session 1 -w", 0, true, "wrote "},
        {"capture --session: cut halfway", fake_relay::body::cut, false, "--session 1 -w", 1, false,
         "cannot fetch capture 7"},
        {"capture --session: fewer bytes than its record says", fake_relay::body::whole, true, "--session 1 -w", 1,
         false, "its record says"},
    };
    const std::string bytes = fake_pcapng();
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        scratch_dir d;
        ASSERT_FALSE(d.path.empty());
        const std::string target = d.path + "/s1.pcapng";
        spit_file(target, "an earlier capture");
        ASSERT_EQ(0, ::chmod(target.c_str(), 0644));
        fake_relay relay(r.mode, bytes);
        if (r.record_says_more) relay.record_bytes = bytes.size() + 1;
        const auto res = run(relay.api() + "capture " + r.command + " " + target);
        EXPECT_EQ(r.status, res.status) << res.out;
        EXPECT_NE(std::string::npos, res.out.find(r.says)) << res.out;
        EXPECT_EQ(std::vector<std::string>{"s1.pcapng"}, names_in(d.path)) << "no temporary left beside it";
        struct stat st{};
        ASSERT_EQ(0, ::stat(target.c_str(), &st));
        if (r.replaced) {
            EXPECT_TRUE(slurp_file(target) == bytes) << "the whole file";
            EXPECT_EQ(0600u, st.st_mode & 0777u) << std::oct << (st.st_mode & 0777u);
        } else {
            EXPECT_EQ("an earlier capture", slurp_file(target)) << "left as it was";
            EXPECT_EQ(0644u, st.st_mode & 0777u);
            EXPECT_NE(std::string::npos, res.out.find("left as it was; the relay keeps capture 7")) << res.out;
        }
    }
}

// A cut transfer with no FILE before leaves no FILE; a link at FILE is
// replaced by the file, its target never written (before: O_TRUNC through
// the link).
TEST(capture_fetch, no_file_is_made_from_a_cut_transfer_and_a_link_is_not_written_through) {
    const std::string bytes = fake_pcapng();
    scratch_dir d;
    ASSERT_FALSE(d.path.empty());
    {
        fake_relay relay(fake_relay::body::cut, bytes);
        const auto res = run(relay.api() + "capture fetch 7 -w " + d.path + "/new.pcapng");
        EXPECT_EQ(1, res.status) << res.out;
        EXPECT_TRUE(names_in(d.path).empty()) << "nothing made";
    }
    scratch_dir other;
    const std::string precious = other.path + "/precious";
    spit_file(precious, "keep");
    const std::string link = d.path + "/linked.pcapng";
    ASSERT_EQ(0, ::symlink(precious.c_str(), link.c_str()));
    {
        fake_relay relay(fake_relay::body::whole, bytes);
        const auto res = run(relay.api() + "capture fetch 7 -w " + link);
        EXPECT_EQ(0, res.status) << res.out;
    }
    EXPECT_EQ("keep", slurp_file(precious)) << "the link's target untouched";
    EXPECT_FALSE(std::filesystem::is_symlink(link)) << "the link replaced by the file";
    EXPECT_TRUE(slurp_file(link) == bytes);
    // A directory at FILE: refused before anything is written.
    ASSERT_EQ(0, ::mkdir((d.path + "/adir").c_str(), 0750));
    {
        fake_relay relay(fake_relay::body::whole, bytes);
        const auto res = run(relay.api() + "capture fetch 7 -w " + d.path + "/adir");
        EXPECT_EQ(1, res.status) << res.out;
        EXPECT_NE(std::string::npos, res.out.find("is a directory")) << res.out;
    }
    EXPECT_EQ((std::vector<std::string>{"adir", "linked.pcapng"}), names_in(d.path));
}

// stentorctl killed (SIGTERM, Ctrl-C, a closed terminal) while the file
// comes in: FILE is as it was and the temporary is gone (before: a truncated
// FILE). Half the file has arrived, the relay sends no more; the signal
// comes once the temporary holds bytes.
// The size of the file `pid` is writing in `dir` (its temporary: unnamed
// until the body is whole, so found through /proc/PID/fd), or -1.
long long writing_in(pid_t pid, const std::string& dir) {
    long long size = -1;
    const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
    if (DIR* d = opendir(fds.c_str())) {
        while (const dirent* e = readdir(d)) {
            char target[PATH_MAX];
            const std::string fd = fds + "/" + e->d_name;
            const ssize_t n = ::readlink(fd.c_str(), target, sizeof target - 1);
            if (n <= 0) continue;
            const std::string t(target, static_cast<size_t>(n));
            struct stat st{};
            // An unnamed file reads "DIR/#INODE (deleted)".
            if (t.rfind(dir + "/", 0) == 0 && ::stat(fd.c_str(), &st) == 0 && S_ISREG(st.st_mode))
                size = std::max<long long>(size, st.st_size);
        }
        closedir(d);
    }
    return size;
}

TEST(capture_fetch, a_fetch_killed_midway_leaves_the_file_as_it_was) {
    // SIGKILL too: the temporary has no name until the body is whole.
    const std::string bytes = fake_pcapng();
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGKILL}) {
        SCOPED_TRACE(strsignal(sig));
        scratch_dir d;
        ASSERT_FALSE(d.path.empty());
        const std::string target = d.path + "/s1.pcapng";
        spit_file(target, "an earlier capture");
        fake_relay relay(fake_relay::body::hang, bytes);
        const std::string log = d.path + ".log";
        const std::string port = "127.0.0.1:" + std::to_string(relay.port);
        const pid_t pid = ::fork();   // the child only opens, dups and execs: no allocation
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::execl(STENTORCTL_PATH, STENTORCTL_PATH, "--api", port.c_str(), "--token", "t", "capture", "fetch", "7",
                    "-w", target.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        // Bounded: the temporary holds the first half.
        bool midway = false;
        for (int i = 0; i < 2000 && !midway; ++i) {
            midway = writing_in(pid, d.path) >= static_cast<long long>(bytes.size() / 2);
            if (!midway) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        EXPECT_TRUE(midway) << "the temporary never held the first half";
        ::kill(pid, sig);
        int st = 0;
        ASSERT_EQ(pid, ::waitpid(pid, &st, 0));
        EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == sig) << "status " << st;
        EXPECT_EQ("an earlier capture", slurp_file(target)) << "left as it was";
        EXPECT_EQ(std::vector<std::string>{"s1.pcapng"}, names_in(d.path)) << "the temporary removed";
        if (sig != SIGKILL) {
            EXPECT_NE(std::string::npos, slurp_file(log).find("interrupted: -w " + target + " left as it was"))
                << slurp_file(log);
        }
        ::unlink(log.c_str());
    }
}

}  // namespace
}  // namespace stentor::test
