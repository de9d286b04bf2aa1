// The enforcer's model of what it committed to the kernel, and the only ways it changes it:
// a whole-table replacement in one transaction, or an incremental update of open windows.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"
#include "enforcer/netlink_batch.h"
#include "enforcer/ruleset_plan.h"

namespace drawbridge {

// The narrow interface the daemon and the CLI use to change the kernel.
class RulesetWriter {
 public:
  virtual ~RulesetWriter() = default;
  // Replaces the table's contents with `plan` in one transaction: old state or new, never a mix.
  // The table itself is never deleted (that would open the gateway for the length of a gap).
  virtual Result<void> replace(const RulesetPlan& plan) = 0;
  // Opens/closes windows: adds and deletes only the open elements that differ from what was
  // committed. Anything else differing, or a failure, falls back to replace().
  virtual Result<void> update_windows(const RulesetPlan& plan) = 0;
};

struct ApplyStats {
  std::size_t messages = 0;
  std::size_t bytes = 0;
  std::size_t added = 0;    // elements added (update_windows)
  std::size_t deleted = 0;  // elements deleted (update_windows)
  bool incremental = false;
  bool reconciled = false;  // reconcile() found the plan in place and did not replace the table
};

class NftablesWriter final : public RulesetWriter {
 public:
  explicit NftablesWriter(NetlinkSocket socket) : sock_(std::move(socket)) {}

  Result<void> replace(const RulesetPlan& plan) override;
  Result<void> update_windows(const RulesetPlan& plan) override;
  // Start-up and `apply`: if the kernel already holds this plan's structure (the gate chain's
  // fingerprint matches and the table is enforcing), reads back only the open-window maps and
  // updates them incrementally — counters and live state stay; otherwise replace().
  Result<void> reconcile(const RulesetPlan& plan);
  // Whether the kernel holds this plan's structure: the table exists and is enforcing (no
  // flags), has exactly the plan's sets and chains, the gate chain carries the plan's
  // fingerprint and every chain has its number of rules. Reads headers and rules, never a set.
  Result<bool> holds(const RulesetPlan& plan);
  // Checks the whole replacement in the kernel without committing it.
  Result<void> validate(const RulesetPlan& plan);
  // Deletes the table (`flush`); false when there was none.
  Result<bool> remove_table(const std::string& table);

  [[nodiscard]] const ApplyStats& last_stats() const { return stats_; }
  NetlinkSocket& socket() { return sock_; }

 private:
  Result<NftBatch> replacement(const RulesetPlan& plan);

  // What was committed, as far as update_windows needs it: the structure's fingerprint and the
  // open-window sets, in plan order (a whole plan copy would double the daemon's memory).
  struct Committed {
    std::string fingerprint;
    Instant compiled_at;
    std::vector<std::vector<SetElement>> open_sets;
    static Committed of(const RulesetPlan& plan);
  };

  NetlinkSocket sock_;
  std::optional<Committed> committed_;
  ApplyStats stats_;
};

}  // namespace drawbridge
