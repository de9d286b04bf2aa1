// `run`: the enforcer daemon. It applies the local policy (or the bundle accepted last, or the
// controller's newest), then sleeps until the next window
// edge (timerfd on the real-time clock, woken early by clock changes), opens or closes windows
// incrementally, reloads on SIGHUP and stops on SIGTERM leaving the table in place.
// Closing never depends on it: open elements carry kernel timeouts.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "enforcer/enforcer_config.h"
#include "enforcer/ruleset_plan.h"

namespace drawbridge {

struct DaemonOptions {
  std::string policy_path;  // a policy file or a signed bundle
  CompileOptions compile;
  std::string state_dir;
  std::string trust_path;  // needed for bundles
  // How long before the policy expires the daemon starts warning.
  std::chrono::seconds expiry_warning{24 * 3600};
  // When set, the daemon also dials the controller: it says hello with what it holds, takes
  // newer bundles from it (checked by signature exactly like a file), and acknowledges each.
  std::optional<ControllerLinkConfig> controller;
  // What the SOC is told and where it goes (denied packets, provider sessions, audit facts).
  EventsConfig events;
  // SIGHUP re-reads the settings through this (the config file with the command line's
  // overrides on top). Unset: SIGHUP re-reads only the policy.
  std::function<Result<DaemonOptions>()> reread;
};

// The settings that differ between the running daemon and a re-read config but apply only at
// the next restart (the table, the NFLOG group, the SOC outputs, the control channel …), by their
// config key. The others (policy, trust, expiry_warning_hours) a SIGHUP applies at once.
std::vector<std::string> settings_needing_restart(const DaemonOptions& running,
                                                  const DaemonOptions& reread);

// Returns the process exit code.
int run_daemon(const DaemonOptions& options);

// The current time at the resolution of nftables timeouts.
Instant now_ms();

}  // namespace drawbridge
