#include "controller/verdict.h"

#include <toml++/toml.h>

#include <algorithm>

#include "common/ceiling.h"
#include "common/policy_parser.h"

namespace drawbridge {

namespace {

std::chrono::system_clock::time_point to_time_point(const toml::date_time& dt) {
  using namespace std::chrono;
  const sys_days date{year{dt.date.year} / month{dt.date.month} / day{dt.date.day}};
  const auto local = date + hours{dt.time.hour} + minutes{dt.time.minute} +
                     seconds{dt.time.second} + nanoseconds{dt.time.nanosecond};
  return time_point_cast<system_clock::duration>(local - minutes{dt.offset->minutes});
}

std::string text_of(const toml::node& node) {
  std::ostringstream out;
  node.visit([&](const auto& v) { out << v; });
  return out.str();
}

// Reads site, serial and expires from policy bytes whose signatures have already verified.
// Only these three: the full policy validation is the enforcer's (the controller must not depend
// on it), and it rejects duplicate and unknown keys when it applies the policy.
std::string read_policy_fields(const std::string& policy, Verdict& v,
                               std::chrono::system_clock::time_point& expires_at) {
  toml::table doc;
  try {
    doc = toml::parse(std::string_view(policy), std::string_view("policy"));
  } catch (const toml::parse_error& e) {
    return "the signed policy is not valid TOML (line " + std::to_string(e.source().begin.line) +
           ", column " + std::to_string(e.source().begin.column) + ": " +
           std::string(e.description()) + ")";
  }
  if (const auto* site = doc["site"].as_string()) {
    v.site = site->get();
  } else {
    return "the policy has no string 'site'";
  }
  if (const auto* serial = doc["serial"].as_integer(); serial != nullptr && serial->get() >= 1) {
    v.serial = serial->get();
  } else {
    return "the policy has no 'serial' of at least 1";
  }
  if (const auto* node = doc.get("expires")) {
    const auto* dt = node->as_date_time();
    if (dt == nullptr || !dt->get().offset) {
      return "the policy's 'expires' is not a date-time with a UTC offset";
    }
    v.expires = text_of(*node);
    expires_at = to_time_point(dt->get());
  }
  return {};
}

}  // namespace

Verdict evaluate(const Bundle& bundle, const TrustConfig& trust, const Policy* ceiling,
                 std::chrono::system_clock::time_point now) {
  Verdict v;
  const auto valid = bundle.valid_signers();
  for (const auto& s : bundle.signatures) {
    const bool ok = std::find(valid.begin(), valid.end(), s.signer) != valid.end();
    v.signers.push_back({s.signer, trust.role_of(s.signer), ok});
  }
  const auto refuse = [&](std::string reason) {
    v.accept = false;
    v.reason = std::move(reason);
    return v;
  };

  auto signers = check_signatures(bundle, trust);
  if (!signers.ok()) return refuse(signers.error().message);

  // Only now, with every signature verified over these exact bytes, is the policy read.
  std::chrono::system_clock::time_point expires_at{};
  if (auto problem = read_policy_fields(bundle.policy, v, expires_at); !problem.empty()) {
    return refuse(problem);
  }
  if (trust.site && *v.site != *trust.site) {
    return refuse("the policy is for site \"" + *v.site + "\", the trust file is for site \"" +
                  *trust.site + "\"");
  }
  if (v.expires && expires_at <= now) return refuse("the policy expired at " + *v.expires);
  // The same validation and ceiling check the enforcer applies.
  auto parsed = parse_policy_text(bundle.policy, "bundle");
  if (!parsed.ok()) return refuse("the policy is invalid:\n" + parsed.diagnostics.str());
  if (signers->customers.empty() && trust.ceiling) {
    if (ceiling == nullptr) {
      return refuse("signed by provider keys only, and the ceiling " + *trust.ceiling +
                    " could not be loaded");
    }
    const auto violations = exceeds_ceiling(
        *parsed.policy, *ceiling, std::chrono::time_point_cast<std::chrono::milliseconds>(now));
    if (!violations.empty()) {
      std::string why =
          "signed by provider keys only and it exceeds the customer's ceiling (a customer "
          "signature would allow it):";
      for (const auto& violation : violations) why += "\n  " + violation.what;
      return refuse(why);
    }
  }
  v.accept = true;
  return v;
}

}  // namespace drawbridge
