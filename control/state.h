// The control plane's model of the relay: sessions, speakers, listeners and
// neighbours. It owns the truth; the data plane sees it only through the
// immutable snapshots this class publishes (RCU, copy-on-write chunks).
//
// Every operation is one "action" function, called alike by the static
// profile loader, the HTTP API and the CLI. An action either succeeds or
// throws action_error and changes nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "stentor/dp_snapshot.h"

namespace stentor::dp {
struct dp_shared;
}

namespace stentor::control {

struct action_error : std::runtime_error {
    int status;            // HTTP status the API answers with (400, 404, 409, 429, 503)
    std::string code;      // machine-readable reason: "invalid", "not_found", "capacity", ...
    action_error(int s, std::string c, const std::string& what)
        : std::runtime_error(what), status(s), code(std::move(c)) {}
};

struct session_params {
    uint32_t id = 0;                 // 0 = allocate
    std::string name;
    std::string mode = "forward";
    unsigned udp_port = 0;           // 0 = allocate from the ingress range
    unsigned max_listeners = 0;      // 0 = limits.max_listeners_per_session
    bool recording = false;
    unsigned frame_ms = 20;          // codec frame duration: stream rate = 1000/frame_ms packets/s
    unsigned max_bitrate_kbps = 256; // highest codec bitrate a speaker may send (policer)
};

struct listener_view {
    uint32_t ip;
    unsigned port;
    unsigned tier;
    uint64_t seq;                    // join order (newest = highest), for shedding
};

struct speaker_view {
    uint32_t ip;
    unsigned port;
    std::optional<uint32_t> ssrc;
    uint32_t slot = 0;               // policer slot in the data plane
};

struct session_view {
    uint32_t id;
    std::string name;
    std::string mode;
    unsigned udp_port;
    unsigned max_listeners;
    bool recording;
    unsigned frame_ms;
    unsigned max_bitrate_kbps;
    uint64_t nb_listeners;
    uint64_t listeners_per_tier[dp::max_tiers];
    std::vector<speaker_view> speakers;
};

class relay_state {
public:
    // `shared` carries the snapshot slot, the RCU variable and the neighbour
    // table (limits.max_neighbours entries) that the data plane reads.
    relay_state(const profile& p, dp::dp_shared& shared, unsigned nb_fanout_shards);
    ~relay_state();
    relay_state(const relay_state&) = delete;
    relay_state& operator=(const relay_state&) = delete;

    // --- actions (one per operation) -------------------------------------
    session_view session_create(const session_params& sp);
    void session_end(uint32_t id);
    void speaker_add(uint32_t session_id, uint32_t ip, unsigned port, std::optional<uint32_t> ssrc);
    void speaker_del(uint32_t session_id, uint32_t ip, unsigned port);
    void listener_add(uint32_t session_id, uint32_t ip, unsigned port, unsigned tier);
    void listener_del(uint32_t session_id, uint32_t ip, unsigned port);

    // Apply everything changed since the last call: build the next snapshot,
    // swap it in, wait for the grace period, free what is no longer shared.
    void publish();

    // Load the static section of the profile (sessions, speakers, listeners).
    void load_static(const profile& p);

    // --- queries -----------------------------------------------------------
    std::vector<session_view> sessions() const;
    std::optional<session_view> session(uint32_t id) const;
    std::vector<listener_view> listeners(uint32_t session_id, size_t offset, size_t limit) const;
    uint64_t nb_listeners() const;
    uint64_t published_version() const;

    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

}  // namespace stentor::control
