// libFuzzer target for the ingress validator (dp::parse_packet).
//
// The validator is the first code every byte from the wire reaches, so it is
// the first thing an attacker gets to exercise. Each input is parsed twice:
// as received, and with the IPv4 header checksum (and the ICMP checksum)
// patched to be correct. Without the second pass the fuzzer would spend
// almost all its time failing the 16-bit header checksum and never reach the
// UDP, RTP and ICMP code behind it.
//
// Besides ASan/UBSan findings, the target aborts when a result breaks the
// contract parse.h promises to the worker: every offset and length it hands
// back lies inside the bytes received, and a drop always names a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "parse.h"

namespace {

using stentor::dp::drop_reason;
using stentor::dp::parse_packet;
using stentor::dp::parse_result;
using stentor::dp::pkt_kind;
using stentor::dp::port_identity;

// 02:53:54:00:00:01, 198.18.0.1, MTU 1500, speaker range 40000..40999: the
// same identity the seed corpus (fuzz/corpus_parse) was built against.
port_identity make_identity() {
    port_identity id{};
    const uint8_t mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
    std::memcpy(id.mac, mac, 6);
    const uint8_t ip[4] = {198, 18, 0, 1};
    std::memcpy(&id.ip_be, ip, 4);
    id.max_frame = 1514;
    id.udp_port_min = 40000;
    id.udp_port_max = 40999;
    // 2001:db8:5354::1 (issue 15): the IPv6 seeds (ipv6_*) are addressed to it.
    const uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x53, 0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
    std::memcpy(id.ip6, ip6, 16);
    id.has_ip6 = 1;
    return id;
}

const port_identity g_id = make_identity();

[[noreturn]] void contract_broken() { std::abort(); }

const uint8_t* g_frame = nullptr;   // the frame check() is looking at

void check(const parse_result& r, uint32_t len) {
    switch (r.kind) {
    case pkt_kind::drop:
        if (r.reason >= drop_reason::count_) contract_broken();
        break;
    case pkt_kind::rtp: {
        const uint32_t rtp_end = uint32_t{r.rtp_off} + r.rtp_len;
        if (rtp_end > len || r.rtp_len < 12) contract_broken();
        if (r.payload_off < r.rtp_off + 12u) contract_broken();
        if (r.payload_len == 0 || uint32_t{r.payload_off} + r.payload_len > rtp_end) contract_broken();
        if (r.l4_off + 8u != r.rtp_off || r.src_ip_be == 0) contract_broken();
        break;
    }
    case pkt_kind::icmp_echo:
        if (r.icmp_len < 8 || uint32_t{r.l4_off} + r.icmp_len > len) contract_broken();
        break;
    case pkt_kind::arp:
        if (r.l3_off + 28u > len) contract_broken();
        break;
    case pkt_kind::stun: {
        // The STUN message (the join stage checks its content): a non-empty
        // UDP payload starting 0..3, inside the frame.
        const uint32_t end = uint32_t{r.rtp_off} + r.rtp_len;
        if (r.rtp_len == 0 || end > len || r.l4_off + 8u != r.rtp_off || r.src_ip_be == 0) contract_broken();
        if (r.rtp_off >= len || r.rtp_off >= end || r.rtp_off == 0) contract_broken();
        break;
    }
    case pkt_kind::rtp6:
    case pkt_kind::stun6: {
        const uint32_t end = uint32_t{r.rtp_off} + r.rtp_len;
        if (r.l3_off != 14 || r.l4_off != 54 || r.rtp_off != 62 || end > len) contract_broken();
        if (r.kind == pkt_kind::rtp6 && (r.rtp_len < 12 || r.payload_len == 0 ||
                                         uint32_t{r.payload_off} + r.payload_len > end))
            contract_broken();
        if (r.kind == pkt_kind::stun6 && r.rtp_len == 0) contract_broken();
        break;
    }
    case pkt_kind::icmp6_echo:
    case pkt_kind::nd_ns:
    case pkt_kind::nd_na: {
        const uint32_t min = r.kind == pkt_kind::icmp6_echo ? 8 : 24;
        if (r.l4_off != 54 || r.icmp_len < min || uint32_t{r.l4_off} + r.icmp_len > len) contract_broken();
        // The link-layer address lies inside the message and is the frame's source.
        if (r.nd_lla_off != 0 && (r.nd_lla_off + 6u > uint32_t{r.l4_off} + r.icmp_len ||
                                  std::memcmp(g_frame + r.nd_lla_off, g_frame + 6, 6) != 0))
            contract_broken();
        break;
    }
    default:
        contract_broken();
    }
}

// RFC 1071 reference sum, deliberately not the validator's own helper.
uint16_t ref_csum(const uint8_t* p, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t{p[i]} << 8 | p[i + 1];
    if (n & 1) s += uint32_t{p[n - 1]} << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

}  // namespace

// IPv6 (issue 15): the UDP or ICMPv6 checksum over the pseudo header made
// correct, so that the fuzzer gets past it to the ND and RTP code.
void fix_ipv6(std::vector<uint8_t>& f) {
    uint8_t* ip = f.data() + 14;
    const uint32_t plen = uint32_t{ip[4]} << 8 | ip[5];
    const uint8_t next = ip[6];
    const size_t at = next == 17 ? 6 : next == 58 ? 2 : 0;
    if (at == 0 || plen < at + 2 || 54 + plen > f.size()) return;
    uint8_t* m = ip + 40;
    m[at] = m[at + 1] = 0;
    std::vector<uint8_t> ps(ip + 8, ip + 40);
    const uint8_t tail[8] = {0, 0, static_cast<uint8_t>(plen >> 8), static_cast<uint8_t>(plen), 0, 0, 0, next};
    ps.insert(ps.end(), tail, tail + 8);
    ps.insert(ps.end(), m, m + plen);
    uint16_t c = ref_csum(ps.data(), ps.size());
    if (next == 17 && c == 0) c = 0xffff;
    m[at] = static_cast<uint8_t>(c >> 8);
    m[at + 1] = static_cast<uint8_t>(c);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Frames longer than 64 KiB cannot arrive in one mbuf segment.
    if (size > 65535) return 0;
    const auto len = static_cast<uint32_t>(size);
    g_frame = data;
    check(parse_packet(data, len, g_id), len);
    if (size >= 54 && data[12] == 0x86 && data[13] == 0xdd) {
        std::vector<uint8_t> fixed6(data, data + size);
        fix_ipv6(fixed6);
        g_frame = fixed6.data();
        check(parse_packet(fixed6.data(), len, g_id), len);
        return 0;
    }

    // Exact-size heap copy so ASan flags any read past `size`.
    if (size < 34) return 0;
    std::vector<uint8_t> fixed(data, data + size);
    uint8_t* ip = fixed.data() + 14;
    ip[10] = ip[11] = 0;
    const uint16_t c = ref_csum(ip, 20);
    ip[10] = static_cast<uint8_t>(c >> 8);
    ip[11] = static_cast<uint8_t>(c);
    const uint32_t total = uint32_t{ip[2]} << 8 | ip[3];
    if (ip[9] == 1 && total >= 28 && 14 + total <= size) {
        uint8_t* m = ip + 20;
        m[2] = m[3] = 0;
        const uint16_t mc = ref_csum(m, total - 20);
        m[2] = static_cast<uint8_t>(mc >> 8);
        m[3] = static_cast<uint8_t>(mc);
    }
    g_frame = fixed.data();
    check(parse_packet(fixed.data(), len, g_id), len);
    return 0;
}
