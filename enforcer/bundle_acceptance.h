// Whether the enforcer accepts a signed bundle. Pure: the caller supplies the trust, the last
// accepted serial and the time. Order matters: signatures are verified over the exact received
// bytes before the policy is parsed at all.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"
#include "common/signing.h"
#include "common/trust.h"

namespace drawbridge {

struct AcceptedBundle {
  Policy policy;
  std::vector<PublicKey> provider_signers;
  std::vector<PublicKey> customer_signers;
};

enum class Freshness : std::uint8_t {
  // Never accepted here: its serial must be greater than the last, and it must not be expired.
  new_bundle,
  // The exact bytes accepted last (a restart, a boot without the controller, an idempotent
  // re-apply): signatures and site are checked again, its serial must equal the last, and an
  // expired one is still installed, because the compiler turns it into a closed table and
  // refusing it after a reboot would leave no table at all (fail open).
  already_accepted,
};

// Accepts `bundle_bytes` for the trust file's site, or says precisely why not. `last_serial` is
// the serial of the last accepted bundle (nullopt if none).
// `ceiling` is the customer's ceiling policy when the trust file names one (nullptr otherwise,
// or when it could not be loaded: then provider-only bundles are refused, failing closed).
Result<AcceptedBundle> accept_bundle(std::string_view bundle_bytes, std::string_view source_name,
                                     const TrustConfig& trust, const Policy* ceiling,
                                     std::optional<std::uint64_t> last_serial, Instant now,
                                     Freshness freshness = Freshness::new_bundle);

// The last accepted bundle and its serial, kept in the state directory so that the serial
// survives restarts (no rollback) and the gateway is protected from boot without a controller.
class AcceptedStore {
 public:
  explicit AcceptedStore(std::string state_dir) : dir_(std::move(state_dir)) {}
  // nullopt when nothing was accepted yet; an error when the record is damaged (then nothing
  // may be accepted until an operator looks: a lost serial would allow rollback).
  Result<std::optional<std::uint64_t>> last_serial() const;
  Result<std::optional<std::string>> last_bundle() const;
  // Bundle first, then the serial record, each written atomically: a crash between the two
  // leaves the old serial, never a serial without its bundle.
  Result<void> record(const std::string& bundle_bytes, const Policy& policy) const;

 private:
  std::string dir_;
};

// The policy to enforce from `path`, a policy file or a signed bundle, loaded the same way by
// `apply` and the daemon. A bundle needs `trust_path`; the exact bytes accepted last count as
// already accepted. With `fall_back_to_stored`, an unreadable `path` falls back to the bundle
// accepted last (the daemon protects from boot even when nothing else is there yet).
struct EnforcedPolicy {
  Policy policy;
  std::optional<std::string> bundle_to_record;  // a newly accepted bundle, to record once applied
  std::string bundle_hash;  // of the bundle it came from (wire_protocol.h); empty for a policy file
  std::vector<std::string> notes;  // who signed, fallbacks: for the operator
};
Result<EnforcedPolicy> load_enforced_policy(const std::string& path, const std::string& trust_path,
                                            const std::string& state_dir, Instant now,
                                            bool fall_back_to_stored);

// The same for bundle bytes received from elsewhere (the controller), named `source` in messages.
Result<EnforcedPolicy> enforced_policy_from_bundle(const std::string& bytes,
                                                   const std::string& source,
                                                   const std::string& trust_path,
                                                   const std::string& state_dir, Instant now);

// True when `bytes` start like a bundle rather than a policy.
bool looks_like_bundle(std::string_view bytes);

}  // namespace drawbridge
