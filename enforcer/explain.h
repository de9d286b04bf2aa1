// `explain`: would a connection pass, and why. It walks the compiled plan the way the kernel
// walks the table (same sets, same rule order), then says which link, window or grant allows
// it, or which rule denies it and when the link opens next.
#pragma once

#include <string>

#include "common/policy_model.h"
#include "enforcer/ruleset_plan.h"

namespace drawbridge {

struct Connection {
  Address from;
  Address to;
  Protocol protocol = Protocol::tcp;
  std::uint16_t port = 0;
};

struct Explanation {
  bool allowed = false;
  std::string text;  // several lines, plain words
};

Explanation explain(const Policy& policy, const RulesetPlan& plan, const Connection& c);

}  // namespace drawbridge
