// The HMAC-SHA1 key half of MESSAGE-INTEGRITY, for the burst verifier
// (join_mac.cc): private to dataplane/, implemented in stun.cc with the
// rest of the STUN MACs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stentor::stun {

// The SHA-1 chaining values (h0..h4, host order, as OpenSSL's SHA_CTX and
// ipsec-mb's HMAC jobs hold them) after the key's ipad block and after its
// opad block: two compressions (RFC 2104; a key over 64 bytes is hashed
// first).
void hmac_sha1_key_states(const char* key, std::size_t key_len, uint32_t ipad[5], uint32_t opad[5]) noexcept;

}  // namespace stentor::stun
