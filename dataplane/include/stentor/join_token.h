// Join tokens (issue 11 item 1; docs/join.md): what a listener presents as
// the STUN USERNAME of its join request, and the password (the STUN
// short-term key) both sides derive from it. The control plane mints them,
// the data plane verifies them per packet with the same code.
//
// Token v1: 36 raw bytes, carried as base64url without padding (48 chars).
//   0  u8  version = 1
//   1  u8  key_id (1..255; 0 invalid)
//   2  u32 session_id (big-endian)
//   6  u8  tier
//   7  u8  flags (0; anything else invalid in v1)
//   8  u32 expiry, unix seconds (big-endian)
//  12  u64 nonce (random: the control plane's CSPRNG)
//  20  16-byte tag
// mac = HMAC-SHA256(K[key_id], "stentor-join-v1" || bytes 0..19);
// tag = mac[0..15]; password = base64url(mac[16..31]) (22 chars).
// One MAC checks a token and derives its password: a forged token costs the
// relay exactly one MAC. The halves of a PRF output are independent, so the
// tag (public) says nothing of the password.
//
// Hot path: decode_token, token_mac, check_tag and password_of are
// noexcept and never allocate, lock or make a syscall. A MAC costs two
// SHA-256 compressions (the key's ipad/opad blocks are absorbed once, in
// token_key) and uses SHA-NI where the CPU has it (OpenSSL picks at load).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace stentor::join {

inline constexpr uint8_t token_version = 1;
inline constexpr size_t token_raw_len = 36;
inline constexpr size_t token_text_len = 48;          // base64url of 36 bytes, no padding
inline constexpr size_t token_signed_len = 20;        // bytes 0..19: what the MAC covers (after the label)
inline constexpr size_t token_tag_len = 16;
inline constexpr size_t token_mac_len = 32;           // HMAC-SHA256
inline constexpr size_t token_password_len = 22;      // base64url of mac[16..31], no padding
inline constexpr size_t token_secret_min = 32;        // bytes of key material, at least
inline constexpr char token_label[] = "stentor-join-v1";   // domain separation: 15 bytes, no NUL
inline constexpr size_t token_label_len = sizeof(token_label) - 1;

struct token_fields {
    uint8_t version = token_version;
    uint8_t key_id = 0;
    uint32_t session_id = 0;
    uint8_t tier = 0;
    uint8_t flags = 0;
    uint32_t expiry = 0;      // unix seconds
    uint64_t nonce = 0;
    bool operator==(const token_fields&) const = default;
};

// One key id's HMAC-SHA256 key, as the two SHA-256 chaining values after
// the ipad and the opad block (nothing else absorbed). Built once (control
// plane, when the keys load); a MAC copies the states and never touches the
// secret again. The states are opaque bytes here so that this contract
// needs no OpenSSL header; join_token.cc checks they are SHA256_CTX::h.
class token_key {
public:
    // The secret: at least token_secret_min bytes (a longer one is hashed
    // first, as HMAC does past 64 bytes). Throws std::invalid_argument if
    // shorter. The secret is not kept.
    token_key(const uint8_t* secret, size_t len);
    ~token_key();
    token_key(const token_key&) = default;
    token_key& operator=(const token_key&) = default;

    static constexpr size_t state_bytes = 32;   // SHA256_CTX::h, eight 32-bit words; checked in join_token.cc

private:
    friend void token_mac(const token_key&, const uint8_t*, uint8_t*) noexcept;
    friend void short_mac(const token_key&, const uint8_t*, size_t, uint8_t*) noexcept;
    alignas(16) unsigned char _inner[state_bytes];
    alignas(16) unsigned char _outer[state_bytes];
};

// Cheap checks only, no MAC: exactly token_text_len chars of the base64url
// alphabet, version 1, flags 0, key id not 0. Fills raw (the 36 bytes) and
// f. Expiry, session and key id's existence are the caller's to check.
bool decode_token(const char* s, size_t n, uint8_t raw[token_raw_len], token_fields& f) noexcept;

// The fields of a token decode_token accepted (no checks).
void fields_of(const uint8_t raw[token_raw_len], token_fields& f) noexcept;

// The 20 signed bytes of f into raw[0..19]; raw[20..35] (the tag) zeroed.
void pack_token(const token_fields& f, uint8_t raw[token_raw_len]) noexcept;

// mac = HMAC-SHA256(key, token_label || raw[0..19]).
void token_mac(const token_key& key, const uint8_t raw[token_raw_len], uint8_t out[token_mac_len]) noexcept;

// mac = HMAC-SHA256(key, msg[0..len)) for len <= short_mac_max: two
// SHA-256 blocks from the key's states, as token_mac (the join desk's
// cookies, control/join_desk.cc). Nothing for a longer message.
inline constexpr size_t short_mac_max = 55;
void short_mac(const token_key& key, const uint8_t* msg, size_t len, uint8_t out[token_mac_len]) noexcept;

// Whether raw's tag (bytes 20..35) is mac[0..15]; constant time.
bool check_tag(const uint8_t raw[token_raw_len], const uint8_t mac[token_mac_len]) noexcept;

// The token's password: base64url(mac[16..31]), 22 chars (not terminated).
void password_of(const uint8_t mac[token_mac_len], char out[token_password_len]) noexcept;

// base64url, no padding, of the 36 bytes (not terminated).
void encode_token(const uint8_t raw[token_raw_len], char out[token_text_len]) noexcept;

// Control plane: the token text for f (with f.key_id the id `key` is known
// by), and its password. Throws std::invalid_argument for fields
// decode_token would refuse (version, flags, key id 0), so every minted
// token passes the cheap checks.
std::string mint_token(const token_key& key, const token_fields& f, std::string& password);

}  // namespace stentor::join
