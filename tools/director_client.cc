#include "director_client.h"

#include <chrono>
#include <cstdlib>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "net.h"

namespace stentor::tools {

struct director_client::impl {
    std::vector<std::string> urls;
    std::string auth;
    std::string ca_file;    // $STENTOR_DIRECTOR_CA: the CA (or certificate) https:// directors are verified with
    long timeout_ms;
    CURL* curl = nullptr;   // one handle: its connection to a director is kept alive
    curl_slist* headers = nullptr;
    size_t first = 0;       // the director that answered last is asked first next time
};

namespace {

size_t on_body(char* p, size_t size, size_t n, void* out) {
    auto* s = static_cast<std::string*>(out);
    if (s->size() + size * n > 65536) return 0;   // a placement for one listener is a few hundred bytes
    s->append(p, size * n);
    return size * n;
}

}  // namespace

director_client::director_client(std::vector<std::string> urls, std::string bearer, long timeout_ms)
    : _i(std::make_unique<impl>()) {
    if (urls.empty()) throw tool_error("--director: at least one URL");
    for (auto& u : urls) {
        // https:// for a director off loopback (it serves plain HTTP on
        // loopback only: docs/fleet.md), verified against the system's CAs
        // or $STENTOR_DIRECTOR_CA.
        const bool ok = (u.rfind("http://", 0) == 0 && u.size() > 7) || (u.rfind("https://", 0) == 0 && u.size() > 8);
        if (!ok) throw tool_error("--director " + u + ": not an http:// or https:// URL");
        while (!u.empty() && u.back() == '/') u.pop_back();
    }
    _i->urls = std::move(urls);
    _i->auth = "Authorization: Bearer " + bearer;
    _i->timeout_ms = timeout_ms;
    if (const char* ca = std::getenv("STENTOR_DIRECTOR_CA"); ca != nullptr && *ca != '\0') _i->ca_file = ca;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw tool_error("curl_global_init failed");
    _i->curl = curl_easy_init();
    if (_i->curl == nullptr) throw tool_error("curl_easy_init failed");
    _i->headers = curl_slist_append(_i->headers, _i->auth.c_str());
    _i->headers = curl_slist_append(_i->headers, "Content-Type: application/json");
}

director_client::~director_client() {
    curl_slist_free_all(_i->headers);
    if (_i->curl != nullptr) curl_easy_cleanup(_i->curl);
    curl_global_cleanup();
}

director_answer director_client::place(const place_query& q) {
    nlohmann::json body{{"session", q.session}, {"listeners", 1}, {"tier", q.tier}};
    if (!q.region.empty()) body["region"] = q.region;
    if (!q.exclude.empty()) body["exclude"] = q.exclude;
    if (q.ipv6) body["family"] = "ipv6";   // absent: IPv4, what directors before the field place
    const std::string text = body.dump();
    director_answer a;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t k = 0; k < _i->urls.size(); ++k) {
        const size_t idx = (_i->first + k) % _i->urls.size();
        const std::string url = _i->urls[idx] + "/v1/place";
        std::string reply;
        CURL* c = _i->curl;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, _i->headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(text.size()));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, _i->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, _i->timeout_ms);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (!_i->ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, _i->ca_file.c_str());
        a.director = _i->urls[idx];
        a.http = 0;
        const CURLcode rc = curl_easy_perform(c);
        if (rc != CURLE_OK) {
            a.error = std::string("no answer: ") + curl_easy_strerror(rc);
            continue;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.http);
        const auto j = nlohmann::json::parse(reply, nullptr, false);
        if (a.http != 200) {
            a.error = j.is_object() && j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>() + ": " + j.value("reason", std::string())
                          : "HTTP " + std::to_string(a.http);
            continue;
        }
        const nlohmann::json* p = nullptr;
        if (j.is_object() && j.contains("placements") && j["placements"].is_array() && j["placements"].size() == 1 &&
            j["placements"][0].is_object())
            p = &j["placements"][0];
        const auto str = [p](const char* k) -> const std::string* {
            const auto it = p->find(k);
            return it != p->end() && it->is_string() && !it->get_ref<const std::string&>().empty()
                       ? &it->get_ref<const std::string&>()
                       : nullptr;
        };
        const auto port = p != nullptr ? p->find("port") : nlohmann::json::const_iterator{};
        if (p == nullptr || !str("edge") || !str("address") || !str("token") || !str("password") || port == p->end() ||
            !port->is_number_unsigned() || port->get<uint64_t>() == 0 || port->get<uint64_t>() > 65535) {
            a.error = "a 200 without one well-formed placement: " + reply.substr(0, 200);
            continue;
        }
        a.placement.edge = *str("edge");
        a.placement.address = *str("address");
        a.placement.port = static_cast<uint16_t>(port->get<uint64_t>());
        a.placement.token = *str("token");
        a.placement.password = *str("password");
        a.ok = true;
        a.error.clear();
        _i->first = idx;
        break;
    }
    a.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return a;
}

}  // namespace stentor::tools
