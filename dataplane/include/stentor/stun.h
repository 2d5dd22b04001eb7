// The STUN codec of the token join (docs/join.md, "The join packet").
//
// A listener joins a session by sending a STUN Binding Request (RFC 8489 wire
// format) to the session's UDP port with ICE short-term credentials (RFC 8445
// 7.2.2): USERNAME = its join token, MESSAGE-INTEGRITY = HMAC-SHA1 keyed with
// the token's password, FINGERPRINT. The relay answers with a Binding Success
// Response (XOR-MAPPED-ADDRESS) or a Binding Error Response (ERROR-CODE),
// both signed with the same key and never larger than the request.
//
// Both planes and the tools read this file: the data plane parses and
// verifies every request it receives (RFC 7983: first byte 0..3 is STUN), so
// every function here is noexcept, allocates nothing, throws nothing, makes
// no syscall and does work bounded by max_request_len; stentor-listener and
// the tests build requests and check responses with the same code.
//
// The order of work for a received request:
//   1. parse_request: every check that costs no key (lengths, cookie, type,
//      attribute layout, FINGERPRINT CRC-32). Refusals are named by
//      stun_error, one reason per check, the first failing check wins.
//   2. the caller checks the token named by USERNAME (key id, expiry,
//      session) and derives its password.
//   3. check_integrity: one HMAC-SHA1, constant-time compare.
// Nothing is ever sent for a request that fails 1 or 3.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace stentor::stun {

// ---------------------------------------------------------------- wire constants

inline constexpr uint32_t magic_cookie = 0x2112a442;     // RFC 8489 5
inline constexpr uint32_t fingerprint_xor = 0x5354554e;  // "STUN", RFC 8489 14.7
inline constexpr std::size_t header_len = 20;
inline constexpr std::size_t txid_len = 12;
inline constexpr std::size_t attr_header_len = 4;
inline constexpr std::size_t hmac_sha1_len = 20;
inline constexpr std::size_t integrity_attr_len = attr_header_len + hmac_sha1_len;   // 24
inline constexpr std::size_t fingerprint_attr_len = attr_header_len + 4;             // 8
inline constexpr std::size_t cookie_len = 16;                                         // STENTOR-COOKIE's value
inline constexpr std::size_t cookie_attr_len = attr_header_len + cookie_len;         // 20

// Message types (method Binding 0x001 in the class bits, RFC 8489 5).
inline constexpr uint16_t binding_request = 0x0001;
inline constexpr uint16_t binding_success = 0x0101;
inline constexpr uint16_t binding_error = 0x0111;

// Attribute types. Below 0x8000: comprehension-required (a receiver that
// does not know one must refuse the message); from 0x8000: comprehension-
// optional (ignored when unknown).
namespace attr {
inline constexpr uint16_t mapped_address = 0x0001;
inline constexpr uint16_t username = 0x0006;
inline constexpr uint16_t message_integrity = 0x0008;
inline constexpr uint16_t error_code = 0x0009;
inline constexpr uint16_t unknown_attributes = 0x000a;
inline constexpr uint16_t xor_mapped_address = 0x0020;
inline constexpr uint16_t priority = 0x0024;          // RFC 8445 16.1
inline constexpr uint16_t use_candidate = 0x0025;     // RFC 8445 16.1
inline constexpr uint16_t software = 0x8022;
inline constexpr uint16_t fingerprint = 0x8028;
inline constexpr uint16_t ice_controlled = 0x8029;    // RFC 8445 16.1
inline constexpr uint16_t ice_controlling = 0x802a;   // RFC 8445 16.1
// Stentor's own, comprehension-optional, so any STUN stack can carry them.
// STENTOR-LEAVE: value 4 zero bytes; in an authenticated request it means
// "remove me now" (the response is still a success).
inline constexpr uint16_t stentor_leave = 0xc001;
// STENTOR-RETRY-AFTER: u32 milliseconds, in 429 error responses.
inline constexpr uint16_t stentor_retry_after = 0xc002;
// STENTOR-COOKIE: cookie_len opaque bytes. Every answer of the relay carries
// one, made for the address the request came from; every request but a
// leave must echo a recent one (return routability, docs/join.md "The
// cookie"): a request without it is answered 438 with a fresh one and
// changes nothing.
inline constexpr uint16_t stentor_cookie = 0xc003;
}  // namespace attr

inline constexpr uint8_t family_ipv4 = 0x01;
inline constexpr uint8_t family_ipv6 = 0x02;   // RFC 8489 14.1

// Bounds. A join request is 104 bytes (USERNAME 48 + MI + FP), 136 with the
// PRIORITY and ICE-CONTROLLING of an ICE check; browsers' checks are ~100-160.
// Refusing anything longer than a minimal-MTU UDP payload (576 - 20 - 8)
// before the CRC and the HMAC bounds what a forged request can cost.
inline constexpr std::size_t max_request_len = 548;
// A join token is 48 characters; 128 leaves room for an ICE username
// "token:ufrag" with a browser's ufrag (4..32 characters in practice).
inline constexpr std::size_t max_username_len = 128;
// A join token's length (join_token.h's token_text_len): parse_request
// recognises the request layout of stentor-listener by it (stun.cc).
inline constexpr std::size_t fixed_username_len = 48;
// RFC 8489 14.8: a reason phrase (and SOFTWARE, 14.14) is fewer than 128
// characters, "as long as 509 bytes when encoding them and 763 bytes when
// decoding them".
inline constexpr std::size_t max_text_chars = 127;
inline constexpr std::size_t max_text_encode_len = 509;
inline constexpr std::size_t max_text_decode_len = 763;

// ---------------------------------------------------------------- refusals

// Every reason parse_request (or parse_response) refuses a message, in the
// order the checks run. _(name, text). The data plane exports them as
// drop/join/<name>: append only, one cause per name.
#define STENTOR_FOREACH_STUN_ERROR(_)                                                                        \
    _(too_short, "shorter than the 20-byte STUN header")                                                     \
    _(too_long, "longer than max_request_len (548): never a join request, refused before any CRC or MAC")    \
    _(not_stun, "top two bits of the first byte not 0 (RFC 8489 5, RFC 7983)")                               \
    _(bad_cookie, "magic cookie is not 0x2112A442 (RFC 5389 and later only)")                                \
    _(bad_length, "header length is not the UDP payload length - 20, or not a multiple of 4")               \
    _(wrong_type, "not a Binding Request (at the relay) / not a Binding response (at a client)")            \
    _(bad_attribute, "attribute header or value (with padding) runs past the end of the message")           \
    _(attribute_after_fingerprint, "an attribute follows FINGERPRINT, which must be last")                   \
    _(attribute_after_integrity, "an attribute other than FINGERPRINT follows MESSAGE-INTEGRITY")           \
    _(unknown_comprehension_required, "comprehension-required attribute we do not implement (RFC 8489 would answer 420; unauthenticated input gets nothing)") \
    _(duplicate_attribute, "second USERNAME, STENTOR-LEAVE, STENTOR-COOKIE, XOR-MAPPED-ADDRESS, ERROR-CODE or RETRY-AFTER")   \
    _(bad_attribute_value, "known attribute with a wrong length or value (empty USERNAME, MI not 20 bytes, ...)") \
    _(no_username, "no USERNAME")                                                                            \
    _(username_too_long, "USERNAME longer than max_username_len (128)")                                      \
    _(no_integrity, "no MESSAGE-INTEGRITY")                                                                  \
    _(no_fingerprint, "no FINGERPRINT")                                                                      \
    _(bad_fingerprint, "FINGERPRINT is not CRC-32 of the message XOR 0x5354554E")

enum class stun_error : uint8_t {
    ok = 0,
#define STENTOR_STUN_ERROR_ENUM(n, t) n,
    STENTOR_FOREACH_STUN_ERROR(STENTOR_STUN_ERROR_ENUM)
#undef STENTOR_STUN_ERROR_ENUM
    count_
};

// "ok", "too_short", ...; "?" out of range. Static strings.
std::string_view error_name(stun_error e) noexcept;
std::string_view error_text(stun_error e) noexcept;

// ---------------------------------------------------------------- requests

// What a request that passed parse_request holds. Every pointer points into
// the message passed to parse_request; every offset lies inside it.
struct request_view {
    const uint8_t* txid = nullptr;     // 12 bytes
    const char* username = nullptr;    // not NUL-terminated
    uint16_t username_len = 0;         // 1 .. max_username_len
    uint16_t integrity_offset = 0;     // of the MESSAGE-INTEGRITY attribute header
    uint16_t length = 0;               // whole message (= the n that was parsed)
    bool leave = false;                // STENTOR-LEAVE present
    bool use_candidate = false;        // USE-CANDIDATE present (ICE nomination; informational)
    const uint8_t* cookie = nullptr;   // STENTOR-COOKIE's cookie_len bytes, nullptr when absent

    std::string_view user() const noexcept { return {username, username_len}; }
};

// Every check that needs no key, FINGERPRINT included. `p`, `n`: the UDP
// payload. Accepted: exactly one USERNAME, then MESSAGE-INTEGRITY, then
// FINGERPRINT last; any comprehension-optional attribute before MI (at
// most one STENTOR-LEAVE and one STENTOR-COOKIE, each of its one length);
// comprehension-required attributes only if known (USERNAME, PRIORITY,
// USE-CANDIDATE). `out` is written only on ok.
stun_error parse_request(const uint8_t* p, std::size_t n, request_view& out) noexcept;

// HMAC-SHA1 (RFC 2104) over the message up to MESSAGE-INTEGRITY, with the
// header length counting up to the end of MESSAGE-INTEGRITY (RFC 8489 14.5),
// keyed with the short-term password as is (RFC 8489 9.1.1; the relay's
// passwords are ASCII, so OpaqueString changes nothing). Compared in constant
// time. `msg` is the message parse_request accepted.
bool check_integrity(const uint8_t* msg, const request_view& v, const char* key, std::size_t key_len) noexcept;

// The same over any message whose MESSAGE-INTEGRITY attribute header is at
// `integrity_offset` (0 < offset, offset + 24 <= message length, multiple
// of 4; the caller's parser guarantees it).
bool check_integrity(const uint8_t* msg, std::size_t integrity_offset, const char* key, std::size_t key_len) noexcept;

// ---------------------------------------------------------------- builders

// Every builder writes into `out`, never past `out + cap`, and returns the
// message length, or 0 (nothing usable written) when the message does not fit
// or an argument is out of range. Messages end with MESSAGE-INTEGRITY (keyed
// with `key`) and FINGERPRINT.

// Binding Success Response: XOR-MAPPED-ADDRESS (the request's source as the
// relay saw it: the NAT's mapping), STENTOR-COOKIE when `cookie` is not
// null, MI, FP. 64 bytes for an IPv4 source, 76 for an IPv6 one (RFC 8489
// 14.2: the address XORed with the magic cookie followed by the
// transaction id); cookie_attr_len (20) more with the cookie.
inline constexpr std::size_t success_len = header_len + 12 + integrity_attr_len + fingerprint_attr_len;
inline constexpr std::size_t success_len6 = header_len + 24 + integrity_attr_len + fingerprint_attr_len;

// A transport address of either family, as XOR-MAPPED-ADDRESS carries it.
struct mapped_address {
    uint8_t family = family_ipv4;   // family_ipv4: addr[0..3]; family_ipv6: addr[0..15]
    uint8_t addr[16] = {};          // wire order
    uint16_t port = 0;              // host order
};

std::size_t build_success(uint8_t* out, std::size_t cap, const uint8_t* txid, const mapped_address& a,
                          const char* key, std::size_t key_len, const uint8_t* cookie = nullptr) noexcept;
// IPv4 in host order, as before.
std::size_t build_success(uint8_t* out, std::size_t cap, const uint8_t* txid, uint32_t ipv4, uint16_t port,
                          const char* key, std::size_t key_len) noexcept;

// Binding Error Response: ERROR-CODE (code 300..699, reason phrase),
// STENTOR-RETRY-AFTER when retry_after_ms != 0, STENTOR-COOKIE when
// `cookie` is not null, MI, FP. The reason is cut,
// at a UTF-8 character boundary, to 127 characters and 509 bytes (RFC 8489
// 14.8) and to what fits in `cap`: the relay passes cap = request length, so
// a response is never larger than its request. 0 when even an empty reason
// does not fit (error_fixed_len(...) bytes) or the code is out of range.
inline constexpr std::size_t error_fixed_len(uint32_t retry_after_ms, bool cookie = false) noexcept {
    return header_len + attr_header_len + 4 + (retry_after_ms ? attr_header_len + 4 : 0) +
           (cookie ? cookie_attr_len : 0) + integrity_attr_len + fingerprint_attr_len;
}
std::size_t build_error(uint8_t* out, std::size_t cap, const uint8_t* txid, uint16_t code, std::string_view reason,
                        uint32_t retry_after_ms, const char* key, std::size_t key_len,
                        const uint8_t* cookie = nullptr) noexcept;

// What a client adds to its Binding Request besides USERNAME, MI and FP.
struct request_options {
    bool leave = false;           // STENTOR-LEAVE: remove me
    bool ice = false;             // PRIORITY + ICE-CONTROLLING, as an ICE connectivity check carries
    uint32_t priority = 0;        // with ice
    uint64_t tie_breaker = 0;     // with ice
    bool use_candidate = false;   // USE-CANDIDATE (aggressive nomination); needs ice
    std::string_view software{};  // SOFTWARE when not empty (at most 127 characters, 509 bytes, else 0 is returned)
    const uint8_t* cookie = nullptr;   // STENTOR-COOKIE (cookie_len bytes): the last one the relay sent
};

// Binding Request for clients and tests. `username`: 1..max_username_len
// bytes. Order: [SOFTWARE] [PRIORITY ICE-CONTROLLING [USE-CANDIDATE]]
// USERNAME [STENTOR-COOKIE] [STENTOR-LEAVE] MI FP.
std::size_t build_request(uint8_t* out, std::size_t cap, const uint8_t* txid, std::string_view username,
                          const char* key, std::size_t key_len, const request_options& opt = {}) noexcept;

// ---------------------------------------------------------------- responses (client side)

struct response_view {
    const uint8_t* txid = nullptr;
    uint16_t type = 0;                 // binding_success or binding_error
    uint16_t integrity_offset = 0;
    uint32_t length = 0;               // up to 20 + 65535
    bool has_mapped = false;           // XOR-MAPPED-ADDRESS present
    uint8_t mapped_family = 0;         // family_ipv4 or family_ipv6
    uint32_t mapped_ipv4 = 0;          // host order (family_ipv4)
    uint8_t mapped_ipv6[16] = {};      // wire order (family_ipv6)
    uint16_t mapped_port = 0;
    uint16_t error_code = 0;           // 300..699 when ERROR-CODE is present, else 0
    const char* reason = nullptr;      // ERROR-CODE reason phrase, not NUL-terminated
    uint16_t reason_len = 0;
    uint32_t retry_after_ms = 0;       // STENTOR-RETRY-AFTER, 0 when absent
    bool has_cookie = false;           // STENTOR-COOKIE present
    uint8_t cookie[cookie_len] = {};   // its value: echo it in the next request

    std::string_view reason_phrase() const noexcept { return {reason, reason_len}; }
};

// The client's twin of parse_request for the relay's answers: a Binding
// success or error response with MESSAGE-INTEGRITY and a correct FINGERPRINT
// (a response without MI is refused: an unauthenticated answer proves
// nothing). Known attributes: XOR-MAPPED-ADDRESS (IPv4 or IPv6), ERROR-CODE,
// MAPPED-ADDRESS, UNKNOWN-ATTRIBUTES, STENTOR-RETRY-AFTER, STENTOR-COOKIE,
// SOFTWARE.
// No length cap beyond the 16-bit header length. Then check_integrity(msg,
// view.integrity_offset, ...) and compare the transaction id.
stun_error parse_response(const uint8_t* p, std::size_t n, response_view& out) noexcept;

// FINGERPRINT value over `n` bytes: CRC-32 (ISO-HDLC, as zlib's and gzip's;
// computed by ISA-L) XOR 0x5354554E.
uint32_t fingerprint(const uint8_t* p, std::size_t n) noexcept;

}  // namespace stentor::stun
