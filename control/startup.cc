#include "startup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <spdlog/spdlog.h>

#include "drivers.h"
#include "log.h"

namespace stentor::control {

namespace fs = std::filesystem;

startup_error::startup_error(std::vector<std::string> l)
    : std::runtime_error(l.empty() ? std::string("start-up failed") : l.front()), lines(std::move(l)) {}

namespace {

bool has(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

// stdout to /dev/null while EAL parses its arguments: its usage text is
// printf'd there. Our own output is on stderr (the log) at this point.
class quiet_stdout {
public:
    quiet_stdout() {
        std::fflush(stdout);
        _saved = dup(STDOUT_FILENO);
        const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (_saved >= 0 && null >= 0) dup2(null, STDOUT_FILENO);
        if (null >= 0) ::close(null);
    }
    ~quiet_stdout() {
        std::fflush(stdout);
        if (_saved >= 0) {
            dup2(_saved, STDOUT_FILENO);
            ::close(_saved);
        }
    }
    quiet_stdout(const quiet_stdout&) = delete;
    quiet_stdout& operator=(const quiet_stdout&) = delete;

private:
    int _saved = -1;
};

}  // namespace

host_finding explain_eal_failure(const profile& p, int err, const std::string& said, const host_check_options& o) {
    using lvl = host_finding::level;
    const std::string dpdk = said.empty() ? std::string() : fmt::format(" (DPDK: {})", said);
    if (has(said, "Cannot create lock") || has(said, "another primary") || err == EALREADY) {
        const auto cfg = dpdk_runtime_dir(p.eal.file_prefix) + "/config";
        const auto pid = lock_holder(cfg);
        const auto name = pid ? process_name(o.root, *pid) : std::string();
        return {lvl::fail, "eal.file_prefix",
                pid ? fmt::format("another {} uses it (pid {}): stop it, or give this relay its own "
                                  "eal.file_prefix (--file-prefix)",
                                  name == "stentord" ? "stentord" : "DPDK process (" + name + ")", *pid)
                    : fmt::format("\"{}\" is in use by another DPDK process: give this relay its own "
                                  "eal.file_prefix (--file-prefix){}",
                                  p.eal.file_prefix, dpdk)};
    }
    if (has(said, "hugepage") || has(said, "huge page") || has(said, "hugetlbfs"))
        return {lvl::fail, "eal.hugepages",
                fmt::format("DPDK could not use the hugepages{} — see README \"Hugepages\", or set "
                            "eal.hugepages = false for virtual devices",
                            dpdk)};
    if (has(said, "lcore") || has(said, "core "))
        return {lvl::fail, "eal.lcores", fmt::format("EAL refused the lcores{}", dpdk)};
    if (has(said, "vfio") || has(said, "VFIO") || has(said, "IOMMU") || has(said, "iommu"))
        return {lvl::fail, "eal.pci_allow",
                fmt::format("EAL could not set up vfio{}: check the IOMMU and the binding (stentord --check --host)",
                            dpdk)};
    if (has(said, "vdev") || has(said, "device") || has(said, "driver"))
        return {lvl::fail, "eal.vdevs", fmt::format("EAL could not create a device{}", dpdk)};
    if (err == ENOMEM || has(said, "memory") || has(said, "Cannot init"))
        return {lvl::fail, "eal.memory_mb",
                fmt::format("EAL could not get {} MB{}: lower eal.memory_mb or free memory", p.eal.memory_mb, dpdk)};
    if (err == EACCES || err == EPERM)
        return {lvl::fail, "eal",
                fmt::format("EAL was refused access{}: DPDK needs root (or CAP_SYS_ADMIN, CAP_IPC_LOCK, "
                            "CAP_NET_RAW for these devices)",
                            dpdk)};
    return {lvl::fail, "eal", fmt::format("EAL initialisation failed: {}{}", rte_strerror(err), dpdk)};
}

drivers::eal_params eal_params_of(const profile& p) {
    drivers::eal_params ep;
    ep.lcores = p.eal.lcores;
    ep.main_lcore = p.eal.main_lcore;
    ep.memory_mb = p.eal.memory_mb;
    ep.hugepages = p.eal.hugepages;
    ep.file_prefix = p.eal.file_prefix;
    ep.pci_allow = p.eal.pci_allow;
    ep.vdevs = p.eal.vdevs;
    ep.log_level = p.eal.log_level;
    return ep;
}

void start_eal(const profile& p, const startup_options& o, std::vector<int>& lock_fds) {
    std::vector<std::string> failed;
    auto report = [&](const std::vector<host_finding>& fs_) {
        for (const auto& f : fs_) {
            const auto line = format_finding(f, p.path, o.profile_text);
            if (f.lvl == host_finding::level::fail) failed.push_back(line);
            else if (f.lvl == host_finding::level::warn) spdlog::warn("start-up: {}", line);
            else spdlog::debug("start-up: {}", line);
        }
    };
    report(profile_warnings(p));
    report(check_host(p, o.host));
    if (!failed.empty()) throw startup_error(std::move(failed));
    report(host_claim(p, o.host, lock_fds));
    if (!failed.empty()) throw startup_error(std::move(failed));

    log::attach_dpdk();
    try {
        quiet_stdout q;
        drivers::eal_init(eal_params_of(p));
    } catch (const drivers::driver_error&) {
        const int err = rte_errno;
        const auto f = explain_eal_failure(p, err, log::last_dpdk_error(), o.host);
        // EAL made its runtime directory before it failed; leave it only if
        // another process holds it (a prefix in use).
        const char* dir = rte_eal_get_runtime_dir();
        if (dir != nullptr && *dir != '\0' && !lock_holder(std::string(dir) + "/config")) remove_runtime_dir(dir);
        throw startup_error({format_finding(f, p.path, o.profile_text)});
    }
}

bool remove_runtime_dir(const std::string& dir, std::string* why) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return true;
    // What EAL 22.11 leaves: config, hugepage_info, fbarray_memseg-*,
    // fbarray_memzone, mp_socket*, dpdk_telemetry.v2 (and its .lock).
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const auto n = e.path().filename().string();
        if (n == "config" || n == "hugepage_info" || n.starts_with("fbarray_") || n.starts_with("mp_socket") ||
            n.starts_with("dpdk_telemetry"))
            fs::remove(e.path(), ec);
    }
    if (!fs::remove(dir, ec)) {
        if (why != nullptr) *why = fmt::format("{}: {}", dir, ec ? ec.message() : std::string("not empty"));
        return false;
    }
    return true;
}

}  // namespace stentor::control
