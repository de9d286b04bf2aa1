#include "common/net_types.h"

#include <arpa/inet.h>

#include <charconv>

namespace drawbridge {

std::optional<Address> Address::parse(std::string_view text) {
  const std::string s(text);
  Address a;
  if (s.find(':') != std::string::npos) {
    a.family = Family::v6;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  } else {
    a.family = Family::v4;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  }
  return a;
}

std::string Address::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<Address> Address::next() const {
  Address r = *this;
  for (std::size_t i = size(); i-- > 0;) {
    if (++r.bytes[i] != 0) return r;
  }
  return std::nullopt;
}

std::optional<Address> Address::prev() const {
  Address r = *this;
  for (std::size_t i = size(); i-- > 0;) {
    if (r.bytes[i]-- != 0) return r;
  }
  return std::nullopt;
}

Address Address::lowest(Family f) {
  Address a;
  a.family = f;
  return a;
}

Address Address::highest(Family f) {
  Address a;
  a.family = f;
  for (std::size_t i = 0; i < a.size(); ++i) a.bytes[i] = 0xff;
  return a;
}

Result<AddressRange> AddressRange::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto addr_text = text.substr(0, slash);
  const auto addr = Address::parse(addr_text);
  if (!addr) {
    return make_error("'" + std::string(text) + "' is not an IPv4/IPv6 address or CIDR prefix");
  }
  const int max_len = addr->family == Family::v4 ? 32 : 128;
  int len = max_len;
  if (slash != std::string_view::npos) {
    const auto len_text = text.substr(slash + 1);
    const auto* end = len_text.data() + len_text.size();
    auto [p, ec] = std::from_chars(len_text.data(), end, len);
    if (ec != std::errc() || p != end || len_text.empty() || len < 0 || len > max_len) {
      return make_error("'" + std::string(text) + "' has an invalid prefix length (0-" +
                        std::to_string(max_len) + ")");
    }
  }
  AddressRange r{*addr, *addr};
  for (int bit = len; bit < max_len; ++bit) {
    const auto byte = static_cast<std::size_t>(bit / 8);
    const auto mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    if ((addr->bytes[byte] & mask) != 0) {
      return make_error("'" + std::string(text) + "' has host bits set; did you mean " +
                        [&] {
                          Address base = *addr;
                          for (int b = len; b < max_len; ++b) {
                            base.bytes[static_cast<std::size_t>(b / 8)] &=
                                static_cast<std::uint8_t>(~(0x80u >> (b % 8)));
                          }
                          return base.str();
                        }() +
                        "/" + std::to_string(len) + "?");
    }
    r.last.bytes[byte] |= mask;
  }
  return r;
}

bool AddressRange::contains(const Address& a) const {
  return a.family == first.family && first <= a && a <= last;
}

bool AddressRange::contains(const AddressRange& r) const {
  return r.family() == family() && first <= r.first && r.last <= last;
}

bool AddressRange::overlaps(const AddressRange& r) const {
  return r.family() == family() && first <= r.last && r.first <= last;
}

std::optional<int> AddressRange::prefix_length() const {
  const int max_len = family() == Family::v4 ? 32 : 128;
  // The prefix length is the number of leading bits where first and last agree, and then
  // first must be all zeros and last all ones in the remaining bits.
  int len = 0;
  while (len < max_len) {
    const auto byte = static_cast<std::size_t>(len / 8);
    const auto mask = static_cast<std::uint8_t>(0x80u >> (len % 8));
    if ((first.bytes[byte] & mask) != (last.bytes[byte] & mask)) break;
    ++len;
  }
  for (int bit = len; bit < max_len; ++bit) {
    const auto byte = static_cast<std::size_t>(bit / 8);
    const auto mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    if ((first.bytes[byte] & mask) != 0 || (last.bytes[byte] & mask) == 0) return std::nullopt;
  }
  return len;
}

std::string AddressRange::str() const {
  const int max_len = family() == Family::v4 ? 32 : 128;
  if (auto len = prefix_length()) {
    if (*len == max_len) return first.str();
    return first.str() + "/" + std::to_string(*len);
  }
  return first.str() + "-" + last.str();
}

std::string_view protocol_name(Protocol p) {
  return p == Protocol::tcp ? "tcp" : "udp";
}

Result<PortRange> PortRange::parse(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return make_error("'" + std::string(text) + "' is not a port: " + why);
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return bad("expected \"tcp/PORT\", \"udp/PORT\" or \"tcp/FIRST-LAST\"");
  PortRange r;
  const auto proto = text.substr(0, slash);
  if (proto == "tcp") {
    r.protocol = Protocol::tcp;
  } else if (proto == "udp") {
    r.protocol = Protocol::udp;
  } else {
    return bad("protocol must be tcp or udp");
  }
  const auto ports = text.substr(slash + 1);
  const auto parse_port = [](std::string_view s, std::uint16_t& out) {
    unsigned v = 0;
    const auto* end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, v);
    if (s.empty() || ec != std::errc() || p != end || v == 0 || v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
  };
  const auto dash = ports.find('-');
  if (!parse_port(ports.substr(0, dash), r.first)) return bad("ports are 1-65535");
  r.last = r.first;
  if (dash != std::string_view::npos) {
    if (!parse_port(ports.substr(dash + 1), r.last)) return bad("ports are 1-65535");
    if (r.last < r.first) return bad("range end is below its start");
  }
  return r;
}

std::string PortRange::str() const {
  std::string s(protocol_name(protocol));
  s += "/" + std::to_string(first);
  if (last != first) s += "-" + std::to_string(last);
  return s;
}

}  // namespace drawbridge
