// Director placements per second per core (issue 13 benchmark, goal
// >= 200 k/s with tokens): placement_core::place over a fleet of 50 edges
// (the arithmetic the director runs under its lock), and the same with the
// join tokens minted by the relays' own code (control/join_mint.cc), per
// request size. No etcd here: a request whose trunks already exist touches
// etcd not at all (fleet/director.cc), so this is the steady state of a crowd.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "join_mint.h"
#include "placement.h"

namespace {

using namespace stentor;

fleet::placement_core make_fleet(unsigned edges) {
    fleet::placement_core core(std::chrono::milliseconds(3000));
    fleet::relay_record o;
    o.id = "origin-0";
    o.role = "origin";
    o.addresses = {"198.18.2.1"};
    o.slots = 1000000;
    o.sessions = {{1, 40000}};
    core.upsert(o);
    for (unsigned i = 0; i < edges; ++i) {
        fleet::relay_record e;
        e.id = "edge-" + std::to_string(i);
        e.role = "edge";
        e.addresses = {"198.18.1." + std::to_string(i + 1)};
        e.slots = 4000000000ull;   // never full during the benchmark
        e.sessions = {{1, 40000}};
        core.upsert(e);
    }
    core.set_directors(2);
    return core;
}

void BM_place(benchmark::State& state) {
    auto core = make_fleet(50);
    const auto n = static_cast<uint32_t>(state.range(0));
    for (auto _ : state) {
        auto p = core.place(1, n, "", fleet::steady::now());
        benchmark::DoNotOptimize(p);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_place)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

void BM_place_with_tokens(benchmark::State& state) {
    auto core = make_fleet(50);
    control::join_config jc;
    control::join_key k;
    k.id = 1;
    k.secret.assign(32, 0x42);
    jc.keys.push_back(k);
    jc.mint_key_id = 1;
    const control::token_minter minter(jc);
    const auto n = static_cast<uint32_t>(state.range(0));
    for (auto _ : state) {
        auto p = core.place(1, n, "", fleet::steady::now());
        auto t = minter.mint(1, 1, 2000000000u, n);
        benchmark::DoNotOptimize(p);
        benchmark::DoNotOptimize(t);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_place_with_tokens)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
