// Window arithmetic: when recurring windows (in the policy's IANA time zone) and grants (absolute
// UTC) are open. Pure functions of (policy, instant); no clock is read here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"

namespace drawbridge {

// [from, until): open from `from` (inclusive) to `until` (exclusive).
struct Interval {
  Instant from;
  Instant until;
  auto operator<=>(const Interval&) const = default;
};

// Instant::max() stands for "no end" (the built-in "always" window without a policy expiry).
inline constexpr Instant kForever = Instant::max();

// Occurrences of one recurring window that intersect [from, until), in ascending order, each as
// the exact UTC interval. Local times are resolved in `timezone`: a start that falls in a DST gap
// begins at the transition; an ambiguous local time (DST fall-back) resolves to the earliest
// instant for a start and the latest for an end, so a window covers every local time in it.
// An "always" window yields one interval [from, until).
std::vector<Interval> window_occurrences(const Window& window, const std::string& timezone,
                                         Instant from, Instant until);

// If the link's recurring windows have it open at `now`, the end of that opening: occurrences
// that touch or overlap are merged, and the end is capped at the policy's `expires`.
// kForever for "always" without expiry. nullopt when closed at `now` (or `now` >= expires).
std::optional<Instant> recurring_open_until(const Policy& policy, const Link& link, Instant now);

// The earliest instant strictly after `now` at which any link's access changes: a recurring
// occurrence starts or ends, a grant starts or ends, or the policy expires. nullopt if none.
// The daemon sleeps until then.
std::optional<Instant> next_edge(const Policy& policy, Instant now);

// The next time the link opens after `now` (window or grant), for summaries; nullopt if never
// (within a search horizon of 366 days) or not before expiry.
std::optional<Interval> next_opening(const Policy& policy, const Link& link, Instant now);

// "2026-11-26T14:00:00Z" style formatting and parsing for CLI arguments and messages.
std::string format_instant(Instant t);
std::optional<Instant> parse_instant(std::string_view text);

}  // namespace drawbridge
