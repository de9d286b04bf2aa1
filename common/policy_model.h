// The validated policy: what policy_parser produces and everything downstream consumes.
// A Policy value that exists has passed validation (see policy_parser.h); the compiler relies on
// every reference resolving and every range being well-formed.
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/net_types.h"
#include "common/result.h"

namespace drawbridge {

// Milliseconds are the resolution of nftables element timeouts.
using Instant = std::chrono::sys_time<std::chrono::milliseconds>;

struct Provider {
  std::string name;
  std::vector<AddressRange> addresses;
  SourceLocation where;
};

// A recurring window in the policy's time zone. Occurrences start on each listed day at `from`
// (local time) and end at `to`, on the next day when `to` <= `from` (crossing midnight).
struct Window {
  std::string name;
  std::bitset<7> days;  // index = days since Sunday (date::weekday::c_encoding): 0 = sun … 6 = sat
  std::chrono::minutes from{0};  // minutes after local midnight, 0..1439
  std::chrono::minutes to{0};
  bool always = false;  // the built-in window "always"; days/from/to unused
  SourceLocation where;
};

inline constexpr std::string_view kAlwaysWindow = "always";

enum class Direction : std::uint8_t {
  inbound,   // provider → hosts:ports (RDP, SSH, VNC into the client network)
  outbound,  // hosts → provider:ports (RMM agents dialling the provider's relay)
};

struct Link {
  std::string name;
  std::string provider;
  Direction direction = Direction::inbound;
  std::vector<AddressRange> hosts;   // client-side addresses
  std::vector<PortRange> ports;      // on the hosts (inbound) or on the provider (outbound)
  std::vector<std::string> windows;  // names of Policy::windows entries or "always"; may be empty
  SourceLocation where;
};

// A one-off approved opening of a link (a change ticket), in absolute UTC time.
struct Grant {
  std::string link;
  std::string ticket;
  Instant from;
  Instant until;
  std::vector<AddressRange> hosts;  // empty = all of the link's hosts
  SourceLocation where;
};

// Remote-access services nobody may reach through (or on) the gateway unless a link allows it.
struct Guard {
  std::vector<PortRange> ports;
  SourceLocation where;
};

struct Policy {
  int version = 1;
  std::string site;
  std::uint64_t serial = 0;
  std::string timezone;            // IANA name, validated to exist
  std::optional<Instant> expires;  // after it, all provider access is closed
  std::vector<Provider> providers;
  std::vector<Window> windows;  // user-defined only; "always" is implicit
  std::vector<Link> links;
  std::vector<Grant> grants;
  Guard guard;
  std::string source;  // the file it was read from, for messages

  [[nodiscard]] const Provider* provider(std::string_view name) const;
  [[nodiscard]] const Window* window(std::string_view name) const;
  [[nodiscard]] const Link* link(std::string_view name) const;
};

inline const Provider* Policy::provider(std::string_view name) const {
  for (const auto& p : providers) {
    if (p.name == name) return &p;
  }
  return nullptr;
}
inline const Window* Policy::window(std::string_view name) const {
  for (const auto& w : windows) {
    if (w.name == name) return &w;
  }
  return nullptr;
}
inline const Link* Policy::link(std::string_view name) const {
  for (const auto& l : links) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

}  // namespace drawbridge
