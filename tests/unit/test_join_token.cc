// Join tokens (stentor/join_token.h, docs/join.md): published vectors
// computed apart from this code, the cheap refusals one by one, every tag
// byte, every signed byte, another key, and the MAC against OpenSSL's own
// HMAC (EVP) for key lengths either side of the block size.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "stentor/join_token.h"

namespace stentor::join {
namespace {

std::vector<uint8_t> unhex(const std::string& h) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(h.substr(i, 2), nullptr, 16)));
    return out;
}

std::string hex(const uint8_t* p, size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        s += d[p[i] >> 4];
        s += d[p[i] & 15];
    }
    return s;
}

token_key key_of(const std::string& secret_hex) {
    const auto s = unhex(secret_hex);
    return token_key(s.data(), s.size());
}

// ---------------------------------------------------------------------------
// Published vectors (docs/join.md "Worked example"), computed with Python's
// hmac/hashlib/base64, not with this code:
//   body = struct.pack('>BBIBBIQ', 1, key_id, session, tier, 0, expiry, nonce)
//   mac  = hmac.new(secret, b'stentor-join-v1' + body, hashlib.sha256).digest()
//   token = b64url(body + mac[:16]); password = b64url(mac[16:])
// A change of the format or of the derivation breaks these rows.

struct vector_row {
    const char* name;
    std::string secret_hex;
    token_fields fields;
    std::string token;
    std::string password;
    std::string mac_hex;
};

const std::string secret_32 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string secret_100 =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
    "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "60616263";

const std::vector<vector_row> vectors = {
    {"docs_example: 32-byte secret, session 42, tier 2, expiry 2026-01-01", secret_32,
     {1, 1, 42, 2, 0, 1767225600, 0x0123456789abcdefULL}, "AQEAAAAqAgBpVbkAASNFZ4mrze-oqncYPHFV8Ek_HU-UgaLP",
     "hlIJ_81nT5VjmD15oKN_0w", "a8aa77183c7155f0493f1d4f9481a2cf865209ffcd674f9563983d79a0a37fd3"},
    {"100-byte secret (hashed first), every field at its top", secret_100,
     {1, 7, 0xfedcba98u, 3, 0, 0xffffffffu, 0xffffffffffffffffULL}, "AQf-3LqYAwD_______________8Khqm8-FUfi9XwrwcuTVzT",
     "rX_NbqmOgbR5lMcajT-zHQ", "0a86a9bcf8551f8bd5f0af072e4d5cd3ad7fcd6ea98e81b47994c71a8d3fb31d"},
};

TEST(JoinToken, published_vectors_mint_decode_and_verify) {
    for (const auto& v : vectors) {
        SCOPED_TRACE(v.name);
        const token_key k = key_of(v.secret_hex);
        std::string password;
        EXPECT_EQ(v.token, mint_token(k, v.fields, password));
        EXPECT_EQ(v.password, password);
        uint8_t raw[token_raw_len];
        token_fields f;
        ASSERT_TRUE(decode_token(v.token.data(), v.token.size(), raw, f));
        EXPECT_EQ(v.fields, f);
        uint8_t mac[token_mac_len];
        token_mac(k, raw, mac);
        EXPECT_EQ(v.mac_hex, hex(mac, sizeof mac));
        EXPECT_TRUE(check_tag(raw, mac));
        char pw[token_password_len];
        password_of(mac, pw);
        EXPECT_EQ(v.password, std::string(pw, sizeof pw));
        char text[token_text_len];
        encode_token(raw, text);
        EXPECT_EQ(v.token, std::string(text, sizeof text));
    }
}

// ---------------------------------------------------------------------------
// Cheap refusals: each check alone, on an otherwise valid token.

std::string edit_raw(const std::string& token, size_t at, uint8_t value) {
    uint8_t raw[token_raw_len];
    token_fields f;
    EXPECT_TRUE(decode_token(token.data(), token.size(), raw, f));
    raw[at] = value;
    char text[token_text_len];
    encode_token(raw, text);
    return std::string(text, sizeof text);
}

std::string edit_char(std::string s, size_t at, char c) {
    s[at] = c;
    return s;
}

struct refusal_row {
    const char* name;
    std::string text;
};

TEST(JoinToken, cheap_checks_refuse_each_malformed_token) {
    const std::string t = vectors[0].token;
    const std::vector<refusal_row> rows = {
        {"empty", ""},
        {"one char short", t.substr(0, 47)},
        {"one char long", t + "A"},
        {"with base64 padding", t + "=="},
        {"twice as long", t + t},
        {"'+' (base64, not base64url)", edit_char(t, 10, '+')},
        {"'/' (base64, not base64url)", edit_char(t, 47, '/')},
        {"'=' inside", edit_char(t, 0, '=')},
        {"a space", edit_char(t, 20, ' ')},
        {"a NUL", edit_char(t, 30, '\0')},
        {"a byte >= 0x80", edit_char(t, 40, static_cast<char>(0xc3))},
        {"'.' just past the alphabet", edit_char(t, 5, '.')},
        {"version 0", edit_raw(t, 0, 0)},
        {"version 2", edit_raw(t, 0, 2)},
        {"version 255", edit_raw(t, 0, 255)},
        {"key id 0", edit_raw(t, 1, 0)},
        {"flags 1", edit_raw(t, 7, 1)},
        {"flags 0x80", edit_raw(t, 7, 0x80)},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        uint8_t raw[token_raw_len];
        token_fields f;
        EXPECT_FALSE(decode_token(r.text.data(), r.text.size(), raw, f));
    }
    uint8_t raw[token_raw_len];
    token_fields f;
    EXPECT_FALSE(decode_token(nullptr, 48, raw, f)) << "no text";
    // What the cheap checks do not look at: a good token with another key
    // id, session or expiry decodes (the MAC refuses it, below).
    const std::string other_key = edit_raw(t, 1, 200);
    ASSERT_TRUE(decode_token(other_key.data(), other_key.size(), raw, f));
    EXPECT_EQ(200, f.key_id);
}

// decode_token decodes 16 characters at a time with tables derived from the
// alphabet: every byte value at every one of the 48 positions of a good
// token, against a decoder written here one character at a time from RFC
// 4648's table (section 5). A character outside the alphabet is refused; one
// inside decodes to the reference bytes, and is refused exactly when those
// break the version, key id or flags.
TEST(JoinToken, every_byte_at_every_position_decodes_like_the_reference) {
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    auto ref_decode = [&](const std::string& s, uint8_t out[token_raw_len]) {
        for (size_t g = 0; g < token_text_len / 4; ++g) {
            uint32_t v = 0;
            for (size_t i = 0; i < 4; ++i) {
                const size_t at = alphabet.find(s[4 * g + i]);
                if (at == std::string::npos) return false;
                v = v << 6 | static_cast<uint32_t>(at);
            }
            out[3 * g] = static_cast<uint8_t>(v >> 16);
            out[3 * g + 1] = static_cast<uint8_t>(v >> 8);
            out[3 * g + 2] = static_cast<uint8_t>(v);
        }
        return true;
    };
    const std::string t = vectors[0].token;
    size_t accepted = 0, refused = 0;
    for (size_t pos = 0; pos < token_text_len; ++pos) {
        for (int c = 0; c < 256; ++c) {
            const std::string s = edit_char(t, pos, static_cast<char>(c));
            uint8_t want[token_raw_len];
            const bool in_alphabet = ref_decode(s, want);
            const bool ok = in_alphabet && want[0] == token_version && want[1] != 0 && want[7] == 0;
            uint8_t raw[token_raw_len];
            token_fields f;
            ASSERT_EQ(ok, decode_token(s.data(), s.size(), raw, f)) << "byte " << c << " at " << pos;
            if (!ok) {
                ++refused;
                continue;
            }
            ++accepted;
            ASSERT_EQ(hex(want, sizeof want), hex(raw, sizeof raw)) << "byte " << c << " at " << pos;
            EXPECT_EQ(want[1], f.key_id);
        }
    }
    EXPECT_GT(accepted, 2000u);
    EXPECT_GT(refused, 48u * 192u);
}

// The password (the MAC's second half in base64url, encoded in lanes)
// against an encoder written here a bit at a time from RFC 4648's table:
// every byte value at every one of the 16 positions (so every character at
// every one of the 22 places), and the first half never read.
TEST(JoinToken, every_byte_at_every_position_encodes_the_password_like_the_reference) {
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    auto ref_encode = [&](const uint8_t* b) {
        std::string out;
        for (size_t bit = 0; bit < 16 * 8; bit += 6) {
            unsigned v = 0;
            for (size_t k = bit; k < bit + 6; ++k)
                v = v << 1 | (k < 128 ? (b[k / 8] >> (7 - k % 8)) & 1u : 0u);
            out += alphabet[v];
        }
        return out;
    };
    std::set<std::string> seen;
    for (size_t pos = 0; pos < 16; ++pos) {
        for (int c = 0; c < 256; ++c) {
            uint8_t mac[token_mac_len];
            for (size_t i = 0; i < token_mac_len; ++i) mac[i] = static_cast<uint8_t>(0xa5 ^ (i * 29));
            mac[token_tag_len + pos] = static_cast<uint8_t>(c);
            const std::string want = ref_encode(mac + token_tag_len);
            ASSERT_EQ(token_password_len, want.size());
            char pw[token_password_len + 2];
            pw[token_password_len] = pw[token_password_len + 1] = '#';
            password_of(mac, pw);
            ASSERT_EQ(want, std::string(pw, token_password_len)) << "byte " << c << " at " << pos;
            EXPECT_EQ('#', pw[token_password_len]) << "wrote past the password";
            // The first half (the tag) does not change the password.
            for (size_t i = 0; i < token_tag_len; ++i) mac[i] = static_cast<uint8_t>(~mac[i]);
            password_of(mac, pw);
            ASSERT_EQ(want, std::string(pw, token_password_len));
            seen.insert(want);
        }
    }
    EXPECT_EQ(16u * 255 + 1, seen.size());
}

// ---------------------------------------------------------------------------
// The MAC: any change to any byte, or another key, fails the tag.

TEST(JoinToken, tag_flipped_in_each_byte_fails) {
    const auto& v = vectors[0];
    const token_key k = key_of(v.secret_hex);
    uint8_t raw[token_raw_len];
    token_fields f;
    ASSERT_TRUE(decode_token(v.token.data(), v.token.size(), raw, f));
    uint8_t mac[token_mac_len];
    token_mac(k, raw, mac);
    for (size_t i = token_signed_len; i < token_raw_len; ++i)
        for (const uint8_t bit : {0x01, 0x80}) {
            SCOPED_TRACE("tag byte " + std::to_string(i) + " bit " + std::to_string(bit));
            uint8_t bad[token_raw_len];
            std::memcpy(bad, raw, sizeof raw);
            bad[i] ^= bit;
            EXPECT_FALSE(check_tag(bad, mac));
        }
}

TEST(JoinToken, any_signed_byte_changed_fails_the_mac) {
    const auto& v = vectors[0];
    const token_key k = key_of(v.secret_hex);
    uint8_t raw[token_raw_len];
    token_fields f;
    ASSERT_TRUE(decode_token(v.token.data(), v.token.size(), raw, f));
    for (size_t i = 0; i < token_signed_len; ++i) {
        SCOPED_TRACE("signed byte " + std::to_string(i));
        uint8_t bad[token_raw_len];
        std::memcpy(bad, raw, sizeof raw);
        bad[i] ^= 0x01;
        uint8_t mac[token_mac_len];
        token_mac(k, bad, mac);
        EXPECT_FALSE(check_tag(bad, mac));
    }
}

TEST(JoinToken, another_key_neither_verifies_nor_gives_the_password) {
    const auto& v = vectors[0];
    auto other_secret = unhex(v.secret_hex);
    other_secret[31] ^= 1;   // one bit of the secret
    const token_key other(other_secret.data(), other_secret.size());
    uint8_t raw[token_raw_len];
    token_fields f;
    ASSERT_TRUE(decode_token(v.token.data(), v.token.size(), raw, f));
    uint8_t mac[token_mac_len];
    token_mac(other, raw, mac);
    EXPECT_FALSE(check_tag(raw, mac));
    char pw[token_password_len];
    password_of(mac, pw);
    EXPECT_NE(v.password, std::string(pw, sizeof pw));
    // The same secret under another key id is another token: the id is signed.
    const token_key same = key_of(v.secret_hex);
    const std::string relabelled = edit_raw(v.token, 1, 2);
    ASSERT_TRUE(decode_token(relabelled.data(), relabelled.size(), raw, f));
    token_mac(same, raw, mac);
    EXPECT_FALSE(check_tag(raw, mac));
}

// ---------------------------------------------------------------------------
// token_mac against OpenSSL's HMAC() (EVP, a separate implementation) for
// secrets shorter than, equal to and longer than the SHA-256 block.

TEST(JoinToken, mac_equals_openssl_hmac_for_every_key_length) {
    for (const size_t len : {32, 33, 63, 64, 65, 100, 128, 1024}) {
        SCOPED_TRACE("secret of " + std::to_string(len) + " bytes");
        std::vector<uint8_t> secret(len);
        for (size_t i = 0; i < len; ++i) secret[i] = static_cast<uint8_t>(i * 7 + len);
        const token_key k(secret.data(), secret.size());
        for (uint32_t n = 0; n < 8; ++n) {
            const token_fields tf{1, static_cast<uint8_t>(n + 1), n * 0x01010101u, static_cast<uint8_t>(n & 3), 0,
                                  1700000000u + n, 0x9e3779b97f4a7c15ULL * (n + 1)};
            uint8_t raw[token_raw_len];
            pack_token(tf, raw);
            uint8_t mac[token_mac_len];
            token_mac(k, raw, mac);
            std::vector<uint8_t> msg(token_label, token_label + token_label_len);
            msg.insert(msg.end(), raw, raw + token_signed_len);
            uint8_t ref[EVP_MAX_MD_SIZE];
            unsigned ref_len = 0;
            ASSERT_NE(nullptr, HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), msg.data(), msg.size(),
                                    ref, &ref_len));
            ASSERT_EQ(token_mac_len, ref_len);
            EXPECT_EQ(hex(ref, ref_len), hex(mac, sizeof mac));
        }
    }
}

// ---------------------------------------------------------------------------
// Round trips and refusals of the minting side.

TEST(JoinToken, minted_tokens_round_trip_with_distinct_passwords) {
    const token_key k = key_of(secret_32);
    std::set<std::string> tokens, passwords;
    for (uint64_t n = 0; n < 256; ++n) {
        const token_fields tf{1, static_cast<uint8_t>(1 + n % 255), static_cast<uint32_t>(n * 977), static_cast<uint8_t>(n % 4),
                              0, static_cast<uint32_t>(n << 24), n * 0x0101010101010101ULL};
        std::string pw;
        const std::string t = mint_token(k, tf, pw);
        ASSERT_EQ(token_text_len, t.size());
        ASSERT_EQ(token_password_len, pw.size());
        uint8_t raw[token_raw_len];
        token_fields f;
        ASSERT_TRUE(decode_token(t.data(), t.size(), raw, f)) << t;
        EXPECT_EQ(tf, f);
        uint8_t mac[token_mac_len];
        token_mac(k, raw, mac);
        EXPECT_TRUE(check_tag(raw, mac));
        char p[token_password_len];
        password_of(mac, p);
        EXPECT_EQ(pw, std::string(p, sizeof p));
        for (const char c : t + pw) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << c;
        tokens.insert(t);
        passwords.insert(pw);
    }
    EXPECT_EQ(256u, tokens.size());
    EXPECT_EQ(256u, passwords.size());
}

TEST(JoinToken, mint_and_key_refuse_what_decode_would) {
    const token_key k = key_of(secret_32);
    std::string pw = "untouched";
    struct row {
        const char* name;
        token_fields f;
    };
    const std::vector<row> rows = {
        {"version 0", {0, 1, 1, 0, 0, 1, 1}},
        {"version 2", {2, 1, 1, 0, 0, 1, 1}},
        {"key id 0", {1, 0, 1, 0, 0, 1, 1}},
        {"flags 1", {1, 1, 1, 0, 1, 1, 1}},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        EXPECT_THROW(mint_token(k, r.f, pw), std::invalid_argument);
        EXPECT_EQ("untouched", pw);
    }
    const auto short_secret = unhex(secret_32.substr(0, 62));   // 31 bytes
    EXPECT_THROW(token_key(short_secret.data(), short_secret.size()), std::invalid_argument);
    EXPECT_THROW(token_key(nullptr, 32), std::invalid_argument);
}

}  // namespace
}  // namespace stentor::join

// join::short_mac (the join desk's cookies) is HMAC-SHA256 for every
// message length it takes, against OpenSSL's HMAC(), with keys of the
// shortest length allowed and longer than a block (hashed first); longer
// messages are not its to take and leave `out` alone.
TEST(JoinToken, short_mac_is_hmac_sha256_for_every_length_it_takes) {
    for (const size_t key_len : {size_t{32}, size_t{64}, size_t{100}}) {
        std::vector<uint8_t> secret(key_len);
        for (size_t i = 0; i < key_len; ++i) secret[i] = static_cast<uint8_t>(i * 7 + key_len);
        const stentor::join::token_key key(secret.data(), secret.size());
        for (size_t len = 0; len <= stentor::join::short_mac_max; ++len) {
            std::vector<uint8_t> msg(len);
            for (size_t i = 0; i < len; ++i) msg[i] = static_cast<uint8_t>(0xa5 ^ (i * 13));
            uint8_t got[stentor::join::token_mac_len];
            stentor::join::short_mac(key, msg.data(), len, got);
            uint8_t want[EVP_MAX_MD_SIZE];
            unsigned want_len = 0;
            HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), msg.data(), len, want, &want_len);
            ASSERT_EQ(32u, want_len);
            EXPECT_EQ(0, std::memcmp(got, want, 32)) << "key " << key_len << " bytes, message " << len << " bytes";
        }
        uint8_t untouched[stentor::join::token_mac_len];
        std::memset(untouched, 0x3c, sizeof untouched);
        const std::vector<uint8_t> too_long(stentor::join::short_mac_max + 1, 1);
        stentor::join::short_mac(key, too_long.data(), too_long.size(), untouched);
        for (uint8_t b : untouched) EXPECT_EQ(0x3c, b);
    }
}
