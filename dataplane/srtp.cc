// SRTP over libcrypto: see include/stentor/srtp.h for the split between
// immutable keys and the per-SSRC stream state, and for why not libsrtp2.
//
// Packet layouts (RFC 3711 3.1, RFC 7714 8 / libsrtp):
//   AES_CM_128_HMAC_SHA1_80: header | encrypted payload | MKI | tag (10)
//   AEAD_AES_128_GCM:        header | encrypted payload | tag (16) | MKI
// The header (with CSRCs and extension) is authenticated, never encrypted.
#define OPENSSL_SUPPRESS_DEPRECATED   // SHA1_Init & co.: deprecated in 3.0, still the only allocation-free HMAC (stun.cc)

#include "stentor/srtp.h"

#include <cstring>
#include <new>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

namespace stentor::srtp {

struct key {
    suite s;
    unsigned nb_users;
    uint8_t salt[14];                  // session salt: 14 bytes (AES-CM), 12 (GCM)
    SHA_CTX ipad;                      // HMAC-SHA1 of the session auth key, after its ipad block
    SHA_CTX opad;                      // ... and its opad block (AES-CM only)
    EVP_CIPHER_CTX* ctx[max_users];    // keyed with the session key; one per user, never shared
};

namespace {

constexpr unsigned sha1_block = 64;
constexpr unsigned auth_key_len = 20;  // RFC 3711 4.2: n_a = 160

inline uint16_t be16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline void put_be32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

// AES-CM PRF (RFC 3711 4.3.1, 4.3.3) with key derivation rate 0: x = label
// at byte 7 of the 112-bit master salt (a 96-bit GCM salt is padded with
// zeros, RFC 7714 11), keystream of AES-CTR under the master key from x.
bool kdf(const uint8_t* master_key, const uint8_t* salt14, uint8_t label, uint8_t* out, int n) noexcept {
    uint8_t iv[16]{};
    std::memcpy(iv, salt14, 14);
    iv[7] ^= label;
    uint8_t zeros[32]{};
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    if (c == nullptr) return false;
    int outl = 0;
    const bool ok = EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, master_key, iv) == 1 &&
                    EVP_EncryptUpdate(c, out, &outl, zeros, n) == 1 && outl == n;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

// HMAC-SHA1 (RFC 2104) of data || roc, truncated by the caller.
void hmac(const key& k, const uint8_t* data, uint32_t len, uint32_t roc, uint8_t out[SHA_DIGEST_LENGTH]) noexcept {
    uint8_t roc_be[4];
    put_be32(roc_be, roc);
    SHA_CTX c = k.ipad;
    SHA1_Update(&c, data, len);
    SHA1_Update(&c, roc_be, 4);
    uint8_t inner[SHA_DIGEST_LENGTH];
    SHA1_Final(inner, &c);
    c = k.opad;
    SHA1_Update(&c, inner, sizeof inner);
    SHA1_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
}

// IV of AES-CM (RFC 3711 4.1.1): salt * 2^16 ^ SSRC * 2^64 ^ index * 2^16.
void cm_iv(const key& k, const uint8_t* ssrc, uint64_t index, uint8_t iv[16]) noexcept {
    std::memcpy(iv, k.salt, 14);
    iv[14] = iv[15] = 0;
    for (int i = 0; i < 4; ++i) iv[4 + i] ^= ssrc[i];
    for (int i = 0; i < 6; ++i) iv[8 + i] ^= static_cast<uint8_t>(index >> (8 * (5 - i)));
}

// IV of AES-GCM (RFC 7714 8.1): 00 00 | SSRC | ROC | SEQ, xor the salt.
void gcm_iv(const key& k, const uint8_t* ssrc, uint64_t index, uint8_t iv[12]) noexcept {
    iv[0] = iv[1] = 0;
    std::memcpy(iv + 2, ssrc, 4);
    put_be32(iv + 6, static_cast<uint32_t>(index >> 16));
    iv[10] = static_cast<uint8_t>(index >> 8);
    iv[11] = static_cast<uint8_t>(index);
    for (int i = 0; i < 12; ++i) iv[i] ^= k.salt[i];
}

bool ctr_xor(EVP_CIPHER_CTX* c, const uint8_t iv[16], uint8_t* p, uint32_t n) noexcept {
    int outl = 0;
    if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, iv) != 1) return false;
    return n == 0 || (EVP_EncryptUpdate(c, p, &outl, p, static_cast<int>(n)) == 1 && outl == static_cast<int>(n));
}

// One key's try at an AES-CM packet: MAC first (nothing is decrypted for a
// forged packet), then the payload in place.
verdict cm_unprotect(const key& k, unsigned user, uint8_t* pkt, const rx_plan& p, unsigned mki_len) noexcept {
    const uint32_t auth_len = uint32_t{p.hdr_len} + p.body_len;
    uint8_t mac[SHA_DIGEST_LENGTH];
    hmac(k, pkt, auth_len, static_cast<uint32_t>(p.index >> 16), mac);
    if (CRYPTO_memcmp(mac, pkt + auth_len + mki_len, tag_len(suite::aes_cm_128_hmac_sha1_80)) != 0)
        return verdict::auth;
    uint8_t iv[16];
    cm_iv(k, pkt + 8, p.index, iv);
    return ctr_xor(k.ctx[user], iv, pkt + p.hdr_len, p.body_len) ? verdict::ok : verdict::auth;
}

// AES-GCM decrypts and checks the tag in one pass: into a scratch buffer,
// so that a failed try (another key, a forgery) leaves the packet intact.
verdict gcm_unprotect(const key& k, unsigned user, uint8_t* pkt, const rx_plan& p) noexcept {
    EVP_CIPHER_CTX* c = k.ctx[user];
    uint8_t iv[12];
    gcm_iv(k, pkt + 8, p.index, iv);
    uint8_t plain[2048];
    if (p.body_len > sizeof plain) return verdict::auth;
    int outl = 0, fin = 0;
    uint8_t* tag = pkt + p.hdr_len + p.body_len;
    if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, 0) != 1 ||
        EVP_CipherUpdate(c, nullptr, &outl, pkt, p.hdr_len) != 1 ||
        (p.body_len > 0 && EVP_CipherUpdate(c, plain, &outl, pkt + p.hdr_len, p.body_len) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 || EVP_CipherFinal_ex(c, plain + outl, &fin) != 1)
        return verdict::auth;
    std::memcpy(pkt + p.hdr_len, plain, p.body_len);
    OPENSSL_cleanse(plain, p.body_len);
    return verdict::ok;
}

}  // namespace

key* key_create(suite s, const uint8_t* master, size_t len, unsigned nb_users) noexcept {
    if (len != master_len(s) || nb_users == 0 || nb_users > max_users) return nullptr;
    key* k = new (std::nothrow) key{};
    if (k == nullptr) return nullptr;
    k->s = s;
    uint8_t salt14[14]{};
    std::memcpy(salt14, master + master_key_len, len - master_key_len);
    uint8_t enc[16];
    uint8_t auth[sha1_block]{};
    bool ok = kdf(master, salt14, 0x00, enc, 16) &&
              kdf(master, salt14, 0x02, k->salt, s == suite::aead_aes_128_gcm ? 12 : 14);
    if (ok && s == suite::aes_cm_128_hmac_sha1_80) {
        ok = kdf(master, salt14, 0x01, auth, auth_key_len);
        uint8_t pad[sha1_block];
        for (unsigned i = 0; i < sha1_block; ++i) pad[i] = auth[i] ^ 0x36;
        SHA1_Init(&k->ipad);
        SHA1_Update(&k->ipad, pad, sha1_block);
        for (unsigned i = 0; i < sha1_block; ++i) pad[i] = auth[i] ^ 0x5c;
        SHA1_Init(&k->opad);
        SHA1_Update(&k->opad, pad, sha1_block);
        OPENSSL_cleanse(pad, sizeof pad);
    }
    const EVP_CIPHER* cipher = s == suite::aead_aes_128_gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr();
    for (unsigned u = 0; ok && u < nb_users; ++u) {
        k->ctx[u] = EVP_CIPHER_CTX_new();
        k->nb_users = u + 1;
        ok = k->ctx[u] != nullptr && EVP_EncryptInit_ex(k->ctx[u], cipher, nullptr, enc, nullptr) == 1;
    }
    OPENSSL_cleanse(enc, sizeof enc);
    OPENSSL_cleanse(auth, sizeof auth);
    OPENSSL_cleanse(salt14, sizeof salt14);
    if (!ok) {
        key_free(k);
        return nullptr;
    }
    return k;
}

void key_free(key* k) noexcept {
    if (k == nullptr) return;
    for (unsigned u = 0; u < k->nb_users; ++u) EVP_CIPHER_CTX_free(k->ctx[u]);   // cleanses the key schedule
    OPENSSL_cleanse(k, sizeof *k);
    delete k;
}

uint32_t rtp_header_len(const uint8_t* pkt, uint32_t len) noexcept {
    if (len < 12) return 0;
    uint32_t hdr = 12 + 4u * (pkt[0] & 0x0f);
    if (pkt[0] & 0x10) {
        if (hdr + 4 > len) return 0;
        hdr += 4 + 4u * be16(pkt + hdr + 2);
    }
    return hdr <= len ? hdr : 0;
}

bool estimate_index(uint64_t top, bool started, uint16_t seq, uint64_t* index) noexcept {
    if (!started) {
        *index = seq;
        return true;
    }
    const uint32_t s_l = static_cast<uint16_t>(top);
    const uint64_t roc = top >> 16;
    uint64_t v = roc;
    if (s_l < 32768) {
        if (seq > s_l + 32768u) {
            if (roc == 0) return false;
            v = roc - 1;
        }
    } else if (s_l - 32768u > seq) {
        v = roc + 1;
    }
    *index = (v << 16 | seq) & 0xffffffffffffULL;
    return true;
}

verdict rx_check(const keyset& ks, const stream& st, const uint8_t* pkt, uint32_t len, uint32_t hdr_len,
                 rx_plan* plan) noexcept {
    if (ks.nb_keys == 0) return verdict::unknown_mki;
    const suite s = static_cast<suite>(ks.suite_id);
    const uint32_t trailer = tag_len(s) + ks.mki_len;
    if (hdr_len < 12 || len < hdr_len + trailer + 1) return verdict::truncated;
    plan->hdr_len = static_cast<uint16_t>(hdr_len);
    plan->body_len = static_cast<uint16_t>(len - hdr_len - trailer);
    if (ks.mki_len > 0) {
        const uint8_t* m = pkt + (s == suite::aead_aes_128_gcm ? len - ks.mki_len : len - trailer);
        uint32_t v = 0;
        for (unsigned i = 0; i < ks.mki_len; ++i) v = v << 8 | m[i];
        unsigned k = 0;
        while (k < ks.nb_keys && ks.mki[k] != v) ++k;
        if (k == ks.nb_keys) return verdict::unknown_mki;
        plan->key = static_cast<uint8_t>(k);
    } else {
        plan->key = static_cast<uint8_t>(ks.nb_keys - 1);
    }
    uint32_t ssrc_be;
    std::memcpy(&ssrc_be, pkt + 8, 4);
    const bool same = st.started != 0 && st.ssrc_be == ssrc_be;
    plan->fresh = same ? 0 : 1;
    uint64_t top = st.top, window = st.window;
    bool known = same;
    plan->mark = 0;
    if (!same && ks.floor != 0 && ks.floor_ssrc_be == ssrc_be) [[unlikely]] {
        // A fresh stream of an SSRC the journal has a mark for (a restart,
        // an RSS move, a speaker added again): it goes on from the mark,
        // and everything up to the mark counts as seen.
        top = ks.floor;
        window = ~uint64_t{0};
        known = true;
        plan->mark = ks.floor;
    }
    if (!estimate_index(top, known, be16(pkt + 2), &plan->index)) return verdict::replay;
    if (known && plan->index <= top) {
        const uint64_t delta = top - plan->index;
        if (delta >= replay_window || (window >> delta) & 1) return verdict::replay;
    }
    return verdict::ok;
}

verdict rx_unprotect(const keyset& ks, unsigned user, uint8_t* pkt, const rx_plan& plan) noexcept {
    const suite s = static_cast<suite>(ks.suite_id);
    // With an MKI the packet names its key; without, an overlap of several
    // keys costs one try each (newest first).
    const unsigned tries = ks.mki_len > 0 ? 1 : ks.nb_keys;
    for (unsigned t = 0; t < tries; ++t) {
        const key* k = ks.keys[ks.mki_len > 0 ? plan.key : ks.nb_keys - 1 - t];
        if (k == nullptr || user >= k->nb_users) return verdict::auth;
        const verdict v = s == suite::aead_aes_128_gcm ? gcm_unprotect(*k, user, pkt, plan)
                                                       : cm_unprotect(*k, user, pkt, plan, ks.mki_len);
        if (v == verdict::ok) return v;
    }
    return verdict::auth;
}

void rx_commit(stream& st, const rx_plan& plan, uint32_t ssrc_be) noexcept {
    if (plan.fresh) {
        st.ssrc_be = ssrc_be;
        st.started = 1;
        if (plan.mark == 0) {
            st.top = plan.index;
            st.window = 1;
            return;
        }
        // From the journal's mark, as rx_check judged it: everything up to
        // it seen, then this packet (above it: rx_check refused the rest).
        // Starting from this packet alone forgot that, and a capture of the
        // 63 indices below it (the mark among them) played once more.
        st.top = plan.mark;
        st.window = ~uint64_t{0};
    }
    if (plan.index > st.top) {
        const uint64_t shift = plan.index - st.top;
        st.window = shift >= 64 ? 1 : (st.window << shift) | 1;
        st.top = plan.index;
    } else {
        st.window |= uint64_t{1} << (st.top - plan.index);
    }
}

uint64_t tx_index(stream& st, uint16_t seq, uint32_t ssrc_be) noexcept {
    const bool same = st.started != 0 && st.ssrc_be == ssrc_be;
    uint64_t index;
    if (!estimate_index(st.top, same, seq, &index)) index = seq;   // before index 0: ROC 0
    if (!same || index > st.top) {
        st.top = index;
        st.ssrc_be = ssrc_be;
        st.started = 1;
    }
    return index;
}

uint32_t protect(const keyset& ks, unsigned user, uint64_t index, uint8_t* pkt, uint32_t len,
                 uint32_t hdr_len) noexcept {
    if (ks.active >= ks.nb_keys || hdr_len < 12 || hdr_len > len) return 0;
    const key* k = ks.keys[ks.active];
    if (k == nullptr || user >= k->nb_users) return 0;
    const uint32_t body = len - hdr_len;
    uint8_t mki[max_mki_len];
    for (unsigned i = 0; i < ks.mki_len; ++i)
        mki[i] = static_cast<uint8_t>(ks.mki[ks.active] >> (8 * (ks.mki_len - 1 - i)));
    if (k->s == suite::aead_aes_128_gcm) {
        EVP_CIPHER_CTX* c = k->ctx[user];
        uint8_t iv[12];
        gcm_iv(*k, pkt + 8, index, iv);
        int outl = 0, fin = 0;
        if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, 1) != 1 ||
            EVP_CipherUpdate(c, nullptr, &outl, pkt, static_cast<int>(hdr_len)) != 1 ||
            (body > 0 && EVP_CipherUpdate(c, pkt + hdr_len, &outl, pkt + hdr_len, static_cast<int>(body)) != 1) ||
            EVP_CipherFinal_ex(c, pkt + len, &fin) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, pkt + len) != 1)
            return 0;
        std::memcpy(pkt + len + 16, mki, ks.mki_len);
        return len + 16 + ks.mki_len;
    }
    uint8_t iv[16];
    cm_iv(*k, pkt + 8, index, iv);
    if (!ctr_xor(k->ctx[user], iv, pkt + hdr_len, body)) return 0;
    std::memcpy(pkt + len, mki, ks.mki_len);
    uint8_t mac[SHA_DIGEST_LENGTH];
    hmac(*k, pkt, len, static_cast<uint32_t>(index >> 16), mac);
    std::memcpy(pkt + len + ks.mki_len, mac, 10);
    return len + ks.mki_len + 10;
}

}  // namespace stentor::srtp
