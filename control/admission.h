// Admission control: may this join be carried without hurting the listeners
// already admitted? Capacity is planned per egress port (line rate, frame
// size) and for the fan-out cores (replicas per second), whichever is
// lower, minus headroom; tiers reserve capacity for the tiers above them;
// token buckets bound the join rate per session and for the whole relay.
//
// The arithmetic (docs/admission.md):
//   stream rate      pps   = 1000 / frame_ms
//   streams                = speakers of a forward session (at least 1); 1 for a mix session
//   payload          bytes = ceil(max_bitrate_kbps * frame_ms / 8)
//   IP header        bytes = 20 (IPv4 listener) or 40 (IPv6 listener)
//   frame on wire    bytes = max(60, 14 + IP header + 8 + 12 + payload) + 4 (FCS) + 8 (preamble/SFD) + 12 (IFG)
//   port load        bit/s = streams * pps * frame on wire * 8   (per listener, by its family)
//   port capacity    bit/s = line_rate_mbps * 1e6 * (100 - headroom_pct) / 100
//   fan-out capacity pps   = fanout cores * fanout_pps_per_core * (100 - headroom_pct) / 100
//   tier t may fill capacity * (100 - sum of tier_reserve_pct of tiers < t) / 100
// The overload controller may lower the fan-out capacity to what was carried
// when it last shed (overload cap) until load has stayed low for its hold time.
//
// Called by relay_state under its mutex; has its own mutex for the readers
// (stats, metrics, the overload controller). Lock order: state, then admission.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "action_error.h"
#include "config.h"
#include "stentor/dp_counters.h"

namespace stentor::control {

// A listener's family: its replicas carry a 20-byte IPv4 or a 40-byte IPv6
// header (42 or 62 bytes before the RTP header), so on the wire an IPv6
// listener costs 20 bytes a packet more; the fan-out's replicas/s are the
// same.
enum ip_family : uint8_t { family_ipv4 = 0, family_ipv6 = 1, nb_families = 2 };

// New listeners of one request by [family][egress port][tier].
using join_counts = std::array<std::array<std::array<uint64_t, dp::max_tiers>, dp::max_ports>, nb_families>;

// What one listener costs: `streams` streams of one session's codec
// settings. A listener of a forward session gets every speaker's stream.
struct listener_cost {
    double pps;                                  // packets/s towards one listener (all streams)
    unsigned payload;                            // RTP payload bytes per packet (worst case, from max_bitrate_kbps)
    std::array<unsigned, nb_families> wire_bytes;   // [family]: bytes on the wire per packet incl. FCS, preamble, IFG
    std::array<double, nb_families> bps;            // [family]: bits/s on the wire (all streams)
};
// `trailer`: bytes the relay adds after the RTP payload (an SRTP-protected
// session's tag and MKI: srtp::max_trailer, planned at the largest suite).
listener_cost cost_of(unsigned frame_ms, unsigned max_bitrate_kbps, unsigned streams = 1, unsigned trailer = 0);

struct admission_config {
    std::vector<std::string> port_names;
    std::vector<double> line_rate_mbps;        // effective, per port
    unsigned nb_fanout_cores = 1;
    double fanout_pps_per_core = 50e6;
    unsigned headroom_pct = 10;
    std::array<unsigned, dp::max_tiers> tier_reserve_pct{};   // last entry unused
    unsigned join_rate_per_s = 2000000;
    unsigned session_join_rate_per_s = 1000000;
};

// From the profile; `reported_mbps` is each port's link speed (used where
// line_rate_mbps is 0; 0 there too means unknown: 10 Gbit/s is assumed).
admission_config admission_config_from(const profile& p, const std::vector<uint32_t>& reported_mbps);

struct admission_report {
    struct port {
        std::string name;
        double line_rate_mbps;
        double capacity_bps;     // after headroom
        double used_bps;
    };
    std::vector<port> ports;
    unsigned nb_fanout_cores;
    double fanout_pps_per_core;
    double fanout_capacity_pps;  // after headroom
    std::optional<double> overload_cap_pps;
    double used_pps;
    unsigned headroom_pct;
    std::array<unsigned, dp::max_tiers> tier_reserve_pct;
    unsigned join_rate_per_s;
    unsigned session_join_rate_per_s;
    std::map<std::string, uint64_t> refusals;   // by reason
    uint64_t admitted;                          // listeners admitted in total
};

class admission {
public:
    using clock = std::chrono::steady_clock;
    explicit admission(admission_config c);

    // Admit n listeners of one session (counts by port and tier), each
    // costing `c`; commits the load and takes the join tokens, or throws
    // action_error (capacity, rate_limited with retry_after_s, invalid) and
    // changes nothing.
    void admit(uint32_t session_id, const listener_cost& c, const join_counts& n, clock::time_point now = clock::now());
    // One listener already admitted moves to tier `to_tier` (its family and
    // port stay: relay_state::listener_set_tier). Judged as a join at that
    // tier would be, with its own load set aside: the port and fan-out
    // capacity within the share the tiers above `to_tier` leave it, then
    // one token of the session's and the relay's join buckets (a move is a
    // join's work for the control plane: a publish, a journal record).
    // Its load stays what it was (a listener costs the same at any tier)
    // and it is not counted as admitted again. Throws action_error as
    // admit() does (capacity, rate_limited, invalid) and changes nothing.
    void admit_move(uint32_t session_id, const listener_cost& c, ip_family f, unsigned port, unsigned to_tier,
                    clock::time_point now = clock::now());
    // More load for listeners already admitted (a speaker joining a forward
    // session adds its stream to each of them): capacity only, no join
    // tokens. Throws capacity and changes nothing.
    void admit_load(const listener_cost& c, const join_counts& n);
    void release(const listener_cost& c, ip_family f, unsigned port, uint64_t n);
    void release_load(const listener_cost& c, const join_counts& n);
    void session_ended(uint32_t session_id);
    void count_refusal(error_code code);

    // New limits (SIGHUP reload): what is admitted stays admitted (a lower
    // capacity refuses joins until the load is under it); the join buckets
    // keep their tokens, clamped to the new depth.
    void reconfigure(const admission_config& c);
    // Journal replay at start (relay_state::set_replay): listeners that
    // joined before the restart are planned against capacity but take no
    // join tokens and meet no join-rate burst limit.
    void set_replay(bool on);

    // Overload controller: cap the fan-out load admitted (nullopt = no cap).
    void set_overload_cap(std::optional<double> pps);
    double used_pps() const;
    admission_report report() const;

private:
    struct bucket {
        double tokens;
        clock::time_point last;
    };
    void refill(bucket& b, double rate, clock::time_point now) const;
    // Throws capacity unless n listeners costing c fit (caller holds _mu).
    void check_capacity(const listener_cost& c, const join_counts& n, const char* what) const;
    void add_load(const listener_cost& c, const join_counts& n, double sign);
    // Takes `total` tokens of the session's and the relay's join buckets or
    // throws (invalid: more than a bucket holds; rate_limited); caller holds _mu.
    void take_join_tokens(uint32_t session_id, uint64_t total, clock::time_point now);

    admission_config _cfg;
    mutable std::mutex _mu;
    std::vector<double> _port_used_bps;
    double _used_pps = 0;
    std::optional<double> _overload_cap;
    bucket _global;
    std::map<uint32_t, bucket> _sessions;
    std::map<std::string, uint64_t> _refusals;
    uint64_t _admitted = 0;
    bool _replay = false;
};

}  // namespace stentor::control
