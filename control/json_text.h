// The text of a JSON answer (the relay's API, the director's, telemetry's
// size estimate). Answers carry text from outside: a request's bytes quoted
// in a reason, etcd's error body in a `last_error`, whatever the fleet's
// registry holds. nlohmann's plain dump() throws type_error 316 on the first
// byte that is not UTF-8, and answers are rendered inside libmicrohttpd's
// callbacks, where a throw ends the process. Here such a byte becomes U+FFFD
// and nothing throws (std::bad_alloc aside): every answer goes through this
// one function, not through dump().
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace stentor::control {

// Compact (no indent), non-ASCII as it is; each ill-formed UTF-8 sequence
// as U+FFFD (nlohmann's error_handler_t::replace), in keys and values.
inline std::string json_text(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace stentor::control
