#include "director.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "etcd_client.h"
#include "log_escape.h"

namespace stentor::fleet {

director::director(director_options o, mint_fn mint)
    : _o(std::move(o)), _mint(std::move(mint)), _core(_o.hold),
      _txn(std::make_unique<etcd_client>(_o.etcd, std::chrono::milliseconds(1000))) {
    if (_o.watch_idle.count() <= 0)
        _o.watch_idle = std::max(std::chrono::milliseconds(250),
                                 std::chrono::duration_cast<std::chrono::milliseconds>(_o.stale) / 2);
}

director::~director() { stop(); }

void director::start(std::chrono::milliseconds wait) {
    _stop = false;
    _lease_thread = std::thread([this] { lease_loop(); });
    _watch_thread = std::thread([this] { watch_loop(); });
    std::unique_lock lk(_mu);
    _cv.wait_for(lk, wait, [this] { return _loaded; });
}

void director::stop() {
    _stop = true;
    _cv.notify_all();
    if (_watch_thread.joinable()) _watch_thread.join();
    if (_lease_thread.joinable()) _lease_thread.join();
}

void director::touch() { _answered = _contact = steady::now(); }

void director::refuse(const std::string& key, const std::string& why) {
    _last_error = fmt::format("registry key {}: {}", escape_for_log(key), why);
    _refused.refuse(key);   // once per key until it is deleted or mended
}

void director::count_directors() {
    _core.set_directors(static_cast<unsigned>(std::min<size_t>(_directors.size(), max_directors)));
}

void director::apply(const std::string& key, const std::string* value, int64_t lease) {
    const std::string relays = relays_prefix(_o.prefix), dirs = directors_prefix(_o.prefix),
                      trunks = trunks_prefix(_o.prefix);
    if (value == nullptr) _refused.forget(key);
    if (key.rfind(relays, 0) == 0) {
        // Stored by the key's name: the record's "id" must be that name, or
        // a record at relays/zz saying "ghost" would stay in the view when
        // zz's lease lapses (the delete names zz), and one saying "edge-1"
        // would take a real edge's place.
        const std::string id = key.substr(relays.size());
        if (value == nullptr) {
            _core.erase(id);
            return;
        }
        // A relay's record lives under its lease (registrar.cc): one written
        // without any stays for ever, whoever wrote it, and would draw
        // listeners to an address no live relay answers for. Not placed on,
        // as the trunk watch does not send to it (docs/fleet.md).
        if (lease == 0) {
            _core.erase(id);
            refuse(key, "no lease, not placed on");
            return;
        }
        std::string why;
        auto r = relay_record::from_json(*value, &why);
        if (r && r->id != id) {
            why = fmt::format("the record says id \"{}\", not its key's name: not placed on", escape_for_log(r->id));
            r.reset();
        }
        if (r) {
            _core.upsert(*r);
            _refused.forget(key);
        } else {
            _core.erase(id);   // an unreadable record places nothing
            refuse(key, why);
        }
    } else if (key.rfind(dirs, 0) == 0) {
        // A director's key lives under its lease and says {"id": <its name>}
        // (lease_loop). Anything else is not a director; and however many
        // there are, at most max_directors are counted (docs/fleet.md).
        const std::string id = key.substr(dirs.size());
        bool ok = false;
        if (value != nullptr && lease != 0) {
            const auto j = nlohmann::json::parse(*value, nullptr, false);
            ok = j.is_object() && j.contains("id") && j["id"].is_string() && j["id"].get<std::string>() == id;
        }
        if (ok) {
            _directors.insert(id);
            _refused.forget(key);
        } else {
            _directors.erase(id);
            if (value != nullptr)
                refuse(key, lease == 0 ? "a director key without a lease: not counted"
                                       : "a director key whose value is not {\"id\": <its name>}: not counted");
        }
        count_directors();
    } else if (key.rfind(trunks, 0) == 0) {
        // <session>/<edge>, the session in trunk_key()'s form only.
        const std::string rest = key.substr(trunks.size());
        const auto slash = rest.find('/');
        if (slash == std::string::npos) return;
        const auto s = parse_session_key(std::string_view(rest).substr(0, slash));
        const std::string edge = rest.substr(slash + 1);
        if (!s || edge.empty()) {
            if (value != nullptr) refuse(key, "not a trunk key (<session 1..4294967295>/<edge>): ignored");
            return;
        }
        if (value == nullptr) _trunks.erase({*s, edge});
        else _trunks.insert({*s, edge});
    }
}

void director::load_full(etcd_client& c, int64_t* revision) {
    // One range over the whole prefix: relays, directors and trunks at one
    // revision (a few thousand keys at most).
    const auto kvs = c.range_prefix(_o.prefix + "/", revision);
    std::lock_guard lk(_mu);
    _core.clear();
    _trunks.clear();
    _directors.clear();
    _directors.insert(_o.director_id);   // ourselves, even before our key is there
    // Refusals of keys still there stay counted once; those of keys gone go.
    _refused.keep_only(kvs);
    for (const auto& kv : kvs) apply(kv.key, &kv.value, kv.lease);
    count_directors();
    touch();
    _loaded = true;
    _cv.notify_all();
}

void director::watch_loop() {
    etcd_client c(_o.etcd, std::chrono::milliseconds(1000));
    while (!_stop) {
        try {
            int64_t rev = 0;
            load_full(c, &rev);
            c.watch_prefix(
                _o.prefix + "/", rev + 1,
                [this](const std::vector<etcd_event>& evs, int64_t) {
                    std::lock_guard lk(_mu);
                    for (const auto& e : evs) apply(e.kv.key, e.deleted ? nullptr : &e.kv.value, e.kv.lease);
                    touch();   // an event, or a progress notification (no event): this member is current
                    return true;
                },
                _stop, _o.watch_idle);
        } catch (const std::exception& e) {
            std::lock_guard lk(_mu);
            _last_error = e.what();
        }
        if (_stop) break;
        {
            std::lock_guard lk(_mu);
            ++_watch_restarts;
        }
        // etcd away or the stream broke: read the whole view again soon.
        std::unique_lock lk(_mu);
        _cv.wait_for(lk, std::chrono::milliseconds(200), [this] { return _stop.load(); });
    }
}

void director::lease_loop() {
    const auto period = std::chrono::milliseconds(_o.lease_ttl_s * 1000 / 3);
    etcd_client c(_o.etcd, std::chrono::milliseconds(std::min<int64_t>(period.count(), 1000)));
    const std::string key = directors_prefix(_o.prefix) + _o.director_id;
    int64_t lease = 0;
    while (!_stop) {
        try {
            if (lease != 0 && c.lease_keepalive(lease) == 0) lease = 0;
            if (lease == 0) {
                lease = c.lease_grant(_o.lease_ttl_s);
                c.put(key, nlohmann::json{{"id", _o.director_id}}.dump(), lease);
            }
            // etcd answers, maybe another member than the watch's: that says
            // nothing of the view (a watch on a member cut off from the
            // majority is silent, not broken), so it is not freshness.
            std::lock_guard lk(_mu);
            _answered = steady::now();
        } catch (const std::exception& e) {
            std::lock_guard lk(_mu);
            _last_error = e.what();
        }
        std::unique_lock lk(_mu);
        _cv.wait_for(lk, period, [this] { return _stop.load(); });
    }
    if (lease != 0) {
        try {
            c.lease_revoke(lease);
        } catch (const std::exception&) {
        }
    }
}

place_answer director::place(const place_request& req, const std::vector<std::string>& exclude) {
    place_answer out;
    const auto now = steady::now();
    plan_result plan;
    struct wanted {
        uint32_t session;
        std::string edge;
        bool carries;   // the edge has the session already: a failed record is retried later, not fatal
    };
    std::vector<wanted> want;   // trunks to record
    const auto family = parse_family(req.family, &out.reason);
    if (!family) {
        out.error = place_error::bad_request;
        return out;
    }
    {
        std::lock_guard lk(_mu);
        if (!_loaded || now - _contact > _o.stale) {
            out.error = place_error::registry_stale;
            out.reason = _loaded ? fmt::format("etcd has not answered for {:.1f} s (no watch event, progress notification "
                                               "or whole read of the registry; limit {} s): refusing to place from "
                                               "a stale registry view; last error: {}",
                                               std::chrono::duration<double>(now - _contact).count(),
                                               _o.stale.count(), _last_error)
                                 : fmt::format("no registry view yet (etcd unreachable?): {}", _last_error);
            return out;
        }
        plan = _core.place(req.session, req.count, req.region, now, exclude, *family);
        if (plan.error != place_error::none) {
            out.error = plan.error;
            out.reason = plan.reason;
            return out;
        }
        // An edge carries a session only through its trunk keys: one that
        // still carries it while its key is gone (etcd lost its data, the
        // key was reaped) would go silent, so the key is recorded whenever
        // this director has not seen it. For such an edge a record that
        // fails is not the placement's failure (the stream is there now),
        // and with etcd silent for a second it is not even tried: placing
        // from the last view must not wait for etcd's timeout.
        const bool etcd_answers = now - _answered < std::chrono::seconds(1);
        for (const auto& p : plan.picks)
            if (_trunks.count({req.session, p.edge}) == 0 && (!p.carries || etcd_answers))
                want.push_back({req.session, p.edge, p.carries});
    }
    // Trunks: one transaction per (session, edge) this director has not seen
    // in etcd yet; the first director's wins, the others find it there.
    if (!want.empty()) {
        std::lock_guard tl(_txn_mu);
        for (const auto& [s, edge, carries] : want) {
            trunk_record t;
            t.session = s;
            t.edge = edge;
            t.origins = plan.origins;   // every live origin: the edge subscribes to each (ST 2022-7)
            t.udp_port = plan.port;
            t.created_by = _o.director_id;
            try {
                if (_txn->create_if_absent(trunk_key(_o.prefix, s, edge), t.to_json())) ++out.trunks_created;
                std::lock_guard lk(_mu);
                _trunks.insert({s, edge});
            } catch (const std::exception& e) {
                std::lock_guard lk(_mu);
                if (carries) {
                    _last_error = fmt::format("trunk for session {} to edge {} not recorded (the edge has the session; "
                                              "tried again at the next placement there): {}",
                                              s, escape_for_log(edge), e.what());
                    continue;
                }
                _core.forget(plan, now);
                out.error = place_error::registry_write;
                out.reason = fmt::format("trunk for session {} to edge {} could not be recorded: {}; nothing placed", s,
                                         escape_for_log(edge), e.what());
                return out;
            }
        }
    }
    std::vector<minted> tokens;
    try {
        tokens = _mint(req.session, req.tier, req.count);
    } catch (const std::exception& e) {
        std::lock_guard lk(_mu);
        _core.forget(plan, now);
        out.error = place_error::registry_write;
        out.reason = fmt::format("minting {} join tokens failed: {}", req.count, e.what());
        return out;
    }
    out.placements.reserve(req.count);
    size_t k = 0;
    for (const auto& p : plan.picks)
        for (uint32_t i = 0; i < p.count; ++i, ++k)
            out.placements.push_back({p.edge, p.address, p.port, std::move(tokens[k].token), std::move(tokens[k].password)});
    return out;
}

director_status director::status() const {
    std::lock_guard lk(_mu);
    director_status s;
    s.relays = _core.relays().size();
    for (const auto& [id, r] : _core.relays())
        if (r.role == "edge" && !r.draining) ++s.edges_live;
    s.directors = _core.directors();
    s.trunks = _trunks.size();
    s.view_age_s = _loaded ? std::chrono::duration<double>(steady::now() - _contact).count() : -1;
    s.stale = !_loaded || steady::now() - _contact > _o.stale;
    s.watch_restarts = _watch_restarts;
    s.records_refused = _refused.count();
    s.last_error = _last_error;
    return s;
}

std::vector<relay_record> director::relays() const {
    std::lock_guard lk(_mu);
    std::vector<relay_record> out;
    for (const auto& [id, r] : _core.relays()) out.push_back(r);
    return out;
}

}  // namespace stentor::fleet
