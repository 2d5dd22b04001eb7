#include "director_api.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "director.h"
#include "json_text.h"

namespace stentor::control {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

constexpr size_t max_body = 4096;
constexpr size_t max_exclude = 16;

// One request (libmicrohttpd's con_cls).
struct request {
    std::string text;
    bool too_big = false;
    bool answered = false;             // answered from its headers (401)
    steady::time_point deadline;       // its body, whole
};

MHD_Result reply(MHD_Connection* c, unsigned status, const std::string& text) {
    MHD_Response* r = MHD_create_response_from_buffer(text.size(), const_cast<char*>(text.data()), MHD_RESPMEM_MUST_COPY);
    if (r == nullptr) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    const MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

// Every answer of the director: json_text, never dump() (a last_error or a
// record may hold bytes that are not UTF-8).
MHD_Result answer(MHD_Connection* c, unsigned status, const json& j) { return reply(c, status, json_text(j) + "\n"); }

MHD_Result error(MHD_Connection* c, unsigned status, const std::string& code, const std::string& reason) {
    return answer(c, status, json{{"error", code}, {"reason", reason}});
}

unsigned status_of(fleet::place_error e) {
    switch (e) {
    case fleet::place_error::none: return 200;
    case fleet::place_error::bad_request: return 400;
    case fleet::place_error::unknown_session: return 404;
    case fleet::place_error::no_capacity:
    case fleet::place_error::registry_stale:
    case fleet::place_error::registry_write: return 503;
    }
    return 500;
}

json guard_json(const director_api_status& st) {
    json j{{"connections", st.connections}, {"unauthorized", st.unauthorized}};
    st.guard.for_each([&](const char* name, const char*, uint64_t v) { j[name] = v; });
    return j;
}

}  // namespace

struct director_api::impl {
    fleet::director& dir;
    director_api_options opt;
    std::unique_ptr<http_transport> transport;
    std::unique_ptr<http_guard> guard;
    MHD_Daemon* d = nullptr;
    std::atomic<uint64_t> unauthorized{0};

    impl(fleet::director& di, director_api_options o) : dir(di), opt(std::move(o)) {}

    director_api_status status() const {
        director_api_status s;
        if (guard) {
            s.guard = guard->stats();
            s.connections = guard->connections();
        }
        s.unauthorized = unauthorized.load(std::memory_order_relaxed);
        return s;
    }

    MHD_Result on_place(MHD_Connection* c, const std::string& text) {
        const json j = json::parse(text, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return error(c, 400, "bad_request", "body is not a JSON object");
        for (const auto& [k, v] : j.items()) {
            (void)v;
            if (k != "session" && k != "listeners" && k != "region" && k != "tier" && k != "exclude" && k != "family")
                return error(c, 400, "bad_request",
                             "unknown field \"" + k + "\" (known: session, listeners, region, tier, exclude, family)");
        }
        fleet::place_request req;
        const auto uint_field = [&](const char* k, uint64_t min, uint64_t max, uint64_t& out) -> std::string {
            if (!j.contains(k)) return std::string(k) + " is required";
            if (!j[k].is_number_unsigned()) return std::string(k) + " must be a non-negative integer";
            out = j[k].get<uint64_t>();
            if (out < min || out > max) return fmt::format("{} {} is out of range {}..{}", k, out, min, max);
            return {};
        };
        uint64_t v = 0;
        if (auto why = uint_field("session", 1, 4294967295u, v); !why.empty()) return error(c, 400, "bad_request", why);
        req.session = static_cast<uint32_t>(v);
        if (auto why = uint_field("listeners", 1, opt.max_per_request, v); !why.empty())
            return error(c, 400, "bad_request", why);
        req.count = static_cast<uint32_t>(v);
        if (j.contains("tier")) {
            if (auto why = uint_field("tier", 0, 3, v); !why.empty()) return error(c, 400, "bad_request", why);
            req.tier = static_cast<uint8_t>(v);
        }
        if (j.contains("region")) {
            if (!j["region"].is_string()) return error(c, 400, "bad_request", "region must be a string");
            req.region = j["region"].get<std::string>();
        }
        // The family of the address the listener joins (docs/fleet.md): the
        // caller says it (an application backend asks for its clients, so the
        // request's own source address says nothing); IPv4 when absent.
        // director::place refuses a value that is neither.
        if (j.contains("family")) {
            if (!j["family"].is_string()) return error(c, 400, "bad_request", "family must be \"ipv4\" or \"ipv6\"");
            req.family = j["family"].get<std::string>();
        }
        // A client that lost its edge names it (docs/fleet.md "Failover"): the
        // registry may hold it until its lease lapses. A hint, bounded.
        std::vector<std::string> exclude;
        if (j.contains("exclude")) {
            const auto& e = j["exclude"];
            if (!e.is_array() || e.size() > max_exclude)
                return error(c, 400, "bad_request",
                             fmt::format("exclude must be an array of at most {} edge ids", max_exclude));
            for (const auto& id : e) {
                if (!id.is_string() || id.get_ref<const std::string&>().empty() ||
                    id.get_ref<const std::string&>().size() > 64)
                    return error(c, 400, "bad_request",
                                 "exclude: each entry must be an edge id (a string of 1..64 characters)");
                exclude.push_back(id.get<std::string>());
            }
        }
        const auto a = dir.place(req, exclude);
        if (a.error != fleet::place_error::none)
            return error(c, status_of(a.error), fleet::place_error_name(a.error), a.reason);
        json out{{"session", req.session}, {"trunks_created", a.trunks_created}};
        json arr = json::array();
        for (const auto& p : a.placements)
            arr.push_back({{"edge", p.edge}, {"address", p.address}, {"port", p.port}, {"token", p.token},
                           {"password", p.password}});
        out["placements"] = std::move(arr);
        return answer(c, 200, out);
    }

    // /healthz: ok or degraded for anyone (a load balancer's probe); the
    // registry's age, its last error (etcd URLs, error text) and the
    // connection counters only with the token.
    MHD_Result on_health(MHD_Connection* c) {
        const auto st = dir.status();
        const unsigned code = st.stale ? 503 : 200;
        json j{{"status", st.stale ? "degraded" : "ok"}};
        if (bearer_ok(c, opt.token)) {
            http_guard::authenticated(c);
            j["stale"] = st.stale;
            j["view_age_s"] = st.view_age_s;
            j["last_error"] = st.last_error;
            j["http"] = guard_json(status());
        }
        return answer(c, code, j);
    }

    // libmicrohttpd is C: an exception that left this callback would end
    // the process. Whatever a handler throws is a 500 with its reason.
    static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                                 const char* version, const char* upload, size_t* upload_size, void** con_cls) {
        try {
            return route(cls, c, url, method, version, upload, upload_size, con_cls);
        } catch (const std::exception& e) {
            try {
                return error(c, 500, "internal", e.what());
            } catch (...) {
                return MHD_NO;   // out of memory: the connection is closed
            }
        } catch (...) {
            return MHD_NO;
        }
    }

    static MHD_Result route(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                            const char* upload, size_t* upload_size, void** con_cls) {
        auto& self = *static_cast<impl*>(cls);
        const std::string path = url;
        if (*con_cls == nullptr) {
            // The headers are in, no body byte read: the token is checked now,
            // so nothing an unauthenticated client sends is ever buffered.
            http_guard::request_started(c);
            auto* rq = new request;
            rq->deadline = steady::now() + std::chrono::seconds(self.opt.limits.header_timeout_s);
            *con_cls = rq;
            if (path == "/healthz") return MHD_YES;
            if (!bearer_ok(c, self.opt.token)) {
                self.unauthorized.fetch_add(1, std::memory_order_relaxed);
                rq->answered = true;
                return error(c, 401, "unauthorized", "Authorization: Bearer <[director] token> required");
            }
            http_guard::authenticated(c);
            return MHD_YES;
        }
        auto* b = static_cast<request*>(*con_cls);
        if (b->answered) {
            *upload_size = 0;
            return MHD_YES;
        }
        if (*upload_size != 0) {
            // A body trickled in: the whole of it within the deadline.
            if (steady::now() > b->deadline) return MHD_NO;   // closes the connection
            if (b->text.size() + *upload_size > max_body) b->too_big = true;
            else b->text.append(upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        if (path == "/healthz" && std::strcmp(method, "GET") == 0) return self.on_health(c);
        if (path == "/v1/place") {
            if (std::strcmp(method, "POST") != 0) return error(c, 405, "method", "POST only");
            if (b->too_big) return error(c, 413, "too_large", fmt::format("body larger than {} bytes", max_body));
            return self.on_place(c, b->text);
        }
        if (path == "/v1/registry" && std::strcmp(method, "GET") == 0) {
            const auto st = self.dir.status();
            json relays = json::array();
            for (const auto& r : self.dir.relays()) relays.push_back(json::parse(r.to_json()));
            return answer(c, 200,
                          json{{"relays", relays},
                               {"directors", st.directors},
                               {"trunks", st.trunks},
                               {"view_age_s", st.view_age_s},
                               {"stale", st.stale},
                               {"watch_restarts", st.watch_restarts},
                               {"records_refused", st.records_refused},
                               {"last_error", st.last_error}});
        }
        return error(c, 404, "not_found", "routes: POST /v1/place, GET /v1/registry, GET /healthz");
    }

    static void on_done(void*, MHD_Connection* c, void** con_cls, MHD_RequestTerminationCode) {
        http_guard::request_done(c);
        delete static_cast<request*>(*con_cls);
        *con_cls = nullptr;
    }
};

director_api_options director_api_options_from(const director_config& d) {
    director_api_options o;
    o.listen_addr = d.listen_addr;
    o.listen_port = d.listen_port;
    o.token = d.token;
    o.threads = d.threads;
    o.max_per_request = d.max_per_request;
    o.limits = {d.max_connections, d.max_connections_per_ip, d.idle_timeout_s, d.header_timeout_s};
    o.tls_cert_file = d.tls_cert;
    o.tls_key_file = d.tls_key;
    return o;
}

director_api::director_api(fleet::director& dir, director_api_options o)
    : _impl(std::make_unique<impl>(dir, std::move(o))) {
    auto& im = *_impl;
    if (im.opt.token.empty()) throw std::invalid_argument("director: a bearer token is required");
    if (im.opt.threads == 0) throw std::invalid_argument("director: threads must be at least 1");
    im.transport = std::make_unique<http_transport>("director", im.opt.listen_addr, im.opt.listen_port,
                                                    im.opt.tls_cert_file, im.opt.tls_key_file);
    http_transport& tr = *im.transport;
    im.guard = std::make_unique<http_guard>(im.opt.limits);
    im.d = im.guard->start_daemon(0, im.opt.threads, tr, &impl::on_request, &im, &impl::on_done, &im);
    if (im.d == nullptr)
        throw std::runtime_error(fmt::format("director: cannot listen on {}:{}{}", im.opt.listen_addr,
                                             im.opt.listen_port, tr.tls ? " with TLS" : ""));
    const MHD_DaemonInfo* info = MHD_get_daemon_info(im.d, MHD_DAEMON_INFO_BIND_PORT);
    _port = info != nullptr ? info->port : im.opt.listen_port;
}

director_api::~director_api() {
    if (_impl->d != nullptr) MHD_stop_daemon(_impl->d);
    _impl->transport.reset();
}

bool director_api::tls() const { return _impl->transport && _impl->transport->tls; }

director_api_status director_api::status() const { return _impl->status(); }

}  // namespace stentor::control
