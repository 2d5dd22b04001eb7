// Trunks (issue 13 items 1 and 2, docs/fleet.md "Trunks"): the plan a relay
// derives from the registry (a table), the records' new fields, and the whole
// lifecycle against a real etcd: relays (relay_state with admission, as
// stentord has them, no data plane) registered by their registrars, each
// with its trunk watch and reconciler, and trunk keys written as a director
// writes them. Watch -> trunk listener on the origins, session and flows on
// the edge, a middle tier, an origin gone, the key gone.
#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "admission.h"
#include "config.h"
#include "etcd_client.h"
#include "etcd_fixture.h"
#include "fleet_member.h"
#include "fleet_trunks.h"
#include "journal.h"
#include "registrar.h"
#include "registry.h"
#include "state.h"
#include "tcp_proxy.h"
#include "stentor/dp_shared.h"
#include "trunk_key.h"
#include "trunks.h"

namespace stentor::fleet {
namespace {

using namespace std::chrono_literals;
using test::etcd_server;
using test::eventually;

constexpr uint32_t ip_of(unsigned a, unsigned b, unsigned c, unsigned d) { return (a << 24) | (b << 16) | (c << 8) | d; }

relay_record rec(const std::string& id, const std::string& role, const std::string& addr,
                 std::map<uint32_t, std::vector<uint32_t>> ssrcs = {}) {
    relay_record r;
    r.id = id;
    r.role = role;
    r.addresses = {addr};
    r.slots = 1000;
    // The sessions it carries: those it lists SSRCs of, each on UDP 40000 +
    // its id (the fleet's one port per session, as the trunks below say).
    for (const auto& [id, list] : ssrcs) r.sessions.emplace_back(id, static_cast<uint16_t>(40000 + id));
    r.ssrcs = std::move(ssrcs);
    return r;
}
// A dual-stack record: IPv4 `addr`, IPv6 `addr6` ("" = none), the trunk family.
relay_record rec6(const std::string& id, const std::string& role, const std::string& addr, const std::string& addr6,
                  const std::string& family, std::map<uint32_t, std::vector<uint32_t>> ssrcs = {}) {
    relay_record r = rec(id, role, addr, std::move(ssrcs));
    if (!addr6.empty()) r.addresses6 = {addr6};
    r.trunk_family = family;
    return r;
}
addr6 v6(const char* s) { return parse_ipv6(s).value(); }
peer_allowlist nets(std::vector<std::string> cidrs) {
    peer_allowlist a;
    for (const auto& c : cidrs) {
        std::string why;
        a.nets.push_back(parse_peer_net(c, &why).value());
    }
    return a;
}
// The plans' tables below are about what the registry says; the allowlist
// has its own table (TrunkPlan.trunk_peers_...).
const peer_allowlist any_peer = nets({"0.0.0.0/0", "::/0"});
trunk_record trunk(uint32_t s, const std::string& edge, std::vector<std::string> origins, uint16_t port) {
    trunk_record t;
    t.session = s;
    t.edge = edge;
    t.origins = std::move(origins);
    t.udp_port = port;
    return t;
}

// One reader of the session in a trunk key's name, for the director and
// the relays: trunk_key()'s form only. Before, the director read
// "4294967297" as session 1 (strtoul, wrapped) and the relays took "01",
// "+1" and " 1" as session 1, then deleted only the canonical key.
TEST(TrunkRecords, a_session_id_in_a_key_name_is_read_strictly) {
    struct row {
        const char* text;
        std::optional<uint32_t> want;
    };
    const row rows[] = {
        {"1", 1u},           {"7", 7u},          {"40007", 40007u},  {"4294967295", 4294967295u},
        {"0", std::nullopt}, {"", std::nullopt}, {"01", std::nullopt}, {"007", std::nullopt},
        {"+1", std::nullopt}, {"-1", std::nullopt}, {" 1", std::nullopt}, {"1 ", std::nullopt},
        {"\t1", std::nullopt}, {"1a", std::nullopt}, {"0x1", std::nullopt}, {"1.0", std::nullopt},
        {"4294967296", std::nullopt}, {"4294967297", std::nullopt}, {"18446744073709551617", std::nullopt},
        {"99999999999", std::nullopt},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.text);
        EXPECT_EQ(parse_session_key(x.text), x.want);
    }
    EXPECT_EQ(parse_session_key(std::string_view("1\0", 2)), std::nullopt) << "a NUL after the digits";
    for (uint32_t s : {1u, 9u, 10u, 4294967295u})
        EXPECT_EQ(parse_session_key(std::to_string(s)), s) << "what trunk_key() writes reads back";
}

TEST(TrunkRecords, origins_and_ssrcs_round_trip_and_the_older_form_reads) {
    trunk_record t = trunk(7, "e1", {"o1", "o2"}, 40007);
    t.created_by = "d1";
    std::string why;
    auto back = trunk_record::from_json(t.to_json(), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->origins, (std::vector<std::string>{"o1", "o2"}));
    EXPECT_EQ(back->udp_port, 40007);
    back = trunk_record::from_json(R"({"session":7,"edge":"e1","origin":"o1","udp_port":40007})", &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->origins, std::vector<std::string>{"o1"}) << "a record written before origins";
    EXPECT_FALSE(trunk_record::from_json(R"({"session":7,"edge":"e1","origins":[],"udp_port":40007})", &why))
        << "no origin at all";
    EXPECT_FALSE(trunk_record::from_json(R"({"session":7,"edge":"","origins":["o1"],"udp_port":40007})", &why));
    // Numbers that do not fit are refused, not truncated (70000 would read as 4464).
    for (const char* text : {R"({"session":7,"edge":"e1","origins":["o1"],"udp_port":70000})",
                             R"({"session":7,"edge":"e1","origins":["o1"],"udp_port":-1})",
                             R"({"session":4294967296,"edge":"e1","origins":["o1"],"udp_port":40007})",
                             R"({"session":-7,"edge":"e1","origins":["o1"],"udp_port":40007})"}) {
        SCOPED_TRACE(text);
        why.clear();
        EXPECT_FALSE(trunk_record::from_json(text, &why).has_value());
        EXPECT_FALSE(why.empty());
    }

    relay_record r = rec6("o1", "origin", "198.18.0.1", "2001:db8::1", "auto", {{7, {1234, 99}}});
    r.sessions = {{7, 40007}, {8, 40008}};
    auto rb = relay_record::from_json(r.to_json(), &why);
    ASSERT_TRUE(rb) << why;
    EXPECT_EQ(*rb, r);
    EXPECT_NE(r.to_json().find("[7,40007,[1234,99]]"), std::string::npos) << r.to_json();
    EXPECT_NE(r.to_json().find("[8,40008]"), std::string::npos) << "no SSRC: the older two-element form";
    EXPECT_NE(r.to_json().find(R"("addresses6":["2001:db8::1"])"), std::string::npos) << r.to_json();
    EXPECT_NE(r.to_json().find(R"("trunk_family":"auto")"), std::string::npos) << r.to_json();
    // A record of an older build: no IPv6, IPv4 trunks.
    rb = relay_record::from_json(R"({"id":"x","role":"edge","addresses":["198.18.0.3"],"slots":1,"listeners":0})", &why);
    ASSERT_TRUE(rb) << why;
    EXPECT_TRUE(rb->addresses6.empty());
    EXPECT_EQ(rb->trunk_family, "ipv4");
    EXPECT_FALSE(rb->trunk_auth) << "an older relay's record: trunks unauthenticated";
    EXPECT_EQ(rb->trunk_epoch, "");
    // Trunk authentication's two fields round trip; the epoch is written
    // only when there is one.
    r.trunk_auth = true;
    r.trunk_epoch = "0123456789abcdef";
    rb = relay_record::from_json(r.to_json(), &why);
    ASSERT_TRUE(rb) << why;
    EXPECT_EQ(*rb, r);
    EXPECT_NE(r.to_json().find(R"("trunk_auth":true)"), std::string::npos) << r.to_json();
    EXPECT_NE(r.to_json().find(R"("trunk_epoch":"0123456789abcdef")"), std::string::npos) << r.to_json();
    r.trunk_auth = false;
    r.trunk_epoch.clear();
    EXPECT_EQ(r.to_json().find("trunk_epoch"), std::string::npos) << r.to_json();
    EXPECT_NE(r.to_json().find(R"("trunk_auth":false)"), std::string::npos) << r.to_json();
    // An epoch that is a string but not 16 hex digits still reads: the plan
    // refuses the trunk (trunk_auth_mismatch), the relay stays visible.
    rb = relay_record::from_json(
        R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"trunk_auth":true,"trunk_epoch":"xyz"})", &why);
    ASSERT_TRUE(rb) << why;
    EXPECT_EQ(rb->trunk_epoch, "xyz");
    struct row {
        const char* text;
        const char* what;
    };
    const row bad[] = {
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[1]]})", "entry of one"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"trunk_family":"ipv5"})", "a family that is none"},
        {R"({"id":"x","role":"edge","addresses":[],"addresses6":[6],"slots":1,"listeners":0})", "addresses6 not strings"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[1,2,3]]})", "ssrcs not a list"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[1,2,[-1]]]})", "negative SSRC"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[1,2,[4294967296]]]})",
         "SSRC past 32 bits"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[1,70000]]})", "port past 16 bits"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[1,-1]]})", "negative port"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[4294967296,2]]})",
         "session id past 32 bits"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"sessions":[[-1,2]]})", "negative session id"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"trunk_auth":"yes"})", "trunk_auth not a bool"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"trunk_auth":1})", "trunk_auth a number"},
        {R"({"id":"x","role":"edge","addresses":[],"slots":1,"listeners":0,"trunk_epoch":81985529216486895})",
         "trunk_epoch a number"}};
    for (const auto& b : bad) {
        SCOPED_TRACE(b.what);
        why.clear();
        EXPECT_FALSE(relay_record::from_json(b.text, &why).has_value());
        EXPECT_FALSE(why.empty());
    }
}

TEST(TrunkPlan, what_each_relay_does_for_the_trunks_it_sees) {
    const std::map<std::string, relay_record> live = {
        {"o1", rec("o1", "origin", "198.18.0.1", {{7, {1234}}})},
        {"o2", rec("o2", "origin", "198.18.0.2", {{7, {1234}}})},
        {"o3", rec("o3", "origin", "198.18.0.9", {{7, {1, 2}}})},   // two speakers: any SSRC
        {"m1", rec("m1", "edge", "198.18.0.5", {{7, {1234}}})},
        {"e1", rec("e1", "edge", "198.18.0.3")},
        {"e2", rec("e2", "edge", "198.18.0.4")},
        {"bad", rec("bad", "edge", "not-an-address")},
    };
    struct row {
        const char* what;
        std::string self;
        std::vector<trunk_record> trunks;
        std::vector<trunk_send> sends;
        std::map<uint32_t, uint16_t> sessions;
        std::vector<trunk_flow> flows;
        size_t problems;
    };
    const row rows[] = {
        {"an origin sends to the edge of each trunk naming it", "o1",
         {trunk(7, "e1", {"o1", "o2"}, 40007), trunk(7, "e2", {"o1"}, 40007), trunk(8, "e1", {"o2"}, 40008)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e1"}, {7, ip_of(198, 18, 0, 4), 40007, "e2"}},
         {},
         {},
         0},
        {"the edge takes the session from each live origin, with its one SSRC", "e1",
         {trunk(7, "e1", {"o1", "o2"}, 40007), trunk(7, "e2", {"o1"}, 40007)},
         {},
         {{7, 40007}},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1"}, {7, ip_of(198, 18, 0, 2), 40007, 1234u, "o2"}},
         0},
        {"an origin whose key is gone is not received from; the session stays", "e1",
         {trunk(7, "e1", {"o1", "gone"}, 40007)},
         {},
         {{7, 40007}},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1"}},
         0},
        {"an origin with two SSRCs: the flow takes any", "e1",
         {trunk(7, "e1", {"o3"}, 40007)},
         {},
         {{7, 40007}},
         {{7, ip_of(198, 18, 0, 9), 40007, std::nullopt, "o3"}},
         0},
        {"a middle tier receives from the origin and sends to the leaf", "m1",
         {trunk(7, "m1", {"o1"}, 40007), trunk(7, "e2", {"m1"}, 40007)},
         {{7, ip_of(198, 18, 0, 4), 40007, "e2"}},
         {{7, 40007}},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1"}},
         0},
        {"nothing is sent to an edge whose key is gone", "o1", {trunk(7, "gone", {"o1"}, 40007)}, {}, {}, {}, 0},
        {"a relay not named does nothing", "e2", {trunk(7, "e1", {"o1"}, 40007)}, {}, {}, {}, 0},
        {"an edge without a usable address: a problem, nothing sent", "o1",
         {trunk(7, "bad", {"o1"}, 40007)}, {}, {}, {}, 1},
        {"port 0: a problem", "e1", {trunk(7, "e1", {"o1"}, 0)}, {}, {}, {}, 1},
        {"a trunk naming its edge as origin receives from the others only", "e1",
         {trunk(7, "e1", {"e1", "o2"}, 40007)},
         {},
         {{7, 40007}},
         {{7, ip_of(198, 18, 0, 2), 40007, 1234u, "o2"}},
         0},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const trunk_plan p = plan_trunks(r.self, live, r.trunks, any_peer);
        EXPECT_EQ(p.sends, r.sends);
        EXPECT_EQ(p.sessions, r.sessions);
        EXPECT_EQ(p.flows, r.flows);
        EXPECT_EQ(p.problems.size(), r.problems);
    }
}

// The family of each (origin, edge) pair, as both sides compute it from the
// two records (docs/fleet.md "Trunks over IPv6").
TEST(TrunkPlan, the_edge_s_trunk_family_decides_and_both_sides_agree) {
    const std::map<std::string, relay_record> live = {
        {"o1", rec6("o1", "origin", "198.18.0.1", "2001:db8::1", "ipv4", {{7, {1234}}})},
        {"o2", rec6("o2", "origin", "198.18.0.2", "2001:db8::2", "ipv4", {{7, {1234}}})},
        {"o4", rec6("o4", "origin", "198.18.0.8", "", "ipv4", {{7, {1234}}})},   // IPv4 only
        {"e4", rec6("e4", "edge", "198.18.0.3", "2001:db8::3", "ipv4")},
        {"e6", rec6("e6", "edge", "198.18.0.4", "2001:db8::4", "ipv6")},
        {"ea", rec6("ea", "edge", "198.18.0.5", "2001:db8::5", "auto")},
        {"e6bad", rec6("e6bad", "edge", "198.18.0.6", "not-an-address", "ipv6")},
        {"ea4", rec6("ea4", "edge", "198.18.0.7", "", "auto")},   // auto without IPv6: IPv4
        // A NUL inside the record's address: inet_pton would stop there.
        {"e6nul", rec6("e6nul", "edge", "198.18.0.9", std::string("2001:db8::9\0junk", 16), "ipv6")},
        {"e4nul", rec6("e4nul", "edge", std::string("198.18.0.10\0junk", 16), "", "ipv4")},
    };
    struct row {
        const char* what;
        std::string self;
        std::vector<trunk_record> trunks;
        std::vector<trunk_send> sends;
        std::vector<trunk_flow> flows;
        size_t problems;
    };
    auto send6 = [](uint32_t s, const char* a, const char* edge) { return trunk_send{s, 0, 40007, edge, v6(a)}; };
    auto flow6 = [](uint32_t s, const char* a, const char* origin) {
        return trunk_flow{s, 0, 40007, 1234u, origin, v6(a)};
    };
    const row rows[] = {
        {"ipv4 edge: IPv4 though both have IPv6", "o1", {trunk(7, "e4", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e4"}}, {}, 0},
        {"ipv4 edge takes the IPv4 flow", "e4", {trunk(7, "e4", {"o1"}, 40007)}, {},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1"}}, 0},
        {"ipv6 edge: the origin sends to its IPv6 address", "o1", {trunk(7, "e6", {"o1"}, 40007)},
         {send6(7, "2001:db8::4", "e6")}, {}, 0},
        {"ipv6 edge takes IPv6 flows from both origins", "e6", {trunk(7, "e6", {"o1", "o2"}, 40007)}, {},
         {flow6(7, "2001:db8::1", "o1"), flow6(7, "2001:db8::2", "o2")}, 0},
        {"ipv6 edge, an IPv4-only origin: a problem on the edge, the other origin served", "e6",
         {trunk(7, "e6", {"o1", "o4"}, 40007)}, {}, {flow6(7, "2001:db8::1", "o1")}, 1},
        {"... and the IPv4-only origin sends nothing", "o4", {trunk(7, "e6", {"o4"}, 40007)}, {}, {}, 1},
        {"ipv6 edge whose IPv6 address is unusable: a problem", "o1", {trunk(7, "e6bad", {"o1"}, 40007)}, {}, {}, 1},
        {"ipv6 edge whose IPv6 address has a NUL inside: a problem", "o1", {trunk(7, "e6nul", {"o1"}, 40007)}, {}, {}, 1},
        {"ipv4 edge whose IPv4 address has a NUL inside: a problem", "o1", {trunk(7, "e4nul", {"o1"}, 40007)}, {}, {}, 1},
        {"auto, both dual stack: IPv6 (origin side)", "o2", {trunk(7, "ea", {"o2"}, 40007)},
         {send6(7, "2001:db8::5", "ea")}, {}, 0},
        {"auto, mixed origins: one IPv6 flow, one IPv4 flow into one session", "ea",
         {trunk(7, "ea", {"o1", "o4"}, 40007)}, {},
         {flow6(7, "2001:db8::1", "o1"), {7, ip_of(198, 18, 0, 8), 40007, 1234u, "o4"}}, 0},
        {"auto, an IPv4-only origin sends over IPv4", "o4", {trunk(7, "ea", {"o4"}, 40007)},
         {{7, ip_of(198, 18, 0, 5), 40007, "ea"}}, {}, 0},
        {"auto, an edge without IPv6: IPv4", "o1", {trunk(7, "ea4", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 7), 40007, "ea4"}}, {}, 0},
        // Its own record says which sessions it carries on which port (a
        // trunk goes only to the session's port): until it is in the view,
        // an origin sends nothing, over either family.
        {"an origin not in the view yet waits for its record, over IPv4", "o9", {trunk(7, "e4", {"o9"}, 40007)}, {},
         {}, 0},
        {"... and over IPv6", "o9", {trunk(7, "e6", {"o9"}, 40007)}, {}, {}, 0},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const trunk_plan p = plan_trunks(r.self, live, r.trunks, any_peer);
        EXPECT_EQ(p.sends, r.sends);
        EXPECT_EQ(p.flows, r.flows);
        EXPECT_EQ(p.problems.size(), r.problems);
        for (const auto& pr : p.problems) EXPECT_NE(pr.find("trunk "), std::string::npos) << pr;
    }
    // Both sides agree on every pair: what a source sends to is what its edge
    // takes, family and addresses.
    for (const char* o : {"o1", "o2", "o4"})
        for (const char* e : {"e4", "e6", "ea", "ea4"}) {
            SCOPED_TRACE(std::string(o) + " -> " + e);
            const std::vector<trunk_record> t = {trunk(7, e, {o}, 40007)};
            const trunk_plan src = plan_trunks(o, live, t, any_peer), dst = plan_trunks(e, live, t, any_peer);
            ASSERT_EQ(src.sends.size(), dst.flows.size());
            if (src.sends.empty()) continue;
            EXPECT_EQ(src.sends[0].ip6.has_value(), dst.flows[0].ip6.has_value()) << "one family";
        }
}

// [fleet] trunk_peers (docs/fleet.md "Who a trunk may reach"): the networks
// read from the profile, one table.
TEST(PeerNets, networks_parse_and_contain_and_what_is_not_one_says_why) {
    struct row {
        const char* text;
        const char* error;   // nullptr: parses
        std::vector<std::string> inside, outside;
    };
    const row rows[] = {
        {"10.20.0.0/16", nullptr, {"10.20.0.1", "10.20.255.254"}, {"10.21.0.1", "2001:db8::1"}},
        {"198.18.0.7/32", nullptr, {"198.18.0.7"}, {"198.18.0.8"}},
        {"0.0.0.0/0", nullptr, {"203.0.113.9", "10.0.0.1"}, {"2001:db8::1"}},
        {"2001:db8:77::/48", nullptr, {"2001:db8:77::3", "2001:db8:77:ffff::1"}, {"2001:db8:78::1", "10.20.0.1"}},
        {"2001:db8:77::80/121", nullptr, {"2001:db8:77::80", "2001:db8:77::ff"}, {"2001:db8:77::7f"}},
        {"::/0", nullptr, {"2001:db8::1", "fe80::1"}, {"10.0.0.1"}},
        {"10.20.0.1/16", "host bits set: the network is 10.20.0.0/16", {}, {}},
        {"2001:db8:77::1/48", "host bits set: the network is 2001:db8:77::/48", {}, {}},
        {"10.20.0.0", "not a network: ADDRESS/PREFIX", {}, {}},
        {"10.20.0.0/33", "prefix length 33 is past 32 (IPv4)", {}, {}},
        {"2001:db8::/129", "prefix length 129 is past 128 (IPv6)", {}, {}},
        {"10.20.0.0/-1", "prefix length \"-1\" is not a number", {}, {}},
        {"10.20.0.0/", "prefix length \"\" is not a number", {}, {}},
        {"10.20.0.0/1000", "prefix length \"1000\" is not a number", {}, {}},
        {"relays/16", "\"relays\" is not an IPv4 or IPv6 address", {}, {}},
        {"fe80::%eth0/64", "an IPv6 zone", {}, {}},
        {"10.20.300.0/24", "\"10.20.300.0\" is not an IPv4 or IPv6 address", {}, {}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.text);
        std::string why;
        const auto n = parse_peer_net(r.text, &why);
        if (r.error != nullptr) {
            EXPECT_FALSE(n.has_value());
            EXPECT_NE(why.find(r.error), std::string::npos) << why;
            continue;
        }
        ASSERT_TRUE(n.has_value()) << why;
        EXPECT_EQ(format_peer_net(*n), r.text) << "formats as written";
        peer_allowlist a;
        a.nets = {*n};
        for (const auto& ip : r.inside) {
            if (auto v4 = parse_ipv4(ip)) EXPECT_TRUE(a.allows(*v4)) << ip;
            else EXPECT_TRUE(a.allows(v6(ip.c_str()))) << ip;
        }
        for (const auto& ip : r.outside) {
            if (auto v4 = parse_ipv4(ip)) EXPECT_FALSE(a.allows(*v4)) << ip;
            else EXPECT_FALSE(a.allows(v6(ip.c_str()))) << ip;
        }
    }
    EXPECT_FALSE(peer_allowlist{}.allows(parse_ipv4("198.18.0.1").value())) << "an empty list allows nothing";
    EXPECT_EQ(peer_allowlist{}.describe(), "nothing");
    EXPECT_EQ(nets({"10.20.0.0/16", "2001:db8:77::/48"}).describe(), "10.20.0.0/16, 2001:db8:77::/48");
}

// What the allowlist and the leases do to the plan: a fake edge record (a
// victim's address) gets nothing sent; a fake origin record feeds nothing;
// a record without a lease is set aside; each refusal says its reason.
// One row of the plan tables below: what `self` does with `trunks`, inside
// `peers`, with trunk authentication on or off.
struct plan_row {
    const char* what;
    std::string self;
    peer_allowlist peers;
    std::vector<trunk_record> trunks;
    std::vector<trunk_send> sends;
    std::map<uint32_t, uint16_t> sessions;
    std::vector<trunk_flow> flows;
    std::vector<trunk_refusal_reason> refused;
    bool auth = false;
};
// Checks the row's plan; returns the lines of its refusals.
std::vector<std::string> expect_plan(const plan_row& r, const std::map<std::string, relay_record>& live,
                                     const std::map<std::string, relay_record>& unleased) {
    SCOPED_TRACE(r.what);
    const trunk_plan p = plan_trunks(r.self, live, r.trunks, r.peers, unleased, r.auth);
    EXPECT_EQ(p.sends, r.sends);
    EXPECT_EQ(p.sessions, r.sessions);
    EXPECT_EQ(p.flows, r.flows);
    std::vector<trunk_refusal_reason> got;
    std::vector<std::string> lines;
    for (const auto& x : p.refused) {
        got.push_back(x.reason);
        lines.push_back(x.what);
        EXPECT_NE(x.what.find("trunk of session "), std::string::npos) << x.what;
    }
    EXPECT_EQ(got, r.refused);
    EXPECT_TRUE(p.problems.empty());
    return lines;
}

TEST(TrunkPlan, trunk_peers_and_leases_bound_where_trunks_go_and_come_from) {
    const std::map<std::string, relay_record> live = {
        {"o1", rec6("o1", "origin", "198.18.0.1", "2001:db8:77::1", "ipv4", {{7, {1234}}})},
        {"o2", rec("o2", "origin", "198.18.0.2", {{7, {1234}}})},
        {"e1", rec6("e1", "edge", "198.18.0.3", "2001:db8:77::3", "ipv4")},
        {"e6", rec6("e6", "edge", "198.18.0.4", "2001:db8:77::4", "ipv6")},
        {"victim", rec("victim", "edge", "203.0.113.9")},                        // a fake edge record
        {"victim6", rec6("victim6", "edge", "198.18.0.5", "2001:db8:99::9", "ipv6")},
        {"evil", rec("evil", "origin", "198.51.100.7", {{7, {1234}}})},          // a fake origin record
        {"evil6", rec6("evil6", "origin", "198.18.0.6", "2001:db8:99::6", "ipv4", {{7, {1234}}})},
    };
    const std::map<std::string, relay_record> unleased = {
        {"ghost", rec("ghost", "edge", "198.18.0.50")},   // inside the list, but no lease
        {"ghost-o", rec("ghost-o", "origin", "198.18.0.51", {{7, {1234}}})},
    };
    const peer_allowlist relays = nets({"198.18.0.0/24", "2001:db8:77::/48"});
    using rr = trunk_refusal_reason;
    const plan_row rows[] = {
        {"an origin sends to an edge inside the list", "o1", relays, {trunk(7, "e1", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e1"}}, {}, {}, {}},
        {"... and to no edge outside it: refused, the other trunk unaffected", "o1", relays,
         {trunk(7, "e1", {"o1"}, 40007), trunk(7, "victim", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e1"}}, {}, {}, {rr::edge_outside_trunk_peers}},
        {"an IPv6 edge address outside the IPv6 networks: refused", "o1", relays,
         {trunk(7, "victim6", {"o1"}, 40007)}, {}, {}, {}, {rr::edge_outside_trunk_peers}},
        {"an IPv6 edge inside: sent over IPv6", "o1", relays, {trunk(7, "e6", {"o1"}, 40007)},
         {{7, 0, 40007, "e6", v6("2001:db8:77::4")}}, {}, {}, {}},
        {"an IPv4-only list refuses the IPv6 trunk", "o1", nets({"198.18.0.0/24"}), {trunk(7, "e6", {"o1"}, 40007)},
         {}, {}, {}, {rr::edge_outside_trunk_peers}},
        {"an edge takes no flow from an origin outside the list, only the one inside", "e1", relays,
         {trunk(7, "e1", {"o1", "evil"}, 40007)}, {}, {{7, 40007}},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1"}}, {rr::origin_outside_trunk_peers}},
        {"a record whose every origin is outside: no session, no flow", "e1", relays,
         {trunk(8, "e1", {"evil"}, 40008)}, {}, {}, {}, {rr::origin_outside_trunk_peers}},
        {"an IPv6 origin outside the IPv6 networks", "e6", relays, {trunk(7, "e6", {"o1", "evil6"}, 40007)}, {},
         {{7, 40007}}, {{7, 0, 40007, 1234u, "o1", v6("2001:db8:77::1")}}, {rr::origin_outside_trunk_peers}},
        {"an edge whose record has no lease: nothing sent though inside the list", "o1", relays,
         {trunk(7, "ghost", {"o1"}, 40007)}, {}, {}, {}, {rr::relay_without_lease}},
        {"an origin whose record has no lease: no flow, no session", "e1", relays,
         {trunk(7, "e1", {"ghost-o"}, 40007)}, {}, {}, {}, {rr::relay_without_lease}},
        {"an origin not live (no record at all) keeps the session, as before", "e1", relays,
         {trunk(7, "e1", {"gone"}, 40007)}, {}, {{7, 40007}}, {}, {}},
        {"an empty list (never set): nothing goes", "o1", peer_allowlist{}, {trunk(7, "e1", {"o1"}, 40007)}, {}, {}, {},
         {rr::edge_outside_trunk_peers}},
        {"... and nothing comes", "e1", peer_allowlist{}, {trunk(7, "e1", {"o1", "o2"}, 40007)}, {}, {}, {},
         {rr::origin_outside_trunk_peers, rr::origin_outside_trunk_peers}},
    };
    for (const auto& r : rows) expect_plan(r, live, unleased);
    // The line says which address and which list.
    const auto p = plan_trunks("o1", live, {trunk(7, "victim", {"o1"}, 40007)}, relays, unleased);
    ASSERT_EQ(p.refused.size(), 1u);
    EXPECT_EQ(p.refused[0].what, "trunk of session 7 to victim: edge address 203.0.113.9 is outside fleet.trunk_peers "
                                 "(198.18.0.0/24, 2001:db8:77::/48)");
}

// Trunk authentication (docs/fleet.md "Trunk authentication"): both ends
// authenticate or neither does; the edge's flow carries the origin's epoch.
relay_record authed(relay_record r, const std::string& epoch) {
    r.trunk_auth = true;
    r.trunk_epoch = epoch;
    return r;
}
TEST(TrunkPlan, trunk_auth_pairs_relays_that_agree_and_refuses_the_others) {
    const std::map<std::string, relay_record> live = {
        {"o1", authed(rec("o1", "origin", "198.18.0.1", {{7, {1234}}}), "0123456789abcdef")},
        {"o2", authed(rec("o2", "origin", "198.18.0.2", {{7, {1234}}}), "fedcba9876543210")},
        {"plain-o", rec("plain-o", "origin", "198.18.0.6", {{7, {1234}}})},          // an older relay: no fields
        {"no-epoch", authed(rec("no-epoch", "origin", "198.18.0.7", {{7, {1234}}}), "")},
        {"bad-epoch", authed(rec("bad-epoch", "origin", "198.18.0.8", {{7, {1234}}}), "0123456789ABCDEF")},
        {"e1", authed(rec("e1", "edge", "198.18.0.3"), "1111111111111111")},
        {"plain-e", rec("plain-e", "edge", "198.18.0.4")},
        // An edge says trunk_auth but no epoch: it sends nothing itself,
        // so an origin needs only its trunk_auth.
        {"e-noepoch", authed(rec("e-noepoch", "edge", "198.18.0.5"), "")},
    };
    using rr = trunk_refusal_reason;
    const uint64_t o1_epoch = 0x0123456789abcdefULL, o2_epoch = 0xfedcba9876543210ULL;
    const plan_row rows[] = {
        {"auth on: an origin sends to an edge that authenticates", "o1", any_peer,
         {trunk(7, "e1", {"o1"}, 40007), trunk(7, "e-noepoch", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e1"}, {7, ip_of(198, 18, 0, 5), 40007, "e-noepoch"}}, {}, {}, {}, true},
        {"auth on: ... and to none that does not (refused, the other unaffected)", "o1", any_peer,
         {trunk(7, "e1", {"o1"}, 40007), trunk(7, "plain-e", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e1"}}, {}, {}, {rr::trunk_auth_mismatch}, true},
        {"auth on: the edge's flows carry each origin's epoch", "e1", any_peer, {trunk(7, "e1", {"o1", "o2"}, 40007)}, {},
         {{7, 40007}},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1", std::nullopt, o1_epoch},
          {7, ip_of(198, 18, 0, 2), 40007, 1234u, "o2", std::nullopt, o2_epoch}},
         {}, true},
        {"auth on: no flow from an origin that does not authenticate, the other stays", "e1", any_peer,
         {trunk(7, "e1", {"o1", "plain-o"}, 40007)}, {}, {{7, 40007}},
         {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1", std::nullopt, o1_epoch}}, {rr::trunk_auth_mismatch}, true},
        {"auth on: an origin without an epoch or with one spelt otherwise: no flow, no session", "e1", any_peer,
         {trunk(7, "e1", {"no-epoch", "bad-epoch"}, 40007)}, {}, {}, {},
         {rr::trunk_auth_mismatch, rr::trunk_auth_mismatch}, true},
        {"auth off: plain relays as before, no epoch in the flow", "plain-e", any_peer,
         {trunk(7, "plain-e", {"plain-o"}, 40007)}, {}, {{7, 40007}},
         {{7, ip_of(198, 18, 0, 6), 40007, 1234u, "plain-o"}}, {}, false},
        {"auth off: no flow from an origin that authenticates", "plain-e", any_peer,
         {trunk(7, "plain-e", {"o1", "plain-o"}, 40007)}, {}, {{7, 40007}},
         {{7, ip_of(198, 18, 0, 6), 40007, 1234u, "plain-o"}}, {rr::trunk_auth_mismatch}, false},
        {"auth off: nothing sent to an edge that authenticates", "plain-o", any_peer,
         {trunk(7, "e1", {"plain-o"}, 40007), trunk(7, "plain-e", {"plain-o"}, 40007)},
         {{7, ip_of(198, 18, 0, 4), 40007, "plain-e"}}, {}, {}, {rr::trunk_auth_mismatch}, false},
    };
    for (const auto& r : rows)
        for (const auto& line : expect_plan(r, live, {}))
            EXPECT_TRUE(line.find("trunk_key_file") != std::string::npos ||
                        line.find("trunk_epoch") != std::string::npos)
                << "says what to do: " << line;
    // The line names both sides' settings and the fix.
    const auto p = plan_trunks("e1", live, {trunk(7, "e1", {"plain-o"}, 40007)}, any_peer, {}, true);
    ASSERT_EQ(p.refused.size(), 1u);
    EXPECT_EQ(p.refused[0].what, "trunk of session 7 from plain-o: this relay authenticates its trunks ([fleet] "
                                 "trunk_key_file) but plain-o's record says trunk_auth false: give every relay of the "
                                 "fleet the same [fleet] trunk_key_file");
    // An origin restarted (a new epoch in its record): a new plan, the
    // flow's epoch the new one; the same record again: the same plan.
    auto moved = live;
    moved["o1"].trunk_epoch = "0123456789abcdee";
    const std::vector<trunk_record> t = {trunk(7, "e1", {"o1"}, 40007)};
    const trunk_plan before = plan_trunks("e1", live, t, any_peer, {}, true);
    const trunk_plan after = plan_trunks("e1", moved, t, any_peer, {}, true);
    EXPECT_FALSE(before == after);
    ASSERT_EQ(after.flows.size(), 1u);
    EXPECT_EQ(after.flows[0].epoch, 0x0123456789abcdeeULL);
    EXPECT_TRUE(before == plan_trunks("e1", live, t, any_peer, {}, true));
}

// ---------------------------------------------------------------------------
// Against etcd: relays with their state, registrar, watch and reconciler.

std::unique_ptr<etcd_server>& etcd_slot() {
    static std::unique_ptr<etcd_server> e;
    return e;
}
etcd_server& trunk_etcd() {
    auto& e = etcd_slot();
    if (!e) e = std::make_unique<etcd_server>();
    return *e;
}
class trunk_env : public ::testing::Environment {
public:
    void TearDown() override { etcd_slot().reset(); }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new trunk_env);

control::profile relay_profile(uint32_t own_ip, std::optional<control::ipv6_addr> own_ip6 = std::nullopt) {
    control::profile p;
    control::port_config pc;
    pc.name = "lan0";
    pc.device = "net_null0";
    pc.ipv4 = own_ip;   // 198.18.0.x/24
    pc.prefix_len = 24;
    pc.gateway = ip_of(198, 18, 0, 254);
    pc.ipv6 = own_ip6;  // 2001:db8::x/64
    pc.prefix6_len = 64;
    pc.line_rate_mbps = 10000;
    p.ports.push_back(pc);
    p.dataplane.fanout_lcores = {1};
    p.limits.max_neighbours = 256;
    p.limits.max_speakers = 64;
    p.limits.max_listeners = 1000;
    p.limits.max_listeners_per_session = 1000;
    p.limits.fanout_pps_per_core = 100000000;
    return p;
}

// The fleet's trunk key every relay of these tests holds (a profile's
// fleet.trunk_key); nullptr: a relay with allow_unauthenticated_trunks.
std::shared_ptr<const control::secure_bytes> fleet_secret() {
    static const auto k = [] {
        control::secure_bytes b(trunk_secret_len);
        for (size_t i = 0; i < b.size(); ++i) b.data()[i] = static_cast<uint8_t>(0xa0 + i);
        return std::make_shared<const control::secure_bytes>(std::move(b));
    }();
    return k;
}

// A relay as stentord assembles it for the fleet, minus ports and workers.
// Its state first (relay_core): what the reconciler acts on.
struct relay_core {
    control::profile prof;
    std::unique_ptr<dp::dp_neigh[]> neigh;
    std::vector<dp::dp_policer> policers;
    dp::dp_shared shared;
    std::unique_ptr<control::admission> adm;
    std::unique_ptr<control::relay_state> st;

    relay_core(uint32_t own_ip, std::optional<control::ipv6_addr> own_ip6 = std::nullopt, unsigned max_speakers = 64)
        : prof(relay_profile(own_ip, own_ip6)) {
        prof.limits.max_speakers = max_speakers;
        neigh.reset(new dp::dp_neigh[prof.limits.max_neighbours]);
        shared.neigh = neigh.get();
        shared.nb_neigh = prof.limits.max_neighbours;
        policers.resize(prof.limits.max_speakers);
        shared.policers = policers.data();
        shared.nb_policers = prof.limits.max_speakers;
        st = std::make_unique<control::relay_state>(prof, shared, 1);
        adm = std::make_unique<control::admission>(control::admission_config_from(prof, {}));
        st->set_admission(adm.get());
    }
    ~relay_core() { st->set_admission(nullptr); }
    // Session 7 on UDP 40007, its speaker 198.18.0.10:5004 with SSRC 1234:
    // what an origin carries in most of these tests.
    void session7() {
        control::session_params sp;
        sp.id = 7;
        sp.udp_port = 40007;
        st->session_create(sp);
        st->speaker_add(7, ip_of(198, 18, 0, 10), 5004, 1234u);
    }
    // The SRTP key ids on each trunk flow's speaker of session s, by speaker
    // address and port ("198.18.0.1:40007" -> {"trunk-0123456789abcdef"}).
    std::map<std::string, std::vector<std::string>> flow_keys(uint32_t s) const {
        std::map<std::string, std::vector<std::string>> out;
        if (auto v = st->session(s))
            for (const auto& sp : v->speakers)
                if (sp.trunk) {
                    auto& ids = out[control::format_peer(sp.ip, sp.ip6, sp.port)];
                    for (const auto& k : sp.srtp_keys) {
                        EXPECT_EQ(k.suite, srtp::suite::aead_aes_128_gcm);
                        EXPECT_EQ(k.mki.len, 0u) << "no MKI";
                        ids.push_back(k.id);
                    }
                }
        return out;
    }
};

struct fleet_relay : relay_core {
    std::string id;
    std::unique_ptr<registrar> reg;
    std::unique_ptr<control::trunk_reconciler> rec;
    std::unique_ptr<trunk_watch> watch;
    std::shared_ptr<const control::secure_bytes> secret;   // trunk authentication (nullptr: off)
    uint64_t epoch = draw_trunk_epoch();                   // this run's, as stentord draws it

    // own_ip6: a dual-stack relay, advertising it, its trunks of `family`.
    fleet_relay(const etcd_server& e, const std::string& prefix, std::string relay_id, const std::string& role,
                uint32_t own_ip, std::chrono::seconds idle = std::chrono::seconds(0),
                std::optional<control::ipv6_addr> own_ip6 = std::nullopt, const std::string& family = "ipv4",
                const peer_allowlist& peers = nets({"198.18.0.0/24", "2001:db8::/64"}),
                std::shared_ptr<const control::secure_bytes> key = fleet_secret())
        : relay_core(own_ip, own_ip6), id(std::move(relay_id)), secret(std::move(key)) {
        if (secret) st->set_trunk_auth(true);   // as fleet_trunks_start does
        registrar_options ro;
        ro.etcd = e.endpoints();
        ro.prefix = prefix;
        ro.relay_id = id;
        ro.lease_ttl_s = 1;
        ro.refresh_ms = 100;
        ro.min_put_ms = 200;
        const std::string addr = control::format_ipv4(own_ip);
        const std::string addr6 = own_ip6 ? control::format_ipv6(*own_ip6) : std::string();
        reg = std::make_unique<registrar>(ro, [this, role, addr, addr6, family] {
            relay_record r;
            r.role = role;
            r.addresses = {addr};
            if (!addr6.empty()) r.addresses6 = {addr6};
            r.trunk_family = family;
            r.trunk_auth = secret != nullptr;
            if (secret) r.trunk_epoch = format_trunk_epoch(epoch);
            r.slots = 1000;
            r.listeners = st->nb_listeners();
            control::fleet_sessions_of(*st, r);
            return r;
        });
        control::trunk_auth_config auth;
        if (secret) auth = {secret, id, epoch};
        rec = std::make_unique<control::trunk_reconciler>(
            *st, idle, [this](uint32_t s) { return watch->delete_trunk(s, id); }, std::move(auth));
        trunk_watch_options wo;
        wo.trunk_auth = secret != nullptr;
        wo.etcd = e.endpoints();
        wo.prefix = prefix;
        wo.relay_id = id;
        wo.retry = 200ms;
        wo.peers = peers;
        watch = std::make_unique<trunk_watch>(wo, [this](const trunk_plan& p) { rec->apply(p); });
        reg->start();
        watch->start();
    }
    ~fleet_relay() {
        watch->stop();
        reg->stop(true);
    }
    std::optional<control::session_view> session(uint32_t id_) const { return st->session(id_); }
    std::vector<control::listener_view> listeners(uint32_t s) const {
        if (!st->session(s)) return {};
        return st->listeners(s, 0, 100);
    }
    uint64_t refused(trunk_refusal_reason r) const { return rec->stats().refused[static_cast<size_t>(r)]; }
    bool sends_to(uint32_t s, uint32_t ip, unsigned port) const {
        for (const auto& l : listeners(s))
            if (!l.ip6 && l.ip == ip && l.port == port && l.tier == 0) return true;
        return false;
    }
    bool sends_to6(uint32_t s, const control::ipv6_addr& ip6, unsigned port) const {
        for (const auto& l : listeners(s))
            if (l.ip6 == ip6 && l.port == port && l.tier == 0) return true;
        return false;
    }
    // The IPv6 trunk flows of session s: (address, port, ssrc).
    std::vector<std::tuple<control::ipv6_addr, unsigned, std::optional<uint32_t>>> flows6(uint32_t s) const {
        std::vector<std::tuple<control::ipv6_addr, unsigned, std::optional<uint32_t>>> out;
        if (auto v = st->session(s))
            for (const auto& sp : v->speakers)
                if (sp.trunk && sp.ip6) out.emplace_back(*sp.ip6, sp.port, sp.ssrc);
        std::sort(out.begin(), out.end());
        return out;
    }
    // The trunk flows of session s: (ip, port, ssrc).
    std::vector<std::tuple<uint32_t, unsigned, std::optional<uint32_t>>> flows(uint32_t s) const {
        std::vector<std::tuple<uint32_t, unsigned, std::optional<uint32_t>>> out;
        if (auto v = st->session(s))
            for (const auto& sp : v->speakers)
                if (sp.trunk && !sp.ip6) out.emplace_back(sp.ip, sp.port, sp.ssrc);
        std::sort(out.begin(), out.end());
        return out;
    }
};

std::string fresh_prefix() {
    static int n = 0;
    return "/tr" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

TEST(Trunks, watch_to_trunk_lifecycle_two_origins_a_middle_tier_and_back_to_nothing) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    const uint32_t o1_ip = ip_of(198, 18, 0, 1), o2_ip = ip_of(198, 18, 0, 2), e1_ip = ip_of(198, 18, 0, 3),
                   e2_ip = ip_of(198, 18, 0, 4);
    auto o1 = std::make_unique<fleet_relay>(e, p, "o1", "origin", o1_ip);
    auto o2 = std::make_unique<fleet_relay>(e, p, "o2", "origin", o2_ip);
    fleet_relay e1(e, p, "e1", "edge", e1_ip);
    fleet_relay e2(e, p, "e2", "edge", e2_ip);
    // Session 7 on both origins, its speaker registered with SSRC 1234.
    for (auto* o : {o1.get(), o2.get()}) o->session7();
    etcd_client c(e.endpoints());
    ASSERT_TRUE(eventually([&] {
        const auto kv = c.get(relay_key(p, "o2"));
        return kv && kv->value.find("[7,40007,[1234]]") != std::string::npos;
    })) << "the origins' records list the session's SSRC";

    // A director's transaction: session 7 to e1 from both origins.
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e1"), trunk(7, "e1", {"o1", "o2"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return o1->sends_to(7, e1_ip, 40007) && o2->sends_to(7, e1_ip, 40007); }))
        << "each origin sends session 7 to e1 as a tier-0 listener";
    EXPECT_TRUE(eventually([&] { return e1.flows(7).size() == 2; }));
    const auto s7 = e1.session(7);
    ASSERT_TRUE(s7.has_value()) << "the edge carries the session";
    EXPECT_EQ(s7->udp_port, 40007u) << "on the same UDP port";
    EXPECT_TRUE(s7->trunk);
    EXPECT_EQ(s7->srtp_ingress, control::srtp_ingress_mode::off) << "ciphertext passes through";
    EXPECT_EQ(s7->srtp_egress, control::srtp_egress_mode::off);
    using fl = std::tuple<uint32_t, unsigned, std::optional<uint32_t>>;
    EXPECT_EQ(e1.flows(7), (std::vector<fl>{{o1_ip, 40007, 1234u}, {o2_ip, 40007, 1234u}}))
        << "one flow per origin, with the speaker's SSRC";
    // Trunk authentication: each flow's speaker holds its origin's key (of
    // that origin's epoch), each origin has set its session's trunk key.
    using keys = std::map<std::string, std::vector<std::string>>;
    EXPECT_TRUE(eventually([&] {
        return e1.flow_keys(7) == keys{{"198.18.0.1:40007", {trunk_key_id(o1->epoch)}},
                                       {"198.18.0.2:40007", {trunk_key_id(o2->epoch)}}};
    })) << "got " << e1.flow_keys(7).size() << " flows";
    EXPECT_EQ(e1.rec->stats().flow_keys, 2u);
    EXPECT_EQ(o1->rec->stats().trunk_keys, 1u) << "the origin's session 7 has its trunk key";
    EXPECT_EQ(o2->rec->stats().trunk_keys, 1u);
    for (auto* o : {o1.get(), o2.get()}) {
        const auto v = o->session(7);
        ASSERT_TRUE(v.has_value());
        ASSERT_EQ(v->trunk_keys.size(), 1u) << o->id;
        EXPECT_EQ(v->trunk_keys[0].id, trunk_key_id(o->epoch)) << "its own epoch's key, the one the edge derives";
        EXPECT_EQ(v->trunk_keys[0].suite, srtp::suite::aead_aes_128_gcm);
    }
    EXPECT_EQ(e1.rec->stats().trunk_keys, 0u) << "the edge sends nothing: no trunk key";
    // The trunk listener is admitted and never shed.
    EXPECT_EQ(o1->st->nb_listeners(), 1u);
    EXPECT_GT(o1->adm->report().used_pps, 0.0) << "admission counts the trunk listener";
    EXPECT_TRUE(o1->st->shed_newest(0, 10).empty()) << "the overload controller's shedding skips it";
    EXPECT_TRUE(o1->sends_to(7, e1_ip, 40007));
    EXPECT_EQ(o1->rec->stats().sends, 1u);

    // A middle tier: e2 takes session 7 from e1, which passes it on.
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e2"), trunk(7, "e2", {"e1"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return e1.sends_to(7, e2_ip, 40007); })) << "e1 sends to e2";
    EXPECT_TRUE(eventually([&] { return e2.flows(7) == std::vector<fl>{{e1_ip, 40007, 1234u}}; }))
        << "e2 takes it from e1, SSRC from e1's record (its trunk flows' SSRC)";
    EXPECT_TRUE(eventually([&] { return e2.flow_keys(7) == keys{{"198.18.0.3:40007", {trunk_key_id(e1.epoch)}}}; }))
        << "the middle tier's key: its own epoch, it protects what it passes on";
    EXPECT_TRUE(eventually([&] { return e1.rec->stats().trunk_keys == 1u; })) << "e1 now sends: its trunk key";
    EXPECT_FALSE(o1->sends_to(7, e2_ip, 40007)) << "the origin is not named by e2's trunk";

    // o2 leaves the registry (a clean stop revokes its lease; a SIGKILL would
    // wait for the TTL): e1 stops taking from it, the o1 flow stays.
    o2.reset();
    EXPECT_TRUE(eventually([&] { return e1.flows(7) == std::vector<fl>{{o1_ip, 40007, 1234u}}; }))
        << "the flow from the origin whose key is gone is removed";
    ASSERT_TRUE(e1.session(7).has_value()) << "the session stays while an origin is live";

    // The trunk keys go: every side undoes what it made.
    c.del(trunk_key(p, 7, "e2"));
    EXPECT_TRUE(eventually([&] { return !e2.session(7).has_value(); })) << "e2 ends its trunk session";
    EXPECT_TRUE(eventually([&] { return !e1.sends_to(7, e2_ip, 40007); }));
    c.del(trunk_key(p, 7, "e1"));
    EXPECT_TRUE(eventually([&] { return !o1->sends_to(7, e1_ip, 40007); })) << "the origin removes its trunk listener";
    EXPECT_TRUE(eventually([&] { return o1->rec->stats().trunk_keys == 0u; })) << "and its session's trunk key";
    EXPECT_TRUE(o1->session(7)->trunk_keys.empty());
    EXPECT_TRUE(eventually([&] { return !e1.session(7).has_value(); })) << "the edge ends the session";
    EXPECT_TRUE(o1->session(7).has_value()) << "the origin's own session is untouched";
    EXPECT_EQ(o1->st->nb_listeners(), 0u);
}

// Trunks over IPv6 against etcd (docs/fleet.md "Trunks over IPv6"): two
// dual-stack origins, an edge with trunk_family "ipv6": each origin sends to
// the edge's IPv6 address as a tier-0 IPv6 trunk listener (admitted, never
// shed, not journaled), the edge takes IPv6 flows; when the edge's record
// says "ipv4" instead, every side moves the trunk to IPv4.
TEST(Trunks, ipv6_trunks_from_two_origins_and_back_to_ipv4_when_the_edge_says_so) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    const auto o1_6 = v6("2001:db8::1"), o2_6 = v6("2001:db8::2"), e1_6 = v6("2001:db8::3");
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1), 0s, o1_6, "auto");
    fleet_relay o2(e, p, "o2", "origin", ip_of(198, 18, 0, 2), 0s, o2_6, "auto");
    auto e1 = std::make_unique<fleet_relay>(e, p, "e1", "edge", ip_of(198, 18, 0, 3), 0s, e1_6, "ipv6");
    for (auto* o : {&o1, &o2}) {
        control::session_params sp;
        sp.id = 7;
        sp.udp_port = 40007;
        o->st->session_create(sp);
        control::speaker_spec spk{0, 5004, 1234u, v6("2001:db8::10")};   // the speaker on IPv6 too
        o->st->speaker_add(7, spk);
    }
    etcd_client c(e.endpoints());
    ASSERT_TRUE(eventually([&] {
        const auto kv = c.get(relay_key(p, "e1"));
        const auto k2 = c.get(relay_key(p, "o2"));
        return kv && kv->value.find(R"("addresses6":["2001:db8::3"])") != std::string::npos &&
               kv->value.find(R"("trunk_family":"ipv6")") != std::string::npos && k2 &&
               k2->value.find("[7,40007,[1234]]") != std::string::npos;
    })) << "the records carry the IPv6 addresses and the family";

    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e1"), trunk(7, "e1", {"o1", "o2"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return o1.sends_to6(7, e1_6, 40007) && o2.sends_to6(7, e1_6, 40007); }))
        << "each origin sends to the edge's IPv6 address";
    using fl6 = std::tuple<control::ipv6_addr, unsigned, std::optional<uint32_t>>;
    EXPECT_TRUE(eventually([&] { return e1->flows6(7) == std::vector<fl6>{{o1_6, 40007, 1234u}, {o2_6, 40007, 1234u}}; }))
        << "the edge takes IPv6 flows from both origins, with the SSRC";
    EXPECT_TRUE(e1->flows(7).empty()) << "and no IPv4 flow";
    EXPECT_FALSE(o1.sends_to(7, ip_of(198, 18, 0, 3), 40007));
    EXPECT_GT(o1.adm->report().used_pps, 0.0) << "admission counts the IPv6 trunk listener";
    EXPECT_TRUE(o1.st->shed_newest(0, 10).empty()) << "never shed";
    EXPECT_TRUE(o1.st->image().listeners.empty()) << "not journaled";

    // The edge restarts as "ipv4": the sources and the edge move the trunk.
    e1.reset();
    e1 = std::make_unique<fleet_relay>(e, p, "e1", "edge", ip_of(198, 18, 0, 3), 0s, e1_6, "ipv4");
    EXPECT_TRUE(eventually([&] {
        return o1.sends_to(7, ip_of(198, 18, 0, 3), 40007) && !o1.sends_to6(7, e1_6, 40007);
    })) << "IPv4 now, the IPv6 trunk listener removed";
    using fl = std::tuple<uint32_t, unsigned, std::optional<uint32_t>>;
    EXPECT_TRUE(eventually([&] {
        return e1->flows(7) == std::vector<fl>{{ip_of(198, 18, 0, 1), 40007, 1234u}, {ip_of(198, 18, 0, 2), 40007, 1234u}};
    }));
    EXPECT_TRUE(e1->flows6(7).empty());
    c.del(trunk_key(p, 7, "e1"));
    EXPECT_TRUE(eventually([&] { return o1.st->nb_listeners() == 0 && o2.st->nb_listeners() == 0; }));
}

// A relay's trunk watch whose etcd member goes silent (a proxy that stops
// passing bytes and keeps the connection: a member cut off from its
// cluster) ends after watch_idle without a word and reads the whole view
// again through the next endpoint, so a relay that registered meanwhile is
// seen. Before, the watch waited on the silent member for ever and the
// relay's trunks froze at the last plan.
TEST(Trunks, a_watch_gone_silent_is_read_again_through_the_next_endpoint) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    test::tcp_proxy px(e.client_port());
    auto registered = [&](const std::string& id) {
        registrar_options ro;
        ro.etcd = e.endpoints();
        ro.prefix = p;
        ro.relay_id = id;
        ro.lease_ttl_s = 2;
        ro.refresh_ms = 100;
        auto reg = std::make_unique<registrar>(ro, [] {
            relay_record r;
            r.role = "edge";
            r.addresses = {"198.18.0.30"};
            r.slots = 10;
            return r;
        });
        reg->start();
        return reg;
    };
    trunk_watch_options wo;
    wo.etcd = etcd_endpoints({px.url(), e.url()});   // the proxy first: the watch starts there
    wo.prefix = p;
    wo.relay_id = "w1";
    wo.retry = 200ms;
    wo.watch_idle = 1000ms;
    trunk_watch w(wo, [](const trunk_plan&) {});
    w.start();
    auto r1 = registered("e1");
    ASSERT_TRUE(eventually([&] { return w.status().relays == 1; })) << w.status().last_error;
    const uint64_t restarts = w.status().watch_restarts;
    px.freeze(true);
    auto r2 = registered("e2");
    EXPECT_TRUE(eventually([&] { return w.status().relays == 2; }, 8s))
        << "the relay registered after the watch's member went silent is seen; last error: " << w.status().last_error;
    EXPECT_GT(w.status().watch_restarts, restarts);
    EXPECT_NE(w.status().last_error.find("no event and no progress notification"), std::string::npos)
        << w.status().last_error;
    w.stop();
    px.freeze(false);
    r1->stop(true);
    r2->stop(true);
}

TEST(Trunks, an_edge_that_already_carries_the_session_uses_it_and_never_ends_it) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    fleet_relay e1(e, p, "e1", "edge", ip_of(198, 18, 0, 3));
    control::session_params sp;
    sp.id = 9;
    sp.udp_port = 40009;
    o1.st->session_create(sp);
    o1.st->speaker_add(9, ip_of(198, 18, 0, 10), 5004, 77u);
    e1.st->session_create(sp);   // the API made it on the edge too
    etcd_client c(e.endpoints());
    ASSERT_TRUE(eventually([&] {
        const auto kv = c.get(relay_key(p, "o1"));
        return kv && kv->value.find("[9,40009,[77]]") != std::string::npos;
    }));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 9, "e1"), trunk(9, "e1", {"o1"}, 40009).to_json()));
    EXPECT_TRUE(eventually([&] { return e1.flows(9).size() == 1; })) << "its trunk feeds the existing session";
    c.del(trunk_key(p, 9, "e1"));
    EXPECT_TRUE(eventually([&] { return e1.flows(9).empty(); })) << "the flow goes with the key";
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(e1.session(9).has_value()) << "the session the API made stays";
    EXPECT_FALSE(e1.session(9)->trunk);
}

TEST(Trunks, a_record_lists_what_the_relay_sends_the_speakers_ssrcs_or_the_mix_ssrc) {
    fleet_relay o(trunk_etcd(), fresh_prefix(), "o", "origin", ip_of(198, 18, 0, 1));
    control::session_params fwd;
    fwd.id = 3;
    fwd.udp_port = 40003;
    o.st->session_create(fwd);
    o.st->speaker_add(3, ip_of(198, 18, 0, 10), 5004, 9u);
    o.st->speaker_add(3, ip_of(198, 18, 0, 11), 5004, 8u);
    control::session_params mix = fwd;
    mix.id = 4;
    mix.udp_port = 40004;
    mix.mode = control::session_mode::mix;
    o.st->session_create(mix);
    o.st->speaker_add(4, ip_of(198, 18, 0, 10), 5006, 7u);
    control::session_params none = fwd;
    none.id = 5;
    none.udp_port = 40005;
    o.st->session_create(none);
    relay_record r;
    control::fleet_sessions_of(*o.st, r);
    EXPECT_EQ(r.sessions, (std::vector<std::pair<uint32_t, uint16_t>>{{3, 40003}, {4, 40004}, {5, 40005}}));
    EXPECT_EQ(r.ssrcs[3], (std::vector<uint32_t>{8, 9})) << "a forward session: its speakers', sorted";
    EXPECT_EQ(r.ssrcs[4], std::vector<uint32_t>{dp::mix_ssrc(4)}) << "a mix session sends the mix";
    EXPECT_EQ(r.ssrcs.count(5), 0u) << "no speaker: no SSRC known";
}

TEST(Trunks, an_edge_without_listeners_deletes_its_trunk_key_after_the_idle_time) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    fleet_relay e1(e, p, "e1", "edge", ip_of(198, 18, 0, 3), 1s);
    fleet_relay e2(e, p, "e2", "edge", ip_of(198, 18, 0, 4), 1s);
    control::session_params sp;
    sp.id = 5;
    sp.udp_port = 40005;
    o1.st->session_create(sp);
    o1.st->speaker_add(5, ip_of(198, 18, 0, 10), 5004, 55u);
    etcd_client c(e.endpoints());
    ASSERT_TRUE(eventually([&] {
        const auto kv = c.get(relay_key(p, "o1"));
        return kv && kv->value.find("[5,40005,[55]]") != std::string::npos;
    }));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 5, "e1"), trunk(5, "e1", {"o1"}, 40005).to_json()));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 5, "e2"), trunk(5, "e2", {"o1"}, 40005).to_json()));
    ASSERT_TRUE(eventually([&] { return e1.session(5).has_value() && e2.session(5).has_value(); }));
    e2.st->listener_add(5, ip_of(198, 18, 0, 40), 6000, 1);   // e2 has a listener, e1 none
    EXPECT_TRUE(eventually([&] { return !c.get(trunk_key(p, 5, "e1")).has_value(); }))
        << "e1 deletes its trunk key once it has had no listener for 1 s";
    EXPECT_TRUE(eventually([&] { return !e1.session(5).has_value(); })) << "and then undoes the trunk";
    EXPECT_TRUE(eventually([&] { return !o1.sends_to(5, ip_of(198, 18, 0, 3), 40005); }));
    EXPECT_EQ(e1.rec->stats().idle_deleted, 1u);
    std::this_thread::sleep_for(1500ms);
    EXPECT_TRUE(c.get(trunk_key(p, 5, "e2")).has_value()) << "an edge with a listener keeps its trunk";
    EXPECT_TRUE(o1.sends_to(5, ip_of(198, 18, 0, 4), 40005));
    // A key re-created (new revision) is not deleted by a stale transaction.
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "ex"), trunk(7, "ex", {"o1"}, 40007).to_json()));
    const int64_t old_rev = c.get(trunk_key(p, 7, "ex"))->mod_revision;
    c.put(trunk_key(p, 7, "ex"), trunk(7, "ex", {"o1", "o2"}, 40007).to_json());
    EXPECT_FALSE(c.delete_if_unchanged(trunk_key(p, 7, "ex"), old_rev));
    EXPECT_TRUE(c.get(trunk_key(p, 7, "ex")).has_value());
    EXPECT_TRUE(c.delete_if_unchanged(trunk_key(p, 7, "ex"), c.get(trunk_key(p, 7, "ex"))->mod_revision));
    EXPECT_FALSE(c.get(trunk_key(p, 7, "ex")).has_value());
}

// The security review's attack (docs/security.md "The registry"): whoever
// can write etcd writes an edge record whose address is a victim, and a
// trunk key naming it; every origin would send the victim a stream for
// ever. With trunk_peers the origin sends nothing there, counts the
// refusal once (not per apply) and logs it once; the real edge is served.
TEST(Trunks, an_edge_record_outside_trunk_peers_gets_no_trunk_and_its_reason_is_counted_once) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    const uint32_t e1_ip = ip_of(198, 18, 0, 3), victim_ip = ip_of(203, 0, 113, 9);
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    fleet_relay e1(e, p, "e1", "edge", e1_ip);
    o1.session7();
    etcd_client c(e.endpoints());
    // The fake record under a lease of its own (as a registrar would write
    // it, saying trunk_auth like the fleet), so only the allowlist stands in
    // the way.
    const int64_t lease = c.lease_grant(60);
    ASSERT_NO_THROW(c.put(relay_key(p, "victim"), authed(rec("victim", "edge", "203.0.113.9"), "").to_json(), lease));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "victim"), trunk(7, "victim", {"o1"}, 40007).to_json()));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e1"), trunk(7, "e1", {"o1"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return o1.sends_to(7, e1_ip, 40007); })) << "the edge inside the list is served";
    EXPECT_TRUE(eventually([&] { return o1.refused(trunk_refusal_reason::edge_outside_trunk_peers) == 1; }));
    std::this_thread::sleep_for(1s);   // five applies more (retry 200 ms)
    EXPECT_FALSE(o1.sends_to(7, victim_ip, 40007)) << "no trunk listener at the victim";
    EXPECT_EQ(o1.st->nb_listeners(), 1u) << "only e1's";
    EXPECT_EQ(o1.refused(trunk_refusal_reason::edge_outside_trunk_peers), 1u) << "counted once, not per apply";
    EXPECT_EQ(o1.rec->stats().refused_now, 1u);
    EXPECT_EQ(o1.rec->stats().refusals, 0u) << "no action was even tried";
    // The record moves inside the list: served; and back out: undone, counted again.
    c.put(relay_key(p, "victim"), authed(rec("victim", "edge", "198.18.0.9"), "").to_json(), lease);
    EXPECT_TRUE(eventually([&] { return o1.sends_to(7, ip_of(198, 18, 0, 9), 40007); }));
    EXPECT_EQ(o1.rec->stats().refused_now, 0u);
    c.put(relay_key(p, "victim"), authed(rec("victim", "edge", "203.0.113.9"), "").to_json(), lease);
    EXPECT_TRUE(eventually([&] { return !o1.sends_to(7, ip_of(198, 18, 0, 9), 40007); }));
    EXPECT_TRUE(eventually([&] { return o1.refused(trunk_refusal_reason::edge_outside_trunk_peers) == 2; }));
    EXPECT_FALSE(o1.sends_to(7, victim_ip, 40007));
    c.lease_revoke(lease);
}

// The other half: a fake origin record makes no edge take audio from it.
TEST(Trunks, an_origin_outside_trunk_peers_is_not_taken_from_and_one_inside_still_is) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    const uint32_t o1_ip = ip_of(198, 18, 0, 1);
    fleet_relay o1(e, p, "o1", "origin", o1_ip);
    fleet_relay e1(e, p, "e1", "edge", ip_of(198, 18, 0, 3));
    o1.session7();
    etcd_client c(e.endpoints());
    const int64_t lease = c.lease_grant(60);
    ASSERT_NO_THROW(c.put(relay_key(p, "evil"), rec("evil", "origin", "198.51.100.7", {{7, {1234}}, {8, {1}}}).to_json(),
                          lease));
    ASSERT_TRUE(eventually([&] {
        const auto kv = c.get(relay_key(p, "o1"));
        return kv && kv->value.find("[7,40007,[1234]]") != std::string::npos;
    }));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e1"), trunk(7, "e1", {"o1", "evil"}, 40007).to_json()));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 8, "e1"), trunk(8, "e1", {"evil"}, 40008).to_json()));
    using fl = std::tuple<uint32_t, unsigned, std::optional<uint32_t>>;
    EXPECT_TRUE(eventually([&] { return e1.flows(7) == std::vector<fl>{{o1_ip, 40007, 1234u}}; }))
        << "the origin inside the list is taken from";
    EXPECT_TRUE(eventually([&] { return e1.refused(trunk_refusal_reason::origin_outside_trunk_peers) == 2; }));
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(e1.flows(7), (std::vector<fl>{{o1_ip, 40007, 1234u}})) << "no flow from 198.51.100.7";
    EXPECT_FALSE(e1.session(8).has_value()) << "a trunk fed only from outside makes no session";
    EXPECT_EQ(e1.refused(trunk_refusal_reason::origin_outside_trunk_peers), 2u) << "once per record";
    c.lease_revoke(lease);
}

// Item 2 of the review: an origin streams only to edges in the registry
// under a live lease. A relay record without one (never a registrar's) is
// set aside; the same record under a lease is served; when that lease goes,
// the trunk stops. Also the listener address rules hold inside the list:
// the subnet's directed broadcast and the origin's own address are refused.
TEST(Trunks, an_edge_record_without_a_lease_is_not_sent_to_and_a_lapsed_lease_stops_the_trunk) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    const uint32_t ghost_ip = ip_of(198, 18, 0, 50);
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    o1.session7();
    etcd_client c(e.endpoints());
    c.put(relay_key(p, "ghost"), authed(rec("ghost", "edge", "198.18.0.50"), "").to_json());   // no lease
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "ghost"), trunk(7, "ghost", {"o1"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return o1.refused(trunk_refusal_reason::relay_without_lease) == 1; }));
    std::this_thread::sleep_for(600ms);
    EXPECT_FALSE(o1.sends_to(7, ghost_ip, 40007)) << "inside the list, but no lease: nothing sent";
    EXPECT_EQ(o1.refused(trunk_refusal_reason::relay_without_lease), 1u);
    const int64_t lease = c.lease_grant(2);
    c.put(relay_key(p, "ghost"), authed(rec("ghost", "edge", "198.18.0.50"), "").to_json(), lease);
    EXPECT_TRUE(eventually([&] { return o1.sends_to(7, ghost_ip, 40007); })) << "under a lease: a live edge";
    // Nobody keeps the lease alive: it lapses, the key goes, the trunk stops.
    EXPECT_TRUE(eventually([&] { return !o1.sends_to(7, ghost_ip, 40007); }, 10s))
        << "the trunk stops when the edge's lease lapses";
    EXPECT_TRUE(c.get(trunk_key(p, 7, "ghost")).has_value()) << "the trunk key itself stays (no lease of its own)";

    // Inside the list, the listener rules still refuse: the directed
    // broadcast of the relay's subnet and the relay's own address.
    const int64_t l2 = c.lease_grant(60);
    c.put(relay_key(p, "bcast"), authed(rec("bcast", "edge", "198.18.0.255"), "").to_json(), l2);
    c.put(relay_key(p, "self"), authed(rec("self", "edge", "198.18.0.1"), "").to_json(), l2);
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "bcast"), trunk(7, "bcast", {"o1"}, 40007).to_json()));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "self"), trunk(7, "self", {"o1"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return o1.rec->stats().address_refused == 2; }));
    std::this_thread::sleep_for(600ms);
    EXPECT_EQ(o1.rec->stats().address_refused, 2u) << "counted once each";
    EXPECT_GT(o1.rec->stats().refusals, 2u) << "the actions are retried (and refused) at every apply";
    EXPECT_EQ(o1.st->nb_listeners(), 0u);
    c.lease_revoke(l2);
}

// A relay record is kept by its key's name, and a trunk key's session is
// read only in trunk_key()'s form (docs/security.md §14). Each row writes
// keys under a lease that would, if taken, make o1 send session 7 to
// 198.18.0.5x; none is sent to, and each key is counted once. Then the
// canonical trunk key of e2 works: what was refused was the key, not e2.
TEST(Trunks, a_relay_record_whose_id_is_not_its_key_and_an_alias_trunk_key_are_refused_and_counted_once) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    o1.session7();
    etcd_client c(e.endpoints());
    const int64_t lease = c.lease_grant(60);
    const std::string t7e2 = trunk(7, "e2", {"o1"}, 40007).to_json();
    c.put(relay_key(p, "e2"), authed(rec("e2", "edge", "198.18.0.52"), "").to_json(), lease);
    ASSERT_TRUE(eventually([&] { return o1.watch->status().relays == 2; }));
    struct row {
        const char* what;
        std::vector<std::pair<std::string, std::string>> puts;   // key after <prefix>/, value
        uint64_t refused;                                         // records_refused after the row
    };
    const std::vector<row> rows = {
        {"relays/zz says it is ghost",
         {{"relays/zz", authed(rec("ghost", "edge", "198.18.0.50"), "").to_json()},
          {"trunks/7/zz", trunk(7, "zz", {"o1"}, 40007).to_json()},
          {"trunks/7/ghost", trunk(7, "ghost", {"o1"}, 40007).to_json()}},
         1},
        {"relays/zz2 says it is e2 (a real edge), at another address",
         {{"relays/zz2", authed(rec("e2", "edge", "198.18.0.51"), "").to_json()},
          {"trunks/7/zz2", trunk(7, "zz2", {"o1"}, 40007).to_json()}},
         2},
        {"trunks/07/e2: a leading zero", {{"trunks/07/e2", t7e2}}, 3},
        {"trunks/+7/e2: a sign", {{"trunks/+7/e2", t7e2}}, 4},
        {"trunks/ 7/e2: a space", {{"trunks/ 7/e2", t7e2}}, 5},
        {"trunks/4294967303/e2: past 32 bits (strtoul's 7 in a uint32_t)", {{"trunks/4294967303/e2", t7e2}}, 6},
        {"the same keys again: not counted again", {{"relays/zz", authed(rec("ghost", "edge", "198.18.0.50"), "").to_json()},
                                                    {"trunks/07/e2", t7e2}}, 6},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        for (const auto& [k, v] : x.puts) c.put(p + "/" + k, v, lease);
        EXPECT_TRUE(eventually([&] { return o1.watch->status().records_refused == x.refused; }))
            << o1.watch->status().records_refused << " " << o1.watch->status().last_error;
        std::this_thread::sleep_for(300ms);   // applied
        EXPECT_EQ(o1.watch->status().relays, 2u) << "o1 and e2 only";
        EXPECT_EQ(o1.st->nb_listeners(), 0u) << "nothing sent";
    }
    EXPECT_EQ(o1.watch->status().trunks, 3u) << "7/zz, 7/ghost, 7/zz2: their edges are not live";
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e2"), t7e2));
    EXPECT_TRUE(eventually([&] { return o1.sends_to(7, ip_of(198, 18, 0, 52), 40007); }));
    EXPECT_EQ(o1.st->nb_listeners(), 1u) << "only to e2's own address";
    c.lease_revoke(lease);
    EXPECT_TRUE(eventually([&] { return o1.watch->status().relays == 1; })) << "the lease's keys gone";
    EXPECT_EQ(o1.watch->status().records_refused, 6u);
}

}  // namespace
}  // namespace stentor::fleet

namespace stentor::fleet {
namespace {

// Trunk authentication against etcd (docs/fleet.md "Trunk authentication"):
// an origin that restarts draws a new epoch; the edge adds the new key,
// then removes the old one, and the flow stays.
TEST(Trunks, an_origin_restarted_under_a_new_epoch_moves_the_edge_s_flow_to_its_new_key) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    auto o1 = std::make_unique<fleet_relay>(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    fleet_relay e1(e, p, "e1", "edge", ip_of(198, 18, 0, 3));
    o1->session7();
    etcd_client c(e.endpoints());
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e1"), trunk(7, "e1", {"o1"}, 40007).to_json()));
    using keys = std::map<std::string, std::vector<std::string>>;
    const uint64_t first = o1->epoch;
    ASSERT_TRUE(eventually([&] { return e1.flow_keys(7) == keys{{"198.18.0.1:40007", {trunk_key_id(first)}}}; }));
    EXPECT_EQ(e1.rec->stats().flow_key_changes, 0u);

    // A restart: a new run, a new epoch (a clean stop revokes the lease).
    o1.reset();
    o1 = std::make_unique<fleet_relay>(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    ASSERT_NE(o1->epoch, first);
    o1->session7();
    EXPECT_TRUE(eventually([&] { return e1.flow_keys(7) == keys{{"198.18.0.1:40007", {trunk_key_id(o1->epoch)}}}; }))
        << "the new key in, the old one out";
    EXPECT_TRUE(eventually([&] { return o1->sends_to(7, ip_of(198, 18, 0, 3), 40007); }));
    EXPECT_EQ(o1->rec->stats().trunk_keys, 1u);
    ASSERT_EQ(o1->session(7)->trunk_keys.size(), 1u);
    EXPECT_EQ(o1->session(7)->trunk_keys[0].id, trunk_key_id(o1->epoch)) << "the restarted origin's own new key";
    c.del(trunk_key(p, 7, "e1"));
    EXPECT_TRUE(eventually([&] { return !e1.session(7).has_value(); }));
    EXPECT_EQ(e1.rec->stats().flow_keys, 0u) << "the keys went with the flow";
}

// A relay without the fleet's trunk key among relays with it: no trunk
// between them either way, the reason counted once on each side.
TEST(Trunks, a_relay_without_the_trunk_key_gets_no_trunk_and_the_mismatch_is_counted_once) {
    etcd_server& e = trunk_etcd();
    const std::string p = fresh_prefix();
    const auto mixed = nets({"198.18.0.0/24", "2001:db8::/64"});
    fleet_relay o1(e, p, "o1", "origin", ip_of(198, 18, 0, 1));
    fleet_relay plain(e, p, "plain", "edge", ip_of(198, 18, 0, 4), 0s, std::nullopt, "ipv4", mixed, nullptr);
    fleet_relay e1(e, p, "e1", "edge", ip_of(198, 18, 0, 3));
    o1.session7();
    etcd_client c(e.endpoints());
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "plain"), trunk(7, "plain", {"o1"}, 40007).to_json()));
    ASSERT_TRUE(c.create_if_absent(trunk_key(p, 7, "e1"), trunk(7, "e1", {"o1"}, 40007).to_json()));
    EXPECT_TRUE(eventually([&] { return o1.sends_to(7, ip_of(198, 18, 0, 3), 40007); })) << "the keyed edge is served";
    EXPECT_TRUE(eventually([&] {
        return o1.refused(trunk_refusal_reason::trunk_auth_mismatch) == 1 &&
               plain.refused(trunk_refusal_reason::trunk_auth_mismatch) == 1;
    })) << "origin " << o1.refused(trunk_refusal_reason::trunk_auth_mismatch) << ", edge "
        << plain.refused(trunk_refusal_reason::trunk_auth_mismatch);
    EXPECT_FALSE(o1.sends_to(7, ip_of(198, 18, 0, 4), 40007)) << "nothing sent to the edge without the key";
    EXPECT_FALSE(plain.session(7).has_value()) << "and it takes nothing: its only origin is refused";
    // Applies go on (every 200 ms here): still counted once.
    const auto applies = o1.rec->stats().applies;
    EXPECT_TRUE(eventually([&] { return o1.rec->stats().applies >= applies + 3; }));
    EXPECT_EQ(o1.refused(trunk_refusal_reason::trunk_auth_mismatch), 1u);
    EXPECT_EQ(o1.rec->stats().refused_now, 1u);
}

}  // namespace
}  // namespace stentor::fleet

namespace stentor::fleet {
namespace {

// The reconciler's keys without etcd: plans handed in as a watch would.
// Edge: an origin's epoch changes (it restarted) -> the new key in, then
// the old one out; epochs whose key ids clash (same first 32 bits) ->
// the old one out first. Origin: the session's trunk key before its trunk
// listener; no session, no key and no listener.
TEST(TrunkReconciler, keys_follow_the_plan_s_epochs_on_the_edge_and_sessions_on_the_origin) {
    relay_core edge(ip_of(198, 18, 0, 3));
    edge.st->set_trunk_auth(true);
    control::trunk_reconciler r(*edge.st, 0s, nullptr, {fleet_secret(), "e1", 0x1111111111111111ULL});
    const auto plan = [](std::optional<uint64_t> epoch) {
        trunk_plan p;
        p.sessions = {{7, 40007}};
        p.flows = {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1", std::nullopt, epoch}};
        return p;
    };
    using keys = std::map<std::string, std::vector<std::string>>;
    struct row {
        const char* what;
        uint64_t epoch;
        std::vector<std::string> ids;   // on the flow's speaker afterwards
        uint64_t changes;               // flow_key_changes afterwards
    };
    const row rows[] = {
        {"the origin's first epoch", 0x0123456789abcdefULL, {"trunk-0123456789abcdef"}, 0},
        {"applied again: nothing changes", 0x0123456789abcdefULL, {"trunk-0123456789abcdef"}, 0},
        {"the origin restarted", 0xfedcba9876543210ULL, {"trunk-fedcba9876543210"}, 1},
        {"restarted again, the first 32 bits the same", 0xfedcba9800000000ULL, {"trunk-fedcba9800000000"}, 2},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        r.apply(plan(x.epoch));
        EXPECT_EQ(edge.flow_keys(7), (keys{{"198.18.0.1:40007", x.ids}}));
        EXPECT_EQ(r.stats().flow_key_changes, x.changes);
        EXPECT_EQ(r.stats().flow_keys, 1u);
        EXPECT_EQ(r.stats().refusals, 0u);
    }
    r.apply(trunk_plan{});
    EXPECT_FALSE(edge.st->session(7).has_value());
    EXPECT_EQ(r.stats().flow_keys, 0u);

    relay_core origin(ip_of(198, 18, 0, 1));
    origin.st->set_trunk_auth(true);
    origin.session7();
    control::trunk_reconciler o(*origin.st, 0s, nullptr, {fleet_secret(), "o1", 0x0123456789abcdefULL});
    trunk_plan sends;
    sends.sends = {{7, ip_of(198, 18, 0, 3), 40007, "e1"}, {8, ip_of(198, 18, 0, 3), 40008, "e1"}};
    o.apply(sends);
    EXPECT_EQ(o.stats().trunk_keys, 1u) << "session 7 keyed; session 8 does not exist here";
    ASSERT_EQ(origin.st->session(7)->trunk_keys.size(), 1u);
    EXPECT_EQ(origin.st->session(7)->trunk_keys[0].id, "trunk-0123456789abcdef");
    o.apply(sends);
    EXPECT_EQ(origin.st->session(7)->trunk_keys.size(), 1u) << "applied again: the same key, nothing changes";
    EXPECT_EQ(o.stats().sends, 1u);
    EXPECT_GE(o.stats().refusals, 1u) << "session 8's key refused (no session), its listener not added";
    o.apply(trunk_plan{});
    EXPECT_EQ(o.stats().trunk_keys, 0u) << "nothing sent: the key cleared";
    EXPECT_TRUE(origin.st->session(7)->trunk_keys.empty());
    EXPECT_EQ(o.stats().sends, 0u);
}

// What the reconciler remembers having logged holds only what the current
// plan still has (before, every refusal ever logged stayed: a writer
// creating and deleting trunks/<n>/x with UDP port 0 for n = 1, 2, 3 ...
// grew it on every relay), and never more than max_told.
TEST(TrunkReconciler, logged_refusals_are_forgotten_when_they_clear_and_are_bounded) {
    relay_core edge(ip_of(198, 18, 0, 3));
    control::trunk_reconciler r(*edge.st, 0s);
    const auto problems = [](uint32_t from, uint32_t n) {
        trunk_plan p;
        for (uint32_t i = from; i < from + n; ++i) p.problems.push_back(fmt::format("trunk {}/x: UDP port 0", i));
        return p;
    };
    const size_t cap = control::trunk_reconciler::max_told;
    const auto level = spdlog::get_level();
    spdlog::set_level(spdlog::level::off);   // thousands of warnings, as a relay would log them once each
    struct row {
        const char* what;
        trunk_plan plan;
        size_t told;
    };
    const std::vector<row> rows = {
        {"one problem", problems(1, 1), 1},
        {"it is gone, another came", problems(2, 1), 1},
        {"the same again", problems(2, 1), 1},
        {"two", problems(2, 2), 2},
        {"none: all forgotten", trunk_plan{}, 0},
        {"another one", problems(1000, 1), 1},
        {"far more than the cap at once", problems(1, cap + 500), cap},
        {"the same: still the cap", problems(1, cap + 500), cap},
        {"back to one", problems(5000, 1), 1},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        r.apply(x.plan);
        EXPECT_EQ(r.stats().told, x.told);
    }
    for (uint32_t n = 1; n <= 3000; ++n) r.apply(problems(n, 1));   // the writer's loop
    EXPECT_EQ(r.stats().told, 1u);
    spdlog::set_level(level);
}

// A registry writer's newline, escape sequence or quote stays inside the
// one log line that names it (docs/security.md "The fleet's registry"):
// records as the watch would read them, their plan and the edge's
// reconciler logging it, captured.
TEST(TrunkReconciler, a_registry_string_with_a_newline_or_an_escape_stays_inside_one_log_line) {
    const std::string forged = "fleet: trunk: session 9 sent to e9 (203.0.113.9:40009) as a tier-0 trunk listener";
    const std::string o1 = "o1\n" + forged;   // a relay id holding a whole second line
    const std::string o2 = "o2\x1b[2J";         // clears the operator's screen
    const std::map<std::string, relay_record> live = {
        {o1, authed(rec(o1, "origin", "198.18.0.1", {{7, {1234}}}), "0123456789abcdef")},
        {o2, authed(rec(o2, "origin", "198.18.0.2", {{8, {1234}}}), "\x1b]0;pwned\x07")},   // sets the title
        {"o3", authed(rec("o3", "origin", "x\ny", {{9, {1234}}}), "0123456789abcdef")},
        {"e1", authed(rec("e1", "edge", "198.18.0.3"), "1111111111111111")},
    };
    const trunk_plan p = plan_trunks(
        "e1", live, {trunk(7, "e1", {o1}, 40007), trunk(8, "e1", {o2}, 40008), trunk(9, "e1", {"o3"}, 40009)},
        any_peer, {}, true);
    ASSERT_EQ(p.flows.size(), 1u);
    EXPECT_EQ(p.flows[0].origin, o1) << "the id itself is used as written; only its text in a line is escaped";

    relay_core edge(ip_of(198, 18, 0, 3));
    edge.st->set_trunk_auth(true);
    control::trunk_reconciler r(*edge.st, 0s, nullptr, {fleet_secret(), "e1", 0x1111111111111111ULL});
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_pattern("%v");
    const auto before = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
    r.apply(p);
    spdlog::set_default_logger(before);
    EXPECT_EQ(edge.flow_keys(7).size(), 1u) << "the flow from o1 is taken and keyed";

    const std::string text = out.str();
    SCOPED_TRACE(text);
    EXPECT_EQ(text.find('\x1b'), std::string::npos);
    EXPECT_EQ(text.find('\x07'), std::string::npos);
    EXPECT_EQ(text.find('\r'), std::string::npos);
    std::vector<std::string> lines;
    for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
        lines.push_back(text.substr(at, nl - at));
    size_t naming_o1 = 0;
    for (const auto& line : lines) {
        EXPECT_EQ(line.rfind("fleet: trunk: ", 0), 0u) << "a line of its own: " << line;
        EXPECT_NE(line.rfind("fleet: trunk: session 9 sent to e9", 0), 0u) << "a forged line: " << line;
        if (line.find("203.0.113.9") != std::string::npos) {
            ++naming_o1;
            EXPECT_NE(line.find("o1\\x0afleet: trunk: session 9 sent to e9"), std::string::npos) << line;
        }
    }
    EXPECT_EQ(naming_o1, 2u) << "taken from o1, authenticated: one line each";
    const auto has = [&](const std::string& s) { return text.find(s) != std::string::npos; };
    EXPECT_TRUE(has("trunk of session 8 from o2\\x1b[2J: o2\\x1b[2J's record has no well-formed trunk_epoch "
                    "(\"\\x1b]0;pwned\\x07\", not 16 lowercase hex digits)"))
        << "the refusal";
    EXPECT_TRUE(has("relay o3: address \"x\\x0ay\" is not IPv4")) << "the problem";
}

}  // namespace
}  // namespace stentor::fleet

namespace stentor::fleet {
namespace {

// The floors an edge keeps of the trunk flows it removed (docs/fleet.md "A
// trunk flow added again"; the replay itself is tested through the data
// plane: srtp_trunk.a_captured_packet_replayed_into_a_trunk_flow_added_again_…).
// A relay with room for 3 speakers holds 3 floors: each row removes a flow
// whose stream reached `top` (written into its policer entry, as an RX
// lcore would) and says how many floors are held and evicted after; then
// flows are added again under their key and the floor their keyset starts
// from is read off the published snapshot.
TEST(TrunkFloors, at_most_max_speakers_are_held_the_oldest_evicted_and_counted) {
    relay_core edge(ip_of(198, 18, 0, 3), std::nullopt, 3);
    edge.st->set_trunk_auth(true);
    control::session_params sp;
    sp.id = 7;
    sp.udp_port = 40007;
    sp.trunk = true;
    sp.srtp_ingress = control::srtp_ingress_mode::off;
    sp.srtp_egress = control::srtp_egress_mode::off;
    edge.st->session_create(sp);
    const uint32_t ssrc_be = __builtin_bswap32(1234);
    const auto key = [](unsigned origin) {
        control::srtp_key_spec k;
        k.id = fmt::format("trunk-00000000000000{:02x}", origin);
        k.suite = srtp::suite::aead_aes_128_gcm;
        k.master = control::secure_bytes(28);
        for (size_t i = 0; i < 28; ++i) k.master.data()[i] = static_cast<uint8_t>(origin * 31 + i);
        return k;
    };
    // Flow of origin o (198.18.0.(10+o):40007) added under its key; its slot.
    const auto add = [&](unsigned o) {
        edge.st->speaker_add(7, ip_of(198, 18, 0, 10 + o), 40007, 1234u, true);
        edge.st->srtp_key_add({7, std::make_pair(ip_of(198, 18, 0, 10 + o), 40007u)}, key(o));
        edge.st->publish();
        const auto view = edge.st->session(7);
        for (const auto& v : view->speakers)
            if (v.ip == ip_of(198, 18, 0, 10 + o)) return v.slot;
        ADD_FAILURE() << "no flow of origin " << o;
        return uint32_t{0};
    };
    const auto floor_of = [&](uint32_t slot) {
        const auto* snap = edge.shared.snapshot.load();
        const srtp::keyset* ks = snap != nullptr && slot < snap->nb_speaker_keys ? snap->speaker_keys[slot] : nullptr;
        return ks != nullptr && ks->floor_ssrc_be == ssrc_be ? ks->floor : 0;
    };
    struct row {
        const char* what;
        unsigned origin;
        uint64_t start;      // the floor its flow starts from when added
        uint64_t top;        // the highest index its stream accepted; 0: it never took a packet
        size_t floors;
        uint64_t evictions;
    };
    const row rows[] = {
        {"a flow that never took a packet leaves no floor", 0, 0, 0, 0, 0},
        {"origin 1's flow removed", 1, 0, 101, 1, 0},
        {"origin 2's", 2, 0, 102, 2, 0},
        {"origin 3's: the relay's 3", 3, 0, 103, 3, 0},
        {"origin 1's added again (from 101), further on: its floor raised, none added", 1, 101, 201, 3, 0},
        {"origin 4's: the least recently written (origin 2's) goes", 4, 0, 104, 3, 1},
        {"origin 5's: then origin 3's", 5, 0, 105, 3, 2},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const uint32_t slot = add(r.origin);
        EXPECT_EQ(floor_of(slot), r.start);
        if (r.top > 0) {
            auto& e = dp::policer_of(edge.shared, 0, slot);
            e.srtp_rx.started = 1;
            e.srtp_rx.ssrc_be = ssrc_be;
            e.srtp_rx.top = r.top;
        }
        edge.st->speaker_del(7, ip_of(198, 18, 0, 10 + r.origin), 40007);
        edge.st->publish();
        EXPECT_EQ(edge.st->trunk_floors().floors, r.floors);
        EXPECT_EQ(edge.st->trunk_floors().evictions, r.evictions);
    }
    struct again {
        const char* what;
        unsigned origin;
        uint64_t floor;      // what its fresh stream starts from
    };
    const again agains[] = {
        {"origin 1's flow, under its key: from where it stood last", 1, 201},
        {"origin 5's", 5, 105},
        {"origin 2's: evicted, from nothing", 2, 0},
    };
    for (const auto& a : agains) {
        SCOPED_TRACE(a.what);
        const uint32_t slot = add(a.origin);
        EXPECT_EQ(floor_of(slot), a.floor);
        edge.st->speaker_del(7, ip_of(198, 18, 0, 10 + a.origin), 40007);
        edge.st->publish();
    }
    // Under another key id (the origin restarted: a new epoch) the floor
    // does not bind the flow.
    edge.st->speaker_add(7, ip_of(198, 18, 0, 11), 40007, 1234u, true);
    edge.st->srtp_key_add({7, std::make_pair(ip_of(198, 18, 0, 11), 40007u)}, key(9));
    edge.st->publish();
    const auto view = edge.st->session(7);
    ASSERT_EQ(view->speakers.size(), 1u);
    EXPECT_EQ(floor_of(view->speakers[0].slot), 0u) << "another key";
}

}  // namespace
}  // namespace stentor::fleet

namespace stentor::fleet {
namespace {

// Two origin records that resolve to one trunk flow (the same source
// address; the port is the session's): an edge keys a flow by its source,
// so it would hold one speaker and one key for both, the last apply
// deciding whose packets authenticate (before: the two epochs' keys took
// turns on the flow at every apply). Neither is taken, whatever the order
// they are listed in, each counted once by reason and said once.
TEST(TrunkPlan, two_origins_resolving_to_one_flow_are_neither_taken) {
    const std::map<std::string, relay_record> live = {
        {"o1", authed(rec6("o1", "origin", "198.18.0.1", "2001:db8:77::1", "ipv4", {{7, {1234}}}), "0123456789abcdef")},
        {"o2", authed(rec("o2", "origin", "198.18.0.2", {{7, {1234}}}), "fedcba9876543210")},
        // A second record at o1's addresses (a registry writer's, or a
        // relay given o1's address by mistake): another id, another epoch.
        {"twin", authed(rec6("twin", "origin", "198.18.0.1", "2001:db8:77::1", "ipv4", {{7, {1234}}}), "1111111111111111")},
        // o1's IPv4 address, its own IPv6 one.
        {"twin4", authed(rec6("twin4", "origin", "198.18.0.1", "2001:db8:77::9", "ipv4", {{7, {1234}}}), "2222222222222222")},
        {"e1", authed(rec("e1", "edge", "198.18.0.3"), "3333333333333333")},
        {"e6", authed(rec6("e6", "edge", "198.18.0.4", "2001:db8:77::4", "ipv6"), "4444444444444444")},
    };
    using rr = trunk_refusal_reason;
    const uint64_t o1_epoch = 0x0123456789abcdefULL, o2_epoch = 0xfedcba9876543210ULL, t4_epoch = 0x2222222222222222ULL;
    const trunk_flow from_o2{7, ip_of(198, 18, 0, 2), 40007, 1234u, "o2", std::nullopt, o2_epoch};
    const plan_row rows[] = {
        {"two origins at one address: neither taken, each refused; no session", "e1", any_peer,
         {trunk(7, "e1", {"o1", "twin"}, 40007)}, {}, {}, {}, {rr::origin_address_shared, rr::origin_address_shared},
         true},
        {"... a third origin elsewhere still is", "e1", any_peer, {trunk(7, "e1", {"o1", "twin", "o2"}, 40007)}, {},
         {{7, 40007}}, {from_o2}, {rr::origin_address_shared, rr::origin_address_shared}, true},
        {"... listed the other way round: the same", "e1", any_peer, {trunk(7, "e1", {"o2", "twin", "o1"}, 40007)}, {},
         {{7, 40007}}, {from_o2}, {rr::origin_address_shared, rr::origin_address_shared}, true},
        {"the same origin named twice is one flow, no clash", "e1", any_peer, {trunk(7, "e1", {"o1", "o1"}, 40007)}, {},
         {{7, 40007}}, {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1", std::nullopt, o1_epoch}}, {}, true},
        {"over IPv6, two origins at one IPv6 address", "e6", any_peer, {trunk(7, "e6", {"o1", "twin"}, 40007)}, {}, {},
         {}, {rr::origin_address_shared, rr::origin_address_shared}, true},
        {"over IPv6, a shared IPv4 address is no clash", "e6", any_peer, {trunk(7, "e6", {"o1", "twin4"}, 40007)}, {},
         {{7, 40007}},
         {{7, 0, 40007, 1234u, "o1", v6("2001:db8:77::1"), o1_epoch},
          {7, 0, 40007, 1234u, "twin4", v6("2001:db8:77::9"), t4_epoch}},
         {}, true},
        {"over IPv4 the same pair clashes", "e1", any_peer, {trunk(7, "e1", {"o1", "twin4"}, 40007)}, {}, {}, {},
         {rr::origin_address_shared, rr::origin_address_shared}, true},
    };
    for (const auto& r : rows) expect_plan(r, live, {});
    const auto p = plan_trunks("e1", live, {trunk(7, "e1", {"o1", "twin"}, 40007)}, any_peer, {}, true);
    ASSERT_EQ(p.refused.size(), 2u);
    EXPECT_EQ(p.refused[0].what, "trunk of session 7 from o1: origin address 198.18.0.1 port 40007 is that of several "
                                 "origins of the trunk (o1, twin): an edge can hold one key for it, so none is taken");

    // Applied again and again (the watch applies every second): counted
    // once each, said once each, and the edge holds no flow and no key.
    relay_core edge(ip_of(198, 18, 0, 3));
    edge.st->set_trunk_auth(true);
    control::trunk_reconciler r(*edge.st, 0s, nullptr, {fleet_secret(), "e1", 0x3333333333333333ULL});
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_pattern("%v");
    const auto before = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
    const auto q = plan_trunks("e1", live, {trunk(7, "e1", {"o1", "twin", "o2"}, 40007)}, any_peer, {}, true);
    for (int i = 0; i < 3; ++i) r.apply(q);
    spdlog::set_default_logger(before);
    EXPECT_EQ(r.stats().refused[static_cast<size_t>(rr::origin_address_shared)], 2u);
    EXPECT_EQ(r.stats().refused_now, 2u);
    EXPECT_EQ(r.stats().flow_key_changes, 0u);
    using keys = std::map<std::string, std::vector<std::string>>;
    EXPECT_EQ(edge.flow_keys(7), (keys{{"198.18.0.2:40007", {"trunk-fedcba9876543210"}}})) << "o2's flow only";
    const std::string text = out.str();
    size_t said = 0;
    for (size_t at = 0; (at = text.find("(origin_address_shared)", at)) != std::string::npos; ++at) ++said;
    EXPECT_EQ(said, 2u) << text;
}

}  // namespace
}  // namespace stentor::fleet

namespace stentor::fleet {
namespace {

// Where an origin's trunk stream may go (docs/fleet.md "How many edges a
// session is sent to"): only to the session's own UDP port (the fleet's one
// port per session, which the edge makes its session on), and to at most
// [fleet] max_trunk_sends_per_session edges. Before, a trunk record alone
// made an origin send the session to any port it named, one stream per
// edge record. Each refusal is counted once and said once.
TEST(TrunkPlan, an_origin_sends_a_session_only_on_its_own_port) {
    const std::map<std::string, relay_record> live = {
        {"o1", rec("o1", "origin", "198.18.0.1", {{7, {1234}}})},   // session 7 on 40007
        {"e1", rec("e1", "edge", "198.18.0.3")},
        {"e2", rec("e2", "edge", "198.18.0.4")},
    };
    using rr = trunk_refusal_reason;
    const plan_row rows[] = {
        {"the session's port: sent", "o1", any_peer, {trunk(7, "e1", {"o1"}, 40007)},
         {{7, ip_of(198, 18, 0, 3), 40007, "e1"}}, {}, {}, {}},
        {"another port (a registry writer's record aiming at a service): refused, the other unaffected", "o1", any_peer,
         {trunk(7, "e1", {"o1"}, 40007), trunk(7, "e2", {"o1"}, 53)}, {{7, ip_of(198, 18, 0, 3), 40007, "e1"}}, {}, {},
         {rr::trunk_port_mismatch}},
        {"a session this relay does not carry: nothing to send, nothing refused", "o1", any_peer,
         {trunk(8, "e1", {"o1"}, 40008)}, {}, {}, {}, {}},
        {"the edge side is unchanged: it makes its session on the trunk's port", "e1", any_peer,
         {trunk(7, "e1", {"o1"}, 40007)}, {}, {{7, 40007}}, {{7, ip_of(198, 18, 0, 1), 40007, 1234u, "o1"}}, {}},
    };
    for (const auto& r : rows) expect_plan(r, live, {});
    const auto p = plan_trunks("o1", live, {trunk(7, "e2", {"o1"}, 53)}, any_peer);
    ASSERT_EQ(p.refused.size(), 1u);
    EXPECT_EQ(p.refused[0].what, "trunk of session 7 to e2: UDP port 53 is not the session's port on this relay (40007)");
}

TEST(TrunkReconciler, an_origin_sends_a_session_to_at_most_max_trunk_sends_per_session_edges) {
    relay_core origin(ip_of(198, 18, 0, 1));
    origin.session7();
    control::trunk_reconciler r(*origin.st, 0s, nullptr, {}, 2);
    const auto plan = [](std::vector<unsigned> edges) {
        trunk_plan p;
        for (unsigned e : edges)
            p.sends.push_back({7, ip_of(198, 18, 0, 100 + e), 40007, fmt::format("e{}", e)});
        std::sort(p.sends.begin(), p.sends.end());
        return p;
    };
    const auto sent = [&] {
        std::vector<unsigned> out;
        for (const auto& l : origin.st->listeners(7, 0, 100)) out.push_back((l.ip & 0xff) - 100);
        std::sort(out.begin(), out.end());
        return out;
    };
    const size_t over = static_cast<size_t>(trunk_refusal_reason::trunk_sends_over_cap);
    struct row {
        const char* what;
        std::vector<unsigned> edges;     // in the plan
        std::vector<unsigned> sent;      // trunk listeners afterwards
        uint64_t counted;                // trunk_sends_over_cap so far
    };
    const row rows[] = {
        {"two edges: both sent", {3, 4}, {3, 4}, 0},
        {"a third (a fake edge record): refused, counted", {3, 4, 5}, {3, 4}, 1},
        {"applied again: counted once", {3, 4, 5}, {3, 4}, 1},
        {"a fourth sorting first does not push out one in place", {1, 3, 4, 5}, {3, 4}, 2},
        {"one in place goes: the room is taken in the plan's order (e5 still refused, not counted again)", {1, 3, 5},
         {1, 3}, 2},
        {"down to one: nothing refused now", {3}, {3}, 2},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        r.apply(plan(x.edges));
        EXPECT_EQ(sent(), x.sent);
        EXPECT_EQ(r.stats().refused[over], x.counted);
        EXPECT_EQ(r.stats().sends, x.sent.size());
        EXPECT_EQ(r.stats().refused_now, x.edges.size() - x.sent.size());
    }
}

}  // namespace
}  // namespace stentor::fleet
