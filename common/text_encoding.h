// Small encodings several components need: lowercase hex of bytes (hashes, key ids).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace drawbridge {

[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
[[nodiscard]] inline std::string to_hex(std::string_view bytes) {
  return to_hex(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

}  // namespace drawbridge
