#include "stentor/services/mixer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include <opus/opus.h>
#include <spdlog/spdlog.h>

#include "messages.h"
#include "stentor/dp_shared.h"
#include "stentor/dp_srtp.h"
#include "stentor/rtp.h"
#include "stentor/wire.h"

namespace stentor::svc {
namespace {

constexpr int sample_rate = 48000;
constexpr unsigned jb_slots = 16;            // 320 ms of 20 ms frames
constexpr unsigned max_payload = 1500;
constexpr int max_packet_samples = 5760;     // 120 ms, the longest Opus packet
// Refused SSRCs a session remembers, so that each is counted and logged
// once; past that, their packets are still counted (16 KiB per session).
constexpr size_t max_refused_remembered = 4096;
constexpr float limiter_threshold = 0.966f;  // -0.3 dBFS
constexpr double limiter_release_ms = 500.0;
constexpr unsigned max_encoded = 1400;       // fits any MTU-1500 path with headers

struct jb_slot {
    bool used;
    uint16_t seq;
    uint16_t len;
    uint32_t ts;
    uint8_t data[max_payload];
};

struct speaker {
    uint32_t ssrc = 0;
    OpusDecoder* dec = nullptr;
    bool started = false;
    bool have_seq = false;
    uint32_t next_ts = 0;
    uint16_t last_seq = 0;
    uint64_t last_arrival_ns = 0;
    uint64_t play_at_ns = 0;
    int last_frame = 960;
    unsigned plc_run = 0;
    bool audible = false;              // the latest stretch produced was decoded or concealed audio
    unsigned nb_used = 0;
    size_t fifo_len = 0;               // samples per channel in fifo
    std::vector<float> fifo;
    jb_slot slots[jb_slots];

    speaker(uint32_t s, unsigned channels) : ssrc(s), fifo(size_t{2} * max_packet_samples * channels) {
        int err = 0;
        dec = opus_decoder_create(sample_rate, static_cast<int>(channels), &err);
        if (dec == nullptr || err != OPUS_OK) throw std::runtime_error("opus_decoder_create failed");
        for (auto& sl : slots) sl.used = false;
    }
    ~speaker() { opus_decoder_destroy(dec); }
    speaker(const speaker&) = delete;
    speaker& operator=(const speaker&) = delete;

    void restart(uint64_t play_at) noexcept {
        started = false;
        have_seq = false;
        fifo_len = 0;
        plc_run = 0;
        play_at_ns = play_at;
        opus_decoder_ctl(dec, OPUS_RESET_STATE);
    }

    // Slot with the earliest timestamp, or -1.
    int earliest() const noexcept {
        int best = -1;
        for (unsigned i = 0; i < jb_slots; ++i)
            if (slots[i].used && (best < 0 || rtp::ts_diff(slots[i].ts, slots[best].ts) < 0)) best = static_cast<int>(i);
        return best;
    }
};

}  // namespace

struct mixer::session {
    uint32_t index = 0;
    uint32_t id = 0;
    uint64_t generation = 0;
    unsigned channels = 2;             // of its encoder and mix, fixed for the session's life
    unsigned max_bitrate = 0;          // the session's cap, bit/s (0: none)
    uint64_t settings_seq = 0;         // the mixer's settings its encoder was configured from
    unsigned frame_samples = 960;
    uint64_t frame_ns = 20000000;
    OpusEncoder* enc = nullptr;
    uint64_t next_deadline_ns = 0;
    uint64_t tick_no = 0;
    uint32_t ts_base = 0;
    uint16_t seq = 0;
    uint32_t ssrc = 0;
    srtp::tx_stream srtp_tx{};         // the mix's proposal for its egress index when the session protects (dp_srtp.h)
    bool talking = false;              // the previous frame period emitted a packet
    bool failed = false;               // see fail(): no state, packets dropped until the session ends
    float gain = 1.0f;
    float release_coef = 0.04f;
    std::vector<std::unique_ptr<speaker>> speakers;
    std::vector<float> mix;
    std::unordered_set<uint32_t> refused;   // SSRCs over the decoder cap (counted and logged once)
    bool refused_overflow = false;

    ~session() {
        if (enc != nullptr) opus_encoder_destroy(enc);
    }
};

std::optional<std::string> check(const mix_settings& s) {
    // libopus' own ranges (opus_encoder_ctl refuses anything else); the
    // profile loader checks the same ranges with the file and line.
    if (s.channels != 1 && s.channels != 2) return "channels " + std::to_string(s.channels) + " is not 1 or 2";
    if (s.bitrate < 6000 || s.bitrate > 510000)
        return "bitrate " + std::to_string(s.bitrate) + " bit/s is out of Opus' range 6000..510000";
    if (s.complexity > 10) return "complexity " + std::to_string(s.complexity) + " is out of range 0..10";
    if (s.max_decoders_per_session == 0) return "max_decoders_per_session must be at least 1";
    return std::nullopt;
}

mixer::mixer(const mixer_config& cfg) : _cfg(cfg) {
    if (_cfg.default_frame_ms == 0) _cfg.default_frame_ms = 20;
    set_settings(cfg.settings);
    _set = cfg.settings;
    _set_seq = _cell.seq.load(std::memory_order_relaxed);
}

mixer::~mixer() {
    if (_cfg.in_ring != nullptr) {
        void* obj;
        while (rte_ring_dequeue(_cfg.in_ring, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
    }
}

void mixer::set_session_frame_ms(uint32_t session_id, unsigned frame_ms) {
    std::lock_guard lk(_ctl_mu);
    _frame_ms[session_id] = frame_ms;
}

void mixer::set_session_max_bitrate(uint32_t session_id, unsigned bps) {
    std::lock_guard lk(_ctl_mu);
    _max_bitrate[session_id] = bps;
}

uint64_t mixer::set_settings(const mix_settings& v) {
    if (auto why = check(v)) throw std::invalid_argument("mixer: " + *why);
    std::lock_guard lk(_ctl_mu);
    // Sequence lock, writer side (Boehm, "Can seqlocks get along with
    // programming language memory models?", 2012): odd, fence, fields, even.
    const uint64_t seq = _cell.seq.load(std::memory_order_relaxed);
    _cell.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
#define STENTOR_X(f, what) _cell.f.store(v.f, std::memory_order_relaxed);
    STENTOR_FOREACH_MIX_SETTING(STENTOR_X)
#undef STENTOR_X
    _cell.seq.store(seq + 2, std::memory_order_release);
    return (seq + 2) / 2;
}

mix_settings mixer::settings() const {
    std::lock_guard lk(_ctl_mu);   // writers hold it: no torn read here
    mix_settings v;
#define STENTOR_X(f, what) v.f = _cell.f.load(std::memory_order_relaxed);
    STENTOR_FOREACH_MIX_SETTING(STENTOR_X)
#undef STENTOR_X
    return v;
}

uint64_t mixer::settings_version() const noexcept { return _cell.seq.load(std::memory_order_acquire) / 2; }

void mixer::load_settings() noexcept {
    // Sequence lock, reader side: once per poll, no lock, no allocation. A
    // read that raced a writer is dropped; the next poll reads again.
    const uint64_t seq = _cell.seq.load(std::memory_order_acquire);
    if (seq == _set_seq || (seq & 1) != 0) return;
    mix_settings v;
#define STENTOR_X(f, what) v.f = _cell.f.load(std::memory_order_relaxed);
    STENTOR_FOREACH_MIX_SETTING(STENTOR_X)
#undef STENTOR_X
    std::atomic_thread_fence(std::memory_order_acquire);
    if (_cell.seq.load(std::memory_order_relaxed) != seq) return;
    _set = v;
    _set_seq = seq;
    ++_stats.settings_loaded;
}

std::optional<mix_encoder_report> mixer::encoder_report(uint32_t session_id) const {
    std::lock_guard lk(_ctl_mu);
    auto it = _reports.find(session_id);
    if (it == _reports.end()) return std::nullopt;
    return it->second.second;
}

// Mixer thread, when a session's encoder was (re)configured: at its first
// frame and once per settings version, never per frame.
void mixer::report(const session& s) noexcept {
    mix_encoder_report r;
    r.channels = s.channels;
    opus_int32 v = 0;
    if (opus_encoder_ctl(s.enc, OPUS_GET_BITRATE(&v)) == OPUS_OK) r.bitrate = v;
    if (opus_encoder_ctl(s.enc, OPUS_GET_COMPLEXITY(&v)) == OPUS_OK) r.complexity = v;
    r.settings_version = s.settings_seq / 2;
    try {
        std::lock_guard lk(_ctl_mu);
        _reports[s.id] = {s.generation, r};
    } catch (...) {
        // No memory for the entry: the encoder runs with its settings anyway.
    }
}

void mixer::forget(const session& s) noexcept {
    std::lock_guard lk(_ctl_mu);
    if (auto it = _reports.find(s.id); it != _reports.end() && it->second.first == s.generation) _reports.erase(it);
}

// Mixer thread: the session's encoder takes the settings in use. At the
// session's start and at a frame boundary (before a tick); opus_encoder_ctl
// neither allocates nor blocks.
void mixer::configure(session& s) {
    const unsigned bps = s.max_bitrate != 0 ? std::min(_set.bitrate, s.max_bitrate) : _set.bitrate;
    int err = opus_encoder_ctl(s.enc, OPUS_SET_BITRATE(static_cast<opus_int32>(bps)));
    if (err == OPUS_OK) err = opus_encoder_ctl(s.enc, OPUS_SET_COMPLEXITY(static_cast<opus_int32>(_set.complexity)));
    if (err != OPUS_OK) throw std::runtime_error(std::string("opus_encoder_ctl: ") + opus_strerror(err));
    s.settings_seq = _set_seq;
    report(s);
}

unsigned mixer::frame_ms_of(uint32_t id) {
    std::lock_guard lk(_ctl_mu);
    auto it = _frame_ms.find(id);
    return it == _frame_ms.end() ? _cfg.default_frame_ms : it->second;
}

std::optional<std::string> mixer::session_error(uint32_t session_id) const {
    std::lock_guard lk(_ctl_mu);
    auto it = _errors.find(session_id);
    if (it == _errors.end()) return std::nullopt;
    return it->second;
}

void mixer::fail(session& s, const char* why) noexcept {
    // Its decoders and encoder go at once; the entry stays (with the
    // session's generation) so that its next packets are dropped by one
    // lookup instead of failing again each.
    s.failed = true;
    s.speakers.clear();
    if (s.enc != nullptr) opus_encoder_destroy(s.enc);
    s.enc = nullptr;
    std::vector<float>().swap(s.mix);
    s.next_deadline_ns = UINT64_MAX;
    ++_stats.session_errors;
    forget(s);
    try {
        std::lock_guard lk(_ctl_mu);
        _errors[s.id] = why;
    } catch (...) {
        // No memory for the text: the counter and the log line still say it.
    }
    spdlog::error("stentor: mixer: session {} failed, its packets are dropped until it ends: {}", s.id, why);
}

void mixer::fail(const dp::dp_session& ds, uint32_t idx, const char* why) noexcept {
    try {
        auto& ref = _sessions[idx];
        if (!ref || ref->generation != ds.generation) {
            ref = std::make_unique<session>();
            ref->index = idx;
            ref->id = ds.id;
            ref->generation = ds.generation;
        }
        fail(*ref, why);
    } catch (...) {
        // Not even a placeholder fits: forget the session; its next packet
        // tries again.
        _sessions.erase(idx);
        ++_stats.session_errors;
    }
}

namespace {

// Frame durations libopus encodes at 48 kHz, in whole milliseconds (2.5 ms
// is not expressible here). Anything else cannot be mixed: 0 would never
// move the frame deadline, more than 120 ms would not fit a speaker's fifo.
bool opus_frame_ms(unsigned ms) noexcept {
    switch (ms) {
    case 5: case 10: case 20: case 40: case 60: case 80: case 100: case 120: return true;
    default: return false;
    }
}

}  // namespace

mixer::session& mixer::session_of(const dp::dp_session& ds, uint32_t idx, uint64_t now_ns) {
    auto& sp_ref = _sessions[idx];
    if (sp_ref && sp_ref->generation == ds.generation) return *sp_ref;
    const unsigned fms = frame_ms_of(ds.id);
    if (!opus_frame_ms(fms))
        throw std::invalid_argument("frame_ms " + std::to_string(fms) +
                                    " is not an Opus frame duration (5, 10, 20, 40, 60, 80, 100 or 120 ms)");
    unsigned max_bitrate = 0;
    {
        std::lock_guard lk(_ctl_mu);
        if (auto it = _max_bitrate.find(ds.id); it != _max_bitrate.end()) max_bitrate = it->second;
    }
    auto s = std::make_unique<session>();
    s->index = idx;
    s->id = ds.id;
    s->generation = ds.generation;
    s->channels = _set.channels;
    s->max_bitrate = max_bitrate;
    s->frame_samples = static_cast<unsigned>(sample_rate / 1000 * fms);
    s->frame_ns = uint64_t{fms} * 1000000;
    s->release_coef = static_cast<float>(1.0 - std::exp(-static_cast<double>(fms) / limiter_release_ms));
    int err = 0;
    s->enc = opus_encoder_create(sample_rate, static_cast<int>(s->channels), OPUS_APPLICATION_AUDIO, &err);
    if (s->enc == nullptr || err != OPUS_OK)
        throw std::runtime_error(std::string("opus_encoder_create: ") + opus_strerror(err));
    // RFC 3550: random initial sequence number and timestamp.
    std::random_device rd;
    s->seq = static_cast<uint16_t>(rd());
    s->ts_base = rd();
    s->ssrc = dp::mix_ssrc(ds.id);
    s->next_deadline_ns = now_ns + s->frame_ns;
    s->mix.assign(size_t{s->frame_samples} * s->channels, 0.0f);
    {
        // A new session under this id mixes: an error of an earlier one is history.
        std::lock_guard lk(_ctl_mu);
        _errors.erase(ds.id);
    }
    configure(*s);
    sp_ref = std::move(s);
    return *sp_ref;
}

unsigned mixer::nb_sessions() const noexcept { return static_cast<unsigned>(_sessions.size()); }

unsigned mixer::nb_speakers() const noexcept {
    unsigned n = 0;
    for (const auto& [i, s] : _sessions) n += static_cast<unsigned>(s->speakers.size());
    return n;
}

uint64_t mixer::next_deadline_ns() const noexcept {
    uint64_t d = UINT64_MAX;
    for (const auto& [i, s] : _sessions) d = std::min(d, s->next_deadline_ns);
    return d;
}

void mixer::take(const rte_mbuf* m, uint64_t now_ns) noexcept {
    ++_stats.packets_in;
    const uint32_t idx = dp::message_session(m);
    const dp::dp_snapshot* snap = _snap;
    const dp::dp_session* ds = snap != nullptr ? dp::message_session_of(*snap, m) : nullptr;
    if (ds == nullptr) {
        ++_stats.stale;
        return;
    }
    if (ds->mode != dp::session_mode_mix) {
        ++_stats.not_mix;
        return;
    }
    rtp::view v{};
    if (m->nb_segs != 1 || !rtp::parse(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, v) || v.len > max_payload) {
        ++_stats.bad_packets;
        return;
    }
    const int nb = opus_packet_get_nb_samples(v.payload, static_cast<opus_int32>(v.len), sample_rate);
    if (nb <= 0 || nb > max_packet_samples) {
        ++_stats.bad_packets;
        return;
    }

    // Whatever one session's state throws (a decoder or encoder libopus
    // cannot create, a frame setting it cannot encode, no memory) fails that
    // session only.
    try {
        session& s = session_of(*ds, idx, now_ns);
        if (s.failed) {
            ++_stats.failed_session_packets;
            return;
        }
        buffer(s, v, now_ns);
    } catch (const std::exception& e) {
        fail(*ds, idx, e.what());
        ++_stats.failed_session_packets;
    } catch (...) {
        fail(*ds, idx, "unknown exception");
        ++_stats.failed_session_packets;
    }
}

void mixer::buffer(session& s, const rtp::view& v, uint64_t now_ns) {
    speaker* sp = nullptr;
    for (auto& p : s.speakers)
        if (p->ssrc == v.ssrc) sp = p.get();
    if (sp == nullptr) {
        const bool known = s.refused.count(v.ssrc) != 0;
        if (s.speakers.size() >= _set.max_decoders_per_session) {
            ++_stats.refused_packets;
            if (known) return;
            if (s.refused.size() < max_refused_remembered) {
                s.refused.insert(v.ssrc);
                ++_stats.speakers_refused;
                spdlog::warn("stentor: mixer: session {}: SSRC {:08x} refused: the session has {} decoders "
                             "(mixer.max_decoders_per_session); its packets are not mixed",
                             s.id, v.ssrc, _set.max_decoders_per_session);
            } else if (!s.refused_overflow) {
                s.refused_overflow = true;
                spdlog::warn("stentor: mixer: session {}: more than {} SSRCs refused; the next ones are "
                             "counted in mixer/refused_packets only",
                             s.id, max_refused_remembered);
            }
            return;
        }
        // A place freed since (a speaker timed out).
        if (known) s.refused.erase(v.ssrc);
        // Speakers are decoded to mono and sit in the centre of the mix: a
        // voice room has no use for each speaker's stereo image, and libopus
        // synthesises one channel instead of two (audio_harness: 100 stereo
        // 64 kbit/s speakers 19.0 % -> see README "Performance").
        s.speakers.push_back(std::make_unique<speaker>(v.ssrc, 1u));
        sp = s.speakers.back().get();
        sp->play_at_ns = now_ns + uint64_t{_set.jitter_ms} * 1000000;
        ++_stats.speakers_added;
    }
    sp->last_arrival_ns = now_ns;

    if (sp->started) {
        const int32_t d = rtp::ts_diff(v.ts, sp->next_ts);
        // Far behind or far ahead of the playout point: the sender restarted
        // its clock (or the speaker came back after a long pause). Start the
        // speaker over with a fresh playout delay instead of waiting.
        if (d < -2 * sample_rate || d > 10 * sample_rate) {
            for (auto& sl : sp->slots) sl.used = false;
            sp->nb_used = 0;
            sp->restart(now_ns + uint64_t{_set.jitter_ms} * 1000000);
        } else if (d < 0) {
            ++_stats.late;
            return;
        }
    }
    for (const auto& sl : sp->slots)
        if (sl.used && sl.ts == v.ts) {
            ++_stats.duplicates;
            return;
        }
    jb_slot* free_slot = nullptr;
    for (auto& sl : sp->slots)
        if (!sl.used) {
            free_slot = &sl;
            break;
        }
    if (free_slot == nullptr) {
        // Sender's clock runs faster than ours (or a burst): give up the
        // oldest frame rather than the newest, so latency shrinks back.
        const int e = sp->earliest();
        free_slot = &sp->slots[e];
        if (sp->started) sp->next_ts = free_slot->ts + static_cast<uint32_t>(
            opus_packet_get_nb_samples(free_slot->data, free_slot->len, sample_rate));
        free_slot->used = false;
        --sp->nb_used;
        ++_stats.overflow;
    }
    free_slot->used = true;
    free_slot->seq = v.seq;
    free_slot->ts = v.ts;
    free_slot->len = static_cast<uint16_t>(v.len);
    std::memcpy(free_slot->data, v.payload, v.len);
    ++sp->nb_used;
}

namespace {

// Append at least one sample period to the speaker's PCM fifo: the due
// packet decoded, or silence for a DTX gap, or PLC/silence for a missing one.
void produce(speaker& sp, unsigned channels, unsigned plc_max, mixer_stats& st) noexcept {
    float* out = sp.fifo.data() + sp.fifo_len * channels;
    int due = -1;
    for (unsigned i = 0; i < jb_slots; ++i) {
        jb_slot& sl = sp.slots[i];
        if (!sl.used) continue;
        const int32_t d = rtp::ts_diff(sl.ts, sp.next_ts);
        if (d == 0) {
            due = static_cast<int>(i);
        } else if (d < 0) {
            sl.used = false;    // its slot went by while we waited: concealed already
            --sp.nb_used;
            ++st.late;
        }
    }
    if (due >= 0) {
        jb_slot& sl = sp.slots[due];
        const int n = opus_decode_float(sp.dec, sl.data, sl.len, out, max_packet_samples, 0);
        sl.used = false;
        --sp.nb_used;
        if (n > 0) {
            sp.fifo_len += static_cast<size_t>(n);
            sp.next_ts += static_cast<uint32_t>(n);
            sp.last_frame = n;
            sp.last_seq = sl.seq;
            sp.have_seq = true;
            sp.plc_run = 0;
            sp.audible = true;
            ++st.decoded_frames;
            return;
        }
        ++st.decode_errors;   // fall through: conceal this frame
    }
    int k = sp.last_frame;
    const int e = sp.earliest();
    if (e >= 0 && sp.have_seq && sp.slots[e].seq == static_cast<uint16_t>(sp.last_seq + 1)) {
        // The next packet in sequence is here but later in time: the sender
        // stopped sending (DTX) for this stretch. Silence, not concealment.
        k = std::min<int>(k, rtp::ts_diff(sp.slots[e].ts, sp.next_ts));
        std::fill(out, out + size_t(k) * channels, 0.0f);
        sp.plc_run = 0;
        sp.audible = false;
        ++st.silent_frames;
    } else if (sp.plc_run < plc_max) {
        const int n = opus_decode_float(sp.dec, nullptr, 0, out, k, 0);
        if (n <= 0) std::fill(out, out + size_t(k) * channels, 0.0f);
        ++sp.plc_run;
        sp.audible = true;
        ++st.plc_frames;
    } else {
        std::fill(out, out + size_t(k) * channels, 0.0f);
        sp.audible = false;
        ++st.silent_frames;
    }
    sp.fifo_len += static_cast<size_t>(k);
    sp.next_ts += static_cast<uint32_t>(k);
}

}  // namespace

void mixer::tick(session& s, uint64_t now_ns) {
    const unsigned ch = s.channels;
    const size_t n = size_t{s.frame_samples} * ch;
    std::fill(s.mix.begin(), s.mix.end(), 0.0f);
    unsigned active = 0;
    const uint64_t timeout_ns = uint64_t{_set.speaker_timeout_ms} * 1000000;
    for (size_t i = 0; i < s.speakers.size();) {
        speaker& sp = *s.speakers[i];
        if (now_ns - sp.last_arrival_ns > timeout_ns && now_ns > sp.last_arrival_ns) {
            s.speakers.erase(s.speakers.begin() + static_cast<long>(i));
            ++_stats.speakers_dropped;
            continue;
        }
        ++i;
        if (!sp.started) {
            const int e = sp.earliest();
            if (now_ns < sp.play_at_ns || e < 0) continue;
            sp.started = true;
            sp.next_ts = sp.slots[e].ts;
            sp.have_seq = false;
        }
        while (sp.fifo_len < s.frame_samples) produce(sp, 1, _set.plc_max_frames, _stats);
        const float* src = sp.fifo.data();
        if (ch == 1) {
            for (size_t k = 0; k < s.frame_samples; ++k) s.mix[k] += src[k];
        } else {
            for (size_t k = 0; k < s.frame_samples; ++k) {
                s.mix[2 * k] += src[k];
                s.mix[2 * k + 1] += src[k];
            }
        }
        sp.fifo_len -= s.frame_samples;
        std::memmove(sp.fifo.data(), sp.fifo.data() + s.frame_samples, sp.fifo_len * sizeof(float));
        active += sp.audible ? 1 : 0;
    }
    const uint64_t tick_no = s.tick_no++;
    s.next_deadline_ns += s.frame_ns;
    if (active == 0) {
        s.talking = false;
        return;
    }

    // Peak limiter (see mixer.h).
    float peak = 0.0f;
    for (size_t k = 0; k < n; ++k) peak = std::max(peak, std::fabs(s.mix[k]));
    const float target = peak > limiter_threshold ? limiter_threshold / peak : 1.0f;
    const float g0 = s.gain;
    const float g1 = std::min(g0 + (1.0f - g0) * s.release_coef, target);
    if (g0 != 1.0f || g1 != 1.0f) {
        const float step = (g1 - g0) / static_cast<float>(s.frame_samples);
        for (unsigned i = 0; i < s.frame_samples; ++i) {
            const float g = g0 + step * static_cast<float>(i + 1);
            for (unsigned c = 0; c < ch; ++c) {
                float& x = s.mix[size_t{i} * ch + c];
                x = std::clamp(x * g, -1.0f, 1.0f);
            }
        }
    }
    if (target < 1.0f) ++_stats.limited_frames;
    s.gain = g1;

    const dp::dp_snapshot* snap = _snap;
    if (snap == nullptr || s.index >= snap->nb_sessions || snap->sessions[s.index]->generation != s.generation) return;
    rte_mbuf* m = rte_pktmbuf_alloc(_cfg.pool);
    if (m == nullptr) {
        ++_stats.no_mbuf;
        return;
    }
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 12 + max_encoded));
    if (d == nullptr) {
        rte_pktmbuf_free(m);
        ++_stats.no_mbuf;
        return;
    }
    const int len = opus_encode_float(s.enc, s.mix.data(), static_cast<int>(s.frame_samples), d + 12, max_encoded);
    if (len <= 0) {
        rte_pktmbuf_free(m);
        ++_stats.encode_errors;
        return;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(max_encoded - static_cast<unsigned>(len)));
    d[0] = 0x80;
    // Marker on the first packet of a talkspurt (RFC 3551): after a period
    // with no speaker the timestamp jumps with the clock.
    d[1] = static_cast<uint8_t>((s.talking ? 0 : 0x80) | dp::mix_payload_type);
    wire::store_be16(d + 2, s.seq++);
    wire::store_be32(d + 4, s.ts_base + static_cast<uint32_t>(tick_no * s.frame_samples));
    wire::store_be32(d + 8, s.ssrc);
    s.talking = true;
    dp::set_message_session(m, s.index, s.generation);
    const dp::dp_session& ds = *snap->sessions[s.index];
    bool record = ds.record != 0;
    // The session's fleet trunk listeners (dp_session::trunk): with
    // authenticated trunks their copy is protected with the trunk key at
    // the index claimed here (the listeners' too under srtp.egress).
    const dp::dp_session* twin = ds.trunk;
    const bool trunk_protect = twin != nullptr && twin->srtp_egress != 0;
    uint64_t index = dp::no_egress_index;
    if (ds.srtp_egress || trunk_protect) {
        // Encrypt once (dp_srtp.h): the listeners get the mix protected with
        // the session key; the recording keeps the plaintext.
        // The index is claimed from the session's high-water mark for the
        // mix SSRC (dp_srtp.h egress_index): a mixer state started again in
        // the session's life (a new mixer session object, the same SSRC,
        // a new random sequence number) continues above what was sent.
        if (record && ds.srtp_egress) {   // the recording keeps the mix even when the listeners' copy is refused below
            rte_mbuf_refcnt_update(m, 1);
            if (!dp::publish_record(*_cfg.shared, m, &_counters)) ++_stats.publish_failed;
            record = false;
        }
        const uint16_t seq = static_cast<uint16_t>(s.seq - 1);
        const uint32_t ssrc_be = __builtin_bswap32(s.ssrc);
        uint64_t in_index = seq;
        const bool restart = s.srtp_tx.started == 0 || !srtp::estimate_index(s.srtp_tx.in_top, true, seq, &in_index);
        index = dp::claim_egress_index(ds, s.srtp_tx, in_index, ssrc_be, restart, &_counters);
        if (index == dp::no_egress_index && ds.srtp_egress) {
            rte_pktmbuf_free(m);
            ++_stats.publish_failed;
            return;
        }
        if (ds.srtp_egress) {
            rte_mbuf* ct = dp::protect_message(ds, m, index, _cfg.shared->nb_rx_queues, ds.record != 0, _cfg.pool, &_counters);
            if (ct != m) rte_pktmbuf_free(m);
            if (ct == nullptr) {
                ++_stats.publish_failed;
                return;
            }
            m = ct;
        }
    }
    if (twin != nullptr && (!trunk_protect || index != dp::no_egress_index)) {
        if (rte_mbuf* t = dp::trunk_message(*twin, m, index, _cfg.shared->nb_rx_queues, _cfg.pool, &_counters)) {
            if (!dp::publish_message(*_cfg.shared, *snap, t, false, &_counters)) ++_stats.publish_failed;
        }
    }
    if (!dp::publish_message(*_cfg.shared, *snap, m, record, &_counters)) ++_stats.publish_failed;
    ++_stats.frames_out;
}

unsigned mixer::poll(uint64_t now_ns) {
    load_settings();
    _snap = _cfg.shared != nullptr ? _cfg.shared->snapshot.load(std::memory_order_acquire) : nullptr;
    unsigned work = drain_messages(_cfg.in_ring, [&](const rte_mbuf* m) { take(m, now_ns); });
    for (auto it = _sessions.begin(); it != _sessions.end();) {
        const dp::dp_snapshot* snap = _snap;
        if (!it->second) {   // a failure left no placeholder (see fail())
            it = _sessions.erase(it);
            continue;
        }
        session& s = *it->second;
        // Ended or replaced: drop its state (decoders, encoder) at once.
        if (snap == nullptr || s.index >= snap->nb_sessions || snap->sessions[s.index]->generation != s.generation ||
            snap->sessions[s.index]->mode != dp::session_mode_mix) {
            forget(s);
            it = _sessions.erase(it);
            continue;
        }
        if (now_ns >= s.next_deadline_ns && now_ns - s.next_deadline_ns > 5 * s.frame_ns) {
            // The thread did not run for several frame periods: skip them on
            // the timeline (timestamps keep pace with the clock) and re-anchor
            // every speaker instead of bursting out stale frames.
            const uint64_t missed = (now_ns - s.next_deadline_ns) / s.frame_ns;
            s.tick_no += missed;
            s.next_deadline_ns += missed * s.frame_ns;
            _stats.ticks_skipped += missed;
            for (auto& sp : s.speakers) sp->restart(now_ns);
            s.talking = false;
        }
        try {
            while (now_ns >= s.next_deadline_ns) {
                // A frame boundary: a new settings version reaches the encoder here.
                if (s.settings_seq != _set_seq && !s.failed) {
                    configure(s);
                    ++_stats.encoders_retuned;
                }
                tick(s, now_ns);
                ++work;
            }
        } catch (const std::exception& e) {
            fail(s, e.what());
        } catch (...) {
            fail(s, "unknown exception");
        }
        ++it;
    }
    _snap = nullptr;
    return work;
}

}  // namespace stentor::svc
