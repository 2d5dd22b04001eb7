// Packet capture over the API and stentorctl (docs/capture.md), against a
// relay whose worker runs on lcore 1 while a speaker streams into a ring
// port: start, status, the file served back, bad requests answered 4xx with
// their reason and nothing changed, stentorctl's exit statuses.
#include <dirent.h>
#include <pcap/pcap.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace stentor::test
