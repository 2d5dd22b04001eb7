#include "log.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <rte_log.h>
#include <spdlog/sinks/base_sink.h>

namespace stentor::log {

namespace {

// RFC 5424 severities, as journald reads a "<N>" prefix.
int syslog_priority(spdlog::level::level_enum l) {
    switch (l) {
    case spdlog::level::critical: return 2;
    case spdlog::level::err: return 3;
    case spdlog::level::warn: return 4;
    case spdlog::level::info: return 6;
    default: return 7;
    }
}

// One FILE* (stderr or an appended file) that can be swapped for a freshly
// opened one under the sink's own mutex, so no line is lost or torn by a
// reopen. spdlog's basic_file_sink cannot reopen a path.
class stream_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    stream_sink(std::string path, bool journal) : _path(std::move(path)), _journal(journal) {
        if (_path.empty()) {
            _f = stderr;
        } else {
            _f = std::fopen(_path.c_str(), "a");
            if (_f == nullptr)
                throw std::runtime_error("--log-file " + _path + ": cannot open: " + std::strerror(errno));
        }
        set_pattern(_journal ? "%v" : "%Y-%m-%dT%H:%M:%S.%e%z %l %v");
    }
    ~stream_sink() override {
        if (_f != nullptr && _f != stderr) std::fclose(_f);
    }
    stream_sink(const stream_sink&) = delete;
    stream_sink& operator=(const stream_sink&) = delete;

    bool reopen(std::string* why) {
        if (_path.empty()) return true;
        std::FILE* nf = std::fopen(_path.c_str(), "a");
        if (nf == nullptr) {
            if (why != nullptr) *why = _path + ": cannot open: " + std::strerror(errno);
            return false;
        }
        std::lock_guard g(mutex_);
        std::fclose(_f);
        _f = nf;
        return true;
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t buf;
        if (_journal) {
            const char prio[4] = {'<', static_cast<char>('0' + syslog_priority(msg.level)), '>', '\0'};
            buf.append(prio, prio + 3);
        }
        formatter_->format(msg, buf);
        std::fwrite(buf.data(), 1, buf.size(), _f);
        // Operators tail the file and tests grep it: every line is out at once
        // (a few lines a second at most; nothing here is per packet).
        std::fflush(_f);
    }
    void flush_() override { std::fflush(_f); }

private:
    std::string _path;
    bool _journal;
    std::FILE* _f = nullptr;
};

std::mutex g_mu;
std::shared_ptr<stream_sink> g_sink;

std::mutex g_dpdk_mu;
std::string g_dpdk_last_error;

spdlog::level::level_enum level_of_rte(uint32_t l) {
    if (l <= RTE_LOG_CRIT) return spdlog::level::critical;
    if (l == RTE_LOG_ERR) return spdlog::level::err;
    if (l == RTE_LOG_WARNING) return spdlog::level::warn;
    if (l <= RTE_LOG_INFO) return spdlog::level::info;
    return spdlog::level::debug;
}

// fopencookie write: rte_vlog formats one message and flushes, so `buf`
// holds whole lines (one message may span several).
ssize_t dpdk_write(void*, const char* buf, size_t size) {
    const int rl = rte_log_cur_msg_loglevel();
    const auto lvl = level_of_rte(rl < 0 ? RTE_LOG_INFO : static_cast<uint32_t>(rl));
    std::string_view s(buf, size);
    while (!s.empty()) {
        const auto nl = s.find('\n');
        auto line = s.substr(0, nl);
        s = nl == std::string_view::npos ? std::string_view{} : s.substr(nl + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (line.empty()) continue;
        spdlog::log(lvl, "dpdk: {}", line);
        if (lvl >= spdlog::level::err) {
            std::lock_guard g(g_dpdk_mu);
            g_dpdk_last_error.assign(line);
        }
    }
    return static_cast<ssize_t>(size);
}

}  // namespace

bool parse_level(std::string_view name, spdlog::level::level_enum& out) {
    static constexpr std::pair<std::string_view, spdlog::level::level_enum> levels[] = {
        {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},   {"info", spdlog::level::info},
        {"warning", spdlog::level::warn}, {"error", spdlog::level::err}, {"critical", spdlog::level::critical}};
    for (const auto& [n, l] : levels)
        if (n == name) {
            out = l;
            return true;
        }
    return false;
}

bool fd_is_journal(int fd) {
    const char* js = std::getenv("JOURNAL_STREAM");
    if (js == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st{};
    if (fstat(fd, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

void init(const options& o) {
    spdlog::level::level_enum lvl = spdlog::level::info;
    if (!parse_level(o.level, lvl))
        throw std::runtime_error("--log-level " + o.level +
                                 ": not a level (trace, debug, info, warning, error, critical)");
    bool journal = false;
    if (o.file.empty()) {
        journal = o.journal == options::journal_mode::on ||
                  (o.journal == options::journal_mode::detect && fd_is_journal(2));
    }
    auto sink = std::make_shared<stream_sink>(o.file, journal);
    auto logger = std::make_shared<spdlog::logger>("stentord", sink);
    logger->set_level(lvl);
    logger->flush_on(spdlog::level::trace);
    std::lock_guard g(g_mu);
    spdlog::set_default_logger(logger);
    g_sink = std::move(sink);
}

bool reopen(std::string* why) {
    std::lock_guard g(g_mu);
    return g_sink == nullptr || g_sink->reopen(why);
}

void attach_dpdk() {
    static cookie_io_functions_t fns{nullptr, dpdk_write, nullptr, nullptr};
    static std::FILE* f = fopencookie(nullptr, "w", fns);
    if (f != nullptr) rte_openlog_stream(f);
}

std::string last_dpdk_error() {
    std::lock_guard g(g_dpdk_mu);
    return g_dpdk_last_error;
}

}  // namespace stentor::log
