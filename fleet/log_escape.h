// Text others wrote, on its way into a log line: what the fleet's registry
// in etcd holds (relay ids, addresses, `trunk_epoch`, a trunk's edge and
// origins, the keys themselves) is written by whoever may write under
// [fleet] prefix (docs/security.md "The fleet's registry"), not by this
// process. Shown as it was written, a newline in a relay id would forge a
// second log line, an escape sequence would rewrite the operator's terminal
// and a quote would close a quoted value early. Every place that puts such a
// string into a log line, a problem or refusal text, a `last_error` or an
// API's error reason passes it through escape_for_log() first; what the
// relay itself produced (its own id, its profile's settings, numbers) is
// logged as it is.
//
// In fleet/, not control/log.h: the fleet library composes most of these
// lines itself (plan_trunks' problems and refusals, the registrar's clash)
// and includes nothing of control/.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace stentor::fleet {

// The longest piece of an untrusted string shown, in input bytes: relay ids,
// addresses and epochs are far shorter; a longer one is cut.
inline constexpr size_t log_escape_max = 128;

// `text` as one log line may hold it: printable ASCII (0x20..0x7e) as it
// is, except `"` and `\`; those two, the control characters (0x00..0x1f,
// 0x7f) and every byte >= 0x80 (UTF-8 too: one escape per byte) as `\xNN`,
// two lowercase hex digits. The result is printable ASCII without a quote,
// and reads back to the bytes it came from. At most `max_bytes` bytes of
// `text` are shown; a longer one is cut there and ends in "...(N bytes)", N
// its whole length. "" stays "".
std::string escape_for_log(std::string_view text, size_t max_bytes = log_escape_max);

}  // namespace stentor::fleet
