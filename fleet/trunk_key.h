// Trunk authentication (docs/fleet.md "Trunk authentication"): the keys an
// origin protects a session's trunk copies with and an edge checks them
// with, derived from a secret every relay of the fleet holds in a file
// ([fleet] trunk_key_file) and never from anything in etcd.
//
//   key(session S, origin O, epoch E) = HKDF-SHA256(ikm = the fleet secret,
//       salt = "stentor trunk v1",
//       info = "session=<S> origin=<O> epoch=<E as 16 hex digits>",
//       L = 28): SRTP master key (16) || master salt (12) of AEAD_AES_128_GCM.
//
// E is the origin's epoch: 64 random bits it draws at every start and
// advertises in its relay record ("trunk_epoch"), so a restarted origin
// never reuses a key (and its SRTP packet indexes) with a new sequence.
// A registry writer can change the epoch it reads, but without the secret
// it cannot derive the key: changing it only breaks the trunk.
//
// Pure but for draw_trunk_epoch (the kernel's random bytes); no control/
// include (fleet/trunks.h): the key travels as bytes in a wiped struct and
// control/ turns it into a control::srtp_key_spec.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace stentor::fleet {

inline constexpr size_t trunk_secret_len = 32;    // the file: 64 hex digits
inline constexpr size_t trunk_master_len = 28;    // AEAD_AES_128_GCM master key (16) || salt (12)
inline constexpr std::string_view trunk_kdf_salt = "stentor trunk v1";

// Bytes wiped (OPENSSL_cleanse) when they go.
template <size_t N>
struct wiped_array {
    std::array<uint8_t, N> bytes{};
    wiped_array() = default;
    wiped_array(const wiped_array&) = default;
    wiped_array& operator=(const wiped_array&) = default;
    ~wiped_array();
};
using trunk_secret = wiped_array<trunk_secret_len>;
using trunk_master = wiped_array<trunk_master_len>;

// The text of a trunk key file, whitespace around it already trimmed:
// exactly 64 hex digits (either case), not all zero. nullopt and *why
// ("byte 5 is not a hex digit ..."; never a byte of the key) otherwise.
std::optional<trunk_secret> parse_trunk_secret(std::string_view text, std::string* why);

// The epoch as records carry it: 16 lowercase hex digits.
std::string format_trunk_epoch(uint64_t epoch);
// Only that form (what format_trunk_epoch writes); nullopt otherwise.
std::optional<uint64_t> parse_trunk_epoch(std::string_view text);
// 64 bits from the kernel (getrandom); throws std::runtime_error if it
// cannot give them.
uint64_t draw_trunk_epoch();

// "session=7 origin=o1 epoch=0123456789abcdef": HKDF's info.
std::string trunk_kdf_info(uint32_t session, std::string_view origin, uint64_t epoch);
// The master key and salt of (session, origin, epoch). Throws
// std::runtime_error when OpenSSL refuses (never with a 32-byte secret).
trunk_master derive_trunk_key(std::span<const uint8_t> secret, uint32_t session, std::string_view origin,
                              uint64_t epoch);
// The SRTP key id both ends use for it: "trunk-" + the epoch's 16 hex
// digits, so a restarted origin's key never shares the old one's id (a
// speaker's key set holds up to 4: the old and the new one overlap while
// an edge moves to a restarted origin's key).
std::string trunk_key_id(uint64_t epoch);

}  // namespace stentor::fleet
