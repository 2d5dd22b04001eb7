// Minting join tokens (docs/join.md): the control plane's side of
// stentor/join_token.h. One minter per running relay, built from the
// profile's [join] at start; mint() is const and thread-safe (the key's
// SHA-256 states are copied per MAC), so API threads mint in parallel
// without any lock of the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "stentor/join_token.h"

namespace stentor::control {

struct minted_token {
    std::string token;      // 48 base64url chars: the STUN USERNAME
    std::string password;   // 22 base64url chars: the STUN short-term key
};

class token_minter {
public:
    // The key of jc.mint_key_id; none (configured() false) without keys.
    explicit token_minter(const join_config& jc);

    bool configured() const { return _key.has_value(); }
    unsigned key_id() const { return _key_id; }
    unsigned default_ttl_s() const { return _ttl_s; }

    // `count` tokens for (session, tier) expiring at `expiry` (unix
    // seconds), each with its own random nonce from OpenSSL's CSPRNG
    // (RAND_bytes, one call for the batch). Throws std::logic_error if not
    // configured, std::runtime_error if the CSPRNG fails.
    std::vector<minted_token> mint(uint32_t session, uint8_t tier, uint32_t expiry, size_t count) const;

private:
    std::optional<join::token_key> _key;
    unsigned _key_id = 0;
    unsigned _ttl_s = 3600;
};

}  // namespace stentor::control
