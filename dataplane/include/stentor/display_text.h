// Text that is shown as it is: session names (profile, API, journal) and the
// names the recorder reads back from its own files after a crash. Such a
// name goes into logs, terminal tables, the journal and JSON, where a
// control character (a NUL that ends a C string, an escape that rewrites a
// terminal, a newline that forges a log line), bytes that are not UTF-8, or
// an invisible or direction-changing character (a name that reads
// differently from what it holds: "Trojan Source", CVE-2021-42574) would do
// damage. One check for every place that takes such a name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace stentor {

// The longest session name, in bytes.
inline constexpr size_t max_session_name = 128;

// A format character that is invisible or reorders text: the bidirectional
// controls (U+061C, U+200E/F, U+202A..E, U+2066..9), the zero-width space
// and word joiner family (U+200B, U+2060..4), the soft hyphen (U+00AD),
// the Mongolian vowel separator (U+180E), the byte-order mark (U+FEFF),
// interlinear annotations (U+FFF9..B) and tag characters (U+E0000..7F).
// ZWNJ and ZWJ (U+200C/D) stay: scripts and emoji sequences need them, and
// they neither hide text nor reorder it.
constexpr bool hidden_or_reordering(uint32_t cp) noexcept {
    return cp == 0x00ad || cp == 0x061c || cp == 0x180e || cp == 0x200b || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0xe0000 && cp <= 0xe007f);
}

// Why `n` cannot be shown as it is, or nullopt.
inline std::optional<std::string> display_text_problem(std::string_view n) {
    const auto* p = reinterpret_cast<const unsigned char*>(n.data());
    const auto at = [](const char* what, uint32_t cp, size_t i) {
        char b[96];
        std::snprintf(b, sizeof b, "%s U+%04X at byte %zu", what, static_cast<unsigned>(cp), i);
        return std::string(b);
    };
    for (size_t i = 0; i < n.size();) {
        const unsigned c = p[i];
        const size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
        bool ok = len != 0 && i + len <= n.size();
        for (size_t k = 1; ok && k < len; ++k) {
            ok = (p[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        // No overlong forms, surrogates or code points past U+10FFFF.
        static constexpr uint32_t min_of_len[] = {0, 0, 0x80, 0x800, 0x10000};
        if (!ok || cp < min_of_len[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return "byte " + std::to_string(i) + " is not UTF-8";
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return at("control character", cp, i);
        if (hidden_or_reordering(cp)) return at("invisible or direction-changing character", cp, i);
        i += len;
    }
    return std::nullopt;
}

}  // namespace stentor
