#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include <rte_errno.h>
#include <rte_ethdev.h>

#include "drivers.h"

namespace stentor::drivers {
namespace {

[[noreturn]] void fail(const port_params& p, const std::string& what) {
    throw driver_error("port " + p.name + " (" + p.device + "): " + what);
}

}  // namespace

port_state port_start(const port_params& p, rte_mempool* pool) {
    uint16_t port_id = 0;
    if (rte_eth_dev_get_port_by_name(p.device.c_str(), &port_id) != 0)
        fail(p, "no such ethdev (is it in eal.vdevs or eal.pci_allow, and bound to a DPDK driver?)");

    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0)
        fail(p, std::string("dev_info_get: ") + rte_strerror(-rc));
    if (p.rx_queues > info.max_rx_queues)
        fail(p, "rx_queues=" + std::to_string(p.rx_queues) + " but the device supports " +
                    std::to_string(info.max_rx_queues));
    if (p.tx_queues > info.max_tx_queues)
        fail(p, "tx_queues=" + std::to_string(p.tx_queues) + " but the device supports " +
                    std::to_string(info.max_tx_queues));

    rte_eth_conf conf{};
    // Offloads only where reported. Replicas are built complete in software
    // (checksums included) so nothing is required; fast-free is a pure win
    // when available because every replica comes from one pool, refcount 1.
    const uint64_t want_tx = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    conf.txmode.offloads = info.tx_offload_capa & want_tx;
    const uint64_t want_rx = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
    conf.rxmode.offloads = info.rx_offload_capa & want_rx;
    if (p.rx_queues > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    }
    conf.rxmode.mtu = p.mtu;
    // Rx interrupts: no capability flag says whether a PMD has them; PMDs
    // without ignore intr_conf.rxq and have no per-queue event fd, which is
    // probed after the start below.
    conf.intr_conf.rxq = p.rx_intr ? 1 : 0;
    if (p.mtu > info.max_mtu) fail(p, "mtu=" + std::to_string(p.mtu) + " above device max " + std::to_string(info.max_mtu));

    if (int rc = rte_eth_dev_configure(port_id, static_cast<uint16_t>(p.rx_queues),
                                       static_cast<uint16_t>(p.tx_queues), &conf); rc != 0) {
        // A PMD that refuses the interrupt request still polls.
        conf.intr_conf.rxq = 0;
        if (!p.rx_intr || rte_eth_dev_configure(port_id, static_cast<uint16_t>(p.rx_queues),
                                                static_cast<uint16_t>(p.tx_queues), &conf) != 0)
            fail(p, std::string("configure: ") + rte_strerror(-rc));
    }
    uint16_t nb_rxd = static_cast<uint16_t>(p.rx_desc);
    uint16_t nb_txd = static_cast<uint16_t>(p.tx_desc);
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd); rc != 0)
        fail(p, std::string("descriptor counts: ") + rte_strerror(-rc));
    const int socket = rte_eth_dev_socket_id(port_id);
    const unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    rte_eth_rxconf rxc = info.default_rxconf;
    rxc.offloads = conf.rxmode.offloads;
    for (uint16_t q = 0; q < p.rx_queues; ++q)
        if (int rc = rte_eth_rx_queue_setup(port_id, q, nb_rxd, sock, &rxc, pool); rc != 0)
            fail(p, "rx queue " + std::to_string(q) + ": " + rte_strerror(-rc));
    rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < p.tx_queues; ++q)
        if (int rc = rte_eth_tx_queue_setup(port_id, q, nb_txd, sock, &txc); rc != 0)
            fail(p, "tx queue " + std::to_string(q) + ": " + rte_strerror(-rc));

    port_state s;
    s.port_id = port_id;
    s.name = p.name;
    s.driver = info.driver_name ? info.driver_name : "";
    s.rx_offloads = conf.rxmode.offloads;
    s.tx_offloads = conf.txmode.offloads;
    if (p.set_mac) {
        rte_ether_addr mac = p.mac;
        if (int rc = rte_eth_dev_default_mac_addr_set(port_id, &mac); rc != 0 && rc != -ENOTSUP)
            fail(p, std::string("set mac: ") + rte_strerror(-rc));
        s.mac = p.mac;   // we answer ARP with it either way; promiscuous RX below
    } else if (int rc = rte_eth_macaddr_get(port_id, &s.mac); rc != 0) {
        fail(p, std::string("macaddr_get: ") + rte_strerror(-rc));
    }
    if (int rc = rte_eth_dev_start(port_id); rc != 0) fail(p, std::string("start: ") + rte_strerror(-rc));
    // Promiscuous so a configured MAC that the device could not take still
    // receives; the validator drops frames not addressed to us (eth_dst).
    if (p.set_mac) rte_eth_promiscuous_enable(port_id);
    // A queue with an event fd can wake an epoll. Some PMDs keep it armed
    // and have no enable/disable (net_tap: -ENOTSUP), so that is not the test.
    if (conf.intr_conf.rxq != 0 && rte_eth_dev_rx_intr_ctl_q_get_fd(port_id, 0) >= 0) s.rx_intr = true;
    port_link(s);
    return s;
}

namespace {

// net_af_packet reports its link up from start to stop whatever the kernel
// interface does (22.11: a static link struct). Ask the kernel: up means
// administratively up and running (carrier). Slow path: once a second and
// per API read.
bool kernel_link(unsigned if_index, bool& up) noexcept {
    char name[IF_NAMESIZE] = {};
    if (if_indextoname(if_index, name) == nullptr) return false;
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name, sizeof ifr.ifr_name);
    const bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ::close(fd);
    if (ok) up = (ifr.ifr_flags & IFF_UP) != 0 && (ifr.ifr_flags & IFF_RUNNING) != 0;
    return ok;
}

}  // namespace

void port_link(port_state& s) noexcept {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(s.port_id, &link) == 0) {
        s.link_up = link.link_status == RTE_ETH_LINK_UP;
        s.link_speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
    }
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(s.port_id, &info) == 0 && info.if_index != 0 && info.driver_name != nullptr &&
        std::strcmp(info.driver_name, "net_af_packet") == 0) {
        bool up = false;
        if (kernel_link(info.if_index, up)) s.link_up = s.link_up && up;
    }
}

void port_stop(uint16_t port_id) noexcept {
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
}

std::vector<std::pair<std::string, uint64_t>> port_stats(uint16_t port_id) {
    std::vector<std::pair<std::string, uint64_t>> out;
    rte_eth_stats st{};
    if (rte_eth_stats_get(port_id, &st) == 0) {
        out.emplace_back("ipackets", st.ipackets);
        out.emplace_back("opackets", st.opackets);
        out.emplace_back("ibytes", st.ibytes);
        out.emplace_back("obytes", st.obytes);
        out.emplace_back("imissed", st.imissed);
        out.emplace_back("ierrors", st.ierrors);
        out.emplace_back("oerrors", st.oerrors);
        out.emplace_back("rx_nombuf", st.rx_nombuf);
    }
    const int n = rte_eth_xstats_get_names(port_id, nullptr, 0);
    if (n > 0) {
        std::vector<rte_eth_xstat_name> names(static_cast<size_t>(n));
        std::vector<rte_eth_xstat> vals(static_cast<size_t>(n));
        if (rte_eth_xstats_get_names(port_id, names.data(), static_cast<unsigned>(n)) == n &&
            rte_eth_xstats_get(port_id, vals.data(), static_cast<unsigned>(n)) == n)
            for (int i = 0; i < n; ++i)
                out.emplace_back(std::string("x/") + names[static_cast<size_t>(vals[static_cast<size_t>(i)].id)].name,
                                 vals[static_cast<size_t>(i)].value);
    }
    return out;
}

nic_stats port_nic_stats(uint16_t port_id) noexcept {
    nic_stats n;
    rte_eth_stats st{};
    if (rte_eth_stats_get(port_id, &st) != 0) return n;
    n.valid = true;
    n.rx_packets = st.ipackets;
    n.tx_packets = st.opackets;
    n.rx_bytes = st.ibytes;
    n.tx_bytes = st.obytes;
    n.rx_missed = st.imissed;
    n.rx_errors = st.ierrors;
    n.tx_errors = st.oerrors;
    n.rx_nombuf = st.rx_nombuf;
    return n;
}

}  // namespace stentor::drivers
