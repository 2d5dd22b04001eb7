#include "ogg_repair.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <ogg/ogg.h>

namespace stentor::svc {

namespace {

uint32_t le32(const unsigned char* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24; }

// RFC 7845 5.2; false if it is not a comment header.
bool read_tags(const ogg_packet& op, std::vector<std::pair<std::string, std::string>>& tags) {
    const unsigned char* p = op.packet;
    const size_t n = static_cast<size_t>(op.bytes);
    if (n < 16 || std::memcmp(p, "OpusTags", 8) != 0) return false;
    size_t at = 8;
    const uint32_t vendor = le32(p + at);
    at += 4;
    if (vendor > n - at || n - at - vendor < 4) return false;
    at += vendor;
    uint32_t count = le32(p + at);
    at += 4;
    while (count-- > 0 && n - at >= 4) {
        const uint32_t len = le32(p + at);
        at += 4;
        if (len > n - at) return false;
        const std::string c(reinterpret_cast<const char*>(p + at), len);
        at += len;
        const size_t eq = c.find('=');
        if (eq != std::string::npos) tags.emplace_back(c.substr(0, eq), c.substr(eq + 1));
    }
    return true;
}

struct sync_guard {
    ogg_sync_state oy{};
    ogg_stream_state os{};
    bool os_init = false;
    sync_guard() { ogg_sync_init(&oy); }
    ~sync_guard() {
        ogg_sync_clear(&oy);
        if (os_init) ogg_stream_clear(&os);
    }
};

}  // namespace

repair_result repair_ogg_opus(int fd) {
    repair_result r;
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        r.why = std::string("fstat: ") + std::strerror(errno);
        return r;
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    sync_guard g;
    uint64_t file_off = 0;          // bytes handed to the sync layer
    uint64_t pos = 0;               // file offset of the next page pageseek returns
    uint64_t keep_start = 0, keep_end = 0;
    int64_t keep_granule = 0;
    bool keep_eos = false;
    bool have_head = false, have_tags = false;
    long serial = 0, next_pageno = 0;
    for (;;) {
        ogg_page og;
        const long n = ogg_sync_pageseek(&g.oy, &og);
        if (n == 0) {
            char* buf = ogg_sync_buffer(&g.oy, 65536);
            const ssize_t got = ::pread(fd, buf, 65536, static_cast<off_t>(file_off));
            if (got < 0) {
                r.why = std::string("read: ") + std::strerror(errno);
                return r;
            }
            if (got == 0) break;
            ogg_sync_wrote(&g.oy, got);
            file_off += static_cast<uint64_t>(got);
            continue;
        }
        if (n < 0) break;           // not a page (bad CRC, torn): the run of good pages ends here
        const uint64_t start = pos;
        pos += static_cast<uint64_t>(n);
        if (!have_head) {
            if (!ogg_page_bos(&og) || og.body_len < 19 || std::memcmp(og.body, "OpusHead", 8) != 0) {
                r.why = "does not start with an OpusHead page";
                return r;
            }
            serial = ogg_page_serialno(&og);
            ogg_stream_init(&g.os, static_cast<int>(serial));
            g.os_init = true;
            have_head = true;
        } else if (ogg_page_serialno(&og) != serial || ogg_page_pageno(&og) != next_pageno) {
            break;                  // a page missing or a foreign one: the run ends before it
        }
        next_pageno = ogg_page_pageno(&og) + 1;
        ogg_stream_pagein(&g.os, &og);
        ogg_packet op;
        while (ogg_stream_packetout(&g.os, &op) == 1) {
            if (op.packetno == 0 && op.bytes >= 19) {
                r.channels = op.packet[9];
                r.pre_skip = static_cast<unsigned>(op.packet[10] | op.packet[11] << 8);
            } else if (op.packetno == 1) {
                have_tags = read_tags(op, r.tags);
            }
        }
        const int segs = og.header[26];
        const bool ends_packet = segs > 0 && og.header[27 + segs - 1] != 255;
        if (ends_packet && ogg_page_granulepos(&og) >= 0) {
            keep_start = start;
            keep_end = pos;
            keep_granule = ogg_page_granulepos(&og);
            keep_eos = ogg_page_eos(&og) != 0;
        }
        if (ogg_page_eos(&og)) break;
    }
    if (!have_head) {
        r.why = size == 0 ? "empty file" : "no complete Ogg page";
        return r;
    }
    if (!have_tags) {
        r.why = "no complete OpusTags header";
        return r;
    }
    r.granule = keep_granule;
    r.bytes = keep_end;
    if (keep_end < size) {
        if (::ftruncate(fd, static_cast<off_t>(keep_end)) != 0) {
            r.why = std::string("ftruncate: ") + std::strerror(errno);
            return r;
        }
        r.dropped_bytes = size - keep_end;
        r.changed = true;
    }
    if (!keep_eos) {
        std::string page(keep_end - keep_start, '\0');
        if (::pread(fd, page.data(), page.size(), static_cast<off_t>(keep_start)) != static_cast<ssize_t>(page.size())) {
            r.why = "read back the last page failed";
            return r;
        }
        auto* h = reinterpret_cast<unsigned char*>(page.data());
        h[5] |= 0x04;               // end of stream
        ogg_page og{};
        og.header = h;
        og.header_len = 27 + h[26];
        og.body = h + og.header_len;
        og.body_len = static_cast<long>(page.size()) - og.header_len;
        ogg_page_checksum_set(&og);
        if (::pwrite(fd, page.data(), page.size(), static_cast<off_t>(keep_start)) != static_cast<ssize_t>(page.size())) {
            r.why = std::string("write the end-of-stream flag: ") + std::strerror(errno);
            return r;
        }
        r.changed = true;
    }
    if (r.changed && ::fsync(fd) != 0) {
        r.why = std::string("fsync: ") + std::strerror(errno);
        return r;
    }
    r.ok = true;
    return r;
}

}  // namespace stentor::svc
