// Shared by the control-plane tests: a relay on a ring ethdev (workers on
// lcore 1 when launched), its control plane, the HTTP API on an ephemeral
// loopback port and a real HTTP client (cpp-httplib).
#pragma once

#include <memory>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../integration/harness.h"
#include "api.h"
#include "control_plane.h"
#include "relay.h"

namespace stentor::test {

inline constexpr const char* test_token = "test-token-0123456789abcdef";
inline constexpr std::array<uint8_t, 6> gateway_mac = {0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe};

// base_profile() plus a static gateway MAC (no ARP needed for off-link
// listeners) and the API token.
inline control::profile api_profile(const std::string& port_name) {
    auto p = base_profile(port_name);
    p.ports[0].gateway_mac = gateway_mac;
    p.ports[0].line_rate_mbps = 10000;
    p.api.token = test_token;
    return p;
}

struct http_reply {
    int status = 0;
    nlohmann::json body;
    std::string text;
    std::string retry_after;
};

struct api_env {
    control::profile prof;
    std::unique_ptr<control::relay> r;
    std::unique_ptr<control::control_plane> cp;
    std::unique_ptr<control::api_server> api;
    std::unique_ptr<httplib::Client> cli;

    api_env(const control::profile& p, control::relay_options ro, control::control_options co = {},
            control::api_options ao = {}) : prof(p) {
        r = std::make_unique<control::relay>(prof, ro);
        cp = std::make_unique<control::control_plane>(*r, prof, co);
        r->state().load_static(prof);
        r->start();
        cp->start();
        ao.token = test_token;
        api = std::make_unique<control::api_server>(*cp, ao);
        cli = std::make_unique<httplib::Client>("127.0.0.1", static_cast<int>(api->port()));
        cli->set_keep_alive(true);
        // Headers and body go out in two writes: without NODELAY, Nagle holds
        // the body until the server's delayed ACK (40 ms per request).
        cli->set_tcp_nodelay(true);
        cli->set_read_timeout(30);
    }
    ~api_env() {
        cli.reset();
        api.reset();
        cp->stop();
        r->stop();
        cp.reset();
        r.reset();
    }

    http_reply call(const std::string& method, const std::string& path, const std::string& body = "",
                    const std::string& token = test_token) {
        httplib::Headers h;
        if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
        httplib::Result res = method == "GET"      ? cli->Get(path, h)
                              : method == "POST"   ? cli->Post(path, h, body, "application/json")
                              : method == "DELETE" ? cli->Delete(path, h)
                                                   : cli->Put(path, h, body, "application/json");
        http_reply out;
        if (!res) return out;
        out.status = res->status;
        out.text = res->body;
        out.retry_after = res->get_header_value("Retry-After");
        out.body = nlohmann::json::parse(res->body, nullptr, false);
        return out;
    }
    http_reply get(const std::string& p) { return call("GET", p); }
    http_reply post(const std::string& p, const nlohmann::json& j) { return call("POST", p, j.dump()); }
    http_reply del(const std::string& p) { return call("DELETE", p); }
};

}  // namespace stentor::test
