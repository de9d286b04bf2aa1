// SocEvent ⇄ compact JSON: how events are stored in the spool (event_spool.h), not what the SOC
// sees (that is event_format.h). One line, no whitespace, defaults left out, times as integer
// milliseconds since the Unix epoch, so that decode(encode(e)) == e field for field.
//
//   {"seq":7,"ts":1767225600000,"kind":"violation","action":"connection-denied",
//    "flow":{"src":"203.0.113.9","dst":"10.1.0.5","proto":6,"dport":3389},"packets":3}
//
// Decoding is strict because the spool is read back after crashes and upgrades: an unknown key,
// a duplicate key, a wrong type or an out-of-range number is an error, never a guess.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "enforcer/soc/event.h"

namespace drawbridge {

// Never throws. Strings must be UTF-8 (every field is made by the enforcer from names, addresses
// and its own sentences); an invalid byte sequence is replaced by U+FFFD rather than refused,
// because refusing would lose the whole event. Round trips are exact for valid UTF-8.
[[nodiscard]] std::string encode_event(const SocEvent& event);

// The inverse of encode_event, strict (see above). Errors name the offending key.
[[nodiscard]] Result<SocEvent> decode_event(std::string_view json);

// Field-for-field equality, for tests and for the spool's self-checks.
[[nodiscard]] bool same_event(const SocEvent& a, const SocEvent& b);

}  // namespace drawbridge
