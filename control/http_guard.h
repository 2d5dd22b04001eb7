// What a client can hold of an HTTP server of ours, whoever serves: the
// relay's control API (api.cc) and the fleet's director (director_api.cc)
// run the same accept policy, limits, deadlines and transport rule
// (docs/security.md §8). libmicrohttpd (0.9.75) calls the policy at
// accept and tells us when a connection starts and closes; the rest is a
// reaper thread that looks at every open connection a few times a second.
//
//   - at most max_connections open, max_connections_per_ip from one
//     address; past the total, the oldest connection that never presented
//     the token is closed to make room (one that did keeps its slot);
//   - a request's headers complete within header_timeout_s of the accept
//     (or of the previous answer on a kept-alive connection), however many
//     bytes trickle in meanwhile (slowloris); a connection that sends
//     nothing at all is libmicrohttpd's idle timeout's (idle_timeout_s);
//   - plain HTTP only on a loopback address (127.0.0.0/8), else TLS from a
//     certificate and a key file (mode 0600).
// Each closure is counted by its reason (http_guard_stats).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <microhttpd.h>

#include "stentor/dp_counters.h"

namespace stentor::control {

struct http_guard_options {
    unsigned max_connections = 128;
    unsigned max_connections_per_ip = 16;
    unsigned idle_timeout_s = 10;
    unsigned header_timeout_s = 10;
};

// The closures and refusals of the accept policy, declared once; the API
// exports them among its own (STENTOR_FOREACH_API_STAT).
#define STENTOR_FOREACH_HTTP_GUARD_STAT(_)                                                                         \
    _(too_many_connections, "connections closed at accept: api.max_connections were open and every one had "       \
                            "presented the token")                                                                 \
    _(too_many_connections_per_ip,                                                                                 \
      "connections closed at accept: their address already had api.max_connections_per_ip open")                  \
    _(evicted, "connections closed to make room for a new one: api.max_connections were open and this was the "     \
               "oldest that had never presented the token")                                                        \
    _(slow_headers, "connections closed because a request's headers were not complete within "                    \
                    "api.header_timeout_s of the accept (or of the previous answer), bytes trickling in or not")   \
    _(idle_timeouts, "connections closed after api.idle_timeout_s without a byte and without a request in "          \
                     "progress (idle keep-alive, or a connection that never sent anything)")

struct http_guard_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_HTTP_GUARD_STAT, http_guard_stats)
};

struct http_transport;

class http_guard {
public:
    // `tick` runs on the reaper thread a few times a second (the API's
    // refused-token summary is written from there).
    explicit http_guard(http_guard_options o, std::function<void()> tick = {});
    ~http_guard();
    http_guard(const http_guard&) = delete;
    http_guard& operator=(const http_guard&) = delete;

    // For MHD_start_daemon, with this guard as their closure: the accept
    // policy (apc) and MHD_OPTION_NOTIFY_CONNECTION.
    static MHD_Result accept_policy(void* cls, const sockaddr* sa, socklen_t len);
    static void notify_connection(void* cls, MHD_Connection* c, void** socket_ctx, MHD_ConnectionNotificationCode code);
    // Starts libmicrohttpd (a pool of `threads`, epoll) on `tr` with this
    // guard's policy, limits and idle timeout, `handler` for requests and
    // `done` when one ends; nullptr if it cannot listen. The guard and the
    // transport must outlive the daemon.
    MHD_Daemon* start_daemon(unsigned flags, unsigned threads, http_transport& tr, MHD_AccessHandlerCallback handler,
                             void* handler_cls, MHD_RequestCompletedCallback done, void* done_cls);

    // From the request handler: its headers are in; its answer is done;
    // it presented the token (the connection is never closed to make room).
    static void request_started(MHD_Connection* c);
    static void request_done(MHD_Connection* c);
    static void authenticated(MHD_Connection* c);
    // The client's IPv4 address (host order), 0 if unknown.
    static uint32_t client_ip(MHD_Connection* c);

    http_guard_stats stats() const { return _stats.snapshot(); }
    uint64_t connections() const { return _open.load(std::memory_order_relaxed); }
    const http_guard_options& options() const { return _opt; }

    struct conn;

private:
    void count(uint64_t http_guard_stats::*f) {
        std::atomic_ref<uint64_t>(_stats.*f).fetch_add(1, std::memory_order_relaxed);
    }
    void release_slot_locked(uint32_t ip);
    bool evict_oldest_locked();
    void reap_run();

    http_guard_options _opt;
    std::function<void()> _tick;
    http_guard_stats _stats;
    std::atomic<uint64_t> _open{0};

    std::mutex _mu;                          // the fields below
    std::unordered_map<uint32_t, unsigned> _per_ip;
    unsigned _total = 0;                     // slots held, closing connections included
    unsigned _closing = 0;                   // of them, closed to make room and not gone yet
    std::list<conn*> _conns;                 // by accept time, oldest first

    std::mutex _stop_mu;
    std::condition_variable _stop_cv;
    bool _stop = false;
    std::thread _reaper;
};

// Constant-time comparison of a presented bearer token with the expected
// one (never equal when the expected one is empty).
bool token_equal(const std::string& presented, const std::string& expected) noexcept;
// The request's "Authorization: Bearer <token>" against `expected`.
bool bearer_ok(MHD_Connection* c, const std::string& expected);

// The transport rule: plain HTTP only on a loopback address, else TLS.
// `who` names the server and `section` the profile section in messages
// ("api", "director"). Throws std::invalid_argument naming the setting.
struct http_transport {
    sockaddr_in addr{};
    std::string cert_pem, key_pem;   // the key is wiped on destruction
    bool tls = false;
    http_transport(const std::string& section, const std::string& listen_addr, unsigned listen_port,
                   const std::string& cert_file, const std::string& key_file);
    ~http_transport();
    http_transport(const http_transport&) = delete;
    http_transport& operator=(const http_transport&) = delete;
    // MHD_USE_TLS if TLS; and the option items (an MHD_OPTION_ARRAY) that
    // give libmicrohttpd the PEM text and TLS 1.2/1.3 only.
    unsigned flags() const;
    const MHD_OptionItem* options();

private:
    MHD_OptionItem _opts[4];
};

}  // namespace stentor::control
