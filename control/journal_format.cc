#include "journal_format.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include <rte_hash_crc.h>

namespace stentor::control::jr {
namespace {

constexpr char magic[8] = {'S', 'T', 'N', 'T', 'R', 'J', 'N', 'L'};

void put8(std::string& o, uint8_t v) { o.push_back(static_cast<char>(v)); }
void put16(std::string& o, uint16_t v) {
    const char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
    o.append(b, 2);
}
void put32(std::string& o, uint32_t v) {
    const char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 24)};
    o.append(b, 4);
}
void put64(std::string& o, uint64_t v) {
    put32(o, static_cast<uint32_t>(v));
    put32(o, static_cast<uint32_t>(v >> 32));
}

// A listener's tier byte: the tier (0..3) and, in bit 7, "joined by token".
uint8_t tier_byte(const listener_spec& l) {
    return static_cast<uint8_t>((l.tier & 0x7f) | (l.by_token ? 0x80 : 0));
}

void put_ip6(std::string& o, const ipv6_addr& a) { o.append(reinterpret_cast<const char*>(a.data()), 16); }
// An endpoint's address: 16 bytes in the *6 record types, else 4.
void put_addr(std::string& o, uint32_t ip, const std::optional<ipv6_addr>& ip6) {
    if (ip6)
        put_ip6(o, *ip6);
    else
        put32(o, ip);
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t get32(const uint8_t* p) { return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24; }
uint64_t get64(const uint8_t* p) { return uint64_t{get32(p)} | uint64_t{get32(p + 4)} << 32; }

// A record in the making: length patched and CRC appended by finish().
struct frame {
    std::string& o;
    size_t start;
    frame(std::string& out, record_type t) : o(out), start(out.size()) {
        put32(o, 0);
        put8(o, static_cast<uint8_t>(t));
    }
    void finish() {
        const auto n = static_cast<uint32_t>(o.size() - start - 5);
        for (int i = 0; i < 4; ++i) o[start + i] = static_cast<char>(n >> (8 * i));
        put32(o, crc32c(reinterpret_cast<const uint8_t*>(o.data()) + start, o.size() - start));
    }
};

// Bounds-checked reads of one payload; any overrun or leftover byte makes
// the record corrupt (ok() false).
struct cursor {
    const uint8_t* p;
    size_t n;
    size_t at = 0;
    bool bad = false;
    bool need(size_t k) {
        if (bad || n - at < k) {
            bad = true;
            return false;
        }
        return true;
    }
    uint8_t u8() { return need(1) ? p[at++] : 0; }
    uint16_t u16() {
        if (!need(2)) return 0;
        at += 2;
        return get16(p + at - 2);
    }
    uint32_t u32() {
        if (!need(4)) return 0;
        at += 4;
        return get32(p + at - 4);
    }
    uint64_t u64() {
        if (!need(8)) return 0;
        at += 8;
        return get64(p + at - 8);
    }
    ipv6_addr ip6() {
        ipv6_addr a{};
        if (!need(16)) return a;
        std::memcpy(a.data(), p + at, 16);
        at += 16;
        return a;
    }
    // An endpoint's address: 16 bytes in the *6 record types, else 4.
    void addr(bool v6, uint32_t& ip, std::optional<ipv6_addr>& a) {
        if (v6)
            a = ip6();
        else
            ip = u32();
    }
    // The tier byte: tier in bits 0-6, bit 7 joined by token.
    void tier(listener_spec& l) {
        const uint8_t t = u8();
        l.tier = t & 0x7f;
        l.by_token = (t & 0x80) != 0;
    }
    bool flag() {
        const uint8_t v = u8();
        if (v > 1) bad = true;
        return v == 1;
    }
    bool ok() const { return !bad && at == n; }
};

std::optional<record> decode_payload(record_type t, const uint8_t* p, size_t n, std::string& why) {
    cursor c{p, n};
    record out;
    switch (t) {
    case record_type::session_create: {
        rec_session_create r;
        r.p.id = c.u32();
        r.p.udp_port = c.u32();
        r.p.max_listeners = c.u32();
        r.p.frame_ms = c.u32();
        r.p.max_bitrate_kbps = c.u32();
        const uint8_t mode = c.u8();
        if (mode >= session_mode_names.size()) c.bad = true;
        r.p.mode = static_cast<session_mode>(mode);
        r.p.recording = c.flag();
        const uint16_t len = c.u16();
        if (c.need(len)) {
            r.p.name.assign(reinterpret_cast<const char*>(p + c.at), len);
            c.at += len;
        }
        // SRTP modes: two bytes, written only when one is on (so a record
        // stays canonical and older records read as both off).
        if (!c.bad && c.at < n) {
            const uint8_t in = c.u8();
            const uint8_t eg = c.u8();
            if (in > 1 || eg > 1 || (in == 0 && eg == 0)) c.bad = true;
            r.p.srtp_ingress = static_cast<srtp_ingress_mode>(in);
            r.p.srtp_egress = static_cast<srtp_egress_mode>(eg);
        } else {
            r.p.srtp_ingress = srtp_ingress_mode::off;
            r.p.srtp_egress = srtp_egress_mode::off;
        }
        out = std::move(r);
        break;
    }
    case record_type::session_end:
        out = rec_session_end{c.u32()};
        break;
    case record_type::speaker_add: {
        rec_speaker_add r{};
        r.session_id = c.u32();
        r.s.ip = c.u32();
        r.s.port = c.u16();
        const bool has = c.flag();
        const uint32_t ssrc = c.u32();
        if (has) r.s.ssrc = ssrc;
        else if (ssrc != 0) c.bad = true;
        out = r;
        break;
    }
    case record_type::speaker_del: {
        rec_speaker_del r{};
        r.session_id = c.u32();
        r.ip = c.u32();
        r.port = c.u16();
        out = r;
        break;
    }
    case record_type::listener_add:
    case record_type::listener_add6: {
        rec_listener_add r{};
        r.session_id = c.u32();
        c.addr(t == record_type::listener_add6, r.l.ip, r.l.ip6);
        r.l.port = c.u16();
        c.tier(r.l);
        out = r;
        break;
    }
    case record_type::listener_del: {
        rec_listener_del r{};
        r.session_id = c.u32();
        r.ip = c.u32();
        r.port = c.u16();
        out = r;
        break;
    }
    case record_type::listener_add_bulk:
    case record_type::listener_add_bulk6: {
        const bool v6 = t == record_type::listener_add_bulk6;
        rec_listener_add_bulk r;
        r.session_id = c.u32();
        const uint32_t count = c.u32();
        // The count must match the length exactly: checked before the
        // allocation, so a lying count costs nothing.
        if (c.bad || n - c.at != size_t{count} * (v6 ? bulk6_item_bytes : bulk_item_bytes)) {
            c.bad = true;
        } else {
            r.items.resize(count);
            for (auto& l : r.items) {
                c.addr(v6, l.ip, l.ip6);
                l.port = c.u16();
                c.tier(l);
            }
        }
        out = std::move(r);
        break;
    }
    case record_type::listeners_removed:
    case record_type::listeners_removed6: {
        const bool v6 = t == record_type::listeners_removed6;
        rec_listeners_removed r;
        const uint32_t count = c.u32();
        if (c.bad || n - c.at != size_t{count} * (v6 ? 22 : 10)) {
            c.bad = true;
        } else {
            r.items.resize(count);
            for (auto& l : r.items) {
                l.session_id = c.u32();
                c.addr(v6, l.ip, l.ip6);
                l.port = c.u16();
            }
        }
        out = std::move(r);
        break;
    }
    case record_type::speaker_add6: {
        rec_speaker_add r{};
        r.session_id = c.u32();
        r.s.ip6 = c.ip6();
        r.s.port = c.u16();
        const bool has = c.flag();
        const uint32_t ssrc = c.u32();
        if (has) r.s.ssrc = ssrc;
        else if (ssrc != 0) c.bad = true;
        out = r;
        break;
    }
    case record_type::speaker_del6:
    case record_type::listener_del6: {
        const uint32_t sid = c.u32();
        const ipv6_addr a = c.ip6();
        const unsigned port = c.u16();
        if (t == record_type::speaker_del6)
            out = rec_speaker_del{sid, 0, port, a};
        else
            out = rec_listener_del{sid, 0, port, a};
        break;
    }
    case record_type::srtp_reserve: {
        rec_srtp_reserve r{};
        r.session_id = c.u32();
        r.ssrc_be = c.u32();
        r.limit = c.u64();
        out = r;
        break;
    }
    case record_type::srtp_ingress_mark:
    case record_type::srtp_ingress_mark6: {
        rec_srtp_ingress_mark r{};
        r.session_id = c.u32();
        c.addr(t == record_type::srtp_ingress_mark6, r.ip, r.ip6);
        r.port = c.u16();
        r.ssrc_be = c.u32();
        r.index = c.u64();
        out = r;
        break;
    }
    case record_type::session_ids: {
        rec_session_ids r{};
        r.next = c.u64();
        if (r.next == 0 || r.next > uint64_t{UINT32_MAX} + 1) c.bad = true;
        out = r;
        break;
    }
    case record_type::listener_tier:
    case record_type::listener_tier6: {
        rec_listener_tier r{};
        r.session_id = c.u32();
        c.addr(t == record_type::listener_tier6, r.ip, r.ip6);
        r.port = c.u16();
        const uint8_t tier = c.u8();
        if (tier & 0x80) c.bad = true;   // reserved: the move keeps "joined by token", it does not write it
        r.tier = tier;
        out = r;
        break;
    }
    case record_type::snapshot_end: {
        rec_snapshot_end r{};
        r.sessions = c.u32();
        r.speakers = c.u32();
        r.listeners = c.u64();
        out = r;
        break;
    }
    default:
        why = "unknown record type " + std::to_string(static_cast<unsigned>(t));
        return std::nullopt;
    }
    if (!c.ok()) {
        why = std::string("malformed ") + name_of(t) + " record (" + std::to_string(n) + " payload bytes)";
        return std::nullopt;
    }
    return out;
}

}  // namespace

uint32_t crc32c(const uint8_t* p, size_t n) noexcept {
    // DPDK's word primitives (SSE4.2 crc32 when the CPU has it), fed with
    // memcpy loads: rte_hash_crc() itself reads unaligned words through
    // casted pointers, undefined behaviour that UBSan reports (found by
    // fuzz/fuzz_journal on a record at an odd offset). Same result.
    uint32_t crc = 0xffffffffu;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        crc = rte_hash_crc_8byte(w, crc);
    }
    if (i + 4 <= n) {
        uint32_t w;
        std::memcpy(&w, p + i, 4);
        crc = rte_hash_crc_4byte(w, crc);
        i += 4;
    }
    for (; i < n; ++i) crc = rte_hash_crc_1byte(p[i], crc);
    return crc ^ 0xffffffffu;
}

void encode_header(file_kind kind, uint64_t epoch, std::string& out) {
    const size_t start = out.size();
    out.append(magic, sizeof magic);
    put32(out, format_version);
    put32(out, static_cast<uint32_t>(kind));
    put64(out, epoch);
    put32(out, 0);
    put32(out, crc32c(reinterpret_cast<const uint8_t*>(out.data()) + start, 28));
}

std::optional<file_header> decode_header(std::span<const uint8_t> b, std::string& why) {
    if (b.size() < header_size) {
        why = "file shorter than its " + std::to_string(header_size) + "-byte header (" + std::to_string(b.size()) +
              " bytes)";
        return std::nullopt;
    }
    if (std::memcmp(b.data(), magic, sizeof magic) != 0) {
        why = "not a Stentor journal file (bad magic)";
        return std::nullopt;
    }
    if (crc32c(b.data(), 28) != get32(b.data() + 28)) {
        why = "header CRC mismatch";
        return std::nullopt;
    }
    const uint32_t version = get32(b.data() + 8);
    if (version != format_version) {
        why = "format version " + std::to_string(version) + " (this build reads " + std::to_string(format_version) + ")";
        return std::nullopt;
    }
    const uint32_t kind = get32(b.data() + 12);
    if (kind != static_cast<uint32_t>(file_kind::journal) && kind != static_cast<uint32_t>(file_kind::snapshot)) {
        why = "unknown file kind " + std::to_string(kind);
        return std::nullopt;
    }
    // Reserved for a later version, which would also bump the version: a
    // version-1 header with anything there was not written by a writer.
    if (const uint32_t reserved = get32(b.data() + 24); reserved != 0) {
        why = "reserved header word is " + std::to_string(reserved) + ", not 0";
        return std::nullopt;
    }
    return file_header{static_cast<file_kind>(kind), get64(b.data() + 16)};
}

void encode(const record& r, std::string& out) {
    std::visit(
        [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, rec_session_create>) {
                frame f(out, record_type::session_create);
                put32(out, v.p.id);
                put32(out, v.p.udp_port);
                put32(out, v.p.max_listeners);
                put32(out, v.p.frame_ms);
                put32(out, v.p.max_bitrate_kbps);
                put8(out, static_cast<uint8_t>(v.p.mode));
                put8(out, v.p.recording ? 1 : 0);
                const auto len = static_cast<uint16_t>(std::min<size_t>(v.p.name.size(), 0xffff));
                put16(out, len);
                out.append(v.p.name.data(), len);
                const bool in = v.p.srtp_ingress == srtp_ingress_mode::required;
                const bool eg = v.p.srtp_egress == srtp_egress_mode::session_key;
                if (in || eg) {
                    put8(out, in ? 1 : 0);
                    put8(out, eg ? 1 : 0);
                }
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_session_end>) {
                frame f(out, record_type::session_end);
                put32(out, v.session_id);
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_speaker_add>) {
                frame f(out, v.s.ip6 ? record_type::speaker_add6 : record_type::speaker_add);
                put32(out, v.session_id);
                put_addr(out, v.s.ip, v.s.ip6);
                put16(out, static_cast<uint16_t>(v.s.port));
                put8(out, v.s.ssrc ? 1 : 0);
                put32(out, v.s.ssrc.value_or(0));
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_speaker_del>) {
                frame f(out, v.ip6 ? record_type::speaker_del6 : record_type::speaker_del);
                put32(out, v.session_id);
                put_addr(out, v.ip, v.ip6);
                put16(out, static_cast<uint16_t>(v.port));
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_listener_add>) {
                encode_listener_add(v.session_id, v.l, out);
            } else if constexpr (std::is_same_v<T, rec_listener_del>) {
                frame f(out, v.ip6 ? record_type::listener_del6 : record_type::listener_del);
                put32(out, v.session_id);
                put_addr(out, v.ip, v.ip6);
                put16(out, static_cast<uint16_t>(v.port));
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_listener_add_bulk>) {
                encode_listener_add_bulk(v.session_id, v.items, out);
            } else if constexpr (std::is_same_v<T, rec_listeners_removed>) {
                // IPv4 items in listeners_removed records, IPv6 ones in
                // listeners_removed6 records after them (order within a
                // family kept; removals of different listeners commute).
                std::vector<const removed_listener*> v6;
                std::vector<const removed_listener*> v4;
                v4.reserve(v.items.size());
                for (const auto& it : v.items) (it.ip6 ? v6 : v4).push_back(&it);
                constexpr size_t per = (max_payload - 4) / 10;
                size_t at = 0;
                if (!v4.empty() || v6.empty()) do {
                    const size_t k = std::min(per, v4.size() - at);
                    frame f(out, record_type::listeners_removed);
                    put32(out, static_cast<uint32_t>(k));
                    for (size_t i = at; i < at + k; ++i) {
                        put32(out, v4[i]->session_id);
                        put32(out, v4[i]->ip);
                        put16(out, static_cast<uint16_t>(v4[i]->port));
                    }
                    f.finish();
                    at += k;
                } while (at < v4.size());
                constexpr size_t per6 = (max_payload - 4) / 22;
                for (at = 0; at < v6.size();) {
                    const size_t k = std::min(per6, v6.size() - at);
                    frame f(out, record_type::listeners_removed6);
                    put32(out, static_cast<uint32_t>(k));
                    for (size_t i = at; i < at + k; ++i) {
                        put32(out, v6[i]->session_id);
                        put_ip6(out, *v6[i]->ip6);
                        put16(out, static_cast<uint16_t>(v6[i]->port));
                    }
                    f.finish();
                    at += k;
                }
            } else if constexpr (std::is_same_v<T, rec_srtp_reserve>) {
                frame f(out, record_type::srtp_reserve);
                put32(out, v.session_id);
                put32(out, v.ssrc_be);
                put64(out, v.limit);
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_srtp_ingress_mark>) {
                frame f(out, v.ip6 ? record_type::srtp_ingress_mark6 : record_type::srtp_ingress_mark);
                put32(out, v.session_id);
                put_addr(out, v.ip, v.ip6);
                put16(out, static_cast<uint16_t>(v.port));
                put32(out, v.ssrc_be);
                put64(out, v.index);
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_session_ids>) {
                frame f(out, record_type::session_ids);
                put64(out, v.next);
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_listener_tier>) {
                frame f(out, v.ip6 ? record_type::listener_tier6 : record_type::listener_tier);
                put32(out, v.session_id);
                put_addr(out, v.ip, v.ip6);
                put16(out, static_cast<uint16_t>(v.port));
                put8(out, static_cast<uint8_t>(v.tier & 0x7f));
                f.finish();
            } else if constexpr (std::is_same_v<T, rec_snapshot_end>) {
                frame f(out, record_type::snapshot_end);
                put32(out, v.sessions);
                put32(out, v.speakers);
                put64(out, v.listeners);
                f.finish();
            }
        },
        r);
}

void encode_listener_add(uint32_t session_id, const listener_spec& l, std::string& out) {
    frame f(out, l.ip6 ? record_type::listener_add6 : record_type::listener_add);
    put32(out, session_id);
    put_addr(out, l.ip, l.ip6);
    put16(out, static_cast<uint16_t>(l.port));
    put8(out, tier_byte(l));
    f.finish();
}

namespace {
void encode_bulk6(uint32_t session_id, std::span<const listener_spec> items, std::string& out) {
    constexpr size_t per = (max_payload - 8) / bulk6_item_bytes;
    std::vector<const listener_spec*> v6;
    for (const auto& it : items)
        if (it.ip6) v6.push_back(&it);
    for (size_t at = 0; at < v6.size();) {
        const size_t k = std::min(per, v6.size() - at);
        frame f(out, record_type::listener_add_bulk6);
        put32(out, session_id);
        put32(out, static_cast<uint32_t>(k));
        for (size_t i = at; i < at + k; ++i) {
            put_ip6(out, *v6[i]->ip6);
            put16(out, static_cast<uint16_t>(v6[i]->port));
            put8(out, tier_byte(*v6[i]));
        }
        f.finish();
        at += k;
    }
}
}  // namespace

void encode_listener_add_bulk(uint32_t session_id, std::span<const listener_spec> items, std::string& out) {
    // IPv6 items go to a listener_add_bulk6 record beside this one (one
    // pass to find them: the IPv4-only bulk pays one branch per item).
    bool any6 = false;
    for (const auto& it : items) any6 |= it.ip6.has_value();
    if (any6) {
        std::vector<listener_spec> v4;
        for (const auto& it : items)
            if (!it.ip6) v4.push_back(it);
        if (!v4.empty()) encode_listener_add_bulk(session_id, v4, out);
        encode_bulk6(session_id, items, out);
        return;
    }
    size_t at = 0;
    do {
        const size_t k = std::min(max_bulk_items, items.size() - at);
        out.reserve(out.size() + record_overhead + 8 + k * bulk_item_bytes);
        frame f(out, record_type::listener_add_bulk);
        put32(out, session_id);
        put32(out, static_cast<uint32_t>(k));
        // One resize and raw stores: this runs under the state mutex, 100 000
        // items per API request.
        const size_t base = out.size();
        out.resize(base + k * bulk_item_bytes);
        auto* d = reinterpret_cast<uint8_t*>(out.data() + base);
        for (size_t i = at; i < at + k; ++i, d += bulk_item_bytes) {
            const uint32_t ip = items[i].ip;
            const auto port = static_cast<uint16_t>(items[i].port);
            d[0] = static_cast<uint8_t>(ip);
            d[1] = static_cast<uint8_t>(ip >> 8);
            d[2] = static_cast<uint8_t>(ip >> 16);
            d[3] = static_cast<uint8_t>(ip >> 24);
            d[4] = static_cast<uint8_t>(port);
            d[5] = static_cast<uint8_t>(port >> 8);
            d[6] = tier_byte(items[i]);
        }
        f.finish();
        at += k;
    } while (at < items.size());
}

reader::status reader::next(record& out) {
    const size_t left = _b.size() - _pos;
    if (left == 0) return status::end;
    if (left < record_overhead) {
        _why = "torn record: " + std::to_string(left) + " bytes, shorter than a record frame";
        return status::torn;
    }
    const uint8_t* p = _b.data() + _pos;
    const uint32_t n = get32(p);
    if (n > max_payload) {
        _why = "record length " + std::to_string(n) + " exceeds the maximum " + std::to_string(max_payload);
        return status::corrupt;
    }
    if (left - record_overhead < n) {
        _why = "torn record: length " + std::to_string(n) + " but only " + std::to_string(left - record_overhead) +
               " payload bytes left";
        return status::torn;
    }
    if (crc32c(p, 5 + size_t{n}) != get32(p + 5 + n)) {
        _why = "record CRC mismatch";
        return status::corrupt;
    }
    auto r = decode_payload(static_cast<record_type>(p[4]), p + 5, n, _why);
    if (!r) return status::corrupt;
    out = std::move(*r);
    _pos += record_overhead + n;
    return status::record;
}

const char* name_of(record_type t) noexcept {
    switch (t) {
    case record_type::session_create: return "session_create";
    case record_type::session_end: return "session_end";
    case record_type::speaker_add: return "speaker_add";
    case record_type::speaker_del: return "speaker_del";
    case record_type::listener_add: return "listener_add";
    case record_type::listener_del: return "listener_del";
    case record_type::listener_add_bulk: return "listener_add_bulk";
    case record_type::listeners_removed: return "listeners_removed";
    case record_type::snapshot_end: return "snapshot_end";
    case record_type::speaker_add6: return "speaker_add6";
    case record_type::speaker_del6: return "speaker_del6";
    case record_type::listener_add6: return "listener_add6";
    case record_type::listener_del6: return "listener_del6";
    case record_type::listener_add_bulk6: return "listener_add_bulk6";
    case record_type::listeners_removed6: return "listeners_removed6";
    case record_type::srtp_reserve: return "srtp_reserve";
    case record_type::srtp_ingress_mark: return "srtp_ingress_mark";
    case record_type::srtp_ingress_mark6: return "srtp_ingress_mark6";
    case record_type::session_ids: return "session_ids";
    case record_type::listener_tier: return "listener_tier";
    case record_type::listener_tier6: return "listener_tier6";
    }
    return "unknown";
}

}  // namespace stentor::control::jr
