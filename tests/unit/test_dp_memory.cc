// dp_memory: the allocator of what the data plane reads (control/dp_memory.h).
// Tables of sizes: every object zeroed, aligned, reused after a free; slabs
// on 2 MiB boundaries advised for huge pages; the usage figures back where
// they were once everything is freed.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "dp_memory.h"

namespace {

using stentor::control::dp_alloc;
using stentor::control::dp_alloc_uninit;
using stentor::control::dp_free;
using stentor::control::dp_memory_stats;
using stentor::control::dp_slab_bytes;

struct size_case {
    std::size_t bytes;
    std::size_t rounded;   // what it counts in in_use_bytes
    bool reused;           // a free then an alloc of the same size gets the same object back (else: a new mapping)
};

const size_case sizes[] = {
    {0, 64, true},                       // the smallest class
    {1, 64, true},
    {64, 64, true},
    {65, 128, true},
    {100, 128, true},
    {4096, 4096, true},                  // a listener chunk, either family
    {16384, 16384, true},
    {16385, 32768, true},
    {std::size_t{1} << 20, std::size_t{1} << 20, true},   // the largest class
    {(std::size_t{1} << 20) + 1, dp_slab_bytes, false},  // mapped alone, rounded to 2 MiB
    {(std::size_t{5} << 20) + 3, std::size_t{6} << 20, false},
};

bool all_zero(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i)
        if (b[i] != 0) return false;
    return true;
}

TEST(dp_memory, every_size_is_zeroed_aligned_counted_and_reused) {
    for (const auto& c : sizes) {
        SCOPED_TRACE(c.bytes);
        const auto before = dp_memory_stats();
        void* p = dp_alloc(c.bytes);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
        EXPECT_TRUE(all_zero(p, c.bytes));
        const auto held = dp_memory_stats();
        EXPECT_EQ(held.in_use_bytes - before.in_use_bytes, c.rounded);
        EXPECT_EQ(held.objects - before.objects, 1u);
        EXPECT_GE(held.mapped_bytes, held.in_use_bytes);
        std::memset(p, 0xab, c.bytes);   // dirty it: the next owner must not see this
        dp_free(p);
        const auto after = dp_memory_stats();
        EXPECT_EQ(after.in_use_bytes, before.in_use_bytes);
        EXPECT_EQ(after.objects, before.objects);
        if (!c.reused) {
            EXPECT_EQ(after.mapped_bytes, before.mapped_bytes);   // a large mapping goes back at once
        }
        void* q = dp_alloc(c.bytes);
        if (c.reused) {
            EXPECT_EQ(q, p);   // (a new mapping may land where the old one was, or not)
        }
        EXPECT_TRUE(all_zero(q, c.bytes));
        dp_free(q);
        dp_free(nullptr);
    }
}

// dp_alloc_uninit: the same objects, counted the same, not zeroed (its
// caller writes every byte: a listener chunk copied on write); dp_alloc
// zeroes the same object again.
TEST(dp_memory, uninit_objects_are_counted_the_same_and_keep_their_old_bytes) {
    for (const std::size_t bytes : {std::size_t{64}, std::size_t{4096}, std::size_t{16384}}) {
        SCOPED_TRACE(bytes);
        void* p = dp_alloc(bytes);
        std::memset(p, 0xab, bytes);
        dp_free(p);
        const auto before = dp_memory_stats();
        void* q = dp_alloc_uninit(bytes);
        ASSERT_EQ(q, p) << "a LIFO free list";
        EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 64, 0u);
        EXPECT_EQ(0xab, static_cast<unsigned char*>(q)[bytes - 1]) << "not zeroed";
        EXPECT_EQ(dp_memory_stats().in_use_bytes - before.in_use_bytes, bytes);
        EXPECT_EQ(dp_memory_stats().objects - before.objects, 1u);
        dp_free(q);
        void* z = dp_alloc(bytes);
        EXPECT_TRUE(all_zero(z, bytes));
        dp_free(z);
    }
}

// The VmFlags of the mapping holding `p` (/proc/self/smaps), "" if not found.
std::string vm_flags_of(const void* p) {
    std::ifstream f("/proc/self/smaps");
    std::string line;
    bool in = false;
    const auto a = reinterpret_cast<uintptr_t>(p);
    while (std::getline(f, line)) {
        unsigned long lo = 0, hi = 0;
        char perms[5];
        if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) == 3)   // a mapping's first line
            in = a >= lo && a < hi;
        else if (in && line.rfind("VmFlags:", 0) == 0)
            return line;
    }
    return "";
}

TEST(dp_memory, objects_of_one_size_fill_huge_page_aligned_slabs_advised_for_huge_pages) {
    // 512 objects of 16 KiB (8 MiB): four slabs' worth, each slab holding
    // exactly 128, so at most five slabs (the first may be partly used).
    std::vector<void*> chunks;
    std::set<uintptr_t> slabs;
    for (int i = 0; i < 512; ++i) {
        chunks.push_back(dp_alloc(16384));
        slabs.insert(reinterpret_cast<uintptr_t>(chunks.back()) & ~(uintptr_t{dp_slab_bytes} - 1));
    }
    EXPECT_LE(slabs.size(), 5u);
    EXPECT_GE(slabs.size(), 4u);
    std::set<void*> distinct(chunks.begin(), chunks.end());
    EXPECT_EQ(distinct.size(), chunks.size());
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    if (thp) {
        // madvise(MADV_HUGEPAGE) shows as "hg" in the mapping's VmFlags.
        for (uintptr_t s : slabs) {
            const std::string flags = vm_flags_of(reinterpret_cast<void*>(s));
            EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
        }
        void* big = dp_alloc(std::size_t{3} << 20);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % dp_slab_bytes, 0u);
        EXPECT_NE(vm_flags_of(big).find(" hg"), std::string::npos);
        dp_free(big);
    }
    for (void* c : chunks) dp_free(c);
}

// The control plane allocates from API threads and frees from the
// publisher after a grace period: threads at once, each object its own.
TEST(dp_memory, threads_allocating_and_freeing_at_once_never_share_an_object) {
    const auto before = dp_memory_stats();
    constexpr int nb_threads = 4, rounds = 2000;
    std::vector<std::thread> threads;
    std::atomic<int> overlaps{0};
    for (int t = 0; t < nb_threads; ++t)
        threads.emplace_back([t, &overlaps] {
            std::vector<std::pair<unsigned char*, std::size_t>> held;
            for (int i = 0; i < rounds; ++i) {
                const std::size_t n = std::size_t{64} << ((i + t) % 9);   // 64 B .. 16 KiB
                auto* p = static_cast<unsigned char*>(dp_alloc(n));
                if (!all_zero(p, n)) ++overlaps;
                std::memset(p, t + 1, n);   // this thread's mark
                held.emplace_back(p, n);
                if (i % 3 == 2) {           // free one of the older ones, checking its mark first
                    auto [q, m] = held[held.size() / 2];
                    for (std::size_t k = 0; k < m; ++k)
                        if (q[k] != t + 1) {
                            ++overlaps;
                            break;
                        }
                    dp_free(q);
                    held.erase(held.begin() + static_cast<long>(held.size() / 2));
                }
            }
            for (auto [q, m] : held) dp_free(q);
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(overlaps.load(), 0);
    const auto after = dp_memory_stats();
    EXPECT_EQ(after.in_use_bytes, before.in_use_bytes);
    EXPECT_EQ(after.objects, before.objects);
}

TEST(dp_memory, freeing_what_it_did_not_allocate_stops_the_process) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    void* foreign = std::malloc(64);
    EXPECT_DEATH(dp_free(foreign), "not allocated by dp_alloc");
    void* p = dp_alloc(256);
    EXPECT_DEATH(dp_free(static_cast<char*>(p) + 64), "not allocated by dp_alloc");   // inside an object
    dp_free(p);
    std::free(foreign);
}

}  // namespace
