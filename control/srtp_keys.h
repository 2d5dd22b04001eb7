// SRTP keys in the control plane (docs/srtp.md): what the API and the
// profile hand in, the key sets of sessions (egress) and speakers
// (ingress), and the immutable srtp::keyset each publishes to the data
// plane.
//
// Keys are write-only: nothing here can print one (no formatter, no
// accessor to the bytes but the one that builds the data plane's key), and
// every buffer that held key bytes is wiped when it is freed
// (OPENSSL_cleanse): secure_bytes here, srtp::key_free for the derived keys.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "session.h"
#include "stentor/srtp.h"

namespace stentor::control {

// Bytes wiped on free, never copied by accident (move-only).
class secure_bytes {
public:
    secure_bytes() = default;
    explicit secure_bytes(size_t n);
    ~secure_bytes();
    secure_bytes(secure_bytes&& o) noexcept;
    secure_bytes& operator=(secure_bytes&& o) noexcept;
    secure_bytes(const secure_bytes&) = delete;
    secure_bytes& operator=(const secure_bytes&) = delete;
    uint8_t* data() noexcept { return _p; }
    const uint8_t* data() const noexcept { return _p; }
    size_t size() const noexcept { return _n; }
    bool empty() const noexcept { return _n == 0; }

private:
    void wipe() noexcept;
    uint8_t* _p = nullptr;
    size_t _n = 0;
};

// Wipe a std::string (or any buffer) that held key material in place.
void wipe(std::string& s) noexcept;

// Base64 (RFC 4648, with or without padding, no line breaks) into wiped
// memory; nullopt if it is not base64.
std::optional<secure_bytes> decode_base64_key(std::string_view text);

// MKI as the API and the profile spell it: 2..8 hex digits (1..4 bytes).
struct srtp_mki {
    uint32_t value = 0;
    uint8_t len = 0;                   // bytes; 0 = none
    bool operator==(const srtp_mki&) const = default;
};
std::optional<srtp_mki> parse_mki(std::string_view hex);
std::string format_mki(const srtp_mki& m);

// A key as handed in (API body or profile key file).
struct srtp_key_spec {
    std::string id;                    // the operator's name: 1..32 of [A-Za-z0-9_.-]
    srtp::suite suite = srtp::suite::aes_cm_128_hmac_sha1_80;
    srtp_mki mki;                      // len 0: packets carry no MKI
    secure_bytes master;               // master key || master salt (srtp::master_len)
    bool activate = false;             // egress: protect with it from now on
};
// Why a key id is not acceptable, or nullopt.
std::optional<std::string> check_key_id(std::string_view id);

// What the API and stentorctl may show of a key: never its bytes.
struct srtp_key_info {
    std::string id;
    srtp::suite suite;
    srtp_mki mki;
    bool active = false;
};

// The keys of one session (egress) or one speaker (ingress). Adding,
// activating and removing validate first and change nothing on refusal
// (the reason in *why). The srtp::key objects live while this set or a
// published snapshot may use them: retire() hands the replaced ones to the
// caller, who frees them after the grace period.
class srtp_keyset_model {
public:
    enum class refusal { none, invalid, exists, not_found, full };
    // nb_users: srtp::key users (RX lcores + the mixer).
    refusal add(srtp_key_spec&& k, unsigned nb_users, std::string* why);
    refusal activate(std::string_view id, std::string* why);
    refusal remove(std::string_view id, bool egress, std::string* why);
    bool empty() const noexcept { return _keys.empty(); }
    std::vector<srtp_key_info> info(bool egress) const;
    // The data plane's view, built anew (caller owns it: dp_free after
    // the grace period of the snapshot that stops naming it); nullptr when
    // the set is empty.
    srtp::keyset* build() const;
    // Keys removed since the last call: free them (srtp::key_free) after
    // the grace period.
    std::vector<srtp::key*> retire();
    // Everything, for a set whose owner goes away (same rule).
    std::vector<srtp::key*> release_all();
    ~srtp_keyset_model();

private:
    struct entry {
        std::string id;
        srtp::suite suite;
        srtp_mki mki;
        srtp::key* k;
    };
    std::vector<entry> _keys;          // oldest first
    std::string _active;
    std::vector<srtp::key*> _retired;
};

}  // namespace stentor::control
