// Issue 10 item 10: listener pages and overload shedding read the join order
// in place. Before, relay_state::listeners() copied and sorted a whole
// session under the state mutex for every page (and shed_newest copied every
// listener of a tier): at 1 M listeners each page request held the mutex for
// a third of a second and stalled every join meanwhile.
//
// The results are checked against a model (a plain vector in join order);
// the "no global copy" of a page is checked by what it allocates on this
// thread, counted by a replacement operator new (no timing): the old code
// allocated 24 bytes per listener of the session for every page.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <random>

#include "fixture.h"

// The replacement pair below is malloc/free underneath; GCC cannot see that
// the pointers it frees came from this operator new.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local size_t g_allocated = 0;
}

void* operator new(size_t n) {
    g_allocated += n;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace stentor::test {
namespace {

struct model_listener {
    uint32_t session;
    uint32_t ip;
    unsigned tier;
};

TEST(paging, pages_and_sheds_follow_join_order_without_copying_the_session) {
    ring_port port = fresh_ring_port("paging");
    auto p = api_profile(port.name);
    control::relay r(p, control::relay_options{.launch = false});
    const uint32_t s1 = r.state().session_create({}).id;
    const uint32_t s2 = r.state().session_create({}).id;
    std::vector<model_listener> joined;   // join order, both sessions
    std::mt19937 rng(7);
    // 30 000 joins (in bulk, like clients arrive), a third of them leave.
    for (uint32_t b = 0; b < 30; ++b) {
        const uint32_t sid = b % 3 == 2 ? s2 : s1;
        std::vector<control::listener_spec> items;
        for (uint32_t i = 0; i < 1000; ++i) {
            const uint32_t ip = 0xcb000000 + b * 1000 + i;   // 203.0.0.0/8: off-link, via the pinned gateway
            const unsigned tier = rng() % 4;
            items.push_back({ip, 6000, tier});
            joined.push_back({sid, ip, tier});
        }
        r.state().listener_add_bulk(sid, items);
    }
    std::shuffle(joined.begin(), joined.end(), rng);
    std::vector<model_listener> leave(joined.begin(), joined.begin() + 10000);
    for (const auto& l : leave) r.state().listener_del(l.session, l.ip, 6000);
    std::vector<model_listener> model;   // back in join order: ip order is join order here
    for (size_t i = 10000; i < joined.size(); ++i) model.push_back(joined[i]);
    std::sort(model.begin(), model.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
    auto of = [&](uint32_t sid) {
        std::vector<model_listener> v;
        for (const auto& l : model)
            if (l.session == sid) v.push_back(l);
        return v;
    };

    struct page_case {
        size_t offset, limit;
    };
    const page_case pages[] = {{0, 10}, {0, 1000}, {5000, 100}, {19990, 100}, {20000, 5}, {0, 0}};
    for (const uint32_t sid : {s1, s2}) {
        const auto want = of(sid);
        for (const auto& pc : pages) {
            SCOPED_TRACE("session " + std::to_string(sid) + " offset " + std::to_string(pc.offset) + " limit " +
                         std::to_string(pc.limit));
            const size_t before = g_allocated;
            const auto got = r.state().listeners(sid, pc.offset, pc.limit);
            EXPECT_LE(g_allocated - before, pc.limit * sizeof(control::listener_view) + 64)
                << "a page allocated more than itself: the session was copied";
            const size_t n = pc.offset >= want.size() ? 0 : std::min(pc.limit, want.size() - pc.offset);
            ASSERT_EQ(n, got.size());
            for (size_t i = 0; i < n; ++i) {
                EXPECT_EQ(want[pc.offset + i].ip, got[i].ip) << i;
                EXPECT_EQ(want[pc.offset + i].tier, got[i].tier) << i;
            }
        }
        // Walking the cursor visits every listener once, in join order.
        std::vector<uint32_t> walked;
        std::optional<uint64_t> after;
        for (;;) {
            const auto page = r.state().listeners(sid, 0, 777, after);
            for (const auto& l : page) walked.push_back(l.ip);
            if (page.size() < 777) break;
            after = page.back().seq;
        }
        ASSERT_EQ(want.size(), walked.size());
        for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(want[i].ip, walked[i]) << i;
    }

    // Shedding: the k newest of a tier across both sessions, newest first.
    for (const unsigned tier : {3u, 0u}) {
        SCOPED_TRACE("tier " + std::to_string(tier));
        std::vector<model_listener> want;
        for (auto it = model.rbegin(); it != model.rend() && want.size() < 1500; ++it)
            if (it->tier == tier) want.push_back(*it);
        const auto shed = r.state().shed_newest(tier, 1500);
        ASSERT_EQ(want.size(), shed.size());
        for (size_t i = 0; i < want.size(); ++i) {
            EXPECT_EQ(want[i].ip, shed[i].ip) << i;
            EXPECT_EQ(want[i].session, shed[i].session_id) << i;
        }
        std::erase_if(model, [&](const model_listener& l) {
            return std::any_of(want.begin(), want.end(), [&](const model_listener& w) { return w.ip == l.ip; });
        });
    }
    EXPECT_EQ(model.size(), r.state().nb_listeners());
    EXPECT_EQ(of(s1).size(), r.state().listeners(s1, 0, 100000).size());
}


// Each listener knows where its entry is in the join order; a compaction
// (holes past three quarters of a tier's entries) moves entries and must tell
// their listeners. Leaves in random order through several compactions, the
// join order checked against the model after each round.
TEST(paging, leaves_through_compactions_keep_the_join_order) {
    ring_port port = fresh_ring_port("compact");
    auto p = api_profile(port.name);
    control::relay r(p, control::relay_options{.launch = false});
    const uint32_t sid = r.state().session_create({}).id;
    std::mt19937 rng(11);
    std::vector<model_listener> model;
    std::vector<control::listener_spec> items;
    for (uint32_t i = 0; i < 4000; ++i) {
        const unsigned tier = rng() % 2;
        items.push_back({0xcb100000 + i, 6000, tier});
        model.push_back({sid, 0xcb100000 + i, tier});
    }
    r.state().listener_add_bulk(sid, items);
    for (const size_t keep : {3000u, 900u, 200u, 40u, 0u}) {
        SCOPED_TRACE("keep " + std::to_string(keep));
        std::vector<model_listener> order = model;
        std::shuffle(order.begin(), order.end(), rng);
        for (size_t i = keep; i < order.size(); ++i) r.state().listener_del(sid, order[i].ip, 6000);
        order.resize(keep);
        std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
        model = order;
        const auto got = r.state().listeners(sid, 0, 100000);
        ASSERT_EQ(model.size(), got.size());
        for (size_t i = 0; i < model.size(); ++i) ASSERT_EQ(model[i].ip, got[i].ip) << i;
        EXPECT_EQ(model.size(), r.state().nb_listeners());
    }
}

}  // namespace
}  // namespace stentor::test
