#include "fleet_trunks.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "action_error.h"
#include "log_escape.h"
#include "state.h"
#include "trunk_key.h"

namespace stentor::control {

namespace {
// "198.18.0.3:40000" or "[2001:db8::3]:40000"
std::string ep(uint32_t ip, const std::optional<fleet::addr6>& ip6, unsigned port) {
    return format_peer(ip, ip6 ? std::optional<ipv6_addr>(*ip6) : std::nullopt, port);
}
std::optional<ipv6_addr> v6(const std::optional<fleet::addr6>& a) {
    return a ? std::optional<ipv6_addr>(*a) : std::nullopt;
}
// The listener and speaker address rules (config.h check_peer, check_peer6)
// refused it: the action says "ip: ... refused: why".
bool address_rule(const action_error& e) {
    return e.code == error_code::invalid && std::string_view(e.what()).rfind("ip: ", 0) == 0;
}
}  // namespace

trunk_reconciler::trunk_reconciler(relay_state& st, std::chrono::seconds idle, delete_fn delete_key,
                                   trunk_auth_config auth, size_t max_sends)
    : _st(st), _auth(std::move(auth)), _idle(idle), _delete_key(std::move(delete_key)),
      _max_sends(std::max<size_t>(1, max_sends)) {}

srtp_key_spec trunk_reconciler::trunk_key(uint32_t session, const std::string& origin, uint64_t epoch) const {
    const fleet::trunk_master m =
        fleet::derive_trunk_key({_auth.secret->data(), _auth.secret->size()}, session, origin, epoch);
    srtp_key_spec k;
    k.id = fleet::trunk_key_id(epoch);
    k.suite = srtp::suite::aead_aes_128_gcm;
    static_assert(fleet::trunk_master_len == srtp::master_len(srtp::suite::aead_aes_128_gcm));
    k.master = secure_bytes(m.bytes.size());
    std::memcpy(k.master.data(), m.bytes.data(), m.bytes.size());
    return k;
}

bool trunk_reconciler::key_session(uint32_t session) {
    try {
        if (_st.trunk_key_set(session, trunk_key(session, _auth.self, _auth.epoch)))
            spdlog::info("fleet: trunk: session {}: its trunk copies are protected with key {} (AEAD_AES_128_GCM)",
                         session, fleet::trunk_key_id(_auth.epoch));
        _keyed.insert(session);
        return true;
    } catch (const std::exception& e) {   // action_error (no session yet), or HKDF refused
        refused(fmt::format("trunk key of session {}", session), e.what());
        return false;
    }
}

void trunk_reconciler::key_flow(const flow_key& k, const std::string& origin, uint64_t epoch) {
    const auto have = _flow_epoch.find(k);
    if (have != _flow_epoch.end() && have->second == epoch) return;
    const auto& [s, ip, port, ip6, ssrc] = k;
    const srtp_key_owner owner{s, std::pair<uint32_t, unsigned>{ip, port}, v6(ip6)};
    const std::string id = fleet::trunk_key_id(epoch);
    const std::string what = fmt::format("trunk key {} of the flow of session {} from {} ({})", id, s,
                                         fleet::escape_for_log(origin), ep(ip, ip6, port));
    const auto del = [&](const std::string& old) {
        try {
            _st.srtp_key_del(owner, old);
        } catch (const action_error& e) {
            if (e.code != error_code::not_found) throw;
        }
    };
    try {
        // A restarted origin's new key first, then the old one goes, so the
        // packets of both epochs authenticate while the origin moves (the
        // ids differ: the key id holds the whole epoch).
        const std::optional<std::string> old =
            have != _flow_epoch.end() ? std::optional(fleet::trunk_key_id(have->second)) : std::nullopt;
        try {
            _st.srtp_key_add(owner, trunk_key(s, origin, epoch));
        } catch (const action_error& e) {
            if (e.code != error_code::exists) throw;   // added by an apply whose removal of the old key failed
        }
        if (old) del(*old);
        if (old) ++_stats.flow_key_changes;
        _flow_epoch[k] = epoch;
        spdlog::info("fleet: trunk: session {} from {} ({}): authenticated with key {}{}", s,
                     fleet::escape_for_log(origin), ep(ip, ip6, port), id,
                     old ? fmt::format(" (was {}: the origin restarted)", *old) : std::string());
    } catch (const std::exception& e) {
        refused(what, e.what());
    }
}

trunk_apply_stats trunk_reconciler::stats() const {
    std::lock_guard lk(_mu);
    return _stats;
}

void trunk_reconciler::refused(const std::string& what, const std::string& why) {
    ++_stats.refusals;
    if (tell(what + ": " + why)) spdlog::warn("fleet: trunk: {} refused ({}); retrying", what, why);
}

bool trunk_reconciler::tell(const std::string& line) {
    if (_told.count(line)) {
        _told_now.insert(line);   // still there: stays told
        return false;
    }
    if (_told_now.size() >= max_told) {   // what this apply met: _told stays under 2 × max_told
        if (!_told_full)
            spdlog::warn("fleet: trunk: {} refusals or problems already logged: new ones are counted, not logged, "
                         "until some clear",
                         max_told);
        _told_full = true;
        return false;
    }
    _told.insert(line);
    _told_now.insert(line);
    return true;
}

void trunk_reconciler::apply(const fleet::trunk_plan& want) {
    std::lock_guard lk(_mu);
    ++_stats.applies;
    std::set<send_key> want_sends;
    std::map<send_key, std::string> edge_of;
    for (const auto& s : want.sends) {
        want_sends.insert({s.session, s.ip, s.port, s.ip6});
        edge_of[{s.session, s.ip, s.port, s.ip6}] = s.edge;
    }
    // What the relay's own rules refuse never reaches the actions below:
    // counted and logged once when it appears, again only if it went away
    // and came back (a record rewritten to an allowed address and back).
    std::set<fleet::trunk_refusal> refused_now(want.refused.begin(), want.refused.end());
    // At most _max_sends trunk listeners per session: each is a stream a
    // trunk record alone makes this origin send (a registry writer's
    // record per fake edge, one stream each). Those in place stay; new
    // ones fill what is left, in the plan's order; the rest are refused.
    {
        std::map<uint32_t, size_t> per_session;
        for (const auto& k : _sends)
            if (want_sends.count(k)) ++per_session[std::get<0>(k)];
        for (auto it = want_sends.begin(); it != want_sends.end();) {
            size_t& n = per_session[std::get<0>(*it)];
            if (_sends.count(*it)) {
                ++it;
                continue;
            }
            if (n < _max_sends) {
                ++n;
                ++it;
                continue;
            }
            const auto& [s, ip, port, ip6] = *it;
            refused_now.insert({fleet::trunk_refusal_reason::trunk_sends_over_cap,
                                fmt::format("trunk of session {} to {} ({}): the session is sent to {} trunk listeners "
                                            "already (fleet.max_trunk_sends_per_session)",
                                            s, fleet::escape_for_log(edge_of[*it]), ep(ip, ip6, port), _max_sends)});
            it = want_sends.erase(it);
        }
    }
    for (const auto& r : refused_now) {
        if (_refused.count(r)) continue;
        ++_stats.refused[static_cast<size_t>(r.reason)];
        spdlog::warn("fleet: trunk: {}: refused ({}); nothing sent or taken", r.what,
                     fleet::trunk_refusal_names[static_cast<size_t>(r.reason)]);
    }
    _refused = std::move(refused_now);
    _stats.refused_now = _refused.size();
    std::set<flow_key> want_flows;
    for (const auto& f : want.flows) want_flows.insert({f.session, f.ip, f.port, f.ip6, f.ssrc});

    // Undo first: a flow whose SSRC changed goes before it comes back.
    for (auto it = _sends.begin(); it != _sends.end();) {
        if (want_sends.count(*it)) {
            ++it;
            continue;
        }
        const auto& [s, ip, port, ip6] = *it;
        try {
            _st.listener_del(s, listener_addr{ip, port, v6(ip6)});
            spdlog::info("fleet: trunk: session {} no longer sent to {}", s, ep(ip, ip6, port));
        } catch (const action_error& e) {
            if (e.code != error_code::not_found) {   // gone already (its session ended): done
                refused(fmt::format("removing trunk listener {} of session {}", ep(ip, ip6, port), s), e.what());
                ++it;
                continue;
            }
        }
        it = _sends.erase(it);
    }
    // A session this origin no longer sends: its trunk key goes (nothing
    // is protected for nobody).
    std::set<uint32_t> send_sessions;
    for (const auto& s : want.sends) send_sessions.insert(s.session);
    for (auto it = _keyed.begin(); it != _keyed.end();) {
        if (send_sessions.count(*it)) {
            ++it;
            continue;
        }
        try {
            _st.trunk_key_clear(*it);
            spdlog::info("fleet: trunk: session {}: trunk key removed (no trunk sent any more)", *it);
        } catch (const action_error& e) {
            if (e.code != error_code::not_found) {   // the session ended, or its key went with it: done
                refused(fmt::format("removing the trunk key of session {}", *it), e.what());
                ++it;
                continue;
            }
        }
        it = _keyed.erase(it);
    }
    for (auto it = _flows.begin(); it != _flows.end();) {
        if (want_flows.count(*it)) {
            ++it;
            continue;
        }
        const auto& [s, ip, port, ip6, ssrc] = *it;
        try {
            _st.speaker_del(s, listener_addr{ip, port, v6(ip6)});
            spdlog::info("fleet: trunk: session {} no longer taken from {}", s, ep(ip, ip6, port));
        } catch (const action_error& e) {
            if (e.code != error_code::not_found) {
                refused(fmt::format("removing trunk flow {} of session {}", ep(ip, ip6, port), s), e.what());
                ++it;
                continue;
            }
        }
        _flow_epoch.erase(*it);   // its keys went with the speaker
        it = _flows.erase(it);
    }
    for (auto it = _sessions.begin(); it != _sessions.end();) {
        if (want.sessions.count(it->first)) {
            ++it;
            continue;
        }
        if (it->second) {
            try {
                _st.session_end(it->first);
                spdlog::info("fleet: trunk: session {} ended (no trunk to this relay any more)", it->first);
            } catch (const action_error& e) {
                if (e.code != error_code::not_found) {
                    refused(fmt::format("ending trunk session {}", it->first), e.what());
                    ++it;
                    continue;
                }
            }
        }
        it = _sessions.erase(it);
    }

    // Then add what is missing.
    for (const auto& [id, port] : want.sessions) {
        if (_sessions.count(id)) continue;
        session_params sp;
        sp.id = id;
        sp.udp_port = port;
        sp.name = "trunk-" + std::to_string(id);
        sp.trunk = true;
        // The origins' packets go on as they came: with SRTP egress on the
        // origin they are ciphertext, forwarded without decrypting.
        sp.srtp_ingress = srtp_ingress_mode::off;
        sp.srtp_egress = srtp_egress_mode::off;
        try {
            _st.session_create(sp);
            _sessions[id] = true;
            spdlog::info("fleet: trunk: session {} created on UDP {} to receive its trunks", id, port);
        } catch (const action_error& e) {
            const auto have = _st.session(id);
            if (e.code == error_code::exists && have && have->udp_port == port) {
                _sessions[id] = false;   // made by the API or the profile: used, never ended by us
                spdlog::info("fleet: trunk: session {} exists on UDP {}: its trunks feed it", id, port);
            } else {
                refused(fmt::format("creating trunk session {} on UDP {}", id, port), e.what());
            }
        }
    }
    for (const auto& f : want.flows) {
        const flow_key k{f.session, f.ip, f.port, f.ip6, f.ssrc};
        const auto& [s, ip, port, ip6, ssrc] = k;
        if (!_sessions.count(s)) continue;   // its session could not be made: refused above
        if (!_flows.count(k)) {
            try {
                speaker_spec sp{ip, port, ssrc, v6(ip6)};
                sp.trunk = true;
                _st.speaker_add(s, sp);
                _flows.insert(k);
                spdlog::info("fleet: trunk: session {} taken from {} ({}{})", s, fleet::escape_for_log(f.origin),
                             ep(ip, ip6, port), ssrc ? fmt::format(", SSRC {}", *ssrc) : std::string(", any SSRC"));
            } catch (const action_error& e) {
                const auto what = fmt::format("trunk flow of session {} from {} ({})", s,
                                              fleet::escape_for_log(f.origin), ep(ip, ip6, port));
                if (address_rule(e) && !_told.count(what + ": " + e.what())) ++_stats.address_refused;
                refused(what, e.what());
                continue;
            }
        }
        // With trunk authentication the plan has the origin's epoch (it
        // refuses an origin without one); until the key is in, the flow's
        // packets are dropped (they cannot authenticate).
        if (_auth.on() && f.epoch) key_flow(k, f.origin, *f.epoch);
    }
    std::set<uint32_t> unkeyed;   // sessions whose trunk key could not be set: no trunk listener added
    if (_auth.on())
        for (uint32_t s : send_sessions)
            if (!key_session(s)) unkeyed.insert(s);
    for (const auto& k : want_sends) {
        if (_sends.count(k)) continue;
        const auto& [s, ip, port, ip6] = k;
        if (unkeyed.count(s)) continue;
        try {
            listener_spec l{ip, port, 0, false, v6(ip6)};
            l.trunk = true;
            _st.listener_add(s, l);
            _sends.insert(k);
            spdlog::info("fleet: trunk: session {} sent to {} ({}) as a tier-0 trunk listener", s,
                         fleet::escape_for_log(edge_of[k]), ep(ip, ip6, port));
        } catch (const action_error& e) {
            const auto what =
                fmt::format("trunk of session {} to {} ({})", s, fleet::escape_for_log(edge_of[k]), ep(ip, ip6, port));
            if (address_rule(e) && !_told.count(what + ": " + e.what())) ++_stats.address_refused;
            refused(what, e.what());
        }
    }
    // An edge session nobody listens to: after `_idle`, this edge deletes
    // its trunk key (a transaction on the revision it saw: a key a director
    // re-created meanwhile stays); the watch then undoes the trunk on every
    // side. A middle tier's trunk listeners count as listeners.
    const auto now = std::chrono::steady_clock::now();
    for (auto it = _empty_since.begin(); it != _empty_since.end();)
        it = want.sessions.count(it->first) ? std::next(it) : _empty_since.erase(it);
    if (_idle.count() > 0 && _delete_key)
        for (const auto& [id, port] : want.sessions) {
            const auto v = _st.session(id);
            if (!v || v->nb_listeners > 0) {
                _empty_since.erase(id);
                continue;
            }
            const auto [it, fresh] = _empty_since.emplace(id, now);
            if (fresh || now - it->second < _idle) continue;
            it->second = now;   // once per idle period, whatever the answer
            try {
                if (_delete_key(id)) {
                    ++_stats.idle_deleted;
                    spdlog::info("fleet: trunk: session {} had no listener for {} s: its trunk key deleted", id,
                                 _idle.count());
                }
            } catch (const std::exception& e) {
                refused(fmt::format("deleting the idle trunk of session {}", id), e.what());
            }
        }
    for (const auto& p : want.problems)
        if (tell("problem: " + p)) spdlog::warn("fleet: trunk: {}", p);
    // Every refusal and problem of the plan comes back at each apply while
    // its cause is there: what this apply did not meet again has cleared
    // (its record is gone, or mended) and is forgotten, so it is logged
    // again if it returns, and the set holds only what is current.
    _told = std::move(_told_now);
    _told_now.clear();
    if (_told.size() < max_told) _told_full = false;   // room again: the next one full is said again
    _stats.told = _told.size();
    _stats.sends = _sends.size();
    _stats.sessions = _sessions.size();
    _stats.flows = _flows.size();
    _stats.trunk_keys = _keyed.size();
    _stats.flow_keys = _flow_epoch.size();
}

std::unique_ptr<fleet_trunks> fleet_trunks_start(const profile& p, relay_state& st, uint64_t trunk_epoch) {
    if (!p.fleet.enabled) return nullptr;
    auto t = std::make_unique<fleet_trunks>();
    fleet::trunk_watch_options o;
    o.etcd = p.fleet.etcd;
    o.prefix = p.fleet.prefix;
    o.relay_id = p.fleet.relay_id;
    o.peers.nets = p.fleet.trunk_peers;
    o.trunk_auth = p.fleet.trunk_key != nullptr;
    trunk_auth_config auth;
    if (p.fleet.trunk_key) {
        // Before the first plan: from now on a trunk listener gets nothing
        // without its session's trunk key, and a trunk flow takes only what
        // its speaker keys authenticate.
        st.set_trunk_auth(true);
        auth = {p.fleet.trunk_key, p.fleet.relay_id, trunk_epoch};
        spdlog::info("fleet: trunks authenticated (SRTP AEAD_AES_128_GCM, keys derived from {}), epoch {}",
                     p.fleet.trunk_key_file, fleet::format_trunk_epoch(trunk_epoch));
    } else {
        spdlog::warn("fleet: trunks NOT authenticated (fleet.allow_unauthenticated_trunks): whoever can send from an "
                     "origin's address puts audio into every listener of its edges");
    }
    t->reconciler = std::make_unique<trunk_reconciler>(
        st, std::chrono::seconds(p.fleet.trunk_idle_s),
        [w = &t->watch, id = p.fleet.relay_id](uint32_t session) { return (*w)->delete_trunk(session, id); },
        std::move(auth), p.fleet.max_trunk_sends_per_session);
    t->watch = std::make_unique<fleet::trunk_watch>(o, [r = t->reconciler.get()](const fleet::trunk_plan& plan) {
        r->apply(plan);
    });
    t->watch->start();
    return t;
}

}  // namespace stentor::control
