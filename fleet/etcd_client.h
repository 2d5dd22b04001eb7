// A small etcd v3 client over etcd's JSON gateway (grpc-gateway: plain HTTP
// POSTs, keys and values base64, 64-bit integers as JSON strings), with
// libcurl and nlohmann-json. Enough for the fleet registry (docs/fleet.md):
// leases, put, range, delete, create-if-absent transactions and a watch.
//
// Over https:// the client verifies etcd's certificate against the CA file
// it is given (and nothing else: not the system's store), presents a client
// certificate when it has one (etcd's --client-cert-auth), and with a user
// authenticates (POST /v3/auth/authenticate) and sends the token etcd hands
// back as the Authorization header, authenticating again when etcd says the
// token is no longer valid (it lapses: --auth-token-ttl). TLS is libcurl's
// (OpenSSL here); nothing of it is written by hand.
//
// One client is one libcurl handle and is used by one thread at a time (the
// registrar and the director each own theirs; a watch runs on its own
// client). Every call has a timeout and throws etcd_error when no endpoint
// answered or etcd refused; nothing is retried behind the caller's back
// except trying the next endpoint of the list.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace stentor::fleet {

struct etcd_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct etcd_kv {
    std::string key;
    std::string value;
    int64_t create_revision = 0;
    int64_t mod_revision = 0;
    int64_t lease = 0;
};

struct etcd_event {
    bool deleted = false;    // DELETE (a lease expired, a key removed); else PUT
    etcd_kv kv;              // for a DELETE: key and mod_revision only
};

// How a client reaches etcd beyond its URLs ([fleet] etcd_ca, etcd_cert,
// etcd_key, etcd_user, etcd_password_file; docs/fleet.md "Running etcd
// securely"). The profile loader checks the files (a key and a password file
// readable by nobody else); the client only uses them.
struct etcd_access {
    std::string ca_file;     // PEM: the CA(s) etcd's certificate must chain to (https:// only)
    std::string cert_file;   // PEM: the client certificate (etcd --client-cert-auth)
    std::string key_file;    // PEM: its private key
    std::string user;        // etcd v3 auth user ("" = no authentication)
    // The user's password, read from its file at load; wiped when the last
    // holder lets it go.
    std::shared_ptr<const std::string> password;
};
// A shared password: its bytes are overwritten when the last copy goes.
std::shared_ptr<const std::string> make_secret(std::string text);

// The URLs of etcd's members, tried in order, and how to reach them. A
// vector of URLs still (the fleet's options and logs read it as one); a
// plain vector converts to it without access (plain HTTP, no user).
struct etcd_endpoints : std::vector<std::string> {
    etcd_endpoints() = default;
    etcd_endpoints(std::vector<std::string> urls) : std::vector<std::string>(std::move(urls)) {}
    etcd_endpoints(std::initializer_list<std::string> urls) : std::vector<std::string>(urls) {}
    etcd_endpoints(std::vector<std::string> urls, etcd_access a)
        : std::vector<std::string>(std::move(urls)), access(std::move(a)) {}
    etcd_access access;
};

// The smallest key greater than every key starting with `prefix`: etcd's
// range_end for a prefix query.
std::string prefix_end(const std::string& prefix);

std::string base64_encode(const std::string& bytes);
// Throws etcd_error on text that is not base64.
std::string base64_decode(const std::string& text);

class etcd_client {
public:
    // endpoints: "http://127.0.0.1:2379" or "https://…", tried in order,
    // the last one that answered first; with their access (TLS files, user).
    // timeout: per request, connection included.
    explicit etcd_client(etcd_endpoints endpoints,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
    ~etcd_client();
    etcd_client(const etcd_client&) = delete;
    etcd_client& operator=(const etcd_client&) = delete;

    const etcd_endpoints& endpoints() const { return _endpoints; }

    // A lease of ttl_s seconds; returns its id.
    int64_t lease_grant(int64_t ttl_s);
    // One keep-alive; returns the TTL now left, 0 if the lease is gone
    // (expired or revoked): its keys are gone with it.
    int64_t lease_keepalive(int64_t id);
    void lease_revoke(int64_t id);

    // Returns the store's revision after the put.
    int64_t put(const std::string& key, const std::string& value, int64_t lease = 0);
    std::optional<etcd_kv> get(const std::string& key);
    // Every key under `prefix`, sorted by key; *revision (if given) is the
    // store's revision the answer is from (start a watch at revision + 1).
    std::vector<etcd_kv> range_prefix(const std::string& prefix, int64_t* revision = nullptr);
    // Returns the number of keys deleted.
    int64_t del(const std::string& key);
    // A transaction: if `key` does not exist, put it (with `lease`); true if
    // this call created it. Two callers racing: exactly one gets true.
    bool create_if_absent(const std::string& key, const std::string& value, int64_t lease = 0);
    // A transaction: put `key` (with `lease`, not 0) if it is absent or
    // already attached to `lease`: a key another lease holds (another
    // relay with the same id) is never overwritten. True if written; else
    // *holder (if given) is the key as it stands.
    bool put_if_absent_or_leased(const std::string& key, const std::string& value, int64_t lease,
                                 std::optional<etcd_kv>* holder = nullptr);
    // A transaction: delete `key` if its mod_revision is still
    // `mod_revision` (nobody rewrote or re-created it since it was read);
    // true if this call deleted it.
    bool delete_if_unchanged(const std::string& key, int64_t mod_revision);

    // Watch every key under `prefix` from `start_revision` (0: from now).
    // Blocks, calling on_events for each batch, until `stop` is set (checked
    // at least every 100 ms), on_events returns false, or the stream ends or
    // fails (throws etcd_error; a compacted start revision is an error too).
    // The watch requires a leader (gRPC metadata hasleader, through the
    // gateway's Grpc-Metadata- header): a member that loses its leader (cut
    // off from the majority) ends the stream with "no leader" instead of
    // going silent. `idle` > 0: etcd is asked for progress notifications
    // (on_events with no event, at etcd's
    // --experimental-watch-progress-notify-interval, 10 min by default),
    // and a stream that brings nothing at all for `idle` is ended with an
    // etcd_error saying so.
    void watch_prefix(const std::string& prefix, int64_t start_revision,
                      const std::function<bool(const std::vector<etcd_event>&, int64_t revision)>& on_events,
                      const std::atomic<bool>& stop, std::chrono::milliseconds idle = std::chrono::milliseconds(0));

    // A counter from etcd's own /metrics (e.g.
    // "etcd_server_proposals_committed_total"): nullopt if absent.
    std::optional<double> metric(const std::string& name);

    // Tokens etcd handed this client (1 after the first call with a user;
    // one more each time the token lapsed and was renewed).
    uint64_t authentications() const { return _authentications; }

private:
    std::string post(const std::string& path, const std::string& body);
    std::string post_once(const std::string& path, const std::string& body);
    std::string request(const std::string& url, const std::string* body, bool with_token = true);
    void authenticate();
    void apply_tls(void* curl) const;   // CURL*
    etcd_endpoints _endpoints;
    std::string _token;                 // etcd's auth token ("" = none yet)
    uint64_t _authentications = 0;
    std::chrono::milliseconds _timeout;
    size_t _current = 0;
    void* _curl = nullptr;   // CURL*
};

}  // namespace stentor::fleet
