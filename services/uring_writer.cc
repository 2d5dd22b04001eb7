#include "uring_writer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <spdlog/spdlog.h>

namespace stentor::svc {

namespace {

// One write hands at most this much of a file's queue to the kernel; the
// rest goes with the next (a file's queue is about a second of pages).
constexpr size_t max_write = size_t{1} << 20;

}  // namespace

struct uring_writer::request {
    uring_file* f;
    op kind;
    std::string buf;              // write: the bytes, from f->written on
};

uring_writer::uring_writer(unsigned queue_depth, error_fn on_error) : _on_error(std::move(on_error)) {
    const int e = io_uring_queue_init(std::max(8u, queue_depth), &_ring, 0);
    if (e < 0) {
        _error = std::string("io_uring_queue_init: ") + std::strerror(-e);
    } else {
        _ok = true;
    }
}

uring_writer::~uring_writer() {
    if (!_ok) return;
    // Requests still in flight (a recording given up on a dead disk) own
    // their buffers: wait for what completes soon, then let them go.
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 100000000};
    if (_inflight > 0) io_uring_submit(&_ring);
    while (_inflight > 0 && io_uring_wait_cqe_timeout(&_ring, &cqe, &ts) == 0 && cqe != nullptr) {
        delete static_cast<request*>(io_uring_cqe_get_data(cqe));
        io_uring_cqe_seen(&_ring, cqe);
        --_inflight;
    }
    io_uring_queue_exit(&_ring);
}

io_uring_sqe* uring_writer::sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&_ring);
    if (s == nullptr) {
        io_uring_submit(&_ring);
        s = io_uring_get_sqe(&_ring);
    }
    return s;
}

bool uring_writer::pump(uring_file& f) {
    if (!_ok || f.fd < 0 || f.write_inflight || f.queue.empty()) return true;
    io_uring_sqe* s = sqe();
    if (s == nullptr) return false;
    auto* req = new request{&f, op::write, {}};
    if (f.queue.size() <= max_write) {
        req->buf.swap(f.queue);
    } else {
        req->buf.assign(f.queue, 0, max_write);
        f.queue.erase(0, max_write);
    }
    io_uring_prep_write(s, f.fd, req->buf.data(), static_cast<unsigned>(req->buf.size()), f.written);
    io_uring_sqe_set_data(s, req);
    f.write_inflight = true;
    ++_inflight;
    return true;
}

bool uring_writer::sync(uring_file& f) {
    if (!_ok || f.fd < 0 || f.write_inflight || f.sync_inflight || f.written <= f.synced) return true;
    io_uring_sqe* s = sqe();
    if (s == nullptr) return false;
    io_uring_prep_fsync(s, f.fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data(s, new request{&f, op::sync, {}});
    f.sync_inflight = true;
    ++_inflight;
    f.sync_target = f.written;
    return true;
}

void uring_writer::submit() {
    if (_ok) io_uring_submit(&_ring);
}

void uring_writer::complete(io_uring_cqe* cqe) {
    auto* req = static_cast<request*>(io_uring_cqe_get_data(cqe));
    const int res = cqe->res;
    io_uring_cqe_seen(&_ring, cqe);
    if (req == nullptr) return;
    --_inflight;
    uring_file& f = *req->f;
    if (req->kind == op::sync) {
        f.sync_inflight = false;
        delete req;
        if (res < 0) _on_error(f, op::sync, -res);
        else {
            f.synced = std::max(f.synced, f.sync_target);
            ++_syncs;
        }
        return;
    }
    f.write_inflight = false;
    const size_t done = res > 0 ? std::min(static_cast<size_t>(res), req->buf.size()) : 0;
    f.written += done;
    _bytes += done;
    if (done < req->buf.size()) {
        // Short or failed: what is left goes first next time, from f.written,
        // so the file never has a hole (the next attempt reports the real
        // error if the disk is full).
        req->buf.erase(0, done);
        req->buf += f.queue;
        f.queue.swap(req->buf);
    }
    delete req;
    if (res <= 0) {
        f.error = res < 0 ? -res : EIO;
        _on_error(f, op::write, f.error);
    } else {
        f.error = 0;
    }
}

unsigned uring_writer::reap() {
    if (!_ok) return 0;
    unsigned n = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&_ring, &cqe) == 0 && cqe != nullptr) {
        complete(cqe);
        ++n;
    }
    return n;
}

bool uring_writer::wait_ready(uint64_t timeout_ns) {
    if (!_ok) return false;
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{static_cast<long long>(timeout_ns / 1000000000ull),
                         static_cast<long long>(timeout_ns % 1000000000ull)};
    return io_uring_wait_cqe_timeout(&_ring, &cqe, &ts) == 0 && cqe != nullptr;
}

// ---- blocking calls

bool create_part(const std::string& dir, const std::string& base, const std::string& ext, part_file& out, int& err,
                 std::string& why) {
    // Recordings are the sessions' audio, decrypted when the session was
    // SRTP: readable by the owner and the group the operator gives them
    // (files 0640; a directory we create 0750, one that exists keeps the
    // operator's mode), as captures and the journal are.
    std::error_code ec;
    if (std::filesystem::create_directories(dir, ec))
        std::filesystem::permissions(dir,
                                     std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                         std::filesystem::perms::group_exec,
                                     ec);   // an error shows in open() below
    for (int k = 0; k < 100; ++k) {
        std::string name = dir + "/" + base;
        if (k > 0) {
            name += '-';
            name += std::to_string(k);
        }
        name += ext;
        struct stat st{};
        if (::stat(name.c_str(), &st) == 0) continue;   // a finished file of that name
        const std::string part = name + ".part";
        // Read too: a file the disk filled up is cut back to its last whole page.
        const int fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            err = errno;
            why = "open " + part + ": " + std::strerror(err);
            return false;
        }
        // Cannot fail on a new file nobody else knows yet, except where the
        // file system has no locks at all; then the scan at start-up cannot
        // tell this file from one cut off, and says so in its log.
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
            spdlog::warn("stentor: recorder: flock {}: {}", part, std::strerror(errno));
        out.fd = fd;
        out.path = part;
        out.final_path = name;
        return true;
    }
    err = EEXIST;
    why = "open " + dir + "/" + base + "-99" + ext + ".part: 100 names taken";
    return false;
}

bool rename_noreplace(const std::string& from, const std::string& to, std::string& now_path, std::string& why) {
    const size_t dot = to.rfind('.');
    const size_t slash = to.rfind('/');
    const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
    const std::string stem = has_ext ? to.substr(0, dot) : to;
    const std::string ext = has_ext ? to.substr(dot) : "";
    for (int k = 0; k < 100; ++k) {
        std::string name = to;
        if (k > 0) {
            name = stem;
            name += '-';
            name += std::to_string(k);
            name += ext;
        }
        if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, name.c_str(), RENAME_NOREPLACE) == 0) {
            now_path = name;
            return true;
        }
        if (errno == EEXIST) continue;
        if (errno == EINVAL) {
            // A file system without RENAME_NOREPLACE: check, then rename.
            struct stat st{};
            if (::stat(name.c_str(), &st) == 0) continue;
            if (::rename(from.c_str(), name.c_str()) == 0) {
                now_path = name;
                return true;
            }
        }
        why = "rename " + from + " -> " + name + ": " + std::strerror(errno);
        now_path = from;
        return false;
    }
    why = "rename " + from + ": 100 names taken";
    now_path = from;
    return false;
}

bool finish_part(int fd, bool sync, const std::string& part, const std::string& final_path, std::string& now_path,
                 std::string& why) {
    now_path = part;
    bool ok = true;
    if (fd >= 0) {
        if (sync && ::fsync(fd) != 0) {
            why = "fsync " + part + ": " + std::strerror(errno);
            ok = false;
        }
        ::close(fd);
    }
    if (!ok) return false;
    return rename_noreplace(part, final_path, now_path, why);
}

bool sync_dir(const std::string& dir, std::string& why) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        why = "open " + dir + ": " + std::strerror(errno);
        return false;
    }
    const bool ok = ::fsync(fd) == 0;
    if (!ok) why = "fsync " + dir + ": " + std::strerror(errno);
    ::close(fd);
    return ok;
}

}  // namespace stentor::svc
