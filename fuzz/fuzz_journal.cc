// libFuzzer target for the journal reader (control/journal_format.h): what
// a restore meets in a journal or snapshot file after a crash, a full disk
// or bit rot, as arbitrary bytes.
//
// Input: a file as it lies on disk. If it starts with a header that
// decodes, the records after it are read; otherwise the whole input is read
// as records (a restore never gets there, the fuzzer should).
//
// Beyond "no crash, no leak, no UB, no huge allocation from a lying length"
// the contract is checked: the reader only moves forward, never past the
// end; it stops for good (asking again gives the same answer and the same
// good_bytes); a stop always says why; and every record it accepts is
// canonical: encoding it again gives exactly the bytes it was read from, so
// whatever a restore applies is what some journal writer wrote.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "journal_format.h"

using namespace stentor::control;

namespace {

[[noreturn]] void finding(const char* what) {
    std::fprintf(stderr, "fuzz_journal: contract broken: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) finding(what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> body(data, size);
    std::string why;
    if (const auto h = jr::decode_header(body, why)) {
        check(h->kind == jr::file_kind::journal || h->kind == jr::file_kind::snapshot, "header kind");
        std::string again;
        jr::encode_header(h->kind, h->epoch, again);
        check(std::memcmp(again.data(), data, jr::header_size) == 0, "header does not re-encode to its bytes");
        body = body.subspan(jr::header_size);
    } else {
        check(!why.empty(), "header refused without a reason");
    }

    jr::reader rd(body);
    jr::record r;
    size_t pos = 0;
    jr::reader::status s;
    while ((s = rd.next(r)) == jr::reader::status::record) {
        const size_t end = rd.good_bytes();
        check(end > pos && end <= body.size(), "reader did not move forward within the input");
        std::string bytes;
        jr::encode(r, bytes);
        check(bytes.size() == end - pos && std::memcmp(bytes.data(), body.data() + pos, bytes.size()) == 0,
              "accepted record is not canonical (re-encodes differently)");
        pos = end;
    }
    check(rd.good_bytes() == pos, "good_bytes moved on a stop");
    if (s == jr::reader::status::end) {
        check(pos == body.size(), "end before the end of the input");
    } else {
        check(s == jr::reader::status::torn || s == jr::reader::status::corrupt, "unknown status");
        check(pos < body.size(), "stopped with nothing left");
        check(!rd.why().empty(), "stopped without a reason");
        check(rd.next(r) == s && rd.good_bytes() == pos, "a stop is not final");
    }
    return 0;
}
