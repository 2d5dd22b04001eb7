// The recorder's file I/O: files created and closed here, their bytes
// written with io_uring so the recorder thread never blocks on a write.
// Appends only: each file has one writer position, and a short write is
// resubmitted from where it stopped.
//
// One thread (the recorder's) uses a writer; it is not thread-safe.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <string>

namespace stentor::svc {

struct uring_file {
    int fd = -1;
    std::string path;
    uint64_t offset = 0;          // next write position (bytes handed to io_uring)
    uint64_t written = 0;         // bytes the kernel confirmed
    unsigned inflight = 0;        // writes submitted, not completed
};

class uring_writer {
public:
    // Called from reap()/wait_one() when a write of `f` failed: `why` is the
    // errno text, "wrote 0 bytes" or "submission queue full" (the rest of a
    // short write could not be queued again).
    using error_fn = std::function<void(uring_file& f, const std::string& why)>;

    uring_writer(unsigned queue_depth, error_fn on_error);
    ~uring_writer();
    uring_writer(const uring_writer&) = delete;
    uring_writer& operator=(const uring_writer&) = delete;

    // False (and error() says why) when io_uring could not be set up: every
    // write then fails, the recorder reports it per recording.
    bool ok() const noexcept { return _ok; }
    const std::string& error() const noexcept { return _error; }

    // Create <base><ext>, or <base>-1<ext> ... <base>-99<ext> if it exists,
    // never overwriting a file (O_EXCL). The directory is created first.
    // False: `why` names the path and the errno text, f.path the last name tried.
    bool create(uring_file& f, const std::string& dir, const std::string& base, const std::string& ext,
                std::string& why);
    // fsync (when `sync`) and close. False: `why` names what failed; the fd
    // is closed regardless.
    bool close(uring_file& f, bool sync, std::string& why);

    // Queue `bytes` at the file's end (not yet submitted: submit()). False
    // when the submission queue is full even after a submit.
    bool append(uring_file& f, std::string&& bytes);
    void submit();
    // Completions without waiting; returns how many.
    unsigned reap();
    // Wait up to timeout_ns for one completion; returns how many were taken (0 or 1).
    unsigned wait_one(uint64_t timeout_ns);

    uint64_t bytes_written() const noexcept { return _bytes; }

private:
    struct write_req;
    bool queue(uring_file& f, std::string&& bytes, size_t done, uint64_t off);
    void complete(io_uring_cqe* cqe);

    io_uring _ring{};
    bool _ok = false;
    std::string _error;
    error_fn _on_error;
    uint64_t _bytes = 0;
};

}  // namespace stentor::svc
