// SRTP (dataplane/srtp.cc) against libsrtp2, the reference we did not
// write: byte-identical protection both ways, both suites, with and without
// MKI, across a sequence-number wrap (ROC); then a table of damaged packets,
// each refused with its verdict; then the per-packet path's allocations.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <openssl/crypto.h>
#include <srtp2/srtp.h>

#include "stentor/dp_srtp.h"
#include "stentor/srtp.h"

namespace {

namespace sr = stentor::srtp;

// OpenSSL's allocations, counted while `counting` is set (installed before
// main, when OpenSSL has not allocated yet).
std::atomic<bool> counting{false};
std::atomic<uint64_t> ossl_allocs{0};
void* count_malloc(size_t n, const char*, int) {
    if (counting.load()) ++ossl_allocs;
    return std::malloc(n);
}
void* count_realloc(void* p, size_t n, const char*, int) {
    if (counting.load()) ++ossl_allocs;
    return std::realloc(p, n);
}
void count_free(void* p, const char*, int) { std::free(p); }
const bool mem_hooked = CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free) == 1;

std::vector<uint8_t> master_of(sr::suite s, uint8_t seed) {
    std::vector<uint8_t> m(sr::master_len(s));
    for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<uint8_t>(seed * 31 + i * 7 + 1);
    return m;
}

struct own_keys {
    sr::keyset ks{};
    std::vector<sr::key*> owned;
    own_keys(sr::suite s, unsigned mki_len, const std::vector<std::pair<uint8_t, uint32_t>>& seeds_mkis,
             unsigned active = 0) {
        ks.suite_id = static_cast<uint8_t>(s);
        ks.mki_len = static_cast<uint8_t>(mki_len);
        for (auto [seed, mki] : seeds_mkis) {
            const auto m = master_of(s, seed);
            sr::key* k = sr::key_create(s, m.data(), m.size(), 2);
            EXPECT_NE(k, nullptr);
            owned.push_back(k);
            ks.keys[ks.nb_keys] = k;
            ks.mki[ks.nb_keys] = mki;
            ++ks.nb_keys;
        }
        ks.active = static_cast<uint8_t>(active);
    }
    ~own_keys() {
        for (auto* k : owned) sr::key_free(k);
    }
};

// A libsrtp2 context for one direction with the same keys.
struct ref_ctx {
    srtp_t ctx = nullptr;
    std::vector<std::vector<uint8_t>> masters;
    std::vector<std::array<uint8_t, 4>> mkis;
    std::vector<srtp_master_key_t> mk;
    std::vector<srtp_master_key_t*> mkp;
    ref_ctx(sr::suite s, unsigned mki_len, const std::vector<std::pair<uint8_t, uint32_t>>& seeds_mkis, bool outbound) {
        srtp_policy_t pol;
        std::memset(&pol, 0, sizeof pol);
        if (s == sr::suite::aead_aes_128_gcm) {
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtp);
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtcp);
        } else {
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
        }
        pol.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
        pol.window_size = 128;
        masters.reserve(seeds_mkis.size());
        mkis.reserve(seeds_mkis.size());
        for (auto [seed, mki] : seeds_mkis) {
            masters.push_back(master_of(s, seed));
            std::array<uint8_t, 4> b{};
            for (unsigned i = 0; i < mki_len; ++i) b[i] = static_cast<uint8_t>(mki >> (8 * (mki_len - 1 - i)));
            mkis.push_back(b);
        }
        if (mki_len == 0) {
            pol.key = masters[0].data();
        } else {
            mk.resize(masters.size());
            for (size_t i = 0; i < masters.size(); ++i) {
                mk[i].key = masters[i].data();
                mk[i].mki_id = mkis[i].data();
                mk[i].mki_size = mki_len;
                mkp.push_back(&mk[i]);
            }
            pol.keys = mkp.data();
            pol.num_master_keys = static_cast<unsigned long>(mkp.size());
        }
        EXPECT_EQ(srtp_create(&ctx, &pol), srtp_err_status_ok);
    }
    ~ref_ctx() {
        if (ctx) srtp_dealloc(ctx);
    }
};

struct srtp_lib {
    srtp_lib() { srtp_init(); }
};
const srtp_lib lib_once;

// An RTP packet: version 2, PT 111, `cc` CSRCs, an extension when `ext`.
std::vector<uint8_t> rtp_packet(uint16_t seq, uint32_t ssrc, size_t payload, unsigned cc = 0, bool ext = false) {
    std::vector<uint8_t> p;
    p.push_back(static_cast<uint8_t>(0x80 | (ext ? 0x10 : 0) | cc));
    p.push_back(111);
    p.push_back(static_cast<uint8_t>(seq >> 8));
    p.push_back(static_cast<uint8_t>(seq));
    const uint32_t ts = seq * 960u;
    for (int i = 3; i >= 0; --i) p.push_back(static_cast<uint8_t>(ts >> (8 * i)));
    for (int i = 3; i >= 0; --i) p.push_back(static_cast<uint8_t>(ssrc >> (8 * i)));
    for (unsigned c = 0; c < cc; ++c)
        for (int i = 0; i < 4; ++i) p.push_back(static_cast<uint8_t>(0x10 + c));
    if (ext) {
        for (uint8_t b : {0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00}) p.push_back(b);
    }
    for (size_t i = 0; i < payload; ++i) p.push_back(static_cast<uint8_t>(seq + i * 13));
    return p;
}

struct interop_case {
    const char* what;
    sr::suite s;
    unsigned mki_len;
    unsigned cc;
    bool ext;
};
const interop_case interop_cases[] = {
    {"AES-CM, no MKI", sr::suite::aes_cm_128_hmac_sha1_80, 0, 0, false},
    {"AES-CM, 1-byte MKI", sr::suite::aes_cm_128_hmac_sha1_80, 1, 0, false},
    {"AES-CM, 4-byte MKI, CSRCs and extension", sr::suite::aes_cm_128_hmac_sha1_80, 4, 2, true},
    {"GCM, no MKI", sr::suite::aead_aes_128_gcm, 0, 0, false},
    {"GCM, 2-byte MKI", sr::suite::aead_aes_128_gcm, 2, 0, false},
    {"GCM, 4-byte MKI, CSRCs and extension", sr::suite::aead_aes_128_gcm, 4, 1, true},
};

TEST(srtp_interop, both_ways_byte_identical_across_the_sequence_wrap) {
    for (const auto& c : interop_cases) {
        SCOPED_TRACE(c.what);
        const std::vector<std::pair<uint8_t, uint32_t>> keys = {{1, 0x01020304u & ((c.mki_len == 4) ? 0xffffffffu : (1u << (8 * c.mki_len)) - 1)},
                                                               {2, 0x00000007u}};
        // Egress: ours protects with the second key (its MKI), libsrtp unprotects.
        own_keys ours(c.s, c.mki_len, keys, c.mki_len > 0 ? 1 : 0);
        ref_ctx ref_tx(c.s, c.mki_len, keys, true);
        ref_ctx ref_rx(c.s, c.mki_len, keys, false);
        sr::stream tx{}, rx{};
        const uint32_t ssrc = 0xdecafbad;
        // 91 packets from 65500: the ROC turns 0 -> 1 in the middle.
        for (uint32_t n = 0; n < 91; ++n) {
            const uint16_t seq = static_cast<uint16_t>(65500 + n);
            const auto plain = rtp_packet(seq, ssrc, 60 + n % 7, c.cc, c.ext);
            const uint32_t hdr = sr::rtp_header_len(plain.data(), static_cast<uint32_t>(plain.size()));
            ASSERT_GT(hdr, 0u);
            // ours -> libsrtp
            std::vector<uint8_t> a(plain.size() + sr::max_trailer);
            std::memcpy(a.data(), plain.data(), plain.size());
            const uint64_t idx = sr::tx_index(tx, seq, __builtin_bswap32(ssrc));
            const uint32_t alen = sr::protect(ours.ks, 1, idx, a.data(), static_cast<uint32_t>(plain.size()), hdr);
            ASSERT_GT(alen, plain.size());
            // libsrtp protects the same packet: the same bytes.
            std::vector<uint8_t> b(plain.size() + 64);
            std::memcpy(b.data(), plain.data(), plain.size());
            int blen = static_cast<int>(plain.size());
            ASSERT_EQ(c.mki_len > 0 ? srtp_protect_mki(ref_tx.ctx, b.data(), &blen, 1, 1) : srtp_protect(ref_tx.ctx, b.data(), &blen),
                      srtp_err_status_ok);
            ASSERT_EQ(static_cast<uint32_t>(blen), alen) << "seq " << seq;
            ASSERT_EQ(0, std::memcmp(a.data(), b.data(), alen)) << "seq " << seq;
            std::vector<uint8_t> a2 = a;
            int a2len = static_cast<int>(alen);
            ASSERT_EQ(c.mki_len > 0 ? srtp_unprotect_mki(ref_rx.ctx, a2.data(), &a2len, 1) : srtp_unprotect(ref_rx.ctx, a2.data(), &a2len),
                      srtp_err_status_ok);
            ASSERT_EQ(a2len, static_cast<int>(plain.size()));
            ASSERT_EQ(0, std::memcmp(a2.data(), plain.data(), plain.size()));
            // libsrtp -> ours (ingress)
            sr::rx_plan plan;
            ASSERT_EQ(sr::rx_check(ours.ks, rx, b.data(), static_cast<uint32_t>(blen), hdr, &plan), sr::verdict::ok);
            ASSERT_EQ(plan.index, (n < 36 ? 0ull : 1ull << 16) | seq);
            ASSERT_EQ(sr::rx_unprotect(ours.ks, 0, b.data(), plan), sr::verdict::ok) << "seq " << seq;
            sr::rx_commit(rx, plan, __builtin_bswap32(ssrc));
            ASSERT_EQ(uint32_t{plan.hdr_len} + plan.body_len, plain.size());
            ASSERT_EQ(0, std::memcmp(b.data(), plain.data(), plain.size()));
        }
    }
}

// Damaged and replayed packets: each refused with its own verdict, and the
// stream state never moves for a refused packet.
struct damage_case {
    const char* what;
    sr::suite s;
    unsigned mki_len;
    int action;           // see below
    sr::verdict expect;
};
enum { replay_same = 1, replay_old, truncate_tag, truncate_all, flip_payload, flip_header, flip_tag, wrong_mki, wrong_key, ok_reorder };
const damage_case damage_cases[] = {
    {"CM: the same packet again", sr::suite::aes_cm_128_hmac_sha1_80, 0, replay_same, sr::verdict::replay},
    {"CM: older than the 64-packet window", sr::suite::aes_cm_128_hmac_sha1_80, 0, replay_old, sr::verdict::replay},
    {"CM: last byte of the tag cut off", sr::suite::aes_cm_128_hmac_sha1_80, 0, truncate_tag, sr::verdict::auth},
    {"CM: only the header and 5 bytes", sr::suite::aes_cm_128_hmac_sha1_80, 0, truncate_all, sr::verdict::truncated},
    {"CM: one payload bit flipped", sr::suite::aes_cm_128_hmac_sha1_80, 0, flip_payload, sr::verdict::auth},
    {"CM: marker bit flipped (header is authenticated)", sr::suite::aes_cm_128_hmac_sha1_80, 0, flip_header, sr::verdict::auth},
    {"CM: one tag bit flipped", sr::suite::aes_cm_128_hmac_sha1_80, 0, flip_tag, sr::verdict::auth},
    {"CM: MKI no key has", sr::suite::aes_cm_128_hmac_sha1_80, 1, wrong_mki, sr::verdict::unknown_mki},
    {"CM: another key", sr::suite::aes_cm_128_hmac_sha1_80, 0, wrong_key, sr::verdict::auth},
    {"CM: reordered inside the window", sr::suite::aes_cm_128_hmac_sha1_80, 0, ok_reorder, sr::verdict::ok},
    {"GCM: the same packet again", sr::suite::aead_aes_128_gcm, 0, replay_same, sr::verdict::replay},
    {"GCM: one payload bit flipped", sr::suite::aead_aes_128_gcm, 0, flip_payload, sr::verdict::auth},
    {"GCM: marker bit flipped (AAD)", sr::suite::aead_aes_128_gcm, 0, flip_header, sr::verdict::auth},
    {"GCM: one tag bit flipped", sr::suite::aead_aes_128_gcm, 2, flip_tag, sr::verdict::auth},
    {"GCM: MKI no key has", sr::suite::aead_aes_128_gcm, 2, wrong_mki, sr::verdict::unknown_mki},
    {"GCM: only the header and 15 bytes", sr::suite::aead_aes_128_gcm, 0, truncate_all, sr::verdict::truncated},
    {"GCM: another key", sr::suite::aead_aes_128_gcm, 0, wrong_key, sr::verdict::auth},
};

TEST(srtp_rx, damaged_packets_are_refused_by_reason) {
    for (const auto& c : damage_cases) {
        SCOPED_TRACE(c.what);
        own_keys sender(c.s, c.mki_len, {{c.action == wrong_key ? uint8_t{9} : uint8_t{1}, c.action == wrong_mki ? 5u : 1u}});
        own_keys receiver(c.s, c.mki_len, {{1, 1}});
        sr::stream tx{}, rx{};
        const uint32_t ssrc_be = __builtin_bswap32(0x11223344);
        auto make = [&](uint16_t seq) {
            auto p = rtp_packet(seq, 0x11223344, 80);
            const uint32_t n = static_cast<uint32_t>(p.size());
            p.resize(n + sr::max_trailer);
            p.resize(sr::protect(sender.ks, 0, sr::tx_index(tx, seq, ssrc_be), p.data(), n, 12));
            return p;
        };
        auto receive = [&](std::vector<uint8_t> p) {
            sr::rx_plan plan;
            sr::verdict v = sr::rx_check(receiver.ks, rx, p.data(), static_cast<uint32_t>(p.size()), 12, &plan);
            if (v == sr::verdict::ok) v = sr::rx_unprotect(receiver.ks, 1, p.data(), plan);
            if (v == sr::verdict::ok) sr::rx_commit(rx, plan, ssrc_be);
            return v;
        };
        if (c.action == wrong_key || c.action == wrong_mki) {
            EXPECT_EQ(receive(make(100)), c.expect);
            EXPECT_EQ(rx.started, 0u) << "a refused packet moved the stream";
            continue;
        }
        std::vector<std::vector<uint8_t>> sent;
        for (uint16_t s = 100; s < 200; ++s) sent.push_back(make(s));
        // Deliver all but 150 (held back for the reorder case).
        for (size_t i = 0; i < sent.size(); ++i)
            if (i != 50) {
                ASSERT_EQ(receive(sent[i]), sr::verdict::ok);
            }
        const sr::stream before = rx;
        std::vector<uint8_t> p = sent[99];
        switch (c.action) {
        case replay_same: break;
        case replay_old: p = sent[10]; break;
        case ok_reorder: p = sent[50]; break;
        case truncate_tag: p = make(200); p.pop_back(); break;
        case truncate_all: p = make(200); p.resize(12 + 5); break;
        case flip_payload: p = make(200); p[20] ^= 0x04; break;
        case flip_header: p = make(200); p[1] ^= 0x80; break;
        case flip_tag: p = make(200); p[p.size() - 1 - c.mki_len] ^= 0x01; break;
        }
        EXPECT_EQ(receive(p), c.expect);
        if (c.expect != sr::verdict::ok) {
            EXPECT_EQ(rx.top, before.top);
            EXPECT_EQ(rx.window, before.window);
        }
    }
}

// Ingress marks (docs/srtp.md "Ingress marks"): a receiver whose keyset
// carries the journal's mark for the SSRC starts a fresh stream from there:
// whatever was accepted up to the mark is a replay, and the ROC is the
// mark's, not 0 (a speaker 70 000 packets in, after the relay restarted).
// Rows: packets in order of arrival at a fresh receiver.
TEST(srtp_rx, a_fresh_stream_goes_on_from_the_journals_mark) {
    const uint32_t ssrc = 0x11223344, ssrc_be = __builtin_bswap32(ssrc);
    constexpr uint64_t mark = (uint64_t{1} << 16) + 4464;   // 70 000: ROC 1
    own_keys sender(sr::suite::aes_cm_128_hmac_sha1_80, 1, {{1, 1}});
    own_keys receiver(sr::suite::aes_cm_128_hmac_sha1_80, 1, {{1, 1}});
    receiver.ks.floor = mark;
    receiver.ks.floor_ssrc_be = ssrc_be;
    auto make = [&](uint64_t index, uint32_t ss) {
        auto p = rtp_packet(static_cast<uint16_t>(index), ss, 80);
        const uint32_t n = static_cast<uint32_t>(p.size());
        p.resize(n + sr::max_trailer);
        p.resize(sr::protect(sender.ks, 0, index, p.data(), n, 12));
        return p;
    };
    struct row {
        const char* what;
        uint64_t index;        // the sender's
        uint32_t ssrc;
        sr::verdict want;
    };
    const row table[] = {
        {"a packet from before the mark (a capture replayed)", mark - 30, ssrc, sr::verdict::replay},
        {"the mark itself", mark, ssrc, sr::verdict::replay},
        {"from a whole ROC before: estimated ahead (ROC 1), its MAC says no", 4464 + 10, ssrc, sr::verdict::auth},
        {"the speaker's next packet: ROC 1 from the mark", mark + 1, ssrc, sr::verdict::ok},
        // After the first packet the mark still holds (the stream began at
        // the mark, not at that packet).
        {"then a capture from before the mark", mark - 30, ssrc, sr::verdict::replay},
        {"then the mark itself", mark, ssrc, sr::verdict::replay},
        {"and on", mark + 2, ssrc, sr::verdict::ok},
        {"a replay of the one just accepted", mark + 2, ssrc, sr::verdict::replay},
        {"another SSRC has no mark: its own numbers from ROC 0", 500, 0x55667788, sr::verdict::ok},
    };
    sr::stream rx{};
    for (const auto& r : table) {
        SCOPED_TRACE(r.what);
        auto p = make(r.index, r.ssrc);
        sr::rx_plan plan;
        sr::verdict v = sr::rx_check(receiver.ks, rx, p.data(), static_cast<uint32_t>(p.size()), 12, &plan);
        if (v == sr::verdict::ok) v = sr::rx_unprotect(receiver.ks, 1, p.data(), plan);
        EXPECT_EQ(v, r.want);
        if (v == sr::verdict::ok) {
            EXPECT_EQ(plan.index, r.index) << "the index (and ROC) the sender used";
            sr::rx_commit(rx, plan, __builtin_bswap32(r.ssrc));
        }
    }
    // Without the mark the same fresh receiver takes ROC 0: the speaker's
    // packet 70 001 fails its MAC (what a restart did before the marks).
    own_keys plain(sr::suite::aes_cm_128_hmac_sha1_80, 1, {{1, 1}});
    sr::stream fresh{};
    auto p = make(mark + 1, ssrc);
    sr::rx_plan plan;
    ASSERT_EQ(sr::rx_check(plain.ks, fresh, p.data(), static_cast<uint32_t>(p.size()), 12, &plan), sr::verdict::ok);
    EXPECT_EQ(sr::rx_unprotect(plain.ks, 1, p.data(), plan), sr::verdict::auth);
}

// Rotation: a set holding the old and the new key accepts both; by MKI one
// MAC per packet, without MKI newest first.
TEST(srtp_rx, old_and_new_key_both_accepted_during_the_overlap) {
    for (const unsigned mki_len : {0u, 1u}) {
        SCOPED_TRACE(mki_len);
        own_keys both(sr::suite::aes_cm_128_hmac_sha1_80, mki_len, {{1, 1}, {2, 2}});
        own_keys old_only(sr::suite::aes_cm_128_hmac_sha1_80, mki_len, {{1, 1}});
        own_keys new_only(sr::suite::aes_cm_128_hmac_sha1_80, mki_len, {{2, 2}});
        sr::stream tx{}, rx{};
        const uint32_t ssrc_be = 0x01000000;
        for (uint16_t s = 0; s < 40; ++s) {
            auto p = rtp_packet(s, 1, 50);
            const uint32_t n = static_cast<uint32_t>(p.size());
            p.resize(n + sr::max_trailer);
            const auto& ks = s < 20 ? old_only.ks : new_only.ks;
            p.resize(sr::protect(ks, 0, sr::tx_index(tx, s, ssrc_be), p.data(), n, 12));
            sr::rx_plan plan;
            ASSERT_EQ(sr::rx_check(both.ks, rx, p.data(), static_cast<uint32_t>(p.size()), 12, &plan), sr::verdict::ok);
            ASSERT_EQ(sr::rx_unprotect(both.ks, 0, p.data(), plan), sr::verdict::ok) << s;
            sr::rx_commit(rx, plan, ssrc_be);
        }
    }
}

TEST(srtp_keys, wrong_master_length_is_refused) {
    const auto m = master_of(sr::suite::aes_cm_128_hmac_sha1_80, 1);
    EXPECT_EQ(sr::key_create(sr::suite::aes_cm_128_hmac_sha1_80, m.data(), m.size() - 1, 1), nullptr);
    EXPECT_EQ(sr::key_create(sr::suite::aead_aes_128_gcm, m.data(), m.size(), 1), nullptr);   // 30 bytes: GCM takes 28
    EXPECT_EQ(sr::key_create(sr::suite::aes_cm_128_hmac_sha1_80, m.data(), m.size(), 0), nullptr);
}

// The per-packet path allocates nothing in OpenSSL (the data plane may not
// allocate per packet): 200 packets protected and unprotected per suite.
TEST(srtp_hot_path, protect_and_unprotect_allocate_nothing) {
    ASSERT_TRUE(mem_hooked) << "OpenSSL allocated before the counting hooks were installed";
    for (const auto s : {sr::suite::aes_cm_128_hmac_sha1_80, sr::suite::aead_aes_128_gcm}) {
        own_keys k(s, 1, {{1, 3}, {2, 4}});
        sr::stream tx{}, rx{};
        std::vector<uint8_t> buf(256);
        ossl_allocs = 0;
        counting = true;
        for (uint16_t seq = 0; seq < 200; ++seq) {
            auto p = rtp_packet(seq, 7, 100);
            std::memcpy(buf.data(), p.data(), p.size());
            const uint32_t n = sr::protect(k.ks, 0, sr::tx_index(tx, seq, 0x07000000), buf.data(),
                                           static_cast<uint32_t>(p.size()), 12);
            sr::rx_plan plan;
            if (sr::rx_check(k.ks, rx, buf.data(), n, 12, &plan) != sr::verdict::ok ||
                sr::rx_unprotect(k.ks, 1, buf.data(), plan) != sr::verdict::ok) {
                counting = false;
                FAIL() << "packet " << seq << " did not round-trip";
            }
            sr::rx_commit(rx, plan, 0x07000000);
        }
        counting = false;
        EXPECT_EQ(ossl_allocs.load(), 0u) << sr::name_of(s);
    }
}

TEST(srtp_index, estimate_follows_rfc3711_appendix_a) {
    struct row {
        uint64_t top;
        uint16_t seq;
        bool ok;
        uint64_t index;
    } rows[] = {
        {0x0000'0010, 0x0011, true, 0x0000'0011},
        {0x0000'fff0, 0x0005, true, 0x0001'0005},    // wrapped forward
        {0x0001'0005, 0xfff0, true, 0x0000'fff0},    // late packet from before the wrap
        {0x0000'0005, 0xfff0, false, 0},             // would precede index 0
        {0x0003'9000, 0x0001, true, 0x0004'0001},
    };
    for (const auto& r : rows) {
        uint64_t idx = 0;
        EXPECT_EQ(sr::estimate_index(r.top, true, r.seq, &idx), r.ok) << std::hex << r.top << " " << r.seq;
        if (r.ok) {
            EXPECT_EQ(idx, r.index) << std::hex << r.top << " " << r.seq;
        }
    }
}

}  // namespace

// The egress index claim (dp_srtp.h egress_index, docs/srtp.md "Egress
// index"), as a table over one SSRC's slot: each row is one packet from one
// entry (a speaker's per-queue state) with the speaker's own index and
// whether its stream restarted; the index the relay must protect it with
// (or none: egress/srtp_late). Over the whole table no index repeats.

namespace {

TEST(srtp_egress_index, a_table_of_speaker_numbers_never_yields_an_index_twice) {
    namespace dp = stentor::dp;
    constexpr uint64_t none = dp::no_egress_index;
    struct row {
        const char* what;
        int entry;           // 0, 1: two entries of the SSRC (RSS move, re-add, two flows)
        uint64_t in;         // the speaker's index
        bool restart;
        uint64_t want;
    };
    const row table[] = {
        {"first packet: the speaker's own number", 0, 1000, true, 1000},
        {"in order", 0, 1001, false, 1001},
        {"a gap of 3 stays a gap", 0, 1005, false, 1005},
        {"reordered: behind the mark, not sent", 0, 1003, false, none},
        {"a duplicate of the last: not sent", 0, 1005, false, none},
        {"the speaker restarts lower: continues at the mark", 0, 200, true, 1006},
        {"and goes on from there by its own steps", 0, 201, false, 1007},
        {"restart at its very first numbers again", 0, 1000, true, 1008},
        {"a fresh entry (RSS move) with an old number: continues", 1, 1001, true, 1009},
        {"the old entry goes on: in step with the mark", 0, 1002, false, 1010},
        {"the fresh entry, now behind by a little: not sent", 1, 1002, false, none},
        {"across the ROC wrap in the speaker's numbers", 0, 65535, true, 1011},
        {"", 0, 65536, false, 1012},
        {"a forward jump of the speaker is kept (a loss)", 0, 65600, false, 1076},
    };
    dp::dp_srtp_egress t{};
    dp::dp_srtp_egress_slot* slot = dp::egress_slot(t, 0x04030201);
    ASSERT_NE(slot, nullptr);
    EXPECT_EQ(dp::egress_slot(t, 0x04030201), slot) << "the same SSRC, the same slot";
    sr::tx_stream st[2]{};
    std::vector<uint64_t> used;
    for (const auto& r : table) {
        SCOPED_TRACE(r.what);
        const uint64_t got = dp::egress_index(*slot, st[r.entry], r.in, 0x04030201, r.restart);
        EXPECT_EQ(got, r.want);
        if (got != none) {
            for (uint64_t u : used) EXPECT_NE(u, got) << "index used twice";
            used.push_back(got);
        }
    }
    // Sixteen SSRCs fit, the seventeenth is refused (egress/srtp_streams_full).
    for (uint32_t i = 1; i < dp::srtp_egress_slots; ++i) EXPECT_NE(dp::egress_slot(t, 0x100 + i), nullptr) << i;
    EXPECT_EQ(dp::egress_slot(t, 0x999), nullptr);
    // The end of the 48-bit index space: never wrapped to an old index.
    dp::dp_srtp_egress t2{};
    dp::dp_srtp_egress_slot* s2 = dp::egress_slot(t2, 7);
    sr::tx_stream st2{};
    EXPECT_EQ(dp::egress_index(*s2, st2, sr::index_mask, 7, true), sr::index_mask);
    EXPECT_EQ(dp::egress_index(*s2, st2, 0, 7, true), none);
}

// With a journal (docs/srtp.md "Egress reservations") an index is used only
// below the slot's journaled limit: a slot with none refuses, and leaves its
// first proposal for the control plane to reserve from; past the limit the
// claim stops until the limit moves. Rows: (limit set before the packet,
// the speaker's index, the index it gets or unreserved, `want` after it).
TEST(srtp_egress_index, an_index_the_journal_has_not_reserved_is_never_used) {
    namespace dp = stentor::dp;
    constexpr uint64_t unres = dp::unreserved_egress_index;
    struct row {
        const char* what;
        uint64_t limit;      // stored before the packet (0: leave as is)
        uint64_t in;
        bool restart;
        uint64_t got;
        uint64_t want;       // the slot's `want` afterwards
    };
    const row table[] = {
        {"nothing reserved: refused, the proposal left behind", 0, 5000, true, unres, 5001},
        {"the next one too; the proposal follows the speaker", 0, 5001, false, unres, 5002},
        {"reserved from the proposal: sent at the speaker's own number", 5001 + 4096, 5002, false, 5002, 5002},
        {"in order", 0, 5003, false, 5003, 5002},
        {"the last index reserved", 0, 5001 + 4095, false, 5001 + 4095, 5002},
        {"the first one past it: refused, `want` untouched (the mark says where)", 0, 5001 + 4096, false, unres, 5002},
        {"the limit moves: the same packet goes", 5001 + 8192, 5001 + 4096, false, 5001 + 4096, 5002},
        {"a restart lower continues at the mark, inside the reservation", 0, 10, true, 5001 + 4097, 5002},
    };
    dp::dp_srtp_egress t{};
    dp::dp_srtp_egress_slot* slot = dp::egress_slot(t, 0x04030201);
    ASSERT_NE(slot, nullptr);
    EXPECT_EQ(slot->limit.load(), dp::srtp_egress_unlimited) << "a table built by hand waits for nothing";
    slot->limit.store(0);                      // as the control plane allocates it on a journaled relay
    sr::tx_stream st{};
    for (const auto& r : table) {
        SCOPED_TRACE(r.what);
        if (r.limit != 0) slot->limit.store(r.limit);
        EXPECT_EQ(dp::egress_index(*slot, st, r.in, 0x04030201, r.restart), r.got);
        EXPECT_EQ(slot->want.load(), r.want);
        EXPECT_LE(slot->next.load(), slot->limit.load()) << "nothing claimed at or past the limit";
    }
    // claim_egress_index counts the refusal by its reason and says "none".
    stentor::dp::lcore_counters c{};
    dp::dp_session sess{};
    sess.srtp_streams = &t;
    slot->limit.store(slot->next.load());
    EXPECT_EQ(dp::claim_egress_index(sess, st, 5001 + 4098, 0x04030201, false, &c), dp::no_egress_index);
    EXPECT_EQ(c.drop(dp::drop_reason::srtp_egress_unreserved), 1u);
    EXPECT_EQ(c.drop(dp::drop_reason::srtp_egress_late), 0u);
}

}  // namespace
