// Window arithmetic. Recurring windows are expanded into exact UTC occurrences day by day in the
// policy's zone (Howard Hinnant's date library over the OS tzdb); everything else is interval
// merging. Nothing here reads the clock or logs.
#include "common/window_schedule.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>

namespace drawbridge {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// The daemon re-evaluates at every edge, so next_edge need not look further than a week and a day.
constexpr auto kEdgeLookahead = date::days{8};
// How far next_opening searches, and how far a chain of touching occurrences is followed.
constexpr auto kHorizon = date::days{366};
// Occurrences are expanded this many days at a time while following chains and searching.
constexpr auto kChunk = date::days{8};

// Recurring windows are only expanded inside these bounds; outside them date arithmetic could
// overflow (Instant::max() is ~292 million years away) and no tzdb rule means anything.
constexpr Instant kEarliestExpandable{date::sys_days{date::year{1800} / 1 / 1}.time_since_epoch()};
constexpr Instant kLatestExpandable{date::sys_days{date::year{9999} / 1 / 1}.time_since_epoch()};

Instant add_saturating(Instant t, milliseconds d) {
  if (t > kForever - d) return kForever;
  return t + d;
}

Instant to_instant(date::local_seconds local, seconds offset) {
  return Instant{std::chrono::duration_cast<milliseconds>(local.time_since_epoch() - offset)};
}

enum class Bound : std::uint8_t { start, end };

// The UTC instant of a local wall-clock time. In a DST gap the time does not exist: the clock
// jumps over it at the transition, which is where an occurrence starts or ends. An ambiguous
// time (fall-back) is taken as early as possible for a start and as late as possible for an end,
// so the occurrence covers every instant whose wall clock lies in the window.
Instant resolve(const date::time_zone& zone, date::local_seconds local, Bound bound) {
  const date::local_info info = zone.get_info(local);
  switch (info.result) {
    case date::local_info::unique:
      return to_instant(local, info.first.offset);
    case date::local_info::nonexistent:
      return Instant{std::chrono::duration_cast<milliseconds>(info.first.end.time_since_epoch())};
    case date::local_info::ambiguous: {
      const Instant a = to_instant(local, info.first.offset);
      const Instant b = to_instant(local, info.second.offset);
      return bound == Bound::start ? std::min(a, b) : std::max(a, b);
    }
  }
  return to_instant(local, info.first.offset);  // unreachable: the switch is exhaustive
}

date::local_days local_day(const date::time_zone& zone, Instant t) {
  return date::floor<date::days>(zone.to_local(t));
}

// Appends the occurrences of `window` intersecting [from, until) to `out` (unsorted).
void append_occurrences(const Window& window, const date::time_zone* zone, Instant from,
                        Instant until, std::vector<Interval>& out) {
  if (window.always) {
    if (from < until) out.push_back({from, until});
    return;
  }
  from = std::max(from, kEarliestExpandable);
  until = std::min(until, kLatestExpandable);
  if (from >= until || window.days.none() || zone == nullptr) return;

  // An occurrence ends at most a day after the day it starts; one extra day either side covers
  // zones whose clocks jump back across midnight.
  const date::local_days first = local_day(*zone, from) - date::days{2};
  const date::local_days last = local_day(*zone, until) + date::days{1};
  const bool crosses_midnight = window.to <= window.from;
  for (date::local_days day = first; day <= last; day += date::days{1}) {
    if (!window.days.test(date::weekday{day}.c_encoding())) continue;
    const date::local_seconds start_local = day + window.from;
    const date::local_seconds end_local =
        (crosses_midnight ? day + date::days{1} : day) + window.to;
    const Instant start = resolve(*zone, start_local, Bound::start);
    const Instant end = resolve(*zone, end_local, Bound::end);
    // A window lying entirely inside a DST gap has no real instants at all.
    if (start < end && start < until && end > from) out.push_back({start, end});
  }
}

// What opens one link: its recurring windows and, for next_opening, its grants.
class LinkSchedule {
 public:
  LinkSchedule(const Policy& policy, const Link& link, bool with_grants) {
    for (const std::string& name : link.windows) {
      if (name == kAlwaysWindow) {
        always_ = true;
        continue;
      }
      const Window* w = policy.window(name);
      if (w == nullptr) continue;  // cannot happen in a validated policy
      if (w->always) {
        always_ = true;
      } else {
        windows_.push_back(w);
      }
    }
    if (!windows_.empty() && !always_) zone_ = date::locate_zone(policy.timezone);
    if (with_grants) {
      for (const Grant& g : policy.grants) {
        if (g.link == link.name && g.from < g.until) grants_.push_back({g.from, g.until});
      }
    }
  }

  [[nodiscard]] bool always() const { return always_; }

  // Every interval (occurrence or grant) intersecting [from, until), ascending by start.
  void collect(Instant from, Instant until, std::vector<Interval>& out) const {
    out.clear();
    for (const Window* w : windows_) append_occurrences(*w, zone_, from, until, out);
    for (const Interval& g : grants_) {
      if (g.from < until && g.until > from) out.push_back(g);
    }
    std::sort(out.begin(), out.end());
  }

  // The end of the chain of overlapping or touching intervals that reaches `end`, followed until
  // it breaks or passes `limit`.
  [[nodiscard]] Instant chain_end(Instant end, Instant limit) const {
    std::vector<Interval> found;
    while (end < limit) {
      collect(end, add_saturating(end, kChunk), found);
      const Instant before = end;
      for (const Interval& iv : found) {
        if (iv.from > end) break;
        end = std::max(end, iv.until);
      }
      if (end == before) break;
    }
    return end;
  }

  // If some interval contains `now`, the end of the chain it belongs to.
  [[nodiscard]] std::optional<Instant> open_until(Instant now, Instant limit) const {
    std::vector<Interval> found;
    collect(now, now + milliseconds{1}, found);
    if (found.empty()) return std::nullopt;
    Instant end = now;
    for (const Interval& iv : found) end = std::max(end, iv.until);
    return chain_end(end, limit);
  }

 private:
  std::vector<const Window*> windows_;
  std::vector<Interval> grants_;
  const date::time_zone* zone_ = nullptr;
  bool always_ = false;
};

bool expired(const Policy& policy, Instant now) {
  return policy.expires && now >= *policy.expires;
}

Instant cap(const Policy& policy, Instant t) {
  return policy.expires ? std::min(t, *policy.expires) : t;
}

// Days since 1970-01-01 → proleptic Gregorian date, in 64 bits so that any Instant formats
// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", civil_from_days).
struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<std::uint64_t>(z - era * 146097);
  const std::uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::uint64_t mp = (5 * doy + 2) / 153;
  const auto day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const auto month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  const std::int64_t year = static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

// Reads exactly `n` decimal digits at `pos`.
std::optional<int> digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::vector<Interval> window_occurrences(const Window& window, const std::string& timezone,
                                         Instant from, Instant until) {
  std::vector<Interval> out;
  const date::time_zone* zone = window.always ? nullptr : date::locate_zone(timezone);
  append_occurrences(window, zone, from, until, out);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<Instant> recurring_open_until(const Policy& policy, const Link& link, Instant now) {
  if (expired(policy, now)) return std::nullopt;
  const LinkSchedule schedule(policy, link, /*with_grants=*/false);
  if (schedule.always()) return policy.expires.value_or(kForever);
  // A chain of touching occurrences can go on for ever (a daily 00:00-00:00 window); beyond the
  // horizon the daemon will have re-evaluated many times anyway.
  const Instant limit = cap(policy, add_saturating(now, kHorizon));
  const std::optional<Instant> end = schedule.open_until(now, limit);
  if (!end) return std::nullopt;
  return cap(policy, *end);
}

std::optional<Instant> next_edge(const Policy& policy, Instant now) {
  if (expired(policy, now)) return std::nullopt;
  std::optional<Instant> best;
  const auto consider = [&](Instant t) {
    if (t > now && (!best || t < *best)) best = t;
  };
  if (policy.expires) consider(*policy.expires);
  for (const Grant& g : policy.grants) {
    consider(g.from);
    consider(g.until);
  }

  // Each recurring window once, however many links use it.
  std::vector<const Window*> windows;
  for (const Link& link : policy.links) {
    for (const std::string& name : link.windows) {
      const Window* w = policy.window(name);
      if (w == nullptr || w->always) continue;  // "always" has no edges of its own
      if (std::find(windows.begin(), windows.end(), w) == windows.end()) windows.push_back(w);
    }
  }
  if (windows.empty()) return best;

  const date::time_zone* zone = date::locate_zone(policy.timezone);
  const Instant until = add_saturating(now, kEdgeLookahead);
  std::vector<Interval> occurrences;
  for (const Window* w : windows) {
    occurrences.clear();
    append_occurrences(*w, zone, now, until, occurrences);
    for (const Interval& iv : occurrences) {
      consider(iv.from);
      consider(iv.until);
    }
  }
  return best;
}

std::optional<Interval> next_opening(const Policy& policy, const Link& link, Instant now) {
  if (expired(policy, now)) return std::nullopt;
  const LinkSchedule schedule(policy, link, /*with_grants=*/true);
  if (schedule.always()) return std::nullopt;  // open until expiry; it never opens again

  const Instant search_end = add_saturating(now, kHorizon);
  // If open now, the next opening can only start after the current one has closed.
  Instant after = now;
  if (const auto current = schedule.open_until(now, search_end)) after = *current;
  if (after >= search_end || after >= cap(policy, kForever)) return std::nullopt;

  std::vector<Interval> found;
  for (Instant chunk = after; chunk < search_end; chunk = add_saturating(chunk, kChunk)) {
    schedule.collect(chunk, std::min(add_saturating(chunk, kChunk), search_end), found);
    const auto first = std::find_if(found.begin(), found.end(),
                                    [&](const Interval& iv) { return iv.from > after; });
    if (first == found.end()) continue;
    const Instant start = first->from;
    if (policy.expires && start >= *policy.expires) return std::nullopt;
    const Instant end =
        schedule.chain_end(first->until, cap(policy, add_saturating(start, kHorizon)));
    return Interval{start, cap(policy, end)};
  }
  return std::nullopt;
}

std::string format_instant(Instant t) {
  if (t == kForever) return "forever";
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const auto ms = (t - day).count();  // 0 .. 86'399'999
  const Civil c = civil_from_days(day.time_since_epoch().count());
  const auto hour = static_cast<int>(ms / 3'600'000);
  const auto minute = static_cast<int>(ms / 60'000 % 60);
  const auto second = static_cast<int>(ms / 1000 % 60);
  const auto milli = static_cast<int>(ms % 1000);
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d",
                              static_cast<long long>(c.year), c.month, c.day, hour, minute, second);
  std::string out(buf, static_cast<std::size_t>(n));
  if (milli != 0) {
    std::snprintf(buf, sizeof buf, ".%03d", milli);
    out += buf;
  }
  out += 'Z';
  return out;
}

// RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). 'T' and 'Z' may be lower
// case (RFC 3339 section 5.6 note). Leap seconds (:60) are refused: system time cannot hold them.
// Fractions beyond milliseconds are truncated.
std::optional<Instant> parse_instant(std::string_view text) {
  const std::string_view s = text;
  const auto year = digits(s, 0, 4);
  const auto month = digits(s, 5, 2);
  const auto day = digits(s, 8, 2);
  const auto hour = digits(s, 11, 2);
  const auto minute = digits(s, 14, 2);
  const auto second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':') {
    return std::nullopt;
  }
  if (*hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  const date::year_month_day ymd{date::year{*year}, date::month{static_cast<unsigned>(*month)},
                                 date::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok()) return std::nullopt;

  std::size_t pos = 19;
  milliseconds fraction{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t begin = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      fraction += milliseconds{(s[pos] - '0') * scale};
      scale /= 10;
      ++pos;
    }
    if (pos == begin) return std::nullopt;
  }

  if (pos >= s.size()) return std::nullopt;
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const auto oh = digits(s, pos + 1, 2);
    const auto om = digits(s, pos + 4, 2);
    if (!oh || !om || s[pos + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset = std::chrono::hours{*oh} + minutes{*om};
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;

  const auto local = date::sys_days{ymd} + std::chrono::hours{*hour} + minutes{*minute} +
                     seconds{*second} + fraction;
  return Instant{std::chrono::duration_cast<milliseconds>(local.time_since_epoch() - offset)};
}

}  // namespace drawbridge
