// Packet capture, the control plane's half (docs/capture.md): start, stop
// and report captures of a port's RX or TX or of one session's ingress; the
// writer thread that drains the workers' copies (stentor/dp_capture.h) into a
// pcapng file under the profile's [capture] dir.
//
// Choices, and why:
// - The relay writes the file, under capture.dir, named by the relay
//   (<file_prefix>-<id>-<what>-<UTC time>.pcapng): an API caller names what
//   to capture, never a path, so it cannot make the relay write anywhere
//   else. The finished file is served back over the API
//   (GET /api/v1/captures/{id}/file), which is how `stentorctl capture`
//   writes it wherever its operator says.
// - One capture at a time (a second start is refused with its id): the
//   workers test one word per burst, and one writer is all a control core
//   should spend on it.
// - Bounds are the relay's: every capture stops at its max_packets,
//   max_seconds or max_bytes (packet blocks written), each at most the
//   profile's capture.max_* and at most those by default. Copies that
//   arrive past a bound are counted (`discarded`), not written.
// - At most capture.keep of this relay's files stay in the directory (the
//   running capture's aside): starting or finishing a capture removes the
//   oldest beyond that. The directory is counted, by the names this relay
//   gives (<file_prefix>-<id>-...), so earlier runs' files and the .part a
//   crash or a failed capture left count too; ids go on above the highest
//   one there, and a finished file never replaces another.
// - That scan, the file's creation, its rename and a remove's unlink run
//   under a lock of their own (impl::dir_mu), never under the one every call
//   takes: a slow or huge directory delays a start, a capture's end and a
//   remove, never an API read or a stop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config.h"
#include "stats.h"

namespace stentor::dp {
struct dp_shared;
struct dp_capture;
struct capture_lcore_stats;
}  // namespace stentor::dp

namespace stentor::control {

enum class capture_kind : uint8_t { port_rx, port_tx, session };

// What an API request (or a test) asks for; api_parse.h checks the JSON,
// capture_manager::start the values against the relay.
struct capture_request {
    capture_kind kind = capture_kind::port_rx;
    std::string port;                       // port_rx, port_tx: the port's name
    uint32_t session = 0;                   // session: its id
    std::optional<uint64_t> max_packets;    // absent: capture.max_packets
    std::optional<uint64_t> max_seconds;    // absent: capture.max_seconds
    std::optional<uint64_t> max_bytes;      // absent: capture.max_mib MiB
    std::optional<uint32_t> snaplen;        // bytes kept per frame; absent: whole frames
    std::optional<uint32_t> sample;         // 1 in N; absent: 1 (every packet)
    bool operator==(const capture_request&) const = default;
};

inline constexpr uint32_t capture_snaplen_min = 64;
inline constexpr uint32_t capture_snaplen_max = 65535;
inline constexpr uint32_t capture_sample_max = 1000000;

// The writer's own counters, the relay's totals (capture/<name>), with the
// workers' (dp_capture.h).
#define STENTOR_FOREACH_CAPTURE_STAT(_)                                                              \
    _(captures, "captures started")                                                                  \
    _(written, "packets written to capture files")                                                   \
    _(written_bytes, "packet block bytes written to capture files")                                  \
    _(discarded, "copies that reached the writer after their capture's bound (or its stop): not written") \
    _(write_errors, "captures ended by a failed write (disk full, I/O error)")

struct capture_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_CAPTURE_STAT, capture_stats)
};

struct capture_info {
    uint32_t id = 0;
    capture_kind kind = capture_kind::port_rx;
    std::string port;                 // port_*: the port's name
    uint32_t session = 0;             // session
    unsigned udp_port = 0;            // session: the port its ingress is matched on
    uint64_t max_packets = 0;
    uint64_t max_seconds = 0;
    uint64_t max_bytes = 0;
    uint32_t snaplen = 0;
    uint32_t sample = 1;
    // running -> done (a bound, a stop, the session's end, the relay's
    // stop) or failed (the file could not be written).
    std::string state;
    std::string stop_reason;          // max_packets, max_seconds, max_bytes, stopped, session_ended, relay_stopping, write_error
    std::string error;                // failed: why
    std::string file;                 // full path; ".part" while running
    bool file_removed = false;        // pruned (capture.keep) or deleted
    uint64_t packets = 0;             // written
    uint64_t bytes = 0;               // packet block bytes written
    uint64_t file_bytes = 0;          // the file's size once done
    // The workers' counters over this capture (dp::capture_lcore_stats).
    uint64_t matched = 0, sampled_out = 0, copied = 0, ring_full = 0, no_mbuf = 0;
    uint64_t discarded = 0;
    int64_t started_unix = 0;         // s since the epoch
    double elapsed_s = 0;
};

// What to write into the file's section header.
struct capture_identity {
    std::string app = "stentord";
    std::string file_prefix = "stentor";   // eal.file_prefix: in every file name
};

class capture_manager {
public:
    // `session_port` resolves a session id to its UDP port (nullopt: no such
    // session). `port_names` by port index, as dp_shared::ethdev.
    capture_manager(const capture_config& cfg, capture_identity ident, dp::dp_shared& sh, unsigned nb_workers,
                    std::vector<std::string> port_names,
                    std::function<std::optional<unsigned>(uint32_t)> session_port);
    ~capture_manager();
    capture_manager(const capture_manager&) = delete;
    capture_manager& operator=(const capture_manager&) = delete;

    // What the workers read (dp_shared::capture points here).
    dp::dp_capture* dp();

    // Starts a capture; throws action_error (invalid: a bad value or a
    // bound above the profile's, naming it; not_found: no such session;
    // exists: a capture is running; capacity: the file or the copies' pool
    // cannot be made) and changes nothing then.
    capture_info start(const capture_request& r);
    // Stops capture `id` (if it runs) and waits until its file is closed.
    // Throws action_error(not_found).
    capture_info stop(uint32_t id);
    // Stops it if it runs and removes its file. Throws action_error(not_found).
    capture_info remove(uint32_t id);
    std::optional<capture_info> info(uint32_t id) const;
    std::vector<capture_info> list() const;   // oldest first
    // The finished file of capture `id`; nullopt (with `why`) if there is
    // none to serve: unknown id, still running, failed or removed.
    std::optional<std::string> finished_file(uint32_t id, std::string* why) const;
    // The relay stops (reason relay_stopping) or a session ends.
    void stop_all(const std::string& reason);
    void session_ended(uint32_t session);
    // Waits until no capture runs (tests).
    void wait_idle();
    // Test knob: while held, the writer takes nothing from the ring (it
    // still stops on time and on request), so tests can fill the ring and
    // the pool deterministically.
    void hold_writer(bool held);

    capture_stats stats() const;
    // The workers' counters summed (stentor/dp_capture.h has the type).
    dp::capture_lcore_stats worker_stats() const;
    // The workers' totals and the writer's, as capture/<name>.
    void append_counters(counter_list& out, bool include_zero) const;

    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

std::string_view name_of(capture_kind k) noexcept;
// "port lan0 rx", "session 3 ingress (udp 40002)".
std::string describe(const capture_info& c);
nlohmann::json capture_json(const capture_info& c);

}  // namespace stentor::control
