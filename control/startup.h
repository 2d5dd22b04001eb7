// stentord's start-up up to a running EAL (issue 14 item 1): the host
// checks first (host_check.h), the interface and PCI locks, DPDK's log
// routed to ours, then rte_eal_init with its failure mapped to the profile
// key and the fix. DPDK's usage text never reaches the operator: the checks
// refuse what EAL would refuse, and whatever EAL prints on stdout while it
// parses its arguments is discarded (its log lines come through the log).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "drivers.h"
#include "host_check.h"

namespace stentor::control {

// A start-up failure: one line per cause, each "file:line: key: what — fix".
struct startup_error : std::runtime_error {
    std::vector<std::string> lines;
    explicit startup_error(std::vector<std::string> l);
};

struct startup_options {
    host_check_options host;
    std::string profile_text;       // for file:line of each key
};

// The EAL arguments a profile's [eal] asks for (start_eal's; the
// benchmarks start their EAL from their profiles the same way).
drivers::eal_params eal_params_of(const profile& p);

// Check the host, take the locks (kept in `lock_fds` for the process's
// life), start EAL. Logs every warning; throws startup_error on failure.
void start_eal(const profile& p, const startup_options& o, std::vector<int>& lock_fds);

// Why rte_eal_init failed, as a finding naming the key: from rte_errno and
// the last error line DPDK logged.
host_finding explain_eal_failure(const profile& p, int rte_err, const std::string& dpdk_said,
                                 const host_check_options& o);

// Remove EAL's runtime directory of this prefix after rte_eal_cleanup (its
// config, fbarrays and sockets, ~6 MB with --no-huge, stay otherwise).
// Only files EAL creates there; false (and the reason) if some remain.
bool remove_runtime_dir(const std::string& dir, std::string* why = nullptr);

}  // namespace stentor::control
