// The fleet's registry in etcd (docs/fleet.md): what lives under which key
// and the JSON of a relay's record. A few keys per relay and per session,
// never one per listener (8 M keys would be far past etcd's limits).
//
//   <prefix>/relays/<relay_id>             relay_record, under the relay's lease
//   <prefix>/directors/<director_id>       {"id":...}, under the director's lease
//   <prefix>/trunks/<session>/<edge_id>    trunk_record, created once (txn)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stentor::fleet {

// What a relay advertises. Listener slots and load are counted in nominal
// Opus listeners: one 20 ms stream of 134-byte frames (50 packets/s).
struct relay_record {
    std::string id;
    std::string role;                          // "origin" | "edge"
    std::string region;                        // "" = none
    std::vector<std::string> addresses;        // IPv4 addresses joins are sent to
    // IPv6 addresses (issue 15; "addresses6", absent before): a trunk of
    // family IPv6 is sent to and from the first. Joins go to `addresses`.
    std::vector<std::string> addresses6;
    // The family of the trunks *to* this relay, as its [fleet] trunk_family
    // says: "ipv4" (also when absent: what a relay without the key does),
    // "ipv6" or "auto" (docs/fleet.md, "Trunks over IPv6").
    std::string trunk_family = "ipv4";
    uint64_t slots = 0;                        // listener slots after headroom (admission)
    uint64_t line_rate_mbps = 0;               // sum over ports
    uint64_t listeners = 0;                    // listeners now
    bool draining = false;                     // place nothing here; listeners are moving away
    std::vector<std::pair<uint32_t, uint16_t>> sessions;   // (session id, UDP port) it carries
    // The registered speakers' SSRCs of each session it carries (a third
    // element of the session's JSON entry: [id, port, [ssrc, ...]]): what an
    // edge registers the relay's trunk flow with. Absent = none registered.
    std::map<uint32_t, std::vector<uint32_t>> ssrcs;
    // Trunk authentication (docs/fleet.md "Trunk authentication"): whether
    // the relay protects and checks its trunks with the fleet's trunk key
    // ("trunk_auth"; absent = false: what an older relay writes) and the
    // epoch it drew at start ("trunk_epoch", 16 lowercase hex digits; ""
    // = none), the epoch of the keys it sends under. Read as written; the
    // plan refuses an epoch that is not well formed (fleet/trunks.h).
    bool trunk_auth = false;
    std::string trunk_epoch;
    uint64_t seq = 0;                          // the registrar's write counter (fresh value each put)

    std::string to_json() const;
    // nullopt and *why on anything that is not a well-formed record.
    static std::optional<relay_record> from_json(const std::string& text, std::string* why);
    bool operator==(const relay_record&) const = default;
};

// A trunk: `edge` wants `session` from each of `origins` (the relays that
// send it: every live origin of the session when the director created it,
// or a middle tier). Written as {"origins": [...], "origin": origins[0]};
// a record with only "origin" (before origins) reads as one origin.
struct trunk_record {
    uint32_t session = 0;
    std::string edge;
    std::vector<std::string> origins;
    uint16_t udp_port = 0;
    std::string created_by;                    // the director that created it

    std::string to_json() const;
    static std::optional<trunk_record> from_json(const std::string& text, std::string* why);
};

inline std::string relays_prefix(const std::string& prefix) { return prefix + "/relays/"; }
inline std::string relay_key(const std::string& prefix, const std::string& id) { return relays_prefix(prefix) + id; }
inline std::string directors_prefix(const std::string& prefix) { return prefix + "/directors/"; }
inline std::string trunks_prefix(const std::string& prefix) { return prefix + "/trunks/"; }
inline std::string trunk_key(const std::string& prefix, uint32_t session, const std::string& edge) {
    return trunks_prefix(prefix) + std::to_string(session) + "/" + edge;
}

// The session id in a trunk key's name (<prefix>/trunks/<session>/<edge>),
// read strictly: decimal digits only, no sign, space or leading zero, 1 to
// 4294967295; nullopt otherwise. trunk_key() writes exactly this form, so
// an alias ("01", "+1", " 1", "4294967297") is never read as a session:
// a relay would act on it and then delete only the canonical key, and a
// director would see a trunk that is not there (strtoul wraps and trims).
std::optional<uint32_t> parse_session_key(std::string_view text);

// Registry keys a reader refused to act on (the director's and the trunk
// watch's records_refused, docs/fleet.md "Keys"): each counted once while
// it stays refused; forgotten when the key is deleted or mended, so it is
// counted again if it comes back refused; at a whole read, pruned to the
// keys still there. It holds only keys that are in etcd now, so it is
// bounded by the registry itself (refusals of keys gone while the watch
// was down go at the next whole read). Not thread-safe: under the
// reader's mutex.
class refused_keys {
public:
    // True, and counted, the first time `key` is refused since it was last forgotten.
    bool refuse(const std::string& key) {
        if (!_keys.insert(key).second) return false;
        ++_count;
        return true;
    }
    // The key was deleted, or now reads as what its name says.
    void forget(const std::string& key) { _keys.erase(key); }
    // A whole read: keep the refusals of the keys in `lists` (ranges of
    // items with a `key`: etcd_kv), drop the rest. Counts stay.
    template <class... Lists>
    void keep_only(const Lists&... lists) {
        std::set<std::string> still;
        const auto from = [&](const auto& list) {
            for (const auto& kv : list)
                if (_keys.count(kv.key)) still.insert(kv.key);
        };
        (from(lists), ...);
        _keys = std::move(still);
    }
    uint64_t count() const { return _count; }   // refusals counted, ever
    size_t size() const { return _keys.size(); }   // keys refused now

private:
    std::set<std::string> _keys;
    uint64_t _count = 0;
};

// Directors counted from <prefix>/directors/ at most (docs/fleet.md
// "Several directors"): a registry writer's keys under leases can shrink
// each director's share of an edge to free/64, never to nothing.
inline constexpr unsigned max_directors = 64;

// A nominal Opus listener on the wire: 134-byte frame + 20 bytes of
// preamble, inter-frame gap and FCS, 50 packets/s (docs/fleet.md, DESIGN).
inline constexpr double nominal_listener_pps = 50.0;
inline constexpr double nominal_listener_bps = 50.0 * (134 + 20) * 8;

}  // namespace stentor::fleet
