// One logical Ogg Opus stream (RFC 7845) from RTP packets: the recorder's
// Ogg paging, with libogg. No I/O: pages accumulate in pending() and the
// recorder hands them to its writer. The timeline rules (fillers for DTX
// and loss, the reorder window, clock restarts) are described in
// stentor/services/recorder.h.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include <ogg/ogg.h>

#include "stentor/services/recording.h"

namespace stentor::svc {

// Writes one logical Ogg Opus stream from RTP packets into a byte buffer
// (pages). No I/O: the recorder moves the bytes to disk.
class ogg_opus_track {
public:
    // channels: OpusHead channel count; pre_skip: samples the player drops at
    // the start (the sender's encoder delay).
    ogg_opus_track(uint32_t serial, unsigned channels, unsigned pre_skip,
                   const std::vector<std::pair<std::string, std::string>>& tags, unsigned reorder_window = 5);
    ~ogg_opus_track();
    ogg_opus_track(const ogg_opus_track&) = delete;
    ogg_opus_track& operator=(const ogg_opus_track&) = delete;

    void push(uint16_t seq, uint32_t ts, const uint8_t* payload, uint32_t len, uint64_t arrival_ns);
    void finish();                                   // write what is held, end of stream
    // Called at least every second by the recorder: if no packet arrived for
    // `hold_ns`, the reorder window is written out (a packet that comes
    // later for that stretch counts as late); then whatever audio is not on
    // a page yet goes on one. So a crash, or a speaker going quiet (DTX),
    // leaves at most about a second of audio only in memory.
    void flush(uint64_t now_ns, uint64_t hold_ns);

    std::string& pending() { return _out; }          // pages not yet taken by the writer
    uint64_t granule() const { return _written; }    // samples written, incl. pre-skip
    double duration_s() const;                       // (granule - pre_skip) / 48000
    unsigned pre_skip() const { return _pre_skip; }
    const track_stats& stats() const { return _st; }
    bool finished() const { return _finished; }

private:
    struct held {
        int64_t rel;                                 // timestamp relative to the first packet
        uint16_t seq;
        int samples;
        std::vector<uint8_t> data;
    };
    void write(const held& h, bool eos);
    void packet_in(const uint8_t* p, long len, bool eos);
    void drain_pages(bool force);

    ogg_stream_state _os{};
    std::string _out;
    std::deque<held> _window;                        // sorted by rel
    unsigned _window_max;
    unsigned _pre_skip;
    bool _started = false;
    bool _finished = false;
    uint32_t _last_ts = 0;                           // of the latest arrival
    int64_t _last_rel = 0;
    uint64_t _last_arrival_ns = 0;
    uint16_t _max_seq = 0;
    uint64_t _written = 0;                           // granule
    uint64_t _last_page_granule = 0;
    uint8_t _filler_toc = 0;
    int _filler_samples = 960;
    int64_t _packetno = 0;
    track_stats _st;
};

}  // namespace stentor::svc
