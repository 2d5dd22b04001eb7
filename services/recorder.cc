#include "stentor/services/recorder.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <liburing.h>
#include <ogg/ogg.h>
#include <opus/opus.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stentor/dp_shared.h"

namespace stentor::svc {

// ================================================================ ogg_opus_track

namespace {

constexpr int sample_rate = 48000;
// Pages are cut at least every second of audio even at low bitrates, so a
// crash loses at most about a second and a half-written file still plays.
constexpr uint64_t page_interval_samples = sample_rate;
// A gap in RTP timestamps that disagrees with the arrival times by more than
// this is a sender that restarted its clock, not silence: trust the clock.
constexpr int64_t max_ts_wall_disagreement = int64_t{10} * sample_rate;
constexpr size_t max_listed = 4096;

void put_le16(std::string& b, uint16_t v) {
    b.push_back(static_cast<char>(v & 0xff));
    b.push_back(static_cast<char>(v >> 8));
}
void put_le32(std::string& b, uint32_t v) {
    put_le16(b, static_cast<uint16_t>(v));
    put_le16(b, static_cast<uint16_t>(v >> 16));
}

}  // namespace

struct ogg_opus_track::ogg_state {
    ogg_stream_state os;
};

ogg_opus_track::ogg_opus_track(uint32_t serial, unsigned channels, unsigned pre_skip,
                               const std::vector<std::pair<std::string, std::string>>& tags, unsigned reorder_window)
    : _ogg(std::make_unique<ogg_state>()), _window_max(std::max(1u, reorder_window)), _pre_skip(pre_skip) {
    ogg_stream_init(&_ogg->os, static_cast<int>(serial));
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
    ogg_stream_packetin(&_ogg->os, &op);
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
    ogg_stream_packetin(&_ogg->os, &op);
    drain_pages(true);
}

ogg_opus_track::~ogg_opus_track() { ogg_stream_clear(&_ogg->os); }

double ogg_opus_track::duration_s() const {
    return _written > _pre_skip ? static_cast<double>(_written - _pre_skip) / sample_rate : 0.0;
}

void ogg_opus_track::drain_pages(bool force) {
    ogg_page og;
    for (;;) {
        const int r = force ? ogg_stream_flush(&_ogg->os, &og) : ogg_stream_pageout(&_ogg->os, &og);
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
    ogg_stream_packetin(&_ogg->os, &op);
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
        rel = _last_rel + static_cast<int32_t>(ts - _last_ts);
        if (arrival_ns > _last_arrival_ns) {
            const int64_t wall = static_cast<int64_t>((arrival_ns - _last_arrival_ns) * sample_rate / 1000000000ull);
            if (std::llabs((rel - _last_rel) - wall) > max_ts_wall_disagreement) rel = _last_rel + wall;
        }
    }
    _last_ts = ts;
    _last_rel = rel;
    _last_arrival_ns = arrival_ns;
    // Loss: sequence numbers skipped past the highest seen.
    const int16_t ds = static_cast<int16_t>(seq - _max_seq);
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

// ================================================================ recorder

namespace {

uint64_t mono_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string utc_stamp() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char b[32];
    std::strftime(b, sizeof b, "%Y%m%dT%H%M%SZ", &tm);
    return b;
}

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p) { return uint32_t{rd16(p)} << 16 | rd16(p + 2); }

struct write_req;

struct file_out {
    int fd = -1;
    std::string path;
    uint64_t offset = 0;          // next write position
    uint64_t written = 0;         // bytes confirmed on disk
    unsigned inflight = 0;
};

struct write_req {
    file_out* f;
    std::string buf;
    size_t done;
    uint64_t off;
};

struct track {
    uint32_t ssrc;
    std::unique_ptr<ogg_opus_track> ogg;
    file_out file;
    double start_offset_s = 0;
};

struct rec {
    recording_info info;
    uint64_t generation = 0;      // 0: announced, no packet yet
    uint64_t start_ns = 0;
    std::string stamp;
    bool failed = false;
    bool closed = false;
    bool dir_ready = false;
    std::vector<std::unique_ptr<track>> tracks;
};

enum class cmd_kind { started, ended, all };

struct command {
    cmd_kind kind;
    uint32_t id;
    std::string name;
    std::string mode;
};

}  // namespace

struct recorder::impl {
    recorder_options opt;
    dp::dp_shared& sh;
    rte_ring* ring;
    io_uring uring{};
    bool uring_ok = false;
    std::string uring_error;

    mutable std::mutex mu;
    std::condition_variable cv;
    bool threaded = false;
    std::vector<command> cmds;
    uint64_t cmd_seq = 0;
    uint64_t cmd_done = 0;

    std::map<uint32_t, std::unique_ptr<rec>> active;         // by session id
    std::vector<std::unique_ptr<rec>> done;                  // finalised, oldest first
    std::set<uint64_t> closed_generations;
    recorder_stats st;

    impl(const recorder_options& o, dp::dp_shared& s, rte_ring* r) : opt(o), sh(s), ring(r) {
        // Every recorded track holds a file open until its session ends; the
        // default soft limit (1024) would cap a relay at ~1000 tracks.
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        const int e = io_uring_queue_init(std::max(8u, opt.queue_depth), &uring, 0);
        if (e < 0) {
            uring_error = std::string("io_uring_queue_init: ") + std::strerror(-e);
        } else {
            uring_ok = true;
        }
    }

    ~impl() {
        if (uring_ok) io_uring_queue_exit(&uring);
    }

    void fail(rec& r, const std::string& what) {
        ++st.write_errors;
        if (!r.failed) {
            r.failed = true;
            r.info.state = "error";
            r.info.error = what;
        }
    }

    rec* find_rec_of_file(const file_out* f) {
        for (auto& [id, r] : active)
            for (auto& t : r->tracks)
                if (&t->file == f) return r.get();
        for (auto& r : done)
            for (auto& t : r->tracks)
                if (&t->file == f) return r.get();
        return nullptr;
    }

    // ---- io_uring

    bool submit_write(file_out& f, std::string&& bytes, size_t done_bytes, uint64_t off) {
        io_uring_sqe* sqe = io_uring_get_sqe(&uring);
        if (sqe == nullptr) {
            io_uring_submit(&uring);
            sqe = io_uring_get_sqe(&uring);
            if (sqe == nullptr) return false;
        }
        auto* req = new write_req{&f, std::move(bytes), done_bytes, off};
        io_uring_prep_write(sqe, f.fd, req->buf.data() + req->done, static_cast<unsigned>(req->buf.size() - req->done),
                            req->off);
        io_uring_sqe_set_data(sqe, req);
        ++f.inflight;
        return true;
    }

    void complete(io_uring_cqe* cqe) {
        auto* req = static_cast<write_req*>(io_uring_cqe_get_data(cqe));
        const int res = cqe->res;
        io_uring_cqe_seen(&uring, cqe);
        if (req == nullptr) return;
        file_out& f = *req->f;
        --f.inflight;
        const size_t want = req->buf.size() - req->done;
        if (res < 0 || res == 0) {
            rec* r = find_rec_of_file(&f);
            const std::string why = res < 0 ? std::strerror(-res) : "wrote 0 bytes";
            if (r != nullptr) fail(*r, "write " + f.path + ": " + why);
            else ++st.write_errors;
            delete req;
            return;
        }
        f.written += static_cast<uint64_t>(res);
        st.bytes_written += static_cast<uint64_t>(res);
        if (static_cast<size_t>(res) < want) {
            // Short write: the rest goes out again from where it stopped (the
            // next attempt reports the real error if the disk is full).
            const size_t nd = req->done + static_cast<size_t>(res);
            const uint64_t noff = req->off + static_cast<uint64_t>(res);
            std::string b = std::move(req->buf);
            delete req;
            if (!submit_write(f, std::move(b), nd, noff)) {
                rec* r = find_rec_of_file(&f);
                if (r != nullptr) fail(*r, "write " + f.path + ": submission queue full");
            }
            return;
        }
        delete req;
    }

    unsigned reap() {
        unsigned n = 0;
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&uring, &cqe) == 0 && cqe != nullptr) {
            complete(cqe);
            ++n;
        }
        return n;
    }

    // Hand a track's finished pages to io_uring (no wait).
    void flush_track(rec& r, track& t) {
        std::string& p = t.ogg->pending();
        if (p.empty() || t.file.fd < 0) return;
        if (r.failed) {
            p.clear();
            return;
        }
        if (p.size() > opt.max_backlog_bytes) {
            fail(r, "write " + t.file.path + ": more than " + std::to_string(opt.max_backlog_bytes >> 20) +
                        " MiB not written yet (disk too slow)");
            p.clear();
            return;
        }
        // Bound in-flight writes per file; the rest waits in memory.
        if (t.file.inflight >= 8) return;
        const uint64_t off = t.file.offset;
        const size_t len = p.size();
        std::string bytes;
        bytes.swap(p);
        if (submit_write(t.file, std::move(bytes), 0, off)) {
            t.file.offset += len;
        } else {
            fail(r, "write " + t.file.path + ": submission queue full");
        }
    }

    void wait_idle(rec& r) {
        // Bounded: a dead disk cannot hold the control plane for long.
        const uint64_t deadline = mono_ns() + 10ull * 1000000000ull;
        for (;;) {
            io_uring_submit(&uring);
            reap();
            bool busy = false;
            for (auto& t : r.tracks) {
                flush_track(r, *t);
                busy |= t->file.inflight > 0 || (!t->ogg->pending().empty() && !r.failed);
            }
            if (!busy) return;
            if (mono_ns() > deadline) {
                fail(r, "write: no completion within 10 s");
                return;
            }
            io_uring_submit(&uring);
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{0, 100000000};
            if (io_uring_wait_cqe_timeout(&uring, &cqe, &ts) == 0 && cqe != nullptr) complete(cqe);
        }
    }

    // ---- recordings

    rec& start_rec(uint32_t id, const std::string& name, const std::string& mode) {
        auto r = std::make_unique<rec>();
        r->info.session_id = id;
        r->info.name = name.empty() ? "session-" + std::to_string(id) : name;
        r->info.mode = mode;
        r->info.state = "recording";
        r->info.started_unix_ms = unix_ms();
        r->start_ns = mono_ns();
        r->stamp = utc_stamp();
        if (!uring_ok) fail(*r, uring_error);
        if (active.count(id) != 0) end(id);
        auto& slot = active[id];
        slot = std::move(r);
        return *slot;
    }

    track* open_track(rec& r, uint32_t ssrc, unsigned channels) {
        auto t = std::make_unique<track>();
        t->ssrc = ssrc;
        t->start_offset_s = static_cast<double>(mono_ns() - r.start_ns) / 1e9;
        char suffix[16];
        if (r.info.mode == "mix")
            std::snprintf(suffix, sizeof suffix, "mix");
        else
            std::snprintf(suffix, sizeof suffix, "%08x", ssrc);
        if (!r.dir_ready) {
            std::error_code ec;
            std::filesystem::create_directories(opt.dir, ec);
            r.dir_ready = true;
        }
        const std::string base = opt.dir + "/session-" + std::to_string(r.info.session_id) + "-" + r.stamp + "-" + suffix;
        std::string path = base + ".opus";
        int fd = -1;
        for (int k = 1; k < 100; ++k) {
            fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd >= 0 || errno != EEXIST) break;
            path = base + "-" + std::to_string(k) + ".opus";
        }
        t->file.path = path;
        if (fd < 0) {
            fail(r, "open " + path + ": " + std::strerror(errno));
        } else {
            t->file.fd = fd;
            ++st.files_opened;
        }
        std::vector<std::pair<std::string, std::string>> tags{
            {"ENCODER", r.info.mode == "mix" ? "stentor mixer (libopus)" : "stentor relay (RTP payload unchanged)"},
            {"TITLE", r.info.name},
            {"STENTOR_SESSION", std::to_string(r.info.session_id)},
            {"STENTOR_SSRC", std::to_string(ssrc)},
            {"DATE", r.stamp},
        };
        // The serial is the SSRC: unique within the file, as Ogg requires.
        t->ogg = std::make_unique<ogg_opus_track>(ssrc, channels, opt.pre_skip, tags, opt.reorder_window);
        if (r.info.path.empty()) r.info.path = path;
        r.tracks.push_back(std::move(t));
        return r.tracks.back().get();
    }

    void refresh(rec& r) {
        double dur = 0;
        uint64_t bytes = 0;
        r.info.tracks.clear();
        for (auto& t : r.tracks) {
            recording_track rt;
            rt.ssrc = t->ssrc;
            rt.path = t->file.path;
            rt.start_offset_s = t->start_offset_s;
            rt.duration_s = t->ogg->duration_s();
            rt.bytes = t->file.written;
            rt.stats = t->ogg->stats();
            dur = std::max(dur, rt.duration_s);
            bytes += rt.bytes;
            r.info.tracks.push_back(rt);
        }
        r.info.duration_s = dur;
        r.info.bytes = bytes;
    }

    void finalise(rec& r) {
        if (r.closed) return;
        for (auto& t : r.tracks) t->ogg->finish();
        if (uring_ok) wait_idle(r);
        for (auto& t : r.tracks) {
            if (t->file.fd < 0) continue;
            if (!r.failed && ::fsync(t->file.fd) != 0) fail(r, "fsync " + t->file.path + ": " + std::strerror(errno));
            ::close(t->file.fd);
            t->file.fd = -1;
            ++st.files_finalised;
        }
        r.closed = true;
        if (!r.failed) r.info.state = "finalised";
        r.info.ended_unix_ms = unix_ms();
        refresh(r);
        if (r.generation != 0) closed_generations.insert(r.generation);
    }

    void end(uint32_t id) {
        auto it = active.find(id);
        if (it == active.end()) return;
        finalise(*it->second);
        done.push_back(std::move(it->second));
        active.erase(it);
        // The API lists the latest finalised recordings; older ones stay on disk.
        if (done.size() > max_listed) done.erase(done.begin());
    }

    void take(rte_mbuf* m, const dp::dp_snapshot* snap, uint64_t now) {
        ++st.messages;
        const dp::dp_session* dsp = snap != nullptr ? dp::message_session_of(*snap, m) : nullptr;
        if (dsp == nullptr) {
            ++st.stale;
            return;
        }
        const dp::dp_session& ds = *dsp;
        if (closed_generations.count(ds.generation) != 0) {
            ++st.after_end;
            return;
        }
        auto it = active.find(ds.id);
        rec* r = it != active.end() ? it->second.get() : nullptr;
        if (r != nullptr && r->generation != 0 && r->generation != ds.generation) {
            // The session was recreated without the control plane telling us.
            end(ds.id);
            r = nullptr;
        }
        const std::string mode = ds.mode == dp::session_mode_mix ? "mix" : "forward";
        if (r == nullptr) r = &start_rec(ds.id, "", mode);
        r->generation = ds.generation;
        if (r->failed) {
            ++st.error_dropped;
            return;
        }
        const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
        const uint32_t n = m->data_len;
        if (n < 12 || (p[0] >> 6) != 2) {
            ++st.not_recording;
            return;
        }
        uint32_t off = 12 + 4u * (p[0] & 0x0f);
        if ((p[0] & 0x10) && off + 4 <= n) off += 4 + 4u * rd16(p + off + 2);
        uint32_t end_off = n;
        if ((p[0] & 0x20) && p[n - 1] <= n) end_off -= p[n - 1];
        if (off >= end_off) {
            ++st.not_recording;
            return;
        }
        const uint32_t ssrc = rd32(p + 8);
        // In mix mode only the mixer's own stream is the recording.
        if (ds.mode == dp::session_mode_mix && ssrc != dp::mix_ssrc(ds.id)) {
            ++st.not_recording;
            return;
        }
        track* t = nullptr;
        for (auto& x : r->tracks)
            if (x->ssrc == ssrc) t = x.get();
        if (t == nullptr) {
            const unsigned channels = (p[off] & 0x04) ? 2 : 1;   // TOC stereo flag of the first packet
            t = open_track(*r, ssrc, channels);
            if (r->failed) {
                ++st.error_dropped;
                return;
            }
        }
        t->ogg->push(rd16(p + 2), rd32(p + 4), p + off, end_off - off, now);
    }

    void run_commands() {
        for (auto& c : cmds) {
            switch (c.kind) {
            case cmd_kind::started:
                if (active.count(c.id) == 0) start_rec(c.id, c.name, c.mode);
                else {
                    active[c.id]->info.name = c.name;
                    active[c.id]->info.mode = c.mode;
                }
                break;
            case cmd_kind::ended:
                end(c.id);
                break;
            case cmd_kind::all:
                while (!active.empty()) end(active.begin()->first);
                break;
            }
        }
        cmds.clear();
    }

    unsigned poll_locked() {
        unsigned work = 0;
        const uint64_t now = mono_ns();
        if (ring != nullptr) {
            const dp::dp_snapshot* snap = sh.snapshot.load(std::memory_order_acquire);
            void* objs[64];
            unsigned nb;
            do {
                nb = rte_ring_dequeue_burst(ring, objs, 64, nullptr);
                for (unsigned i = 0; i < nb; ++i) take(static_cast<rte_mbuf*>(objs[i]), snap, now);
                if (nb > 0) rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), nb);
                work += nb;
            } while (nb == 64);
        }
        if (!cmds.empty()) {
            run_commands();
            ++work;
        }
        if (uring_ok) {
            for (auto& [id, r] : active)
                for (auto& t : r->tracks) flush_track(*r, *t);
            io_uring_submit(&uring);
            work += reap();
        }
        // Track figures are copied into recording_info only when someone asks
        // (recordings()): per poll it would cost O(tracks) string copies.
        cmd_done = cmd_seq;
        return work;
    }

    void request(command c) {
        std::unique_lock lk(mu);
        cmds.push_back(std::move(c));
        const uint64_t seq = ++cmd_seq;
        if (!threaded) {
            poll_locked();
            return;
        }
        // The recorder thread runs it on its next poll (within milliseconds);
        // bounded so a wedged thread cannot hang the API.
        cv.wait_for(lk, std::chrono::seconds(15), [&] { return cmd_done >= seq; });
    }
};

recorder::recorder(const recorder_options& o, dp::dp_shared& shared, rte_ring* ring)
    : _impl(std::make_unique<impl>(o, shared, ring)) {}

recorder::~recorder() {
    std::lock_guard lk(_impl->mu);
    _impl->cmds.push_back({cmd_kind::all, 0, {}, {}});
    _impl->run_commands();
}

unsigned recorder::poll() {
    unsigned w;
    {
        std::lock_guard lk(_impl->mu);
        w = _impl->poll_locked();
    }
    _impl->cv.notify_all();
    return w;
}

void recorder::set_threaded(bool threaded) {
    std::lock_guard lk(_impl->mu);
    _impl->threaded = threaded;
}

void recorder::session_started(uint32_t id, const std::string& name, const std::string& mode) {
    _impl->request({cmd_kind::started, id, name, mode});
}

void recorder::session_ended(uint32_t id) { _impl->request({cmd_kind::ended, id, {}, {}}); }

void recorder::finalise_all() { _impl->request({cmd_kind::all, 0, {}, {}}); }

std::vector<recording_info> recorder::recordings() const {
    std::lock_guard lk(_impl->mu);
    std::vector<recording_info> v;
    for (const auto& r : _impl->done) v.push_back(r->info);
    for (const auto& [id, r] : _impl->active) {
        _impl->refresh(*r);
        v.push_back(r->info);
    }
    return v;
}

std::optional<recording_info> recorder::recording(uint32_t session_id) const {
    std::lock_guard lk(_impl->mu);
    auto it = _impl->active.find(session_id);
    if (it != _impl->active.end()) {
        _impl->refresh(*it->second);
        return it->second->info;
    }
    for (auto r = _impl->done.rbegin(); r != _impl->done.rend(); ++r)
        if ((*r)->info.session_id == session_id) return (*r)->info;
    return std::nullopt;
}

recorder_stats recorder::stats() const {
    std::lock_guard lk(_impl->mu);
    return _impl->st;
}

}  // namespace stentor::svc
