// What this binary is: its version, the git revision it was built from, the
// DPDK it runs with and the options it was built with. One source for
// stentor_build_info (/metrics), telemetry and `--version`.
#pragma once

#include <string>

namespace stentor::control {

struct build_info {
    std::string version;      // meson project version ("0.1.0")
    std::string revision;     // git describe --always --dirty at build time; "unknown" outside a checkout
    std::string dpdk;         // rte_version() of the DPDK linked at run time ("DPDK 22.11.11")
    std::string buildtype;    // meson buildtype ("release")
    std::string cpu_arch;     // -Dcpu_arch, or "" for libdpdk.pc's -march
};

const build_info& stentor_build_info();

}  // namespace stentor::control
