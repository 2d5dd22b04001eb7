// Small socket helpers shared by the tools. Endpoints of either family
// ("IP:PORT", "[IPV6]:PORT"); stentor-speaker sends over IPv4 only
// (endpoint::sockaddr), stentor-listener's sockets and its token join take
// either (endpoint::any).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace stentor::tools {

struct tool_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A socket address of either family, as the socket calls take it.
struct sock_addr {
    sockaddr_storage ss{};
    socklen_t len = 0;
    const ::sockaddr* sa() const { return reinterpret_cast<const ::sockaddr*>(&ss); }
    int family() const { return ss.ss_family; }
    uint16_t port() const;                       // host order
    bool same_host(const sock_addr& o) const;    // family and address
    bool same(const sock_addr& o) const;         // and port
    std::string str() const;                     // "IP:PORT" or "[IPV6]:PORT"
};
// The address recvmsg/recvfrom filled in (`len` bytes of `ss`).
sock_addr sock_addr_of(const sockaddr_storage& ss, socklen_t len);

struct endpoint {
    in_addr addr{};
    uint16_t port = 0;
    bool v6 = false;        // then addr6 holds the address
    in6_addr addr6{};
    // IPv4 only (stentor-speaker): throws tool_error for an IPv6 endpoint.
    sockaddr_in sockaddr(uint16_t port_offset = 0) const;
    sock_addr any(uint16_t port_offset = 0) const;
    std::string str() const;
};

// "IP:PORT" (IPv4 dotted quad) or "[IPV6]:PORT" (RFC 3986 brackets, no
// zone). Throws tool_error with the offending text.
endpoint parse_endpoint(const std::string& text, const char* what);

// "0,3,5-7" -> {0,3,5,6,7}. Throws tool_error on malformed input.
std::vector<uint64_t> parse_index_list(const std::string& text, const char* what);

// A UDP socket of ep's family bound to ep (+port_offset). Throws tool_error.
int open_udp_socket(const endpoint& ep, uint16_t port_offset);

// Lifts RLIMIT_NOFILE to its hard limit so thousands of sockets fit; returns the new soft limit.
uint64_t raise_fd_limit();

// CLOCK_REALTIME / CLOCK_MONOTONIC in ns.
int64_t realtime_ns();
int64_t monotonic_ns();

}  // namespace stentor::tools
