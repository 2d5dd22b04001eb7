#include <string>

#include <rte_errno.h>
#include <rte_pdump.h>

#include "drivers.h"

namespace stentor::drivers {

void pdump_init() {
    if (rte_pdump_init() != 0)
        throw driver_error("capture.pdump: rte_pdump_init failed: " + std::string(rte_strerror(rte_errno)) +
                           " (dpdk-dumpcap needs a hugepage-backed primary: eal.hugepages = true)");
}

void pdump_uninit() noexcept { rte_pdump_uninit(); }

}  // namespace stentor::drivers
