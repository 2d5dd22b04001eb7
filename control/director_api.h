// stentor-director's HTTP face (docs/fleet.md "Directors"): POST /v1/place,
// GET /v1/registry, GET /healthz. It runs the relay API's accept policy,
// limits, deadlines and transport rule (http_guard.h) and compares the
// token in constant time; a library class so tests/fleet serve it for real.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config.h"
#include "http_guard.h"

namespace stentor::fleet {
class director;
}

namespace stentor::control {

struct director_api_options {
    std::string listen_addr = "127.0.0.1";
    unsigned listen_port = 0;          // 0 = any free port (see port())
    std::string token;
    unsigned threads = 4;
    unsigned max_per_request = 100000;
    http_guard_options limits{};
    std::string tls_cert_file, tls_key_file;
};

director_api_options director_api_options_from(const director_config& d);

struct director_api_status {
    http_guard_stats guard;
    uint64_t unauthorized = 0;         // requests answered 401
    uint64_t connections = 0;          // open
};

class director_api {
public:
    // Throws std::invalid_argument (plain HTTP off loopback, a bad TLS
    // file, a missing token) or std::runtime_error (cannot listen).
    director_api(fleet::director& dir, director_api_options o);
    ~director_api();
    director_api(const director_api&) = delete;
    director_api& operator=(const director_api&) = delete;
    unsigned port() const { return _port; }
    bool tls() const;
    director_api_status status() const;

    struct impl;

private:
    std::unique_ptr<impl> _impl;
    unsigned _port = 0;
};

}  // namespace stentor::control
