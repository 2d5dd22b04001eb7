// stentorctl against the real API server: every command, its JSON, its
// exit status on refusals.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "fixture.h"
#include "stentor/join_token.h"

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

// stentorctl with only the given environment variables changed.
run_result run_env(const std::string& env_assignments, const std::string& args) {
    const std::string cmd = "env " + env_assignments + " " + STENTORCTL_PATH + " " + args + " 2>&1";
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
    ring_port port = fresh_ring_port("cli");
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
    EXPECT_NE(std::string::npos, r.out.find("  srtp ingress=off egress=off\n")) << r.out;
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
    // Token from the environment (more ways: takes_its_token_from_a_file_or_the_environment).
    r = run_env("STENTOR_TOKEN=" + std::string(test_token), api + "show sessions");
    EXPECT_EQ(0, r.status) << r.out;
    r = run_env("STENTOR_TOKEN=", api + "show sessions");
    EXPECT_EQ(2, r.status) << "no token: " << r.out;
    r = run(base + "listener del 1 203.0.113.5:6000");
    EXPECT_EQ(0, r.status) << r.out;
    r = run(base + "session end 1");
    EXPECT_EQ(0, r.status) << r.out;
    EXPECT_EQ(0u, env.r->state().sessions().size());
}

// Issue 10 item 3: a token on the command line is readable by every user
// of the machine (ps, /proc/<pid>/cmdline). stentorctl takes it from a file
// (--token-file) or the environment; argv still works, and its help says
// why not to.
TEST(stentorctl, takes_its_token_from_a_file_or_the_environment) {
    ring_port port = fresh_ring_port("cli");
    auto p = api_profile(port.name);
    control::relay_options ro;
    ro.launch = true;
    api_env env(p, ro);
    const std::string api = "--api 127.0.0.1:" + std::to_string(env.api->port()) + " ";
    char dir_tmpl[] = "/tmp/stentorctl-token.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(dir_tmpl));
    const std::string dir = dir_tmpl;
    auto file = [&](const std::string& name, const std::string& content, mode_t mode = 0600) {
        const std::string path = dir + "/" + name;
        FILE* f = std::fopen(path.c_str(), "wb");
        if (f != nullptr) {
            std::fwrite(content.data(), 1, content.size(), f);
            std::fclose(f);
        }
        chmod(path.c_str(), mode);
        return path;
    };
    const std::string tok(test_token);
    struct row {
        const char* what;
        std::string env;    // assignments for env(1); STENTOR_TOKEN cleared unless set here
        std::string args;   // before the command
        int status;
        const char* says;   // substring of the output
    };
    const std::vector<row> rows = {
        {"file with a newline", "", "--token-file " + file("nl", tok + "\n"), 0, "LISTENERS"},
        {"file without a newline", "", "--token-file " + file("bare", tok), 0, "LISTENERS"},
        {"file with CRLF", "", "--token-file " + file("crlf", tok + "\r\n"), 0, "LISTENERS"},
        {"environment", "STENTOR_TOKEN=" + tok, "", 0, "LISTENERS"},
        {"file wins over the environment", "STENTOR_TOKEN=wrong-token-0123456789",
         "--token-file " + file("win", tok + "\n"), 0, "LISTENERS"},
        {"argv still works", "", "--token " + tok, 0, "LISTENERS"},
        {"wrong token in the file", "", "--token-file " + file("wrong", "wrong-token-0123456789\n"), 1, "HTTP 401"},
        {"missing file", "", "--token-file " + dir + "/none", 2, "cannot read"},
        {"empty file", "", "--token-file " + file("empty", "\n"), 2, "the file is empty"},
        {"two lines", "", "--token-file " + file("two", tok + "\n" + tok + "\n"), 2, "alone on one line"},
        {"token with a space", "", "--token-file " + file("space", "abc def0123456789\n"), 2, "alone on one line"},
        {"readable by others: works, with a warning", "", "--token-file " + file("open", tok + "\n", 0644), 0,
         "readable by other users (mode 644)"},
        {"no token anywhere", "", "", 2, "no bearer token"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const auto out = run_env("STENTOR_TOKEN= " + r.env, api + r.args + " show sessions");
        EXPECT_EQ(r.status, out.status) << out.out;
        EXPECT_NE(std::string::npos, out.out.find(r.says)) << out.out;
    }
    // --token and --token-file together: refused, nothing sent.
    auto both = run_env("STENTOR_TOKEN=", api + "--token " + tok + " --token-file " + file("both", tok) + " show sessions");
    EXPECT_NE(0, both.status) << both.out;
    EXPECT_NE(std::string::npos, both.out.find("excludes")) << both.out;
    // The help says why argv is the worst place for it.
    auto help = run_env("STENTOR_TOKEN=", "--help");
    EXPECT_NE(std::string::npos, help.out.find("--token-file")) << help.out;
    EXPECT_NE(std::string::npos, help.out.find("visible to every user of the machine in ps")) << help.out;
    std::filesystem::remove_all(dir);
}

// Join tokens (docs/join.md): one "TOKEN PASSWORD" line per token, each
// verifying with the profile's key; --json is the API's answer; refusals
// exit 1 with the API's reason.
TEST(stentorctl, mints_join_tokens) {
    ring_port port = fresh_ring_port("cli");
    auto p = api_profile(port.name);
    p.sessions.push_back(speaker_session());   // session 1
    std::vector<uint8_t> secret(32);
    for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(0xa0 + i);
    p.join.keys.push_back({4, "/etc/stentor/join-4.key", secret});
    p.join.mint_key_id = 4;
    control::relay_options ro;
    ro.launch = true;
    api_env env(p, ro);
    const std::string base = "--api 127.0.0.1:" + std::to_string(env.api->port()) + " --token " + test_token + " ";
    const join::token_key key(secret.data(), secret.size());

    auto r = run(base + "tokens mint --session 1 --count 7 --tier 2 --ttl 120");
    ASSERT_EQ(0, r.status) << r.out;
    std::istringstream lines(r.out);
    std::string line;
    size_t n = 0;
    while (std::getline(lines, line)) {
        SCOPED_TRACE(line);
        ++n;
        const auto sp = line.find(' ');
        ASSERT_EQ(join::token_text_len, sp);
        const std::string token = line.substr(0, sp), password = line.substr(sp + 1);
        uint8_t raw[join::token_raw_len];
        join::token_fields f;
        ASSERT_TRUE(join::decode_token(token.data(), token.size(), raw, f));
        EXPECT_EQ(4, f.key_id);
        EXPECT_EQ(1u, f.session_id);
        EXPECT_EQ(2, f.tier);
        uint8_t mac[join::token_mac_len];
        join::token_mac(key, raw, mac);
        EXPECT_TRUE(join::check_tag(raw, mac));
        char pw[join::token_password_len];
        join::password_of(mac, pw);
        EXPECT_EQ(std::string(pw, sizeof pw), password);
    }
    EXPECT_EQ(7u, n) << r.out;

    r = run(base + "tokens mint --session 1 --count 2 --json");
    ASSERT_EQ(0, r.status) << r.out;
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(4u, j["key_id"]);
    EXPECT_EQ(0u, j["tier"]);
    EXPECT_EQ(2u, j["tokens"].size());

    struct row {
        const char* what;
        std::string args;
        int status;
        const char* says;
    };
    const std::vector<row> rows = {
        {"unknown session", "tokens mint --session 9 --count 1", 1, "HTTP 404 not_found: no session 9"},
        // Out of range: stentorctl refuses before sending (exit 2, usage);
        // the API's own refusals of these are api_parse.token_mint's rows.
        {"count 0", "tokens mint --session 1 --count 0", 2, "\"0\" is not a decimal integer 1..100000"},
        {"count past the most", "tokens mint --session 1 --count 100001", 2, "is not a decimal integer 1..100000"},
        {"tier 4", "tokens mint --session 1 --count 1 --tier 4", 2, "is not a decimal integer 0..3"},
        {"ttl 0", "tokens mint --session 1 --count 1 --ttl 0", 2, "is not a decimal integer 1..604800"},
        {"no session", "tokens mint --count 1", 2, "--session is required"},
        {"no count", "tokens mint --session 1", 2, "--count is required"},
    };
    for (const auto& rw : rows) {
        SCOPED_TRACE(rw.what);
        const auto out = run(base + rw.args);
        EXPECT_EQ(rw.status, out.status) << out.out;
        EXPECT_NE(std::string::npos, out.out.find(rw.says)) << out.out;
    }
    EXPECT_EQ(9u, env.api->status().counters.tokens_minted);
}

}  // namespace
}  // namespace stentor::test
