// The controller's fleet state in SQLite (embedded, survives restarts): the bundles published per
// site, which one is desired, and what each enforcer last said (applied serial and hashes, last
// seen, last acknowledgement and rejection), the controller's counters of bad input, and what
// each enforcer's SOC events upstream added up to, with the most recent events per site.
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

// What the SOC events of one enforcer (by key) added up to. Sequences are compared within one
// stream (the enforcer's spool); a new stream starts again from 0.
struct SocTally {
  std::string key;
  std::string site;
  std::string stream;
  std::uint64_t last_sequence = 0;         // highest stored; anything at or below it is a duplicate
  std::uint64_t events = 0;                // stored, every kind
  std::uint64_t violations = 0;            // kind violation (connection-denied)
  std::uint64_t denied_packets = 0;        // the violations' packet counts, summed
  std::uint64_t sessions = 0;              // provider sessions started
  std::uint64_t loss_events = 0;           // log-loss (NFLOG) and event-loss (spool) reports
  std::uint64_t duplicates = 0;            // received again and not counted
  std::optional<FleetTime> last_event_at;  // the event's own time
  std::optional<FleetTime> last_violation_at;
  std::string last_violation_source, last_violation_reason, last_violation_rule;
};

// One event as stored for `drawbridge-controller events`.
struct StoredEvent {
  std::uint64_t id = 0;  // insertion order
  std::string site;
  std::string key;
  std::uint64_t sequence = 0;
  FleetTime time{};         // the event's
  FleetTime received_at{};  // the controller's clock
  std::string kind;
  std::string action;
  std::string json;  // the enforcer's event, verbatim
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

  // Every enforcer's SOC tally (also of keys no longer configured: evidence is kept).
  Result<std::vector<SocTally>> soc_tallies() const;
  Result<void> save_soc_tally(const SocTally& tally);
  // Stores one event and prunes the site's oldest beyond `keep_per_site`.
  Result<void> add_event(const StoredEvent& event, std::size_t keep_per_site);
  // The newest `limit` events, newest first; of one site when `site` is not empty.
  Result<std::vector<StoredEvent>> recent_events(const std::string& site, std::size_t limit) const;

 private:
  explicit FleetStore(sqlite3* db);
  sqlite3* db_;
};

}  // namespace drawbridge
