#include "wav.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

namespace stentor::tools {

namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t le32(const uint8_t* p) { return static_cast<uint32_t>(le16(p)) | (static_cast<uint32_t>(le16(p + 2)) << 16); }

void put_le16(std::vector<uint8_t>& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v));
    b.push_back(static_cast<uint8_t>(v >> 8));
}

void put_le32(std::vector<uint8_t>& b, uint32_t v) {
    put_le16(b, static_cast<uint16_t>(v));
    put_le16(b, static_cast<uint16_t>(v >> 16));
}

constexpr uint16_t wave_format_pcm = 1;
constexpr uint16_t wave_format_extensible = 0xFFFE;

}  // namespace

pcm_audio read_wav(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw wav_error(path + ": cannot open");
    const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (file.size() < 12 || std::memcmp(file.data(), "RIFF", 4) != 0 || std::memcmp(file.data() + 8, "WAVE", 4) != 0)
        throw wav_error(path + ": not a RIFF/WAVE file");

    bool have_fmt = false;
    uint16_t format = 0, channels = 0, bits = 0;
    uint32_t rate = 0;
    std::size_t off = 12;
    while (off + 8 <= file.size()) {
        const uint8_t* c = file.data() + off;
        std::size_t size = le32(c + 4);
        const std::size_t body = off + 8;
        // Writers that stream to a pipe (ffmpeg, sox to stdout) leave the data
        // size at 0 or 0xFFFFFFFF: take the rest of the file then.
        if (std::memcmp(c, "data", 4) == 0 && (size == 0 || body + size > file.size())) size = file.size() - body;
        if (body + size > file.size()) throw wav_error(path + ": truncated chunk");
        if (std::memcmp(c, "fmt ", 4) == 0) {
            if (size < 16) throw wav_error(path + ": fmt chunk too short");
            const uint8_t* f = file.data() + body;
            format = le16(f);
            channels = le16(f + 2);
            rate = le32(f + 4);
            bits = le16(f + 14);
            // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
            if (format == wave_format_extensible && size >= 26) format = le16(f + 24);
            have_fmt = true;
        } else if (std::memcmp(c, "data", 4) == 0) {
            if (!have_fmt) throw wav_error(path + ": data chunk before fmt chunk");
            if (format != wave_format_pcm)
                throw wav_error(path + ": format tag " + std::to_string(format) + " is not integer PCM (convert with: sox IN -b 16 -e signed-integer OUT.wav)");
            if (bits != 16)
                throw wav_error(path + ": " + std::to_string(bits) + "-bit samples; only 16-bit PCM is supported (sox IN -b 16 OUT.wav)");
            if (channels != 1 && channels != 2)
                throw wav_error(path + ": " + std::to_string(channels) + " channels; only mono or stereo is supported");
            if (rate != 48000)
                throw wav_error(path + ": sample rate " + std::to_string(rate) + " Hz; only 48000 Hz is supported, resample first (sox IN -r 48000 OUT.wav)");
            pcm_audio a;
            a.rate = rate;
            a.channels = channels;
            const std::size_t n = size / 2 / channels * channels;  // whole frames only
            a.samples.resize(n);
            for (std::size_t i = 0; i < n; ++i) a.samples[i] = static_cast<int16_t>(le16(file.data() + body + 2 * i));
            return a;
        }
        off = body + size + (size & 1);  // chunks are padded to even sizes
    }
    throw wav_error(path + (have_fmt ? ": no data chunk" : ": no fmt chunk"));
}

void write_wav(const std::string& path, const pcm_audio& a) {
    const uint64_t data_bytes = static_cast<uint64_t>(a.samples.size()) * 2;
    if (data_bytes > 0xFFFFFFFFull - 36) throw wav_error(path + ": audio too long for a WAV file");
    std::vector<uint8_t> b;
    b.reserve(44 + data_bytes);
    b.insert(b.end(), {'R', 'I', 'F', 'F'});
    put_le32(b, static_cast<uint32_t>(36 + data_bytes));
    b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
    put_le32(b, 16);
    put_le16(b, wave_format_pcm);
    put_le16(b, a.channels);
    put_le32(b, a.rate);
    put_le32(b, a.rate * a.channels * 2u);
    put_le16(b, static_cast<uint16_t>(a.channels * 2u));
    put_le16(b, 16);
    b.insert(b.end(), {'d', 'a', 't', 'a'});
    put_le32(b, static_cast<uint32_t>(data_bytes));
    for (int16_t s : a.samples) put_le16(b, static_cast<uint16_t>(s));
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    if (!f) throw wav_error(path + ": cannot create: " + std::strerror(errno));
    if (std::fwrite(b.data(), 1, b.size(), f.get()) != b.size()) throw wav_error(path + ": write failed");
    if (std::fclose(f.release()) != 0) throw wav_error(path + ": write failed on close");
}

}  // namespace stentor::tools
