// What a session is, as every face gives it: the API's POST body
// (api_parse), a static [[session]] of the profile (config) and the model
// (relay_state) all speak session_params.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stentor::control {

// forward: speakers' packets go to every listener as they are; mix: the
// mixer decodes the speakers and listeners get one mixed stream.
enum class session_mode : uint8_t { forward, mix };

// The names the API and the profile parse and print.
inline constexpr std::array<std::string_view, 2> session_mode_names = {"forward", "mix"};

constexpr std::string_view name_of(session_mode m) noexcept {
    return session_mode_names[static_cast<std::size_t>(m)];
}

constexpr std::optional<session_mode> parse_session_mode(std::string_view s) noexcept {
    for (std::size_t i = 0; i < session_mode_names.size(); ++i)
        if (s == session_mode_names[i]) return static_cast<session_mode>(i);
    return std::nullopt;
}

struct session_params {
    uint32_t id = 0;                 // 0 = allocate
    std::string name;                // empty = "session-<id>"
    session_mode mode = session_mode::forward;
    unsigned udp_port = 0;           // 0 = allocate from the ingress range
    unsigned max_listeners = 0;      // 0 = limits.max_listeners_per_session
    bool recording = false;
    unsigned frame_ms = 20;          // codec frame duration: stream rate = 1000/frame_ms packets/s
    unsigned max_bitrate_kbps = 256; // highest codec bitrate a speaker may send (policer)
};

}  // namespace stentor::control
