// Packet capture (docs/capture.md) through real EAL on a ring ethdev, the
// workers polled on the test thread: what each kind of capture writes (read
// back with libpcap, byte for byte), each bound, sampling, snaplen, the
// drops when the writer falls behind, and the refusals that change nothing;
// a slow capture.dir (slow_fs.h) holds no API call but the start and the
// end that scan it.
#include <dirent.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include "action_error.h"
#include "capture.h"
#include "eventually.h"
#include "harness.h"
#include "slow_fs.h"
#include "stentor/dp_shared.h"

namespace stentor::test {
namespace {

using control::capture_info;
using control::capture_kind;
using control::capture_request;
using control::relay;
using control::relay_options;

struct packet {
    bytes data;
    uint32_t orig_len;
};

// Every packet of a pcapng file, as libpcap reads it.
std::vector<packet> read_pcap(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    EXPECT_NE(p, nullptr) << path << ": " << err;
    std::vector<packet> out;
    if (p == nullptr) return out;
    EXPECT_EQ(DLT_EN10MB, pcap_datalink(p));
    pcap_pkthdr* h;
    const u_char* d;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) out.push_back({bytes(d, d + h->caplen), h->len});
    EXPECT_EQ(PCAP_ERROR_BREAK, rc) << "the file ends cleanly: " << pcap_geterr(p);
    pcap_close(p);
    return out;
}

std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> v;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') v.emplace_back(e->d_name);
        closedir(d);
    }
    return v;
}

capture_request on_port(capture_kind k, const char* port) {
    capture_request q;
    q.kind = k;
    q.port = port;
    return q;
}

capture_request on_session(uint32_t id) {
    capture_request q;
    q.kind = capture_kind::session;
    q.session = id;
    return q;
}

// Every copy the workers made is written or counted, and every packet
// that matched is copied or counted: nothing is lost silently.
void expect_accounted(const capture_info& c) {
    EXPECT_EQ(c.matched, c.sampled_out + c.copied + c.ring_full + c.no_mbuf) << "capture " << c.id;
    EXPECT_EQ(c.copied, c.packets + c.discarded) << "capture " << c.id;
}

class capture_test : public ::testing::Test {
protected:
    ring_port port = fresh_ring_port("cap");
    std::string dir;
    control::profile prof;
    std::vector<uint32_t> listeners{0xc6120064, 0xc6120065, 0xc6120066};

    void SetUp() override {
        char tmpl[] = "/tmp/stentor-capture-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        prof = base_profile(port.name);
        prof.eal.file_prefix = "captest";
        prof.capture.dir = dir + "/captures";   // made by the first capture
        control::session_config sc = speaker_session();
        for (uint32_t ip : listeners) sc.listeners.push_back({ip, listener_port, 0});
        prof.sessions.push_back(sc);
    }
    void TearDown() override {
        for (const auto& f : files_in(dir + "/captures")) ::unlink((dir + "/captures/" + f).c_str());
        ::rmdir((dir + "/captures").c_str());
        ::rmdir(dir.c_str());
    }

    std::unique_ptr<relay> make_relay() {
        auto r = std::make_unique<relay>(prof, relay_options{.launch = false});
        r->state().load_static(prof);
        EXPECT_TRUE(resolve(*r, port, listeners).empty());
        return r;
    }

    // A stream of the registered speaker: `n` RTP frames, sequence from `seq`.
    static std::vector<bytes> stream(unsigned n, uint16_t seq = 100) {
        std::vector<bytes> v;
        for (unsigned k = 0; k < n; ++k) {
            frame_spec fs;
            fs.seq = static_cast<uint16_t>(seq + k);
            fs.ts = 960u * (seq + k);
            v.push_back(rtp_frame(fs));
        }
        return v;
    }

    // Sends frames one at a time through the workers; returns what left.
    static std::vector<bytes> send(relay& r, const ring_port& p, const std::vector<bytes>& frames) {
        std::vector<bytes> out;
        for (const auto& f : frames) {
            inject(p, f);
            settle(r);
            for (auto& o : drain(p)) out.push_back(std::move(o));
        }
        return out;
    }
};

// What each kind of capture holds: exactly the frames of its point, in order.
TEST_F(capture_test, each_kind_writes_exactly_its_frames) {
    auto r = make_relay();
    auto& cm = r->captures();
    const auto speaker = stream(7);
    frame_spec stranger;                 // to the session's port from an unknown flow: dropped, still its ingress
    stranger.src_ip = 0xc6120063;
    frame_spec other_port;               // to another session port: not this session's ingress
    other_port.dst_port = 40001;
    const bytes arp = arp_frame(1, host_mac(0xc6120064).data(), 0xc6120064, relay_mac, relay_ip,
                                reinterpret_cast<const uint8_t*>("\xff\xff\xff\xff\xff\xff"));
    std::vector<bytes> mixed = speaker;
    mixed.insert(mixed.begin() + 2, rtp_frame(stranger));
    mixed.insert(mixed.begin() + 4, rtp_frame(other_port));
    mixed.push_back(arp);

    struct row {
        const char* what;
        capture_request req;
        std::vector<bytes> (*expected)(const std::vector<bytes>& in, const std::vector<bytes>& out);
    };
    const std::vector<row> rows = {
        {"session 1 ingress: the speaker's 7 and the stranger's to udp 40000, not udp 40001, not ARP",
         on_session(1),
         [](const std::vector<bytes>& in, const std::vector<bytes>&) {
             std::vector<bytes> v;
             for (const auto& f : in)
                 if (f.size() > 37 && be16(f.data() + 12) == 0x0800 && be16(f.data() + 36) == 40000) v.push_back(f);
             return v;
         }},
        {"port lan0 rx: every frame received, in order", on_port(capture_kind::port_rx, "lan0"),
         [](const std::vector<bytes>& in, const std::vector<bytes>&) { return in; }},
        {"port lan0 tx: every frame the relay sent (3 replicas per speaker packet, the ARP reply)",
         on_port(capture_kind::port_tx, "lan0"),
         [](const std::vector<bytes>&, const std::vector<bytes>& out) { return out; }},
    };
    uint16_t seq = 100;
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        std::vector<bytes> in = mixed;
        // Fresh sequence numbers per row: the stream must stay plausible.
        const auto fresh = stream(7, seq);
        seq = static_cast<uint16_t>(seq + 7);
        size_t k = 0;
        for (auto& f : in)
            if (f.size() == fresh[0].size() && be32(f.data() + 26) == speaker_ip && be16(f.data() + 36) == 40000)
                f = fresh[k++];
        const capture_info started = cm.start(row.req);
        EXPECT_EQ("running", started.state);
        const auto out = send(*r, port, in);
        const capture_info c = cm.stop(started.id);
        EXPECT_EQ("done", c.state) << c.error;
        EXPECT_EQ("stopped", c.stop_reason);
        const auto want = row.expected(in, out);
        const auto got = read_pcap(c.file);
        ASSERT_EQ(want.size(), got.size());
        for (size_t i = 0; i < want.size(); ++i) {
            EXPECT_EQ(want[i], got[i].data) << "packet " << i;
            EXPECT_EQ(want[i].size(), got[i].orig_len) << "packet " << i;
        }
        EXPECT_EQ(want.size(), c.packets);
        EXPECT_EQ(0u, c.ring_full + c.no_mbuf + c.discarded);
        expect_accounted(c);
    }
    // Replicas reached every listener all along: 3 per speaker packet.
    EXPECT_EQ(3u * 7u * rows.size(), counter(*r, "replicas_out"));
    EXPECT_EQ(rows.size(), counter(*r, "capture/captures"));
    // Every copy went back to the capture pool.
    rte_mempool* cp = rte_mempool_lookup("stentor_capture");
    ASSERT_NE(cp, nullptr);
    EXPECT_EQ(cp->size, rte_mempool_avail_count(cp));
}

// Each bound ends the capture by itself, with its reason, and the file
// holds what the bound allows.
TEST_F(capture_test, bounds_end_a_capture) {
    auto r = make_relay();
    auto& cm = r->captures();
    const size_t frame = stream(1)[0].size();
    // One pcapng enhanced packet block of this frame: 28 header, data
    // padded to 4, flags and queue options (8 + 8), trailing length 4.
    const uint64_t block = 28 + ((frame + 3) & ~size_t{3}) + 16 + 4;
    struct row {
        const char* what;
        capture_request req;
        unsigned send;
        const char* reason;
        uint64_t packets;
        bool wait_time;
    };
    capture_request by_count = on_port(capture_kind::port_rx, "lan0");
    by_count.max_packets = 5;
    capture_request by_bytes = on_port(capture_kind::port_rx, "lan0");
    by_bytes.max_bytes = 3 * block + block / 2;
    capture_request by_time = on_session(1);
    by_time.max_seconds = 1;
    capture_request sampled = on_port(capture_kind::port_rx, "lan0");
    sampled.sample = 3;
    sampled.max_packets = 4;
    capture_request snap = on_port(capture_kind::port_rx, "lan0");
    snap.snaplen = 64;
    snap.max_packets = 2;
    const std::vector<row> rows = {
        {"max_packets 5 of 12 sent", by_count, 12, "max_packets", 5, false},
        {"max_bytes: 3.5 blocks hold 3 packets", by_bytes, 9, "max_bytes", 3, false},
        {"max_seconds 1, nothing sent: an empty capture", by_time, 0, "max_seconds", 0, true},
        {"sample 1 in 3, max_packets 4: 12 sent, the 1st 4th 7th 10th kept", sampled, 12, "max_packets", 4, false},
        {"snaplen 64: frames cut, their length kept", snap, 2, "max_packets", 2, false},
    };
    uint16_t seq = 1000;
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        const auto frames = stream(row.send, seq);
        seq = static_cast<uint16_t>(seq + row.send);
        const capture_info started = cm.start(row.req);
        send(*r, port, frames);
        cm.wait_idle();
        const capture_info c = *cm.info(started.id);
        EXPECT_EQ("done", c.state) << c.error;
        EXPECT_EQ(row.reason, c.stop_reason);
        EXPECT_EQ(row.packets, c.packets);
        if (row.wait_time) {
            EXPECT_GE(c.elapsed_s, 1.0);
        }
        const auto got = read_pcap(c.file);
        ASSERT_EQ(row.packets, got.size());
        if (row.req.max_bytes) {
            EXPECT_LE(c.bytes, *row.req.max_bytes);
        }
        const uint32_t step = row.req.sample.value_or(1);
        for (size_t i = 0; i < got.size(); ++i) {
            const bytes& want = frames[i * step];
            const size_t keep = std::min<size_t>(want.size(), row.req.snaplen.value_or(65535));
            EXPECT_EQ(bytes(want.begin(), want.begin() + static_cast<long>(keep)), got[i].data) << "packet " << i;
            EXPECT_EQ(want.size(), got[i].orig_len) << "packet " << i;
        }
        if (row.req.sample) {
            EXPECT_GE(c.sampled_out, 2u * row.packets - 2);
        }
        expect_accounted(c);
    }
}

// The writer falls behind (held): a full ring and an empty pool skip the
// copy and count it; forwarding goes on untouched; the file is valid.
TEST_F(capture_test, a_full_ring_or_an_empty_pool_drops_copies_not_packets) {
    struct row {
        const char* what;
        unsigned ring, mbufs;
        uint64_t copied, ring_full, no_mbuf;
    };
    const std::vector<row> rows = {
        {"ring of 64, pool of 1023: 64 copied, 36 dropped ring full", 64, 1023, 64, 36, 0},
        {"ring of 128, pool of 63: 63 copied, 37 not made", 128, 63, 63, 0, 37},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        // A port of its own: a relay closes its ports when it goes.
        port = fresh_ring_port("cap");
        prof.ports[0].device = port.name;
        prof.capture.ring_size = row.ring;
        prof.capture.mbufs = row.mbufs;
        auto r = make_relay();
        auto& cm = r->captures();
        const auto before = all_counters(*r);
        cm.hold_writer(true);
        const capture_info started = cm.start(on_port(capture_kind::port_rx, "lan0"));
        send(*r, port, stream(100));
        // Forwarding does not notice: every packet received and handled as
        // without a capture (the speaker's policer passes its bucket's worth,
        // each of those reaches the 3 listeners).
        const auto after = all_counters(*r);
        const auto moved = [&](const char* k) { return after.at(k) - before.at(k); };
        EXPECT_EQ(100u, moved("rx_packets"));
        EXPECT_EQ(100u, moved("rtp_in") + moved("drop/ingress/policed"));
        EXPECT_LT(0u, moved("rtp_in"));
        EXPECT_EQ(3 * moved("rtp_in"), moved("replicas_out"));
        cm.hold_writer(false);
        const capture_info c = cm.stop(started.id);
        EXPECT_EQ("done", c.state) << c.error;
        EXPECT_EQ(100u, c.matched);
        EXPECT_EQ(row.copied, c.copied);
        EXPECT_EQ(row.ring_full, c.ring_full);
        EXPECT_EQ(row.no_mbuf, c.no_mbuf);
        EXPECT_EQ(row.copied, c.packets);
        EXPECT_EQ(row.copied, read_pcap(c.file).size());
        EXPECT_EQ(row.ring_full, counter(*r, "capture/ring_full"));
        EXPECT_EQ(row.no_mbuf, counter(*r, "capture/no_mbuf"));
        expect_accounted(c);
        r.reset();
    }
}

// Refusals name the problem and change nothing: no file, no capture, the
// workers' bits stay off.
TEST_F(capture_test, bad_requests_are_refused_and_change_nothing) {
    prof.capture.max_packets = 1000;
    prof.capture.max_seconds = 10;
    prof.capture.max_mib = 1;
    auto r = make_relay();
    auto& cm = r->captures();
    const auto with = [](auto f) {
        capture_request q = on_port(capture_kind::port_rx, "lan0");
        f(q);
        return q;
    };
    struct row {
        const char* what;
        capture_request req;
        control::error_code code;
        const char* says;
    };
    const std::vector<row> rows = {
        {"unknown port", with([](auto& q) { q.port = "wan9"; }), control::error_code::invalid, "no port named \"wan9\""},
        {"unknown session", with([](auto& q) { q.kind = capture_kind::session; q.session = 77; }),
         control::error_code::not_found, "no session 77"},
        {"max_packets above capture.max_packets", with([](auto& q) { q.max_packets = 1001; }),
         control::error_code::invalid, "capture.max_packets"},
        {"max_seconds above capture.max_seconds", with([](auto& q) { q.max_seconds = 11; }),
         control::error_code::invalid, "capture.max_seconds"},
        {"max_bytes above capture.max_mib", with([](auto& q) { q.max_bytes = (1 << 20) + 1; }),
         control::error_code::invalid, "capture.max_mib"},
        {"max_packets 0", with([](auto& q) { q.max_packets = 0; }), control::error_code::invalid, "at least 1"},
        {"snaplen 10", with([](auto& q) { q.snaplen = 10; }), control::error_code::invalid, "snaplen"},
        {"sample 0", with([](auto& q) { q.sample = 0; }), control::error_code::invalid, "sample"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        try {
            cm.start(row.req);
            ADD_FAILURE() << "accepted";
        } catch (const control::action_error& e) {
            EXPECT_EQ(row.code, e.code);
            EXPECT_NE(std::string(e.what()).find(row.says), std::string::npos) << e.what();
        }
        EXPECT_TRUE(cm.list().empty());
        EXPECT_EQ(0u, r->shared().capture->on.load());
    }
    EXPECT_TRUE(files_in(dir + "/captures").empty());
    // One at a time: a second start names the running one.
    const capture_info first = cm.start(on_port(capture_kind::port_tx, "lan0"));
    try {
        cm.start(on_port(capture_kind::port_rx, "lan0"));
        ADD_FAILURE() << "a second capture was accepted";
    } catch (const control::action_error& e) {
        EXPECT_EQ(control::error_code::exists, e.code);
        EXPECT_NE(std::string(e.what()).find("capture " + std::to_string(first.id)), std::string::npos) << e.what();
    }
    EXPECT_EQ(1u, cm.list().size());
    cm.stop(first.id);
    EXPECT_THROW(cm.stop(99), control::action_error);
}

// The session ends: its capture ends with it; the file is kept and
// capture.keep bounds how many files stay.
TEST_F(capture_test, a_session_end_stops_its_capture_and_keep_prunes_old_files) {
    prof.capture.keep = 2;
    auto r = make_relay();
    auto& cm = r->captures();
    std::vector<uint32_t> ids;
    for (int i = 0; i < 3; ++i) {
        const auto c = cm.start(on_port(capture_kind::port_rx, "lan0"));
        send(*r, port, stream(2, static_cast<uint16_t>(3000 + 2 * i)));
        cm.stop(c.id);
        ids.push_back(c.id);
    }
    EXPECT_EQ(2u, files_in(dir + "/captures").size());
    EXPECT_TRUE(cm.info(ids[0])->file_removed);
    std::string why;
    EXPECT_FALSE(cm.finished_file(ids[0], &why));
    EXPECT_NE(why.find("removed"), std::string::npos) << why;
    EXPECT_TRUE(cm.finished_file(ids[2], &why));

    const auto s = cm.start(on_session(1));
    EXPECT_FALSE(cm.finished_file(s.id, &why));
    EXPECT_NE(why.find("still running"), std::string::npos) << why;
    r->state().session_end(1);
    r->state().publish();
    cm.wait_idle();
    const auto c = *cm.info(s.id);
    EXPECT_EQ("done", c.state);
    EXPECT_EQ("session_ended", c.stop_reason);
    // Removing a capture removes its file.
    EXPECT_EQ(2u, files_in(dir + "/captures").size());
    cm.remove(s.id);
    EXPECT_TRUE(cm.info(s.id)->file_removed);
    EXPECT_EQ(1u, files_in(dir + "/captures").size());
}


// capture.keep counts this relay's files in the directory, not the captures
// this process ran: before, an earlier run's files, a .part that a crash
// cut off (or that a failed capture left) were never counted nor removed,
// so every restart left up to `keep` files more, for ever. Files that are
// not this relay's (another prefix sharing the directory, strangers, a
// symbolic link) are never touched. The prefix is in the names whole: two
// relays whose prefixes share 32 characters do not share names.
TEST_F(capture_test, keep_counts_this_relays_files_in_the_directory_from_an_earlier_run_or_a_crash_too) {
    const std::string me = "captest.relay-with-a-long-file-prefix-0123456789";   // 48 characters, a dot
    prof.eal.file_prefix = me;
    prof.capture.keep = 2;
    const std::string cdir = dir + "/captures";
    // The earlier run: two captures, both kept.
    {
        auto r = make_relay();
        for (int i = 0; i < 2; ++i) r->captures().stop(r->captures().start(on_port(capture_kind::port_rx, "lan0")).id);
    }
    const std::vector<std::string> earlier_run = files_in(cdir);
    ASSERT_EQ(2u, earlier_run.size());
    for (const auto& f : earlier_run) EXPECT_EQ(0u, f.rfind(me + "-", 0)) << f << ": named with the whole prefix";

    struct row {
        const char* what;
        std::string name;
        bool ours;      // this relay's: counted, and old enough to go
        bool link;      // a symbolic link, not a file
    };
    const std::vector<row> rows = {
        {"cut off by a crash (no end, .part)", me + "-3-lan0-rx-20260101T000003Z.pcapng.part", true, false},
        {"a failed capture's .part", me + "-4-session1-20260101T000004Z.pcapng.part", true, false},
        {"finished, an earlier run", me + "-5-lan0-tx-20260101T000005Z.pcapng", true, false},
        {"another relay: its prefix shares the first 32 characters", "captest.relay-with-a-long-file-pXYZ-1-lan0-rx-20260101T000001Z.pcapng", false, false},
        {"another relay: prefix + \"-b\"", me + "-b-1-lan0-rx-20260101T000001Z.pcapng", false, false},
        {"another relay: prefix + \"-2\"", me + "-2-1-lan0-rx-20260101T000001Z.pcapng", false, false},
        {"another relay: its session", me + "-2-1-session1-20260101T000001Z.pcapng", false, false},
        {"not a port of this relay", me + "-6-wan9-rx-20260101T000006Z.pcapng", false, false},
        {"no time stamp", me + "-7-lan0-rx.pcapng", false, false},
        {"not pcapng", me + "-8-lan0-rx-20260101T000008Z.txt", false, false},
        {"a stranger's file", "notes.txt", false, false},
        {"a symbolic link named as ours", me + "-9-lan0-rx-20260101T000009Z.pcapng", false, true},
    };
    // In the directory, so that TearDown removes it whatever happens: a
    // stranger's file too.
    const std::string target = cdir + "/link-target";
    { FILE* f = fopen(target.c_str(), "w"); ASSERT_NE(f, nullptr); fputs("not a capture\n", f); fclose(f); }
    for (const auto& row : rows) {
        const std::string path = cdir + "/" + row.name;
        if (row.link) {
            ASSERT_EQ(0, symlink(target.c_str(), path.c_str())) << path;
        } else {
            FILE* f = fopen(path.c_str(), "w");
            ASSERT_NE(f, nullptr) << path;
            fputs("x", f);
            fclose(f);
        }
        // Older than the earlier run's files, so that they go first.
        const timespec old[2] = {{1767225600, 0}, {1767225600, 0}};
        ASSERT_EQ(0, utimensat(AT_FDCWD, path.c_str(), old, AT_SYMLINK_NOFOLLOW)) << path;
    }

    // This run (a relay closes its ring port: the next one gets a fresh
    // one, still named lan0): two captures; `keep` holds this run's two,
    // nothing else of ours.
    port = fresh_ring_port("cap");
    prof.ports[0].device = port.name;
    auto r = make_relay();
    auto& cm = r->captures();
    std::vector<std::string> this_run;
    for (int i = 0; i < 2; ++i) {
        const auto c = cm.stop(cm.start(on_port(capture_kind::port_rx, "lan0")).id);
        this_run.push_back(c.file.substr(c.file.rfind('/') + 1));
    }
    const auto now = files_in(cdir);
    const auto has = [&](const std::string& n) { return std::find(now.begin(), now.end(), n) != now.end(); };
    for (const auto& n : this_run) EXPECT_TRUE(has(n)) << n << ": this run's, kept";
    for (const auto& n : earlier_run) EXPECT_FALSE(has(n)) << n << ": the earlier run's, beyond keep";
    for (const auto& row : rows) {
        SCOPED_TRACE(row.what);
        EXPECT_EQ(!row.ours, has(row.name)) << row.name;
    }
    struct stat sb{};
    EXPECT_EQ(0, stat(target.c_str(), &sb)) << "a link's target is never touched";
    EXPECT_EQ(3u + static_cast<size_t>(std::count_if(rows.begin(), rows.end(), [](const row& x) { return !x.ours; })),
              now.size())
        << "this run's two, the link's target and every file not ours";
}

// Capture ids start at 1 with every process and the names' time stamps are
// seconds: before, a capture of a relay restarted within the second (or
// after the clock stepped back) was renamed, at its end, over the earlier
// run's kept file of the same name, which was lost without a word. Now the
// ids go on above the highest one in the directory, and the final rename
// never replaces anything.
TEST_F(capture_test, a_new_capture_never_takes_the_name_of_an_earlier_runs_file) {
    prof.capture.keep = 100;
    const std::string cdir = dir + "/captures";
    ASSERT_EQ(0, ::mkdir(cdir.c_str(), 0750));
    // capture 1 of an earlier run, under every time stamp this test's
    // capture may get.
    std::vector<std::string> earlier;
    const std::time_t now = std::time(nullptr);
    for (int k = -1; k <= 8; ++k) {
        const std::time_t t = now + k;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        earlier.push_back(std::string("captest-1-lan0-rx-") + stamp + ".pcapng");
        FILE* f = fopen((cdir + "/" + earlier.back()).c_str(), "w");
        ASSERT_NE(f, nullptr);
        fputs("the earlier run's capture 1\n", f);
        fclose(f);
    }
    auto r = make_relay();
    auto& cm = r->captures();
    const auto c = cm.stop(cm.start(on_port(capture_kind::port_rx, "lan0")).id);
    EXPECT_EQ("done", c.state) << c.error;
    EXPECT_EQ(2u, c.id) << "ids go on above the directory's";
    for (const auto& n : earlier) {
        FILE* f = fopen((cdir + "/" + n).c_str(), "r");
        ASSERT_NE(f, nullptr) << n;
        char b[64] = {0};
        const size_t got = fread(b, 1, sizeof b - 1, f);
        fclose(f);
        EXPECT_EQ("the earlier run's capture 1\n", std::string(b, got)) << n << " was replaced";
    }
    EXPECT_EQ(earlier.size() + 1, files_in(cdir).size());
    EXPECT_EQ(c.packets, read_pcap(c.file).size()) << "its own file, whole";
}

// capture.keep above the captures the API lists (the last 256): before,
// a capture's record left the list with its file still there and the
// file was never counted again, so a relay with keep >= 256 removed
// nothing, ever.
TEST_F(capture_test, keep_above_the_listed_captures_still_bounds_the_files) {
    prof.capture.keep = 258;
    auto r = make_relay();
    auto& cm = r->captures();
    for (int i = 0; i < 262; ++i) cm.stop(cm.start(on_port(capture_kind::port_tx, "lan0")).id);
    EXPECT_EQ(258u, files_in(dir + "/captures").size());
    EXPECT_EQ(256u, cm.list().size());
}

// The directory removed (an operator's clean-up) while the relay runs: the
// next capture makes it again. Before, the relay kept the first capture's
// descriptor of the deleted directory and refused every capture with
// "No such file or directory" until it was restarted.
TEST_F(capture_test, a_capture_directory_removed_while_the_relay_runs_is_made_again) {
    auto r = make_relay();
    auto& cm = r->captures();
    cm.stop(cm.start(on_port(capture_kind::port_rx, "lan0")).id);
    const std::string cdir = dir + "/captures";
    for (const auto& f : files_in(cdir)) ASSERT_EQ(0, ::unlink((cdir + "/" + f).c_str()));
    ASSERT_EQ(0, ::rmdir(cdir.c_str()));
    capture_info c;
    ASSERT_NO_THROW(c = cm.stop(cm.start(on_port(capture_kind::port_rx, "lan0")).id));
    EXPECT_EQ("done", c.state);
    struct stat sb{};
    ASSERT_EQ(0, ::stat(cdir.c_str(), &sb));
    EXPECT_EQ(0750u, sb.st_mode & 0777);
    EXPECT_EQ(1u, files_in(cdir).size());
    std::string why;
    EXPECT_TRUE(cm.finished_file(c.id, &why)) << why;
}

// Before, the capture manager held its one lock over the scan of
// capture.dir that counts and prunes the files (at every start and every
// end): a slow directory (a stalled disk, a huge directory, a dead NFS
// server) held every capture call of the API, a GET of a capture's state
// too. Here capture.dir is on a FUSE file system whose readdir the test
// holds in the kernel: a start sits in its scan, then a capture's end does;
// meanwhile the API's reads and a stop answer (a remove, which unlinks in
// that directory, waits its turn without holding them), and the held start
// and end complete once the directory answers, with the ids and files
// they would have had.
TEST_F(capture_test, a_slow_directory_holds_no_api_call_but_the_start_and_the_end_that_read_it) {
    std::string why;
    auto fs = slow_fs::mount(why);
    ASSERT_NE(fs, nullptr) << why;   // as the recorder's slow-disk tests: libfuse3 is installed, tests run as root
    prof.capture.dir = fs->dir() + "/captures";
    prof.capture.keep = 2;
    auto r = make_relay();
    auto& cm = r->captures();
    const auto first = cm.stop(cm.start(on_port(capture_kind::port_rx, "lan0")).id);
    ASSERT_EQ("done", first.state) << first.error;
    const auto gone = cm.stop(cm.start(on_port(capture_kind::port_tx, "lan0")).id);
    ASSERT_EQ("done", gone.state) << gone.error;

    // A start held in its scan of the directory.
    capture_info second;
    {
        fs->hold(slow_fs::op::readdir);
        background starting([&] { second = cm.start(on_port(capture_kind::port_tx, "lan0")); });
        release_holds guard{*fs};
        ASSERT_TRUE(fs->wait_held(slow_fs::op::readdir)) << "the start never read the directory";
        // A remove unlinks in the directory: it waits for it too, and
        // holds nobody else meanwhile.
        capture_info removed;
        background removing([&] { removed = cm.remove(gone.id); });
        std::string file_why;
        std::optional<std::string> file;
        std::vector<capture_info> listed;
        std::optional<capture_info> one, stopped;
        background reads([&] {
            listed = cm.list();
            one = cm.info(first.id);
            file = cm.finished_file(first.id, &file_why);
            stopped = cm.stop(first.id);
        });
        EXPECT_TRUE(eventually([&] { return reads.done(); })) << "an API call waited for the directory";
        EXPECT_FALSE(starting.done()) << "the start did not wait for its scan";
        fs->release(slow_fs::op::readdir);
        EXPECT_TRUE(eventually([&] { return starting.done() && removing.done(); }));
        if (reads.done()) {
            EXPECT_EQ(2u, listed.size());
            ASSERT_TRUE(one.has_value());
            EXPECT_EQ("done", one->state);
            EXPECT_EQ(first.file, file.value_or("")) << file_why;
            EXPECT_EQ("done", stopped.value_or(capture_info{}).state);
        }
        if (removing.done()) {
            EXPECT_TRUE(removed.file_removed);
        }
    }
    EXPECT_EQ(gone.id + 1, second.id) << "ids go on";
    EXPECT_EQ("running", second.state);

    // The end of a capture held in its scan (after its rename): the stop
    // waits for it, the reads do not.
    {
        fs->hold(slow_fs::op::readdir);
        capture_info stopped;
        background stopping([&] { stopped = cm.stop(second.id); });
        release_holds guard{*fs};
        ASSERT_TRUE(fs->wait_held(slow_fs::op::readdir)) << "the end never read the directory";
        std::optional<capture_info> mid;
        std::vector<capture_info> listed;
        background reads([&] {
            mid = cm.info(second.id);
            listed = cm.list();
        });
        EXPECT_TRUE(eventually([&] { return reads.done(); })) << "an API read waited for the directory";
        EXPECT_FALSE(stopping.done()) << "stop returned before the capture's end was done";
        fs->release(slow_fs::op::readdir);
        EXPECT_TRUE(eventually([&] { return stopping.done(); }));
        if (reads.done()) {
            ASSERT_TRUE(mid.has_value());
            EXPECT_EQ("running", mid->state) << "not finished until its scan is";
            EXPECT_EQ(3u, listed.size());
        }
        if (stopping.done()) {
            EXPECT_EQ("done", stopped.state) << stopped.error;
            EXPECT_EQ(0u, stopped.file.rfind(prof.capture.dir + "/", 0)) << stopped.file;
        }
    }
    // keep = 2: the first capture and the second are what is left (the
    // removed one is gone), each under its own name.
    const auto left = files_in(fs->backing() + "/captures");
    EXPECT_EQ(2u, left.size());
    const auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
    for (const auto& c : {first, *cm.info(second.id)})
        EXPECT_NE(left.end(), std::find(left.begin(), left.end(), base(c.file))) << c.file;
}

}  // namespace
}  // namespace stentor::test
