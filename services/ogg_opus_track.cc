#include "ogg_opus_track.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>

#include <opus/opus.h>

#include "stentor/rtp.h"

namespace stentor::svc {

namespace {

constexpr int sample_rate = 48000;
// Pages are cut at least every second of audio even at low bitrates, so a
// crash loses at most about a second and a half-written file still plays.
constexpr uint64_t page_interval_samples = sample_rate;
// A gap in RTP timestamps that disagrees with the arrival times by more than
// this is a sender that restarted its clock, not silence: trust the clock.
constexpr int64_t max_ts_wall_disagreement = int64_t{10} * sample_rate;

void put_le16(std::string& b, uint16_t v) {
    b.push_back(static_cast<char>(v & 0xff));
    b.push_back(static_cast<char>(v >> 8));
}
void put_le32(std::string& b, uint32_t v) {
    put_le16(b, static_cast<uint16_t>(v));
    put_le16(b, static_cast<uint16_t>(v >> 16));
}

}  // namespace

ogg_opus_track::ogg_opus_track(uint32_t serial, unsigned channels, unsigned pre_skip,
                               const std::vector<std::pair<std::string, std::string>>& tags, unsigned reorder_window)
    : _window_max(std::max(1u, reorder_window)), _pre_skip(pre_skip) {
    ogg_stream_init(&_os, static_cast<int>(serial));
    // RFC 7845 5.1: identification header, alone on the first page.
    std::string head = "OpusHead";
    head.push_back(1);                                   // version
    head.push_back(static_cast<char>(channels));
    put_le16(head, static_cast<uint16_t>(pre_skip));
    put_le32(head, sample_rate);                         // input rate: informational
    put_le16(head, 0);                                   // output gain
    head.push_back(0);                                   // mapping family 0: mono/stereo
    ogg_packet op{};
    op.packet = reinterpret_cast<unsigned char*>(head.data());
    op.bytes = static_cast<long>(head.size());
    op.b_o_s = 1;
    op.granulepos = 0;
    op.packetno = _packetno++;
    ogg_stream_packetin(&_os, &op);
    drain_pages(true);
    // RFC 7845 5.2: comment header, ending its own page(s).
    std::string t = "OpusTags";
    const std::string vendor = "stentor";
    put_le32(t, static_cast<uint32_t>(vendor.size()));
    t += vendor;
    put_le32(t, static_cast<uint32_t>(tags.size()));
    for (const auto& [k, v] : tags) {
        const std::string c = k + "=" + v;
        put_le32(t, static_cast<uint32_t>(c.size()));
        t += c;
    }
    op = ogg_packet{};
    op.packet = reinterpret_cast<unsigned char*>(t.data());
    op.bytes = static_cast<long>(t.size());
    op.granulepos = 0;
    op.packetno = _packetno++;
    ogg_stream_packetin(&_os, &op);
    drain_pages(true);
}

ogg_opus_track::~ogg_opus_track() { ogg_stream_clear(&_os); }

double ogg_opus_track::duration_s() const {
    return _written > _pre_skip ? static_cast<double>(_written - _pre_skip) / sample_rate : 0.0;
}

void ogg_opus_track::drain_pages(bool force) {
    ogg_page og;
    for (;;) {
        const int r = force ? ogg_stream_flush(&_os, &og) : ogg_stream_pageout(&_os, &og);
        if (r == 0) break;
        _out.append(reinterpret_cast<const char*>(og.header), static_cast<size_t>(og.header_len));
        _out.append(reinterpret_cast<const char*>(og.body), static_cast<size_t>(og.body_len));
        _last_page_granule = _written;
    }
}

void ogg_opus_track::packet_in(const uint8_t* p, long len, bool eos) {
    ogg_packet op{};
    op.packet = const_cast<unsigned char*>(p);
    op.bytes = len;
    op.e_o_s = eos ? 1 : 0;
    op.granulepos = static_cast<ogg_int64_t>(_written);
    op.packetno = _packetno++;
    ogg_stream_packetin(&_os, &op);
}

void ogg_opus_track::write(const held& h, bool eos) {
    const int64_t written = static_cast<int64_t>(_written);
    if (h.rel + h.samples <= written) {
        ++_st.late;   // its stretch of the timeline is already on disk
        if (eos) {
            // Still end the stream properly: one filler carries the EOS flag.
            _written += static_cast<uint64_t>(_filler_samples);
            packet_in(&_filler_toc, 1, true);
            ++_st.fillers;
            drain_pages(true);
        }
        return;
    }
    // Fill the gap (DTX or loss) with "frame missing" packets; the remainder
    // smaller than a frame stays in the cumulative gap of the next packet.
    int64_t gap = h.rel - written;
    while (gap >= _filler_samples) {
        _written += static_cast<uint64_t>(_filler_samples);
        gap -= _filler_samples;
        packet_in(&_filler_toc, 1, false);
        ++_st.fillers;
        if (_written - _last_page_granule >= page_interval_samples) drain_pages(true);
        else drain_pages(false);
    }
    _written += static_cast<uint64_t>(h.samples);
    packet_in(h.data.data(), static_cast<long>(h.data.size()), eos);
    ++_st.packets;
    // Code-0 TOC of the latest packet: fillers keep its mode, bandwidth,
    // channels and frame size.
    _filler_toc = static_cast<uint8_t>(h.data[0] & 0xfc);
    _filler_samples = opus_packet_get_samples_per_frame(&_filler_toc, sample_rate);
    if (eos || _written - _last_page_granule >= page_interval_samples)
        drain_pages(true);
    else
        drain_pages(false);
}

void ogg_opus_track::push(uint16_t seq, uint32_t ts, const uint8_t* payload, uint32_t len, uint64_t arrival_ns) {
    if (_finished) return;
    const int n = len > 0 ? opus_packet_get_nb_samples(payload, static_cast<opus_int32>(len), sample_rate) : -1;
    if (n <= 0) {
        ++_st.invalid;
        return;
    }
    int64_t rel;
    if (!_started) {
        _started = true;
        rel = 0;
        _max_seq = static_cast<uint16_t>(seq - 1);
        _filler_toc = static_cast<uint8_t>(payload[0] & 0xfc);
        _filler_samples = opus_packet_get_samples_per_frame(&_filler_toc, sample_rate);
    } else {
        // Extend the 32-bit timestamp: the signed difference to the latest
        // arrival survives wrap-around and modest reordering.
        rel = _last_rel + rtp::ts_diff(ts, _last_ts);
        if (arrival_ns > _last_arrival_ns) {
            const int64_t wall = static_cast<int64_t>((arrival_ns - _last_arrival_ns) * sample_rate / 1000000000ull);
            if (std::llabs((rel - _last_rel) - wall) > max_ts_wall_disagreement) rel = _last_rel + wall;
        }
    }
    _last_ts = ts;
    _last_rel = rel;
    _last_arrival_ns = arrival_ns;
    // Loss: sequence numbers skipped past the highest seen.
    const int16_t ds = rtp::seq_diff(seq, _max_seq);
    if (ds > 0) {
        _st.lost += static_cast<uint64_t>(ds - 1);
        _max_seq = seq;
    } else if (_st.lost > 0) {
        --_st.lost;   // a late packet fills a hole counted as lost
    }

    // Insert in timestamp order; equal timestamps are duplicates.
    auto it = _window.end();
    while (it != _window.begin() && std::prev(it)->rel > rel) --it;
    if (it != _window.begin() && std::prev(it)->rel == rel) {
        ++_st.duplicates;
        if (ds <= 0 && _st.lost > 0) ++_st.lost;   // undo: not a hole filled
        return;
    }
    if (it != _window.end()) ++_st.reordered;
    _window.insert(it, held{rel, seq, n, std::vector<uint8_t>(payload, payload + len)});
    while (_window.size() > _window_max) {
        write(_window.front(), false);
        _window.pop_front();
    }
}

void ogg_opus_track::flush(uint64_t now_ns, uint64_t hold_ns) {
    if (!_started || _finished) return;
    if (now_ns >= _last_arrival_ns + hold_ns) {
        while (!_window.empty()) {
            write(_window.front(), false);
            _window.pop_front();
        }
    }
    drain_pages(true);
}

void ogg_opus_track::finish() {
    if (_finished) return;
    _finished = true;
    if (_window.empty()) {
        // Nothing held (cannot happen after a first packet): end with a filler.
        packet_in(&_filler_toc, 1, true);
        _written += static_cast<uint64_t>(_filler_samples);
        ++_st.fillers;
        drain_pages(true);
        return;
    }
    while (!_window.empty()) {
        write(_window.front(), _window.size() == 1);
        _window.pop_front();
    }
    drain_pages(true);
}

}  // namespace stentor::svc
