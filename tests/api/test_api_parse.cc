// The API's request parsing without a server (control/api_parse.h): tables
// of bodies and paths to the typed request or the exact error.
#include <gtest/gtest.h>

#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "api_parse.h"
#include "json_text.h"

namespace stentor::control {
namespace {

const parse_limits lim{};

uint32_t ip(const char* s) { return *parse_ipv4(s); }

// A listener object of n fields: ip, port, then "x" repeated.
std::string many_fields(unsigned n) {
    std::string o = R"({"ip":"203.0.113.1","port":1)";
    for (unsigned i = 2; i < n; ++i) o += R"(,"x":0)";
    return o + "}";
}

// {"listeners":[{},{},...]} as large as the bulk body limit allows.
std::string empty_objects_body(size_t max_size) {
    std::string b = R"({"listeners":[{})";
    const size_t n = (max_size - b.size() - 2) / 3;
    b.reserve(max_size);
    for (size_t i = 0; i < n; ++i) b += ",{}";
    return b + "]}";
}

struct body_case {
    const char* what;
    std::string body;
    int status;            // 0: accepted
    const char* reason;    // substring of the reason
};

template <class F>
void run_table(const std::vector<body_case>& cases, F parse) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        const auto r = parse(c.body);
        if (c.status == 0) {
            EXPECT_TRUE(r.ok()) << r.error().reason;
            continue;
        }
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(c.status, r.error().status);
        EXPECT_EQ(c.status == 404 ? "not_found" : "invalid", r.error().code);
        EXPECT_NE(std::string::npos, r.error().reason.find(c.reason)) << r.error().reason;
    }
}

TEST(api_parse, json_bounds) {
    std::string deep16(16, '['), deep17(17, '[');
    run_table(
        {
            {"empty", "", 400, "a JSON body is required"},
            {"not JSON", "{\"ip\": ", 400, "not valid JSON"},
            {"array", "[1,2]", 400, "must be a JSON object"},
            {"string", "\"x\"", 400, "must be a JSON object"},
            {"trailing garbage", "{} x", 400, "not valid JSON"},
            {"17 deep", "{\"a\":" + deep17.substr(1) + std::string(16, ']') + "}", 400, "nested deeper than 16"},
            {"16 deep", "{\"a\":" + deep16.substr(1) + std::string(15, ']') + "}", 0, ""},
            {"brackets inside strings do not count", "{\"a\":\"" + std::string(100, '[') + "\\\"\"}", 0, ""},
            {"too large", "{\"a\":\"" + std::string(64 * 1024, 'x') + "\"}", 413, "body larger than 65536 bytes"},
            {"invalid UTF-8 in a string", "{\"a\":\"\xff\"}", 400, "not valid JSON"},
        },
        [](const std::string& b) { return parse_json_object(b, lim.max_body, lim.max_depth); });
    EXPECT_EQ(0u, json_depth(""));
    EXPECT_EQ(3u, json_depth("{\"a\":[1,{}]}"));
    EXPECT_EQ(1u, json_depth("{\"a\":\"[[[{{{\"}"));
    EXPECT_EQ(1u, json_depth("{\"\\\\\":\"]\"}"));
    EXPECT_EQ(1u, json_depth("]]]}}}[\\"));   // unbalanced, escape at the end
}

TEST(api_parse, session_create) {
    run_table(
        {
            {"empty object: defaults", "{}", 0, ""},
            {"all fields",
             R"({"id":7,"name":"n","mode":"mix","udp_port":40002,"max_listeners":10,"recording":true,"frame_ms":10,"max_bitrate_kbps":64})",
             0, ""},
            {"unknown field", R"({"codec":"mp3"})", 400, "unknown field \"codec\""},
            {"id negative", R"({"id":-1})", 400, "\"id\" must be an integer 0..4294967295"},
            {"id too big", R"({"id":4294967296})", 400, "\"id\" must be an integer"},
            {"id float", R"({"id":1.5})", 400, "\"id\" must be an integer"},
            {"name not a string", R"({"name":5})", 400, "\"name\" must be a string"},
            // Lengths and ranges are the model's rules (check_session), not the parser's.
            {"name 129", "{\"name\":\"" + std::string(129, 'a') + "\"}", 0, ""},
            {"frame_ms 7", R"({"frame_ms":7})", 0, ""},
            {"mode not a string", R"({"mode":null})", 400, "\"mode\" must be a string"},
            {"mode unknown", R"({"mode":"broadcast"})", 400, "mode must be \"forward\" or \"mix\""},
            {"mode is case-sensitive", R"({"mode":"Mix"})", 400, "mode must be"},
            {"mode forward", R"({"mode":"forward"})", 0, ""},
            {"udp_port 65536", R"({"udp_port":65536})", 400, "\"udp_port\" must be an integer 0..65535"},
            {"recording not bool", R"({"recording":1})", 400, "\"recording\" must be true or false"},
            {"frame_ms 1001", R"({"frame_ms":1001})", 400, "\"frame_ms\" must be an integer 0..1000"},
            {"bitrate too high", R"({"max_bitrate_kbps":100001})", 400, "0..100000"},
        },
        [](const std::string& b) { return parse_session_create(b, lim); });
    const auto d = parse_session_create("{}", lim);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(0u, d.value().id);
    EXPECT_EQ(session_mode::forward, d.value().mode);
    EXPECT_EQ(20u, d.value().frame_ms);
    EXPECT_EQ(256u, d.value().max_bitrate_kbps);
    EXPECT_FALSE(d.value().recording);
    const auto f = parse_session_create(
        R"({"id":7,"name":"n","mode":"mix","udp_port":40002,"max_listeners":10,"recording":true,"frame_ms":10,"max_bitrate_kbps":64})",
        lim);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(7u, f.value().id);
    EXPECT_EQ("n", f.value().name);
    EXPECT_EQ(session_mode::mix, f.value().mode);
    EXPECT_EQ(40002u, f.value().udp_port);
    EXPECT_EQ(10u, f.value().max_listeners);
    EXPECT_TRUE(f.value().recording);
    EXPECT_EQ(10u, f.value().frame_ms);
    EXPECT_EQ(64u, f.value().max_bitrate_kbps);
}

TEST(api_parse, speaker_add) {
    run_table(
        {
            {"minimal", R"({"ip":"198.18.0.10","port":5004})", 0, ""},
            {"null ssrc", R"({"ip":"198.18.0.10","port":5004,"ssrc":null})", 0, ""},
            {"missing ip", R"({"port":5004})", 400, "\"ip\" is required"},
            {"ip not a string", R"({"ip":1,"port":5004})", 400, "\"ip\" must be a dotted-quad string"},
            {"short ip", R"({"ip":"198.18.0","port":5004})", 400, "\"198.18.0\" is not an IPv4 address"},
            {"octal ip", R"({"ip":"010.1.1.1","port":5004})", 400, "is not an IPv4 address"},
            {"missing port", R"({"ip":"198.18.0.10"})", 400, "\"port\" is required"},
            {"ssrc too big", R"({"ip":"198.18.0.10","port":5004,"ssrc":4294967296})", 400, "\"ssrc\" must be"},
            {"ssrc string", R"({"ip":"198.18.0.10","port":5004,"ssrc":"1"})", 400, "\"ssrc\" must be"},
            {"unknown", R"({"ip":"198.18.0.10","port":5004,"tier":1})", 400, "unknown field \"tier\""},
        },
        [](const std::string& b) { return parse_speaker_add(b, lim); });
    const auto s = parse_speaker_add(R"({"ip":"198.18.0.10","port":5004,"ssrc":4294967295})", lim);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ((speaker_spec{ip("198.18.0.10"), 5004, 4294967295u}), s.value());
    EXPECT_FALSE(parse_speaker_add(R"({"ip":"198.18.0.10","port":5004,"ssrc":null})", lim).value().ssrc);
}

TEST(api_parse, listener_add) {
    run_table(
        {
            {"minimal", R"({"ip":"203.0.113.7","port":6001})", 0, ""},
            {"tier", R"({"ip":"203.0.113.7","port":6001,"tier":255})", 0, ""},
            {"tier 256", R"({"ip":"203.0.113.7","port":6001,"tier":256})", 400, "\"tier\" must be an integer 0..255"},
            {"port string", R"({"ip":"203.0.113.7","port":"6001"})", 400, "\"port\" must be an integer 0..65535"},
            {"port 65536", R"({"ip":"203.0.113.7","port":65536})", 400, "\"port\" must be an integer 0..65535"},
            {"unknown", R"({"ip":"203.0.113.7","port":6001,"prio":1})", 400, "unknown field \"prio\""},
            {"ip with port", R"({"ip":"203.0.113.7:1","port":6001})", 400, "is not an IPv4 address"},
        },
        [](const std::string& b) { return parse_listener_add(b, lim); });
    // Port 0 and special addresses are the state's refusals, not the parser's.
    const auto l = parse_listener_add(R"({"ip":"203.0.113.7","port":0,"tier":3})", lim);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(ip("203.0.113.7"), l.value().ip);
    EXPECT_EQ(0u, l.value().port);
    EXPECT_EQ(3u, l.value().tier);
}

TEST(api_parse, listener_bulk) {
    parse_limits small = lim;
    small.max_bulk_items = 2;
    run_table(
        {
            {"empty list", R"({"listeners":[]})", 0, ""},
            {"two", R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2","port":2,"tier":1}]})", 0, ""},
            {"three", R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2","port":2},{"ip":"203.0.113.3","port":3}]})",
             400, "at most 2 listeners per request"},
            {"missing", "{}", 400, "\"listeners\" must be an array"},
            {"object", R"({"listeners":{}})", 400, "\"listeners\" must be an array"},
            {"unknown", R"({"listeners":[],"x":1})", 400, "unknown field \"x\""},
            {"item not an object", R"({"listeners":[{"ip":"203.0.113.1","port":1},7]})", 400,
             "listeners[1]: a listener must be an object"},
            {"bad item", R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"1.2.3","port":2}]})", 400,
             "listeners[1]: \"1.2.3\" is not an IPv4 address"},
            {"item unknown field", R"({"listeners":[{"ip":"203.0.113.1","port":1,"x":0}]})", 400,
             "listeners[0]: unknown field \"x\""},
            // Bounded as parsed (docs/api.md "Bodies"): at most max_bulk_items
            // listeners, 4 * max_bulk_items + 16 values in all.
            {"three empty objects", R"({"listeners":[{},{},{}]})", 400, "at most 2 listeners per request"},
            {"two of 12 fields each (24 + 2 values)", R"({"listeners":[)" + many_fields(12) + "," + many_fields(12) + "]}",
             400, "JSON body holds more than 24 values"},
            {"two, 22 values in all", R"({"listeners":[)" + many_fields(11) + "," + many_fields(9) + "]}", 400,
             "listeners[0]: unknown field \"x\""},
            {"a long array inside a listener", R"({"listeners":[{"ip":[1,2,3],"port":1}]})", 400,
             "a JSON array holds more than 2 items"},
        },
        [&](const std::string& b) { return parse_listener_bulk(b, small); });
    const auto v = parse_listener_bulk(R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2","port":2,"tier":1}]})", lim);
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(2u, v.value().size());
    EXPECT_EQ(ip("203.0.113.2"), v.value()[1].ip);
    EXPECT_EQ(2u, v.value()[1].port);
    EXPECT_EQ(1u, v.value()[1].tier);
    // The bulk body limit, not the ordinary one.
    const std::string big = R"({"listeners":[)" + std::string(100 * 1024, ' ') + "]}";
    EXPECT_TRUE(parse_listener_bulk(big, lim).ok());
    EXPECT_EQ(413, parse_listener_add(big, lim).error().status);
    EXPECT_EQ(lim.max_bulk_body, body_limit_for("/api/v1/sessions/1/listeners/bulk", lim));
    EXPECT_EQ(lim.max_body, body_limit_for("/api/v1/sessions/1/listeners", lim));
}

// The review's body: 8 MiB of empty objects in the bulk array (2.8 M). The
// parser must stop at the 100 001st, not build the tree of all of them
// (~220 MB of heap before the count was checked). Measured by the process's
// peak resident set (VmHWM, reset through /proc/self/clear_refs) over the
// parse.
long status_kib(const char* field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
    return -1;
}

TEST(api_parse, an_over_count_bulk_body_stops_the_parser_at_the_limit) {
    const std::string body = empty_objects_body(lim.max_bulk_body);
    ASSERT_GT(body.size(), lim.max_bulk_body - 3);
    ASSERT_LE(body.size(), lim.max_bulk_body);
    const std::string want = "at most 100000 listeners per request";
    for (const bool del : {false, true}) {
        SCOPED_TRACE(del ? "bulk_delete" : "bulk");
        malloc_trim(0);   // what the last parse freed goes back: it must not hide this one's
        if (!(std::ofstream("/proc/self/clear_refs") << "5").flush()) GTEST_SKIP() << "cannot reset VmHWM";
        const long before = status_kib("VmRSS:");
        const parse_error e =
            del ? parse_listener_bulk_delete(body, lim).error() : parse_listener_bulk(body, lim).error();
        const long peak = status_kib("VmHWM:");
        EXPECT_EQ(400, e.status);
        EXPECT_EQ(want, e.reason);
        std::printf("%s body of %zu empty objects: peak resident set %ld KiB above the %ld KiB before the parse\n",
                    del ? "bulk_delete" : "bulk", (body.size() - 16) / 3 + 1, peak - before, before);
        EXPECT_LT(peak - before, 48 * 1024) << "the parser built more than the limit's tree";
    }
}

TEST(api_parse, listener_bulk_delete) {
    parse_limits small = lim;
    small.max_bulk_items = 2;
    run_table(
        {
            {"empty list", R"({"listeners":[]})", 0, ""},
            {"two", R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2","port":2}]})", 0, ""},
            {"three", R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2","port":2},{"ip":"203.0.113.3","port":3}]})",
             400, "at most 2 listeners per request"},
            {"missing", "{}", 400, "\"listeners\" must be an array"},
            {"unknown", R"({"listeners":[],"x":1})", 400, "unknown field \"x\""},
            {"item not an object", R"({"listeners":[7]})", 400, "listeners[0]: a listener must be an object"},
            {"no port", R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2"}]})", 400,
             "listeners[1]: \"port\" is required"},
            {"tier", R"({"listeners":[{"ip":"203.0.113.1","port":1,"tier":0}]})", 400, "listeners[0]: unknown field \"tier\""},
            {"port as a string", R"({"listeners":[{"ip":"203.0.113.1","port":"1"}]})", 400,
             "listeners[0]: \"port\" must be an integer 0..65535"},
            {"three empty objects", R"({"listeners":[{},{},{}]})", 400, "at most 2 listeners per request"},
            {"two of 12 fields each", R"({"listeners":[)" + many_fields(12) + "," + many_fields(12) + "]}", 400,
             "JSON body holds more than 24 values"},
        },
        [&](const std::string& b) { return parse_listener_bulk_delete(b, small); });
    const auto v = parse_listener_bulk_delete(R"({"listeners":[{"ip":"203.0.113.1","port":1},{"ip":"203.0.113.2","port":2}]})", lim);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ((std::vector<listener_addr>{{ip("203.0.113.1"), 1}, {ip("203.0.113.2"), 2}}), v.value());
    EXPECT_EQ(lim.max_bulk_body, body_limit_for("/api/v1/sessions/1/listeners/bulk_delete", lim));
}

TEST(api_parse, token_mint) {
    run_table(
        {
            {"one", R"({"count":1})", 0, ""},
            {"the most, tier 3, a week", R"({"count":100000,"tier":3,"ttl_s":604800})", 0, ""},
            {"count missing", R"({"tier":1})", 400, "\"count\" is required"},
            {"count 0", R"({"count":0})", 400, "\"count\" must be an integer 1..100000"},
            {"count 100001", R"({"count":100001})", 400, "\"count\" must be an integer 1..100000"},
            {"count negative", R"({"count":-1})", 400, "\"count\" must be an integer 1..100000"},
            {"count string", R"({"count":"5"})", 400, "\"count\" must be an integer 1..100000"},
            {"count float", R"({"count":2.5})", 400, "\"count\" must be an integer 1..100000"},
            {"tier 4", R"({"count":1,"tier":4})", 400, "\"tier\" must be an integer 0..3"},
            {"ttl 0", R"({"count":1,"ttl_s":0})", 400, "\"ttl_s\" must be an integer 1..604800 (7 days)"},
            {"ttl over a week", R"({"count":1,"ttl_s":604801})", 400, "\"ttl_s\" must be an integer 1..604800"},
            {"ttl null", R"({"count":1,"ttl_s":null})", 400, "\"ttl_s\" must be an integer"},
            {"unknown field", R"({"count":1,"session":3})", 400, "unknown field \"session\""},
            {"no body", "", 400, "a JSON body is required"},
        },
        [](const std::string& b) { return parse_token_mint(b, lim); });
    const auto d = parse_token_mint(R"({"count":7})", lim);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ((token_mint_request{7, 0, std::nullopt}), d.value()) << "tier 0 and the profile's ttl by default";
    const auto f = parse_token_mint(R"({"count":9,"tier":2,"ttl_s":60})", lim);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ((token_mint_request{9, 2, 60u}), f.value());
}

TEST(api_parse, capture_start) {
    run_table(
        {
            {"port rx", R"({"port":"lan0","direction":"rx"})", 0, ""},
            {"port tx, every bound", R"({"port":"lan0","direction":"tx","max_packets":10,"max_seconds":5,"max_bytes":4096,"snaplen":96,"sample":4})", 0, ""},
            {"session", R"({"session":3})", 0, ""},
            {"neither", R"({"max_packets":10})", 400, "either \"port\" (with \"direction\") or \"session\""},
            {"both", R"({"port":"lan0","direction":"rx","session":3})", 400, "either \"port\""},
            {"port without direction", R"({"port":"lan0"})", 400, "\"direction\" must be \"rx\" or \"tx\""},
            {"direction both", R"({"port":"lan0","direction":"both"})", 400, "\"direction\" must be \"rx\" or \"tx\""},
            {"session with direction", R"({"session":3,"direction":"rx"})", 400, "a session's capture is its ingress"},
            {"session 0", R"({"session":0})", 400, "\"session\" must be a session id"},
            {"port not a string", R"({"port":1,"direction":"rx"})", 400, "\"port\" must be a string"},
            {"empty port", R"({"port":"","direction":"rx"})", 400, "\"port\" must be a port name"},
            {"max_packets 0", R"({"session":3,"max_packets":0})", 400, "\"max_packets\" must be an integer 1.."},
            {"max_seconds negative", R"({"session":3,"max_seconds":-1})", 400, "\"max_seconds\" must be an integer 1..86400"},
            {"max_seconds over a day", R"({"session":3,"max_seconds":86401})", 400, "\"max_seconds\" must be an integer 1..86400"},
            {"max_bytes string", R"({"session":3,"max_bytes":"1M"})", 400, "\"max_bytes\" must be an integer"},
            {"snaplen 63", R"({"session":3,"snaplen":63})", 400, "\"snaplen\" must be an integer 64..65535"},
            {"snaplen 65536", R"({"session":3,"snaplen":65536})", 400, "\"snaplen\" must be an integer 64..65535"},
            {"sample 0", R"({"session":3,"sample":0})", 400, "\"sample\" must be an integer 1..1000000"},
            // The caller names what to capture, never where it goes.
            {"a file name", R"({"session":3,"file":"/etc/passwd"})", 400, "unknown field \"file\""},
            {"a directory", R"({"session":3,"dir":"/tmp"})", 400, "unknown field \"dir\""},
            {"no body", "", 400, "a JSON body is required"},
        },
        [](const std::string& b) { return parse_capture_start(b, lim); });
    const auto r = parse_capture_start(R"({"port":"lan0","direction":"tx","max_packets":10,"snaplen":96})", lim);
    ASSERT_TRUE(r.ok());
    capture_request want;
    want.kind = capture_kind::port_tx;
    want.port = "lan0";
    want.max_packets = 10;
    want.snaplen = 96;
    EXPECT_EQ(want, r.value());
    const auto s = parse_capture_start(R"({"session":7})", lim);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(capture_kind::session, s.value().kind);
    EXPECT_EQ(7u, s.value().session);
    EXPECT_FALSE(s.value().max_packets) << "absent bounds are the relay's";
}

TEST(api_parse, segments) {
    EXPECT_EQ((std::vector<std::string>{"api", "v1", "x"}), split_path("//api/v1//x/"));
    EXPECT_TRUE(split_path("///").empty());
    EXPECT_EQ(42u, parse_session_segment("42").value());
    EXPECT_EQ(4294967295u, parse_session_segment("4294967295").value());
    for (const char* bad : {"0", "4294967296", "abc", "-1", "+1", " 1", "1 ", "", "18446744073709551616"}) {
        SCOPED_TRACE(bad);
        const auto r = parse_session_segment(bad);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ((parse_error{404, "not_found", std::string("no session ") + bad}), r.error());
    }
    EXPECT_EQ((endpoint{ip("198.18.0.5"), 6000}), parse_endpoint_segment("198.18.0.5:6000").value());
    EXPECT_EQ((endpoint{ip("198.18.0.5"), 65535}), parse_endpoint_segment("198.18.0.5:65535").value());
    for (const char* bad : {"198.18.0.5", "198.18.0.5:0", "198.18.0.5:65536", "198.18.0.5:", ":6000", "198.18.0:6000",
                            "198.18.0.5:6000:1", "198.18.0.5:-1", "a:b", ""}) {
        SCOPED_TRACE(bad);
        const auto r = parse_endpoint_segment(bad);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ((parse_error{400, "invalid", std::string("expected ADDRESS:PORT, got \"") + bad + "\""}), r.error());
    }
    EXPECT_EQ(7u, parse_query_uint("after", "7").value());
    EXPECT_EQ((parse_error{400, "invalid", "query parameter limit must be a non-negative integer"}),
              parse_query_uint("limit", "-1").error());
}

TEST(api_parse, routes) {
    struct rc {
        const char* method;
        const char* url;
        bool body;
        bool auth;
        route_kind kind;       // when status == 0
        int status;
        uint32_t session = 0;
    };
    using k = route_kind;
    const rc cases[] = {
        {"GET", "/api/v1/health", false, false, k::health, 0},
        {"POST", "/api/v1/health", false, false, k::health, 405},
        {"GET", "/metrics", false, true, k::metrics, 0},
        {"POST", "/metrics", false, true, k::metrics, 405},
        {"GET", "/index.html", false, false, k::health, 404},
        {"GET", "/api/v1", false, false, k::health, 404},
        {"GET", "/api/v2/stats", false, false, k::health, 404},
        {"GET", "/api/v1/stats", false, true, k::stats, 0},
        {"GET", "/api/v1/stats", true, true, k::stats, 400},
        {"GET", "/api/v1/nothing", true, true, k::stats, 400},     // the body is refused first
        {"GET", "/api/v1/nothing", false, true, k::stats, 404},
        {"GET", "/api/v1/ports", false, true, k::ports, 0},
        {"GET", "/api/v1/lcores", false, true, k::lcores, 0},
        {"GET", "/api/v1/drops", false, true, k::drops, 0},
        {"GET", "/api/v1/capacity", false, true, k::capacity, 0},
        {"GET", "/api/v1/events", false, true, k::events, 0},
        {"GET", "/api/v1/recordings", false, true, k::recordings_list, 0},
        {"GET", "/api/v1/sessions", false, true, k::sessions_list, 0},
        {"POST", "/api/v1/counters/clear", false, true, k::counters_clear, 0},
        {"POST", "/api/v1/counters/clear", true, true, k::counters_clear, 400},
        {"GET", "/api/v1/counters/clear", false, true, k::counters_clear, 405},
        {"POST", "/api/v1/counters", false, true, k::counters_clear, 404},
        {"POST", "/api/v1/sessions", true, true, k::session_create, 0},
        {"DELETE", "/api/v1/sessions", false, true, k::session_create, 405},
        {"POST", "/api/v1/stats", false, true, k::stats, 404},
        {"GET", "/api/v1/sessions/3", false, true, k::session_get, 0, 3},
        {"DELETE", "/api/v1/sessions/3/", false, true, k::session_end, 0, 3},
        {"PUT", "/api/v1/sessions/3", false, true, k::session_end, 405},
        {"DELETE", "/api/v1/sessions/3", true, true, k::session_end, 400},
        {"GET", "/api/v1/sessions/0", false, true, k::session_get, 404},
        {"GET", "/api/v1/sessions/x/listeners", false, true, k::session_get, 404},
        {"GET", "/api/v1/sessions/3/recording", false, true, k::recording_get, 0, 3},
        {"POST", "/api/v1/sessions/3/recording", false, true, k::recording_get, 405},
        {"DELETE", "/api/v1/sessions/3/recording", false, true, k::recording_get, 405},
        {"GET", "/api/v1/recordings/7", false, true, k::recording_by_id, 0},
        {"DELETE", "/api/v1/recordings/7", false, true, k::recording_delete, 0},
        {"DELETE", "/api/v1/recordings/7", true, true, k::recording_delete, 400},
        {"POST", "/api/v1/recordings/7", false, true, k::recording_delete, 405},
        {"DELETE", "/api/v1/recordings/0", false, true, k::recording_delete, 404},
        {"DELETE", "/api/v1/recordings/x", false, true, k::recording_delete, 404},
        {"DELETE", "/api/v1/recordings/7/tracks", false, true, k::recording_delete, 404},
        {"DELETE", "/api/v1/recordings", false, true, k::recordings_list, 405},
        {"POST", "/api/v1/sessions/3/speakers", true, true, k::speaker_add, 0, 3},
        {"DELETE", "/api/v1/sessions/3/speakers/198.18.0.10:5004", false, true, k::speaker_del, 0, 3},
        {"DELETE", "/api/v1/sessions/3/speakers/198.18.0.10", false, true, k::speaker_del, 400},
        {"GET", "/api/v1/sessions/3/speakers", false, true, k::speaker_del, 405},
        {"GET", "/api/v1/sessions/3/listeners", false, true, k::listeners_list, 0, 3},
        {"POST", "/api/v1/sessions/3/listeners", true, true, k::listener_add, 0, 3},
        {"POST", "/api/v1/sessions/3/listeners/bulk", true, true, k::listener_bulk, 0, 3},
        {"POST", "/api/v1/sessions/3/listeners/other", true, true, k::listener_bulk, 405},
        {"POST", "/api/v1/sessions/3/listeners/bulk_delete", true, true, k::listener_bulk_delete, 0, 3},
        {"DELETE", "/api/v1/sessions/3/listeners/bulk_delete", true, true, k::listener_bulk_delete, 400},
        {"POST", "/api/v1/sessions/3/listeners/bulk_delete/x", true, true, k::listener_bulk_delete, 405},
        {"DELETE", "/api/v1/sessions/3/listeners/203.0.113.7:6001", false, true, k::listener_del, 0, 3},
        {"DELETE", "/api/v1/sessions/3/listeners/203.0.113.7:6001/x", false, true, k::listener_del, 405},
        {"POST", "/api/v1/sessions/3/tokens", true, true, k::token_mint, 0, 3},
        {"GET", "/api/v1/sessions/3/tokens", false, true, k::token_mint, 405},
        {"POST", "/api/v1/sessions/3/tokens/x", true, true, k::token_mint, 405},
        {"POST", "/api/v1/sessions/0/tokens", true, true, k::token_mint, 404},
        {"GET", "/api/v1/sessions/3/other", false, true, k::listener_del, 404},
        {"GET", "/\xff", false, false, k::health, 404},
        {"GET", "/api/v1/captures", false, true, k::captures_list, 0},
        {"POST", "/api/v1/captures", true, true, k::capture_start, 0},
        {"DELETE", "/api/v1/captures", false, true, k::capture_start, 405},
        {"GET", "/api/v1/captures/4", false, true, k::capture_get, 0},
        {"DELETE", "/api/v1/captures/4", false, true, k::capture_delete, 0},
        {"POST", "/api/v1/captures/4", false, true, k::capture_get, 405},
        {"POST", "/api/v1/captures/4/stop", false, true, k::capture_stop, 0},
        {"POST", "/api/v1/captures/4/stop", true, true, k::capture_stop, 400},
        {"GET", "/api/v1/captures/4/stop", false, true, k::capture_stop, 405},
        {"GET", "/api/v1/captures/4/file", false, true, k::capture_file, 0},
        {"DELETE", "/api/v1/captures/4/file", false, true, k::capture_file, 405},
        {"GET", "/api/v1/captures/0", false, true, k::capture_get, 404},
        {"GET", "/api/v1/captures/x/file", false, true, k::capture_get, 404},
        {"GET", "/api/v1/captures/4/other", false, true, k::capture_get, 404},
        {"GET", "/api/v1/captures/4/file/x", false, true, k::capture_get, 404},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.method) + " " + c.url);
        EXPECT_EQ(c.auth, route_needs_auth(c.url));
        const auto r = parse_route(c.method, c.url, c.body);
        if (c.status == 0) {
            ASSERT_TRUE(r.ok()) << r.error().reason;
            EXPECT_EQ(c.kind, r.value().kind);
            EXPECT_EQ(c.session, r.value().session);
        } else {
            ASSERT_FALSE(r.ok());
            EXPECT_EQ(c.status, r.error().status);
            EXPECT_FALSE(r.error().reason.empty());
        }
    }
    const auto d = parse_route("DELETE", "/api/v1/sessions/3/listeners/203.0.113.7:6001", false);
    EXPECT_EQ((endpoint{ip("203.0.113.7"), 6001}), d.value().ep);
    EXPECT_EQ("203.0.113.7:6001", d.value().ep_text);
    EXPECT_EQ(4u, parse_route("GET", "/api/v1/captures/4/file", false).value().capture);
    EXPECT_EQ(7u, parse_route("DELETE", "/api/v1/recordings/7", false).value().recording);
}

TEST(api_parse, reasons_are_always_utf8) {
    EXPECT_EQ("abc \xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5", utf8_safe("abc \xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5"));
    const std::string r = "\xef\xbf\xbd";
    EXPECT_EQ(r, utf8_safe("\xff"));
    EXPECT_EQ("a" + r + "b", utf8_safe("a\xc3" "b"));            // truncated sequence
    EXPECT_EQ(r + r, utf8_safe("\xc0\xaf"));                     // overlong
    EXPECT_EQ(r + r + r, utf8_safe("\xed\xa0\x80"));             // surrogate
    EXPECT_EQ(r + r + r + r, utf8_safe("\xf4\x90\x80\x80"));     // above U+10FFFF
    const auto e = parse_route("GET", "/\xff", false);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ("no resource /" + r, e.error().reason);
    EXPECT_EQ(R"({"error":"not_found","reason":"no resource /)" + r + "\"}", error_body(e.error().code, e.error().reason));
    // Even a raw invalid reason renders (replaced), never throws.
    EXPECT_NO_THROW(error_body("x", "\xff\xfe"));
}

// json_text (control/json_text.h) renders every JSON answer of the relay's
// API and the director's: what is not UTF-8 becomes U+FFFD, in values and
// keys, and the text always parses back; nlohmann's plain dump() throws
// type_error 316 on each of these but the first.
TEST(api_parse, json_text_replaces_what_is_not_utf8_and_never_throws) {
    using nlohmann::json;
    const std::string r = "\xef\xbf\xbd";
    const struct {
        const char* what;
        json value;
        std::string text;
    } rows[] = {
        {"valid UTF-8 as it is", json("caf\xc3\xa9"), "\"caf\xc3\xa9\""},
        {"a character cut at the end (etcd's body cut at 200 bytes)", json("ab\xc3"), "\"ab" + r + "\""},
        {"a character cut before ASCII", json("a\xc3 b"), "\"a" + r + " b\""},
        {"bytes that are never UTF-8", json("\xff\xfe"), "\"" + r + r + "\""},
        {"Latin-1", json("caf\xe9"), "\"caf" + r + "\""},
        {"in a key", json{{"edge\xff", 1}}, "{\"edge" + r + "\":1}"},
        {"deep in an answer", json{{"relays", json::array({json{{"id", "e\xc3"}}})}, {"last_error", "\xff"}},
         "{\"last_error\":\"" + r + "\",\"relays\":[{\"id\":\"e" + r + "\"}]}"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        std::string text;
        ASSERT_NO_THROW(text = json_text(row.value));
        EXPECT_EQ(row.text, text);
        EXPECT_FALSE(json::parse(text, nullptr, false).is_discarded()) << "parses back, UTF-8 checked";
    }
}

// The model's error codes are transport-free; this table is the API's whole
// mapping, with the names its JSON bodies have always carried.
TEST(api_parse, action_error_codes_to_http) {
    const struct {
        error_code code;
        const char* name;
        int status;
    } rows[] = {
        {error_code::invalid, "invalid", 400},
        {error_code::not_found, "not_found", 404},
        {error_code::exists, "exists", 409},
        {error_code::session_full, "session_full", 409},
        {error_code::capacity, "capacity", 503},
        {error_code::rate_limited, "rate_limited", 429},
    };
    static_assert(std::size(rows) == nb_error_codes, "a row for every code");
    for (const auto& r : rows) {
        EXPECT_EQ(r.name, name_of(r.code));
        EXPECT_EQ(r.status, http_status_of(r.code)) << r.name;
    }
}

}  // namespace
}  // namespace stentor::control
