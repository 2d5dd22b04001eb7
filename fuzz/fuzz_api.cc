// libFuzzer target for the HTTP API's request parsing (control/api_parse.h):
// the JSON bodies of session create / speaker add / listener add / bulk
// listener add / token mint / capture start, URL paths into routes, IP:PORT and session-id segments,
// query integers, and the strict IPv4 parser they share.
//
// Input: the first byte selects what the rest is fed to (low 3 bits) and a
// variant (method, has-body flag, a small bulk item limit, JSON depth bound);
// the rest is the body or the path, as a client could send it.
//
// Beyond "no crash, no leak, no UB" every result is checked against the
// contract: an error has an HTTP status the API uses, a code and a non-empty
// reason that is valid UTF-8 (the server renders it as JSON from inside an
// error handler; an invalid byte there used to terminate stentord, the
// first finding of this target, see corpus_api/regress_*); an accepted
// request has every field in range and IPv4 addresses round-trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api_parse.h"
#include "config.h"

using namespace stentor::control;

namespace {

[[noreturn]] void finding(const char* what) {
    std::fprintf(stderr, "fuzz_api: contract broken: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) finding(what);
}

// Valid UTF-8 exactly when nlohmann's strict dump accepts it.
bool is_utf8(const std::string& s) {
    try {
        (void)nlohmann::json(s).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

void check_error(const parse_error& e) {
    check(e.status == 400 || e.status == 404 || e.status == 405 || e.status == 413, "error status");
    check(e.code == "invalid" || e.code == "not_found" || e.code == "method_not_allowed", "error code");
    check(!e.reason.empty(), "empty reason");
    check(is_utf8(e.reason), "reason is not valid UTF-8");
    check(!error_body(e.code, e.reason).empty(), "error body");   // what the server sends
}

void check_ip(uint32_t ip) {
    const auto again = parse_ipv4(format_ipv4(ip));
    check(again && *again == ip, "IPv4 round trip");
}

template <class T, class F>
void check_result(const parse_result<T>& r, F&& on_ok) {
    if (r.ok()) on_ok(r.value());
    else check_error(r.error());
}

void check_parsed_listener(const listener_spec& l) {
    check(l.port <= 65535, "listener port");
    check(l.tier <= 255, "listener tier");
    check_ip(l.ip);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const uint8_t sel = data[0];
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    parse_limits lim;
    // Small bounds so the fuzzer reaches them with small inputs.
    lim.max_body = 4096;
    lim.max_bulk_body = 16384;
    lim.max_bulk_items = (sel & 0x80) ? 3 : 100000;
    lim.max_depth = 1u + ((sel >> 3) & 0x0f);
    static const char* const methods[] = {"GET", "POST", "DELETE", "PUT"};

    switch (sel & 7) {
    case 0:
        check_result(parse_session_create(in, lim), [](const session_params& s) {
            check(is_utf8(s.name), "strings from JSON are UTF-8");
            check(s.mode == session_mode::forward || s.mode == session_mode::mix, "mode");
            check(s.udp_port <= 65535, "udp_port");
            check(s.frame_ms <= 1000, "frame_ms");
            check(s.max_bitrate_kbps <= 100000, "max_bitrate_kbps");
        });
        break;
    case 1:
        check_result(parse_speaker_add(in, lim), [](const speaker_spec& s) {
            check(s.port <= 65535, "speaker port");
            check_ip(s.ip);
        });
        break;
    case 2:
        check_result(parse_listener_add(in, lim), check_parsed_listener);
        // The other small object body with a tier: join tokens to mint.
        check_result(parse_token_mint(in, lim), [](const token_mint_request& q) {
            check(q.count >= 1 && q.count <= max_tokens_per_request, "token count");
            check(q.tier <= 3, "token tier");
            check(!q.ttl_s || (*q.ttl_s >= 1 && *q.ttl_s <= join_max_ttl_s), "token ttl");
        });
        // And a capture request (docs/capture.md).
        check_result(parse_capture_start(in, lim), [](const capture_request& q) {
            check((q.kind == capture_kind::session) == (q.session != 0), "capture session");
            check(q.kind == capture_kind::session || !q.port.empty(), "capture port");
            check(is_utf8(q.port), "strings from JSON are UTF-8");
            check(!q.snaplen || (*q.snaplen >= capture_snaplen_min && *q.snaplen <= capture_snaplen_max), "snaplen");
            check(!q.sample || (*q.sample >= 1 && *q.sample <= capture_sample_max), "sample");
            for (const auto& b : {q.max_packets, q.max_seconds, q.max_bytes}) check(!b || *b >= 1, "a bound of 0");
        });
        break;
    case 3:
        check_result(parse_listener_bulk(in, lim), [&](const std::vector<listener_spec>& v) {
            check(v.size() <= lim.max_bulk_items, "bulk item limit");
            for (const auto& l : v) check_parsed_listener(l);
        });
        check_result(parse_listener_bulk_delete(in, lim), [&](const std::vector<listener_addr>& v) {
            check(v.size() <= lim.max_bulk_items, "bulk delete item limit");
            for (const auto& l : v) {
                check(l.port <= 65535, "bulk delete port");
                check_ip(l.ip);
            }
        });
        break;
    case 4: {
        const char* method = methods[(sel >> 3) & 3];
        const bool has_body = (sel & 0x20) != 0;
        (void)route_needs_auth(in);
        check_result(parse_route(method, in, has_body), [&](const route& r) {
            const bool needs_session = r.kind >= route_kind::session_get;
            check(needs_session == (r.session != 0), "route session id");
            const bool names_capture = r.kind >= route_kind::capture_get && r.kind <= route_kind::capture_delete;
            check(names_capture == (r.capture != 0), "route capture id");
            if (r.kind == route_kind::speaker_del || r.kind == route_kind::listener_del) {
                check(r.ep.port >= 1 && r.ep.port <= 65535, "route endpoint port");
                const auto again = parse_endpoint_segment(r.ep_text);
                check(again.ok() && again.value() == r.ep, "route endpoint text");
            }
            // Bodies only where a body is read.
            const bool takes_body = r.kind == route_kind::session_create || r.kind == route_kind::speaker_add ||
                                    r.kind == route_kind::listener_add || r.kind == route_kind::listener_bulk ||
                                    r.kind == route_kind::listener_bulk_delete || r.kind == route_kind::token_mint ||
                                    r.kind == route_kind::capture_start || r.kind == route_kind::health ||
                                    r.kind == route_kind::metrics;
            check(!has_body || takes_body, "body accepted by a request that takes none");
        });
        break;
    }
    case 5:
        check_result(parse_endpoint_segment(in), [&](const endpoint& e) {
            check(e.port >= 1 && e.port <= 65535, "endpoint port");
            const auto again = parse_endpoint_segment(format_ipv4(e.ip) + ":" + std::to_string(e.port));
            check(again.ok() && again.value() == e, "endpoint round trip");
        });
        check_result(parse_session_segment(in), [](uint32_t id) { check(id != 0, "session id 0"); });
        check_result(parse_query_uint("after", in), [](uint64_t) {});
        break;
    case 6: {
        const auto r = parse_json_object(in, lim.max_body, lim.max_depth);
        check_result(r, [&](const nlohmann::json& j) {
            check(j.is_object(), "object");
            check(json_depth(in) <= lim.max_depth, "depth bound");
            check(in.size() <= lim.max_body, "size bound");
        });
        break;
    }
    case 7: {
        if (const auto ip = parse_ipv4(in)) check(format_ipv4(*ip) == in, "IPv4 is strict dotted quad");
        const std::string safe = utf8_safe(in);
        check(is_utf8(safe), "utf8_safe output");
        if (is_utf8(std::string(in))) check(safe == in, "utf8_safe changed valid UTF-8");
        break;
    }
    }
    return 0;
}
