#include "net.h"

#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string_view>

namespace stentor::tools {

uint16_t sock_addr::port() const {
    if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

bool sock_addr::same_host(const sock_addr& o) const {
    if (family() != o.family()) return false;
    if (family() == AF_INET6)
        return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr,
                           &reinterpret_cast<const sockaddr_in6*>(&o.ss)->sin6_addr, sizeof(in6_addr)) == 0;
    return reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&o.ss)->sin_addr.s_addr;
}

bool sock_addr::same(const sock_addr& o) const { return same_host(o) && port() == o.port(); }

std::string sock_addr::str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
        // Appended piece by piece: GCC 12 sees a false overlap (-Wrestrict) in "[" + std::string.
        std::string out(1, '[');
        out += buf;
        out += "]:";
        out += std::to_string(port());
        return out;
    }
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
}

sock_addr sock_addr_of(const sockaddr_storage& ss, socklen_t len) {
    sock_addr a;
    a.ss = ss;
    a.len = len;
    return a;
}

sockaddr_in endpoint::sockaddr(uint16_t port_offset) const {
    if (v6) throw tool_error(str() + ": an IPv6 address where only IPv4 is supported");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr = addr;
    sa.sin_port = htons(static_cast<uint16_t>(port == 0 ? 0 : port + port_offset));
    return sa;
}

sock_addr endpoint::any(uint16_t port_offset) const {
    sock_addr a;
    const uint16_t p = htons(static_cast<uint16_t>(port == 0 ? 0 : port + port_offset));
    if (v6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = addr6;
        s6->sin6_port = p;
        a.len = sizeof(sockaddr_in6);
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
        s4->sin_family = AF_INET;
        s4->sin_addr = addr;
        s4->sin_port = p;
        a.len = sizeof(sockaddr_in);
    }
    return a;
}

std::string endpoint::str() const { return any().str(); }

endpoint parse_endpoint(const std::string& text, const char* what) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) throw tool_error(std::string(what) + ": expected IP:PORT or [IPV6]:PORT, got '" + text + "'");
    endpoint ep;
    if (!text.empty() && text[0] == '[') {
        if (colon < 2 || text[colon - 1] != ']')
            throw tool_error(std::string(what) + ": expected [IPV6]:PORT, got '" + text + "'");
        // The text between the brackets, NUL-terminated for inet_pton.
        const std::string_view inside(text.data() + 1, colon - 2);
        char a[INET6_ADDRSTRLEN + 1] = {};
        if (inside.size() < sizeof a) std::memcpy(a, inside.data(), inside.size());
        if (inside.size() >= sizeof a || inside.find('%') != std::string_view::npos ||
            inet_pton(AF_INET6, a, &ep.addr6) != 1)
            throw tool_error(std::string(what) + ": '" + std::string(inside) + "' is not an IPv6 address (no zone)");
        ep.v6 = true;
    } else if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &ep.addr) != 1) {
        throw tool_error(std::string(what) + ": '" + text.substr(0, colon) + "' is not an IPv4 address (IPv6: [ADDRESS]:PORT)");
    }
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
    const int fd = ::socket(ep.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw tool_error(std::string("socket: ") + std::strerror(errno));
    if (ep.v6) {
        const int on = 1;   // this socket speaks IPv6 only: no IPv4-mapped peers
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
    const sock_addr sa = ep.any(port_offset);
    if (::bind(fd, sa.sa(), sa.len) != 0) {
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
