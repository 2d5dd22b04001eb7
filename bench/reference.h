// What every Mpps harness shares: median and spread over repetitions, and
// dpdk-testpmd run as the reference on lcore 1 in the same run (a child
// process with its own EAL and file prefix, stopped by pid).
#pragma once

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace stentor::bench {

struct stats {
    double median;
    double min;
    double max;
};

inline stats summarise(std::vector<double> v) {
    if (v.empty()) return {0, 0, 0};
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    const double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return {med, v.front(), v.back()};
}

struct testpmd_run {
    std::string forward_mode;     // "txonly", "io"
    std::string vdev;             // "net_null0" or "net_null0,size=134"
    std::vector<std::string> extra;   // testpmd options after "--" (e.g. "--txpkts=134")
    std::string pps_field;        // "Tx-pps" or "Rx-pps"
    unsigned seconds = 5;         // figures (one per second) to wait for, counted from testpmd's first
    unsigned skip = 1;            // first figures dropped (ramp-up)
};

// Runs testpmd on lcores 0-1 (forwarding on lcore 1) with --stats-period=1
// until it has printed `seconds` figures and returns them, the first `skip`
// and zeros removed.
inline std::vector<double> run_testpmd(const testpmd_run& t) {
    const std::string prefix = "stentor-ref-" + std::to_string(::getpid());
    const std::string out = "/tmp/" + prefix + ".log";
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<std::string> a{"timeout", "-s", "INT", std::to_string(t.seconds + 30), "dpdk-testpmd",
                                   "-l", "0-1", "--no-huge", "-m", "1024", "--no-pci", "--vdev=" + t.vdev,
                                   "--file-prefix=" + prefix, "--log-level=error", "--",
                                   "--forward-mode=" + t.forward_mode, "--total-num-mbufs=16384",
                                   "--stats-period=1", "-a"};
        a.insert(a.end(), t.extra.begin(), t.extra.end());
        std::vector<char*> argv;
        for (auto& s : a) argv.push_back(s.data());
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::_Exit(127);
    }
    // Until testpmd has printed `seconds` figures: its start-up (EAL and 1 GB
    // of memory without hugepages) took 0.5-2.5 s on these machines, and a
    // fixed wall-clock wait left one or two figures out of three. At most
    // seconds + 30 s, or until it exits by itself (a failed start).
    int st = 0;
    bool exited = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(t.seconds + 30);
    const std::string mark = t.pps_field + ":";
    auto figures = [&] {
        unsigned n = 0;
        if (FILE* f = std::fopen(out.c_str(), "r")) {
            char line[512];
            while (std::fgets(line, sizeof line, f))
                if (std::strstr(line, mark.c_str()) != nullptr) ++n;
            std::fclose(f);
        }
        return n;
    };
    while (std::chrono::steady_clock::now() < deadline && figures() < t.seconds) {
        if (::waitpid(pid, &st, WNOHANG) != 0) {
            exited = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) ::kill(pid, SIGINT);
    for (int i = 0; !exited && i < 50; ++i) {
        if (::waitpid(pid, &st, WNOHANG) != 0) exited = true;
        else std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &st, 0);
    }
    std::vector<double> pps;
    FILE* f = std::fopen(out.c_str(), "r");
    if (f == nullptr) return pps;
    const std::regex re(t.pps_field + R"(:\s+(\d+))");
    char line[512];
    unsigned seen = 0;
    while (std::fgets(line, sizeof line, f)) {
        std::cmatch m;
        if (!std::regex_search(line, m, re)) continue;
        if (seen++ < t.skip) continue;
        const double v = std::stod(m[1]) / 1e6;
        if (v > 0) pps.push_back(v);
    }
    std::fclose(f);
    std::remove(out.c_str());
    return pps;
}

}  // namespace stentor::bench
