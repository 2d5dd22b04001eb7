#include "trunks.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "etcd_client.h"
#include "log_escape.h"
#include "trunk_key.h"

namespace stentor::fleet {

// inet_pton reads c_str(): a NUL inside the record's string would end the
// address there ("198.18.0.1\0junk" read as 198.18.0.1), so refuse it.
std::optional<uint32_t> parse_ipv4(const std::string& s) {
    in_addr a{};
    if (s.find('\0') != std::string::npos || inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
    return ntohl(a.s_addr);
}

std::optional<addr6> parse_ipv6(const std::string& s) {
    addr6 a{};
    if (s.find('%') != std::string::npos || s.find('\0') != std::string::npos ||
        inet_pton(AF_INET6, s.c_str(), a.data()) != 1)
        return std::nullopt;
    return a;
}

namespace {

// The first advertised address of a family, or nullopt and *why.
std::optional<uint32_t> first4(const relay_record& r, std::string* why) {
    if (r.addresses.empty()) {
        *why = fmt::format("relay {} advertises no IPv4 address", escape_for_log(r.id));
        return std::nullopt;
    }
    auto ip = parse_ipv4(r.addresses.front());
    if (!ip)
        *why = fmt::format("relay {}: address \"{}\" is not IPv4", escape_for_log(r.id),
                           escape_for_log(r.addresses.front()));
    return ip;
}
std::optional<addr6> first6(const relay_record& r, std::string* why) {
    if (r.addresses6.empty()) {
        *why = fmt::format("relay {} advertises no IPv6 address", escape_for_log(r.id));
        return std::nullopt;
    }
    auto ip = parse_ipv6(r.addresses6.front());
    if (!ip)
        *why = fmt::format("relay {}: address \"{}\" is not IPv6", escape_for_log(r.id),
                           escape_for_log(r.addresses6.front()));
    return ip;
}

}  // namespace

std::optional<trunk_ends> trunk_ends_of(const relay_record* origin, const relay_record& edge, std::string* why) {
    std::string w;
    auto fail = [&](const std::string& reason) -> std::optional<trunk_ends> {
        *why = fmt::format("trunk {} -> {} ({}): {}", origin != nullptr ? escape_for_log(origin->id) : "this relay",
                           escape_for_log(edge.id), escape_for_log(edge.trunk_family), reason);
        return std::nullopt;
    };
    trunk_ends t;
    bool v6 = edge.trunk_family == "ipv6";
    if (edge.trunk_family != "ipv4") {
        if (origin == nullptr) return fail("this relay's own record is not in the registry yet");
        // auto: IPv6 when both ends advertise an IPv6 address.
        if (edge.trunk_family == "auto") v6 = !origin->addresses6.empty() && !edge.addresses6.empty();
    }
    t.ipv6 = v6;
    if (v6) {
        const auto e = first6(edge, &w);
        if (!e) return fail(w);
        const auto o = first6(*origin, &w);
        if (!o) return fail(w);
        t.edge6 = *e;
        t.origin6 = *o;
        return t;
    }
    const auto e = first4(edge, &w);
    if (!e) return fail(w);
    t.edge = *e;
    if (origin != nullptr) {
        const auto o = first4(*origin, &w);
        if (!o) return fail(w);
        t.origin = *o;
    }
    return t;
}

namespace {

std::string addr_of(const trunk_ends& e, bool edge_side) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (e.ipv6) {
        inet_ntop(AF_INET6, (edge_side ? e.edge6 : e.origin6).data(), buf, sizeof buf);
    } else {
        const in_addr a{htonl(edge_side ? e.edge : e.origin)};
        inet_ntop(AF_INET, &a, buf, sizeof buf);
    }
    return buf;
}

}  // namespace

namespace {

// Why relay `peer` and this relay (auth on or off) cannot run a trunk
// together, or "" when they can: both authenticate (the peer with a
// well-formed epoch when it is the origin) or neither does.
std::string auth_mismatch(bool auth, const relay_record& peer, bool peer_is_origin) {
    constexpr const char* fix = "give every relay of the fleet the same [fleet] trunk_key_file";
    if (auth && !peer.trunk_auth)
        return fmt::format("this relay authenticates its trunks ([fleet] trunk_key_file) but {}'s record says "
                           "trunk_auth false: {}",
                           escape_for_log(peer.id), fix);
    if (!auth && peer.trunk_auth)
        return fmt::format("{}'s record says trunk_auth true but this relay runs unauthenticated trunks "
                           "(allow_unauthenticated_trunks): {}",
                           escape_for_log(peer.id), fix);
    if (auth && peer_is_origin && !parse_trunk_epoch(peer.trunk_epoch))
        return fmt::format("{}'s record has no well-formed trunk_epoch (\"{}\", not 16 lowercase hex digits): no "
                           "key can be derived for its trunks",
                           escape_for_log(peer.id), escape_for_log(peer.trunk_epoch, 32));
    return {};
}

}  // namespace

trunk_plan plan_trunks(const std::string& self, const std::map<std::string, relay_record>& relays,
                       const std::vector<trunk_record>& trunks, const peer_allowlist& peers,
                       const std::map<std::string, relay_record>& unleased, bool auth) {
    trunk_plan p;
    const auto me = relays.find(self);
    const relay_record* self_rec = me == relays.end() ? nullptr : &me->second;
    const auto refuse = [&](trunk_refusal_reason r, std::string what) { p.refused.push_back({r, std::move(what)}); };
    for (const auto& t : trunks) {
        if (t.udp_port == 0) {
            p.problems.push_back(fmt::format("trunk {}/{}: UDP port 0", t.session, escape_for_log(t.edge)));
            continue;
        }
        const bool source = std::find(t.origins.begin(), t.origins.end(), self) != t.origins.end();
        // The fleet's convention: a session has one UDP port on every relay
        // (the edge makes it on the trunk's port; a director writes the
        // port the origins' records list). So a source sends only a session
        // its own record lists, and only to that port: a trunk record
        // naming another port would aim the stream at any port of an
        // address inside trunk_peers. Refused, counted once, said once.
        std::optional<uint16_t> own_port;
        if (source && t.edge != self && self_rec != nullptr)
            for (const auto& [id, port] : self_rec->sessions)
                if (id == t.session) own_port = port;
        if (own_port && *own_port != t.udp_port)
            refuse(trunk_refusal_reason::trunk_port_mismatch,
                   fmt::format("trunk of session {} to {}: UDP port {} is not the session's port on this relay ({})",
                               t.session, escape_for_log(t.edge), t.udp_port, *own_port));
        if (source && t.edge != self && own_port == t.udp_port) {
            if (auto e = relays.find(t.edge); e != relays.end()) {
                std::string why;
                if (const auto ends = trunk_ends_of(self_rec, e->second, &why)) {
                    const bool inside = ends->ipv6 ? peers.allows(ends->edge6) : peers.allows(ends->edge);
                    if (!inside) {
                        refuse(trunk_refusal_reason::edge_outside_trunk_peers,
                               fmt::format("trunk of session {} to {}: edge address {} is outside fleet.trunk_peers ({})",
                                           t.session, escape_for_log(t.edge), addr_of(*ends, true), peers.describe()));
                    } else if (auto m = auth_mismatch(auth, e->second, false); !m.empty()) {
                        refuse(trunk_refusal_reason::trunk_auth_mismatch,
                               fmt::format("trunk of session {} to {}: {}", t.session, escape_for_log(t.edge), m));
                    } else {
                        trunk_send s{t.session, ends->ipv6 ? 0 : ends->edge, t.udp_port, t.edge};
                        if (ends->ipv6) s.ip6 = ends->edge6;
                        p.sends.push_back(std::move(s));
                    }
                } else {
                    p.problems.push_back(why);
                }
            } else if (unleased.count(t.edge)) {
                refuse(trunk_refusal_reason::relay_without_lease,
                       fmt::format("trunk of session {} to {}: the edge's registry record has no lease", t.session,
                                   escape_for_log(t.edge)));
            }
        }
        if (t.edge != self) continue;
        std::vector<trunk_flow> flows;
        size_t others = 0, refused = 0;
        for (const auto& o : t.origins) {
            if (o == self) continue;   // a record naming the edge as its own origin: nothing to receive
            ++others;
            auto r = relays.find(o);
            if (r == relays.end()) {
                if (unleased.count(o)) {
                    ++refused;
                    refuse(trunk_refusal_reason::relay_without_lease,
                           fmt::format("trunk of session {} from {}: the origin's registry record has no lease",
                                       t.session, escape_for_log(o)));
                }
                continue;   // not live: its flow goes; it comes back when the relay does
            }
            // The edge's own record decides the family: without it in view
            // (not registered yet) the flows wait, as the origins' sends do
            // for an edge they cannot see.
            if (self_rec == nullptr) continue;
            std::string why;
            const auto ends = trunk_ends_of(&r->second, *self_rec, &why);
            if (!ends) {
                p.problems.push_back(why);
                continue;
            }
            if (!(ends->ipv6 ? peers.allows(ends->origin6) : peers.allows(ends->origin))) {
                ++refused;
                refuse(trunk_refusal_reason::origin_outside_trunk_peers,
                       fmt::format("trunk of session {} from {}: origin address {} is outside fleet.trunk_peers ({})",
                                   t.session, escape_for_log(o), addr_of(*ends, false), peers.describe()));
                continue;
            }
            if (auto m = auth_mismatch(auth, r->second, true); !m.empty()) {
                ++refused;
                refuse(trunk_refusal_reason::trunk_auth_mismatch,
                       fmt::format("trunk of session {} from {}: {}", t.session, escape_for_log(o), m));
                continue;
            }
            trunk_flow f{t.session, ends->ipv6 ? 0 : ends->origin, t.udp_port, std::nullopt, o};
            if (ends->ipv6) f.ip6 = ends->origin6;
            if (auth) f.epoch = parse_trunk_epoch(r->second.trunk_epoch);
            // The SSRC its speakers registered with, when it is one: else the
            // flow takes any (a session with several speakers, or none known).
            if (auto s = r->second.ssrcs.find(t.session); s != r->second.ssrcs.end() && s->second.size() == 1)
                f.ssrc = s->second.front();
            flows.push_back(std::move(f));
        }
        // Two origins whose records resolve to one flow (the same source
        // address; the port is the session's): the edge would hold one
        // speaker and one key for both, and whichever apply came last would
        // decide whose packets authenticate. Neither is taken, whatever the
        // order they are listed in; each is counted once and said once.
        // (The same origin named twice is one flow, not a clash.)
        {
            std::map<std::pair<uint32_t, std::optional<addr6>>, std::set<std::string>> by_source;
            for (const auto& f : flows) by_source[{f.ip, f.ip6}].insert(f.origin);
            std::set<std::string> clash;
            for (const auto& [src, names] : by_source) {
                if (names.size() < 2) continue;
                std::string all;
                for (const auto& n : names) all += (all.empty() ? "" : ", ") + escape_for_log(n);
                char buf[INET6_ADDRSTRLEN] = {};
                if (src.second) {
                    inet_ntop(AF_INET6, src.second->data(), buf, sizeof buf);
                } else {
                    const in_addr a{htonl(src.first)};
                    inet_ntop(AF_INET, &a, buf, sizeof buf);
                }
                for (const auto& n : names) {
                    clash.insert(n);
                    ++refused;
                    refuse(trunk_refusal_reason::origin_address_shared,
                           fmt::format("trunk of session {} from {}: origin address {} port {} is that of several origins "
                                       "of the trunk ({}): an edge can hold one key for it, so none is taken",
                                       t.session, escape_for_log(n), buf, t.udp_port, all));
                }
            }
            if (!clash.empty())
                flows.erase(std::remove_if(flows.begin(), flows.end(),
                                           [&](const trunk_flow& f) { return clash.count(f.origin) != 0; }),
                            flows.end());
        }
        // Every origin refused: the record changes nothing here (no session
        // on its port either). Origins merely not live yet keep it, as before.
        if (others > 0 && refused == others) continue;
        if (auto [it, fresh] = p.sessions.emplace(t.session, t.udp_port); !fresh && it->second != t.udp_port) {
            p.problems.push_back(fmt::format("trunk {}/{}: UDP port {} differs from {}", t.session,
                                             escape_for_log(t.edge), t.udp_port, it->second));
            continue;
        }
        for (auto& f : flows) p.flows.push_back(std::move(f));
    }
    std::sort(p.sends.begin(), p.sends.end());
    p.sends.erase(std::unique(p.sends.begin(), p.sends.end()), p.sends.end());
    std::sort(p.flows.begin(), p.flows.end());
    p.flows.erase(std::unique(p.flows.begin(), p.flows.end()), p.flows.end());
    std::sort(p.problems.begin(), p.problems.end());
    p.problems.erase(std::unique(p.problems.begin(), p.problems.end()), p.problems.end());
    std::sort(p.refused.begin(), p.refused.end());
    p.refused.erase(std::unique(p.refused.begin(), p.refused.end()), p.refused.end());
    return p;
}

trunk_watch::trunk_watch(trunk_watch_options o, std::function<void(const trunk_plan&)> apply)
    : _o(std::move(o)), _apply(std::move(apply)) {}

trunk_watch::~trunk_watch() { stop(); }

void trunk_watch::start() {
    _stop = false;
    _watch_thread = std::thread([this] { watch_loop(); });
    _apply_thread = std::thread([this] { apply_loop(); });
}

void trunk_watch::stop() {
    _stop = true;
    _cv.notify_all();
    if (_watch_thread.joinable()) _watch_thread.join();
    if (_apply_thread.joinable()) _apply_thread.join();
}

trunk_watch_status trunk_watch::status() const {
    std::lock_guard lk(_mu);
    trunk_watch_status s = _st;
    s.records_refused = _refused.count();
    s.relays = _relays.size();
    s.trunks = _trunks.size();
    return s;
}

void trunk_watch::on_key(const std::string& key, const std::string* value, int64_t mod_revision, int64_t lease) {
    const std::string relays = relays_prefix(_o.prefix), trunks = trunks_prefix(_o.prefix);
    if (key.rfind(relays, 0) == 0) {
        const std::string id = key.substr(relays.size());
        std::string why;
        std::optional<relay_record> r;
        if (value != nullptr) r = relay_record::from_json(*value, &why);
        // Kept by the key's name: a record whose "id" is another name would
        // outlive its key's delete (relays/zz saying "ghost") or stand in for
        // a real relay (saying "edge-1"). Refused, as one unreadable.
        if (r && r->id != id) {
            why = fmt::format("the record says id \"{}\", not its key's name", escape_for_log(r->id));
            r.reset();
        }
        if (value == nullptr || r) _refused.forget(key);
        _unleased.erase(id);
        if (r && lease == 0) {
            // A registrar always writes its record under its lease, so the
            // key goes when the relay does. One without a lease was written
            // by someone else and would stay for ever: set aside, never
            // acted on (docs/security.md "The registry").
            _relays.erase(id);
            _unleased[id] = std::move(*r);
        } else if (r) {
            _relays[id] = std::move(*r);
        } else {
            _relays.erase(id);   // gone, or unreadable: neither sent to nor received from
            if (value != nullptr) refuse(key, fmt::format("registry key {}: {}", escape_for_log(key), why));
        }
    } else if (key.rfind(trunks, 0) == 0) {
        const std::string rest = key.substr(trunks.size());   // <session>/<edge>
        const auto slash = rest.find('/');
        if (slash == std::string::npos || slash == 0) return;
        // trunk_key()'s form only: an alias ("01", "+1", " 1") acted on
        // would never be deleted by the idle delete, which names the
        // canonical key.
        const auto s = parse_session_key(std::string_view(rest).substr(0, slash));
        if (!s) {
            if (value != nullptr)
                refuse(key, fmt::format("trunk key {}: not <session 1..4294967295>/<edge>", escape_for_log(key)));
            else
                _refused.forget(key);
            return;
        }
        const std::pair<uint32_t, std::string> k{*s, rest.substr(slash + 1)};
        std::string why;
        std::optional<trunk_record> t;
        if (value != nullptr) t = trunk_record::from_json(*value, &why);
        if (t && (t->session != k.first || t->edge != k.second)) {
            why = fmt::format("the record says session {} edge {}", t->session, escape_for_log(t->edge));
            t.reset();
        }
        if (t) {
            _trunks[k] = std::move(*t);
            _trunk_rev[k] = mod_revision;
        } else {
            _trunks.erase(k);
            _trunk_rev.erase(k);
            if (value != nullptr) refuse(key, fmt::format("trunk key {}: {}", escape_for_log(key), why));
        }
        if (value == nullptr || t) _refused.forget(key);
    }
}

void trunk_watch::refuse(const std::string& key, std::string why) {
    _st.last_error = std::move(why);
    _refused.refuse(key);   // once per key until deleted or mended
}

void trunk_watch::replan() {
    std::vector<trunk_record> ts;
    ts.reserve(_trunks.size());
    for (const auto& [k, t] : _trunks) ts.push_back(t);
    trunk_plan p = plan_trunks(_o.relay_id, _relays, ts, _o.peers, _unleased, _o.trunk_auth);
    if (!(p == _plan) || !_st.loaded) {
        _plan = std::move(p);
        ++_plan_version;
        _cv.notify_all();
    }
}

void trunk_watch::load_full(etcd_client& c, int64_t* revision) {
    const auto relays = c.range_prefix(relays_prefix(_o.prefix), revision);
    int64_t rev2 = 0;
    const auto trunks = c.range_prefix(trunks_prefix(_o.prefix), &rev2);
    // Two ranges: the watch starts after the older revision, so nothing
    // between them is missed (a key seen twice is applied twice: harmless).
    *revision = std::min(*revision, rev2);
    std::lock_guard lk(_mu);
    _relays.clear();
    _unleased.clear();
    _trunks.clear();
    _trunk_rev.clear();
    // Refusals of keys still there stay counted once; those of keys gone go.
    _refused.keep_only(relays, trunks);
    for (const auto& kv : relays) on_key(kv.key, &kv.value, kv.mod_revision, kv.lease);
    for (const auto& kv : trunks) on_key(kv.key, &kv.value, kv.mod_revision, kv.lease);
    replan();
    _st.loaded = true;
}

void trunk_watch::watch_loop() {
    etcd_client c(_o.etcd, std::chrono::milliseconds(1000));
    while (!_stop) {
        try {
            int64_t rev = 0;
            load_full(c, &rev);
            // One watch over the whole prefix (relays and trunks; directors'
            // keys are ignored): a few keys per relay, never one per listener.
            c.watch_prefix(
                _o.prefix + "/", rev + 1,
                [this](const std::vector<etcd_event>& evs, int64_t) {
                    std::lock_guard lk(_mu);
                    for (const auto& e : evs) on_key(e.kv.key, e.deleted ? nullptr : &e.kv.value, e.kv.mod_revision, e.kv.lease);
                    replan();
                    return true;
                },
                _stop, _o.watch_idle);
        } catch (const std::exception& e) {
            std::lock_guard lk(_mu);
            _st.last_error = e.what();
        }
        if (_stop) break;
        // etcd away or the stream broke: the plan applied last stays (the
        // relay keeps forwarding its trunks); read the whole view again soon.
        std::unique_lock lk(_mu);
        ++_st.watch_restarts;
        _cv.wait_for(lk, std::chrono::milliseconds(200), [this] { return _stop.load(); });
    }
}

bool trunk_watch::delete_trunk(uint32_t session, const std::string& edge) {
    int64_t rev = 0;
    {
        std::lock_guard lk(_mu);
        auto it = _trunk_rev.find({session, edge});
        if (it == _trunk_rev.end()) return false;
        rev = it->second;
    }
    // Rare (once per idle trunk): a client of its own, not the watch's.
    etcd_client c(_o.etcd, std::chrono::milliseconds(1000));
    return c.delete_if_unchanged(trunk_key(_o.prefix, session, edge), rev);
}

void trunk_watch::apply_loop() {
    uint64_t applied = 0;
    auto last = std::chrono::steady_clock::now();
    std::unique_lock lk(_mu);
    while (!_stop) {
        _cv.wait_for(lk, _o.retry, [&] { return _stop || _plan_version != applied; });
        if (_stop) break;
        if (_plan_version == 0) continue;   // no view yet: nothing to apply (never an empty plan by default)
        const auto now = std::chrono::steady_clock::now();
        if (_plan_version == applied && now - last < _o.retry) continue;
        const trunk_plan p = _plan;
        applied = _plan_version;
        last = now;
        lk.unlock();
        _apply(p);
        lk.lock();
        ++_st.applies;
    }
}

}  // namespace stentor::fleet
