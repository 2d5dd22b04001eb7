// Config profiles: TOML files network engineers load (configs/*.toml).
// Parsed with toml++; every error names file:line:column and the setting.
// Addresses are kept in host byte order in the control plane.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <memory>

#include "etcd_client.h"
#include "ipv6.h"
#include "peer_nets.h"
#include "session.h"
#include "srtp_keys.h"

namespace stentor::control {

struct config_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct eal_config {
    std::vector<unsigned> lcores;          // all lcores EAL gets (-l)
    unsigned main_lcore = 0;               // control plane runs here
    unsigned memory_mb = 512;              // -m
    bool hugepages = false;                // false => --no-huge
    std::string file_prefix = "stentor";   // --file-prefix
    std::vector<std::string> pci_allow;    // -a <pci>; empty and no PCI => --no-pci
    std::vector<std::string> vdevs;        // --vdev <spec>
    unsigned mbufs = 16383;                // mbufs per mempool (one pool per NUMA socket)
    unsigned mbuf_cache = 256;
    std::string log_level = "notice";      // --log-level
};

inline constexpr unsigned max_join_lcores = 16;   // dp::max_join_lcores (checked in relay.cc)

struct dataplane_config {
    std::vector<unsigned> rx_lcores;       // lcores that poll RX queues (ingress)
    std::vector<unsigned> fanout_lcores;   // lcores that own listener shards (may equal rx)
    std::vector<unsigned> service_lcores;  // mixer / recorder service lcores (optional)
    // Dedicated join lcores (optional; docs/join.md "Who checks what"):
    // empty, RX lcores verify join requests themselves; else they hand
    // them, after the cheap checks and their budget, to these lcores, which
    // run the MACs. Each is its own lcore: no rx, fan-out or service role.
    std::vector<unsigned> join_lcores;
    unsigned burst = 32;                   // RX/TX burst size (1..256)
    unsigned frame_deadline_us = 20000;    // replicas older than this are abandoned
    unsigned tx_drain_us = 100;            // TX buffers flushed at least this often
    unsigned iteration_budget = 512;       // replicas of fan-out per loop iteration, between two RX polls
    unsigned stats_interval_s = 5;         // periodic counter print (0 = off)
    // "poll" (false): workers busy-poll, the bare-metal choice. "adaptive"
    // (true): a worker that found no work for a while sleeps (Rx interrupt
    // where the PMD has them, else a sleep that backs off up to
    // idle_sleep_max_us) so relays can share cores (docs/profiles.md).
    bool idle_adaptive = false;
    unsigned idle_sleep_max_us = 1000;     // longest sleep of an idle worker (adaptive)
};

struct port_config {
    std::string name;                      // operator's name for the port ("uplink0")
    std::string device;                    // vdev name ("net_af_packet0") or PCI address
    unsigned rx_queues = 1;
    unsigned tx_queues = 1;
    unsigned rx_desc = 1024;
    unsigned tx_desc = 1024;
    unsigned mtu = 1500;
    uint32_t ipv4 = 0;                     // relay's own address on this port
    unsigned prefix_len = 24;
    std::optional<uint32_t> gateway;       // next hop for off-link listeners
    std::optional<std::array<uint8_t, 6>> gateway_mac;  // static neighbour: never ARP for the gateway
    bool gateway_learnt = false;           // explicit: the gateway's MAC is learnt by ARP (no gateway_mac)
    std::optional<std::array<uint8_t, 6>> mac;  // override the device MAC
    unsigned line_rate_mbps = 0;           // 0 = take the reported link speed
    unsigned dscp = 46;                    // DSCP of the replicas sent on this port (46 = EF, RFC 3246)
    // IPv6 (issue 15; docs/profiles.md "IPv6"): optional. The relay's global
    // unicast address and its on-link prefix; the next hop for listeners
    // outside it (link-local or in the prefix), pinned or learnt by
    // neighbour discovery as the IPv4 gateway is by ARP.
    std::optional<ipv6_addr> ipv6;
    unsigned prefix6_len = 64;
    std::optional<ipv6_addr> gateway6;
    std::optional<std::array<uint8_t, 6>> gateway6_mac;  // static neighbour: never solicited
    bool gateway6_learnt = false;          // explicit: the gateway's MAC is learnt by NS/NA
};

struct ingress_config {
    unsigned udp_port_min = 40000;         // speakers send to a port in this range
    unsigned udp_port_max = 40999;
    // Every speaker must be registered with its RTP SSRC. false lets speakers
    // of forward sessions without recording go without one (then anyone who
    // knows the address and port can speak); recorded and mixed sessions
    // always need one (issue 10 items 2 and 4).
    bool require_ssrc = true;
};

struct limits_config {
    unsigned max_sessions = 1024;
    unsigned max_speakers = 4096;
    unsigned max_listeners = 2000000;      // whole relay
    unsigned max_listeners_per_session = 2000000;
    unsigned max_neighbours = 4096;        // ARP table entries
    unsigned join_rate_per_s = 2000000;    // token bucket, whole relay
    unsigned headroom_pct = 10;            // capacity kept free for admission
    unsigned session_join_rate_per_s = 1000000;  // token bucket, per session
    unsigned fanout_pps_per_core = 50000000;     // replicas/s one fan-out core is planned to build
    unsigned tier0_reserve_pct = 0;        // capacity only tier 0 may use
    unsigned tier1_reserve_pct = 0;        // capacity only tiers 0..1 may use
    unsigned tier2_reserve_pct = 0;        // capacity only tiers 0..2 may use
    // How far above its stream rate a speaker's policer lets it send, as a
    // sustained rate (packets and bytes). Must fit inside headroom_pct: then
    // every speaker at its policer limit still fits the capacity admission
    // planned at the nominal rate (docs/admission.md).
    unsigned speaker_burst_pct = 10;
    // How long a join's answer waits for its next hop to answer ARP (0: do
    // not wait). Past it the join is answered 202, not yet heard.
    unsigned join_resolve_ms = 1000;
};

struct api_config {
    std::string listen_addr = "127.0.0.1";
    unsigned listen_port = 8080;
    std::string token;                     // bearer token; empty = API disabled
    // The token read from this file instead (mode 0600, like the key
    // files): a profile is often readable by others, a secret must not be.
    std::string token_file;
    // What an unauthenticated or slow client can hold (issue 10 item 3;
    // docs/api.md "Limits"). Every refusal is counted (stentor_api_*).
    unsigned threads = 4;                  // libmicrohttpd pool threads (epoll)
    unsigned max_connections = 128;        // open connections, all clients
    unsigned max_connections_per_ip = 16;  // open connections from one address
    unsigned idle_timeout_s = 10;          // a connection silent this long is closed
    unsigned header_timeout_s = 10;        // a request's headers, from the accept (or previous answer)
    unsigned body_timeout_s = 30;          // a whole request body, first to last byte
    unsigned unauthorized_log_s = 10;      // refused tokens: one log line per source per this long
    unsigned bodies_in_flight_mib = 32;    // request bodies buffered at once, all connections
    unsigned publish_wait_ms = 2000;       // a write waits this long for its publish, then 503
    // HTTPS (issue 12 item 4): PEM files of the certificate (chain) and its
    // private key (mode 0600), read when the API starts. Without them the
    // API speaks plain HTTP, which the profile must ask for (plain_http =
    // true) and only on a loopback address: the token, the listeners and
    // keys set through the API must not cross a network in clear.
    std::string tls_cert;
    std::string tls_key;
    // SHA-256 of the two files as the loader read them: a renewed
    // certificate changes no profile text, and the API keeps what it
    // loaded at start (secret_file_changes names the file on SIGHUP).
    std::array<uint8_t, 32> tls_cert_digest{};
    std::array<uint8_t, 32> tls_key_digest{};
    bool plain_http = false;
    // Scraping /metrics (docs/metrics.md): a read-only token that opens
    // /metrics and nothing else (empty: only the admin token does), and
    // whether a scrape from a loopback address needs a token at all.
    std::string metrics_token;
    bool metrics_loopback_open = false;    // metrics_auth = "loopback"
    // Label cardinality: per-session series for the sessions with the
    // most listeners, per-speaker series for their speakers, at most this many.
    unsigned metrics_top_sessions = 20;
    unsigned metrics_top_speakers = 100;
};

// The overload controller's thresholds (docs/admission.md, "Overload");
// control/overload.h reads them as overload_options. Reloadable (SIGHUP).
struct overload_config {
    double enter_miss_ratio = 0.001;      // a tick above this misses
    unsigned enter_ticks = 3;             // consecutive missing ticks before shedding
    double exit_miss_ratio = 0.0;         // a tick at or below this is clean
    unsigned hold_ms = 2000;              // clean this long before the cap rises
    unsigned ramp_ms = 5000;              // the cap rises to full capacity over this time
    unsigned cooldown_ticks = 2;          // after a shed, ticks to watch its effect
    double shed_margin = 0.0;             // shed this fraction more than measured
    unsigned max_shed_per_tick = 200000;
};

// The mixer of mix sessions (docs/audio.md). Reloadable (SIGHUP): applies to
// sessions the mixer starts after the reload.
struct mixer_settings {
    unsigned channels = 2;                // 1 or 2, 48 kHz
    unsigned bitrate_kbps = 64;           // encoder bitrate of the mixed stream
    unsigned complexity = 5;              // Opus encoder complexity 0..10
    unsigned jitter_ms = 60;              // playout delay of a speaker after its first packet
    unsigned plc_max_frames = 3;          // concealed frames before a missing speaker goes silent
    unsigned speaker_timeout_ms = 5000;   // a speaker silent this long is dropped
    unsigned max_decoders_per_session = 16;  // Opus decoders (speaker SSRCs) per mixed session
};

struct recording_config {
    std::string dir = "/var/lib/stentor/recordings";   // Ogg Opus files of recorded sessions
    unsigned max_tracks_per_recording = 32;            // track files (speaker SSRCs) per recording
    unsigned max_tracks = 1024;                        // track files open in the whole relay
};

// [capture] (docs/capture.md): where `stentorctl capture` files are written,
// the bounds every capture request is held to, and dpdk-dumpcap. Read at
// start (a change needs a restart).
struct capture_config {
    std::string dir = "/var/lib/stentor/captures";   // pcapng files; the API names none
    bool pdump = false;                 // rte_pdump_init: dpdk-dumpcap may attach (needs eal.hugepages)
    uint64_t max_packets = 100000;      // a request may ask for fewer, never more
    unsigned max_seconds = 60;
    unsigned max_mib = 64;              // packet bytes written to one file
    unsigned ring_size = 1024;          // copies in flight, workers -> writer (power of two)
    unsigned mbufs = 2047;              // the copies' own mempool
    unsigned keep = 16;                 // finished capture files kept; older ones are removed
};

// The write-ahead journal of the API's actions (control/journal.h). Off by
// default: without it, sessions, speakers and listeners added through the
// API are gone after a restart.
struct journal_config {
    std::string dir;                       // empty = no journal
    bool fsync = true;                     // sync every group commit
    unsigned compact_mib = 64;             // snapshot + new journal past this size
};

// [join] (docs/join.md): the secrets join tokens are signed with, by key
// id. Several keys at once are a rotation with overlap: tokens of every key
// verify, new ones are minted with mint_key_id. keys, mint_key_id and
// token_ttl_s reload live on SIGHUP (control_plane::reload); the rest is
// read at start.
inline constexpr unsigned join_max_ttl_s = 7 * 24 * 3600;
inline constexpr size_t join_secret_min = 32;     // bytes (join::token_secret_min)
inline constexpr size_t join_secret_max = 1024;   // bytes
struct join_key {
    unsigned id = 0;                 // 1..255: the token's key_id byte
    std::string secret_file;         // absolute path; hex, not readable by group or others
    std::vector<uint8_t> secret;     // its bytes, join_secret_min..join_secret_max
};
struct join_config {
    std::vector<join_key> keys;      // empty: tokens can be neither minted nor verified
    unsigned mint_key_id = 0;        // one of keys (the only one by default); 0 without keys
    unsigned token_ttl_s = 3600;     // a minted token's life unless the request says; 1..join_max_ttl_s
    // Verification (dataplane/join.cc) and consent (control/join_desk.h).
    unsigned verify_per_s = 1000000; // MAC verifications per second per RX lcore; beyond: dropped before any MAC
    unsigned consent_timeout_s = 30; // a joined listener silent this long is removed
    unsigned rebind_after_s = 10;    // a token moves to a new address once its old one is silent this long
    // What one token and one source may cost the desk (docs/join.md "Spent
    // tokens and sources"). A source is an IPv4 address or an IPv6 /64.
    unsigned max_spent_tokens = 1048576;       // tokens that left, remembered until their expiry
    unsigned source_join_rate_per_s = 100;     // joins per second per source (token bucket)
    unsigned source_join_burst = 1000;         // that bucket's depth
    unsigned max_bindings_per_source = 1000;   // token listeners one source may hold, all sessions together
    bool static_listeners = true;    // mode "token+static" (default); "token": the API and profiles add none
    const join_key* key(unsigned id) const {
        for (const auto& k : keys)
            if (k.id == id) return &k;
        return nullptr;
    }
};

// [srtp] (docs/srtp.md): the modes sessions get when they do not say, and
// the suite of keys that do not say.
struct srtp_config {
    srtp_ingress_mode ingress = srtp_ingress_mode::off;
    srtp_egress_mode egress = srtp_egress_mode::off;
    srtp::suite suite = srtp::suite::aes_cm_128_hmac_sha1_80;
};
// A key of a static session or speaker ([[session.srtp_key]],
// [[session.speaker.srtp_key]]): read from key_file (base64 of master key
// and salt, mode 0600) at load; the bytes are wiped when the last copy of
// the profile goes.
struct srtp_key_config {
    std::string id;
    std::string key_file;
    srtp::suite suite = srtp::suite::aes_cm_128_hmac_sha1_80;
    srtp_mki mki;
    std::shared_ptr<const secure_bytes> master;
};

// [fleet] (docs/fleet.md): the relay registers itself in the fleet's etcd
// under a lease. Absent section: a standalone relay, nothing registered.
struct fleet_config {
    bool enabled = false;                 // the profile has a [fleet] section
    // Client URLs ("https://host:port", or "http://host:port" on loopback or
    // with allow_plaintext) and, in etcd.access, how to reach them: the CA
    // (etcd_ca), the client certificate and key (etcd_cert, etcd_key), the
    // etcd user and the password read from etcd_password_file (docs/fleet.md
    // "Running etcd securely").
    fleet::etcd_endpoints etcd;
    std::string etcd_password_file;       // where etcd.access.password came from
    bool allow_plaintext = false;         // http:// to a host that is not loopback, said explicitly
    std::string prefix = "/stentor";      // every fleet key starts with it
    std::string relay_id;                 // unique in the fleet: [A-Za-z0-9._-], 1..64
    std::string role;                     // "origin" or "edge"
    std::string region;                   // label directors may place by ("" = none)
    unsigned lease_ttl_s = 2;             // the relay's key is gone this long after it dies
    unsigned refresh_ms = 250;            // keep-alive and load refresh period
    std::vector<uint32_t> advertise;      // addresses listeners send joins to (default: the ports')
    std::vector<ipv6_addr> advertise6;    // IPv6 addresses trunks may use (default: the ports' ipv6)
    // The family of the trunks to this relay (docs/fleet.md, "Trunks over
    // IPv6"): "ipv4", "ipv6" (both ends must advertise IPv6) or "auto"
    // (IPv6 when both ends advertise it, else IPv4). Advertised in the record.
    std::string trunk_family = "ipv4";
    unsigned drain_s = 10;                // SIGTERM: wait this long for joined listeners to move (0: do not wait)
    unsigned trunk_idle_s = 60;           // an edge deletes its trunk key after this long without a listener (0: never)
    // An origin sends one session to at most this many trunk listeners
    // (edges): each is a tier-0 stream, never shed, that a trunk record
    // alone makes it send (docs/fleet.md "How many edges a session is sent to").
    unsigned max_trunk_sends_per_session = 64;
    // The networks trunks may go to and come from (docs/fleet.md "Who a
    // trunk may reach"): required with [fleet]; empty (never set) refuses
    // every trunk.
    std::vector<fleet::peer_net> trunk_peers;
    // Trunk authentication (docs/fleet.md "Trunk authentication"): the
    // file holding the fleet's trunk key (32 random bytes as 64 hex digits,
    // mode 0600, the same on every relay) and the key read from it, in
    // wiped memory, never printed. Required with [fleet] unless
    // allow_unauthenticated_trunks says otherwise explicitly.
    std::string trunk_key_file;
    std::shared_ptr<const secure_bytes> trunk_key;   // nullptr: trunks unauthenticated
    bool allow_unauthenticated_trunks = false;
};

// stentor-director's profile (fleet/director_main.cc): [fleet] (etcd, prefix),
// [join] (the fleet's shared join keys, as the relays have them) and
// [director].
struct director_config {
    std::string listen_addr = "127.0.0.1";
    unsigned listen_port = 8090;
    std::string director_id;              // unique among directors ([A-Za-z0-9._-])
    unsigned stale_s = 10;                // serve from the last registry view this long with etcd down
    unsigned hold_ms = 3000;              // a placement counts against its edge this long
    unsigned max_per_request = 100000;    // listeners one request may place
    unsigned threads = 4;                 // HTTP worker threads
    std::string token;                    // bearer token callers present (>= 16 printable characters)
    std::string token_file;               // or read from this file (mode 0600)
    // The same accept policy, limits and transport rule as the relay's API
    // (http_guard.h, docs/fleet.md "Directors").
    unsigned max_connections = 128;
    unsigned max_connections_per_ip = 16;
    unsigned idle_timeout_s = 10;
    unsigned header_timeout_s = 10;
    std::string tls_cert;
    std::string tls_key;
    bool plain_http = false;
};
struct director_profile {
    std::string path;
    fleet_config fleet;
    join_config join;
    director_config director;
};
director_profile parse_director_profile(const std::string& text, const std::string& path_for_messages);
director_profile load_director_profile(const std::string& path);

// A static [[session]]: the API's session_params (udp_port required here)
// with its speakers and listeners; loaded through the same actions.
struct session_config : session_params {
    std::vector<speaker_spec> speakers;
    std::vector<listener_spec> listeners;
    std::vector<srtp_key_config> srtp_keys;                  // egress keys, the first active
    std::vector<std::vector<srtp_key_config>> speaker_srtp_keys;   // per speaker (same order)
};

struct profile {
    std::string path;
    eal_config eal;
    dataplane_config dataplane;
    std::vector<port_config> ports;
    ingress_config ingress;
    limits_config limits;
    api_config api;
    recording_config recording;
    overload_config overload;
    mixer_settings mixer;
    journal_config journal;
    join_config join;
    srtp_config srtp;
    fleet_config fleet;
    capture_config capture;
    std::vector<session_config> sessions;  // optional static section (labs, tests)
};

// The most of a profile file the loaders read (1 MiB; the shipped profiles
// are a few KiB): a larger file, or anything but a regular file (a device, a
// FIFO), is refused as "FILE:1:1: file: ..." before it is read.
inline constexpr std::size_t max_profile_bytes = std::size_t{1} << 20;

// Parse and validate; throws config_error("file:line:col: setting: what").
// `text`, if given, receives the text that was parsed (SIGHUP diffs it).
profile load_profile(const std::string& path, std::string* text = nullptr);
profile parse_profile(std::string_view text, const std::string& path_for_messages);

// The settings that differ between two profile texts, as dotted paths
// ("limits.headroom_pct", "port[0].mtu", "session[1].listener[0].ip"): a
// key present in one and not the other counts as changed (even if it holds
// the default). Both texts must parse (load them first).
std::vector<std::string> changed_settings(std::string_view old_text, std::string_view new_text);

// The secrets `next` read from files under the same path as `running` but
// with other contents: api.token_file, api.tls_cert, api.tls_key, fleet.trunk_key_file,
// fleet.etcd_password_file and the static sessions' and speakers' SRTP
// key files ("session[0].srtp_key[1].key_file"). A file rewritten in place
// changes no profile text, so changed_settings() cannot see it, and none
// of these can change live: stentord adds them to a SIGHUP's changed
// settings so the reload is refused naming them instead of logging
// "nothing changed" while the old secret stays in use. (join.keys, which
// rotate live, are control_plane.h's join_secret_changes.)
std::vector<std::string> secret_file_changes(const profile& running, const profile& next);

// Dotted quad helpers (host byte order).
std::optional<uint32_t> parse_ipv4(std::string_view s);
std::string format_ipv4(uint32_t ip);

// Why an IPv4 address can never be a unicast peer, whatever the profile, or
// nullopt: unspecified, 0.0.0.0/8, loopback, limited broadcast, multicast,
// class E, link-local. ipv6_special applies it to the IPv4 address inside
// a NAT64 or 6to4 address.
std::optional<std::string> ipv4_special(uint32_t ip);

// Why a listener address may not be registered, or nullopt if it may.
// Refuses unspecified, loopback, multicast, broadcast (limited and the
// directed broadcast of any relay subnet), link-local, class E, and the
// relay's own addresses.
std::optional<std::string> check_listener_ip(uint32_t ip, const profile& p);

// The rules a session, a speaker and a listener meet against a profile, the
// same for a static [[session]] and for the API: the profile names
// file:line:col of `setting`, the API answers 400 "<setting>: <reason>".
// `setting` is the key both spell alike ("frame_ms", "ip", "tier").
struct setting_error {
    std::string setting;
    std::string reason;
};
std::optional<setting_error> check_session(const session_params& s, const profile& p);
std::optional<setting_error> check_speaker(const speaker_spec& s, const profile& p);
// The SSRC rule needs the session too: mandatory unless ingress.require_ssrc
// is false, and always for recorded or mixed sessions (issue 10 items 2, 4).
std::optional<setting_error> check_speaker_ssrc(const speaker_spec& s, const session_params& session,
                                                const profile& p);
std::optional<setting_error> check_listener(const listener_spec& l, const profile& p);
// The rules of an IPv6 speaker's or listener's address and port, the one
// copy a static peer and the actions share ("<role> address X refused: ..."):
// ipv6_peer_refusal (ip6.h), the relay's own addresses, the subnet-router
// anycast address of a port's prefix. check_speaker and check_listener call
// it; relay_state adds the route (route6: "no route to ...") and the tier.
std::optional<setting_error> check_peer6(std::string_view role, const ipv6_addr& ip, unsigned port, const profile& p);

}  // namespace stentor::control
