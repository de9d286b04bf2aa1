// The enforcer as users meet it: real packets through the gateway namespace, the CLI contract
// (check, render, explain, apply, run, status, flush) and the promises of docs/architecture.md:
// windows closed by the kernel, restrict only, never touch another table.
//
// Each test builds its own lab and writes its own policy, with grant times relative to now.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "lab.h"

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;
using std::chrono::sys_seconds;

// --- policies -----------------------------------------------------------------------------------

// RFC 3339 UTC, as policies and --at take it: 2026-11-25T01:02:03Z.
std::string rfc3339(sys_seconds t) {
  const std::time_t seconds = t.time_since_epoch().count();
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

sys_seconds now_seconds() {
  return std::chrono::floor<std::chrono::seconds>(SysClock::now());
}

std::int64_t epoch_ms(SysClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

struct LinkSpec {
  std::string name;
  std::vector<std::string> hosts;
  std::vector<std::string> ports;
  std::vector<std::string> windows;
  std::string direction = "inbound";
};

struct GrantSpec {
  std::string link;
  std::string ticket;
  sys_seconds from;
  sys_seconds until;
};

struct PolicySpec {
  std::uint64_t serial = 1;
  std::vector<LinkSpec> links{};
  std::vector<GrantSpec> grants{};
  std::vector<std::string> guard{"tcp/22", "tcp/5900"};
  std::optional<sys_seconds> expires{};
};

std::string toml_list(const std::vector<std::string>& items) {
  std::string text = "[";
  for (const auto& item : items) {
    if (text.size() > 1) text += ", ";
    text += "\"" + item + "\"";
  }
  return text + "]";
}

std::string to_toml(const PolicySpec& spec) {
  std::ostringstream toml;
  toml << "version = 1\n"
       << "site = \"lab\"\n"
       << "serial = " << spec.serial << "\n"
       << "timezone = \"UTC\"\n"
       << (spec.expires ? "expires = " + rfc3339(*spec.expires) + "\n" : std::string()) << "\n"
       << "[providers.acme]\n"
       << "addresses = [\"203.0.113.0/28\", \"2001:db8:100::/48\"]\n";
  for (const auto& link : spec.links) {
    toml << "\n[[links]]\n"
         << "name = \"" << link.name << "\"\n"
         << "provider = \"acme\"\n"
         << "direction = \"" << link.direction << "\"\n"
         << "hosts = " << toml_list(link.hosts) << "\n"
         << "ports = " << toml_list(link.ports) << "\n"
         << "windows = " << toml_list(link.windows) << "\n";
  }
  for (const auto& grant : spec.grants) {
    toml << "\n[[grants]]\n"
         << "link = \"" << grant.link << "\"\n"
         << "ticket = \"" << grant.ticket << "\"\n"
         << "from = " << rfc3339(grant.from) << "\n"
         << "until = " << rfc3339(grant.until) << "\n";
  }
  toml << "\n[guard]\n"
       << "ports = " << toml_list(spec.guard) << "\n";
  return toml.str();
}

// acme may use RDP on the first server (v4 and v6) at any time.
LinkSpec rdp_always() {
  return {"rdp", {addr::kServer, addr::kServerV6}, {"tcp/3389", "udp/3389"}, {"always"}};
}

// --- nft listings -------------------------------------------------------------------------------

// nft's duration text ("1h2m3s4ms", "59m58s") in milliseconds.
std::int64_t parse_nft_duration(const std::string& text) {
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t value = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      value = value * 10 + (text[i++] - '0');
    }
    if (text.compare(i, 2, "ms") == 0) {
      total += value;
      i += 2;
    } else if (i < text.size()) {
      const char unit = text[i++];
      const std::int64_t scale = unit == 'd'   ? 86'400'000
                                 : unit == 'h' ? 3'600'000
                                 : unit == 'm' ? 60'000
                                               : 1'000;
      total += value * scale;
    }
  }
  return total;
}

// A listing made comparable: counters zeroed, `expires` (time left) dropped, set elements sorted
// (hash sets list in hash order), element and set timeouts taken out into `timeouts` so they can
// be compared with a tolerance (two commits a moment apart get slightly different ones).
struct Listing {
  std::string text;
  std::vector<std::int64_t> timeouts_ms;
};

Listing normalise(const std::string& listing) {
  static const std::regex counters(R"(packets \d+ bytes \d+)");
  static const std::regex expires(R"( expires [0-9dhms]+)");
  static const std::regex timeout(R"(timeout ([0-9]+[dhms][0-9dhms]*))");
  std::string text = std::regex_replace(listing, counters, "packets 0 bytes 0");
  text = std::regex_replace(text, expires, "");

  std::string sorted;
  std::size_t at = 0;
  for (;;) {
    const auto open = text.find("elements = {", at);
    if (open == std::string::npos) break;
    const auto body = open + std::string_view("elements = {").size();
    const auto close = text.find('}', body);
    if (close == std::string::npos) break;
    std::vector<std::string> elements;
    std::stringstream in(text.substr(body, close - body));
    std::string element;
    while (std::getline(in, element, ',')) {
      std::istringstream words(element);
      std::string word;
      std::string tidy;
      while (words >> word) tidy += (tidy.empty() ? "" : " ") + word;
      if (!tidy.empty()) elements.push_back(tidy);
    }
    std::sort(elements.begin(), elements.end());
    sorted += text.substr(at, body - at) + " ";
    for (std::size_t i = 0; i < elements.size(); ++i) {
      sorted += (i ? ",\n\t\t\t     " : "") + elements[i];
    }
    sorted += " ";
    at = close;
  }
  sorted += text.substr(at);

  Listing result;
  for (auto it = std::sregex_iterator(sorted.begin(), sorted.end(), timeout);
       it != std::sregex_iterator(); ++it) {
    result.timeouts_ms.push_back(parse_nft_duration((*it)[1].str()));
  }
  result.text = std::regex_replace(sorted, timeout, "timeout *");
  return result;
}

// --- the fixture --------------------------------------------------------------------------------

class EnforcementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!running_as_root()) GTEST_SKIP() << "integration tests need root (network namespaces)";
    lab_.emplace();
    state_dir_ = lab_->temp_dir() + "/state";
    fs::create_directories(state_dir_);
  }

  std::string write_policy(const PolicySpec& spec, const std::string& name = "policy.toml") {
    return lab_->write_file(name, to_toml(spec));
  }
  RunResult apply(const std::string& policy, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"apply", policy, "--state-dir", state_dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    return lab_->enforcer(args);
  }
  RunResult flush(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"flush"};
    args.insert(args.end(), extra.begin(), extra.end());
    return lab_->enforcer(args);
  }
  // A gateway as deployed: a provider key pair ("provider") and another ("intruder") made by
  // the controller, a trust file naming only the provider's key for site "lab", and
  // enforcer.toml whose policy is <temp>/current.bundle. Returns the config's path.
  std::string signed_bundle_gateway() {
    const std::string dir = lab_->temp_dir();
    EXPECT_TRUE(controller({"keygen", "--out", dir + "/provider"}).ok());
    EXPECT_TRUE(controller({"keygen", "--out", dir + "/intruder"}).ok());
    std::string pub;
    std::ifstream(dir + "/provider.pub") >> pub;
    lab_->write_file("trust.toml", "site = \"lab\"\nprovider_keys = [\"" + pub + "\"]\n");
    return lab_->write_file("enforcer.toml", "policy = \"" + dir + "/current.bundle\"\ntrust = \"" +
                                                 dir + "/trust.toml\"\nstate_dir = \"" +
                                                 state_dir_ + "\"\n");
  }
  RunResult controller(std::vector<std::string> args) {
    args.insert(args.begin(), DRAWBRIDGE_CONTROLLER_BIN);
    return run_host(args);
  }
  Process start_daemon(const std::string& policy) {
    return lab_->spawn_enforcer({"run", "--policy", policy, "--state-dir", state_dir_});
  }
  bool table_exists(const std::string& table = "drawbridge") {
    return lab_->nft({"list", "table", "inet", table}).ok();
  }
  std::string list_table(const std::string& table) {
    const auto r = lab_->nft({"list", "table", "inet", table});
    EXPECT_TRUE(r.ok()) << r.describe();
    return r.out;
  }
  // Waits for the daemon's first commit: the table appears in one transaction with its rules.
  ::testing::AssertionResult wait_for_table(Process& daemon, Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (table_exists()) return ::testing::AssertionSuccess();
      if (!daemon.running()) {
        return ::testing::AssertionFailure()
               << "the daemon exited before creating its table: " << daemon.wait(1s).describe();
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return ::testing::AssertionFailure()
               << "no table inet drawbridge after " << timeout.count() << " ms; stderr:\n"
               << daemon.err();
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  // A foreign table the enforcer must never touch, dropping acme's second address on tcp/3389.
  void add_other_table() {
    const auto r = lab_->nft_script(
        "table inet other {\n"
        "  set blocked_sources {\n"
        "    type ipv4_addr\n"
        "    elements = { 203.0.113.3 }\n"
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter + 10; policy accept;\n"
        "    ip saddr @blocked_sources tcp dport 3389 drop\n"
        "  }\n"
        "}\n");
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  std::optional<NamespaceLab> lab_;
  std::string state_dir_;
};

#define ASSERT_RAN(result) ASSERT_TRUE((result).ok()) << (result).describe()

// --- packets ------------------------------------------------------------------------------------

TEST_F(EnforcementTest, ProviderReachesLinkedHostsInsideWindow) {
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));
  ASSERT_TRUE(table_exists());

  for (const char* port : {"tcp/3389", "udp/3389"}) {
    EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, port)) << port;
    EXPECT_TRUE(lab_->probe(addr::kAcme2, addr::kServer, port)) << port;
    EXPECT_TRUE(lab_->probe(addr::kAcmeV6, addr::kServerV6, port)) << port << " (IPv6)";
  }
  const auto status = lab_->enforcer({"status", "--state-dir", state_dir_});
  EXPECT_TRUE(status.ok()) << status.describe();
}

TEST_F(EnforcementTest, LinkWithOnlyPastOrFutureGrantIsClosed) {
  const auto now = now_seconds();
  PolicySpec spec{
      .links = {{"past", {addr::kServer}, {"tcp/3389"}, {}},
                {"future", {addr::kServer3}, {"tcp/3389"}, {}}},
      .grants = {{"past", "CHG-PAST", now - 2h, now - 1h},
                 {"future", "CHG-FUTURE", now + 1h, now + 2h}},
  };
  ASSERT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "lab broken before apply";
  ASSERT_TRUE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389")) << "lab broken before apply";

  ASSERT_RAN(apply(write_policy(spec)));

  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "grant ended an hour ago";
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389")) << "grant starts in an hour";
}

TEST_F(EnforcementTest, UnapprovedSourcesCannotReachLinkedPort) {
  ASSERT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389")) << "lab broken";
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));

  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "the approved source";
  EXPECT_FALSE(lab_->probe(addr::kUnapproved, addr::kServer, "tcp/3389"))
      << "203.0.113.100 is outside acme's 203.0.113.0/28";
  EXPECT_FALSE(lab_->probe(addr::kUnapproved, addr::kServer, "udp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "udp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttackerV6, addr::kServerV6, "tcp/3389"));
}

TEST_F(EnforcementTest, ProviderCannotReachUnlinkedHostOrPort) {
  ASSERT_TRUE(lab_->probe(addr::kAcme, addr::kServer2, "tcp/3389")) << "lab broken";
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));

  // Controls: without them a broken path would pass every "blocked" below.
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "the linked host and port";
  EXPECT_TRUE(lab_->probe(addr::kAcmeV6, addr::kServerV6, "tcp/3389")) << "linked, IPv6";
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer2, "tcp/3389")) << "unapproved host";
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/8080")) << "unapproved port";
  EXPECT_FALSE(lab_->probe(addr::kAcmeV6, addr::kServer2V6, "tcp/3389")) << "unapproved host";
  EXPECT_FALSE(lab_->probe(addr::kAcmeV6, addr::kServerV6, "tcp/8080")) << "unapproved port";
}

// An RMM agent in the LAN dials out to the provider's relay: only that host, only that port, and
// the provider cannot use the link's port to come in.
TEST_F(EnforcementTest, OutboundLinkLetsOnlyItsHostsReachTheProviderRelay) {
  auto relay = lab_->spawn(lab_->msp(), {labnet_bin(), "serve", "--tcp", "8443,9000"});
  ASSERT_TRUE(relay.wait_for_output("ready", 5s)) << relay.err();
  LinkSpec rmm{"rmm", {addr::kServer, addr::kServerV6}, {"tcp/8443"}, {"always"}};
  rmm.direction = "outbound";
  ASSERT_TRUE(lab_->probe(addr::kServer2, addr::kAcme, "tcp/8443")) << "lab broken before apply";
  ASSERT_RAN(apply(write_policy({.links = {rmm}})));

  EXPECT_TRUE(lab_->probe(addr::kServer, addr::kAcme, "tcp/8443"))
      << "the agent cannot reach the relay";
  EXPECT_TRUE(lab_->probe(addr::kServerV6, addr::kAcmeV6, "tcp/8443")) << "IPv6";
  EXPECT_FALSE(lab_->probe(addr::kServer2, addr::kAcme, "tcp/8443")) << "a host outside the link";
  EXPECT_FALSE(lab_->probe(addr::kServer, addr::kAcme, "tcp/9000"))
      << "another port of the provider";
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/8443"))
      << "the provider came in on the outbound link's port";
  EXPECT_TRUE(lab_->probe(addr::kServer, addr::kAttacker, "tcp/8443"))
      << "traffic to a non-provider address was restricted";
}

TEST_F(EnforcementTest, GuardedPortsBlockedOnLanAndOnGateway) {
  ASSERT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "lab broken";
  ASSERT_TRUE(lab_->probe(addr::kAttacker, addr::kGwWanAttackerNet, "tcp/22")) << "lab broken";
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));

  // Through the gateway (forward hook).
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer2, "tcp/5900"));
  EXPECT_FALSE(lab_->probe(addr::kUnapproved, addr::kServer, "tcp/22"));
  EXPECT_FALSE(lab_->probe(addr::kAttackerV6, addr::kServerV6, "tcp/22"));
  // The gateway's own services (input hook).
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kGwWanAttackerNet, "tcp/22"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kGwWan, "tcp/22"));
  EXPECT_FALSE(lab_->probe(addr::kAttackerV6, addr::kGwWanAttackerNetV6, "tcp/22"));
}

TEST_F(EnforcementTest, UnrelatedTrafficStillPasses) {
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));

  // Neither provider traffic nor a guarded port: Drawbridge only restricts.
  EXPECT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/8443"));
  EXPECT_TRUE(lab_->probe(addr::kAttackerV6, addr::kServerV6, "tcp/8443"));
  EXPECT_TRUE(lab_->probe(addr::kAttacker, addr::kGwWanAttackerNet, "tcp/8443"));
  EXPECT_TRUE(lab_->probe(addr::kServer, addr::kGwWan, "tcp/8443")) << "lan to the gateway";
}

// --- windows ------------------------------------------------------------------------------------

TEST_F(EnforcementTest, GrantOpensOnTimeAndKernelClosesItAfterDaemonDies) {
  const auto from = std::chrono::ceil<std::chrono::seconds>(SysClock::now()) + 4s;
  const auto until = from + 4s;
  const auto policy = write_policy({.links = {{"maint", {addr::kServer}, {"tcp/3389"}, {}}},
                                    .grants = {{"maint", "CHG-7", from, until}}});
  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  ASSERT_LT(SysClock::now(), from - 1500ms) << "the daemon took too long; cannot test 'before'";

  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389", 800ms)) << "open too early";
  std::this_thread::sleep_until(from - 600ms);
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389", 500ms)) << "open too early";

  std::this_thread::sleep_until(from);
  EXPECT_TRUE(lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", from + 1s))
      << "the grant did not open within 1 s of " << rfc3339(from);

  // From here on only the kernel can close the window.
  daemon.kill(SIGKILL);
  (void)daemon.wait(5s);
  EXPECT_TRUE(table_exists()) << "the table died with the daemon: that fails open";
  ASSERT_LT(SysClock::now(), until - 500ms) << "too slow to check the window while open";
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"))
      << "the window closed early when the daemon died";

  std::this_thread::sleep_until(until);
  EXPECT_TRUE(lab_->probe_until(false, addr::kAcme, addr::kServer, "tcp/3389", until + 1s))
      << "still open more than 1 s after " << rfc3339(until) << " without the daemon";
  std::this_thread::sleep_until(until + 3s);
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "the window reopened";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "guard gone";
}

// The cut is the kernel's doing: the daemon is killed once the sessions run.
TEST_F(EnforcementTest, LiveSessionIsCutWhenWindowClosesEvenWithoutTheDaemon) {
  const auto from = std::chrono::ceil<std::chrono::seconds>(SysClock::now()) + 3s;
  const auto until = from + 4s;
  const auto policy =
      write_policy({.links = {{"maint", {addr::kServer, addr::kServerV6}, {"tcp/3389"}, {}}},
                    .grants = {{"maint", "CHG-8", from, until}}});
  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));

  std::this_thread::sleep_until(from);
  ASSERT_TRUE(lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", from + 1500ms))
      << "the grant did not open";
  const auto duration = std::chrono::duration_cast<Millis>(until + 2500ms - SysClock::now());
  auto v4 = lab_->stream(addr::kAcme, addr::kServer, "tcp/3389", 100ms, duration);
  auto v6 = lab_->stream(addr::kAcmeV6, addr::kServerV6, "tcp/3389", 100ms, duration);
  daemon.kill(SIGKILL);
  (void)daemon.wait(5s);

  const std::int64_t close_ms = epoch_ms(until);
  for (auto [family, stream] : {std::pair{"IPv4", &v4}, std::pair{"IPv6", &v6}}) {
    SCOPED_TRACE(family);
    const auto r = stream->wait(duration + 5s);
    const auto s = parse_stream(r);
    EXPECT_GT(s.echoes, 0) << "the session never got through: " << s.raw << r.err;
    if (s.echoes == 0) continue;
    EXPECT_GE(s.last_echo_ms, close_ms - 1000)
        << "the session died more than 1 s before the window closed: " << s.raw << r.err;
    EXPECT_LE(s.last_echo_ms, close_ms + 1000)
        << "the session outlived its window by " << (s.last_echo_ms - close_ms) << " ms";
  }
}

// --- restrict only, own table only --------------------------------------------------------------

TEST_F(EnforcementTest, OtherTablesAreNeverTouched) {
  add_other_table();
  const std::string before = list_table("other");
  ASSERT_FALSE(lab_->probe(addr::kAcme2, addr::kServer, "tcp/3389")) << "other table inactive";

  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));
  EXPECT_EQ(list_table("other"), before) << "apply changed table inet other";

  ASSERT_RAN(flush());
  EXPECT_EQ(list_table("other"), before) << "flush changed table inet other";
}

TEST_F(EnforcementTest, DropInAnotherTableStillWins) {
  add_other_table();
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));

  // Drawbridge accepts acme on tcp/3389, but the other table's drop must still apply.
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAcme2, addr::kServer, "tcp/3389"))
      << "an accept in inet drawbridge overrode a drop in inet other";
  EXPECT_TRUE(lab_->probe(addr::kAcme2, addr::kServer, "udp/3389")) << "other table drops only tcp";
}

TEST_F(EnforcementTest, FlushRemovesOnlyItsTable) {
  add_other_table();
  const auto tables_before = lab_->nft({"list", "tables"});
  ASSERT_RAN(tables_before);
  ASSERT_RAN(apply(write_policy({.links = {rdp_always()}})));
  ASSERT_TRUE(table_exists());
  ASSERT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "not enforcing";

  ASSERT_RAN(flush());
  EXPECT_FALSE(table_exists());
  EXPECT_EQ(lab_->nft({"list", "tables"}).out, tables_before.out);
  EXPECT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "something still drops";
}

TEST_F(EnforcementTest, TableNameAndLogGroupOptions) {
  const auto policy = write_policy({.links = {rdp_always()}});
  ASSERT_RAN(apply(policy, {"--table", "dbalt", "--log-group", "7"}));
  EXPECT_FALSE(table_exists("drawbridge"));
  const std::string listing = list_table("dbalt");
  EXPECT_NE(listing.find("group 7"), std::string::npos) << listing;
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));

  ASSERT_RAN(flush({"--table", "dbalt"}));
  EXPECT_FALSE(table_exists("dbalt"));
}

TEST_F(EnforcementTest, ConfigFileNamesPolicyTableGroupAndStateDir) {
  const auto policy = write_policy({.links = {rdp_always()}});
  const std::string state = lab_->temp_dir() + "/cfg-state";
  const std::string config = lab_->temp_dir() + "/enforcer.toml";
  {
    std::ofstream out(config);
    out << "policy = \"" << policy << "\"\ntable = \"dbcfg\"\nlog_group = 9\npriority = -20\n"
        << "state_dir = \"" << state << "\"\n";
  }
  ASSERT_RAN(lab_->enforcer({"apply", "--config", config}));
  const std::string listing = list_table("dbcfg");
  EXPECT_NE(listing.find("group 9"), std::string::npos) << listing;
  EXPECT_NE(listing.find("priority -20"), std::string::npos) << listing;
  EXPECT_TRUE(fs::exists(state + "/dbcfg.applied.json")) << "state not recorded in state_dir";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));
  const auto status = lab_->enforcer({"status", "--config", config});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_NE(status.out.find("serial"), std::string::npos) << status.out;

  // A flag overrides the file; an unknown key is refused with its location.
  {
    std::ofstream out(config, std::ios::app);
    out << "colour = \"blue\"\n";
  }
  const auto bad = lab_->enforcer({"apply", "--config", config});
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("enforcer.toml:6:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("colour"), std::string::npos) << bad.err;
}

// The kernel's own counters say which link allowed or denied what, and a restarted daemon finds
// the same plan in place and keeps them (it reconciles; it does not replace the table).
TEST_F(EnforcementTest, CountersAttributeDenialsAndSurviveADaemonRestart) {
  const auto policy = write_policy({.links = {rdp_always()}});
  ASSERT_RAN(apply(policy));
  ASSERT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  ASSERT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389"));
  ASSERT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));

  const auto counters = [&] {
    const auto r = lab_->enforcer({"status", "--json", "--state-dir", state_dir_});
    EXPECT_TRUE(r.ok()) << r.describe();
    return nlohmann::json::parse(r.out);
  };
  const auto before = counters();
  ASSERT_EQ(before["links"].size(), 1u) << before.dump();
  const auto& rdp = before["links"][0];
  EXPECT_EQ(rdp["link"], "rdp");
  EXPECT_GT(rdp["allowed_packets"].get<std::uint64_t>(), 0u) << before.dump();
  EXPECT_GT(rdp["denied_unapproved_source"].get<std::uint64_t>(), 0u) << before.dump();
  EXPECT_EQ(rdp["denied_outside_window"].get<std::uint64_t>(), 0u) << before.dump();
  EXPECT_GT(before["guard_denied"].get<std::uint64_t>(), 0u) << before.dump();
  EXPECT_EQ(before["open"].size(), 4u) << "tcp and udp, IPv4 and IPv6: " << before.dump();

  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  for (int i = 0; i < 30 && daemon.err().find("already in the kernel") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(daemon.err().find("already in the kernel"), std::string::npos) << daemon.err();
  const auto after = counters();
  EXPECT_GE(after["links"][0]["allowed_packets"].get<std::uint64_t>(),
            rdp["allowed_packets"].get<std::uint64_t>())
      << "restarting reset the counters: the table was replaced";
  EXPECT_GE(after["guard_denied"].get<std::uint64_t>(),
            before["guard_denied"].get<std::uint64_t>());
}

// Signed bundles end to end: the controller signs, the enforcer in gw accepts only what its trust
// file allows, and a refusal changes nothing in the kernel.
TEST_F(EnforcementTest, SignedBundlesAreAcceptedOnlyAsTheTrustFileAllows) {
  const std::string dir = lab_->temp_dir();
  const auto controller = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DRAWBRIDGE_CONTROLLER_BIN);
    return run_host(args);
  };
  ASSERT_RAN(controller({"keygen", "--out", dir + "/provider"}));
  ASSERT_RAN(controller({"keygen", "--out", dir + "/stranger"}));
  const auto pub = [&](const std::string& name) {
    std::ifstream in(dir + "/" + name + ".pub");
    std::string key;
    in >> key;
    return key;
  };
  lab_->write_file("trust.toml", "site = \"lab\"\nprovider_keys = [\"" + pub("provider") + "\"]\n");
  lab_->write_file("enforcer.toml",
                   "trust = \"" + dir + "/trust.toml\"\nstate_dir = \"" + state_dir_ + "\"\n");
  const auto sign = [&](const PolicySpec& spec, const std::string& name, const std::string& key) {
    const auto policy = write_policy(spec, name + ".toml");
    const auto r =
        controller({"sign", policy, "--key", dir + "/" + key, "--out", dir + "/" + name});
    EXPECT_TRUE(r.ok()) << r.describe();
    return dir + "/" + name;
  };
  const auto apply_bundle = [&](const std::string& bundle) {
    return lab_->enforcer({"apply", bundle, "--config", dir + "/enforcer.toml"});
  };

  const auto v2 = sign({.serial = 2, .links = {rdp_always()}}, "v2.bundle", "provider");
  const auto applied = apply_bundle(v2);
  ASSERT_TRUE(applied.ok()) << applied.describe();
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  // Applying the very bundle in force again is idempotent; replaying it after a newer one is not.
  ASSERT_TRUE(apply_bundle(v2).ok()) << "re-applying the current bundle";
  const auto v3 = sign({.serial = 3, .links = {rdp_always()}}, "v3.bundle", "provider");
  ASSERT_TRUE(apply_bundle(v3).ok());
  const std::string kernel_before = list_table("drawbridge");

  struct Case {
    std::string bundle, reason;
  };
  const std::vector<Case> refused = {
      {v2, "not newer than the last accepted serial 3"},                         // replay
      {sign({.serial = 1, .links = {}}, "v1.bundle", "provider"), "not newer"},  // rollback
      {sign({.serial = 4, .links = {}}, "stranger.bundle", "stranger"),
       "no valid signature is from a trusted key"},
  };
  for (const auto& c : refused) {
    const auto r = apply_bundle(c.bundle);
    EXPECT_EQ(r.exit_code, 1) << c.bundle << "\n" << r.describe();
    EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
  }
  // A bundle altered after signing.
  std::string tampered;
  {
    const auto v5 = sign({.serial = 5, .links = {rdp_always()}}, "v5.bundle", "provider");
    std::ifstream in(v5, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.replace(bytes.find("203.0.113.0/28"), 14, "203.0.113.0/24");  // widened, same length
    tampered = lab_->write_file("tampered.bundle", bytes);
  }
  const auto r = apply_bundle(tampered);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("does not verify"), std::string::npos) << r.err;
  EXPECT_EQ(list_table("drawbridge"), kernel_before) << "a refused bundle changed the kernel";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389"));
}

// The customer's veto: a provider-only bundle must fit the ceiling; the customer's co-signature
// lets the same bundle through.
TEST_F(EnforcementTest, CeilingBoundsProviderOnlyBundlesAndTheCustomerCanLiftIt) {
  const std::string dir = lab_->temp_dir();
  const auto controller = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DRAWBRIDGE_CONTROLLER_BIN);
    return run_host(args);
  };
  ASSERT_RAN(controller({"keygen", "--out", dir + "/provider"}));
  ASSERT_RAN(controller({"keygen", "--out", dir + "/customer"}));
  std::string provider, customer;
  std::ifstream(dir + "/provider.pub") >> provider;
  std::ifstream(dir + "/customer.pub") >> customer;
  // The ceiling: RDP to the first server only, round the clock.
  write_policy({.serial = 1, .links = {{"rdp", {addr::kServer}, {"tcp/3389"}, {"always"}}}},
               "ceiling.toml");
  lab_->write_file("trust.toml", "site = \"lab\"\nprovider_keys = [\"" + provider +
                                     "\"]\ncustomer_keys = [\"" + customer +
                                     "\"]\nceiling = \"ceiling.toml\"\n");
  lab_->write_file("enforcer.toml",
                   "trust = \"" + dir + "/trust.toml\"\nstate_dir = \"" + state_dir_ + "\"\n");
  const auto apply_bundle = [&](const std::string& b) {
    return lab_->enforcer({"apply", b, "--config", dir + "/enforcer.toml"});
  };
  const auto wider = write_policy(
      {.serial = 2, .links = {{"rdp", {addr::kServer, addr::kServer3}, {"tcp/3389"}, {"always"}}}},
      "wider.toml");
  ASSERT_RAN(
      controller({"sign", wider, "--key", dir + "/provider", "--out", dir + "/wider.bundle"}));
  const auto refused = apply_bundle(dir + "/wider.bundle");
  EXPECT_EQ(refused.exit_code, 1) << refused.describe();
  EXPECT_NE(refused.err.find("exceeds the customer's ceiling"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(addr::kServer3), std::string::npos) << refused.err;
  EXPECT_FALSE(table_exists()) << "a refused bundle installed something";

  ASSERT_RAN(controller({"sign", dir + "/wider.bundle", "--key", dir + "/customer"}));
  const auto cosigned = apply_bundle(dir + "/wider.bundle");
  ASSERT_TRUE(cosigned.ok()) << cosigned.describe();
  EXPECT_NE(cosigned.out.find("signed by customer key"), std::string::npos) << cosigned.out;
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389"));
}

// After a reboot (no table) with the configured bundle replaced by an older one, or gone, the
// daemon protects from the bundle it accepted last.
TEST_F(EnforcementTest, DaemonBootsFromTheStoredBundle) {
  const std::string dir = lab_->temp_dir();
  signed_bundle_gateway();
  const std::string bundle = dir + "/current.bundle";
  const auto old_policy = write_policy({.serial = 1, .links = {}}, "v1.toml");
  ASSERT_RAN(
      controller({"sign", old_policy, "--key", dir + "/provider", "--out", dir + "/v1.bundle"}));
  const auto policy = write_policy({.serial = 2, .links = {rdp_always()}}, "v2.toml");
  ASSERT_RAN(controller({"sign", policy, "--key", dir + "/provider", "--out", bundle}));
  ASSERT_RAN(lab_->enforcer({"apply", "--config", dir + "/enforcer.toml"}));

  // "Reboot": the kernel loses the table; the configured file is replaced by an old bundle.
  ASSERT_RAN(flush());
  fs::copy_file(dir + "/v1.bundle", bundle, fs::copy_options::overwrite_existing);
  auto daemon = lab_->spawn_enforcer({"run", "--config", dir + "/enforcer.toml"});
  ASSERT_TRUE(wait_for_table(daemon, 3s)) << daemon.err();
  EXPECT_NE(daemon.err().find("not newer than the last accepted serial 2"), std::string::npos)
      << daemon.err();
  EXPECT_TRUE(lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s))
      << "not enforcing the stored serial 2: " << daemon.err();
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));

  // Without any file at the configured path, the stored bundle protects too.
  daemon.kill(SIGTERM);
  (void)daemon.wait(5s);
  ASSERT_RAN(flush());
  fs::remove(bundle);
  auto again = lab_->spawn_enforcer({"run", "--config", dir + "/enforcer.toml"});
  ASSERT_TRUE(wait_for_table(again, 3s)) << again.err();
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
}

// A cold start closes the last applied policy's linked services and guarded ports to everyone
// before it even reads the bundle; if the bundle then cannot be used (here: a different key
// signed it and nothing valid is stored), the gateway stays closed — nothing opens — while
// traffic to services no policy mentions still passes (restrict only).
TEST_F(EnforcementTest, ColdStartIsClosedBeforeThePolicyLoadsAndStaysClosedIfItCannot) {
  const std::string dir = lab_->temp_dir();
  signed_bundle_gateway();
  const std::string bundle = dir + "/current.bundle";
  const auto policy = write_policy({.serial = 2, .links = {rdp_always()}}, "v2.toml");
  ASSERT_RAN(controller({"sign", policy, "--key", dir + "/provider", "--out", bundle}));
  ASSERT_RAN(lab_->enforcer({"apply", "--config", dir + "/enforcer.toml"}));
  ASSERT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  ASSERT_TRUE(fs::exists(state_dir_ + "/drawbridge.closed.json"));

  // "Reboot" into a state where no bundle is usable: the configured one is signed by a key the
  // trust file does not name, and the stored one is gone.
  ASSERT_RAN(flush());
  ASSERT_RAN(controller({"sign", policy, "--key", dir + "/intruder", "--out", bundle}));
  fs::remove(state_dir_ + "/accepted.bundle");
  auto daemon = lab_->spawn_enforcer({"run", "--config", dir + "/enforcer.toml"});
  const auto exit = daemon.wait(10s);
  EXPECT_EQ(exit.exit_code, 1) << daemon.err();
  EXPECT_NE(daemon.err().find("cold start"), std::string::npos) << daemon.err();
  ASSERT_TRUE(table_exists()) << "a cold start left the gateway without a table: " << daemon.err();
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"))
      << "the provider's link is open although no policy could be loaded";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "the guard is open";
  EXPECT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/8080"))
      << "the closed table dropped traffic to a service no policy mentions";
  EXPECT_NE(list_table("drawbridge").find("drawbridge:starting:gateway"), std::string::npos);

  // With a usable (newer) bundle again, the next start replaces the closed table with it.
  const auto newer = write_policy({.serial = 3, .links = {rdp_always()}}, "v3.toml");
  ASSERT_RAN(controller({"sign", newer, "--key", dir + "/provider", "--out", bundle}));
  auto again = lab_->spawn_enforcer({"run", "--config", dir + "/enforcer.toml"});
  EXPECT_TRUE(lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 5s))
      << again.err();
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));
}

// The customer's break-glass: closes provider access at once, holds against a new policy and a
// running daemon's window edges, survives a restart, and ends only on release.
TEST_F(EnforcementTest, LockdownClosesEverythingUntilReleased) {
  const auto policy = write_policy({.links = {rdp_always()}});
  ASSERT_RAN(apply(policy));
  ASSERT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  const auto lockdown = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"lockdown", "--state-dir", state_dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    return lab_->enforcer(args);
  };
  const auto locked = lockdown({});
  ASSERT_TRUE(locked.ok()) << locked.describe();
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "lockdown left RDP open";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"))
      << "lockdown dropped the guard";

  // A newer policy and the daemon (restarted, with its window edges) stay locked down.
  ASSERT_RAN(apply(write_policy({.serial = 2, .links = {rdp_always()}}, "v2.toml")));
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "a new policy reopened it";
  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "the daemon reopened it";
  EXPECT_NE(daemon.err().find("LOCKDOWN"), std::string::npos) << daemon.err();

  // Released while the daemon runs: the daemon accepts the released table as its own.
  const auto released = lockdown({"--release"});
  ASSERT_TRUE(released.ok()) << released.describe();
  EXPECT_TRUE(
      lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s));
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  EXPECT_TRUE(daemon.running()) << daemon.err();
}

// Freeze protection: the daemon warns ahead of `expires`, and when it passes without a newer
// policy every provider link closes in the kernel, not just in a flag.
TEST_F(EnforcementTest, ExpiryIsWarnedAheadAndClosesProviderAccess) {
  const auto expires = now_seconds() + 4s;
  const auto policy = write_policy({.links = {rdp_always()}, .expires = expires});
  const std::string config = lab_->write_file(
      "enforcer.toml", "expiry_warning_hours = 1\nstate_dir = \"" + state_dir_ + "\"\n");
  auto daemon = lab_->spawn_enforcer({"run", "--config", config, "--policy", policy});
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  ASSERT_TRUE(
      lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s));
  EXPECT_NE(daemon.err().find("expires " + rfc3339(expires)), std::string::npos) << daemon.err();

  std::this_thread::sleep_until(expires);
  EXPECT_TRUE(lab_->probe_until(false, addr::kAcme, addr::kServer, "tcp/3389", expires + 1s))
      << "still open more than 1 s after the policy expired";
  std::this_thread::sleep_for(500ms);
  EXPECT_NE(daemon.err().find("has expired"), std::string::npos) << daemon.err();
  EXPECT_NE(list_table("drawbridge").find("drawbridge:policy-expired:link/rdp"), std::string::npos);
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "guard gone at expiry";
}

// --- the daemon ---------------------------------------------------------------------------------

TEST_F(EnforcementTest, SigtermLeavesTableAndEnforcementInPlace) {
  const auto now = now_seconds();
  const auto policy =
      write_policy({.links = {rdp_always(), {"later", {addr::kServer3}, {"tcp/3389"}, {}}},
                    .grants = {{"later", "CHG-9", now + 1h, now + 2h}}});
  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  ASSERT_TRUE(
      lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s));
  const Listing before = normalise(list_table("drawbridge"));

  daemon.kill(SIGTERM);
  const auto stopped = daemon.wait(10s);
  EXPECT_FALSE(stopped.timed_out) << "SIGTERM did not stop the daemon";
  EXPECT_EQ(stopped.exit_code, 0) << stopped.describe();

  ASSERT_TRUE(table_exists()) << "stopping removed the table: that fails open";
  EXPECT_EQ(normalise(list_table("drawbridge")).text, before.text) << "stopping changed the table";
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389")) << "outside its grant";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389")) << "unapproved source";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "guarded";
}

// Someone runs `nft flush ruleset` (in the lab's gw only) or deletes one of drawbridge's rules:
// the daemon hears the kernel's change notification and restores its table within a second.
TEST_F(EnforcementTest, DaemonRepairsTamperingWithinASecond) {
  const auto policy = write_policy({.links = {rdp_always()}});
  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  ASSERT_TRUE(
      lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s));
  ASSERT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));

  ASSERT_RAN(lab_->nft({"flush", "ruleset"}));
  const auto flushed = SysClock::now();
  bool back = false;
  while (!back && SysClock::now() < flushed + 1s) {
    std::this_thread::sleep_for(20ms);
    back = table_exists();
  }
  EXPECT_TRUE(back) << "not restored within 1 s of `nft flush ruleset`: " << daemon.err();
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "guard not restored";
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "open window not restored";

  // One rule removed: the jump from the forward hook into drawbridge's gate.
  const auto listing = lab_->nft({"-a", "list", "chain", "inet", "drawbridge", "forward"});
  ASSERT_RAN(listing);
  const auto at = listing.out.rfind("# handle ");
  ASSERT_NE(at, std::string::npos) << listing.out;
  const std::string handle = listing.out.substr(at + 9, listing.out.find('\n', at) - at - 9);
  ASSERT_RAN(lab_->nft({"delete", "rule", "inet", "drawbridge", "forward", "handle", handle}));
  EXPECT_TRUE(
      lab_->probe_until(false, addr::kAttacker, addr::kServer, "tcp/22", SysClock::now() + 1s))
      << "the deleted rule was not restored within 1 s: " << daemon.err();
  EXPECT_NE(daemon.err().find("restoring"), std::string::npos) << daemon.err();
  EXPECT_TRUE(daemon.running()) << daemon.err();
}

TEST_F(EnforcementTest, SighupReloadsPolicy) {
  const auto policy =
      write_policy({.serial = 1, .links = {{"rdp", {addr::kServer}, {"tcp/3389"}, {"always"}}}});
  auto daemon = start_daemon(policy);
  ASSERT_TRUE(wait_for_table(daemon, 3s));
  ASSERT_TRUE(
      lab_->probe_until(true, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s));
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389"));

  (void)write_policy({.serial = 2, .links = {{"rdp", {addr::kServer3}, {"tcp/3389"}, {"always"}}}});
  daemon.kill(SIGHUP);

  EXPECT_TRUE(
      lab_->probe_until(true, addr::kAcme, addr::kServer3, "tcp/3389", SysClock::now() + 5s))
      << "the new host did not open after SIGHUP";
  EXPECT_TRUE(
      lab_->probe_until(false, addr::kAcme, addr::kServer, "tcp/3389", SysClock::now() + 2s))
      << "the old host stayed open after SIGHUP";
  EXPECT_TRUE(daemon.running()) << "SIGHUP stopped the daemon: " << daemon.err();
}

// --- render and apply agree ---------------------------------------------------------------------

TEST_F(EnforcementTest, ApplyInstallsWhatRenderPrints) {
  const auto now = now_seconds();
  const auto policy = write_policy({
      .links = {rdp_always(),
                {"maint", {addr::kServer2, addr::kServer2V6}, {"tcp/22"}, {}},
                {"vnc", {addr::kServer3}, {"tcp/5900"}, {}}},
      .grants = {{"maint", "CHG-10", now - 1h, now + 1h}, {"vnc", "CHG-11", now + 1h, now + 2h}},
  });
  ASSERT_RAN(apply(policy));
  const auto rendered = lab_->enforcer({"render", policy, "--at", rfc3339(now)});
  ASSERT_RAN(rendered);

  ScratchNamespace fresh(lab_->prefix() + "fresh");
  const std::string script = lab_->write_file("rendered.nft", rendered.out);
  const auto loaded = run_host({"ip", "netns", "exec", fresh.name(), "nft", "-f", script});
  ASSERT_TRUE(loaded.ok()) << "render output does not load with nft -f: " << loaded.describe()
                           << "\n--- rendered ---\n"
                           << rendered.out;
  const auto listed =
      run_host({"ip", "netns", "exec", fresh.name(), "nft", "list", "table", "inet", "drawbridge"});
  ASSERT_RAN(listed);

  const Listing from_apply = normalise(list_table("drawbridge"));
  const Listing from_render = normalise(listed.out);
  EXPECT_EQ(from_apply.text, from_render.text);
  ASSERT_EQ(from_apply.timeouts_ms.size(), from_render.timeouts_ms.size());
  for (std::size_t i = 0; i < from_apply.timeouts_ms.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(from_apply.timeouts_ms[i]),
                static_cast<double>(from_render.timeouts_ms[i]), 3000.0)
        << "timeout #" << i;
  }
}

// The per-source log rate's meters and deny chains: what apply commits through libnftnl is what
// nft itself makes of the rendered text.
TEST_F(EnforcementTest, ApplyInstallsWhatRenderPrintsWithTheLogRate) {
  const auto now = now_seconds();
  const auto policy = write_policy({.links = {rdp_always()}});
  const auto config = lab_->write_file("rate.toml", "log_rate_per_source = 100\n");
  ASSERT_RAN(apply(policy, {"--config", config}));
  const auto rendered =
      lab_->enforcer({"render", policy, "--config", config, "--at", rfc3339(now)});
  ASSERT_RAN(rendered);
  ASSERT_NE(rendered.out.find("limit rate 100/second"), std::string::npos) << rendered.out;

  ScratchNamespace fresh(lab_->prefix() + "fresh");
  const std::string script = lab_->write_file("rendered.nft", rendered.out);
  const auto loaded = run_host({"ip", "netns", "exec", fresh.name(), "nft", "-f", script});
  ASSERT_TRUE(loaded.ok()) << "render output does not load with nft -f: " << loaded.describe()
                           << "\n--- rendered ---\n"
                           << rendered.out;
  const auto listed =
      run_host({"ip", "netns", "exec", fresh.name(), "nft", "list", "table", "inet", "drawbridge"});
  ASSERT_RAN(listed);
  EXPECT_EQ(normalise(list_table("drawbridge")).text, normalise(listed.out).text);
}

// --- pure subcommands (no kernel, no root) ------------------------------------------------------

class EnforcerCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        (fs::temp_directory_path() / ("drawbridge-cli-" + NamespaceLab::unique_prefix())).string();
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  static RunResult enforcer(std::vector<std::string> args) {
    args.insert(args.begin(), enforcer_bin());
    return run_host(args);
  }
  std::string dir_;
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

TEST_F(EnforcerCliTest, CheckAcceptsAValidPolicy) {
  const auto now = now_seconds();
  const auto r =
      enforcer({"check", write("ok.toml", to_toml({.links = {rdp_always()},
                                                   .grants = {{"rdp", "CHG-1", now, now + 1h}}}))});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(EnforcerCliTest, CheckReportsErrorsWithFileLineColumn) {
  std::string text = to_toml({.links = {rdp_always()}});
  text.replace(text.find("provider = \"acme\""), std::string("provider = \"acme\"").size(),
               "provider = \"nobody\"");
  const std::string path = write("bad.toml", text);
  const auto r = enforcer({"check", path});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(std::regex_search(
      r.err, std::regex(std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                        R"(:\d+:\d+)")))
      << "no file:line:col in: " << r.err;
  EXPECT_NE(r.err.find("nobody"), std::string::npos) << r.err;
}

TEST_F(EnforcerCliTest, ExplainSaysAllowOrDeny) {
  const auto now = now_seconds();
  const std::string path =
      write("p.toml", to_toml({.links = {rdp_always(), {"maint", {addr::kServer2}, {"tcp/22"}, {}}},
                               .grants = {{"maint", "CHG-12", now + 1h, now + 2h}}}));
  const auto explain = [&](const char* from, const char* to, const char* port,
                           std::optional<sys_seconds> at = std::nullopt) {
    std::vector<std::string> args{"explain", path, "--from", from, "--to", to, "--port", port};
    if (at) {
      args.push_back("--at");
      args.push_back(rfc3339(*at));
    }
    auto r = enforcer(args);
    return lower(r.out + r.err);
  };
  EXPECT_NE(explain(addr::kAcme, addr::kServer, "tcp/3389").find("allow"), std::string::npos);
  EXPECT_NE(explain(addr::kAttacker, addr::kServer, "tcp/3389").find("deny"), std::string::npos);
  EXPECT_NE(explain(addr::kAcme, addr::kServer, "tcp/8080").find("deny"), std::string::npos);
  EXPECT_NE(explain(addr::kAcme, addr::kServer2, "tcp/22").find("deny"), std::string::npos);
  EXPECT_NE(explain(addr::kAcme, addr::kServer2, "tcp/22", now + 90min).find("allow"),
            std::string::npos)
      << "inside grant CHG-12";
}

}  // namespace
}  // namespace drawbridge::lab
