#include "common/interval_union.h"

#include <algorithm>

namespace drawbridge {

std::vector<AddressRange> merge_ranges(std::vector<AddressRange> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<AddressRange> out;
  for (const auto& r : ranges) {
    if (!out.empty() && out.back().family() == r.family()) {
      auto& back = out.back();
      const auto after = back.last.next();
      if (r.first <= back.last || (after && *after == r.first)) {
        back.last = std::max(back.last, r.last);
        continue;
      }
    }
    out.push_back(r);
  }
  return out;
}

std::vector<PortRange> merge_ports(std::vector<PortRange> ports) {
  std::sort(ports.begin(), ports.end());
  std::vector<PortRange> out;
  for (const auto& p : ports) {
    if (!out.empty() && out.back().protocol == p.protocol &&
        static_cast<unsigned>(p.first) <= static_cast<unsigned>(out.back().last) + 1) {
      out.back().last = std::max(out.back().last, p.last);
      continue;
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace drawbridge
