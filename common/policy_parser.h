// policies/*.toml → validated Policy. Every problem found is reported (not only the first), each
// with file:line:column and the offending value; a policy with any error yields no Policy at all.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"

namespace drawbridge {

struct PolicyDiagnostics {
  std::vector<Error> errors;
  // One line per error, "file:line:col: message".
  [[nodiscard]] std::string str() const;
  // str(), then "<source>: rejected (N errors); nothing was applied".
  [[nodiscard]] std::string rejection(std::string_view source) const;
};

// Either a validated policy or all the errors found.
struct ParsedPolicy {
  std::optional<Policy> policy;
  PolicyDiagnostics diagnostics;
  [[nodiscard]] bool ok() const { return policy.has_value(); }
};

// `source_name` is used in messages (normally the path).
ParsedPolicy parse_policy_text(std::string_view toml_text, std::string_view source_name);
ParsedPolicy parse_policy_file(const std::string& path);

}  // namespace drawbridge
