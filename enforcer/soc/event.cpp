#include "enforcer/soc/event.h"

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace drawbridge {
namespace {

constexpr std::uint8_t kIcmp = 1;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr std::uint8_t kIcmpV6 = 58;
constexpr std::uint8_t kSctp = 132;

// The ICMP "ports" of the spec (taken from Zeek): a request and its reply are a pair of types,
// hashed as (type, counterpart), so both directions of one exchange get one ID. A type without a
// counterpart is one-way: type and code are hashed as they are, the endpoints never swapped.
struct TypePair {
  std::uint8_t a, b;
};
constexpr TypePair kIcmpPairs[] = {
    {8, 0},    // echo, echo reply
    {13, 14},  // timestamp
    {15, 16},  // information
    {10, 9},   // router solicitation, advertisement
    {17, 18},  // address mask
};
constexpr TypePair kIcmp6Pairs[] = {
    {128, 129},  // echo request, reply
    {130, 131},  // MLD listener query, report
    {133, 134},  // router solicitation, advertisement
    {135, 136},  // neighbor solicitation, advertisement
    {139, 140},  // node information query, reply ("who are you")
    {144, 145},  // home agent address discovery request, reply
};

template <std::size_t N>
std::optional<std::uint8_t> counterpart(const TypePair (&pairs)[N], std::uint8_t type) {
  for (const TypePair& p : pairs) {
    if (p.a == type) return p.b;
    if (p.b == type) return p.a;
  }
  return std::nullopt;
}

std::string base64(const unsigned char* data, int size) {
  std::string out(static_cast<std::size_t>(4 * ((size + 2) / 3)) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, size);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

std::string community_id(const Flow& flow, std::uint16_t seed) {
  // A mixed-family tuple cannot be hashed; the spec lets a monitor report an empty ID for what
  // it does not support, and the formatters omit the field then.
  if (flow.source.family != flow.destination.family) return {};

  const bool icmp = flow.protocol == kIcmp || flow.protocol == kIcmpV6;
  const bool ported =
      icmp || flow.protocol == kTcp || flow.protocol == kUdp || flow.protocol == kSctp;
  std::uint16_t sport = flow.source_port;
  std::uint16_t dport = flow.destination_port;
  bool one_way = false;
  if (icmp) {
    if (!flow.icmp_type) return {};
    const std::uint8_t type = *flow.icmp_type;
    const auto counter =
        flow.protocol == kIcmp ? counterpart(kIcmpPairs, type) : counterpart(kIcmp6Pairs, type);
    sport = type;
    dport = counter ? *counter : flow.icmp_code.value_or(0);
    one_way = !counter;
  }

  const std::size_t n = flow.source.size();
  const auto* src = flow.source.bytes.data();
  const auto* dst = flow.destination.bytes.data();
  // Direction is abstracted away: the smaller (address, port) endpoint goes first.
  const int cmp = std::memcmp(src, dst, n);  // bytes compare as unsigned: network order
  const bool ordered = one_way || cmp < 0 || (cmp == 0 && ported && sport < dport);
  if (!ordered) {
    std::swap(src, dst);
    std::swap(sport, dport);
  }

  std::vector<unsigned char> in;
  in.reserve(2 + 2 * n + 2 + 4);
  in.push_back(static_cast<unsigned char>(seed >> 8));
  in.push_back(static_cast<unsigned char>(seed & 0xff));
  in.insert(in.end(), src, src + n);
  in.insert(in.end(), dst, dst + n);
  in.push_back(flow.protocol);
  in.push_back(0);  // padding: the input stays aligned on 32 bits
  if (ported) {
    in.push_back(static_cast<unsigned char>(sport >> 8));
    in.push_back(static_cast<unsigned char>(sport & 0xff));
    in.push_back(static_cast<unsigned char>(dport >> 8));
    in.push_back(static_cast<unsigned char>(dport & 0xff));
  }

  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_size = 0;
  if (EVP_Digest(in.data(), in.size(), digest.data(), &digest_size, EVP_sha1(), nullptr) != 1) {
    return {};  // only when no OpenSSL provider offers SHA-1
  }
  return "1:" + base64(digest.data(), static_cast<int>(digest_size));
}

std::string transport_name(std::uint8_t proto) {
  switch (proto) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 1:
      return "icmp";
    case 58:
      return "ipv6-icmp";
    default:
      return "proto " + std::to_string(proto);
  }
}

}  // namespace drawbridge
