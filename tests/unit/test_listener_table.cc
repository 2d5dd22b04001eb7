// The listener table: relay_state's copy-on-write chunked arrays as the data
// plane sees them through published snapshots. No EAL needed: the snapshot is
// plain memory and RCU is off (nobody reads concurrently here).
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "config.h"
#include "dp_memory.h"
#include "state.h"
#include "stentor/dp_snapshot.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_worker.h"

namespace {

using namespace stentor;
using control::action_error;

control::profile table_profile() {
    control::profile p;
    control::port_config pc;
    pc.name = "lan0";
    pc.device = "net_null0";
    pc.ipv4 = 0xc6120001;
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    p.ports.push_back(pc);
    p.limits.max_neighbours = 64;
    p.limits.max_listeners = 100000;
    p.limits.max_listeners_per_session = 50000;
    return p;
}

struct table {
    control::profile prof = table_profile();
    std::unique_ptr<dp::dp_neigh[]> neigh{new dp::dp_neigh[64]};
    dp::dp_shared shared;
    std::unique_ptr<control::relay_state> st;
    explicit table(unsigned shards = 1) {
        shared.neigh = neigh.get();
        shared.nb_neigh = 64;
        st = std::make_unique<control::relay_state>(prof, shared, shards);
    }
    const dp::dp_snapshot& snap() const { return *shared.snapshot.load(); }
    const dp::dp_session& session(uint32_t id) const {
        for (uint32_t i = 0; i < snap().nb_sessions; ++i)
            if (snap().sessions[i]->generation != 0 && snap().sessions[i]->id == id) return *snap().sessions[i];
        throw std::runtime_error("no session in snapshot");
    }
    // Live listeners of (session, shard, tier) as the fan-out loop walks them.
    std::vector<std::pair<uint32_t, uint16_t>> walk(uint32_t id, unsigned shard, unsigned tier) const {
        std::vector<std::pair<uint32_t, uint16_t>> out;
        const dp::dp_listener_list* l = session(id).shards[shard].v4[tier];
        if (l == nullptr) return out;
        for (uint32_t s = 0; s < l->nb_slots; ++s) {
            const dp::dp_listener& r = l->chunks[s / dp::listener_chunk_size]->l[s % dp::listener_chunk_size];
            if (dp::is_live(r))
                out.emplace_back(__builtin_bswap32(r.ip_be), __builtin_bswap16(r.port_be));
        }
        return out;
    }
};

uint32_t create(control::relay_state& st) {
    control::session_params sp;
    return st.session_create(sp).id;
}

TEST(ListenerTable, records_are_8_bytes_address_port_and_next_hop_and_a_free_slot_is_zero) {
    table t;
    const uint32_t id = create(*t.st);
    t.st->listener_add(id, 0xcb007105, 6000, 2);   // 203.0.113.5 via the gateway
    t.st->listener_add(id, 0xcb007106, 6000, 2);
    t.st->publish();
    const dp::dp_listener_list* l = t.session(id).shards[0].v4[2];
    ASSERT_NE(nullptr, l);
    ASSERT_EQ(2u, l->nb_slots);
    const dp::dp_listener& r = l->chunks[0]->l[0];
    EXPECT_EQ(0xcb007105u, __builtin_bswap32(r.ip_be));
    EXPECT_EQ(6000, __builtin_bswap16(r.port_be));
    EXPECT_TRUE(dp::is_live(r));
    // The next hop is the gateway: one neighbour entry for it.
    EXPECT_EQ(__builtin_bswap32(0xc61200feu), t.neigh[r.neigh_idx].ip_be);
    // A leaver's slot is all zero, which the fan-out reads as free.
    t.st->listener_del(id, 0xcb007105, 6000);
    t.st->publish();
    const dp::dp_listener& f = t.session(id).shards[0].v4[2]->chunks[0]->l[0];
    EXPECT_FALSE(dp::is_live(f));
    EXPECT_EQ(0u, f.ip_be);
    EXPECT_EQ(0u, f.neigh_idx);
    EXPECT_TRUE(dp::is_live(t.session(id).shards[0].v4[2]->chunks[0]->l[1]));
}

TEST(ListenerTable, tiers_live_in_separate_lists_and_slots_are_reused_within_a_tier) {
    table t;
    const uint32_t id = create(*t.st);
    for (uint32_t i = 0; i < 5; ++i) t.st->listener_add(id, 0xc6120010 + i, 5004, i % 2);
    t.st->publish();
    EXPECT_EQ(3u, t.walk(id, 0, 0).size());
    EXPECT_EQ(2u, t.walk(id, 0, 1).size());
    t.st->listener_del(id, 0xc6120012, 5004);   // tier 0, slot 1
    t.st->publish();
    EXPECT_EQ((std::vector<std::pair<uint32_t, uint16_t>>{{0xc6120010, 5004}, {0xc6120014, 5004}}), t.walk(id, 0, 0));
    EXPECT_EQ(3u, t.session(id).shards[0].v4[0]->nb_slots) << "a leave clears its slot, it does not move others";
    t.st->listener_add(id, 0xc6120020, 5004, 0);
    t.st->publish();
    const auto w = t.walk(id, 0, 0);
    ASSERT_EQ(3u, w.size());
    EXPECT_EQ(0xc6120020u, w[1].first) << "the freed slot is reused by the next join of the same tier";
    EXPECT_EQ(3u, t.session(id).shards[0].v4[0]->nb_slots);
}

TEST(ListenerTable, a_change_copies_only_the_chunk_it_touches) {
    table t;
    const uint32_t id = create(*t.st);
    const uint32_t n = 3 * dp::listener_chunk_size;
    for (uint32_t i = 0; i < n; ++i) t.st->listener_add(id, 0x0a000001 + i, 5004, 0);   // via the gateway
    t.st->publish();
    const dp::dp_listener_list* before = t.session(id).shards[0].v4[0];
    ASSERT_EQ(3u, before->nb_chunks);
    const std::vector<const dp::dp_listener_chunk*> old(before->chunks, before->chunks + 3);
    t.st->listener_del(id, 0x0a000001 + dp::listener_chunk_size + 7, 5004);   // in chunk 1
    t.st->publish();
    const dp::dp_listener_list* after = t.session(id).shards[0].v4[0];
    EXPECT_EQ(old[0], after->chunks[0]);
    EXPECT_NE(old[1], after->chunks[1]) << "the touched chunk is a new copy";
    EXPECT_EQ(old[2], after->chunks[2]);
    EXPECT_EQ(n - 1, after->nb_live);
}

// A chunk copied on write takes only its slots in use and zeroes the rest,
// on memory that held something else (dp_alloc_uninit): the slots past the
// list's end are zero in every version, and a join that extends the list
// finds its slot free.
TEST(ListenerTable, a_copied_chunk_keeps_its_slots_in_use_and_is_zero_past_them) {
    table t;
    const uint32_t id = create(*t.st);
    const uint32_t n = dp::listener_chunk_size + 88;   // chunk 1 holds 88 slots
    for (uint32_t i = 0; i < n; ++i) t.st->listener_add(id, 0x0a000001 + i, 5004, 0);
    t.st->publish();
    // The next chunk-sized object the allocator hands out is this garbage.
    void* junk = control::dp_alloc(sizeof(dp::dp_listener_chunk));
    std::memset(junk, 0xa5, sizeof(dp::dp_listener_chunk));
    control::dp_free(junk);
    t.st->listener_del(id, 0x0a000001 + dp::listener_chunk_size + 7, 5004);   // copies chunk 1
    t.st->publish();
    {
        const dp::dp_listener_list* l = t.session(id).shards[0].v4[0];
        ASSERT_EQ(n, l->nb_slots);
        ASSERT_EQ(n - 1, l->nb_live);
        const dp::dp_listener_chunk* c = l->chunks[1];
        ASSERT_EQ(junk, static_cast<const void*>(c)) << "the copy is made over the garbage (a LIFO free list)";
        uint32_t seen = 0;
        for (uint32_t k = 0; k < dp::listener_chunk_size; ++k) {
            const dp::dp_listener& r = c->l[k];
            const uint32_t slot = dp::listener_chunk_size + k;
            if (slot >= n || slot == dp::listener_chunk_size + 7) {
                EXPECT_EQ(0u, r.ip_be) << "slot " << slot;
                EXPECT_EQ(0u, r.port_be) << "slot " << slot;
                EXPECT_EQ(0u, r.neigh_idx) << "slot " << slot;
                continue;
            }
            ++seen;
            EXPECT_EQ(0x0a000001 + slot, __builtin_bswap32(r.ip_be)) << "slot " << slot;
            EXPECT_EQ(5004, __builtin_bswap16(r.port_be)) << "slot " << slot;
        }
        EXPECT_EQ(n - 1 - dp::listener_chunk_size, seen);
    }
    // A join reuses the freed slot, then one more extends the list into
    // the zeroed tail, on another copy made over garbage.
    junk = control::dp_alloc(sizeof(dp::dp_listener_chunk));
    std::memset(junk, 0x5a, sizeof(dp::dp_listener_chunk));
    control::dp_free(junk);
    t.st->listener_add(id, 0x0a000001 + n + 1, 5004, 0);   // the freed slot; copies chunk 1 again
    t.st->listener_add(id, 0x0a000001 + n + 2, 5004, 0);   // slot n: past the old end
    t.st->publish();
    ASSERT_EQ(junk, static_cast<const void*>(t.session(id).shards[0].v4[0]->chunks[1]));
    const dp::dp_listener& reused = t.session(id).shards[0].v4[0]->chunks[1]->l[7];
    EXPECT_EQ(0x0a000001 + n + 1, __builtin_bswap32(reused.ip_be));
    const dp::dp_listener& grown = t.session(id).shards[0].v4[0]->chunks[1]->l[88];
    EXPECT_EQ(0x0a000001 + n + 2, __builtin_bswap32(grown.ip_be));
    EXPECT_EQ(n + 1, t.session(id).shards[0].v4[0]->nb_slots);
    EXPECT_EQ(n + 1, t.session(id).shards[0].v4[0]->nb_live);
    for (uint32_t k = 89; k < dp::listener_chunk_size; ++k)
        EXPECT_EQ(0u, t.session(id).shards[0].v4[0]->chunks[1]->l[k].port_be) << "slot " << dp::listener_chunk_size + k;
}

TEST(ListenerTable, a_small_list_carries_its_records_after_its_header) {
    // Up to listener_inline_max slots, a published list holds a copy of its
    // records right after its header (dp_snapshot.h); past that, chunks. The
    // fan-out walks both the same way, and every version says what it held.
    table t;
    const uint32_t id = create(*t.st);
    auto inline_at = [](const dp::dp_listener_list* l) {
        return reinterpret_cast<const char*>(l->chunks[0]) == reinterpret_cast<const char*>(l) + dp::listener_inline_offset;
    };
    for (uint32_t i = 0; i < 3; ++i) t.st->listener_add(id, 0x0a000001 + i, 5004, 0);
    t.st->publish();
    const dp::dp_listener_list* first = t.session(id).shards[0].v4[0];
    ASSERT_TRUE(inline_at(first));
    EXPECT_EQ(1u, first->nb_chunks);
    EXPECT_EQ(3u, t.walk(id, 0, 0).size());

    t.st->listener_del(id, 0x0a000002, 5004);
    t.st->publish();
    const dp::dp_listener_list* second = t.session(id).shards[0].v4[0];
    ASSERT_TRUE(inline_at(second));
    EXPECT_EQ((std::vector<std::pair<uint32_t, uint16_t>>{{0x0a000001, 5004}, {0x0a000003, 5004}}), t.walk(id, 0, 0));
    EXPECT_EQ(3u, second->nb_slots);
    EXPECT_EQ(2u, second->nb_live);

    // Filled to the bound: still inline, every record where the walk looks.
    for (uint32_t i = 3; i <= dp::listener_inline_max; ++i) t.st->listener_add(id, 0x0a000001 + i, 5004, 0);
    t.st->publish();
    const dp::dp_listener_list* full = t.session(id).shards[0].v4[0];
    ASSERT_EQ(dp::listener_inline_max, full->nb_slots);
    EXPECT_TRUE(inline_at(full));
    auto w = t.walk(id, 0, 0);
    ASSERT_EQ(dp::listener_inline_max, w.size());
    EXPECT_EQ(0x0a000001u + dp::listener_inline_max, w.back().first);

    // One more slot: the list points at its chunk again.
    t.st->listener_add(id, 0x0b000001, 5004, 0);
    t.st->publish();
    const dp::dp_listener_list* big = t.session(id).shards[0].v4[0];
    ASSERT_EQ(dp::listener_inline_max + 1, big->nb_slots);
    EXPECT_FALSE(inline_at(big));
    w = t.walk(id, 0, 0);
    ASSERT_EQ(dp::listener_inline_max + 1, w.size());
    EXPECT_EQ(0x0b000001u, w.back().first);
}

TEST(ListenerTable, listeners_spread_evenly_over_shards) {
    table t(4);
    const uint32_t id = create(*t.st);
    for (uint32_t i = 0; i < 1001; ++i) t.st->listener_add(id, 0x0a000001 + i, 5004, i % 4);
    t.st->publish();
    size_t total = 0;
    for (unsigned sh = 0; sh < 4; ++sh) {
        size_t in_shard = 0;
        for (unsigned tier = 0; tier < 4; ++tier) in_shard += t.walk(id, sh, tier).size();
        EXPECT_GE(in_shard, 250u);
        EXPECT_LE(in_shard, 251u);
        total += in_shard;
    }
    EXPECT_EQ(1001u, total);
}

TEST(ListenerTable, refusals_change_nothing) {
    table t;
    const uint32_t id = create(*t.st);
    t.st->listener_add(id, 0xc6120010, 5004, 0);
    t.st->publish();
    const uint64_t v = t.st->published_version();
    struct bad {
        uint32_t ip;
        unsigned port, tier;
        const char* code;
    };
    const bad rows[] = {
        {0xc6120010, 5004, 0, "exists"},        // duplicate
        {0x7f000001, 5004, 0, "invalid"},       // loopback
        {0xe0000001, 5004, 0, "invalid"},       // multicast
        {0xffffffff, 5004, 0, "invalid"},       // broadcast
        {0xc61200ff, 5004, 0, "invalid"},       // the port's directed broadcast
        {0xa9fe0001, 5004, 0, "invalid"},       // link-local
        {0x00000000, 5004, 0, "invalid"},       // unspecified
        {0xc6120001, 5004, 0, "invalid"},       // the relay's own address
        {0xc6120011, 0, 0, "invalid"},          // port 0
        {0xc6120011, 5004, 4, "invalid"},       // tier out of range
    };
    for (const auto& r : rows) {
        try {
            t.st->listener_add(id, r.ip, r.port, r.tier);
            ADD_FAILURE() << "accepted " << std::hex << r.ip;
        } catch (const action_error& e) {
            EXPECT_EQ(r.code, name_of(e.code)) << std::hex << r.ip << " " << e.what();
        }
    }
    EXPECT_THROW(t.st->listener_add(id + 100, 0xc6120011, 5004, 0), action_error);
    EXPECT_THROW(t.st->listener_del(id, 0xc6120099, 5004), action_error);
    t.st->publish();
    EXPECT_EQ(1u, t.st->nb_listeners());
    EXPECT_EQ((std::vector<std::pair<uint32_t, uint16_t>>{{0xc6120010, 5004}}), t.walk(id, 0, 0));
    EXPECT_LE(v, t.st->published_version());
}

TEST(ListenerTable, neighbour_table_is_bounded_and_never_evicts_a_used_entry) {
    table t;
    const uint32_t id = create(*t.st);
    // 64 entries: on-link listeners each need their own.
    unsigned added = 0;
    for (uint32_t i = 0; i < 100; ++i) {
        try {
            t.st->listener_add(id, 0xc6120002 + i, 5004, 0);
            ++added;
        } catch (const action_error& e) {
            EXPECT_EQ("capacity", name_of(e.code));
        }
    }
    EXPECT_EQ(64u, added);
    t.st->publish();
    EXPECT_EQ(64u, t.walk(id, 0, 0).size());
}

}  // namespace
