// Window arithmetic against instants worked out by hand (UTC offsets and DST transitions checked
// with `zdump -v America/Chicago Europe/Berlin`, weekdays with `date -u -d`).
#include "common/window_schedule.h"

#include <date/date.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace drawbridge {

// Readable failures for intervals (Instant itself lives in std::chrono, where we may not add).
void PrintTo(const Interval& iv, std::ostream* os) {
  *os << "[" << format_instant(iv.from) << ", " << format_instant(iv.until) << ")";
}

namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;

constexpr int kSun = 0, kMon = 1, kTue = 2, kWed = 3, kThu = 4, kFri = 5, kSat = 6;

Instant utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int ms = 0) {
  const auto day = date::sys_days{date::year{y} / date::month{mo} / date::day{d}};
  return Instant{day.time_since_epoch() + hours{h} + minutes{mi} + std::chrono::seconds{s} +
                 milliseconds{ms}};
}

Window recurring(std::string name, std::initializer_list<int> days, int from_h, int from_m,
                 int to_h, int to_m) {
  Window w;
  w.name = std::move(name);
  for (int d : days) w.days.set(static_cast<std::size_t>(d));
  w.from = hours{from_h} + minutes{from_m};
  w.to = hours{to_h} + minutes{to_m};
  return w;
}

Link link_with(std::string name, std::vector<std::string> windows) {
  Link l;
  l.name = std::move(name);
  l.provider = "msp";
  l.windows = std::move(windows);
  return l;
}

Grant grant_for(std::string link, Instant from, Instant until) {
  Grant g;
  g.link = std::move(link);
  g.ticket = "CHG-1";
  g.from = from;
  g.until = until;
  return g;
}

Policy policy_in(std::string timezone, std::vector<Window> windows, std::vector<Link> links) {
  Policy p;
  p.site = "clinic";
  p.timezone = std::move(timezone);
  p.windows = std::move(windows);
  p.links = std::move(links);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Occurrences

TEST(WindowOccurrences, WeekdayIndexIsDaysSinceSunday) {
  // Week of Sun 2026-11-22 … Sat 2026-11-28 (2026-11-26 is a Thursday). Berlin is on CET (+1),
  // so 10:00 local is 09:00Z.
  const Instant week_start = utc(2026, 11, 21, 23);  // Sun 2026-11-22 00:00 CET
  const Instant week_end = utc(2026, 11, 28, 23);    // Sun 2026-11-29 00:00 CET
  const char* names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  for (int i = 0; i < 7; ++i) {
    const Window w = recurring(names[i], {i}, 10, 0, 11, 0);
    const auto occ = window_occurrences(w, "Europe/Berlin", week_start, week_end);
    const unsigned day = 22 + static_cast<unsigned>(i);
    EXPECT_EQ(occ, (std::vector<Interval>{{utc(2026, 11, day, 9), utc(2026, 11, day, 10)}}))
        << names[i];
  }
  static_assert(kSun == 0 && kMon == 1 && kTue == 2 && kWed == 3 && kThu == 4 && kFri == 5 &&
                kSat == 6);
}

TEST(WindowOccurrences, AllDaysGiveOnePerDayInOrder) {
  // Mon–Fri 08:00–09:00 in UTC over Sun 2026-11-22 .. Sun 2026-11-29: the 23rd to the 27th.
  const Window w = recurring("weekdays", {kMon, kTue, kWed, kThu, kFri}, 8, 0, 9, 0);
  const auto occ = window_occurrences(w, "Etc/UTC", utc(2026, 11, 22), utc(2026, 11, 29));
  ASSERT_EQ(occ.size(), 5u);
  for (unsigned i = 0; i < 5; ++i) {
    EXPECT_EQ(occ[i], (Interval{utc(2026, 11, 23 + i, 8), utc(2026, 11, 23 + i, 9)}));
  }
}

TEST(WindowOccurrences, IntersectingOnlyAndUnclipped) {
  // Mon 2026-11-23 08:00–09:00Z; a query window [08:30, 08:31) still returns the whole occurrence,
  // one ending exactly at `from` or starting exactly at `until` is not returned.
  const Window w = recurring("m", {kMon}, 8, 0, 9, 0);
  const Interval whole{utc(2026, 11, 23, 8), utc(2026, 11, 23, 9)};
  EXPECT_EQ(window_occurrences(w, "Etc/UTC", utc(2026, 11, 23, 8, 30), utc(2026, 11, 23, 8, 31)),
            std::vector<Interval>{whole});
  EXPECT_TRUE(
      window_occurrences(w, "Etc/UTC", utc(2026, 11, 23, 9), utc(2026, 11, 23, 12)).empty());
  EXPECT_TRUE(window_occurrences(w, "Etc/UTC", utc(2026, 11, 23, 6), utc(2026, 11, 23, 8)).empty());
}

TEST(WindowOccurrences, AlwaysIsOneIntervalCoveringTheQuery) {
  Window always;
  always.name = "always";
  always.always = true;
  EXPECT_EQ(window_occurrences(always, "Europe/Berlin", utc(2026, 1, 1), utc(2027, 1, 1)),
            (std::vector<Interval>{{utc(2026, 1, 1), utc(2027, 1, 1)}}));
  EXPECT_TRUE(
      window_occurrences(always, "Europe/Berlin", utc(2026, 1, 1), utc(2026, 1, 1)).empty());
}

TEST(WindowOccurrences, SameFromAndToIsAFullDay) {
  // 00:00–00:00 runs 24 h, except on the spring-forward Sunday in Chicago, which has 23:
  // Sat 2026-03-07 00:00 CST = 06:00Z → Sun 00:00 CST = 2026-03-08T06:00Z;
  // Sun 00:00 CST = 06:00Z → Mon 00:00 CDT = 2026-03-09T05:00Z.
  const Window w = recurring("day", {kSat, kSun}, 0, 0, 0, 0);
  EXPECT_EQ(window_occurrences(w, "America/Chicago", utc(2026, 3, 7, 6), utc(2026, 3, 9, 5)),
            (std::vector<Interval>{{utc(2026, 3, 7, 6), utc(2026, 3, 8, 6)},
                                   {utc(2026, 3, 8, 6), utc(2026, 3, 9, 5)}}));
}

// ---------------------------------------------------------------------------------------------
// Midnight crossing

class MidnightCrossing : public ::testing::Test {
 protected:
  // Chicago in late November is on CST (UTC-6). Fri 2026-11-27 22:00 CST = Sat 04:00Z, and the
  // occurrence ends Sat 2026-11-28 02:00 CST = 08:00Z.
  Policy policy_ = policy_in("America/Chicago", {recurring("late", {kFri}, 22, 0, 2, 0)},
                             {link_with("rdp", {"late"})});
  const Link& link() const { return policy_.links[0]; }
};

TEST_F(MidnightCrossing, OccurrenceEndsOnTheNextDay) {
  EXPECT_EQ(window_occurrences(policy_.windows[0], policy_.timezone, utc(2026, 11, 27),
                               utc(2026, 11, 29)),
            (std::vector<Interval>{{utc(2026, 11, 28, 4), utc(2026, 11, 28, 8)}}));
}

TEST_F(MidnightCrossing, OpenOnSaturdayMorningFromFridayListing) {
  // Sat 01:00 CST = 07:00Z.
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 28, 7)), utc(2026, 11, 28, 8));
}

TEST_F(MidnightCrossing, BoundariesAreHalfOpen) {
  // Fri 21:59 CST closed; Fri 22:00 CST open; Sat 02:00 CST closed.
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 28, 3, 59)), std::nullopt);
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 28, 4)), utc(2026, 11, 28, 8));
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 28, 7, 59, 59, 999)),
            utc(2026, 11, 28, 8));
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 28, 8)), std::nullopt);
  // Thu 23:00 CST (Fri 05:00Z): the night before the listed day is not part of it.
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 27, 5)), std::nullopt);
}

TEST_F(MidnightCrossing, SaturdayNightClosedUnlessSaturdayListed) {
  // Sat 22:30 CST = Sun 2026-11-29 04:30Z.
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 29, 4, 30)), std::nullopt);
  policy_.windows[0].days.set(kSat);
  // Now Sat 22:00 → Sun 02:00 CST = Sun 08:00Z.
  EXPECT_EQ(recurring_open_until(policy_, link(), utc(2026, 11, 29, 4, 30)), utc(2026, 11, 29, 8));
}

// ---------------------------------------------------------------------------------------------
// DST: America/Chicago springs forward Sun 2026-03-08 02:00 CST → 03:00 CDT (08:00Z) and falls
// back Sun 2026-11-01 02:00 CDT → 01:00 CST (07:00Z). Europe/Berlin springs forward Sun
// 2026-03-29 02:00 CET → 03:00 CEST (01:00Z) and falls back Sun 2026-10-25 03:00 CEST → 02:00
// CET (01:00Z).

TEST(Dst, ChicagoSpringForwardShortensTheWindow) {
  // 01:00 CST = 07:00Z; 03:00 CDT = 08:00Z: one real hour for a two-hour wall-clock window.
  const Window w = recurring("night", {kSun}, 1, 0, 3, 0);
  EXPECT_EQ(window_occurrences(w, "America/Chicago", utc(2026, 3, 8), utc(2026, 3, 9)),
            (std::vector<Interval>{{utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)}}));
}

TEST(Dst, ChicagoStartInTheGapBeginsAtTheTransition) {
  // 02:30 does not exist: the start is the transition 08:00Z; 04:00 CDT = 09:00Z.
  const Window w = recurring("gap", {kSun}, 2, 30, 4, 0);
  EXPECT_EQ(window_occurrences(w, "America/Chicago", utc(2026, 3, 8), utc(2026, 3, 9)),
            (std::vector<Interval>{{utc(2026, 3, 8, 8), utc(2026, 3, 8, 9)}}));
}

TEST(Dst, ChicagoEndInTheGapEndsAtTheTransition) {
  // Sat 2026-03-07 22:00 CST = Sun 04:00Z → Sun 02:00 (nonexistent) = transition 08:00Z.
  const Window w = recurring("sat-night", {kSat}, 22, 0, 2, 0);
  EXPECT_EQ(window_occurrences(w, "America/Chicago", utc(2026, 3, 7), utc(2026, 3, 9)),
            (std::vector<Interval>{{utc(2026, 3, 8, 4), utc(2026, 3, 8, 8)}}));
}

TEST(Dst, WindowEntirelyInTheGapNeverOpens) {
  // 02:15–02:45 on the spring-forward Sunday has no instants at all, in either zone.
  const Window chicago = recurring("void", {kSun}, 2, 15, 2, 45);
  EXPECT_TRUE(
      window_occurrences(chicago, "America/Chicago", utc(2026, 3, 8), utc(2026, 3, 9)).empty());
  const Window berlin = recurring("void", {kSun}, 2, 0, 3, 0);
  EXPECT_TRUE(
      window_occurrences(berlin, "Europe/Berlin", utc(2026, 3, 28), utc(2026, 3, 30)).empty());
}

TEST(Dst, ChicagoFallBackLengthensTheWindow) {
  // Start 01:00 is ambiguous → earliest, 01:00 CDT = 06:00Z; end 03:00 CST = 09:00Z: 3 real
  // hours. A week later (Sun 2026-11-08, CST all night): 07:00Z–09:00Z, the usual 2 hours.
  const Window w = recurring("night", {kSun}, 1, 0, 3, 0);
  EXPECT_EQ(window_occurrences(w, "America/Chicago", utc(2026, 11, 1), utc(2026, 11, 9)),
            (std::vector<Interval>{{utc(2026, 11, 1, 6), utc(2026, 11, 1, 9)},
                                   {utc(2026, 11, 8, 7), utc(2026, 11, 8, 9)}}));
}

TEST(Dst, ChicagoAmbiguousEndIsTheLatest) {
  // 00:30 CDT = 05:30Z; end 01:30 ambiguous → latest, 01:30 CST = 07:30Z.
  const Window w = recurring("late", {kSun}, 0, 30, 1, 30);
  EXPECT_EQ(window_occurrences(w, "America/Chicago", utc(2026, 11, 1), utc(2026, 11, 2)),
            (std::vector<Interval>{{utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 30)}}));
  // Both passes through 01:15 are inside: 06:15Z (CDT) and 07:15Z (CST).
  const Policy p = policy_in("America/Chicago", {w}, {link_with("ssh", {"late"})});
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 1, 6, 15)), utc(2026, 11, 1, 7, 30));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 1, 7, 15)), utc(2026, 11, 1, 7, 30));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 1, 7, 30)), std::nullopt);
}

TEST(Dst, BerlinSpringForward) {
  // 01:00 CET = 00:00Z; 03:00 CEST = 01:00Z.
  const Window w = recurring("night", {kSun}, 1, 0, 3, 0);
  EXPECT_EQ(window_occurrences(w, "Europe/Berlin", utc(2026, 3, 28), utc(2026, 3, 30)),
            (std::vector<Interval>{{utc(2026, 3, 29, 0), utc(2026, 3, 29, 1)}}));
}

TEST(Dst, BerlinFallBack) {
  // 01:00 CEST = Sat 2026-10-24 23:00Z; 03:00 CET = 02:00Z: 3 real hours.
  const Window w = recurring("night", {kSun}, 1, 0, 3, 0);
  EXPECT_EQ(window_occurrences(w, "Europe/Berlin", utc(2026, 10, 24), utc(2026, 10, 26)),
            (std::vector<Interval>{{utc(2026, 10, 24, 23), utc(2026, 10, 25, 2)}}));
  // 02:00 is ambiguous → earliest, 02:00 CEST = 00:00Z; 03:00 CET = 02:00Z.
  const Window w2 = recurring("two", {kSun}, 2, 0, 3, 0);
  EXPECT_EQ(window_occurrences(w2, "Europe/Berlin", utc(2026, 10, 24), utc(2026, 10, 26)),
            (std::vector<Interval>{{utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)}}));
}

// ---------------------------------------------------------------------------------------------
// Leap days

TEST(LeapDay, SundayWindowOn2032February29) {
  // 2032-02-29 is a Sunday (date -u -d 2032-02-29 +%a).
  const Window w = recurring("sun", {kSun}, 10, 0, 12, 0);
  EXPECT_EQ(window_occurrences(w, "Etc/UTC", utc(2032, 2, 23), utc(2032, 3, 6)),
            (std::vector<Interval>{{utc(2032, 2, 29, 10), utc(2032, 2, 29, 12)}}));
}

TEST(LeapDay, CrossingMidnightIntoAndOutOfFebruary29In2028) {
  // Mon 2028-02-28 23:00 CET = 22:00Z → Tue 2028-02-29 01:00 CET = 2028-02-29T00:00Z.
  // Tue 2028-02-29 23:00 CET = 22:00Z → Wed 2028-03-01 01:00 CET = 2028-03-01T00:00Z.
  const Window w = recurring("late", {kMon, kTue}, 23, 0, 1, 0);
  EXPECT_EQ(window_occurrences(w, "Europe/Berlin", utc(2028, 2, 28), utc(2028, 3, 2)),
            (std::vector<Interval>{{utc(2028, 2, 28, 22), utc(2028, 2, 29, 0)},
                                   {utc(2028, 2, 29, 22), utc(2028, 3, 1, 0)}}));
  const Policy p = policy_in("Europe/Berlin", {w}, {link_with("rdp", {"late"})});
  // Tue 2028-02-29 00:30 CET = Mon 23:30Z.
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2028, 2, 28, 23, 30)), utc(2028, 2, 29, 0));
}

// ---------------------------------------------------------------------------------------------
// recurring_open_until: merging and expiry (all in UTC; Mon 2026-11-23)

TEST(RecurringOpenUntil, TouchingOccurrencesMerge) {
  const Policy p = policy_in(
      "Etc/UTC", {recurring("late", {kMon}, 22, 0, 2, 0), recurring("early", {kTue}, 2, 0, 6, 0)},
      {link_with("rdp", {"late", "early"})});
  // Mon 23:00 is in late (→ Tue 02:00), which touches early (→ Tue 06:00).
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 23)), utc(2026, 11, 24, 6));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 24, 3)), utc(2026, 11, 24, 6));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 24, 6)), std::nullopt);
}

TEST(RecurringOpenUntil, OverlappingChainOfThree) {
  // 21:00–23:00 overlaps 22:00–02:00, which touches 02:00–06:00.
  const Policy p =
      policy_in("Etc/UTC",
                {recurring("evening", {kMon}, 21, 0, 23, 0), recurring("late", {kMon}, 22, 0, 2, 0),
                 recurring("early", {kTue}, 2, 0, 6, 0)},
                {link_with("rdp", {"evening", "late", "early"})});
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 21, 30)), utc(2026, 11, 24, 6));
}

TEST(RecurringOpenUntil, AGapOfOneMinuteBreaksTheChain) {
  const Policy p = policy_in(
      "Etc/UTC", {recurring("late", {kMon}, 22, 0, 2, 0), recurring("early", {kTue}, 2, 1, 6, 0)},
      {link_with("rdp", {"late", "early"})});
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 23)), utc(2026, 11, 24, 2));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 24, 2)), std::nullopt);
}

TEST(RecurringOpenUntil, OnlyTheLinksOwnWindowsCount) {
  const Policy p = policy_in(
      "Etc/UTC", {recurring("mon", {kMon}, 9, 0, 17, 0), recurring("tue", {kTue}, 9, 0, 17, 0)},
      {link_with("a", {"tue"}), link_with("none", {})});
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 10)), std::nullopt);
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 24, 10)), utc(2026, 11, 24, 17));
  EXPECT_EQ(recurring_open_until(p, p.links[1], utc(2026, 11, 24, 10)), std::nullopt);
}

TEST(RecurringOpenUntil, GrantsAreNotRecurringWindows) {
  Policy p = policy_in("Etc/UTC", {}, {link_with("rdp", {})});
  p.grants.push_back(grant_for("rdp", utc(2026, 11, 23, 9), utc(2026, 11, 23, 10)));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 9, 30)), std::nullopt);
}

TEST(RecurringOpenUntil, ExpiryCapsAndCloses) {
  Policy p =
      policy_in("Etc/UTC", {recurring("work", {kMon}, 9, 0, 17, 0)}, {link_with("rdp", {"work"})});
  p.expires = utc(2026, 11, 23, 12);
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 10)), utc(2026, 11, 23, 12));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 11, 59, 59, 999)),
            utc(2026, 11, 23, 12));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23, 12)), std::nullopt);
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 30, 10)), std::nullopt);
}

TEST(RecurringOpenUntil, AlwaysIsForeverOrUntilExpiry) {
  Policy p = policy_in("Etc/UTC", {}, {link_with("rmm", {"always"})});
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23)), kForever);
  p.expires = utc(2027, 1, 1);
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2026, 11, 23)), utc(2027, 1, 1));
  EXPECT_EQ(recurring_open_until(p, p.links[0], utc(2027, 1, 1)), std::nullopt);
}

TEST(RecurringOpenUntil, EndlessChainStopsAtTheHorizon) {
  // Every day 00:00–00:00 touches the next: the chain never breaks, so the answer is the end of
  // some occurrence (a UTC midnight) at least 366 days away.
  const Policy p = policy_in("Etc/UTC", {recurring("all", {0, 1, 2, 3, 4, 5, 6}, 0, 0, 0, 0)},
                             {link_with("rdp", {"all"})});
  const Instant now = utc(2026, 11, 23, 10);
  const auto until = recurring_open_until(p, p.links[0], now);
  ASSERT_TRUE(until.has_value());
  EXPECT_GE(*until, now + date::days{366});
  EXPECT_EQ(*until, std::chrono::floor<date::days>(*until));
}

// ---------------------------------------------------------------------------------------------
// next_edge

TEST(NextEdge, OrdersWindowGrantAndExpiryEdges) {
  // Mon 2026-11-23, UTC. "unused" is referenced by no link and contributes nothing.
  Policy p = policy_in(
      "Etc/UTC",
      {recurring("maint", {kMon}, 9, 0, 10, 0), recurring("unused", {kMon}, 8, 45, 8, 50)},
      {link_with("rdp", {"maint"})});
  p.grants.push_back(grant_for("rdp", utc(2026, 11, 23, 9, 30), utc(2026, 11, 23, 11)));
  p.grants.push_back(grant_for("rdp", utc(2026, 11, 20), utc(2026, 11, 23, 8, 30)));
  p.expires = utc(2026, 11, 24, 8);

  const std::vector<Instant> expected = {
      utc(2026, 11, 23, 8, 30),  // old grant ends
      utc(2026, 11, 23, 9),      // maint starts
      utc(2026, 11, 23, 9, 30),  // grant starts
      utc(2026, 11, 23, 10),     // maint ends
      utc(2026, 11, 23, 11),     // grant ends
      utc(2026, 11, 24, 8),      // policy expires
  };
  std::vector<Instant> got;
  Instant now = utc(2026, 11, 23, 8);
  while (const auto edge = next_edge(p, now)) {
    got.push_back(*edge);
    now = *edge;
    if (got.size() > expected.size()) break;
  }
  EXPECT_EQ(got, expected);
}

TEST(NextEdge, StrictlyAfterNow) {
  const Policy p = policy_in("Etc/UTC", {recurring("maint", {kMon}, 9, 0, 10, 0)},
                             {link_with("rdp", {"maint"})});
  EXPECT_EQ(next_edge(p, utc(2026, 11, 23, 9)), utc(2026, 11, 23, 10));
  EXPECT_EQ(next_edge(p, utc(2026, 11, 23, 8, 59, 59, 999)), utc(2026, 11, 23, 9));
}

TEST(NextEdge, WeeklyWindowIsFoundAWeekAhead) {
  // After Mon 10:00 the next edge is next Monday's start, within the 8-day look-ahead.
  const Policy p = policy_in("Europe/Berlin", {recurring("maint", {kMon}, 9, 0, 10, 0)},
                             {link_with("rdp", {"maint"})});
  // Mon 2026-11-23 10:00 CET = 09:00Z; next Monday 09:00 CET = 2026-11-30T08:00Z.
  EXPECT_EQ(next_edge(p, utc(2026, 11, 23, 9)), utc(2026, 11, 30, 8));
}

TEST(NextEdge, DstTransitionShiftsTheEdge) {
  // Daily 09:00 Chicago: Sat 2026-03-07 09:00 CST = 15:00Z, Sun 2026-03-08 09:00 CDT = 14:00Z.
  const Policy p = policy_in("America/Chicago", {recurring("d", {kSat, kSun}, 9, 0, 9, 30)},
                             {link_with("rdp", {"d"})});
  EXPECT_EQ(next_edge(p, utc(2026, 3, 7, 15, 30)), utc(2026, 3, 8, 14));
}

TEST(NextEdge, NothingOrExpired) {
  Policy p = policy_in("Etc/UTC", {}, {link_with("rmm", {"always"})});
  EXPECT_EQ(next_edge(p, utc(2026, 11, 23)), std::nullopt);
  p.expires = utc(2026, 12, 1);
  EXPECT_EQ(next_edge(p, utc(2026, 11, 23)), utc(2026, 12, 1));
  p.grants.push_back(grant_for("rmm", utc(2026, 12, 2), utc(2026, 12, 3)));
  EXPECT_EQ(next_edge(p, utc(2026, 12, 1)), std::nullopt);  // at expiry nothing changes again
}

// ---------------------------------------------------------------------------------------------
// next_opening (UTC; Mon 2026-11-23 and Mon 2026-11-30)

class NextOpening : public ::testing::Test {
 protected:
  Policy policy_ = policy_in("Etc/UTC", {recurring("maint", {kMon}, 9, 0, 10, 0)},
                             {link_with("rdp", {"maint"}), link_with("ssh", {})});
  const Link& rdp() const { return policy_.links[0]; }
};

TEST_F(NextOpening, WhenClosedTheComingOccurrence) {
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 8)),
            (Interval{utc(2026, 11, 23, 9), utc(2026, 11, 23, 10)}));
}

TEST_F(NextOpening, WhenOpenTheOneAfterTheCurrent) {
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 9, 30)),
            (Interval{utc(2026, 11, 30, 9), utc(2026, 11, 30, 10)}));
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 9)),
            (Interval{utc(2026, 11, 30, 9), utc(2026, 11, 30, 10)}));
}

TEST_F(NextOpening, GrantsCountAndMerge) {
  // A grant touching the current occurrence extends it; a grant on Tuesday is the next opening.
  policy_.grants.push_back(grant_for("rdp", utc(2026, 11, 23, 10), utc(2026, 11, 23, 10, 30)));
  policy_.grants.push_back(grant_for("rdp", utc(2026, 11, 24, 12), utc(2026, 11, 24, 13)));
  policy_.grants.push_back(grant_for("ssh", utc(2026, 11, 23, 11), utc(2026, 11, 23, 12)));
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 9, 30)),
            (Interval{utc(2026, 11, 24, 12), utc(2026, 11, 24, 13)}));
  // At 10:15 the link is open by the grant alone; same answer.
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 10, 15)),
            (Interval{utc(2026, 11, 24, 12), utc(2026, 11, 24, 13)}));
  // A grant from 08:00 touching the next Monday's occurrence gives one merged opening.
  policy_.grants.push_back(grant_for("rdp", utc(2026, 11, 30, 8), utc(2026, 11, 30, 9)));
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 25)),
            (Interval{utc(2026, 11, 30, 8), utc(2026, 11, 30, 10)}));
  // ssh has only its own grant.
  EXPECT_EQ(next_opening(policy_, policy_.links[1], utc(2026, 11, 23)),
            (Interval{utc(2026, 11, 23, 11), utc(2026, 11, 23, 12)}));
  EXPECT_EQ(next_opening(policy_, policy_.links[1], utc(2026, 11, 23, 11)), std::nullopt);
}

TEST_F(NextOpening, ExpiryCapsOrPrevents) {
  policy_.expires = utc(2026, 11, 23, 9, 15);
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 8)),
            (Interval{utc(2026, 11, 23, 9), utc(2026, 11, 23, 9, 15)}));
  policy_.expires = utc(2026, 11, 23, 9);
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 8)), std::nullopt);
  EXPECT_EQ(next_opening(policy_, rdp(), utc(2026, 11, 23, 9)), std::nullopt);
}

TEST_F(NextOpening, NeverWithinTheHorizon) {
  EXPECT_EQ(next_opening(policy_, policy_.links[1], utc(2026, 11, 23)), std::nullopt);
  // A grant more than 366 days away is beyond the horizon.
  policy_.grants.push_back(grant_for("ssh", utc(2027, 12, 1), utc(2027, 12, 2)));
  EXPECT_EQ(next_opening(policy_, policy_.links[1], utc(2026, 11, 23)), std::nullopt);
  EXPECT_EQ(next_opening(policy_, policy_.links[1], utc(2027, 1, 1)),
            (Interval{utc(2027, 12, 1), utc(2027, 12, 2)}));
  // "always" is open already and never opens again.
  const Link always = link_with("rmm", {"always"});
  EXPECT_EQ(next_opening(policy_, always, utc(2026, 11, 23)), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// format_instant / parse_instant

TEST(FormatInstant, SecondsAndOptionalMilliseconds) {
  EXPECT_EQ(format_instant(utc(2026, 11, 26, 14)), "2026-11-26T14:00:00Z");
  EXPECT_EQ(format_instant(utc(2026, 11, 26, 14, 5, 9, 123)), "2026-11-26T14:05:09.123Z");
  EXPECT_EQ(format_instant(utc(2028, 2, 29, 23, 59, 59, 5)), "2028-02-29T23:59:59.005Z");
  EXPECT_EQ(format_instant(Instant{}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_instant(Instant{milliseconds{-1}}), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_instant(kForever), "forever");
}

TEST(ParseInstant, AcceptsRfc3339) {
  EXPECT_EQ(parse_instant("2026-11-26T14:00:00Z"), utc(2026, 11, 26, 14));
  EXPECT_EQ(parse_instant("2026-11-26t14:00:00z"), utc(2026, 11, 26, 14));
  EXPECT_EQ(parse_instant("2026-11-26T14:00:00.5Z"), utc(2026, 11, 26, 14, 0, 0, 500));
  EXPECT_EQ(parse_instant("2026-11-26T14:00:00.123Z"), utc(2026, 11, 26, 14, 0, 0, 123));
  EXPECT_EQ(parse_instant("2026-11-26T14:00:00.123999999Z"), utc(2026, 11, 26, 14, 0, 0, 123));
  // 15:00 at +01:00 is 14:00Z; 08:30 at -05:30 is 14:00Z; 00:30 at +01:00 is the previous day.
  EXPECT_EQ(parse_instant("2026-11-26T15:00:00+01:00"), utc(2026, 11, 26, 14));
  EXPECT_EQ(parse_instant("2026-11-26T08:30:00-05:30"), utc(2026, 11, 26, 14));
  EXPECT_EQ(parse_instant("2026-11-27T00:30:00+01:00"), utc(2026, 11, 26, 23, 30));
  EXPECT_EQ(parse_instant("2026-11-26T14:00:00-00:00"), utc(2026, 11, 26, 14));
  EXPECT_EQ(parse_instant("2028-02-29T00:00:00Z"), utc(2028, 2, 29));
}

TEST(ParseInstant, RoundTrips) {
  for (const Instant t :
       {utc(2026, 11, 26, 14), utc(2026, 11, 26, 14, 5, 9, 123), utc(2032, 2, 29, 23, 59, 59, 999),
        utc(1999, 12, 31, 0, 0, 0, 1), Instant{}}) {
    EXPECT_EQ(parse_instant(format_instant(t)), t) << format_instant(t);
  }
  for (const char* text :
       {"2026-11-26T14:00:00Z", "2026-11-26T14:00:00.120Z", "2000-02-29T12:34:56.789Z"}) {
    const auto t = parse_instant(text);
    ASSERT_TRUE(t.has_value()) << text;
    EXPECT_EQ(format_instant(*t), text);
  }
}

TEST(ParseInstant, Rejects) {
  for (const char* text : {
           "",
           "now",
           "2026-11-26",
           "2026-11-26T14:00Z",          // seconds required
           "2026-11-26T14:00:00",        // offset required
           "2026-11-26 14:00:00Z",       // 'T' required
           "2026-11-26T14:00:00.Z",      // empty fraction
           "2026-11-26T14:00:00+0100",   // offset needs a colon
           "2026-11-26T14:00:00+01",     //
           "2026-11-26T14:00:00+24:00",  // offset hour out of range
           "2026-11-26T14:00:00+01:60",  //
           "2026-11-26T14:00:00Z ",      // trailing garbage
           " 2026-11-26T14:00:00Z",      //
           "2026-11-26T14:00:00ZZ",      //
           "2026-02-29T00:00:00Z",       // 2026 is not a leap year
           "2100-02-29T00:00:00Z",       // nor is 2100
           "2026-13-01T00:00:00Z",       //
           "2026-00-01T00:00:00Z",       //
           "2026-11-31T00:00:00Z",       //
           "2026-11-00T00:00:00Z",       //
           "2026-11-26T24:00:00Z",       //
           "2026-11-26T14:60:00Z",       //
           "2026-12-31T23:59:60Z",       // leap seconds are not representable
           "26-11-26T14:00:00Z",         //
           "2026-1-26T14:00:00Z",        //
           "2026-11-26T14:00:00.12aZ",   //
           "+2026-11-26T14:00:00Z",      //
           "forever",                    //
       }) {
    EXPECT_EQ(parse_instant(text), std::nullopt) << '"' << text << '"';
  }
}

}  // namespace
}  // namespace drawbridge
