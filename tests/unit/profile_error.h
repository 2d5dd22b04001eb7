// What the profile tests compare: parse_profile's refusal of `text` (read as
// file "t.toml"), or "(no error)" when it parses.
#pragma once

#include <string>

#include "config.h"

namespace stentor::control::test {

inline std::string error_of(const std::string& text) {
    try {
        parse_profile(text, "t.toml");
    } catch (const config_error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace stentor::control::test
