// Machine-readable harness output for scripts/bench-report.py: one JSON
// object per line ("JSON lines"), each with the harness ("bench") and what
// it measured ("kind"), raw samples included so the report can plot
// distributions, not only medians. Written next to the human tables, never
// parsed back out of them. --json FILE turns it on; without it nothing is
// written.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace stentor::bench {

class jsonl {
public:
    jsonl() = default;
    explicit jsonl(const std::string& path) { open(path); }
    ~jsonl() {
        if (_f != nullptr) std::fclose(_f);
    }
    jsonl(const jsonl&) = delete;
    jsonl& operator=(const jsonl&) = delete;

    // False (with the reason on stderr) if the file cannot be written.
    bool open(const std::string& path) {
        if (path.empty()) return true;
        _f = std::fopen(path.c_str(), "w");
        if (_f == nullptr) std::perror(("--json " + path).c_str());
        return _f != nullptr;
    }
    bool on() const { return _f != nullptr; }

    void write(const nlohmann::json& j) {
        if (_f == nullptr) return;
        const std::string s = j.dump() + "\n";
        std::fwrite(s.data(), 1, s.size(), _f);
        std::fflush(_f);
    }

private:
    std::FILE* _f = nullptr;
};

// {"median", "min", "max", "samples"} of a series.
inline nlohmann::json series(const std::vector<double>& v, double median, double min, double max) {
    return {{"median", median}, {"min", min}, {"max", max}, {"samples", v}};
}

}  // namespace stentor::bench
