// The join desk's once-a-second consent sweep (control/join_desk.cc, sweep),
// the walk over every binding, before and after the review's item 2: the
// sessions of the bindings were collected by a linear search of a vector per
// binding (O(bindings x sessions)); now the desk keeps a count per session
// and looks up only those (O(sessions)), then one walk for the timeouts.
// Both variants below copy the loops of the desk on a table of the desk's
// shape (token -> binding); relay_state's session lookup, one per distinct
// session in both, is left out. Arguments: bindings, sessions.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ipv6.h"

namespace {

using clock_t_ = std::chrono::steady_clock;

struct token_ref {
    uint64_t nonce;
    uint32_t key_id;
    bool operator==(const token_ref&) const = default;
};
struct token_hash {
    size_t operator()(const token_ref& t) const noexcept { return t.nonce ^ (uint64_t{t.key_id} << 56); }
};
struct binding {
    uint32_t session_id;
    uint16_t port;
    uint8_t ip[16];
    uint8_t tier;
    clock_t_::time_point last_seen;
    uint32_t expiry;
};

struct table {
    std::unordered_map<token_ref, binding, token_hash> by_token;
    std::unordered_map<uint32_t, uint32_t> per_session;
    clock_t_::time_point now = clock_t_::now();
    table(size_t n, uint32_t sessions) {
        by_token.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            binding b{};
            b.session_id = static_cast<uint32_t>(i % sessions) + 1;
            b.last_seen = now;
            by_token.emplace(token_ref{i * 0x9e3779b97f4a7c15ULL, 1}, b);
            ++per_session[b.session_id];
        }
    }
};

table& shared(size_t n, uint32_t sessions) {
    static std::unordered_map<uint64_t, std::unique_ptr<table>> t;
    auto& p = t[(uint64_t{n} << 32) | sessions];
    if (!p) p = std::make_unique<table>(n, sessions);
    return *p;
}

// Before: control/join_desk.cc at 0e085ae.
void BM_sweep_search_per_binding(benchmark::State& st) {
    table& t = shared(static_cast<size_t>(st.range(0)), static_cast<uint32_t>(st.range(1)));
    for (auto _ : st) {
        std::vector<uint32_t> ids;
        for (const auto& [k, b] : t.by_token)
            if (std::find(ids.begin(), ids.end(), b.session_id) == ids.end()) ids.push_back(b.session_id);
        std::vector<uint32_t> ended;   // relay_state::session(id) per id: left out
        std::vector<token_ref> gone;
        for (const auto& [k, b] : t.by_token) {
            if (!ended.empty() && std::find(ended.begin(), ended.end(), b.session_id) != ended.end())
                gone.push_back(k);
            else if (t.now - b.last_seen >= std::chrono::seconds(30))
                gone.push_back(k);
        }
        benchmark::DoNotOptimize(ids.data());
        benchmark::DoNotOptimize(gone.data());
    }
    st.SetItemsProcessed(st.iterations() * st.range(0));
}

// After: the per-session counts.
void BM_sweep_per_session_counts(benchmark::State& st) {
    table& t = shared(static_cast<size_t>(st.range(0)), static_cast<uint32_t>(st.range(1)));
    for (auto _ : st) {
        std::unordered_set<uint32_t> ended;
        for (const auto& [id, n] : t.per_session) benchmark::DoNotOptimize(id);   // relay_state::session(id): left out
        std::vector<token_ref> gone;
        for (const auto& [k, b] : t.by_token) {
            if (!ended.empty() && ended.contains(b.session_id))
                gone.push_back(k);
            else if (t.now - b.last_seen >= std::chrono::seconds(30))
                gone.push_back(k);
        }
        benchmark::DoNotOptimize(gone.data());
    }
    st.SetItemsProcessed(st.iterations() * st.range(0));
}

// After, too: the walk the sweep added over the source table (IPv4
// addresses, IPv6 /64s) to drop sources that hold nothing and whose bucket
// is full again. Worst case: every binding its own source, none idle.
// Argument: sources.
using stentor::control::ipv6_addr;   // and its hash, the desk's own (control/ipv6.h)
using stentor::control::ipv6_addr_hash;
struct source_state {
    uint32_t bindings = 0;
    double tokens = 0;
    clock_t_::time_point refilled{};
};

void BM_sweep_sources(benchmark::State& st) {
    std::unordered_map<ipv6_addr, source_state, ipv6_addr_hash> sources;
    const auto now = clock_t_::now();
    for (int64_t i = 0; i < st.range(0); ++i) {
        ipv6_addr a{};
        a[10] = a[11] = 0xff;
        const auto v = static_cast<uint32_t>(0x0a000000 + i);
        std::memcpy(a.data() + 12, &v, 4);
        sources[a] = source_state{1, 1000.0, now};
    }
    for (auto _ : st) {
        const size_t n = std::erase_if(sources, [&](const auto& kv) {
            const source_state& s = kv.second;
            if (s.bindings > 0) return false;
            if (s.refilled == clock_t_::time_point{}) return true;
            return s.tokens + std::chrono::duration<double>(now - s.refilled).count() * 100.0 >= 1000.0;
        });
        benchmark::DoNotOptimize(n);
    }
    st.SetItemsProcessed(st.iterations() * st.range(0));
}
BENCHMARK(BM_sweep_sources)->Arg(1500000)->Unit(benchmark::kMillisecond)->Repetitions(3);

void args(benchmark::internal::Benchmark* b) {
    for (int64_t s : {1, 64, 1024}) b->Args({1500000, s});
    b->Unit(benchmark::kMillisecond)->Repetitions(3)->ReportAggregatesOnly(false);
}
BENCHMARK(BM_sweep_search_per_binding)->Apply(args);
BENCHMARK(BM_sweep_per_session_counts)->Apply(args);

}  // namespace

BENCHMARK_MAIN();
