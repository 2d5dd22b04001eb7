#include "stentorctl_capture.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace stentorctl {

namespace {

using nlohmann::json;

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted.store(true); }

struct client {
    std::string base;     // scheme://host:port
    std::string token;
    std::string cacert;   // HTTPS: the relay's CA (empty: the system's)

    httplib::Client make() const {
        httplib::Client c(base);
        c.set_connection_timeout(5);
        c.set_read_timeout(60);
        c.set_bearer_token_auth(token);
        if (base.rfind("https://", 0) == 0) {
            c.enable_server_certificate_verification(true);
            if (!cacert.empty()) c.set_ca_cert_path(cacert);
        }
        return c;
    }

    // The answer's JSON, or nullopt after printing why (unreachable, not 2xx).
    std::optional<json> call(const std::string& method, const std::string& path, const json* body = nullptr) const {
        httplib::Client c = make();
        const std::string b = body != nullptr ? body->dump() : "";
        httplib::Result r = method == "GET"    ? c.Get(path)
                            : method == "POST" ? c.Post(path, b, "application/json")
                                               : c.Delete(path);
        if (!r) {
            std::fprintf(stderr, "stentorctl: cannot reach the API at %s (%s)\n", base.c_str(),
                         httplib::to_string(r.error()).c_str());
            return std::nullopt;
        }
        const json j = json::parse(r->body, nullptr, false);
        if (r->status / 100 != 2) {
            std::string reason = r->body;
            if (!j.is_discarded() && j.is_object())
                reason = j.value("error", std::string("?")) + ": " + j.value("reason", std::string(""));
            std::fprintf(stderr, "stentorctl: HTTP %d %s\n", r->status, reason.c_str());
            return std::nullopt;
        }
        if (j.is_discarded()) {
            std::fprintf(stderr, "stentorctl: the API answered something that is not JSON\n");
            return std::nullopt;
        }
        return j;
    }

    // GET .../file into `out` ("-": stdout). False after printing why.
    bool fetch(uint32_t id, const std::string& out, uint64_t* written) const {
        httplib::Client c = make();
        int fd = -1;
        int status = 0;
        std::string error_body;
        bool io_failed = false;
        *written = 0;
        const auto res = c.Get(
            "/api/v1/captures/" + std::to_string(id) + "/file",
            [&](const httplib::Response& r) {
                status = r.status;
                if (r.status != 200) return true;   // its body is the reason
                fd = out == "-" ? 1 : ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0) {
                    std::fprintf(stderr, "stentorctl: -w %s: %s\n", out.c_str(), std::strerror(errno));
                    io_failed = true;
                    return false;
                }
                return true;
            },
            [&](const char* data, size_t len) {
                if (status != 200) {
                    error_body.append(data, len);
                    return true;
                }
                while (len > 0) {
                    const ssize_t n = ::write(fd, data, len);
                    if (n < 0) {
                        if (errno == EINTR) continue;
                        std::fprintf(stderr, "stentorctl: -w %s: %s\n", out.c_str(), std::strerror(errno));
                        io_failed = true;
                        return false;
                    }
                    data += n;
                    len -= static_cast<size_t>(n);
                    *written += static_cast<uint64_t>(n);
                }
                return true;
            });
        if (fd > 1) ::close(fd);
        if (io_failed) return false;
        if (!res) {
            std::fprintf(stderr, "stentorctl: cannot fetch capture %u: %s\n", id, httplib::to_string(res.error()).c_str());
            return false;
        }
        if (status != 200) {
            const json e = json::parse(error_body, nullptr, false);
            const std::string why = !e.is_discarded() && e.is_object()
                                        ? e.value("error", std::string("?")) + ": " + e.value("reason", std::string(""))
                                        : error_body;
            std::fprintf(stderr, "stentorctl: HTTP %d %s\n", status, why.c_str());
            return false;
        }
        return true;
    }
};

std::string size_str(uint64_t b) {
    char s[32];
    if (b >= (uint64_t{1} << 20)) std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(b) / (1 << 20));
    else if (b >= 1024) std::snprintf(s, sizeof s, "%.1f KiB", static_cast<double>(b) / 1024);
    else std::snprintf(s, sizeof s, "%llu B", static_cast<unsigned long long>(b));
    return s;
}

uint64_t u(const json& j, const char* k) { return j.contains(k) && j[k].is_number_unsigned() ? j[k].get<uint64_t>() : 0; }
std::string str(const json& j, const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }

void print_summary(const json& c) {
    const std::string reason = str(c, "stop_reason");
    std::fprintf(stderr, "capture %llu %s%s: %llu packets, %s written in %.1f s; matched %llu, sampled out %llu, "
                         "not copied %llu (ring full %llu, no mbuf %llu), past the bounds %llu\n",
                 static_cast<unsigned long long>(u(c, "id")), str(c, "state").c_str(),
                 reason.empty() ? "" : (" (" + reason + ")").c_str(), static_cast<unsigned long long>(u(c, "packets")),
                 size_str(u(c, "bytes")).c_str(), c.value("elapsed_s", 0.0),
                 static_cast<unsigned long long>(u(c, "matched")), static_cast<unsigned long long>(u(c, "sampled_out")),
                 static_cast<unsigned long long>(u(c, "ring_full") + u(c, "no_mbuf")),
                 static_cast<unsigned long long>(u(c, "ring_full")), static_cast<unsigned long long>(u(c, "no_mbuf")),
                 static_cast<unsigned long long>(u(c, "discarded")));
    if (!str(c, "error").empty()) std::fprintf(stderr, "capture %llu failed: %s\n",
                                               static_cast<unsigned long long>(u(c, "id")), str(c, "error").c_str());
}

void print_table(const json& list) {
    std::printf("%-5s %-9s %-14s %-34s %9s %10s  %s\n", "ID", "STATE", "REASON", "WHAT", "PACKETS", "BYTES", "FILE");
    for (const auto& c : list)
        std::printf("%-5llu %-9s %-14s %-34s %9llu %10s  %s%s\n", static_cast<unsigned long long>(u(c, "id")),
                    str(c, "state").c_str(), str(c, "stop_reason").c_str(), str(c, "what").c_str(),
                    static_cast<unsigned long long>(u(c, "packets")), size_str(u(c, "bytes")).c_str(),
                    str(c, "file").c_str(), c.value("file_removed", false) ? " (removed)" : "");
}

std::string base_name(const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

void add_capture_command(CLI::App& app, capture_args& a) {
    a.cmd = app.add_subcommand(
        "capture",
        "capture packets into pcapng: a port's RX or TX (--rx/--tx PORT) or a session's ingress (--session ID), "
        "bounded by the relay; waits for it and writes the file (-w); or: capture list | show ID | stop ID | "
        "fetch ID -w FILE | rm ID");
    a.cmd->require_subcommand(0, 1);
    auto* rx = a.cmd->add_option("--rx", a.rx_port, "capture what port PORT receives");
    auto* tx = a.cmd->add_option("--tx", a.tx_port, "capture what the relay hands to port PORT's TX queues");
    auto* ses = a.cmd->add_option("--session", a.session, "capture session ID's ingress (every frame to its UDP port)");
    rx->excludes(tx)->excludes(ses);
    tx->excludes(ses);
    a.count_opt = a.cmd->add_option("-c,--count", a.count, "stop after this many packets (default and most: the relay's capture.max_packets)");
    a.seconds_opt = a.cmd->add_option("--duration", a.seconds, "stop after this many seconds (default and most: capture.max_seconds)");
    a.bytes_opt = a.cmd->add_option("--bytes", a.bytes, "stop before the packets written pass this many bytes (default and most: capture.max_mib)");
    a.snaplen_opt = a.cmd->add_option("-s,--snaplen", a.snaplen, "bytes kept of each frame, 64..65535 (default: whole frames)");
    a.sample_opt = a.cmd->add_option("--sample", a.sample, "keep 1 in N matching packets (default 1: all)");
    a.cmd->add_option("-w,--write", a.out,
                      "write the pcapng here when it is done (\"-\": standard output); default: the relay's file "
                      "name in the current directory");
    a.cmd->add_flag("--detach", a.detach, "start it and print its id; do not wait (then: capture fetch ID -w FILE)");

    a.list = a.cmd->add_subcommand("list", "captures this relay ran since it started, with their state and file");
    a.show = a.cmd->add_subcommand("show", "one capture: state, counters, file");
    a.show->add_option("id", a.id, "capture id")->required();
    a.stop = a.cmd->add_subcommand("stop", "stop a running capture (its file is closed and kept)");
    a.stop->add_option("id", a.id, "capture id")->required();
    a.fetch = a.cmd->add_subcommand("fetch", "download a finished capture's pcapng");
    a.fetch->add_option("id", a.id, "capture id")->required();
    a.fetch->add_option("-w,--write", a.out, "where (\"-\": standard output)")->required();
    a.rm = a.cmd->add_subcommand("rm", "stop a capture if it runs and remove its file from the relay");
    a.rm->add_option("id", a.id, "capture id")->required();
}

int run_capture(const capture_args& a, const std::string& api_base, const std::string& token, const std::string& cacert,
                bool as_json) {
    const client c{api_base, token, cacert};
    const bool json_out = as_json;
    const std::string base = "/api/v1/captures";
    const auto out_json = [](const json& j) { std::printf("%s\n", j.dump(2).c_str()); };
    const std::string item = base + "/" + std::to_string(a.id);

    if (*a.list) {
        const auto j = c.call("GET", base);
        if (!j) return 1;
        if (json_out) out_json(*j);
        else print_table((*j)["captures"]);
        return 0;
    }
    if (*a.show || *a.stop || *a.rm) {
        const auto j = *a.show ? c.call("GET", item) : *a.stop ? c.call("POST", item + "/stop") : c.call("DELETE", item);
        if (!j) return 1;
        if (json_out) out_json(*j);
        else print_table(json::array({*j}));
        return 0;
    }
    if (*a.fetch) {
        uint64_t n = 0;
        if (!c.fetch(a.id, a.out, &n)) return 1;
        if (a.out != "-") std::fprintf(stderr, "wrote %s (%s)\n", a.out.c_str(), size_str(n).c_str());
        return 0;
    }

    json body = json::object();
    if (!a.rx_port.empty() || !a.tx_port.empty()) {
        body["port"] = a.rx_port.empty() ? a.tx_port : a.rx_port;
        body["direction"] = a.rx_port.empty() ? "tx" : "rx";
    } else if (a.session != 0) {
        body["session"] = a.session;
    } else {
        std::fprintf(stderr, "stentorctl: capture: say what to capture: --rx PORT, --tx PORT or --session ID\n");
        return 2;
    }
    if (a.count_opt->count() > 0) body["max_packets"] = a.count;
    if (a.seconds_opt->count() > 0) body["max_seconds"] = a.seconds;
    if (a.bytes_opt->count() > 0) body["max_bytes"] = a.bytes;
    if (a.snaplen_opt->count() > 0) body["snaplen"] = a.snaplen;
    if (a.sample_opt->count() > 0) body["sample"] = a.sample;
    const auto started = c.call("POST", base, &body);
    if (!started) return 1;
    const uint32_t id = (*started)["id"].get<uint32_t>();
    const auto& b = (*started)["bounds"];
    std::fprintf(stderr, "capture %u: %s, until %llu packets, %llu s or %s; relay file %s\n", id,
                 str(*started, "what").c_str(), static_cast<unsigned long long>(u(b, "max_packets")),
                 static_cast<unsigned long long>(u(b, "max_seconds")), size_str(u(b, "max_bytes")).c_str(),
                 str(*started, "file").c_str());
    if (a.detach) {
        if (json_out) out_json(*started);
        else std::printf("%u\n", id);
        return 0;
    }
    // Ctrl-C stops the capture (and keeps what it has), a second one us.
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    const std::string path = base + "/" + std::to_string(id);
    json last = *started;
    bool stop_sent = false;
    for (;;) {
        if (g_interrupted.load() && !stop_sent) {
            std::fprintf(stderr, "stentorctl: stopping capture %u\n", id);
            stop_sent = true;
            std::signal(SIGINT, SIG_DFL);
            const auto j = c.call("POST", path + "/stop");
            if (!j) return 1;
            last = *j;
        } else {
            std::this_thread::sleep_for(std::chrono::duration<double>(a.poll_s));
            const auto j = c.call("GET", path);
            if (!j) return 1;
            last = *j;
        }
        if (str(last, "state") != "running") break;
    }
    print_summary(last);
    if (json_out) out_json(last);
    if (str(last, "state") != "done") return 1;
    const std::string out = a.out.empty() ? base_name(str(last, "file")) : a.out;
    uint64_t n = 0;
    if (!c.fetch(id, out, &n)) return 1;
    if (out != "-") std::fprintf(stderr, "wrote %s (%s)\n", out.c_str(), size_str(n).c_str());
    return 0;
}

}  // namespace stentorctl
