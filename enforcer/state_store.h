// What the enforcer applied last, persisted so `status` and a restarted daemon can tell.
// Written crash-safely: temp file, fsync, rename, fsync of the directory.
#pragma once

#include <optional>
#include <string>

#include "common/policy_model.h"
#include "common/result.h"

namespace drawbridge {

struct AppliedState {
  std::string table;
  std::string site;
  std::uint64_t serial = 0;
  std::string policy_path;
  Instant applied_at;
  std::optional<Instant> expires;
};

Result<void> save_applied(const std::string& state_dir, const AppliedState& state);
// nullopt when nothing was applied yet.
Result<std::optional<AppliedState>> load_applied(const std::string& state_dir,
                                                 const std::string& table);

// The customer's break-glass, kept on the gateway so that it survives restarts.
struct Lockdown {
  Instant since;
  std::optional<Instant> until;  // nullopt: until released
};
Result<void> save_lockdown(const std::string& state_dir, const Lockdown& lockdown);
Result<void> release_lockdown(const std::string& state_dir);
// Until when provider access is locked down at `now`: nullopt when it is not (no record, or a
// timed lockdown that has ended); Instant::max() until released. A damaged record counts as
// locked until released: failing closed is the point of a break-glass.
std::optional<Instant> lockdown_until(const std::string& state_dir, Instant now);

// Writes `content` to `path` atomically (temp + fsync + rename + directory fsync).
Result<void> write_file_atomically(const std::string& path, const std::string& content);

}  // namespace drawbridge
