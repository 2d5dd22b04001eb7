// Issue 11: listeners join by themselves (and, issue 15, over IPv6: the
// tests at the end). A table of STUN Binding Requests
// through the real data plane (EAL, a ring ethdev, the RX lcore's join stage)
// and the control plane's join desk: what each request must add, refresh,
// move or remove, what it must be answered (a response that verifies with
// the token's password, never larger than the request) and, for everything
// that fails the cheap checks or the MACs, that nothing at all is sent and
// the reason is counted.
#include <atomic>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <ctime>
#include <optional>
#include <string>
#include <thread>

#include "../integration/frames6.h"
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

using cookie_t = std::array<uint8_t, stun::cookie_len>;

bytes request(const credentials& c, bool leave = false, uint8_t txid_seed = 1, const uint8_t* cookie = nullptr) {
    uint8_t txid[stun::txid_len];
    for (size_t i = 0; i < sizeof txid; ++i) txid[i] = static_cast<uint8_t>(txid_seed + i);
    stun::request_options o;
    o.leave = leave;
    o.cookie = cookie;
    bytes msg(stun::max_request_len);
    const size_t n = stun::build_request(msg.data(), msg.size(), txid, c.token, c.password.data(), c.password.size(), o);
    EXPECT_GT(n, 0u);
    msg.resize(n);
    return msg;
}

// The token with a character of its tag changed: a forgery.
credentials forged(credentials c) {
    c.token[40] = c.token[40] == 'A' ? 'B' : 'A';
    return c;
}
credentials wrong_password(credentials c) {
    c.password[0] = c.password[0] == 'A' ? 'B' : 'A';
    return c;
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
    bool mapped = false;   // over IPv6: XOR-MAPPED-ADDRESS is the source as seen
    std::optional<cookie_t> cookie;   // STENTOR-COOKIE
};

// The STENTOR-COOKIE of an answer frame of either family, if it has one.
std::optional<cookie_t> cookie_in(const bytes& f) {
    const size_t off = f.size() >= 14 && be16(f.data() + 12) == 0x86dd ? 62 : 42;
    if (f.size() <= off) return std::nullopt;
    stun::response_view v;
    if (stun::parse_response(f.data() + off, f.size() - off, v) != stun::stun_error::ok || !v.has_cookie)
        return std::nullopt;
    cookie_t c;
    std::memcpy(c.data(), v.cookie, c.size());
    return c;
}

// The STUN message of an answer to `req`, checked as a client would: it
// parses, is signed with the token's password and echoes the transaction id.
answer read_answer(const uint8_t* msg, size_t n, const bytes& req, const credentials& c, stun::response_view& v) {
    EXPECT_EQ(stun::stun_error::ok, stun::parse_response(msg, n, v));
    EXPECT_TRUE(stun::check_integrity(msg, v.integrity_offset, c.password.data(), c.password.size()))
        << "response not signed with the token's password";
    EXPECT_EQ(0, std::memcmp(v.txid, req.data() + 8, stun::txid_len)) << "transaction id";
    answer a;
    a.type = v.type;
    a.code = v.error_code;
    a.reason = std::string(v.reason_phrase());
    a.retry_after_ms = v.retry_after_ms;
    EXPECT_TRUE(v.has_cookie) << "every answer carries a cookie for its address";
    if (v.has_cookie) {
        cookie_t c;
        std::memcpy(c.data(), v.cookie, c.size());
        a.cookie = c;
    }
    return a;
}

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

    // What a client keeps (stentor-listener does the same): the last
    // STENTOR-COOKIE the relay sent to each source address and port. The
    // ask() that takes credentials echoes it, and asks once more with the
    // new one when the answer is 438 (no valid cookie); the ask() that takes
    // a built request sends it as it is.
    std::map<std::string, cookie_t> jar;
    static std::string source(const uint8_t* addr, size_t len, uint16_t port) {
        std::string k(reinterpret_cast<const char*>(addr), len);
        k.push_back(static_cast<char>(port >> 8));
        k.push_back(static_cast<char>(port));
        return k;
    }
    static std::string source4(uint32_t ip, uint16_t port) {
        const uint8_t a[4] = {static_cast<uint8_t>(ip >> 24), static_cast<uint8_t>(ip >> 16), static_cast<uint8_t>(ip >> 8),
                              static_cast<uint8_t>(ip)};
        return source(a, 4, port);
    }
    const uint8_t* cookie_for(const std::string& src) const {
        const auto it = jar.find(src);
        return it == jar.end() ? nullptr : it->second.data();
    }
    void keep(const std::string& src, const std::optional<answer>& a) {
        if (a && a->cookie) jar[src] = *a->cookie;
    }

    // One exchange: the frame in, the RX lcore's verdict, the desk's
    // decision, the ARP owner's send. Returns every frame the relay sent.
    std::vector<bytes> send(const bytes& frame) {
        inject(port, frame);
        step();
        return drain(port);
    }
    // What comes in is verified, decided and answered: RX lcore, desk, RX
    // lcore (the ARP owner's send), TX flushed.
    void step() {
        r().poll();
        desk().poll(now);
        r().poll();
        r().flush();
    }

    // The one frame sent back for `frame` but for the relay's own neighbour
    // resolution (a next hop being resolved: ARP requests, and with `ns_too`
    // neighbour solicitations), checked for what any answer must be: no
    // larger than its request, back to the requester's MAC.
    std::optional<bytes> answer_frame(const bytes& frame, bool ns_too) {
        auto out = send(frame);
        std::erase_if(out, [ns_too](const bytes& f) {
            return (ns_too && frames6::is_ns_from_relay(f)) || (f.size() >= 14 && be16(f.data() + 12) == 0x0806);
        });
        if (out.empty()) return std::nullopt;
        EXPECT_EQ(1u, out.size());
        const bytes& f = out[0];
        EXPECT_LE(f.size(), frame.size()) << "a response larger than its request";
        EXPECT_EQ(0, std::memcmp(f.data(), frame.data() + 6, 6)) << "sent back to the requester's MAC";
        return f;
    }

    // The answer to `req` (sent as `frame`), verified as a client would.
    std::optional<answer> ask(const bytes& req, const bytes& frame, const credentials& c) {
        const auto got = answer_frame(frame, false);
        if (!got) return std::nullopt;
        const bytes& f = *got;
        // Addressed back to where the request came from, from the session port.
        EXPECT_EQ(be32(frame.data() + 26), be32(f.data() + 30));
        EXPECT_EQ(be16(frame.data() + 34), be16(f.data() + 36));
        EXPECT_EQ(be16(frame.data() + 36), be16(f.data() + 34));
        EXPECT_EQ(0, ip_checksum(f.data() + 14, 20)) << "IPv4 checksum";
        EXPECT_EQ(f.size() - 34, be16(f.data() + 38)) << "UDP length";
        stun::response_view v;
        answer a = read_answer(f.data() + 42, f.size() - 42, req, c, v);
        a.mapped_ip = v.mapped_ipv4;
        a.mapped_port = v.mapped_port;
        keep(source(frame.data() + 26, 4, be16(frame.data() + 34)), a);
        return a;
    }
    std::optional<answer> ask(const credentials& c, uint32_t ip = nat_ip, uint16_t p = nat_port, bool leave = false,
                              uint8_t txid_seed = 1) {
        for (int round = 0;; ++round) {
            const bytes req = request(c, leave, txid_seed, cookie_for(source4(ip, p)));
            const auto a = ask(req, frame_from(req, ip, p), c);
            if (round == 1 || !a || a->code != 438) return a;
        }
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
    // The listener at ip:port as relay_state holds it (tier, join order).
    std::optional<control::listener_view> listener_at(uint32_t ip, uint16_t p, uint32_t session = 1) {
        for (const auto& l : r().state().listeners(session, 0, 1000))
            if (l.ip == ip && l.port == p) return l;
        return std::nullopt;
    }
};

struct refusal {
    const char* what;
    bytes frame;
    const char* counter;
};

// The requests either family refuses for the same reason (the token, its
// MACs, the message, the port), each put in a frame by frame(stun message,
// destination port).
template <class Frame>
std::vector<refusal> token_refusals(const credentials& good, Frame frame) {
    bytes truncated = request(good);
    truncated.resize(truncated.size() - 8);   // FINGERPRINT cut off
    return {
        {"forged token (tag changed)", frame(request(forged(good)), 40000), "drop/join/forged"},
        {"signed with the wrong password", frame(request(wrong_password(good)), 40000), "drop/join/bad_integrity"},
        {"expired token", frame(request(mint(1, -5)), 40000), "drop/join/expired"},
        {"token of another session", frame(request(mint(2)), 40000), "drop/join/wrong_session"},
        {"key id the relay does not hold", frame(request(mint(1, 600, secret_9, 9)), 40000), "drop/join/unknown_key"},
        {"truncated request (header length says more)", frame(truncated, 40000), "drop/join/bad_length"},
        {"valid token to a port without a session", frame(request(good), 40001), "drop/join/no_session"},
    };
}

// Each row: nothing sent, its counter +1, nobody added. `between`: a pause
// after each row (to let a verification budget refill).
void expect_refused(join_env& e, const std::vector<refusal>& rows, std::chrono::milliseconds between = {}) {
    for (const auto& row : rows) {
        const uint64_t before = counter(e.r(), row.counter);
        const auto out = e.send(row.frame);
        EXPECT_TRUE(out.empty()) << row.what << ": " << out.size() << " frames sent";
        EXPECT_EQ(before + 1, counter(e.r(), row.counter)) << row.what;
        EXPECT_EQ(0u, e.listeners()) << row.what;
        if (between.count() > 0) std::this_thread::sleep_for(between);
    }
}

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
    EXPECT_EQ(2u, counter(e.r(), "join_verified")) << "the first request, then the one with the cookie";
    EXPECT_EQ(1u, e.stats().challenged);
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
    bytes plain(20, 0);   // a bare Binding Request, as turnutils_stunclient sends
    plain[1] = 1;
    plain[4] = 0x21;
    plain[5] = 0x12;
    plain[6] = 0xa4;
    plain[7] = 0x42;
    plain[8] = 7;
    auto rows = token_refusals(mint(1), [](const bytes& m, uint16_t dport) { return frame_from(m, nat_ip, nat_port, dport); });
    rows.push_back({"unauthenticated Binding Request", frame_from(plain), "drop/join/no_username"});
    // Valid tokens from sources nobody listens at: nothing to answer.
    rows.push_back({"valid token from UDP source port 0", frame_from(request(mint(1)), nat_ip, 0), "drop/join/src"});
    rows.push_back({"valid token from link-local 169.254.1.1", frame_from(request(mint(1)), 0xa9fe0101, nat_port),
                    "drop/join/src"});
    expect_refused(e, rows);
    EXPECT_EQ(0u, counter(e.r(), "join_verified"));
    EXPECT_EQ(0u, e.stats().requests);
}

TEST(join, one_token_one_address_a_captured_request_cannot_add_another) {
    join_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask(c).has_value());
    const bytes req = request(c, false, 1, e.cookie_for(join_env::source4(nat_ip, nat_port)));
    // The captured request (its cookie made for the first address) replayed
    // from another address: not that address's cookie, so challenged.
    const auto a = e.ask(req, frame_from(req, nat_ip + 1, 4444), c);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(438, a->code);
    // And a client really there, echoing its own cookie, while the first
    // keeps refreshing: refused, counted, nobody added.
    const auto b = e.ask(c, nat_ip + 1, 4444);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(409, b->code);
    EXPECT_EQ(1u, e.stats().refused_in_use);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_FALSE(e.has_listener(nat_ip + 1, 4444));
}

// Return routability (docs/join.md "The cookie"): a token holder who forges
// its source address, to aim the stream at someone else, gets nowhere. Its
// request from the victim's address is answered, at that address, with a
// 438 no larger than the request and a cookie it never sees; the cookie of
// its own address does not open another; nobody is added. A leave needs no
// cookie (it only removes, and only from the token's own address).
TEST(join, a_forged_source_address_adds_nobody_and_its_cookie_goes_to_that_address) {
    join_env e;
    const auto c = mint(1);
    const uint32_t victim = nat_ip + 9;
    const auto forged_src = e.ask(request(c), frame_from(request(c), victim, 5004), c);
    ASSERT_TRUE(forged_src.has_value());
    EXPECT_EQ(stun::binding_error, forged_src->type);
    EXPECT_EQ(438, forged_src->code) << forged_src->reason;
    ASSERT_TRUE(forged_src->cookie.has_value());
    EXPECT_EQ(0u, e.listeners()) << "a join without a cookie added a listener";
    EXPECT_EQ(1u, e.stats().challenged);
    EXPECT_EQ(0u, e.stats().joined);

    // Its own address (where it does receive): joined with that cookie.
    ASSERT_TRUE(e.ask(c).has_value());
    const cookie_t own = e.jar.at(join_env::source4(nat_ip, nat_port));
    EXPECT_NE(*forged_src->cookie, own) << "one cookie for two addresses";
    // Its own cookie from the victim's address, a new token (one token,
    // one address aside), a cookie of another port, a cookie altered in one
    // bit: each challenged, nobody added.
    const auto other = mint(1);
    cookie_t flipped = own;
    flipped[15] ^= 1;
    struct row {
        const char* what;
        uint32_t ip;
        uint16_t port;
        const uint8_t* cookie;
    };
    const row rows[] = {
        {"its own address's cookie from the victim's address", victim, 5004, own.data()},
        {"its own address's cookie from another port of its own address", nat_ip, nat_port + 1, own.data()},
        {"a cookie with one bit changed", victim, 5004, flipped.data()},
    };
    for (const auto& r : rows) {
        const uint64_t before = e.stats().challenged;
        const bytes req = request(other, false, 3, r.cookie);
        const auto a = e.ask(req, frame_from(req, r.ip, r.port), other);
        ASSERT_TRUE(a.has_value()) << r.what;
        EXPECT_EQ(438, a->code) << r.what;
        EXPECT_EQ(before + 1, e.stats().challenged) << r.what;
        EXPECT_FALSE(e.has_listener(r.ip, r.port)) << r.what;
    }
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, e.stats().joined);

    // A leave without a cookie still removes (from the token's own address).
    const bytes leave = request(c, true, 4);
    const auto l = e.ask(leave, frame_from(leave), c);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(0u, e.listeners());
}

// A cookie is good for one to two consent timeouts (slots of
// consent_timeout_s, the current and the one before): a listener that
// refreshes within its timeout always holds a good one (every answer brings
// a fresh one), while a token holder who left an address, or recorded a
// request, cannot keep the stream there with what it saw: its old cookie is
// challenged and does not refresh consent, and the listener goes once its
// last real refresh is a consent timeout old.
TEST(join, an_old_cookie_is_challenged_and_refreshes_nothing) {
    join_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask(c).has_value());
    const cookie_t first = e.jar.at(join_env::source4(nat_ip, nat_port));
    for (int i = 0; i < 3; ++i) {   // refreshes 25 s apart, each with the last answer's cookie
        e.now += std::chrono::seconds(25);
        const auto a = e.ask(c, nat_ip, nat_port, false, static_cast<uint8_t>(2 + i));
        ASSERT_TRUE(a.has_value());
        EXPECT_EQ(stun::binding_success, a->type) << "refresh " << i;
    }
    EXPECT_EQ(3u, e.stats().refreshed);
    EXPECT_EQ(1u, e.stats().challenged) << "a client that refreshes in time is never challenged again";
    // 75 s after it was made, the first cookie is past its two slots.
    const bytes old = request(c, false, 9, first.data());
    const auto stale = e.ask(old, frame_from(old), c);
    ASSERT_TRUE(stale.has_value());
    EXPECT_EQ(438, stale->code);
    EXPECT_EQ(3u, e.stats().refreshed) << "an old cookie refreshed consent";
    // Replayed until the last real refresh is a consent timeout old: removed.
    e.now += std::chrono::seconds(20);
    e.desk().poll(e.now);
    (void)e.ask(old, frame_from(old), c);
    e.now += std::chrono::seconds(11);
    e.desk().poll(e.now);
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port)) << "a stale cookie kept the stream going";
    EXPECT_EQ(1u, e.stats().consent_expired);
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

// A renewal gives the listener its new token's tier (docs/join.md "Renewal
// and tier"): the tier decides who is shed first, and a renewal kept the
// old token's before. The same tier leaves the listener as it was (its
// place in the join order); another moves it there, as the newest of it,
// in one action (relay_state::listener_set_tier): the session counts
// neither a leave nor a join (the desk removed and added it before, and a
// publish could fall between the two).
TEST(join, a_renewal_takes_the_new_tokens_tier) {
    join_env e;
    struct row {
        const char* what;
        uint8_t from, to;
    };
    const row rows[] = {
        {"the same tier", 2, 2},
        {"a lower-priority tier", 0, 3},
        {"a higher-priority tier", 3, 0},
    };
    uint16_t port = nat_port;
    for (const auto& rw : rows) {
        port = static_cast<uint16_t>(port + 10);
        const auto first = mint(1, 600, secret_1, 1, rw.from);
        const auto second = mint(1, 600, secret_1, 1, rw.to);
        ASSERT_EQ(stun::binding_success, e.ask(first, nat_ip, port).value().type) << rw.what;
        const auto joined = e.listener_at(nat_ip, port);
        ASSERT_TRUE(joined.has_value()) << rw.what;
        EXPECT_EQ(rw.from, joined->tier) << rw.what;
        const control::join_stats before = e.stats();
        const uint64_t listeners = e.listeners();
        const size_t bindings = e.desk().bindings();
        const control::session_tally tally = e.r().state().session(1)->tally;

        const auto a = e.ask(second, nat_ip, port, false, 2);
        ASSERT_TRUE(a.has_value()) << rw.what;
        EXPECT_EQ(stun::binding_success, a->type) << rw.what << ": " << a->code << " " << a->reason;
        const control::session_tally moved = e.r().state().session(1)->tally;
        EXPECT_EQ(tally.joins, moved.joins) << rw.what << ": one move, not a leave and a join";
        EXPECT_EQ(tally.leaves, moved.leaves) << rw.what << ": one move, not a leave and a join";
        const auto renewed = e.listener_at(nat_ip, port);
        ASSERT_TRUE(renewed.has_value()) << rw.what;
        EXPECT_EQ(rw.to, renewed->tier) << rw.what << ": the listener kept a tier its token no longer grants";
        if (rw.from == rw.to)
            EXPECT_EQ(joined->seq, renewed->seq) << rw.what << ": the listener was touched";
        else
            EXPECT_GT(renewed->seq, joined->seq) << rw.what << ": the newest of its new tier";
        const control::join_stats after = e.stats();
        EXPECT_EQ(before.renewed + 1, after.renewed) << rw.what;
        EXPECT_EQ(before.joined, after.joined) << rw.what;
        EXPECT_EQ(before.refused_capacity + before.refused_rate_limited + before.refused_invalid +
                      before.refused_source_rate,
                  after.refused_capacity + after.refused_rate_limited + after.refused_invalid + after.refused_source_rate)
            << rw.what;
        EXPECT_EQ(listeners, e.listeners()) << rw.what;
        EXPECT_EQ(bindings, e.desk().bindings()) << rw.what;
        // The new token is the binding now: it refreshes.
        const auto r = e.ask(second, nat_ip, port, false, 3);
        ASSERT_TRUE(r.has_value()) << rw.what;
        EXPECT_EQ(stun::binding_success, r->type) << rw.what;
        EXPECT_EQ(after.refreshed + 1, e.stats().refreshed) << rw.what;
        EXPECT_EQ(rw.to, e.listener_at(nat_ip, port)->tier) << rw.what;
    }
    EXPECT_EQ(3u, e.stats().renewed);
    EXPECT_EQ(3u, e.stats().joined);
    const auto per_tier = e.r().state().session(1)->listeners_per_tier;
    EXPECT_EQ(1u, per_tier[0]);
    EXPECT_EQ(0u, per_tier[1]);
    EXPECT_EQ(1u, per_tier[2]);
    EXPECT_EQ(1u, per_tier[3]);
}

// A renewal whose new tier admission refuses is answered as a join at that
// tier would be, and nothing changes: the listener stays at its old tier
// under its old token, in its place in the join order (it was removed and
// put back before, as the newest of its tier).
// Tier 0 reserves 90 % of a 900 kbit/s port: one 287.2 kbit/s listener fits
// at tier 0, none at the tiers below it.
TEST(join, a_renewal_refused_at_its_new_tier_keeps_the_listener_at_its_old_one) {
    join_env e([](control::profile& p) {
        p.ports[0].line_rate_mbps = 1;
        p.limits.tier0_reserve_pct = 90;
    });
    struct row {
        const char* what;
        uint8_t to;
        uint16_t code;
        uint64_t control::join_stats::*counter;
    };
    const row rows[] = {
        {"tier 3: the relay is at capacity for it", 3, 503, &control::join_stats::refused_capacity},
        {"tier 9: a tier the relay refuses", 9, 400, &control::join_stats::refused_invalid},
    };
    uint16_t port = nat_port;
    for (const auto& rw : rows) {
        port = static_cast<uint16_t>(port + 10);
        const auto first = mint(1, 600, secret_1, 1, 0);
        ASSERT_EQ(stun::binding_success, e.ask(first, nat_ip, port).value().type) << rw.what;
        const control::join_stats before = e.stats();
        const uint64_t listeners = e.listeners();
        const size_t bindings = e.desk().bindings();
        const auto joined = e.listener_at(nat_ip, port);
        ASSERT_TRUE(joined.has_value()) << rw.what;
        const control::session_tally tally = e.r().state().session(1)->tally;

        const auto a = e.ask(mint(1, 600, secret_1, 1, rw.to), nat_ip, port, false, 2);
        ASSERT_TRUE(a.has_value()) << rw.what;
        EXPECT_EQ(stun::binding_error, a->type) << rw.what;
        EXPECT_EQ(rw.code, a->code) << rw.what << ": " << a->reason;
        const control::join_stats after = e.stats();
        EXPECT_EQ(before.*rw.counter + 1, after.*rw.counter) << rw.what;
        EXPECT_EQ(before.renewed, after.renewed) << rw.what;
        EXPECT_EQ(before.joined, after.joined) << rw.what;
        const auto l = e.listener_at(nat_ip, port);
        ASSERT_TRUE(l.has_value()) << rw.what << ": a refused renewal removed the listener";
        EXPECT_EQ(0u, l->tier) << rw.what;
        EXPECT_EQ(joined->seq, l->seq) << rw.what << ": its place in the join order changed";
        EXPECT_EQ(tally.joins, e.r().state().session(1)->tally.joins) << rw.what;
        EXPECT_EQ(tally.leaves, e.r().state().session(1)->tally.leaves) << rw.what;
        EXPECT_EQ(listeners, e.listeners()) << rw.what;
        EXPECT_EQ(bindings, e.desk().bindings()) << rw.what;
        // Still bound to its old token: that one refreshes.
        const auto r = e.ask(first, nat_ip, port, false, 3);
        ASSERT_TRUE(r.has_value()) << rw.what;
        EXPECT_EQ(stun::binding_success, r->type) << rw.what;
        EXPECT_EQ(after.refreshed + 1, e.stats().refreshed) << rw.what;
    }
    EXPECT_EQ(2u, e.r().state().session(1)->listeners_per_tier[0]);
}

// A move to another tier takes a token of the session's join bucket, as a
// join there would. Refused by the join rate (one a second, spent by the
// join), the renewal is answered 429 and nothing changes: the listener stays
// at its old tier in its place, bound to its old token, which refreshes.
// Once the bucket refills, the new token renews it at its tier. (Before the
// move was one action, the desk removed the listener, was refused its add at
// the new tier and again its add back at the old one, and the listener was
// gone with its binding.)
TEST(join, a_renewal_refused_by_the_join_rate_keeps_the_listener_at_its_old_tier) {
    join_env e([](control::profile& p) { p.limits.session_join_rate_per_s = 1; });
    const auto first = mint(1, 600, secret_1, 1, 0);
    ASSERT_EQ(stun::binding_success, e.ask(first).value().type);
    const auto joined = e.listener_at(nat_ip, nat_port);
    ASSERT_TRUE(joined.has_value());
    const auto second = mint(1, 600, secret_1, 1, 1);
    const auto a = e.ask(second, nat_ip, nat_port, false, 2);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(429, a->code) << a->reason;
    EXPECT_NE(std::string::npos, a->reason.find("rate limited, retry in")) << a->reason;
    EXPECT_EQ(1u, e.stats().refused_rate_limited);
    EXPECT_EQ(0u, e.stats().renewed);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, e.desk().bindings());
    const auto kept = e.listener_at(nat_ip, nat_port);
    ASSERT_TRUE(kept.has_value()) << "a refused renewal removed the listener";
    EXPECT_EQ(0u, kept->tier);
    EXPECT_EQ(joined->seq, kept->seq);
    const auto r = e.ask(first, nat_ip, nat_port, false, 3);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(stun::binding_success, r->type) << "still bound to its old token";
    EXPECT_EQ(1u, e.stats().refreshed);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));   // the session's bucket refills
    const auto b = e.ask(second, nat_ip, nat_port, false, 4);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(stun::binding_success, b->type) << b->code << " " << b->reason;
    EXPECT_EQ(1u, e.stats().renewed);
    EXPECT_EQ(1u, e.stats().joined);
    ASSERT_TRUE(e.listener_at(nat_ip, nat_port).has_value());
    EXPECT_EQ(1u, e.listener_at(nat_ip, nat_port)->tier);
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
    EXPECT_EQ(2u, per[0].join_handoffs);
    EXPECT_EQ(0u, per[0].join_verified);
    EXPECT_EQ(0u, per[1].join_handoffs);
    EXPECT_EQ(2u, per[1].join_verified);   // the first request (438), then with the cookie
    EXPECT_EQ(0u, per[1].rx_packets) << "a join lcore polls no RX queue";

    // Refusals are counted where they happen: the cheap ones on the RX lcore
    // (never handed over), the MACs on the join lcore; nothing is sent.
    EXPECT_TRUE(e.send(frame_from(request(forged(mint(1))), nat_ip, nat_port + 1)).empty());
    EXPECT_TRUE(e.send(frame_from(request(mint(1, -5)), nat_ip, nat_port + 2)).empty());
    const auto after = e.r().per_lcore();
    EXPECT_EQ(1u, after[1].drop(dp::drop_reason::join_forged));
    EXPECT_EQ(1u, after[0].drop(dp::drop_reason::join_expired));
    EXPECT_EQ(3u, after[0].join_handoffs) << "the expired token was not handed over";
    EXPECT_EQ(1u, e.listeners());

    // Consent and leave go the same way.
    const auto l = e.ask(c, nat_ip, nat_port, true, 5);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(0u, e.listeners());
}

TEST(join, a_full_hand_off_ring_drops_and_counts_what_it_cannot_take) {
    // A 4-slot ring holds 3: ten requests in one RX burst, 3 handed over, 7
    // dropped as join/handoff_full before any MAC; the 3 reach the desk
    // (first requests, without a cookie: answered 438).
    join_env e([](control::profile& p) { with_join_lcore(p); }, 4);
    for (uint16_t i = 0; i < 10; ++i) inject(e.port, frame_from(request(mint(1)), nat_ip, static_cast<uint16_t>(nat_port + i)));
    e.step();
    size_t answers = 0;
    for (const auto& f : drain(e.port))
        if (be16(f.data() + 12) == 0x0800) ++answers;
    EXPECT_EQ(3u, answers);
    EXPECT_EQ(3u, counter(e.r(), "join_handoffs"));
    EXPECT_EQ(7u, counter(e.r(), "drop/join/handoff_full"));
    EXPECT_EQ(3u, counter(e.r(), "join_verified"));
    EXPECT_EQ(3u, e.stats().challenged);
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
    std::vector<credentials> creds;
    for (uint16_t i = 0; i < 36; ++i) {
        auto c = mint(1);
        if (i % 4 == 3) c.password[5] = c.password[5] == 'A' ? 'B' : 'A';
        good.push_back(i % 4 != 3);
        creds.push_back(c);
    }
    // Twice: first requests (answered 438 with each address's cookie), then
    // the same with the cookies (joined).
    for (int round = 0; round < 2; ++round) {
        for (uint16_t i = 0; i < 36; ++i)
            inject(e.port, frame_from(request(creds[i], false, 1, e.cookie_for(join_env::source4(nat_ip, nat_port + i))),
                                      nat_ip, static_cast<uint16_t>(nat_port + i)));
        e.r().poll();
        e.step();
        size_t answers = 0;
        for (const auto& f : drain(e.port)) {
            if (be16(f.data() + 12) != 0x0800) continue;
            ++answers;
            if (const auto k = cookie_in(f)) e.jar[join_env::source4(nat_ip, be16(f.data() + 36))] = *k;
        }
        EXPECT_EQ(27u, answers) << "round " << round;
    }
    EXPECT_EQ(54u, counter(e.r(), "join_verified"));
    EXPECT_EQ(18u, counter(e.r(), "drop/join/bad_integrity"));
    EXPECT_EQ(27u, e.stats().challenged);
    EXPECT_EQ(27u, e.listeners());
    for (uint16_t i = 0; i < 36; ++i)
        EXPECT_EQ(static_cast<bool>(good[i]), e.has_listener(nat_ip, static_cast<uint16_t>(nat_port + i))) << i;
}

// A fleet relay draining (SIGTERM, docs/fleet.md "Failover"): a joined
// listener's next request is answered 300 and still refreshes its consent
// (it keeps the stream until it has joined elsewhere), a new token gets in
// nowhere, and a leave works as always.
TEST(join, a_draining_relay_tells_its_listeners_to_move_keeps_them_until_they_leave_and_admits_nobody) {
    join_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask(c).has_value());
    ASSERT_EQ(1u, e.listeners());
    e.desk().set_draining(true);

    const auto moved = e.ask(c, nat_ip, nat_port, false, 2);
    ASSERT_TRUE(moved.has_value());
    EXPECT_EQ(stun::binding_error, moved->type);
    EXPECT_EQ(300, moved->code) << moved->reason;
    EXPECT_EQ("draining: ask the director again", moved->reason);
    EXPECT_EQ(1u, e.stats().told_to_move);
    EXPECT_EQ(0u, e.stats().refreshed) << "a 300 is not a success";
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << "told to move, not dropped";

    // Its requests keep its consent while it moves.
    e.now += std::chrono::seconds(29);
    ASSERT_TRUE(e.ask(c, nat_ip, nat_port, false, 3).has_value());
    e.now += std::chrono::seconds(2);
    e.desk().poll(e.now);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << "consent lapsed although it asked while draining";

    // A new token is told to move as well and added nowhere.
    const auto fresh = e.ask(mint(1), nat_ip, nat_port + 1);
    ASSERT_TRUE(fresh.has_value());
    EXPECT_EQ(300, fresh->code);
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port + 1));
    EXPECT_EQ(1u, e.stats().joined) << "only the first join added anyone";
    EXPECT_EQ(3u, e.stats().told_to_move);

    // The listener joined elsewhere and leaves: gone at once.
    const auto l = e.ask(c, nat_ip, nat_port, true, 4);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(0u, e.listeners());
    EXPECT_EQ(0u, e.desk().bindings());
}

// A fleet edge ends its trunk session when the trunk key goes and creates it
// again when the key comes back: a listener renewing its token from the same
// address must be in the new session's table (a success means it hears the
// stream), and bindings of a session that ended for good are dropped.
TEST(join, a_listener_whose_session_ended_and_came_back_is_added_again_when_it_renews) {
    join_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask(c).has_value());
    const control::session_params sp = *e.r().state().session(1);
    e.r().state().session_end(1);
    e.r().state().session_create(sp);
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port)) << "the new session starts empty";
    const auto a = e.ask(mint(1), nat_ip, nat_port, false, 2);   // a new token, the same address: a renewal
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << "answered success, so it must be in the table";
    EXPECT_EQ(1u, e.stats().renewed);

    e.r().state().session_end(1);
    e.now += std::chrono::seconds(1);
    e.desk().poll(e.now);
    EXPECT_EQ(0u, e.desk().bindings()) << "a binding outlived its session";
    EXPECT_EQ(1u, e.stats().session_gone);
    EXPECT_EQ(0u, e.stats().consent_expired);
}

// ------------------------------------------------ what one token and one source may cost
//
// The review's finding: one token from one address did 500 join + leave
// cycles in 49 ms, each a listener_add under the state mutex, a publish and
// journal records; and one client holding many tokens could fill a session.
// A token that left is spent until its expiry; a source (an IPv4 address,
// an IPv6 /64) is limited in joins per second and in listeners held.

TEST(join, a_token_that_left_is_spent_and_refused_with_its_reason) {
    join_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask(c).has_value());
    const auto l = e.ask(c, nat_ip, nat_port, true, 5);
    ASSERT_TRUE(l.has_value());
    ASSERT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(1u, e.desk().spent_tokens());
    struct row {
        const char* what;
        uint32_t ip;
        uint16_t port;
    };
    const row rows[] = {
        {"the spent token again from its own address", nat_ip, nat_port},
        {"the spent token from another address", nat_ip + 3, 7777},
    };
    for (const auto& r : rows) {
        const uint64_t before = e.stats().refused_spent;
        const uint64_t published = e.r().state().published_version();
        const auto a = e.ask(c, r.ip, r.port, false, 6);
        ASSERT_TRUE(a.has_value()) << r.what;
        EXPECT_EQ(403, a->code) << r.what << ": " << a->reason;
        EXPECT_EQ("token spent: it left", a->reason) << r.what;
        EXPECT_EQ(before + 1, e.stats().refused_spent) << r.what;
        EXPECT_EQ(0u, e.listeners()) << r.what;
        EXPECT_EQ(published, e.r().state().published_version()) << r.what << ": a refusal published";
    }
    EXPECT_EQ(1u, e.stats().joined) << "a spent token joined again";
    // Another token from the same address is a new join.
    const auto d = e.ask(mint(1));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(stun::binding_success, d->type);
    EXPECT_EQ(2u, e.stats().joined);
    EXPECT_EQ(1u, e.listeners());
}

TEST(join, one_token_in_a_join_leave_loop_costs_one_join) {
    join_env e;
    const auto c = mint(1);
    unsigned ok = 0, refused = 0;
    for (uint8_t i = 0; i < 50; ++i) {
        const auto a = e.ask(c, nat_ip, nat_port, false, static_cast<uint8_t>(2 * i));
        ASSERT_TRUE(a.has_value());
        if (a->type == stun::binding_success) ++ok;
        if (a->code == 403) ++refused;
        e.ask(c, nat_ip, nat_port, true, static_cast<uint8_t>(2 * i + 1));
    }
    EXPECT_EQ(1u, ok);
    EXPECT_EQ(49u, refused);
    EXPECT_EQ(1u, e.stats().joined);
    EXPECT_EQ(1u, e.stats().left);
    EXPECT_EQ(49u, e.stats().leave_unknown) << "the loop's leaves find nobody";
}

// The spent table is bounded (join.max_spent_tokens): full, a leave is still
// done and answered, its token is not remembered (join/spent_full) and may
// join again; the tokens remembered before stay refused. The profile's
// smallest table (1024, control/config.cc) is filled by real join + leave
// exchanges from one address (one cookie), so the source's bucket is
// raised out of the way.
namespace {

constexpr unsigned smallest_spent_table = 1024;

void spent_table_profile(control::profile& p) {
    p.join.max_spent_tokens = smallest_spent_table;
    p.join.source_join_burst = 4 * smallest_spent_table;
}

// A join, then a leave, both answered success; the listener is gone after.
void join_and_leave(join_env& e, const credentials& c, const char* what) {
    const auto j = e.ask(c, nat_ip, nat_port, false, 1);
    ASSERT_TRUE(j.has_value()) << what;
    ASSERT_EQ(stun::binding_success, j->type) << what << ": " << j->code << " " << j->reason;
    ASSERT_TRUE(e.has_listener(nat_ip, nat_port)) << what;
    const auto l = e.ask(c, nat_ip, nat_port, true, 2);
    ASSERT_TRUE(l.has_value()) << what;
    ASSERT_EQ(stun::binding_success, l->type) << what << ": the leave answered " << l->code << " " << l->reason;
    ASSERT_FALSE(e.has_listener(nat_ip, nat_port)) << what << ": the leave left its listener";
}

// Fills the spent table with n tokens that joined and left (token lifetime
// ttl_s); returns them.
std::vector<credentials> fill_spent(join_env& e, unsigned n, int64_t ttl_s = 600) {
    std::vector<credentials> spent;
    for (unsigned i = 0; i < n; ++i) {
        spent.push_back(mint(1, ttl_s));
        join_and_leave(e, spent.back(), "filling the spent table");
        if (testing::Test::HasFatalFailure()) return spent;
    }
    return spent;
}

uint64_t spent_full_exported(join_env& e) {
    const nlohmann::json counters = e.env->get("/api/v1/stats").body["counters"];
    EXPECT_TRUE(counters.contains("join/spent_full"));
    return counters.value("join/spent_full", uint64_t{0});
}

}  // namespace

TEST(join, a_full_spent_table_still_does_the_leave_and_that_token_may_join_again) {
    join_env e(spent_table_profile);
    const auto remembered = fill_spent(e, smallest_spent_table);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(smallest_spent_table, e.desk().spent_tokens());
    ASSERT_EQ(0u, e.stats().spent_full);

    // The leave that finds the table full: done and answered as any leave,
    // counted, not remembered.
    const auto c = mint(1);
    const auto left = e.stats().left;
    join_and_leave(e, c, "the leave into a full table");
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(left + 1, e.stats().left);
    EXPECT_EQ(1u, e.stats().spent_full);
    EXPECT_EQ(1u, spent_full_exported(e)) << "join/spent_full, as the operator reads it";
    EXPECT_EQ(smallest_spent_table, e.desk().spent_tokens());

    struct row {
        const char* what;
        credentials token;
        uint16_t code;   // 0: joins
        uint64_t refused_spent;   // join/refused_spent after the row
    };
    const row rows[] = {
        {"the token the full table could not remember joins again", c, 0, 0},
        {"the first token remembered is still spent", remembered.front(), 403, 1},
        {"one from the middle is still spent", remembered[smallest_spent_table / 2], 403, 2},
        {"the last token remembered (it filled the table) is still spent", remembered.back(), 403, 3},
    };
    for (const auto& r : rows) {
        const uint64_t joined = e.stats().joined;
        const auto a = e.ask(r.token, nat_ip, nat_port, false, 3);
        ASSERT_TRUE(a.has_value()) << r.what;
        EXPECT_EQ(r.refused_spent, e.stats().refused_spent) << r.what;
        if (r.code == 0) {
            EXPECT_EQ(stun::binding_success, a->type) << r.what << ": " << a->code << " " << a->reason;
            EXPECT_EQ(joined + 1, e.stats().joined) << r.what;
            EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << r.what;
            // Its next leave finds the table full again.
            const auto l = e.ask(r.token, nat_ip, nat_port, true, 4);
            ASSERT_TRUE(l.has_value()) << r.what;
            EXPECT_EQ(stun::binding_success, l->type) << r.what;
            EXPECT_EQ(2u, e.stats().spent_full) << r.what;
            EXPECT_FALSE(e.has_listener(nat_ip, nat_port)) << r.what;
        } else {
            EXPECT_EQ(r.code, a->code) << r.what << ": " << a->reason;
            EXPECT_EQ("token spent: it left", a->reason) << r.what;
            EXPECT_EQ(joined, e.stats().joined) << r.what;
            EXPECT_FALSE(e.has_listener(nat_ip, nat_port)) << r.what;
        }
    }
    EXPECT_EQ(smallest_spent_table, e.desk().spent_tokens());
}

// A spent token is remembered until its expiry; the sweep after it frees
// its place, and the next leave is remembered again. The desk reads the
// wall clock (token expiry is unix seconds, the data plane refuses an
// expired token before any MAC), so the short-lived token waits for its
// expiry on the wall clock: about 3 s, nothing timed is asserted.
TEST(join, a_spent_token_is_forgotten_after_its_expiry_and_its_place_taken_by_the_next_leave) {
    join_env e(spent_table_profile);
    const credentials short_lived = mint(1, 2);
    const auto expiry_at_most = std::time(nullptr) + 2;
    join_and_leave(e, short_lived, "the short-lived token");
    ASSERT_FALSE(HasFatalFailure());
    const auto remembered = fill_spent(e, smallest_spent_table - 1);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(smallest_spent_table, e.desk().spent_tokens());
    join_and_leave(e, mint(1), "a leave into the full table");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(1u, e.stats().spent_full);

    // Past the short-lived token's expiry (unix seconds, strictly after),
    // then the sweep (once a second on the desk's clock).
    while (std::time(nullptr) <= expiry_at_most) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    e.now += std::chrono::seconds(1);
    e.desk().poll(e.now);
    EXPECT_EQ(smallest_spent_table - 1, e.desk().spent_tokens()) << "the expired entry, and only it, goes";

    // Its place: the next leave is remembered, and its token refused after.
    const auto c = mint(1);
    join_and_leave(e, c, "the leave after the sweep");
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(1u, e.stats().spent_full) << "remembered, not counted full";
    EXPECT_EQ(smallest_spent_table, e.desk().spent_tokens());
    const auto again = e.ask(c, nat_ip, nat_port, false, 3);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(403, again->code) << again->reason;
    EXPECT_EQ(1u, e.stats().refused_spent);
    // The tokens that had not expired kept their places: full again.
    join_and_leave(e, mint(1), "a leave into the table full again");
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(2u, e.stats().spent_full);
    const auto old = e.ask(remembered.front(), nat_ip, nat_port, false, 4);
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(403, old->code) << "a token that had not expired was forgotten: " << old->reason;
}

// The data plane checks a token's expiry against sh.unix_now, which the desk
// sets at each poll; a request then waits in the ring. A spent token that
// expired in between, checked by the data plane before and taken by the desk
// after a sweep forgot it, must not join once more.
TEST(join, a_spent_token_the_sweep_forgot_is_refused_though_the_data_plane_passed_it_on_an_older_clock) {
    join_env e;
    const auto minted_from = static_cast<uint32_t>(std::time(nullptr));
    const credentials c = mint(1, 2);
    const auto expiry_at_most = std::time(nullptr) + 2;
    join_and_leave(e, c, "the short-lived token");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(1u, e.desk().spent_tokens());

    while (std::time(nullptr) <= expiry_at_most) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    e.now += std::chrono::seconds(1);
    e.desk().poll(e.now);
    ASSERT_EQ(0u, e.desk().spent_tokens()) << "the sweep forgets the expired token";

    // On the data plane's current clock the token is expired: dropped.
    {
        const bytes req = request(c, false, 3, e.cookie_for(join_env::source4(nat_ip, nat_port)));
        const uint64_t expired = counter(e.r(), "drop/join/expired");
        EXPECT_TRUE(e.send(frame_from(req)).empty());
        EXPECT_EQ(expired + 1, counter(e.r(), "drop/join/expired"));
    }
    // On a clock from before its expiry (the request checked, then waiting in
    // the ring across the sweep), it reaches the desk: refused, nobody added.
    const uint64_t published = e.r().state().published_version();
    const bytes req = request(c, false, 4, e.cookie_for(join_env::source4(nat_ip, nat_port)));
    e.r().shared().unix_now.store(minted_from + 1, std::memory_order_relaxed);
    const auto a = e.ask(req, frame_from(req), c);
    ASSERT_TRUE(a.has_value()) << "the data plane passed it on its older clock";
    EXPECT_EQ(403, a->code) << a->reason;
    EXPECT_EQ("token expired", a->reason);
    EXPECT_EQ(1u, e.stats().refused_expired);
    EXPECT_EQ(1u, e.stats().joined) << "the spent token joined once more";
    EXPECT_EQ(0u, e.listeners());
    EXPECT_EQ(published, e.r().state().published_version()) << "a refusal published";

    // A token that has not expired, checked on the same older clock, joins.
    const credentials d = mint(1);
    const bytes dreq = request(d, false, 5, e.cookie_for(join_env::source4(nat_ip, nat_port)));
    e.r().shared().unix_now.store(minted_from + 1, std::memory_order_relaxed);
    const auto b = e.ask(dreq, frame_from(dreq), d);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(stun::binding_success, b->type) << b->code << " " << b->reason;
    EXPECT_EQ(1u, e.listeners());
}

namespace {
std::atomic<uint32_t> stepped_wall{0};
uint32_t stepped_wall_clock() { return stepped_wall.load(std::memory_order_relaxed); }
}  // namespace

// The desk's bound on forgotten spent tokens across a wall clock that steps
// back: a little (under 300 s), it holds, and a spent token passed by a data
// plane on an older clock stays refused; far (a clock that ran ahead,
// corrected), it follows the clock, so a token minted now for less than the
// step is not refused as expired (else every join would be, until the
// clock caught up).
TEST(join, a_clock_stepped_back_a_little_keeps_the_forgotten_refused_and_far_back_is_followed) {
    join_env e;
    const auto real = static_cast<uint32_t>(std::time(nullptr));
    stepped_wall = real;
    e.desk().set_wall_clock(&stepped_wall_clock);
    const credentials c = mint(1, 600);
    join_and_leave(e, c, "the token for 600 s");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(1u, e.desk().spent_tokens());

    stepped_wall = real + 1000;   // ahead of its expiry: the sweep forgets it
    e.now += std::chrono::seconds(1);
    e.desk().poll(e.now);
    ASSERT_EQ(0u, e.desk().spent_tokens());

    stepped_wall = real + 900;    // 100 s back: the bound holds
    e.now += std::chrono::seconds(1);
    e.desk().poll(e.now);
    const bytes req = request(c, false, 3, e.cookie_for(join_env::source4(nat_ip, nat_port)));
    e.r().shared().unix_now.store(real + 1, std::memory_order_relaxed);   // a data plane on an older clock
    const auto a = e.ask(req, frame_from(req), c);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(403, a->code) << a->reason;
    EXPECT_EQ("token expired", a->reason);
    EXPECT_EQ(1u, e.stats().refused_expired);
    EXPECT_EQ(0u, e.listeners());

    stepped_wall = real;          // 900 s back, to the true time: followed
    e.now += std::chrono::seconds(1);
    e.desk().poll(e.now);
    const auto b = e.ask(mint(1, 600));
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(stun::binding_success, b->type) << "a token minted now was refused: " << b->code << " " << b->reason;
    EXPECT_EQ(1u, e.stats().refused_expired);
    EXPECT_EQ(1u, e.listeners());
}

TEST(join, a_source_holds_at_most_max_bindings_per_source_listeners) {
    join_env e([](control::profile& p) { p.join.max_bindings_per_source = 3; });
    for (uint16_t i = 0; i < 3; ++i) {
        const auto a = e.ask(mint(1), nat_ip, static_cast<uint16_t>(nat_port + i));
        ASSERT_TRUE(a.has_value());
        EXPECT_EQ(stun::binding_success, a->type) << i;
    }
    const auto fourth = e.ask(mint(1), nat_ip, nat_port + 3);
    ASSERT_TRUE(fourth.has_value());
    EXPECT_EQ(429, fourth->code) << fourth->reason;
    EXPECT_EQ("source full, retry in 30 s", fourth->reason);
    EXPECT_EQ(30000u, fourth->retry_after_ms);
    EXPECT_EQ(1u, e.stats().refused_source_bindings);
    EXPECT_FALSE(e.has_listener(nat_ip, nat_port + 3));
    // Another address is another source.
    const auto other = e.ask(mint(1), nat_ip + 1, nat_port);
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(stun::binding_success, other->type);
    // Refreshes and a renewal at an address already joined are not joins.
    const auto c = mint(1);
    const auto renew = e.ask(c, nat_ip, nat_port);
    ASSERT_TRUE(renew.has_value());
    EXPECT_EQ(stun::binding_success, renew->type);
    EXPECT_EQ(1u, e.stats().renewed);
    // One leaves: the source may join again.
    ASSERT_TRUE(e.ask(c, nat_ip, nat_port, true, 4).has_value());
    const auto again = e.ask(mint(1), nat_ip, nat_port + 3, false, 5);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(stun::binding_success, again->type);
    EXPECT_EQ(4u, e.listeners());
}

TEST(join, a_source_joins_at_most_source_join_rate_per_s_after_its_burst) {
    join_env e([](control::profile& p) {
        p.join.source_join_rate_per_s = 1;
        p.join.source_join_burst = 2;
    });
    for (uint16_t i = 0; i < 2; ++i) {
        const auto a = e.ask(mint(1), nat_ip, static_cast<uint16_t>(nat_port + i));
        ASSERT_TRUE(a.has_value());
        EXPECT_EQ(stun::binding_success, a->type) << i;
    }
    const auto third = e.ask(mint(1), nat_ip, nat_port + 2);
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(429, third->code) << third->reason;
    EXPECT_EQ("source rate limited, retry in 1 s", third->reason);
    EXPECT_EQ(1000u, third->retry_after_ms);
    EXPECT_EQ(1u, e.stats().refused_source_rate);
    EXPECT_EQ(2u, e.listeners());
    // Another source has its own bucket; this one refills at its rate.
    const auto other = e.ask(mint(1), nat_ip + 1, nat_port);
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(stun::binding_success, other->type);
    e.now += std::chrono::seconds(1);
    const auto later = e.ask(mint(1), nat_ip, nat_port + 2, false, 3);
    ASSERT_TRUE(later.has_value());
    EXPECT_EQ(stun::binding_success, later->type);
    EXPECT_EQ(4u, e.listeners());
}

// One rule: the desk acts only on listeners that joined by token. A token at
// the exact address and port of an operator's listener used to adopt it, and
// the token's leave or silence then removed the operator's listener.
TEST(join, an_operator_listener_is_never_taken_over_by_a_token) {
    join_env e;
    e.r().state().listener_add(1, nat_ip, nat_port, 0, false);   // the operator's
    const auto c = mint(1);
    const auto a = e.ask(c);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(409, a->code) << a->reason;
    EXPECT_EQ("address in use by a registered listener", a->reason);
    EXPECT_EQ(1u, e.stats().refused_registered);
    EXPECT_EQ(0u, e.stats().joined);
    EXPECT_EQ(0u, e.desk().bindings());
    const auto l = e.ask(c, nat_ip, nat_port, true, 2);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(404, l->code) << "the token's leave found a listener to remove";
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << "the token's leave removed the operator's listener";
    e.now += std::chrono::seconds(31);
    e.desk().poll(e.now);
    EXPECT_TRUE(e.has_listener(nat_ip, nat_port)) << "the token's silence removed the operator's listener";
    EXPECT_EQ(0u, e.stats().consent_expired);
}

// The sweep finds ended sessions from its per-session counts: silent
// listeners of every session go, bindings of an ended session go without a
// removal, refreshed ones stay. (Behaviour as before the change; its cost
// is in the commit message.)
TEST(join, the_sweep_expires_the_silent_listeners_of_each_session_and_forgets_an_ended_one) {
    join_env e;
    control::session_params sp;
    sp.id = 2;
    sp.udp_port = 40002;
    e.r().state().session_create(sp);
    sp.id = 3;
    sp.udp_port = 40004;
    e.r().state().session_create(sp);
    e.r().poll();
    auto ask_to = [&](const credentials& c, uint16_t dport, uint16_t sport) {
        std::optional<answer> a;
        for (int round = 0; round < 2; ++round) {
            const bytes req = request(c, false, 1, e.cookie_for(join_env::source4(nat_ip, sport)));
            a = e.ask(req, frame_from(req, nat_ip, sport, dport), c);
            if (!a || a->code != 438) break;
        }
        return a;
    };
    const auto s1 = mint(1), s2_quiet = mint(2), s2_talks = mint(2), s3 = mint(3);
    for (const auto& [c, dport, sport] : {std::tuple{s1, 40000, 5001}, {s2_quiet, 40002, 5002}, {s2_talks, 40002, 5003},
                                          {s3, 40004, 5004}}) {
        const auto a = ask_to(c, static_cast<uint16_t>(dport), static_cast<uint16_t>(sport));
        ASSERT_TRUE(a.has_value()) << sport;
        ASSERT_EQ(stun::binding_success, a->type) << sport << ": " << a->reason;
    }
    EXPECT_EQ(4u, e.desk().bindings());
    e.r().state().session_end(3);
    e.now += std::chrono::seconds(20);
    ASSERT_TRUE(ask_to(s2_talks, 40002, 5003).has_value());   // a refresh
    e.now += std::chrono::seconds(11);
    e.desk().poll(e.now);
    EXPECT_EQ(1u, e.stats().session_gone) << "session 3's binding";
    EXPECT_EQ(2u, e.stats().consent_expired) << "session 1's and session 2's silent ones";
    EXPECT_EQ(1u, e.desk().bindings());
    EXPECT_FALSE(e.has_listener(nat_ip, 5001, 1));
    EXPECT_FALSE(e.has_listener(nat_ip, 5002, 2));
    EXPECT_TRUE(e.has_listener(nat_ip, 5003, 2));
}

// ---------------------------------------------------------------- over IPv6 (issue 15)
//
// The same join path for a request that arrives over IPv6: the listener is
// added as an IPv6 listener at the source as seen, the answer leaves over
// IPv6 from the port's IPv6 address with its UDP checksum, and every rule
// of the IPv4 path (consent, leave, one token one address, admission's
// answers, the budget, the silent drops) holds the same way.

namespace {

using frames6::addr6;
using frames6::host6;
using frames6::relay6;   // 2001:db8:5354::1, the port's IPv6 address below

// Off-link (through the pinned gateway6 MAC): resolved from the start.
const addr6 nat6{0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64};   // 2001:db8:200::64

void dual_stack(control::profile& p) {
    p.ports[0].ipv6 = relay6;
    p.ports[0].prefix6_len = 64;
    p.ports[0].gateway6 = host6(0xfe);
    p.ports[0].gateway6_mac = std::array<uint8_t, 6>{0x02, 0, 0, 0, 0x06, 0xfe};
}

bytes frame6_from(const bytes& stun_msg, const addr6& src = nat6, uint16_t port = nat_port, uint16_t dst_port = 40000) {
    return frames6::ipv6({.src = src, .dst = relay6}, frames::udp(port, dst_port, stun_msg));
}

struct join6_env : join_env {
    explicit join6_env(std::function<void(control::profile&)> tweak = {})
        : join_env([tweak](control::profile& p) {
              dual_stack(p);
              if (tweak) tweak(p);
          }) {}

    // The answer to `req` sent as `frame` from (src, sport), checked byte
    // by byte as a client and its kernel would: Ethernet back to the
    // requester's MAC, IPv6 from the port's address, the UDP checksum
    // (mandatory), the STUN message signed with the token's password and,
    // for a success, XOR-MAPPED-ADDRESS = the source XOR (cookie || txid).
    std::optional<answer> ask6(const bytes& req, const bytes& frame, const credentials& c, const addr6& src = nat6,
                               uint16_t sport = nat_port) {
        const auto got = answer_frame(frame, true);
        if (!got) return std::nullopt;
        const bytes& f = *got;
        EXPECT_EQ(0, std::memcmp(f.data() + 6, frames::our_mac.data(), 6));
        EXPECT_EQ(0x86dd, be16(f.data() + 12));
        EXPECT_EQ(0x60000000u, be32(f.data() + 14)) << "version 6, no traffic class or flow label";
        EXPECT_EQ(f.size() - 54, be16(f.data() + 18)) << "payload length";
        EXPECT_EQ(17, f[20]) << "next header UDP";
        EXPECT_EQ(64, f[21]) << "hop limit";
        EXPECT_EQ(0, std::memcmp(f.data() + 22, relay6.data(), 16)) << "from the port's IPv6 address";
        EXPECT_EQ(0, std::memcmp(f.data() + 38, src.data(), 16)) << "to the source as seen";
        EXPECT_EQ(40000, be16(f.data() + 54));
        EXPECT_EQ(sport, be16(f.data() + 56));
        EXPECT_EQ(f.size() - 54, be16(f.data() + 58)) << "UDP length";
        const bytes udp(f.begin() + 54, f.end());
        EXPECT_NE(0, be16(f.data() + 60)) << "the UDP checksum is mandatory over IPv6";
        EXPECT_EQ(0, frames6::l4_checksum6(relay6, src, 17, udp)) << "UDP checksum (reference sum)";
        const uint8_t* msg = f.data() + 62;
        const size_t n = f.size() - 62;
        stun::response_view v;
        answer a = read_answer(msg, n, req, c, v);
        keep(source(src.data(), 16, sport), a);
        if (v.type == stun::binding_success) {
            EXPECT_EQ(96u, n) << "header, XOR-MAPPED-ADDRESS (24), STENTOR-COOKIE (20), MESSAGE-INTEGRITY, FINGERPRINT";
            // RFC 8489 14.2, computed here apart from the codec: 00 02,
            // port ^ 0x2112, address ^ (21 12 a4 42 || transaction id).
            bytes want = {0x00, 0x20, 0x00, 0x14, 0x00, 0x02, static_cast<uint8_t>((sport >> 8) ^ 0x21),
                          static_cast<uint8_t>((sport & 0xff) ^ 0x12)};
            const uint8_t pad[16] = {0x21, 0x12, 0xa4, 0x42, req[8], req[9], req[10], req[11],
                                     req[12], req[13], req[14], req[15], req[16], req[17], req[18], req[19]};
            for (size_t i = 0; i < 16; ++i) want.push_back(static_cast<uint8_t>(src[i] ^ pad[i]));
            EXPECT_EQ(want, bytes(msg + 20, msg + 44)) << "XOR-MAPPED-ADDRESS";
            a.mapped = v.has_mapped && v.mapped_family == stun::family_ipv6 &&
                       std::memcmp(v.mapped_ipv6, src.data(), 16) == 0 && v.mapped_port == sport;
        }
        return a;
    }
    std::optional<answer> ask6(const credentials& c, const addr6& src = nat6, uint16_t sport = nat_port,
                               bool leave = false, uint8_t txid_seed = 1) {
        for (int round = 0;; ++round) {
            const bytes req = request(c, leave, txid_seed, cookie_for(source(src.data(), 16, sport)));
            const auto a = ask6(req, frame6_from(req, src, sport), c, src, sport);
            if (round == 1 || !a || a->code != 438) return a;
        }
    }

    bool has_listener6(const addr6& ip, uint16_t p, uint32_t session = 1) {
        for (const auto& l : r().state().listeners(session, 0, 1000))
            if (l.ip6 && *l.ip6 == ip && l.port == p) return true;
        return false;
    }
    uint64_t listeners6(uint32_t session = 1) {
        const auto s = r().state().session(session);
        return s ? s->nb_listeners6 : 0;
    }
};

}  // namespace

TEST(join6, a_token_joins_over_ipv6_at_the_address_it_was_seen_from_refreshes_and_leaves) {
    join6_env e;
    const auto c = mint(1);
    const auto a = e.ask6(c);
    ASSERT_TRUE(a.has_value()) << "no answer to a valid join over IPv6";
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_TRUE(a->mapped) << "XOR-MAPPED-ADDRESS (IPv6) is the source as seen";
    EXPECT_TRUE(e.has_listener6(nat6, nat_port)) << "added as an IPv6 listener";
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, e.listeners6());
    EXPECT_EQ(2u, counter(e.r(), "join_verified"));   // the first request (438), then with the cookie
    EXPECT_EQ(2u, counter(e.r(), "join_replies"));
    EXPECT_EQ(0u, counter(e.r(), "drop/ingress/ipv6_unserved"));
    EXPECT_EQ(1u, e.stats().joined);

    // The same request again (a replay, or the next consent check): refresh only.
    const auto b = e.ask6(c);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(stun::binding_success, b->type);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_EQ(1u, e.stats().refreshed);
    EXPECT_EQ(1u, e.desk().bindings());

    const auto l = e.ask6(c, nat6, nat_port, true, 7);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(stun::binding_success, l->type);
    EXPECT_EQ(1u, e.stats().left);
    EXPECT_FALSE(e.has_listener6(nat6, nat_port));
    EXPECT_EQ(0u, e.listeners());
    const auto again = e.ask6(c, nat6, nat_port, true, 8);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(404, again->code) << again->reason;
}

TEST(join6, refused_requests_over_ipv6_add_nobody_send_nothing_and_count_their_reason) {
    join6_env e([](control::profile& p) { p.join.verify_per_s = 20; });   // a budget of 1 request per 50 ms
    const auto good = mint(1);
    const addr6 link_local{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64};
    const addr6 multicast{0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64};
    const addr6 loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const addr6 discard{0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64};   // 100::/64, RFC 6666
    const addr6 mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 19, 0, 100};
    bytes bad_checksum = frame6_from(request(good));
    bad_checksum[60] ^= 0x01;

    auto rows = token_refusals(good, [](const bytes& m, uint16_t dport) { return frame6_from(m, nat6, nat_port, dport); });
    rows.insert(rows.end(), {
        {"UDP checksum wrong", bad_checksum, "drop/ingress/udp_checksum"},
        {"from a link-local source", frame6_from(request(good), link_local), "drop/ingress/ipv6_src_link_local"},
        {"from a multicast source", frame6_from(request(good), multicast), "drop/ingress/ipv6_src"},
        {"from ::1", frame6_from(request(good), loopback), "drop/ingress/ipv6_src"},
        {"from ::", frame6_from(request(good), frames6::unspecified), "drop/ingress/ipv6_src"},
        {"from an IPv4-mapped address", frame6_from(request(good), mapped), "drop/ingress/ipv6_src"},
        {"from the relay's own address", frame6_from(request(good), relay6), "drop/ingress/ipv6_src"},
        {"from the discard-only prefix", frame6_from(request(good), discard), "drop/join/src"},
        {"from UDP source port 0", frame6_from(request(good), nat6, 0), "drop/join/src"},
    });
    // One budget token per 50 ms at most: let it refill between rows.
    expect_refused(e, rows, std::chrono::milliseconds(60));
    EXPECT_EQ(0u, counter(e.r(), "join_verified"));
    EXPECT_EQ(0u, counter(e.r(), "join_replies"));
    EXPECT_EQ(0u, e.stats().requests);

    // The budget: two valid requests in one RX burst, the second dropped
    // before any MAC (the budget counts both families alike).
    inject(e.port, frame6_from(request(mint(1)), nat6, nat_port));
    inject(e.port, frame6_from(request(mint(1)), nat6, nat_port + 1));
    e.step();
    EXPECT_EQ(1u, drain(e.port).size()) << "one answer";
    EXPECT_EQ(1u, counter(e.r(), "drop/join/budget"));
    EXPECT_EQ(1u, counter(e.r(), "join_verified"));
    EXPECT_EQ(1u, e.stats().challenged) << "the one verified reached the desk (a first request: 438)";
}

// A join request's UDP checksum over IPv6 (what vouches for the source the
// answer goes to) is the NIC's verdict when it gives one, else summed, as
// a speaker's (ingress.h udp_sum_ok); checked by the join stage within the
// join budget, so requests past the budget are dropped without a sum
// (the next test).
TEST(join6, a_requests_checksum_is_the_nics_verdict_else_summed) {
    const auto good = mint(1);
    join6_env e;
    struct verdict_row {
        const char* what;
        bool wrong_sum;   // the UDP checksum field altered
        uint64_t ol_flags;
        bool answered;    // else counted udp_checksum
    } const rows[] = {
        {"right sum, no verdict: summed, answered", false, 0, true},
        {"wrong sum, no verdict: summed, refused", true, 0, false},
        {"right sum, the NIC calls it bad: refused", false, RTE_MBUF_F_RX_L4_CKSUM_BAD, false},
        {"wrong sum, the NIC calls it good: its word is taken, answered", true, RTE_MBUF_F_RX_L4_CKSUM_GOOD, true},
        {"wrong sum, the NIC did not check (L4 NONE): summed, refused", true, RTE_MBUF_F_RX_L4_CKSUM_NONE, false},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        bytes f = frame6_from(request(good), nat6, nat_port);
        if (row.wrong_sum) f[60] ^= 0x01;
        const uint64_t bad = counter(e.r(), "drop/ingress/udp_checksum");
        const uint64_t verified = counter(e.r(), "join_verified");
        inject(e.port, f, row.ol_flags);
        e.step();
        const auto out = drain(e.port);
        EXPECT_EQ(row.answered ? 1u : 0u, out.size());
        EXPECT_EQ(bad + (row.answered ? 0 : 1), counter(e.r(), "drop/ingress/udp_checksum"));
        EXPECT_EQ(verified + (row.answered ? 1 : 0), counter(e.r(), "join_verified"));
    }
    EXPECT_EQ(0u, e.listeners()) << "first requests: 438, nobody added";
}

// Past the budget no sum is taken: two requests with wrong sums in one RX
// burst, one token: the first is summed and refused, the second dropped by
// the budget.
TEST(join6, a_request_past_the_budget_is_dropped_before_its_checksum) {
    const auto good = mint(1);
    join6_env b([](control::profile& p) { p.join.verify_per_s = 20; });
    bytes f = frame6_from(request(good), nat6, nat_port);
    f[60] ^= 0x01;
    inject(b.port, f);
    inject(b.port, f);
    b.step();
    EXPECT_TRUE(drain(b.port).empty());
    EXPECT_EQ(1u, counter(b.r(), "drop/ingress/udp_checksum"));
    EXPECT_EQ(1u, counter(b.r(), "drop/join/budget"));
    EXPECT_EQ(0u, counter(b.r(), "join_verified"));
}

TEST(join6, one_token_one_address_across_families_and_a_rebinding_moves_it) {
    join6_env e;
    const auto c = mint(1);
    ASSERT_TRUE(e.ask6(c).has_value());
    // The captured request (the first address's cookie) from another IPv6
    // address, and from an IPv4 address: challenged, nobody added; clients
    // really there, with their own cookies, while the first keeps
    // refreshing: refused, nobody added.
    const bytes req = request(c, false, 1, e.cookie_for(join_env::source(nat6.data(), 16, nat_port)));
    const addr6 other{0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77};   // 2001:db8:200::77, off-link
    const auto a0 = e.ask6(req, frame6_from(req, other, 4444), c, other, 4444);
    ASSERT_TRUE(a0.has_value());
    EXPECT_EQ(438, a0->code) << a0->reason;
    const auto b0 = e.ask(req, frame_from(req, nat_ip, 4444), c);
    ASSERT_TRUE(b0.has_value());
    EXPECT_EQ(438, b0->code) << b0->reason;
    const auto a = e.ask6(c, other, 4444);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(409, a->code) << a->reason;
    const auto b = e.ask(c, nat_ip, 4444);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(409, b->code) << b->reason;
    EXPECT_EQ(2u, e.stats().refused_in_use);
    EXPECT_EQ(1u, e.listeners());
    EXPECT_FALSE(e.has_listener6(other, 4444));
    EXPECT_FALSE(e.has_listener(nat_ip, 4444));

    // The IPv6 mapping goes silent past rebind_after_s: the token moves to
    // the IPv4 address (a dual-stack client that changed network), and back.
    e.now += std::chrono::seconds(11);
    const auto moved = e.ask(c, nat_ip, 4444, false, 2);
    ASSERT_TRUE(moved.has_value());
    EXPECT_EQ(stun::binding_success, moved->type);
    EXPECT_TRUE(e.has_listener(nat_ip, 4444));
    EXPECT_FALSE(e.has_listener6(nat6, nat_port));
    e.now += std::chrono::seconds(11);
    const auto back = e.ask6(c, other, 4445, false, 3);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(stun::binding_success, back->type);
    EXPECT_TRUE(back->mapped);
    EXPECT_TRUE(e.has_listener6(other, 4445));
    EXPECT_FALSE(e.has_listener(nat_ip, 4444));
    EXPECT_EQ(2u, e.stats().rebound);
    EXPECT_EQ(1u, e.listeners());
}

TEST(join6, a_silent_ipv6_listener_is_removed_after_the_consent_timeout) {
    join6_env e;
    const auto quiet = mint(1);
    const auto talker = mint(1);
    ASSERT_TRUE(e.ask6(quiet).has_value());
    ASSERT_TRUE(e.ask6(talker, nat6, nat_port + 1).has_value());
    e.now += std::chrono::seconds(20);
    ASSERT_TRUE(e.ask6(talker, nat6, nat_port + 1, false, 2).has_value());
    e.now += std::chrono::seconds(9);
    e.desk().poll(e.now);
    EXPECT_TRUE(e.has_listener6(nat6, nat_port)) << "removed before consent_timeout_s";
    e.now += std::chrono::seconds(2);
    e.desk().poll(e.now);
    EXPECT_FALSE(e.has_listener6(nat6, nat_port)) << "still listening after consent_timeout_s";
    EXPECT_TRUE(e.has_listener6(nat6, nat_port + 1)) << "refreshed 11 s ago";
    EXPECT_EQ(1u, e.stats().consent_expired);
    EXPECT_EQ(1u, e.desk().bindings());
    EXPECT_EQ(1u, e.r().state().session(1)->tally.consent_expired) << "counted as a consent expiry, not a leave";
}

TEST(join6, admission_refusals_over_ipv6_are_answered_with_a_stun_error_and_change_nothing) {
    {
        join6_env e([](control::profile& p) { p.sessions[0].max_listeners = 1; });
        ASSERT_TRUE(e.ask6(mint(1)).has_value());
        const auto full = e.ask6(mint(1), nat6, nat_port + 1);
        ASSERT_TRUE(full.has_value());
        EXPECT_EQ(486, full->code) << full->reason;
        EXPECT_EQ("session full", full->reason);
        EXPECT_EQ(1u, e.stats().refused_session_full);
        EXPECT_EQ(1u, e.listeners());
    }
    {
        join6_env e([](control::profile& p) { p.limits.max_listeners = 1; });
        ASSERT_TRUE(e.ask(mint(1)).has_value()) << "an IPv4 listener fills the relay";
        const auto cap = e.ask6(mint(1));
        ASSERT_TRUE(cap.has_value());
        EXPECT_EQ(503, cap->code) << cap->reason;
        EXPECT_EQ(1u, e.stats().refused_capacity);
        EXPECT_EQ(0u, e.listeners6());
    }
    {
        join6_env e([](control::profile& p) { p.limits.session_join_rate_per_s = 1; });
        ASSERT_TRUE(e.ask6(mint(1)).has_value());
        const auto limited = e.ask6(mint(1), nat6, nat_port + 1);
        ASSERT_TRUE(limited.has_value());
        EXPECT_EQ(429, limited->code) << limited->reason;
        EXPECT_GE(limited->retry_after_ms, 1000u) << "STENTOR-RETRY-AFTER";
        EXPECT_EQ(1u, e.stats().refused_rate_limited);
        EXPECT_EQ(1u, e.listeners());
    }
}

// Admission plans IPv6 listeners joined by token like IPv4 ones, and the
// overload controller sheds them (newest first); a shed listener's next
// request is a new join (its binding is forgotten) and meets the cap the
// shed left, instead of being answered "refreshed" for a stream it no
// longer gets.
TEST(join6, admission_counts_ipv6_token_listeners_and_a_shed_one_must_join_again) {
    join6_env e;
    auto& adm = e.env->cp->adm();
    const double idle = adm.used_pps();
    const auto first = mint(1);
    const auto second = mint(1);
    ASSERT_TRUE(e.ask6(first).has_value());
    const double one = adm.used_pps() - idle;
    EXPECT_GT(one, 0.0) << "an IPv6 token listener is planned";
    ASSERT_TRUE(e.ask6(second, nat6, nat_port + 1).has_value());
    EXPECT_DOUBLE_EQ(2 * one, adm.used_pps() - idle);

    control::overload_sample d;
    d.rtp_in = 1;
    d.tier_misses[0] = 1;   // one replica per packet undelivered: shed one listener
    auto t = clock_t_::now();
    uint64_t shed = 0;
    for (int i = 0; i < 3; ++i) shed += e.env->cp->overload().tick(d, t += std::chrono::milliseconds(100));
    ASSERT_EQ(1u, shed);
    EXPECT_FALSE(e.has_listener6(nat6, nat_port + 1)) << "the newest went";
    EXPECT_TRUE(e.has_listener6(nat6, nat_port));
    EXPECT_DOUBLE_EQ(one, adm.used_pps() - idle) << "its load released";

    const auto after = e.ask6(second, nat6, nat_port + 1, false, 2);
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(503, after->code) << "a new join under the overload cap: " << after->reason;
    EXPECT_EQ(1u, e.stats().shed);
    EXPECT_EQ(0u, e.stats().refreshed);
    EXPECT_FALSE(e.has_listener6(nat6, nat_port + 1));
    const auto kept = e.ask6(first, nat6, nat_port, false, 3);
    ASSERT_TRUE(kept.has_value());
    EXPECT_EQ(stun::binding_success, kept->type) << "the listener that stayed refreshes";
    EXPECT_EQ(1u, e.stats().refreshed);
}

// An on-link listener's next hop is itself: the success waits for its
// neighbour discovery (the relay solicits, the listener advertises), as an
// IPv4 join waits for ARP, so "success" means "you hear the next packet".
TEST(join6, an_on_link_join_is_answered_once_its_neighbour_advertisement_arrived) {
    join6_env e([](control::profile& p) { p.limits.join_resolve_ms = 60000; });
    const auto c = mint(1);
    const addr6 on_link = host6(0x42);
    const mac_t mac{0x02, 0, 0, 0, 0x42, 0x42};
    // The first request is answered at once, back to the MAC it came from
    // (a 438 with the address's cookie: no resolution needed, nobody added).
    const bytes first = request(c);
    bytes frame0 = frame6_from(first, on_link, nat_port);
    std::memcpy(frame0.data() + 6, mac.data(), 6);
    const auto challenge = e.send(frame0);
    ASSERT_EQ(1u, challenge.size());
    EXPECT_EQ(0, std::memcmp(challenge[0].data(), mac.data(), 6));
    const auto cookie = cookie_in(challenge[0]);
    ASSERT_TRUE(cookie.has_value());
    EXPECT_FALSE(e.has_listener6(on_link, nat_port));
    const bytes req = request(c, false, 2, cookie->data());
    bytes frame = frame6_from(req, on_link, nat_port);
    std::memcpy(frame.data() + 6, mac.data(), 6);
    auto out = e.send(frame);
    EXPECT_TRUE(e.has_listener6(on_link, nat_port));
    for (int i = 0; i < 100 && out.empty(); ++i) {   // the ARP owner's neighbour tick (10 ms)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        e.r().poll();
        e.r().flush();
        out = drain(e.port);
    }
    size_t stun_answers = 0, ns = 0;
    addr6 target{};
    for (const auto& f : out) {
        if (frames6::is_ns_from_relay(f, &target)) {
            ++ns;
            EXPECT_EQ(on_link, target);
        } else {
            ++stun_answers;
        }
    }
    EXPECT_EQ(1u, ns) << "the relay solicits the listener's address";
    EXPECT_EQ(0u, stun_answers) << "answered before the next hop was resolved";
    inject(e.port, frames6::na_to_relay(on_link, mac));
    e.r().poll();   // the NA, handed to the ARP owner
    e.r().poll();   // learnt
    e.now += std::chrono::milliseconds(5);
    e.desk().poll(e.now);
    e.r().poll();
    e.r().flush();
    out = drain(e.port);
    ASSERT_EQ(1u, out.size());
    EXPECT_EQ(0, std::memcmp(out[0].data(), mac.data(), 6));
    EXPECT_EQ(0, std::memcmp(out[0].data() + 38, on_link.data(), 16));
    EXPECT_EQ(1u, e.stats().joined);
    EXPECT_EQ(0u, e.stats().unresolved);
}

// Restored IPv6 listeners that joined by token (the journal keeps the flag
// for both families) come under consent at start; one that asks again from
// its address renews onto its new token, one that does not is removed.
TEST(join6, restored_ipv6_token_listeners_come_under_consent) {
    join6_env e;
    control::listener_spec quiet{0, 9000, 0, true, nat6};
    control::listener_spec back{0, 9001, 0, true, nat6};
    control::listener_spec operators{0, 9002, 0, false, nat6};
    e.r().state().listener_add(1, quiet);   // as the journal would restore them
    e.r().state().listener_add(1, back);
    e.r().state().listener_add(1, operators);
    EXPECT_EQ(2u, e.desk().adopt_existing(e.now, false));
    const auto a = e.ask6(mint(1), nat6, 9001);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_EQ(1u, e.stats().renewed) << "the restored binding took the token";
    e.now += std::chrono::seconds(31);
    e.desk().poll(e.now);
    EXPECT_FALSE(e.has_listener6(nat6, 9000)) << "a restored token listener that never asked again still listens";
    EXPECT_FALSE(e.has_listener6(nat6, 9001)) << "its renewal was 31 s ago";
    EXPECT_TRUE(e.has_listener6(nat6, 9002)) << "an operator's listener was put under consent";
    EXPECT_EQ(2u, e.stats().consent_expired);
}

// With a join lcore: the RX lcore hashes the 16-byte source to pick it and
// hands the request over; the join lcore verifies; the answer is the same.
TEST(join6, a_dedicated_join_lcore_verifies_ipv6_requests) {
    join6_env e([](control::profile& p) { with_join_lcore(p); });
    const auto c = mint(1);
    const auto a = e.ask6(c);
    ASSERT_TRUE(a.has_value()) << "no answer through the join lcore";
    EXPECT_EQ(stun::binding_success, a->type);
    EXPECT_TRUE(a->mapped);
    EXPECT_TRUE(e.has_listener6(nat6, nat_port));
    const auto per = e.r().per_lcore();
    ASSERT_EQ(2u, per.size());
    EXPECT_EQ(2u, per[0].join_handoffs);
    EXPECT_EQ(2u, per[1].join_verified);
    EXPECT_TRUE(e.send(frame6_from(request(forged(mint(1))), nat6, nat_port + 1)).empty());
    EXPECT_EQ(1u, e.r().per_lcore()[1].drop(dp::drop_reason::join_forged));
}

TEST(join6, an_ipv6_source_is_its_slash_64) {
    join6_env e([](control::profile& p) { p.join.max_bindings_per_source = 2; });
    addr6 a = nat6, b = nat6, other = nat6;
    b[15] = 0x65;    // the same /64
    other[7] = 1;    // 2001:db8:200:1::64: another /64
    const auto one = e.ask6(mint(1), a);
    const auto two = e.ask6(mint(1), b);
    ASSERT_TRUE(one.has_value());
    ASSERT_TRUE(two.has_value());
    EXPECT_EQ(stun::binding_success, one->type);
    EXPECT_EQ(stun::binding_success, two->type);
    addr6 c = nat6;
    c[8] = 0x42;     // 2001:db8:200:0:4200::64, still the same /64
    const auto three = e.ask6(mint(1), c);
    ASSERT_TRUE(three.has_value());
    EXPECT_EQ(429, three->code) << three->reason;
    EXPECT_EQ(1u, e.stats().refused_source_bindings);
    const auto four = e.ask6(mint(1), other);
    ASSERT_TRUE(four.has_value());
    EXPECT_EQ(stun::binding_success, four->type) << four->reason;
    EXPECT_EQ(3u, e.listeners6());
}
