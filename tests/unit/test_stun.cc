// STUN codec tests (stentor/stun.h). The core is a golden table: one row per
// request, described in words, with the stun_error parse_request must return
// and, for accepted rows, what check_integrity must say. Messages come from a
// small builder whose defaults make a good join request (USERNAME = a 48-char
// token, MESSAGE-INTEGRITY, FINGERPRINT); a row overrides only what it is
// about. The builder's MESSAGE-INTEGRITY comes from OpenSSL's HMAC() and its
// FINGERPRINT from a bitwise CRC-32 written here, never from the code under
// test; RFC 5769's sample messages are pinned byte for byte.
//
// Every parse runs on a copy that ends exactly at a PROT_NONE page, so a read
// past the received length faults even in builds without ASan; every builder
// writes into a buffer whose bytes past `cap` are checked untouched.
#include "stentor/stun.h"

#include "stentor/dp_counters.h"

#include <gtest/gtest.h>

#include <functional>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace stentor::stun {
namespace {

using bytes = std::vector<uint8_t>;
using E = stun_error;

constexpr std::string_view token = "tok1AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g";   // 48 chars, like a join token
constexpr std::string_view password = "pVx3QpQy1m2Yk0b3nS9cAw";                          // 22 chars
static_assert(token.size() == 48 && password.size() == 22);
constexpr std::array<uint8_t, 12> txid0 = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

// ---- references, independent of the code under test -----------------------

uint32_t ref_crc32(const uint8_t* p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

std::array<uint8_t, 20> ref_hmac(std::string_view key, const bytes& data) {
    std::array<uint8_t, 20> mac{};
    unsigned len = 0;
    HMAC(EVP_sha1(), key.data(), int(key.size()), data.data(), data.size(), mac.data(), &len);
    return mac;
}

void put16(bytes& b, uint16_t v) {
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
}
void put32(bytes& b, uint32_t v) {
    put16(b, uint16_t(v >> 16));
    put16(b, uint16_t(v));
}
void set16(bytes& b, size_t off, uint16_t v) {
    b[off] = uint8_t(v >> 8);
    b[off + 1] = uint8_t(v);
}
uint32_t get32(const bytes& b, size_t off) {
    return uint32_t(b[off]) << 24 | uint32_t(b[off + 1]) << 16 | uint32_t(b[off + 2]) << 8 | b[off + 3];
}

bytes from_hex(std::string_view h) {
    bytes b;
    int hi = -1;
    for (char c : h) {
        int v;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else continue;
        if (hi < 0) hi = v;
        else b.push_back(uint8_t(hi << 4 | v)), hi = -1;
    }
    return b;
}

// ---- the builder ------------------------------------------------------------

struct attr_spec {
    uint16_t type;
    bytes value;
    std::optional<uint16_t> declared_len = std::nullopt;   // default: value.size()
    uint8_t pad = 0;                                       // padding byte
};

attr_spec text_attr(uint16_t type, std::string_view s) { return {type, bytes(s.begin(), s.end())}; }
attr_spec u32_attr(uint16_t type, uint32_t v) {
    bytes b;
    put32(b, v);
    return {type, b};
}
attr_spec user(std::string_view u = token) { return text_attr(attr::username, u); }
attr_spec leave_attr() { return u32_attr(attr::stentor_leave, 0); }
attr_spec cookie_attr(size_t len = cookie_len) {
    bytes v(len);
    for (size_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>(0xc0 + i);
    return {attr::stentor_cookie, v};
}

struct msg_spec {
    uint16_t type = binding_request;
    uint32_t cookie = magic_cookie;
    std::vector<attr_spec> attrs = {user()};
    bool mi = true;                       // append MESSAGE-INTEGRITY (reference HMAC with `key`)
    std::string_view key = password;
    std::vector<attr_spec> after_mi;      // between MI and FP
    bool fp = true;                       // append FINGERPRINT (reference CRC)
    uint32_t fp_xor = 0;                  // corrupt it
    std::vector<attr_spec> after_fp;
    std::optional<uint16_t> header_len;   // default: the true length
    size_t trailing = 0;                  // zero bytes after everything, not counted in the header
    uint8_t first_byte_or = 0;            // OR'd into byte 0 at the very end
};

void append_attr(bytes& b, const attr_spec& a) {
    put16(b, a.type);
    put16(b, a.declared_len.value_or(uint16_t(a.value.size())));
    b.insert(b.end(), a.value.begin(), a.value.end());
    while (b.size() % 4) b.push_back(a.pad);
}

size_t attrs_len(const std::vector<attr_spec>& v) {
    size_t n = 0;
    for (const auto& a : v) n += 4 + (a.value.size() + 3) / 4 * 4;
    return n;
}

bytes build(const msg_spec& s, const uint8_t* txid = txid0.data()) {
    bytes b;
    put16(b, s.type);
    put16(b, 0);
    put32(b, s.cookie);
    b.insert(b.end(), txid, txid + 12);
    for (const auto& a : s.attrs) append_attr(b, a);
    const size_t total = b.size() + (s.mi ? 24 : 0) + attrs_len(s.after_mi) + (s.fp ? 8 : 0) + attrs_len(s.after_fp);
    if (s.mi) {
        set16(b, 2, uint16_t(b.size() + 24 - 20));
        const auto mac = ref_hmac(s.key, b);
        append_attr(b, {attr::message_integrity, bytes(mac.begin(), mac.end())});
    }
    for (const auto& a : s.after_mi) append_attr(b, a);
    set16(b, 2, uint16_t(total - 20));
    if (s.fp) {
        const uint32_t crc = ref_crc32(b.data(), b.size()) ^ 0x5354554eu ^ s.fp_xor;
        append_attr(b, u32_attr(attr::fingerprint, crc));
    }
    for (const auto& a : s.after_fp) append_attr(b, a);
    if (s.header_len) set16(b, 2, *s.header_len);
    b.resize(b.size() + s.trailing, 0);
    b[0] |= s.first_byte_or;
    return b;
}

// ---- guarded buffers ----------------------------------------------------------

// `size` bytes that end exactly at a PROT_NONE page.
class guarded {
public:
    explicit guarded(const bytes& b) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        _map_len = (b.size() + page - 1) / page * page + page;
        void* m = mmap(nullptr, _map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) std::abort();
        _map = static_cast<uint8_t*>(m);
        uint8_t* guard = _map + _map_len - page;
        if (mprotect(guard, page, PROT_NONE) != 0) std::abort();
        _data = guard - b.size();
        if (!b.empty()) std::memcpy(_data, b.data(), b.size());
    }
    ~guarded() { munmap(_map, _map_len); }
    guarded(const guarded&) = delete;
    guarded& operator=(const guarded&) = delete;
    const uint8_t* data() const { return _data; }

private:
    uint8_t* _map = nullptr;
    size_t _map_len = 0;
    uint8_t* _data = nullptr;
};

std::string name(E e) { return std::string(error_name(e)); }

// ---- the request table ---------------------------------------------------------

struct row {
    std::string what;
    bytes msg;
    E expect;
    bool integrity = true;   // for accepted rows: check_integrity with `password`
    bool leave = false;
    std::string_view username = token;   // empty: not compared
    size_t cookie_off = 0;               // where STENTOR-COOKIE's value must be found (0: absent)
};

row good(std::string what, const msg_spec& s, bool integrity = true) {
    return {std::move(what), build(s), E::ok, integrity};
}
row bad(std::string what, const msg_spec& s, E e) { return {std::move(what), build(s), e}; }
row bad(std::string what, bytes b, E e) { return {std::move(what), std::move(b), e}; }

template <typename F>
msg_spec with(F f) {
    msg_spec s;
    f(s);
    return s;
}

const std::vector<row>& table() {
    static const std::vector<row> rows = [] {
        std::vector<row> t;
        // ---- accepted
        t.push_back(good("join request: USERNAME, MESSAGE-INTEGRITY, FINGERPRINT (104 bytes)", {}));
        {
            row r = good("leave request: STENTOR-LEAVE before MI", with([](msg_spec& s) { s.attrs.push_back(leave_attr()); }));
            r.leave = true;
            t.push_back(r);
        }
        {
            row r = good("join with STENTOR-COOKIE after USERNAME (124 bytes, the fixed layout)",
                         with([](msg_spec& s) { s.attrs.push_back(cookie_attr()); }));
            r.cookie_off = 20 + 4 + 48 + 4;
            t.push_back(r);
        }
        {
            row r = good("leave with STENTOR-COOKIE then STENTOR-LEAVE (132 bytes, the fixed layout)", with([](msg_spec& s) {
                             s.attrs.push_back(cookie_attr());
                             s.attrs.push_back(leave_attr());
                         }));
            r.cookie_off = 20 + 4 + 48 + 4;
            r.leave = true;
            t.push_back(r);
        }
        {
            row r = good("STENTOR-COOKIE before USERNAME (walked)",
                         with([](msg_spec& s) { s.attrs.insert(s.attrs.begin(), cookie_attr()); }));
            r.cookie_off = 20 + 4;
            t.push_back(r);
        }
        {
            row r = good("STENTOR-LEAVE then STENTOR-COOKIE (walked)", with([](msg_spec& s) {
                             s.attrs.push_back(leave_attr());
                             s.attrs.push_back(cookie_attr());
                         }));
            r.cookie_off = 20 + 4 + 48 + 8 + 4;
            r.leave = true;
            t.push_back(r);
        }
        t.push_back(good("a 16-byte optional attribute where the cookie goes is no cookie",
                         with([](msg_spec& s) { s.attrs.push_back({0x8123, bytes(16, 1)}); })));
        t.push_back(good("ICE check: PRIORITY, ICE-CONTROLLING, USE-CANDIDATE before USERNAME", with([](msg_spec& s) {
                             s.attrs.insert(s.attrs.begin(), {u32_attr(attr::priority, 0x6e0001ff),
                                                              {attr::ice_controlling, bytes(8, 0x42)},
                                                              {attr::use_candidate, {}}});
                         })));
        t.push_back(good("ICE-CONTROLLED and SOFTWARE (comprehension-optional) are ignored", with([](msg_spec& s) {
                             s.attrs.push_back({attr::ice_controlled, bytes(8, 1)});
                             s.attrs.push_back(text_attr(attr::software, "aioice 0.9"));
                         })));
        t.push_back(good("unknown comprehension-optional attribute 0x8055 is skipped", with([](msg_spec& s) {
                             s.attrs.push_back({0x8055, bytes(7, 0xee)});
                         })));
        t.push_back(good("nonzero padding bytes are ignored (RFC 8489 14)", with([](msg_spec& s) {
                             s.attrs = {user("evtj:h6vY")};
                             s.attrs[0].pad = ' ';
                         })));
        t.back().username = "evtj:h6vY";
        {
            const std::string u128(128, 'u');
            row r = good("USERNAME of exactly max_username_len (128) bytes",
                         with([&](msg_spec& s) { s.attrs = {user(u128)}; }));
            static const std::string keep = u128;
            r.username = keep;
            t.push_back(r);
        }
        t.push_back(good("exactly max_request_len (548) bytes: SOFTWARE pads it", with([](msg_spec& s) {
                             s.attrs.push_back({0x8123, bytes(548 - 104 - 4, 'x')});
                         })));
        t.push_back(good("MI keyed with another password: parses, integrity fails",
                         with([](msg_spec& s) { s.key = "pVx3QpQy1m2Yk0b3nS9cAx"; }), false));
        {
            // A forger who knows the CRC but not the password.
            bytes b = build({});
            b[30] ^= 0x20;
            const uint32_t fp = ref_crc32(b.data(), b.size() - 8) ^ 0x5354554eu;
            for (int i = 0; i < 4; ++i) b[b.size() - 4 + size_t(i)] = uint8_t(fp >> (24 - 8 * i));
            row r{"USERNAME changed after signing, FINGERPRINT recomputed: parses, integrity fails", b, E::ok, false};
            r.username = {};
            t.push_back(r);
        }
        // ---- the join request's own layout (104 or 112 bytes: USERNAME of 48,
        // STENTOR-LEAVE, MI, FP) is recognised without the attribute walk
        // (stun.cc fixed_layout); these have its size but not its words, and
        // must come out as the walk decides.
        {
            static const std::string u45(token.substr(0, 45));
            row r = good("104 bytes, USERNAME of 45 bytes (+3 padding)", with([](msg_spec& s) { s.attrs = {user(u45)}; }));
            r.username = u45;
            t.push_back(r);
        }
        t.push_back(good("112 bytes, a comprehension-optional 0x8055 of 4 bytes where STENTOR-LEAVE goes",
                         with([](msg_spec& s) { s.attrs.push_back(u32_attr(0x8055, 0)); })));
        {
            row r = good("112 bytes, STENTOR-LEAVE before USERNAME",
                         with([](msg_spec& s) { s.attrs.insert(s.attrs.begin(), leave_attr()); }));
            r.leave = true;
            t.push_back(r);
        }
        t.push_back(bad("104 bytes, a comprehension-optional 0x8006 of 48 bytes instead of USERNAME",
                        with([](msg_spec& s) { s.attrs = {text_attr(0x8006, token)}; }), E::no_username));
        // ---- refused: header
        t.push_back(bad("empty datagram", bytes{}, E::too_short));
        t.push_back(bad("19 bytes", bytes(19, 0), E::too_short));
        t.push_back(bad("552 bytes (the next size after 548)", with([](msg_spec& s) { s.attrs.push_back({0x8123, bytes(548 - 104, 'x')}); }),
                        E::too_long));
        t.push_back(bad("first byte 0x40 (top bits 01)", with([](msg_spec& s) { s.first_byte_or = 0x40; }), E::not_stun));
        t.push_back(bad("first byte 0x80 (RTP version 2)", with([](msg_spec& s) { s.first_byte_or = 0x80; }), E::not_stun));
        t.push_back(bad("magic cookie off by one", with([](msg_spec& s) { s.cookie = magic_cookie + 1; }), E::bad_cookie));
        t.push_back(bad("RFC 3489 request (no magic cookie)", with([](msg_spec& s) { s.cookie = 0; }), E::bad_cookie));
        t.push_back(bad("header length 4 more than the payload", with([](msg_spec& s) { s.header_len = 88; }), E::bad_length));
        t.push_back(bad("header length 4 less than the payload", with([](msg_spec& s) { s.header_len = 80; }), E::bad_length));
        t.push_back(bad("header length not a multiple of 4, matching the payload",
                        with([](msg_spec& s) { s.trailing = 2; s.header_len = 86; }), E::bad_length));
        t.push_back(bad("4 bytes of trailing garbage after the message", with([](msg_spec& s) { s.trailing = 4; }),
                        E::bad_length));
        t.push_back(bad("Binding success response sent to the relay",
                        with([](msg_spec& s) { s.type = binding_success; }), E::wrong_type));
        t.push_back(bad("Binding indication", with([](msg_spec& s) { s.type = 0x0011; }), E::wrong_type));
        t.push_back(bad("TURN Allocate request", with([](msg_spec& s) { s.type = 0x0003; }), E::wrong_type));
        // ---- refused: attribute layout
        t.push_back(bad("USERNAME length runs past the end", with([](msg_spec& s) {
                            s.attrs = {{attr::username, bytes(token.begin(), token.end()), uint16_t(200)}};
                            s.mi = s.fp = false;
                        }),
                        E::bad_attribute));
        t.push_back(bad("last attribute's padding runs past the end", with([](msg_spec& s) {
                            s.mi = s.fp = false;
                            s.attrs.push_back({0x8001, bytes(4, 0), uint16_t(5)});
                        }),
                        E::bad_attribute));
        t.push_back(bad("SOFTWARE after FINGERPRINT",
                        with([](msg_spec& s) { s.after_fp = {text_attr(attr::software, "late")}; }),
                        E::attribute_after_fingerprint));
        t.push_back(bad("SOFTWARE between MI and FINGERPRINT",
                        with([](msg_spec& s) { s.after_mi = {text_attr(attr::software, "late")}; }),
                        E::attribute_after_integrity));
        t.push_back(bad("STENTOR-LEAVE after MI (not authenticated)",
                        with([](msg_spec& s) { s.after_mi = {leave_attr()}; }), E::attribute_after_integrity));
        t.push_back(bad("second MESSAGE-INTEGRITY", with([](msg_spec& s) {
                            s.after_mi = {{attr::message_integrity, bytes(20, 0)}};
                        }),
                        E::attribute_after_integrity));
        t.push_back(bad("REALM (long-term credentials)",
                        with([](msg_spec& s) { s.attrs.push_back(text_attr(0x0014, "example.org")); }),
                        E::unknown_comprehension_required));
        t.push_back(bad("MESSAGE-INTEGRITY-SHA256 (not used by ICE)",
                        with([](msg_spec& s) { s.attrs.push_back({0x001c, bytes(32, 0)}); }),
                        E::unknown_comprehension_required));
        t.push_back(bad("XOR-MAPPED-ADDRESS in a request",
                        with([](msg_spec& s) { s.attrs.push_back({attr::xor_mapped_address, bytes(8, 0)}); }),
                        E::unknown_comprehension_required));
        t.push_back(bad("two USERNAMEs", with([](msg_spec& s) { s.attrs.push_back(user("other")); }),
                        E::duplicate_attribute));
        t.push_back(bad("two STENTOR-LEAVEs", with([](msg_spec& s) {
                            s.attrs.push_back(leave_attr());
                            s.attrs.push_back(leave_attr());
                        }),
                        E::duplicate_attribute));
        t.push_back(bad("two STENTOR-COOKIEs", with([](msg_spec& s) {
                            s.attrs.push_back(cookie_attr());
                            s.attrs.push_back(cookie_attr());
                        }),
                        E::duplicate_attribute));
        t.push_back(bad("STENTOR-COOKIE of 12 bytes", with([](msg_spec& s) { s.attrs.push_back(cookie_attr(12)); }),
                        E::bad_attribute_value));
        t.push_back(bad("STENTOR-COOKIE of 20 bytes", with([](msg_spec& s) { s.attrs.push_back(cookie_attr(20)); }),
                        E::bad_attribute_value));
        t.push_back(bad("STENTOR-COOKIE after MI (not authenticated)",
                        with([](msg_spec& s) { s.after_mi = {cookie_attr()}; }), E::attribute_after_integrity));
        t.push_back(bad("empty USERNAME", with([](msg_spec& s) { s.attrs = {user("")}; }), E::bad_attribute_value));
        t.push_back(bad("MESSAGE-INTEGRITY of 32 bytes", with([](msg_spec& s) {
                            s.mi = false;
                            s.attrs.push_back({attr::message_integrity, bytes(32, 0)});
                        }),
                        E::bad_attribute_value));
        t.push_back(bad("FINGERPRINT of 8 bytes", with([](msg_spec& s) {
                            s.fp = false;
                            s.after_mi = {{attr::fingerprint, bytes(8, 0)}};
                        }),
                        E::bad_attribute_value));
        t.push_back(bad("PRIORITY of 8 bytes", with([](msg_spec& s) { s.attrs.push_back({attr::priority, bytes(8, 0)}); }),
                        E::bad_attribute_value));
        t.push_back(bad("USE-CANDIDATE with a value",
                        with([](msg_spec& s) { s.attrs.push_back({attr::use_candidate, bytes(4, 0)}); }),
                        E::bad_attribute_value));
        t.push_back(bad("ICE-CONTROLLING of 4 bytes",
                        with([](msg_spec& s) { s.attrs.push_back({attr::ice_controlling, bytes(4, 0)}); }),
                        E::bad_attribute_value));
        t.push_back(bad("STENTOR-LEAVE with a nonzero value",
                        with([](msg_spec& s) { s.attrs.push_back(u32_attr(attr::stentor_leave, 1)); }),
                        E::bad_attribute_value));
        t.push_back(bad("STENTOR-LEAVE without a value",
                        with([](msg_spec& s) { s.attrs.push_back({attr::stentor_leave, {}}); }),
                        E::bad_attribute_value));
        t.push_back(bad("USERNAME of 129 bytes", with([](msg_spec& s) { s.attrs = {user(std::string(129, 'u'))}; }),
                        E::username_too_long));
        // ---- refused: what is missing, then the CRC
        t.push_back(bad("no USERNAME", with([](msg_spec& s) { s.attrs = {}; }), E::no_username));
        t.push_back(bad("no MESSAGE-INTEGRITY", with([](msg_spec& s) { s.mi = false; }), E::no_integrity));
        t.push_back(bad("no FINGERPRINT", with([](msg_spec& s) { s.fp = false; }), E::no_fingerprint));
        t.push_back(bad("FINGERPRINT off by one bit", with([](msg_spec& s) { s.fp_xor = 1; }), E::bad_fingerprint));
        t.push_back(bad("FINGERPRINT without the 0x5354554E XOR",
                        with([](msg_spec& s) { s.fp_xor = fingerprint_xor; }), E::bad_fingerprint));
        {
            bytes b = build({});
            b[30] ^= 0x20;   // a USERNAME character, after the FINGERPRINT was computed
            t.push_back(bad("USERNAME changed in flight", b, E::bad_fingerprint));
        }
        return t;
    }();
    return rows;
}

TEST(StunTable, Rows) {
    ASSERT_GE(table().size(), 45u);
    for (const row& r : table()) {
        SCOPED_TRACE(r.what);
        const guarded g(r.msg);
        request_view v;
        const E e = parse_request(g.data(), r.msg.size(), v);
        ASSERT_EQ(name(e), name(r.expect));
        if (e != E::ok) {
            EXPECT_EQ(v.txid, nullptr) << "out written on a refusal";
            continue;
        }
        EXPECT_EQ(v.txid, g.data() + 8);
        if (!r.username.empty()) {
            EXPECT_EQ(v.user(), r.username);
        }
        EXPECT_EQ(v.length, r.msg.size());
        EXPECT_EQ(v.integrity_offset, r.msg.size() - 32);
        EXPECT_EQ(v.leave, r.leave);
        EXPECT_EQ(v.cookie, r.cookie_off ? g.data() + r.cookie_off : nullptr);
        EXPECT_GE(reinterpret_cast<const uint8_t*>(v.username), g.data() + 24);
        EXPECT_LE(reinterpret_cast<const uint8_t*>(v.username) + v.username_len, g.data() + v.integrity_offset);
        EXPECT_EQ(check_integrity(g.data(), v, password.data(), password.size()), r.integrity);
        EXPECT_FALSE(check_integrity(g.data(), v, password.data(), password.size() - 1));
    }
}

TEST(StunTable, CoversEveryError) {
    std::set<E> seen;
    for (const row& r : table()) seen.insert(r.expect);
    for (size_t i = 0; i < size_t(E::count_); ++i)
        EXPECT_TRUE(seen.contains(E(i))) << "no table row for " << error_name(E(i));
}

TEST(StunTable, NamesAndTexts) {
    std::set<std::string_view> names;
    for (size_t i = 0; i < size_t(E::count_); ++i) {
        const auto n = error_name(E(i));
        EXPECT_FALSE(n.empty());
        EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string_view::npos) << n;
        EXPECT_TRUE(names.insert(n).second) << n;
        EXPECT_FALSE(error_text(E(i)).empty());
    }
    EXPECT_EQ(error_name(E::ok), "ok");
    EXPECT_EQ(error_name(E::bad_fingerprint), "bad_fingerprint");
    EXPECT_EQ(error_name(E::count_), "?");
}

// Every strict prefix of a good request is refused without reading past it.
TEST(StunTable, EveryPrefixRefused) {
    const bytes full = build(with([](msg_spec& s) { s.attrs.push_back(leave_attr()); }));
    for (size_t n = 0; n < full.size(); ++n) {
        SCOPED_TRACE(n);
        const bytes pre(full.begin(), full.begin() + ptrdiff_t(n));
        const guarded g(pre);
        request_view v;
        const E e = parse_request(g.data(), n, v);
        EXPECT_EQ(name(e), name(n < 20 ? E::too_short : E::bad_length));
    }
}

// ---- RFC 5769 ------------------------------------------------------------------

// RFC 5769 2.1: username "evtj:h6vY", password "VOkJxbRl1RmTxUk/WvJxBt",
// SOFTWARE "STUN test client", PRIORITY, ICE-CONTROLLED, padding with spaces.
const bytes rfc5769_request = from_hex(
    "00010058 2112a442 b7e7a701 bc34d686 fa87dfae"
    "80220010 5354554e 20746573 7420636c 69656e74"
    "00240004 6e0001ff"
    "80290008 932ff9b1 51263b36"
    "00060009 6576746a 3a683676 59202020"
    "00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2"
    "80280004 e57a3bcf");
// RFC 5769 2.2: SOFTWARE "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const bytes rfc5769_response = from_hex(
    "0101003c 2112a442 b7e7a701 bc34d686 fa87dfae"
    "8022000b 74657374 20766563 746f7220"
    "00200008 0001a147 e112a643"
    "00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7"
    "80280004 c07d4c96");
constexpr std::string_view rfc5769_password = "VOkJxbRl1RmTxUk/WvJxBt";

TEST(StunRfc5769, SampleRequestParsesAndVerifies) {
    ASSERT_EQ(rfc5769_request.size(), 108u);
    const guarded g(rfc5769_request);
    request_view v;
    ASSERT_EQ(name(parse_request(g.data(), rfc5769_request.size(), v)), "ok");
    EXPECT_EQ(v.user(), "evtj:h6vY");
    EXPECT_EQ(0, std::memcmp(v.txid, txid0.data(), 12));
    EXPECT_EQ(v.integrity_offset, 76);
    EXPECT_FALSE(v.leave);
    EXPECT_TRUE(check_integrity(g.data(), v, rfc5769_password.data(), rfc5769_password.size()));
    EXPECT_FALSE(check_integrity(g.data(), v, "VOkJxbRl1RmTxUk/WvJxBu", 22));
    EXPECT_EQ(fingerprint(rfc5769_request.data(), 100), 0xe57a3bcfu);
}

TEST(StunRfc5769, SampleIpv4ResponseParsesAndVerifies) {
    ASSERT_EQ(rfc5769_response.size(), 80u);
    const guarded g(rfc5769_response);
    response_view v;
    ASSERT_EQ(name(parse_response(g.data(), rfc5769_response.size(), v)), "ok");
    EXPECT_EQ(v.type, binding_success);
    EXPECT_TRUE(v.has_mapped);
    EXPECT_EQ(v.mapped_ipv4, 0xc0000201u);   // 192.0.2.1
    EXPECT_EQ(v.mapped_port, 32853);
    EXPECT_EQ(v.error_code, 0);
    EXPECT_EQ(0, std::memcmp(v.txid, txid0.data(), 12));
    EXPECT_TRUE(check_integrity(g.data(), v.integrity_offset, rfc5769_password.data(), rfc5769_password.size()));
    EXPECT_FALSE(check_integrity(g.data(), v.integrity_offset, password.data(), password.size()));
    EXPECT_EQ(fingerprint(rfc5769_response.data(), 72), 0xc07d4c96u);
    // A response is not a request.
    request_view rv;
    EXPECT_EQ(name(parse_request(g.data(), rfc5769_response.size(), rv)), "wrong_type");
}

// The CRC is ISA-L's vector assembly, which ASan does not instrument: every
// length runs on bytes that end exactly at a PROT_NONE page, so a read past
// the end faults here.
TEST(StunRfc5769, FingerprintMatchesTheReferenceCrcAtEveryLength) {
    bytes b(600);
    for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 131 + 7);
    for (size_t n = 0; n <= b.size(); ++n) {
        const bytes part(b.begin(), b.begin() + ptrdiff_t(n));
        const guarded g(part);
        ASSERT_EQ(fingerprint(g.data(), n), ref_crc32(part.data(), n) ^ 0x5354554eu) << n;
    }
}

// HMAC keys longer than the 64-byte block are hashed first (RFC 2104).
// Each key byte differs from its neighbours, and for the join password's
// 22 bytes (loaded in lanes, stun.cc key_states) a change of any one byte
// must fail.
TEST(StunIntegrity, KeysOfEveryLengthMatchTheReference) {
    for (size_t klen : {0, 1, 21, 22, 23, 63, 64, 65, 200}) {
        SCOPED_TRACE(klen);
        std::string key(klen, 'k');
        for (size_t i = 0; i < klen; ++i) key[i] = static_cast<char>('A' + (i * 7) % 58);
        const bytes m = build(with([&](msg_spec& s) { s.key = key; }));
        request_view v;
        ASSERT_EQ(name(parse_request(m.data(), m.size(), v)), "ok");
        EXPECT_TRUE(check_integrity(m.data(), v, key.data(), key.size()));
        const std::string other = key + "x";
        EXPECT_FALSE(check_integrity(m.data(), v, other.data(), other.size()));
        if (klen == 22) {
            for (size_t i = 0; i < klen; ++i) {
                std::string edited = key;
                edited[i] = static_cast<char>(edited[i] ^ 1);
                EXPECT_FALSE(check_integrity(m.data(), v, edited.data(), edited.size())) << "byte " << i;
            }
        }
    }
}

// check_integrity lays out SHA-1 blocks itself (one, two or more message
// blocks, a tail of 0..60 bytes with its padding in one block or two): every
// MESSAGE-INTEGRITY offset a request can have (28..516: USERNAME of 1..128
// bytes alone, then a SOFTWARE attribute of every length before the token),
// on bytes that end at a PROT_NONE page, against OpenSSL's HMAC(); and a
// flipped bit in each of the first, last and a middle byte it covers is
// caught.
TEST(StunIntegrity, EveryMessageLengthMatchesTheReference) {
    std::vector<bytes> msgs;
    const std::string long_user(max_username_len, 'u');
    for (size_t n = 1; n <= max_username_len; ++n)
        msgs.push_back(build(with([&](msg_spec& s) { s.attrs = {user(std::string_view(long_user).substr(0, n))}; })));
    for (size_t sw = 0; sw <= max_request_len; ++sw)
        msgs.push_back(build(with([&](msg_spec& s) {
            s.attrs = {{attr::software, bytes(sw, uint8_t('a' + sw % 26))}, user()};
        })));
    size_t checked = 0;
    for (const bytes& m : msgs) {
        if (m.size() > max_request_len) break;
        const size_t mi = m.size() - 32;
        const guarded g(m);
        request_view v;
        ASSERT_EQ(name(parse_request(g.data(), m.size(), v)), "ok") << m.size();
        ASSERT_EQ(v.integrity_offset, mi);
        ASSERT_TRUE(check_integrity(g.data(), v, password.data(), password.size())) << "MI at " << mi;
        for (size_t at : {size_t{0}, size_t{4}, mi / 2, mi - 1}) {   // not 2..3: the length is replaced
            bytes f = m;
            f[at] ^= 0x10;
            const guarded gf(f);
            EXPECT_FALSE(check_integrity(gf.data(), mi, password.data(), password.size())) << "MI at " << mi << ", byte " << at;
        }
        ++checked;
    }
    EXPECT_GT(checked, 500u);
}

TEST(StunIntegrity, OffsetsBelowTheHeaderAreRefused) {
    const bytes m = build({});
    EXPECT_FALSE(check_integrity(m.data(), size_t{0}, password.data(), password.size()));
    EXPECT_FALSE(check_integrity(m.data(), size_t{19}, password.data(), password.size()));
    EXPECT_TRUE(check_integrity(m.data(), m.size() - 32, password.data(), password.size()));
}

// ---- builders --------------------------------------------------------------------

constexpr uint8_t canary = 0xa5;

// A buffer of `cap` bytes followed by canaries; `intact()` checks that no
// byte past cap was written.
struct out_buf {
    explicit out_buf(size_t cap) : cap(cap), buf(cap + 64, canary) {}
    uint8_t* data() { return buf.data(); }
    bool intact() const {
        for (size_t i = cap; i < buf.size(); ++i)
            if (buf[i] != canary) return false;
        return true;
    }
    bytes message(size_t n) const { return bytes(buf.begin(), buf.begin() + ptrdiff_t(n)); }
    size_t cap;
    bytes buf;
};

struct request_case {
    std::string what;
    request_options opt;
    std::string_view username;
    size_t expect_len;   // 0: refused
};

const std::array<uint8_t, cookie_len> cookie16 = {0x00, 0x00, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

TEST(StunBuild, RequestsParseBack) {
    const std::string u128(128, 'u'), u129(129, 'u'), sw127(127, 's'), sw128(128, 's'), sw510(510, 's');
    const std::vector<request_case> cases = {
        {"join", {}, token, 104},
        {"leave", {.leave = true}, token, 112},
        {"ICE check", {.ice = true, .priority = 0x6e0001ff, .tie_breaker = 0x0102030405060708}, token, 124},
        {"ICE check, nominating", {.ice = true, .use_candidate = true}, token, 128},
        {"SOFTWARE, 5 bytes padded to 8", {.software = "probe"}, token, 116},
        {"odd-length username", {}, "evtj:h6vY", 68},
        {"username of 128 bytes", {}, u128, 20 + 132 + 32},
        {"username of 129 bytes", {}, u129, 0},
        {"empty username", {}, "", 0},
        {"USE-CANDIDATE without ICE", {.use_candidate = true}, token, 0},
        {"SOFTWARE of 127 characters", {.software = sw127}, token, 104 + 4 + 128},
        {"SOFTWARE of 128 characters", {.software = sw128}, token, 0},
        {"SOFTWARE of 510 bytes", {.software = sw510}, token, 0},
        {"join with a cookie", {.cookie = cookie16.data()}, token, 124},
        {"leave with a cookie", {.leave = true, .cookie = cookie16.data()}, token, 132},
        {"ICE check with a cookie", {.ice = true, .priority = 1, .cookie = cookie16.data()}, token, 144},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        out_buf out(600);
        const size_t n = build_request(out.data(), out.cap, txid0.data(), c.username, password.data(), password.size(), c.opt);
        ASSERT_EQ(n, c.expect_len);
        ASSERT_TRUE(out.intact());
        if (!n) continue;
        const bytes m = out.message(n);
        const guarded g(m);
        request_view v;
        ASSERT_EQ(name(parse_request(g.data(), n, v)), "ok");
        EXPECT_EQ(v.user(), c.username);
        EXPECT_EQ(v.leave, c.opt.leave);
        EXPECT_EQ(v.use_candidate, c.opt.use_candidate);
        if (c.opt.cookie) {
            ASSERT_NE(v.cookie, nullptr);
            EXPECT_EQ(0, std::memcmp(v.cookie, c.opt.cookie, cookie_len));
        } else {
            EXPECT_EQ(v.cookie, nullptr);
        }
        EXPECT_EQ(0, std::memcmp(v.txid, txid0.data(), 12));
        EXPECT_TRUE(check_integrity(g.data(), v, password.data(), password.size()));
        // Same bytes as the independent test builder for the plain join.
        if (c.what == "join") {
            EXPECT_EQ(m, build({}));
        }
        // Exactly enough room works; one byte less writes nothing past cap.
        for (size_t cap : {n, n - 1, n - 4, size_t{20}, size_t{0}}) {
            out_buf o(cap);
            const size_t k = build_request(o.data(), cap, txid0.data(), c.username, password.data(), password.size(), c.opt);
            EXPECT_EQ(k, cap == n ? n : 0) << "cap " << cap;
            EXPECT_TRUE(o.intact()) << "cap " << cap;
        }
    }
}

TEST(StunBuild, SuccessParsesBack) {
    out_buf out(success_len);
    const uint32_t ip = 0xc6120a0b;   // 198.18.10.11
    const size_t n = build_success(out.data(), out.cap, txid0.data(), ip, 40123, password.data(), password.size());
    ASSERT_EQ(n, 64u);
    ASSERT_TRUE(out.intact());
    const bytes m = out.message(n);
    const guarded g(m);
    response_view v;
    ASSERT_EQ(name(parse_response(g.data(), n, v)), "ok");
    EXPECT_EQ(v.type, binding_success);
    EXPECT_TRUE(v.has_mapped);
    EXPECT_EQ(v.mapped_ipv4, ip);
    EXPECT_EQ(v.mapped_port, 40123);
    EXPECT_EQ(v.error_code, 0);
    EXPECT_EQ(0, std::memcmp(v.txid, txid0.data(), 12));
    EXPECT_TRUE(check_integrity(g.data(), v.integrity_offset, password.data(), password.size()));
    // Independent checks of the wire: the reference CRC and HMAC.
    EXPECT_EQ(get32(m, 60), ref_crc32(m.data(), 56) ^ 0x5354554eu);
    bytes signed_part(m.begin(), m.begin() + 32);
    set16(signed_part, 2, 32 + 24 - 20);
    const auto mac = ref_hmac(password, signed_part);
    EXPECT_EQ(0, std::memcmp(m.data() + 36, mac.data(), 20));
    // The RFC 5769 2.2 address round-trips to its XOR'd bytes.
    out_buf o2(64);
    ASSERT_EQ(build_success(o2.data(), 64, txid0.data(), 0xc0000201, 32853, "k", 1), 64u);
    EXPECT_EQ(o2.message(32), from_hex("0101002c 2112a442 b7e7a701 bc34d686 fa87dfae 00200008 0001a147 e112a643"));
    for (size_t cap = 0; cap < 64; ++cap) {
        out_buf o(cap);
        EXPECT_EQ(build_success(o.data(), cap, txid0.data(), ip, 1, "k", 1), 0u) << cap;
        EXPECT_TRUE(o.intact()) << cap;
    }
}

// Over IPv6 (issue 15): the address is XORed with the magic cookie followed
// by the transaction id (RFC 8489 14.2); 76 bytes. RFC 5769 2.3's sample
// address and transaction id give its published bytes.
TEST(StunBuild, SuccessIpv6ParsesBack) {
    out_buf out(success_len6);
    mapped_address a;
    a.family = family_ipv6;
    const bytes rfc_addr = from_hex("20010db8 12345678 00112233 44556677");   // 2001:db8:1234:5678:11:2233:4455:6677
    std::memcpy(a.addr, rfc_addr.data(), 16);
    a.port = 32853;
    const bytes rfc_txid = from_hex("b7e7a701 bc34d686 fa87dfae");
    const size_t n = build_success(out.data(), out.cap, rfc_txid.data(), a, password.data(), password.size());
    ASSERT_EQ(n, 76u);
    ASSERT_TRUE(out.intact());
    const bytes m = out.message(n);
    EXPECT_EQ(bytes(m.begin(), m.begin() + 44),
              from_hex("01010038 2112a442 b7e7a701 bc34d686 fa87dfae 00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 "
                       "bed2b9d9"));
    const guarded g(m);
    response_view v;
    ASSERT_EQ(name(parse_response(g.data(), n, v)), "ok");
    EXPECT_EQ(v.type, binding_success);
    EXPECT_TRUE(v.has_mapped);
    EXPECT_EQ(v.mapped_family, family_ipv6);
    EXPECT_EQ(0, std::memcmp(v.mapped_ipv6, rfc_addr.data(), 16));
    EXPECT_EQ(v.mapped_port, 32853);
    EXPECT_TRUE(check_integrity(g.data(), v.integrity_offset, password.data(), password.size()));
    // Independent checks of the wire: the reference CRC and HMAC.
    EXPECT_EQ(get32(m, 72), ref_crc32(m.data(), 68) ^ 0x5354554eu);
    bytes signed_part(m.begin(), m.begin() + 44);
    set16(signed_part, 2, 44 + 24 - 20);
    const auto mac = ref_hmac(password, signed_part);
    EXPECT_EQ(0, std::memcmp(m.data() + 48, mac.data(), 20));
    // A request of 104 bytes (the smallest join) has room; nothing smaller
    // than 76 gets a byte past its cap.
    for (size_t cap = 0; cap < 76; ++cap) {
        out_buf o(cap);
        EXPECT_EQ(build_success(o.data(), cap, rfc_txid.data(), a, "k", 1), 0u) << cap;
        EXPECT_TRUE(o.intact()) << cap;
    }
    mapped_address bad = a;
    bad.family = 3;
    out_buf o(100);
    EXPECT_EQ(build_success(o.data(), 100, rfc_txid.data(), bad, "k", 1), 0u) << "unknown family";
    // The IPv4 overload is the family_ipv4 form.
    mapped_address v4;
    v4.family = family_ipv4;
    const bytes v4_addr = from_hex("c0000201");
    std::memcpy(v4.addr, v4_addr.data(), 4);
    v4.port = 32853;
    out_buf o4(64), o4b(64);
    ASSERT_EQ(build_success(o4.data(), 64, txid0.data(), v4, "k", 1), 64u);
    ASSERT_EQ(build_success(o4b.data(), 64, txid0.data(), 0xc0000201, 32853, "k", 1), 64u);
    EXPECT_EQ(o4.message(64), o4b.message(64));
}

struct error_case {
    std::string what;
    uint16_t code;
    std::string reason;
    uint32_t retry_ms;
    size_t cap;
    size_t expect_len;          // 0: refused
    std::string expect_reason;  // as parsed back
};

// The relay's answers carry STENTOR-COOKIE: both kinds parse back with it,
// and both still fit in the smallest request they can answer (104 bytes: a
// first request, without a cookie), IPv6 success and 429 included.
TEST(StunBuild, AnswersCarryTheCookieAndStillFitTheRequest) {
    constexpr size_t smallest_request = 104;
    mapped_address a6;
    a6.family = family_ipv6;
    for (size_t i = 0; i < 16; ++i) a6.addr[i] = static_cast<uint8_t>(0x20 + i);
    a6.port = 40000;
    mapped_address a4;
    a4.family = family_ipv4;
    a4.addr[0] = 198;
    a4.addr[1] = 18;
    a4.addr[3] = 7;
    a4.port = 40001;
    struct answer_case {
        const char* what;
        size_t expect_len;
        std::function<size_t(uint8_t*, size_t)> build;
    };
    const std::vector<answer_case> cases = {
        {"success, IPv4", 84,
         [&](uint8_t* o, size_t cap) { return build_success(o, cap, txid0.data(), a4, password.data(), password.size(), cookie16.data()); }},
        {"success, IPv6", 96,
         [&](uint8_t* o, size_t cap) { return build_success(o, cap, txid0.data(), a6, password.data(), password.size(), cookie16.data()); }},
        {"438, its whole reason (19 characters)", 100,
         [&](uint8_t* o, size_t cap) {
             return build_error(o, cap, txid0.data(), 438, "echo STENTOR-COOKIE", 0, password.data(), password.size(), cookie16.data());
         }},
        {"429 with a retry time, reason cut to fit", smallest_request,
         [&](uint8_t* o, size_t cap) {
             return build_error(o, cap, txid0.data(), 429, "rate limited, retry in 3 s", 3000, password.data(), password.size(),
                                cookie16.data());
         }},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        out_buf out(smallest_request);
        const size_t n = c.build(out.data(), out.cap);
        ASSERT_EQ(n, c.expect_len);
        ASSERT_TRUE(out.intact());
        const bytes m = out.message(n);
        response_view v;
        ASSERT_EQ(name(parse_response(m.data(), m.size(), v)), "ok");
        ASSERT_TRUE(v.has_cookie);
        EXPECT_EQ(0, std::memcmp(v.cookie, cookie16.data(), cookie_len));
        EXPECT_TRUE(check_integrity(m.data(), v.integrity_offset, password.data(), password.size()));
    }
    // Without one, no attribute and the lengths of before.
    out_buf out(success_len);
    const size_t n = build_success(out.data(), out.cap, txid0.data(), a4, password.data(), password.size());
    ASSERT_EQ(n, success_len);
    response_view v;
    ASSERT_EQ(name(parse_response(out.data(), n, v)), "ok");
    EXPECT_FALSE(v.has_cookie);
}

TEST(StunBuild, ErrorResponsesCutTheReasonToFit) {
    const std::string long_ascii(300, 'r');
    const std::string e_acute = "\xc3\xa9";   // é, 2 bytes
    std::string accents;
    for (int i = 0; i < 200; ++i) accents += e_acute;   // 200 characters, 400 bytes
    const std::vector<error_case> cases = {
        {"403 with a short reason", 403, "token expired", 0, 548, 60 + 16, "token expired"},
        {"429 with a retry time", 429, "rate limited", 1500, 548, 68 + 12, "rate limited"},
        {"cap = a 104-byte join request: reason cut to 44 bytes", 486, long_ascii, 0, 104, 104, long_ascii.substr(0, 44)},
        {"cap = 104 with RETRY-AFTER: 36 bytes", 429, long_ascii, 250, 104, 104, long_ascii.substr(0, 36)},
        {"cap not a multiple of 4: cut to the padded room", 503, long_ascii, 0, 107, 104, long_ascii.substr(0, 44)},
        {"cap leaves 3 bytes: empty reason", 503, "capacity", 0, 63, 60, ""},
        {"cap exactly the fixed part", 503, "capacity", 0, 60, 60, ""},
        {"cap one byte short of the fixed part", 503, "capacity", 0, 59, 0, ""},
        {"cap short of the fixed part with RETRY-AFTER", 429, "later", 1, 67, 0, ""},
        {"cut never splits a UTF-8 character", 400, "abc" + e_acute + "d", 0, 60 + 4, 64, "abc"},
        {"a cut that lands between characters keeps both", 400, "a" + e_acute + "bcd", 0, 60 + 4, 64, "a" + e_acute + "b"},
        {"127 characters at most (RFC 8489 14.8)", 400, accents, 0, 548, 60 + 256, accents.substr(0, 254)},
        {"127 characters of ASCII at most", 400, std::string(600, 'x'), 0, 2000, 60 + 128, std::string(127, 'x')},
        {"code 299 refused", 299, "x", 0, 548, 0, ""},
        {"code 700 refused", 700, "x", 0, 548, 0, ""},
        {"code 300 accepted", 300, "", 0, 548, 60, ""},
        {"code 699 accepted", 699, "", 0, 548, 60, ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        out_buf out(c.cap);
        const size_t n = build_error(out.data(), c.cap, txid0.data(), c.code, c.reason, c.retry_ms, password.data(),
                                     password.size());
        ASSERT_EQ(n, c.expect_len);
        ASSERT_TRUE(out.intact());
        ASSERT_LE(n, c.cap);
        if (!n) continue;
        const bytes m = out.message(n);
        const guarded g(m);
        response_view v;
        ASSERT_EQ(name(parse_response(g.data(), n, v)), "ok");
        EXPECT_EQ(v.type, binding_error);
        EXPECT_EQ(v.error_code, c.code);
        EXPECT_EQ(v.reason_phrase(), c.expect_reason);
        EXPECT_EQ(v.retry_after_ms, c.retry_ms);
        EXPECT_FALSE(v.has_mapped);
        EXPECT_TRUE(check_integrity(g.data(), v.integrity_offset, password.data(), password.size()));
    }
}

// Whatever the cap, no builder writes past it, and what it returns fits.
TEST(StunBuild, NeverPastCap) {
    const std::string reason(200, 'z');
    for (size_t cap = 0; cap <= 300; ++cap) {
        SCOPED_TRACE(cap);
        out_buf a(cap), b(cap), c(cap), d(cap);
        EXPECT_LE(build_success(a.data(), cap, txid0.data(), 1, 2, "k", 1), cap);
        EXPECT_LE(build_error(b.data(), cap, txid0.data(), 429, reason, 100, "k", 1), cap);
        EXPECT_LE(build_error(c.data(), cap, txid0.data(), 500, reason, 0, "k", 1), cap);
        EXPECT_LE(build_request(d.data(), cap, txid0.data(), token, "k", 1, {.leave = true, .ice = true, .software = "x"}), cap);
        EXPECT_TRUE(a.intact() && b.intact() && c.intact() && d.intact());
    }
}

// ---- docs/join.md, "The join packet" -------------------------------------------------

// The page's example, computed with Python's hmac and zlib (and accepted by
// aioice) apart from this code: the token and password of the page's worked
// token example, transaction id "STENTOR-JOIN", client seen at
// 203.0.113.5:40000. Our builders must make exactly these bytes.
TEST(StunDocs, JoinMdExampleBytes) {
    constexpr std::string_view doc_token = "AQEAAAAqAgBpVbkAASNFZ4mrze-oqncYPHFV8Ek_HU-UgaLP";
    constexpr std::string_view doc_password = "hlIJ_81nT5VjmD15oKN_0w";
    const uint8_t* tx = reinterpret_cast<const uint8_t*>("STENTOR-JOIN");
    const bytes request = from_hex(
        "000100542112a4425354454e544f522d4a4f494e0006003041514541414141714167427056626b4141534e465a346d727a652d6f716e63"
        "595048465638456b5f48552d5567614c5000080014aed0dd4ab35dc270e76a792a4481f86c469e324b80280004a11aa079");
    const bytes success = from_hex(
        "0101002c2112a4425354454e544f522d4a4f494e002000080001bd52ea12d5470008001495d3c1353b0d5441179914b0e9d1eacb3a30db22"
        "80280004e0dc2148");
    const bytes error = from_hex(
        "0111003c2112a4425354454e544f522d4a4f494e000900100000041d72617465206c696d69746564c0020004000007d000080014852c58bf"
        "509274ac9bb4da62513c01c8b8cdaadf8028000438e00baf");
    const bytes leave = from_hex(
        "0001005c2112a4425354454e544f522d4a4f494e0006003041514541414141714167427056626b4141534e465a346d727a652d6f716e63"
        "595048465638456b5f48552d5567614c50c00100040000000000080014af11fe302f23f197205979a312ff0d520dbd99cf802800049188e520");
    const char* key = doc_password.data();
    const size_t klen = doc_password.size();
    uint8_t out[200];
    size_t n = build_request(out, sizeof out, tx, doc_token, key, klen);
    EXPECT_EQ(bytes(out, out + n), request);
    n = build_request(out, sizeof out, tx, doc_token, key, klen, {.leave = true});
    EXPECT_EQ(bytes(out, out + n), leave);
    n = build_success(out, request.size(), tx, 0xcb007105, 40000, key, klen);
    EXPECT_EQ(bytes(out, out + n), success);
    n = build_error(out, request.size(), tx, 429, "rate limited", 2000, key, klen);
    EXPECT_EQ(bytes(out, out + n), error);
    // The same request from [2001:db8:100::5]:40000 (issue 15): 76 bytes.
    const bytes success6 = from_hex(
        "010100382112a4425354454e544f522d4a4f494e002000140002bd520113a9fa5254454e544f522d4a4f494b00080014d5541a4ce767b316"
        "60e530fde6e5e85010c2fec88028000426ec45e8");
    mapped_address a6;
    a6.family = family_ipv6;
    const bytes addr6 = from_hex("20010db8010000000000000000000005");
    std::memcpy(a6.addr, addr6.data(), 16);
    a6.port = 40000;
    n = build_success(out, request.size(), tx, a6, key, klen);
    EXPECT_EQ(bytes(out, out + n), success6);
    request_view v;
    ASSERT_EQ(name(parse_request(request.data(), request.size(), v)), "ok");
    EXPECT_EQ(v.user(), doc_token);
    EXPECT_TRUE(check_integrity(request.data(), v, key, klen));
}

// ---- responses --------------------------------------------------------------------

struct response_row {
    std::string what;
    bytes msg;
    E expect;
};

attr_spec xma(uint8_t family = family_ipv4, size_t len = 8) {
    bytes v(len, 0);
    v[1] = family;
    return {attr::xor_mapped_address, v};
}
attr_spec error_code_attr(uint8_t cls, uint8_t number, std::string_view reason = "") {
    bytes v = {0, 0, cls, number};
    v.insert(v.end(), reason.begin(), reason.end());
    return {attr::error_code, v};
}

TEST(StunResponse, Rows) {
    auto resp = [](auto f) {
        msg_spec s;
        s.type = binding_success;
        s.attrs = {xma()};
        f(s);
        return build(s);
    };
    const std::vector<response_row> rows = {
        {"success with XOR-MAPPED-ADDRESS", resp([](msg_spec&) {}), E::ok},
        {"success with MAPPED-ADDRESS too, and SOFTWARE", resp([](msg_spec& s) {
             s.attrs.push_back({attr::mapped_address, bytes(8, 0)});
             s.attrs.push_back(text_attr(attr::software, "x"));
         }),
         E::ok},
        {"error 420 with UNKNOWN-ATTRIBUTES", resp([](msg_spec& s) {
             s.type = binding_error;
             s.attrs = {error_code_attr(4, 20, "Unknown"), {attr::unknown_attributes, {0x00, 0x14}}};
         }),
         E::ok},
        {"a request is not a response", resp([](msg_spec& s) { s.type = binding_request; }), E::wrong_type},
        {"truncated attribute", resp([](msg_spec& s) {
             s.mi = s.fp = false;
             s.attrs = {{attr::xor_mapped_address, bytes(8, 0), uint16_t(12)}};
         }),
         E::bad_attribute},
        {"no MESSAGE-INTEGRITY (unauthenticated answer)", resp([](msg_spec& s) { s.mi = false; }), E::no_integrity},
        {"no FINGERPRINT", resp([](msg_spec& s) { s.fp = false; }), E::no_fingerprint},
        {"bad FINGERPRINT", resp([](msg_spec& s) { s.fp_xor = 4; }), E::bad_fingerprint},
        {"IPv6 XOR-MAPPED-ADDRESS", resp([](msg_spec& s) { s.attrs = {xma(family_ipv6, 20)}; }), E::ok},
        {"IPv6 family with an IPv4-sized value", resp([](msg_spec& s) { s.attrs = {xma(family_ipv6, 8)}; }),
         E::bad_attribute_value},
        {"IPv4 family with an IPv6-sized value", resp([](msg_spec& s) { s.attrs = {xma(family_ipv4, 20)}; }),
         E::bad_attribute_value},
        {"unknown address family 3", resp([](msg_spec& s) { s.attrs = {xma(0x03, 20)}; }), E::bad_attribute_value},
        {"XOR-MAPPED-ADDRESS of 4 bytes", resp([](msg_spec& s) { s.attrs = {xma(family_ipv4, 4)}; }),
         E::bad_attribute_value},
        {"XOR-MAPPED-ADDRESS of 0 bytes, the message's last bytes (fuzz_stun: read before its length was checked)",
         resp([](msg_spec& s) {
             s.mi = s.fp = false;
             s.attrs = {{attr::xor_mapped_address, bytes{}}};
         }),
         E::bad_attribute_value},
        {"two XOR-MAPPED-ADDRESSes", resp([](msg_spec& s) { s.attrs.push_back(xma()); }), E::duplicate_attribute},
        {"ERROR-CODE class 2", resp([](msg_spec& s) {
             s.type = binding_error;
             s.attrs = {error_code_attr(2, 0)};
         }),
         E::bad_attribute_value},
        {"ERROR-CODE number 100", resp([](msg_spec& s) {
             s.type = binding_error;
             s.attrs = {error_code_attr(4, 100)};
         }),
         E::bad_attribute_value},
        {"two ERROR-CODEs", resp([](msg_spec& s) {
             s.type = binding_error;
             s.attrs = {error_code_attr(4, 0), error_code_attr(5, 0)};
         }),
         E::duplicate_attribute},
        {"two RETRY-AFTERs", resp([](msg_spec& s) {
             s.attrs.push_back(u32_attr(attr::stentor_retry_after, 1));
             s.attrs.push_back(u32_attr(attr::stentor_retry_after, 2));
         }),
         E::duplicate_attribute},
        {"USERNAME in a response", resp([](msg_spec& s) { s.attrs.push_back(user()); }), E::unknown_comprehension_required},
        {"attribute after MI", resp([](msg_spec& s) { s.after_mi = {xma()}; }), E::attribute_after_integrity},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const guarded g(r.msg);
        response_view v;
        ASSERT_EQ(name(parse_response(g.data(), r.msg.size(), v)), name(r.expect));
        if (r.expect == E::ok) {
            EXPECT_EQ(v.length, r.msg.size());
            EXPECT_TRUE(check_integrity(g.data(), v.integrity_offset, password.data(), password.size()));
        }
    }
}

}  // namespace
}  // namespace stentor::stun

// The data plane counts each parser refusal under its own name,
// drop/join/<name> (dp_counters.h generates them from stun.h's list).
TEST(StunCounters, every_refusal_has_its_drop_reason) {
    for (auto i = size_t{1}; i < static_cast<size_t>(stentor::stun::stun_error::count_); ++i) {
        const auto e = static_cast<stentor::stun::stun_error>(i);
        EXPECT_EQ("join/" + std::string(stentor::stun::error_name(e)),
                  std::string(stentor::dp::name_of(stentor::dp::join_drop_of(e))));
    }
}
