// The recorder's file I/O.
//
// uring_writer: appends and fdatasyncs with io_uring, so the recorder
// thread never waits for a write or a sync. One write in flight per file:
// a failed or short write puts its unwritten bytes back at the front of the
// file's queue, so the file never gets a hole, and a full disk (ENOSPC) can
// be waited out by writing the same bytes again later (the recorder pauses).
//
// The blocking calls (create_part, finish_part, sync_dir) are plain
// functions over values: the recorder runs them offline as a snapshot
// reader and without holding the lock its readers take (issue 10, item 6).
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
    std::string path;             // as it is named now: <name>.part until finish_part()
    std::string final_path;       // the name it gets when finished
    std::string queue;            // bytes not yet handed to the kernel
    uint64_t written = 0;         // bytes the kernel confirmed; the next write goes there
    uint64_t synced = 0;          // bytes an fdatasync confirmed durable
    uint64_t sync_target = 0;     // `written` when the fdatasync in flight was submitted
    bool write_inflight = false;
    bool sync_inflight = false;
    int error = 0;                // errno of the latest failed write; 0 again after a write succeeded
    void* owner = nullptr;        // the recorder's track
};

class uring_writer {
public:
    enum class op { write, sync };
    // Called from reap() when a write or an fdatasync of `f` failed (`err`:
    // the errno; EIO for a write of 0 bytes). A failed write's bytes are
    // back in f.queue.
    using error_fn = std::function<void(uring_file& f, op o, int err)>;

    uring_writer(unsigned queue_depth, error_fn on_error);
    ~uring_writer();
    uring_writer(const uring_writer&) = delete;
    uring_writer& operator=(const uring_writer&) = delete;

    // False (and error() says why) when io_uring could not be set up: every
    // write then fails, the recorder reports it per recording.
    bool ok() const noexcept { return _ok; }
    const std::string& error() const noexcept { return _error; }

    // Hand f.queue to the kernel if no write of f is in flight (not yet
    // submitted: submit()). False when the submission queue is full.
    bool pump(uring_file& f);
    // fdatasync what the kernel confirmed, if there is anything new and no
    // write or sync of f is in flight. False when the submission queue is full.
    bool sync(uring_file& f);
    void submit();
    // Completions without waiting; returns how many.
    unsigned reap();
    // Wait up to timeout_ns until a completion is ready, without taking it
    // (reap() does): the caller may wait without holding its lock.
    bool wait_ready(uint64_t timeout_ns);

    uint64_t bytes_written() const noexcept { return _bytes; }
    uint64_t syncs() const noexcept { return _syncs; }   // fdatasyncs completed without error

private:
    struct request;
    io_uring_sqe* sqe();
    void complete(io_uring_cqe* cqe);

    io_uring _ring{};
    bool _ok = false;
    std::string _error;
    error_fn _on_error;
    uint64_t _bytes = 0;
    uint64_t _syncs = 0;
    unsigned _inflight = 0;       // requests submitted or queued, not completed
};

// ---- blocking calls: offline, no lock held

struct part_file {
    int fd = -1;
    std::string path;             // <dir>/<base>[-k]<ext>.part
    std::string final_path;       // <dir>/<base>[-k]<ext>
};

// Create <dir>/<base><ext>.part (or <base>-1<ext>.part ... -99) such that
// neither it nor its final name exists, and lock it (flock LOCK_EX: the lock
// dies with the process, so a recorder starting later tells a live
// recording from one cut off). The directory is created first. False: `err`
// is the errno and `why` names the path.
bool create_part(const std::string& dir, const std::string& base, const std::string& ext, part_file& out, int& err,
                 std::string& why);
// fsync (when `sync`), close, and rename `part` to `final_path` without
// replacing anything there (or to <final>-1 ... if that exists). `now_path`
// is where the file is afterwards. False: `why` says what failed; the fd is
// closed regardless, and the file keeps its .part name if the rename failed.
bool finish_part(int fd, bool sync, const std::string& part, const std::string& final_path, std::string& now_path,
                 std::string& why);
// Rename without replacing: `to`, or <to minus ext>-1<ext> ...; `now_path` the name taken.
bool rename_noreplace(const std::string& from, const std::string& to, std::string& now_path, std::string& why);
// fsync a directory, so that a create or a rename in it survives a crash.
bool sync_dir(const std::string& dir, std::string& why);

}  // namespace stentor::svc
