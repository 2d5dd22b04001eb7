// RTP framing shared by stentor-speaker and stentor-listener: the 12-byte
// fixed header (RFC 3550 5.1) and the optional send-time stamp both tools
// agree on, carried in an RFC 8285 one-byte header extension so that any
// RTP receiver (the relay, GStreamer, ffmpeg) can skip it as unknown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace stentor::tools {

inline constexpr std::size_t rtp_fixed_header_len = 12;
// RFC 8285 one-byte-header profile marker ("defined by profile" field).
inline constexpr uint16_t rtp_one_byte_ext_profile = 0xBEDE;
// Extension element id carrying the CLOCK_REALTIME send time in ns (8 bytes,
// big endian). Ids are negotiated out of band in SDP; 1 is our fixed choice.
inline constexpr uint8_t rtp_time_ext_id = 1;
// 4 bytes extension header + 1 element header + 8 stamp + 3 padding to a
// 32-bit boundary.
inline constexpr std::size_t rtp_time_ext_len = 16;
// Opus over RTP always uses a 48 kHz clock, whatever the coded rate (RFC 7587 4.1).
inline constexpr uint32_t opus_rtp_clock_hz = 48000;

struct rtp_header {
    bool marker = false;
    uint8_t payload_type = 111;
    uint16_t seq = 0;
    uint32_t timestamp = 0;
    uint32_t ssrc = 0;
};

struct rtp_packet_view {
    rtp_header header;
    std::span<const uint8_t> payload;
    std::optional<int64_t> send_time_ns;  // present when the time extension was found
};

// Writes header [+ time extension] + payload into out; returns the packet
// length, or 0 when out is too small.
std::size_t write_rtp(std::span<uint8_t> out, const rtp_header& h, std::optional<int64_t> send_time_ns,
                      std::span<const uint8_t> payload);

// Parses and validates an RTP packet (version 2, CSRCs, extension, padding).
// Returns nullopt for anything that is not well-formed RTP.
std::optional<rtp_packet_view> parse_rtp(std::span<const uint8_t> pkt);

}  // namespace stentor::tools
