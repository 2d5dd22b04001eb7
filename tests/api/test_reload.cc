// SIGHUP reload (issue 10): control_plane::reload applies the settings that
// can change live and refuses, all or nothing, a reload that changes one
// that cannot. [mixer] is live: here the relay's mixer gets the new version
// (tests/integration/test_services.cc, mixer_reload.*, shows a running
// encoder take it at its next frame). stentord's side (signal, file, log lines) is
// tests/e2e/e2e_signals.sh; secret files rewritten in place (refused by
// name, the old secret kept) are tests/e2e/e2e_reload_secrets.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "fixture.h"
#include "stentor/dp_shared.h"
#include "stentor/join_token.h"
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
        {"join keys on a relay that started without any: refused (joins are off until a restart)",
         [](auto&) {}, {"join.keys[1].id", "join.token_ttl_s"}, false, {"join.keys"}},
        {"the rest of [join]: read at start", [](auto& q) { q.join.verify_per_s = 5; q.join.consent_timeout_s = 9; },
         {"join.consent_timeout_s", "join.verify_per_s"}, false, {"join.consent_timeout_s", "join.verify_per_s"}},
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

// join.keys, mint_key_id and token_ttl_s rotate live on a relay that started
// with keys; the data plane's key table and the minter follow (the whole
// path, tokens joining and refused: test_join.cc, join.keys_rotate_*).
TEST(reload, join_keys_rotate_live_and_at_least_one_stays) {
    ring_port port = fresh_ring_port("reload_keys");
    auto p = api_profile(port.name);
    const auto key = [](unsigned id, uint8_t fill) {
        control::join_key k;
        k.id = id;
        k.secret = std::vector<uint8_t>(32, fill);
        return k;
    };
    p.join.keys = {key(1, 0x11)};
    p.join.mint_key_id = 1;
    control::relay r(p, control::relay_options{.launch = false});
    control::control_options co;
    co.publisher = false;
    control::control_plane cp(r, p, co);
    auto held = [&r] {
        std::vector<unsigned> ids;
        const dp::dp_join_keys* t = r.shared().join_keys.load();
        for (unsigned id = 0; id < 256; ++id)
            if (t->by_id[id] != nullptr) ids.push_back(id);
        return ids;
    };
    struct row {
        const char* what;
        std::vector<control::join_key> keys;
        unsigned mint;
        std::vector<std::string> changed;
        bool applies;
        std::string refused_key;
        std::vector<unsigned> held_after;   // what the data plane verifies with afterwards
        unsigned mint_after;
    };
    const row rows[] = {
        {"add key 2 and mint with it", {key(1, 0x11), key(2, 0x22)}, 2,
         {"join.keys[1].id", "join.keys[1].secret_file", "join.mint_key_id"}, true, "", {1, 2}, 2},
        {"drop key 1", {key(2, 0x22)}, 2, {"join.keys[0].id", "join.keys[0].secret_file", "join.keys[1].id",
                                          "join.keys[1].secret_file"}, true, "", {2}, 2},
        {"no key at all: refused, key 2 stays", {}, 0, {"join.keys", "join.mint_key_id"}, false, "join.keys", {2}, 2},
        {"a key rotated with a verification budget: all refused", {key(2, 0x22), key(3, 0x33)}, 3,
         {"join.keys[1].id", "join.mint_key_id", "join.verify_per_s"}, false, "join.verify_per_s", {2}, 2},
        {"key 2's file rewritten in place (only its secret differs)", {key(2, 0x2f)}, 2, {"join.keys[0].secret"},
         true, "", {2}, 2},
    };
    for (const auto& c : rows) {
        SCOPED_TRACE(c.what);
        auto next = p;
        next.join.keys = c.keys;
        next.join.mint_key_id = c.mint;
        const auto before = cp.running_join();
        const auto res = cp.reload(next, c.changed);
        if (c.applies) {
            EXPECT_TRUE(res.refused.empty()) << (res.refused.empty() ? "" : res.refused[0]);
            EXPECT_EQ(c.changed, res.applied);
            ASSERT_FALSE(res.notes.empty());
            EXPECT_EQ(0u, res.notes[0].rfind("join.keys: keys ", 0)) << res.notes[0];
        } else {
            EXPECT_TRUE(res.applied.empty());
            ASSERT_EQ(1u, res.refused.size());
            EXPECT_EQ(0u, res.refused[0].rfind(c.refused_key + ": ", 0)) << res.refused[0];
            EXPECT_EQ(before.keys.size(), cp.running_join().keys.size()) << "a refused reload changed the keys";
        }
        EXPECT_EQ(c.held_after, held());
        EXPECT_EQ(c.mint_after, cp.minter()->key_id());
        EXPECT_EQ(c.mint_after, cp.running_join().mint_key_id);
    }
    // The secret of key 2 is the rewritten one: a token signed with the old
    // secret no longer verifies, one with the new does.
    const auto verifies = [&r](uint8_t fill) {
        const std::vector<uint8_t> s(32, fill);
        const join::token_key k(s.data(), s.size());
        join::token_fields f;
        f.key_id = 2;
        f.session_id = 1;
        std::string pw;
        const std::string t = join::mint_token(k, f, pw);
        uint8_t raw[join::token_raw_len];
        join::token_fields g;
        EXPECT_TRUE(join::decode_token(t.data(), t.size(), raw, g));
        uint8_t mac[join::token_mac_len];
        join::token_mac(*r.shared().join_keys.load()->by_id[2], raw, mac);
        return join::check_tag(raw, mac);
    };
    EXPECT_FALSE(verifies(0x22));
    EXPECT_TRUE(verifies(0x2f));
}

TEST(reload, join_secret_changes_names_keys_whose_file_changed_under_the_same_id) {
    const auto key = [](unsigned id, uint8_t fill) {
        control::join_key k;
        k.id = id;
        k.secret = std::vector<uint8_t>(32, fill);
        return k;
    };
    control::join_config a, b;
    a.keys = {key(1, 1), key(2, 2)};
    b.keys = {key(3, 3), key(2, 9), key(1, 1)};
    EXPECT_EQ((std::vector<std::string>{"join.keys[1].secret"}), control::join_secret_changes(a, b))
        << "key 2 changed, key 1 did not, key 3 is new (the text shows it)";
    EXPECT_TRUE(control::join_secret_changes(a, a).empty());
}

}  // namespace
}  // namespace stentor::test
