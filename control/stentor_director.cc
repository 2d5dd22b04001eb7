// stentor-director: places listeners on the fleet's edges (docs/fleet.md).
//
//   stentor-director serve -c director.toml
//       POST /v1/place    {"session": S, "listeners": N, "region": "eu", "tier": 1,
//                          "exclude": ["edge-3"], "family": "ipv6"}
//                         -> 200 {"session": S, "placements": [{"edge", "address",
//                            "port", "token", "password"}, ...], "trunks_created": n}
//                         4xx/503 {"error": <code>, "reason": "..."}: nothing placed
//       GET  /v1/registry the director's view of the fleet
//       GET  /healthz     200 {"status": "ok"} while the view is fresh, 503
//                         "degraded" once stale; details with the token
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

#include <memory>

#include <CLI/CLI.hpp>

#include "config.h"
#include "director.h"
#include "director_api.h"
#include "host_check.h"
#include "join_mint.h"
#include "planner.h"

namespace {

using namespace stentor;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

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
    // The relay API's accept policy, limits, deadlines and transport rule
    // (control/http_guard.h), the token compared in constant time.
    std::unique_ptr<control::director_api> api;
    try {
        api = std::make_unique<control::director_api>(dir, control::director_api_options_from(prof.director));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "stentor-director: %s\n", e.what());
        dir.stop();
        return 1;
    }
    std::printf("director: %s://%s:%u/v1/place (bearer token from the profile)\n", api->tls() ? "https" : "http",
                prof.director.listen_addr.c_str(), api->port());
    for (const auto& w : control::director_profile_warnings(prof)) std::printf("director: warning: %s\n", w.c_str());
    std::printf("director: ready\n");
    std::fflush(stdout);
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    api.reset();
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
