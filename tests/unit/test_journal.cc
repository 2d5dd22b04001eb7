// The write-ahead journal: its byte format (round trips and corrupt inputs,
// as tables), and relay_state with a journal, destroyed and restored from
// the same directory into a new relay_state (no EAL: the snapshot is plain
// memory and RCU is off, as in test_listener_table).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "admission.h"
#include "config.h"
#include "journal.h"
#include "journal_format.h"
#include "state.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_srtp.h"
#include "stentor/dp_worker.h"

namespace {

using namespace stentor;
using namespace stentor::control;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Format

std::span<const uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void put32(std::string& o, uint32_t v) {
    for (int i = 0; i < 4; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}

// A record framed by hand (length, type, payload, CRC32C): how the tests
// make records the encoder never writes.
std::string frame(uint8_t type, const std::string& payload) {
    std::string o;
    put32(o, static_cast<uint32_t>(payload.size()));
    o.push_back(static_cast<char>(type));
    o += payload;
    put32(o, jr::crc32c(reinterpret_cast<const uint8_t*>(o.data()), o.size()));
    return o;
}

TEST(JournalFormat, crc32c_matches_the_published_check_values) {
    // RFC 3720 B.4 (iSCSI) and the CRC catalogue's check value.
    const std::string check = "123456789";
    EXPECT_EQ(0xe3069283u, jr::crc32c(reinterpret_cast<const uint8_t*>(check.data()), check.size()));
    const std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xff);
    EXPECT_EQ(0x8a9136aau, jr::crc32c(zeros.data(), zeros.size()));
    EXPECT_EQ(0x62a8ab43u, jr::crc32c(ones.data(), ones.size()));
    std::vector<uint8_t> inc(32);
    for (size_t i = 0; i < 32; ++i) inc[i] = static_cast<uint8_t>(i);
    EXPECT_EQ(0x46dd794eu, jr::crc32c(inc.data(), inc.size()));
    EXPECT_EQ(0u, jr::crc32c(nullptr, 0));
}

struct round_trip_row {
    std::string name;
    jr::record rec;
};

session_params params(uint32_t id, std::string name, unsigned port) {
    session_params p;
    p.id = id;
    p.name = std::move(name);
    p.udp_port = port;
    p.max_listeners = 5000;
    p.mode = session_mode::mix;
    p.recording = true;
    p.frame_ms = 10;
    p.max_bitrate_kbps = 510;
    return p;
}

ipv6_addr v6(const char* text) { return *parse_ipv6(text); }

std::vector<round_trip_row> round_trip_rows() {
    std::vector<listener_spec> many;
    for (uint32_t i = 0; i < 1000; ++i) many.push_back({0x0a000000u + i, 1 + i % 65535, i % 4, i % 3 == 0});
    std::vector<listener_spec> many6;
    for (uint32_t i = 0; i < 1000; ++i) {
        auto a = v6("2001:db8:1::");
        a[14] = static_cast<uint8_t>(i >> 8);
        a[15] = static_cast<uint8_t>(i);
        many6.push_back({0, 1 + i % 65535, i % 4, i % 3 == 0, a});
    }
    return {
        {"session_create_all_fields", jr::rec_session_create{params(7, "room \"7\"", 40007)}},
        {"session_create_empty_name_defaults", jr::rec_session_create{session_params{}}},
        {"session_create_long_name", jr::rec_session_create{params(4294967295u, std::string(300, 'x'), 65535)}},
        {"session_create_srtp_both", jr::rec_session_create{[] {
             auto p = params(8, "enc", 40008);
             p.srtp_ingress = srtp_ingress_mode::required;
             p.srtp_egress = srtp_egress_mode::session_key;
             return p;
         }()}},
        {"session_create_srtp_egress_only", jr::rec_session_create{[] {
             auto p = params(9, "enc", 40009);
             p.srtp_egress = srtp_egress_mode::session_key;
             return p;
         }()}},
        {"session_end", jr::rec_session_end{4294967295u}},
        {"speaker_add_with_ssrc", jr::rec_speaker_add{3, {0xc612000a, 5004, 0xffffffffu}}},
        {"speaker_add_ssrc_zero", jr::rec_speaker_add{3, {0xc612000a, 5004, 0u}}},
        {"speaker_add_without_ssrc", jr::rec_speaker_add{3, {0xc612000a, 65535, std::nullopt}}},
        {"speaker_del", jr::rec_speaker_del{3, 0xc612000a, 5004}},
        {"listener_add", jr::rec_listener_add{9, {0xcb007105, 6000, 3}}},
        {"listener_add_by_token", jr::rec_listener_add{9, {0xcb007106, 6001, 2, true}}},
        {"listener_del", jr::rec_listener_del{9, 0xcb007105, 6000}},
        {"listener_add_bulk_1000", jr::rec_listener_add_bulk{2, many}},
        {"listener_add_bulk_empty", jr::rec_listener_add_bulk{2, {}}},
        {"listeners_removed", jr::rec_listeners_removed{{{1, 0x0a000001, 1}, {2, 0x0a000002, 65535}}}},
        {"listeners_removed_none", jr::rec_listeners_removed{{}}},
        {"snapshot_end", jr::rec_snapshot_end{3, 4, 1ull << 40}},
        {"session_ids", jr::rec_session_ids{42}},
        {"session_ids_past_the_last_id", jr::rec_session_ids{uint64_t{1} << 32}},
        // IPv6 peers (issue 15): records of their own, 16-byte addresses.
        {"speaker_add6_with_ssrc", jr::rec_speaker_add{3, {0, 5004, 0xfffffffeu, v6("2001:db8::a")}}},
        {"speaker_add6_without_ssrc", jr::rec_speaker_add{3, {0, 65535, std::nullopt, v6("fd00::1:2:3:4")}}},
        {"speaker_del6", jr::rec_speaker_del{3, 0, 5004, v6("2001:db8::a")}},
        {"listener_add6", jr::rec_listener_add{9, {0, 6000, 3, false, v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")}}},
        {"listener_add6_by_token", jr::rec_listener_add{9, {0, 6001, 2, true, v6("2001:db8::6")}}},
        {"listener_del6", jr::rec_listener_del{9, 0, 6000, v6("2001:db8::6")}},
        {"listener_add_bulk6_1000", jr::rec_listener_add_bulk{2, many6}},
        {"listeners_removed6", jr::rec_listeners_removed{{{1, 0, 1, v6("2001:db8::1")}, {2, 0, 65535, v6("2001:db8::2")}}}},
        // SRTP egress reservations: an SSRC with its top bit set, a limit past 2^32.
        {"srtp_reserve", jr::rec_srtp_reserve{7, 0xdeadbeefu, (uint64_t{1} << 40) + 4096}},
        // SRTP ingress marks, one per family.
        {"srtp_ingress_mark", jr::rec_srtp_ingress_mark{7, 0xc612000a, std::nullopt, 5004, 0xd2040000u, 70001}},
        {"srtp_ingress_mark6", jr::rec_srtp_ingress_mark{7, 0, v6("2001:db8::a"), 65535, 1, (uint64_t{1} << 47) + 3}},
        // A listener's move to another tier (relay_state::listener_set_tier).
        {"listener_tier", jr::rec_listener_tier{9, 0xcb007105, 6000, 3}},
        {"listener_tier_to_0", jr::rec_listener_tier{4294967295u, 0xffffffffu, 65535, 0}},
        {"listener_tier6", jr::rec_listener_tier{9, 0, 1, 2, v6("2001:db8::6")}},
        {"listener_tier_127", jr::rec_listener_tier{1, 0x0a000001, 5000, 127}},   // on disk; the action refuses it
    };
}

bool same(const jr::record& a, const jr::record& b) {
    if (a.index() != b.index()) return false;
    return std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            const auto& y = std::get<T>(b);
            if constexpr (std::is_same_v<T, jr::rec_session_create>) {
                const auto &p = x.p, &q = y.p;
                return p.id == q.id && p.name == q.name && p.mode == q.mode && p.udp_port == q.udp_port &&
                       p.max_listeners == q.max_listeners && p.recording == q.recording && p.frame_ms == q.frame_ms &&
                       p.max_bitrate_kbps == q.max_bitrate_kbps &&
                       p.srtp_ingress.value_or(srtp_ingress_mode::off) == q.srtp_ingress.value_or(srtp_ingress_mode::off) &&
                       p.srtp_egress.value_or(srtp_egress_mode::off) == q.srtp_egress.value_or(srtp_egress_mode::off);
            } else if constexpr (std::is_same_v<T, jr::rec_session_end>) {
                return x.session_id == y.session_id;
            } else if constexpr (std::is_same_v<T, jr::rec_speaker_add>) {
                return x.session_id == y.session_id && x.s == y.s;
            } else if constexpr (std::is_same_v<T, jr::rec_speaker_del> || std::is_same_v<T, jr::rec_listener_del>) {
                return x.session_id == y.session_id && x.ip == y.ip && x.port == y.port && x.ip6 == y.ip6;
            } else if constexpr (std::is_same_v<T, jr::rec_listener_add>) {
                return x.session_id == y.session_id && x.l == y.l;
            } else if constexpr (std::is_same_v<T, jr::rec_listener_add_bulk>) {
                return x.session_id == y.session_id && x.items == y.items;
            } else if constexpr (std::is_same_v<T, jr::rec_listeners_removed>) {
                return x.items == y.items;
            } else if constexpr (std::is_same_v<T, jr::rec_srtp_reserve>) {
                return x.session_id == y.session_id && x.ssrc_be == y.ssrc_be && x.limit == y.limit;
            } else if constexpr (std::is_same_v<T, jr::rec_srtp_ingress_mark>) {
                return x.session_id == y.session_id && x.ip == y.ip && x.ip6 == y.ip6 && x.port == y.port &&
                       x.ssrc_be == y.ssrc_be && x.index == y.index;
            } else if constexpr (std::is_same_v<T, jr::rec_session_ids>) {
                return x.next == y.next;
            } else if constexpr (std::is_same_v<T, jr::rec_listener_tier>) {
                return x.session_id == y.session_id && x.ip == y.ip && x.ip6 == y.ip6 && x.port == y.port &&
                       x.tier == y.tier;
            } else {
                return x.sessions == y.sessions && x.speakers == y.speakers && x.listeners == y.listeners;
            }
        },
        a);
}

TEST(JournalFormat, every_record_type_round_trips) {
    std::string all;
    for (const auto& row : round_trip_rows()) {
        SCOPED_TRACE(row.name);
        std::string one;
        jr::encode(row.rec, one);
        all += one;
        jr::reader rd(bytes_of(one));
        jr::record back;
        ASSERT_EQ(jr::reader::status::record, rd.next(back)) << rd.why();
        EXPECT_TRUE(same(row.rec, back));
        EXPECT_EQ(jr::reader::status::end, rd.next(back));
        EXPECT_EQ(one.size(), rd.good_bytes());
    }
    // And all of them in one stream, in order.
    jr::reader rd(bytes_of(all));
    jr::record back;
    for (const auto& row : round_trip_rows()) {
        ASSERT_EQ(jr::reader::status::record, rd.next(back)) << row.name << ": " << rd.why();
        EXPECT_TRUE(same(row.rec, back)) << row.name;
    }
    EXPECT_EQ(jr::reader::status::end, rd.next(back));
}

// A bulk join of both families is two records: the IPv4 items (7 bytes
// each) and then the IPv6 ones (19 bytes each), each family in its order.
TEST(JournalFormat, a_mixed_bulk_is_an_ipv4_record_and_an_ipv6_record) {
    const std::vector<listener_spec> items = {{0x0a000001, 1, 0},
                                              {0, 2, 1, false, v6("2001:db8::2")},
                                              {0x0a000003, 3, 2, true},
                                              {0, 4, 3, true, v6("2001:db8::4")}};
    std::string out;
    jr::encode(jr::rec_listener_add_bulk{5, items}, out);
    EXPECT_EQ(2 * jr::record_overhead + 16 + 2 * jr::bulk_item_bytes + 2 * jr::bulk6_item_bytes, out.size());
    jr::reader rd(bytes_of(out));
    jr::record a, b;
    ASSERT_EQ(jr::reader::status::record, rd.next(a)) << rd.why();
    ASSERT_EQ(jr::reader::status::record, rd.next(b)) << rd.why();
    EXPECT_EQ(jr::reader::status::end, rd.next(b));
    EXPECT_EQ((std::vector<listener_spec>{items[0], items[2]}), std::get<jr::rec_listener_add_bulk>(a).items);
    EXPECT_EQ((std::vector<listener_spec>{items[1], items[3]}), std::get<jr::rec_listener_add_bulk>(b).items);
    EXPECT_EQ(5u, std::get<jr::rec_listener_add_bulk>(b).session_id);
}

TEST(JournalFormat, the_hot_encoders_write_what_encode_writes) {
    std::vector<listener_spec> items = {{0x0a000001, 1, 0}, {0x0a000002, 2, 3}};
    std::string a, b, c, d;
    jr::encode_listener_add_bulk(5, items, a);
    jr::encode(jr::rec_listener_add_bulk{5, items}, b);
    EXPECT_EQ(a, b);
    jr::encode_listener_add(5, items[1], c);
    jr::encode(jr::rec_listener_add{5, items[1]}, d);
    EXPECT_EQ(c, d);
    EXPECT_EQ(jr::record_overhead + 8 + 2 * jr::bulk_item_bytes, a.size());
}

struct corrupt_row {
    std::string name;
    std::string bytes;
    jr::reader::status want;
    size_t good_records;     // read before the stop
    std::string why;         // substring of reader::why()
};

std::vector<corrupt_row> corrupt_rows() {
    std::string two;
    jr::encode(jr::rec_session_end{1}, two);
    jr::encode(jr::rec_listener_add{1, {0x0a000001, 5000, 0}}, two);
    std::string bulk;
    jr::encode(jr::rec_listener_add_bulk{1, {{0x0a000001, 5000, 0}, {0x0a000002, 5000, 1}}}, bulk);
    std::string flipped = two;
    flipped[two.size() - 6] ^= 0x01;                       // a payload bit of the second record
    std::string bad_crc = two;
    bad_crc[two.size() - 1] ^= 0x80;                       // its CRC
    auto le32 = [](uint32_t v) {
        std::string s;
        put32(s, v);
        return s;
    };
    return {
        {"empty", "", jr::reader::status::end, 0, ""},
        {"shorter_than_a_frame", two + std::string("\x05\x00\x00", 3), jr::reader::status::torn, 2, "shorter than a record frame"},
        {"torn_inside_payload", two + bulk.substr(0, bulk.size() - 3), jr::reader::status::torn, 2, "payload bytes left"},
        {"torn_after_length", two + bulk.substr(0, 9), jr::reader::status::torn, 2, "payload bytes left"},
        {"length_over_maximum", two + le32(jr::max_payload + 1) + std::string(8, '\0'), jr::reader::status::corrupt, 2,
         "exceeds the maximum"},
        {"payload_bit_flipped", flipped, jr::reader::status::corrupt, 1, "CRC mismatch"},
        {"crc_bit_flipped", bad_crc, jr::reader::status::corrupt, 1, "CRC mismatch"},
        {"zero_filled_tail", two + std::string(4096, '\0'), jr::reader::status::corrupt, 2, "CRC mismatch"},
        {"unknown_type", frame(0, "abcd"), jr::reader::status::corrupt, 0, "unknown record type 0"},
        {"unknown_type_high", frame(200, ""), jr::reader::status::corrupt, 0, "unknown record type 200"},
        {"session_end_short", frame(2, "abc"), jr::reader::status::corrupt, 0, "malformed session_end"},
        {"session_end_long", frame(2, "abcde"), jr::reader::status::corrupt, 0, "malformed session_end"},
        {"listener_add_short", frame(5, std::string(10, '\0')), jr::reader::status::corrupt, 0, "malformed listener_add"},
        {"bulk_count_lies", frame(7, le32(1) + le32(1000) + std::string(7, '\0')), jr::reader::status::corrupt, 0,
         "malformed listener_add_bulk"},
        {"bulk_count_huge", frame(7, le32(1) + le32(0xffffffffu)), jr::reader::status::corrupt, 0,
         "malformed listener_add_bulk"},
        {"removed_count_lies", frame(8, le32(2) + std::string(10, '\0')), jr::reader::status::corrupt, 0,
         "malformed listeners_removed"},
        {"speaker_flag_two", frame(3, le32(1) + le32(2) + std::string("\x01\x00", 2) + "\x02" + le32(0)),
         jr::reader::status::corrupt, 0, "malformed speaker_add"},
        {"speaker_no_ssrc_but_value", frame(3, le32(1) + le32(2) + std::string("\x01\x00", 2) + std::string(1, '\0') + le32(9)),
         jr::reader::status::corrupt, 0, "malformed speaker_add"},
        {"session_mode_unknown",
         frame(1, le32(1) + le32(40000) + le32(0) + le32(20) + le32(64) + "\x07" + std::string(3, '\0')),
         jr::reader::status::corrupt, 0, "malformed session_create"},
        {"session_recording_flag_two",
         frame(1, le32(1) + le32(40000) + le32(0) + le32(20) + le32(64) + std::string(1, '\0') + "\x02" +
                      std::string(2, '\0')),
         jr::reader::status::corrupt, 0, "malformed session_create"},
        {"session_name_past_payload",
         frame(1, le32(1) + le32(40000) + le32(0) + le32(20) + le32(64) + std::string(2, '\0') + "\x10\x00" + "ab"),
         jr::reader::status::corrupt, 0, "malformed session_create"},
        // Automatic ids start at 1 and there are 2^32 - 1 of them.
        {"session_ids_zero", frame(19, le32(0) + le32(0)), jr::reader::status::corrupt, 0, "malformed session_ids"},
        {"session_ids_past_2_32", frame(19, le32(1) + le32(1)), jr::reader::status::corrupt, 0, "malformed session_ids"},
        // listener_tier: session, IPv4 address, port, tier (11 bytes); the
        // tier byte's bit 7 is reserved (a move keeps "joined by token").
        {"listener_tier_short", frame(20, le32(1) + le32(2) + std::string("\x01\x00", 2)), jr::reader::status::corrupt, 0,
         "malformed listener_tier"},
        {"listener_tier_long", frame(20, le32(1) + le32(2) + std::string("\x01\x00\x01\x00", 4)),
         jr::reader::status::corrupt, 0, "malformed listener_tier"},
        {"listener_tier_bit_7", frame(20, le32(1) + le32(2) + std::string("\x01\x00\x81", 3)), jr::reader::status::corrupt,
         0, "malformed listener_tier"},
        {"listener_tier6_with_an_ipv4_address", frame(21, le32(1) + le32(2) + std::string("\x01\x00\x01", 3)),
         jr::reader::status::corrupt, 0, "malformed listener_tier6"},
    };
}

void PrintTo(const corrupt_row& row, std::ostream* os) { *os << row.name; }

class JournalCorrupt : public ::testing::TestWithParam<corrupt_row> {};

TEST_P(JournalCorrupt, reader_stops_at_the_first_bad_record) {
    const auto& row = GetParam();
    jr::reader rd(bytes_of(row.bytes));
    jr::record r;
    size_t n = 0, good = 0;
    jr::reader::status s;
    while ((s = rd.next(r)) == jr::reader::status::record) {
        ++n;
        good = rd.good_bytes();
    }
    EXPECT_EQ(row.want, s);
    EXPECT_EQ(row.good_records, n);
    EXPECT_EQ(good, rd.good_bytes());   // nothing of the bad record counts as read
    EXPECT_NE(std::string::npos, rd.why().find(row.why)) << rd.why();
    // Stopping is final: asking again gives the same answer.
    EXPECT_EQ(s, rd.next(r));
}

INSTANTIATE_TEST_SUITE_P(Journal, JournalCorrupt, ::testing::ValuesIn(corrupt_rows()),
                         [](const ::testing::TestParamInfo<corrupt_row>& info) { return info.param.name; });

TEST(JournalFormat, header_table) {
    std::string good;
    jr::encode_header(jr::file_kind::snapshot, 42, good);
    ASSERT_EQ(jr::header_size, good.size());
    std::string why;
    const auto h = jr::decode_header(bytes_of(good), why);
    ASSERT_TRUE(h.has_value()) << why;
    EXPECT_EQ(jr::file_kind::snapshot, h->kind);
    EXPECT_EQ(42u, h->epoch);

    auto with_crc = [](std::string s) {   // rewrite the CRC after a change
        s.resize(28);
        put32(s, jr::crc32c(reinterpret_cast<const uint8_t*>(s.data()), 28));
        return s;
    };
    std::string v2 = good, k3 = good, magic = good, flipped = good, reserved = good;
    v2[8] = 2;
    reserved[24] = 5;   // found by fuzz/fuzz_journal: accepted, not canonical
    k3[12] = 3;
    magic[0] = 'X';
    flipped[20] ^= 1;
    const struct {
        const char* name;
        std::string bytes;
        const char* why;
    } rows[] = {
        {"short", good.substr(0, 31), "shorter than its 32-byte header"},
        {"empty", "", "shorter than its 32-byte header"},
        {"bad_magic", with_crc(magic), "bad magic"},
        {"bit_flipped", flipped, "header CRC mismatch"},
        {"newer_version", with_crc(v2), "format version 2"},
        {"unknown_kind", with_crc(k3), "unknown file kind 3"},
        {"reserved_not_zero", with_crc(reserved), "reserved header word is 5"},
    };
    for (const auto& row : rows) {
        std::string w;
        EXPECT_FALSE(jr::decode_header(bytes_of(row.bytes), w).has_value()) << row.name;
        EXPECT_NE(std::string::npos, w.find(row.why)) << row.name << ": " << w;
    }
}

// ---------------------------------------------------------------------------
// relay_state with a journal, restored into a new relay_state

profile journal_profile() {
    profile p;
    port_config pc;
    pc.name = "lan0";
    pc.device = "net_null0";
    pc.ipv4 = 0xc6120001;   // 198.18.0.1/24
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    pc.line_rate_mbps = 100000;
    p.ports.push_back(pc);
    p.dataplane.fanout_lcores = {1};
    p.limits.max_neighbours = 256;
    p.limits.max_listeners = 200000;
    p.limits.max_listeners_per_session = 200000;
    p.limits.fanout_pps_per_core = 100000000;
    return p;
}

// A temporary directory, removed with everything in it.
struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "stentor-journal-XXXXXX").string();
        if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    // The journal's files, its lock file aside.
    std::vector<std::string> files() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(path))
            if (e.path().filename() != "lock") out.push_back(e.path().filename().string());
        std::sort(out.begin(), out.end());
        return out;
    }
};

// One relay_state with admission and (optionally) a journal, as stentord
// builds them: journal restored first, then attached.
struct node {
    profile prof;
    std::unique_ptr<dp::dp_neigh[]> neigh;
    std::vector<dp::dp_policer> policers;
    dp::dp_shared shared;
    std::unique_ptr<admission> adm;
    std::unique_ptr<journal> jr;
    std::unique_ptr<relay_state> st;
    restore_report rep;

    node(const profile& p, const std::string& dir, uint64_t compact_bytes = 64ull << 20) : prof(p) {
        neigh.reset(new dp::dp_neigh[prof.limits.max_neighbours]);
        shared.neigh = neigh.get();
        shared.nb_neigh = prof.limits.max_neighbours;
        policers.resize(prof.limits.max_speakers);
        shared.policers = policers.data();
        shared.nb_policers = prof.limits.max_speakers;
        st = std::make_unique<relay_state>(prof, shared, 2);
        adm = std::make_unique<admission>(admission_config_from(prof, {}));
        st->set_admission(adm.get());
        if (!dir.empty()) {
            journal_options o;
            o.dir = dir;
            o.compact_bytes = compact_bytes;
            jr = std::make_unique<journal>(o);
            rep = jr->restore(*st);
            st->set_journal(jr.get());
        }
    }
    ~node() {
        st->set_journal(nullptr);
        st->set_admission(nullptr);
    }
};

// Everything a restart must keep, in a stable order: sessions as created,
// speakers, and listeners in join order (what the API pages through).
std::string describe(relay_state& st) {
    std::ostringstream o;
    for (const auto& s : st.sessions()) {
        o << "session " << s.id << " '" << s.name << "' " << name_of(s.mode) << " port " << s.udp_port << " max "
          << s.max_listeners << " rec " << s.recording << " frame " << s.frame_ms << " kbps " << s.max_bitrate_kbps
          << " listeners " << s.nb_listeners << " tiers";
        for (auto t : s.listeners_per_tier) o << ' ' << t;
        o << '\n';
        for (const auto& sp : s.speakers)
            o << "  speaker " << format_peer(sp.ip, sp.ip6, sp.port) << " ssrc "
              << (sp.ssrc ? std::to_string(*sp.ssrc) : "-") << '\n';
        for (const auto& l : st.listeners(s.id, 0, ~size_t{0}))
            o << "  listener " << format_peer(l.ip, l.ip6, l.port) << " tier " << l.tier << '\n';
    }
    return o.str();
}

std::vector<listener_spec> block(uint32_t first_ip, size_t n, unsigned tier) {
    std::vector<listener_spec> v;
    for (size_t i = 0; i < n; ++i) v.push_back({first_ip + static_cast<uint32_t>(i / 16), 5000 + static_cast<unsigned>(i % 16), tier});
    return v;
}

// Every kind of action, in an order where ids and ports are reused.
void churn(relay_state& st) {
    session_params a;                                     // id 1, port 40000, name "session-1"
    st.session_create(a);
    session_params b;
    b.name = "big";
    b.max_listeners = 100000;
    b.frame_ms = 10;
    b.max_bitrate_kbps = 64;
    st.session_create(b);                                 // id 2, port 40001
    session_params c;
    c.id = 9;
    c.udp_port = 40500;
    c.mode = session_mode::mix;
    c.recording = true;
    st.session_create(c);
    st.speaker_add(1, 0xc612000a, 5004, 1234);
    st.speaker_add(1, 0xc612000b, 5004, 99);
    st.speaker_add(9, 0xc612000c, 6000, 7);
    st.speaker_del(1, 0xc612000a, 5004);
    st.listener_add(1, 0xc6120015, 5004, 0);              // on-link
    st.listener_add(1, 0xcb007105, 6000, 3);              // via the gateway
    st.listener_add_bulk(2, block(0x0a000001, 3000, 1));
    st.publish();
    st.listener_add_bulk(2, block(0x0b000001, 500, 2));
    st.listener_del(2, 0x0a000001, 5003);
    st.listener_del_bulk(2, {{0x0b000001, 5000}, {0x0a000002, 5001}, {0x0b000001, 5001}});   // one record
    st.listener_add(9, 0xc6120016, 5004, 2);
    session_params d;                                     // id 10, port 40002; ended, then its id is reused
    st.session_create(d);
    st.listener_add(10, 0xc6120017, 5004, 0);
    st.session_end(10);
    d.id = 10;                                            // by name: an automatic id is never given twice
    st.session_create(d);                                 // id 10 again
    st.listener_add(10, 0xc6120018, 5004, 1);
    // The overload controller's cut: newest tier-2 listeners, across sessions.
    EXPECT_EQ(5u, st.shed_newest(2, 5).size());
    st.publish();
}

// IPv6 speakers and listeners (issue 15) come back exactly, in join order
// with the IPv4 ones, from a snapshot (compaction) and from the journal
// after it; what was shed, left or removed in bulk stays gone.
TEST(JournalState, restart_restores_ipv6_speakers_and_listeners_in_join_order) {
    auto prof = journal_profile();
    prof.ports[0].ipv6 = v6("2001:db8:100::1");
    prof.ports[0].prefix6_len = 64;
    prof.ports[0].gateway6 = v6("2001:db8:100::fe");
    temp_dir d;
    std::string before;
    std::vector<shed_record> refs_before;
    {
        node n(prof, d.path);
        churn(*n.st);
        n.st->speaker_add(1, speaker_spec{0, 5004, 4321, v6("2001:db8:100::10")});
        n.st->speaker_add(1, speaker_spec{0, 5006, 5, v6("2001:db8:100::11")});
        n.st->speaker_del(1, listener_addr{0, 5006, v6("2001:db8:100::11")});
        n.st->listener_add(1, listener_spec{0, 6000, 1, false, v6("2001:db8:100::20")});   // on-link
        n.st->listener_add(1, listener_spec{0, 6001, 2, true, v6("2001:db8:999::1")});     // via gateway6, by token
        std::vector<listener_spec> mixed;
        for (unsigned i = 0; i < 40; ++i) {
            auto a = v6("2001:db8:200::");
            a[15] = static_cast<uint8_t>(i);
            mixed.push_back({0x0c000001 + i, 7000, i % 4});
            mixed.push_back({0, 7000 + i, i % 4, false, a});
        }
        n.st->listener_add_bulk(2, mixed);
        n.st->publish();
        n.jr->compact(n.st->image());
        n.jr->wait_compaction();
        ASSERT_EQ(1u, n.jr->stats().compactions);
        n.st->listener_del(1, listener_addr{0, 6000, v6("2001:db8:100::20")});
        n.st->listener_del_bulk(2, {{0, 7001, v6("2001:db8:200::1")}, {0x0c000002, 7000}});
        n.st->listener_add(9, listener_spec{0, 6002, 3, false, v6("2001:db8:100::21")});
        const auto shed = n.st->shed_newest(3, 2);
        ASSERT_EQ(2u, shed.size());
        EXPECT_TRUE(shed[0].ip6.has_value()) << "the newest tier-3 listener is the IPv6 one just added";
        n.st->publish();
        before = describe(*n.st);
        refs_before = n.st->listener_refs(false);
    }
    EXPECT_NE(std::string::npos, before.find("speaker [2001:db8:100::10]:5004 ssrc 4321"));
    EXPECT_NE(std::string::npos, before.find("listener [2001:db8:999::1]:6001 tier 2"));
    EXPECT_EQ(std::string::npos, before.find("[2001:db8:100::20]:6000")) << "left before the restart";
    node n(prof, d.path);
    EXPECT_EQ(0u, n.rep.records_skipped);
    EXPECT_EQ(before, describe(*n.st));
    const auto refs = n.st->listener_refs(true);
    ASSERT_EQ(1u, refs.size()) << "the IPv6 listener that joined by token is one again";
    ASSERT_TRUE(refs[0].ip6.has_value());
    EXPECT_EQ(v6("2001:db8:999::1"), *refs[0].ip6);
    EXPECT_EQ(refs_before.size(), n.st->listener_refs(false).size());
}

// A listener that joined by token comes back as one (under consent again,
// join_desk::adopt_existing), from the snapshot and from the journal alike.
TEST(JournalState, token_listeners_stay_token_listeners_across_a_snapshot_and_a_restart) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        churn(*n.st);
        n.st->listener_add(1, 0xc61200f1, 5004, 1, true);    // in the snapshot below
        n.st->publish();
        n.jr->compact(n.st->image());                         // what a publish past compact_bytes does
        n.jr->wait_compaction();
        ASSERT_EQ(1u, n.jr->stats().compactions);
        n.st->listener_add(1, 0xc61200f2, 5004, 0, true);    // in the journal after it
        n.st->publish();
    }
    node n(journal_profile(), d.path);
    auto t = n.st->listener_refs(true);
    std::sort(t.begin(), t.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
    ASSERT_EQ(2u, t.size()) << "restored token listeners (operator-registered ones must not count)";
    EXPECT_EQ(0xc61200f1u, t[0].ip);
    EXPECT_EQ(1u, t[0].tier);
    EXPECT_EQ(0xc61200f2u, t[1].ip);
}

// The records after `from` bytes of a journal file.
std::vector<jr::record> records_from(const fs::path& file, size_t from) {
    std::ifstream f(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    bytes.erase(0, from);
    std::vector<jr::record> out;
    jr::reader rd(bytes_of(bytes));
    jr::record r;
    while (rd.next(r) == jr::reader::status::record) out.push_back(r);
    return out;
}

// A listener's move to another tier (relay_state::listener_set_tier) is one
// listener_tier record, and a restart restores it from the journal and
// from a snapshot alike: the tier, "joined by token", and its place as the
// newest of its new tier (join order: shedding and paging). A move to its
// own tier writes nothing.
TEST(JournalState, a_listeners_move_to_another_tier_is_one_record_and_survives_a_compaction_and_a_restart) {
    auto prof = journal_profile();
    prof.ports[0].ipv6 = v6("2001:db8:100::1");
    prof.ports[0].prefix6_len = 64;
    prof.ports[0].gateway6 = v6("2001:db8:100::fe");
    const listener_addr a{0xc61200f1, 5004};
    const listener_addr b{0, 6001, v6("2001:db8:999::1")};
    temp_dir d;
    std::string before;
    std::vector<shed_record> tokens_before;
    {
        node n(prof, d.path);
        churn(*n.st);
        n.st->listener_add(1, listener_spec{a.ip, a.port, 0, true});
        n.st->listener_add(1, listener_spec{0, b.port, 3, false, b.ip6});
        n.st->listener_add(1, listener_spec{0xc61200f2, 5004, 2, true});
        n.st->publish();
        const auto size = fs::file_size(d.path / "journal.1");
        EXPECT_TRUE(n.st->listener_set_tier(1, a, 2));   // below 0xc61200f2 now: newest of tier 2
        EXPECT_FALSE(n.st->listener_set_tier(1, b, 3));  // its tier already
        n.st->publish();
        const auto recs = records_from(d.path / "journal.1", size);
        ASSERT_EQ(1u, recs.size()) << "one record, not a removal and an add";
        const auto& r = std::get<jr::rec_listener_tier>(recs[0]);
        EXPECT_EQ(1u, r.session_id);
        EXPECT_EQ(a.ip, r.ip);
        EXPECT_EQ(a.port, r.port);
        EXPECT_EQ(2u, r.tier);
        n.jr->compact(n.st->image());                    // the snapshot holds the first move
        n.jr->wait_compaction();
        ASSERT_EQ(1u, n.jr->stats().compactions);
        EXPECT_TRUE(n.st->listener_set_tier(1, b, 1));   // journal.2 holds the second
        n.st->publish();
        before = describe(*n.st);
        tokens_before = n.st->listener_refs(true);
    }
    EXPECT_NE(std::string::npos, before.find("listener 198.18.0.241:5004 tier 2"));
    EXPECT_NE(std::string::npos, before.find("listener [2001:db8:999::1]:6001 tier 1"));
    node n(prof, d.path);
    EXPECT_EQ(0u, n.rep.records_skipped);
    EXPECT_GE(n.rep.epoch, 2u) << "restored from the snapshot, then journal.2";
    EXPECT_EQ(before, describe(*n.st)) << "tiers and join order";
    const auto tokens = n.st->listener_refs(true);
    ASSERT_EQ(tokens_before.size(), tokens.size());
    bool found = false;
    for (const auto& t : tokens)
        if (t.ip == a.ip && t.port == a.port) {
            found = true;
            EXPECT_EQ(2u, t.tier) << "joined by token, at its new tier";
        }
    EXPECT_TRUE(found);
    // The newest of tier 2 (across sessions) is the one that moved there.
    const auto shed = n.st->shed_newest(2, 1);
    ASSERT_EQ(1u, shed.size());
    EXPECT_EQ(a.ip, shed[0].ip);
    const auto shed1 = n.st->shed_newest(1, 1);
    ASSERT_EQ(1u, shed1.size());
    EXPECT_EQ(b.ip6, shed1[0].ip6);
}

TEST(JournalState, restart_restores_sessions_speakers_and_listeners_exactly) {
    temp_dir d;
    std::string before;
    double used_pps = 0;
    {
        node n(journal_profile(), d.path);
        EXPECT_TRUE(n.rep.empty);
        churn(*n.st);
        before = describe(*n.st);
        used_pps = n.adm->used_pps();
    }
    node n(journal_profile(), d.path);
    EXPECT_FALSE(n.rep.empty);
    EXPECT_EQ(0u, n.rep.records_skipped);
    EXPECT_EQ(0u, n.rep.bytes_dropped);
    EXPECT_EQ(before, describe(*n.st));
    // Admission sees the restored listeners as it saw them before.
    EXPECT_DOUBLE_EQ(used_pps, n.adm->used_pps());
    // New ids continue after the restored ones.
    EXPECT_EQ(11u, n.st->session_create(session_params{}).id);
}

TEST(JournalState, restore_then_more_actions_then_restore_again) {
    temp_dir d;
    std::string before;
    {
        node n(journal_profile(), d.path);
        churn(*n.st);
    }
    {
        node n(journal_profile(), d.path);
        n.st->listener_add(1, 0xc6120030, 5004, 1);
        n.st->session_end(9);
        n.st->publish();
        before = describe(*n.st);
    }
    node n(journal_profile(), d.path);
    EXPECT_EQ(before, describe(*n.st));
    EXPECT_EQ(1u, n.rep.epoch);
}

TEST(JournalState, without_publish_nothing_is_written) {
    // Acknowledged = published: an action whose publish never ran was never
    // acknowledged and is not on disk.
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->publish();
        n.st->listener_add(1, 0xc6120015, 5004, 0);
    }
    node n(journal_profile(), d.path);
    ASSERT_EQ(1u, n.st->sessions().size());
    EXPECT_EQ(0u, n.st->sessions()[0].nb_listeners);
}

TEST(JournalState, empty_directory_restores_nothing_and_says_so) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        EXPECT_TRUE(n.rep.empty);
        EXPECT_TRUE(n.st->sessions().empty());
        EXPECT_EQ((std::vector<std::string>{"journal.1"}), d.files());
    }
    // A journal holding only its header (nothing was ever accepted) is empty too.
    node again(journal_profile(), d.path);
    EXPECT_TRUE(again.rep.empty);
}

TEST(JournalState, torn_tail_is_cut_and_counted) {
    temp_dir d;
    std::string before;
    {
        node n(journal_profile(), d.path);
        churn(*n.st);
        before = describe(*n.st);
    }
    const auto j = d.path / "journal.1";
    const auto good_size = fs::file_size(j);
    // A crash in the middle of the next group commit: half a bulk record.
    std::string next;
    jr::encode(jr::rec_listener_add_bulk{1, block(0x0c000001, 100, 0)}, next);
    {
        std::ofstream f(j, std::ios::binary | std::ios::app);
        f.write(next.data(), static_cast<std::streamsize>(next.size() / 2));
    }
    std::string after;
    {
        node n(journal_profile(), d.path);
        EXPECT_EQ(before, describe(*n.st));
        EXPECT_EQ(next.size() / 2, n.rep.bytes_dropped);
        EXPECT_EQ(good_size, fs::file_size(j));
        bool logged = false;
        for (const auto& l : n.rep.lines)
            logged |= l.find("journal.1: torn tail at byte " + std::to_string(good_size)) != std::string::npos &&
                      l.find(std::to_string(next.size() / 2) + " bytes dropped") != std::string::npos;
        EXPECT_TRUE(logged);
        // Appending goes on after the good part.
        n.st->listener_add(1, 0xc6120031, 5004, 0);
        n.st->publish();
        after = describe(*n.st);
    }
    node m(journal_profile(), d.path);
    EXPECT_EQ(after, describe(*m.st));
    EXPECT_EQ(0u, m.rep.bytes_dropped);
}

TEST(JournalState, corrupt_record_stops_the_replay_there) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->publish();
        n.st->listener_add(1, 0xc6120015, 5004, 0);
        n.st->publish();
        n.st->listener_add(1, 0xc6120016, 5004, 0);
        n.st->publish();
    }
    // Flip a bit inside the second listener_add (the last record).
    const auto j = d.path / "journal.1";
    const auto size = fs::file_size(j);
    {
        std::fstream f(j, std::ios::binary | std::ios::in | std::ios::out);
        f.seekg(static_cast<std::streamoff>(size - 8));
        char c;
        f.read(&c, 1);
        c ^= 0x10;
        f.seekp(static_cast<std::streamoff>(size - 8));
        f.write(&c, 1);
    }
    node n(journal_profile(), d.path);
    ASSERT_EQ(1u, n.st->sessions().size());
    EXPECT_EQ(1u, n.st->sessions()[0].nb_listeners);
    EXPECT_EQ(jr::record_overhead + 11, n.rep.bytes_dropped);
    bool logged = false;
    for (const auto& l : n.rep.lines) logged |= l.find("corrupt record") != std::string::npos;
    EXPECT_TRUE(logged);
}

TEST(JournalState, a_record_the_profile_no_longer_allows_is_skipped_with_its_reason) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        session_params a;
        a.udp_port = 40000;
        n.st->session_create(a);
        session_params b;
        b.udp_port = 40900;
        n.st->session_create(b);
        n.st->listener_add(1, 0xc6120015, 5004, 0);
        n.st->listener_add(2, 0xc6120016, 5004, 0);
        n.st->publish();
    }
    // The operator narrowed the speaker port range: session 2 cannot come back.
    auto p = journal_profile();
    p.ingress.udp_port_max = 40099;
    std::string restored;
    {
        node n(p, d.path);
        EXPECT_EQ(2u, n.rep.records_skipped);    // session 2 and its listener
        EXPECT_EQ(2u, n.rep.records_applied);
        ASSERT_EQ(1u, n.st->sessions().size());
        EXPECT_EQ(1u, n.st->sessions()[0].id);
        std::string lines;
        for (const auto& l : n.rep.lines) lines += l + "\n";
        EXPECT_NE(std::string::npos, lines.find("skipped session_create record (journal.1 byte")) << lines;
        EXPECT_NE(std::string::npos, lines.find("udp_port")) << lines;
        EXPECT_NE(std::string::npos, lines.find("skipped listener_add record")) << lines;
        EXPECT_NE(std::string::npos, lines.find("no session 2")) << lines;
        EXPECT_NE(std::string::npos, lines.find("wrote snapshot.2 of the restored state")) << lines;
        // The snapshot is the truth now: a new session 2 may take the id.
        EXPECT_EQ(2u, n.st->session_create(session_params{}).id);
        n.st->publish();
        restored = describe(*n.st);
    }
    EXPECT_EQ((std::vector<std::string>{"journal.2", "snapshot.2"}), d.files());
    node n(p, d.path);
    EXPECT_EQ(0u, n.rep.records_skipped);
    EXPECT_EQ(restored, describe(*n.st));
}

TEST(JournalState, compaction_writes_a_snapshot_and_a_new_journal) {
    temp_dir d;
    std::string before;
    {
        node n(journal_profile(), d.path, 16 * 1024);
        churn(*n.st);                              // > 16 kB of journal
        n.st->publish();                           // the first publish past the size compacts
        n.jr->wait_compaction();
        EXPECT_EQ((std::vector<std::string>{"journal.2", "snapshot.2"}), d.files());
        EXPECT_EQ(1u, n.jr->stats().compactions);
        // Later actions land in journal.2.
        n.st->listener_add(1, 0xc6120040, 5004, 2);
        n.st->listener_del(2, 0x0a000002, 5000);
        n.st->publish();
        before = describe(*n.st);
    }
    node n(journal_profile(), d.path, 16 * 1024);
    EXPECT_EQ(before, describe(*n.st));
    EXPECT_EQ(2u, n.rep.epoch);
    EXPECT_EQ(0u, n.rep.records_skipped);
}

std::vector<uint32_t> session_ids(relay_state& st) {
    std::vector<uint32_t> v;
    for (const auto& s : st.sessions()) v.push_back(s.id);
    return v;
}

// A join token names its session by id (docs/join.md), so an automatic id
// given again would let the unexpired tokens of an ended session join the
// session that took its id (a relay that runs one session at a time had
// id 1 every time). Automatic ids go upwards past every id given, ended
// ones included, across restarts (the journal's session_create records)
// and compactions (the snapshot's session_ids record).
TEST(JournalState, automatic_session_ids_are_never_given_twice_across_ends_restarts_and_compactions) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        EXPECT_EQ(1u, n.st->session_create({}).id);
        EXPECT_EQ(2u, n.st->session_create({}).id);
        n.st->session_end(2);
        n.st->session_end(1);
        EXPECT_EQ(3u, n.st->session_create({}).id) << "no session left: still above every id given";
        n.st->session_end(3);
        n.st->publish();
    }
    {
        node n(journal_profile(), d.path);   // from the journal: 1, 2, 3 were given
        EXPECT_TRUE(session_ids(*n.st).empty());
        EXPECT_EQ(4u, n.st->session_create({}).id);
        session_params p;
        p.id = 40;
        n.st->session_create(p);
        n.st->session_end(40);
        n.st->session_end(4);
        n.st->publish();
    }
    {
        // A compaction: the snapshot holds no session, yet 41 is next.
        node n(journal_profile(), d.path, 1);
        session_params p;
        p.id = 7;
        n.st->session_create(p);
        n.st->publish();                   // past 1 byte: compacts
        n.jr->wait_compaction();
        EXPECT_EQ(1u, n.jr->stats().compactions);
        n.st->session_end(7);
        n.st->publish();
        n.jr->wait_compaction();
    }
    node n(journal_profile(), d.path);
    EXPECT_GE(n.rep.epoch, 2u) << "restored from a snapshot";
    EXPECT_TRUE(session_ids(*n.st).empty());
    EXPECT_EQ(41u, n.st->session_create({}).id);
}

// The last id: an automatic create after it used to wrap to 0 (a session
// the API cannot name), and the next one reused 0 and freed the new session
// while the data plane's index still held it. Now the lowest id no live
// session holds, and never 0; with a journal, a restart knows it too.
TEST(JournalState, after_the_last_session_id_automatic_ids_take_the_lowest_free_one_never_zero) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        session_params top;
        top.id = 4294967295u;
        n.st->session_create(top);
        session_params two;
        two.id = 2;
        n.st->session_create(two);
        EXPECT_EQ(1u, n.st->session_create({}).id);
        EXPECT_EQ(3u, n.st->session_create({}).id);
        EXPECT_EQ(4u, n.st->session_create({}).id);
        n.st->session_end(3);
        EXPECT_EQ(3u, n.st->session_create({}).id) << "past the last id, ended ids come back (documented)";
        EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 4294967295u}), session_ids(*n.st));
        n.st->publish();
    }
    node n(journal_profile(), d.path);
    EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 4294967295u}), session_ids(*n.st));
    EXPECT_EQ(5u, n.st->session_create({}).id);
}

// SRTP egress reservations (docs/srtp.md "Egress reservations"): what the
// data plane claims in a session's egress table, done here by hand as an
// RX lcore does (dp::claim_egress_index on the published table).
struct egress_claimer {
    relay_state& st;
    dp::dp_shared& sh;
    srtp::tx_stream tx{};
    dp::lcore_counters c{};
    const dp::dp_session* session(uint32_t id) const {
        const dp::dp_snapshot* r = sh.snapshot.load();
        for (uint32_t i = 0; r != nullptr && i < r->nb_sessions; ++i)
            if (r->sessions[i]->id == id && r->sessions[i]->srtp_streams != nullptr) return r->sessions[i];
        return nullptr;
    }
    // The index the packet with the speaker's index `in` is protected at, or
    // dp::no_egress_index (counted in c).
    uint64_t claim(uint32_t id, uint64_t in, bool restart = false) {
        const dp::dp_session* s = session(id);
        EXPECT_NE(s, nullptr) << "session " << id << " has no egress table";
        return s != nullptr ? dp::claim_egress_index(*s, tx, in, ssrc_be, restart, &c) : dp::no_egress_index;
    }
    uint64_t unreserved() const { return c.drop(dp::drop_reason::srtp_egress_unreserved); }
    // What the control plane's loop does: reserve, write, raise the limits.
    void reserve() {
        EXPECT_TRUE(st.srtp_reserve());
        st.publish();
    }
    static constexpr uint32_t ssrc_be = 0xd2040000;   // SSRC 1234 as the wire has it
};

session_params encrypted_session(uint32_t id) {
    session_params p;
    p.id = id;
    p.udp_port = 40000 + id;
    p.srtp_egress = srtp_egress_mode::session_key;
    return p;
}

const srtp_stream_view* stream_of(relay_state& st, uint32_t id) {
    static std::vector<session_view> keep;
    keep = st.sessions();
    for (const auto& v : keep)
        if (v.id == id) return v.srtp_streams.empty() ? nullptr : &v.srtp_streams.front();
    return nullptr;
}

// SRTP ingress marks: the speaker 198.18.0.10:`sport` (SSRC 1234) of
// session `id`, and its key as the API takes it (30 bytes from `seed`).
void set_speaker_key(relay_state& st, uint32_t id, unsigned sport, uint8_t seed) {
    srtp_key_spec k;
    k.id = "a";
    k.master = secure_bytes(30);
    for (size_t i = 0; i < 30; ++i) k.master.data()[i] = static_cast<uint8_t>(seed + i * 7);
    st.srtp_key_add({id, std::make_pair(0xc612000au, sport)}, std::move(k));
}
// A session that requires SRTP of its speakers (udp_port 0: the next free
// one), with that speaker and its key.
void srtp_speaker_session(relay_state& st, uint32_t id, unsigned udp_port, unsigned sport, uint8_t seed) {
    session_params p;
    p.id = id;
    p.udp_port = udp_port;
    p.srtp_ingress = srtp_ingress_mode::required;
    st.session_create(p);
    st.speaker_add(id, 0xc612000a, sport, 1234);
    set_speaker_key(st, id, sport, seed);
}

// dp_flow::srtp_line, flow_stage's hint to prefetch the policer entry's
// SRTP line (dp_policer): set for a speaker whose packets use it (it
// authenticates, or its session protects towards listeners), clear for a
// plain one, whose packets then touch two lines of the entry, not three.
TEST(JournalState, a_speaker_flow_is_marked_for_the_srtp_line_only_when_its_packets_use_it) {
    node n(journal_profile(), "");
    struct row {
        const char* name;
        std::optional<srtp_ingress_mode> in;
        std::optional<srtp_egress_mode> out;
        uint8_t srtp_in;
        uint8_t srtp_line;
    };
    const row rows[] = {
        {"plain", srtp_ingress_mode::off, srtp_egress_mode::off, 0, 0},
        {"ingress_required", srtp_ingress_mode::required, srtp_egress_mode::off, 1, 1},
        {"egress_session_key", srtp_ingress_mode::off, srtp_egress_mode::session_key, 0, 1},
        {"both", srtp_ingress_mode::required, srtp_egress_mode::session_key, 1, 1},
    };
    for (uint32_t i = 0; i < std::size(rows); ++i) {
        session_params p;
        p.id = i + 1;
        p.udp_port = 40001 + i;
        p.srtp_ingress = rows[i].in;
        p.srtp_egress = rows[i].out;
        n.st->session_create(p);
        n.st->speaker_add(i + 1, 0xc612000a, 5004, 1234);
    }
    n.st->publish();
    const dp::dp_snapshot* s = n.shared.snapshot.load();
    ASSERT_NE(s, nullptr);
    for (uint32_t i = 0; i < std::size(rows); ++i) {
        const dp::dp_flow* f = dp::find_flow(
            *s, dp::flow_key(__builtin_bswap32(0xc612000au), __builtin_bswap16(5004), __builtin_bswap16(static_cast<uint16_t>(40001 + i))));
        ASSERT_NE(f, nullptr) << rows[i].name;
        EXPECT_EQ(rows[i].srtp_in, f->srtp_in) << rows[i].name;
        EXPECT_EQ(rows[i].srtp_line, f->srtp_line) << rows[i].name;
    }
}

// No egress index is used before the journal holds a reservation above it,
// so a relay that restarts (crash: no clean stop) resumes each SSRC above
// everything the last run could have protected, even when its speaker
// starts again from the same numbers with the same session key; the same
// for a session ended and created again under its id after the restart, and
// across a compaction (the snapshot carries the reservations).
TEST(JournalState, srtp_egress_indices_are_reserved_in_the_journal_before_use_and_never_reused_after_a_restart) {
    temp_dir d;
    std::set<uint64_t> used;
    const uint64_t block = relay_state::srtp_reserve_block;
    auto use = [&](egress_claimer& c, uint32_t id, uint64_t first, unsigned n) {
        for (unsigned k = 0; k < n; ++k) {
            const uint64_t idx = c.claim(id, first + k, k == 0);
            ASSERT_NE(idx, dp::no_egress_index) << k;
            EXPECT_TRUE(used.insert(id * (uint64_t{1} << 48) + idx).second) << "session " << id << " index " << idx << " used twice";
        }
    };
    {
        node n(journal_profile(), d.path, 4096);     // compacts early: the snapshot must carry reservations
        n.st->session_create(encrypted_session(1));
        n.st->session_create(encrypted_session(2));
        n.st->publish();
        egress_claimer c{*n.st, n.shared};
        EXPECT_FALSE(n.st->srtp_reserve()) << "no SSRC has asked yet";
        EXPECT_EQ(c.claim(1, 1000, true), dp::no_egress_index) << "nothing reserved: not sent";
        EXPECT_EQ(c.unreserved(), 1u);
        ASSERT_NE(stream_of(*n.st, 1), nullptr);
        EXPECT_EQ(stream_of(*n.st, 1)->reserved, 0u);
        c.reserve();
        EXPECT_EQ(stream_of(*n.st, 1)->reserved, 1000 + block);
        use(c, 1, 1000, 3000);                        // past half the block: reserve again
        c.reserve();
        EXPECT_EQ(stream_of(*n.st, 1)->reserved, 1000 + 2 * block) << "the next block, from the last limit";
        EXPECT_FALSE(n.st->srtp_reserve()) << "enough reserved";
        EXPECT_EQ(stream_of(*n.st, 1)->next_index, 4000u);
        // Session 2: used, then ended (its marks kept), all before the restart.
        c.tx = {};
        EXPECT_EQ(c.claim(2, 70000, true), dp::no_egress_index);
        c.reserve();
        use(c, 2, 70000, 10);
        n.st->session_end(2);
        n.st->publish();
        for (int i = 0; i < 200; ++i) n.st->listener_add(1, 0xc6120100 + i, 5004, 0);   // journal bytes: compaction
        n.st->publish();
        n.st->publish();                              // the first publish past the size compacts
        n.jr->wait_compaction();
        EXPECT_GE(n.jr->stats().compactions, 1u);
    }   // a crash: no clean stop, nothing written after the last publish
    {
        node n(journal_profile(), d.path, 4096);
        EXPECT_EQ(0u, n.rep.records_skipped);
        n.st->publish();
        egress_claimer c{*n.st, n.shared};
        // The speaker starts again at 1000 (its numbers, ROC 0, as a relay
        // that lost its ingress state estimates them): nothing sent before
        // a reservation, then above the last run's.
        EXPECT_EQ(c.claim(1, 1000, true), dp::no_egress_index);
        c.reserve();
        const uint64_t first = c.claim(1, 1001);
        EXPECT_GE(first, 1000 + 2 * block) << "above everything the last run reserved";
        EXPECT_LT(first - 4000, uint64_t{32768}) << "a listener still estimates the ROC across the jump";
        used.insert(uint64_t{1} << 48 | first);
        use(c, 1, 1002, 100);
        // Session 2, ended before the restart, created again: above its marks.
        n.st->session_create(encrypted_session(2));
        n.st->publish();
        c.tx = {};
        EXPECT_EQ(c.claim(2, 70000, true), dp::no_egress_index);
        c.reserve();
        const uint64_t again = c.claim(2, 70000, true);
        EXPECT_GE(again, 70000 + block);
        used.insert(uint64_t{2} << 48 | again);
    }
}

// A reservation whose record rides the very write that ends a journal
// epoch (the publish that compacts): the old journal goes once the snapshot
// is written, so the snapshot must carry it, or a crash after the slot used
// its indices would restore the limit before it.
TEST(JournalState, a_reservation_written_by_the_publish_that_compacts_survives_in_the_snapshot) {
    temp_dir d;
    uint64_t limit = 0;
    {
        node n(journal_profile(), d.path, 4096);
        n.st->session_create(encrypted_session(1));
        n.st->publish();
        egress_claimer c{*n.st, n.shared};
        EXPECT_EQ(c.claim(1, 1000, true), dp::no_egress_index);
        c.reserve();
        for (int i = 0; i < 200; ++i) n.st->listener_add(1, 0xc6120100 + i, 5004, 0);   // past compact_bytes
        n.st->publish();                              // written; the next publish compacts
        for (uint64_t k = 0; k < 3000; ++k) ASSERT_NE(c.claim(1, 1000 + k), dp::no_egress_index) << k;
        EXPECT_TRUE(n.st->srtp_reserve());            // under half a block left
        const uint64_t before = n.jr->stats().compactions;
        n.st->publish();                              // the reservation's record and the compaction, together
        n.jr->wait_compaction();
        EXPECT_EQ(n.jr->stats().compactions, before + 1);
        limit = stream_of(*n.st, 1)->reserved;
        EXPECT_EQ(limit, 1000 + 2 * relay_state::srtp_reserve_block);
        for (uint64_t k = 3000; k < 5000; ++k) ASSERT_NE(c.claim(1, 1000 + k), dp::no_egress_index) << k;
    }   // a crash after using indices only the new reservation allowed
    node n(journal_profile(), d.path, 4096);
    n.st->publish();
    ASSERT_NE(stream_of(*n.st, 1), nullptr);
    EXPECT_GE(stream_of(*n.st, 1)->next_index, limit) << "restored above the reservation the snapshot carried";
}

// SRTP ingress marks (docs/srtp.md "Ingress marks") through a compaction
// and a crash: the speaker's keyset, once its key is set again after the
// restart, carries the mark of its SSRC (what the RX lcores start its fresh
// stream from); a speaker whose stream did not move writes no new record.
TEST(JournalState, an_srtp_speakers_ingress_mark_survives_a_compaction_and_a_restart) {
    temp_dir d;
    const uint32_t ssrc_be = __builtin_bswap32(1234);
    auto slot_of = [](relay_state& st) {
        for (const auto& v : st.sessions())
            if (v.id == 1 && !v.speakers.empty()) return v.speakers.front().slot;
        ADD_FAILURE() << "no speaker";
        return 0u;
    };
    {
        node n(journal_profile(), d.path, 4096);
        srtp_speaker_session(*n.st, 1, 0, 5004, 1);
        n.st->publish();
        EXPECT_FALSE(n.st->srtp_mark_ingress()) << "no packet yet";
        // What the RX lcore of queue 0 holds after 70 000 packets.
        dp::policer_of(n.shared, 0, slot_of(*n.st)).srtp_rx = {70000, 1, ssrc_be, 1};
        EXPECT_TRUE(n.st->srtp_mark_ingress());
        n.st->publish();
        dp::policer_of(n.shared, 0, slot_of(*n.st)).srtp_rx.top = 70100;
        EXPECT_FALSE(n.st->srtp_mark_ingress()) << "under a step (256) further: no record";
        for (int i = 0; i < 200; ++i) n.st->listener_add(1, 0xc6120100 + i, 5004, 0);   // past compact_bytes
        n.st->publish();
        n.st->publish();
        n.jr->wait_compaction();
        EXPECT_GE(n.jr->stats().compactions, 1u);
    }
    node n(journal_profile(), d.path, 4096);
    EXPECT_EQ(0u, n.rep.records_skipped);
    set_speaker_key(*n.st, 1, 5004, 1);            // the application sets it again
    n.st->publish();
    const dp::dp_snapshot* snap = n.shared.snapshot.load();
    const uint32_t slot = slot_of(*n.st);
    ASSERT_NE(snap, nullptr);
    ASSERT_LT(slot, snap->nb_speaker_keys);
    ASSERT_NE(snap->speaker_keys[slot], nullptr);
    EXPECT_EQ(snap->speaker_keys[slot]->floor, 70000u);
    EXPECT_EQ(snap->speaker_keys[slot]->floor_ssrc_be, ssrc_be);
}

// A session's ingress marks go when it ends, whatever its id (the last id,
// 0xffffffff, once made the erase's range run backwards), and only its own:
// the snapshot after the end holds the other session's mark alone.
TEST(JournalState, a_sessions_ingress_marks_go_at_its_end_even_for_the_last_id) {
    temp_dir d;
    node n(journal_profile(), d.path);
    srtp_speaker_session(*n.st, 0xffffffff, 40008, 5006, 2);
    srtp_speaker_session(*n.st, 7, 40007, 5004, 2);
    n.st->publish();
    for (const auto& v : n.st->sessions())
        dp::policer_of(n.shared, 0, v.speakers.front().slot).srtp_rx = {70000, 1, __builtin_bswap32(1234), 1};
    EXPECT_TRUE(n.st->srtp_mark_ingress());
    n.st->publish();
    EXPECT_EQ(n.st->image().ingress_marks.size(), 2u);
    n.st->session_end(0xffffffff);
    n.st->publish();
    const auto img = n.st->image();
    ASSERT_EQ(img.ingress_marks.size(), 1u);
    EXPECT_EQ(img.ingress_marks[0].session_id, 7u);
    // Created again under the id with the same speaker and key: no mark
    // of the ended session's stream (a new session's speaker starts fresh).
    srtp_speaker_session(*n.st, 0xffffffff, 40008, 5006, 2);
    n.st->publish();
    const dp::dp_snapshot* snap = n.shared.snapshot.load();
    for (const auto& v : n.st->sessions()) {
        const uint32_t slot = v.speakers.front().slot;
        ASSERT_NE(snap->speaker_keys[slot], nullptr);
        EXPECT_EQ(snap->speaker_keys[slot]->floor, v.id == 7 ? 70000u : 0u) << v.id;
    }
}

TEST(JournalState, snapshot_keeps_join_order_across_sessions_for_shedding) {
    temp_dir d;
    std::vector<shed_record> want;
    {
        node n(journal_profile(), d.path, 1024);
        n.st->session_create(session_params{});
        n.st->session_create(session_params{});
        // Interleaved joins: 1, 2, 1, 2, ...
        for (uint32_t i = 0; i < 200; ++i) n.st->listener_add(1 + i % 2, 0x0a000001 + i, 5000, 3);
        n.st->publish();
        n.st->publish();
        n.jr->wait_compaction();
        ASSERT_EQ(1u, n.jr->stats().compactions);
    }
    {
        node n(journal_profile(), "");
        n.st->session_create(session_params{});
        n.st->session_create(session_params{});
        for (uint32_t i = 0; i < 200; ++i) n.st->listener_add(1 + i % 2, 0x0a000001 + i, 5000, 3);
        want = n.st->shed_newest(3, 7);
    }
    node n(journal_profile(), d.path, 1024);
    const auto got = n.st->shed_newest(3, 7);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(want[i].session_id, got[i].session_id);
        EXPECT_EQ(want[i].ip, got[i].ip);
    }
}

TEST(JournalState, crash_during_compaction_leaves_a_chain_that_restores) {
    temp_dir d;
    std::string before;
    {
        node n(journal_profile(), d.path);
        churn(*n.st);
        before = describe(*n.st);
    }
    // journal.2 started, snapshot.2 never finished: its .tmp is left over.
    {
        std::string h;
        jr::encode_header(jr::file_kind::journal, 2, h);
        jr::encode(jr::rec_listener_add{1, {0xc6120050, 5004, 1}}, h);
        std::ofstream(d.path / "journal.2", std::ios::binary) << h;
        std::ofstream(d.path / "snapshot.2.tmp", std::ios::binary) << "half a snapshot";
    }
    {
        node n(journal_profile(), d.path);
        EXPECT_EQ(0u, n.rep.records_skipped);
        n.st->listener_del(1, 0xc6120050, 5004);
        n.st->publish();
        EXPECT_EQ(before, describe(*n.st));
        EXPECT_EQ(2u, n.rep.epoch);
    }
    EXPECT_EQ((std::vector<std::string>{"journal.1", "journal.2"}), d.files());
    // A snapshot that did land, with journal.1 not yet removed: journal.1 is
    // stale (the snapshot holds it) and must not be applied again.
    {
        node n(journal_profile(), d.path, 1);   // compacts at the first publish
        n.st->publish();
        n.st->session_create(session_params{});   // something for journal.3
        n.st->publish();
        n.jr->wait_compaction();
        before = describe(*n.st);
    }
    std::string old;
    jr::encode_header(jr::file_kind::journal, 1, old);
    jr::encode(jr::rec_session_create{params(77, "stale", 40077)}, old);
    std::ofstream(d.path / "journal.1", std::ios::binary) << old;
    node n(journal_profile(), d.path);
    EXPECT_EQ(before, describe(*n.st));
    EXPECT_FALSE(fs::exists(d.path / "journal.1"));
}

TEST(JournalState, unusable_snapshot_is_set_aside_and_the_older_chain_is_used) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->publish();
    }
    // A snapshot.2 with a bad record and nothing before it: no usable
    // snapshot, and journal.1 is still there.
    std::string s;
    jr::encode_header(jr::file_kind::snapshot, 2, s);
    s += "garbage, not a record";
    std::ofstream(d.path / "snapshot.2", std::ios::binary) << s;
    node n(journal_profile(), d.path);
    ASSERT_EQ(1u, n.st->sessions().size());
    std::string lines;
    for (const auto& l : n.rep.lines) lines += l + "\n";
    EXPECT_NE(std::string::npos, lines.find("snapshot.2 unusable")) << lines;
    EXPECT_TRUE(fs::exists(d.path / "snapshot.2.bad"));
}

TEST(JournalState, replay_takes_no_join_tokens) {
    // 3000 listeners joined over 3 s at 1000/s must come back at once, and
    // leave the bucket full for the joins after the restart.
    temp_dir d;
    auto p = journal_profile();
    p.limits.join_rate_per_s = 1000;
    p.limits.session_join_rate_per_s = 1000;
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->listener_add_bulk(1, block(0x0a000001, 3000, 1));
        n.st->publish();
    }
    node n(p, d.path);
    EXPECT_EQ(0u, n.rep.records_skipped);
    EXPECT_EQ(3000u, n.st->nb_listeners());
    EXPECT_NO_THROW(n.st->listener_add_bulk(1, block(0x0b000001, 1000, 1)));
}

TEST(JournalState, restored_listeners_count_against_capacity) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->listener_add_bulk(1, block(0x0a000001, 1000, 1));
        n.st->publish();
    }
    // The same relay with a port 100 times slower: the bulk record no longer
    // fits and is skipped whole (all or nothing, like the action).
    auto p = journal_profile();
    p.ports[0].line_rate_mbps = 1;
    node n(p, d.path);
    EXPECT_EQ(1u, n.rep.records_skipped);
    EXPECT_EQ(0u, n.st->nb_listeners());
    std::string lines;
    for (const auto& l : n.rep.lines) lines += l + "\n";
    EXPECT_NE(std::string::npos, lines.find("skipped listener_add_bulk record")) << lines;
    EXPECT_NE(std::string::npos, lines.find("is full")) << lines;
}

TEST(JournalState, a_write_that_fails_is_not_acknowledged_and_later_actions_are_refused) {
    // A real write error: the file size limit (EFBIG) instead of a full disk.
    temp_dir d;
    std::string before;
    struct rlimit old {};
    ASSERT_EQ(0, ::getrlimit(RLIMIT_FSIZE, &old));
    auto prev = std::signal(SIGXFSZ, SIG_IGN);
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->publish();
        const auto size = fs::file_size(d.path / "journal.1");
        struct rlimit lim = old;
        lim.rlim_cur = size + 100;
        ASSERT_EQ(0, ::setrlimit(RLIMIT_FSIZE, &lim));
        n.st->listener_add_bulk(1, block(0x0a000001, 100, 1));   // 700+ bytes: does not fit
        const uint64_t mark = n.st->change_mark();
        n.st->publish();
        EXPECT_FALSE(n.st->wait_published(mark, std::chrono::milliseconds(0)));
        EXPECT_TRUE(n.st->has_pending());                        // the records wait for a retry
        EXPECT_EQ(size, fs::file_size(d.path / "journal.1"));    // the partial write was cut off
        EXPECT_EQ(1u, n.jr->stats().write_errors);
        try {
            n.st->listener_add(1, 0x0b000001, 5000, 1);
            ADD_FAILURE() << "accepted while the journal cannot write";
        } catch (const action_error& e) {
            EXPECT_EQ(error_code::capacity, e.code);
            EXPECT_NE(std::string::npos, std::string(e.what()).find("File too large")) << e.what();
        }
        EXPECT_EQ(100u, n.st->nb_listeners());                    // the refusal changed nothing
        // Space again: the next publish (after the 100 ms back-off) writes it all.
        ASSERT_EQ(0, ::setrlimit(RLIMIT_FSIZE, &old));
        std::this_thread::sleep_for(std::chrono::milliseconds(120));
        n.st->publish();
        EXPECT_TRUE(n.st->wait_published(mark, std::chrono::milliseconds(0)));
        EXPECT_FALSE(n.st->has_pending());
        n.st->listener_add(1, 0x0b000001, 5000, 1);
        n.st->publish();
        before = describe(*n.st);
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, prev);
    node n(journal_profile(), d.path);
    EXPECT_EQ(before, describe(*n.st));
    EXPECT_EQ(101u, n.st->nb_listeners());
}

// One journal directory, one relay. Before, nothing refused a second
// stentord on a [journal] dir in use (a copied profile, a second relay on
// the same host): it restored the first one's sessions and listeners and
// streamed to them too, and both wrote their records at their own offsets
// of the same journal.N, over each other's (reproduced: the second one's
// acknowledged listener was gone after the restart, overwritten by the
// first one's next record); `stentord --fresh` beside a running relay
// removed its journal.
// Now the directory is locked (flock on <dir>/lock) while a journal runs on
// it; the lock dies with its holder, so a crash leaves no stale lock.
TEST(JournalState, a_journal_directory_in_use_is_refused_and_changes_nothing) {
    temp_dir d;
    auto first = std::make_unique<node>(journal_profile(), d.path);
    first->st->session_create(session_params{});
    first->st->listener_add(1, 0xc6120015, 5004, 0);
    first->st->publish();
    const std::string before = describe(*first->st);
    const auto files_before = d.files();
    const auto journal_bytes = fs::file_size(d.path / "journal.1");

    struct row {
        const char* what;
        std::function<void()> act;
    };
    const std::string dir = d.path.string();
    const std::vector<row> rows = {
        {"a second journal (another stentord) on the directory", [&] {
             journal_options o;
             o.dir = dir;
             journal second(o);
         }},
        {"stentord --fresh beside the running relay", [&] { journal::discard(dir); }},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        try {
            r.act();
            ADD_FAILURE() << "not refused";
        } catch (const std::runtime_error& e) {
            const std::string w = e.what();
            EXPECT_NE(w.find(dir + " is in use by another stentord (pid " + std::to_string(::getpid()) + ")"),
                      std::string::npos)
                << w;
        }
        EXPECT_EQ(files_before, d.files());
        EXPECT_EQ(journal_bytes, fs::file_size(d.path / "journal.1"));
    }
    // The first goes on writing, alone.
    first->st->listener_add(1, 0xc6120016, 5004, 0);
    first->st->publish();
    const std::string after = describe(*first->st);
    EXPECT_NE(before, after);
    first.reset();
    // Another process holds it, then is killed (SIGKILL: no destructor
    // runs): refused while it lives, naming its pid; free once it is gone.
    int pipe_fd[2];
    ASSERT_EQ(0, ::pipe(pipe_fd));
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        try {
            journal_options o;
            o.dir = dir;
            journal held(o);
            (void)!::write(pipe_fd[1], "k", 1);
            for (;;) ::pause();
        } catch (...) {
            ::_exit(1);
        }
    }
    char c = 0;
    ASSERT_EQ(1, ::read(pipe_fd[0], &c, 1));
    ::close(pipe_fd[0]);
    ::close(pipe_fd[1]);
    try {
        journal_options o;
        o.dir = dir;
        journal second(o);
        ADD_FAILURE() << "a directory another process holds was not refused";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("(pid " + std::to_string(child) + ")"), std::string::npos) << e.what();
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(child, ::waitpid(child, &status, 0));
    // The locks went with their holders: the next one restores everything
    // the first acknowledged.
    node next(journal_profile(), d.path);
    EXPECT_FALSE(next.rep.empty);
    EXPECT_EQ(0u, next.rep.bytes_dropped);
    EXPECT_EQ(after, describe(*next.st));
}

TEST(JournalState, discard_removes_only_journal_files) {
    temp_dir d;
    {
        node n(journal_profile(), d.path);
        n.st->session_create(session_params{});
        n.st->publish();
    }
    std::ofstream(d.path / "notes.txt") << "operator's";
    std::ofstream(d.path / "snapshot.3.tmp") << "x";
    uint64_t bytes = 0;
    EXPECT_EQ(2u, journal::discard(d.path.string(), &bytes));
    EXPECT_GT(bytes, jr::header_size);
    EXPECT_EQ((std::vector<std::string>{"notes.txt"}), d.files());
    node n(journal_profile(), d.path);
    EXPECT_TRUE(n.rep.empty);
}

}  // namespace
