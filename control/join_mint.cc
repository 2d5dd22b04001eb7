#include "join_mint.h"

#include <openssl/rand.h>

#include <cstring>

namespace stentor::control {

token_minter::token_minter(const join_config& jc) : _ttl_s(jc.token_ttl_s) {
    const join_key* k = jc.key(jc.mint_key_id);
    if (k == nullptr) return;
    _key.emplace(k->secret.data(), k->secret.size());
    _key_id = k->id;
}

std::vector<minted_token> token_minter::mint(uint32_t session, uint8_t tier, uint32_t expiry, size_t count) const {
    if (!_key) throw std::logic_error("join tokens are not configured");
    if (count > (1u << 24)) throw std::invalid_argument("at most 16777216 tokens per call");
    std::vector<uint64_t> nonces(count);
    if (count != 0 && RAND_bytes(reinterpret_cast<unsigned char*>(nonces.data()), static_cast<int>(count * sizeof(uint64_t))) != 1)
        throw std::runtime_error("the CSPRNG (RAND_bytes) failed");
    std::vector<minted_token> out(count);
    join::token_fields f;
    f.key_id = static_cast<uint8_t>(_key_id);
    f.session_id = session;
    f.tier = tier;
    f.expiry = expiry;
    for (size_t i = 0; i < count; ++i) {
        f.nonce = nonces[i];
        out[i].token = join::mint_token(*_key, f, out[i].password);
    }
    return out;
}

}  // namespace stentor::control
