// Minimal RIFF/WAVE reader and writer for 16-bit PCM: the speaker reads its
// input with it and the listener writes what it decoded. Nothing else is
// supported on purpose: Opus works on 16-bit (or float) PCM at 48 kHz, and
// silently resampling or truncating someone's file would hide mistakes.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace stentor::tools {

struct wav_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct pcm_audio {
    uint32_t rate = 48000;
    uint16_t channels = 2;
    std::vector<int16_t> samples;  // interleaved
    std::size_t frames() const { return channels ? samples.size() / channels : 0; }
};

// Throws wav_error with a message that says what is wrong with the file.
pcm_audio read_wav(const std::string& path);

// Throws wav_error when the file cannot be written.
void write_wav(const std::string& path, const pcm_audio& audio);

}  // namespace stentor::tools
