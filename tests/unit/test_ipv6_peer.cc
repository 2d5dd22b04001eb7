// IPv6 peers (issue 15): the text forms the API and the CLI accept, the
// addresses a listener or speaker may not have (each with its reason), and
// the IPv6 replica the fan-out builds, checked against a reference sum kept
// apart from the code under test.
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "ip6.h"
#include "replica.h"

namespace stentor::control {
namespace {

using namespace std::string_view_literals;

ipv6_addr v6(const char* t) { return *parse_ipv6(t); }

struct refusal_row {
    const char* text;
    const char* reason;   // substring of the refusal; "" = accepted
};

TEST(ipv6_peer, which_addresses_may_be_a_listener_or_a_speaker) {
    const std::vector<refusal_row> rows = {
        {"2001:db8::1", ""},
        {"2a00:1450:4007:80e::200e", ""},
        {"fd12:3456:789a::1", ""},                   // unique local
        {"64:ff9b::c000:201", ""},                   // NAT64 well-known prefix: a real IPv6 destination
        {"::", "unspecified address"},
        {"::1", "loopback address"},
        {"ff02::1", "multicast address"},
        {"ff0e::fb", "multicast address"},
        {"fe80::1", "link-local address (fe80::/10) without a scope"},
        {"febf:ffff::1", "link-local"},
        {"::ffff:198.18.0.5", "IPv4-mapped address (::ffff:0:0/96): give the IPv4 address 198.18.0.5 itself"},
        {"::198.18.0.5", "IPv4-compatible address"},
        {"::ffff:0:c612:5", "IPv4-translated address (::ffff:0:0:0/96, RFC 2765): give the IPv4 address 198.18.0.5 itself"},
        // NAT64 and 6to4 carry the IPv4 address inside to the IPv4 host: the
        // IPv4 rules apply to it (a global one is a real destination).
        {"64:ff9b::e000:1", "NAT64 address (64:ff9b::/96, RFC 6052) of 224.0.0.1, which is not a global IPv4 address: multicast"},
        {"64:ff9b::7f00:1", "NAT64 address (64:ff9b::/96, RFC 6052) of 127.0.0.1, which is not a global IPv4 address: loopback"},
        {"64:ff9b::ffff:ffff", "of 255.255.255.255, which is not a global IPv4 address: limited broadcast"},
        {"64:ff9b::", "of 0.0.0.0, which is not a global IPv4 address: unspecified"},
        {"64:ff9b::a:1", "of 0.10.0.1, which is not a global IPv4 address: 'this network'"},
        {"64:ff9b::a9fe:1", "of 169.254.0.1, which is not a global IPv4 address: link-local"},
        {"64:ff9b::f000:1", "of 240.0.0.1, which is not a global IPv4 address: reserved class E"},
        {"2002:e000:1::1", "6to4 address (2002::/16, RFC 3056) of 224.0.0.1, which is not a global IPv4 address: multicast"},
        {"2002:7f00:1::1", "6to4 address (2002::/16, RFC 3056) of 127.0.0.1, which is not a global IPv4 address: loopback"},
        {"2002:c000:201::1", ""},                    // 6to4 of 192.0.2.1
        // These forms are defined for global IPv4 addresses only (RFC 6052
        // 3.1, RFC 3056, RFC 4380): private or shared space inside is no
        // host the relay may reach through someone's translator.
        {"64:ff9b::a00:1", "NAT64 address (64:ff9b::/96, RFC 6052) of 10.0.0.1, which is not a global IPv4 address: a private address (RFC 1918)"},
        {"64:ff9b::ac10:1", "of 172.16.0.1, which is not a global IPv4 address: a private address"},
        {"64:ff9b::ac1f:ffff", "of 172.31.255.255, which is not a global IPv4 address: a private address"},
        {"64:ff9b::ac20:1", ""},                     // 172.32.0.1: outside 172.16/12
        {"64:ff9b::c0a8:101", "of 192.168.1.1, which is not a global IPv4 address: a private address"},
        {"64:ff9b::6440:1", "of 100.64.0.1, which is not a global IPv4 address: shared address space (100.64.0.0/10, RFC 6598)"},
        {"64:ff9b::647f:ffff", "of 100.127.255.255, which is not a global IPv4 address: shared address space"},
        {"64:ff9b::6480:1", ""},                     // 100.128.0.1: outside 100.64/10
        {"2002:a01:203::1", "6to4 address (2002::/16, RFC 3056) of 10.1.2.3, which is not a global IPv4 address: a private address"},
        // Teredo (RFC 4380 4): server 65.54.227.120, client 192.0.2.45
        // port 40000 (both inverted): the RFC's own example, accepted.
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", ""},
        {"2001:0:4136:e378:8000:63bf:f5ff:fffe", "a Teredo address (2001::/32, RFC 4380) of client 10.0.0.1, which is not a global IPv4 address: a private address"},
        {"2001:0:4136:e378:8000:63bf:80ff:fffe", "of client 127.0.0.1, which is not a global IPv4 address: loopback"},
        {"2001:0:4136:e378:8000:63bf:1fff:fffe", "of client 224.0.0.1, which is not a global IPv4 address: multicast"},
        {"2001:0:7f00:1:8000:63bf:3fff:fdd2", "of server 127.0.0.1, which is not a global IPv4 address: loopback"},
        {"2001:db8:4136:e378:8000:63bf:f5ff:fffe", ""},   // 2001:db8::/32 is not Teredo
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.text);
        const auto a = parse_ipv6(r.text);
        ASSERT_TRUE(a.has_value());
        const auto why = ipv6_peer_refusal(*a);
        if (*r.reason == '\0') {
            EXPECT_FALSE(why.has_value()) << *why;
        } else if (!why) {
            ADD_FAILURE() << "accepted";   // and on to the next row: every row reports
        } else {
            EXPECT_NE(std::string::npos, why->find(r.reason)) << *why;
        }
    }
}

TEST(ipv6_peer, text_forms) {
    EXPECT_EQ("2001:db8::1", format_ipv6(v6("2001:0DB8:0:0:0:0:0:0001")));   // RFC 5952: lower case, :: for the zero run
    EXPECT_EQ("2001:db8:0:1::", format_ipv6(v6("2001:db8:0:1:0:0:0:0")));
    // A NUL ends inet_pton's C string: what follows it must not vanish.
    for (const std::string_view bad : {""sv, "2001:db8::1::2"sv, "2001:db8:::1"sv, "12345::"sv, "g::1"sv, "[2001:db8::1]"sv,
                                       "fe80::1%eth0"sv, "2001:db8::1/64"sv, "198.18.0.5"sv, "2001:db8:200::7\0junk"sv,
                                       "2001:db8::1\0"sv})
        EXPECT_FALSE(parse_ipv6(bad).has_value()) << bad;
}

struct endpoint_row {
    const char* text;
    bool ok;
    bool is_v6;
    unsigned port;
    const char* why;   // substring when refused
};

TEST(ipv6_peer, endpoint_syntax_of_either_family) {
    const std::vector<endpoint_row> rows = {
        {"198.18.0.5:6000", true, false, 6000, ""},
        {"[2001:db8::5]:6000", true, true, 6000, ""},
        {"[2001:db8::5]:65535", true, true, 65535, ""},
        {"[::ffff:198.18.0.5]:1", true, true, 1, ""},   // syntax only: the action refuses it, with its reason
        {"2001:db8::5:6000", false, false, 0, "needs brackets"},
        {"[2001:db8::5]6000", false, false, 0, "expected [IPV6]:PORT"},
        {"[2001:db8::5]:", false, false, 0, "port must be 1..65535"},
        {"[2001:db8::5]:0", false, false, 0, "port must be 1..65535"},
        {"[2001:db8::5]:65536", false, false, 0, "port must be 1..65535"},
        {"[198.18.0.5]:6000", false, false, 0, "brackets hold an IPv6 address only"},
        {"[fe80::1%eth0]:6000", false, false, 0, "zone"},
        {"[2001:db8::zz]:6000", false, false, 0, "is not an IPv4 or IPv6 address"},
        {"198.18.0.5", false, false, 0, "expected ADDRESS:PORT"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.text);
        std::optional<uint32_t> a4;
        std::optional<ipv6_addr> a6;
        unsigned port = 0;
        std::string why;
        ASSERT_EQ(r.ok, parse_endpoint_any(r.text, &a4, &a6, &port, &why)) << why;
        if (r.ok) {
            EXPECT_EQ(r.is_v6, a6.has_value());
            EXPECT_EQ(!r.is_v6, a4.has_value());
            EXPECT_EQ(r.port, port);
        } else {
            EXPECT_NE(std::string::npos, why.find(r.why)) << why;
        }
    }
    EXPECT_EQ("[2001:db8::5]:6000", format_endpoint6(v6("2001:db8::5"), 6000));
}

// RFC 1071 over the bytes as they are, one 16-bit word at a time: the
// reference the IPv6 replica's UDP checksum must verify against.
uint16_t naive_sum(const std::vector<uint8_t>& b) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < b.size(); i += 2) s += (uint32_t{b[i]} << 8) | b[i + 1];
    if (b.size() & 1) s += uint32_t{b.back()} << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

// The template and one patch per listener give the frame a listener must
// receive: every field, for payloads of odd and even length, for addresses
// whose sums wrap, and for a listener whose checksum comes out as 0 (sent
// as 0xffff: zero is not allowed in IPv6).
TEST(ipv6_replica, template_and_patch_give_every_field_and_a_valid_checksum) {
    const uint8_t mac[6] = {0x02, 0x53, 0x54, 0, 0, 1};
    const ipv6_addr src = v6("2001:db8:100::1");
    const std::vector<std::pair<const char*, uint16_t>> listeners = {
        {"2001:db8:200::7", 6000}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535}, {"2001:db8::1", 1},
        {"fd00::", 5004}};
    for (const size_t rtp_len : {size_t{13}, size_t{92}, size_t{1000}, size_t{1474}}) {
        std::vector<uint8_t> rtp(rtp_len);
        for (size_t i = 0; i < rtp_len; ++i) rtp[i] = static_cast<uint8_t>(i * 31 + 7);
        rtp[0] = 0x80;
        auto t = std::make_unique<dp::egress_template6>();
        dp::build_template6(*t, rtp.data(), static_cast<uint16_t>(rtp_len), mac, src.data(), __builtin_bswap16(40000),
                            46 << 2);
        ASSERT_EQ(62 + rtp_len, t->len);
        for (const auto& [text, port] : listeners) {
            SCOPED_TRACE(std::string(text) + " rtp " + std::to_string(rtp_len));
            const ipv6_addr dst = v6(text);
            dp::dp_listener6 r{};
            std::memcpy(r.ip, dst.data(), 16);
            r.port_be = __builtin_bswap16(port);
            r.udp_sum = ipv6_listener_udp_sum(dst, port);
            EXPECT_EQ(r.udp_sum, dp::listener6_udp_sum(dst.data(), port)) << "control and data plane deltas agree";
            std::vector<uint8_t> f(t->frame, t->frame + t->len);
            const uint64_t mac_word = 0x0000665544332211ull;
            dp::patch_headers6(f.data(), *t, r, mac_word);
            const uint8_t want_dst_mac[6] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
            EXPECT_EQ(0, std::memcmp(f.data(), want_dst_mac, 6));
            EXPECT_EQ(0, std::memcmp(f.data() + 6, mac, 6));
            EXPECT_EQ(0x86, f[12]);
            EXPECT_EQ(0xdd, f[13]);
            const uint8_t* ip = f.data() + 14;
            EXPECT_EQ(0x6b, ip[0]) << "version 6, traffic class EF (0xb8) high nibble";
            EXPECT_EQ(0x80, ip[1]) << "traffic class low nibble, flow label 0";
            EXPECT_EQ(0, ip[2]);
            EXPECT_EQ(0, ip[3]);
            EXPECT_EQ(8 + rtp_len, (size_t{ip[4]} << 8) | ip[5]) << "payload length";
            EXPECT_EQ(17, ip[6]) << "next header UDP, no extension header";
            EXPECT_EQ(64, ip[7]) << "hop limit";
            EXPECT_EQ(0, std::memcmp(ip + 8, src.data(), 16));
            EXPECT_EQ(0, std::memcmp(ip + 24, dst.data(), 16));
            const uint8_t* udp = ip + 40;
            EXPECT_EQ(40000, (udp[0] << 8) | udp[1]);
            EXPECT_EQ(port, (udp[2] << 8) | udp[3]);
            EXPECT_EQ(8 + rtp_len, (size_t{udp[4]} << 8) | udp[5]);
            EXPECT_NE(0, (udp[6] << 8) | udp[7]) << "UDP checksum present (mandatory)";
            std::vector<uint8_t> ph(ip + 8, ip + 40);   // pseudo header: source, destination
            const size_t ul = 8 + rtp_len;
            for (uint8_t b : {uint8_t(0), uint8_t(0), uint8_t(ul >> 8), uint8_t(ul), uint8_t(0), uint8_t(0), uint8_t(0),
                              uint8_t(17)})
                ph.push_back(b);
            ph.insert(ph.end(), udp, udp + ul);
            EXPECT_EQ(0xffff, naive_sum(ph)) << "UDP checksum verifies";
            EXPECT_EQ(0, std::memcmp(udp + 8, rtp.data(), rtp_len)) << "RTP bytes identical";
        }
    }
}

// A listener whose checksum computes to 0 gets 0xffff. Find a port that
// makes it so for this template, then check the stored value.
TEST(ipv6_replica, a_checksum_that_computes_to_zero_is_sent_as_ffff) {
    const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    const ipv6_addr src = v6("2001:db8::1"), dst = v6("2001:db8::2");
    const uint8_t rtp[12] = {0x80, 111, 0, 1, 0, 0, 3, 0xc0, 0, 0, 0, 1};
    dp::egress_template6 t;
    dp::build_template6(t, rtp, sizeof rtp, mac, src.data(), __builtin_bswap16(40000));
    bool found = false;
    for (uint32_t port = 1; port <= 65535 && !found; ++port) {
        dp::dp_listener6 r{};
        std::memcpy(r.ip, dst.data(), 16);
        r.port_be = __builtin_bswap16(static_cast<uint16_t>(port));
        r.udp_sum = ipv6_listener_udp_sum(dst, port);
        if (static_cast<uint16_t>(~wire::fold16x2(t.udp_base + r.udp_sum)) != 0) continue;
        found = true;
        uint8_t f[128];
        std::memcpy(f, t.frame, t.len);
        dp::patch_headers6(f, t, r, 0);
        EXPECT_EQ(0xff, f[60]);
        EXPECT_EQ(0xff, f[61]);
    }
    EXPECT_TRUE(found) << "some port makes the sum zero";
}

}  // namespace
}  // namespace stentor::control
