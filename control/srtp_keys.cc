#include "srtp_keys.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <openssl/crypto.h>

#include "dp_memory.h"

namespace stentor::control {

secure_bytes::secure_bytes(size_t n) : _p(static_cast<uint8_t*>(OPENSSL_secure_zalloc(n))), _n(n) {
    // OPENSSL_secure_zalloc falls back to OPENSSL_zalloc without a secure
    // heap; either way it is wiped on free below.
    if (_p == nullptr && n > 0) throw std::bad_alloc();
}
secure_bytes::~secure_bytes() { wipe(); }
void secure_bytes::wipe() noexcept {
    if (_p != nullptr) OPENSSL_secure_clear_free(_p, _n);
    _p = nullptr;
    _n = 0;
}
secure_bytes::secure_bytes(secure_bytes&& o) noexcept : _p(o._p), _n(o._n) {
    o._p = nullptr;
    o._n = 0;
}
secure_bytes& secure_bytes::operator=(secure_bytes&& o) noexcept {
    if (this != &o) {
        wipe();
        _p = o._p;
        _n = o._n;
        o._p = nullptr;
        o._n = 0;
    }
    return *this;
}

void wipe(std::string& s) noexcept {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

std::optional<secure_bytes> decode_base64_key(std::string_view t) {
    const auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    size_t n = t.size();
    size_t pad = 0;
    while (n > 0 && t[n - 1] == '=' && pad < 2) {
        --n;
        ++pad;
    }
    if (n == 0 || n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0)) return std::nullopt;
    secure_bytes out(n * 3 / 4);
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; ++i) {
        const int v = val(t[i]);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.data()[o++] = static_cast<uint8_t>(acc >> bits);
        }
    }
    acc = 0;
    if (o != out.size()) return std::nullopt;
    return out;
}

std::optional<srtp_mki> parse_mki(std::string_view hex) {
    if (hex.size() < 2 || hex.size() > 2 * srtp::max_mki_len || hex.size() % 2 != 0) return std::nullopt;
    srtp_mki m;
    for (char c : hex) {
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return std::nullopt;
        m.value = m.value << 4 | static_cast<uint32_t>(d);
    }
    m.len = static_cast<uint8_t>(hex.size() / 2);
    return m;
}

std::string format_mki(const srtp_mki& m) {
    if (m.len == 0) return {};
    return fmt::format("{:0{}x}", m.value, 2 * m.len);
}

std::optional<std::string> check_key_id(std::string_view id) {
    if (id.empty() || id.size() > 32) return "must be 1..32 characters";
    for (char c : id)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return "only letters, digits, '_', '-' and '.'";
    return std::nullopt;
}

srtp_keyset_model::refusal srtp_keyset_model::add(srtp_key_spec&& k, unsigned nb_users, std::string* why) {
    if (auto e = check_key_id(k.id)) {
        *why = "id: " + *e;
        return refusal::invalid;
    }
    if (k.master.size() != srtp::master_len(k.suite)) {
        *why = fmt::format("key: {} takes {} bytes of master key and salt (base64), got {}", srtp::name_of(k.suite),
                           srtp::master_len(k.suite), k.master.size());
        return refusal::invalid;
    }
    for (const auto& e : _keys) {
        if (e.id == k.id) {
            *why = "key id \"" + k.id + "\" exists";
            return refusal::exists;
        }
        if (e.suite != k.suite) {
            *why = fmt::format("suite: the other keys of this set are {}", srtp::name_of(e.suite));
            return refusal::invalid;
        }
        if (e.mki.len != k.mki.len) {
            *why = e.mki.len == 0 ? std::string("mki: the other keys of this set have none")
                                  : fmt::format("mki: the other keys of this set have {}-byte MKIs", e.mki.len);
            return refusal::invalid;
        }
        if (k.mki.len > 0 && e.mki == k.mki) {
            *why = "mki " + format_mki(k.mki) + " is key \"" + e.id + "\"'s";
            return refusal::exists;
        }
    }
    if (_keys.size() >= srtp::max_keys) {
        *why = fmt::format("a set holds at most {} keys: remove one first", srtp::max_keys);
        return refusal::full;
    }
    srtp::key* sk = srtp::key_create(k.suite, k.master.data(), k.master.size(), nb_users);
    if (sk == nullptr) {
        *why = "key: could not be derived";
        return refusal::invalid;
    }
    _keys.push_back({k.id, k.suite, k.mki, sk});
    if (_active.empty() || k.activate) _active = k.id;
    return refusal::none;
}

srtp_keyset_model::refusal srtp_keyset_model::activate(std::string_view id, std::string* why) {
    for (const auto& e : _keys)
        if (e.id == id) {
            _active = e.id;
            return refusal::none;
        }
    *why = "no key \"" + std::string(id) + "\"";
    return refusal::not_found;
}

srtp_keyset_model::refusal srtp_keyset_model::remove(std::string_view id, bool egress, std::string* why) {
    auto it = std::find_if(_keys.begin(), _keys.end(), [&](const entry& e) { return e.id == id; });
    if (it == _keys.end()) {
        *why = "no key \"" + std::string(id) + "\"";
        return refusal::not_found;
    }
    if (egress && _active == id && _keys.size() > 1) {
        *why = "key \"" + std::string(id) + "\" protects the session's packets now: activate another first";
        return refusal::invalid;
    }
    _retired.push_back(it->k);
    _keys.erase(it);
    if (_keys.empty()) _active.clear();
    return refusal::none;
}

std::vector<srtp_key_info> srtp_keyset_model::info(bool egress) const {
    std::vector<srtp_key_info> out;
    for (const auto& e : _keys) out.push_back({e.id, e.suite, e.mki, egress && e.id == _active});
    return out;
}

srtp::keyset* srtp_keyset_model::build() const {
    if (_keys.empty()) return nullptr;
    auto* ks = static_cast<srtp::keyset*>(dp_alloc(sizeof(srtp::keyset)));
    *ks = srtp::keyset{};
    ks->suite_id = static_cast<uint8_t>(_keys.front().suite);
    ks->mki_len = _keys.front().mki.len;
    for (const auto& e : _keys) {
        if (e.id == _active) ks->active = ks->nb_keys;
        ks->mki[ks->nb_keys] = e.mki.value;
        ks->keys[ks->nb_keys] = e.k;
        ++ks->nb_keys;
    }
    return ks;
}

std::vector<srtp::key*> srtp_keyset_model::retire() {
    std::vector<srtp::key*> out;
    out.swap(_retired);
    return out;
}

std::vector<srtp::key*> srtp_keyset_model::release_all() {
    std::vector<srtp::key*> out = retire();
    for (const auto& e : _keys) out.push_back(e.k);
    _keys.clear();
    _active.clear();
    return out;
}

srtp_keyset_model::~srtp_keyset_model() {
    // Only reached once no snapshot names these keys (relay_state's
    // destructor runs after the workers stopped), or for sets never published.
    for (auto* k : release_all()) srtp::key_free(k);
}

}  // namespace stentor::control
