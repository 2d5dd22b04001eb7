// SRTP over the API (docs/srtp.md, docs/api.md): modes on sessions, keys
// written and never read back. A table of requests with their answers; a
// refused request changes nothing; then every answer the relay can give
// (API, /metrics, telemetry) is searched for the key material.
#include <gtest/gtest.h>

#include <iomanip>
#include <sstream>

#include "fixture.h"
#include "metrics.h"
#include "telemetry.h"

namespace stentor::test {
namespace {

using nlohmann::json;

// Distinct keys: 30 bytes (AES-CM) and 28 (GCM), base64.
const std::string key_a = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";       // bytes 0..29
const std::string key_b = "ZGVjYWZiYWRkZWNhZmJhZGRlY2FmYmFkZGVjYWZi";       // "decafbaddecafbad..."
const std::string key_gcm = "8PHy8/T19vf4+fr7/P3+/wABAgMEBQYHCAkKCw==";    // 28 bytes

class srtp_api : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("srtpapi");
    std::unique_ptr<api_env> env;
    void SetUp() override {
        auto p = api_profile(port.name);
        p.srtp.ingress = control::srtp_ingress_mode::required;   // the profile's defaults
        p.srtp.egress = control::srtp_egress_mode::session_key;
        control::relay_options ro;
        ro.launch = true;
        env = std::make_unique<api_env>(p, ro);
    }
    void TearDown() override { env.reset(); }
    json world() { return env->get("/api/v1/sessions").body; }
};

TEST_F(srtp_api, modes_default_from_the_profile_and_show_in_the_session) {
    auto a = env->post("/api/v1/sessions", {{"udp_port", 40010}});
    ASSERT_EQ(201, a.status) << a.text;
    EXPECT_EQ(a.body["srtp"]["ingress"], "required");
    EXPECT_EQ(a.body["srtp"]["egress"], "session_key");
    auto b = env->post("/api/v1/sessions", {{"udp_port", 40011}, {"srtp", {{"ingress", "off"}}}});
    ASSERT_EQ(201, b.status) << b.text;
    EXPECT_EQ(b.body["srtp"]["ingress"], "off");
    EXPECT_EQ(b.body["srtp"]["egress"], "session_key");
    const auto g = env->get("/api/v1/sessions/" + std::to_string(b.body["id"].get<unsigned>()));
    EXPECT_EQ(g.body["srtp"]["ingress"], "off");
    EXPECT_EQ(g.body["srtp"]["keys"], json::array());
}

// Where each protected SSRC's numbering stands (docs/srtp.md "Late joiners
// and the ROC"): the ROC and sequence number a listener that joins now
// starts at, and the journal's reservation; a table of egress states.
TEST(srtp_api_streams, a_session_shows_the_roc_and_seq_a_listener_joining_now_starts_at) {
    struct row {
        const char* what;
        control::srtp_stream_view in;
        json want;
    };
    const row table[] = {
        {"nothing protected yet, no journal", {1234, 0, dp::srtp_egress_unlimited},
         {{"ssrc", 1234}, {"next_index", nullptr}, {"roc", nullptr}, {"seq", nullptr}, {"reserved_below", nullptr}}},
        {"ROC 0", {1234, 1001, dp::srtp_egress_unlimited},
         {{"ssrc", 1234}, {"next_index", 1001}, {"roc", 0}, {"seq", 1001}, {"reserved_below", nullptr}}},
        {"just past the wrap", {0xfffffffeu, 65536, dp::srtp_egress_unlimited},
         {{"ssrc", 0xfffffffeu}, {"next_index", 65536}, {"roc", 1}, {"seq", 0}, {"reserved_below", nullptr}}},
        {"a long session, journaled", {7, (uint64_t{70} << 16) + 65535, (uint64_t{71} << 16) + 4000},
         {{"ssrc", 7},
          {"next_index", (uint64_t{70} << 16) + 65535},
          {"roc", 70},
          {"seq", 65535},
          {"reserved_below", (uint64_t{71} << 16) + 4000}}},
        {"journaled, not reserved yet", {7, 0, 0},
         {{"ssrc", 7}, {"next_index", nullptr}, {"roc", nullptr}, {"seq", nullptr}, {"reserved_below", 0}}},
    };
    for (const auto& r : table) {
        SCOPED_TRACE(r.what);
        control::session_view v{};
        v.srtp_egress = control::srtp_egress_mode::session_key;
        v.srtp_streams = {r.in};
        const json j = control::session_json(v);
        ASSERT_EQ(j["srtp"]["streams"].size(), 1u);
        EXPECT_EQ(j["srtp"]["streams"][0], r.want);
    }
    control::session_view enc{};
    enc.srtp_egress = control::srtp_egress_mode::session_key;
    EXPECT_EQ(control::session_json(enc)["srtp"]["streams"], json::array()) << "encrypted, no packet yet";
    control::session_view plain{};
    EXPECT_FALSE(control::session_json(plain)["srtp"].contains("streams")) << "a session that protects nothing";
}

TEST_F(srtp_api, key_requests_table) {
    ASSERT_EQ(201, env->post("/api/v1/sessions", {{"id", 1}, {"udp_port", 40000}}).status);
    ASSERT_EQ(201, env->post("/api/v1/sessions/1/speakers", {{"ip", "198.18.0.10"}, {"port", 5004}, {"ssrc", 1234}}).status);
    struct row {
        const char* what;
        const char* method;
        std::string path;
        std::string body;
        int status;
        std::string reason;   // substring of the answer
    };
    const std::string S = "/api/v1/sessions/1/srtp", P = "/api/v1/sessions/1/speakers/198.18.0.10:5004/srtp";
    auto key = [](const std::string& id, const std::string& k, const std::string& extra = "") {
        return "{\"id\":\"" + id + "\",\"key\":\"" + k + "\"" + extra + "}";
    };
    const std::vector<row> rows = {
        {"session key, first: active", "POST", S + "/keys", key("k1", key_a, ",\"mki\":\"01\""), 201, "\"key\":\"k1\""},
        {"same id again", "POST", S + "/keys", key("k1", key_b, ",\"mki\":\"02\""), 409, "key id \\\"k1\\\" exists"},
        {"same MKI", "POST", S + "/keys", key("k2", key_b, ",\"mki\":\"01\""), 409, "mki 01 is key \\\"k1\\\"'s"},
        {"MKI length differs", "POST", S + "/keys", key("k2", key_b, ",\"mki\":\"0002\""), 400, "mki: the other keys of this set have 1-byte MKIs"},
        {"no MKI among MKIs", "POST", S + "/keys", key("k2", key_b), 400, "1-byte MKIs"},
        {"another suite", "POST", S + "/keys", key("k2", key_gcm, ",\"mki\":\"02\",\"suite\":\"AEAD_AES_128_GCM\""), 400,
         "suite: the other keys of this set are AES_CM_128_HMAC_SHA1_80"},
        {"key too short for the suite", "POST", S + "/keys", key("k2", key_gcm, ",\"mki\":\"02\""), 400,
         "must be 30 bytes of master key and salt for AES_CM_128_HMAC_SHA1_80, got 28"},
        {"not base64", "POST", S + "/keys", key("k2", "%%%%", ",\"mki\":\"02\""), 400, "\\\"key\\\" is not base64"},
        {"bad MKI", "POST", S + "/keys", key("k2", key_b, ",\"mki\":\"xyz\""), 400, "\\\"mki\\\" must be 1..4 bytes"},
        {"bad id", "POST", S + "/keys", key("k 2", key_b, ",\"mki\":\"02\""), 400, "\\\"id\\\" only letters"},
        {"unknown field", "POST", S + "/keys", key("k2", key_b, ",\"secret\":1"), 400, "unknown field \\\"secret\\\""},
        {"no key", "POST", S + "/keys", "{\"id\":\"k2\"}", 400, "\\\"key\\\" is required"},
        {"announce the next key", "POST", S + "/keys", key("k2", key_b, ",\"mki\":\"02\""), 201, "\"key\":\"k2\""},
        {"remove the active key while another exists", "DELETE", S + "/keys/k1", "", 400, "activate another first"},
        {"activate an unknown key", "POST", S + "/active", "{\"id\":\"k9\"}", 404, "no key \\\"k9\\\""},
        {"activate k2", "POST", S + "/active", "{\"id\":\"k2\"}", 200, "\"active\":\"k2\""},
        {"end the overlap", "DELETE", S + "/keys/k1", "", 200, "\"removed\":\"k1\""},
        {"remove it twice", "DELETE", S + "/keys/k1", "", 404, "no key \\\"k1\\\""},
        {"GET keys: not a route", "GET", S + "/keys", "", 405, "POST .../srtp/keys"},
        {"speaker key", "POST", P + "/keys", key("s1", key_gcm, ",\"suite\":\"AEAD_AES_128_GCM\""), 201, "\"speaker\":\"198.18.0.10:5004\""},
        {"speaker key 'active' makes no sense", "POST", P + "/keys", key("s2", key_gcm, ",\"suite\":\"AEAD_AES_128_GCM\",\"active\":true"), 400,
         "only session keys are activated"},
        {"speaker second key (overlap)", "POST", P + "/keys", key("s2", "AAAA" + key_gcm.substr(4), ",\"suite\":\"AEAD_AES_128_GCM\""), 201, "s2"},
        {"unknown speaker", "POST", "/api/v1/sessions/1/speakers/198.18.0.11:5004/srtp/keys", key("s1", key_a), 404, "no speaker 198.18.0.11:5004"},
        {"unknown session", "POST", "/api/v1/sessions/7/srtp/keys", key("s1", key_a), 404, "no session 7"},
        {"speaker key removed", "DELETE", P + "/keys/s1", "", 200, "\"removed\":\"s1\""},
        {"bad session mode", "POST", "/api/v1/sessions", "{\"srtp\":{\"egress\":\"per_listener\"}}", 400,
         "srtp: \\\"egress\\\" must be \\\"off\\\" or \\\"session_key\\\""},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const json before = world();
        const auto a = env->call(r.method, r.path, r.body);
        EXPECT_EQ(r.status, a.status) << a.text;
        EXPECT_NE(a.text.find(r.reason), std::string::npos) << a.text;
        if (a.status >= 400) {
            EXPECT_EQ(before, world()) << "a refused request changed the state";
        }
    }
    const auto s = env->get("/api/v1/sessions/1").body;
    ASSERT_EQ(s["srtp"]["keys"].size(), 1u);
    EXPECT_EQ(s["srtp"]["keys"][0]["id"], "k2");
    EXPECT_EQ(s["srtp"]["keys"][0]["mki"], "02");
    EXPECT_EQ(s["srtp"]["keys"][0]["active"], true);
    ASSERT_EQ(s["speakers"][0]["srtp_keys"].size(), 1u);
    EXPECT_EQ(s["speakers"][0]["srtp_keys"][0]["id"], "s2");
    EXPECT_EQ(s["speakers"][0]["srtp_keys"][0]["suite"], "AEAD_AES_128_GCM");
}

// The keys set above, in every form a leak could take (base64, hex of the
// bytes, the raw bytes), appear in no API answer, /metrics or telemetry.
TEST_F(srtp_api, no_answer_holds_a_key) {
    ASSERT_EQ(201, env->post("/api/v1/sessions", {{"id", 1}, {"udp_port", 40000}}).status);
    ASSERT_EQ(201, env->post("/api/v1/sessions/1/speakers", {{"ip", "198.18.0.10"}, {"port", 5004}, {"ssrc", 1234}}).status);
    std::vector<std::string> written;
    auto add = [&](const std::string& path, const std::string& k, const std::string& extra) {
        const auto a = env->call("POST", path, "{\"id\":\"x" + std::to_string(written.size()) + "\",\"key\":\"" + k + "\"" + extra + "}");
        EXPECT_EQ(201, a.status) << a.text;
        written.push_back(k);
        EXPECT_EQ(a.text.find(k), std::string::npos);
    };
    add("/api/v1/sessions/1/srtp/keys", key_a, "");
    add("/api/v1/sessions/1/speakers/198.18.0.10:5004/srtp/keys", key_b, "");
    // Forms to look for: base64, lower/upper hex, and a 12-byte raw run.
    std::vector<std::string> needles;
    for (const auto& k : written) {
        needles.push_back(k);
        needles.push_back(k.substr(4, 16));
    }
    for (const std::string& raw_src : {std::string("decafbaddecafbad"), std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b", 12)}) {
        std::ostringstream hex, HEX;
        for (unsigned char c : raw_src) {
            hex << std::hex << std::setw(2) << std::setfill('0') << unsigned{c};
            HEX << std::hex << std::uppercase << std::setw(2) << std::setfill('0') << unsigned{c};
        }
        needles.push_back(raw_src);
        needles.push_back(hex.str());
        needles.push_back(HEX.str());
    }
    std::vector<std::pair<std::string, std::string>> answers;
    for (const char* p : {"/api/v1/sessions", "/api/v1/sessions/1", "/api/v1/stats", "/api/v1/drops", "/api/v1/events",
                          "/api/v1/capacity", "/api/v1/lcores", "/api/v1/ports", "/metrics",
                          "/api/v1/sessions/1/listeners"})
        answers.emplace_back(p, env->get(p).text);
    control::telemetry_attach(env->cp.get());
    for (const char* c : {"/stentor/stats", "/stentor/drops", "/stentor/sessions", "/stentor/ports", "/stentor/lcores",
                          "/stentor/capacity", "/stentor/events"})
        answers.emplace_back(c, control::telemetry_query(c).dump());
    control::telemetry_detach(env->cp.get());
    ASSERT_GT(answers.size(), 10u);
    for (const auto& [where, text] : answers) {
        ASSERT_FALSE(text.empty()) << where;
        for (const auto& n : needles) EXPECT_EQ(text.find(n), std::string::npos) << where << " holds key material";
    }
    // The session's answer does show the keys are there (by id).
    const auto s = env->get("/api/v1/sessions/1").body;
    EXPECT_EQ(s["srtp"]["keys"][0]["id"], "x0");
    EXPECT_EQ(s["speakers"][0]["srtp_keys"][0]["id"], "x1");
}

}  // namespace
}  // namespace stentor::test
