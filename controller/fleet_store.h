// The controller's fleet state in SQLite (embedded, survives restarts): the bundles published per
// site, which one is desired, and what each enforcer last said (applied serial and hashes, last
// seen, last acknowledgement and rejection), plus the controller's counters of bad input.
// One connection, used by the controller's single event-loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

struct sqlite3;

namespace drawbridge {

using FleetClock = std::chrono::system_clock;
using FleetTime = std::chrono::time_point<FleetClock, std::chrono::milliseconds>;

struct PublishedBundle {
  std::string site;
  std::uint64_t serial = 0;
  std::string hash;   // hex BLAKE2b-256 of bytes (common/wire_protocol.h bundle_hash)
  std::string bytes;  // exactly as published
  FleetTime published_at{};
};

// One enforcer as the controller knows it. `key` is its CURVE public key text ("curve:<Z85>"),
// the identity the ZAP handler admitted; `site` and `name` come from the controller's config.
struct EnforcerRecord {
  std::string key;
  std::string site;
  std::string name;
  std::optional<FleetTime> last_seen;           // last message of any kind
  std::optional<std::uint64_t> applied_serial;  // as reported in its last hello/heartbeat/ack
  std::string applied_bundle_hash;
  std::string ruleset_hash;
  std::string version;
  bool locked_down = false;
  bool expired = false;
  std::optional<FleetTime> last_ack_at;
  std::string last_ack;  // "applied" or "rejected"
  std::optional<std::uint64_t> last_ack_serial;
  std::optional<FleetTime> last_rejection_at;
  std::string last_rejection;        // the enforcer's reason, verbatim
  std::string rejected_bundle_hash;  // not pushed again to this enforcer
};

class FleetStore {
 public:
  // Opens (creating if needed) the database at `path`, with WAL journaling and a schema version
  // check: a database from a newer controller is refused rather than misread.
  static Result<FleetStore> open(const std::string& path);
  FleetStore(FleetStore&&) noexcept;
  FleetStore& operator=(FleetStore&&) noexcept;
  ~FleetStore();

  // Stores a bundle and makes it the site's desired one. Idempotent for identical bytes.
  Result<void> publish(const PublishedBundle& bundle);
  // The site's desired (most recently published) bundle.
  Result<std::optional<PublishedBundle>> desired(const std::string& site) const;

  // Makes sure an enforcer row exists for each configured enforcer (key → site, name) and
  // removes rows of keys no longer configured. Keeps what was recorded for the others.
  Result<void> sync_enforcers(const std::vector<EnforcerRecord>& configured);
  Result<std::optional<EnforcerRecord>> enforcer(const std::string& key) const;
  Result<std::vector<EnforcerRecord>> enforcers() const;  // ordered by site, then name
  // Replaces the stored row of `record.key` with `record` (all fields).
  Result<void> save_enforcer(const EnforcerRecord& record);

  // Counters of bad input and other events (name → value), kept across restarts.
  Result<void> count(const std::string& name, std::uint64_t by = 1);

  // Groups every write until end_batch() into one transaction: one WAL commit for a burst of
  // acknowledgements or pushes instead of one each. Not around publish() (its own transaction).
  Result<void> begin_batch();
  Result<void> end_batch();
  Result<std::map<std::string, std::uint64_t>> counters() const;

 private:
  explicit FleetStore(sqlite3* db);
  sqlite3* db_;
};

}  // namespace drawbridge
