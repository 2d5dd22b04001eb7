// Issue 11: listeners join by themselves. A table of STUN Binding Requests
// through the real data plane (EAL, a ring ethdev, the RX lcore's join stage)
// and the control plane's join desk: what each request must add, refresh,
// move or remove, what it must be answered (a response that verifies with
// the token's password, never larger than the request) and, for everything
// that fails the cheap checks or the MACs, that nothing at all is sent and
// the reason is counted.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>

#include "fixture.h"
#include "join_desk.h"
#include "stentor/dp_shared.h"
#include "stentor/join_token.h"
#include "stentor/stun.h"

using namespace stentor;
using namespace stentor::test;
using clock_t_ = std::chrono::steady_clock;

namespace {

// An off-link listener routed through the pinned gateway MAC: its next hop is
// resolved from the start, so a join is answered in the same pass.
constexpr uint32_t nat_ip = 0xc6130064;   // 198.19.0.100
constexpr uint16_t nat_port = 50000;

const std::vector<uint8_t> secret_1(40, 0x11);
const std::vector<uint8_t> secret_9(40, 0x99);   // a key the relay does not hold

control::profile join_profile(const std::string& port) {
    auto p = api_profile(port);
    control::join_key k;
    k.id = 1;
    k.secret = secret_1;
    p.join.keys.push_back(k);
    p.join.mint_key_id = 1;
    p.limits.join_resolve_ms = 0;
    auto sc = speaker_session();
    p.sessions.push_back(sc);
    return p;
}

struct credentials {
    std::string token;
    std::string password;
};

credentials mint(uint32_t session, int64_t ttl_s = 600, const std::vector<uint8_t>& secret = secret_1,
                 uint8_t key_id = 1, uint8_t tier = 0, uint64_t nonce = 0) {
    static uint64_t next_nonce = 1000;
    join::token_key key(secret.data(), secret.size());
    join::token_fields f;
    f.key_id = key_id;
    f.session_id = session;
    f.tier = tier;
    f.expiry = static_cast<uint32_t>(std::time(nullptr) + ttl_s);
    f.nonce = nonce != 0 ? nonce : next_nonce++;
    credentials c;
    c.token = join::mint_token(key, f, c.password);
    return c;
}

bytes request(const credentials& c, bool leave = false, uint8_t txid_seed = 1) {
    uint8_t txid[stun::txid_len];
    for (size_t i = 0; i < sizeof txid; ++i) txid[i] = static_cast<uint8_t>(txid_seed + i);
    stun::request_options o;
    o.leave = leave;
    bytes msg(stun::max_request_len);
    const size_t n = stun::build_request(msg.data(), msg.size(), txid, c.token, c.password.data(), c.password.size(), o);
    EXPECT_GT(n, 0u);
    msg.resize(n);
    return msg;
}

bytes frame_from(const bytes& stun_msg, uint32_t ip = nat_ip, uint16_t port = nat_port, uint16_t dst_port = 40000) {
    frame_spec f;
    f.src_ip = ip;
    f.src_port = port;
    f.dst_port = dst_port;
    return udp_frame(f, stun_msg);
}

struct answer {
    uint16_t type = 0;
    uint16_t code = 0;
    std::string reason;
    uint32_t mapped_ip = 0;
    uint16_t mapped_port = 0;
    uint32_t retry_after_ms = 0;
};

struct join_env {
    ring_port port;
    std::unique_ptr<api_env> env;
    clock_t_::time_point now = clock_t_::now();

    join_env(std::function<void(control::profile&)> tweak = {}, unsigned handoff_ring = 4096)
        : port(fresh_ring_port("join")) {
        auto p = join_profile(port.name);
        if (tweak) tweak(p);
        control::relay_options ro;
        ro.launch = false;
        ro.join_handoff_ring_size = handoff_ring;
        control::control_options co;
        co.publisher = false;
        env = std::make_unique<api_env>(p, ro, co);
        env->r->poll();
        env->r->flush();
        drain(port);
    }
    control::relay& r() { return *env->r; }
    control::join_desk& desk() { return *env->cp->desk(); }

    // One exchange: the frame in, the RX lcore's verdict, the desk's
    // decision, the ARP owner's send. Returns every frame the relay sent.
    std::vector<bytes> send(const bytes& frame) {
        inject(port, frame);
        r().poll();
        desk().poll(now);
        r().poll();
        r().flush();
        return drain(port);
    }

    // The answer to `req` (sent as `frame`), verified as a client would.
    std::optional<answer> ask(const bytes& req, const bytes& frame, const credentials& c) {
        auto out = send(frame);
        // The relay's own ARP requests (a next hop being resolved) are not answers.
        std::erase_if(out, [](const bytes& f) { return f.size() >= 14 && be16(f.data() + 12) == 0x0806; });
        if (out.empty()) return std::nullopt;
        EXPECT_EQ(1u, out.size());
        const bytes& f = out[0];
        EXPECT_LE(f.size(), frame.size()) << "a response larger than its request";
        // Addressed back to where the request came from, from the session port.
        EXPECT_EQ(be32(frame.data() + 26), be32(f.data() + 30));
        EXPECT_EQ(be16(frame.data() + 34), be16(f.data() + 36));
        EXPECT_EQ(be16(frame.data() + 36), be16(f.data() + 34));
        EXPECT_EQ(0, std::memcmp(f.data(), frame.data() + 6, 6)) << "sent back to the requester's MAC";
        EXPECT_EQ(0, ip_checksum(f.data() + 14, 20)) << "IPv4 checksum";
        EXPECT_EQ(f.size() - 34, be16(f.data() + 38)) << "UDP length";
        const uint8_t* msg = f.data() + 42;
        const size_t n = f.size() - 42;
        stun::response_view v;
        EXPECT_EQ(stun::stun_error::ok, stun::parse_response(msg, n, v));
        EXPECT_TRUE(stun::check_integrity(msg, v.integrity_offset, c.password.data(), c.password.size()))
            << "response not signed with the token's password";
        EXPECT_EQ(0, std::memcmp(v.txid, req.data() + 8, stun::txid_len)) << "transaction id";
        answer a;
        a.type = v.type;
        a.code = v.error_code;
        a.reason = std::string(v.reason_phrase());
        a.mapped_ip = v.mapped_ipv4;
        a.mapped_port = v.mapped_port;
        a.retry_after_ms = v.retry_after_ms;
        return a;
    }
    std::optional<answer> ask(const credentials& c, uint32_t ip = nat_ip, uint16_t p = nat_port, bool leave = false,
                              uint8_t txid_seed = 1) {
        const bytes req = request(c, leave, txid_seed);
        return ask(req, frame_from(req, ip, p), c);
    }

    uint64_t listeners(uint32_t session = 1) {
        const auto s = r().state().session(session);
        return s ? s->nb_listeners : 0;
    }
    bool has_listener(uint32_t ip, uint16_t p, uint32_t session = 1) {
        for (const auto& l : r().state().listeners(session, 0, 1000))
            if (l.ip == ip && l.port == p) return true;
        return false;
    }
    control::join_stats stats() { return desk().stats(); }
};

}  // namespace

TEST(join, a_token_joins_at_the_address_it_was_seen_from_and_refreshes) {
    join_env e;
    const auto c = mint(1);
    const auto a = e.ask(c);
    ASSERT_TRUE(a.has_value()) << "no answer to a valid join";
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_EQ(nat_ip, a->mapped_ip) << "XOR-MAPPED-ADDRESS is the source as seen";
    EXPECT_EQ(nat_port, a->mapped_port);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port));
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, counter(e.r(), "join_verified"));
    EXPECT_EQ(1u, e.stats().joined);

    // The same request again (a replay, or the next consent check): refresh.
    const auto b = e.ask(c);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(stun::binding_success, b->type);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, e.stats().refreshed);
    EXPECT_EQ(1u, e.desk().bindings());
}

TEST(join, refused_requests_add_nobody_send_nothing_and_count_their_reason) {
    join_env e;
    const auto good = mint(1);
    auto forged = good;
    forged.token[40] = forged.token[40] == 'A' ? 'B' : 'A';   // inside the tag
    auto wrong_password = good;
    wrong_password.password[0] = wrong_password.password[0] == 'A' ? 'B' : 'A';
    const auto expired = mint(1, -5);
    const auto other_session = mint(2);
    const auto unknown_key = mint(1, 600, secret_9, 9);
    bytes truncated = request(good);
    truncated.resize(truncated.size() - 8);   // FINGERPRINT cut off
    bytes plain(20, 0);                        // a bare Binding Request, as turnutils_stunclient sends
    plain[1] = 1;
    plain[4] = 0x21;
    plain[5] = 0x12;
    plain[6] = 0xa4;
    plain[7] = 0x42;
    plain[8] = 7;

    const struct {
        const char* what;
        bytes frame;
        const char* counter;
    } rows[] = {
        {"forged token (tag changed)", frame_from(request(forged)), "drop/join/forged"},
        {"signed with the wrong password", frame_from(request(wrong_password)), "drop/join/bad_integrity"},
        {"expired token", frame_from(request(expired)), "drop/join/expired"},
        {"token of another session", frame_from(request(other_session)), "drop/join/wrong_session"},
        {"key id the relay does not hold", frame_from(request(unknown_key)), "drop/join/unknown_key"},
        {"truncated request (header length says more)", frame_from(truncated), "drop/join/bad_length"},
        {"unauthenticated Binding Request", frame_from(plain), "drop/join/no_username"},
        {"valid token to a port without a session", frame_from(request(good), nat_ip, nat_port, 40001),
         "drop/join/no_session"},
    };
    for (const auto& row : rows) {
        const uint64_t before = counter(e.r(), row.counter);
        const auto out = e.send(row.frame);
        EXPECT_TRUE(out.empty()) << row.what << ": " << out.size() << " frames sent";
        EXPECT_EQ(before + 1, counter(e.r(), row.counter)) << row.what;
        EXPECT_EQ(0u, e.listeners()) << row.what;
    }
    EXPECT_EQ(0u, counter(e.r(), "join_verified"));
    EXPECT_EQ(0u, e.stats().requests);
}

TEST(join, one_token_one_address_a_captured_request_cannot_add_another) {
    join_env e;
    const auto c = mint(1);
    const bytes req = request(c);
    ASSERT_TRUE(e.ask(req, frame_from(req), c).has_value());
    // The captured request replayed from another address while the first
    // keeps refreshing: refused, counted, nobody added.
    const auto a = e.ask(req, frame_from(req, nat_ip + 1, 4444), c);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(409, a->code);
    EXPECT_EQ(1u, e.stats().refused_in_use);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_FALSE(e.has_listener(nat_ip + 1, 4444));
}

TEST(join, a_nat_rebinding_moves_the_listener_once_the_old_mapping_is_silent) {
    join_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask(c).has_value());
    e.now += std::chrono::seconds(11);   // past rebind_after_s (10), before consent_timeout_s (30)
    const auto a = e.ask(c, nat_ip, nat_port + 1);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_EQ(nat_port + 1, a->mapped_port);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port + 1));
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port));
    EXPECT_EQ(1u, e.stats().rebound);
}

TEST(join, a_silent_listener_is_removed_after_the_consent_timeout_and_a_leave_at_once) {
    join_env e;
    const auto quiet = mint(1);
    const auto leaver = mint(1);
    ASSERT_TRUE(e.ask(quiet).has_value());
    ASSERT_TRUE(e.ask(leaver, nat_ip, nat_port + 7).has_value());
    EXPECT_EQ(2u, e.listeners());

    const auto l = e.ask(leaver, nat_ip, nat_port + 7, true, 9);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(1u, e.stats().left);
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port + 7));

    // A leave for a token that is not joined there says so.
    const auto again = e.ask(leaver, nat_ip, nat_port + 7, true, 10);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(404, again->code);

    e.now += std::chrono::seconds(29);
    e.desk().poll(e.now);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << "removed before consent_timeout_s";
    e.now += std::chrono::seconds(2);
    e.desk().poll(e.now);
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port)) << "still listening after consent_timeout_s";
    EXPECT_EQ(1u, e.stats().consent_expired);
    EXPECT_EQ(0u, e.desk().bindings());
}

TEST(join, admission_refusals_are_answered_with_a_stun_error_and_change_nothing) {
    join_env e([](control::profile& p) {
        p.sessions[0].max_listeners = 1;
        p.limits.session_join_rate_per_s = 1;
    });
    ASSERT_TRUE(e.ask(mint(1)).has_value());
    const auto full = e.ask(mint(1), nat_ip, nat_port + 1);
    ASSERT_TRUE(full.has_value());
    EXPECT_EQ(486, full->code) << full->reason;
    EXPECT_EQ(1u, e.stats().refused_session_full);
    EXPECT_EQ(1u, e.listeners());
}

TEST(join, a_listener_renews_its_token_from_the_same_address) {
    join_env e;
    const auto first = mint(1);
    const auto second = mint(1);
    ASSERT_TRUE(e.ask(first).has_value());
    const auto a = e.ask(second);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_EQ(1u, e.stats().renewed);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, e.desk().bindings());
}

TEST(join, in_token_mode_the_api_adds_no_listener_and_a_token_still_joins) {
    join_env e([](control::profile& p) { p.join.static_listeners = false; });
    const auto one = e.env->call("POST", "/api/v1/sessions/1/listeners", R"({"ip":"198.19.0.7","port":7000})");
    EXPECT_EQ(403, one.status) << one.text;
    EXPECT_EQ("token_only", one.body.value("error", ""));
    const auto bulk = e.env->call("POST", "/api/v1/sessions/1/listeners/bulk",
                                  R"({"listeners":[{"ip":"198.19.0.7","port":7000}]})");
    EXPECT_EQ(403, bulk.status) << bulk.text;
    EXPECT_EQ(0u, e.listeners());
    ASSERT_TRUE(e.ask(mint(1)).has_value());
    EXPECT_EQ(1u, e.listeners());
}

TEST(join, in_token_mode_restored_listeners_come_under_consent) {
    // A relay whose table already holds listeners when its control plane
    // starts (as after a journal restore): in token mode each must refresh
    // within consent_timeout_s or go.
    join_env e([](control::profile& p) { p.join.static_listeners = false; });
    e.r().state().listener_add(1, nat_ip, 9000, 0);   // as the journal would restore it
    e.r().state().listener_add(1, nat_ip, 9001, 0);
    EXPECT_EQ(2u, e.desk().adopt_existing(e.now, true));
    // One of them refreshes with its token: it binds and stays.
    ASSERT_TRUE(e.ask(mint(1), nat_ip, 9001).has_value());
    EXPECT_EQ(1u, e.stats().renewed);
    e.now += std::chrono::seconds(20);
    ASSERT_TRUE(e.ask(mint(1), nat_ip, 9001).has_value());   // a new token from the same address: still one
    e.now += std::chrono::seconds(11);
    e.desk().poll(e.now);
    EXPECT_FALSE(e.has_listener(nat_ip, 9000)) << "a restored listener that never asked again still listens";
    EXPECT_TRUE(e.has_listener(nat_ip, 9001));
    EXPECT_EQ(1u, e.stats().consent_expired);
}

TEST(join, a_next_hop_that_never_answers_holds_up_only_its_own_answer) {
    join_env e([](control::profile& p) { p.limits.join_resolve_ms = 200; });
    constexpr uint32_t mute = 0xc612004d;   // 198.18.0.77: on-link, never answers ARP
    const auto quiet = mint(1);
    EXPECT_FALSE(e.ask(quiet, mute, 7000).has_value()) << "answered before its next hop resolved or the deadline";
    // Another listener meanwhile (through the pinned gateway): answered at once.
    const auto other = e.ask(mint(1));
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(stun::binding_success, other->type);
    // At the deadline the first is answered too, and counted.
    e.now += std::chrono::milliseconds(250);
    e.desk().poll(e.now);
    e.r().poll();
    e.r().flush();
    size_t answers = 0;
    for (const auto& f : drain(e.port))
        if (be16(f.data() + 12) == 0x0800 && be32(f.data() + 30) == mute) ++answers;
    EXPECT_EQ(1u, answers);
    EXPECT_EQ(1u, e.stats().unresolved);
    EXPECT_EQ(2u, e.listeners());
}

TEST(join, in_token_static_mode_only_restored_token_listeners_come_under_consent) {
    // What the journal restores says which listeners joined by token: those
    // come under consent at start, the operator's stay.
    join_env e;
    e.r().state().listener_add(1, nat_ip, 9000, 0, true);    // joined by token before the restart
    e.r().state().listener_add(1, nat_ip, 9001, 0, false);   // the operator's
    EXPECT_EQ(1u, e.desk().adopt_existing(e.now, false));
    e.now += std::chrono::seconds(31);
    e.desk().poll(e.now);
    EXPECT_FALSE(e.has_listener(nat_ip, 9000)) << "a restored token listener that never asked again still listens";
    EXPECT_TRUE(e.has_listener(nat_ip, 9001)) << "an operator's listener was put under consent";
    EXPECT_EQ(1u, e.stats().consent_expired);
}

// dataplane.join_lcores: the RX lcore runs the cheap checks and its budget
// and hands the request to the join lcore, which runs the MACs and hands it
// to the desk. The workers are stepped in lcore order (RX lcore 1, then join
// lcore 2), so one pass carries a request from the wire to the desk.
control::profile& with_join_lcore(control::profile& p) {
    p.eal.lcores = {0, 1, 2};
    p.dataplane.join_lcores = {2};
    return p;
}

TEST(join, a_dedicated_join_lcore_verifies_and_the_token_joins) {
    join_env e([](control::profile& p) { with_join_lcore(p); });
    const auto c = mint(1);
    const auto a = e.ask(c);
    ASSERT_TRUE(a.has_value()) << "no answer through the join lcore";
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port));
    EXPECT_EQ(1u, e.stats().joined);
    // Who did what: the RX lcore handed over, the join lcore verified.
    const auto per = e.r().per_lcore();
    ASSERT_EQ(2u, per.size());
    EXPECT_EQ((std::vector<unsigned>{1, 2}), e.r().worker_lcores());
    EXPECT_EQ(1u, per[0].join_handoffs);
    EXPECT_EQ(0u, per[0].join_verified);
    EXPECT_EQ(0u, per[1].join_handoffs);
    EXPECT_EQ(1u, per[1].join_verified);
    EXPECT_EQ(0u, per[1].rx_packets) << "a join lcore polls no RX queue";

    // Refusals are counted where they happen: the cheap ones on the RX lcore
    // (never handed over), the MACs on the join lcore; nothing is sent.
    auto forged = mint(1);
    forged.token[40] = forged.token[40] == 'A' ? 'B' : 'A';
    EXPECT_TRUE(e.send(frame_from(request(forged), nat_ip, nat_port + 1)).empty());
    EXPECT_TRUE(e.send(frame_from(request(mint(1, -5)), nat_ip, nat_port + 2)).empty());
    const auto after = e.r().per_lcore();
    EXPECT_EQ(1u, after[1].drop(dp::drop_reason::join_forged));
    EXPECT_EQ(1u, after[0].drop(dp::drop_reason::join_expired));
    EXPECT_EQ(2u, after[0].join_handoffs) << "the expired token was not handed over";
    EXPECT_EQ(1u, e.listeners());

    // Consent and leave go the same way.
    const auto l = e.ask(c, nat_ip, nat_port, true, 5);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(0u, e.listeners());
}

TEST(join, a_full_hand_off_ring_drops_and_counts_what_it_cannot_take) {
    // A 4-slot ring holds 3: ten requests in one RX burst, 3 handed over, 7
    // dropped as join/handoff_full before any MAC; the 3 join.
    join_env e([](control::profile& p) { with_join_lcore(p); }, 4);
    for (uint16_t i = 0; i < 10; ++i) inject(e.port, frame_from(request(mint(1)), nat_ip, static_cast<uint16_t>(nat_port + i)));
    e.r().poll();
    e.desk().poll(e.now);
    e.r().poll();
    e.r().flush();
    size_t answers = 0;
    for (const auto& f : drain(e.port))
        if (be16(f.data() + 12) == 0x0800) ++answers;
    EXPECT_EQ(3u, answers);
    EXPECT_EQ(3u, counter(e.r(), "join_handoffs"));
    EXPECT_EQ(7u, counter(e.r(), "drop/join/handoff_full"));
    EXPECT_EQ(3u, counter(e.r(), "join_verified"));
    EXPECT_EQ(3u, e.listeners());
}

// SIGHUP key rotation (docs/join.md "Keys and rotation"): tokens minted by
// the API under key 1; a reload adds key 2 and mints with it, and tokens of
// both join; a reload that drops key 1 refuses its tokens (counted, nothing
// sent) while key 2's go on refreshing.
TEST(join, keys_rotate_on_reload_a_kept_key_goes_on_a_removed_one_is_refused) {
    join_env e;
    auto mint_api = [&e](uint8_t want_key) {
        const auto res = e.env->call("POST", "/api/v1/sessions/1/tokens", R"({"count":1})");
        EXPECT_EQ(201, res.status) << res.text;
        EXPECT_EQ(want_key, res.body.value("key_id", 0));
        credentials c;
        c.token = res.body["tokens"][0].value("token", "");
        c.password = res.body["tokens"][0].value("password", "");
        return c;
    };
    const auto a = mint_api(1);
    ASSERT_TRUE(e.ask(a).has_value());

    const std::vector<uint8_t> secret_2(32, 0x22);
    auto next = e.env->prof;
    control::join_key k2;
    k2.id = 2;
    k2.secret = secret_2;
    next.join.keys.push_back(k2);
    next.join.mint_key_id = 2;
    auto res = e.env->cp->reload(next, {"join.keys[1].id", "join.keys[1].secret_file", "join.mint_key_id"});
    ASSERT_TRUE(res.refused.empty()) << res.refused[0];
    const auto b = mint_api(2);
    const auto b_joined = e.ask(b, nat_ip, nat_port + 1);
    ASSERT_TRUE(b_joined.has_value());
    EXPECT_EQ(stun::binding_success, b_joined->type);
    const auto a_again = e.ask(a, nat_ip, nat_port, false, 2);
    ASSERT_TRUE(a_again.has_value()) << "key 1 is still held: its token refreshes";
    EXPECT_EQ(stun::binding_success, a_again->type);
    EXPECT_EQ(2u, e.listeners());

    auto only_b = next;
    only_b.join.keys = {k2};
    res = e.env->cp->reload(only_b, {"join.keys[0].id", "join.keys[0].secret_file", "join.keys[1].id",
                                     "join.keys[1].secret_file"});
    ASSERT_TRUE(res.refused.empty()) << res.refused[0];
    ASSERT_EQ(2u, res.notes.size());
    EXPECT_NE(std::string::npos, res.notes[1].find("tokens of key 1 are refused")) << res.notes[1];
    const uint64_t unknown = counter(e.r(), "drop/join/unknown_key");
    EXPECT_TRUE(e.send(frame_from(request(a, false, 3))).empty()) << "an answer to a token of a removed key";
    EXPECT_EQ(unknown + 1, counter(e.r(), "drop/join/unknown_key"));
    const auto b_again = e.ask(b, nat_ip, nat_port + 1, false, 4);
    ASSERT_TRUE(b_again.has_value()) << "key 2's token stopped working";
    EXPECT_EQ(stun::binding_success, b_again->type);
    EXPECT_EQ(2u, e.stats().refreshed);
    EXPECT_FALSE(mint_api(2).token.empty()) << "minting goes on with key 2";
}

// A burst of requests is verified together (join_verify_burst): token MACs
// one by one, MESSAGE-INTEGRITY of the survivors in ipsec-mb's lanes where
// the CPU has AVX2/AVX-512 (whole groups of 8 or 16, the rest one by one).
// 36 requests in one go (an RX burst of 32, then 4), every fourth signed
// with a wrong password: exactly those are refused, the rest join, whichever
// lane each one fell into.
TEST(join, a_burst_is_verified_together_and_each_request_judged_on_its_own) {
    join_env e;
    std::vector<bool> good;
    for (uint16_t i = 0; i < 36; ++i) {
        auto c = mint(1);
        if (i % 4 == 3) c.password[5] = c.password[5] == 'A' ? 'B' : 'A';
        good.push_back(i % 4 != 3);
        inject(e.port, frame_from(request(c), nat_ip, static_cast<uint16_t>(nat_port + i)));
    }
    e.r().poll();
    e.r().poll();
    e.desk().poll(e.now);
    e.r().poll();
    e.r().flush();
    size_t answers = 0;
    for (const auto& f : drain(e.port))
        if (be16(f.data() + 12) == 0x0800) ++answers;
    EXPECT_EQ(27u, answers);
    EXPECT_EQ(27u, counter(e.r(), "join_verified"));
    EXPECT_EQ(9u, counter(e.r(), "drop/join/bad_integrity"));
    EXPECT_EQ(27u, e.listeners());
    for (uint16_t i = 0; i < 36; ++i)
        EXPECT_EQ(static_cast<bool>(good[i]), e.has_listener(nat_ip, static_cast<uint16_t>(nat_port + i))) << i;
}
