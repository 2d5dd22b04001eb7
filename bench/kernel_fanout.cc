// kernel_fanout: the best a kernel-socket relay can do on one core, as the
// peer workload_harness compares Stentor with. One UDP socket, one RTP packet
// (the same bytes to every client, as a relay forwards them), one prebuilt
// mmsghdr per client (destination and iovec filled once), sent with
// sendmmsg(2) in full batches of 1024 messages (--batch) round the clients;
// with fewer clients than a batch, one call carries several packets' fan-outs.
//
//   kernel_fanout --clients N --seconds S [--payload B] [--base A.B.C.D] [--port P] [--batch M]
//
// Destinations are base+0 .. base+N-1 (host order). The harness runs it in a
// network namespace whose route to them ends in a veth whose peer is down:
// every message crosses UDP, IP, routing, the neighbour and the device layer
// and is dropped at the driver, never leaving the namespace. It prints
//   kernel_sendmmsg clients=<N> messages=<m> seconds=<s> msgs_per_s=<x> errors=<e>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

struct options {
    unsigned clients = 1000;
    double seconds = 2.0;
    unsigned payload = 92;   // RTP header + 80-byte Opus frame: the 134-byte frame on the wire
    uint32_t base = 0x0a630001;   // 10.99.0.1
    unsigned port = 5004;
    unsigned batch = 1024;
};

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const char* v = argv[i + 1];
        if (k == "--clients") o.clients = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
        else if (k == "--seconds") o.seconds = std::strtod(v, nullptr);
        else if (k == "--payload") o.payload = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
        else if (k == "--port") o.port = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
        else if (k == "--batch") o.batch = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
        else if (k == "--base") {
            in_addr a{};
            if (inet_pton(AF_INET, v, &a) != 1) return false;
            o.base = ntohl(a.s_addr);
        } else
            return false;
    }
    if (argc % 2 == 0) return false;
    return o.clients > 0 && o.clients <= 65000 && o.batch > 0 && o.batch <= 1024 && o.payload > 0 &&
           o.payload <= 1400 && o.seconds > 0 && o.port > 0 && o.port < 65536;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: kernel_fanout --clients N (1..65000) --seconds S [--payload B] [--base A.B.C.D] "
                     "[--port P] [--batch M (1..1024)]\n");
        return 2;
    }
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        std::perror("socket");
        return 1;
    }
    std::vector<uint8_t> pkt(o.payload);
    pkt[0] = 0x80;
    pkt[1] = 111;
    for (size_t i = 12; i < pkt.size(); ++i) pkt[i] = static_cast<uint8_t>(i);

    // One prebuilt message per client, the first `batch` of them repeated
    // at the end, so that any `batch` consecutive entries are valid: every
    // call sends a full batch, wrapping round the clients (with fewer
    // clients than a batch, one call carries several packets' fan-outs).
    std::vector<sockaddr_in> addr(o.clients);
    for (unsigned i = 0; i < o.clients; ++i) {
        addr[i].sin_family = AF_INET;
        addr[i].sin_port = htons(static_cast<uint16_t>(o.port));
        addr[i].sin_addr.s_addr = htonl(o.base + i);
    }
    iovec iov{pkt.data(), pkt.size()};
    std::vector<mmsghdr> msgs(o.clients + o.batch);
    for (size_t i = 0; i < msgs.size(); ++i) {
        std::memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_name = &addr[i % o.clients];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    using clk = std::chrono::steady_clock;
    const auto t0 = clk::now();
    const auto end = t0 + std::chrono::duration<double>(o.seconds);
    uint64_t sent = 0, errors = 0;
    int last_errno = 0;
    unsigned pos = 0;
    auto now = t0;
    while (now < end) {
        for (int k = 0; k < 16; ++k) {
            const int r = ::sendmmsg(fd, &msgs[pos], o.batch, 0);
            if (r < 0) {
                ++errors;
                last_errno = errno;
                pos = (pos + 1) % o.clients;   // past the message the kernel refused
                continue;
            }
            sent += static_cast<unsigned>(r);
            pos = static_cast<unsigned>((pos + static_cast<unsigned>(r)) % o.clients);
        }
        now = clk::now();
    }
    const double el = std::chrono::duration<double>(now - t0).count();
    ::close(fd);
    std::printf("kernel_sendmmsg clients=%u messages=%llu seconds=%.3f msgs_per_s=%.0f errors=%llu\n", o.clients,
                static_cast<unsigned long long>(sent), el, static_cast<double>(sent) / el,
                static_cast<unsigned long long>(errors));
    if (errors > 0) std::fprintf(stderr, "kernel_fanout: last error: %s\n", std::strerror(last_errno));
    return sent > 0 ? 0 : 1;
}
