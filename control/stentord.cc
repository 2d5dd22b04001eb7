// stentord: the relay daemon. Loads a profile, checks the host, brings up
// EAL and the ports, launches the data-plane lcores and runs the control
// plane on the main lcore: publish ticks, periodic counters, operator
// events, clean stop on SIGINT/SIGTERM, reload (and log reopen) on SIGHUP.
// Logs through spdlog (control/log.h); the final counters are a report on
// stdout. docs/operations.md runs it as a systemd service.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <new>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <spdlog/spdlog.h>

#include "api.h"
#include "config.h"
#include "control_plane.h"
#include "dp_memory.h"
#include "drivers.h"
#include "fleet_drain.h"
#include "fleet_member.h"
#include "fleet_trunks.h"
#include "trunk_key.h"
#include "host_check.h"
#include "journal.h"
#include "log.h"
#include "ops_watch.h"
#include "relay.h"
#include "service_notify.h"
#include "startup.h"
#include "telemetry.h"
#include "version.h"

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
        spdlog::error("reload: refused: {}", e.what());
        return;
    }
    auto changed = control::changed_settings(running_text, text);
    // A key file rewritten in place changes no text; its secret does count.
    for (auto& k : control::join_secret_changes(cp.running_join(), next.join)) changed.push_back(std::move(k));
    // Likewise the secrets that cannot change live (the API token file, the
    // trunk key, the etcd password, static SRTP keys): refused by name
    // below, never "nothing changed" while the old one stays in use.
    for (auto& k : control::secret_file_changes(cp.prof(), next)) changed.push_back(std::move(k));
    if (changed.empty()) {
        spdlog::info("reload: {}: nothing changed", path);
        return;
    }
    try {
        const auto r = cp.reload(next, changed);
        if (!r.refused.empty()) {
            spdlog::warn("reload: refused, nothing changed ({} setting(s) cannot change live):", r.refused.size());
            for (const auto& why : r.refused) spdlog::warn("reload:   {}", why);
            return;
        }
        running_text = text;
        std::string keys;
        for (const auto& k : r.applied) keys += " " + k;
        spdlog::info("reload: applied {} setting(s):{}", r.applied.size(), keys);
        for (const auto& n : r.notes) spdlog::info("reload:   {}", n);
    } catch (const std::exception& e) {
        spdlog::error("reload: refused, nothing changed: {}", e.what());
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
    bool check_host = false;
    std::string host_root = "/";
    double duration = 0;
    std::string prefix;
    bool fresh = false;
    log::options lo;
    app.set_version_flag("--version", [] { return control::version_text(); },
                         "print version, git revision, DPDK version and build options, and exit");
    app.add_option("-c,--config", config, "profile (TOML)")->required();
    app.add_flag("--check", check, "validate the profile and exit (0 valid, 1 invalid); touches no device");
    app.add_flag("--host", check_host,
                 "with --check: also check this host against the profile (CPUs, NUMA, hugepages, PCI binding, "
                 "IOMMU, MTU, locks, tuning); see docs/operations.md");
    app.add_option("--host-root", host_root,
                   "read /sys, /proc and /run under this directory instead of / (tests: a fake host)")
        ->capture_default_str();
    app.add_option("--duration", duration, "stop after this many seconds (0 = run until SIGINT/SIGTERM)");
    app.add_option("--file-prefix", prefix, "override eal.file_prefix (several instances on one host)");
    app.add_flag("--fresh", fresh,
                 "discard the journal ([journal] dir) and start from the profile's static section");
    app.add_option("--log-file", lo.file,
                   "append the log to this file (reopened on SIGHUP) instead of stderr");
    app.add_option("--log-level", lo.level, "trace, debug, info, warning, error or critical")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    control::profile prof;
    std::string running_text;
    if (check) {
        // A CLI answer, not a log: plain lines on stdout/stderr.
        try {
            prof = control::load_profile(config, &running_text);
        } catch (const control::config_error& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 1;
        }
        if (!prefix.empty()) prof.eal.file_prefix = prefix;
        for (const auto& f : control::profile_warnings(prof))
            std::printf("warn  %s\n", control::format_finding(f, config, running_text).c_str());
        if (!check_host) {
            std::printf("%s: ok\n", config.c_str());
            return 0;
        }
        control::host_check_options ho;
        ho.root = host_root;
        unsigned fails = 0, warns = 0;
        for (const auto& f : control::check_host(prof, ho)) {
            const char* tag = f.lvl == control::host_finding::level::fail   ? "FAIL"
                              : f.lvl == control::host_finding::level::warn ? "warn"
                                                                            : "ok  ";
            fails += f.lvl == control::host_finding::level::fail;
            warns += f.lvl == control::host_finding::level::warn;
            std::printf("%s  %s\n", tag, control::format_finding(f, config, running_text).c_str());
        }
        std::printf("%s: profile ok; host%s%s: %u failed, %u warning(s)\n", config.c_str(),
                    host_root == "/" ? "" : " ", host_root == "/" ? "" : host_root.c_str(), fails, warns);
        return fails == 0 ? 0 : 1;
    }
    if (check_host) {
        std::fprintf(stderr, "--host goes with --check (stentord checks the host at every start anyway)\n");
        return 2;
    }

    try {
        log::init(lo);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "stentord: %s\n", e.what());
        return 1;
    }
    try {
        prof = control::load_profile(config, &running_text);
    } catch (const control::config_error& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
    if (!prefix.empty()) prof.eal.file_prefix = prefix;
    spdlog::info("stentord {} starting: profile {}", control::build().version + " (" + control::build().git_revision + ")",
                 config);

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_hup);
    control::service_notifier notifier;
    std::vector<int> lock_fds;   // interface and PCI locks: held until exit
    std::string runtime_dir;
    try {
        control::startup_options so;
        so.host.root = host_root;
        so.profile_text = running_text;
        control::start_eal(prof, so, lock_fds);
        runtime_dir = rte_eal_get_runtime_dir();
    } catch (const control::startup_error& e) {
        for (const auto& l : e.lines) spdlog::critical("{}", l);
        spdlog::critical("stentord: not started (stentord --check --host -c {} checks the host)", config);
        notifier.status("start-up failed: " + std::string(e.what()));
        return 1;
    }

    int rc = 0;
    {
        // Declared first: destroyed after the relay state that writes to it.
        std::unique_ptr<control::journal> jr;
        std::unique_ptr<control::relay> r;
        std::unique_ptr<control::control_plane> cp;
        std::unique_ptr<control::api_server> api;
        std::unique_ptr<fleet::registrar> fleet_reg;   // [fleet]: the registry entry (docs/fleet.md)
        std::unique_ptr<control::fleet_trunks> fleet_tr;   // [fleet]: the trunks to and from this relay
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
                    spdlog::warn("journal: --fresh: discarded {} files ({} bytes) in {}; the profile's static "
                                 "section seeds the state",
                                 n, bytes, prof.journal.dir);
                }
                control::journal_options jo;
                jo.dir = prof.journal.dir;
                jo.fsync = prof.journal.fsync;
                jo.compact_bytes = uint64_t{prof.journal.compact_mib} << 20;
                jr = std::make_unique<control::journal>(jo);
                const auto rep = jr->restore(r->state());
                for (const auto& l : rep.lines) spdlog::info("{}", l);
                seed = rep.empty;
                if (seed)
                    spdlog::info("journal: empty: the profile's static section ({} sessions) seeds the state",
                                 prof.sessions.size());
                else
                    spdlog::info("journal: the journal is the truth: the profile's static section is not loaded");
                r->state().set_journal(jr.get());
            } else if (fresh) {
                spdlog::info("journal: --fresh: no [journal] dir in the profile; nothing to discard");
            }
            if (seed) r->state().load_static(prof);
            else r->state().load_static_keys(prof);   // SRTP keys are never journaled (docs/srtp.md)
            r->start();
            cp->start();
            control::telemetry_attach(cp.get());
            if (prof.api.listen_port != 0 && !prof.api.token.empty()) {
                const control::api_options ao = control::api_options_from(prof.api);
                api = std::make_unique<control::api_server>(*cp, ao);
                spdlog::info("api: {}://{}:{}/api/v1 (bearer token from the profile)", api->tls() ? "https" : "http",
                             ao.listen_addr, api->port());
            }
            if (prof.join.keys.empty()) {
                spdlog::info("join: no [join] keys: join tokens can be neither minted nor verified");
            } else {
                std::string ids;
                for (const auto& k : prof.join.keys) ids += (ids.empty() ? "" : ", ") + std::to_string(k.id);
                spdlog::info("join: keys {} live, minting with key {}, tokens live {} s by default", ids,
                             prof.join.mint_key_id, prof.join.token_ttl_s);
                spdlog::info("join: mode {}, consent timeout {} s, {} verifications/s per RX lcore{}",
                             prof.join.static_listeners ? "token+static" : "token", prof.join.consent_timeout_s,
                             prof.join.verify_per_s,
                             cp->desk() != nullptr
                                 ? ", " + std::to_string(cp->desk()->bindings()) + " restored listeners under consent"
                                 : std::string());
            }
        } catch (const control::action_error& e) {
            spdlog::critical("stentord: {}: static section: {}", config, e.what());
            rc = 1;
        } catch (const control::table_alloc_error& e) {
            // A table [limits] sizes that this host would not give (relay.cc):
            // one line naming the setting, its line and the bytes asked.
            const control::host_finding f{control::host_finding::level::fail, e.setting, e.what()};
            spdlog::critical("stentord: not started: {}", control::format_finding(f, config, running_text));
            notifier.status("start-up failed: " + std::string(e.what()));
            rc = 1;
        } catch (const std::bad_alloc&) {
            spdlog::critical("stentord: not started: out of memory while building the relay (std::bad_alloc); "
                             "lower [limits] or eal.mbufs, or give the relay more memory");
            rc = 1;
        } catch (const std::exception& e) {
            spdlog::critical("stentord: {}", e.what());
            rc = 1;
        }
        if (rc == 0) {
            for (const auto& p : r->ports())
                spdlog::info("port {} ({}, {}) port_id={} mac={} link={} speed={}Mbps rx_offloads={:#x} "
                             "tx_offloads={:#x}",
                             p.name, p.device, p.driver, p.port_id, p.mac, p.link_up ? "up" : "down", p.speed_mbps,
                             p.rx_offloads, p.tx_offloads);
            for (const auto& line : r->refresh_flow_filters()) spdlog::info("ingress filter: {}", line);
            if (prof.dataplane.idle_adaptive)
                for (const auto& p : r->ports())
                    spdlog::info("idle: adaptive, port {}: {}", p.name,
                                 p.rx_intr ? "Rx interrupts" : "no Rx interrupts in its PMD: sleeps of 10 us.."
                                                               "idle_sleep_max_us");
            // This run's trunk epoch (docs/fleet.md "Trunk authentication"):
            // advertised in the record, the origin's keys derive from it.
            const uint64_t trunk_epoch = prof.fleet.enabled ? fleet::draw_trunk_epoch() : 0;
            fleet_reg = control::fleet_join(prof, *r, *cp, trunk_epoch);
            if (fleet_reg)
                spdlog::info("fleet: registering {} as {} ({}) in etcd {}, lease {} s", prof.fleet.relay_id,
                             prof.fleet.role, fleet_reg->key(), prof.fleet.etcd.front(), prof.fleet.lease_ttl_s);
            fleet_tr = control::fleet_trunks_start(prof, r->state(), trunk_epoch);
            if (fleet_tr) cp->set_trunks(fleet_tr->reconciler.get(), fleet_tr->watch.get());
            spdlog::info("stentord: ready");
            // Ports up, workers running, API listening: systemd may start
            // what is ordered after us.
            notifier.ready(fmt::format("ready: {} port(s), API {}", r->ports().size(),
                                       api ? "on " + prof.api.listen_addr + ":" + std::to_string(api->port())
                                           : std::string("off")));
            std::atomic<uint64_t> main_loops{0};
            const auto lcores = r->worker_lcores();
            notifier.start_watchdog(
                [&] {
                    control::liveness_sample s;
                    for (const auto& c : r->per_lcore()) s.worker_cycles.push_back(c.busy_cycles + c.idle_cycles + c.stall_cycles);
                    s.control_ticks = cp->overload().status().ticks;
                    s.main_loops = main_loops.load(std::memory_order_relaxed);
                    return s;
                },
                lcores);
            control::ops_watch watch(*cp);
            using clock = std::chrono::steady_clock;
            const auto t0 = clock::now();
            auto last_stats = t0;
            auto prev = r->totals();
            const unsigned interval = prof.dataplane.stats_interval_s;
            control::fleet_log fleet_lines;
            while (!g_stop.load()) {
                // Publishing and the overload controller run on the control
                // plane's thread (publish as soon as changes are pending).
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                main_loops.fetch_add(1, std::memory_order_relaxed);
                if (g_reload.exchange(false)) {
                    notifier.reloading();
                    std::string why;
                    if (!log::reopen(&why)) spdlog::error("log: cannot reopen: {}; still writing to the old file", why);
                    reload(config, running_text, *cp);
                    notifier.ready("ready (reloaded)");
                }
                r->refresh_flow_filters();
                if (fleet_reg)
                    if (auto line = fleet_lines.poll(*fleet_reg)) spdlog::info("{}", *line);
                const auto now = clock::now();
                watch.poll(now);
                if (duration > 0 && std::chrono::duration<double>(now - t0).count() >= duration) break;
                if (interval > 0 && now - last_stats >= std::chrono::seconds(interval)) {
                    const double dt = std::chrono::duration<double>(now - last_stats).count();
                    const auto cur = r->totals();
                    auto rate = [&](uint64_t a, uint64_t b) { return static_cast<double>(a - b) / dt; };
                    spdlog::info("stats: rx {:.0f} pps, rtp_in {:.0f} pps, replicas_out {:.0f} pps",
                                 rate(cur.rx_packets, prev.rx_packets), rate(cur.rtp_in, prev.rtp_in),
                                 rate(cur.replicas_out, prev.replicas_out));
                    for (size_t i = 0; i < prof.ports.size() && i < dp::max_ports; ++i)
                        spdlog::info("stats: port {} rx {:.0f} pps tx {:.0f} pps", prof.ports[i].name,
                                     rate(cur.port_rx[i], prev.port_rx[i]), rate(cur.port_tx[i], prev.port_tx[i]));
                    // Every reason that moved in this interval, with its total.
                    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
                        if (cur.drops[i] != prev.drops[i])
                            spdlog::info("stats: drop/{} +{} ({:.0f}/s) total {}", dp::drop_reason_names[i],
                                         cur.drops[i] - prev.drops[i], rate(cur.drops[i], prev.drops[i]),
                                         cur.drops[i]);
                    for (size_t t = 0; t < dp::max_tiers; ++t)
                        if (cur.tier_misses[t] != prev.tier_misses[t])
                            spdlog::info("stats: tier_misses/{} +{}", t, cur.tier_misses[t] - prev.tier_misses[t]);
                    prev = cur;
                    last_stats = now;
                }
            }
            // Drain: stop accepting (the API closes first, so no change
            // arrives after the last publish), let the publisher finish, stop
            // the workers, close every recording (finalised: last page,
            // fsync, rename), then the final counters.
            notifier.stopping();
            notifier.stop_watchdog();
            if (fleet_reg) {
                // Directors stop placing here before anything else stops.
                const bool ok = fleet_reg->drain(std::chrono::milliseconds(1000));
                spdlog::info("fleet: draining: {}", ok ? "the registry says so" : "etcd did not take it (within 1 s)");
                if (cp->desk() != nullptr && prof.fleet.drain_s > 0) {
                    // Joined listeners move (make before break), then we stop.
                    const auto d = control::drain_joined_listeners(*cp->desk(), std::chrono::seconds(prof.fleet.drain_s));
                    spdlog::info("fleet: draining: {} joined listener(s) told to move; {} after {:.2f} s ({} request(s) "
                                 "answered 300)",
                                 d.joined_at_start,
                                 d.still_joined == 0 ? std::string("all gone")
                                                     : fmt::format("{} still joined at drain_s", d.still_joined),
                                 d.seconds, d.told);
                }
            }
            spdlog::info("stentord: draining: API closed");
            api.reset();
            cp->set_trunks(nullptr);
            fleet_tr.reset();   // no trunk change after this: the last publish covers them
            cp->stop();
            // What the overload controller shed since the last publish is
            // written too (every acknowledged action already is).
            if (jr) r->state().publish();
            control::telemetry_detach(cp.get());
            r->stop();
            for (const auto& rec : r->recordings())
                spdlog::info("stentord: recording of session {}: {}, {:.1f} s, {}", rec.session_id, rec.state,
                             rec.duration_s, rec.path);
            if (jr) {
                r->state().set_journal(nullptr);
                jr->wait_compaction();
            }
            if (fleet_reg) {
                fleet_reg->stop(true);   // lease revoked: the key goes now, not after the TTL
                spdlog::info("fleet: left the registry");
            }
            // A report, not log lines: tests and operators read the block.
            std::printf("=== stentord final counters ===\n");
            print_counters(*r, false);
            std::printf("=== end ===\n");
            std::fflush(stdout);
        }
    }
    drivers::eal_cleanup();
    std::string why;
    if (!runtime_dir.empty() && !control::remove_runtime_dir(runtime_dir, &why))
        spdlog::warn("stentord: DPDK runtime directory left behind: {}", why);
    spdlog::info("stentord: stopped (exit {})", rc);
    return rc;
}
