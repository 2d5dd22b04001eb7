// A real etcd (Debian's etcd-server) for the fleet tests: its own data dir
// under /tmp, loopback ports picked free, started and stopped by pid. Never
// a mock: the registry code talks to the same gateway a fleet uses.
//
// etcd_server(etcd_security{...}) is the secure variant (docs/fleet.md
// "Running etcd securely"): certificates made with the openssl CLI in its
// dir (a CA, etcd's certificate for 127.0.0.1, a relay's client
// certificate, and a second CA with its own client certificate, the
// impostor's), etcd started with --cert-file/--key-file/--trusted-ca-file/
// --client-cert-auth, then users and roles made and auth enabled with
// etcdctl: root, and "stentor" (password in a 0600 file) with read-write on
// every key.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_client.h"

namespace stentor::test {

// A loopback port nobody listens on now (bound and released: a small race
// with other processes, acceptable in tests).
inline uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

// Runs a shell command; throws with its output when it fails.
inline void sh(const std::string& cmd) {
    const std::string full = "(" + cmd + ") >/tmp/stentor-etcd-sh.$$ 2>&1 || { cat /tmp/stentor-etcd-sh.$$ >&2; "
                             "rm -f /tmp/stentor-etcd-sh.$$; exit 1; }; rm -f /tmp/stentor-etcd-sh.$$";
    if (std::system(full.c_str()) != 0) throw std::runtime_error("command failed: " + cmd);
}

struct etcd_security {
    bool auth = true;            // users, roles and `auth enable`
    unsigned token_ttl_s = 0;    // etcd's --auth-token-ttl (0: etcd's default, 300 s)
};

class etcd_server {
public:
    // `extra`: more etcd flags (e.g. "--experimental-watch-progress-notify-interval=200ms").
    explicit etcd_server(std::vector<std::string> extra = {})
        : _client_port(free_port()), _peer_port(free_port()), _extra(std::move(extra)) {
        char tmpl[] = "/tmp/stentor-etcd.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
        _dir = tmpl;
        start();
    }
    explicit etcd_server(etcd_security sec) : _client_port(free_port()), _peer_port(free_port()) {
        char tmpl[] = "/tmp/stentor-etcd.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
        _dir = tmpl;
        _tls = true;
        _sec = sec;
        make_certificates();
        _access.ca_file = _dir + "/ca.crt";
        _access.cert_file = _dir + "/relay.crt";
        _access.key_file = _dir + "/relay.key";
        start();
        if (sec.auth) enable_auth();
    }
    ~etcd_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(_dir, ec);
    }
    etcd_server(const etcd_server&) = delete;
    etcd_server& operator=(const etcd_server&) = delete;

    std::string url() const {
        return std::string(_tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(_client_port);
    }
    // With the relay's access: the CA, its client certificate and, once
    // auth is on, user "stentor".
    fleet::etcd_endpoints endpoints() const { return fleet::etcd_endpoints({url()}, _access); }
    const std::string& dir() const { return _dir; }
    // The files the secure variant made (dir()/…): ca.crt, relay.crt,
    // relay.key, other-ca.crt, other.crt, other.key, stentor.password.
    std::string file(const std::string& name) const { return _dir + "/" + name; }
    static constexpr const char* user = "stentor";
    static constexpr const char* password = "s3cret-Stentor-pw";
    pid_t pid() const { return _pid; }
    uint16_t client_port() const { return _client_port; }

    // Starts etcd (same data dir and ports as before) and waits until it
    // answers (bounded: 15 s).
    void start() {
        if (_pid > 0) return;
        const std::string client = url();
        const std::string peer = "http://127.0.0.1:" + std::to_string(_peer_port);
        const std::string log = _dir + "/etcd.log";
        _pid = ::fork();
        if (_pid == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            const std::string data = _dir + "/data";
            std::vector<std::string> args = {"etcd", "--name", "default", "--data-dir", data,
                                             "--listen-client-urls", client, "--advertise-client-urls", client,
                                             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                             "--initial-cluster", "default=" + peer, "--log-level", "warn"};
            for (const auto& a : _extra) args.push_back(a);
            if (_tls) {
                for (const std::string& a :
                     {std::string("--cert-file=") + _dir + "/server.crt", std::string("--key-file=") + _dir + "/server.key",
                      std::string("--trusted-ca-file=") + _dir + "/ca.crt", std::string("--client-cert-auth")})
                    args.push_back(a);
                if (_sec.token_ttl_s > 0) args.push_back("--auth-token-ttl=" + std::to_string(_sec.token_ttl_s));
            }
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp("etcd", argv.data());
            ::_exit(127);
        }
        fleet::etcd_client c(endpoints(), std::chrono::milliseconds(300));
        for (int i = 0; i < 150; ++i) {
            try {
                c.get("/health-probe");
                return;
            } catch (const fleet::etcd_error&) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            int st = 0;
            if (::waitpid(_pid, &st, WNOHANG) == _pid) {
                _pid = -1;
                throw std::runtime_error("etcd exited at start; see " + log);
            }
        }
        throw std::runtime_error("etcd did not answer within 15 s; see " + log);
    }

    // SIGTERM (a clean stop) or SIGKILL, then reap.
    void stop(int sig = SIGTERM) {
        if (_pid <= 0) return;
        ::kill(_pid, sig);
        int st = 0;
        ::waitpid(_pid, &st, 0);
        _pid = -1;
    }

    // etcdctl against this etcd as root (once auth is on) with the relay's
    // client certificate.
    void etcdctl(const std::string& args) const {
        std::string cmd = "ETCDCTL_API=3 etcdctl --endpoints " + url() + " --cacert " + file("ca.crt") + " --cert " +
                          file("relay.crt") + " --key " + file("relay.key");
        if (_auth_on) cmd += " --user root:root-pw";
        sh(cmd + " " + args);
    }

private:
    void make_certificates() {
        const std::string d = _dir;
        const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
        auto ca = [&](const std::string& name, const std::string& cn) {
            sh("openssl req -x509" + ec + "-keyout " + d + "/" + name + ".key -out " + d + "/" + name +
               ".crt -days 2 -subj /CN=" + cn);
        };
        auto leaf = [&](const std::string& name, const std::string& subject, const std::string& issuer,
                        const std::string& ext) {
            const std::string e = d + "/" + name + ".ext";
            sh("printf '" + ext + "\n' > " + e);
            sh("openssl req -new" + ec + "-keyout " + d + "/" + name + ".key -out " + d + "/" + name +
               ".csr -subj " + subject);
            sh("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + issuer + ".crt -CAkey " + d + "/" +
               issuer + ".key -CAcreateserial -out " + d + "/" + name + ".crt -days 2 -extfile " + e);
            ::chmod((d + "/" + name + ".key").c_str(), 0600);
        };
        ca("ca", "stentor-test-ca");
        ca("other-ca", "impostor-ca");
        // etcd's own CN is no etcd user (its gateway presents it as a client);
        // clients have no CN: with --client-cert-auth and users on, etcd's
        // gateway answers 400 to any client certificate that carries one.
        leaf("server", "/CN=etcd-test-server", "ca",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth");
        leaf("relay", "/O=stentor/OU=relay", "ca", "extendedKeyUsage=clientAuth");
        leaf("other", "/O=stentor/OU=relay", "other-ca", "extendedKeyUsage=clientAuth");
        leaf("named", "/CN=stentor-relay", "ca", "extendedKeyUsage=clientAuth");
        const std::string pw = file("stentor.password");
        sh("printf '%s\n' '" + std::string(password) + "' > " + pw);
        ::chmod(pw.c_str(), 0600);
    }

    void enable_auth() {
        etcdctl("user add root:root-pw");
        etcdctl("user grant-role root root");
        etcdctl("role add stentor");
        etcdctl("role grant-permission stentor readwrite / --prefix=true");
        etcdctl(std::string("user add ") + user + ":" + password);
        etcdctl(std::string("user grant-role ") + user + " stentor");
        etcdctl("auth enable");
        _auth_on = true;
        _access.user = user;
        _access.password = fleet::make_secret(password);
    }

    bool _tls = false;
    bool _auth_on = false;
    etcd_security _sec;
    fleet::etcd_access _access;
    uint16_t _client_port;
    uint16_t _peer_port;
    std::vector<std::string> _extra;
    std::string _dir;
    pid_t _pid = -1;
};

// Poll `cond` every 50 ms until it holds or `limit` passes; true if it held.
template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return cond();
}

}  // namespace stentor::test
