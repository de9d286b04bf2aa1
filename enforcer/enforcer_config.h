// The enforcer's own configuration file (TOML). Every key is documented in docs/configuration.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "enforcer/soc/events_config.h"

namespace drawbridge {

// The `[controller]` table: where this enforcer dials out for signed bundles. CURVE is on unless
// `insecure = true`; the controller's public key is pinned here, so a man in the middle cannot
// pose as it (and could not forge a bundle anyway: only signatures authorise a policy).
struct ControllerLinkConfig {
  std::string endpoint;    // e.g. "tcp://192.0.2.10:7400"
  std::string server_key;  // the controller's CURVE public key, "curve:<Z85>" (pinned)
  std::string client_key;  // path of this enforcer's CURVE secret key file (keygen --curve)
  bool insecure = false;   // plain TCP without CURVE: only for labs, logged loudly
  std::chrono::seconds heartbeat{5};
  bool operator==(const ControllerLinkConfig&) const = default;
};

struct EnforcerConfig {
  // Path of the local policy file or bundle. Optional when a controller is configured: then the
  // enforcer starts from the bundle it accepted last and takes newer ones from the controller.
  std::string policy;
  std::string table = "drawbridge";  // nftables table (family inet) it owns
  std::uint16_t log_group = 100;     // NFLOG group of denied packets
  // Denied packets logged per source address and second; the rest are dropped and counted
  // without logging (CompileOptions::log_rate_per_source). 0: log every one.
  std::uint32_t log_rate_per_source = 0;
  int priority = -10;  // of its base chains (filter = 0)
  std::string state_dir = "/var/lib/drawbridge";
  // Signed bundles: the trust file (common/trust.h) naming this gateway's site, the provider
  // and customer keys whose signatures count, and the customer's ceiling.
  std::string trust;
  // How long before the applied policy's `expires` the daemon starts warning.
  std::chrono::seconds expiry_warning{24 * 3600};
  std::optional<ControllerLinkConfig> controller;
  EventsConfig events;  // what the SOC is told and where it goes ([events])
};

// Reads a config file; unknown keys and wrong types are errors with file:line:col.
Result<EnforcerConfig> load_config(const std::string& path);

// Table names end up in nft commands and file names: keep them plain.
Result<void> check_table_name(const std::string& name);

}  // namespace drawbridge
