// Config profile loader. A profile is what a network engineer edits at 3 a.m.;
// every refusal therefore names file:line:column and the dotted setting, so the
// fix never needs a look at this code. Validation happens here, once, so the
// drivers and the data plane can trust every value they are handed; the rules
// for sessions, speakers and listeners (check_session & co.) are also the
// ones the API's actions apply.
#include "config.h"

// RTE_MAX_LCORE: an lcore id EAL cannot map must be refused here, not by a
// confusing EAL failure at start-up.
#include <rte_config.h>
// RTE_MBUF_DEFAULT_DATAROOM: what one mbuf of the relay's pools holds
// (drivers::make_pool creates them with RTE_MBUF_DEFAULT_BUF_SIZE).
#include <rte_mbuf_core.h>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "stentor/display_text.h"
#include "stentor/dp_counters.h"
#include "stentor/dp_snapshot.h"
#include "tls_files.h"
#include "trunk_key.h"

namespace stentor::control {
namespace {

constexpr unsigned max_ports = 4;               // fan-out shards index ports in a small fixed array
constexpr unsigned max_queues = 64;
constexpr unsigned min_desc = 64;
constexpr unsigned max_desc = 16384;            // largest ring the supported PMDs accept
constexpr unsigned min_mtu = 68;                // RFC 791 minimum
constexpr unsigned max_mtu = 9600;              // common jumbo limit across NICs
// A NIC may place up to MTU + Ethernet header + FCS + two VLAN tags in a
// receive buffer (the overhead DPDK's Intel PMDs use for max_rx_pkt_len).
// Every frame must fit one mbuf: the data plane parses one segment and drops
// chains (ingress/multi_segment), so an MTU the mbuf cannot hold would drop
// every large frame.
constexpr unsigned mtu_frame_overhead = 14 + 4 + 2 * 4;
constexpr unsigned mbuf_frame_room = RTE_MBUF_DEFAULT_DATAROOM;
constexpr unsigned max_line_rate_mbps = 800000;
// Sessions: Opus frame durations (RFC 6716) and bitrates (6..510 kbit/s).
constexpr std::array<unsigned, 6> opus_frame_ms = {5, 10, 20, 40, 60, 120};
constexpr unsigned min_opus_kbps = 6;
constexpr unsigned max_opus_kbps = 510;
constexpr size_t min_token_len = 16;            // a shorter bearer token is guessable
constexpr int64_t u32_max = std::numeric_limits<uint32_t>::max();
// Ceilings of the tables sized from [limits] and allocated whole at start
// (read_limits): about 1 GiB of neighbour records at most, and sessions and
// speakers far beyond one relay's 1.6 M listeners' worth of audio.
constexpr int64_t max_table_sessions = int64_t{1} << 20;
constexpr int64_t max_table_speakers = int64_t{1} << 20;
constexpr int64_t max_table_neighbours = dp::max_neigh_entries;   // an IPv4 listener record holds a 16-bit index
// eal.memory_mb: 1 TiB, above what a relay server has (the shipped profiles
// ask 256..8192 MB).
constexpr int64_t max_memory_mb = int64_t{1} << 20;

// ---------------------------------------------------------------------------
// Error reporting

class context {
public:
    explicit context(std::string file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const toml::source_region& where, std::string_view setting,
                           std::string_view what) const {
        // Nodes toml++ did not read from text have line 0; clamp so the
        // message keeps the file:line:col shape tools and tests rely on.
        const auto line = std::max<uint32_t>(where.begin.line, 1);
        const auto col = std::max<uint32_t>(where.begin.column, 1);
        throw config_error(fmt::format("{}:{}:{}: {}: {}", file_, line, col, setting, what));
    }

    [[noreturn]] void fail(const toml::node& where, std::string_view setting,
                           std::string_view what) const {
        fail(where.source(), setting, what);
    }

private:
    std::string file_;
};

std::string join(std::string_view parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    return fmt::format("{}.{}", parent, key);
}

std::string index(std::string_view parent, size_t i) { return fmt::format("{}[{}]", parent, i); }

const char* type_name(toml::node_type t) {
    switch (t) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

[[noreturn]] void wrong_type(const context& c, const toml::node& n, std::string_view path,
                             std::string_view expected) {
    c.fail(n, path, fmt::format("expected {}, found {}", expected, type_name(n.type())));
}

int64_t read_int(const context& c, const toml::node& n, std::string_view path, int64_t min,
                 int64_t max) {
    const auto* v = n.as_integer();
    if (v == nullptr) wrong_type(c, n, path, "an integer");
    const int64_t x = v->get();
    if (x < min || x > max) c.fail(n, path, fmt::format("{} is out of range {}..{}", x, min, max));
    return x;
}

double read_double(const context& c, const toml::node& n, std::string_view path, double min, double max) {
    double x = 0;
    if (const auto* f = n.as_floating_point()) x = f->get();
    else if (const auto* i = n.as_integer()) x = static_cast<double>(i->get());
    else wrong_type(c, n, path, "a number");
    if (!(x >= min && x <= max)) c.fail(n, path, fmt::format("{} is out of range {}..{}", x, min, max));
    return x;
}

std::string read_string(const context& c, const toml::node& n, std::string_view path) {
    const auto* v = n.as_string();
    if (v == nullptr) wrong_type(c, n, path, "a string");
    // TOML writes a NUL as "\u0000". Every path, device and URL reaches a
    // system call or EAL's argv as a C string, which ends there: the relay
    // would use another directory, file or device than the one the profile
    // names ("/var/lib/stentor/journal\u0000-b" is .../journal).
    if (const auto nul = v->get().find('\0'); nul != std::string::npos)
        c.fail(n, path, fmt::format("holds a NUL character (\\u0000) at byte {}: the text would end there", nul));
    return v->get();
}

bool read_bool(const context& c, const toml::node& n, std::string_view path) {
    const auto* v = n.as_boolean();
    if (v == nullptr) wrong_type(c, n, path, "a boolean (true or false)");
    return v->get();
}

// One TOML table with the set of keys it may hold. Unknown keys are refused
// at construction: a misspelt setting silently falling back to its default is
// the worst kind of config bug.
class table_reader {
public:
    table_reader(const context& c, const toml::table& t, const toml::source_region& where,
                 std::string path, std::initializer_list<std::string_view> allowed)
        : c_(c), t_(t), where_(where), path_(std::move(path)) {
        const toml::key* unknown = nullptr;
        for (auto&& [k, v] : t_) {
            (void)v;
            if (std::find(allowed.begin(), allowed.end(), k.str()) != allowed.end()) continue;
            // toml++ iterates in key order; report the first unknown key in
            // the file so the message matches what the reader sees first.
            const auto& s = k.source().begin;
            if (unknown == nullptr || s.line < unknown->source().begin.line ||
                (s.line == unknown->source().begin.line && s.column < unknown->source().begin.column))
                unknown = &k;
        }
        if (unknown != nullptr) {
            std::string known;
            for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
            c_.fail(unknown->source(), key_path(unknown->str()),
                    fmt::format("unknown setting (known here: {})", known));
        }
    }

    const std::string& path() const { return path_; }
    std::string key_path(std::string_view k) const { return join(path_, k); }
    const toml::node* find(std::string_view k) const { return t_.get(k); }

    // Where to point for a setting: the value if present, else the enclosing table.
    toml::source_region where(std::string_view k) const {
        const auto* n = find(k);
        return n != nullptr ? n->source() : where_;
    }
    const toml::source_region& where() const { return where_; }

    const toml::node& require(std::string_view k) const {
        const auto* n = find(k);
        if (n == nullptr) c_.fail(where_, key_path(k), "required setting is missing");
        return *n;
    }

    template <class T>
    void opt_uint(std::string_view k, T& out, int64_t min, int64_t max) const {
        if (const auto* n = find(k)) out = static_cast<T>(read_int(c_, *n, key_path(k), min, max));
    }
    template <class T>
    T req_uint(std::string_view k, int64_t min, int64_t max) const {
        return static_cast<T>(read_int(c_, require(k), key_path(k), min, max));
    }
    void opt_double(std::string_view k, double& out, double min, double max) const {
        if (const auto* n = find(k)) out = read_double(c_, *n, key_path(k), min, max);
    }
    void opt_string(std::string_view k, std::string& out) const {
        if (const auto* n = find(k)) out = read_string(c_, *n, key_path(k));
    }
    std::string req_string(std::string_view k) const {
        return read_string(c_, require(k), key_path(k));
    }
    void opt_bool(std::string_view k, bool& out) const {
        if (const auto* n = find(k)) out = read_bool(c_, *n, key_path(k));
    }

    [[noreturn]] void fail(std::string_view k, std::string_view what) const {
        c_.fail(where(k), key_path(k), what);
    }

private:
    const context& c_;
    const toml::table& t_;
    toml::source_region where_;
    std::string path_;
};

// A [section] of the root; an absent section reads as an empty table so its
// defaults apply and missing required keys point at the enclosing (root) table.
table_reader section(const context& c, const toml::table& root, std::string_view name,
                     std::initializer_list<std::string_view> allowed) {
    static const toml::table empty;
    const auto* n = root.get(name);
    if (n == nullptr) return table_reader(c, empty, root.source(), std::string(name), allowed);
    const auto* t = n->as_table();
    if (t == nullptr) wrong_type(c, *n, name, fmt::format("a table ([{}])", name));
    return table_reader(c, *t, t->source(), std::string(name), allowed);
}

// [[name]] arrays of tables (also accepted inline: name = [{...}, {...}]).
void for_each_table(const context& c, const toml::node* n, std::string_view path,
                    const std::function<void(const toml::table&, const std::string&, size_t)>& fn) {
    if (n == nullptr) return;
    const auto* arr = n->as_array();
    if (arr == nullptr) wrong_type(c, *n, path, fmt::format("an array of tables ([[{}]])", path));
    for (size_t i = 0; i < arr->size(); ++i) {
        const auto& e = *arr->get(i);
        const auto p = index(path, i);
        const auto* t = e.as_table();
        if (t == nullptr) wrong_type(c, e, p, "a table");
        fn(*t, p, i);
    }
}

// ---------------------------------------------------------------------------
// Lcore lists: [1, 2, 3] or "1-3,6"

struct lcore_list {
    std::vector<unsigned> ids;
    std::vector<toml::source_region> where;  // per id, for consistency errors
    std::vector<std::string> paths;          // per id: "x[2]" for arrays, "x" for strings

    bool contains(unsigned id) const { return std::find(ids.begin(), ids.end(), id) != ids.end(); }
};

std::optional<unsigned> parse_uint(std::string_view s) {
    unsigned v = 0;
    if (s.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// "ADDRESS<sep>NUMBER" ("198.18.0.1/24", "127.0.0.1:8080"): both parts, or nothing.
std::optional<std::pair<uint32_t, unsigned>> address_and_number(std::string_view s, char sep) {
    const auto at = s.rfind(sep);
    if (at == std::string_view::npos) return std::nullopt;
    const auto addr = parse_ipv4(s.substr(0, at));
    const auto n = parse_uint(s.substr(at + 1));
    if (!addr || !n) return std::nullopt;
    return std::pair{*addr, *n};
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

lcore_list read_lcores(const context& c, const toml::node& n, const std::string& path) {
    lcore_list out;
    auto add = [&](unsigned id, const toml::source_region& where, const std::string& p) {
        if (id >= RTE_MAX_LCORE)
            c.fail(where, p, fmt::format("lcore {} is out of range 0..{}", id, RTE_MAX_LCORE - 1));
        if (out.contains(id)) c.fail(where, p, fmt::format("lcore {} is listed twice", id));
        out.ids.push_back(id);
        out.where.push_back(where);
        out.paths.push_back(p);
    };
    if (const auto* s = n.as_string()) {
        const std::string_view text = s->get();
        if (trim(text).empty()) return out;
        size_t start = 0;
        while (start <= text.size()) {
            size_t comma = text.find(',', start);
            if (comma == std::string_view::npos) comma = text.size();
            const auto item = trim(text.substr(start, comma - start));
            const auto dash = item.find('-');
            auto lo = parse_uint(trim(item.substr(0, dash)));
            auto hi = dash == std::string_view::npos ? lo : parse_uint(trim(item.substr(dash + 1)));
            if (!lo || !hi)
                c.fail(n, path, fmt::format("malformed lcore list \"{}\" (expected e.g. \"0-3,6\")", text));
            if (*lo > *hi)
                c.fail(n, path, fmt::format("lcore range \"{}\" runs backwards", item));
            if (*hi >= RTE_MAX_LCORE)
                c.fail(n, path, fmt::format("lcore {} is out of range 0..{}", *hi, RTE_MAX_LCORE - 1));
            for (unsigned id = *lo; id <= *hi; ++id) add(id, n.source(), path);
            start = comma + 1;
        }
        return out;
    }
    const auto* arr = n.as_array();
    if (arr == nullptr) wrong_type(c, n, path, "an array of lcore ids or a range string like \"0-3,6\"");
    for (size_t i = 0; i < arr->size(); ++i) {
        const auto& e = *arr->get(i);
        const auto p = index(path, i);
        add(static_cast<unsigned>(read_int(c, e, p, 0, RTE_MAX_LCORE - 1)), e.source(), p);
    }
    return out;
}

// ---------------------------------------------------------------------------
// Addresses

constexpr uint32_t mask_of(unsigned prefix) {
    return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
}

// /31 and /32 have no network or broadcast address (RFC 3021).
constexpr bool has_broadcast(unsigned prefix) { return prefix <= 30; }

std::string cidr(uint32_t ip, unsigned prefix) {
    return fmt::format("{}/{}", format_ipv4(ip & mask_of(prefix)), prefix);
}

}  // namespace

std::optional<std::string> ipv4_special(uint32_t ip) {
    if (ip == 0) return "unspecified address 0.0.0.0";
    if ((ip >> 24) == 0) return "'this network' address (0.0.0.0/8)";
    if ((ip >> 24) == 127) return "loopback address (127.0.0.0/8)";
    if (ip == 0xffffffffu) return "limited broadcast address 255.255.255.255";
    if ((ip >> 28) == 0xe) return "multicast address (224.0.0.0/4)";
    if ((ip >> 28) == 0xf) return "reserved class E address (240.0.0.0/4)";
    if ((ip >> 16) == 0xa9fe) return "link-local address (169.254.0.0/16)";
    return std::nullopt;
}

namespace {

uint32_t read_ipv4(const context& c, const toml::node& n, const std::string& path) {
    const auto s = read_string(c, n, path);
    const auto ip = parse_ipv4(s);
    if (!ip) c.fail(n, path, fmt::format("\"{}\" is not a dotted-quad IPv4 address", s));
    return *ip;
}

std::optional<std::array<uint8_t, 6>> parse_mac(std::string_view s) {
    // Exactly "xx:xx:xx:xx:xx:xx": the one spelling ip(8) and DPDK logs print.
    if (s.size() != 17) return std::nullopt;
    std::array<uint8_t, 6> mac{};
    for (size_t i = 0; i < 6; ++i) {
        if (i > 0 && s[i * 3 - 1] != ':') return std::nullopt;
        const char* b = s.data() + i * 3;
        unsigned v = 0;
        auto [p, ec] = std::from_chars(b, b + 2, v, 16);
        if (ec != std::errc() || p != b + 2) return std::nullopt;
        mac[i] = static_cast<uint8_t>(v);
    }
    return mac;
}

// PCI address as DPDK's -a takes it: [DDDD:]BB:DD.F (hex).
// A MAC address setting that can name one host: not multicast, not zero.
// `role` says what it would be ("a port address").
std::array<uint8_t, 6> read_unicast_mac(const context& c, const toml::node& n, const std::string& path,
                                        std::string_view role) {
    const auto s = read_string(c, n, path);
    const auto mac = parse_mac(s);
    if (!mac) c.fail(n, path, fmt::format("\"{}\" is not a MAC address like \"02:00:00:00:00:01\"", s));
    if (((*mac)[0] & 1) != 0) c.fail(n, path, fmt::format("{} is a multicast MAC address", s));
    if (std::all_of(mac->begin(), mac->end(), [](uint8_t b) { return b == 0; }))
        c.fail(n, path, fmt::format("the all-zero MAC address cannot be {}", role));
    return *mac;
}

bool valid_pci(std::string_view s) {
    auto hex = [](std::string_view h, size_t n) {
        return h.size() == n && std::all_of(h.begin(), h.end(), [](char ch) {
                   return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
               });
    };
    const auto dot = s.rfind('.');
    if (dot == std::string_view::npos || !hex(s.substr(dot + 1), 1) || s[dot + 1] > '7') return false;
    const auto head = s.substr(0, dot);
    const auto c2 = head.rfind(':');
    if (c2 == std::string_view::npos || !hex(head.substr(c2 + 1), 2)) return false;
    const auto bus = head.substr(0, c2);
    const auto c1 = bus.rfind(':');
    if (c1 == std::string_view::npos) return hex(bus, 2);
    return hex(bus.substr(c1 + 1), 2) && hex(bus.substr(0, c1), 4);
}

bool valid_log_level(std::string_view s) {
    static constexpr std::string_view levels[] = {"emergency", "alert", "critical", "error",
                                                  "warning",   "notice", "info",    "debug"};
    // DPDK also takes "pattern:level" (e.g. "pmd.net.af_packet:debug").
    const auto colon = s.rfind(':');
    if (colon != std::string_view::npos) {
        if (colon == 0) return false;
        s = s.substr(colon + 1);
    }
    return std::find(std::begin(levels), std::end(levels), s) != std::end(levels);
}

std::string vdev_name(std::string_view spec) { return std::string(spec.substr(0, spec.find(','))); }

// ---------------------------------------------------------------------------
// Sections

void read_eal(const context& c, const toml::table& root, eal_config& eal) {
    const auto r = section(c, root, "eal",
                           {"lcores", "main_lcore", "memory_mb", "hugepages", "file_prefix",
                            "pci_allow", "vdevs", "mbufs", "mbuf_cache", "log_level"});
    const auto& lcores_node = r.require("lcores");
    eal.lcores = read_lcores(c, lcores_node, r.key_path("lcores")).ids;
    if (eal.lcores.empty()) c.fail(lcores_node, "eal.lcores", "needs at least one lcore");

    r.opt_uint("main_lcore", eal.main_lcore, 0, RTE_MAX_LCORE - 1);
    if (std::find(eal.lcores.begin(), eal.lcores.end(), eal.main_lcore) == eal.lcores.end())
        r.fail("main_lcore", fmt::format("main lcore {} is not in eal.lcores", eal.main_lcore));

    // Below 64 MB EAL cannot fit its own structures plus one mempool; above
    // 1 TiB (max_memory_mb) it is a typo, not a relay server's memory.
    r.opt_uint("memory_mb", eal.memory_mb, 64, max_memory_mb);
    r.opt_bool("hugepages", eal.hugepages);

    r.opt_string("file_prefix", eal.file_prefix);
    // The prefix becomes a path component under /var/run/dpdk; keep it a plain name.
    if (eal.file_prefix.empty() || eal.file_prefix.size() > 64 ||
        !std::all_of(eal.file_prefix.begin(), eal.file_prefix.end(), [](char ch) {
            return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' ||
                   ch == '.';
        }) ||
        eal.file_prefix.front() == '.')   // "." and ".." would make EAL's runtime directory /var/run/dpdk or /var/run
        r.fail("file_prefix", "must be 1..64 characters of [A-Za-z0-9._-], not starting with a dot");

    auto read_strings = [&](std::string_view key, std::vector<std::string>& out,
                            const std::function<void(const toml::node&, const std::string&,
                                                     const std::string&)>& check) {
        const auto* n = r.find(key);
        if (n == nullptr) return;
        const auto path = r.key_path(key);
        const auto* arr = n->as_array();
        if (arr == nullptr) wrong_type(c, *n, path, "an array of strings");
        for (size_t i = 0; i < arr->size(); ++i) {
            const auto& e = *arr->get(i);
            const auto p = index(path, i);
            auto s = read_string(c, e, p);
            check(e, p, s);
            out.push_back(std::move(s));
        }
    };
    read_strings("pci_allow", eal.pci_allow, [&](const toml::node& e, const std::string& p,
                                                 const std::string& s) {
        if (!valid_pci(s))
            c.fail(e, p, fmt::format("\"{}\" is not a PCI address (expected e.g. \"0000:3b:00.0\")", s));
        if (std::find(eal.pci_allow.begin(), eal.pci_allow.end(), s) != eal.pci_allow.end())
            c.fail(e, p, fmt::format("PCI address {} is listed twice", s));
    });
    read_strings("vdevs", eal.vdevs, [&](const toml::node& e, const std::string& p,
                                         const std::string& s) {
        const auto name = vdev_name(s);
        if (name.empty()) c.fail(e, p, "vdev spec needs a driver name before the first ','");
        for (const auto& v : eal.vdevs)
            if (vdev_name(v) == name) c.fail(e, p, fmt::format("vdev {} is listed twice", name));
    });
    // Without hugepages PCI NICs still work through vfio (--no-huge), so only
    // an empty device set is refused: EAL would start with nothing to forward on.
    if (eal.pci_allow.empty() && eal.vdevs.empty())
        c.fail(r.where(), "eal", "no ports to drive: eal.pci_allow and eal.vdevs are both empty");

    // DPDK sizes pools best at 2^n - 1, but any count works; the floor keeps
    // RX rings plus per-lcore caches from starving the pool at start.
    r.opt_uint("mbufs", eal.mbufs, 1024, u32_max);
    r.opt_uint("mbuf_cache", eal.mbuf_cache, 0, 512);  // RTE_MEMPOOL_CACHE_MAX_SIZE

    r.opt_string("log_level", eal.log_level);
    if (!valid_log_level(eal.log_level))
        r.fail("log_level", fmt::format("\"{}\" is not a DPDK log level (emergency, alert, critical, "
                                        "error, warning, notice, info, debug, or pattern:level)",
                                        eal.log_level));
}

void read_dataplane(const context& c, const toml::table& root, const eal_config& eal,
                    dataplane_config& dp) {
    const auto r = section(c, root, "dataplane",
                           {"rx_lcores", "fanout_lcores", "service_lcores", "join_lcores", "burst",
                            "frame_deadline_us", "tx_drain_us", "iteration_budget", "stats_interval_s", "idle",
                            "idle_sleep_max_us"});
    const auto& rx_node = r.require("rx_lcores");
    const auto rx = read_lcores(c, rx_node, r.key_path("rx_lcores"));
    if (rx.ids.empty()) c.fail(rx_node, "dataplane.rx_lcores", "no rx lcore: ingress needs at least one");
    const auto& fo_node = r.require("fanout_lcores");
    const auto fo = read_lcores(c, fo_node, r.key_path("fanout_lcores"));
    if (fo.ids.empty())
        c.fail(fo_node, "dataplane.fanout_lcores", "no fanout lcore: fan-out needs at least one");
    lcore_list sv;
    if (const auto* n = r.find("service_lcores")) sv = read_lcores(c, *n, r.key_path("service_lcores"));
    lcore_list jl;
    if (const auto* n = r.find("join_lcores")) {
        jl = read_lcores(c, *n, r.key_path("join_lcores"));
        if (jl.ids.size() > max_join_lcores)
            c.fail(*n, r.key_path("join_lcores"),
                   fmt::format("{} join lcores; at most {}", jl.ids.size(), max_join_lcores));
    }

    const lcore_list* roles[] = {&rx, &fo, &sv, &jl};
    // The main lcore runs the control plane; a worker loop there would starve the API and RCU.
    for (const auto* l : roles)
        for (size_t i = 0; i < l->ids.size(); ++i)
            if (l->ids[i] == eal.main_lcore)
                c.fail(l->where[i], l->paths[i],
                       fmt::format("lcore {} is the main lcore (control plane); it cannot be a worker",
                                   l->ids[i]));
    std::set<unsigned> workers;
    for (const auto* l : roles) workers.insert(l->ids.begin(), l->ids.end());
    if (workers.size() > eal.lcores.size() - 1)
        c.fail(r.where(), "dataplane",
               fmt::format("{} lcores have worker roles but eal.lcores has only {} besides the main lcore",
                           workers.size(), eal.lcores.size() - 1));
    for (const auto* l : roles)
        for (size_t i = 0; i < l->ids.size(); ++i)
            if (std::find(eal.lcores.begin(), eal.lcores.end(), l->ids[i]) == eal.lcores.end())
                c.fail(l->where[i], l->paths[i], fmt::format("lcore {} is not in eal.lcores", l->ids[i]));
    // Service lcores are handed to DPDK's service-core framework, which then
    // owns them; they cannot also run the rx/fan-out loops.
    for (size_t i = 0; i < sv.ids.size(); ++i)
        if (rx.contains(sv.ids[i]) || fo.contains(sv.ids[i]))
            c.fail(sv.where[i], sv.paths[i],
                   fmt::format("lcore {} is already an rx or fanout lcore", sv.ids[i]));
    // A join lcore verifies what the RX lcores hand it and runs nothing
    // else: on an rx or fan-out lcore it would be the very lcore it relieves,
    // and a service lcore belongs to DPDK's service cores.
    for (size_t i = 0; i < jl.ids.size(); ++i)
        if (rx.contains(jl.ids[i]) || fo.contains(jl.ids[i]) || sv.contains(jl.ids[i]))
            c.fail(jl.where[i], jl.paths[i],
                   fmt::format("lcore {} is already an rx, fanout or service lcore; a join lcore is dedicated",
                               jl.ids[i]));
    dp.rx_lcores = rx.ids;
    dp.fanout_lcores = fo.ids;
    dp.service_lcores = sv.ids;
    dp.join_lcores = jl.ids;

    r.opt_uint("burst", dp.burst, 1, 256);
    // A deadline shorter than 1 ms would abandon almost every replica of a
    // large session; longer than 1 s is no longer live audio.
    r.opt_uint("frame_deadline_us", dp.frame_deadline_us, 1000, 1000000);
    r.opt_uint("tx_drain_us", dp.tx_drain_us, 1, 100000);
    r.opt_uint("iteration_budget", dp.iteration_budget, 64, 16384);
    r.opt_uint("stats_interval_s", dp.stats_interval_s, 0, 86400);
    std::string idle = "poll";
    r.opt_string("idle", idle);
    if (idle != "poll" && idle != "adaptive")
        r.fail("idle", fmt::format("\"{}\": must be \"poll\" (workers busy-poll: dedicated cores) or \"adaptive\" "
                                   "(idle workers sleep: cores shared with other relays)",
                                   idle));
    dp.idle_adaptive = idle == "adaptive";
    // Below 10 us a sleep costs more than it saves; above 10 ms an idle
    // relay's first packet would wait half an audio frame.
    r.opt_uint("idle_sleep_max_us", dp.idle_sleep_max_us, 10, 10000);
    if (!dp.idle_adaptive && r.find("idle_sleep_max_us") != nullptr)
        r.fail("idle_sleep_max_us", "only meaningful with idle = \"adaptive\"");
}

void read_ingress(const context& c, const toml::table& root, ingress_config& in) {
    const auto r = section(c, root, "ingress", {"udp_port_min", "udp_port_max", "require_ssrc"});
    r.opt_uint("udp_port_min", in.udp_port_min, 1, 65535);
    r.opt_uint("udp_port_max", in.udp_port_max, 1, 65535);
    r.opt_bool("require_ssrc", in.require_ssrc);
    if (in.udp_port_min > in.udp_port_max)
        r.fail("udp_port_min", fmt::format("{} is greater than ingress.udp_port_max {}",
                                           in.udp_port_min, in.udp_port_max));
}

void read_limits(const context& c, const toml::table& root, limits_config& l) {
    const auto r = section(c, root, "limits",
                           {"max_sessions", "max_speakers", "max_listeners",
                            "max_listeners_per_session", "max_neighbours", "join_rate_per_s",
                            "headroom_pct", "session_join_rate_per_s", "fanout_pps_per_core",
                            "tier0_reserve_pct", "tier1_reserve_pct", "tier2_reserve_pct",
                            "speaker_burst_pct", "join_resolve_ms"});
    // The three table sizes are allocated in full at start, before the API
    // answers (relay.cc, state.cc): per session a counter line per RX lcore,
    // per speaker a policer per RX lcore and a slot, per neighbour a 64 B
    // record and a slot. Up to 4294967295 passed --check and then ended the
    // start in "stentord: std::bad_alloc" (or, where the kernel overcommits,
    // the OOM killer while the free lists fill), naming no setting. The
    // ceilings are far above what one relay serves (docs/profiles.md).
    r.opt_uint("max_sessions", l.max_sessions, 1, max_table_sessions);
    r.opt_uint("max_speakers", l.max_speakers, 1, max_table_speakers);
    r.opt_uint("max_listeners", l.max_listeners, 1, u32_max);
    r.opt_uint("max_listeners_per_session", l.max_listeners_per_session, 1, u32_max);
    r.opt_uint("max_neighbours", l.max_neighbours, 1, max_table_neighbours);
    r.opt_uint("join_rate_per_s", l.join_rate_per_s, 1, u32_max);
    // More than 90 % headroom leaves so little capacity that admission would
    // refuse nearly everything; it is almost certainly a typo.
    r.opt_uint("headroom_pct", l.headroom_pct, 0, 90);
    r.opt_uint("session_join_rate_per_s", l.session_join_rate_per_s, 1, u32_max);
    // Default 50 Mpps: what one core of this class built from a template in
    // the fan-out benchmark (testpmd txonly reached 58-62 Mpps on the same core).
    r.opt_uint("fanout_pps_per_core", l.fanout_pps_per_core, 1000, u32_max);
    r.opt_uint("tier0_reserve_pct", l.tier0_reserve_pct, 0, 90);
    r.opt_uint("tier1_reserve_pct", l.tier1_reserve_pct, 0, 90);
    r.opt_uint("tier2_reserve_pct", l.tier2_reserve_pct, 0, 90);
    // Tier 3 could use nothing at all past this: almost certainly a typo.
    if (l.tier0_reserve_pct + l.tier1_reserve_pct + l.tier2_reserve_pct > 90)
        r.fail("tier2_reserve_pct", fmt::format("tier reserves add up to {} %; at most 90 % may be reserved",
                                                l.tier0_reserve_pct + l.tier1_reserve_pct + l.tier2_reserve_pct));
    r.opt_uint("speaker_burst_pct", l.speaker_burst_pct, 0, 100);
    // An API client holds its connection (and a server thread) meanwhile.
    r.opt_uint("join_resolve_ms", l.join_resolve_ms, 0, 10000);
    // Admission plans every stream at its nominal rate; the policer lets a
    // speaker send up to speaker_burst_pct more. Past the headroom, speakers
    // within their policer could load the relay beyond its capacity and the
    // overload controller would shed listeners admission let in.
    if (l.speaker_burst_pct > l.headroom_pct)
        r.fail("speaker_burst_pct", fmt::format("{} % is more than limits.headroom_pct ({} %): speakers at their policer "
                                                "limit would use capacity admission gave to listeners",
                                                l.speaker_burst_pct, l.headroom_pct));
    if (l.max_listeners_per_session > l.max_listeners)
        r.fail("max_listeners_per_session",
               fmt::format("{} is greater than limits.max_listeners {}", l.max_listeners_per_session,
                           l.max_listeners));
}

// What an HTTP server of ours listens with ([api], [director]).
struct http_listen {
    std::string_view section;   // "api", "director"
    std::string_view server;    // "the API", "the director"
    const std::string& listen_addr;
    unsigned listen_port;
    const std::string& tls_cert;
    const std::string& tls_key;
    bool plain_http;
    // [api] must say plain_http = true even on loopback; the director's
    // profiles predate the setting, and loopback is all it allows there.
    bool plain_must_be_said = true;
    // Where to keep the SHA-256 of the files read (nullptr: nowhere).
    std::array<uint8_t, 32>* cert_digest = nullptr;
    std::array<uint8_t, 32>* key_digest = nullptr;
};

void sha256_of(const std::string& text, std::array<uint8_t, 32>* out) {
    if (out != nullptr) (void)gnutls_hash_fast(GNUTLS_DIG_SHA256, text.data(), text.size(), out->data());
}

// HTTPS, or plain HTTP said explicitly and only on loopback (issue 12 item
// 4; the director since the second review). The files are read and loaded
// with GnuTLS here too, so a wrong path, a group-readable key, a key of
// another certificate or an encrypted key is a --check error naming the
// setting, not a start-up failure.
void check_http_transport(const table_reader& r, const http_listen& h) {
    const auto sec = h.section;
    const bool tls = !h.tls_cert.empty() || !h.tls_key.empty();
    if (tls) {
        if (h.tls_cert.empty()) r.fail("tls_key", fmt::format("set together with {}.tls_cert (the certificate it belongs to)", sec));
        if (h.tls_key.empty()) r.fail("tls_cert", fmt::format("set together with {}.tls_key (its private key)", sec));
        if (h.plain_http)
            r.fail("plain_http", fmt::format("true, but {0}.tls_cert and {0}.tls_key are set: {1} serves HTTPS or plain "
                                             "HTTP, not both",
                                             sec, h.server));
        const pem_file cert = read_pem_file(h.tls_cert, false);
        if (!cert.error.empty()) r.fail("tls_cert", cert.error);
        pem_file key = read_pem_file(h.tls_key, true);
        const wiped guard{key.text};
        if (!key.error.empty()) r.fail("tls_key", key.error);
        if (const auto bad = check_tls_pair(cert.text, key.text))
            r.fail(bad->first, fmt::format("{}: {}", bad->first == "tls_cert" ? h.tls_cert : h.tls_key, bad->second));
        sha256_of(cert.text, h.cert_digest);
        sha256_of(key.text, h.key_digest);
        return;
    }
    const auto ip = parse_ipv4(h.listen_addr);
    const bool loopback = ip && (*ip >> 24) == 127;
    if (!h.plain_http && (h.plain_must_be_said || !loopback))
        r.fail("listen", fmt::format("{} on {}:{} needs HTTPS ({}.tls_cert and {}.tls_key) or, on a loopback "
                                     "address only, plain_http = true said explicitly",
                                     h.server, h.listen_addr, h.listen_port, sec, sec));
    if (!loopback)
        r.fail("plain_http", fmt::format("plain HTTP only on a loopback address (127.0.0.0/8): {} is reachable from other "
                                         "hosts, and the token and everything set through {} would cross the "
                                         "network in clear; serve HTTPS there ({}.tls_cert, {}.tls_key)",
                                         h.listen_addr, h.section == "api" ? "the API" : "it (join tokens and passwords)",
                                         sec, sec));
}

std::string read_secret_text(const table_reader& r, std::string_view setting, const std::string& path,
                             std::string_view what);

// The connection limits of an HTTP server of ours (http_guard.h), [api]
// and [director] alike.
void read_conn_limits(const table_reader& r, std::string_view section, unsigned& max, unsigned& per_ip, unsigned& idle,
                      unsigned& header) {
    r.opt_uint("max_connections", max, 1, 65536);
    r.opt_uint("max_connections_per_ip", per_ip, 1, 65536);
    if (per_ip > max)
        r.fail("max_connections_per_ip", fmt::format("{} is greater than {}.max_connections {}", per_ip, section, max));
    r.opt_uint("idle_timeout_s", idle, 1, 3600);
    r.opt_uint("header_timeout_s", header, 1, 3600);
}

// A bearer token inline (`token`) or from `token_file` (an absolute path,
// mode 0600 like the key files, whitespace around it ignored). Returns the
// setting to blame for the token's own rules.
std::string read_bearer_token(const table_reader& r, std::string& token, std::string& token_file, std::string_view what) {
    r.opt_string("token_file", token_file);
    if (token_file.empty()) return "token";
    if (!token.empty()) r.fail("token_file", "set together with token: give the token inline or in a file, not both");
    if (token_file.front() != '/') r.fail("token_file", fmt::format("\"{}\" is not an absolute path", token_file));
    token = read_secret_text(r, "token_file", token_file, what);
    if (token.empty()) r.fail("token_file", fmt::format("{}: empty", token_file));
    return "token_file";
}

// [api] metrics_*: who may scrape /metrics and how many labelled series
// it shows (docs/metrics.md).
void read_api_metrics(const table_reader& r, api_config& api) {
    r.opt_string("metrics_token", api.metrics_token);
    if (!api.metrics_token.empty()) {
        if (api.metrics_token.size() < min_token_len)
            r.fail("metrics_token", fmt::format("the metrics token must be at least {} characters", min_token_len));
        if (!std::all_of(api.metrics_token.begin(), api.metrics_token.end(), [](char ch) { return ch > ' ' && ch < 0x7f; }))
            r.fail("metrics_token", "the metrics token must be printable ASCII without spaces (it travels in an HTTP header)");
        // One token for both would make the read-only one an admin token.
        if (api.metrics_token == api.token)
            r.fail("metrics_token", "must differ from api.token: the metrics token only reads /metrics");
    }
    std::string auth = "token";
    r.opt_string("metrics_auth", auth);
    if (auth != "token" && auth != "loopback")
        r.fail("metrics_auth", fmt::format("\"{}\": must be \"token\" (every scrape presents api.token or "
                                           "api.metrics_token) or \"loopback\" (scrapes from 127.0.0.0/8 need none)",
                                           auth));
    api.metrics_loopback_open = auth == "loopback";
    r.opt_uint("metrics_top_sessions", api.metrics_top_sessions, 0, 1000);
    r.opt_uint("metrics_top_speakers", api.metrics_top_speakers, 0, 10000);
}

void read_api(const context& c, const toml::table& root, api_config& api) {
    const auto r = section(c, root, "api",
                           {"listen", "token", "token_file", "threads", "max_connections", "max_connections_per_ip",
                            "idle_timeout_s", "header_timeout_s", "body_timeout_s", "bodies_in_flight_mib",
                            "publish_wait_ms", "unauthorized_log_s", "tls_cert", "tls_key", "plain_http",
                            "metrics_token", "metrics_auth", "metrics_top_sessions", "metrics_top_speakers"});
    if (const auto* n = r.find("listen")) {
        const auto path = r.key_path("listen");
        const auto s = read_string(c, *n, path);
        const auto ap = address_and_number(s, ':');
        if (!ap) c.fail(*n, path, fmt::format("\"{}\" is not ADDRESS:PORT (e.g. \"127.0.0.1:8080\")", s));
        const auto [addr, port] = *ap;
        if (port > 65535) c.fail(*n, path, fmt::format("port {} is out of range 0..65535", port));
        api.listen_addr = format_ipv4(addr);
        api.listen_port = port;
    }
    r.opt_string("token", api.token);
    const std::string tk = read_bearer_token(r, api.token, api.token_file, "manage the relay");
    const std::string from = api.token_file.empty() ? "" : " (" + api.token_file + ")";
    // The API can add listeners, i.e. point the relay's traffic anywhere; it
    // must not be reachable with a guessable token. Port 0 disables it.
    if (api.listen_port != 0 && api.token.size() < min_token_len)
        r.fail(tk, fmt::format("the API token{} must be at least {} characters (or set api.listen "
                               "port to 0 to disable the API)",
                               from, min_token_len));
    if (!std::all_of(api.token.begin(), api.token.end(), [](char ch) { return ch > ' ' && ch < 0x7f; }))
        r.fail(tk, fmt::format("the API token{} must be printable ASCII without spaces (it travels in an HTTP header)", from));
    // Handlers never wait for a publish on a pool thread (api.cc), so a few
    // threads serve any load; more than 64 only costs memory.
    r.opt_uint("threads", api.threads, 1, 64);
    read_conn_limits(r, "api", api.max_connections, api.max_connections_per_ip, api.idle_timeout_s,
                     api.header_timeout_s);
    r.opt_uint("body_timeout_s", api.body_timeout_s, 1, 3600);
    r.opt_uint("unauthorized_log_s", api.unauthorized_log_s, 1, 3600);
    // One bulk body (8 MiB) must fit, or bulk joins could never succeed.
    r.opt_uint("bodies_in_flight_mib", api.bodies_in_flight_mib, 8, 65536);
    r.opt_uint("publish_wait_ms", api.publish_wait_ms, 10, 600000);
    r.opt_string("tls_cert", api.tls_cert);
    r.opt_string("tls_key", api.tls_key);
    r.opt_bool("plain_http", api.plain_http);
    if (api.listen_port != 0)
        check_http_transport(r, {"api", "the API", api.listen_addr, api.listen_port, api.tls_cert, api.tls_key,
                                 api.plain_http, true, &api.tls_cert_digest, &api.tls_key_digest});
    read_api_metrics(r, api);
}

void read_recording(const context& c, const toml::table& root, recording_config& rc) {
    const auto r = section(c, root, "recording", {"dir", "max_tracks_per_recording", "max_tracks"});
    r.opt_string("dir", rc.dir);
    // Each track holds a file descriptor while its session records.
    r.opt_uint("max_tracks_per_recording", rc.max_tracks_per_recording, 1, 65536);
    r.opt_uint("max_tracks", rc.max_tracks, 1, 65536);
    // Absolute: the daemon's working directory is nobody's business, and a
    // relative path would land recordings somewhere different per start-up.
    if (rc.dir.empty() || rc.dir.front() != '/') r.fail("dir", fmt::format("\"{}\" is not an absolute path", rc.dir));
    if (rc.dir.size() > 3000) r.fail("dir", "path longer than 3000 characters");
}

void read_overload(const context& c, const toml::table& root, overload_config& o) {
    const auto r = section(c, root, "overload",
                           {"enter_miss_ratio", "enter_ticks", "exit_miss_ratio", "hold_ms", "ramp_ms",
                            "cooldown_ticks", "shed_margin", "max_shed_per_tick"});
    r.opt_double("enter_miss_ratio", o.enter_miss_ratio, 0.0, 0.5);
    r.opt_uint("enter_ticks", o.enter_ticks, 1, 100);
    r.opt_double("exit_miss_ratio", o.exit_miss_ratio, 0.0, 0.5);
    r.opt_uint("hold_ms", o.hold_ms, 0, 600000);
    r.opt_uint("ramp_ms", o.ramp_ms, 0, 600000);
    r.opt_uint("cooldown_ticks", o.cooldown_ticks, 0, 100);
    r.opt_double("shed_margin", o.shed_margin, 0.0, 1.0);
    r.opt_uint("max_shed_per_tick", o.max_shed_per_tick, 1, u32_max);
    // A clean tick must be below a missing one, or the controller would
    // both enter and leave on the same tick.
    if (o.exit_miss_ratio >= o.enter_miss_ratio && o.enter_miss_ratio > 0)
        r.fail("exit_miss_ratio", fmt::format("{} is not below overload.enter_miss_ratio {}", o.exit_miss_ratio,
                                              o.enter_miss_ratio));
}

void read_mixer(const context& c, const toml::table& root, mixer_settings& m) {
    const auto r = section(c, root, "mixer",
                           {"channels", "bitrate_kbps", "complexity", "jitter_ms", "plc_max_frames",
                            "speaker_timeout_ms", "max_decoders_per_session"});
    r.opt_uint("channels", m.channels, 1, 2);
    r.opt_uint("bitrate_kbps", m.bitrate_kbps, 6, 510);   // Opus's range
    r.opt_uint("complexity", m.complexity, 0, 10);
    r.opt_uint("jitter_ms", m.jitter_ms, 0, 1000);
    r.opt_uint("plc_max_frames", m.plc_max_frames, 0, 50);
    r.opt_uint("speaker_timeout_ms", m.speaker_timeout_ms, 100, 600000);
    // Each decoder costs ~19 us of the mixer's core per 20 ms frame while
    // its speaker talks (docs/audio.md); 1024 is already 100 % of a core.
    r.opt_uint("max_decoders_per_session", m.max_decoders_per_session, 1, 1024);
}

void read_journal(const context& c, const toml::table& root, journal_config& jc) {
    const auto r = section(c, root, "journal", {"dir", "fsync", "compact_mib"});
    r.opt_string("dir", jc.dir);
    // Empty is the way to say "off"; anything else must not depend on the
    // working directory (see read_recording).
    if (!jc.dir.empty() && jc.dir.front() != '/')
        r.fail("dir", fmt::format("\"{}\" is not an absolute path (or \"\" for no journal)", jc.dir));
    if (jc.dir.size() > 3000) r.fail("dir", "path longer than 3000 characters");
    r.opt_bool("fsync", jc.fsync);
    r.opt_uint("compact_mib", jc.compact_mib, 1, 65536);
}

void read_capture(const context& c, const toml::table& root, const eal_config& eal, capture_config& cc) {
    const auto r = section(c, root, "capture",
                           {"dir", "pdump", "max_packets", "max_seconds", "max_mib", "ring_size", "mbufs", "keep"});
    r.opt_string("dir", cc.dir);
    // Absolute, as recording.dir: the API names a capture, never a path.
    if (cc.dir.empty() || cc.dir.front() != '/') r.fail("dir", fmt::format("\"{}\" is not an absolute path", cc.dir));
    if (cc.dir.size() > 3000) r.fail("dir", "path longer than 3000 characters");
    r.opt_bool("pdump", cc.pdump);
    // dpdk-dumpcap is a DPDK secondary process: it maps the primary's memory
    // through the hugepage files under /dev/hugepages and the runtime
    // directory. A --no-huge primary has neither to share.
    if (cc.pdump && !eal.hugepages)
        r.fail("pdump", "dpdk-dumpcap attaches as a DPDK secondary process, which needs eal.hugepages = true "
                        "(a --no-huge relay has no shared memory to attach to); use `stentorctl capture` instead");
    r.opt_uint("max_packets", cc.max_packets, 1, int64_t{1} << 40);
    r.opt_uint("max_seconds", cc.max_seconds, 1, 86400);
    r.opt_uint("max_mib", cc.max_mib, 1, 65536);
    r.opt_uint("ring_size", cc.ring_size, 64, 1 << 20);
    if ((cc.ring_size & (cc.ring_size - 1)) != 0)
        r.fail("ring_size", fmt::format("{} is not a power of two", cc.ring_size));
    r.opt_uint("mbufs", cc.mbufs, 63, 1 << 20);
    r.opt_uint("keep", cc.keep, 1, 100000);
}

// A join key file (docs/join.md "Keys"): the secret as hex digits (at
// least 64: 32 bytes), surrounding whitespace ignored, e.g. from
// `openssl rand -hex 32`. Refused unless it is a small regular file that
// neither group nor others can read or write: whoever reads it can mint
// tokens. Never a device or a FIFO (stat first, then opened without
// blocking): a profile naming one must not hang or poke the start-up.
// The text of a secret file, whitespace around it trimmed; `what` says
// what whoever reads it could do. The caller wipes what it returns.
std::string read_secret_text(const table_reader& r, std::string_view setting, const std::string& path,
                             std::string_view what) {
    constexpr size_t max_file = 4096;
    // stat() first so that a device is never opened (opening some has
    // effects of its own); fstat() again on what was opened.
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) r.fail(setting, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) r.fail(setting, fmt::format("{}: not a regular file", path));
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) r.fail(setting, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct fd_guard {
        int fd;
        ~fd_guard() { ::close(fd); }
    } guard{fd};
    if (::fstat(fd, &st) != 0) r.fail(setting, fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) r.fail(setting, fmt::format("{}: not a regular file", path));
    if ((st.st_mode & 077) != 0)
        r.fail(setting, fmt::format("{}: readable or writable by group or others (mode {:04o}); whoever reads it can "
                                    "{}: chmod 600 it",
                                    path, static_cast<unsigned>(st.st_mode & 07777), what));
    std::string text(max_file + 1, '\0');
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) r.fail(setting, fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    if (got > max_file) r.fail(setting, fmt::format("{}: larger than {} bytes: not a key file", path, max_file));
    text.resize(got);
    const auto space = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; };
    size_t b = 0, e = text.size();
    while (b < e && space(text[b])) ++b;
    while (e > b && space(text[e - 1])) --e;
    std::string out = text.substr(b, e - b);
    std::fill(text.begin(), text.end(), '\0');
    return out;
}

std::vector<uint8_t> read_key_file(const table_reader& r, std::string_view setting, const std::string& path) {
    std::string text = read_secret_text(r, setting, path, "mint join tokens");
    std::string_view hex = text;
    const auto digit = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        return -1;
    };
    for (size_t i = 0; i < hex.size(); ++i)
        if (digit(hex[i]) < 0)
            r.fail(setting, fmt::format("{}: byte {} is not a hex digit: the file holds the secret as hex "
                                        "(e.g. openssl rand -hex 32)",
                                        path, (hex.data() - text.data()) + i + 1));
    if (hex.size() % 2 != 0) r.fail(setting, fmt::format("{}: odd number of hex digits ({})", path, hex.size()));
    const size_t bytes = hex.size() / 2;
    if (bytes < join_secret_min || bytes > join_secret_max)
        r.fail(setting, fmt::format("{}: the secret is {} bytes; it must be {}..{} bytes ({}..{} hex digits)", path,
                                    bytes, join_secret_min, join_secret_max, 2 * join_secret_min, 2 * join_secret_max));
    std::vector<uint8_t> out(bytes);
    for (size_t i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(digit(hex[2 * i]) << 4 | digit(hex[2 * i + 1]));
    std::fill(text.begin(), text.end(), '\0');
    return out;
}

void read_srtp(const context& c, const toml::table& root, srtp_config& sc) {
    const auto r = section(c, root, "srtp", {"ingress", "egress", "suite"});
    if (const auto* n = r.find("ingress")) {
        const auto text = read_string(c, *n, r.key_path("ingress"));
        const auto m = parse_srtp_ingress(text);
        if (!m) r.fail("ingress", fmt::format("\"{}\" is not a mode (off or required)", text));
        sc.ingress = *m;
    }
    if (const auto* n = r.find("egress")) {
        const auto text = read_string(c, *n, r.key_path("egress"));
        const auto m = parse_srtp_egress(text);
        if (!m) r.fail("egress", fmt::format("\"{}\" is not a mode (off or session_key)", text));
        sc.egress = *m;
    }
    if (const auto* n = r.find("suite")) {
        const auto text = read_string(c, *n, r.key_path("suite"));
        const auto su = srtp::parse_suite(text);
        if (!su) r.fail("suite", fmt::format("\"{}\" is not a suite (AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM)", text));
        sc.suite = *su;
    }
}

// [[...srtp_key]] tables of a static session or speaker: id, key_file,
// suite, mki; the same rules as the API's (srtp_keyset_model::add), checked
// here once so that a bad profile names its file, line and key.
std::vector<srtp_key_config> read_srtp_keys(const context& c, const table_reader& parent, const srtp_config& sc) {
    std::vector<srtp_key_config> out;
    srtp_keyset_model trial;
    for_each_table(c, parent.find("srtp_key"), parent.key_path("srtp_key"),
                   [&](const toml::table& t, const std::string& path, size_t) {
        const table_reader kr(c, t, t.source(), path, {"id", "key_file", "suite", "mki"});
        srtp_key_config k;
        k.id = kr.req_string("id");
        k.suite = sc.suite;
        if (const auto* n = kr.find("suite")) {
            const auto text = read_string(c, *n, kr.key_path("suite"));
            const auto su = srtp::parse_suite(text);
            if (!su) kr.fail("suite", fmt::format("\"{}\" is not a suite (AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM)", text));
            k.suite = *su;
        }
        if (const auto* n = kr.find("mki")) {
            const auto text = read_string(c, *n, kr.key_path("mki"));
            const auto m = parse_mki(text);
            if (!m) kr.fail("mki", fmt::format("\"{}\" is not an MKI: 1..4 bytes as 2..8 hex digits", text));
            k.mki = *m;
        }
        k.key_file = kr.req_string("key_file");
        if (k.key_file.empty() || k.key_file.front() != '/')
            kr.fail("key_file", fmt::format("\"{}\" is not an absolute path", k.key_file));
        if (k.key_file.size() > 3000) kr.fail("key_file", "path longer than 3000 characters");
        std::string text = read_secret_text(kr, "key_file", k.key_file, "decrypt or forge this audio");
        auto bytes = decode_base64_key(text);
        wipe(text);
        if (!bytes)
            kr.fail("key_file", fmt::format("{}: not base64 (the file holds master key and salt as base64, e.g. "
                                            "openssl rand -base64 30)",
                                            k.key_file));
        auto master = std::make_shared<secure_bytes>(std::move(*bytes));
        srtp_key_spec spec;
        spec.id = k.id;
        spec.suite = k.suite;
        spec.mki = k.mki;
        spec.master = secure_bytes(master->size());
        std::memcpy(spec.master.data(), master->data(), master->size());
        std::string why;
        if (trial.add(std::move(spec), 1, &why) != srtp_keyset_model::refusal::none) {
            const std::string setting = why.rfind("key:", 0) == 0 ? "key_file" : why.substr(0, why.find(':'));
            kr.fail(setting == "id" || setting == "mki" || setting == "suite" || setting == "key_file" ? setting : "id",
                    why);
        }
        k.master = std::move(master);
        out.push_back(std::move(k));
    });
    return out;
}

void read_join(const context& c, const toml::table& root, join_config& jc) {
    const auto r = section(c, root, "join",
                           {"keys", "mint_key_id", "token_ttl_s", "verify_per_s", "consent_timeout_s",
                            "rebind_after_s", "mode", "max_spent_tokens", "source_join_rate_per_s",
                            "source_join_burst", "max_bindings_per_source"});
    for_each_table(c, r.find("keys"), r.key_path("keys"), [&](const toml::table& t, const std::string& path, size_t) {
        const table_reader kr(c, t, t.source(), path, {"id", "secret_file"});
        join_key k;
        k.id = kr.req_uint<unsigned>("id", 1, 255);
        for (size_t j = 0; j < jc.keys.size(); ++j)
            if (jc.keys[j].id == k.id) kr.fail("id", fmt::format("key id {} is used twice (also join.keys[{}])", k.id, j));
        k.secret_file = kr.req_string("secret_file");
        if (k.secret_file.empty() || k.secret_file.front() != '/')
            kr.fail("secret_file", fmt::format("\"{}\" is not an absolute path", k.secret_file));
        if (k.secret_file.size() > 3000) kr.fail("secret_file", "path longer than 3000 characters");
        k.secret = read_key_file(kr, "secret_file", k.secret_file);
        // A rotation that reuses a secret rotates nothing.
        for (size_t j = 0; j < jc.keys.size(); ++j)
            if (jc.keys[j].secret == k.secret)
                kr.fail("secret_file", fmt::format("{} holds the same secret as join.keys[{}] ({}): each key id needs "
                                                   "its own secret",
                                                   k.secret_file, j, jc.keys[j].secret_file));
        jc.keys.push_back(std::move(k));
    });
    if (const auto* n = r.find("mint_key_id")) {
        jc.mint_key_id = static_cast<unsigned>(read_int(c, *n, r.key_path("mint_key_id"), 1, 255));
        if (jc.keys.empty()) r.fail("mint_key_id", "no join.keys to mint with");
        if (jc.key(jc.mint_key_id) == nullptr) {
            std::string ids;
            for (const auto& k : jc.keys) ids += (ids.empty() ? "" : ", ") + std::to_string(k.id);
            r.fail("mint_key_id", fmt::format("{} is not the id of one of join.keys ({})", jc.mint_key_id, ids));
        }
    } else if (jc.keys.size() == 1) {
        jc.mint_key_id = jc.keys[0].id;
    } else if (jc.keys.size() > 1) {
        r.fail("mint_key_id", fmt::format("required with {} join.keys: say which one new tokens are signed with",
                                          jc.keys.size()));
    }
    r.opt_uint("token_ttl_s", jc.token_ttl_s, 1, join_max_ttl_s);
    r.opt_uint("verify_per_s", jc.verify_per_s, 1, 100000000);
    r.opt_uint("consent_timeout_s", jc.consent_timeout_s, 5, 3600);
    r.opt_uint("rebind_after_s", jc.rebind_after_s, 1, 3600);
    if (jc.rebind_after_s >= jc.consent_timeout_s)
        r.fail("rebind_after_s", fmt::format("{} is not below consent_timeout_s ({}): a NAT rebinding would lose "
                                             "the listener before it could move",
                                             jc.rebind_after_s, jc.consent_timeout_s));
    r.opt_uint("max_spent_tokens", jc.max_spent_tokens, 1024, 67108864);
    r.opt_uint("source_join_rate_per_s", jc.source_join_rate_per_s, 1, 10000000);
    r.opt_uint("source_join_burst", jc.source_join_burst, 1, 10000000);
    r.opt_uint("max_bindings_per_source", jc.max_bindings_per_source, 1, 100000000);
    std::string mode = "token+static";
    r.opt_string("mode", mode);
    if (mode != "token" && mode != "token+static")
        r.fail("mode", fmt::format("\"{}\": must be \"token\" (listeners join only by token) or \"token+static\" "
                                   "(operators may also register listeners)",
                                   mode));
    jc.static_listeners = mode == "token+static";
    if (!jc.static_listeners && jc.keys.empty()) r.fail("mode", "\"token\" without join.keys: nobody could listen");
}

// The IPv6 keys of a [[port]] (issue 15; docs/profiles.md "IPv6"): all
// optional; the same rules as their IPv4 twins, in IPv6's terms.
void read_port_ipv6(const context& c, const table_reader& r, const profile& p, port_config& port) {
    const auto* ip_node = r.find("ipv6");
    for (const char* key : {"gateway6", "gateway6_mac", "gateway6_learnt"})
        if (const auto* n = r.find(key); n != nullptr && ip_node == nullptr)
            c.fail(*n, r.key_path(key), "set only together with ipv6");
    if (ip_node == nullptr) return;
    const auto ip_path = r.key_path("ipv6");
    const auto text = read_string(c, *ip_node, ip_path);
    const auto slash = text.rfind('/');
    const auto ip = slash == std::string::npos ? std::nullopt : parse_ipv6(std::string_view(text).substr(0, slash));
    const auto prefix = slash == std::string::npos ? std::nullopt : parse_uint(std::string_view(text).substr(slash + 1));
    if (!ip || !prefix)
        c.fail(*ip_node, ip_path, fmt::format("\"{}\" is not ADDRESS/PREFIX (e.g. \"2001:db8::1/64\")", text));
    // Up to /127 (RFC 6164 point-to-point links); /128 would leave no
    // neighbour on the link, so nothing could be reached.
    if (*prefix < 8 || *prefix > 127)
        c.fail(*ip_node, ip_path, fmt::format("prefix length {} is out of range 8..127", *prefix));
    if (auto why = ipv6_special(*ip))
        c.fail(*ip_node, ip_path, fmt::format("{} cannot be the relay's address: {}", format_ipv6(*ip), *why));
    // The Subnet-Router anycast address (RFC 4291 2.6.1): all host bits 0.
    if (ipv6_is_subnet_router_anycast(*ip, *prefix))
        c.fail(*ip_node, ip_path, fmt::format("{} is the subnet-router anycast address of {}", format_ipv6(*ip),
                                              cidr6(*ip, *prefix)));
    for (const auto& other : p.ports)
        if (other.ipv6 && ipv6_same_prefix(*ip, *other.ipv6, std::min(*prefix, other.prefix6_len)))
            c.fail(*ip_node, ip_path, fmt::format("prefix {} overlaps port \"{}\" prefix {}", cidr6(*ip, *prefix),
                                                  other.name, cidr6(*other.ipv6, other.prefix6_len)));
    port.ipv6 = *ip;
    port.prefix6_len = *prefix;

    if (const auto* n = r.find("gateway6")) {
        const auto path = r.key_path("gateway6");
        const auto gtext = read_string(c, *n, path);
        const auto gw = parse_ipv6(gtext);
        if (!gw) c.fail(*n, path, fmt::format("\"{}\" is not an IPv6 address", gtext));
        // Resolved by neighbour discovery on this port: on-link, i.e. in the
        // prefix or link-local (what routers usually advertise).
        if (!ipv6_is_link_local(*gw)) {
            if (auto why = ipv6_special(*gw))
                c.fail(*n, path, fmt::format("{} cannot be a next hop: {}", format_ipv6(*gw), *why));
            if (!ipv6_same_prefix(*gw, *ip, *prefix))
                c.fail(*n, path, fmt::format("{} is neither link-local nor in the port's prefix {}", format_ipv6(*gw),
                                             cidr6(*ip, *prefix)));
            // Every router of the link answers it: not one next hop.
            if (ipv6_is_subnet_router_anycast(*gw, *prefix))
                c.fail(*n, path, fmt::format("{} is the subnet-router anycast address of {}", format_ipv6(*gw),
                                             cidr6(*ip, *prefix)));
        }
        if (*gw == *ip) c.fail(*n, path, "the gateway cannot be the port's own address");
        port.gateway6 = *gw;
    }
    if (const auto* n = r.find("gateway6_mac")) {
        if (!port.gateway6) c.fail(*n, r.key_path("gateway6_mac"), "set only together with gateway6");
        port.gateway6_mac = read_unicast_mac(c, *n, r.key_path("gateway6_mac"), "a next hop");
    }
    if (const auto* n = r.find("gateway6_learnt")) {
        const auto path = r.key_path("gateway6_learnt");
        // read_bool, not toml++'s value<bool>(), which turns any integer
        // into a boolean (gateway6_learnt = 0 read as false, 2 as true).
        const bool v = read_bool(c, *n, path);
        if (v && !port.gateway6) c.fail(*n, path, "set only together with gateway6");
        if (v && port.gateway6_mac)
            c.fail(*n, path, "the gateway is either pinned (gateway6_mac) or learnt, not both");
        port.gateway6_learnt = v;
    }
    // As for IPv4: one advertisement about the gateway could redirect every
    // off-link IPv6 listener, so a deployment says how its MAC is known.
    if (port.gateway6 && !port.gateway6_mac && !port.gateway6_learnt)
        c.fail(*r.find("gateway6"), r.key_path("gateway6"),
               "set gateway6_mac (pinned, recommended) or gateway6_learnt = true (learnt by neighbour discovery, "
               "see docs/security.md)");
}

void read_port(const context& c, const table_reader& r, const profile& p, port_config& port) {
    port.name = r.req_string("name");
    if (port.name.empty()) r.fail("name", "must not be empty");
    for (const auto& other : p.ports)
        if (other.name == port.name) r.fail("name", fmt::format("port name \"{}\" is used twice", port.name));

    port.device = r.req_string("device");
    const bool is_vdev = std::any_of(p.eal.vdevs.begin(), p.eal.vdevs.end(),
                                     [&](const std::string& v) { return vdev_name(v) == port.device; });
    const bool is_pci = std::find(p.eal.pci_allow.begin(), p.eal.pci_allow.end(), port.device) !=
                        p.eal.pci_allow.end();
    if (!is_vdev && !is_pci)
        r.fail("device", fmt::format("\"{}\" is neither a vdev name in eal.vdevs nor an address in "
                                     "eal.pci_allow",
                                     port.device));
    for (const auto& other : p.ports)
        if (other.device == port.device)
            r.fail("device", fmt::format("device {} is already used by port \"{}\"", port.device, other.name));

    r.opt_uint("rx_queues", port.rx_queues, 1, max_queues);
    r.opt_uint("tx_queues", port.tx_queues, 1, max_queues);
    // Each worker lcore (fan-out, and RX: ARP/ICMP replies, requests) owns
    // one TX queue on every port so TX needs no lock. stentord used to find
    // this out only at start ("worker lcores each need their own TX queue").
    std::set<unsigned> workers(p.dataplane.rx_lcores.begin(), p.dataplane.rx_lcores.end());
    workers.insert(p.dataplane.fanout_lcores.begin(), p.dataplane.fanout_lcores.end());
    if (port.tx_queues < workers.size())
        r.fail("tx_queues", fmt::format("{} TX queues for {} worker lcores (rx_lcores and fanout_lcores); each "
                                        "owns one",
                                        port.tx_queues, workers.size()));
    // RX lcore j polls queue j of every port. stentord found a missing one
    // only after EAL was up ("port p0: rx_queues=1 but 2 rx lcores"), with
    // no file or line, while --check passed the profile.
    if (port.rx_queues < p.dataplane.rx_lcores.size())
        r.fail("rx_queues", fmt::format("{} RX queues for {} rx lcores; rx lcore j polls queue j of every port",
                                        port.rx_queues, p.dataplane.rx_lcores.size()));
    for (const char* key : {"rx_desc", "tx_desc"}) {
        unsigned& d = std::string_view(key) == "rx_desc" ? port.rx_desc : port.tx_desc;
        r.opt_uint(key, d, min_desc, max_desc);
        // PMDs round or refuse other sizes; refuse here with a clear message.
        if ((d & (d - 1)) != 0) r.fail(key, fmt::format("{} is not a power of two", d));
    }
    r.opt_uint("mtu", port.mtu, min_mtu, max_mtu);
    if (port.mtu + mtu_frame_overhead > mbuf_frame_room)
        r.fail("mtu", fmt::format("{} needs receive buffers of up to {} bytes (MTU + Ethernet header, FCS and two "
                                  "VLAN tags) but one mbuf holds {}: frames would arrive in several segments, "
                                  "which the relay drops; at most {}",
                                  port.mtu, port.mtu + mtu_frame_overhead, mbuf_frame_room,
                                  mbuf_frame_room - mtu_frame_overhead));

    const auto& ip_node = r.require("ipv4");
    const auto ip_path = r.key_path("ipv4");
    const auto ip_text = read_string(c, ip_node, ip_path);
    const auto ip_prefix = address_and_number(ip_text, '/');
    if (!ip_prefix)
        c.fail(ip_node, ip_path,
               fmt::format("\"{}\" is not ADDRESS/PREFIX (e.g. \"198.18.0.1/24\")", ip_text));
    const auto [ip, prefix] = *ip_prefix;
    if (prefix < 1 || prefix > 32)
        c.fail(ip_node, ip_path, fmt::format("prefix length {} is out of range 1..32", prefix));
    if (auto why = ipv4_special(ip))
        c.fail(ip_node, ip_path, fmt::format("{} cannot be the relay's address", *why));
    const uint32_t mask = mask_of(prefix);
    if (has_broadcast(prefix) && (ip & ~mask) == 0)
        c.fail(ip_node, ip_path, fmt::format("{} is the network address of {}", format_ipv4(ip), cidr(ip, prefix)));
    if (has_broadcast(prefix) && (ip | mask) == 0xffffffffu)
        c.fail(ip_node, ip_path,
               fmt::format("{} is the broadcast address of {}", format_ipv4(ip), cidr(ip, prefix)));
    // Overlapping subnets would make the egress port of a listener ambiguous.
    for (const auto& other : p.ports) {
        const uint32_t m = mask_of(std::min(prefix, other.prefix_len));
        if ((ip & m) == (other.ipv4 & m))
            c.fail(ip_node, ip_path,
                   fmt::format("subnet {} overlaps port \"{}\" subnet {}", cidr(ip, prefix), other.name,
                               cidr(other.ipv4, other.prefix_len)));
    }
    port.ipv4 = ip;
    port.prefix_len = prefix;

    if (const auto* n = r.find("gateway")) {
        const auto path = r.key_path("gateway");
        const auto gw = read_ipv4(c, *n, path);
        // A prefix wide enough puts 127.0.0.1 or 224.0.0.1 on-link: the
        // relay would ARP for it and send every off-link listener's audio
        // there. The IPv6 gateway meets ipv6_special alike.
        if (auto why = ipv4_special(gw))
            c.fail(*n, path, fmt::format("{} cannot be a next hop: {}", format_ipv4(gw), *why));
        // The gateway is resolved by ARP on this port, so it must be on-link.
        if ((gw & mask) != (ip & mask))
            c.fail(*n, path, fmt::format("{} is outside the port's subnet {}", format_ipv4(gw), cidr(ip, prefix)));
        if (gw == ip) c.fail(*n, path, "the gateway cannot be the port's own address");
        if (has_broadcast(prefix) && ((gw & ~mask) == 0 || (gw | mask) == 0xffffffffu))
            c.fail(*n, path, fmt::format("{} is the network or broadcast address of {}", format_ipv4(gw),
                                         cidr(ip, prefix)));
        port.gateway = gw;
    }
    if (const auto* n = r.find("mac")) port.mac = read_unicast_mac(c, *n, r.key_path("mac"), "a port address");
    if (const auto* n = r.find("gateway_mac")) {
        if (!port.gateway) c.fail(*n, r.key_path("gateway_mac"), "set only together with gateway");
        port.gateway_mac = read_unicast_mac(c, *n, r.key_path("gateway_mac"), "a next hop");
    }
    if (const auto* n = r.find("gateway_learnt")) {
        const auto path = r.key_path("gateway_learnt");
        // Strict, as every boolean (docs/profiles.md "Types are strict"):
        // toml++'s value<bool>() reads any integer as a boolean.
        const bool v = read_bool(c, *n, path);
        if (v && !port.gateway) c.fail(*n, path, "set only together with gateway");
        if (v && port.gateway_mac) c.fail(*n, path, "the gateway is either pinned (gateway_mac) or learnt, not both");
        port.gateway_learnt = v;
    }
    // One ARP frame about the gateway could redirect every off-link
    // listener: a deployment says how its gateway's MAC is known.
    if (port.gateway && !port.gateway_mac && !port.gateway_learnt)
        c.fail(*r.find("gateway"), r.key_path("gateway"),
               "set gateway_mac (pinned, recommended) or gateway_learnt = true (learnt by ARP, see docs/security.md)");
    r.opt_uint("line_rate_mbps", port.line_rate_mbps, 0, max_line_rate_mbps);
    r.opt_uint("dscp", port.dscp, 0, 63);
    read_port_ipv6(c, r, p, port);
}

// The one mbuf pool (eal.mbufs) feeds every RX ring and every replica the
// fan-out builds, and what a TX ring has sent stays out of it until the NIC
// frees it. PCI PMDs (i40e, ice, mlx5) fill each RX ring from the pool at
// rte_eth_dev_start: a pool smaller than its rings failed the start with
// "port ...: start: Cannot allocate memory", naming no setting, and one just
// large enough leaves nothing for replicas (drop/egress/nombuf). The floor is
// DPDK's own sizing (examples/l3fwd NB_MBUF): every RX and TX descriptor,
// a burst per lcore and port, and every lcore's cache.
void check_pool_fits_rings(const context& c, const toml::table& root, const profile& p) {
    const uint64_t lcores = p.eal.lcores.size();
    uint64_t rx = 0, tx = 0;
    for (const auto& port : p.ports) {
        rx += uint64_t{port.rx_queues} * port.rx_desc;
        tx += uint64_t{port.tx_queues} * port.tx_desc;
    }
    const uint64_t bursts = p.ports.size() * lcores * p.dataplane.burst;
    const uint64_t caches = lcores * p.eal.mbuf_cache;
    const uint64_t need = rx + tx + bursts + caches;
    if (p.eal.mbufs >= need) return;
    const auto* n = root["eal"]["mbufs"].node();
    const auto* eal = root["eal"].node();
    c.fail(n != nullptr ? n->source() : eal != nullptr ? eal->source() : root.source(), "eal.mbufs",
           fmt::format("{} mbufs cannot serve the rings that draw on them: {} RX and {} TX descriptors, {} for a burst "
                       "per lcore and port, {} in the lcores' caches need {}; raise eal.mbufs (e.g. {}) or lower the "
                       "ports' rx_desc, tx_desc or queues",
                       p.eal.mbufs, rx, tx, bursts, caches, need, (std::bit_ceil(need + 1)) - 1));
}

void read_ports(const context& c, const toml::table& root, profile& p) {
    const auto* n = root.get("port");
    for_each_table(c, n, "port", [&](const toml::table& t, const std::string& path, size_t i) {
        if (i >= max_ports)
            c.fail(t.source(), path, fmt::format("at most {} ports are supported", max_ports));
        const table_reader r(c, t, t.source(), path,
                             {"name", "device", "rx_queues", "tx_queues", "rx_desc", "tx_desc", "mtu",
                              "ipv4", "gateway", "gateway_mac", "gateway_learnt", "mac", "line_rate_mbps", "dscp",
                              "ipv6", "gateway6", "gateway6_mac", "gateway6_learnt"});
        port_config port;
        read_port(c, r, p, port);
        p.ports.push_back(std::move(port));
    });
    if (p.ports.empty())
        c.fail(n != nullptr ? n->source() : root.source(), "port",
               "no ports: define at least one [[port]]");
    check_pool_fits_rings(c, root, p);
}

// A static section builds the API's session_params, speaker_spec and
// listener_spec and runs the same checks (check_session & co.); what is left
// here is what only a file has: required keys, the TOML types, duplicates
// within the file and the totals against the limits.
void read_sessions(const context& c, const toml::table& root, profile& p) {
    size_t speakers_total = 0;
    size_t listeners_total = 0;

    // Integers are read for their type only (anything an unsigned holds);
    // their ranges are the shared checks'.
    const auto uint_of = [&](const table_reader& r, std::string_view k, unsigned& out) {
        r.opt_uint(k, out, 0, u32_max);
    };
    // A static peer's address, either family (issue 15): IPv4 into *ip, IPv6 into *ip6.
    const auto ip_of = [&](const table_reader& r, uint32_t* ip, std::optional<ipv6_addr>* ip6) {
        const auto& n = r.require("ip");
        const auto text = read_string(c, n, r.key_path("ip"));
        if (const auto v4 = parse_ipv4(text)) {
            *ip = *v4;
        } else if (const auto v6 = parse_ipv6(text)) {
            *ip6 = *v6;
        } else {
            c.fail(n, r.key_path("ip"), fmt::format("\"{}\" is not a dotted-quad IPv4 address nor an IPv6 address", text));
        }
    };
    const auto checked = [](const table_reader& r, const std::optional<setting_error>& e) {
        if (e) r.fail(e->setting, e->reason);
    };

    for_each_table(c, root.get("session"), "session", [&](const toml::table& t, const std::string& path, size_t i) {
        const table_reader r(c, t, t.source(), path,
                             {"id", "name", "mode", "udp_port", "max_listeners", "recording", "frame_ms",
                              "max_bitrate_kbps", "speaker", "listener", "srtp_ingress", "srtp_egress", "srtp_key"});
        if (i >= p.limits.max_sessions)
            c.fail(t.source(), path, fmt::format("more than limits.max_sessions {} sessions", p.limits.max_sessions));
        session_config s;
        s.id = r.req_uint<uint32_t>("id", 1, u32_max);
        for (size_t j = 0; j < p.sessions.size(); ++j)
            if (p.sessions[j].id == s.id)
                r.fail("id", fmt::format("duplicate session id {} (also session[{}])", s.id, j));
        s.name = fmt::format("session-{}", s.id);
        // Not read_string: a name's characters, NUL included, meet the
        // rule the API applies too (check_session, display_text_problem).
        if (const auto* n = r.find("name")) {
            if (n->as_string() == nullptr) wrong_type(c, *n, r.key_path("name"), "a string");
            s.name = n->as_string()->get();
        }
        if (s.name.empty()) r.fail("name", "must not be empty");
        if (const auto* n = r.find("mode")) {
            const auto text = read_string(c, *n, r.key_path("mode"));
            const auto mode = parse_session_mode(text);
            if (!mode) r.fail("mode", fmt::format("\"{}\" is not a mode (forward or mix)", text));
            s.mode = *mode;
        }
        // Static sessions name their port (the API may leave it to the relay).
        s.udp_port = r.req_uint<unsigned>("udp_port", 1, 65535);
        uint_of(r, "max_listeners", s.max_listeners);
        r.opt_bool("recording", s.recording);
        uint_of(r, "frame_ms", s.frame_ms);
        uint_of(r, "max_bitrate_kbps", s.max_bitrate_kbps);
        if (const auto* n = r.find("srtp_ingress")) {
            const auto text = read_string(c, *n, r.key_path("srtp_ingress"));
            const auto m = parse_srtp_ingress(text);
            if (!m) r.fail("srtp_ingress", fmt::format("\"{}\" is not a mode (off or required)", text));
            s.srtp_ingress = *m;
        }
        if (const auto* n = r.find("srtp_egress")) {
            const auto text = read_string(c, *n, r.key_path("srtp_egress"));
            const auto m = parse_srtp_egress(text);
            if (!m) r.fail("srtp_egress", fmt::format("\"{}\" is not a mode (off or session_key)", text));
            s.srtp_egress = *m;
        }
        s.srtp_keys = read_srtp_keys(c, r, p.srtp);
        checked(r, check_session(s, p));
        // The UDP destination port is how ingress finds the session.
        for (size_t j = 0; j < p.sessions.size(); ++j)
            if (p.sessions[j].udp_port == s.udp_port)
                r.fail("udp_port", fmt::format("udp_port {} is already used by session[{}]", s.udp_port, j));

        for_each_table(c, r.find("speaker"), r.key_path("speaker"),
                       [&](const toml::table& st, const std::string& sp, size_t) {
            const table_reader sr(c, st, st.source(), sp, {"ip", "port", "ssrc", "srtp_key"});
            speaker_spec spk;
            ip_of(sr, &spk.ip, &spk.ip6);
            spk.port = sr.req_uint<unsigned>("port", 0, u32_max);
            if (const auto* n = sr.find("ssrc"))
                spk.ssrc = static_cast<uint32_t>(read_int(c, *n, sr.key_path("ssrc"), 0, u32_max));
            checked(sr, check_speaker(spk, p));
            checked(sr, check_speaker_ssrc(spk, s, p));
            for (const auto& o : s.speakers)
                if (o.ip == spk.ip && o.ip6 == spk.ip6 && o.port == spk.port)
                    c.fail(st.source(), sp, fmt::format("duplicate speaker {}", format_peer(spk.ip, spk.ip6, spk.port)));
            s.speakers.push_back(spk);
            s.speaker_srtp_keys.push_back(read_srtp_keys(c, sr, p.srtp));
        });
        speakers_total += s.speakers.size();
        if (speakers_total > p.limits.max_speakers)
            c.fail(t.source(), path, fmt::format("static speakers exceed limits.max_speakers {}", p.limits.max_speakers));

        const unsigned cap = s.max_listeners != 0 ? s.max_listeners : p.limits.max_listeners_per_session;
        std::set<std::tuple<uint32_t, std::optional<ipv6_addr>, unsigned>> seen;
        for_each_table(c, r.find("listener"), r.key_path("listener"),
                       [&](const toml::table& lt, const std::string& lp, size_t li) {
            if (!p.join.static_listeners)
                c.fail(lt.source(), lp, "a static listener, but join.mode = \"token\": listeners join by token");
            if (li >= cap)
                c.fail(lt.source(), r.key_path("listener"),
                       fmt::format("more static listeners than the session's max_listeners {}", cap));
            const table_reader lr(c, lt, lt.source(), lp, {"ip", "port", "tier"});
            listener_spec l;
            ip_of(lr, &l.ip, &l.ip6);
            l.port = lr.req_uint<unsigned>("port", 0, u32_max);
            uint_of(lr, "tier", l.tier);
            checked(lr, check_listener(l, p));
            if (!seen.emplace(l.ip, l.ip6, l.port).second)
                c.fail(lt.source(), lp, fmt::format("duplicate listener {}", format_peer(l.ip, l.ip6, l.port)));
            s.listeners.push_back(l);
        });
        listeners_total += s.listeners.size();
        if (listeners_total > p.limits.max_listeners)
            c.fail(t.source(), path, fmt::format("static listeners exceed limits.max_listeners {}", p.limits.max_listeners));
        p.sessions.push_back(std::move(s));
    });
}

bool fleet_name_ok(const std::string& s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' || ch == '.';
    });
}

// The host of an etcd URL ("https://[::1]:2379/" -> "::1"), lower case.
std::string url_host(const std::string& url) {
    const auto b = url.find("://") + 3;
    std::string rest = url.substr(b, url.find('/', b) == std::string::npos ? std::string::npos : url.find('/', b) - b);
    if (const auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
    std::string host;
    if (!rest.empty() && rest.front() == '[')
        host = rest.substr(1, rest.find(']') == std::string::npos ? std::string::npos : rest.find(']') - 1);
    else
        host = rest.substr(0, rest.find(':'));
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return host;
}

bool loopback_host(const std::string& host) {
    if (host == "localhost" || host == "::1") return true;
    const auto ip = parse_ipv4(host);
    return ip && (*ip >> 24) == 127;
}

// The Common Name of the first certificate of a PEM chain ("" if none),
// read with GnuTLS as control/tls_files.cc reads the API's.
std::string certificate_common_name(const std::string& pem) {
    const gnutls_datum_t data{reinterpret_cast<unsigned char*>(const_cast<char*>(pem.data())),
                              static_cast<unsigned>(pem.size())};
    gnutls_x509_crt_t crt = nullptr;
    if (gnutls_x509_crt_init(&crt) < 0) return {};
    std::string cn;
    if (gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_PEM) >= 0) {
        char buf[256];
        size_t len = sizeof buf;
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len) >= 0) cn.assign(buf, len);
    }
    gnutls_x509_crt_deinit(crt);
    return cn;
}

// A key or password file of the fleet's etcd access: besides the mode
// (checked where it is read), owned by the user stentord runs as or by root.
// Whoever owns a file may chmod it and rewrite it: a key another user owns
// is that user's to swap.
void check_secret_owner(const table_reader& r, std::string_view setting, const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) r.fail(setting, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
        r.fail(setting, fmt::format("{}: owned by uid {}, neither the user this runs as (uid {}) nor root: whoever owns "
                                    "it can rewrite it; chown it",
                                    path, static_cast<unsigned>(st.st_uid), static_cast<unsigned>(::geteuid())));
}

void absolute_path(const table_reader& r, std::string_view setting, const std::string& path) {
    if (path.empty() || path.front() != '/')
        r.fail(setting, fmt::format("\"{}\" is not an absolute path", path));
    if (path.size() > 3000) r.fail(setting, "path longer than 3000 characters");
}

// [fleet] etcd_ca, etcd_cert, etcd_key, etcd_user, etcd_password_file,
// allow_plaintext: how relays and directors reach etcd (docs/fleet.md
// "Running etcd securely"). https:// needs the CA; plain http:// is for
// loopback, or anywhere else only with allow_plaintext = true said
// explicitly: whoever can write the registry can aim trunks and take
// placements (docs/security.md).
void read_fleet_access(const context& c, const table_reader& r, const toml::array& urls, fleet_config& f) {
    auto& a = f.etcd.access;
    r.opt_bool("allow_plaintext", f.allow_plaintext);
    const bool tls = f.etcd.front().rfind("https://", 0) == 0;
    for (size_t i = 0; i < f.etcd.size(); ++i) {
        const bool this_tls = f.etcd[i].rfind("https://", 0) == 0;
        if (this_tls != tls)
            c.fail(*urls.get(i), index(r.key_path("etcd"), i),
                   fmt::format("\"{}\": every member is reached alike: all https:// or all http://", f.etcd[i]));
        if (!tls && !f.allow_plaintext && !loopback_host(url_host(f.etcd[i])))
            c.fail(*urls.get(i), index(r.key_path("etcd"), i),
                   fmt::format("\"{}\" is plain HTTP to a host that is not loopback: anyone on the way can read and "
                               "write the fleet's registry (aim trunks, take placements); use https:// with "
                               "fleet.etcd_ca (and etcd_cert/etcd_key or etcd_user), or say allow_plaintext = true",
                               f.etcd[i]));
    }
    if (tls && f.allow_plaintext)
        r.fail("allow_plaintext", "true, but the etcd URLs are https://: it is for plain http:// URLs only");
    r.opt_string("etcd_ca", a.ca_file);
    r.opt_string("etcd_cert", a.cert_file);
    r.opt_string("etcd_key", a.key_file);
    r.opt_string("etcd_user", a.user);
    r.opt_string("etcd_password_file", f.etcd_password_file);
    if (!tls) {
        for (const char* k : {"etcd_ca", "etcd_cert", "etcd_key"})
            if (r.find(k) != nullptr)
                r.fail(k, "set, but the etcd URLs are http://: TLS files are used with https:// URLs only");
    } else if (a.ca_file.empty()) {
        c.fail(*urls.get(0), r.key_path("etcd_ca"),
               "required with https:// etcd URLs: the CA (PEM) that signed etcd's certificate (only it is trusted, "
               "not the system's store)");
    }
    if (!a.ca_file.empty()) {
        absolute_path(r, "etcd_ca", a.ca_file);
        const pem_file ca = read_pem_file(a.ca_file, false);
        if (!ca.error.empty()) r.fail("etcd_ca", ca.error);
        if (ca.text.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
            r.fail("etcd_ca", fmt::format("{}: no PEM certificate in the file", a.ca_file));
    }
    if (!a.cert_file.empty() && a.key_file.empty())
        r.fail("etcd_cert", "set together with fleet.etcd_key (its private key)");
    if (!a.key_file.empty() && a.cert_file.empty())
        r.fail("etcd_key", "set together with fleet.etcd_cert (the certificate it belongs to)");
    if (!a.cert_file.empty()) {
        absolute_path(r, "etcd_cert", a.cert_file);
        absolute_path(r, "etcd_key", a.key_file);
        const pem_file cert = read_pem_file(a.cert_file, false);
        if (!cert.error.empty()) r.fail("etcd_cert", cert.error);
        pem_file key = read_pem_file(a.key_file, true);
        const wiped guard{key.text};
        if (!key.error.empty()) r.fail("etcd_key", key.error);
        check_secret_owner(r, "etcd_key", a.key_file);
        if (const auto bad = check_tls_pair(cert.text, key.text)) {
            const bool on_cert = bad->first == "tls_cert";
            std::string why = bad->second;
            if (why.find("is not the private key") != std::string::npos)
                why = "is not the private key of the certificate in fleet.etcd_cert (the first one of the file)";
            r.fail(on_cert ? "etcd_cert" : "etcd_key", fmt::format("{}: {}", on_cert ? a.cert_file : a.key_file, why));
        }
        // etcd (3.4 and later, embed/serve.go) with --client-cert-auth and
        // users refuses every JSON-gateway request whose client certificate
        // has a Common Name ("CommonName of client sending a request against
        // gateway will be ignored"): with a user, the certificate has none.
        if (r.find("etcd_user") != nullptr)
            if (const auto cn = certificate_common_name(cert.text); !cn.empty())
                r.fail("etcd_cert", fmt::format("{}: has a Common Name (\"{}\"): etcd with --client-cert-auth and users "
                                                "refuses it at its JSON gateway; issue it without one (e.g. -subj "
                                                "/O=stentor/OU=relay): the user is etcd_user",
                                                a.cert_file, cn));
    }
    if (!a.user.empty() && f.etcd_password_file.empty())
        r.fail("etcd_user", "set together with fleet.etcd_password_file (the file holding the user's password)");
    if (a.user.empty() && !f.etcd_password_file.empty())
        r.fail("etcd_password_file", "set together with fleet.etcd_user (the etcd user it is the password of)");
    if (r.find("etcd_user") != nullptr &&
        (a.user.empty() || a.user.size() > 128 ||
         !std::all_of(a.user.begin(), a.user.end(), [](char ch) { return ch > ' ' && ch < 0x7f; })))
        r.fail("etcd_user", fmt::format("\"{}\": must be 1..128 printable ASCII characters without spaces", a.user));
    if (!f.etcd_password_file.empty()) {
        absolute_path(r, "etcd_password_file", f.etcd_password_file);
        check_secret_owner(r, "etcd_password_file", f.etcd_password_file);
        std::string pw = read_secret_text(r, "etcd_password_file", f.etcd_password_file,
                                          "write the fleet's registry as this relay");
        if (pw.empty()) r.fail("etcd_password_file", fmt::format("{}: empty: no password in it", f.etcd_password_file));
        if (!std::all_of(pw.begin(), pw.end(), [](char ch) { return static_cast<unsigned char>(ch) >= ' ' && ch != 0x7f; })) {
            std::fill(pw.begin(), pw.end(), '\0');
            r.fail("etcd_password_file",
                   fmt::format("{}: holds a control character (a second line?): the password is the file's one line",
                               f.etcd_password_file));
        }
        a.password = fleet::make_secret(pw);
        std::fill(pw.begin(), pw.end(), '\0');
    }
}

// [fleet] trunk_key_file, allow_unauthenticated_trunks (docs/fleet.md
// "Trunk authentication"): the fleet's trunk key, read like the etcd
// password (absolute path, a small regular file of mode 0600 owned by this
// user or root), into wiped memory. Whether one is required is decided
// once the whole section is read (fleet_defaults).
void read_trunk_key(const table_reader& r, fleet_config& f) {
    r.opt_bool("allow_unauthenticated_trunks", f.allow_unauthenticated_trunks);
    if (r.find("trunk_key_file") == nullptr) return;
    r.opt_string("trunk_key_file", f.trunk_key_file);
    if (f.allow_unauthenticated_trunks)
        r.fail("allow_unauthenticated_trunks",
               "true, but fleet.trunk_key_file is set: trunks are authenticated with its key; keep one of the two");
    absolute_path(r, "trunk_key_file", f.trunk_key_file);
    check_secret_owner(r, "trunk_key_file", f.trunk_key_file);
    std::string text = read_secret_text(r, "trunk_key_file", f.trunk_key_file,
                                        "send audio into every trunk of the fleet");
    const wiped guard{text};
    std::string why;
    const auto key = fleet::parse_trunk_secret(text, &why);
    if (!key) r.fail("trunk_key_file", fmt::format("{}: {}", f.trunk_key_file, why));
    secure_bytes b(key->bytes.size());
    std::memcpy(b.data(), key->bytes.data(), key->bytes.size());
    f.trunk_key = std::make_shared<const secure_bytes>(std::move(b));
}

// [fleet]: the etcd endpoints and key prefix (relays and directors), and what
// a relay registers (relay_id, role, region, lease, advertised addresses).
void read_fleet(const context& c, const toml::table& root, fleet_config& f, bool relay) {
    const auto* present = root.get("fleet");
    const auto r = relay ? section(c, root, "fleet",
                                   {"etcd", "prefix", "relay_id", "role", "region", "lease_ttl_s", "refresh_ms",
                                    "advertise", "drain_s", "trunk_idle_s", "trunk_family", "trunk_peers", "etcd_ca",
                                    "etcd_cert", "etcd_key", "etcd_user", "etcd_password_file", "allow_plaintext",
                                    "trunk_key_file", "allow_unauthenticated_trunks",
                                    "max_trunk_sends_per_session"})
                         : section(c, root, "fleet",
                                   {"etcd", "prefix", "etcd_ca", "etcd_cert", "etcd_key", "etcd_user",
                                    "etcd_password_file", "allow_plaintext"});
    if (present == nullptr) {
        if (!relay) c.fail(root.source(), "fleet", "required section is missing (etcd endpoints)");
        return;
    }
    f.enabled = true;
    const auto& en = r.require("etcd");
    const auto* arr = en.as_array();
    if (arr == nullptr || arr->empty()) wrong_type(c, en, r.key_path("etcd"), "a non-empty array of URLs");
    for (size_t i = 0; i < arr->size(); ++i) {
        const auto p = index(r.key_path("etcd"), i);
        auto url = read_string(c, *arr->get(i), p);
        const size_t scheme = url.rfind("https://", 0) == 0 ? 8 : url.rfind("http://", 0) == 0 ? 7 : 0;
        if (scheme == 0 || url.size() <= scheme || url.size() > 256 ||
            url.find_first_of(" \t\r\n") != std::string::npos || url.find('@') != std::string::npos)
            c.fail(*arr->get(i), p,
                   fmt::format("\"{}\" is not an https:// or http:// URL (e.g. \"https://etcd-1:2379\")", url));
        f.etcd.push_back(std::move(url));
    }
    read_fleet_access(c, r, *arr, f);
    r.opt_string("prefix", f.prefix);
    if (f.prefix.size() < 2 || f.prefix.size() > 128 || f.prefix.front() != '/' || f.prefix.back() == '/' ||
        !std::all_of(f.prefix.begin() + 1, f.prefix.end(), [](char ch) {
            return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' || ch == '.' || ch == '/';
        }))
        r.fail("prefix", fmt::format("\"{}\": must start with '/', not end with one, and hold only [A-Za-z0-9._/-] "
                                     "(2..128 characters)",
                                     f.prefix));
    if (!relay) return;
    f.relay_id = r.req_string("relay_id");
    if (!fleet_name_ok(f.relay_id)) r.fail("relay_id", "must be 1..64 characters of [A-Za-z0-9._-]");
    f.role = r.req_string("role");
    if (f.role != "origin" && f.role != "edge")
        r.fail("role", fmt::format("\"{}\": must be \"origin\" (takes speakers) or \"edge\" (serves listeners)", f.role));
    r.opt_string("region", f.region);
    if (!f.region.empty() && !fleet_name_ok(f.region)) r.fail("region", "must be 1..64 characters of [A-Za-z0-9._-]");
    r.opt_uint("lease_ttl_s", f.lease_ttl_s, 1, 60);
    r.opt_uint("refresh_ms", f.refresh_ms, 50, 10000);
    r.opt_uint("drain_s", f.drain_s, 0, 3600);
    r.opt_uint("trunk_idle_s", f.trunk_idle_s, 0, 86400);
    r.opt_uint("max_trunk_sends_per_session", f.max_trunk_sends_per_session, 1, 4096);
    // Three keep-alives per TTL: one lost answer does not cost the lease.
    if (f.refresh_ms * 3 > f.lease_ttl_s * 1000)
        r.fail("refresh_ms", fmt::format("{} ms leaves fewer than 3 refreshes per lease_ttl_s ({} s)", f.refresh_ms,
                                         f.lease_ttl_s));
    if (const auto* n = r.find("advertise")) {
        // Either family: IPv4 addresses are where joins go (and IPv4
        // trunks), IPv6 ones what IPv6 trunks use (docs/fleet.md).
        const auto* a = n->as_array();
        if (a == nullptr) wrong_type(c, *n, r.key_path("advertise"), "an array of IPv4 or IPv6 addresses");
        for (size_t i = 0; i < a->size(); ++i) {
            const auto p = index(r.key_path("advertise"), i);
            const auto s = read_string(c, *a->get(i), p);
            if (const auto ip = parse_ipv4(s)) {
                // The rule docs/profiles.md states and the IPv6 branch below
                // applies; only 0.0.0.0 was refused, so 127.0.0.1, 224.0.0.1
                // or 255.255.255.255 went into the registry as where joins
                // and trunks go.
                if (auto why = ipv4_special(*ip))
                    c.fail(*a->get(i), p, fmt::format("{} cannot be advertised: {}", s, *why));
                f.advertise.push_back(*ip);
            } else if (const auto ip6 = parse_ipv6(s)) {
                if (auto why = ipv6_special(*ip6))
                    c.fail(*a->get(i), p, fmt::format("{} cannot be advertised: {}", format_ipv6(*ip6), *why));
                f.advertise6.push_back(*ip6);
            } else {
                c.fail(*a->get(i), p, fmt::format("\"{}\" is not an IPv4 or IPv6 address", s));
            }
        }
    }
    if (const auto* n = r.find("trunk_peers")) {
        // Networks, not hosts: docs/fleet.md "Who a trunk may reach".
        const auto* a = n->as_array();
        if (a == nullptr) wrong_type(c, *n, r.key_path("trunk_peers"), "an array of IPv4 or IPv6 networks (CIDR)");
        if (a->empty())
            c.fail(*n, r.key_path("trunk_peers"),
                   "empty: no trunk could go or come anywhere; list the networks the fleet's relays are on "
                   "(e.g. [\"10.20.0.0/16\"])");
        for (size_t i = 0; i < a->size(); ++i) {
            const auto p = index(r.key_path("trunk_peers"), i);
            const auto s = read_string(c, *a->get(i), p);
            std::string why;
            const auto net = fleet::parse_peer_net(s, &why);
            if (!net) c.fail(*a->get(i), p, fmt::format("\"{}\": {}", s, why));
            f.trunk_peers.push_back(*net);
        }
    }
    read_trunk_key(r, f);
    if (const auto* n = r.find("trunk_family")) {
        f.trunk_family = read_string(c, *n, r.key_path("trunk_family"));
        if (f.trunk_family != "ipv4" && f.trunk_family != "ipv6" && f.trunk_family != "auto")
            r.fail("trunk_family", fmt::format("\"{}\": must be \"ipv4\", \"ipv6\" (trunks to this relay over IPv6) "
                                               "or \"auto\" (IPv6 when both ends advertise an IPv6 address)",
                                               f.trunk_family));
    }
}

// After the ports are read: what a fleet relay advertises by default (every
// port's addresses of both families) and whether its trunk family can work.
void fleet_defaults(const toml::table& root, const context& c, profile& p) {
    auto& f = p.fleet;
    if (root["fleet"]["advertise"].node() == nullptr) {
        for (const auto& port : p.ports) {
            f.advertise.push_back(port.ipv4);
            if (port.ipv6) f.advertise6.push_back(*port.ipv6);
        }
    }
    if (root["fleet"]["trunk_peers"].node() == nullptr) {
        // Required rather than defaulted (docs/fleet.md "Who a trunk may
        // reach"): the ports' subnets would silently cut a fleet spread over
        // routed networks, and "anywhere" would leave the hole open.
        std::string subnets;
        for (const auto& port : p.ports) {
            subnets += fmt::format("{}\"{}\"", subnets.empty() ? "" : ", ", cidr(port.ipv4, port.prefix_len));
            if (port.ipv6) subnets += fmt::format(", \"{}\"", cidr6(*port.ipv6, port.prefix6_len));
        }
        c.fail(root["fleet"].node()->source(), "fleet.trunk_peers",
               fmt::format("required setting is missing: the networks the fleet's relays are on, the only addresses "
                           "trunks may go to or come from (this relay's own subnets would be [{}])",
                           subnets));
    }
    if (f.trunk_family == "ipv6" && f.advertise6.empty()) {
        const auto* n = root["fleet"]["trunk_family"].node();
        c.fail(n->source(), "fleet.trunk_family",
               "\"ipv6\" but the relay advertises no IPv6 address: give a port an ipv6 address or list one in "
               "fleet.advertise");
    }
    // Secure by default, like trunk_peers and plain-HTTP etcd: trunks are
    // authenticated unless the profile says explicitly that they are not.
    if (!f.trunk_key && !f.allow_unauthenticated_trunks)
        c.fail(root["fleet"].node()->source(), "fleet.trunk_key_file",
               "required setting is missing: the file holding the fleet's trunk key (32 random bytes as 64 hex digits, "
               "the same file on every relay, mode 0600: openssl rand -hex 32), without which whoever can send from "
               "an origin's address puts audio into every listener of its edges; or say "
               "fleet.allow_unauthenticated_trunks = true");
}

void read_director(const context& c, const toml::table& root, director_config& d) {
    const auto r = section(c, root, "director",
                           {"listen", "director_id", "stale_s", "hold_ms", "max_per_request", "threads", "token",
                            "token_file", "max_connections", "max_connections_per_ip", "idle_timeout_s",
                            "header_timeout_s", "tls_cert", "tls_key", "plain_http"});
    if (const auto* n = r.find("listen")) {
        const auto s = read_string(c, *n, r.key_path("listen"));
        const auto at = address_and_number(s, ':');
        if (!at || at->second == 0 || at->second > 65535)
            c.fail(*n, r.key_path("listen"), fmt::format("\"{}\" is not ADDRESS:PORT (e.g. \"127.0.0.1:8090\")", s));
        d.listen_addr = format_ipv4(at->first);
        d.listen_port = at->second;
    }
    d.director_id = r.req_string("director_id");
    if (!fleet_name_ok(d.director_id)) r.fail("director_id", "must be 1..64 characters of [A-Za-z0-9._-]");
    r.opt_uint("stale_s", d.stale_s, 1, 3600);
    r.opt_uint("hold_ms", d.hold_ms, 100, 600000);
    r.opt_uint("max_per_request", d.max_per_request, 1, 1000000);
    r.opt_uint("threads", d.threads, 1, 64);
    // It hands out join tokens: nobody may ask without the bearer token.
    r.opt_string("token", d.token);
    const std::string tk = read_bearer_token(r, d.token, d.token_file, "place listeners and take their join tokens");
    if (d.token.empty()) r.fail("token", "required (or token_file): a director hands out join tokens");
    if (d.token.size() < 16 || !std::all_of(d.token.begin(), d.token.end(), [](char ch) { return ch > ' ' && ch < 127; }))
        r.fail(tk, "must be at least 16 printable characters (no spaces)");
    read_conn_limits(r, "director", d.max_connections, d.max_connections_per_ip, d.idle_timeout_s, d.header_timeout_s);
    r.opt_string("tls_cert", d.tls_cert);
    r.opt_string("tls_key", d.tls_key);
    r.opt_bool("plain_http", d.plain_http);
    check_http_transport(r, {"director", "the director", d.listen_addr, d.listen_port, d.tls_cert, d.tls_key,
                             d.plain_http, false});
}

}  // namespace

namespace {

void flatten(const toml::node& n, const std::string& path, std::map<std::string, std::string>& out) {
    if (const auto* t = n.as_table()) {
        for (const auto& [k, v] : *t) flatten(v, path.empty() ? std::string(k.str()) : path + "." + std::string(k.str()), out);
    } else if (const auto* a = n.as_array(); a != nullptr && !a->empty() && a->is_array_of_tables()) {
        for (size_t i = 0; i < a->size(); ++i) flatten(*a->get(i), path + "[" + std::to_string(i) + "]", out);
    } else {
        std::ostringstream os;
        n.visit([&os](const auto& v) { os << toml::json_formatter{v}; });
        out[path] = os.str();
    }
}

}  // namespace

std::vector<std::string> changed_settings(std::string_view old_text, std::string_view new_text) {
    std::map<std::string, std::string> a, b;
    flatten(toml::parse(old_text), "", a);
    flatten(toml::parse(new_text), "", b);
    std::vector<std::string> out;
    for (const auto& [k, v] : a)
        if (auto it = b.find(k); it == b.end() || it->second != v) out.push_back(k);
    for (const auto& [k, v] : b)
        if (!a.count(k)) out.push_back(k);
    std::sort(out.begin(), out.end());
    return out;
}

namespace {

bool same_bytes(const std::shared_ptr<const secure_bytes>& a, const std::shared_ptr<const secure_bytes>& b) {
    if (!a || !b) return !a && !b;
    return a->size() == b->size() && std::equal(a->data(), a->data() + a->size(), b->data());
}

// SRTP keys of one static session or speaker: under the same key_file (and
// position), other key bytes.
void srtp_key_changes(const std::vector<srtp_key_config>& running, const std::vector<srtp_key_config>& next,
                      const std::string& path, std::vector<std::string>& out) {
    for (size_t j = 0; j < next.size() && j < running.size(); ++j)
        if (running[j].key_file == next[j].key_file && !same_bytes(running[j].master, next[j].master))
            out.push_back(fmt::format("{}.srtp_key[{}].key_file", path, j));
}

}  // namespace

std::vector<std::string> secret_file_changes(const profile& running, const profile& next) {
    std::vector<std::string> out;
    if (!next.api.token_file.empty() && next.api.token_file == running.api.token_file &&
        next.api.token != running.api.token)
        out.push_back("api.token_file");
    // A renewed certificate (certbot and the like, then `systemctl reload`)
    // is served only after a restart: say so instead of "nothing changed".
    if (!next.api.tls_cert.empty() && next.api.tls_cert == running.api.tls_cert &&
        next.api.tls_cert_digest != running.api.tls_cert_digest)
        out.push_back("api.tls_cert");
    if (!next.api.tls_key.empty() && next.api.tls_key == running.api.tls_key &&
        next.api.tls_key_digest != running.api.tls_key_digest)
        out.push_back("api.tls_key");
    if (!next.fleet.trunk_key_file.empty() && next.fleet.trunk_key_file == running.fleet.trunk_key_file &&
        !same_bytes(next.fleet.trunk_key, running.fleet.trunk_key))
        out.push_back("fleet.trunk_key_file");
    const auto& pw_next = next.fleet.etcd.access.password;
    const auto& pw_running = running.fleet.etcd.access.password;
    if (!next.fleet.etcd_password_file.empty() && next.fleet.etcd_password_file == running.fleet.etcd_password_file &&
        (!pw_next || !pw_running || *pw_next != *pw_running))
        out.push_back("fleet.etcd_password_file");
    for (size_t i = 0; i < next.sessions.size() && i < running.sessions.size(); ++i) {
        const auto& a = running.sessions[i];
        const auto& b = next.sessions[i];
        const auto path = fmt::format("session[{}]", i);
        srtp_key_changes(a.srtp_keys, b.srtp_keys, path, out);
        for (size_t k = 0; k < b.speaker_srtp_keys.size() && k < a.speaker_srtp_keys.size(); ++k)
            srtp_key_changes(a.speaker_srtp_keys[k], b.speaker_srtp_keys[k], fmt::format("{}.speaker[{}]", path, k),
                             out);
    }
    return out;
}

std::optional<uint32_t> parse_ipv4(std::string_view s) {
    // Strict dotted quad: inet_aton's octal ("010") and short forms ("10.1")
    // are refused because an operator never means them.
    uint32_t ip = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (s.empty() || s.front() != '.') return std::nullopt;
            s.remove_prefix(1);
        }
        size_t len = 0;
        while (len < s.size() && len < 4 && s[len] >= '0' && s[len] <= '9') ++len;
        if (len == 0 || len > 3 || (len > 1 && s[0] == '0')) return std::nullopt;
        unsigned v = 0;
        std::from_chars(s.data(), s.data() + len, v);
        if (v > 255) return std::nullopt;
        ip = (ip << 8) | v;
        s.remove_prefix(len);
    }
    if (!s.empty()) return std::nullopt;
    return ip;
}

std::string format_ipv4(uint32_t ip) {
    return fmt::format("{}.{}.{}.{}", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

std::optional<std::string> check_listener_ip(uint32_t ip, const profile& p) {
    // Anything but a plain remote unicast host would turn the relay into a
    // reflector (broadcast, multicast) or loop traffic back into itself.
    if (auto why = ipv4_special(ip)) return why;
    for (const auto& port : p.ports) {
        if (ip == port.ipv4) return fmt::format("the relay's own address (port \"{}\")", port.name);
        if (!has_broadcast(port.prefix_len)) continue;
        const uint32_t mask = mask_of(port.prefix_len);
        if ((ip & mask) != (port.ipv4 & mask)) continue;
        if ((ip | mask) == 0xffffffffu)
            return fmt::format("directed broadcast address of port \"{}\" subnet {}", port.name,
                               cidr(port.ipv4, port.prefix_len));
        if ((ip & ~mask) == 0)
            return fmt::format("network address of port \"{}\" subnet {}", port.name,
                               cidr(port.ipv4, port.prefix_len));
    }
    return std::nullopt;
}

std::optional<setting_error> check_session(const session_params& s, const profile& p) {
    if (s.name.size() > max_session_name)
        return setting_error{"name", fmt::format("longer than {} characters", max_session_name)};
    if (auto why = display_text_problem(s.name))
        return setting_error{"name", *why + ": names are shown in logs, tables and JSON as they are"};
    if (std::find(opus_frame_ms.begin(), opus_frame_ms.end(), s.frame_ms) == opus_frame_ms.end())
        return setting_error{"frame_ms",
                             fmt::format("{} is not an Opus frame duration (5, 10, 20, 40, 60, 120)", s.frame_ms)};
    if (s.max_bitrate_kbps < min_opus_kbps || s.max_bitrate_kbps > max_opus_kbps)
        return setting_error{"max_bitrate_kbps", fmt::format("{} is out of range {}..{} (Opus)", s.max_bitrate_kbps,
                                                             min_opus_kbps, max_opus_kbps)};
    if (s.udp_port != 0 && (s.udp_port < p.ingress.udp_port_min || s.udp_port > p.ingress.udp_port_max))
        return setting_error{"udp_port", fmt::format("{} is outside the ingress range {}..{}", s.udp_port,
                                                     p.ingress.udp_port_min, p.ingress.udp_port_max)};
    if (s.max_listeners > p.limits.max_listeners_per_session)
        return setting_error{"max_listeners", fmt::format("{} is above limits.max_listeners_per_session {}",
                                                          s.max_listeners, p.limits.max_listeners_per_session)};
    return std::nullopt;
}

namespace {

std::optional<setting_error> check_peer(std::string_view role, uint32_t ip, unsigned port, const profile& p) {
    if (auto why = check_listener_ip(ip, p))
        return setting_error{"ip", fmt::format("{} address {} refused: {}", role, format_ipv4(ip), *why)};
    if (port == 0 || port > 65535) return setting_error{"port", fmt::format("{} is out of range 1..65535", port)};
    return std::nullopt;
}

}  // namespace

std::optional<setting_error> check_peer6(std::string_view role, const ipv6_addr& ip, unsigned port, const profile& p) {
    const auto refused = [&](const std::string& why) {
        return setting_error{"ip", fmt::format("{} address {} refused: {}", role, format_ipv6(ip), why)};
    };
    if (auto why = ipv6_peer_refusal(ip)) return refused(*why);
    for (const auto& pc : p.ports) {
        if (!pc.ipv6) continue;
        if (*pc.ipv6 == ip) return refused(fmt::format("the relay's own address (port \"{}\")", pc.name));
        // IPv4 refuses a subnet's network address; its IPv6 twin is an
        // anycast address that every router of the link answers.
        if (ipv6_same_prefix(ip, *pc.ipv6, pc.prefix6_len) && ipv6_is_subnet_router_anycast(ip, pc.prefix6_len))
            return refused(fmt::format("the subnet-router anycast address of port \"{}\" prefix {} (RFC 4291 2.6.1)",
                                       pc.name, cidr6(*pc.ipv6, pc.prefix6_len)));
    }
    if (port == 0 || port > 65535) return setting_error{"port", fmt::format("{} is out of range 1..65535", port)};
    return std::nullopt;
}

std::optional<setting_error> check_speaker(const speaker_spec& s, const profile& p) {
    if (s.ip6) return check_peer6("speaker", *s.ip6, s.port, p);
    return check_peer("speaker", s.ip, s.port, p);
}

std::optional<setting_error> check_speaker_ssrc(const speaker_spec& s, const session_params& session,
                                                const profile& p) {
    if (s.ssrc) return std::nullopt;
    // A recorder track and a mixer decoder exist per SSRC: a speaker without
    // one could make the relay open them without bound (issue 10 item 2).
    if (session.mode == session_mode::mix)
        return setting_error{"ssrc", "required: the session is mixed (one decoder per SSRC)"};
    if (session.recording)
        return setting_error{"ssrc", "required: the session is recorded (one recording track per SSRC)"};
    // SRTP's replay window is per SSRC: a speaker free to change SSRC starts
    // a fresh stream with each, and a recording of one it used before could
    // be played back as such a fresh stream, past every window.
    if (session.srtp_ingress.value_or(p.srtp.ingress) == srtp_ingress_mode::required)
        return setting_error{"ssrc", "required: the session requires SRTP of its speakers (the replay window is "
                                     "per SSRC)"};
    if (p.ingress.require_ssrc)
        return setting_error{"ssrc", "required while ingress.require_ssrc = true (without one, anyone who knows "
                                     "the speaker's address and port can speak)"};
    return std::nullopt;
}

std::optional<setting_error> check_listener(const listener_spec& l, const profile& p) {
    if (l.ip6) {
        if (auto e = check_peer6("listener", *l.ip6, l.port, p)) return e;
        // As the relay routes it (relay_state::route6): in a port's prefix,
        // or any port with IPv6 has a gateway6.
        const bool on_link = std::any_of(p.ports.begin(), p.ports.end(), [&](const port_config& pc) {
            return pc.ipv6 && ipv6_same_prefix(*l.ip6, *pc.ipv6, pc.prefix6_len);
        });
        const bool has_gateway = std::any_of(p.ports.begin(), p.ports.end(),
                                             [](const port_config& pc) { return pc.ipv6 && pc.gateway6; });
        if (!on_link && !has_gateway)
            return setting_error{"ip", fmt::format("{} is in no port's ipv6 prefix and no port has a gateway6",
                                                   format_ipv6(*l.ip6))};
        if (l.tier >= dp::max_tiers)
            return setting_error{"tier", fmt::format("{} is out of range 0..{}", l.tier, dp::max_tiers - 1)};
        return std::nullopt;
    }
    if (auto e = check_peer("listener", l.ip, l.port, p)) return e;
    // A listener neither on a port subnet nor behind a gateway could never
    // be reached; refuse instead of dropping its audio silently.
    const bool on_link = std::any_of(p.ports.begin(), p.ports.end(), [&](const port_config& pc) {
        return (l.ip & mask_of(pc.prefix_len)) == (pc.ipv4 & mask_of(pc.prefix_len));
    });
    const bool has_gateway =
        std::any_of(p.ports.begin(), p.ports.end(), [](const port_config& pc) { return pc.gateway.has_value(); });
    if (!on_link && !has_gateway)
        return setting_error{"ip", fmt::format("{} is on no port's subnet and no port has a gateway", format_ipv4(l.ip))};
    if (l.tier >= dp::max_tiers)
        return setting_error{"tier", fmt::format("{} is out of range 0..{}", l.tier, dp::max_tiers - 1)};
    return std::nullopt;
}

namespace {

// Profiles are ASCII. Refusing other bytes before toml++ sees them also
// keeps us clear of Debian's toml++ 3.3.0 undefined behaviour on some
// non-ASCII code points (found by fuzz/fuzz_profile; fixed upstream in
// marzer/tomlplusplus PR #305).
toml::table parse_toml(const context& c, std::string_view text, const std::string& path_for_messages) {
    {
        uint32_t line = 1, col = 1;
        for (const char ch : text) {
            if (static_cast<unsigned char>(ch) >= 0x80)
                throw config_error(fmt::format("{}:{}:{}: syntax: non-ASCII byte 0x{:02x}; profiles are ASCII",
                                               path_for_messages, line, col, static_cast<unsigned char>(ch)));
            if (ch == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
    }
    toml::table root;
    try {
        root = toml::parse(text, std::string_view(path_for_messages));
    } catch (const toml::parse_error& e) {
        c.fail(e.source(), "syntax", e.description());
    }
    return root;
}

}  // namespace

profile parse_profile(std::string_view text, const std::string& path_for_messages) {
    const context c(path_for_messages);
    const toml::table root = parse_toml(c, text, path_for_messages);
    const table_reader top(c, root, root.source(), "",
                           {"eal", "dataplane", "port", "ingress", "limits", "api", "recording", "overload", "mixer",
                            "journal", "join", "fleet", "srtp", "capture", "session"});
    (void)top;

    profile p;
    p.path = path_for_messages;
    // Sections are read in dependency order, not file order: ports need the
    // EAL device lists and the fan-out lcores, sessions need ports and limits.
    read_eal(c, root, p.eal);
    read_dataplane(c, root, p.eal, p.dataplane);
    read_ingress(c, root, p.ingress);
    read_limits(c, root, p.limits);
    read_api(c, root, p.api);
    read_recording(c, root, p.recording);
    read_overload(c, root, p.overload);
    read_mixer(c, root, p.mixer);
    read_journal(c, root, p.journal);
    read_join(c, root, p.join);
    read_srtp(c, root, p.srtp);
    if (!p.dataplane.join_lcores.empty() && p.join.keys.empty()) {
        const auto* n = root["dataplane"]["join_lcores"].node();
        c.fail(n->source(), "dataplane.join_lcores", "join lcores but no join.keys: there are no joins to verify");
    }
    read_capture(c, root, p.eal, p.capture);
    read_ports(c, root, p);
    read_sessions(c, root, p);
    read_fleet(c, root, p.fleet, true);
    if (p.fleet.enabled) fleet_defaults(root, c, p);
    return p;
}

director_profile parse_director_profile(const std::string& text, const std::string& path_for_messages) {
    const context c(path_for_messages);
    const toml::table root = parse_toml(c, text, path_for_messages);
    const table_reader top(c, root, root.source(), "", {"fleet", "join", "director"});
    (void)top;
    director_profile d;
    d.path = path_for_messages;
    read_fleet(c, root, d.fleet, false);
    read_join(c, root, d.join);
    if (d.join.keys.empty()) c.fail(root.source(), "join.keys", "required: a director mints join tokens");
    read_director(c, root, d.director);
    return d;
}

namespace {

// The text of a profile file, at most max_profile_bytes of it. A profile is
// a few KiB of TOML: a device (/dev/zero, /dev/urandom), a FIFO or a file
// grown without end would otherwise be read until memory runs out. stat()
// first, so that a device or a FIFO is never opened (opening some blocks or
// has effects of its own); fstat() again on what was opened; never a byte
// past the bound.
std::string read_profile_text(const std::string& path) {
    const auto fail = [&](const std::string& what) { throw config_error(fmt::format("{}:1:1: file: {}", path, what)); };
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) fail(fmt::format("cannot open: {}", std::strerror(errno)));
    // A directory used to be read as an empty profile (issue 14).
    if (S_ISDIR(st.st_mode))
        fail(fmt::format("is a directory; give a profile file (e.g. {}/dev-veth.toml)", path == "/" ? "" : path));
    const auto not_regular = [&](mode_t m) {
        const char* kind = S_ISCHR(m)    ? "is a character device"
                           : S_ISBLK(m)  ? "is a block device"
                           : S_ISFIFO(m) ? "is a FIFO"
                           : S_ISSOCK(m) ? "is a socket"
                                         : "is not a regular file";
        fail(fmt::format("{}; give a profile file (a regular file of at most {} bytes)", kind, max_profile_bytes));
    };
    if (!S_ISREG(st.st_mode)) not_regular(st.st_mode);
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) fail(fmt::format("cannot open: {}", std::strerror(errno)));
    struct fd_guard {
        int fd;
        ~fd_guard() { ::close(fd); }
    } guard{fd};
    if (::fstat(fd, &st) != 0) fail(fmt::format("cannot stat: {}", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) not_regular(st.st_mode);
    const auto too_large = [&] {
        fail(fmt::format("larger than {} bytes (1 MiB): not a profile (the shipped ones are a few KiB)",
                         max_profile_bytes));
    };
    if (static_cast<uint64_t>(st.st_size) > max_profile_bytes) too_large();
    // The size may change while it is read: read one byte past the bound at most.
    std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
    size_t got = 0;
    for (;;) {
        if (got == text.size()) {
            if (text.size() > max_profile_bytes) too_large();
            text.resize(std::min<size_t>(2 * text.size(), max_profile_bytes + 1));
        }
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(fmt::format("cannot read: {}", std::strerror(errno)));
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    text.resize(got);
    return text;
}

}  // namespace

director_profile load_director_profile(const std::string& path) {
    return parse_director_profile(read_profile_text(path), path);
}

profile load_profile(const std::string& path, std::string* text) {
    std::string t = read_profile_text(path);
    profile p = parse_profile(t, path);
    if (text != nullptr) *text = std::move(t);
    return p;
}

}  // namespace stentor::control
