// MESSAGE-INTEGRITY in lanes (join_mac.h). ipsec-mb's job API: an HMAC-SHA1
// job takes the message, its length, and the SHA-1 states after the key's
// ipad and opad blocks (the layout OpenSSL's SHA_CTX h0..h4 has, checked by
// tests/unit/test_join_mac.cc against stun::check_integrity); the hash-burst
// call runs a whole array of them in the manager's lanes and returns when
// all are done.
#define NO_COMPAT_IMB_API_053   // ipsec-mb's 0.53 names (SHA1, SHA_256, ...) collide with OpenSSL's
#include "join_mac.h"

#include <intel-ipsec-mb.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "sha_block.h"
#include "stentor/stun.h"
#include "stun_mac.h"

namespace stentor::dp {

struct mi_batcher {
    IMB_MGR* mgr = nullptr;
    unsigned lanes = 0;          // 0: one by one
    const char* arch = "none";
    IMB_JOB jobs[mi_max_batch];
    alignas(16) uint32_t ipad[mi_max_batch][8];   // SHA-1 states (5 words), 32-byte slots
    alignas(16) uint32_t opad[mi_max_batch][8];
    alignas(16) uint8_t tag[mi_max_batch][32];
    uint8_t saved_len[mi_max_batch][2];
};

mi_batcher* mi_batcher_create(mi_mode mode) {
    auto* b = static_cast<mi_batcher*>(std::aligned_alloc(64, (sizeof(mi_batcher) + 63) & ~std::size_t{63}));
    if (b == nullptr) return nullptr;
    new (b) mi_batcher();
    if (mode == mi_mode::single) return b;
    b->mgr = alloc_mb_mgr(0);
    if (b->mgr == nullptr) {
        mi_batcher_destroy(b);
        return nullptr;
    }
    const uint64_t have = b->mgr->features;
    const bool avx512 = (have & IMB_CPUFLAGS_AVX512) == IMB_CPUFLAGS_AVX512;
    const bool avx2 = (have & IMB_CPUFLAGS_AVX2) == IMB_CPUFLAGS_AVX2;
    const bool sse = (have & IMB_CPUFLAGS_SSE) == IMB_CPUFLAGS_SSE;
    if (mode == mi_mode::best) mode = avx512 ? mi_mode::avx512 : avx2 ? mi_mode::avx2 : mi_mode::single;
    switch (mode) {
    case mi_mode::avx512:
        if (!avx512) break;
        init_mb_mgr_avx512(b->mgr);
        b->lanes = 16;
        b->arch = "avx512";
        return b;
    case mi_mode::avx2:
        if (!avx2) break;
        init_mb_mgr_avx2(b->mgr);
        b->lanes = 8;
        b->arch = "avx2";
        return b;
    case mi_mode::sse:
        if (!sse) break;
        init_mb_mgr_sse(b->mgr);
        b->lanes = 2;
        b->arch = "sse";
        return b;
    case mi_mode::single:
        free_mb_mgr(b->mgr);
        b->mgr = nullptr;
        return b;
    case mi_mode::best:
        break;
    }
    mi_batcher_destroy(b);
    return nullptr;
}

void mi_batcher_destroy(mi_batcher* b) {
    if (b == nullptr) return;
    if (b->mgr != nullptr) free_mb_mgr(b->mgr);
    b->~mi_batcher();
    std::free(b);
}

unsigned mi_lanes(const mi_batcher* b) noexcept { return b->lanes; }
const char* mi_arch(const mi_batcher* b) noexcept { return b->arch; }

namespace {

bool check_one(const mi_request& r) noexcept {
    return stun::check_integrity(r.msg, r.integrity_off, r.password, join_password_chars);
}

}  // namespace

void mi_check(mi_batcher* b, const mi_request* r, unsigned n, bool* ok) noexcept {
    // Whole groups of lanes go to ipsec-mb: a lane left empty costs as much
    // as a full one (a group of 1 took longer than SHA-NI alone).
    const unsigned grouped = b->lanes == 0 || n > mi_max_batch ? 0 : n - n % b->lanes;
    for (unsigned i = 0; i < grouped; ++i) {
        const mi_request& q = r[i];
        stun::hmac_sha1_key_states(q.password, join_password_chars, b->ipad[i], b->opad[i]);
        // MESSAGE-INTEGRITY covers the header with the length as if it
        // ended the message (RFC 8489 14.5).
        std::memcpy(b->saved_len[i], q.msg + 2, 2);
        const unsigned covered = q.integrity_off + stun::integrity_attr_len - stun::header_len;
        q.msg[2] = static_cast<uint8_t>(covered >> 8);
        q.msg[3] = static_cast<uint8_t>(covered);
        IMB_JOB& j = b->jobs[i];
        std::memset(&j, 0, sizeof j);
        j.hash_alg = IMB_AUTH_HMAC_SHA_1;
        j.cipher_mode = IMB_CIPHER_NULL;
        j.chain_order = IMB_ORDER_HASH_CIPHER;
        j.cipher_direction = IMB_DIR_ENCRYPT;
        j.src = q.msg;
        j.hash_start_src_offset_in_bytes = 0;
        j.msg_len_to_hash_in_bytes = q.integrity_off;
        j.auth_tag_output = b->tag[i];
        j.auth_tag_output_len_in_bytes = stun::hmac_sha1_len;
        j.u.HMAC._hashed_auth_key_xor_ipad = reinterpret_cast<const uint8_t*>(b->ipad[i]);
        j.u.HMAC._hashed_auth_key_xor_opad = reinterpret_cast<const uint8_t*>(b->opad[i]);
    }
    if (grouped > 0) {
        // Synchronous: every job is done when it returns. A count short of
        // `grouped` would be a job ipsec-mb refused: those are checked one
        // by one below instead of trusting their tags.
        const uint32_t done = IMB_SUBMIT_HASH_BURST_NOCHECK(b->mgr, b->jobs, grouped, IMB_AUTH_HMAC_SHA_1);
        for (unsigned i = 0; i < grouped; ++i) {
            const mi_request& q = r[i];
            std::memcpy(q.msg + 2, b->saved_len[i], 2);
            ok[i] = i < done
                        ? sha::equal20(b->tag[i], q.msg + q.integrity_off + stun::attr_header_len)
                        : check_one(q);
        }
    }
    for (unsigned i = grouped; i < n; ++i) ok[i] = check_one(r[i]);
}

}  // namespace stentor::dp
