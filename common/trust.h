// The trust file: which keys may sign policies for a site, and in which role. The enforcer
// accepts bundles by it (its config names the file); the controller's `verify` reads the same
// file to say whether that enforcer would accept a bundle.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/signing.h"

namespace drawbridge {

enum class KeyRole { provider, customer, unknown };

[[nodiscard]] const char* role_name(KeyRole role);

struct TrustConfig {
  std::optional<std::string> site;
  std::vector<PublicKey> provider_keys;
  std::vector<PublicKey> customer_keys;
  // The customer's ceiling policy, resolved against the trust file's directory. Not read yet.
  std::optional<std::string> ceiling;

  [[nodiscard]] KeyRole role_of(const PublicKey& key) const;
};

// Strict: unknown keys, wrong types, malformed keys and a key listed in both roles are errors
// located at file:line:column.
[[nodiscard]] Result<TrustConfig> load_trust(const std::string& path);
[[nodiscard]] Result<TrustConfig> parse_trust(std::string_view text, const std::string& path);

// The first rule of acceptance, the same on both sides: every signature in the bundle verifies
// over its exact policy bytes (one bad signature taints the whole bundle), and at least one is
// from a trusted key. Says which trusted roles signed.
struct TrustedSigners {
  std::vector<PublicKey> providers;
  std::vector<PublicKey> customers;
};
[[nodiscard]] Result<TrustedSigners> check_signatures(const Bundle& bundle,
                                                      const TrustConfig& trust);

}  // namespace drawbridge
