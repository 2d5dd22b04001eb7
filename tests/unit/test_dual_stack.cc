// Dual stack in profiles and in the fleet's state (issue 15 item 1):
//  - static [[session.speaker]] and [[session.listener]] of either family,
//    loaded through the actions; every refusal names file:line:col and key;
//  - [fleet] advertise of either family and trunk_family;
//  - an IPv6 trunk listener is flagged as an IPv4 one is: never shed, not
//    journaled, removed without a journal record;
//  - the shipped profiles are dual stack where they face real networks.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "profile_error.h"
#include "ipv6.h"
#include "journal.h"
#include "state.h"
#include "stentor/dp_shared.h"

namespace stentor::control {
namespace {

using test::error_of;

ipv6_addr a6(const char* s) { return parse_ipv6(s).value_or(ipv6_addr{}); }

// Lines: 1-3 eal, 4-6 dataplane, 7-13 port (IPv6 on lines 11-13), 14-16
// api, then what the row adds from line 17.
const std::string k_head =
    "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\"]\n"
    "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n"
    "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n"
    "ipv6 = \"2001:db8:5354::1/64\"\ngateway6 = \"fe80::1\"\ngateway6_mac = \"02:00:00:00:00:fe\"\n"
    "[api]\ntoken = \"0123456789abcdef\"\nplain_http = true\n";
// The same without IPv6 on the port (lines 11-13 are comments, so the rows'
// line numbers hold for both).
const std::string k_head_v4 =
    "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\"]\n"
    "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n"
    "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n"
    "#\n#\n#\n"
    "[api]\ntoken = \"0123456789abcdef\"\nplain_http = true\n";
// Lines 17-19.
const std::string k_session = "[[session]]\nid = 1\nudp_port = 40000\n";

std::string speaker(const std::string& ip, unsigned port = 5004) {
    return "[[session.speaker]]\nip = \"" + ip + "\"\nport = " + std::to_string(port) + "\nssrc = 7\n";
}
std::string listener(const std::string& ip, unsigned port = 6000) {
    return "[[session.listener]]\nip = \"" + ip + "\"\nport = " + std::to_string(port) + "\n";
}

// A relay_state with no data plane, as the fleet tests assemble one.
struct state_env {
    profile prof;
    std::vector<dp::dp_neigh> neigh;
    std::vector<dp::dp_policer> policers;
    dp::dp_shared shared;
    std::unique_ptr<relay_state> st;
    explicit state_env(profile p) : prof(std::move(p)), neigh(64), policers(prof.limits.max_speakers) {
        shared.neigh = neigh.data();
        shared.nb_neigh = static_cast<uint32_t>(neigh.size());
        shared.policers = policers.data();
        shared.nb_policers = static_cast<uint32_t>(policers.size());
        prof.limits.max_neighbours = static_cast<unsigned>(neigh.size());
        st = std::make_unique<relay_state>(prof, shared, 1);
    }
};

TEST(StaticPeers, speakers_and_listeners_of_both_families_load_through_the_actions) {
    const std::string text = k_head + k_session + speaker("2001:db8:5354::10") + speaker("198.18.0.10") +
                             listener("2001:db8:5354::21") +   // on-link
                             listener("2a00:1450::5", 6001) +  // behind gateway6
                             listener("198.18.0.21") + listener("2001:db8:5354::21", 6002);
    const profile p = parse_profile(text, "t.toml");
    ASSERT_EQ(1u, p.sessions.size());
    const auto& s = p.sessions[0];
    ASSERT_EQ(2u, s.speakers.size());
    EXPECT_EQ(a6("2001:db8:5354::10"), s.speakers[0].ip6);
    EXPECT_EQ(0u, s.speakers[0].ip);
    EXPECT_FALSE(s.speakers[1].ip6.has_value());
    ASSERT_EQ(4u, s.listeners.size());
    EXPECT_EQ(a6("2a00:1450::5"), s.listeners[1].ip6);
    EXPECT_EQ(0xc6120015u, s.listeners[2].ip);

    state_env env(p);
    env.st->load_static(env.prof);
    const auto v = env.st->session(1);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(4u, v->nb_listeners);
    EXPECT_EQ(3u, v->nb_listeners6);
    ASSERT_EQ(2u, v->speakers.size());
    EXPECT_TRUE(std::any_of(v->speakers.begin(), v->speakers.end(),
                            [](const speaker_view& sp) { return sp.ip6 == a6("2001:db8:5354::10") && sp.ssrc == 7u; }));
    // Static state is journaled state: both families are in the image.
    const state_image img = env.st->image();
    EXPECT_EQ(4u, img.listeners.size());
    ASSERT_EQ(1u, img.sessions.size());
    EXPECT_EQ(2u, img.sessions[0].speakers.size());
}

struct error_row {
    const char* what;
    std::string text;
    std::string starts;   // the message starts with this (file:line:col: key: ...)
};

TEST(StaticPeers, refusals_name_file_line_and_key) {
    const std::string hs = k_head + k_session;
    const error_row rows[] = {
        {"not an address", hs + listener("2001:db8::g"),
         "t.toml:21:6: session[0].listener[0].ip: \"2001:db8::g\" is not a dotted-quad IPv4 address nor an IPv6 address"},
        {"link-local listener", hs + listener("fe80::5"),
         "t.toml:21:6: session[0].listener[0].ip: listener address fe80::5 refused: "},
        {"multicast speaker", hs + speaker("ff02::1"),
         "t.toml:21:6: session[0].speaker[0].ip: speaker address ff02::1 refused: "},
        {"IPv4-mapped listener", hs + listener("::ffff:198.18.0.21"),
         "t.toml:21:6: session[0].listener[0].ip: listener address ::ffff:198.18.0.21 refused: "},
        {"the relay's own address", hs + listener("2001:db8:5354::1"),
         "t.toml:21:6: session[0].listener[0].ip: listener address 2001:db8:5354::1 refused: the relay's own address "
         "(port \"p0\")"},
        {"the port prefix's subnet-router anycast address", hs + listener("2001:db8:5354::"),
         "t.toml:21:6: session[0].listener[0].ip: listener address 2001:db8:5354:: refused: the subnet-router anycast "
         "address of port \"p0\" prefix 2001:db8:5354::/64 (RFC 4291 2.6.1)"},
        {"a speaker at the subnet-router anycast address", hs + speaker("2001:db8:5354:0:0::"),
         "t.toml:21:6: session[0].speaker[0].ip: speaker address 2001:db8:5354:: refused: the subnet-router anycast "
         "address of port \"p0\" prefix 2001:db8:5354::/64"},
        {"NAT64 of IPv4 multicast", hs + listener("64:ff9b::e000:1"),
         "t.toml:21:6: session[0].listener[0].ip: listener address 64:ff9b::e000:1 refused: a NAT64 address"},
        {"port 0", hs + listener("2001:db8:5354::21", 0), "t.toml:22:8: session[0].listener[0].port: 0 is out of range"},
        {"off-link without a gateway6", k_head_v4 + k_session + listener("2001:db8:9999::5"),
         "t.toml:21:6: session[0].listener[0].ip: 2001:db8:9999::5 is in no port's ipv6 prefix and no port has a "
         "gateway6"},
        {"tier 4", hs + listener("2001:db8:5354::21") + "tier = 4\n",
         "t.toml:23:8: session[0].listener[0].tier: 4 is out of range 0..3"},
        {"the same listener twice (another spelling)", hs + listener("2001:db8:5354::21") + listener("2001:DB8:5354:0::21"),
         "t.toml:23:1: session[0].listener[1]: duplicate listener [2001:db8:5354::21]:6000"},
        {"the same speaker twice", hs + speaker("2001:db8:5354::10") + speaker("2001:db8:5354::10"),
         "t.toml:24:1: session[0].speaker[1]: duplicate speaker [2001:db8:5354::10]:5004"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const auto msg = error_of(r.text);
        EXPECT_EQ(0u, msg.find(r.starts)) << "got:      " << msg << "\nexpected: " << r.starts;
    }
}

// [fleet]: advertise of either family, trunk_family.
const std::string k_fleet = "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n"
                            "trunk_peers = [\"198.18.0.0/24\", \"2001:db8:5354::/64\"]\n"
                            "allow_unauthenticated_trunks = true\n";   // 17-22 (not about trunk authentication)

TEST(FleetDualStack, advertise_and_trunk_family) {
    // Default: every port's addresses of both families; trunks over IPv4.
    auto p = parse_profile(k_head + k_fleet, "t.toml");
    EXPECT_EQ(std::vector<uint32_t>{0xc6120001u}, p.fleet.advertise);
    EXPECT_EQ(std::vector<ipv6_addr>{a6("2001:db8:5354::1")}, p.fleet.advertise6);
    EXPECT_EQ("ipv4", p.fleet.trunk_family);
    // Listed: exactly those, either family, in order.
    p = parse_profile(k_head + k_fleet + "advertise = [\"2001:db8:5354::1\", \"198.18.0.1\", \"2001:db8:77::1\"]\n"
                                          "trunk_family = \"ipv6\"\n",
                      "t.toml");
    EXPECT_EQ(std::vector<uint32_t>{0xc6120001u}, p.fleet.advertise);
    EXPECT_EQ((std::vector<ipv6_addr>{a6("2001:db8:5354::1"), a6("2001:db8:77::1")}), p.fleet.advertise6);
    EXPECT_EQ("ipv6", p.fleet.trunk_family);
    EXPECT_EQ("auto", parse_profile(k_head_v4 + k_fleet + "trunk_family = \"auto\"\n", "t.toml").fleet.trunk_family)
        << "auto without IPv6 is IPv4";
    EXPECT_TRUE(parse_profile(k_head_v4 + k_fleet, "t.toml").fleet.advertise6.empty());

    const error_row rows[] = {
        {"not an address", k_head + k_fleet + "advertise = [\"2001:db8::g\"]\n",
         "t.toml:23:14: fleet.advertise[0]: \"2001:db8::g\" is not an IPv4 or IPv6 address"},
        {"link-local", k_head + k_fleet + "advertise = [\"198.18.0.1\", \"fe80::1\"]\n",
         "t.toml:23:28: fleet.advertise[1]: fe80::1 cannot be advertised: "},
        {"a family that is none", k_head + k_fleet + "trunk_family = \"ipv5\"\n",
         "t.toml:23:16: fleet.trunk_family: \"ipv5\": must be \"ipv4\", \"ipv6\""},
        {"ipv6 without an IPv6 address", k_head_v4 + k_fleet + "trunk_family = \"ipv6\"\n",
         "t.toml:23:16: fleet.trunk_family: \"ipv6\" but the relay advertises no IPv6 address"},
        {"ipv6, addresses listed without one", k_head + k_fleet + "advertise = [\"198.18.0.1\"]\ntrunk_family = \"ipv6\"\n",
         "t.toml:24:16: fleet.trunk_family: \"ipv6\" but the relay advertises no IPv6 address"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const auto msg = error_of(r.text);
        EXPECT_EQ(0u, msg.find(r.starts)) << "got:      " << msg << "\nexpected: " << r.starts;
    }
}

// The fleet's trunk flag through the one mechanism, for IPv6 as for IPv4:
// a trunk listener is admitted and counted, never shed, never journaled,
// and leaving writes no journal record.
TEST(TrunkListener6, never_shed_never_journaled) {
    state_env env(parse_profile(k_head, "t.toml"));
    relay_state& st = *env.st;
    session_params sp;
    sp.id = 1;
    sp.udp_port = 40000;
    st.session_create(sp);
    listener_spec trunk6{0, 40000, 0, false, a6("2001:db8:5354::3")};
    trunk6.trunk = true;
    listener_spec trunk4{0xc6120003u, 40000, 0};
    trunk4.trunk = true;
    st.listener_add(1, trunk6);
    st.listener_add(1, trunk4);
    st.listener_add(1, listener_spec{0, 6000, 0, false, a6("2001:db8:5354::21")});
    st.listener_add(1, listener_spec{0xc6120015u, 6000, 0});
    EXPECT_EQ(4u, st.nb_listeners());
    const auto shed = st.shed_newest(0, 10);
    ASSERT_EQ(2u, shed.size()) << "the trunks stay";
    for (const auto& s : shed) EXPECT_NE(40000u, s.port);
    EXPECT_EQ(2u, st.nb_listeners());
    EXPECT_TRUE(st.image().listeners.empty()) << "trunk listeners of either family are not journaled";
    st.listener_del(1, listener_addr{0, 40000, a6("2001:db8:5354::3")});
    st.listener_del(1, listener_addr{0xc6120003u, 40000});
    EXPECT_EQ(0u, st.nb_listeners());
}

// Shipped profiles that face real networks are dual stack: each port has an
// IPv6 address, prefix and gateway6 (issue 15, "Profiles: IPv6
// address/prefix/gateway per port"); the fleet dev profiles advertise IPv6
// and ask for IPv6 trunks when both ends have it.
TEST(ShippedProfiles, real_network_profiles_are_dual_stack) {
    const std::string dir = std::string(STENTOR_SOURCE_DIR) + "/configs/";
    for (const char* name : {"lab-x710-10g.toml", "edge-cx6-100g.toml", "dev-fleet-origin.toml", "dev-fleet-edge.toml"}) {
        SCOPED_TRACE(name);
        const profile p = load_profile(dir + name);
        for (const auto& port : p.ports) {
            ASSERT_TRUE(port.ipv6.has_value()) << port.name;
            EXPECT_FALSE(ipv6_special(*port.ipv6).has_value());
            EXPECT_GE(port.prefix6_len, 48u);
            EXPECT_TRUE(port.gateway6.has_value()) << port.name;
            EXPECT_TRUE(port.gateway6_mac.has_value() || port.gateway6_learnt);
        }
    }
    for (const char* name : {"dev-fleet-origin.toml", "dev-fleet-edge.toml"}) {
        SCOPED_TRACE(name);
        const profile p = load_profile(dir + name);
        EXPECT_FALSE(p.fleet.advertise6.empty());
        EXPECT_EQ("auto", p.fleet.trunk_family);
    }
}

}  // namespace
}  // namespace stentor::control
