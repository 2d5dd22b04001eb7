// stentor-speaker: an Opus/RTP speaker for testing and loading the relay.
// Encodes a WAV file or a generated tone into 20 ms Opus frames once, up front,
// then sends them as RTP from one or many UDP source ports, paced in real time
// or faster. Encoding before sending keeps the send loop free of codec jitter
// and lets one core drive many simulated speakers (they all send the same
// audio, each with its own source port, SSRC, sequence and timestamp space).
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <numbers>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <opus/opus.h>

#include "net.h"
#include "rtp.h"
#include "wav.h"

namespace stentor::tools {
namespace {

constexpr int frame_samples = 960;  // 20 ms at 48 kHz, the stream rate the relay is sized for
constexpr int64_t frame_ns = 20'000'000;
// libopus reports a frame that DTX decided not to transmit as a 1- or 2-byte
// packet (TOC only); sending it would defeat DTX.
constexpr int dtx_max_silent_bytes = 2;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

struct options {
    std::string wav;
    double tone_hz = 0;
    double seconds = 0;
    double level_dbfs = -6;
    int channels = 0;  // 0: the WAV's own count, 2 for a tone
    int bitrate = 64000;
    std::string dtx = "off";
    std::string application = "audio";
    int complexity = 10;
    std::string dest;
    std::string bind = "0.0.0.0:0";
    int payload_type = 111;
    std::optional<uint32_t> ssrc;
    std::optional<uint16_t> seq;
    std::optional<uint32_t> timestamp;
    unsigned speakers = 1;
    double rate_multiplier = 1;
    bool flood = false;
    uint64_t count = 0;
    bool embed_time = false;
    std::string test_drop, test_dup, test_swap;
    bool quiet = false;
};

struct encoded_frame {
    std::vector<uint8_t> payload;
    bool suppressed = false;  // DTX: not sent
};

pcm_audio make_tone(double hz, double seconds, double level_dbfs, int channels) {
    pcm_audio a;
    a.rate = 48000;
    a.channels = static_cast<uint16_t>(channels);
    const auto n = static_cast<std::size_t>(std::llround(seconds * a.rate));
    const double amp = 32767.0 * std::pow(10.0, level_dbfs / 20.0);
    a.samples.resize(n * a.channels);
    for (std::size_t i = 0; i < n; ++i) {
        const auto v = static_cast<int16_t>(std::lround(amp * std::sin(2 * std::numbers::pi * hz * static_cast<double>(i) / a.rate)));
        for (int c = 0; c < a.channels; ++c) a.samples[i * a.channels + static_cast<std::size_t>(c)] = v;
    }
    return a;
}

// Mono <-> stereo so --channels can differ from the file: duplicate, or average.
pcm_audio convert_channels(pcm_audio in, int channels) {
    if (in.channels == channels) return in;
    pcm_audio out;
    out.rate = in.rate;
    out.channels = static_cast<uint16_t>(channels);
    const std::size_t n = in.frames();
    out.samples.resize(n * out.channels);
    for (std::size_t i = 0; i < n; ++i) {
        if (channels == 2) {
            out.samples[2 * i] = out.samples[2 * i + 1] = in.samples[i];
        } else {
            out.samples[i] = static_cast<int16_t>((in.samples[2 * i] + in.samples[2 * i + 1]) / 2);
        }
    }
    return out;
}

std::vector<encoded_frame> encode(const pcm_audio& a, const options& o) {
    int app = OPUS_APPLICATION_AUDIO;
    if (o.application == "voip") app = OPUS_APPLICATION_VOIP;
    else if (o.application == "lowdelay") app = OPUS_APPLICATION_RESTRICTED_LOWDELAY;
    int err = 0;
    std::unique_ptr<OpusEncoder, void (*)(OpusEncoder*)> enc(opus_encoder_create(48000, a.channels, app, &err), &opus_encoder_destroy);
    if (err != OPUS_OK || !enc) throw tool_error(std::string("opus_encoder_create: ") + opus_strerror(err));
    if (opus_encoder_ctl(enc.get(), OPUS_SET_BITRATE(o.bitrate)) != OPUS_OK)
        throw tool_error("--bitrate " + std::to_string(o.bitrate) + " rejected by libopus (500..512000)");
    opus_encoder_ctl(enc.get(), OPUS_SET_DTX(o.dtx == "on" ? 1 : 0));
    opus_encoder_ctl(enc.get(), OPUS_SET_COMPLEXITY(o.complexity));

    const std::size_t total = a.frames();
    const std::size_t nframes = (total + frame_samples - 1) / frame_samples;
    std::vector<encoded_frame> out;
    out.reserve(nframes);
    std::vector<int16_t> pcm(static_cast<std::size_t>(frame_samples) * a.channels);
    std::vector<uint8_t> buf(1500);
    for (std::size_t f = 0; f < nframes; ++f) {
        // The last partial frame is padded with silence: Opus only codes whole frames.
        std::fill(pcm.begin(), pcm.end(), int16_t{0});
        const std::size_t first = f * frame_samples;
        const std::size_t n = std::min<std::size_t>(frame_samples, total - first);
        std::copy_n(a.samples.begin() + static_cast<std::ptrdiff_t>(first * a.channels), n * a.channels, pcm.begin());
        const int len = opus_encode(enc.get(), pcm.data(), frame_samples, buf.data(), static_cast<opus_int32>(buf.size()));
        if (len < 0) throw tool_error(std::string("opus_encode: ") + opus_strerror(len));
        encoded_frame e;
        e.payload.assign(buf.begin(), buf.begin() + len);
        e.suppressed = o.dtx == "on" && len <= dtx_max_silent_bytes;
        out.push_back(std::move(e));
    }
    return out;
}

// One simulated speaker: its socket, RTP state and the packet it holds back
// for the --test-swap impairment.
struct speaker {
    int fd = -1;
    uint32_t ssrc = 0;
    uint16_t seq0 = 0;
    uint32_t ts0 = 0;
    std::vector<uint8_t> held;
};

struct impairments {
    std::set<uint64_t> drop, dup, swap;
    bool any() const { return !drop.empty() || !dup.empty() || !swap.empty(); }
};

struct counters {
    uint64_t packets = 0, bytes = 0, payload_bytes = 0, errors = 0, suppressed_frames = 0;
    uint64_t talkspurts = 0;  // packets per speaker sent with the marker bit
    int last_errno = 0;
};

class sender {
public:
    sender(const options& o, std::vector<speaker>& sp, const sockaddr_in& dest, impairments imp)
        : o_(o), speakers_(sp), dest_(dest), imp_(std::move(imp)) {}

    // Sends packet number idx (0-based, per speaker) of one frame from every speaker.
    void send_frame(uint64_t idx, uint64_t frame_no, bool marker, const encoded_frame& f) {
        for (auto& s : speakers_) {
            rtp_header h;
            h.marker = marker;
            h.payload_type = static_cast<uint8_t>(o_.payload_type);
            h.seq = static_cast<uint16_t>(s.seq0 + idx);
            h.timestamp = static_cast<uint32_t>(s.ts0 + frame_no * frame_samples);
            h.ssrc = s.ssrc;
            std::optional<int64_t> stamp;
            if (o_.embed_time) stamp = realtime_ns();
            const std::size_t len = write_rtp(buf_, h, stamp, f.payload);
            if (imp_.drop.contains(idx)) continue;
            if (imp_.swap.contains(idx)) {
                // Held back and sent right after the next packet: the receiver sees it late.
                s.held.assign(buf_, buf_ + len);
                continue;
            }
            transmit(s, buf_, len, f.payload.size());
            if (imp_.dup.contains(idx)) transmit(s, buf_, len, f.payload.size());
            flush_held(s);
        }
    }

    void flush_all() {
        for (auto& s : speakers_) flush_held(s);
    }

    const counters& stats() const { return c_; }
    counters& stats() { return c_; }

private:
    void flush_held(speaker& s) {
        if (s.held.empty()) return;
        const std::size_t hdr = rtp_fixed_header_len + (o_.embed_time ? rtp_time_ext_len : 0);
        transmit(s, s.held.data(), s.held.size(), s.held.size() - hdr);
        s.held.clear();
    }

    void transmit(const speaker& s, const uint8_t* data, std::size_t len, std::size_t payload_len) {
        const ssize_t n = ::sendto(s.fd, data, len, 0, reinterpret_cast<const sockaddr*>(&dest_), sizeof dest_);
        if (n == static_cast<ssize_t>(len)) {
            ++c_.packets;
            c_.bytes += len;
            c_.payload_bytes += payload_len;
        } else {
            ++c_.errors;
            c_.last_errno = errno;
        }
    }

    const options& o_;
    std::vector<speaker>& speakers_;
    sockaddr_in dest_;
    impairments imp_;
    counters c_;
    uint8_t buf_[2048]{};
};

void sleep_until(int64_t deadline_ns) {
    timespec ts{};
    ts.tv_sec = deadline_ns / 1'000'000'000;
    ts.tv_nsec = deadline_ns % 1'000'000'000;
    // Absolute deadlines: an interrupted or late wake-up never shifts later frames.
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop.load()) {
    }
}

std::set<uint64_t> index_set(const std::string& text, const char* what) {
    const auto v = parse_index_list(text, what);
    return {v.begin(), v.end()};
}

int run(options& o) {
    if (o.wav.empty() == (o.tone_hz <= 0)) throw tool_error("give exactly one source: --wav FILE or --tone HZ");
    if (o.tone_hz > 0 && o.seconds <= 0) throw tool_error("--tone needs --seconds > 0");
    if (o.tone_hz >= 24000) throw tool_error("--tone must be below 24000 Hz (Nyquist at 48 kHz)");
    if (o.flood && o.rate_multiplier != 1) throw tool_error("--flood and --rate-multiplier exclude each other");
    if (o.rate_multiplier <= 0) throw tool_error("--rate-multiplier must be > 0");

    pcm_audio audio;
    if (!o.wav.empty()) {
        audio = read_wav(o.wav);
        if (o.seconds > 0) {
            const auto keep = std::min(audio.frames(), static_cast<std::size_t>(std::llround(o.seconds * 48000)));
            audio.samples.resize(keep * audio.channels);
        }
    } else {
        audio = make_tone(o.tone_hz, o.seconds, o.level_dbfs, o.channels ? o.channels : 2);
    }
    if (o.channels) audio = convert_channels(std::move(audio), o.channels);
    if (audio.frames() == 0) throw tool_error("the source has no audio");

    const std::vector<encoded_frame> frames = encode(audio, o);
    bool any_sendable = false;
    for (const auto& f : frames) any_sendable |= !f.suppressed;
    if (!any_sendable) throw tool_error("every frame is silent and DTX is on: nothing to send");

    const endpoint dest = parse_endpoint(o.dest, "--dest");
    if (dest.port == 0) throw tool_error("--dest needs a port");
    const endpoint bind_ep = parse_endpoint(o.bind, "--bind");
    if (dest.v6 || bind_ep.v6) throw tool_error("--dest and --bind: stentor-speaker sends over IPv4 only (IPv6: ffmpeg, docs/tools.md)");
    impairments imp{index_set(o.test_drop, "--test-drop"), index_set(o.test_dup, "--test-dup"), index_set(o.test_swap, "--test-swap")};
    if (imp.any() && o.speakers != 1) std::fprintf(stderr, "stentor-speaker: test impairments apply to every speaker\n");

    if (o.speakers > 1000) raise_fd_limit();
    std::random_device rd;
    const uint32_t ssrc_base = o.ssrc ? *o.ssrc : rd();
    std::vector<speaker> speakers(o.speakers);
    struct fd_closer {
        std::vector<speaker>& s;
        ~fd_closer() {
            for (auto& x : s)
                if (x.fd >= 0) ::close(x.fd);
        }
    } closer{speakers};
    for (unsigned i = 0; i < o.speakers; ++i) {
        auto& s = speakers[i];
        s.fd = open_udp_socket(bind_ep, static_cast<uint16_t>(i));
        s.ssrc = ssrc_base + i;
        // RFC 3550 5.1: initial sequence number and timestamp should be random.
        s.seq0 = o.seq ? *o.seq : static_cast<uint16_t>(rd());
        s.ts0 = o.timestamp ? *o.timestamp : rd();
        if (o.flood) {
            const int sz = 4 << 20;
            setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        }
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    // Without --count the source plays once; with it, the source loops until
    // every speaker has sent that many packets.
    const uint64_t limit = o.count;
    sender snd(o, speakers, dest.sockaddr(), std::move(imp));
    const int64_t period_ns = o.flood ? 0 : static_cast<int64_t>(std::llround(static_cast<double>(frame_ns) / o.rate_multiplier));
    const int64_t start = monotonic_ns();
    uint64_t frame_no = 0, idx = 0;
    bool after_gap = true;  // the first packet of a stream starts a talkspurt
    while (!g_stop.load()) {
        if (limit == 0 && frame_no == frames.size()) break;
        if (limit != 0 && idx == limit) break;
        const encoded_frame& f = frames[frame_no % frames.size()];
        if (period_ns) sleep_until(start + static_cast<int64_t>(frame_no) * period_ns);
        if (g_stop.load()) break;
        if (f.suppressed) {
            ++snd.stats().suppressed_frames;
            after_gap = true;
        } else {
            // RFC 7587 4.1 / RFC 3551 4.1: marker on the first packet after a DTX silence.
            if (after_gap) ++snd.stats().talkspurts;
            snd.send_frame(idx, frame_no, after_gap, f);
            after_gap = false;
            ++idx;
        }
        ++frame_no;
    }
    snd.flush_all();
    const double elapsed = static_cast<double>(monotonic_ns() - start) / 1e9;
    const counters& c = snd.stats();
    std::printf("stentor-speaker: sent %llu packets, %llu bytes (RTP; %llu payload) from %u speaker(s) to %s in %.3f s "
                "(%.0f pkt/s); frames %llu, DTX-suppressed %llu, talkspurts %llu, send errors %llu\n",
                static_cast<unsigned long long>(c.packets), static_cast<unsigned long long>(c.bytes),
                static_cast<unsigned long long>(c.payload_bytes), o.speakers, dest.str().c_str(), elapsed,
                elapsed > 0 ? static_cast<double>(c.packets) / elapsed : 0.0, static_cast<unsigned long long>(frame_no),
                static_cast<unsigned long long>(c.suppressed_frames), static_cast<unsigned long long>(c.talkspurts),
                static_cast<unsigned long long>(c.errors));
    if (!o.quiet)
        std::printf("stentor-speaker: ssrc %u..%u, first seq %u, first timestamp %u (speaker 0)\n", speakers.front().ssrc,
                    speakers.back().ssrc, speakers.front().seq0, speakers.front().ts0);
    if (c.errors)
        std::fprintf(stderr, "stentor-speaker: %llu send errors, last: %s\n", static_cast<unsigned long long>(c.errors),
                     std::strerror(c.last_errno));
    return c.errors && c.packets == 0 ? 1 : 0;
}

}  // namespace
}  // namespace stentor::tools

int main(int argc, char** argv) {
    using namespace stentor::tools;
    options o;
    CLI::App app{"stentor-speaker: encode a WAV file or a tone to Opus (20 ms frames) and send it as RTP/UDP"};
    app.add_option("--wav", o.wav, "source: 16-bit PCM WAV, mono or stereo, 48000 Hz")->check(CLI::ExistingFile);
    app.add_option("--tone", o.tone_hz, "source: a sine of this frequency (Hz) instead of a file");
    app.add_option("--seconds", o.seconds, "tone length; for --wav, play at most this much of the file");
    app.add_option("--level", o.level_dbfs, "tone level in dBFS")->capture_default_str();
    app.add_option("--channels", o.channels, "channels to encode (1 or 2); default: the file's, 2 for a tone")->check(CLI::IsMember({0, 1, 2}));
    app.add_option("--bitrate", o.bitrate, "Opus bitrate, bit/s")->capture_default_str();
    app.add_option("--dtx", o.dtx, "Opus DTX: silent frames are not sent")->check(CLI::IsMember({"on", "off"}))->capture_default_str();
    app.add_option("--application", o.application, "Opus application")->check(CLI::IsMember({"audio", "voip", "lowdelay"}))->capture_default_str();
    app.add_option("--complexity", o.complexity, "Opus encoder complexity")->check(CLI::Range(0, 10))->capture_default_str();
    app.add_option("--dest", o.dest, "destination IP:PORT (the relay's ingress address and session port)")->required();
    app.add_option("--bind", o.bind, "source IP:PORT; with --speakers N, speaker i uses PORT+i (PORT 0: ephemeral)")->capture_default_str();
    app.add_option("--pt", o.payload_type, "RTP payload type")->check(CLI::Range(0, 127))->capture_default_str();
    app.add_option("--ssrc", o.ssrc, "RTP SSRC of speaker 0 (speaker i: SSRC+i); default random");
    app.add_option("--seq", o.seq, "initial RTP sequence number; default random");
    app.add_option("--timestamp", o.timestamp, "initial RTP timestamp; default random");
    app.add_option("--speakers", o.speakers, "simulated speakers, each with its own source port and SSRC")->check(CLI::Range(1u, 60000u))->capture_default_str();
    app.add_option("--rate-multiplier", o.rate_multiplier, "send this many times faster than real time")->capture_default_str();
    app.add_flag("--flood", o.flood, "send as fast as possible (no pacing)");
    app.add_option("--count", o.count, "packets per speaker; the source loops if it is shorter (default: the source once)");
    app.add_flag("--embed-time", o.embed_time, "put the CLOCK_REALTIME send time (ns) in an RTP header extension (RFC 8285, id 1) for stentor-listener --latency");
    app.add_option("--test-drop", o.test_drop, "TEST ONLY: packet indices (0 = first, e.g. 5,9-11) never sent; their sequence numbers are skipped");
    app.add_option("--test-dup", o.test_dup, "TEST ONLY: packet indices sent twice in a row");
    app.add_option("--test-swap", o.test_swap, "TEST ONLY: packet indices sent after the following packet (arrive late)");
    app.add_flag("-q,--quiet", o.quiet, "print only the totals line");
    CLI11_PARSE(app, argc, argv);
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "stentor-speaker: %s\n", e.what());
        return 1;
    }
}
