// Interval arithmetic behind every nftables interval set: the union of address and port ranges,
// and the splitting of overlapping (address × port) boxes into the disjoint elements the kernel
// accepts. Expected outputs are worked out by hand and asserted exactly (order included).
#include "common/interval_union.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/policy_model.h"  // Instant, the value the compiler combines

namespace drawbridge {
namespace {

Address addr(std::string_view text) {
  return Address::parse(text).value();
}
AddressRange range(std::string_view text) {
  return AddressRange::parse(text).value();
}
// An arbitrary [first, last] range, for ranges that are not one prefix.
AddressRange span(std::string_view first, std::string_view last) {
  return AddressRange{addr(first), addr(last)};
}
PortRange port(std::string_view text) {
  return PortRange::parse(text).value();
}

std::vector<std::string> strs(const std::vector<AddressRange>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.str());
  return out;
}
std::vector<std::string> strs(const std::vector<PortRange>& v) {
  std::vector<std::string> out;
  for (const auto& p : v) out.push_back(p.str());
  return out;
}
template <class V>
std::vector<std::string> strs(const std::vector<Box<V>>& v) {
  std::vector<std::string> out;
  for (const auto& b : v) {
    out.push_back(b.address.str() + " " + b.service.str() + " = " + std::to_string(b.value));
  }
  return out;
}

const auto kMax = [](int a, int b) { return std::max(a, b); };
const auto kMin = [](int a, int b) { return std::min(a, b); };

using Strings = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// merge_ranges

TEST(MergeRanges, EmptyStaysEmpty) {
  EXPECT_TRUE(merge_ranges({}).empty());
}

TEST(MergeRanges, AdjacentPrefixesBecomeOne) {
  EXPECT_EQ(strs(merge_ranges({range("10.0.0.128/25"), range("10.0.0.0/25")})),
            Strings{"10.0.0.0/24"});
}

TEST(MergeRanges, AdjacentSingleAddressesBecomeARange) {
  EXPECT_EQ(strs(merge_ranges({range("10.0.0.2"), range("10.0.0.1"), range("10.0.0.3")})),
            Strings{"10.0.0.1-10.0.0.3"});
}

TEST(MergeRanges, PartlyOverlappingRangesBecomeTheirUnion) {
  EXPECT_EQ(strs(merge_ranges({span("10.0.0.15", "10.0.0.30"), span("10.0.0.5", "10.0.0.20")})),
            Strings{"10.0.0.5-10.0.0.30"});
}

TEST(MergeRanges, ContainedRangeDisappears) {
  // The example policy's hosts: one address inside the /28 it is listed next to.
  EXPECT_EQ(strs(merge_ranges({range("10.20.0.10"), range("10.20.0.0/28")})),
            Strings{"10.20.0.0/28"});
  // The contained range sorts after the container and must not shorten it.
  EXPECT_EQ(strs(merge_ranges({range("10.0.0.0/24"), range("10.0.0.0/26")})),
            Strings{"10.0.0.0/24"});
}

TEST(MergeRanges, GapKeepsRangesApartAndSorted) {
  EXPECT_EQ(strs(merge_ranges({range("10.0.0.3"), range("192.0.2.0/24"), range("10.0.0.1")})),
            (Strings{"10.0.0.1", "10.0.0.3", "192.0.2.0/24"}));
}

TEST(MergeRanges, ChainOfOverlapsCollapsesToOne) {
  EXPECT_EQ(strs(merge_ranges({span("10.0.0.0", "10.0.0.10"), span("10.0.0.30", "10.0.0.40"),
                               span("10.0.0.11", "10.0.0.29")})),
            Strings{"10.0.0.0-10.0.0.40"});
}

TEST(MergeRanges, Ipv6AdjacentAndOverlapping) {
  EXPECT_EQ(strs(merge_ranges({range("2001:db8:8000::/33"), range("2001:db8::/33")})),
            Strings{"2001:db8::/32"});
  EXPECT_EQ(strs(merge_ranges({range("2001:db8:aa::11"), range("2001:db8:aa::10")})),
            Strings{"2001:db8:aa::10/127"});
  EXPECT_EQ(strs(merge_ranges({range("2001:db8:aa::12"), range("2001:db8:aa::11")})),
            Strings{"2001:db8:aa::11-2001:db8:aa::12"});
  EXPECT_EQ(strs(merge_ranges({range("2001:db8::/48"), range("2001:db8:0:1::/64")})),
            Strings{"2001:db8::/48"});
}

TEST(MergeRanges, FamiliesNeverMergeAndV4SortsFirst) {
  // 255.255.255.255 and :: are neighbours in Address order but not in any address space.
  EXPECT_EQ(strs(merge_ranges({range("::"), range("255.255.255.255"), range("2001:db8::1")})),
            (Strings{"255.255.255.255", "::", "2001:db8::1"}));
}

TEST(MergeRanges, TopOfTheIpv4Space) {
  EXPECT_EQ(strs(merge_ranges({range("255.255.255.255"), range("255.255.255.254")})),
            Strings{"255.255.255.254/31"});
  EXPECT_EQ(strs(merge_ranges({range("255.255.255.0/24"), range("255.255.255.255")})),
            Strings{"255.255.255.0/24"});
  EXPECT_EQ(strs(merge_ranges({range("255.255.255.128/25"), range("255.255.255.0/25")})),
            Strings{"255.255.255.0/24"});
}

TEST(MergeRanges, TopOfTheIpv6Space) {
  EXPECT_EQ(strs(merge_ranges({range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                               range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")})),
            Strings{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"});
  EXPECT_EQ(
      strs(merge_ranges({range("ffff::/16"), range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")})),
      Strings{"ffff::/16"});
}

// ---------------------------------------------------------------------------------------------
// merge_ports

TEST(MergePorts, EmptyStaysEmpty) {
  EXPECT_TRUE(merge_ports({}).empty());
}

TEST(MergePorts, AdjacentPortsBecomeARange) {
  EXPECT_EQ(strs(merge_ports({port("tcp/23"), port("tcp/22")})), Strings{"tcp/22-23"});
}

TEST(MergePorts, OverlappingAndContainedRanges) {
  EXPECT_EQ(strs(merge_ports({port("tcp/8041-8050"), port("tcp/8040-8041")})),
            Strings{"tcp/8040-8050"});
  EXPECT_EQ(strs(merge_ports({port("tcp/5900-5910"), port("tcp/5901")})), Strings{"tcp/5900-5910"});
  EXPECT_EQ(strs(merge_ports({port("tcp/22"), port("tcp/22")})), Strings{"tcp/22"});
}

TEST(MergePorts, GapKeepsPortsApart) {
  EXPECT_EQ(strs(merge_ports({port("tcp/3389"), port("tcp/22"), port("tcp/24")})),
            (Strings{"tcp/22", "tcp/24", "tcp/3389"}));
}

TEST(MergePorts, ProtocolsNeverMergeAndTcpSortsFirst) {
  EXPECT_EQ(strs(merge_ports({port("udp/3389"), port("tcp/3389"), port("udp/3390")})),
            (Strings{"tcp/3389", "udp/3389-3390"}));
  // tcp/65535 and udp/1 are not neighbours.
  EXPECT_EQ(strs(merge_ports({port("udp/1"), port("tcp/65535")})), (Strings{"tcp/65535", "udp/1"}));
}

TEST(MergePorts, TopOfThePortSpace) {
  EXPECT_EQ(strs(merge_ports({port("tcp/65535"), port("tcp/65534")})), Strings{"tcp/65534-65535"});
  EXPECT_EQ(strs(merge_ports({port("tcp/1-65535"), port("tcp/65535"), port("tcp/1")})),
            Strings{"tcp/1-65535"});
}

// ---------------------------------------------------------------------------------------------
// disjoint_boxes

TEST(DisjointBoxes, EmptyStaysEmpty) {
  EXPECT_TRUE(disjoint_boxes(std::vector<Box<int>>{}, kMax).empty());
}

TEST(DisjointBoxes, SingleBoxIsUnchanged) {
  EXPECT_EQ(
      strs(disjoint_boxes(std::vector<Box<int>>{{range("10.0.0.0/24"), port("tcp/22"), 4}}, kMax)),
      Strings{"10.0.0.0/24 tcp/22 = 4"});
}

TEST(DisjointBoxes, OverlapOnTheAddressAxisGetsTheCombinedValue) {
  // A later-closing grant for the upper half of a window's hosts: the overlap gets the maximum.
  const std::vector<Box<int>> in{{range("10.0.0.0/24"), port("tcp/22"), 5},
                                 {range("10.0.0.128/25"), port("tcp/22"), 9}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.0/25 tcp/22 = 5", "10.0.0.128/25 tcp/22 = 9"}));
  // With min the inner box's value loses and everything is one element again.
  EXPECT_EQ(strs(disjoint_boxes(in, kMin)), Strings{"10.0.0.0/24 tcp/22 = 5"});
}

TEST(DisjointBoxes, BoxInsideABoxSplitsItInThree) {
  const std::vector<Box<int>> in{{range("10.0.0.0/24"), port("tcp/22"), 1},
                                 {range("10.0.0.64/26"), port("tcp/22"), 3}};
  EXPECT_EQ(
      strs(disjoint_boxes(in, kMax)),
      (Strings{"10.0.0.0/26 tcp/22 = 1", "10.0.0.64/26 tcp/22 = 3", "10.0.0.128/25 tcp/22 = 1"}));
}

TEST(DisjointBoxes, CombinedValueIsTheMaximumOfEveryCoveringBox) {
  // Three boxes stacked on one address: the value is the max of all three, not of a pair.
  const std::vector<Box<int>> in{{range("10.0.0.0/30"), port("tcp/22"), 7},
                                 {range("10.0.0.1"), port("tcp/22"), 2},
                                 {range("10.0.0.1/32"), port("tcp/22"), 4}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)), Strings{"10.0.0.0/30 tcp/22 = 7"});
  const std::vector<Box<int>> in2{{range("10.0.0.0/30"), port("tcp/22"), 1},
                                  {range("10.0.0.1"), port("tcp/22"), 2},
                                  {range("10.0.0.1"), port("tcp/22"), 4}};
  EXPECT_EQ(strs(disjoint_boxes(in2, kMax)),
            (Strings{"10.0.0.0 tcp/22 = 1", "10.0.0.1 tcp/22 = 4", "10.0.0.2/31 tcp/22 = 1"}));
}

TEST(DisjointBoxes, OverlapOnThePortAxis) {
  const std::vector<Box<int>> in{{range("10.0.0.1"), port("tcp/100-200"), 1},
                                 {range("10.0.0.1"), port("tcp/150-250"), 2}};
  // [150,200] gets max = 2 and then merges with [201,250], which also has 2.
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.1 tcp/100-149 = 1", "10.0.0.1 tcp/150-250 = 2"}));
}

TEST(DisjointBoxes, OverlapOnBothAxesIsSortedByServiceThenAddress) {
  const std::vector<Box<int>> in{{range("10.0.0.128/25"), port("tcp/50-150"), 2},
                                 {range("10.0.0.0/24"), port("tcp/1-100"), 1}};
  // Port segments [1,49], [50,100], [101,150]; the middle one has two address pieces. The
  // right half (10.0.0.128/25 = 2) spans two segments with different address pieces, so it is
  // not merged across them.
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.0/24 tcp/1-49 = 1", "10.0.0.0/25 tcp/50-100 = 1",
                     "10.0.0.128/25 tcp/50-100 = 2", "10.0.0.128/25 tcp/101-150 = 2"}));
}

TEST(DisjointBoxes, OverlapCombinesExpiryInstantsWithMax) {
  // The value type the compiler uses: when an element stops being open.
  using std::chrono::hours;
  const Instant t0{};
  const std::vector<Box<Instant>> in{{range("10.0.0.0/24"), port("tcp/3389"), t0 + hours{2}},
                                     {range("10.0.0.10"), port("tcp/3389"), t0 + hours{6}}};
  const auto out = disjoint_boxes(in, [](Instant a, Instant b) { return std::max(a, b); });
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].address.str(), "10.0.0.0-10.0.0.9");
  EXPECT_EQ(out[0].value, t0 + hours{2});
  EXPECT_EQ(out[1].address.str(), "10.0.0.10");
  EXPECT_EQ(out[1].value, t0 + hours{6});
  EXPECT_EQ(out[2].address.str(), "10.0.0.11-10.0.0.255");
  EXPECT_EQ(out[2].value, t0 + hours{2});
  for (const auto& b : out) EXPECT_EQ(b.service.str(), "tcp/3389");
}

TEST(DisjointBoxes, TouchingBoxesWithEqualValuesMergeAlongTheAddressAxis) {
  const std::vector<Box<int>> in{{range("10.0.0.128/25"), port("tcp/22"), 1},
                                 {range("10.0.0.0/25"), port("tcp/22"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)), Strings{"10.0.0.0/24 tcp/22 = 1"});
}

TEST(DisjointBoxes, TouchingBoxesWithDifferentValuesStayApart) {
  const std::vector<Box<int>> in{{range("10.0.0.128/25"), port("tcp/22"), 2},
                                 {range("10.0.0.0/25"), port("tcp/22"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.0/25 tcp/22 = 1", "10.0.0.128/25 tcp/22 = 2"}));
  const std::vector<Box<int>> ports{{range("10.0.0.0/24"), port("tcp/23"), 2},
                                    {range("10.0.0.0/24"), port("tcp/22"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(ports, kMax)),
            (Strings{"10.0.0.0/24 tcp/22 = 1", "10.0.0.0/24 tcp/23 = 2"}));
}

TEST(DisjointBoxes, SeparatedBoxesWithEqualValuesStayApart) {
  const std::vector<Box<int>> in{{range("10.0.0.3"), port("tcp/22"), 1},
                                 {range("10.0.0.1"), port("tcp/22"), 1},
                                 {range("10.0.0.1"), port("tcp/24"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.1 tcp/22 = 1", "10.0.0.3 tcp/22 = 1", "10.0.0.1 tcp/24 = 1"}));
}

TEST(DisjointBoxes, TouchingBoxesWithEqualValuesMergeAlongThePortAxis) {
  const std::vector<Box<int>> in{{range("10.0.0.0/24"), port("tcp/23"), 1},
                                 {range("10.0.0.0/24"), port("tcp/22"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)), Strings{"10.0.0.0/24 tcp/22-23 = 1"});
}

TEST(DisjointBoxes, MergesAlongAddressThenPort) {
  // Four quarters of one rectangle become the rectangle.
  const std::vector<Box<int>> in{{range("10.0.0.128/25"), port("tcp/23"), 1},
                                 {range("10.0.0.0/25"), port("tcp/22"), 1},
                                 {range("10.0.0.0/25"), port("tcp/23"), 1},
                                 {range("10.0.0.128/25"), port("tcp/22"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)), Strings{"10.0.0.0/24 tcp/22-23 = 1"});
}

TEST(DisjointBoxes, PortMergeNeedsIdenticalAddressPieces) {
  // Diagonal neighbours: touching ports, different addresses. Not one box.
  const std::vector<Box<int>> in{{range("10.0.0.1"), port("tcp/22"), 1},
                                 {range("10.0.0.2"), port("tcp/23"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.1 tcp/22 = 1", "10.0.0.2 tcp/23 = 1"}));
}

TEST(DisjointBoxes, DifferentProtocolsNeverMerge) {
  const std::vector<Box<int>> in{{range("10.0.0.0/24"), port("udp/3389"), 1},
                                 {range("10.0.0.0/24"), port("tcp/3389"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"10.0.0.0/24 tcp/3389 = 1", "10.0.0.0/24 udp/3389 = 1"}));
  // Whole port spaces of both protocols, same addresses and value: still two boxes.
  const std::vector<Box<int>> all{{range("10.0.0.0/24"), port("udp/1-65535"), 1},
                                  {range("10.0.0.0/24"), port("tcp/1-65535"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(all, kMax)),
            (Strings{"10.0.0.0/24 tcp/1-65535 = 1", "10.0.0.0/24 udp/1-65535 = 1"}));
  // The top tcp port and the bottom udp port are no neighbours either.
  const std::vector<Box<int>> edge{{range("10.0.0.1"), port("udp/1"), 1},
                                   {range("10.0.0.1"), port("tcp/65535"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(edge, kMax)),
            (Strings{"10.0.0.1 tcp/65535 = 1", "10.0.0.1 udp/1 = 1"}));
}

TEST(DisjointBoxes, ExampleOverlappingHostsBecomeOneElementPerProtocol) {
  // clinic-east: hosts "10.20.0.10" and "10.20.0.0/28", ports tcp/3389 and udp/3389, one link.
  std::vector<Box<int>> in;
  for (auto h : {"10.20.0.10", "10.20.0.0/28"}) {
    for (auto p : {"tcp/3389", "udp/3389"}) in.push_back({range(h), port(p), 0});
  }
  EXPECT_EQ(strs(disjoint_boxes(in, kMin)),
            (Strings{"10.20.0.0/28 tcp/3389 = 0", "10.20.0.0/28 udp/3389 = 0"}));
}

TEST(DisjointBoxes, TopOfTheIpv4SpaceAndThePortSpace) {
  const std::vector<Box<int>> in{{range("255.255.255.0/24"), port("tcp/65000-65535"), 1},
                                 {range("255.255.255.255"), port("tcp/65535"), 2}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)), (Strings{"255.255.255.0/24 tcp/65000-65534 = 1",
                                                     "255.255.255.0-255.255.255.254 tcp/65535 = 1",
                                                     "255.255.255.255 tcp/65535 = 2"}));
  const std::vector<Box<int>> same{{range("255.255.255.0/25"), port("udp/65535"), 1},
                                   {range("255.255.255.128/25"), port("udp/65535"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(same, kMax)), Strings{"255.255.255.0/24 udp/65535 = 1"});
}

TEST(DisjointBoxes, Ipv6BoxesSplitAndMerge) {
  const std::vector<Box<int>> in{{range("2001:db8:aa::/64"), port("tcp/443"), 1},
                                 {range("2001:db8:aa::10"), port("tcp/443"), 3},
                                 {range("2001:db8:aa::11"), port("tcp/443"), 3}};
  EXPECT_EQ(strs(disjoint_boxes(in, kMax)),
            (Strings{"2001:db8:aa::/124 tcp/443 = 1", "2001:db8:aa::10/127 tcp/443 = 3",
                     "2001:db8:aa::12-2001:db8:aa:0:ffff:ffff:ffff:ffff tcp/443 = 1"}));
  const std::vector<Box<int>> top{
      {range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120"), port("tcp/22"), 1},
      {range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), port("tcp/22"), 1}};
  EXPECT_EQ(strs(disjoint_boxes(top, kMax)),
            Strings{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120 tcp/22 = 1"});
}

}  // namespace
}  // namespace drawbridge
