// Join tokens: format and crypto (stentor/join_token.h, docs/join.md).
//
// HMAC-SHA256 by hand over OpenSSL's low-level SHA-256 (RFC 2104): EVP and
// HMAC() allocate a context per call, which the data plane may not do per
// packet; SHA256_CTX lives on the stack, and SHA256_Update/Final use the
// SHA-NI or AVX2 block function OpenSSL picks at load. The key's ipad and
// opad blocks are absorbed once (token_key), so a MAC is one compression of
// label || 20 bytes (35 bytes + padding fit one block) and one of the inner
// hash (32 bytes + padding): two compressions, no allocation.
#define OPENSSL_SUPPRESS_DEPRECATED   // SHA256_Init & co.: deprecated in 3.0, still the only allocation-free API
#include "stentor/join_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace stentor::join {

static_assert(sizeof(SHA256_CTX) == token_key::state_bytes, "token_key holds a SHA256_CTX by value");
static_assert(alignof(SHA256_CTX) <= 8);
static_assert(token_label_len == 15);
static_assert(token_text_len == token_raw_len / 3 * 4);
static_assert(token_password_len == (16 * 4 + 2) / 3);

namespace {

constexpr size_t sha256_block = 64;

constexpr char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Char -> 6-bit value, 0xff for anything outside the base64url alphabet
// ('+', '/', '=' and padding included: a token has none).
constexpr std::array<uint8_t, 256> b64url_values = [] {
    std::array<uint8_t, 256> t{};
    for (auto& v : t) v = 0xff;
    for (uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(b64url_alphabet[i])] = i;
    return t;
}();

// Whole groups: 3 bytes -> 4 chars.
void encode_groups(const uint8_t* in, size_t groups, char* out) noexcept {
    for (size_t g = 0; g < groups; ++g, in += 3, out += 4) {
        const uint32_t v = uint32_t{in[0]} << 16 | uint32_t{in[1]} << 8 | in[2];
        out[0] = b64url_alphabet[v >> 18];
        out[1] = b64url_alphabet[(v >> 12) & 63];
        out[2] = b64url_alphabet[(v >> 6) & 63];
        out[3] = b64url_alphabet[v & 63];
    }
}

inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

inline uint32_t load_be32(const uint8_t* p) noexcept {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

}  // namespace

token_key::token_key(const uint8_t* secret, size_t len) {
    if (secret == nullptr || len < token_secret_min)
        throw std::invalid_argument("join token key: the secret must be at least " +
                                    std::to_string(token_secret_min) + " bytes, got " + std::to_string(len));
    // RFC 2104: a key longer than the block is replaced by its hash; a
    // shorter one is padded with zeros.
    unsigned char k[sha256_block] = {};
    if (len > sha256_block) SHA256(secret, len, k);
    else std::memcpy(k, secret, len);
    unsigned char pad[sha256_block];
    SHA256_CTX c;
    for (size_t i = 0; i < sha256_block; ++i) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof pad);
    std::memcpy(_inner, &c, sizeof c);
    for (size_t i = 0; i < sha256_block; ++i) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof pad);
    std::memcpy(_outer, &c, sizeof c);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(&c, sizeof c);
}

token_key::~token_key() {
    OPENSSL_cleanse(_inner, sizeof _inner);
    OPENSSL_cleanse(_outer, sizeof _outer);
}

bool decode_token(const char* s, size_t n, uint8_t raw[token_raw_len], token_fields& f) noexcept {
    if (s == nullptr || n != token_text_len) return false;
    // 12 groups of 4 chars -> 3 bytes; the OR of every value finds a char
    // outside the alphabet once, after the loop.
    uint8_t bad = 0;
    for (size_t g = 0; g < token_text_len / 4; ++g) {
        const uint8_t a = b64url_values[static_cast<unsigned char>(s[4 * g])];
        const uint8_t b = b64url_values[static_cast<unsigned char>(s[4 * g + 1])];
        const uint8_t c = b64url_values[static_cast<unsigned char>(s[4 * g + 2])];
        const uint8_t d = b64url_values[static_cast<unsigned char>(s[4 * g + 3])];
        bad |= a | b | c | d;
        const uint32_t v = uint32_t{a} << 18 | uint32_t{b} << 12 | uint32_t{c} << 6 | d;
        raw[3 * g] = static_cast<uint8_t>(v >> 16);
        raw[3 * g + 1] = static_cast<uint8_t>(v >> 8);
        raw[3 * g + 2] = static_cast<uint8_t>(v);
    }
    if (bad & 0xc0) return false;   // a 0xff (not in the alphabet); valid values are < 64
    if (raw[0] != token_version || raw[1] == 0 || raw[7] != 0) return false;
    f.version = raw[0];
    f.key_id = raw[1];
    f.session_id = load_be32(raw + 2);
    f.tier = raw[6];
    f.flags = raw[7];
    f.expiry = load_be32(raw + 8);
    f.nonce = uint64_t{load_be32(raw + 12)} << 32 | load_be32(raw + 16);
    return true;
}

void pack_token(const token_fields& f, uint8_t raw[token_raw_len]) noexcept {
    raw[0] = f.version;
    raw[1] = f.key_id;
    store_be32(raw + 2, f.session_id);
    raw[6] = f.tier;
    raw[7] = f.flags;
    store_be32(raw + 8, f.expiry);
    store_be32(raw + 12, static_cast<uint32_t>(f.nonce >> 32));
    store_be32(raw + 16, static_cast<uint32_t>(f.nonce));
    std::memset(raw + token_signed_len, 0, token_tag_len);
}

void token_mac(const token_key& key, const uint8_t raw[token_raw_len], uint8_t out[token_mac_len]) noexcept {
    unsigned char msg[token_label_len + token_signed_len];
    std::memcpy(msg, token_label, token_label_len);
    std::memcpy(msg + token_label_len, raw, token_signed_len);
    SHA256_CTX c;
    std::memcpy(&c, key._inner, sizeof c);
    SHA256_Update(&c, msg, sizeof msg);
    unsigned char inner[SHA256_DIGEST_LENGTH];
    SHA256_Final(inner, &c);
    std::memcpy(&c, key._outer, sizeof c);
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(out, &c);
}

bool check_tag(const uint8_t raw[token_raw_len], const uint8_t mac[token_mac_len]) noexcept {
    return CRYPTO_memcmp(raw + token_signed_len, mac, token_tag_len) == 0;
}

void password_of(const uint8_t mac[token_mac_len], char out[token_password_len]) noexcept {
    // 16 bytes: five whole groups (20 chars), then one byte -> 2 chars.
    const uint8_t* half = mac + token_tag_len;
    encode_groups(half, 5, out);
    const uint8_t last = half[15];
    out[20] = b64url_alphabet[last >> 2];
    out[21] = b64url_alphabet[(last & 3) << 4];
}

void encode_token(const uint8_t raw[token_raw_len], char out[token_text_len]) noexcept {
    encode_groups(raw, token_raw_len / 3, out);
}

std::string mint_token(const token_key& key, const token_fields& f, std::string& password) {
    if (f.version != token_version) throw std::invalid_argument("join token: version must be 1");
    if (f.key_id == 0) throw std::invalid_argument("join token: key id 0 is invalid");
    if (f.flags != 0) throw std::invalid_argument("join token: flags must be 0 in version 1");
    uint8_t raw[token_raw_len];
    pack_token(f, raw);
    uint8_t mac[token_mac_len];
    token_mac(key, raw, mac);
    std::memcpy(raw + token_signed_len, mac, token_tag_len);
    std::string text(token_text_len, '\0');
    encode_token(raw, text.data());
    password.assign(token_password_len, '\0');
    password_of(mac, password.data());
    OPENSSL_cleanse(mac, sizeof mac);
    return text;
}

}  // namespace stentor::join
