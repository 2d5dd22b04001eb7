// /metrics as Prometheus reads it (docs/metrics.md): who may scrape it,
// the per-session and per-speaker series and their bound, the counters in
// base units, and promtool's verdict on the whole exposition. The real
// server, a real HTTP client, the relay's worker on lcore 1.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <sstream>

#include "config.h"
#include "fixture.h"
#include "metrics.h"
#include "stentor/dp_snapshot.h"
#include "stentor/services/mixer.h"
#include "stentor/services/recorder.h"
#include "stentor/services/service_thread.h"
#include "telemetry.h"
#include "version.h"

namespace stentor::test {
namespace {

using nlohmann::json;

constexpr const char* metrics_token = "scrape-token-0123456789";

class metrics_test : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("met");
    std::unique_ptr<api_env> env;

    void start(control::api_options ao = {}) {
        if (env) {
            env.reset();
            port = fresh_ring_port("met");
        }
        auto p = api_profile(port.name);
        p.sessions.push_back(speaker_session());
        control::relay_options ro;
        ro.launch = true;
        env = std::make_unique<api_env>(p, ro, control::control_options{}, ao);
    }
    void SetUp() override { start(); }
    void TearDown() override { env.reset(); }

    std::string scrape() {
        auto m = env->call("GET", "/metrics");
        EXPECT_EQ(200, m.status);
        return m.text;
    }
};

// The value of one series (name and labels exactly as exposed), or "".
std::string series(const std::string& text, const std::string& name) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ')
            return line.substr(name.size() + 1);
    return "";
}

size_t samples_of(const std::string& text, const std::string& family) {
    std::istringstream in(text);
    std::string line;
    size_t n = 0;
    while (std::getline(in, line))
        if (line.compare(0, family.size(), family) == 0 && line.size() > family.size() &&
            (line[family.size()] == '{' || line[family.size()] == ' '))
            ++n;
    return n;
}

// promtool (Debian's prometheus package, scripts/deps.sh) on an exposition:
// its exit status and what it said.
std::pair<int, std::string> promtool_check(const std::string& text) {
    char path[] = "/tmp/stentor-metrics-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return {-1, "mkstemp failed"};
    close(fd);
    std::ofstream(path) << text;
    const std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int st = p != nullptr ? pclose(p) : -1;
    std::remove(path);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// Who may scrape: a table of (profile's [api] metrics settings, token
// presented, path) -> status. Connections come from 127.0.0.1.
TEST_F(metrics_test, scrape_auth_table) {
    struct row {
        const char* what;
        std::string metrics_token;
        bool loopback_open;
        std::string presented;
        const char* path;
        int status;
    };
    const std::string admin = test_token;
    const row rows[] = {
        {"no metrics token configured: the admin token scrapes", "", false, admin, "/metrics", 200},
        {"no metrics token configured: nothing else does", "", false, metrics_token, "/metrics", 401},
        {"no token presented", "", false, "", "/metrics", 401},
        {"metrics token scrapes", metrics_token, false, metrics_token, "/metrics", 200},
        {"admin token still scrapes", metrics_token, false, admin, "/metrics", 200},
        {"metrics token reads nothing but /metrics", metrics_token, false, metrics_token, "/api/v1/stats", 401},
        {"metrics token lists no sessions", metrics_token, false, metrics_token, "/api/v1/sessions", 401},
        {"a wrong token", metrics_token, false, "scrape-token-0123456780", "/metrics", 401},
        {"loopback open: no token needed from 127.0.0.1", "", true, "", "/metrics", 200},
        {"loopback open: a wrong token is not refused either", "", true, "nonsense", "/metrics", 200},
        {"loopback open opens /metrics only", "", true, "", "/api/v1/stats", 401},
    };
    for (const auto& r : rows) {
        control::api_options ao;
        ao.metrics_token = r.metrics_token;
        ao.metrics_loopback_open = r.loopback_open;
        start(ao);
        EXPECT_EQ(r.status, env->call("GET", r.path, "", r.presented).status) << r.what;
    }
    // Every refusal above was counted.
    EXPECT_EQ(1u, env->get("/api/v1/stats").body["counters"]["api/unauthorized"]) << "the last row's";
}

// The profile's keys: validated, each refusal naming its key.
TEST(metrics_profile, api_metrics_keys_are_validated) {
    const std::string head = "[api]\nlisten = \"127.0.0.1:8080\"\nplain_http = true\ntoken = \"admin-token-0123456789\"\n";
    struct row {
        const char* what;
        std::string keys;
        const char* error;   // nullptr: accepted
    };
    const row rows[] = {
        {"defaults", "", nullptr},
        {"a metrics token", "metrics_token = \"scrape-token-0123456789\"\n", nullptr},
        {"too short", "metrics_token = \"short\"\n", "api.metrics_token"},
        {"the admin token again", "metrics_token = \"admin-token-0123456789\"\n", "api.metrics_token"},
        {"a space", "metrics_token = \"scrape token 0123456789\"\n", "api.metrics_token"},
        {"loopback", "metrics_auth = \"loopback\"\n", nullptr},
        {"token", "metrics_auth = \"token\"\n", nullptr},
        {"unknown mode", "metrics_auth = \"none\"\n", "api.metrics_auth"},
        {"top sessions", "metrics_top_sessions = 0\nmetrics_top_speakers = 10000\n", nullptr},
        {"too many sessions", "metrics_top_sessions = 1001\n", "api.metrics_top_sessions"},
        {"too many speakers", "metrics_top_speakers = 10001\n", "api.metrics_top_speakers"},
    };
    for (const auto& r : rows) {
        // Only [api] matters here: parse a profile made of the test's
        // minimal one plus the section under test.
        std::string text = "[eal]\nlcores = [0, 1]\nmain_lcore = 0\nvdevs = [\"net_null0\"]\n"
                           "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n"
                           "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n" +
                           head + r.keys;
        try {
            const auto p = control::parse_profile(text, "t.toml");
            EXPECT_EQ(nullptr, r.error) << r.what << ": accepted";
            if (r.keys.find("loopback") != std::string::npos) {
                EXPECT_TRUE(p.api.metrics_loopback_open);
            }
        } catch (const std::exception& e) {
            ASSERT_NE(nullptr, r.error) << r.what << ": " << e.what();
            EXPECT_NE(std::string::npos, std::string(e.what()).find(r.error)) << r.what << ": " << e.what();
            EXPECT_NE(std::string::npos, std::string(e.what()).find("t.toml:")) << r.what << ": " << e.what();
        }
    }
}

// The whole exposition passes promtool, with sessions, speakers and a name
// that needs escaping.
TEST_F(metrics_test, exposition_passes_promtool) {
    ASSERT_EQ(201, env->post("/api/v1/sessions", {{"name", "quote \" and \\ backslash"}}).status);
    ASSERT_EQ(201, env->post("/api/v1/sessions/1/listeners", {{"ip", "203.0.113.1"}, {"port", 6000}}).status);
    const std::string text = scrape();
    const auto [rc, said] = promtool_check(text);
    EXPECT_EQ(0, rc) << said;
    EXPECT_TRUE(said.empty()) << "promtool lint: " << said;
}

// The data plane's tables (control/dp_memory.h): what is mapped covers what
// is in use, and a session's first listener takes a 4 KiB chunk of it (two
// sessions here, 8 KiB of chunks: a snapshot replaced meanwhile frees a few
// hundred bytes).
TEST_F(metrics_test, dp_memory_bytes_grow_with_the_tables) {
    auto value = [](const std::string& text, const char* kind) {
        const std::string v = series(text, std::string("stentor_dp_memory_bytes{kind=\"") + kind + "\"}");
        return v.empty() ? -1.0 : std::stod(v);
    };
    const std::string before = scrape();
    EXPECT_GT(value(before, "in_use"), 0.0);
    EXPECT_GE(value(before, "mapped"), value(before, "in_use"));
    for (int i = 1; i <= 2; ++i) {
        ASSERT_EQ(201, env->post("/api/v1/sessions", {{"name", "mem" + std::to_string(i)}}).status);
        ASSERT_EQ(201, env->post("/api/v1/sessions/" + std::to_string(i) + "/listeners",
                                 {{"ip", "203.0.113." + std::to_string(i)}, {"port", 6000}})
                           .status);
    }
    const std::string after = scrape();
    EXPECT_GE(value(after, "in_use") - value(before, "in_use"), 2.0 * sizeof(dp::dp_listener_chunk));
    EXPECT_GE(value(after, "mapped"), value(after, "in_use"));
}

TEST_F(metrics_test, build_info_and_base_unit_counters) {
    const std::string text = scrape();
    const control::build_info b = control::build();
    EXPECT_EQ("1", series(text, "stentor_build_info{version=\"" + b.version + "\",revision=\"" + b.git_revision +
                                    "\",dpdk=\"" + b.dpdk_runtime + "\"}"));
    EXPECT_FALSE(b.git_revision.empty());
    EXPECT_NE(std::string::npos, b.dpdk_runtime.find("DPDK"));
    for (const char* f : {"stentor_lcore_busy_seconds_total", "stentor_lcore_idle_seconds_total",
                          "stentor_lcore_stall_seconds_total"})
        EXPECT_EQ(1u, samples_of(text, f)) << f << ": one worker lcore";
    for (const char* f : {"stentor_port_nic_rx_packets_total", "stentor_port_nic_tx_packets_total",
                          "stentor_port_nic_rx_bytes_total", "stentor_port_nic_tx_bytes_total",
                          "stentor_port_nic_rx_missed_total", "stentor_port_nic_rx_errors_total",
                          "stentor_port_nic_tx_errors_total", "stentor_port_nic_rx_nombuf_total"})
        EXPECT_EQ(1u, samples_of(text, f)) << f << ": one port";
    EXPECT_EQ("1", series(text, "stentor_port_link_up{port=\"lan0\"}"));
    EXPECT_EQ(1u, samples_of(text, "stentor_mixer_thread_steps_total"));
    EXPECT_EQ(1u, samples_of(text, "stentor_recorder_thread_failures_total"));
    EXPECT_EQ(1u, samples_of(text, "stentor_icmp_requests_in_total"));
    // The ports' NIC counters in the API too (stentorctl show ports).
    const json p = env->get("/api/v1/ports").body["ports"][0];
    for (const char* k : {"ipackets", "opackets", "ibytes", "obytes", "imissed", "ierrors", "oerrors", "rx_nombuf"})
        EXPECT_TRUE(p["nic"][k].is_number_unsigned()) << k;
}

// Per-session series for the top N sessions by listeners (ties: lower id),
// per-speaker series for their speakers up to M: the bound holds whatever
// the relay holds.
TEST_F(metrics_test, per_session_series_are_bounded_to_the_top_sessions) {
    control::api_options ao;
    ao.metrics.top_sessions = 3;
    ao.metrics.top_speakers = 2;
    start(ao);
    // Sessions 2..9 with 0..7 listeners, one speaker each; session 1 has a
    // speaker and no listener.
    for (unsigned k = 0; k < 8; ++k) {
        const unsigned id = 2 + k;
        ASSERT_EQ(201, env->post("/api/v1/sessions", {{"id", id}}).status);
        ASSERT_EQ(201, env->post("/api/v1/sessions/" + std::to_string(id) + "/speakers",
                                 {{"ip", "198.18.0." + std::to_string(30 + k)}, {"port", 5004}, {"ssrc", 100 + k}})
                           .status);
        json items = json::array();
        for (unsigned i = 0; i < k; ++i)
            items.push_back({{"ip", "203.0.113." + std::to_string(1 + i)}, {"port", 6000 + id}});
        if (!items.empty()) {
            ASSERT_EQ(201, env->post("/api/v1/sessions/" + std::to_string(id) + "/listeners/bulk", {{"listeners", items}})
                               .status);
        }
    }
    const std::string text = scrape();
    EXPECT_EQ("3", series(text, "stentor_metrics_sessions_exported"));
    EXPECT_EQ("2", series(text, "stentor_metrics_speakers_exported"));
    EXPECT_EQ(3u, samples_of(text, "stentor_session_listeners"));
    EXPECT_EQ(3u, samples_of(text, "stentor_session_packets_in_total"));
    EXPECT_EQ(2u, samples_of(text, "stentor_speaker_packets_in_total"));
    EXPECT_EQ("7", series(text, "stentor_session_listeners{session=\"9\"}"));
    EXPECT_EQ("6", series(text, "stentor_session_listeners{session=\"8\"}"));
    EXPECT_EQ("5", series(text, "stentor_session_listeners{session=\"7\"}"));
    EXPECT_EQ("", series(text, "stentor_session_listeners{session=\"6\"}")) << "fourth: not exported";
    EXPECT_EQ("7", series(text, "stentor_session_joins_total{session=\"9\"}"));
    EXPECT_EQ("1", series(text, "stentor_session_info{session=\"9\",name=\"session-9\",mode=\"forward\"}"));
    EXPECT_EQ("0", series(text, "stentor_speaker_packets_in_total{session=\"9\",speaker=\"198.18.0.37:5004\"}"));
    EXPECT_EQ("0", series(text, "stentor_speaker_packets_in_total{session=\"8\",speaker=\"198.18.0.36:5004\"}"));
    EXPECT_EQ("", series(text, "stentor_speaker_packets_in_total{session=\"7\",speaker=\"198.18.0.35:5004\"}"))
        << "third session's speaker: past top_speakers";
    // A leave moves the session's leaves counter.
    ASSERT_EQ(200, env->del("/api/v1/sessions/9/listeners/203.0.113.1:6009").status);
    EXPECT_EQ("1", series(scrape(), "stentor_session_leaves_total{session=\"9\"}"));
    // Zero turns the per-session series off (the families stay, empty).
    ao.metrics.top_sessions = 0;
    start(ao);
    const std::string none = scrape();
    EXPECT_EQ("0", series(none, "stentor_metrics_sessions_exported"));
    EXPECT_EQ(0u, samples_of(none, "stentor_session_listeners"));
}

// docs/metrics.md names every family /metrics shows, or the list it is
// generated from (one family per entry).
TEST_F(metrics_test, every_family_is_documented) {
    // Join desk families too: a profile with [join] keys is not needed,
    // their names come from the list.
    const std::string text = scrape();
    std::ifstream f(std::string(STENTOR_SOURCE_DIR) + "/docs/metrics.md");
    ASSERT_TRUE(f.good());
    const std::string doc((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::set<std::string> generated;
    auto from_list = [&](const std::string& prefix, const auto& stats) {
        stats.for_each([&](const char* name, const char*, uint64_t) { generated.insert(prefix + name + "_total"); });
    };
    dp::lcore_counters{}.for_each_scalar([&](const char* name, const char*, uint64_t) {
        generated.insert(std::string("stentor_") + name + "_total");
        generated.insert(std::string("stentor_lcore_") + name + "_total");
    });
    from_list("stentor_mixer_", svc::mixer_stats{});
    from_list("stentor_recorder_", control::recorder_stats{});
    from_list("stentor_mixer_thread_", svc::service_thread_stats{});
    from_list("stentor_recorder_thread_", svc::service_thread_stats{});
    from_list("stentor_api_", control::api_stats{});
    std::istringstream in(text);
    std::string line;
    size_t families = 0;
    while (std::getline(in, line)) {
        if (!line.starts_with("# TYPE ")) continue;
        ++families;
        const std::string name = line.substr(7, line.find(' ', 7) - 7);
        EXPECT_TRUE(generated.count(name) || doc.find("`" + name + "`") != std::string::npos ||
                    doc.find(name + "`,") != std::string::npos || doc.find(", `" + name) != std::string::npos)
            << name << " is not in docs/metrics.md";
    }
    EXPECT_GT(families, 150u);
}

TEST(metrics_top, ties_go_to_the_lower_id_and_n_bounds) {
    std::vector<control::session_view> all(5);
    const uint64_t listeners[] = {3, 9, 3, 0, 9};
    for (size_t i = 0; i < all.size(); ++i) {
        all[i].id = static_cast<uint32_t>(10 - i);   // ids 10, 9, 8, 7, 6
        all[i].nb_listeners = listeners[i];
    }
    const auto top = control::top_sessions(all, 3);
    ASSERT_EQ(3u, top.size());
    EXPECT_EQ(6u, top[0]->id);
    EXPECT_EQ(9u, top[1]->id);
    EXPECT_EQ(8u, top[2]->id);
    EXPECT_EQ(5u, control::top_sessions(all, 50).size());
    EXPECT_TRUE(control::top_sessions(all, 0).empty());
}


// ------------------------------------------------------------ telemetry

// The shaping rules: nested containers, fractions as integers in the unit
// their key names, arrays of objects as dicts keyed by index, keys DPDK
// accepts, no nulls.
TEST(telemetry_shape, rules_table) {
    struct row {
        const char* what;
        json in, out;
    };
    const row rows[] = {
        {"ratio to parts per million", {{"busy_ratio", 0.25}}, {{"busy_ppm", 250000u}}},
        {"seconds to milliseconds", {{"duration_s", 1.5}}, {{"duration_ms", 1500u}}},
        {"Mbit/s to kbit/s", {{"line_rate_mbps", 2.5}}, {{"line_rate_kbps", 2500u}}},
        {"other fractions rounded", {{"rx_pps", 49.6}}, {{"rx_pps", 50u}}},
        {"negative fraction", {{"delta", -2.4}}, {{"delta", -2}}},
        {"integers untouched", {{"n", 18446744073709551615ull}}, {{"n", 18446744073709551615ull}}},
        {"bool to 0/1", {{"up", true}, {"down", false}}, {{"up", 1u}, {"down", 0u}}},
        {"null left out", {{"error", nullptr}, {"a", 1u}}, {{"a", 1u}}},
        {"array of numbers stays", {{"tiers", {1u, 2u, 3u}}}, {{"tiers", {1u, 2u, 3u}}}},
        {"array of objects by index", {{"s", json::array({{{"a", 1u}}, {{"b", 2u}}})}},
         {{"s", {{"0", {{"a", 1u}}}, {"1", {{"b", 2u}}}}}}},
        {"keys DPDK accepts", {{"10.0.0.1:5004", 1u}}, {{"10_0_0_1_5004", 1u}}},
        {"nested", {{"a", {{"b", {{"c_ratio", 0.001}}}}}}, {{"a", {{"b", {{"c_ppm", 1000u}}}}}}},
    };
    for (const auto& r : rows) EXPECT_EQ(r.out, control::telemetry_shape(r.in)) << r.what;
}

class telemetry_test : public metrics_test {
protected:
    void SetUp() override {
        metrics_test::SetUp();
        control::telemetry_attach(env->cp.get());
    }
    void TearDown() override {
        control::telemetry_detach(env->cp.get());
        metrics_test::TearDown();
    }
};

// More sessions than a telemetry dict holds (256): every one is listed,
// through pages, and each answers /stentor/session,<id>.
TEST_F(telemetry_test, every_session_of_300_is_listed_and_answers_its_own_command) {
    for (uint32_t id = 2; id <= 301; ++id) {
        control::session_params sp;
        sp.id = id;
        env->cp->state().session_create(sp);
    }
    ASSERT_TRUE(env->cp->commit());
    std::vector<uint64_t> seen;
    std::string cursor;
    for (int page = 0; page < 10; ++page) {
        const json a = control::telemetry_query("/stentor/sessions", cursor);
        ASSERT_FALSE(a.contains("error")) << a.dump();
        EXPECT_EQ(301u, a["total"]);
        for (const auto& id : a["ids"]) seen.push_back(id.get<uint64_t>());
        if (!a.contains("next")) break;
        cursor = std::to_string(a["next"].get<uint64_t>());
    }
    ASSERT_EQ(301u, seen.size());
    for (uint64_t i = 0; i < seen.size(); ++i) EXPECT_EQ(i + 1, seen[i]);
    for (uint32_t id : {1u, 150u, 301u}) {
        const json s = control::telemetry_query("/stentor/session", std::to_string(id));
        EXPECT_EQ(id, s["id"]) << s.dump();
        EXPECT_TRUE(s["listeners"].is_number_unsigned());
        EXPECT_TRUE(s["counters"]["packets_in"].is_number_unsigned());
    }
    // The same holds through the API.
    EXPECT_EQ(301u, env->get("/api/v1/sessions").body["sessions"].size());
}

// A parameter is honoured or refused with a reason, never ignored.
TEST_F(telemetry_test, bad_parameters_answer_an_error) {
    struct row {
        const char* cmd;
        const char* param;
        const char* error;
    };
    const row rows[] = {
        {"/stentor/session", "", "invalid"},         {"/stentor/session", "abc", "invalid"},
        {"/stentor/session", "-1", "invalid"},       {"/stentor/session", "99999", "not_found"},
        {"/stentor/session", "1 2", "invalid"},      {"/stentor/stats", "1", "invalid"},
        {"/stentor/drops", "x", "invalid"},          {"/stentor/capacity", "x", "invalid"},
        {"/stentor/ports", "x", "invalid"},          {"/stentor/lcores", "x", "invalid"},
        {"/stentor/build", "x", "invalid"},          {"/stentor/lcore", "", "invalid"},
        {"/stentor/lcore", "0", "not_found"},        {"/stentor/port", "", "invalid"},
        {"/stentor/port", "wan9", "not_found"},      {"/stentor/counters", "nope", "not_found"},
        {"/stentor/counters", "drop/nope", "not_found"}, {"/stentor/sessions", "x", "invalid"},
        {"/stentor/events", "x", "invalid"},         {"/stentor/recording", "1", "not_found"},
        {"/stentor/recording", "", "invalid"},       {"/stentor/recordings", "y", "invalid"},
        {"/stentor/help", "nope", "not_found"},      {"/stentor/nope", "", "unknown"},
    };
    for (const auto& r : rows) {
        const json a = control::telemetry_query(r.cmd, r.param);
        EXPECT_EQ(r.error, a.value("error", std::string("(none)"))) << r.cmd << "," << r.param << ": " << a.dump();
        EXPECT_FALSE(a.value("reason", std::string()).empty()) << r.cmd;
    }
    // And good parameters select what they name.
    EXPECT_EQ("lan0", control::telemetry_query("/stentor/port", "lan0")["name"]);
    EXPECT_EQ("lan0", control::telemetry_query("/stentor/port", "0")["name"]);
    EXPECT_EQ(1u, control::telemetry_query("/stentor/lcore", "1")["lcore"]);
    const json ing = control::telemetry_query("/stentor/counters", "drop/ingress");
    EXPECT_TRUE(ing.contains("eth_runt") && !ing.contains("no_mbuf")) << ing.dump();
    EXPECT_TRUE(control::telemetry_query("/stentor/counters", "rx_packets")["rx_packets"].is_number_unsigned());
}

// Every command answers within DPDK's limits, and numbers are numbers.
TEST_F(telemetry_test, every_command_fits_and_numbers_stay_numbers) {
    for (const char* cmd : {"/stentor/stats", "/stentor/counters", "/stentor/drops", "/stentor/sessions", "/stentor/ports",
                            "/stentor/lcores", "/stentor/capacity", "/stentor/events", "/stentor/recordings",
                            "/stentor/build", "/stentor/help"}) {
        const json a = control::telemetry_query(cmd);
        EXPECT_FALSE(a.contains("error")) << cmd << ": " << a.dump();
        // No string that reads as a number: every number is sent as one.
        std::function<void(const json&, const std::string&)> walk = [&](const json& j, const std::string& path) {
            if (j.is_structured()) {
                for (auto it = j.begin(); it != j.end(); ++it)
                    walk(it.value(), path + "/" + (j.is_object() ? it.key() : std::string("[]")));
            } else {
                EXPECT_FALSE(j.is_number_float()) << cmd << path;
                EXPECT_FALSE(j.is_boolean()) << cmd << path;
                if (j.is_string() && !j.get<std::string>().empty() && path.find("revision") == std::string::npos &&
                    path.find("version") == std::string::npos && path.find("dpdk") == std::string::npos) {
                    EXPECT_FALSE(std::isdigit(static_cast<unsigned char>(j.get<std::string>()[0])) &&
                                 j.get<std::string>().find_first_not_of("0123456789.e+-") == std::string::npos)
                        << cmd << path << " = " << j;
                }
            }
        };
        walk(a, "");
    }
    const json l = control::telemetry_query("/stentor/lcores");
    EXPECT_TRUE(l["lcores"]["1"]["busy_ppm"].is_number_unsigned()) << l.dump();
    EXPECT_TRUE(l["interval_ms"].is_number_unsigned()) << l.dump();
    const json st = control::telemetry_query("/stentor/stats");
    EXPECT_TRUE(st["overload"]["last_miss_ppm"].is_number()) << st.dump();
    // The whole counter tree fits in one answer; its leaves are the API's.
    const json c = control::telemetry_query("/stentor/counters");
    const json api = env->get("/api/v1/stats").body["counters"];
    EXPECT_EQ(api["rtp_in"], c["rtp_in"]);
    EXPECT_EQ(api["drop/ingress/udp_port"], c["drop"]["ingress"]["udp_port"]);
    EXPECT_EQ(api["mixer/thread/steps"].is_number(), c["mixer"]["thread"]["steps"].is_number());
}

}  // namespace
}  // namespace stentor::test
