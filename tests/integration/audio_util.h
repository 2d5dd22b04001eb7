// Shared by the audio tests: real Opus packets of a tone, RTP packets around
// them, and an Ogg Opus reader (libogg pages + opusfile decoding) that checks
// a recording the way a player would see it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <string>
#include <vector>

#include <ogg/ogg.h>
#include <opus/opus.h>
#include <opus/opusfile.h>

#include "harness.h"

namespace stentor::test {

// 20 ms Opus frames (48 kHz, `channels`) of a sine at `hz`, `level` 0..1.
inline std::vector<std::vector<uint8_t>> opus_tone(double hz, size_t frames, int channels = 2, double level = 0.3,
                                                   int frame_samples = 960) {
    int err = 0;
    OpusEncoder* enc = opus_encoder_create(48000, channels, OPUS_APPLICATION_AUDIO, &err);
    opus_encoder_ctl(enc, OPUS_SET_BITRATE(64000));
    std::vector<std::vector<uint8_t>> out;
    std::vector<float> pcm(static_cast<size_t>(frame_samples * channels));
    size_t t = 0;
    for (size_t f = 0; f < frames; ++f) {
        for (int i = 0; i < frame_samples; ++i, ++t)
            for (int c = 0; c < channels; ++c)
                pcm[static_cast<size_t>(i * channels + c)] =
                    static_cast<float>(level * std::sin(2 * std::numbers::pi * hz * static_cast<double>(t) / 48000.0));
        std::vector<uint8_t> pkt(1500);
        const int n = opus_encode_float(enc, pcm.data(), frame_samples, pkt.data(), 1500);
        pkt.resize(static_cast<size_t>(n > 0 ? n : 0));
        out.push_back(std::move(pkt));
    }
    opus_encoder_destroy(enc);
    return out;
}

inline std::vector<uint8_t> rtp_packet(uint16_t seq, uint32_t ts, uint32_t ssrc, const std::vector<uint8_t>& payload,
                                       bool marker = false) {
    std::vector<uint8_t> b(12 + payload.size());
    b[0] = 0x80;
    b[1] = static_cast<uint8_t>((marker ? 0x80 : 0) | 111);
    b[2] = static_cast<uint8_t>(seq >> 8);
    b[3] = static_cast<uint8_t>(seq);
    for (int i = 0; i < 4; ++i) b[4 + i] = static_cast<uint8_t>(ts >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) b[8 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
    std::memcpy(b.data() + 12, payload.data(), payload.size());
    return b;
}

struct ogg_page_info {
    int64_t granule;
    bool bos;
    bool eos;
    uint32_t serial;
    long packets;
};

struct ogg_file_info {
    bool ok = false;
    std::string why;
    std::vector<ogg_page_info> pages;
    std::vector<std::vector<uint8_t>> packets;   // every packet, headers included
    unsigned channels = 0;
    unsigned pre_skip = 0;
    std::string vendor;
    std::vector<std::string> comments;
    int64_t pcm_total = -1;                      // opusfile: samples after pre-skip
    int64_t decoded = -1;                        // samples actually decoded by opusfile
    double rms_first_second = 0;                 // of channel 0 after pre-skip
};

inline uint32_t le32(const uint8_t* p) { return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24; }

// Parse every page and packet with libogg, then decode it all with opusfile.
inline ogg_file_info read_ogg_opus(const std::vector<uint8_t>& bytes) {
    ogg_file_info info;
    ogg_sync_state oy;
    ogg_sync_init(&oy);
    char* buf = ogg_sync_buffer(&oy, static_cast<long>(bytes.size()));
    std::memcpy(buf, bytes.data(), bytes.size());
    ogg_sync_wrote(&oy, static_cast<long>(bytes.size()));
    ogg_stream_state os;
    bool have_stream = false;
    ogg_page og;
    while (ogg_sync_pageout(&oy, &og) == 1) {
        if (!have_stream) {
            ogg_stream_init(&os, ogg_page_serialno(&og));
            have_stream = true;
        }
        info.pages.push_back({ogg_page_granulepos(&og), ogg_page_bos(&og) != 0, ogg_page_eos(&og) != 0,
                              static_cast<uint32_t>(ogg_page_serialno(&og)), ogg_page_packets(&og)});
        ogg_stream_pagein(&os, &og);
        ogg_packet op;
        while (ogg_stream_packetout(&os, &op) == 1) info.packets.emplace_back(op.packet, op.packet + op.bytes);
    }
    if (have_stream) ogg_stream_clear(&os);
    ogg_sync_clear(&oy);
    if (info.packets.size() < 2) {
        info.why = "fewer than two packets";
        return info;
    }
    const auto& h = info.packets[0];
    if (h.size() != 19 || std::memcmp(h.data(), "OpusHead", 8) != 0) {
        info.why = "first packet is not a 19-byte OpusHead";
        return info;
    }
    info.channels = h[9];
    info.pre_skip = static_cast<unsigned>(h[10] | h[11] << 8);
    const auto& t = info.packets[1];
    if (t.size() < 16 || std::memcmp(t.data(), "OpusTags", 8) != 0) {
        info.why = "second packet is not OpusTags";
        return info;
    }
    const uint32_t vlen = le32(t.data() + 8);
    info.vendor.assign(reinterpret_cast<const char*>(t.data()) + 12, vlen);
    size_t off = 12 + vlen;
    const uint32_t nc = le32(t.data() + off);
    off += 4;
    for (uint32_t i = 0; i < nc && off + 4 <= t.size(); ++i) {
        const uint32_t l = le32(t.data() + off);
        info.comments.emplace_back(reinterpret_cast<const char*>(t.data()) + off + 4, l);
        off += 4 + l;
    }
    int err = 0;
    OggOpusFile* of = op_open_memory(bytes.data(), bytes.size(), &err);
    if (of == nullptr) {
        info.why = "opusfile refused the file: " + std::to_string(err);
        return info;
    }
    info.pcm_total = op_pcm_total(of, -1);
    int64_t n = 0;
    double sum = 0;
    std::vector<float> pcm(5760 * 2);
    for (;;) {
        const int r = op_read_float_stereo(of, pcm.data(), static_cast<int>(pcm.size()));
        if (r <= 0) {
            if (r < 0) info.why = "opusfile read error " + std::to_string(r);
            break;
        }
        for (int i = 0; i < r; ++i)
            if (n + i < 48000) sum += double(pcm[size_t(2 * i)]) * pcm[size_t(2 * i)];
        n += r;
    }
    op_free(of);
    info.decoded = n;
    info.rms_first_second = std::sqrt(sum / 48000.0);
    info.ok = info.why.empty();
    return info;
}

// An Ethernet/IPv4/UDP frame around an RTP packet with a real Opus payload.
inline bytes speaker_frame(uint32_t src_ip, uint16_t seq, uint32_t ts, uint32_t ssrc, const std::vector<uint8_t>& opus) {
    frame_spec fs;
    fs.src_ip = src_ip;
    fs.seq = seq;
    fs.ts = ts;
    fs.ssrc = ssrc;
    fs.payload = opus.size();
    bytes f = rtp_frame(fs);
    std::memcpy(f.data() + 54, opus.data(), opus.size());
    // The payload changed: UDP checksum again (pseudo header + datagram).
    const size_t udp_len = f.size() - 34;
    bytes ph(12 + udp_len);
    std::memcpy(ph.data(), f.data() + 26, 8);
    ph[9] = 17;
    ph[10] = static_cast<uint8_t>(udp_len >> 8);
    ph[11] = static_cast<uint8_t>(udp_len);
    f[40] = f[41] = 0;
    std::memcpy(ph.data() + 12, f.data() + 34, udp_len);
    uint16_t c = ip_checksum(ph.data(), ph.size());
    if (c == 0) c = 0xffff;
    f[40] = static_cast<uint8_t>(c >> 8);
    f[41] = static_cast<uint8_t>(c);
    return f;
}

}  // namespace stentor::test
