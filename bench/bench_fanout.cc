// Micro-benchmarks of the per-replica costs (Google Benchmark):
//  - replica build, flat copy vs header chained to a shared payload, for
//    Opus payloads of 40/80/160/320/1000 bytes (alloc + build + free, in
//    bursts of 32, as the fan-out loop does; TX itself is not included);
//  - the listener-table scan (8-byte records in 16 KiB chunks);
//  - the checksum helpers.
// EAL runs without hugepages or devices; mbufs come from a real mempool.
#include <cstdio>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "parse.h"
#include "replica.h"
#include "stentor/dp_snapshot.h"

namespace {

using namespace stentor::dp;

rte_mempool* g_pool = nullptr;
constexpr unsigned burst = 32;

dp_listener make_listener(uint32_t i) {
    dp_listener r{};
    const uint32_t ip = 0x0a000001 + i;
    r.ip_be = __builtin_bswap32(ip);
    r.port_be = __builtin_bswap16(5004);
    return r;
}

void make_template(egress_template& t, size_t payload) {
    std::vector<uint8_t> rtp(12 + payload, 0x5a);
    rtp[0] = 0x80;
    rtp[1] = 111;
    const uint8_t mac[6] = {2, 0x53, 0x54, 0, 0, 1};
    build_template(t, rtp.data(), static_cast<uint16_t>(rtp.size()), mac, __builtin_bswap32(0xc6120001),
                   __builtin_bswap16(40000));
}

void bm_replica_copy(benchmark::State& st) {
    static egress_template t;
    make_template(t, static_cast<size_t>(st.range(0)));
    const dp_listener l = make_listener(7);
    const uint64_t mac = 0x0000feffffff0002ULL;
    rte_mbuf* m[burst];
    for (auto _ : st) {
        if (rte_pktmbuf_alloc_bulk(g_pool, m, burst) != 0) st.SkipWithError("pool empty");
        for (unsigned i = 0; i < burst; ++i) build_replica_copy(m[i], t, l, mac, 0);
        benchmark::DoNotOptimize(m[burst - 1]->buf_addr);
        rte_pktmbuf_free_bulk(m, burst);
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * burst);
}

void bm_replica_chain(benchmark::State& st) {
    static egress_template t;
    make_template(t, static_cast<size_t>(st.range(0)));
    const dp_listener l = make_listener(7);
    const uint64_t mac = 0x0000feffffff0002ULL;
    rte_mbuf* payload = rte_pktmbuf_alloc(g_pool);
    std::memcpy(rte_pktmbuf_append(payload, static_cast<uint16_t>(t.len - l2l3l4)), t.frame + l2l3l4, t.len - l2l3l4);
    rte_mbuf* m[burst];
    for (auto _ : st) {
        if (rte_pktmbuf_alloc_bulk(g_pool, m, burst) != 0) st.SkipWithError("pool empty");
        for (unsigned i = 0; i < burst; ++i) build_replica_chain(m[i], payload, t, l, mac, 0);
        benchmark::DoNotOptimize(m[burst - 1]->buf_addr);
        rte_pktmbuf_free_bulk(m, burst);   // frees headers, drops the payload's references
    }
    rte_pktmbuf_free(payload);
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * burst);
}

void bm_listener_scan(benchmark::State& st) {
    const uint32_t n = static_cast<uint32_t>(st.range(0));
    std::vector<dp_listener_chunk*> chunks;
    for (uint32_t c = 0; c < (n + listener_chunk_size - 1) / listener_chunk_size; ++c) {
        auto* ch = static_cast<dp_listener_chunk*>(std::aligned_alloc(64, sizeof(dp_listener_chunk)));
        for (uint32_t i = 0; i < listener_chunk_size; ++i) ch->l[i] = make_listener(c * listener_chunk_size + i);
        chunks.push_back(ch);
    }
    for (auto _ : st) {
        uint64_t acc = 0;
        for (uint32_t i = 0; i < n; ++i) {
            const dp_listener& r = chunks[i / listener_chunk_size]->l[i % listener_chunk_size];
            acc += is_live(r) ? r.ip_be + r.port_be : 0;
        }
        benchmark::DoNotOptimize(acc);
    }
    for (auto* c : chunks) std::free(c);
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * n);
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * n * static_cast<int64_t>(sizeof(dp_listener)));
}

void bm_checksum(benchmark::State& st) {
    std::vector<uint8_t> buf(static_cast<size_t>(st.range(0)), 0xa5);
    for (auto _ : st) {
        uint32_t s = csum_add(0, buf.data(), static_cast<uint32_t>(buf.size()));
        benchmark::DoNotOptimize(csum_fold(s));
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * st.range(0));
}

void bm_checksum_incremental(benchmark::State& st) {
    egress_template t;
    make_template(t, 80);
    uint32_t i = 0;
    for (auto _ : st) {
        const dp_listener l = make_listener(i++);
        uint8_t d[64];
        std::memcpy(d, t.frame, 64);
        patch_headers(d, t, l, 0x0000feffffff0002ULL);
        benchmark::DoNotOptimize(d[off_udp_csum]);
    }
}

BENCHMARK(bm_replica_copy)->Arg(40)->Arg(80)->Arg(160)->Arg(320)->Arg(1000);
BENCHMARK(bm_replica_chain)->Arg(40)->Arg(80)->Arg(160)->Arg(320)->Arg(1000);
BENCHMARK(bm_listener_scan)->Arg(1 << 10)->Arg(100000)->Arg(1000000);
BENCHMARK(bm_checksum)->Arg(20)->Arg(134)->Arg(1000);
BENCHMARK(bm_checksum_incremental);

}  // namespace

int main(int argc, char** argv) {
    const std::string prefix = "--file-prefix=stentor-bench-" + std::to_string(::getpid());
    const char* eal[] = {"bench_fanout", "-l", "0", "--no-huge", "-m", "256", "--no-pci", prefix.c_str(),
                         "--log-level=error"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "EAL init failed\n");
        return 1;
    }
    g_pool = rte_pktmbuf_pool_create("bench_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (g_pool == nullptr) return 1;
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    rte_eal_cleanup();
    return 0;
}
