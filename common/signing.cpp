#include "common/signing.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <utility>

#include "common/text_encoding.h"

namespace drawbridge {

namespace {

constexpr std::string_view kKeyPrefix = "ed25519:";
constexpr std::string_view kBundleMagic = "drawbridge-bundle 1";
constexpr std::string_view kSecretMagic = "drawbridge-ed25519-secret 1";
constexpr int kB64 = sodium_base64_VARIANT_ORIGINAL;
// A secret key file is two short lines; anything much larger is not one.
constexpr std::size_t kMaxSecretFileBytes = 4096;

static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_SECRETKEYBYTES == 64 &&
              crypto_sign_BYTES == 64);

// Every entry point that touches libsodium's allocator or RNG makes sure it is initialised:
// sodium_malloc needs the page size that sodium_init records. sodium_init is idempotent and
// thread-safe; it fails only when the system has no usable randomness, where no key is safe.
void require_sodium() {
  if (sodium_init() < 0) std::abort();
}

std::string to_base64(const std::uint8_t* bin, std::size_t len) {
  std::string out(sodium_base64_encoded_len(len, kB64), '\0');
  sodium_bin2base64(out.data(), out.size(), bin, len, kB64);
  out.resize(out.size() - 1);  // the encoded length counts the terminating NUL
  return out;
}

// Decodes standard padded base64 into exactly `out.size()` bytes. Strict: no whitespace, no
// trailing characters, and only the canonical spelling (re-encoding must give the same text), so
// one key or signature has one textual form.
Result<void> from_base64(std::string_view text, std::span<std::uint8_t> out,
                         std::string_view what) {
  // Decode into a buffer large enough for any input so that a wrong length is reported as such.
  std::vector<std::uint8_t> buf(text.size() / 4 * 3 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (text.empty() ||
      sodium_base642bin(buf.data(), buf.size(), text.data(), text.size(), nullptr, &len, &end,
                        kB64) != 0 ||
      end != text.data() + text.size()) {
    return make_error(std::string(what) + " is not valid base64");
  }
  if (len != out.size()) {
    sodium_memzero(buf.data(), buf.size());
    return make_error(std::string(what) + " has " + std::to_string(len) + " bytes, expected " +
                      std::to_string(out.size()));
  }
  std::copy_n(buf.begin(), len, out.begin());
  const bool canonical = to_base64(out.data(), out.size()) == text;
  sodium_memzero(buf.data(), buf.size());
  if (!canonical) return make_error(std::string(what) + " is not canonical base64");
  return {};
}

std::string errno_text() {
  return std::strerror(errno);
}

// Owns a file descriptor; closes it on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  // Closes now so that a failing close (lost write on NFS, …) is reported, not swallowed.
  bool close() {
    const int fd = std::exchange(fd_, -1);
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_;
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Creates `path` (never replacing an existing file) with mode 0600 and writes the parts to it,
// fsync'd. On failure the half-written file is removed.
Result<void> create_exclusive(const std::string& path,
                              std::initializer_list<std::string_view> parts) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.ok()) {
    if (errno == EEXIST) return make_error(path + " already exists; refusing to overwrite it");
    return make_error("cannot create " + path + ": " + errno_text());
  }
  const auto fail = [&](const std::string& what) -> Result<void> {
    const std::string reason = errno_text();
    fd.close();
    ::unlink(path.c_str());
    return make_error("cannot " + what + " " + path + ": " + reason);
  };
  // The umask can only remove bits, but make the mode explicit rather than inherited.
  if (::fchmod(fd.get(), 0600) != 0) return fail("set mode 0600 on");
  for (const auto part : parts) {
    if (!write_all(fd.get(), part)) return fail("write");
  }
  if (::fsync(fd.get()) != 0) return fail("sync");
  if (!fd.close()) return fail("close");
  return {};
}

}  // namespace

Result<void> init_sodium() {
  if (sodium_init() < 0) return make_error("libsodium could not be initialised");
  return {};
}

// ---- PublicKey

Result<PublicKey> PublicKey::parse(std::string_view text) {
  if (!text.starts_with(kKeyPrefix)) {
    return make_error("public key must start with 'ed25519:', got '" +
                      std::string(text.substr(0, 40)) + "'");
  }
  PublicKey key;
  if (auto ok = from_base64(text.substr(kKeyPrefix.size()), key.bytes, "public key"); !ok) {
    return ok.error();
  }
  return key;
}

std::string PublicKey::str() const {
  return std::string(kKeyPrefix) + to_base64(bytes.data(), bytes.size());
}

std::string PublicKey::id() const {
  // generichash cannot produce fewer than 16 bytes; the id is the first 4 of them.
  std::array<std::uint8_t, crypto_generichash_BYTES_MIN> hash{};
  crypto_generichash(hash.data(), hash.size(), bytes.data(), bytes.size(), nullptr, 0);
  return to_hex(std::span(hash).first(4));
}

// ---- SecretKey

SecretKey::SecretKey() {
  require_sodium();
  sk_ = static_cast<std::uint8_t*>(sodium_malloc(crypto_sign_SECRETKEYBYTES));
  if (sk_ == nullptr) throw std::bad_alloc();
}

SecretKey::SecretKey(SecretKey&& other) noexcept : sk_(std::exchange(other.sk_, nullptr)) {}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    if (sk_ != nullptr) sodium_free(sk_);
    sk_ = std::exchange(other.sk_, nullptr);
  }
  return *this;
}

SecretKey::~SecretKey() {
  if (sk_ != nullptr) sodium_free(sk_);  // sodium_free wipes before releasing
}

SecretKey SecretKey::generate() {
  SecretKey key;
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  crypto_sign_keypair(pk.data(), key.sk_);
  return key;
}

Result<SecretKey> SecretKey::load(const std::string& path) {
  require_sodium();
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) return make_error("cannot open secret key " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error("cannot stat " + path + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) return make_error(path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error("secret key " + path + " has mode " + mode +
                      ", which lets group or others access it; run chmod 600 " + path +
                      " (and consider the key exposed if others could read it)");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxSecretFileBytes) {
    return make_error(path + " is too large to be a secret key file");
  }

  // Read into guarded memory: the file holds the secret in base64.
  const std::size_t cap = kMaxSecretFileBytes + 1;
  auto* raw = static_cast<char*>(sodium_malloc(cap));
  if (raw == nullptr) throw std::bad_alloc();
  struct Free {
    char* p;
    ~Free() { sodium_free(p); }
  } guard{raw};
  std::size_t len = 0;
  while (len < cap) {
    const ssize_t n = ::read(fd.get(), raw + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("cannot read " + path + ": " + errno_text());
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  if (len > kMaxSecretFileBytes) return make_error(path + " is too large to be a secret key file");

  std::string_view text(raw, len);
  const std::string bad = path + " is not a drawbridge secret key file";
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos || text.substr(0, nl) != kSecretMagic) {
    return make_error(bad + " (first line must be '" + std::string(kSecretMagic) + "')");
  }
  text.remove_prefix(nl + 1);
  if (!text.ends_with('\n') || text.find('\n') != text.size() - 1) {
    return make_error(bad + " (expected exactly one base64 line after the header)");
  }
  text.remove_suffix(1);

  SecretKey key;
  if (auto ok = from_base64(text, std::span(key.sk_, crypto_sign_SECRETKEYBYTES), "secret key");
      !ok) {
    return make_error(bad + ": " + ok.error().message);
  }
  // A libsodium secret key is seed ‖ public key; a corrupted file would otherwise sign with a
  // public half that does not match, and every signature it made would fail to verify.
  std::array<std::uint8_t, crypto_sign_SEEDBYTES> seed{};
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  auto* check = static_cast<std::uint8_t*>(sodium_malloc(crypto_sign_SECRETKEYBYTES));
  if (check == nullptr) throw std::bad_alloc();
  crypto_sign_ed25519_sk_to_seed(seed.data(), key.sk_);
  crypto_sign_seed_keypair(pk.data(), check, seed.data());
  const bool consistent = sodium_memcmp(check, key.sk_, crypto_sign_SECRETKEYBYTES) == 0;
  sodium_memzero(seed.data(), seed.size());
  sodium_free(check);
  if (!consistent) return make_error(bad + " (its public half does not match the secret)");
  return key;
}

Result<void> SecretKey::save(const std::string& path) const {
  const std::string pub_path = path + ".pub";
  // Check the public file first so that a refusal leaves nothing behind.
  struct stat st {};
  for (const auto& p : {path, pub_path}) {
    if (::lstat(p.c_str(), &st) == 0) {
      return make_error(p + " already exists; refusing to overwrite it");
    }
  }

  // Encode the secret into guarded memory so that no ordinary heap copy of it remains.
  const std::size_t b64_len = sodium_base64_encoded_len(crypto_sign_SECRETKEYBYTES, kB64);
  auto* b64 = static_cast<char*>(sodium_malloc(b64_len));
  if (b64 == nullptr) throw std::bad_alloc();
  sodium_bin2base64(b64, b64_len, sk_, crypto_sign_SECRETKEYBYTES, kB64);
  auto written =
      create_exclusive(path, {kSecretMagic, "\n", std::string_view(b64, b64_len - 1), "\n"});
  sodium_free(b64);
  if (!written) return written;

  const std::string pub_line = public_key().str() + "\n";
  if (auto pub = create_exclusive(pub_path, {pub_line}); !pub) {
    ::unlink(path.c_str());  // no secret without its public half
    return pub;
  }
  // The public key is not secret: let others read it.
  ::chmod(pub_path.c_str(), 0644);
  return {};
}

PublicKey SecretKey::public_key() const {
  PublicKey pk;
  crypto_sign_ed25519_sk_to_pk(pk.bytes.data(), sk_);
  return pk;
}

std::array<std::uint8_t, 64> SecretKey::sign(std::string_view message) const {
  std::array<std::uint8_t, 64> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), sk_);
  return sig;
}

// ---- Bundle

namespace {

std::string signed_message(std::string_view policy) {
  std::string m;
  m.reserve(kSignatureDomain.size() + policy.size());
  m.append(kSignatureDomain);
  m.append(policy);
  return m;
}

bool verifies(const BundleSignature& s, const std::string& message) {
  return crypto_sign_verify_detached(s.signature.data(),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), s.signer.bytes.data()) == 0;
}

// Takes one '\n'-terminated line off the front of `rest`.
std::optional<std::string_view> take_line(std::string_view& rest) {
  const auto nl = rest.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  const auto line = rest.substr(0, nl);
  rest.remove_prefix(nl + 1);
  return line;
}

Result<BundleSignature> parse_signature_line(std::string_view args, std::size_t line_no) {
  const std::string at = "bundle line " + std::to_string(line_no) + ": ";
  const auto space = args.find(' ');
  if (space == std::string_view::npos || args.find(' ', space + 1) != std::string_view::npos) {
    return make_error(at + "expected 'signature ed25519:<key> <signature>'");
  }
  BundleSignature sig;
  auto key = PublicKey::parse(args.substr(0, space));
  if (!key) return make_error(at + key.error().message);
  sig.signer = *key;
  if (auto ok = from_base64(args.substr(space + 1), sig.signature, "signature"); !ok) {
    return make_error(at + ok.error().message);
  }
  return sig;
}

Result<std::size_t> parse_count(std::string_view text, std::size_t line_no) {
  const std::string at = "bundle line " + std::to_string(line_no) + ": ";
  std::size_t n = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, n);
  // Plain decimal only: no sign, no leading zeros, so a count has exactly one spelling.
  if (text.empty() || ec != std::errc() || ptr != end || (text.size() > 1 && text[0] == '0')) {
    return make_error(at + "policy byte count '" + std::string(text.substr(0, 32)) +
                      "' is not a decimal number");
  }
  if (n == 0) return make_error(at + "the policy is empty");
  if (n > kMaxPolicyBytes) {
    return make_error(at + "policy of " + std::to_string(n) + " bytes exceeds the limit of " +
                      std::to_string(kMaxPolicyBytes));
  }
  return n;
}

}  // namespace

Result<Bundle> Bundle::decode(std::string_view bytes) {
  std::string_view rest = bytes;
  const auto magic = take_line(rest);
  if (!magic || *magic != kBundleMagic) {
    return make_error("not a drawbridge bundle (first line must be '" + std::string(kBundleMagic) +
                      "')");
  }
  Bundle b;
  for (std::size_t line_no = 2;; ++line_no) {
    const auto line = take_line(rest);
    if (!line) return make_error("truncated bundle: header ends before the 'policy' line");
    if (line->starts_with("signature ")) {
      if (b.signatures.size() == kMaxSignatures) {
        return make_error("bundle has more than " + std::to_string(kMaxSignatures) + " signatures");
      }
      auto sig = parse_signature_line(line->substr(10), line_no);
      if (!sig) return sig.error();
      for (const auto& s : b.signatures) {
        if (s.signer == sig->signer) {
          return make_error("bundle line " + std::to_string(line_no) + ": key " + sig->signer.id() +
                            " signs twice");
        }
      }
      b.signatures.push_back(*sig);
    } else if (line->starts_with("policy ")) {
      auto n = parse_count(line->substr(7), line_no);
      if (!n) return n.error();
      if (b.signatures.empty()) return make_error("bundle has no signature");
      if (rest.size() < *n) {
        return make_error("truncated bundle: policy has " + std::to_string(rest.size()) +
                          " bytes, header says " + std::to_string(*n));
      }
      if (rest.size() > *n) {
        return make_error("bundle has " + std::to_string(rest.size() - *n) +
                          " unexpected bytes after the policy");
      }
      b.policy = std::string(rest);
      return b;
    } else {
      return make_error("bundle line " + std::to_string(line_no) + ": unknown header line '" +
                        std::string(line->substr(0, 40)) + "'");
    }
  }
}

std::string Bundle::encode() const {
  std::string out;
  out.reserve(policy.size() + 64 + signatures.size() * 160);
  out.append(kBundleMagic).append("\n");
  for (const auto& s : signatures) {
    out.append("signature ")
        .append(s.signer.str())
        .append(" ")
        .append(to_base64(s.signature.data(), s.signature.size()))
        .append("\n");
  }
  out.append("policy ").append(std::to_string(policy.size())).append("\n").append(policy);
  return out;
}

void Bundle::sign_with(const SecretKey& key) {
  BundleSignature sig{key.public_key(), key.sign(signed_message(policy))};
  for (auto& s : signatures) {
    if (s.signer == sig.signer) {
      s = sig;
      return;
    }
  }
  signatures.push_back(sig);
}

std::vector<PublicKey> Bundle::valid_signers() const {
  const std::string message = signed_message(policy);
  std::vector<PublicKey> out;
  for (const auto& s : signatures) {
    // Counted by distinct full key: a repeated signer never counts twice.
    if (verifies(s, message) && std::find(out.begin(), out.end(), s.signer) == out.end()) {
      out.push_back(s.signer);
    }
  }
  return out;
}

std::vector<PublicKey> Bundle::invalid_signers() const {
  const std::string message = signed_message(policy);
  std::vector<PublicKey> out;
  for (const auto& s : signatures) {
    if (!verifies(s, message)) out.push_back(s.signer);
  }
  return out;
}

}  // namespace drawbridge
