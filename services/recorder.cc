#include "stentor/services/recorder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>

#include <rte_mbuf.h>
#include <rte_ring.h>
#include <spdlog/spdlog.h>

#include "messages.h"
#include "ogg_opus_track.h"
#include "ogg_repair.h"
#include "record_input.h"
#include "stentor/display_text.h"
#include "stentor/dp_shared.h"
#include "stentor/services/clock.h"
#include "uring_writer.h"

namespace stentor::svc {

namespace {

// The API lists the latest finalised recordings; older ones stay on disk.
constexpr size_t max_listed = 4096;
constexpr size_t not_done = SIZE_MAX;   // recorder::impl::find_id: not in `done`
// Refused SSRCs a recording remembers, so that each is counted and logged
// once; past that, refused packets are still counted (refused_packets)
// but not their SSRCs: 16 KiB per recording at most.
constexpr size_t max_refused_remembered = 4096;
// A speaker's packets held for reordering are written out once it has
// sent nothing for this long (DTX), so that they reach the disk too.
constexpr uint64_t reorder_hold_ns = 200000000;

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

bool disk_full(int err) { return err == ENOSPC || err == EDQUOT; }

struct rec;

struct track {
    rec* owner = nullptr;
    uint32_t ssrc = 0;
    std::unique_ptr<ogg_opus_track> ogg;
    uring_file file;
    double start_offset_s = 0;
    bool open_pending = true;      // its file is created by io(), offline
    bool closed = false;
    bool paused = false;           // disk full: packets dropped until a write succeeds again
    uint64_t paused_since_ns = 0;
    uint64_t paused_ns = 0;        // pauses that ended
    uint64_t paused_packets = 0;
    uint64_t next_retry_ns = 0;
    uint64_t next_flush_ns = 0;
    bool sync_due = false;
    // Its write or sync never answered within the end's timeout
    // (recorder_options::end_timeout_ns): the file stays open and untouched
    // (closing, cutting or renaming it would wait on that same disk, for the
    // inode the stuck write holds) until the answer is reaped; then
    // close_stuck() closes it as finalise would have.
    bool stuck = false;
    bool closing = false;          // stuck, and taken by a close_stuck() that is closing it
};

struct rec {
    recording_info info;
    uint64_t generation = 0;       // 0: announced, no packet yet
    uint64_t start_ns = 0;
    std::string stamp;
    bool failed = false;
    bool closed = false;
    std::vector<std::unique_ptr<track>> tracks;
    std::unordered_set<uint32_t> refused;
    bool refused_overflow = false;
};

bool has_stuck(const rec& r) {
    return std::any_of(r.tracks.begin(), r.tracks.end(), [](const auto& t) { return t->stuck; });
}

enum class cmd_kind { ended, all };

struct command {
    cmd_kind kind;
    uint32_t id;
};

}  // namespace

struct recorder::impl {
    recorder_options opt;
    dp::dp_shared& sh;
    rte_ring* ring;
    uring_writer writer;

    // Guards everything below. The recorder thread holds it while it works
    // in memory and releases it around every blocking call; the control
    // plane's reads and session_started take it briefly.
    mutable std::mutex mu;
    std::condition_variable cv;
    bool threaded = false;
    std::vector<command> cmds;
    uint64_t cmd_seq = 0;
    uint64_t cmd_done = 0;

    std::map<uint32_t, std::unique_ptr<rec>> active;         // by session id
    std::vector<std::unique_ptr<rec>> retiring;              // ended, being finalised by io()
    std::vector<std::unique_ptr<rec>> done;                  // finalised or recovered, oldest first
    // Generations of sessions whose recording ended: their late messages
    // are counted after_end, not recorded again. One matters only while its
    // session is still in the snapshot (after that its messages are stale),
    // so poll() drops the others whenever the set has doubled (prune_ended).
    std::set<uint64_t> closed_generations;
    size_t prune_ended_at = 64;
    unsigned open_tracks = 0;                                // tracks not closed: of active or retiring recordings, and stuck ones
    unsigned stuck_tracks = 0;                               // track::stuck, in `done`
    uint64_t next_id = 1;                                    // recording_info::id
    uint64_t now_ns = 0;                                     // io()'s clock, for the writer's callbacks
    // Lines logged by poll() (online): written to stderr by io(), offline
    // and without the lock, since a stalled log pipe blocks like a disk.
    std::vector<std::pair<spdlog::level::level_enum, std::string>> log_lines;   // written outside the lock
    uint64_t log_dropped = 0;
    recorder_stats st;

    impl(const recorder_options& o, dp::dp_shared& s, rte_ring* r)
        : opt(o), sh(s), ring(r),
          writer(o.queue_depth, [this](uring_file& f, uring_writer::op op, int err) { io_error(f, op, err); }) {
        // Every recorded track holds a file open until its session ends; the
        // default soft limit (1024) would cap a relay at ~1000 tracks.
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        recover();
    }

    // ---- states

    void log_later(spdlog::level::level_enum lvl, const char* fmt, ...) __attribute__((format(printf, 3, 4))) {
        if (log_lines.size() >= 1024) {
            ++log_dropped;
            return;
        }
        char b[512];
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(b, sizeof b, fmt, ap);
        va_end(ap);
        log_lines.emplace_back(lvl, b);
    }

    // Under the lock; the caller writes them after releasing it.
    std::vector<std::pair<spdlog::level::level_enum, std::string>> take_log() {
        std::vector<std::pair<spdlog::level::level_enum, std::string>> v;
        v.swap(log_lines);
        if (log_dropped > 0) {
            v.emplace_back(spdlog::level::warn, "stentor: recorder: " + std::to_string(log_dropped) +
                                                    " log lines dropped (more than 1024 per step)");
            log_dropped = 0;
        }
        return v;
    }

    static void write_log(const std::vector<std::pair<spdlog::level::level_enum, std::string>>& lines) {
        for (const auto& [lvl, l] : lines) spdlog::log(lvl, "{}", l);
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
        try {
            log_later(spdlog::level::err, "stentor: recorder: recording of session %u failed: %s", session_id, what);
        } catch (...) {
            // No memory for the line: the counter says it.
        }
        if (r == nullptr || r->failed) return;
        r->failed = true;
        try {
            r->info.state = "error";
            r->info.error = std::string("recorder: ") + what;
        } catch (...) {
            // The state stays as it was; failed, the counter and the log say it.
        }
    }

    void pause(rec& r, track& t, const std::string& why) {
        if (t.paused) return;      // a retry that failed again
        t.paused = true;
        t.paused_since_ns = now_ns;
        t.next_retry_ns = now_ns + opt.retry_interval_ns;
        ++st.disk_full_pauses;
        ++st.write_errors;
        if (!r.failed) r.info.state = "paused";
        if (r.info.error.empty()) r.info.error = why;
        log_later(spdlog::level::warn, "stentor: recorder: session %u track %08x paused (%s); retrying every %llu ms",
                     r.info.session_id, t.ssrc, why.c_str(),
                     static_cast<unsigned long long>(opt.retry_interval_ns / 1000000));
    }

    void resume(rec& r, track& t) {
        if (!t.paused) return;
        t.paused = false;
        t.paused_ns += now_ns - t.paused_since_ns;
        log_later(spdlog::level::info, "stentor: recorder: session %u track %08x resumed after %.1f s (%llu packets not recorded)",
                     r.info.session_id, t.ssrc, static_cast<double>(now_ns - t.paused_since_ns) / 1e9,
                     static_cast<unsigned long long>(t.paused_packets));
        if (r.failed) return;
        for (const auto& x : r.tracks)
            if (x->paused) return;
        r.info.state = "recording";
    }

    void io_error(uring_file& f, uring_writer::op op, int err) {
        auto* t = static_cast<track*>(f.owner);
        if (t == nullptr) {
            ++st.write_errors;
            return;
        }
        rec& r = *t->owner;
        const std::string why = std::string(op == uring_writer::op::write ? "write " : "fdatasync ") + f.path + ": " +
                                std::strerror(err);
        if (op == uring_writer::op::write && disk_full(err)) pause(r, *t, why);
        else fail(r, why);
    }

    rec* active_rec(uint32_t id) noexcept {
        auto it = active.find(id);
        return it != active.end() ? it->second.get() : nullptr;
    }

    // ---- recordings, in memory (poll() and the control plane)

    rec& start_rec(uint32_t id, const std::string& name, const std::string& mode) {
        auto r = std::make_unique<rec>();
        r->info.session_id = id;
        r->info.name = name.empty() ? "session-" + std::to_string(id) : name;
        r->info.mode = mode;
        r->info.state = "recording";
        r->info.started_unix_ms = unix_ms();
        r->start_ns = mono_ns();
        r->stamp = utc_stamp();
        r->info.id = next_id++;
        if (!writer.ok()) fail(*r, writer.error());
        auto& slot = active[id];
        slot = std::move(r);
        return *slot;
    }

    // Off the active list: io() finalises it (the files are closed there).
    void retire(uint32_t id) {
        auto it = active.find(id);
        if (it == active.end()) return;
        retiring.push_back(std::move(it->second));
        active.erase(it);
    }

    bool room_for_track(const rec& r) const noexcept {
        return r.tracks.size() < opt.max_tracks_per_recording && open_tracks < opt.max_tracks;
    }

    // Over a cap: counted and logged once per SSRC, not per packet.
    void refuse(rec& r, uint32_t ssrc) {
        if (r.refused.size() < max_refused_remembered) {
            r.refused.insert(ssrc);
            ++st.tracks_refused;
            const bool per_rec = r.tracks.size() >= opt.max_tracks_per_recording;
            log_later(spdlog::level::warn, "stentor: recorder: session %u: SSRC %08x refused: %s (%u tracks); its packets are not recorded",
                      r.info.session_id, ssrc,
                      per_rec ? "the recording has recording.max_tracks_per_recording"
                              : "the relay has recording.max_tracks open",
                      per_rec ? opt.max_tracks_per_recording : opt.max_tracks);
        } else if (!r.refused_overflow) {
            r.refused_overflow = true;
            log_later(spdlog::level::warn, "stentor: recorder: session %u: more than %zu SSRCs refused; the next ones are counted "
                      "in recorder/refused_packets only",
                      r.info.session_id, max_refused_remembered);
        }
    }

    // In memory only: io() creates the file.
    track* add_track(rec& r, uint32_t ssrc, unsigned channels) {
        auto t = std::make_unique<track>();
        t->owner = &r;
        t->ssrc = ssrc;
        t->file.owner = t.get();
        t->start_offset_s = static_cast<double>(mono_ns() - r.start_ns) / 1e9;
        std::vector<std::pair<std::string, std::string>> tags{
            {"ENCODER", r.info.mode == "mix" ? "stentor mixer (libopus)" : "stentor relay (RTP payload unchanged)"},
            {"TITLE", r.info.name},
            {"STENTOR_SESSION", std::to_string(r.info.session_id)},
            {"STENTOR_SSRC", std::to_string(ssrc)},
            {"DATE", r.stamp},
        };
        // The serial is the SSRC: unique within the file, as Ogg requires.
        t->ogg = std::make_unique<ogg_opus_track>(ssrc, channels, opt.pre_skip, tags, opt.reorder_window);
        r.tracks.push_back(std::move(t));
        ++open_tracks;
        return r.tracks.back().get();
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
        rec* r = active_rec(ds.id);
        if (r != nullptr && r->generation != 0 && r->generation != ds.generation) {
            // The session was recreated without the control plane telling us.
            retire(ds.id);
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
            const bool known = r->refused.count(pk.rtp.ssrc) != 0;
            if (!room_for_track(*r)) {
                if (!known) refuse(*r, pk.rtp.ssrc);
                ++st.refused_packets;
                return;
            }
            // A cap that had no room before (another recording ended since).
            if (known) r->refused.erase(pk.rtp.ssrc);
            t = add_track(*r, pk.rtp.ssrc, pk.channels);
        }
        if (t->paused) {
            ++t->paused_packets;
            ++st.paused_packets;
            return;
        }
        t->ogg->push(pk.rtp.seq, pk.rtp.ts, pk.rtp.payload, pk.rtp.len, now);
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
        prune_ended(snap);
        return drain_messages(ring, [&](const rte_mbuf* m) { take_guarded(m, snap, now); });
    }

    // Online (poll), with the snapshot the messages are read against: a
    // relay that ends sessions for months holds about twice its live
    // sessions' generations, not one per session it ever recorded.
    void prune_ended(const dp::dp_snapshot* snap) {
        if (snap == nullptr || closed_generations.size() < prune_ended_at) return;
        std::unordered_set<uint64_t> live;
        for (uint32_t i = 0; i < snap->nb_sessions; ++i) {
            const dp::dp_session* s = snap->sessions[i];
            if (s == nullptr) continue;
            live.insert(s->generation);
            if (s->trunk != nullptr) live.insert(s->trunk->generation);
        }
        std::erase_if(closed_generations, [&](uint64_t g) { return live.count(g) == 0; });
        prune_ended_at = std::max<size_t>(64, 2 * closed_generations.size());
    }

    // ---- the disk (io(): offline as a reader; blocking calls without `mu`)

    static std::string base_name(const rec& r, const track& t) {
        char suffix[16];
        if (r.info.mode == "mix")
            std::snprintf(suffix, sizeof suffix, "mix");
        else
            std::snprintf(suffix, sizeof suffix, "%08x", t.ssrc);
        return "session-" + std::to_string(r.info.session_id) + "-" + r.stamp + "-" + suffix;
    }

    // Create the files of tracks that have none yet (all recordings, or only
    // `only`), then fsync the directory once.
    unsigned open_pending(std::unique_lock<std::mutex>& lk, rec* only) {
        struct job {
            rec* r;
            track* t;
            std::string base;
            part_file out;
            int err = 0;
            std::string why;
            bool ok = false;
        };
        std::vector<job> jobs;
        auto collect = [&](rec& r, bool now_or_never) {
            if (r.failed || r.closed) return;
            for (auto& t : r.tracks)
                if (t->open_pending && !t->closed && (!t->paused || now_or_never || now_ns >= t->next_retry_ns))
                    jobs.push_back({&r, t.get(), base_name(r, *t), {}, 0, {}, false});
        };
        if (only != nullptr) {
            collect(*only, true);
        } else {
            for (auto& [id, r] : active) collect(*r, false);
        }
        if (jobs.empty()) return 0;
        lk.unlock();
        bool any = false;
        for (auto& j : jobs) any |= j.ok = create_part(opt.dir, j.base, ".opus", j.out, j.err, j.why);
        std::string dir_why;
        const bool dir_ok = !any || sync_dir(opt.dir, dir_why);
        lk.lock();
        for (auto& j : jobs) {
            track& t = *j.t;
            if (j.ok) {
                t.file.fd = j.out.fd;
                t.file.path = j.out.path;
                t.file.final_path = j.out.final_path;
                t.open_pending = false;
                t.next_flush_ns = now_ns + opt.sync_interval_ns;
                ++st.files_opened;
                if (j.r->info.path.empty()) j.r->info.path = t.file.path;
                resume(*j.r, t);
            } else if (disk_full(j.err)) {
                pause(*j.r, t, j.why);
                t.next_retry_ns = now_ns + opt.retry_interval_ns;
            } else {
                fail(*j.r, j.why);
            }
        }
        if (!dir_ok) {
            ++st.write_errors;
            log_later(spdlog::level::err, "stentor: recorder: %s", dir_why.c_str());
        }
        return static_cast<unsigned>(jobs.size());
    }

    // Pages to the writer, writes and syncs submitted; no wait.
    void service_track(rec& r, track& t, uint64_t now) {
        if (t.file.fd < 0 || t.closed) return;
        std::string& pages = t.ogg->pending();
        if (r.failed) {
            pages.clear();
            t.file.queue.clear();
            return;
        }
        if (now >= t.next_flush_ns) {
            t.ogg->flush(now, reorder_hold_ns);
            t.next_flush_ns = now + opt.sync_interval_ns;
            t.sync_due = true;
        }
        if (!pages.empty()) {
            if (t.file.queue.size() + pages.size() > opt.max_backlog_bytes) {
                fail(r, "write " + t.file.path + ": more than " + std::to_string(opt.max_backlog_bytes >> 20) +
                            " MiB not written yet (disk too slow)");
                pages.clear();
                t.file.queue.clear();
                return;
            }
            t.file.queue += pages;
            pages.clear();
        }
        if (t.paused) {
            if (now < t.next_retry_ns || t.file.write_inflight) return;
            t.next_retry_ns = now + opt.retry_interval_ns;
        }
        if (!writer.pump(t.file)) fail(r, "write " + t.file.path + ": submission queue full");
        if (t.sync_due && !t.paused && !t.file.write_inflight) {
            if (!writer.sync(t.file)) fail(r, "fdatasync " + t.file.path + ": submission queue full");
            t.sync_due = false;
        }
    }

    // A paused track whose retried write went through resumes.
    void resume_written(rec& r) {
        for (auto& t : r.tracks)
            if (t->paused && !t->open_pending && t->file.error == 0 && !t->file.write_inflight) resume(r, *t);
    }

    void finalise(rec& r, std::unique_lock<std::mutex>& lk) {
        if (r.closed) return;
        for (auto& t : r.tracks) t->ogg->finish();
        open_pending(lk, &r);      // a track whose first packet came just now
        // Everything to the kernel (a paused track tries once more), then
        // its fdatasync, and wait for the writes and syncs in flight: all
        // through io_uring, so a disk that does not answer holds the end
        // for opt.end_timeout_ns at most.
        const uint64_t deadline = mono_ns() + opt.end_timeout_ns;
        bool first = true;
        for (;;) {
            writer.reap();
            resume_written(r);
            bool busy = false;
            for (auto& t : r.tracks) {
                if (t->file.fd < 0) continue;
                std::string& pages = t->ogg->pending();
                if (r.failed) {
                    pages.clear();
                    t->file.queue.clear();
                } else {
                    t->file.queue += pages;
                    pages.clear();
                    if (!t->paused || first) writer.pump(t->file);
                    // Written whole: made durable here (once no write is in flight).
                    if (!t->paused && t->file.queue.empty()) writer.sync(t->file);
                }
                busy |= t->file.write_inflight || t->file.sync_inflight ||
                        (!t->file.queue.empty() && !r.failed && !t->paused);
            }
            first = false;
            writer.submit();
            if (!busy) break;
            if (mono_ns() > deadline) {
                const bool writes = std::any_of(r.tracks.begin(), r.tracks.end(),
                                                [](const auto& t) { return t->file.write_inflight; });
                char why[64];
                std::snprintf(why, sizeof why, "%s: no completion within %.3g s", writes ? "write" : "fdatasync",
                              static_cast<double>(opt.end_timeout_ns) / 1e9);
                fail(r, why);
                break;
            }
            lk.unlock();
            writer.wait_ready(100000000);
            lk.lock();
        }
        // close, rename (fsync first what io_uring's did not cover) or, for a
        // file that missed bytes, cut it back to its last whole page and
        // close the stream there.
        std::vector<close_job> jobs;
        for (auto& t : r.tracks) {
            if (t->closed) continue;
            if (t->file.fd < 0) {
                t->closed = true;  // never created: nothing on disk
                --open_tracks;
                continue;
            }
            if (t->file.write_inflight || t->file.sync_inflight) {
                // Only after the timeout above (r.failed): left to close_stuck().
                t->stuck = true;
                ++stuck_tracks;
                continue;
            }
            const bool whole = !r.failed && !t->paused && t->file.queue.empty();
            jobs.push_back({t.get(), t->file.fd, whole, t->file.synced < t->file.written, t->file.written == 0,
                            t->file.path, t->file.final_path, {}, {}});
        }
        lk.unlock();
        for (auto& j : jobs) close_file(j);
        std::string dir_why;
        const bool dir_ok = jobs.empty() || sync_dir(opt.dir, dir_why);
        lk.lock();
        now_ns = std::max(now_ns, mono_ns());
        closed_files(r, jobs);
        closed_listing(r);
        if (!dir_ok) fail(r, dir_why);
        r.closed = true;
        if (!r.failed) r.info.state = "finalised";
        r.info.ended_unix_ms = unix_ms();
        refresh(r);
        if (r.generation != 0) closed_generations.insert(r.generation);
    }

    // A track's file to close (finalise, close_stuck): the facts taken under
    // the lock, the blocking calls made without it.
    struct close_job {
        track* t;
        int fd;
        bool whole;    // every byte written: close, rename
        bool sync;     // whole, and not all of it fdatasynced yet: fsync first
        bool empty;    // nothing written: close and unlink
        std::string part, final_path, now_path, why;
        bool ok = false;
    };

    // Offline, without the lock. A file that missed bytes is cut back to its
    // last whole page and closed there, under its final name.
    static void close_file(close_job& j) {
        if (j.whole) {
            j.ok = finish_part(j.fd, j.sync, j.part, j.final_path, j.now_path, j.why);
        } else if (j.empty) {
            ::close(j.fd);
            ::unlink(j.part.c_str());
            j.ok = true;
        } else {
            const repair_result rep = repair_ogg_opus(j.fd);
            ::close(j.fd);
            if (rep.ok) j.ok = rename_noreplace(j.part, j.final_path, j.now_path, j.why);
            else j.why = "close " + j.part + ": " + rep.why;
            if (!j.ok) j.now_path = j.part;
        }
    }

    // Under the lock again: the tracks of `jobs` are closed.
    void closed_files(rec& r, const std::vector<close_job>& jobs) {
        for (const auto& j : jobs) {
            track& t = *j.t;
            t.file.fd = -1;
            t.file.path = j.now_path;
            t.closed = true;
            if (t.stuck) --stuck_tracks;
            t.stuck = false;
            --open_tracks;
            ++st.files_finalised;
            if (!j.ok) fail(r, j.why);
        }
    }

    // After files of `r` were closed (finalise, close_stuck): no track stays
    // paused (its lost span ends here), and the listing's path is the first
    // file left.
    void closed_listing(rec& r) {
        for (auto& t : r.tracks)
            if (t->paused) {
                t->paused = false;
                t->paused_ns += now_ns - t->paused_since_ns;
            }
        r.info.path.clear();
        for (auto& t : r.tracks)
            if (!t->file.path.empty()) {
                r.info.path = t->file.path;
                break;
            }
    }

    // Tracks finalise left open because the disk never answered a write or
    // sync (track::stuck): once that answer is reaped, closed as finalise
    // would have, and the recording's listing follows. Until then the
    // recording stays listed (and cannot be deleted: the request in io_uring
    // points at its track), and its file counts as open.
    unsigned close_stuck(std::unique_lock<std::mutex>& lk) {
        if (stuck_tracks == 0) return 0;
        std::vector<std::pair<rec*, std::vector<close_job>>> batches;   // per recording
        for (auto& r : done) {
            std::vector<close_job> jobs;
            for (auto& t : r->tracks)
                if (t->stuck && !t->closing && !t->file.write_inflight && !t->file.sync_inflight) {
                    t->closing = true;
                    jobs.push_back({t.get(), t->file.fd, false, false, t->file.written == 0, t->file.path,
                                    t->file.final_path, {}, {}});
                }
            if (!jobs.empty()) batches.emplace_back(r.get(), std::move(jobs));
        }
        if (batches.empty()) return 0;
        // Still stuck (so neither deleted nor dropped from the list) while
        // the lock is released.
        lk.unlock();
        for (auto& [r, jobs] : batches)
            for (auto& j : jobs) close_file(j);
        std::string dir_why;
        const bool dir_ok = sync_dir(opt.dir, dir_why);
        lk.lock();
        unsigned n = 0;
        now_ns = std::max(now_ns, mono_ns());
        for (auto& [r, jobs] : batches) {
            closed_files(*r, jobs);
            closed_listing(*r);   // a late answer may have been a full disk (paused)
            if (!dir_ok) fail(*r, dir_why);
            refresh(*r);
            log_later(spdlog::level::info, "stentor: recorder: recording %llu of session %u: the disk answered; %zu "
                      "file(s) closed", static_cast<unsigned long long>(r->info.id), r->info.session_id, jobs.size());
            n += static_cast<unsigned>(jobs.size());
        }
        return n;
    }

    // The list keeps the latest max_listed closed recordings; one with a
    // stuck track stays until it is closed.
    void trim_done() {
        while (done.size() > max_listed) {
            const auto it = std::find_if(done.begin(), done.end(), [](const auto& r) { return !has_stuck(*r); });
            if (it == done.end()) break;
            done.erase(it);
        }
    }

    // finalise() threw: close what is open, so no fd outlives the recording.
    void give_up(rec& r, const char* what) noexcept {
        failed(&r, r.info.session_id, what);
        for (auto& t : r.tracks) {
            if (t->closed || t->stuck) continue;   // a stuck one: close_stuck()
            if (t->file.fd >= 0) {
                ::close(t->file.fd);
                t->file.fd = -1;
                ++st.files_finalised;
            }
            t->closed = true;
            --open_tracks;
        }
        r.closed = true;
    }

    void finalise_retiring(std::unique_lock<std::mutex>& lk) {
        while (!retiring.empty()) {
            rec* r = retiring.front().get();
            try {
                finalise(*r, lk);
            } catch (const std::exception& e) {
                give_up(*r, e.what());
            } catch (...) {
                give_up(*r, "unknown exception");
            }
            done.push_back(std::move(retiring.front()));
            retiring.erase(retiring.begin());
            trim_done();
        }
    }

    unsigned io_locked(std::unique_lock<std::mutex>& lk, uint64_t now) {
        now_ns = now;
        unsigned work = 0;
        std::vector<command> todo;
        todo.swap(cmds);
        const uint64_t seq = cmd_seq;
        for (const auto& c : todo) {
            if (c.kind == cmd_kind::ended) {
                retire(c.id);
            } else {
                while (!active.empty()) retire(active.begin()->first);
            }
        }
        work += static_cast<unsigned>(todo.size() + retiring.size());
        finalise_retiring(lk);
        if (cmd_done < seq) {
            cmd_done = seq;
            cv.notify_all();
        }
        now_ns = std::max(now_ns, mono_ns());
        if (!writer.ok()) return work;
        work += open_pending(lk, nullptr);
        work += writer.reap();
        work += close_stuck(lk);
        for (auto& [id, r] : active) {
            try {
                resume_written(*r);
                for (auto& t : r->tracks) service_track(*r, *t, now_ns);
            } catch (const std::exception& e) {
                failed(r.get(), id, e.what());
            } catch (...) {
                failed(r.get(), id, "unknown exception");
            }
        }
        writer.submit();
        // Track figures are copied into recording_info only when someone asks
        // (recordings()): per step it would cost O(tracks) string copies.
        return work;
    }

    void request(command c) {
        std::unique_lock lk(mu);
        cmds.push_back(c);
        const uint64_t seq = ++cmd_seq;
        if (!threaded) {
            io_locked(lk, mono_ns());
            const auto lines = take_log();
            lk.unlock();
            write_log(lines);
            return;
        }
        // The recorder thread runs it on its next step (within milliseconds);
        // bounded so a wedged thread cannot hang the API.
        cv.wait_for(lk, std::chrono::seconds(15), [&] { return cmd_done >= seq; });
    }

    // Recording `id` wherever it is (nullptr: none); *done_at is its index
    // in `done`, or not_done while it is active or retiring.
    rec* find_id(uint64_t id, size_t* done_at) const {
        *done_at = not_done;
        for (const auto& [sid, r] : active)
            if (r->info.id == id) return r.get();
        for (const auto& r : retiring)
            if (r->info.id == id) return r.get();
        for (size_t i = 0; i < done.size(); ++i)
            if (done[i]->info.id == id) {
                *done_at = i;
                return done[i].get();
            }
        return nullptr;
    }

    void refresh(rec& r) const {
        double dur = 0, paused = 0;
        uint64_t bytes = 0, paused_packets = 0;
        r.info.tracks.clear();
        const uint64_t now = mono_ns();
        for (auto& t : r.tracks) {
            recording_track rt;
            rt.ssrc = t->ssrc;
            rt.path = t->file.path;
            rt.start_offset_s = t->start_offset_s;
            rt.duration_s = t->ogg->duration_s();
            rt.bytes = t->file.written;
            rt.stats = t->ogg->stats();
            rt.paused_s = static_cast<double>(t->paused_ns + (t->paused && now > t->paused_since_ns ? now - t->paused_since_ns : 0)) / 1e9;
            rt.paused_packets = t->paused_packets;
            rt.waiting_for_disk = t->stuck;
            dur = std::max(dur, rt.duration_s);
            paused = std::max(paused, rt.paused_s);
            bytes += rt.bytes;
            paused_packets += rt.paused_packets;
            r.info.tracks.push_back(rt);
        }
        r.info.duration_s = dur;
        r.info.bytes = bytes;
        r.info.paused_s = paused;
        r.info.paused_packets = paused_packets;
    }

    // ---- start-up: the .part files of a recorder that died

    void recover() {
        DIR* d = opendir(opt.dir.c_str());
        if (d == nullptr) return;  // nothing recorded here yet
        std::vector<std::string> parts;
        while (const dirent* e = readdir(d)) {
            const std::string n = e->d_name;
            static const std::string ext = ".opus.part";
            if (n.rfind("session-", 0) == 0 && n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0)
                parts.push_back(n);
        }
        closedir(d);
        std::sort(parts.begin(), parts.end());
        std::map<std::pair<uint32_t, std::string>, std::unique_ptr<rec>> found;
        bool renamed = false;
        // A .part left unrecovered is audio nobody will see listed: say
        // which and why (once per file: this runs once per start), and
        // count it, so an operator learns of it before looking for it.
        const auto skipped = [this](const std::string& path, const std::string& why) {
            ++st.recover_skipped;
            spdlog::warn("stentor: recorder: cannot recover {}: {}; left as it is", path, why);
        };
        for (const auto& n : parts) {
            const std::string path = opt.dir + "/" + n;
            // Only our own kind of file: a symbolic link (to anything root
            // may write) is not followed, and a FIFO or device is left alone.
            const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
            if (fd < 0) {
                const int e = errno;
                skipped(path, e == ELOOP ? "a symbolic link (not followed)"
                                         : std::string("cannot open it: ") + std::strerror(e));
                continue;
            }
            if (struct stat fs{}; ::fstat(fd, &fs) != 0 || !S_ISREG(fs.st_mode)) {
                ::close(fd);
                skipped(path, "not a regular file");
                continue;
            }
            // A live recorder (another process on this directory) holds its
            // files locked: not ours to close.
            if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
                ::close(fd);
                continue;
            }
            const repair_result rep = repair_ogg_opus(fd);
            struct stat sb{};
            ::fstat(fd, &sb);
            std::string now_path = path, why = rep.why;
            bool ok = rep.ok;
            if (ok) {
                ok = rename_noreplace(path, path.substr(0, path.size() - 5), now_path, why);
                renamed |= ok;
            }
            ::close(fd);
            // session-<id>-<stamp>-<ssrc hex | mix>[-k].opus.part
            unsigned id = 0;
            char stamp[32] = {0}, suffix[32] = {0};
            if (std::sscanf(n.c_str(), "session-%u-%16[0-9TZ]-%15[0-9a-fmix]", &id, stamp, suffix) < 2) continue;
            auto& r = found[{id, stamp}];
            if (!r) {
                r = std::make_unique<rec>();
                r->closed = true;
                r->info.session_id = id;
                r->info.name = "session-" + std::to_string(id);
                r->info.mode = std::strcmp(suffix, "mix") == 0 ? "mix" : "forward";
                r->info.state = "recovered";
                std::tm tm{};
                if (strptime(stamp, "%Y%m%dT%H%M%SZ", &tm) != nullptr) r->info.started_unix_ms = int64_t{timegm(&tm)} * 1000;
            }
            // The name we wrote, unless the file says something no session
            // name may be (the name goes to the API, tables and logs).
            for (const auto& [k, v] : rep.tags)
                if (k == "TITLE" && v.size() <= max_session_name && !display_text_problem(v)) r->info.name = v;
            recording_track rt;
            rt.ssrc = r->info.mode == "mix" ? 0 : static_cast<uint32_t>(std::strtoul(suffix, nullptr, 16));
            for (const auto& [k, v] : rep.tags)
                if (k == "STENTOR_SSRC") rt.ssrc = static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
            rt.path = now_path;
            rt.duration_s = rep.duration_s();
            rt.bytes = rep.ok ? rep.bytes : static_cast<uint64_t>(sb.st_size);
            r->info.tracks.push_back(rt);
            r->info.duration_s = std::max(r->info.duration_s, rt.duration_s);
            r->info.bytes += rt.bytes;
            if (r->info.path.empty()) r->info.path = now_path;
            r->info.ended_unix_ms = std::max<int64_t>(r->info.ended_unix_ms,
                                                      int64_t{sb.st_mtim.tv_sec} * 1000 + sb.st_mtim.tv_nsec / 1000000);
            if (ok) {
                ++st.recovered;
                spdlog::warn("stentor: recorder: recovered {}: {:.3f} s{}", now_path, rt.duration_s,
                             rep.dropped_bytes > 0 ? " (torn last page cut off)" : "");
            } else {
                r->info.state = "error";
                if (r->info.error.empty()) r->info.error = "recover " + path + ": " + why;
                ++st.write_errors;
                spdlog::error("stentor: recorder: cannot recover {}: {}", path, why);
            }
        }
        if (renamed) {
            std::string why;
            if (!sync_dir(opt.dir, why)) spdlog::error("stentor: recorder: {}", why);
        }
        std::vector<std::unique_ptr<rec>> v;
        for (auto& [k, r] : found) v.push_back(std::move(r));
        std::sort(v.begin(), v.end(),
                  [](const auto& a, const auto& b) { return a->info.started_unix_ms < b->info.started_unix_ms; });
        for (auto& r : v) {
            r->info.id = next_id++;
            done.push_back(std::move(r));
        }
        trim_done();
    }
};

recorder::recorder(const recorder_options& o, dp::dp_shared& shared, rte_ring* ring)
    : _impl(std::make_unique<impl>(o, shared, ring)) {}

// A track still stuck on a disk that never answered (track::stuck) keeps
// its fd: closing it could wait on that disk for ever; the process's exit
// closes it.
recorder::~recorder() {
    std::unique_lock lk(_impl->mu);
    _impl->cmds.push_back({cmd_kind::all, 0});
    ++_impl->cmd_seq;
    _impl->io_locked(lk, mono_ns());
    impl::write_log(_impl->take_log());
}

unsigned recorder::poll() {
    std::lock_guard lk(_impl->mu);
    return _impl->poll_locked();
}

unsigned recorder::io(uint64_t now_ns) {
    std::unique_lock lk(_impl->mu);
    const unsigned work = _impl->io_locked(lk, now_ns);
    const auto lines = _impl->take_log();
    lk.unlock();
    impl::write_log(lines);
    return work;
}

void recorder::set_threaded(bool threaded) {
    std::lock_guard lk(_impl->mu);
    _impl->threaded = threaded;
}

void recorder::session_started(uint32_t id, const std::string& name, const std::string& mode) {
    std::lock_guard lk(_impl->mu);
    if (rec* r = _impl->active_rec(id)) {
        r->info.name = name.empty() ? r->info.name : name;
        r->info.mode = mode;
        return;
    }
    _impl->start_rec(id, name, mode);
}

void recorder::session_ended(uint32_t id) { _impl->request({cmd_kind::ended, id}); }

void recorder::finalise_all() { _impl->request({cmd_kind::all, 0}); }

std::vector<recording_info> recorder::recordings() const {
    std::lock_guard lk(_impl->mu);
    std::vector<recording_info> v;
    for (const auto& r : _impl->done) v.push_back(r->info);
    for (const auto& r : _impl->retiring) {
        _impl->refresh(*r);
        v.push_back(r->info);
    }
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
    for (auto r = _impl->retiring.rbegin(); r != _impl->retiring.rend(); ++r)
        if ((*r)->info.session_id == session_id) {
            _impl->refresh(**r);
            return (*r)->info;
        }
    for (auto r = _impl->done.rbegin(); r != _impl->done.rend(); ++r)
        if ((*r)->info.session_id == session_id) return (*r)->info;
    return std::nullopt;
}

std::optional<recording_info> recorder::recording_by_id(uint64_t id) const {
    std::lock_guard lk(_impl->mu);
    size_t done_at = 0;
    rec* r = _impl->find_id(id, &done_at);
    if (r == nullptr) return std::nullopt;
    if (done_at == not_done) _impl->refresh(*r);
    return r->info;
}

recorder::remove_result recorder::remove(uint64_t id) {
    remove_result res;
    std::unique_ptr<rec> taken;
    {
        std::lock_guard lk(_impl->mu);
        size_t done_at = 0;
        rec* r = _impl->find_id(id, &done_at);
        if (r == nullptr) return res;
        // Still written or finalised; or failed by a disk that never
        // answered (the end's timeout) with a write or sync still in io_uring
        // pointing at its track: it stays until the completion is reaped
        // and the file closed (track::stuck).
        if (done_at == not_done || has_stuck(*r)) {
            if (done_at == not_done) _impl->refresh(*r);
            res.status = done_at == not_done ? remove_status::recording : remove_status::waiting_for_disk;
            res.info = r->info;
            return res;
        }
        taken = std::move(_impl->done[done_at]);
        _impl->done.erase(_impl->done.begin() + static_cast<std::ptrdiff_t>(done_at));
    }
    res.info = taken->info;
    // Its files: every track's (each the recorder's own name under dir),
    // the first track's again as info.path.
    std::vector<std::string> paths;
    for (const auto& t : taken->info.tracks)
        if (!t.path.empty()) paths.push_back(t.path);
    if (!taken->info.path.empty()) paths.push_back(taken->info.path);
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    for (const auto& p : paths) {
        // unlink never follows a link: a link planted under the name goes, not its target.
        if (::unlink(p.c_str()) == 0)
            res.unlinked.push_back(p);
        else if (errno != ENOENT && res.error.empty())
            res.error = "unlink " + p + ": " + std::strerror(errno);
    }
    std::string why;
    if (!res.unlinked.empty() && !sync_dir(_impl->opt.dir, why) && res.error.empty()) res.error = why;
    if (res.error.empty()) {
        res.status = remove_status::removed;
        spdlog::info("stentor: recorder: recording {} of session {} deleted ({} files)", id, res.info.session_id,
                     res.unlinked.size());
        return res;
    }
    res.status = remove_status::failed;
    spdlog::error("stentor: recorder: deleting recording {} of session {}: {}", id, res.info.session_id, res.error);
    // Back on the list, in start order, with what went wrong.
    taken->info.error = "delete: " + res.error;
    std::lock_guard lk(_impl->mu);
    auto at = std::find_if(_impl->done.begin(), _impl->done.end(), [&](const auto& r) {
        return r->info.started_unix_ms > taken->info.started_unix_ms;
    });
    _impl->done.insert(at, std::move(taken));
    while (_impl->done.size() > max_listed) _impl->done.erase(_impl->done.begin());
    return res;
}

size_t recorder::ended_generations() const {
    std::lock_guard lk(_impl->mu);
    return _impl->closed_generations.size();
}

recorder_stats recorder::stats() const {
    std::lock_guard lk(_impl->mu);
    recorder_stats s = _impl->st;
    s.bytes_written = _impl->writer.bytes_written();
    s.syncs = _impl->writer.syncs();
    return s;
}

}  // namespace stentor::svc
