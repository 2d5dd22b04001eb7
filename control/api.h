// The HTTP/JSON API: one face of the control plane (control_plane.h). It
// parses requests (api_parse.h), calls the model's actions and maps their
// error codes to HTTP statuses (http_status_of); the model itself
// (relay_state, admission) knows nothing of HTTP.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "control_plane.h"

namespace stentor::control {

struct api_options {
    std::string listen_addr = "127.0.0.1";
    unsigned listen_port = 0;        // 0 = any free port (see api_server::port())
    std::string token;
    size_t max_body = 64 * 1024;     // every request but bulk
    size_t max_bulk_body = 8 * 1024 * 1024;
    unsigned max_depth = 16;         // JSON nesting
    size_t max_bulk_items = 100000;
    unsigned threads = 0;            // 0: one thread per connection (blocking commits)
};

class api_server {
public:
    api_server(control_plane& cp, api_options o);
    ~api_server();
    api_server(const api_server&) = delete;
    api_server& operator=(const api_server&) = delete;
    unsigned port() const { return _port; }

    struct impl;

private:
    std::unique_ptr<impl> _impl;
    unsigned _port = 0;
};

// Constant-time comparison of a presented bearer token with the profile's.
bool token_equal(const std::string& presented, const std::string& expected) noexcept;

}  // namespace stentor::control
