#include "enforcer/soc/audit_log.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/signing.h"
#include "common/window_schedule.h"

namespace drawbridge {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kHashKey = R"(,"hash":")";
// `,"hash":"` + 64 hex digits + `"}`: fixed, so the hashed bytes are simply all the others.
constexpr std::size_t kSuffixSize = kHashKey.size() + 64 + 2;

Error sys_error(const std::string& what, const std::string& path) {
  return make_error(what + " " + path + ": " + std::strerror(errno));
}

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size());
  std::string hex(2 * digest.size() + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
  hex.pop_back();  // sodium_bin2hex writes a terminating NUL
  return hex;
}

bool is_hash(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// One line of the file, taken apart. Views point into the line.
struct Record {
  std::uint64_t seq = 0;
  Instant time{};
  std::string_view prev, event, hash;
  std::string_view body;  // the bytes the hash covers
};

// The sequence number a line starts with, when it starts like a record: lets a report name the
// record even when the rest of the line is damaged.
std::optional<std::uint64_t> leading_seq(std::string_view line) {
  constexpr std::string_view kSeq = R"({"seq":)";
  if (!line.starts_with(kSeq)) return std::nullopt;
  const char* first = line.data() + kSeq.size();
  const char* last = line.data() + line.size();
  std::uint64_t seq = 0;
  const auto [end, ec] = std::from_chars(first, last, seq);
  if (ec != std::errc{} || end == first || *first == '0' || end - first > 20) return std::nullopt;
  return seq;
}

// Strict: exactly the bytes AuditLog writes, so that one record has one spelling.
Result<Record> parse_record(std::string_view line) {
  const auto bad = [](const std::string& what) {
    return make_error("not an audit record: " + what);
  };
  if (line.empty()) return bad("the line is empty");
  if (line.find('\0') != std::string_view::npos) return bad("the line holds NUL bytes");
  Record r;
  const auto seq = leading_seq(line);
  if (!seq) return bad(R"(it does not start with {"seq":<number from 1>)");
  r.seq = *seq;
  // leading_seq allows no leading zeros, so the digits are exactly the number's decimal spelling.
  std::size_t pos = std::string_view(R"({"seq":)").size() + std::to_string(r.seq).size();
  constexpr std::string_view kTime = R"(,"time":")";
  if (line.substr(pos, kTime.size()) != kTime) return bad(R"("time" does not follow "seq")");
  pos += kTime.size();
  const std::size_t time_end = line.find('"', pos);
  if (time_end == std::string_view::npos) return bad(R"("time" is not a string)");
  const auto time = parse_instant(line.substr(pos, time_end - pos));
  if (!time || format_instant(*time) != line.substr(pos, time_end - pos))
    return bad(R"("time" is not a UTC time as the enforcer writes it)");
  r.time = *time;
  pos = time_end;
  constexpr std::string_view kPrev = R"(","prev":")";
  if (line.substr(pos, kPrev.size()) != kPrev) return bad(R"("prev" does not follow "time")");
  pos += kPrev.size();
  r.prev = line.substr(pos, 64);
  if (!is_hash(r.prev)) return bad(R"("prev" is not 64 lower-case hex digits)");
  pos += 64;
  constexpr std::string_view kEvent = R"(","event":)";
  if (line.substr(pos, kEvent.size()) != kEvent) return bad(R"("event" does not follow "prev")");
  pos += kEvent.size();
  if (line.size() < pos + kSuffixSize) return bad(R"(it does not end in ,"hash":"<64 hex>"})");
  const std::string_view suffix = line.substr(line.size() - kSuffixSize);
  r.hash = suffix.substr(kHashKey.size(), 64);
  if (!suffix.starts_with(kHashKey) || !suffix.ends_with("\"}") || !is_hash(r.hash))
    return bad(R"(it does not end in ,"hash":"<64 hex>"})");
  r.event = line.substr(pos, line.size() - kSuffixSize - pos);
  if (r.event.empty() || r.event.front() != '{' || r.event.back() != '}' ||
      !nlohmann::json::accept(r.event)) {
    return bad(R"("event" is not a JSON object)");
  }
  r.body = line.substr(0, line.size() - kSuffixSize);
  return r;
}

// The rotated file name's time: sorts like the time and is safe in any file system.
std::string compact_utc(Instant t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<seconds>(t - day)};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// `yyyymmddTHHMMSSZ` with an optional `-N`: only such names are ours to order and delete, never
// e.g. a copy an administrator compressed next to them.
bool is_rotation_suffix(std::string_view s) {
  const auto digits = [&](std::size_t from, std::size_t n) {
    return s.size() >= from + n && std::all_of(s.begin() + static_cast<std::ptrdiff_t>(from),
                                               s.begin() + static_cast<std::ptrdiff_t>(from + n),
                                               [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(0, 8) || s.size() < 16 || s[8] != 'T' || !digits(9, 6) || s[15] != 'Z') return false;
  if (s.size() == 16) return true;
  return s[16] == '-' && s.size() > 17 && digits(17, s.size() - 17);
}

// RAII for the short-lived descriptors of this file.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

void sync_directory(const std::string& file) {
  const fs::path dir = fs::path(file).parent_path();
  const ScopedFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
}

bool pread_all(int fd, char* out, std::size_t n, off_t at) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, out, n, at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    out += got;
    n -= static_cast<std::size_t>(got);
    at += got;
  }
  return true;
}

// The offset just after the last '\n' in [0, end), or 0 when there is none: where the line that
// ends at `end` starts. Reads backwards, so finding the last record of a large file is cheap.
Result<off_t> line_start_before(int fd, off_t end, const std::string& path) {
  std::array<char, 65536> buf{};
  off_t pos = end;
  while (pos > 0) {
    const off_t chunk = std::min<off_t>(pos, static_cast<off_t>(buf.size()));
    pos -= chunk;
    if (!pread_all(fd, buf.data(), static_cast<std::size_t>(chunk), pos))
      return sys_error("cannot read", path);
    for (off_t i = chunk; i > 0; --i) {
      if (buf[static_cast<std::size_t>(i - 1)] == '\n') return pos + i;
    }
  }
  return off_t{0};
}

Result<std::string> read_range(int fd, off_t from, off_t to, const std::string& path) {
  std::string s(static_cast<std::size_t>(to - from), '\0');
  if (!pread_all(fd, s.data(), s.size(), from)) return sys_error("cannot read", path);
  return s;
}

struct LastRecord {
  std::uint64_t seq = 0;
  Instant time{};
  std::string hash;
};

// The last line of a closed (rotated) file as a record whose hash checks; nullopt when the file
// is empty.
Result<std::optional<LastRecord>> read_last_record(const std::string& path) {
  const ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return sys_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return sys_error("cannot stat", path);
  off_t end = st.st_size;
  if (end == 0) return std::optional<LastRecord>{};
  char last = 0;
  if (!pread_all(fd.get(), &last, 1, end - 1)) return sys_error("cannot read", path);
  if (last == '\n') --end;
  auto start = line_start_before(fd.get(), end, path);
  if (!start.ok()) return start.error();
  auto line = read_range(fd.get(), *start, end, path);
  if (!line.ok()) return line.error();
  auto rec = parse_record(*line);
  if (!rec.ok()) return make_error(path + ": its last record: " + rec.error().message);
  if (sha256_hex(rec->body) != rec->hash)
    return make_error(path + ": its last record's hash does not match its content");
  return std::optional<LastRecord>{LastRecord{rec->seq, rec->time, std::string(rec->hash)}};
}

struct RotatedFile {
  std::string path;
  std::optional<std::uint64_t> first_seq;
};

// Rotated siblings of `live`, oldest first. Ordered by the first record's sequence number rather
// than by the name, because the name's time comes from the clock, which can step back.
Result<std::vector<RotatedFile>> list_rotated(const std::string& live) {
  const fs::path p(live);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".";
  std::vector<RotatedFile> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix) ||
        !is_rotation_suffix(std::string_view(name).substr(prefix.size())))
      continue;
    RotatedFile f{(p.parent_path() / name).string(), std::nullopt};
    std::ifstream in(f.path, std::ios::binary);
    std::string first;
    if (std::getline(in, first)) f.first_seq = leading_seq(first);
    out.push_back(std::move(f));
  }
  if (ec) return make_error("cannot list " + dir.string() + ": " + ec.message());
  // Files that do not say where they belong go last, where verification reports them.
  std::sort(out.begin(), out.end(), [](const RotatedFile& a, const RotatedFile& b) {
    if (a.first_seq.has_value() != b.first_seq.has_value()) return a.first_seq.has_value();
    if (a.first_seq != b.first_seq) return *a.first_seq < *b.first_seq;
    return a.path < b.path;
  });
  return out;
}

Result<void> check_event(std::string_view json) {
  if (json.empty() || json.front() != '{' || json.back() != '}' ||
      json.find_first_of("\r\n") != std::string_view::npos) {
    return make_error("audit log: an event must be one JSON object on one line");
  }
  if (!nlohmann::json::accept(json)) return make_error("audit log: the event is not valid JSON");
  return {};
}

std::string plural(std::uint64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

AuditLog::Fd& AuditLog::Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

AuditLog::Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

AuditLog::~AuditLog() {
  if (fd_.get() >= 0 && dirty_) ::fdatasync(fd_.get());
}

Result<AuditLog> AuditLog::open(const AuditLogOptions& options, Instant now,
                                std::vector<std::string>* notes) {
  if (options.path.empty()) return make_error("audit log: no path given");
  if (options.max_bytes == 0) return make_error("audit log: max_bytes must be positive");
  if (options.retention.count() <= 0) return make_error("audit log: retention must be positive");
  if (auto ok = init_sodium(); !ok.ok()) return ok.error();
  const fs::path parent = fs::path(options.path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) return make_error("cannot create " + parent.string() + ": " + ec.message());
  }
  AuditLog log;
  log.options_ = options;
  // Not readable by others: the events name people's addresses and sessions.
  log.fd_ = Fd(::open(options.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (log.fd_.get() < 0) return sys_error("cannot open", options.path);
  // Two writers would fork the chain: each would link to the head it knows.
  if (::flock(log.fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return make_error(options.path + " is in use by another process (a second enforcer?)");
    return sys_error("cannot lock", options.path);
  }
  struct stat st {};
  if (::fstat(log.fd_.get(), &st) != 0) return sys_error("cannot stat", options.path);
  if (!S_ISREG(st.st_mode)) return make_error(options.path + " is not a regular file");
  log.size_ = static_cast<std::uint64_t>(st.st_size);
  if (auto ok = log.repair_tail(notes); !ok.ok()) return ok.error();
  if (log.size_ == 0) {
    if (auto ok = log.continue_from_rotated(); !ok.ok()) return ok.error();
  }
  sync_directory(options.path);  // the file may be new
  log.apply_retention(now, notes);
  return log;
}

// A crash can leave what a single write() did not finish: bytes after the last newline, or a
// last line the file system extended with NULs but never filled. Both are cut away. Anything else
// that does not check out was not made by a crash, and is evidence: refuse instead of repairing.
Result<void> AuditLog::repair_tail(std::vector<std::string>* notes) {
  const int fd = fd_.get();
  const std::string& path = options_.path;
  auto end = static_cast<off_t>(size_);
  const auto cut = [&](off_t to, const std::string& what) -> Result<void> {
    if (::ftruncate(fd, to) != 0) return sys_error("cannot truncate", path);
    if (::fsync(fd) != 0) return sys_error("cannot sync", path);
    if (notes != nullptr) {
      notes->push_back("audit log " + path + ": removed " + what + " (" +
                       plural(static_cast<std::uint64_t>(end - to), "byte") +
                       ") that a crash left while a record was being written; the chain goes on "
                       "from the record before it");
    }
    end = to;
    return {};
  };
  auto start = line_start_before(fd, end, path);
  if (!start.ok()) return start.error();
  if (*start < end) {
    if (auto ok = cut(*start, "an incomplete last line"); !ok.ok()) return ok;
  }
  while (end > 0) {
    // [line_begin, end - 1) is the last line, end - 1 its newline.
    auto line_begin = line_start_before(fd, end - 1, path);
    if (!line_begin.ok()) return line_begin.error();
    auto line = read_range(fd, *line_begin, end - 1, path);
    if (!line.ok()) return line.error();
    if (line->find('\0') != std::string::npos) {
      if (auto ok = cut(*line_begin, "a last line with unwritten (NUL) bytes"); !ok.ok()) return ok;
      continue;
    }
    const auto line_no = [&]() -> std::string {
      // Counting lines means reading the file; only worth it for the refusal.
      std::ifstream in(path, std::ios::binary);
      std::string l;
      std::uint64_t n = 0;
      off_t at = 0;
      while (at <= *line_begin && std::getline(in, l)) {
        ++n;
        at += static_cast<off_t>(l.size()) + 1;
      }
      return std::to_string(n);
    };
    auto rec = parse_record(*line);
    if (!rec.ok() || sha256_hex(rec->body) != rec->hash) {
      return make_error(
          path + ":" + line_no() + ": the last record is damaged (" +
          (rec.ok() ? std::string("its hash does not match its content") : rec.error().message) +
          "), which a crash does not do; check it with `drawbridge-enforcer verify-log`, then "
          "move the file aside (it is evidence) and the log continues after the rotated files");
    }
    head_ = std::string(rec->hash);
    next_seq_ = rec->seq + 1;
    last_time_ = rec->time;
    break;
  }
  size_ = static_cast<std::uint64_t>(end);
  return {};
}

// The live file is empty: a rotation just happened, or the file is new. The chain goes on from
// the last record of the newest rotated file; without one, this is the very first record.
Result<void> AuditLog::continue_from_rotated() {
  auto rotated = list_rotated(options_.path);
  if (!rotated.ok()) return rotated.error();
  for (auto it = rotated->rbegin(); it != rotated->rend(); ++it) {
    auto last = read_last_record(it->path);
    if (!last.ok()) {
      return make_error("cannot continue the audit chain: " + last.error().message +
                        "; check it with `drawbridge-enforcer verify-log --rotated " +
                        options_.path + "`");
    }
    if (!last->has_value()) continue;  // an empty file says nothing
    head_ = (*last)->hash;
    next_seq_ = (*last)->seq + 1;
    return {};
  }
  return {};
}

Result<void> AuditLog::write_line(const std::string& line) {
  const int fd = fd_.get();
  // An earlier write that failed halfway and could not be cut back: do it now, so that the record
  // starts on a line of its own.
  if (cut_short_) {
    if (::ftruncate(fd, static_cast<off_t>(size_)) != 0)
      return sys_error("cannot truncate", options_.path);
    cut_short_ = false;
  }
  // One write() for the whole line: O_APPEND puts it at the end in one piece, and a crash leaves
  // at most one incomplete line at the end, which open() recognises.
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      auto err = sys_error("cannot write to", options_.path);
      if (done > 0 && ::ftruncate(fd, static_cast<off_t>(size_)) != 0) cut_short_ = true;
      return err;
    }
    done += static_cast<std::size_t>(n);
  }
  size_ += line.size();
  dirty_ = true;
  return {};
}

Result<void> AuditLog::rotate(Instant now) {
  const std::string& live = options_.path;
  // The rotated file is final: it must be on disk before it is renamed.
  if (dirty_) {
    if (::fdatasync(fd_.get()) != 0) return sys_error("cannot sync", live);
    dirty_ = false;
  }
  std::string target = live + "." + compact_utc(now);
  for (int n = 1; fs::exists(fs::symlink_status(target)); ++n)
    target = live + "." + compact_utc(now) + "-" + std::to_string(n);
  if (::rename(live.c_str(), target.c_str()) != 0) return sys_error("cannot rename", live);
  Fd fresh(::open(live.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  if (fresh.get() < 0 || ::flock(fresh.get(), LOCK_EX | LOCK_NB) != 0) {
    auto err = sys_error("cannot start a new", live);
    if (fresh.get() >= 0) ::unlink(live.c_str());
    ::rename(target.c_str(), live.c_str());  // keep writing where we were
    return err;
  }
  fd_ = std::move(fresh);
  size_ = 0;
  last_time_.reset();
  sync_directory(live);
  return {};
}

// Deletes the oldest rotated files while their newest record is older than the retention. Stops
// at the first file to keep, so that what remains is one unbroken stretch of the chain.
void AuditLog::apply_retention(Instant now, std::vector<std::string>* notes) const {
  const auto note = [&](std::string text) {
    if (notes != nullptr) notes->push_back("audit log retention: " + std::move(text));
  };
  auto rotated = list_rotated(options_.path);
  if (!rotated.ok()) return note(rotated.error().message);
  // While the live file is empty, the newest rotated file holds the chain's head for a restart.
  if (size_ == 0 && !rotated->empty()) rotated->pop_back();
  const Instant cutoff = now - options_.retention;
  for (const auto& file : *rotated) {
    auto last = read_last_record(file.path);
    if (!last.ok()) {
      return note("kept " + file.path + " and everything newer: " + last.error().message);
    }
    if (last->has_value() && (*last)->time >= cutoff) return;
    std::error_code ec;
    fs::remove(file.path, ec);
    if (ec) return note("cannot delete " + file.path + ": " + ec.message());
    if (!last->has_value()) {
      note("deleted the empty " + file.path);
    } else {
      note("deleted " + file.path + " (records " +
           (file.first_seq ? "seq " + std::to_string(*file.first_seq) + ".." : "up to seq ") +
           std::to_string((*last)->seq) + ", the newest of " + format_instant((*last)->time) +
           ", older than " + std::to_string(options_.retention.count()) + " days)");
    }
  }
}

Result<void> AuditLog::append(std::string_view ecs_json, Instant now,
                              std::vector<std::string>* notes) {
  if (fd_.get() < 0) return make_error("audit log: not open");
  if (auto ok = check_event(ecs_json); !ok.ok()) return ok;
  std::string line = R"({"seq":)" + std::to_string(next_seq_) + R"(,"time":")" +
                     format_instant(now) + R"(","prev":")" + head_ + R"(","event":)";
  line.append(ecs_json);
  const std::string hash = sha256_hex(line);
  line += std::string(kHashKey) + hash + "\"}\n";

  // One file per UTC day, and none beyond max_bytes: a record that would cross either starts a
  // new file. An empty file is never rotated.
  bool rotated = false;
  if (size_ > 0) {
    const bool new_day = last_time_ && std::chrono::floor<std::chrono::days>(now) !=
                                           std::chrono::floor<std::chrono::days>(*last_time_);
    if (new_day || size_ + line.size() > options_.max_bytes) {
      if (auto ok = rotate(now); ok.ok()) {
        rotated = true;
      } else if (notes != nullptr) {
        notes->push_back("audit log: could not rotate (" + ok.error().message +
                         "); records go on into the current file");
      }
    }
  }
  if (auto ok = write_line(line); !ok.ok()) return ok;
  head_ = hash;
  const std::uint64_t seq = next_seq_++;
  last_time_ = now;
  if (rotated) apply_retention(now, notes);
  if (options_.fsync_each && ::fdatasync(fd_.get()) != 0) {
    return make_error("audit log: record seq " + std::to_string(seq) + " was written to " +
                      options_.path + " but could not be synced: " + std::strerror(errno));
  }
  if (options_.fsync_each) dirty_ = false;
  return {};
}

Result<void> AuditLog::flush() {
  if (fd_.get() < 0 || !dirty_) return {};
  if (::fdatasync(fd_.get()) != 0) return sys_error("cannot sync", options_.path);
  dirty_ = false;
  return {};
}

Result<std::vector<std::string>> audit_log_files(const std::string& path) {
  auto rotated = list_rotated(path);
  if (!rotated.ok()) return rotated.error();
  std::vector<std::string> files;
  for (const auto& f : *rotated) files.push_back(f.path);
  std::error_code ec;
  if (fs::exists(path, ec)) files.push_back(path);
  if (files.empty())
    return make_error("no audit file at " + path + " and no rotated ones beside it");
  return files;
}

Result<AuditVerifyResult> verify_audit_log(const std::vector<std::string>& files) {
  if (auto ok = init_sodium(); !ok.ok()) return ok.error();
  AuditVerifyResult r;
  bool first = true;
  for (std::size_t f = 0; f < files.size(); ++f) {
    const std::string& path = files[f];
    std::error_code ec;
    if (fs::is_directory(path, ec))
      return make_error(path +
                        " is a directory: give the audit files, or the live one with --rotated");
    std::ifstream in(path, std::ios::binary);
    if (!in) return sys_error("cannot open", path);
    std::string line;
    std::uint64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      const auto broken = [&](std::optional<std::uint64_t> seq, std::string why) {
        r.intact = false;
        r.broken_file = path;
        r.broken_line = line_no;
        r.broken_seq = seq;
        r.why = std::move(why);
        return r;
      };
      if (in.eof()) {
        return broken(leading_seq(line),
                      "the line does not end in a newline: a write that a crash interrupted (the "
                      "enforcer removes it when it next opens the log) or a cut copy");
      }
      auto rec = parse_record(line);
      if (!rec.ok()) return broken(leading_seq(line), rec.error().message);
      if (sha256_hex(rec->body) != rec->hash) {
        return broken(rec->seq,
                      "its hash does not match its content: the record was changed after it was "
                      "written");
      }
      if (first) {
        if (rec->prev == kAuditGenesis && rec->seq != 1) {
          return broken(rec->seq, "its prev is genesis, which only the record of seq 1 may have");
        }
        if (rec->seq == 1 && rec->prev != kAuditGenesis)
          return broken(rec->seq, "the record of seq 1 must start from genesis (64 zeros)");
        r.anchor = std::string(rec->prev);
        r.first_seq = rec->seq;
        first = false;
      } else if (rec->seq != r.last_seq + 1) {
        const bool file_start = line_no == 1 && f > 0;
        return broken(rec->seq,
                      "sequence " + std::to_string(rec->seq) + " where " +
                          std::to_string(r.last_seq + 1) + " was expected: " +
                          (file_start ? "the files are not given oldest first, or records "
                                        "between them are missing"
                                      : "a record before it was removed, or this one was "
                                        "duplicated or moved"));
      } else if (rec->prev != r.head) {
        return broken(rec->seq, "its prev does not match the hash of seq " +
                                    std::to_string(r.last_seq) +
                                    " before it: the chain was rewritten from here on");
      }
      r.head = std::string(rec->hash);
      r.head_time = rec->time;
      r.last_seq = rec->seq;
      ++r.records;
    }
    if (in.bad()) return sys_error("cannot read", path);
  }
  r.intact = true;
  return r;
}

std::string format_verify_result(const AuditVerifyResult& r, std::size_t file_count) {
  const auto anchor = [&]() {
    if (r.anchor == kAuditGenesis) return std::string("genesis (the first record ever written)");
    return r.anchor + " (the prev of seq " + std::to_string(r.first_seq) +
           ": earlier records were deleted by retention or not given; compare with an off-box "
           "copy)";
  };
  const auto head = [&]() {
    return r.head + " (seq " + std::to_string(r.last_seq) +
           (r.head_time ? ", " + format_instant(*r.head_time) : std::string()) + ")";
  };
  std::string out;
  if (r.intact) {
    if (r.records == 0) return "intact: no records in " + plural(file_count, "file") + "\n";
    out = "intact: " + plural(r.records, "record") + " (seq " + std::to_string(r.first_seq) + ".." +
          std::to_string(r.last_seq) + ") in " + plural(file_count, "file") + "\n";
    out += "anchor: " + anchor() + "\n";
    out += "head:   " + head() + "\n";
    return out;
  }
  out = r.broken_file + ":" + std::to_string(r.broken_line) + ": " +
        (r.broken_seq ? "record seq " + std::to_string(*r.broken_seq) : std::string("the record")) +
        " is broken: " + r.why + "\n";
  if (r.records == 0) {
    out += "no intact record before it\n";
  } else {
    out += "intact before it: " + plural(r.records, "record") + " (seq " +
           std::to_string(r.first_seq) + ".." + std::to_string(r.last_seq) + ")\n";
    out += "anchor: " + anchor() + "\n";
    out += "head:   " + head() + "\n";
  }
  return out;
}

}  // namespace drawbridge
