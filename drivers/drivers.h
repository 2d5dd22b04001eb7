// EAL and ethdev bring-up. The only place that calls rte_eal_init and
// configures ports; holds no packet logic. Offloads are requested only where
// the device reports them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <rte_ether.h>
#include <rte_mempool.h>

namespace stentor::drivers {

struct driver_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct eal_params {
    std::vector<unsigned> lcores;
    unsigned main_lcore = 0;
    unsigned memory_mb = 512;
    bool hugepages = false;
    std::string file_prefix;
    std::vector<std::string> pci_allow;
    std::vector<std::string> vdevs;
    std::string log_level = "notice";
};

// The argv handed to rte_eal_init (argv[0] included), for logs and tests.
std::vector<std::string> eal_argv(const eal_params& p);
// Initialise EAL once per process; throws driver_error naming the cause.
void eal_init(const eal_params& p);
void eal_cleanup() noexcept;

// dpdk-dumpcap support (rte_pdump_init): call after EAL init, in a primary
// process whose memory a secondary can map (hugepages). Throws driver_error.
void pdump_init();
void pdump_uninit() noexcept;

rte_mempool* make_pool(const std::string& name, unsigned nb_mbufs, unsigned cache, int socket);

struct port_params {
    std::string name;          // operator's name
    std::string device;        // ethdev name or PCI address
    unsigned rx_queues = 1;
    unsigned tx_queues = 1;
    unsigned rx_desc = 1024;
    unsigned tx_desc = 1024;
    unsigned mtu = 1500;
    bool set_mac = false;
    rte_ether_addr mac{};
    bool rx_intr = false;      // ask for Rx queue interrupts (dataplane.idle = "adaptive")
};

struct port_state {
    uint16_t port_id = 0;
    std::string name;
    std::string driver;
    rte_ether_addr mac{};
    uint64_t rx_offloads = 0;   // enabled
    uint64_t tx_offloads = 0;
    uint32_t link_speed_mbps = 0;
    bool link_up = false;
    bool rx_intr = false;       // Rx queue interrupts asked for and the PMD arms them
};

// Find the ethdev, configure queues from its reported limits, start it.
// Throws driver_error("port <name> (<device>): <what>") on failure.
port_state port_start(const port_params& p, rte_mempool* pool);
void port_stop(uint16_t port_id) noexcept;
void port_link(port_state& s) noexcept;

// Basic and extended statistics as (name, value) pairs.
std::vector<std::pair<std::string, uint64_t>> port_stats(uint16_t port_id);

// The NIC's own basic counters (rte_eth_stats), as testpmd shows them:
// what the NIC received and sent, what it missed (no RX descriptor free:
// the rx lcores did not poll in time), errors, and receive mbuf
// allocation failures. valid = false if the PMD gave none.
struct nic_stats {
    bool valid = false;
    uint64_t rx_packets = 0, tx_packets = 0;    // ipackets, opackets
    uint64_t rx_bytes = 0, tx_bytes = 0;        // ibytes, obytes
    uint64_t rx_missed = 0;                     // imissed
    uint64_t rx_errors = 0, tx_errors = 0;      // ierrors, oerrors
    uint64_t rx_nombuf = 0;                     // rx_nombuf
};
nic_stats port_nic_stats(uint16_t port_id) noexcept;

}  // namespace stentor::drivers
