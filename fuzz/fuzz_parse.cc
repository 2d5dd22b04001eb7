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
    return id;
}

const port_identity g_id = make_identity();

[[noreturn]] void contract_broken() { std::abort(); }

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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Frames longer than 64 KiB cannot arrive in one mbuf segment.
    if (size > 65535) return 0;
    const auto len = static_cast<uint32_t>(size);
    check(parse_packet(data, len, g_id), len);

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
    check(parse_packet(fixed.data(), len, g_id), len);
    return 0;
}
