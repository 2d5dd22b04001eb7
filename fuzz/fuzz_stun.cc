// libFuzzer target for the STUN codec (stentor/stun.h).
//
// The join packet is the only thing an unauthenticated stranger can make the
// relay parse beyond the ingress validator, and it runs per packet in the
// data plane. Each input is used three ways:
//
// 1. parsed as a request and as a response, as received;
// 2. parsed again after patching what a random input almost never gets
//    right: the header length, the magic cookie, MESSAGE-INTEGRITY (when an
//    MI header sits where a join request has it) and the FINGERPRINT CRC.
//    Without that the fuzzer would spend its time failing bad_fingerprint;
// 3. as arguments for the builders (cap, code, reason, username, options).
//
// Besides ASan/UBSan findings, the target aborts when a result breaks the
// contract stun.h promises: an accepted message re-checks (FINGERPRINT by a
// bitwise CRC written here, MESSAGE-INTEGRITY by OpenSSL's HMAC()), every
// offset and pointer lies inside the message, a refusal names a reason and
// leaves the view untouched, and no builder writes past `cap` (the output
// buffer is a heap block of exactly `cap` bytes, so ASan sees any overrun)
// or produces a message its own parser refuses.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "stentor/stun.h"

namespace {

using namespace stentor::stun;

constexpr std::string_view key = "VOkJxbRl1RmTxUk/WvJxBt";

[[noreturn]] void contract_broken() { std::abort(); }

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put16(uint8_t* p, uint16_t v) {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, uint16_t(v >> 16));
    put16(p + 2, uint16_t(v));
}

uint32_t ref_crc32(const uint8_t* p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

// HMAC-SHA1 over msg[0..mi_off) with the header length adjusted to end at MI.
void ref_mac(const uint8_t* msg, size_t mi_off, std::string_view k, uint8_t mac[20]) {
    std::vector<uint8_t> m(msg, msg + mi_off);
    put16(m.data() + 2, uint16_t(mi_off + 24 - 20));
    unsigned len = 0;
    HMAC(EVP_sha1(), k.data(), int(k.size()), m.data(), m.size(), mac, &len);
}

bool ref_integrity(const uint8_t* msg, size_t mi_off, std::string_view k) {
    uint8_t mac[20];
    ref_mac(msg, mi_off, k, mac);
    return std::memcmp(mac, msg + mi_off + 4, 20) == 0;
}

bool fp_ok(const uint8_t* p, size_t n) {
    return n >= 28 && be16(p + n - 8) == attr::fingerprint && be16(p + n - 6) == 4 &&
           be32(p + n - 4) == (ref_crc32(p, n - 8) ^ 0x5354554eu);
}

void check_request(const uint8_t* p, size_t n) {
    request_view v;
    v.username_len = 0xbeef;   // a refusal must leave the view as it was
    const stun_error e = parse_request(p, n, v);
    if (e >= stun_error::count_) contract_broken();
    if (e != stun_error::ok) {
        if (v.username_len != 0xbeef || v.txid) contract_broken();
        return;
    }
    if (n > max_request_len || v.length != n || v.txid != p + 8) contract_broken();
    if (p[0] & 0xc0 || be16(p) != binding_request || be32(p + 4) != magic_cookie) contract_broken();
    if (!fp_ok(p, n)) contract_broken();
    if (v.integrity_offset != n - 32 || be16(p + v.integrity_offset) != attr::message_integrity) contract_broken();
    const auto* u = reinterpret_cast<const uint8_t*>(v.username);
    if (v.username_len == 0 || v.username_len > max_username_len) contract_broken();
    if (u < p + 24 || u + v.username_len > p + v.integrity_offset) contract_broken();
    if (be16(u - 2) != v.username_len || be16(u - 4) != attr::username) contract_broken();
    if (check_integrity(p, v, key.data(), key.size()) != ref_integrity(p, v.integrity_offset, key)) contract_broken();
}

void check_response(const uint8_t* p, size_t n) {
    response_view v;
    const stun_error e = parse_response(p, n, v);
    if (e >= stun_error::count_) contract_broken();
    if (e != stun_error::ok) {
        if (v.txid) contract_broken();
        return;
    }
    if (v.length != n || v.txid != p + 8 || (v.type != binding_success && v.type != binding_error)) contract_broken();
    if (!fp_ok(p, n) || v.integrity_offset != n - 32) contract_broken();
    if (v.error_code && (v.error_code < 300 || v.error_code > 699)) contract_broken();
    if (v.reason_len) {
        const auto* r = reinterpret_cast<const uint8_t*>(v.reason);
        if (r < p + 28 || r + v.reason_len > p + v.integrity_offset) contract_broken();
    }
    if (check_integrity(p, v.integrity_offset, key.data(), key.size()) != ref_integrity(p, v.integrity_offset, key))
        contract_broken();
}

// Pass 2: make the frame of the message right so the checks behind it run.
void patch_and_check(const uint8_t* data, size_t size) {
    if (size < 20 || size > 4096) return;
    std::vector<uint8_t> m(data, data + size);
    m.resize(size & ~size_t{3});
    const size_t n = m.size();
    if (n < 20) return;
    m[0] &= 0x3f;
    put16(m.data() + 2, uint16_t(n - 20));
    put32(m.data() + 4, magic_cookie);
    if (n >= 60 && be16(m.data() + n - 32) == attr::message_integrity && be16(m.data() + n - 30) == 20) {
        uint8_t mac[20];
        ref_mac(m.data(), n - 32, key, mac);
        std::memcpy(m.data() + n - 28, mac, 20);
    }
    if (n >= 28) {
        put16(m.data() + n - 8, attr::fingerprint);
        put16(m.data() + n - 6, 4);
        put32(m.data() + n - 4, ref_crc32(m.data(), n - 8) ^ 0x5354554eu);
    }
    check_request(m.data(), n);
    check_response(m.data(), n);
    // With MI and FP both patched, a parse that succeeds must verify.
    request_view v;
    if (parse_request(m.data(), n, v) == stun_error::ok && n >= 60 &&
        !check_integrity(m.data(), v, key.data(), key.size()) && ref_integrity(m.data(), v.integrity_offset, key))
        contract_broken();
}

// Pass 3: the builders, with arguments taken from the input.
void check_builders(const uint8_t* data, size_t size) {
    if (size < 16) return;
    const size_t cap = be16(data) % 700;
    const uint16_t code = be16(data + 2) % 800;
    const uint32_t retry = be32(data + 4) & ((data[8] & 1) ? 0xffffffffu : 0);
    const uint8_t flags = data[9];
    const uint8_t* txid = data + 4;   // any 12 bytes
    const std::string_view text(reinterpret_cast<const char*>(data + 16), size - 16);
    const std::string_view username = text.substr(0, data[10] % 160);
    const std::string_view k = text.substr(0, data[11] % 80);

    std::vector<uint8_t> out(cap);   // exactly cap bytes: ASan catches any overrun
    uint8_t* o = cap ? out.data() : nullptr;

    size_t n = build_success(o, cap, txid, be32(data + 12), be16(data + 10), k.data(), k.size());
    if (n > cap || (n && n != success_len) || (!n && cap >= success_len)) contract_broken();
    if (n) {
        response_view v;
        if (parse_response(o, n, v) != stun_error::ok || !v.has_mapped || v.mapped_ipv4 != be32(data + 12) ||
            v.mapped_port != be16(data + 10) || std::memcmp(v.txid, txid, 12) != 0 ||
            !check_integrity(o, v.integrity_offset, k.data(), k.size()) || !ref_integrity(o, v.integrity_offset, k))
            contract_broken();
    }

    if (size >= 32) {   // over IPv6: 16 address bytes from the input, 76 bytes
        mapped_address a;
        a.family = family_ipv6;
        std::memcpy(a.addr, data + 16, 16);
        a.port = be16(data + 10);
        n = build_success(o, cap, txid, a, k.data(), k.size());
        if (n > cap || (n && n != success_len6) || (!n && cap >= success_len6)) contract_broken();
        if (n) {
            response_view v;
            if (parse_response(o, n, v) != stun_error::ok || !v.has_mapped || v.mapped_family != family_ipv6 ||
                std::memcmp(v.mapped_ipv6, data + 16, 16) != 0 || v.mapped_port != a.port ||
                !check_integrity(o, v.integrity_offset, k.data(), k.size()) || !ref_integrity(o, v.integrity_offset, k))
                contract_broken();
        }
    }

    n = build_error(o, cap, txid, code, text, retry, k.data(), k.size());
    const bool code_ok = code >= 300 && code <= 699;
    if (n > cap || (!n && code_ok && cap >= error_fixed_len(retry)) || (n && !code_ok)) contract_broken();
    if (n) {
        response_view v;
        if (parse_response(o, n, v) != stun_error::ok || v.error_code != code || v.retry_after_ms != retry ||
            v.reason_len > text.size() || v.reason_phrase() != text.substr(0, v.reason_len) ||
            v.reason_len > max_text_encode_len || !check_integrity(o, v.integrity_offset, k.data(), k.size()))
            contract_broken();
        // The reason is cut at a character boundary.
        if (v.reason_len < text.size() && (static_cast<uint8_t>(text[v.reason_len]) & 0xc0) == 0x80 && v.reason_len)
            contract_broken();
    }

    request_options opt;
    opt.leave = flags & 1;
    opt.ice = flags & 2;
    opt.use_candidate = (flags & 6) == 6;
    opt.priority = be32(data + 12);
    opt.tie_breaker = uint64_t{be32(data + 4)} << 32 | be32(data + 8);
    if (flags & 8) opt.software = text.substr(0, data[12] % 40);
    n = build_request(o, cap, txid, username, k.data(), k.size(), opt);
    if (n > cap) contract_broken();
    // Every argument in range and room for the largest such request
    // (SOFTWARE < 40 bytes, USERNAME <= 128): it must be built.
    const bool software_ok = opt.software.size() < 40 && !(opt.use_candidate && !opt.ice);
    if (!n && software_ok && !username.empty() && username.size() <= max_username_len && cap >= 300)
        contract_broken();
    if (n) {
        request_view v;
        const stun_error e = parse_request(o, n, v);
        // A request longer than a join request may ever be is the one thing
        // the builder makes and the relay refuses.
        if (n > max_request_len) {
            if (e != stun_error::too_long) contract_broken();
        } else if (e != stun_error::ok || v.user() != username || v.leave != opt.leave ||
                   v.use_candidate != opt.use_candidate || std::memcmp(v.txid, txid, 12) != 0 ||
                   !check_integrity(o, v, k.data(), k.size())) {
            contract_broken();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // A copy of exactly `size` bytes, so ASan sees a read past the end.
    std::vector<uint8_t> in(data, data + size);
    check_request(in.data(), in.size());
    check_response(in.data(), in.size());
    patch_and_check(data, size);
    check_builders(data, size);
    return 0;
}
