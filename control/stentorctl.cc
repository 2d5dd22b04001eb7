// stentorctl: the operator's command line for a running stentord, in the
// manner of vppctl. Every command is calls of the HTTP API (which runs the
// same action functions as everything else), so the CLI can do nothing the
// API cannot.
//   stentorctl [--api [https://]HOST:PORT] [--cacert FILE] [--token-file PATH | $STENTOR_TOKEN | --token T] COMMAND
// Global options may also come after the command. The token is best given
// in a file or the environment: a command line is readable by every user of
// the machine (ps, /proc/<pid>/cmdline).
//
// Exit status (docs/api.md): 0 done, 1 refused by the relay or not reached,
// 2 usage (a bad option, address, range or file: nothing was sent). Inputs
// are checked here before anything is sent, so a typo never becomes a
// request with a default in its place (`IP:abc` once sent port 0, `--ssrc
// -5` once registered a speaker without its SSRC check).
//
// The man page and the bash completion are generated from the command tree
// below (ctl_doc.h); `--help` shows the same texts with every default.
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "ctl_doc.h"
#include "ctl_range.h"
#include "stentorctl_capture.h"

#ifndef STENTOR_VERSION
#define STENTOR_VERSION "unknown"
#endif

namespace {

using nlohmann::json;

constexpr int exit_ok = 0;
constexpr int exit_refused = 1;
constexpr int exit_usage = 2;

[[noreturn]] void usage_error(const std::string& what) {
    std::fprintf(stderr, "stentorctl: %s\n", what.c_str());
    std::exit(exit_usage);
}

// ------------------------------------------------------------ inputs

using stentor::ctl::decimal;   // control/ctl_range.h

// CLI11 would read "-5" as 2^64-5 and "010" as octal: every number goes
// through this first.
CLI::Validator decimal_in(uint64_t lo, uint64_t hi) {
    return CLI::Validator(
        [lo, hi](std::string& s) -> std::string {
            // Rewritten without leading zeros: CLI11 converts with base 0,
            // which would take "010" for octal.
            if (const auto v = decimal(s, lo, hi)) return s = std::to_string(*v), std::string();
            return "\"" + s + "\" is not a decimal integer " + std::to_string(lo) + ".." + std::to_string(hi);
        },
        "", "decimal");
}

std::optional<uint32_t> ipv4(const std::string& s) {
    in_addr a{};
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;   // strict dotted quad
    return ntohl(a.s_addr);
}

std::string ipv4_text(uint32_t ip) {
    return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." + std::to_string((ip >> 8) & 0xff) +
           "." + std::to_string(ip & 0xff);
}

// IP:PORT, or [IPV6]:PORT (issue 15): ip6 holds the IPv6 address in its
// canonical text (RFC 5952), empty for IPv4.
struct endpoint {
    uint32_t ip;
    unsigned port;
    std::string ip6{};
    std::string ip_text() const { return ip6.empty() ? ipv4_text(ip) : ip6; }
    // As an API path segment: 198.18.0.5:6000 or [2001:db8::5]:6000.
    std::string segment() const {
        return (ip6.empty() ? ipv4_text(ip) : "[" + ip6 + "]") + ":" + std::to_string(port);
    }
};

std::optional<endpoint> parse_endpoint(const std::string& s) {
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find("]:");
        if (close == std::string::npos) return std::nullopt;
        const std::string host = s.substr(1, close - 1);
        in6_addr a{};
        if (host.find('%') != std::string::npos || inet_pton(AF_INET6, host.c_str(), &a) != 1) return std::nullopt;
        const auto port = decimal(s.substr(close + 2), 1, 65535);
        if (!port) return std::nullopt;
        char text[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &a, text, sizeof text) == nullptr) return std::nullopt;
        return endpoint{0, static_cast<unsigned>(*port), text};
    }
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    const auto ip = ipv4(s.substr(0, colon));
    const auto port = decimal(s.substr(colon + 1), 1, 65535);
    if (!ip || !port) return std::nullopt;
    return endpoint{*ip, static_cast<unsigned>(*port)};
}

CLI::Validator endpoint_check() {
    return CLI::Validator(
        [](std::string& s) -> std::string {
            if (parse_endpoint(s)) return {};
            return "\"" + s + "\" is not IP:PORT or [IPV6]:PORT (a dotted quad or an IPv6 address in brackets, and a port 1..65535)";
        },
        "", "endpoint");
}

// --range (control/ctl_range.h, one parser for both families): every
// address with every port, addresses outer, at most max_range.
constexpr uint64_t max_range = 10000000;
std::optional<std::vector<endpoint>> parse_range(const std::string& s, std::string& why) {
    const auto r = stentor::ctl::parse_listener_range(s, max_range, &why);
    if (!r) return std::nullopt;
    std::vector<endpoint> out;
    out.reserve(r->size());
    for (uint64_t i = 0; i < r->addresses; ++i) {
        const endpoint e = r->ipv6 ? endpoint{0, 0, r->address_text(i)} : endpoint{r->ipv4(i), 0};
        for (unsigned p = r->port_first; p <= r->port_last; ++p) {
            out.push_back(e);
            out.back().port = p;
        }
    }
    return out;
}

// A listener file: one "IP:PORT [TIER]" per line; blank lines and '#'
// comments are skipped; "-" is standard input. A tier column overrides
// --tier (and is ignored by `listener del`, so one file serves both).
struct listener_line {
    endpoint ep;
    unsigned tier;
};

std::vector<listener_line> read_listener_file(const std::string& path, unsigned default_tier) {
    std::ifstream f;
    std::istream* in = &std::cin;
    if (path != "-") {
        f.open(path);
        if (!f) usage_error("--file " + path + ": cannot read: " + std::strerror(errno));
        in = &f;
    }
    std::vector<listener_line> out;
    std::string line;
    for (size_t n = 1; std::getline(*in, line); ++n) {
        if (const auto h = line.find('#'); h != std::string::npos) line.erase(h);
        std::istringstream ws(line);
        std::string ep, tier, extra;
        if (!(ws >> ep)) continue;
        ws >> tier >> extra;
        const auto e = parse_endpoint(ep);
        const auto t = tier.empty() ? std::optional<uint64_t>(default_tier) : decimal(tier, 0, 3);
        if (!e || !t || !extra.empty())
            usage_error(path + ":" + std::to_string(n) + ": expected IP:PORT [TIER 0..3], got \"" + line + "\"");
        out.push_back({*e, static_cast<unsigned>(*t)});
    }
    if (f.is_open() && f.bad()) usage_error("--file " + path + ": read error");
    return out;
}

// The token in `path`: the whole file, one line, a final newline allowed.
std::string read_token_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) usage_error("--token-file " + path + ": cannot read: " + std::strerror(errno));
    std::stringstream ss;
    ss << f.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    if (t.empty()) usage_error("--token-file " + path + ": the file is empty");
    for (char ch : t)
        if (ch <= ' ' || ch >= 0x7f)
            usage_error("--token-file " + path + ": the token must be alone on one line, printable ASCII without spaces");
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0)
        std::fprintf(stderr, "stentorctl: warning: %s is readable by other users (mode %03o); chmod 600 it\n",
                     path.c_str(), static_cast<unsigned>(st.st_mode & 0777));
    return t;
}

// --api [http://|https://]HOST:PORT
struct api_address {
    std::string scheme;   // "http" or "https"
    std::string host;
    int port;
};

std::optional<api_address> parse_api(const std::string& s, bool tls_default, std::string& why) {
    api_address a{tls_default ? "https" : "http", "", 0};
    std::string rest = s;
    for (const char* sc : {"http", "https"})
        if (rest.rfind(std::string(sc) + "://", 0) == 0) {
            a.scheme = sc;
            rest = rest.substr(std::strlen(sc) + 3);
        }
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0) return why = "expected [https://]HOST:PORT", std::nullopt;
    a.host = rest.substr(0, colon);
    for (char c : a.host)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-')
            return why = "host \"" + a.host + "\" is not a name or an IPv4 address", std::nullopt;
    const auto port = decimal(rest.substr(colon + 1), 1, 65535);
    if (!port) return why = "port \"" + rest.substr(colon + 1) + "\" is not 1..65535", std::nullopt;
    a.port = static_cast<int>(*port);
    return a;
}

// ------------------------------------------------------------ the API

struct reply {
    int status = 0;
    json body;
    std::string retry_after;
};

struct api_client {
    api_address addr;
    std::string token;
    std::string cacert;

    std::string where() const { return addr.scheme + "://" + addr.host + ":" + std::to_string(addr.port); }

    // nullopt (with the reason printed) when the API was not reached.
    std::optional<reply> send(const std::string& method, const std::string& path, const json* body = nullptr) const {
        httplib::Client c(where());
        if (!c.is_valid()) {
            std::fprintf(stderr, "stentorctl: cannot use %s (this stentorctl was built without TLS?)\n", where().c_str());
            return std::nullopt;
        }
        c.set_connection_timeout(5);
        c.set_tcp_nodelay(true);
        c.set_read_timeout(60);
        c.set_bearer_token_auth(token);
        if (addr.scheme == "https") {
            // Verified by default: against --cacert, else the system's CAs.
            c.enable_server_certificate_verification(true);
            if (!cacert.empty()) c.set_ca_cert_path(cacert);
        }
        const std::string b = body ? body->dump() : "";
        httplib::Result r = method == "GET"    ? c.Get(path)
                            : method == "POST" ? (body ? c.Post(path, b, "application/json") : c.Post(path))
                                               : c.Delete(path);
        if (!r) {
            std::string why = httplib::to_string(r.error());
            if (r.error() == httplib::Error::SSLServerVerification)
                why += ": the relay's certificate is not signed by " +
                       (cacert.empty() ? std::string("a CA this host trusts (give the relay's CA with --cacert FILE)")
                                       : "the CA in " + cacert) +
                       " or does not name " + addr.host;
            else if (r.error() == httplib::Error::SSLConnection && addr.scheme == "https")
                why += " (does the relay serve HTTPS on this port?)";
            else if (addr.scheme == "http" && r.error() == httplib::Error::Read)
                why += " (an HTTPS relay closes plain HTTP: use --api https://...)";
            std::fprintf(stderr, "stentorctl: cannot reach the API at %s (%s)\n", where().c_str(), why.c_str());
            return std::nullopt;
        }
        reply out;
        out.status = r->status;
        out.retry_after = r->get_header_value("Retry-After");
        if (path == "/metrics") out.body = json(r->body);
        else out.body = json::parse(r->body, nullptr, false);
        return out;
    }

    // The parsed body of a 2xx answer; anything else prints why and exits 1.
    json call(const std::string& method, const std::string& path, const json* body = nullptr) const {
        const auto r = send(method, path, body);
        if (!r) std::exit(exit_refused);
        if (r->status / 100 != 2) refused(*r);
        if (r->body.is_discarded()) {
            std::fprintf(stderr, "stentorctl: the API answered something that is not JSON\n");
            std::exit(exit_refused);
        }
        return r->body;
    }

    [[noreturn]] static void refused(const reply& r) {
        print_refusal(r);
        std::exit(exit_refused);
    }

    static void print_refusal(const reply& r) {
        std::string reason = r.body.is_object() ? r.body.value("error", std::string("?")) + ": " + r.body.value("reason", std::string(""))
                                                : std::string("(no JSON body)");
        std::fprintf(stderr, "stentorctl: HTTP %d %s\n", r.status, reason.c_str());
        if (!r.retry_after.empty()) std::fprintf(stderr, "stentorctl: retry after %s s\n", r.retry_after.c_str());
    }
};

// ------------------------------------------------------------ output

std::string num(double v) {
    char b[32];
    if (v >= 1e9) std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
    else if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
    else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
    else std::snprintf(b, sizeof b, "%.0f", v);
    return b;
}

double d(const json& j, const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; }
uint64_t u(const json& j, const char* k) { return j.contains(k) && j[k].is_number_unsigned() ? j[k].get<uint64_t>() : 0; }
unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

void out_json(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

// "(since clear at 2024-05-01 10:00:00)" when the answer counts from a clear.
std::string since_note(const json& j) {
    if (!j.contains("cleared_unix_ms") || !j["cleared_unix_ms"].is_number()) return "";
    const time_t t = static_cast<time_t>(j["cleared_unix_ms"].get<int64_t>() / 1000);
    tm lt{};
    localtime_r(&t, &lt);
    char b[64];
    std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &lt);
    return std::string(" (since clear at ") + b + ")";
}

void print_session(const json& s) {
    std::printf("session %u \"%s\" mode=%s udp_port=%u frame_ms=%u max_bitrate_kbps=%u recording=%s\n",
                s["id"].get<unsigned>(), s["name"].get<std::string>().c_str(), s["mode"].get<std::string>().c_str(),
                s["udp_port"].get<unsigned>(), s["frame_ms"].get<unsigned>(), s["max_bitrate_kbps"].get<unsigned>(),
                s["recording"].get<bool>() ? "yes" : "no");
    const auto& t = s["listeners_per_tier"];
    std::printf("  listeners %llu / %u (tiers %llu %llu %llu %llu)\n", ull(s["listeners"].get<uint64_t>()),
                s["max_listeners"].get<unsigned>(), ull(t[0].get<uint64_t>()), ull(t[1].get<uint64_t>()),
                ull(t[2].get<uint64_t>()), ull(t[3].get<uint64_t>()));
    // SRTP: the modes and the keys' ids and MKIs (the API never returns a key).
    const auto key_list = [](const json& keys) {
        std::string out;
        for (const auto& k : keys) {
            out += out.empty() ? " keys " : ",";
            out += k["id"].get<std::string>();
            if (!k["mki"].is_null()) out += "(mki " + k["mki"].get<std::string>() + ")";
            if (k["active"].get<bool>()) out += "*";
        }
        return out;
    };
    if (s.contains("srtp"))
        std::printf("  srtp ingress=%s egress=%s%s\n", s["srtp"]["ingress"].get<std::string>().c_str(),
                    s["srtp"]["egress"].get<std::string>().c_str(), key_list(s["srtp"]["keys"]).c_str());
    for (const auto& sp : s["speakers"])
        std::printf("  speaker %s:%u ssrc=%s%s\n", sp["ip"].get<std::string>().c_str(), sp["port"].get<unsigned>(),
                    sp["ssrc"].is_null() ? "any" : std::to_string(sp["ssrc"].get<uint32_t>()).c_str(),
                    sp.contains("srtp_keys") ? key_list(sp["srtp_keys"]).c_str() : "");
    if (s.contains("mix")) {
        const auto& m = s["mix"];
        if (!m["error"].is_null())
            std::printf("  mix failed: %s\n", m["error"].get<std::string>().c_str());
        else if (m["encoder"].is_null())
            std::printf("  mix: not started (no speaker packet yet)\n");
        else
            std::printf("  mix: %u channel(s), %d bit/s, complexity %d (mixer settings version %llu)\n",
                        m["encoder"]["channels"].get<unsigned>(), m["encoder"]["bitrate_bps"].get<int>(),
                        m["encoder"]["complexity"].get<int>(), ull(m["encoder"]["settings_version"].get<uint64_t>()));
    }
}

void print_port_rates(const json& j) {
    std::printf("%-10s %-18s %-10s %-5s %10s %10s %10s %10s\n", "PORT", "DEVICE", "DRIVER", "LINK", "RX_PPS", "TX_PPS",
                "RX_BPS", "TX_BPS");
    for (const auto& p : j["ports"])
        std::printf("%-10s %-18s %-10s %-5s %10s %10s %10s %10s\n", p["name"].get<std::string>().c_str(),
                    p["device"].get<std::string>().c_str(), p["driver"].get<std::string>().c_str(),
                    p["link_up"].get<bool>() ? "up" : "down", num(d(p, "rx_pps")).c_str(), num(d(p, "tx_pps")).c_str(),
                    num(d(p, "rx_bps")).c_str(), num(d(p, "tx_bps")).c_str());
}

// testpmd's "show port stats": the NIC's own counters.
void print_port_nic(const json& j) {
    std::printf("\nNIC counters%s\n", since_note(j).c_str());
    std::printf("%-10s %14s %12s %12s %12s %14s %12s %16s %16s\n", "PORT", "RX-packets", "RX-missed", "RX-errors",
                "RX-nombuf", "TX-packets", "TX-errors", "RX-bytes", "TX-bytes");
    for (const auto& p : j["ports"]) {
        const json& n = p.contains("nic") ? p["nic"] : json(nullptr);
        if (!n.is_object()) {
            std::printf("%-10s %s\n", p["name"].get<std::string>().c_str(), "(the driver keeps no counters)");
            continue;
        }
        std::printf("%-10s %14llu %12llu %12llu %12llu %14llu %12llu %16llu %16llu\n", p["name"].get<std::string>().c_str(),
                    ull(u(n, "ipackets")), ull(u(n, "imissed")), ull(u(n, "ierrors")), ull(u(n, "rx_nombuf")),
                    ull(u(n, "opackets")), ull(u(n, "oerrors")), ull(u(n, "ibytes")), ull(u(n, "obytes")));
    }
}

void print_lcores(const json& j) {
    std::printf("%-6s %10s %10s %10s %6s\n", "LCORE", "RX_PPS", "TX_PPS", "TX_BPS", "BUSY");
    for (const auto& l : j["lcores"])
        std::printf("%-6u %10s %10s %10s %5.1f%%\n", l["lcore"].get<unsigned>(), num(d(l, "rx_pps")).c_str(),
                    num(d(l, "tx_pps")).c_str(), num(d(l, "tx_bps")).c_str(), 100.0 * d(l, "busy_ratio"));
}

// vppctl's "show runtime": per lcore and stage, the iterations it did work
// in (calls), what it did (packets), its cycles per packet and packets per
// call, from the dp_counters.h stage counters.
void print_runtime(const json& j) {
    struct stage {
        const char* name;
        const char* calls;
        const char* packets;
        const char* cycles;
    };
    static constexpr stage stages[] = {
        {"ingress", "ingress_calls", "rx_packets", "ingress_cycles"},
        {"fanout", "fanout_calls", "fanout_replicas", "fanout_cycles"},
        {"neigh", "neigh_calls", "neigh_packets", "neigh_cycles"},
        {"verify", "verify_calls", "verify_requests", "verify_cycles"},
    };
    bool first = true;
    for (const auto& l : j["lcores"]) {
        const double busy = d(l, "busy_cycles"), idle = d(l, "idle_cycles");
        std::printf("%slcore %u: loops %llu, busy %.1f %%, stalls %llu%s\n", first ? "" : "\n", l["lcore"].get<unsigned>(),
                    ull(u(l, "loops")), busy + idle > 0 ? 100.0 * busy / (busy + idle) : 0.0, ull(u(l, "stalls")),
                    since_note(j).c_str());
        first = false;
        std::printf("  %-10s %14s %16s %12s %12s\n", "STAGE", "CALLS", "PACKETS", "CYCLES/PKT", "PKTS/CALL");
        for (const auto& s : stages) {
            const uint64_t calls = u(l, s.calls), pk = u(l, s.packets), cy = u(l, s.cycles);
            if (calls == 0) {
                std::printf("  %-10s %14s %16s %12s %12s\n", s.name, "0", "0", "-", "-");
                continue;
            }
            std::printf("  %-10s %14llu %16llu %12.1f %12.1f\n", s.name, ull(calls), ull(pk),
                        pk != 0 ? static_cast<double>(cy) / static_cast<double>(pk) : 0.0,
                        static_cast<double>(pk) / static_cast<double>(calls));
        }
    }
}

// ------------------------------------------------------------ bulk

// Listeners added or removed in requests of at most `chunk` items (each all
// or nothing, docs/api.md). A 429 waits its Retry-After and sends the same
// request again; any other refusal stops: what earlier requests did stands.
int bulk(const api_client& c, uint32_t sid, const std::vector<listener_line>& items, bool add, unsigned chunk) {
    const std::string path = "/api/v1/sessions/" + std::to_string(sid) + "/listeners/" + (add ? "bulk" : "bulk_delete");
    size_t done = 0, requests = 0, unresolved = 0;
    while (done < items.size()) {
        const size_t n = std::min<size_t>(chunk, items.size() - done);
        json a = json::array();
        for (size_t i = done; i < done + n; ++i) {
            json o{{"ip", items[i].ep.ip_text()}, {"port", items[i].ep.port}};
            if (add) o["tier"] = items[i].tier;
            a.push_back(std::move(o));
        }
        const json body{{"listeners", a}};
        std::optional<reply> r;
        for (int attempt = 0;; ++attempt) {
            r = c.send("POST", path, &body);
            if (!r || r->status != 429 || attempt >= 60) break;
            const auto wait = decimal(r->retry_after, 1, 60).value_or(1);
            std::this_thread::sleep_for(std::chrono::seconds(wait));
        }
        if (!r || r->status / 100 != 2) {
            if (r) api_client::print_refusal(*r);
            std::fprintf(stderr,
                         "stentorctl: %zu of %zu listeners %s in %zu request(s) before this one; nothing of request %zu "
                         "(listeners %zu..%zu of the list) was %s\n",
                         done, items.size(), add ? "added" : "removed", requests, requests + 1, done + 1, done + n,
                         add ? "added" : "removed");
            return exit_refused;
        }
        if (r->status == 202) ++unresolved;
        done += n;
        ++requests;
    }
    std::printf("%s %zu listener(s) %s session %u in %zu request(s)\n", add ? "added" : "removed", items.size(),
                add ? "to" : "from", sid, requests);
    if (unresolved != 0)
        std::printf("note: %zu request(s) answered 202: some next hops have not answered ARP yet; those listeners hear "
                    "the session once they do\n",
                    unresolved);
    return exit_ok;
}

// ------------------------------------------------------------ the commands

const char* const k_description =
    "stentorctl drives a running stentord through its HTTP API (docs/api.md): it shows sessions, listeners, "
    "ports, lcores and counters, and creates and ends sessions, registers speakers, adds and removes listeners "
    "(one at a time, or in bulk from a file or a range), mints join tokens and clears counters. Every command "
    "is calls of the API, so it can do nothing the API cannot.\n"
    "\n"
    "Inputs are checked before anything is sent: an address must be a dotted quad with a port 1..65535, "
    "numbers decimal and in range; a bad one exits 2 and sends nothing.\n"
    "\n"
    "Over HTTPS (--api https://HOST:PORT, or --cacert given) the relay's certificate is verified against "
    "--cacert FILE or the system's CAs, and must name HOST.";

const char* const k_exit_status =
    "0  done\n"
    "1  refused by the relay (its HTTP status, code and reason on stderr; Retry-After for a 429), or the API "
    "was not reached (connection refused, TLS verification failed)\n"
    "2  usage: an unknown command or option, a bad address, number, range or file, no token; nothing was sent\n";

const char* const k_environment =
    "STENTOR_TOKEN  the bearer token (api.token of the profile), when neither --token-file nor --token is given\n";

const char* const k_examples =
    "stentorctl --api 127.0.0.1:8081 session create --name talk --udp-port 40005\n"
    "stentorctl listener add 2 203.0.113.5:6000 --tier 1 --api 127.0.0.1:8081\n"
    "stentorctl listener add 2 [2001:db8::5]:6000 --tier 1\n"
    "stentorctl listener add 2 --range 198.18.0.21-198.18.0.23:6000-6999 --tier 2\n"
    "stentorctl listener add 2 --range [2001:db8::10-2001:db8::ff]:6000 --tier 2\n"
    "stentorctl listener del 2 --file listeners.txt\n"
    "stentorctl --api https://relay.example:8443 --cacert ca.pem show runtime\n"
    "stentorctl clear counters && sleep 10 && stentorctl show ports\n";

struct options {
    std::string api = "127.0.0.1:8080";
    std::string token, token_file, cacert;
    bool as_json = false;
    stentorctl::capture_args capture;   // stentorctl capture ... (stentorctl_capture.h)
    // commands
    uint32_t sid = 0;
    uint64_t recording_id = 0;
    uint64_t offset = 0, limit = 100;
    std::string name, mode = "forward";
    unsigned udp_port = 0, max_listeners = 0, frame_ms = 20, max_bitrate = 256;
    bool recording = false;
    std::string endpoint, file, range;
    unsigned tier = 0, chunk = 10000;
    uint32_t ssrc = 0;
    uint32_t count = 1;
    unsigned ttl_s = 0;
    unsigned interval_ms = 1000, iterations = 0;
};

struct command {
    CLI::App* app;
    std::function<int(const api_client&)> run;
};

// The whole command tree; `commands` gets one entry per leaf.
void build(CLI::App& app, options& o, std::vector<command>& commands, CLI::Option*& ttl_opt, CLI::Option*& ssrc_opt,
           CLI::Option*& cacert_opt) {
    app.require_subcommand(1);
    app.fallthrough();   // global options after the command too (inherited by every subcommand below)
    app.option_defaults()->always_capture_default();
    app.add_option("--api", o.api, "the relay's API: [http://|https://]HOST:PORT (api.listen of the profile; https is "
                                   "the default with --cacert)")
        ->type_name("[https://]HOST:PORT");
    auto* token_opt = app.add_option("--token", o.token,
                                     "bearer token; visible to every user of the machine in ps and "
                                     "/proc/<pid>/cmdline: prefer --token-file or $STENTOR_TOKEN")
                          ->type_name("TOKEN");
    app.add_option("--token-file", o.token_file,
                   "file holding the bearer token alone on one line (mode 0600); default: $STENTOR_TOKEN")
        ->type_name("FILE")
        ->excludes(token_opt);
    cacert_opt = app.add_option("--cacert", o.cacert,
                                "PEM file of the CA that signed the relay's certificate (HTTPS); default: the "
                                "system's CAs")
                     ->type_name("FILE");
    app.add_flag("--json", o.as_json, "print the API's JSON instead of a table");
    app.set_version_flag("--version", std::string("stentorctl ") + STENTOR_VERSION);

    const auto session_arg = [&](CLI::App* a, const char* what = "session id") {
        a->add_option("session", o.sid, what)->required()->transform(decimal_in(1, 0xffffffffULL))->type_name("ID")->default_str("");
    };
    const auto endpoint_arg = [&](CLI::App* a, bool required) {
        auto* e = a->add_option("endpoint", o.endpoint, "the listener's or speaker's address and port")
                      ->type_name("IP:PORT")
                      ->check(endpoint_check());
        if (required) e->required();
    };
    const auto cmd = [&](CLI::App* parent, const char* name, const char* help, std::function<int(const api_client&)> run) {
        CLI::App* a = parent->add_subcommand(name, help);
        commands.push_back({a, std::move(run)});
        return a;
    };
    const std::string v1 = "/api/v1";

    // show ...
    auto* show = app.add_subcommand("show", "show sessions, listeners, ports, lcores, runtime, drops, events, "
                                            "capacity, recordings");
    show->require_subcommand(1);
    cmd(show, "sessions", "all sessions", [&o, v1](const api_client& c) {
        const json j = c.call("GET", v1 + "/sessions");
        if (o.as_json) return out_json(j), exit_ok;
        std::printf("%-6s %-20s %-8s %-6s %10s %8s\n", "ID", "NAME", "MODE", "PORT", "LISTENERS", "SPEAKERS");
        for (const auto& s : j["sessions"])
            std::printf("%-6u %-20s %-8s %-6u %10llu %8zu\n", s["id"].get<unsigned>(), s["name"].get<std::string>().c_str(),
                        s["mode"].get<std::string>().c_str(), s["udp_port"].get<unsigned>(),
                        ull(s["listeners"].get<uint64_t>()), s["speakers"].size());
        return exit_ok;
    });
    session_arg(cmd(show, "session", "one session: settings, listeners per tier, speakers, mix state",
                    [&o, v1](const api_client& c) {
                        const json j = c.call("GET", v1 + "/sessions/" + std::to_string(o.sid));
                        if (o.as_json) return out_json(j), exit_ok;
                        print_session(j);
                        return exit_ok;
                    }));
    auto* show_listeners = cmd(show, "listeners", "listeners of a session, in join order", [&o, v1](const api_client& c) {
        const json j = c.call("GET", v1 + "/sessions/" + std::to_string(o.sid) + "/listeners?offset=" +
                                         std::to_string(o.offset) + "&limit=" + std::to_string(o.limit));
        if (o.as_json) return out_json(j), exit_ok;
        std::printf("session %u: %llu listeners (from %llu)\n", o.sid, ull(j["total"].get<uint64_t>()), ull(o.offset));
        for (const auto& l : j["listeners"])
            std::printf("  %s:%u tier %u\n", l["ip"].get<std::string>().c_str(), l["port"].get<unsigned>(),
                        l["tier"].get<unsigned>());
        return exit_ok;
    });
    session_arg(show_listeners);
    show_listeners->add_option("--offset", o.offset, "first listener shown (0 = the first that joined)")
        ->transform(decimal_in(0, UINT32_MAX))
        ->type_name("N");
    show_listeners->add_option("--limit", o.limit, "at most this many")->transform(decimal_in(1, 100000))->type_name("N");
    cmd(show, "ports", "ports: link, packets/s and bit/s, and the NIC's own counters (testpmd's RX-missed, "
                       "RX-errors, RX-nombuf, TX-errors)",
        [&o, v1](const api_client& c) {
            const json j = c.call("GET", v1 + "/ports");
            if (o.as_json) return out_json(j), exit_ok;
            print_port_rates(j);
            print_port_nic(j);
            return exit_ok;
        });
    cmd(show, "lcores", "worker lcores: packets/s, bit/s, busy share", [&o, v1](const api_client& c) {
        const json j = c.call("GET", v1 + "/lcores");
        if (o.as_json) return out_json(j), exit_ok;
        print_lcores(j);
        return exit_ok;
    });
    cmd(show, "runtime", "per worker lcore and stage (ingress, fanout, neigh, verify): calls, packets, cycles per packet, "
                         "packets per call, as vppctl's show runtime",
        [&o, v1](const api_client& c) {
            const json j = c.call("GET", v1 + "/lcores");
            if (o.as_json) return out_json(j), exit_ok;
            print_runtime(j);
            return exit_ok;
        });
    cmd(show, "drops", "drops by reason (those not zero) and replicas missed per tier", [&o, v1](const api_client& c) {
        const json j = c.call("GET", v1 + "/drops");
        if (o.as_json) return out_json(j), exit_ok;
        if (const auto note = since_note(j); !note.empty()) std::printf("drops%s\n", note.c_str());
        for (auto it = j["drops"].begin(); it != j["drops"].end(); ++it)
            if (it.value().get<uint64_t>() != 0)
                std::printf("drop/%-28s %llu\n", it.key().c_str(), ull(it.value().get<uint64_t>()));
        for (size_t t = 0; t < j["tier_misses"].size(); ++t)
            std::printf("tier_misses/%zu %31llu\n", t, ull(j["tier_misses"][t].get<uint64_t>()));
        return exit_ok;
    });
    cmd(show, "events", "overload shed events", [&o, v1](const api_client& c) {
        const json j = c.call("GET", v1 + "/events");
        if (o.as_json) return out_json(j), exit_ok;
        for (const auto& e : j["events"])
            std::printf("#%llu shed %llu listeners of tier %u: %s\n", ull(e["id"].get<uint64_t>()),
                        ull(e["listeners"].get<uint64_t>()), e["tier"].get<unsigned>(), e["reason"].get<std::string>().c_str());
        return exit_ok;
    });
    cmd(show, "capacity", "admission capacity per port and for fan-out (JSON)", [v1](const api_client& c) {
        out_json(c.call("GET", v1 + "/capacity"));
        return exit_ok;
    });
    const auto print_recordings = [](const json& j, bool tracks) {
        std::printf("%-6s %-8s %-10s %10s %12s  %s\n", "ID", "SESSION", "STATE", "DURATION", "BYTES", "PATH / ERROR");
        for (const auto& r : j["recordings"]) {
            const std::string where = !r["error"].is_null() ? r["error"].get<std::string>()
                                      : r["path"].is_null() ? std::string("(no audio yet)")
                                                            : r["path"].get<std::string>();
            std::printf("%-6llu %-8u %-10s %9.3fs %12llu  %s\n", ull(r["id"].get<uint64_t>()), r["session"].get<unsigned>(),
                        r["state"].get<std::string>().c_str(),
                        r["duration_s"].get<double>(), ull(r["bytes"].get<uint64_t>()), where.c_str());
            if (tracks)
                for (const auto& t : r["tracks"])
                    std::printf("  track ssrc %u: %.3f s from +%.3f s, %llu packets, %llu lost, %llu not recorded "
                                "(disk full, %.3f s), %s\n",
                                t["ssrc"].get<unsigned>(), t["duration_s"].get<double>(), t["start_offset_s"].get<double>(),
                                ull(t["packets"].get<uint64_t>()), ull(t["lost"].get<uint64_t>()),
                                ull(t.value("paused_packets", uint64_t{0})), d(t, "paused_s"), t["path"].get<std::string>().c_str());
        }
    };
    cmd(show, "recordings", "recordings: state, duration, file", [&o, v1, print_recordings](const api_client& c) {
        const json j = c.call("GET", v1 + "/recordings");
        if (o.as_json) return out_json(j), exit_ok;
        print_recordings(j, false);
        return exit_ok;
    });
    session_arg(cmd(show, "recording", "one session's recording, with its tracks", [&o, v1, print_recordings](const api_client& c) {
        const json r = c.call("GET", v1 + "/sessions/" + std::to_string(o.sid) + "/recording");
        if (o.as_json) return out_json(r), exit_ok;
        print_recordings(json{{"recordings", json::array({r})}}, true);
        return exit_ok;
    }));

    // recording delete
    auto* recording = app.add_subcommand("recording", "delete a recording once it is published (docs/audio.md)");
    recording->require_subcommand(1);
    auto* r_del = cmd(recording, "delete", "delete a closed recording's files: ID as 'show recordings' lists it",
                      [&o, v1](const api_client& c) {
                          const json j = c.call("DELETE", v1 + "/recordings/" + std::to_string(o.recording_id));
                          if (o.as_json) return out_json(j), exit_ok;
                          std::printf("deleted recording %llu of session %u: %zu files, %llu bytes\n",
                                      ull(j["deleted"].get<uint64_t>()), j["session"].get<unsigned>(), j["files"].size(),
                                      ull(j["bytes"].get<uint64_t>()));
                          return exit_ok;
                      });
    r_del->add_option("recording", o.recording_id, "recording id")
        ->required()
        ->transform(decimal_in(1, UINT64_MAX))
        ->type_name("ID")
        ->default_str("");

    // session create | end
    auto* session = app.add_subcommand("session", "create or end a session");
    session->require_subcommand(1);
    auto* s_create = cmd(session, "create", "create a session", [&o, v1](const api_client& c) {
        json b{{"mode", o.mode}, {"udp_port", o.udp_port}, {"max_listeners", o.max_listeners}, {"recording", o.recording},
               {"frame_ms", o.frame_ms}, {"max_bitrate_kbps", o.max_bitrate}};
        if (!o.name.empty()) b["name"] = o.name;
        const json j = c.call("POST", v1 + "/sessions", &b);
        if (o.as_json) return out_json(j), exit_ok;
        std::printf("created session %u on udp port %u\n", j["id"].get<unsigned>(), j["udp_port"].get<unsigned>());
        return exit_ok;
    });
    s_create->add_option("--name", o.name, "name in logs and the API (default: session-ID)")->type_name("NAME");
    s_create->add_option("--mode", o.mode, "forward: speakers' packets as they are; mix: one mixed stream")
        ->check(CLI::IsMember({"forward", "mix"}));
    s_create->add_option("--udp-port", o.udp_port, "speaker port in ingress.udp_port_min..max (0 = the first free)")
        ->transform(decimal_in(0, 65535))
        ->type_name("PORT");
    s_create->add_option("--max-listeners", o.max_listeners, "cap (0 = limits.max_listeners_per_session)")
        ->transform(decimal_in(0, UINT32_MAX))
        ->type_name("N");
    s_create->add_flag("--recording", o.recording, "record to Ogg Opus");
    s_create->add_option("--frame-ms", o.frame_ms, "Opus frame duration")
        ->check(CLI::IsMember({"5", "10", "20", "40", "60", "120"}));
    s_create->add_option("--max-bitrate-kbps", o.max_bitrate, "highest bitrate a speaker may send (policer, admission)")
        ->transform(decimal_in(6, 510))
        ->type_name("KBPS");
    session_arg(cmd(session, "end", "end a session (its listeners go with it)", [&o, v1](const api_client& c) {
        c.call("DELETE", v1 + "/sessions/" + std::to_string(o.sid));
        std::printf("ended session %u\n", o.sid);
        return exit_ok;
    }));

    // listener add | del: one IP:PORT, or --file, or --range (in bulk).
    auto* listener = app.add_subcommand("listener", "add or remove listeners: one, or in bulk from a file or a range");
    listener->require_subcommand(1);
    const auto members = [v1](uint32_t sid, const char* what) {
        return v1 + "/sessions/" + std::to_string(sid) + "/" + what;
    };
    const auto one_source = [&o](const char* verb) {
        const int n = !o.endpoint.empty() + !o.file.empty() + !o.range.empty();
        if (n != 1) usage_error(std::string("listener ") + verb + ": give exactly one of IP:PORT, --file FILE, --range RANGE");
    };
    const auto bulk_items = [&o]() {
        if (!o.file.empty()) return read_listener_file(o.file, o.tier);
        std::string why;
        const auto r = parse_range(o.range, why);
        if (!r) usage_error("--range " + o.range + ": " + why);
        std::vector<listener_line> v;
        v.reserve(r->size());
        for (const auto& e : *r) v.push_back({e, o.tier});
        return v;
    };
    const auto bulk_opts = [&](CLI::App* a, bool with_tier) {
        a->add_option("--file", o.file,
                      with_tier ? "listeners from a file: one IP:PORT [TIER] per line, # comments; - = stdin"
                                : "listeners from a file: one IP:PORT per line (a tier column is ignored), # comments; - = stdin")
            ->type_name("FILE");
        a->add_option("--range", o.range,
                      "every address of A.B.C.D[-E.F.G.H] or [IPV6[-IPV6]] (or A+N: N addresses from A) with every "
                      "port of P[-Q], e.g. 198.18.0.21:6000-6999 or [2001:db8::10-2001:db8::ff]:6000")
            ->type_name("RANGE");
        a->add_option("--chunk", o.chunk, "listeners per API request (each all or nothing; the API takes at most 100000)")
            ->transform(decimal_in(1, 100000))
            ->type_name("N");
    };
    auto* l_add = cmd(listener, "add", "add listeners: SESSION IP:PORT, or SESSION --file FILE, or SESSION --range RANGE",
                      [&o, members, one_source, bulk_items](const api_client& c) {
                          one_source("add");
                          if (o.endpoint.empty()) return bulk(c, o.sid, bulk_items(), true, o.chunk);
                          const auto e = *parse_endpoint(o.endpoint);
                          json b{{"ip", e.ip_text()}, {"port", e.port}, {"tier", o.tier}};
                          const json j = c.call("POST", members(o.sid, "listeners"), &b);
                          std::printf("added listener %s to session %u (tier %u)\n", o.endpoint.c_str(), o.sid, o.tier);
                          if (j.value("resolved", true) == false)
                              std::printf("note: %s\n", j.value("reason", std::string("next hop not resolved yet")).c_str());
                          return exit_ok;
                      });
    session_arg(l_add);
    endpoint_arg(l_add, false);
    l_add->add_option("--tier", o.tier, "priority, 0 (highest) .. 3; a file's tier column overrides it")
        ->transform(decimal_in(0, 3))
        ->type_name("TIER");
    bulk_opts(l_add, true);
    auto* l_del = cmd(listener, "del", "remove listeners: SESSION IP:PORT, or SESSION --file FILE, or SESSION --range RANGE",
                      [&o, members, one_source, bulk_items](const api_client& c) {
                          one_source("del");
                          if (o.endpoint.empty()) return bulk(c, o.sid, bulk_items(), false, o.chunk);
                          const auto e = *parse_endpoint(o.endpoint);
                          c.call("DELETE", members(o.sid, "listeners") + "/" + e.segment());
                          std::printf("removed listener %s from session %u\n", o.endpoint.c_str(), o.sid);
                          return exit_ok;
                      });
    session_arg(l_del);
    endpoint_arg(l_del, false);
    bulk_opts(l_del, false);

    // speaker add | del
    auto* speaker = app.add_subcommand("speaker", "register or remove a speaker");
    speaker->require_subcommand(1);
    auto* sp_add = cmd(speaker, "add", "register a speaker: SESSION IP:PORT (its source address and port) --ssrc N",
                       [&o, members, &ssrc_opt](const api_client& c) {
                           const auto e = *parse_endpoint(o.endpoint);
                           json b{{"ip", e.ip_text()}, {"port", e.port}};
                           if (ssrc_opt->count() > 0) b["ssrc"] = o.ssrc;
                           c.call("POST", members(o.sid, "speakers"), &b);
                           std::printf("added speaker %s to session %u\n", o.endpoint.c_str(), o.sid);
                           return exit_ok;
                       });
    session_arg(sp_add);
    endpoint_arg(sp_add, true);
    ssrc_opt = sp_add->add_option("--ssrc", o.ssrc,
                                  "its RTP SSRC, 0..4294967295: packets with another are dropped (leave it out only "
                                  "with ingress.require_ssrc = false)")
                   ->transform(decimal_in(0, UINT32_MAX))
                   ->type_name("SSRC");
    ssrc_opt->default_str("");   // no default: left out, the relay decides
    auto* sp_del = cmd(speaker, "del", "remove a speaker: SESSION IP:PORT", [&o, members](const api_client& c) {
        const auto e = *parse_endpoint(o.endpoint);
        c.call("DELETE", members(o.sid, "speakers") + "/" + e.segment());
        std::printf("removed speaker %s from session %u\n", o.endpoint.c_str(), o.sid);
        return exit_ok;
    });
    session_arg(sp_del);
    endpoint_arg(sp_del, true);

    // tokens mint
    auto* tokens = app.add_subcommand("tokens", "join tokens for listeners (docs/join.md)");
    tokens->require_subcommand(1);
    auto* t_mint = cmd(tokens, "mint", "mint join tokens: one \"TOKEN PASSWORD\" line each (--json: the API's JSON)",
                       [&o, v1, &ttl_opt](const api_client& c) {
                           json b{{"count", o.count}, {"tier", o.tier}};
                           if (ttl_opt->count() > 0) b["ttl_s"] = o.ttl_s;
                           const json j = c.call("POST", v1 + "/sessions/" + std::to_string(o.sid) + "/tokens", &b);
                           if (o.as_json) return out_json(j), exit_ok;
                           // Both are base64url: one space between them is an unambiguous split.
                           std::string lines;
                           lines.reserve(j["tokens"].size() * 72);
                           for (const auto& t : j["tokens"])
                               lines += t["token"].get<std::string>() + " " + t["password"].get<std::string>() + "\n";
                           std::fwrite(lines.data(), 1, lines.size(), stdout);
                           return exit_ok;
                       });
    t_mint->add_option("--session", o.sid, "session id")
        ->required()
        ->transform(decimal_in(1, UINT32_MAX))
        ->type_name("ID")
        ->default_str("");
    t_mint->add_option("--count", o.count, "how many")->required()->transform(decimal_in(1, 100000))->type_name("N")->default_str("");
    t_mint->add_option("--tier", o.tier, "listener tier of the tokens, 0 (highest priority) .. 3")
        ->transform(decimal_in(0, 3))
        ->type_name("TIER");
    ttl_opt = t_mint->add_option("--ttl", o.ttl_s, "life in seconds, 1..604800 (default: join.token_ttl_s of the profile)")
                  ->transform(decimal_in(1, 604800))
                  ->type_name("S");
    ttl_opt->default_str("");

    cmd(&app, "stats", "counters, listeners, capacity, refusals, sheds", [&o, v1](const api_client& c) {
        const json j = c.call("GET", v1 + "/stats");
        if (o.as_json) return out_json(j), exit_ok;
        if (const auto note = since_note(j); !note.empty()) std::printf("counters%s\n", note.c_str());
        for (auto it = j["counters"].begin(); it != j["counters"].end(); ++it)
            if (it.value().is_number_unsigned() && it.value().get<uint64_t>() != 0)
                std::printf("%-36s %llu\n", it.key().c_str(), ull(it.value().get<uint64_t>()));
        std::printf("%-36s %llu\n", "sessions", ull(j["sessions"].get<uint64_t>()));
        std::printf("%-36s %llu\n", "listeners", ull(j["listeners"].get<uint64_t>()));
        const auto& cap = j["capacity"];
        std::printf("%-36s %s of %s replicas/s planned\n", "capacity", num(d(cap, "planned_pps")).c_str(),
                    num(d(cap, "fanout_capacity_pps")).c_str());
        for (auto it = j["refusals"].begin(); it != j["refusals"].end(); ++it)
            std::printf("refusals/%-27s %llu\n", it.key().c_str(), ull(it.value().get<uint64_t>()));
        std::printf("%-36s %s, %llu listeners shed\n", "overload", j["overload"]["state"].get<std::string>().c_str(),
                    ull(j["overload"]["listeners_shed"].get<uint64_t>()));
        return exit_ok;
    });
    auto* top = cmd(&app, "top", "live packets/s per port and lcore, redrawn like top", [&o, v1](const api_client& c) {
        for (unsigned i = 0; o.iterations == 0 || i < o.iterations; ++i) {
            if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
            const json p = c.call("GET", v1 + "/ports");
            const json l = c.call("GET", v1 + "/lcores");
            const json s = c.call("GET", v1 + "/stats");
            // Clear and home, like top; plain lines when not on a terminal.
            if (isatty(1)) std::printf("\x1b[H\x1b[2J");
            std::printf("stentor top  sessions %llu  listeners %llu  overload %s  (every %u ms)\n\n",
                        ull(s["sessions"].get<uint64_t>()), ull(s["listeners"].get<uint64_t>()),
                        s["overload"]["state"].get<std::string>().c_str(), o.interval_ms);
            print_port_rates(p);
            std::printf("\n");
            print_lcores(l);
            std::fflush(stdout);
        }
        return exit_ok;
    });
    top->add_option("--interval-ms", o.interval_ms, "refresh period")->transform(decimal_in(10, 3600000))->type_name("MS");
    top->add_option("--iterations", o.iterations, "stop after N refreshes (0 = until interrupted)")
        ->transform(decimal_in(0, UINT32_MAX))
        ->type_name("N");

    auto* clear = app.add_subcommand("clear", "clear counters");
    clear->require_subcommand(1);
    cmd(clear, "counters",
        "count from now: the relay records a baseline that show and stats subtract from then on (no counter is "
        "written; /metrics and telemetry keep their totals)",
        [&o, v1](const api_client& c) {
            const json j = c.call("POST", v1 + "/counters/clear");
            if (o.as_json) return out_json(j), exit_ok;
            std::printf("counters cleared%s\n", since_note(j).c_str());
            return exit_ok;
        });

    // capture ... (stentorctl_capture.cc registers its tree; the leaves
    // first, since `capture` itself is parsed along with any of them).
    stentorctl::add_capture_command(app, o.capture);
    for (CLI::App* a : {o.capture.list, o.capture.show, o.capture.stop, o.capture.fetch, o.capture.rm, o.capture.cmd})
        commands.push_back({a, [&o](const api_client& c) {
                                return stentorctl::run_capture(o.capture, c.where(), c.token, c.cacert, o.as_json);
                            }});

    // Every command but the ones that print JSON anyway takes --json too
    // (a global option: accepted in any position through fallthrough).
    app.footer(std::string("Global options may come before or after the command.\n\nExit status:\n") + k_exit_status + "\nEnvironment:\n" + k_environment +
               "\nMore: man stentorctl; docs/api.md");
}

stentor::ctl::doc_text doc() {
    return {"stentorctl - control a running stentord (the Stentor audio relay) through its HTTP API",
            STENTOR_VERSION,
            k_description,
            k_exit_status,
            k_environment,
            k_examples,
            "stentord(8), curl(1); docs/api.md, docs/counters.md and docs/profiles.md of the Stentor sources"};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stentorctl: control a running stentord through its HTTP API"};
    options o;
    std::vector<command> commands;
    CLI::Option *ttl_opt = nullptr, *ssrc_opt = nullptr, *cacert_opt = nullptr;
    build(app, o, commands, ttl_opt, ssrc_opt, cacert_opt);

    // Build-time generators (control/meson.build): the same tree, as roff
    // and as a bash completion script.
    if (argc == 2 && std::strcmp(argv[1], "--man") == 0) {
        std::fputs(stentor::ctl::man_page(app, doc()).c_str(), stdout);
        return exit_ok;
    }
    if (argc == 3 && std::strcmp(argv[1], "--completion") == 0 && std::strcmp(argv[2], "bash") == 0) {
        std::fputs(stentor::ctl::bash_completion(app).c_str(), stdout);
        return exit_ok;
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version exit 0; every other parse error is usage: 2
        // (CLI11's own codes, 104/106/109..., never leak out).
        for (const auto& w : app.remaining(true))
            std::fprintf(stderr, "stentorctl: not a command or argument here: %s\n", w.c_str());
        const int rc = app.exit(e);
        return rc == 0 ? exit_ok : exit_usage;
    }

    std::string why;
    const auto addr = parse_api(o.api, cacert_opt->count() > 0, why);
    if (!addr) usage_error("--api " + o.api + ": " + why);
    if (cacert_opt->count() > 0 && addr->scheme != "https") usage_error("--cacert is for HTTPS: use --api https://...");
    if (!o.cacert.empty() && ::access(o.cacert.c_str(), R_OK) != 0)
        usage_error("--cacert " + o.cacert + ": cannot read: " + std::strerror(errno));
    api_client c{*addr, o.token, o.cacert};
    if (!o.token_file.empty()) c.token = read_token_file(o.token_file);
    if (c.token.empty())
        if (const char* t = std::getenv("STENTOR_TOKEN")) c.token = t;
    if (c.token.empty()) usage_error("no bearer token: give --token-file PATH or set STENTOR_TOKEN");

    for (const auto& cmd : commands)
        if (cmd.app->parsed()) return cmd.run(c);
    usage_error("no command");
}
