// A real etcd (Debian's etcd-server) for the fleet tests: its own data dir
// under /tmp, loopback ports picked free, started and stopped by pid. Never
// a mock: the registry code talks to the same gateway a fleet uses.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_client.h"

namespace stentor::test {

// A loopback port nobody listens on now (bound and released: a small race
// with other processes, acceptable in tests).
inline uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

class etcd_server {
public:
    etcd_server() : _client_port(free_port()), _peer_port(free_port()) {
        char tmpl[] = "/tmp/stentor-etcd.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
        _dir = tmpl;
        start();
    }
    ~etcd_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(_dir, ec);
    }
    etcd_server(const etcd_server&) = delete;
    etcd_server& operator=(const etcd_server&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(_client_port); }
    std::vector<std::string> endpoints() const { return {url()}; }
    pid_t pid() const { return _pid; }

    // Starts etcd (same data dir and ports as before) and waits until it
    // answers (bounded: 15 s).
    void start() {
        if (_pid > 0) return;
        const std::string client = "http://127.0.0.1:" + std::to_string(_client_port);
        const std::string peer = "http://127.0.0.1:" + std::to_string(_peer_port);
        const std::string log = _dir + "/etcd.log";
        _pid = ::fork();
        if (_pid == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            const std::string data = _dir + "/data";
            ::execlp("etcd", "etcd", "--name", "default", "--data-dir", data.c_str(), "--listen-client-urls",
                     client.c_str(), "--advertise-client-urls", client.c_str(), "--listen-peer-urls", peer.c_str(),
                     "--initial-advertise-peer-urls", peer.c_str(), "--initial-cluster",
                     ("default=" + peer).c_str(), "--log-level", "warn", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        fleet::etcd_client c(endpoints(), std::chrono::milliseconds(300));
        for (int i = 0; i < 150; ++i) {
            try {
                c.get("/health-probe");
                return;
            } catch (const fleet::etcd_error&) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            int st = 0;
            if (::waitpid(_pid, &st, WNOHANG) == _pid) {
                _pid = -1;
                throw std::runtime_error("etcd exited at start; see " + log);
            }
        }
        throw std::runtime_error("etcd did not answer within 15 s; see " + log);
    }

    // SIGTERM (a clean stop) or SIGKILL, then reap.
    void stop(int sig = SIGTERM) {
        if (_pid <= 0) return;
        ::kill(_pid, sig);
        int st = 0;
        ::waitpid(_pid, &st, 0);
        _pid = -1;
    }

private:
    uint16_t _client_port;
    uint16_t _peer_port;
    std::string _dir;
    pid_t _pid = -1;
};

// Poll `cond` every 50 ms until it holds or `limit` passes; true if it held.
template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return cond();
}

}  // namespace stentor::test
