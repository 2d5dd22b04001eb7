#include "http_guard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <unistd.h>

#include <stdexcept>
#include <string_view>

#include "tls_files.h"

namespace stentor::control {

using steady = std::chrono::steady_clock;

bool token_equal(const std::string& presented, const std::string& expected) noexcept {
    // Time depends only on the expected token's length, never on where the
    // first difference is.
    unsigned char diff = presented.size() != expected.size() ? 1 : 0;
    for (size_t i = 0; i < expected.size(); ++i) {
        const unsigned char a = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
        diff |= static_cast<unsigned char>(a ^ static_cast<unsigned char>(expected[i]));
    }
    return diff == 0 && !expected.empty();
}

bool bearer_ok(MHD_Connection* c, const std::string& expected) {
    const char* h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == nullptr) return false;
    std::string_view v(h);
    if (v.size() < 7 || strncasecmp(v.data(), "Bearer ", 7) != 0) return false;
    return token_equal(std::string(v.substr(7)), expected);
}

// ---------------------------------------------------------------- connections

namespace {

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count(); }

// The accept policy and the connection's STARTED notification run on the
// same pool thread, one right after the other (libmicrohttpd accepts, asks
// the policy, then sets the connection up; checked with 300 concurrent
// connects on 0.9.75): the slot the policy reserved is handed over there,
// so the limits are exact even when several pool threads accept at once.
struct accept_slot {
    const void* owner = nullptr;
    uint32_t ip = 0;
};
thread_local accept_slot t_accepted;

}  // namespace

// One connection, from accept to close (libmicrohttpd's socket context).
struct http_guard::conn {
    uint32_t ip = 0;
    bool reserved = false;                 // holds a slot of the limits
    // Our own descriptor of its socket: the reaper and the accept policy
    // shut the socket down through it (libmicrohttpd then sees the end and
    // closes the connection), and its number is never another socket's
    // while we hold it.
    int fd = -1;
    bool closing = false;                  // shut down by us (guarded by _mu)
    bool evicted = false;
    std::atomic<bool> in_request{false};
    std::atomic<bool> authed{false};
    std::atomic<int64_t> quiet_since{0};   // accepted, or its last answer done (steady ns)
    std::list<conn*>::iterator pos;
};

namespace {

http_guard::conn* conn_of(MHD_Connection* c) {
    const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i != nullptr ? static_cast<http_guard::conn*>(i->socket_context) : nullptr;
}

}  // namespace

http_guard::http_guard(http_guard_options o, std::function<void()> tick) : _opt(o), _tick(std::move(tick)) {
    if (_opt.max_connections == 0 || _opt.max_connections_per_ip == 0 || _opt.idle_timeout_s == 0 ||
        _opt.header_timeout_s == 0)
        throw std::invalid_argument("connection limits and timeouts must be at least 1");
    _reaper = std::thread([this] { reap_run(); });
}

http_guard::~http_guard() {
    {
        std::lock_guard g(_stop_mu);
        _stop = true;
    }
    _stop_cv.notify_all();
    if (_reaper.joinable()) _reaper.join();
}

void http_guard::release_slot_locked(uint32_t ip) {
    auto it = _per_ip.find(ip);
    if (it != _per_ip.end() && --it->second == 0) _per_ip.erase(it);
    --_total;
}

// Full: the oldest connection that never presented the token makes room.
// Those that did (an operator's kept-alive connection) keep theirs; a
// flood of new connections only ever pushes out its own kind.
bool http_guard::evict_oldest_locked() {
    for (conn* c : _conns) {
        if (c->closing || c->fd < 0 || c->authed.load(std::memory_order_relaxed)) continue;
        ::shutdown(c->fd, SHUT_RDWR);
        c->closing = true;
        c->evicted = true;
        ++_closing;
        count(&http_guard_stats::evicted);
        return true;
    }
    return false;
}

MHD_Result http_guard::accept_policy(void* cls, const sockaddr* sa, socklen_t len) {
    auto* self = static_cast<http_guard*>(cls);
    if (sa == nullptr || sa->sa_family != AF_INET || len < sizeof(sockaddr_in)) return MHD_NO;   // IPv4 listener
    const uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
    std::lock_guard g(self->_mu);
    // A slot never claimed: libmicrohttpd failed to set that connection up.
    if (t_accepted.owner == self) self->release_slot_locked(t_accepted.ip);
    t_accepted.owner = nullptr;
    // The address's own limit first: one address over it never pushes
    // anyone else out.
    auto it = self->_per_ip.find(ip);
    if (it != self->_per_ip.end() && it->second >= self->_opt.max_connections_per_ip) {
        self->count(&http_guard_stats::too_many_connections_per_ip);
        return MHD_NO;
    }
    if (self->_total - self->_closing >= self->_opt.max_connections && !self->evict_oldest_locked()) {
        self->count(&http_guard_stats::too_many_connections);
        return MHD_NO;
    }
    ++self->_per_ip[ip];
    ++self->_total;
    t_accepted = {self, ip};
    return MHD_YES;
}

void http_guard::notify_connection(void* cls, MHD_Connection* c, void** socket_ctx, MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<http_guard*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        auto* ci = new conn;
        ci->quiet_since.store(now_ns(), std::memory_order_relaxed);
        if (const auto* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD); i != nullptr)
            ci->fd = ::fcntl(i->connect_fd, F_DUPFD_CLOEXEC, 0);
        std::lock_guard g(self->_mu);
        if (t_accepted.owner == self) {
            ci->ip = t_accepted.ip;
            ci->reserved = true;
            t_accepted.owner = nullptr;
        }
        ci->pos = self->_conns.insert(self->_conns.end(), ci);
        *socket_ctx = ci;
        self->_open.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto* ci = static_cast<conn*>(*socket_ctx);
    if (ci == nullptr) return;
    *socket_ctx = nullptr;
    {
        std::lock_guard g(self->_mu);
        self->_conns.erase(ci->pos);
        if (ci->evicted) --self->_closing;
        if (ci->reserved) self->release_slot_locked(ci->ip);
        // libmicrohttpd does not say why it closes a connection. One we did
        // not shut down, with no request in progress, quiet the whole idle
        // timeout, was closed by it (a client hanging up earlier is not
        // counted). 100 ms of slack: its clock starts at its last write of
        // the previous answer, ours once that answer is done.
        const int64_t quiet = now_ns() - ci->quiet_since.load(std::memory_order_relaxed);
        if (!ci->closing && !ci->in_request.load(std::memory_order_relaxed) &&
            quiet + 100000000 >= int64_t{self->_opt.idle_timeout_s} * 1000000000)
            self->count(&http_guard_stats::idle_timeouts);
    }
    if (ci->fd >= 0) ::close(ci->fd);
    delete ci;
    self->_open.fetch_sub(1, std::memory_order_relaxed);
}

void http_guard::request_started(MHD_Connection* c) {
    if (conn* ci = conn_of(c)) ci->in_request.store(true, std::memory_order_relaxed);
}

void http_guard::request_done(MHD_Connection* c) {
    if (conn* ci = conn_of(c)) {
        ci->quiet_since.store(now_ns(), std::memory_order_relaxed);
        ci->in_request.store(false, std::memory_order_relaxed);
    }
}

void http_guard::authenticated(MHD_Connection* c) {
    if (conn* ci = conn_of(c)) ci->authed.store(true, std::memory_order_relaxed);
}

uint32_t http_guard::client_ip(MHD_Connection* c) {
    if (conn* ci = conn_of(c); ci != nullptr && ci->reserved) return ci->ip;
    const auto* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (i == nullptr || i->client_addr == nullptr || i->client_addr->sa_family != AF_INET) return 0;
    return ntohl(reinterpret_cast<const sockaddr_in*>(i->client_addr)->sin_addr.s_addr);
}

// The header deadline. libmicrohttpd's only timeout is one of inactivity,
// which every trickled byte restarts: 8 addresses x 16 connections sending
// a header byte a second held every slot for as long as they liked. The
// kernel knows when a socket last received data (TCP_INFO
// tcpi_last_data_recv, in ms; the accept counts as the start): a connection
// past its deadline that received something since it went quiet is
// trickling and is shut down here; one silent all along is left to the
// idle timeout, so each closure has one name.
void http_guard::reap_run() {
    const int64_t deadline = int64_t{_opt.header_timeout_s} * 1000000000;
    std::unique_lock sl(_stop_mu);
    while (!_stop_cv.wait_for(sl, std::chrono::milliseconds(100), [&] { return _stop; })) {
        sl.unlock();
        {
            std::lock_guard g(_mu);
            const int64_t now = now_ns();
            for (conn* c : _conns) {
                if (c->closing || c->fd < 0 || c->in_request.load(std::memory_order_relaxed)) continue;
                const int64_t waited = now - c->quiet_since.load(std::memory_order_relaxed);
                if (waited < deadline) continue;
                tcp_info ti{};
                socklen_t len = sizeof ti;
                if (::getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) continue;
                // 100 ms of slack: the last byte of the previous request
                // arrived just before its answer was done.
                if (int64_t{ti.tcpi_last_data_recv} * 1000000 + 100000000 >= waited) continue;   // silent
                ::shutdown(c->fd, SHUT_RDWR);
                c->closing = true;
                count(&http_guard_stats::slow_headers);
            }
        }
        if (_tick) _tick();
        sl.lock();
    }
}

MHD_Daemon* http_guard::start_daemon(unsigned flags, unsigned threads, http_transport& tr,
                                     MHD_AccessHandlerCallback handler, void* handler_cls,
                                     MHD_RequestCompletedCallback done, void* done_cls) {
    // libmicrohttpd's own limits are set above ours, as a backstop only: it
    // checks them before asking the policy and refuses silently, and splits
    // its total evenly across the pool threads, whichever accepts. Room is
    // left for the connections being closed to make room.
    const unsigned mhd_total = (2 * _opt.max_connections + 1) * threads;
    const unsigned mhd_per_ip = _opt.max_connections_per_ip + threads;
    return MHD_start_daemon(flags | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | tr.flags(),
                            ntohs(tr.addr.sin_port), &http_guard::accept_policy, this, handler, handler_cls,
                            MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(&tr.addr),
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_NOTIFY_COMPLETED, done, done_cls,
                            MHD_OPTION_NOTIFY_CONNECTION, &http_guard::notify_connection, this,
                            MHD_OPTION_CONNECTION_LIMIT, mhd_total,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, mhd_per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, _opt.idle_timeout_s,
                            MHD_OPTION_ARRAY, tr.options(),
                            MHD_OPTION_END);
}

// ---------------------------------------------------------------- transport

http_transport::http_transport(const std::string& section, const std::string& listen_addr, unsigned listen_port,
                               const std::string& cert_file, const std::string& key_file) {
    for (auto& o : _opts) o = {MHD_OPTION_END, 0, nullptr};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(listen_port));
    if (inet_pton(AF_INET, listen_addr.c_str(), &addr.sin_addr) != 1)
        throw std::invalid_argument(section + ": listen address \"" + listen_addr + "\" is not IPv4");
    tls = !cert_file.empty() || !key_file.empty();
    if (!tls && (ntohl(addr.sin_addr.s_addr) >> 24) != 127)
        throw std::invalid_argument(section + ": plain HTTP only on a loopback address (127.0.0.0/8), not " + listen_addr +
                                    ": give a certificate and key (" + section + ".tls_cert, " + section + ".tls_key)");
    if (!tls) return;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        throw std::runtime_error(section + ": this libmicrohttpd was built without TLS");
    const pem_file cert = read_pem_file(cert_file, false);
    if (!cert.error.empty()) throw std::invalid_argument(section + ": " + section + ".tls_cert: " + cert.error);
    pem_file key = read_pem_file(key_file, true);
    const wiped guard{key.text};
    if (!key.error.empty()) throw std::invalid_argument(section + ": " + section + ".tls_key: " + key.error);
    if (const auto bad = check_tls_pair(cert.text, key.text))
        throw std::invalid_argument(section + ": " + section + "." + bad->first + ": " + bad->second);
    cert_pem = cert.text;
    key_pem = key.text;
}

http_transport::~http_transport() { wipe(key_pem); }

unsigned http_transport::flags() const { return tls ? MHD_USE_TLS : 0; }

const MHD_OptionItem* http_transport::options() {
    if (tls) {
        // TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1).
        static const char priorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
        _opts[0] = {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(cert_pem.c_str())};
        _opts[1] = {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(key_pem.c_str())};
        _opts[2] = {MHD_OPTION_HTTPS_PRIORITIES, 0, const_cast<char*>(priorities)};
    }
    return _opts;
}

}  // namespace stentor::control
