// Feeding OpenSSL's SHA-1 and SHA-256 block functions (SHA1_Transform,
// SHA256_Transform: one compression each, SHA-NI where the CPU has it) with
// blocks and chaining values built in 16-byte lanes. Private to the two
// MACs of the join path: the token MAC (join_token.cc) and STUN's
// MESSAGE-INTEGRITY (stun.cc). The compression is the library's; this file
// only lays out blocks (RFC 6234's padding) and moves state words.
//
// Why lanes and not memcpy into a byte array: the SHA-NI code loads the
// block and the state 16 bytes at a time. A load that overlaps several
// narrower stores still in the store buffer (memcpy of 15 or 20 bytes, a
// padding byte, a length written byte by byte, SHA1_Init's five words)
// cannot be forwarded and waits for them to reach L1, and the compression
// cannot start before it. Written as whole aligned lanes, every load is
// forwarded from one store. Measured on the 2.1 GHz Xeon (SHA-NI; a shared
// VM, so ranges over runs, CPU time): the token MAC took 146-170 ns through
// SHA256_Update/Final, 200-225 ns through SHA256_Transform with the block
// built by memcpy and byte stores, 92-110 ns with lanes; two bare chained
// SHA256_Transform calls take 107-110 ns.
//
// SSE2 only (the x86-64 baseline): stun.cc is also built into
// stentor-listener, which does not get libdpdk's -march=corei7.
#pragma once

#include <emmintrin.h>

#include <cstddef>
#include <cstdint>

#if !defined(__SSE2__)
#error "sha_block.h: the join MACs are written for x86-64 (SSE2)"
#endif

namespace stentor::sha {

using v128 = __m128i;

inline constexpr std::size_t block_len = 64;

struct alignas(16) block {
    v128 lane[4];
    const unsigned char* bytes() const noexcept { return reinterpret_cast<const unsigned char*>(lane); }
};

inline v128 load(const void* p) noexcept { return _mm_loadu_si128(static_cast<const v128*>(p)); }
inline void store(void* p, v128 v) noexcept { _mm_storeu_si128(static_cast<v128*>(p), v); }

// Each 32-bit word byte-swapped (SHA's big-endian words <-> host order).
inline v128 bswap32(v128 x) noexcept {
    x = _mm_shufflehi_epi16(_mm_shufflelo_epi16(x, 0xb1), 0xb1);   // swap the 16-bit halves
    return _mm_or_si128(_mm_slli_epi16(x, 8), _mm_srli_epi16(x, 8));
}

namespace detail {
alignas(16) inline constexpr uint8_t keep_mask[32] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
alignas(16) inline constexpr uint8_t end_marker[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80};
}  // namespace detail

// x with only its first n bytes kept (0 <= n <= 16).
inline v128 keep(v128 x, std::size_t n) noexcept {
    return _mm_and_si128(x, load(detail::keep_mask + 16 - n));
}

// A lane with 0x80 (the padding's first byte) at byte k (0 <= k <= 15).
inline v128 end_marker_at(std::size_t k) noexcept { return load(detail::end_marker + 16 - k); }

// A lane whose bytes 8..15 are `bits` big-endian: the message length that
// ends the last block.
inline v128 length_lane(uint64_t bits) noexcept {
    return _mm_set_epi32(static_cast<int>(__builtin_bswap32(static_cast<uint32_t>(bits))),
                         static_cast<int>(__builtin_bswap32(static_cast<uint32_t>(bits >> 32))), 0, 0);
}

// Whether the MAC bytes at a and b are equal, in time that does not depend
// on where they differ: one lane compare (and a word for SHA-1's last 4
// bytes), no branch before the answer. CRYPTO_memcmp does the same a byte
// at a time; for MESSAGE-INTEGRITY's 20 bytes it was ~6% of the check in a
// perf profile of bench_join_verify.
inline bool equal16(v128 a, v128 b) noexcept { return _mm_movemask_epi8(_mm_cmpeq_epi8(a, b)) == 0xffff; }
inline bool equal20(const uint8_t* a, const uint8_t* b) noexcept {
    uint32_t ta, tb;
    __builtin_memcpy(&ta, a + 16, 4);
    __builtin_memcpy(&tb, b + 16, 4);
    const uint32_t diff = (static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(load(a), load(b)))) ^ 0xffffu) | (ta ^ tb);
    return diff == 0;
}

}  // namespace stentor::sha
