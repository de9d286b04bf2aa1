#include "common/curve_keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "common/signing.h"

namespace drawbridge {

namespace {

constexpr std::string_view kPublicPrefix = "curve:";
constexpr std::string_view kSecretPrefix = "curve-secret:";
constexpr std::size_t kZ85Length = 40;  // 32 bytes, 4 bytes per 5 characters
constexpr std::size_t kZ85Buffer = kZ85Length + 1;
// A secret key file is one short line; anything much larger is not one.
constexpr std::size_t kMaxSecretFileBytes = 4096;
constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// sodium_malloc needs the page size that sodium_init records. It fails only when the system has
// no usable randomness, where no key is safe.
void require_sodium() {
  if (!init_sodium().ok()) std::abort();
}

std::string errno_text() {
  return std::strerror(errno);
}

// Length and alphabet, reported precisely: libzmq's decoder only says "invalid". A secret's
// characters are never echoed into a message that may end up in a log.
Result<void> check_z85_text(std::string_view text, std::string_view what, bool secret) {
  if (text.size() != kZ85Length) {
    return make_error(std::string(what) + " has " + std::to_string(text.size()) +
                      " characters, expected " + std::to_string(kZ85Length) + " (Z85)");
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (kZ85Alphabet.find(text[i]) != std::string_view::npos) continue;
    const std::string at = "at position " + std::to_string(i + 1);
    if (secret) {
      return make_error(std::string(what) + " has a character " + at +
                        " that is not in the Z85 alphabet");
    }
    const auto c = static_cast<unsigned char>(text[i]);
    char shown[16];
    std::snprintf(shown, sizeof shown, c >= 0x21 && c < 0x7f ? "'%c'" : "0x%02x", c);
    return make_error(std::string(what) + " has the character " + shown + " " + at +
                      ", which is not in the Z85 alphabet");
  }
  return {};
}

std::string z85_overflow(std::string_view what) {
  return std::string(what) +
         " is not valid Z85 (a group of 5 characters encodes more than 32 bits)";
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

// Guarded memory for anything holding secret characters; wiped when released.
struct SodiumBuffer {
  explicit SodiumBuffer(std::size_t size) : p(nullptr) {
    require_sodium();
    p = static_cast<char*>(sodium_malloc(size));
    if (p == nullptr) throw std::bad_alloc();
  }
  SodiumBuffer(const SodiumBuffer&) = delete;
  SodiumBuffer& operator=(const SodiumBuffer&) = delete;
  ~SodiumBuffer() { sodium_free(p); }
  char* p;
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

// Creates `path` (never replacing an existing file) with `mode` and writes the parts to it,
// fsync'd. On failure the half-written file is removed.
Result<void> create_exclusive(const std::string& path, mode_t mode,
                              std::initializer_list<std::string_view> parts) {
  // Created 0600 whatever the final mode, so nobody can open it while it is being written.
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
  for (const auto part : parts) {
    if (!write_all(fd.get(), part)) return fail("write");
  }
  // The umask can only remove bits; the mode is set explicitly rather than inherited.
  if (::fchmod(fd.get(), mode) != 0) return fail("set the mode of");
  if (::fsync(fd.get()) != 0) return fail("sync");
  if (!fd.close()) return fail("close");
  return {};
}

// Reads a small file whole into guarded memory (the caller's buffer of kMaxSecretFileBytes + 1).
Result<std::size_t> read_small(int fd, char* buf, const std::string& path) {
  std::size_t len = 0;
  while (len < kMaxSecretFileBytes + 1) {
    const ssize_t n = ::read(fd, buf + len, kMaxSecretFileBytes + 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("cannot read " + path + ": " + errno_text());
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  if (len > kMaxSecretFileBytes) return make_error(path + " is too large to be a key file");
  return len;
}

// The public key file next to a secret, if there is one. Absent is fine (a secret may be
// deployed alone); present but unreadable or malformed is not, since it is what was handed out.
Result<std::optional<CurvePublicKey>> read_public_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) {
    if (errno == ENOENT) return std::optional<CurvePublicKey>();
    return make_error("cannot open " + path + ": " + errno_text());
  }
  std::string text(kMaxSecretFileBytes + 1, '\0');
  auto len = read_small(fd.get(), text.data(), path);
  if (!len) return len.error();
  text.resize(*len);
  if (!text.ends_with('\n') || text.find('\n') != text.size() - 1) {
    return make_error(path + " is not a CURVE public key file (expected one line, 'curve:<Z85>')");
  }
  text.pop_back();
  auto key = CurvePublicKey::parse(text);
  if (!key) return make_error(path + ": " + key.error().message);
  return std::optional<CurvePublicKey>(*key);
}

}  // namespace

// ---- CurvePublicKey

Result<CurvePublicKey> CurvePublicKey::parse(std::string_view text) {
  // Likely mix-ups get their own message: the two key kinds look alike in a config file.
  if (text.starts_with("ed25519:")) {
    return make_error(
        "this is an Ed25519 signing key; the control channel needs a CURVE public key "
        "('curve:<Z85>', the .curve.pub file written by keygen --curve)");
  }
  if (text.starts_with(kSecretPrefix)) {
    return make_error(
        "this is a CURVE secret key, not a public key (use the .pub file; the secret must stay "
        "private)");
  }
  std::string_view z85 = text;
  const bool prefixed = text.starts_with(kPublicPrefix);
  if (prefixed) z85.remove_prefix(kPublicPrefix.size());
  if (!prefixed && z85.size() != kZ85Length) {
    return make_error("CURVE public key must be 'curve:' followed by 40 Z85 characters, got '" +
                      std::string(text.substr(0, 60)) + "'");
  }
  if (auto ok = check_z85_text(z85, "CURVE public key", false); !ok) return ok.error();
  const std::string terminated(z85);  // zmq_z85_decode reads a NUL-terminated string
  CurvePublicKey key;
  if (zmq_z85_decode(key.bytes.data(), terminated.c_str()) == nullptr) {
    return make_error(z85_overflow("CURVE public key"));
  }
  return key;
}

std::string CurvePublicKey::z85() const {
  char out[kZ85Buffer] = {};
  zmq_z85_encode(out, bytes.data(), bytes.size());
  return std::string(out, kZ85Length);
}

std::string CurvePublicKey::str() const {
  return std::string(kPublicPrefix) + z85();
}

// ---- CurveSecretKey

CurveSecretKey::CurveSecretKey() : secret_z85_(nullptr) {
  require_sodium();
  secret_z85_ = static_cast<char*>(sodium_malloc(kZ85Buffer));
  if (secret_z85_ == nullptr) throw std::bad_alloc();
  sodium_memzero(secret_z85_, kZ85Buffer);
}

CurveSecretKey::CurveSecretKey(CurveSecretKey&& other) noexcept
    : public_(other.public_), secret_z85_(std::exchange(other.secret_z85_, nullptr)) {}

CurveSecretKey& CurveSecretKey::operator=(CurveSecretKey&& other) noexcept {
  if (this != &other) {
    if (secret_z85_ != nullptr) sodium_free(secret_z85_);
    secret_z85_ = std::exchange(other.secret_z85_, nullptr);
    public_ = other.public_;
  }
  return *this;
}

CurveSecretKey::~CurveSecretKey() {
  if (secret_z85_ != nullptr) sodium_free(secret_z85_);  // sodium_free wipes before releasing
}

const char* CurveSecretKey::z85_secret() const {
  return secret_z85_;
}

CurveSecretKey CurveSecretKey::generate() {
  CurveSecretKey key;
  char pub[kZ85Buffer] = {};
  // Fails only when libzmq was built without CURVE, where the control channel cannot run at all;
  // like a missing RNG, that is not a condition a caller could handle.
  if (zmq_curve_keypair(pub, key.secret_z85_) != 0 ||
      zmq_z85_decode(key.public_.bytes.data(), pub) == nullptr) {
    std::fprintf(stderr, "libzmq cannot make CURVE keys (built without CURVE support?)\n");
    std::abort();
  }
  return key;
}

Result<CurveSecretKey> CurveSecretKey::load(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) return make_error("cannot open CURVE secret key " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error("cannot stat " + path + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) return make_error(path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error("CURVE secret key " + path + " has mode " + mode +
                      ", which lets group or others access it; run chmod 600 " + path +
                      " (and consider the key exposed if others could read it)");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxSecretFileBytes) {
    return make_error(path + " is too large to be a CURVE secret key file");
  }

  // Read into guarded memory: the file holds the secret.
  SodiumBuffer raw(kMaxSecretFileBytes + 1);
  auto len = read_small(fd.get(), raw.p, path);
  if (!len) return len.error();
  std::string_view text(raw.p, *len);
  const std::string bad = path + " is not a CURVE secret key file";
  if (!text.starts_with(kSecretPrefix)) {
    return make_error(bad + " (it must be one line, '" + std::string(kSecretPrefix) + "<Z85>')");
  }
  text.remove_prefix(kSecretPrefix.size());
  if (!text.ends_with('\n') || text.find('\n') != text.size() - 1) {
    return make_error(bad + " (expected exactly one line ending in a newline)");
  }
  text.remove_suffix(1);
  if (auto ok = check_z85_text(text, "the secret key", true); !ok) {
    return make_error(bad + ": " + ok.error().message);
  }

  CurveSecretKey key;
  std::memcpy(key.secret_z85_, text.data(), kZ85Length);
  key.secret_z85_[kZ85Length] = '\0';
  char pub[kZ85Buffer] = {};
  if (zmq_curve_public(pub, key.secret_z85_) != 0) {
    if (errno == ENOTSUP) return make_error("libzmq was built without CURVE support");
    return make_error(bad + ": " + z85_overflow("the secret key"));
  }
  if (zmq_z85_decode(key.public_.bytes.data(), pub) == nullptr) {
    return make_error(bad + ": cannot derive its public key");
  }

  // The public key next to the secret is what was given to the other side; if it belongs to a
  // different secret, the channel would fail later with nothing but a silent handshake timeout.
  const std::string pub_path = path + ".pub";
  auto listed = read_public_file(pub_path);
  if (!listed) return listed.error();
  if (*listed && **listed != key.public_) {
    return make_error(pub_path + " holds " + (*listed)->str() + ", but the public key of " + path +
                      " is " + key.public_.str() +
                      "; the two files do not belong together (one was replaced)");
  }
  return key;
}

Result<void> CurveSecretKey::save(const std::string& path) const {
  const std::string pub_path = path + ".pub";
  // Check the public file first so that a refusal leaves nothing behind.
  struct stat st {};
  for (const auto& p : {path, pub_path}) {
    if (::lstat(p.c_str(), &st) == 0) {
      return make_error(p + " already exists; refusing to overwrite it");
    }
  }
  auto written = create_exclusive(path, 0600,
                                  {kSecretPrefix, std::string_view(secret_z85_, kZ85Length), "\n"});
  if (!written) return written;
  // The public key is not secret: let others read it.
  if (auto pub = create_exclusive(pub_path, 0644, {public_.str(), "\n"}); !pub) {
    ::unlink(path.c_str());  // no secret without its public half
    return pub;
  }
  return {};
}

}  // namespace drawbridge
