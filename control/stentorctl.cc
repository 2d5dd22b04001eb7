// stentorctl: the operator's command line for a running stentord. Every
// command is one call of the HTTP API (which runs the same action functions
// as everything else), so the CLI can do nothing the API cannot.
//   stentorctl [--api 127.0.0.1:8080] [--token-file PATH | $STENTOR_TOKEN | --token T] COMMAND
// The token is best given in a file or the environment: a command line is
// readable by every user of the machine (ps, /proc/<pid>/cmdline).
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "stentorctl_capture.h"

namespace {

using nlohmann::json;

struct api_client {
    std::string host;
    int port = 8080;
    std::string token;

    // Returns the parsed body; prints the API's error and exits 1 on a non-2xx answer.
    json call(const std::string& method, const std::string& path, const json* body = nullptr) const {
        httplib::Client c(host, port);
        c.set_connection_timeout(5);
        c.set_tcp_nodelay(true);
        c.set_read_timeout(60);
        c.set_bearer_token_auth(token);
        const std::string b = body ? body->dump() : "";
        httplib::Result r = method == "GET"    ? c.Get(path)
                            : method == "POST" ? c.Post(path, b, "application/json")
                                               : c.Delete(path);
        if (!r) {
            std::fprintf(stderr, "stentorctl: cannot reach the API at %s:%d (%s)\n", host.c_str(), port,
                         httplib::to_string(r.error()).c_str());
            std::exit(1);
        }
        if (r->status / 100 != 2) {
            std::string reason = r->body;
            const json e = json::parse(r->body, nullptr, false);
            if (!e.is_discarded() && e.is_object())
                reason = e.value("error", std::string("?")) + ": " + e.value("reason", std::string(""));
            std::fprintf(stderr, "stentorctl: HTTP %d %s\n", r->status, reason.c_str());
            if (r->has_header("Retry-After"))
                std::fprintf(stderr, "stentorctl: retry after %s s\n", r->get_header_value("Retry-After").c_str());
            std::exit(1);
        }
        if (path == "/metrics") return json(r->body);
        const json j = json::parse(r->body, nullptr, false);
        if (j.is_discarded()) {
            std::fprintf(stderr, "stentorctl: the API answered something that is not JSON\n");
            std::exit(1);
        }
        return j;
    }
};

std::string num(double v) {
    char b[32];
    if (v >= 1e9) std::snprintf(b, sizeof b, "%.2fG", v / 1e9);
    else if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
    else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
    else std::snprintf(b, sizeof b, "%.0f", v);
    return b;
}

double d(const json& j, const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; }

void print_session(const json& s) {
    std::printf("session %u \"%s\" mode=%s udp_port=%u frame_ms=%u max_bitrate_kbps=%u recording=%s\n",
                s["id"].get<unsigned>(), s["name"].get<std::string>().c_str(), s["mode"].get<std::string>().c_str(),
                s["udp_port"].get<unsigned>(), s["frame_ms"].get<unsigned>(), s["max_bitrate_kbps"].get<unsigned>(),
                s["recording"].get<bool>() ? "yes" : "no");
    const auto& t = s["listeners_per_tier"];
    std::printf("  listeners %llu / %u (tiers %llu %llu %llu %llu)\n",
                static_cast<unsigned long long>(s["listeners"].get<uint64_t>()), s["max_listeners"].get<unsigned>(),
                static_cast<unsigned long long>(t[0].get<uint64_t>()), static_cast<unsigned long long>(t[1].get<uint64_t>()),
                static_cast<unsigned long long>(t[2].get<uint64_t>()), static_cast<unsigned long long>(t[3].get<uint64_t>()));
    for (const auto& sp : s["speakers"])
        std::printf("  speaker %s:%u ssrc=%s\n", sp["ip"].get<std::string>().c_str(), sp["port"].get<unsigned>(),
                    sp["ssrc"].is_null() ? "any" : std::to_string(sp["ssrc"].get<uint32_t>()).c_str());
    if (s.contains("mix")) {
        const auto& m = s["mix"];
        if (!m["error"].is_null())
            std::printf("  mix failed: %s\n", m["error"].get<std::string>().c_str());
        else if (m["encoder"].is_null())
            std::printf("  mix: not started (no speaker packet yet)\n");
        else
            std::printf("  mix: %u channel(s), %d bit/s, complexity %d (mixer settings version %llu)\n",
                        m["encoder"]["channels"].get<unsigned>(), m["encoder"]["bitrate_bps"].get<int>(),
                        m["encoder"]["complexity"].get<int>(),
                        static_cast<unsigned long long>(m["encoder"]["settings_version"].get<uint64_t>()));
    }
}

void print_ports(const json& j) {
    std::printf("%-10s %-18s %-10s %-5s %10s %10s %10s %10s\n", "PORT", "DEVICE", "DRIVER", "LINK", "RX_PPS", "TX_PPS",
                "RX_BPS", "TX_BPS");
    for (const auto& p : j["ports"])
        std::printf("%-10s %-18s %-10s %-5s %10s %10s %10s %10s\n", p["name"].get<std::string>().c_str(),
                    p["device"].get<std::string>().c_str(), p["driver"].get<std::string>().c_str(),
                    p["link_up"].get<bool>() ? "up" : "down", num(d(p, "rx_pps")).c_str(), num(d(p, "tx_pps")).c_str(),
                    num(d(p, "rx_bps")).c_str(), num(d(p, "tx_bps")).c_str());
}

void print_lcores(const json& j) {
    std::printf("%-6s %10s %10s %10s %6s\n", "LCORE", "RX_PPS", "TX_PPS", "TX_BPS", "BUSY");
    for (const auto& l : j["lcores"])
        std::printf("%-6u %10s %10s %10s %5.1f%%\n", l["lcore"].get<unsigned>(), num(d(l, "rx_pps")).c_str(),
                    num(d(l, "tx_pps")).c_str(), num(d(l, "tx_bps")).c_str(), 100.0 * d(l, "busy_ratio"));
}

// The token in `path`: the whole file, one line, a final newline allowed.
// Nullopt (with the reason printed) if it cannot be used.
std::optional<std::string> read_token_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "stentorctl: --token-file %s: cannot read: %s\n", path.c_str(), std::strerror(errno));
        return std::nullopt;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    if (t.empty()) {
        std::fprintf(stderr, "stentorctl: --token-file %s: the file is empty\n", path.c_str());
        return std::nullopt;
    }
    for (char ch : t)
        if (ch <= ' ' || ch >= 0x7f) {
            std::fprintf(stderr,
                         "stentorctl: --token-file %s: the token must be alone on one line, printable ASCII "
                         "without spaces\n",
                         path.c_str());
            return std::nullopt;
        }
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0)
        std::fprintf(stderr, "stentorctl: warning: %s is readable by other users (mode %03o); chmod 600 it\n",
                     path.c_str(), static_cast<unsigned>(st.st_mode & 0777));
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stentorctl: control a running stentord through its HTTP API"};
    app.require_subcommand(1);
    std::string api = "127.0.0.1:8080";
    std::string token;
    bool as_json = false;
    app.add_option("--api", api, "API address HOST:PORT (api.listen of the profile)");
    std::string token_file;
    auto* token_opt = app.add_option("--token", token,
                                     "bearer token; visible to every user of the machine in ps and "
                                     "/proc/<pid>/cmdline: prefer --token-file or $STENTOR_TOKEN");
    app.add_option("--token-file", token_file,
                   "file holding the bearer token alone on one line (mode 0600); default: $STENTOR_TOKEN")
        ->excludes(token_opt);
    app.add_flag("--json", as_json, "print the API's JSON instead of a table");

    auto* show = app.add_subcommand("show", "show sessions | session ID | listeners ID | ports | lcores | drops | events | capacity | recordings | recording ID");
    show->require_subcommand(1);
    auto* show_sessions = show->add_subcommand("sessions", "all sessions");
    uint32_t sid = 0;
    auto* show_session = show->add_subcommand("session", "one session");
    show_session->add_option("id", sid, "session id")->required();
    auto* show_listeners = show->add_subcommand("listeners", "listeners of a session, in join order");
    show_listeners->add_option("id", sid, "session id")->required();
    uint64_t offset = 0, limit = 100;
    show_listeners->add_option("--offset", offset, "first listener");
    show_listeners->add_option("--limit", limit, "at most this many");
    auto* show_ports = show->add_subcommand("ports", "ports with rates");
    auto* show_lcores = show->add_subcommand("lcores", "worker lcores with rates");
    auto* show_drops = show->add_subcommand("drops", "drops by reason");
    auto* show_events = show->add_subcommand("events", "overload shed events");
    auto* show_capacity = show->add_subcommand("capacity", "admission capacity");
    auto* show_recordings = show->add_subcommand("recordings", "recordings: state, duration, file");
    auto* show_recording = show->add_subcommand("recording", "one session's recording, with its tracks");
    show_recording->add_option("id", sid, "session id")->required();
    for (auto* s : {show_sessions, show_session, show_listeners, show_ports, show_lcores, show_drops, show_events, show_capacity,
                    show_recordings, show_recording})
        s->add_flag("--json", as_json, "print JSON");

    auto* session = app.add_subcommand("session", "session create | end");
    session->require_subcommand(1);
    auto* s_create = session->add_subcommand("create", "create a session");
    std::string name, mode = "forward";
    unsigned udp_port = 0, max_listeners = 0, frame_ms = 20, max_bitrate = 256;
    bool recording = false;
    s_create->add_option("--name", name);
    s_create->add_option("--mode", mode, "forward | mix");
    s_create->add_option("--udp-port", udp_port, "speaker port (0 = allocate)");
    s_create->add_option("--max-listeners", max_listeners, "0 = limits.max_listeners_per_session");
    s_create->add_flag("--recording", recording);
    s_create->add_option("--frame-ms", frame_ms);
    s_create->add_option("--max-bitrate-kbps", max_bitrate);
    auto* s_end = session->add_subcommand("end", "end a session");
    s_end->add_option("id", sid)->required();

    auto* listener = app.add_subcommand("listener", "listener add | del");
    listener->require_subcommand(1);
    std::string endpoint;
    unsigned tier = 0;
    auto* l_add = listener->add_subcommand("add", "add a listener: SESSION IP:PORT [--tier N]");
    l_add->add_option("session", sid)->required();
    l_add->add_option("endpoint", endpoint, "IP:PORT")->required();
    l_add->add_option("--tier", tier, "0 (highest priority) .. 3");
    auto* l_del = listener->add_subcommand("del", "remove a listener: SESSION IP:PORT");
    l_del->add_option("session", sid)->required();
    l_del->add_option("endpoint", endpoint, "IP:PORT")->required();

    auto* speaker = app.add_subcommand("speaker", "speaker add | del");
    speaker->require_subcommand(1);
    int64_t ssrc = -1;
    auto* sp_add = speaker->add_subcommand("add", "register a speaker: SESSION IP:PORT [--ssrc N]");
    sp_add->add_option("session", sid)->required();
    sp_add->add_option("endpoint", endpoint, "IP:PORT")->required();
    sp_add->add_option("--ssrc", ssrc);
    auto* sp_del = speaker->add_subcommand("del", "remove a speaker: SESSION IP:PORT");
    sp_del->add_option("session", sid)->required();
    sp_del->add_option("endpoint", endpoint, "IP:PORT")->required();

    auto* tokens = app.add_subcommand("tokens", "tokens mint: join tokens for listeners (docs/join.md)");
    tokens->require_subcommand(1);
    auto* t_mint = tokens->add_subcommand("mint", "mint join tokens: one \"TOKEN PASSWORD\" line each (--json: the API's JSON)");
    uint32_t count = 1;
    unsigned ttl_s = 0;
    t_mint->add_option("--session", sid, "session id")->required();
    t_mint->add_option("--count", count, "how many, 1..100000")->required();
    t_mint->add_option("--tier", tier, "listener tier of the tokens, 0 (highest priority) .. 3");
    auto* ttl_opt = t_mint->add_option("--ttl", ttl_s, "life in seconds, 1..604800 (default: join.token_ttl_s of the profile)");
    t_mint->add_flag("--json", as_json, "print JSON");

    auto* stats = app.add_subcommand("stats", "counters, capacity, refusals, sheds");
    stats->add_flag("--json", as_json, "print JSON");
    auto* top = app.add_subcommand("top", "live packets/s per port and lcore");
    unsigned interval_ms = 1000, iterations = 0;
    top->add_option("--interval-ms", interval_ms, "refresh period");
    top->add_option("--iterations", iterations, "stop after N refreshes (0 = until interrupted)");

    stentorctl::capture_args capture;
    stentorctl::add_capture_command(app, capture);

    CLI11_PARSE(app, argc, argv);

    api_client c;
    const auto colon = api.rfind(':');
    if (colon == std::string::npos) {
        std::fprintf(stderr, "stentorctl: --api must be HOST:PORT\n");
        return 2;
    }
    c.host = api.substr(0, colon);
    c.port = std::atoi(api.c_str() + colon + 1);
    if (!token_file.empty()) {
        const auto t = read_token_file(token_file);
        if (!t) return 2;
        token = *t;
    }
    if (token.empty())
        if (const char* t = std::getenv("STENTOR_TOKEN")) token = t;
    if (token.empty()) {
        std::fprintf(stderr, "stentorctl: no bearer token: give --token-file PATH or set STENTOR_TOKEN\n");
        return 2;
    }
    c.token = token;
    auto out = [&](const json& j) { std::printf("%s\n", j.dump(2).c_str()); };
    const std::string v1 = "/api/v1";
    auto ep_path = [&] {
        if (endpoint.find(':') == std::string::npos) {
            std::fprintf(stderr, "stentorctl: expected IP:PORT, got \"%s\"\n", endpoint.c_str());
            std::exit(2);
        }
        return endpoint;
    };
    auto ep_json = [&](json& j) {
        const auto p = ep_path();
        const auto col = p.rfind(':');
        j["ip"] = p.substr(0, col);
        j["port"] = std::strtoul(p.c_str() + col + 1, nullptr, 10);
    };

    if (*capture.cmd) return stentorctl::run_capture(capture, c.host, c.port, c.token, as_json);
    if (*show) {
        if (*show_sessions) {
            const json j = c.call("GET", v1 + "/sessions");
            if (as_json) return out(j), 0;
            std::printf("%-6s %-20s %-8s %-6s %10s %8s\n", "ID", "NAME", "MODE", "PORT", "LISTENERS", "SPEAKERS");
            for (const auto& s : j["sessions"])
                std::printf("%-6u %-20s %-8s %-6u %10llu %8zu\n", s["id"].get<unsigned>(), s["name"].get<std::string>().c_str(),
                            s["mode"].get<std::string>().c_str(), s["udp_port"].get<unsigned>(),
                            static_cast<unsigned long long>(s["listeners"].get<uint64_t>()), s["speakers"].size());
        } else if (*show_session) {
            const json j = c.call("GET", v1 + "/sessions/" + std::to_string(sid));
            if (as_json) return out(j), 0;
            print_session(j);
        } else if (*show_listeners) {
            const json j = c.call("GET", v1 + "/sessions/" + std::to_string(sid) + "/listeners?offset=" +
                                             std::to_string(offset) + "&limit=" + std::to_string(limit));
            if (as_json) return out(j), 0;
            std::printf("session %u: %llu listeners (from %llu)\n", sid,
                        static_cast<unsigned long long>(j["total"].get<uint64_t>()), static_cast<unsigned long long>(offset));
            for (const auto& l : j["listeners"])
                std::printf("  %s:%u tier %u\n", l["ip"].get<std::string>().c_str(), l["port"].get<unsigned>(),
                            l["tier"].get<unsigned>());
        } else if (*show_ports) {
            const json j = c.call("GET", v1 + "/ports");
            if (as_json) return out(j), 0;
            print_ports(j);
        } else if (*show_lcores) {
            const json j = c.call("GET", v1 + "/lcores");
            if (as_json) return out(j), 0;
            print_lcores(j);
        } else if (*show_drops) {
            const json j = c.call("GET", v1 + "/drops");
            if (as_json) return out(j), 0;
            for (auto it = j["drops"].begin(); it != j["drops"].end(); ++it)
                if (it.value().get<uint64_t>() != 0)
                    std::printf("drop/%-28s %llu\n", it.key().c_str(), static_cast<unsigned long long>(it.value().get<uint64_t>()));
            for (size_t t = 0; t < j["tier_misses"].size(); ++t)
                std::printf("tier_misses/%zu %31llu\n", t, static_cast<unsigned long long>(j["tier_misses"][t].get<uint64_t>()));
        } else if (*show_events) {
            const json j = c.call("GET", v1 + "/events");
            if (as_json) return out(j), 0;
            for (const auto& e : j["events"])
                std::printf("#%llu shed %llu listeners of tier %u: %s\n", static_cast<unsigned long long>(e["id"].get<uint64_t>()),
                            static_cast<unsigned long long>(e["listeners"].get<uint64_t>()), e["tier"].get<unsigned>(),
                            e["reason"].get<std::string>().c_str());
        } else if (*show_capacity) {
            out(c.call("GET", v1 + "/capacity"));
        } else if (*show_recordings || *show_recording) {
            json j = *show_recordings ? c.call("GET", v1 + "/recordings")
                                      : json{{"recordings", json::array({c.call("GET", v1 + "/sessions/" + std::to_string(sid) + "/recording")})}};
            if (as_json) return out(*show_recordings ? j : j["recordings"][0]), 0;
            std::printf("%-8s %-10s %10s %12s  %s\n", "SESSION", "STATE", "DURATION", "BYTES", "PATH / ERROR");
            for (const auto& r : j["recordings"]) {
                const std::string where = !r["error"].is_null() ? r["error"].get<std::string>()
                                          : r["path"].is_null() ? std::string("(no audio yet)")
                                                                : r["path"].get<std::string>();
                std::printf("%-8u %-10s %9.3fs %12llu  %s\n", r["session"].get<unsigned>(), r["state"].get<std::string>().c_str(),
                            r["duration_s"].get<double>(), static_cast<unsigned long long>(r["bytes"].get<uint64_t>()),
                            where.c_str());
                if (*show_recording)
                    for (const auto& t : r["tracks"])
                        std::printf("  track ssrc %u: %.3f s from +%.3f s, %llu packets, %llu lost, %llu not recorded "
                                    "(disk full, %.3f s), %s\n",
                                    t["ssrc"].get<unsigned>(), t["duration_s"].get<double>(),
                                    t["start_offset_s"].get<double>(),
                                    static_cast<unsigned long long>(t["packets"].get<uint64_t>()),
                                    static_cast<unsigned long long>(t["lost"].get<uint64_t>()),
                                    static_cast<unsigned long long>(t.value("paused_packets", uint64_t{0})),
                                    d(t, "paused_s"), t["path"].get<std::string>().c_str());
            }
        }
        return 0;
    }
    if (*s_create) {
        json b{{"mode", mode}, {"udp_port", udp_port}, {"max_listeners", max_listeners}, {"recording", recording},
               {"frame_ms", frame_ms}, {"max_bitrate_kbps", max_bitrate}};
        if (!name.empty()) b["name"] = name;
        const json j = c.call("POST", v1 + "/sessions", &b);
        if (as_json) return out(j), 0;
        std::printf("created session %u on udp port %u\n", j["id"].get<unsigned>(), j["udp_port"].get<unsigned>());
        return 0;
    }
    if (*s_end) {
        c.call("DELETE", v1 + "/sessions/" + std::to_string(sid));
        std::printf("ended session %u\n", sid);
        return 0;
    }
    // Members of a session (listeners, speakers): add POSTs IP:PORT with
    // the options, del DELETEs .../IP:PORT.
    const char* member = *l_add || *l_del ? "listener" : "speaker";
    const std::string members = v1 + "/sessions/" + std::to_string(sid) + "/" + member + "s";
    if (*l_add || *sp_add) {
        json b = json::object();
        if (*l_add) b["tier"] = tier;
        if (*sp_add && ssrc >= 0) b["ssrc"] = ssrc;
        ep_json(b);
        c.call("POST", members, &b);
        const std::string note = *l_add ? " (tier " + std::to_string(tier) + ")" : "";
        std::printf("added %s %s to session %u%s\n", member, endpoint.c_str(), sid, note.c_str());
        return 0;
    }
    if (*l_del || *sp_del) {
        c.call("DELETE", members + "/" + ep_path());
        std::printf("removed %s %s from session %u\n", member, endpoint.c_str(), sid);
        return 0;
    }
    if (*t_mint) {
        json b{{"count", count}, {"tier", tier}};
        if (ttl_opt->count() > 0) b["ttl_s"] = ttl_s;   // 0 too: the API says why not
        const json j = c.call("POST", v1 + "/sessions/" + std::to_string(sid) + "/tokens", &b);
        if (as_json) return out(j), 0;
        // Both are base64url: one space between them is an unambiguous split.
        std::string lines;
        lines.reserve(j["tokens"].size() * 72);
        for (const auto& t : j["tokens"])
            lines += t["token"].get<std::string>() + " " + t["password"].get<std::string>() + "\n";
        std::fwrite(lines.data(), 1, lines.size(), stdout);
        return 0;
    }
    if (*stats) {
        const json j = c.call("GET", v1 + "/stats");
        if (as_json) return out(j), 0;
        for (auto it = j["counters"].begin(); it != j["counters"].end(); ++it)
            if (it.value().get<uint64_t>() != 0)
                std::printf("%-36s %llu\n", it.key().c_str(), static_cast<unsigned long long>(it.value().get<uint64_t>()));
        std::printf("%-36s %llu\n", "sessions", static_cast<unsigned long long>(j["sessions"].get<uint64_t>()));
        std::printf("%-36s %llu\n", "listeners", static_cast<unsigned long long>(j["listeners"].get<uint64_t>()));
        const auto& cap = j["capacity"];
        std::printf("%-36s %s of %s replicas/s planned\n", "capacity", num(d(cap, "planned_pps")).c_str(),
                    num(d(cap, "fanout_capacity_pps")).c_str());
        for (auto it = j["refusals"].begin(); it != j["refusals"].end(); ++it)
            std::printf("refusals/%-27s %llu\n", it.key().c_str(), static_cast<unsigned long long>(it.value().get<uint64_t>()));
        std::printf("%-36s %s, %llu listeners shed\n", "overload", j["overload"]["state"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(j["overload"]["listeners_shed"].get<uint64_t>()));
        return 0;
    }
    if (*top) {
        for (unsigned i = 0; iterations == 0 || i < iterations; ++i) {
            if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
            const json p = c.call("GET", v1 + "/ports");
            const json l = c.call("GET", v1 + "/lcores");
            const json s = c.call("GET", v1 + "/stats");
            // Clear and home, like top; plain lines when not on a terminal.
            if (isatty(1)) std::printf("\x1b[H\x1b[2J");
            std::printf("stentor top  sessions %llu  listeners %llu  overload %s  (every %u ms)\n\n",
                        static_cast<unsigned long long>(s["sessions"].get<uint64_t>()),
                        static_cast<unsigned long long>(s["listeners"].get<uint64_t>()),
                        s["overload"]["state"].get<std::string>().c_str(), interval_ms);
            print_ports(p);
            std::printf("\n");
            print_lcores(l);
            std::fflush(stdout);
        }
        return 0;
    }
    return 0;
}
