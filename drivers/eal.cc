#include <cstring>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include "drivers.h"

namespace stentor::drivers {

std::vector<std::string> eal_argv(const eal_params& p) {
    std::vector<std::string> a{"stentord"};
    std::string l;
    for (unsigned c : p.lcores) {
        if (!l.empty()) l.push_back(',');
        l.append(std::to_string(c));
    }
    a.insert(a.end(), {"-l", l, "--main-lcore", std::to_string(p.main_lcore)});
    a.insert(a.end(), {"-m", std::to_string(p.memory_mb)});
    if (!p.hugepages) a.emplace_back("--no-huge");
    if (!p.file_prefix.empty()) a.insert(a.end(), {"--file-prefix", p.file_prefix});
    if (p.pci_allow.empty())
        a.emplace_back("--no-pci");
    else
        for (const auto& d : p.pci_allow) a.insert(a.end(), {"-a", d});
    for (const auto& v : p.vdevs) a.insert(a.end(), {"--vdev", v});
    a.insert(a.end(), {"--log-level", p.log_level});
    // Telemetry stays on (the default): dpdk-telemetry.py reads our counters.
    return a;
}

void eal_init(const eal_params& p) {
    std::vector<std::string> args = eal_argv(p);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0)
        throw driver_error("EAL initialisation failed: " + std::string(rte_strerror(rte_errno)));
}

void eal_cleanup() noexcept { rte_eal_cleanup(); }

rte_mempool* make_pool(const std::string& name, unsigned nb_mbufs, unsigned cache, int socket) {
    rte_mempool* mp = rte_pktmbuf_pool_create(name.c_str(), nb_mbufs, cache, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (mp == nullptr)
        throw driver_error("mempool " + name + " (" + std::to_string(nb_mbufs) +
                           " mbufs): " + rte_strerror(rte_errno) +
                           " — lower eal.mbufs or raise eal.memory_mb");
    return mp;
}

}  // namespace stentor::drivers
