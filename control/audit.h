// The audit line of a mutating API call (docs/operations.md, "Logs"): who
// (client address), what (method and path, the query string left out: it
// is the one place a client could put a secret), the answer (status and
// error code). Never a header or a body: no bearer token, no join token, no
// key reaches the log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stentor::control {

// True for the methods that change something.
bool is_mutating(std::string_view method);
// "api: audit: 127.0.0.1 POST /api/v1/sessions -> 201" (+ " invalid" etc.).
std::string audit_line(uint32_t client_ip, std::string_view method, std::string_view url, int status,
                       std::string_view error_code);
// Logs audit_line() at info (2xx) or warning (refused).
void audit_api_call(uint32_t client_ip, std::string_view method, std::string_view url, int status,
                    std::string_view response_body);

}  // namespace stentor::control
