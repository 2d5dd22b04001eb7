// The STUN codec (stentor/stun.h). Every read is bounded by the length
// received; every write by the caller's `cap`. No allocation anywhere:
//
// - HMAC-SHA1 is RFC 2104 spelled out over OpenSSL's SHA-1 block function,
//   SHA1_Transform (deprecated in 3.0 but kept; SHA-NI when the CPU has it),
//   fed whole blocks built in 16-byte lanes (sha_block.h). EVP_MAC / HMAC()
//   would allocate a context per call, and the key changes per token, so
//   there is no long-lived context to reuse. A join request's
//   MESSAGE-INTEGRITY is five compressions (ipad, two message blocks, opad,
//   the inner digest); through SHA1_Update/Final it cost about twice that.
// - CRC-32 is ISA-L's crc32_gzip_refl() (Intel's storage acceleration
//   library, already a dependency of libdpdk-dev): the gzip/ISO-HDLC CRC,
//   folded with PCLMULQDQ, the variant picked at the first call by CPUID
//   alone. zlib's crc32(), DPDK's rte_net_crc (RTE_NET_CRC32_ETH) and ISA-L
//   give the same values, checked against RFC 5769 in tests/unit/test_stun.cc
//   and against a bitwise reference at every length up to 300. Measured
//   here over 96 bytes (a join request up to FINGERPRINT; one-off loop on the
//   shared 2-core build VM, load ~8, so only the ratios mean much): zlib
//   1.2.13 ~235 ns (table-driven; short buffers never reach its braided
//   loop), ISA-L ~40 ns, rte_net_crc ~40 ns with its SSE4.2 variant, but
//   that one is refused until EAL has set the max SIMD width (~250 ns scalar
//   before), and it would put DPDK into stentor-listener and the tests. The
//   HMAC-SHA1 after it costs ~520 ns on the same machine, so zlib would have
//   been a third of a verification.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "stentor/stun.h"

#include <isa-l/crc.h>
#include <openssl/sha.h>

#include <array>
#include <cstring>

#include "sha_block.h"
#include "stun_mac.h"
#include "stentor/wire.h"

namespace stentor::stun {
namespace {

using wire::load_be16;
using wire::load_be32;
using wire::store_be16;
using wire::store_be32;

constexpr std::array<std::string_view, static_cast<std::size_t>(stun_error::count_)> error_names = {
    "ok",
#define STENTOR_STUN_ERROR_NAME(n, t) #n,
    STENTOR_FOREACH_STUN_ERROR(STENTOR_STUN_ERROR_NAME)
#undef STENTOR_STUN_ERROR_NAME
};
constexpr std::array<std::string_view, static_cast<std::size_t>(stun_error::count_)> error_texts = {
    "accepted",
#define STENTOR_STUN_ERROR_TEXT(n, t) t,
    STENTOR_FOREACH_STUN_ERROR(STENTOR_STUN_ERROR_TEXT)
#undef STENTOR_STUN_ERROR_TEXT
};

constexpr std::size_t pad4(std::size_t n) noexcept { return (n + 3) & ~std::size_t{3}; }

// Common header checks of requests and responses. `max_len` 0: no cap.
stun_error check_header(const uint8_t* p, std::size_t n, std::size_t max_len) noexcept {
    if (n < header_len) return stun_error::too_short;
    if (max_len && n > max_len) return stun_error::too_long;
    if (p[0] & 0xc0) return stun_error::not_stun;
    if (load_be32(p + 4) != magic_cookie) return stun_error::bad_cookie;
    const std::size_t len = load_be16(p + 2);
    if (len + header_len != n || (len & 3)) return stun_error::bad_length;
    return stun_error::ok;
}

// RFC 2104 over SHA-1, one SHA1_Transform per block (sha_block.h says why
// blocks are built in 16-byte lanes). The message is header[0..2), the
// adjusted length (up to the end of MESSAGE-INTEGRITY, RFC 8489 14.5),
// header[4..mi_off): 64 + mi_off bytes after the ipad block. Reads up to 15
// bytes past mi_off (the tail's last lane is loaded whole and masked): the
// MESSAGE-INTEGRITY attribute is there in a request, and the builders
// reserve it before they sign.
//
// SHA1_Transform reads and writes only h0..h4 (the SHA-NI code loads h0..h3
// as one lane and h4 alone), so that is all that is set here.
inline void set_state(SHA_CTX& c, sha::v128 h0_3, uint32_t h4) noexcept {
    sha::store(&c.h0, h0_3);
    c.h4 = h4;
}

// The key block of any other key: the key, zero-padded; a key longer than a
// block is hashed first.
void key_block(const char* key, std::size_t key_len, uint8_t k[sha::block_len]) noexcept {
    constexpr std::size_t block = sha::block_len;
    if (key_len > block) {
        // Not SHA1(): in OpenSSL 3 the one-shot goes through EVP_Q_digest,
        // which fetches and allocates.
        SHA_CTX kc;
        SHA1_Init(&kc);
        SHA1_Update(&kc, key, key_len);
        SHA1_Final(k, &kc);
    } else if (key_len) {
        std::memcpy(k, key, key_len);
    }
}

// The key's ipad and opad states into ci and co.
void key_states(const char* key, std::size_t key_len, SHA_CTX& ci, SHA_CTX& co) noexcept {
    constexpr std::size_t block = sha::block_len;
    sha::block b;
    const sha::v128 ipad = _mm_set1_epi8(0x36), opad = _mm_set1_epi8(0x5c);
    sha::v128 kl[4];
    if (key_len == 22) {
        // A join password (join_token.h), the only key the relay signs and
        // checks with: bytes 0..15 and 6..21 shifted to 16..21, no byte
        // read past the key, nothing through memory (callgrind: the
        // zeroed block and the memcpy call cost ~25 instructions a key).
        kl[0] = sha::load(key);
        kl[1] = _mm_srli_si128(sha::load(key + 6), 10);
        kl[2] = kl[3] = _mm_setzero_si128();
    } else {
        alignas(16) uint8_t k[block] = {};
        key_block(key, key_len, k);
        for (int i = 0; i < 4; ++i) kl[i] = sha::load(k + 16 * i);
    }
    const sha::v128 iv0_3 = _mm_set_epi32(static_cast<int>(0x10325476), static_cast<int>(0x98badcfe),
                                          static_cast<int>(0xefcdab89), 0x67452301);   // FIPS 180-4 5.3.1
    constexpr uint32_t iv4 = 0xc3d2e1f0;
    for (int i = 0; i < 4; ++i) b.lane[i] = _mm_xor_si128(kl[i], ipad);
    set_state(ci, iv0_3, iv4);
    SHA1_Transform(&ci, b.bytes());
    for (int i = 0; i < 4; ++i) b.lane[i] = _mm_xor_si128(kl[i], opad);
    set_state(co, iv0_3, iv4);
    SHA1_Transform(&co, b.bytes());
}

void hmac_sha1_to_integrity(const uint8_t* msg, std::size_t mi_off, const char* key, std::size_t key_len,
                            uint8_t mac[hmac_sha1_len]) noexcept {
    constexpr std::size_t block = sha::block_len;
    SHA_CTX ci, co;
    key_states(key, key_len, ci, co);
    sha::block b;

    // Bytes 2..3 of the first block: the length as if MESSAGE-INTEGRITY
    // ended the message (word 1 of lane 0, big-endian).
    const int len_word = static_cast<int>(__builtin_bswap16(static_cast<uint16_t>(mi_off + integrity_attr_len - header_len)));
    std::size_t pos = 0;
    if (mi_off >= block) {
        b.lane[0] = _mm_insert_epi16(sha::load(msg), len_word, 1);
        for (int i = 1; i < 4; ++i) b.lane[i] = sha::load(msg + 16 * i);
        SHA1_Transform(&ci, b.bytes());
        for (pos = block; mi_off - pos >= block; pos += block) SHA1_Transform(&ci, msg + pos);
    }
    // The tail (0..63 bytes), 0x80, zeros and the bit length: one block, or
    // two when the tail leaves no room for the 8-byte length.
    const std::size_t r = mi_off - pos;
    sha::block t[2];
    for (std::size_t i = 0; i < 4; ++i) {
        const std::size_t off = 16 * i;
        sha::v128 v = _mm_setzero_si128();
        if (off < r) v = sha::keep(sha::load(msg + pos + off), r - off < 16 ? r - off : 16);
        if (r >= off && r < off + 16) v = _mm_or_si128(v, sha::end_marker_at(r - off));
        t[0].lane[i] = v;
    }
    if (pos == 0) t[0].lane[0] = _mm_insert_epi16(t[0].lane[0], len_word, 1);
    const bool two = r + 1 + 8 > block;
    const sha::v128 bits = sha::length_lane((block + mi_off) * 8);
    if (two) {
        t[1].lane[0] = t[1].lane[1] = t[1].lane[2] = _mm_setzero_si128();
        t[1].lane[3] = bits;
    } else {
        t[0].lane[3] = _mm_or_si128(t[0].lane[3], bits);
    }
    SHA1_Transform(&ci, t[0].bytes());
    if (two) SHA1_Transform(&ci, t[1].bytes());

    // Outer: opad state, then the inner digest (20 bytes) and its padding.
    b.lane[0] = sha::bswap32(sha::load(&ci.h0));
    b.lane[1] = _mm_or_si128(_mm_cvtsi32_si128(static_cast<int>(__builtin_bswap32(ci.h4))), sha::end_marker_at(4));
    b.lane[2] = _mm_setzero_si128();
    b.lane[3] = sha::length_lane((block + hmac_sha1_len) * 8);
    SHA1_Transform(&co, b.bytes());
    sha::store(mac, sha::bswap32(sha::load(&co.h0)));
    const uint32_t h4 = __builtin_bswap32(co.h4);
    std::memcpy(mac + 16, &h4, 4);
}

void put_attr_header(uint8_t* p, uint16_t type, std::size_t len) noexcept {
    store_be16(p, type);
    store_be16(p + 2, static_cast<uint16_t>(len));
}

// Value + zero padding to a multiple of 4. Returns the bytes written after
// the attribute header.
std::size_t put_value(uint8_t* p, const void* v, std::size_t len) noexcept {
    if (len) std::memcpy(p, v, len);
    const std::size_t padded = pad4(len);
    std::memset(p + len, 0, padded - len);
    return padded;
}

void put_header(uint8_t* out, uint16_t type, const uint8_t* txid) noexcept {
    store_be16(out, type);
    store_be16(out + 2, 0);
    store_be32(out + 4, magic_cookie);
    std::memcpy(out + 8, txid, txid_len);
}

// Appends MESSAGE-INTEGRITY at `pos` and FINGERPRINT after it; the caller
// has checked that pos + 32 fits. Returns the message length.
std::size_t finish(uint8_t* out, std::size_t pos, const char* key, std::size_t key_len) noexcept {
    // The MAC reads a few bytes past pos (masked off): make them ours.
    std::memset(out + pos, 0, integrity_attr_len);
    uint8_t mac[hmac_sha1_len];
    hmac_sha1_to_integrity(out, pos, key, key_len, mac);
    put_attr_header(out + pos, attr::message_integrity, hmac_sha1_len);
    std::memcpy(out + pos + attr_header_len, mac, hmac_sha1_len);
    pos += integrity_attr_len;
    const std::size_t total = pos + fingerprint_attr_len;
    store_be16(out + 2, static_cast<uint16_t>(total - header_len));
    put_attr_header(out + pos, attr::fingerprint, 4);
    store_be32(out + pos + attr_header_len, fingerprint(out, pos));
    return total;
}

// Length of the longest prefix of `s` that is at most `max_bytes` bytes and
// max_text_chars characters and ends on a UTF-8 character boundary. Bytes
// that are not valid UTF-8 are counted as characters of their own: the
// phrase is ours, this only keeps a cut from splitting a character.
std::size_t utf8_prefix(std::string_view s, std::size_t max_bytes) noexcept {
    std::size_t len = s.size() < max_bytes ? s.size() : max_bytes;
    std::size_t chars = 0;
    for (std::size_t i = 0; i < len; ++i) {
        if ((static_cast<uint8_t>(s[i]) & 0xc0) != 0x80 && ++chars > max_text_chars) {
            len = i;
            break;
        }
    }
    while (len > 0 && len < s.size() && (static_cast<uint8_t>(s[len]) & 0xc0) == 0x80) --len;
    return len;
}

}  // namespace

void hmac_sha1_key_states(const char* key, std::size_t key_len, uint32_t ipad[5], uint32_t opad[5]) noexcept {
    SHA_CTX ci, co;
    key_states(key, key_len, ci, co);
    const uint32_t i5[5] = {ci.h0, ci.h1, ci.h2, ci.h3, ci.h4};
    const uint32_t o5[5] = {co.h0, co.h1, co.h2, co.h3, co.h4};
    std::memcpy(ipad, i5, sizeof i5);
    std::memcpy(opad, o5, sizeof o5);
}

std::string_view error_name(stun_error e) noexcept {
    const auto i = static_cast<std::size_t>(e);
    return i < error_names.size() ? error_names[i] : "?";
}

std::string_view error_text(stun_error e) noexcept {
    const auto i = static_cast<std::size_t>(e);
    return i < error_texts.size() ? error_texts[i] : "?";
}

uint32_t fingerprint(const uint8_t* p, std::size_t n) noexcept {
    return crc32_gzip_refl(0, p, n) ^ fingerprint_xor;
}

namespace {

// One attribute at `pos`, after the checks every message shares: it fits,
// nothing follows FINGERPRINT, only FINGERPRINT follows MESSAGE-INTEGRITY.
// n - pos >= 4 (the callers' loops keep n and every step multiples of 4).
struct attr_at {
    uint16_t type;
    std::size_t len;
    std::size_t padded;
    const uint8_t* v;
};
inline stun_error read_attr(const uint8_t* p, std::size_t n, std::size_t pos, std::size_t mi_off, std::size_t fp_off,
                            attr_at& a) noexcept {
    a.type = load_be16(p + pos);
    a.len = load_be16(p + pos + 2);
    a.padded = pad4(a.len);
    if (a.padded > n - pos - attr_header_len) return stun_error::bad_attribute;
    if (fp_off) return stun_error::attribute_after_fingerprint;
    if (mi_off && a.type != attr::fingerprint) return stun_error::attribute_after_integrity;
    a.v = p + pos + attr_header_len;
    return stun_error::ok;
}

constexpr uint32_t attr_word(uint16_t type, std::size_t len) noexcept {
    return uint32_t{type} << 16 | static_cast<uint32_t>(len);
}

// The layout of stentor-listener's requests and of docs/join.md's example
// (build_request without options but the cookie): USERNAME holding a join
// token (fixed_username_len characters), STENTOR-COOKIE once the relay has
// sent one, STENTOR-LEAVE when leaving, MESSAGE-INTEGRITY, FINGERPRINT, and
// nothing else. Recognised by its
// length and the attribute words at their fixed offsets, each with the one
// length the attribute walk requires, the attributes tiling the message
// exactly: the walk would accept it with the same offsets, so
// parse_request skips it (callgrind: about 100 of its 180 instructions a
// request). Any other layout (ICE agents add PRIORITY, ICE-CONTROLLING, ...)
// is walked.
constexpr std::size_t fixed_request_len =
    header_len + attr_header_len + fixed_username_len + integrity_attr_len + fingerprint_attr_len;
static_assert(fixed_username_len % 4 == 0 && fixed_username_len <= max_username_len, "no padding to check");
// On a match, *cookie_off is the cookie's value offset (0: none) and
// *leave whether STENTOR-LEAVE is there.
inline bool fixed_layout(const uint8_t* p, std::size_t n, std::size_t* cookie_off, bool* leave) noexcept {
    constexpr std::size_t leave_len = attr_header_len + 4;
    if (n < fixed_request_len) return false;
    const std::size_t extra = n - fixed_request_len;
    if (extra != 0 && extra != leave_len && extra != cookie_attr_len && extra != cookie_attr_len + leave_len)
        return false;
    if (load_be32(p + header_len) != attr_word(attr::username, fixed_username_len)) return false;
    if (load_be32(p + n - integrity_attr_len - fingerprint_attr_len) != attr_word(attr::message_integrity, hmac_sha1_len))
        return false;
    if (load_be32(p + n - fingerprint_attr_len) != attr_word(attr::fingerprint, 4)) return false;
    std::size_t pos = header_len + attr_header_len + fixed_username_len;
    std::size_t c = 0;
    if (extra >= cookie_attr_len) {
        if (load_be32(p + pos) != attr_word(attr::stentor_cookie, cookie_len)) return false;
        c = pos + attr_header_len;
        pos += cookie_attr_len;
    }
    const bool l = extra == leave_len || extra == cookie_attr_len + leave_len;
    if (l && (load_be32(p + pos) != attr_word(attr::stentor_leave, 4) || load_be32(p + pos + attr_header_len) != 0))
        return false;
    *cookie_off = c;
    *leave = l;
    return true;
}

// STENTOR-COOKIE when `cookie` is not null; returns the bytes written.
std::size_t put_cookie(uint8_t* out, const uint8_t* cookie) noexcept {
    if (cookie == nullptr) return 0;
    put_attr_header(out, attr::stentor_cookie, cookie_len);
    std::memcpy(out + attr_header_len, cookie, cookie_len);
    return cookie_attr_len;
}

}  // namespace

stun_error parse_request(const uint8_t* p, std::size_t n, request_view& out) noexcept {
    if (const stun_error e = check_header(p, n, max_request_len); e != stun_error::ok) return e;
    if (load_be16(p) != binding_request) return stun_error::wrong_type;

    std::size_t user_off = 0, user_len = 0, mi_off = 0, fp_off = 0, cookie_off = 0;
    bool leave = false, use_candidate = false;
    if (fixed_layout(p, n, &cookie_off, &leave)) {
        user_off = header_len + attr_header_len;
        user_len = fixed_username_len;
        mi_off = n - integrity_attr_len - fingerprint_attr_len;
        fp_off = n - fingerprint_attr_len;
    }
    // n is a multiple of 4 and so is every step, so n - pos >= 4 whenever the
    // loop runs: an attribute header always fits, its value may not.
    for (std::size_t pos = fp_off == 0 ? header_len : n; pos < n;) {
        attr_at a;
        if (const stun_error e = read_attr(p, n, pos, mi_off, fp_off, a); e != stun_error::ok) return e;
        const uint16_t type = a.type;
        const std::size_t len = a.len;
        const std::size_t padded = a.padded;
        const uint8_t* v = a.v;
        switch (type) {
        case attr::username:
            if (user_off) return stun_error::duplicate_attribute;
            if (len == 0) return stun_error::bad_attribute_value;
            if (len > max_username_len) return stun_error::username_too_long;
            user_off = pos + attr_header_len;
            user_len = len;
            break;
        case attr::message_integrity:
            if (len != hmac_sha1_len) return stun_error::bad_attribute_value;
            mi_off = pos;
            break;
        case attr::fingerprint:
            if (len != 4) return stun_error::bad_attribute_value;
            fp_off = pos;
            break;
        case attr::priority:
            if (len != 4) return stun_error::bad_attribute_value;
            break;
        case attr::use_candidate:
            if (len != 0) return stun_error::bad_attribute_value;
            use_candidate = true;
            break;
        case attr::ice_controlled:
        case attr::ice_controlling:
            if (len != 8) return stun_error::bad_attribute_value;
            break;
        case attr::stentor_leave:
            if (leave) return stun_error::duplicate_attribute;
            if (len != 4 || load_be32(v) != 0) return stun_error::bad_attribute_value;
            leave = true;
            break;
        case attr::stentor_cookie:
            if (cookie_off) return stun_error::duplicate_attribute;
            if (len != cookie_len) return stun_error::bad_attribute_value;
            cookie_off = pos + attr_header_len;
            break;
        default:
            if (type < 0x8000) return stun_error::unknown_comprehension_required;
            break;   // comprehension-optional (SOFTWARE, ...): ignored
        }
        pos += attr_header_len + padded;
    }
    if (!user_off) return stun_error::no_username;
    if (!mi_off) return stun_error::no_integrity;
    if (!fp_off) return stun_error::no_fingerprint;
    // Only FINGERPRINT may follow MI and nothing may follow FINGERPRINT, so
    // here fp_off == n - 8 and mi_off == n - 32.
    if (fingerprint(p, fp_off) != load_be32(p + fp_off + attr_header_len)) return stun_error::bad_fingerprint;

    out.txid = p + 8;
    out.username = reinterpret_cast<const char*>(p + user_off);
    out.username_len = static_cast<uint16_t>(user_len);
    out.integrity_offset = static_cast<uint16_t>(mi_off);
    out.length = static_cast<uint16_t>(n);
    out.leave = leave;
    out.use_candidate = use_candidate;
    out.cookie = cookie_off ? p + cookie_off : nullptr;
    return stun_error::ok;
}

bool check_integrity(const uint8_t* msg, std::size_t integrity_offset, const char* key, std::size_t key_len) noexcept {
    if (integrity_offset < header_len) return false;
    uint8_t mac[hmac_sha1_len];
    hmac_sha1_to_integrity(msg, integrity_offset, key, key_len, mac);
    return sha::equal20(mac, msg + integrity_offset + attr_header_len);
}

bool check_integrity(const uint8_t* msg, const request_view& v, const char* key, std::size_t key_len) noexcept {
    return check_integrity(msg, v.integrity_offset, key, key_len);
}

std::size_t build_success(uint8_t* out, std::size_t cap, const uint8_t* txid, const mapped_address& a,
                          const char* key, std::size_t key_len, const uint8_t* cookie) noexcept {
    if (a.family != family_ipv4 && a.family != family_ipv6) return 0;
    const std::size_t alen = a.family == family_ipv4 ? 4 : 16;
    if (!out || !txid ||
        cap < header_len + 8 + alen + (cookie ? cookie_attr_len : 0) + integrity_attr_len + fingerprint_attr_len)
        return 0;
    put_header(out, binding_success, txid);
    std::size_t pos = header_len;
    put_attr_header(out + pos, attr::xor_mapped_address, 4 + alen);
    out[pos + 4] = 0;
    out[pos + 5] = a.family;
    store_be16(out + pos + 6, static_cast<uint16_t>(a.port ^ (magic_cookie >> 16)));
    // RFC 8489 14.2: XORed with the magic cookie, and for IPv6 with the
    // cookie followed by the transaction id (the header's bytes 4..19).
    for (std::size_t i = 0; i < alen; ++i) out[pos + 8 + i] = a.addr[i] ^ out[4 + i];
    pos += 8 + alen;
    pos += put_cookie(out + pos, cookie);
    return finish(out, pos, key, key_len);
}

std::size_t build_success(uint8_t* out, std::size_t cap, const uint8_t* txid, uint32_t ipv4, uint16_t port,
                          const char* key, std::size_t key_len) noexcept {
    mapped_address a;
    a.family = family_ipv4;
    store_be32(a.addr, ipv4);
    a.port = port;
    return build_success(out, cap, txid, a, key, key_len);
}

std::size_t build_error(uint8_t* out, std::size_t cap, const uint8_t* txid, uint16_t code, std::string_view reason,
                        uint32_t retry_after_ms, const char* key, std::size_t key_len, const uint8_t* cookie) noexcept {
    const std::size_t fixed = error_fixed_len(retry_after_ms, cookie != nullptr);
    if (!out || !txid || cap < fixed || code < 300 || code > 699) return 0;
    // The reason's padded length must fit in what is left.
    const std::size_t room = (cap - fixed) & ~std::size_t{3};
    const std::size_t reason_len = utf8_prefix(reason, room < max_text_encode_len ? room : max_text_encode_len);

    put_header(out, binding_error, txid);
    std::size_t pos = header_len;
    put_attr_header(out + pos, attr::error_code, 4 + reason_len);
    out[pos + 4] = 0;
    out[pos + 5] = 0;
    out[pos + 6] = static_cast<uint8_t>(code / 100);
    out[pos + 7] = static_cast<uint8_t>(code % 100);
    pos += 8;
    pos += put_value(out + pos, reason.data(), reason_len);
    if (retry_after_ms) {
        put_attr_header(out + pos, attr::stentor_retry_after, 4);
        store_be32(out + pos + 4, retry_after_ms);
        pos += 8;
    }
    pos += put_cookie(out + pos, cookie);
    return finish(out, pos, key, key_len);
}

std::size_t build_request(uint8_t* out, std::size_t cap, const uint8_t* txid, std::string_view username,
                          const char* key, std::size_t key_len, const request_options& opt) noexcept {
    if (!out || !txid || username.empty() || username.size() > max_username_len) return 0;
    if (opt.software.size() > max_text_encode_len || utf8_prefix(opt.software, max_text_encode_len) != opt.software.size())
        return 0;
    if (opt.use_candidate && !opt.ice) return 0;
    const std::size_t need = header_len + (opt.software.empty() ? 0 : attr_header_len + pad4(opt.software.size())) +
                             (opt.ice ? 8 + 12 + (opt.use_candidate ? 4 : 0) : 0) + attr_header_len +
                             pad4(username.size()) + (opt.cookie ? cookie_attr_len : 0) + (opt.leave ? 8 : 0) +
                             integrity_attr_len + fingerprint_attr_len;
    if (cap < need) return 0;

    put_header(out, binding_request, txid);
    std::size_t pos = header_len;
    if (!opt.software.empty()) {
        put_attr_header(out + pos, attr::software, opt.software.size());
        pos += attr_header_len + put_value(out + pos + attr_header_len, opt.software.data(), opt.software.size());
    }
    if (opt.ice) {
        put_attr_header(out + pos, attr::priority, 4);
        store_be32(out + pos + 4, opt.priority);
        pos += 8;
        put_attr_header(out + pos, attr::ice_controlling, 8);
        store_be32(out + pos + 4, static_cast<uint32_t>(opt.tie_breaker >> 32));
        store_be32(out + pos + 8, static_cast<uint32_t>(opt.tie_breaker));
        pos += 12;
        if (opt.use_candidate) {
            put_attr_header(out + pos, attr::use_candidate, 0);
            pos += 4;
        }
    }
    put_attr_header(out + pos, attr::username, username.size());
    pos += attr_header_len + put_value(out + pos + attr_header_len, username.data(), username.size());
    pos += put_cookie(out + pos, opt.cookie);
    if (opt.leave) {
        put_attr_header(out + pos, attr::stentor_leave, 4);
        store_be32(out + pos + 4, 0);
        pos += 8;
    }
    return finish(out, pos, key, key_len);
}

stun_error parse_response(const uint8_t* p, std::size_t n, response_view& out) noexcept {
    if (const stun_error e = check_header(p, n, 0); e != stun_error::ok) return e;
    const uint16_t msg_type = load_be16(p);
    if (msg_type != binding_success && msg_type != binding_error) return stun_error::wrong_type;

    response_view r;
    std::size_t mi_off = 0, fp_off = 0;
    bool seen_retry = false;
    for (std::size_t pos = header_len; pos < n;) {
        attr_at a;
        if (const stun_error e = read_attr(p, n, pos, mi_off, fp_off, a); e != stun_error::ok) return e;
        const uint16_t type = a.type;
        const std::size_t len = a.len;
        const std::size_t padded = a.padded;
        const uint8_t* v = a.v;
        switch (type) {
        case attr::xor_mapped_address:
            if (r.has_mapped) return stun_error::duplicate_attribute;
            // The length first: v[0] and v[1] exist only when it is 8 or 20.
            if ((len != 8 && len != 20) || v[0] != 0 || v[1] != (len == 8 ? family_ipv4 : family_ipv6))
                return stun_error::bad_attribute_value;
            r.has_mapped = true;
            r.mapped_family = v[1];
            r.mapped_port = static_cast<uint16_t>(load_be16(v + 2) ^ (magic_cookie >> 16));
            if (v[1] == family_ipv4)
                r.mapped_ipv4 = load_be32(v + 4) ^ magic_cookie;
            else
                for (std::size_t i = 0; i < 16; ++i) r.mapped_ipv6[i] = v[4 + i] ^ p[4 + i];
            break;
        case attr::error_code: {
            if (r.error_code) return stun_error::duplicate_attribute;
            if (len < 4 || len > 4 + max_text_decode_len) return stun_error::bad_attribute_value;
            const unsigned cls = v[2] & 7, number = v[3];
            if (cls < 3 || cls > 6 || number > 99) return stun_error::bad_attribute_value;
            r.error_code = static_cast<uint16_t>(cls * 100 + number);
            r.reason = reinterpret_cast<const char*>(v + 4);
            r.reason_len = static_cast<uint16_t>(len - 4);
            break;
        }
        case attr::stentor_retry_after:
            if (seen_retry) return stun_error::duplicate_attribute;
            if (len != 4) return stun_error::bad_attribute_value;
            seen_retry = true;
            r.retry_after_ms = load_be32(v);
            break;
        case attr::stentor_cookie:
            if (r.has_cookie) return stun_error::duplicate_attribute;
            if (len != cookie_len) return stun_error::bad_attribute_value;
            r.has_cookie = true;
            std::memcpy(r.cookie, v, cookie_len);
            break;
        case attr::message_integrity:
            if (len != hmac_sha1_len) return stun_error::bad_attribute_value;
            mi_off = pos;
            break;
        case attr::fingerprint:
            if (len != 4) return stun_error::bad_attribute_value;
            fp_off = pos;
            break;
        case attr::mapped_address:
        case attr::unknown_attributes:
            break;   // understood, not used
        default:
            if (type < 0x8000) return stun_error::unknown_comprehension_required;
            break;
        }
        pos += attr_header_len + padded;
    }
    if (!mi_off) return stun_error::no_integrity;
    if (!fp_off) return stun_error::no_fingerprint;
    if (fingerprint(p, fp_off) != load_be32(p + fp_off + attr_header_len)) return stun_error::bad_fingerprint;

    r.txid = p + 8;
    r.type = msg_type;
    r.integrity_offset = static_cast<uint16_t>(mi_off);
    r.length = static_cast<uint32_t>(n);
    out = r;
    return stun_error::ok;
}

}  // namespace stentor::stun
