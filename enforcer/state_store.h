// What the enforcer applied last, persisted so `status` and a restarted daemon can tell.
// Written crash-safely: temp file, fsync, rename, fsync of the directory.
#pragma once

#include <optional>
#include <string>

#include "common/atomic_file.h"
#include "common/policy_model.h"
#include "common/result.h"
#include "enforcer/ruleset_plan.h"

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

// What a cold start closes before the policy is in force (ruleset_plan.h, ClosedSkeleton),
// kept beside the applied state of `table`; rewritten only when it changed.
Result<void> save_closed_skeleton(const std::string& state_dir, const std::string& table,
                                  const ClosedSkeleton& skeleton);
// nullopt when none was saved (nothing was applied with this state directory yet).
Result<std::optional<ClosedSkeleton>> load_closed_skeleton(const std::string& state_dir,
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

// The control channel as the daemon last saw it, for `status` (the daemon rewrites it when
// something changes, not on every heartbeat).
struct LinkState {
  std::string endpoint;
  bool connected = false;  // CURVE handshake done and not disconnected since
  std::optional<Instant> last_heard;
  std::uint64_t bundles_received = 0, bundles_applied = 0, bundles_rejected = 0;
  std::uint64_t bad_messages = 0;           // malformed or unknown messages from the controller
  std::uint64_t refused_by_controller = 0;  // our CURVE key was refused
  std::uint64_t handshake_failures = 0;     // e.g. the pinned server key does not match
  std::string last_rejection;
  Instant updated_at{};
};
Result<void> save_link_state(const std::string& state_dir, const LinkState& state);
// nullopt when no daemon with a controller has run with this state directory.
Result<std::optional<LinkState>> load_link_state(const std::string& state_dir);

}  // namespace drawbridge
