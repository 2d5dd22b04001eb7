#include "rtp.h"

#include <cstring>

namespace stentor::tools {

namespace {

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t get32(const uint8_t* p) { return (static_cast<uint32_t>(get16(p)) << 16) | get16(p + 2); }

}  // namespace

std::size_t write_rtp(std::span<uint8_t> out, const rtp_header& h, std::optional<int64_t> send_time_ns,
                      std::span<const uint8_t> payload) {
    const std::size_t ext = send_time_ns ? rtp_time_ext_len : 0;
    const std::size_t len = rtp_fixed_header_len + ext + payload.size();
    if (out.size() < len) return 0;
    uint8_t* p = out.data();
    p[0] = static_cast<uint8_t>(0x80 | (send_time_ns ? 0x10 : 0x00));  // V=2, P=0, X, CC=0
    p[1] = static_cast<uint8_t>((h.marker ? 0x80 : 0x00) | (h.payload_type & 0x7f));
    put16(p + 2, h.seq);
    put32(p + 4, h.timestamp);
    put32(p + 8, h.ssrc);
    p += rtp_fixed_header_len;
    if (send_time_ns) {
        put16(p, rtp_one_byte_ext_profile);
        put16(p + 2, 3);  // extension length in 32-bit words, header excluded
        p[4] = static_cast<uint8_t>((rtp_time_ext_id << 4) | (8 - 1));  // one-byte header: L = len - 1
        const auto t = static_cast<uint64_t>(*send_time_ns);
        put32(p + 5, static_cast<uint32_t>(t >> 32));
        put32(p + 9, static_cast<uint32_t>(t));
        p[13] = p[14] = p[15] = 0;  // padding elements (id 0)
        p += rtp_time_ext_len;
    }
    if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
    return len;
}

std::optional<rtp_packet_view> parse_rtp(std::span<const uint8_t> pkt) {
    if (pkt.size() < rtp_fixed_header_len) return std::nullopt;
    const uint8_t* p = pkt.data();
    if ((p[0] >> 6) != 2) return std::nullopt;
    rtp_packet_view v;
    v.header.marker = (p[1] & 0x80) != 0;
    v.header.payload_type = p[1] & 0x7f;
    v.header.seq = get16(p + 2);
    v.header.timestamp = get32(p + 4);
    v.header.ssrc = get32(p + 8);
    std::size_t off = rtp_fixed_header_len + 4u * (p[0] & 0x0f);
    std::size_t end = pkt.size();
    if (off > end) return std::nullopt;
    if (p[0] & 0x10) {
        if (off + 4 > end) return std::nullopt;
        const uint16_t profile = get16(p + off);
        const std::size_t words = get16(p + off + 2);
        const std::size_t ext_end = off + 4 + 4 * words;
        if (ext_end > end) return std::nullopt;
        if (profile == rtp_one_byte_ext_profile) {
            // Walk the RFC 8285 elements; unknown ids are skipped, id 15 stops the walk.
            std::size_t e = off + 4;
            while (e < ext_end) {
                const uint8_t id = p[e] >> 4;
                if (id == 0) { ++e; continue; }  // padding byte
                if (id == 15) break;
                const std::size_t l = (p[e] & 0x0f) + 1u;
                if (e + 1 + l > ext_end) break;
                if (id == rtp_time_ext_id && l == 8)
                    v.send_time_ns = static_cast<int64_t>((static_cast<uint64_t>(get32(p + e + 1)) << 32) |
                                                          get32(p + e + 5));
                e += 1 + l;
            }
        }
        off = ext_end;
    }
    if (p[0] & 0x20) {
        // The last octet counts the padding, itself included (RFC 3550 5.1).
        const std::size_t pad = p[end - 1];
        if (pad == 0 || off + pad > end) return std::nullopt;
        end -= pad;
    }
    v.payload = pkt.subspan(off, end - off);
    return v;
}

}  // namespace stentor::tools
