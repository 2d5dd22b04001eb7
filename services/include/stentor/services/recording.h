// What a recording is, as the control plane reads it (API, CLI): one
// recording per recorded session, one track (file) per speaker SSRC or for
// the mix, with the stream figures of each track. Written by the recorder
// thread; readers get copies (recorder::recordings()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stentor::svc {

struct track_stats {
    uint64_t packets = 0;        // Opus packets written
    uint64_t fillers = 0;        // one-byte packets written for DTX gaps and loss
    uint64_t lost = 0;           // sequence numbers never seen
    uint64_t reordered = 0;      // put back in order by the window
    uint64_t duplicates = 0;     // dropped
    uint64_t late = 0;           // arrived after the window had moved past
    uint64_t invalid = 0;        // not an Opus packet
};

struct recording_track {
    uint32_t ssrc = 0;
    std::string path;
    double start_offset_s = 0;   // first packet, from the recording's start
    double duration_s = 0;
    uint64_t bytes = 0;          // written to disk
    track_stats stats;
    double paused_s = 0;         // time paused because the disk was full (filled with silence on resume)
    uint64_t paused_packets = 0; // packets not recorded meanwhile
    // The end gave up on a write or fdatasync the disk has not answered:
    // the file is still open and .part, closed once the answer comes
    // (docs/audio.md, Durability); the recording cannot be deleted meanwhile.
    bool waiting_for_disk = false;
};

struct recording_info {
    uint64_t id = 0;             // the recorder's, from 1, never reused while the process runs (API /recordings/{id})
    uint32_t session_id = 0;
    std::string name;
    std::string mode;            // "forward" | "mix"
    std::string state;           // "recording" | "paused" (disk full) | "finalised" | "error" | "recovered"
    std::string path;            // first track's file (the mix in mix mode); empty before audio
    double duration_s = 0;       // longest track
    uint64_t bytes = 0;          // all tracks
    std::string error;           // first I/O error (a disk-full pause included), empty if none
    int64_t started_unix_ms = 0;
    int64_t ended_unix_ms = 0;   // 0 while recording; recovered: the file's last write
    double paused_s = 0;         // longest track's time paused because the disk was full
    uint64_t paused_packets = 0; // all tracks' packets not recorded meanwhile
    std::vector<recording_track> tracks;
};

}  // namespace stentor::svc
