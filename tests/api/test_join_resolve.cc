// Issue 10 item 12: a join is acknowledged once the listener can hear.
// `POST .../listeners` used to answer 201 as soon as the snapshot with the
// listener was published, before the relay had resolved its next hop: the
// packets that followed were dropped as drop/egress/neigh_unresolved until
// ARP was answered (4-14 packets seen from outside). Now the answer waits
// (bounded by limits.join_resolve_ms) for the next hop, and says 202 when it
// did not answer in time.
//
// The neighbour here answers ARP 30 ms after the relay first asks, like a
// host that is slow to wake. On the old code the 201 came back before that,
// and the packets injected after it were lost.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "fixture.h"

namespace stentor::test {
namespace {

using json = nlohmann::json;
using clk = std::chrono::steady_clock;

constexpr uint32_t slow_host = listener_ip;          // 198.18.0.100: answers ARP 30 ms late
constexpr uint32_t mute_host = listener_ip + 1;      // 198.18.0.101: never answers
constexpr uint32_t offlink_host = 0xcb007105;        // 203.0.113.5: via the pinned gateway

struct network {
    const ring_port& port;
    std::atomic<bool> stop{false};
    std::atomic<uint32_t> injected{0};
    std::mutex mu;
    std::map<uint32_t, std::set<uint16_t>> got;      // listener ip -> RTP seqs received
    clk::time_point first_request{};
    bool answered = false;
    std::thread thr;

    explicit network(const ring_port& p) : port(p) {
        thr = std::thread([this] { run(); });
    }
    ~network() {
        stop = true;
        thr.join();
    }

    void run() {
        auto next = clk::now();
        while (!stop.load()) {
            const auto now = clk::now();
            if (now >= next) {
                // Count first, then enqueue: a seq above what the test read
                // after an acknowledgement was enqueued after it.
                const uint32_t n = injected.load() + 1;
                injected.store(n);
                frame_spec fs;
                fs.seq = static_cast<uint16_t>(n);
                inject(port, rtp_frame(fs));
                next = now + std::chrono::milliseconds(5);
            }
            for (const auto& f : drain(port)) {
                if (f.size() >= 42 && be16(f.data() + 12) == 0x0806 && be16(f.data() + 20) == 1) {
                    if (be32(f.data() + 38) == slow_host && first_request == clk::time_point{}) first_request = now;
                    continue;
                }
                if (f.size() < 54 || be16(f.data() + 12) != 0x0800 || f[23] != 17) continue;
                std::lock_guard g(mu);
                got[be32(f.data() + 30)].insert(be16(f.data() + 44));
            }
            if (!answered && first_request != clk::time_point{} && now - first_request >= std::chrono::milliseconds(30)) {
                const mac_t m = host_mac(slow_host);
                inject(port, arp_frame(2, m.data(), slow_host, relay_mac, relay_ip, relay_mac));
                answered = true;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    std::set<uint16_t> seqs(uint32_t ip) {
        std::lock_guard g(mu);
        return got[ip];
    }
};

TEST(join_resolve, an_acknowledged_join_hears_the_next_packet_and_an_unanswered_one_says_so) {
    ring_port port = make_ring_port("joinres0");
    auto p = api_profile(port.name);
    p.limits.join_resolve_ms = 300;
    control::session_config sc = speaker_session();
    sc.frame_ms = 5;
    p.sessions.push_back(sc);
    control::relay_options ro;
    ro.launch = true;
    api_env env(p, ro);
    network net(port);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

    struct join_case {
        const char* what;
        uint32_t ip;
        int status;
        bool resolved;
    };
    const join_case cases[] = {
        {"on-link host that answers ARP after 30 ms: 201 once resolved", slow_host, 201, true},
        {"off-link host behind the pinned gateway: resolved at once", offlink_host, 201, true},
        {"on-link host that never answers: 202 after join_resolve_ms", mute_host, 202, false},
    };
    std::map<uint32_t, uint32_t> acked_at;   // listener -> last seq injected before its answer
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto r = env.post("/api/v1/sessions/1/listeners", {{"ip", control::format_ipv4(c.ip)}, {"port", 6000}});
        acked_at[c.ip] = net.injected.load();
        EXPECT_EQ(c.status, r.status) << r.text;
        EXPECT_EQ(c.resolved, r.body.value("resolved", !c.resolved)) << r.text;
        if (!c.resolved) {
            EXPECT_EQ(json::array({control::format_ipv4(c.ip)}), r.body.value("unresolved_next_hops", json())) << r.text;
        }
    }
    // A bulk join through the pinned gateway is resolved at once too.
    auto b = env.post("/api/v1/sessions/1/listeners/bulk",
                      {{"listeners", json::array({{{"ip", "203.0.113.6"}, {"port", 6000}}})}});
    EXPECT_EQ(201, b.status) << b.text;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const uint32_t last = net.injected.load() - 20;   // well inside what has had time to arrive
    for (const uint32_t ip : {slow_host, offlink_host}) {
        SCOPED_TRACE(control::format_ipv4(ip));
        const auto seqs = net.seqs(ip);
        ASSERT_LT(acked_at[ip] + 1, last);
        std::vector<uint32_t> missing;
        for (uint32_t n = acked_at[ip] + 1; n <= last; ++n)
            if (!seqs.count(static_cast<uint16_t>(n))) missing.push_back(n);
        EXPECT_TRUE(missing.empty()) << missing.size() << " packets sent after the acknowledgement were lost, first "
                                     << (missing.empty() ? 0 : missing.front()) << " (acknowledged after "
                                     << acked_at[ip] << ")";
    }
    EXPECT_TRUE(net.seqs(mute_host).empty()) << "a host that never answered ARP got packets";
}

}  // namespace
}  // namespace stentor::test
