// explain(): walks the compiled plan like the kernel and says why a connection passes or not.
// Policies are written inline; the expected texts are complete, so a change of wording or of a
// computed instant shows up here.
//
// The policy below (timezone UTC, 2026-11-26 is a Thursday):
//   acme 203.0.113.0/28 + 2001:db8:100::/48 → rdp: 10.20.0.0/28, 2001:db8:20::/64 on tcp/3389,
//   window "office" Mon-Fri 09:00-17:00, grant CHG-7 Sat 2026-11-28 10:00-12:00 for 10.20.0.10;
//   guard tcp/22 and tcp/3389; expires 2026-12-31T00:00Z.
#include "enforcer/explain.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/policy_parser.h"
#include "enforcer/ruleset_plan.h"

namespace drawbridge {
namespace {

Instant utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi};
}

Policy parse(std::string_view text) {
  const ParsedPolicy parsed = parse_policy_text(text, "explain.toml");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  return parsed.ok() ? *parsed.policy : Policy{};
}

constexpr std::string_view kOffice = R"(version = 1
site = "gw1"
serial = 3
timezone = "UTC"
expires = 2026-12-31T00:00:00Z

[providers.acme]
addresses = ["203.0.113.0/28", "2001:db8:100::/48"]

[windows.office]
days = ["mon", "tue", "wed", "thu", "fri"]
from = "09:00"
to   = "17:00"

[[links]]
name     = "rdp"
provider = "acme"
hosts    = ["10.20.0.0/28", "2001:db8:20::/64"]
ports    = ["tcp/3389"]
windows  = ["office"]

[[grants]]
link   = "rdp"
ticket = "CHG-7"
from   = 2026-11-28T10:00:00Z
until  = 2026-11-28T12:00:00Z
hosts  = ["10.20.0.10"]

[guard]
ports = ["tcp/22", "tcp/3389"]
)";

Connection conn(std::string_view from, std::string_view to, std::uint16_t port,
                Protocol proto = Protocol::tcp) {
  return Connection{Address::parse(from).value(), Address::parse(to).value(), proto, port};
}

class Explain : public testing::Test {
 protected:
  Explanation at(Instant t, const Connection& c, const CompileOptions& opt = {}) {
    return explain(policy, compile(policy, t, opt), c);
  }
  Policy policy = parse(kOffice);
};

TEST_F(Explain, AllowedInsideTheWindowNamesLinkWindowAndEnd) {
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("203.0.113.5", "10.20.0.3", 3389));
  EXPECT_TRUE(ex.allowed);
  EXPECT_EQ(ex.text,
            "allow: 203.0.113.5 → 10.20.0.3 tcp/3389 at 2026-11-26T10:00:00Z\n"
            "  link rdp (provider acme, inbound)\n"
            "  open by window office until 2026-11-26T17:00:00Z\n");
}

TEST_F(Explain, AllowedByAGrantNamesTheTicket) {
  // Saturday: no window, the grant opens 10.20.0.10 only.
  const Explanation ex = at(utc(2026, 11, 28, 11), conn("203.0.113.5", "10.20.0.10", 3389));
  EXPECT_TRUE(ex.allowed);
  EXPECT_EQ(ex.text,
            "allow: 203.0.113.5 → 10.20.0.10 tcp/3389 at 2026-11-28T11:00:00Z\n"
            "  link rdp (provider acme, inbound)\n"
            "  open by grant CHG-7 until 2026-11-28T12:00:00Z\n");
  // The grant's neighbour is not open.
  EXPECT_FALSE(at(utc(2026, 11, 28, 11), conn("203.0.113.5", "10.20.0.11", 3389)).allowed);
}

TEST_F(Explain, DeniedOutsideTheWindowSaysWhenItOpensNext) {
  const Explanation ex = at(utc(2026, 11, 26, 18), conn("203.0.113.5", "10.20.0.3", 3389));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(ex.text,
            "deny: 203.0.113.5 → 10.20.0.3 tcp/3389 at 2026-11-26T18:00:00Z\n"
            "  reason: outside-window (link/rdp), logged to NFLOG group 100\n"
            "  link rdp is closed now; it opens next 2026-11-27T09:00:00Z until "
            "2026-11-27T17:00:00Z\n");
}

TEST_F(Explain, DeniedBeforeTheGrantSaysTheGrantOpensItNext) {
  // Saturday 08:00, for the grant's own host: the grant (10:00) comes before Monday's window.
  const Explanation ex = at(utc(2026, 11, 28, 8), conn("203.0.113.5", "10.20.0.10", 3389));
  EXPECT_FALSE(ex.allowed);
  EXPECT_NE(ex.text.find("reason: outside-window (link/rdp)"), std::string::npos) << ex.text;
  EXPECT_NE(ex.text.find("it opens next 2026-11-28T10:00:00Z until 2026-11-28T12:00:00Z"),
            std::string::npos)
      << ex.text;
}

// Disabled: documents a defect of explain (reported, not fixed here). next_opening() knows only
// the link, not the host, so for a host the grant does not cover explain promises the grant's
// opening: "it opens next 2026-11-28T10:00:00Z" although 10.20.0.3 stays closed until the
// window on Monday 2026-11-30 09:00Z.
TEST_F(Explain, NextOpeningIsForTheConnectionsHost) {
  const Explanation ex = at(utc(2026, 11, 28, 8), conn("203.0.113.5", "10.20.0.3", 3389));
  EXPECT_FALSE(ex.allowed);
  EXPECT_NE(ex.text.find("it opens next 2026-11-30T09:00:00Z until 2026-11-30T17:00:00Z"),
            std::string::npos)
      << ex.text;
}

TEST_F(Explain, UnapprovedSourceToALinkedHostAndPort) {
  // Inside the window too: the window is for acme, not for anyone who can reach the gateway.
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("198.51.100.7", "10.20.0.3", 3389));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(
      ex.text,
      "deny: 198.51.100.7 → 10.20.0.3 tcp/3389 at 2026-11-26T10:00:00Z\n"
      "  reason: unapproved-source (link/rdp), logged to NFLOG group 100\n"
      "  198.51.100.7 is not an address of provider acme, the only provider link rdp admits\n");
}

TEST_F(Explain, UnapprovedHost) {
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("203.0.113.5", "10.30.0.1", 3389));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(ex.text,
            "deny: 203.0.113.5 → 10.30.0.1 tcp/3389 at 2026-11-26T10:00:00Z\n"
            "  reason: unapproved-host (provider/acme), logged to NFLOG group 100\n"
            "  no link of this provider covers this host\n");
}

TEST_F(Explain, UnapprovedPort) {
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("203.0.113.5", "10.20.0.3", 22));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(ex.text,
            "deny: 203.0.113.5 → 10.20.0.3 tcp/22 at 2026-11-26T10:00:00Z\n"
            "  reason: unapproved-port (provider/acme), logged to NFLOG group 100\n"
            "  the host is in a link of this provider, but not with this port\n");
  // The link is tcp only: udp/3389 on a linked host is an unapproved port as well.
  const Explanation udp =
      at(utc(2026, 11, 26, 10), conn("203.0.113.5", "10.20.0.3", 3389, Protocol::udp));
  EXPECT_FALSE(udp.allowed);
  EXPECT_NE(udp.text.find("10.20.0.3 udp/3389"), std::string::npos) << udp.text;
  EXPECT_NE(udp.text.find("reason: unapproved-port (provider/acme)"), std::string::npos)
      << udp.text;
}

TEST_F(Explain, GuardedPortFromANonProvider) {
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("198.51.100.7", "10.30.0.1", 22));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(ex.text,
            "deny: 198.51.100.7 → 10.30.0.1 tcp/22 at 2026-11-26T10:00:00Z\n"
            "  reason: unapproved-source (guard), logged to NFLOG group 100\n"
            "  the port is guarded: only an open link may reach it\n");
  // Guarded for udp? No: only tcp/22 is listed.
  EXPECT_TRUE(
      at(utc(2026, 11, 26, 10), conn("198.51.100.7", "10.30.0.1", 22, Protocol::udp)).allowed);
}

TEST_F(Explain, PolicyExpired) {
  // Monday 2027-01-04 10:00 would be inside "office", but the policy expired on 31 December.
  const Explanation ex = at(utc(2027, 1, 4, 10), conn("203.0.113.5", "10.20.0.3", 3389));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(ex.text,
            "deny: 203.0.113.5 → 10.20.0.3 tcp/3389 at 2027-01-04T10:00:00Z\n"
            "  reason: policy-expired (link/rdp), logged to NFLOG group 100\n"
            "  the policy expired 2026-12-31T00:00:00Z; all provider access is closed until a "
            "newer policy is applied\n");
}

TEST_F(Explain, NonProviderTrafficElsewhereIsNotRestricted) {
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("10.20.0.3", "198.51.100.80", 443));
  EXPECT_TRUE(ex.allowed);
  EXPECT_EQ(ex.text,
            "allow: 10.20.0.3 → 198.51.100.80 tcp/443 at 2026-11-26T10:00:00Z\n"
            "  not provider traffic and not to a linked or guarded service: drawbridge does not "
            "restrict it (other firewall rules still apply)\n");
  // A linked host on a port no link and no guard mentions.
  EXPECT_TRUE(at(utc(2026, 11, 26, 18), conn("198.51.100.7", "10.20.0.3", 80)).allowed);
}

TEST_F(Explain, Ipv6) {
  const Explanation open =
      at(utc(2026, 11, 26, 10), conn("2001:db8:100::5", "2001:db8:20::9", 3389));
  EXPECT_TRUE(open.allowed);
  EXPECT_EQ(open.text,
            "allow: 2001:db8:100::5 → 2001:db8:20::9 tcp/3389 at 2026-11-26T10:00:00Z\n"
            "  link rdp (provider acme, inbound)\n"
            "  open by window office until 2026-11-26T17:00:00Z\n");

  const Explanation closed =
      at(utc(2026, 11, 26, 18), conn("2001:db8:100::5", "2001:db8:20::9", 3389));
  EXPECT_FALSE(closed.allowed);
  EXPECT_NE(closed.text.find("reason: outside-window (link/rdp)"), std::string::npos)
      << closed.text;

  const Explanation foreign =
      at(utc(2026, 11, 26, 10), conn("2001:db8:999::1", "2001:db8:20::9", 3389));
  EXPECT_FALSE(foreign.allowed);
  EXPECT_NE(foreign.text.find("reason: unapproved-source (link/rdp)"), std::string::npos)
      << foreign.text;

  const Explanation host =
      at(utc(2026, 11, 26, 10), conn("2001:db8:100::5", "2001:db8:21::1", 3389));
  EXPECT_FALSE(host.allowed);
  EXPECT_NE(host.text.find("reason: unapproved-host (provider/acme)"), std::string::npos)
      << host.text;

  // The v4 grant does not open the v6 hosts on Saturday.
  EXPECT_FALSE(at(utc(2026, 11, 28, 11), conn("2001:db8:100::5", "2001:db8:20::9", 3389)).allowed);
}

TEST_F(Explain, NamesTheConfiguredLogGroup) {
  CompileOptions opt;
  opt.log_group = 5;
  const Explanation ex = at(utc(2026, 11, 26, 10), conn("203.0.113.5", "10.30.0.1", 3389), opt);
  EXPECT_NE(ex.text.find("logged to NFLOG group 5\n"), std::string::npos) << ex.text;
}

TEST(ExplainOutbound, HostDialingTheProviderIsAllowedRoundTheClock) {
  const Policy policy = parse(R"(version = 1
site = "gw1"
serial = 1
timezone = "Europe/Berlin"

[providers.relay]
addresses = ["198.51.100.64/27"]

[[links]]
name      = "rmm"
provider  = "relay"
direction = "outbound"
hosts     = ["192.168.1.20"]
ports     = ["tcp/443"]
windows   = ["always"]
)");
  const RulesetPlan plan = compile(policy, utc(2026, 6, 1), CompileOptions{});
  const Explanation ex = explain(policy, plan, conn("192.168.1.20", "198.51.100.70", 443));
  EXPECT_TRUE(ex.allowed);
  EXPECT_EQ(ex.text,
            "allow: 192.168.1.20 → 198.51.100.70 tcp/443 at 2026-06-01T00:00:00Z\n"
            "  link rmm (provider relay, outbound)\n"
            "  open by window always with no end\n");
  // Another LAN host dialling the relay: the relay's addresses are the provider's, so it is an
  // unapproved host of that provider.
  const Explanation other = explain(policy, plan, conn("192.168.1.21", "198.51.100.70", 443));
  EXPECT_FALSE(other.allowed);
  EXPECT_NE(other.text.find("reason: unapproved-host (provider/relay)"), std::string::npos)
      << other.text;
  // The right host on another port.
  const Explanation port = explain(policy, plan, conn("192.168.1.20", "198.51.100.70", 8443));
  EXPECT_FALSE(port.allowed);
  EXPECT_NE(port.text.find("reason: unapproved-port (provider/relay)"), std::string::npos)
      << port.text;
  // The provider connecting in: outbound links admit nothing inbound.
  const Explanation in = explain(policy, plan, conn("198.51.100.70", "192.168.1.20", 443));
  EXPECT_FALSE(in.allowed);
}

TEST(ExplainSchool, AnotherProvidersLinkIsAnUnapprovedSource) {
  const ParsedPolicy parsed = parse_policy_file(std::string(DRAWBRIDGE_SOURCE_DIR) +
                                                "/policies/valid/school-multi-window.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Policy& policy = *parsed.policy;
  // Sun 2027-02-28 23:30 Sydney: both links are open, each for its own provider only.
  const RulesetPlan plan = compile(policy, utc(2027, 2, 28, 12, 30), CompileOptions{});
  const Explanation ex = explain(policy, plan, conn("203.0.113.20", "10.1.2.5", 10005));
  EXPECT_FALSE(ex.allowed);
  EXPECT_EQ(ex.text,
            "deny: 203.0.113.20 → 10.1.2.5 tcp/10005 at 2027-02-28T12:30:00Z\n"
            "  reason: unapproved-source (link/backup-agent), logged to NFLOG group 100\n"
            "  203.0.113.20 is not an address of provider backup_vendor, the only provider link "
            "backup-agent admits\n");
  const Explanation own =
      explain(policy, plan, conn("198.51.100.9", "10.1.2.5", 10000, Protocol::udp));
  EXPECT_TRUE(own.allowed);
  EXPECT_EQ(own.text,
            "allow: 198.51.100.9 → 10.1.2.5 udp/10000 at 2027-02-28T12:30:00Z\n"
            "  link backup-agent (provider backup_vendor, inbound)\n"
            "  open by window overnight until 2027-02-28T18:00:00Z\n");
}

TEST(ExplainSchool, SubsetGrantOpensOnlyItsHosts) {
  const ParsedPolicy parsed = parse_policy_file(std::string(DRAWBRIDGE_SOURCE_DIR) +
                                                "/policies/valid/school-multi-window.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Policy& policy = *parsed.policy;
  // Mon 2027-03-01 09:00 Sydney (+11): INC-77 opens 10.1.0.128/25 and 10.1.1.5 until 10:30.
  const RulesetPlan plan = compile(policy, utc(2027, 2, 28, 22), CompileOptions{});
  const Explanation in = explain(policy, plan, conn("203.0.113.40", "10.1.0.200", 22));
  EXPECT_TRUE(in.allowed);
  EXPECT_EQ(in.text,
            "allow: 203.0.113.40 → 10.1.0.200 tcp/22 at 2027-02-28T22:00:00Z\n"
            "  link ssh-admin (provider helpdesk, inbound)\n"
            "  open by grant INC-77 until 2027-02-28T23:30:00Z\n");
  const Explanation out = explain(policy, plan, conn("203.0.113.40", "10.1.0.100", 22));
  EXPECT_FALSE(out.allowed);
  EXPECT_NE(out.text.find("reason: outside-window (link/ssh-admin)"), std::string::npos)
      << out.text;
}

// Disabled: documents a defect of explain (reported, not fixed here). The text names every
// window of the link, not the one that is open: at Sun 2027-02-28 23:30 Sydney only "weekend"
// is open, but explain says "open by window early, weekend until 2027-02-28T12:59:00Z".
TEST(ExplainSchool, NamesOnlyTheOpenWindow) {
  const ParsedPolicy parsed = parse_policy_file(std::string(DRAWBRIDGE_SOURCE_DIR) +
                                                "/policies/valid/school-multi-window.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const RulesetPlan plan = compile(*parsed.policy, utc(2027, 2, 28, 12, 30), CompileOptions{});
  const Explanation ex = explain(*parsed.policy, plan, conn("203.0.113.20", "10.1.0.5", 22));
  EXPECT_TRUE(ex.allowed);
  EXPECT_NE(ex.text.find("  open by window weekend until 2027-02-28T12:59:00Z\n"),
            std::string::npos)
      << ex.text;
}

}  // namespace
}  // namespace drawbridge
