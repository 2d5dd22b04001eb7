// Closing an Ogg Opus file that was cut off: a recording whose process was
// killed (SIGKILL, a crash, power loss after the last fsync) or whose disk
// filled up. What such a file holds is a run of complete pages, perhaps a
// torn page at the end, and no end-of-stream page.
//
// repair_ogg_opus keeps the longest run of complete, CRC-valid pages from
// the start whose last page ends on a packet boundary, cuts the file there
// (ftruncate), sets the end-of-stream flag on that last page (its CRC
// recomputed) and fsyncs. Granule positions in the recorder's files are the
// samples written so far, so the last kept page's granule is the right
// duration: no packet is rewritten. In place and at most one page written:
// it works on a full disk too.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace stentor::svc {

struct repair_result {
    bool ok = false;
    std::string why;               // !ok: what is wrong with the file
    bool changed = false;          // cut or flagged (false: it was whole already)
    uint64_t bytes = 0;            // file size afterwards
    uint64_t dropped_bytes = 0;    // torn tail cut off
    int64_t granule = 0;           // of the last page kept
    unsigned pre_skip = 0;
    unsigned channels = 0;
    std::vector<std::pair<std::string, std::string>> tags;   // OpusTags comments, KEY=value split
    double duration_s() const { return granule > pre_skip ? static_cast<double>(granule - pre_skip) / 48000.0 : 0.0; }
};

// `fd` open for reading and writing. Blocking: offline, no lock held.
repair_result repair_ogg_opus(int fd);

}  // namespace stentor::svc
