// MESSAGE-INTEGRITY of a burst (dataplane/join_mac.h): every lane width the
// CPU runs, bursts of every size around the lane counts, requests of
// different lengths, some signed with another password or altered after
// signing: the verdicts must be stun::check_integrity's (itself checked
// against OpenSSL's HMAC() in test_stun.cc), and every message must come
// back byte for byte (the batcher patches the length while it works).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "join_mac.h"
#include "stentor/stun.h"

namespace stentor::dp {
namespace {

struct burst {
    std::vector<std::vector<uint8_t>> msgs;
    std::vector<std::string> passwords;
    std::vector<bool> want;
};

// Request i: a USERNAME of 20 + i % 60 characters (so MESSAGE-INTEGRITY
// sits at offsets across the SHA-1 block boundaries), signed with its own
// password; every third is checked with another password, every fifth has
// a byte changed after signing.
burst make(unsigned n) {
    burst b;
    for (unsigned i = 0; i < n; ++i) {
        std::string pw(join_password_chars, 'a');
        for (size_t k = 0; k < pw.size(); ++k) pw[k] = static_cast<char>('A' + (i * 7 + k) % 26);
        const std::string user(20 + i % 60, static_cast<char>('a' + i % 26));
        uint8_t txid[stun::txid_len] = {};
        txid[0] = static_cast<uint8_t>(i);
        std::vector<uint8_t> m(stun::max_request_len);
        m.resize(stun::build_request(m.data(), m.size(), txid, user, pw.data(), pw.size()));
        bool ok = true;
        if (i % 3 == 1) {
            pw[0] = pw[0] == 'Z' ? 'Y' : 'Z';
            ok = false;
        }
        if (i % 5 == 2) {
            m[24] ^= 1;   // inside USERNAME
            ok = false;
        }
        b.msgs.push_back(std::move(m));
        b.passwords.push_back(pw);
        b.want.push_back(ok);
    }
    return b;
}

TEST(JoinMac, every_lane_width_agrees_with_check_integrity_and_restores_the_messages) {
    unsigned modes_run = 0;
    for (const auto mode : {mi_mode::single, mi_mode::sse, mi_mode::avx2, mi_mode::avx512, mi_mode::best}) {
        mi_batcher* mb = mi_batcher_create(mode);
        if (mb == nullptr) {
            EXPECT_NE(mi_mode::single, mode) << "one by one must always be possible";
            continue;
        }
        ++modes_run;
        SCOPED_TRACE(mi_arch(mb));
        for (unsigned n : {1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 31u, 32u, 33u, 48u, 63u, 64u}) {
            SCOPED_TRACE(n);
            burst b = make(n);
            const auto before = b.msgs;
            std::vector<mi_request> r(n);
            for (unsigned i = 0; i < n; ++i) {
                r[i].msg = b.msgs[i].data();
                r[i].integrity_off = static_cast<uint16_t>(b.msgs[i].size() - stun::integrity_attr_len -
                                                           stun::fingerprint_attr_len);
                r[i].password = b.passwords[i].data();
            }
            bool ok[mi_max_batch];
            mi_check(mb, r.data(), n, ok);
            for (unsigned i = 0; i < n; ++i) {
                EXPECT_EQ(b.want[i], ok[i]) << "request " << i;
                EXPECT_EQ(stun::check_integrity(r[i].msg, r[i].integrity_off, r[i].password, join_password_chars), ok[i]);
                EXPECT_EQ(before[i], b.msgs[i]) << "request " << i << " not restored";
            }
        }
        mi_batcher_destroy(mb);
    }
    EXPECT_GE(modes_run, 2u);
}

}  // namespace
}  // namespace stentor::dp
