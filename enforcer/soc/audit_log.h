// The local audit file: one JSON line per SOC event, each record carrying a SHA-256 hash chained
// to the one before it, so that changing, removing, reordering or inserting a record anywhere is
// detected by `drawbridge-enforcer verify-log` (docs/audit-log.md, which also says what the chain
// does not protect against). Rotation by size and by UTC day keeps the chain across files;
// retention deletes the oldest rotated files.
//
//   event_format (ECS JSON) → audit_log (this file) → disk
//
// A record is exactly these bytes, and its hash covers everything before `,"hash":`:
//   {"seq":N,"time":"<RFC 3339 UTC>","prev":"<64 hex>","event":<ECS JSON object>,"hash":"<64 hex>"}
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"

namespace drawbridge {

// The `prev` of the very first record: nothing came before it.
inline constexpr std::string_view kAuditGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct AuditLogOptions {
  std::string path;  // the live file, e.g. /var/log/drawbridge/audit.jsonl
  // Rotate before a record would take the live file beyond this (a record larger than it still
  // goes into a file of its own).
  std::uint64_t max_bytes = 64ull << 20;
  // Rotated files whose newest record is older than this are deleted (CISA: six months).
  std::chrono::days retention{180};
  // fdatasync after every record; when false the caller calls flush() on its own schedule, and a
  // crash loses what was appended since (the torn rest is repaired on the next open).
  bool fsync_each = true;
};

// One writer for one live file (an exclusive flock refuses a second process). Not thread-safe.
class AuditLog {
 public:
  // Opens (or creates) the live file and finds the chain's head: its last record, or, when it is
  // empty or missing, the last record of the newest rotated file, or genesis. An incomplete last
  // line that a crash left behind is truncated away; a complete line that is not an intact record
  // is damage, not a crash, and is refused (the file is evidence: move it aside, and the chain
  // continues from the rotated files). Applies retention. What it repaired or deleted is added to
  // `notes` as sentences for the caller to log (and to append as an audit event).
  static Result<AuditLog> open(const AuditLogOptions& options, Instant now,
                               std::vector<std::string>* notes = nullptr);

  // Appends one record around `ecs_json`, which must be one JSON object on one line; its bytes are
  // stored exactly as given. Rotates first when the UTC day of `now` differs from the day of the
  // live file's last record, or when the record would take the file beyond max_bytes. A failed
  // rotation does not lose the record: it goes into the current file and the failure is noted.
  Result<void> append(std::string_view ecs_json, Instant now,
                      std::vector<std::string>* notes = nullptr);

  // fdatasync of what was appended since the last sync (nothing to do with fsync_each).
  Result<void> flush();

  // The hash of the last record (kAuditGenesis before the first): what anchors the chain
  // elsewhere (off-box copies, audit events) so that a rewrite of the whole file is detected too.
  [[nodiscard]] const std::string& head_hash() const { return head_; }
  [[nodiscard]] std::uint64_t next_seq() const { return next_seq_; }
  [[nodiscard]] const std::string& path() const { return options_.path; }

  AuditLog(AuditLog&&) noexcept = default;
  AuditLog& operator=(AuditLog&&) noexcept = default;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  ~AuditLog();  // syncs what is not synced yet

 private:
  class Fd {
   public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    [[nodiscard]] int get() const { return fd_; }
    int release() {
      const int fd = fd_;
      fd_ = -1;
      return fd;
    }

   private:
    int fd_ = -1;
  };

  AuditLog() = default;
  Result<void> repair_tail(std::vector<std::string>* notes);
  Result<void> continue_from_rotated();
  Result<void> rotate(Instant now);
  Result<void> write_line(const std::string& line);
  void apply_retention(Instant now, std::vector<std::string>* notes) const;

  AuditLogOptions options_;
  Fd fd_;
  std::uint64_t size_ = 0;  // bytes of complete records in the live file
  std::uint64_t next_seq_ = 1;
  std::string head_{kAuditGenesis};
  std::optional<Instant> last_time_;  // of the live file's last record; nullopt when empty
  bool dirty_ = false;                // appended since the last fdatasync
  bool cut_short_ = false;            // a failed write left part of a line after size_
};

// The rotated files of a live audit file (`<path>.<yyyymmddTHHMMSSZ>[-N]` beside it), oldest
// first by the sequence number of their first record, then the live file itself when it exists:
// the order verify_audit_log wants.
Result<std::vector<std::string>> audit_log_files(const std::string& path);

struct AuditVerifyResult {
  bool intact = false;
  std::uint64_t records = 0;  // intact records before the first broken one (all when intact)
  std::uint64_t first_seq = 0, last_seq = 0;  // of those records (0 when there are none)
  // The first record's `prev`: kAuditGenesis when the set starts at the very first record;
  // otherwise the hash of a record that retention deleted (or that was not given), trusted as the
  // anchor: compare it with an off-box copy.
  std::string anchor;
  std::string head;  // hash of the last intact record
  std::optional<Instant> head_time;
  // The first broken record, when !intact.
  std::string broken_file;
  std::uint64_t broken_line = 0;            // 1-based, in broken_file
  std::optional<std::uint64_t> broken_seq;  // when the line says one
  std::string why;
};

// Checks the chain through `files` in the order given (oldest first), as one chain. An error
// only when a file cannot be read; a broken chain is a result.
Result<AuditVerifyResult> verify_audit_log(const std::vector<std::string>& files);

// What `verify-log` prints: "intact …" with the anchor and the head, or
// "<file>:<line>: record seq N is broken: <why>" followed by what was intact before it.
std::string format_verify_result(const AuditVerifyResult& result, std::size_t file_count);

}  // namespace drawbridge
