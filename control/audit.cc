#include "audit.h"

#include <vector>

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

refusal_log::refusal_log(std::chrono::milliseconds window, size_t max_sources)
    : _window(window), _max_sources(max_sources) {}

std::string refusal_log::summary_line(uint32_t ip, uint64_t held, int status, std::string_view code,
                                      std::chrono::milliseconds window) {
    const std::string who = ip == 0 ? std::string("other addresses")
                                    : fmt::format("{}.{}.{}.{}", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
    const double s = static_cast<double>(window.count()) / 1000.0;
    return fmt::format("api: audit: {}: {} more request{} refused {}{}{} in {:g} s (at most one line per address per "
                       "{:g} s)",
                       who, held, held == 1 ? "" : "s", status, code.empty() ? "" : " ", code, s, s);
}

void refusal_log::refused(uint32_t ip, std::string_view method, std::string_view url, int status,
                          std::string_view code) {
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard g(_mu);
        auto it = _sources.find(ip);
        if (it == _sources.end() && _sources.size() >= _max_sources) {
            if (_others.held++ == 0) _others.since = now;
            _others.status = status;
            _others.code = std::string(code);
            return;
        }
        if (it != _sources.end()) {
            ++it->second.held;
            it->second.status = status;
            it->second.code = std::string(code);
            return;
        }
        _sources.emplace(ip, source{now, 0, status, std::string(code)});
    }
    // The first of a window: the audit line itself, at once.
    spdlog::warn("{}", audit_line(ip, method, url, status, code));
}

void refusal_log::flush() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> lines;
    {
        std::lock_guard g(_mu);
        for (auto it = _sources.begin(); it != _sources.end();) {
            source& s = it->second;
            if (now - s.since < _window) {
                ++it;
                continue;
            }
            if (s.held == 0) {   // a quiet window: the next refusal is logged at once
                it = _sources.erase(it);
                continue;
            }
            lines.push_back(summary_line(it->first, s.held, s.status, s.code, _window));
            s.held = 0;
            s.since = now;
            ++it;
        }
        if (_others.held != 0 && now - _others.since >= _window) {
            lines.push_back(summary_line(0, _others.held, _others.status, _others.code, _window));
            _others.held = 0;
        }
    }
    for (const auto& l : lines) spdlog::warn("{}", l);
}

}  // namespace stentor::control
