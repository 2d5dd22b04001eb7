// The running relay: mempool, ports, the state shared with the data plane,
// the worker lcores and the control plane's model. stentord builds one after
// EAL is up; integration tests build one on virtual ports and may drive the
// workers on their own thread (launch = false) to stay deterministic.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "drivers.h"
#include "stentor/services/recorder.h"
#include "state.h"
#include "stats.h"

struct rte_mempool;

// stentor/services/mixer.h (kept out of this header: it brings the data
// plane's rtp and wire namespaces to every file that includes the relay).
namespace stentor::svc {
struct mixer_stats;
struct mix_settings;
struct mix_encoder_report;
struct service_thread_stats;
}  // namespace stentor::svc

namespace stentor::control {

class capture_manager;

// What the services report, as the control plane's faces (API, CLI,
// metrics) name them.
using svc::recorder_stats;
using svc::recording_info;
using svc::recording_track;
using svc::track_stats;

struct relay_options {
    bool launch = true;                 // run workers on their lcores (else: poll())
    uint32_t replica_budget = 0;        // test knob, see worker_config
    uint32_t iteration_budget = 0;      // bench knob: replicas per loop iteration (0: the profile's dataplane.iteration_budget)
    // Replicas per loop iteration while the worker has time to spare (see
    // worker_config::spare_budget). 0: half the iteration budget when the
    // workers run on their lcores (launch), none when the caller polls
    // (tests count replicas per poll).
    uint32_t spare_budget = 0;
    // TSC cycles of a stop that ends an iteration's fan-out (see
    // worker_config::stop_cycles; 0: never). Unset: dp::stop_check_us when
    // the workers run on their lcores, never when the caller polls (a test
    // thread's own preemption would change what a poll serves).
    std::optional<uint64_t> stop_cycles{};
    uint32_t arp_reachable_ms = 0;      // test knob, see worker_config
    unsigned nb_workers_override = 0;   // launch=false: number of worker contexts (default: from profile)
    std::string recording_dir{};        // empty: the profile's [recording] dir
    // How long a session's end waits for its recording's last write and
    // sync before it gives up (svc::recorder_options::end_timeout_ns); 0:
    // the recorder's own (10 s). Tests of a disk that never answers shorten it.
    uint64_t record_end_timeout_ns = 0;
    // Service hand-off rings (powers of two). Sized for ~80 ms (mixer) and
    // ~160 ms (recorder) of 1000 speakers; tests shrink them to overflow.
    unsigned mixer_ring_size = 4096;
    unsigned record_ring_size = 8192;
    // Each dedicated join lcore's hand-off ring (dataplane.join_lcores): ~2 ms
    // of what one join lcore verifies; tests shrink it to overflow.
    unsigned join_handoff_ring_size = 4096;
    // MESSAGE-INTEGRITY of a burst (dp::worker_config::mi_mode): 0 in the
    // widest lanes the CPU has, 1 one by one (benchmarks compare the two).
    uint8_t join_mi_mode = 0;
};

struct port_report {
    std::string name;
    std::string device;
    std::string driver;
    uint16_t port_id;
    std::string mac;
    bool link_up;
    uint32_t speed_mbps;
    uint64_t rx_offloads;
    uint64_t tx_offloads;
    bool rx_intr = false;       // idle workers wait for its Rx interrupt (dataplane.idle = "adaptive")
};

// The profile's [mixer] section as the mixer takes it.
svc::mix_settings mix_settings_of(const mixer_settings& m);

class relay {
public:
    relay(const profile& p, const relay_options& o = {});
    ~relay();
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    void start();                        // launch workers (launch=true)
    void stop();                         // stop workers, drain, idempotent
    unsigned poll();                     // launch=false: one iteration of every worker
    void flush();                        // launch=false: drain TX buffers

    // Hand one RTP packet (header .. padding) to a session's fan-out as a
    // speaker-packet message, as the mixer does. For benchmarks and tools
    // that feed the relay from inside the process. False if the session is
    // unknown, the pool is empty or a ring was full.
    bool inject_rtp(uint32_t session_id, const uint8_t* rtp, uint16_t len);

    // Mixer and recorder (README.md, "Audio: mix mode and recordings"). With launch=true they run on their
    // own threads (started by start()); with launch=false the caller drives
    // them: `now_ns` is CLOCK_MONOTONIC time as the mixer should see it.
    unsigned poll_services(uint64_t now_ns);
    // Recordings, newest last; finalised ones carry path and duration as soon
    // as their session has ended (the session observer waits for the close).
    std::vector<recording_info> recordings() const;
    std::optional<recording_info> recording(uint32_t session_id) const;
    // One recording by its id (recording_info::id); deleting it once it is
    // closed (svc::recorder::remove).
    std::optional<recording_info> recording_by_id(uint64_t id) const;
    svc::recorder::remove_result delete_recording(uint64_t id);
    svc::mixer_stats mix_stats() const;
    // Why the mix of this session failed, if it did (the mixer dropped its
    // state and its packets; other sessions go on). See svc::mixer.
    std::optional<std::string> mix_error(uint32_t session_id) const;
    // The encoder of the session's mix as libopus reports it (bitrate,
    // complexity, channels, the settings version it took); nullopt while
    // the session does not mix. See svc::mixer::encoder_report.
    std::optional<svc::mix_encoder_report> mix_encoder(uint32_t session_id) const;
    // SIGHUP: a new version of the [mixer] settings (svc::mixer::set_settings:
    // running encoders take it at their next frame boundary, `channels` only
    // sessions whose mix starts after). Throws std::invalid_argument and
    // changes nothing if the mixer cannot run with it. Returns its version.
    uint64_t set_mix_settings(const mixer_settings& m);
    svc::mix_settings mix_settings() const;
    uint64_t mix_settings_version() const;
    recorder_stats rec_stats() const;

    // SIGHUP: the join token keys the data plane verifies with, replaced
    // whole (docs/join.md "Keys and rotation"): the new table is published,
    // an RCU grace period passes (no lcore still reads the old one), then
    // the old keys are wiped and freed. Only on a relay that started with
    // keys, and `jc` must hold at least one (throws std::logic_error, and
    // std::invalid_argument for a secret token_key refuses; nothing changes
    // then). Returns the key ids now held.
    std::vector<unsigned> set_join_keys(const join_config& jc);

    // Install (or re-install, when the speaker set changed) the rte_flow
    // ingress filter on every port that supports it; the software validator
    // always runs regardless. Returns one status line per port. Slow path:
    // stentord calls it after start and on its 100 ms tick.
    std::vector<std::string> refresh_flow_filters();

    relay_state& state();
    // Packet captures (capture.h, docs/capture.md).
    capture_manager& captures();
    // What the planes share (the join desk takes requests from its rings).
    dp::dp_shared& shared();
    rte_mempool* pool() const;
    dp::lcore_counters totals() const;
    std::vector<dp::lcore_counters> per_lcore() const;
    std::vector<unsigned> worker_lcores() const;
    counter_list counters(bool include_zero) const;
    counter_list port_counters() const;  // ethdev basic + extended stats, prefixed port/<name>/
    // The NIC's basic counters of each port, in profile order.
    std::vector<drivers::nic_stats> nic_stats() const;
    // The mixer's and the recorder's service threads (zeros with launch=false).
    svc::service_thread_stats mixer_thread_stats() const;
    svc::service_thread_stats recorder_thread_stats() const;
    std::vector<port_report> ports() const;
    // By port index; nullopt for a port whose PMD keeps no counters.

    struct impl;

private:
    std::unique_ptr<impl> _impl;
};

}  // namespace stentor::control
