// stentorctl's --range (control/ctl_range.h): one parser for IPv4 and IPv6,
// a table of inputs with what they mean or why they are refused.
#include <gtest/gtest.h>

#include "ctl_range.h"

namespace stentor::test {
namespace {

using ctl::parse_listener_range;

constexpr uint64_t max = 10000000;

struct good_row {
    const char* what;
    const char* range;
    bool ipv6;
    uint64_t addresses;
    unsigned p0, p1;
    const char* first;   // first address's text
    const char* last;    // last address's text
};

TEST(CtlRange, ranges_of_both_families) {
    const good_row rows[] = {
        {"one IPv4 address, one port", "198.18.0.21:6000", false, 1, 6000, 6000, "198.18.0.21", "198.18.0.21"},
        {"IPv4 addresses and ports", "198.18.0.21-198.18.0.23:6000-6999", false, 3, 6000, 6999, "198.18.0.21",
         "198.18.0.23"},
        {"IPv4 across an octet", "198.18.0.250-198.18.1.4:7000", false, 11, 7000, 7000, "198.18.0.250", "198.18.1.4"},
        {"IPv4 with a count", "198.18.0.21+3:6000", false, 3, 6000, 6000, "198.18.0.21", "198.18.0.23"},
        {"IPv4 up to the last address", "255.255.255.254+2:1", false, 2, 1, 1, "255.255.255.254", "255.255.255.255"},
        {"one IPv6 address", "[2001:db8::10]:6000", true, 1, 6000, 6000, "2001:db8::10", "2001:db8::10"},
        {"IPv6 addresses", "[2001:db8::10-2001:db8::ff]:6000", true, 240, 6000, 6000, "2001:db8::10", "2001:db8::ff"},
        {"IPv6 with a count and ports", "[2001:db8::10+240]:6000-6001", true, 240, 6000, 6001, "2001:db8::10",
         "2001:db8::ff"},
        {"IPv6 across the 64-bit boundary", "[2001:db8:0:1:ffff:ffff:ffff:fffe+4]:5004", true, 4, 5004, 5004,
         "2001:db8:0:1:ffff:ffff:ffff:fffe", "2001:db8:0:2::1"},
        {"IPv6 in capitals: canonical text out", "[2001:DB8::A-2001:DB8::C]:5004", true, 3, 5004, 5004, "2001:db8::a",
         "2001:db8::c"},
        {"ports 1 and 65535", "[2001:db8::1]:1-65535", true, 1, 1, 65535, "2001:db8::1", "2001:db8::1"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        std::string why;
        const auto g = parse_listener_range(r.range, max, &why);
        ASSERT_TRUE(g) << why;
        EXPECT_EQ(g->ipv6, r.ipv6);
        EXPECT_EQ(g->addresses, r.addresses);
        EXPECT_EQ(g->port_first, r.p0);
        EXPECT_EQ(g->port_last, r.p1);
        EXPECT_EQ(g->size(), r.addresses * (r.p1 - r.p0 + 1));
        EXPECT_EQ(g->address_text(0), r.first);
        EXPECT_EQ(g->address_text(g->addresses - 1), r.last);
    }
    std::string why;
    const auto v6 = parse_listener_range("[2001:db8::ff]:1", max, &why);
    ASSERT_TRUE(v6);
    const auto b = v6->ipv6_bytes(1);
    const std::array<uint8_t, 16> want{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
    EXPECT_EQ(b, want) << "the carry into the next byte";
    const auto v4 = parse_listener_range("198.18.0.255+2:1", max, &why);
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->ipv4(1), 0xc6120100u);
}

struct bad_row {
    const char* what;
    const char* range;
    const char* says;
};

TEST(CtlRange, refusals_say_why) {
    const bad_row rows[] = {
        {"no port", "198.18.0.21", "no ':' before the ports"},
        {"port 0", "198.18.0.21:0-10", "ports are not P or P-Q"},
        {"port past 65535", "[2001:db8::1]:65536", "ports are not P or P-Q"},
        {"ports backwards", "198.18.0.21:7000-6000", "a range ends before it starts"},
        {"IPv4 backwards", "198.18.0.9-198.18.0.5:6000", "a range ends before it starts"},
        {"IPv6 backwards", "[2001:db8::9-2001:db8::5]:6000", "a range ends before it starts"},
        {"IPv6 without brackets", "2001:db8::10-2001:db8::ff:6000", "IPv6 addresses go in brackets"},
        {"IPv4 in brackets", "[198.18.0.1-198.18.0.2]:6000", "brackets are for IPv6"},
        {"two families", "[2001:db8::1-198.18.0.2]:6000", "two families"},
        {"a zone", "[fe80::1%eth0]:6000", "addresses are not"},
        {"no closing bracket", "[2001:db8::1:6000", "no \"]:\""},
        {"three-part IPv4", "198.18.0:6000", "addresses are not"},
        {"both - and +", "198.18.0.1-198.18.0.2+3:6000", "addresses are not"},
        {"+0", "198.18.0.1+0:6000", "+N is not a count"},
        {"+ not a number", "[2001:db8::1+x]:6000", "+N is not a count"},
        {"+N past the last IPv4 address", "255.255.255.255+2:6000", "runs past the last IPv4 address"},
        {"+N past the last IPv6 address", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff+2]:6000",
         "runs past the last IPv6 address"},
        {"too many IPv4 listeners", "10.0.0.0-10.255.255.255:1-65535", "16777216 addresses, more than 10000000"},
        {"too many by ports", "198.18.0.1-198.18.0.200:1-65535", "13107000 listeners, more than 10000000"},
        {"a whole IPv6 /64", "[2001:db8::-2001:db8::ffff:ffff:ffff:ffff]:6000",
         "18446744073709551616 addresses, more than 10000000"},
        {"all of IPv6", "[::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:6000", "2^128 addresses"},
        {"half of IPv6: a 128-bit count in decimal", "[::-7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:6000",
         "170141183460469231731687303715884105728 addresses"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        std::string why;
        EXPECT_FALSE(parse_listener_range(r.range, max, &why));
        EXPECT_NE(why.find(r.says), std::string::npos) << why;
    }
}

}  // namespace
}  // namespace stentor::test
