#include "etcd_client.h"

#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string_view>

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log_escape.h"

namespace stentor::fleet {

using json = nlohmann::json;

namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t append_body(char* p, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(p, size * n);
    return size * n;
}

// grpc-gateway writes int64 as a JSON string; absent means 0 (proto3).
int64_t i64(const json& j, const char* field) {
    const auto it = j.find(field);
    if (it == j.end() || it->is_null()) return 0;
    if (it->is_string()) return std::strtoll(it->get<std::string>().c_str(), nullptr, 10);
    if (it->is_number_integer()) return it->get<int64_t>();
    throw etcd_error(fmt::format("etcd: field {} is neither a number nor a string", field));
}

etcd_kv kv_of(const json& j) {
    etcd_kv kv;
    kv.key = base64_decode(j.value("key", ""));
    kv.value = base64_decode(j.value("value", ""));
    kv.create_revision = i64(j, "create_revision");
    kv.mod_revision = i64(j, "mod_revision");
    kv.lease = i64(j, "lease");
    return kv;
}

// A body that is not etcd's JSON, as an error text shows it: whatever
// answers at that URL wrote it, so through escape_for_log (printable ASCII,
// \xNN for every other byte): its first 200 bytes never end in half a UTF-8
// character, and no byte that is not UTF-8 reaches a last_error, a log line
// or the director's JSON answers. Trailing blank lines are dropped first.
std::string raw_excerpt(std::string_view body) {
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) body.remove_suffix(1);
    return escape_for_log(body, 200);
}

json parse(const std::string& body, const std::string& what) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw etcd_error(fmt::format("etcd: {}: answer is not a JSON object: {}", what, raw_excerpt(body)));
    // The gateway's error shape: {"error": "...", "code": N, "message": "..."}
    if (j.contains("error") && !j.contains("result")) {
        const auto& e = j["error"];
        throw etcd_error(fmt::format("etcd: {}: {}", what,
                                     e.is_string() ? e.get<std::string>() : j.value("message", e.dump())));
    }
    return j;
}

// etcd says the token it is shown is not (or no longer) one it handed out:
// it lapsed (--auth-token-ttl), etcd restarted (simple tokens live in its
// memory), or the auth store moved on. Authenticating again is the cure.
bool token_rejected(const std::string& why) {
    return why.find("invalid auth token") != std::string::npos ||
           why.find("revision of auth store is old") != std::string::npos;
}

void cleanse(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

}  // namespace

std::shared_ptr<const std::string> make_secret(std::string text) {
    return std::shared_ptr<const std::string>(new std::string(std::move(text)), [](const std::string* p) {
        auto* s = const_cast<std::string*>(p);
        cleanse(*s);
        delete s;
    });
}

std::string prefix_end(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        auto& last = end.back();
        if (static_cast<unsigned char>(last) < 0xff) {
            last = static_cast<char>(static_cast<unsigned char>(last) + 1);
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');   // every key (etcd's "\0" range end)
}

std::string base64_encode(const std::string& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string base64_decode(const std::string& text) {
    if (text.empty()) return {};
    if (text.size() % 4 != 0) throw etcd_error("etcd: base64 text of a length not a multiple of 4");
    std::string out(text.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) throw etcd_error("etcd: text is not base64");
    size_t len = static_cast<size_t>(n);
    // EVP_DecodeBlock counts the padding's zero bytes.
    if (text.size() >= 1 && text[text.size() - 1] == '=') --len;
    if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

etcd_client::etcd_client(etcd_endpoints endpoints, std::chrono::milliseconds timeout)
    : _endpoints(std::move(endpoints)), _timeout(timeout) {
    if (_endpoints.empty()) throw etcd_error("etcd: no endpoint");
    for (auto& e : _endpoints)
        while (!e.empty() && e.back() == '/') e.pop_back();
    global_init();
    _curl = curl_easy_init();
    if (_curl == nullptr) throw etcd_error("etcd: curl_easy_init failed");
}

etcd_client::~etcd_client() {
    cleanse(_token);
    curl_easy_cleanup(static_cast<CURL*>(_curl));
}

void etcd_client::apply_tls(void* handle) const {
    CURL* c = static_cast<CURL*>(handle);
    const etcd_access& a = _endpoints.access;
    // Only what a gateway speaks; never a redirect elsewhere (curl follows none by default).
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    if (!a.ca_file.empty()) {
        // The fleet's CA and nothing else: a certificate some public CA
        // signed for the same name is not etcd.
        curl_easy_setopt(c, CURLOPT_CAINFO, a.ca_file.c_str());
        curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
    }
    if (!a.cert_file.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, a.cert_file.c_str());
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY, a.key_file.c_str());
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

std::string etcd_client::request(const std::string& url, const std::string* body, bool with_token) {
    CURL* c = static_cast<CURL*>(_curl);
    curl_easy_reset(c);
    std::string out;
    apply_tls(c);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(_timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(_timeout.count()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    char detail[CURL_ERROR_SIZE] = {0};   // libcurl's own words (which certificate check failed)
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_slist* hdr = nullptr;
    std::string auth;
    if (with_token && !_token.empty()) {
        auth = "Authorization: " + _token;
        hdr = curl_slist_append(hdr, auth.c_str());
    }
    if (body != nullptr) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    if (hdr != nullptr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    cleanse(auth);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
    if (rc != CURLE_OK)
        throw etcd_error(fmt::format("etcd: {}: {}{}{}", url, curl_easy_strerror(rc), detail[0] != '\0' ? ": " : "",
                                     detail));
    if (status != 200) {
        // grpc-gateway answers errors with a JSON body that says why.
        // Anything else (a proxy's page, a stranger at that URL): its first
        // 200 bytes, escaped, as every body that is not etcd's JSON is
        // (raw_excerpt): this text ends in a last_error and in the
        // director's answers.
        json j = json::parse(out, nullptr, false);
        std::string why = raw_excerpt(out);
        if (!j.is_discarded() && j.is_object()) why = j.value("message", j.value("error", why));
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        // etcd (embed/serve.go) with --client-cert-auth and auth enabled
        // refuses every gateway request whose client certificate has a CN.
        if (why.find("CommonName of client") != std::string::npos)
            why += " (etcd with --client-cert-auth and users refuses, at its JSON gateway, a client certificate "
                   "that has a Common Name: issue fleet.etcd_cert without one, e.g. -subj /O=stentor/OU=relay)";
        throw etcd_error(fmt::format("etcd: {}: HTTP {}: {}", url, status, why));
    }
    return out;
}

// With a user: a token first, and when etcd rejects the token (it lapsed,
// etcd restarted), one new token and the same request once more. The
// answer is checked for etcd's error shape here (a streaming call such as
// a keep-alive says "invalid auth token" in a 200's body).
std::string etcd_client::post(const std::string& path, const std::string& body) {
    const bool auth = !_endpoints.access.user.empty();
    if (auth && _token.empty()) authenticate();
    try {
        std::string out = post_once(path, body);
        if (auth) parse(out, path);
        return out;
    } catch (const etcd_error& e) {
        if (!auth || !token_rejected(e.what())) throw;
    }
    cleanse(_token);
    authenticate();
    return post_once(path, body);
}

void etcd_client::authenticate() {
    const etcd_access& a = _endpoints.access;
    std::string body = json{{"name", a.user}, {"password", a.password ? *a.password : std::string()}}.dump();
    std::string out;
    try {
        std::string last;
        bool done = false;
        for (size_t i = 0; i < _endpoints.size() && !done; ++i) {
            const size_t at = (_current + i) % _endpoints.size();
            try {
                out = request(_endpoints[at] + "/v3/auth/authenticate", &body, false);
                _current = at;
                done = true;
            } catch (const etcd_error& e) {
                last = e.what();
                if (last.find(": HTTP ") != std::string::npos) throw;
            }
        }
        if (!done) throw etcd_error(last);
    } catch (const etcd_error& e) {
        cleanse(body);
        throw etcd_error(fmt::format("etcd: authenticating as user \"{}\" failed: {}", a.user, e.what()));
    }
    cleanse(body);
    json j = parse(out, "authenticate");
    cleanse(out);
    _token = j.value("token", "");
    if (j.contains("token")) {
        auto& t = j["token"].get_ref<std::string&>();
        cleanse(t);
    }
    if (_token.empty())
        throw etcd_error(fmt::format("etcd: authenticating as user \"{}\": no token in etcd's answer (is auth "
                                     "enabled in etcd? etcdctl auth enable)",
                                     a.user));
    ++_authentications;
}

std::string etcd_client::post_once(const std::string& path, const std::string& body) {
    std::string last;
    for (size_t i = 0; i < _endpoints.size(); ++i) {
        const size_t at = (_current + i) % _endpoints.size();
        try {
            std::string out = request(_endpoints[at] + path, &body);
            _current = at;
            return out;
        } catch (const etcd_error& e) {
            last = e.what();
            // An HTTP answer is etcd's own verdict: another member would say the same.
            if (last.find(": HTTP ") != std::string::npos) throw;
        }
    }
    throw etcd_error(last);
}

int64_t etcd_client::lease_grant(int64_t ttl_s) {
    const json j = parse(post("/v3/lease/grant", json{{"TTL", std::to_string(ttl_s)}}.dump()), "lease grant");
    const int64_t id = i64(j, "ID");
    if (id == 0) throw etcd_error(fmt::format("etcd: lease grant: no lease id ({})", j.value("error", "")));
    return id;
}

int64_t etcd_client::lease_keepalive(int64_t id) {
    const json j = parse(post("/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump()), "lease keepalive");
    if (!j.contains("result")) throw etcd_error("etcd: lease keepalive: no result");
    return i64(j["result"], "TTL");
}

void etcd_client::lease_revoke(int64_t id) {
    // Revoking a lease that is gone is not an error for us: the keys are gone.
    try {
        parse(post("/v3/lease/revoke", json{{"ID", std::to_string(id)}}.dump()), "lease revoke");
    } catch (const etcd_error& e) {
        if (std::string(e.what()).find("not found") == std::string::npos) throw;
    }
}

int64_t etcd_client::put(const std::string& key, const std::string& value, int64_t lease) {
    json req{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) req["lease"] = std::to_string(lease);
    const json j = parse(post("/v3/kv/put", req.dump()), "put " + key);
    return j.contains("header") ? i64(j["header"], "revision") : 0;
}

std::optional<etcd_kv> etcd_client::get(const std::string& key) {
    const json j = parse(post("/v3/kv/range", json{{"key", base64_encode(key)}}.dump()), "get " + key);
    if (!j.contains("kvs") || j["kvs"].empty()) return std::nullopt;
    return kv_of(j["kvs"][0]);
}

std::vector<etcd_kv> etcd_client::range_prefix(const std::string& prefix, int64_t* revision) {
    const json j = parse(
        post("/v3/kv/range", json{{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}}.dump()),
        "range " + prefix);
    std::vector<etcd_kv> out;
    if (j.contains("kvs"))
        for (const auto& k : j["kvs"]) out.push_back(kv_of(k));
    if (revision != nullptr) *revision = j.contains("header") ? i64(j["header"], "revision") : 0;
    return out;
}

int64_t etcd_client::del(const std::string& key) {
    const json j = parse(post("/v3/kv/deleterange", json{{"key", base64_encode(key)}}.dump()), "delete " + key);
    return i64(j, "deleted");
}

bool etcd_client::create_if_absent(const std::string& key, const std::string& value, int64_t lease) {
    json put{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease != 0) put["lease"] = std::to_string(lease);
    const json req{
        {"compare", json::array({json{{"key", base64_encode(key)},
                                      {"target", "CREATE"},
                                      {"result", "EQUAL"},
                                      {"create_revision", "0"}}})},
        {"success", json::array({json{{"request_put", put}}})}};
    const json j = parse(post("/v3/kv/txn", req.dump()), "txn create " + key);
    return j.value("succeeded", false);
}

bool etcd_client::put_if_absent_or_leased(const std::string& key, const std::string& value, int64_t lease,
                                          std::optional<etcd_kv>* holder) {
    if (lease == 0) throw etcd_error("etcd: put_if_absent_or_leased needs a lease");
    json put{{"key", base64_encode(key)}, {"value", base64_encode(value)}, {"lease", std::to_string(lease)}};
    // The usual case, a refresh: the key is ours already. etcd compares a
    // missing key's lease as 0, so this fails for an absent key too; the
    // failure branch reads the key to tell the two apart.
    const json req{
        {"compare", json::array({json{{"key", base64_encode(key)},
                                      {"target", "LEASE"},
                                      {"result", "EQUAL"},
                                      {"lease", std::to_string(lease)}}})},
        {"success", json::array({json{{"request_put", put}}})},
        {"failure", json::array({json{{"request_range", json{{"key", base64_encode(key)}}}}})}};
    const json j = parse(post("/v3/kv/txn", req.dump()), "txn put-if-ours " + key);
    if (j.value("succeeded", false)) return true;
    std::optional<etcd_kv> now;
    if (j.contains("responses") && !j["responses"].empty()) {
        const json& r = j["responses"][0].value("response_range", json::object());
        if (r.contains("kvs") && !r["kvs"].empty()) now = kv_of(r["kvs"][0]);
    }
    if (!now) {
        if (create_if_absent(key, value, lease)) return true;
        now = get(key);   // someone created it in between
    }
    if (holder != nullptr) *holder = now;
    return false;
}

bool etcd_client::delete_if_unchanged(const std::string& key, int64_t mod_revision) {
    const json req{
        {"compare", json::array({json{{"key", base64_encode(key)},
                                      {"target", "MOD"},
                                      {"result", "EQUAL"},
                                      {"mod_revision", std::to_string(mod_revision)}}})},
        {"success", json::array({json{{"request_delete_range", json{{"key", base64_encode(key)}}}}})}};
    const json j = parse(post("/v3/kv/txn", req.dump()), "txn delete " + key);
    return j.value("succeeded", false);
}

void etcd_client::watch_prefix(const std::string& prefix, int64_t start_revision,
                               const std::function<bool(const std::vector<etcd_event>&, int64_t)>& on_events,
                               const std::atomic<bool>& stop, std::chrono::milliseconds idle) {
    json create{{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}};
    if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
    if (idle.count() > 0) create["progress_notify"] = true;
    const std::string body = json{{"create_request", create}}.dump();
    if (!_endpoints.access.user.empty() && _token.empty()) authenticate();   // may move to another member
    const std::string url = _endpoints[_current] + "/v3/watch";

    struct stream {
        std::string buf;
        std::string error;
        bool done = false;
        std::chrono::steady_clock::time_point heard = std::chrono::steady_clock::now();   // the last whole message
        const std::function<bool(const std::vector<etcd_event>&, int64_t)>* cb;
    } st;
    st.cb = &on_events;
    // One JSON object per line; a line may arrive in pieces. Nothing may
    // leave this C callback as an exception (libcurl cannot unwind through
    // it: std::terminate). A line of the wrong shape ("result" not an
    // object, a revision of the wrong type) or a throw from the caller's
    // callback ends the stream with the error, thrown as etcd_error once
    // curl returns: the caller counts it and reads the view again.
    auto on_bytes = +[](char* p, size_t size, size_t n, void* arg) -> size_t {
        auto* s = static_cast<stream*>(arg);
        try {
            s->buf.append(p, size * n);
            size_t nl;
            while (!s->done && (nl = s->buf.find('\n')) != std::string::npos) {
                const std::string line = s->buf.substr(0, nl);
                s->buf.erase(0, nl + 1);
                if (line.empty()) continue;
                s->heard = std::chrono::steady_clock::now();
                json j = json::parse(line, nullptr, false);
                if (j.is_discarded() || !j.is_object()) {
                    s->error = "watch: a line that is not JSON: " + raw_excerpt(line);
                    s->done = true;
                    break;
                }
                if (j.contains("error")) {
                    s->error = "watch: " + j["error"].dump();
                    s->done = true;
                    break;
                }
                const json& r = j.value("result", json::object());
                if (r.value("canceled", false)) {
                    s->error = fmt::format("watch canceled (compact_revision {}): {}", i64(r, "compact_revision"),
                                           r.value("cancel_reason", ""));
                    s->done = true;
                    break;
                }
                std::vector<etcd_event> events;
                try {
                    for (const auto& e : r.value("events", json::array())) {
                        etcd_event ev;
                        ev.deleted = e.value("type", "PUT") == "DELETE";
                        ev.kv = kv_of(e.value("kv", json::object()));
                        events.push_back(std::move(ev));
                    }
                } catch (const std::exception& ex) {
                    s->error = std::string("watch: ") + ex.what();
                    s->done = true;
                    break;
                }
                const int64_t rev = r.contains("header") ? i64(r["header"], "revision") : 0;
                if (!(*s->cb)(events, rev)) s->done = true;
            }
        } catch (const std::exception& ex) {
            s->error = "watch: a message of the wrong shape: " + escape_for_log(ex.what());
            s->done = true;
        } catch (...) {
            s->error = "watch: a message of the wrong shape";
            s->done = true;
        }
        return s->done ? 0 : size * n;   // 0 ends the transfer
    };

    CURL* c = curl_easy_init();
    CURLM* m = curl_multi_init();
    if (c == nullptr || m == nullptr) {
        if (c != nullptr) curl_easy_cleanup(c);
        if (m != nullptr) curl_multi_cleanup(m);
        throw etcd_error("etcd: watch: curl init failed");
    }
    curl_slist* hdr = curl_slist_append(nullptr, "Content-Type: application/json");
    // etcd's rpctypes.MetadataRequireLeaderKey, passed on by the gateway:
    // a member without a leader cancels the stream ("etcdserver: no
    // leader") rather than keep it open with nothing to say. Seen on etcd
    // 3.4.23 with three members, two of them stopped: ended within ~2 s
    // with the header, silent for as long as it was watched without.
    hdr = curl_slist_append(hdr, "Grpc-Metadata-hasleader: true");
    std::string auth;
    if (!_token.empty()) {
        auth = "Authorization: " + _token;
        hdr = curl_slist_append(hdr, auth.c_str());
    }
    apply_tls(c);
    char detail[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(_timeout.count()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_multi_add_handle(m, c);
    std::string failure;
    for (;;) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            failure = "curl_multi_perform failed";
            break;
        }
        if (running == 0) {
            // The gateway's last message may lack its newline (a "no
            // leader" cancel ends the stream right after it): read it too.
            if (!st.done && !st.buf.empty()) {
                char nl[] = "\n";
                on_bytes(nl, 1, 1, &st);
            }
            int left = 0;
            while (CURLMsg* msg = curl_multi_info_read(m, &left))
                if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK && !st.done)
                    failure = std::string(curl_easy_strerror(msg->data.result)) + (detail[0] != '\0' ? ": " : "") + detail;
            if (failure.empty() && !st.done) failure = "the stream ended";
            break;
        }
        if (stop.load(std::memory_order_relaxed) || st.done) break;
        if (idle.count() > 0 && std::chrono::steady_clock::now() - st.heard > idle) {
            st.error = fmt::format("watch: no event and no progress notification for {} ms (the member may be cut off "
                                   "from the rest of its cluster, or etcd's watch progress interval is longer)",
                                   idle.count());
            break;
        }
        curl_multi_poll(m, nullptr, 0, 100, nullptr);
    }
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdr);
    cleanse(auth);
    // A lapsed token: the next call (the caller's reconnect) takes a new one.
    if (token_rejected(st.error)) cleanse(_token);
    if (!st.error.empty()) throw etcd_error("etcd: " + st.error);
    if (!failure.empty() && !stop.load()) throw etcd_error(fmt::format("etcd: {}: {}", url, failure));
}

std::optional<double> etcd_client::metric(const std::string& name) {
    const std::string text = request(_endpoints[_current] + "/metrics", nullptr, false);
    std::istringstream in(text);
    std::string line;
    double sum = 0;
    bool found = false;
    while (std::getline(in, line)) {
        if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
        const char next = line[name.size()];
        if (next != ' ' && next != '{') continue;
        const auto sp = line.rfind(' ');
        sum += std::strtod(line.c_str() + sp + 1, nullptr);
        found = true;
    }
    if (!found) return std::nullopt;
    return sum;
}

}  // namespace stentor::fleet
