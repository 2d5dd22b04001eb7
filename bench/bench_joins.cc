// Control-plane join cost: relay_state actions + publish, with admission
// attached, no EAL (no RCU: the grace period is the data plane's business
// and is measured by joins_harness). items_per_second = joins applied and
// published per second.
//
// After the micro-benchmarks, the journal's cost (issue 10), in the same
// run, ending with
//   RESULT journal_joins_ratio=<joins/s journal on / off> recover_1m_s=<s>
// joins: 1 M listeners as 10 bulk actions of 100 000 (what POST
// .../listeners/bulk does), each acknowledged the way the API acknowledges
// (publisher thread, wait_published), journal on a real file with fdatasync
// vs no journal, median of 3 alternating runs each; recovery: a new relay_state restored from that directory,
// from the journal and from a snapshot, the slower of the two. Goals:
// ratio >= 0.8, recovery <= 5 s. Options (before Google Benchmark's own):
//   --journal-dir=DIR        where the journal goes (default /var/tmp)
//   --journal-listeners=N    1000000 unless a smaller check run is wanted
//   --journal-only           skip the micro-benchmarks
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admission.h"
#include "journal.h"
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

// ---------------------------------------------------------------------------
// The journal's cost

using clk = std::chrono::steady_clock;

double secs_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// A rig with the API's way of acknowledging: a publisher thread that
// publishes whatever is pending (control_plane::run), callers that wait
// until their change is published (control_plane::commit).
struct acked_rig : rig {
    std::unique_ptr<control::journal> jr;
    std::atomic<bool> stop{false};
    std::thread publisher;
    control::restore_report rep;

    explicit acked_rig(const std::string& dir, uint64_t compact_bytes = 64ull << 20) {
        if (!dir.empty()) {
            control::journal_options o;
            o.dir = dir;
            o.compact_bytes = compact_bytes;
            jr = std::make_unique<control::journal>(o);
            rep = jr->restore(*st);
            st->set_journal(jr.get());
        }
        publisher = std::thread([this] {
            while (!stop.load())
                if (st->wait_pending(std::chrono::milliseconds(20))) {
                    st->publish();
                    // control_plane's batch window (control_options::min_publish_gap).
                    std::this_thread::sleep_for(std::chrono::microseconds(500));
                }
        });
    }
    ~acked_rig() {
        stop.store(true);
        publisher.join();
        if (jr) jr->wait_compaction();
        st->set_journal(nullptr);
    }
    void commit() {
        if (!st->wait_published(st->change_mark(), std::chrono::seconds(60))) {
            std::fprintf(stderr, "bench_joins: a change was not acknowledged within 60 s%s%s\n",
                         jr ? ": " : "", jr ? jr->error().c_str() : "");
            std::exit(1);
        }
    }
};

// joins/s for `total` listeners in bulk actions of `batch`, each acknowledged.
double bulk_joins_per_s(const std::string& dir, uint32_t total, uint32_t batch) {
    std::vector<std::vector<control::listener_spec>> batches;
    for (uint32_t at = 0; at < total; at += batch) {
        auto& b = batches.emplace_back();
        for (uint32_t i = at; i < std::min(total, at + batch); ++i) b.push_back(nth(i));
    }
    acked_rig r(dir);
    const uint32_t sid = r.session();
    r.commit();
    const auto t0 = clk::now();
    for (const auto& b : batches) {
        r.st->listener_add_bulk(sid, b);
        r.commit();
    }
    return total / secs_since(t0);
}

// joins/s for single joins from `threads` clients, each waiting for its
// acknowledgement before the next (the API's POST .../listeners).
double single_joins_per_s(const std::string& dir, unsigned threads, uint32_t per_thread) {
    acked_rig r(dir);
    const uint32_t sid = r.session();
    r.commit();
    std::vector<std::thread> ts;
    const auto t0 = clk::now();
    for (unsigned t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            for (uint32_t i = 0; i < per_thread; ++i) {
                const auto l = nth(5000000 + t * per_thread + i);
                r.st->listener_add(sid, l.ip, l.port, l.tier);
                r.commit();
            }
        });
    for (auto& th : ts) th.join();
    return threads * per_thread / secs_since(t0);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}
double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

void print_restore(const char* what, const control::restore_report& rep) {
    std::printf("journal: restore from %s: %llu listeners in %.3f s (%llu records)\n", what,
                static_cast<unsigned long long>(rep.listeners), rep.seconds,
                static_cast<unsigned long long>(rep.records_applied));
}

int journal_figures(const std::string& base, uint32_t n) {
    std::string tmpl = base + "/stentor-bench-journal-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
        std::fprintf(stderr, "bench_joins: cannot create a directory in %s: %s\n", base.c_str(), std::strerror(errno));
        return 1;
    }
    const std::string dir = tmpl;
    const uint32_t batch = std::min<uint32_t>(100000, n);
    std::printf("journal: %u joins as bulk actions of %u, each acknowledged; journal in %s (fdatasync)\n", n, batch,
                dir.c_str());
    // Alternating off/on, three times each: the first run of a process pays
    // for touching fresh memory, and which one goes first must not decide.
    std::vector<double> offs, ons;
    for (int rep = 0; rep < 3; ++rep) {
        offs.push_back(bulk_joins_per_s("", n, batch));
        std::filesystem::remove_all(dir + "/on");
        ons.push_back(bulk_joins_per_s(dir + "/on", n, batch));
    }
    const double off = median(offs), on = median(ons);
    std::printf("journal: bulk joins/s off median %.0f (%.0f..%.0f), on median %.0f (%.0f..%.0f), ratio %.3f\n", off,
                min_of(offs), max_of(offs), on, min_of(ons), max_of(ons), on / off);
    const auto jbytes = std::filesystem::file_size(dir + "/on/journal.1");

    // Recovery of those n listeners: from the journal as written, then from
    // a snapshot of them (compaction forced by a 1-byte threshold).
    double from_journal = 0, from_snapshot = 0;
    {
        acked_rig r(dir + "/on");
        print_restore("the journal", r.rep);
        std::printf("journal: journal.1 is %llu bytes\n", static_cast<unsigned long long>(jbytes));
        from_journal = r.rep.seconds;
        if (r.rep.listeners != n) {
            std::fprintf(stderr, "bench_joins: restored %llu listeners, not %u\n",
                         static_cast<unsigned long long>(r.rep.listeners), n);
            return 1;
        }
    }
    {
        acked_rig r(dir + "/on", 1);
        r.st->session_create({});   // something to publish: the publish compacts
        r.commit();
        r.jr->wait_compaction();
        const auto js = r.jr->stats();
        std::printf("journal: snapshot of %u listeners: %llu bytes, sorted, encoded, written and synced in %.3f s "
                    "(off the state mutex)\n",
                    n, static_cast<unsigned long long>(js.snapshot_bytes), js.last_snapshot_s);
    }
    {
        acked_rig r(dir + "/on");
        print_restore("a snapshot", r.rep);
        from_snapshot = r.rep.seconds;
    }
    // The image a snapshot starts from is copied under the state mutex:
    // what a compaction stalls the actions for.
    {
        acked_rig r(dir + "/on");
        const auto t0 = clk::now();
        const auto img = r.st->image();
        std::printf("journal: state image of %zu listeners copied under the mutex in %.3f s\n", img.listeners.size(),
                    secs_since(t0));
    }
    std::vector<double> soffs, sons;
    for (int rep = 0; rep < 3; ++rep) {
        soffs.push_back(single_joins_per_s("", 16, 500));
        std::filesystem::remove_all(dir + "/single");
        sons.push_back(single_joins_per_s(dir + "/single", 16, 500));
    }
    std::printf("journal: single joins/s, 16 clients each waiting for its acknowledgement: off median %.0f (%.0f..%.0f), "
                "on median %.0f (%.0f..%.0f), ratio %.3f (one fdatasync per group commit)\n",
                median(soffs), min_of(soffs), max_of(soffs), median(sons), min_of(sons), max_of(sons),
                median(sons) / median(soffs));
    std::filesystem::remove_all(dir);

    const double ratio = on / off;
    const double recover = std::max(from_journal, from_snapshot);
    std::printf("journal: joins ratio %.3f (goal >= 0.8: %s), recovery of %u listeners %.3f s (goal <= 5 s for 1 M: %s)\n",
                ratio, ratio >= 0.8 ? "met" : "NOT met", n, recover,
                n == 1000000 ? (recover <= 5 ? "met" : "NOT met") : "not measured at this size");
    std::printf("RESULT journal_joins_ratio=%.3f recover_%s_s=%.3f\n", ratio,
                n == 1000000 ? "1m" : std::to_string(n).c_str(), recover);
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir = "/var/tmp";
    uint32_t n = 1000000;
    bool only = false;
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--journal-dir=", 0) == 0) dir = a.substr(14);
        else if (a.rfind("--journal-listeners=", 0) == 0) n = static_cast<uint32_t>(std::stoul(a.substr(20)));
        else if (a == "--journal-only") only = true;
        else rest.push_back(argv[i]);
    }
    int ac = static_cast<int>(rest.size());
    if (!only) {
        benchmark::Initialize(&ac, rest.data());
        if (benchmark::ReportUnrecognizedArguments(ac, rest.data())) return 1;
        benchmark::RunSpecifiedBenchmarks();
        benchmark::Shutdown();
    }
    return journal_figures(dir, n);
}
