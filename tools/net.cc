#include "net.h"

#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace stentor::tools {

sockaddr_in endpoint::sockaddr(uint16_t port_offset) const {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr = addr;
    sa.sin_port = htons(static_cast<uint16_t>(port == 0 ? 0 : port + port_offset));
    return sa;
}

std::string endpoint::str() const {
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port);
}

endpoint parse_endpoint(const std::string& text, const char* what) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) throw tool_error(std::string(what) + ": expected IP:PORT, got '" + text + "'");
    endpoint ep;
    if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &ep.addr) != 1)
        throw tool_error(std::string(what) + ": '" + text.substr(0, colon) + "' is not an IPv4 address");
    const std::string p = text.substr(colon + 1);
    char* end = nullptr;
    errno = 0;
    const unsigned long v = std::strtoul(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || errno != 0 || v > 65535)
        throw tool_error(std::string(what) + ": '" + p + "' is not a UDP port (0..65535)");
    ep.port = static_cast<uint16_t>(v);
    return ep;
}

std::vector<uint64_t> parse_index_list(const std::string& text, const char* what) {
    std::vector<uint64_t> out;
    std::size_t pos = 0;
    auto bad = [&] { return tool_error(std::string(what) + ": expected a list like 0,3,5-7, got '" + text + "'"); };
    auto number = [&](std::size_t& i) {
        if (i >= text.size() || text[i] < '0' || text[i] > '9') throw bad();
        uint64_t v = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            v = v * 10 + static_cast<uint64_t>(text[i] - '0');
            if (v > (1ull << 48)) throw bad();
            ++i;
        }
        return v;
    };
    if (text.empty()) return out;
    while (true) {
        const uint64_t a = number(pos);
        uint64_t b = a;
        if (pos < text.size() && text[pos] == '-') {
            ++pos;
            b = number(pos);
            if (b < a || b - a > 10'000'000) throw bad();
        }
        for (uint64_t v = a; v <= b; ++v) out.push_back(v);
        if (pos == text.size()) break;
        if (text[pos] != ',') throw bad();
        ++pos;
    }
    return out;
}

int open_udp_socket(const endpoint& ep, uint16_t port_offset) {
    if (ep.port != 0 && static_cast<uint32_t>(ep.port) + port_offset > 65535)
        throw tool_error("port " + std::to_string(ep.port) + "+" + std::to_string(port_offset) + " is beyond 65535");
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw tool_error(std::string("socket: ") + std::strerror(errno));
    const sockaddr_in sa = ep.sockaddr(port_offset);
    if (::bind(fd, reinterpret_cast<const ::sockaddr*>(&sa), sizeof sa) != 0) {
        const int e = errno;
        ::close(fd);
        endpoint shown = ep;
        if (ep.port != 0) shown.port = static_cast<uint16_t>(ep.port + port_offset);
        throw tool_error("bind " + shown.str() + ": " + std::strerror(e));
    }
    return fd;
}

uint64_t raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

int64_t realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace stentor::tools
