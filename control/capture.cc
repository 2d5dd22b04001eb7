// rte_pcapng is experimental in DPDK 22.11 (stable since 23.11).
#define ALLOW_EXPERIMENTAL_API 1

#include "capture.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_pcapng.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_version.h>

#include "action_error.h"
#include "stentor/dp_capture.h"
#include "stentor/dp_shared.h"

namespace stentor::control {

namespace {

using steady = std::chrono::steady_clock;

// How many finished captures the API can still report (their files are
// bounded by capture.keep; these are a few hundred bytes each).
constexpr size_t max_records = 256;
constexpr unsigned drain_burst = 32;

[[noreturn]] void refuse(error_code c, const std::string& why) { throw action_error(c, why); }

uint64_t realtime_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// A port name or the file prefix as a file name part: [A-Za-z0-9._-],
// anything else '_', at most 64 characters (eal.file_prefix is already
// that, whole: two relays whose prefixes share their first 32 characters
// must not name, and so prune, each other's files).
std::string file_safe(std::string_view s) {
    std::string out;
    for (const char ch : s.substr(0, 64))
        out.push_back(std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' || ch == '.' ? ch
                                                                                                              : '_');
    return out;
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// "20261201T101500Z", as start() writes it.
bool is_stamp(std::string_view s) {
    return s.size() == 16 && all_digits(s.substr(0, 8)) && s[8] == 'T' && all_digits(s.substr(9, 6)) && s[15] == 'Z';
}

// mkdir -p, mode 0750 for what it creates.
void make_dirs(const std::string& dir) {
    for (size_t i = 1; i <= dir.size(); ++i) {
        if (i != dir.size() && dir[i] != '/') continue;
        const std::string part = dir.substr(0, i);
        if (::mkdir(part.c_str(), 0750) != 0 && errno != EEXIST)
            refuse(error_code::capacity,
                   fmt::format("capture.dir: cannot create {}: {}", part, std::strerror(errno)));
    }
}

dp::capture_lcore_stats sum(const dp::capture_lcore_stats* l, unsigned n) {
    dp::capture_lcore_stats t;
    for (unsigned i = 0; i < n; ++i) t += l[i].snapshot();
    return t;
}

}  // namespace

std::string_view name_of(capture_kind k) noexcept {
    switch (k) {
    case capture_kind::port_rx: return "port_rx";
    case capture_kind::port_tx: return "port_tx";
    case capture_kind::session: return "session";
    }
    return "port_rx";
}

std::string describe(const capture_info& c) {
    switch (c.kind) {
    case capture_kind::port_rx: return "port " + c.port + " rx";
    case capture_kind::port_tx: return "port " + c.port + " tx";
    case capture_kind::session:
        return "session " + std::to_string(c.session) + " ingress (udp " + std::to_string(c.udp_port) + ")";
    }
    return "?";
}

nlohmann::json capture_json(const capture_info& c) {
    nlohmann::json target;
    if (c.kind == capture_kind::session) {
        target = {{"session", c.session}, {"udp_port", c.udp_port}};
    } else {
        target = {{"port", c.port}, {"direction", c.kind == capture_kind::port_rx ? "rx" : "tx"}};
    }
    nlohmann::json j{{"id", c.id},
                     {"target", target},
                     {"what", describe(c)},
                     {"state", c.state},
                     {"bounds",
                      {{"max_packets", c.max_packets},
                       {"max_seconds", c.max_seconds},
                       {"max_bytes", c.max_bytes},
                       {"snaplen", c.snaplen},
                       {"sample", c.sample}}},
                     {"file", c.file},
                     {"file_removed", c.file_removed},
                     {"packets", c.packets},
                     {"bytes", c.bytes},
                     {"file_bytes", c.file_bytes},
                     {"matched", c.matched},
                     {"sampled_out", c.sampled_out},
                     {"copied", c.copied},
                     {"ring_full", c.ring_full},
                     {"no_mbuf", c.no_mbuf},
                     {"discarded", c.discarded},
                     {"started_unix", c.started_unix},
                     {"elapsed_s", c.elapsed_s}};
    j["stop_reason"] = c.stop_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.stop_reason);
    j["error"] = c.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.error);
    return j;
}

// ------------------------------------------------------------------ manager

namespace {

struct record {
    capture_info info;                  // guarded by impl::mu
    dp::capture_lcore_stats base;       // the workers' totals at the start
    std::string name;                   // final file name in the directory
    std::string part;                   // name while written
    rte_pcapng_t* pc = nullptr;         // the writer's
    int fd = -1;
    std::vector<uint16_t> ethdevs;      // the captured ports (stats blocks)
    steady::time_point t0;
    uint64_t start_ns = 0;
    bool stop_wanted = false;           // guarded by impl::mu
    std::string stop_why;               // guarded by impl::mu
    bool finished = false;              // guarded by impl::mu: the writer is done
    std::thread writer;
};

}  // namespace

struct capture_manager::impl {
    capture_config cfg;
    capture_identity ident;
    dp::dp_shared& sh;
    unsigned nb_workers;
    std::vector<std::string> port_names;
    std::function<std::optional<unsigned>(uint32_t)> session_port;

    dp::dp_capture* cap = nullptr;
    dp::capture_lcore_stats* lcores = nullptr;
    rte_mempool* pool = nullptr;
    rte_ring* ring = nullptr;
    // capture.dir, held open. Changed only with dir_mu and mu both held;
    // read with either.
    int dirfd = -1;

    // Two locks, taken in this order when both are:
    // - dir_mu: the directory's work, which can take as long as the disk
    //   and the directory's size make it (the scan that counts and prunes
    //   capture.dir, the new file's creation, the finished file's rename).
    //   Held by start() throughout, by the writer's finish() and by
    //   remove()'s unlink; so a slow directory delays a start, the end of
    //   the capture that is finishing and a remove, never an API read or a
    //   stop. It also makes starts, and a start and a finish, take their
    //   turns: the id and name a start takes are decided under it. Records
    //   leave `recs` under it only (apply_locked).
    // - mu: the records, `running`, next_id; held briefly, never over a
    //   directory scan.
    std::mutex dir_mu;
    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<record>> recs;   // oldest first
    record* running = nullptr;
    uint32_t next_id = 1;                       // written with dir_mu and mu held
    std::atomic<bool> held{false};              // hold_writer()
    capture_stats st;                           // written by the writer thread, read with snapshot()

    impl(const capture_config& c, capture_identity i, dp::dp_shared& s, unsigned n, std::vector<std::string> names,
         std::function<std::optional<unsigned>(uint32_t)> sp)
        : cfg(c), ident(std::move(i)), sh(s), nb_workers(n), port_names(std::move(names)), session_port(std::move(sp)) {}

    void count(uint64_t capture_stats::*f, uint64_t n = 1) {
        std::atomic_ref<uint64_t>(st.*f).fetch_add(n, std::memory_order_relaxed);
    }

    record* find(uint32_t id) const {
        for (const auto& r : recs)
            if (r->info.id == id) return r.get();
        return nullptr;
    }

    // Joins the writer of a finished record. Caller holds mu; the writer
    // takes mu for the last time before it sets `finished`.
    static void reap(record& r) {
        if (r.finished && r.writer.joinable()) r.writer.join();
    }

    // What a scan of capture.dir found and removed (prune_dir).
    struct pruned {
        uint64_t max_id = 0;                 // the highest id among this relay's files
        std::vector<std::string> removed;    // this relay's files it unlinked
    };

    // Caller holds mu.
    void ensure_pool_and_ring();
    // Caller holds dir_mu, not mu (it takes mu to change dirfd).
    void ensure_dir();
    // The capture id in the name of a file this relay names; nullopt for
    // anything else.
    std::optional<uint64_t> ours(std::string_view name) const;
    // Caller holds dir_mu, not mu.
    pruned prune_dir();
    // Caller holds mu: what prune_dir() found, into the records and next_id.
    void apply_locked(const pruned& p);
    void writer_main(record* r);
    void finish(record* r, std::unique_lock<std::mutex>& lk);
    void request_stop_locked(record& r, const std::string& why) {
        if (r.stop_wanted) return;
        r.stop_wanted = true;
        r.stop_why = why;
        cv.notify_all();
    }
    void wait_finished(std::unique_lock<std::mutex>& lk, record& r) {
        cv.wait(lk, [&] { return r.finished; });
        reap(r);
    }
};

capture_manager::capture_manager(const capture_config& cfg, capture_identity ident, dp::dp_shared& sh,
                                 unsigned nb_workers, std::vector<std::string> port_names,
                                 std::function<std::optional<unsigned>(uint32_t)> session_port)
    : _impl(std::make_unique<impl>(cfg, std::move(ident), sh, nb_workers, std::move(port_names),
                                   std::move(session_port))) {
    auto& im = *_impl;
    im.cap = static_cast<dp::dp_capture*>(rte_zmalloc("stentor_capture", sizeof(dp::dp_capture), RTE_CACHE_LINE_SIZE));
    im.lcores = static_cast<dp::capture_lcore_stats*>(
        rte_zmalloc("stentor_capture_lcores", sizeof(dp::capture_lcore_stats) * std::max(1u, nb_workers),
                    RTE_CACHE_LINE_SIZE));
    if (im.cap == nullptr || im.lcores == nullptr) {
        rte_free(im.cap);
        rte_free(im.lcores);
        throw std::bad_alloc();
    }
    new (im.cap) dp::dp_capture{};
    for (unsigned i = 0; i < std::max(1u, nb_workers); ++i) new (&im.lcores[i]) dp::capture_lcore_stats{};
    im.cap->lcores = im.lcores;
    im.cap->nb_lcores = nb_workers;
}

capture_manager::~capture_manager() {
    auto& im = *_impl;
    stop_all("relay_stopping");
    {
        std::unique_lock lk(im.mu);
        for (auto& r : im.recs) impl::reap(*r);
    }
    // Every copy is back in the pool once the ring is empty and no capture
    // runs (the workers were stopped before, or never copied).
    if (im.ring != nullptr) {
        void* obj;
        while (rte_ring_dequeue(im.ring, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
        rte_ring_free(im.ring);
    }
    if (im.pool != nullptr) rte_mempool_free(im.pool);
    if (im.dirfd >= 0) ::close(im.dirfd);
    rte_free(im.lcores);
    rte_free(im.cap);
}

dp::dp_capture* capture_manager::dp() { return _impl->cap; }

void capture_manager::impl::ensure_pool_and_ring() {
    if (pool == nullptr) {
        // The largest frame any port receives, plus a VLAN tag that
        // rte_pcapng_copy may put back, plus the pcapng block around it.
        uint32_t frame = 0;
        for (uint16_t p = 0; p < sh.nb_ports; ++p) frame = std::max<uint32_t>(frame, sh.ports[p].max_frame);
        const uint32_t room = RTE_PKTMBUF_HEADROOM + rte_pcapng_mbuf_size(frame + 4);
        if (room > UINT16_MAX) refuse(error_code::capacity, "capture: frames too large for one capture mbuf");
        // No per-lcore cache: the workers take, the writer (not an lcore)
        // gives back, and a cache would keep copies out of an empty pool.
        pool = rte_pktmbuf_pool_create("stentor_capture", cfg.mbufs, 0, 0, static_cast<uint16_t>(room), SOCKET_ID_ANY);
        if (pool == nullptr)
            refuse(error_code::capacity,
                   fmt::format("capture: cannot create the copies' mempool ({} mbufs of {} bytes): {}; lower "
                               "capture.mbufs or raise eal.memory_mb",
                               cfg.mbufs, room, rte_strerror(rte_errno)));
    }
    if (ring == nullptr) {
        ring = rte_ring_create("stentor_capture", cfg.ring_size, SOCKET_ID_ANY, RING_F_SC_DEQ | RING_F_EXACT_SZ);
        if (ring == nullptr)
            refuse(error_code::capacity,
                   fmt::format("capture: cannot create its ring ({} entries): {}", cfg.ring_size, rte_strerror(rte_errno)));
    }
}

void capture_manager::impl::ensure_dir() {
    // The directory removed (or replaced) since it was opened: an fd on a
    // deleted directory cannot create anything, and every start would fail
    // until a restart. Open it again (made again if need be), as the
    // recorder makes its directory again for every file.
    if (dirfd >= 0) {
        struct stat held{}, now{};
        if (::fstat(dirfd, &held) != 0 || held.st_nlink == 0 || ::stat(cfg.dir.c_str(), &now) != 0 ||
            now.st_dev != held.st_dev || now.st_ino != held.st_ino) {
            std::lock_guard g(mu);
            ::close(dirfd);
            dirfd = -1;
        }
    }
    if (dirfd < 0) {
        make_dirs(cfg.dir);
        const int fd = ::open(cfg.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            refuse(error_code::capacity, fmt::format("capture.dir: cannot open {}: {}", cfg.dir, std::strerror(errno)));
        std::lock_guard g(mu);
        dirfd = fd;
    }
}

// A file this relay names: <prefix>-<id>-<what>-<stamp>.pcapng, or its
// .part, <what> being session<N> or one of this relay's ports with -rx or
// -tx. Another relay's files in a shared directory (another prefix) and
// anything else that lives there are not ours.
std::optional<uint64_t> capture_manager::impl::ours(std::string_view n) const {
    const std::string prefix = file_safe(ident.file_prefix) + "-";
    if (!n.starts_with(prefix)) return std::nullopt;
    n.remove_prefix(prefix.size());
    if (n.ends_with(".part")) n.remove_suffix(5);
    if (!n.ends_with(".pcapng")) return std::nullopt;
    n.remove_suffix(7);
    const size_t dash = n.find('-');
    if (dash == std::string_view::npos || dash > 10 || !all_digits(n.substr(0, dash)) || n.size() < dash + 1 + 17)
        return std::nullopt;
    const std::string_view stamp = n.substr(n.size() - 16);
    if (!is_stamp(stamp) || n[n.size() - 17] != '-') return std::nullopt;
    const std::string_view what = n.substr(dash + 1, n.size() - 17 - dash - 1);
    bool known = what.starts_with("session") && all_digits(what.substr(7));
    for (const auto& p : port_names) {
        const std::string f = file_safe(p);
        known |= what == f + "-rx" || what == f + "-tx";
    }
    if (!known) return std::nullopt;
    return std::stoull(std::string(n.substr(0, dash)));
}

// Past capture.keep, this relay's oldest files go: the directory is
// counted, not this process's list, so files of an earlier run, a .part
// that a crash cut off and a failed capture's .part are counted (and go)
// as well. Ids go on above the highest one in the directory, so that a new
// capture never takes the name of an earlier run's file (the ids restart
// with the process and the names' time stamps are seconds).
//
// It runs under dir_mu alone: at a start, before the new capture's file
// exists, and at a finish, after the capture's rename; one capture at a
// time and dir_mu between them mean no capture is being written during a
// scan, so every file of ours is counted.
capture_manager::impl::pruned capture_manager::impl::prune_dir() {
    pruned out;
    if (dirfd < 0) return out;
    struct file {
        int64_t mtime_ns;
        std::string name;
    };
    std::vector<file> files;
    const int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (d == nullptr) {
        if (fd >= 0) ::close(fd);
        return out;
    }
    while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        const auto id = ours(n);
        if (!id) continue;
        out.max_id = std::max(out.max_id, *id);
        struct stat sb{};
        if (::fstatat(dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) continue;
        files.push_back({int64_t{sb.st_mtim.tv_sec} * 1000000000 + sb.st_mtim.tv_nsec, std::string(n)});
    }
    ::closedir(d);
    if (files.size() > cfg.keep) {
        // Newest first; the oldest beyond `keep` go.
        std::sort(files.begin(), files.end(), [](const file& a, const file& b) {
            return a.mtime_ns != b.mtime_ns ? a.mtime_ns > b.mtime_ns : a.name > b.name;
        });
        for (size_t i = cfg.keep; i < files.size(); ++i) {
            const std::string& n = files[i].name;
            if (::unlinkat(dirfd, n.c_str(), 0) != 0 && errno != ENOENT) continue;
            out.removed.push_back(n);
        }
    }
    return out;
}

void capture_manager::impl::apply_locked(const pruned& p) {
    if (p.max_id >= next_id && p.max_id < UINT32_MAX) next_id = static_cast<uint32_t>(p.max_id + 1);
    for (const auto& n : p.removed)
        for (auto& r : recs)
            if (r->name == n || r->part == n) r->info.file_removed = true;
    while (recs.size() > max_records && recs.front()->finished) {
        reap(*recs.front());
        recs.pop_front();
    }
}

capture_info capture_manager::start(const capture_request& q) {
    auto& im = *_impl;
    // dir_mu throughout: the directory's work below runs without mu, and
    // the id and name taken here are no other start's (see impl::dir_mu).
    std::unique_lock dl(im.dir_mu);
    std::unique_lock lk(im.mu);
    if (im.running != nullptr) {
        if (!im.running->finished)
            refuse(error_code::exists, fmt::format("capture {} ({}) is running: one capture at a time; stop it first "
                                                   "(POST /api/v1/captures/{}/stop)",
                                                   im.running->info.id, describe(im.running->info), im.running->info.id));
        impl::reap(*im.running);
        im.running = nullptr;
    }
    capture_info ci;
    ci.kind = q.kind;
    uint32_t bits = 0;
    uint16_t udp_be = 0;
    std::vector<uint16_t> ethdevs;
    if (q.kind == capture_kind::session) {
        const auto port = im.session_port(q.session);
        if (!port) refuse(error_code::not_found, fmt::format("no session {}", q.session));
        ci.session = q.session;
        ci.udp_port = *port;
        udp_be = static_cast<uint16_t>(__builtin_bswap16(static_cast<uint16_t>(*port)));
        for (uint16_t p = 0; p < im.sh.nb_ports; ++p) {
            bits |= dp::capture_rx_bit(p);
            ethdevs.push_back(im.sh.ethdev[p]);
        }
    } else {
        const auto it = std::find(im.port_names.begin(), im.port_names.end(), q.port);
        if (it == im.port_names.end()) {
            std::string names;
            for (const auto& n : im.port_names) names += (names.empty() ? "" : ", ") + n;
            refuse(error_code::invalid, fmt::format("port: no port named \"{}\" (ports: {})", q.port, names));
        }
        const auto p = static_cast<uint16_t>(it - im.port_names.begin());
        ci.port = q.port;
        bits = q.kind == capture_kind::port_rx ? dp::capture_rx_bit(p) : dp::capture_tx_bit(p);
        ethdevs.push_back(im.sh.ethdev[p]);
    }
    const auto bound = [&](const char* key, const std::optional<uint64_t>& v, uint64_t cap, const char* cfg_key) {
        if (!v) return cap;
        if (*v == 0) refuse(error_code::invalid, fmt::format("{}: must be at least 1", key));
        if (*v > cap)
            refuse(error_code::invalid,
                   fmt::format("{}: {} is above this relay's limit {} (capture.{})", key, *v, cap, cfg_key));
        return *v;
    };
    ci.max_packets = bound("max_packets", q.max_packets, im.cfg.max_packets, "max_packets");
    ci.max_seconds = bound("max_seconds", q.max_seconds, im.cfg.max_seconds, "max_seconds");
    ci.max_bytes = bound("max_bytes", q.max_bytes, uint64_t{im.cfg.max_mib} << 20, "max_mib");
    ci.snaplen = q.snaplen.value_or(capture_snaplen_max);
    if (ci.snaplen < capture_snaplen_min || ci.snaplen > capture_snaplen_max)
        refuse(error_code::invalid,
               fmt::format("snaplen: {} is outside {}..{}", ci.snaplen, capture_snaplen_min, capture_snaplen_max));
    ci.sample = q.sample.value_or(1);
    if (ci.sample < 1 || ci.sample > capture_sample_max)
        refuse(error_code::invalid, fmt::format("sample: {} is outside 1..{}", ci.sample, capture_sample_max));

    im.ensure_pool_and_ring();
    lk.unlock();

    // The directory, without mu: API reads, stops and removes go on while
    // it is scanned. The files an earlier run left (finished, failed or cut
    // off by a crash) count from the first capture on.
    im.ensure_dir();
    const impl::pruned found = im.prune_dir();
    lk.lock();
    im.apply_locked(found);
    ci.id = im.next_id;
    lk.unlock();

    auto r = std::make_unique<record>();
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    const std::string what =
        q.kind == capture_kind::session ? "session" + std::to_string(q.session)
                                        : file_safe(q.port) + (q.kind == capture_kind::port_rx ? "-rx" : "-tx");
    r->name = fmt::format("{}-{}-{}-{}.pcapng", file_safe(im.ident.file_prefix), ci.id, what, stamp);
    r->part = r->name + ".part";
    r->fd = ::openat(im.dirfd, r->part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (r->fd < 0)
        refuse(error_code::capacity,
               fmt::format("capture: cannot create {}/{}: {}", im.cfg.dir, r->part, std::strerror(errno)));
    utsname un{};
    ::uname(&un);
    const std::string os = std::string(un.sysname) + " " + un.release;
    const std::string app = im.ident.app + " (" + rte_version() + ")";
    const std::string comment =
        fmt::format("stentor capture {}: {}; max_packets={} max_seconds={} max_bytes={} snaplen={} sample=1/{}", ci.id,
                    describe(ci), ci.max_packets, ci.max_seconds, ci.max_bytes, ci.snaplen, ci.sample);
    r->pc = rte_pcapng_fdopen(r->fd, os.c_str(), nullptr, app.c_str(), comment.c_str());
    if (r->pc == nullptr) {
        const int e = rte_errno;
        ::close(r->fd);
        ::unlinkat(im.dirfd, r->part.c_str(), 0);
        refuse(error_code::capacity, fmt::format("capture: cannot write the pcapng header of {}: {}", r->part,
                                                 e != 0 ? rte_strerror(e) : std::strerror(errno)));
    }

    lk.lock();
    // While mu was free a session may have ended (session_ended() found no
    // capture of it to stop): look again, as the first look was made.
    if (q.kind == capture_kind::session && im.session_port(q.session) != std::optional<unsigned>(ci.udp_port)) {
        rte_pcapng_close(r->pc);   // closes the fd
        ::unlinkat(im.dirfd, r->part.c_str(), 0);
        refuse(error_code::not_found, fmt::format("no session {}", q.session));
    }
    // Copies an earlier capture's workers left behind (tagged with its id).
    {
        void* obj;
        while (rte_ring_dequeue(im.ring, &obj) == 0) {
            rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
            im.count(&capture_stats::discarded);
        }
    }
    ++im.next_id;
    ci.state = "running";
    ci.file = im.cfg.dir + "/" + r->part;
    ci.started_unix = static_cast<int64_t>(now);
    r->info = ci;
    r->ethdevs = std::move(ethdevs);
    r->t0 = steady::now();
    r->start_ns = realtime_ns();
    r->base = sum(im.lcores, im.nb_workers);

    // Publish to the workers: the fields, then the bits (release).
    dp::dp_capture& c = *im.cap;
    c.id = ci.id;
    c.udp_dst_be = udp_be;
    c.snaplen = ci.snaplen;
    c.sample = ci.sample;
    c.pool = im.pool;
    c.ring = im.ring;
    c.on.store(bits, std::memory_order_release);
    im.count(&capture_stats::captures);

    record* rp = r.get();
    im.recs.push_back(std::move(r));
    im.running = rp;
    rp->writer = std::thread([&im, rp] { im.writer_main(rp); });
    return ci;
}

void capture_manager::impl::writer_main(record* r) {
    rte_mbuf* objs[drain_burst];
    rte_mbuf* batch[drain_burst];
    uint64_t packets = 0, bytes = 0, discarded = 0;
    std::string reason, error;
    const auto deadline = r->t0 + std::chrono::seconds(r->info.max_seconds);
    const uint32_t id = r->info.id;
    const uint64_t max_packets = r->info.max_packets, max_bytes = r->info.max_bytes;
    bool write_failed = false;

    // Takes what the ring holds: writes what fits the bounds, counts the
    // rest. Returns the number taken.
    const auto drain = [&](bool final_drain) -> unsigned {
        if (!final_drain && held.load(std::memory_order_relaxed)) return 0;
        const unsigned n = rte_ring_dequeue_burst(ring, reinterpret_cast<void**>(objs), drain_burst, nullptr);
        unsigned k = 0;
        for (unsigned i = 0; i < n; ++i) {
            rte_mbuf* m = objs[i];
            if (dp::capture_tag(m) != id || write_failed) {
                rte_pktmbuf_free(m);
                ++discarded;
                continue;
            }
            const uint32_t len = rte_pktmbuf_pkt_len(m);
            if (packets + k >= max_packets) {
                if (reason.empty()) reason = "max_packets";
                rte_pktmbuf_free(m);
                ++discarded;
                continue;
            }
            if (bytes + len > max_bytes) {
                if (reason.empty()) reason = "max_bytes";
                rte_pktmbuf_free(m);
                ++discarded;
                continue;
            }
            batch[k++] = m;
            bytes += len;
        }
        if (k > 0) {
            uint64_t want = 0;
            for (unsigned i = 0; i < k; ++i) want += rte_pktmbuf_pkt_len(batch[i]);
            const ssize_t wrote = rte_pcapng_write_packets(r->pc, batch, static_cast<uint16_t>(k));
            // 22.11's rte_pcapng_write_packets leaves the mbufs to the caller.
            rte_pktmbuf_free_bulk(batch, k);
            if (wrote < 0 || static_cast<uint64_t>(wrote) != want) {
                write_failed = true;
                const int e = wrote < 0 ? rte_errno : ENOSPC;
                error = fmt::format("writing {}: {}", r->part, std::strerror(e));
                reason = "write_error";
                bytes -= want;
            } else {
                packets += k;
            }
        }
        if (packets >= max_packets && reason.empty()) reason = "max_packets";
        return n;
    };

    std::unique_lock lk(mu, std::defer_lock);
    for (;;) {
        const unsigned n = drain(false);
        lk.lock();
        r->info.packets = packets;
        r->info.bytes = bytes;
        r->info.elapsed_s = std::chrono::duration<double>(steady::now() - r->t0).count();
        if (reason.empty() && r->stop_wanted) reason = r->stop_why;
        if (reason.empty() && steady::now() >= deadline) reason = "max_seconds";
        if (!reason.empty()) break;
        if (n == 0) cv.wait_for(lk, std::chrono::milliseconds(1));
        lk.unlock();
    }
    lk.unlock();

    // No more copies: the bits off, then a grace period so that no worker
    // is still in capture_burst() with this capture, then the rest of the
    // ring (what arrived before the stop is written while it fits).
    cap->on.store(0, std::memory_order_release);
    if (sh.rcu != nullptr) rte_rcu_qsbr_synchronize(sh.rcu, RTE_QSBR_THRID_INVALID);
    const std::string first_reason = reason;
    while (drain(true) > 0) {
    }
    reason = first_reason;
    const dp::capture_lcore_stats now_st = sum(lcores, nb_workers);
    count(&capture_stats::written, packets);
    count(&capture_stats::written_bytes, bytes);
    count(&capture_stats::discarded, discarded);

    lk.lock();
    capture_info& ci = r->info;
    ci.packets = packets;
    ci.bytes = bytes;
    ci.discarded = discarded;
    ci.matched = now_st.matched - r->base.matched;
    ci.sampled_out = now_st.sampled_out - r->base.sampled_out;
    ci.copied = now_st.copied - r->base.copied;
    ci.ring_full = now_st.ring_full - r->base.ring_full;
    ci.no_mbuf = now_st.no_mbuf - r->base.no_mbuf;
    ci.elapsed_s = std::chrono::duration<double>(steady::now() - r->t0).count();
    ci.stop_reason = reason;
    ci.error = error;
    lk.unlock();
    finish(r, lk);
}

void capture_manager::impl::finish(record* r, std::unique_lock<std::mutex>& lk) {
    capture_info snapshot;
    {
        std::lock_guard g(mu);
        snapshot = r->info;
    }
    std::string error = snapshot.error;
    if (error.empty()) {
        // Interface statistics, as dpdk-dumpcap ends its files: what the
        // workers saw and what they could not copy.
        const std::string comment = fmt::format(
            "stentor capture {} ({}): matched {}, sampled out {}, copied {}, dropped {} (ring full {}, no mbuf {}), "
            "written {}, discarded past the bounds {}",
            snapshot.id, snapshot.stop_reason, snapshot.matched, snapshot.sampled_out, snapshot.copied,
            snapshot.ring_full + snapshot.no_mbuf, snapshot.ring_full, snapshot.no_mbuf, snapshot.packets,
            snapshot.discarded);
        const bool one_port = r->ethdevs.size() == 1;
        for (const uint16_t e : r->ethdevs)
            if (rte_pcapng_write_stats(r->pc, e, comment.c_str(), r->start_ns, realtime_ns(),
                                       one_port ? snapshot.matched : UINT64_MAX,
                                       one_port ? snapshot.ring_full + snapshot.no_mbuf : UINT64_MAX) < 0)
                error = fmt::format("writing {}: {}", r->part, std::strerror(errno));
        if (error.empty() && ::fdatasync(r->fd) != 0) error = fmt::format("syncing {}: {}", r->part, std::strerror(errno));
    }
    struct stat sb{};
    const uint64_t size = ::fstat(r->fd, &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
    rte_pcapng_close(r->pc);   // closes the fd
    r->pc = nullptr;
    r->fd = -1;
    // The rename and the scan after it under dir_mu, without mu (see
    // dir_mu); `finished` is set, under mu, only once both are done, so
    // stop() and wait_idle() return with the directory as keep wants it.
    std::lock_guard dl(dir_mu);
    if (error.empty()) {
        // Never over a file of that name (an earlier run's, a stranger's).
        int rc = ::renameat2(dirfd, r->part.c_str(), dirfd, r->name.c_str(), RENAME_NOREPLACE);
        if (rc != 0 && errno == EINVAL) {
            // A file system without RENAME_NOREPLACE: check, then rename.
            struct stat there{};
            rc = ::fstatat(dirfd, r->name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0
                     ? (errno = EEXIST, -1)
                     : ::renameat(dirfd, r->part.c_str(), dirfd, r->name.c_str());
        }
        if (rc != 0)
            error = fmt::format("renaming {} to {}: {}", r->part, r->name, std::strerror(errno));
        else
            ::fsync(dirfd);
    }
    if (!error.empty()) count(&capture_stats::write_errors);
    const pruned found = prune_dir();
    lk.lock();
    apply_locked(found);
    capture_info& ci = r->info;
    ci.file_bytes = size;
    if (error.empty()) {
        ci.state = "done";
        ci.file = cfg.dir + "/" + r->name;
    } else {
        ci.state = "failed";
        ci.error = error;
    }
    r->finished = true;
    lk.unlock();
    cv.notify_all();
}

capture_info capture_manager::stop(uint32_t id) {
    auto& im = *_impl;
    std::unique_lock lk(im.mu);
    record* r = im.find(id);
    if (r == nullptr) refuse(error_code::not_found, fmt::format("no capture {}", id));
    if (!r->finished) {
        im.request_stop_locked(*r, "stopped");
        im.wait_finished(lk, *r);
    }
    return r->info;
}

capture_info capture_manager::remove(uint32_t id) {
    stop(id);   // a running capture ends first (under mu only)
    auto& im = *_impl;
    // The unlink is directory work: under dir_mu, without mu (an unlink
    // waits for the directory as a scan does).
    std::unique_lock dl(im.dir_mu);
    std::unique_lock lk(im.mu);
    record* r = im.find(id);
    if (r == nullptr) refuse(error_code::not_found, fmt::format("no capture {}", id));   // aged out meanwhile
    if (r->info.file_removed) return r->info;
    const std::string name = r->info.state == "done" ? r->name : r->part;
    lk.unlock();
    const int rc = ::unlinkat(im.dirfd, name.c_str(), 0);
    const int err = errno;
    lk.lock();   // `r` is still listed: records leave the list under dir_mu only (apply_locked)
    if (rc != 0 && err != ENOENT)
        refuse(error_code::capacity, fmt::format("capture {}: cannot remove {}: {}", id, name, std::strerror(err)));
    r->info.file_removed = true;
    return r->info;
}

std::optional<capture_info> capture_manager::info(uint32_t id) const {
    std::lock_guard g(_impl->mu);
    const record* r = _impl->find(id);
    if (r == nullptr) return std::nullopt;
    capture_info ci = r->info;
    if (!r->finished) {
        // Live figures of a running capture.
        const dp::capture_lcore_stats s = sum(_impl->lcores, _impl->nb_workers);
        ci.matched = s.matched - r->base.matched;
        ci.sampled_out = s.sampled_out - r->base.sampled_out;
        ci.copied = s.copied - r->base.copied;
        ci.ring_full = s.ring_full - r->base.ring_full;
        ci.no_mbuf = s.no_mbuf - r->base.no_mbuf;
    }
    return ci;
}

std::vector<capture_info> capture_manager::list() const {
    std::vector<uint32_t> ids;
    {
        std::lock_guard g(_impl->mu);
        for (const auto& r : _impl->recs) ids.push_back(r->info.id);
    }
    std::vector<capture_info> out;
    for (const uint32_t id : ids)
        if (auto ci = info(id)) out.push_back(*ci);
    return out;
}

std::optional<std::string> capture_manager::finished_file(uint32_t id, std::string* why) const {
    std::lock_guard g(_impl->mu);
    const record* r = _impl->find(id);
    const auto no = [&](const std::string& w) -> std::optional<std::string> {
        if (why != nullptr) *why = w;
        return std::nullopt;
    };
    if (r == nullptr) return no(fmt::format("no capture {}", id));
    if (!r->finished) return no(fmt::format("capture {} is still running: stop it or wait for its bounds", id));
    if (r->info.state != "done") return no(fmt::format("capture {} failed: {}", id, r->info.error));
    if (r->info.file_removed) return no(fmt::format("capture {}'s file was removed", id));
    return r->info.file;
}

void capture_manager::stop_all(const std::string& reason) {
    auto& im = *_impl;
    std::unique_lock lk(im.mu);
    record* r = im.running;
    if (r == nullptr) return;
    if (!r->finished) {
        im.request_stop_locked(*r, reason);
        im.wait_finished(lk, *r);
    }
    impl::reap(*r);
    im.running = nullptr;
}

void capture_manager::session_ended(uint32_t session) {
    auto& im = *_impl;
    std::lock_guard g(im.mu);
    record* r = im.running;
    if (r != nullptr && !r->finished && r->info.kind == capture_kind::session && r->info.session == session)
        im.request_stop_locked(*r, "session_ended");
}

void capture_manager::wait_idle() {
    auto& im = *_impl;
    std::unique_lock lk(im.mu);
    if (im.running != nullptr) im.wait_finished(lk, *im.running);
}

void capture_manager::hold_writer(bool held) { _impl->held.store(held, std::memory_order_relaxed); }

capture_stats capture_manager::stats() const { return _impl->st.snapshot(); }

dp::capture_lcore_stats capture_manager::worker_stats() const { return sum(_impl->lcores, _impl->nb_workers); }

void capture_manager::append_counters(counter_list& out, bool include_zero) const {
    const dp::capture_lcore_stats w = worker_stats();
    append_stats(out, "capture", w, include_zero);
    append_stats(out, "capture", stats(), include_zero);
}

}  // namespace stentor::control
