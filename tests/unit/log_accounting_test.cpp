// LogAccounting: the kernel's counters on logging rules against what the NFLOG reader counted.
#include "enforcer/soc/log_accounting.h"

#include <gtest/gtest.h>

#include <chrono>

namespace drawbridge {
namespace {

using std::chrono::seconds;

Instant at(int s) {
  return Instant{} + seconds{1'800'000'000 + s};
}

LogCounterReading reading(int s, std::vector<LogRuleCount> rules) {
  return LogCounterReading{at(s), std::move(rules)};
}

LogRuleCount logged(std::uint64_t handle, std::uint64_t packets) {
  return {handle, packets, false, "drawbridge:unapproved-source:guard"};
}
LogRuleCount limited(std::uint64_t handle, std::uint64_t packets,
                     const char* prefix = "drawbridge:unapproved-source:guard") {
  return {handle, packets, true, prefix};
}

TEST(LogAccounting, FirstReadingIsTheBaselineAndIncreasesAddUp) {
  LogAccounting acc;
  acc.observe(reading(0, {logged(4, 1000), logged(9, 5)}));
  EXPECT_EQ(acc.kernel_logged(), 0u) << "what was counted before this run read anything";
  acc.observe(reading(10, {logged(4, 1100), logged(9, 7)}));
  EXPECT_EQ(acc.kernel_logged(), 102u);
  EXPECT_EQ(acc.kernel_logged_lagged(), 0u);
  acc.observe(reading(20, {logged(4, 1100), logged(9, 8)}));
  EXPECT_EQ(acc.kernel_logged(), 103u);
  EXPECT_EQ(acc.kernel_logged_lagged(), 102u);
}

TEST(LogAccounting, ReplacedRulesCountWholeAndVanishedOnesStopCounting) {
  LogAccounting acc;
  acc.observe(reading(0, {logged(4, 10)}));
  acc.observe(reading(10, {logged(4, 30)}));  // +20
  // A new policy: rule 4 replaced by rules 12 and 13, which counted 5 and 6 since.
  acc.observe(reading(20, {logged(12, 5), logged(13, 6)}));
  EXPECT_EQ(acc.kernel_logged(), 31u);
  // A counter that went down belongs to a different rule: it counts whole.
  acc.observe(reading(30, {logged(12, 2), logged(13, 6)}));
  EXPECT_EQ(acc.kernel_logged(), 33u);
}

TEST(LogAccounting, LossIsTheLargerLowerBoundAndLagsOneReading) {
  LogAccounting acc;
  acc.observe(reading(0, {logged(1, 0)}));
  acc.observe(reading(10, {logged(1, 1000)}));
  // 1000 logged by t=10, but 400 of them may still be on their way at t=10.
  EXPECT_EQ(acc.lost(600, 0), 0u);
  acc.observe(reading(20, {logged(1, 1000)}));
  // One reading later everything logged by t=10 must have arrived or been seen as a gap.
  EXPECT_EQ(acc.lost(600, 0), 400u);
  EXPECT_EQ(acc.lost(600, 400), 400u) << "a gap the sequence showed is not counted twice";
  EXPECT_EQ(acc.lost(600, 450), 450u);
  EXPECT_EQ(acc.lost(1000, 0), 0u);
  EXPECT_EQ(acc.lost(1200, 0), 0u) << "more received than logged (another rule, a race): no loss";
}

TEST(LogAccounting, AtStopNothingIsInFlightAndTheLagIsDropped) {
  LogAccounting acc;
  acc.observe(reading(0, {logged(1, 0)}));
  acc.observe(reading(10, {logged(1, 500)}));
  acc.observe(reading(11, {logged(1, 900)}));  // the last reading, after the socket ran dry
  EXPECT_EQ(acc.lost(850, 0), 0u) << "lagged: 500 logged by the reading before";
  EXPECT_EQ(acc.lost_now(850, 0), 50u) << "the queue was read dry: the rest never comes";
  EXPECT_EQ(acc.lost_now(850, 60), 60u);
}

TEST(LogAccounting, RateLimitedCountsArePerDenyPointAndNotLogged) {
  LogAccounting acc;
  acc.observe(reading(0, {logged(1, 0), limited(2, 0), limited(3, 0, "drawbridge:x:y")}));
  acc.observe(reading(10, {logged(1, 100), limited(2, 9000), limited(3, 1, "drawbridge:x:y")}));
  EXPECT_EQ(acc.kernel_logged(), 100u);
  EXPECT_EQ(acc.rate_limited(), 9001u);
  ASSERT_EQ(acc.rate_limited_by_prefix().size(), 2u);
  EXPECT_EQ(acc.rate_limited_by_prefix()[0].first, "drawbridge:unapproved-source:guard");
  EXPECT_EQ(acc.rate_limited_by_prefix()[0].second, 9000u);
}

TEST(LogAccounting, LoggedWhileDownComparesWithWhatThePreviousRunSaved) {
  SavedLogCounters saved{reading(0, {logged(1, 50), logged(2, 7), limited(3, 9)}), true};
  auto down = LogAccounting::logged_while_down(
      saved, reading(100, {logged(1, 80), logged(2, 7), limited(3, 1000)}));
  EXPECT_EQ(down.packets, 30u);
  EXPECT_FALSE(down.upper_bound);
  EXPECT_FALSE(down.lower_bound);

  // The table was replaced meanwhile (`apply` from the command line): the new rules counted
  // whole, the old rules' last packets unknown.
  down = LogAccounting::logged_while_down(saved, reading(100, {logged(20, 4)}));
  EXPECT_EQ(down.packets, 4u);
  EXPECT_TRUE(down.lower_bound);

  saved.clean_stop = false;
  down = LogAccounting::logged_while_down(saved, reading(100, {logged(1, 60), logged(2, 7)}));
  EXPECT_EQ(down.packets, 10u);
  EXPECT_TRUE(down.upper_bound) << "the previous run may have read some of them before it died";
}

TEST(LogAccounting, SavedCountersRoundTripAndBadFilesAreErrors) {
  SavedLogCounters saved{reading(5, {logged(1, 50), limited(3, 9)}), true};
  auto back = decode_saved_log_counters(encode_saved_log_counters(saved));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->reading.at, saved.reading.at);
  EXPECT_TRUE(back->clean_stop);
  ASSERT_EQ(back->reading.rules.size(), 2u);
  EXPECT_EQ(back->reading.rules[1].handle, 3u);
  EXPECT_EQ(back->reading.rules[1].packets, 9u);
  EXPECT_TRUE(back->reading.rules[1].rate_limited);

  EXPECT_FALSE(decode_saved_log_counters("").ok());
  EXPECT_FALSE(decode_saved_log_counters("{\"read_at\": 1}").ok());
  EXPECT_FALSE(decode_saved_log_counters(R"({"read_at":"2026-11-25T00:00:00Z","clean_stop":true,
      "rules":[{"handle":-1,"packets":0,"rate_limited":false,"prefix":""}]})")
                   .ok());
}

}  // namespace
}  // namespace drawbridge
