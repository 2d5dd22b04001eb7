// The journal's bytes: a versioned file header and framed records, one per
// accepted action of relay_state. Pure (no I/O, no state): the journal
// (journal.h), the unit tests and fuzz/fuzz_journal.cc share it.
//
// Little-endian, fixed layout:
//
//   file header (32 bytes)
//     0  magic "STNTRJNL"
//     8  u32 version (1)
//    12  u32 kind (1 journal, 2 snapshot)
//    16  u64 epoch (snapshot.N is the state journal.N starts from)
//    24  u32 reserved (0)
//    28  u32 CRC32C of bytes 0..27
//   record
//     0  u32 payload length n (<= max_payload)
//     4  u8  type (record_type)
//     5  n bytes of payload (below, per type)
//   5+n  u32 CRC32C of bytes 0..4+n
//
// A listener's tier byte (listener_add, listener_add_bulk items; the
// snapshot's listeners are bulk items too) carries
// the tier in bits 0..6 and, in bit 7, whether it joined by token (it is
// under consent after a restart too).
//
// The reader stops at the first record that is incomplete (torn: a crash
// during the write) or wrong (CRC, unknown type, a payload whose shape does
// not match its type); everything before it is good. Whether a good record
// still applies (a port the profile no longer has, a session that is gone)
// is for the actions to say, not the reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "session.h"

namespace stentor::control::jr {

inline constexpr size_t header_size = 32;
inline constexpr uint32_t format_version = 1;
inline constexpr size_t record_overhead = 9;          // length, type, CRC
// A bulk join of the API is at most 100 000 listeners (700 kB); the encoder
// splits anything larger than this into several records of one write.
inline constexpr uint32_t max_payload = 64u << 20;
inline constexpr size_t bulk_item_bytes = 7;           // ip, port, tier
inline constexpr size_t max_bulk_items = (max_payload - 8) / bulk_item_bytes;

enum class file_kind : uint32_t { journal = 1, snapshot = 2 };

enum class record_type : uint8_t {
    session_create = 1,     // the session as created: id, name, port, limit resolved
    session_end = 2,
    speaker_add = 3,
    speaker_del = 4,
    listener_add = 5,
    listener_del = 6,
    listener_add_bulk = 7,  // one record per bulk action (all or nothing)
    listeners_removed = 8,  // shed_newest, listener_del_bulk: (session, ip, port) across sessions
    snapshot_end = 9,       // last record of a snapshot: what it holds
    // IPv6 peers (issue 15): the same records with a 16-byte address where
    // the IPv4 ones have 4. A build before these stops at the first one
    // (unknown type) as at any corrupt record.
    speaker_add6 = 10,
    speaker_del6 = 11,
    listener_add6 = 12,
    listener_del6 = 13,
    listener_add_bulk6 = 14,  // the IPv6 items of one bulk action (its IPv4 items: a listener_add_bulk beside it)
    listeners_removed6 = 15,
    // SRTP egress reservations (docs/srtp.md "Egress reservations"): the
    // indices of one SSRC of a session below `limit` may have been used.
    // Kept after the session ends (a session created again under its id
    // starts above them); a snapshot carries every one the state holds.
    srtp_reserve = 16,
    // SRTP ingress marks (docs/srtp.md "Ingress marks"): the highest index
    // accepted from a speaker's SSRC when it was written; a restart starts
    // the speaker's fresh stream there (replays below it refused).
    srtp_ingress_mark = 17,      // IPv4 speaker
    srtp_ingress_mark6 = 18,     // IPv6 speaker
    // Snapshots: automatic session ids start at `next`; every id below it
    // was given, to a session live or ended (a journal's session_create
    // records say as much by themselves).
    session_ids = 19,
    // A listener moved to another tier in one step (relay_state::
    // listener_set_tier: a token renewed with a token of another tier,
    // docs/join.md "Renewal and tier"): session, address, port and the new
    // tier; it keeps "joined by token" and becomes the newest of its new
    // tier. A build before these stops at the first one as at any corrupt
    // record.
    listener_tier = 20,
    listener_tier6 = 21,
};
inline constexpr size_t bulk6_item_bytes = 19;         // ip6, port, tier

struct rec_session_create {
    session_params p;       // id, name, udp_port, max_listeners resolved
};
struct rec_session_end {
    uint32_t session_id;
};
struct rec_speaker_add {
    uint32_t session_id;
    speaker_spec s;
};
struct rec_speaker_del {
    uint32_t session_id;
    uint32_t ip;
    unsigned port;
    std::optional<ipv6_addr> ip6 = std::nullopt;
};
struct rec_listener_add {
    uint32_t session_id;
    listener_spec l;
};
struct rec_listener_del {
    uint32_t session_id;
    uint32_t ip;
    unsigned port;
    std::optional<ipv6_addr> ip6 = std::nullopt;
};
struct rec_listener_add_bulk {
    uint32_t session_id;
    std::vector<listener_spec> items;
};
struct removed_listener {
    uint32_t session_id;
    uint32_t ip;
    unsigned port;
    std::optional<ipv6_addr> ip6 = std::nullopt;
    bool operator==(const removed_listener&) const = default;
};
struct rec_listeners_removed {
    std::vector<removed_listener> items;
};
struct rec_listener_tier {
    uint32_t session_id;
    uint32_t ip;
    unsigned port;
    unsigned tier;          // 0..127 on disk (bit 7 reserved); the action refuses what the relay does not serve
    std::optional<ipv6_addr> ip6 = std::nullopt;
};
struct rec_srtp_reserve {
    uint32_t session_id;
    uint32_t ssrc_be;       // the SSRC as on the wire (the egress table's tag)
    uint64_t limit;         // every egress index the relay may use is below it
};
struct rec_srtp_ingress_mark {
    uint32_t session_id;
    uint32_t ip;            // the speaker (host order), or ip6
    std::optional<ipv6_addr> ip6;
    unsigned port;
    uint32_t ssrc_be;
    uint64_t index;
};
struct rec_session_ids {
    uint64_t next;          // 1 .. 2^32
};
struct rec_snapshot_end {
    uint32_t sessions;
    uint32_t speakers;
    uint64_t listeners;
};

using record = std::variant<rec_session_create, rec_session_end, rec_speaker_add, rec_speaker_del, rec_listener_add,
                            rec_listener_del, rec_listener_add_bulk, rec_listeners_removed, rec_snapshot_end,
                            rec_srtp_reserve, rec_srtp_ingress_mark, rec_session_ids, rec_listener_tier>;

// CRC32C (Castagnoli), as in iSCSI/ext4: DPDK's rte_hash_crc (SSE4.2 when
// the CPU has it) with the standard pre- and post-inversion.
uint32_t crc32c(const uint8_t* p, size_t n) noexcept;

struct file_header {
    file_kind kind;
    uint64_t epoch;
};
void encode_header(file_kind kind, uint64_t epoch, std::string& out);
// nullopt and `why` set if the bytes are not a header this version writes.
std::optional<file_header> decode_header(std::span<const uint8_t> bytes, std::string& why);

// Append one framed record to `out`.
void encode(const record& r, std::string& out);
// The hot ones without building a record first (they run under the state
// mutex): a bulk join costs one pass over its items.
void encode_listener_add(uint32_t session_id, const listener_spec& l, std::string& out);
void encode_listener_add_bulk(uint32_t session_id, std::span<const listener_spec> items, std::string& out);

// Reads the records after a file header, one by one.
class reader {
public:
    enum class status { record, end, torn, corrupt };

    explicit reader(std::span<const uint8_t> body) noexcept : _b(body) {}
    // record: `out` holds the next one. end: all bytes read. torn/corrupt:
    // stop; why() says what, good_bytes() is where the good part ends.
    status next(record& out);
    size_t good_bytes() const noexcept { return _pos; }
    const std::string& why() const noexcept { return _why; }

private:
    std::span<const uint8_t> _b;
    size_t _pos = 0;
    std::string _why;
};

const char* name_of(record_type t) noexcept;

}  // namespace stentor::control::jr
