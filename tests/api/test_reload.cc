// SIGHUP reload (issue 10): control_plane::reload applies the settings that
// can change live and refuses, all or nothing, a reload that changes one
// that cannot. [mixer] is live: here the relay's mixer gets the new version
// (tests/integration/test_services.cc, mixer_reload.*, shows a running
// encoder take it at its next frame). stentord's side (signal, file, log lines) is
// tests/e2e/e2e_signals.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "fixture.h"
#include "stentor/services/mixer.h"

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
        {"mixer bitrate, complexity, decoder cap: a new mixer version",
         [](auto& q) { q.mixer.bitrate_kbps = 24; q.mixer.complexity = 3; q.mixer.max_decoders_per_session = 4; },
         {"mixer.bitrate_kbps", "mixer.complexity", "mixer.max_decoders_per_session"}, true, {}},
        {"mixer channels: applied (to mixes that start afterwards, and the result says so)",
         [](auto& q) { q.mixer.channels = 1; }, {"mixer.channels"}, true, {}},
        {"a mixer setting with a restart one: all refused, only the restart one named",
         [](auto& q) { q.mixer.bitrate_kbps = 96; q.eal.lcores = {0, 1, 2}; }, {"eal.lcores", "mixer.bitrate_kbps"},
         false, {"eal.lcores"}},
        {"a mixer value libopus cannot run with (the loader refuses it first): refused, named",
         [](auto& q) { q.mixer.bitrate_kbps = 1; }, {"mixer.bitrate_kbps"}, false, {"mixer"}},
        {"ports, lcores, static sessions", [](auto&) {}, {"port[0].mtu", "eal.lcores", "session[0].udp_port"}, false,
         {"port[0].mtu", "eal.lcores", "session[0].udp_port"}},
        {"join keys and token life", [](auto&) {}, {"join.keys[1].id", "join.token_ttl_s"}, false,
         {"join.keys[1].id", "join.token_ttl_s"}},
    };
    unsigned want_headroom = p.limits.headroom_pct;
    unsigned want_wait = p.limits.join_resolve_ms;
    svc::mix_settings want_mix = control::mix_settings_of(p.mixer);
    uint64_t want_version = 1;
    ASSERT_EQ(want_mix, r.mix_settings());
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto next = p;
        c.edit(next);
        const auto res = cp.reload(next, c.changed);
        if (c.applies) {
            EXPECT_TRUE(res.refused.empty());
            EXPECT_EQ(c.changed, res.applied);
            const bool channels = std::find(c.changed.begin(), c.changed.end(), "mixer.channels") != c.changed.end();
            ASSERT_EQ(channels ? 1u : 0u, res.notes.size());
            if (channels) {
                EXPECT_EQ(0u, res.notes[0].rfind("mixer.channels: for mixes that start from now on", 0));
            }
            want_headroom = next.limits.headroom_pct;
            want_wait = next.limits.join_resolve_ms;
            want_mix = control::mix_settings_of(next.mixer);
            want_version += std::any_of(c.changed.begin(), c.changed.end(),
                                        [](const std::string& k) { return k.starts_with("mixer."); });
        } else {
            EXPECT_TRUE(res.applied.empty());
            ASSERT_EQ(c.refused_keys.size(), res.refused.size());
            for (size_t i = 0; i < c.refused_keys.size(); ++i)
                EXPECT_EQ(0u, res.refused[i].rfind(c.refused_keys[i] + ": ", 0)) << res.refused[i];
        }
        EXPECT_EQ(want_headroom, cp.adm().report().headroom_pct) << "what admission plans with";
        EXPECT_EQ(want_wait, cp.join_resolve_ms());
        EXPECT_EQ(want_mix, r.mix_settings()) << "what the mixer threads takes at its next poll";
        EXPECT_EQ(want_version, r.mix_settings_version());
    }
}

}  // namespace
}  // namespace stentor::test
