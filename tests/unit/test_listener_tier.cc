// relay_state::listener_set_tier: a listener moves to another tier in one
// action (docs/join.md "Renewal and tier"). Checked here on relay_state with
// admission, as stentord builds them, and on the snapshots it publishes (no
// EAL: the snapshot is plain memory and RCU is off, as in
// test_listener_table). Its journal record: tests/unit/test_journal.cc.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "admission.h"
#include "config.h"
#include "ip6.h"
#include "state.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_snapshot.h"
#include "stentor/dp_worker.h"

namespace {

using namespace stentor;
using namespace stentor::control;

ipv6_addr v6(const char* text) { return *parse_ipv6(text); }

// One port, 198.18.0.1/24 and 2001:db8:100::1/64, both with a gateway.
// A session's listener costs 287.2 kbit/s on the wire over IPv4 (20 ms
// frames of 256 kbit/s: 718 bytes a packet, preamble and gap included) and
// 295.2 kbit/s over IPv6; the default port is fast enough for thousands.
profile tier_profile() {
    profile p;
    port_config pc;
    pc.name = "lan0";
    pc.device = "net_null0";
    pc.ipv4 = 0xc6120001;
    pc.prefix_len = 24;
    pc.gateway = 0xc61200fe;
    pc.ipv6 = v6("2001:db8:100::1");
    pc.prefix6_len = 64;
    pc.gateway6 = v6("2001:db8:100::fe");
    pc.line_rate_mbps = 10000;
    p.ports.push_back(pc);
    p.dataplane.fanout_lcores = {1, 2};
    p.limits.max_neighbours = 64;
    p.limits.max_listeners = 1000;
    p.limits.max_listeners_per_session = 1000;
    p.limits.fanout_pps_per_core = 100000000;
    return p;
}

// relay_state with admission, two fan-out shards.
struct relay {
    profile prof;
    std::unique_ptr<dp::dp_neigh[]> neigh;
    dp::dp_shared shared;
    std::unique_ptr<admission> adm;
    std::unique_ptr<relay_state> st;
    explicit relay(const profile& p) : prof(p) {
        neigh.reset(new dp::dp_neigh[prof.limits.max_neighbours]);
        shared.neigh = neigh.get();
        shared.nb_neigh = prof.limits.max_neighbours;
        st = std::make_unique<relay_state>(prof, shared, 2);
        adm = std::make_unique<admission>(admission_config_from(prof, {}));
        st->set_admission(adm.get());
        st->session_create(session_params{});   // id 1
    }
    ~relay() { st->set_admission(nullptr); }

    // Where the published snapshot has a live record of this peer: one
    // "shard/tier" per list that holds it (the list is the tier).
    std::vector<std::string> published_at(const listener_addr& a) const {
        std::vector<std::string> out;
        const dp::dp_snapshot& snap = *shared.snapshot.load();
        const dp::dp_session* s = nullptr;
        for (uint32_t i = 0; i < snap.nb_sessions; ++i)
            if (snap.sessions[i]->generation != 0 && snap.sessions[i]->id == 1) s = snap.sessions[i];
        if (s == nullptr) return {"no session"};
        for (unsigned sh = 0; sh < 2; ++sh)
            for (unsigned t = 0; t < dp::max_tiers; ++t) {
                const std::string at = std::to_string(sh) + "/" + std::to_string(t);
                if (const auto* l = s->shards[sh].v4[t]; l != nullptr && !a.ip6)
                    for (uint32_t k = 0; k < l->nb_slots; ++k) {
                        const auto& r = l->chunks[k / dp::listener_chunk_size]->l[k % dp::listener_chunk_size];
                        if (dp::is_live(r) && __builtin_bswap32(r.ip_be) == a.ip &&
                            __builtin_bswap16(r.port_be) == a.port)
                            out.push_back(at);
                    }
                if (const auto* l = s->shards[sh].v6[t]; l != nullptr && a.ip6)
                    for (uint32_t k = 0; k < l->nb_slots; ++k) {
                        const auto& r = l->chunks[k / dp::listener6_chunk_size]->l[k % dp::listener6_chunk_size];
                        if ((r.flags & dp::listener_flag_live) && std::equal(a.ip6->begin(), a.ip6->end(), r.ip) &&
                            __builtin_bswap16(r.port_be) == a.port)
                            out.push_back(at);
                    }
            }
        return out;
    }
    // The live records of every published list, with the list's nb_live:
    // what the fan-out walks.
    std::string published() const {
        std::ostringstream o;
        const dp::dp_snapshot& snap = *shared.snapshot.load();
        for (uint32_t i = 0; i < snap.nb_sessions; ++i) {
            const dp::dp_session* s = snap.sessions[i];
            if (s->generation == 0) continue;
            o << "session " << s->id << " listeners " << s->nb_listeners << '\n';
            for (unsigned sh = 0; sh < 2; ++sh)
                for (unsigned t = 0; t < dp::max_tiers; ++t) {
                    if (const auto* l = s->shards[sh].v4[t]) {
                        o << " v4 " << sh << '/' << t << " live " << l->nb_live << ':';
                        for (uint32_t k = 0; k < l->nb_slots; ++k) {
                            const auto& r = l->chunks[k / dp::listener_chunk_size]->l[k % dp::listener_chunk_size];
                            if (dp::is_live(r)) o << ' ' << r.ip_be << '.' << r.port_be << '@' << k;
                        }
                        o << '\n';
                    }
                    if (const auto* l = s->shards[sh].v6[t]) {
                        o << " v6 " << sh << '/' << t << " live " << l->nb_live << ':';
                        for (uint32_t k = 0; k < l->nb_slots; ++k) {
                            const auto& r = l->chunks[k / dp::listener6_chunk_size]->l[k % dp::listener6_chunk_size];
                            if (r.flags & dp::listener_flag_live) o << ' ' << unsigned{r.ip[15]} << '.' << r.port_be << '@' << k;
                        }
                        o << '\n';
                    }
                }
        }
        return o.str();
    }
    // Everything a refusal must leave as it was: counts per tier, the join
    // order with tiers and seqs, the token flags, admission's load, its
    // admitted count, the change mark (nothing to journal or publish).
    std::string model() const {
        std::ostringstream o;
        const auto s = *st->session(1);
        o << "listeners " << s.nb_listeners << " v6 " << s.nb_listeners6 << " tiers";
        for (auto t : s.listeners_per_tier) o << ' ' << t;
        o << " joins " << s.tally.joins << " leaves " << s.tally.leaves << '\n';
        for (const auto& l : st->listeners(1, 0, ~size_t{0}))
            o << "  " << format_peer(l.ip, l.ip6, l.port) << " tier " << l.tier << " seq " << l.seq << '\n';
        for (const auto& r : st->listener_refs(true)) o << "  by token " << format_peer(r.ip, r.ip6, r.port) << '\n';
        const auto rep = adm->report();
        o << "used " << rep.used_pps << " pps " << rep.ports[0].used_bps << " bps admitted " << rep.admitted
          << " mark " << st->change_mark() << '\n';
        return o.str();
    }
    std::optional<listener_view> view(const listener_addr& a) const {
        for (const auto& l : st->listeners(1, 0, ~size_t{0}))
            if (l.ip == a.ip && l.port == a.port && l.ip6 == a.ip6) return l;
        return std::nullopt;
    }
};

const listener_addr a4{0xc6120010, 5004};                             // 198.18.0.16:5004, on-link
const listener_addr b4{0xcb007105, 6000};                             // 203.0.113.5:6000, via the gateway
const listener_addr a6{0, 5004, v6("2001:db8:100::10")};              // on-link
const listener_addr b6{0, 6000, v6("2001:db8:999::5")};               // via gateway6

listener_spec spec(const listener_addr& a, unsigned tier, bool by_token) { return {a.ip, a.port, tier, by_token, a.ip6}; }

// A listener moves up, down, or not at all (its tier already), either
// family, joined by token or registered; others of the session around it
// (in its old tier and its new one) keep their places. After the move and a
// publish it is in exactly one published list, its new tier's, on the shard
// it was on; every count follows; admission's load does not change (a
// listener costs the same at every tier); it is the newest of its new tier.
TEST(ListenerTier, a_listener_moves_to_another_tier_in_one_step_and_every_count_follows) {
    struct row {
        const char* what;
        listener_addr who;
        bool by_token;
        unsigned from, to;
    };
    const row rows[] = {
        {"down: tier 0 to 3, IPv4, by token", a4, true, 0, 3},
        {"up: tier 3 to 0, IPv4, registered", b4, false, 3, 0},
        {"down: tier 1 to 2, IPv6 on-link, by token", a6, true, 1, 2},
        {"up: tier 2 to 1, IPv6 via gateway6, registered", b6, false, 2, 1},
        {"the same tier: nothing moves", a4, true, 2, 2},
        {"the same tier, IPv6: nothing moves", a6, false, 1, 1},
    };
    for (const auto& rw : rows) {
        SCOPED_TRACE(rw.what);
        relay r(tier_profile());
        // Company: one listener in each tier of each family before it, one
        // after it in its new tier.
        for (unsigned t = 0; t < dp::max_tiers; ++t) {
            r.st->listener_add(1, listener_spec{0xc6120020 + t, 7000, t});
            auto other6 = v6("2001:db8:100::20");
            other6[15] = static_cast<uint8_t>(0x20 + t);
            r.st->listener_add(1, listener_spec{0, 7000, t, false, other6});
        }
        r.st->listener_add(1, spec(rw.who, rw.from, rw.by_token));
        r.st->listener_add(1, listener_spec{0xc6120030, 7001, rw.to});
        r.st->publish();
        const auto before = r.view(rw.who);
        ASSERT_TRUE(before.has_value());
        const auto at_before = r.published_at(rw.who);
        ASSERT_EQ(1u, at_before.size());
        const std::string shard = at_before[0].substr(0, 1);
        const auto per_tier = r.st->session(1)->listeners_per_tier;
        const auto rep = r.adm->report();
        const uint64_t mark = r.st->change_mark();
        const std::string unchanged = r.model();

        const bool moved = r.st->listener_set_tier(1, rw.who, rw.to);
        r.st->publish();

        EXPECT_EQ(rw.from != rw.to, moved);
        EXPECT_EQ((std::vector<std::string>{shard + "/" + std::to_string(rw.to)}), r.published_at(rw.who))
            << "exactly one published list holds it, its new tier's, on its shard";
        const auto after = r.view(rw.who);
        ASSERT_TRUE(after.has_value());
        EXPECT_EQ(rw.to, after->tier);
        const auto s = *r.st->session(1);
        EXPECT_EQ(10u, s.nb_listeners);
        EXPECT_EQ(rw.who.ip6 ? 5u : 4u, s.nb_listeners6);
        for (unsigned t = 0; t < dp::max_tiers; ++t) {
            const uint64_t want = per_tier[t] - (t == rw.from ? 1 : 0) + (t == rw.to ? 1 : 0);
            EXPECT_EQ(want, s.listeners_per_tier[t]) << "tier " << t;
        }
        EXPECT_EQ(10u, s.tally.joins) << "a move is not a join";
        EXPECT_EQ(0u, s.tally.leaves) << "a move is not a leave";
        const auto rep_after = r.adm->report();
        EXPECT_DOUBLE_EQ(rep.used_pps, rep_after.used_pps);
        EXPECT_DOUBLE_EQ(rep.ports[0].used_bps, rep_after.ports[0].used_bps);
        EXPECT_EQ(rep.admitted, rep_after.admitted);
        bool token = false;
        for (const auto& l : r.st->listener_refs(true))
            if (l.ip == rw.who.ip && l.port == rw.who.port && l.ip6 == rw.who.ip6) {
                token = true;
                EXPECT_EQ(rw.to, l.tier);
            }
        EXPECT_EQ(rw.by_token, token) << "joined by token or not, as before";
        if (!moved) {
            EXPECT_EQ(before->seq, after->seq) << "its place in the join order";
            EXPECT_EQ(mark, r.st->change_mark()) << "nothing to publish or journal";
            EXPECT_EQ(unchanged, r.model());
            continue;
        }
        EXPECT_GT(after->seq, before->seq);
        // The newest of its new tier: the overload controller sheds it first
        // there, and nobody of its old tier goes in its place.
        const auto shed = r.st->shed_newest(rw.to, 1);
        ASSERT_EQ(1u, shed.size());
        EXPECT_EQ(rw.who.ip, shed[0].ip);
        EXPECT_EQ(rw.who.ip6, shed[0].ip6);
        EXPECT_EQ(rw.who.port, shed[0].port);
        r.st->publish();
        EXPECT_TRUE(r.published_at(rw.who).empty());
        EXPECT_EQ(per_tier[rw.from] - 1, r.st->session(1)->listeners_per_tier[rw.from]);
    }
}

// It can move back and forth, and each time takes the slot it freed in the
// list it goes back to: no list grows. One list is large (chunks copied on
// write), the other small (published inline after its header).
TEST(ListenerTier, back_and_forth_reuses_the_slots_it_freed) {
    relay r(tier_profile());
    for (uint32_t i = 0; i < 300; ++i) r.st->listener_add(1, listener_spec{0xcb007110, 5000 + i, 2});   // one next hop
    r.st->listener_add(1, spec(a4, 2, true));
    r.st->publish();
    const auto slots = [&r](unsigned tier) {
        const dp::dp_snapshot& snap = *r.shared.snapshot.load();
        uint32_t n = 0;
        for (uint32_t i = 0; i < snap.nb_sessions; ++i)
            if (snap.sessions[i]->generation != 0)
                for (unsigned sh = 0; sh < 2; ++sh)
                    if (const auto* l = snap.sessions[i]->shards[sh].v4[tier]) n += l->nb_slots;
        return n;
    };
    EXPECT_EQ(301u, slots(2));
    for (unsigned round = 0; round < 6; ++round) {
        SCOPED_TRACE(round);
        const unsigned to = round % 2 == 0 ? 0 : 2;
        EXPECT_TRUE(r.st->listener_set_tier(1, a4, to));
        r.st->publish();
        const auto at = r.published_at(a4);
        ASSERT_EQ(1u, at.size());
        EXPECT_EQ("/" + std::to_string(to), at[0].substr(1));
        EXPECT_EQ(301u, slots(2)) << "tier 2's lists did not grow";
        EXPECT_EQ(1u, slots(0)) << "tier 0's list did not grow";
        EXPECT_EQ(301u, r.st->session(1)->nb_listeners);
    }
}

// Bad input and refusals: a clear error, and nothing changes — not the
// model, not admission, not the published lists (after a publish), not the
// change mark (nothing journaled). Refused by admission exactly as a join
// at the new tier would be: the reserve of the tiers above it (its own
// load set aside), the join rate.
TEST(ListenerTier, refusals_say_why_and_change_nothing) {
    // One 287.2 kbit/s listener fits the 360 kbit/s tier 0 leaves the others
    // (60 % of a 900 kbit/s port reserved for it), two do not.
    auto small = tier_profile();
    small.ports[0].line_rate_mbps = 1;
    small.limits.tier0_reserve_pct = 60;
    auto slow = tier_profile();
    slow.limits.session_join_rate_per_s = 1;
    struct row {
        const char* what;
        profile prof;
        std::function<void(relay_state&)> setup;
        uint32_t session;
        listener_addr who;
        unsigned to;
        error_code code;
        const char* reason;   // a substring of what()
    };
    const auto one = [](relay_state& st) { st.listener_add(1, spec(a4, 0, true)); };
    const row rows[] = {
        {"an unknown session", tier_profile(), one, 7, a4, 1, error_code::not_found, "no session 7"},
        {"an unknown listener", tier_profile(), one, 1, b4, 1, error_code::not_found, "no listener 203.0.113.5:6000"},
        {"an unknown IPv6 listener", tier_profile(), one, 1, a6, 1, error_code::not_found,
         "no listener [2001:db8:100::10]:5004"},
        {"a tier out of range", tier_profile(), one, 1, a4, 4, error_code::invalid, "tier: 4 is out of range 0..3"},
        {"a fleet trunk listener", tier_profile(),
         [](relay_state& st) { st.listener_add(1, listener_spec{a4.ip, a4.port, 0, false, std::nullopt, true}); }, 1,
         a4, 1, error_code::invalid, "is a fleet trunk"},
        {"the reserve of tier 0: tier 1 may not fill the port", small,
         [](relay_state& st) {
             st.listener_add(1, spec(a4, 0, true));
             st.listener_add(1, spec(b4, 0, false));
         },
         1, a4, 1, error_code::capacity, "tier 1 may use 40 % of it"},
        {"the reserve of tier 0, IPv6", small,
         [](relay_state& st) {
             st.listener_add(1, spec(a6, 0, true));
             st.listener_add(1, spec(b4, 0, false));
         },
         1, a6, 3, error_code::capacity, "tier 3 may use 40 % of it"},
        {"the session's join rate, spent by the join", slow, one, 1, a4, 1, error_code::rate_limited,
         "join rate over the session's limit"},
    };
    for (const auto& rw : rows) {
        SCOPED_TRACE(rw.what);
        relay r(rw.prof);
        rw.setup(*r.st);
        r.st->publish();
        const std::string model = r.model();
        const std::string lists = r.published();
        const auto refused = r.adm->report().refusals;
        try {
            r.st->listener_set_tier(rw.session, rw.who, rw.to);
            ADD_FAILURE() << "not refused";
        } catch (const action_error& e) {
            EXPECT_EQ(rw.code, e.code) << e.what();
            EXPECT_NE(std::string::npos, std::string(e.what()).find(rw.reason)) << e.what();
        }
        EXPECT_EQ(model, r.model());
        r.st->publish();
        EXPECT_EQ(lists, r.published());
        const auto count = [&rw](const std::map<std::string, uint64_t>& m) {
            const auto it = m.find(std::string(name_of(rw.code)));
            return it == m.end() ? uint64_t{0} : it->second;
        };
        EXPECT_EQ(count(refused) + 1, count(r.adm->report().refusals)) << "counted as a refused join is";
    }
}

// Its own load is set aside: a listener alone on the port moves to tier 1,
// which may fill 360 kbit/s: 287.2 kbit/s (its own), not twice that.
TEST(ListenerTier, a_move_is_judged_without_its_own_load) {
    auto small = tier_profile();
    small.ports[0].line_rate_mbps = 1;
    small.limits.tier0_reserve_pct = 60;
    relay r(small);
    r.st->listener_add(1, spec(a4, 0, true));
    const double used = r.adm->report().ports[0].used_bps;
    EXPECT_TRUE(r.st->listener_set_tier(1, a4, 1));
    EXPECT_DOUBLE_EQ(used, r.adm->report().ports[0].used_bps);
    EXPECT_THROW(r.st->listener_add(1, spec(b4, 1, false)), action_error) << "tier 1's share holds one, no more";
    EXPECT_NO_THROW(r.st->listener_add(1, spec(b4, 0, false))) << "tier 0 may fill the port";
    EXPECT_TRUE(r.st->listener_set_tier(1, a4, 0)) << "up again: tier 0 is never short of its own reserve";
}

}  // namespace
