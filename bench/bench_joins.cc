// Control-plane join cost: relay_state actions + publish, with admission
// attached, no EAL (no RCU: the grace period is the data plane's business
// and is measured by joins_harness). items_per_second = joins applied and
// published per second.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "admission.h"
#include "state.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_worker.h"

namespace {

using namespace stentor;

control::profile bench_profile() {
    control::profile p;
    control::port_config pc;
    pc.name = "p0";
    pc.ipv4 = 0xc6120001;
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    pc.line_rate_mbps = 800000;
    p.ports.push_back(pc);
    p.dataplane.fanout_lcores = {1};
    p.limits.max_listeners = 4000000;
    p.limits.max_listeners_per_session = 4000000;
    p.limits.join_rate_per_s = 4000000000u;
    p.limits.session_join_rate_per_s = 4000000000u;
    p.limits.fanout_pps_per_core = 4000000000u;
    return p;
}

struct rig {
    control::profile p = bench_profile();
    dp::dp_shared sh;
    std::vector<dp::dp_neigh> neigh{4096};
    std::unique_ptr<control::admission> adm;
    std::unique_ptr<control::relay_state> st;
    rig() {
        sh.neigh = neigh.data();
        sh.nb_neigh = 4096;
        st = std::make_unique<control::relay_state>(p, sh, 1);
        adm = std::make_unique<control::admission>(control::admission_config_from(p, {}));
        st->set_admission(adm.get());
    }
    ~rig() { st->set_admission(nullptr); }
    uint32_t session() {
        control::session_params sp;
        sp.max_bitrate_kbps = 32;
        return st->session_create(sp).id;
    }
};

// Off-link addresses (10/8, via the gateway), unique (ip, port).
control::listener_spec nth(uint32_t i) {
    return {0x0a000001 + i / 16, 10000 + i % 16, 1};
}

// One join per action call, one publish per `batch` joins.
void BM_listener_add_publish(benchmark::State& s) {
    const auto batch = static_cast<uint32_t>(s.range(0));
    rig r;
    uint32_t sid = r.session();
    uint32_t n = 0;
    for (auto _ : s) {
        for (uint32_t k = 0; k < batch; ++k, ++n) {
            const auto l = nth(n);
            r.st->listener_add(sid, l.ip, l.port, l.tier);
        }
        r.st->publish();
        if (n >= 2000000) {
            s.PauseTiming();
            r.st->session_end(sid);
            r.st->publish();
            sid = r.session();
            n = 0;
            s.ResumeTiming();
        }
    }
    s.SetItemsProcessed(static_cast<int64_t>(s.iterations()) * batch);
}
BENCHMARK(BM_listener_add_publish)->Arg(1)->Arg(100)->Arg(10000)->Arg(100000);

// The bulk action (what POST .../listeners/bulk calls) + publish.
void BM_listener_add_bulk_publish(benchmark::State& s) {
    const auto batch = static_cast<uint32_t>(s.range(0));
    rig r;
    uint32_t sid = r.session();
    uint32_t n = 0;
    std::vector<control::listener_spec> items(batch);
    for (auto _ : s) {
        s.PauseTiming();
        for (uint32_t k = 0; k < batch; ++k) items[k] = nth(n + k);
        n += batch;
        s.ResumeTiming();
        r.st->listener_add_bulk(sid, items);
        r.st->publish();
        if (n >= 2000000) {
            s.PauseTiming();
            r.st->session_end(sid);
            r.st->publish();
            sid = r.session();
            n = 0;
            s.ResumeTiming();
        }
    }
    s.SetItemsProcessed(static_cast<int64_t>(s.iterations()) * batch);
}
BENCHMARK(BM_listener_add_bulk_publish)->Arg(1000)->Arg(100000);

// Leaves: the other half of churn.
void BM_listener_del_publish(benchmark::State& s) {
    const uint32_t batch = 10000;
    rig r;
    const uint32_t sid = r.session();
    std::vector<control::listener_spec> items(batch);
    for (auto _ : s) {
        s.PauseTiming();
        for (uint32_t k = 0; k < batch; ++k) items[k] = nth(k);
        r.st->listener_add_bulk(sid, items);
        r.st->publish();
        s.ResumeTiming();
        for (const auto& l : items) r.st->listener_del(sid, l.ip, l.port);
        r.st->publish();
    }
    s.SetItemsProcessed(static_cast<int64_t>(s.iterations()) * batch);
}
BENCHMARK(BM_listener_del_publish);

}  // namespace

BENCHMARK_MAIN();
