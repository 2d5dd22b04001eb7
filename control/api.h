// The HTTP/JSON API: one face of the control plane (control_plane.h). It
// parses requests (api_parse.h), calls the model's actions and maps their
// error codes to HTTP statuses (http_status_of); the model itself
// (relay_state, admission) knows nothing of HTTP.
//
// What a client can hold is bounded (issue 10 item 3; docs/api.md
// "Limits"): connections in all and per address, the time a connection may
// idle and a body may take, and the bytes of bodies buffered at once; the
// token is checked from the headers before any body byte is read. Every
// refusal is counted (api_stats, exported as stentor_api_<name>_total).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "config.h"
#include "control_plane.h"
#include "http_guard.h"
#include "metrics.h"
#include "stentor/dp_counters.h"

namespace stentor::control {

struct api_options {
    std::string listen_addr = "127.0.0.1";
    unsigned listen_port = 0;        // 0 = any free port (see api_server::port())
    std::string token;
    size_t max_body = 64 * 1024;     // every request but bulk
    size_t max_bulk_body = 8 * 1024 * 1024;
    unsigned max_depth = 16;         // JSON nesting
    size_t max_bulk_items = 100000;
    // The profile's [api] limits (config.h api_config has their defaults
    // and why).
    unsigned threads = 4;
    unsigned max_connections = 128;
    unsigned max_connections_per_ip = 16;
    unsigned idle_timeout_s = 10;
    unsigned header_timeout_s = 10;
    unsigned body_timeout_s = 30;
    // A source's requests refused for their token are logged at most once
    // per this long (audit.h refusal_log).
    std::chrono::milliseconds unauthorized_log{10000};
    size_t bodies_in_flight = size_t{32} << 20;   // bytes
    std::chrono::milliseconds publish_wait{2000};
    // HTTPS (docs/api.md "HTTPS"): PEM files of the certificate (chain)
    // and its private key, read when the server starts. Empty: plain HTTP,
    // which the server refuses on any address but loopback (127.0.0.0/8).
    std::string tls_cert_file;
    std::string tls_key_file;
    // /metrics (docs/metrics.md): a read-only token for it alone, scrapes
    // from loopback without a token, and how many labelled series it shows.
    std::string metrics_token;
    bool metrics_loopback_open = false;
    metrics_options metrics{};
};

// The options a profile's [api] section asks for.
api_options api_options_from(const api_config& c);

// Refusals and timeouts of the API itself, declared once (the scheme of
// dp_counters.h): /metrics shows stentor_api_<name>_total, /api/v1/stats
// api/<name>.
#define STENTOR_FOREACH_API_STAT(_)                                                                             \
    _(unauthorized, "requests answered 401 from their headers, before any body byte was read")                 \
    STENTOR_FOREACH_HTTP_GUARD_STAT(_)                                                                          \
    _(body_budget, "requests answered 503: their body would have taken the bodies buffered at once past "       \
                   "api.bodies_in_flight_mib")                                                                  \
    _(body_too_large, "requests answered 413: body larger than its route allows (64 KiB, 8 MiB for bulk)")      \
    _(slow_bodies, "connections closed because a request body took longer than api.body_timeout_s")            \
    _(stalled_requests, "requests cut off by api.idle_timeout_s half-way (body not sent on, or answer not read)") \
    _(publish_timeouts, "writes answered 503 publish_timeout: accepted, but their publish did not complete "     \
                        "within api.publish_wait_ms")                                                            \
    _(joins_unresolved, "joins answered 202: added, but a next hop had not answered ARP within "                  \
                        "limits.join_resolve_ms")                                                                   \
    _(tokens_minted, "join tokens minted (POST /api/v1/sessions/{id}/tokens), not requests")

struct api_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_API_STAT, api_stats)
};

// The counters and what the API holds right now.
struct api_status {
    api_stats counters;
    uint64_t connections = 0;          // open
    uint64_t body_bytes = 0;           // request bodies buffered (reserved) now
    uint64_t body_bytes_peak = 0;      // the most ever buffered at once
    uint64_t writes_waiting = 0;       // writes whose publish has not completed yet
};

class api_server {
public:
    api_server(control_plane& cp, api_options o);
    ~api_server();
    api_server(const api_server&) = delete;
    api_server& operator=(const api_server&) = delete;
    unsigned port() const { return _port; }
    bool tls() const;                  // serves HTTPS
    api_status status() const;

    struct impl;

private:
    std::unique_ptr<impl> _impl;
    unsigned _port = 0;
};

}  // namespace stentor::control
