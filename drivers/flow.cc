// rte_flow ingress filter. Rule layout (group 0):
//   priority 0: ETH / IPV4 src=<speaker> dst=<relay> / UDP src=<sport> dst=<dport> -> QUEUE <queue_id>
//   priority 1: ETH / IPV4 dst=<relay> / UDP dst=<value/mask>                       -> DROP
// The port range is expressed as value/mask blocks (port_range_masks), not
// as a spec/last range: far more NICs accept masks than range items.
// Everything else (ARP, ICMP, other destinations) matches no rule and takes
// the port's default path to the software validator, which still checks every
// layer of the QUEUE'd packets too: the NIC only narrows what reaches a core.
#include "flow.h"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_flow.h>

namespace stentor::drivers {
namespace {

struct rule_desc {
    rte_flow_item_ipv4 ip_spec{};
    rte_flow_item_ipv4 ip_mask{};
    rte_flow_item_udp udp_spec{};
    rte_flow_item_udp udp_mask{};
    bool drop = false;
    uint32_t priority = 0;
};

std::string error_text(int rc, const rte_flow_error& err) {
    std::string s = rte_strerror(-rc);
    if (err.message != nullptr) s += std::string(" (") + err.message + ")";
    return s;
}

// Returns 0 or a negative errno, filling `err`.
int apply(uint16_t port_id, const rule_desc& d, uint16_t queue_id, bool create, rte_flow** out,
          rte_flow_error* err) {
    rte_flow_attr attr{};
    attr.group = 0;
    attr.priority = d.priority;
    attr.ingress = 1;

    rte_flow_item pattern[4]{};
    pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;   // any Ethernet header
    pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
    pattern[1].spec = &d.ip_spec;
    pattern[1].mask = &d.ip_mask;
    pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
    pattern[2].spec = &d.udp_spec;
    pattern[2].mask = &d.udp_mask;
    pattern[3].type = RTE_FLOW_ITEM_TYPE_END;

    rte_flow_action_queue queue{};
    queue.index = queue_id;
    rte_flow_action actions[2]{};
    if (d.drop) {
        actions[0].type = RTE_FLOW_ACTION_TYPE_DROP;
    } else {
        actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
        actions[0].conf = &queue;
    }
    actions[1].type = RTE_FLOW_ACTION_TYPE_END;

    std::memset(err, 0, sizeof *err);
    if (!create) {
        rte_errno = 0;
        return rte_flow_validate(port_id, &attr, pattern, actions, err);
    }
    *out = rte_flow_create(port_id, &attr, pattern, actions, err);
    return *out != nullptr ? 0 : -(rte_errno != 0 ? rte_errno : EIO);
}

}  // namespace

std::vector<std::pair<uint16_t, uint16_t>> port_range_masks(uint16_t lo, uint16_t hi) {
    std::vector<std::pair<uint16_t, uint16_t>> out;
    if (lo > hi) return out;
    uint32_t v = lo;
    // Largest aligned power-of-two block starting at v that stays within hi.
    while (v <= hi) {
        uint32_t size = 1;
        while ((v & (size * 2 - 1)) == 0 && v + size * 2 - 1 <= hi && size < 0x10000) size *= 2;
        out.emplace_back(static_cast<uint16_t>(v), static_cast<uint16_t>(~(size - 1) & 0xffff));
        v += size;
    }
    return out;
}

flow_filter install_ingress_filter(uint16_t port_id, const flow_filter_spec& spec) {
    flow_filter f;
    f.port_id = port_id;
    if (spec.udp_port_min > spec.udp_port_max) {
        f.reason = "empty speaker port range";
        return f;
    }

    std::vector<rule_desc> rules;
    const rte_be32_t relay_be = rte_cpu_to_be_32(spec.relay_ip);
    for (const auto& s : spec.speakers) {
        rule_desc d;
        d.priority = 0;
        d.ip_spec.hdr.src_addr = rte_cpu_to_be_32(s.src_ip);
        d.ip_spec.hdr.dst_addr = relay_be;
        d.ip_mask.hdr.src_addr = RTE_BE32(0xffffffff);
        d.ip_mask.hdr.dst_addr = RTE_BE32(0xffffffff);
        d.udp_spec.hdr.src_port = rte_cpu_to_be_16(s.src_port);
        d.udp_spec.hdr.dst_port = rte_cpu_to_be_16(s.dst_port);
        d.udp_mask.hdr.src_port = RTE_BE16(0xffff);
        d.udp_mask.hdr.dst_port = RTE_BE16(0xffff);
        rules.push_back(d);
    }
    for (const auto& [value, mask] : port_range_masks(spec.udp_port_min, spec.udp_port_max)) {
        rule_desc d;
        d.drop = true;
        d.priority = 1;
        d.ip_spec.hdr.dst_addr = relay_be;
        d.ip_mask.hdr.dst_addr = RTE_BE32(0xffffffff);
        d.udp_spec.hdr.dst_port = rte_cpu_to_be_16(value);
        d.udp_mask.hdr.dst_port = rte_cpu_to_be_16(mask);
        rules.push_back(d);
    }

    // All or nothing: validate everything before creating anything.
    rte_flow_error err{};
    for (size_t i = 0; i < rules.size(); ++i) {
        const int rc = apply(port_id, rules[i], spec.queue_id, false, nullptr, &err);
        if (rc != 0) {
            f.reason = (rc == -ENOSYS || rc == -ENOTSUP ? "rte_flow not supported: " : "rule refused: ") +
                       std::string(rules[i].drop ? "DROP" : "QUEUE") + " rule " + std::to_string(i) + ": " +
                       error_text(rc, err);
            return f;
        }
    }
    for (size_t i = 0; i < rules.size(); ++i) {
        rte_flow* h = nullptr;
        const int rc = apply(port_id, rules[i], spec.queue_id, true, &h, &err);
        if (rc != 0) {
            // Validated but not created (table full, ...): undo, stay in software.
            f.reason = "rule " + std::to_string(i) + " create failed: " + error_text(rc, err);
            remove_ingress_filter(f);
            return f;
        }
        f.rules.push_back(h);
    }
    f.active = true;
    f.reason = std::to_string(f.rules.size()) + " rules (" + std::to_string(spec.speakers.size()) +
               " QUEUE, " + std::to_string(f.rules.size() - spec.speakers.size()) + " DROP)";
    return f;
}

void remove_ingress_filter(flow_filter& f) noexcept {
    for (rte_flow* h : f.rules) {
        rte_flow_error err{};
        rte_flow_destroy(f.port_id, h, &err);
    }
    f.rules.clear();
    f.active = false;
}

}  // namespace stentor::drivers
