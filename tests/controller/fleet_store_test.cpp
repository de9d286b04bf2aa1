// The fleet store against a real SQLite file in a temporary directory.
#include "controller/fleet_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "controller/soc_tally.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;
using namespace std::string_literals;

FleetTime at(std::int64_t ms) {
  return FleetTime{milliseconds{ms}};
}

class FleetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-fleet-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    // The read-only test may leave the directory unwritable.
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }

  [[nodiscard]] std::string path() const { return (dir_ / "fleet.db").string(); }

  static FleetStore open_ok(const std::string& p) {
    auto store = FleetStore::open(p);
    EXPECT_TRUE(store.ok()) << store.error().str();
    return std::move(store).value();  // throws on error: gtest fails the test
  }
  [[nodiscard]] FleetStore open_ok() const { return open_ok(path()); }

  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }

  // Runs fixed SQL on the file directly, as another program (or a future controller) would.
  static void raw_sql(const std::string& p, const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(p.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  static PublishedBundle bundle(const std::string& site, std::uint64_t serial,
                                const std::string& bytes, std::int64_t ms = 1'700'000'000'000) {
    PublishedBundle b;
    b.site = site;
    b.serial = serial;
    b.hash = "hash-" + site + "-" + std::to_string(serial) + "-" + std::to_string(bytes.size());
    b.bytes = bytes;
    b.published_at = at(ms);
    return b;
  }

  static EnforcerRecord configured(const std::string& key, const std::string& site,
                                   const std::string& name) {
    EnforcerRecord r;
    r.key = key;
    r.site = site;
    r.name = name;
    return r;
  }

  // Every optional set, every string non-empty, every flag true; values at the edges of their
  // types where the storage could bend them.
  static EnforcerRecord full(const std::string& key, const std::string& site,
                             const std::string& name) {
    EnforcerRecord r = configured(key, site, name);
    r.last_seen = at(1'767'225'600'123);
    r.applied_serial = std::numeric_limits<std::uint64_t>::max();
    r.applied_bundle_hash = "ab01";
    r.ruleset_hash = "cd02";
    r.version = "0.1.0";
    r.locked_down = true;
    r.expired = true;
    r.last_ack_at = at(-1);  // before the epoch: times are signed
    r.last_ack = "rejected";
    r.last_ack_serial = 0;  // zero is a value, not "none"
    r.last_rejection_at = at(1'767'225'600'999);
    r.last_rejection = "ceiling: 'tcp/22' not allowed\n\0\xff end"s;
    r.rejected_bundle_hash = "ef03";
    return r;
  }

  static void expect_same(const EnforcerRecord& got, const EnforcerRecord& want) {
    EXPECT_EQ(got.key, want.key);
    EXPECT_EQ(got.site, want.site);
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.last_seen, want.last_seen);
    EXPECT_EQ(got.applied_serial, want.applied_serial);
    EXPECT_EQ(got.applied_bundle_hash, want.applied_bundle_hash);
    EXPECT_EQ(got.ruleset_hash, want.ruleset_hash);
    EXPECT_EQ(got.version, want.version);
    EXPECT_EQ(got.locked_down, want.locked_down);
    EXPECT_EQ(got.expired, want.expired);
    EXPECT_EQ(got.last_ack_at, want.last_ack_at);
    EXPECT_EQ(got.last_ack, want.last_ack);
    EXPECT_EQ(got.last_ack_serial, want.last_ack_serial);
    EXPECT_EQ(got.last_rejection_at, want.last_rejection_at);
    EXPECT_EQ(got.last_rejection, want.last_rejection);
    EXPECT_EQ(got.rejected_bundle_hash, want.rejected_bundle_hash);
  }

  static void expect_same(const PublishedBundle& got, const PublishedBundle& want) {
    EXPECT_EQ(got.site, want.site);
    EXPECT_EQ(got.serial, want.serial);
    EXPECT_EQ(got.hash, want.hash);
    EXPECT_EQ(got.bytes, want.bytes);
    EXPECT_EQ(got.published_at, want.published_at);
  }

  static std::vector<std::string> keys_of(const std::vector<EnforcerRecord>& records) {
    std::vector<std::string> keys;
    for (const auto& r : records) keys.push_back(r.key);
    return keys;
  }

  fs::path dir_;
};

// ---- bundles

TEST_F(FleetStoreTest, PublishAndDesiredRoundTripBinaryBytes) {
  auto store = open_ok();
  const auto none = store.desired("dental3");
  ASSERT_TRUE(none.ok()) << none.error().str();
  EXPECT_FALSE(none->has_value());

  std::string bytes = "drawbridge-bundle 1\n";
  bytes += "\0\0\x01\xff\x80 signature\0tail"s;
  ASSERT_EQ(bytes.size(), 40u);
  const auto b = bundle("dental3", std::numeric_limits<std::uint64_t>::max(), bytes);
  const auto published = store.publish(b);
  ASSERT_TRUE(published.ok()) << published.error().str();

  const auto got = store.desired("dental3");
  ASSERT_TRUE(got.ok()) << got.error().str();
  ASSERT_TRUE(got->has_value());
  expect_same(**got, b);
  const auto other = store.desired("dental4");
  ASSERT_TRUE(other.ok()) << other.error().str();
  EXPECT_FALSE(other->has_value());
}

TEST_F(FleetStoreTest, EmptyBundleBytesStayEmptyNotNull) {
  auto store = open_ok();
  const auto b = bundle("dental3", 1, "");
  ASSERT_TRUE(store.publish(b).ok());
  const auto got = store.desired("dental3");
  ASSERT_TRUE(got.ok()) << got.error().str();
  ASSERT_TRUE(got->has_value());
  expect_same(**got, b);
}

TEST_F(FleetStoreTest, SecondPublishReplacesDesired) {
  auto store = open_ok();
  const auto first = bundle("dental3", 41, "policy 41", 1000);
  const auto second = bundle("dental3", 42, "policy 42!", 2000);
  const auto elsewhere = bundle("dental4", 7, "other site", 1500);
  ASSERT_TRUE(store.publish(first).ok());
  ASSERT_TRUE(store.publish(elsewhere).ok());
  ASSERT_TRUE(store.publish(second).ok());

  const auto got = store.desired("dental3");
  ASSERT_TRUE(got.ok()) << got.error().str();
  ASSERT_TRUE(got->has_value());
  expect_same(**got, second);
  // Per site: the other site's desired bundle is untouched.
  const auto other = store.desired("dental4");
  ASSERT_TRUE(other.ok() && other->has_value());
  expect_same(**other, elsewhere);

  // Publishing an earlier bundle again makes it desired again (the store does not judge serials).
  ASSERT_TRUE(store.publish(first).ok());
  const auto back = store.desired("dental3");
  ASSERT_TRUE(back.ok() && back->has_value());
  expect_same(**back, first);
}

TEST_F(FleetStoreTest, IdenticalPublishIsIdempotent) {
  auto store = open_ok();
  const auto b = bundle("dental3", 42, "policy 42", 1000);
  ASSERT_TRUE(store.publish(b).ok());
  auto again = b;
  again.published_at = at(9000);
  const auto r = store.publish(again);
  ASSERT_TRUE(r.ok()) << r.error().str();

  const auto got = store.desired("dental3");
  ASSERT_TRUE(got.ok() && got->has_value());
  expect_same(**got, b);  // still one bundle, first publication time kept
}

TEST_F(FleetStoreTest, DifferentBytesUnderAStoredHashAreRefused) {
  auto store = open_ok();
  const auto b = bundle("dental3", 42, "policy 42", 1000);
  ASSERT_TRUE(store.publish(b).ok());
  auto forged = b;
  forged.bytes = "something else";
  const auto r = store.publish(forged);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("a different bundle with the same hash"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find(b.hash), std::string::npos) << r.error().message;

  const auto got = store.desired("dental3");
  ASSERT_TRUE(got.ok() && got->has_value());
  expect_same(**got, b);
}

// ---- enforcers

TEST_F(FleetStoreTest, EnforcerRecordRoundTripsEveryField) {
  auto store = open_ok();
  ASSERT_TRUE(store
                  .sync_enforcers({configured("curve:set", "dental3", "gw1"),
                                   configured("curve:unset", "dental3", "gw2")})
                  .ok());

  // Freshly configured: only key, site and name; the rest is default (nullopt, empty, false).
  const auto fresh = store.enforcer("curve:unset");
  ASSERT_TRUE(fresh.ok()) << fresh.error().str();
  ASSERT_TRUE(fresh->has_value());
  expect_same(**fresh, configured("curve:unset", "dental3", "gw2"));

  const auto full_record = full("curve:set", "dental3", "gw1");
  const auto saved = store.save_enforcer(full_record);
  ASSERT_TRUE(saved.ok()) << saved.error().str();
  const auto got = store.enforcer("curve:set");
  ASSERT_TRUE(got.ok()) << got.error().str();
  ASSERT_TRUE(got->has_value());
  expect_same(**got, full_record);

  // Saving all fields also clears them: set values go back to nullopt and empty.
  const auto cleared = configured("curve:set", "dental3", "gw1");
  ASSERT_TRUE(store.save_enforcer(cleared).ok());
  const auto again = store.enforcer("curve:set");
  ASSERT_TRUE(again.ok() && again->has_value());
  expect_same(**again, cleared);

  const auto missing = store.enforcer("curve:nobody");
  ASSERT_TRUE(missing.ok()) << missing.error().str();
  EXPECT_FALSE(missing->has_value());
}

// The insecure mode's enforcers ("insecure:<site>") are saved without being configured.
TEST_F(FleetStoreTest, SavingAnUnconfiguredEnforcerStoresItUntilTheNextSync) {
  auto store = open_ok();
  ASSERT_TRUE(store.sync_enforcers({configured("curve:a", "dental3", "gw1")}).ok());
  const auto stranger = full("insecure:dental4", "dental4", "dental4");
  const auto r = store.save_enforcer(stranger);
  ASSERT_TRUE(r.ok()) << r.error().str();
  const auto got = store.enforcer("insecure:dental4");
  ASSERT_TRUE(got.ok() && got->has_value());
  expect_same(**got, stranger);

  ASSERT_TRUE(store.sync_enforcers({configured("curve:a", "dental3", "gw1")}).ok());
  const auto all = store.enforcers();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(keys_of(*all), (std::vector<std::string>{"curve:a"}));
}

TEST_F(FleetStoreTest, SyncEnforcersAddsKeepsAndRemoves) {
  auto store = open_ok();
  ASSERT_TRUE(store
                  .sync_enforcers({configured("curve:a", "clinic-west", "gw1"),
                                   configured("curve:b", "clinic-east", "gw2"),
                                   configured("curve:c", "clinic-east", "gw1")})
                  .ok());
  auto a = full("curve:a", "clinic-west", "gw1");
  ASSERT_TRUE(store.save_enforcer(a).ok());

  // a stays (renamed in the configuration), b goes, c stays untouched, d is new.
  const auto r = store.sync_enforcers({configured("curve:a", "clinic-north", "gw7"),
                                       configured("curve:c", "clinic-east", "gw1"),
                                       configured("curve:d", "clinic-east", "gw0")});
  ASSERT_TRUE(r.ok()) << r.error().str();

  const auto all = store.enforcers();
  ASSERT_TRUE(all.ok()) << all.error().str();
  // Ordered by site, then name.
  EXPECT_EQ(keys_of(*all), (std::vector<std::string>{"curve:d", "curve:c", "curve:a"}));

  a.site = "clinic-north";
  a.name = "gw7";
  const auto kept = store.enforcer("curve:a");
  ASSERT_TRUE(kept.ok() && kept->has_value());
  expect_same(**kept, a);  // what was recorded survives; site and name follow the configuration
  const auto gone = store.enforcer("curve:b");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  const auto added = store.enforcer("curve:d");
  ASSERT_TRUE(added.ok() && added->has_value());
  expect_same(**added, configured("curve:d", "clinic-east", "gw0"));

  // An empty configuration removes everyone.
  ASSERT_TRUE(store.sync_enforcers({}).ok());
  const auto none = store.enforcers();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(FleetStoreTest, SyncRefusesAKeyListedTwiceAndChangesNothing) {
  auto store = open_ok();
  ASSERT_TRUE(store.sync_enforcers({configured("curve:a", "s", "gw1")}).ok());
  const auto r =
      store.sync_enforcers({configured("curve:b", "s", "gw1"), configured("curve:b", "s", "gw2")});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("curve:b is listed twice"), std::string::npos)
      << r.error().message;
  const auto all = store.enforcers();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(keys_of(*all), (std::vector<std::string>{"curve:a"}));
}

// ---- counters

TEST_F(FleetStoreTest, CountersAccumulate) {
  auto store = open_ok();
  const auto empty = store.counters();
  ASSERT_TRUE(empty.ok()) << empty.error().str();
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store.count("malformed_message").ok());
  ASSERT_TRUE(store.count("malformed_message", 4).ok());
  ASSERT_TRUE(store.count("unknown_type").ok());
  ASSERT_TRUE(store.count("zero", 0).ok());
  const auto got = store.counters();
  ASSERT_TRUE(got.ok()) << got.error().str();
  EXPECT_EQ(*got, (std::map<std::string, std::uint64_t>{
                      {"malformed_message", 5}, {"unknown_type", 1}, {"zero", 0}}));
}

// ---- the file

TEST_F(FleetStoreTest, StateSurvivesClosingAndReopening) {
  const auto b = bundle("dental3", 42, "bytes\0kept"s);
  const auto record = full("curve:a", "dental3", "gw1");
  {
    auto store = open_ok();
    ASSERT_TRUE(store.publish(b).ok());
    ASSERT_TRUE(store.sync_enforcers({configured("curve:a", "dental3", "gw1")}).ok());
    ASSERT_TRUE(store.save_enforcer(record).ok());
    ASSERT_TRUE(store.count("bad_ack", 3).ok());
  }
  auto store = open_ok();
  const auto got = store.desired("dental3");
  ASSERT_TRUE(got.ok() && got->has_value());
  expect_same(**got, b);
  const auto all = store.enforcers();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  expect_same(all->front(), record);
  const auto counts = store.counters();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<std::string, std::uint64_t>{{"bad_ack", 3}}));
  ASSERT_TRUE(store.count("bad_ack").ok());
  EXPECT_EQ(store.counters()->at("bad_ack"), 4u);
}

TEST_F(FleetStoreTest, MovedStoreKeepsWorking) {
  auto first = open_ok();
  ASSERT_TRUE(first.count("x").ok());
  FleetStore second = std::move(first);
  ASSERT_TRUE(second.count("x").ok());
  auto third = open_ok((dir_ / "other.db").string());
  third = std::move(second);  // closes other.db, takes fleet.db
  EXPECT_EQ(third.counters()->at("x"), 2u);
}

TEST_F(FleetStoreTest, NewerSchemaIsRefusedAndLeftAlone) {
  raw_sql(path(), "PRAGMA user_version = 99; CREATE TABLE future (x);");
  const auto r = FleetStore::open(path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "fleet database " + path() +
                                   " was written by a newer controller (schema 99); this "
                                   "controller knows schema 2");
  // Not switched to WAL: the file is as the newer controller left it.
  EXPECT_FALSE(fs::exists(path() + "-wal"));
}

TEST_F(FleetStoreTest, AnotherProgramsDatabaseIsRefused) {
  raw_sql(path(), "CREATE TABLE bundles (whatever);");
  const auto r = FleetStore::open(path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("is not a drawbridge fleet database"), std::string::npos)
      << r.error().message;
}

TEST_F(FleetStoreTest, AFileThatIsNotADatabaseIsAnError) {
  std::ofstream(path(), std::ios::binary) << std::string(4096, 'x');
  const auto r = FleetStore::open(path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(path()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("file is not a database"), std::string::npos)
      << r.error().message;
}

TEST_F(FleetStoreTest, UnusablePathsAreErrorsNotCrashes) {
  std::ofstream(dir_ / "plain-file") << "x";
  for (const std::string& p :
       {(dir_ / "missing" / "fleet.db").string(), (dir_ / "plain-file" / "fleet.db").string(),
        dir_.string(), std::string(), std::string(":memory:")}) {
    const auto r = FleetStore::open(p);
    ASSERT_FALSE(r.ok()) << p;
    EXPECT_FALSE(r.error().message.empty()) << p;
    if (!p.empty() && p != ":memory:") {
      EXPECT_NE(r.error().message.find(p), std::string::npos) << r.error().message;
    }
  }
}

TEST_F(FleetStoreTest, ReadOnlyDirectoryIsAnError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories";
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  const auto r = FleetStore::open(path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("Permission denied"), std::string::npos) << r.error().message;
}

TEST_F(FleetStoreTest, DatabaseFilesHaveMode0600) {
  auto store = open_ok();
  ASSERT_TRUE(store.count("x").ok());  // a write, so the WAL and its index exist
  EXPECT_EQ(mode_of(path()), 0600u);
  ASSERT_TRUE(fs::exists(path() + "-wal"));
  EXPECT_EQ(mode_of(path() + "-wal"), 0600u);
  ASSERT_TRUE(fs::exists(path() + "-shm"));
  EXPECT_EQ(mode_of(path() + "-shm"), 0600u);
}

// --- SOC events upstream --------------------------------------------------------------------

UpstreamEvent upstream(std::uint64_t seq, const std::string& kind, std::uint64_t packets = 0,
                       const std::string& action = "") {
  UpstreamEvent e;
  e.sequence = seq;
  e.time_ms = 1'767'225'600'000 + static_cast<std::int64_t>(seq) * 1000;
  e.kind = kind;
  e.action = action;
  e.packets = packets;
  if (kind == "violation") {
    e.action = "connection-denied";
    e.source = "198.51.100." + std::to_string(seq % 250);
    e.reason = "unapproved-source";
    e.rule = "link/rdp";
  }
  e.json = R"({"seq":)" + std::to_string(seq) + R"(,"ts":1,"kind":")" + kind + R"("})";
  return e;
}

TEST(SocTally, CountsViolationsPacketsSessionsAndLossOnce) {
  SocTally t;
  EXPECT_TRUE(tally_event(t, "s1", upstream(1, "audit", 0, "enforcer-started")));
  EXPECT_TRUE(tally_event(t, "s1", upstream(2, "violation", 3)));
  EXPECT_TRUE(tally_event(t, "s1", upstream(3, "session_start", 1, "provider-session-started")));
  EXPECT_TRUE(tally_event(t, "s1", upstream(4, "audit", 17, "log-loss")));
  EXPECT_TRUE(tally_event(t, "s1", upstream(5, "audit", 0, "event-loss")));
  EXPECT_TRUE(tally_event(t, "s1", upstream(7, "violation", 1000)));  // a gap is fine
  // Sent again after a lost acknowledgement: not counted twice.
  EXPECT_FALSE(tally_event(t, "s1", upstream(7, "violation", 1000)));
  EXPECT_FALSE(tally_event(t, "s1", upstream(2, "violation", 3)));
  EXPECT_EQ(t.last_sequence, 7u);
  EXPECT_EQ(t.events, 6u);
  EXPECT_EQ(t.violations, 2u);
  EXPECT_EQ(t.denied_packets, 1003u) << "loss reports' packets are not denials";
  EXPECT_EQ(t.sessions, 1u);
  EXPECT_EQ(t.loss_events, 2u);
  EXPECT_EQ(t.duplicates, 2u);
  EXPECT_EQ(t.last_violation_source, "198.51.100.7");
  EXPECT_EQ(t.last_violation_reason, "unapproved-source");
  EXPECT_EQ(t.last_violation_rule, "link/rdp");
  EXPECT_EQ(t.last_violation_at, at(1'767'225'607'000));
}

TEST(SocTally, ANewStreamStartsTheSequenceAgain) {
  SocTally t;
  EXPECT_TRUE(tally_event(t, "old", upstream(500, "violation", 1)));
  // The enforcer's spool was replaced: its sequence restarts at 1 under a new stream name.
  EXPECT_TRUE(tally_event(t, "new", upstream(1, "violation", 1)));
  EXPECT_EQ(t.stream, "new");
  EXPECT_EQ(t.last_sequence, 1u);
  EXPECT_EQ(t.violations, 2u) << "counts add up across streams";
}

TEST_F(FleetStoreTest, SocTallyRoundTripsAndSurvivesReopen) {
  SocTally t;
  t.key = "curve:k";
  t.site = "a";
  t.stream = "0123456789abcdef0123456789abcdef";
  t.last_sequence = std::numeric_limits<std::uint64_t>::max();
  t.events = 9;
  t.violations = 4;
  t.denied_packets = 1234;
  t.sessions = 2;
  t.loss_events = 1;
  t.duplicates = 3;
  t.last_event_at = at(5);
  t.last_violation_at = at(4);
  t.last_violation_source = "198.51.100.66";
  t.last_violation_reason = "outside-window";
  t.last_violation_rule = "link/rdp";
  {
    auto store = open_ok();
    ASSERT_TRUE(store.save_soc_tally(t).ok());
  }
  auto store = open_ok();
  auto all = store.soc_tallies();
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 1u);
  const auto& g = all->front();
  EXPECT_EQ(g.key, t.key);
  EXPECT_EQ(g.stream, t.stream);
  EXPECT_EQ(g.last_sequence, t.last_sequence);
  EXPECT_EQ(g.events, 9u);
  EXPECT_EQ(g.violations, 4u);
  EXPECT_EQ(g.denied_packets, 1234u);
  EXPECT_EQ(g.sessions, 2u);
  EXPECT_EQ(g.loss_events, 1u);
  EXPECT_EQ(g.duplicates, 3u);
  EXPECT_EQ(g.last_event_at, at(5));
  EXPECT_EQ(g.last_violation_at, at(4));
  EXPECT_EQ(g.last_violation_source, "198.51.100.66");
  EXPECT_EQ(g.last_violation_reason, "outside-window");
  EXPECT_EQ(g.last_violation_rule, "link/rdp");
}

TEST_F(FleetStoreTest, EventsArePrunedPerSiteKeepingTheNewest) {
  auto store = open_ok();
  ASSERT_TRUE(store.begin_batch().ok());
  for (std::uint64_t i = 1; i <= 25; ++i) {
    for (const char* site : {"a", "b"}) {
      StoredEvent e;
      e.site = site;
      e.key = std::string("key-") + site;
      e.sequence = i;
      e.time = at(static_cast<std::int64_t>(i));
      e.received_at = at(1000);
      e.kind = "violation";
      e.action = "connection-denied";
      e.json = R"({"seq":)" + std::to_string(i) + "}";
      // Site b keeps more: the limit is per site.
      ASSERT_TRUE(store.add_event(e, site == std::string("a") ? 10 : 20).ok());
    }
  }
  ASSERT_TRUE(store.end_batch().ok());
  auto a = store.recent_events("a", 100);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_EQ(a->size(), 10u);
  EXPECT_EQ(a->front().sequence, 25u) << "newest first";
  EXPECT_EQ(a->back().sequence, 16u);
  EXPECT_EQ(a->front().json, R"({"seq":25})");
  auto b = store.recent_events("b", 100);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), 20u);
  auto both = store.recent_events("", 5);
  ASSERT_TRUE(both.ok());
  ASSERT_EQ(both->size(), 5u);
  EXPECT_EQ(both->front().site, "b");
  EXPECT_EQ(both->front().sequence, 25u);
}

TEST_F(FleetStoreTest, ASchema1DatabaseGainsTheSocTables) {
  raw_sql(path(),
          "CREATE TABLE bundles (site TEXT NOT NULL, serial INTEGER NOT NULL, hash TEXT NOT NULL, "
          "bytes BLOB NOT NULL, published_at INTEGER NOT NULL, PRIMARY KEY (site, hash));"
          "CREATE TABLE desired (site TEXT PRIMARY KEY NOT NULL, hash TEXT NOT NULL);"
          "CREATE TABLE enforcers (key TEXT PRIMARY KEY NOT NULL, site TEXT NOT NULL, name TEXT "
          "NOT NULL, last_seen INTEGER, applied_serial INTEGER, applied_bundle_hash TEXT NOT NULL "
          "DEFAULT '', ruleset_hash TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '', "
          "locked_down INTEGER NOT NULL DEFAULT 0, expired INTEGER NOT NULL DEFAULT 0, "
          "last_ack_at INTEGER, last_ack TEXT NOT NULL DEFAULT '', last_ack_serial INTEGER, "
          "last_rejection_at INTEGER, last_rejection TEXT NOT NULL DEFAULT '', "
          "rejected_bundle_hash TEXT NOT NULL DEFAULT '');"
          "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);"
          "INSERT INTO counters VALUES ('kept', 7);"
          "PRAGMA user_version = 1;");
  auto store = open_ok();
  auto counters = store.counters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->at("kept"), 7u) << "an upgrade keeps the fleet state";
  SocTally t;
  t.key = "k";
  t.site = "a";
  EXPECT_TRUE(store.save_soc_tally(t).ok());
  auto tallies = store.soc_tallies();
  ASSERT_TRUE(tallies.ok()) << tallies.error().message;
  EXPECT_EQ(tallies->size(), 1u);
}

}  // namespace
}  // namespace drawbridge
