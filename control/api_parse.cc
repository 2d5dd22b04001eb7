#include "api_parse.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "config.h"
#include "json_text.h"
#include "stentor/dp_counters.h"

namespace stentor::control {

using nlohmann::json;

namespace {

// Internal control flow: the helpers below stop at the first problem by
// throwing this; every public function catches it and returns it. It never
// leaves this file.
struct bad_request {
    parse_error e;
};

[[noreturn]] void fail(int status, const char* code, std::string reason) {
    throw bad_request{parse_error{status, code, std::move(reason)}};
}

template <class F>
auto guarded(F&& f) -> parse_result<decltype(f())> {
    try {
        return f();
    } catch (bad_request& b) {
        return std::move(b.e);
    }
}

// What a body may hold beyond its size. Checked by the parser's callback as
// it goes, before each value is put in the tree, so a body refused here
// costs at most the values counted up to the refusal: an 8 MiB bulk body of
// empty objects ({"listeners":[{},{},...]}, 2.8 M of them) built ~220 MB of
// tree before its item count was looked at.
struct body_shape {
    unsigned max_depth;                   // nesting: "{}" is 1
    size_t max_items = SIZE_MAX;          // elements of any one array
    size_t max_values = SIZE_MAX;         // values in the whole body (a container is one, and so is each member)
    std::string items_reason = {};        // the refusal for too many elements in the root's array member
};

json object_or_fail(std::string_view body, size_t max_size, const body_shape& shape) {
    if (body.empty()) fail(400, "invalid", "a JSON body is required");
    if (body.size() > max_size) throw bad_request{body_too_large(max_size)};
    // The containers open at the parser's position, outermost first: for
    // an array, its elements so far. At most max_depth deep.
    struct open_container {
        bool array;
        size_t items;
    };
    std::vector<open_container> open;
    size_t values = 0;
    auto one_more_value = [&] {
        if (++values > shape.max_values)
            fail(400, "invalid", "JSON body holds more than " + std::to_string(shape.max_values) + " values");
        if (open.empty() || !open.back().array || ++open.back().items <= shape.max_items) return;
        if (open.size() == 2 && !shape.items_reason.empty()) fail(400, "invalid", shape.items_reason);
        fail(400, "invalid", "a JSON array holds more than " + std::to_string(shape.max_items) + " items");
    };
    // Refusing throws out of the parser (bad_request): it stops there, and
    // what it built so far is freed on the way out.
    const json::parser_callback_t bound = [&](int depth, json::parse_event_t ev, json&) {
        switch (ev) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            one_more_value();
            if (static_cast<unsigned>(depth) >= shape.max_depth)
                fail(400, "invalid", "JSON nested deeper than " + std::to_string(shape.max_depth));
            open.push_back({ev == json::parse_event_t::array_start, 0});
            break;
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            if (!open.empty()) open.pop_back();
            break;
        case json::parse_event_t::value:
            one_more_value();
            break;
        case json::parse_event_t::key:
            break;
        }
        return true;
    };
    json j = json::parse(body.begin(), body.end(), bound, false);
    if (j.is_discarded()) fail(400, "invalid", "body is not valid JSON");
    if (!j.is_object()) fail(400, "invalid", "body must be a JSON object");
    return j;
}

json object_or_fail(std::string_view body, size_t max_size, unsigned max_depth) {
    return object_or_fail(body, max_size, body_shape{max_depth});
}

// A bulk body: {"listeners":[...]} of at most max_bulk_items listeners, each
// an object of at most 3 fields, so at most 4 values a listener and the
// root's two; a few more are let through for the errors to name (a
// duplicate or unknown field) rather than the count.
body_shape bulk_shape(const parse_limits& lim) {
    const size_t n = lim.max_bulk_items;
    return body_shape{lim.max_depth, n, n > (SIZE_MAX - 16) / 4 ? SIZE_MAX : 4 * n + 16,
                      "at most " + std::to_string(n) + " listeners per request"};
}

void only_fields(const json& j, std::initializer_list<const char*> allowed, const std::string& where = "") {
    for (auto it = j.begin(); it != j.end(); ++it)
        if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; }) == allowed.end())
            fail(400, "invalid", where + "unknown field \"" + utf8_safe(it.key()) + "\"");
}

uint64_t get_uint(const json& j, const char* k, uint64_t def, uint64_t max, const std::string& where = "") {
    auto it = j.find(k);
    if (it == j.end()) return def;
    if (!it->is_number_unsigned() || it->get<uint64_t>() > max)
        fail(400, "invalid", where + "\"" + k + "\" must be an integer 0.." + std::to_string(max));
    return it->get<uint64_t>();
}

uint64_t req_uint(const json& j, const char* k, uint64_t max, const std::string& where = "") {
    if (!j.contains(k)) fail(400, "invalid", where + "\"" + k + "\" is required");
    return get_uint(j, k, 0, max, where);
}

std::string get_string(const json& j, const char* k, const std::string& def) {
    auto it = j.find(k);
    if (it == j.end()) return def;
    if (!it->is_string()) fail(400, "invalid", std::string("\"") + k + "\" must be a string");
    return it->get<std::string>();
}

// An address of either family (issue 15): a dotted quad, or an IPv6 text
// form without brackets or zone. Sets *ip (IPv4) or *ip6. Whether the
// address may be a peer (multicast, link-local, IPv4-mapped, ...) is for the
// action to say, with its reason.
void req_ip_any(const json& j, const char* k, const std::string& where, uint32_t* ip, std::optional<ipv6_addr>* ip6) {
    auto it = j.find(k);
    if (it == j.end()) fail(400, "invalid", where + "\"" + k + "\" is required");
    if (!it->is_string()) fail(400, "invalid", where + "\"" + k + "\" must be a dotted-quad string or an IPv6 address");
    const auto& s = it->get_ref<const std::string&>();
    std::optional<uint32_t> v4;
    std::string why;
    if (!parse_ip_any(s, &v4, ip6, &why)) {
        if (s.find('%') != std::string::npos)
            fail(400, "invalid", where + "\"" + utf8_safe(s) + "\" " + why);
        fail(400, "invalid", where + "\"" + utf8_safe(s) + "\" is not an IPv4 address, nor an IPv6 one");
    }
    *ip = v4.value_or(0);
}

listener_spec listener_of(const json& j, const std::string& where) {
    if (!j.is_object()) fail(400, "invalid", where + "a listener must be an object");
    only_fields(j, {"ip", "port", "tier"}, where);
    listener_spec l;
    req_ip_any(j, "ip", where, &l.ip, &l.ip6);
    l.port = static_cast<unsigned>(req_uint(j, "port", 65535, where));
    l.tier = static_cast<unsigned>(get_uint(j, "tier", 0, 255, where));
    return l;
}

uint32_t session_or_fail(std::string_view seg) {
    auto v = parse_uint(seg);
    if (!v || *v == 0 || *v > 0xffffffffULL) fail(404, "not_found", "no session " + utf8_safe(seg));
    return static_cast<uint32_t>(*v);
}

endpoint endpoint_or_fail(std::string_view seg) {
    if (!seg.empty() && seg.front() == '[') {
        // [IPV6]:PORT (issue 15), as in URLs (RFC 3986 3.2.2).
        std::optional<uint32_t> v4;
        std::optional<ipv6_addr> v6;
        unsigned port = 0;
        std::string why;
        if (!parse_endpoint_any(seg, &v4, &v6, &port, &why) || !v6)
            fail(400, "invalid", "expected [IPV6]:PORT, got \"" + utf8_safe(seg) + "\": " + utf8_safe(why));
        return {0, port, v6};
    }
    const auto colon = seg.rfind(':');
    std::optional<uint32_t> ip;
    std::optional<uint64_t> port;
    if (colon != std::string_view::npos) {
        ip = parse_ipv4(seg.substr(0, colon));
        port = parse_uint(seg.substr(colon + 1));
    }
    if (!ip || !port || *port == 0 || *port > 65535)
        fail(400, "invalid", "expected ADDRESS:PORT, got \"" + utf8_safe(seg) + "\"");
    return {*ip, static_cast<unsigned>(*port), std::nullopt};
}

[[noreturn]] void no_resource(std::string_view url) { fail(404, "not_found", "no resource " + utf8_safe(url)); }

// The routes under /api/v1/sessions/{id}/: sub-resource, the segment after
// it (none, a literal, or IP:PORT naming a member), method, whether the
// request takes a body. A sub-resource with no matching row answers 405.
constexpr const char* endpoint_tail = "IP:PORT";
struct session_route {
    const char* sub;
    const char* tail;
    const char* method;
    route_kind kind;
    bool body;
};
constexpr session_route session_routes[] = {
    {"recording", nullptr, "GET", route_kind::recording_get, false},
    {"speakers", nullptr, "POST", route_kind::speaker_add, true},
    {"speakers", endpoint_tail, "DELETE", route_kind::speaker_del, false},
    {"listeners", nullptr, "GET", route_kind::listeners_list, false},
    {"listeners", nullptr, "POST", route_kind::listener_add, true},
    {"listeners", "bulk", "POST", route_kind::listener_bulk, true},
    {"listeners", "bulk_delete", "POST", route_kind::listener_bulk_delete, true},
    {"listeners", endpoint_tail, "DELETE", route_kind::listener_del, false},
    {"tokens", nullptr, "POST", route_kind::token_mint, true},
};
constexpr std::pair<const char*, const char*> session_route_methods[] = {
    {"recording", "GET .../recording"},
    {"speakers", "POST .../speakers or DELETE .../speakers/IP:PORT"},
    {"listeners", "GET/POST .../listeners, POST .../listeners/bulk or .../listeners/bulk_delete, DELETE .../listeners/IP:PORT"},
    {"tokens", "POST .../tokens"},
};

bool is_api(const std::vector<std::string>& seg) { return seg.size() >= 3 && seg[0] == "api" && seg[1] == "v1"; }
bool is_health(const std::vector<std::string>& seg) { return seg.size() == 3 && is_api(seg) && seg[2] == "health"; }
bool is_metrics(const std::vector<std::string>& seg) { return seg.size() == 1 && seg[0] == "metrics"; }

}  // namespace

// ------------------------------------------------------------ bodies

unsigned json_depth(std::string_view s) noexcept {
    unsigned depth = 0, max_depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (in_str) {
            if (c == '\\') ++i;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            max_depth = std::max(max_depth, ++depth);
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

parse_result<json> parse_json_object(std::string_view body, size_t max_size, unsigned max_depth) {
    return guarded([&] { return object_or_fail(body, max_size, max_depth); });
}

parse_result<session_params> parse_session_create(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_body, lim.max_depth);
        only_fields(j, {"id", "name", "mode", "udp_port", "max_listeners", "recording", "frame_ms", "max_bitrate_kbps",
                        "srtp"});
        session_params sp;
        sp.id = static_cast<uint32_t>(get_uint(j, "id", 0, 0xffffffffULL));
        sp.name = get_string(j, "name", "");
        const std::string mode = get_string(j, "mode", "forward");
        sp.udp_port = static_cast<unsigned>(get_uint(j, "udp_port", 0, 65535));
        sp.max_listeners = static_cast<unsigned>(get_uint(j, "max_listeners", 0, 0xffffffffULL));
        if (auto it = j.find("recording"); it != j.end()) {
            if (!it->is_boolean()) fail(400, "invalid", "\"recording\" must be true or false");
            sp.recording = it->get<bool>();
        }
        sp.frame_ms = static_cast<unsigned>(get_uint(j, "frame_ms", 20, 1000));
        sp.max_bitrate_kbps = static_cast<unsigned>(get_uint(j, "max_bitrate_kbps", 256, 100000));
        const auto m = parse_session_mode(mode);
        if (!m) fail(400, "invalid", "mode must be \"forward\" or \"mix\"");
        sp.mode = *m;
        // "srtp": {"ingress": "off"|"required", "egress": "off"|"session_key"};
        // what is left out takes the profile's [srtp] default.
        if (auto it = j.find("srtp"); it != j.end()) {
            if (!it->is_object()) fail(400, "invalid", "\"srtp\" must be an object");
            only_fields(*it, {"ingress", "egress"}, "srtp: ");
            if (it->contains("ingress")) {
                const auto v = parse_srtp_ingress(get_string(*it, "ingress", ""));
                if (!v) fail(400, "invalid", "srtp: \"ingress\" must be \"off\" or \"required\"");
                sp.srtp_ingress = *v;
            }
            if (it->contains("egress")) {
                const auto v = parse_srtp_egress(get_string(*it, "egress", ""));
                if (!v) fail(400, "invalid", "srtp: \"egress\" must be \"off\" or \"session_key\"");
                sp.srtp_egress = *v;
            }
        }
        return sp;
    });
}

parse_result<speaker_spec> parse_speaker_add(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_body, lim.max_depth);
        only_fields(j, {"ip", "port", "ssrc"});
        speaker_spec r;
        req_ip_any(j, "ip", "", &r.ip, &r.ip6);
        r.port = static_cast<unsigned>(req_uint(j, "port", 65535));
        if (auto it = j.find("ssrc"); it != j.end() && !it->is_null())
            r.ssrc = static_cast<uint32_t>(req_uint(j, "ssrc", 0xffffffffULL));
        return r;
    });
}

parse_result<srtp_key_spec> parse_srtp_key(std::string_view body, const parse_limits& lim, srtp::suite default_suite) {
    return guarded([&] {
        json j = object_or_fail(body, lim.max_body, lim.max_depth);
        // Whatever happens next, the key's text in the JSON is wiped.
        struct wipe_key {
            json& j;
            ~wipe_key() {
                if (auto it = j.find("key"); it != j.end() && it->is_string()) wipe(it->get_ref<std::string&>());
            }
        } guard{j};
        only_fields(j, {"id", "key", "suite", "mki", "active"});
        srtp_key_spec k;
        k.id = get_string(j, "id", "");
        if (auto e = check_key_id(k.id)) fail(400, "invalid", "\"id\" " + *e);
        k.suite = default_suite;
        if (j.contains("suite")) {
            const auto su = srtp::parse_suite(get_string(j, "suite", ""));
            if (!su) fail(400, "invalid", "\"suite\" must be \"AES_CM_128_HMAC_SHA1_80\" or \"AEAD_AES_128_GCM\"");
            k.suite = *su;
        }
        if (j.contains("mki")) {
            const auto m = parse_mki(get_string(j, "mki", ""));
            if (!m) fail(400, "invalid", "\"mki\" must be 1..4 bytes as 2..8 hex digits");
            k.mki = *m;
        }
        if (auto it = j.find("active"); it != j.end()) {
            if (!it->is_boolean()) fail(400, "invalid", "\"active\" must be true or false");
            k.activate = it->get<bool>();
        }
        auto it = j.find("key");
        if (it == j.end() || !it->is_string()) fail(400, "invalid", "\"key\" is required: base64 of master key and salt");
        auto bytes = decode_base64_key(it->get_ref<const std::string&>());
        if (!bytes) fail(400, "invalid", "\"key\" is not base64");
        if (bytes->size() != srtp::master_len(k.suite))
            fail(400, "invalid", "\"key\" must be " + std::to_string(srtp::master_len(k.suite)) +
                                     " bytes of master key and salt for " + std::string(srtp::name_of(k.suite)) +
                                     ", got " + std::to_string(bytes->size()));
        k.master = std::move(*bytes);
        return k;
    });
}

parse_result<std::string> parse_srtp_activate(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_body, lim.max_depth);
        only_fields(j, {"id"});
        std::string id = get_string(j, "id", "");
        if (auto e = check_key_id(id)) fail(400, "invalid", "\"id\" " + *e);
        return id;
    });
}

parse_result<listener_spec> parse_listener_add(std::string_view body, const parse_limits& lim) {
    return guarded([&] { return listener_of(object_or_fail(body, lim.max_body, lim.max_depth), ""); });
}

parse_result<std::vector<listener_spec>> parse_listener_bulk(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_bulk_body, bulk_shape(lim));
        only_fields(j, {"listeners"});
        auto it = j.find("listeners");
        if (it == j.end() || !it->is_array()) fail(400, "invalid", "\"listeners\" must be an array");
        std::vector<listener_spec> items;
        items.reserve(it->size());
        for (size_t i = 0; i < it->size(); ++i)
            items.push_back(listener_of((*it)[i], "listeners[" + std::to_string(i) + "]: "));
        return items;
    });
}

parse_result<std::vector<listener_addr>> parse_listener_bulk_delete(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_bulk_body, bulk_shape(lim));
        only_fields(j, {"listeners"});
        auto it = j.find("listeners");
        if (it == j.end() || !it->is_array()) fail(400, "invalid", "\"listeners\" must be an array");
        std::vector<listener_addr> items;
        items.reserve(it->size());
        for (size_t i = 0; i < it->size(); ++i) {
            const std::string where = "listeners[" + std::to_string(i) + "]: ";
            const json& l = (*it)[i];
            if (!l.is_object()) fail(400, "invalid", where + "a listener must be an object");
            only_fields(l, {"ip", "port"}, where);
            listener_addr a;
            req_ip_any(l, "ip", where, &a.ip, &a.ip6);
            a.port = static_cast<unsigned>(req_uint(l, "port", 65535, where));
            items.push_back(a);
        }
        return items;
    });
}

parse_result<token_mint_request> parse_token_mint(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_body, lim.max_depth);
        only_fields(j, {"count", "tier", "ttl_s"});
        token_mint_request r;
        if (!j.contains("count")) fail(400, "invalid", "\"count\" is required");
        const auto it = j.find("count");
        if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 || it->get<uint64_t>() > max_tokens_per_request)
            fail(400, "invalid", "\"count\" must be an integer 1.." + std::to_string(max_tokens_per_request));
        r.count = static_cast<uint32_t>(it->get<uint64_t>());
        r.tier = static_cast<unsigned>(get_uint(j, "tier", 0, dp::max_tiers - 1));
        if (j.contains("ttl_s")) {
            const auto t = j.find("ttl_s");
            if (!t->is_number_unsigned() || t->get<uint64_t>() == 0 || t->get<uint64_t>() > join_max_ttl_s)
                fail(400, "invalid", "\"ttl_s\" must be an integer 1.." + std::to_string(join_max_ttl_s) + " (7 days)");
            r.ttl_s = static_cast<uint32_t>(t->get<uint64_t>());
        }
        return r;
    });
}

parse_result<capture_request> parse_capture_start(std::string_view body, const parse_limits& lim) {
    return guarded([&] {
        const json j = object_or_fail(body, lim.max_body, lim.max_depth);
        only_fields(j, {"port", "direction", "session", "max_packets", "max_seconds", "max_bytes", "snaplen", "sample"});
        capture_request r;
        const bool by_port = j.contains("port"), by_session = j.contains("session");
        if (by_port == by_session)
            fail(400, "invalid", "give either \"port\" (with \"direction\") or \"session\" (its ingress)");
        if (by_port) {
            r.port = get_string(j, "port", "");
            if (r.port.empty()) fail(400, "invalid", "\"port\" must be a port name");
            const std::string dir = get_string(j, "direction", "");
            if (dir == "rx") r.kind = capture_kind::port_rx;
            else if (dir == "tx") r.kind = capture_kind::port_tx;
            else fail(400, "invalid", "\"direction\" must be \"rx\" or \"tx\"");
        } else {
            if (j.contains("direction"))
                fail(400, "invalid", "\"direction\" goes with \"port\": a session's capture is its ingress");
            r.kind = capture_kind::session;
            r.session = static_cast<uint32_t>(get_uint(j, "session", 0, 0xffffffffULL));
            if (r.session == 0) fail(400, "invalid", "\"session\" must be a session id 1..4294967295");
        }
        // Present means at least 1: a zero bound is a mistake, not "none".
        const auto opt = [&](const char* k, uint64_t min, uint64_t max) -> std::optional<uint64_t> {
            if (!j.contains(k)) return std::nullopt;
            const auto it = j.find(k);
            if (!it->is_number_unsigned() || it->get<uint64_t>() < min || it->get<uint64_t>() > max)
                fail(400, "invalid",
                     std::string("\"") + k + "\" must be an integer " + std::to_string(min) + ".." + std::to_string(max));
            return it->get<uint64_t>();
        };
        r.max_packets = opt("max_packets", 1, uint64_t{1} << 40);
        r.max_seconds = opt("max_seconds", 1, 86400);
        r.max_bytes = opt("max_bytes", 1, uint64_t{65536} << 20);
        if (auto v = opt("snaplen", capture_snaplen_min, capture_snaplen_max)) r.snaplen = static_cast<uint32_t>(*v);
        if (auto v = opt("sample", 1, capture_sample_max)) r.sample = static_cast<uint32_t>(*v);
        return r;
    });
}

size_t body_limit_for(std::string_view url, const parse_limits& lim) noexcept {
    return url.ends_with("/listeners/bulk") || url.ends_with("/listeners/bulk_delete") ? lim.max_bulk_body : lim.max_body;
}

parse_error body_too_large(size_t limit) {
    return {413, "invalid", "body larger than " + std::to_string(limit) + " bytes"};
}

// ------------------------------------------------------------ paths

std::optional<uint64_t> parse_uint(std::string_view s) noexcept {
    uint64_t v = 0;
    if (s.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::vector<std::string> split_path(std::string_view url) {
    std::vector<std::string> v;
    size_t i = 0;
    while (i < url.size()) {
        while (i < url.size() && url[i] == '/') ++i;
        size_t j = i;
        while (j < url.size() && url[j] != '/') ++j;
        if (j > i) v.emplace_back(url.substr(i, j - i));
        i = j;
    }
    return v;
}

parse_result<uint32_t> parse_session_segment(std::string_view seg) {
    return guarded([&] { return session_or_fail(seg); });
}

parse_result<endpoint> parse_endpoint_segment(std::string_view seg) {
    return guarded([&] { return endpoint_or_fail(seg); });
}

parse_result<uint64_t> parse_query_uint(std::string_view name, std::string_view value) {
    if (auto n = parse_uint(value)) return *n;
    return parse_error{400, "invalid", "query parameter " + utf8_safe(name) + " must be a non-negative integer"};
}

bool route_needs_auth(std::string_view url) {
    const auto seg = split_path(url);
    return !is_health(seg) && (is_metrics(seg) || is_api(seg));
}

bool route_is_metrics(std::string_view url) { return is_metrics(split_path(url)); }

parse_result<route> parse_route(std::string_view method, std::string_view url, bool has_body) {
    return guarded([&] {
        const auto seg = split_path(url);
        const bool get = method == "GET", post = method == "POST", del = method == "DELETE";
        const auto no_body = [&] {
            if (has_body) fail(400, "invalid", "this request takes no body");
        };
        route r;
        if (is_health(seg)) {
            if (!get) fail(405, "method_not_allowed", "GET only");
            r.kind = route_kind::health;
            return r;
        }
        if (is_metrics(seg)) {
            if (!get) fail(405, "method_not_allowed", "GET only");
            r.kind = route_kind::metrics;
            return r;
        }
        if (!is_api(seg)) no_resource(url);
        const std::string& res = seg[2];
        const size_t n = seg.size();
        if (n == 3 && get) {
            no_body();
            static const std::pair<const char*, route_kind> reads[] = {
                {"stats", route_kind::stats},       {"ports", route_kind::ports},
                {"lcores", route_kind::lcores},     {"drops", route_kind::drops},
                {"capacity", route_kind::capacity}, {"events", route_kind::events},
                {"sessions", route_kind::sessions_list}, {"recordings", route_kind::recordings_list},
                {"captures", route_kind::captures_list},
            };
            for (const auto& [name, kind] : reads)
                if (res == name) {
                    r.kind = kind;
                    return r;
                }
        }
        if (res == "counters" && n == 4 && seg[3] == "clear") {
            if (!post) fail(405, "method_not_allowed", "POST only");
            no_body();
            r.kind = route_kind::counters_clear;
            return r;
        }
        if (res == "recordings" && n == 3 && !get) fail(405, "method_not_allowed", "GET");
        if (res == "recordings" && n == 4) {
            // /api/v1/recordings/{id} (docs/audio.md, "Deleting a recording")
            const auto id = parse_uint(seg[3]);
            if (!id || *id == 0) fail(404, "not_found", "no recording " + utf8_safe(seg[3]));
            r.recording = *id;
            no_body();
            if (get) r.kind = route_kind::recording_by_id;
            else if (del) r.kind = route_kind::recording_delete;
            else fail(405, "method_not_allowed", "GET or DELETE");
            return r;
        }
        if (res == "captures") {
            // /api/v1/captures[/{id}[/stop|/file]] (docs/capture.md)
            if (n == 3) {
                if (!post) fail(405, "method_not_allowed", "GET or POST");
                r.kind = route_kind::capture_start;
                return r;
            }
            const auto id = parse_uint(seg[3]);
            if (!id || *id == 0 || *id > 0xffffffffULL) fail(404, "not_found", "no capture " + utf8_safe(seg[3]));
            r.capture = static_cast<uint32_t>(*id);
            if (n == 4) {
                no_body();
                if (get) r.kind = route_kind::capture_get;
                else if (del) r.kind = route_kind::capture_delete;
                else fail(405, "method_not_allowed", "GET or DELETE");
                return r;
            }
            if (n == 5 && seg[4] == "stop") {
                if (!post) fail(405, "method_not_allowed", "POST .../stop");
                no_body();
                r.kind = route_kind::capture_stop;
                return r;
            }
            if (n == 5 && seg[4] == "file") {
                if (!get) fail(405, "method_not_allowed", "GET .../file");
                no_body();
                r.kind = route_kind::capture_file;
                return r;
            }
            no_resource(url);
        }
        if (res != "sessions") no_resource(url);
        if (n == 3) {
            if (!post) fail(405, "method_not_allowed", "GET or POST");
            r.kind = route_kind::session_create;
            return r;
        }
        r.session = session_or_fail(seg[3]);
        if (n == 4) {
            no_body();
            if (get) r.kind = route_kind::session_get;
            else if (del) r.kind = route_kind::session_end;
            else fail(405, "method_not_allowed", "GET or DELETE");
            return r;
        }
        const std::string& sub = seg[4];
        // SRTP keys (docs/srtp.md): .../srtp/keys[/ID], .../srtp/active,
        // .../speakers/IP:PORT/srtp/keys[/ID].
        {
            size_t at = 0;
            if (sub == "srtp") at = 5;
            else if (sub == "speakers" && n >= 7 && seg[6] == "srtp") at = 7;
            if (at != 0) {
                if (at == 7) {
                    r.ep = endpoint_or_fail(seg[5]);
                    r.ep_text = seg[5];
                    r.speaker = true;
                }
                if (n == at + 1 && seg[at] == "keys") {
                    if (!post) fail(405, "method_not_allowed", "POST .../srtp/keys or DELETE .../srtp/keys/ID");
                    r.kind = route_kind::srtp_key_add;
                    return r;
                }
                if (n == at + 2 && seg[at] == "keys") {
                    if (!del) fail(405, "method_not_allowed", "POST .../srtp/keys or DELETE .../srtp/keys/ID");
                    no_body();
                    r.kind = route_kind::srtp_key_del;
                    r.key_id = seg[at + 1];
                    if (auto e = check_key_id(r.key_id)) fail(400, "invalid", "key id " + *e);
                    return r;
                }
                if (at == 5 && n == 6 && seg[5] == "active") {
                    if (!post) fail(405, "method_not_allowed", "POST .../srtp/active");
                    r.kind = route_kind::srtp_key_activate;
                    return r;
                }
                no_resource(url);
            }
        }
        for (const auto& sr : session_routes) {
            if (sub != sr.sub) continue;
            const bool tail = sr.tail != nullptr;
            if (n != (tail ? 6u : 5u) || method != sr.method) continue;
            if (tail && sr.tail != endpoint_tail && seg[5] != sr.tail) continue;
            if (!sr.body) no_body();
            r.kind = sr.kind;
            if (sr.tail == endpoint_tail) {
                r.ep = endpoint_or_fail(seg[5]);
                r.ep_text = seg[5];
            }
            return r;
        }
        for (const auto& [s, allowed] : session_route_methods)
            if (sub == s) fail(405, "method_not_allowed", allowed);
        no_resource(url);
    });
}

// ------------------------------------------------------------ errors

std::string utf8_safe(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xbf;   // allowed range of the second byte
        if (c < 0x80) len = 1;
        else if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;          // no overlongs
            if (c == 0xed) hi = 0x9f;          // no surrogates
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;          // no overlongs
            if (c == 0xf4) hi = 0x8f;          // nothing above U+10FFFF
        }
        bool ok = len != 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            const unsigned char b = p[i + k];
            ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
        }
        if (ok) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out += "\xef\xbf\xbd";   // U+FFFD, one per bad byte
            ++i;
        }
    }
    return out;
}

std::string error_body(const std::string& code, const std::string& reason) {
    // json_text: even a reason that escaped utf8_safe() cannot make it throw
    // (the API answers errors from inside a catch handler).
    return json_text(json{{"error", code}, {"reason", reason}});
}

int http_status_of(error_code c) noexcept {
    switch (c) {
    case error_code::invalid: return 400;
    case error_code::not_found: return 404;
    case error_code::exists: return 409;
    case error_code::session_full: return 409;
    case error_code::capacity: return 503;
    case error_code::rate_limited: return 429;
    }
    return 500;
}

}  // namespace stentor::control
