// A disk as slow as a test wants: a FUSE file system (libfuse3, mounted and
// served inside the test process) that passes every operation through to a
// backing directory, except that the operations a test holds block in the
// kernel until it releases them. A process that calls open(O_CREAT),
// write(), fsync(), rename() or readdir() on it really sits in that system
// call, as it would on a stalled disk, a huge directory or a dead NFS
// server; nothing in the code under test is replaced.
//
// Needs /dev/fuse and root (the mount(2) of a FUSE file system).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

struct fuse;

namespace stentor::test {

class slow_fs {
public:
    enum class op : unsigned { create, write, fsync, fsyncdir, rename, readdir, count };

    // nullptr, and `why` says what failed, when FUSE cannot be mounted here.
    static std::unique_ptr<slow_fs> mount(std::string& why);
    ~slow_fs();   // releases every hold, unmounts, removes both directories
    slow_fs(const slow_fs&) = delete;
    slow_fs& operator=(const slow_fs&) = delete;

    const std::string& dir() const { return _mount; }        // use this one
    const std::string& backing() const { return _backing; }  // where the bytes land

    // From now on every `o` blocks until release(o) (or release_all()).
    void hold(op o);
    void release(op o);
    void release_all();
    // True once a call of `o` is blocked by a hold; false after `limit`.
    bool wait_held(op o, std::chrono::seconds limit = std::chrono::seconds(20));
    unsigned calls(op o) const { return _calls[static_cast<unsigned>(o)].load(); }

    // Called by the FUSE operations (slow_fs.cc), on libfuse's threads.
    void gate(op o);
    std::string real(const char* path) const { return _backing + path; }

private:
    slow_fs() = default;

    std::string _mount, _backing;
    ::fuse* _fuse = nullptr;
    std::thread _loop;
    std::mutex _mu;
    std::condition_variable _cv;
    bool _held[static_cast<unsigned>(op::count)]{};
    unsigned _blocked[static_cast<unsigned>(op::count)]{};
    std::atomic<unsigned> _calls[static_cast<unsigned>(op::count)]{};
};

// Releases every hold of `fs` when the scope ends, whatever failed: declared
// after what must not be destroyed (or joined) while a call is held.
struct release_holds {
    slow_fs& fs;
    ~release_holds() { fs.release_all(); }
};

}  // namespace stentor::test
