// IPv6 in profiles and the IPv6 next-hop interface (issue 15): the [[port]]
// keys ipv6, gateway6, gateway6_mac, gateway6_learnt load, every refusal
// names file:line:col and the key; the control plane routes an IPv6
// destination to itself (on-link) or to the gateway and hands back a
// neighbour-table entry flagged IPv6 that the next snapshot can find.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "profile_error.h"
#include "ipv6.h"
#include "state.h"
#include "stentor/dp_shared.h"

namespace stentor::control {
namespace {

using test::error_of;

// Lines 1-3 eal, 4-6 dataplane, 7-10 port, then the IPv6 keys from line 11,
// then the api (its two lines after them).
const std::string k_eal = "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\", \"net_null1\"]\n";
const std::string k_dp = "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n";
const std::string k_port = "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n";
const std::string k_api = "[api]\ntoken = \"0123456789abcdef\"\nplain_http = true\n";

std::string profile_with(const std::string& port_keys, const std::string& more_ports = "") {
    return k_eal + k_dp + k_port + port_keys + more_ports + k_api;
}

ipv6_addr a6(const char* s) {
    const auto a = parse_ipv6(s);
    EXPECT_TRUE(a.has_value()) << s;
    return a.value_or(ipv6_addr{});
}

TEST(ConfigIpv6, PortKeysLoad) {
    const auto p = parse_profile(profile_with("ipv6 = \"2001:db8:5354::1/64\"\ngateway6 = \"fe80::1\"\n"
                                              "gateway6_mac = \"02:00:00:00:00:fe\"\n"),
                                 "t.toml");
    ASSERT_EQ(1u, p.ports.size());
    ASSERT_TRUE(p.ports[0].ipv6.has_value());
    EXPECT_EQ("2001:db8:5354::1", format_ipv6(*p.ports[0].ipv6));
    EXPECT_EQ(64u, p.ports[0].prefix6_len);
    EXPECT_EQ(a6("fe80::1"), p.ports[0].gateway6);
    ASSERT_TRUE(p.ports[0].gateway6_mac.has_value());
    EXPECT_EQ(0xfe, (*p.ports[0].gateway6_mac)[5]);
    // Learnt instead of pinned, a gateway inside the prefix, and no IPv6 at all.
    const auto q = parse_profile(profile_with("ipv6 = \"2001:db8:5354::1/64\"\ngateway6 = \"2001:db8:5354::fe\"\n"
                                              "gateway6_learnt = true\n"),
                                 "t.toml");
    EXPECT_TRUE(q.ports[0].gateway6_learnt);
    // A /127 has no subnet-router anycast address (RFC 6164): both ends are hosts.
    const auto p2p = parse_profile(profile_with("ipv6 = \"2001:db8:5354::1/127\"\ngateway6 = \"2001:db8:5354::\"\n"
                                                "gateway6_learnt = true\n"),
                                   "t.toml");
    EXPECT_EQ(a6("2001:db8:5354::"), p2p.ports[0].gateway6);
    EXPECT_FALSE(parse_profile(profile_with(""), "t.toml").ports[0].ipv6.has_value());
}

struct error_row {
    std::string name;
    std::string keys;    // from line 11
    std::string expect;  // a substring of the message, from "t.toml:"
    std::string more_ports = "";
};

std::vector<error_row> error_rows() {
    const std::string ip = "ipv6 = \"2001:db8:5354::1/64\"\n";
    return {
        {"not_an_address", "ipv6 = \"2001:db8::g/64\"\n", "t.toml:11:8: port[0].ipv6: \"2001:db8::g/64\" is not ADDRESS/PREFIX"},
        {"no_prefix", "ipv6 = \"2001:db8::1\"\n", "t.toml:11:8: port[0].ipv6: \"2001:db8::1\" is not ADDRESS/PREFIX"},
        {"with_zone", "ipv6 = \"fe80::1%eth0/64\"\n", "t.toml:11:8: port[0].ipv6: \"fe80::1%eth0/64\" is not ADDRESS/PREFIX"},
        {"prefix_128", "ipv6 = \"2001:db8::1/128\"\n", "t.toml:11:8: port[0].ipv6: prefix length 128 is out of range 8..127"},
        {"prefix_4", "ipv6 = \"2001:db8::1/4\"\n", "t.toml:11:8: port[0].ipv6: prefix length 4 is out of range 8..127"},
        {"not_a_string", "ipv6 = 1\n", "t.toml:11:8: port[0].ipv6: expected a string"},
        {"link_local", "ipv6 = \"fe80::1/64\"\n", "t.toml:11:8: port[0].ipv6: fe80::1 cannot be the relay's address: a link-local address"},
        {"multicast", "ipv6 = \"ff02::1/64\"\n", "t.toml:11:8: port[0].ipv6: ff02::1 cannot be the relay's address: a multicast address"},
        {"loopback", "ipv6 = \"::1/64\"\n", "t.toml:11:8: port[0].ipv6: ::1 cannot be the relay's address: the loopback address"},
        {"unspecified", "ipv6 = \"::/64\"\n", "t.toml:11:8: port[0].ipv6: :: cannot be the relay's address: the unspecified address"},
        {"v4_mapped", "ipv6 = \"::ffff:198.18.0.1/96\"\n",
         "t.toml:11:8: port[0].ipv6: ::ffff:198.18.0.1 cannot be the relay's address: an IPv4-mapped address"},
        {"six_to_four_of_loopback", "ipv6 = \"2002:7f00:1::1/48\"\n",
         "t.toml:11:8: port[0].ipv6: 2002:7f00:1::1 cannot be the relay's address: a 6to4 address (2002::/16, RFC 3056) "
         "of 127.0.0.1, which is not a global IPv4 address: loopback"},
        {"v4_translated", "ipv6 = \"::ffff:0:198.18.0.1/96\"\n",
         "t.toml:11:8: port[0].ipv6: ::ffff:0:c612:1 cannot be the relay's address: an IPv4-translated address"},
        {"gateway_nat64_of_multicast", "ipv6 = \"64:ff9b::c612:1/96\"\ngateway6 = \"64:ff9b::e000:1\"\ngateway6_learnt = true\n",
         "t.toml:12:12: port[0].gateway6: 64:ff9b::e000:1 cannot be a next hop: a NAT64 address (64:ff9b::/96, RFC 6052) "
         "of 224.0.0.1, which is not a global IPv4 address: multicast"},
        {"subnet_router_anycast", "ipv6 = \"2001:db8:5354::/64\"\n",
         "t.toml:11:8: port[0].ipv6: 2001:db8:5354:: is the subnet-router anycast address of 2001:db8:5354::/64"},
        {"overlapping_ports", ip,
         "t.toml:16:8: port[1].ipv6: prefix 2001:db8:5354::/48 overlaps port \"p0\" prefix 2001:db8:5354::/64",
         "[[port]]\nname = \"p1\"\ndevice = \"net_null1\"\nipv4 = \"198.18.1.1/24\"\nipv6 = \"2001:db8:5354:1::1/48\"\n"},
        {"gateway_without_ipv6", "gateway6 = \"fe80::1\"\n", "t.toml:11:12: port[0].gateway6: set only together with ipv6"},
        {"mac_without_ipv6", "gateway6_mac = \"02:00:00:00:00:fe\"\n",
         "t.toml:11:16: port[0].gateway6_mac: set only together with ipv6"},
        {"gateway_off_link", ip + "gateway6 = \"2001:db8:9999::1\"\ngateway6_learnt = true\n",
         "t.toml:12:12: port[0].gateway6: 2001:db8:9999::1 is neither link-local nor in the port's prefix 2001:db8:5354::/64"},
        {"gateway_multicast", ip + "gateway6 = \"ff02::2\"\ngateway6_learnt = true\n",
         "t.toml:12:12: port[0].gateway6: ff02::2 cannot be a next hop: a multicast address"},
        {"gateway_subnet_router_anycast", ip + "gateway6 = \"2001:db8:5354::\"\ngateway6_learnt = true\n",
         "t.toml:12:12: port[0].gateway6: 2001:db8:5354:: is the subnet-router anycast address of 2001:db8:5354::/64"},
        {"gateway_ours", ip + "gateway6 = \"2001:db8:5354::1\"\ngateway6_learnt = true\n",
         "t.toml:12:12: port[0].gateway6: the gateway cannot be the port's own address"},
        {"gateway_not_an_address", ip + "gateway6 = \"fe80::1::2\"\n",
         "t.toml:12:12: port[0].gateway6: \"fe80::1::2\" is not an IPv6 address"},
        {"gateway_neither_pinned_nor_learnt", ip + "gateway6 = \"fe80::1\"\n",
         "t.toml:12:12: port[0].gateway6: set gateway6_mac (pinned, recommended) or gateway6_learnt = true"},
        {"gateway_both", ip + "gateway6 = \"fe80::1\"\ngateway6_mac = \"02:00:00:00:00:fe\"\ngateway6_learnt = true\n",
         "t.toml:14:19: port[0].gateway6_learnt: the gateway is either pinned (gateway6_mac) or learnt, not both"},
        {"gateway_mac_multicast", ip + "gateway6 = \"fe80::1\"\ngateway6_mac = \"33:33:00:00:00:01\"\n",
         "t.toml:13:16: port[0].gateway6_mac:"},
        {"mac_without_gateway", ip + "gateway6_mac = \"02:00:00:00:00:fe\"\n",
         "t.toml:12:16: port[0].gateway6_mac: set only together with gateway6"},
        {"learnt_not_bool", ip + "gateway6 = \"fe80::1\"\ngateway6_learnt = \"yes\"\n",
         "t.toml:13:19: port[0].gateway6_learnt: expected a boolean (true or false), found a string"},
        // Types are strict: toml++'s value<bool>() read 1 as true and 0 as false.
        {"learnt_one", ip + "gateway6 = \"fe80::1\"\ngateway6_learnt = 1\n",
         "t.toml:13:19: port[0].gateway6_learnt: expected a boolean (true or false), found an integer"},
        {"learnt_zero_with_pinned_mac", ip + "gateway6 = \"fe80::1\"\ngateway6_mac = \"02:00:00:00:00:fe\"\ngateway6_learnt = 0\n",
         "t.toml:14:19: port[0].gateway6_learnt: expected a boolean (true or false), found an integer"},
        {"unknown_key", ip + "gateway_6 = \"fe80::1\"\n", "t.toml:12:1: port[0].gateway_6: unknown setting"},
    };
}

void PrintTo(const error_row& row, std::ostream* os) { *os << row.name; }

class ConfigIpv6Errors : public ::testing::TestWithParam<error_row> {};

TEST_P(ConfigIpv6Errors, RefusedNamingFileLineAndKey) {
    const auto& row = GetParam();
    const auto text = profile_with(row.keys, row.more_ports);
    const auto msg = error_of(text);
    EXPECT_EQ(0u, msg.find(row.expect)) << "got:      " << msg << "\nexpected: " << row.expect << "\nprofile:\n"
                                        << text;
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigIpv6Errors, ::testing::ValuesIn(error_rows()),
                         [](const ::testing::TestParamInfo<error_row>& info) { return info.param.name; });

TEST(ConfigIpv6, AddressHelpers) {
    EXPECT_EQ("2001:db8::1", format_ipv6(a6("2001:0DB8:0:0::1")));
    EXPECT_EQ("ff02::1:ff00:1", format_ipv6(ipv6_solicited_node(a6("2001:db8:5354::1"))));
    EXPECT_TRUE(ipv6_same_prefix(a6("2001:db8:5354::1"), a6("2001:db8:5354::ffff"), 64));
    EXPECT_FALSE(ipv6_same_prefix(a6("2001:db8:5354::1"), a6("2001:db8:5355::1"), 48));
    EXPECT_TRUE(ipv6_same_prefix(a6("2001:db8:5354::1"), a6("2001:db8:5355::1"), 47));
    EXPECT_TRUE(ipv6_same_prefix(a6("::1"), a6("ff02::1"), 0));
    EXPECT_EQ("2001:db8:5354::/63", cidr6(a6("2001:db8:5354:1::9"), 63));
    for (const char* bad : {"", "1.2.3.4", "2001:db8::1/64", "[2001:db8::1]", "fe80::1%lo", "2001:db8:::1", "g::1"})
        EXPECT_FALSE(parse_ipv6(bad).has_value()) << bad;
    for (const char* special : {"::", "::1", "ff05::2", "fe80::9", "::ffff:10.0.0.1", "::10.0.0.1", "100::1",
                                "::ffff:0:10.0.0.1", "64:ff9b::e000:1", "2002:7f00:1::1"})
        EXPECT_TRUE(ipv6_special(a6(special)).has_value()) << special;
    for (const char* fine : {"2001:db8::1", "2a00:1450::5", "fd00::1", "64:ff9b::c000:201", "2002:c000:201::1"})
        EXPECT_FALSE(ipv6_special(a6(fine)).has_value()) << fine;
}

// ---------------------------------------------------------------------------
// The next-hop interface the IPv6 listeners use (docs/architecture.md).

class NextHop6 : public ::testing::Test {
protected:
    void make(const std::string& port_keys, uint32_t nb_neigh = 8) {
        st.reset();
        prof = parse_profile(profile_with(port_keys), "t.toml");
        neigh = std::vector<dp::dp_neigh>(nb_neigh);
        shared.neigh = neigh.data();
        shared.nb_neigh = nb_neigh;
        st = std::make_unique<relay_state>(prof, shared, 1);
    }
    // What the data plane sees: the entry the next snapshot finds for `a`.
    int64_t published_entry(const ipv6_addr& a) {
        st->publish();
        const dp::dp_snapshot* s = shared.snapshot.load();
        return s == nullptr ? -2 : dp::find_neigh6(*s, a.data());
    }
    bool active(uint32_t idx) {
        const dp::dp_snapshot* s = shared.snapshot.load();
        for (uint32_t i = 0; i < s->nb_neigh_active; ++i)
            if (s->neigh_active[i] == idx) return true;
        return false;
    }

    profile prof;
    std::vector<dp::dp_neigh> neigh;
    dp::dp_shared shared;
    std::unique_ptr<relay_state> st;
};

TEST_F(NextHop6, OnLinkIsItselfOffLinkIsTheGateway) {
    make("ipv6 = \"2001:db8:5354::1/64\"\ngateway6 = \"fe80::1\"\ngateway6_learnt = true\n");
    const auto on_link = st->next_hop6_ref(a6("2001:db8:5354::77"));
    EXPECT_EQ(a6("2001:db8:5354::77"), on_link.via);
    EXPECT_EQ(0u, on_link.port_idx);
    const auto off_link = st->next_hop6_ref(a6("2a00:1450::5"));
    EXPECT_EQ(a6("fe80::1"), off_link.via);
    EXPECT_NE(on_link.neigh_idx, off_link.neigh_idx);
    // A second destination behind the gateway shares its entry.
    EXPECT_EQ(off_link.neigh_idx, st->next_hop6_ref(a6("2a00:1450::6")).neigh_idx);

    EXPECT_EQ(int64_t(on_link.neigh_idx), published_entry(a6("2001:db8:5354::77")));
    EXPECT_EQ(int64_t(off_link.neigh_idx), published_entry(a6("fe80::1")));
    EXPECT_EQ(-1, published_entry(a6("2a00:1450::5"))) << "only next hops are neighbours";
    const dp::dp_neigh& e = neigh[off_link.neigh_idx];
    EXPECT_TRUE(e.flags & dp::neigh_ipv6);
    EXPECT_FALSE(e.flags & dp::neigh_static);
    EXPECT_EQ(0u, e.ip_be);
    EXPECT_EQ(0, std::memcmp(e.ip6, a6("fe80::1").data(), 16));
    EXPECT_FALSE(st->next_hop_resolved(off_link.neigh_idx)) << "learnt: unresolved until an NA answers";
    EXPECT_TRUE(active(on_link.neigh_idx));
    EXPECT_TRUE(active(off_link.neigh_idx));

    // Dropping every reference takes it out of the active list (no more NS).
    st->next_hop6_unref(on_link.neigh_idx);
    st->publish();
    EXPECT_FALSE(active(on_link.neigh_idx));
    EXPECT_TRUE(active(off_link.neigh_idx));
    st->next_hop6_unref(off_link.neigh_idx);
    st->publish();
    EXPECT_TRUE(active(off_link.neigh_idx)) << "two references were taken";
    st->next_hop6_unref(off_link.neigh_idx);
    st->publish();
    EXPECT_FALSE(active(off_link.neigh_idx));
}

TEST_F(NextHop6, PinnedGatewayIsResolvedAtOnce) {
    make("ipv6 = \"2001:db8:5354::1/64\"\ngateway6 = \"fe80::1\"\ngateway6_mac = \"02:00:00:00:00:fe\"\n");
    const auto h = st->next_hop6_ref(a6("2a00:1450::5"));
    EXPECT_TRUE(st->next_hop_resolved(h.neigh_idx));
    EXPECT_TRUE(neigh[h.neigh_idx].flags & dp::neigh_static);
    EXPECT_EQ(0xfe, static_cast<uint8_t>(neigh[h.neigh_idx].mac_word.load() >> 40));
}

TEST_F(NextHop6, RefusalsNameTheCause) {
    make("ipv6 = \"2001:db8:5354::1/64\"\n", 2);
    try {
        st->next_hop6_ref(a6("2a00:1450::5"));
        ADD_FAILURE() << "routed without a gateway";
    } catch (const action_error& e) {
        EXPECT_EQ("invalid", name_of(e.code));
        EXPECT_STREQ("no route to 2a00:1450::5: not in a port's ipv6 prefix and no gateway6 configured", e.what());
    }
    st->next_hop6_ref(a6("2001:db8:5354::2"));
    st->next_hop6_ref(a6("2001:db8:5354::3"));
    try {
        st->next_hop6_ref(a6("2001:db8:5354::4"));
        ADD_FAILURE() << "a third entry in a table of two";
    } catch (const action_error& e) {
        EXPECT_EQ("capacity", name_of(e.code));
    }
    // An IPv6 next hop and an IPv4 one share the table.
    make("ipv6 = \"2001:db8:5354::1/64\"\n", 1);
    st->next_hop6_ref(a6("2001:db8:5354::2"));
    session_params sp;
    sp.id = 1;
    sp.udp_port = 40000;
    st->session_create(sp);
    EXPECT_THROW(st->listener_add(1, 0xc6120064, 5004, 0), action_error);
}

TEST_F(NextHop6, PortWithoutIpv6RoutesNothing) {
    make("");
    EXPECT_THROW(st->next_hop6_ref(a6("2001:db8:5354::2")), action_error);
}

}  // namespace
}  // namespace stentor::control
