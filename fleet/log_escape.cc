#include "log_escape.h"

namespace stentor::fleet {

std::string escape_for_log(std::string_view text, size_t max_bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    const std::string_view shown = text.substr(0, max_bytes);
    std::string out;
    out.reserve(shown.size() + 16);
    for (const char ch : shown) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') {
            out.push_back(ch);
        } else {
            const char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
            out.append(e, sizeof e);
        }
    }
    if (shown.size() < text.size()) out += "...(" + std::to_string(text.size()) + " bytes)";
    return out;
}

}  // namespace stentor::fleet
