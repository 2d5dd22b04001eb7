// Join tokens: format and crypto (stentor/join_token.h, docs/join.md).
//
// HMAC-SHA256 (RFC 2104) over OpenSSL's SHA-256 block function,
// SHA256_Transform (deprecated in 3.0, still exported; it runs the SHA-NI or
// AVX2 code OpenSSL picks at load). EVP and HMAC() allocate a context per
// call, which the data plane may not do per packet. The key's ipad and opad
// blocks are absorbed once (token_key), and label || 20 bytes (35 bytes) with
// its padding fits one block, so a MAC is exactly two compressions; the
// blocks are padded here, not by SHA256_Update/Final, whose buffering and
// bookkeeping, and the store-forwarding stalls of a block built bytewise,
// cost as much again as the compressions (sha_block.h has the figures).
#define OPENSSL_SUPPRESS_DEPRECATED   // SHA256_Init & co.: deprecated in 3.0, still the only allocation-free API
#include "stentor/join_token.h"

#include "sha_block.h"

#include <tmmintrin.h>

#if !defined(__SSSE3__)
#error "join_token.cc: decode_token needs SSSE3 (libdpdk's -march=corei7 has it)"
#endif

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>
#include <cstring>
#include <stdexcept>

namespace stentor::join {

static_assert(sizeof(SHA256_CTX::h) == token_key::state_bytes, "token_key holds SHA256_CTX::h");
static_assert(token_label_len == 15);
static_assert(token_text_len == token_raw_len / 3 * 4);
static_assert(token_password_len == (16 * 4 + 2) / 3);

namespace {

constexpr size_t sha256_block = 64;

constexpr char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// ---- base64url decode in 16-character lanes (SSSE3) ----
//
// A token is 48 characters: three lanes of 16 characters -> 12 bytes each.
// Per lane, with hi/lo the high and low nibble of each character:
//   valid  iff (valid_lo[lo] & class_of_hi[hi]) == 0: class_of_hi gives each
//          high nibble that holds alphabet characters (2..7) a bit of its
//          own and every other one bit 0, which valid_lo sets for every lo;
//          valid_lo[lo] also sets the bit of each high nibble h for which
//          (h, lo) is not in the alphabet;
//   value  = char + offset_of_hi[hi], and +33 more for '_' (the only
//          character whose high nibble, 5, also holds 'P'..'Z' at another
//          offset);
//   bytes  = the 6-bit values packed by two multiply-adds (pairs to 12
//          bits, pairs of those to 24) and a shuffle to big-endian order.
// Every table is computed below from the alphabet itself. The 36 bytes are
// stored as two lanes and 4 bytes, the shapes token_mac loads them in (see
// sha_block.h for why that matters). Measured with bench_join_verify
// BM_decode_token (same machine and load, interleaved runs): 42-50 ns with
// a 256-entry table per character, 11-12 ns in lanes.
struct b64url_tables {
    uint8_t valid_lo[16];
    uint8_t class_of_hi[16];
    int8_t offset_of_hi[16];
};
constexpr uint8_t underscore_fix = 33;   // '_' = 0x5f -> 63; 'P' = 0x50 -> 15 share offset_of_hi[5]
constexpr b64url_tables b64url = [] {
    b64url_tables t{};
    bool in[16][16] = {};
    for (size_t i = 0; i < 64; ++i) {
        const auto c = static_cast<unsigned char>(b64url_alphabet[i]);
        in[c >> 4][c & 15] = true;
        if (c != '_') t.offset_of_hi[c >> 4] = static_cast<int8_t>(static_cast<int>(i) - c);
    }
    for (size_t h = 0; h < 16; ++h) t.class_of_hi[h] = (h >= 2 && h <= 7) ? static_cast<uint8_t>(1u << (h - 1)) : 1;
    for (size_t lo = 0; lo < 16; ++lo) {
        t.valid_lo[lo] = 1;
        for (size_t h = 2; h <= 7; ++h)
            if (!in[h][lo]) t.valid_lo[lo] = static_cast<uint8_t>(t.valid_lo[lo] | (1u << (h - 1)));
    }
    return t;
}();
// The tables describe the alphabet exactly: the high nibbles of alphabet
// characters are 2..7, and every character of a high nibble but '_' has one
// offset.
static_assert([] {
    for (size_t i = 0; i < 64; ++i) {
        const auto c = static_cast<unsigned char>(b64url_alphabet[i]);
        if ((c >> 4) < 2 || (c >> 4) > 7) return false;
        const int v = c + b64url.offset_of_hi[c >> 4] + (c == '_' ? underscore_fix : 0);
        if (v != static_cast<int>(i)) return false;
    }
    return true;
}());

// 16 characters -> 12 bytes in lane bytes 0..11 (12..15 zero); `bad` gets a
// nonzero byte for every character outside the alphabet.
inline __m128i decode_lane(__m128i x, __m128i& bad) noexcept {
    const __m128i nib = _mm_set1_epi8(0x0f);
    const __m128i hi = _mm_and_si128(_mm_srli_epi32(x, 4), nib);
    const __m128i lo = _mm_and_si128(x, nib);
    const __m128i valid_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b64url.valid_lo));
    const __m128i class_of_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b64url.class_of_hi));
    const __m128i offset_of_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b64url.offset_of_hi));
    bad = _mm_or_si128(bad, _mm_and_si128(_mm_shuffle_epi8(valid_lo, lo), _mm_shuffle_epi8(class_of_hi, hi)));
    const __m128i fix = _mm_and_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('_')), _mm_set1_epi8(underscore_fix));
    const __m128i v = _mm_add_epi8(_mm_add_epi8(x, _mm_shuffle_epi8(offset_of_hi, hi)), fix);
    // [a b c d] per 4 characters -> a<<6|b, c<<6|d -> (a<<18|b<<12|c<<6|d) per 32-bit lane.
    const __m128i pairs = _mm_maddubs_epi16(v, _mm_set1_epi32(0x01400140));
    const __m128i quads = _mm_madd_epi16(pairs, _mm_set1_epi32(0x00011000));
    return _mm_shuffle_epi8(quads, _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1));
}

// ---- base64url encode of the password in lanes (SSSE3) ----
//
// The password is 16 MAC bytes -> 22 characters: bytes 0..11 -> 16
// characters in one lane, bytes 12..15 (and zeros) -> 6 more in another.
// Per lane: a shuffle puts each 3-byte group's bytes as [b1 b0 b2 b1] in a
// 32-bit word; a multiply-high and a multiply-low move its four 6-bit
// fields to the four bytes; a shuffle of offsets turns values into
// characters (the offsets below are computed from the alphabet). Measured
// by callgrind in join_harness (bench/count_join_instructions.sh): 135
// instructions per request with encode_groups' table lookups, byte by byte.
struct b64url_encode_tables {
    int8_t offset_of_class[16];   // class: value - 51 saturated (1..12 for 52..63), 13 for 0..25, 0 for 26..51
};
constexpr b64url_encode_tables b64url_enc = [] {
    b64url_encode_tables t{};
    auto cls = [](int v) { return v < 26 ? 13 : v <= 51 ? 0 : v - 51; };
    for (int v = 0; v < 64; ++v)
        t.offset_of_class[cls(v)] = static_cast<int8_t>(static_cast<unsigned char>(b64url_alphabet[v]) - v);
    return t;
}();
static_assert([] {
    // Every value of a class has the same offset, so one entry per class is right.
    for (int v = 0; v < 64; ++v) {
        const int c = v < 26 ? 13 : v <= 51 ? 0 : v - 51;
        if (v + b64url_enc.offset_of_class[c] != static_cast<unsigned char>(b64url_alphabet[v])) return false;
    }
    return true;
}());

// 12 bytes (in the order `spread` picks them) -> 16 characters.
inline __m128i encode_lane(__m128i in, __m128i spread) noexcept {
    const __m128i g = _mm_shuffle_epi8(in, spread);
    // [b1 b0 b2 b1] as a 32-bit word: bits of the 4 fields a b c d at 10..15
    // (a), 4..9 (b), 22..27 (c), 16..21 (d) counting in the word
    // ((b0 << 8 | b1) in the low half, (b1 << 8 | b2) in the high one).
    const __m128i ac = _mm_mulhi_epu16(_mm_and_si128(g, _mm_set1_epi32(0x0fc0fc00)), _mm_set1_epi32(0x04000040));
    const __m128i bd = _mm_mullo_epi16(_mm_and_si128(g, _mm_set1_epi32(0x003f03f0)), _mm_set1_epi32(0x01000010));
    const __m128i v = _mm_or_si128(ac, bd);   // the 6-bit values a b c d, one per byte
    __m128i cls = _mm_subs_epu8(v, _mm_set1_epi8(51));
    cls = _mm_or_si128(cls, _mm_and_si128(_mm_cmpgt_epi8(_mm_set1_epi8(26), v), _mm_set1_epi8(13)));
    const __m128i offsets = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b64url_enc.offset_of_class));
    return _mm_add_epi8(v, _mm_shuffle_epi8(offsets, cls));
}

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

// The inner block of every token MAC: label (15 bytes), the 20 signed
// bytes, then SHA-256's padding for 64 (ipad) + 35 bytes: 0x80, zeros, the
// length in bits in the last 8 bytes. The outer block: the inner digest,
// padding for 64 (opad) + 32 bytes. Built in lanes (sha_block.h).
constexpr size_t inner_msg_len = token_label_len + token_signed_len;
static_assert(inner_msg_len == 35 && inner_msg_len + 1 + 8 <= sha256_block, "one padded block");
alignas(16) constexpr std::array<uint8_t, 16> label_lane = [] {
    std::array<uint8_t, 16> l{};
    for (size_t i = 0; i < token_label_len; ++i) l[i] = static_cast<uint8_t>(token_label[i]);
    return l;
}();

inline void set_state(SHA256_CTX& c, const unsigned char* s) noexcept {
    sha::store(c.h, sha::load(s));
    sha::store(c.h + 4, sha::load(s + 16));
}

// HMAC's outer hash: the inner digest in c.h as one padded block after the
// opad state `outer`; the 32-byte MAC to out.
inline void outer_block(SHA256_CTX& c, const unsigned char* outer, uint8_t* out) noexcept {
    sha::block b;
    b.lane[0] = sha::bswap32(sha::load(c.h));
    b.lane[1] = sha::bswap32(sha::load(c.h + 4));
    b.lane[2] = sha::end_marker_at(0);
    b.lane[3] = sha::length_lane((sha256_block + token_mac_len) * 8);
    set_state(c, outer);
    SHA256_Transform(&c, b.bytes());
    sha::store(out, sha::bswap32(sha::load(c.h)));
    sha::store(out + 16, sha::bswap32(sha::load(c.h + 4)));
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
    SHA256_Transform(&c, pad);
    std::memcpy(_inner, c.h, sizeof c.h);
    for (size_t i = 0; i < sha256_block; ++i) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&c);
    SHA256_Transform(&c, pad);
    std::memcpy(_outer, c.h, sizeof c.h);
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
    __m128i bad = _mm_setzero_si128();
    const __m128i y0 = decode_lane(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)), bad);
    const __m128i y1 = decode_lane(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16)), bad);
    const __m128i y2 = decode_lane(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32)), bad);
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) != 0xffff) return false;
    sha::store(raw, _mm_or_si128(y0, _mm_slli_si128(y1, 12)));                      // bytes 0..15
    sha::store(raw + 16, _mm_or_si128(_mm_srli_si128(y1, 4), _mm_slli_si128(y2, 8)));   // 16..31
    const uint32_t last = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(y2, 8)));   // 32..35
    std::memcpy(raw + 32, &last, 4);
    if (raw[0] != token_version || raw[1] == 0 || raw[7] != 0) return false;
    fields_of(raw, f);
    return true;
}

void fields_of(const uint8_t raw[token_raw_len], token_fields& f) noexcept {
    f.version = raw[0];
    f.key_id = raw[1];
    f.session_id = load_be32(raw + 2);
    f.tier = raw[6];
    f.flags = raw[7];
    f.expiry = load_be32(raw + 8);
    f.nonce = uint64_t{load_be32(raw + 12)} << 32 | load_be32(raw + 16);
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
    // SHA256_Transform reads and writes only c.h: the rest of the context
    // (Nl, Nh, the partial block) is SHA256_Update's.
    const sha::v128 r0 = sha::load(raw), r1 = sha::load(raw + 16);
    sha::block b;
    b.lane[0] = _mm_or_si128(sha::load(label_lane.data()), _mm_slli_si128(r0, 15));   // label, raw[0]
    b.lane[1] = _mm_or_si128(_mm_srli_si128(r0, 1), _mm_slli_si128(r1, 15));         // raw[1..16]
    b.lane[2] = _mm_or_si128(sha::keep(_mm_srli_si128(r1, 1), 3), sha::end_marker_at(3));   // raw[17..19], 0x80
    b.lane[3] = sha::length_lane((sha256_block + inner_msg_len) * 8);
    SHA256_CTX c;
    set_state(c, key._inner);
    SHA256_Transform(&c, b.bytes());
    outer_block(c, key._outer, out);
}

void short_mac(const token_key& key, const uint8_t* msg, size_t len, uint8_t out[token_mac_len]) noexcept {
    if (len > short_mac_max) return;
    // One inner block: the message, 0x80, zeros, the bit length of ipad
    // block + message (RFC 6234 padding); then the outer block as token_mac.
    alignas(16) unsigned char blk[sha256_block] = {};
    std::memcpy(blk, msg, len);
    blk[len] = 0x80;
    const uint64_t bits = (sha256_block + len) * 8;
    for (int i = 0; i < 8; ++i) blk[sha256_block - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
    SHA256_CTX c;
    set_state(c, key._inner);
    SHA256_Transform(&c, blk);
    outer_block(c, key._outer, out);
    OPENSSL_cleanse(blk, sizeof blk);
}

bool check_tag(const uint8_t raw[token_raw_len], const uint8_t mac[token_mac_len]) noexcept {
    // The tag is bytes 20..35: assembled from the lane at 16 and the word
    // at 32, the shapes decode_token stores them in (sha_block.h).
    static_assert(token_signed_len == 20 && token_raw_len == 36);
    uint32_t last;
    std::memcpy(&last, raw + 32, 4);
    const sha::v128 tag = _mm_or_si128(_mm_srli_si128(sha::load(raw + 16), 4),
                                       _mm_slli_si128(_mm_cvtsi32_si128(static_cast<int>(last)), 12));
    return sha::equal16(tag, sha::load(mac));
}

void password_of(const uint8_t mac[token_mac_len], char out[token_password_len]) noexcept {
    // Bytes 0..11 of the half, then 12..15 with zeros after them: the last
    // group's one byte -> 2 characters, the second with 4 zero bits (the
    // two characters past them are not stored).
    static_assert(token_password_len == 22 && token_mac_len - token_tag_len == 16);
    const __m128i half = sha::load(mac + token_tag_len);
    const __m128i a = encode_lane(half, _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
    const __m128i b = encode_lane(half, _mm_setr_epi8(13, 12, 14, 13, -1, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    sha::store(out, a);
    const auto tail = static_cast<uint64_t>(_mm_cvtsi128_si64(b));
    std::memcpy(out + 16, &tail, 6);
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
