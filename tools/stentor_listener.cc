// stentor-listener: a listener probe for the relay. Opens N UDP sockets on
// consecutive ports, receives them all from one thread through io_uring (one
// recvmsg in flight per socket, completions reaped in batches), and measures
// per listener what a real listener would suffer: loss, duplicates, reordering,
// RFC 3550 jitter and, when the speaker stamps its packets, one-way latency.
// Chosen listeners also get their audio decoded with libopus and written as WAV.
//
// With --join it is a token-join client (docs/join.md): it asks the relay for
// the stream with an authenticated STUN Binding Request from its receive
// socket, keeps consent by repeating it, and leaves with STENTOR-LEAVE.
//
// With --director it asks stentor-director where to join (docs/fleet.md),
// joins there, and moves when its edge fails: silence (no packet and no
// consent answer for --failover-after) or a 300 "draining" answer make it
// ask a director again (naming the edge it leaves), join the new edge and
// leave the old one. Each move's audio gap, from the receive timestamps of
// the last new packet before it and the first after it, is printed
// (a FAILOVER line) and kept in --json.
#include <arpa/inet.h>
#include <liburing.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opus/opus.h>

#include "director_client.h"
#include "net.h"
#include "rtp.h"
#include "rtp_stats.h"
#include "stentor/stun.h"
#include "wav.h"

namespace stentor::tools {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

// A listener normally hears one SSRC per forwarded speaker (or one for a mix);
// this caps what a stray sender can make us allocate.
constexpr std::size_t max_streams_per_listener = 16;
constexpr std::size_t recv_buf_len = 2048;
// A timestamp jump longer than this is a discontinuity (sender restart), not
// something to fill with concealment.
constexpr int64_t max_fill_samples = 60 * 48000;
// Bound on the audio kept for WAV output per stream (1 h of 20 ms frames).
constexpr std::size_t max_stored_packets = 180'000;

struct options {
    std::string listen;
    unsigned count = 1;
    double seconds = 0;
    double idle = 0;
    bool latency = false;
    std::string wav_dir;
    std::string wav_listeners;
    std::string json;
    bool no_uring = false;
    unsigned table_max = 50;
    bool quiet = false;
    // --join
    bool join = false;
    std::string relay;
    std::string token;
    std::string password;
    double consent_interval = 5;
    // --director (implies the token join; the placement brings relay, token, password)
    std::vector<std::string> directors;
    std::string director_token;
    uint32_t session = 0;
    unsigned tier = 1;
    std::string region;
    double failover_after = 1.0;
    double director_timeout = 1.0;
};

// Exit status when the relay refused the join for good (4xx other than 409 and 429).
constexpr int exit_join_refused = 3;

// One move from an edge to another (--director).
struct failover_event {
    std::string reason;           // "silence", "drain" or "refused"
    std::string from, to;
    int64_t last_before_ns = 0;   // receive time (CLOCK_REALTIME) of the last new packet before the move
    int64_t detected_ns = 0;      // CLOCK_REALTIME when the move began
    double place_ms = 0;          // the directors' answers, over every attempt
    unsigned attempts = 0;        // placement requests (retries and further moves included)
    unsigned hops = 0;            // edges tried before audio came back
    int64_t placed_mono = 0, joined_mono = 0;
    int64_t first_after_ns = 0;   // the first new packet after the join at the new edge
    int64_t max_gap_ns = 0;       // the longest wait for a new packet during the move
    bool closed = false;
};

// The token-join client state: one socket (listener 0), one relay.
struct join_client {
    endpoint relay;
    sock_addr relay_sa{};            // either family (IPv6: --relay [ADDRESS]:PORT)
    int64_t next_send = 0;           // monotonic ns
    int64_t backoff_ns = 0;          // before the first answer: 0.5 s doubling up to the consent interval
    // Transaction ids of the last requests: a late answer to one of them
    // still counts (RFC 8489 keeps a transaction open across retransmissions).
    std::array<std::array<uint8_t, stun::txid_len>, 4> txids{};
    unsigned next_txid = 0;
    std::array<uint8_t, stun::txid_len> leave_txid{};
    bool joined = false, fatal = false, leave_sent = false, left = false;
    uint64_t requests = 0, successes = 0, errors = 0, invalid = 0, stale = 0, foreign = 0, send_errors = 0;
    // STENTOR-COOKIE: the last one the relay sent (every answer carries
    // one), echoed in every request; a 438 (none, or too old) is answered
    // at once with the new one, a few times in a row at most.
    std::array<uint8_t, stun::cookie_len> cookie{};
    bool have_cookie = false;
    uint64_t challenges = 0;
    unsigned challenges_in_row = 0;
    std::string mapped;              // the relay's view of our address (XOR-MAPPED-ADDRESS)
    unsigned last_code = 0;
    std::string last_reason;
    std::string last_invalid;        // stun_error name or "bad_integrity" of the last invalid answer
    int64_t last_success = 0;
    std::string token, password;     // --token/--password, or the director's placement
    // --director
    std::string edge;                // the edge we are placed on
    bool placed = false;
    int64_t last_heard = 0;          // monotonic: the current edge's last packet or success answer (or its placement)
    int64_t probe_sent = 0;          // a consent request sent because the edge went quiet
    bool need_place = false;
    int64_t next_place = 0;
    unsigned place_backoff_ms = 0;
    unsigned moves_since_audio = 0;
    std::vector<std::string> exclude;
    uint64_t placements = 0, place_errors = 0;
    std::string last_place_error;
    struct previous {                // the edge left by a move: it gets a leave once the new edge answered
        bool active = false;
        endpoint relay;
        sock_addr sa{};
        std::string token, password, edge;
        std::array<uint8_t, stun::txid_len> leave_txid{};
        bool leave_sent = false;
    } prev;
    std::vector<failover_event> failovers;
    bool event_open = false;
};

struct latency_stats {
    uint64_t count = 0;
    int64_t min_ns = std::numeric_limits<int64_t>::max(), max_ns = std::numeric_limits<int64_t>::min();
    double sum_ns = 0;
    void add(int64_t ns) {
        ++count;
        min_ns = std::min(min_ns, ns);
        max_ns = std::max(max_ns, ns);
        sum_ns += static_cast<double>(ns);
    }
    void merge(const latency_stats& o) {
        count += o.count;
        min_ns = std::min(min_ns, o.min_ns);
        max_ns = std::max(max_ns, o.max_ns);
        sum_ns += o.sum_ns;
    }
    nlohmann::json to_json() const {
        if (!count) return nullptr;
        return {{"count", count}, {"min", static_cast<double>(min_ns) / 1e6}, {"avg", sum_ns / static_cast<double>(count) / 1e6},
                {"max", static_cast<double>(max_ns) / 1e6}};
    }
};

struct stored_packet {
    uint64_t ext_seq;
    uint32_t timestamp;
    uint32_t offset, length;  // into stream::arena
};

// One SSRC heard by one listener.
struct stream {
    uint32_t ssrc = 0;
    uint8_t payload_type = 0;
    rtp_stream_stats stats;
    uint64_t bytes = 0;
    uint64_t stamped = 0;
    uint64_t markers = 0;  // talkspurt starts: the first packet and the first after each DTX gap
    latency_stats latency;
    std::vector<stored_packet> stored;
    std::vector<uint8_t> arena;
    std::string wav_path;
    double wav_seconds = 0;
    uint64_t concealed_frames = 0;
};

struct listener {
    int fd = -1;
    uint16_t port = 0;
    bool want_wav = false;
    bool armed = false;
    std::vector<stream> streams;
    uint64_t invalid = 0, truncated = 0, overflow_ssrc = 0, recv_errors = 0;
    int last_error = 0;
    // Receive state for the one recvmsg in flight on this socket.
    msghdr msg{};
    iovec iov{};
    sockaddr_storage from{};
    alignas(cmsghdr) uint8_t control[64]{};
    uint8_t buf[recv_buf_len]{};

    void reset_msg() {
        iov = {buf, sizeof buf};
        msg = {};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
};

class probe {
public:
    explicit probe(const options& o) : o_(o) {}

    ~probe() {
        for (auto& l : listeners_)
            if (l.fd >= 0) ::close(l.fd);
    }

    void open() {
        const endpoint ep = parse_endpoint(o_.listen, "--listen");
        // A joining client may let the kernel pick its port: the relay
        // answers whatever address the request came from.
        if (ep.port == 0 && !o_.join) throw tool_error("--listen needs a port");
        if (director_mode()) {
            if (o_.count != 1) throw tool_error("--director works with --count 1 (one token admits one address)");
            if (o_.session == 0) throw tool_error("--director needs --session (1..4294967295)");
            if (o_.director_token.empty()) throw tool_error("--director needs --director-token (or STENTOR_DIRECTOR_TOKEN)");
            if (!(o_.consent_interval >= 0.2 && o_.consent_interval <= 3600))
                throw tool_error("--consent-interval must be between 0.2 and 3600 seconds");
            if (!(o_.failover_after >= 0.1 && o_.failover_after <= 600))
                throw tool_error("--failover-after must be between 0.1 and 600 seconds");
            director_ = std::make_unique<director_client>(o_.directors, o_.director_token,
                                                          static_cast<long>(o_.director_timeout * 1000));
            join_.need_place = true;
        } else if (o_.join) {
            if (o_.count != 1) throw tool_error("--join works with --count 1 (one token admits one address)");
            if (o_.token.empty() || o_.token.size() > stun::max_username_len)
                throw tool_error("--token must be 1.." + std::to_string(stun::max_username_len) + " characters");
            if (o_.password.empty()) throw tool_error("--password must not be empty");
            if (!(o_.consent_interval >= 0.2 && o_.consent_interval <= 3600))
                throw tool_error("--consent-interval must be between 0.2 and 3600 seconds");
            join_.relay = parse_endpoint(o_.relay, "--relay");
            if (join_.relay.port == 0) throw tool_error("--relay needs a port");
            if (join_.relay.v6 != ep.v6)
                throw tool_error("--relay and --listen must be of one family (IPv6: both [ADDRESS]:PORT)");
            join_.relay_sa = join_.relay.any();
            join_.token = o_.token;
            join_.password = o_.password;
        }
        if (static_cast<uint32_t>(ep.port) + o_.count - 1 > 65535) throw tool_error("--listen port + --count runs past 65535");
        base_ = ep;
        if (raise_fd_limit() < o_.count + 64ull) throw tool_error("RLIMIT_NOFILE is too low for --count " + std::to_string(o_.count));
        listeners_ = std::vector<listener>(o_.count);
        for (unsigned i = 0; i < o_.count; ++i) {
            listener& l = listeners_[i];
            l.fd = open_udp_socket(ep, static_cast<uint16_t>(i));
            l.port = static_cast<uint16_t>(ep.port + i);
            // Kernel receive timestamps: jitter and latency then exclude the time a
            // datagram waited in the socket for this thread.
            const int on = 1;
            setsockopt(l.fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
            // Room for a burst while the loop is busy with other sockets;
            // SO_RCVBUFFORCE only works as root, SO_RCVBUF is the fallback.
            const int sz = 1 << 20;
            if (setsockopt(l.fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
                setsockopt(l.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
        if (base_.port == 0) {   // --join with port 0: learn the port the kernel chose
            sockaddr_storage sa{};
            socklen_t sl = sizeof sa;
            if (getsockname(listeners_[0].fd, reinterpret_cast<sockaddr*>(&sa), &sl) != 0)
                throw tool_error(std::string("getsockname: ") + std::strerror(errno));
            base_.port = sock_addr_of(sa, sl).port();
            listeners_[0].port = base_.port;
        }
        if (!o_.wav_dir.empty()) {
            std::vector<uint64_t> chosen{0};
            if (!o_.wav_listeners.empty()) chosen = parse_index_list(o_.wav_listeners, "--wav-listeners");
            for (uint64_t i : chosen) {
                if (i >= o_.count) throw tool_error("--wav-listeners: " + std::to_string(i) + " is not below --count");
                listeners_[i].want_wav = true;
            }
            if (::mkdir(o_.wav_dir.c_str(), 0755) != 0 && errno != EEXIST)
                throw tool_error("--wav-dir " + o_.wav_dir + ": " + std::strerror(errno));
        } else if (!o_.wav_listeners.empty()) {
            throw tool_error("--wav-listeners needs --wav-dir");
        }
    }

    void run() {
        start_mono_ = monotonic_ns();
        if (!o_.no_uring) {
            const int r = setup_uring();
            if (r == 0) {
                backend_ = "io_uring";
                announce();
                run_uring();
                io_uring_queue_exit(&ring_);
                leave();
                finish_time();
                return;
            }
            std::fprintf(stderr, "stentor-listener: io_uring setup failed (%s); falling back to poll() over the sockets\n", std::strerror(-r));
        }
        backend_ = "poll";
        announce();
        run_poll();
        leave();
        finish_time();
    }

    // The run ended because the relay refused the join for good.
    bool join_refused() const { return o_.join && join_.fatal; }

    void write_wavs() {
        for (std::size_t i = 0; i < listeners_.size(); ++i) {
            listener& l = listeners_[i];
            if (!l.want_wav) continue;
            for (std::size_t s = 0; s < l.streams.size(); ++s) {
                stream& st = l.streams[s];
                // The first stream keeps the simple name the tests and docs use.
                st.wav_path = o_.wav_dir + "/listener-" + std::to_string(i) +
                              (s == 0 ? std::string() : "-ssrc-" + std::to_string(st.ssrc)) + ".wav";
                decode_to_wav(st);
            }
        }
    }

    nlohmann::json report() const {
        nlohmann::json j;
        j["backend"] = backend_;
        j["listen"] = base_.str();
        j["count"] = o_.count;
        j["duration_s"] = duration_s_;
        j["clock_hz"] = opus_rtp_clock_hz;
        nlohmann::json arr = nlohmann::json::array();
        uint64_t packets = 0, bytes = 0, expected = 0, dups = 0, reord = 0, invalid = 0, receiving = 0;
        int64_t lost = 0;
        double jitter_max = 0, jitter_sum = 0;
        latency_stats lat_all;
        for (std::size_t i = 0; i < listeners_.size(); ++i) {
            const listener& l = listeners_[i];
            nlohmann::json lj;
            uint64_t lp = 0, lb = 0, le = 0, ld = 0, lr = 0;
            int64_t ll = 0;
            double lj_ms = 0;
            latency_stats llat;
            nlohmann::json streams = nlohmann::json::array();
            for (const stream& s : l.streams) {
                lp += s.stats.received();
                lb += s.bytes;
                le += s.stats.expected();
                ll += s.stats.lost();
                ld += s.stats.duplicates();
                lr += s.stats.reordered();
                lj_ms = std::max(lj_ms, s.stats.jitter_ms(opus_rtp_clock_hz));
                llat.merge(s.latency);
                nlohmann::json sj{{"ssrc", s.ssrc},
                                  {"payload_type", s.payload_type},
                                  {"packets", s.stats.received()},
                                  {"bytes", s.bytes},
                                  {"expected", s.stats.expected()},
                                  {"lost", s.stats.lost()},
                                  {"duplicates", s.stats.duplicates()},
                                  {"reordered", s.stats.reordered()},
                                  {"jitter_ms", s.stats.jitter_ms(opus_rtp_clock_hz)},
                                  {"markers", s.markers},
                                  {"stamped", s.stamped},
                                  {"latency_ms", s.latency.to_json()}};
                if (!s.wav_path.empty()) {
                    sj["wav"] = s.wav_path;
                    sj["wav_seconds"] = s.wav_seconds;
                    sj["concealed_frames"] = s.concealed_frames;
                }
                streams.push_back(std::move(sj));
            }
            lj["index"] = i;
            lj["port"] = l.port;
            lj["packets"] = lp;
            lj["bytes"] = lb;
            lj["expected"] = le;
            lj["lost"] = ll;
            lj["loss_pct"] = le ? 100.0 * static_cast<double>(ll) / static_cast<double>(le) : 0.0;
            lj["duplicates"] = ld;
            lj["reordered"] = lr;
            lj["jitter_ms"] = lj_ms;
            lj["latency_ms"] = llat.to_json();
            lj["invalid"] = l.invalid;
            lj["truncated"] = l.truncated;
            lj["extra_ssrc_dropped"] = l.overflow_ssrc;
            lj["recv_errors"] = l.recv_errors;
            lj["streams"] = std::move(streams);
            lj["wav"] = !l.streams.empty() && !l.streams[0].wav_path.empty() ? nlohmann::json(l.streams[0].wav_path) : nlohmann::json(nullptr);
            arr.push_back(std::move(lj));
            packets += lp;
            bytes += lb;
            expected += le;
            lost += ll;
            dups += ld;
            reord += lr;
            invalid += l.invalid;
            receiving += lp ? 1 : 0;
            jitter_max = std::max(jitter_max, lj_ms);
            jitter_sum += lj_ms;
            lat_all.merge(llat);
        }
        j["listeners"] = std::move(arr);
        j["summary"] = {{"listeners", o_.count},
                        {"receiving", receiving},
                        {"packets", packets},
                        {"bytes", bytes},
                        {"expected", expected},
                        {"lost", lost},
                        {"loss_pct", expected ? 100.0 * static_cast<double>(lost) / static_cast<double>(expected) : 0.0},
                        {"duplicates", dups},
                        {"reordered", reord},
                        {"invalid", invalid},
                        {"jitter_ms_avg", receiving ? jitter_sum / static_cast<double>(receiving) : 0.0},
                        {"jitter_ms_max", jitter_max},
                        {"latency_ms", lat_all.to_json()}};
        if (o_.join) {
            j["join"] = {{"relay", join_.relay.str()},
                         {"joined", join_.joined},
                         {"mapped", join_.mapped.empty() ? nlohmann::json(nullptr) : nlohmann::json(join_.mapped)},
                         {"requests", join_.requests},
                         {"successes", join_.successes},
                         {"challenges", join_.challenges},
                         {"errors", join_.errors},
                         {"last_error", join_.last_code ? nlohmann::json{{"code", join_.last_code}, {"reason", join_.last_reason}}
                                                        : nlohmann::json(nullptr)},
                         {"invalid", join_.invalid},
                         {"stale", join_.stale},
                         {"foreign", join_.foreign},
                         {"send_errors", join_.send_errors},
                         {"left", join_.left}};
        }
        if (director_mode()) {
            nlohmann::json fo = nlohmann::json::array();
            for (const auto& e : join_.failovers) fo.push_back(event_json(e));
            j["director"] = {{"session", o_.session},
                             {"edge", join_.edge.empty() ? nlohmann::json(nullptr) : nlohmann::json(join_.edge)},
                             {"placements", join_.placements},
                             {"place_errors", join_.place_errors},
                             {"last_place_error", join_.last_place_error.empty() ? nlohmann::json(nullptr)
                                                                                : nlohmann::json(join_.last_place_error)},
                             {"failovers", std::move(fo)}};
        }
        return j;
    }

    // rows == 0 prints the summary (and WAV) lines only.
    void print_table(const nlohmann::json& r, unsigned rows) const {
        const bool lat = o_.latency;
        if (rows) std::printf("%6s %6s %10s %8s %8s %7s %6s %6s %9s%s\n", "idx", "port", "ssrc", "packets", "lost", "loss%", "dup", "reord",
                    "jitter_ms", lat ? "  lat_avg_ms lat_max_ms" : "");
        std::size_t shown = 0;
        for (const auto& l : r["listeners"]) {
            if (shown++ == rows) {
                if (rows) std::printf("   ... %zu more listeners (all of them are in --json)\n", listeners_.size() - rows);
                break;
            }
            std::string ssrc = "-";
            if (!l["streams"].empty()) {
                ssrc = std::to_string(l["streams"][0]["ssrc"].get<uint32_t>());
                if (l["streams"].size() > 1) ssrc += "+" + std::to_string(l["streams"].size() - 1);
            }
            std::printf("%6zu %6u %10s %8llu %8lld %7.3f %6llu %6llu %9.3f", l["index"].get<std::size_t>(), l["port"].get<unsigned>(),
                        ssrc.c_str(), l["packets"].get<unsigned long long>(), l["lost"].get<long long>(), l["loss_pct"].get<double>(),
                        l["duplicates"].get<unsigned long long>(), l["reordered"].get<unsigned long long>(), l["jitter_ms"].get<double>());
            if (lat) {
                if (l["latency_ms"].is_null())
                    std::printf("  %10s %10s", "n/a", "n/a");
                else
                    std::printf("  %10.3f %10.3f", l["latency_ms"]["avg"].get<double>(), l["latency_ms"]["max"].get<double>());
            }
            std::printf("\n");
        }
        const auto& s = r["summary"];
        std::printf("summary: %u listeners (%llu receiving) on %s via %s for %.2f s: packets %llu, lost %lld (%.3f %%), "
                    "duplicates %llu, reordered %llu, invalid %llu, jitter avg %.3f ms max %.3f ms",
                    o_.count, s["receiving"].get<unsigned long long>(), base_.str().c_str(), backend_.c_str(), duration_s_,
                    s["packets"].get<unsigned long long>(), s["lost"].get<long long>(), s["loss_pct"].get<double>(),
                    s["duplicates"].get<unsigned long long>(), s["reordered"].get<unsigned long long>(),
                    s["invalid"].get<unsigned long long>(), s["jitter_ms_avg"].get<double>(), s["jitter_ms_max"].get<double>());
        if (lat) {
            if (s["latency_ms"].is_null())
                std::printf(", latency n/a (no packet carried a send time: run stentor-speaker with --embed-time)");
            else
                std::printf(", latency min %.3f avg %.3f max %.3f ms", s["latency_ms"]["min"].get<double>(), s["latency_ms"]["avg"].get<double>(),
                            s["latency_ms"]["max"].get<double>());
        }
        std::printf("\n");
        if (r.contains("join")) {
            const auto& jn = r["join"];
            std::printf("join: relay %s, %s%s, requests %llu, successes %llu, errors %llu, invalid %llu, stale %llu, left %s\n",
                        jn["relay"].get<std::string>().c_str(), jn["joined"].get<bool>() ? "joined as " : "not joined",
                        jn["mapped"].is_null() ? "" : jn["mapped"].get<std::string>().c_str(),
                        jn["requests"].get<unsigned long long>(), jn["successes"].get<unsigned long long>(),
                        jn["errors"].get<unsigned long long>(), jn["invalid"].get<unsigned long long>(),
                        jn["stale"].get<unsigned long long>(), jn["left"].get<bool>() ? "yes" : "no");
        }
        if (r.contains("director")) {
            const auto& d = r["director"];
            double worst = -1;
            unsigned silent = 0;
            for (const auto& e : d["failovers"]) {
                if (e["gap_s"].is_null()) ++silent;
                else worst = std::max(worst, e["gap_s"].get<double>());
            }
            std::printf("director: session %u, on %s, placements %llu, placement errors %llu, failovers %zu (worst gap %s, "
                        "%u without audio since)\n",
                        o_.session, d["edge"].is_null() ? "no edge" : d["edge"].get<std::string>().c_str(),
                        d["placements"].get<unsigned long long>(), d["place_errors"].get<unsigned long long>(),
                        d["failovers"].size(), worst < 0 ? "-" : fmt_seconds(worst).c_str(), silent);
        }
        for (const auto& l : r["listeners"])
            for (const auto& st : l["streams"])
                if (st.contains("wav"))
                    std::printf("wav: listener %zu ssrc %u -> %s (%.3f s, %llu frames concealed)\n", l["index"].get<std::size_t>(),
                                st["ssrc"].get<uint32_t>(), st["wav"].get<std::string>().c_str(), st["wav_seconds"].get<double>(),
                                st["concealed_frames"].get<unsigned long long>());
    }

private:
    void announce() {
        std::fprintf(stderr, "stentor-listener: ready: %u socket(s) on %s..%u via %s\n", o_.count, base_.str().c_str(),
                     static_cast<unsigned>(base_.port + o_.count - 1), backend_.c_str());
    }

    void finish_time() { duration_s_ = static_cast<double>(monotonic_ns() - start_mono_) / 1e9; }

    // Whether the run is over; also yields how long the next wait may block.
    bool done(int64_t& wait_ns) const {
        if (g_stop.load()) return true;
        const int64_t now = monotonic_ns();
        wait_ns = 100'000'000;  // re-check the stop flag at least every 100 ms
        if (o_.seconds > 0) {
            const int64_t end = start_mono_ + static_cast<int64_t>(o_.seconds * 1e9);
            if (now >= end) return true;
            wait_ns = std::min(wait_ns, end - now);
        }
        if (o_.idle > 0 && last_packet_mono_ != 0) {
            const int64_t end = last_packet_mono_ + static_cast<int64_t>(o_.idle * 1e9);
            if (now >= end) return true;
            wait_ns = std::min(wait_ns, end - now);
        }
        return false;
    }

    int setup_uring() {
        // Completions for every armed socket must fit, or the kernel would have
        // to hold them back; the submission queue can be smaller (we submit when full).
        const unsigned sq = std::min(4096u, std::max(8u, o_.count));
        io_uring_params p{};
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = std::min(65536u, std::max(2 * sq, o_.count));
        return io_uring_queue_init_params(sq, &ring_, &p);
    }

    void arm(std::size_t i) {
        listener& l = listeners_[i];
        l.reset_msg();
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe) {
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        if (!sqe) {  // cannot happen right after a submit; keep the socket quiet rather than crash
            l.armed = false;
            return;
        }
        io_uring_prep_recvmsg(sqe, l.fd, &l.msg, 0);
        io_uring_sqe_set_data64(sqe, i);
        l.armed = true;
    }

    void run_uring() {
        for (std::size_t i = 0; i < listeners_.size(); ++i) arm(i);
        int64_t wait_ns = 0;
        while (!done(wait_ns)) {
            join_tick(wait_ns);
            __kernel_timespec ts{};
            ts.tv_sec = wait_ns / 1'000'000'000;
            ts.tv_nsec = wait_ns % 1'000'000'000;
            io_uring_cqe* cqe = nullptr;
            const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
            if (r < 0 && r != -ETIME && r != -EINTR) throw tool_error(std::string("io_uring wait: ") + std::strerror(-r));
            unsigned head = 0, seen = 0;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                const auto i = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
                listener& l = listeners_[i];
                if (cqe->res >= 0) {
                    on_datagram(l, static_cast<std::size_t>(cqe->res));
                    arm(i);
                } else if (cqe->res == -EAGAIN || cqe->res == -EINTR || cqe->res == -ENOBUFS || cqe->res == -ECONNREFUSED ||
                           cqe->res == -ENOMEM) {
                    ++l.recv_errors;
                    l.last_error = -cqe->res;
                    arm(i);
                } else {
                    // A persistent error (EBADF, ...) would spin if re-armed: stop this socket.
                    ++l.recv_errors;
                    l.last_error = -cqe->res;
                    l.armed = false;
                }
            }
            io_uring_cq_advance(&ring_, seen);
        }
    }

    void run_poll() {
        std::vector<pollfd> fds(listeners_.size());
        for (std::size_t i = 0; i < listeners_.size(); ++i) fds[i] = {listeners_[i].fd, POLLIN, 0};
        int64_t wait_ns = 0;
        while (!done(wait_ns)) {
            join_tick(wait_ns);
            const int r = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(1, wait_ns / 1'000'000)));
            if (r < 0 && errno != EINTR) throw tool_error(std::string("poll: ") + std::strerror(errno));
            if (r <= 0) continue;
            for (std::size_t i = 0; i < fds.size(); ++i) {
                if (!(fds[i].revents & POLLIN)) continue;
                listener& l = listeners_[i];
                for (int n = 0; n < 64; ++n) {  // drain a little, then be fair to the other sockets
                    l.reset_msg();
                    const ssize_t len = ::recvmsg(l.fd, &l.msg, MSG_DONTWAIT);
                    if (len < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK) {
                            ++l.recv_errors;
                            l.last_error = errno;
                        }
                        break;
                    }
                    on_datagram(l, static_cast<std::size_t>(len));
                }
            }
        }
    }

    static int64_t arrival_time(const msghdr& msg) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts{};
                std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
            }
        }
        return realtime_ns();
    }

    void on_datagram(listener& l, std::size_t len) {
        if (l.msg.msg_flags & MSG_TRUNC) {
            last_packet_mono_ = monotonic_ns();
            ++l.truncated;
            return;
        }
        // RFC 7983: a first byte of 0..3 is STUN, the relay's answers.
        if (o_.join && len > 0 && l.buf[0] < 4) {
            on_stun(l.buf, len, sock_addr_of(l.from, l.msg.msg_namelen));
            return;
        }
        last_packet_mono_ = monotonic_ns();
        const int64_t rx_ns = arrival_time(l.msg);
        const auto pkt = parse_rtp({l.buf, len});
        if (!pkt) {
            ++l.invalid;
            return;
        }
        stream* s = nullptr;
        for (auto& x : l.streams)
            if (x.ssrc == pkt->header.ssrc) s = &x;
        if (!s) {
            if (l.streams.size() == max_streams_per_listener) {
                ++l.overflow_ssrc;
                return;
            }
            s = &l.streams.emplace_back();
            s->ssrc = pkt->header.ssrc;
            s->payload_type = pkt->header.payload_type;
        }
        const arrival_kind kind = s->stats.on_packet(pkt->header.seq, pkt->header.timestamp, rx_ns, opus_rtp_clock_hz);
        if (director_mode()) on_heard(sock_addr_of(l.from, l.msg.msg_namelen), rx_ns, kind != arrival_kind::duplicate);
        s->bytes += len;
        if (pkt->header.marker && kind != arrival_kind::duplicate) ++s->markers;
        if (pkt->send_time_ns) {
            ++s->stamped;
            if (o_.latency && kind != arrival_kind::duplicate) s->latency.add(rx_ns - *pkt->send_time_ns);
        }
        if (l.want_wav && kind != arrival_kind::duplicate && s->stored.size() < max_stored_packets) {
            s->stored.push_back({s->stats.last_ext_seq(), pkt->header.timestamp, static_cast<uint32_t>(s->arena.size()),
                                 static_cast<uint32_t>(pkt->payload.size())});
            s->arena.insert(s->arena.end(), pkt->payload.begin(), pkt->payload.end());
        }
    }

    // ---- the token join (docs/join.md) ----

    // One Binding Request from listener 0's socket; its transaction id goes
    // to *txid_out when asked for.
    void send_stun(const sock_addr& to, const endpoint& to_ep, const std::string& token, const std::string& password,
                   bool leave, std::array<uint8_t, stun::txid_len>* txid_out, const uint8_t* cookie) {
        const listener& l = listeners_[0];
        std::array<uint8_t, stun::txid_len> txid{};
        if (getrandom(txid.data(), txid.size(), 0) != static_cast<ssize_t>(txid.size()))
            throw tool_error(std::string("getrandom: ") + std::strerror(errno));
        stun::request_options opt;
        opt.leave = leave;
        // SOFTWARE names the client in the relay's captures and leaves room
        // for a longer reason phrase (an error answer is never larger than
        // the request).
        opt.software = "stentor-listener";
        opt.cookie = cookie;
        uint8_t buf[stun::max_request_len];
        const std::size_t n =
            stun::build_request(buf, sizeof buf, txid.data(), token, password.data(), password.size(), opt);
        if (n == 0) throw tool_error("cannot build the join request (token too long?)");
        if (txid_out) *txid_out = txid;
        join_.txids[join_.next_txid++ % join_.txids.size()] = txid;
        ++join_.requests;
        if (::sendto(l.fd, buf, n, 0, to.sa(), to.len) < 0) {
            if (join_.send_errors++ == 0)
                std::fprintf(stderr, "stentor-listener: join: sendto %s: %s\n", to_ep.str().c_str(), std::strerror(errno));
        }
    }

    void send_request(bool leave) {
        send_stun(join_.relay_sa, join_.relay, join_.token, join_.password, leave, leave ? &join_.leave_txid : nullptr,
                  join_.have_cookie ? join_.cookie.data() : nullptr);
    }

    // Sends the next join / consent request when it is due; bounds the wait.
    void join_tick(int64_t& wait_ns) {
        if (!o_.join || join_.fatal) return;
        int64_t now = monotonic_ns();
        if (director_mode() && !director_tick(now, wait_ns)) return;
        now = monotonic_ns();
        const int64_t interval = static_cast<int64_t>(o_.consent_interval * 1e9);
        if (now >= join_.next_send) {
            send_request(false);
            if (join_.joined) {
                join_.next_send = now + interval;
            } else {
                // Unanswered so far: RFC 8489 6.2.1-style backoff from 500 ms.
                join_.backoff_ns = join_.backoff_ns ? std::min(2 * join_.backoff_ns, interval) : std::min<int64_t>(500'000'000, interval);
                join_.next_send = now + join_.backoff_ns;
            }
            // Consent is the relay's to judge; we only say when it went quiet.
            if (join_.joined && join_.last_success && now - join_.last_success > 3 * interval)
                std::fprintf(stderr, "stentor-listener: join: no answer from %s for %.1f s\n", join_.relay.str().c_str(),
                             static_cast<double>(now - join_.last_success) / 1e9);
        }
        wait_ns = std::max<int64_t>(0, std::min(wait_ns, join_.next_send - now));
    }

    bool ours(const uint8_t* txid) const {
        for (const auto& t : join_.txids)
            if (std::memcmp(t.data(), txid, t.size()) == 0) return true;
        return false;
    }

    void on_stun(const uint8_t* p, std::size_t n, const sock_addr& from) {
        if (!from.same(join_.relay_sa)) {
            if (join_.prev.active && from.same(join_.prev.sa)) on_prev_stun(p, n);
            else ++join_.foreign;
            return;
        }
        stun::response_view v;
        const stun::stun_error e = stun::parse_response(p, n, v);
        if (e != stun::stun_error::ok) {
            ++join_.invalid;
            join_.last_invalid = stun::error_name(e);
            return;
        }
        if (!stun::check_integrity(p, v.integrity_offset, join_.password.data(), join_.password.size())) {
            ++join_.invalid;
            join_.last_invalid = "bad_integrity";
            return;
        }
        if (!ours(v.txid)) {
            ++join_.stale;
            return;
        }
        const int64_t now = monotonic_ns();
        const bool is_leave = join_.leave_sent && std::memcmp(v.txid, join_.leave_txid.data(), stun::txid_len) == 0;
        if (join_.need_place) return;   // a move is under way: this edge's answers no longer matter
        if (v.has_cookie) {
            std::memcpy(join_.cookie.data(), v.cookie, stun::cookie_len);
            join_.have_cookie = true;
        }
        if (v.type == stun::binding_error && v.error_code == 438 && !is_leave) {
            // No valid cookie (the first request, a restarted relay, a long
            // silence): ask again now with the one this answer brought. A
            // relay that keeps answering 438 is asked at the usual pace.
            ++join_.challenges;
            ++join_.challenges_in_row;
            join_.next_send = join_.challenges_in_row <= 3 && v.has_cookie
                                  ? now
                                  : now + static_cast<int64_t>(o_.consent_interval * 1e9);
            return;
        }
        join_.challenges_in_row = 0;
        if (v.type == stun::binding_success) {
            ++join_.successes;
            join_.last_success = now;
            join_.last_heard = now;
            join_.probe_sent = 0;
            join_.backoff_ns = 0;
            if (is_leave) {
                join_.left = true;
                return;
            }
            std::string mapped = "?";
            if (v.has_mapped) {
                endpoint m;
                m.port = v.mapped_port;
                m.v6 = v.mapped_family == stun::family_ipv6;
                if (m.v6)
                    std::memcpy(&m.addr6, v.mapped_ipv6, sizeof m.addr6);
                else
                    m.addr.s_addr = htonl(v.mapped_ipv4);
                mapped = m.str();
            }
            if (!join_.joined || mapped != join_.mapped)
                std::fprintf(stderr, "stentor-listener: join: %s via %s%s%s as %s\n", join_.joined ? "address changed" : "joined",
                             join_.relay.str().c_str(), join_.edge.empty() ? "" : " edge ", join_.edge.c_str(), mapped.c_str());
            if (!join_.joined) {
                join_.next_send = now + static_cast<int64_t>(o_.consent_interval * 1e9);
                if (join_.event_open && join_.failovers.back().joined_mono == 0) join_.failovers.back().joined_mono = now;
                // Make before break: the edge we left hears from us only now.
                if (join_.prev.active && !join_.prev.leave_sent) send_prev_leave();
            }
            join_.joined = true;
            join_.mapped = mapped;
            return;
        }
        ++join_.errors;
        join_.last_code = v.error_code;
        join_.last_reason = std::string(v.reason_phrase());
        // 300: the relay drains (a fleet edge on SIGTERM, docs/fleet.md):
        // with a director, ask it for another edge now.
        if (v.error_code == 300 && !is_leave && director_mode()) {
            std::fprintf(stderr, "stentor-listener: join: %s (edge %s) answered 300 %s: moving\n", join_.relay.str().c_str(),
                         join_.edge.c_str(), join_.last_reason.c_str());
            start_move("drain", now);
            return;
        }
        // 409: the token is joined at another address that still refreshed
        // less than rebind_after_s ago. That address is our own old NAT
        // mapping after a rebinding: ask again, the relay moves the token
        // once the old mapping has been silent long enough (docs/join.md).
        const bool again = v.error_code == 429 || v.error_code == 409 || v.error_code >= 500;
        const bool move = !again && !is_leave && director_mode();
        std::fprintf(stderr, "stentor-listener: join: %s refused%s: %u %s%s\n", join_.relay.str().c_str(), is_leave ? " the leave" : "",
                     v.error_code, join_.last_reason.c_str(),
                     is_leave ? "" : move ? " (asking a director for another edge)" : !again ? " (giving up)" : v.retry_after_ms ? " (retrying as told)" : " (retrying)");
        if (is_leave) return;
        if (move) {
            start_move("refused", now);
            return;
        }
        if (!again) {
            join_.fatal = true;
            g_stop.store(true);
            return;
        }
        // 429 says when; 409 and 5xx (capacity) are tried again after one interval.
        join_.next_send = now + (v.retry_after_ms ? int64_t{v.retry_after_ms} * 1'000'000
                                                  : static_cast<int64_t>(o_.consent_interval * 1e9));
    }

    // An answer from the edge we moved away from: only our leave's matters.
    void on_prev_stun(const uint8_t* p, std::size_t n) {
        auto& pv = join_.prev;
        stun::response_view v;
        if (stun::parse_response(p, n, v) != stun::stun_error::ok ||
            !stun::check_integrity(p, v.integrity_offset, pv.password.data(), pv.password.size())) {
            ++join_.invalid;
            return;
        }
        if (!pv.leave_sent || std::memcmp(v.txid, pv.leave_txid.data(), stun::txid_len) != 0) {
            ++join_.stale;   // a late answer to a consent request sent before the move
            return;
        }
        std::fprintf(stderr, "stentor-listener: join: left edge %s (%s)%s\n", pv.edge.c_str(), pv.relay.str().c_str(),
                     v.type == stun::binding_success ? "" : " (it did not know us any more)");
        pv.active = false;
    }

    void send_prev_leave() {
        auto& pv = join_.prev;
        send_stun(pv.sa, pv.relay, pv.token, pv.password, true, &pv.leave_txid, nullptr);   // a leave needs no cookie
        pv.leave_sent = true;
    }

    // ---- the director (docs/fleet.md "Failover") ----

    bool director_mode() const { return !o_.directors.empty(); }

    // Placement and failure detection; false while no edge is known (the
    // join must not run).
    bool director_tick(int64_t now, int64_t& wait_ns) {
        if (join_.need_place) {
            if (now >= join_.next_place) place_now(now);
            if (join_.need_place) {
                wait_ns = std::max<int64_t>(0, std::min(wait_ns, join_.next_place - now));
                return false;
            }
            now = monotonic_ns();
        }
        const auto after = static_cast<int64_t>(o_.failover_after * 1e9);
        const int64_t quiet = now - join_.last_heard;
        if (quiet >= after) {
            std::fprintf(stderr, "stentor-listener: failover: nothing from edge %s (%s) for %.2f s: moving\n", join_.edge.c_str(),
                         join_.relay.str().c_str(), static_cast<double>(quiet) / 1e9);
            start_move("silence", now);
            wait_ns = 0;
            return false;
        }
        // A quiet stream (DTX, a paused speaker) is not a dead edge: halfway
        // to the limit, a consent request makes a live edge answer in time.
        if (join_.joined && join_.probe_sent == 0 && quiet >= after / 2) {
            send_request(false);
            join_.probe_sent = now;
        }
        const int64_t next = join_.joined && join_.probe_sent == 0 ? join_.last_heard + after / 2 : join_.last_heard + after;
        wait_ns = std::max<int64_t>(0, std::min(wait_ns, next - now));
        return true;
    }

    void start_move(const char* reason, int64_t now) {
        if (join_.need_place) return;
        if (!join_.event_open) {
            failover_event e;
            e.reason = reason;
            e.from = join_.edge;
            e.last_before_ns = last_new_rx_ns_;
            e.detected_ns = realtime_ns();
            join_.failovers.push_back(std::move(e));
            join_.event_open = true;
        }
        ++join_.failovers.back().hops;
        if (!join_.edge.empty()) join_.exclude = {join_.edge};
        join_.need_place = true;
        join_.joined = false;   // the move ends with the next edge's answer
        // Moves that never brought audio back (an edge that refuses, or dies
        // in turn) back off from 100 ms up to 2 s; the first is at once.
        const unsigned m = join_.moves_since_audio++;
        join_.next_place = m == 0 ? now : now + std::min<int64_t>(2'000'000'000, int64_t{100'000'000} << std::min(m - 1, 5u));
        join_.place_backoff_ms = 0;
    }

    void place_now(int64_t now) {
        place_query q;
        q.session = o_.session;
        q.tier = static_cast<uint8_t>(o_.tier);
        q.region = o_.region;
        q.exclude = join_.exclude;
        q.ipv6 = base_.v6;   // the family of --listen: the edge's address of that family
        const director_answer a = director_->place(q);
        if (join_.event_open) {
            join_.failovers.back().place_ms += a.ms;
            ++join_.failovers.back().attempts;
        }
        now = monotonic_ns();
        endpoint ep{};
        std::string why = a.error;
        if (a.ok) {
            try {
                const bool v6 = a.placement.address.find(':') != std::string::npos;
                ep = parse_endpoint((v6 ? "[" + a.placement.address + "]" : a.placement.address) + ":" +
                                        std::to_string(a.placement.port),
                                    "placement address");
                if (ep.v6 != base_.v6) throw tool_error("placement address " + ep.str() + ": not the family of --listen");
            } catch (const tool_error& e) {
                why = e.what();
            }
        }
        if (!a.ok || ep.port == 0) {
            ++join_.place_errors;
            join_.last_place_error = why;
            // The exclusion is a hint: with no room elsewhere, take the same edge rather than nothing.
            if (!join_.exclude.empty() && why.rfind("no_capacity", 0) == 0) join_.exclude.clear();
            join_.place_backoff_ms = join_.place_backoff_ms ? std::min(2 * join_.place_backoff_ms, 2000u) : 250u;
            std::fprintf(stderr, "stentor-listener: director %s: %s (HTTP %ld); asking again in %.2f s\n", a.director.c_str(),
                         why.c_str(), a.http, join_.place_backoff_ms / 1e3);
            // Our own mistake (a wrong token or request) will not heal.
            if (a.http == 400 || a.http == 401) {
                join_.fatal = true;
                g_stop.store(true);
            }
            join_.next_place = now + int64_t{join_.place_backoff_ms} * 1'000'000;
            return;
        }
        if (join_.placed && a.placement.edge != join_.edge) {
            auto& pv = join_.prev;
            if (pv.active && !pv.leave_sent) send_prev_leave();   // two moves in a row: the first edge left now
            pv = {};
            pv.active = true;
            pv.relay = join_.relay;
            pv.sa = join_.relay_sa;
            pv.token = join_.token;
            pv.password = join_.password;
            pv.edge = join_.edge;
        }
        join_.relay = ep;
        join_.relay_sa = ep.any();
        join_.have_cookie = false;   // another relay's cookies are not this one's
        join_.challenges_in_row = 0;
        join_.token = a.placement.token;
        join_.password = a.placement.password;
        join_.edge = a.placement.edge;
        join_.placed = true;
        join_.joined = false;
        join_.leave_sent = false;
        join_.left = false;
        join_.mapped.clear();
        join_.backoff_ns = 0;
        join_.next_send = now;
        join_.last_heard = now;
        join_.probe_sent = 0;
        join_.need_place = false;
        join_.place_backoff_ms = 0;
        ++join_.placements;
        if (join_.event_open) {
            join_.failovers.back().to = join_.edge;
            join_.failovers.back().placed_mono = now;
            join_.failovers.back().joined_mono = 0;
        }
        std::fprintf(stderr, "stentor-listener: director %s: placed on edge %s (%s) in %.1f ms\n", a.director.c_str(),
                     join_.edge.c_str(), ep.str().c_str(), a.ms);
    }

    // Every RTP packet, in director mode: what it tells about the edge, and
    // the audio gap of a move.
    void on_heard(const sock_addr& from, int64_t rx_ns, bool is_new) {
        // Packets from the edge we are leaving do not show that the new one works.
        if (!(join_.prev.active && from.same_host(join_.prev.sa) && !from.same_host(join_.relay_sa))) {
            join_.last_heard = monotonic_ns();
            join_.probe_sent = 0;
        }
        if (!is_new) return;
        if (join_.event_open) {
            auto& e = join_.failovers.back();
            if (last_new_rx_ns_ != 0) e.max_gap_ns = std::max(e.max_gap_ns, rx_ns - last_new_rx_ns_);
            if (join_.joined) {
                e.first_after_ns = rx_ns;
                e.closed = true;
                join_.event_open = false;
                join_.moves_since_audio = 0;
                print_failover(e);
            }
        } else {
            join_.moves_since_audio = 0;
        }
        last_new_rx_ns_ = rx_ns;
    }

    static std::string fmt_seconds(double s) {
        char b[32];
        std::snprintf(b, sizeof b, "%.3f s", s);
        return b;
    }

    static nlohmann::json event_json(const failover_event& e) {
        const auto ms = [](int64_t a, int64_t b) { return a && b ? nlohmann::json(static_cast<double>(b - a) / 1e6) : nlohmann::json(nullptr); };
        return {{"reason", e.reason},
                {"from", e.from},
                {"to", e.to.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.to)},
                {"gap_s", e.closed ? nlohmann::json(static_cast<double>(e.max_gap_ns) / 1e9) : nlohmann::json(nullptr)},
                {"detect_s", e.last_before_ns ? nlohmann::json(static_cast<double>(e.detected_ns - e.last_before_ns) / 1e9)
                                              : nlohmann::json(nullptr)},
                {"place_ms", e.place_ms},
                {"join_ms", ms(e.placed_mono, e.joined_mono)},
                {"attempts", e.attempts},
                {"hops", e.hops}};
    }

    // One line a person reads (stderr) and one a script parses (stdout).
    static void print_failover(const failover_event& e) {
        const nlohmann::json j = event_json(e);
        const auto num = [&](const char* k, double scale, const char* f) {
            if (j[k].is_null()) return std::string("none");
            char b[32];
            std::snprintf(b, sizeof b, f, j[k].get<double>() * scale);
            return std::string(b);
        };
        std::fprintf(stderr, "stentor-listener: failover: %s -> %s (%s): audio gap %s (detected after %s s, placed in %s ms, joined in %s ms)\n",
                     e.from.c_str(), e.to.empty() ? "nowhere" : e.to.c_str(), e.reason.c_str(),
                     e.closed ? fmt_seconds(static_cast<double>(e.max_gap_ns) / 1e9).c_str() : "unknown: no audio since",
                     num("detect_s", 1, "%.3f").c_str(), num("place_ms", 1, "%.1f").c_str(), num("join_ms", 1, "%.1f").c_str());
        std::printf("FAILOVER reason=%s from=%s to=%s gap_s=%s detect_s=%s place_ms=%s join_ms=%s hops=%u\n", e.reason.c_str(),
                    e.from.empty() ? "-" : e.from.c_str(), e.to.empty() ? "-" : e.to.c_str(), num("gap_s", 1, "%.3f").c_str(),
                    num("detect_s", 1, "%.3f").c_str(), num("place_ms", 1, "%.1f").c_str(), num("join_ms", 1, "%.1f").c_str(),
                    e.hops);
        std::fflush(stdout);
    }

    // After the receive loop: one request with STENTOR-LEAVE, and up to 1 s
    // for its answer (audio may still arrive meanwhile; it is not counted).
    // A move still in progress leaves the edge it was leaving too.
    void leave() {
        if (director_mode() && join_.event_open) print_failover(join_.failovers.back());   // no audio came back
        if (!o_.join || join_.fatal || join_.requests == 0 || join_.relay_sa.len == 0) return;
        const listener& l = listeners_[0];
        if (join_.prev.active && !join_.prev.leave_sent) send_prev_leave();
        join_.leave_sent = true;
        send_request(true);
        const int64_t end = monotonic_ns() + 1'000'000'000;
        uint8_t buf[recv_buf_len];
        while (!join_.left) {
            const int64_t left_ns = end - monotonic_ns();
            if (left_ns <= 0) break;
            pollfd pfd{l.fd, POLLIN, 0};
            const int r = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(1, left_ns / 1'000'000)));
            if (r < 0 && errno != EINTR) break;
            if (r <= 0) continue;
            sockaddr_storage from{};
            socklen_t fl = sizeof from;
            const ssize_t n = ::recvfrom(l.fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
            if (n > 0 && buf[0] < 4) on_stun(buf, static_cast<std::size_t>(n), sock_addr_of(from, fl));
        }
        std::fprintf(stderr, "stentor-listener: join: %s\n", join_.left ? "left" : "leave not confirmed within 1 s");
    }

    // Decoding happens after the run, from the packets in sequence order: the
    // probe's job is to show what arrived, so it needs no jitter-buffer deadline,
    // and reordered packets land where they belong. Gaps in the RTP timestamp
    // (loss, or DTX where the sender sent nothing) are filled by libopus packet
    // loss concealment, so the WAV keeps the sender's timeline.
    void decode_to_wav(stream& st) {
        if (st.stored.empty()) return;
        std::stable_sort(st.stored.begin(), st.stored.end(), [](const auto& a, const auto& b) { return a.ext_seq < b.ext_seq; });
        const uint8_t* first = st.arena.data() + st.stored[0].offset;
        int channels = st.stored[0].length ? opus_packet_get_nb_channels(first) : 2;
        if (channels != 1 && channels != 2) channels = 2;
        int err = 0;
        std::unique_ptr<OpusDecoder, void (*)(OpusDecoder*)> dec(opus_decoder_create(48000, channels, &err), &opus_decoder_destroy);
        if (err != OPUS_OK || !dec) throw tool_error(std::string("opus_decoder_create: ") + opus_strerror(err));
        pcm_audio out;
        out.rate = 48000;
        out.channels = static_cast<uint16_t>(channels);
        constexpr int max_frame = 5760;  // 120 ms, the longest Opus packet
        std::vector<int16_t> pcm(static_cast<std::size_t>(max_frame) * channels);
        uint32_t next_ts = st.stored[0].timestamp;
        for (const stored_packet& p : st.stored) {
            int64_t gap = static_cast<int32_t>(p.timestamp - next_ts);
            if (gap < 0) continue;  // overlaps audio already written (sender bug); skip it
            if (gap > max_fill_samples) gap = 0;  // discontinuity: join, do not invent a minute of audio
            while (gap > 0) {
                // PLC works in multiples of 2.5 ms; the odd remainder (never seen
                // from a 20 ms sender) is plain silence.
                int n = static_cast<int>(std::min<int64_t>(gap, 960));
                n -= n % 120;
                if (n == 0) {
                    out.samples.insert(out.samples.end(), static_cast<std::size_t>(gap) * channels, int16_t{0});
                    break;
                }
                const int got = opus_decode(dec.get(), nullptr, 0, pcm.data(), n, 0);
                if (got <= 0) break;
                out.samples.insert(out.samples.end(), pcm.begin(), pcm.begin() + got * channels);
                gap -= got;
                ++st.concealed_frames;
            }
            const int got = opus_decode(dec.get(), st.arena.data() + p.offset, static_cast<opus_int32>(p.length), pcm.data(), max_frame, 0);
            if (got < 0) {
                // A corrupt packet: conceal one 20 ms frame in its place.
                const int plc = opus_decode(dec.get(), nullptr, 0, pcm.data(), 960, 0);
                if (plc > 0) out.samples.insert(out.samples.end(), pcm.begin(), pcm.begin() + plc * channels);
                ++st.concealed_frames;
                next_ts = p.timestamp + 960;
                continue;
            }
            out.samples.insert(out.samples.end(), pcm.begin(), pcm.begin() + got * channels);
            next_ts = p.timestamp + static_cast<uint32_t>(got);
        }
        write_wav(st.wav_path, out);
        st.wav_seconds = static_cast<double>(out.frames()) / out.rate;
    }

    const options& o_;
    endpoint base_;
    std::vector<listener> listeners_;
    io_uring ring_{};
    std::string backend_;
    int64_t start_mono_ = 0;
    int64_t last_packet_mono_ = 0;
    double duration_s_ = 0;
    join_client join_;
    std::unique_ptr<director_client> director_;
    int64_t last_new_rx_ns_ = 0;   // receive time of the last packet that was not a duplicate
};

}  // namespace
}  // namespace stentor::tools

int main(int argc, char** argv) {
    using namespace stentor::tools;
    options o;
    CLI::App app{"stentor-listener: receive RTP/Opus on many UDP ports and measure loss, reordering, jitter and latency"};
    app.add_option("--listen", o.listen, "IP:PORT or [IPV6]:PORT of listener 0; listener i uses PORT+i")->required();
    app.add_option("--count", o.count, "listeners (UDP sockets on consecutive ports)")->check(CLI::Range(1u, 65535u))->capture_default_str();
    app.add_option("--seconds", o.seconds, "stop after this many seconds (0: run until SIGINT/SIGTERM)")->capture_default_str();
    app.add_option("--idle", o.idle, "stop once no packet arrived for this many seconds, counted from the first packet (0: off)")->capture_default_str();
    app.add_flag("--latency", o.latency, "measure one-way latency from the send time stentor-speaker --embed-time puts in each packet");
    app.add_option("--wav-dir", o.wav_dir, "decode audio and write DIR/listener-<i>.wav");
    app.add_option("--wav-listeners", o.wav_listeners, "listener indices to decode, e.g. 0,3,5-7 (default 0)");
    app.add_option("--json", o.json, "write the per-listener table and the summary to this file as JSON");
    app.add_flag("--no-uring", o.no_uring, "receive with poll() instead of io_uring");
    app.add_option("--table-max", o.table_max, "print at most this many listener rows")->capture_default_str();
    app.add_flag("-q,--quiet", o.quiet, "print only the summary line");
    auto* join = app.add_flag("--join", o.join, "join the session by token (STUN Binding Request to --relay), keep consent, leave on exit");
    auto* relay = app.add_option("--relay", o.relay, "--join: the relay's IP:PORT or [IPV6]:PORT (the session's UDP port; the family of --listen)");
    auto* token = app.add_option("--token", o.token, "--join: the join token (STUN USERNAME)");
    auto* password = app.add_option("--password", o.password, "--join: the token's password (MESSAGE-INTEGRITY key)");
    auto* consent = app.add_option("--consent-interval", o.consent_interval, "--join, --director: seconds between consent requests")->capture_default_str();
    auto* director = app.add_option("--director", o.directors,
                                    "ask stentor-director at this URL (http://host:port on loopback, https://host:port "
                                    "elsewhere, verified with $STENTOR_DIRECTOR_CA if set; repeat for more, tried in "
                                    "order) where to join, and again when the edge fails or drains (docs/fleet.md)");
    auto* dtoken = app.add_option("--director-token", o.director_token, "--director: the director's bearer token")
                       ->envname("STENTOR_DIRECTOR_TOKEN");
    auto* session = app.add_option("--session", o.session, "--director: the session to listen to")->check(CLI::Range(1u, 4294967295u));
    auto* tier = app.add_option("--tier", o.tier, "--director: priority tier asked for (0 = highest)")->check(CLI::Range(0u, 3u))->capture_default_str();
    auto* region = app.add_option("--region", o.region, "--director: only edges with this region label");
    auto* after = app.add_option("--failover-after", o.failover_after,
                                 "--director: seconds without a packet or a consent answer from the edge before asking "
                                 "a director again")->capture_default_str();
    auto* dtimeout = app.add_option("--director-timeout", o.director_timeout, "--director: seconds to wait for each director's answer")
                         ->check(CLI::Range(0.05, 60.0))->capture_default_str();
    join->needs(relay)->needs(token)->needs(password);
    for (auto* opt : {relay, token, password}) opt->needs(join);
    director->excludes(join);
    for (auto* opt : {session, tier, region, after, dtimeout}) opt->needs(director);
    (void)dtoken;   // may come from the environment: not tied to --director
    CLI11_PARSE(app, argc, argv);
    if (!o.directors.empty()) o.join = true;   // the placement brings the relay, token and password
    else if (!o.join && consent->count() > 0) {
        std::fprintf(stderr, "--consent-interval needs --join or --director\n");
        return 2;
    }

    // No SA_RESTART: a signal must wake the blocking wait so the run ends promptly.
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    try {
        probe p(o);
        p.open();
        p.run();
        p.write_wavs();
        const nlohmann::json r = p.report();
        p.print_table(r, o.quiet ? 0 : o.table_max);
        if (!o.json.empty()) {
            std::ofstream f(o.json);
            f << r.dump(2) << "\n";
            if (!f) throw tool_error("--json " + o.json + ": write failed");
        }
        return p.join_refused() ? exit_join_refused : 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "stentor-listener: %s\n", e.what());
        return 1;
    }
}
