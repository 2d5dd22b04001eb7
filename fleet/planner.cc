#include "planner.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace stentor::fleet {

plan_output make_plan(const plan_inputs& in) {
    plan_output o;
    const double keep = (100.0 - in.headroom_pct) / 100.0;
    o.stream_bps = (in.frame_bytes + in.wire_overhead_bytes) * 8 * in.packets_per_s;
    o.per_edge_by_line = in.line_rate_gbps * 1e9 * in.ports_per_edge * keep / o.stream_bps;
    o.per_edge_by_cores = in.fanout_mpps_per_core * 1e6 * in.cores_per_edge * keep / in.packets_per_s;
    o.per_edge = static_cast<uint64_t>(std::floor(std::min(o.per_edge_by_line, o.per_edge_by_cores)));
    o.edges = o.per_edge == 0 ? 0 : (in.listeners + o.per_edge - 1) / o.per_edge;
    o.origins = uint64_t{in.sessions} * in.origins_per_session;
    // Each edge takes each session from each origin of the session: one
    // trunk is one listener stream to the origin. An origin's own slots
    // bound how many edges it feeds directly; past that, a middle tier.
    const uint64_t trunks_per_origin = o.edges;   // every edge, for each session the origin carries
    const uint64_t origin_slots = o.per_edge;     // an origin is built like an edge
    uint64_t level = trunks_per_origin;
    o.depth = 1;
    while (level > origin_slots && origin_slots > 0) {
        const uint64_t mids = (level + origin_slots - 1) / origin_slots;
        o.mid_relays += mids * in.origins_per_session;
        level = mids;
        ++o.depth;
    }
    o.ports = (o.edges + o.origins + o.mid_relays) * in.ports_per_edge;
    // Each edge needs whole cores for its share of the crowd.
    const double per_edge_pps = o.edges == 0 ? 0
                                             : static_cast<double>(in.listeners) / static_cast<double>(o.edges) *
                                                   in.packets_per_s;
    o.cores = o.edges * static_cast<uint64_t>(std::ceil(per_edge_pps / (in.fanout_mpps_per_core * 1e6 * keep)));
    o.trunk_gbps = static_cast<double>(in.sessions) * static_cast<double>(o.edges) * in.origins_per_session *
                   o.stream_bps / 1e9;
    o.edge_egress_gbps = static_cast<double>(in.listeners) * o.stream_bps / 1e9;
    const uint64_t relays = o.edges + o.origins + o.mid_relays;
    o.etcd_writes_per_s = static_cast<double>(relays) * in.registry_puts_per_s;
    o.etcd_keys = relays + in.directors + uint64_t{in.sessions} * o.edges;
    o.crowd_join_s = o.edges == 0 ? 0
                                  : static_cast<double>(in.listeners) /
                                        (static_cast<double>(o.edges) * in.join_verify_per_s_per_core);
    return o;
}

std::string format_plan(const plan_inputs& in, const plan_output& o) {
    std::string s;
    s += fmt::format("fleet for {} listeners in {} session(s)\n", in.listeners, in.sessions);
    s += fmt::format("  edges            {}  ({} listeners each: the smaller of {:.0f} by line rate and {:.0f} by "
                     "fan-out cores)\n",
                     o.edges, o.per_edge, o.per_edge_by_line, o.per_edge_by_cores);
    s += fmt::format("  origins          {}  ({} per session)\n", o.origins, in.origins_per_session);
    if (o.depth > 1) s += fmt::format("  middle relays    {}\n", o.mid_relays);
    s += fmt::format("  tree depth       {} trunk hop(s) origin -> edge\n", o.depth);
    s += fmt::format("  ports            {} x {:.0f} GbE\n", o.ports, in.line_rate_gbps);
    s += fmt::format("  fan-out cores    {} in use over the edges ({} per edge, {} available)\n", o.cores,
                     o.edges == 0 ? 0 : o.cores / o.edges, in.cores_per_edge);
    s += fmt::format("  trunk traffic    {:.3f} Mbit/s origin -> edges ({} trunks)\n", o.trunk_gbps * 1e3,
                     uint64_t{in.sessions} * o.edges * in.origins_per_session);
    s += fmt::format("  listener egress  {:.1f} Gbit/s\n", o.edge_egress_gbps);
    s += fmt::format("  etcd writes/s    {:.0f} during the crowd (each relay's record at most {:.0f}/s), ~0 when "
                     "quiet; {:.2f} % of etcd's ~{:.0f}/s; {} keys, none per listener\n",
                     o.etcd_writes_per_s, in.registry_puts_per_s, 100.0 * o.etcd_writes_per_s / in.etcd_writes_limit,
                     in.etcd_writes_limit, o.etcd_keys);
    s += fmt::format("  crowd join time  {:.1f} s if everyone joins at once (edges verify in parallel, one RX core "
                     "each)\n",
                     o.crowd_join_s);
    s += "assumptions (change them with the options; see docs/fleet.md):\n";
    s += fmt::format("  stream           {:.0f} B frames + {:.0f} B on the wire, {:.0f} packets/s = {:.1f} kbit/s per "
                     "listener\n",
                     in.frame_bytes, in.wire_overhead_bytes, in.packets_per_s, o.stream_bps / 1e3);
    s += fmt::format("  fan-out          {:.1f} Mpps per core (docs/performance.md, fanout_harness on the dev VM)\n",
                     in.fanout_mpps_per_core);
    s += fmt::format("  join             {:.2f} M verifications/s per RX core (docs/performance.md, join_harness)\n",
                     in.join_verify_per_s_per_core / 1e6);
    s += fmt::format("  edge             {} port(s) x {:.0f} Gbit/s, {} fan-out cores, {} % headroom kept free\n",
                     in.ports_per_edge, in.line_rate_gbps, in.cores_per_edge, in.headroom_pct);
    s += fmt::format("  directors        {}; trunks per edge and session: one per origin\n", in.directors);
    return s;
}

}  // namespace stentor::fleet
