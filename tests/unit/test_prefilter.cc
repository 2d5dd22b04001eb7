// The first ingress stage (dp::ingress_flow_key) against the validator: the
// key it extracts is the flow key parse_packet would give, it only takes
// frames parse_packet would have carried to the port check, and what it lets
// through un-validated differs from parse_packet only in checks that come
// after the ports (IPv4 checksum, UDP length, RTP).
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "parse.h"
#include "stentor/dp_snapshot.h"

namespace {

using namespace stentor::dp;

const port_identity self = [] {
    port_identity p{};
    const uint8_t mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
    std::memcpy(p.mac, mac, 6);
    p.ip_be = __builtin_bswap32(0xc6120001);
    p.max_frame = 1514;
    p.udp_port_min = 40000;
    p.udp_port_max = 40999;
    return p;
}();

std::vector<uint8_t> frame() {
    std::vector<uint8_t> b(14 + 20 + 8 + 12 + 80, 0);
    std::memcpy(b.data(), self.mac, 6);
    b[6] = 0x02;
    b[11] = 0x0a;
    b[12] = 0x08;
    b[14] = 0x45;
    const uint16_t tot = static_cast<uint16_t>(b.size() - 14);
    b[16] = static_cast<uint8_t>(tot >> 8);
    b[17] = static_cast<uint8_t>(tot);
    b[22] = 64;
    b[23] = 17;
    const uint8_t src[4] = {198, 18, 0, 10}, dst[4] = {198, 18, 0, 1};
    std::memcpy(&b[26], src, 4);
    std::memcpy(&b[30], dst, 4);
    const uint16_t c = static_cast<uint16_t>(~stentor::wire::csum_fold(stentor::wire::csum_add(0, &b[14], 20)));
    b[24] = static_cast<uint8_t>(c >> 8);
    b[25] = static_cast<uint8_t>(c);
    b[34] = 5004 >> 8;
    b[35] = 5004 & 0xff;
    b[36] = 40000 >> 8;
    b[37] = 40000 & 0xff;
    const uint16_t ul = static_cast<uint16_t>(tot - 20);
    b[38] = static_cast<uint8_t>(ul >> 8);
    b[39] = static_cast<uint8_t>(ul);
    b[42] = 0x80;
    b[43] = 111;
    return b;
}

struct row {
    const char* what;
    void (*mangle)(std::vector<uint8_t>&);
    bool first_stage;          // ingress_flow_key returns true
    drop_reason later;         // parse_packet's reason when it drops (count_ = accepted as rtp)
};

TEST(Prefilter, agrees_with_the_validator) {
    const std::vector<row> rows = {
        {"good RTP", [](std::vector<uint8_t>&) {}, true, drop_reason::count_},
        {"bad IPv4 checksum", [](std::vector<uint8_t>& b) { b[24] ^= 0xff; }, true, drop_reason::ipv4_checksum},
        {"UDP length mismatch", [](std::vector<uint8_t>& b) { b[39] ^= 0x01; }, true, drop_reason::udp_length},
        {"RTP version 1", [](std::vector<uint8_t>& b) { b[42] = 0x40; }, true, drop_reason::rtp_version},
        {"fragment", [](std::vector<uint8_t>& b) { b[20] = 0x20; }, false, drop_reason::ipv4_checksum},
        {"options (IHL 6)", [](std::vector<uint8_t>& b) { b[14] = 0x46; }, false, drop_reason::ipv4_options},
        {"not our address", [](std::vector<uint8_t>& b) { b[33] = 2; }, false, drop_reason::ipv4_checksum},
        {"not our MAC", [](std::vector<uint8_t>& b) { b[5] = 9; }, false, drop_reason::eth_dst},
        {"port below range", [](std::vector<uint8_t>& b) { b[36] = 0; }, false, drop_reason::udp_port},
        {"loopback source", [](std::vector<uint8_t>& b) { b[26] = 127; }, false, drop_reason::ipv4_checksum},
        {"ICMP", [](std::vector<uint8_t>& b) { b[23] = 1; }, false, drop_reason::ipv4_checksum},
        {"IPv6 ethertype", [](std::vector<uint8_t>& b) { b[12] = 0x86; b[13] = 0xdd; }, false, drop_reason::eth_type},
        {"truncated below UDP", [](std::vector<uint8_t>& b) { b.resize(40); }, false, drop_reason::ipv4_total_length},
        {"multicast source MAC", [](std::vector<uint8_t>& b) { b[6] = 0x01; }, false, drop_reason::eth_src},
    };
    for (const auto& r : rows) {
        auto b = frame();
        r.mangle(b);
        uint64_t key = 0;
        const bool fs = ingress_flow_key(b.data(), static_cast<uint32_t>(b.size()), self, &key);
        EXPECT_EQ(r.first_stage, fs) << r.what;
        const parse_result pr = parse_packet(b.data(), static_cast<uint32_t>(b.size()), self);
        if (r.later == drop_reason::count_) {
            ASSERT_EQ(pkt_kind::rtp, pr.kind) << r.what;
            EXPECT_EQ(flow_key(pr.src_ip_be, pr.src_port_be, pr.dst_port_be), key) << r.what;
        } else if (fs) {
            // Let through to the flow lookup, and the validator would have
            // dropped it only for a check that comes after the ports.
            EXPECT_EQ(pkt_kind::drop, pr.kind) << r.what;
            EXPECT_EQ(r.later, pr.reason) << r.what;
        } else {
            EXPECT_EQ(pkt_kind::drop, pr.kind) << r.what;
        }
    }
}

TEST(Prefilter, every_truncation_is_safe_and_never_yields_a_key_below_udp) {
    const auto full = frame();
    for (size_t n = 0; n < full.size(); ++n) {
        std::vector<uint8_t> b(full.begin(), full.begin() + static_cast<long>(n));
        uint64_t key = 0;
        const bool fs = ingress_flow_key(b.data(), static_cast<uint32_t>(b.size()), self, &key);
        if (n < 42) {
            EXPECT_FALSE(fs) << n;
        }
    }
}

}  // namespace
