// ZeroMQ CURVE key pairs for the control channel. They authenticate the channel only (who may
// connect, and that the controller is the pinned one); they never authorise a policy — that is
// what the Ed25519 bundle signatures are for (common/signing.h).
//
// Text form of a public key: "curve:<40 Z85 characters>". A secret key file holds one line,
// "curve-secret:<40 Z85 characters>", mode 0600; its public key is written to NAME.pub.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace drawbridge {

struct CurvePublicKey {
  std::array<std::uint8_t, 32> bytes{};
  // Accepts "curve:<Z85>" (and, for convenience, the bare 40-character Z85 text).
  [[nodiscard]] static Result<CurvePublicKey> parse(std::string_view text);
  [[nodiscard]] std::string z85() const;  // 40 characters, what libzmq's socket options take
  [[nodiscard]] std::string str() const;  // "curve:<Z85>"
  auto operator<=>(const CurvePublicKey&) const = default;
};

// A CURVE secret key, wiped from memory when destroyed. Move-only.
class CurveSecretKey {
 public:
  static CurveSecretKey generate();
  // Refuses files that group or others may read, and malformed contents.
  static Result<CurveSecretKey> load(const std::string& path);
  // Writes the secret (mode 0600, refusing to overwrite) and PATH.pub with the public key.
  Result<void> save(const std::string& path) const;

  CurveSecretKey(CurveSecretKey&&) noexcept;
  CurveSecretKey& operator=(CurveSecretKey&&) noexcept;
  CurveSecretKey(const CurveSecretKey&) = delete;
  CurveSecretKey& operator=(const CurveSecretKey&) = delete;
  ~CurveSecretKey();

  [[nodiscard]] const CurvePublicKey& public_key() const { return public_; }
  // 40 Z85 characters plus a terminating NUL, for ZMQ_CURVE_SECRETKEY; valid while *this lives.
  [[nodiscard]] const char* z85_secret() const;

 private:
  CurveSecretKey();
  CurvePublicKey public_;
  char* secret_z85_;  // 41 bytes in sodium_malloc'd memory (guarded, wiped on free)
};

}  // namespace drawbridge
