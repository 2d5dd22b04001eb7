#include "stentor/services/recorder.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <set>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "messages.h"
#include "ogg_opus_track.h"
#include "record_input.h"
#include "stentor/dp_shared.h"
#include "stentor/services/clock.h"
#include "uring_writer.h"

namespace stentor::svc {

namespace {

// The API lists the latest finalised recordings; older ones stay on disk.
constexpr size_t max_listed = 4096;
// Writes in flight per file; the rest of its pages waits in memory.
constexpr unsigned max_inflight_per_file = 8;

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

struct track {
    uint32_t ssrc;
    std::unique_ptr<ogg_opus_track> ogg;
    uring_file file;
    double start_offset_s = 0;
};

struct rec {
    recording_info info;
    uint64_t generation = 0;      // 0: announced, no packet yet
    uint64_t start_ns = 0;
    std::string stamp;
    bool failed = false;
    bool closed = false;
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
    uring_writer writer;

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

    impl(const recorder_options& o, dp::dp_shared& s, rte_ring* r)
        : opt(o), sh(s), ring(r), writer(o.queue_depth, [this](uring_file& f, const std::string& why) {
              rec* fr = find_rec_of_file(&f);
              if (fr != nullptr) fail(*fr, "write " + f.path + ": " + why);
              else ++st.write_errors;
          }) {
        // Every recorded track holds a file open until its session ends; the
        // default soft limit (1024) would cap a relay at ~1000 tracks.
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    void fail(rec& r, const std::string& what) {
        ++st.write_errors;
        if (!r.failed) {
            r.failed = true;
            r.info.state = "error";
            r.info.error = what;
        }
    }

    // An exception out of one recording's work (no memory, in practice)
    // fails that recording, as an I/O error would, and the recorder goes on
    // with the others.
    void failed(rec* r, uint32_t session_id, const char* what) noexcept {
        ++st.session_errors;
        std::fprintf(stderr, "stentor: recorder: recording of session %u failed: %s\n", session_id, what);
        if (r == nullptr || r->failed) return;
        r->failed = true;
        try {
            r->info.state = "error";
            r->info.error = std::string("recorder: ") + what;
        } catch (...) {
            // The state stays as it was; failed, the counter and the log say it.
        }
    }

    rec* active_rec(uint32_t id) noexcept {
        auto it = active.find(id);
        return it != active.end() ? it->second.get() : nullptr;
    }

    // Only when a write fails: a linear search is fine there.
    rec* find_rec_of_file(const uring_file* f) {
        for (auto& [id, r] : active)
            for (auto& t : r->tracks)
                if (&t->file == f) return r.get();
        for (auto& r : done)
            for (auto& t : r->tracks)
                if (&t->file == f) return r.get();
        return nullptr;
    }

    // ---- pages to disk

    // Hand a track's finished pages to the writer (no wait).
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
        if (t.file.inflight >= max_inflight_per_file) return;
        std::string bytes;
        bytes.swap(p);
        if (!writer.append(t.file, std::move(bytes))) fail(r, "write " + t.file.path + ": submission queue full");
    }

    void wait_idle(rec& r) {
        // Bounded: a dead disk cannot hold the control plane for long.
        const uint64_t deadline = mono_ns() + 10ull * 1000000000ull;
        for (;;) {
            writer.submit();
            writer.reap();
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
            writer.submit();
            writer.wait_one(100000000);
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
        if (!writer.ok()) fail(*r, writer.error());
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
        const std::string base = "session-" + std::to_string(r.info.session_id) + "-" + r.stamp + "-" + suffix;
        std::string why;
        if (writer.create(t->file, opt.dir, base, ".opus", why))
            ++st.files_opened;
        else
            fail(r, why);
        std::vector<std::pair<std::string, std::string>> tags{
            {"ENCODER", r.info.mode == "mix" ? "stentor mixer (libopus)" : "stentor relay (RTP payload unchanged)"},
            {"TITLE", r.info.name},
            {"STENTOR_SESSION", std::to_string(r.info.session_id)},
            {"STENTOR_SSRC", std::to_string(ssrc)},
            {"DATE", r.stamp},
        };
        // The serial is the SSRC: unique within the file, as Ogg requires.
        t->ogg = std::make_unique<ogg_opus_track>(ssrc, channels, opt.pre_skip, tags, opt.reorder_window);
        if (r.info.path.empty()) r.info.path = t->file.path;
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

    // finalise() threw: close what is open, so no fd outlives the recording.
    void give_up(rec& r, const char* what) noexcept {
        failed(&r, r.info.session_id, what);
        for (auto& t : r.tracks) {
            std::string why;
            if (t->file.fd >= 0 && writer.close(t->file, false, why)) ++st.files_finalised;
        }
        r.closed = true;
    }

    void finalise(rec& r) {
        if (r.closed) return;
        for (auto& t : r.tracks) t->ogg->finish();
        if (writer.ok()) wait_idle(r);
        for (auto& t : r.tracks) {
            if (t->file.fd < 0) continue;
            std::string why;
            if (!writer.close(t->file, !r.failed, why)) fail(r, why);
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
        try {
            finalise(*it->second);
        } catch (const std::exception& e) {
            give_up(*it->second, e.what());
        } catch (...) {
            give_up(*it->second, "unknown exception");
        }
        done.push_back(std::move(it->second));
        active.erase(it);
        if (done.size() > max_listed) done.erase(done.begin());
    }

    // One message off the record ring (record_input.h says what it is).
    void take(const rte_mbuf* m, const dp::dp_snapshot* snap, uint64_t now) {
        ++st.messages;
        record_packet pk;
        const record_verdict v = read_record_message(snap, m, pk);
        if (v == record_verdict::stale) {
            ++st.stale;
            return;
        }
        const dp::dp_session& ds = *pk.session;
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
        if (r == nullptr) r = &start_rec(ds.id, "", ds.mode == dp::session_mode_mix ? "mix" : "forward");
        r->generation = ds.generation;
        if (r->failed) {
            ++st.error_dropped;
            return;
        }
        if (v == record_verdict::not_recorded) {
            ++st.not_recording;
            return;
        }
        track* t = nullptr;
        for (auto& x : r->tracks)
            if (x->ssrc == pk.rtp.ssrc) t = x.get();
        if (t == nullptr) {
            t = open_track(*r, pk.rtp.ssrc, pk.channels);
            if (r->failed) {
                ++st.error_dropped;
                return;
            }
        }
        t->ogg->push(pk.rtp.seq, pk.rtp.ts, pk.rtp.payload, pk.rtp.len, now);
    }

    void run_commands() {
        for (auto& c : cmds) {
            try {
                run(c);
            } catch (const std::exception& e) {
                failed(active_rec(c.id), c.id, e.what());
            } catch (...) {
                failed(active_rec(c.id), c.id, "unknown exception");
            }
        }
        cmds.clear();
    }

    void run(const command& c) {
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

    void take_guarded(const rte_mbuf* m, const dp::dp_snapshot* snap, uint64_t now) noexcept {
        try {
            take(m, snap, now);
        } catch (const std::exception& e) {
            take_failed(m, snap, e.what());
        } catch (...) {
            take_failed(m, snap, "unknown exception");
        }
    }

    void take_failed(const rte_mbuf* m, const dp::dp_snapshot* snap, const char* what) noexcept {
        const dp::dp_session* ds = snap != nullptr ? dp::message_session_of(*snap, m) : nullptr;
        const uint32_t id = ds != nullptr ? ds->id : 0;
        failed(ds != nullptr ? active_rec(id) : nullptr, id, what);
    }

    unsigned poll_locked() {
        const uint64_t now = mono_ns();
        const dp::dp_snapshot* snap = sh.snapshot.load(std::memory_order_acquire);
        unsigned work = drain_messages(ring, [&](const rte_mbuf* m) { take_guarded(m, snap, now); });
        if (!cmds.empty()) {
            run_commands();
            ++work;
        }
        if (writer.ok()) {
            for (auto& [id, r] : active) {
                try {
                    for (auto& t : r->tracks) flush_track(*r, *t);
                } catch (const std::exception& e) {
                    failed(r.get(), id, e.what());
                } catch (...) {
                    failed(r.get(), id, "unknown exception");
                }
            }
            writer.submit();
            work += writer.reap();
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
    recorder_stats s = _impl->st;
    s.bytes_written = _impl->writer.bytes_written();
    return s;
}

}  // namespace stentor::svc
