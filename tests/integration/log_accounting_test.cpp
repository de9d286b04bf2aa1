// The kernel's counters against what the daemon read (docs/events.md, "Loss"): a per-source log
// rate drops a flood without logging all of it and says how much it did not log, and packets the
// kernel logged while no enforcer ran are reported when it starts again. Real datagrams through
// the lab's gateway; the counts are compared exactly with the kernel's own counters.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lab.h"

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPolicy = R"(version = 1
site = "lab"
serial = 9
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
ports = ["udp/3389", "tcp/22"]
)";

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
  return e.value(json::json_pointer("/event/action"), std::string());
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str(), nullptr, false);
}

class LogAccountingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    lab_.emplace();
    state_ = lab_->temp_dir() + "/state";
    fs::create_directories(state_);
    audit_ = state_ + "/audit.jsonl";
    policy_ = lab_->write_file("policy.toml", kPolicy);
  }

  std::string config(const std::string& extra) {
    return lab_->write_file("enforcer.toml", "policy = \"" + policy_ + "\"\nstate_dir = \"" +
                                                 state_ + "\"\n" + extra +
                                                 "[events]\naggregation_seconds = 2\n");
  }

  Process start(const std::string& cfg) {
    auto daemon = lab_->spawn_enforcer({"run", "--config", cfg});
    const auto applied = [&] {
      const auto ev = audit_events(audit_);
      return std::count_if(ev.begin(), ev.end(),
                           [](const json& e) { return action_of(e) == "policy-applied"; });
    };
    const auto before = applied();
    for (int i = 0; i < 100 && applied() == before; ++i) std::this_thread::sleep_for(100ms);
    EXPECT_GT(applied(), before) << daemon.err();
    return daemon;
  }

  // `count` UDP datagrams from the attacker to the guarded udp/3389 on the LAN server, as fast
  // as Python sends them, one source port.
  void flood(int count) {
    const auto sent = lab_->run(
        lab_->msp(), {"python3", "-c",
                      "import socket\n"
                      "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      "s.bind(('198.51.100.66', 40000))\n"
                      "for i in range(" +
                          std::to_string(count) + "): s.sendto(b'x', ('10.20.0.10', 3389))\n"});
    ASSERT_TRUE(sent.ok()) << sent.describe();
  }

  // The kernel's counters in the deny path of the guard: (logged, dropped without logging).
  std::pair<std::uint64_t, std::uint64_t> kernel_counts() {
    const auto listed = lab_->nft({"-j", "list", "table", "inet", "drawbridge"});
    EXPECT_TRUE(listed.ok()) << listed.describe();
    const auto j = json::parse(listed.out, nullptr, false);
    std::uint64_t logged = 0, limited = 0;
    for (const auto& item : j.value("nftables", json::array())) {
      if (!item.contains("rule")) continue;
      const auto& rule = item["rule"];
      std::uint64_t packets = 0;
      bool logs = false;
      for (const auto& x : rule.value("expr", json::array())) {
        if (x.contains("counter")) packets = x["counter"].value("packets", 0ull);
        if (x.contains("log")) logs = true;
      }
      if (logs) logged += packets;
      if (rule.value("comment", "").starts_with("rate-limited ")) limited += packets;
    }
    return {logged, limited};
  }

  std::optional<NamespaceLab> lab_;
  std::string state_, audit_, policy_;
};

TEST_F(LogAccountingTest, PerSourceRateDropsAFloodAndCountsWhatItDidNotLog) {
  auto daemon = start(config("log_rate_per_source = 20\n"));
  flood(3000);
  // Nothing of the flood got through: the server never answers a datagram it never got.
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "udp/3389", 300ms));
  std::this_thread::sleep_for(500ms);
  const auto [logged, limited] = kernel_counts();
  daemon.kill(SIGTERM);
  ASSERT_EQ(daemon.wait(10s).exit_code, 0) << daemon.err();

  // The limit kicked in: about 20 per second (burst 20) were logged, the rest only counted.
  EXPECT_GE(logged + limited, 3001u);
  EXPECT_LE(logged, 200u);
  EXPECT_GE(limited, 2800u);

  const auto status = read_json(state_ + "/events.json");
  ASSERT_TRUE(status.is_object());
  EXPECT_EQ(status.value("denied_logged_by_kernel", 0ull), logged) << status.dump(2);
  EXPECT_EQ(status.value("denied_received", 0ull), logged) << status.dump(2);
  EXPECT_EQ(status.value("denied_lost", 1ull), 0u) << status.dump(2);
  EXPECT_EQ(status.value("denied_rate_limited", 0ull), limited) << status.dump(2);

  // The SOC hears how many were not logged, for which deny point, and the violation summary of
  // the flooding flow says its count is only what was logged.
  const auto events = audit_events(audit_);
  std::uint64_t said_limited = 0, flow_packets = 0;
  bool summary_marked = false;
  for (const auto& e : events) {
    if (action_of(e) == "log-rate-limited") {
      said_limited +=
          std::stoull(e.value(json::json_pointer("/labels/not_logged"), std::string("0")));
      EXPECT_EQ(e.value(json::json_pointer("/event/reason"), std::string()), "unapproved-source");
      EXPECT_EQ(e.value(json::json_pointer("/rule/name"), std::string()), "guard");
    }
    if (action_of(e) == "connection-denied" &&
        e.value(json::json_pointer("/source/ip"), std::string()) == addr::kAttacker) {
      flow_packets += e.value(json::json_pointer("/network/packets"), 0ull);
      if (e.value(json::json_pointer("/labels/rate_limited"), std::string()) == "true") {
        summary_marked = true;
        // A summary says how complete the picture is: all read, none lost.
        EXPECT_EQ(e.value(json::json_pointer("/labels/log_lost_total"), std::string()), "0");
        EXPECT_EQ(e.value(json::json_pointer("/labels/log_received_total"), std::string()),
                  std::to_string(logged));
      }
    }
  }
  EXPECT_EQ(said_limited, limited);
  EXPECT_EQ(flow_packets, logged) << "the violations count exactly what was logged";
  EXPECT_TRUE(summary_marked);
}

TEST_F(LogAccountingTest, PacketsLoggedWhileTheEnforcerWasStoppedAreReportedAtStart) {
  const auto cfg = config("");
  {
    auto daemon = start(cfg);
    daemon.kill(SIGTERM);
    ASSERT_EQ(daemon.wait(10s).exit_code, 0) << daemon.err();
  }
  // The table stays and keeps dropping and logging, but nobody reads the log.
  flood(37);
  auto daemon = start(cfg);
  flood(5);  // read this time
  std::this_thread::sleep_for(1s);
  daemon.kill(SIGTERM);
  ASSERT_EQ(daemon.wait(10s).exit_code, 0) << daemon.err();

  const auto events = audit_events(audit_);
  const auto down = std::find_if(events.begin(), events.end(), [](const json& e) {
    return action_of(e) == "log-loss" &&
           e.contains(json::json_pointer("/labels/logged_while_down"));
  });
  ASSERT_NE(down, events.end());
  EXPECT_EQ((*down).value(json::json_pointer("/labels/logged_while_down"), std::string()), "37");
  EXPECT_FALSE(down->contains(json::json_pointer("/labels/bound")))
      << "a clean stop: the count is exact";
  const auto status = read_json(state_ + "/events.json");
  EXPECT_EQ(status.value("denied_logged_while_down", 0ull), 37u) << status.dump(2);
  EXPECT_EQ(status.value("denied_received", 0ull), 5u) << status.dump(2);
  EXPECT_EQ(status.value("denied_logged_by_kernel", 0ull), 5u) << status.dump(2);
  EXPECT_EQ(status.value("denied_lost", 1ull), 0u) << status.dump(2);
}

}  // namespace
}  // namespace drawbridge::lab
