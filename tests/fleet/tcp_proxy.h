// A loopback TCP proxy in front of a test's etcd that can be frozen: every
// connection stays open and nothing more passes either way, as a client sees
// an etcd member that was cut off from the rest of its cluster (its TCP
// sessions alive, no raft entry arriving, so a watch on it says nothing).
// New connections are still accepted while frozen and then hang too. One
// thread, poll(2); bounded by the test's lifetime; stopped by the destructor.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace stentor::test {

class tcp_proxy {
public:
    // Forwards 127.0.0.1:<port()> to 127.0.0.1:<to_port>.
    explicit tcp_proxy(uint16_t to_port) : _to(to_port) {
        _listen = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const int one = 1;
        ::setsockopt(_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(_listen, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(_listen, 64) != 0)
            throw std::runtime_error("tcp_proxy: bind/listen");
        socklen_t len = sizeof a;
        ::getsockname(_listen, reinterpret_cast<sockaddr*>(&a), &len);
        _port = ntohs(a.sin_port);
        _thread = std::thread([this] { run(); });
    }
    ~tcp_proxy() {
        _stop = true;
        _thread.join();
        for (auto [c, s] : _pairs) {
            ::close(c);
            ::close(s);
        }
        ::close(_listen);
    }
    tcp_proxy(const tcp_proxy&) = delete;
    tcp_proxy& operator=(const tcp_proxy&) = delete;

    uint16_t port() const { return _port; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(_port); }
    void freeze(bool on) { _frozen = on; }

private:
    void run() {
        while (!_stop) {
            std::vector<pollfd> fds{{_listen, POLLIN, 0}};
            if (!_frozen)
                for (auto [c, s] : _pairs) {
                    fds.push_back({c, POLLIN, 0});
                    fds.push_back({s, POLLIN, 0});
                }
            if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
            if (fds[0].revents & POLLIN) accept_one();
            if (_frozen) continue;
            std::vector<bool> dead(_pairs.size(), false);
            for (size_t i = 1; i < fds.size(); ++i) {
                if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0 || dead[(i - 1) / 2]) continue;
                const auto [c, s] = _pairs[(i - 1) / 2];
                const int from = fds[i].fd, to = from == c ? s : c;
                char buf[16384];
                const ssize_t n = ::read(from, buf, sizeof buf);
                if (n <= 0 || ::write(to, buf, static_cast<size_t>(n)) != n) dead[(i - 1) / 2] = true;
            }
            for (size_t k = _pairs.size(); k-- > 0;)
                if (dead[k]) {
                    ::close(_pairs[k].first);
                    ::close(_pairs[k].second);
                    _pairs.erase(_pairs.begin() + static_cast<std::ptrdiff_t>(k));
                }
        }
    }
    void accept_one() {
        const int c = ::accept(_listen, nullptr, nullptr);
        if (c < 0) return;
        const int s = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(_to);
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(c);
            ::close(s);
            return;
        }
        _pairs.emplace_back(c, s);
    }

    uint16_t _to, _port = 0;
    int _listen = -1;
    std::atomic<bool> _stop{false}, _frozen{false};
    std::vector<std::pair<int, int>> _pairs;   // (client, server); only the proxy's thread touches them
    std::thread _thread;
};

}  // namespace stentor::test
