// Raw HTTP over real sockets, for the tests that hold connections the way
// an attacker does (a chosen source address in 127/8, bytes trickled, a
// connection left open): tests/api/test_api_limits.cc (the relay's API)
// and tests/fleet/test_director_api.cc (the director) share them.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

namespace stentor::test {

using namespace std::chrono_literals;

// A descriptor closed at scope exit.
struct fd_guard {
    int fd = -1;
    explicit fd_guard(int f = -1) : fd(f) {}
    fd_guard(fd_guard&& o) noexcept : fd(o.fd) { o.fd = -1; }
    fd_guard& operator=(fd_guard&& o) noexcept {
        std::swap(fd, o.fd);
        return *this;
    }
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

// A TCP connection to the API from a chosen source address: all of 127/8 is
// on lo, so 127.0.0.2 is another client as far as the server can tell.
inline fd_guard connect_from(const std::string& src, unsigned port) {
    fd_guard s(::socket(AF_INET, SOCK_STREAM, 0));
    if (s.fd < 0) return s;
    sockaddr_in b{};
    b.sin_family = AF_INET;
    inet_pton(AF_INET, src.c_str(), &b.sin_addr);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    // The source port is picked at connect(), for the whole 4-tuple: a
    // bind() to port 0 would take a port for the address alone, and runs
    // of hundreds of connections (and other processes) exhaust them.
    const int one = 1;
    setsockopt(s.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(s.fd, reinterpret_cast<sockaddr*>(&b), sizeof b) != 0) return fd_guard();
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        // A signal (the test's own, to hold a worker) may interrupt the
        // connect; the handshake goes on: wait for its outcome.
        if (errno != EINTR) return fd_guard();
        pollfd p{s.fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        while (::poll(&p, 1, 30000) < 0 && errno == EINTR) {
        }
        if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return fd_guard();
    }
    // A guard against a server that never answers, not a timing assertion.
    timeval tv{30, 0};
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return s;
}

inline bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// Everything until the server closes (or the 30 s guard, or a reset).
inline std::string read_to_end(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// The status of a raw answer ("HTTP/1.1 401 ..."), 0 if none.
inline int status_of(const std::string& answer) {
    if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
    return std::atoi(answer.c_str() + 9);
}

// One request from `src` with "Connection: close"; the status answered.
inline int request_from(const std::string& src, unsigned port, const std::string& method, const std::string& path,
                 const std::string& token = "") {
    fd_guard s = connect_from(src, port);
    if (s.fd < 0) return -1;
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n";
    if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
    req += "\r\n";
    if (!send_all(s.fd, req)) return -2;
    return status_of(read_to_end(s.fd));
}

// Whether the server has closed (or reset) the connection: a read that
// does not wait sees the end. Bytes it answered with are read and dropped.
inline bool closed_by_peer(int fd) {
    char b[512];
    for (;;) {
        const ssize_t n = ::recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (n > 0) continue;
        if (n == 0) return true;
        if (errno == EINTR) continue;
        return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

}  // namespace stentor::test
