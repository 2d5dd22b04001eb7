// The daemon's log (docs/operations.md, "Logs"): spdlog with levels and
// timestamps, one line per event worth an operator's attention. Everything
// in the process that logs — the control plane, the services, DPDK itself
// (rte_log, routed here before rte_eal_init) — goes through spdlog's default
// logger, which init() replaces.
//
// Where lines go (a choice, documented in docs/operations.md):
//  * stderr by default. Under systemd, when stderr is the journal
//    (JOURNAL_STREAM names it), each line carries its syslog priority as a
//    "<N>" prefix and no timestamp of its own: journald stamps it and
//    `journalctl -p warning` filters on the level.
//  * a file (--log-file): appended to, one flush per line; SIGHUP reopens it
//    (logrotate's `postrotate systemctl reload stentord`), so a rotated file
//    is let go of without copytruncate.
//
// A string someone else wrote (the fleet's registry in etcd: relay ids,
// addresses, trunk epochs, trunk records' edges and origins) never goes into
// a line as it is: fleet::escape_for_log (fleet/log_escape.h, in fleet/
// because the fleet library composes most such lines) escapes it first, so
// a newline or an escape sequence in a record can neither forge a line nor
// rewrite the operator's terminal (docs/security.md, "The fleet's registry").
//
// The data plane never logs (its events are counters); nothing here is
// called per packet.
#pragma once

#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace stentor::log {

struct options {
    std::string file;                 // empty: stderr
    std::string level = "info";       // trace, debug, info, warning, error, critical
    // Auto-detected from JOURNAL_STREAM when stderr is used; tests force it.
    enum class journal_mode { detect, on, off } journal = journal_mode::detect;
};

// Parse a level name as --log-level takes it; false if it is none.
bool parse_level(std::string_view name, spdlog::level::level_enum& out);

// Install the process-wide logger. Throws std::runtime_error naming the
// file if it cannot be opened. May be called again (tests).
void init(const options& o);

// Reopen the log file (SIGHUP); a no-op on stderr. Returns false (and keeps
// writing to the old file) if the path cannot be opened; the caller logs it.
bool reopen(std::string* why = nullptr);

// Route DPDK's rte_log into the logger ("dpdk: EAL: ..." at the matching
// level). Call before rte_eal_init: EAL would otherwise install its own
// stream (stdout and syslog).
void attach_dpdk();
// The last error-level (or worse) line DPDK logged since attach_dpdk(), for
// naming why rte_eal_init failed; empty if none.
std::string last_dpdk_error();

// True if JOURNAL_STREAM names the file descriptor `fd` (sd_journal's rule:
// "device:inode" of the stream systemd connected).
bool fd_is_journal(int fd);

}  // namespace stentor::log
