#include "tls_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

namespace stentor::control {

namespace {

constexpr size_t max_pem = 256 * 1024;   // a long chain fits many times over

std::string gnutls_reason(int rc) { return std::string(gnutls_strerror(rc)); }

}  // namespace

// wipe(std::string&) is defined once, in srtp_keys.cc (OPENSSL_cleanse).

pem_file read_pem_file(const std::string& path, bool secret) {
    pem_file out;
    auto fail = [&](const std::string& why) {
        wipe(out.text);
        out.error = path + ": " + why;
        return out;
    };
    if (path.empty()) return fail("no file named");
    // stat() first so that a device is never opened; fstat() again on what
    // was opened (the path may have changed in between).
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return fail(std::string("cannot open: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail("not a regular file");
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return fail(std::string("cannot open: ") + std::strerror(errno));
    struct fd_guard {
        int fd;
        ~fd_guard() { ::close(fd); }
    } guard{fd};
    if (::fstat(fd, &st) != 0) return fail(std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail("not a regular file");
    if (secret && (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return fail(std::string("readable or writable by group or others (mode ") + mode +
                    "); whoever reads it can pose as this relay: chmod 600 it");
    }
    if (st.st_size > static_cast<off_t>(max_pem)) return fail("larger than 256 KiB: not a PEM certificate or key");
    out.text.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out.text.size()) {
        const ssize_t n = ::read(fd, out.text.data() + got, out.text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(std::string("cannot read: ") + std::strerror(errno));
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    out.text.resize(got);
    if (out.text.empty()) return fail("empty");
    return out;
}

std::optional<std::pair<std::string, std::string>> check_tls_pair(const std::string& cert_pem, const std::string& key_pem) {
    using why = std::pair<std::string, std::string>;
    const gnutls_datum_t cert{reinterpret_cast<unsigned char*>(const_cast<char*>(cert_pem.data())),
                              static_cast<unsigned>(cert_pem.size())};
    const gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(key_pem.data())),
                             static_cast<unsigned>(key_pem.size())};
    // The chain on its own, so a bad certificate is blamed on tls_cert.
    gnutls_x509_crt_t* certs = nullptr;
    unsigned nb_certs = 0;
    int rc = gnutls_x509_crt_list_import2(&certs, &nb_certs, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) return why{"tls_cert", "not a PEM certificate (chain): " + gnutls_reason(rc)};
    for (unsigned i = 0; i < nb_certs; ++i) gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    if (nb_certs == 0) return why{"tls_cert", "no certificate in the file"};
    // The key on its own: an encrypted key needs a passphrase nobody is
    // there to type when the relay starts.
    gnutls_x509_privkey_t pk = nullptr;
    if (gnutls_x509_privkey_init(&pk) < 0) return why{"tls_key", "GnuTLS cannot allocate a key"};
    rc = gnutls_x509_privkey_import2(pk, &key, GNUTLS_X509_FMT_PEM, nullptr, 0);
    gnutls_x509_privkey_deinit(pk);
    if (rc < 0) {
        const bool encrypted = key_pem.find("ENCRYPTED") != std::string::npos;
        return why{"tls_key", encrypted ? "the key is encrypted: stentord cannot ask for a passphrase (openssl pkey -in "
                                          "KEY -out PLAIN.key, then chmod 600)"
                                        : "not a PEM private key: " + gnutls_reason(rc)};
    }
    // Together, as libmicrohttpd will load them.
    gnutls_certificate_credentials_t cred = nullptr;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) return why{"tls_key", "GnuTLS cannot allocate credentials"};
    rc = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, nullptr, 0);
    gnutls_certificate_free_credentials(cred);
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
        return why{"tls_key", "is not the private key of the certificate in api.tls_cert (the first one of the file)"};
    if (rc < 0) return why{"tls_key", "GnuTLS refuses the certificate and key together: " + gnutls_reason(rc)};
    return std::nullopt;
}

}  // namespace stentor::control
