// IPv6 through real EAL (issue 15): a malformed-IPv6 corpus, every row one
// hostile or broken frame with the one drop counter it must move (no egress,
// nothing else moves, mempools back where they started), then neighbour
// discovery and ICMPv6 echo: NS answered in place and rate limited, NAs
// learnt only when they answer our own solicitation, a MAC change held until
// a fresh solicitation confirms it, echo answered within the ICMP bounds.
// The port speaks both families; the positive control is an IPv4 speaker
// packet reaching its listener before and after every test.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "frames.h"
#include "frames6.h"
#include "harness.h"
#include "stentor/dp_counters.h"

namespace stentor::test {
namespace {

using namespace frames6;
using frames::our_mac;
using frames::peer_mac;
using frames::other_mac;
using control::relay;
using control::relay_options;

bool moves_per_frame(const std::string& name) {
    return name == "rx_packets" || name == "rx_bytes" || name == "busy_cycles" || name == "idle_cycles" ||
           name == "stalls" || name == "stall_cycles" || name == "idle_sleeps" || name == "idle_rx_wakeups" ||
           name == "loops" || name == "ingress_calls" || name == "ingress_cycles" ||
           name == "busy_polls" || name == "idle_polls" ||   // the loop's accounting (ops-metrics), as test_corpus.cc
           (name.rfind("port/", 0) == 0 && name.size() > 11 && name.compare(name.size() - 11, 11, "/rx_packets") == 0);
}

struct corpus_row {
    std::string what;
    bytes frame;
    std::string counter;
    uint64_t ol_flags = 0;   // what the NIC said of it (RTE_MBUF_F_RX_*)
};

control::ipv6_addr ctl(const addr6& a) {
    control::ipv6_addr c;
    std::memcpy(c.data(), a.data(), 16);
    return c;
}

bytes rtp6(uint16_t dport = 40000) {
    return frames::udp(5004, dport, frames::rtp());
}

// The IPv6 speaker the fixture registers beside the IPv4 one: session 1
// (port 40000), from [host6(0x20)]:5004, SSRC 5678.
const addr6 speaker6 = host6(0x20);
constexpr uint32_t speaker6_ssrc = 5678;

bytes speaker6_rtp(uint16_t seq = 1) {
    return frames::udp(5004, 40000, frames::rtp(0x80, 111, speaker6_ssrc, seq));
}

constexpr uint64_t nic_l4_good = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
constexpr uint64_t nic_l4_bad = RTE_MBUF_F_RX_L4_CKSUM_BAD;

// An extension header of (1 + len8) * 8 bytes whose next header is `next`.
bytes ext(uint8_t next = 17, uint8_t len8 = 0) {
    bytes e(8u * (1 + len8), 0);
    e[0] = next;
    e[1] = len8;
    return e;
}

std::vector<corpus_row> corpus6() {
    std::vector<corpus_row> rows;
    auto add = [&](std::string what, bytes f, std::string reason, uint64_t ol_flags = 0) {
        rows.push_back({std::move(what), std::move(f), "drop/ingress/" + std::move(reason), ol_flags});
    };
    const mac_t host = peer_mac;
    const addr6 speaker = host6(0x0a);
    // --- header and length
    {
        bytes b = ipv6({}, rtp6());
        b.resize(14 + 39);
        add("39 bytes of IPv6 header", b, "ipv6_runt");
    }
    add("IPv6 ethertype carrying version 4", ipv6({.version = 4}, rtp6()), "ipv6_version");
    add("jumbogram: payload length 0, hop-by-hop jumbo payload option",
        ipv6({.next = 0, .ext = {17, 0, 0xc2, 4, 0, 1, 0, 0}, .plen = 0}, rtp6()), "ipv6_jumbogram");
    add("payload length beyond the bytes received", ipv6({.plen = 1400}, rtp6()), "ipv6_payload_length");
    // --- extension headers, each counted on its own
    add("hop-by-hop router alert (an MLD report's)", ipv6({.next = 0, .ext = {17, 0, 5, 2, 0, 0, 1, 0}}, rtp6()),
        "ipv6_hop_by_hop");
    add("routing header type 0 (RFC 5095 deprecated it for amplification)", ipv6({.next = 43, .ext = ext(17, 2)}, rtp6()),
        "ipv6_routing");
    add("first fragment of a speaker packet", ipv6({.next = 44, .ext = {17, 0, 0, 1, 0, 0, 0, 7}}, rtp6()),
        "ipv6_fragment");
    add("atomic fragment (offset 0, no more fragments)", ipv6({.next = 44, .ext = {17, 0, 0, 0, 0, 0, 0, 7}}, rtp6()),
        "ipv6_fragment");
    add("destination options (PadN)", ipv6({.next = 60, .ext = {17, 0, 1, 4, 0, 0, 0, 0}}, rtp6()), "ipv6_dest_options");
    {
        bytes chain = ext(43, 0);
        frames6::append(chain, ext(44, 2));
        frames6::append(chain, bytes{17, 0, 0, 1, 0, 0, 0, 9});
        add("chain: destination options, routing, fragment", ipv6({.next = 60, .ext = chain}, rtp6()),
            "ipv6_dest_options");
    }
    add("AH", ipv6({.next = 51, .ext = ext(17, 2)}, rtp6()), "ipv6_ext_other");
    add("ESP", ipv6({.next = 50, .ext = ext(17, 2)}, rtp6()), "ipv6_ext_other");
    // --- sources and destinations
    add("spoofed: the relay's own address as source", ipv6({.src = relay6}, rtp6()), "ipv6_src");
    add("source ::1", ipv6({.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}, rtp6()), "ipv6_src");
    add("multicast source ff02::1", ipv6({.src = all_nodes}, rtp6()), "ipv6_src");
    add("multicast source ff0e::101 (global scope)",
        ipv6({.src = {0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01}}, rtp6()), "ipv6_src");
    add("IPv4-mapped source ::ffff:198.18.0.10 (the IPv4 speaker in disguise)",
        ipv6({.src = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 10}}, rtp6()), "ipv6_src");
    add("echo request from the IPv4-translated ::ffff:0:198.18.0.1 (RFC 2765; not answered)",
        ipv6({.src = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0xc6, 0x12, 0, 1}, .next = 58}, icmp6(128, 0, 56)),
        "ipv6_src");
    add("unspecified source on UDP", ipv6({.src = unspecified}, rtp6()), "ipv6_src");
    add("link-local source on UDP", ipv6({.src = router_ll}, rtp6()), "ipv6_src_link_local");
    add("destination another host", ipv6({.dst = host6(0x0b)}, rtp6()), "ipv6_dst");
    add("echo request to all-nodes (a reflector's trigger)",
        ipv6({.eth_dst = group_mac(all_nodes), .dst = all_nodes, .next = 58}, icmp6(128, 0, 60)), "ipv6_dst");
    add("our address at a group MAC", ipv6({.eth_dst = group_mac(relay6)}, rtp6()), "eth_dst");
    add("TCP SYN", ipv6({.next = 6}, bytes(20, 0)), "ipv6_next_header");
    // --- UDP
    add("UDP checksum 0 (allowed over IPv4 only)", ipv6({.checksum = false}, rtp6()), "ipv6_udp_zero_checksum");
    add("registered speaker, UDP checksum 0 that the NIC calls good", ipv6({.src = speaker6, .checksum = false},
        speaker6_rtp()), "ipv6_udp_zero_checksum", nic_l4_good);
    // The checksum of an RTP packet is looked at only once its flow is
    // known (ingress.cc rtp_input6): a flood of unknown flows costs no sum.
    {
        bytes b = ipv6({}, rtp6());
        b[100] ^= 0x40;   // an RTP payload byte, after the checksum was computed
        add("unregistered source, wrong UDP checksum, to a speaker port (no checksum computed)", b, "unknown_flow");
        add("unregistered source, UDP checksum the NIC calls bad", b, "unknown_flow", nic_l4_bad);
    }
    {
        bytes b = ipv6({.src = speaker6}, speaker6_rtp());
        b[100] ^= 0x40;
        add("registered speaker, payload corrupted in flight (UDP checksum wrong)", b, "udp_checksum");
    }
    add("registered speaker, UDP checksum right but the NIC calls it bad", ipv6({.src = speaker6}, speaker6_rtp()),
        "udp_checksum", nic_l4_bad);
    {
        // Sent from host6(0x21) with another SSRC; one bit of the source
        // flipped on the way makes it the registered speaker's key. IPv6 has
        // no header checksum: the UDP checksum refuses it, before the SSRC
        // would charge the speaker with it.
        bytes b = ipv6({.src = host6(0x21)}, frames::udp(5004, 40000, frames::rtp(0x80, 111, 999)));
        b[22 + 15] ^= 0x01;
        add("a source damaged into a registered speaker's key", b, "udp_checksum");
    }
    add("DNS query to port 53", ipv6({}, frames::udp(5004, 53, bytes(30, 0))), "udp_port");
    // IPv6 speakers are served (ipv6-fanout): an unregistered one is an unknown flow.
    add("well-formed RTP over IPv6 from no registered speaker", ipv6({}, rtp6()), "unknown_flow");
    // --- ICMPv6
    {
        bytes b = ipv6({.next = 58}, icmp6(128, 0, 56));
        b[57] ^= 1;
        add("echo request with a bad checksum", b, "icmp6_invalid");
    }
    add("echo reply nobody asked for", ipv6({.next = 58}, icmp6(129, 0, 56)), "icmp6_not_echo");
    add("MLDv2 report without its hop-by-hop header", ipv6({.next = 58, .hop_limit = 1}, icmp6(143, 0, 24)),
        "icmp6_not_echo");
    // --- neighbour discovery abuse
    add("router advertisement to all-nodes",
        ipv6({.eth_dst = group_mac(all_nodes), .src = router_ll, .dst = all_nodes, .next = 58, .hop_limit = 255},
             icmp6(134, 0, 12)),
        "nd_router_advert");
    add("redirect to an attacker's first hop", ipv6({.src = router_ll, .next = 58, .hop_limit = 255}, icmp6(137, 0, 36)),
        "nd_redirect");
    add("NS with hop limit 64 (sent from off-link)",
        ipv6({.eth_dst = group_mac(solicited(relay6)), .src = speaker, .dst = solicited(relay6), .next = 58},
             ns(relay6, &host)),
        "nd_hop_limit");
    add("NS from :: (duplicate address detection of our address)",
        ipv6({.eth_dst = group_mac(solicited(relay6)), .src = unspecified, .dst = solicited(relay6), .next = 58,
              .hop_limit = 255},
             ns(relay6, nullptr)),
        "nd_dad");
    add("NS whose link-layer address is not the frame's source (poisoning)",
        ipv6({.eth_dst = group_mac(solicited(relay6)), .src = speaker, .dst = solicited(relay6), .next = 58,
              .hop_limit = 255},
             ns(relay6, &other_mac)),
        "nd_invalid");
    add("NS for our address to all-nodes (RFC 4861 4.3: solicited-node group or unicast only; not answered)",
        ipv6({.eth_dst = group_mac(all_nodes), .src = speaker, .dst = all_nodes, .next = 58, .hop_limit = 255},
             ns(relay6, &host)),
        "ipv6_dst");
    add("NS for another host's address", ipv6({.src = speaker, .next = 58, .hop_limit = 255}, ns(host6(0x0b), &host)),
        "nd_not_for_us");
    add("solicited NA about no next hop of ours", na_to_relay(host6(0x55), host, 0x40), "nd_unsolicited");
    add("unsolicited NA (no S flag) to us", na_to_relay(host6(0x55), host, 0x00), "nd_unsolicited");
    add("unsolicited NA with override to all-nodes",
        ipv6({.eth_dst = group_mac(all_nodes), .eth_src = other_mac, .src = host6(0x0a), .dst = all_nodes, .next = 58,
              .hop_limit = 255},
             na(0x20, host6(0x0a), &other_mac)),
        "nd_override");
    add("NA with override for an address we never asked about", na_to_relay(host6(0x56), other_mac, 0x40 | 0x20),
        "nd_override");
    return rows;
}

// ---------------------------------------------------------------- fixture

class ipv6_test : public ::testing::Test {
protected:
    void start(uint32_t reachable_ms = 0) {
        prof = base_profile(port.name);
        prof.ports[0].ipv6 = ctl(relay6);
        prof.ports[0].prefix6_len = 64;
        control::session_config sc = speaker_session();
        sc.speakers.push_back({0, 5004, speaker6_ssrc, ctl(speaker6)});
        sc.listeners.push_back({listener_ip, listener_port, 0});
        prof.sessions.push_back(sc);
        r = std::make_unique<relay>(prof, relay_options{.launch = false, .arp_reachable_ms = reachable_ms});
        // With re-probes every few hundred ms, an ARP request for the IPv4
        // listener may go unanswered while a test sleeps through a window:
        // the IPv4 control at the end is for the tests at the default timing.
        ipv4_control_at_end = reachable_ms == 0;
        r->state().load_static(prof);
        EXPECT_TRUE(resolve(*r, port, {listener_ip}).empty()) << "non-ARP egress while resolving";
        pool_in_use0 = rte_mempool_in_use_count(r->pool());
        test_in_use0 = rte_mempool_in_use_count(test_pool());
        expect_forwarded();
    }

    void TearDown() override {
        if (!r) return;
        for (uint32_t idx : held) r->state().next_hop6_unref(idx);
        r->state().publish();
        settle(*r);
        answer(drain(port));
        if (ipv4_control_at_end) expect_forwarded();
        r->flush();
        EXPECT_EQ(pool_in_use0, rte_mempool_in_use_count(r->pool())) << "relay mbufs leaked";
        EXPECT_EQ(test_in_use0, rte_mempool_in_use_count(test_pool())) << "received mbufs leaked";
        r.reset();
    }

    void expect_forwarded() {
        const auto before = all_counters(*r);
        inject(port, frames::speaker_frame(next_seq++));
        settle(*r);
        const auto out = answer(drain(port));
        ASSERT_EQ(1u, out.size()) << "positive control not forwarded";
        EXPECT_EQ(listener_ip, be32(out[0].data() + 30));
        EXPECT_EQ(before.at("rtp_in") + 1, all_counters(*r).at("rtp_in"));
    }

    // Answers the relay's ARP requests for the IPv4 listener (its re-probes
    // go on through these tests); returns everything else.
    std::vector<bytes> answer(const std::vector<bytes>& out) {
        return answer_arp(port, out, {{gateway_ip, host_mac(gateway_ip)}, {listener_ip, host_mac(listener_ip)}});
    }

    void expect_dropped(const corpus_row& row, unsigned n) {
        SCOPED_TRACE(row.what + " x" + std::to_string(n));
        const auto before = all_counters(*r);
        ASSERT_TRUE(before.count(row.counter)) << "no counter named " << row.counter;
        for (unsigned i = 0; i < n; ++i) inject(port, row.frame, row.ol_flags);
        settle(*r);
        const auto out = drain(port);
        EXPECT_TRUE(out.empty()) << out.size() << " frames sent";
        const auto after = all_counters(*r);
        EXPECT_EQ(before.at(row.counter) + n, after.at(row.counter));
        EXPECT_EQ(before.at("rx_packets") + n, after.at("rx_packets"));
        for (const auto& [name, v] : after) {
            if (name == row.counter || moves_per_frame(name)) continue;
            EXPECT_EQ(before.at(name), v) << name << " moved";
        }
    }

    // Polls until the relay solicits `target` (answering ARP meanwhile);
    // false after ~3 s.
    bool wait_for_ns(const addr6& target, bytes* frame = nullptr) {
        for (int i = 0; i < 600; ++i) {
            r->poll();
            r->flush();
            for (const auto& f : answer(drain(port))) {
                addr6 t{};
                if (is_ns_from_relay(f, &t) && t == target) {
                    if (frame != nullptr) *frame = f;
                    return true;
                }
            }
            usleep(5000);
        }
        return false;
    }

    // Polls through the end of the current reply window (500 ms).
    void let_window_close() {
        usleep(550 * 1000);
        for (int i = 0; i < 3; ++i) {
            r->poll();
            r->flush();
            usleep(12 * 1000);
        }
    }

    void reply(const bytes& f) {
        inject(port, f);
        settle(*r);
    }

    ring_port port = fresh_ring_port("v6");
    control::profile prof;
    std::unique_ptr<relay> r;
    std::vector<uint32_t> held;
    bool ipv4_control_at_end = true;
    unsigned pool_in_use0 = 0;
    unsigned test_in_use0 = 0;
    uint16_t next_seq = 1;
};

TEST_F(ipv6_test, malformed_corpus_each_kind_counted_once_under_its_reason) {
    start();
    const auto rows = corpus6();
    EXPECT_GE(rows.size(), 25u);
    std::set<std::string> kinds, reasons;
    for (const auto& row : rows) {
        EXPECT_TRUE(kinds.insert(row.what).second) << "duplicate row " << row.what;
        expect_dropped(row, 1);
        reasons.insert(row.counter);
    }
    std::printf("[ corpus6  ] %zu kinds, %zu drop reasons\n", rows.size(), reasons.size());
}

TEST_F(ipv6_test, malformed_corpus_each_kind_streamed_91_times) {
    start();
    for (const auto& row : corpus6()) expect_dropped(row, 91);
}

// A registered IPv6 speaker's UDP checksum is the NIC's verdict when it
// gives one, else summed in software, as over IPv4 (ingress.cc
// udp_checksum_ok): a packet the NIC calls good is taken on its word, one
// it calls bad is refused, one it did not check (no flag, or L4 NONE) is
// summed. Forwarded packets reach the IPv4 listener.
TEST_F(ipv6_test, registered_ipv6_speaker_checksum_is_the_nics_verdict_else_summed) {
    start();
    struct verdict_row {
        const char* what;
        bool corrupt;          // a payload byte flipped after the checksum was computed
        uint64_t ol_flags;
        const char* counter;   // nullptr: forwarded
    } const rows[] = {
        {"good, no verdict: summed, forwarded", false, 0, nullptr},
        {"corrupted, no verdict: summed, refused", true, 0, "drop/ingress/udp_checksum"},
        {"good, the NIC calls it bad: refused", false, nic_l4_bad, "drop/ingress/udp_checksum"},
        {"corrupted, the NIC calls it good: its word is taken, forwarded", true, nic_l4_good, nullptr},
        {"corrupted, the NIC did not check (L4 NONE): summed, refused", true, RTE_MBUF_F_RX_L4_CKSUM_NONE,
         "drop/ingress/udp_checksum"},
        {"good, the NIC did not check (L4 NONE): summed, forwarded", false, RTE_MBUF_F_RX_L4_CKSUM_NONE, nullptr},
    };
    uint16_t seq = 1;
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        bytes f = ipv6({.src = speaker6}, speaker6_rtp(seq++));
        if (row.corrupt) f[100] ^= 0x40;
        const auto before = all_counters(*r);
        inject(port, f, row.ol_flags);
        settle(*r);
        const auto out = answer(drain(port));
        const auto after = all_counters(*r);
        if (row.counter == nullptr) {
            ASSERT_EQ(1u, out.size());
            EXPECT_EQ(0x0800, be16(out[0].data() + 12));
            EXPECT_EQ(listener_ip, be32(out[0].data() + 30));
            EXPECT_EQ(before.at("rtp_in") + 1, after.at("rtp_in"));
            EXPECT_EQ(before.at("drop/ingress/udp_checksum"), after.at("drop/ingress/udp_checksum"));
        } else {
            EXPECT_TRUE(out.empty()) << out.size() << " frames sent";
            EXPECT_EQ(before.at(row.counter) + 1, after.at(row.counter));
            EXPECT_EQ(before.at("rtp_in"), after.at("rtp_in"));
        }
    }
}

// An NS for our address becomes the NA in its own mbuf: unicast to the
// asker, solicited and override set, our MAC in the option, never longer.
TEST_F(ipv6_test, ns_for_our_address_is_answered_in_place) {
    start();
    struct ns_row {
        const char* what;
        bytes request;
        size_t icmp_len;   // of the answer
    } const rows[] = {
        {"multicast NS with the asker's link-layer address", ns_for_relay(host6(0x0a), peer_mac), 32},
        {"unicast NS without a link-layer option (reachability probe)",
         ipv6({.src = host6(0x0a), .next = 58, .hop_limit = 255}, ns(relay6, nullptr)), 24},
        {"NS from a router's link-local address", ns_for_relay(router_ll, other_mac), 32},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const auto before = all_counters(*r);
        reply(row.request);
        const auto out = drain(port);
        ASSERT_EQ(1u, out.size());
        const bytes& f = out[0];
        EXPECT_LE(f.size(), row.request.size()) << "answer longer than the question";
        ASSERT_EQ(14u + 40 + row.icmp_len, f.size());
        EXPECT_EQ(0, std::memcmp(f.data(), row.request.data() + 6, 6)) << "to the asker's MAC";
        EXPECT_EQ(0, std::memcmp(f.data() + 6, our_mac.data(), 6));
        EXPECT_EQ(0x86dd, be16(f.data() + 12));
        EXPECT_EQ(row.icmp_len, be16(f.data() + 18));
        EXPECT_EQ(58, f[20]);
        EXPECT_EQ(255, f[21]) << "hop limit";
        EXPECT_EQ(0, std::memcmp(f.data() + 22, relay6.data(), 16));
        EXPECT_EQ(0, std::memcmp(f.data() + 38, row.request.data() + 22, 16)) << "to the asker's address";
        EXPECT_EQ(136, f[54]);
        EXPECT_EQ(0x60, f[58]) << "solicited and override";
        EXPECT_EQ(0, std::memcmp(f.data() + 62, relay6.data(), 16)) << "target";
        if (row.icmp_len == 32) {
            EXPECT_EQ(2, f[78]);
            EXPECT_EQ(1, f[79]);
            EXPECT_EQ(0, std::memcmp(f.data() + 80, our_mac.data(), 6));
        }
        addr6 src, dst;
        std::memcpy(src.data(), f.data() + 22, 16);
        std::memcpy(dst.data(), f.data() + 38, 16);
        EXPECT_EQ(0, l4_checksum6(src, dst, 58, bytes(f.begin() + 54, f.end()))) << "ICMPv6 checksum";
        const auto after = all_counters(*r);
        EXPECT_EQ(before.at("nd_replies") + 1, after.at("nd_replies"));
        EXPECT_EQ(before.at("nd_requests_in") + 1, after.at("nd_requests_in"));
    }
}

// An NS storm from as many addresses: at most the reply budget (burst 100,
// 1000/s per lcore) is answered, each answer to its asker and no longer
// than its question; the rest is counted.
TEST_F(ipv6_test, ns_storm_is_not_answered_beyond_the_rate_limit) {
    start();
    constexpr unsigned storm = 301;
    const auto before = all_counters(*r);
    std::map<uint16_t, size_t> asked;
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < storm; ++i) {
        const addr6 from = host6(static_cast<uint8_t>(i), static_cast<uint8_t>(1 + i / 256));
        const mac_t mac{0x02, 0x66, 0, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        const bytes q = ns_for_relay(from, mac);
        asked[static_cast<uint16_t>(from[14] << 8 | from[15])] = q.size();
        inject(port, q);
    }
    settle(*r);
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto out = drain(port);
    const auto after = all_counters(*r);
    const uint64_t replies = after.at("nd_replies") - before.at("nd_replies");
    const uint64_t limited = after.at("drop/ingress/nd_rate") - before.at("drop/ingress/nd_rate");
    EXPECT_EQ(storm, replies + limited);
    EXPECT_EQ(storm, after.at("nd_requests_in") - before.at("nd_requests_in"));
    EXPECT_EQ(out.size(), replies);
    EXPECT_GE(replies, 100u);
    EXPECT_LE(replies, 100u + static_cast<uint64_t>(elapsed_s * 1000.0) + 1) << "elapsed " << elapsed_s << " s";
    EXPECT_GT(limited, 0u);
    for (const auto& f : out) {
        ASSERT_GE(f.size(), 78u);
        EXPECT_EQ(136, f[54]);
        const uint16_t to = static_cast<uint16_t>(f[52] << 8 | f[53]);
        ASSERT_TRUE(asked.count(to)) << "answer to an address that did not ask";
        EXPECT_LE(f.size(), asked[to]);
    }
}

// ICMPv6 echo: answered in place, same bounds as ICMP echo.
TEST_F(ipv6_test, echo_is_answered_within_the_icmp_bounds) {
    start();
    const addr6 from{0x2a, 0x00, 0x14, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05};   // off-link
    {
        const bytes q = ipv6({.src = from, .next = 58}, icmp6(128, 0, 60));
        const auto before = all_counters(*r);
        reply(q);
        const auto out = drain(port);
        ASSERT_EQ(1u, out.size());
        const bytes& f = out[0];
        EXPECT_EQ(q.size(), f.size());
        EXPECT_EQ(0, std::memcmp(f.data(), peer_mac.data(), 6));
        EXPECT_EQ(0, std::memcmp(f.data() + 22, relay6.data(), 16));
        EXPECT_EQ(0, std::memcmp(f.data() + 38, from.data(), 16));
        EXPECT_EQ(129, f[54]) << "echo reply";
        EXPECT_EQ(0, std::memcmp(f.data() + 58, q.data() + 58, q.size() - 58)) << "identifier, sequence, data";
        EXPECT_EQ(0, l4_checksum6(relay6, from, 58, bytes(f.begin() + 54, f.end())));
        EXPECT_EQ(before.at("icmp6_replies") + 1, all_counters(*r).at("icmp6_replies"));
        EXPECT_EQ(before.at("icmp6_requests_in") + 1, all_counters(*r).at("icmp6_requests_in"));
    }
    {
        // With Ethernet padding after the datagram: the answer stops at it.
        bytes q = ipv6({.src = from, .next = 58}, icmp6(128, 0, 4));
        const size_t datagram = q.size();
        q.resize(datagram + 8, 0);
        reply(q);
        const auto out = drain(port);
        ASSERT_EQ(1u, out.size());
        EXPECT_EQ(datagram, out[0].size());
    }
    constexpr unsigned flood = 301;
    const auto before = all_counters(*r);
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < flood; ++i) inject(port, ipv6({.src = from, .next = 58}, icmp6(128, 0, 56 + i % 3)));
    settle(*r);
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto out = drain(port);
    const auto after = all_counters(*r);
    const uint64_t replies = after.at("icmp6_replies") - before.at("icmp6_replies");
    const uint64_t limited = after.at("drop/ingress/icmp6_rate") - before.at("drop/ingress/icmp6_rate");
    EXPECT_EQ(flood, replies + limited);
    EXPECT_EQ(flood, after.at("icmp6_requests_in") - before.at("icmp6_requests_in")) << "every request counted";
    EXPECT_EQ(before.at("icmp_requests_in"), after.at("icmp_requests_in")) << "IPv4's own counter";
    EXPECT_EQ(out.size(), replies);
    EXPECT_LE(replies, 100u + static_cast<uint64_t>(elapsed_s * 1000.0) + 1);
    EXPECT_GT(limited, 0u);
    EXPECT_EQ(before.at("icmp_replies"), after.at("icmp_replies")) << "the IPv4 echo budget is its own";
    for (const auto& f : out) EXPECT_LE(f.size(), 14u + 40 + 4 + 4 + 58);
}

// A next hop is resolved by our solicitation and by nothing else: an NA
// before we asked, one without the solicited flag, one with override, one
// after the window are all refused and counted.
TEST_F(ipv6_test, na_is_learnt_only_when_it_answers_our_solicitation) {
    start();
    const addr6 next_hop = host6(0x64);
    const mac_t real{0x02, 0x00, 0, 0, 0, 0x64};
    const mac_t attacker{0x02, 0xba, 0xd0, 0, 0, 0x01};
    const auto h = r->state().next_hop6_ref(ctl(next_hop));
    held.push_back(h.neigh_idx);
    r->state().publish();
    // Before the relay asks: nothing it can believe.
    auto before = all_counters(*r);
    inject(port, na_to_relay(next_hop, attacker));
    settle(*r);
    // The first poll may already have sent the solicitation after the NA
    // was judged; keep it for the answer below.
    bytes ns_frame;
    bool asked = false;
    for (const auto& f : answer(drain(port))) {
        addr6 t{};
        if (is_ns_from_relay(f, &t) && t == next_hop) {
            asked = true;
            ns_frame = f;
        }
    }
    auto after = all_counters(*r);
    EXPECT_EQ(before.at("drop/ingress/nd_unsolicited") + 1, after.at("drop/ingress/nd_unsolicited"));
    EXPECT_FALSE(r->state().next_hop_resolved(h.neigh_idx));

    if (!asked) {
        ASSERT_TRUE(wait_for_ns(next_hop, &ns_frame)) << "a new next hop is solicited within a few ticks";
    }
    // The solicitation: to the target's solicited-node group, hop limit
    // 255, our link-layer address, a valid checksum.
    ASSERT_EQ(86u, ns_frame.size());
    EXPECT_EQ(0, std::memcmp(ns_frame.data(), group_mac(solicited(next_hop)).data(), 6));
    EXPECT_EQ(0, std::memcmp(ns_frame.data() + 38, solicited(next_hop).data(), 16));
    EXPECT_EQ(0, std::memcmp(ns_frame.data() + 22, relay6.data(), 16));
    EXPECT_EQ(255, ns_frame[21]);
    EXPECT_EQ(1, ns_frame[78]);
    EXPECT_EQ(0, std::memcmp(ns_frame.data() + 80, our_mac.data(), 6));
    EXPECT_EQ(0, l4_checksum6(relay6, solicited(next_hop), 58, bytes(ns_frame.begin() + 54, ns_frame.end())));

    // Inside the window: a NA without the solicited flag, then one with
    // only override, are still refused; the real answer resolves.
    before = all_counters(*r);
    reply(na_to_relay(next_hop, attacker, 0x00));
    reply(na_to_relay(next_hop, attacker, 0x20));
    after = all_counters(*r);
    EXPECT_EQ(before.at("drop/ingress/nd_unsolicited") + 1, after.at("drop/ingress/nd_unsolicited"));
    EXPECT_EQ(before.at("drop/ingress/nd_override") + 1, after.at("drop/ingress/nd_override"));
    EXPECT_FALSE(r->state().next_hop_resolved(h.neigh_idx));
    reply(na_to_relay(next_hop, real));
    EXPECT_EQ(std::optional<mac_t>(real), r->state().next_hop_mac(h.neigh_idx));

    // After the window: not believed, whatever it says.
    let_window_close();
    answer(drain(port));
    before = all_counters(*r);
    reply(na_to_relay(next_hop, attacker, 0x60));
    after = all_counters(*r);
    EXPECT_EQ(before.at("drop/ingress/nd_late") + 1, after.at("drop/ingress/nd_late"));
    EXPECT_EQ(std::optional<mac_t>(real), r->state().next_hop_mac(h.neigh_idx));
    answer(drain(port));
}

// A known neighbour offering another MAC (a re-probe's answer) is held as a
// candidate; it is used only after a fresh solicitation brings that MAC and
// no other. When the old MAC answers the confirming solicitation too, the
// change is refused.
TEST_F(ipv6_test, mac_change_is_confirmed_before_use) {
    start(300);   // confirmed MACs are re-probed after 300 ms
    struct change_row {
        const char* what;
        bool old_answers_confirmation;
        const char* counter;
        bool switched;
    } const rows[] = {
        {"the host's NIC was replaced: only the new MAC answers", false, "neigh_mac_confirmed", true},
        {"a spoofer races the host: both answer the confirming NS", true, "neigh_mac_kept", false},
    };
    uint8_t last = 0x70;
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const addr6 next_hop = host6(++last);
        const mac_t old_mac{0x02, 0x00, 0, 0, 0, last};
        const mac_t new_mac{0x02, 0x0e, 0x0e, 0, 0, last};
        const auto h = r->state().next_hop6_ref(ctl(next_hop));
        held.push_back(h.neigh_idx);
        r->state().publish();
        ASSERT_TRUE(wait_for_ns(next_hop));
        reply(na_to_relay(next_hop, old_mac));
        ASSERT_EQ(std::optional<mac_t>(old_mac), r->state().next_hop_mac(h.neigh_idx));

        // The re-probe (reachable time passed): answered by the new MAC only.
        ASSERT_TRUE(wait_for_ns(next_hop)) << "re-probe";
        auto before = all_counters(*r);
        reply(na_to_relay(next_hop, new_mac));
        EXPECT_EQ(before.at("neigh_mac_changed") + 1, all_counters(*r).at("neigh_mac_changed"));
        EXPECT_EQ(std::optional<mac_t>(old_mac), r->state().next_hop_mac(h.neigh_idx)) << "held, not used";

        // The confirming solicitation, once the re-probe's window closed.
        ASSERT_TRUE(wait_for_ns(next_hop)) << "confirming solicitation";
        before = all_counters(*r);
        reply(na_to_relay(next_hop, new_mac));
        if (row.old_answers_confirmation) reply(na_to_relay(next_hop, old_mac));
        EXPECT_EQ(std::optional<mac_t>(old_mac), r->state().next_hop_mac(h.neigh_idx)) << "not before the window ends";
        let_window_close();
        answer(drain(port));
        EXPECT_EQ(before.at(row.counter) + 1, all_counters(*r).at(row.counter));
        EXPECT_EQ(std::optional<mac_t>(row.switched ? new_mac : old_mac), r->state().next_hop_mac(h.neigh_idx));
    }
}

}  // namespace
}  // namespace stentor::test
