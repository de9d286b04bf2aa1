// ruleset_plan → nft syntax. The output loads with `nft -f` and lists (`nft list table`) the same
// as what netlink_batch commits, which the integration tests check.
#pragma once

#include <chrono>
#include <string>

#include "enforcer/ruleset_plan.h"

namespace drawbridge {

std::string render_nft(const RulesetPlan& plan);

// "1h2m3s4ms" as nft writes durations.
std::string nft_duration(std::chrono::milliseconds d);

// The text nft uses for a set element key, e.g. "10.20.0.0/28 . tcp . 3389".
std::string nft_element_key(const SetElement& e, KeyShape shape);

}  // namespace drawbridge
