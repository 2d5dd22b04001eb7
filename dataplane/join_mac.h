// MESSAGE-INTEGRITY of a burst of join requests at once (join.cc's
// join_verify_burst; docs/join.md "Who checks what").
//
// One request's MESSAGE-INTEGRITY is five SHA-1 compressions: the key's
// ipad and opad blocks (the key is the token's password, so nothing can be
// precomputed), two blocks of message and the outer block. SHA-NI does one
// compression at a time; Intel's ipsec-mb library (the one DPDK's aesni_mb
// PMD is built on) runs 16 HMAC-SHA1 messages side by side in AVX-512 lanes
// (8 in AVX2). So the batcher computes each request's ipad and opad states
// with SHA-NI (stun_mac.h) and hands the message blocks and the outer block
// of whole groups of `lanes()` requests to ipsec-mb as HMAC jobs with those
// states; a remainder smaller than a group, and CPUs without AVX2, go
// through stun::check_integrity one by one. Measured with bench_join_verify
// (BM_check_integrity vs BM_integrity_burst, same machine and load):
// figures in docs/performance.md.
//
// Per lcore (a batcher is not thread-safe); created and destroyed off the
// hot path; check() allocates nothing and makes no syscall.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stentor::dp {

inline constexpr std::size_t join_password_chars = 22;

struct mi_request {
    // The STUN message. Bytes 2..3 (the length) are set to what
    // MESSAGE-INTEGRITY covers while the MAC runs and restored before
    // check() returns.
    uint8_t* msg;
    uint16_t integrity_off;       // MESSAGE-INTEGRITY's offset (parse_request's)
    const char* password;         // join_password_chars characters: the key
};

struct mi_batcher;

enum class mi_mode : uint8_t {
    best,      // ipsec-mb's widest lanes when the CPU has AVX2 or AVX-512, else one by one
    single,    // always one by one (stun::check_integrity)
    sse,       // ipsec-mb's SSE manager (SHA-NI, 2 lanes): measured, for the benchmark and tests
    avx2,      // 8 lanes
    avx512,    // 16 lanes
};

// nullptr if ipsec-mb cannot run `mode` on this CPU (or out of memory).
mi_batcher* mi_batcher_create(mi_mode mode = mi_mode::best);
void mi_batcher_destroy(mi_batcher* b);

// Requests grouped per call at most.
inline constexpr unsigned mi_max_batch = 64;

// ok[i]: whether request i's MESSAGE-INTEGRITY verifies (constant-time
// compare). n <= mi_max_batch.
void mi_check(mi_batcher* b, const mi_request* r, unsigned n, bool* ok) noexcept;

// Requests per group (0: one by one) and the ipsec-mb architecture in use.
unsigned mi_lanes(const mi_batcher* b) noexcept;
const char* mi_arch(const mi_batcher* b) noexcept;

}  // namespace stentor::dp
