// Config profile loader: shipped profiles load, every refusal names
// file:line:col and the setting, and the address helpers agree with the
// listener rules the relay enforces at run time.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <string>
#include <vector>

#include "config.h"
#include "host_check.h"
#include "profile_error.h"
#include "stentor/display_text.h"
#include "state.h"
#include "stentor/dp_shared.h"

namespace stentor::control {
namespace {

using test::error_of;

#ifndef STENTOR_SOURCE_DIR
#error "tests/unit/meson.build must define STENTOR_SOURCE_DIR"
#endif

// A minimal valid profile, built from pieces whose line counts are fixed so
// the table below can name exact lines:
//   lines 1-3 eal, 4-6 dataplane, 7-10 port, 11-12 api, 13.. appended text.
const std::string k_eal = "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\"]\n";
const std::string k_dp = "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n";
const std::string k_port =
    "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n";
const std::string k_api = "[api]\ntoken = \"0123456789abcdef\"\nplain_http = true\n";
const std::string k_base = k_eal + k_dp + k_port + k_api;
// Appended after k_base: session at 13-15, speaker at 16-19 (16-18 without
// its SSRC).
const std::string k_session = "[[session]]\nid = 1\nudp_port = 40000\n";
const std::string k_speaker_no_ssrc = "[[session.speaker]]\nip = \"198.18.0.10\"\nport = 5004\n";
const std::string k_speaker = k_speaker_no_ssrc + "ssrc = 1234\n";

std::string listener(const std::string& ip, int port = 5004) {
    return "[[session.listener]]\nip = \"" + ip + "\"\nport = " + std::to_string(port) + "\n";
}

profile parse(const std::string& text) { return parse_profile(text, "t.toml"); }

TEST(ConfigBase, MinimalProfileLoads) {
    const auto p = parse(k_base + k_session + k_speaker + listener("198.18.0.21"));
    EXPECT_EQ(p.path, "t.toml");
    EXPECT_EQ(p.eal.lcores, (std::vector<unsigned>{0, 1}));
    EXPECT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].ipv4, 0xc6120001u);
    EXPECT_EQ(p.ports[0].prefix_len, 24u);
    ASSERT_EQ(p.sessions.size(), 1u);
    EXPECT_EQ(p.sessions[0].name, "session-1");  // default name
    EXPECT_EQ(p.sessions[0].listeners.size(), 1u);
    EXPECT_EQ(p.sessions[0].listeners[0].tier, 0u);
}

// ---------------------------------------------------------------------------
// Shipped profiles

std::vector<std::filesystem::path> shipped_profiles() {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(std::string(STENTOR_SOURCE_DIR) + "/configs"))
        if (e.path().extension() == ".toml") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(ConfigProfiles, EveryShippedProfileLoads) {
    const auto files = shipped_profiles();
    EXPECT_GE(files.size(), 4u);
    for (const auto& f : files) {
        SCOPED_TRACE(f.string());
        EXPECT_NO_THROW(load_profile(f.string()));
        // The loaders' bound stays far above what a real profile needs.
        EXPECT_LT(std::filesystem::file_size(f), max_profile_bytes / 64);
    }
}

std::string configs(const char* name) { return std::string(STENTOR_SOURCE_DIR) + "/configs/" + name; }

TEST(ConfigProfiles, DevVethHasTheValuesTheDemoUses) {
    const auto p = load_profile(configs("dev-veth.toml"));
    EXPECT_EQ(p.eal.lcores, (std::vector<unsigned>{0, 1}));
    EXPECT_EQ(p.eal.main_lcore, 0u);
    EXPECT_FALSE(p.eal.hugepages);
    EXPECT_EQ(p.eal.memory_mb, 512u);
    EXPECT_EQ(p.eal.file_prefix, "stentor-dev");
    EXPECT_EQ(p.eal.vdevs, (std::vector<std::string>{"net_af_packet0,iface=stv-relay"}));
    EXPECT_EQ(p.dataplane.rx_lcores, (std::vector<unsigned>{1}));
    EXPECT_EQ(p.dataplane.fanout_lcores, (std::vector<unsigned>{1}));
    ASSERT_EQ(p.ports.size(), 1u);
    EXPECT_EQ(p.ports[0].name, "lan0");
    EXPECT_EQ(p.ports[0].device, "net_af_packet0");
    EXPECT_EQ(format_ipv4(p.ports[0].ipv4), "198.18.0.1");
    EXPECT_EQ(p.ports[0].prefix_len, 24u);
    ASSERT_TRUE(p.ports[0].mac.has_value());
    EXPECT_EQ(*p.ports[0].mac, (std::array<uint8_t, 6>{0x02, 0x53, 0x54, 0x00, 0x00, 0x01}));
    EXPECT_EQ(p.ports[0].mtu, 1500u);
    EXPECT_EQ(p.ingress.udp_port_min, 40000u);
    EXPECT_EQ(p.ingress.udp_port_max, 40999u);
    EXPECT_TRUE(p.ingress.require_ssrc) << "an SSRC is mandatory unless a profile says otherwise";
    EXPECT_EQ(p.api.listen_addr, "127.0.0.1");
    EXPECT_EQ(p.api.listen_port, 8080u);
    EXPECT_EQ(p.api.token, "dev-token-change-me-please");
    ASSERT_EQ(p.sessions.size(), 1u);
    const auto& s = p.sessions[0];
    EXPECT_EQ(s.id, 1u);
    EXPECT_EQ(s.name, "demo");
    EXPECT_EQ(s.udp_port, 40000u);
    ASSERT_EQ(s.speakers.size(), 1u);
    EXPECT_EQ(format_ipv4(s.speakers[0].ip), "198.18.0.10");
    EXPECT_EQ(s.speakers[0].port, 5004u);
    EXPECT_EQ(s.speakers[0].ssrc, std::optional<uint32_t>(1234));
    ASSERT_EQ(s.listeners.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(format_ipv4(s.listeners[i].ip), "198.18.0.2" + std::to_string(i + 1));
        EXPECT_EQ(s.listeners[i].port, 5004u);
        EXPECT_EQ(s.listeners[i].tier, 0u);
    }
}

// Relays that share a machine's cores sleep when idle; bare-metal profiles
// own their cores and keep polling (issue 13 item 7).
TEST(ConfigProfiles, DevProfilesSleepWhenIdleBareMetalOnesPoll) {
    for (const auto& f : shipped_profiles()) {
        SCOPED_TRACE(f.string());
        const auto p = load_profile(f.string());
        const auto name = f.filename().string();
        if (name.rfind("dev-", 0) == 0 || name.rfind("fleet-", 0) == 0) {
            EXPECT_TRUE(p.dataplane.idle_adaptive);
        } else if (name.rfind("lab-", 0) == 0 || name.rfind("edge-", 0) == 0 || name.rfind("bench-", 0) == 0) {
            EXPECT_FALSE(p.dataplane.idle_adaptive);
        }
    }
}

TEST(ConfigAccepts, FleetSectionAndItsDefaults) {
    EXPECT_FALSE(parse(k_base).fleet.enabled) << "no [fleet]: a standalone relay";
    const auto p = parse(k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\", \"http://127.0.0.1:22379\"]\n"
                                  "relay_id = \"edge-1\"\nrole = \"edge\"\nregion = \"eu-west\"\n"
                                  "trunk_peers = [\"10.20.0.0/16\", \"2001:db8:77::/48\", \"198.18.0.7/32\"]\n"
                                  "allow_unauthenticated_trunks = true\n");
    EXPECT_TRUE(p.fleet.enabled);
    EXPECT_EQ(p.fleet.etcd.size(), 2u);
    EXPECT_EQ(p.fleet.prefix, "/stentor");
    EXPECT_EQ(p.fleet.relay_id, "edge-1");
    EXPECT_EQ(p.fleet.role, "edge");
    EXPECT_EQ(p.fleet.region, "eu-west");
    EXPECT_EQ(p.fleet.lease_ttl_s, 2u);
    EXPECT_EQ(p.fleet.refresh_ms, 250u);
    EXPECT_EQ(p.fleet.advertise, (std::vector<uint32_t>{0xc6120001})) << "the ports' addresses by default";
    EXPECT_EQ(p.fleet.drain_s, 10u);
    EXPECT_EQ(p.fleet.trunk_idle_s, 60u);
    EXPECT_EQ(p.fleet.max_trunk_sends_per_session, 64u);
    ASSERT_EQ(p.fleet.trunk_peers.size(), 3u);
    EXPECT_EQ(fleet::format_peer_net(p.fleet.trunk_peers[0]), "10.20.0.0/16");
    EXPECT_EQ(fleet::format_peer_net(p.fleet.trunk_peers[1]), "2001:db8:77::/48") << "either family";
    EXPECT_EQ(fleet::format_peer_net(p.fleet.trunk_peers[2]), "198.18.0.7/32") << "one host";
    const auto q = parse(k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"o1\"\nrole = \"origin\"\n"
                                  "trunk_peers = [\"0.0.0.0/0\"]\nallow_unauthenticated_trunks = true\n"
                                  "advertise = [\"203.0.113.7\"]\nlease_ttl_s = 1\nrefresh_ms = 300\ntrunk_idle_s = 0\ndrain_s = 0\n"
                                  "max_trunk_sends_per_session = 4096\n");
    EXPECT_EQ(q.fleet.max_trunk_sends_per_session, 4096u);
    EXPECT_EQ(q.fleet.advertise, (std::vector<uint32_t>{0xcb007107}));
    EXPECT_EQ(q.fleet.trunk_idle_s, 0u) << "0: never";
    EXPECT_EQ(q.fleet.lease_ttl_s, 1u);
    EXPECT_EQ(q.fleet.drain_s, 0u) << "0: stop without waiting for the listeners to move";
}

TEST(ConfigAccepts, TableSizesUpToTheirCeilings) {
    const auto p = parse(k_base + "[limits]\nmax_sessions = 1048576\nmax_speakers = 1048576\nmax_neighbours = 65536\n");
    EXPECT_EQ(1048576u, p.limits.max_sessions);
    EXPECT_EQ(1048576u, p.limits.max_speakers);
    EXPECT_EQ(65536u, p.limits.max_neighbours);
}

TEST(ConfigAccepts, MbufsThatServeTheirRings) {
    // 1024 RX + 1024 TX descriptors, 2 lcores x 32 (burst) and 2 x 256 (cache): 2624.
    EXPECT_EQ(parse(k_eal + "mbufs = 2624\n" + k_dp + k_port + k_api).eal.mbufs, 2624u);
    EXPECT_EQ(parse(k_eal + "mbufs = 1024\nmbuf_cache = 0\n" + k_dp + "burst = 1\n" + k_port +
                    "rx_desc = 512\ntx_desc = 256\n" + k_api).eal.mbufs, 1024u);
}

TEST(ConfigAccepts, IterationBudget) {
    EXPECT_EQ(parse(k_base).dataplane.iteration_budget, 512u) << "the default";
    EXPECT_EQ(parse(k_eal + k_dp + "iteration_budget = 2048\n" + k_port + k_api).dataplane.iteration_budget, 2048u);
    EXPECT_EQ(parse(k_eal + k_dp + "iteration_budget = 64\n" + k_port + k_api).dataplane.iteration_budget, 64u);
}

TEST(ConfigAccepts, IdleModes) {
    EXPECT_FALSE(parse(k_base).dataplane.idle_adaptive) << "poll is the default";
    EXPECT_EQ(parse(k_base).dataplane.idle_sleep_max_us, 1000u);
    EXPECT_FALSE(parse(k_eal + k_dp + "idle = \"poll\"\n" + k_port + k_api).dataplane.idle_adaptive);
    const auto a = parse(k_eal + k_dp + "idle = \"adaptive\"\nidle_sleep_max_us = 250\n" + k_port + k_api);
    EXPECT_TRUE(a.dataplane.idle_adaptive);
    EXPECT_EQ(a.dataplane.idle_sleep_max_us, 250u);
}

TEST(ConfigProfiles, RealNicProfilesHaveAQueuePerFanoutLcore) {
    for (const char* name : {"lab-x710-10g.toml", "edge-cx6-100g.toml"}) {
        SCOPED_TRACE(name);
        const auto p = load_profile(configs(name));
        EXPECT_TRUE(p.eal.hugepages);
        EXPECT_FALSE(p.eal.pci_allow.empty());
        EXPECT_GE(p.ports[0].tx_queues, p.dataplane.fanout_lcores.size() + p.dataplane.rx_lcores.size());
        EXPECT_TRUE(p.ports[0].gateway.has_value());
    }
    const auto lab = load_profile(configs("lab-x710-10g.toml"));
    EXPECT_EQ(lab.dataplane.fanout_lcores, (std::vector<unsigned>{3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(lab.eal.lcores.size(), 10u);
}

// docs/profiles.md "Validating a profile" shows one refusal word for word:
// the lab profile with too few TX queues. It once showed a message the
// loader had long stopped printing.
TEST(ConfigProfiles, TheDocumentedExampleIsWhatTheLoaderSays) {
    const auto slurp = [](const std::string& path) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    const std::string name = "configs/lab-x710-10g.toml";
    std::string documented;
    std::istringstream doc(slurp(std::string(STENTOR_SOURCE_DIR) + "/docs/profiles.md"));
    for (std::string line; std::getline(doc, line);)
        if (line.rfind(name + ":", 0) == 0) documented = line;
    ASSERT_NE("", documented) << "no example line starting with " << name << ": in docs/profiles.md";
    std::string text = slurp(std::string(STENTOR_SOURCE_DIR) + "/" + name);
    const auto at = text.find("\ntx_queues = 9\n");
    ASSERT_NE(std::string::npos, at);
    text.replace(at, 15, "\ntx_queues = 6\n");
    try {
        parse_profile(text, name);
        FAIL() << "accepted";
    } catch (const config_error& e) {
        EXPECT_EQ(documented, e.what());
    }
}

TEST(ConfigProfiles, MissingFileNamesThePath) {
    try {
        load_profile("/nonexistent/stentor.toml");
        FAIL() << "no error";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/stentor.toml:1:1: file: cannot open"),
                  std::string::npos)
            << e.what();
    }
}

// ---------------------------------------------------------------------------
// Lcore lists

std::vector<unsigned> lcores_of(const std::string& spec) {
    const auto p = parse("[eal]\nlcores = " + spec + "\nvdevs = [\"net_null0\"]\n" +
                         "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\n" + k_port + k_api);
    return p.eal.lcores;
}

TEST(ConfigLcores, RangeStrings) {
    EXPECT_EQ(lcores_of("\"0-3,6\""), (std::vector<unsigned>{0, 1, 2, 3, 6}));
    EXPECT_EQ(lcores_of("\"0-1\""), (std::vector<unsigned>{0, 1}));
    EXPECT_EQ(lcores_of("\" 0 , 1-2 \""), (std::vector<unsigned>{0, 1, 2}));
    EXPECT_EQ(lcores_of("\"1,0\""), (std::vector<unsigned>{1, 0}));
    EXPECT_EQ(lcores_of("\"0-1,127\""), (std::vector<unsigned>{0, 1, 127}));
    EXPECT_EQ(lcores_of("[0, 1, 5]"), (std::vector<unsigned>{0, 1, 5}));
}

TEST(ConfigLcores, RolesAcceptRangeStrings) {
    const auto p = parse("[eal]\nlcores = \"0-9\"\nvdevs = [\"net_null0\"]\n"
                         "[dataplane]\nrx_lcores = \"1-2\"\nfanout_lcores = \"3-9\"\n"
                         "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n"
                         "rx_queues = 2\ntx_queues = 9\n" +
                         k_api);
    EXPECT_EQ(p.dataplane.rx_lcores, (std::vector<unsigned>{1, 2}));
    EXPECT_EQ(p.dataplane.fanout_lcores.size(), 7u);
}

// ---------------------------------------------------------------------------
// Accepted corner cases

TEST(ConfigAccepts, RecordingDir) {
    EXPECT_EQ(parse(k_base).recording.dir, "/var/lib/stentor/recordings");
    EXPECT_EQ(parse(k_base + "[recording]\ndir = \"/srv/rec\"\n").recording.dir, "/srv/rec");
}

// Issue 10 item 2: the recorder's and the mixer's caps per SSRC.
TEST(ConfigAccepts, RecorderAndMixerCaps) {
    const auto d = parse(k_base);
    EXPECT_EQ(d.recording.max_tracks_per_recording, 32u);
    EXPECT_EQ(d.recording.max_tracks, 1024u);
    EXPECT_EQ(d.mixer.max_decoders_per_session, 16u);
    const auto p = parse(k_base + "[mixer]\nmax_decoders_per_session = 4\n"
                                  "[recording]\nmax_tracks_per_recording = 8\nmax_tracks = 100\n");
    EXPECT_EQ(p.recording.max_tracks_per_recording, 8u);
    EXPECT_EQ(p.recording.max_tracks, 100u);
    EXPECT_EQ(p.mixer.max_decoders_per_session, 4u);
}

TEST(ConfigAccepts, JournalOffByDefaultAndItsKeys) {
    const auto off = parse(k_base).journal;
    EXPECT_EQ(off.dir, "");
    EXPECT_TRUE(off.fsync);
    EXPECT_EQ(off.compact_mib, 64u);
    const auto on = parse(k_base + "[journal]\ndir = \"/var/lib/stentor/journal\"\nfsync = false\ncompact_mib = 8\n").journal;
    EXPECT_EQ(on.dir, "/var/lib/stentor/journal");
    EXPECT_FALSE(on.fsync);
    EXPECT_EQ(on.compact_mib, 8u);
    EXPECT_EQ(parse(k_base + "[journal]\ndir = \"\"\n").journal.dir, "");
}

TEST(ConfigAccepts, CaptureDefaultsAndPdumpWithHugepages) {
    const auto d = parse(k_base).capture;
    EXPECT_EQ(d.dir, "/var/lib/stentor/captures");
    EXPECT_FALSE(d.pdump);
    EXPECT_EQ(d.max_packets, 100000u);
    EXPECT_EQ(d.max_seconds, 60u);
    EXPECT_EQ(d.max_mib, 64u);
    const auto p = parse("[eal]\nlcores = [0, 1]\nhugepages = true\nvdevs = [\"net_null0\"]\n" + k_dp + k_port + k_api +
                         "[capture]\ndir = \"/srv/cap\"\npdump = true\nmax_packets = 10\nmax_seconds = 5\nmax_mib = 2\n"
                         "ring_size = 256\nmbufs = 511\nkeep = 3\n");
    EXPECT_TRUE(p.capture.pdump);
    EXPECT_EQ(p.capture.dir, "/srv/cap");
    EXPECT_EQ(p.capture.max_packets, 10u);
    EXPECT_EQ(p.capture.max_seconds, 5u);
    EXPECT_EQ(p.capture.max_mib, 2u);
    EXPECT_EQ(p.capture.ring_size, 256u);
    EXPECT_EQ(p.capture.mbufs, 511u);
    EXPECT_EQ(p.capture.keep, 3u);
}

TEST(ConfigAccepts, PciWithoutHugepages) {
    const auto p = parse("[eal]\nlcores = [0, 1]\nhugepages = false\npci_allow = [\"0000:3b:00.0\"]\n" +
                         k_dp +
                         "[[port]]\nname = \"p0\"\ndevice = \"0000:3b:00.0\"\nipv4 = \"198.18.0.1/24\"\n" +
                         k_api);
    EXPECT_FALSE(p.eal.hugepages);
    EXPECT_EQ(p.ports[0].device, "0000:3b:00.0");
}

TEST(ConfigAccepts, ApiDisabledNeedsNoToken) {
    const auto p = parse(k_eal + k_dp + k_port + "[api]\nlisten = \"127.0.0.1:0\"\n");
    EXPECT_EQ(p.api.listen_port, 0u);
    EXPECT_TRUE(p.api.token.empty());
}

TEST(ConfigAccepts, VdevWithArgumentsMatchesByName) {
    const auto p = parse("[eal]\nlcores = [0, 1]\nvdevs = [\"net_af_packet0,iface=x\", \"net_null0\"]\n" +
                         k_dp + k_port + k_api);
    EXPECT_EQ(p.eal.vdevs.size(), 2u);
}

TEST(ConfigAccepts, OffLinkListenerBehindGateway) {
    const auto p = parse(k_eal + k_dp + k_port + "gateway = \"198.18.0.254\"\ngateway_learnt = true\n" + k_api +
                         k_session + listener("203.0.113.5"));
    EXPECT_EQ(p.sessions[0].listeners.size(), 1u);
}

TEST(ConfigAccepts, InlineArraysOfTables) {
    const auto p = parse(k_eal + k_dp + k_port + k_api +
                         "[[session]]\nid = 7\nudp_port = 40007\nmode = \"mix\"\n"
                         "speaker = [{ ip = \"198.18.0.10\", port = 5004, ssrc = 4294967295 }]\n"
                         "listener = [{ ip = \"198.18.0.21\", port = 5004, tier = 3 },"
                         " { ip = \"198.18.0.21\", port = 5006 }]\n");
    ASSERT_EQ(p.sessions.size(), 1u);
    EXPECT_EQ(p.sessions[0].mode, session_mode::mix);
    EXPECT_EQ(p.sessions[0].speakers[0].ssrc, std::optional<uint32_t>(4294967295u));
    EXPECT_EQ(p.sessions[0].listeners.size(), 2u);
    EXPECT_EQ(p.sessions[0].listeners[0].tier, 3u);
}

TEST(ConfigAccepts, UnknownKeyInInlineTableIsRefused) {
    EXPECT_NE(error_of(k_eal + k_dp + k_port + k_api +
                       "[[session]]\nid = 7\nudp_port = 40007\n"
                       "listener = [{ ip = \"198.18.0.21\", port = 5004, teir = 3 }]\n")
                  .find("t.toml:17:48: session[0].listener[0].teir: unknown setting"),
              std::string::npos);
}

TEST(ConfigBase, LargestMtuThatOneMbufHoldsLoads) {
    // 2022 + 14 (Ethernet) + 4 (FCS) + 8 (two VLAN tags) = 2048: one mbuf.
    EXPECT_EQ(2022u, parse(k_eal + k_dp + k_port + "mtu = 2022\n" + k_api).ports.at(0).mtu);
}

TEST(ConfigBase, RequireSsrcFalseLetsOnlyPlainForwardSpeakersGoWithout) {
    const auto p = parse(k_base + "[ingress]\nrequire_ssrc = false\n" + k_session + k_speaker_no_ssrc);
    EXPECT_FALSE(p.ingress.require_ssrc);
    ASSERT_EQ(p.sessions.at(0).speakers.size(), 1u);
    EXPECT_FALSE(p.sessions[0].speakers[0].ssrc.has_value());
    // Recorded and mixed sessions still need one: error rows ssrc_required_*.
}

// ---------------------------------------------------------------------------
// [join]: key files on disk (docs/join.md "Keys"). The rows that need no
// file are in error_rows() below.

class ConfigJoin : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/stentor-join-keys.XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }

    std::string file(const std::string& name, const std::string& content, mode_t mode = 0600) {
        const std::string path = dir + "/" + name;
        FILE* f = std::fopen(path.c_str(), "wb");
        EXPECT_NE(nullptr, f);
        if (f != nullptr) {
            std::fwrite(content.data(), 1, content.size(), f);
            std::fclose(f);
        }
        EXPECT_EQ(0, chmod(path.c_str(), mode));
        return path;
    }

    // [join] with one key per (id, path), then `extra` lines; [join] is line 13.
    static std::string join_section(const std::vector<std::pair<int, std::string>>& keys, const std::string& extra = "") {
        std::string t = k_base + "[join]\n" + extra + "keys = [\n";
        for (const auto& [id, path] : keys)
            t += "  { id = " + std::to_string(id) + ", secret_file = \"" + path + "\" },\n";
        return t + "]\n";
    }

    std::string dir;
};

const std::string hex_a = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

// stentor-director's profile: [fleet] (etcd only), [join] as the relays
// have it, [director].
TEST_F(ConfigJoin, DirectorProfileLoadsAndRefusesNamingFileLineAndSetting) {
    const auto key = file("k1", hex_a);
    const std::string fleet = "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\n";
    const std::string join = "[join]\nkeys = [{ id = 4, secret_file = \"" + key + "\" }]\n";
    const std::string dir = "[director]\ndirector_id = \"d1\"\ntoken = \"0123456789abcdef\"\n";
    const auto d = parse_director_profile(fleet + join + dir + "stale_s = 5\nlisten = \"127.0.0.1:9000\"\n", "d.toml");
    EXPECT_EQ(d.fleet.etcd, (std::vector<std::string>{"http://127.0.0.1:2379"}));
    EXPECT_EQ(d.join.mint_key_id, 4u);
    EXPECT_EQ(d.director.director_id, "d1");
    EXPECT_EQ(d.director.stale_s, 5u);
    EXPECT_EQ(d.director.listen_port, 9000u);
    EXPECT_EQ(d.director.hold_ms, 3000u);
    struct row {
        std::string text;
        std::string error;
    };
    const row rows[] = {
        {join + dir, "d.toml:1:1: fleet: required section is missing"},
        {fleet + dir, "d.toml:1:1: join.keys: required: a director mints join tokens"},
        {fleet + join + "[director]\ntoken = \"0123456789abcdef\"\n", "d.toml:5:1: director.director_id: required"},
        {fleet + join + "[director]\ndirector_id = \"d1\"\ntoken = \"short\"\n",
         "d.toml:7:9: director.token: must be at least 16 printable characters"},
        {fleet + join + dir + "stale_s = 0\n", "d.toml:8:11: director.stale_s: 0 is out of range 1..3600"},
        {fleet + join + dir + "listen = \"nowhere\"\n", "d.toml:8:10: director.listen: \"nowhere\" is not ADDRESS:PORT"},
        {fleet + "relay_id = \"x\"\n" + join + dir, "d.toml:3:1: fleet.relay_id: unknown setting"},
        {fleet + join + dir + "[limits]\n", "d.toml:8:2: limits: unknown setting"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.error);
        try {
            parse_director_profile(r.text, "d.toml");
            ADD_FAILURE() << "accepted";
        } catch (const config_error& e) {
            EXPECT_EQ(std::string(e.what()).substr(0, r.error.size()), r.error) << e.what();
        }
    }
}
// Bearer tokens in files (api.token_file, director.token_file): secrets
// like the key files (mode 0600, a regular file, an absolute path), the
// error naming the file and the setting. A token written in a profile that
// group or others can read is warned about at start and by --check.
TEST_F(ConfigJoin, TokenFilesAreSecretsAndAnInlineTokenInAReadableProfileIsWarned) {
    const std::string head = k_eal + k_dp + k_port + "[api]\nplain_http = true\n";
    const auto good = file("api.token", "  0123456789abcdef-from-file\n");
    const auto a = parse(head + "token_file = \"" + good + "\"\n").api;
    EXPECT_EQ(a.token, "0123456789abcdef-from-file") << "white space around it ignored";
    EXPECT_EQ(a.token_file, good);
    const auto key = file("k1", hex_a);
    const std::string fleet = "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\n";
    const std::string join = "[join]\nkeys = [{ id = 4, secret_file = \"" + key + "\" }]\n";
    const std::string dir_head = fleet + join + "[director]\ndirector_id = \"d1\"\n";
    const auto d = parse_director_profile(dir_head + "token_file = \"" + good + "\"\n", "d.toml");
    EXPECT_EQ(d.director.token, "0123456789abcdef-from-file");
    struct row {
        const char* what;
        std::string text;
        bool director;
        std::string error;   // contained in the refusal
    };
    const auto loose = file("loose.token", "0123456789abcdef-loose\n", 0644);
    const auto short_tok = file("short.token", "short\n");
    const std::vector<row> rows = {
        {"api token file readable by others", head + "token_file = \"" + loose + "\"\n", false,
         "api.token_file: " + loose + ": readable or writable by group or others (mode 0644); whoever reads it can "
         "manage the relay: chmod 600 it"},
        {"api token and token file", head + "token = \"0123456789abcdef\"\ntoken_file = \"" + good + "\"\n", false,
         "api.token_file: set together with token"},
        {"api token file relative", head + "token_file = \"api.token\"\n", false,
         "api.token_file: \"api.token\" is not an absolute path"},
        {"api token file missing", head + "token_file = \"/nonexistent/api.token\"\n", false,
         "api.token_file: /nonexistent/api.token: cannot open"},
        {"api token file too short", head + "token_file = \"" + short_tok + "\"\n", false,
         "api.token_file: the API token (" + short_tok + ") must be at least 16 characters"},
        {"director token file readable by others", dir_head + "token_file = \"" + loose + "\"\n", true,
         "director.token_file: " + loose + ": readable or writable by group or others (mode 0644)"},
        {"director without a token", dir_head, true, "director.token: required (or token_file)"},
        {"director in clear off loopback", dir_head + "token = \"0123456789abcdef\"\nlisten = \"0.0.0.0:18090\"\n", true,
         "director.listen: the director on 0.0.0.0:18090 needs HTTPS (director.tls_cert and director.tls_key)"},
        {"director plain_http off loopback",
         dir_head + "token = \"0123456789abcdef\"\nlisten = \"0.0.0.0:18090\"\nplain_http = true\n", true,
         "director.plain_http: plain HTTP only on a loopback address (127.0.0.0/8): 0.0.0.0 is reachable"},
        {"director key without certificate", dir_head + "token = \"0123456789abcdef\"\ntls_key = \"" + good + "\"\n",
         true, "director.tls_key: set together with director.tls_cert"},
        {"director header timeout 0", dir_head + "token = \"0123456789abcdef\"\nheader_timeout_s = 0\n", true,
         "director.header_timeout_s: 0 is out of range 1..3600"},
        {"director per address over total",
         dir_head + "token = \"0123456789abcdef\"\nmax_connections = 4\nmax_connections_per_ip = 5\n", true,
         "director.max_connections_per_ip: 5 is greater than director.max_connections 4"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        std::string err = "(accepted)";
        try {
            if (r.director) parse_director_profile(r.text, "d.toml");
            else parse(r.text);
        } catch (const config_error& e) {
            err = e.what();
        }
        EXPECT_NE(std::string::npos, err.find(r.error)) << err;
    }
    // The warning: an inline token in a profile of mode 0644, not 0600,
    // never with token_file.
    const auto inline_profile = file("relay.toml", k_base, 0644);
    auto warned = [](const std::vector<host_finding>& v) {
        for (const auto& f : v)
            if (f.key == "api.token" && f.message.find("which group or others can read") != std::string::npos &&
                f.message.find("api.token_file") != std::string::npos)
                return true;
        return false;
    };
    EXPECT_TRUE(warned(profile_warnings(load_profile(inline_profile))));
    ASSERT_EQ(0, chmod(inline_profile.c_str(), 0600));
    EXPECT_FALSE(warned(profile_warnings(load_profile(inline_profile))));
    const auto file_profile = file("relay-file.toml", head + "token_file = \"" + good + "\"\n", 0644);
    EXPECT_FALSE(warned(profile_warnings(load_profile(file_profile))));
    const auto dir_profile = file("director.toml", dir_head + "token = \"0123456789abcdef\"\n", 0644);
    const auto dw = director_profile_warnings(load_director_profile(dir_profile));
    ASSERT_EQ(1u, dw.size());
    EXPECT_EQ(0u, dw[0].rfind("director.token: written in " + dir_profile + " (mode 0644)", 0)) << dw[0];
    ASSERT_EQ(0, chmod(dir_profile.c_str(), 0600));
    EXPECT_TRUE(director_profile_warnings(load_director_profile(dir_profile)).empty());
}

// What the loaders read (stentord -c, --check, SIGHUP, stentor-director):
// only a regular file of at most max_profile_bytes. Before, /dev/zero, a
// FIFO or a huge file was read without bound (until memory ran out, or for
// ever); now each is refused as FILE:1:1: file: ..., devices and FIFOs
// without being opened, a large file without being read.
class ConfigProfileFile : public ConfigJoin {};

TEST_F(ConfigProfileFile, OnlyARegularFileOfAtMostOneMiBIsRead) {
    ASSERT_EQ(std::size_t{1} << 20, max_profile_bytes);
    // k_base and one comment line, `n` bytes in all.
    const auto padded = [](std::size_t n) {
        std::string t = k_base + "#";
        t.append(n - t.size() - 1, 'x');
        return t + "\n";
    };
    const std::string fifo = dir + "/fifo.toml";
    ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
    const std::string sparse = file("sparse.toml", k_base);
    ASSERT_EQ(0, truncate(sparse.c_str(), off_t{1} << 30));   // 1 GiB, all holes: never read
    const std::string link = dir + "/link.toml";
    ASSERT_EQ(0, symlink(file("ok.toml", k_base).c_str(), link.c_str()));
    const std::string big = file("big.toml", padded(max_profile_bytes + 1));
    const std::string most = file("most.toml", padded(max_profile_bytes));
    const std::string regular = "; give a profile file (a regular file of at most 1048576 bytes)";
    struct row {
        const char* what;
        std::string path;
        std::string error;   // "" = loads
    };
    const row rows[] = {
        {"zeros without end", "/dev/zero", "/dev/zero:1:1: file: is a character device" + regular},
        {"random bytes without end", "/dev/urandom", "/dev/urandom:1:1: file: is a character device" + regular},
        {"/dev/null: a device, not an empty profile", "/dev/null", "/dev/null:1:1: file: is a character device" + regular},
        {"a FIFO: never opened (that would wait for a writer)", fifo, fifo + ":1:1: file: is a FIFO" + regular},
        {"a directory", dir, dir + ":1:1: file: is a directory; give a profile file"},
        {"one byte past 1 MiB", big,
         big + ":1:1: file: larger than 1048576 bytes (1 MiB): not a profile (the shipped ones are a few KiB)"},
        {"a 1 GiB file: refused by its size", sparse, sparse + ":1:1: file: larger than 1048576 bytes (1 MiB)"},
        {"missing", dir + "/none.toml", dir + "/none.toml:1:1: file: cannot open: No such file or directory"},
        {"exactly 1 MiB: read", most, ""},
        {"a symlink to a profile: read", link, ""},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        std::string text = "(untouched)";
        try {
            const auto p = load_profile(r.path, &text);
            EXPECT_EQ("", r.error) << "loaded";
            EXPECT_EQ(p.path, r.path);
            EXPECT_EQ(r.path == most ? max_profile_bytes : k_base.size(), text.size());
        } catch (const config_error& e) {
            EXPECT_EQ(0u, std::string(e.what()).rfind(r.error, 0)) << e.what();
            EXPECT_NE("", r.error);
            EXPECT_EQ("(untouched)", text);
        }
        if (r.error.empty()) continue;
        // A director's profile goes through the same door.
        try {
            load_director_profile(r.path);
            ADD_FAILURE() << "director profile loaded";
        } catch (const config_error& e) {
            EXPECT_EQ(0u, std::string(e.what()).rfind(r.error, 0)) << e.what();
        }
    }
}

// [fleet]'s access to etcd with files on disk (docs/fleet.md "Running etcd
// securely"): certificates made once with the openssl CLI, then each bad
// file refused naming file, line and setting; relays and directors alike.
class ConfigEtcdAccess : public ConfigJoin {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/stentor-etcd-pki.XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        pki = tmpl;
        const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 ";
        const std::string q = " >/dev/null 2>&1";
        ASSERT_EQ(0, std::system(("openssl req -x509" + ec + "-keyout " + pki + "/ca.key -out " + pki +
                                  "/ca.crt -subj /CN=ca" + q).c_str()));
        // Client certificates without a Common Name (etcd's gateway refuses
        // one that has one when users are on), and one with.
        for (const char* n : {"a", "b"})
            ASSERT_EQ(0, std::system(("openssl req -x509" + ec + "-keyout " + pki + "/" + n + ".key -out " + pki + "/" +
                                      n + ".crt -subj /O=stentor/OU=relay-" + n + q).c_str()));
        ASSERT_EQ(0, std::system(("openssl req -x509" + ec + "-keyout " + pki + "/cn.key -out " + pki +
                                  "/cn.crt -subj /CN=relay-cn" + q).c_str()));
    }
    static void TearDownTestSuite() { std::filesystem::remove_all(pki); }

    static std::string slurp(const std::string& path) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    // A copy of a PKI file in the test's dir with `mode`.
    std::string copy(const std::string& name, const std::string& as, mode_t mode = 0600) {
        return file(as, slurp(pki + "/" + name), mode);
    }
    // [fleet] on line 14, etcd on 15; then `lines` from line 18 on.
    static std::string fleet(const std::string& lines, const std::string& url = "https://127.0.0.1:2379") {
        return k_base + "[fleet]\netcd = [\"" + url + "\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n" + lines +
               "trunk_peers = [\"198.18.0.0/24\"]\nallow_unauthenticated_trunks = true\n";
    }
    // [fleet] on line 14 over plain HTTP to loopback, trunk_peers on 18;
    // then `lines` from line 19 on (the trunk key's settings).
    static std::string trunks(const std::string& lines) {
        return k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n"
                        "trunk_peers = [\"198.18.0.0/24\"]\n" + lines;
    }
    static std::string kv(const std::string& k, const std::string& v) { return k + " = \"" + v + "\"\n"; }

    static inline std::string pki;
};

TEST_F(ConfigEtcdAccess, TlsClientCertificateAndUserLoad) {
    const auto ca = copy("ca.crt", "ca.crt", 0644), crt = copy("a.crt", "a.crt", 0644), key = copy("a.key", "a.key");
    const auto pw = file("pw", "  s3cret pass\n");
    const auto p = parse(fleet(kv("etcd_ca", ca) + kv("etcd_cert", crt) + kv("etcd_key", key) + kv("etcd_user", "stentor") +
                               kv("etcd_password_file", pw)));
    const auto& a = p.fleet.etcd.access;
    EXPECT_EQ(p.fleet.etcd, (std::vector<std::string>{"https://127.0.0.1:2379"}));
    EXPECT_EQ(a.ca_file, ca);
    EXPECT_EQ(a.cert_file, crt);
    EXPECT_EQ(a.key_file, key);
    EXPECT_EQ(a.user, "stentor");
    ASSERT_TRUE(a.password);
    EXPECT_EQ(*a.password, "s3cret pass") << "the line, surrounding whitespace trimmed";
    EXPECT_EQ(p.fleet.etcd_password_file, pw);
    EXPECT_FALSE(p.fleet.allow_plaintext);
    // TLS alone, a user alone (on loopback), plain HTTP elsewhere said explicitly.
    EXPECT_TRUE(parse(fleet(kv("etcd_ca", ca))).fleet.etcd.access.user.empty());
    EXPECT_EQ(parse(fleet(kv("etcd_user", "u") + kv("etcd_password_file", pw), "http://127.0.0.1:2379"))
                  .fleet.etcd.access.user, "u");
    EXPECT_EQ(error_of(fleet("allow_plaintext = true\n", "http://10.0.0.5:2379")), "(no error)");
    EXPECT_EQ(error_of(fleet("", "http://localhost:2379")), "(no error)");
    EXPECT_EQ(error_of(fleet("", "http://[::1]:2379")), "(no error)");
    // The director's profile takes the same settings.
    const auto hexkey = file("k1", hex_a);
    const auto d = parse_director_profile("[fleet]\netcd = [\"https://etcd-1:2379\"]\n" + kv("etcd_ca", ca) +
                                              kv("etcd_cert", crt) + kv("etcd_key", key) + kv("etcd_user", "director") +
                                              kv("etcd_password_file", pw) + "[join]\nkeys = [{ id = 4, secret_file = \"" +
                                              hexkey + "\" }]\n[director]\ndirector_id = \"d1\"\ntoken = \"0123456789abcdef\"\n",
                                          "d.toml");
    EXPECT_EQ(d.fleet.etcd.access.user, "director");
    EXPECT_EQ(d.fleet.etcd.access.key_file, key);
    try {
        parse_director_profile("[fleet]\netcd = [\"http://10.1.1.1:2379\"]\n[join]\nkeys = [{ id = 4, secret_file = \"" +
                                   hexkey + "\" }]\n[director]\ndirector_id = \"d1\"\ntoken = \"0123456789abcdef\"\n",
                               "d.toml");
        ADD_FAILURE() << "plain HTTP to another host accepted";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("d.toml:2:9: fleet.etcd[0]: \"http://10.1.1.1:2379\" is plain HTTP"),
                  std::string::npos) << e.what();
    }
}

TEST_F(ConfigEtcdAccess, BadFilesAreRefusedNamingFileLineAndSetting) {
    const auto ca = copy("ca.crt", "ca.crt", 0644), crt = copy("a.crt", "a.crt", 0644), key = copy("a.key", "a.key");
    const auto pw = file("pw", "s3cret\n");
    const std::string c = kv("etcd_ca", ca);
    struct row {
        const char* name;
        std::string toml;
        std::string expect;
    };
    std::vector<row> rows = {
        {"CA not PEM", fleet(kv("etcd_ca", file("junk.crt", "hello\n", 0644))),
         "t.toml:18:11: fleet.etcd_ca: " + dir + "/junk.crt: no PEM certificate in the file"},
        {"CA empty", fleet(kv("etcd_ca", file("empty.crt", "", 0644))), "t.toml:18:11: fleet.etcd_ca: " + dir + "/empty.crt: empty"},
        {"CA a directory", fleet(kv("etcd_ca", dir)), "t.toml:18:11: fleet.etcd_ca: " + dir + ": not a regular file"},
        {"certificate without key", fleet(c + kv("etcd_cert", crt)),
         "t.toml:19:13: fleet.etcd_cert: set together with fleet.etcd_key (its private key)"},
        {"key without certificate", fleet(c + kv("etcd_key", key)),
         "t.toml:19:12: fleet.etcd_key: set together with fleet.etcd_cert (the certificate it belongs to)"},
        {"key group-readable", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", copy("a.key", "g.key", 0640))),
         "t.toml:20:12: fleet.etcd_key: " + dir + "/g.key: readable or writable by group or others (mode 0640)"},
        {"key world-readable", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", copy("a.key", "w.key", 0644))), "(mode 0644)"},
        {"key of another certificate", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", copy("b.key", "b.key"))),
         "t.toml:20:12: fleet.etcd_key: " + dir + "/b.key: is not the private key of the certificate in fleet.etcd_cert"},
        {"certificate not PEM", fleet(c + kv("etcd_cert", file("junk.pem", "junk\n", 0644)) + kv("etcd_key", key)),
         "t.toml:19:13: fleet.etcd_cert: " + dir + "/junk.pem: not a PEM certificate"},
        {"key not PEM", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", file("junk.key", "junk\n"))),
         "t.toml:20:12: fleet.etcd_key: " + dir + "/junk.key: not a PEM private key"},
        {"key missing", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", dir + "/none.key")),
         "t.toml:20:12: fleet.etcd_key: " + dir + "/none.key: cannot open: No such file or directory"},
        {"key relative", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", "a.key")),
         "t.toml:20:12: fleet.etcd_key: \"a.key\" is not an absolute path"},
        {"certificate with a Common Name, with a user",
         fleet(c + kv("etcd_cert", copy("cn.crt", "cn.crt", 0644)) + kv("etcd_key", copy("cn.key", "cn.key")) +
               kv("etcd_user", "u") + kv("etcd_password_file", pw)),
         "t.toml:19:13: fleet.etcd_cert: " + dir + "/cn.crt: has a Common Name (\"relay-cn\"): etcd with "
         "--client-cert-auth and users refuses it at its JSON gateway"},
        {"password group-readable", fleet(c + kv("etcd_user", "u") + kv("etcd_password_file", file("gpw", "x\n", 0640))),
         "t.toml:20:22: fleet.etcd_password_file: " + dir +
             "/gpw: readable or writable by group or others (mode 0640); whoever reads it can write the fleet's registry "
             "as this relay: chmod 600 it"},
        {"password empty", fleet(c + kv("etcd_user", "u") + kv("etcd_password_file", file("epw", " \n"))),
         "t.toml:20:22: fleet.etcd_password_file: " + dir + "/epw: empty: no password in it"},
        {"password on two lines", fleet(c + kv("etcd_user", "u") + kv("etcd_password_file", file("2pw", "one\ntwo\n"))),
         "t.toml:20:22: fleet.etcd_password_file: " + dir + "/2pw: holds a control character (a second line?)"},
        {"password larger than a key file", fleet(c + kv("etcd_user", "u") + kv("etcd_password_file", file("bpw", std::string(5000, 'p')))),
         "/bpw: larger than 4096 bytes"},
    };
    // Owned by another user: only root can make such a file here.
    if (::geteuid() == 0) {
        const auto other_key = copy("a.key", "o.key"), other_pw = file("opw", "x\n");
        EXPECT_EQ(0, ::chown(other_key.c_str(), 65534, 65534));
        EXPECT_EQ(0, ::chown(other_pw.c_str(), 65534, 65534));
        rows.push_back({"key owned by another user", fleet(c + kv("etcd_cert", crt) + kv("etcd_key", other_key)),
                        "t.toml:20:12: fleet.etcd_key: " + other_key +
                            ": owned by uid 65534, neither the user this runs as (uid 0) nor root: whoever owns it can "
                            "rewrite it; chown it"});
        rows.push_back({"password owned by another user", fleet(c + kv("etcd_user", "u") + kv("etcd_password_file", other_pw)),
                        "t.toml:20:22: fleet.etcd_password_file: " + other_pw + ": owned by uid 65534"});
    }
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        const auto msg = error_of(r.toml);
        EXPECT_NE(msg.find(r.expect), std::string::npos) << "got:      " << msg << "\nexpected: " << r.expect;
    }
    EXPECT_EQ(error_of(fleet(c + kv("etcd_cert", crt) + kv("etcd_key", key) + kv("etcd_user", "u") +
                             kv("etcd_password_file", pw))),
              "(no error)");
    EXPECT_EQ(error_of(fleet(c + kv("etcd_cert", copy("cn.crt", "cn2.crt", 0644)) + kv("etcd_key", copy("cn.key", "cn2.key")))),
              "(no error)")
        << "a Common Name is fine without users (etcd then checks only the chain)";
}

const std::string hex_b = "F0E1D2C3B4A5968778695A4B3C2D1E0F00112233445566778899AABBCCDDEEFF";

std::vector<uint8_t> bytes_of(const std::string& hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    return out;
}

// [fleet] trunk_key_file, allow_unauthenticated_trunks (docs/fleet.md
// "Trunk authentication"): required one way or the other, the file read
// like the etcd password, its key never in a message.
TEST_F(ConfigEtcdAccess, TrunkKeyFileIsRequiredUnlessTrunksAreSaidUnauthenticated) {
    const auto good = file("trunk.key", hex_a + "\n");
    const auto p = parse(trunks(kv("trunk_key_file", good)));
    ASSERT_TRUE(p.fleet.trunk_key);
    EXPECT_EQ(std::vector<uint8_t>(p.fleet.trunk_key->data(), p.fleet.trunk_key->data() + p.fleet.trunk_key->size()),
              bytes_of(hex_a));
    EXPECT_EQ(p.fleet.trunk_key_file, good);
    EXPECT_FALSE(p.fleet.allow_unauthenticated_trunks);
    const auto off = parse(trunks("allow_unauthenticated_trunks = true\n"));
    EXPECT_FALSE(off.fleet.trunk_key) << "said explicitly: trunks unauthenticated";
    EXPECT_TRUE(off.fleet.allow_unauthenticated_trunks);
    EXPECT_FALSE(parse(k_base).fleet.trunk_key) << "no [fleet]: nothing required";
    // stentord --check and the start-up log say so when trunks are not authenticated.
    const auto warns_unauthenticated = [](const profile& q) {
        for (const auto& f : profile_warnings(q))
            if (f.key == "fleet.allow_unauthenticated_trunks" && f.message.find("trunk_key_file") != std::string::npos)
                return true;
        return false;
    };
    EXPECT_TRUE(warns_unauthenticated(off));
    EXPECT_FALSE(warns_unauthenticated(p));
    EXPECT_FALSE(warns_unauthenticated(parse(k_base)));
    struct row {
        const char* name;
        std::string toml;
        std::string expect;
    };
    std::vector<row> rows = {
        {"neither", trunks(""),
         "t.toml:14:1: fleet.trunk_key_file: required setting is missing: the file holding the fleet's trunk key "
         "(32 random bytes as 64 hex digits, the same file on every relay, mode 0600: openssl rand -hex 32), without "
         "which whoever can send from an origin's address puts audio into every listener of its edges; or say "
         "fleet.allow_unauthenticated_trunks = true"},
        {"allow said false", trunks("allow_unauthenticated_trunks = false\n"),
         "t.toml:14:1: fleet.trunk_key_file: required setting is missing"},
        {"both", trunks(kv("trunk_key_file", good) + "allow_unauthenticated_trunks = true\n"),
         "t.toml:20:32: fleet.allow_unauthenticated_trunks: true, but fleet.trunk_key_file is set: trunks are "
         "authenticated with its key; keep one of the two"},
        {"allow not a bool", trunks("allow_unauthenticated_trunks = \"yes\"\n"),
         "t.toml:19:32: fleet.allow_unauthenticated_trunks: "},
        {"relative", trunks(kv("trunk_key_file", "trunk.key")),
         "t.toml:19:18: fleet.trunk_key_file: \"trunk.key\" is not an absolute path"},
        {"empty path", trunks(kv("trunk_key_file", "")), "t.toml:19:18: fleet.trunk_key_file: \"\" is not an absolute path"},
        {"missing", trunks(kv("trunk_key_file", dir + "/none.key")),
         "t.toml:19:18: fleet.trunk_key_file: " + dir + "/none.key: cannot open: No such file or directory"},
        {"a directory", trunks(kv("trunk_key_file", dir)), "t.toml:19:18: fleet.trunk_key_file: " + dir + ": not a regular file"},
        {"a device", trunks(kv("trunk_key_file", "/dev/zero")), "t.toml:19:18: fleet.trunk_key_file: /dev/zero: not a regular file"},
        {"group-readable", trunks(kv("trunk_key_file", file("g.key", hex_a + "\n", 0640))),
         "t.toml:19:18: fleet.trunk_key_file: " + dir +
             "/g.key: readable or writable by group or others (mode 0640); whoever reads it can send audio into every "
             "trunk of the fleet: chmod 600 it"},
        {"world-readable", trunks(kv("trunk_key_file", file("w.key", hex_a + "\n", 0644))), "(mode 0644)"},
        {"empty", trunks(kv("trunk_key_file", file("e.key", "\n"))),
         "t.toml:19:18: fleet.trunk_key_file: " + dir + "/e.key: 0 hex digits; the trunk key is 32 random bytes as 64 hex "
                                                        "digits (e.g. openssl rand -hex 32)"},
        {"31 bytes", trunks(kv("trunk_key_file", file("s.key", hex_a.substr(2) + "\n"))), "/s.key: 62 hex digits"},
        {"two lines", trunks(kv("trunk_key_file", file("2.key", hex_a + "\n" + hex_a + "\n"))),
         "/2.key: byte 65 is not a hex digit: the file holds the fleet's 32 random bytes as 64 hex digits on one line"},
        {"all zero", trunks(kv("trunk_key_file", file("z.key", std::string(64, '0')))), "/z.key: all zero: not a random key"},
        {"larger than a key file", trunks(kv("trunk_key_file", file("b.key", std::string(5000, 'a')))),
         "/b.key: larger than 4096 bytes"},
    };
    if (::geteuid() == 0) {
        const auto other = file("o.key", hex_a + "\n");
        EXPECT_EQ(0, ::chown(other.c_str(), 65534, 65534));
        rows.push_back({"owned by another user", trunks(kv("trunk_key_file", other)),
                        "t.toml:19:18: fleet.trunk_key_file: " + other + ": owned by uid 65534"});
    }
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        const auto msg = error_of(r.toml);
        EXPECT_NE(msg.find(r.expect), std::string::npos) << "got:      " << msg << "\nexpected: " << r.expect;
        EXPECT_EQ(msg.find("0a0b0c0d"), std::string::npos) << "never the key: " << msg;
    }
}

// SIGHUP compares profile texts (changed_settings); a secret file rewritten
// in place changes no text. Before secret_file_changes the reload logged
// "nothing changed" (or applied the live settings beside it) while the API
// kept the old token, the trunks the old key and static sessions the old
// SRTP keys; now each is a changed setting, which reload refuses by name.
TEST_F(ConfigEtcdAccess, SecretFilesRewrittenInPlaceCountAsChangedSettings) {
    const std::string b64_30 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
    const std::string b64_30b = "HR0cGxoZGBcWFRQTEhEQDw4NDAsKCQgHBgUEAwIB";
    const auto token = file("api.token", "0123456789abcdef-first\n");
    const auto trunk = file("trunk.key", hex_a + "\n");
    const auto pw = file("pw", "first password\n");
    const auto skey = file("s.b64", b64_30 + "\n");
    const auto pkey = file("p.b64", b64_30 + "\n");
    const std::string text =
        k_eal + k_dp + k_port + "[api]\nplain_http = true\ntoken_file = \"" + token + "\"\n" +
        "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n"
        "trunk_peers = [\"198.18.0.0/24\"]\n" + kv("trunk_key_file", trunk) + kv("etcd_user", "u") +
        kv("etcd_password_file", pw) +
        "[[session]]\nid = 1\nudp_port = 40000\n"
        "[[session.srtp_key]]\nid = \"s\"\nkey_file = \"" + skey + "\"\n"
        "[[session.speaker]]\nip = \"198.18.0.10\"\nport = 5004\nssrc = 1\n"
        "[[session.speaker.srtp_key]]\nid = \"a\"\nkey_file = \"" + pkey + "\"\n";
    const auto running = parse(text);
    EXPECT_TRUE(secret_file_changes(running, parse(text)).empty()) << "the same files: nothing";
    struct rewrite {
        std::string path, content, changed;
    };
    const rewrite rows[] = {
        {token, "0123456789abcdef-rotated\n", "api.token_file"},
        {trunk, hex_b + "\n", "fleet.trunk_key_file"},
        {pw, "second password\n", "fleet.etcd_password_file"},
        {skey, b64_30b + "\n", "session[0].srtp_key[0].key_file"},
        {pkey, b64_30b + "\n", "session[0].speaker[0].srtp_key[0].key_file"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.changed);
        const auto was = slurp(r.path);
        file(r.path.substr(dir.size() + 1), r.content);
        EXPECT_EQ(std::vector<std::string>{r.changed}, secret_file_changes(running, parse(text)));
        file(r.path.substr(dir.size() + 1), was);
    }
    // Another path is a text change already (changed_settings names it).
    const auto other = file("other.token", "0123456789abcdef-other\n");
    std::string moved = text;
    moved.replace(moved.find(token), token.size(), other);
    EXPECT_TRUE(secret_file_changes(running, parse(moved)).empty());
}

// The API's certificate and key, renewed in place (certbot, then
// `systemctl reload`): served only after a restart, so a SIGHUP names them
// instead of logging "nothing changed" while the old certificate runs out.
TEST_F(ConfigEtcdAccess, RenewedApiCertificateCountsAsChangedSettings) {
    const auto crt = copy("a.crt", "api.crt", 0644), key = copy("a.key", "api.key");
    const std::string text = k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\nlisten = \"0.0.0.0:8443\"\n" +
                             kv("tls_cert", crt) + kv("tls_key", key);
    const auto running = parse(text);
    EXPECT_TRUE(secret_file_changes(running, parse(text)).empty()) << "the same files: nothing";
    copy("b.crt", "api.crt", 0644);
    copy("b.key", "api.key");
    EXPECT_EQ((std::vector<std::string>{"api.tls_cert", "api.tls_key"}), secret_file_changes(running, parse(text)));
}

TEST_F(ConfigJoin, KeysLoadAndTheOnlyOneMints) {
    EXPECT_TRUE(parse(k_base).join.keys.empty()) << "no [join]: no tokens";
    EXPECT_EQ(0u, parse(k_base).join.mint_key_id);
    EXPECT_EQ(3600u, parse(k_base).join.token_ttl_s);
    const auto one = parse(join_section({{7, file("k7", hex_a + "\n")}})).join;
    ASSERT_EQ(1u, one.keys.size());
    EXPECT_EQ(7u, one.keys[0].id);
    EXPECT_EQ(dir + "/k7", one.keys[0].secret_file);
    EXPECT_EQ(bytes_of(hex_a), one.keys[0].secret);
    EXPECT_EQ(7u, one.mint_key_id) << "the only key mints by default";
    EXPECT_EQ(3600u, one.token_ttl_s);
}

TEST_F(ConfigJoin, RotationHoldsSeveralKeysAndNamesTheMintingOne) {
    const std::string long_hex(2048, 'a');   // 1024 bytes, the most
    const auto j = parse(join_section({{1, file("k1", hex_a)}, {2, file("k2", "  " + hex_b + "\r\n", 0400)},
                                       {255, file("k255", "\n" + long_hex + "\n")}},
                                      "mint_key_id = 2\ntoken_ttl_s = 604800\n"))
                       .join;
    ASSERT_EQ(3u, j.keys.size());
    EXPECT_EQ(2u, j.mint_key_id);
    EXPECT_EQ(604800u, j.token_ttl_s);
    EXPECT_EQ(bytes_of(hex_b), j.keys[1].secret) << "upper-case hex, surrounding whitespace";
    EXPECT_EQ(1024u, j.keys[2].secret.size());
    ASSERT_NE(nullptr, j.key(255));
    EXPECT_EQ(nullptr, j.key(3));
    // [[join.keys]] tables, and a symlink to the file (how secret stores mount them).
    const std::string target = file("real", hex_a);
    const std::string link = dir + "/link";
    ASSERT_EQ(0, symlink(target.c_str(), link.c_str()));
    const auto t = parse(k_base + "[[join.keys]]\nid = 3\nsecret_file = \"" + link + "\"\n").join;
    ASSERT_EQ(1u, t.keys.size());
    EXPECT_EQ(bytes_of(hex_a), t.keys[0].secret);
}

TEST_F(ConfigJoin, DedicatedJoinLcoresLoadWithKeys) {
    EXPECT_TRUE(parse(k_base).dataplane.join_lcores.empty()) << "default: RX lcores verify";
    const std::string text = "[eal]\nlcores = \"0-3\"\nvdevs = [\"net_null0\"]\n" + k_dp + "join_lcores = \"2-3\"\n" + k_port +
                             k_api + "[join]\nkeys = [ { id = 1, secret_file = \"" + file("k1", hex_a) + "\" } ]\n";
    const auto p = parse(text);
    EXPECT_EQ((std::vector<unsigned>{2, 3}), p.dataplane.join_lcores);
    EXPECT_EQ(1u, p.ports[0].tx_queues) << "a join lcore never sends: no TX queue of its own";
}

TEST_F(ConfigJoin, BadKeyFilesAreRefusedNamingFileLineAndSetting) {
    const std::string fifo = dir + "/fifo";
    ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
    const std::string subdir = dir + "/sub";
    ASSERT_EQ(0, mkdir(subdir.c_str(), 0700));
    const std::string ok1 = file("ok1", hex_a), ok2 = file("ok2", hex_b);
    struct row {
        const char* name;
        std::string toml;
        std::string expect;
    };
    // keys[0] on line 15, keys[1] on 16; secret_file's value at column 27.
    const std::string at0 = "t.toml:16:27: join.keys[0].secret_file: ", at1 = "t.toml:17:27: join.keys[1].secret_file: ";
    const std::vector<row> rows = {
        {"group-readable", join_section({{1, file("g", hex_a, 0640)}}),
         at0 + dir + "/g: readable or writable by group or others (mode 0640); whoever reads it can mint join tokens: chmod 600 it"},
        {"world-readable", join_section({{1, file("w", hex_a, 0604)}}), at0 + dir + "/w: readable or writable by group or others (mode 0604)"},
        {"group-writable", join_section({{1, file("gw", hex_a, 0620)}}), "(mode 0620)"},
        {"a directory", join_section({{1, subdir}}), at0 + subdir + ": not a regular file"},
        {"a FIFO (must not hang)", join_section({{1, fifo}}), at0 + fifo + ": not a regular file"},
        {"a device (never opened)", join_section({{1, "/dev/null"}}), at0 + "/dev/null: not a regular file"},
        {"empty", join_section({{1, file("e", "")}}), at0 + dir + "/e: the secret is 0 bytes; it must be 32..1024 bytes (64..2048 hex digits)"},
        {"31 bytes", join_section({{1, file("s", hex_a.substr(0, 62))}}), at0 + dir + "/s: the secret is 31 bytes"},
        {"1025 bytes", join_section({{1, file("l", std::string(2050, 'b'))}}), at0 + dir + "/l: the secret is 1025 bytes"},
        {"odd digits", join_section({{1, file("o", hex_a + "a")}}), at0 + dir + "/o: odd number of hex digits (65)"},
        {"not hex", join_section({{1, file("x", "0x" + hex_a)}}),
         at0 + dir + "/x: byte 2 is not a hex digit: the file holds the secret as hex (e.g. openssl rand -hex 32)"},
        {"space inside", join_section({{1, file("sp", hex_a.substr(0, 32) + " " + hex_a.substr(32))}}), "/sp: byte 33 is not a hex digit"},
        {"raw bytes", join_section({{1, file("raw", std::string(32, '\x01'))}}), "/raw: byte 1 is not a hex digit"},
        {"larger than a key file", join_section({{1, file("big", std::string(5000, 'a'))}}), at0 + dir + "/big: larger than 4096 bytes: not a key file"},
        {"missing", join_section({{1, dir + "/none"}}), at0 + dir + "/none: cannot open: No such file or directory"},
        {"duplicate id", join_section({{1, ok1}, {1, ok2}}), "t.toml:17:10: join.keys[1].id: key id 1 is used twice (also join.keys[0])"},
        {"same secret twice", join_section({{1, ok1}, {2, file("copy", hex_a + "\n")}}),
         at1 + dir + "/copy holds the same secret as join.keys[0] (" + ok1 + "): each key id needs its own secret"},
        {"mint key not among them", join_section({{1, ok1}, {2, ok2}}, "mint_key_id = 3\n"),
         "t.toml:15:15: join.mint_key_id: 3 is not the id of one of join.keys (1, 2)"},
        {"two keys and no mint key", join_section({{1, ok1}, {2, ok2}}),
         "t.toml:14:1: join.mint_key_id: required with 2 join.keys: say which one new tokens are signed with"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        const auto msg = error_of(r.toml);
        EXPECT_NE(msg.find(r.expect), std::string::npos) << "got:      " << msg << "\nexpected: " << r.expect;
    }
}

// ---------------------------------------------------------------------------
// Every refusal: TOML text -> expected "file:line:col: setting: what" substring

struct error_row {
    std::string name;
    std::string toml;
    std::string expect;
};

std::vector<error_row> error_rows() {
    const std::string b = k_base;
    const std::string bs = k_base + k_session;  // session table at line 13
    const std::string fl = "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n";
    return {
        // Syntax
        {"syntax", "[eal]\nlcores = [0,\n", "t.toml:2:14: syntax: "},
        {"duplicate_key", "[eal]\nlcores = [0, 1]\nlcores = [0]\n", "t.toml:3:"},
        // Unknown keys at every level
        {"unknown_top", "colour = 1\n" + b, "t.toml:1:1: colour: unknown setting"},
        {"unknown_table", b + "[ingres]\nudp_port_min = 1\n", "t.toml:14:2: ingres: unknown setting"},
        {"unknown_eal", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\"]\nlcore = 3\n" + k_dp + k_port + k_api,
         "t.toml:4:1: eal.lcore: unknown setting"},
        {"unknown_port", k_eal + k_dp + k_port + "nmae = \"x\"\n" + k_api, "t.toml:11:1: port[0].nmae: unknown setting"},
        {"unknown_session", bs + "speakers = 1\n", "t.toml:17:1: session[0].speakers: unknown setting"},
        {"unknown_listener", bs + listener("198.18.0.21") + "prt = 1\n",
         "t.toml:20:1: session[0].listener[0].prt: unknown setting"},
        {"unknown_speaker", bs + k_speaker + "ssrcs = 1\n", "t.toml:21:1: session[0].speaker[0].ssrcs: unknown setting"},
        {"unknown_limits", b + "[limits]\nmax_sessionz = 3\n", "t.toml:15:1: limits.max_sessionz: unknown setting"},
        {"unknown_recording", b + "[recording]\npath = \"/x\"\n", "t.toml:15:1: recording.path: unknown setting"},
        {"recording_dir_relative", b + "[recording]\ndir = \"rec\"\n", "t.toml:15:7: recording.dir: \"rec\" is not an absolute path"},
        {"recording_dir_type", b + "[recording]\ndir = 1\n", "t.toml:15:7: recording.dir: expected a string"},
        // A NUL ("\u0000" in TOML) ended every path, device and URL at the system
        // call or in EAL's argv: the relay used another directory than the profile named.
        {"recording_dir_nul", b + "[recording]\ndir = \"/var/lib/stentor/rec\\u0000x\"\n",
         "t.toml:15:7: recording.dir: holds a NUL character (\\u0000) at byte 20: the text would end there"},
        {"journal_dir_nul", b + "[journal]\ndir = \"/var/lib/stentor/journal\\u0000-b\"\n",
         "t.toml:15:7: journal.dir: holds a NUL character (\\u0000) at byte 24"},
        {"vdev_nul", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\\u0000,x\"]\n" + k_dp + k_port + k_api,
         "t.toml:3:10: eal.vdevs[0]: holds a NUL character (\\u0000) at byte 9"},
        {"api_tls_cert_nul", k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\ntls_cert = \"/etc/c.pem\\u0000\"\ntls_key = \"/k\"\n",
         "t.toml:13:12: api.tls_cert: holds a NUL character (\\u0000) at byte 10"},
        {"fleet_etcd_nul", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\\u0000x\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n",
         "t.toml:15:9: fleet.etcd[0]: holds a NUL character (\\u0000) at byte 21"},
        {"recording_tracks_zero", b + "[recording]\nmax_tracks_per_recording = 0\n",
         "t.toml:15:28: recording.max_tracks_per_recording: 0 is out of range 1..65536"},
        {"recording_max_tracks_big", b + "[recording]\nmax_tracks = 65537\n",
         "t.toml:15:14: recording.max_tracks: 65537 is out of range 1..65536"},
        {"mix_decoders_big", b + "[mixer]\nmax_decoders_per_session = 1025\n",
         "t.toml:15:28: mixer.max_decoders_per_session: 1025 is out of range 1..1024"},
        {"unknown_journal", b + "[journal]\npath = \"/x\"\n", "t.toml:15:1: journal.path: unknown setting"},
        {"journal_dir_relative", b + "[journal]\ndir = \"j\"\n",
         "t.toml:15:7: journal.dir: \"j\" is not an absolute path (or \"\" for no journal)"},
        {"journal_fsync_type", b + "[journal]\ndir = \"/j\"\nfsync = \"yes\"\n", "t.toml:16:9: journal.fsync: expected a boolean"},
        {"journal_compact_zero", b + "[journal]\ndir = \"/j\"\ncompact_mib = 0\n", "t.toml:16:15: journal.compact_mib: 0 is out of range 1..65536"},
        // [capture] (docs/capture.md)
        {"unknown_capture", b + "[capture]\npath = \"/x\"\n", "t.toml:15:1: capture.path: unknown setting"},
        {"capture_dir_relative", b + "[capture]\ndir = \"caps\"\n", "t.toml:15:7: capture.dir: \"caps\" is not an absolute path"},
        {"capture_pdump_without_hugepages", b + "[capture]\npdump = true\n",
         "t.toml:15:9: capture.pdump: dpdk-dumpcap attaches as a DPDK secondary process, which needs eal.hugepages = true"},
        {"capture_ring_not_pow2", b + "[capture]\nring_size = 1000\n", "t.toml:15:13: capture.ring_size: 1000 is not a power of two"},
        {"capture_max_seconds_zero", b + "[capture]\nmax_seconds = 0\n",
         "t.toml:15:15: capture.max_seconds: 0 is out of range 1..86400"},
        // [join] (the rows that need key files on disk: ConfigJoin below)
        {"unknown_join", b + "[join]\nkey = 1\n", "t.toml:15:1: join.key: unknown setting (known here: keys, mint_key_id, token_ttl_s, verify_per_s, consent_timeout_s, rebind_after_s, mode, max_spent_tokens, source_join_rate_per_s, source_join_burst, max_bindings_per_source)"},
        {"join_ttl_zero", b + "[join]\ntoken_ttl_s = 0\n", "t.toml:15:15: join.token_ttl_s: 0 is out of range 1..604800"},
        {"join_ttl_over_a_week", b + "[join]\ntoken_ttl_s = 604801\n",
         "t.toml:15:15: join.token_ttl_s: 604801 is out of range 1..604800"},
        {"join_rebind_not_below_consent", b + "[join]\nconsent_timeout_s = 10\nrebind_after_s = 10\n",
         "t.toml:16:18: join.rebind_after_s: 10 is not below consent_timeout_s (10): a NAT rebinding would lose the listener before it could move"},
        {"join_mode_unknown", b + "[join]\nmode = \"open\"\n",
         "t.toml:15:8: join.mode: \"open\": must be \"token\" (listeners join only by token) or \"token+static\" (operators may also register listeners)"},
        {"join_token_mode_without_keys", b + "[join]\nmode = \"token\"\n",
         "t.toml:15:8: join.mode: \"token\" without join.keys: nobody could listen"},
        {"join_mint_without_keys", b + "[join]\nmint_key_id = 1\n", "t.toml:15:15: join.mint_key_id: no join.keys to mint with"},
        {"join_mint_key_zero", b + "[join]\nmint_key_id = 0\n", "t.toml:15:15: join.mint_key_id: 0 is out of range 1..255"},
        {"join_keys_type", b + "[join]\nkeys = 1\n", "t.toml:15:8: join.keys: expected an array of tables"},
        {"join_key_id_zero", b + "[join]\nkeys = [{ id = 0, secret_file = \"/k\" }]\n",
         "t.toml:15:16: join.keys[0].id: 0 is out of range 1..255"},
        {"join_key_id_256", b + "[join]\nkeys = [{ id = 256, secret_file = \"/k\" }]\n",
         "t.toml:15:16: join.keys[0].id: 256 is out of range 1..255"},
        {"join_key_without_id", b + "[join]\nkeys = [{ secret_file = \"/k\" }]\n",
         "t.toml:15:9: join.keys[0].id: required setting is missing"},
        {"join_key_without_file", b + "[join]\nkeys = [{ id = 1 }]\n",
         "t.toml:15:9: join.keys[0].secret_file: required setting is missing"},
        {"join_key_unknown", b + "[join]\nkeys = [{ id = 1, file = \"/k\" }]\n",
         "t.toml:15:19: join.keys[0].file: unknown setting (known here: id, secret_file)"},
        {"join_key_relative", b + "[join]\nkeys = [{ id = 1, secret_file = \"join-1.key\" }]\n",
         "t.toml:15:33: join.keys[0].secret_file: \"join-1.key\" is not an absolute path"},
        {"join_key_file_missing", b + "[[join.keys]]\nid = 1\nsecret_file = \"/nonexistent/join-1.key\"\n",
         "t.toml:16:15: join.keys[0].secret_file: /nonexistent/join-1.key: cannot open: No such file or directory"},
        // Missing required keys point at the enclosing table
        {"missing_lcores", "# dev\n\n[eal]\nvdevs = [\"net_null0\"]\n" + k_dp + k_port + k_api,
         "t.toml:3:1: eal.lcores: required setting is missing"},
        {"missing_eal", k_dp + k_port + k_api, "t.toml:1:1: eal.lcores: required setting is missing"},
        {"missing_rx_lcores", k_eal + "[dataplane]\nfanout_lcores = [1]\n" + k_port + k_api,
         "t.toml:4:1: dataplane.rx_lcores: required setting is missing"},
        {"missing_port_ipv4", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\n" + k_api,
         "t.toml:7:1: port[0].ipv4: required setting is missing"},
        {"missing_session_id", b + "[[session]]\nudp_port = 40000\n", "t.toml:14:1: session[0].id: required setting is missing"},
        {"missing_listener_port", bs + "[[session.listener]]\nip = \"198.18.0.21\"\n",
         "t.toml:17:1: session[0].listener[0].port: required setting is missing"},
        // Wrong types
        {"type_memory", k_eal + "memory_mb = \"512\"\n" + k_dp + k_port + k_api,
         "t.toml:4:13: eal.memory_mb: expected an integer, found a string"},
        {"type_hugepages", k_eal + "hugepages = 1\n" + k_dp + k_port + k_api,
         "t.toml:4:13: eal.hugepages: expected a boolean"},
        {"type_lcores", "[eal]\nlcores = 5\n", "t.toml:2:10: eal.lcores: expected an array of lcore ids"},
        {"type_lcore_elem", "[eal]\nlcores = [0, \"1\"]\n", "t.toml:2:14: eal.lcores[1]: expected an integer, found a string"},
        {"type_float", k_eal + k_dp + "burst = 32.0\n" + k_port + k_api, "t.toml:7:9: dataplane.burst: expected an integer, found a float"},
        {"type_section", "eal = 3\n", "t.toml:1:7: eal: expected a table"},
        {"type_port_table", k_eal + k_dp + k_api + "[port]\nname = \"p0\"\n", "t.toml:10:1: port: expected an array of tables"},
        {"type_vdevs", "[eal]\nlcores = [0, 1]\nvdevs = \"net_null0\"\n", "t.toml:3:9: eal.vdevs: expected an array of strings"},
        // Out of range
        {"range_memory", k_eal + "memory_mb = 32\n" + k_dp + k_port + k_api, "t.toml:4:13: eal.memory_mb: 32 is out of range 64.."},
        {"range_memory_above_1_tib", k_eal + "memory_mb = 1048577\n" + k_dp + k_port + k_api,
         "t.toml:4:13: eal.memory_mb: 1048577 is out of range 64..1048576"},
        {"range_memory_u32_max", k_eal + "memory_mb = 4294967295\n" + k_dp + k_port + k_api,
         "t.toml:4:13: eal.memory_mb: 4294967295 is out of range 64..1048576"},
        {"range_mbufs", k_eal + "mbufs = 1000\n" + k_dp + k_port + k_api, "t.toml:4:9: eal.mbufs: 1000 is out of range 1024.."},
        {"range_mbuf_cache", k_eal + "mbuf_cache = 513\n" + k_dp + k_port + k_api, "t.toml:4:14: eal.mbuf_cache: 513 is out of range 0..512"},
        {"range_negative", k_eal + "mbufs = -1\n" + k_dp + k_port + k_api, "t.toml:4:9: eal.mbufs: -1 is out of range"},
        // The pool feeds every RX ring and every replica: one smaller than its rings
        // passed --check, and a PCI NIC then failed its start ("start: Cannot
        // allocate memory") naming no setting. DPDK's l3fwd sizing is the floor.
        {"mbufs_below_rings", k_eal + "mbufs = 1024\n" + k_dp + k_port + k_api,
         "t.toml:4:9: eal.mbufs: 1024 mbufs cannot serve the rings that draw on them: 1024 RX and 1024 TX descriptors, "
         "64 for a burst per lcore and port, 512 in the lcores' caches need 2624; raise eal.mbufs (e.g. 4095)"},
        {"mbufs_default_below_big_rx_ring", k_eal + k_dp + k_port + "rx_desc = 16384\n" + k_api,
         "t.toml:1:1: eal.mbufs: 16383 mbufs cannot serve the rings that draw on them: 16384 RX and 1024 TX descriptors"},
        {"mbufs_below_many_queues", k_eal + "mbufs = 8191\n" + k_dp + k_port + "rx_queues = 8\n" + k_api,
         "t.toml:4:9: eal.mbufs: 8191 mbufs cannot serve the rings that draw on them: 8192 RX and 1024 TX descriptors"},
        {"range_lcore", "[eal]\nlcores = [0, 128]\n", "t.toml:2:14: eal.lcores[1]: 128 is out of range 0..127"},
        {"range_burst_0", k_eal + k_dp + "burst = 0\n" + k_port + k_api, "t.toml:7:9: dataplane.burst: 0 is out of range 1..256"},
        {"range_burst_257", k_eal + k_dp + "burst = 257\n" + k_port + k_api, "t.toml:7:9: dataplane.burst: 257 is out of range 1..256"},
        {"range_iteration_budget_low", k_eal + k_dp + "iteration_budget = 63\n" + k_port + k_api,
         "t.toml:7:20: dataplane.iteration_budget: 63 is out of range 64..16384"},
        {"range_iteration_budget_high", k_eal + k_dp + "iteration_budget = 16385\n" + k_port + k_api,
         "t.toml:7:20: dataplane.iteration_budget: 16385 is out of range 64..16384"},
        {"type_iteration_budget", k_eal + k_dp + "iteration_budget = \"512\"\n" + k_port + k_api,
         "t.toml:7:20: dataplane.iteration_budget: expected an integer, found a string"},
        // [fleet] is line 13 (docs/fleet.md)
        {"fleet_no_etcd", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\n",
         "t.toml:14:1: fleet.etcd: required setting is missing"},
        {"fleet_etcd_not_http", k_base + "[fleet]\netcd = [\"ftp://x:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n",
         "t.toml:15:9: fleet.etcd[0]: \"ftp://x:2379\" is not an https:// or http:// URL"},
        {"fleet_etcd_userinfo", k_base + "[fleet]\netcd = [\"https://u:p@x:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\n",
         "t.toml:15:9: fleet.etcd[0]: \"https://u:p@x:2379\" is not an https:// or http:// URL"},
        // etcd's access (docs/fleet.md "Running etcd securely"); the rows with
        // files on disk are ConfigEtcdAccess below. etcd is line 17 here.
        {"fleet_etcd_plain_to_another_host", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://10.0.0.5:2379\"]\n",
         "t.toml:17:9: fleet.etcd[0]: \"http://10.0.0.5:2379\" is plain HTTP to a host that is not loopback: anyone on "
         "the way can read and write the fleet's registry (aim trunks, take placements); use https:// with fleet.etcd_ca "
         "(and etcd_cert/etcd_key or etcd_user), or say allow_plaintext = true"},
        {"fleet_etcd_plain_to_a_name", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\", \"http://etcd-2:2379\"]\n",
         "t.toml:17:34: fleet.etcd[1]: \"http://etcd-2:2379\" is plain HTTP to a host that is not loopback"},
        {"fleet_etcd_mixed_schemes", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"https://etcd-1:2379\", \"http://127.0.0.1:2379\"]\n",
         "t.toml:17:32: fleet.etcd[1]: \"http://127.0.0.1:2379\": every member is reached alike: all https:// or all http://"},
        {"fleet_https_without_ca", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"https://etcd-1:2379\"]\n",
         "t.toml:17:9: fleet.etcd_ca: required with https:// etcd URLs: the CA (PEM) that signed etcd's certificate"},
        {"fleet_allow_plaintext_with_https", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"https://etcd-1:2379\"]\nallow_plaintext = true\n",
         "t.toml:18:19: fleet.allow_plaintext: true, but the etcd URLs are https://: it is for plain http:// URLs only"},
        {"fleet_allow_plaintext_type", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://10.0.0.5:2379\"]\nallow_plaintext = \"yes\"\n",
         "t.toml:18:19: fleet.allow_plaintext: expected a boolean"},
        {"fleet_ca_with_http", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_ca = \"/etc/ca.pem\"\n",
         "t.toml:18:11: fleet.etcd_ca: set, but the etcd URLs are http://: TLS files are used with https:// URLs only"},
        {"fleet_cert_with_http", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_cert = \"/c.pem\"\netcd_key = \"/k.pem\"\n",
         "t.toml:18:13: fleet.etcd_cert: set, but the etcd URLs are http://"},
        {"fleet_ca_relative", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"https://etcd-1:2379\"]\netcd_ca = \"ca.pem\"\n",
         "t.toml:18:11: fleet.etcd_ca: \"ca.pem\" is not an absolute path"},
        {"fleet_ca_missing", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"https://etcd-1:2379\"]\netcd_ca = \"/nonexistent/ca.pem\"\n",
         "t.toml:18:11: fleet.etcd_ca: /nonexistent/ca.pem: cannot open: No such file or directory"},
        {"fleet_user_without_password", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_user = \"stentor\"\n",
         "t.toml:18:13: fleet.etcd_user: set together with fleet.etcd_password_file (the file holding the user's password)"},
        {"fleet_password_without_user", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_password_file = \"/pw\"\n",
         "t.toml:18:22: fleet.etcd_password_file: set together with fleet.etcd_user"},
        {"fleet_user_with_a_space", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_user = \"a b\"\netcd_password_file = \"/pw\"\n",
         "t.toml:18:13: fleet.etcd_user: \"a b\": must be 1..128 printable ASCII characters without spaces"},
        {"fleet_user_empty", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_user = \"\"\netcd_password_file = \"/pw\"\n",
         "t.toml:19:22: fleet.etcd_password_file: set together with fleet.etcd_user"},
        {"fleet_password_relative", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_user = \"u\"\netcd_password_file = \"pw\"\n",
         "t.toml:19:22: fleet.etcd_password_file: \"pw\" is not an absolute path"},
        {"fleet_password_missing", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_user = \"u\"\netcd_password_file = \"/nonexistent/pw\"\n",
         "t.toml:19:22: fleet.etcd_password_file: /nonexistent/pw: cannot open: No such file or directory"},
        {"fleet_password_a_device", k_base + "[fleet]\nrelay_id = \"e1\"\nrole = \"edge\"\netcd = [\"http://127.0.0.1:2379\"]\netcd_user = \"u\"\netcd_password_file = \"/dev/zero\"\n",
         "t.toml:19:22: fleet.etcd_password_file: /dev/zero: not a regular file"},
        {"fleet_role", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"mixer\"\n",
         "t.toml:17:8: fleet.role: \"mixer\": must be \"origin\" (takes speakers) or \"edge\""},
        {"fleet_relay_id", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e 1\"\nrole = \"edge\"\n",
         "t.toml:16:12: fleet.relay_id: must be 1..64 characters of [A-Za-z0-9._-]"},
        {"fleet_no_relay_id", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrole = \"edge\"\n",
         "t.toml:14:1: fleet.relay_id: required setting is missing"},
        {"fleet_ttl_range", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nlease_ttl_s = 0\n",
         "t.toml:18:15: fleet.lease_ttl_s: 0 is out of range 1..60"},
        {"fleet_max_trunk_sends_zero", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nmax_trunk_sends_per_session = 0\n",
         "t.toml:18:31: fleet.max_trunk_sends_per_session: 0 is out of range 1..4096"},
        {"fleet_max_trunk_sends_high", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nmax_trunk_sends_per_session = 4097\n",
         "t.toml:18:31: fleet.max_trunk_sends_per_session: 4097 is out of range 1..4096"},
        {"fleet_max_trunk_sends_type", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nmax_trunk_sends_per_session = \"8\"\n",
         "t.toml:18:31: fleet.max_trunk_sends_per_session: expected an integer, found a string"},
        {"fleet_refresh_vs_ttl", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nrefresh_ms = 800\n",
         "t.toml:18:14: fleet.refresh_ms: 800 ms leaves fewer than 3 refreshes per lease_ttl_s (2 s)"},
        {"fleet_advertise", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nadvertise = [\"1.2.3\"]\n",
         "t.toml:18:14: fleet.advertise[0]: \"1.2.3\" is not an IPv4 or IPv6 address"},
        // docs/profiles.md: not unspecified, loopback, multicast, link-local; only
        // 0.0.0.0 was refused for IPv4 (IPv6 had the rule).
        {"fleet_advertise_loopback", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nadvertise = [\"127.0.0.1\"]\n",
         "t.toml:18:14: fleet.advertise[0]: 127.0.0.1 cannot be advertised: loopback address (127.0.0.0/8)"},
        {"fleet_advertise_multicast", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nadvertise = [\"198.18.0.1\", \"224.0.0.1\"]\n",
         "t.toml:18:28: fleet.advertise[1]: 224.0.0.1 cannot be advertised: multicast address (224.0.0.0/4)"},
        {"fleet_advertise_broadcast", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nadvertise = [\"255.255.255.255\"]\n",
         "t.toml:18:14: fleet.advertise[0]: 255.255.255.255 cannot be advertised: limited broadcast address 255.255.255.255"},
        {"fleet_advertise_link_local", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nadvertise = [\"169.254.1.1\"]\n",
         "t.toml:18:14: fleet.advertise[0]: 169.254.1.1 cannot be advertised: link-local address (169.254.0.0/16)"},
        {"fleet_advertise_unspecified", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nadvertise = [\"0.0.0.0\"]\n",
         "t.toml:18:14: fleet.advertise[0]: 0.0.0.0 cannot be advertised: unspecified address 0.0.0.0"},
        {"fleet_prefix", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nprefix = \"stentor/\"\n",
         "t.toml:18:10: fleet.prefix: \"stentor/\": must start with '/'"},
        {"fleet_drain_range", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\ndrain_s = 3601\n",
         "t.toml:18:11: fleet.drain_s: 3601 is out of range 0..3600"},
        // trunk_peers (docs/fleet.md "Who a trunk may reach"): lines 14-17 are
        // etcd, relay_id, role; the setting is line 18.
        {"fleet_trunk_peers_missing", k_base + fl,
         "t.toml:14:1: fleet.trunk_peers: required setting is missing: the networks the fleet's relays are on, the "
         "only addresses trunks may go to or come from (this relay's own subnets would be [\"198.18.0.0/24\"])"},
        {"fleet_trunk_peers_host_bits", k_base + fl + "trunk_peers = [\"10.20.0.1/16\"]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: \"10.20.0.1/16\": host bits set: the network is 10.20.0.0/16"},
        {"fleet_trunk_peers_host_bits6", k_base + fl + "trunk_peers = [\"10.20.0.0/16\", \"2001:db8:77::1/48\"]\n",
         "t.toml:18:32: fleet.trunk_peers[1]: \"2001:db8:77::1/48\": host bits set: the network is 2001:db8:77::/48"},
        {"fleet_trunk_peers_no_prefix", k_base + fl + "trunk_peers = [\"10.20.0.0\"]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: \"10.20.0.0\": not a network: ADDRESS/PREFIX"},
        {"fleet_trunk_peers_prefix_range", k_base + fl + "trunk_peers = [\"10.20.0.0/33\"]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: \"10.20.0.0/33\": prefix length 33 is past 32 (IPv4)"},
        {"fleet_trunk_peers_prefix_range6", k_base + fl + "trunk_peers = [\"2001:db8::/129\"]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: \"2001:db8::/129\": prefix length 129 is past 128 (IPv6)"},
        {"fleet_trunk_peers_not_an_address", k_base + fl + "trunk_peers = [\"relays/16\"]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: \"relays/16\": \"relays\" is not an IPv4 or IPv6 address"},
        {"fleet_trunk_peers_zone", k_base + fl + "trunk_peers = [\"fe80::%eth0/64\"]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: \"fe80::%eth0/64\": an IPv6 zone"},
        {"fleet_trunk_peers_empty", k_base + fl + "trunk_peers = []\n",
         "t.toml:18:15: fleet.trunk_peers: empty: no trunk could go or come anywhere"},
        {"fleet_trunk_peers_a_string", k_base + fl + "trunk_peers = \"10.20.0.0/16\"\n",
         "t.toml:18:15: fleet.trunk_peers: expected an array of IPv4 or IPv6 networks (CIDR)"},
        {"fleet_trunk_peers_a_number", k_base + fl + "trunk_peers = [10]\n",
         "t.toml:18:16: fleet.trunk_peers[0]: expected a string"},
        {"fleet_unknown_key", k_base + "[fleet]\netcd = [\"http://127.0.0.1:2379\"]\nrelay_id = \"e1\"\nrole = \"edge\"\nttl = 2\n",
         "t.toml:18:1: fleet.ttl: unknown setting"},
        {"idle_unknown_mode", k_eal + k_dp + "idle = \"sleep\"\n" + k_port + k_api,
         "t.toml:7:8: dataplane.idle: \"sleep\": must be \"poll\""},
        {"idle_not_a_string", k_eal + k_dp + "idle = true\n" + k_port + k_api,
         "t.toml:7:8: dataplane.idle: expected a string"},
        {"idle_sleep_max_low", k_eal + k_dp + "idle = \"adaptive\"\nidle_sleep_max_us = 9\n" + k_port + k_api,
         "t.toml:8:21: dataplane.idle_sleep_max_us: 9 is out of range 10..10000"},
        {"idle_sleep_max_high", k_eal + k_dp + "idle = \"adaptive\"\nidle_sleep_max_us = 10001\n" + k_port + k_api,
         "t.toml:8:21: dataplane.idle_sleep_max_us: 10001 is out of range 10..10000"},
        {"idle_sleep_max_without_adaptive", k_eal + k_dp + "idle_sleep_max_us = 500\n" + k_port + k_api,
         "t.toml:7:21: dataplane.idle_sleep_max_us: only meaningful with idle = \"adaptive\""},
        {"range_mtu", k_eal + k_dp + k_port + "mtu = 9601\n" + k_api, "t.toml:11:7: port[0].mtu: 9601 is out of range 68..9600"},
        {"range_mtu_low", k_eal + k_dp + k_port + "mtu = 67\n" + k_api, "t.toml:11:7: port[0].mtu: 67 is out of range 68..9600"},
        {"range_dscp", k_eal + k_dp + k_port + "dscp = 64\n" + k_api, "t.toml:11:8: port[0].dscp: 64 is out of range 0..63"},
        // Issue 10 item 8: every frame must fit one mbuf (2048 bytes of data room).
        {"mtu_jumbo_9000", k_eal + k_dp + k_port + "mtu = 9000\n" + k_api,
         "t.toml:11:7: port[0].mtu: 9000 needs receive buffers of up to 9026 bytes (MTU + Ethernet header, FCS and "
         "two VLAN tags) but one mbuf holds 2048: frames would arrive in several segments, which the relay drops; "
         "at most 2022"},
        {"mtu_jumbo_9600", k_eal + k_dp + k_port + "mtu = 9600\n" + k_api, "t.toml:11:7: port[0].mtu: 9600 needs"},
        {"mtu_one_over_the_mbuf", k_eal + k_dp + k_port + "mtu = 2023\n" + k_api,
         "t.toml:11:7: port[0].mtu: 2023 needs receive buffers of up to 2049 bytes"},
        {"range_rx_queues", k_eal + k_dp + k_port + "rx_queues = 0\n" + k_api, "t.toml:11:13: port[0].rx_queues: 0 is out of range 1..64"},
        {"range_tx_queues", k_eal + k_dp + k_port + "tx_queues = 65\n" + k_api, "t.toml:11:13: port[0].tx_queues: 65 is out of range 1..64"},
        {"range_desc_pow2", k_eal + k_dp + k_port + "rx_desc = 1000\n" + k_api, "t.toml:11:11: port[0].rx_desc: 1000 is not a power of two"},
        {"range_desc_big", k_eal + k_dp + k_port + "tx_desc = 32768\n" + k_api, "t.toml:11:11: port[0].tx_desc: 32768 is out of range 64..16384"},
        {"range_desc_small", k_eal + k_dp + k_port + "tx_desc = 32\n" + k_api, "t.toml:11:11: port[0].tx_desc: 32 is out of range 64..16384"},
        {"range_prefix_0", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/0\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: prefix length 0 is out of range 1..32"},
        {"range_prefix_33", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/33\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: prefix length 33 is out of range 1..32"},
        {"range_line_rate", k_eal + k_dp + k_port + "line_rate_mbps = 900000\n" + k_api, "t.toml:11:18: port[0].line_rate_mbps: 900000 is out of range"},
        {"range_tier", bs + listener("198.18.0.21") + "tier = 4\n", "t.toml:20:8: session[0].listener[0].tier: 4 is out of range 0..3"},
        {"range_listener_port", bs + listener("198.18.0.21", 0), "t.toml:19:8: session[0].listener[0].port: 0 is out of range 1..65535"},
        {"range_speaker_port", bs + "[[session.speaker]]\nip = \"198.18.0.10\"\nport = 65536\n",
         "t.toml:19:8: session[0].speaker[0].port: 65536 is out of range 1..65535"},
        {"range_ssrc", bs + k_speaker_no_ssrc + "ssrc = 4294967296\n", "t.toml:20:8: session[0].speaker[0].ssrc: 4294967296 is out of range"},
        {"range_session_port", b + "[[session]]\nid = 1\nudp_port = 0\n", "t.toml:16:12: session[0].udp_port: 0 is out of range 1..65535"},
        {"range_session_id", b + "[[session]]\nid = 0\nudp_port = 40000\n", "t.toml:15:6: session[0].id: 0 is out of range 1..4294967295"},
        {"range_ingress_port", b + "[ingress]\nudp_port_max = 70000\n", "t.toml:15:16: ingress.udp_port_max: 70000 is out of range 1..65535"},
        {"range_headroom", b + "[limits]\nheadroom_pct = 91\n", "t.toml:15:16: limits.headroom_pct: 91 is out of range 0..90"},
        {"range_tier_reserve", b + "[limits]\ntier0_reserve_pct = 91\n", "t.toml:15:21: limits.tier0_reserve_pct: 91 is out of range 0..90"},
        {"tier_reserve_sum", b + "[limits]\ntier0_reserve_pct = 50\ntier1_reserve_pct = 30\ntier2_reserve_pct = 20\n",
         "t.toml:17:21: limits.tier2_reserve_pct: tier reserves add up to 100 %; at most 90 % may be reserved"},
        {"burst_over_headroom", b + "[limits]\nheadroom_pct = 10\nspeaker_burst_pct = 20\n",
         "t.toml:16:21: limits.speaker_burst_pct: 20 % is more than limits.headroom_pct (10 %): speakers at their "
         "policer limit would use capacity admission gave to listeners"},
        {"burst_default_over_zero_headroom", b + "[limits]\nheadroom_pct = 0\n",
         "t.toml:14:1: limits.speaker_burst_pct: 10 % is more than limits.headroom_pct (0 %): speakers at their "
         "policer limit would use capacity admission gave to listeners"},
        {"overload_exit_not_below_enter", b + "[overload]\nexit_miss_ratio = 0.01\n",
         "t.toml:15:19: overload.exit_miss_ratio: 0.01 is not below overload.enter_miss_ratio 0.001"},
        {"overload_ratio_type", b + "[overload]\nenter_miss_ratio = \"high\"\n",
         "t.toml:15:20: overload.enter_miss_ratio: expected a number, found a string"},
        {"range_mixer_channels", b + "[mixer]\nchannels = 3\n", "t.toml:15:12: mixer.channels: 3 is out of range 1..2"},
        {"range_join_resolve", b + "[limits]\njoin_resolve_ms = 10001\n",
         "t.toml:15:19: limits.join_resolve_ms: 10001 is out of range 0..10000"},
        {"range_fanout_pps", b + "[limits]\nfanout_pps_per_core = 999\n", "t.toml:15:23: limits.fanout_pps_per_core: 999 is out of range 1000.."},
        {"range_session_join_rate", b + "[limits]\nsession_join_rate_per_s = 0\n", "t.toml:15:27: limits.session_join_rate_per_s: 0 is out of range 1.."},
        {"range_limit_zero", b + "[limits]\nmax_sessions = 0\n", "t.toml:15:16: limits.max_sessions: 0 is out of range 1.."},
        // Malformed addresses
        {"ipv4_no_prefix", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: \"198.18.0.1\" is not ADDRESS/PREFIX"},
        {"ipv4_five_parts", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1.5/24\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: \"198.18.0.1.5/24\" is not ADDRESS/PREFIX"},
        {"ipv4_octet", k_eal + k_dp + k_port + "gateway = \"198.18.0.300\"\n" + k_api,
         "t.toml:11:11: port[0].gateway: \"198.18.0.300\" is not a dotted-quad IPv4 address"},
        {"ipv4_listener", bs + listener("198.18.0"), "t.toml:18:6: session[0].listener[0].ip: \"198.18.0\" is not a dotted-quad"},
        {"mac_short", k_eal + k_dp + k_port + "mac = \"02:53:54:00:00\"\n" + k_api, "t.toml:11:7: port[0].mac: \"02:53:54:00:00\" is not a MAC address"},
        {"mac_dashes", k_eal + k_dp + k_port + "mac = \"02-53-54-00-00-01\"\n" + k_api, "t.toml:11:7: port[0].mac: \"02-53-54-00-00-01\" is not a MAC address"},
        {"mac_hex", k_eal + k_dp + k_port + "mac = \"02:53:54:00:00:0g\"\n" + k_api, "t.toml:11:7: port[0].mac: \"02:53:54:00:00:0g\" is not a MAC address"},
        {"mac_multicast", k_eal + k_dp + k_port + "mac = \"01:00:5e:00:00:01\"\n" + k_api, "t.toml:11:7: port[0].mac: 01:00:5e:00:00:01 is a multicast MAC"},
        {"pci_malformed", "[eal]\nlcores = [0, 1]\npci_allow = [\"3b:00\"]\n", "t.toml:3:14: eal.pci_allow[0]: \"3b:00\" is not a PCI address"},
        {"api_listen", k_eal + k_dp + k_port + "[api]\nlisten = \"localhost:8080\"\n", "t.toml:12:10: api.listen: \"localhost:8080\" is not ADDRESS:PORT"},
        // Lcore lists and roles
        {"lcores_string_bad", "[eal]\nlcores = \"0-3,x\"\n", "t.toml:2:10: eal.lcores: malformed lcore list \"0-3,x\""},
        {"lcores_string_backwards", "[eal]\nlcores = \"3-1\"\n", "t.toml:2:10: eal.lcores: lcore range \"3-1\" runs backwards"},
        {"lcores_string_twice", "[eal]\nlcores = \"0-2,1\"\n", "t.toml:2:10: eal.lcores: lcore 1 is listed twice"},
        {"lcores_array_twice", "[eal]\nlcores = [0, 1, 1]\n", "t.toml:2:17: eal.lcores[2]: lcore 1 is listed twice"},
        {"lcores_empty", "[eal]\nlcores = []\n", "t.toml:2:10: eal.lcores: needs at least one lcore"},
        {"main_not_in_lcores", k_eal + "main_lcore = 2\n" + k_dp + k_port + k_api, "t.toml:4:14: eal.main_lcore: main lcore 2 is not in eal.lcores"},
        {"more_roles_than_lcores", k_eal + "[dataplane]\nrx_lcores = [1, 2]\nfanout_lcores = [1]\n" + k_port + k_api,
         "t.toml:4:1: dataplane: 2 lcores have worker roles but eal.lcores has only 1 besides the main lcore"},
        {"role_not_in_lcores", "[eal]\nlcores = [0, 1, 2, 3]\nvdevs = [\"net_null0\"]\n[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1, 5]\n" + k_port + k_api,
         "t.toml:6:21: dataplane.fanout_lcores[1]: lcore 5 is not in eal.lcores"},
        {"main_as_worker", k_eal + "[dataplane]\nrx_lcores = [0]\nfanout_lcores = [1]\n" + k_port + k_api,
         "t.toml:5:14: dataplane.rx_lcores[0]: lcore 0 is the main lcore"},
        {"main_as_worker_string", k_eal + "[dataplane]\nrx_lcores = [1]\nfanout_lcores = \"0-1\"\n" + k_port + k_api,
         "t.toml:6:17: dataplane.fanout_lcores: lcore 0 is the main lcore"},
        {"no_rx_lcore", k_eal + "[dataplane]\nrx_lcores = []\nfanout_lcores = [1]\n" + k_port + k_api,
         "t.toml:5:13: dataplane.rx_lcores: no rx lcore"},
        {"no_fanout_lcore", k_eal + "[dataplane]\nrx_lcores = [1]\nfanout_lcores = \"\"\n" + k_port + k_api,
         "t.toml:6:17: dataplane.fanout_lcores: no fanout lcore"},
        {"service_overlaps", "[eal]\nlcores = [0, 1, 2]\nvdevs = [\"net_null0\"]\n" + k_dp + "service_lcores = [2, 1]\n" + k_port + k_api,
         "t.toml:7:22: dataplane.service_lcores[1]: lcore 1 is already an rx or fanout lcore"},
        // Dedicated join lcores (dataplane.join_lcores): own lcores only, in
        // eal.lcores, not main; the rows with keys are ConfigJoin's.
        {"join_lcore_is_rx", "[eal]\nlcores = [0, 1, 2]\nvdevs = [\"net_null0\"]\n" + k_dp + "join_lcores = [2, 1]\n" + k_port + k_api,
         "t.toml:7:19: dataplane.join_lcores[1]: lcore 1 is already an rx, fanout or service lcore; a join lcore is dedicated"},
        {"join_lcore_is_service", "[eal]\nlcores = [0, 1, 2]\nvdevs = [\"net_null0\"]\n" + k_dp + "service_lcores = [2]\njoin_lcores = [2]\n" + k_port + k_api,
         "t.toml:8:16: dataplane.join_lcores[0]: lcore 2 is already an rx, fanout or service lcore"},
        {"join_lcore_is_main", k_eal + k_dp + "join_lcores = [0]\n" + k_port + k_api,
         "t.toml:7:16: dataplane.join_lcores[0]: lcore 0 is the main lcore (control plane); it cannot be a worker"},
        {"join_lcore_not_in_eal", "[eal]\nlcores = [0, 1, 3]\nvdevs = [\"net_null0\"]\n" + k_dp + "join_lcores = \"2\"\n" + k_port + k_api,
         "t.toml:7:15: dataplane.join_lcores: lcore 2 is not in eal.lcores"},
        {"join_lcores_listed_twice", "[eal]\nlcores = [0, 1, 2]\nvdevs = [\"net_null0\"]\n" + k_dp + "join_lcores = [2, 2]\n" + k_port + k_api,
         "t.toml:7:19: dataplane.join_lcores[1]: lcore 2 is listed twice"},
        {"join_lcores_too_many", "[eal]\nlcores = \"0-20\"\nvdevs = [\"net_null0\"]\n" + k_dp + "join_lcores = \"2-18\"\n" + k_port + k_api,
         "t.toml:7:15: dataplane.join_lcores: 17 join lcores; at most 16"},
        {"join_lcores_without_keys", "[eal]\nlcores = [0, 1, 2]\nvdevs = [\"net_null0\"]\n" + k_dp + "join_lcores = [2]\n" + k_port + k_api,
         "t.toml:7:15: dataplane.join_lcores: join lcores but no join.keys: there are no joins to verify"},
        {"join_lcores_more_than_lcores", k_eal + "[dataplane]\nrx_lcores = [1]\nfanout_lcores = [1]\njoin_lcores = [1]\n" + k_port + k_api,
         "t.toml:7:16: dataplane.join_lcores[0]: lcore 1 is already an rx, fanout or service lcore"},
        {"tx_queues_per_fanout", "[eal]\nlcores = \"0-3\"\nvdevs = [\"net_null0\"]\n[dataplane]\nrx_lcores = [1]\nfanout_lcores = \"1-3\"\n" + k_port + "tx_queues = 2\n" + k_api,
         "t.toml:11:13: port[0].tx_queues: 2 TX queues for 3 worker lcores"},
        // RX lcore j polls queue j: --check passed one queue for two rx lcores,
        // and stentord refused at start without file or line.
        {"rx_queues_per_rx_lcore", "[eal]\nlcores = \"0-3\"\nvdevs = [\"net_null0\"]\n[dataplane]\nrx_lcores = [1, 2]\nfanout_lcores = [3]\n" + k_port + "tx_queues = 3\n" + k_api,
         "t.toml:7:1: port[0].rx_queues: 1 RX queues for 2 rx lcores; rx lcore j polls queue j of every port"},
        {"rx_queues_short_by_one", "[eal]\nlcores = \"0-4\"\nvdevs = [\"net_null0\"]\n[dataplane]\nrx_lcores = \"1-3\"\nfanout_lcores = [4]\n" + k_port + "rx_queues = 2\ntx_queues = 4\n" + k_api,
         "t.toml:11:13: port[0].rx_queues: 2 RX queues for 3 rx lcores"},
        {"tx_queues_per_worker", "[eal]\nlcores = \"0-3\"\nvdevs = [\"net_null0\"]\n[dataplane]\nrx_lcores = [1]\nfanout_lcores = \"2-3\"\n" + k_port + "tx_queues = 2\n" + k_api,
         "t.toml:11:13: port[0].tx_queues: 2 TX queues for 3 worker lcores (rx_lcores and fanout_lcores)"},
        // EAL device set
        {"no_ports_to_drive", "[eal]\nlcores = [0, 1]\nhugepages = true\n", "t.toml:1:1: eal: no ports to drive"},
        {"log_level", k_eal + "log_level = \"loud\"\n" + k_dp + k_port + k_api, "t.toml:4:13: eal.log_level: \"loud\" is not a DPDK log level"},
        {"file_prefix", k_eal + "file_prefix = \"../x\"\n" + k_dp + k_port + k_api, "t.toml:4:15: eal.file_prefix: must be 1..64 characters"},
        {"file_prefix_dot_dot", k_eal + "file_prefix = \"..\"\n" + k_dp + k_port + k_api, "t.toml:4:15: eal.file_prefix: must be 1..64 characters of [A-Za-z0-9._-], not starting with a dot"},
        {"file_prefix_dot", k_eal + "file_prefix = \".\"\n" + k_dp + k_port + k_api, "t.toml:4:15: eal.file_prefix: must be 1..64 characters of [A-Za-z0-9._-], not starting with a dot"},
        {"vdev_twice", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\", \"net_null0,size=64\"]\n", "t.toml:3:23: eal.vdevs[1]: vdev net_null0 is listed twice"},
        // Ports
        {"no_ports", k_eal + k_dp + k_api, "t.toml:1:1: port: no ports"},
        {"device_unknown", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null1\"\nipv4 = \"198.18.0.1/24\"\n" + k_api,
         "t.toml:9:10: port[0].device: \"net_null1\" is neither a vdev name in eal.vdevs nor an address in eal.pci_allow"},
        {"device_vdev_args_not_a_name", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0,size=64\"\nipv4 = \"198.18.0.1/24\"\n" + k_api,
         "t.toml:9:10: port[0].device: \"net_null0,size=64\" is neither"},
        {"too_many_ports", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\", \"net_null1\", \"net_null2\", \"net_null3\", \"net_null4\"]\n" + k_dp +
                               "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/24\"\n"
                               "[[port]]\nname = \"p1\"\ndevice = \"net_null1\"\nipv4 = \"198.18.1.1/24\"\n"
                               "[[port]]\nname = \"p2\"\ndevice = \"net_null2\"\nipv4 = \"198.18.2.1/24\"\n"
                               "[[port]]\nname = \"p3\"\ndevice = \"net_null3\"\nipv4 = \"198.18.3.1/24\"\n"
                               "[[port]]\nname = \"p4\"\ndevice = \"net_null4\"\nipv4 = \"198.18.4.1/24\"\n" + k_api,
         "t.toml:23:1: port[4]: at most 4 ports"},
        {"port_name_twice", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\", \"net_null1\"]\n" + k_dp + k_port +
                                "[[port]]\nname = \"p0\"\ndevice = \"net_null1\"\nipv4 = \"198.18.1.1/24\"\n" + k_api,
         "t.toml:12:8: port[1].name: port name \"p0\" is used twice"},
        {"device_twice", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\"]\n" + k_dp + k_port +
                             "[[port]]\nname = \"p1\"\ndevice = \"net_null0\"\nipv4 = \"198.18.1.1/24\"\n" + k_api,
         "t.toml:13:10: port[1].device: device net_null0 is already used by port \"p0\""},
        {"gateway_outside", k_eal + k_dp + k_port + "gateway = \"198.18.1.1\"\n" + k_api,
         "t.toml:11:11: port[0].gateway: 198.18.1.1 is outside the port's subnet 198.18.0.0/24"},
        // A prefix wide enough makes a special address on-link: still no next hop.
        {"gateway_multicast", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/1\"\n" +
                                  "gateway = \"224.0.0.1\"\ngateway_learnt = true\n" + k_api,
         "t.toml:11:11: port[0].gateway: 224.0.0.1 cannot be a next hop: multicast address (224.0.0.0/4)"},
        {"gateway_loopback", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"10.0.0.1/1\"\n" +
                                 "gateway = \"127.0.0.1\"\ngateway_mac = \"02:00:00:00:00:fe\"\n" + k_api,
         "t.toml:11:11: port[0].gateway: 127.0.0.1 cannot be a next hop: loopback address (127.0.0.0/8)"},
        {"gateway_class_e", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.1/1\"\n" +
                                "gateway = \"240.0.0.1\"\ngateway_learnt = true\n" + k_api,
         "t.toml:11:11: port[0].gateway: 240.0.0.1 cannot be a next hop: reserved class E address (240.0.0.0/4)"},
        {"gateway_link_local", k_eal + k_dp + k_port + "gateway = \"169.254.0.1\"\ngateway_learnt = true\n" + k_api,
         "t.toml:11:11: port[0].gateway: 169.254.0.1 cannot be a next hop: link-local address (169.254.0.0/16)"},
        {"gateway_is_self", k_eal + k_dp + k_port + "gateway = \"198.18.0.1\"\n" + k_api,
         "t.toml:11:11: port[0].gateway: the gateway cannot be the port's own address"},
        {"gateway_unsaid", k_eal + k_dp + k_port + "gateway = \"198.18.0.254\"\n" + k_api,
         "t.toml:11:11: port[0].gateway: set gateway_mac (pinned, recommended) or gateway_learnt = true (learnt by ARP, see docs/security.md)"},
        {"gateway_pinned_and_learnt", k_eal + k_dp + k_port +
             "gateway = \"198.18.0.254\"\ngateway_mac = \"02:00:00:00:00:fe\"\ngateway_learnt = true\n" + k_api,
         "t.toml:13:18: port[0].gateway_learnt: the gateway is either pinned (gateway_mac) or learnt, not both"},
        {"gateway_learnt_alone", k_eal + k_dp + k_port + "gateway_learnt = true\n" + k_api,
         "t.toml:11:18: port[0].gateway_learnt: set only together with gateway"},
        // Types are strict (docs/profiles.md): toml++'s value<bool>() read any integer as a boolean.
        {"gateway_learnt_one", k_eal + k_dp + k_port + "gateway = \"198.18.0.254\"\ngateway_learnt = 1\n" + k_api,
         "t.toml:12:18: port[0].gateway_learnt: expected a boolean (true or false), found an integer"},
        {"gateway_learnt_zero_with_pinned_mac", k_eal + k_dp + k_port +
             "gateway = \"198.18.0.254\"\ngateway_mac = \"02:00:00:00:00:fe\"\ngateway_learnt = 0\n" + k_api,
         "t.toml:13:18: port[0].gateway_learnt: expected a boolean (true or false), found an integer"},
        {"gateway_learnt_string", k_eal + k_dp + k_port + "gateway = \"198.18.0.254\"\ngateway_learnt = \"true\"\n" + k_api,
         "t.toml:12:18: port[0].gateway_learnt: expected a boolean (true or false), found a string"},
        {"own_is_network", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.0/24\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: 198.18.0.0 is the network address of 198.18.0.0/24"},
        {"own_is_broadcast", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"198.18.0.255/24\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: 198.18.0.255 is the broadcast address of 198.18.0.0/24"},
        {"own_is_loopback", k_eal + k_dp + "[[port]]\nname = \"p0\"\ndevice = \"net_null0\"\nipv4 = \"127.0.0.1/8\"\n" + k_api,
         "t.toml:10:8: port[0].ipv4: loopback address"},
        {"subnets_overlap", "[eal]\nlcores = [0, 1]\nvdevs = [\"net_null0\", \"net_null1\"]\n" + k_dp + k_port +
                                "[[port]]\nname = \"p1\"\ndevice = \"net_null1\"\nipv4 = \"198.18.0.129/25\"\n" + k_api,
         "t.toml:14:8: port[1].ipv4: subnet 198.18.0.128/25 overlaps port \"p0\" subnet 198.18.0.0/24"},
        // Ingress, limits, API
        {"ingress_min_gt_max", b + "[ingress]\nudp_port_min = 5000\nudp_port_max = 4000\n",
         "t.toml:15:16: ingress.udp_port_min: 5000 is greater than ingress.udp_port_max 4000"},
        {"limits_per_session", b + "[limits]\nmax_listeners = 10\nmax_listeners_per_session = 11\n",
         "t.toml:16:29: limits.max_listeners_per_session: 11 is greater than limits.max_listeners 10"},
        // Table sizes are allocated whole at start: 4294967295 passed and ended the
        // start in std::bad_alloc naming no setting (or in the OOM killer).
        {"limits_neighbours_u32_max", b + "[limits]\nmax_neighbours = 4294967295\n",
         "t.toml:15:18: limits.max_neighbours: 4294967295 is out of range 1..65536"},
        {"limits_neighbours_over_ceiling", b + "[limits]\nmax_neighbours = 65537\n",
         "t.toml:15:18: limits.max_neighbours: 65537 is out of range 1..65536"},
        {"limits_speakers_u32_max", b + "[limits]\nmax_speakers = 4294967295\n",
         "t.toml:15:16: limits.max_speakers: 4294967295 is out of range 1..1048576"},
        {"limits_sessions_u32_max", b + "[limits]\nmax_sessions = 4294967295\n",
         "t.toml:15:16: limits.max_sessions: 4294967295 is out of range 1..1048576"},
        {"limits_sessions_beyond_32_bits", b + "[limits]\nmax_sessions = 4294967297\n",
         "t.toml:15:16: limits.max_sessions: 4294967297 is out of range 1..1048576"},
        {"limits_sessions_zero", b + "[limits]\nmax_sessions = 0\n",
         "t.toml:15:16: limits.max_sessions: 0 is out of range 1..1048576"},
        {"token_short", k_eal + k_dp + k_port + "[api]\ntoken = \"short\"\n", "t.toml:12:9: api.token: the API token must be at least 16 characters"},
        {"token_missing", k_eal + k_dp + k_port, "t.toml:1:1: api.token: the API token must be at least 16 characters"},
        {"token_space", k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789 abcdef\"\n", "t.toml:12:9: api.token: the API token must be printable ASCII"},
        // HTTPS, or plain HTTP said explicitly and on loopback only (issue 12 item 4).
        {"api_plain_not_said", k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\n",
         "t.toml:11:1: api.listen: the API on 127.0.0.1:8080 needs HTTPS (api.tls_cert and api.tls_key) or, on a "
         "loopback address only, plain_http = true said explicitly"},
        {"api_plain_off_loopback",
         k_eal + k_dp + k_port + "[api]\nlisten = \"0.0.0.0:8080\"\ntoken = \"0123456789abcdef\"\nplain_http = true\n",
         "t.toml:14:14: api.plain_http: plain HTTP only on a loopback address (127.0.0.0/8): 0.0.0.0 is reachable from "
         "other hosts"},
        {"api_plain_not_a_bool", k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\nplain_http = 1\n",
         "t.toml:13:14: api.plain_http: expected a boolean"},
        {"api_tls_cert_missing_file",
         k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
         "t.toml:13:12: api.tls_cert: /nonexistent/c.pem: cannot open: No such file or directory"},
        {"api_tls_key_alone", k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\ntls_key = \"/nonexistent/k.pem\"\n",
         "t.toml:13:11: api.tls_key: set together with api.tls_cert"},
        {"api_tls_cert_is_a_directory",
         k_eal + k_dp + k_port + "[api]\ntoken = \"0123456789abcdef\"\ntls_cert = \"/tmp\"\ntls_key = \"/tmp\"\n",
         "t.toml:13:12: api.tls_cert: /tmp: not a regular file"},
        // Sessions
        {"mode", bs + "mode = \"forwrd\"\n", "t.toml:17:8: session[0].mode: \"forwrd\" is not a mode (forward or mix)"},
        {"udp_port_outside_ingress", b + "[[session]]\nid = 1\nudp_port = 41000\n",
         "t.toml:16:12: session[0].udp_port: 41000 is outside the ingress range 40000..40999"},
        {"session_id_twice", bs + "[[session]]\nid = 1\nudp_port = 40001\n", "t.toml:18:6: session[1].id: duplicate session id 1"},
        {"session_udp_port_twice", bs + "[[session]]\nid = 2\nudp_port = 40000\n",
         "t.toml:19:12: session[1].udp_port: udp_port 40000 is already used by session[0]"},
        {"session_max_listeners", bs + "max_listeners = 3000000\n",
         "t.toml:17:17: session[0].max_listeners: 3000000 is above limits.max_listeners_per_session 2000000"},
        {"session_frame_ms", bs + "frame_ms = 7\n",
         "t.toml:17:12: session[0].frame_ms: 7 is not an Opus frame duration (5, 10, 20, 40, 60, 120)"},
        {"session_frame_ms_type", bs + "frame_ms = \"20\"\n", "t.toml:17:12: session[0].frame_ms: expected an integer"},
        {"session_frame_ms_negative", bs + "frame_ms = -20\n", "t.toml:17:12: session[0].frame_ms: -20 is out of range 0.."},
        {"session_bitrate", bs + "max_bitrate_kbps = 511\n", "t.toml:17:20: session[0].max_bitrate_kbps: 511 is out of range 6..510 (Opus)"},
        {"session_name_long", bs + "name = \"" + std::string(129, 'n') + "\"\n",
         "t.toml:17:8: session[0].name: longer than 128 characters"},
        {"speaker_port_zero", bs + "[[session.speaker]]\nip = \"198.18.0.10\"\nport = 0\n",
         "t.toml:19:8: session[0].speaker[0].port: 0 is out of range 1..65535"},
        {"too_many_sessions", k_base + "[limits]\nmax_sessions = 1\n" + k_session + "[[session]]\nid = 2\nudp_port = 40001\n",
         "t.toml:19:1: session[1]: more than limits.max_sessions 1 sessions"},
        {"speaker_loopback", bs + "[[session.speaker]]\nip = \"127.0.0.1\"\nport = 5004\n",
         "t.toml:18:6: session[0].speaker[0].ip: speaker address 127.0.0.1 refused: loopback"},
        {"speaker_unspecified", bs + "[[session.speaker]]\nip = \"0.0.0.0\"\nport = 5004\n",
         "t.toml:18:6: session[0].speaker[0].ip: speaker address 0.0.0.0 refused: unspecified"},
        {"speaker_multicast", bs + "[[session.speaker]]\nip = \"239.1.1.1\"\nport = 5004\n",
         "t.toml:18:6: session[0].speaker[0].ip: speaker address 239.1.1.1 refused: multicast"},
        {"speaker_broadcast", bs + "[[session.speaker]]\nip = \"255.255.255.255\"\nport = 5004\n",
         "t.toml:18:6: session[0].speaker[0].ip: speaker address 255.255.255.255 refused: limited broadcast"},
        {"speaker_own", bs + "[[session.speaker]]\nip = \"198.18.0.1\"\nport = 5004\n",
         "t.toml:18:6: session[0].speaker[0].ip: speaker address 198.18.0.1 refused: the relay's own address"},
        {"speaker_twice", bs + k_speaker + k_speaker, "t.toml:21:1: session[0].speaker[1]: duplicate speaker 198.18.0.10:5004"},
        // SSRC: mandatory by default; recorded and mixed sessions always need one (issue 10 items 2, 4)
        {"ssrc_required_by_default", bs + k_speaker_no_ssrc,
         "t.toml:17:1: session[0].speaker[0].ssrc: required while ingress.require_ssrc = true"},
        {"ssrc_required_recorded", b + "[ingress]\nrequire_ssrc = false\n" + k_session + "recording = true\n" +
                                       k_speaker_no_ssrc,
         "t.toml:20:1: session[0].speaker[0].ssrc: required: the session is recorded (one recording track per SSRC)"},
        {"ssrc_required_mixed", b + "[ingress]\nrequire_ssrc = false\n" + k_session + "mode = \"mix\"\n" +
                                    k_speaker_no_ssrc,
         "t.toml:20:1: session[0].speaker[0].ssrc: required: the session is mixed (one decoder per SSRC)"},
        {"require_ssrc_not_a_boolean", b + "[ingress]\nrequire_ssrc = 0\n",
         "t.toml:15:16: ingress.require_ssrc: expected a boolean (true or false), found an integer"},
        {"listener_broadcast", bs + listener("198.18.0.255"),
         "t.toml:18:6: session[0].listener[0].ip: listener address 198.18.0.255 refused: directed broadcast"},
        {"listener_link_local", bs + listener("198.18.0.21") + listener("169.254.1.1"),
         "t.toml:21:6: session[0].listener[1].ip: listener address 169.254.1.1 refused: link-local"},
        {"listener_no_route", bs + listener("203.0.113.5"),
         "t.toml:18:6: session[0].listener[0].ip: 203.0.113.5 is on no port's subnet and no port has a gateway"},
        {"listener_twice", bs + listener("198.18.0.21") + listener("198.18.0.21"),
         "t.toml:20:1: session[0].listener[1]: duplicate listener 198.18.0.21:5004"},
        {"listener_same_ip_other_port_ok_then_dup",
         bs + listener("198.18.0.21") + listener("198.18.0.21", 5006) + listener("198.18.0.21", 5006),
         "t.toml:23:1: session[0].listener[2]: duplicate listener 198.18.0.21:5006"},
        {"listeners_over_session_max", bs + "max_listeners = 1\n" + listener("198.18.0.21") + listener("198.18.0.22"),
         "t.toml:21:1: session[0].listener: more static listeners than the session's max_listeners 1"},
        {"listeners_over_limit_per_session",
         b + "[limits]\nmax_listeners_per_session = 1\n" + k_session + listener("198.18.0.21") + listener("198.18.0.22"),
         "t.toml:22:1: session[0].listener: more static listeners than the session's max_listeners 1"},
    };
}

// Rows print by name, not as raw bytes.
void PrintTo(const error_row& row, std::ostream* os) { *os << row.name; }

class ConfigErrors : public ::testing::TestWithParam<error_row> {};

TEST_P(ConfigErrors, Refused) {
    const auto& row = GetParam();
    const auto msg = error_of(row.toml);
    EXPECT_NE(msg.find(row.expect), std::string::npos) << "got:      " << msg << "\nexpected: " << row.expect
                                                       << "\nprofile:\n" << row.toml;
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigErrors, ::testing::ValuesIn(error_rows()),
                         [](const ::testing::TestParamInfo<error_row>& info) { return info.param.name; });

TEST(ConfigErrorShape, EveryMessageStartsWithFileLineCol) {
    // The shape is what editors and CI annotate from: FILE:LINE:COL: SETTING: what.
    for (const auto& row : error_rows()) {
        const auto msg = error_of(row.toml);
        SCOPED_TRACE(row.name + ": " + msg);
        ASSERT_EQ(msg.rfind("t.toml:", 0), 0u);
        size_t pos = 7;
        for (int field = 0; field < 2; ++field) {
            const auto colon = msg.find(':', pos);
            ASSERT_NE(colon, std::string::npos);
            ASSERT_GT(colon, pos);
            for (size_t i = pos; i < colon; ++i) ASSERT_TRUE(std::isdigit(static_cast<unsigned char>(msg[i])));
            pos = colon + 1;
        }
        ASSERT_EQ(msg.substr(pos, 1), " ");
        const auto sep = msg.find(": ", pos + 1);
        ASSERT_NE(sep, std::string::npos);
        EXPECT_GT(sep, pos + 1);  // non-empty setting
    }
}

// ---------------------------------------------------------------------------
// One set of rules, two faces: a static [[session]] and the model's actions
// (what the API calls) refuse the same settings with the same reason; the
// profile adds file:line:col and the path, the action "<setting>: <reason>".

struct rule_row {
    std::string name;
    std::string toml;      // appended to k_base (session 1 on udp 40000 where needed)
    std::string table;     // the profile names "<table>.<setting>: <reason>"
    std::function<void(relay_state&)> act;
    std::string expect;    // "<setting>: <reason>"
    std::string prefix{};  // the action's own (bulk: "listeners[i]: ")
    std::string base = k_base;   // k_base6: the port has IPv6 too
};

// k_base with IPv6 on port p0 (line 11): IPv6 peers meet one set of rules too.
const std::string k_base6 = k_eal + k_dp + k_port + "ipv6 = \"2001:db8:5354::1/64\"\n" + k_api;
ipv6_addr a6(const char* s) { return parse_ipv6(s).value_or(ipv6_addr{}); }

std::vector<rule_row> rule_rows() {
    const std::string bs = k_session;
    const auto session = [](auto set) {
        return [set](relay_state& st) {
            session_params sp;
            set(sp);
            st.session_create(sp);
        };
    };
    const auto ip = [](const char* s) { return *parse_ipv4(s); };
    return {
        {"frame_ms", bs + "frame_ms = 7\n", "session[0]", session([](auto& s) { s.frame_ms = 7; }),
         "frame_ms: 7 is not an Opus frame duration (5, 10, 20, 40, 60, 120)"},
        {"bitrate_low", bs + "max_bitrate_kbps = 5\n", "session[0]",
         session([](auto& s) { s.max_bitrate_kbps = 5; }), "max_bitrate_kbps: 5 is out of range 6..510 (Opus)"},
        {"udp_port_outside", "[[session]]\nid = 1\nudp_port = 41000\n", "session[0]",
         session([](auto& s) { s.udp_port = 41000; }), "udp_port: 41000 is outside the ingress range 40000..40999"},
        {"max_listeners", bs + "max_listeners = 2000001\n", "session[0]",
         session([](auto& s) { s.max_listeners = 2000001; }),
         "max_listeners: 2000001 is above limits.max_listeners_per_session 2000000"},
        {"name_long", bs + "name = \"" + std::string(129, 'n') + "\"\n", "session[0]",
         session([](auto& s) { s.name = std::string(129, 'n'); }), "name: longer than 128 characters"},
        // Issue 14: a NUL (or any control character) in a name is refused
        // alike in a profile and over the API.
        {"name_nul", bs + "name = \"talk\\u0000x\"\n", "session[0]",
         session([](auto& s) { s.name = std::string("talk\0x", 6); }),
         "name: control character U+0000 at byte 4: names are shown in logs, tables and JSON as they are"},
        {"name_escape", bs + "name = \"\\u001b[2J\"\n", "session[0]", session([](auto& s) { s.name = "\x1b[2J"; }),
         "name: control character U+001B at byte 0: names are shown in logs, tables and JSON as they are"},
        {"name_newline", bs + "name = \"a\\nb\"\n", "session[0]", session([](auto& s) { s.name = "a\nb"; }),
         "name: control character U+000A at byte 1: names are shown in logs, tables and JSON as they are"},
        {"name_c1", bs + "name = \"a\\u0085\"\n", "session[0]", session([](auto& s) { s.name = "a\xc2\x85"; }),
         "name: control character U+0085 at byte 1: names are shown in logs, tables and JSON as they are"},
        // A name must read as what it holds: no bidi override (Trojan
        // Source) nor invisible character; ZWJ (emoji sequences) stays.
        {"name_bidi_override", bs + "name = \"ab\\u202ecd\"\n", "session[0]",
         session([](auto& s) { s.name = "ab\xe2\x80\xae" "cd"; }),
         "name: invisible or direction-changing character U+202E at byte 2: names are shown in logs, tables and JSON as "
         "they are"},
        {"name_isolate", bs + "name = \"\\u2066x\"\n", "session[0]", session([](auto& s) { s.name = "\xe2\x81\xa6x"; }),
         "name: invisible or direction-changing character U+2066 at byte 0: names are shown in logs, tables and JSON as "
         "they are"},
        {"name_zero_width_space", bs + "name = \"a\\u200bb\"\n", "session[0]",
         session([](auto& s) { s.name = "a\xe2\x80\x8b" "b"; }),
         "name: invisible or direction-changing character U+200B at byte 1: names are shown in logs, tables and JSON as "
         "they are"},
        {"name_bom", bs + "name = \"\\ufeffx\"\n", "session[0]", session([](auto& s) { s.name = "\xef\xbb\xbfx"; }),
         "name: invisible or direction-changing character U+FEFF at byte 0: names are shown in logs, tables and JSON as "
         "they are"},
        {"name_tag", bs + "name = \"x\\U000E0041\"\n", "session[0]",
         session([](auto& s) { s.name = "x\xf3\xa0\x81\x81"; }),
         "name: invisible or direction-changing character U+E0041 at byte 1: names are shown in logs, tables and JSON as "
         "they are"},
        {"speaker_loopback", bs + "[[session.speaker]]\nip = \"127.0.0.1\"\nport = 5004\n", "session[0].speaker[0]",
         [=](relay_state& st) { st.speaker_add(1, ip("127.0.0.1"), 5004, std::nullopt); },
         "ip: speaker address 127.0.0.1 refused: loopback address (127.0.0.0/8)"},
        {"speaker_port", bs + "[[session.speaker]]\nip = \"198.18.0.10\"\nport = 70000\n", "session[0].speaker[0]",
         [=](relay_state& st) { st.speaker_add(1, ip("198.18.0.10"), 70000, std::nullopt); },
         "port: 70000 is out of range 1..65535"},
        {"listener_tier", bs + listener("198.18.0.21") + "tier = 4\n", "session[0].listener[0]",
         [=](relay_state& st) { st.listener_add(1, ip("198.18.0.21"), 5004, 4); }, "tier: 4 is out of range 0..3"},
        {"listener_port", bs + listener("198.18.0.21", 0), "session[0].listener[0]",
         [=](relay_state& st) { st.listener_add(1, ip("198.18.0.21"), 0, 0); }, "port: 0 is out of range 1..65535"},
        {"listener_broadcast", bs + listener("198.18.0.255"), "session[0].listener[0]",
         [=](relay_state& st) { st.listener_add(1, ip("198.18.0.255"), 5004, 0); },
         "ip: listener address 198.18.0.255 refused: directed broadcast address of port \"p0\" subnet 198.18.0.0/24"},
        {"listener_no_route", bs + listener("203.0.113.5"), "session[0].listener[0]",
         [=](relay_state& st) { st.listener_add(1, ip("203.0.113.5"), 5004, 0); },
         "ip: 203.0.113.5 is on no port's subnet and no port has a gateway"},
        {"listener_bulk_item", bs + listener("198.18.0.21") + listener("198.18.0.22") + "tier = 9\n",
         "session[0].listener[1]",
         [=](relay_state& st) { st.listener_add_bulk(1, {{ip("198.18.0.21"), 5004, 0}, {ip("198.18.0.22"), 5004, 9}}); },
         "tier: 9 is out of range 0..3", "listeners[1]: "},
        // IPv6 (config.h check_peer6: one copy for the profile and the actions).
        {"listener6_subnet_router_anycast", bs + listener("2001:db8:5354::"), "session[0].listener[0]",
         [=](relay_state& st) { st.listener_add(1, listener_spec{0, 5004, 0, false, a6("2001:db8:5354::")}); },
         "ip: listener address 2001:db8:5354:: refused: the subnet-router anycast address of port \"p0\" prefix "
         "2001:db8:5354::/64 (RFC 4291 2.6.1)",
         "", k_base6},
        {"listener6_bulk_anycast", bs + listener("2001:db8:5354::21") + listener("2001:db8:5354::"),
         "session[0].listener[1]",
         [=](relay_state& st) {
             st.listener_add_bulk(1, {listener_spec{0, 5004, 0, false, a6("2001:db8:5354::21")},
                                      listener_spec{0, 5004, 0, false, a6("2001:db8:5354::")}});
         },
         "ip: listener address 2001:db8:5354:: refused: the subnet-router anycast address of port \"p0\" prefix "
         "2001:db8:5354::/64 (RFC 4291 2.6.1)",
         "listeners[1]: ", k_base6},
        {"speaker6_nat64_loopback", bs + "[[session.speaker]]\nip = \"64:ff9b::7f00:1\"\nport = 5004\nssrc = 1\n",
         "session[0].speaker[0]",
         [=](relay_state& st) { st.speaker_add(1, speaker_spec{0, 5004, 1u, a6("64:ff9b::7f00:1")}); },
         "ip: speaker address 64:ff9b::7f00:1 refused: a NAT64 address (64:ff9b::/96, RFC 6052) of 127.0.0.1, which "
         "is not a global IPv4 address: loopback address (127.0.0.0/8)",
         "", k_base6},
        {"listener6_own", bs + listener("2001:db8:5354::1"), "session[0].listener[0]",
         [=](relay_state& st) { st.listener_add(1, listener_spec{0, 5004, 0, false, a6("2001:db8:5354::1")}); },
         "ip: listener address 2001:db8:5354::1 refused: the relay's own address (port \"p0\")", "", k_base6},
    };
}

void PrintTo(const rule_row& row, std::ostream* os) { *os << row.name; }

class SessionRules : public ::testing::TestWithParam<rule_row> {};

TEST_P(SessionRules, ProfileAndActionRefuseAlike) {
    const auto& row = GetParam();
    const auto msg = error_of(row.base + row.toml);
    EXPECT_NE(msg.find(row.table + "." + row.expect), std::string::npos) << "got: " << msg;
    // The action, on a model built from the same profile without the section.
    const profile p = parse(row.base + k_session);
    profile base = p;
    base.sessions.clear();
    std::vector<dp::dp_neigh> neigh(64);
    std::vector<dp::dp_policer> policers(base.limits.max_speakers);   // a speaker accepted by mistake fails, not crashes
    dp::dp_shared shared;
    shared.neigh = neigh.data();
    shared.nb_neigh = static_cast<uint32_t>(neigh.size());
    shared.policers = policers.data();
    shared.nb_policers = static_cast<uint32_t>(policers.size());
    relay_state st(base, shared, 1);
    st.session_create(p.sessions[0]);
    st.publish();
    const uint64_t version = st.published_version();
    try {
        row.act(st);
        ADD_FAILURE() << "accepted";
    } catch (const action_error& e) {
        EXPECT_EQ("invalid", name_of(e.code));
        EXPECT_EQ(row.prefix + row.expect, e.what());
    }
    st.publish();
    EXPECT_EQ(version, st.published_version()) << "a refusal changes nothing";
    EXPECT_EQ(1u, st.sessions().size());
    EXPECT_EQ(0u, st.nb_listeners());
}

INSTANTIATE_TEST_SUITE_P(Config, SessionRules, ::testing::ValuesIn(rule_rows()),
                         [](const ::testing::TestParamInfo<rule_row>& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Address helpers

TEST(ConfigIpv4, ParseAndFormat) {
    EXPECT_EQ(parse_ipv4("198.18.0.1"), std::optional<uint32_t>(0xc6120001u));
    EXPECT_EQ(parse_ipv4("0.0.0.0"), std::optional<uint32_t>(0u));
    EXPECT_EQ(parse_ipv4("255.255.255.255"), std::optional<uint32_t>(0xffffffffu));
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "01.2.3.4",
                            "1..3.4", "1.2.3.", "a.b.c.d", "1.2.3.4/24", "1.2.3.-4", "1234.1.1.1"})
        EXPECT_FALSE(parse_ipv4(bad).has_value()) << bad;
    EXPECT_EQ(format_ipv4(0xc6120001u), "198.18.0.1");
    EXPECT_EQ(format_ipv4(0), "0.0.0.0");
    EXPECT_EQ(format_ipv4(0xffffffffu), "255.255.255.255");
    for (const char* s : {"10.0.0.1", "203.0.113.5", "1.2.3.4"}) EXPECT_EQ(format_ipv4(*parse_ipv4(s)), s);
}

TEST(ConfigListenerIp, RefusesSpecialAndOwnAddresses) {
    const auto p = load_profile(configs("dev-veth.toml"));  // port lan0: 198.18.0.1/24
    auto refused = [&](const char* ip) { return check_listener_ip(*parse_ipv4(ip), p).has_value(); };
    for (const char* ip : {"0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.1", "239.255.255.250",
                           "255.255.255.255", "169.254.1.1", "240.0.0.1", "198.18.0.1", "198.18.0.255",
                           "198.18.0.0"})
        EXPECT_TRUE(refused(ip)) << ip;
    for (const char* ip : {"198.18.0.21", "203.0.113.5", "198.18.1.255", "10.0.0.1"})
        EXPECT_FALSE(refused(ip)) << ip << ": " << check_listener_ip(*parse_ipv4(ip), p).value_or("");
    EXPECT_NE(check_listener_ip(*parse_ipv4("198.18.0.1"), p)->find("own address"), std::string::npos);
    EXPECT_NE(check_listener_ip(*parse_ipv4("198.18.0.255"), p)->find("broadcast"), std::string::npos);
}

TEST(ConfigListenerIp, NoBroadcastOnPointToPointPrefixes) {
    // /31 links have no broadcast address (RFC 3021): both ends are hosts.
    profile p;
    port_config port;
    port.name = "p2p";
    port.ipv4 = *parse_ipv4("198.18.0.0");
    port.prefix_len = 31;
    p.ports.push_back(port);
    EXPECT_FALSE(check_listener_ip(*parse_ipv4("198.18.0.1"), p).has_value());
    EXPECT_TRUE(check_listener_ip(*parse_ipv4("198.18.0.0"), p).has_value());  // own
}

}  // namespace
}  // namespace stentor::control

TEST(ConfigAscii, non_ascii_byte_is_refused_with_its_position) {
    try {
        stentor::control::parse_profile("[eal]\nfile_prefix = \"caf\xc3\xa9\"\n", "t.toml");
        FAIL() << "accepted a non-ASCII profile";
    } catch (const stentor::control::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("t.toml:2:19: syntax: non-ASCII byte 0xc3"), std::string::npos)
            << e.what();
    }
}

// SIGHUP's diff: which settings differ between two profile texts.
TEST(ConfigReload, changed_settings_names_every_difference_by_path) {
    struct diff_case {
        const char* what;
        const char* before;
        const char* after;
        std::vector<std::string> changed;
    };
    const diff_case cases[] = {
        {"same text", "[limits]\nheadroom_pct = 10\n", "[limits]\nheadroom_pct = 10\n", {}},
        {"comments and spacing only", "[limits]\nheadroom_pct = 10\n", "# x\n[limits]\nheadroom_pct   =   10 # y\n", {}},
        {"a value", "[limits]\nheadroom_pct = 10\n", "[limits]\nheadroom_pct = 20\n", {"limits.headroom_pct"}},
        {"a key added (even at its default)", "[limits]\n", "[limits]\nheadroom_pct = 10\n", {"limits.headroom_pct"}},
        {"a key removed", "[overload]\nenter_ticks = 5\n", "", {"overload.enter_ticks"}},
        {"an array element", "[eal]\nlcores = [0, 1]\n", "[eal]\nlcores = [0, 1, 2]\n", {"eal.lcores"}},
        {"inside an array of tables", "[[port]]\nname = \"a\"\nmtu = 1500\n", "[[port]]\nname = \"a\"\nmtu = 9000\n",
         {"port[0].mtu"}},
        {"several, sorted", "[limits]\nheadroom_pct = 10\n[overload]\nenter_ticks = 3\n",
         "[limits]\nheadroom_pct = 20\n[overload]\nenter_ticks = 4\n", {"limits.headroom_pct", "overload.enter_ticks"}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        EXPECT_EQ(c.changed, stentor::control::changed_settings(c.before, c.after));
    }
}

namespace stentor {
namespace {

// What a name may hold besides what the refusal rows above show: any
// script, either direction as its letters go, emoji sequences joined by
// ZWJ; and what it may not, whatever the encoding trick.
TEST(display_text, names_read_as_what_they_hold) {
    struct row {
        const char* what;
        std::string text;
        const char* problem;   // substring; nullptr = accepted
    } const rows[] = {
        {"ASCII", "Town hall, 20:00", nullptr},
        {"CJK", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", nullptr},
        {"Hebrew letters (right to left by themselves)", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", nullptr},
        {"a microphone emoji with its variation selector", "Talk \xf0\x9f\x8e\x99\xef\xb8\x8f", nullptr},
        {"a family emoji joined by ZWJ", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7", nullptr},
        {"ZWNJ (Persian)", "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x85", nullptr},
        {"right-to-left mark", "a\xe2\x80\x8f", "U+200F at byte 1"},
        {"Arabic letter mark", "\xd8\x9c", "U+061C at byte 0"},
        {"word joiner", "a\xe2\x81\xa0", "U+2060"},
        {"soft hyphen", "a\xc2\xad" "b", "U+00AD"},
        {"pop directional isolate", "\xe2\x81\xa9", "U+2069"},
        {"an overlong '/'", "\xc0\xaf", "byte 0 is not UTF-8"},
        {"a surrogate", "\xed\xa0\x80", "byte 0 is not UTF-8"},
        {"cut off", "ab\xe2\x80", "byte 2 is not UTF-8"},
        {"DEL", "a\x7f", "control character U+007F at byte 1"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        const auto why = display_text_problem(r.text);
        if (r.problem == nullptr)
            EXPECT_FALSE(why.has_value()) << *why;
        else if (!why)
            ADD_FAILURE() << "accepted";
        else
            EXPECT_NE(std::string::npos, why->find(r.problem)) << *why;
    }
}

}  // namespace
}  // namespace stentor
