#include "join_desk.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_set>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <stdexcept>

#include <spdlog/spdlog.h>

#include "action_error.h"
#include "control_plane.h"
#include "stentor/dp_join.h"
#include "stentor/dp_shared.h"
#include "stentor/stun.h"
#include "stentor/wire.h"

namespace stentor::control {

using clock_t_ = std::chrono::steady_clock;

bool join_desk::addr_ref::is_v4() const noexcept {
    static constexpr uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(ip.data(), mapped, sizeof mapped) == 0;
}

listener_addr join_desk::addr_ref::listener() const {
    if (is_v4())
        return {(uint32_t{ip[12]} << 24) | (uint32_t{ip[13]} << 16) | (uint32_t{ip[14]} << 8) | ip[15], port, std::nullopt};
    return {0, port, ip};
}

namespace {

// A wall clock found this far behind the desk's last sweep stepped back (the
// sweep runs once a second; a slewing NTP moves it by milliseconds).
constexpr uint32_t clock_step_back_s = 300;

uint16_t port_of(const dp::dp_join_request& r) { return __builtin_bswap16(r.src_port_be); }

join_desk::addr_ref addr_of(const dp::dp_join_request& r) {
    join_desk::addr_ref a{r.session_id, port_of(r), {}};
    std::memcpy(a.ip.data(), r.src, 16);
    return a;
}

// A listener as relay_state lists it (listener_refs, shed_newest).
join_desk::addr_ref addr_of(const shed_record& l) {
    join_desk::addr_ref at{l.session_id, static_cast<uint16_t>(l.port), {}};
    if (l.ip6)
        at.ip = *l.ip6;
    else
        dp::join_src_v4(at.ip.data(), __builtin_bswap32(l.ip));
    return at;
}

// Swaps the Ethernet addresses and `n`-byte address fields at a and b.
void swap_bytes(uint8_t* a, uint8_t* b, size_t n) {
    uint8_t t[16];
    std::memcpy(t, a, n);
    std::memcpy(a, b, n);
    std::memcpy(b, t, n);
}

// The request frame turned around into the response: addresses and ports
// swapped, lengths and checksums for a STUN message of `len` bytes. Either
// family: the request's destination was the port's own address (the
// validator checked it), so the answer leaves from it. It goes back to the
// MAC the request came from, for both families: the router (or host) that
// delivered the request, which is known to reach the client and needs no
// resolution first (a refusal is answered at once; a join's success waits
// for the listener's own next hop anyway, answer_resolved). Over IPv6 the
// UDP checksum is mandatory (RFC 8200 8.1) and never 0.
void turn_around(rte_mbuf* m, const dp::dp_join_request& r, uint16_t len) {
    using namespace wire;
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    swap_bytes(d, d + 6, 6);
    uint8_t* ip = d + eth_hdr_len;
    const auto udp_len = static_cast<uint16_t>(udp_hdr_len + len);
    uint8_t* u;
    uint32_t sum;
    if (r.ipv6) {
        swap_bytes(ip + 8, ip + 24, 16);
        store_be32(ip, 0x60000000);   // version 6, traffic class and flow label 0
        store_be16(ip + 4, udp_len);
        ip[6] = ipproto_udp;
        ip[7] = 64;
        u = ip + ipv6_hdr_len;
        sum = ipv6_pseudo_sum(ip, udp_len, ipproto_udp);
    } else {
        swap_bytes(ip + 12, ip + 16, 4);
        store_be16(ip + 2, static_cast<uint16_t>(ipv4_hdr_len + udp_len));
        store_be16(ip + 4, 0);
        ip[8] = 64;
        store_be16(ip + 10, 0);
        store_be16(ip + 10, static_cast<uint16_t>(~csum_fold(csum_add(0, ip, ipv4_hdr_len))));
        u = ip + ipv4_hdr_len;
        sum = csum_add(0, ip + 12, 8) + ipproto_udp + udp_len;
    }
    swap_bytes(u, u + 2, 2);
    store_be16(u + 4, udp_len);
    store_be16(u + 6, 0);
    sum = csum_add(sum, u, udp_len);
    const uint16_t c = static_cast<uint16_t>(~csum_fold(sum));
    store_be16(u + 6, c == 0 ? 0xffff : c);
    const uint32_t frame = r.stun_off + len;
    rte_pktmbuf_trim(m, static_cast<uint16_t>(m->pkt_len - frame));
    m->port = r.port;
}

}  // namespace

join_desk::join_desk(control_plane& cp, dp::dp_shared& sh, const join_desk_config& cfg)
    : _cp(cp), _sh(sh), _cfg(cfg) {
    _sh.unix_now.store(wall(), std::memory_order_relaxed);
    uint8_t secret[32];
    if (RAND_bytes(secret, static_cast<int>(sizeof secret)) != 1)
        throw std::runtime_error("join desk: no random bytes for the cookie key");
    _cookie_key = std::make_unique<join::token_key>(secret, sizeof secret);
    OPENSSL_cleanse(secret, sizeof secret);
}

// Slots of consent_timeout_s on the desk's steady clock: a cookie is good
// in its slot and the next, so an answer's cookie stays good for at least
// one consent timeout (a client that refreshes within it always holds a
// good one) and at most two (a token holder who left an address, or forged
// it, cannot keep a stream there longer with what it saw).
uint32_t join_desk::cookie_slot(clock_t_::time_point now) const {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    return static_cast<uint32_t>(static_cast<uint64_t>(s) / std::max(1u, _cfg.consent_timeout_s));
}

void join_desk::make_cookie(const dp::dp_join_request& r, uint32_t slot, uint8_t* out) const {
    // The slot, the session, the source address and port: what a cookie
    // proves is that this address receives what the relay sends it for this
    // session. Not the token: a listener that renews its token keeps its
    // cookie (the token's own MACs already held).
    uint8_t in[4 + 4 + 16 + 2];
    wire::store_be32(in, slot);
    wire::store_be32(in + 4, r.session_id);
    std::memcpy(in + 8, r.src, 16);
    std::memcpy(in + 24, &r.src_port_be, 2);
    // Two SHA-256 blocks from the key's states (join::short_mac): OpenSSL's
    // one-shot HMAC() cost 3.3 us here (join_harness's hmac_ref), and the
    // desk makes one per answer and checks one per request.
    static_assert(sizeof in <= join::short_mac_max);
    uint8_t mac[join::token_mac_len];
    join::short_mac(*_cookie_key, in, sizeof in, mac);
    wire::store_be32(out, slot);
    std::memcpy(out + 4, mac, stun::cookie_len - 4);
}

bool join_desk::cookie_ok(const dp::dp_join_request& r, const uint8_t* cookie) const {
    if (cookie == nullptr) return false;
    const uint32_t slot = wire::load_be32(cookie);
    if (slot != _slot && slot + 1 != _slot) return false;
    uint8_t want[stun::cookie_len];
    make_cookie(r, slot, want);
    return CRYPTO_memcmp(want, cookie, stun::cookie_len) == 0;
}

join_desk::~join_desk() {
    stop();
    for (auto& p : _pending) rte_pktmbuf_free(p.m);
}

size_t join_desk::adopt_existing(clock_t_::time_point now, bool all) {
    size_t n = 0;
    for (const auto& l : _cp.state().listener_refs(!all)) {
        const addr_ref at = addr_of(l);
        if (_by_addr.contains(at)) continue;
        // Its token is not known until its next request (the renewal path
        // binds it then): a ref no real token has, key id 0, unique per listener.
        const token_ref t{_next_adopted++, 0};
        bind(t, binding{at, static_cast<uint8_t>(l.tier), now, 0});
        ++n;
    }
    _nb_bindings.store(_by_token.size(), std::memory_order_relaxed);
    return n;
}

void join_desk::start() {
    if (_thr.joinable()) return;
    _stop.store(false);
    _thr = std::thread([this] { run(); });
}

void join_desk::stop() {
    _stop.store(true);
    if (_thr.joinable()) _thr.join();
}

void join_desk::run() {
    while (!_stop.load(std::memory_order_relaxed)) {
        // Not a busy poll: several relays share small machines, and a join
        // waits for a publish anyway (a millisecond is in the noise).
        if (poll(clock_t_::now()) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

join_stats join_desk::stats() const {
    std::lock_guard lk(_stats_mu);
    return _published;
}

size_t join_desk::bindings() const { return _nb_bindings.load(std::memory_order_relaxed); }

void join_desk::forget_shed(const std::vector<shed_record>& recs) {
    std::lock_guard lk(_shed_mu);
    for (const auto& r : recs) {
        _shed_inbox.push_back(addr_of(r));
    }
}

unsigned join_desk::poll(clock_t_::time_point now) {
    _sh.unix_now.store(wall(), std::memory_order_relaxed);
    std::vector<addr_ref> shed;
    {
        std::lock_guard lk(_shed_mu);
        shed.swap(_shed_inbox);
    }
    for (const auto& at : shed) {
        // Before this pass's requests: a shed listener's refresh is a new join.
        auto a = _by_addr.find(at);
        if (a == _by_addr.end()) continue;
        unbind(a->second);
        ++_stats.shed;
    }
    _slot = cookie_slot(now);
    unsigned taken = 0;
    std::vector<pending_reply> wait;
    if (_sh.join_ring != nullptr) {
        void* objs[256];
        while (taken < _cfg.batch) {
            const unsigned n = rte_ring_sc_dequeue_burst(_sh.join_ring, objs, 256, nullptr);
            if (n == 0) break;
            for (unsigned i = 0; i < n; ++i) handle(static_cast<rte_mbuf*>(objs[i]), now, wait);
            taken += n;
        }
    }
    _stats.requests += taken;
    if (!wait.empty()) {
        // One publish covers every join of the pass; the answer waits for it
        // and for the next hop, as an API join's 201 does.
        _cp.commit();
        const auto deadline = now + std::chrono::milliseconds(_cp.join_resolve_ms());
        for (auto& p : wait) {
            p.deadline = deadline;
            _pending.push_back(p);
        }
    }
    if (!_pending.empty()) answer_resolved(now);
    if (now >= _next_sweep) {
        sweep(now);
        _next_sweep = now + std::chrono::seconds(1);
    }
    _nb_bindings.store(_by_token.size(), std::memory_order_relaxed);
    _nb_spent.store(_spent.size(), std::memory_order_relaxed);
    {
        std::lock_guard lk(_stats_mu);
        _published = _stats;
    }
    return taken;
}

void join_desk::handle(rte_mbuf* m, clock_t_::time_point now, std::vector<pending_reply>& wait) {
    const dp::dp_join_request r = dp::load_join_request(m);
    const token_ref tok{r.nonce, r.key_id};
    const addr_ref at = addr_of(r);
    const listener_addr la = at.listener();
    auto it = _by_token.find(tok);
    // The cookie where the data plane's parse found it (both MACs hold);
    // only the desk holds the key to check it.
    const bool routable =
        cookie_ok(r, r.cookie_off != 0 ? rte_pktmbuf_mtod(m, const uint8_t*) + r.stun_off + r.cookie_off : nullptr);

    if (r.leave) {
        if (it == _by_token.end() || !(it->second.addr == at)) {
            ++_stats.leave_unknown;
            reply(m, 404, "not joined from this address");
            return;
        }
        try {
            _cp.state().listener_del(at.session_id, la);
        } catch (const action_error&) {
            // gone already (session ended): the binding goes all the same
        }
        unbind(tok);
        spend(tok, r.expiry);
        ++_stats.left;
        reply(m);
        return;
    }

    // A token the sweep may have forgotten as spent (its expiry below the
    // sweep's clock) is refused as expired here: the data plane checked it
    // against its own clock, set at a poll before the request waited in the
    // ring, so without this a spent token that expired meanwhile could join
    // once more. Checked before the spent table, which no longer holds it.
    if (r.expiry < _forgotten_below) {
        ++_stats.refused_expired;
        reply(m, 403, "token expired");
        return;
    }

    // A token that left is spent until its expiry: join and leave in a loop
    // with one token cost a listener_add, a publish and two journal records
    // a cycle (500 cycles in 49 ms in the review). Checked before the
    // cookie: nothing this request could do depends on its address.
    if (_spent.contains(tok)) {
        ++_stats.refused_spent;
        reply(m, 403, "token spent: it left");
        return;
    }

    if (_draining.load(std::memory_order_relaxed)) {
        // Make before break: the listener keeps hearing us while it asks a
        // director and joins elsewhere, then leaves (the branch above).
        if (routable && it != _by_token.end() && it->second.addr == at) it->second.last_seen = now;
        ++_stats.told_to_move;
        reply(m, 300, "draining: ask the director again");
        return;
    }

    // Return routability: whatever this request would add, move, renew or
    // refresh, the address must have shown it receives what we send it.
    // The answer goes to the address the request names, no larger than the
    // request, as every answer: a forger gains nothing by it.
    if (!routable) {
        ++_stats.challenged;
        reply(m, 438, "echo STENTOR-COOKIE");
        return;
    }

    // Whatever adds a listener at this address is charged to its source
    // first (docs/join.md "Spent tokens and sources"); refreshes and
    // renewals at an address already joined are not, but for a renewal
    // that changes the tier (its source's bucket, below).
    bool charged = false;
    auto source_refused = [&](bool holds = false) {
        if (charged) return false;
        bool rate = false;
        const unsigned retry = source_admit(at, now, rate, holds);
        if (retry == 0) {
            charged = true;
            return false;
        }
        ++(rate ? _stats.refused_source_rate : _stats.refused_source_bindings);
        const std::string why = std::string(rate ? "source rate limited" : "source full") +
                                ", retry in " + std::to_string(retry) + " s";
        reply(m, 429, why.c_str(), retry * 1000);
        return true;
    };

    // A refused listener_add, answered as a join at the token's tier is.
    auto refuse = [&](const action_error& e) {
        switch (e.code) {
        case error_code::exists:
            // One rule: the desk acts only on listeners that joined by token
            // (its bindings; those restored from the journal are bound at
            // start). Any other listener at this address — the operator's,
            // a fleet trunk's — is never taken over: a later leave or
            // silence of the token would remove it.
            ++_stats.refused_registered;
            reply(m, 409, "address in use by a registered listener");
            return;
        case error_code::capacity:
            ++_stats.refused_capacity;
            reply(m, 503, "relay at capacity");
            return;
        case error_code::session_full:
            ++_stats.refused_session_full;
            reply(m, 486, "session full");
            return;
        case error_code::rate_limited: {
            ++_stats.refused_rate_limited;
            const unsigned s = std::max(1u, e.retry_after_s);
            const std::string why = "rate limited, retry in " + std::to_string(s) + " s";
            reply(m, 429, why.c_str(), s * 1000);
            return;
        }
        case error_code::not_found:
            ++_stats.refused_gone;
            reply(m, 404, "session ended");
            return;
        case error_code::invalid:
            ++_stats.refused_invalid;
            reply(m, 400, e.what());
            return;
        }
    };

    if (it != _by_token.end()) {
        binding& b = it->second;
        if (b.addr == at) {
            b.last_seen = now;
            ++_stats.refreshed;
            reply(m);
            return;
        }
        if (now - b.last_seen < std::chrono::seconds(_cfg.rebind_after_s)) {
            ++_stats.refused_in_use;
            reply(m, 409, "token in use at another address");
            return;
        }
        // A move adds a listener at the new address: charged there before
        // the old one goes (a refused move leaves the old listener as it was).
        if (_by_addr.find(at) == _by_addr.end() && source_refused()) return;
        // The old address stopped asking: a NAT rebinding (or the listener
        // moved). The old listener goes, the new address joins below.
        try {
            _cp.state().listener_del(b.addr.session_id, b.addr.listener());
        } catch (const action_error&) {
        }
        unbind(tok);
        ++_stats.rebound;
    }

    if (auto a = _by_addr.find(at); a != _by_addr.end()) {
        // This address is joined with another token of the session: the
        // listener renews its token; one listener, the newer token. It must
        // still be in the table: its session may have ended and come back
        // since (a fleet edge's trunk session, when the trunk key went and
        // came again), and then it is added again and answered as a join.
        const token_ref old = a->second;
        auto o = _by_token.find(old);
        const uint8_t tier = o != _by_token.end() ? o->second.tier : r.tier;
        if (tier != r.tier) {
            // The new token grants another tier (docs/join.md "Renewal and
            // tier"): the listener moves there in one action
            // (listener_set_tier: no publish falls between a removal and an
            // add), or the request is refused as a join at that tier would
            // be and nothing changes: the listener stays at its old tier,
            // bound to its old token (still its own, until its expiry). A
            // move is a join's work for the control plane (admission's join
            // rates, a journal record, a publish), so it is charged to the
            // source's bucket first (not to its bindings: it holds this one
            // already), which also bounds a client flipping between two
            // tokens.
            if (source_refused(true)) return;
            try {
                _cp.state().listener_set_tier(at.session_id, la, r.tier);
            } catch (const action_error& e) {
                if (e.code != error_code::not_found) {
                    refuse(e);
                    return;
                }
                // Not in the table (its session ended and came back, or
                // ended for good): added at the new tier, as a renewal, or
                // refused as a join there (404 once the session is gone).
                try {
                    _cp.state().listener_add(at.session_id, listener_spec{la.ip, la.port, r.tier, true, la.ip6});
                } catch (const action_error& e2) {
                    unbind(old);
                    refuse(e2);
                    return;
                }
            }
            unbind(old);
            bind(tok, binding{at, r.tier, now, r.expiry});
            ++_stats.renewed;
            wait.push_back({m, at, {}});
            return;
        }
        bool added = false, gone = false;
        try {
            _cp.state().listener_add(at.session_id, listener_spec{la.ip, la.port, tier, true, la.ip6});
            added = true;
        } catch (const action_error& e) {
            gone = e.code != error_code::exists;   // refused now: handled as a new join below
        }
        if (!gone) {
            unbind(old);
            bind(tok, binding{at, tier, now, r.expiry});
            ++_stats.renewed;
            if (added) wait.push_back({m, at, {}});
            else reply(m);
            return;
        }
        unbind(old);
    }

    if (source_refused()) return;
    try {
        _cp.state().listener_add(at.session_id, listener_spec{la.ip, la.port, r.tier, true, la.ip6});
    } catch (const action_error& e) {
        refuse(e);
        return;
    }
    bind(tok, binding{at, r.tier, now, r.expiry});
    ++_stats.joined;
    wait.push_back({m, at, {}});
}

void join_desk::answer_resolved(clock_t_::time_point now) {
    std::vector<listener_addr> peers;
    peers.reserve(_pending.size());
    for (const auto& p : _pending) peers.push_back(p.at.listener());
    const std::vector<uint8_t> ok = _cp.state().next_hops_resolved(peers);
    size_t keep = 0;
    for (size_t i = 0; i < _pending.size(); ++i) {
        auto& p = _pending[i];
        const bool resolved = ok[i] != 0;
        if (resolved || now >= p.deadline) {
            if (!resolved) ++_stats.unresolved;
            reply(p.m);
        } else {
            _pending[keep++] = p;
        }
    }
    _pending.resize(keep);
}

void join_desk::bind(const token_ref& t, const binding& b) {
    _by_token[t] = b;
    _by_addr[b.addr] = t;
    ++_per_session[b.addr.session_id];
    ++_sources[source_of(b.addr)].bindings;
}

void join_desk::unbind(const token_ref& t) {
    auto it = _by_token.find(t);
    if (it == _by_token.end()) return;
    const addr_ref& a = it->second.addr;
    if (auto s = _per_session.find(a.session_id); s != _per_session.end() && --s->second == 0) _per_session.erase(s);
    if (auto s = _sources.find(source_of(a)); s != _sources.end() && s->second.bindings > 0)
        --s->second.bindings;   // the entry goes at the sweep, once its bucket is full again
    _by_addr.erase(a);
    _by_token.erase(it);
}

ipv6_addr join_desk::source_of(const addr_ref& a) noexcept {
    if (a.is_v4()) return a.ip;
    ipv6_addr p{};
    std::memcpy(p.data(), a.ip.data(), 8);   // the /64: what one subscriber is given (RFC 6177)
    return p;
}

unsigned join_desk::source_admit(const addr_ref& a, clock_t_::time_point now, bool& rate, bool holds) {
    source_state& s = _sources[source_of(a)];
    if (!holds && s.bindings >= _cfg.max_bindings_per_source) {
        // One of them frees within a consent timeout if it goes silent.
        rate = false;
        return std::max(1u, _cfg.consent_timeout_s);
    }
    const double burst = std::max(1u, _cfg.source_join_burst);
    const double per_s = std::max(1u, _cfg.source_join_rate_per_s);
    if (s.refilled == clock_t_::time_point{}) {
        s.tokens = burst;   // a source seen for the first time starts full
    } else {
        const double dt = std::chrono::duration<double>(now - s.refilled).count();
        s.tokens = std::min(burst, s.tokens + std::max(0.0, dt) * per_s);
    }
    s.refilled = now;
    if (s.tokens < 1.0) {
        rate = true;
        return std::max(1u, static_cast<unsigned>(std::ceil((1.0 - s.tokens) / per_s)));
    }
    s.tokens -= 1.0;
    return 0;
}

void join_desk::spend(const token_ref& t, uint32_t expiry) {
    if (_spent.contains(t)) return;
    if (_spent.size() >= _cfg.max_spent_tokens) {
        // Full: the leave is still done (the client asked to stop hearing
        // us), the token is not remembered. Its next joins meet the source
        // limits like anyone's; the counter tells the operator to raise
        // join.max_spent_tokens.
        ++_stats.spent_full;
        return;
    }
    _spent.emplace(t, expiry);
    _spent_by_expiry.emplace(expiry, t);
}

void join_desk::sweep(clock_t_::time_point now) {
    const auto limit = std::chrono::seconds(_cfg.consent_timeout_s);
    std::vector<token_ref> gone;
    // Bindings of a session that ended go too: their refreshes must not be
    // answered success for a stream that is not there (a fleet edge ends a
    // session when its trunk goes). One lookup per distinct session.
    // The sessions come from the per-session counts (O(sessions)); a search
    // of a vector per binding cost O(bindings x sessions) here before.
    std::unordered_set<uint32_t> ended;
    for (const auto& [id, n] : _per_session)
        if (!_cp.state().session(id)) ended.insert(id);
    std::vector<token_ref> orphaned;
    for (const auto& [t, b] : _by_token) {
        if (!ended.empty() && ended.contains(b.addr.session_id))
            orphaned.push_back(t);
        else if (now - b.last_seen >= limit)
            gone.push_back(t);
    }
    for (const auto& t : orphaned) {
        unbind(t);   // its listener went with the session
        ++_stats.session_gone;
    }
    for (const auto& t : gone) {
        const addr_ref a = _by_token[t].addr;
        try {
            _cp.state().listener_del(a.session_id, a.listener(), listener_removal::consent_expired);
        } catch (const action_error&) {
        }
        unbind(t);
        ++_stats.consent_expired;
    }
    // Spent tokens past their expiry: the data plane refuses those tokens
    // before any MAC, nothing left to remember.
    const uint32_t unix_now = wall();
    if (unix_now >= _forgotten_below) {
        _forgotten_below = unix_now;
    } else if (_forgotten_below - unix_now > clock_step_back_s) {
        // The wall clock stepped back (an operator, NTP stepping a clock
        // that ran ahead): held at the old bound, every token the issuer
        // mints now for less than the step would be refused. The bound
        // follows the clock; a spent token that expired in the skipped
        // interval (under the wrong clock) may join once more, under the
        // source limits.
        spdlog::warn("join desk: the wall clock stepped back {} s; spent tokens that expired in that interval are "
                     "forgotten and may join once more",
                     _forgotten_below - unix_now);
        _forgotten_below = unix_now;
    }
    while (!_spent_by_expiry.empty() && _spent_by_expiry.begin()->first < _forgotten_below) {
        _spent.erase(_spent_by_expiry.begin()->second);
        _spent_by_expiry.erase(_spent_by_expiry.begin());
    }
    _nb_spent.store(_spent.size(), std::memory_order_relaxed);
    // Sources that hold nothing and whose bucket is full again are as good
    // as unseen. Walked only when the table holds more than twice the
    // bindings (+1024): a walk of 1.5 M sources cost ~240 ms of CPU
    // (bench_desk_sweep, BM_sweep_sources), as much as the search this
    // sweep no longer does, so it is paid only when idle sources, which
    // recent requests made, outnumber the bound ones. The table stays
    // within 2 x bindings + 1024 entries, plus the sources that joined
    // within one bucket refill (source_join_burst / source_join_rate_per_s).
    if (_sources.size() <= 2 * _by_token.size() + 1024) return;
    const double burst = std::max(1u, _cfg.source_join_burst);
    const double per_s = std::max(1u, _cfg.source_join_rate_per_s);
    std::erase_if(_sources, [&](const auto& kv) {
        const source_state& s = kv.second;
        if (s.bindings > 0) return false;
        if (s.refilled == clock_t_::time_point{}) return true;
        return s.tokens + std::chrono::duration<double>(now - s.refilled).count() * per_s >= burst;
    });
}

// The answer, built in the request's own mbuf: a success (code 0) or an
// error response, never longer than the request, signed with its password.
void join_desk::reply(rte_mbuf* m, unsigned code, const char* reason, uint32_t retry_after_ms) {
    const dp::dp_join_request r = dp::load_join_request(m);
    // Every answer carries the cookie of the address it goes to: a client
    // echoes the last one it got.
    uint8_t cookie[stun::cookie_len];
    make_cookie(r, _slot, cookie);
    uint8_t* msg = rte_pktmbuf_mtod(m, uint8_t*) + r.stun_off;
    uint8_t txid[stun::txid_len];
    std::memcpy(txid, msg + 8, sizeof txid);
    stun::mapped_address seen;
    seen.family = r.ipv6 ? stun::family_ipv6 : stun::family_ipv4;
    std::memcpy(seen.addr, r.ipv6 ? r.src : r.src + 12, r.ipv6 ? 16 : 4);
    seen.port = port_of(r);
    const size_t len =
        code == 0 ? stun::build_success(msg, r.stun_len, txid, seen, r.password, dp::join_password_len, cookie)
                  : stun::build_error(msg, r.stun_len, txid, static_cast<uint16_t>(code), reason, retry_after_ms,
                                      r.password, dp::join_password_len, cookie);
    if (len == 0) {
        ++_stats.reply_unbuildable;
        rte_pktmbuf_free(m);
        return;
    }
    turn_around(m, r, static_cast<uint16_t>(len));
    send(m);
}

void join_desk::send(rte_mbuf* m) {
    if (_sh.join_reply_ring == nullptr || rte_ring_sp_enqueue(_sh.join_reply_ring, m) != 0) {
        ++_stats.reply_ring_full;
        rte_pktmbuf_free(m);
    }
}

}  // namespace stentor::control
