// Micro-benchmarks of what one join request costs its verifier, stage by
// stage, in the order dataplane/join.cc runs them (Google Benchmark): the
// STUN checks with FINGERPRINT, the token's cheap decode, the token MAC
// (HMAC-SHA256 from precomputed pad states), the password, MESSAGE-INTEGRITY
// (HMAC-SHA1 keyed per token), and all of them together, one request at a
// time (BM_verify_all) and as join_verify_burst runs them on a burst of 32
// (BM_verify_burst: MESSAGE-INTEGRITY in ipsec-mb's lanes, join_mac.h; the
// argument is the lane mode: 0 the widest the CPU has, 1 one by one, 2 SSE,
// 3 AVX2, 4 AVX-512). join_harness measures the same path through a real
// worker; this says where the time goes. No EAL, no mbufs: the functions
// alone, on 104-byte requests.
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "join_mac.h"
#include "stentor/join_token.h"
#include "stentor/stun.h"

namespace {

using namespace stentor;

struct fixture {
    std::vector<uint8_t> secret = std::vector<uint8_t>(32, 0x5a);
    join::token_key key{secret.data(), secret.size()};
    std::string token, password;
    std::vector<uint8_t> msg;
    fixture() {
        join::token_fields f;
        f.key_id = 1;
        f.session_id = 7;
        f.expiry = static_cast<uint32_t>(std::time(nullptr) + 3600);
        f.nonce = 0x0123456789abcdefULL;
        token = join::mint_token(key, f, password);
        uint8_t txid[stun::txid_len] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        msg.resize(stun::max_request_len);
        msg.resize(stun::build_request(msg.data(), msg.size(), txid, token, password.data(), password.size()));
    }
};
const fixture& fx() {
    static const fixture f;
    return f;
}

void BM_parse_request(benchmark::State& st) {
    const auto& f = fx();
    stun::request_view v;
    for (auto _ : st) benchmark::DoNotOptimize(stun::parse_request(f.msg.data(), f.msg.size(), v));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_parse_request);

void BM_decode_token(benchmark::State& st) {
    const auto& f = fx();
    uint8_t raw[join::token_raw_len];
    join::token_fields tf;
    for (auto _ : st) benchmark::DoNotOptimize(join::decode_token(f.token.data(), f.token.size(), raw, tf));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_decode_token);

void BM_token_mac(benchmark::State& st) {
    const auto& f = fx();
    uint8_t raw[join::token_raw_len];
    join::token_fields tf;
    join::decode_token(f.token.data(), f.token.size(), raw, tf);
    uint8_t mac[join::token_mac_len];
    for (auto _ : st) {
        join::token_mac(f.key, raw, mac);
        benchmark::DoNotOptimize(join::check_tag(raw, mac));
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_token_mac);

void BM_check_integrity(benchmark::State& st) {
    const auto& f = fx();
    stun::request_view v;
    stun::parse_request(f.msg.data(), f.msg.size(), v);
    for (auto _ : st)
        benchmark::DoNotOptimize(stun::check_integrity(f.msg.data(), v, f.password.data(), f.password.size()));
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_check_integrity);

// All of join.cc's checks on a valid request, without the packet I/O.
void BM_verify_all(benchmark::State& st) {
    const auto& f = fx();
    for (auto _ : st) {
        stun::request_view v;
        if (stun::parse_request(f.msg.data(), f.msg.size(), v) != stun::stun_error::ok) st.SkipWithError("parse");
        uint8_t raw[join::token_raw_len];
        join::token_fields tf;
        if (!join::decode_token(v.username, v.username_len, raw, tf)) st.SkipWithError("token");
        uint8_t mac[join::token_mac_len];
        join::token_mac(f.key, raw, mac);
        if (!join::check_tag(raw, mac)) st.SkipWithError("tag");
        char pw[join::token_password_len];
        join::password_of(mac, pw);
        if (!stun::check_integrity(f.msg.data(), v, pw, sizeof pw)) st.SkipWithError("integrity");
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_verify_all);

// MESSAGE-INTEGRITY of 32 requests at once (join_mac.h), per request.
void BM_integrity_burst(benchmark::State& st) {
    const auto& f = fx();
    dp::mi_batcher* mb = dp::mi_batcher_create(static_cast<dp::mi_mode>(st.range(0)));
    if (mb == nullptr) {
        st.SkipWithError("this lane mode does not run on this CPU");
        return;
    }
    st.SetLabel(dp::mi_arch(mb));
    constexpr unsigned n = 32;
    std::vector<std::vector<uint8_t>> msgs(n, f.msg);
    stun::request_view v;
    stun::parse_request(f.msg.data(), f.msg.size(), v);
    dp::mi_request r[n];
    for (unsigned i = 0; i < n; ++i) r[i] = {msgs[i].data(), v.integrity_offset, f.password.data()};
    bool ok[n];
    for (auto _ : st) {
        dp::mi_check(mb, r, n, ok);
        benchmark::DoNotOptimize(ok);
    }
    for (bool o : ok)
        if (!o) st.SkipWithError("integrity");
    st.SetItemsProcessed(st.iterations() * n);
    dp::mi_batcher_destroy(mb);
}
BENCHMARK(BM_integrity_burst)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Arg(4);

// The whole verification of a burst of 32 as join_verify_burst runs it:
// per request parse, decode, token MAC, tag, password; then
// MESSAGE-INTEGRITY of the 32 together. Per request.
void BM_verify_burst(benchmark::State& st) {
    const auto& f = fx();
    dp::mi_batcher* mb = dp::mi_batcher_create(static_cast<dp::mi_mode>(st.range(0)));
    if (mb == nullptr) {
        st.SkipWithError("this lane mode does not run on this CPU");
        return;
    }
    st.SetLabel(dp::mi_arch(mb));
    constexpr unsigned n = 32;
    std::vector<std::vector<uint8_t>> msgs(n, f.msg);
    char pw[n][join::token_password_len];
    dp::mi_request r[n];
    bool ok[n];
    for (auto _ : st) {
        for (unsigned i = 0; i < n; ++i) {
            stun::request_view v;
            if (stun::parse_request(msgs[i].data(), msgs[i].size(), v) != stun::stun_error::ok) st.SkipWithError("parse");
            uint8_t raw[join::token_raw_len];
            join::token_fields tf;
            if (!join::decode_token(v.username, v.username_len, raw, tf)) st.SkipWithError("token");
            uint8_t mac[join::token_mac_len];
            join::token_mac(f.key, raw, mac);
            if (!join::check_tag(raw, mac)) st.SkipWithError("tag");
            join::password_of(mac, pw[i]);
            r[i] = {msgs[i].data(), v.integrity_offset, pw[i]};
        }
        dp::mi_check(mb, r, n, ok);
        benchmark::DoNotOptimize(ok);
    }
    for (bool o : ok)
        if (!o) st.SkipWithError("integrity");
    st.SetItemsProcessed(st.iterations() * n);
    dp::mi_batcher_destroy(mb);
}
BENCHMARK(BM_verify_burst)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
