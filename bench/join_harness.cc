// join_harness: the listener join path (issue 11) under load, on real EAL
// with a ring ethdev and the relay's own worker and join desk, all driven on
// the main lcore (launch=false, control plane without publisher thread): one
// core does RX, verification, the desk, fan-out and TX, and the harness's own
// client work (building mbufs, reading every frame sent) runs on it too, so
// every figure below is a lower bound for the relay alone.
//
//   1. verify   join requests (valid, distinct tokens and ip:port) through
//               the real RX stage (parse, join_input: STUN parse, token
//               decode, budget; join_flush per RX burst: HMAC-SHA256 tag,
//               HMAC-SHA1 MESSAGE-INTEGRITY of the burst in ipsec-mb's lanes,
//               MP enqueue on join_ring); the harness takes join_ring as the
//               desk would and puts the same mbufs back on the RX ring.
//               join_verified per second, median and spread over --reps 1 s
//               windows (the median of the faster half and the rate per
//               second of CPU time printed beside it), beside OpenSSL's HMAC() one-shot (EVP_sha1, the
//               22-byte password as key) over a message of the request's size,
//               on the same core, windows interleaved; then the same relay
//               path with MESSAGE-INTEGRITY one by one (SHA-NI alone).
//   2. flood    forged requests (valid shape, tag wrong) as fast as the core
//               takes them while session 1 streams (50 packets/s) to 1000
//               listeners: forged drops per second and the stream's loss
//               (replicas expected vs seen on the wire). Then the same with
//               [join] verify_per_s low: the excess is drop/join/budget.
//   3. flash    --joins N token joins from N distinct ip:port against the
//               streaming session, unlimited join buckets: seconds until the
//               desk counted N joined. Each client's first request is
//               answered 438 with its cookie and the client asks again with
//               it (docs/join.md "The cookie"): two requests per join, the
//               second built by the harness when it reads the 438. Loss: tier-0 listeners (100 static
//               ones and every 1000th joiner) must get every packet the
//               speaker sent after their success response; the other joiners
//               are tier 1 (one core cannot fan out 50 packets/s to 1 M; the
//               frame deadline abandons them, counted as tier-1 misses).
//               Then a session join bucket of --bucket per second: admitted
//               rate vs the bucket, refusals answered 429.
//   4. consent  refreshes of already-joined listeners through RX + desk +
//               response: time per refresh, x 200 000 = share of a core.
//   5. split    verification on the RX lcore vs on a dedicated join lcore
//               (dataplane.join_lcores), side by side. Unlike 1-4 the
//               workers run on their own lcores (EAL --lcores, --split-lcores;
//               lcore 1: RX + fan-out, lcore 2: the join lcore), the desk and
//               the publisher on their threads, the harness's clients on the
//               main lcore: a forged flood as fast as the RX lcore takes it
//               (at most 1024 queued on the RX ring, so the stream's packets
//               always get in), valid joins offered at --split-joins per
//               second, session 1 streaming 50 packets/s to 1000 listeners,
//               for --split-seconds. Per mode: the stream's loss, forged
//               requests dropped per second (any reason), valid joins
//               admitted per second, each worker's busy share.
//
// Last line:
//   RESULT join_verify_per_s=<x> hmac_ref_per_s=<y> flash_1m_joins_s=<t> flash_lost=<n> forged_flood_lost=<n>
//          split_lost_rx=<n> split_lost_join=<n> split_joins_rx=<x> split_joins_join=<y>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include "control_plane.h"
#include "drivers.h"
#include "jsonl.h"
#include "join_desk.h"
#include "reference.h"
#include "relay.h"
#include "stentor/dp_shared.h"
#include "stentor/join_token.h"
#include "stentor/stun.h"

namespace {

using namespace stentor;
using clk = std::chrono::steady_clock;
using bench::stats;
using bench::summarise;

constexpr uint32_t relay_ip = 0xc6120001;     // 198.18.0.1
constexpr uint32_t gateway_ip = 0xc61200fe;   // 198.18.0.254
constexpr uint32_t speaker_ip = 0xc612000a;   // 198.18.0.10
constexpr uint16_t session_port = 40000;
constexpr uint8_t relay_mac[6] = {0x02, 0x53, 0x54, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 6> gateway_mac = {0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe};
constexpr uint32_t static_base = 0x0b000001;  // 11.0.0.1..: static tier-0 listeners, port 6000
constexpr unsigned probe_every = 1000;        // every 1000th joiner is tier 0
const std::vector<uint8_t> secret(40, 0x11);

double secs(clk::time_point a, clk::time_point b) { return std::chrono::duration<double>(b - a).count(); }

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }

uint32_t sum16(uint32_t s, const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) s += get16(p + i);
    if (n & 1) s += uint32_t{p[n - 1]} << 8;
    return s;
}
uint16_t fold(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(~s);
}

// Clients: 10.0.0.1.. with 16 ports each (20000..20015), off-link through
// the gateway (static MAC: no ARP on the way).
uint32_t client_ip(uint32_t i) { return 0x0a000001 + (i >> 4); }
uint16_t client_port(uint32_t i) { return static_cast<uint16_t>(20000 + (i & 15)); }
int64_t client_of(uint32_t ip, uint16_t port) {
    if (ip < 0x0a000001 || ip >= 0x0b000000 || port < 20000 || port >= 20016) return -1;
    return int64_t{ip - 0x0a000001} << 4 | (port - 20000);
}

// Ethernet/IPv4/UDP around `payload`, checksums valid.
void udp_frame(uint8_t* b, uint32_t src_ip, uint16_t src_port, uint16_t dst_port, const uint8_t* payload,
               size_t len) {
    std::memcpy(b, relay_mac, 6);
    const uint8_t src_mac[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe};
    std::memcpy(b + 6, src_mac, 6);
    put16(b + 12, 0x0800);
    uint8_t* ip = b + 14;
    std::memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(28 + len));
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, src_ip);
    put32(ip + 16, relay_ip);
    put16(ip + 10, fold(sum16(0, ip, 20)));
    uint8_t* u = ip + 20;
    put16(u, src_port);
    put16(u + 2, dst_port);
    put16(u + 4, static_cast<uint16_t>(8 + len));
    put16(u + 6, 0);
    std::memcpy(u + 8, payload, len);
    uint32_t s = sum16(0, ip + 12, 8) + 17 + static_cast<uint32_t>(8 + len);
    s = sum16(s, u, 8 + len);
    const uint16_t c = fold(s);
    put16(u + 6, c == 0 ? 0xffff : c);
}

// The speaker's packet number travels in the RTP timestamp (seq x 960).
constexpr size_t rtp_frame_len = 14 + 20 + 8 + 12 + 80;   // 134 B
void rtp_frame(uint8_t* b, uint32_t seq) {
    uint8_t rtp[92] = {};
    rtp[0] = 0x80;
    rtp[1] = 111;
    put16(rtp + 2, static_cast<uint16_t>(seq));
    put32(rtp + 4, seq * 960u);
    put32(rtp + 8, 1234);
    udp_frame(b, speaker_ip, 5004, session_port, rtp, sizeof rtp);
}

// n join requests, frame after frame, all of one length: each client's
// first request. The relay answers it 438 with the client's cookie
// (docs/join.md "The cookie"); the client then asks with it, a request
// 20 bytes longer, kept per client in buf2 (built when the 438 is read,
// on this core like the rest of the clients' work) for its later requests.
struct request_set {
    size_t len = 0;
    uint32_t n = 0;
    uint32_t first = 0;
    bool all_tier0 = false, forged = false;
    uint64_t nonce_base = 0;
    uint32_t expiry = 0;
    std::vector<uint8_t> buf;
    size_t len2 = 0;                          // len + stun::cookie_attr_len
    mutable std::vector<uint8_t> buf2;        // each client's request with its last cookie
    mutable std::vector<uint8_t> has2;        // buf2 holds one
    const uint8_t* at(uint32_t i) const { return buf.data() + size_t{i} * len; }
    const uint8_t* at2(uint32_t i) const { return buf2.data() + size_t{i} * len2; }
    size_t stun_len() const { return len - 42; }
};

const join::token_key& harness_key() {
    static const join::token_key key(secret.data(), secret.size());
    return key;
}

// Client s.first + k's request frame (with `cookie` when not null) at `out`;
// its length.
size_t make_request(const request_set& s, uint32_t k, const uint8_t* cookie, uint8_t* out) {
    const uint32_t i = s.first + k;
    join::token_fields f;
    f.key_id = 1;
    f.session_id = 1;
    f.tier = s.all_tier0 || i % probe_every == 0 ? 0 : 1;
    f.expiry = s.expiry;
    f.nonce = s.nonce_base + i;
    std::string password;
    std::string token = join::mint_token(harness_key(), f, password);
    if (s.forged) token[40] = token[40] == 'A' ? 'B' : 'A';
    uint8_t txid[stun::txid_len];
    for (size_t j = 0; j < sizeof txid; ++j) txid[j] = static_cast<uint8_t>((i >> (8 * (j % 4))) + j);
    stun::request_options o;
    o.cookie = cookie;
    uint8_t msg[stun::max_request_len];
    const size_t ml = stun::build_request(msg, sizeof msg, txid, token, password.data(), password.size(), o);
    if (ml == 0) {
        std::fprintf(stderr, "join_harness: build_request failed\n");
        std::exit(1);
    }
    udp_frame(out, client_ip(i), client_port(i), session_port, msg, ml);
    return 42 + ml;
}

// Clients first .. first+n-1; tier 0 for every probe_every-th client (tier
// 1 otherwise, or all tier 0); `forged`: one character of the tag changed
// (the request is still signed with the right password).
request_set build_requests(uint32_t first, uint32_t n, bool all_tier0, bool forged, uint64_t nonce_base) {
    request_set s;
    s.n = n;
    s.first = first;
    s.all_tier0 = all_tier0;
    s.forged = forged;
    s.nonce_base = nonce_base;
    s.expiry = static_cast<uint32_t>(std::time(nullptr) + 3600);
    uint8_t frame[42 + stun::max_request_len];
    for (uint32_t k = 0; k < n; ++k) {
        const size_t fl = make_request(s, k, nullptr, frame);
        if (s.len == 0) {
            s.len = fl;
            s.buf.resize(s.len * n);
        } else if (fl != s.len) {
            std::fprintf(stderr, "join_harness: requests of different lengths\n");
            std::exit(1);
        }
        std::memcpy(s.buf.data() + size_t{k} * s.len, frame, fl);
    }
    s.len2 = s.len + stun::cookie_attr_len;
    s.buf2.resize(s.len2 * n);
    s.has2.assign(n, 0);
    return s;
}

rte_mempool* harness_pool() {
    static rte_mempool* mp = rte_pktmbuf_pool_create("jh_clients", 65535, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (mp == nullptr) {
        std::fprintf(stderr, "join_harness: client pool\n");
        std::exit(1);
    }
    return mp;
}

struct knobs {
    unsigned verify_per_s = 4000000000u;
    unsigned join_rate_per_s = 4000000000u;
    unsigned session_join_rate_per_s = 4000000000u;
    unsigned nb_static = 0;
    unsigned frame_deadline_us = 2000;
    // Section 5: workers launched on lcores 1 (RX + fan-out) and 2 (join
    // lcore when join_lcore), desk and publisher on their threads.
    bool launched = false;
    bool join_lcore = false;
    uint8_t mi_mode = 0;   // relay_options::join_mi_mode: 0 lanes (ipsec-mb), 1 one by one
    unsigned speaker_burst_pct = 10;   // limits.speaker_burst_pct (--count-rtp: the policer out of the way)
};

// One relay on a fresh ring port, session 1 on UDP 40000 with the speaker
// and nb_static tier-0 listeners, the join key, the control plane and desk.
struct relay_env {
    rte_ring* rx = nullptr;
    rte_ring* tx = nullptr;
    uint16_t port_id = 0;
    control::profile p;
    std::unique_ptr<control::relay> r;
    std::unique_ptr<control::control_plane> cp;

    explicit relay_env(const knobs& k) {
        static unsigned serial = 0;
        const std::string name = "jh" + std::to_string(serial++);
        rx = rte_ring_create((name + "_r").c_str(), 16384, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        tx = rte_ring_create((name + "_t").c_str(), 65536, 0, RING_F_SC_DEQ);
        if (rx == nullptr || tx == nullptr) throw std::runtime_error("ring create");
        rte_ring* txs[4] = {tx, tx, tx, tx};
        const int id = rte_eth_from_rings(name.c_str(), &rx, 1, txs, 4, 0);
        if (id < 0) throw std::runtime_error("rte_eth_from_rings");
        port_id = static_cast<uint16_t>(id);
        char dev[RTE_ETH_NAME_MAX_LEN];
        rte_eth_dev_get_name_by_port(port_id, dev);

        p.path = "join_harness";
        p.eal.lcores = {0};
        p.eal.mbufs = 65535;
        p.eal.mbuf_cache = 256;
        p.dataplane.rx_lcores = {0};
        p.dataplane.fanout_lcores = {0};
        if (k.launched) {
            p.eal.lcores = {0, 1, 2};
            p.dataplane.rx_lcores = {1};
            p.dataplane.fanout_lcores = {1};
            if (k.join_lcore) p.dataplane.join_lcores = {2};
        }
        p.dataplane.frame_deadline_us = k.frame_deadline_us;
        p.dataplane.stats_interval_s = 0;
        control::port_config pc;
        pc.name = "lan0";
        pc.device = dev;
        pc.ipv4 = relay_ip;
        pc.prefix_len = 24;
        pc.gateway = gateway_ip;
        pc.gateway_mac = gateway_mac;
        pc.mac = std::array<uint8_t, 6>{relay_mac[0], relay_mac[1], relay_mac[2], relay_mac[3], relay_mac[4],
                                        relay_mac[5]};
        pc.line_rate_mbps = 1000000;   // admission must not be what limits the benchmark
        pc.rx_desc = 1024;
        pc.tx_desc = 1024;
        p.ports.push_back(pc);
        p.limits.max_listeners = 2500000;
        p.limits.max_listeners_per_session = 2500000;
        p.limits.fanout_pps_per_core = 4000000000u;
        p.limits.join_rate_per_s = k.join_rate_per_s;
        p.limits.session_join_rate_per_s = k.session_join_rate_per_s;
        p.limits.join_resolve_ms = 0;   // next hop is the gateway's static MAC
        p.limits.speaker_burst_pct = k.speaker_burst_pct;
        control::join_key jk;
        jk.id = 1;
        jk.secret = secret;
        p.join.keys.push_back(jk);
        p.join.mint_key_id = 1;
        p.join.verify_per_s = k.verify_per_s;
        p.join.consent_timeout_s = 3600;   // a 1 M flash crowd on one core outlasts the default 30 s
        control::session_config sc;
        sc.id = 1;
        sc.udp_port = session_port;
        sc.max_bitrate_kbps = 32;
        sc.speakers.push_back({speaker_ip, 5004, 1234});
        for (unsigned i = 0; i < k.nb_static; ++i) sc.listeners.push_back({static_base + i, 6000, 0});
        p.sessions.push_back(sc);

        control::relay_options ro;
        ro.launch = k.launched;
        ro.join_mi_mode = k.mi_mode;
        r = std::make_unique<control::relay>(p, ro);
        control::control_options co;
        co.publisher = k.launched;
        cp = std::make_unique<control::control_plane>(*r, p, co);
        r->state().load_static(p);
        cp->commit();
        if (k.launched) {
            r->start();
            cp->start();
            cp->commit();
        } else {
            r->poll();
            r->flush();
        }
        drop_tx();
    }
    ~relay_env() {
        cp->stop();
        cp.reset();
        r->stop();
        r.reset();
    }
    control::join_desk& desk() { return *cp->desk(); }
    uint64_t counter(const char* name) const {
        for (const auto& [k, v] : r->counters(true))
            if (k == name) return v;
        std::fprintf(stderr, "join_harness: no counter %s\n", name);
        std::exit(1);
    }
    void drop_tx() {
        void* objs[256];
        unsigned n;
        while ((n = rte_ring_dequeue_burst(tx, objs, 256, nullptr)) > 0)
            rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
    }
    // Copies of `n` frames (of `len` bytes from `at(i)`) onto the RX ring.
    template <typename F>
    unsigned inject(unsigned n, size_t len, F&& at) {
        rte_mbuf* ms[64];
        n = std::min(n, 64u);
        n = std::min(n, rte_ring_free_count(rx));
        if (n == 0 || rte_pktmbuf_alloc_bulk(harness_pool(), ms, n) != 0) return 0;
        for (unsigned i = 0; i < n; ++i) {
            std::memcpy(rte_pktmbuf_append(ms[i], static_cast<uint16_t>(len)), at(i), len);
            ms[i]->port = port_id;
        }
        const unsigned e = rte_ring_sp_enqueue_burst(rx, reinterpret_cast<void**>(ms), n, nullptr);
        if (e < n) rte_pktmbuf_free_bulk(ms + e, n - e);
        return e;
    }
    bool inject_rtp(uint32_t seq) {
        uint8_t f[rtp_frame_len];
        rtp_frame(f, seq);
        return inject(1, sizeof f, [&](unsigned) { return f; }) == 1;
    }
    // Polls the worker until the RX ring is empty and a round did no work.
    void settle() {
        for (int i = 0; i < 10000; ++i)
            if (r->poll() == 0 && rte_ring_count(rx) == 0) break;
        r->flush();
    }
};

// What the harness reads on the wire.
struct wire_counts {
    uint64_t replicas_static = 0;     // to the static tier-0 listeners, counted from `from_seq`
    uint64_t replicas_other = 0;
    uint64_t success = 0;
    uint64_t errors = 0;
    uint64_t err_429 = 0;
    uint64_t challenged = 0;         // 438 with a cookie: the client asks again with it
    uint64_t other = 0;
};

struct reader {
    explicit reader(relay_env& env) : e(env) {}
    relay_env& e;
    wire_counts c;
    uint32_t static_from = 0;                 // count static replicas with seq > this
    unsigned nb_static = 0;
    std::vector<uint32_t>* mark = nullptr;    // per client: seq when its success was seen (UINT32_MAX: not yet)
    std::vector<uint32_t>* got = nullptr;     // per client: replicas with seq > mark
    const uint32_t* seq_now = nullptr;        // the speaker's last packet number
    const request_set* reqs = nullptr;        // the clients answered 438: their request with the cookie
    std::vector<uint32_t> again;              // ... built, to be sent (from again_pos on)
    size_t again_pos = 0;

    // The requests of the clients challenged since the last call, into the
    // RX ring (as many as fit).
    void send_again(relay_env& env) {
        while (again_pos < again.size() && rte_ring_free_count(env.rx) > 64) {
            const unsigned n = static_cast<unsigned>(std::min<size_t>(64, again.size() - again_pos));
            const unsigned k = env.inject(n, reqs->len2, [&](unsigned i) { return reqs->at2(again[again_pos + i]); });
            if (k == 0) break;
            again_pos += k;
        }
        if (again_pos == again.size()) {
            again.clear();
            again_pos = 0;
        }
    }

    void drain() {
        void* objs[256];
        unsigned n;
        while ((n = rte_ring_dequeue_burst(e.tx, objs, 256, nullptr)) > 0) {
            for (unsigned i = 0; i < n; ++i) look(static_cast<rte_mbuf*>(objs[i]));
            rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
        }
    }
    void look(const rte_mbuf* m) {
        const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
        if (m->data_len < 62 || get16(d + 12) != 0x0800 || d[23] != 17) {
            ++c.other;
            return;
        }
        const uint32_t dst = get32(d + 30);
        const uint16_t dport = get16(d + 36);
        const uint8_t* pl = d + 42;
        if (pl[0] == 0x80) {   // RTP replica
            const uint32_t seq = get32(pl + 4) / 960u;
            if (dst >= static_base && dst < static_base + nb_static) {
                if (seq > static_from) ++c.replicas_static;
                return;
            }
            ++c.replicas_other;
            const int64_t k = client_of(dst, dport);
            if (mark != nullptr && k >= 0 && static_cast<size_t>(k) < mark->size() && seq > (*mark)[k]) ++(*got)[k];
            return;
        }
        const uint16_t type = get16(pl);
        if (type == stun::binding_success) {
            ++c.success;
            const int64_t k = client_of(dst, dport);
            if (mark != nullptr && k >= 0 && static_cast<size_t>(k) < mark->size() && (*mark)[k] == UINT32_MAX)
                (*mark)[k] = *seq_now;
        } else if (type == stun::binding_error) {
            stun::response_view v;
            const bool parsed = stun::parse_response(pl, m->data_len - 42u, v) == stun::stun_error::ok;
            if (parsed && v.error_code == 438 && v.has_cookie && reqs != nullptr) {
                const int64_t i = client_of(dst, dport);
                const int64_t k = i - int64_t{reqs->first};
                if (k >= 0 && k < int64_t{reqs->n}) {
                    ++c.challenged;
                    make_request(*reqs, static_cast<uint32_t>(k), v.cookie,
                                 reqs->buf2.data() + static_cast<size_t>(k) * reqs->len2);
                    reqs->has2[static_cast<size_t>(k)] = 1;
                    again.push_back(static_cast<uint32_t>(k));
                    return;
                }
            }
            ++c.errors;
            if (parsed && v.error_code == 429) ++c.err_429;
        } else {
            ++c.other;
        }
    }
};

// Polls the worker until a round does no work (RX empty, fan-out jobs done),
// reading the wire every few rounds; bounded. Before the desk's pass: on
// one core the desk would otherwise hold up a speaker packet's fan-out past
// its deadline, which a relay (desk on its own thread) never does.
void pump(relay_env& e, reader& rd) {
    for (int i = 1; i < 100000; ++i) {
        const unsigned n = e.r->poll();
        if (i % 8 == 0) {
            e.r->flush();
            rd.drain();
        }
        if (n == 0 && rte_ring_count(e.rx) == 0) break;
    }
    e.r->flush();
    rd.drain();
}

// ---------------------------------------------------------------- 1. verify

// The CPU time this thread has had (not the time it waited for a CPU).
double thread_cpu_s() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// One window's rate: per second of wall time (the figure), and per second
// of this thread's CPU time (what the window would have given had no other
// process taken the CPU away meanwhile).
struct window_rate {
    double wall = 0;
    double cpu = 0;
};

// join_verified per second through the worker for `window` seconds. The
// request mbufs cycle: RX ring -> worker -> join_ring -> (harness) -> RX ring.
window_rate verify_window(relay_env& e, double window) {
    rte_ring* jr = e.r->shared().join_ring;
    const uint64_t v0 = e.r->totals().join_verified;
    const auto t0 = clk::now();
    const double c0 = thread_cpu_s();
    double el = 0;
    void* objs[256];
    while ((el = secs(t0, clk::now())) < window) {
        for (int i = 0; i < 64; ++i) e.r->poll();
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst(jr, objs, 256, nullptr)) > 0)
            rte_ring_sp_enqueue_burst(e.rx, objs, n, nullptr);
    }
    const double cpu = thread_cpu_s() - c0;
    const auto done = static_cast<double>(e.r->totals().join_verified - v0);
    return {done / el, cpu > 0 ? done / cpu : 0};
}

// OpenSSL's HMAC() one-shot, SHA-1, the 22-byte password as key, over `len`
// bytes: MESSAGE-INTEGRITY's MAC alone, per second.
double hmac_window(size_t len, double window) {
    std::vector<uint8_t> msg(len, 0x5a);
    const char key[] = "abcdefghijklmnopqrstuv";   // 22 characters, as join_password_len
    uint8_t out[EVP_MAX_MD_SIZE];
    unsigned out_len = 0;
    uint64_t n = 0;
    const auto t0 = clk::now();
    double el = 0;
    volatile uint8_t sink = 0;
    while ((el = secs(t0, clk::now())) < window) {
        for (int i = 0; i < 256; ++i) {
            msg[0] = static_cast<uint8_t>(n);
            HMAC(EVP_sha1(), key, 22, msg.data(), msg.size(), out, &out_len);
            sink = sink ^ out[0];
            ++n;
        }
    }
    return static_cast<double>(n) / el;
}

// --count-verified K: exactly K verifications (about: whole bursts) through
// the worker, no clock, then exit. For callgrind (bench/count_join_instructions.sh):
// two runs of K and 3K, whose difference inside worker_poll is the
// instructions of 2K verified requests, set-up and warm-up cancelled.
// mi_mode as relay_options::join_mi_mode (0 lanes, 1 one by one).
int count_verified(const request_set& set, uint64_t k, uint8_t mi_mode) {
    knobs kn;
    kn.mi_mode = mi_mode;
    relay_env e(kn);
    const uint32_t n = std::min<uint32_t>(4096, set.n);
    for (uint32_t i = 0; i < n; ++i) e.inject(1, set.len, [&](unsigned) { return set.at(i); });
    rte_ring* jr = e.r->shared().join_ring;
    const uint64_t v0 = e.r->totals().join_verified;
    void* objs[256];
    uint64_t polls = 0;
    while (e.r->totals().join_verified - v0 < k) {
        for (int i = 0; i < 16; ++i, ++polls) e.r->poll();
        unsigned got;
        while ((got = rte_ring_sc_dequeue_burst(jr, objs, 256, nullptr)) > 0)
            rte_ring_sp_enqueue_burst(e.rx, objs, got, nullptr);
    }
    const uint64_t verified = e.r->totals().join_verified - v0;
    std::printf("COUNT verified=%llu polls=%llu\n", static_cast<unsigned long long>(verified),
                static_cast<unsigned long long>(polls));
    while (rte_ring_count(e.rx) > 0) e.r->poll();
    unsigned got;
    while ((got = rte_ring_sc_dequeue_burst(jr, objs, 256, nullptr)) > 0)
        rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), got);
    return verified >= k ? 0 : 1;
}

// --count-rtp K: K speaker packets (IPv4, the registered speaker, session 1,
// one static tier-0 listener) through the same worker, no clock, then exit:
// what a speaker packet costs from RX to its one replica's TX (classifier,
// flow lookup, UDP checksum, RTP plausibility, policer, publish, fan-out),
// for callgrind beside the join path (bench/count_join_instructions.sh
// BUILD_DIR rtp), so that a change to the shared RX stage is seen on both.
// Sequence numbers advance by one and the timestamp stays put, and the
// policer's rate is set far above what a core sends: under valgrind the
// packets come much faster than 50/s in TSC time, and every one must pass.
int count_rtp(uint64_t k) {
    knobs kn;
    kn.nb_static = 1;
    kn.speaker_burst_pct = 10000000;
    relay_env e(kn);
    const uint64_t in0 = e.r->totals().rtp_in;
    uint32_t seq = 1;
    uint64_t polls = 0;
    uint8_t frames[32][rtp_frame_len];
    while (e.r->totals().rtp_in - in0 < k) {
        for (auto& f : frames) {
            uint8_t rtp[92] = {};
            rtp[0] = 0x80;
            rtp[1] = 111;
            put16(rtp + 2, static_cast<uint16_t>(seq++));   // the timestamp (0) stays: see above
            put32(rtp + 8, 1234);
            udp_frame(f, speaker_ip, 5004, session_port, rtp, sizeof rtp);
        }
        const unsigned n = e.inject(32, rtp_frame_len, [&](unsigned i) { return frames[i]; });
        seq -= 32 - n;
        for (int i = 0; i < 4; ++i, ++polls) e.r->poll();
        e.drop_tx();
    }
    const auto t = e.r->totals();
    std::printf("COUNT rtp_in=%llu replicas_out=%llu polls=%llu\n", static_cast<unsigned long long>(t.rtp_in - in0),
                static_cast<unsigned long long>(t.replicas_out), static_cast<unsigned long long>(polls));
    return t.rtp_in - in0 >= k && t.replicas_out >= k ? 0 : 1;
}

void print_rate(const char* what, const stats& s, const char* unit, double scale) {
    const double spread = s.median > 0 ? 100.0 * (s.max - s.min) / s.median : 0;
    std::printf("%-44s median %8.3f %s  min %8.3f  max %8.3f  spread %5.1f%%\n", what, s.median / scale, unit,
                s.min / scale, s.max / scale, spread);
}

// The median of the better half of the windows (the ceil(n/2) fastest):
// on a shared machine a window is only ever made slower by what else runs,
// so this says what the code does when left alone. Printed beside the
// median, never instead of it (the RESULT line carries the median).
double best_half_median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end(), std::greater<>());
    v.resize((v.size() + 1) / 2);
    return summarise(v).median;
}

void print_windows(const char* what, const std::vector<window_rate>& w, const char* unit, double scale) {
    std::vector<double> wall, cpu;
    for (const auto& r : w) {
        wall.push_back(r.wall);
        cpu.push_back(r.cpu);
    }
    print_rate(what, summarise(wall), unit, scale);
    std::printf("%-44s median %8.3f %s; per second of CPU time: median %8.3f %s\n", "  best half of the windows",
                best_half_median(wall) / scale, unit, summarise(cpu).median / scale, unit);
}

// ---------------------------------------------------------------- 2. flood

struct flood_result {
    double forged_per_s;
    double budget_per_s;
    double rx_per_s;
    uint64_t expected;
    uint64_t seen;
    uint64_t lost;
};

// Forged requests as fast as the worker takes them, speaker at 50 packets/s
// to nb_static listeners, for `seconds`. The forged mbufs are recycled: their
// refcount is set to 2 before each pass, so the worker's free leaves them to
// the harness unchanged.
flood_result flood(relay_env& e, const request_set& forged, unsigned nb_static, double seconds) {
    std::vector<rte_mbuf*> ms(forged.n);
    if (rte_pktmbuf_alloc_bulk(harness_pool(), ms.data(), forged.n) != 0) {
        std::fprintf(stderr, "join_harness: pool too small for the forged set\n");
        std::exit(1);
    }
    for (uint32_t i = 0; i < forged.n; ++i) {
        std::memcpy(rte_pktmbuf_append(ms[i], static_cast<uint16_t>(forged.len)), forged.at(i), forged.len);
        ms[i]->port = e.port_id;
    }
    reader rd(e);
    rd.nb_static = nb_static;
    uint32_t seq = 0;
    rd.seq_now = &seq;
    const uint64_t f0 = e.counter("drop/join/forged"), b0 = e.counter("drop/join/budget");
    const uint64_t rx0 = e.r->totals().rx_packets;
    const auto t0 = clk::now();
    auto next_rtp = t0;
    uint32_t pos = 0;
    while (secs(t0, clk::now()) < seconds) {
        if (clk::now() >= next_rtp) {
            if (e.inject_rtp(seq + 1)) ++seq;
            next_rtp += std::chrono::milliseconds(20);
        }
        // At most 1024 queued (< forged.n): an mbuf is back in the set
        // before it is queued again.
        const unsigned queued = rte_ring_count(e.rx);
        unsigned room = queued < 1024 ? std::min(256u, 1024 - queued) : 0;
        while (room > 0) {
            const unsigned n = std::min(room, forged.n - pos);
            for (unsigned i = 0; i < n; ++i) rte_mbuf_refcnt_set(ms[pos + i], 2);
            rte_ring_sp_enqueue_burst(e.rx, reinterpret_cast<void**>(ms.data() + pos), n, nullptr);
            pos = (pos + n) % forged.n;
            room -= n;
        }
        for (int i = 0; i < 8; ++i) e.r->poll();
        e.r->flush();
        rd.drain();
    }
    const double el = secs(t0, clk::now());
    e.settle();
    rd.drain();
    flood_result fr{};
    fr.forged_per_s = static_cast<double>(e.counter("drop/join/forged") - f0) / el;
    fr.budget_per_s = static_cast<double>(e.counter("drop/join/budget") - b0) / el;
    fr.rx_per_s = static_cast<double>(e.r->totals().rx_packets - rx0) / el;
    fr.expected = uint64_t{seq} * nb_static;
    fr.seen = rd.c.replicas_static;
    fr.lost = fr.expected > fr.seen ? fr.expected - fr.seen : 0;
    for (auto* m : ms) {
        rte_mbuf_refcnt_set(m, 1);
        rte_pktmbuf_free(m);
    }
    return fr;
}

// ---------------------------------------------------------------- 3. flash

struct flash_result {
    double seconds = 0;
    uint64_t joined = 0;
    uint64_t expected = 0;   // replicas owed to tier-0 listeners
    uint64_t lost = 0;
    uint64_t probes = 0;
    uint64_t success = 0, errors = 0, err_429 = 0;
    uint64_t challenged = 0;   // first requests answered 438 with a cookie (each client asked again with it)
    bool complete = false;
    double steady_per_s = 0;   // stop_after runs: joined per second from stop_after/3 to the end
    uint64_t resent = 0;       // requests sent again by clients whose answer was lost
};

// Clients send their request and wait for the answer (at most `window`
// unanswered, as a crowd behind NATs would be paced by its own
// retransmission timers), and send it again when the answer was lost; the
// speaker sends 50 packets/s throughout.
// `stop_after` > 0: run for that many seconds instead of until all joined.
// `offer_per_s` > 0: the clients' requests are spread evenly at that rate.
flash_result flash(relay_env& e, const request_set& reqs, unsigned nb_static, double stop_after, unsigned window,
                   double timeout_s, double offer_per_s = 0) {
    flash_result fr;
    std::vector<uint32_t> mark(reqs.n, UINT32_MAX), got(reqs.n, 0);
    uint32_t seq = 0;
    reader rd(e);
    rd.nb_static = nb_static;
    rd.mark = &mark;
    rd.got = &got;
    rd.seq_now = &seq;
    rd.reqs = &reqs;
    const uint64_t joined0 = e.desk().stats().joined;
    uint32_t sent = 0;
    const auto t0 = clk::now();
    auto next_rtp = t0;
    clk::time_point t_done{};
    double t_mid = -1;
    uint64_t joined_mid = 0;
    uint64_t last_answered = 0;
    uint32_t resend_pos = UINT32_MAX;   // >= sent: no retransmission sweep under way
    auto last_progress = t0;
    while (true) {
        const auto now = clk::now();
        const double el = secs(t0, now);
        if (stop_after > 0 ? el >= stop_after : el >= timeout_s) break;
        // The bucket starts full (one second of its rate): the steady rate
        // is read after the first third.
        if (stop_after > 0 && t_mid < 0 && el >= stop_after / 3) {
            t_mid = el;
            joined_mid = e.desk().stats().joined;
        }
        if (now >= next_rtp) {
            if (e.inject_rtp(seq + 1)) ++seq;
            next_rtp += std::chrono::milliseconds(20);
        }
        const uint64_t answered = rd.c.success + rd.c.errors;
        const uint32_t may = offer_per_s > 0 ? std::min<uint32_t>(reqs.n, static_cast<uint32_t>(offer_per_s * el) + 1)
                                             : reqs.n;
        while (sent < may && sent - answered < window && rte_ring_free_count(e.rx) > 64) {
            const unsigned n = std::min<unsigned>(64u, may - sent);
            const unsigned k = e.inject(n, reqs.len, [&](unsigned i) { return reqs.at(sent + i); });
            if (k == 0) break;
            sent += k;
        }
        // Clients retransmit (RFC 8489 6.2.1: a request whose answer does not
        // come is sent again): an answer can be lost like any datagram, here
        // when the stream to the crowd fills the TX ring. No new answer for
        // 100 ms: every client still waiting sends its request again (the
        // relay answers a joined one as a refresh). Unlimited buckets only:
        // with a bucket the offered rate is the experiment.
        if (offer_per_s <= 0) {
            if (answered != last_answered) {
                last_answered = answered;
                last_progress = now;
            } else if (now - last_progress > std::chrono::milliseconds(100) && resend_pos >= sent) {
                resend_pos = 0;
                last_progress = now;
            }
            // Each client sends what it would: its request with its cookie
            // once it has one, else its first.
            while (resend_pos < sent && rte_ring_free_count(e.rx) > 64) {
                uint32_t idx[64];
                unsigned n = 0;
                const bool cooked = reqs.has2[resend_pos] != 0;
                while (resend_pos < sent && n < 64 && (reqs.has2[resend_pos] != 0) == cooked) {
                    if (mark[resend_pos] == UINT32_MAX) idx[n++] = resend_pos;
                    ++resend_pos;
                }
                if (n == 0) continue;
                const unsigned k = cooked ? e.inject(n, reqs.len2, [&](unsigned i) { return reqs.at2(idx[i]); })
                                          : e.inject(n, reqs.len, [&](unsigned i) { return reqs.at(idx[i]); });
                fr.resent += k;
                if (k < n) {
                    resend_pos = idx[k];
                    break;
                }
            }
        }
        pump(e, rd);
        rd.send_again(e);
        e.desk().poll(clk::now());
        pump(e, rd);
        rd.send_again(e);
        if (stop_after <= 0 && e.desk().stats().joined - joined0 >= reqs.n) {
            t_done = clk::now();
            fr.complete = true;
            break;
        }
    }
    fr.seconds = secs(t0, fr.complete ? t_done : clk::now());
    if (t_mid >= 0) fr.steady_per_s = (e.desk().stats().joined - joined_mid) / (fr.seconds - t_mid);
    // Stream on for 200 ms so the last admitted hear something, then settle.
    const auto t1 = clk::now();
    while (secs(t1, clk::now()) < 0.2) {
        if (clk::now() >= next_rtp) {
            if (e.inject_rtp(seq + 1)) ++seq;
            next_rtp += std::chrono::milliseconds(20);
        }
        e.r->poll();
        e.desk().poll(clk::now());
        e.r->flush();
        rd.drain();
    }
    e.settle();
    rd.drain();
    fr.joined = e.desk().stats().joined - joined0;
    fr.success = rd.c.success;
    fr.errors = rd.c.errors;
    fr.challenged = rd.c.challenged;
    fr.err_429 = rd.c.err_429;
    // Owed: every packet after the success was seen, to each tier-0 listener.
    fr.expected = uint64_t{seq} * nb_static;
    uint64_t got_total = rd.c.replicas_static;
    for (uint32_t i = 0; i < reqs.n; i += probe_every) {
        if (mark[i] == UINT32_MAX) continue;
        ++fr.probes;
        fr.expected += seq - mark[i];
        got_total += got[i];
    }
    fr.lost = fr.expected > got_total ? fr.expected - got_total : 0;
    return fr;
}

// ---------------------------------------------------------------- 4. consent

// The first n clients (joined) send their request again: a consent refresh
// each. Seconds for all n answered, no stream meanwhile.
double refresh(relay_env& e, const request_set& reqs, uint32_t n, uint64_t& refreshed) {
    reader rd(e);
    uint32_t seq = 0;
    rd.seq_now = &seq;
    rd.reqs = &reqs;
    const uint64_t r0 = e.desk().stats().refreshed;
    uint32_t sent = 0;
    const auto t0 = clk::now();
    // Joined clients refresh with the cookie of their last answer (the
    // flash's); one that is challenged (a cookie past its slots) asks again.
    while (e.desk().stats().refreshed - r0 < n && secs(t0, clk::now()) < 120) {
        while (sent < n && sent - rd.c.success < 8192 && rte_ring_free_count(e.rx) > 64) {
            const unsigned k = e.inject(std::min<unsigned>(64u, n - sent), reqs.len2,
                                        [&](unsigned i) { return reqs.at2(sent + i); });
            if (k == 0) break;
            sent += k;
        }
        pump(e, rd);
        rd.send_again(e);
        e.desk().poll(clk::now());
        pump(e, rd);
        rd.send_again(e);
    }
    const double s = secs(t0, clk::now());
    refreshed = e.desk().stats().refreshed - r0;
    e.settle();
    rd.drain();
    return s;
}

// ---------------------------------------------------------------- 5. split

struct split_result {
    uint64_t expected = 0, seen = 0, lost = 0;   // stream replicas to the static listeners
    double forged_dropped_per_s = 0;             // forged requests dropped, any reason
    double joins_offered_per_s = 0;
    double joins_per_s = 0;                      // admitted by the desk
    double rx_busy = 0, join_busy = 0;           // worker busy share
    uint64_t handoff_full = 0, budget = 0;
};

// Launched workers; the harness (main lcore) offers the load and reads the
// wire. Forged mbufs are recycled by refcount: set to 2 before queueing, the
// relay's free brings it back to 1, and only then is it queued again (with a
// join lcore an mbuf may wait in the hand-off ring long after RX took it).
split_result split_run(relay_env& e, const request_set& forged, const request_set& valid, unsigned nb_static,
                       double seconds, double joins_per_s) {
    std::vector<rte_mbuf*> ms(forged.n);
    if (rte_pktmbuf_alloc_bulk(harness_pool(), ms.data(), forged.n) != 0) {
        std::fprintf(stderr, "join_harness: pool too small for the forged set\n");
        std::exit(1);
    }
    for (uint32_t i = 0; i < forged.n; ++i) {
        std::memcpy(rte_pktmbuf_append(ms[i], static_cast<uint16_t>(forged.len)), forged.at(i), forged.len);
        ms[i]->port = e.port_id;
    }
    reader rd(e);
    rd.nb_static = nb_static;
    uint32_t seq = 0;
    rd.seq_now = &seq;
    rd.reqs = &valid;
    auto forged_drops = [&e] {
        return e.counter("drop/join/forged") + e.counter("drop/join/budget") + e.counter("drop/join/handoff_full");
    };
    const uint64_t d0 = forged_drops(), hf0 = e.counter("drop/join/handoff_full"), b0 = e.counter("drop/join/budget");
    const uint64_t j0 = e.desk().stats().joined;
    const auto l0 = e.r->per_lcore();
    const auto t0 = clk::now();
    auto next_rtp = t0;
    uint32_t pos = 0, sent_valid = 0;
    double el = 0;
    while ((el = secs(t0, clk::now())) < seconds) {
        if (clk::now() >= next_rtp) {
            if (e.inject_rtp(seq + 1)) ++seq;
            next_rtp += std::chrono::milliseconds(20);
        }
        const auto due = std::min<uint32_t>(valid.n, static_cast<uint32_t>(joins_per_s * el));
        while (sent_valid < due) {
            const unsigned k = e.inject(std::min<unsigned>(64u, due - sent_valid), valid.len,
                                        [&](unsigned i) { return valid.at(sent_valid + i); });
            if (k == 0) break;
            sent_valid += k;
        }
        const unsigned queued = rte_ring_count(e.rx);
        unsigned room = queued < 1024 ? std::min(256u, 1024 - queued) : 0;
        rte_mbuf* batch[256];
        unsigned nb = 0;
        for (uint32_t tries = 0; nb < room && tries < forged.n; ++tries, pos = (pos + 1) % forged.n)
            if (rte_mbuf_refcnt_read(ms[pos]) == 1) {
                rte_mbuf_refcnt_set(ms[pos], 2);
                batch[nb++] = ms[pos];
            }
        const unsigned q = rte_ring_sp_enqueue_burst(e.rx, reinterpret_cast<void**>(batch), nb, nullptr);
        for (unsigned i = q; i < nb; ++i) rte_mbuf_refcnt_set(batch[i], 1);
        rd.drain();
        rd.send_again(e);
    }
    const auto l1 = e.r->per_lcore();
    const uint64_t d1 = forged_drops(), j1 = e.desk().stats().joined;
    // The stream's last packets and the joins in flight, then the wire.
    const auto t1 = clk::now();
    while (secs(t1, clk::now()) < 0.3) rd.drain();
    split_result out;
    out.expected = uint64_t{seq} * nb_static;
    out.seen = rd.c.replicas_static;
    out.lost = out.expected > out.seen ? out.expected - out.seen : 0;
    out.forged_dropped_per_s = static_cast<double>(d1 - d0) / el;
    out.joins_offered_per_s = sent_valid / el;
    out.joins_per_s = static_cast<double>(j1 - j0) / el;
    out.handoff_full = e.counter("drop/join/handoff_full") - hf0;
    out.budget = e.counter("drop/join/budget") - b0;
    auto busy = [&](size_t i) {
        if (i >= l1.size()) return 0.0;
        const double b = static_cast<double>(l1[i].busy_cycles - l0[i].busy_cycles);
        const double idle = static_cast<double>(l1[i].idle_cycles - l0[i].idle_cycles);
        return b + idle > 0 ? b / (b + idle) : 0.0;
    };
    out.rx_busy = busy(0);
    out.join_busy = busy(1);
    // Every forged mbuf back (refcount 1), then freed.
    const auto t2 = clk::now();
    for (auto* m : ms) {
        while (rte_mbuf_refcnt_read(m) != 1 && secs(t2, clk::now()) < 5) rd.drain();
        if (rte_mbuf_refcnt_read(m) == 1) rte_pktmbuf_free(m);
    }
    return out;
}

void machine_facts() {
    std::ifstream f("/proc/cpuinfo");
    std::string line, model = "?";
    bool sha = false, have_flags = false;
    while (std::getline(f, line)) {
        if (model == "?" && line.rfind("model name", 0) == 0) model = line.substr(line.find(':') + 2);
        if (!have_flags && line.rfind("flags", 0) == 0) {
            have_flags = true;
            sha = line.find(" sha_ni") != std::string::npos;
        }
    }
    std::printf("# machine: %s; %ld CPUs online; SHA-NI %s; %s\n", model.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN),
                sha ? "yes" : "no", OpenSSL_version(OPENSSL_VERSION));
}

}  // namespace

int main(int argc, char** argv) {
    uint32_t joins = 1000000;
    unsigned reps = 11;
    double window = 1.0;
    double flood_s = 3.0;
    unsigned bucket = 20000;
    double bucket_s = 3.0;
    double split_s = 3.0;
    double split_joins = 20000;
    std::string split_lcores;   // EAL --lcores map; default below
    bool split_only = false;
    uint64_t count_k = 0;          // --count-verified
    uint8_t count_mi = 0;          // --count-mi lanes|single
    uint64_t count_rtp_k = 0;      // --count-rtp
    std::string json_path;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (a == "--split-only") {
            split_only = true;
            continue;
        }
        if (v == nullptr && a != "--help") {
            std::fprintf(stderr, "join_harness: %s needs a value\n", a.c_str());
            return 2;
        }
        if (a == "--joins") joins = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
        else if (a == "--reps") reps = static_cast<unsigned>(std::atoi(v));
        else if (a == "--window") window = std::atof(v);
        else if (a == "--flood-seconds") flood_s = std::atof(v);
        else if (a == "--bucket") bucket = static_cast<unsigned>(std::atoi(v));
        else if (a == "--bucket-seconds") bucket_s = std::atof(v);
        else if (a == "--split-seconds") split_s = std::atof(v);
        else if (a == "--split-joins") split_joins = std::atof(v);
        else if (a == "--split-lcores") split_lcores = v;
        else if (a == "--json") json_path = v;
        else if (a == "--count-verified") count_k = std::strtoull(v, nullptr, 10);
        else if (a == "--count-rtp") count_rtp_k = std::strtoull(v, nullptr, 10);
        else if (a == "--count-mi" && (std::strcmp(v, "lanes") == 0 || std::strcmp(v, "single") == 0))
            count_mi = std::strcmp(v, "single") == 0 ? 1 : 0;
        else {
            std::printf("usage: join_harness [--joins N (1000000)] [--reps R (11)] [--window S (1)]\n"
                        "                    [--flood-seconds S (3)] [--bucket J/s (20000)] [--bucket-seconds S (3)]\n"
                        "                    [--split-seconds S (3)] [--split-joins J/s (20000)]\n"
                        "                    [--split-lcores EAL-LCORES-MAP (0@0,1@1,2@2; 2@1 below 3 CPUs)] [--split-only]\n"
                        "                    [--json FILE (every measure as JSON lines, scripts/bench-report.py)]\n"
                        "                    [--count-verified K [--count-mi lanes|single]] (K verifications, no clock,\n"
                        "                     for callgrind: bench/count_join_instructions.sh)\n"
                        "                    [--count-rtp K] (K speaker packets, one listener, no clock, for callgrind)\n");
            return a == "--help" ? 0 : 2;
        }
        ++i;
    }
    reps = std::max(5u, reps);
    joins = std::max(joins, 1000u);
    bench::jsonl out;
    if (!out.open(json_path)) return 2;

    machine_facts();
    std::printf("# one core (EAL main lcore) runs the relay's worker, the join desk and the harness's clients\n");
    std::fflush(stdout);

    // Lcores 0 (main: everything of sections 1-4, the clients of 5), 1 and
    // 2 (section 5's RX + fan-out and join lcores), mapped to CPUs with
    // EAL's --lcores: on a machine with fewer than 3 CPUs lcores 1 and 2
    // share CPU 1, and section 5 then measures two busy-pollers on one CPU.
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (split_lcores.empty()) split_lcores = cpus >= 3 ? "0@0,1@1,2@2" : "0@0,1@1,2@1";
    drivers::eal_params ep;
    ep.lcores = {0};
    ep.memory_mb = 1024;
    ep.file_prefix = "stentor-join-" + std::to_string(::getpid());
    ep.log_level = "error";
    {
        std::vector<std::string> args = drivers::eal_argv(ep);
        for (size_t i = 0; i + 1 < args.size(); ++i)
            if (args[i] == "-l") {
                args[i] = "--lcores";
                args[i + 1] = split_lcores;
            }
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
            std::fprintf(stderr, "join_harness: EAL initialisation failed (--lcores %s)\n", split_lcores.c_str());
            return 1;
        }
    }
    harness_pool();

    if (count_k > 0 || count_rtp_k > 0) {
        int crc = 1;
        try {
            crc = count_rtp_k > 0 ? count_rtp(count_rtp_k)
                                  : count_verified(build_requests(0, 4096, false, false, 1u << 20), count_k, count_mi);
        } catch (const std::exception& ex) {
            std::fprintf(stderr, "join_harness: %s\n", ex.what());
        }
        drivers::eal_cleanup();
        return crc;
    }

    const auto b0 = clk::now();
    const request_set crowd = build_requests(0, split_only ? 1000 : joins, false, false, 1u << 20);
    std::printf("# built %u join requests (%zu-byte frames, STUN %zu B) in %.1f s\n", crowd.n, crowd.len,
                crowd.stun_len(), secs(b0, clk::now()));
    std::fflush(stdout);

    stats verify{}, ref{}, verify_single{};
    std::vector<double> verify_v, ref_v;
    std::vector<window_rate> verify_w, verify_single_w;
    flood_result fl_a{}, fl_b{};
    flash_result fa{}, fb{};
    double refresh_s = 0;
    uint64_t refreshed = 0;
    uint32_t nb_refresh = 0;
    uint64_t ring_full = 0, tier1_misses = 0, deadline = 0, tx_full = 0, reply_full = 0;
    int rc = 0;
    split_result sp_rx{}, sp_join{};
    try {
        if (!split_only) {   // sections 1-4
        // 1. Verifications per second, interleaved with the HMAC reference;
        // then again with MESSAGE-INTEGRITY one by one (no ipsec-mb lanes).
        for (const uint8_t mi_mode : {uint8_t{0}, uint8_t{1}}) {
            knobs kn;
            kn.mi_mode = mi_mode;
            relay_env e(kn);
            const uint32_t k = std::min<uint32_t>(4096, crowd.n);
            for (uint32_t i = 0; i < k; ++i)
                e.inject(1, crowd.len, [&](unsigned) { return crowd.at(i); });
            verify_window(e, 0.3);   // warm-up
            hmac_window(crowd.stun_len(), 0.3);
            std::vector<double> v, h;
            std::vector<window_rate> w;
            for (unsigned i = 0; i < reps; ++i) {
                w.push_back(verify_window(e, window));
                v.push_back(w.back().wall);
                if (mi_mode == 0) h.push_back(hmac_window(crowd.stun_len(), window));
            }
            if (mi_mode == 0) {
                verify = summarise(v);
                ref = summarise(h);
                verify_v = v;
                ref_v = h;
                verify_w = w;
            } else {
                verify_single = summarise(v);
                verify_single_w = w;
            }
            uint64_t malformed = e.counter("drop/join/forged") + e.counter("drop/join/bad_integrity") +
                                 e.counter("drop/join/ring_full");
            for (auto r = static_cast<size_t>(dp::drop_reason::join_stun_too_short); r < dp::nb_drop_reasons; ++r)
                malformed += e.counter(("drop/" + std::string(dp::drop_reason_names[r])).c_str());
            if (malformed != 0) {
                std::printf("# ERROR: %llu requests of the valid set were dropped\n",
                            static_cast<unsigned long long>(malformed));
                rc = 1;
            }
            // Free the cycling set.
            void* objs[256];
            unsigned n;
            while (rte_ring_count(e.rx) > 0) e.r->poll();
            while ((n = rte_ring_sc_dequeue_burst(e.r->shared().join_ring, objs, 256, nullptr)) > 0)
                rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
        }
        std::printf("\n1. join verification, one core (%u x %.1f s windows)\n", reps, window);
        print_windows("join_verified (RX stage, both MACs, ring)", verify_w, "M/s", 1e6);
        print_windows("  the same, MESSAGE-INTEGRITY one by one", verify_single_w, "M/s", 1e6);
        print_rate("reference: HMAC() SHA-1 one-shot, same size", ref, "M/s", 1e6);
        std::printf("   goal >= 2.000 M/s; verify/reference %.2f (OpenSSL 3's HMAC() fetches the digest and allocates a\n"
                    "   context on every call; the relay keeps each key's HMAC-SHA256 chaining values and feeds whole\n"
                    "   blocks to SHA256_Transform/SHA1_Transform (sha_block.h), so it can beat the reference)\n",
                    ref.median > 0 ? verify.median / ref.median : 0);
        std::fflush(stdout);

        // 2. Forged flood while streaming; then with a small verify budget.
        const request_set forged = build_requests(0, 4096, true, true, 1u << 30);
        {
            knobs k;
            k.nb_static = 1000;
            relay_env e(k);
            fl_a = flood(e, forged, k.nb_static, flood_s);
        }
        const unsigned low_budget = 50000;
        {
            knobs k;
            k.nb_static = 1000;
            k.verify_per_s = low_budget;
            relay_env e(k);
            fl_b = flood(e, forged, k.nb_static, flood_s);
        }
        std::printf("\n2. forged flood while session 1 streams to 1000 listeners (%.1f s)\n", flood_s);
        std::printf("   verify_per_s unlimited: rx %.3f M/s, drop/join/forged %.3f M/s, budget %.3f M/s; "
                    "stream: expected %llu, seen %llu, lost %llu (goal 0)\n",
                    fl_a.rx_per_s / 1e6, fl_a.forged_per_s / 1e6, fl_a.budget_per_s / 1e6,
                    static_cast<unsigned long long>(fl_a.expected), static_cast<unsigned long long>(fl_a.seen),
                    static_cast<unsigned long long>(fl_a.lost));
        std::printf("   verify_per_s %u:    rx %.3f M/s, drop/join/forged %.3f M/s (budget %u/s + 50 ms burst), "
                    "drop/join/budget %.3f M/s (no MAC); stream lost %llu\n",
                    low_budget, fl_b.rx_per_s / 1e6, fl_b.forged_per_s / 1e6, low_budget, fl_b.budget_per_s / 1e6,
                    static_cast<unsigned long long>(fl_b.lost));
        std::fflush(stdout);

        // 3. Flash crowd at unlimited buckets, then consent refreshes of the
        // same listeners (4), then a configured bucket.
        {
            knobs k;
            k.nb_static = 100;
            relay_env e(k);
            fa = flash(e, crowd, k.nb_static, 0, 16384, 600);
            const auto t = e.r->totals();
            ring_full = e.counter("drop/join/ring_full");
            tier1_misses = t.tier_misses[1];
            deadline = e.counter("drop/egress/deadline");
            tx_full = e.counter("drop/egress/tx_full");
            reply_full = e.desk().stats().reply_ring_full;
            nb_refresh = static_cast<uint32_t>(std::min<uint64_t>(fa.joined, 200000));
            refresh_s = refresh(e, crowd, nb_refresh, refreshed);
        }
        std::printf("\n3. flash crowd: %u token joins, distinct ip:port, unlimited join buckets, stream 50 packets/s\n",
                    crowd.n);
        std::printf("   %s: %llu joined in %.3f s (%.0f joins/s); answers: %llu 438 with a cookie, %llu success, %llu error; "
                    "join/ring_full %llu; requests sent again after a lost answer %llu (egress/tx_full %llu, "
                    "join/reply_ring_full %llu)\n",
                    fa.complete ? "all admitted" : "INCOMPLETE", static_cast<unsigned long long>(fa.joined),
                    fa.seconds, fa.joined / std::max(fa.seconds, 1e-9), static_cast<unsigned long long>(fa.challenged),
                    static_cast<unsigned long long>(fa.success),
                    static_cast<unsigned long long>(fa.errors), static_cast<unsigned long long>(ring_full),
                    static_cast<unsigned long long>(fa.resent),
                    static_cast<unsigned long long>(tx_full), static_cast<unsigned long long>(reply_full));
        std::printf("   tier-0 listeners (100 static + %llu joined probes): owed %llu packets, lost %llu (goal 0); "
                    "tier-1 joiners: %llu replicas abandoned at the frame deadline (%llu deadline drops)\n",
                    static_cast<unsigned long long>(fa.probes), static_cast<unsigned long long>(fa.expected),
                    static_cast<unsigned long long>(fa.lost), static_cast<unsigned long long>(tier1_misses),
                    static_cast<unsigned long long>(deadline));
        if (!fa.complete) rc = 1;
        std::printf("\n4. consent refresh: %llu of %u refreshes answered in %.3f s: %.2f us each; "
                    "200 000/s takes %.1f%% of a core\n",
                    static_cast<unsigned long long>(refreshed), nb_refresh, refresh_s,
                    refreshed ? 1e6 * refresh_s / refreshed : 0,
                    refreshed ? 100.0 * refresh_s / refreshed * 200000 : 0);
        std::fflush(stdout);
        {
            knobs k;
            k.nb_static = 100;
            k.session_join_rate_per_s = bucket;
            relay_env e(k);
            // Offered at 4 x the bucket, evenly over the run.
            const auto offer = static_cast<uint32_t>(bucket * bucket_s * 4 + 64);
            const request_set part = build_requests(0, offer, false, false, uint64_t{1} << 40);
            fb = flash(e, part, k.nb_static, bucket_s, 4096, 0, 4.0 * bucket);
            const auto st = e.desk().stats();
            std::printf("\n3b. session join bucket %u/s (burst: 1 s of it), %u joins offered evenly over %.1f s: %llu admitted, "
                        "%.0f/s after the first third (bucket %u/s), %llu refused rate_limited, %llu answered 429; "
                        "tier-0 lost %llu\n",
                        bucket, offer, bucket_s, static_cast<unsigned long long>(fb.joined), fb.steady_per_s, bucket,
                        static_cast<unsigned long long>(st.refused_rate_limited),
                        static_cast<unsigned long long>(fb.err_429), static_cast<unsigned long long>(fb.lost));
        }
        }   // sections 1-4
        // 5. Verification on the RX lcore vs on a join lcore, launched.
        {
            const request_set forged5 = build_requests(0, 8192, true, true, uint64_t{3} << 40);
            const auto nb_valid = static_cast<uint32_t>(split_joins * split_s + 64);
            const request_set valid5 = build_requests(1u << 20, nb_valid, true, false, uint64_t{5} << 40);
            for (const bool jl : {false, true}) {
                knobs k;
                k.nb_static = 1000;
                k.launched = true;
                k.join_lcore = jl;
                relay_env e(k);
                (jl ? sp_join : sp_rx) = split_run(e, forged5, valid5, k.nb_static, split_s, split_joins);
            }
            std::printf("\n5. verification on the RX lcore vs on a join lcore: launched workers (EAL --lcores %s;\n"
                        "   lcore 1 RX + fan-out, lcore 2 join), forged flood (<= 1024 queued), %.0f valid joins/s offered,\n"
                        "   stream 50 packets/s to 1000 listeners, %.1f s each, join.verify_per_s unlimited%s\n",
                        split_lcores.c_str(), split_joins, split_s,
                        cpus >= 3 ? "" : "\n   (fewer than 3 CPUs: lcores 1 and 2 share a CPU, so this compares oversubscribed runs)");
            std::printf("   %-36s %18s %18s\n", "", "verify on RX", "join lcore");
            std::printf("   %-36s %8llu / %-8llu %8llu / %-8llu\n", "stream lost / owed",
                        static_cast<unsigned long long>(sp_rx.lost), static_cast<unsigned long long>(sp_rx.expected),
                        static_cast<unsigned long long>(sp_join.lost), static_cast<unsigned long long>(sp_join.expected));
            std::printf("   %-36s %18.3f %18.3f\n", "forged dropped (M/s, any reason)", sp_rx.forged_dropped_per_s / 1e6,
                        sp_join.forged_dropped_per_s / 1e6);
            std::printf("   %-36s %18.0f %18.0f\n", "valid joins admitted (/s)", sp_rx.joins_per_s, sp_join.joins_per_s);
            std::printf("   %-36s %18.0f %18.0f\n", "valid joins offered (/s)", sp_rx.joins_offered_per_s,
                        sp_join.joins_offered_per_s);
            std::printf("   %-36s %18llu %18llu\n", "drop/join/handoff_full",
                        static_cast<unsigned long long>(sp_rx.handoff_full),
                        static_cast<unsigned long long>(sp_join.handoff_full));
            std::printf("   %-36s %17.1f%% %17.1f%%\n", "RX lcore busy", 100 * sp_rx.rx_busy, 100 * sp_join.rx_busy);
            std::printf("   %-36s %18s %17.1f%%\n", "join lcore busy", "-", 100 * sp_join.join_busy);
        }
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "join_harness: %s\n", ex.what());
        rc = 1;
    }
    drivers::eal_cleanup();
    std::vector<double> verify_cpu;
    for (const auto& r : verify_w) verify_cpu.push_back(r.cpu);
    out.write({{"bench", "join"}, {"kind", "verify"}, {"what", "token join requests verified per second, one core"},
               {"per_s", bench::series(verify_v, verify.median, verify.min, verify.max)},
               {"best_half_median_per_s", best_half_median(verify_v)},
               {"per_cpu_s_median", summarise(verify_cpu).median}});
    out.write({{"bench", "join"}, {"kind", "hmac_ref"}, {"what", "OpenSSL HMAC() SHA-1 one-shot of the same size, same core"},
               {"per_s", bench::series(ref_v, ref.median, ref.min, ref.max)}});
    out.write({{"bench", "join"}, {"kind", "flash"}, {"joins", fa.joined}, {"offered", crowd.n}, {"seconds", fa.seconds},
               {"per_s", fa.joined / std::max(fa.seconds, 1e-9)}, {"lost", fa.lost},
               {"what", "token joins from distinct ip:port, unlimited buckets, one core"}});
    out.write({{"bench", "join"}, {"kind", "bucket"}, {"bucket_per_s", bucket}, {"admitted_per_s", fb.steady_per_s},
               {"refused_429", fb.err_429}});
    out.write({{"bench", "join"}, {"kind", "result"}, {"join_verify_per_s", verify.median}, {"hmac_ref_per_s", ref.median},
               {"flash_1m_joins_s", fa.seconds}, {"flash_lost", fa.lost}, {"forged_flood_lost", fl_a.lost + fl_b.lost}});
    std::printf("RESULT join_verify_per_s=%.0f hmac_ref_per_s=%.0f flash_1m_joins_s=%.3f flash_lost=%llu "
                "forged_flood_lost=%llu split_lost_rx=%llu split_lost_join=%llu split_joins_rx=%.0f "
                "split_joins_join=%.0f\n",
                verify.median, ref.median, fa.seconds, static_cast<unsigned long long>(fa.lost),
                static_cast<unsigned long long>(fl_a.lost + fl_b.lost), static_cast<unsigned long long>(sp_rx.lost),
                static_cast<unsigned long long>(sp_join.lost), sp_rx.joins_per_s, sp_join.joins_per_s);
    return rc;
}
