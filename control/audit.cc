#include "audit.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace stentor::control {

bool is_mutating(std::string_view m) { return m != "GET" && m != "HEAD" && m != "OPTIONS"; }

std::string audit_line(uint32_t ip, std::string_view method, std::string_view url, int status,
                       std::string_view error_code) {
    url = url.substr(0, url.find('?'));
    // A path is ASCII from the client; keep the line one line whatever it sent.
    std::string path;
    for (char c : url.substr(0, 256))
        path += (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) ? '?' : c;
    std::string m;
    for (char c : method.substr(0, 16)) m += (c >= 'A' && c <= 'Z') ? c : '?';
    return fmt::format("api: audit: {}.{}.{}.{} {} {} -> {}{}{}", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
                       ip & 0xff, m, path, status, error_code.empty() ? "" : " ", error_code);
}

void audit_api_call(uint32_t ip, std::string_view method, std::string_view url, int status,
                    std::string_view body) {
    std::string code;
    if (status >= 400) {
        const auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_object() && j.contains("error") && j["error"].is_string()) code = j["error"].get<std::string>();
    }
    const auto line = audit_line(ip, method, url, status, code);
    if (status < 400) spdlog::info("{}", line);
    else spdlog::warn("{}", line);
}

}  // namespace stentor::control
