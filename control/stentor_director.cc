// stentor-director: places listeners on the fleet's edges (docs/fleet.md).
//
//   stentor-director serve -c director.toml
//       POST /v1/place    {"session": S, "listeners": N, "region": "eu", "tier": 1,
//                          "exclude": ["edge-3"], "family": "ipv6"}
//                         -> 200 {"session": S, "placements": [{"edge", "address",
//                            "port", "token", "password"}, ...], "trunks_created": n}
//                         4xx/503 {"error": <code>, "reason": "..."}: nothing placed
//       GET  /v1/registry the director's view of the fleet
//       GET  /healthz     200 while the view is fresh, 503 once stale
//   stentor-director plan --listeners 8000000 [...]
//       the fleet a crowd needs, with its assumptions
//
// Tokens are minted with the relays' own code (control/join_mint.cc) from the
// fleet's shared [join] keys; the director is stateless: everything it
// knows is in etcd, and it writes nothing there per listener.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <CLI/CLI.hpp>
#include <microhttpd.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config.h"
#include "director.h"
#include "join_mint.h"
#include "planner.h"

namespace {

using namespace stentor;
using json = nlohmann::json;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

struct server {
    fleet::director* dir;
    std::string bearer;                 // "Bearer <token>"
    unsigned max_per_request;
};

struct body {
    std::string text;
    bool too_big = false;
};

constexpr size_t max_body = 4096;
constexpr size_t max_exclude = 16;

MHD_Result reply(MHD_Connection* c, unsigned status, const std::string& text) {
    MHD_Response* r = MHD_create_response_from_buffer(text.size(), const_cast<char*>(text.data()), MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    const MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

MHD_Result error(MHD_Connection* c, unsigned status, const std::string& code, const std::string& reason) {
    return reply(c, status, json{{"error", code}, {"reason", reason}}.dump() + "\n");
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

MHD_Result on_place(server& s, MHD_Connection* c, const std::string& text) {
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
    if (auto why = uint_field("listeners", 1, s.max_per_request, v); !why.empty())
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
            return error(c, 400, "bad_request", fmt::format("exclude must be an array of at most {} edge ids", max_exclude));
        for (const auto& id : e) {
            if (!id.is_string() || id.get_ref<const std::string&>().empty() || id.get_ref<const std::string&>().size() > 64)
                return error(c, 400, "bad_request", "exclude: each entry must be an edge id (a string of 1..64 characters)");
            exclude.push_back(id.get<std::string>());
        }
    }
    const auto a = s.dir->place(req, exclude);
    if (a.error != fleet::place_error::none)
        return error(c, status_of(a.error), fleet::place_error_name(a.error), a.reason);
    json out{{"session", req.session}, {"trunks_created", a.trunks_created}};
    json arr = json::array();
    for (const auto& p : a.placements)
        arr.push_back({{"edge", p.edge}, {"address", p.address}, {"port", p.port}, {"token", p.token},
                       {"password", p.password}});
    out["placements"] = std::move(arr);
    return reply(c, 200, out.dump() + "\n");
}

MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                      const char* upload, size_t* upload_size, void** con_cls) {
    auto& s = *static_cast<server*>(cls);
    if (*con_cls == nullptr) {
        *con_cls = new body;
        return MHD_YES;
    }
    auto* b = static_cast<body*>(*con_cls);
    if (*upload_size != 0) {
        if (b->text.size() + *upload_size > max_body) b->too_big = true;
        else b->text.append(upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    const std::string path = url;
    if (path == "/healthz" && std::strcmp(method, "GET") == 0) {
        const auto st = s.dir->status();
        return reply(c, st.stale ? 503 : 200,
                     json{{"stale", st.stale}, {"view_age_s", st.view_age_s}, {"last_error", st.last_error}}.dump() + "\n");
    }
    const char* auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (auth == nullptr || s.bearer != auth)
        return error(c, 401, "unauthorized", "Authorization: Bearer <[director] token> required");
    if (path == "/v1/place") {
        if (std::strcmp(method, "POST") != 0) return error(c, 405, "method", "POST only");
        if (b->too_big) return error(c, 413, "too_large", fmt::format("body larger than {} bytes", max_body));
        return on_place(s, c, b->text);
    }
    if (path == "/v1/registry" && std::strcmp(method, "GET") == 0) {
        const auto st = s.dir->status();
        json relays = json::array();
        for (const auto& r : s.dir->relays()) relays.push_back(json::parse(r.to_json()));
        return reply(c, 200,
                     json{{"relays", relays},
                          {"directors", st.directors},
                          {"trunks", st.trunks},
                          {"view_age_s", st.view_age_s},
                          {"stale", st.stale},
                          {"watch_restarts", st.watch_restarts},
                          {"last_error", st.last_error}}
                             .dump() +
                         "\n");
    }
    return error(c, 404, "not_found", "routes: POST /v1/place, GET /v1/registry, GET /healthz");
}

void on_done(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    delete static_cast<body*>(*con_cls);
    *con_cls = nullptr;
}

int serve(const std::string& config) {
    control::director_profile prof;
    try {
        prof = control::load_director_profile(config);
    } catch (const control::config_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    const control::token_minter minter(prof.join);
    const uint32_t ttl = prof.join.token_ttl_s;
    fleet::director_options o;
    o.etcd = prof.fleet.etcd;
    o.prefix = prof.fleet.prefix;
    o.director_id = prof.director.director_id;
    o.stale = std::chrono::seconds(prof.director.stale_s);
    o.hold = std::chrono::milliseconds(prof.director.hold_ms);
    fleet::director dir(o, [&minter, ttl](uint32_t session, uint8_t tier, size_t n) {
        const auto expiry = static_cast<uint32_t>(std::time(nullptr)) + ttl;
        std::vector<fleet::minted> out;
        out.reserve(n);
        for (auto& t : minter.mint(session, tier, expiry, n)) out.push_back({std::move(t.token), std::move(t.password)});
        return out;
    });
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    dir.start();
    const auto st = dir.status();
    std::printf("director %s: etcd %s, prefix %s: %s (%zu relays, %u directors)\n", o.director_id.c_str(),
                o.etcd.front().c_str(), o.prefix.c_str(), st.stale ? "no registry view yet" : "registry loaded",
                st.relays, st.directors);
    server s{&dir, "Bearer " + prof.director.token, prof.director.max_per_request};
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(prof.director.listen_port));
    inet_pton(AF_INET, prof.director.listen_addr.c_str(), &sa.sin_addr);
    MHD_Daemon* d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, static_cast<uint16_t>(prof.director.listen_port),
                                     nullptr, nullptr, &on_request, &s, MHD_OPTION_SOCK_ADDR,
                                     reinterpret_cast<const sockaddr*>(&sa), MHD_OPTION_THREAD_POOL_SIZE,
                                     prof.director.threads, MHD_OPTION_NOTIFY_COMPLETED, &on_done, nullptr,
                                     MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (d == nullptr) {
        std::fprintf(stderr, "stentor-director: cannot listen on %s:%u\n", prof.director.listen_addr.c_str(),
                     prof.director.listen_port);
        return 1;
    }
    std::printf("director: http://%s:%u/v1/place (bearer token from the profile)\n", prof.director.listen_addr.c_str(),
                prof.director.listen_port);
    std::printf("director: ready\n");
    std::fflush(stdout);
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    MHD_stop_daemon(d);
    dir.stop();
    std::printf("director: stopped\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stentor-director: places listeners on the fleet's edges; plans a fleet"};
    app.require_subcommand(1);
    std::string config;
    auto* sv = app.add_subcommand("serve", "run the director (HTTP) from a director profile");
    sv->add_option("-c,--config", config, "director profile (TOML: [fleet], [join], [director])")->required();
    fleet::plan_inputs in;
    auto* pl = app.add_subcommand("plan", "print the fleet a crowd needs, with its assumptions");
    pl->add_option("--listeners", in.listeners, "listeners at once")->required()->check(CLI::Range(uint64_t{1}, uint64_t{10000000000}));
    pl->add_option("--sessions", in.sessions, "sessions they listen to")->check(CLI::Range(1u, 1000000u));
    pl->add_option("--origins-per-session", in.origins_per_session, "origins each session is sent to")->check(CLI::Range(1u, 16u));
    pl->add_option("--line-rate-gbps", in.line_rate_gbps, "line rate of an edge port")->check(CLI::Range(0.1, 1600.0));
    pl->add_option("--ports-per-edge", in.ports_per_edge, "ports per edge")->check(CLI::Range(1u, 4u));
    pl->add_option("--cores-per-edge", in.cores_per_edge, "fan-out cores per edge")->check(CLI::Range(1u, 256u));
    pl->add_option("--fanout-mpps-per-core", in.fanout_mpps_per_core, "replicas per second one fan-out core builds (M)")
        ->check(CLI::Range(0.1, 1000.0));
    pl->add_option("--join-per-s-per-core", in.join_verify_per_s_per_core, "join verifications per second per RX core")
        ->check(CLI::Range(1.0, 1e9));
    pl->add_option("--frame-bytes", in.frame_bytes, "Ethernet frame of one audio packet")->check(CLI::Range(60.0, 9600.0));
    pl->add_option("--packets-per-s", in.packets_per_s, "packets per second per listener")->check(CLI::Range(1.0, 1000.0));
    pl->add_option("--headroom-pct", in.headroom_pct, "capacity kept free")->check(CLI::Range(0u, 90u));
    pl->add_option("--directors", in.directors, "directors")->check(CLI::Range(1u, 1000u));
    CLI11_PARSE(app, argc, argv);
    if (*pl) {
        std::fputs(fleet::format_plan(in, fleet::make_plan(in)).c_str(), stdout);
        return 0;
    }
    return serve(config);
}
