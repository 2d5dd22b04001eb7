#include "stats.h"

#include <atomic>

namespace stentor::control {
namespace {

inline uint64_t rd(const uint64_t& v) noexcept {
    return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(v)).load(std::memory_order_relaxed);
}

}  // namespace

dp::lcore_counters snapshot_counters(const dp::lcore_counters& c) noexcept {
    dp::lcore_counters s{};
    s.rx_packets = rd(c.rx_packets);
    s.rx_bytes = rd(c.rx_bytes);
    s.rtp_in = rd(c.rtp_in);
    s.replicas_out = rd(c.replicas_out);
    s.tx_bytes = rd(c.tx_bytes);
    s.arp_replies = rd(c.arp_replies);
    s.arp_requests = rd(c.arp_requests);
    s.icmp_replies = rd(c.icmp_replies);
    s.busy_cycles = rd(c.busy_cycles);
    s.idle_cycles = rd(c.idle_cycles);
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i) s.drops[i] = rd(c.drops[i]);
    for (size_t i = 0; i < dp::max_tiers; ++i) s.tier_misses[i] = rd(c.tier_misses[i]);
    for (size_t i = 0; i < dp::max_ports; ++i) {
        s.port_rx[i] = rd(c.port_rx[i]);
        s.port_tx[i] = rd(c.port_tx[i]);
    }
    return s;
}

void accumulate(dp::lcore_counters& t, const dp::lcore_counters& c) noexcept {
    const dp::lcore_counters s = snapshot_counters(c);
    t.rx_packets += s.rx_packets;
    t.rx_bytes += s.rx_bytes;
    t.rtp_in += s.rtp_in;
    t.replicas_out += s.replicas_out;
    t.tx_bytes += s.tx_bytes;
    t.arp_replies += s.arp_replies;
    t.arp_requests += s.arp_requests;
    t.icmp_replies += s.icmp_replies;
    t.busy_cycles += s.busy_cycles;
    t.idle_cycles += s.idle_cycles;
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i) t.drops[i] += s.drops[i];
    for (size_t i = 0; i < dp::max_tiers; ++i) t.tier_misses[i] += s.tier_misses[i];
    for (size_t i = 0; i < dp::max_ports; ++i) {
        t.port_rx[i] += s.port_rx[i];
        t.port_tx[i] += s.port_tx[i];
    }
}

counter_list named_counters(const dp::lcore_counters& t, const std::vector<std::string>& port_names,
                            bool include_zero) {
    counter_list out{
        {"rx_packets", t.rx_packets},     {"rx_bytes", t.rx_bytes},
        {"rtp_in", t.rtp_in},             {"replicas_out", t.replicas_out},
        {"tx_bytes", t.tx_bytes},         {"arp_replies", t.arp_replies},
        {"arp_requests", t.arp_requests}, {"icmp_replies", t.icmp_replies},
        {"busy_cycles", t.busy_cycles},   {"idle_cycles", t.idle_cycles},
    };
    for (size_t p = 0; p < port_names.size() && p < dp::max_ports; ++p) {
        out.emplace_back("port/" + port_names[p] + "/rx_packets", t.port_rx[p]);
        out.emplace_back("port/" + port_names[p] + "/tx_packets", t.port_tx[p]);
    }
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i)
        if (include_zero || t.drops[i] != 0)
            out.emplace_back("drop/" + std::string(dp::drop_reason_names[i]), t.drops[i]);
    for (size_t i = 0; i < dp::max_tiers; ++i)
        if (include_zero || t.tier_misses[i] != 0)
            out.emplace_back("tier_misses/" + std::to_string(i), t.tier_misses[i]);
    return out;
}

}  // namespace stentor::control
