#include "dp_memory.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include <sys/mman.h>

#include <fmt/format.h>

namespace stentor::control {
namespace {

// Size classes: 2^6 (one cache line) .. 2^20 bytes; larger objects are mapped alone.
constexpr unsigned min_shift = 6;
constexpr unsigned max_shift = 20;
constexpr unsigned nb_classes = max_shift - min_shift + 1;
static_assert((std::size_t{1} << max_shift) * 2 <= dp_slab_bytes, "a slab holds at least two of its largest objects");

struct free_node {
    free_node* next;
};

struct arena {
    std::mutex mu;
    free_node* free_list[nb_classes] = {};
    char* bump[nb_classes] = {};       // the next never-used object of the class's newest slab
    char* bump_end[nb_classes] = {};
    std::unordered_map<uintptr_t, unsigned> slab_class;   // slab base -> class
    std::unordered_map<uintptr_t, std::size_t> large;     // mapping -> its bytes
    dp_memory_usage use;
};

// Never destroyed: relay state held by a static object may be freed after
// this translation unit's statics would have been.
arena& the_arena() {
    static arena* a = new arena;
    return *a;
}

// `bytes` (a multiple of dp_slab_bytes) of zeroed memory aligned to
// dp_slab_bytes, advised for transparent huge pages; nullptr when the
// system has no memory to give.
char* map_aligned(std::size_t bytes) noexcept {
    const std::size_t span = bytes + dp_slab_bytes;
    void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    const auto a = reinterpret_cast<uintptr_t>(p);
    const uintptr_t b = (a + dp_slab_bytes - 1) & ~(uintptr_t{dp_slab_bytes} - 1);
    if (b > a) ::munmap(p, b - a);
    if (a + span > b + bytes) ::munmap(reinterpret_cast<void*>(b + bytes), a + span - (b + bytes));
    // Best effort: EINVAL where the kernel has no transparent huge pages;
    // with enabled=never the advice is kept and ignored.
    ::madvise(reinterpret_cast<void*>(b), bytes, MADV_HUGEPAGE);
    return reinterpret_cast<char*>(b);
}

}  // namespace

void* dp_alloc(std::size_t bytes) {
    void* p = dp_alloc_uninit(bytes);
    // The caller's bytes, to the cache line (a reused object holds its old
    // contents; a fresh mapping is zero already).
    if (bytes <= (std::size_t{1} << max_shift)) std::memset(p, 0, (bytes + 63) & ~std::size_t{63});
    return p;
}

void* dp_alloc_uninit(std::size_t bytes) {
    arena& a = the_arena();
    if (bytes > (std::size_t{1} << max_shift)) {
        const std::size_t mapped = (bytes + dp_slab_bytes - 1) & ~(dp_slab_bytes - 1);
        char* p = map_aligned(mapped);
        if (p == nullptr) throw std::bad_alloc();
        std::lock_guard<std::mutex> g(a.mu);
        try {
            a.large.emplace(reinterpret_cast<uintptr_t>(p), mapped);
        } catch (...) {
            ::munmap(p, mapped);
            throw;
        }
        a.use.mapped_bytes += mapped;
        a.use.in_use_bytes += mapped;
        ++a.use.objects;
        return p;   // fresh anonymous memory is zero
    }
    unsigned shift = min_shift;
    while ((std::size_t{1} << shift) < bytes) ++shift;
    const unsigned c = shift - min_shift;
    const std::size_t size = std::size_t{1} << shift;
    char* p;
    {
        std::lock_guard<std::mutex> g(a.mu);
        if (a.free_list[c] != nullptr) {
            p = reinterpret_cast<char*>(a.free_list[c]);
            a.free_list[c] = a.free_list[c]->next;
        } else {
            if (a.bump[c] == a.bump_end[c]) {
                char* s = map_aligned(dp_slab_bytes);
                if (s == nullptr) throw std::bad_alloc();
                try {
                    a.slab_class.emplace(reinterpret_cast<uintptr_t>(s), c);
                } catch (...) {
                    ::munmap(s, dp_slab_bytes);
                    throw;
                }
                a.bump[c] = s;
                a.bump_end[c] = s + dp_slab_bytes;
                a.use.mapped_bytes += dp_slab_bytes;
            }
            p = a.bump[c];
            a.bump[c] += size;
        }
        a.use.in_use_bytes += size;
        ++a.use.objects;
    }
    return p;
}

table_alloc_error::table_alloc_error(std::string setting_, uint64_t bytes_, const std::string& what)
    : std::runtime_error(what), setting(std::move(setting_)), bytes(bytes_) {}

table_alloc_error table_alloc_failed(std::string_view table, std::string setting, std::string_view sized_by,
                                     uint64_t count, uint64_t each) {
    uint64_t bytes = 0;
    const bool overflow = __builtin_mul_overflow(count, each, &bytes);
    const double gib = static_cast<double>(count) * static_cast<double>(each) / double(uint64_t{1} << 30);
    const std::string asked =
        overflow ? fmt::format("{} x {} B, more than 16 EiB", sized_by, each)
        : gib >= 1 ? fmt::format("{} x {} B = {} bytes ({:.1f} GiB)", sized_by, each, bytes, gib)
                   : fmt::format("{} x {} B = {} bytes ({:.1f} MiB)", sized_by, each, bytes, gib * 1024);
    std::string what = fmt::format("{} cannot be allocated: {}; lower {} or give the relay more memory", table,
                                   asked, setting);
    return table_alloc_error(std::move(setting), overflow ? UINT64_MAX : bytes, what);
}

void* dp_alloc_table(std::string_view table, std::string setting, std::string_view sized_by, uint64_t count,
                     std::size_t each) {
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(count, uint64_t{each}, &bytes) || bytes > SIZE_MAX)
        throw table_alloc_failed(table, std::move(setting), sized_by, count, each);
    try {
        return dp_alloc(static_cast<std::size_t>(bytes));
    } catch (const std::bad_alloc&) {
        throw table_alloc_failed(table, std::move(setting), sized_by, count, each);
    }
}

void dp_free(void* p) noexcept {
    if (p == nullptr) return;
    arena& a = the_arena();
    const auto u = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> g(a.mu);
    if (const auto it = a.large.find(u); it != a.large.end()) {
        ::munmap(p, it->second);
        a.use.mapped_bytes -= it->second;
        a.use.in_use_bytes -= it->second;
        --a.use.objects;
        a.large.erase(it);
        return;
    }
    const auto it = a.slab_class.find(u & ~(uintptr_t{dp_slab_bytes} - 1));
    const std::size_t size = it == a.slab_class.end() ? 0 : std::size_t{1} << (it->second + min_shift);
    if (size == 0 || (u & (size - 1)) != 0) {
        // Not an object of ours: a bug in the caller, and continuing would
        // hand the same memory out twice.
        std::fprintf(stderr, "stentor: dp_free(%p): not allocated by dp_alloc\n", p);
        std::abort();
    }
    auto* n = static_cast<free_node*>(p);
    n->next = a.free_list[it->second];
    a.free_list[it->second] = n;
    a.use.in_use_bytes -= size;
    --a.use.objects;
}

dp_memory_usage dp_memory_stats() noexcept {
    arena& a = the_arena();
    std::lock_guard<std::mutex> g(a.mu);
    return a.use;
}

}  // namespace stentor::control
