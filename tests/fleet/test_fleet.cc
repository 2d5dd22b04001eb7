// The fleet's registry and director against a real etcd (issue 13 items 3
// and 4): the etcd client, a relay's registrar (leases, drain, etcd down and
// back), the director's placement (capacity, draining, leases gone, two
// directors at once, etcd down) and the capacity plan.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../api/raw_http.h"
#include "config.h"
#include "director.h"
#include "director_api.h"
#include "etcd_client.h"
#include "etcd_fixture.h"
#include "join_mint.h"
#include "placement.h"
#include "planner.h"
#include "registrar.h"
#include "registry.h"
#include "stentor/join_token.h"
#include "tcp_proxy.h"

namespace stentor::fleet {
namespace {

using namespace std::chrono_literals;
using test::etcd_server;
using test::eventually;

// One etcd for the suites that do not stop it; each test has its prefix.
// Started on first use, stopped and its data dir removed after the last test.
std::unique_ptr<etcd_server>& shared_slot() {
    static std::unique_ptr<etcd_server> e;
    return e;
}
etcd_server& shared_etcd() {
    auto& e = shared_slot();
    if (!e) e = std::make_unique<etcd_server>();
    return *e;
}

class etcd_env : public ::testing::Environment {
public:
    void TearDown() override { shared_slot().reset(); }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new etcd_env);

std::string unique_prefix() {
    static int n = 0;
    return "/t" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

// ---------------------------------------------------------------------------
// Pure pieces

TEST(EtcdCodec, base64_round_trips_and_prefix_end) {
    struct row {
        std::string bytes;
        std::string b64;
    };
    const row rows[] = {{"", ""},
                        {"f", "Zg=="},
                        {"fo", "Zm8="},
                        {"foo", "Zm9v"},
                        {std::string("\0\xff\x10", 3), "AP8Q"},
                        {"/stentor/relays/edge-1", "L3N0ZW50b3IvcmVsYXlzL2VkZ2UtMQ=="}};
    for (const auto& r : rows) {
        SCOPED_TRACE(r.b64);
        EXPECT_EQ(base64_encode(r.bytes), r.b64);
        EXPECT_EQ(base64_decode(r.b64), r.bytes);
    }
    EXPECT_THROW(base64_decode("abc"), etcd_error) << "length not a multiple of 4";
    EXPECT_THROW(base64_decode("a!b="), etcd_error) << "not the alphabet";
    EXPECT_EQ(prefix_end("/a/"), "/a0");
    EXPECT_EQ(prefix_end("ab\xff"), "ac");
    EXPECT_EQ(prefix_end(std::string("\xff\xff")), std::string(1, '\0'));
}

TEST(RegistryRecord, json_round_trip_and_refusals) {
    relay_record r;
    r.id = "edge-1";
    r.role = "edge";
    r.region = "eu";
    r.addresses = {"198.18.0.1"};
    r.slots = 1000;
    r.line_rate_mbps = 10000;
    r.listeners = 7;
    r.draining = true;
    r.sessions = {{1, 40000}, {9, 40009}};
    r.seq = 3;
    std::string why;
    const auto back = relay_record::from_json(r.to_json(), &why);
    ASSERT_TRUE(back.has_value()) << why;
    EXPECT_EQ(*back, r);
    struct row {
        const char* text;
        const char* what;
    };
    const row bad[] = {{"", "not JSON"},
                       {"[]", "not an object"},
                       {R"({"id":"x","role":"mixer","addresses":[],"slots":1,"listeners":0})", "unknown role"},
                       {R"({"id":"x","role":"edge","addresses":[],"listeners":0})", "no slots"},
                       {R"({"id":"","role":"edge","addresses":[],"slots":1,"listeners":0})", "empty id"},
                       {R"({"id":"x","role":"edge","addresses":[],"slots":-1,"listeners":0})", "negative slots"}};
    for (const auto& b : bad) {
        SCOPED_TRACE(b.what);
        EXPECT_FALSE(relay_record::from_json(b.text, &why).has_value());
        EXPECT_FALSE(why.empty());
    }
}

relay_record edge(const std::string& id, uint64_t slots, uint64_t listeners, const std::string& region = "") {
    relay_record r;
    r.id = id;
    r.role = "edge";
    r.region = region;
    r.addresses = {"198.18.1." + std::to_string(id.size())};
    r.slots = slots;
    r.listeners = listeners;
    return r;
}
relay_record origin(const std::string& id, uint32_t session, uint16_t port) {
    relay_record r;
    r.id = id;
    r.role = "origin";
    r.addresses = {"198.18.2.1"};
    r.slots = 1000;
    r.sessions = {{session, port}};
    return r;
}

uint32_t placed_on(const plan_result& p, const std::string& e) {
    for (const auto& x : p.picks)
        if (x.edge == e) return x.count;
    return 0;
}

// The one rule the director and the trunk watch share for registry keys
// they refuse (fleet/registry.h refused_keys): counted once while refused,
// forgotten on a delete or a mend, pruned to the keys still there at a
// whole read. Each row is one step and the count and size after it.
TEST(RefusedKeys, a_key_is_counted_once_until_deleted_mended_or_gone_at_a_whole_read) {
    refused_keys r;
    struct row {
        const char* what;
        std::function<void()> step;
        uint64_t count;
        size_t size;
    };
    const std::vector<etcd_kv> still = {{"/p/relays/a", "", 0, 0, 0}, {"/p/relays/x", "", 0, 0, 0}};
    const std::vector<etcd_kv> none;
    const row rows[] = {
        {"a refused", [&] { EXPECT_TRUE(r.refuse("/p/relays/a")); }, 1, 1},
        {"a again (every apply meets it)", [&] { EXPECT_FALSE(r.refuse("/p/relays/a")); }, 1, 1},
        {"b refused", [&] { EXPECT_TRUE(r.refuse("/p/trunks/07/e")); }, 2, 2},
        {"b deleted: forgotten, the count stays", [&] { r.forget("/p/trunks/07/e"); }, 2, 1},
        {"b back, refused again: counted again", [&] { EXPECT_TRUE(r.refuse("/p/trunks/07/e")); }, 3, 2},
        {"a mended", [&] { r.forget("/p/relays/a"); }, 3, 1},
        {"a refused again", [&] { EXPECT_TRUE(r.refuse("/p/relays/a")); }, 4, 2},
        {"a whole read that still has a (and x, never refused), not b", [&] { r.keep_only(still, none); }, 4, 1},
        {"a is still counted once", [&] { EXPECT_FALSE(r.refuse("/p/relays/a")); }, 4, 1},
        {"a whole read of an empty registry", [&] { r.keep_only(none); }, 4, 0},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        x.step();
        EXPECT_EQ(r.count(), x.count);
        EXPECT_EQ(r.size(), x.size);
    }
}

TEST(Placement, least_loaded_first_within_room_and_all_or_nothing) {
    const auto t0 = steady::now();
    struct row {
        const char* what;
        std::vector<relay_record> relays;
        unsigned directors;
        uint32_t count;
        std::string region;
        place_error error;
        std::map<std::string, uint32_t> want;   // edge -> placed
    };
    const row rows[] = {
        {"spread evenly over equal edges", {origin("o", 5, 40005), edge("a", 100, 0), edge("b", 100, 0)}, 1, 10, "",
         place_error::none, {{"a", 5}, {"b", 5}}},
        {"the emptier edge first, then level", {origin("o", 5, 40005), edge("a", 100, 50), edge("b", 100, 0)}, 1, 60,
         "", place_error::none, {{"a", 5}, {"b", 55}}},
        // b fills to a's 10 %, then both rise together: (100 + 9) / 1000 = (0 + 11) / 100 nearly.
        {"by load over slots, not by count", {origin("o", 5, 40005), edge("a", 1000, 100), edge("b", 100, 0)}, 1, 20,
         "", place_error::none, {{"a", 9}, {"b", 11}}},
        {"more than the room: nothing", {origin("o", 5, 40005), edge("a", 10, 5), edge("b", 10, 8)}, 1, 8, "",
         place_error::no_capacity, {}},
        {"exactly the room", {origin("o", 5, 40005), edge("a", 10, 5), edge("b", 10, 8)}, 1, 7, "", place_error::none,
         {{"a", 5}, {"b", 2}}},
        {"two directors halve the free slots", {origin("o", 5, 40005), edge("a", 10, 0)}, 2, 6, "",
         place_error::no_capacity, {}},
        {"two directors: their half fits", {origin("o", 5, 40005), edge("a", 10, 0)}, 2, 5, "", place_error::none,
         {{"a", 5}}},
        {"region label filters", {origin("o", 5, 40005), edge("a", 100, 0, "eu"), edge("b", 100, 0, "us")}, 1, 30,
         "us", place_error::none, {{"b", 30}}},
        {"no origin has the session", {origin("o", 6, 40006), edge("a", 100, 0)}, 1, 1, "",
         place_error::unknown_session, {}},
        {"zero listeners", {origin("o", 5, 40005), edge("a", 100, 0)}, 1, 0, "", place_error::bad_request, {}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        placement_core core(3000ms);
        for (const auto& x : r.relays) core.upsert(x);
        core.set_directors(r.directors);
        const auto p = core.place(5, r.count, r.region, t0);
        EXPECT_EQ(p.error, r.error) << p.reason;
        if (r.error != place_error::none) {
            EXPECT_TRUE(p.picks.empty());
            continue;
        }
        EXPECT_EQ(p.port, 40005);
        uint32_t sum = 0;
        for (const auto& x : p.picks) sum += x.count;
        EXPECT_EQ(sum, r.count);
        for (const auto& [e, n] : r.want) EXPECT_EQ(placed_on(p, e), n) << e;
    }
}

TEST(Placement, own_placements_count_until_hold_passes_and_draining_edges_get_none) {
    placement_core core(3000ms);
    core.upsert(origin("o", 5, 40005));
    core.upsert(edge("a", 10, 0));
    auto b = edge("b", 10, 0);
    b.draining = true;
    core.upsert(b);
    const auto t0 = steady::now();
    EXPECT_EQ(core.place(5, 10, "", t0).error, place_error::none);
    EXPECT_EQ(placed_on(core.place(5, 1, "", t0), "a"), 0u);
    EXPECT_EQ(core.place(5, 1, "", t0 + 2999ms).error, place_error::no_capacity) << "a's room is pending";
    EXPECT_EQ(core.place(5, 1, "", t0 + 3001ms).error, place_error::none) << "the hold passed";
}

// A client that lost its edge names it (docs/fleet.md "Failover"): the edge
// may still be in the registry until its lease lapses.
TEST(Placement, an_excluded_edge_gets_nobody_while_its_key_is_still_there) {
    const auto t0 = steady::now();
    struct row {
        const char* what;
        std::vector<std::string> exclude;
        place_error error;
        std::map<std::string, uint32_t> want;
    };
    const row rows[] = {
        {"nothing excluded: spread", {}, place_error::none, {{"a", 2}, {"b", 2}, {"c", 2}}},
        {"the dead edge excluded", {"a"}, place_error::none, {{"a", 0}, {"b", 3}, {"c", 3}}},
        {"an unknown id changes nothing", {"zz"}, place_error::none, {{"a", 2}, {"b", 2}, {"c", 2}}},
        {"every edge excluded: no capacity, nothing placed", {"a", "b", "c"}, place_error::no_capacity, {}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        placement_core core(3000ms);
        core.upsert(origin("o", 5, 40005));
        for (const char* id : {"a", "b", "c"}) core.upsert(edge(id, 100, 0));
        const auto p = core.place(5, 6, "", t0, r.exclude);
        EXPECT_EQ(p.error, r.error) << p.reason;
        for (const auto& [e, n] : r.want) EXPECT_EQ(placed_on(p, e), n) << e;
        if (r.error == place_error::no_capacity) {
            EXPECT_TRUE(p.picks.empty());
            EXPECT_NE(p.reason.find("3 excluded by the request"), std::string::npos) << p.reason;
        }
    }
}

// The family a listener joins over (issue 15, docs/fleet.md "Placing
// listeners"): only edges with an address of that family, and its first.
TEST(Placement, the_family_asked_picks_the_edges_and_their_first_address_of_it) {
    const auto t0 = steady::now();
    auto dual = edge("a", 100, 0);
    dual.addresses6 = {"2001:db8:1::a", "2001:db8:2::a"};
    const auto v4only = edge("b", 100, 0);
    auto v6only = edge("c", 100, 0);
    v6only.addresses.clear();
    v6only.addresses6 = {"2001:db8:1::c"};
    struct row {
        const char* what;
        std::vector<relay_record> edges;
        addr_family family;
        uint32_t count;
        place_error error;
        std::map<std::string, std::pair<uint32_t, std::string>> want;   // edge -> (placed, address)
    };
    const row rows[] = {
        {"IPv4: the dual-stack and the IPv4 edge, not the IPv6-only one", {dual, v4only, v6only}, addr_family::ipv4, 6,
         place_error::none, {{"a", {3, "198.18.1.1"}}, {"b", {3, "198.18.1.1"}}, {"c", {0, ""}}}},
        {"IPv6: the IPv4-only edge is skipped, the first IPv6 address is handed out", {dual, v4only, v6only},
         addr_family::ipv6, 6, place_error::none,
         {{"a", {3, "2001:db8:1::a"}}, {"b", {0, ""}}, {"c", {3, "2001:db8:1::c"}}}},
        {"IPv6 with only IPv4 edges: no capacity, nothing placed", {v4only}, addr_family::ipv6, 1,
         place_error::no_capacity, {}},
        {"IPv4 with only an IPv6 edge: no capacity", {v6only}, addr_family::ipv4, 1, place_error::no_capacity, {}},
        {"IPv6 past the IPv6 edges' room, though the IPv4 one has room: nothing", {dual, v4only, v6only},
         addr_family::ipv6, 201, place_error::no_capacity, {}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        placement_core core(3000ms);
        core.upsert(origin("o", 5, 40005));
        for (const auto& e : r.edges) core.upsert(e);
        const auto p = core.place(5, r.count, "", t0, {}, r.family);
        EXPECT_EQ(p.error, r.error) << p.reason;
        if (r.error != place_error::none) {
            EXPECT_TRUE(p.picks.empty());
            EXPECT_NE(p.reason.find(r.family == addr_family::ipv6 ? "an IPv6 address" : "an IPv4 address"),
                      std::string::npos)
                << p.reason;
            continue;
        }
        for (const auto& [e, w] : r.want) {
            EXPECT_EQ(placed_on(p, e), w.first) << e;
            for (const auto& x : p.picks)
                if (x.edge == e) {
                    EXPECT_EQ(x.address, w.second) << e;
                }
        }
    }
}

TEST(Placement, family_names_parse_and_anything_else_is_refused_by_name) {
    struct row {
        std::string text;
        std::optional<addr_family> want;
        const char* why;   // a piece of the reason
    };
    const row rows[] = {
        {"ipv4", addr_family::ipv4, ""},
        {"ipv6", addr_family::ipv6, ""},
        {"IPv6", std::nullopt, "family \"IPv6\" is neither"},
        {"inet6", std::nullopt, "family \"inet6\""},
        {"ipv6 ", std::nullopt, "family \"ipv6 \""},
        {"", std::nullopt, "family \"\""},
        {std::string(300, 'x'), std::nullopt, "a string of 300 bytes"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.text.substr(0, 20));
        std::string why;
        const auto f = parse_family(r.text, &why);
        EXPECT_EQ(f, r.want);
        if (r.want) {
            EXPECT_STREQ(family_name(*r.want), r.text.c_str());
        } else {
            EXPECT_NE(why.find(r.why), std::string::npos) << why;
        }
    }
}

// An edge's report that already counts this director's placements must not
// count them twice for the balance (the room keeps them for hold_ms).
TEST(Placement, a_report_that_includes_our_placements_is_not_counted_twice_for_balance) {
    placement_core core(3000ms);
    core.upsert(origin("o", 5, 40005));
    core.upsert(edge("a", 100, 0));
    core.upsert(edge("b", 100, 0));
    const auto t0 = steady::now();
    const auto first = core.place(5, 10, "", t0);
    ASSERT_EQ(placed_on(first, "a"), 5u);
    ASSERT_EQ(placed_on(first, "b"), 5u);
    core.upsert(edge("a", 100, 5));   // a reports its 5 joins; b's report is not here yet
    const auto next = core.place(5, 4, "", t0 + 10ms);
    EXPECT_EQ(placed_on(next, "a"), 2u);
    EXPECT_EQ(placed_on(next, "b"), 2u);
    EXPECT_EQ(core.room(edge("a", 100, 5), t0 + 10ms), 100u - 5 - 7) << "the room still holds all 7 placed on a";
}

TEST(Planner, eight_million_listeners_on_100g_edges) {
    plan_inputs in;
    in.listeners = 8000000;
    const auto o = make_plan(in);
    // 100 Gbit/s * 0.9 / (154 B * 8 * 50/s) = 1 461 038 listeners an edge (line-bound).
    EXPECT_EQ(o.per_edge, 1461038u);
    EXPECT_EQ(o.edges, 6u);
    EXPECT_EQ(o.origins, 2u);
    EXPECT_EQ(o.depth, 1u);
    EXPECT_EQ(o.ports, 8u);
    EXPECT_EQ(o.cores, 12u) << "1.33 M listeners = 66.7 Mpps an edge: 2 cores at 57.3 Mpps";
    EXPECT_NEAR(o.edge_egress_gbps, 492.8, 0.1);
    EXPECT_NEAR(o.etcd_writes_per_s, 8, 1e-9);
    const auto text = format_plan(in, o);
    EXPECT_NE(text.find("assumptions"), std::string::npos);
    EXPECT_NE(text.find("63.7 Mpps per core"), std::string::npos);
    // Tiny relays (100 Mbit/s: 1461 listeners each) for a big crowd: 6845
    // edges, more trunks than an origin's 1461 slots: a middle tier of
    // ceil(6845 / 1461) = 5 relays per origin.
    in.line_rate_gbps = 0.1;
    in.listeners = 10000000;
    const auto small = make_plan(in);
    EXPECT_EQ(small.per_edge, 1461u);
    EXPECT_EQ(small.edges, 6845u);
    EXPECT_EQ(small.depth, 2u);
    EXPECT_EQ(small.mid_relays, 10u);
}

// ---------------------------------------------------------------------------
// The etcd client

TEST(EtcdClient, put_get_range_delete_and_create_if_absent) {
    etcd_client c(shared_etcd().endpoints());
    const auto p = unique_prefix();
    EXPECT_GT(c.put(p + "/a", "1"), 0);
    c.put(p + "/b", std::string("\0two", 4));
    c.put(p + "0", "outside the prefix");
    ASSERT_TRUE(c.get(p + "/a").has_value());
    EXPECT_EQ(c.get(p + "/b")->value, std::string("\0two", 4));
    EXPECT_FALSE(c.get(p + "/none").has_value());
    int64_t rev = 0;
    const auto kvs = c.range_prefix(p + "/", &rev);
    ASSERT_EQ(kvs.size(), 2u);
    EXPECT_EQ(kvs[0].key, p + "/a");
    EXPECT_GT(rev, 0);
    EXPECT_EQ(c.del(p + "/a"), 1);
    EXPECT_EQ(c.del(p + "/a"), 0);
    EXPECT_TRUE(c.create_if_absent(p + "/t", "first"));
    EXPECT_FALSE(c.create_if_absent(p + "/t", "second"));
    EXPECT_EQ(c.get(p + "/t")->value, "first");
}

TEST(EtcdClient, racing_creators_exactly_one_wins) {
    const auto p = unique_prefix();
    std::atomic<int> wins{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i)
        ts.emplace_back([&, i] {
            etcd_client c(shared_etcd().endpoints());
            for (int k = 0; k < 20; ++k)
                if (c.create_if_absent(p + "/k" + std::to_string(k), std::to_string(i))) ++wins;
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(wins.load(), 20);
}

TEST(EtcdClient, a_lease_takes_its_keys_with_it) {
    etcd_client c(shared_etcd().endpoints());
    const auto p = unique_prefix();
    const int64_t kept = c.lease_grant(5);
    c.put(p + "/kept", "x", kept);
    EXPECT_GT(c.lease_keepalive(kept), 0);
    c.lease_revoke(kept);
    EXPECT_FALSE(c.get(p + "/kept").has_value()) << "revoked: gone at once";
    EXPECT_EQ(c.lease_keepalive(kept), 0) << "a revoked lease cannot be kept alive";
    const int64_t lapsing = c.lease_grant(1);
    c.put(p + "/lapsing", "x", lapsing);
    EXPECT_TRUE(eventually([&] { return !c.get(p + "/lapsing").has_value(); }))
        << "no keep-alive: etcd deletes the key when the 1 s lease lapses";
}

TEST(EtcdClient, watch_sees_puts_and_deletes_and_stops) {
    const auto p = unique_prefix();
    etcd_client c(shared_etcd().endpoints());
    const int64_t from = c.put(p + "/before", "0");
    std::mutex mu;
    std::vector<etcd_event> seen;
    std::atomic<bool> stop{false};
    std::thread w([&] {
        etcd_client wc(shared_etcd().endpoints());
        wc.watch_prefix(p + "/", from + 1,
                        [&](const std::vector<etcd_event>& evs, int64_t) {
                            std::lock_guard lk(mu);
                            seen.insert(seen.end(), evs.begin(), evs.end());
                            return true;
                        },
                        stop);
    });
    c.put(p + "/x", "1");
    c.del(p + "/x");
    c.put(p + "0", "outside");
    EXPECT_TRUE(eventually([&] {
        std::lock_guard lk(mu);
        return seen.size() >= 2;
    }));
    stop = true;
    w.join();
    std::lock_guard lk(mu);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_FALSE(seen[0].deleted);
    EXPECT_EQ(seen[0].kv.key, p + "/x");
    EXPECT_EQ(seen[0].kv.value, "1");
    EXPECT_TRUE(seen[1].deleted);
    EXPECT_EQ(seen[1].kv.key, p + "/x");
}

TEST(EtcdClient, nobody_listening_is_an_error_naming_the_endpoint) {
    etcd_client c({"http://127.0.0.1:" + std::to_string(test::free_port())}, 300ms);
    try {
        c.put("/x", "y");
        FAIL() << "no error";
    } catch (const etcd_error& e) {
        EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------------------
// A relay's registrar

registrar_options reg_options(const etcd_server& e, const std::string& prefix, const std::string& id) {
    registrar_options o;
    o.etcd = e.endpoints();
    o.prefix = prefix;
    o.relay_id = id;
    o.lease_ttl_s = 1;
    o.refresh_ms = 100;
    o.min_put_ms = 200;
    return o;
}

// A relay's report without a data plane (the registry does not care who
// fills it): an edge with `slots` and a load the test moves.
struct fake_load {
    std::atomic<uint64_t> listeners{0};
    relay_record operator()(const std::string& role, uint64_t slots, std::vector<std::pair<uint32_t, uint16_t>> s) {
        relay_record r;
        r.role = role;
        r.addresses = {"198.18.0.1"};
        r.slots = slots;
        r.listeners = listeners.load();
        r.sessions = std::move(s);
        return r;
    }
};

std::optional<relay_record> registered(etcd_client& c, const std::string& prefix, const std::string& id) {
    const auto kv = c.get(relay_key(prefix, id));
    if (!kv) return std::nullopt;
    return relay_record::from_json(kv->value, nullptr);
}

TEST(Registrar, registers_refreshes_load_drains_and_leaves) {
    const auto p = unique_prefix();
    fake_load load;
    registrar reg(reg_options(shared_etcd(), p, "edge-1"), [&] { return load("edge", 500, {}); });
    reg.start();
    etcd_client c(shared_etcd().endpoints());
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-1").has_value(); }));
    auto r = registered(c, p, "edge-1");
    EXPECT_EQ(r->id, "edge-1");
    EXPECT_EQ(r->role, "edge");
    EXPECT_EQ(r->slots, 500u);
    EXPECT_FALSE(r->draining);
    EXPECT_NE(c.get(relay_key(p, "edge-1"))->lease, 0) << "under a lease";
    load.listeners = 42;
    EXPECT_TRUE(eventually([&] { return registered(c, p, "edge-1")->listeners == 42; })) << "the load is refreshed";
    EXPECT_TRUE(reg.drain(2s));
    EXPECT_TRUE(registered(c, p, "edge-1")->draining) << "drain() returns once etcd has it";
    reg.stop(true);
    EXPECT_FALSE(registered(c, p, "edge-1").has_value()) << "a clean stop revokes the lease: the key goes at once";
}

TEST(Registrar, a_lease_lost_is_registered_again) {
    const auto p = unique_prefix();
    fake_load load;
    registrar reg(reg_options(shared_etcd(), p, "edge-2"), [&] { return load("edge", 500, {}); });
    reg.start();
    etcd_client c(shared_etcd().endpoints());
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-2").has_value(); }));
    const int64_t first = c.get(relay_key(p, "edge-2"))->lease;
    c.lease_revoke(first);   // as if etcd had expired it
    EXPECT_TRUE(eventually([&] {
        const auto kv = c.get(relay_key(p, "edge-2"));
        return kv && kv->lease != first;
    })) << "re-registered under a new lease";
    EXPECT_TRUE(eventually([&] { return reg.status().grants == 2; })) << "one lease more, no more";
    EXPECT_EQ(reg.status().grants, 2u);
    reg.stop(true);
}

TEST(Registrar, stopped_without_revoking_the_key_lapses_with_its_lease) {
    // What a SIGKILL leaves: no revoke, no more keep-alives.
    const auto p = unique_prefix();
    fake_load load;
    registrar reg(reg_options(shared_etcd(), p, "edge-3"), [&] { return load("edge", 500, {}); });
    reg.start();
    etcd_client c(shared_etcd().endpoints());
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-3").has_value(); }));
    reg.stop(false);
    EXPECT_TRUE(registered(c, p, "edge-3").has_value()) << "not revoked: still there right after";
    EXPECT_TRUE(eventually([&] { return !registered(c, p, "edge-3").has_value(); }, 5s)) << "gone with the lease";
}

TEST(Registrar, etcd_down_and_back_the_key_is_back) {
    etcd_server e;
    const std::string p = "/stentor";
    fake_load load;
    registrar reg(reg_options(e, p, "edge-4"), [&] { return load("edge", 500, {}); });
    reg.start();
    etcd_client c(e.endpoints(), 500ms);
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-4").has_value(); }));
    e.stop(SIGKILL);
    const auto failures = reg.status().failures;
    EXPECT_TRUE(eventually([&] { return reg.status().failures > failures + 2; })) << "rounds fail while etcd is away";
    EXPECT_FALSE(reg.status().registered);
    std::this_thread::sleep_for(1500ms);   // longer than the 1 s lease
    load.listeners = 9;
    e.start();
    EXPECT_TRUE(eventually([&] {
        try {
            const auto r = registered(c, p, "edge-4");
            return r && r->listeners == 9;
        } catch (const etcd_error&) {
            return false;
        }
    })) << "the key is back, with the current load";
    // The status is set once the round that wrote the key ends.
    EXPECT_TRUE(eventually([&] { return reg.status().registered; }));
    reg.stop(true);
}

// ---------------------------------------------------------------------------
// The director

const std::vector<uint8_t> k_secret(32, 0x5a);

control::join_config join_keys() {
    control::join_config jc;
    control::join_key k;
    k.id = 3;
    k.secret = k_secret;
    jc.keys.push_back(k);
    jc.mint_key_id = 3;
    return jc;
}

mint_fn minter_for(const control::token_minter& m) {
    return [&m](uint32_t s, uint8_t tier, size_t n) {
        std::vector<minted> out;
        for (auto& t : m.mint(s, tier, 2000000000u, n)) out.push_back({t.token, t.password});
        return out;
    };
}

director_options dir_options(const etcd_server& e, const std::string& prefix, const std::string& id) {
    director_options o;
    o.etcd = e.endpoints();
    o.prefix = prefix;
    o.director_id = id;
    o.lease_ttl_s = 1;
    o.stale = 2s;
    o.hold = 60s;   // longer than any test: every placement stays counted
    return o;
}

// A small fleet in etcd: one origin with session 7 on UDP 40007, edges
// with the given slots, each kept by its own registrar.
struct fleet_fixture {
    std::string prefix = unique_prefix();
    std::vector<std::unique_ptr<registrar>> regs;
    std::map<std::string, std::shared_ptr<std::atomic<bool>>> draining;
    // addresses6: its IPv6 addresses; v4 = false: none of IPv4.
    void add(const etcd_server& e, const std::string& id, const std::string& role, uint64_t slots,
             std::vector<std::pair<uint32_t, uint16_t>> sessions = {}, std::vector<std::string> addresses6 = {},
             bool v4 = true) {
        auto o = reg_options(e, prefix, id);
        regs.push_back(std::make_unique<registrar>(o, [role, slots, sessions, addresses6, v4] {
            relay_record r;
            r.role = role;
            if (v4) r.addresses = {role == "origin" ? "198.18.2.1" : "198.18.1.1"};
            r.addresses6 = addresses6;
            r.slots = slots;
            r.sessions = sessions;
            return r;
        }));
        regs.back()->start();
    }
};

TEST(Director, places_within_capacity_with_tokens_that_verify_and_records_each_trunk_once) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 100);
    f.add(shared_etcd(), "e2", "edge", 100);
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 3; }));
    const auto a = d.place({7, 150, "", 1});
    ASSERT_EQ(a.error, place_error::none) << a.reason;
    ASSERT_EQ(a.placements.size(), 150u);
    EXPECT_EQ(a.trunks_created, 2u) << "session 7 to e1 and to e2";
    std::map<std::string, int> per_edge;
    const join::token_key key(k_secret.data(), k_secret.size());
    for (const auto& p : a.placements) {
        ++per_edge[p.edge];
        EXPECT_EQ(p.port, 40007);
        EXPECT_EQ(p.address, "198.18.1.1");
        uint8_t raw[join::token_raw_len];
        join::token_fields tf;
        ASSERT_TRUE(join::decode_token(p.token.data(), p.token.size(), raw, tf));
        EXPECT_EQ(tf.session_id, 7u);
        EXPECT_EQ(tf.key_id, 3u);
        uint8_t mac[join::token_mac_len];
        join::token_mac(key, raw, mac);
        EXPECT_TRUE(join::check_tag(raw, mac)) << "minted with the fleet's key";
        char pw[join::token_password_len];
        join::password_of(mac, pw);
        EXPECT_EQ(p.password, std::string(pw, sizeof pw));
    }
    EXPECT_EQ(per_edge["e1"], 75);
    EXPECT_EQ(per_edge["e2"], 75);
    const auto more = d.place({7, 60, "", 1});
    EXPECT_EQ(more.error, place_error::no_capacity) << "50 slots left of 200";
    EXPECT_TRUE(more.placements.empty());
    EXPECT_EQ(d.place({7, 50, "", 1}).trunks_created, 0u) << "the trunks exist";
    etcd_client c(shared_etcd().endpoints());
    EXPECT_EQ(c.range_prefix(trunks_prefix(f.prefix)).size(), 2u);
    EXPECT_EQ(d.place({8, 1, "", 1}).error, place_error::unknown_session);
    d.stop();
}

// An edge has a session only through its trunk key; one that still has it
// while the key is gone (etcd lost its data, or the key was deleted) would go
// silent once its origins drop the trunk: the director records it again.
TEST(Director, an_edge_that_carries_the_session_but_lost_its_trunk_key_gets_it_again) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 1000, {{7, 40007}});
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 2; }));
    EXPECT_EQ(d.place({7, 3, "", 1}).trunks_created, 1u) << "carried, yet no trunk key: recorded";
    etcd_client c(shared_etcd().endpoints());
    ASSERT_TRUE(c.get(trunk_key(f.prefix, 7, "e1")).has_value());
    EXPECT_EQ(d.place({7, 3, "", 1}).trunks_created, 0u) << "seen: not asked again";
    c.del(trunk_key(f.prefix, 7, "e1"));
    ASSERT_TRUE(eventually([&] { return d.status().trunks == 0; })) << "the watch saw the delete";
    EXPECT_EQ(d.place({7, 3, "", 1}).trunks_created, 1u) << "recorded again";
    EXPECT_TRUE(c.get(trunk_key(f.prefix, 7, "e1")).has_value());
    d.stop();
}

TEST(Director, stops_placing_on_draining_edges_and_on_edges_whose_lease_is_gone) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 1000);
    f.add(shared_etcd(), "e2", "edge", 1000);
    f.add(shared_etcd(), "e3", "edge", 1000);
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().edges_live == 3; }));
    ASSERT_TRUE(f.regs[1]->drain(2s));                 // e1 drains
    f.regs[2]->stop(false);                            // e2 "SIGKILLed": its lease lapses
    ASSERT_TRUE(eventually([&] { return d.status().relays == 3; }, 5s)) << "e2's key gone within its TTL";
    ASSERT_EQ(d.status().edges_live, 1u);
    const auto a = d.place({7, 30, "", 1});
    ASSERT_EQ(a.error, place_error::none) << a.reason;
    for (const auto& p : a.placements) EXPECT_EQ(p.edge, "e3");
    d.stop();
}

// A relay record written without a lease (by hand, or by someone who may
// write the registry) stays for ever: the director does not place on it,
// as origins do not send trunks to it; under a lease it counts again.
TEST(Director, places_nothing_on_a_relay_record_without_a_lease) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 100);
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().edges_live == 1; }));
    etcd_client c(shared_etcd().endpoints());
    const auto e1 = c.get(relay_key(f.prefix, "e1"));
    ASSERT_TRUE(e1.has_value());
    auto ghost = nlohmann::json::parse(e1->value);
    ghost["id"] = "ghost";
    ghost["slots"] = 1000000;   // what would draw every placement
    c.put(relay_key(f.prefix, "ghost"), ghost.dump());   // no lease
    std::this_thread::sleep_for(500ms);                    // the watch has seen it
    EXPECT_EQ(d.status().relays, 2u) << "the record without a lease is not in the view";
    const auto a = d.place({7, 30, "", 1});
    ASSERT_EQ(a.error, place_error::none) << a.reason;
    for (const auto& p : a.placements) EXPECT_EQ(p.edge, "e1");
    const int64_t lease = c.lease_grant(30);
    c.put(relay_key(f.prefix, "ghost"), ghost.dump(), lease);
    EXPECT_TRUE(eventually([&] { return d.status().relays == 3; })) << "under a lease it is a relay again";
    c.lease_revoke(lease);
    d.stop();
}

// What a registry writer's keys do to the director (docs/security.md §14).
// A relay record is kept by its key's name: one at relays/zz saying
// "ghost" stayed in the view after zz's lease lapsed (the delete named zz),
// one saying "e1" replaced the real e1. A director counts only keys under a
// lease that say {"id": <their name>}, at most 64: 100 of them made each
// director's share of e1's 100 free slots 0 (no_capacity). A trunk key's
// session only in trunk_key()'s form: 4294967303 was read as 7 (wrapped),
// so the director thought 7/e1 recorded and never wrote it.
TEST(Director, refuses_registry_keys_that_are_not_what_their_name_says_and_counts_at_most_64_directors) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 100);
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().edges_live == 1 && d.status().directors == 1; }));
    etcd_client c(shared_etcd().endpoints());
    const auto e1 = c.get(relay_key(f.prefix, "e1"));
    ASSERT_TRUE(e1.has_value());
    const auto as = [&](const std::string& id) {
        auto j = nlohmann::json::parse(e1->value);
        j["id"] = id;
        j["slots"] = 1000000;   // what would draw every placement
        return j.dump();
    };
    const int64_t lease = c.lease_grant(60);
    const int64_t brief = c.lease_grant(2);
    const std::string t7 = [] {
        trunk_record t;
        t.session = 7;
        t.edge = "e1";
        t.origins = {"o1"};
        t.udp_port = 40007;
        return t.to_json();
    }();
    std::vector<std::tuple<std::string, std::string, int64_t>> many;
    for (int i = 0; i < 100; ++i) {
        const std::string id = fmt::format("b{}", i);
        many.emplace_back("directors/" + id, nlohmann::json{{"id", id}}.dump(), lease);
    }
    struct row {
        const char* what;
        std::vector<std::tuple<std::string, std::string, int64_t>> puts;   // key after <prefix>/, value, lease
        unsigned directors;
        uint64_t refused;
    };
    const std::vector<row> rows = {
        {"relays/zz says ghost, under a brief lease", {{"relays/zz", as("ghost"), brief}}, 1, 1},
        {"relays/zz2 says e1", {{"relays/zz2", as("e1"), lease}}, 1, 2},
        {"a director key without a lease", {{"directors/x1", R"({"id":"x1"})", 0}}, 1, 3},
        {"a director key that is not JSON", {{"directors/x2", "junk", lease}}, 1, 4},
        {"a director key naming another", {{"directors/x3", R"({"id":"other"})", lease}}, 1, 5},
        {"a director key as a director writes it", {{"directors/x4", R"({"id":"x4"})", lease}}, 2, 5},
        {"100 more of them: counted 64", many, 64, 5},
        {"trunks/4294967303/e1 (7 + 2^32)", {{"trunks/4294967303/e1", t7, lease}}, 64, 6},
        {"trunks/07/e1", {{"trunks/07/e1", t7, lease}}, 64, 7},
        {"the same keys again: not counted again", {{"relays/zz2", as("e1"), lease}, {"trunks/07/e1", t7, lease}}, 64, 7},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        for (const auto& [k, v, l] : x.puts) c.put(f.prefix + "/" + k, v, l);
        EXPECT_TRUE(eventually([&] {
            const auto st = d.status();
            return st.directors == x.directors && st.records_refused == x.refused;
        })) << d.status().directors << " directors, " << d.status().records_refused << " refused";
        std::this_thread::sleep_for(200ms);
        const auto st = d.status();
        EXPECT_EQ(st.relays, 2u) << "o1 and e1 only";
        EXPECT_EQ(st.trunks, 0u);
        for (const auto& r : d.relays()) EXPECT_NE(r.slots, 1000000u) << r.id << ": the real e1 stays; " << st.last_error;
    }
    c.lease_revoke(brief);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(d.status().relays, 2u) << "zz's lease gone: nothing of it left";
    const auto a = d.place({7, 1, "", 1});   // 100 free / 64 directors: 1
    ASSERT_EQ(a.error, place_error::none) << a.reason;
    EXPECT_EQ(a.placements.at(0).edge, "e1");
    EXPECT_EQ(a.trunks_created, 1u) << "7/e1 was not there: recorded";
    EXPECT_EQ(d.place({7, 2, "", 1}).error, place_error::no_capacity) << "its share of e1 is 1";
    c.lease_revoke(lease);
    EXPECT_TRUE(eventually([&] { return d.status().directors == 1; })) << "the writer's keys gone";
    c.del(f.prefix + "/directors/x1");
    EXPECT_EQ(d.status().records_refused, 7u);
    d.stop();
}

// POST /v1/place "family" through the director and etcd's records: an
// IPv6 request lands only on edges that advertise IPv6 and gets their first
// IPv6 address; a family that is neither is refused before anything is
// recorded.
TEST(Director, places_by_family_and_refuses_a_bad_family_without_recording_anything) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 1000);                                              // IPv4 only
    f.add(shared_etcd(), "e2", "edge", 1000, {}, {"2001:db8:5354::2", "2001:db8:99::2"});  // dual stack
    f.add(shared_etcd(), "e3", "edge", 1000, {}, {"2001:db8:5354::3"}, false);             // IPv6 only
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().edges_live == 3; }));
    etcd_client c(shared_etcd().endpoints());
    for (const char* bad : {"ipv7", "IPV6", "", "both"}) {
        SCOPED_TRACE(bad);
        const auto a = d.place({7, 4, "", 1, bad});
        EXPECT_EQ(a.error, place_error::bad_request);
        EXPECT_NE(a.reason.find("is neither \"ipv4\" nor \"ipv6\""), std::string::npos) << a.reason;
        EXPECT_TRUE(a.placements.empty());
    }
    EXPECT_TRUE(c.range_prefix(trunks_prefix(f.prefix)).empty()) << "a refused request records no trunk";
    const auto six = d.place({7, 20, "", 1, "ipv6"});
    ASSERT_EQ(six.error, place_error::none) << six.reason;
    ASSERT_EQ(six.placements.size(), 20u);
    std::map<std::string, int> per_edge;
    for (const auto& p : six.placements) {
        ++per_edge[p.edge];
        EXPECT_EQ(p.address, p.edge == "e2" ? "2001:db8:5354::2" : "2001:db8:5354::3") << p.edge;
        EXPECT_EQ(p.port, 40007);
    }
    EXPECT_EQ(per_edge["e1"], 0) << "no IPv6 address: skipped";
    EXPECT_EQ(per_edge["e2"], 10);
    EXPECT_EQ(per_edge["e3"], 10);
    EXPECT_EQ(six.trunks_created, 2u) << "session 7 to e2 and e3 only";
    const auto four = d.place({7, 20, "", 1});   // no family: IPv4, as before the field
    ASSERT_EQ(four.error, place_error::none) << four.reason;
    per_edge.clear();
    for (const auto& p : four.placements) {
        ++per_edge[p.edge];
        EXPECT_EQ(p.address, "198.18.1.1") << p.edge;
    }
    EXPECT_EQ(per_edge["e3"], 0) << "no IPv4 address: skipped";
    EXPECT_EQ(per_edge["e1"] + per_edge["e2"], 20);
    d.stop();
}

TEST(Director, two_directors_at_once_never_overshoot_nor_duplicate_a_trunk) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    // fmt: GCC 12 -O3 sees a false -Wrestrict in "e" + std::to_string(i) here.
    for (int i = 0; i < 4; ++i) f.add(shared_etcd(), fmt::format("e{}", i), "edge", 101 + i);
    const control::token_minter m(join_keys());
    director d1(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    director d2(dir_options(shared_etcd(), f.prefix, "d2"), minter_for(m));
    d1.start();
    d2.start();
    ASSERT_TRUE(eventually([&] { return d1.status().directors == 2 && d2.status().directors == 2 &&
                                        d1.status().relays == 5 && d2.status().relays == 5; }));
    std::map<std::string, int> per_edge;
    std::mutex mu;
    unsigned trunks = 0;
    auto crowd = [&](director& d) {
        // A flash crowd: requests of 7 until refused 20 times in a row.
        for (int refused = 0; refused < 20;) {
            const auto a = d.place({7, 7, "", 1});
            if (a.error != place_error::none) {
                ++refused;
                continue;
            }
            refused = 0;
            std::lock_guard lk(mu);
            trunks += a.trunks_created;
            for (const auto& p : a.placements) ++per_edge[p.edge];
        }
    };
    std::thread t1(crowd, std::ref(d1)), t2(crowd, std::ref(d2));
    t1.join();
    t2.join();
    int total = 0;
    for (int i = 0; i < 4; ++i) {
        const auto e = fmt::format("e{}", i);   // GCC 12 -O3: a false -Wrestrict on "e" + std::to_string(i)
        EXPECT_LE(per_edge[e], 101 + i) << e << " pushed past its slots";
        total += per_edge[e];
    }
    EXPECT_GT(total, 300) << "most of the 410 slots are used (each director its half, in requests of 7)";
    etcd_client c(shared_etcd().endpoints());
    const auto keys = c.range_prefix(trunks_prefix(f.prefix));
    EXPECT_EQ(keys.size(), 4u) << "one trunk key per (session, edge)";
    EXPECT_EQ(trunks, 4u) << "and each created by exactly one transaction";
    d1.stop();
    d2.stop();
}

TEST(Director, etcd_down_serves_the_last_view_for_stale_s_then_refuses) {
    etcd_server e;
    fleet_fixture f;
    f.add(e, "o1", "origin", 1000, {{7, 40007}});
    f.add(e, "e1", "edge", 1000, {{7, 40007}});   // carries the session: no trunk needed
    const control::token_minter m(join_keys());
    director d(dir_options(e, f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 2; }));
    e.stop(SIGKILL);
    EXPECT_EQ(d.place({7, 5, "", 1}).error, place_error::none) << "etcd just went: the last view serves";
    ASSERT_TRUE(eventually([&] { return d.status().stale; }, 10s));
    const auto a = d.place({7, 5, "", 1});
    EXPECT_EQ(a.error, place_error::registry_stale);
    EXPECT_NE(a.reason.find("etcd has not answered"), std::string::npos) << a.reason;
    e.start();
    EXPECT_TRUE(eventually([&] { return !d.status().stale; }, 10s)) << "fresh again once etcd answers";
    EXPECT_EQ(d.place({7, 5, "", 1}).error, place_error::none);
    d.stop();
    for (auto& r : f.regs) r->stop(true);
}

// A watch with a deadline (docs/fleet.md "The view"): etcd is asked for
// progress notifications, and a stream that brings nothing for the deadline
// ends with an error that says so. Rows: an etcd that sends a notification
// every 200 ms keeps a quiet watch open (each one an empty batch); etcd's
// default interval (10 min) ends it after the deadline.
TEST(EtcdClient, a_quiet_watch_with_a_deadline_hears_progress_notifications_or_ends_saying_why) {
    struct row {
        const char* what;
        std::vector<std::string> flags;
        bool ends;
    };
    const row rows[] = {
        {"progress every 200 ms: open for 2.5 s, notified", {"--experimental-watch-progress-notify-interval=200ms"},
         false},
        {"etcd's default interval: ended after the 1 s deadline", {}, true},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        etcd_server e(r.flags);
        etcd_client c(e.endpoints());
        std::atomic<bool> stop{false};
        std::atomic<int> empty{0};
        std::thread stopper([&] {
            std::this_thread::sleep_for(2500ms);
            stop = true;
        });
        const auto t0 = std::chrono::steady_clock::now();
        std::string error;
        try {
            c.watch_prefix("/quiet/", 0,
                           [&](const std::vector<etcd_event>& evs, int64_t) {
                               if (evs.empty()) ++empty;
                               return true;
                           },
                           stop, 1000ms);
        } catch (const etcd_error& ex) {
            error = ex.what();
        }
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        stopper.join();
        if (r.ends) {
            EXPECT_NE(error.find("no event and no progress notification for 1000 ms"), std::string::npos) << error;
            EXPECT_GE(took, 0.9);
            EXPECT_LT(took, 2.0);
        } else {
            EXPECT_EQ(error, "");
            EXPECT_GE(took, 2.4);
            EXPECT_GE(empty.load(), 5) << "progress notifications (and the created answer) as empty batches";
        }
    }
}

// A watch requires a leader (etcd_client.h): on a member that loses its
// leader (cut off from the majority: here the two others are SIGSTOPped, so
// they neither answer nor close a connection) etcd ends the stream with "no
// leader" instead of keeping it open with nothing to say. Three members of a
// cluster on loopback, tuned for quick elections, started and stopped by
// pid. Without the header the watch stayed silent until the test stopped it.
TEST(EtcdClient, a_watch_on_a_member_that_lost_its_leader_ends) {
    char tmpl[] = "/tmp/stentor-etcd3.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    uint16_t client[3], peer[3];
    for (int i = 0; i < 3; ++i) {
        client[i] = test::free_port();
        peer[i] = test::free_port();
    }
    std::string cluster;
    for (int i = 0; i < 3; ++i)
        cluster += fmt::format("{}m{}=http://127.0.0.1:{}", i == 0 ? "" : ",", i, peer[i]);
    pid_t pid[3];
    for (int i = 0; i < 3; ++i) {
        const std::string c = fmt::format("http://127.0.0.1:{}", client[i]);
        const std::string p = fmt::format("http://127.0.0.1:{}", peer[i]);
        std::vector<std::string> args = {"etcd", "--name", fmt::format("m{}", i), "--data-dir",
                                         fmt::format("{}/m{}", dir, i), "--listen-client-urls", c,
                                         "--advertise-client-urls", c, "--listen-peer-urls", p,
                                         "--initial-advertise-peer-urls", p, "--initial-cluster", cluster,
                                         "--heartbeat-interval", "50", "--election-timeout", "500",
                                         "--log-level", "error"};
        pid[i] = ::fork();
        if (pid[i] == 0) {
            const int fd = ::open((dir + fmt::format("/m{}.log", i)).c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp("etcd", argv.data());
            ::_exit(127);
        }
    }
    const auto down = [&] {
        for (int i = 0; i < 3; ++i) {
            ::kill(pid[i], SIGCONT);
            ::kill(pid[i], SIGKILL);
            int st = 0;
            ::waitpid(pid[i], &st, 0);
        }
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    };
    etcd_client c(etcd_endpoints({fmt::format("http://127.0.0.1:{}", client[0])}), 500ms);
    const bool up = eventually(
        [&] {
            try {
                c.put("/probe", "x");   // a write: the cluster has a leader
                return true;
            } catch (const etcd_error&) {
                return false;
            }
        },
        15s);
    if (!up) {
        down();
        FAIL() << "the three-member cluster did not form; see " << dir;
    }
    std::atomic<bool> stop{false};
    std::string error;
    std::atomic<bool> ended{false};
    std::thread w([&] {
        try {
            c.watch_prefix("/quiet/", 0, [](const std::vector<etcd_event>&, int64_t) { return true; }, stop);
        } catch (const etcd_error& ex) {
            error = ex.what();
        }
        ended = true;
    });
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(ended.load()) << "a healthy member keeps the watch: " << error;
    const auto t0 = std::chrono::steady_clock::now();
    ::kill(pid[1], SIGSTOP);
    ::kill(pid[2], SIGSTOP);
    const bool done = eventually([&] { return ended.load(); }, 10s);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stop = true;
    w.join();
    down();
    EXPECT_TRUE(done) << "the watch on the member without a leader ended";
    EXPECT_NE(error.find("no leader"), std::string::npos) << error;
    EXPECT_LT(took, 10.0);
}

// The director's freshness follows its watch, not its lease (docs/fleet.md
// "The view"). The watch's member goes silent (here a proxy in front of etcd
// that stops passing bytes while keeping the connection: what a member cut
// off from the majority looks like to its clients) while the lease's
// keep-alive goes on through another endpoint. Before, the keep-alive kept
// the director "fresh" and it placed from a view that no longer saw the
// registry (an edge that registered meanwhile never appeared). Now the watch
// ends after stale_s / 2 without a word, the whole view is read again
// (through the next endpoint), and the change is seen; with no endpoint
// answering, the director refuses as stale, saying why.
TEST(Director, a_watch_gone_silent_is_read_again_and_a_view_nobody_confirms_goes_stale) {
    etcd_server& e = shared_etcd();
    fleet_fixture f;
    f.add(e, "o1", "origin", 1000, {{7, 40007}});
    f.add(e, "e1", "edge", 1000, {{7, 40007}});
    const control::token_minter m(join_keys());
    test::tcp_proxy px(e.client_port());
    auto o = dir_options(e, f.prefix, "d1");
    o.etcd = etcd_endpoints({px.url(), e.url()});   // the proxy first: the watch starts there
    o.stale = 2s;                                   // the watch's deadline: 1 s
    director d(o, minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 2; }));
    const auto restarts = d.status().watch_restarts;
    px.freeze(true);
    f.add(e, "e2", "edge", 1000, {{7, 40007}});
    EXPECT_TRUE(eventually([&] { return d.status().relays == 3; }, 8s))
        << "the edge registered after the watch's member went silent is seen; relays " << d.status().relays
        << ", last error: " << d.status().last_error;
    EXPECT_GT(d.status().watch_restarts, restarts);
    EXPECT_FALSE(d.status().stale);
    EXPECT_EQ(d.place({7, 2, "", 1}).error, place_error::none);
    d.stop();

    // Only the silent member: nothing confirms the view, so it goes stale
    // (the lease keep-alive through it fails too, as before).
    auto o2 = dir_options(e, f.prefix, "d2");
    px.freeze(false);
    o2.etcd = etcd_endpoints({px.url()});
    director d2(o2, minter_for(m));
    d2.start();
    ASSERT_TRUE(eventually([&] { return d2.status().relays == 3; }));
    px.freeze(true);
    ASSERT_TRUE(eventually([&] { return d2.status().stale; }, 8s));
    const auto a = d2.place({7, 1, "", 1});
    EXPECT_EQ(a.error, place_error::registry_stale);
    EXPECT_NE(a.reason.find("no watch event, progress notification or whole read"), std::string::npos) << a.reason;
    d2.stop();
    px.freeze(false);
    for (auto& r : f.regs) r->stop(true);
}

// ---------------------------------------------------------------------------
// The director's HTTP face (control/director_api.cc), served for real: the
// second review held /v1/place with 1200 trickling connections from one
// address (no connection limit, a 30 s timeout), served a director on
// 0.0.0.0 in clear, compared the token byte by byte and showed etcd URLs
// and error text on an unauthenticated /healthz.

const std::string k_dir_token = "director-test-token-0123456789";

control::director_api_options director_http(unsigned header_timeout_s = 10) {
    control::director_api_options o;
    o.token = k_dir_token;
    o.threads = 2;
    o.limits = {32, 4, 10, header_timeout_s};
    return o;
}

nlohmann::json get_json(unsigned port, const std::string& path, const std::string& token, int* status) {
    httplib::Client c("127.0.0.1", static_cast<int>(port));
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    auto r = c.Get(path, h);
    *status = r ? r->status : -1;
    return r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
}

TEST(DirectorHttp, trickling_connections_from_eight_addresses_neither_lock_out_place_nor_keep_their_slots) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    f.add(shared_etcd(), "e1", "edge", 100);
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 2; }));
    control::director_api api(d, director_http(3));
    const unsigned port = api.port();
    // One address opening 100: 4 kept, the rest refused at accept.
    {
        std::vector<test::fd_guard> one;
        for (int i = 0; i < 100; ++i) one.push_back(test::connect_from("127.0.0.90", port));
        ASSERT_TRUE(eventually([&] { return api.status().guard.too_many_connections_per_ip == 96; }))
            << api.status().guard.too_many_connections_per_ip;
    }
    ASSERT_TRUE(eventually([&] { return api.status().connections == 0; }));
    // 8 addresses x 4 hold all 32 slots, a header byte every 200 ms each.
    std::vector<test::fd_guard> slow;
    for (int a = 0; a < 8; ++a)
        for (int i = 0; i < 4; ++i) {
            slow.push_back(test::connect_from(std::string("127.0.0.").append(std::to_string(60 + a)), port));
            ASSERT_TRUE(test::send_all(slow.back().fd, "POST /v1/place HTTP/1.1\r\nX-Pad: "));
        }
    ASSERT_TRUE(eventually([&] { return api.status().connections == 32; }));
    std::atomic<bool> stop{false};
    std::vector<std::atomic<bool>> closed(slow.size());
    std::thread trickler([&] {
        while (!stop.load()) {
            for (size_t i = 0; i < slow.size(); ++i)
                if (!closed[i] && (!test::send_all(slow[i].fd, "a") || test::closed_by_peer(slow[i].fd))) closed[i] = true;
            std::this_thread::sleep_for(200ms);
        }
    });
    httplib::Client c("127.0.0.1", static_cast<int>(port));
    auto placed = c.Post("/v1/place", {{"Authorization", "Bearer " + k_dir_token}}, R"({"session": 7, "listeners": 3})",
                         "application/json");
    const bool all_closed = eventually(
        [&] {
            for (const auto& x : closed)
                if (!x) return false;
            return true;
        },
        30s);
    stop.store(true);
    trickler.join();
    ASSERT_TRUE(placed);
    EXPECT_EQ(200, placed->status) << placed->body;
    EXPECT_EQ(3u, nlohmann::json::parse(placed->body, nullptr, false)["placements"].size());
    EXPECT_TRUE(all_closed) << "a trickling connection outlived its header deadline";
    ASSERT_TRUE(eventually([&] { return api.status().connections == 0; }));
    const auto st = api.status().guard;
    EXPECT_EQ(1u, st.evicted);
    EXPECT_EQ(31u, st.slow_headers);
    EXPECT_EQ(0u, st.idle_timeouts);
    EXPECT_EQ(0u, st.too_many_connections);
    d.stop();
    for (auto& r : f.regs) r->stop(true);
}

TEST(DirectorHttp, healthz_says_ok_or_degraded_and_no_more_without_the_token_and_the_token_is_checked) {
    fleet_fixture f;
    f.add(shared_etcd(), "o1", "origin", 1000, {{7, 40007}});
    const control::token_minter m(join_keys());
    // Not started: no registry view yet, degraded.
    director idle(dir_options(shared_etcd(), f.prefix, "d0"), minter_for(m));
    {
        control::director_api api(idle, director_http());
        int status = 0;
        const auto j = get_json(api.port(), "/healthz", "", &status);
        EXPECT_EQ(503, status);
        EXPECT_EQ(nlohmann::json({{"status", "degraded"}}), j) << j.dump();
    }
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 1; }));
    control::director_api api(d, director_http());
    struct row {
        const char* what;
        std::string path, token;
        int status;
        std::vector<std::string> keys;   // exactly these, for an object answer
    };
    std::string near = k_dir_token;
    near.back() = near.back() == '9' ? '8' : '9';
    const std::vector<row> rows = {
        {"health without a token: ok, nothing else", "/healthz", "", 200, {"status"}},
        {"health with a wrong token: the same", "/healthz", "wrong-token-0123456789abcdef", 200, {"status"}},
        {"health with the token: the details", "/healthz", k_dir_token, 200,
         {"http", "last_error", "stale", "status", "view_age_s"}},
        {"registry without a token", "/v1/registry", "", 401, {"error", "reason"}},
        {"registry with the token but its last character", "/v1/registry", near, 401, {"error", "reason"}},
        {"registry with a longer token", "/v1/registry", k_dir_token + "x", 401, {"error", "reason"}},
        {"registry with the token", "/v1/registry", k_dir_token, 200,
         {"directors", "last_error", "records_refused", "relays", "stale", "trunks", "view_age_s", "watch_restarts"}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        int status = 0;
        const auto j = get_json(api.port(), r.path, r.token, &status);
        EXPECT_EQ(r.status, status);
        std::vector<std::string> keys;
        for (const auto& [k, v] : j.items()) keys.push_back(k);
        EXPECT_EQ(r.keys, keys) << j.dump();
    }
    EXPECT_EQ(3u, api.status().unauthorized);
    d.stop();
    for (auto& rg : f.regs) rg->stop(true);
}

// An "etcd" that answers as a broken proxy or a stranger at its URL might:
// each path its HTTP status and body, bytes that are not UTF-8 included.
struct fake_etcd {
    using answer = std::pair<int, std::string>;
    httplib::Server srv;
    std::thread th;
    int port = 0;
    fake_etcd(std::map<std::string, answer> by_path, answer otherwise) {
        srv.Post(R"(/.*)", [by_path, otherwise](const httplib::Request& q, httplib::Response& r) {
            const auto it = by_path.find(q.path);
            const answer& a = it != by_path.end() ? it->second : otherwise;
            r.status = a.first;
            r.set_content(a.second, "application/json");
        });
        port = srv.bind_to_any_port("127.0.0.1");
        th = std::thread([this] { srv.listen_after_bind(); });
        while (!srv.is_running()) std::this_thread::sleep_for(1ms);
    }
    ~fake_etcd() {
        srv.stop();
        th.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// The director's answers carry etcd's error text (`last_error`): etcd's
// body, cut at 200 bytes, used to go in as it came, and nlohmann's dump()
// threw type_error 316 on the first byte that was not UTF-8, inside
// libmicrohttpd's callback (the process died). The text is escaped where it
// leaves the etcd client (fleet::escape_for_log: printable ASCII, one \xNN
// per other byte, never a split character), and every answer is rendered
// with U+FFFD for what is not UTF-8 (control/json_text.h) should anything
// else bring such bytes.
TEST(DirectorHttp, etcd_error_text_that_is_not_utf8_is_answered_as_json_not_a_crash) {
    const std::string ok = R"({"header":{"revision":"5"}})";
    struct row {
        const char* what;
        std::map<std::string, fake_etcd::answer> by_path;
        fake_etcd::answer otherwise;
        std::string waits_for;   // in last_error once the director has met it
        std::string shown;       // in last_error, as every answer gives it
        int health_status;    // no view from a broken etcd: degraded
    };
    const std::vector<row> rows = {
        {"a proxy's 502 whose 200th byte starts an e-acute", {}, {502, std::string(199, 'x') + "\xc3\xa9 and more"},
         "HTTP 502: ", "HTTP 502: " + std::string(199, 'x') + "\\xc3...(210 bytes)", 503},
        {"a 200 that is not JSON: Latin-1 and a stray \\xff\\xfe", {}, {200, "caf\xe9 \xff\xfe"},
         "answer is not a JSON object: ", "answer is not a JSON object: caf\\xe9 \\xff\\xfe", 503},
        {"a watch line that is not JSON, cut in a character",
         {{"/v3/lease/grant", {200, R"({"ID":"7","TTL":"1"})"}},
          {"/v3/lease/keepalive", {200, R"({"result":{"ID":"7","TTL":"1"}})"}},
          {"/v3/watch", {200, "\xc3 not json\n"}}},
         {200, ok},
         "watch: a line that is not JSON: ", "watch: a line that is not JSON: \\xc3 not json", 200},
    };
    const control::token_minter m(join_keys());
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        fake_etcd fake(r.by_path, r.otherwise);
        director_options o;
        o.etcd = etcd_endpoints{{fake.url()}};
        o.prefix = "/utf8";
        o.director_id = "d1";
        o.lease_ttl_s = 1;
        o.stale = 2s;
        director d(o, minter_for(m));
        d.start(0ms);
        ASSERT_TRUE(eventually([&] { return d.status().last_error.find(r.waits_for) != std::string::npos; }, 10s))
            << d.status().last_error;
        control::director_api api(d, director_http());
        for (const auto& [path, status] : {std::pair{std::string("/healthz"), r.health_status},
                                           std::pair{std::string("/v1/registry"), 200}}) {
            SCOPED_TRACE(path);
            httplib::Client c("127.0.0.1", static_cast<int>(api.port()));
            auto a = c.Get(path, {{"Authorization", "Bearer " + k_dir_token}});
            ASSERT_TRUE(a) << "no answer: the director died or hung up";
            EXPECT_EQ(status, a->status) << a->body;
            const auto j = nlohmann::json::parse(a->body, nullptr, false);   // strict: UTF-8 checked
            ASSERT_TRUE(j.is_object()) << a->body;
            ASSERT_TRUE(j["last_error"].is_string()) << a->body;
            EXPECT_NE(j["last_error"].get<std::string>().find(r.shown), std::string::npos) << a->body;
        }
        d.stop();
    }
}

// A watch message of the wrong shape used to throw inside libcurl's C
// callback (std::terminate: the director or relay died). Now it ends the
// stream with an etcd_error saying so, and the caller reads the view again.
TEST(EtcdClient, a_watch_message_of_the_wrong_shape_is_an_error_not_a_crash) {
    struct row {
        const char* what;
        std::string line;
        std::string says;   // in the error
    };
    const std::vector<row> rows = {
        {"result is a number", R"({"result":5})", "wrong shape"},
        {"result is a string", R"({"result":"x"})", "wrong shape"},
        {"the header's revision is a list", R"({"result":{"header":{"revision":[1]}}})", "wrong shape"},
        {"canceled is a string", R"({"result":{"canceled":"yes"}})", "wrong shape"},
        {"an event that is a number", R"({"result":{"events":[5]}})", "watch: "},
        {"a kv whose key is not base64 text", R"({"result":{"events":[{"kv":{"key":5}}]}})", "watch: "},
    };
    for (const auto& x : rows) {
        SCOPED_TRACE(x.what);
        fake_etcd fake({{"/v3/watch", {200, x.line + "\n"}}}, {200, "{}"});
        etcd_client c(etcd_endpoints{{fake.url()}}, 1000ms);
        std::atomic<bool> stop{false};
        int calls = 0;
        try {
            c.watch_prefix("/shape/", 1, [&](const std::vector<etcd_event>&, int64_t) { return ++calls, true; }, stop);
            ADD_FAILURE() << "no error";
        } catch (const etcd_error& e) {
            EXPECT_NE(std::string(e.what()).find(x.says), std::string::npos) << e.what();
        }
        EXPECT_EQ(calls, 0);
    }
    // A throw from the caller's callback is the same: an etcd_error.
    fake_etcd fake({{"/v3/watch", {200, R"({"result":{"events":[]}})" "\n"}}}, {200, "{}"});
    etcd_client c(etcd_endpoints{{fake.url()}}, 1000ms);
    std::atomic<bool> stop{false};
    EXPECT_THROW(c.watch_prefix(
                     "/shape/", 1,
                     [](const std::vector<etcd_event>&, int64_t) -> bool { throw std::runtime_error("callback"); }, stop),
                 etcd_error);
}

TEST(DirectorHttp, plain_http_only_on_loopback) {
    fleet_fixture f;
    const control::token_minter m(join_keys());
    director d(dir_options(shared_etcd(), f.prefix, "d1"), minter_for(m));
    auto o = director_http();
    o.listen_addr = "0.0.0.0";
    try {
        control::director_api api(d, o);
        ADD_FAILURE() << "a director in clear on 0.0.0.0 started";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string::npos, std::string(e.what()).find("director: plain HTTP only on a loopback address "
                                                                "(127.0.0.0/8), not 0.0.0.0"))
            << e.what();
    }
    o.token.clear();
    o.listen_addr = "127.0.0.1";
    EXPECT_THROW(control::director_api(d, o), std::invalid_argument) << "no token";
}

// One relay id, one record: registration is a transaction (fleet/registrar.h)

TEST(Registrar, a_second_relay_with_the_same_id_does_not_take_the_record_over) {
    const auto p = unique_prefix();
    fake_load load;
    registrar first(reg_options(shared_etcd(), p, "edge-dup"), [&] { return load("edge", 500, {}); });
    first.start();
    etcd_client c(shared_etcd().endpoints());
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-dup").has_value(); }));
    const int64_t first_lease = c.get(relay_key(p, "edge-dup"))->lease;
    registrar second(reg_options(shared_etcd(), p, "edge-dup"), [&] { return load("edge", 7, {}); });
    second.start();
    ASSERT_TRUE(eventually([&] { return second.status().clashes >= 3; })) << "it keeps trying, and counts";
    const auto st = second.status();
    EXPECT_TRUE(st.clash);
    EXPECT_FALSE(st.registered);
    EXPECT_EQ(st.clash_lease, first_lease);
    EXPECT_NE(st.last_error.find("relay id \"edge-dup\" is already registered"), std::string::npos) << st.last_error;
    EXPECT_NE(st.last_error.find(relay_key(p, "edge-dup")), std::string::npos) << st.last_error;
    const auto kv = c.get(relay_key(p, "edge-dup"));
    EXPECT_EQ(kv->lease, first_lease) << "still the first relay's lease";
    EXPECT_EQ(registered(c, p, "edge-dup")->slots, 500u) << "and its record";
    EXPECT_FALSE(first.status().clash);
    load.listeners = 3;   // the first relay goes on refreshing its own record
    EXPECT_TRUE(eventually([&] { return registered(c, p, "edge-dup")->listeners == 3; }));
    first.stop(true);
    EXPECT_TRUE(eventually([&] { return second.status().registered; })) << "the id is free: the second registers";
    EXPECT_FALSE(second.status().clash);
    EXPECT_EQ(registered(c, p, "edge-dup")->slots, 7u);
    EXPECT_NE(c.get(relay_key(p, "edge-dup"))->lease, first_lease);
    second.stop(true);
    EXPECT_FALSE(registered(c, p, "edge-dup").has_value());
}

TEST(Registrar, a_hand_written_record_under_another_lease_is_left_alone) {
    const auto p = unique_prefix();
    etcd_client c(shared_etcd().endpoints());
    const int64_t theirs = c.lease_grant(30);
    c.put(relay_key(p, "origin-9"), "{\"hand\":\"written\"}", theirs);
    fake_load load;
    registrar reg(reg_options(shared_etcd(), p, "origin-9"), [&] { return load("origin", 5, {}); });
    reg.start();
    ASSERT_TRUE(eventually([&] { return reg.status().clashes >= 2; }));
    EXPECT_EQ(c.get(relay_key(p, "origin-9"))->value, "{\"hand\":\"written\"}");
    EXPECT_EQ(reg.status().clash_lease, theirs);
    // A record without a lease (a blind put by hand) is not ours either.
    c.lease_revoke(theirs);
    c.put(relay_key(p, "origin-9"), "{\"no\":\"lease\"}");
    const auto before = reg.status().clashes;
    ASSERT_TRUE(eventually([&] { return reg.status().clashes >= before + 2; }));
    EXPECT_EQ(c.get(relay_key(p, "origin-9"))->value, "{\"no\":\"lease\"}");
    EXPECT_EQ(reg.status().clash_lease, 0);
    c.del(relay_key(p, "origin-9"));
    EXPECT_TRUE(eventually([&] { return reg.status().registered; })) << "gone: registered";
    EXPECT_EQ(registered(c, p, "origin-9")->role, "origin");
    reg.stop(true);
}

TEST(EtcdClient, put_if_absent_or_leased_writes_only_its_own_key) {
    etcd_client c(shared_etcd().endpoints());
    const auto p = unique_prefix();
    const int64_t mine = c.lease_grant(30), theirs = c.lease_grant(30);
    EXPECT_TRUE(c.put_if_absent_or_leased(p + "/k", "1", mine)) << "absent: created";
    EXPECT_TRUE(c.put_if_absent_or_leased(p + "/k", "2", mine)) << "ours: rewritten";
    std::optional<etcd_kv> holder;
    EXPECT_FALSE(c.put_if_absent_or_leased(p + "/k", "3", theirs, &holder)) << "another lease's: refused";
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->lease, mine);
    EXPECT_EQ(holder->value, "2");
    EXPECT_EQ(c.get(p + "/k")->value, "2");
    c.lease_revoke(mine);
    c.lease_revoke(theirs);
}

// ---------------------------------------------------------------------------
// etcd over TLS with client certificates and users (docs/fleet.md "Running
// etcd securely"): a secure etcd of the fixture's own making.

std::unique_ptr<etcd_server>& secure_slot() {
    static std::unique_ptr<etcd_server> e;
    return e;
}
etcd_server& secure_etcd() {
    auto& e = secure_slot();
    if (!e) e = std::make_unique<etcd_server>(test::etcd_security{});
    return *e;
}
class secure_env : public ::testing::Environment {
public:
    void TearDown() override { secure_slot().reset(); }
};
const auto* const g_secure_env = ::testing::AddGlobalTestEnvironment(new secure_env);

// The secure etcd's calls take longer than a loopback etcd's (TLS, and
// authenticating is a bcrypt check and a raft write in 3.4) and the test
// machine is shared: generous timeouts, so a slow moment is not a failure.
constexpr auto tls_timeout = 5000ms;

// What the relay's own, well-configured client sees: the truth.
std::optional<etcd_kv> truth(const std::string& key) {
    static etcd_client c(secure_etcd().endpoints(), tls_timeout);
    return c.get(key);
}

// A registrar's options for the secure etcd: its timeouts follow refresh_ms.
registrar_options tls_reg_options(const etcd_server& e, const std::string& prefix, const std::string& id) {
    auto o = reg_options(e, prefix, id);
    o.lease_ttl_s = 3;
    o.refresh_ms = 500;
    return o;
}

// The secure etcd's endpoints with `change` applied to the access.
template <class F>
etcd_endpoints secure_with(F change) {
    auto ep = secure_etcd().endpoints();
    change(ep.access);
    return ep;
}

TEST(EtcdTls, the_fleet_client_works_over_tls_with_a_client_certificate_and_a_user) {
    auto& e = secure_etcd();
    ASSERT_EQ(e.url().rfind("https://", 0), 0u);
    etcd_client c(e.endpoints(), tls_timeout);
    const auto p = unique_prefix();
    EXPECT_GT(c.put(p + "/a", "1"), 0);
    EXPECT_EQ(c.get(p + "/a")->value, "1");
    EXPECT_EQ(c.range_prefix(p + "/").size(), 1u);
    EXPECT_TRUE(c.create_if_absent(p + "/t", "x"));
    EXPECT_FALSE(c.create_if_absent(p + "/t", "y"));
    const int64_t lease = c.lease_grant(5);
    EXPECT_TRUE(c.put_if_absent_or_leased(p + "/l", "z", lease));
    EXPECT_GT(c.lease_keepalive(lease), 0);
    c.lease_revoke(lease);
    EXPECT_FALSE(c.get(p + "/l").has_value());
    EXPECT_EQ(c.del(p + "/a"), 1);
    EXPECT_EQ(c.authentications(), 1u) << "one token for all of it";
    EXPECT_TRUE(c.metric("etcd_server_has_leader").has_value()) << "/metrics over TLS too";

    // A watch over TLS with the token.
    std::atomic<bool> stop{false};
    std::atomic<int> seen{0};
    std::thread w([&] {
        etcd_client wc(e.endpoints(), tls_timeout);
        try {
            wc.watch_prefix(p + "/w/", 0, [&](const std::vector<etcd_event>& evs, int64_t) {
                seen += static_cast<int>(evs.size());
                return true;
            }, stop);
        } catch (const etcd_error&) {
        }
    });
    EXPECT_TRUE(eventually([&] {
        c.put(p + "/w/x", "1");
        return seen.load() > 0;
    }));
    stop = true;
    w.join();

    // A relay's registrar and a director over it.
    fake_load load;
    registrar reg(tls_reg_options(e, p, "edge-tls"), [&] { return load("edge", 100, {{7, 40007}}); });
    reg.start();
    registrar org(tls_reg_options(e, p, "origin-tls"), [&] { return load("origin", 100, {{7, 40007}}); });
    org.start();
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-tls").has_value(); }, 20s)) << reg.status().last_error;
    const control::token_minter m(join_keys());
    director d(dir_options(e, p, "d-tls"), minter_for(m));
    d.start();
    ASSERT_TRUE(eventually([&] { return d.status().relays == 2; }, 20s));
    EXPECT_EQ(d.place({7, 3, "", 1}).error, place_error::none);
    d.stop();
    reg.stop(true);
    org.stop(true);
    EXPECT_FALSE(registered(c, p, "edge-tls").has_value()) << "revoked over TLS too";
}

struct refused_row {
    const char* what;
    std::function<void(etcd_access&)> change;
    std::vector<std::string> says;   // each must be in the error
};

TEST(EtcdTls, a_wrong_ca_a_missing_or_foreign_client_certificate_a_wrong_password_or_no_user_fail_clearly_and_change_nothing) {
    auto& e = secure_etcd();
    const std::string other_ca = e.file("other-ca.crt"), other_crt = e.file("other.crt"), other_key = e.file("other.key");
    const refused_row rows[] = {
        {"etcd's certificate checked against another CA", [&](etcd_access& a) { a.ca_file = other_ca; },
         {"127.0.0.1", "certificate"}},
        {"no client certificate (etcd --client-cert-auth)",
         [](etcd_access& a) {
             a.cert_file.clear();
             a.key_file.clear();
         },
         {"127.0.0.1"}},
        {"a client certificate another CA signed",
         [&](etcd_access& a) {
             a.cert_file = other_crt;
             a.key_file = other_key;
         },
         {"127.0.0.1"}},
        {"a client certificate with a Common Name (etcd's gateway refuses it with users on)",
         [&](etcd_access& a) {
             a.cert_file = e.file("named.crt");
             a.key_file = e.file("named.key");
         },
         {"HTTP 400", "Common Name"}},
        {"a wrong password", [](etcd_access& a) { a.password = make_secret("not-the-password"); },
         {"authenticating as user \"stentor\" failed", "invalid user ID or password"}},
        {"an unknown user", [](etcd_access& a) { a.user = "mallory"; },
         {"authenticating as user \"mallory\" failed"}},
        {"no user at all (TLS alone is not a user)",
         [](etcd_access& a) {
             a.user.clear();
             a.password.reset();
         },
         {"user name"}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const auto p = unique_prefix();
        etcd_client c(secure_with(r.change), tls_timeout);
        std::string why;
        try {
            c.put(p + "/relays/victim", "{\"forged\":true}");
        } catch (const etcd_error& ex) {
            why = ex.what();
        }
        ASSERT_FALSE(why.empty()) << "the put went through";
        for (const auto& s : r.says) EXPECT_NE(why.find(s), std::string::npos) << why;
        try {
            c.create_if_absent(p + "/trunks/1/victim", "{}");
            ADD_FAILURE() << "the transaction went through";
        } catch (const etcd_error&) {
        }
        EXPECT_FALSE(truth(p + "/relays/victim").has_value()) << "nothing written";
        EXPECT_FALSE(truth(p + "/trunks/1/victim").has_value()) << "nothing written";
    }
    // And a registrar with a wrong password registers nothing, saying why.
    const auto p = unique_prefix();
    auto o = tls_reg_options(e, p, "edge-x");
    o.etcd.access.password = make_secret("wrong");
    fake_load load;
    registrar reg(o, [&] { return load("edge", 1, {}); });
    reg.start();
    ASSERT_TRUE(eventually([&] { return reg.status().failures >= 2; }, 20s));
    EXPECT_NE(reg.status().last_error.find("invalid user ID or password"), std::string::npos) << reg.status().last_error;
    reg.stop(true);
    EXPECT_FALSE(truth(relay_key(p, "edge-x")).has_value());
}

TEST(EtcdTls, plain_http_to_a_tls_etcd_gets_nothing_through) {
    auto& e = secure_etcd();
    const std::string url = "http://" + e.url().substr(std::string("https://").size());
    etcd_client c(std::vector<std::string>{url}, tls_timeout);
    const auto p = unique_prefix();
    EXPECT_THROW(c.put(p + "/x", "y"), etcd_error);
    EXPECT_FALSE(truth(p + "/x").has_value());
}

TEST(EtcdTls, an_expired_auth_token_is_renewed) {
    // etcd's simple tokens lapse after --auth-token-ttl of idleness.
    etcd_server e(test::etcd_security{true, 1});
    etcd_client c(e.endpoints(), tls_timeout);
    const auto p = unique_prefix();
    c.put(p + "/a", "1");
    EXPECT_EQ(c.authentications(), 1u);
    std::this_thread::sleep_for(3500ms);
    c.put(p + "/a", "2");   // the old token is refused; a new one, then the put
    EXPECT_EQ(c.get(p + "/a")->value, "2");
    EXPECT_EQ(c.authentications(), 2u) << "renewed once";
    // A lease kept alive across a lapse: etcd 3.4 does not check a
    // keep-alive's token (it answers), and the next put renews the token.
    const int64_t lease = c.lease_grant(10);
    c.put(p + "/l", "x", lease);
    std::this_thread::sleep_for(3500ms);
    EXPECT_GT(c.lease_keepalive(lease), 0);
    c.put(p + "/l", "y", lease);
    EXPECT_EQ(c.get(p + "/l")->value, "y");
    EXPECT_EQ(c.authentications(), 3u);
    // And a registrar across token lapses keeps its record up.
    fake_load load;
    auto o = tls_reg_options(e, p, "edge-ttl");
    registrar reg(o, [&] { return load("edge", 1, {}); });
    reg.start();
    ASSERT_TRUE(eventually([&] { return registered(c, p, "edge-ttl").has_value(); }, 20s));
    load.listeners = 5;
    EXPECT_TRUE(eventually([&] { return registered(c, p, "edge-ttl")->listeners == 5; }, 20s));
    reg.stop(true);
}

}  // namespace
}  // namespace stentor::fleet
