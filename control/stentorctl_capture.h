// `stentorctl capture`: packet captures through the API (docs/capture.md).
// Kept apart from stentorctl.cc: it registers its own subcommand and runs
// it with its own HTTP client (plain HTTP or verified HTTPS, like the rest).
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace stentorctl {

struct capture_args {
    CLI::App* cmd = nullptr;         // stentorctl capture [options]: run one and fetch its file
    CLI::App* list = nullptr;        // capture list
    CLI::App* show = nullptr;        // capture show ID
    CLI::App* stop = nullptr;        // capture stop ID
    CLI::App* fetch = nullptr;       // capture fetch ID -w FILE
    CLI::App* rm = nullptr;          // capture rm ID
    std::string rx_port, tx_port;
    uint32_t session = 0;
    uint64_t count = 0, seconds = 0, bytes = 0;
    uint32_t snaplen = 0, sample = 0;
    // Given on the command line (0 included: the relay says why not).
    CLI::Option *count_opt = nullptr, *seconds_opt = nullptr, *bytes_opt = nullptr, *snaplen_opt = nullptr,
                *sample_opt = nullptr;
    std::string out;                 // -w FILE ("-": standard output)
    bool detach = false;
    uint32_t id = 0;
    double poll_s = 0.2;
};

// Adds `capture` and its subcommands to `app`.
void add_capture_command(CLI::App& app, capture_args& a);

// Runs whichever of them was given. Exit status: 0 done, 1 refused by the
// relay or the relay unreachable or the capture failed, 2 usage.
// `base` is the API's scheme://host:port; HTTPS is verified against `cacert`
// (empty: the system's CAs), as the rest of stentorctl does.
int run_capture(const capture_args& a, const std::string& base, const std::string& token, const std::string& cacert,
                bool as_json);

}  // namespace stentorctl
