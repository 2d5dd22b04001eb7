#include "version.h"

#include <rte_version.h>

#include "build_info.h"

namespace stentor::control {

build_info build() {
    return {STENTOR_VERSION,      STENTOR_GIT_REVISION, STENTOR_DPDK_BUILD_VERSION, rte_version(), STENTOR_BUILD_TYPE,
            STENTOR_OPTIMIZATION, STENTOR_CPU_ARCH,     STENTOR_NDEBUG,             STENTOR_COMPILER};
}

std::string version_text() {
    const auto b = build();
    std::string s = "stentord " + b.version + " (" + b.git_revision + ")\n";
    s += "dpdk: " + b.dpdk_runtime + " (built against " + b.dpdk_build + ")\n";
    s += "build: buildtype=" + b.build_type + " optimization=" + b.optimization +
         " cpu_arch=" + (b.cpu_arch.empty() ? std::string("libdpdk.pc default") : b.cpu_arch) +
         " b_ndebug=" + b.ndebug + " compiler=" + b.compiler + "\n";
    return s;
}

}  // namespace stentor::control
