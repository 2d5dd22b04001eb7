// Memory the data plane reads, allocated by the control plane: listener
// chunks and list headers, sessions, the snapshot, flow and neighbour tables,
// SRTP keysets (state.cc, relay.cc, srtp_keys.cc). Every replica reads a
// listener record and every speaker packet a flow, a session and its lists:
// with thousands of sessions those are scattered over tens of megabytes, and
// on 4 KiB pages nearly each of them is a TLB miss (two-dimensional page
// walks on a VM). This allocator puts them on 2 MiB pages.
//
// How: objects are rounded up to a power of two (64 B .. 1 MiB) and carved
// from 2 MiB slabs, one size per slab, each slab mapped 2 MiB-aligned and
// advised MADV_HUGEPAGE (transparent huge pages, `madvise` mode or
// `always`; with `never` it is plain 4 KiB memory and works the same).
// Larger objects get a mapping of their own, rounded to 2 MiB, advised the
// same. Freed objects go back to their size's free list and are reused;
// slabs are never returned to the system (a relay's high-water mark), large
// mappings are. Metadata (which slab holds which size) lives outside the
// slabs, so the data plane's memory holds only its objects: a 4 KiB
// listener chunk takes exactly 4 KiB, 512 of them per huge page.
//
// Control plane only (a mutex; never the data plane's hot path). Measured
// in docs/performance.md ("Sixth round").
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace stentor::control {

// Zeroed, 64-byte aligned, never nullptr (throws std::bad_alloc).
void* dp_alloc(std::size_t bytes);
// The same, not zeroed: for a copy that writes every byte itself (a
// listener chunk copied on write), so its lines are written once.
void* dp_alloc_uninit(std::size_t bytes);
// Frees what dp_alloc returned (nullptr is allowed).
void dp_free(void* p) noexcept;

// A table the profile sizes and start-up allocates whole (the neighbour
// table, the speakers' policers and the session counters of every RX
// lcore, the control plane's slot lists) that the system would not give.
// It names the setting that sized it and the bytes asked, so that stentord
// says what to lower instead of dying of an unnamed std::bad_alloc.
struct table_alloc_error : std::runtime_error {
    std::string setting;   // the profile key to lower ("limits.max_neighbours")
    uint64_t bytes;        // what was asked
    table_alloc_error(std::string setting, uint64_t bytes, const std::string& what);
};

// The error for `table` ("the neighbour table") of `count` entries of
// `each` bytes, `count` as the profile gives it (`sized_by`, e.g.
// "limits.max_speakers 4096 x 2 RX lcores (dataplane.rx_lcores)").
table_alloc_error table_alloc_failed(std::string_view table, std::string setting, std::string_view sized_by,
                                     uint64_t count, uint64_t each);

// dp_alloc(count * each) for such a table: table_alloc_error, never
// std::bad_alloc, when it cannot be had.
void* dp_alloc_table(std::string_view table, std::string setting, std::string_view sized_by, uint64_t count,
                     std::size_t each);

struct dp_memory_usage {
    uint64_t mapped_bytes = 0;   // slabs and large mappings
    uint64_t in_use_bytes = 0;   // objects allocated, at their rounded size
    uint64_t objects = 0;        // objects allocated
};
dp_memory_usage dp_memory_stats() noexcept;

// The 2 MiB unit of slabs and large mappings.
inline constexpr std::size_t dp_slab_bytes = std::size_t{2} << 20;

}  // namespace stentor::control
