// A relay's registration in the fleet registry (docs/fleet.md): its record
// under <prefix>/relays/<id>, attached to a lease of lease_ttl_s, kept alive
// and refreshed every refresh_ms on the registrar's own thread (never a
// worker's, never the API's). If the relay dies its lease lapses and etcd
// deletes the key within the TTL.
//
// etcd unreachable: the relay goes on forwarding (nothing here is on the
// relay's path); the registrar retries every refresh and, when etcd answers
// again, keeps its lease if etcd still has it or registers under a new one.
//
// The record is written with a transaction (put only if the key is absent or
// already under this registrar's lease): a second relay started with the
// same relay_id never takes the first one's record over. It keeps trying
// every refresh, counting the clash and saying so (status().clash, the log),
// and registers once the other's key is gone (its lease lapsed): the same
// relay restarted within its lease after a crash waits out its old lease.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "etcd_client.h"
#include "registry.h"

namespace stentor::fleet {

struct registrar_options {
    etcd_endpoints etcd;                    // client URLs and how to reach them (TLS, user)
    std::string prefix = "/stentor";
    std::string relay_id;
    unsigned lease_ttl_s = 2;
    unsigned refresh_ms = 250;
    // A changed record is written at most this often (the load moves at
    // every join; etcd's writes stay ~1/s per relay). Draining, a new
    // session and a new lease are written at once.
    unsigned min_put_ms = 1000;
};

struct registrar_status {
    bool registered = false;     // the last round reached etcd and the key is ours
    int64_t lease = 0;
    uint64_t grants = 0;         // leases taken (1 + re-registrations)
    uint64_t puts = 0;
    uint64_t failures = 0;       // rounds etcd did not answer or refused (clashes included)
    // The key is held under another lease: another relay registered with
    // this relay_id (or this relay's previous run, until its lease lapses).
    bool clash = false;          // the last round found it so
    uint64_t clashes = 0;        // rounds that found it so
    int64_t clash_lease = 0;     // the lease that holds the key
    std::string last_error;
};

class registrar {
public:
    // `report` is called on the registrar's thread each refresh; it fills
    // everything but id and seq.
    registrar(registrar_options o, std::function<relay_record()> report);
    ~registrar();   // stop(true)
    registrar(const registrar&) = delete;
    registrar& operator=(const registrar&) = delete;

    void start();
    // Stop the thread; with revoke, revoke the lease so the key goes now
    // rather than after the TTL (a clean shutdown).
    void stop(bool revoke = true);
    // Mark the relay draining and wait (at most `wait`) until etcd holds the
    // draining record. True if it does.
    bool drain(std::chrono::milliseconds wait);
    registrar_status status() const;
    const std::string& key() const { return _key; }

private:
    void run();
    registrar_options _o;
    std::function<relay_record()> _report;
    std::string _key;
    std::thread _thread;
    mutable std::mutex _mu;
    std::condition_variable _cv;
    bool _stop = false;
    bool _draining = false;
    bool _drain_written = false;
    registrar_status _st;
    // thread-only
    std::string _last_value;
    relay_record _last_rec;
    std::chrono::steady_clock::time_point _last_put{};
    uint64_t _seq = 0;
    int64_t _key_lease = 0;   // the lease the last successful put attached the key to
};

}  // namespace stentor::fleet
