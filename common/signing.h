// Ed25519 keys and signed policy bundles (libsodium), shared by the controller (which signs) and
// the enforcer (which verifies). An enforcer trusts signatures, never the channel: a bundle is
// self-authenticating, so a relay or a file copied by hand is as safe as the controller.
//
// Bundle format (text header, then the policy's exact bytes):
//
//   drawbridge-bundle 1
//   signature ed25519:<base64 32-byte public key> <base64 64-byte signature>
//   signature ed25519:<…> <…>                       (one line per signer, at most 16)
//   policy <decimal byte count>
//   <exactly that many bytes: the policy TOML as written>
//
// Each signature is a detached Ed25519 signature over kSignatureDomain followed by the policy
// bytes (domain separation: a signature made for anything else never verifies as a bundle
// signature). Signatures cover only the policy, so a co-signer appends a line without touching
// the others. Verification happens over the exact received bytes, before the policy is parsed.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace drawbridge {

inline constexpr std::string_view kSignatureDomain = "drawbridge policy bundle v1\n";
inline constexpr std::size_t kMaxSignatures = 16;
inline constexpr std::size_t kMaxPolicyBytes = 16 * 1024 * 1024;

struct PublicKey {
  std::array<std::uint8_t, 32> bytes{};
  // "ed25519:<base64>"
  [[nodiscard]] static Result<PublicKey> parse(std::string_view text);
  [[nodiscard]] std::string str() const;
  // Short id for people (first 8 hex digits of a BLAKE2b hash). Display only: keys are always
  // compared in full.
  [[nodiscard]] std::string id() const;
  auto operator<=>(const PublicKey&) const = default;
};

// A secret key, wiped from memory when destroyed. Move-only.
class SecretKey {
 public:
  static SecretKey generate();
  // Refuses files that group or others may read (the key would be someone else's too).
  static Result<SecretKey> load(const std::string& path);
  // Writes the secret (mode 0600, refusing to overwrite) and NAME.pub next to it.
  Result<void> save(const std::string& path) const;
  SecretKey(SecretKey&&) noexcept;
  SecretKey& operator=(SecretKey&&) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey();

  [[nodiscard]] PublicKey public_key() const;
  [[nodiscard]] std::array<std::uint8_t, 64> sign(std::string_view message) const;

 private:
  SecretKey();
  std::uint8_t* sk_;  // 64 bytes in sodium_malloc'd memory (guarded, wiped on free)
};

struct BundleSignature {
  PublicKey signer;
  std::array<std::uint8_t, 64> signature{};
};

struct Bundle {
  std::string policy;  // the exact bytes that were signed
  std::vector<BundleSignature> signatures;

  // Strict: unknown header lines, bad base64, wrong lengths, duplicate signers, too many
  // signatures, a byte count that does not match, or trailing bytes are errors.
  [[nodiscard]] static Result<Bundle> decode(std::string_view bytes);
  [[nodiscard]] std::string encode() const;

  // Adds (or, for a signer already present, replaces) this key's signature over `policy`.
  void sign_with(const SecretKey& key);

  // The distinct signers whose signatures verify over `policy` with the domain prefix.
  [[nodiscard]] std::vector<PublicKey> valid_signers() const;
  // Signers present whose signature does not verify.
  [[nodiscard]] std::vector<PublicKey> invalid_signers() const;
};

// libsodium must be initialised once per process before any key is used; idempotent.
Result<void> init_sodium();

}  // namespace drawbridge
