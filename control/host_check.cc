#include "host_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace stentor::control {

namespace fs = std::filesystem;

namespace {

using lvl = host_finding::level;

// A path under the root ("/sys/..." -> "<root>/sys/...").
std::string at(const std::string& root, std::string_view path) {
    if (root.empty() || root == "/") return std::string(path);
    std::string r = root;
    while (r.size() > 1 && r.back() == '/') r.pop_back();
    return r + std::string(path);
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])) != 0) ++i;
    return s.substr(i);
}

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream b;
    b << in.rdbuf();
    return trim(b.str());
}

std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<unsigned> number_after(std::string_view s, std::string_view prefix) {
    if (!s.starts_with(prefix)) return std::nullopt;
    s.remove_prefix(prefix.size());
    if (s.empty() || s.size() > 6) return std::nullopt;
    unsigned v = 0;
    for (char ch : s) {
        if (ch < '0' || ch > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    return v;
}

std::vector<unsigned> sorted_unique(std::vector<unsigned> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

bool contains(const std::vector<unsigned>& v, unsigned x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace
std::string format_cpu_list(const std::vector<unsigned>& ids_in);
namespace {

// "lcore 2" or "lcores 2-9".
std::string lcores_text(const std::vector<unsigned>& ids) {
    return (ids.size() == 1 ? "lcore " : "lcores ") + format_cpu_list(ids);
}

// What the host looks like, as far as a profile cares.
struct host_view {
    std::optional<std::vector<unsigned>> online;     // /sys/devices/system/cpu/online
    std::optional<std::vector<unsigned>> allowed;    // Cpus_allowed_list of this process
    std::map<unsigned, unsigned> node_of_cpu;        // /sys/devices/system/node/nodeN/cpulist
    std::map<unsigned, std::vector<unsigned>> cpus_of_node;
    struct pages {
        unsigned size_kb;
        uint64_t total;
        uint64_t free;
    };
    std::map<unsigned, std::vector<pages>> hugepages;   // by node
    bool hugetlbfs = false;
};

host_view read_host(const std::string& root) {
    host_view h;
    if (auto s = read_text(at(root, "/sys/devices/system/cpu/online"))) h.online = parse_cpu_list(*s);
    if (auto st = read_text(at(root, "/proc/self/status"))) {
        std::istringstream in(*st);
        std::string line;
        while (std::getline(in, line))
            if (line.starts_with("Cpus_allowed_list:")) h.allowed = parse_cpu_list(trim(line.substr(18)));
    }
    const auto node_dir = at(root, "/sys/devices/system/node");
    for (const auto& n : list_dir(node_dir)) {
        const auto id = number_after(n, "node");
        if (!id) continue;
        if (auto cl = read_text(node_dir + "/" + n + "/cpulist"))
            if (auto cpus = parse_cpu_list(*cl)) {
                h.cpus_of_node[*id] = *cpus;
                for (unsigned c : *cpus) h.node_of_cpu[c] = *id;
            }
        const auto hp_dir = node_dir + "/" + n + "/hugepages";
        for (const auto& sz : list_dir(hp_dir)) {
            if (!sz.starts_with("hugepages-") || !sz.ends_with("kB")) continue;
            const auto kb = std::strtoul(sz.c_str() + 10, nullptr, 10);
            const auto nr = read_text(hp_dir + "/" + sz + "/nr_hugepages");
            const auto fr = read_text(hp_dir + "/" + sz + "/free_hugepages");
            h.hugepages[*id].push_back({static_cast<unsigned>(kb), nr ? std::strtoull(nr->c_str(), nullptr, 10) : 0,
                                        fr ? std::strtoull(fr->c_str(), nullptr, 10) : 0});
        }
    }
    if (auto m = read_text(at(root, "/proc/mounts"))) {
        std::istringstream in(*m);
        std::string dev, dir, type;
        std::string rest;
        while (in >> dev >> dir >> type) {
            if (type == "hugetlbfs") h.hugetlbfs = true;
            std::getline(in, rest);
        }
    }
    return h;
}

std::string size_text(uint64_t kb) {
    if (kb % (1024 * 1024) == 0) return fmt::format("{} GiB", kb / (1024 * 1024));
    if (kb % 1024 == 0) return fmt::format("{} MiB", kb / 1024);
    return fmt::format("{} kB", kb);
}

// The value of `name=` in a vdev spec ("net_af_packet0,iface=stv-relay").
std::optional<std::string> vdev_arg(std::string_view spec, std::string_view name) {
    size_t pos = spec.find(',');
    while (pos != std::string_view::npos) {
        const size_t next = spec.find(',', pos + 1);
        const auto kv = spec.substr(pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
        if (kv.starts_with(name) && kv.size() > name.size() && kv[name.size()] == '=')
            return std::string(kv.substr(name.size() + 1));
        pos = next;
    }
    return std::nullopt;
}

std::string vdev_name(std::string_view spec) { return std::string(spec.substr(0, spec.find(','))); }

// The kernel interface a virtual device drives, if any.
std::optional<std::string> vdev_iface(std::string_view spec) {
    const auto name = vdev_name(spec);
    if (name.starts_with("net_af_packet") || name.starts_with("eth_af_packet") || name.starts_with("net_tap") ||
        name.starts_with("net_af_xdp"))
        return vdev_arg(spec, "iface");
    if (name.starts_with("net_pcap") || name.starts_with("eth_pcap")) return vdev_arg(spec, "iface");
    return std::nullopt;
}

// The port that drives a device (its index), or -1.
int port_of_device(const profile& p, std::string_view device) {
    for (size_t i = 0; i < p.ports.size(); ++i)
        if (p.ports[i].device == device) return static_cast<int>(i);
    return -1;
}

std::vector<unsigned> worker_lcores(const profile& p) {
    std::vector<unsigned> w = p.dataplane.rx_lcores;
    w.insert(w.end(), p.dataplane.fanout_lcores.begin(), p.dataplane.fanout_lcores.end());
    w.insert(w.end(), p.dataplane.service_lcores.begin(), p.dataplane.service_lcores.end());
    return sorted_unique(w);
}

// Drivers DPDK can drive a PCI device through. mlx4/mlx5 are bifurcated:
// their PMD works beside the kernel driver, which must stay bound.
bool dpdk_driver(std::string_view d) {
    return d == "vfio-pci" || d == "uio_pci_generic" || d == "igb_uio" || d == "mlx5_core" || d == "mlx4_core";
}

std::string netns_id(const std::string& root) {
    struct stat st{};
    if (stat(at(root, "/proc/self/ns/net").c_str(), &st) != 0) return "0";
    return std::to_string(st.st_ino);
}

std::string lock_dir_of(const host_check_options& o) {
    return at(o.root, o.lock_dir.empty() ? std::string("/run/stentor") : o.lock_dir);
}

void check_lcores(const profile& p, const host_view& h, std::vector<host_finding>& out) {
    if (!h.online) {
        out.push_back({lvl::warn, "eal.lcores", "cannot read /sys/devices/system/cpu/online: lcores not checked"});
        return;
    }
    const auto& online = *h.online;
    std::vector<unsigned> missing, outside;
    for (unsigned l : p.eal.lcores) {
        if (!contains(online, l)) missing.push_back(l);
        else if (h.allowed && !contains(*h.allowed, l)) outside.push_back(l);
    }
    if (!missing.empty())
        out.push_back({lvl::fail, "eal.lcores",
                       fmt::format("{} {} not exist on this host (CPUs {}): renumber eal.lcores and the [dataplane] "
                                   "lcores to CPUs of this host",
                                   lcores_text(missing), missing.size() == 1 ? "does" : "do", format_cpu_list(online))});
    if (!outside.empty())
        out.push_back({lvl::fail, "eal.lcores",
                       fmt::format("{} {} outside this process's CPU affinity ({}): taskset, systemd's CPUAffinity= "
                                   "or a cgroup cpuset keeps {} away; widen it or use those CPUs",
                                   lcores_text(outside), outside.size() == 1 ? "is" : "are",
                                   format_cpu_list(*h.allowed), outside.size() == 1 ? "it" : "them")});
    const bool bad = !missing.empty() || !outside.empty();
    if (bad) return;
    std::string nodes;
    std::set<unsigned> used_nodes;
    for (unsigned l : p.eal.lcores)
        if (auto it = h.node_of_cpu.find(l); it != h.node_of_cpu.end()) used_nodes.insert(it->second);
    for (const auto& [n, cpus] : h.cpus_of_node)
        nodes += fmt::format("{}node {}: CPUs {}", nodes.empty() ? "" : ", ", n, format_cpu_list(cpus));
    out.push_back({lvl::ok, "eal.lcores",
                   fmt::format("lcores {} exist (CPUs {}{}{})", format_cpu_list(p.eal.lcores), format_cpu_list(online),
                               nodes.empty() ? "" : "; ", nodes)});
    // Workers on two nodes: half of them touch the NIC and the mempool
    // across the interconnect.
    std::set<unsigned> worker_nodes;
    for (unsigned l : worker_lcores(p))
        if (auto it = h.node_of_cpu.find(l); it != h.node_of_cpu.end()) worker_nodes.insert(it->second);
    if (worker_nodes.size() > 1) {
        std::string ns;
        for (unsigned n : worker_nodes) ns += fmt::format("{}{}", ns.empty() ? "" : ", ", n);
        out.push_back({lvl::warn, "dataplane.fanout_lcores",
                       fmt::format("worker lcores span NUMA nodes {}: keep them on the NIC's node (README \"Host "
                                   "tuning\")",
                                   ns)});
    }
}

// The NUMA nodes the relay's memory comes from: the nodes of its lcores
// (EAL allocates per socket of the lcores that use a pool).
std::set<unsigned> relay_nodes(const profile& p, const host_view& h) {
    std::set<unsigned> s;
    for (unsigned l : p.eal.lcores)
        if (auto it = h.node_of_cpu.find(l); it != h.node_of_cpu.end()) s.insert(it->second);
    if (s.empty()) s.insert(0);
    return s;
}

void check_hugepages(const profile& p, const host_view& h, std::vector<host_finding>& out) {
    if (!p.eal.hugepages) {
        out.push_back({p.eal.pci_allow.empty() ? lvl::ok : lvl::warn, "eal.hugepages",
                       p.eal.pci_allow.empty()
                           ? std::string("false: EAL runs on ordinary memory (--no-huge); enough for virtual devices")
                           : std::string("false with a PCI device: DMA from 4 kB pages works through vfio but costs "
                                         "IOTLB misses; set eal.hugepages = true (README \"Hugepages\")")});
        return;
    }
    if (!h.hugetlbfs)
        out.push_back({lvl::fail, "eal.hugepages",
                       "no hugetlbfs is mounted (/proc/mounts): mount -t hugetlbfs nodev /dev/hugepages — see README "
                       "\"Hugepages\""});
    uint64_t free_kb = 0;
    std::string per_node;
    for (unsigned n : relay_nodes(p, h)) {
        uint64_t node_free = 0, node_total = 0;
        std::string sizes;
        auto it = h.hugepages.find(n);
        if (it != h.hugepages.end())
            for (const auto& pg : it->second) {
                node_total += pg.total;
                node_free += pg.free * pg.size_kb;
                if (pg.total > 0)
                    sizes += fmt::format("{}{} of {} x {} free", sizes.empty() ? "" : ", ", pg.free, pg.total,
                                         size_text(pg.size_kb));
            }
        if (node_total == 0) {
            out.push_back({lvl::fail, "eal.hugepages",
                           fmt::format("none reserved on NUMA node {} — see README \"Hugepages\" (e.g. echo 1024 > "
                                       "/sys/devices/system/node/node{}/hugepages/hugepages-2048kB/nr_hugepages)",
                                       n, n)});
            continue;
        }
        free_kb += node_free;
        per_node += fmt::format("{}node {}: {}", per_node.empty() ? "" : "; ", n, sizes);
    }
    if (per_node.empty()) return;
    const uint64_t want_kb = uint64_t{p.eal.memory_mb} * 1024;
    if (free_kb < want_kb)
        out.push_back({lvl::fail, "eal.memory_mb",
                       fmt::format("{} MB asked, {} of hugepages free on the relay's nodes ({}): reserve more or lower "
                                   "eal.memory_mb",
                                   p.eal.memory_mb, size_text(free_kb), per_node)});
    else
        out.push_back({lvl::ok, "eal.hugepages",
                       fmt::format("{} free for {} MB ({})", size_text(free_kb), p.eal.memory_mb, per_node)});
}

void check_pci(const profile& p, const host_check_options& o, const host_view& h, std::vector<host_finding>& out) {
    bool any_vfio = false;
    for (size_t i = 0; i < p.eal.pci_allow.size(); ++i) {
        const auto& addr = p.eal.pci_allow[i];
        const auto key = fmt::format("eal.pci_allow[{}]", i);
        const auto dev = at(o.root, "/sys/bus/pci/devices/" + addr);
        std::error_code ec;
        if (!fs::exists(dev, ec)) {
            out.push_back({lvl::fail, key, fmt::format("no PCI device {} on this host (lspci -D lists them)", addr)});
            continue;
        }
        std::string driver;
        if (auto l = fs::read_symlink(dev + "/driver", ec); !ec) driver = l.filename().string();
        if (driver.empty()) {
            out.push_back({lvl::fail, key,
                           fmt::format("{} is bound to no driver: dpdk-devbind.py --bind=vfio-pci {}", addr, addr)});
        } else if (!dpdk_driver(driver)) {
            out.push_back({lvl::fail, key,
                           fmt::format("{} is bound to {} (a kernel driver DPDK cannot use): dpdk-devbind.py "
                                       "--bind=vfio-pci {}",
                                       addr, driver, addr)});
        } else {
            out.push_back({lvl::ok, key, fmt::format("{} is bound to {}", addr, driver)});
            if (driver == "vfio-pci") any_vfio = true;
            if (driver == "uio_pci_generic" || driver == "igb_uio")
                out.push_back({lvl::warn, key,
                               fmt::format("{}: no IOMMU protection (the device can DMA anywhere); prefer vfio-pci",
                                           driver)});
            // A symlink into /sys/kernel/iommu_groups; its presence is the answer.
            if (driver == "vfio-pci" && !fs::exists(fs::symlink_status(dev + "/iommu_group", ec))) {
                const auto noiommu = read_text(at(o.root, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"));
                if (noiommu && (*noiommu == "Y" || *noiommu == "1"))
                    out.push_back({lvl::warn, "host.iommu",
                                   fmt::format("{}: vfio runs in no-IOMMU mode (unsafe: the device's DMA is not "
                                               "checked); enable the IOMMU (intel_iommu=on iommu=pt)",
                                               addr)});
                else
                    out.push_back({lvl::fail, "host.iommu",
                                   fmt::format("{}: vfio-pci needs an IOMMU: intel_iommu=on iommu=pt (amd_iommu=on) "
                                               "on the kernel command line, or vfio's enable_unsafe_noiommu_mode",
                                               addr)});
            }
        }
        // The NIC's node against the workers' nodes.
        const auto nn = read_text(dev + "/numa_node");
        const int node = nn ? std::atoi(nn->c_str()) : -1;
        const int port = port_of_device(p, addr);
        if (node >= 0 && port >= 0) {
            std::vector<unsigned> off;
            for (unsigned l : worker_lcores(p))
                if (auto it = h.node_of_cpu.find(l); it != h.node_of_cpu.end() && it->second != static_cast<unsigned>(node))
                    off.push_back(l);
            if (!off.empty())
                out.push_back({lvl::warn, fmt::format("port[{}].device", port),
                               fmt::format("{} is on NUMA node {}, worker lcores {} are not: every packet crosses the "
                                           "interconnect; use CPUs {} (README \"Host tuning\")",
                                           addr, node, format_cpu_list(off),
                                           h.cpus_of_node.count(static_cast<unsigned>(node)) != 0
                                               ? format_cpu_list(h.cpus_of_node.at(static_cast<unsigned>(node)))
                                               : std::string("of that node"))});
            else
                out.push_back({lvl::ok, fmt::format("port[{}].device", port),
                               fmt::format("{} and the worker lcores are on NUMA node {}", addr, node)});
        }
    }
    if (any_vfio) {
        const auto groups = list_dir(at(o.root, "/sys/kernel/iommu_groups"));
        if (!groups.empty())
            out.push_back({lvl::ok, "host.iommu", fmt::format("IOMMU on ({} groups)", groups.size())});
    }
}

void check_ports(const profile& p, const host_check_options& o, std::vector<host_finding>& out) {
    // An RX frame must fit one mbuf: the data plane drops chained frames.
    // RTE_MBUF_DEFAULT_DATAROOM, the pool's data room (drivers::make_pool).
    constexpr unsigned dataroom = 2048;
    for (size_t i = 0; i < p.ports.size(); ++i) {
        const auto& pc = p.ports[i];
        const unsigned frame = pc.mtu + 14 + 4 + 4;   // Ethernet header, FCS, one VLAN tag
        const auto key = fmt::format("port[{}].mtu", i);
        if (frame > dataroom)
            out.push_back({lvl::fail, key,
                           fmt::format("MTU {} makes {} B frames, more than one {} B mbuf: lower the MTU", pc.mtu,
                                       frame, dataroom)});
        else
            out.push_back({lvl::ok, key, fmt::format("MTU {}: frames up to {} B fit one {} B mbuf", pc.mtu, frame,
                                                     dataroom)});
        // The kernel interface behind a virtual device.
        for (const auto& v : p.eal.vdevs) {
            if (vdev_name(v) != pc.device) continue;
            const auto ifname = vdev_iface(v);
            if (!ifname) continue;
            const auto dkey = fmt::format("port[{}].device", i);
            const auto base = at(o.root, "/sys/class/net/" + *ifname);
            std::error_code ec;
            if (!fs::exists(base, ec)) {
                // net_tap creates its interface; the others need it.
                if (!pc.device.starts_with("net_tap"))
                    out.push_back({lvl::fail, dkey,
                                   fmt::format("{} drives interface {}, which does not exist here (ip link; in the "
                                               "right network namespace?)",
                                               pc.device, *ifname)});
                continue;
            }
            const auto mtu = read_text(base + "/mtu");
            const unsigned kmtu = mtu ? static_cast<unsigned>(std::strtoul(mtu->c_str(), nullptr, 10)) : 0;
            if (kmtu + 14 + 4 + 4 > dataroom)
                out.push_back({lvl::warn, dkey,
                               fmt::format("interface {} has MTU {}: frames above {} B do not fit one mbuf and are "
                                           "dropped (ip link set {} mtu {})",
                                           *ifname, kmtu, dataroom, *ifname, pc.mtu)});
            const auto oper = read_text(base + "/operstate");
            const auto flags = read_text(base + "/flags");
            const bool admin_up = flags && (std::strtoul(flags->c_str(), nullptr, 16) & 0x1) != 0;
            if (!admin_up)
                out.push_back({lvl::warn, dkey,
                               fmt::format("interface {} is down: ip link set {} up", *ifname, *ifname)});
            else
                out.push_back({lvl::ok, dkey,
                               fmt::format("{} drives interface {} (MTU {}, {})", pc.device, *ifname, kmtu,
                                           oper.value_or("unknown"))});
        }
    }
}

void check_prefix(const profile& p, const host_check_options& o, std::vector<host_finding>& out) {
    const std::string dir = o.dpdk_runtime_base.empty() ? dpdk_runtime_dir(p.eal.file_prefix)
                                                        : o.dpdk_runtime_base + "/" + p.eal.file_prefix;
    const auto cfg = at(o.root, dir + "/config");
    if (auto pid = lock_holder(cfg)) {
        const auto name = process_name(o.root, *pid);
        out.push_back({lvl::fail, "eal.file_prefix",
                       name == "stentord"
                           ? fmt::format("another stentord uses it (pid {}): stop it, or give this relay its own "
                                         "eal.file_prefix (--file-prefix)",
                                         *pid)
                           : fmt::format("another DPDK process ({}, pid {}) uses \"{}\": stop it, or give this relay "
                                         "its own eal.file_prefix (--file-prefix)",
                                         name.empty() ? "unknown" : name, *pid, p.eal.file_prefix)});
    } else {
        out.push_back({lvl::ok, "eal.file_prefix", fmt::format("\"{}\" is free ({})", p.eal.file_prefix, dir)});
    }
}

void check_claims(const profile& p, const host_check_options& o, std::vector<host_finding>& out) {
    const auto dir = lock_dir_of(o);
    for (const auto& t : claim_targets(p, o))
        if (auto pid = lock_holder(dir + "/" + t.lock_name))
            out.push_back({lvl::fail, t.key,
                           fmt::format("{} is driven by another stentord (pid {}): two relays on one interface each "
                                       "see half the packets",
                                       t.what, *pid)});
}

void check_tuning(const profile& p, const host_check_options& o, std::vector<host_finding>& out) {
    const auto workers = worker_lcores(p);
    if (workers.empty()) return;
    const auto w = format_cpu_list(workers);
    auto not_in = [&](const std::optional<std::vector<unsigned>>& set) {
        std::vector<unsigned> v;
        for (unsigned l : workers)
            if (!set || !contains(*set, l)) v.push_back(l);
        return v;
    };
    const auto iso = read_text(at(o.root, "/sys/devices/system/cpu/isolated"));
    const auto iso_set = iso ? parse_cpu_list(*iso) : std::nullopt;
    if (const auto miss = not_in(iso_set); !miss.empty())
        out.push_back({lvl::warn, "dataplane.rx_lcores",
                       fmt::format("worker {} {} not isolated: other processes may run there and cause loss; "
                                   "isolcpus={} (or a cpuset) on the kernel command line (README \"Host tuning\")",
                                   lcores_text(miss), miss.size() == 1 ? "is" : "are", w)});
    else
        out.push_back({lvl::ok, "dataplane.rx_lcores", fmt::format("worker lcores {} are isolated", w)});
    if (const auto nz = read_text(at(o.root, "/sys/devices/system/cpu/nohz_full"))) {
        const auto nz_set = parse_cpu_list(*nz);
        if (const auto miss = not_in(nz_set); !miss.empty())
            out.push_back({lvl::warn, "dataplane.rx_lcores",
                           fmt::format("worker {} still take the scheduler tick: nohz_full={} rcu_nocbs={} "
                                       "(README \"Host tuning\")",
                                       lcores_text(miss), w, w)});
        else
            out.push_back({lvl::ok, "dataplane.rx_lcores", fmt::format("worker lcores {} are nohz_full", w)});
    }
    // IRQs that may land on a worker.
    std::vector<unsigned> irqs;
    for (const auto& n : list_dir(at(o.root, "/proc/irq"))) {
        const auto id = number_after("x" + n, "x");
        if (!id) continue;
        const auto al = read_text(at(o.root, "/proc/irq/" + n + "/smp_affinity_list"));
        if (!al) continue;
        const auto cpus = parse_cpu_list(*al);
        if (!cpus) continue;
        if (std::any_of(workers.begin(), workers.end(), [&](unsigned l) { return contains(*cpus, l); }))
            irqs.push_back(*id);
    }
    if (!irqs.empty()) {
        std::string some;
        for (size_t i = 0; i < irqs.size() && i < 8; ++i) some += fmt::format("{}{}", i ? "," : "", irqs[i]);
        if (irqs.size() > 8) some += ",...";
        out.push_back({lvl::warn, "host.irq",
                       fmt::format("{} IRQ(s) may run on worker {} (IRQ {}): move them to the main lcore's CPU "
                                   "(/proc/irq/N/smp_affinity_list, irqbalance --banirq; README \"Host tuning\")",
                                   irqs.size(), lcores_text(workers), some)});
    } else {
        out.push_back({lvl::ok, "host.irq", fmt::format("no IRQ may run on worker lcores {}", w)});
    }
    // Transparent huge pages: the listener, session and flow tables the
    // data plane reads are advised MADV_HUGEPAGE (control/dp_memory.h); the
    // kernel honours that under [madvise] or [always].
    const auto thp = read_text(at(o.root, "/sys/kernel/mm/transparent_hugepage/enabled"));
    const auto open = thp ? thp->find('[') : std::string::npos;
    const auto close = thp ? thp->find(']', open) : std::string::npos;
    const std::string mode = open != std::string::npos && close != std::string::npos ? thp->substr(open + 1, close - open - 1) : "";
    if (mode == "madvise" || mode == "always")
        out.push_back({lvl::ok, "host.thp", fmt::format("transparent huge pages [{}]: the data plane's tables sit on 2 MiB pages", mode)});
    else
        out.push_back({lvl::warn, "host.thp",
                       fmt::format("transparent huge pages {}: the data plane's listener, session and flow tables sit on "
                                   "4 KiB pages, a TLB miss for nearly every session a packet touches; "
                                   "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (README \"Host tuning\")",
                                   mode.empty() ? std::string("unavailable") : "[" + mode + "]")});
}

}  // namespace

std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view s) {
    std::vector<unsigned> out;
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
    if (s.empty() || s == "(null)") return out;
    auto num = [](std::string_view t) -> std::optional<unsigned> {
        if (t.empty() || t.size() > 5) return std::nullopt;
        unsigned v = 0;
        for (char ch : t) {
            if (ch < '0' || ch > '9') return std::nullopt;
            v = v * 10 + static_cast<unsigned>(ch - '0');
        }
        return v;
    };
    while (!s.empty()) {
        const auto comma = s.find(',');
        const auto part = s.substr(0, comma);
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
        const auto dash = part.find('-');
        if (dash == std::string_view::npos) {
            const auto v = num(part);
            if (!v) return std::nullopt;
            out.push_back(*v);
        } else {
            const auto a = num(part.substr(0, dash)), b = num(part.substr(dash + 1));
            if (!a || !b || *b < *a || *b - *a > 65536) return std::nullopt;
            for (unsigned v = *a; v <= *b; ++v) out.push_back(v);
        }
    }
    return sorted_unique(out);
}

std::string format_cpu_list(const std::vector<unsigned>& ids_in) {
    const auto ids = sorted_unique(ids_in);
    std::string s;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
        if (!s.empty()) s += ',';
        s += j == i ? fmt::format("{}", ids[i]) : fmt::format("{}-{}", ids[i], ids[j]);
        i = j + 1;
    }
    return s.empty() ? "none" : s;
}

std::string dpdk_runtime_dir(const std::string& prefix) {
    // EAL 22.11 eal_create_runtime_dir(): /var/run as root, else
    // $XDG_RUNTIME_DIR, else /tmp; then /dpdk/<prefix>.
    std::string base = "/var/run";
    if (getuid() != 0) {
        const char* x = std::getenv("XDG_RUNTIME_DIR");
        base = x != nullptr ? x : "/tmp";
    }
    return base + "/dpdk/" + prefix;
}

std::optional<int> lock_holder(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;
    std::optional<int> pid;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) pid = fl.l_pid;
    ::close(fd);
    return pid;
}

std::string process_name(const std::string& root, int pid) {
    return read_text(at(root, "/proc/" + std::to_string(pid) + "/comm")).value_or("");
}

std::vector<host_finding> profile_warnings(const profile& p) {
    std::vector<host_finding> out;
    // The shipped profiles' tokens say what they are; a token that says so
    // on a running relay lets anyone who read the profile manage it.
    std::string t = p.api.token;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    static constexpr std::string_view markers[] = {"change-me", "changeme", "change_me", "replace", "placeholder",
                                                   "example",   "secret-here"};
    if (!t.empty() && p.api.listen_port != 0)
        for (auto m : markers)
            if (t.find(m) != std::string::npos) {
                // The token itself stays out of the log and the output.
                out.push_back({lvl::warn, "api.token",
                               fmt::format("a shipped placeholder (it contains \"{}\"): anyone who has read this "
                                           "profile can manage the relay{}; set a secret (openssl rand -hex 32)",
                                           m, p.api.listen_addr.starts_with("127.") ? " from this host" : "")});
                break;
            }
    if (!p.api.token.empty() && p.api.token_file.empty() && p.api.listen_port != 0)
        if (auto why = inline_token_exposed(p.path, "api.token_file")) out.push_back({lvl::warn, "api.token", *why});
    if (p.fleet.enabled && !p.fleet.trunk_key)
        out.push_back({lvl::warn, "fleet.allow_unauthenticated_trunks",
                       "trunks are not authenticated: whoever can send with an origin's source address to an "
                       "edge's session port puts audio into every listener of that edge; give every relay of the "
                       "fleet the same fleet.trunk_key_file (docs/fleet.md \"Trunk authentication\")"});
    return out;
}

std::optional<std::string> inline_token_exposed(const std::string& path, std::string_view setting) {
    struct stat st{};
    if (path.empty() || ::stat(path.c_str(), &st) != 0 || (st.st_mode & 044) == 0) return std::nullopt;
    return fmt::format("written in {} (mode {:04o}), which group or others can read: whoever reads it can use the "
                       "token; move it to a file of mode 0600 named by {} (or chmod 600 the profile)",
                       path, static_cast<unsigned>(st.st_mode & 07777), setting);
}

std::vector<std::string> director_profile_warnings(const director_profile& d) {
    std::vector<std::string> out;
    if (d.director.token_file.empty())
        if (auto why = inline_token_exposed(d.path, "director.token_file")) out.push_back("director.token: " + *why);
    return out;
}

std::vector<host_claim_target> claim_targets(const profile& p, const host_check_options& o) {
    std::vector<host_claim_target> out;
    const auto ns = netns_id(o.root);
    for (const auto& v : p.eal.vdevs) {
        const auto ifname = vdev_iface(v);
        if (!ifname) continue;
        const int port = port_of_device(p, vdev_name(v));
        // Interface names are per network namespace: the lock is too.
        out.push_back({port >= 0 ? fmt::format("port[{}].device", port) : std::string("eal.vdevs"),
                       "interface " + *ifname, "iface-" + ns + "-" + *ifname + ".lock"});
    }
    for (size_t i = 0; i < p.eal.pci_allow.size(); ++i)
        out.push_back({fmt::format("eal.pci_allow[{}]", i), "PCI device " + p.eal.pci_allow[i],
                       "pci-" + p.eal.pci_allow[i] + ".lock"});
    return out;
}

std::vector<host_finding> host_claim(const profile& p, const host_check_options& o, std::vector<int>& fds) {
    std::vector<host_finding> out;
    const auto targets = claim_targets(p, o);
    if (targets.empty()) return out;
    const auto dir = lock_dir_of(o);
    std::error_code ec;
    fs::create_directories(dir, ec);
    for (const auto& t : targets) {
        const auto path = dir + "/" + t.lock_name;
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            out.push_back({lvl::warn, t.key,
                           fmt::format("cannot lock {} ({}: {}): a second relay on it would not be refused", t.what,
                                       path, std::strerror(errno))});
            continue;
        }
        struct flock fl{};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            const auto pid = lock_holder(path);
            ::close(fd);
            out.push_back({lvl::fail, t.key,
                           fmt::format("{} is driven by another stentord (pid {}): two relays on one interface each "
                                       "see half the packets",
                                       t.what, pid ? std::to_string(*pid) : std::string("unknown"))});
            continue;
        }
        const auto pid = std::to_string(getpid()) + "\n";
        if (ftruncate(fd, 0) == 0 && ::write(fd, pid.data(), pid.size()) < 0) {
            // the pid in the file is for people; the lock is what counts
        }
        fds.push_back(fd);
    }
    return out;
}

std::vector<host_finding> check_host(const profile& p, const host_check_options& o) {
    std::vector<host_finding> out;
    const auto h = read_host(o.root);
    check_lcores(p, h, out);
    check_hugepages(p, h, out);
    check_pci(p, o, h, out);
    check_ports(p, o, out);
    check_prefix(p, o, out);
    check_claims(p, o, out);
    if (o.tuning) check_tuning(p, o, out);
    return out;
}

std::optional<unsigned> key_line(std::string_view text, std::string_view key) {
    toml::table root;
    try {
        root = toml::parse(text);
    } catch (const toml::parse_error&) {
        return std::nullopt;
    }
    const toml::node* cur = &root;
    std::optional<unsigned> line;
    while (!key.empty()) {
        const auto dot = key.find('.');
        auto seg = key.substr(0, dot);
        key = dot == std::string_view::npos ? std::string_view{} : key.substr(dot + 1);
        std::optional<size_t> idx;
        if (const auto br = seg.find('['); br != std::string_view::npos && seg.back() == ']') {
            idx = std::strtoul(std::string(seg.substr(br + 1, seg.size() - br - 2)).c_str(), nullptr, 10);
            seg = seg.substr(0, br);
        }
        const auto* t = cur->as_table();
        if (t == nullptr) break;
        const toml::node* next = t->get(seg);
        if (next == nullptr) break;
        if (idx) {
            const auto* arr = next->as_array();
            if (arr == nullptr || *idx >= arr->size()) break;
            next = arr->get(*idx);
        }
        cur = next;
        if (cur->source().begin.line > 0) line = cur->source().begin.line;
    }
    return line;
}

std::string format_finding(const host_finding& f, const std::string& path, std::string_view text) {
    if (const auto l = key_line(text, f.key)) return fmt::format("{}:{}: {}: {}", path, *l, f.key, f.message);
    return fmt::format("{}: {}: {}", path, f.key, f.message);
}

}  // namespace stentor::control
