#include "enforcer/bundle_acceptance.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/ceiling.h"
#include "common/policy_parser.h"
#include "common/window_schedule.h"
#include "common/wire_protocol.h"
#include "enforcer/state_store.h"

namespace drawbridge {

namespace {

Error refuse(std::string_view source, const std::string& why) {
  return make_error("bundle " + std::string(source) + " refused: " + why);
}

}  // namespace

bool looks_like_bundle(std::string_view bytes) {
  return bytes.starts_with("drawbridge-bundle ");
}

Result<AcceptedBundle> accept_bundle(std::string_view bundle_bytes, std::string_view source_name,
                                     const TrustConfig& trust, const Policy* ceiling,
                                     std::optional<std::uint64_t> last_serial, Instant now,
                                     Freshness freshness) {
  if (!trust.site) return refuse(source_name, "the trust file names no site for this gateway");
  auto bundle = Bundle::decode(bundle_bytes);
  if (!bundle.ok()) return refuse(source_name, "it does not decode: " + bundle.error().message);
  auto signers = check_signatures(*bundle, trust);
  if (!signers.ok()) return refuse(source_name, signers.error().message);

  // Only now, over bytes that verified, is the policy parsed.
  auto parsed = parse_policy_text(bundle->policy, source_name);
  if (!parsed.ok())
    return refuse(source_name, "its policy is invalid:\n" + parsed.diagnostics.str());
  Policy& policy = *parsed.policy;
  if (policy.site != *trust.site) {
    return refuse(source_name,
                  "it is for site '" + policy.site + "', this enforcer is '" + *trust.site + "'");
  }
  if (freshness == Freshness::already_accepted) {
    if (last_serial && policy.serial != *last_serial) {
      return refuse(source_name, "the stored bundle has serial " + std::to_string(policy.serial) +
                                     " but the recorded serial is " + std::to_string(*last_serial));
    }
  } else {
    if (last_serial && policy.serial <= *last_serial) {
      return refuse(source_name, "serial " + std::to_string(policy.serial) +
                                     " is not newer than the last accepted serial " +
                                     std::to_string(*last_serial) + " (replay or rollback)");
    }
    if (policy.expires && now >= *policy.expires) {
      return refuse(source_name, "it expired " + format_instant(*policy.expires));
    }
  }
  // The customer's veto: without a customer signature, everything must fit inside the ceiling.
  if (signers->customers.empty() && trust.ceiling) {
    if (ceiling == nullptr) {
      return refuse(source_name, "signed by provider keys only, and the ceiling " + *trust.ceiling +
                                     " could not be loaded");
    }
    const auto violations = exceeds_ceiling(policy, *ceiling, now);
    if (!violations.empty()) {
      std::string why =
          "signed by provider keys only and it exceeds the customer's ceiling (a "
          "customer signature would allow it):";
      for (const auto& v : violations) why += "\n  " + v.what;
      return refuse(source_name, why);
    }
  }
  return AcceptedBundle{std::move(policy), signers->providers, signers->customers};
}

namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<EnforcedPolicy> load_enforced_policy(const std::string& path, const std::string& trust_path,
                                            const std::string& state_dir, Instant now,
                                            bool fall_back_to_stored) {
  const AcceptedStore store(state_dir);
  EnforcedPolicy out;
  std::string source = path;
  auto bytes = read_file(path);
  if (!bytes) {
    auto stored = store.last_bundle();
    if (!fall_back_to_stored || !stored.ok() || !stored->has_value()) {
      return make_error("cannot read " + path + ": " + std::strerror(errno));
    }
    out.notes.push_back("cannot read " + path + "; enforcing the bundle accepted last");
    bytes = **stored;
    source = state_dir + "/accepted.bundle";
  }
  if (!looks_like_bundle(*bytes)) {
    auto parsed = parse_policy_text(*bytes, source);
    if (!parsed.ok()) {
      return make_error(parsed.diagnostics.rejection(source));
    }
    out.policy = std::move(*parsed.policy);
    return out;
  }
  auto accepted = enforced_policy_from_bundle(*bytes, source, trust_path, state_dir, now);
  if (accepted.ok())
    accepted->notes.insert(accepted->notes.begin(), out.notes.begin(), out.notes.end());
  return accepted;
}

Result<EnforcedPolicy> enforced_policy_from_bundle(const std::string& bytes,
                                                   const std::string& source,
                                                   const std::string& trust_path,
                                                   const std::string& state_dir, Instant now) {
  const AcceptedStore store(state_dir);
  EnforcedPolicy out;
  if (trust_path.empty()) {
    return make_error(source +
                      " is a signed bundle: the config's `trust` must name the trust "
                      "file (this gateway's site and the keys it trusts)");
  }
  auto trust = load_trust(trust_path);
  if (!trust.ok()) return make_error(trust.error().str());
  auto last = store.last_serial();
  if (!last.ok()) return last.error();
  auto stored = store.last_bundle();
  const bool same = stored.ok() && stored->has_value() && **stored == bytes;
  std::optional<Policy> ceiling;
  if (trust->ceiling) {
    auto parsed = parse_policy_file(*trust->ceiling);
    if (!parsed.ok()) {
      out.notes.push_back("the ceiling " + *trust->ceiling + " is invalid:\n" +
                          parsed.diagnostics.str());
    } else {
      ceiling = std::move(parsed.policy);
    }
  }
  auto accepted = accept_bundle(bytes, source, *trust, ceiling ? &*ceiling : nullptr, *last, now,
                                same ? Freshness::already_accepted : Freshness::new_bundle);
  if (!accepted.ok()) return make_error(accepted.error().message + "\nnothing was changed");
  for (const auto& k : accepted->customer_signers)
    out.notes.push_back("signed by customer key " + k.id());
  for (const auto& k : accepted->provider_signers)
    out.notes.push_back("signed by provider key " + k.id());
  out.policy = std::move(accepted->policy);
  if (!same) out.bundle_to_record = bytes;
  out.bundle_hash = drawbridge::bundle_hash(bytes);
  return out;
}

Result<std::optional<std::uint64_t>> AcceptedStore::last_serial() const {
  const std::string path = dir_ + "/accepted.json";
  std::ifstream in(path);
  if (!in) return std::optional<std::uint64_t>{};
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    const auto j = nlohmann::json::parse(ss.str());
    return std::optional<std::uint64_t>{j.at("serial").get<std::uint64_t>()};
  } catch (const std::exception& e) {
    return make_error(path + " is damaged (" + e.what() +
                      "); refusing bundles until it is repaired, since the last serial protects "
                      "against rollback");
  }
}

Result<std::optional<std::string>> AcceptedStore::last_bundle() const {
  std::ifstream in(dir_ + "/accepted.bundle", std::ios::binary);
  if (!in) return std::optional<std::string>{};
  std::stringstream ss;
  ss << in.rdbuf();
  return std::optional<std::string>{ss.str()};
}

Result<void> AcceptedStore::record(const std::string& bundle_bytes, const Policy& policy) const {
  if (auto r = write_file_atomically(dir_ + "/accepted.bundle", bundle_bytes); !r.ok()) return r;
  const nlohmann::json j{{"site", policy.site}, {"serial", policy.serial}};
  return write_file_atomically(dir_ + "/accepted.json", j.dump(2) + "\n");
}

}  // namespace drawbridge
