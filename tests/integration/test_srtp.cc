// SRTP through the data plane (docs/srtp.md): real EAL, ring ports, the
// relay's workers polled on the test thread; the speakers' and listeners'
// side is libsrtp2, an SRTP we did not write.
//
//  - ingress: a table of packets (authentic, replayed, truncated, bit-flipped,
//    wrong MKI, wrong key, a speaker without a key), each dropped and counted
//    by its reason, the stream undisturbed for the next authentic packet;
//  - a spoofer who knows the addresses, the SSRC and even the next sequence
//    number but not the key: nothing of it reaches the listener, the speaker
//    loses nothing and is never policed;
//  - egress: listeners get the session-key ciphertext, encrypted once;
//  - rotation of session and speaker keys under a running stream.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <rte_mempool.h>
#include <srtp2/srtp.h>

#include "audio_util.h"
#include "harness.h"
#include "journal.h"
#include "stentor/services/mixer.h"
#include "stentor/srtp.h"

namespace stentor::test {
namespace {

using control::relay;
using control::relay_options;

struct srtp_lib {
    srtp_lib() { srtp_init(); }
};
const srtp_lib lib_once;

bytes key_bytes(uint8_t seed, size_t n = 30) {
    bytes k(n);
    for (size_t i = 0; i < n; ++i) k[i] = static_cast<uint8_t>(seed + i * 11);
    return k;
}

// One libsrtp2 context (a speaker's sender, or a listener's receiver):
// AES_CM_128_HMAC_SHA1_80, keys with 1-byte MKIs (or one key without), or
// with `gcm` AEAD_AES_128_GCM, one key without MKI: the suite a relay seals
// its trunk listeners' copy with (docs/fleet.md "Trunk authentication").
struct peer {
    srtp_t ctx = nullptr;
    std::vector<bytes> keys;
    std::vector<std::array<uint8_t, 1>> mkis;
    std::vector<srtp_master_key_t> mk;
    std::vector<srtp_master_key_t*> mkp;
    bool use_mki;
    // `ssrc` non-zero: a receiver for that SSRC only, whose stream exists
    // before its first packet (so srtp_set_stream_roc can start it at a ROC,
    // as GStreamer's srtpdec does with a `roc` in its caps).
    peer(const std::vector<std::pair<uint8_t, uint8_t>>& seed_mki, bool outbound, bool with_mki = true,
         bool gcm = false, uint32_t ssrc = 0)
        : use_mki(with_mki) {
        srtp_policy_t pol;
        std::memset(&pol, 0, sizeof pol);
        if (gcm) {
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtp);
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtcp);
        } else {
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtp);
            srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol.rtcp);
        }
        pol.ssrc.type = ssrc != 0 ? ssrc_specific : outbound ? ssrc_any_outbound : ssrc_any_inbound;
        pol.ssrc.value = ssrc;
        pol.window_size = 128;
        pol.allow_repeat_tx = 1;   // a forger sends the same sequence number again
        for (auto [seed, mki] : seed_mki) {
            keys.push_back(key_bytes(seed, gcm ? 28 : 30));
            mkis.push_back({mki});
        }
        if (!with_mki) {
            pol.key = keys[0].data();
        } else {
            mk.resize(keys.size());
            for (size_t i = 0; i < keys.size(); ++i) {
                mk[i] = {keys[i].data(), mkis[i].data(), 1};
                mkp.push_back(&mk[i]);
            }
            pol.keys = mkp.data();
            pol.num_master_keys = mkp.size();
        }
        EXPECT_EQ(srtp_create(&ctx, &pol), srtp_err_status_ok);
    }
    // The trunk key of seed `seed` (AEAD_AES_128_GCM, no MKI), as trunk_spec gives the relay.
    static peer trunk(uint8_t seed, bool outbound) { return peer({{seed, 0}}, outbound, false, true); }
    ~peer() {
        if (ctx) srtp_dealloc(ctx);
    }
    bytes protect(const bytes& rtp, unsigned key_index = 0) {
        bytes b(rtp.size() + 64);
        std::memcpy(b.data(), rtp.data(), rtp.size());
        int len = static_cast<int>(rtp.size());
        const auto st = use_mki ? srtp_protect_mki(ctx, b.data(), &len, 1, key_index) : srtp_protect(ctx, b.data(), &len);
        EXPECT_EQ(st, srtp_err_status_ok);
        b.resize(static_cast<size_t>(len));
        return b;
    }
    // The plaintext RTP, or empty when it does not authenticate.
    bytes unprotect(bytes p) {
        int len = static_cast<int>(p.size());
        const auto st = use_mki ? srtp_unprotect_mki(ctx, p.data(), &len, 1) : srtp_unprotect(ctx, p.data(), &len);
        if (st != srtp_err_status_ok) return {};
        p.resize(static_cast<size_t>(len));
        return p;
    }
};

bytes rtp_of(uint16_t seq, uint32_t ts, uint32_t ssrc = 1234, size_t payload = 80) {
    bytes rtp(12 + payload);
    rtp[0] = 0x80;
    rtp[1] = 111;
    rtp[2] = static_cast<uint8_t>(seq >> 8);
    rtp[3] = static_cast<uint8_t>(seq);
    for (int i = 0; i < 4; ++i) rtp[4 + i] = static_cast<uint8_t>(ts >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) rtp[8 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
    for (size_t i = 0; i < payload; ++i) rtp[12 + i] = static_cast<uint8_t>(i * 7 + seq);
    return rtp;
}

bytes frame_of(const bytes& udp_payload, uint16_t src_port = 5004) {
    frame_spec f;
    f.src_port = src_port;
    return udp_frame(f, udp_payload);
}

control::srtp_key_spec spec_of(const std::string& id, uint8_t seed, uint8_t mki, bool activate = false) {
    control::srtp_key_spec k;
    k.id = id;
    k.mki = {mki, 1};
    const bytes b = key_bytes(seed);
    k.master = control::secure_bytes(b.size());
    std::memcpy(k.master.data(), b.data(), b.size());
    k.activate = activate;
    return k;
}

// The RTP bytes of the frames sent to the listener.
std::vector<bytes> listener_rtp(const ring_port& port) {
    std::vector<bytes> out;
    for (const auto& f : drain(port)) {
        EXPECT_EQ(listener_ip, be32(f.data() + 30));
        out.emplace_back(f.begin() + 42, f.end());
    }
    return out;
}

struct srtp_relay {
    ring_port port;
    control::profile prof;
    std::unique_ptr<relay> r;
    unsigned pool0 = 0;
    // With `jr`, as stentord starts: the journal restored first and
    // attached, the static section only when it held nothing.
    srtp_relay(const std::string& name, control::srtp_ingress_mode in, control::srtp_egress_mode eg,
               bool second_speaker = false, control::journal* jr = nullptr)
        : port(fresh_ring_port(name)), prof(base_profile(port.name)) {
        control::session_config sc = speaker_session();
        // 5 ms frames: a policer of 220 packets/s and as deep, so a test can
        // send its 91 packets back to back (the spoof test paces anyway).
        sc.frame_ms = 5;
        sc.srtp_ingress = in;
        sc.srtp_egress = eg;
        if (second_speaker) sc.speakers.push_back({speaker_ip, 5006, 5678});
        sc.listeners.push_back({listener_ip, listener_port, 0});
        prof.sessions.push_back(sc);
        r = std::make_unique<relay>(prof, relay_options{.launch = false});
        bool seed = true;
        if (jr != nullptr) {
            seed = jr->restore(r->state()).empty;
            r->state().set_journal(jr);
        }
        if (seed) r->state().load_static(prof);
        else r->state().publish();
        EXPECT_TRUE(resolve(*r, port, {listener_ip}).empty());
        pool0 = rte_mempool_in_use_count(r->pool());
    }
    void speaker_key(control::srtp_key_spec&& k, uint16_t sport = 5004) {
        r->state().srtp_key_add({1, std::make_pair(speaker_ip, unsigned{sport})}, std::move(k));
        r->state().publish();
    }
    void session_key(control::srtp_key_spec&& k) {
        r->state().srtp_key_add({1, std::nullopt}, std::move(k));
        r->state().publish();
    }
    void send(const bytes& frame) {
        inject(port, frame);
        settle(*r);
    }
    ~srtp_relay() {
        r->flush();
        EXPECT_EQ(pool0, rte_mempool_in_use_count(r->pool())) << "mbuf leak";
        r->state().set_journal(nullptr);
    }
    // The session's first protected SSRC as the API shows it.
    control::srtp_stream_view stream() const {
        for (const auto& v : r->state().sessions())
            if (v.id == 1 && !v.srtp_streams.empty()) return v.srtp_streams.front();
        ADD_FAILURE() << "session 1 protects no SSRC";
        return {};
    }
};

// Ingress: each row sends one packet after an authentic stream of 20; the
// counter named must move by exactly one, the listener must get nothing for
// it (or the plaintext for the authentic rows), and an authentic packet
// after it must still pass (the stream was not disturbed).
TEST(srtp_ingress, each_bad_packet_is_dropped_and_counted_by_reason) {
    srtp_relay t("srtpin", control::srtp_ingress_mode::required, control::srtp_egress_mode::off, true);
    t.speaker_key(spec_of("a", 1, 0x01));
    peer speaker({{1, 0x01}}, true);
    peer forger({{9, 0x01}}, true);       // right MKI, another key
    peer stranger({{1, 0x02}}, true);     // the speaker's key under an MKI the relay does not hold
    std::vector<bytes> sent;
    uint16_t seq = 1000;
    auto next = [&] {
        const bytes p = rtp_of(seq, 960u * seq);
        ++seq;
        return p;
    };
    for (int i = 0; i < 20; ++i) {
        const bytes plain = next();
        const bytes s = speaker.protect(plain);
        sent.push_back(s);
        t.send(frame_of(s));
        const auto got = listener_rtp(t.port);
        ASSERT_EQ(got.size(), 1u) << i;
        EXPECT_EQ(got[0], plain) << "the listener gets the authenticated plaintext";
    }
    struct row {
        const char* what;
        std::function<bytes()> make;   // the UDP payload
        const char* counter;
        uint16_t sport = 5004;
    };
    const std::vector<row> rows = {
        {"replay of the newest packet", [&] { return sent.back(); }, "drop/ingress/srtp_replay"},
        {"replay of an older packet in the window", [&] { return sent[5]; }, "drop/ingress/srtp_replay"},
        {"truncated below header + MKI + tag", [&] { bytes p = speaker.protect(next()); p.resize(12 + 10); return p; },
         "drop/ingress/srtp_truncated"},
        {"payload bit flipped", [&] { bytes p = speaker.protect(next()); p[30] ^= 0x10; return p; }, "drop/ingress/srtp_auth"},
        {"tag bit flipped", [&] { bytes p = speaker.protect(next()); p.back() ^= 0x01; return p; }, "drop/ingress/srtp_auth"},
        {"MKI the relay does not hold", [&] { return stranger.protect(next()); }, "drop/ingress/srtp_mki"},
        {"right MKI, wrong key", [&] { return forger.protect(next()); }, "drop/ingress/srtp_auth"},
        {"plain RTP where SRTP is required (its byte at the MKI's place happens to be 01)",
         [&] { bytes p = next(); p[p.size() - 11] = 0x01; return p; }, "drop/ingress/srtp_auth"},
        {"a speaker with no key", [&] { return speaker.protect(rtp_of(1, 960, 5678)); }, "drop/ingress/srtp_no_key", 5006},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const auto before = all_counters(*t.r);
        t.send(frame_of(row.make(), row.sport));
        EXPECT_TRUE(listener_rtp(t.port).empty()) << "a bad packet reached the listener";
        const auto after = all_counters(*t.r);
        for (const auto& [name, v] : after) {
            const uint64_t d = v - before.at(name);
            if (name == row.counter) {
                EXPECT_EQ(d, 1u) << name;
            } else if (name.rfind("drop/", 0) == 0) {
                EXPECT_EQ(d, 0u) << name << " moved too";
            }
        }
        EXPECT_EQ(after.at("drop/ingress/policed"), 0u);
        // The stream goes on: the next authentic packet passes.
        const bytes plain = next();
        t.send(frame_of(speaker.protect(plain)));
        const auto got = listener_rtp(t.port);
        ASSERT_EQ(got.size(), 1u) << "the authentic packet after it was lost";
        EXPECT_EQ(got[0], plain);
    }
}

// A spoofer with the speaker's addresses and SSRC, who even knows the next
// sequence number and timestamp (it can watch the stream), but not the key:
// 4 forgeries before every real packet, each one MAC, none forwarded; the
// speaker's 91 packets all reach the listener, none policed.
TEST(srtp_ingress, a_spoofer_without_the_key_gets_nothing_through_and_costs_the_speaker_nothing) {
    srtp_relay t("srtpspoof", control::srtp_ingress_mode::required, control::srtp_egress_mode::off);
    t.speaker_key(spec_of("a", 1, 0x01));
    peer speaker({{1, 0x01}}, true);
    peer spoofer({{77, 0x01}}, true);
    const auto before = all_counters(*t.r);
    constexpr unsigned n = 91, per = 4;
    std::vector<uint16_t> got;
    auto last = std::chrono::steady_clock::now();
    for (unsigned k = 0; k < n; ++k) {
        // Pacing only: the policer refills by the clock.
        std::this_thread::sleep_until(last + std::chrono::milliseconds(20));
        last = std::chrono::steady_clock::now();
        const uint16_t seq = static_cast<uint16_t>(40000 + k);
        for (unsigned s = 0; s < per; ++s) {
            bytes forged = rtp_of(seq, 960u * seq, 1234, 81);
            inject(t.port, frame_of(spoofer.protect(forged)));
        }
        inject(t.port, frame_of(speaker.protect(rtp_of(seq, 960u * seq))));
        settle(*t.r);
        for (const auto& p : listener_rtp(t.port)) {
            EXPECT_EQ(p.size(), 12u + 80u) << "a forgery reached the listener";
            got.push_back(static_cast<uint16_t>(p[2] << 8 | p[3]));
        }
    }
    const auto after = all_counters(*t.r);
    ASSERT_EQ(got.size(), n) << "the real speaker lost packets";
    for (unsigned k = 0; k < n; ++k) EXPECT_EQ(got[k], static_cast<uint16_t>(40000 + k));
    EXPECT_EQ(after.at("drop/ingress/srtp_auth") - before.at("drop/ingress/srtp_auth"), uint64_t{n} * per);
    EXPECT_EQ(after.at("drop/ingress/policed") - before.at("drop/ingress/policed"), 0u);
    EXPECT_EQ(after.at("rtp_in") - before.at("rtp_in"), n);
}

// A speaker that restarts ahead of its old numbers (a new sender, the same
// key and SSRC) is followed as a candidate stream and taken on after
// rtp_resync_quiet_ms. A forger who keeps a consistent stream of its own
// going from the moment the speaker stops holds the candidate (one that
// follows itself is not displaced, rtp_track.h), and a review took that for
// a lock-out. It is not: the candidate takes over only through an
// authentic packet, so once the quiet time has passed each forgery is a
// resync that fails its MAC and is not kept, the forged candidate goes
// stale within its hold time, and the speaker's next packets take it.
// Rejected forgeries cost no MAC while they only follow the candidate.
TEST(srtp_ingress, a_forged_stream_cannot_hold_the_candidate_a_restarted_speaker_resyncs_through) {
    srtp_relay t("srtpcand", control::srtp_ingress_mode::required, control::srtp_egress_mode::off);
    t.speaker_key(spec_of("a", 1, 0x01));
    peer spoofer({{77, 0x01}}, true);
    auto paced = [last = std::chrono::steady_clock::now()]() mutable {
        std::this_thread::sleep_until(last + std::chrono::milliseconds(20));
        last = std::chrono::steady_clock::now();
    };
    std::vector<uint16_t> got;
    auto heard = [&] {
        settle(*t.r);
        for (const auto& p : listener_rtp(t.port)) {
            EXPECT_EQ(p.size(), 12u + 80u) << "a forgery reached the listener";
            got.push_back(static_cast<uint16_t>(p[2] << 8 | p[3]));
        }
    };
    {
        peer speaker({{1, 0x01}}, true);
        for (uint16_t k = 0; k < 10; ++k) {
            paced();
            inject(t.port, frame_of(speaker.protect(rtp_of(static_cast<uint16_t>(1000 + k), 960u * k))));
            heard();
        }
    }
    ASSERT_EQ(got.size(), 10u);
    got.clear();
    const auto before = all_counters(*t.r);
    // The speaker is gone; the forger's stream starts at once and keeps going.
    uint16_t fseq = 30000;
    uint32_t fts = 5000000;
    auto forge = [&] {
        inject(t.port, frame_of(spoofer.protect(rtp_of(fseq++, fts, 1234, 81))));
        fts += 960;
    };
    for (unsigned k = 0; k < 60; ++k) {   // 1.2 s: past rtp_resync_quiet_ms
        paced();
        forge();
        heard();
    }
    // The speaker comes back ahead (a new libsrtp2 context: index from its own numbers).
    peer speaker({{1, 0x01}}, true);
    constexpr unsigned n = 20;
    for (unsigned k = 0; k < n; ++k) {
        paced();
        forge();
        inject(t.port, frame_of(speaker.protect(rtp_of(static_cast<uint16_t>(21000 + k), 9000000 + 960u * k))));
        heard();
    }
    const auto after = all_counters(*t.r);
    // Its first packet starts the candidate (the forged one went stale), the second resyncs.
    ASSERT_EQ(got.size(), n - 1) << "the restarted speaker never resynced";
    for (unsigned k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], static_cast<uint16_t>(21001 + k));
    EXPECT_EQ(after.at("rtp_resyncs") - before.at("rtp_resyncs"), 1u);
    EXPECT_EQ(after.at("rtp_in") - before.at("rtp_in"), n - 1);
}

// Egress: two listeners, 91 packets; each packet is protected once (not once
// per listener), both listeners get the same ciphertext, and it decrypts
// (libsrtp2 with the session key) to what the speaker sent: plain RTP, or
// SRTP under the speaker's own key.
TEST(srtp_egress, every_listener_gets_the_same_ciphertext_protected_once) {
    for (const bool in : {false, true}) {
        SCOPED_TRACE(in ? "speaker sends SRTP" : "speaker sends RTP");
        srtp_relay t(in ? "srtpeg1" : "srtpeg0", in ? control::srtp_ingress_mode::required : control::srtp_ingress_mode::off,
                     control::srtp_egress_mode::session_key);
        t.r->state().listener_add(1, listener_ip, listener_port + 2, 0);
        t.r->state().publish();
        t.session_key(spec_of("s1", 50, 0x01));
        if (in) t.speaker_key(spec_of("a", 1, 0x07));
        peer speaker({{1, 0x07}}, true);
        peer listener_a({{50, 0x01}}, false), listener_b({{50, 0x01}}, false);
        settle(*t.r);
        (void)drain(t.port);
        const auto before = all_counters(*t.r);
        constexpr unsigned n = 91;
        for (unsigned k = 0; k < n; ++k) {
            const uint16_t seq = static_cast<uint16_t>(65500 + k);   // across the ROC wrap
            const bytes plain = rtp_of(seq, 960u * k);
            t.send(frame_of(in ? speaker.protect(plain) : plain));
            std::vector<bytes> to_a, to_b;
            for (const auto& f : drain(t.port)) {
                const bytes rtp(f.begin() + 42, f.end());
                (be16(f.data() + 36) == listener_port ? to_a : to_b).push_back(rtp);
            }
            ASSERT_EQ(to_a.size(), 1u) << k;
            ASSERT_EQ(to_b.size(), 1u) << k;
            EXPECT_EQ(to_a[0], to_b[0]) << "the same ciphertext for every listener";
            EXPECT_EQ(to_a[0].size(), plain.size() + 1 + 10) << "MKI and tag added";
            EXPECT_NE(0, std::memcmp(to_a[0].data() + 12, plain.data() + 12, 80)) << "sent in clear";
            EXPECT_EQ(listener_a.unprotect(to_a[0]), plain) << k;
            EXPECT_EQ(listener_b.unprotect(to_b[0]), plain) << k;
        }
        const auto after = all_counters(*t.r);
        EXPECT_EQ(after.at("srtp_protected") - before.at("srtp_protected"), n) << "once per packet, not per listener";
        EXPECT_EQ(after.at("replicas_out") - before.at("replicas_out"), 2 * n);
        EXPECT_EQ(after.at("srtp_authenticated") - before.at("srtp_authenticated"), in ? n : 0u);
    }
}

// A session that protects but holds no key sends nothing (fails closed).
TEST(srtp_egress, without_a_session_key_nothing_is_sent_in_clear) {
    srtp_relay t("srtpnokey", control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key);
    const auto before = all_counters(*t.r);
    for (uint16_t k = 0; k < 7; ++k) t.send(frame_of(rtp_of(k, 960u * k)));
    EXPECT_TRUE(drain(t.port).empty());
    const auto after = all_counters(*t.r);
    EXPECT_EQ(after.at("drop/egress/srtp_no_key") - before.at("drop/egress/srtp_no_key"), 7u);
}

// An IPv4 replica must fit the port's MTU, as an IPv6 one must: a speaker
// packet that filled the MTU leaves 11 bytes longer with the session key's
// MKI and tag. Before, such a replica left anyway, over the MTU with DF
// set; now no listener gets it and drop/egress/ipv4_too_big counts it once
// per packet, not per listener. Two listeners; one row per packet size.
TEST(srtp_egress, a_replica_longer_than_the_mtu_after_protection_is_not_sent) {
    srtp_relay t("srtpmtu", control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key);
    t.r->state().listener_add(1, listener_ip, listener_port + 2, 0);
    t.r->state().publish();
    t.session_key(spec_of("s1", 50, 0x01));
    settle(*t.r);
    (void)drain(t.port);
    const size_t room = t.prof.ports[0].mtu - 28;   // RTP bytes that fill the MTU as IPv4: 1472
    constexpr size_t trailer = 1 + 10;              // MKI and tag
    struct row {
        const char* what;
        size_t rtp_len;
        bool sent;
    } const rows[] = {
        {"room for the MKI and tag: sent, the replica fills the MTU", room - trailer, true},
        {"one byte more: not sent", room - trailer + 1, false},
        {"a speaker packet that fills the MTU", room, false},
        {"a small packet after them: sent", 92, true},
    };
    uint16_t seq = 1;
    for (const auto& rw : rows) {
        SCOPED_TRACE(rw.what);
        const bytes plain = rtp_of(seq, 960u * seq, 1234, rw.rtp_len - 12);
        ++seq;
        const auto before = all_counters(*t.r);
        t.send(frame_of(plain));
        const auto out = drain(t.port);
        const auto after = all_counters(*t.r);
        EXPECT_EQ(after.at("rtp_in") - before.at("rtp_in"), 1u);
        if (rw.sent) {
            ASSERT_EQ(out.size(), 2u);
            for (const auto& f : out) {
                EXPECT_EQ(f.size(), 42 + rw.rtp_len + trailer);
                EXPECT_LE(f.size(), t.prof.ports[0].mtu + 14u);
            }
            EXPECT_EQ(after.at("drop/egress/ipv4_too_big"), before.at("drop/egress/ipv4_too_big"));
        } else {
            EXPECT_TRUE(out.empty()) << out.size() << " replicas sent over the MTU";
            EXPECT_EQ(after.at("drop/egress/ipv4_too_big") - before.at("drop/egress/ipv4_too_big"), 1u)
                << "once per packet";
        }
        EXPECT_EQ(after.at("drop/egress/ipv6_too_big"), before.at("drop/egress/ipv6_too_big"));
    }
}

// Rotation of the session key under a running stream: k1 (MKI 01) active;
// k2 (MKI 02) announced at packet 30, activated at 60, k1 removed at 80. A
// listener given both keys decrypts every packet: sequence numbers
// contiguous, none lost; the MKI switches at the activation.
TEST(srtp_rotation, session_key_switch_loses_no_packet) {
    srtp_relay t("srtprot", control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key);
    t.session_key(spec_of("k1", 50, 0x01));
    peer listener({{50, 0x01}, {60, 0x02}}, false);
    peer old_only({{50, 0x01}}, false);
    std::vector<uint16_t> got;
    std::vector<uint8_t> mki;
    unsigned old_key_ok = 0;
    for (unsigned k = 0; k < 91; ++k) {
        if (k == 30) t.session_key(spec_of("k2", 60, 0x02));
        if (k == 60) {
            t.r->state().srtp_key_activate(1, "k2");
            t.r->state().publish();
        }
        if (k == 80) {
            t.r->state().srtp_key_del({1, std::nullopt}, "k1");
            t.r->state().publish();
        }
        const uint16_t seq = static_cast<uint16_t>(7000 + k);
        const bytes plain = rtp_of(seq, 960u * k);
        t.send(frame_of(plain));
        for (const auto& rtp : listener_rtp(t.port)) {
            mki.push_back(rtp[rtp.size() - 11]);
            old_key_ok += !old_only.unprotect(rtp).empty();
            const bytes p = listener.unprotect(rtp);
            ASSERT_EQ(p, plain) << "packet " << k;
            got.push_back(static_cast<uint16_t>(p[2] << 8 | p[3]));
        }
    }
    ASSERT_EQ(got.size(), 91u);
    for (unsigned k = 0; k < 91; ++k) EXPECT_EQ(got[k], 7000 + k);
    for (unsigned k = 0; k < 91; ++k) EXPECT_EQ(mki[k], k < 60 ? 0x01 : 0x02) << k;
    EXPECT_EQ(old_key_ok, 60u) << "a listener with only the old key hears up to the switch";
}

// Rotation of a speaker's key: the relay holds a (MKI 01), b (MKI 02) is
// added, the speaker switches to it at packet 40, a is removed at 70: all 91
// packets arrive in order; a packet under a after that is refused by MKI.
TEST(srtp_rotation, speaker_key_switch_loses_no_packet) {
    srtp_relay t("srtpspk", control::srtp_ingress_mode::required, control::srtp_egress_mode::off);
    t.speaker_key(spec_of("a", 1, 0x01));
    peer speaker({{1, 0x01}, {2, 0x02}}, true);
    std::vector<uint16_t> got;
    for (unsigned k = 0; k < 91; ++k) {
        if (k == 20) t.speaker_key(spec_of("b", 2, 0x02));
        if (k == 70) {
            t.r->state().srtp_key_del({1, std::make_pair(speaker_ip, 5004u)}, "a");
            t.r->state().publish();
        }
        const uint16_t seq = static_cast<uint16_t>(100 + k);
        t.send(frame_of(speaker.protect(rtp_of(seq, 960u * k), k < 40 ? 0 : 1)));
        for (const auto& rtp : listener_rtp(t.port)) got.push_back(static_cast<uint16_t>(rtp[2] << 8 | rtp[3]));
    }
    ASSERT_EQ(got.size(), 91u);
    for (unsigned k = 0; k < 91; ++k) EXPECT_EQ(got[k], 100 + k);
    const auto before = all_counters(*t.r);
    t.send(frame_of(speaker.protect(rtp_of(191, 960u * 91), 0)));
    EXPECT_TRUE(listener_rtp(t.port).empty());
    EXPECT_EQ(all_counters(*t.r).at("drop/ingress/srtp_mki") - before.at("drop/ingress/srtp_mki"), 1u);
}

// A mix session that protects: the mixer encrypts each mixed packet once on
// its own thread (crypto user nb_rx_queues), the fan-out shard gets the
// ciphertext, the recorder the plaintext; the ciphertext decrypts (libsrtp2)
// to exactly what was recorded.
// With a fleet trunk listener on a relay whose trunks are authenticated,
// the trunk twin gets the same mixed packet sealed once more with the trunk
// key (AEAD_AES_128_GCM), at the index the listeners' copy was claimed at.
TEST(srtp_egress, the_mixer_protects_each_mixed_packet_once_per_key_and_records_the_plaintext) {
    constexpr uint64_t ms = 1000000;
    const bytes key = key_bytes(50);
    srtp::key* k = srtp::key_create(srtp::suite::aes_cm_128_hmac_sha1_80, key.data(), key.size(), 2);
    ASSERT_NE(k, nullptr);
    srtp::keyset ks{};
    ks.nb_keys = 1;
    ks.mki_len = 1;
    ks.mki[0] = 0x01;
    ks.suite_id = static_cast<uint8_t>(srtp::suite::aes_cm_128_hmac_sha1_80);
    ks.keys[0] = k;
    dp::dp_listener_list someone{};            // has_listeners() looks for a list
    dp::dp_session sess{};
    sess.id = 7;
    sess.mode = dp::session_mode_mix;
    sess.record = 1;
    sess.generation = 100;
    sess.srtp_egress = 1;
    sess.srtp_tx = &ks;
    dp::dp_srtp_egress streams{};
    sess.srtp_streams = &streams;
    sess.shards[0].v4[0] = &someone;
    const bytes tkey = key_bytes(70, 28);
    srtp::key* tk = srtp::key_create(srtp::suite::aead_aes_128_gcm, tkey.data(), tkey.size(), 2);
    ASSERT_NE(tk, nullptr);
    srtp::keyset tks{};
    tks.nb_keys = 1;
    tks.suite_id = static_cast<uint8_t>(srtp::suite::aead_aes_128_gcm);
    tks.keys[0] = tk;
    dp::dp_session twin{};                     // its trunk listeners (dp_session::trunk)
    twin.id = 7;
    twin.index = dp::trunk_twin_bit;
    twin.generation = sess.generation;
    twin.srtp_egress = 1;
    twin.srtp_tx = &tks;
    twin.shards[0].v4[0] = &someone;
    sess.trunk = &twin;
    dp::dp_session* ptrs[1] = {&sess};
    dp::dp_snapshot snap{};
    snap.version = 1;
    snap.nb_sessions = 1;
    snap.nb_fanout_shards = 1;
    snap.sessions = ptrs;
    dp::dp_shared sh;
    rte_ring* in = rte_ring_create("srtp_mixin", 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
    rte_ring* rec = rte_ring_create("srtp_mixrec", 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
    rte_ring* shard = rte_ring_create("srtp_mixshard", 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
    sh.snapshot.store(&snap);
    sh.record_ring = rec;
    sh.shard_rings[0] = shard;
    sh.nb_shards = 1;
    sh.nb_rx_queues = 1;                       // the mixer is crypto user 1
    const unsigned in_use0 = rte_mempool_in_use_count(test_pool());
    // The messages of ring r, those tagged with the trunk twin in *trunk.
    auto take = [](rte_ring* r, std::vector<bytes>* trunk = nullptr) {
        std::vector<bytes> v;
        void* obj;
        while (rte_ring_dequeue(r, &obj) == 0) {
            auto* m = static_cast<rte_mbuf*>(obj);
            auto& to = trunk != nullptr && (dp::message_session(m) & dp::trunk_twin_bit) ? *trunk : v;
            to.emplace_back(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_mtod(m, const uint8_t*) + m->data_len);
            rte_pktmbuf_free(m);
        }
        return v;
    };
    std::vector<bytes> recorded, sent, sealed;
    uint64_t protected_n = 0;
    {
        svc::mixer_config mc;
        mc.pool = test_pool();
        mc.shared = &sh;
        mc.in_ring = in;
        svc::mixer mx(mc);
        mx.set_session_frame_ms(7, 20);
        const auto tone = opus_tone(440, 40, 2, 0.3);
        for (size_t f = 0; f < tone.size() + 10; ++f) {
            if (f < tone.size()) {
                const auto p = rtp_packet(static_cast<uint16_t>(f), 960 * uint32_t(f), 1234, tone[f]);
                rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
                ASSERT_NE(m, nullptr);
                std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(p.size())), p.data(), p.size());
                dp::set_message_session(m, 0, sess.generation);
                ASSERT_EQ(rte_ring_enqueue(in, m), 0);
            }
            mx.poll(1000 * ms + f * 20 * ms);
            for (auto& b : take(rec)) recorded.push_back(std::move(b));
            for (auto& b : take(shard, &sealed)) sent.push_back(std::move(b));
        }
        protected_n = mx.counters().srtp_protected;
    }
    peer listener({{50, 0x01}}, false);
    ASSERT_GT(recorded.size(), 30u);
    ASSERT_EQ(sent.size(), recorded.size());
    ASSERT_EQ(sealed.size(), sent.size());
    EXPECT_EQ(protected_n, 2 * sent.size()) << "once per mixed packet and key";
    peer trunk_rx = peer::trunk(70, false);
    for (size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(sent[i].size(), recorded[i].size() + 11);
        EXPECT_NE(0, std::memcmp(sent[i].data() + 12, recorded[i].data() + 12, recorded[i].size() - 12)) << "in clear";
        EXPECT_EQ(trunk_rx.unprotect(sealed[i]), sent[i]) << "the trunk seal holds the listeners' ciphertext " << i;
        EXPECT_EQ(listener.unprotect(sent[i]), recorded[i]) << i;
    }
    EXPECT_EQ(in_use0, rte_mempool_in_use_count(test_pool())) << "mbufs leaked";
    for (rte_ring* r : {in, rec, shard}) rte_ring_free(r);
    srtp::key_free(k);
    srtp::key_free(tk);
}

// The egress index (docs/srtp.md "Egress index"): whatever the speaker's
// sequence numbers do, no (session key, SSRC, index) is protected twice.
// Each row is a phase of one session's life, in order; a libsrtp2 listener
// that holds the session key (and libsrtp2's own replay check: an index it
// saw again would be refused) must decrypt every packet the relay sends,
// the sequence numbers it sees go on by exactly one across every phase,
// and the indices, collected over the whole table, never repeat.
struct egress_phase {
    const char* what;
    uint16_t first_seq;                        // the speaker's first sequence number in this phase
    unsigned n;                                // packets sent
    unsigned lost;                             // of which the relay drops (a restart's first packet: seq_jump)
    enum { none, quiet, readd, recreate } before;
    unsigned gap;                              // sequence numbers the relay skips at the phase's first packet
    bool srtp_too;                             // also for an SRTP speaker (which cannot go back: srtp_replay)
};

TEST(srtp_egress, a_speaker_that_goes_back_never_gets_an_egress_index_again) {
    for (const bool in : {false, true}) {
        SCOPED_TRACE(in ? "speaker sends SRTP" : "speaker sends RTP");
        const egress_phase phases[] = {
            {"a stream of 41 from 1000", 1000, 41, 0, egress_phase::none, 0, true},
            {"the speaker restarts with its SSRC, 800 lower (ffmpeg -ssrc): a resync after 1 s", 200, 23, 1,
             egress_phase::quiet, 0, false},
            {"and again, at the sequence number of its first stream", 1000, 17, 1, egress_phase::quiet, 0, false},
            {"removed and added again (fresh per-queue entries), from 5", 5, 19, 0, egress_phase::readd, 0, true},
            {"the session ended and created again with the same key, from 1000", 1000, 13, 0, egress_phase::recreate,
             1024, true},
        };
        srtp_relay t(in ? "srtpidx1" : "srtpidx0", in ? control::srtp_ingress_mode::required : control::srtp_ingress_mode::off,
                     control::srtp_egress_mode::session_key);
        auto keys = [&] {
            t.session_key(spec_of("s1", 50, 0x01));
            if (in) t.speaker_key(spec_of("a", 1, 0x07));
        };
        keys();
        peer listener({{50, 0x01}}, false);
        std::set<uint64_t> seen;               // ROC << 16 | SEQ as the listener estimates it
        uint64_t roc = 0;
        int last_seq = -1;
        unsigned ts_base = 0;
        const auto before = all_counters(*t.r);
        unsigned sent = 0, expected = 0, lost = 0;
        for (const auto& ph : phases) {
            SCOPED_TRACE(ph.what);
            if (in && !ph.srtp_too) continue;
            lost += ph.lost;
            if (ph.before == egress_phase::quiet) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1100));   // rtp_resync_quiet_ms
            } else if (ph.before == egress_phase::readd) {
                t.r->state().speaker_del(1, speaker_ip, 5004);
                t.r->state().publish();
                settle(*t.r);
                t.r->state().speaker_add(1, speaker_ip, 5004, 1234u);
                t.r->state().publish();
                if (in) t.speaker_key(spec_of("a", 1, 0x07));
            } else if (ph.before == egress_phase::recreate) {
                t.r->state().session_end(1);
                t.r->state().publish();
                settle(*t.r);
                t.r->state().load_static(t.prof);
                EXPECT_TRUE(resolve(*t.r, t.port, {listener_ip}).empty());
                keys();
            }
            // A restarted sender is a new libsrtp2 context, index from its own numbers.
            peer speaker({{1, 0x07}}, true);
            ts_base += 7777777;
            for (unsigned k = 0; k < ph.n; ++k) {
                const uint16_t seq = static_cast<uint16_t>(ph.first_seq + k);
                const bytes plain = rtp_of(seq, ts_base + 960u * k);
                t.send(frame_of(in ? speaker.protect(plain) : plain));
                ++sent;
                const auto out = listener_rtp(t.port);
                if (k < ph.lost) {
                    EXPECT_TRUE(out.empty()) << k;
                    continue;
                }
                ASSERT_EQ(out.size(), 1u) << k;
                ++expected;
                const uint16_t wire_seq = be16(out[0].data() + 2);
                if (last_seq >= 0) {
                    EXPECT_EQ(wire_seq, static_cast<uint16_t>(last_seq + 1 + (k == 0 ? ph.gap : 0))) << k << ": continuous";
                }
                if (last_seq > wire_seq) ++roc;
                last_seq = wire_seq;
                EXPECT_TRUE(seen.insert(roc << 16 | wire_seq).second) << k << ": index used twice";
                const bytes got = listener.unprotect(out[0]);
                ASSERT_EQ(got.size(), plain.size()) << k << ": the listener cannot decrypt it";
                EXPECT_TRUE(std::equal(got.begin() + 4, got.end(), plain.begin() + 4)) << k << ": the speaker's packet";
            }
        }
        const auto after = all_counters(*t.r);
        EXPECT_EQ(seen.size(), expected);
        EXPECT_EQ(after.at("srtp_protected") - before.at("srtp_protected"), expected);
        EXPECT_EQ(after.at("drop/egress/srtp_late") - before.at("drop/egress/srtp_late"), 0u);
        EXPECT_EQ(sent - expected, lost);
    }
}

// Late joiners (docs/srtp.md "Late joiners and the ROC"): every listener of
// a session gets one ciphertext, numbered by the relay, so a listener that
// joins after the egress index passed 65 535 must be told the rollover
// counter: libsrtp2 (and GStreamer's srtpdec) assume ROC 0 at their first
// packet. The session's `srtp.streams` says where the numbering stands; a
// libsrtp2 receiver started with srtp_set_stream_roc(ssrc, roc) decrypts
// from its first packet, one without it decrypts nothing.
TEST(srtp_egress, a_late_joiner_decrypts_with_the_roc_the_session_shows) {
    srtp_relay t("srtplate", control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key);
    t.session_key(spec_of("s1", 50, 0x01));
    peer early({{50, 0x01}}, false);
    constexpr unsigned n = 180;                     // 65 420 .. 65 599: across the wrap (within the policer's depth)
    constexpr uint64_t first = 65536 - 116;
    for (unsigned k = 0; k < n; ++k) {
        const bytes plain = rtp_of(static_cast<uint16_t>(first + k), 960u * k);
        t.send(frame_of(plain));
        const auto out = listener_rtp(t.port);
        ASSERT_EQ(out.size(), 1u) << k;
        ASSERT_EQ(early.unprotect(out[0]), plain) << k << ": the listener that was there from the start";
    }
    const control::srtp_stream_view sv = t.stream();
    EXPECT_EQ(sv.ssrc, 1234u);
    EXPECT_EQ(sv.next_index, first + n);
    EXPECT_EQ(sv.reserved, dp::srtp_egress_unlimited) << "no journal: nothing to reserve";
    const uint32_t roc = static_cast<uint32_t>(sv.next_index >> 16);
    ASSERT_EQ(roc, 1u);
    // Two listeners join now: one told the ROC, one not.
    t.r->state().listener_add(1, listener_ip, listener_port + 2, 0);
    t.r->state().publish();
    peer told({{50, 0x01}}, false, true, false, 1234);
    ASSERT_EQ(srtp_set_stream_roc(told.ctx, 1234, roc), srtp_err_status_ok);
    peer not_told({{50, 0x01}}, false);
    for (unsigned k = 0; k < 20; ++k) {
        const bytes plain = rtp_of(static_cast<uint16_t>(first + n + k), 960u * (n + k));
        t.send(frame_of(plain));
        std::vector<bytes> to_early, to_late;
        for (const auto& f : drain(t.port))
            (be16(f.data() + 36) == listener_port ? to_early : to_late).emplace_back(f.begin() + 42, f.end());
        ASSERT_EQ(to_early.size(), 1u);
        ASSERT_EQ(to_late.size(), 1u);
        EXPECT_EQ(be16(to_late[0].data() + 2), static_cast<uint16_t>((sv.next_index & 0xffff) + k)) << "starts at the seq shown";
        EXPECT_EQ(early.unprotect(to_early[0]), plain) << k;
        EXPECT_EQ(told.unprotect(to_late[0]), plain) << k << ": the late joiner told the ROC";
        EXPECT_TRUE(not_told.unprotect(to_late[0]).empty()) << k << ": without the ROC it cannot authenticate";
    }
}

// A relay restarted with the same session key (a profile key file, or the
// application setting the same key again) never protects an index twice
// (docs/srtp.md "Egress reservations"): an index is used only once the
// journal holds a reservation above it, and the restart resumes above the
// reservation. The speaker starts again from the same numbers; the listener
// that was there before (its libsrtp2 context goes on) decrypts every
// packet, sees each (ROC, SEQ) once, and no packet went out unreserved.
TEST(srtp_egress, a_relay_restarted_with_the_same_key_never_protects_an_index_twice) {
    char tmpl[] = "/tmp/stentor-srtp-journal-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    peer listener({{50, 0x01}}, false);
    std::set<uint64_t> seen;
    uint64_t roc = 0;
    int last_seq = -1;
    uint64_t reserved = 0;                           // the last run's reservation, as it ended
    auto run = [&](const char* name, unsigned n) {
        SCOPED_TRACE(name);
        control::journal_options jo;
        jo.dir = dir;
        control::journal jr(jo);
        srtp_relay t(name, control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key, false, &jr);
        t.session_key(spec_of("s1", 50, 0x01));    // the same key every run
        const auto before = all_counters(*t.r);
        // The speaker's first packet: no reservation yet, not sent.
        t.send(frame_of(rtp_of(1000, 0)));
        EXPECT_TRUE(listener_rtp(t.port).empty());
        EXPECT_EQ(t.stream().reserved, 0u);
        ASSERT_TRUE(t.r->state().srtp_reserve());
        t.r->state().publish();                      // written and synced, then the limit moves
        EXPECT_GT(t.stream().reserved, 1000u);
        for (unsigned k = 1; k <= n; ++k) {
            const bytes plain = rtp_of(static_cast<uint16_t>(1000 + k), 960u * k);
            t.send(frame_of(plain));
            const auto out = listener_rtp(t.port);
            ASSERT_EQ(out.size(), 1u) << k;
            const uint16_t seq = be16(out[0].data() + 2);
            if (last_seq > seq) ++roc;
            last_seq = seq;
            EXPECT_TRUE(seen.insert(roc << 16 | seq).second) << k << ": index " << (roc << 16 | seq) << " used twice";
            const bytes got = listener.unprotect(out[0]);
            ASSERT_EQ(got.size(), plain.size()) << k << ": the listener cannot decrypt it";
            EXPECT_TRUE(std::equal(got.begin() + 4, got.end(), plain.begin() + 4)) << k << ": the speaker's packet";
        }
        const auto after = all_counters(*t.r);
        EXPECT_EQ(after.at("drop/egress/srtp_unreserved") - before.at("drop/egress/srtp_unreserved"), 1u);
        EXPECT_EQ(after.at("srtp_protected") - before.at("srtp_protected"), n);
        reserved = t.stream().reserved;
    };   // the relay goes without a clean stop: what is durable is what was published
    run("srtpjr1", 50);
    const uint64_t first2_floor = reserved;
    const size_t before2 = seen.size();
    run("srtpjr2", 50);
    EXPECT_EQ(seen.size(), before2 + 50);
    EXPECT_GE(*std::next(seen.begin(), static_cast<long>(before2)), first2_floor) << "resumed above the last reservation";
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// Ingress marks (docs/srtp.md "Ingress marks"): after a restart, an SRTP
// speaker's stream goes on from where the journal last wrote it down. A
// packet recorded before the restart and replayed after it (while the
// speaker is quiet) is refused (srtp_replay) instead of starting the
// stream; and a speaker past its first 65 536 packets is accepted at once
// (before the marks the fresh stream assumed ROC 0 and every packet failed
// its MAC until the speaker was removed and added again).
TEST(srtp_ingress, after_a_restart_a_recorded_packet_is_a_replay_and_the_speaker_goes_on) {
    char tmpl[] = "/tmp/stentor-srtp-ingress-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    peer speaker({{1, 0x07}}, true);
    std::vector<bytes> recorded;                   // what an eavesdropper kept
    constexpr uint16_t first = 65500;
    constexpr unsigned n = 100;                    // 65 500 .. 65 599: the speaker's ROC goes to 1
    {
        control::journal_options jo;
        jo.dir = dir;
        control::journal jr(jo);
        srtp_relay t("srtpinj1", control::srtp_ingress_mode::required, control::srtp_egress_mode::off, false, &jr);
        t.speaker_key(spec_of("a", 1, 0x07));
        for (unsigned k = 0; k < n; ++k) {
            const bytes plain = rtp_of(static_cast<uint16_t>(first + k), 960u * k);
            recorded.push_back(speaker.protect(plain));
            t.send(frame_of(recorded.back()));
            ASSERT_EQ(listener_rtp(t.port).size(), 1u) << k;
        }
        EXPECT_TRUE(t.r->state().srtp_mark_ingress());
        t.r->state().publish();                    // the mark is on disk
        EXPECT_FALSE(t.r->state().srtp_mark_ingress()) << "nothing moved since";
    }   // a crash: no clean stop
    control::journal_options jo;
    jo.dir = dir;
    control::journal jr(jo);
    srtp_relay t("srtpinj2", control::srtp_ingress_mode::required, control::srtp_egress_mode::off, false, &jr);
    t.speaker_key(spec_of("a", 1, 0x07));          // the application sets the key again
    const auto before = all_counters(*t.r);
    for (const unsigned k : {50u, 0u, 99u}) {
        SCOPED_TRACE(k);
        t.send(frame_of(recorded[k]));             // replayed while the speaker is quiet
        EXPECT_TRUE(listener_rtp(t.port).empty()) << "a recorded packet started the stream";
    }
    const auto mid = all_counters(*t.r);
    EXPECT_EQ(mid.at("drop/ingress/srtp_replay") - before.at("drop/ingress/srtp_replay"), 3u);
    for (unsigned k = n; k < n + 20; ++k) {
        const bytes plain = rtp_of(static_cast<uint16_t>(first + k), 960u * k);
        t.send(frame_of(speaker.protect(plain)));
        const auto out = listener_rtp(t.port);
        ASSERT_EQ(out.size(), 1u) << k << ": the speaker, ROC 1, after the restart";
        EXPECT_TRUE(std::equal(out[0].begin() + 12, out[0].end(), plain.begin() + 12)) << k;
    }
    const auto after = all_counters(*t.r);
    EXPECT_EQ(after.at("drop/ingress/srtp_auth") - before.at("drop/ingress/srtp_auth"), 0u);
    EXPECT_EQ(after.at("srtp_authenticated") - mid.at("srtp_authenticated"), 20u);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// Two SSRCs of one session each keep their own numbering; a packet of a
// stream that arrives after a later one was protected is not sent
// (egress/srtp_late): it would need an index below the high-water mark.
TEST(srtp_egress, a_reordered_packet_is_not_protected_below_the_high_water_mark) {
    srtp_relay t("srtpidxlate", control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key, true);
    t.session_key(spec_of("s1", 50, 0x01));
    peer listener({{50, 0x01}}, false);
    const auto before = all_counters(*t.r);
    for (uint16_t k = 0; k < 9; ++k) {
        t.send(frame_of(rtp_of(static_cast<uint16_t>(100 + k), 960u * k)));
        t.send(frame_of(rtp_of(static_cast<uint16_t>(40000 + k), 960u * k, 5678), 5006));
    }
    t.send(frame_of(rtp_of(110, 960u * 10)));
    t.send(frame_of(rtp_of(109, 960u * 9)));   // reordered: after 110
    std::map<uint32_t, std::vector<uint16_t>> by_ssrc;
    for (const auto& r : listener_rtp(t.port)) {
        by_ssrc[be32(r.data() + 8)].push_back(be16(r.data() + 2));
        EXPECT_FALSE(listener.unprotect(r).empty());
    }
    ASSERT_EQ(by_ssrc[1234].size(), 10u);
    ASSERT_EQ(by_ssrc[5678].size(), 9u);
    EXPECT_EQ(by_ssrc[1234].back(), 110);
    EXPECT_EQ(by_ssrc[5678].front(), 40000) << "a fresh SSRC keeps the speaker's numbers";
    const auto after = all_counters(*t.r);
    EXPECT_EQ(after.at("drop/egress/srtp_late") - before.at("drop/egress/srtp_late"), 1u);
}

control::srtp_key_spec trunk_spec(const std::string& id, uint8_t seed) {
    control::srtp_key_spec k;
    k.id = id;
    k.suite = srtp::suite::aead_aes_128_gcm;
    const bytes b = key_bytes(seed, 28);
    k.master = control::secure_bytes(b.size());
    std::memcpy(k.master.data(), b.data(), b.size());
    return k;
}

constexpr uint32_t trunk_edge_ip = 0xc6120003;     // 198.18.0.3
constexpr uint32_t trunk_origin_ip = 0xc6120001;   // 198.18.0.1 (the harness's relay address)
constexpr uint32_t edge_listener_ip = 0x0b000001;  // 11.0.0.1, behind the edge's gateway

// An edge (198.18.0.3): its trunk session (SRTP off both ways) takes the
// origin's trunk flow (198.18.0.1, SSRC 1234) and has one listener behind
// its gateway (a static MAC: no ARP from this address). `keyed`: the relay's
// trunks are authenticated and the flow holds the trunk key (seed 70);
// `keyless`: authenticated, no key; `plain`: trunks not authenticated.
struct trunk_edge {
    enum auth { keyed, keyless, plain };
    ring_port port;
    control::profile prof;
    std::unique_ptr<relay> r;
    unsigned pool0 = 0;
    explicit trunk_edge(const std::string& name, auth a = keyed)
        : port(fresh_ring_port(name)), prof(base_profile(port.name)) {
        prof.ports[0].ipv4 = trunk_edge_ip;
        prof.ports[0].mac = host_mac(trunk_edge_ip);   // what the origin resolved the edge to
        prof.ports[0].gateway_mac = host_mac(gateway_ip);
        r = std::make_unique<relay>(prof, relay_options{.launch = false});
        r->state().set_trunk_auth(a != plain);
        control::session_params sp;
        sp.id = 1;
        sp.udp_port = 40000;
        sp.trunk = true;
        sp.srtp_ingress = control::srtp_ingress_mode::off;
        sp.srtp_egress = control::srtp_egress_mode::off;
        r->state().session_create(sp);
        r->state().speaker_add(1, trunk_origin_ip, 40000, 1234u, true);
        if (a == keyed)
            r->state().srtp_key_add({1, std::make_pair(trunk_origin_ip, 40000u)}, trunk_spec("trunk-a", 70));
        r->state().listener_add(1, edge_listener_ip, listener_port, 0);
        r->state().publish();
        pool0 = rte_mempool_in_use_count(r->pool());
    }
    // The RTP its listener got for one frame from the origin's side.
    std::vector<bytes> take(const bytes& frame) {
        inject(port, frame);
        settle(*r);
        std::vector<bytes> out;
        for (const auto& f : drain(port))
            if (be32(f.data() + 30) == edge_listener_ip) out.emplace_back(f.begin() + 42, f.end());
        return out;
    }
    ~trunk_edge() {
        r->flush();
        EXPECT_EQ(pool0, rte_mempool_in_use_count(r->pool())) << "mbuf leak";
    }
};

// A fleet trunk (docs/fleet.md): the origin protects once, its trunk
// listener (the edge) gets the same ciphertext as its own listeners, and the
// edge's trunk session (SRTP off both ways) forwards it byte for byte: the
// edge's listeners decrypt with the origin's session key; the edge neither
// authenticates nor protects anything.
TEST(srtp_egress, a_trunk_edge_forwards_the_origins_ciphertext_as_is) {
    constexpr uint32_t edge_ip = trunk_edge_ip;   // the edge's address, as the origin's trunk listener
    constexpr unsigned n = 40;
    std::vector<bytes> to_edge;                // whole frames, as they leave the origin
    std::vector<bytes> origin_listener;        // RTP to the origin's own listener
    {
        srtp_relay t("srtptrk_o", control::srtp_ingress_mode::off, control::srtp_egress_mode::session_key);
        t.r->state().listener_add(1, edge_ip, 40000, 0, false, true);
        t.r->state().publish();
        t.session_key(spec_of("s1", 50, 0x01));
        EXPECT_TRUE(resolve(*t.r, t.port, {edge_ip}).empty());
        for (unsigned k = 0; k < n; ++k) {
            t.send(frame_of(rtp_of(static_cast<uint16_t>(100 + k), 960u * k)));
            for (const auto& f : drain(t.port)) {
                if (be32(f.data() + 30) == edge_ip) to_edge.push_back(f);
                else origin_listener.emplace_back(f.begin() + 42, f.end());
            }
        }
    }
    ASSERT_EQ(to_edge.size(), n);
    ASSERT_EQ(origin_listener.size(), n);
    trunk_edge edge("srtptrk_e", trunk_edge::plain);
    const auto before = all_counters(*edge.r);
    peer listener({{50, 0x01}}, false);
    for (unsigned k = 0; k < n; ++k) {
        const auto out = edge.take(to_edge[k]);
        ASSERT_EQ(out.size(), 1u) << k;
        EXPECT_EQ(out[0], origin_listener[k]) << "the origin's ciphertext, byte for byte";
        EXPECT_EQ(listener.unprotect(out[0]), rtp_of(static_cast<uint16_t>(100 + k), 960u * k))
            << "decrypted with the origin's session key";
    }
    const auto after = all_counters(*edge.r);
    EXPECT_EQ(after.at("srtp_protected") - before.at("srtp_protected"), 0u);
    EXPECT_EQ(after.at("srtp_authenticated") - before.at("srtp_authenticated"), 0u);
    EXPECT_EQ(after.at("rtp_in") - before.at("rtp_in"), n);
}

// What an origin with authenticated trunks sends: `n` speaker packets of
// the session (SRTP egress `eg`), each frame to the edge and each RTP
// packet to its own listener. The trunk key (seed 70) is set after the
// first packet: until then the edge gets nothing (egress/trunk_no_key).
struct origin_run {
    std::vector<bytes> to_edge;          // whole frames
    std::vector<bytes> to_listener;      // RTP
    uint64_t no_key = 0, protected_ = 0;
};
origin_run run_origin(const std::string& name, control::srtp_egress_mode eg, unsigned n) {
    origin_run o;
    srtp_relay t(name, control::srtp_ingress_mode::off, eg);
    t.r->state().set_trunk_auth(true);
    t.r->state().listener_add(1, trunk_edge_ip, 40000, 0, false, true);
    t.r->state().publish();
    if (eg == control::srtp_egress_mode::session_key) t.session_key(spec_of("s1", 50, 0x01));
    EXPECT_TRUE(resolve(*t.r, t.port, {trunk_edge_ip}).empty());
    const auto before = all_counters(*t.r);
    for (unsigned k = 0; k <= n; ++k) {
        if (k == 1) {
            EXPECT_TRUE(t.r->state().trunk_key_set(1, trunk_spec("trunk-a", 70)));
            EXPECT_FALSE(t.r->state().trunk_key_set(1, trunk_spec("trunk-a", 70))) << "the same key id: no change";
            t.r->state().publish();
        }
        t.send(frame_of(rtp_of(static_cast<uint16_t>(100 + k), 960u * k)));
        for (const auto& f : drain(t.port)) {
            if (be32(f.data() + 30) == trunk_edge_ip) {
                EXPECT_NE(k, 0u) << "no trunk key yet: nothing to the edge";
                o.to_edge.push_back(f);
            } else if (k > 0) {
                o.to_listener.emplace_back(f.begin() + 42, f.end());
            }
        }
    }
    const auto after = all_counters(*t.r);
    o.no_key = after.at("drop/egress/trunk_no_key") - before.at("drop/egress/trunk_no_key");
    o.protected_ = after.at("srtp_protected") - before.at("srtp_protected");
    return o;
}

// The trunk frame `f` with its UDP payload replaced (the IPv4 and UDP
// lengths and the UDP checksum redone by the harness's frame builder).
bytes with_payload(const bytes& f, const bytes& udp_payload) {
    frame_spec s;
    s.src_ip = be32(f.data() + 26);
    s.dst_ip = be32(f.data() + 30);
    s.src_port = static_cast<uint16_t>(f[34] << 8 | f[35]);
    s.dst_port = static_cast<uint16_t>(f[36] << 8 | f[37]);
    std::memcpy(s.dst_mac, f.data(), 6);
    std::memcpy(s.src_mac, f.data() + 6, 6);
    return udp_frame(s, udp_payload);
}

// An origin whose session protects (srtp.egress) seals its trunk copy once
// more with the trunk key: one protect per packet for the listeners, one
// for every edge. The edge authenticates it, takes the seal off and
// forwards the origin's ciphertext byte for byte; its listeners decrypt
// with the session key. Without the trunk key nothing leaves for the edge.
TEST(srtp_trunk, an_authenticated_trunk_carries_the_origins_ciphertext_under_the_trunk_key) {
    constexpr unsigned n = 30;
    const origin_run o = run_origin("trka_o", control::srtp_egress_mode::session_key, n);
    ASSERT_EQ(o.to_edge.size(), n);
    ASSERT_EQ(o.to_listener.size(), n);
    EXPECT_EQ(o.no_key, 1u) << "the packet before the trunk key: not sent to the edge";
    EXPECT_EQ(o.protected_, 1 + 2 * uint64_t{n}) << "the session key once, the trunk key once, per packet";
    peer trunk_rx = peer::trunk(70, false);
    peer listener({{50, 0x01}}, false);
    for (unsigned k = 0; k < n; ++k) {
        const bytes sealed(o.to_edge[k].begin() + 42, o.to_edge[k].end());
        EXPECT_NE(sealed, o.to_listener[k]);
        EXPECT_EQ(trunk_rx.unprotect(sealed), o.to_listener[k]) << "the trunk seal holds the listeners' ciphertext " << k;
    }
    trunk_edge e("trka_e");
    const auto before = all_counters(*e.r);
    for (unsigned k = 0; k < n; ++k) {
        const auto out = e.take(o.to_edge[k]);
        ASSERT_EQ(out.size(), 1u) << k;
        EXPECT_EQ(out[0], o.to_listener[k]) << "the origin's ciphertext, byte for byte";
        EXPECT_EQ(listener.unprotect(out[0]), rtp_of(static_cast<uint16_t>(101 + k), 960u * (k + 1)));
    }
    const auto after = all_counters(*e.r);
    EXPECT_EQ(after.at("srtp_authenticated") - before.at("srtp_authenticated"), n);
    EXPECT_EQ(after.at("srtp_protected") - before.at("srtp_protected"), 0u);
}

// What someone who can send with the origin's address (but holds no trunk
// key) gets through an edge with authenticated trunks: nothing. Each row is
// one forged or replayed packet after an authentic stream; it must move its
// counter by one, reach no listener, and leave the stream whole for the next
// authentic packet.
TEST(srtp_trunk, a_forged_or_replayed_trunk_packet_reaches_no_listener) {
    constexpr unsigned n = 24;
    const origin_run o = run_origin("trkf_o", control::srtp_egress_mode::off, n);
    ASSERT_EQ(o.to_edge.size(), n);
    {
    trunk_edge e("trkf_e");
    peer wrong_key = peer::trunk(71, true);
    struct row {
        const char* what;
        std::function<bytes()> forge;
        const char* counter;
    };
    const bytes& last = o.to_edge[n - 5];
    const bytes next_plain = rtp_of(static_cast<uint16_t>(100 + n), 960u * n);   // the next sequence number, in clear
    const std::vector<row> rows = {
        {"plain RTP, as an unauthenticated trunk carried it", [&] { return with_payload(last, next_plain); }, "drop/ingress/srtp_auth"},
        {"sealed with another key", [&] { return with_payload(last, wrong_key.protect(next_plain)); }, "drop/ingress/srtp_auth"},
        {"an earlier authentic packet again", [&] { return o.to_edge[n - 8]; }, "drop/ingress/srtp_replay"},
        {"one bit of the sealed payload flipped", [&] {
             bytes f = o.to_edge[n - 1];   // not sent yet: its authentic copy comes last
             f[60] ^= 0x10;
             return with_payload(f, bytes(f.begin() + 42, f.end()));
         }, "drop/ingress/srtp_auth"},
        {"too short for the tag", [&] { return with_payload(last, bytes(next_plain.begin(), next_plain.begin() + 20)); }, "drop/ingress/srtp_truncated"},
    };
    for (unsigned k = 0; k + 5 < n; ++k) ASSERT_EQ(e.take(o.to_edge[k]).size(), 1u) << k;
    unsigned next = n - 5;
    for (const auto& r : rows) {
        const auto before = all_counters(*e.r);
        EXPECT_TRUE(e.take(r.forge()).empty()) << r.what;
        const auto after = all_counters(*e.r);
        EXPECT_EQ(after.at(r.counter) - before.at(r.counter), 1u) << r.what;
        EXPECT_EQ(after.at("rtp_in") - before.at("rtp_in"), 0u) << r.what;
        if (next < n) {
            const auto out = e.take(o.to_edge[next]);
            ASSERT_EQ(out.size(), 1u) << "the authentic packet after: " << r.what;
            EXPECT_EQ(out[0], o.to_listener[next]) << r.what;
            ++next;
        }
    }
    }
    // An edge that holds no trunk key for the flow forwards nothing of it.
    trunk_edge keyless("trkf_k", trunk_edge::keyless);
    const auto before = all_counters(*keyless.r);
    EXPECT_TRUE(keyless.take(o.to_edge[0]).empty());
    EXPECT_EQ(all_counters(*keyless.r).at("drop/ingress/srtp_no_key") - before.at("drop/ingress/srtp_no_key"), 1u);
}

// An edge removes a trunk flow and adds it again under the same trunk key
// (its session went idle and came back, the plan changed, the origin's
// record flapped): the flow's fresh stream starts from where the removed
// one stood (docs/fleet.md "A trunk flow added again"), so a trunk packet
// captured before is a replay, and the origin's next packets pass. Under
// another key (the origin restarted: a new epoch) the old floor does not
// apply: the new key's stream starts below it and is taken. Each row: 20
// authentic packets, the removal and the re-add, two captured packets
// replayed (one old, the last one taken), then two live packets.
TEST(srtp_trunk, a_captured_packet_replayed_into_a_trunk_flow_added_again_reaches_no_listener) {
    constexpr unsigned n = 24, taken = 20;
    const origin_run o = run_origin("trkr_o", control::srtp_egress_mode::off, n);
    ASSERT_EQ(o.to_edge.size(), n);
    const control::srtp_key_owner flow{1, std::make_pair(trunk_origin_ip, 40000u)};
    const auto add_flow = [&](control::relay_state& st, uint8_t seed) {
        st.speaker_add(1, trunk_origin_ip, 40000, 1234u, true);
        st.srtp_key_add(flow, trunk_spec(seed == 70 ? "trunk-a" : "trunk-b", seed));
    };
    const auto make_session = [&](control::relay_state& st, uint8_t seed) {
        control::session_params sp;
        sp.id = 1;
        sp.udp_port = 40000;
        sp.trunk = true;
        sp.srtp_ingress = control::srtp_ingress_mode::off;
        sp.srtp_egress = control::srtp_egress_mode::off;
        st.session_create(sp);
        add_flow(st, seed);
        st.listener_add(1, edge_listener_ip, listener_port, 0);
    };
    struct row {
        const char* what;
        std::function<void(control::relay_state&)> again;   // remove, publish(es), add again
        uint8_t seed;                                         // the key the flow holds afterwards
        const char* replay_counter;                           // what a captured packet moves
    };
    const std::vector<row> rows = {
        {"the flow removed, published, added again under the same key",
         [&](control::relay_state& st) {
             st.speaker_del(1, trunk_origin_ip, 40000);
             st.publish();
             add_flow(st, 70);
         },
         70, "drop/ingress/srtp_replay"},
        {"removed and added again within one publish (its slot still in its grace period)",
         [&](control::relay_state& st) {
             st.speaker_del(1, trunk_origin_ip, 40000);
             add_flow(st, 70);
         },
         70, "drop/ingress/srtp_replay"},
        {"the trunk session ended (idle) and made again under the same key",
         [&](control::relay_state& st) {
             st.session_end(1);
             st.publish();
             make_session(st, 70);
         },
         70, "drop/ingress/srtp_replay"},
        {"added again under another key (the origin restarted): the old floor does not bind it",
         [&](control::relay_state& st) {
             st.speaker_del(1, trunk_origin_ip, 40000);
             st.publish();
             add_flow(st, 80);
         },
         80, "drop/ingress/srtp_auth"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        trunk_edge e("trkr_e");
        for (unsigned k = 0; k < taken; ++k) ASSERT_EQ(e.take(o.to_edge[k]).size(), 1u) << k;
        r.again(e.r->state());
        e.r->state().publish();
        for (const unsigned k : {taken - 3, taken - 1}) {
            const auto before = all_counters(*e.r);
            EXPECT_TRUE(e.take(o.to_edge[k]).empty()) << "captured packet " << k << " replayed";
            const auto after = all_counters(*e.r);
            EXPECT_EQ(after.at(r.replay_counter) - before.at(r.replay_counter), 1u) << k;
            EXPECT_EQ(after.at("rtp_in") - before.at("rtp_in"), 0u) << k;
        }
        if (r.seed == 70) {
            for (unsigned k = taken; k < taken + 2; ++k) {
                const auto out = e.take(o.to_edge[k]);
                ASSERT_EQ(out.size(), 1u) << "the origin's live packet " << k;
                EXPECT_EQ(out[0], o.to_listener[k]);
            }
            EXPECT_GE(e.r->state().trunk_floors().floors, 1u);
        } else {
            // The restarted origin's stream: sequence numbers below the old
            // floor, sealed with its new key.
            peer restarted = peer::trunk(80, true);
            for (uint16_t k = 0; k < 2; ++k) {
                const bytes rtp = rtp_of(static_cast<uint16_t>(10 + k), 960u * k);
                const auto out = e.take(with_payload(o.to_edge[0], restarted.protect(rtp)));
                ASSERT_EQ(out.size(), 1u) << "the new key's packet " << k;
                EXPECT_EQ(out[0], rtp);
            }
        }
    }
}

// A plain session (no srtp.egress): its listeners get the speaker's RTP as
// it came, its edges the same RTP sealed with the trunk key, and the edge's
// listeners the speaker's RTP again.
TEST(srtp_trunk, a_plain_sessions_trunk_is_sealed_and_its_edge_listeners_hear_the_speaker) {
    constexpr unsigned n = 20;
    const origin_run o = run_origin("trkp_o", control::srtp_egress_mode::off, n);
    ASSERT_EQ(o.to_edge.size(), n);
    ASSERT_EQ(o.to_listener.size(), n);
    EXPECT_EQ(o.protected_, uint64_t{n}) << "the trunk key once per packet";
    trunk_edge e("trkp_e");
    for (unsigned k = 0; k < n; ++k) {
        const bytes speaker = rtp_of(static_cast<uint16_t>(101 + k), 960u * (k + 1));
        EXPECT_EQ(o.to_listener[k], speaker) << k;
        const auto out = e.take(o.to_edge[k]);
        ASSERT_EQ(out.size(), 1u) << k;
        EXPECT_EQ(out[0], speaker) << k;
    }
}

// The trunk key's life on an origin: a key refused (wrong length) changes
// nothing, the old key still seals; a new id replaces it from the next
// publish; the session's last trunk listener leaving takes its twin away and
// coming back brings it (the key stays with the session); cleared, nothing
// goes to the edge; a session that does not exist
// is not_found. Each row: the action, then one packet, sealed with which key
// (0: none sent).
TEST(srtp_trunk, a_trunk_key_is_replaced_whole_or_not_at_all) {
    srtp_relay t("trkk_o", control::srtp_ingress_mode::off, control::srtp_egress_mode::off);
    t.r->state().set_trunk_auth(true);
    t.r->state().listener_add(1, trunk_edge_ip, 40000, 0, false, true);
    ASSERT_TRUE(t.r->state().trunk_key_set(1, trunk_spec("trunk-a", 70)));
    t.r->state().publish();
    EXPECT_TRUE(resolve(*t.r, t.port, {trunk_edge_ip}).empty());
    struct row {
        const char* what;
        std::function<void()> act;
        uint8_t sealed_by;                  // key seed the edge's copy opens with; 0: none sent
    };
    const std::vector<row> rows = {
        {"the key as set", [] {}, 70},
        {"a key of the wrong length is refused", [&] {
             auto k = trunk_spec("trunk-b", 80);
             k.master = control::secure_bytes(16);
             EXPECT_THROW(t.r->state().trunk_key_set(1, std::move(k)), control::action_error);
         }, 70},
        {"another id replaces it", [&] { EXPECT_TRUE(t.r->state().trunk_key_set(1, trunk_spec("trunk-b", 80))); }, 80},
        {"its last trunk listener leaves: no twin, nothing sent", [&] {
             t.r->state().listener_del(1, trunk_edge_ip, 40000);
         }, 0},
        {"and comes back: sealed with the key the session kept", [&] {
             t.r->state().listener_add(1, trunk_edge_ip, 40000, 0, false, true);
             t.r->state().publish();
             EXPECT_TRUE(resolve(*t.r, t.port, {trunk_edge_ip}).empty());
         }, 80},
        {"cleared: nothing to the edge", [&] { t.r->state().trunk_key_clear(1); }, 0},
        {"clearing again: not_found", [&] {
             try {
                 t.r->state().trunk_key_clear(1);
                 ADD_FAILURE() << "no error";
             } catch (const control::action_error& e) {
                 EXPECT_EQ(e.code, control::error_code::not_found);
             }
         }, 0},
        {"no such session", [&] { EXPECT_THROW(t.r->state().trunk_key_set(9, trunk_spec("trunk-c", 90)), control::action_error); }, 0},
    };
    uint16_t seq = 500;
    for (const auto& r : rows) {
        r.act();
        t.r->state().publish();
        const bytes rtp = rtp_of(seq, 960u * seq);
        ++seq;
        t.send(frame_of(rtp));
        std::vector<bytes> to_edge;
        for (const auto& f : drain(t.port))
            if (be32(f.data() + 30) == trunk_edge_ip) to_edge.emplace_back(f.begin() + 42, f.end());
        if (r.sealed_by == 0) {
            EXPECT_TRUE(to_edge.empty()) << r.what;
            continue;
        }
        ASSERT_EQ(to_edge.size(), 1u) << r.what;
        peer rx = peer::trunk(r.sealed_by, false);
        EXPECT_EQ(rx.unprotect(to_edge[0]), rtp) << r.what;
        const auto v = t.r->state().session(1);
        ASSERT_TRUE(v.has_value());
        ASSERT_EQ(v->trunk_keys.size(), 1u) << r.what;
    }
}

}  // namespace
}  // namespace stentor::test
