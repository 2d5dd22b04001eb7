#include "api.h"
#include "api_parse.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <microhttpd.h>
#include <nlohmann/json.hpp>

#include "audit.h"
#include "capture.h"
#include "counter_clear.h"
#include "json_text.h"
#include "join_mint.h"
#include "metrics.h"
#include "relay.h"
#include "tls_files.h"

namespace stentor::control {

using nlohmann::json;

// ---------------------------------------------------------------- HTTP

namespace {

struct api_fail {
    int status;
    std::string code;
    std::string reason;
    unsigned retry_after = 0;
};

[[noreturn]] void fail(int status, const std::string& code, const std::string& reason) {
    throw api_fail{status, code, reason};
}

[[noreturn]] void fail(const parse_error& e) { throw api_fail{e.status, e.code, e.reason}; }

// The typed request, or the parse layer's error as the answer.
template <class T>
T need(parse_result<T> r) {
    if (!r) fail(r.error());
    return std::move(r.value());
}

struct reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
    unsigned retry_after = 0;
    bool commit = false;   // a write: answered once its publish completes
    // A join: answered once, after its publish, these listeners' next hops
    // have answered ARP (or limits.join_resolve_ms has passed: 202).
    std::vector<uint32_t> resolve;
    // A file sent as the body (a capture's pcapng): libmicrohttpd reads it
    // from the descriptor, which it closes.
    int file_fd = -1;
    uint64_t file_size = 0;
    std::string file_name;     // Content-Disposition: attachment; filename=...

    // The fields above in order, as every answer but a file gives them.
    reply(int s = 200, std::string b = {}, std::string ct = "application/json", unsigned ra = 0, bool c = false,
          std::vector<uint32_t> res = {})
        : status(s), body(std::move(b)), content_type(std::move(ct)), retry_after(ra), commit(c), resolve(std::move(res)) {}
};

reply json_reply(int status, const json& j) {
    return {status, json_text(j), "application/json", 0, false, {}};
}

// The answer of a write that changed the model: sent once the change is
// published (api_server::impl::wait_for_publish).
reply write_reply(int status, const json& j) {
    reply r = json_reply(status, j);
    r.commit = true;
    return r;
}

// A join: a write whose answer also waits for the listeners' next hops.
reply join_write(const json& j, std::vector<uint32_t> listener_ips) {
    reply r = write_reply(201, j);
    r.resolve = std::move(listener_ips);
    return r;
}

reply error_reply(int status, const std::string& code, const std::string& reason) {
    return {status, error_body(code, reason), "application/json", 0, false, {}};
}

using steady = std::chrono::steady_clock;

// One request (libmicrohttpd's con_cls).
struct conn_ctx {
    std::string body;
    size_t limit = 0;
    size_t reserved = 0;             // bytes of the body budget this request holds
    bool too_large = false;
    bool over_budget = false;
    steady::time_point body_deadline;
    bool suspended = false;          // waiting for its publish (see wait_for_publish)
    reply answer;                    // a write's answer, sent when its wait ends
    // A mutating call: its audit line is logged with its answer (audit.h).
    bool audit = false;
    uint32_t audit_ip = 0;
    std::string audit_method, audit_url;
};

// A write whose connection is suspended until its publish completes.
struct waiting_write {
    MHD_Connection* c;
    conn_ctx* ctx;
    steady::time_point deadline;
};


}  // namespace

struct api_server::impl {
    control_plane& cp;
    api_options opt;
    MHD_Daemon* d = nullptr;

    api_stats stats;                 // bumped with atomic_ref from any pool thread
    std::atomic<uint64_t> body_bytes{0};
    std::atomic<uint64_t> body_peak{0};
    std::atomic<uint64_t> suspended{0};

    // Refused tokens, summarised per source; flushed by the guard's reaper.
    refusal_log refusals;
    // The accept policy, limits and deadlines (http_guard.h), shared with
    // the director.
    std::unique_ptr<http_guard> guard;

    // Writes waiting for their publish, and the thread that waits for them.
    std::mutex wmu;
    std::condition_variable wcv;
    std::deque<waiting_write> waiting;
    std::deque<waiting_write> resolving;   // published joins waiting for ARP (waiter thread only)
    bool wstop = false;
    std::thread waiter;

    // `clear counters`: what the reads subtract (never written into a counter).
    counter_baseline baseline;

    // HTTPS or loopback (http_guard.h): the PEM text libmicrohttpd serves
    // with, kept until the daemon stops; the key is wiped then.
    std::unique_ptr<http_transport> transport;

    impl(control_plane& c, api_options o) : cp(c), opt(std::move(o)), refusals(opt.unauthorized_log) {}

    void count(uint64_t api_stats::*f) { std::atomic_ref<uint64_t>(stats.*f).fetch_add(1, std::memory_order_relaxed); }

    // ------------------------------------------------------ body budget

    // Take the request's share of the bodies in flight up to `want` bytes.
    bool reserve(conn_ctx& ctx, size_t want) {
        if (want <= ctx.reserved) return true;
        const uint64_t extra = want - ctx.reserved;
        uint64_t cur = body_bytes.load(std::memory_order_relaxed);
        do {
            if (cur + extra > opt.bodies_in_flight) return false;
        } while (!body_bytes.compare_exchange_weak(cur, cur + extra, std::memory_order_relaxed));
        uint64_t peak = body_peak.load(std::memory_order_relaxed);
        while (cur + extra > peak && !body_peak.compare_exchange_weak(peak, cur + extra, std::memory_order_relaxed)) {
        }
        ctx.reserved = want;
        return true;
    }

    void release(conn_ctx& ctx) {
        wipe(ctx.body);   // it may have held an SRTP key (docs/srtp.md)
        ctx.body = std::string();
        body_bytes.fetch_sub(ctx.reserved, std::memory_order_relaxed);
        ctx.reserved = 0;
    }

    // ------------------------------------------------------ requests

    static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                                 const char* /*version*/, const char* upload, size_t* upload_size, void** con_cls) {
        auto* self = static_cast<impl*>(cls);
        auto* ctx = static_cast<conn_ctx*>(*con_cls);
        if (ctx == nullptr) {
            ctx = new conn_ctx;
            *con_cls = ctx;
            return self->on_headers(c, url, method, *ctx);
        }
        if (*upload_size != 0) {
            const size_t n = *upload_size;
            *upload_size = 0;
            return self->on_body(*ctx, upload, n);
        }
        if (ctx->suspended) {
            // Resumed by the waiter: the publish completed, or the wait ended.
            self->unsuspend(*ctx);
            return send_audited(c, *ctx, ctx->answer);
        }
        return self->on_complete(c, url, method, *ctx);
    }

    // First call: the headers are in, no body byte has been read. Everything
    // an unauthenticated client can get is answered here, so nothing it
    // sends after its headers is ever buffered.
    MHD_Result on_headers(MHD_Connection* c, const char* url, const char* method, conn_ctx& ctx) {
        http_guard::request_started(c);
        if (!route_needs_auth(url)) {
            // Health and paths outside the API take no body: answered now.
            const bool has_body = announced_body(c);
            return send(c, handle([&] { return dispatch(c, url, method, "", has_body); }));
        }
        if (route_is_metrics(url) ? !scrape_authorized(c) : !authorized(c)) {
            count(&api_stats::unauthorized);
            // Counted always; logged as a per-source summary (audit.h).
            if (is_mutating(method)) refusals.refused(http_guard::client_ip(c), method, url, 401, "unauthorized");
            return send(c, error_reply(401, "unauthorized", "missing or wrong bearer token"));
        }
        if (bearer_ok(c, opt.token) || (!opt.metrics_token.empty() && bearer_ok(c, opt.metrics_token)))
            http_guard::authenticated(c);
        if (is_mutating(method)) {
            ctx.audit = true;
            ctx.audit_ip = http_guard::client_ip(c);
            ctx.audit_method = method;
            ctx.audit_url = url;
        }
        ctx.limit = body_limit_for(url, limits());
        ctx.body_deadline = steady::now() + std::chrono::seconds(opt.body_timeout_s);
        if (const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
            const auto n = parse_uint(cl);
            if (n && *n > ctx.limit) {
                ctx.too_large = true;
            } else if (n && *n > 0) {
                if (reserve(ctx, *n)) ctx.body.reserve(*n);
                else refuse_budget(ctx);
            }
        }
        return MHD_YES;
    }

    MHD_Result on_body(conn_ctx& ctx, const char* data, size_t n) {
        if (steady::now() > ctx.body_deadline) {
            count(&api_stats::slow_bodies);
            return MHD_NO;   // closes the connection
        }
        // Over a limit: keep reading (and discarding) so the client gets its
        // 413 or 503 rather than a reset connection.
        if (ctx.too_large || ctx.over_budget) return MHD_YES;
        const size_t need = ctx.body.size() + n;
        if (need > ctx.limit) {
            ctx.too_large = true;
            release(ctx);
            return MHD_YES;
        }
        if (need > ctx.reserved) {
            // No Content-Length (chunked) or more than it said: grow the
            // share by doubling, so the string's capacity is what is counted.
            const size_t want = std::min(ctx.limit, std::max(need, 2 * ctx.reserved));
            if (!reserve(ctx, want)) {
                refuse_budget(ctx);
                return MHD_YES;
            }
            ctx.body.reserve(want);
        }
        ctx.body.append(data, n);
        return MHD_YES;
    }

    void refuse_budget(conn_ctx& ctx) {
        ctx.over_budget = true;
        release(ctx);
        count(&api_stats::body_budget);
    }

    MHD_Result on_complete(MHD_Connection* c, const char* url, const char* method, conn_ctx& ctx) {
        reply r = handle([&] {
            if (ctx.too_large) {
                count(&api_stats::body_too_large);
                fail(body_too_large(ctx.limit));
            }
            if (ctx.over_budget)
                throw api_fail{503, "body_budget",
                               "request bodies being received would exceed api.bodies_in_flight_mib (" +
                                   std::to_string(opt.bodies_in_flight >> 20) + " MiB); retry",
                               1};
            return dispatch(c, url, method, ctx.body, !ctx.body.empty());
        });
        release(ctx);
        if (r.commit) return wait_for_publish(c, ctx, std::move(r));
        return send_audited(c, ctx, r);
    }

    static void on_done(void* cls, MHD_Connection* c, void** con_cls, MHD_RequestTerminationCode t) {
        auto* self = static_cast<impl*>(cls);
        http_guard::request_done(c);
        if (t == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) self->count(&api_stats::stalled_requests);
        auto* ctx = static_cast<conn_ctx*>(*con_cls);
        if (ctx == nullptr) return;
        self->unsuspend(*ctx);
        self->release(*ctx);
        delete ctx;
        *con_cls = nullptr;
    }

    static bool announced_body(MHD_Connection* c) {
        const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != nullptr && parse_uint(cl).value_or(1) != 0) return true;
        return MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != nullptr;
    }

    template <class F>
    static reply handle(F&& f) {
        try {
            return f();
        } catch (const api_fail& e) {
            reply r = error_reply(e.status, e.code, e.reason);
            r.retry_after = e.retry_after;
            return r;
        } catch (const action_error& e) {
            reply r = error_reply(http_status_of(e.code), std::string(name_of(e.code)), e.what());
            r.retry_after = e.retry_after_s;
            return r;
        } catch (const std::exception& e) {
            return error_reply(500, "internal", e.what());
        }
    }

    static MHD_Result send_audited(MHD_Connection* c, const conn_ctx& ctx, const reply& r) {
        if (ctx.audit) audit_api_call(ctx.audit_ip, ctx.audit_method, ctx.audit_url, r.status, r.body);
        return send(c, r);
    }

    static MHD_Result send(MHD_Connection* c, const reply& r) {
        MHD_Response* resp =
            r.file_fd >= 0
                ? MHD_create_response_from_fd64(r.file_size, r.file_fd)
                : MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
        if (resp == nullptr) {
            if (r.file_fd >= 0) ::close(r.file_fd);
            return MHD_NO;
        }
        if (!r.file_name.empty())
            MHD_add_response_header(resp, "Content-Disposition", ("attachment; filename=\"" + r.file_name + "\"").c_str());
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
        if (r.retry_after != 0)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, std::to_string(r.retry_after).c_str());
        if (r.status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        const MHD_Result ret = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
        MHD_destroy_response(resp);
        return ret;
    }

    // ------------------------------------------------------ publish waits

    // A write is acknowledged once its publish has passed the grace period
    // (acknowledged = forwarding). The wait happens off the pool: the
    // connection is suspended and the waiter thread resumes it, so a
    // publish held up for seconds (a reader stalling the grace period)
    // never holds a pool thread, and /health and reads go on meanwhile.
    MHD_Result wait_for_publish(MHD_Connection* c, conn_ctx& ctx, reply r) {
        std::unique_lock lk(wmu);
        if (wstop) {
            // Shutting down: no waiter any more; wait here.
            lk.unlock();
            if (!cp.commit(opt.publish_wait)) r = publish_timeout(r);
            else if (!r.resolve.empty()) r = join_reply(r, cp.wait_resolved(r.resolve));
            return send_audited(c, ctx, r);
        }
        ctx.answer = std::move(r);
        ctx.suspended = true;
        suspended.fetch_add(1, std::memory_order_relaxed);
        MHD_suspend_connection(c);
        waiting.push_back({c, &ctx, steady::now() + opt.publish_wait});
        lk.unlock();
        wcv.notify_one();
        return MHD_YES;
    }

    void unsuspend(conn_ctx& ctx) {
        if (!ctx.suspended) return;
        ctx.suspended = false;
        suspended.fetch_sub(1, std::memory_order_relaxed);
    }

    reply publish_timeout(const reply& accepted) {
        count(&api_stats::publish_timeouts);
        json j{{"error", "publish_timeout"},
               {"reason", "accepted but not yet forwarding: the publish carrying this change did not complete within " +
                              std::to_string(opt.publish_wait.count()) +
                              " ms; it goes out with the next publish that completes"}};
        j["accepted"] = json::parse(accepted.body, nullptr, false);
        reply r = json_reply(503, j);
        r.retry_after = 1;
        return r;
    }

    // Every write queued before a commit() call is covered by it: one wait
    // serves the whole queue (the publisher batches the same way). A
    // published join then waits in `resolving` (this thread's own list)
    // until its next hops answer ARP or limits.join_resolve_ms passes,
    // polled every millisecond while any is there.
    void waiter_run() {
        std::unique_lock lk(wmu);
        for (;;) {
            wcv.wait(lk, [&] { return wstop || !waiting.empty() || !resolving.empty(); });
            const size_t n = waiting.size();
            const bool stopping = wstop;
            steady::time_point first = steady::time_point::max();
            for (size_t i = 0; i < n; ++i) first = std::min(first, waiting[i].deadline);
            lk.unlock();
            bool published = false;
            if (n > 0) {
                // In slices, so that shutting down never waits for a long
                // publish_wait; a publish that completes ends the wait at once.
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(first - steady::now());
                auto slice = std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(100));
                if (!resolving.empty()) slice = std::min(slice, std::chrono::milliseconds(1));
                published = cp.commit(stopping ? std::chrono::milliseconds(0) : slice);
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            const auto now = steady::now();
            std::vector<MHD_Connection*> resume;
            auto resolved_or_due = [&](conn_ctx& ctx, steady::time_point due) {
                const auto left = cp.state().unresolved_next_hops(ctx.answer.resolve);
                if (!left.empty() && !stopping && now < due) return false;
                ctx.answer = join_reply(ctx.answer, left);
                return true;
            };
            for (auto it = resolving.begin(); it != resolving.end();) {
                if (resolved_or_due(*it->ctx, it->deadline)) {
                    resume.push_back(it->c);
                    it = resolving.erase(it);
                } else {
                    ++it;
                }
            }
            lk.lock();
            std::deque<waiting_write> keep;
            for (size_t i = 0; i < waiting.size(); ++i) {
                waiting_write& w = waiting[i];
                if (i < n && published) {
                    if (w.ctx->answer.resolve.empty()) {
                        resume.push_back(w.c);
                    } else {
                        const auto due = now + std::chrono::milliseconds(cp.join_resolve_ms());
                        if (resolved_or_due(*w.ctx, due)) resume.push_back(w.c);
                        else resolving.push_back({w.c, w.ctx, due});
                    }
                } else if (i < n && (stopping || now >= w.deadline)) {
                    w.ctx->answer = publish_timeout(w.ctx->answer);
                    resume.push_back(w.c);
                } else {
                    keep.push_back(w);
                }
            }
            waiting.swap(keep);
            const bool done = stopping && waiting.empty() && resolving.empty();
            lk.unlock();
            for (MHD_Connection* c : resume) MHD_resume_connection(c);
            if (done) return;
            lk.lock();
        }
    }

    api_status status() const {
        api_status s;
        s.counters = stats.snapshot();
        if (guard) {
            const http_guard_stats g = guard->stats();
#define STENTOR_API_GUARD_COPY_(f, help) s.counters.f = g.f;
            STENTOR_FOREACH_HTTP_GUARD_STAT(STENTOR_API_GUARD_COPY_)
#undef STENTOR_API_GUARD_COPY_
            s.connections = guard->connections();
        }
        s.body_bytes = body_bytes.load(std::memory_order_relaxed);
        s.body_bytes_peak = body_peak.load(std::memory_order_relaxed);
        s.writes_waiting = suspended.load(std::memory_order_relaxed);
        return s;
    }

    // ------------------------------------------------------ routes

    bool authorized(MHD_Connection* c) const { return bearer_ok(c, opt.token); }

    // /metrics: the admin token, the read-only metrics token, or nothing
    // from a loopback address if the profile says so (docs/metrics.md).
    bool scrape_authorized(MHD_Connection* c) const {
        const char* h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        bool loopback = false;
        if (const auto* ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            ci != nullptr && ci->client_addr != nullptr && ci->client_addr->sa_family == AF_INET)
            loopback = (ntohl(reinterpret_cast<const sockaddr_in*>(ci->client_addr)->sin_addr.s_addr) >> 24) == 127;
        return scrape_allowed(h, loopback, opt.token, opt.metrics_token, opt.metrics_loopback_open);
    }

    // A join is acknowledged (201) once it is forwarded to and its next hop
    // resolved: the listener hears the next packet. If the next hop has not
    // answered ARP within limits.join_resolve_ms the join stands but is
    // answered 202 with the next hops still unresolved: its packets are
    // dropped (drop/egress/neigh_unresolved) until they answer.
    reply join_reply(const reply& accepted, const std::vector<uint32_t>& unresolved) {
        json body = json::parse(accepted.body, nullptr, false);
        body["resolved"] = unresolved.empty();
        if (unresolved.empty()) return json_reply(201, body);
        count(&api_stats::joins_unresolved);
        json hops = json::array();
        for (const uint32_t ip : unresolved) hops.push_back(format_ipv4(ip));
        body["unresolved_next_hops"] = hops;
        body["reason"] = "next hop did not answer ARP within " + std::to_string(cp.join_resolve_ms()) +
                         " ms; the listener is added and hears the session once it answers";
        return json_reply(202, body);
    }

    static std::optional<uint64_t> query_uint(MHD_Connection* c, const char* k) {
        const char* v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
        if (v == nullptr) return std::nullopt;
        return need(parse_query_uint(k, v));
    }

    // POST /api/v1/sessions/{id}/tokens (docs/join.md). Changes nothing in
    // the model (a token is state-free until its join), so nothing is
    // published or journaled. The state mutex is held only to see that the
    // session exists; the MACs run outside it, one token_key for the batch
    // (100 000 tokens: about 0.1 s of one core, most of it the JSON).
    reply mint_tokens(uint32_t sid, const std::string& body) {
        // The running minting key (a SIGHUP may rotate it), one for the batch.
        const std::shared_ptr<const token_minter> held = cp.minter();
        const token_minter& minter = *held;
        if (!minter.configured())
            fail(503, "not_configured", "join tokens are not configured: no [join] keys in the profile");
        const token_mint_request q = need(parse_token_mint(body, limits()));
        if (!cp.state().session(sid)) fail(404, "not_found", "no session " + std::to_string(sid));
        const uint32_t ttl = q.ttl_s.value_or(minter.default_ttl_s());
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
        const int64_t expires = static_cast<int64_t>(now) + ttl;
        if (now < 0 || expires > int64_t{0xffffffff})
            fail(500, "internal", "the clock is outside what a token's 32-bit expiry holds");
        std::vector<minted_token> tokens;
        try {
            tokens = minter.mint(sid, static_cast<uint8_t>(q.tier), static_cast<uint32_t>(expires), q.count);
        } catch (const std::runtime_error& e) {
            fail(503, "csprng", std::string("cannot mint: ") + e.what());
        }
        std::atomic_ref<uint64_t>(stats.tokens_minted).fetch_add(tokens.size(), std::memory_order_relaxed);
        // Written by hand: base64url needs no escaping, and 100 000 objects
        // built as nlohmann::json cost more than the MACs.
        std::string out = "{\"session\":" + std::to_string(sid) + ",\"key_id\":" + std::to_string(minter.key_id()) +
                          ",\"tier\":" + std::to_string(q.tier) + ",\"expires\":" + std::to_string(expires) +
                          ",\"tokens\":[";
        out.reserve(out.size() + tokens.size() * (join::token_text_len + join::token_password_len + 28) + 2);
        for (size_t i = 0; i < tokens.size(); ++i) {
            out += i == 0 ? "{\"token\":\"" : ",{\"token\":\"";
            out += tokens[i].token;
            out += "\",\"password\":\"";
            out += tokens[i].password;
            out += "\"}";
        }
        out += "]}";
        return {201, std::move(out), "application/json", 0, false, {}};
    }

    parse_limits limits() const { return {opt.max_body, opt.max_bulk_body, opt.max_depth, opt.max_bulk_items}; }

    // join.mode = "token": every listener joins by itself (docs/join.md); an
    // address given over the API is exactly what the mode rules out.
    void refuse_static_listeners() const {
        if (!cp.prof().join.static_listeners)
            fail(403, "token_only",
                 "listeners join by token on this relay (join.mode = \"token\"): mint tokens with POST "
                 "/api/v1/sessions/{id}/tokens");
    }

    // /api/v1/captures (docs/capture.md). Stopping waits for the capture's
    // file to be closed (a grace period and the last writes: milliseconds).
    reply capture_route(const route& rt, const std::string& body) {
        capture_manager& cm = cp.rel().captures();
        switch (rt.kind) {
        case route_kind::captures_list: {
            json a = json::array();
            for (const auto& ci : cm.list()) a.push_back(capture_json(ci));
            return json_reply(200, {{"captures", a}});
        }
        case route_kind::capture_start:
            return json_reply(201, capture_json(cm.start(need(parse_capture_start(body, limits())))));
        case route_kind::capture_get: {
            const auto ci = cm.info(rt.capture);
            if (!ci) fail(404, "not_found", "no capture " + std::to_string(rt.capture));
            return json_reply(200, capture_json(*ci));
        }
        case route_kind::capture_stop: return json_reply(200, capture_json(cm.stop(rt.capture)));
        case route_kind::capture_delete: return json_reply(200, capture_json(cm.remove(rt.capture)));
        case route_kind::capture_file: {
            std::string why;
            const auto path = cm.finished_file(rt.capture, &why);
            if (!path) fail(cm.info(rt.capture) ? 409 : 404, cm.info(rt.capture) ? "not_ready" : "not_found", why);
            // The path is the relay's own (capture.dir + a name it made).
            const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            struct stat sb{};
            if (fd < 0 || ::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
                if (fd >= 0) ::close(fd);
                fail(404, "not_found", "capture " + std::to_string(rt.capture) + ": its file is gone");
            }
            reply r{200, "", "application/x-pcapng"};
            r.file_fd = fd;
            r.file_size = static_cast<uint64_t>(sb.st_size);
            r.file_name = path->substr(path->rfind('/') + 1);
            return r;
        }
        default: break;
        }
        fail(500, "internal", "unhandled capture route");
    }

    // The token has been checked (on_headers) when a route needs it.
    reply dispatch(MHD_Connection* c, const std::string& url, const std::string& method, const std::string& body,
                   bool has_body) {
        const route rt = need(parse_route(method, url, has_body));
        const uint32_t sid = rt.session;
        switch (rt.kind) {
        case route_kind::health:
            return json_reply(200, {{"status", "ok"}, {"published_version", cp.state().published_version()}});
        case route_kind::metrics: {
            const api_status st = status();
            return {200, prometheus_text(cp, &st, opt.metrics), "text/plain; version=0.0.4", 0, false, {}};
        }
        // Counters read since the last clear (counter_clear.h); /metrics
        // and telemetry stay monotonic.
        case route_kind::stats: {
            const api_status st = status();
            json j = stats_json(cp, &st);
            baseline.stats(j);
            return json_reply(200, j);
        }
        case route_kind::ports: {
            json j = ports_json(cp);
            baseline.ports(j);
            return json_reply(200, j);
        }
        case route_kind::lcores: {
            json j = lcores_json(cp);
            baseline.lcores(j);
            return json_reply(200, j);
        }
        case route_kind::drops: {
            json j = drops_json(cp);
            baseline.drops(j);
            return json_reply(200, j);
        }
        case route_kind::counters_clear: {
            const api_status st = status();
            return json_reply(200, {{"cleared_unix_ms", baseline.clear(cp, &st)}});
        }
        case route_kind::capacity: return json_reply(200, capacity_json(cp));
        case route_kind::events: return json_reply(200, events_json(cp, query_uint(c, "after").value_or(0)));
        case route_kind::sessions_list: return json_reply(200, sessions_json(cp));
        case route_kind::recordings_list: {
            json a = json::array();
            for (const auto& r : cp.rel().recordings()) a.push_back(recording_json(r));
            return json_reply(200, {{"recordings", a}});
        }
        case route_kind::session_create: {
            const session_params sp = need(parse_session_create(body, limits()));
            const session_view v = cp.state().session_create(sp);
            return write_reply(201, session_json(v, &cp.rel()));
        }
        case route_kind::session_get: {
            auto v = cp.state().session(sid);
            if (!v) fail(404, "not_found", "no session " + std::to_string(sid));
            return json_reply(200, session_json(*v, &cp.rel()));
        }
        case route_kind::session_end:
            cp.state().session_end(sid);
            return write_reply(200, {{"ended", sid}});
        case route_kind::recording_get: {
            const auto r = cp.rel().recording(sid);
            if (!r) fail(404, "not_found", "session " + std::to_string(sid) + " has no recording");
            return json_reply(200, recording_json(*r));
        }
        case route_kind::recording_by_id: {
            const auto r = cp.rel().recording_by_id(rt.recording);
            if (!r) fail(404, "not_found", "no recording " + std::to_string(rt.recording));
            return json_reply(200, recording_json(*r));
        }
        case route_kind::recording_delete: {
            using rs = svc::recorder::remove_status;
            const auto res = cp.rel().delete_recording(rt.recording);
            const std::string what = "recording " + std::to_string(rt.recording);
            switch (res.status) {
            case rs::not_found: fail(404, "not_found", "no " + what);
            case rs::recording:
                fail(409, "recording", what + " (session " + std::to_string(res.info.session_id) + ", state " +
                                           res.info.state + ") is still being written: end its session first");
            case rs::waiting_for_disk:
                fail(409, "recording", what + " (session " + std::to_string(res.info.session_id) +
                                           ") cannot be deleted yet: its session has ended, but a write or sync of "
                                           "its track files is still waiting for the disk (the tracks say "
                                           "waiting_for_disk); once the disk answers, the files are closed and "
                                           "it can be deleted");
            case rs::failed: fail(500, "delete_failed", what + ": " + res.error + " (it stays listed)");
            case rs::removed: break;
            }
            json files = json::array();
            for (const auto& f : res.unlinked) files.push_back(f);
            return json_reply(200, {{"deleted", rt.recording}, {"session", res.info.session_id},
                                    {"bytes", res.info.bytes}, {"files", files}});
        }
        case route_kind::speaker_add: {
            const speaker_spec s = need(parse_speaker_add(body, limits()));
            cp.state().speaker_add(sid, s);
            json o{{"session", sid}, {"ip", s.ip6 ? format_ipv6(*s.ip6) : format_ipv4(s.ip)}, {"port", s.port}};
            o["ssrc"] = s.ssrc ? json(*s.ssrc) : json(nullptr);
            return write_reply(201, o);
        }
        case route_kind::speaker_del:
            cp.state().speaker_del(sid, listener_addr{rt.ep.ip, rt.ep.port, rt.ep.ip6});
            return write_reply(200, {{"removed", rt.ep_text}});
        case route_kind::listeners_list: {
            const uint64_t offset = query_uint(c, "offset").value_or(0);
            const uint64_t limit = std::min<uint64_t>(query_uint(c, "limit").value_or(1000), 100000);
            auto v = cp.state().session(sid);
            if (!v) fail(404, "not_found", "no session " + std::to_string(sid));
            // `after` is the cursor the previous page returned as `next`.
            const std::optional<uint64_t> after = query_uint(c, "after");
            json a = json::array();
            const auto page = cp.state().listeners(sid, offset, limit, after);
            for (const auto& l : page)
                a.push_back({{"ip", l.ip6 ? format_ipv6(*l.ip6) : format_ipv4(l.ip)}, {"port", l.port}, {"tier", l.tier}});
            json out = {{"session", sid}, {"total", v->nb_listeners}, {"offset", offset}, {"listeners", a}};
            if (after) out["after"] = *after;
            out["next"] = page.size() == limit && limit != 0 ? json(page.back().seq) : json(nullptr);
            return json_reply(200, out);
        }
        case route_kind::listener_add: {
            refuse_static_listeners();
            const listener_spec l = need(parse_listener_add(body, limits()));
            cp.state().listener_add(sid, l);
            if (l.ip6)   // IPv6: answered once published (the wait for NS/NA is the network layer's, issue 15)
                return write_reply(201, {{"session", sid}, {"ip", format_ipv6(*l.ip6)}, {"port", l.port}, {"tier", l.tier}});
            return join_write({{"session", sid}, {"ip", format_ipv4(l.ip)}, {"port", l.port}, {"tier", l.tier}}, {l.ip});
        }
        case route_kind::listener_bulk: {
            // All or nothing (see relay_state::listener_add_bulk): one bad
            // item refuses the request with its index, and nothing is added.
            refuse_static_listeners();
            const std::vector<listener_spec> items = need(parse_listener_bulk(body, limits()));
            cp.state().listener_add_bulk(sid, items);
            std::vector<uint32_t> ips;
            ips.reserve(items.size());
            for (const auto& it : items)
                if (!it.ip6) ips.push_back(it.ip);
            return join_write({{"session", sid}, {"added", items.size()}}, std::move(ips));
        }
        case route_kind::listener_del:
            cp.state().listener_del(sid, listener_addr{rt.ep.ip, rt.ep.port, rt.ep.ip6});
            return write_reply(200, {{"removed", rt.ep_text}});
        case route_kind::listener_bulk_delete: {
            // All or nothing, like the bulk join: one missing or repeated
            // item refuses the request and nothing is removed.
            const std::vector<listener_addr> items = need(parse_listener_bulk_delete(body, limits()));
            cp.state().listener_del_bulk(sid, items);
            return write_reply(200, {{"session", sid}, {"removed", items.size()}});
        }
        case route_kind::token_mint: return mint_tokens(sid, body);
        case route_kind::srtp_key_add: {
            // The body held a key: wiped once parsed, whatever the outcome.
            auto parsed = parse_srtp_key(body, limits(), cp.prof().srtp.suite);
            wipe(const_cast<std::string&>(body));
            srtp_key_spec k = need(std::move(parsed));
            const std::string id = k.id;
            srtp_key_owner o{sid, std::nullopt};
            if (rt.speaker) {
                o.speaker = std::make_pair(rt.ep.ip, rt.ep.port);
                o.speaker_ip6 = rt.ep.ip6;
            }
            cp.state().srtp_key_add(o, std::move(k));
            json out{{"session", sid}, {"key", id}};
            if (rt.speaker) out["speaker"] = rt.ep_text;
            return write_reply(201, out);
        }
        case route_kind::srtp_key_activate: {
            const std::string id = need(parse_srtp_activate(body, limits()));
            cp.state().srtp_key_activate(sid, id);
            return write_reply(200, {{"session", sid}, {"active", id}});
        }
        case route_kind::srtp_key_del: {
            srtp_key_owner o{sid, std::nullopt};
            if (rt.speaker) {
                o.speaker = std::make_pair(rt.ep.ip, rt.ep.port);
                o.speaker_ip6 = rt.ep.ip6;
            }
            cp.state().srtp_key_del(o, rt.key_id);
            json out{{"session", sid}, {"removed", rt.key_id}};
            if (rt.speaker) out["speaker"] = rt.ep_text;
            return write_reply(200, out);
        }
        case route_kind::captures_list:
        case route_kind::capture_start:
        case route_kind::capture_get:
        case route_kind::capture_stop:
        case route_kind::capture_delete:
        case route_kind::capture_file: return capture_route(rt, body);
        }
        fail(500, "internal", "unhandled route");
    }
};

api_options api_options_from(const api_config& c) {
    api_options o;
    o.listen_addr = c.listen_addr;
    o.listen_port = c.listen_port;
    o.token = c.token;
    o.threads = c.threads;
    o.max_connections = c.max_connections;
    o.max_connections_per_ip = c.max_connections_per_ip;
    o.idle_timeout_s = c.idle_timeout_s;
    o.header_timeout_s = c.header_timeout_s;
    o.unauthorized_log = std::chrono::seconds(c.unauthorized_log_s);
    o.body_timeout_s = c.body_timeout_s;
    o.bodies_in_flight = size_t{c.bodies_in_flight_mib} << 20;
    o.publish_wait = std::chrono::milliseconds(c.publish_wait_ms);
    o.tls_cert_file = c.tls_cert;
    o.tls_key_file = c.tls_key;
    o.metrics_token = c.metrics_token;
    o.metrics_loopback_open = c.metrics_loopback_open;
    o.metrics = {c.metrics_top_sessions, c.metrics_top_speakers};
    return o;
}

api_server::api_server(control_plane& cp, api_options o) : _impl(std::make_unique<impl>(cp, std::move(o))) {
    auto& im = *_impl;
    if (im.opt.token.empty()) throw std::invalid_argument("api: a bearer token is required");
    if (im.opt.threads == 0 || im.opt.max_connections == 0 || im.opt.max_connections_per_ip == 0 ||
        im.opt.idle_timeout_s == 0 || im.opt.header_timeout_s == 0 || im.opt.body_timeout_s == 0)
        throw std::invalid_argument("api: threads, connection limits and timeouts must be at least 1");
    // HTTPS, or plain HTTP on loopback only (the profile check says the
    // same with file and line; this holds for every caller).
    im.transport = std::make_unique<http_transport>("api", im.opt.listen_addr, im.opt.listen_port, im.opt.tls_cert_file,
                                                    im.opt.tls_key_file);
    http_transport& tr = *im.transport;
    im.guard = std::make_unique<http_guard>(
        http_guard_options{im.opt.max_connections, im.opt.max_connections_per_ip, im.opt.idle_timeout_s,
                           im.opt.header_timeout_s},
        [&im] { im.refusals.flush(); });
    // epoll, not select(): select() cannot watch a descriptor past
    // FD_SETSIZE (1024), and a relay with many recordings holds more than
    // that, which refused every API connection (issue 10 item 2). A small
    // pool serves everything: no handler waits for a publish on a pool
    // thread (wait_for_publish suspends the connection instead).
    im.d = im.guard->start_daemon(MHD_ALLOW_SUSPEND_RESUME, im.opt.threads, tr, &impl::on_request, &im, &impl::on_done,
                                  &im);
    if (im.d == nullptr)
        throw std::runtime_error("api: cannot listen on " + im.opt.listen_addr + ":" + std::to_string(im.opt.listen_port) +
                                 (tr.tls ? " with TLS" : ""));
    const MHD_DaemonInfo* info = MHD_get_daemon_info(im.d, MHD_DAEMON_INFO_BIND_PORT);
    _port = info != nullptr ? info->port : im.opt.listen_port;
    im.waiter = std::thread([&im] { im.waiter_run(); });
}

api_server::~api_server() {
    auto& im = *_impl;
    {
        std::lock_guard lk(im.wmu);
        im.wstop = true;
    }
    im.wcv.notify_all();
    // The waiter answers every write still waiting (published, or 503
    // publish_timeout) and resumes its connection.
    if (im.waiter.joinable()) im.waiter.join();
    if (im.d == nullptr) return;
    // libmicrohttpd aborts when stopped with a suspended connection: wait
    // until every resumed one has been back through on_request (or closed).
    for (int i = 0; i < 10000 && im.suspended.load() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    MHD_stop_daemon(im.d);
    im.transport.reset();
}

api_status api_server::status() const { return _impl->status(); }

bool api_server::tls() const { return _impl->transport && _impl->transport->tls; }

}  // namespace stentor::control
