#include "controller/fleet_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

namespace drawbridge {

namespace {

// 1: bundles, desired, enforcers, counters. 2: soc_tallies and events (SOC events upstream).
constexpr int kSchemaVersion = 2;
// Long enough to ride out a status command reading or a checkpoint, short enough that a stuck
// second controller on the same file shows up as an error instead of a hang.
constexpr int kBusyTimeoutMs = 5000;

// Rows are created by sync_enforcers with only key, site and name; every other column has a
// default that reads back as a default-constructed EnforcerRecord field (NULL for nullopt).
constexpr const char* kSchema = R"sql(
CREATE TABLE bundles (
  site TEXT NOT NULL,
  serial INTEGER NOT NULL,
  hash TEXT NOT NULL,
  bytes BLOB NOT NULL,
  published_at INTEGER NOT NULL,
  PRIMARY KEY (site, hash)
);
CREATE TABLE desired (
  site TEXT PRIMARY KEY NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE enforcers (
  key TEXT PRIMARY KEY NOT NULL,
  site TEXT NOT NULL,
  name TEXT NOT NULL,
  last_seen INTEGER,
  applied_serial INTEGER,
  applied_bundle_hash TEXT NOT NULL DEFAULT '',
  ruleset_hash TEXT NOT NULL DEFAULT '',
  version TEXT NOT NULL DEFAULT '',
  locked_down INTEGER NOT NULL DEFAULT 0,
  expired INTEGER NOT NULL DEFAULT 0,
  last_ack_at INTEGER,
  last_ack TEXT NOT NULL DEFAULT '',
  last_ack_serial INTEGER,
  last_rejection_at INTEGER,
  last_rejection TEXT NOT NULL DEFAULT '',
  rejected_bundle_hash TEXT NOT NULL DEFAULT ''
);
CREATE TABLE counters (
  name TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
);
)sql";

// Added in schema 2; a schema 1 database gets them on open.
constexpr const char* kSchema2 = R"sql(
CREATE TABLE soc_tallies (
  key TEXT PRIMARY KEY NOT NULL,
  site TEXT NOT NULL,
  stream TEXT NOT NULL,
  last_sequence INTEGER NOT NULL,
  events INTEGER NOT NULL,
  violations INTEGER NOT NULL,
  denied_packets INTEGER NOT NULL,
  sessions INTEGER NOT NULL,
  loss_events INTEGER NOT NULL,
  duplicates INTEGER NOT NULL,
  last_event_at INTEGER,
  last_violation_at INTEGER,
  last_violation_source TEXT NOT NULL,
  last_violation_reason TEXT NOT NULL,
  last_violation_rule TEXT NOT NULL
);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  site TEXT NOT NULL,
  key TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  time INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  action TEXT NOT NULL,
  event TEXT NOT NULL
);
-- Listing and pruning per site walk this index from the newest end.
CREATE INDEX events_by_site ON events (site, id);
)sql";

// The column list shared by the enforcer queries, in the order read_enforcer expects.
#define DRAWBRIDGE_ENFORCER_COLUMNS                                                          \
  "key, site, name, last_seen, applied_serial, applied_bundle_hash, ruleset_hash, version, " \
  "locked_down, expired, last_ack_at, last_ack, last_ack_serial, last_rejection_at, "        \
  "last_rejection, rejected_bundle_hash"

std::string file_of(sqlite3* db) {
  const char* name = db == nullptr ? nullptr : sqlite3_db_filename(db, "main");
  return name == nullptr ? std::string() : std::string(name);
}

// The message must be taken before anything else runs on the connection: a rollback or
// finalize replaces sqlite3_errmsg.
Error db_error(sqlite3* db, const std::string& doing) {
  return make_error(doing + " in fleet database " + file_of(db) + " failed: " + sqlite3_errmsg(db));
}

Error db_error(sqlite3* db, const std::string& doing, int rc) {
  return make_error(doing + " in fleet database " + file_of(db) + " failed: " + sqlite3_errstr(rc));
}

// SQLite's INTEGER is signed 64-bit: unsigned values are stored as their two's-complement bit
// pattern and cast back on reading, so the full uint64 range round-trips.
std::int64_t to_db(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}
std::int64_t to_db(FleetTime t) {
  return t.time_since_epoch().count();
}
FleetTime time_from_db(std::int64_t ms) {
  return FleetTime{std::chrono::milliseconds{ms}};
}

struct Finalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

// One prepared statement. Bind failures are remembered and reported by step(), so a call site
// binds everything and checks once.
class Statement {
 public:
  static Result<Statement> prepare(sqlite3* db, const char* sql, const std::string& doing) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
      sqlite3_finalize(raw);
      return db_error(db, doing);
    }
    return Statement(db, raw);
  }

  // The strings are bound without copying (SQLITE_STATIC): callers pass objects that outlive
  // the statement's execution.
  void text(int i, const std::string& s) {
    keep(sqlite3_bind_text64(stmt_.get(), i, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  void blob(int i, const std::string& s) {
    // data() is never null, so an empty string binds an empty blob, not NULL.
    keep(sqlite3_bind_blob64(stmt_.get(), i, s.data(), s.size(), SQLITE_STATIC));
  }
  void integer(int i, std::int64_t v) { keep(sqlite3_bind_int64(stmt_.get(), i, v)); }
  template <class T>
  void optional(int i, const std::optional<T>& v) {
    if (v) {
      integer(i, to_db(*v));
    } else {
      keep(sqlite3_bind_null(stmt_.get(), i));
    }
  }

  // True when a row is available, false when the statement is done.
  Result<bool> step(const std::string& doing) {
    if (bind_rc_ != SQLITE_OK) return db_error(db_, doing, bind_rc_);
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_error(db_, doing);
  }
  // For statements that return no rows. Leaves the statement ready to be bound and run again.
  Result<void> run(const std::string& doing) {
    auto r = step(doing);
    if (!r) return r.error();
    sqlite3_reset(stmt_.get());
    return {};
  }

  [[nodiscard]] bool is_null(int i) const {
    return sqlite3_column_type(stmt_.get(), i) == SQLITE_NULL;
  }
  [[nodiscard]] std::int64_t int64(int i) const { return sqlite3_column_int64(stmt_.get(), i); }
  [[nodiscard]] std::uint64_t uint64(int i) const { return static_cast<std::uint64_t>(int64(i)); }
  [[nodiscard]] std::string text(int i) const {
    // The pointer first, then the size: that order makes the size refer to the returned form.
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), i));
    const auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), i));
    return p == nullptr ? std::string() : std::string(p, n);
  }
  [[nodiscard]] std::string blob(int i) const {
    // An empty blob comes back as a null pointer.
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), i));
    const auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), i));
    return p == nullptr ? std::string() : std::string(p, n);
  }
  [[nodiscard]] std::optional<FleetTime> optional_time(int i) const {
    if (is_null(i)) return std::nullopt;
    return time_from_db(int64(i));
  }
  [[nodiscard]] std::optional<std::uint64_t> optional_uint64(int i) const {
    if (is_null(i)) return std::nullopt;
    return uint64(i);
  }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
  int bind_rc_ = SQLITE_OK;
};

// Fixed SQL without values (pragmas, schema, transaction control).
Result<void> exec(sqlite3* db, const char* sql, const std::string& doing) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return db_error(db, doing);
  return {};
}

// A write transaction that rolls back unless committed. IMMEDIATE takes the write lock up front:
// a deferred transaction that reads first and then writes can fail with SQLITE_BUSY at the
// upgrade without the busy timeout being applied, if another connection wrote in between.
class Transaction {
 public:
  static Result<Transaction> begin(sqlite3* db, const std::string& doing) {
    if (auto r = exec(db, "BEGIN IMMEDIATE", doing); !r) return r.error();
    return Transaction(db);
  }
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    // Some errors (disk full, I/O) already rolled the transaction back; autocommit tells.
    if (db_ != nullptr && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  Result<void> commit(const std::string& doing) {
    if (auto r = exec(db_, "COMMIT", doing); !r) return r;
    db_ = nullptr;
    return {};
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

Result<int> schema_version(sqlite3* db) {
  const std::string doing = "reading the schema version";
  auto s = Statement::prepare(db, "PRAGMA user_version", doing);
  if (!s) return s.error();
  auto row = s->step(doing);
  if (!row) return row.error();
  return *row ? static_cast<int>(s->int64(0)) : 0;
}

Error newer_schema(const std::string& path, int version) {
  return make_error("fleet database " + path + " was written by a newer controller (schema " +
                    std::to_string(version) + "); this controller knows schema " +
                    std::to_string(kSchemaVersion));
}

// Creates the schema in a database that has none. Runs in one transaction that re-reads the
// version, so two controllers starting on the same new file do not both create it.
Result<void> create_schema(sqlite3* db, const std::string& path) {
  const std::string doing = "creating the schema";
  auto tx = Transaction::begin(db, doing);
  if (!tx) return tx.error();
  auto version = schema_version(db);
  if (!version) return version.error();
  if (*version > kSchemaVersion) return newer_schema(path, *version);
  if (*version == kSchemaVersion) return {};
  if (*version == 1) {
    // A controller upgraded in place: its fleet state stays, the SOC tables are added.
    if (auto r = exec(db, kSchema2, doing); !r) return r;
    const std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
    if (auto r = exec(db, set_version.c_str(), doing); !r) return r;
    return tx->commit(doing);
  }

  // A version of 0 with tables in it is some other program's database: adding ours to it would
  // hide that the path is wrong.
  auto tables = Statement::prepare(db, "SELECT count(*) FROM sqlite_master", doing);
  if (!tables) return tables.error();
  auto row = tables->step(doing);
  if (!row) return row.error();
  if (*row && tables->int64(0) != 0) {
    return make_error("fleet database " + path +
                      " is not a drawbridge fleet database (it has tables but no schema version)");
  }

  if (auto r = exec(db, kSchema, doing); !r) return r;
  if (auto r = exec(db, kSchema2, doing); !r) return r;
  // PRAGMA takes no bound parameters; the value is this file's constant.
  const std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  if (auto r = exec(db, set_version.c_str(), doing); !r) return r;
  return tx->commit(doing);
}

EnforcerRecord read_enforcer(const Statement& s) {
  EnforcerRecord r;
  r.key = s.text(0);
  r.site = s.text(1);
  r.name = s.text(2);
  r.last_seen = s.optional_time(3);
  r.applied_serial = s.optional_uint64(4);
  r.applied_bundle_hash = s.text(5);
  r.ruleset_hash = s.text(6);
  r.version = s.text(7);
  r.locked_down = s.int64(8) != 0;
  r.expired = s.int64(9) != 0;
  r.last_ack_at = s.optional_time(10);
  r.last_ack = s.text(11);
  r.last_ack_serial = s.optional_uint64(12);
  r.last_rejection_at = s.optional_time(13);
  r.last_rejection = s.text(14);
  r.rejected_bundle_hash = s.text(15);
  return r;
}

}  // namespace

Result<FleetStore> FleetStore::open(const std::string& path) {
  // ":memory:" would silently give a database that forgets everything on restart.
  if (path.empty() || path == ":memory:") {
    return make_error("the fleet database must be a file path, not '" + path + "'");
  }

  // Created here rather than by SQLite so that it is 0600 from the start (it holds the fleet's
  // policies and state) without touching the process-wide umask. SQLite gives the -wal and -shm
  // files the database file's mode. An existing file keeps the mode its operator gave it.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return make_error("cannot open fleet database " + path + ": " + std::strerror(errno));
  }
  ::close(fd);

  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // From here the store owns the handle (SQLite returns one even when opening failed).
  FleetStore store(db);
  if (rc != SQLITE_OK) {
    return make_error("cannot open fleet database " + path + ": " +
                      (db == nullptr ? sqlite3_errstr(rc) : sqlite3_errmsg(db)));
  }
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  // Checked before anything writes to the file (switching to WAL does), so a newer controller's
  // database is left exactly as it was.
  auto version = schema_version(db);
  if (!version) return version.error();
  if (*version > kSchemaVersion) return newer_schema(path, *version);

  // WAL: readers (a status command) do not block the controller's writes, and a commit is one
  // append to the log instead of a rewrite of the changed pages plus a rollback journal.
  {
    const std::string doing = "switching to WAL journaling";
    auto wal = Statement::prepare(db, "PRAGMA journal_mode=WAL", doing);
    if (!wal) return wal.error();
    auto row = wal->step(doing);
    if (!row) return row.error();
    const std::string mode = *row ? wal->text(0) : std::string();
    if (mode != "wal") {
      return make_error("cannot use WAL journaling for fleet database " + path +
                        " (journal mode stays '" + mode + "')");
    }
  }
  // NORMAL: in WAL mode the database stays consistent after a power loss, but the last commits
  // may be lost. That is acceptable for what is written all the time — enforcer state on every
  // heartbeat (re-reported within seconds) and counters — where FULL would cost an fsync per
  // message. publish() switches to FULL for its own commit: an operator was told the bundle is
  // published and enforcers may already apply it, so it must not be forgotten.
  if (auto r = exec(db, "PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL"); !r) {
    return r.error();
  }

  if (*version < kSchemaVersion) {
    if (auto r = create_schema(db, path); !r) return r.error();
  }
  return store;
}

FleetStore::FleetStore(sqlite3* db) : db_(db) {}

FleetStore::FleetStore(FleetStore&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

FleetStore& FleetStore::operator=(FleetStore&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

// Every statement is finalized by its owner before a member function returns, so closing here
// releases everything (and checkpoints the WAL when this is the last connection).
FleetStore::~FleetStore() {
  sqlite3_close_v2(db_);
}

Result<void> FleetStore::publish(const PublishedBundle& bundle) {
  const std::string doing = "publishing bundle " + bundle.hash + " for site '" + bundle.site + "'";

  if (auto r = exec(db_, "PRAGMA synchronous=FULL", doing); !r) return r;
  // Declared before the transaction so that it runs after the transaction's rollback: SQLite
  // refuses to change synchronous inside a transaction. Should it fail, FULL stays: safe.
  struct RestoreNormal {
    sqlite3* db;
    ~RestoreNormal() { sqlite3_exec(db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr); }
  } restore{db_};

  auto tx = Transaction::begin(db_, doing);
  if (!tx) return tx.error();

  auto insert =
      Statement::prepare(db_,
                         "INSERT INTO bundles (site, serial, hash, bytes, published_at) "
                         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (site, hash) DO NOTHING",
                         doing);
  if (!insert) return insert.error();
  insert->text(1, bundle.site);
  insert->integer(2, to_db(bundle.serial));
  insert->text(3, bundle.hash);
  insert->blob(4, bundle.bytes);
  insert->integer(5, to_db(bundle.published_at));
  if (auto r = insert->run(doing); !r) return r;

  if (sqlite3_changes(db_) == 0) {
    // Already stored: republishing is idempotent, and the first publication time is kept. The
    // hash names the bytes, so different content under it is the caller's bug, not a republish.
    auto stored = Statement::prepare(
        db_, "SELECT serial, bytes FROM bundles WHERE site = ?1 AND hash = ?2", doing);
    if (!stored) return stored.error();
    stored->text(1, bundle.site);
    stored->text(2, bundle.hash);
    auto row = stored->step(doing);
    if (!row) return row.error();
    if (*row && (stored->uint64(0) != bundle.serial || stored->blob(1) != bundle.bytes)) {
      return make_error(doing + ": a different bundle with the same hash is already stored");
    }
  }

  auto desire = Statement::prepare(db_,
                                   "INSERT INTO desired (site, hash) VALUES (?1, ?2) "
                                   "ON CONFLICT (site) DO UPDATE SET hash = excluded.hash",
                                   doing);
  if (!desire) return desire.error();
  desire->text(1, bundle.site);
  desire->text(2, bundle.hash);
  if (auto r = desire->run(doing); !r) return r;

  return tx->commit(doing);
}

Result<std::optional<PublishedBundle>> FleetStore::desired(const std::string& site) const {
  const std::string doing = "reading the desired bundle of site '" + site + "'";
  auto s =
      Statement::prepare(db_,
                         "SELECT b.serial, b.hash, b.bytes, b.published_at "
                         "FROM desired d JOIN bundles b ON b.site = d.site AND b.hash = d.hash "
                         "WHERE d.site = ?1",
                         doing);
  if (!s) return s.error();
  s->text(1, site);
  auto row = s->step(doing);
  if (!row) return row.error();
  if (!*row) return std::optional<PublishedBundle>();
  PublishedBundle b;
  b.site = site;
  b.serial = s->uint64(0);
  b.hash = s->text(1);
  b.bytes = s->blob(2);
  b.published_at = time_from_db(s->int64(3));
  return std::optional<PublishedBundle>(std::move(b));
}

Result<void> FleetStore::sync_enforcers(const std::vector<EnforcerRecord>& configured) {
  const std::string doing = "updating the configured enforcers";
  std::set<std::string> keys;
  for (const auto& e : configured) {
    if (!keys.insert(e.key).second) {
      return make_error(doing + ": enforcer key " + e.key + " is listed twice");
    }
  }

  auto tx = Transaction::begin(db_, doing);
  if (!tx) return tx.error();

  auto upsert = Statement::prepare(db_,
                                   "INSERT INTO enforcers (key, site, name) VALUES (?1, ?2, ?3) "
                                   "ON CONFLICT (key) DO UPDATE SET site = excluded.site, "
                                   "name = excluded.name",
                                   doing);
  if (!upsert) return upsert.error();
  for (const auto& e : configured) {
    upsert->text(1, e.key);
    upsert->text(2, e.site);
    upsert->text(3, e.name);
    if (auto r = upsert->run(doing); !r) return r;
  }

  std::vector<std::string> stale;
  {
    auto all = Statement::prepare(db_, "SELECT key FROM enforcers", doing);
    if (!all) return all.error();
    for (;;) {
      auto row = all->step(doing);
      if (!row) return row.error();
      if (!*row) break;
      std::string key = all->text(0);
      if (!keys.contains(key)) stale.push_back(std::move(key));
    }
  }
  auto remove = Statement::prepare(db_, "DELETE FROM enforcers WHERE key = ?1", doing);
  if (!remove) return remove.error();
  for (const auto& key : stale) {
    remove->text(1, key);
    if (auto r = remove->run(doing); !r) return r;
  }

  return tx->commit(doing);
}

Result<std::optional<EnforcerRecord>> FleetStore::enforcer(const std::string& key) const {
  const std::string doing = "reading enforcer " + key;
  auto s = Statement::prepare(
      db_, "SELECT " DRAWBRIDGE_ENFORCER_COLUMNS " FROM enforcers WHERE key = ?1", doing);
  if (!s) return s.error();
  s->text(1, key);
  auto row = s->step(doing);
  if (!row) return row.error();
  if (!*row) return std::optional<EnforcerRecord>();
  return std::optional<EnforcerRecord>(read_enforcer(*s));
}

Result<std::vector<EnforcerRecord>> FleetStore::enforcers() const {
  const std::string doing = "reading the enforcers";
  // The key breaks ties so that the order is the same on every call.
  auto s = Statement::prepare(
      db_, "SELECT " DRAWBRIDGE_ENFORCER_COLUMNS " FROM enforcers ORDER BY site, name, key", doing);
  if (!s) return s.error();
  std::vector<EnforcerRecord> out;
  for (;;) {
    auto row = s->step(doing);
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(read_enforcer(*s));
  }
  return out;
}

Result<void> FleetStore::save_enforcer(const EnforcerRecord& record) {
  const std::string doing = "saving enforcer " + record.key;
  // A key that has no row yet gets one: in insecure mode the server records enforcers by the
  // site they claim, which are not in the configuration. The next sync_enforcers removes them.
  auto s = Statement::prepare(
      db_,
      "INSERT OR REPLACE INTO enforcers (" DRAWBRIDGE_ENFORCER_COLUMNS
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
      doing);
  if (!s) return s.error();
  s->text(1, record.key);
  s->text(2, record.site);
  s->text(3, record.name);
  s->optional(4, record.last_seen);
  s->optional(5, record.applied_serial);
  s->text(6, record.applied_bundle_hash);
  s->text(7, record.ruleset_hash);
  s->text(8, record.version);
  s->integer(9, record.locked_down ? 1 : 0);
  s->integer(10, record.expired ? 1 : 0);
  s->optional(11, record.last_ack_at);
  s->text(12, record.last_ack);
  s->optional(13, record.last_ack_serial);
  s->optional(14, record.last_rejection_at);
  s->text(15, record.last_rejection);
  s->text(16, record.rejected_bundle_hash);
  return s->run(doing);
}

Result<void> FleetStore::count(const std::string& name, std::uint64_t by) {
  const std::string doing = "counting " + name;
  auto s = Statement::prepare(db_,
                              "INSERT INTO counters (name, value) VALUES (?1, ?2) "
                              "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                              doing);
  if (!s) return s.error();
  s->text(1, name);
  s->integer(2, to_db(by));
  return s->run(doing);
}

Result<void> FleetStore::begin_batch() {
  return exec(db_, "BEGIN IMMEDIATE", "starting a batch of writes");
}

Result<void> FleetStore::end_batch() {
  auto committed = exec(db_, "COMMIT", "committing a batch of writes");
  // A failed COMMIT leaves the transaction open; roll it back so the next write is not in it.
  if (!committed.ok()) (void)exec(db_, "ROLLBACK", "rolling back a failed batch");
  return committed;
}

Result<std::map<std::string, std::uint64_t>> FleetStore::counters() const {
  const std::string doing = "reading the counters";
  auto s = Statement::prepare(db_, "SELECT name, value FROM counters", doing);
  if (!s) return s.error();
  std::map<std::string, std::uint64_t> out;
  for (;;) {
    auto row = s->step(doing);
    if (!row) return row.error();
    if (!*row) break;
    out.emplace(s->text(0), s->uint64(1));
  }
  return out;
}

#define DRAWBRIDGE_SOC_COLUMNS                                                                    \
  "key, site, stream, last_sequence, events, violations, denied_packets, sessions, loss_events, " \
  "duplicates, last_event_at, last_violation_at, last_violation_source, last_violation_reason, "  \
  "last_violation_rule"

Result<std::vector<SocTally>> FleetStore::soc_tallies() const {
  const std::string doing = "reading the SOC tallies";
  auto s = Statement::prepare(db_, "SELECT " DRAWBRIDGE_SOC_COLUMNS " FROM soc_tallies", doing);
  if (!s) return s.error();
  std::vector<SocTally> out;
  for (;;) {
    auto row = s->step(doing);
    if (!row) return row.error();
    if (!*row) break;
    SocTally t;
    t.key = s->text(0);
    t.site = s->text(1);
    t.stream = s->text(2);
    t.last_sequence = s->uint64(3);
    t.events = s->uint64(4);
    t.violations = s->uint64(5);
    t.denied_packets = s->uint64(6);
    t.sessions = s->uint64(7);
    t.loss_events = s->uint64(8);
    t.duplicates = s->uint64(9);
    t.last_event_at = s->optional_time(10);
    t.last_violation_at = s->optional_time(11);
    t.last_violation_source = s->text(12);
    t.last_violation_reason = s->text(13);
    t.last_violation_rule = s->text(14);
    out.push_back(std::move(t));
  }
  return out;
}

Result<void> FleetStore::save_soc_tally(const SocTally& t) {
  const std::string doing = "saving the SOC tally of " + t.key;
  auto s = Statement::prepare(db_,
                              "INSERT OR REPLACE INTO soc_tallies (" DRAWBRIDGE_SOC_COLUMNS
                              ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                              "?14, ?15)",
                              doing);
  if (!s) return s.error();
  s->text(1, t.key);
  s->text(2, t.site);
  s->text(3, t.stream);
  s->integer(4, to_db(t.last_sequence));
  s->integer(5, to_db(t.events));
  s->integer(6, to_db(t.violations));
  s->integer(7, to_db(t.denied_packets));
  s->integer(8, to_db(t.sessions));
  s->integer(9, to_db(t.loss_events));
  s->integer(10, to_db(t.duplicates));
  s->optional(11, t.last_event_at);
  s->optional(12, t.last_violation_at);
  s->text(13, t.last_violation_source);
  s->text(14, t.last_violation_reason);
  s->text(15, t.last_violation_rule);
  return s->run(doing);
}

Result<void> FleetStore::add_event(const StoredEvent& e, std::size_t keep_per_site) {
  const std::string doing = "storing event " + std::to_string(e.sequence) + " of " + e.key;
  auto insert = Statement::prepare(db_,
                                   "INSERT INTO events (site, key, sequence, time, received_at, "
                                   "kind, action, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                   doing);
  if (!insert) return insert.error();
  insert->text(1, e.site);
  insert->text(2, e.key);
  insert->integer(3, to_db(e.sequence));
  insert->integer(4, to_db(e.time));
  insert->integer(5, to_db(e.received_at));
  insert->text(6, e.kind);
  insert->text(7, e.action);
  insert->text(8, e.json);
  if (auto r = insert->run(doing); !r) return r;
  // The index gives the cut-off id in O(log n): pruning on every insert stays cheap.
  auto prune = Statement::prepare(db_,
                                  "DELETE FROM events WHERE site = ?1 AND id <= (SELECT id FROM "
                                  "events WHERE site = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                                  doing);
  if (!prune) return prune.error();
  prune->text(1, e.site);
  prune->integer(2, static_cast<std::int64_t>(keep_per_site));
  return prune->run(doing);
}

Result<std::vector<StoredEvent>> FleetStore::recent_events(const std::string& site,
                                                           std::size_t limit) const {
  const std::string doing = "reading the recent events";
  auto s = Statement::prepare(
      db_,
      site.empty() ? "SELECT id, site, key, sequence, time, received_at, kind, action, event FROM "
                     "events WHERE ?1 = ?1 ORDER BY id DESC LIMIT ?2"
                   : "SELECT id, site, key, sequence, time, received_at, kind, action, event FROM "
                     "events WHERE site = ?1 ORDER BY id DESC LIMIT ?2",
      doing);
  if (!s) return s.error();
  s->text(1, site);
  s->integer(2, static_cast<std::int64_t>(limit));
  std::vector<StoredEvent> out;
  for (;;) {
    auto row = s->step(doing);
    if (!row) return row.error();
    if (!*row) break;
    StoredEvent e;
    e.id = s->uint64(0);
    e.site = s->text(1);
    e.key = s->text(2);
    e.sequence = s->uint64(3);
    e.time = time_from_db(s->int64(4));
    e.received_at = time_from_db(s->int64(5));
    e.kind = s->text(6);
    e.action = s->text(7);
    e.json = s->text(8);
    out.push_back(std::move(e));
  }
  return out;
}

#undef DRAWBRIDGE_SOC_COLUMNS
#undef DRAWBRIDGE_ENFORCER_COLUMNS

}  // namespace drawbridge
