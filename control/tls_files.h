// The certificate and key the control API serves HTTPS with (api.tls_cert,
// api.tls_key; docs/profiles.md, docs/api.md "HTTPS"). Read and checked
// twice: by the profile loader, so `stentord --check` names the file and
// what is wrong with it (file:line of the setting), and by the API server
// when it starts. The key is the relay's: its buffer is wiped after use.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace stentor::control {

// A PEM file's text, or why it cannot be used. Only a regular file (a
// device or FIFO is never opened), at most 256 KiB; with `secret`, refused
// when group or others may read or write it (like join key files).
struct pem_file {
    std::string text;
    std::string error;   // empty: read
};
pem_file read_pem_file(const std::string& path, bool secret);

// Whether a certificate chain and a private key load with GnuTLS, the
// library libmicrohttpd serves TLS with, and belong together: nullopt if
// so, else {the setting to blame ("tls_cert" or "tls_key"), why}.
std::optional<std::pair<std::string, std::string>> check_tls_pair(const std::string& cert_pem, const std::string& key_pem);

// Overwrite (in a way the compiler keeps) and empty.
void wipe(std::string& s) noexcept;

// Wipes the string it guards when it goes out of scope, on every path.
struct wiped {
    std::string& s;
    ~wiped() { wipe(s); }
};

}  // namespace stentor::control
