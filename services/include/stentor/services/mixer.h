// The mixer service: sessions in mix mode send their speaker-packet messages
// here (dp_shared::mixer_ring) instead of to the fan-out lcores. Per session
// and speaker (by SSRC) a jitter buffer and an Opus decoder; every frame
// period the decoded speakers are summed, limited, encoded once with one
// encoder per session and published as a new speaker-packet message with the
// session's own SSRC, sequence numbers and timestamps, so fan-out (and the
// recorder) treat the mix exactly like a forwarded stream.
//
// Pure logic over messages and a clock the caller passes in (CLOCK_MONOTONIC
// nanoseconds): no ethdev calls, no threads. The relay runs it on a plain
// service thread off the fan-out cores; tests drive it with a fake clock.
//
// Jitter buffer and concealment, per speaker:
//   - playout of a new speaker starts jitter_ms after its first packet
//     arrives; from then on the speaker's RTP timestamp advances by the frames
//     played, independent of arrival times (CLOCK_MONOTONIC deadlines);
//   - the packet whose timestamp is due is decoded; a due packet that is
//     missing while the next one in sequence is already buffered with a later
//     timestamp is a DTX gap (the sender sent nothing): silence;
//   - a missing packet otherwise is lost or late: Opus PLC (opus_decode with
//     no data) for up to plc_max_frames, then silence (a sender in DTX looks
//     exactly like this until its next packet arrives);
//   - a packet arriving after its slot was played is counted late and dropped;
//   - a speaker without a packet for speaker_timeout_ms is dropped (its
//     decoder is freed);
//   - a frame period in which no speaker produced audio (all silent: DTX,
//     gone quiet past concealment, or none left) emits nothing, like DTX on
//     the mix: a million listeners are not sent silence. Timestamps keep
//     running with the clock, so the next talkspurt (marker bit set) lands at
//     the right place on the timeline (and in the recording).
//
// Clipping protection: the float sum of all speakers goes through a peak
// limiter: per frame the gain needed to keep the peak under -0.3 dBFS is
// applied at once (ramped across the frame from the previous gain, so no
// click) and released towards unity with a ~0.5 s time constant; a hard clip
// after the limiter only ever touches samples inside an attack ramp. Two
// speakers at full level therefore come out 6 dB quieter instead of clipped,
// and a lone speaker passes unchanged (gain 1).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stentor/dp_counters.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_snapshot.h"
#include "stentor/rtp.h"

namespace stentor::svc {

// The mixer's settings ([mixer] in the profile). All of them may change
// while sessions mix (SIGHUP, mixer::set_settings): the mixer thread takes a
// new version once per poll() and each session's encoder takes it at its
// next frame boundary (opus_encoder_ctl). `channels` is fixed for an
// encoder's life (the mix buffer, the Opus stream and the recording's
// header are built for it): a new value applies to sessions whose mix
// starts after it, a running session keeps its channel count.
// _(field, what). Append only.
#define STENTOR_FOREACH_MIX_SETTING(_)                                                            \
    _(channels, "decode, mix and encode channels (1 or 2), 48 kHz: sessions whose mix starts after") \
    _(bitrate, "encoder bitrate, bit/s (capped per session at its max_bitrate_kbps)")             \
    _(complexity, "encoder complexity 0..10: one encode per session per frame")                     \
    _(jitter_ms, "playout delay of a speaker after its first packet (speakers that start after)")   \
    _(plc_max_frames, "concealed frames before a missing speaker goes silent")                      \
    _(speaker_timeout_ms, "a speaker silent this long is dropped")                                  \
    _(max_decoders_per_session, "Opus decoders (speaker SSRCs) per mixed session")

struct mix_settings {
    unsigned channels = 2;
    unsigned bitrate = 64000;
    unsigned complexity = 5;
    unsigned jitter_ms = 60;
    unsigned plc_max_frames = 3;
    unsigned speaker_timeout_ms = 5000;
    // A new SSRC past it is refused, counted once (speakers_refused) and
    // logged once, its packets counted (refused_packets). A speaker silent
    // for speaker_timeout_ms frees its place. A lower value refuses new
    // SSRCs; decoders already running stay until their speaker times out.
    unsigned max_decoders_per_session = 16;
    bool operator==(const mix_settings&) const = default;
};

// Why libopus or the mixer cannot run with `s` (the setting's name and the
// range), or nullopt. mixer::mixer and set_settings refuse such settings.
std::optional<std::string> check(const mix_settings& s);

struct mixer_config {
    rte_mempool* pool = nullptr;       // mbufs of the mixed packets
    dp::dp_shared* shared = nullptr;       // snapshot, shard rings, record ring
    rte_ring* in_ring = nullptr;       // speaker-packet messages of mix sessions
    unsigned default_frame_ms = 20;    // for sessions the control plane did not describe
    mix_settings settings{};           // the first version (set_settings() replaces it)
};

// What a session's encoder runs with, read back from libopus
// (OPUS_GET_BITRATE, OPUS_GET_COMPLEXITY) by the mixer thread when it
// configured the encoder: at the session's first frame and at the first
// frame boundary after each new settings version.
struct mix_encoder_report {
    unsigned channels = 0;
    int bitrate = 0;                   // bit/s, as libopus reports it
    int complexity = 0;
    uint64_t settings_version = 0;     // mixer::settings_version() it was configured from
    bool operator==(const mix_encoder_report&) const = default;
};

// Counters of the mixer thread (one writer), read racily by the control plane
// (snapshot()). _(field, help), append only: exported as mixer/<field>.
#define STENTOR_FOREACH_MIXER_STAT(_) \
    _(packets_in, "speaker packets taken from the ring") \
    _(not_mix, "message for a session that is not (or no longer) in mix mode") \
    _(bad_packets, "RTP or Opus payload unusable") \
    _(late, "arrived after its playout slot") \
    _(duplicates, "same timestamp already buffered") \
    _(overflow, "jitter buffer full or too deep: oldest frame skipped") \
    _(decoded_frames, "speaker frames decoded") \
    _(plc_frames, "concealed with Opus PLC") \
    _(silent_frames, "DTX gaps or speakers missing past plc_max_frames") \
    _(decode_errors, "Opus decoder errors") \
    _(speakers_added, "speakers (SSRCs) that got a decoder") \
    _(speakers_dropped, "speakers dropped after speaker_timeout_ms of silence") \
    _(frames_out, "mixed packets published") \
    _(encode_errors, "Opus encoder errors") \
    _(no_mbuf, "mempool empty for a mixed packet") \
    _(publish_failed, "some fan-out or record ring was full") \
    _(ticks_skipped, "frame periods missed because the thread ran late") \
    _(limited_frames, "frames where the limiter reduced the gain") \
    _(stale, "message whose session ended or was replaced while it was queued") \
    _(session_errors, "sessions whose mix failed (session_error() says why); the others go on") \
    _(failed_session_packets, "speaker packets of a failed session, dropped until it ends") \
    _(speakers_refused, "new SSRCs refused: the session had max_decoders_per_session decoders (logged once per SSRC)") \
    _(refused_packets, "packets of refused SSRCs, not mixed") \
    _(settings_loaded, "new settings versions (SIGHUP) the mixer thread took") \
    _(encoders_retuned, "session encoders given a new settings version at a frame boundary")

struct alignas(dp::cache_line) mixer_stats {
    STENTOR_STAT_FIELDS(STENTOR_FOREACH_MIXER_STAT, mixer_stats)
};

class mixer {
public:
    explicit mixer(const mixer_config& cfg);
    ~mixer();
    mixer(const mixer&) = delete;
    mixer& operator=(const mixer&) = delete;

    // Control plane (any thread): frame duration of a session's mix. A
    // session not described gets default_frame_ms. Checked when the
    // session's mix starts: a duration Opus cannot encode fails that session.
    void set_session_frame_ms(uint32_t session_id, unsigned frame_ms);
    // Control plane (any thread): the session's max_bitrate_kbps, as bit/s.
    // Admission planned the session's stream at that rate, so its encoder
    // runs at min(settings.bitrate, this); 0 (or not described): no cap.
    // Read when the session's encoder is configured.
    void set_session_max_bitrate(uint32_t session_id, unsigned bps);

    // Control plane (any thread): a new version of the settings (SIGHUP).
    // Throws std::invalid_argument (check()) and changes nothing if libopus
    // cannot run with them. The mixer thread takes the version at its next
    // poll(), without a lock (a sequence lock: it retries at the next poll
    // if it raced a writer); each running session's encoder takes it at its
    // next frame boundary (opus_encoder_ctl, no allocation), except
    // `channels` (see mix_settings). Returns the new settings_version().
    uint64_t set_settings(const mix_settings& s);
    // Control plane (any thread): the latest settings given, and their
    // version (1 for the constructor's, +1 per set_settings()).
    mix_settings settings() const;
    uint64_t settings_version() const noexcept;
    // Mixer thread: the settings it runs with (the version it took at its
    // latest poll()).
    const mix_settings& settings_in_use() const noexcept { return _set; }
    // Control plane (any thread): the encoder of the session's mix as the
    // mixer thread last configured it; nullopt before its mix starts, after
    // it ends or fails.
    std::optional<mix_encoder_report> encoder_report(uint32_t session_id) const;

    // Control plane (any thread): why the latest session under this id
    // failed, if it did. A session fails alone: whatever its state throws
    // (a decoder or encoder libopus cannot create, a frame duration it
    // cannot encode, no memory) frees its state, counts session_errors, logs
    // one line on stderr, and drops its packets (failed_session_packets)
    // until it ends; every other session goes on. Cleared when a session
    // under the same id starts mixing.
    std::optional<std::string> session_error(uint32_t session_id) const;

    // Mixer thread: take queued messages into the jitter buffers, then run
    // every session whose frame deadline is <= now_ns. Reads the snapshot
    // once; the caller holds whatever RCU reader state it needs. Returns the
    // work done (messages + frames).
    unsigned poll(uint64_t now_ns);

    // Earliest frame deadline of any active session, or UINT64_MAX.
    uint64_t next_deadline_ns() const noexcept;

    const mixer_stats& stats() const noexcept { return _stats; }
    const dp::lcore_counters& counters() const noexcept { return _counters; }
    unsigned nb_sessions() const noexcept;
    unsigned nb_speakers() const noexcept;

    struct session;

private:
    void take(const rte_mbuf* m, uint64_t now_ns) noexcept;
    session& session_of(const dp::dp_session& ds, uint32_t idx, uint64_t now_ns);
    void buffer(session& s, const rtp::view& v, uint64_t now_ns);
    void tick(session& s, uint64_t now_ns);
    void fail(session& s, const char* why) noexcept;
    void fail(const dp::dp_session& ds, uint32_t idx, const char* why) noexcept;
    void load_settings() noexcept;
    void configure(session& s);
    void report(const session& s) noexcept;
    void forget(const session& s) noexcept;
    unsigned frame_ms_of(uint32_t id);

    // The settings as the control plane wrote them: a sequence lock, one
    // writer at a time (under _ctl_mu), read by the mixer thread without a
    // lock. Fields are atomics so a read that races a write is no data race;
    // the reader keeps what it read only if seq was even and unchanged
    // around it.
    struct settings_cell {
        std::atomic<uint64_t> seq{0};   // odd while written; version = seq / 2
#define STENTOR_X(f, what) std::atomic<unsigned> f{0};
        STENTOR_FOREACH_MIX_SETTING(STENTOR_X)
#undef STENTOR_X
    };

    mixer_config _cfg;
    mix_settings _set;                     // mixer thread: the version in use
    uint64_t _set_seq = 0;                 // mixer thread: settings_cell::seq of _set
    settings_cell _cell;
    const dp::dp_snapshot* _snap = nullptr;   // loaded once per poll()
    mixer_stats _stats{};
    dp::lcore_counters _counters{};        // publish_message's drops (which ring was full)
    std::unordered_map<uint32_t, std::unique_ptr<session>> _sessions;   // by session index
    mutable std::mutex _ctl_mu;                                         // what the control plane reads or sets:
    std::unordered_map<uint32_t, unsigned> _frame_ms;                   //   by session id
    std::unordered_map<uint32_t, unsigned> _max_bitrate;                //   by session id, bit/s
    std::unordered_map<uint32_t, std::string> _errors;                  //   by session id
    // by session id: (generation, report); a session's end or failure
    // removes its own entry only, not that of a newer session under its id
    std::unordered_map<uint32_t, std::pair<uint64_t, mix_encoder_report>> _reports;
};

}  // namespace stentor::svc
