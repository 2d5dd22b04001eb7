// Minting join tokens through the API (POST /api/v1/sessions/{id}/tokens,
// docs/join.md): what comes back decodes and verifies with the profile's
// key, carries the session, tier, key id and expiry asked for, and every
// nonce is new; every refusal has its status and reason and mints nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "fixture.h"
#include "stentor/join_token.h"

namespace stentor::test {
namespace {

using nlohmann::json;

std::vector<uint8_t> secret_of(uint8_t seed) {
    std::vector<uint8_t> s(32);
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(seed + i);
    return s;
}

uint64_t unix_now() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// The profile's keys: (id, secret) pairs, minting with `mint`.
control::profile token_profile(const std::string& port_name, std::vector<std::pair<unsigned, uint8_t>> keys,
                               unsigned mint) {
    auto p = api_profile(port_name);
    p.sessions.push_back(speaker_session());   // session 1
    for (const auto& [id, seed] : keys)
        p.join.keys.push_back({id, "/etc/stentor/join-" + std::to_string(id) + ".key", secret_of(seed)});
    p.join.mint_key_id = mint;
    return p;
}

class tokens_test : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("tok");
    std::unique_ptr<api_env> env;

    void start(const control::profile& p) {
        control::relay_options ro;
        ro.launch = true;
        env = std::make_unique<api_env>(p, ro);
    }
    void TearDown() override { env.reset(); }

    uint64_t minted() const { return env->api->status().counters.tokens_minted; }

    // Every token of a 201 answer: decodes, verifies with `key`, carries the
    // expected fields, its password is the one derived; nonces all new.
    void check_tokens(const json& body, const join::token_key& key, uint8_t key_id, uint32_t session, uint8_t tier,
                      uint64_t expiry_lo, uint64_t expiry_hi, size_t count) {
        ASSERT_EQ(session, body["session"].get<uint32_t>());
        ASSERT_EQ(key_id, body["key_id"].get<unsigned>());
        ASSERT_EQ(tier, body["tier"].get<unsigned>());
        const uint64_t expires = body["expires"].get<uint64_t>();
        EXPECT_GE(expires, expiry_lo);
        EXPECT_LE(expires, expiry_hi);
        const auto& tokens = body["tokens"];
        ASSERT_EQ(count, tokens.size());
        std::set<uint64_t> nonces;
        std::set<std::string> passwords;
        size_t bad = 0;
        for (const auto& t : tokens) {
            const std::string text = t["token"].get<std::string>();
            const std::string password = t["password"].get<std::string>();
            uint8_t raw[join::token_raw_len];
            join::token_fields f;
            if (!join::decode_token(text.data(), text.size(), raw, f)) {
                ++bad;
                continue;
            }
            uint8_t mac[join::token_mac_len];
            join::token_mac(key, raw, mac);
            char pw[join::token_password_len];
            join::password_of(mac, pw);
            const bool ok = join::check_tag(raw, mac) && f.key_id == key_id && f.session_id == session &&
                            f.tier == tier && f.expiry == expires && f.flags == 0 &&
                            password == std::string(pw, sizeof pw);
            if (!ok) ++bad;
            nonces.insert(f.nonce);
            passwords.insert(password);
        }
        EXPECT_EQ(0u, bad) << "tokens that do not decode, verify or carry the fields asked for";
        EXPECT_EQ(count, nonces.size()) << "every nonce is new";
        EXPECT_EQ(count, passwords.size());
    }
};

TEST_F(tokens_test, minted_tokens_decode_and_verify_with_the_key) {
    start(token_profile(port.name, {{1, 0x10}}, 1));
    const join::token_key key(secret_of(0x10).data(), 32);
    struct row {
        const char* what;
        json body;
        uint8_t tier;
        uint64_t ttl;
        size_t count;
    };
    const row rows[] = {
        {"one, tier 0 and the profile's ttl by default", {{"count", 1}}, 0, 3600, 1},
        {"91 of tier 2", {{"count", 91}, {"tier", 2}}, 2, 3600, 91},
        {"tier 3, one minute", {{"count", 5}, {"tier", 3}, {"ttl_s", 60}}, 3, 60, 5},
        {"a week", {{"count", 2}, {"ttl_s", 604800}}, 0, 604800, 2},
    };
    uint64_t total = 0;
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const uint64_t before = unix_now();
        const auto res = env->post("/api/v1/sessions/1/tokens", r.body);
        const uint64_t after = unix_now();
        ASSERT_EQ(201, res.status) << res.text;
        check_tokens(res.body, key, 1, 1, r.tier, before + r.ttl, after + r.ttl, r.count);
        total += r.count;
        EXPECT_EQ(total, minted()) << "stentor_api_tokens_minted_total counts tokens";
    }
    // Minting changes nothing in the model: no publish, no listener.
    EXPECT_EQ(0u, env->r->state().nb_listeners());
}

TEST_F(tokens_test, one_call_mints_a_hundred_thousand_distinct_tokens) {
    start(token_profile(port.name, {{9, 0x20}}, 9));
    const join::token_key key(secret_of(0x20).data(), 32);
    const uint64_t before = unix_now();
    const auto res = env->post("/api/v1/sessions/1/tokens", {{"count", 100000}, {"tier", 1}});
    const uint64_t after = unix_now();
    ASSERT_EQ(201, res.status) << res.text.substr(0, 300);
    check_tokens(res.body, key, 9, 1, 1, before + 3600, after + 3600, 100000);
    EXPECT_EQ(100000u, minted());
}

TEST_F(tokens_test, refusals_say_why_and_mint_nothing) {
    start(token_profile(port.name, {{1, 0x10}}, 1));
    struct row {
        const char* what;
        std::string path;
        std::string body;
        int status;
        const char* error;
        const char* reason;
    };
    const row rows[] = {
        {"unknown session", "/api/v1/sessions/2/tokens", R"({"count":1})", 404, "not_found", "no session 2"},
        {"session 0", "/api/v1/sessions/0/tokens", R"({"count":1})", 404, "not_found", "no session 0"},
        {"count 0", "/api/v1/sessions/1/tokens", R"({"count":0})", 400, "invalid", "\"count\" must be an integer 1..100000"},
        {"count 100001", "/api/v1/sessions/1/tokens", R"({"count":100001})", 400, "invalid",
         "\"count\" must be an integer 1..100000"},
        {"count missing", "/api/v1/sessions/1/tokens", R"({"tier":1})", 400, "invalid", "\"count\" is required"},
        {"tier 4", "/api/v1/sessions/1/tokens", R"({"count":1,"tier":4})", 400, "invalid", "\"tier\" must be an integer 0..3"},
        {"ttl 0", "/api/v1/sessions/1/tokens", R"({"count":1,"ttl_s":0})", 400, "invalid",
         "\"ttl_s\" must be an integer 1..604800 (7 days)"},
        {"ttl past a week", "/api/v1/sessions/1/tokens", R"({"count":1,"ttl_s":604801})", 400, "invalid",
         "\"ttl_s\" must be an integer 1..604800"},
        {"unknown field", "/api/v1/sessions/1/tokens", R"({"count":1,"sesion":1})", 400, "invalid", "unknown field \"sesion\""},
        {"no body", "/api/v1/sessions/1/tokens", "", 400, "invalid", "a JSON body is required"},
        {"GET", "/api/v1/sessions/1/tokens", "", 405, "method_not_allowed", "POST .../tokens"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const auto res = env->call(std::string(r.what) == "GET" ? "GET" : "POST", r.path, r.body);
        EXPECT_EQ(r.status, res.status) << res.text;
        EXPECT_EQ(r.error, res.body.value("error", "")) << res.text;
        EXPECT_NE(std::string::npos, res.body.value("reason", "").find(r.reason)) << res.text;
    }
    const auto unauth = env->call("POST", "/api/v1/sessions/1/tokens", R"({"count":1})", "");
    EXPECT_EQ(401, unauth.status) << "minting needs the API's bearer token";
    EXPECT_EQ(0u, minted());
}

TEST_F(tokens_test, without_join_keys_minting_is_refused) {
    start(token_profile(port.name, {}, 0));
    const auto res = env->post("/api/v1/sessions/1/tokens", {{"count", 1}});
    EXPECT_EQ(503, res.status) << res.text;
    EXPECT_EQ("not_configured", res.body.value("error", ""));
    EXPECT_EQ("join tokens are not configured: no [join] keys in the profile", res.body.value("reason", ""));
    EXPECT_EQ(0u, minted());
}

// Rotation: with keys 1 and 2 live and mint_key_id = 2, new tokens carry
// key id 2 and verify with key 2 only.
TEST_F(tokens_test, the_minting_key_is_mint_key_id) {
    start(token_profile(port.name, {{1, 0x10}, {2, 0x30}}, 2));
    const join::token_key old_key(secret_of(0x10).data(), 32), new_key(secret_of(0x30).data(), 32);
    const uint64_t before = unix_now();
    const auto res = env->post("/api/v1/sessions/1/tokens", {{"count", 3}});
    const uint64_t after = unix_now();
    ASSERT_EQ(201, res.status) << res.text;
    check_tokens(res.body, new_key, 2, 1, 0, before + 3600, after + 3600, 3);
    const std::string text = res.body["tokens"][0]["token"].get<std::string>();
    uint8_t raw[join::token_raw_len];
    join::token_fields f;
    ASSERT_TRUE(join::decode_token(text.data(), text.size(), raw, f));
    uint8_t mac[join::token_mac_len];
    join::token_mac(old_key, raw, mac);
    EXPECT_FALSE(join::check_tag(raw, mac)) << "the old key does not verify a new token";
}

}  // namespace
}  // namespace stentor::test
