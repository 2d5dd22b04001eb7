#include "journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <type_traits>
#include <spdlog/spdlog.h>

#include "action_error.h"
#include "state.h"

namespace stentor::control {
namespace {

using clock_type = std::chrono::steady_clock;

// Listeners per bulk record of a snapshot: 458 kB records, 16 of them for
// 1 M listeners; each is one listener_add_bulk call on restore.
constexpr size_t snapshot_chunk = 65536;
// Skipped records named one by one in the log before a summary.
constexpr uint64_t max_skip_lines = 20;

std::string errno_text(int e) { return std::strerror(e); }

[[noreturn]] void fail(const std::string& what, int e) { throw std::runtime_error(what + ": " + errno_text(e)); }

std::string file_name(jr::file_kind k, uint64_t epoch) {
    return (k == jr::file_kind::journal ? "journal." : "snapshot.") + std::to_string(epoch);
}

// "journal.12" -> (journal, 12); anything else (".tmp", ".bad", strangers) -> nullopt.
std::optional<std::pair<jr::file_kind, uint64_t>> parse_name(std::string_view n) {
    jr::file_kind k;
    if (n.starts_with("journal.")) {
        k = jr::file_kind::journal;
        n.remove_prefix(8);
    } else if (n.starts_with("snapshot.")) {
        k = jr::file_kind::snapshot;
        n.remove_prefix(9);
    } else {
        return std::nullopt;
    }
    if (n.empty() || n.size() > 19 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    const uint64_t e = std::stoull(std::string(n));
    if (e == 0) return std::nullopt;
    return std::make_pair(k, e);
}

bool is_tmp(std::string_view n) {
    return (n.starts_with("journal.") || n.starts_with("snapshot.")) && n.ends_with(".tmp");
}

// One journal per directory. Two relays on one [journal] dir would each
// restore the other's sessions and listeners (and stream to them), write
// their records over each other's at the same offsets of journal.N, and
// compact each other's files away; `stentord --fresh` beside a running one
// would remove its journal. The lock is an flock on <dir>/lock: per open
// file, so two journals in one process exclude each other too, and the
// kernel drops it when its process dies (no stale lock after a SIGKILL).
// The file holds the holder's pid, for the message only. -1 when the file
// system has no flock (logged): then nothing is refused.
int lock_dir(const std::string& dir) {
    const std::string path = dir + "/lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) fail("journal: cannot create " + path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        if (e != EWOULDBLOCK) {
            ::close(fd);
            spdlog::warn("journal: flock {}: {}; a second stentord on this directory would not be refused", path,
                         errno_text(e));
            return -1;
        }
        char b[32] = {0};
        const ssize_t n = ::pread(fd, b, sizeof b - 1, 0);
        ::close(fd);
        std::string pid = n > 0 ? std::string(b, static_cast<size_t>(n)) : std::string();
        while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
        if (pid.empty() || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; }))
            pid = "unknown";
        throw std::runtime_error("journal: " + dir + " is in use by another stentord (pid " + pid +
                                 "): one journal directory per relay ([journal] dir)");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        // The pid is for the message of the next one; the lock is what counts.
    }
    return fd;
}

std::vector<std::string> list_dir(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) fail("journal: cannot read directory " + dir, errno);
    std::vector<std::string> out;
    while (const dirent* e = ::readdir(d)) out.emplace_back(e->d_name);
    ::closedir(d);
    return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("journal: cannot open " + path, errno);
    std::vector<uint8_t> b;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) b.reserve(static_cast<size_t>(st.st_size));
    uint8_t chunk[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            ::close(fd);
            fail("journal: cannot read " + path, e);
        }
        if (n == 0) break;
        b.insert(b.end(), chunk, chunk + n);
    }
    ::close(fd);
    return b;
}

// 0 or errno.
int write_all(int fd, const char* p, size_t n, uint64_t off) {
    size_t done = 0;
    while (done < n) {
        const ssize_t w = ::pwrite(fd, p + done, n - done, static_cast<off_t>(off + done));
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        done += static_cast<size_t>(w);
    }
    return 0;
}

// Apply one record through the actions; the reason if they refuse it.
std::optional<std::string> apply(relay_state& st, const jr::record& rec) {
    auto once = [&] {
        std::visit(
            [&](const auto& r) {
                using T = std::decay_t<decltype(r)>;
                if constexpr (std::is_same_v<T, jr::rec_session_create>) {
                    st.session_create(r.p);
                } else if constexpr (std::is_same_v<T, jr::rec_session_end>) {
                    st.session_end(r.session_id);
                } else if constexpr (std::is_same_v<T, jr::rec_speaker_add>) {
                    st.speaker_add(r.session_id, r.s);
                } else if constexpr (std::is_same_v<T, jr::rec_speaker_del>) {
                    st.speaker_del(r.session_id, listener_addr{r.ip, r.port, r.ip6});
                } else if constexpr (std::is_same_v<T, jr::rec_listener_add>) {
                    st.listener_add(r.session_id, r.l);
                } else if constexpr (std::is_same_v<T, jr::rec_listener_del>) {
                    st.listener_del(r.session_id, listener_addr{r.ip, r.port, r.ip6});
                } else if constexpr (std::is_same_v<T, jr::rec_listener_add_bulk>) {
                    st.listener_add_bulk(r.session_id, r.items);
                } else if constexpr (std::is_same_v<T, jr::rec_listeners_removed>) {
                    // Shed listeners, possibly of several sessions: each is
                    // removed on its own; the first refusal is reported.
                    std::optional<action_error> first;
                    for (const auto& l : r.items) {
                        try {
                            st.listener_del(l.session_id, listener_addr{l.ip, l.port, l.ip6});
                        } catch (const action_error& e) {
                            if (!first) first = e;
                        }
                    }
                    if (first) throw *first;
                } else if constexpr (std::is_same_v<T, jr::rec_srtp_reserve>) {
                    st.srtp_reserved(r.session_id, r.ssrc_be, r.limit);
                } else if constexpr (std::is_same_v<T, jr::rec_srtp_ingress_mark>) {
                    st.srtp_ingress_marked(r.session_id, listener_addr{r.ip, r.port, r.ip6}, r.ssrc_be, r.index);
                } else if constexpr (std::is_same_v<T, jr::rec_session_ids>) {
                    st.session_ids_given(r.next);
                } else if constexpr (std::is_same_v<T, jr::rec_listener_tier>) {
                    st.listener_set_tier(r.session_id, listener_addr{r.ip, r.port, r.ip6}, r.tier);
                } else if constexpr (std::is_same_v<T, jr::rec_snapshot_end>) {
                    throw action_error(error_code::invalid, "snapshot_end record outside a snapshot");
                }
            },
            rec);
    };
    try {
        try {
            once();
        } catch (const action_error& e) {
            // Speaker and neighbour slots freed by an earlier record of the
            // replay come back only after a publish (grace period): take
            // one and try again before calling the record refused.
            if (e.code != error_code::capacity) throw;
            st.publish();
            once();
        }
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

jr::record_type type_of(const jr::record& r) {
    return std::visit(
        [](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, jr::rec_session_create>) return jr::record_type::session_create;
            else if constexpr (std::is_same_v<T, jr::rec_session_end>) return jr::record_type::session_end;
            else if constexpr (std::is_same_v<T, jr::rec_speaker_add>) return jr::record_type::speaker_add;
            else if constexpr (std::is_same_v<T, jr::rec_speaker_del>) return jr::record_type::speaker_del;
            else if constexpr (std::is_same_v<T, jr::rec_listener_add>) return jr::record_type::listener_add;
            else if constexpr (std::is_same_v<T, jr::rec_listener_del>) return jr::record_type::listener_del;
            else if constexpr (std::is_same_v<T, jr::rec_listener_add_bulk>) return jr::record_type::listener_add_bulk;
            else if constexpr (std::is_same_v<T, jr::rec_listeners_removed>) return jr::record_type::listeners_removed;
            else if constexpr (std::is_same_v<T, jr::rec_srtp_reserve>) return jr::record_type::srtp_reserve;
            else if constexpr (std::is_same_v<T, jr::rec_srtp_ingress_mark>)
                return v.ip6 ? jr::record_type::srtp_ingress_mark6 : jr::record_type::srtp_ingress_mark;
            else if constexpr (std::is_same_v<T, jr::rec_session_ids>) return jr::record_type::session_ids;
            else if constexpr (std::is_same_v<T, jr::rec_listener_tier>)
                return v.ip6 ? jr::record_type::listener_tier6 : jr::record_type::listener_tier;
            else return jr::record_type::snapshot_end;
        },
        r);
}

}  // namespace

journal::journal(journal_options o) : _o(std::move(o)) {
    if (_o.dir.empty()) throw std::runtime_error("journal: no directory");
    if (::mkdir(_o.dir.c_str(), 0750) != 0 && errno != EEXIST) fail("journal: cannot create directory " + _o.dir, errno);
    _dir_fd = ::open(_o.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (_dir_fd < 0) fail("journal: cannot open directory " + _o.dir, errno);
    try {
        _lock_fd = lock_dir(_o.dir);
    } catch (...) {
        ::close(_dir_fd);
        throw;
    }
    _thr = std::thread([this] { background(); });
}

journal::~journal() {
    {
        std::lock_guard g(_mu);
        _stop = true;
    }
    _cv.notify_all();
    if (_thr.joinable()) _thr.join();
    if (_fd >= 0) ::close(_fd);
    if (_dir_fd >= 0) ::close(_dir_fd);
    if (_lock_fd >= 0) ::close(_lock_fd);   // the lock goes last, after the last write
}

size_t journal::discard(const std::string& dir, uint64_t* bytes) {
    size_t n = 0;
    uint64_t total = 0;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        if (errno == ENOENT) return 0;
        fail("journal: cannot read directory " + dir, errno);
    }
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
    ::closedir(d);
    // Not while a journal runs on it (released when we return).
    const int lock = lock_dir(dir);
    struct unlock {
        int fd;
        ~unlock() {
            if (fd >= 0) ::close(fd);
        }
    } held{lock};
    for (const auto& name : names) {
        if (!parse_name(name) && !is_tmp(name) && !name.ends_with(".bad")) continue;
        const std::string p = dir + "/" + name;
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
        if (::unlink(p.c_str()) != 0) fail("journal: cannot remove " + p, errno);
        ++n;
    }
    if (bytes != nullptr) *bytes = total;
    return n;
}

void journal::create_journal(uint64_t epoch) {
    const std::string name = file_name(jr::file_kind::journal, epoch);
    const std::string tmp = _o.dir + "/" + name + ".tmp";
    const std::string path = _o.dir + "/" + name;
    std::string h;
    jr::encode_header(jr::file_kind::journal, epoch, h);
    // Header written and synced under a temporary name, then renamed: a
    // journal file always starts with a whole header.
    const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0640);
    if (fd < 0) fail("journal: cannot create " + tmp, errno);
    if (int e = write_all(fd, h.data(), h.size(), 0); e != 0) {
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("journal: cannot write " + tmp, e);
    }
    if (_o.fsync && ::fdatasync(fd) != 0) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("journal: cannot sync " + tmp, e);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("journal: cannot rename " + tmp, e);
    }
    if (_o.fsync && ::fsync(_dir_fd) != 0) {
        const int e = errno;
        ::close(fd);
        fail("journal: cannot sync directory " + _o.dir, e);
    }
    if (_fd >= 0) ::close(_fd);
    _fd = fd;
    _epoch = epoch;
    _size = h.size();
    std::lock_guard g(_mu);
    _stats.epoch = epoch;
    _stats.bytes = _size;
}

void journal::open_for_append(uint64_t epoch, uint64_t size) {
    const std::string path = _o.dir + "/" + file_name(jr::file_kind::journal, epoch);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("journal: cannot open " + path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fail("journal: cannot stat " + path, e);
    }
    if (static_cast<uint64_t>(st.st_size) != size) {
        // Cut the torn or corrupt tail: the next record goes where the good
        // part ends, and a later restore never meets the bad bytes again.
        if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || (_o.fsync && ::fdatasync(fd) != 0)) {
            const int e = errno;
            ::close(fd);
            fail("journal: cannot truncate " + path, e);
        }
    }
    if (_fd >= 0) ::close(_fd);
    _fd = fd;
    _epoch = epoch;
    _size = size;
    std::lock_guard g(_mu);
    _stats.epoch = epoch;
    _stats.bytes = _size;
}

restore_report journal::restore(relay_state& st) {
    const auto t0 = clock_type::now();
    restore_report rep;
    auto line = [&](std::string s) { rep.lines.push_back("journal: " + std::move(s)); };

    std::map<uint64_t, std::string> journals, snapshots;
    for (const auto& name : list_dir(_o.dir)) {
        if (is_tmp(name)) {
            // A snapshot or journal header that a crash interrupted before
            // its rename: never part of the chain.
            ::unlinkat(_dir_fd, name.c_str(), 0);
            line("removed " + name + " (left by an interrupted write)");
            continue;
        }
        if (const auto k = parse_name(name))
            (k->first == jr::file_kind::journal ? journals : snapshots)[k->second] = name;
    }
    uint64_t max_epoch = 0;
    if (!journals.empty()) max_epoch = std::max(max_epoch, journals.rbegin()->first);
    if (!snapshots.empty()) max_epoch = std::max(max_epoch, snapshots.rbegin()->first);

    bool chain_ok = true;
    auto set_aside = [&](const std::string& name) {
        ::renameat(_dir_fd, name.c_str(), _dir_fd, (name + ".bad").c_str());
    };

    // Skipped records: the first ones by name, then a count.
    auto applied_or_skipped = [&](const jr::record& r, const std::string& where) {
        if (auto why = apply(st, r)) {
            if (++rep.records_skipped <= max_skip_lines)
                line("skipped " + std::string(jr::name_of(type_of(r))) + " record (" + where + "): " + *why);
        } else {
            ++rep.records_applied;
        }
    };

    st.set_replay(true);
    struct replay_guard {
        relay_state& st;
        ~replay_guard() { st.set_replay(false); }
    } guard{st};

    // The newest snapshot that reads whole, down to its end record.
    uint64_t base = 0;
    for (auto it = snapshots.rbegin(); it != snapshots.rend(); ++it) {
        const auto& [epoch, name] = *it;
        const auto bytes = read_file(_o.dir + "/" + name);
        std::string why;
        std::vector<jr::record> recs;
        bool ok = false;
        if (auto h = jr::decode_header(bytes, why)) {
            if (h->kind != jr::file_kind::snapshot || h->epoch != epoch) {
                why = "header says " + file_name(h->kind, h->epoch);
            } else {
                jr::reader rd(std::span<const uint8_t>(bytes).subspan(jr::header_size));
                jr::record r;
                jr::reader::status s;
                while ((s = rd.next(r)) == jr::reader::status::record) recs.push_back(std::move(r));
                if (s != jr::reader::status::end)
                    why = rd.why() + " at byte " + std::to_string(jr::header_size + rd.good_bytes());
                else if (recs.empty() || !std::holds_alternative<jr::rec_snapshot_end>(recs.back()))
                    why = "no snapshot_end record (incomplete)";
                else
                    ok = true;
            }
        }
        if (!ok) {
            line(name + " unusable: " + why + "; set aside as " + name + ".bad");
            set_aside(name);
            chain_ok = false;
            continue;
        }
        base = epoch;
        {
            std::lock_guard g(_mu);
            _stats.snapshot_bytes = bytes.size();
        }
        const auto end = std::get<jr::rec_snapshot_end>(recs.back());
        recs.pop_back();
        for (const auto& r : recs) applied_or_skipped(r, name);
        ++rep.records_applied;
        rep.empty = false;
        uint64_t nl = 0, nsp = 0;
        const auto ss = st.sessions();
        for (const auto& s : ss) {
            nl += s.nb_listeners;
            nsp += s.speakers.size();
        }
        if (ss.size() != end.sessions || nsp != end.speakers || nl != end.listeners)
            line(name + " holds " + std::to_string(end.sessions) + " sessions, " + std::to_string(end.speakers) +
                 " speakers, " + std::to_string(end.listeners) + " listeners; restored " + std::to_string(ss.size()) +
                 ", " + std::to_string(nsp) + ", " + std::to_string(nl));
        break;
    }
    if (base == 0 && !journals.empty()) {
        base = journals.begin()->first;
        if (base != 1) {
            // journal.N without snapshot.N: what came before it is lost.
            line("no usable snapshot for " + journals.begin()->second + ": its records are applied to an empty state");
            chain_ok = false;
        }
    }

    uint64_t last = 0, last_size = 0, expected = base;
    for (const auto& [epoch, name] : journals) {
        if (epoch < base) continue;
        if (epoch != expected) {
            line("journal." + std::to_string(expected) + " to journal." + std::to_string(epoch - 1) +
                 " missing: the actions they held are lost");
            chain_ok = false;
        }
        expected = epoch + 1;
        const auto bytes = read_file(_o.dir + "/" + name);
        std::string why;
        const auto h = jr::decode_header(bytes, why);
        if (!h || h->kind != jr::file_kind::journal || h->epoch != epoch) {
            if (h) why = "header says " + file_name(h->kind, h->epoch);
            line(name + " unusable: " + why + "; set aside as " + name + ".bad (" + std::to_string(bytes.size()) +
                 " bytes)");
            rep.bytes_dropped += bytes.size();
            set_aside(name);
            chain_ok = false;
            continue;
        }
        jr::reader rd(std::span<const uint8_t>(bytes).subspan(jr::header_size));
        jr::record r;
        jr::reader::status s;
        while ((s = rd.next(r)) == jr::reader::status::record) {
            rep.empty = false;
            applied_or_skipped(r, name + " byte " + std::to_string(jr::header_size + rd.good_bytes()));
        }
        const uint64_t good = jr::header_size + rd.good_bytes();
        if (s != jr::reader::status::end) {
            const uint64_t dropped = bytes.size() - good;
            rep.bytes_dropped += dropped;
            line(name + ": " + (s == jr::reader::status::torn ? "torn tail" : "corrupt record") + " at byte " +
                 std::to_string(good) + " (" + rd.why() + "): " + std::to_string(dropped) + " bytes dropped");
            if (epoch != journals.rbegin()->first) chain_ok = false;   // later journals follow a gap
            if (::truncate((_o.dir + "/" + name).c_str(), static_cast<off_t>(good)) != 0)
                fail("journal: cannot truncate " + _o.dir + "/" + name, errno);
        }
        last = epoch;
        last_size = good;
    }
    if (rep.records_skipped > max_skip_lines)
        line("skipped " + std::to_string(rep.records_skipped - max_skip_lines) + " more records");

    // Files the snapshot already holds (a crash before their removal).
    for (const auto& m : {&journals, &snapshots})
        for (const auto& [epoch, name] : *m)
            if (epoch < base) ::unlinkat(_dir_fd, name.c_str(), 0);

    if (!chain_ok || rep.records_skipped > 0) {
        // What was restored becomes the truth on disk: a new epoch from a
        // snapshot of it, so that a skipped record or a gap can never apply
        // to a later session that reuses an id.
        const uint64_t e = max_epoch + 1;
        create_journal(e);
        auto img = st.image();
        const uint64_t n = write_snapshot(img, e);
        line("wrote snapshot." + std::to_string(e) + " of the restored state (" + std::to_string(n) +
             " bytes); older files removed");
    } else if (last != 0) {
        open_for_append(last, last_size);
    } else {
        create_journal(std::max<uint64_t>(base, 1));
    }
    st.publish();

    const auto ss = st.sessions();
    rep.sessions = ss.size();
    for (const auto& s : ss) {
        rep.speakers += s.speakers.size();
        rep.listeners += s.nb_listeners;
    }
    rep.epoch = _epoch;
    rep.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    char b[256];
    std::snprintf(b, sizeof b,
                  "%s %zu sessions, %zu speakers, %llu listeners from %s in %.3f s (%llu records applied, %llu "
                  "skipped, %llu bytes dropped); appending to journal.%llu",
                  rep.empty ? "nothing to restore:" : "restored", rep.sessions, rep.speakers,
                  static_cast<unsigned long long>(rep.listeners), _o.dir.c_str(), rep.seconds,
                  static_cast<unsigned long long>(rep.records_applied),
                  static_cast<unsigned long long>(rep.records_skipped),
                  static_cast<unsigned long long>(rep.bytes_dropped), static_cast<unsigned long long>(_epoch));
    line(b);
    return rep;
}

bool journal::append(std::string_view bytes) {
    if (bytes.empty()) return true;
    const auto now = clock_type::now();
    {
        std::lock_guard g(_mu);
        if (!_error.empty() && now - _failed_at < std::chrono::milliseconds(100)) return false;
    }
    int e = _fd < 0 ? EBADF : write_all(_fd, bytes.data(), bytes.size(), _size);
    // After a failed fdatasync the kernel may have dropped the dirty pages
    // and reports the next fsync clean (PostgreSQL's "fsyncgate"): a retry
    // therefore rewrites the whole buffer from _size, never trusts a sync.
    if (e == 0 && _o.fsync && ::fdatasync(_fd) != 0) e = errno;
    if (e != 0) {
        if (_fd >= 0 && ::ftruncate(_fd, static_cast<off_t>(_size)) != 0) {
            // The next write goes to _size anyway and a restore stops at the
            // first bad record; nothing more to do here.
        }
        std::lock_guard g(_mu);
        const bool first = _error.empty();
        _error = "cannot write " + _o.dir + "/" + file_name(jr::file_kind::journal, _epoch) + ": " + errno_text(e);
        _failed_at = now;
        ++_stats.write_errors;
        if (first) spdlog::error("journal: {}; changes are refused until it can write again", _error);
        return false;
    }
    _size += bytes.size();
    std::lock_guard g(_mu);
    if (!_error.empty()) spdlog::warn("journal: writing again after: {}", _error);
    _error.clear();
    ++_stats.writes;
    _stats.bytes_written += bytes.size();
    _stats.bytes = _size;
    return true;
}

bool journal::compaction_due() const {
    if (_fd < 0) return false;
    std::lock_guard g(_mu);
    if (_compacting || clock_type::now() < _compact_not_before) return false;
    return _size > std::max(_o.compact_bytes, 4 * _stats.snapshot_bytes);
}

void journal::compact(state_image img) {
    const uint64_t e = _epoch + 1;
    try {
        create_journal(e);
    } catch (const std::exception& ex) {
        std::lock_guard g(_mu);
        // The current journal stays in use; try again later, not on every publish.
        _compact_not_before = clock_type::now() + std::chrono::seconds(10);
        spdlog::error("{}; compaction postponed", ex.what());
        return;
    }
    {
        std::lock_guard g(_mu);
        _job.emplace(std::move(img), e);
        _compacting = true;
    }
    _cv.notify_all();
}

uint64_t journal::write_snapshot(state_image& img, uint64_t epoch) {
    const auto t0 = clock_type::now();
    std::sort(img.listeners.begin(), img.listeners.end(),
              [](const state_image::listener& a, const state_image::listener& b) { return a.seq < b.seq; });
    std::string buf;
    buf.reserve(jr::header_size + img.sessions.size() * 64 + img.listeners.size() * jr::bulk_item_bytes + 4096);
    jr::encode_header(jr::file_kind::snapshot, epoch, buf);
    uint32_t nb_speakers = 0;
    for (const auto& s : img.sessions) {
        jr::encode(jr::rec_session_create{s.p}, buf);
        for (const auto& sp : s.speakers) {
            jr::encode(jr::rec_speaker_add{s.p.id, sp}, buf);
            ++nb_speakers;
        }
    }
    // Listeners in join order, as runs of one session and one family: the
    // restored seq order (paging, shedding newest first) is the one they had.
    std::vector<listener_spec> run;
    run.reserve(snapshot_chunk);
    for (size_t i = 0; i < img.listeners.size();) {
        const uint32_t sid = img.listeners[i].session_id;
        const bool v6 = img.listeners[i].ip6.has_value();
        run.clear();
        for (; i < img.listeners.size() && img.listeners[i].session_id == sid && img.listeners[i].ip6.has_value() == v6 &&
               run.size() < snapshot_chunk;
             ++i)
            run.push_back({img.listeners[i].ip, img.listeners[i].port, img.listeners[i].tier, img.listeners[i].by_token,
                           img.listeners[i].ip6});
        jr::encode_listener_add_bulk(sid, run, buf);
    }
    // SRTP egress reservations, of live and ended sessions alike: after the
    // sessions, so that a live one's table is there to take them.
    for (const auto& m : img.egress_marks) jr::encode(jr::rec_srtp_reserve{m.session_id, m.ssrc_be, m.limit}, buf);
    for (const auto& m : img.ingress_marks) {
        std::optional<ipv6_addr> ip6;
        if (m.ip6 != ipv6_addr{}) ip6 = m.ip6;
        jr::encode(jr::rec_srtp_ingress_mark{m.session_id, m.ip, ip6, m.port, m.ssrc_be, m.index}, buf);
    }
    jr::encode(jr::rec_session_ids{img.next_session_id}, buf);
    jr::encode(jr::rec_snapshot_end{static_cast<uint32_t>(img.sessions.size()), nb_speakers, img.listeners.size()},
               buf);

    const std::string name = file_name(jr::file_kind::snapshot, epoch);
    const std::string tmp = _o.dir + "/" + name + ".tmp";
    const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0640);
    if (fd < 0) fail("journal: cannot create " + tmp, errno);
    int e = write_all(fd, buf.data(), buf.size(), 0);
    if (e == 0 && _o.fsync && ::fsync(fd) != 0) e = errno;
    ::close(fd);
    if (e == 0 && ::rename(tmp.c_str(), (_o.dir + "/" + name).c_str()) != 0) e = errno;
    if (e == 0 && _o.fsync && ::fsync(_dir_fd) != 0) e = errno;
    if (e != 0) {
        ::unlink(tmp.c_str());
        fail("journal: cannot write " + _o.dir + "/" + name, e);
    }
    // Only now are the older epochs redundant.
    for (const auto& n : list_dir(_o.dir))
        if (const auto k = parse_name(n); k && k->second < epoch) ::unlinkat(_dir_fd, n.c_str(), 0);
    if (_o.fsync) ::fsync(_dir_fd);
    std::lock_guard g(_mu);
    ++_stats.compactions;
    _stats.snapshot_bytes = buf.size();
    _stats.last_snapshot_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    return buf.size();
}

void journal::background() {
    std::unique_lock g(_mu);
    for (;;) {
        _cv.wait(g, [&] { return _stop || _job.has_value(); });
        if (!_job) return;   // stop, nothing left to write
        auto job = std::move(*_job);
        _job.reset();
        g.unlock();
        try {
            const size_t listeners = job.first.listeners.size();
            const uint64_t bytes = write_snapshot(job.first, job.second);
            spdlog::info("journal: compacted: snapshot.{} of {} listeners ({} bytes) written in {:.3f} s", job.second,
                         listeners, bytes, stats().last_snapshot_s);
        } catch (const std::exception& e) {
            // The chain is still whole (older snapshot + journals); the next
            // compaction writes a newer snapshot.
            spdlog::error("{}; the older snapshot and journals stay in use", e.what());
        }
        g.lock();
        _compacting = false;
        _cv.notify_all();
    }
}

void journal::wait_compaction() {
    std::unique_lock g(_mu);
    _cv.wait(g, [&] { return !_compacting && !_job; });
}

std::string journal::error() const {
    std::lock_guard g(_mu);
    return _error;
}

journal_stats journal::stats() const {
    std::lock_guard g(_mu);
    return _stats;
}

}  // namespace stentor::control
