// Whether the enforcer accepts a signed bundle. Pure: the caller supplies the trust, the last
// accepted serial and the time. Order matters: signatures are verified over the exact received
// bytes before the policy is parsed at all.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/signing.h"
#include "common/trust.h"
#include "enforcer/policy_model.h"

namespace drawbridge {

struct AcceptedBundle {
  Policy policy;
  std::vector<PublicKey> provider_signers;
  std::vector<PublicKey> customer_signers;
};

// Accepts `bundle_bytes` for the trust file's site, or says precisely why not. `last_serial` is
// the serial of the last accepted bundle (nullopt if none): a new one must be greater.
Result<AcceptedBundle> accept_bundle(std::string_view bundle_bytes, std::string_view source_name,
                                     const TrustConfig& trust,
                                     std::optional<std::uint64_t> last_serial, Instant now);

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

// True when `bytes` start like a bundle rather than a policy.
bool looks_like_bundle(std::string_view bytes);

}  // namespace drawbridge
