// For repeated bad input from the network: log the first few occurrences, then every power of
// two, so that a flood is visible in the log without flooding it.
#pragma once

#include <cstdint>

namespace drawbridge {

[[nodiscard]] constexpr bool worth_logging(std::uint64_t occurrence, std::uint64_t first = 5) {
  return occurrence <= first || (occurrence & (occurrence - 1)) == 0;
}

}  // namespace drawbridge
