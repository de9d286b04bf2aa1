// Addresses, address ranges and port ranges: the values policies are made of and the kernel's
// interval sets are keyed by. Ranges are inclusive at both ends.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace drawbridge {

enum class Family : std::uint8_t { v4 = 4, v6 = 6 };

struct Address {
  Family family = Family::v4;
  std::array<std::uint8_t, 16> bytes{};  // network byte order; IPv4 uses the first 4

  [[nodiscard]] static std::optional<Address> parse(std::string_view text);
  [[nodiscard]] std::size_t size() const { return family == Family::v4 ? 4 : 16; }
  [[nodiscard]] std::string str() const;
  // The next/previous address; nullopt past the end of the address space.
  [[nodiscard]] std::optional<Address> next() const;
  [[nodiscard]] std::optional<Address> prev() const;
  [[nodiscard]] static Address lowest(Family f);
  [[nodiscard]] static Address highest(Family f);

  auto operator<=>(const Address&) const = default;
};

struct AddressRange {
  Address first;
  Address last;

  // "10.0.0.0/8", "10.0.0.1", "2001:db8::/32". Host bits set under the mask are refused:
  // "10.0.0.1/8" is almost always a typo for something narrower.
  [[nodiscard]] static Result<AddressRange> parse(std::string_view text);
  [[nodiscard]] static AddressRange single(const Address& a) { return {a, a}; }

  [[nodiscard]] Family family() const { return first.family; }
  [[nodiscard]] bool contains(const Address& a) const;
  [[nodiscard]] bool contains(const AddressRange& r) const;
  [[nodiscard]] bool overlaps(const AddressRange& r) const;
  // CIDR when the range is exactly one prefix, else "first-last" (both forms nft accepts).
  [[nodiscard]] std::string str() const;
  // Prefix length when the range is exactly one prefix.
  [[nodiscard]] std::optional<int> prefix_length() const;

  auto operator<=>(const AddressRange&) const = default;
};

enum class Protocol : std::uint8_t { tcp = 6, udp = 17 };

[[nodiscard]] std::string_view protocol_name(Protocol p);

struct PortRange {
  Protocol protocol = Protocol::tcp;
  std::uint16_t first = 0;
  std::uint16_t last = 0;

  // "tcp/3389", "udp/3389", "tcp/8040-8041".
  [[nodiscard]] static Result<PortRange> parse(std::string_view text);
  [[nodiscard]] bool contains(Protocol p, std::uint16_t port) const {
    return p == protocol && port >= first && port <= last;
  }
  [[nodiscard]] bool overlaps(const PortRange& o) const {
    return protocol == o.protocol && first <= o.last && o.first <= last;
  }
  [[nodiscard]] std::string str() const;  // "tcp/3389" or "tcp/8040-8041"

  auto operator<=>(const PortRange&) const = default;
};

}  // namespace drawbridge
