// What a session, a speaker and a listener are, as every face gives them:
// the API's POST bodies (api_parse), a static [[session]] of the profile
// (config) and the model (relay_state) all speak these; the rules they must
// meet are one set too (check_session & co. in config.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ip6.h"

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

// SRTP (docs/srtp.md). ingress required: a speaker's packets are dropped
// unless they authenticate with one of its keys; egress session_key: every
// packet to listeners is protected once with the session's active key.
enum class srtp_ingress_mode : uint8_t { off, required };
enum class srtp_egress_mode : uint8_t { off, session_key };
constexpr std::string_view name_of(srtp_ingress_mode m) noexcept { return m == srtp_ingress_mode::required ? "required" : "off"; }
constexpr std::string_view name_of(srtp_egress_mode m) noexcept { return m == srtp_egress_mode::session_key ? "session_key" : "off"; }
constexpr std::optional<srtp_ingress_mode> parse_srtp_ingress(std::string_view s) noexcept {
    if (s == "off") return srtp_ingress_mode::off;
    if (s == "required") return srtp_ingress_mode::required;
    return std::nullopt;
}
constexpr std::optional<srtp_egress_mode> parse_srtp_egress(std::string_view s) noexcept {
    if (s == "off") return srtp_egress_mode::off;
    if (s == "session_key") return srtp_egress_mode::session_key;
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
    // Unset: the profile's [srtp] defaults (resolved when the session is created).
    std::optional<srtp_ingress_mode> srtp_ingress;
    std::optional<srtp_egress_mode> srtp_egress;
    // Created by the fleet's trunks (docs/fleet.md), not by the API or the
    // profile: what etcd says, never journaled (rebuilt from etcd at start).
    bool trunk = false;
};

struct speaker_spec {
    uint32_t ip = 0;                 // host order
    unsigned port = 0;               // the speaker's source UDP port
    std::optional<uint32_t> ssrc;    // when set, other SSRCs are dropped
    std::optional<ipv6_addr> ip6 = std::nullopt;    // set: the speaker is on IPv6 at this address (ip unused, 0)
    bool trunk = false;              // an origin's trunk flow (docs/fleet.md): first copy wins, not journaled
    bool operator==(const speaker_spec&) const = default;
};

struct listener_spec {
    uint32_t ip = 0;                 // host order
    unsigned port = 0;
    unsigned tier = 0;               // 0 is the highest priority
    bool by_token = false;           // joined by token: under consent (control/join_desk.h)
    std::optional<ipv6_addr> ip6 = std::nullopt;    // set: an IPv6 listener at this address (ip unused, 0)
    bool trunk = false;              // a fleet trunk to an edge (docs/fleet.md): never shed, not journaled
    bool operator==(const listener_spec&) const = default;
};

// A listener as a leave names it: its address and port.
struct listener_addr {
    uint32_t ip = 0;                 // host order
    unsigned port = 0;
    std::optional<ipv6_addr> ip6 = std::nullopt;    // set: an IPv6 listener (ip unused, 0)
    bool operator==(const listener_addr&) const = default;
};

}  // namespace stentor::control

namespace stentor::control {

// "198.18.0.5:6000" or "[2001:db8::5]:6000": how logs, errors and the CLI
// name a peer of either family.
std::string format_peer(uint32_t ip, const std::optional<ipv6_addr>& ip6, unsigned port);

}  // namespace stentor::control
