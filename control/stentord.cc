// stentord: the relay daemon. Loads a profile, brings up EAL and the ports,
// launches the data-plane lcores and runs the control plane on the main
// lcore: publish ticks, periodic counters, clean stop on SIGINT/SIGTERM.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <rte_cycles.h>

#include "api.h"
#include "config.h"
#include "control_plane.h"
#include "drivers.h"
#include "journal.h"
#include "relay.h"
#include "telemetry.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_signal(int) { g_stop.store(true); }
void on_hup(int) { g_reload.store(true); }

// SIGHUP: read the profile again; apply what can change live, or refuse the
// whole reload naming each setting that cannot (the relay runs on as it was).
void reload(const std::string& path, std::string& running_text, stentor::control::control_plane& cp) {
    using namespace stentor;
    std::string text;
    control::profile next;
    try {
        next = control::load_profile(path, &text);
    } catch (const control::config_error& e) {
        std::printf("reload: refused: %s\n", e.what());
        return;
    }
    auto changed = control::changed_settings(running_text, text);
    // A key file rewritten in place changes no text; its secret does count.
    for (auto& k : control::join_secret_changes(cp.running_join(), next.join)) changed.push_back(std::move(k));
    if (changed.empty()) {
        std::printf("reload: %s: nothing changed\n", path.c_str());
        return;
    }
    try {
        const auto r = cp.reload(next, changed);
        if (!r.refused.empty()) {
            std::printf("reload: refused, nothing changed (%zu setting(s) cannot change live):\n", r.refused.size());
            for (const auto& why : r.refused) std::printf("reload:   %s\n", why.c_str());
            return;
        }
        running_text = text;
        std::printf("reload: applied %zu setting(s):", r.applied.size());
        for (const auto& k : r.applied) std::printf(" %s", k.c_str());
        std::printf("\n");
        for (const auto& n : r.notes) std::printf("reload:   %s\n", n.c_str());
    } catch (const std::exception& e) {
        std::printf("reload: refused, nothing changed: %s\n", e.what());
    }
}

void print_counters(const stentor::control::relay& r, bool include_zero) {
    for (const auto& [k, v] : r.counters(include_zero)) std::printf("%s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    for (const auto& [k, v] : r.port_counters())
        if (include_zero || v != 0) std::printf("%s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
}

}  // namespace

int main(int argc, char** argv) {
    using namespace stentor;
    CLI::App app{"stentord: kernel-bypass relay for live audio"};
    std::string config;
    bool check = false;
    double duration = 0;
    std::string prefix;
    bool fresh = false;
    app.add_option("-c,--config", config, "profile (TOML)")->required();
    app.add_flag("--check", check, "validate the profile and exit (0 valid, 1 invalid); touches no device");
    app.add_option("--duration", duration, "stop after this many seconds (0 = run until SIGINT/SIGTERM)");
    app.add_option("--file-prefix", prefix, "override eal.file_prefix (several instances on one host)");
    app.add_flag("--fresh", fresh,
                 "discard the journal ([journal] dir) and start from the profile's static section");
    CLI11_PARSE(app, argc, argv);

    control::profile prof;
    std::string running_text;
    try {
        prof = control::load_profile(config, &running_text);
    } catch (const control::config_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    if (check) {
        std::printf("%s: ok\n", config.c_str());
        return 0;
    }
    if (!prefix.empty()) prof.eal.file_prefix = prefix;

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_hup);
    try {
        drivers::eal_params ep;
        ep.lcores = prof.eal.lcores;
        ep.main_lcore = prof.eal.main_lcore;
        ep.memory_mb = prof.eal.memory_mb;
        ep.hugepages = prof.eal.hugepages;
        ep.file_prefix = prof.eal.file_prefix;
        ep.pci_allow = prof.eal.pci_allow;
        ep.vdevs = prof.eal.vdevs;
        ep.log_level = prof.eal.log_level;
        drivers::eal_init(ep);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "stentord: %s\n", e.what());
        return 1;
    }

    int rc = 0;
    {
        // Declared first: destroyed after the relay state that writes to it.
        std::unique_ptr<control::journal> jr;
        std::unique_ptr<control::relay> r;
        std::unique_ptr<control::control_plane> cp;
        std::unique_ptr<control::api_server> api;
        try {
            r = std::make_unique<control::relay>(prof);
            // Admission must see the static listeners too: control plane first.
            control::control_options co;
            co.overload = control::overload_options_from(prof.overload);
            cp = std::make_unique<control::control_plane>(*r, prof, co);
            // The journal, once it holds anything, is the truth: the static
            // section seeds only an empty (or absent) one.
            bool seed = true;
            if (!prof.journal.dir.empty()) {
                if (fresh) {
                    uint64_t bytes = 0;
                    const size_t n = control::journal::discard(prof.journal.dir, &bytes);
                    std::printf("journal: --fresh: discarded %zu files (%llu bytes) in %s; the profile's static "
                                "section seeds the state\n",
                                n, static_cast<unsigned long long>(bytes), prof.journal.dir.c_str());
                }
                control::journal_options jo;
                jo.dir = prof.journal.dir;
                jo.fsync = prof.journal.fsync;
                jo.compact_bytes = uint64_t{prof.journal.compact_mib} << 20;
                jr = std::make_unique<control::journal>(jo);
                const auto rep = jr->restore(r->state());
                for (const auto& l : rep.lines) std::printf("%s\n", l.c_str());
                std::fflush(stdout);
                seed = rep.empty;
                if (seed)
                    std::printf("journal: empty: the profile's static section (%zu sessions) seeds the state\n",
                                prof.sessions.size());
                else
                    std::printf("journal: the journal is the truth: the profile's static section is not loaded\n");
                r->state().set_journal(jr.get());
            } else if (fresh) {
                std::printf("journal: --fresh: no [journal] dir in the profile; nothing to discard\n");
            }
            if (seed) r->state().load_static(prof);
            r->start();
            cp->start();
            control::telemetry_attach(cp.get());
            if (prof.api.listen_port != 0 && !prof.api.token.empty()) {
                const control::api_options ao = control::api_options_from(prof.api);
                api = std::make_unique<control::api_server>(*cp, ao);
                std::printf("api: http://%s:%u/api/v1 (bearer token from the profile)\n", ao.listen_addr.c_str(), api->port());
            }
            if (prof.join.keys.empty()) {
                std::printf("join: no [join] keys: join tokens can be neither minted nor verified\n");
            } else {
                std::string ids;
                for (const auto& k : prof.join.keys) ids += (ids.empty() ? "" : ", ") + std::to_string(k.id);
                std::printf("join: keys %s live, minting with key %u, tokens live %u s by default\n", ids.c_str(),
                            prof.join.mint_key_id, prof.join.token_ttl_s);
                std::printf("join: mode %s, consent timeout %u s, %u verifications/s per RX lcore",
                            prof.join.static_listeners ? "token+static" : "token", prof.join.consent_timeout_s,
                            prof.join.verify_per_s);
                if (cp->desk() != nullptr)
                    std::printf(", %zu restored listeners under consent", cp->desk()->bindings());
                std::printf("\n");
            }
        } catch (const control::action_error& e) {
            std::fprintf(stderr, "stentord: %s: static section: %s\n", config.c_str(), e.what());
            rc = 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "stentord: %s\n", e.what());
            rc = 1;
        }
        if (rc == 0) {
            for (const auto& p : r->ports())
                std::printf("port %s (%s, %s) port_id=%u mac=%s link=%s speed=%uMbps rx_offloads=0x%llx tx_offloads=0x%llx\n",
                            p.name.c_str(), p.device.c_str(), p.driver.c_str(), p.port_id, p.mac.c_str(),
                            p.link_up ? "up" : "down", p.speed_mbps, static_cast<unsigned long long>(p.rx_offloads),
                            static_cast<unsigned long long>(p.tx_offloads));
            for (const auto& line : r->refresh_flow_filters()) std::printf("ingress filter: %s\n", line.c_str());
            std::printf("stentord: ready\n");
            std::fflush(stdout);
            using clock = std::chrono::steady_clock;
            const auto t0 = clock::now();
            auto last_stats = t0;
            auto prev = r->totals();
            const unsigned interval = prof.dataplane.stats_interval_s;
            while (!g_stop.load()) {
                // Publishing and the overload controller run on the control
                // plane's thread (publish as soon as changes are pending).
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                if (g_reload.exchange(false)) {
                    reload(config, running_text, *cp);
                    std::fflush(stdout);
                }
                r->refresh_flow_filters();
                const auto now = clock::now();
                if (duration > 0 && std::chrono::duration<double>(now - t0).count() >= duration) break;
                if (interval > 0 && now - last_stats >= std::chrono::seconds(interval)) {
                    const double dt = std::chrono::duration<double>(now - last_stats).count();
                    const auto cur = r->totals();
                    auto rate = [&](uint64_t a, uint64_t b) { return static_cast<double>(a - b) / dt; };
                    std::printf("stats: rx %.0f pps, rtp_in %.0f pps, replicas_out %.0f pps\n",
                                rate(cur.rx_packets, prev.rx_packets), rate(cur.rtp_in, prev.rtp_in),
                                rate(cur.replicas_out, prev.replicas_out));
                    for (size_t i = 0; i < prof.ports.size() && i < dp::max_ports; ++i)
                        std::printf("stats: port %s rx %.0f pps tx %.0f pps\n", prof.ports[i].name.c_str(),
                                    rate(cur.port_rx[i], prev.port_rx[i]), rate(cur.port_tx[i], prev.port_tx[i]));
                    // Every reason that moved in this interval, with its total.
                    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
                        if (cur.drops[i] != prev.drops[i])
                            std::printf("stats: drop/%s +%llu (%.0f/s) total %llu\n",
                                        std::string(dp::drop_reason_names[i]).c_str(),
                                        static_cast<unsigned long long>(cur.drops[i] - prev.drops[i]),
                                        rate(cur.drops[i], prev.drops[i]),
                                        static_cast<unsigned long long>(cur.drops[i]));
                    for (size_t t = 0; t < dp::max_tiers; ++t)
                        if (cur.tier_misses[t] != prev.tier_misses[t])
                            std::printf("stats: tier_misses/%zu +%llu\n", t,
                                        static_cast<unsigned long long>(cur.tier_misses[t] - prev.tier_misses[t]));
                    std::fflush(stdout);
                    prev = cur;
                    last_stats = now;
                }
            }
            // Drain: stop accepting (the API closes first, so no change
            // arrives after the last publish), let the publisher finish, stop
            // the workers, close every recording (finalised: last page,
            // fsync, rename), then the final counters.
            std::printf("stentord: draining: API closed\n");
            std::fflush(stdout);
            api.reset();
            cp->stop();
            // What the overload controller shed since the last publish is
            // written too (every acknowledged action already is).
            if (jr) r->state().publish();
            control::telemetry_detach(cp.get());
            r->stop();
            for (const auto& rec : r->recordings())
                std::printf("stentord: recording of session %u: %s, %.1f s, %s\n", rec.session_id, rec.state.c_str(),
                            rec.duration_s, rec.path.c_str());
            if (jr) {
                r->state().set_journal(nullptr);
                jr->wait_compaction();
            }
            std::printf("=== stentord final counters ===\n");
            print_counters(*r, false);
            std::printf("=== end ===\n");
            std::fflush(stdout);
        }
    }
    drivers::eal_cleanup();
    return rc;
}
