// The HTTP API's request parsing, without a server: JSON bodies (size and
// nesting bounds, unknown fields refused, every field's type and range
// checked) into typed requests, and URL paths into routes. Nothing here
// touches the relay; every function returns either the typed request or the
// error the API answers with ({status, code, reason}). api.cc calls these;
// tests/api/test_api_parse.cc and fuzz/fuzz_api.cc drive them directly.
//
// Inputs are hostile (anything a client sends). None of these functions
// throws for any input (only std::bad_alloc could escape); every reason is
// valid UTF-8 so it can always be put in a JSON error body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "capture.h"
#include "state.h"

namespace stentor::control {

struct parse_error {
    int status = 400;       // HTTP status: 400, 404, 405, 413
    std::string code;       // "invalid", "not_found", "method_not_allowed"
    std::string reason;     // human-readable, valid UTF-8
    bool operator==(const parse_error&) const = default;
};

// Either the typed request or the error.
template <class T>
class parse_result {
public:
    parse_result(T v) : _v(std::in_place_index<0>, std::move(v)) {}
    parse_result(parse_error e) : _v(std::in_place_index<1>, std::move(e)) {}
    bool ok() const { return _v.index() == 0; }
    explicit operator bool() const { return ok(); }
    const T& value() const { return std::get<0>(_v); }
    T& value() { return std::get<0>(_v); }
    const parse_error& error() const { return std::get<1>(_v); }

private:
    std::variant<T, parse_error> _v;
};

struct parse_limits {
    size_t max_body = 64 * 1024;             // every request but bulk
    size_t max_bulk_body = 8 * 1024 * 1024;  // POST .../listeners/bulk
    unsigned max_depth = 16;                 // JSON nesting
    size_t max_bulk_items = 100000;
};

// ------------------------------------------------------------ bodies

// Nesting depth of a JSON text, counted without parsing (strings and their
// escapes skipped). The body parser enforces the same measure as it parses
// (a container opened deeper than max_depth stops it); this scan is the
// fuzzer's and the tests' independent check of it.
unsigned json_depth(std::string_view s) noexcept;

// A JSON object body: non-empty, at most max_size bytes (413 beyond),
// nested at most max_depth, valid JSON, an object. The nesting (and, for
// the bulk bodies, the count of listeners and of values: at most
// max_bulk_items listeners, 4 * max_bulk_items + 16 values) is checked by
// the parser's callback before each value joins the tree, so a refused body
// costs no more tree than the values counted up to its refusal.
parse_result<nlohmann::json> parse_json_object(std::string_view body, size_t max_size, unsigned max_depth);

// POST /api/v1/sessions
parse_result<session_params> parse_session_create(std::string_view body, const parse_limits& lim);

// POST /api/v1/sessions/{id}/speakers
parse_result<speaker_spec> parse_speaker_add(std::string_view body, const parse_limits& lim);

// POST /api/v1/sessions/{id}/listeners
parse_result<listener_spec> parse_listener_add(std::string_view body, const parse_limits& lim);

// POST /api/v1/sessions/{id}/listeners/bulk: all or nothing, the first bad
// item refuses the request with its index ("listeners[7]: ...").
parse_result<std::vector<listener_spec>> parse_listener_bulk(std::string_view body, const parse_limits& lim);

// POST /api/v1/sessions/{id}/listeners/bulk_delete: {"listeners":[{ip,
// port},...]}, at most max_bulk_items; a bad item refuses the request with
// its index.
parse_result<std::vector<listener_addr>> parse_listener_bulk_delete(std::string_view body, const parse_limits& lim);

// POST /api/v1/sessions/{id}/tokens: how many join tokens, for which tier,
// living how long (docs/join.md).
inline constexpr uint64_t max_tokens_per_request = 100000;
struct token_mint_request {
    uint32_t count = 0;                 // 1..max_tokens_per_request
    unsigned tier = 0;                  // 0..3 (dp::max_tiers - 1)
    std::optional<uint32_t> ttl_s;      // 1..join_max_ttl_s; absent: join.token_ttl_s
    bool operator==(const token_mint_request&) const = default;
};
parse_result<token_mint_request> parse_token_mint(std::string_view body, const parse_limits& lim);

// POST .../srtp/keys: {"id", "key" (base64 master key || salt), "suite"?,
// "mki"? (hex), "active"? (session keys)}. The key's bytes end up in wiped
// memory and the JSON's copy is wiped; no error ever quotes the key.
parse_result<srtp_key_spec> parse_srtp_key(std::string_view body, const parse_limits& lim, srtp::suite default_suite);
// POST .../srtp/active: {"id"}.
parse_result<std::string> parse_srtp_activate(std::string_view body, const parse_limits& lim);

// The body limit that applies to a URL (the bulk one for .../listeners/bulk
// and .../listeners/bulk_delete).
// POST /api/v1/captures (docs/capture.md): {"port": NAME, "direction":
// "rx"|"tx"} or {"session": ID}, and optional bounds. The values are checked
// here for shape and range; against the relay (the port exists, the bounds
// are within the profile's) by capture_manager::start.
parse_result<capture_request> parse_capture_start(std::string_view body, const parse_limits& lim);

// The body limit that applies to a URL (the bulk one for .../listeners/bulk).
size_t body_limit_for(std::string_view url, const parse_limits& lim) noexcept;
// 413 "body larger than N bytes".
parse_error body_too_large(size_t limit);

// ------------------------------------------------------------ paths

// A decimal unsigned integer, whole string, no sign, no spaces.
std::optional<uint64_t> parse_uint(std::string_view s) noexcept;

// Non-empty segments of a path ("/api//v1/" -> {"api", "v1"}).
std::vector<std::string> split_path(std::string_view url);

// A session id segment: 1..2^32-1, else 404.
parse_result<uint32_t> parse_session_segment(std::string_view seg);

// "198.18.0.5:6000" (strict dotted quad, port 1..65535) or
// "[2001:db8::5]:6000" (ip6 set, ip 0), else 400.
struct endpoint {
    uint32_t ip = 0;
    unsigned port = 0;
    std::optional<ipv6_addr> ip6 = std::nullopt;
    bool operator==(const endpoint&) const = default;
};
parse_result<endpoint> parse_endpoint_segment(std::string_view seg);

// A query parameter that must be a non-negative integer.
parse_result<uint64_t> parse_query_uint(std::string_view name, std::string_view value);

enum class route_kind {
    health,
    metrics,
    stats,
    ports,
    lcores,
    drops,
    capacity,
    events,
    sessions_list,
    recordings_list,
    counters_clear,
    // /api/v1/captures: before session_get, the routes that name no session
    captures_list,
    capture_start,
    capture_get,
    capture_stop,
    capture_file,
    capture_delete,
    session_create,
    session_get,
    session_end,
    recording_get,
    recording_by_id,       // GET /api/v1/recordings/ID
    recording_delete,      // DELETE /api/v1/recordings/ID
    speaker_add,
    speaker_del,
    listeners_list,
    listener_add,
    listener_bulk,
    listener_del,
    listener_bulk_delete,
    token_mint,
    srtp_key_add,          // POST .../srtp/keys, POST .../speakers/IP:PORT/srtp/keys
    srtp_key_activate,     // POST .../srtp/active
    srtp_key_del,          // DELETE .../srtp/keys/ID, DELETE .../speakers/IP:PORT/srtp/keys/ID
};

struct route {
    route_kind kind = route_kind::health;
    uint32_t session = 0;       // session_* (but create), recording_*, speaker_*, listener*
    endpoint ep{};              // speaker_del, listener_del
    std::string ep_text;        // the IP:PORT segment as given (speaker_del, listener_del)
    bool speaker = false;       // srtp_key_*: a speaker's key set (ep), else the session's
    std::string key_id;         // srtp_key_del
    uint32_t capture = 0;       // capture_get, capture_stop, capture_file, capture_delete
    uint64_t recording = 0;     // recording_by_id, recording_delete
};

// Whether the path needs the bearer token: everything but /api/v1/health,
// and paths that are not the API at all (answered 404 without one).
bool route_needs_auth(std::string_view url);
// True for /metrics (it takes the metrics token too: docs/metrics.md).
bool route_is_metrics(std::string_view url);

// Method and path into a route. has_body: whether the request carried a
// body (refused by requests that take none). The caller checks the token
// (route_needs_auth) first: then errors come out in the same order as the
// API has always answered them.
parse_result<route> parse_route(std::string_view method, std::string_view url, bool has_body);

// ------------------------------------------------------------ errors

// Bytes of s that are not valid UTF-8 replaced by U+FFFD, so text quoted
// from a request can always go into a JSON reason.
std::string utf8_safe(std::string_view s);

// The API's error body: {"error": code, "reason": reason}.
std::string error_body(const std::string& code, const std::string& reason);

// The HTTP status the API answers a refused action with (its code's name
// is the body's "error"): the only place a model error code meets HTTP.
int http_status_of(error_code c) noexcept;

}  // namespace stentor::control
