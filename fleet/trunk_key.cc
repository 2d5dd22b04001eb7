#include "trunk_key.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

namespace stentor::fleet {

template <size_t N>
wiped_array<N>::~wiped_array() {
    OPENSSL_cleanse(bytes.data(), bytes.size());
}
template struct wiped_array<trunk_secret_len>;
template struct wiped_array<trunk_master_len>;

namespace {
int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}
}  // namespace

std::optional<trunk_secret> parse_trunk_secret(std::string_view text, std::string* why) {
    auto bad = [why](std::string w) -> std::optional<trunk_secret> {
        if (why != nullptr) *why = std::move(w);
        return std::nullopt;
    };
    for (size_t i = 0; i < text.size(); ++i)
        if (hex_digit(text[i]) < 0)
            return bad(fmt::format("byte {} is not a hex digit: the file holds the fleet's {} random bytes as {} hex "
                                   "digits on one line (e.g. openssl rand -hex 32)",
                                   i + 1, trunk_secret_len, 2 * trunk_secret_len));
    if (text.size() != 2 * trunk_secret_len)
        return bad(fmt::format("{} hex digits; the trunk key is {} random bytes as {} hex digits (e.g. openssl rand "
                               "-hex 32)",
                               text.size(), trunk_secret_len, 2 * trunk_secret_len));
    trunk_secret s;
    uint8_t any = 0;
    for (size_t i = 0; i < trunk_secret_len; ++i) {
        s.bytes[i] = static_cast<uint8_t>(hex_digit(text[2 * i]) << 4 | hex_digit(text[2 * i + 1]));
        any |= s.bytes[i];
    }
    if (any == 0) return bad("all zero: not a random key (e.g. openssl rand -hex 32)");
    return s;
}

std::string format_trunk_epoch(uint64_t epoch) { return fmt::format("{:016x}", epoch); }

std::optional<uint64_t> parse_trunk_epoch(std::string_view text) {
    if (text.size() != 16) return std::nullopt;
    uint64_t v = 0;
    for (char ch : text) {
        // Lowercase only: the epoch is hashed as written, so one spelling.
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return std::nullopt;
        v = v << 4 | static_cast<uint64_t>(hex_digit(ch));
    }
    return v;
}

uint64_t draw_trunk_epoch() {
    uint64_t v = 0;
    auto* p = reinterpret_cast<uint8_t*>(&v);
    size_t got = 0;
    while (got < sizeof v) {
        const ssize_t n = ::getrandom(p + got, sizeof v - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
        got += static_cast<size_t>(n);
    }
    return v;
}

std::string trunk_kdf_info(uint32_t session, std::string_view origin, uint64_t epoch) {
    return fmt::format("session={} origin={} epoch={}", session, origin, format_trunk_epoch(epoch));
}

trunk_master derive_trunk_key(std::span<const uint8_t> secret, uint32_t session, std::string_view origin,
                              uint64_t epoch) {
    const std::string info = trunk_kdf_info(session, origin, epoch);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr),
                                                                   &EVP_PKEY_CTX_free);
    trunk_master out;
    size_t len = out.bytes.size();
    if (!ctx || secret.empty() || EVP_PKEY_derive_init(ctx.get()) <= 0 ||
        EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), reinterpret_cast<const unsigned char*>(trunk_kdf_salt.data()),
                                    static_cast<int>(trunk_kdf_salt.size())) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), secret.data(), static_cast<int>(secret.size())) <= 0 ||
        EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const unsigned char*>(info.data()),
                                    static_cast<int>(info.size())) <= 0 ||
        EVP_PKEY_derive(ctx.get(), out.bytes.data(), &len) <= 0 || len != out.bytes.size())
        throw std::runtime_error("HKDF-SHA256 of the trunk key failed (OpenSSL)");
    return out;
}

std::string trunk_key_id(uint64_t epoch) { return "trunk-" + format_trunk_epoch(epoch); }

}  // namespace stentor::fleet
