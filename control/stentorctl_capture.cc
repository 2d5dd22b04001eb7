#include "stentorctl_capture.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace stentorctl {

namespace {

using nlohmann::json;

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted.store(true); }

// printf into a std::string (the messages below).
[[gnu::format(printf, 1, 2)]] std::string strf(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    const int n = std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return n < 0 ? std::string(f) : std::string(buf, std::min(static_cast<size_t>(n), sizeof buf - 1));
}

// A fetch into FILE that SIGINT, SIGTERM or SIGHUP ends: the handler removes
// the temporary (unlinkat and write are async-signal-safe), says so and dies
// of the signal, so FILE is left as it was and nothing half-written stays
// beside it. The temporary has no name until the body is whole (O_TMPFILE),
// so SIGKILL leaves nothing either, except in the instant between its link
// and its rename, or on a file system without O_TMPFILE (a named
// temporary from the start: a dot-file named after FILE stays).
volatile std::sig_atomic_t g_tmp_dirfd = -1;
char g_tmp_name[NAME_MAX + 1];
char g_tmp_note[PATH_MAX + 64];
size_t g_tmp_note_len = 0;
constexpr int fetch_signals[] = {SIGINT, SIGTERM, SIGHUP};

void on_fetch_signal(int sig) {
    const int dirfd = g_tmp_dirfd;
    if (dirfd >= 0) {
        ::unlinkat(dirfd, g_tmp_name, 0);
        [[maybe_unused]] const ssize_t n = ::write(2, g_tmp_note, g_tmp_note_len);
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

std::string random_suffix() {
    static constexpr char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[8];
    if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
        const uint64_t x = static_cast<uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ull ^
                           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        std::memcpy(r, &x, sizeof r);
    }
    std::string s;
    for (const unsigned char b : r) s.push_back(abc[b % (sizeof abc - 1)]);
    return s;
}

// -w FILE is either left as it was or replaced by the whole capture; never
// truncated, half-written, or written through a link (docs/capture.md,
// "Where -w writes"):
// - the bytes go to an unnamed file in FILE's directory (O_TMPFILE), linked
//   at commit as a temporary ".<FILE's name>.<8 random characters>"; a file
//   system without O_TMPFILE gets that temporary from the start,
//   created O_CREAT | O_EXCL | O_NOFOLLOW (whatever a
//   stranger put at that name, a link included, is refused, never followed),
//   mode 0600: a capture may hold join tokens (STUN usernames) and unencrypted
//   audio, the relay's own copy has no bits for others either, and dumpcap
//   makes its files 0600 for the same reason;
// - FILE's directory is opened once and every step is taken relative to it,
//   so a directory renamed or swapped for a link meanwhile cannot send the
//   rename elsewhere;
// - once the body is whole and its size is the one the relay announced, the
//   temporary is fsynced and renamed over FILE (a link at FILE is replaced,
//   its target never written), then the directory is fsynced;
// - any failure, and SIGINT, SIGTERM or SIGHUP, removes the temporary.
// "-" is standard output, written as the bytes come.
class out_file {
public:
    explicit out_file(std::string out) : _out(std::move(out)) {}
    ~out_file() {
        discard();
        if (_dirfd >= 0) ::close(_dirfd);
    }
    out_file(const out_file&) = delete;
    out_file& operator=(const out_file&) = delete;

    bool to_stdout() const { return _out == "-"; }

    // When the relay has begun to answer with the file. False after
    // printing why.
    bool open() {
        if (to_stdout()) {
            _fd = 1;
            return true;
        }
        const size_t slash = _out.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : _out.substr(0, slash);
        _base = slash == std::string::npos ? _out : _out.substr(slash + 1);
        if (_base.empty() || _base == "." || _base == "..") return fail("names a directory, not a file");
        _dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (_dirfd < 0) return fail(strf("%s: %s", dir.c_str(), std::strerror(errno)));
        struct stat st{};
        if (::fstatat(_dirfd, _base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
            return fail("is a directory");
        // First a file with no name (O_TMPFILE): whatever ends stentorctl,
        // SIGKILL included, leaves nothing behind; it gets a name only at
        // commit. A file system without O_TMPFILE gets the named temporary.
        _fd = ::openat(_dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (_fd >= 0) {
            arm();   // nothing to remove, but an interrupt still says FILE was left as it was
            return true;
        }
        const int err = create_named(O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC);
        if (_fd < 0) return fail(strf("cannot create a temporary file in %s: %s", dir.c_str(), std::strerror(err)));
        return true;
    }

    bool write(const char* data, size_t len) {
        while (len > 0) {
            const ssize_t n = ::write(_fd, data, len);
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail(std::strerror(errno));
            }
            data += n;
            len -= static_cast<size_t>(n);
        }
        return true;
    }

    // The body is whole and of the announced size: FILE becomes it.
    bool commit() {
        if (to_stdout()) return true;
        if (::fsync(_fd) != 0) return fail(strf("fsync: %s", std::strerror(errno)));
        if (_tmp.empty()) {
            // The unnamed file gets a temporary's name (a link cannot
            // replace FILE), then is renamed over FILE as a named one is:
            // only between the two can a SIGKILL leave it behind. Through
            // /proc/self/fd (the documented way), else AT_EMPTY_PATH
            // (root's CAP_DAC_READ_SEARCH).
            const int err = create_named(0);
            if (_tmp.empty()) return fail(strf("cannot give the file a name in its directory: %s", std::strerror(err)));
        }
        const int fd = _fd;
        _fd = -1;
        if (::close(fd) != 0) return fail(strf("close: %s", std::strerror(errno)));
        if (::renameat(_dirfd, _tmp.c_str(), _dirfd, _base.c_str()) != 0)
            return fail(strf("cannot rename %s over it: %s", _tmp.c_str(), std::strerror(errno)));
        disarm();
        _tmp.clear();
        // The rename is done: a directory whose file system cannot fsync it
        // (EINVAL) is no reason to report the file missing.
        if (::fsync(_dirfd) != 0 && errno != EINVAL)
            std::fprintf(stderr, "stentorctl: -w %s: fsync of its directory: %s\n", _out.c_str(), std::strerror(errno));
        return true;
    }

    // Removes the temporary (if any). FILE is as it was.
    void discard() {
        if (_fd > 1) ::close(_fd);
        _fd = -1;
        if (!_tmp.empty()) {
            ::unlinkat(_dirfd, _tmp.c_str(), 0);
            _tmp.clear();
        }
        disarm();
    }

private:
    // A temporary named ".<FILE's name>.<8 random characters>" in FILE's
    // directory, armed for the signal handler: created with `flags`
    // (O_EXCL: never an existing name, never through a link) or, with
    // flags 0, the unnamed _fd linked there (linkat refuses an existing
    // name alike). The fetch signals are blocked meanwhile: none comes
    // between the name and the handler that would remove it. Returns errno
    // of the last try; _tmp is empty when it failed.
    int create_named(int flags) {
        sigset_t block, old;
        sigemptyset(&block);
        for (const int s : fetch_signals) sigaddset(&block, s);
        ::pthread_sigmask(SIG_BLOCK, &block, &old);
        const int err = try_names(flags);
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return err;
    }

    int try_names(int flags) {
        int err = 0;
        for (int tries = 0; tries < 16; ++tries) {
            _tmp = "." + _base.substr(0, 200) + "." + random_suffix();
            bool ok;
            if (flags != 0) {
                _fd = ::openat(_dirfd, _tmp.c_str(), flags, 0600);
                ok = _fd >= 0;
            } else {
                const std::string proc = "/proc/self/fd/" + std::to_string(_fd);
                ok = ::linkat(AT_FDCWD, proc.c_str(), _dirfd, _tmp.c_str(), AT_SYMLINK_FOLLOW) == 0;
                if (!ok && errno != EEXIST) ok = ::linkat(_fd, "", _dirfd, _tmp.c_str(), AT_EMPTY_PATH) == 0;
            }
            err = errno;
            if (ok) {
                disarm();
                arm();
                return 0;
            }
            if (err != EEXIST) break;
        }
        _tmp.clear();
        return err;
    }

    bool fail(const std::string& why) {
        std::fprintf(stderr, "stentorctl: -w %s: %s\n", _out.c_str(), why.c_str());
        return false;
    }

    void arm() {
        std::snprintf(g_tmp_name, sizeof g_tmp_name, "%s", _tmp.c_str());
        const int n = std::snprintf(g_tmp_note, sizeof g_tmp_note,
                                    "stentorctl: interrupted: -w %s left as it was\n", _out.c_str());
        g_tmp_note_len = n < 0 ? 0 : std::min(static_cast<size_t>(n), sizeof g_tmp_note - 1);
        std::atomic_signal_fence(std::memory_order_seq_cst);
        g_tmp_dirfd = _dirfd;
        struct sigaction sa{};
        sa.sa_handler = on_fetch_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < std::size(fetch_signals); ++i) ::sigaction(fetch_signals[i], &sa, &_old[i]);
        _armed = true;
    }

    void disarm() {
        if (!_armed) return;
        g_tmp_dirfd = -1;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        for (size_t i = 0; i < std::size(fetch_signals); ++i) ::sigaction(fetch_signals[i], &_old[i], nullptr);
        _armed = false;
    }

    std::string _out;
    std::string _base;       // FILE's name in its directory
    std::string _tmp;        // the temporary's, while it exists
    int _dirfd = -1;
    int _fd = -1;
    bool _armed = false;
    struct sigaction _old[std::size(fetch_signals)]{};
};

struct client {
    std::string base;     // scheme://host:port
    std::string token;
    std::string cacert;   // HTTPS: the relay's CA (empty: the system's)

    httplib::Client make() const {
        httplib::Client c(base);
        c.set_connection_timeout(5);
        c.set_read_timeout(60);
        c.set_bearer_token_auth(token);
        if (base.rfind("https://", 0) == 0) {
            c.enable_server_certificate_verification(true);
            if (!cacert.empty()) c.set_ca_cert_path(cacert);
        }
        return c;
    }

    // The answer's JSON, or nullopt after printing why (unreachable, not 2xx).
    std::optional<json> call(const std::string& method, const std::string& path, const json* body = nullptr) const {
        httplib::Client c = make();
        const std::string b = body != nullptr ? body->dump() : "";
        httplib::Result r = method == "GET"    ? c.Get(path)
                            : method == "POST" ? c.Post(path, b, "application/json")
                                               : c.Delete(path);
        if (!r) {
            std::fprintf(stderr, "stentorctl: cannot reach the API at %s (%s)\n", base.c_str(),
                         httplib::to_string(r.error()).c_str());
            return std::nullopt;
        }
        const json j = json::parse(r->body, nullptr, false);
        if (r->status / 100 != 2) {
            std::string reason = r->body;
            if (!j.is_discarded() && j.is_object())
                reason = j.value("error", std::string("?")) + ": " + j.value("reason", std::string(""));
            std::fprintf(stderr, "stentorctl: HTTP %d %s\n", r->status, reason.c_str());
            return std::nullopt;
        }
        if (j.is_discarded()) {
            std::fprintf(stderr, "stentorctl: the API answered something that is not JSON\n");
            return std::nullopt;
        }
        return j;
    }

    // GET .../file into `out` ("-": standard output, as it comes; else
    // through an out_file). `expect`: the file's size as the capture's
    // record says (file_bytes); 0 when not known (a finished capture's
    // file is never empty: it has its section header). False after
    // printing why.
    bool fetch(uint32_t id, const std::string& out, uint64_t expect, uint64_t* written) const {
        httplib::Client c = make();
        out_file file(out);
        int status = 0;
        std::string error_body;
        std::optional<uint64_t> announced;   // Content-Length
        bool chunked = false, io_failed = false;
        *written = 0;
        const auto res = c.Get(
            "/api/v1/captures/" + std::to_string(id) + "/file",
            [&](const httplib::Response& r) {
                status = r.status;
                if (r.status != 200) return true;   // its body is the reason
                if (r.has_header("Content-Length")) {
                    const std::string v = r.get_header_value("Content-Length");
                    char* end = nullptr;
                    errno = 0;
                    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
                    if (!v.empty() && end != nullptr && *end == '\0' && errno == 0) announced = n;
                }
                chunked = r.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
                if (!file.open()) {
                    io_failed = true;
                    return false;
                }
                return true;
            },
            [&](const char* data, size_t len) {
                if (status != 200) {
                    error_body.append(data, len);
                    return true;
                }
                if (!file.write(data, len)) {
                    io_failed = true;
                    return false;
                }
                *written += len;
                return true;
            });
        const auto failed = [&](const std::string& why) {
            if (!why.empty()) std::fprintf(stderr, "stentorctl: %s\n", why.c_str());
            if (!file.to_stdout() && status == 200)
                std::fprintf(stderr,
                             "stentorctl: -w %s left as it was; the relay keeps capture %u: stentorctl capture fetch "
                             "%u -w FILE\n",
                             out.c_str(), id, id);
            file.discard();
            return false;
        };
        if (io_failed) return failed("");
        if (!res)
            return failed(strf("cannot fetch capture %u: %s (%llu bytes received)", id,
                              httplib::to_string(res.error()).c_str(), static_cast<unsigned long long>(*written)));
        if (status != 200) {
            const json e = json::parse(error_body, nullptr, false);
            const std::string why = !e.is_discarded() && e.is_object()
                                        ? e.value("error", std::string("?")) + ": " + e.value("reason", std::string(""))
                                        : error_body;
            return failed(strf("HTTP %d %s", status, why.c_str()));
        }
        // A body without a length and not chunked ends when the connection
        // does, for whatever reason: nothing would tell a cut one apart.
        if (!announced && !chunked)
            return failed(strf("capture %u: the relay did not say the file's size (no Content-Length)", id));
        if (announced && *announced != *written)
            return failed(strf("capture %u: %llu bytes received, the relay announced %llu", id,
                              static_cast<unsigned long long>(*written), static_cast<unsigned long long>(*announced)));
        if (expect != 0 && expect != *written)
            return failed(strf("capture %u: %llu bytes received, its record says %llu (file_bytes)", id,
                              static_cast<unsigned long long>(*written), static_cast<unsigned long long>(expect)));
        if (!file.commit()) return failed("");
        return true;
    }
};

std::string size_str(uint64_t b) {
    char s[32];
    if (b >= (uint64_t{1} << 20)) std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(b) / (1 << 20));
    else if (b >= 1024) std::snprintf(s, sizeof s, "%.1f KiB", static_cast<double>(b) / 1024);
    else std::snprintf(s, sizeof s, "%llu B", static_cast<unsigned long long>(b));
    return s;
}

uint64_t u(const json& j, const char* k) { return j.contains(k) && j[k].is_number_unsigned() ? j[k].get<uint64_t>() : 0; }
std::string str(const json& j, const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }

void print_summary(const json& c) {
    const std::string reason = str(c, "stop_reason");
    std::fprintf(stderr, "capture %llu %s%s: %llu packets, %s written in %.1f s; matched %llu, sampled out %llu, "
                         "not copied %llu (ring full %llu, no mbuf %llu), past the bounds %llu\n",
                 static_cast<unsigned long long>(u(c, "id")), str(c, "state").c_str(),
                 reason.empty() ? "" : (" (" + reason + ")").c_str(), static_cast<unsigned long long>(u(c, "packets")),
                 size_str(u(c, "bytes")).c_str(), c.value("elapsed_s", 0.0),
                 static_cast<unsigned long long>(u(c, "matched")), static_cast<unsigned long long>(u(c, "sampled_out")),
                 static_cast<unsigned long long>(u(c, "ring_full") + u(c, "no_mbuf")),
                 static_cast<unsigned long long>(u(c, "ring_full")), static_cast<unsigned long long>(u(c, "no_mbuf")),
                 static_cast<unsigned long long>(u(c, "discarded")));
    if (!str(c, "error").empty()) std::fprintf(stderr, "capture %llu failed: %s\n",
                                               static_cast<unsigned long long>(u(c, "id")), str(c, "error").c_str());
}

void print_table(const json& list) {
    std::printf("%-5s %-9s %-14s %-34s %9s %10s  %s\n", "ID", "STATE", "REASON", "WHAT", "PACKETS", "BYTES", "FILE");
    for (const auto& c : list)
        std::printf("%-5llu %-9s %-14s %-34s %9llu %10s  %s%s\n", static_cast<unsigned long long>(u(c, "id")),
                    str(c, "state").c_str(), str(c, "stop_reason").c_str(), str(c, "what").c_str(),
                    static_cast<unsigned long long>(u(c, "packets")), size_str(u(c, "bytes")).c_str(),
                    str(c, "file").c_str(), c.value("file_removed", false) ? " (removed)" : "");
}

std::string base_name(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

void add_capture_command(CLI::App& app, capture_args& a) {
    a.cmd = app.add_subcommand(
        "capture",
        "capture packets into pcapng: a port's RX or TX (--rx/--tx PORT) or a session's ingress (--session ID), "
        "bounded by the relay; waits for it and writes the file (-w); or: capture list | show ID | stop ID | "
        "fetch ID -w FILE | rm ID");
    a.cmd->require_subcommand(0, 1);
    auto* rx = a.cmd->add_option("--rx", a.rx_port, "capture what port PORT receives");
    auto* tx = a.cmd->add_option("--tx", a.tx_port, "capture what the relay hands to port PORT's TX queues");
    auto* ses = a.cmd->add_option("--session", a.session, "capture session ID's ingress (every frame to its UDP port)");
    rx->excludes(tx)->excludes(ses);
    tx->excludes(ses);
    a.count_opt = a.cmd->add_option("-c,--count", a.count, "stop after this many packets (default and most: the relay's capture.max_packets)");
    a.seconds_opt = a.cmd->add_option("--duration", a.seconds, "stop after this many seconds (default and most: capture.max_seconds)");
    a.bytes_opt = a.cmd->add_option("--bytes", a.bytes, "stop before the packets written pass this many bytes (default and most: capture.max_mib)");
    a.snaplen_opt = a.cmd->add_option("-s,--snaplen", a.snaplen, "bytes kept of each frame, 64..65535 (default: whole frames)");
    a.sample_opt = a.cmd->add_option("--sample", a.sample, "keep 1 in N matching packets (default 1: all)");
    a.cmd->add_option("-w,--write", a.out,
                      "write the pcapng here when it is done (\"-\": standard output); default: the relay's file "
                      "name in the current directory. FILE is replaced (mode 0600) only once the whole file arrived; "
                      "a failed or interrupted fetch leaves it as it was");
    a.cmd->add_flag("--detach", a.detach, "start it and print its id; do not wait (then: capture fetch ID -w FILE)");

    a.list = a.cmd->add_subcommand("list", "captures this relay ran since it started, with their state and file");
    a.show = a.cmd->add_subcommand("show", "one capture: state, counters, file");
    a.show->add_option("id", a.id, "capture id")->required();
    a.stop = a.cmd->add_subcommand("stop", "stop a running capture (its file is closed and kept)");
    a.stop->add_option("id", a.id, "capture id")->required();
    a.fetch = a.cmd->add_subcommand("fetch", "download a finished capture's pcapng");
    a.fetch->add_option("id", a.id, "capture id")->required();
    a.fetch->add_option("-w,--write", a.out,
                       "where (\"-\": standard output); FILE is replaced (mode 0600) only once the whole file "
                       "arrived, else left as it was")
        ->required();
    a.rm = a.cmd->add_subcommand("rm", "stop a capture if it runs and remove its file from the relay");
    a.rm->add_option("id", a.id, "capture id")->required();
}

int run_capture(const capture_args& a, const std::string& api_base, const std::string& token, const std::string& cacert,
                bool as_json) {
    const client c{api_base, token, cacert};
    const bool json_out = as_json;
    const std::string base = "/api/v1/captures";
    const auto out_json = [](const json& j) { std::printf("%s\n", j.dump(2).c_str()); };
    const std::string item = base + "/" + std::to_string(a.id);

    if (*a.list) {
        const auto j = c.call("GET", base);
        if (!j) return 1;
        if (json_out) out_json(*j);
        else print_table((*j)["captures"]);
        return 0;
    }
    if (*a.show || *a.stop || *a.rm) {
        const auto j = *a.show ? c.call("GET", item) : *a.stop ? c.call("POST", item + "/stop") : c.call("DELETE", item);
        if (!j) return 1;
        if (json_out) out_json(*j);
        else print_table(json::array({*j}));
        return 0;
    }
    if (*a.fetch) {
        uint64_t n = 0;
        if (!c.fetch(a.id, a.out, 0, &n)) return 1;
        if (a.out != "-") std::fprintf(stderr, "wrote %s (%s)\n", a.out.c_str(), size_str(n).c_str());
        return 0;
    }

    json body = json::object();
    if (!a.rx_port.empty() || !a.tx_port.empty()) {
        body["port"] = a.rx_port.empty() ? a.tx_port : a.rx_port;
        body["direction"] = a.rx_port.empty() ? "tx" : "rx";
    } else if (a.session != 0) {
        body["session"] = a.session;
    } else {
        std::fprintf(stderr, "stentorctl: capture: say what to capture: --rx PORT, --tx PORT or --session ID\n");
        return 2;
    }
    if (a.count_opt->count() > 0) body["max_packets"] = a.count;
    if (a.seconds_opt->count() > 0) body["max_seconds"] = a.seconds;
    if (a.bytes_opt->count() > 0) body["max_bytes"] = a.bytes;
    if (a.snaplen_opt->count() > 0) body["snaplen"] = a.snaplen;
    if (a.sample_opt->count() > 0) body["sample"] = a.sample;
    const auto started = c.call("POST", base, &body);
    if (!started) return 1;
    const uint32_t id = (*started)["id"].get<uint32_t>();
    const auto& b = (*started)["bounds"];
    std::fprintf(stderr, "capture %u: %s, until %llu packets, %llu s or %s; relay file %s\n", id,
                 str(*started, "what").c_str(), static_cast<unsigned long long>(u(b, "max_packets")),
                 static_cast<unsigned long long>(u(b, "max_seconds")), size_str(u(b, "max_bytes")).c_str(),
                 str(*started, "file").c_str());
    if (a.detach) {
        if (json_out) out_json(*started);
        else std::printf("%u\n", id);
        return 0;
    }
    // Ctrl-C stops the capture (and keeps what it has), a second one us.
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    const std::string path = base + "/" + std::to_string(id);
    json last = *started;
    bool stop_sent = false;
    for (;;) {
        if (g_interrupted.load() && !stop_sent) {
            std::fprintf(stderr, "stentorctl: stopping capture %u\n", id);
            stop_sent = true;
            std::signal(SIGINT, SIG_DFL);
            const auto j = c.call("POST", path + "/stop");
            if (!j) return 1;
            last = *j;
        } else {
            std::this_thread::sleep_for(std::chrono::duration<double>(a.poll_s));
            const auto j = c.call("GET", path);
            if (!j) return 1;
            last = *j;
        }
        if (str(last, "state") != "running") break;
    }
    print_summary(last);
    if (json_out) out_json(last);
    if (str(last, "state") != "done") return 1;
    const std::string out = a.out.empty() ? base_name(str(last, "file")) : a.out;
    uint64_t n = 0;
    if (!c.fetch(id, out, u(last, "file_bytes"), &n)) return 1;
    if (out != "-") std::fprintf(stderr, "wrote %s (%s)\n", out.c_str(), size_str(n).c_str());
    return 0;
}

}  // namespace stentorctl
