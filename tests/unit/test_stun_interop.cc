// Interop of the STUN codec with a STUN/ICE implementation we did not write:
// aioice (Debian's python3-aioice), driven by tests/tools/stun_aioice.py.
//
// One way, aioice builds Binding Requests (USERNAME = a join token,
// MESSAGE-INTEGRITY keyed with its password, FINGERPRINT, and what its ICE
// checks carry) and parse_request + check_integrity must judge each as the
// table says. The other way, our build_success / build_error / build_request
// bytes go to aioice.stun.parse_message(data, integrity_key=...), which must
// accept them (it checks FINGERPRINT and MESSAGE-INTEGRITY) and read back the
// same address, code and reason; and refuse them when the key is wrong or a
// byte was changed, so a pass means something.
//
// python3-aioice is a declared dependency (scripts/deps.sh); without it (or
// without /usr/bin/python3) these tests fail and say so.
#include "stentor/stun.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace stentor::stun {
namespace {

using bytes = std::vector<uint8_t>;

constexpr std::string_view token = "tok1AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g";
constexpr std::string_view password = "pVx3QpQy1m2Yk0b3nS9cAw";
constexpr std::array<uint8_t, 12> txid = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
constexpr std::string_view txid_hex = "b7e7a701bc34d686fa87dfae";

const std::string script = std::string(STENTOR_SOURCE_DIR) + "/tests/tools/stun_aioice.py";

std::string hex(const bytes& b) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (uint8_t c : b) s += {d[c >> 4], d[c & 15]};
    return s;
}

bytes unhex(const std::string& s) {
    bytes b;
    for (size_t i = 0; i + 1 < s.size(); i += 2) b.push_back(uint8_t(std::stoi(s.substr(i, 2), nullptr, 16)));
    return b;
}

// Runs a command, returns its stdout; fails the test on a non-zero exit.
std::string run(const std::string& cmd) {
    std::string out;
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) {
        ADD_FAILURE() << "popen failed: " << cmd;
        return out;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const int rc = pclose(f);
    EXPECT_EQ(rc, 0) << cmd << " (python3-aioice missing? scripts/deps.sh installs it)\n" << out;
    return out;
}

// "<name> <rest>" lines into a map.
std::map<std::string, std::string> by_name(const std::string& out) {
    std::map<std::string, std::string> m;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        const auto sp = line.find(' ');
        if (sp != std::string::npos) m[line.substr(0, sp)] = line.substr(sp + 1);
    }
    return m;
}

struct aioice_request {
    std::string name;
    stun_error expect;
    bool integrity;    // for accepted rows
    bool leave;
    std::string_view username;
};

TEST(StunInterop, RequestsBuiltByAioiceAreJudgedByTheTable) {
    const std::string ice_user = std::string(token) + ":abcd";
    const std::vector<aioice_request> table = {
        {"join", stun_error::ok, true, false, token},
        {"leave", stun_error::ok, true, true, token},
        {"ice_check", stun_error::ok, true, false, token},
        {"ice_controlled", stun_error::ok, true, false, token},
        {"software_odd_length", stun_error::ok, true, false, token},
        {"ice_username", stun_error::ok, true, false, ice_user},
        {"wrong_password", stun_error::ok, false, false, token},
        {"no_username", stun_error::no_username, false, false, {}},
        {"realm", stun_error::unknown_comprehension_required, false, false, {}},
    };
    const auto made = by_name(run("/usr/bin/python3 " + script + " requests " + std::string(token) + " " +
                                  std::string(password) + " " + std::string(txid_hex)));
    ASSERT_EQ(made.size(), table.size());
    for (const auto& r : table) {
        SCOPED_TRACE(r.name);
        ASSERT_TRUE(made.contains(r.name));
        const bytes m = unhex(made.at(r.name));
        request_view v;
        const stun_error e = parse_request(m.data(), m.size(), v);
        ASSERT_EQ(error_name(e), error_name(r.expect));
        if (e != stun_error::ok) continue;
        EXPECT_EQ(v.user(), r.username);
        EXPECT_EQ(v.leave, r.leave);
        EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(v.txid), 12),
                  std::string_view(reinterpret_cast<const char*>(txid.data()), 12));
        EXPECT_EQ(check_integrity(m.data(), v, password.data(), password.size()), r.integrity);
        // Our own builder makes the same bytes for the plain join.
        if (r.name == "join") {
            uint8_t out[200];
            const size_t n = build_request(out, sizeof out, txid.data(), token, password.data(), password.size());
            EXPECT_EQ(hex(bytes(out, out + n)), made.at(r.name));
        }
    }
}

struct our_message {
    std::string name;
    bytes msg;
    std::string expect;   // aioice's line after the name
};

TEST(StunInterop, OurMessagesVerifiedByAioice) {
    std::vector<our_message> rows;
    auto add = [&](std::string name, size_t n, const uint8_t* buf, std::string expect) {
        ASSERT_GT(n, 0u) << name;
        rows.push_back({std::move(name), bytes(buf, buf + n), std::move(expect)});
    };
    const std::string tx(txid_hex);
    uint8_t buf[600];
    add("success", build_success(buf, sizeof buf, txid.data(), 0xc6120a0b, 40123, password.data(), password.size()), buf,
        "ok RESPONSE " + tx + " mapped=198.18.10.11:40123");
    add("success_nat", build_success(buf, sizeof buf, txid.data(), 0xcb007105, 1, password.data(), password.size()), buf,
        "ok RESPONSE " + tx + " mapped=203.0.113.5:1");
    add("success_high_port",
        build_success(buf, sizeof buf, txid.data(), 0x0a000001, 65535, password.data(), password.size()), buf,
        "ok RESPONSE " + tx + " mapped=10.0.0.1:65535");
    {
        // Over IPv6 (issue 15): the address XORed with cookie and transaction id.
        mapped_address a6;
        a6.family = family_ipv6;
        const uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd};
        std::memcpy(a6.addr, ip6, 16);
        a6.port = 40123;
        add("success_ipv6", build_success(buf, sizeof buf, txid.data(), a6, password.data(), password.size()), buf,
            "ok RESPONSE " + tx + " mapped=2001:db8:100::abcd:40123");
    }
    add("error_403", build_error(buf, sizeof buf, txid.data(), 403, "token expired", 0, password.data(), password.size()),
        buf, "ok ERROR " + tx + " error=403 reason_len=13");
    add("error_429_retry",
        build_error(buf, sizeof buf, txid.data(), 429, "rate limited", 2500, password.data(), password.size()), buf,
        "ok ERROR " + tx + " error=429 reason_len=12 retry=2500");
    // The reason cut to a 104-byte request, in the middle of 2-byte
    // characters: aioice decodes it as UTF-8, so a split character fails.
    std::string accents;
    for (int i = 0; i < 40; ++i) accents += "\xc3\xa9";
    add("error_cut_utf8", build_error(buf, 105, txid.data(), 503, "x" + accents, 0, password.data(), password.size()), buf,
        "ok ERROR " + tx + " error=503 reason_len=43");
    add("request_join", build_request(buf, sizeof buf, txid.data(), token, password.data(), password.size()), buf,
        "ok REQUEST " + tx);
    add("request_leave_ice",
        build_request(buf, sizeof buf, txid.data(), token, password.data(), password.size(),
                      {.leave = true, .ice = true, .priority = 7, .tie_breaker = 9, .use_candidate = true, .software = "stentor"}),
        buf, "ok REQUEST " + tx);
    // Negative controls: aioice must refuse these.
    add("wrong_key", build_success(buf, sizeof buf, txid.data(), 0xc6120a0b, 40123, "nope", 4), buf,
        "fail STUN_message_integrity_does_not_match");
    {
        const size_t n = build_success(buf, sizeof buf, txid.data(), 0xc6120a0b, 40123, password.data(), password.size());
        buf[27] ^= 1;   // the mapped port: aioice checks MI first
        add("tampered", n, buf, "fail STUN_message_integrity_does_not_match");
        buf[27] ^= 1;
        buf[n - 1] ^= 1;
        add("bad_fingerprint", n, buf, "fail STUN_message_fingerprint_does_not_match");
    }
    ASSERT_FALSE(HasFailure());

    char path[] = "/tmp/stentor-stun-interop.XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        std::ofstream f(path);
        for (const auto& r : rows) f << r.name << ' ' << hex(r.msg) << '\n';
    }
    const auto got = by_name(run("/usr/bin/python3 " + script + " verify " + std::string(password) + " < " + path));
    unlink(path);
    ASSERT_EQ(got.size(), rows.size());
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        ASSERT_TRUE(got.contains(r.name));
        EXPECT_EQ(got.at(r.name), r.expect);
    }
}

}  // namespace
}  // namespace stentor::stun
