// `stentor-director plan` (docs/fleet.md "Capacity plan"): the fleet a crowd
// needs, from stated per-core figures and line rates. Pure arithmetic; every
// figure it starts from is printed with the answer.
#pragma once

#include <cstdint>
#include <string>

namespace stentor::fleet {

struct plan_inputs {
    uint64_t listeners = 8000000;
    uint32_t sessions = 1;
    uint32_t origins_per_session = 2;        // ST 2022-7 style pair
    double frame_bytes = 134;                // Ethernet frame of one Opus packet (80 B payload)
    double wire_overhead_bytes = 20;         // preamble, inter-frame gap, FCS
    double packets_per_s = 50;               // 20 ms frames
    double line_rate_gbps = 100;             // per edge port
    uint32_t ports_per_edge = 1;
    uint32_t cores_per_edge = 8;             // worker cores an edge has for fan-out
    double fanout_mpps_per_core = 63.7;      // docs/performance.md, fanout_harness (dev VM, 1 core)
    double join_verify_per_s_per_core = 1.4e6;   // docs/performance.md, join_harness
    uint32_t headroom_pct = 10;              // limits.headroom_pct
    uint32_t directors = 2;
    double registry_puts_per_s = 1;          // a relay's record at most once a second while its load moves
    double etcd_writes_limit = 44000;        // etcd's order of magnitude (DESIGN.md)
};

struct plan_output {
    double stream_bps = 0;                   // one listener on the wire
    double per_edge_by_line = 0;             // listeners an edge's ports carry
    double per_edge_by_cores = 0;            // listeners its fan-out cores build
    uint64_t per_edge = 0;                   // the smaller, after headroom
    uint64_t edges = 0;
    uint64_t origins = 0;
    uint32_t depth = 1;                      // trunk hops origin -> ... -> edge
    uint64_t mid_relays = 0;                 // relays between origins and edges when depth > 1
    uint64_t ports = 0;
    uint64_t cores = 0;                      // fan-out cores in use over the edges
    double trunk_gbps = 0;                   // origin -> edge traffic, all trunks
    double edge_egress_gbps = 0;             // all listeners
    double etcd_writes_per_s = 0;            // during a crowd; ~0 when quiet
    uint64_t etcd_keys = 0;
    double crowd_join_s = 0;                 // everyone joining at once, edges verifying in parallel
};

plan_output make_plan(const plan_inputs& in);
// The answer and its assumptions, as stentor-director plan prints them.
std::string format_plan(const plan_inputs& in, const plan_output& out);

}  // namespace stentor::fleet
