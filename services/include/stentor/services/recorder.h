// Recordings: sessions with recording on are written as Ogg Opus files, off
// the data-plane cores. The RX lcores (forward mode) and the mixer (mix mode)
// hand speaker-packet messages to dp_shared::record_ring; the recorder thread
// turns them into Ogg pages (libogg) and writes the pages with io_uring. The
// data plane never waits for it: a full ring drops the message (counted as
// drop/egress/record_ring_full by the lcore that tried) and the track shows the gap
// as lost packets.
//
// File layout: one Ogg Opus file per track, one track per speaker SSRC
// (forward) or one for the mix. Ogg only multiplexes streams whose first
// pages all come before any audio page, and speakers join sessions at any
// time, so one file per track is the only layout every player reads right.
// Files are named <dir>/session-<id>-<UTC start>-<ssrc hex | mix>.opus.
//
// Timeline: granule positions are 48 kHz samples from the track's first RTP
// timestamp (32-bit wrap handled). A gap in timestamps (DTX: the sender sent
// nothing; loss: packets missing) is filled with one-byte Opus packets (TOC
// only, code 0: "frame missing", RFC 6716 3.2.1) so that every decoder plays
// silence or concealment there and the file lasts exactly as long as the
// session, and granule positions always equal the samples decoded. A small
// reorder window puts late packets back in order; duplicates are dropped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "stentor/dp_counters.h"

struct rte_ring;

namespace stentor::dp {
struct dp_shared;
}

namespace stentor::svc {

// ---------------------------------------------------------------- one stream

struct track_stats {
    uint64_t packets = 0;        // Opus packets written
    uint64_t fillers = 0;        // one-byte packets written for DTX gaps and loss
    uint64_t lost = 0;           // sequence numbers never seen
    uint64_t reordered = 0;      // put back in order by the window
    uint64_t duplicates = 0;     // dropped
    uint64_t late = 0;           // arrived after the window had moved past
    uint64_t invalid = 0;        // not an Opus packet
};

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

    struct ogg_state;
    std::unique_ptr<ogg_state> _ogg;
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

// ---------------------------------------------------------------- recorder

struct recording_track {
    uint32_t ssrc = 0;
    std::string path;
    double start_offset_s = 0;   // first packet, from the recording's start
    double duration_s = 0;
    uint64_t bytes = 0;          // written to disk
    track_stats stats;
};

struct recording_info {
    uint32_t session_id = 0;
    std::string name;
    std::string mode;            // "forward" | "mix"
    std::string state;           // "recording" | "finalised" | "error"
    std::string path;            // first track's file (the mix in mix mode); empty before audio
    double duration_s = 0;       // longest track
    uint64_t bytes = 0;          // all tracks
    std::string error;           // first I/O error, empty if none
    int64_t started_unix_ms = 0;
    int64_t ended_unix_ms = 0;   // 0 while recording
    std::vector<recording_track> tracks;
};

#define STENTOR_FOREACH_RECORDER_STAT(_) \
    _(messages, "taken from the ring") \
    _(not_recording, "session unknown or not recording") \
    _(after_end, "arrived after the recording was finalised") \
    _(error_dropped, "recording in error state: not written") \
    _(write_errors, "failed or short writes, open failures") \
    _(bytes_written, "bytes of Ogg pages written to disk") \
    _(files_opened, "track files created") \
    _(files_finalised, "track files closed with their end-of-stream page") \
    _(stale, "message whose session ended or was replaced while it was queued")

struct recorder_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_RECORDER_STAT, recorder_stats)
};

struct recorder_options {
    std::string dir = "/var/lib/stentor/recordings";
    unsigned queue_depth = 256;                  // io_uring entries
    size_t max_backlog_bytes = size_t{16} << 20; // unwritten pages per track before it is failed
    unsigned reorder_window = 5;                 // packets held to undo reordering (100 ms at 20 ms)
    // OpusHead pre-skip: libopus' encoder delay at 48 kHz outside the
    // restricted-low-delay mode, which is what the mixer's encoder and
    // nearly every sender use; the RTP stream does not say.
    unsigned pre_skip = 312;
};

class recorder {
public:
    recorder(const recorder_options& o, dp::dp_shared& shared, rte_ring* ring);
    ~recorder();
    recorder(const recorder&) = delete;
    recorder& operator=(const recorder&) = delete;

    // Recorder thread (or the test thread when there is none): take
    // messages, write pages, reap completions, run control requests. The
    // caller is an RCU reader of the snapshot. Returns the work done.
    unsigned poll();

    // Control plane. With a thread running (set_threaded(true)) these hand
    // the work to it and wait until it is done, so the files are closed and
    // the duration known when they return; without, they do it inline.
    void set_threaded(bool threaded);
    void session_started(uint32_t id, const std::string& name, const std::string& mode);
    void session_ended(uint32_t id);
    void finalise_all();

    std::vector<recording_info> recordings() const;
    std::optional<recording_info> recording(uint32_t session_id) const;   // the latest of that session
    recorder_stats stats() const;

    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

}  // namespace stentor::svc
