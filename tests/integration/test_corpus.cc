// Malformed-packet corpus: every row is one hostile or broken frame,
// described in words, with the one drop counter it must move. Sent through
// real EAL on a ring-backed port into the relay's own workers (polled on the
// test thread). For every row: no egress at all, exactly +1 on the named
// counter, no other drop counter moves, and nothing is forwarded. Then the
// same corpus streamed 91 times per kind (odd, so burst tails run), and the
// reply paths that may answer strangers (ARP, ICMP echo) flooded to show
// that replies are rate limited and never larger than the requests.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "frames.h"
#include "harness.h"
#include "stentor/dp_counters.h"

namespace stentor::test {
namespace {

using namespace frames;
using control::relay;
using control::relay_options;

constexpr uint32_t stranger_ip = 0xc6120005;   // 198.18.0.5: on-link, never registered

// Counters whose movement is the point of a row or that move for every
// received frame, and the lcore's time accounting (how the scheduler treated
// it: stalls on a loaded machine, sleeps in adaptive idle); everything else
// must stay exactly where it was.
bool moves_per_frame(const std::string& name) {
    return name == "rx_packets" || name == "rx_bytes" || name == "busy_cycles" || name == "idle_cycles" ||
           name == "stalls" || name == "stall_cycles" || name == "idle_sleeps" || name == "idle_rx_wakeups" ||
           name == "loops" || name == "ingress_calls" || name == "ingress_cycles" ||   // show runtime: the loop and its ingress stage ran
           name == "busy_polls" || name == "idle_polls" ||
           (name.rfind("port/", 0) == 0 && name.size() > 11 && name.compare(name.size() - 11, 11, "/rx_packets") == 0);
}

struct corpus_row {
    std::string what;
    bytes frame;
    std::string counter;   // "drop/ingress/<reason>"
};

// ---------------------------------------------------------------- the corpus

std::vector<corpus_row> corpus() {
    std::vector<corpus_row> rows;
    auto add = [&](std::string what, bytes f, std::string reason) {
        // Reasons are ingress ones unless they name their stage ("join/off").
        const std::string stage = reason.find('/') == std::string::npos ? "drop/ingress/" : "drop/";
        rows.push_back({std::move(what), std::move(f), stage + std::move(reason)});
    };
    const bytes good = speaker_frame();
    constexpr size_t ip = 14, l4 = 34;   // header offsets in `good`
    // Mangle a copy of the good speaker frame; `fix` recomputes the IPv4
    // header checksum so only the mangled field is wrong.
    auto mangled = [&](auto&& f, bool fix = true) {
        bytes b = good;
        f(b);
        if (fix) fix_ipv4_checksum(b);
        return b;
    };
    auto with_rtp = [&](const bytes& rtp_bytes, uint16_t dport = 40000) {
        return eth(our_mac, peer_mac, 0x0800, ipv4({}, udp(5004, dport, rtp_bytes)));
    };
    auto with_ip = [&](const ipv4_opts& o, const bytes& payload) {
        return eth(our_mac, peer_mac, 0x0800, ipv4(o, payload));
    };

    // --- Ethernet
    add("1-byte frame", bytes(1, 0x02), "eth_runt");
    add("13-byte frame (one short of an Ethernet header)", bytes(good.begin(), good.begin() + 13), "eth_runt");
    add("frame one byte over MTU 1500 + 14", speaker_frame(1, 1515 - 54), "oversize");
    add("2000-byte jumbo frame", speaker_frame(1, 2000 - 54), "oversize");
    add("multicast source MAC", mangled([](bytes& b) { b[6] = 0x01; }), "eth_src");
    add("broadcast source MAC", mangled([](bytes& b) { std::memset(b.data() + 6, 0xff, 6); }), "eth_src");
    add("IPv4 to another host's MAC", mangled([](bytes& b) { b[5] = 0x77; }), "eth_dst");
    add("IPv4 to the broadcast MAC", mangled([](bytes& b) { std::memset(b.data(), 0xff, 6); }), "eth_dst");
    add("IPv4 to an IPv4 multicast MAC", mangled([](bytes& b) {
            const uint8_t m[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
            std::memcpy(b.data(), m, 6);
        }), "eth_dst");
    {
        bytes v = eth(our_mac, peer_mac, 0x8100, {0x00, 0x05, 0x08, 0x00});
        v = cat(v, bytes(good.begin() + 14, good.end()));
        add("802.1Q VLAN 5 tagged speaker packet", v, "eth_vlan");
        bytes q = eth(our_mac, peer_mac, 0x88a8, {0x00, 0x64, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00});
        q = cat(q, bytes(good.begin() + 14, good.end()));
        add("802.1ad QinQ (S-tag 100, C-tag 5)", q, "eth_vlan");
        bytes q2 = eth(our_mac, peer_mac, 0x9100, {0x00, 0x64, 0x08, 0x00});
        q2 = cat(q2, bytes(good.begin() + 14, good.end()));
        add("pre-standard QinQ 0x9100", q2, "eth_vlan");
    }
    {
        bytes v6(40, 0);
        v6[0] = 0x60;
        v6[5] = 8 + 92;
        v6[6] = 17;
        v6[7] = 64;
        v6 = cat(v6, udp(5004, 40000, rtp()));
        // This port has no ipv6 address (test_corpus6.cc has one).
        add("IPv6/UDP speaker packet to a port without IPv6", eth(our_mac, peer_mac, 0x86dd, v6), "ipv6_off");
    }
    add("LLDP", eth(our_mac, peer_mac, 0x88cc, bytes(46, 0)), "eth_type");
    add("802.3 length field instead of an ethertype", eth(our_mac, peer_mac, 0x002e, bytes(46, 0xaa)), "eth_type");

    // --- IPv4
    add("Ethernet header only, nothing after", bytes(good.begin(), good.begin() + 14), "ipv4_runt");
    add("19 bytes of IPv4 header", bytes(good.begin(), good.begin() + 33), "ipv4_runt");
    add("IPv4 ethertype carrying version 6", mangled([](bytes& b) { b[ip] = 0x65; }), "ipv4_version");
    add("IP version 0", mangled([](bytes& b) { b[ip] = 0x05; }, false), "ipv4_version");
    add("IHL 4 (header shorter than 20)", mangled([](bytes& b) { b[ip] = 0x44; }), "ipv4_ihl");
    add("IHL 6: one word of IP options", with_ip({.ihl_words = 6}, udp(5004, 40000, rtp())), "ipv4_options");
    add("IHL 15: router alert and 36 bytes of options",
        with_ip({.ihl_words = 15}, udp(5004, 40000, rtp())), "ipv4_options");
    {
        bytes b = good;
        b[ip] = 0x4f;
        b.resize(40);
        add("IHL 15 with only 26 bytes of IPv4 received", b, "ipv4_total_length");
    }
    add("total length beyond the bytes received", mangled([](bytes& b) { put16(b, ip + 2, 1400); }),
        "ipv4_total_length");
    add("total length 19", mangled([](bytes& b) { put16(b, ip + 2, 19); }), "ipv4_total_length");
    add("frame cut 10 bytes inside the RTP payload", bytes(good.begin(), good.end() - 10), "ipv4_total_length");
    add("bad IPv4 header checksum", mangled([](bytes& b) { b[ip + 10] ^= 0x5a; }, false), "ipv4_checksum");
    add("header checksum zero", mangled([](bytes& b) { put16(b, ip + 10, 0); }, false), "ipv4_checksum");
    add("first fragment (MF)", mangled([](bytes& b) { put16(b, ip + 6, 0x2000); }), "ipv4_fragment");
    add("middle fragment (MF, offset 185)", mangled([](bytes& b) { put16(b, ip + 6, 0x2000 | 185); }),
        "ipv4_fragment");
    add("last fragment (offset 185, no MF)", mangled([](bytes& b) { put16(b, ip + 6, 185); }), "ipv4_fragment");
    add("source 0.0.0.0", with_ip({.src = 0}, udp(5004, 40000, rtp())), "ipv4_src");
    add("source 127.0.0.1", with_ip({.src = 0x7f000001}, udp(5004, 40000, rtp())), "ipv4_src");
    add("source multicast 224.0.0.1", with_ip({.src = 0xe0000001}, udp(5004, 40000, rtp())), "ipv4_src");
    add("source 255.255.255.255", with_ip({.src = 0xffffffff}, udp(5004, 40000, rtp())), "ipv4_src");
    add("spoofed speaker: the relay's own address as source, speaker port",
        with_ip({.src = relay_ip}, udp(5004, 40000, rtp())), "ipv4_src");
    add("destination another host", with_ip({.dst = 0xc6120002}, udp(5004, 40000, rtp())), "ipv4_dst");
    add("destination limited broadcast", with_ip({.dst = 0xffffffff}, udp(5004, 40000, rtp())), "ipv4_dst");
    add("destination subnet broadcast", with_ip({.dst = 0xc61200ff}, udp(5004, 40000, rtp())), "ipv4_dst");
    add("TCP SYN to a speaker port", with_ip({.proto = 6}, bytes(20, 0)), "ipv4_proto");
    add("GRE", with_ip({.proto = 47}, bytes(24, 0)), "ipv4_proto");
    add("IGMP", with_ip({.proto = 2}, bytes(8, 0)), "ipv4_proto");

    // --- UDP
    add("7 bytes of UDP header", with_ip({}, bytes{0x13, 0x8c, 0x9c, 0x40, 0, 7, 0}), "udp_runt");
    add("UDP length beyond the IPv4 payload", mangled([](bytes& b) { put16(b, l4 + 4, 200); }), "udp_length");
    add("UDP length 7", mangled([](bytes& b) { put16(b, l4 + 4, 7); }), "udp_length");
    add("UDP length shorter than the IPv4 payload (smuggled tail)",
        mangled([](bytes& b) { put16(b, l4 + 4, 8 + 12 + 40); }), "udp_length");
    add("destination port below the speaker range", with_rtp(rtp(), 39999), "udp_port");
    add("destination port above the speaker range", with_rtp(rtp(), 41000), "udp_port");
    add("DNS query to port 53 (amplifier probe)", with_rtp(bytes(30, 0), 53), "udp_port");
    add("memcached probe to port 11211", with_rtp(bytes(15, 0), 11211), "udp_port");
    add("SSDP M-SEARCH to port 1900", with_rtp(bytes(90, 'A'), 1900), "udp_port");

    // --- RTP
    add("zero-length UDP payload", with_rtp({}), "rtp_runt");
    {
        const bytes full = rtp();
        add("11-byte RTP header", with_rtp(bytes(full.begin(), full.begin() + 11)), "rtp_runt");
    }
    // Version 0 with CC 0 would start 0x00: STUN (below); CC 4 keeps it RTP-shaped.
    add("RTP version 0", with_rtp(rtp(0x04)), "rtp_version");
    add("RTP version 1", with_rtp(rtp(0x40)), "rtp_version");
    add("RTP version 3", with_rtp(rtp(0xc0)), "rtp_version");
    {
        // RFC 5389 binding request: type 0x0001, length 0, magic cookie, txn id.
        bytes stun(20, 0);
        stun[1] = 0x01;
        put32(stun, 4, 0x2112a442);
        for (size_t i = 8; i < 20; ++i) stun[i] = static_cast<uint8_t>(i);
        // A listener's join request goes to the join stage (RFC 7983); this
        // profile has no [join] keys (tests/api/test_join.cc has the rows
        // for a relay that verifies them).
        add("STUN binding request on the session port", with_rtp(stun), "join/off");
        bytes dtls(60, 0);
        dtls[0] = 0x16;   // DTLS handshake record
        dtls[1] = 0xfe;
        dtls[2] = 0xfd;
        add("DTLS ClientHello on the session port", with_rtp(dtls), "rtp_version");
    }
    {
        bytes sr = rtp(0x80, 200, 1234, 1, 16);
        put16(sr, 2, 6);   // RTCP length in words - 1: 28 bytes, matches
        add("RTCP sender report on the media port", with_rtp(sr), "rtp_rtcp");
        bytes rr = rtp(0x81, 201, 1234, 1, 12);
        put16(rr, 2, 200);   // claims 804 bytes
        add("RTCP receiver report whose length runs past the end", with_rtp(rr), "rtp_rtcp");
        bytes bye = rtp(0x81, 203, 1234, 1, 0);
        put16(bye, 2, 0);   // length 0 words: shorter than its own SSRC
        add("RTCP BYE with a length shorter than its body", with_rtp(bye), "rtp_rtcp");
        bytes compound = cat(sr, bytes{0x81, 202, 0xff, 0xff, 0, 0, 0, 1});
        add("RTCP compound SR + SDES with length 65535", with_rtp(compound), "rtp_rtcp");
        bytes app = rtp(0x80, 204, 1234, 1, 20);
        add("RTCP APP on the media port", with_rtp(app), "rtp_rtcp");
    }
    add("CSRC count 15, 8 bytes of payload", with_rtp(rtp(0x8f, 111, 1234, 1, 8)), "rtp_csrc");
    add("CSRC count 1, 2 bytes after the fixed header", with_rtp(rtp(0x81, 111, 1234, 1, 2)), "rtp_csrc");
    add("extension bit, nothing after the fixed header", with_rtp(rtp(0x90, 111, 1234, 1, 0)), "rtp_extension");
    add("extension bit, 3 bytes after the fixed header", with_rtp(rtp(0x90, 111, 1234, 1, 3)), "rtp_extension");
    {
        bytes x = rtp(0x90, 111, 1234, 1, 40);
        put16(x, 12, 0xbede);
        put16(x, 14, 0xffff);   // 262 140 bytes of extension
        add("extension length 65535 words", with_rtp(x), "rtp_extension");
        bytes y = rtp(0x91, 111, 1234, 1, 40);
        put16(y, 16, 0xbede);
        put16(y, 18, 9);   // after one CSRC: 4 + 36 > 40 - 4
        add("CSRC then an extension running 4 bytes past the end", with_rtp(y), "rtp_extension");
    }
    {
        bytes p0 = rtp(0xa0, 111, 1234, 1, 40);
        p0.back() = 0;
        add("padding bit with padding count 0", with_rtp(p0), "rtp_padding");
        bytes p1 = rtp(0xa0, 111, 1234, 1, 40);
        p1.back() = 41;
        add("padding count past the payload", with_rtp(p1), "rtp_padding");
        bytes p2 = rtp(0xa0, 111, 1234, 1, 40);
        p2.back() = 255;
        add("padding count 255 in a 52-byte packet", with_rtp(p2), "rtp_padding");
        bytes p3 = rtp(0xa0, 111, 1234, 1, 40);
        p3.back() = 40;
        add("payload made only of padding", with_rtp(p3), "rtp_empty");
    }
    add("zero-length payload (12-byte RTP header only)", with_rtp(rtp(0x80, 111, 1234, 1, 0)), "rtp_empty");
    {
        bytes x = rtp(0x90, 111, 1234, 1, 8);
        put16(x, 12, 0xbede);
        put16(x, 14, 1);
        add("header extension exactly filling the packet", with_rtp(x), "rtp_empty");
    }

    // --- flow
    add("unknown source port from the speaker's address", with_ip({}, udp(5006, 40000, rtp())), "unknown_flow");
    add("spoofed speaker: registered source port from another address",
        with_ip({.src = 0xc6120063}, udp(5004, 40000, rtp())), "unknown_flow");
    add("spoofed speaker: registered address and port from off-link",
        with_ip({.src = 0xcb007107}, udp(5004, 40000, rtp())), "unknown_flow");
    add("registered speaker to a session port it is not registered on", with_rtp(rtp(), 40001), "unknown_flow");
    add("registered speaker, wrong SSRC", speaker_frame(1, 80, 99), "ssrc_mismatch");
    add("registered speaker, SSRC 0", speaker_frame(1, 80, 0), "ssrc_mismatch");

    // --- ICMP
    add("ICMP with 4 bytes", with_ip({.proto = 1}, bytes{8, 0, 0xf7, 0xff}), "icmp_invalid");
    {
        bytes e = icmp(8, 0, 56);
        e[3] ^= 0x01;
        add("echo request with a bad checksum", with_ip({.proto = 1}, e), "icmp_invalid");
    }
    add("ICMP destination unreachable", with_ip({.proto = 1}, icmp(3, 3, 28)), "icmp_not_echo");
    add("ICMP echo reply (unsolicited)", with_ip({.proto = 1}, icmp(0, 0, 56)), "icmp_not_echo");
    add("ICMP timestamp request", with_ip({.proto = 1}, icmp(13, 0, 12)), "icmp_not_echo");
    add("ICMP redirect", with_ip({.proto = 1}, icmp(5, 1, 28)), "icmp_not_echo");

    // --- ARP
    {
        const mac_t peer = host_mac(stranger_ip);
        const bytes req = arp(1, peer, stranger_ip, zero_mac, relay_ip, bcast_mac);
        add("ARP request cut to 20 bytes of body", bytes(req.begin(), req.begin() + 34), "arp_invalid");
        bytes h = req;
        h[15] = 6;   // IEEE 802 htype
        add("ARP hardware type 6", h, "arp_invalid");
        bytes o = req;
        put16(o, 20, 3);   // RARP request
        add("ARP opcode 3 (RARP)", o, "arp_invalid");
        add("ARP sender MAC differs from the frame source (poisoning)",
            eth(bcast_mac, other_mac, 0x0806, bytes(req.begin() + 14, req.end())), "arp_invalid");
        add("ARP claiming the relay's own address",
            arp(1, peer, relay_ip, zero_mac, relay_ip, bcast_mac), "arp_invalid");
        add("ARP probe (sender 0.0.0.0)", arp(1, peer, 0, zero_mac, relay_ip, bcast_mac), "arp_invalid");
        add("ARP request sent to another host's MAC",
            arp(1, peer, stranger_ip, zero_mac, relay_ip, other_mac), "eth_dst");
        add("ARP request for another address", arp(1, peer, stranger_ip, zero_mac, 0xc6120002, bcast_mac),
            "arp_not_for_us");
        add("gratuitous ARP from a neighbour", arp(1, peer, stranger_ip, zero_mac, stranger_ip, bcast_mac),
            "arp_not_for_us");
        add("ARP reply addressed to another host", arp(2, peer, stranger_ip, other_mac, 0xc6120002, bcast_mac),
            "arp_not_for_us");
        add("ARP reply to us that no request of ours asked for", arp(2, peer, stranger_ip, our_mac, relay_ip, our_mac),
            "arp_unsolicited");
    }
    return rows;
}

// ---------------------------------------------------------------- fixture

class corpus_test : public ::testing::Test {
protected:

    void SetUp() override {
        prof = base_profile(port.name);
        control::session_config sc = speaker_session();
        sc.listeners.push_back({listener_ip, listener_port, 0});
        prof.sessions.push_back(sc);
        control::session_config sc2;   // a second session without this speaker
        sc2.id = 2;
        sc2.udp_port = 40001;
        sc2.speakers.push_back({0xc612000b, 5004, 77});
        prof.sessions.push_back(sc2);
        r = std::make_unique<relay>(prof, relay_options{.launch = false});
        r->state().load_static(prof);
        EXPECT_TRUE(resolve(*r, port, {listener_ip}).empty()) << "non-ARP egress while resolving";
        pool_in_use0 = rte_mempool_in_use_count(r->pool());
        test_in_use0 = rte_mempool_in_use_count(test_pool());
        // Positive control: the good frame does reach the listener, so a row
        // with no egress is about its defect, not about a dead relay.
        expect_forwarded();
    }

    void TearDown() override {
        expect_forwarded();
        r->flush();
        EXPECT_EQ(pool_in_use0, rte_mempool_in_use_count(r->pool())) << "relay mbufs leaked";
        EXPECT_EQ(test_in_use0, rte_mempool_in_use_count(test_pool())) << "received mbufs leaked";
        r.reset();
    }

    // Good frames continue one RTP stream (sequence number and timestamp,
    // see rtp_track.h), as a real speaker's would.
    void expect_forwarded() {
        const auto before = all_counters(*r);
        inject(port, speaker_frame(next_seq++));
        settle(*r);
        const auto out = drain(port);
        ASSERT_EQ(1u, out.size()) << "positive control not forwarded";
        EXPECT_EQ(listener_ip, be32(out[0].data() + 30));
        EXPECT_EQ(listener_port, be16(out[0].data() + 36));
        EXPECT_EQ(before.at("rtp_in") + 1, all_counters(*r).at("rtp_in"));
    }

    // Sends `n` copies of a row's frame and checks that exactly the row's
    // counter moved, by n, and nothing left the relay.
    void expect_dropped(const corpus_row& row, unsigned n) {
        SCOPED_TRACE(row.what + " x" + std::to_string(n));
        const auto before = all_counters(*r);
        ASSERT_TRUE(before.count(row.counter)) << "no counter named " << row.counter;
        for (unsigned i = 0; i < n; ++i) inject(port, row.frame);
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

    ring_port port = fresh_ring_port("corpus");
    control::profile prof;
    std::unique_ptr<relay> r;
    unsigned pool_in_use0 = 0;
    unsigned test_in_use0 = 0;
    uint16_t next_seq = 1;
};

TEST_F(corpus_test, at_least_40_kinds_each_counted_once_under_its_reason) {
    const auto rows = corpus();
    EXPECT_GE(rows.size(), 40u);
    std::set<std::string> kinds;
    for (const auto& row : rows) EXPECT_TRUE(kinds.insert(row.what).second) << "duplicate row " << row.what;
    std::set<std::string> reasons;
    for (const auto& row : rows) {
        expect_dropped(row, 1);
        reasons.insert(row.counter);
    }
    // Every ingress validation reason that software can produce is exercised.
    for (size_t i = 0; i < dp::nb_drop_reasons; ++i) {
        const std::string n = "drop/" + std::string(dp::drop_reason_names[i]);
        const auto reason = static_cast<dp::drop_reason>(i);
        const bool not_from_bytes = reason == dp::drop_reason::udp_checksum ||   // NIC flag
                                    reason == dp::drop_reason::policed || reason == dp::drop_reason::icmp_rate ||
                                    reason == dp::drop_reason::arp_rate || n.rfind("drop/egress/", 0) == 0 ||
                                    // need a request of ours in flight or a second RX lcore: test_neigh.cc
                                    reason == dp::drop_reason::arp_late || reason == dp::drop_reason::arp_ring_full ||
                                    reason == dp::drop_reason::arp_conflict || reason == dp::drop_reason::arp_handoff_rate ||
                                    // the stream's state, not the bytes: tests/integration/test_speaker.cc
                                    reason == dp::drop_reason::rtp_seq_jump || reason == dp::drop_reason::rtp_ts_jump ||
                                    reason == dp::drop_reason::rtp_duplicate || reason == dp::drop_reason::rtp_ssrc_change ||
                                    // two origins' copies of a packet: tests/integration/test_trunk.cc
                                    reason == dp::drop_reason::trunk_duplicate ||
                                    // the mbuf, or an MTU above this profile's: tests/integration/test_jumbo.cc
                                    reason == dp::drop_reason::multi_segment || reason == dp::drop_reason::rtp_too_large ||
                                    // a relay with [join] keys: tests/api/test_join.cc
                                    (n.rfind("drop/join/", 0) == 0 && reason != dp::drop_reason::join_off) ||
                                    // a session that requires SRTP, keys: tests/integration/test_srtp.cc
                                    n.rfind("drop/ingress/srtp_", 0) == 0 ||
                                    // a port with an IPv6 address: tests/integration/test_corpus6.cc
                                    (reason > dp::drop_reason::ipv6_off && reason <= dp::drop_reason::nd_redirect);
        if (!not_from_bytes) {
            EXPECT_TRUE(reasons.count(n)) << "no corpus row for " << n;
        }
    }
    std::printf("[ corpus   ] %zu kinds, %zu drop reasons\n", rows.size(), reasons.size());
}

TEST_F(corpus_test, each_kind_streamed_91_times) {
    for (const auto& row : corpus()) expect_dropped(row, 91);
}

TEST_F(corpus_test, all_kinds_interleaved_with_good_packets) {
    // One burst mixing every bad kind with good speaker packets: the good
    // ones still arrive, in order, and only they.
    const auto rows = corpus();
    const auto before = all_counters(*r);
    std::map<std::string, uint64_t> want;
    std::vector<uint16_t> sent;
    for (size_t i = 0; i < rows.size(); ++i) {
        inject(port, rows[i].frame);
        ++want[rows[i].counter];
        if (i % 10 == 0) {
            inject(port, speaker_frame(next_seq));
            sent.push_back(next_seq++);
        }
    }
    settle(*r);
    const auto out = drain(port);
    ASSERT_EQ(sent.size(), out.size());
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(listener_ip, be32(out[i].data() + 30));
        EXPECT_EQ(sent[i], be16(out[i].data() + 44)) << "RTP sequence";
    }
    const auto after = all_counters(*r);
    for (const auto& [name, n] : want) EXPECT_EQ(before.at(name) + n, after.at(name)) << name;
    EXPECT_EQ(before.at("rtp_in") + sent.size(), after.at("rtp_in"));
}

// An ARP storm: requests for other addresses are never answered; requests
// for ours are answered at most at the reply rate (burst 100, 1000/s per
// lcore), each reply the same size as its request, to its sender only.
TEST_F(corpus_test, arp_storm_is_not_answered_beyond_the_rate_limit) {
    constexpr unsigned storm = 501;
    auto before = all_counters(*r);
    for (unsigned i = 0; i < storm; ++i) {
        const uint32_t sender = 0xc6120200 + i;   // 198.18.2.0+
        const uint32_t target = 0xc6120300 + i;
        inject(port, arp(1, host_mac(sender), sender, zero_mac, target, bcast_mac));
        if (i % 100 == 99) settle(*r);
    }
    settle(*r);
    EXPECT_TRUE(drain(port).empty()) << "answered an ARP request for another address";
    auto after = all_counters(*r);
    EXPECT_EQ(before.at("drop/ingress/arp_not_for_us") + storm, after.at("drop/ingress/arp_not_for_us"));
    EXPECT_EQ(before.at("arp_replies"), after.at("arp_replies"));

    // Now for our address, from as many different senders.
    before = after;
    std::map<uint32_t, size_t> request_size;
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < storm; ++i) {
        const uint32_t sender = 0xc6120200 + i;
        const bytes req = arp(1, host_mac(sender), sender, zero_mac, relay_ip, bcast_mac);
        request_size[sender] = req.size();
        inject(port, req);
    }
    settle(*r);
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto out = drain(port);
    after = all_counters(*r);
    const uint64_t replies = after.at("arp_replies") - before.at("arp_replies");
    const uint64_t limited = after.at("drop/ingress/arp_rate") - before.at("drop/ingress/arp_rate");
    EXPECT_EQ(storm, replies + limited) << "every request either answered or counted";
    EXPECT_EQ(out.size(), replies);
    // The bucket was full (burst 100) and refills at 1000/s.
    EXPECT_GE(replies, 100u);
    EXPECT_LE(replies, 100u + static_cast<uint64_t>(elapsed_s * 1000.0) + 1) << "elapsed " << elapsed_s << " s";
    EXPECT_GT(limited, 0u);
    for (const auto& f : out) {
        ASSERT_GE(f.size(), 42u);
        EXPECT_EQ(0x0806, be16(f.data() + 12));
        EXPECT_EQ(2, be16(f.data() + 20)) << "reply";
        const uint32_t to = be32(f.data() + 38);
        ASSERT_TRUE(request_size.count(to)) << "reply to an address that did not ask";
        EXPECT_LE(f.size(), request_size[to]) << "reply larger than the request";
        EXPECT_EQ(0, std::memcmp(f.data(), host_mac(to).data(), 6)) << "reply not unicast to the sender";
    }
    for (const auto& [name, v] : after) {
        if (moves_per_frame(name) || name == "arp_replies" || name == "drop/ingress/arp_rate" || name == "arp_requests_in" ||
            name.rfind("port/", 0) == 0)
            continue;
        EXPECT_EQ(before.at(name), v) << name << " moved";
    }
}

// Echo requests from strangers: same budget, same size, counted when over.
TEST_F(corpus_test, ping_flood_is_rate_limited_and_never_amplified) {
    constexpr unsigned flood = 301;
    const auto before = all_counters(*r);
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < flood; ++i) {
        const uint32_t src = 0xcb007100 + (i % 200) + 1;   // 203.0.113.x, off-link
        const bytes req = eth(our_mac, peer_mac, 0x0800, ipv4({.src = src, .proto = 1}, icmp(8, 0, 56 + i % 3)));
        inject(port, req);
    }
    settle(*r);
    const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto out = drain(port);
    const auto after = all_counters(*r);
    const uint64_t replies = after.at("icmp_replies") - before.at("icmp_replies");
    const uint64_t limited = after.at("drop/ingress/icmp_rate") - before.at("drop/ingress/icmp_rate");
    EXPECT_EQ(flood, replies + limited);
    EXPECT_EQ(out.size(), replies);
    EXPECT_GE(replies, 100u);
    EXPECT_LE(replies, 100u + static_cast<uint64_t>(elapsed_s * 1000.0) + 1);
    for (const auto& f : out) {
        ASSERT_GE(f.size(), 42u);
        EXPECT_EQ(0, f[34]) << "echo reply";
        EXPECT_LE(f.size(), 14u + 20 + 8 + 58) << "reply larger than the largest request";
        EXPECT_EQ(be16(f.data() + 16) + 14u, f.size()) << "no bytes beyond the IP datagram";
        EXPECT_EQ(relay_ip, be32(f.data() + 26));
    }
}

// An ARP reply addressed to us that we did not ask for: never answered,
// never learnt from, counted as arp_unsolicited and nothing else.
TEST_F(corpus_test, unsolicited_arp_reply_is_dropped_and_counted) {
    const auto before = all_counters(*r);
    inject(port, arp(2, host_mac(stranger_ip), stranger_ip, our_mac, relay_ip, our_mac));
    settle(*r);
    EXPECT_TRUE(drain(port).empty());
    const auto after = all_counters(*r);
    EXPECT_EQ(before.at("drop/ingress/arp_unsolicited") + 1, after.at("drop/ingress/arp_unsolicited"));
    for (const auto& [name, v] : after) {
        if (moves_per_frame(name) || name == "drop/ingress/arp_unsolicited") continue;
        EXPECT_EQ(before.at(name), v) << name << " moved";
    }
}

}  // namespace
}  // namespace stentor::test
