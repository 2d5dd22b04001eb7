#include "relay.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include <fmt/format.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "capture.h"
#include "dp_memory.h"
#include "drivers.h"
#include "flow.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_worker.h"
#include "stentor/services/clock.h"
#include "stentor/services/mixer.h"
#include "stentor/services/service_thread.h"

namespace stentor::control {

namespace {

// One published set of join keys: the table the lcores read and the keys it
// points to, built and freed together.
struct join_key_table {
    std::vector<std::unique_ptr<join::token_key>> keys;
    dp::dp_join_keys table{};
};

std::unique_ptr<join_key_table> make_join_key_table(const join_config& jc) {
    auto t = std::make_unique<join_key_table>();
    for (const auto& k : jc.keys) {
        t->keys.push_back(std::make_unique<join::token_key>(k.secret.data(), k.secret.size()));
        t->table.by_id[k.id] = t->keys.back().get();
    }
    return t;
}

}  // namespace

struct relay::impl {
    profile prof;
    relay_options opt;
    rte_mempool* pool = nullptr;
    std::vector<drivers::port_state> ports;
    dp::dp_shared shared;
    dp::dp_neigh* neigh = nullptr;
    rte_rcu_qsbr* rcu = nullptr;
    dp::dp_policer* policers = nullptr;
    dp::dp_session_counts* session_counts = nullptr;
    std::vector<dp::worker_config> cfgs;
    std::vector<rte_ring*> rings;
    dp::lcore_counters* counters = nullptr;
    std::vector<dp::worker*> local;      // launch=false
    std::unique_ptr<relay_state> state;
    bool running = false;
    bool stopped = false;

    // Services (mixer, recorder), each on a service thread off the fan-out cores.
    std::unique_ptr<svc::mixer> mixer;
    std::unique_ptr<svc::recorder> rec;
    std::unique_ptr<svc::service_thread> mixer_thread;
    std::unique_ptr<svc::service_thread> recorder_thread;
    bool services_running = false;
    // Hardware ingress filters (rte_flow), one per port, and the speaker set
    // they were built for; refresh_flow_filters() re-installs on change.
    std::vector<drivers::flow_filter> filters;
    std::vector<drivers::speaker_flow> filtered_speakers;
    bool filters_tried = false;
    unsigned rcu_mixer_id = 0;
    unsigned rcu_recorder_id = 0;
    // Join token keys by key id, as the lcores read them (dp_shared::join_keys).
    std::unique_ptr<join_key_table> join_keys;
    std::mutex join_keys_mu;   // one writer at a time (SIGHUP)
    // Packet capture: its writer and the workers' dp_capture. Destroyed
    // before the workers' state it reads and after the workers stopped.
    std::unique_ptr<capture_manager> capture;
    bool pdump = false;   // rte_pdump_init was called (capture.pdump)

    void on_session(uint32_t id, bool ended);
    void stop_services();

    ~impl() {
        for (auto* w : local) dp::worker_destroy(w);
        local.clear();
        capture.reset();
        if (pdump) drivers::pdump_uninit();
        stop_services();
        mixer.reset();
        rec.reset();
        state.reset();
        for (auto& f : filters) drivers::remove_ingress_filter(f);
        for (auto& p : ports) drivers::port_stop(p.port_id);
        for (auto* r : rings) {
            void* obj;
            while (rte_ring_dequeue(r, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
            rte_ring_free(r);
        }
        dp_free(policers);
        dp_free(session_counts);
        rte_free(rcu);
        dp_free(neigh);
        rte_free(counters);
        if (pool) rte_mempool_free(pool);
    }
};

namespace {

std::string mac_str(const rte_ether_addr& m) {
    char b[32];
    std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m.addr_bytes[0], m.addr_bytes[1],
                  m.addr_bytes[2], m.addr_bytes[3], m.addr_bytes[4], m.addr_bytes[5]);
    return b;
}

// Service threads run on the profile's service lcores' CPUs; without any,
// on the main lcore's (the control plane's), never on a fan-out core where
// they would steal time slices from a busy-polling worker.
std::vector<unsigned> service_lcores(const profile& p, size_t which) {
    const auto& sv = p.dataplane.service_lcores;
    return {sv.empty() ? p.eal.main_lcore : sv[which % sv.size()]};
}

}  // namespace

svc::mix_settings mix_settings_of(const mixer_settings& m) {
    svc::mix_settings s;
    s.channels = m.channels;
    s.bitrate = m.bitrate_kbps * 1000;
    s.complexity = m.complexity;
    s.jitter_ms = m.jitter_ms;
    s.plc_max_frames = m.plc_max_frames;
    s.speaker_timeout_ms = m.speaker_timeout_ms;
    s.max_decoders_per_session = m.max_decoders_per_session;
    return s;
}

void relay::impl::on_session(uint32_t id, bool ended) {
    if (ended) {
        if (capture) capture->session_ended(id);
        rec->session_ended(id);
        return;
    }
    const auto v = state->session(id);
    if (!v) return;
    if (v->mode == session_mode::mix) {
        mixer->set_session_frame_ms(id, v->frame_ms);
        mixer->set_session_max_bitrate(id, v->max_bitrate_kbps * 1000);
    }
    if (v->recording) rec->session_started(id, v->name, std::string(name_of(v->mode)));
}

void relay::impl::stop_services() {
    if (services_running) {
        mixer_thread->stop();
        // Close every recording while the recorder thread still runs (it is
        // the RCU reader that may look at the snapshot), then stop it.
        rec->finalise_all();
        recorder_thread->stop();
        rec->set_threaded(false);
        services_running = false;
    } else if (rec) {
        rec->finalise_all();
    }
}

relay::relay(const profile& p, const relay_options& o) : _impl(std::make_unique<impl>()) {
    auto& im = *_impl;
    im.prof = p;
    im.opt = o;
    const auto& dpc = p.dataplane;

    // Worker lcores: the union of RX and fan-out roles, in order (each owns
    // TX queue <its index> on every port), then the dedicated join lcores
    // (which never send).
    std::vector<unsigned> lcores = dpc.rx_lcores;
    for (unsigned l : dpc.fanout_lcores)
        if (std::find(lcores.begin(), lcores.end(), l) == lcores.end()) lcores.push_back(l);
    std::sort(lcores.begin(), lcores.end());
    const unsigned nb_tx_workers = static_cast<unsigned>(lcores.size());
    if (nb_tx_workers == 0) throw drivers::driver_error("no worker lcores (dataplane.rx_lcores/fanout_lcores)");
    static_assert(max_join_lcores == dp::max_join_lcores);
    if (dpc.join_lcores.size() > dp::max_join_lcores) throw drivers::driver_error("too many join lcores");
    if (!dpc.join_lcores.empty() && p.join.keys.empty())
        throw drivers::driver_error("dataplane.join_lcores without join.keys");
    lcores.insert(lcores.end(), dpc.join_lcores.begin(), dpc.join_lcores.end());
    const unsigned nb_workers = static_cast<unsigned>(lcores.size());

    // The tables [limits] sizes, first: near their ceilings they are
    // gigabytes, and a relay that cannot have them says which setting to
    // lower (table_alloc_error) before it touches a device. Read and written
    // per packet, by slot: scattered over megabytes, so on dp_memory's huge
    // pages (DPDK's own memory is 4 KiB pages without eal.hugepages); zeroed.
    const uint32_t nb_rx_queues = static_cast<uint32_t>(std::max<size_t>(1, dpc.rx_lcores.size()));
    const std::string per_rx = fmt::format(" x {} RX lcore(s) (dataplane.rx_lcores)", nb_rx_queues);
    im.neigh = static_cast<dp::dp_neigh*>(
        dp_alloc_table("the neighbour table", "limits.max_neighbours",
                       fmt::format("limits.max_neighbours {}", p.limits.max_neighbours), p.limits.max_neighbours,
                       sizeof(dp::dp_neigh)));
    im.shared.neigh = im.neigh;
    im.shared.nb_neigh = p.limits.max_neighbours;
    im.policers = static_cast<dp::dp_policer*>(
        dp_alloc_table("the speakers' policers", "limits.max_speakers",
                       fmt::format("limits.max_speakers {}{}", p.limits.max_speakers, per_rx),
                       uint64_t{p.limits.max_speakers} * nb_rx_queues, sizeof(dp::dp_policer)));
    im.shared.policers = im.policers;
    im.shared.nb_policers = p.limits.max_speakers;
    im.shared.nb_rx_queues = nb_rx_queues;
    im.session_counts = static_cast<dp::dp_session_counts*>(
        dp_alloc_table("the sessions' speaker counters", "limits.max_sessions",
                       fmt::format("limits.max_sessions {}{}", p.limits.max_sessions, per_rx),
                       uint64_t{p.limits.max_sessions} * nb_rx_queues, sizeof(dp::dp_session_counts)));
    im.shared.session_counts = im.session_counts;
    im.shared.nb_session_counts = p.limits.max_sessions;

    const int socket = static_cast<int>(rte_socket_id());
    im.pool = drivers::make_pool("stentor_mbufs", p.eal.mbufs, p.eal.mbuf_cache, socket);

    for (size_t i = 0; i < p.ports.size(); ++i) {
        const auto& pc = p.ports[i];
        if (pc.tx_queues < nb_tx_workers)
            throw drivers::driver_error("port " + pc.name + ": tx_queues=" + std::to_string(pc.tx_queues) +
                                        " but " + std::to_string(nb_tx_workers) +
                                        " worker lcores each need their own TX queue");
        if (pc.rx_queues < dpc.rx_lcores.size())
            throw drivers::driver_error("port " + pc.name + ": rx_queues=" + std::to_string(pc.rx_queues) +
                                        " but " + std::to_string(dpc.rx_lcores.size()) + " rx lcores");
        drivers::port_params pp;
        pp.name = pc.name;
        pp.device = pc.device;
        pp.rx_queues = pc.rx_queues;
        pp.tx_queues = pc.tx_queues;
        pp.rx_desc = pc.rx_desc;
        pp.tx_desc = pc.tx_desc;
        pp.mtu = pc.mtu;
        pp.rx_intr = dpc.idle_adaptive;
        if (pc.mac) {
            pp.set_mac = true;
            std::memcpy(pp.mac.addr_bytes, pc.mac->data(), 6);
        }
        im.ports.push_back(drivers::port_start(pp, im.pool));
        im.shared.ethdev[i] = im.ports.back().port_id;
        im.shared.egress_tos[i] = static_cast<uint8_t>(pc.dscp << 2);   // ECN bits 0: not ECN-capable
        auto& id = im.shared.ports[i];
        std::memcpy(id.mac, im.ports.back().mac.addr_bytes, 6);
        id.ip_be = __builtin_bswap32(pc.ipv4);
        id.max_frame = static_cast<uint16_t>(pc.mtu + 14);
        id.udp_port_min = static_cast<uint16_t>(p.ingress.udp_port_min);
        id.udp_port_max = static_cast<uint16_t>(p.ingress.udp_port_max);
        if (pc.ipv6) {
            std::memcpy(id.ip6, pc.ipv6->data(), 16);
            id.has_ip6 = 1;
            // Neighbour solicitations for our address arrive at its
            // solicited-node group MAC 33:33:ff:xx:xx:xx (RFC 2464 7): ask
            // the device for it, or for every multicast group if it keeps no
            // list (the validator drops other groups: ipv6_dst).
            rte_ether_addr mc{{0x33, 0x33, 0xff, (*pc.ipv6)[13], (*pc.ipv6)[14], (*pc.ipv6)[15]}};
            if (rte_eth_dev_set_mc_addr_list(im.ports.back().port_id, &mc, 1) != 0)
                rte_eth_allmulticast_enable(im.ports.back().port_id);
        }
    }
    im.shared.nb_ports = static_cast<uint16_t>(p.ports.size());

    if (o.launch) {
        // Workers, then the mixer and the recorder threads (snapshot readers too).
        im.rcu_mixer_id = nb_workers;
        im.rcu_recorder_id = nb_workers + 1;
        const size_t sz = rte_rcu_qsbr_get_memsize(nb_workers + 2);
        im.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("stentor_rcu", sz, RTE_CACHE_LINE_SIZE));
        if (im.rcu == nullptr || rte_rcu_qsbr_init(im.rcu, nb_workers + 2) != 0)
            throw drivers::driver_error("RCU init failed");
        im.shared.rcu = im.rcu;
    }

    im.counters = static_cast<dp::lcore_counters*>(
        rte_zmalloc("stentor_counters", sizeof(dp::lcore_counters) * nb_workers, RTE_CACHE_LINE_SIZE));
    if (im.counters == nullptr) throw std::bad_alloc();

    const uint64_t hz = rte_get_tsc_hz();
    const unsigned nb_shards = std::max<size_t>(1, dpc.fanout_lcores.size());
    // One message ring per fan-out lcore. Multi-producer: RX lcores and the
    // mixer both hand speaker-packet messages to the shard owners.
    std::vector<rte_ring*> shard_ring(nb_shards, nullptr);
    for (unsigned s = 0; s < nb_shards; ++s) {
        const std::string name = "stentor_fan" + std::to_string(s);
        rte_ring* r = rte_ring_create(name.c_str(), 1024, socket, RING_F_SC_DEQ);
        if (r == nullptr) throw drivers::driver_error("ring " + name + " create failed");
        im.rings.push_back(r);
        shard_ring[s] = r;
        im.shared.shard_rings[s] = r;
    }
    im.shared.nb_shards = nb_shards;
    {
        // ARP replies from RX lcores other than the ARP owner (neigh.h):
        // room for every other RX lcore's hand-off burst (dp_shared.h).
        rte_ring* ar = rte_ring_create("stentor_arp",
                                       dp::arp_ring_size(static_cast<unsigned>(dpc.rx_lcores.size())), socket,
                                       RING_F_SC_DEQ);
        if (ar == nullptr) throw drivers::driver_error("ring stentor_arp create failed");
        im.rings.push_back(ar);
        im.shared.arp_ring = ar;
    }
    if (!p.join.keys.empty()) {
        // Joins (dp_join.h): verified requests to the control plane's join
        // desk, responses back to the ARP owner. 16 Ki entries hold 80 ms
        // of a 200 k/s consent load with the desk stalled on a publish.
        im.join_keys = make_join_key_table(p.join);
        rte_ring* jr = rte_ring_create("stentor_join", 16384, socket, RING_F_SC_DEQ);
        rte_ring* jo = rte_ring_create("stentor_join_out", 16384, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (jr == nullptr || jo == nullptr) throw drivers::driver_error("join ring create failed");
        im.rings.push_back(jr);
        im.rings.push_back(jo);
        im.shared.join_ring = jr;
        im.shared.join_reply_ring = jo;
        im.shared.join_keys.store(&im.join_keys->table, std::memory_order_release);
        im.shared.join_verify_per_s = p.join.verify_per_s;
        // One hand-off ring per dedicated join lcore (RX lcores produce).
        for (size_t j = 0; j < dpc.join_lcores.size(); ++j) {
            const std::string name = "stentor_jv" + std::to_string(j);
            rte_ring* r = rte_ring_create(name.c_str(), o.join_handoff_ring_size, socket, RING_F_SC_DEQ);
            if (r == nullptr) throw drivers::driver_error("ring " + name + " create failed");
            im.rings.push_back(r);
            im.shared.join_handoff[j] = r;
        }
        im.shared.nb_join_lcores = static_cast<uint32_t>(dpc.join_lcores.size());
    }
    // Service rings: many RX lcores produce, one service thread consumes.
    {
        rte_ring* mr = rte_ring_create("stentor_mixer", o.mixer_ring_size, socket, RING_F_SC_DEQ);
        rte_ring* rr = rte_ring_create("stentor_record", o.record_ring_size, socket, RING_F_SC_DEQ);
        if (mr == nullptr || rr == nullptr) throw drivers::driver_error("service ring create failed");
        im.rings.push_back(mr);
        im.rings.push_back(rr);
        im.shared.mixer_ring = mr;
        im.shared.record_ring = rr;
        svc::mixer_config mc;
        mc.pool = im.pool;
        mc.shared = &im.shared;
        mc.in_ring = mr;
        mc.settings = mix_settings_of(p.mixer);
        im.mixer = std::make_unique<svc::mixer>(mc);
        svc::recorder_options ro;
        ro.dir = o.recording_dir.empty() ? p.recording.dir : o.recording_dir;
        ro.max_tracks_per_recording = p.recording.max_tracks_per_recording;
        ro.max_tracks = p.recording.max_tracks;
        if (o.record_end_timeout_ns != 0) ro.end_timeout_ns = o.record_end_timeout_ns;
        im.rec = std::make_unique<svc::recorder>(ro, im.shared, rr);
    }
    for (unsigned t = 0; t < nb_workers; ++t) {
        dp::worker_config c;
        c.lcore_id = lcores[t];
        c.thread_id = t;
        auto rx_it = std::find(dpc.rx_lcores.begin(), dpc.rx_lcores.end(), lcores[t]);
        auto fo_it = std::find(dpc.fanout_lcores.begin(), dpc.fanout_lcores.end(), lcores[t]);
        c.do_rx = rx_it != dpc.rx_lcores.end();
        c.rx_queue = c.do_rx ? static_cast<uint16_t>(rx_it - dpc.rx_lcores.begin()) : 0;
        c.arp_owner = c.do_rx && c.rx_queue == 0;
        c.do_fanout = fo_it != dpc.fanout_lcores.end();
        c.fanout_shard = c.do_fanout ? static_cast<int>(fo_it - dpc.fanout_lcores.begin()) : -1;
        c.tx_queue = static_cast<uint16_t>(t < nb_tx_workers ? t : 0);   // a join lcore never sends
        if (t >= nb_tx_workers) {
            c.do_join = true;
            c.join_in = im.shared.join_handoff[t - nb_tx_workers];
        }
        c.burst = dpc.burst;
        c.deadline_cycles = hz * dpc.frame_deadline_us / 1000000;
        c.drain_cycles = hz * dpc.tx_drain_us / 1000000;
        c.replica_budget = o.replica_budget;
        c.iteration_budget = o.iteration_budget != 0 ? o.iteration_budget : dpc.iteration_budget;
        c.spare_budget = o.spare_budget != 0 ? std::min(o.spare_budget, c.iteration_budget)
                         : o.launch          ? c.iteration_budget / 2
                                             : 0;
        c.stop_cycles = o.stop_cycles ? *o.stop_cycles : o.launch ? hz * dp::stop_check_us / 1000000 : 0;
        c.arp_reachable_ms = o.arp_reachable_ms;
        c.mi_mode = o.join_mi_mode;
        c.idle_adaptive = dpc.idle_adaptive;
        c.idle_sleep_max_us = dpc.idle_sleep_max_us;
        for (size_t i = 0; i < im.ports.size(); ++i)
            if (im.ports[i].rx_intr) c.rx_intr_ports |= 1u << i;
        c.pool = im.pool;
        c.in_ring = c.do_fanout ? shard_ring[static_cast<unsigned>(c.fanout_shard)] : nullptr;
        c.counters = &im.counters[t];
        c.shared = &im.shared;
        im.cfgs.push_back(c);
    }
    {
        std::vector<std::string> names;
        for (const auto& pc : p.ports) names.push_back(pc.name);
        im.capture = std::make_unique<capture_manager>(
            p.capture, capture_identity{"stentord", p.eal.file_prefix}, im.shared, nb_workers,
            std::move(names), [&im](uint32_t sid) -> std::optional<unsigned> {
                if (!im.state) return std::nullopt;
                const auto v = im.state->session(sid);
                if (!v) return std::nullopt;
                return v->udp_port;
            });
        im.shared.capture = im.capture->dp();
    }
    if (p.capture.pdump) {
        // dpdk-dumpcap (a secondary process) asks this process over EAL's
        // IPC to copy a queue's packets to it; nothing runs until it does.
        drivers::pdump_init();
        im.pdump = true;
    }
    im.state = std::make_unique<relay_state>(p, im.shared, nb_shards);
    im.state->set_session_observer([&im](uint32_t id, bool ended) { im.on_session(id, ended); });
    if (!o.launch)
        for (auto& c : im.cfgs) {
            dp::worker* w = dp::worker_create(c);
            if (w == nullptr) throw std::bad_alloc();
            im.local.push_back(w);
        }
}

relay::~relay() { stop(); }

void relay::start() {
    auto& im = *_impl;
    if (!im.opt.launch || im.running) return;
    im.shared.stop.store(false, std::memory_order_relaxed);
    for (auto& c : im.cfgs) {
        if (c.lcore_id == rte_get_main_lcore())
            throw drivers::driver_error("lcore " + std::to_string(c.lcore_id) + " is the main lcore");
        if (rte_eal_remote_launch(dp::worker_main, &c, c.lcore_id) != 0)
            throw drivers::driver_error("cannot launch worker on lcore " + std::to_string(c.lcore_id));
    }
    im.running = true;
    if (!im.services_running) {
        im.mixer_thread = std::make_unique<svc::service_thread>(
            svc::service_thread_config{.name = "stentor-mixer", .lcores = service_lcores(im.prof, 0),
                                       .rcu = im.rcu, .rcu_thread_id = im.rcu_mixer_id},
            [&im](uint64_t now) {
                im.mixer->poll(now);
                // Wake for the next frame deadline, and at least every 5 ms
                // to take speaker packets of sessions not yet ticking.
                return std::min(im.mixer->next_deadline_ns(), now + 5000000);
            });
        im.recorder_thread = std::make_unique<svc::service_thread>(
            svc::service_thread_config{.name = "stentor-recorder", .lcores = service_lcores(im.prof, 1),
                                       .rcu = im.rcu, .rcu_thread_id = im.rcu_recorder_id},
            [&im](uint64_t now) {
                // Busy: come back at once; idle: 2 ms (the ring holds 8192).
                return im.rec->poll() > 0 ? now : now + 2000000;
            },
            // The disk, offline as a reader: a stalled open or fsync holds
            // no publish (issue 10, item 6).
            [&im](uint64_t now) { return im.rec->io(now) > 0 ? now : now + 2000000; });
        try {
            im.mixer_thread->start();
            im.rec->set_threaded(true);
            im.recorder_thread->start();
        } catch (...) {
            im.mixer_thread->stop();
            im.rec->set_threaded(false);
            throw;
        }
        im.services_running = true;
    }
}

void relay::stop() {
    auto& im = *_impl;
    // A running capture is closed first, while the workers still report
    // quiescent states (its writer waits for a grace period).
    if (im.capture) im.capture->stop_all("relay_stopping");
    if (im.running) {
        im.shared.stop.store(true, std::memory_order_relaxed);
        for (auto& c : im.cfgs) rte_eal_wait_lcore(c.lcore_id);
        im.running = false;
    }
    im.stop_services();
}

unsigned relay::poll_services(uint64_t now_ns) {
    auto& im = *_impl;
    if (im.services_running) return 0;
    return im.mixer->poll(now_ns) + im.rec->poll() + im.rec->io(svc::mono_ns());
}

std::vector<recording_info> relay::recordings() const { return _impl->rec->recordings(); }
std::optional<recording_info> relay::recording(uint32_t session_id) const { return _impl->rec->recording(session_id); }
std::optional<recording_info> relay::recording_by_id(uint64_t id) const { return _impl->rec->recording_by_id(id); }
svc::recorder::remove_result relay::delete_recording(uint64_t id) { return _impl->rec->remove(id); }
svc::mixer_stats relay::mix_stats() const { return _impl->mixer->stats().snapshot(); }
std::optional<std::string> relay::mix_error(uint32_t session_id) const { return _impl->mixer->session_error(session_id); }
std::optional<svc::mix_encoder_report> relay::mix_encoder(uint32_t session_id) const {
    return _impl->mixer->encoder_report(session_id);
}
uint64_t relay::set_mix_settings(const mixer_settings& m) { return _impl->mixer->set_settings(mix_settings_of(m)); }
svc::mix_settings relay::mix_settings() const { return _impl->mixer->settings(); }
uint64_t relay::mix_settings_version() const { return _impl->mixer->settings_version(); }
recorder_stats relay::rec_stats() const { return _impl->rec->stats(); }

std::vector<unsigned> relay::set_join_keys(const join_config& jc) {
    auto& im = *_impl;
    if (im.join_keys == nullptr) throw std::logic_error("joins are off: the relay started without join keys");
    if (jc.keys.empty()) throw std::logic_error("no join keys: joins cannot be switched off while the relay runs");
    auto next = make_join_key_table(jc);   // throws before anything changes
    std::lock_guard g(im.join_keys_mu);
    im.shared.join_keys.store(&next->table, std::memory_order_release);
    // Every lcore that could hold the old table passes a quiescent state
    // first (without RCU, launch=false, the workers run on this thread).
    if (im.rcu != nullptr) rte_rcu_qsbr_synchronize(im.rcu, RTE_QSBR_THRID_INVALID);
    im.join_keys = std::move(next);   // the old keys' destructors wipe them
    std::vector<unsigned> ids;
    for (unsigned id = 0; id < 256; ++id)
        if (im.join_keys->table.by_id[id] != nullptr) ids.push_back(id);
    return ids;
}

unsigned relay::poll() {
    unsigned work = 0;
    for (auto* w : _impl->local) work += dp::worker_poll(w);
    return work;
}

void relay::flush() {
    for (auto* w : _impl->local) dp::worker_flush(w);
}

bool relay::inject_rtp(uint32_t session_id, const uint8_t* rtp, uint16_t len) {
    auto& im = *_impl;
    const dp::dp_snapshot* s = im.shared.snapshot.load(std::memory_order_acquire);
    if (s == nullptr) return false;
    uint32_t index = UINT32_MAX;
    for (uint32_t i = 0; i < s->nb_sessions; ++i)
        if (s->sessions[i]->generation != 0 && s->sessions[i]->id == session_id) index = i;
    if (index == UINT32_MAX) return false;
    rte_mbuf* m = rte_pktmbuf_alloc(im.pool);
    if (m == nullptr) return false;
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        return false;
    }
    std::memcpy(d, rtp, len);
    dp::set_message_session(m, index, s->sessions[index]->generation);
    // Not a worker: no RCU thread id. The snapshot stays valid because the
    // control plane publishes from this same thread in benchmarks and tools.
    static dp::lcore_counters scratch{};
    return dp::publish_message(im.shared, *s, m, false, &scratch);
}

std::vector<std::string> relay::refresh_flow_filters() {
    auto& im = *_impl;
    std::vector<drivers::speaker_flow> want;
    for (const auto& sv : im.state->sessions())
        for (const auto& sp : sv.speakers)
            want.push_back({sp.ip, static_cast<uint16_t>(sp.port), static_cast<uint16_t>(sv.udp_port)});
    std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) {
        return std::tie(a.src_ip, a.src_port, a.dst_port) < std::tie(b.src_ip, b.src_port, b.dst_port);
    });
    const bool same = im.filters_tried && want.size() == im.filtered_speakers.size() &&
                      std::equal(want.begin(), want.end(), im.filtered_speakers.begin(), [](const auto& a, const auto& b) {
                          return a.src_ip == b.src_ip && a.src_port == b.src_port && a.dst_port == b.dst_port;
                      });
    std::vector<std::string> status;
    if (!same) {
        const bool first = !im.filters_tried;
        im.filters.resize(im.ports.size());
        for (size_t i = 0; i < im.ports.size(); ++i) {
            // A port that refused the rules once (no rte_flow, or not these
            // patterns) keeps refusing: the software path does the work.
            if (!first && !im.filters[i].active) continue;
            drivers::remove_ingress_filter(im.filters[i]);
            drivers::flow_filter_spec spec;
            spec.relay_ip = im.prof.ports[i].ipv4;
            spec.udp_port_min = static_cast<uint16_t>(im.prof.ingress.udp_port_min);
            spec.udp_port_max = static_cast<uint16_t>(im.prof.ingress.udp_port_max);
            spec.queue_id = 0;   // rx lcore 0 owns the speakers' queue
            spec.speakers = want;
            im.filters[i] = drivers::install_ingress_filter(im.ports[i].port_id, spec);
        }
        im.filtered_speakers = std::move(want);
        im.filters_tried = true;
    }
    for (size_t i = 0; i < im.filters.size(); ++i)
        status.push_back(im.prof.ports[i].name + ": " +
                         (im.filters[i].active ? "hardware filter active (" + std::to_string(im.filters[i].rules.size()) + " rules)"
                                               : "software filter only (" + im.filters[i].reason + ")"));
    return status;
}

dp::dp_shared& relay::shared() { return _impl->shared; }

relay_state& relay::state() { return *_impl->state; }
capture_manager& relay::captures() { return *_impl->capture; }
rte_mempool* relay::pool() const { return _impl->pool; }

dp::lcore_counters relay::totals() const {
    dp::lcore_counters t{};
    for (size_t i = 0; i < _impl->cfgs.size(); ++i) dp::accumulate(t, _impl->counters[i]);
    if (_impl->mixer) dp::accumulate(t, _impl->mixer->counters());   // its ring_full drops
    return t;
}

std::vector<dp::lcore_counters> relay::per_lcore() const {
    std::vector<dp::lcore_counters> v;
    for (size_t i = 0; i < _impl->cfgs.size(); ++i) v.push_back(dp::snapshot(_impl->counters[i]));
    return v;
}

std::vector<unsigned> relay::worker_lcores() const {
    std::vector<unsigned> v;
    for (auto& c : _impl->cfgs) v.push_back(c.lcore_id);
    return v;
}

counter_list relay::counters(bool include_zero) const {
    std::vector<std::string> names;
    for (auto& p : _impl->prof.ports) names.push_back(p.name);
    counter_list out = named_counters(totals(), names, include_zero);
    append_stats(out, "mixer", _impl->mixer->stats().snapshot(), include_zero);
    append_stats(out, "recorder", _impl->rec->stats(), include_zero);
    // Without threads (launch=false) the caller steps the services: zeros.
    const auto thread_stats = [](const std::unique_ptr<svc::service_thread>& t) {
        return t ? t->stats() : svc::service_thread_stats{};
    };
    append_stats(out, "mixer/thread", thread_stats(_impl->mixer_thread), include_zero);
    append_stats(out, "recorder/thread", thread_stats(_impl->recorder_thread), include_zero);
    _impl->capture->append_counters(out, include_zero);
    return out;
}

counter_list relay::port_counters() const {
    counter_list out;
    for (auto& p : _impl->ports)
        for (auto& [k, v] : drivers::port_stats(p.port_id)) out.emplace_back("port/" + p.name + "/" + k, v);
    return out;
}

std::vector<drivers::nic_stats> relay::nic_stats() const {
    std::vector<drivers::nic_stats> out;
    for (auto& p : _impl->ports) out.push_back(drivers::port_nic_stats(p.port_id));
    return out;
}

svc::service_thread_stats relay::mixer_thread_stats() const {
    return _impl->mixer_thread ? _impl->mixer_thread->stats() : svc::service_thread_stats{};
}

svc::service_thread_stats relay::recorder_thread_stats() const {
    return _impl->recorder_thread ? _impl->recorder_thread->stats() : svc::service_thread_stats{};
}

std::vector<port_report> relay::ports() const {
    std::vector<port_report> out;
    for (size_t i = 0; i < _impl->ports.size(); ++i) {
        auto s = _impl->ports[i];
        drivers::port_link(s);
        out.push_back({s.name, _impl->prof.ports[i].device, s.driver, s.port_id, mac_str(s.mac), s.link_up,
                       s.link_speed_mbps, s.rx_offloads, s.tx_offloads, s.rx_intr});
    }
    return out;
}

}  // namespace stentor::control
