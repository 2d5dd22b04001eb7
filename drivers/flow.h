// Hardware ingress filtering with rte_flow, chosen by capability: where the
// port accepts the rules, registered speaker flows are steered to the ingress
// queue and every other IPv4/UDP packet to the speaker port range is dropped
// by the NIC before it costs a core anything. Where it does not (virtual
// ports, NICs without rte_flow or without these patterns), nothing is
// installed and the software validator, which always runs, does all of the
// filtering. Either way the data plane's behaviour is the same; only where
// the unknown packets die differs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct rte_flow;

namespace stentor::drivers {

// One registered speaker flow, host byte order.
struct speaker_flow {
    uint32_t src_ip;
    uint16_t src_port;
    uint16_t dst_port;
};

struct flow_filter_spec {
    uint32_t relay_ip = 0;          // host order: the port's own address
    uint16_t udp_port_min = 0;      // speaker ingress range (host order)
    uint16_t udp_port_max = 0;
    uint16_t queue_id = 0;          // RX queue the speakers' packets go to
    std::vector<speaker_flow> speakers;
};

// The rules installed on one port. Empty (active == false) when hardware
// filtering is not in use; `reason` then says why, for logs and the API.
struct flow_filter {
    uint16_t port_id = 0;
    bool active = false;
    std::string reason;
    std::vector<rte_flow*> rules;
};

// Validate every rule first and create them only if all validate: a port gets
// either the whole filter or none of it (a partial filter could drop a
// registered speaker whose QUEUE rule was refused). Never throws; the port's
// existing rules and configuration are not touched when it returns inactive.
// Call on a started port; re-install (remove + install) when speakers change.
flow_filter install_ingress_filter(uint16_t port_id, const flow_filter_spec& spec);

// Destroy the rules `install_ingress_filter` created (and only those).
void remove_ingress_filter(flow_filter& f) noexcept;

// The masked (value, mask) pairs that cover [lo, hi] exactly: how a port
// range becomes exact-match rules on NICs that do not support range items.
std::vector<std::pair<uint16_t, uint16_t>> port_range_masks(uint16_t lo, uint16_t hi);

}  // namespace stentor::drivers
