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
//
// Durability: a track's file is <name>.opus.part (locked with flock) while
// it is written; pages are cut and fdatasynced at least every second; at
// the end the file is fsynced, renamed to <name>.opus and the directory
// fsynced (after each create too). A recorder starting finds the .part
// files nobody holds a lock on (their recorder died), closes each
// (ogg_repair.h: torn tail cut, end-of-stream set on the last whole page),
// renames it and lists it as "recovered". One it cannot open as a regular
// file (a link, never followed; a directory; no permission) is left as it
// is, logged with the reason and counted (recover_skipped).
//
// Threads: poll() is the online step (messages into Ogg pages, in memory,
// no system call but the ring's), io() the offline one: every open, fsync,
// close, rename runs there, without the lock the control plane's reads
// take, so a stalled disk holds neither a publish's grace period nor an
// API read (issue 10, item 6).
//
// Caps (issue 10, item 2): at most max_tracks_per_recording tracks per
// recording and max_tracks open in the relay; a new SSRC over a cap is
// refused, counted once (tracks_refused) and logged once, its packets
// counted in refused_packets. A full disk (ENOSPC, EDQUOT) pauses the track
// instead of failing it: its packets are counted (paused_packets) and not
// recorded, the unwritten pages are tried again every retry_interval_ns,
// and on success recording resumes; the gap is filled like DTX, so the
// timeline stays right.
//
// Inside the wing (services/): record_input reads a message, ogg_opus_track
// pages one stream, uring_writer does the file I/O, ogg_repair closes a file
// that was cut off, recorder.cc runs the recordings' lifecycle and the
// control plane's commands.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stentor/dp_counters.h"
#include "stentor/services/recording.h"

struct rte_ring;

namespace stentor::dp {
struct dp_shared;
}

namespace stentor::svc {

#define STENTOR_FOREACH_RECORDER_STAT(_) \
    _(messages, "taken from the ring") \
    _(not_recording, "session unknown or not recording") \
    _(after_end, "arrived after the recording was finalised") \
    _(error_dropped, "recording in error state: not written") \
    _(write_errors, "failed or short writes, open failures") \
    _(bytes_written, "bytes of Ogg pages written to disk") \
    _(files_opened, "track files created") \
    _(files_finalised, "track files closed with their end-of-stream page") \
    _(stale, "message whose session ended or was replaced while it was queued") \
    _(session_errors, "recordings failed by an exception (recording_info.error says why); the others go on") \
    _(tracks_refused, "new SSRCs refused: the recording or the relay had its cap of tracks (logged once per SSRC)") \
    _(refused_packets, "packets of refused SSRCs, not recorded") \
    _(disk_full_pauses, "tracks paused by a full disk (ENOSPC, EDQUOT); they resume once a write succeeds again") \
    _(paused_packets, "packets not recorded while their track was paused (the gap is filled with silence)") \
    _(syncs, "fdatasyncs completed (each track with new bytes, at least once a second)") \
    _(recovered, "unfinished files (.part) of a recorder that died, closed at start and listed as recovered") \
    _(recover_skipped, "unfinished files (.part) at start that are not a regular file it can open (a link, a directory, a FIFO, no permission): left as they are, logged once each with the reason")

struct recorder_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_RECORDER_STAT, recorder_stats)
};

struct recorder_options {
    std::string dir = "/var/lib/stentor/recordings";
    unsigned queue_depth = 256;                  // io_uring entries
    size_t max_backlog_bytes = size_t{16} << 20; // unwritten pages per track before it is failed
    unsigned reorder_window = 5;                 // packets held to undo reordering (100 ms at 20 ms)
    // Profile [recording] max_tracks_per_recording / max_tracks: a room has
    // a handful of speakers; 1024 files leave room under the process's fd
    // limit for everything else.
    unsigned max_tracks_per_recording = 32;
    unsigned max_tracks = 1024;                  // open track files in the whole relay
    uint64_t sync_interval_ns = 1000000000;      // page cut + fdatasync of every track with new audio
    uint64_t retry_interval_ns = 1000000000;     // a paused (disk full) track tries its write again
    // How long a session's end waits for its tracks' writes and fdatasync:
    // past it the recording fails and a file the disk has not answered for
    // is left open until it does (docs/audio.md, Durability). Tests shorten it.
    uint64_t end_timeout_ns = 10000000000;
    // OpusHead pre-skip: libopus' encoder delay at 48 kHz outside the
    // restricted-low-delay mode, which is what the mixer's encoder and
    // nearly every sender use; the RTP stream does not say.
    unsigned pre_skip = 312;
};

class recorder {
public:
    // Scans o.dir for the .part files of a recorder that died and closes
    // them (blocking: before the threads start).
    recorder(const recorder_options& o, dp::dp_shared& shared, rte_ring* ring);
    ~recorder();
    recorder(const recorder&) = delete;
    recorder& operator=(const recorder&) = delete;

    // Recorder thread (or the test thread when there is none), online as an
    // RCU reader of the snapshot: take messages into the tracks' Ogg pages.
    // Memory only. Returns the messages taken.
    unsigned poll();
    // Recorder thread, offline as a reader (the service thread's offline
    // step): the control requests, file creation, writes, syncs, closes,
    // pause and resume. `now_ns` is CLOCK_MONOTONIC. Returns the work done.
    unsigned io(uint64_t now_ns);

    // Control plane. session_started only takes note (no I/O, no wait).
    // session_ended and finalise_all: with a thread running
    // (set_threaded(true)) they hand the work to it and wait until it is
    // done (bounded), so the files are closed and the duration known when
    // they return; without, they do it inline.
    void set_threaded(bool threaded);
    void session_started(uint32_t id, const std::string& name, const std::string& mode);
    void session_ended(uint32_t id);
    void finalise_all();

    std::vector<recording_info> recordings() const;
    std::optional<recording_info> recording(uint32_t session_id) const;   // the latest of that session
    recorder_stats stats() const;
    // Generations of ended sessions held to count their late messages
    // (after_end): only those still in the snapshot stay for long (tests).
    size_t ended_generations() const;

    std::optional<recording_info> recording_by_id(uint64_t id) const;

    // Control plane: deletes the files of recording `id` (recording_info::id)
    // and takes it off the list, once it is closed (finalised, recovered or
    // failed). A recording still written (or being finalised) is left as
    // it is: status `recording`; so is one whose end gave up on a write or
    // sync its disk has not answered yet (a request in io_uring points at
    // its track): status `waiting_for_disk`. The unlinks run on the
    // caller's thread, outside the lock, so a slow disk delays only this
    // call. A file that cannot be unlinked (other than already gone) puts
    // the recording back on the list with the reason: status `failed`.
    enum class remove_status { removed, not_found, recording, waiting_for_disk, failed };
    struct remove_result {
        remove_status status = remove_status::not_found;
        recording_info info;          // as it was listed (removed, failed) or is (recording)
        std::vector<std::string> unlinked;
        std::string error;            // failed: which file and why
    };
    remove_result remove(uint64_t id);

    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

}  // namespace stentor::svc
