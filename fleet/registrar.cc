#include "registrar.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "etcd_client.h"
#include "log_escape.h"

namespace stentor::fleet {

using clk = std::chrono::steady_clock;

registrar::registrar(registrar_options o, std::function<relay_record()> report)
    : _o(std::move(o)), _report(std::move(report)), _key(relay_key(_o.prefix, _o.relay_id)) {}

registrar::~registrar() { stop(true); }

void registrar::start() {
    std::lock_guard lk(_mu);
    if (_thread.joinable()) return;
    _stop = false;
    _thread = std::thread([this] { run(); });
}

void registrar::stop(bool revoke) {
    {
        std::lock_guard lk(_mu);
        if (!_thread.joinable()) return;
        _stop = true;
    }
    _cv.notify_all();
    _thread.join();
    int64_t lease;
    {
        std::lock_guard lk(_mu);
        lease = _st.lease;
        _st.registered = false;
        _st.lease = 0;
    }
    if (revoke && lease != 0) {
        try {
            etcd_client c(_o.etcd, std::chrono::milliseconds(500));
            c.lease_revoke(lease);
        } catch (const etcd_error&) {
            // etcd away: the lease lapses by itself within the TTL.
        }
    }
}

bool registrar::drain(std::chrono::milliseconds wait) {
    std::unique_lock lk(_mu);
    _draining = true;
    _cv.notify_all();
    return _cv.wait_for(lk, wait, [this] { return _drain_written || !_thread.joinable(); }) && _drain_written;
}

registrar_status registrar::status() const {
    std::lock_guard lk(_mu);
    return _st;
}

void registrar::run() {
    // Short timeouts: a round must not outlast the refresh period by much,
    // or a slow etcd would cost the lease.
    const auto timeout = std::chrono::milliseconds(std::max(100u, std::min(_o.refresh_ms * 2, 1000u)));
    etcd_client c(_o.etcd, timeout);
    int64_t lease = 0;
    std::unique_lock lk(_mu);
    while (!_stop) {
        const bool draining = _draining;
        lk.unlock();
        std::string error;
        bool wrote_drain = false;
        bool registered = false;
        bool clash = false;
        int64_t clash_lease = 0;
        uint64_t grants = 0, puts = 0;
        try {
            relay_record rec = _report();
            rec.id = _o.relay_id;
            rec.draining = draining;
            bool must_put = false;
            if (lease != 0 && c.lease_keepalive(lease) == 0) lease = 0;   // lease gone: the key went with it
            if (lease == 0) {
                lease = c.lease_grant(_o.lease_ttl_s);
                ++grants;
            }
            if (_key_lease != lease) must_put = true;
            const auto now = clk::now();
            rec.seq = _last_rec.seq;
            if (!(rec == _last_rec)) {
                // At once: what directors must know now; else at most every min_put_ms.
                if (rec.draining != _last_rec.draining || rec.sessions != _last_rec.sessions || rec.ssrcs != _last_rec.ssrcs ||
                    rec.addresses != _last_rec.addresses || rec.addresses6 != _last_rec.addresses6 ||
                    rec.trunk_family != _last_rec.trunk_family ||
                    now - _last_put >= std::chrono::milliseconds(_o.min_put_ms))
                    must_put = true;
            }
            if (must_put) {
                rec.seq = _seq + 1;
                std::optional<etcd_kv> holder;
                if (!c.put_if_absent_or_leased(_key, rec.to_json(), lease, &holder)) {
                    clash = true;
                    clash_lease = holder ? holder->lease : 0;
                    std::string who;
                    if (holder)
                        if (const auto other = relay_record::from_json(holder->value, nullptr))
                            who = fmt::format(" (its record: role {}, addresses {})", other->role,
                                              escape_for_log(fmt::format("{}", fmt::join(other->addresses, ","))));
                    throw etcd_error(fmt::format(
                        "relay id \"{}\" is already registered: {} is held by lease {:x}, not ours ({:x}){}: another "
                        "relay runs with the same [fleet] relay_id, or this relay's previous run until its lease lapses; "
                        "not overwritten, retrying every refresh",
                        _o.relay_id, _key, clash_lease, lease, who));
                }
                ++_seq;
                ++puts;
                _key_lease = lease;
                _last_rec = rec;
                _last_put = now;
            }
            registered = true;
            wrote_drain = draining && _last_rec.draining;
        } catch (const std::exception& e) {
            error = e.what();
            // The lease id is kept: if etcd still has it when it answers
            // again (a restart keeps leases), the key is still ours.
        }
        lk.lock();
        _st.lease = lease;
        _st.registered = registered;
        _st.grants += grants;
        _st.puts += puts;
        _st.clash = clash;
        if (clash) {
            ++_st.clashes;
            _st.clash_lease = clash_lease;
        }
        if (!error.empty()) {
            ++_st.failures;
            _st.last_error = error;
        }
        if (wrote_drain && !_drain_written) {
            _drain_written = true;
            _cv.notify_all();
        }
        _cv.wait_for(lk, std::chrono::milliseconds(_o.refresh_ms),
                     [this, draining] { return _stop || (_draining && !draining); });
    }
}

}  // namespace stentor::fleet
