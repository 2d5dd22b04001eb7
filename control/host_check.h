// Start-up that explains itself (issue 14 item 1): the host checks that
// `stentord --check --host` prints and that stentord runs before
// rte_eal_init, so a profile that cannot run on this host fails naming the
// profile key and the fix, never with DPDK's usage text.
//
// Everything is read from files under a root directory: "/" on a real host,
// a fake /sys and /proc tree in the tests (`--host-root DIR`,
// docs/operations.md "Start-up checks" lists the files read). Nothing here
// changes the host, except host_claim(), which takes the locks that keep a
// second relay off an interface or a PCI device another one drives.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace stentor::control {

struct host_finding {
    enum class level { ok, warn, fail };
    level lvl;
    std::string key;        // profile key ("eal.lcores", "port[0].device"), or a host topic ("host.irq")
    std::string message;    // what was found and the fix
};

struct host_check_options {
    std::string root = "/";                 // where /sys, /proc and /run are read
    // The DPDK runtime directory base for eal.file_prefix (DPDK's rule:
    // /var/run/dpdk as root, $XDG_RUNTIME_DIR/dpdk or /tmp/dpdk otherwise),
    // under root. Empty: derived.
    std::string dpdk_runtime_base;
    // Where host_claim() keeps its locks, under root. Empty: /run/stentor.
    std::string lock_dir;
    // The tuning checks (isolation, nohz_full, IRQ affinity): warnings only.
    bool tuning = true;
};

// Every check of the profile against the host, in a stable order. A `fail`
// means stentord would not start (or would start and not forward).
std::vector<host_finding> check_host(const profile& p, const host_check_options& o = {});

// Profile settings that are accepted but unwise: a bearer token that is
// one of the shipped placeholders; a token written in the profile itself
// while the profile is readable by group or others (token_file is the
// secret's place). Warnings only: stentord logs them at start and
// `stentord --check` prints them.
std::vector<host_finding> profile_warnings(const profile& p);
// The same for a director profile, as lines to print.
std::vector<std::string> director_profile_warnings(const director_profile& d);
// Why a token written in the profile at `path` can be read by others (its
// mode lets group or others read it), or nullopt.
std::optional<std::string> inline_token_exposed(const std::string& path, std::string_view setting);

// "file:line: key: message" — the line of the key in the profile text (the
// section's if the key is absent), or "file: key: message" if neither is
// found.
std::string format_finding(const host_finding& f, const std::string& path, std::string_view profile_text);
// The 1-based line of a dotted key ("eal.lcores", "port[1].mtu",
// "eal.pci_allow[0]") in a profile text, or of its closest present parent.
std::optional<unsigned> key_line(std::string_view profile_text, std::string_view key);

// The interfaces and PCI devices the profile's ports drive, as lock names
// ("iface <netns>/<name>", "pci <address>"), with the profile key of each.
struct host_claim_target {
    std::string key;
    std::string what;       // "interface stv-relay", "PCI device 0000:3b:00.0"
    std::string lock_name;  // file name under the lock dir
};
std::vector<host_claim_target> claim_targets(const profile& p, const host_check_options& o = {});

// Take every lock (fcntl write locks, held by the returned descriptors
// until the process exits). Returns the findings for targets another
// process holds ("... is driven by another stentord (pid N)") and leaves
// `fds` holding what it took. A lock directory that cannot be created is a
// warning, not a failure (an unprivileged test run).
std::vector<host_finding> host_claim(const profile& p, const host_check_options& o, std::vector<int>& fds);

// Who holds a write lock on a file (fcntl F_GETLK), or nullopt.
std::optional<int> lock_holder(const std::string& path);
// /proc/<pid>/comm under root, or "" if unreadable.
std::string process_name(const std::string& root, int pid);

// The DPDK runtime directory of a file prefix as EAL 22.11 computes it.
std::string dpdk_runtime_dir(const std::string& prefix);

// "0-3,8" for {0,1,2,3,8}.
std::string format_cpu_list(const std::vector<unsigned>& ids);
// "0-3,8" -> {0,1,2,3,8}; nullopt if malformed.
std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view s);

}  // namespace stentor::control
