// stentorctl as vppctl (issue 14 item 7), against the real API server:
// every exit code, global options in any position, inputs checked before
// anything is sent, bulk add/del from a file and a range, show runtime,
// show ports with the NIC's counters, clear counters, and the man page and
// bash completion generated from the same command table.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fixture.h"

namespace stentor::test {
namespace {

using nlohmann::json;

struct run_result {
    int status;
    std::string out;   // stdout and stderr
};

run_result sh(const std::string& cmd) {
    FILE* f = popen((cmd + " 2>&1").c_str(), "r");
    run_result r{-1, ""};
    if (f == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    const int st = pclose(f);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

// stentorctl with STENTOR_TOKEN cleared unless the args give a token.
run_result ctl(const std::string& args) { return sh(std::string("env STENTOR_TOKEN= ") + STENTORCTL_PATH + " " + args); }

struct temp_dir {
    std::string path;
    temp_dir() {
        char t[] = "/tmp/stentorctl-test.XXXXXX";
        path = mkdtemp(t) != nullptr ? t : "/tmp";
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name, const std::string& content) const {
        const std::string p = path + "/" + name;
        std::ofstream(p) << content;
        return p;
    }
};

class ctl_test : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("ctl");
    std::unique_ptr<api_env> env;
    std::string api, tok, base;

    void SetUp() override {
        auto p = api_profile(port.name);
        p.sessions.push_back(speaker_session());   // session 1, speaker 198.18.0.10:5004
        control::relay_options ro;
        ro.launch = true;
        env = std::make_unique<api_env>(p, ro);
        api = "--api 127.0.0.1:" + std::to_string(env->api->port());
        tok = std::string("--token ") + test_token;
        base = api + " " + tok + " ";
    }
    void TearDown() override { env.reset(); }

    // What a refused or mistyped command must leave alone.
    json world() {
        json w = env->get("/api/v1/sessions").body;
        w["listeners"] = env->get("/api/v1/sessions/1/listeners?limit=100000").body;
        return w;
    }
    uint64_t listeners() { return env->get("/api/v1/sessions/1").body["listeners"]; }
};

struct exit_row {
    const char* what;
    std::string args;   // after --api and --token (unless the row gives its own)
    int status;
    const char* says;   // substring of the output
};

// 0 done, 1 refused by the relay (or not reached), 2 usage: CLI11's own
// codes (104, 106, 109, ...) never leak out, and a usage error sends nothing.
TEST_F(ctl_test, every_exit_code) {
    temp_dir t;
    const std::string ca = t.file("ca.pem", "not a certificate\n");
    const std::vector<exit_row> rows = {
        {"help", "--help", 0, "Exit status:"},
        {"help of a command", "listener add --help", 0, "--range RANGE"},
        {"version", "--version", 0, "stentorctl "},
        {"done", "show sessions", 0, "LISTENERS"},
        {"unknown command", "frobnicate", 2, "not a command or argument here: frobnicate"},
        {"no command", "", 2, "subcommand"},
        {"show without what", "show", 2, "subcommand"},
        {"unknown option", "show sessions --colour", 2, "--colour"},
        {"port not a number", "listener add 1 203.0.113.5:abc", 2, "\"203.0.113.5:abc\" is not IP:PORT"},
        {"port 0", "listener add 1 203.0.113.5:0", 2, "is not IP:PORT"},
        {"port 65536", "listener add 1 203.0.113.5:65536", 2, "is not IP:PORT"},
        {"no port", "listener add 1 203.0.113.5", 2, "is not IP:PORT"},
        {"three-part address", "listener add 1 203.0.113:6000", 2, "is not IP:PORT"},
        {"address with a leading zero", "listener add 1 203.0.113.05:6000", 2, "is not IP:PORT"},
        {"tier 4", "listener add 1 203.0.113.5:6000 --tier 4", 2, "is not a decimal integer 0..3"},
        {"tier -1", "listener add 1 203.0.113.5:6000 --tier -1", 2, "--tier"},
        {"session 0", "listener add 0 203.0.113.5:6000", 2, "is not a decimal integer 1..4294967295"},
        {"session not a number", "show session x", 2, "is not a decimal integer"},
        {"ssrc -5 is not 'no SSRC'", "speaker add 1 198.18.0.40:5004 --ssrc -5", 2, "--ssrc"},
        {"ssrc past 32 bits", "speaker add 1 198.18.0.40:5004 --ssrc 4294967296", 2, "0..4294967295"},
        {"ssrc in hex", "speaker add 1 198.18.0.40:5004 --ssrc 0x10", 2, "is not a decimal integer"},
        {"no endpoint, file or range", "listener add 1", 2, "give exactly one of IP:PORT, --file FILE, --range RANGE"},
        {"endpoint and range", "listener add 1 203.0.113.5:6000 --range 203.0.113.6:6000", 2, "exactly one of"},
        {"range backwards", "listener add 1 --range 203.0.113.9-203.0.113.5:6000", 2, "a range ends before it starts"},
        {"range port 0", "listener del 1 --range 203.0.113.5:0-10", 2, "ports are not P or P-Q"},
        {"range too large", "listener add 1 --range 10.0.0.0-10.255.255.255:1-65535", 2, "more than 10000000"},
        {"IPv6 range too large", "listener add 1 --range [2001:db8::-2001:db8::ffff:ffff:ffff:ffff]:6000", 2,
         "18446744073709551616 addresses, more than 10000000 listeners"},
        {"IPv6 range without brackets", "listener add 1 --range 2001:db8::1-2001:db8::9:6000", 2,
         "IPv6 addresses go in brackets"},
        {"range of two families", "listener del 1 --range [2001:db8::1-203.0.113.9]:6000", 2, "two families"},
        {"range count 0", "listener add 1 --range 203.0.113.5+0:6000", 2, "+N is not a count"},
        {"missing file", "listener add 1 --file " + t.path + "/none", 2, "cannot read"},
        {"chunk 0", "listener add 1 --range 203.0.113.5:6000 --chunk 0", 2, "--chunk"},
        {"frame_ms 7", "session create --frame-ms 7", 2, "--frame-ms"},
        {"mode", "session create --mode broadcast", 2, "--mode"},
        {"bitrate", "session create --max-bitrate-kbps 511", 2, "6..510"},
        {"token count 0", "tokens mint --session 1 --count 0", 2, "1..100000"},
        {"token without a session", "tokens mint --count 1", 2, "--session is required"},
        {"limit 0", "show listeners 1 --limit 0", 2, "--limit"},
        {"refused: loopback listener", "listener add 1 127.0.0.1:6000", 1, "HTTP 400 invalid: ip: listener address 127.0.0.1"},
        {"refused: no such session", "show session 99", 1, "HTTP 404 not_found: no session 99"},
        {"refused: no such listener", "listener del 1 203.0.113.99:6000", 1, "HTTP 404 not_found"},
        {"refused: session port taken", "session create --udp-port 40000", 1, "HTTP 409 exists"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const json before = world();
        const auto out = ctl(base + r.args);
        EXPECT_EQ(r.status, out.status) << out.out;
        EXPECT_NE(std::string::npos, out.out.find(r.says)) << out.out;
        if (r.status != 0) {
            EXPECT_EQ(before, world());
        }
    }
    // Rows with their own global options.
    const std::vector<exit_row> own = {
        {"api port not a number", "--api 127.0.0.1:abc " + tok + " show sessions", 2, "--api 127.0.0.1:abc: port"},
        {"api without a port", "--api 127.0.0.1 " + tok + " show sessions", 2, "expected [https://]HOST:PORT"},
        {"api scheme", "--api ftp://127.0.0.1:8080 " + tok + " show sessions", 2, "is not a name or an IPv4 address"},
        {"cacert missing", api + " " + tok + " --cacert " + t.path + "/none show sessions", 2, "--cacert"},
        {"cacert with http", "--api http://127.0.0.1:8080 --cacert " + ca + " " + tok + " show sessions", 2,
         "--cacert is for HTTPS"},
        {"no token", api + " show sessions", 2, "no bearer token"},
        {"wrong token", api + " --token wrong-token-0123456789 show sessions", 1, "HTTP 401"},
        {"not reached", "--api 127.0.0.1:1 " + tok + " show sessions", 1, "cannot reach the API at http://127.0.0.1:1"},
        {"plain HTTP is not TLS", "--api https://127.0.0.1:" + std::to_string(env->api->port()) + " " + tok + " show sessions",
         1, "cannot reach the API at https://"},
    };
    for (const auto& r : own) {
        SCOPED_TRACE(r.what);
        const auto out = ctl(r.args);
        EXPECT_EQ(r.status, out.status) << out.out;
        EXPECT_NE(std::string::npos, out.out.find(r.says)) << out.out;
    }
    // A decimal SSRC with a leading zero is ten, not octal eight.
    const auto ok = ctl(base + "speaker add 1 198.18.0.41:5004 --ssrc 010");
    ASSERT_EQ(0, ok.status) << ok.out;
    const json s = env->get("/api/v1/sessions/1").body;
    ASSERT_EQ(2u, s["speakers"].size());
    EXPECT_EQ(10u, s["speakers"][1]["ssrc"]);
}

// Global options before or after the command, anywhere among its own.
TEST_F(ctl_test, global_options_in_any_position) {
    const std::string a = api, t = tok;
    const std::vector<std::pair<std::string, std::string>> rows = {
        {a + " " + t + " show sessions --json", "\"sessions\""},
        {"show sessions " + a + " " + t + " --json", "\"sessions\""},
        {"--json show " + a + " sessions " + t, "\"sessions\""},
        {"show " + t + " sessions --json " + a, "\"sessions\""},
        {t + " show session 1 " + a + " --json", "\"udp_port\": 40000"},
        {"listener add 1 203.0.113.7:6000 " + a + " --tier 2 " + t, "added listener 203.0.113.7:6000 to session 1 (tier 2)"},
        {"listener " + a + " del 1 " + t + " 203.0.113.7:6000", "removed listener 203.0.113.7:6000"},
        {"stats --json " + t + " " + a, "\"counters\""},
    };
    for (const auto& [args, says] : rows) {
        SCOPED_TRACE(args);
        const auto out = ctl(args);
        EXPECT_EQ(0, out.status) << out.out;
        EXPECT_NE(std::string::npos, out.out.find(says)) << out.out;
    }
    EXPECT_EQ(0u, listeners());
}

// --help shows every default, so nobody has to read the code to know what
// an option left out means.
TEST_F(ctl_test, help_shows_the_defaults) {
    const auto create = ctl("session create --help");
    EXPECT_EQ(0, create.status);
    for (const char* s : {"--frame-ms", "=20", "--max-bitrate-kbps", "=256", "--mode", "=forward", "--udp-port", "=0"})
        EXPECT_NE(std::string::npos, create.out.find(s)) << s << "\n" << create.out;
    const auto add = ctl("listener add --help");
    for (const char* s : {"--tier", "=0", "--chunk", "=10000", "--file", "--range"})
        EXPECT_NE(std::string::npos, add.out.find(s)) << s << "\n" << add.out;
    const auto top = ctl("--help");
    for (const char* s : {"--api", "=127.0.0.1:8080", "--cacert", "--token-file", "Exit status:", "STENTOR_TOKEN"})
        EXPECT_NE(std::string::npos, top.out.find(s)) << s << "\n" << top.out;
}

// Bulk add and delete, from a file (comments, blank lines, a tier column,
// stdin) and from a range, in requests of --chunk listeners.
TEST_F(ctl_test, bulk_add_and_delete_from_a_file_and_a_range) {
    temp_dir t;
    const std::string f = t.file("l.txt",
                                 "# listeners of the keynote\n"
                                 "203.0.113.10:6000\n"
                                 "\n"
                                 "203.0.113.11:6000 2   # tier 2\n"
                                 "  203.0.113.12:6001 3\n");
    auto r = ctl(base + "listener add 1 --file " + f + " --tier 1");
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("added 3 listener(s) to session 1 in 1 request(s)")) << r.out;
    const json l = env->get("/api/v1/sessions/1/listeners").body["listeners"];
    ASSERT_EQ(3u, l.size());
    EXPECT_EQ(1u, l[0]["tier"]);   // --tier where the line has none
    EXPECT_EQ(2u, l[1]["tier"]);
    EXPECT_EQ(3u, l[2]["tier"]);
    EXPECT_EQ(6001u, l[2]["port"]);
    // The same file removes them (its tier column is not needed to leave).
    r = ctl(base + "listener del 1 --file " + f);
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_EQ(0u, listeners());
    // Standard input.
    r = sh("printf '203.0.113.20:7000\\n203.0.113.21:7000\\n' | env STENTOR_TOKEN= " + std::string(STENTORCTL_PATH) + " " +
           base + "listener add 1 --file -");
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_EQ(2u, listeners());
    // A bad line: the file and line, nothing sent.
    const std::string bad = t.file("bad.txt", "203.0.113.30:7000\n203.0.113.31:7000 9\n");
    r = ctl(base + "listener add 1 --file " + bad);
    EXPECT_EQ(2, r.status);
    EXPECT_NE(std::string::npos, r.out.find(bad + ":2: expected IP:PORT [TIER 0..3], got \"203.0.113.31:7000 9\"")) << r.out;
    EXPECT_EQ(2u, listeners());

    // A range: 3 addresses x 100 ports in requests of 64.
    r = ctl(base + "listener add 1 --range 203.0.113.40-203.0.113.42:7000-7099 --chunk 64 --tier 3");
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("added 300 listener(s) to session 1 in 5 request(s)")) << r.out;
    EXPECT_EQ(302u, listeners());
    EXPECT_EQ(300u, env->get("/api/v1/sessions/1").body["listeners_per_tier"][3]);
    const json first = env->get("/api/v1/sessions/1/listeners?offset=2&limit=2").body["listeners"];
    EXPECT_EQ("203.0.113.40", first[0]["ip"]);
    EXPECT_EQ(7001u, first[1]["port"]);   // addresses outer, ports inner
    // Overlapping range: requests before the refused one stand, the refused
    // one adds nothing, and the message says how far it got.
    r = ctl(base + "listener add 1 --range 203.0.113.39-203.0.113.40:7098-7099 --chunk 2");
    EXPECT_EQ(1, r.status);
    EXPECT_NE(std::string::npos, r.out.find("HTTP 409 exists")) << r.out;
    EXPECT_NE(std::string::npos,
              r.out.find("2 of 4 listeners added in 1 request(s) before this one; nothing of request 2 (listeners 3..4 "
                         "of the list) was added"))
        << r.out;
    EXPECT_EQ(304u, listeners());
    // Delete the range in one request.
    r = ctl(base + "listener del 1 --range 203.0.113.40-203.0.113.42:7000-7099");
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("removed 300 listener(s) from session 1 in 1 request(s)")) << r.out;
    EXPECT_EQ(4u, listeners());
    // Deleting what is not there: refused, nothing removed.
    r = ctl(base + "listener del 1 --range 203.0.113.20-203.0.113.22:7000");
    EXPECT_EQ(1, r.status);
    EXPECT_NE(std::string::npos, r.out.find("listeners[2]: no listener 203.0.113.22:7000")) << r.out;
    EXPECT_EQ(4u, listeners());
}

// show runtime (vppctl's), show ports (testpmd's NIC counters), clear
// counters.
TEST_F(ctl_test, show_runtime_show_ports_and_clear_counters) {
    auto wait_rx = [&](uint64_t n) {
        for (int i = 0; i < 5000 && env->r->totals().rx_packets < n; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return env->r->totals().rx_packets >= n;
    };
    frame_spec fs;
    for (uint16_t k = 0; k < 9; ++k) {
        fs.seq = static_cast<uint16_t>(10 + k);
        inject(port, rtp_frame(fs));
    }
    ASSERT_TRUE(wait_rx(9));
    auto r = ctl(base + "show runtime");
    ASSERT_EQ(0, r.status) << r.out;
    for (const char* s : {"lcore 1: loops ", "STAGE", "CALLS", "PACKETS", "CYCLES/PKT", "PKTS/CALL", "ingress", "fanout", "neigh"})
        EXPECT_NE(std::string::npos, r.out.find(s)) << s << "\n" << r.out;
    r = ctl(base + "show runtime --json");
    ASSERT_EQ(0, r.status) << r.out;
    const json rt = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(rt.is_discarded()) << r.out;
    const json& l = rt["lcores"][0];
    EXPECT_EQ(9u, l["rx_packets"]);
    EXPECT_LE(1u, l["ingress_calls"].get<uint64_t>());
    EXPECT_LT(0u, l["ingress_cycles"].get<uint64_t>());
    EXPECT_LE(l["ingress_calls"].get<uint64_t>(), l["loops"].get<uint64_t>());

    r = ctl(base + "show ports");
    ASSERT_EQ(0, r.status) << r.out;
    for (const char* s : {"lan0", "RX-packets", "RX-missed", "RX-errors", "RX-nombuf", "TX-errors"})
        EXPECT_NE(std::string::npos, r.out.find(s)) << s << "\n" << r.out;
    r = ctl(base + "show ports --json");
    const json p = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(p.is_discarded()) << r.out;
    EXPECT_EQ(9u, p["ports"][0]["nic"]["ipackets"]);

    r = ctl(base + "clear counters");
    ASSERT_EQ(0, r.status) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("counters cleared (since clear at ")) << r.out;
    for (uint16_t k = 0; k < 4; ++k) {
        fs.seq = static_cast<uint16_t>(30 + k);
        inject(port, rtp_frame(fs));
    }
    ASSERT_TRUE(wait_rx(13));
    r = ctl(base + "show ports --json");
    EXPECT_EQ(4u, json::parse(r.out)["ports"][0]["nic"]["ipackets"]) << r.out;
    r = ctl(base + "show runtime --json");
    EXPECT_EQ(4u, json::parse(r.out)["lcores"][0]["rx_packets"]) << r.out;
    r = ctl(base + "show runtime");
    EXPECT_NE(std::string::npos, r.out.find("(since clear at ")) << r.out;
    r = ctl(base + "stats --json");
    EXPECT_EQ(4u, json::parse(r.out)["counters"]["rx_packets"]) << r.out;
    EXPECT_EQ(13u, env->r->totals().rx_packets) << "no worker counter was written";
}

// The man page and the completion are the command table's: every command
// and option is in them, the man page renders without a warning, and the
// files the build made are what stentorctl generates now.
TEST(ctl_doc, man_page_and_bash_completion_come_from_the_command_table) {
    const std::string dir = std::filesystem::path(STENTORCTL_PATH).parent_path();
    const auto man = sh(std::string(STENTORCTL_PATH) + " --man");
    ASSERT_EQ(0, man.status);
    for (const char* s : {".TH STENTORCTL 1", ".SH EXIT STATUS", ".SH ENVIRONMENT", "STENTOR_TOKEN", "\\fBshow runtime\\fR",
                          "\\fBlistener add\\fR", "\\fBclear counters\\fR", "\\fBtokens mint\\fR", "\\-\\-range",
                          "\\-\\-cacert", "(default: 20)", "(default: 127.0.0.1:8080)"})
        EXPECT_NE(std::string::npos, man.out.find(s)) << s;
    std::ifstream built(dir + "/stentorctl.1");
    ASSERT_TRUE(built.good()) << "the build makes " << dir << "/stentorctl.1";
    std::stringstream bs;
    bs << built.rdbuf();
    EXPECT_EQ(man.out, bs.str()) << "stale build artefact";
    const auto render = sh("groff -man -Tutf8 -ww -z " + dir + "/stentorctl.1");
    EXPECT_EQ(0, render.status);
    EXPECT_EQ("", render.out) << "groff warnings";

    const std::string comp = dir + "/completion/stentorctl";
    ASSERT_TRUE(std::filesystem::exists(comp));
    EXPECT_EQ(sh(std::string(STENTORCTL_PATH) + " --completion bash").out, sh("cat " + comp).out);
    struct row {
        std::string words;   // the command line typed so far, the last word being completed
        std::vector<std::string> want;
        std::vector<std::string> not_want = {};
    };
    temp_dir t;
    t.file("ca-bundle.pem", "");
    const std::vector<row> rows = {
        {"stentorctl li", {"listener"}},
        {"stentorctl sh", {"show"}},
        {"stentorctl show r", {"runtime", "recording", "recordings"}},
        {"stentorctl cl", {"clear"}},
        {"stentorctl clear ", {"counters"}},
        {"stentorctl listener add 1 --", {"--tier", "--file", "--range", "--chunk", "--api", "--token-file", "--cacert"},
         {"--ssrc"}},
        {"stentorctl --api 127.0.0.1:8080 listener d", {"del"}},
        {"stentorctl session create --mode ", {"forward", "mix"}},
        {"stentorctl session create --frame-ms 1", {"10", "120"}, {"20"}},
        {"stentorctl --cacert " + t.path + "/ca-", {t.path + "/ca-bundle.pem"}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.words);
        // COMP_WORDS as bash splits the line; a trailing space starts an empty word.
        std::string words = "(", w;
        std::istringstream in(r.words);
        int n = 0;
        while (in >> w) words += "\"" + w + "\" ", ++n;
        if (r.words.back() == ' ') words += "\"\" ", ++n;
        words += ")";
        const std::string script = t.file("complete.sh", "source " + comp + "\nCOMP_WORDS=" + words + "\nCOMP_CWORD=" +
                                                             std::to_string(n - 1) +
                                                             "\n_stentorctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n");
        const auto out = sh("bash " + script);
        ASSERT_EQ(0, out.status) << out.out;
        std::set<std::string> got;
        std::istringstream lines(out.out);
        for (std::string line; std::getline(lines, line);) got.insert(line);
        for (const auto& x : r.want) EXPECT_TRUE(got.count(x)) << x << " not in:\n" << out.out;
        for (const auto& x : r.not_want) EXPECT_FALSE(got.count(x)) << x << " in:\n" << out.out;
    }
}

}  // namespace
}  // namespace stentor::test
