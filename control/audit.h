// The audit line of a mutating API call (docs/operations.md, "Logs"): who
// (client address), what (method and path, the query string left out: it
// is the one place a client could put a secret), the answer (status and
// error code). Never a header or a body: no bearer token, no join token, no
// key reaches the log.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace stentor::control {

// True for the methods that change something.
bool is_mutating(std::string_view method);
// "api: audit: 127.0.0.1 POST /api/v1/sessions -> 201" (+ " invalid" etc.).
std::string audit_line(uint32_t client_ip, std::string_view method, std::string_view url, int status,
                       std::string_view error_code);
// Logs audit_line() at info (2xx) or warning (refused).
void audit_api_call(uint32_t client_ip, std::string_view method, std::string_view url, int status,
                    std::string_view response_body);

// Requests refused for a missing or wrong token, logged per source at
// most once per window: the first at once (the audit line above), the rest
// as one summary line with their count when the window ends. 5000 refused
// requests in 0.3 s from one address wrote 5000 warning lines (1.7 MB):
// a disk filled, or journald rate-limiting away the real audit lines.
// Authenticated calls are audited one by one, always. At most
// `max_sources` addresses are tracked at once; the refusals of any more are
// summed into one line of their own.
class refusal_log {
public:
    explicit refusal_log(std::chrono::milliseconds window = std::chrono::seconds(10), size_t max_sources = 1024);
    void refused(uint32_t client_ip, std::string_view method, std::string_view url, int status,
                 std::string_view error_code);
    // Writes the summaries of the windows that have ended (called a few
    // times a second).
    void flush();
    // "api: audit: 203.0.113.9: 4999 more requests refused 401 unauthorized
    // in 10 s (at most one line per address per 10 s)".
    static std::string summary_line(uint32_t client_ip, uint64_t held, int status, std::string_view error_code,
                                    std::chrono::milliseconds window);

private:
    struct source {
        std::chrono::steady_clock::time_point since;
        uint64_t held = 0;
        int status = 0;
        std::string code;
    };
    std::chrono::milliseconds _window;
    size_t _max_sources;
    std::mutex _mu;
    std::unordered_map<uint32_t, source> _sources;
    source _others;          // sources past max_sources, summed
};

}  // namespace stentor::control
