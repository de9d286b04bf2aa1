// SOC events upstream, end to end: a real `drawbridge-controller serve` in the msp namespace, a
// real enforcer daemon in gw dialling it with CURVE, and real denied connections through the
// gateway. What the controller counts (`status --json`, `events --json`) is checked exactly
// against what the enforcer's tamper-evident audit file says it emitted — also across a
// controller killed and restarted while denials go on, when the enforcer must send what was
// not acknowledged and the controller must count nothing twice.
//
// The fixture follows distribution_test.cpp: controller at 203.0.113.2:7400 (inside provider
// acme's prefix), one-second heartbeats, every wait a condition with a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lab.h"

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kControllerEndpoint = "tcp://203.0.113.2:7400";
constexpr const char* kSite = "lab";

std::string first_word_of(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  in >> word;
  if (word.empty()) throw std::runtime_error("cannot read " + path);
  return word;
}

#define ASSERT_RAN(result) ASSERT_TRUE((result).ok()) << (result).describe()

// What the audit file says the enforcer emitted (its ECS records).
struct AuditCounts {
  std::uint64_t records = 0;
  std::uint64_t violations = 0;
  std::uint64_t denied_packets = 0;
  std::uint64_t attacker_violations = 0;  // from 198.51.100.66
  std::uint64_t max_sequence = 0;
  std::set<std::uint64_t> sequences;
};

AuditCounts read_audit(const std::string& path) {
  AuditCounts c;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto record = json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.contains("event")) continue;
    const json& e = record["event"];
    ++c.records;
    const auto seq = e["event"].value("sequence", std::uint64_t{0});
    c.sequences.insert(seq);
    c.max_sequence = std::max(c.max_sequence, seq);
    if (e["event"].value("action", "") != "connection-denied") continue;
    ++c.violations;
    c.denied_packets += e["network"].value("packets", std::uint64_t{0});
    if (e["source"].value("ip", "") == addr::kAttacker) ++c.attacker_violations;
  }
  return c;
}

class UpstreamEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!running_as_root()) GTEST_SKIP() << "integration tests need root (network namespaces)";
    lab_.emplace();
    dir_ = lab_->temp_dir();
    controller_config_ = dir_ + "/controller.toml";
    controller_state_ = dir_ + "/ctl";
    state_ = dir_ + "/gw-state";
    audit_ = state_ + "/audit.jsonl";
    ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/provider"}));
    ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/controller", "--curve"}));
    ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/gw", "--curve"}));
    const std::string provider_key = first_word_of(dir_ + "/provider.pub");
    const std::string controller_curve = first_word_of(dir_ + "/controller.curve.pub");
    const std::string gw_curve = first_word_of(dir_ + "/gw.curve.pub");

    lab_->write_file("controller.toml", "listen = \"" + std::string(kControllerEndpoint) +
                                            "\"\nstate_dir = \"" + controller_state_ +
                                            "\"\nheartbeat_seconds = 1\nstale_after_seconds = 3\n"
                                            "curve_key = \"" +
                                            dir_ + "/controller.curve\"\n\n" +
                                            "[[enforcer]]\nsite = \"" + kSite +
                                            "\"\nname = \"gw\"\nkey = \"" + gw_curve + "\"\n");
    lab_->write_file("trust.toml", "site = \"" + std::string(kSite) + "\"\nprovider_keys = [\"" +
                                       provider_key + "\"]\n");
    // Aggregation of one second: repeated denials become their summary event quickly.
    enforcer_config_ = lab_->write_file(
        "enforcer.toml", "table = \"db_up\"\nstate_dir = \"" + state_ + "\"\ntrust = \"" + dir_ +
                             "/trust.toml\"\n\n[events]\naggregation_seconds = 1\n\n"
                             "[controller]\nendpoint = \"" +
                             kControllerEndpoint + "\"\nheartbeat_seconds = 1\nserver_key = \"" +
                             controller_curve + "\"\nclient_key = \"" + dir_ + "/gw.curve\"\n");
    // acme may use RDP on the first server; everything else is denied and logged.
    const auto policy = lab_->write_file("lab-1.toml", R"(version = 1
site = "lab"
serial = 1
timezone = "UTC"
[providers.acme]
addresses = ["203.0.113.0/28"]
[[links]]
name = "rdp"
provider = "acme"
direction = "inbound"
hosts = ["10.20.0.10"]
ports = ["tcp/3389"]
windows = ["always"]
[guard]
ports = ["tcp/22"]
)");
    bundle_ = dir_ + "/lab-1.bundle";
    ASSERT_RAN(ctl({"sign", policy, "--key", dir_ + "/provider", "--out", bundle_}));
  }

  void TearDown() override {
    if (HasFailure()) {
      if (controller_) std::cerr << "--- controller stderr ---\n" << controller_->err() << "\n";
      if (enforcer_) std::cerr << "--- enforcer stderr ---\n" << enforcer_->err() << "\n";
    }
    enforcer_.reset();
    controller_.reset();
  }

  static RunResult ctl(std::vector<std::string> args, Millis timeout = 20s) {
    args.insert(args.begin(), controller_bin());
    return run_host(args, timeout);
  }

  ::testing::AssertionResult start_controller() {
    controller_ =
        lab_->spawn(lab_->msp(), {controller_bin(), "serve", "--config", controller_config_});
    const auto deadline = SteadyClock::now() + 10s;
    for (;;) {
      if (!controller_->running()) {
        return ::testing::AssertionFailure()
               << "the controller exited: " << controller_->wait(1s).describe();
      }
      if (fs::exists(controller_state_ + "/admin.sock") && status()) {
        return ::testing::AssertionSuccess();
      }
      if (SteadyClock::now() >= deadline) {
        return ::testing::AssertionFailure() << "the controller did not answer within 10 s:\n"
                                             << controller_->err();
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  std::optional<json> status() {
    const auto r = ctl({"status", "--config", controller_config_, "--json"});
    if (!r.ok()) {
      last_status_ = r.describe();
      return std::nullopt;
    }
    auto doc = json::parse(r.out, nullptr, false);
    if (doc.is_discarded()) return std::nullopt;
    last_status_ = doc.dump(2);
    return doc;
  }

  // The gw enforcer's entry's "soc" object (null if none).
  static json soc_of(const json& st) {
    for (const auto& e : st.value("enforcers", json::array())) {
      if (e.value("name", "") == "gw") return e.value("soc", json());
    }
    return nullptr;
  }

  ::testing::AssertionResult wait_status(const std::string& what,
                                         const std::function<bool(const json&)>& done,
                                         Millis timeout = 20s) {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (auto st = status(); st && done(*st)) return ::testing::AssertionSuccess();
      if (SteadyClock::now() >= deadline) {
        return ::testing::AssertionFailure()
               << "not within " << timeout.count() << " ms: " << what
               << "\nlast status: " << last_status_
               << "\naudit file: " << read_audit(audit_).records << " records";
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  json events(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"events", "--config", controller_config_, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = ctl(args);
    EXPECT_TRUE(r.ok()) << r.describe();
    auto doc = json::parse(r.out, nullptr, false);
    return doc.is_discarded() ? json::array() : doc;
  }

  // The controller's tally equals the audit file's: every event arrived, none twice.
  static ::testing::AssertionResult matches(const json& soc, const AuditCounts& audit) {
    if (!soc.is_object()) return ::testing::AssertionFailure() << "no soc entry";
    const auto get = [&](const char* k) { return soc.value(k, std::uint64_t{0}); };
    if (audit.records == 0 || get("events") != audit.records ||
        get("last_sequence") != audit.max_sequence || get("violations") != audit.violations ||
        get("denied_packets") != audit.denied_packets) {
      return ::testing::AssertionFailure()
             << "controller " << soc.dump() << " vs audit file: records " << audit.records
             << ", max sequence " << audit.max_sequence << ", violations " << audit.violations
             << ", denied packets " << audit.denied_packets;
    }
    return ::testing::AssertionSuccess();
  }

  // Denied connections from the attacker: to RDP (unapproved source) and to the guarded port.
  void attack(int times) {
    for (int i = 0; i < times; ++i) {
      EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389", 300ms));
      EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22", 300ms));
    }
  }

  // Waits until the audit file stops growing (the aggregator flushed its summaries).
  AuditCounts settled_audit() {
    AuditCounts last = read_audit(audit_);
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(500ms);
      AuditCounts now = read_audit(audit_);
      if (now.records == last.records && i >= 4) return now;
      last = std::move(now);
    }
    return last;
  }

  std::optional<NamespaceLab> lab_;
  std::string dir_, controller_config_, controller_state_, state_, audit_, enforcer_config_;
  std::string bundle_;
  std::optional<Process> controller_, enforcer_;
  std::string last_status_;
};

TEST_F(UpstreamEventsTest, ViolationsReachTheControllerExactlyOnceAcrossItsRestart) {
  ASSERT_TRUE(start_controller());
  ASSERT_RAN(ctl({"publish", bundle_, "--config", controller_config_}));
  enforcer_ = lab_->spawn_enforcer({"run", "--config", enforcer_config_});
  ASSERT_TRUE(wait_status("the gw enforcer applied serial 1", [](const json& st) {
    for (const auto& e : st.value("enforcers", json::array())) {
      if (e.value("name", "") == "gw" && e.value("applied_serial", json()) == 1) return true;
    }
    return false;
  }));

  attack(3);
  ASSERT_TRUE(wait_status("the controller counts the attacker's violations", [](const json& st) {
    const json soc = soc_of(st);
    return soc.is_object() && soc.value("violations", 0) >= 2 &&
           soc["last_violation"].is_object() &&
           soc["last_violation"].value("source", "") == addr::kAttacker;
  }));
  // Per site too, and in the table a person reads.
  const auto st = status();
  ASSERT_TRUE(st);
  const json site = (*st)["sites"][kSite];
  EXPECT_GE(site.value("violations", 0), 2) << site.dump(2);
  EXPECT_GE(site.value("denied_packets", 0), 2) << site.dump(2);
  const auto table = ctl({"status", "--config", controller_config_});
  EXPECT_NE(table.out.find("DENIED PKTS"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(addr::kAttacker), std::string::npos) << table.out;

  // `events` lists the violation as the enforcer sent it.
  const json listed = events({"--site", kSite});
  const auto denial = std::find_if(listed.begin(), listed.end(), [](const json& e) {
    return e["event"].value("action", "") == "connection-denied" &&
           e["event"]["flow"].value("src", "") == addr::kAttacker;
  });
  ASSERT_NE(denial, listed.end()) << listed.dump(2);
  EXPECT_EQ((*denial).value("site", ""), kSite);
  EXPECT_EQ((*denial).value("enforcer", ""), "gw");
  EXPECT_EQ((*denial)["event"].value("kind", ""), "violation");
  EXPECT_FALSE((*denial)["event"].value("reason", "").empty());
  EXPECT_TRUE(events({"--site", "elsewhere"}).empty());
  const auto listing = ctl({"events", "--config", controller_config_, "--limit", "5"});
  EXPECT_TRUE(listing.ok()) << listing.describe();
  EXPECT_NE(listing.out.find("connection-denied"), std::string::npos) << listing.out;

  // Everything so far arrived once.
  auto audit = settled_audit();
  ASSERT_TRUE(wait_status("the controller holds every event of the audit file", [&](const json& s) {
    return matches(soc_of(s), audit);
  })) << matches(soc_of(*status()), audit).message();

  // The controller dies (no clean shutdown) while the attacker goes on.
  controller_->kill(SIGKILL);
  (void)controller_->wait(5s);
  attack(4);
  const auto during = settled_audit();
  EXPECT_GT(during.attacker_violations, audit.attacker_violations)
      << "new violations while the controller was down";
  // The enforcer keeps them spooled for the controller and says so.
  const auto local = lab_->enforcer({"status", "--config", enforcer_config_});
  EXPECT_NE(local.out.find("output controller"), std::string::npos) << local.out;

  ASSERT_TRUE(start_controller());
  audit = settled_audit();
  ASSERT_TRUE(wait_status(
      "after the restart, the controller holds every event exactly once",
      [&](const json& s) { return matches(soc_of(s), audit); }, 60s));
  // Exactly: the audit file's sequences are the controller's events, one each.
  const json soc = soc_of(*status());
  RecordProperty("tally", soc.dump());
  if (std::getenv("DRAWBRIDGE_TEST_VERBOSE") != nullptr) std::cerr << soc.dump(2) << "\n";
  EXPECT_EQ(soc.value("events", std::uint64_t{0}), audit.sequences.size());
  EXPECT_EQ(soc.value("violations", std::uint64_t{0}), audit.violations);
  EXPECT_EQ(soc.value("denied_packets", std::uint64_t{0}), audit.denied_packets);
  const json all = events({"--limit", "1000"});
  std::set<std::uint64_t> listed_sequences;
  for (const auto& e : all) listed_sequences.insert(e.value("sequence", std::uint64_t{0}));
  EXPECT_EQ(listed_sequences, audit.sequences) << "every event listed once";
  EXPECT_EQ(all.size(), audit.sequences.size()) << "no event stored twice";
}

}  // namespace
}  // namespace drawbridge::lab
