// SRTP (RFC 3711, RFC 7714) as the relay does it: speakers' packets
// authenticated and decrypted at ingress, each speaker (or mixed) packet
// encrypted once with the session key before fan-out (docs/srtp.md).
//
// Built on OpenSSL's libcrypto directly rather than libsrtp2: Debian's
// libsrtp2 is built on NSS, whose PKCS#11 contexts take a mutex on every
// digest and cipher call, and libsrtp keeps the replay state and the
// rollover counter inside its session object, where a key change (a new
// session object) loses them. Here the state splits in two:
//  - `key` and `keyset`: immutable once built by the control plane (key
//    derivation, cipher key schedules, HMAC pads), published in the
//    snapshot, freed after an RCU grace period; a key is wiped on free.
//    The one mutable part of a key, OpenSSL's cipher context, is one per
//    *user* (an RX lcore or the mixer thread), so no two threads ever
//    touch the same context;
//  - `stream`: the rollover counter and replay window of one SSRC, owned by
//    one writer (the RX lcore of the speaker's entry, the mixer for a mix);
//    it survives key rotation because keys are not where it lives.
// libsrtp2 stays the reference: the unit tests protect with one and
// unprotect with the other, both ways, both suites, with and without MKI,
// and bench/srtp_harness runs a bare libsrtp2 loop beside this code.
//
// Nothing per packet allocates, locks or logs: the HMAC is RFC 2104 over
// SHA_CTX copies (as stun.cc), AES-CTR and AES-GCM reuse a keyed
// EVP_CIPHER_CTX with a new IV (tests/unit/test_srtp.cc counts OpenSSL's
// allocations around a stream of packets: none).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace stentor::srtp {

enum class suite : uint8_t {
    aes_cm_128_hmac_sha1_80 = 1,   // RFC 3711: AES-128 counter mode, HMAC-SHA1 tag of 80 bits
    aead_aes_128_gcm = 2,          // RFC 7714: AES-128-GCM, 16-byte tag
};

// The SDP / ffmpeg / GStreamer names.
constexpr std::string_view name_of(suite s) noexcept {
    return s == suite::aead_aes_128_gcm ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80";
}
constexpr std::optional<suite> parse_suite(std::string_view n) noexcept {
    if (n == "AES_CM_128_HMAC_SHA1_80") return suite::aes_cm_128_hmac_sha1_80;
    if (n == "AEAD_AES_128_GCM") return suite::aead_aes_128_gcm;
    return std::nullopt;
}

inline constexpr size_t master_key_len = 16;
// Master key || master salt, as SDES inline keys and ffmpeg's
// -srtp_out_params carry them (base64 of these bytes).
constexpr size_t master_len(suite s) noexcept { return master_key_len + (s == suite::aead_aes_128_gcm ? 12 : 14); }
constexpr size_t tag_len(suite s) noexcept { return s == suite::aead_aes_128_gcm ? 16 : 10; }

inline constexpr unsigned max_mki_len = 4;    // bytes
inline constexpr unsigned max_keys = 4;       // keys one set holds at once (rotation overlap)
inline constexpr unsigned max_users = 33;     // RX lcores (up to 32) + the mixer
inline constexpr unsigned replay_window = 64; // RFC 3711 3.3.2: at least 64
// What the relay adds to a packet it protects (tag + MKI), at most.
inline constexpr unsigned max_trailer = 16 + max_mki_len;

// One master key with what is derived from it. Opaque: srtp.cc.
struct key;

// Derive the session keys (RFC 3711 4.3, key derivation rate 0) and key
// the cipher contexts of `nb_users` users. `master` is master_len(s)
// bytes. nullptr when the length is wrong or OpenSSL fails. Allocates:
// control plane only.
key* key_create(suite s, const uint8_t* master, size_t len, unsigned nb_users) noexcept;
// Wipes every byte derived from the master key, then frees. nullptr is fine.
void key_free(key* k) noexcept;

// The keys of one speaker (ingress) or one session (egress): immutable once
// published. All keys of a set share the suite and the MKI length (the
// parser must know where the MKI is before it knows the key).
struct keyset {
    uint8_t nb_keys = 0;
    uint8_t mki_len = 0;               // 0: no MKI in packets
    uint8_t suite_id = 0;              // suite
    uint8_t active = 0;                // egress: the key packets are protected with
    uint32_t mki[max_keys]{};          // each key's MKI, big-endian value of its mki_len bytes
    const key* keys[max_keys]{};
    // Ingress across restarts (docs/srtp.md "Ingress marks"): where the
    // speaker's stream of SSRC floor_ssrc_be stood when the journal last
    // wrote it down (0: nothing known). A fresh stream of that SSRC starts
    // from there with everything up to it seen: older packets are replays,
    // and its ROC is estimated from the mark instead of 0.
    uint64_t floor = 0;
    uint32_t floor_ssrc_be = 0;
};

// One SSRC's rollover counter and replay window (RFC 3711 3.2.1, 3.3.2):
// one writer (see the top of this file). Zero = no packet yet.
struct stream {
    uint64_t top = 0;                  // highest index accepted (ROC << 16 | SEQ)
    uint64_t window = 0;               // bit i: index top - i accepted
    uint32_t ssrc_be = 0;              // the SSRC the state belongs to
    uint32_t started = 0;
};

// A sender's proposal for its egress index (docs/srtp.md "Egress index"):
// the speaker's own extended index (in_top: its highest, for the ROC
// estimate of a plain speaker) plus `offset` (mod 2^48), the distance the
// relay's numbering runs from the speaker's. One writer (the entry's RX
// lcore, or the mixer). Zero = no packet yet. The index actually used is
// claimed against the session's high-water mark (dp_srtp.h egress_index).
struct tx_stream {
    uint64_t in_top = 0;
    uint64_t offset = 0;
    uint32_t ssrc_be = 0;
    uint32_t started = 0;
};
static_assert(sizeof(tx_stream) == sizeof(stream));

inline constexpr uint64_t index_mask = 0xffffffffffffULL;   // RFC 3711: 48-bit index

enum class verdict : uint8_t {
    ok,
    truncated,    // too short for header + tag (+ MKI) and one payload byte
    unknown_mki,  // MKI that no key of the set has
    replay,       // index already accepted, or older than the replay window
    auth,         // tag wrong: forged, damaged, or another key
};

// What rx_check found, for rx_unprotect and rx_commit.
struct rx_plan {
    uint64_t index = 0;
    uint16_t hdr_len = 0;              // RTP header with CSRCs and extension
    uint16_t body_len = 0;             // encrypted payload bytes (without tag and MKI)
    uint8_t key = 0;                   // key to try first (by MKI, else the newest)
    uint8_t fresh = 0;                 // the stream state is for another SSRC or empty
    // fresh, from the journal's mark (keyset::floor): every index up to it
    // counts as seen, after the first packet too (0: no mark)
    uint64_t mark = 0;
};

// The cheap part, before any MAC: lengths, MKI, the index and the replay
// window. Reads nothing it may not (pkt has `len` bytes, hdr_len from the
// RTP validator). Does not change `st`.
verdict rx_check(const keyset& ks, const stream& st, const uint8_t* pkt, uint32_t len, uint32_t hdr_len,
                 rx_plan* plan) noexcept;
// Authenticate and decrypt in place (the plaintext RTP packet is then
// plan.hdr_len + plan.body_len bytes). Without MKI and with several keys,
// each is tried in turn (newest first). `user` < the key's nb_users.
verdict rx_unprotect(const keyset& ks, unsigned user, uint8_t* pkt, const rx_plan& plan) noexcept;
// Record an authenticated packet in the replay window.
void rx_commit(stream& st, const rx_plan& plan, uint32_t ssrc_be) noexcept;

// The index of a packet from its sequence number as a receiver estimates it
// (RFC 3711 3.3.1), recorded in `st`. For a sender that numbers its own
// packets in order (the unit tests' and benchmarks' senders). NOT what the
// relay protects its egress with: a speaker's sequence numbers can go back
// (a restart with the same SSRC) and this would hand out an index again;
// the relay claims its egress index with dp::egress_index (dp_srtp.h).
uint64_t tx_index(stream& st, uint16_t seq, uint32_t ssrc_be) noexcept;
// Protect in place with the set's active key: `pkt` holds `len` bytes of
// RTP (header `hdr_len`) and has room for len + tag + MKI. Returns the new
// length, 0 on failure (no key, OpenSSL error).
uint32_t protect(const keyset& ks, unsigned user, uint64_t index, uint8_t* pkt, uint32_t len,
                 uint32_t hdr_len) noexcept;

// RTP header length (with CSRCs and extension) of a well-formed packet, 0
// if it runs past `len`.
uint32_t rtp_header_len(const uint8_t* pkt, uint32_t len) noexcept;

// Estimated index of `seq` against the highest index `top` (RFC 3711
// Appendix A); false when it would precede index 0.
bool estimate_index(uint64_t top, bool started, uint16_t seq, uint64_t* index) noexcept;

}  // namespace stentor::srtp
