// Start-up checks against a host (control/host_check.h): a fake /sys and
// /proc tree per row, built here, read through host_check_options::root
// exactly as `stentord --check --host --host-root DIR` reads it. The good
// host is a two-node machine on which configs/lab-x710-10g.toml runs; each
// row breaks one thing and names the finding that must say so.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "audit.h"
#include "config.h"
#include "host_check.h"
#include "service_notify.h"

namespace fs = std::filesystem;
using stentor::control::host_finding;
namespace ctl = stentor::control;

namespace {

struct fake_host {
    fs::path root;
    fake_host() {
        char tmpl[] = "/tmp/stentor-fakehost.XXXXXX";
        root = mkdtemp(tmpl);
    }
    ~fake_host() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    fake_host(const fake_host&) = delete;
    fake_host& operator=(const fake_host&) = delete;
    void file(const std::string& path, const std::string& content) const {
        const fs::path p = root / path.substr(1);
        fs::create_directories(p.parent_path());
        std::ofstream(p) << content << "\n";
    }
    void link(const std::string& path, const std::string& target) const {
        const fs::path p = root / path.substr(1);
        fs::create_directories(p.parent_path());
        std::error_code ec;
        fs::remove(p, ec);
        fs::create_symlink(target, p);
    }
    void remove(const std::string& path) const {
        std::error_code ec;
        fs::remove_all(root / path.substr(1), ec);
    }
};

const std::string pci = "/sys/bus/pci/devices/0000:3b:00.0";

// Where lab-x710-10g.toml runs well: 24 CPUs on two nodes, 2 x 4 GiB of
// 2 MiB pages, the X710 on node 0 bound to vfio-pci behind an IOMMU, the
// workers (1-9) isolated and tickless, no IRQ on them.
void good_host(const fake_host& h) {
    h.file("/sys/devices/system/cpu/online", "0-23");
    h.file("/proc/self/status", "Name:\tstentord\nCpus_allowed_list:\t0-23");
    for (int n = 0; n < 2; ++n) {
        const std::string node = "/sys/devices/system/node/node" + std::to_string(n);
        h.file(node + "/cpulist", n == 0 ? "0-11" : "12-23");
        h.file(node + "/hugepages/hugepages-2048kB/nr_hugepages", "2048");
        h.file(node + "/hugepages/hugepages-2048kB/free_hugepages", "2048");
    }
    h.file("/proc/mounts", "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0");
    h.file("/sys/bus/pci/drivers/vfio-pci/new_id", "");
    h.link(pci + "/driver", "../../../bus/pci/drivers/vfio-pci");
    h.file(pci + "/numa_node", "0");
    h.file("/sys/kernel/iommu_groups/12/type", "DMA");
    h.link(pci + "/iommu_group", "../../../kernel/iommu_groups/12");
    h.file("/sys/devices/system/cpu/isolated", "1-9");
    h.file("/sys/devices/system/cpu/nohz_full", "1-9");
    h.file("/proc/irq/24/smp_affinity_list", "0");
    h.file("/proc/irq/25/smp_affinity_list", "12-23");
    h.file("/sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never");
}

ctl::profile lab_profile() { return ctl::load_profile(std::string(STENTOR_SOURCE_DIR) + "/configs/lab-x710-10g.toml"); }
ctl::profile veth_profile() { return ctl::load_profile(std::string(STENTOR_SOURCE_DIR) + "/configs/dev-veth.toml"); }

ctl::host_check_options opts(const fake_host& h) {
    ctl::host_check_options o;
    o.root = h.root.string();
    o.dpdk_runtime_base = "/var/run/dpdk";
    o.lock_dir = "/run/stentor";
    return o;
}

std::string dump(const std::vector<host_finding>& v) {
    std::string s;
    for (const auto& f : v)
        s += std::string(f.lvl == host_finding::level::fail ? "FAIL " : f.lvl == host_finding::level::warn ? "warn " : "ok   ") +
             f.key + ": " + f.message + "\n";
    return s;
}

bool has(const std::vector<host_finding>& v, host_finding::level l, const std::string& key, const std::string& text) {
    for (const auto& f : v)
        if (f.lvl == l && f.key == key && f.message.find(text) != std::string::npos) return true;
    return false;
}

size_t count(const std::vector<host_finding>& v, host_finding::level l) {
    size_t n = 0;
    for (const auto& f : v) n += f.lvl == l;
    return n;
}

}  // namespace

TEST(HostCheck, the_good_host_passes_every_check_without_a_warning) {
    fake_host h;
    good_host(h);
    const auto f = ctl::check_host(lab_profile(), opts(h));
    EXPECT_EQ(count(f, host_finding::level::fail), 0u) << dump(f);
    EXPECT_EQ(count(f, host_finding::level::warn), 0u) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "eal.lcores", "lcores 0-9 exist (CPUs 0-23; node 0: CPUs 0-11, node 1: CPUs 12-23)"))
        << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "eal.hugepages", "4 GiB free for 4096 MB (node 0: 2048 of 2048 x 2 MiB free)")) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "eal.pci_allow[0]", "is bound to vfio-pci")) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "port[0].device", "worker lcores are on NUMA node 0")) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "host.iommu", "IOMMU on (1 groups)")) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "port[0].mtu", "fit one 2048 B mbuf")) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "host.irq", "no IRQ may run on worker lcores 1-9")) << dump(f);
    EXPECT_TRUE(has(f, host_finding::level::ok, "host.thp", "transparent huge pages [madvise]")) << dump(f);
}

struct bad_row {
    const char* what;
    std::function<void(const fake_host&)> spoil;
    host_finding::level lvl;
    const char* key;
    const char* text;
};

TEST(HostCheck, each_broken_part_of_the_host_is_named_with_its_key_and_fix) {
    using L = host_finding::level;
    const bad_row rows[] = {
        {"two CPUs", [](const fake_host& h) { h.file("/sys/devices/system/cpu/online", "0-1"); }, L::fail,
         "eal.lcores", "lcores 2-9 do not exist on this host (CPUs 0-1)"},
        {"workers on two nodes", [](const fake_host& h) {
             h.file("/sys/devices/system/node/node0/cpulist", "0-7");
             h.file("/sys/devices/system/node/node1/cpulist", "8-23");
         }, L::warn, "dataplane.fanout_lcores", "worker lcores span NUMA nodes 0, 1"},
        {"one CPU missing", [](const fake_host& h) { h.file("/sys/devices/system/cpu/online", "0-1,3-23"); }, L::fail,
         "eal.lcores", "lcore 2 does not exist on this host (CPUs 0-1,3-23)"},
        {"affinity narrowed by systemd or taskset",
         [](const fake_host& h) { h.file("/proc/self/status", "Cpus_allowed_list:\t0-3"); }, L::fail, "eal.lcores",
         "lcores 4-9 are outside this process's CPU affinity (0-3)"},
        {"no hugepages on node 0",
         [](const fake_host& h) { h.remove("/sys/devices/system/node/node0/hugepages"); }, L::fail, "eal.hugepages",
         "none reserved on NUMA node 0 — see README \"Hugepages\""},
        {"too few hugepages free",
         [](const fake_host& h) {
             h.file("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", "100");
         },
         L::fail, "eal.memory_mb", "4096 MB asked, 200 MiB of hugepages free"},
        {"no hugetlbfs mounted", [](const fake_host& h) { h.file("/proc/mounts", "sysfs /sys sysfs rw 0 0"); }, L::fail,
         "eal.hugepages", "no hugetlbfs is mounted"},
        {"NIC still on its kernel driver",
         [](const fake_host& h) {
             h.file("/sys/bus/pci/drivers/i40e/new_id", "");
             h.link(pci + "/driver", "../../../bus/pci/drivers/i40e");
         },
         L::fail, "eal.pci_allow[0]", "is bound to i40e (a kernel driver DPDK cannot use): dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"},
        {"NIC bound to nothing", [](const fake_host& h) { h.remove(pci + "/driver"); }, L::fail, "eal.pci_allow[0]",
         "is bound to no driver"},
        {"no such PCI device", [](const fake_host& h) { h.remove(pci); }, L::fail, "eal.pci_allow[0]",
         "no PCI device 0000:3b:00.0 on this host"},
        {"vfio without an IOMMU", [](const fake_host& h) { h.remove(pci + "/iommu_group"); }, L::fail, "host.iommu",
         "vfio-pci needs an IOMMU: intel_iommu=on"},
        {"vfio in no-IOMMU mode",
         [](const fake_host& h) {
             h.remove(pci + "/iommu_group");
             h.file("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y");
         },
         L::warn, "host.iommu", "no-IOMMU mode"},
        {"uio instead of vfio",
         [](const fake_host& h) {
             h.file("/sys/bus/pci/drivers/uio_pci_generic/new_id", "");
             h.link(pci + "/driver", "../../../bus/pci/drivers/uio_pci_generic");
         },
         L::warn, "eal.pci_allow[0]", "no IOMMU protection"},
        {"NIC on the other node", [](const fake_host& h) { h.file(pci + "/numa_node", "1"); }, L::warn,
         "port[0].device", "is on NUMA node 1, worker lcores 1-9 are not: every packet crosses the interconnect; use CPUs 12-23"},
        {"workers not isolated", [](const fake_host& h) { h.file("/sys/devices/system/cpu/isolated", ""); }, L::warn,
         "dataplane.rx_lcores", "worker lcores 1-9 are not isolated"},
        {"one worker not isolated", [](const fake_host& h) { h.file("/sys/devices/system/cpu/isolated", "2-9"); },
         L::warn, "dataplane.rx_lcores", "worker lcore 1 is not isolated"},
        {"workers take the tick", [](const fake_host& h) { h.file("/sys/devices/system/cpu/nohz_full", "(null)"); },
         L::warn, "dataplane.rx_lcores", "still take the scheduler tick: nohz_full=1-9"},
        {"IRQs on the workers", [](const fake_host& h) { h.file("/proc/irq/31/smp_affinity_list", "0-23"); }, L::warn,
         "host.irq", "1 IRQ(s) may run on worker lcores 1-9 (IRQ 31)"},
        {"no transparent huge pages",
         [](const fake_host& h) { h.file("/sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]"); },
         L::warn, "host.thp", "transparent huge pages [never]: the data plane's listener, session and flow tables sit on 4 KiB pages"},
        {"a kernel without transparent huge pages",
         [](const fake_host& h) { std::filesystem::remove(h.root / "sys/kernel/mm/transparent_hugepage/enabled"); },
         L::warn, "host.thp", "transparent huge pages unavailable"},
    };
    for (const auto& row : rows) {
        fake_host h;
        good_host(h);
        row.spoil(h);
        const auto f = ctl::check_host(lab_profile(), opts(h));
        EXPECT_TRUE(has(f, row.lvl, row.key, row.text)) << row.what << ":\n" << dump(f);
        if (row.lvl == L::warn) {
            EXPECT_EQ(count(f, L::fail), 0u) << row.what << ":\n" << dump(f);
        }
    }
}

TEST(HostCheck, the_interface_behind_a_virtual_port_is_checked) {
    using L = host_finding::level;
    const auto p = veth_profile();   // net_af_packet0,iface=stv-relay on lcores 0-1
    struct row {
        const char* what;
        const char* flags;   // nullptr: no such interface
        const char* mtu;
        L lvl;
        const char* text;
    } rows[] = {
        {"missing", nullptr, nullptr, L::fail, "drives interface stv-relay, which does not exist here"},
        {"down", "0x1002", "1500", L::warn, "interface stv-relay is down: ip link set stv-relay up"},
        {"jumbo MTU", "0x1103", "9000", L::warn, "interface stv-relay has MTU 9000"},
        {"up", "0x1103", "1500", L::ok, "net_af_packet0 drives interface stv-relay (MTU 1500, up)"},
    };
    for (const auto& r : rows) {
        fake_host h;
        good_host(h);
        if (r.flags != nullptr) {
            h.file("/sys/class/net/stv-relay/flags", r.flags);
            h.file("/sys/class/net/stv-relay/mtu", r.mtu);
            h.file("/sys/class/net/stv-relay/operstate", "up");
        }
        const auto f = ctl::check_host(p, opts(h));
        EXPECT_TRUE(has(f, r.lvl, "port[0].device", r.text)) << r.what << ":\n" << dump(f);
    }
}

// A child process holds what a second relay must not take (fcntl locks are
// per process: the test's own would not conflict with itself).
struct lock_holder_child {
    pid_t pid = -1;
    int to_child[2]{-1, -1};
    explicit lock_holder_child(const std::function<bool()>& take) {
        int ready[2];
        EXPECT_EQ(pipe(ready), 0);
        EXPECT_EQ(pipe(to_child), 0);
        pid = fork();
        if (pid == 0) {
            const bool ok = take();
            char c = ok ? 'y' : 'n';
            (void)!write(ready[1], &c, 1);
            (void)!read(to_child[0], &c, 1);   // until the parent is done
            _exit(0);
        }
        char c = 0;
        EXPECT_EQ(read(ready[0], &c, 1), 1);
        EXPECT_EQ(c, 'y');
        close(ready[0]);
        close(ready[1]);
    }
    ~lock_holder_child() {
        char c = 'x';
        (void)!write(to_child[1], &c, 1);
        int st = 0;
        waitpid(pid, &st, 0);
        close(to_child[0]);
        close(to_child[1]);
    }
};

TEST(HostCheck, a_file_prefix_in_use_names_the_process_that_holds_it) {
    fake_host h;
    good_host(h);
    const auto cfg = (h.root / "var/run/dpdk/stentor-lab/config").string();
    h.file("/var/run/dpdk/stentor-lab/config", "");
    lock_holder_child child([&] {
        const int fd = ::open(cfg.c_str(), O_RDWR);
        struct flock fl{};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_len = 128;   // EAL locks the size of its mem_config, not the whole file
        return fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0;
    });
    h.file("/proc/" + std::to_string(child.pid) + "/comm", "stentord");
    const auto f = ctl::check_host(lab_profile(), opts(h));
    EXPECT_TRUE(has(f, host_finding::level::fail, "eal.file_prefix",
                    "another stentord uses it (pid " + std::to_string(child.pid) + ")"))
        << dump(f);
    h.file("/proc/" + std::to_string(child.pid) + "/comm", "dpdk-testpmd");
    const auto g = ctl::check_host(lab_profile(), opts(h));
    EXPECT_TRUE(has(g, host_finding::level::fail, "eal.file_prefix", "another DPDK process (dpdk-testpmd, pid"))
        << dump(g);
}

TEST(HostCheck, a_second_relay_on_an_interface_another_relay_drives_is_refused) {
    fake_host h;
    good_host(h);
    const auto p = veth_profile();
    const auto o = opts(h);
    lock_holder_child child([&] {
        std::vector<int> fds;
        return ctl::host_claim(p, o, fds).empty() && fds.size() == 1;
    });
    std::vector<int> fds;
    const auto f = ctl::host_claim(p, o, fds);
    EXPECT_TRUE(fds.empty());
    EXPECT_TRUE(has(f, host_finding::level::fail, "port[0].device",
                    "interface stv-relay is driven by another stentord (pid " + std::to_string(child.pid) + ")"))
        << dump(f);
    const auto g = ctl::check_host(p, o);   // --check --host says the same
    EXPECT_TRUE(has(g, host_finding::level::fail, "port[0].device", "is driven by another stentord")) << dump(g);
}

TEST(HostCheck, placeholder_tokens_are_warned_about_and_real_ones_are_not) {
    struct row {
        const char* token;
        bool warned;
    } rows[] = {{"lab-token-replace-before-use", true},
                {"edge-token-replace-before-use", true},
                {"dev-token-change-me-please", true},
                {"CHANGEME-0123456789abcdef", true},
                {"3f9c1d0be07a44c2b1e2f4a5d6c7b8a9", false}};
    for (const auto& r : rows) {
        auto p = lab_profile();
        p.api.token = r.token;
        // Only the placeholder's: the shipped profile is mode 0644, which
        // makes an inline token a warning of its own (the next test).
        std::vector<ctl::host_finding> f;
        for (const auto& x : ctl::profile_warnings(p))
            if (x.message.find("a shipped placeholder") != std::string::npos) f.push_back(x);
        EXPECT_EQ(!f.empty(), r.warned) << r.token;
        if (!f.empty()) {
            EXPECT_EQ(f[0].key, "api.token");
        }
    }
    // Both shipped NIC profiles carry one.
    EXPECT_FALSE(ctl::profile_warnings(lab_profile()).empty());
    EXPECT_FALSE(
        ctl::profile_warnings(ctl::load_profile(std::string(STENTOR_SOURCE_DIR) + "/configs/edge-cx6-100g.toml"))
            .empty());
}

TEST(HostCheck, findings_name_the_line_of_their_key) {
    const std::string text =
        "# comment\n[eal]\nlcores = \"0-9\"\nhugepages = true\n\n[[port]]\nname = \"a\"\n\n[[port]]\nname = \"b\"\nmtu = 9000\n";
    struct row {
        const char* key;
        int line;   // 0: none
    } rows[] = {{"eal.lcores", 3},  {"eal.hugepages", 4}, {"eal.memory_mb", 2}, {"port[1].mtu", 11},
                {"port[0].mtu", 6}, {"host.irq", 0},      {"api.token", 0}};
    for (const auto& r : rows) {
        const auto l = ctl::key_line(text, r.key);
        EXPECT_EQ(l.value_or(0), static_cast<unsigned>(r.line)) << r.key;
    }
    EXPECT_EQ(ctl::format_finding({host_finding::level::fail, "eal.lcores", "lcore 2 does not exist"}, "p.toml", text),
              "p.toml:3: eal.lcores: lcore 2 does not exist");
}

TEST(HostCheck, cpu_lists_parse_and_print_as_the_kernel_writes_them) {
    struct row {
        const char* in;
        bool ok;
        const char* out;
    } rows[] = {{"0-3,8", true, "0-3,8"}, {"5", true, "5"},         {"", true, "none"},     {"(null)", true, "none"},
                {"3,1,2", true, "1-3"},   {"0-1,1-2", true, "0-2"}, {"a-3", false, ""},     {"3-1", false, ""},
                {"1,,2", false, ""},      {"0-15\n", true, "0-15"}};
    for (const auto& r : rows) {
        const auto v = ctl::parse_cpu_list(r.in);
        EXPECT_EQ(v.has_value(), r.ok) << r.in;
        if (v) {
            EXPECT_EQ(ctl::format_cpu_list(*v), r.out) << r.in;
        }
    }
}

TEST(Watchdog, pings_only_while_every_part_moves) {
    using S = ctl::liveness_sample;
    const S base{{100, 200}, 10, 5};
    struct row {
        const char* what;
        S cur;
        const char* why;   // nullptr: alive
    } rows[] = {{"all moved", {{150, 260}, 11, 6}, nullptr},
                {"worker 2 stuck", {{150, 200}, 11, 6}, "worker lcore 2 has not run its loop"},
                {"worker 1 stuck", {{100, 260}, 11, 6}, "worker lcore 1 has not run its loop"},
                {"control plane stuck", {{150, 260}, 10, 6}, "the control plane's tick has not run"},
                {"main loop stuck", {{150, 260}, 11, 5}, "the main loop has not run"}};
    for (const auto& r : rows) {
        const auto why = ctl::not_alive(base, r.cur, {1, 2});
        if (r.why == nullptr) EXPECT_FALSE(why.has_value()) << r.what;
        else {
            ASSERT_TRUE(why.has_value()) << r.what;
            EXPECT_NE(why->find(r.why), std::string::npos) << r.what << ": " << *why;
        }
    }
}

TEST(Audit, lines_carry_who_what_and_the_answer_and_never_a_secret) {
    struct row {
        const char* method;
        const char* url;
        int status;
        const char* code;
        const char* line;
    } rows[] = {
        {"POST", "/api/v1/sessions", 201, "", "api: audit: 127.0.0.1 POST /api/v1/sessions -> 201"},
        {"DELETE", "/api/v1/sessions/3/listeners/198.18.0.21:5004", 404, "not_found",
         "api: audit: 127.0.0.1 DELETE /api/v1/sessions/3/listeners/198.18.0.21:5004 -> 404 not_found"},
        {"POST", "/api/v1/join-tokens?token=s3cr3t&key=abc", 401, "unauthorized",
         "api: audit: 127.0.0.1 POST /api/v1/join-tokens -> 401 unauthorized"},
        {"PUT", "/api/v1/x\n\x1b[31m", 404, "", "api: audit: 127.0.0.1 PUT /api/v1/x??[31m -> 404"},
    };
    for (const auto& r : rows)
        EXPECT_EQ(ctl::audit_line(0x7f000001, r.method, r.url, r.status, r.code), r.line);
    EXPECT_TRUE(ctl::is_mutating("POST"));
    EXPECT_TRUE(ctl::is_mutating("DELETE"));
    EXPECT_FALSE(ctl::is_mutating("GET"));
}
