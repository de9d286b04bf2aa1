// The enforcer's own configuration file (TOML). Every key is documented in docs/configuration.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace drawbridge {

struct EnforcerConfig {
  std::string policy;                // path of the local policy file
  std::string table = "drawbridge";  // nftables table (family inet) it owns
  std::uint16_t log_group = 100;     // NFLOG group of denied packets
  int priority = -10;                // of its base chains (filter = 0)
  std::string state_dir = "/var/lib/drawbridge";
  // Signed bundles: the trust file (common/trust.h) naming this gateway's site, the provider
  // and customer keys whose signatures count, and the customer's ceiling.
  std::string trust;
  // How long before the applied policy's `expires` the daemon starts warning.
  std::chrono::seconds expiry_warning{24 * 3600};
};

// Reads a config file; unknown keys and wrong types are errors with file:line:col.
Result<EnforcerConfig> load_config(const std::string& path);

// Table names end up in nft commands and file names: keep them plain.
Result<void> check_table_name(const std::string& name);

}  // namespace drawbridge
