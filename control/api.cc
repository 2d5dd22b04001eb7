#include "api.h"
#include "api_parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

#include <microhttpd.h>
#include <nlohmann/json.hpp>

#include "metrics.h"

namespace stentor::control {

using nlohmann::json;

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

[[noreturn]] void fail(const parse_error& e) { throw api_fail{e.status, e.code, e.reason}; }

// The typed request, or the parse layer's error as the answer.
template <class T>
T need(parse_result<T> r) {
    if (!r) fail(r.error());
    return std::move(r.value());
}

struct reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
    unsigned retry_after = 0;
};

// replace: a string that is not UTF-8 must not make dump() throw.
reply json_reply(int status, const json& j) {
    return {status, j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json", 0};
}

reply error_reply(int status, const std::string& code, const std::string& reason) {
    return {status, error_body(code, reason), "application/json", 0};
}

// A recording as the API and stentorctl show it (README.md, "Audio: mix mode and recordings").
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
            ctx->limit = body_limit_for(url, self->limits());
            if (const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
                auto n = parse_uint(cl);
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
            if (ctx->too_large) fail(body_too_large(ctx->limit));
            r = self->dispatch(c, url, method, ctx->body);
        } catch (const api_fail& f) {
            r = error_reply(f.status, f.code, f.reason);
            r.retry_after = f.retry_after;
        } catch (const action_error& e) {
            r = error_reply(http_status_of(e.code), std::string(name_of(e.code)), e.what());
            r.retry_after = e.retry_after_s;
        } catch (const std::exception& e) {
            r = error_reply(500, "internal", e.what());
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

    // A join is acknowledged (201) once it is forwarded to and its next hop
    // resolved: the listener hears the next packet. If the next hop has not
    // answered ARP within limits.join_resolve_ms the join stands but is
    // answered 202 with the next hops still unresolved: its packets are
    // dropped (drop/egress/neigh_unresolved) until they answer.
    reply join_reply(json body, const std::vector<uint32_t>& unresolved) const {
        body["resolved"] = unresolved.empty();
        if (unresolved.empty()) return json_reply(201, body);
        json hops = json::array();
        for (const uint32_t ip : unresolved) hops.push_back(format_ipv4(ip));
        body["unresolved_next_hops"] = hops;
        body["reason"] = "next hop did not answer ARP within " + std::to_string(cp.join_resolve_ms()) +
                         " ms; the listener is added and hears the session once it answers";
        return json_reply(202, body);
    }

    static std::optional<uint64_t> query_uint(MHD_Connection* c, const char* k) {
        const char* v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
        if (v == nullptr) return std::nullopt;
        return need(parse_query_uint(k, v));
    }

    parse_limits limits() const { return {opt.max_body, opt.max_bulk_body, opt.max_depth, opt.max_bulk_items}; }

    reply dispatch(MHD_Connection* c, const std::string& url, const std::string& method, const std::string& body) {
        // Paths outside the API are answered 404 before the token check.
        if (route_needs_auth(url) && !authorized(c)) fail(401, "unauthorized", "missing or wrong bearer token");
        const route rt = need(parse_route(method, url, !body.empty()));
        const uint32_t sid = rt.session;
        switch (rt.kind) {
        case route_kind::health:
            return json_reply(200, {{"status", "ok"}, {"published_version", cp.state().published_version()}});
        case route_kind::metrics: return {200, prometheus_text(cp), "text/plain; version=0.0.4", 0};
        case route_kind::stats: return json_reply(200, stats_json(cp));
        case route_kind::ports: return json_reply(200, ports_json(cp));
        case route_kind::lcores: return json_reply(200, lcores_json(cp));
        case route_kind::drops: return json_reply(200, drops_json(cp));
        case route_kind::capacity: return json_reply(200, capacity_json(cp));
        case route_kind::events: return json_reply(200, events_json(cp, query_uint(c, "after").value_or(0)));
        case route_kind::sessions_list: return json_reply(200, sessions_json(cp));
        case route_kind::recordings_list: {
            json a = json::array();
            for (const auto& r : cp.rel().recordings()) a.push_back(recording_json(r));
            return json_reply(200, {{"recordings", a}});
        }
        case route_kind::session_create: {
            const session_params sp = need(parse_session_create(body, limits()));
            const session_view v = cp.state().session_create(sp);
            cp.commit();
            return json_reply(201, session_json(v));
        }
        case route_kind::session_get: {
            auto v = cp.state().session(sid);
            if (!v) fail(404, "not_found", "no session " + std::to_string(sid));
            return json_reply(200, session_json(*v));
        }
        case route_kind::session_end:
            cp.state().session_end(sid);
            cp.commit();
            return json_reply(200, {{"ended", sid}});
        case route_kind::recording_get: {
            const auto r = cp.rel().recording(sid);
            if (!r) fail(404, "not_found", "session " + std::to_string(sid) + " has no recording");
            return json_reply(200, recording_json(*r));
        }
        case route_kind::speaker_add: {
            const speaker_spec s = need(parse_speaker_add(body, limits()));
            cp.state().speaker_add(sid, s.ip, s.port, s.ssrc);
            cp.commit();
            json o{{"session", sid}, {"ip", format_ipv4(s.ip)}, {"port", s.port}};
            o["ssrc"] = s.ssrc ? json(*s.ssrc) : json(nullptr);
            return json_reply(201, o);
        }
        case route_kind::speaker_del:
            cp.state().speaker_del(sid, rt.ep.ip, rt.ep.port);
            cp.commit();
            return json_reply(200, {{"removed", rt.ep_text}});
        case route_kind::listeners_list: {
            const uint64_t offset = query_uint(c, "offset").value_or(0);
            const uint64_t limit = std::min<uint64_t>(query_uint(c, "limit").value_or(1000), 100000);
            auto v = cp.state().session(sid);
            if (!v) fail(404, "not_found", "no session " + std::to_string(sid));
            // `after` is the cursor the previous page returned as `next`.
            const std::optional<uint64_t> after = query_uint(c, "after");
            json a = json::array();
            const auto page = cp.state().listeners(sid, offset, limit, after);
            for (const auto& l : page) a.push_back({{"ip", format_ipv4(l.ip)}, {"port", l.port}, {"tier", l.tier}});
            json out = {{"session", sid}, {"total", v->nb_listeners}, {"offset", offset}, {"listeners", a}};
            if (after) out["after"] = *after;
            out["next"] = page.size() == limit && limit != 0 ? json(page.back().seq) : json(nullptr);
            return json_reply(200, out);
        }
        case route_kind::listener_add: {
            const listener_spec l = need(parse_listener_add(body, limits()));
            cp.state().listener_add(sid, l.ip, l.port, l.tier);
            cp.commit();
            return join_reply({{"session", sid}, {"ip", format_ipv4(l.ip)}, {"port", l.port}, {"tier", l.tier}},
                              cp.wait_resolved({l.ip}));
        }
        case route_kind::listener_bulk: {
            // All or nothing (see relay_state::listener_add_bulk): one bad
            // item refuses the request with its index, and nothing is added.
            const std::vector<listener_spec> items = need(parse_listener_bulk(body, limits()));
            cp.state().listener_add_bulk(sid, items);
            cp.commit();
            std::vector<uint32_t> ips;
            ips.reserve(items.size());
            for (const auto& it : items) ips.push_back(it.ip);
            return join_reply({{"session", sid}, {"added", items.size()}}, cp.wait_resolved(ips));
        }
        case route_kind::listener_del:
            cp.state().listener_del(sid, rt.ep.ip, rt.ep.port);
            cp.commit();
            return json_reply(200, {{"removed", rt.ep_text}});
        }
        fail(500, "internal", "unhandled route");
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
