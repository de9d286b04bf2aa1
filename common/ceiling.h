// The customer's veto: what a bundle signed by provider keys only may allow. The customer keeps a
// ceiling on the gateway (a policy file in the same schema); a provider-only bundle is accepted
// only if everything it opens fits inside it. Pure: no clock, no I/O.
#pragma once

#include <string>
#include <vector>

#include "common/policy_model.h"

namespace drawbridge {

// One way the bundle goes beyond the ceiling, as one precise sentence naming the provider, link
// or grant, the value that exceeds, and what the ceiling allows.
struct CeilingViolation {
  std::string what;
};

// Empty = the bundle fits inside the ceiling. Checks, in this order:
//  1. sources: each provider's addresses lie within the ceiling's addresses for that provider;
//  2. links: hosts and ports lie within the union of the ceiling links with the same provider and
//     direction, and every (host, port) the link opens is allowed by at least one such link;
//  3. windows: over [now, now + kCeilingHorizon) (capped at the bundle's expiry) the link is
//     open only while ceiling links allowing the same hosts and ports are open;
//  4. grants (clipped to start at `now`; past ones ignored) lie within those ceiling links'
//     windows or a ceiling grant for the same link and ticket;
//  5. guard: every port the ceiling guards is still guarded;
//  6. expiry: the bundle expires no later than the ceiling.
std::vector<CeilingViolation> exceeds_ceiling(const Policy& bundle, const Policy& ceiling,
                                              Instant now);

// How far ahead recurring windows are compared: two full weeks plus a day, so that every weekday
// occurs twice and a window crossing midnight at the end is seen whole.
inline constexpr std::chrono::days kCeilingHorizon{15};

}  // namespace drawbridge
