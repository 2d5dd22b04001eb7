// stentorctl against the real API server: every command, its JSON, its
// exit status on refusals.
#include <cstdio>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "fixture.h"

namespace stentor::test {
namespace {

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

TEST(stentorctl, drives_the_api) {
    ring_port port = make_ring_port("cli0");
    auto p = api_profile(port.name);
    control::relay_options ro;
    ro.launch = true;
    api_env env(p, ro);
    const std::string api = "--api 127.0.0.1:" + std::to_string(env.api->port()) + " ";
    const std::string base = api + "--token " + test_token + " ";

    auto r = run(base + "session create --name cli --udp-port 40005 --max-listeners 10");
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("created session 1 on udp port 40005")) << r.out;
    r = run(base + "speaker add 1 198.18.0.10:5004 --ssrc 99");
    EXPECT_EQ(0, r.status) << r.out;
    r = run(base + "listener add 1 203.0.113.5:6000 --tier 2");
    EXPECT_EQ(0, r.status) << r.out;
    r = run(base + "show sessions");
    EXPECT_EQ(0, r.status);
    EXPECT_NE(std::string::npos, r.out.find("cli")) << r.out;
    r = run(base + "show sessions --json");
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(1u, j["sessions"][0]["listeners"]);
    r = run(base + "show session 1 --json");
    EXPECT_EQ(99u, nlohmann::json::parse(r.out)["speakers"][0]["ssrc"]);
    r = run(base + "show session 1");
    EXPECT_NE(std::string::npos, r.out.find("speaker 198.18.0.10:5004 ssrc=99")) << r.out;
    r = run(base + "show listeners 1");
    EXPECT_NE(std::string::npos, r.out.find("203.0.113.5:6000 tier 2")) << r.out;
    r = run(base + "show listeners 1 --json");
    EXPECT_EQ("203.0.113.5", nlohmann::json::parse(r.out)["listeners"][0]["ip"]);
    for (const char* what : {"ports", "lcores", "drops", "events", "capacity"}) {
        r = run(base + "show " + what + " --json");
        EXPECT_EQ(0, r.status) << what << ": " << r.out;
        EXPECT_FALSE(nlohmann::json::parse(r.out, nullptr, false).is_discarded()) << what;
        r = run(base + "show " + what);
        EXPECT_EQ(0, r.status) << what << ": " << r.out;
    }
    r = run(base + "show ports");
    EXPECT_NE(std::string::npos, r.out.find("lan0")) << r.out;
    r = run(base + "stats");
    EXPECT_NE(std::string::npos, r.out.find("listeners")) << r.out;
    r = run(base + "stats --json");
    EXPECT_EQ(1u, nlohmann::json::parse(r.out)["listeners"]);
    r = run(base + "top --iterations 2 --interval-ms 100");
    EXPECT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("LCORE")) << r.out;
    // Refusals: exit 1 with the API's reason.
    r = run(base + "listener add 1 127.0.0.1:6000");
    EXPECT_EQ(1, r.status);
    EXPECT_NE(std::string::npos, r.out.find("invalid")) << r.out;
    r = run(base + "listener add 1 203.0.113.5:6000");
    EXPECT_EQ(1, r.status);
    EXPECT_NE(std::string::npos, r.out.find("exists")) << r.out;
    r = run(api + "--token wrong-token-0123456789 show sessions");
    EXPECT_EQ(1, r.status);
    EXPECT_NE(std::string::npos, r.out.find("401")) << r.out;
    // Token from the environment.
    r = run("env STENTOR_TOKEN=" + std::string(test_token) + " " + STENTORCTL_PATH + " " + api + "show sessions");
    r = run(std::string("") + api + "show sessions");
    EXPECT_EQ(1, r.status) << "no token";
    r = run(base + "listener del 1 203.0.113.5:6000");
    EXPECT_EQ(0, r.status) << r.out;
    r = run(base + "session end 1");
    EXPECT_EQ(0, r.status) << r.out;
    EXPECT_EQ(0u, env.r->state().sessions().size());
}

}  // namespace
}  // namespace stentor::test
