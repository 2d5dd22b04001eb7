#define FUSE_USE_VERSION 31
#include "slow_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

namespace stentor::test {
namespace {

slow_fs& self() { return *static_cast<slow_fs*>(fuse_get_context()->private_data); }
std::string real(const char* path) { return self().real(path); }
int err(int r) { return r < 0 ? -errno : r; }

// Plain passthrough to the backing directory; the held operations first
// wait at their gate.
const fuse_operations ops = [] {
    fuse_operations o{};
    o.init = [](fuse_conn_info*, fuse_config* cfg) -> void* {
        // Always ask: nothing cached, so every test sees the backing files.
        cfg->entry_timeout = 0;
        cfg->attr_timeout = 0;
        cfg->negative_timeout = 0;
        return fuse_get_context()->private_data;
    };
    o.getattr = [](const char* path, struct stat* st, fuse_file_info* fi) -> int {
        if (fi != nullptr) return err(fstat(static_cast<int>(fi->fh), st));
        return err(lstat(real(path).c_str(), st));
    };
    o.readdir = [](const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
                   fuse_readdir_flags) -> int {
        self().gate(slow_fs::op::readdir);
        DIR* d = opendir(real(path).c_str());
        if (d == nullptr) return -errno;
        while (const dirent* e = readdir(d)) fill(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
        closedir(d);
        return 0;
    };
    o.mkdir = [](const char* path, mode_t mode) -> int { return err(::mkdir(real(path).c_str(), mode)); };
    o.unlink = [](const char* path) -> int { return err(::unlink(real(path).c_str())); };
    o.rmdir = [](const char* path) -> int { return err(::rmdir(real(path).c_str())); };
    o.rename = [](const char* from, const char* to, unsigned int flags) -> int {
        self().gate(slow_fs::op::rename);
        return err(::renameat2(AT_FDCWD, real(from).c_str(), AT_FDCWD, real(to).c_str(), flags));
    };
    o.truncate = [](const char* path, off_t size, fuse_file_info* fi) -> int {
        if (fi != nullptr) return err(::ftruncate(static_cast<int>(fi->fh), size));
        return err(::truncate(real(path).c_str(), size));
    };
    o.create = [](const char* path, mode_t mode, fuse_file_info* fi) -> int {
        self().gate(slow_fs::op::create);
        const int fd = ::open(real(path).c_str(), fi->flags, mode);
        if (fd < 0) return -errno;
        fi->fh = static_cast<uint64_t>(fd);
        return 0;
    };
    o.open = [](const char* path, fuse_file_info* fi) -> int {
        const int fd = ::open(real(path).c_str(), fi->flags);
        if (fd < 0) return -errno;
        fi->fh = static_cast<uint64_t>(fd);
        return 0;
    };
    o.read = [](const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) -> int {
        return static_cast<int>(err(static_cast<int>(::pread(static_cast<int>(fi->fh), buf, size, off))));
    };
    o.write = [](const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) -> int {
        self().gate(slow_fs::op::write);
        return static_cast<int>(err(static_cast<int>(::pwrite(static_cast<int>(fi->fh), buf, size, off))));
    };
    o.statfs = [](const char* path, struct statvfs* st) -> int { return err(::statvfs(real(path).c_str(), st)); };
    o.release = [](const char*, fuse_file_info* fi) -> int { return err(::close(static_cast<int>(fi->fh))); };
    o.fsync = [](const char*, int datasync, fuse_file_info* fi) -> int {
        self().gate(slow_fs::op::fsync);
        const int fd = static_cast<int>(fi->fh);
        return err(datasync != 0 ? ::fdatasync(fd) : ::fsync(fd));
    };
    o.fsyncdir = [](const char* path, int, fuse_file_info*) -> int {
        self().gate(slow_fs::op::fsyncdir);
        const int fd = ::open(real(path).c_str(), O_RDONLY | O_DIRECTORY);
        if (fd < 0) return -errno;
        const int r = err(::fsync(fd));
        ::close(fd);
        return r;
    };
    o.utimens = [](const char* path, const timespec tv[2], fuse_file_info*) -> int {
        return err(::utimensat(AT_FDCWD, real(path).c_str(), tv, AT_SYMLINK_NOFOLLOW));
    };
    return o;
}();

}  // namespace

std::unique_ptr<slow_fs> slow_fs::mount(std::string& why) {
    std::unique_ptr<slow_fs> fs(new slow_fs());
    char m[] = "/tmp/stentor-slowfs-XXXXXX";
    char b[] = "/tmp/stentor-slowfs-backing-XXXXXX";
    if (mkdtemp(m) == nullptr || mkdtemp(b) == nullptr) {
        why = "mkdtemp failed";
        return nullptr;
    }
    fs->_mount = m;
    fs->_backing = b;
    const char* argv[] = {"stentor-slowfs", "-o", "fsname=stentor-slowfs"};
    fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
    fs->_fuse = fuse_new(&args, &ops, sizeof ops, fs.get());
    if (fs->_fuse == nullptr) {
        why = "fuse_new failed";
        return nullptr;
    }
    if (fuse_mount(fs->_fuse, fs->_mount.c_str()) != 0) {
        fuse_destroy(fs->_fuse);
        fs->_fuse = nullptr;
        why = "fuse_mount " + fs->_mount + " failed (no /dev/fuse, or not root?)";
        return nullptr;
    }
    ::fuse* f = fs->_fuse;
    fs->_loop = std::thread([f] { fuse_loop_mt(f, 0); });
    return fs;
}

slow_fs::~slow_fs() {
    release_all();
    if (_fuse != nullptr) {
        // Unmounting closes the FUSE device: the loop's threads return.
        fuse_exit(_fuse);
        fuse_unmount(_fuse);
        if (_loop.joinable()) _loop.join();
        fuse_destroy(_fuse);
    }
    std::error_code ec;
    std::filesystem::remove(_mount, ec);
    std::filesystem::remove_all(_backing, ec);
}

void slow_fs::hold(op o) {
    std::lock_guard lk(_mu);
    _held[static_cast<unsigned>(o)] = true;
}

void slow_fs::release(op o) {
    {
        std::lock_guard lk(_mu);
        _held[static_cast<unsigned>(o)] = false;
    }
    _cv.notify_all();
}

void slow_fs::release_all() {
    for (unsigned i = 0; i < static_cast<unsigned>(op::count); ++i) release(static_cast<op>(i));
}

bool slow_fs::wait_held(op o, std::chrono::seconds limit) {
    std::unique_lock lk(_mu);
    return _cv.wait_for(lk, limit, [&] { return _blocked[static_cast<unsigned>(o)] > 0; });
}

void slow_fs::gate(op o) {
    const unsigned i = static_cast<unsigned>(o);
    ++_calls[i];
    std::unique_lock lk(_mu);
    if (!_held[i]) return;
    ++_blocked[i];
    _cv.notify_all();
    _cv.wait(lk, [&] { return !_held[i]; });
    --_blocked[i];
}

}  // namespace stentor::test
