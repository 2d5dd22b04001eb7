#include "uring_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace stentor::svc {

struct uring_writer::write_req {
    uring_file* f;
    std::string buf;
    size_t done;                  // bytes of buf already written (short writes)
    uint64_t off;
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
    if (_ok) io_uring_queue_exit(&_ring);
}

bool uring_writer::create(uring_file& f, const std::string& dir, const std::string& base, const std::string& ext,
                          std::string& why) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);   // an error shows in open() below
    std::string path = dir + "/" + base + ext;
    int fd = -1;
    for (int k = 1; k < 100; ++k) {
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) break;
        path = dir + "/" + base + "-" + std::to_string(k) + ext;
    }
    f.path = path;
    if (fd < 0) {
        why = "open " + path + ": " + std::strerror(errno);
        return false;
    }
    f.fd = fd;
    return true;
}

bool uring_writer::close(uring_file& f, bool sync, std::string& why) {
    if (f.fd < 0) return true;
    bool ok = true;
    if (sync && ::fsync(f.fd) != 0) {
        why = "fsync " + f.path + ": " + std::strerror(errno);
        ok = false;
    }
    ::close(f.fd);
    f.fd = -1;
    return ok;
}

bool uring_writer::queue(uring_file& f, std::string&& bytes, size_t done, uint64_t off) {
    io_uring_sqe* sqe = io_uring_get_sqe(&_ring);
    if (sqe == nullptr) {
        io_uring_submit(&_ring);
        sqe = io_uring_get_sqe(&_ring);
        if (sqe == nullptr) return false;
    }
    auto* req = new write_req{&f, std::move(bytes), done, off};
    io_uring_prep_write(sqe, f.fd, req->buf.data() + req->done, static_cast<unsigned>(req->buf.size() - req->done),
                        req->off);
    io_uring_sqe_set_data(sqe, req);
    ++f.inflight;
    return true;
}

bool uring_writer::append(uring_file& f, std::string&& bytes) {
    if (!_ok) return false;
    const size_t len = bytes.size();
    if (!queue(f, std::move(bytes), 0, f.offset)) return false;
    f.offset += len;
    return true;
}

void uring_writer::submit() {
    if (_ok) io_uring_submit(&_ring);
}

void uring_writer::complete(io_uring_cqe* cqe) {
    auto* req = static_cast<write_req*>(io_uring_cqe_get_data(cqe));
    const int res = cqe->res;
    io_uring_cqe_seen(&_ring, cqe);
    if (req == nullptr) return;
    uring_file& f = *req->f;
    --f.inflight;
    const size_t want = req->buf.size() - req->done;
    if (res <= 0) {
        const std::string why = res < 0 ? std::strerror(-res) : "wrote 0 bytes";
        delete req;
        _on_error(f, why);
        return;
    }
    f.written += static_cast<uint64_t>(res);
    _bytes += static_cast<uint64_t>(res);
    if (static_cast<size_t>(res) < want) {
        // Short write: the rest goes out again from where it stopped (the
        // next attempt reports the real error if the disk is full).
        const size_t nd = req->done + static_cast<size_t>(res);
        const uint64_t noff = req->off + static_cast<uint64_t>(res);
        std::string b = std::move(req->buf);
        delete req;
        if (!queue(f, std::move(b), nd, noff)) _on_error(f, "submission queue full");
        return;
    }
    delete req;
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

unsigned uring_writer::wait_one(uint64_t timeout_ns) {
    if (!_ok) return 0;
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{static_cast<long long>(timeout_ns / 1000000000ull), static_cast<long long>(timeout_ns % 1000000000ull)};
    if (io_uring_wait_cqe_timeout(&_ring, &cqe, &ts) == 0 && cqe != nullptr) {
        complete(cqe);
        return 1;
    }
    return 0;
}

}  // namespace stentor::svc
