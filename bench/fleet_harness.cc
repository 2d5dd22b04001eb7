// A simulated fleet placing a crowd (issue 13 benchmark): a real etcd on
// loopback, 50 relays' registrations (2 origins carrying session 1, 48 edges
// with `--slots` listener slots each; registry entries only, no data plane:
// each edge reports as joined every listener placed on it, at once), and two
// directors (fleet/director.cc, tokens minted with control/join_mint.cc)
// placing `--listeners` listeners in requests of `--request` from one thread
// each. Prints how long the crowd took, the imbalance between the most and
// the least loaded edge, and etcd's writes per second during the storm from
// etcd's own metrics (etcd_server_proposals_committed_total).
//
// Then the rest of the fleet's figures, so that the fleet benchmark ends
// with one line: placements per second on one core with tokens (the
// director's arithmetic and minting, as bench_director, requests of 100),
// the failover gap's p99 from bench/failover_bench.sh (real relays in
// namespaces, an edge SIGKILLed under --failover-listeners listeners; "na"
// without root), and the added latency per trunk hop from
// bench/trunk_hop_harness (both run from here; their own RESULT lines are
// shown behind "# ").
//
//   fleet_harness [--listeners 8000000] [--slots 200000] [--request 1000]
//                 [--failover-listeners 50 | --no-failover]
//   RESULT placements_per_s=<x> fleet_8m_s=<t> imbalance_pct=<p> etcd_writes_per_s=<w> failover_p99_s=<g> hop_p99_us=<h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "director.h"
#include "etcd_client.h"
#include "etcd_fixture.h"
#include "join_mint.h"
#include "placement.h"
#include "registrar.h"

namespace {

using namespace stentor;
using clk = std::chrono::steady_clock;

control::join_config bench_join_config() {
    control::join_config jc;
    control::join_key k;
    k.id = 1;
    k.secret.assign(32, 0x42);
    jc.keys.push_back(k);
    jc.mint_key_id = 1;
    return jc;
}

// Placements per second on one core with tokens: placement_core over 50
// edges that never fill, plus the minting, requests of 100 listeners, for
// about a second (what one director thread does under its lock and after).
double placements_per_s_one_core() {
    fleet::placement_core core(std::chrono::milliseconds(3000));
    fleet::relay_record o;
    o.id = "origin-0";
    o.role = "origin";
    o.addresses = {"198.18.2.1"};
    o.sessions = {{1, 40000}};
    core.upsert(o);
    for (unsigned i = 0; i < 50; ++i) {
        fleet::relay_record e;
        e.id = "edge-" + std::to_string(i);
        e.role = "edge";
        e.addresses = {"198.18.1." + std::to_string(i + 1)};
        e.slots = 4000000000ull;
        e.sessions = {{1, 40000}};
        core.upsert(e);
    }
    core.set_directors(2);
    const control::token_minter minter(bench_join_config());
    uint64_t n = 0;
    const auto t0 = clk::now();
    auto t = t0;
    while (t - t0 < std::chrono::seconds(1)) {
        for (int r = 0; r < 20; ++r) {
            auto p = core.place(1, 100, "", t);
            auto tokens = minter.mint(1, 1, 2000000000u, 100);
            if (p.error != fleet::place_error::none || tokens.size() != 100) throw std::runtime_error("placement failed");
            n += 100;
        }
        t = clk::now();
    }
    return static_cast<double>(n) / std::chrono::duration<double>(t - t0).count();
}

// Runs `cmd`, shows its output (a line starting "RESULT" behind "# ", so
// that this harness ends with the one RESULT line), and returns the value of
// ` <field>=` on the first line starting with `tag`, or "na".
std::string child_figure(const std::string& cmd, const char* tag, const char* field) {
    std::FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
    if (f == nullptr) return "na";
    std::string value = "na";
    const std::string key = std::string(" ") + field + "=";
    char line[1024];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        const bool result = std::strncmp(line, "RESULT ", 7) == 0;
        std::printf("%s%s", result ? "# " : "", line);
        if (value != "na" || std::strncmp(line, tag, std::strlen(tag)) != 0) continue;
        if (const char* v = std::strstr(line, key.c_str())) {
            value.assign(v + key.size(), std::strcspn(v + key.size(), " \n"));
            if (value.empty()) value = "na";
        }
    }
    const int rc = ::pclose(f);
    if (rc != 0) std::printf("# %s exited with status %d\n", cmd.c_str(), rc);
    std::fflush(stdout);
    return value;
}

std::string dir_of(const char* argv0) {
    const std::string p = argv0;
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? "." : p.substr(0, slash);
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t listeners = 8000000, slots = 200000;
    uint32_t request = 1000;
    unsigned failover_listeners = 50;
    bool failover = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--listeners" && i + 1 < argc) listeners = std::stoull(argv[++i]);
        else if (a == "--failover-listeners" && i + 1 < argc) failover_listeners = static_cast<unsigned>(std::stoul(argv[++i]));
        else if (a == "--no-failover") failover = false;
        else if (a == "--slots" && i + 1 < argc) slots = std::stoull(argv[++i]);
        else if (a == "--request" && i + 1 < argc) request = static_cast<uint32_t>(std::stoul(argv[++i]));
        else {
            std::fprintf(stderr, "usage: fleet_harness [--listeners N] [--slots S] [--request R] [--failover-listeners N | --no-failover]\n");
            return 2;
        }
    }
    constexpr unsigned nb_edges = 48, nb_origins = 2;
    double fleet_s = 0, imbalance_pct = 0, writes_per_s = 0;
    try {
        test::etcd_server etcd;
        const std::string prefix = "/stentor";
        std::vector<std::unique_ptr<std::atomic<uint64_t>>> joined;
        std::map<std::string, size_t> edge_index;
        std::vector<std::unique_ptr<fleet::registrar>> regs;
        for (unsigned i = 0; i < nb_origins + nb_edges; ++i) {
            const bool origin = i < nb_origins;
            const std::string id = origin ? "origin-" + std::to_string(i) : "edge-" + std::to_string(i - nb_origins);
            fleet::registrar_options o;
            o.etcd = etcd.endpoints();
            o.prefix = prefix;
            o.relay_id = id;
            o.lease_ttl_s = 2;
            o.refresh_ms = 250;
            joined.push_back(std::make_unique<std::atomic<uint64_t>>(0));
            auto* load = joined.back().get();
            if (!origin) edge_index[id] = joined.size() - 1;
            regs.push_back(std::make_unique<fleet::registrar>(o, [origin, slots, load, i] {
                fleet::relay_record r;
                r.role = origin ? "origin" : "edge";
                r.addresses = {"198.18." + std::to_string(origin ? 2 : 1) + "." + std::to_string(i + 1)};
                r.slots = slots;
                r.listeners = load->load(std::memory_order_relaxed);
                if (origin) r.sessions = {{1, 40000}};
                return r;
            }));
            regs.back()->start();
        }
        const control::token_minter minter(bench_join_config());
        auto mint = [&minter](uint32_t s, uint8_t tier, size_t n) {
            std::vector<fleet::minted> out;
            out.reserve(n);
            for (auto& t : minter.mint(s, tier, 2000000000u, n)) out.push_back({std::move(t.token), std::move(t.password)});
            return out;
        };
        std::vector<std::unique_ptr<fleet::director>> dirs;
        for (int d = 0; d < 2; ++d) {
            fleet::director_options o;
            o.etcd = etcd.endpoints();
            o.prefix = prefix;
            o.director_id = "director-" + std::to_string(d);
            dirs.push_back(std::make_unique<fleet::director>(o, mint));
            dirs.back()->start();
        }
        const bool ready = test::eventually(
            [&] {
                for (auto& d : dirs)
                    if (d->status().relays != nb_origins + nb_edges || d->status().directors != 2) return false;
                return true;
            },
            std::chrono::seconds(20));
        if (!ready) throw std::runtime_error("the directors did not see 50 relays and 2 directors within 20 s");
        std::printf("# %u origins + %u edges of %llu slots (%.1f M in all), 2 directors, %llu listeners in requests of %u\n",
                    nb_origins, nb_edges, static_cast<unsigned long long>(slots),
                    static_cast<double>(slots * nb_edges) / 1e6, static_cast<unsigned long long>(listeners), request);
        std::fflush(stdout);

        fleet::etcd_client c(etcd.endpoints());
        const double writes0 = c.metric("etcd_server_proposals_committed_total").value_or(0);
        std::atomic<uint64_t> placed{0}, refused{0}, requests{0};
        const auto t0 = clk::now();
        const auto deadline = t0 + std::chrono::seconds(120);
        auto crowd = [&](fleet::director& d) {
            while (clk::now() < deadline) {
                const uint64_t done = placed.fetch_add(request);
                if (done >= listeners) break;
                const auto n = static_cast<uint32_t>(std::min<uint64_t>(request, listeners - done));
                if (n < request) placed.fetch_sub(request - n);
                auto a = d.place({1, n, "", 1});
                ++requests;
                if (a.error != fleet::place_error::none) {
                    placed.fetch_sub(n);
                    ++refused;
                    // Every director's share is placed and still counted:
                    // wait for the edges' reports and the hold to pass.
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    continue;
                }
                for (const auto& p : a.placements) joined[edge_index.at(p.edge)]->fetch_add(1, std::memory_order_relaxed);
            }
        };
        std::thread a(crowd, std::ref(*dirs[0])), b(crowd, std::ref(*dirs[1]));
        a.join();
        b.join();
        const double secs = std::chrono::duration<double>(clk::now() - t0).count();
        const double writes1 = c.metric("etcd_server_proposals_committed_total").value_or(0);
        uint64_t lo = UINT64_MAX, hi = 0, total = 0;
        for (const auto& [id, i] : edge_index) {
            const uint64_t n = joined[i]->load();
            lo = std::min(lo, n);
            hi = std::max(hi, n);
            total += n;
            if (n > slots) std::printf("!! %s holds %llu listeners, past its %llu slots\n", id.c_str(),
                                       static_cast<unsigned long long>(n), static_cast<unsigned long long>(slots));
        }
        const double imbalance = lo == 0 ? 100.0 : 100.0 * static_cast<double>(hi - lo) / static_cast<double>(lo);
        const double wps = (writes1 - writes0) / secs;
        std::printf("placed %llu listeners in %.2f s (%.0f placements/s with tokens, 2 directors), %llu requests, %llu "
                    "refused while shares were held\n",
                    static_cast<unsigned long long>(total), secs, static_cast<double>(total) / secs,
                    static_cast<unsigned long long>(requests.load()), static_cast<unsigned long long>(refused.load()));
        std::printf("edges: least %llu, most %llu listeners (imbalance %.2f %%), none past its slots: %s\n",
                    static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi), imbalance,
                    hi <= slots ? "yes" : "NO");
        std::printf("etcd: %.0f proposals committed during the storm, %.1f writes/s\n", writes1 - writes0, wps);
        fleet_s = secs;
        imbalance_pct = imbalance;
        writes_per_s = wps;
        for (auto& d : dirs) d->stop();
        for (auto& r : regs) r->stop(true);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fleet_harness: %s\n", e.what());
        return 1;
    }
    double pps = 0;
    try {
        pps = placements_per_s_one_core();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fleet_harness: %s\n", e.what());
        return 1;
    }
    std::printf("director: %.0f placements/s on one core with tokens (requests of 100 over 50 edges)\n", pps);
    std::fflush(stdout);
    const std::string dir = dir_of(argv[0]);
    const std::string p99 =
        failover ? child_figure("bash '" + dir + "/failover_bench.sh' --listeners " + std::to_string(failover_listeners),
                                "FAILOVER_BENCH ", "p99_s")
                 : "na";
    // The added latency per trunk hop: the trunks' own harness, run here too.
    const std::string hop = child_figure("'" + dir + "/trunk_hop_harness'", "RESULT ", "hop_p99_us");
    std::printf("RESULT placements_per_s=%.0f fleet_8m_s=%.2f imbalance_pct=%.2f etcd_writes_per_s=%.1f failover_p99_s=%s "
                "hop_p99_us=%s\n",
                pps, fleet_s, imbalance_pct, writes_per_s, p99.c_str(), hop.c_str());
    return 0;
}
