#include "api.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>

#include <microhttpd.h>
#include <nlohmann/json.hpp>

#include "metrics.h"
#include "telemetry.h"

namespace stentor::control {

using nlohmann::json;
using clock_t_ = std::chrono::steady_clock;

// ---------------------------------------------------------------- control_plane

control_plane::control_plane(relay& r, const profile& p, control_options o) : _r(r), _p(p), _o(o) {
    std::vector<uint32_t> speeds;
    for (const auto& pr : r.ports()) speeds.push_back(pr.speed_mbps);
    _adm = std::make_unique<admission>(admission_config_from(p, speeds));
    _ovl = std::make_unique<overload_controller>(r.state(), _adm.get(), o.overload);
    r.state().set_admission(_adm.get());
    // Rates read 0 until the first tick has two samples to compare.
    for (const auto& pc : p.ports) _rates.ports.push_back({pc.name, 0, 0, 0, 0});
    for (unsigned l : r.worker_lcores()) _rates.lcores.push_back({l, 0, 0, 0, 0});
}

control_plane::~control_plane() {
    stop();
    telemetry_detach(this);
    _r.state().set_admission(nullptr);
}

void control_plane::start() {
    if (!_o.publisher || _thr.joinable()) return;
    _stop.store(false);
    _thr = std::thread([this] { run(); });
}

void control_plane::stop() {
    _stop.store(true);
    if (_thr.joinable()) _thr.join();
}

void control_plane::run() {
    auto next_tick = clock_t_::now() + _o.tick;
    while (!_stop.load(std::memory_order_relaxed)) {
        auto now = clock_t_::now();
        if (now >= next_tick) {
            tick(now);
            next_tick += _o.tick;
            if (next_tick < now) next_tick = now + _o.tick;
        }
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now) +
                          std::chrono::milliseconds(1);
        if (state().wait_pending(std::min<std::chrono::milliseconds>(wait, std::chrono::milliseconds(100)))) {
            state().publish();
            _publishes.fetch_add(1, std::memory_order_relaxed);
            // Batch window: whatever arrives in the next moment rides the next
            // publish together instead of one publish per request.
            std::this_thread::sleep_for(_o.min_publish_gap);
        }
    }
}

void control_plane::commit() {
    const uint64_t mark = state().change_mark();
    if (!_thr.joinable()) {
        state().publish();
        _publishes.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    state().wait_published(mark, std::chrono::seconds(10));
}

void control_plane::tick(clock_t_::time_point now) {
    const auto total = _r.totals();
    const auto per = _r.per_lcore();
    const auto ids = _r.worker_lcores();
    std::vector<std::pair<uint64_t, uint64_t>> bytes;
    for (const auto& pc : _p.ports) {
        uint64_t ib = 0, ob = 0;
        for (const auto& [k, v] : _r.port_counters()) {
            if (k == "port/" + pc.name + "/ibytes") ib = v;
            if (k == "port/" + pc.name + "/obytes") ob = v;
        }
        bytes.emplace_back(ib, ob);
    }
    if (_have_prev) {
        _ovl->tick(sample_delta(_prev_total, total), now);
        const double dt = std::max(1e-6, std::chrono::duration<double>(now - _prev_at).count());
        rate_view rv;
        rv.interval_s = dt;
        auto rate = [dt](uint64_t a, uint64_t b) { return a >= b ? static_cast<double>(a - b) / dt : 0.0; };
        for (size_t i = 0; i < _p.ports.size() && i < dp::max_ports; ++i)
            rv.ports.push_back({_p.ports[i].name, rate(total.port_rx[i], _prev_total.port_rx[i]),
                                rate(total.port_tx[i], _prev_total.port_tx[i]),
                                8 * rate(bytes[i].first, _prev_port_bytes[i].first),
                                8 * rate(bytes[i].second, _prev_port_bytes[i].second)});
        for (size_t i = 0; i < per.size() && i < _prev_lcore.size(); ++i) {
            const auto& c = per[i];
            const auto& q = _prev_lcore[i];
            const double cyc = static_cast<double>((c.busy_cycles - q.busy_cycles) + (c.idle_cycles - q.idle_cycles));
            rv.lcores.push_back({ids[i], rate(c.rx_packets, q.rx_packets), rate(c.replicas_out, q.replicas_out),
                                 8 * rate(c.tx_bytes, q.tx_bytes),
                                 cyc > 0 ? static_cast<double>(c.busy_cycles - q.busy_cycles) / cyc : 0.0});
        }
        std::lock_guard g(_rates_mu);
        _rates = std::move(rv);
    }
    _prev_total = total;
    _prev_lcore = per;
    _prev_port_bytes = bytes;
    _prev_at = now;
    _have_prev = true;
}

rate_view control_plane::rates() const {
    std::lock_guard g(_rates_mu);
    return _rates;
}

bool token_equal(const std::string& presented, const std::string& expected) noexcept {
    // Time depends only on the expected token's length, never on where the
    // first difference is.
    unsigned char diff = presented.size() != expected.size() ? 1 : 0;
    for (size_t i = 0; i < expected.size(); ++i) {
        const unsigned char a = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
        diff |= static_cast<unsigned char>(a ^ static_cast<unsigned char>(expected[i]));
    }
    return diff == 0 && !expected.empty();
}

// ---------------------------------------------------------------- HTTP

namespace {

struct api_fail {
    int status;
    std::string code;
    std::string reason;
    unsigned retry_after = 0;
};

[[noreturn]] void fail(int status, const std::string& code, const std::string& reason) {
    throw api_fail{status, code, reason};
}

struct reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
    unsigned retry_after = 0;
};

reply json_reply(int status, const json& j) { return {status, j.dump(), "application/json", 0}; }

// A recording as the API and stentorctl show it (docs/audio.md).
json recording_json(const recording_info& r) {
    json tracks = json::array();
    for (const auto& t : r.tracks)
        tracks.push_back({{"ssrc", t.ssrc},
                          {"path", t.path},
                          {"start_offset_s", t.start_offset_s},
                          {"duration_s", t.duration_s},
                          {"bytes", t.bytes},
                          {"packets", t.stats.packets},
                          {"lost", t.stats.lost},
                          {"filled", t.stats.fillers}});
    return {{"session", r.session_id},
            {"name", r.name},
            {"mode", r.mode},
            {"state", r.state},
            {"path", r.path.empty() ? json(nullptr) : json(r.path)},
            {"duration_s", r.duration_s},
            {"bytes", r.bytes},
            {"error", r.error.empty() ? json(nullptr) : json(r.error)},
            {"started_unix_ms", r.started_unix_ms},
            {"ended_unix_ms", r.ended_unix_ms == 0 ? json(nullptr) : json(r.ended_unix_ms)},
            {"tracks", tracks}};
}

// Nesting depth of a JSON text, counted before parsing so a hostile body
// cannot make the parser recurse; strings (with escapes) are skipped.
unsigned json_depth(std::string_view s) {
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

json parse_body(const std::string& body, unsigned max_depth) {
    if (body.empty()) fail(400, "invalid", "a JSON body is required");
    if (json_depth(body) > max_depth) fail(400, "invalid", "JSON nested deeper than " + std::to_string(max_depth));
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) fail(400, "invalid", "body is not valid JSON");
    if (!j.is_object()) fail(400, "invalid", "body must be a JSON object");
    return j;
}

void only_fields(const json& j, std::initializer_list<const char*> allowed, const std::string& where = "") {
    for (auto it = j.begin(); it != j.end(); ++it)
        if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return it.key() == a; }) == allowed.end())
            fail(400, "invalid", where + "unknown field \"" + it.key() + "\"");
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

std::string get_string(const json& j, const char* k, const std::string& def, const std::string& where = "") {
    auto it = j.find(k);
    if (it == j.end()) return def;
    if (!it->is_string()) fail(400, "invalid", where + "\"" + k + "\" must be a string");
    return it->get<std::string>();
}

uint32_t req_ip(const json& j, const char* k, const std::string& where = "") {
    auto it = j.find(k);
    if (it == j.end()) fail(400, "invalid", where + "\"" + k + "\" is required");
    if (!it->is_string()) fail(400, "invalid", where + "\"" + k + "\" must be a dotted-quad string");
    auto ip = parse_ipv4(it->get_ref<const std::string&>());
    if (!ip) fail(400, "invalid", where + "\"" + it->get<std::string>() + "\" is not an IPv4 address");
    return *ip;
}

std::optional<uint64_t> to_uint(std::string_view s) {
    uint64_t v = 0;
    if (s.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

uint32_t path_session(const std::string& seg) {
    auto v = to_uint(seg);
    if (!v || *v == 0 || *v > 0xffffffffULL) fail(404, "not_found", "no session " + seg);
    return static_cast<uint32_t>(*v);
}

// "198.18.0.5:6000" in a path.
std::pair<uint32_t, unsigned> path_endpoint(const std::string& seg) {
    const auto colon = seg.rfind(':');
    if (colon == std::string::npos) fail(400, "invalid", "expected ADDRESS:PORT, got \"" + seg + "\"");
    auto ip = parse_ipv4(std::string_view(seg).substr(0, colon));
    auto port = to_uint(std::string_view(seg).substr(colon + 1));
    if (!ip || !port || *port == 0 || *port > 65535) fail(400, "invalid", "expected ADDRESS:PORT, got \"" + seg + "\"");
    return {*ip, static_cast<unsigned>(*port)};
}

std::vector<std::string> split_path(const std::string& url) {
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

struct conn_ctx {
    std::string body;
    size_t limit = 0;
    bool too_large = false;
};

}  // namespace

struct api_server::impl {
    control_plane& cp;
    api_options opt;
    MHD_Daemon* d = nullptr;

    impl(control_plane& c, api_options o) : cp(c), opt(std::move(o)) {}

    static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                                 const char* /*version*/, const char* upload, size_t* upload_size, void** con_cls) {
        auto* self = static_cast<impl*>(cls);
        auto* ctx = static_cast<conn_ctx*>(*con_cls);
        if (ctx == nullptr) {
            ctx = new conn_ctx;
            const std::string u = url;
            ctx->limit = u.size() >= 15 && u.compare(u.size() - 15, 15, "/listeners/bulk") == 0 ? self->opt.max_bulk_body
                                                                                              : self->opt.max_body;
            if (const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
                auto n = to_uint(cl);
                if (n && *n > ctx->limit) ctx->too_large = true;
                else if (n) ctx->body.reserve(*n);
            }
            *con_cls = ctx;
            return MHD_YES;
        }
        if (*upload_size != 0) {
            // Over the limit: keep reading (and discarding) so the client
            // gets the 413 rather than a reset connection.
            if (!ctx->too_large && ctx->body.size() + *upload_size <= ctx->limit) ctx->body.append(upload, *upload_size);
            else ctx->too_large = true;
            *upload_size = 0;
            return MHD_YES;
        }
        reply r;
        try {
            if (ctx->too_large)
                fail(413, "invalid", "body larger than " + std::to_string(ctx->limit) + " bytes");
            r = self->dispatch(c, url, method, ctx->body);
        } catch (const api_fail& f) {
            r = json_reply(f.status, json{{"error", f.code}, {"reason", f.reason}});
            r.retry_after = f.retry_after;
        } catch (const action_error& e) {
            r = json_reply(e.status, json{{"error", e.code}, {"reason", e.what()}});
            r.retry_after = e.retry_after_s;
        } catch (const std::exception& e) {
            r = json_reply(500, json{{"error", "internal"}, {"reason", e.what()}});
        }
        MHD_Response* resp =
            MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
        if (resp == nullptr) return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
        if (r.retry_after != 0)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, std::to_string(r.retry_after).c_str());
        if (r.status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        const MHD_Result ret = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
        MHD_destroy_response(resp);
        return ret;
    }

    static void on_done(void* /*cls*/, MHD_Connection* /*c*/, void** con_cls, MHD_RequestTerminationCode /*t*/) {
        delete static_cast<conn_ctx*>(*con_cls);
        *con_cls = nullptr;
    }

    bool authorized(MHD_Connection* c) const {
        const char* h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (h == nullptr) return false;
        std::string_view v(h);
        if (v.size() < 7 || strncasecmp(v.data(), "Bearer ", 7) != 0) return false;
        return token_equal(std::string(v.substr(7)), opt.token);
    }

    static std::optional<uint64_t> query_uint(MHD_Connection* c, const char* k) {
        const char* v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
        if (v == nullptr) return std::nullopt;
        auto n = to_uint(v);
        if (!n) fail(400, "invalid", std::string("query parameter ") + k + " must be a non-negative integer");
        return n;
    }

    reply dispatch(MHD_Connection* c, const std::string& url, const std::string& method, const std::string& body) {
        const auto seg = split_path(url);
        const bool get = method == "GET", post = method == "POST", del = method == "DELETE";
        auto no_body = [&] {
            if (!body.empty()) fail(400, "invalid", "this request takes no body");
        };
        if (seg.size() == 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "health") {
            if (!get) fail(405, "method_not_allowed", "GET only");
            return json_reply(200, {{"status", "ok"}, {"published_version", cp.state().published_version()}});
        }
        const bool is_metrics = seg.size() == 1 && seg[0] == "metrics";
        if (!is_metrics && (seg.size() < 3 || seg[0] != "api" || seg[1] != "v1"))
            fail(404, "not_found", "no resource " + url);
        if (!authorized(c)) fail(401, "unauthorized", "missing or wrong bearer token");
        if (is_metrics) {
            if (!get) fail(405, "method_not_allowed", "GET only");
            return {200, prometheus_text(cp), "text/plain; version=0.0.4", 0};
        }
        const std::string& res = seg[2];
        const size_t n = seg.size();
        if (n == 3 && get) {
            no_body();
            if (res == "stats") return json_reply(200, stats_json(cp));
            if (res == "ports") return json_reply(200, ports_json(cp));
            if (res == "lcores") return json_reply(200, lcores_json(cp));
            if (res == "drops") return json_reply(200, drops_json(cp));
            if (res == "capacity") return json_reply(200, capacity_json(cp));
            if (res == "events") return json_reply(200, events_json(cp, query_uint(c, "after").value_or(0)));
            if (res == "sessions") return json_reply(200, sessions_json(cp));
            if (res == "recordings") {
                json a = json::array();
                for (const auto& r : cp.rel().recordings()) a.push_back(recording_json(r));
                return json_reply(200, {{"recordings", a}});
            }
        }
        if (res != "sessions") fail(404, "not_found", "no resource " + url);
        if (n == 3) {
            if (!post) fail(405, "method_not_allowed", "GET or POST");
            return session_create(body);
        }
        const uint32_t sid = path_session(seg[3]);
        if (n == 4) {
            no_body();
            if (get) {
                auto v = cp.state().session(sid);
                if (!v) fail(404, "not_found", "no session " + std::to_string(sid));
                return json_reply(200, session_json(*v));
            }
            if (del) {
                cp.state().session_end(sid);
                cp.commit();
                return json_reply(200, {{"ended", sid}});
            }
            fail(405, "method_not_allowed", "GET or DELETE");
        }
        const std::string& sub = seg[4];
        if (sub == "recording") {
            if (n != 5 || !get) fail(405, "method_not_allowed", "GET .../recording");
            no_body();
            const auto r = cp.rel().recording(sid);
            if (!r) fail(404, "not_found", "session " + std::to_string(sid) + " has no recording");
            return json_reply(200, recording_json(*r));
        }
        if (sub == "speakers") {
            if (n == 5 && post) {
                const json j = parse_body(body, opt.max_depth);
                only_fields(j, {"ip", "port", "ssrc"});
                const uint32_t ip = req_ip(j, "ip");
                const auto port = static_cast<unsigned>(req_uint(j, "port", 65535));
                std::optional<uint32_t> ssrc;
                if (j.contains("ssrc") && !j["ssrc"].is_null()) ssrc = static_cast<uint32_t>(req_uint(j, "ssrc", 0xffffffffULL));
                cp.state().speaker_add(sid, ip, port, ssrc);
                cp.commit();
                json o{{"session", sid}, {"ip", format_ipv4(ip)}, {"port", port}};
                o["ssrc"] = ssrc ? json(*ssrc) : json(nullptr);
                return json_reply(201, o);
            }
            if (n == 6 && del) {
                no_body();
                const auto [ip, port] = path_endpoint(seg[5]);
                cp.state().speaker_del(sid, ip, port);
                cp.commit();
                return json_reply(200, {{"removed", seg[5]}});
            }
            fail(405, "method_not_allowed", "POST .../speakers or DELETE .../speakers/IP:PORT");
        }
        if (sub == "listeners") {
            if (n == 5 && get) {
                no_body();
                const uint64_t offset = query_uint(c, "offset").value_or(0);
                const uint64_t limit = std::min<uint64_t>(query_uint(c, "limit").value_or(1000), 100000);
                auto v = cp.state().session(sid);
                if (!v) fail(404, "not_found", "no session " + std::to_string(sid));
                json a = json::array();
                for (const auto& l : cp.state().listeners(sid, offset, limit))
                    a.push_back({{"ip", format_ipv4(l.ip)}, {"port", l.port}, {"tier", l.tier}});
                return json_reply(200, {{"session", sid}, {"total", v->nb_listeners}, {"offset", offset}, {"listeners", a}});
            }
            if (n == 5 && post) {
                const json j = parse_body(body, opt.max_depth);
                const listener_spec l = listener_of(j, "");
                cp.state().listener_add(sid, l.ip, l.port, l.tier);
                cp.commit();
                return json_reply(201, {{"session", sid}, {"ip", format_ipv4(l.ip)}, {"port", l.port}, {"tier", l.tier}});
            }
            if (n == 6 && post && seg[5] == "bulk") return listener_bulk(sid, body);
            if (n == 6 && del) {
                no_body();
                const auto [ip, port] = path_endpoint(seg[5]);
                cp.state().listener_del(sid, ip, port);
                cp.commit();
                return json_reply(200, {{"removed", seg[5]}});
            }
            fail(405, "method_not_allowed", "GET/POST .../listeners, POST .../listeners/bulk, DELETE .../listeners/IP:PORT");
        }
        fail(404, "not_found", "no resource " + url);
    }

    static listener_spec listener_of(const json& j, const std::string& where) {
        if (!j.is_object()) fail(400, "invalid", where + "a listener must be an object");
        only_fields(j, {"ip", "port", "tier"}, where);
        listener_spec l;
        l.ip = req_ip(j, "ip", where);
        l.port = static_cast<unsigned>(req_uint(j, "port", 65535, where));
        l.tier = static_cast<unsigned>(get_uint(j, "tier", 0, 255, where));
        return l;
    }

    reply session_create(const std::string& body) {
        const json j = parse_body(body, opt.max_depth);
        only_fields(j, {"id", "name", "mode", "udp_port", "max_listeners", "recording", "frame_ms", "max_bitrate_kbps"});
        session_params sp;
        sp.id = static_cast<uint32_t>(get_uint(j, "id", 0, 0xffffffffULL));
        sp.name = get_string(j, "name", "");
        sp.mode = get_string(j, "mode", "forward");
        sp.udp_port = static_cast<unsigned>(get_uint(j, "udp_port", 0, 65535));
        sp.max_listeners = static_cast<unsigned>(get_uint(j, "max_listeners", 0, 0xffffffffULL));
        if (auto it = j.find("recording"); it != j.end()) {
            if (!it->is_boolean()) fail(400, "invalid", "\"recording\" must be true or false");
            sp.recording = it->get<bool>();
        }
        sp.frame_ms = static_cast<unsigned>(get_uint(j, "frame_ms", 20, 1000));
        sp.max_bitrate_kbps = static_cast<unsigned>(get_uint(j, "max_bitrate_kbps", 256, 100000));
        if (sp.name.size() > 128) fail(400, "invalid", "\"name\" longer than 128 characters");
        const session_view v = cp.state().session_create(sp);
        cp.commit();
        return json_reply(201, session_json(v));
    }

    // All or nothing (see relay_state::listener_add_bulk): one bad item
    // refuses the request with its index, and nothing is added.
    reply listener_bulk(uint32_t sid, const std::string& body) {
        const json j = parse_body(body, opt.max_depth);
        only_fields(j, {"listeners"});
        auto it = j.find("listeners");
        if (it == j.end() || !it->is_array()) fail(400, "invalid", "\"listeners\" must be an array");
        if (it->size() > opt.max_bulk_items)
            fail(400, "invalid", "at most " + std::to_string(opt.max_bulk_items) + " listeners per request");
        std::vector<listener_spec> items;
        items.reserve(it->size());
        for (size_t i = 0; i < it->size(); ++i)
            items.push_back(listener_of((*it)[i], "listeners[" + std::to_string(i) + "]: "));
        cp.state().listener_add_bulk(sid, items);
        cp.commit();
        return json_reply(201, {{"session", sid}, {"added", items.size()}});
    }
};

api_server::api_server(control_plane& cp, api_options o) : _impl(std::make_unique<impl>(cp, std::move(o))) {
    auto& im = *_impl;
    if (im.opt.token.empty()) throw std::invalid_argument("api: a bearer token is required");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(im.opt.listen_port));
    if (inet_pton(AF_INET, im.opt.listen_addr.c_str(), &sa.sin_addr) != 1)
        throw std::invalid_argument("api: listen address \"" + im.opt.listen_addr + "\" is not IPv4");
    // One thread per connection: a write blocks its connection until its
    // publish passes the grace period, and must not hold up other clients
    // (their writes are what batches into the same publish).
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    im.d = MHD_start_daemon(flags, static_cast<uint16_t>(im.opt.listen_port), nullptr, nullptr, &impl::on_request, &im,
                            MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(&sa),
                            MHD_OPTION_NOTIFY_COMPLETED, &impl::on_done, nullptr,
                            MHD_OPTION_CONNECTION_LIMIT, 256u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                            MHD_OPTION_END);
    if (im.d == nullptr)
        throw std::runtime_error("api: cannot listen on " + im.opt.listen_addr + ":" + std::to_string(im.opt.listen_port));
    const MHD_DaemonInfo* info = MHD_get_daemon_info(im.d, MHD_DAEMON_INFO_BIND_PORT);
    _port = info != nullptr ? info->port : im.opt.listen_port;
}

api_server::~api_server() {
    if (_impl->d != nullptr) MHD_stop_daemon(_impl->d);
}

}  // namespace stentor::control
