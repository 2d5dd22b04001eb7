// Why an action of the model was refused, without a transport. Every action
// (relay_state, admission) either succeeds or throws action_error and
// changes nothing; its faces say it their own way: the HTTP API maps each
// code to a status (api_parse.h, http_status_of), stentord prints it for a
// static section, stentorctl shows the code the API put in the body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace stentor::control {

// _(code, stable name). The names are what the API's JSON bodies carry
// ({"error": name}) and what refusals are counted under: append only.
#define STENTOR_FOREACH_ERROR_CODE(_)                                                \
    _(invalid, "invalid")            /* the request itself is wrong */               \
    _(not_found, "not_found")        /* no such session, speaker or listener */      \
    _(exists, "exists")              /* session id, udp_port, speaker or listener taken */ \
    _(session_full, "session_full")  /* the session's max_listeners reached */       \
    _(capacity, "capacity")          /* a relay table or the admission plan is full */ \
    _(rate_limited, "rate_limited")  /* join-rate bucket short: see retry_after_s */

enum class error_code : uint8_t {
#define STENTOR_X(e, name) e,
    STENTOR_FOREACH_ERROR_CODE(STENTOR_X)
#undef STENTOR_X
};

inline constexpr std::size_t nb_error_codes = 0
#define STENTOR_X(e, name) +1
    STENTOR_FOREACH_ERROR_CODE(STENTOR_X)
#undef STENTOR_X
    ;

constexpr std::string_view name_of(error_code c) noexcept {
    switch (c) {
#define STENTOR_X(e, name) \
    case error_code::e: return name;
        STENTOR_FOREACH_ERROR_CODE(STENTOR_X)
#undef STENTOR_X
    }
    return "invalid";
}

struct action_error : std::runtime_error {
    error_code code;
    unsigned retry_after_s = 0;   // rate_limited: when the join-rate bucket will hold enough tokens
    action_error(error_code c, const std::string& what, unsigned retry_after = 0)
        : std::runtime_error(what), code(c), retry_after_s(retry_after) {}
};

}  // namespace stentor::control
