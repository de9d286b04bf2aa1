// Turning overlapping address ranges and (address × port) boxes into the disjoint, sorted
// elements nftables interval sets require (the kernel refuses overlapping intervals).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/net_types.h"

namespace drawbridge {

// Union of ranges of one family: sorted, disjoint, adjacent ranges merged.
std::vector<AddressRange> merge_ranges(std::vector<AddressRange> ranges);
std::vector<PortRange> merge_ports(std::vector<PortRange> ports);

template <class V>
struct Box {
  AddressRange address;
  PortRange service;
  V value;
};

namespace detail {
// Ports as one axis: (protocol, port) → protocol << 16 | port, so a box is an interval on it.
inline std::uint32_t port_coord(Protocol p, std::uint16_t port) {
  return (static_cast<std::uint32_t>(p) << 16) | port;
}

// Disjoint pieces of [first,last] intervals on the address axis, combining values where they
// overlap; adjacent pieces with equal values are merged.
template <class V, class Combine>
std::vector<std::pair<AddressRange, V>> sweep(const std::vector<std::pair<AddressRange, V>>& in,
                                              Combine combine) {
  std::vector<Address> cuts;
  for (const auto& [r, v] : in) {
    cuts.push_back(r.first);
    if (auto n = r.last.next()) cuts.push_back(*n);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<std::pair<AddressRange, V>> out;
  for (std::size_t k = 0; k < cuts.size(); ++k) {
    const Address start = cuts[k];
    const Address end = k + 1 < cuts.size() ? *cuts[k + 1].prev() : Address::highest(start.family);
    std::optional<V> acc;
    for (const auto& [r, v] : in) {
      if (r.first <= start && start <= r.last) acc = acc ? combine(*acc, v) : v;
    }
    if (!acc) continue;
    if (!out.empty() && out.back().second == *acc && out.back().first.last.next() == start) {
      out.back().first.last = end;
    } else {
      out.push_back({AddressRange{start, end}, *acc});
    }
  }
  return out;
}
}  // namespace detail

// Splits boxes of one address family into disjoint boxes; overlapping parts get
// combine(a, b). Sorted by service, then address. Boxes that touch and carry equal values are
// merged along the address axis, then along the port axis.
template <class V, class Combine>
std::vector<Box<V>> disjoint_boxes(const std::vector<Box<V>>& boxes, Combine combine) {
  std::vector<std::uint32_t> cuts;
  for (const auto& b : boxes) {
    cuts.push_back(detail::port_coord(b.service.protocol, b.service.first));
    cuts.push_back(detail::port_coord(b.service.protocol, b.service.last) + 1);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

  struct Segment {
    std::uint32_t first, last;
    std::vector<std::pair<AddressRange, V>> pieces;
  };
  std::vector<Segment> segments;
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
    const std::uint32_t first = cuts[k];
    const std::uint32_t last = cuts[k + 1] - 1;
    std::vector<std::pair<AddressRange, V>> covering;
    for (const auto& b : boxes) {
      const auto bf = detail::port_coord(b.service.protocol, b.service.first);
      const auto bl = detail::port_coord(b.service.protocol, b.service.last);
      if (bf <= first && first <= bl) covering.push_back({b.address, b.value});
    }
    if (covering.empty()) continue;
    auto pieces = detail::sweep(covering, combine);
    if (!segments.empty() && segments.back().last + 1 == first &&
        (segments.back().last >> 16) == (first >> 16) && segments.back().pieces == pieces) {
      segments.back().last = last;
    } else {
      segments.push_back({first, last, std::move(pieces)});
    }
  }

  std::vector<Box<V>> out;
  for (const auto& s : segments) {
    const PortRange service{static_cast<Protocol>(s.first >> 16),
                            static_cast<std::uint16_t>(s.first & 0xffff),
                            static_cast<std::uint16_t>(s.last & 0xffff)};
    for (const auto& [r, v] : s.pieces) out.push_back({r, service, v});
  }
  return out;
}

}  // namespace drawbridge
