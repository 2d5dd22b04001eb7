// Churn: joins and leaves over the HTTP API while a speaker streams through
// the relay (worker on lcore 1, ring ethdev). Every packet injected after a
// join is acknowledged reaches that listener, none injected after its leave
// is acknowledged does, and no listener sees a gap or a duplicate.
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "fixture.h"

namespace stentor::test {
namespace {

using nlohmann::json;

struct life {
    uint32_t join_ack = 0;          // packets with a higher number must arrive
    std::optional<uint32_t> leave_ack;   // packets with a higher number must not
};

TEST(churn, every_admitted_listener_gets_every_packet_after_its_ack_and_none_after_leave) {
    ring_port port = make_ring_port("churn0");
    auto p = api_profile(port.name);
    control::session_config sc = speaker_session();
    sc.frame_ms = 5;   // the speaker policer allows 220 packets/s; the pump sends at most 200/s
    for (uint32_t i = 0; i < 4; ++i) sc.listeners.push_back({0xcb007101 + i, 6000, i});
    p.sessions.push_back(sc);
    control::relay_options ro;
    ro.launch = true;
    api_env env(p, ro);

    std::atomic<uint32_t> injected{0};
    std::atomic<bool> stop_inject{false}, stop_pump{false};
    std::mutex mu;
    std::map<uint64_t, std::vector<uint32_t>> got;   // (ip << 16 | port) -> packet numbers, in arrival order
    std::atomic<uint64_t> frames{0};
    std::thread pump([&] {
        auto next = std::chrono::steady_clock::now();
        while (!stop_pump.load()) {
            const auto now = std::chrono::steady_clock::now();
            if (!stop_inject.load() && now >= next && injected.load() < 60000) {
                // Count first, then enqueue: a packet numbered above what the
                // test reads after an acknowledgement was enqueued after it.
                const uint32_t n = injected.load() + 1;
                injected.store(n);
                frame_spec fs;
                fs.seq = static_cast<uint16_t>(n);
                inject(port, rtp_frame(fs));
                next = now + std::chrono::microseconds(5000);
            }
            auto out = drain(port);
            if (!out.empty()) {
                std::lock_guard g(mu);
                for (const auto& f : out) {
                    if (f.size() < 54 || be16(f.data() + 12) != 0x0800 || f[23] != 17) continue;
                    got[uint64_t{be32(f.data() + 30)} << 16 | be16(f.data() + 36)].push_back(be16(f.data() + 44));
                    ++frames;
                }
            } else {
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            }
        }
    });

    std::map<uint64_t, life> lives;
    for (uint32_t i = 0; i < 4; ++i) lives[uint64_t{0xcb007101 + i} << 16 | 6000] = {0, std::nullopt};
    std::mt19937 rng(4);
    uint32_t next_ip = 0x0a010001;   // 10.1.0.1 and up, via the gateway
    std::vector<uint64_t> joined;
    for (auto& [k, v] : lives) joined.push_back(k);
    for (int op = 0; op < 90; ++op) {
        const int kind = op % 6;
        if (kind <= 2) {
            const uint32_t ip = next_ip++;
            auto r = env.post("/api/v1/sessions/1/listeners", {{"ip", control::format_ipv4(ip)}, {"port", 7000}, {"tier", op % 4}});
            ASSERT_EQ(201, r.status) << r.text;
            const uint64_t k = uint64_t{ip} << 16 | 7000;
            lives[k] = {injected.load(), std::nullopt};
            joined.push_back(k);
        } else if (kind == 3) {
            json items = json::array();
            std::vector<uint64_t> ks;
            for (int i = 0; i < 5; ++i) {
                const uint32_t ip = next_ip++;
                items.push_back({{"ip", control::format_ipv4(ip)}, {"port", 7001}, {"tier", i % 4}});
                ks.push_back(uint64_t{ip} << 16 | 7001);
            }
            auto r = env.post("/api/v1/sessions/1/listeners/bulk", {{"listeners", items}});
            ASSERT_EQ(201, r.status) << r.text;
            const uint32_t ack = injected.load();
            for (auto k : ks) {
                lives[k] = {ack, std::nullopt};
                joined.push_back(k);
            }
        } else if (!joined.empty()) {
            const size_t i = rng() % joined.size();
            const uint64_t k = joined[i];
            joined.erase(joined.begin() + static_cast<long>(i));
            const std::string ep = control::format_ipv4(static_cast<uint32_t>(k >> 16)) + ":" + std::to_string(k & 0xffff);
            auto r = env.del("/api/v1/sessions/1/listeners/" + ep);
            ASSERT_EQ(200, r.status) << r.text;
            lives[k].leave_ack = injected.load();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
    // Let the stream run a little past the last acknowledgement, stop it,
    // and collect until the relay has nothing more to send (bounded).
    const uint32_t target = injected.load() + 50;
    for (int i = 0; i < 5000 && injected.load() < target; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    stop_inject.store(true);
    uint64_t last = 0;
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const uint64_t f = frames.load();
        if (f == last && i > 5) break;
        last = f;
    }
    stop_pump.store(true);
    pump.join();
    const uint32_t final_n = injected.load();
    ASSERT_GE(final_n, 100u);

    std::lock_guard g(mu);
    size_t checked = 0;
    for (const auto& [k, lf] : lives) {
        const std::string who = control::format_ipv4(static_cast<uint32_t>(k >> 16)) + ":" + std::to_string(k & 0xffff);
        const auto& v = got[k];
        std::set<uint32_t> s(v.begin(), v.end());
        EXPECT_EQ(s.size(), v.size()) << who << ": duplicate packets";
        if (lf.leave_ack) {
            for (uint32_t n : s) EXPECT_LE(n, *lf.leave_ack) << who << ": packet after its leave was acknowledged";
            if (!s.empty()) {
                for (uint32_t n = lf.join_ack + 1; n <= *s.rbegin(); ++n)
                    EXPECT_TRUE(s.count(n)) << who << ": gap at packet " << n;
            }
        } else {
            for (uint32_t n = lf.join_ack + 1; n <= final_n; ++n) {
                EXPECT_TRUE(s.count(n)) << who << ": missed packet " << n;
                if (!s.count(n)) break;
            }
        }
        ++checked;
    }
    EXPECT_GT(checked, 100u);
    const auto t = env.r->totals();
    EXPECT_EQ(0u, t.drops[static_cast<size_t>(dp::drop_reason::tx_full)]);
    EXPECT_EQ(0u, t.drops[static_cast<size_t>(dp::drop_reason::ring_full)]);
    for (auto m : t.tier_misses) EXPECT_EQ(0u, m);
}

}  // namespace
}  // namespace stentor::test
