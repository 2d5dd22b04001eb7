// SIGHUP reload (issue 10): control_plane::reload applies the settings that
// can change live and refuses, all or nothing, a reload that changes one
// that cannot. stentord's side (signal, file, log lines) is
// tests/e2e/e2e_signals.sh.
#include <gtest/gtest.h>

#include <functional>

#include "fixture.h"

namespace stentor::test {
namespace {

TEST(reload, live_settings_apply_the_rest_refuse_everything) {
    ring_port port = fresh_ring_port("reload");
    auto p = api_profile(port.name);
    control::relay r(p, control::relay_options{.launch = false});
    control::control_options co;
    co.publisher = false;
    control::control_plane cp(r, p, co);
    struct reload_case {
        const char* what;
        std::function<void(control::profile&)> edit;
        std::vector<std::string> changed;
        bool applies;
        std::vector<std::string> refused_keys;
    };
    const reload_case cases[] = {
        {"headroom and join wait", [](auto& q) { q.limits.headroom_pct = 30; q.limits.join_resolve_ms = 250; },
         {"limits.headroom_pct", "limits.join_resolve_ms"}, true, {}},
        {"overload thresholds", [](auto& q) { q.overload.enter_ticks = 5; }, {"overload.enter_ticks"}, true, {}},
        {"a table size with a live one: all refused",
         [](auto& q) { q.limits.headroom_pct = 50; q.limits.max_speakers = 8; },
         {"limits.headroom_pct", "limits.max_speakers"}, false, {"limits.max_speakers"}},
        {"ports, lcores, mixer, static sessions", [](auto&) {},
         {"port[0].mtu", "eal.lcores", "mixer.bitrate_kbps", "session[0].udp_port"}, false,
         {"port[0].mtu", "eal.lcores", "mixer.bitrate_kbps", "session[0].udp_port"}},
        {"join keys and token life", [](auto&) {}, {"join.keys[1].id", "join.token_ttl_s"}, false,
         {"join.keys[1].id", "join.token_ttl_s"}},
    };
    unsigned want_headroom = p.limits.headroom_pct;
    unsigned want_wait = p.limits.join_resolve_ms;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto next = p;
        c.edit(next);
        const auto res = cp.reload(next, c.changed);
        if (c.applies) {
            EXPECT_TRUE(res.refused.empty());
            EXPECT_EQ(c.changed, res.applied);
            want_headroom = next.limits.headroom_pct;
            want_wait = next.limits.join_resolve_ms;
        } else {
            EXPECT_TRUE(res.applied.empty());
            ASSERT_EQ(c.refused_keys.size(), res.refused.size());
            for (size_t i = 0; i < c.refused_keys.size(); ++i)
                EXPECT_EQ(0u, res.refused[i].rfind(c.refused_keys[i] + ": ", 0)) << res.refused[i];
        }
        EXPECT_EQ(want_headroom, cp.adm().report().headroom_pct) << "what admission plans with";
        EXPECT_EQ(want_wait, cp.join_resolve_ms());
    }
}

}  // namespace
}  // namespace stentor::test
