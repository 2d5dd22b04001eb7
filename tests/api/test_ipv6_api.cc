// The API and the CLI with IPv6 peers (issue 15): listeners and speakers of
// either family in one session, [IPV6]:PORT in paths, every refusal a 4xx
// with its reason that changes nothing, admission counting IPv6 listeners
// like IPv4 ones.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "control_plane.h"
#include "fixture.h"
#include "ip6.h"

namespace stentor::test {
namespace {

using nlohmann::json;

control::ipv6_addr v6(const char* t) { return *control::parse_ipv6(t); }

control::profile dual_api_profile(const std::string& port_name) {
    auto p = api_profile(port_name);
    p.ports[0].ipv6 = v6("2001:db8:100::1");
    p.ports[0].prefix6_len = 64;
    p.ports[0].gateway6 = v6("2001:db8:100::fe");
    p.ports[0].gateway6_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0x06, 0xfe};
    p.sessions.push_back(speaker_session());
    return p;
}

class ipv6_api : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("api6");
    std::unique_ptr<api_env> env;
    void SetUp() override {
        control::relay_options ro;
        ro.launch = true;
        env = std::make_unique<api_env>(dual_api_profile(port.name), ro);
    }
    void TearDown() override { env.reset(); }
    json world() {
        json w = env->get("/api/v1/sessions").body;
        w["listeners"] = env->get("/api/v1/sessions/1/listeners?limit=100000").body;
        return w;
    }
};

TEST_F(ipv6_api, listeners_and_speakers_of_both_families_add_list_remove) {
    auto r = env->post("/api/v1/sessions/1/listeners", {{"ip", "2001:DB8:200::5"}, {"port", 6000}, {"tier", 1}});
    ASSERT_EQ(201, r.status) << r.text;
    EXPECT_EQ("2001:db8:200::5", r.body.value("ip", "")) << "canonical text (RFC 5952)";
    ASSERT_EQ(201, env->post("/api/v1/sessions/1/listeners", {{"ip", "203.0.113.9"}, {"port", 6000}}).status);
    r = env->call("POST", "/api/v1/sessions/1/listeners/bulk",
                  R"({"listeners":[{"ip":"2001:db8:200::6","port":6001},{"ip":"203.0.113.10","port":6001}]})");
    ASSERT_EQ(201, r.status) << r.text;
    EXPECT_EQ(2u, r.body["added"].get<unsigned>());
    const auto l = env->get("/api/v1/sessions/1/listeners").body;
    ASSERT_EQ(4u, l["total"].get<unsigned>()) << l.dump();
    EXPECT_EQ("2001:db8:200::5", l["listeners"][0]["ip"]) << "join order, both families";
    EXPECT_EQ(1u, l["listeners"][0]["tier"].get<unsigned>());
    EXPECT_EQ("203.0.113.9", l["listeners"][1]["ip"]);
    EXPECT_EQ("2001:db8:200::6", l["listeners"][2]["ip"]);
    EXPECT_EQ(200, env->del("/api/v1/sessions/1/listeners/[2001:db8:200::5]:6000").status);
    EXPECT_EQ(200, env->del("/api/v1/sessions/1/listeners/%5B2001:db8:200::6%5D:6001").status) << "percent-encoded brackets";
    EXPECT_EQ(2u, env->get("/api/v1/sessions/1/listeners").body["total"].get<unsigned>());

    r = env->post("/api/v1/sessions/1/speakers", {{"ip", "2001:db8:100::10"}, {"port", 5004}, {"ssrc", 77}});
    ASSERT_EQ(201, r.status) << r.text;
    const auto s = env->get("/api/v1/sessions/1").body;
    bool found = false;
    for (const auto& sp : s["speakers"]) found |= sp["ip"] == "2001:db8:100::10" && sp["port"] == 5004;
    EXPECT_TRUE(found) << s.dump();
    EXPECT_EQ(409, env->post("/api/v1/sessions/1/speakers", {{"ip", "2001:db8:100::10"}, {"port", 5004}, {"ssrc", 77}}).status);
    EXPECT_EQ(200, env->del("/api/v1/sessions/1/speakers/[2001:db8:100::10]:5004").status);
    EXPECT_EQ(404, env->del("/api/v1/sessions/1/speakers/[2001:db8:100::10]:5004").status);
}

struct bad_row {
    const char* what;
    const char* method;
    const char* path;
    std::string body;
    int status;
    const char* code;
    const char* reason;   // substring of the reason
};

TEST_F(ipv6_api, every_ipv6_refusal_is_a_4xx_with_its_reason_and_changes_nothing) {
    ASSERT_EQ(201, env->post("/api/v1/sessions/1/listeners", {{"ip", "2001:db8:200::9"}, {"port", 6000}}).status);
    auto l = [](const std::string& ip, int port = 6001) { return json{{"ip", ip}, {"port", port}}.dump(); };
    const std::string L = "/api/v1/sessions/1/listeners";
    // RFC 4291 2.6.1: the port's prefix with an all-zero interface id.
    const std::string anycast = "the subnet-router anycast address of port \"" + dual_api_profile(port.name).ports[0].name +
                                "\" prefix 2001:db8:100::/64 (RFC 4291 2.6.1)";
    const std::string anycast_listener = "ip: listener address 2001:db8:100:: refused: " + anycast;
    const std::string anycast_speaker = "ip: speaker address 2001:db8:100:: refused: " + anycast;
    const std::string anycast_bulk = "listeners[1]: ip: listener address 2001:db8:100:: refused: " + anycast;
    const std::vector<bad_row> rows = {
        {"multicast", "POST", L.c_str(), l("ff02::1"), 400, "invalid", "multicast address (ff00::/8)"},
        {"multicast global scope", "POST", L.c_str(), l("ff0e::1:3"), 400, "invalid", "multicast"},
        {"unspecified", "POST", L.c_str(), l("::"), 400, "invalid", "unspecified address"},
        {"loopback", "POST", L.c_str(), l("::1"), 400, "invalid", "loopback"},
        {"link-local without scope", "POST", L.c_str(), l("fe80::1"), 400, "invalid", "link-local address (fe80::/10) without a scope"},
        {"link-local with a zone", "POST", L.c_str(), l("fe80::1%eth0"), 400, "invalid", "zone"},
        {"IPv4-mapped", "POST", L.c_str(), l("::ffff:203.0.113.7"), 400, "invalid", "IPv4-mapped address (::ffff:0:0/96): give the IPv4 address 203.0.113.7"},
        {"IPv4-compatible", "POST", L.c_str(), l("::203.0.113.7"), 400, "invalid", "IPv4-compatible"},
        {"IPv4-translated", "POST", L.c_str(), l("::ffff:0:203.0.113.7"), 400, "invalid",
         "IPv4-translated address (::ffff:0:0:0/96, RFC 2765): give the IPv4 address 203.0.113.7"},
        {"NAT64 of IPv4 multicast", "POST", L.c_str(), l("64:ff9b::e000:1"), 400, "invalid",
         "listener address 64:ff9b::e000:1 refused: a NAT64 address (64:ff9b::/96, RFC 6052) of 224.0.0.1, which is not "
         "a global IPv4 address: multicast address (224.0.0.0/4)"},
        {"NAT64 of a private IPv4 address", "POST", L.c_str(), l("64:ff9b::c0a8:101"), 400, "invalid",
         "of 192.168.1.1, which is not a global IPv4 address: a private address (RFC 1918)"},
        {"Teredo of a private client", "POST", L.c_str(), l("2001:0:4136:e378:8000:63bf:f5ff:fffe"), 400, "invalid",
         "a Teredo address (2001::/32, RFC 4380) of client 10.0.0.1"},
        {"NAT64 of IPv4 loopback", "POST", L.c_str(), l("64:ff9b::7f00:1"), 400, "invalid", "of 127.0.0.1, which is not a global IPv4 address: loopback"},
        {"NAT64 of IPv4 broadcast", "POST", L.c_str(), l("64:ff9b::ffff:ffff"), 400, "invalid", "limited broadcast"},
        {"6to4 of IPv4 multicast", "POST", L.c_str(), l("2002:e000:1::1"), 400, "invalid",
         "a 6to4 address (2002::/16, RFC 3056) of 224.0.0.1, which is not a global IPv4 address: multicast"},
        {"speaker NAT64 of IPv4 loopback", "POST", "/api/v1/sessions/1/speakers", R"({"ip":"64:ff9b::7f00:1","port":5004,"ssrc":1})",
         400, "invalid", "speaker address 64:ff9b::7f00:1 refused: a NAT64 address"},
        {"discard-only prefix", "POST", L.c_str(), l("100::1"), 400, "invalid", "discard-only"},
        {"relay's own", "POST", L.c_str(), l("2001:db8:100::1"), 400, "invalid", "the relay's own address"},
        {"subnet-router anycast of the port's prefix", "POST", L.c_str(), l("2001:db8:100::"), 400, "invalid",
         anycast_listener.c_str()},
        {"speaker subnet-router anycast", "POST", "/api/v1/sessions/1/speakers", R"({"ip":"2001:db8:100::","port":5004,"ssrc":1})",
         400, "invalid", anycast_speaker.c_str()},
        {"bulk subnet-router anycast item", "POST", "/api/v1/sessions/1/listeners/bulk",
         R"({"listeners":[{"ip":"2001:db8:200::20","port":7000},{"ip":"2001:db8:100:0::","port":7001}]})", 400, "invalid",
         anycast_bulk.c_str()},
        {"not an address", "POST", L.c_str(), l("2001:db8::g"), 400, "invalid", "is not an IPv4 address, nor an IPv6 one"},
        {"brackets in the body", "POST", L.c_str(), l("[2001:db8::5]"), 400, "invalid", "is not an IPv4 address"},
        {"a NUL inside the address", "POST", L.c_str(), R"({"ip":"2001:db8:200::7\u0000junk","port":6001})", 400, "invalid",
         "is not an IPv4 address, nor an IPv6 one"},
        {"port 0", "POST", L.c_str(), l("2001:db8:200::7", 0), 400, "invalid", "port"},
        {"tier 4", "POST", L.c_str(), R"({"ip":"2001:db8:200::7","port":6001,"tier":4})", 400, "invalid", "tier"},
        {"duplicate", "POST", L.c_str(), l("2001:db8:200::9", 6000), 409, "exists", "[2001:db8:200::9]:6000 exists"},
        {"same listener other spelling", "POST", L.c_str(), l("2001:0db8:0200:0:0:0:0:9", 6000), 409, "exists", "exists"},
        {"speaker multicast", "POST", "/api/v1/sessions/1/speakers", R"({"ip":"ff02::1","port":5004,"ssrc":1})", 400, "invalid", "multicast"},
        {"speaker relay's own", "POST", "/api/v1/sessions/1/speakers", R"({"ip":"2001:db8:100::1","port":5004,"ssrc":1})", 400, "invalid", "own address"},
        {"unknown listener", "DELETE", "/api/v1/sessions/1/listeners/[2001:db8:200::8]:6000", "", 404, "not_found", "no listener [2001:db8:200::8]:6000"},
        {"path without brackets", "DELETE", "/api/v1/sessions/1/listeners/2001:db8:200::9:6000", "", 400, "invalid", "ADDRESS:PORT"},
        {"path without port", "DELETE", "/api/v1/sessions/1/listeners/[2001:db8:200::9]", "", 400, "invalid", "[IPV6]:PORT"},
        {"path port 0", "DELETE", "/api/v1/sessions/1/listeners/[2001:db8:200::9]:0", "", 400, "invalid", "port must be 1..65535"},
        {"path IPv4 in brackets", "DELETE", "/api/v1/sessions/1/listeners/[203.0.113.9]:6000", "", 400, "invalid", "brackets hold an IPv6 address only"},
        {"bulk one bad IPv6 item", "POST", "/api/v1/sessions/1/listeners/bulk",
         R"({"listeners":[{"ip":"2001:db8:200::20","port":7000},{"ip":"ff05::2","port":7001},{"ip":"203.0.113.21","port":7002}]})",
         400, "invalid", "listeners[1]: ip: listener address ff05::2 refused: multicast"},
        {"bulk duplicate inside", "POST", "/api/v1/sessions/1/listeners/bulk",
         R"({"listeners":[{"ip":"2001:db8:200::20","port":7000},{"ip":"2001:db8:200:0::20","port":7000}]})", 409, "exists", "twice"},
        {"bulk delete unknown IPv6 item", "POST", "/api/v1/sessions/1/listeners/bulk_delete",
         R"({"listeners":[{"ip":"2001:db8:200::9","port":6000},{"ip":"2001:db8:200::99","port":6000}]})", 404, "not_found", "listeners[1]"},
    };
    for (const auto& c : rows) {
        SCOPED_TRACE(c.what);
        const json before = world();
        auto r = env->call(c.method, c.path, c.body);
        EXPECT_EQ(c.status, r.status) << r.text;
        ASSERT_TRUE(r.body.is_object()) << r.text;
        EXPECT_EQ(c.code, r.body.value("error", "")) << r.text;
        EXPECT_NE(std::string::npos, r.body.value("reason", "").find(c.reason)) << r.text;
        EXPECT_EQ(before, world());
    }
}

// Admission plans an IPv6 listener as it does an IPv4 one (same stream, same
// port), at its own frame size: 20 bytes more a replica (62 + RTP against
// 42 + RTP), 295.2 kbit/s against 287.2 at 256 kbit/s. On a 1 Mbit/s port
// (900 kbit/s planned) three fit, whatever their family, and the fourth is
// refused as capacity.
TEST(ipv6_admission, ipv6_listeners_are_planned_and_refused_like_ipv4_ones) {
    auto port = fresh_ring_port("adm6");
    auto p = dual_api_profile(port.name);
    p.sessions.clear();
    p.ports[0].line_rate_mbps = 1;
    control::relay r(p, control::relay_options{.launch = false});
    control::control_options co;
    co.publisher = false;
    control::control_plane cp(r, p, co);
    const uint32_t id = r.state().session_create({}).id;
    r.state().listener_add(id, control::listener_spec{0, 6000, 0, false, v6("2001:db8:200::1")});
    r.state().listener_add(id, control::listener_spec{0xcb007101, 6000, 0});
    r.state().listener_add(id, control::listener_spec{0, 6001, 0, false, v6("2001:db8:200::2")});
    EXPECT_DOUBLE_EQ(150.0, cp.adm().used_pps());
    EXPECT_DOUBLE_EQ(2 * 295200.0 + 287200.0, cp.adm().report().ports[0].used_bps) << "each family at its frame size";
    try {
        r.state().listener_add(id, control::listener_spec{0, 6002, 0, false, v6("2001:db8:200::3")});
        FAIL() << "a fourth stream was admitted on a 0.9 Mbit/s plan";
    } catch (const control::action_error& e) {
        EXPECT_EQ(control::error_code::capacity, e.code);
    }
    EXPECT_EQ(3u, r.state().session(id)->nb_listeners);
    r.state().listener_del(id, control::listener_addr{0, 6000, v6("2001:db8:200::1")});
    EXPECT_DOUBLE_EQ(100.0, cp.adm().used_pps()) << "an IPv6 leave releases its stream";
    EXPECT_DOUBLE_EQ(295200.0 + 287200.0, cp.adm().report().ports[0].used_bps) << "... at its own size";
    r.state().listener_add(id, control::listener_spec{0, 6002, 0, false, v6("2001:db8:200::3")});
    EXPECT_DOUBLE_EQ(150.0, cp.adm().used_pps());
    // A second speaker would add one stream to each listener at its family's size.
    r.state().listener_del(id, control::listener_addr{0, 6001, v6("2001:db8:200::2")});
    r.state().listener_del(id, control::listener_addr{0xcb007101, 6000, std::nullopt});
    r.state().speaker_add(id, speaker_ip, 5004, 1);
    r.state().speaker_add(id, speaker_ip + 1, 5004, 2);
    EXPECT_DOUBLE_EQ(2 * 295200.0, cp.adm().report().ports[0].used_bps) << "one IPv6 listener, two streams";
}

// stentorctl speaks [IPV6]:PORT.
TEST_F(ipv6_api, stentorctl_adds_and_removes_an_ipv6_listener) {
    const std::string api = "--api 127.0.0.1:" + std::to_string(env->api->port());
    auto run = [&](const std::string& args) {
        const std::string cmd = std::string(STENTORCTL_PATH) + " " + api + " --token " + test_token + " " + args + " 2>&1";
        FILE* f = ::popen(cmd.c_str(), "r");
        std::string out;
        char buf[512];
        while (f != nullptr && std::fgets(buf, sizeof buf, f) != nullptr) out += buf;
        const int rc = f != nullptr ? ::pclose(f) : -1;
        return std::make_pair(rc, out);
    };
    auto [rc, out] = run("listener add 1 [2001:db8:200::30]:6000 --tier 2");
    EXPECT_EQ(0, rc) << out;
    const auto l = env->get("/api/v1/sessions/1/listeners").body;
    ASSERT_EQ(1u, l["total"].get<unsigned>()) << l.dump();
    EXPECT_EQ("2001:db8:200::30", l["listeners"][0]["ip"]);
    EXPECT_EQ(2u, l["listeners"][0]["tier"].get<unsigned>());
    std::tie(rc, out) = run("listener del 1 [2001:db8:200::30]:6000");
    EXPECT_EQ(0, rc) << out;
    EXPECT_EQ(0u, env->get("/api/v1/sessions/1/listeners").body["total"].get<unsigned>());
    std::tie(rc, out) = run("listener add 1 2001:db8:200::30:6000");
    EXPECT_NE(0, rc) << "an IPv6 address needs brackets";
    EXPECT_NE(std::string::npos, out.find("[IPV6]:PORT")) << out;

    // --range over IPv6 (control/ctl_range.h): an address range with ports,
    // in requests of --chunk, then a count; removed the same way.
    std::tie(rc, out) = run("listener add 1 --range [2001:db8:200::fe-2001:db8:200::101]:7000-7001 --chunk 3 --tier 1");
    ASSERT_EQ(0, rc) << out;
    EXPECT_NE(std::string::npos, out.find("added 8 listener(s) to session 1 in 3 request(s)")) << out;
    auto l8 = env->get("/api/v1/sessions/1/listeners").body;
    ASSERT_EQ(8u, l8["total"].get<unsigned>()) << l8.dump();
    EXPECT_EQ("2001:db8:200::fe", l8["listeners"][0]["ip"]);
    EXPECT_EQ(7001u, l8["listeners"][1]["port"].get<unsigned>()) << "addresses outer, ports inner";
    EXPECT_EQ("2001:db8:200::100", l8["listeners"][4]["ip"]) << "across the byte";
    EXPECT_EQ(1u, l8["listeners"][7]["tier"].get<unsigned>());
    std::tie(rc, out) = run("listener add 1 --range [2001:db8:200::1:0+3]:7000");
    ASSERT_EQ(0, rc) << out;
    EXPECT_EQ(11u, env->get("/api/v1/sessions/1/listeners").body["total"].get<unsigned>());
    // Refused before anything is sent (exit 2), nothing changes.
    const json before = world();
    for (const char* bad : {"[2001:db8:200::1-2001:db8:200::ffff:ffff]:7000",   // 2^32 addresses
                            "[2001:db8:200::9-2001:db8:200::1]:7000", "[2001:db8:200::1-198.18.0.9]:7000",
                            "2001:db8:200::1-2001:db8:200::9:7000"}) {
        SCOPED_TRACE(bad);
        std::tie(rc, out) = run(std::string("listener add 1 --range ") + bad);
        EXPECT_EQ(2, WEXITSTATUS(rc)) << out;
        EXPECT_NE(std::string::npos, out.find("--range")) << out;
    }
    EXPECT_EQ(before, world());
    std::tie(rc, out) = run("listener del 1 --range [2001:db8:200::fe-2001:db8:200::101]:7000-7001");
    ASSERT_EQ(0, rc) << out;
    std::tie(rc, out) = run("listener del 1 --range [2001:db8:200::1:0+3]:7000");
    ASSERT_EQ(0, rc) << out;
    EXPECT_EQ(0u, env->get("/api/v1/sessions/1/listeners").body["total"].get<unsigned>());
}

}  // namespace
}  // namespace stentor::test
