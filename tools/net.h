// Small socket helpers shared by the tools (IPv4 only, like the relay).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace stentor::tools {

struct tool_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct endpoint {
    in_addr addr{};
    uint16_t port = 0;
    sockaddr_in sockaddr(uint16_t port_offset = 0) const;
    std::string str() const;
};

// "IP:PORT" (IPv4 dotted quad). Throws tool_error with the offending text.
endpoint parse_endpoint(const std::string& text, const char* what);

// "0,3,5-7" -> {0,3,5,6,7}. Throws tool_error on malformed input.
std::vector<uint64_t> parse_index_list(const std::string& text, const char* what);

// A UDP socket bound to ep (+port_offset). Throws tool_error.
int open_udp_socket(const endpoint& ep, uint16_t port_offset);

// Lifts RLIMIT_NOFILE to its hard limit so thousands of sockets fit; returns the new soft limit.
uint64_t raise_fd_limit();

// CLOCK_REALTIME / CLOCK_MONOTONIC in ns.
int64_t realtime_ns();
int64_t monotonic_ns();

}  // namespace stentor::tools
