// `verify`: what an enforcer holding a trust file would decide about a bundle, as far as the
// controller can tell (it cannot know the enforcer's last accepted serial). Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"
#include "common/signing.h"
#include "common/trust.h"

namespace drawbridge {

// What an enforcer holding `trust` would decide about `bundle` at `now`, as far as the
// controller can tell: it cannot know the enforcer's last accepted serial, and ceiling
// containment is not implemented yet. Pure: no I/O, no logging.
struct SignerReport {
  PublicKey key;
  KeyRole role = KeyRole::unknown;
  bool valid = false;
};

struct Verdict {
  std::vector<SignerReport> signers;  // in bundle order
  bool accept = false;
  std::string reason;  // why not, when !accept
  // Read from the policy only after every signature verified.
  std::optional<std::string> site;
  std::optional<std::int64_t> serial;
  std::optional<std::string> expires;  // as written in the policy
};

// `ceiling` is the trust file's ceiling when it names one and it could be loaded (nullptr
// otherwise: then a provider-only bundle is refused, as the enforcer would).
[[nodiscard]] Verdict evaluate(const Bundle& bundle, const TrustConfig& trust,
                               const Policy* ceiling, std::chrono::system_clock::time_point now);

}  // namespace drawbridge
