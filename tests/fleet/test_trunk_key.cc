// Trunk authentication's keys (fleet/trunk_key.h, docs/fleet.md "Trunk
// authentication"): the key file's text, the epoch's one spelling, and
// HKDF-SHA256 against a vector computed apart from the code under test.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "trunk_key.h"

namespace stentor::fleet {
namespace {

std::string hex(const uint8_t* p, size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) s += {d[p[i] >> 4], d[p[i] & 15]};
    return s;
}

// secret = bytes 0x00..0x1f
trunk_secret counting_secret() {
    trunk_secret s;
    for (size_t i = 0; i < s.bytes.size(); ++i) s.bytes[i] = static_cast<uint8_t>(i);
    return s;
}

TEST(TrunkKey, the_key_file_text_is_64_hex_digits_of_a_random_key) {
    const std::string good = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    struct row {
        const char* what;
        std::string text;
        bool ok;
        const char* why;   // a piece of the error
    };
    const row rows[] = {
        {"64 lowercase hex digits", good, true, ""},
        {"uppercase reads alike", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", true, ""},
        {"empty", "", false, "0 hex digits"},
        {"62 digits: 31 bytes", good.substr(0, 62), false, "62 hex digits"},
        {"66 digits: 33 bytes", good + "20", false, "66 hex digits"},
        {"a second line", good + "\n" + good, false, "byte 65 is not a hex digit"},
        {"not hex", "zz" + good.substr(2), false, "byte 1 is not a hex digit"},
        {"base64 is not the format", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", false, "is not a hex digit"},
        {"all zero", std::string(64, '0'), false, "all zero"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        std::string why;
        const auto s = parse_trunk_secret(r.text, &why);
        EXPECT_EQ(s.has_value(), r.ok) << why;
        if (r.ok) {
            EXPECT_EQ(hex(s->bytes.data(), s->bytes.size()), good);
        } else {
            EXPECT_NE(why.find(r.why), std::string::npos) << why;
            EXPECT_EQ(why.find("0001020304"), std::string::npos) << "never a byte of the key: " << why;
        }
    }
}

TEST(TrunkKey, the_epoch_has_one_spelling) {
    EXPECT_EQ(format_trunk_epoch(0x0123456789abcdefULL), "0123456789abcdef");
    EXPECT_EQ(format_trunk_epoch(0), "0000000000000000");
    EXPECT_EQ(parse_trunk_epoch("0123456789abcdef"), 0x0123456789abcdefULL);
    EXPECT_EQ(parse_trunk_epoch("ffffffffffffffff"), ~uint64_t{0});
    for (const char* bad : {"", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", " 123456789abcdef",
                            "0x23456789abcdef", "0123456789abcdeg"}) {
        SCOPED_TRACE(bad);
        EXPECT_FALSE(parse_trunk_epoch(bad).has_value());
    }
    EXPECT_EQ(trunk_key_id(0x0123456789abcdefULL), "trunk-0123456789abcdef");
    // Two draws: 64 random bits each (equal once in 2^64).
    EXPECT_NE(draw_trunk_epoch(), draw_trunk_epoch());
}

TEST(TrunkKey, hkdf_sha256_matches_an_independent_computation) {
    // Computed apart from OpenSSL's HKDF, with RFC 5869 written out:
    //   python3 -c 'import hmac,hashlib; ikm=bytes(range(32)); salt=b"stentor trunk v1";
    //     info=b"session=7 origin=o1 epoch=0123456789abcdef"; prk=hmac.new(salt,ikm,hashlib.sha256).digest();
    //     t1=hmac.new(prk,info+b"\x01",hashlib.sha256).digest();
    //     t2=hmac.new(prk,t1+info+b"\x02",hashlib.sha256).digest(); print((t1+t2)[:28].hex())'
    // and the same with the OpenSSL CLI:
    //   openssl kdf -keylen 28 -kdfopt digest:SHA256 -kdfopt hexkey:000102...1e1f
    //     -kdfopt salt:"stentor trunk v1" -kdfopt info:"session=7 origin=o1 epoch=0123456789abcdef" HKDF
    // (one line), which prints A1:47:C9:1C:...:47:90.
    const trunk_secret s = counting_secret();
    EXPECT_EQ(trunk_kdf_info(7, "o1", 0x0123456789abcdefULL), "session=7 origin=o1 epoch=0123456789abcdef");
    const trunk_master m = derive_trunk_key(s.bytes, 7, "o1", 0x0123456789abcdefULL);
    EXPECT_EQ(hex(m.bytes.data(), m.bytes.size()), "a147c91c9a9aded38622b5cff794aaaa7a23e7c2a9b10a0422894790");
}

TEST(TrunkKey, each_session_origin_epoch_and_secret_has_its_own_key) {
    const trunk_secret s = counting_secret();
    trunk_secret other = counting_secret();
    other.bytes[31] ^= 1;
    struct row {
        const char* what;
        const trunk_secret* secret;
        uint32_t session;
        const char* origin;
        uint64_t epoch;
    };
    const row rows[] = {
        {"the reference", &s, 7, "o1", 0x0123456789abcdefULL},
        {"another session", &s, 8, "o1", 0x0123456789abcdefULL},
        {"another origin", &s, 7, "o2", 0x0123456789abcdefULL},
        {"the origin restarted: another epoch", &s, 7, "o1", 0x0123456789abcdeeULL},
        {"a fleet with another secret", &other, 7, "o1", 0x0123456789abcdefULL},
        {"session 71 (relay ids have no space: the fields cannot run together)", &s, 71, "o1", 0x0123456789abcdefULL},
    };
    std::set<std::string> keys;
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const trunk_master m = derive_trunk_key(r.secret->bytes, r.session, r.origin, r.epoch);
        EXPECT_TRUE(keys.insert(hex(m.bytes.data(), m.bytes.size())).second) << "a key seen before";
        // The same inputs: the same key (both ends derive it alone).
        const trunk_master again = derive_trunk_key(r.secret->bytes, r.session, r.origin, r.epoch);
        EXPECT_EQ(m.bytes, again.bytes);
    }
}

}  // namespace
}  // namespace stentor::fleet
