// fleet::escape_for_log (fleet/log_escape.h): what a registry writer's
// string becomes in a log line. A table of inputs and the exact text
// logged; then every byte value on its own, checked against a decoder kept
// here, apart from the code under test.
#include <string>

#include <gtest/gtest.h>

#include "log_escape.h"

namespace stentor::test {
namespace {

using fleet::escape_for_log;
using fleet::log_escape_max;

struct row {
    const char* what;
    std::string in;
    std::string out;
};

TEST(LogEscape, untrusted_strings_become_one_printable_line) {
    const row rows[] = {
        {"a relay id as relays write it: as it is", "edge-eu-1", "edge-eu-1"},
        {"an address: as it is", "2001:db8::3", "2001:db8::3"},
        {"the empty string stays empty", "", ""},
        {"spaces and the rest of printable ASCII stay", "a b {}[]()<>=+-*/%$#@!?~^|`';:,.",
         "a b {}[]()<>=+-*/%$#@!?~^|`';:,."},
        {"a newline would forge a second line", "e1\nfleet: registered in etcd as /stentor/relays/o1",
         "e1\\x0afleet: registered in etcd as /stentor/relays/o1"},
        {"a carriage return would overwrite the line on a terminal", "e1\rforged", "e1\\x0dforged"},
        {"CR LF", "e1\r\n", "e1\\x0d\\x0a"},
        {"an ANSI escape sequence (clear screen, red)", "\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"},
        {"a NUL that would end a C string", std::string("a\0b", 3), "a\\x00b"},
        {"a tab", "a\tb", "a\\x09b"},
        {"the last C0 control", "\x1f", "\\x1f"},
        {"DEL", "a\x7f", "a\\x7f"},
        {"UTF-8: one escape per byte", "caf\xc3\xa9", "caf\\xc3\\xa9"},
        {"a C1 control (CSI, U+009B) in UTF-8", "\xc2\x9b" "2J", "\\xc2\\x9b2J"},
        {"a direction-changing character (RLO, U+202E)", "abc\xe2\x80\xae", "abc\\xe2\\x80\\xae"},
        {"bytes that are not UTF-8", "\xff\xfe\x80", "\\xff\\xfe\\x80"},
        {"a quote would close a quoted value early", "e1\" forged=\"1", "e1\\x22 forged=\\x221"},
        {"a backslash, so that the escapes read back unambiguously", "a\\b", "a\\x5cb"},
        {"text that looks like an escape is not one", "\\x0a", "\\x5cx0a"},
        {"exactly the cap: as it is, no marker", std::string(log_escape_max, 'a'), std::string(log_escape_max, 'a')},
        {"one past the cap: cut, with the whole length", std::string(log_escape_max + 1, 'a'),
         std::string(log_escape_max, 'a') + "...(129 bytes)"},
        {"a very long string", std::string(100000, 'x'), std::string(log_escape_max, 'x') + "...(100000 bytes)"},
        {"the cap counts input bytes: escapes are never cut in half", std::string(200, '\n'),
         [] {
             std::string s;
             for (size_t i = 0; i < log_escape_max; ++i) s += "\\x0a";
             return s + "...(200 bytes)";
         }()},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        EXPECT_EQ(escape_for_log(r.in), r.out);
    }
}

TEST(LogEscape, a_caller_may_cap_lower) {
    EXPECT_EQ(escape_for_log("0123456789abcdef0123", 16), "0123456789abcdef...(20 bytes)");
    EXPECT_EQ(escape_for_log("0123456789abcdef", 16), "0123456789abcdef");
    EXPECT_EQ(escape_for_log("\n", 0), "...(1 bytes)");
    EXPECT_EQ(escape_for_log("", 0), "");
}

// The reader's side, written apart from escape_for_log: \xNN is one byte,
// anything else is itself.
std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
            out.push_back(static_cast<char>(std::stoi(s.substr(i + 2, 2), nullptr, 16)));
            i += 3;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

TEST(LogEscape, every_byte_is_printable_ascii_without_a_quote_and_reads_back) {
    std::string all;
    for (unsigned b = 0; b < 256; ++b) {
        SCOPED_TRACE(b);
        const std::string in(1, static_cast<char>(b));
        const std::string out = escape_for_log(in);
        for (const char c : out) {
            const auto u = static_cast<unsigned char>(c);
            EXPECT_TRUE(u >= 0x20 && u <= 0x7e && c != '"') << "byte " << static_cast<unsigned>(u);
        }
        const bool kept = b >= 0x20 && b <= 0x7e && b != '"' && b != '\\';
        EXPECT_EQ(out.size(), kept ? 1u : 4u);
        EXPECT_EQ(unescape(out), in);
        all += in;
    }
    // All 256 at once: under the cap only with a cap to match.
    EXPECT_EQ(unescape(escape_for_log(all, all.size())), all);
}

}  // namespace
}  // namespace stentor::test
