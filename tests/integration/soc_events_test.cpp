// What the SOC hears, end to end: real denied packets through the lab's gateway reach the
// daemon over NFLOG, are attributed and aggregated, and land in the tamper-evident audit file.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lab.h"

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<json> audit_events(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto record = json::parse(line, nullptr, false);
    if (!record.is_discarded() && record.contains("event")) out.push_back(record["event"]);
  }
  return out;
}

std::string action_of(const json& e) {
  return e["event"].value("action", "");
}

class SocEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    lab_.emplace();
    state_ = lab_->temp_dir() + "/state";
    fs::create_directories(state_);
    audit_ = state_ + "/audit.jsonl";
  }

  bool wait_for(const std::function<bool(const std::vector<json>&)>& ok, Millis timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (ok(audit_events(audit_))) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::optional<NamespaceLab> lab_;
  std::string state_, audit_;
};

TEST_F(SocEventsTest, DenialsAreAttributedAggregatedAndChained) {
  const auto policy = lab_->write_file("policy.toml", R"(version = 1
site = "lab"
serial = 4
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
[[links]]
name = "later"
provider = "acme"
direction = "inbound"
hosts = ["10.20.0.12"]
ports = ["tcp/3389"]
windows = []
[guard]
ports = ["tcp/22"]
)");
  const auto config =
      lab_->write_file("enforcer.toml", "policy = \"" + policy + "\"\nstate_dir = \"" + state_ +
                                            "\"\n[events]\naggregation_seconds = 2\n"
                                            "organization = \"Lab\"\n");
  auto daemon = lab_->spawn_enforcer({"run", "--config", config});
  ASSERT_TRUE(wait_for(
      [](const auto& ev) {
        return std::any_of(ev.begin(), ev.end(),
                           [](const json& e) { return action_of(e) == "policy-applied"; });
      },
      5s))
      << daemon.err();

  // Three kinds of denial, each a real connection attempt through the gateway.
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389", 300ms));
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389", 300ms));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22", 300ms));
  // A scan of 1,000 ports by the provider's address: unapproved ports, all denied and logged.
  const auto scan = lab_->run(
      lab_->msp(), {"python3", "-c",
                    "import socket\n"
                    "socks=[]\n"
                    "for p in range(20000, 21000):\n"
                    "  s=socket.socket(); s.setblocking(False); s.bind(('203.0.113.2',0))\n"
                    "  s.connect_ex(('10.20.0.10',p)); socks.append(s)\n"
                    "for s in socks: s.close()\n"});
  ASSERT_TRUE(scan.ok()) << scan.describe();

  const auto denied = [](const json& e, const char* src, int port, const char* reason) {
    return action_of(e) == "connection-denied" && e["source"].value("ip", "") == src &&
           e["destination"].value("port", 0) == port && e["event"].value("reason", "") == reason;
  };
  ASSERT_TRUE(wait_for(
      [&](const auto& ev) {
        return std::any_of(ev.begin(), ev.end(), [&](const json& e) {
          return denied(e, addr::kAttacker, 22, "unapproved-source");
        });
      },
      5s))
      << daemon.err();
  daemon.kill(SIGTERM);  // flushes what the aggregator holds
  ASSERT_EQ(daemon.wait(10s).exit_code, 0);

  // `status` shows the SOC side as the daemon left it: nothing left waiting, nothing lost.
  const auto status = lab_->enforcer({"status", "--state-dir", state_});
  EXPECT_NE(status.out.find(", lost 0 (queue overflows 0)"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("output audit-file: delivered"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("waiting 0, compacted 0"), std::string::npos) << status.out;

  const auto events = audit_events(audit_);
  const auto find = [&](auto pred) { return std::find_if(events.begin(), events.end(), pred); };
  auto attacker =
      find([&](const json& e) { return denied(e, addr::kAttacker, 3389, "unapproved-source"); });
  ASSERT_NE(attacker, events.end());
  EXPECT_EQ((*attacker)["rule"].value("name", ""), "link/rdp");
  // The attacker is not the provider, whose link it knocked at.
  EXPECT_FALSE((*attacker)["labels"].contains("provider"));
  EXPECT_EQ((*attacker)["labels"].value("site", ""), "lab");
  EXPECT_EQ((*attacker)["organization"].value("name", ""), "Lab");
  EXPECT_EQ((*attacker)["network"].value("transport", ""), "tcp");
  EXPECT_TRUE((*attacker)["network"].value("community_id", "").starts_with("1:"));

  auto closed = find([&](const json& e) { return denied(e, addr::kAcme, 3389, "outside-window"); });
  ASSERT_NE(closed, events.end());
  EXPECT_EQ((*closed)["labels"].value("provider", ""), "acme");
  EXPECT_EQ((*closed)["labels"].value("link", ""), "later");
  EXPECT_EQ((*closed)["network"].value("direction", ""), "inbound");

  // The scan: a handful of events whose packet counts add up to every probe.
  std::uint64_t scan_packets = 0;
  std::size_t scan_events = 0, summaries = 0;
  for (const auto& e : events) {
    if (action_of(e) != "connection-denied" || e["source"].value("ip", "") != addr::kAcme ||
        e["event"].value("reason", "") != "unapproved-port") {
      continue;
    }
    ++scan_events;
    scan_packets += e["network"].value("packets", std::uint64_t{0});
    if (e["labels"].value("scan", "") == "true") {
      ++summaries;
      EXPECT_GE(std::stoi(e["labels"].value("distinct_ports", "0")), 980);
    }
  }
  EXPECT_LE(scan_events, 15u) << "a scan must not become thousands of events";
  EXPECT_EQ(summaries, 1u);
  EXPECT_GE(scan_packets, 1000u) << "every denied SYN is counted";

  // Every event is in the hash chain, and one changed byte is found.
  const auto intact = lab_->enforcer({"verify-log", audit_});
  EXPECT_EQ(intact.exit_code, 0) << intact.describe();
  std::string text;
  {
    std::ifstream in(audit_);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const auto at = text.find("\"reason\":\"outside-window\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at + 11, 7, "inside-");
  std::ofstream(audit_, std::ios::trunc) << text;
  const auto broken = lab_->enforcer({"verify-log", audit_});
  EXPECT_EQ(broken.exit_code, 1) << broken.describe();
  EXPECT_NE(broken.out.find("is broken"), std::string::npos) << broken.out << broken.err;
}

// A grant that ends closes in the kernel by its own timeout; the SOC still hears that it closed,
// with the ticket, when the daemon reaches that edge.
TEST_F(SocEventsTest, AGrantThatEndsIsReportedClosedWithItsTicket) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  const auto rfc3339 = [](std::chrono::sys_seconds t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf);
  };
  const auto policy =
      lab_->write_file("policy.toml",
                       "version = 1\nsite = \"lab\"\nserial = 5\ntimezone = \"UTC\"\n"
                       "[providers.acme]\naddresses = [\"203.0.113.0/28\"]\n"
                       "[[links]]\nname = \"vnc\"\nprovider = \"acme\"\ndirection = \"inbound\"\n"
                       "hosts = [\"10.20.0.11\"]\nports = [\"tcp/5900\"]\nwindows = []\n"
                       "[[grants]]\nlink = \"vnc\"\nticket = \"CHG-77\"\nfrom = " +
                           rfc3339(now - std::chrono::minutes(1)) +
                           "\nuntil = " + rfc3339(now + std::chrono::seconds(4)) + "\n");
  const auto config = lab_->write_file(
      "enforcer.toml", "policy = \"" + policy + "\"\nstate_dir = \"" + state_ + "\"\n");
  auto daemon = lab_->spawn_enforcer({"run", "--config", config});
  const auto has = [](const std::vector<json>& ev, const char* what) {
    return std::any_of(ev.begin(), ev.end(), [&](const json& e) {
      return action_of(e) == what && e.dump().find("CHG-77") != std::string::npos;
    });
  };
  ASSERT_TRUE(wait_for([&](const auto& ev) { return has(ev, "window-opened"); }, 5s))
      << daemon.err();
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer2, "tcp/5900", 500ms));
  ASSERT_TRUE(wait_for([&](const auto& ev) { return has(ev, "window-closed"); }, 10s))
      << daemon.err();
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer2, "tcp/5900", 300ms));
}

}  // namespace
}  // namespace drawbridge::lab
