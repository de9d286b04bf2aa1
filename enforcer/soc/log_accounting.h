// Reconciling what the kernel logged with what the enforcer read (docs/events.md, "Loss").
//
// NFLOG sequence numbers show gaps only between packets that arrive: the kernel logs nothing
// while no socket is bound, restarts the sequence on a new bind, and a loss at the end of a
// burst shows only when the next packet comes. So every logging rule also has an nftables
// counter, and the enforcer reads those counters periodically and compares them with what it
// received plus what the sequence showed as lost:
//
//   lost ≥ seq_lost                                  (gaps the sequence numbers show)
//   lost ≥ logged_by_kernel(one reading ago) − received now
//
// The second bound lags one reading behind, so that packets still in flight (queued in the
// kernel for up to the NFLOG flush timeout, or in our socket) are not counted as lost. Both
// are lower bounds of the true loss; the larger is reported, so nothing is counted twice.
//
// The kernel's counters are per rule. A rule's counter restarts when the rule is replaced (a new
// policy), so readings are compared rule by rule (by handle): a handle seen before contributes
// its increase, a new handle all of its count. Reading just before every replacement keeps the
// window in which a replaced rule's packets are missed down to one commit.
//
// Pure: the daemon reads the counters (NetlinkSocket::read_rules) and passes readings in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"

namespace drawbridge {

// One logging rule's counter as the kernel reported it.
struct LogRuleCount {
  std::uint64_t handle = 0;
  std::uint64_t packets = 0;
  // Counts denied packets that were dropped without being logged because their source exceeded
  // the per-source log rate (RulePlan::rate_limited); otherwise the rule logs.
  bool rate_limited = false;
  std::string prefix;  // the NFLOG prefix of a logging rule; of the deny point otherwise
  bool operator==(const LogRuleCount&) const = default;
};

struct LogCounterReading {
  Instant at;
  std::vector<LogRuleCount> rules;
};

// What the previous enforcer run last read, kept in the state directory across restarts.
struct SavedLogCounters {
  LogCounterReading reading;
  bool clean_stop = false;  // written at a clean stop (otherwise by a periodic save)
};

// Packets the kernel logged while no enforcer was reading (between two runs).
struct LoggedWhileDown {
  std::uint64_t packets = 0;
  // The previous run did not stop cleanly: up to `packets` (some may have been read by it).
  bool upper_bound = false;
  // Rules counted then are gone (the table was replaced meanwhile): at least `packets`.
  bool lower_bound = false;
};

class LogAccounting {
 public:
  // Adds a reading: the increase of every logging rule since the last reading.
  void observe(const LogCounterReading& reading);

  // Logged by the kernel since the first reading (packets logged by rules that were replaced
  // between two readings are missing: at most one commit's worth).
  [[nodiscard]] std::uint64_t kernel_logged() const { return logged_; }
  // The same, as of the reading before the last: what must have arrived by now.
  [[nodiscard]] std::uint64_t kernel_logged_lagged() const { return logged_lagged_; }
  // Dropped without logging because of the per-source log rate, since the first reading.
  [[nodiscard]] std::uint64_t rate_limited() const { return rate_limited_; }
  // Per deny point (prefix): rate-limited packets since the first reading.
  [[nodiscard]] const std::vector<std::pair<std::string, std::uint64_t>>& rate_limited_by_prefix()
      const {
    return by_prefix_;
  }

  // The loss bound described above, given what the reader counted since the first reading.
  [[nodiscard]] std::uint64_t lost(std::uint64_t received, std::uint64_t seq_lost) const;
  // The same without the lag, for when nothing can still be on its way: the socket was read
  // dry after the kernel's flush timeout, just before the last reading (at stop).
  [[nodiscard]] std::uint64_t lost_now(std::uint64_t received, std::uint64_t seq_lost) const;

  [[nodiscard]] const std::optional<LogCounterReading>& last() const { return last_; }

  // Compares the first reading of this run with what the previous run saved.
  static LoggedWhileDown logged_while_down(const SavedLogCounters& saved,
                                           const LogCounterReading& now);

 private:
  std::optional<LogCounterReading> last_;
  std::uint64_t logged_ = 0;
  std::uint64_t logged_lagged_ = 0;
  std::uint64_t rate_limited_ = 0;
  std::vector<std::pair<std::string, std::uint64_t>> by_prefix_;
};

// <state_dir>/log-counters.json
std::string encode_saved_log_counters(const SavedLogCounters& saved);
Result<SavedLogCounters> decode_saved_log_counters(const std::string& text);

}  // namespace drawbridge
