// [srtp] and the static sessions' SRTP keys (docs/srtp.md, docs/profiles.md):
// what loads, and each refusal naming file, line, column and setting.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "config.h"
#include "profile_error.h"

namespace {

using namespace stentor::control;
using stentor::control::test::error_of;

// Lines 1-12: the base; 13.. appended.
const std::string k_base =
    "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\"]\n"
    "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n"
    "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n"
    "[api]\ntoken = \"0123456789abcdef\"\nplain_http = true\n";

// 30 bytes (AES-CM master key + salt) and 28 (GCM), as base64.
const std::string b64_30 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
const std::string b64_28 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";

class ConfigSrtp : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/stentor-srtp-keys.XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::string file(const std::string& name, const std::string& content, mode_t mode = 0600) {
        const std::string path = dir + "/" + name;
        FILE* f = std::fopen(path.c_str(), "wb");
        EXPECT_NE(nullptr, f);
        if (f != nullptr) {
            std::fwrite(content.data(), 1, content.size(), f);
            std::fclose(f);
        }
        EXPECT_EQ(0, chmod(path.c_str(), mode));
        return path;
    }
    std::string dir;
};

// Session at line 13 (id 14, udp_port 15), then `extra` lines from 16.
std::string session(const std::string& extra) { return k_base + "[[session]]\nid = 1\nudp_port = 40000\n" + extra; }

TEST_F(ConfigSrtp, DefaultsModesAndKeysLoad) {
    const auto none = parse_profile(k_base, "t.toml");
    EXPECT_EQ(none.srtp.ingress, srtp_ingress_mode::off);
    EXPECT_EQ(none.srtp.egress, srtp_egress_mode::off);
    EXPECT_EQ(none.srtp.suite, stentor::srtp::suite::aes_cm_128_hmac_sha1_80);
    const std::string k1 = file("k1", b64_30 + "\n"), k2 = file("k2", " " + b64_28 + "\n");
    const auto p = parse_profile(k_base + "[srtp]\ningress = \"required\"\negress = \"session_key\"\nsuite = \"AEAD_AES_128_GCM\"\n" +
                                     "[[session]]\nid = 1\nudp_port = 40000\nsrtp_egress = \"off\"\n"
                                     "[[session.srtp_key]]\nid = \"s1\"\nkey_file = \"" + k2 + "\"\nmki = \"0a\"\n"
                                     "[[session.speaker]]\nip = \"198.18.0.10\"\nport = 5004\nssrc = 1\n"
                                     "[[session.speaker.srtp_key]]\nid = \"a\"\nkey_file = \"" + k1 +
                                     "\"\nsuite = \"AES_CM_128_HMAC_SHA1_80\"\n",
                                 "t.toml");
    EXPECT_EQ(p.srtp.ingress, srtp_ingress_mode::required);
    EXPECT_EQ(p.srtp.egress, srtp_egress_mode::session_key);
    ASSERT_EQ(p.sessions.size(), 1u);
    const auto& s = p.sessions[0];
    EXPECT_FALSE(s.srtp_ingress.has_value()) << "unset: the [srtp] default, resolved when created";
    EXPECT_EQ(s.srtp_egress, srtp_egress_mode::off);
    ASSERT_EQ(s.srtp_keys.size(), 1u);
    EXPECT_EQ(s.srtp_keys[0].suite, stentor::srtp::suite::aead_aes_128_gcm) << "[srtp] suite is the default";
    EXPECT_EQ(s.srtp_keys[0].mki, (srtp_mki{0x0a, 1}));
    EXPECT_EQ(s.srtp_keys[0].master->size(), 28u);
    ASSERT_EQ(s.speaker_srtp_keys.size(), 1u);
    ASSERT_EQ(s.speaker_srtp_keys[0].size(), 1u);
    EXPECT_EQ(s.speaker_srtp_keys[0][0].master->size(), 30u);
    EXPECT_EQ(s.speaker_srtp_keys[0][0].master->data()[29], 0x1d);
}

TEST_F(ConfigSrtp, RefusalsNameFileLineAndSetting) {
    const std::string ok = file("ok", b64_30);
    struct row {
        const char* what;
        std::string toml;
        std::string expect;
    };
    const std::string key_at_16 = "[[session.srtp_key]]\nid = \"k\"\nkey_file = \"";   // key_file on line 18
    const std::vector<row> rows = {
        {"ingress mode", k_base + "[srtp]\ningress = \"maybe\"\n", "t.toml:15:11: srtp.ingress: \"maybe\" is not a mode (off or required)"},
        {"egress mode", k_base + "[srtp]\negress = \"per_listener\"\n", "t.toml:15:10: srtp.egress: \"per_listener\" is not a mode (off or session_key)"},
        {"suite", k_base + "[srtp]\nsuite = \"AES_256\"\n", "t.toml:15:9: srtp.suite: \"AES_256\" is not a suite"},
        {"unknown key", k_base + "[srtp]\nkey = \"x\"\n", "srtp.key"},
        {"session mode", session("srtp_ingress = \"on\"\n"), "t.toml:17:16: session[0].srtp_ingress: \"on\" is not a mode (off or required)"},
        {"group-readable key file", session(key_at_16 + file("g", b64_30, 0640) + "\"\n"),
         "t.toml:19:12: session[0].srtp_key[0].key_file: " + dir + "/g: readable or writable by group or others (mode 0640); whoever reads it can decrypt or forge this audio: chmod 600 it"},
        {"not base64", session(key_at_16 + file("x", "not base64!") + "\"\n"), "session[0].srtp_key[0].key_file: " + dir + "/x: not base64"},
        {"wrong length for the suite", session(key_at_16 + file("s", b64_28) + "\"\n"),
         "t.toml:19:12: session[0].srtp_key[0].key_file: key: AES_CM_128_HMAC_SHA1_80 takes 30 bytes of master key and salt (base64), got 28"},
        {"relative path", session(key_at_16 + "k.b64\"\n"), "session[0].srtp_key[0].key_file: \"k.b64\" is not an absolute path"},
        {"bad MKI", session(key_at_16 + ok + "\"\nmki = \"123\"\n"), "t.toml:20:7: session[0].srtp_key[0].mki: \"123\" is not an MKI"},
        {"bad id", session("[[session.srtp_key]]\nid = \"a b\"\nkey_file = \"" + ok + "\"\n"),
         "session[0].srtp_key[0].id: id: only letters, digits"},
        {"same id twice", session(key_at_16 + ok + "\"\n" + key_at_16 + ok + "\"\n"), "session[0].srtp_key[1].id: key id \"k\" exists"},
        {"MKI on one key only", session(key_at_16 + ok + "\"\nmki = \"01\"\n[[session.srtp_key]]\nid = \"j\"\nkey_file = \"" + ok + "\"\n"),
         "session[0].srtp_key[1].mki: mki: the other keys of this set have 1-byte MKIs"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const std::string e = error_of(r.toml);
        EXPECT_NE(e.find(r.expect), std::string::npos) << e;
    }
}

}  // namespace
