// Ceiling containment (the customer's veto), one dimension at a time, with policies parsed from
// inline TOML. Weekdays checked with `date -u -d`: 2026-11-23 and 2026-10-26 are Mondays; US DST
// ends 2026-11-01 (America/Chicago goes from UTC-5 to UTC-6).
#include "common/ceiling.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/policy_parser.h"
#include "common/window_schedule.h"

namespace drawbridge {
namespace {

// One policy in the schema, with each part replaceable; the defaults are the ceiling.
struct Text {
  std::string timezone = "UTC";
  std::string expires = "expires = 2026-12-31T00:00:00Z";
  std::string addresses = R"(["203.0.113.0/28", "2001:db8:100::/48"])";
  std::string days = R"(["mon","tue","wed","thu","fri"])";
  std::string from = "22:00";
  std::string to = "02:00";
  std::string hosts = R"(["10.20.0.0/28"])";
  std::string ports = R"(["tcp/3389", "udp/3389"])";
  std::string windows = R"(["weeknights"])";
  std::string guard = R"(["tcp/22", "tcp/3389", "tcp/5900"])";
  std::string extra;  // more tables, after everything else

  [[nodiscard]] std::string str() const {
    return "version = 1\nsite = \"clinic-east\"\nserial = 1\ntimezone = \"" + timezone + "\"\n" +
           expires + "\n[providers.acme]\naddresses = " + addresses +
           "\n[windows.weeknights]\ndays = " + days + "\nfrom = \"" + from + "\"\nto = \"" + to +
           "\"\n[[links]]\nname = \"rdp\"\nprovider = \"acme\"\nhosts = " + hosts +
           "\nports = " + ports + "\nwindows = " + windows + "\n[guard]\nports = " + guard + "\n" +
           extra;
  }
};

Policy parse(const Text& t) {
  const ParsedPolicy parsed = parse_policy_text(t.str(), "test.toml");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str() << "\n" << t.str();
  return parsed.policy.value_or(Policy{});
}

Instant at(std::string_view text) {
  return parse_instant(text).value();
}

const Instant kNow = at("2026-11-23T00:00:00Z");  // a Monday

std::vector<std::string> check(const Text& bundle, const Text& ceiling = {}, Instant now = kNow) {
  std::vector<std::string> out;
  for (const auto& v : exceeds_ceiling(parse(bundle), parse(ceiling), now)) out.push_back(v.what);
  return out;
}

using Texts = std::vector<std::string>;

TEST(Ceiling, BundleEqualToCeilingFits) {
  EXPECT_EQ(check(Text{}), Texts{});
}

TEST(Ceiling, NarrowerBundleFits) {
  Text b;
  b.addresses = R"(["203.0.113.4/30"])";
  b.hosts = R"(["10.20.0.10"])";
  b.ports = R"(["tcp/3389"])";
  b.from = "23:00";
  b.to = "01:00";
  b.days = R"(["tue"])";
  b.guard = R"(["tcp/1-1024", "tcp/3389", "tcp/5900"])";
  b.expires = "expires = 2026-12-01T00:00:00Z";
  EXPECT_EQ(check(b), Texts{});
}

// --- Rule 1: sources ----------------------------------------------------------------------------

TEST(Ceiling, WiderSourcePrefix) {
  Text b;
  b.addresses = R"(["203.0.113.0/27", "2001:db8:100::/48"])";
  EXPECT_EQ(check(b), Texts{"provider 'acme' address 203.0.113.0/27 is outside the ceiling's "
                            "addresses for it (203.0.113.0/28, 2001:db8:100::/48)"});
}

TEST(Ceiling, NewProvider) {
  Text b;
  b.extra = R"([providers.beta]
addresses = ["198.51.100.0/24"]
[[links]]
name = "beta-ssh"
provider = "beta"
hosts = ["10.20.0.5"]
ports = ["tcp/22"]
windows = ["always"]
)";
  EXPECT_EQ(check(b), Texts{"provider 'beta' is not in the ceiling (it allows providers 'acme')"});
}

// --- Rule 2: hosts and ports --------------------------------------------------------------------

TEST(Ceiling, HostOutside) {
  Text b;
  b.hosts = R"(["10.20.0.0/28", "10.20.1.5"])";
  EXPECT_EQ(check(b), Texts{"link 'rdp' host 10.20.1.5 is outside the hosts of the ceiling's "
                            "inbound links for provider 'acme' (10.20.0.0/28)"});
}

TEST(Ceiling, PortOutside) {
  Text b;
  b.ports = R"(["tcp/3389", "udp/3389", "tcp/22"])";
  EXPECT_EQ(check(b), Texts{"link 'rdp' port tcp/22 is outside the ports of the ceiling's "
                            "inbound links for provider 'acme' (tcp/3389, udp/3389)"});
}

TEST(Ceiling, PortRangePartlyOutside) {
  Text b;
  b.ports = R"(["tcp/3389-3390"])";
  EXPECT_EQ(check(b), Texts{"link 'rdp' port tcp/3389-3390 is outside the ports of the "
                            "ceiling's inbound links for provider 'acme' (tcp/3389, udp/3389)"});
}

TEST(Ceiling, OtherDirectionHasNoCounterpart) {
  Text b;
  b.extra = R"([[links]]
name = "relay"
provider = "acme"
direction = "outbound"
hosts = ["10.20.0.10"]
ports = ["tcp/443"]
windows = ["always"]
)";
  EXPECT_EQ(check(b), Texts{"link 'relay' has no counterpart: the ceiling has no outbound link "
                            "for provider 'acme'"});
}

TEST(Ceiling, CoveredByUnionOfTwoCeilingLinks) {
  Text c;
  c.hosts = R"(["10.20.0.0/29"])";
  c.ports = R"(["tcp/3389"])";
  c.extra = R"([windows.evenings]
days = ["mon","tue","wed","thu","fri"]
from = "18:00"
to = "22:00"
[[links]]
name = "rdp-b"
provider = "acme"
hosts = ["10.20.0.8/29"]
ports = ["tcp/3389"]
windows = ["weeknights"]
[[links]]
name = "rdp-udp"
provider = "acme"
hosts = ["10.20.0.0/28"]
ports = ["udp/3389"]
windows = ["weeknights"]
[[links]]
name = "rdp-evening"
provider = "acme"
hosts = ["10.20.0.0/28"]
ports = ["tcp/3389", "udp/3389"]
windows = ["evenings"]
)";
  Text b;  // 10.20.0.0/28 tcp+udp, 18:00-02:00: only the four ceiling links together allow it
  b.from = "18:00";
  EXPECT_EQ(check(b, c), Texts{});
  b.from = "17:59";
  EXPECT_EQ(check(b, c),
            Texts{"link 'rdp' is open 2026-11-23T17:59:00Z\u20132026-11-23T18:00:00Z (window "
                  "'weeknights') on 10.20.0.0/29 tcp/3389, outside the ceiling's windows "
                  "(ceiling link 'rdp': 'weeknights', ceiling link 'rdp-evening': 'evenings')"});
}

// SSH to one host and RDP to another is not SSH and RDP to both, though each host and each port
// is in some ceiling link.
TEST(Ceiling, HostAndPortMustBeAllowedTogether) {
  Text c;
  c.hosts = R"(["10.20.0.2"])";
  c.ports = R"(["tcp/3389"])";
  c.extra = R"([[links]]
name = "ssh"
provider = "acme"
hosts = ["10.20.0.1"]
ports = ["tcp/22"]
windows = ["always"]
)";
  Text b;
  b.hosts = R"(["10.20.0.1", "10.20.0.2"])";
  b.ports = R"(["tcp/22", "tcp/3389"])";
  EXPECT_EQ(check(b, c), Texts{"link 'rdp' opens 10.20.0.1 tcp/3389, which no one of the "
                               "ceiling's inbound links for provider 'acme' allows together"});
}

// The windows that count are those of the ceiling links allowing the same hosts and ports.
TEST(Ceiling, WindowsOfOtherHostsDoNotCount) {
  Text c;
  c.hosts = R"(["10.20.0.2"])";
  c.ports = R"(["tcp/3389"])";
  c.extra = R"([[links]]
name = "ssh"
provider = "acme"
hosts = ["10.20.0.1"]
ports = ["tcp/22"]
windows = ["always"]
)";
  Text b;
  b.hosts = R"(["10.20.0.2"])";
  b.ports = R"(["tcp/3389"])";
  b.windows = R"(["always"])";
  EXPECT_EQ(check(b, c), Texts{"link 'rdp' is open 2026-11-23T00:00:00Z\u20132026-11-23T22:00:00Z "
                               "(window 'always'), outside the ceiling's windows (ceiling link "
                               "'rdp': 'weeknights')"});
}

// --- Rule 3: windows ----------------------------------------------------------------------------

TEST(Ceiling, WindowStartingEarlier) {
  Text b;
  b.from = "21:00";
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-23T21:00:00Z\u20132026-11-23T22:00:00Z "
                            "(window 'weeknights'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
}

TEST(Ceiling, WindowCrossingMidnightBeyondTheCeilings) {
  Text b;
  b.to = "03:00";
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-24T02:00:00Z\u20132026-11-24T03:00:00Z "
                            "(window 'weeknights'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
}

TEST(Ceiling, ExtraDay) {
  Text b;
  b.days = R"(["mon","tue","wed","thu","fri","sun"])";
  // Sunday's occurrence began before `now` and still runs into Monday morning.
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-23T00:00:00Z\u20132026-11-23T02:00:00Z "
                            "(window 'weeknights'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
}

TEST(Ceiling, AlwaysAgainstACeilingWindow) {
  Text b;
  b.windows = R"(["always"])";
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-23T00:00:00Z\u20132026-11-23T22:00:00Z "
                            "(window 'always'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
}

TEST(Ceiling, CeilingAlwaysCoversEverything) {
  Text c;
  c.windows = R"(["always"])";
  Text b;
  b.windows = R"(["weeknights", "always"])";
  b.from = "00:00";
  b.to = "23:59";
  EXPECT_EQ(check(b, c), Texts{});
}

TEST(Ceiling, LinkWithoutWindowsOpensNothingByItself) {
  Text c;
  c.windows = "[]";
  Text b;
  b.windows = "[]";
  EXPECT_EQ(check(b, c), Texts{});
}

// The same hours in UTC, written in Chicago time (CST = UTC-6 in late November).
TEST(Ceiling, DifferentTimeZonesCompareActualTime) {
  Text b;
  b.timezone = "America/Chicago";
  b.from = "16:00";
  b.to = "20:00";
  EXPECT_EQ(check(b), Texts{});
  b.from = "17:00";
  b.to = "21:00";
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-24T02:00:00Z\u20132026-11-24T03:00:00Z "
                            "(window 'weeknights'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
}

// 17:00-21:00 Chicago is 22:00-02:00 UTC under CDT, but 23:00-03:00 UTC once DST ends on 1 Nov:
// the first week fits, the Monday after the change does not.
TEST(Ceiling, DstWeek) {
  Text b;
  b.timezone = "America/Chicago";
  b.from = "17:00";
  b.to = "21:00";
  const Instant before_change = at("2026-10-26T00:00:00Z");
  EXPECT_EQ(check(b, Text{}, before_change),
            Texts{"link 'rdp' is open 2026-11-03T02:00:00Z\u20132026-11-03T03:00:00Z (window "
                  "'weeknights'), outside the ceiling's windows (ceiling link 'rdp': "
                  "'weeknights')"});
  // A ceiling in the same zone follows the same change: it fits.
  Text c = b;
  EXPECT_EQ(check(b, c, before_change), Texts{});
}

TEST(Ceiling, BundleExpiryEndsTheComparison) {
  Text b;
  b.windows = R"(["always"])";
  b.expires = "expires = 2026-11-23T22:00:00Z";
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-23T00:00:00Z\u20132026-11-23T22:00:00Z "
                            "(window 'always'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
  b.windows = R"(["weeknights"])";
  // A Sunday window the bundle's expiry cuts short: only the hour before expiry counts.
  b.days = R"(["sun"])";
  b.to = "23:59";
  b.expires = "expires = 2026-11-29T23:00:00Z";
  EXPECT_EQ(check(b), Texts{"link 'rdp' is open 2026-11-29T22:00:00Z\u20132026-11-29T23:00:00Z "
                            "(window 'weeknights'), outside the ceiling's windows (ceiling link "
                            "'rdp': 'weeknights')"});
}

// --- Rule 4: grants -----------------------------------------------------------------------------

std::string grant(std::string_view ticket, std::string_view from, std::string_view until,
                  std::string_view hosts = "") {
  std::string g = "[[grants]]\nlink = \"rdp\"\nticket = \"" + std::string(ticket) +
                  "\"\nfrom = " + std::string(from) + "\nuntil = " + std::string(until) + "\n";
  if (!hosts.empty()) g += "hosts = " + std::string(hosts) + "\n";
  return g;
}

TEST(Ceiling, GrantOutsideTheWindows) {
  Text b;
  b.extra = grant("CHG-1042", "2026-11-24T12:00:00Z", "2026-11-24T14:00:00Z", R"(["10.20.0.10"])");
  EXPECT_EQ(check(b), Texts{"grant CHG-1042 on link 'rdp' (2026-11-24T12:00:00Z\u2013"
                            "2026-11-24T14:00:00Z) is outside the ceiling's windows; it needs a "
                            "customer signature"});
}

TEST(Ceiling, GrantPartlyOutsideTheWindowsNamesThePart) {
  Text b;
  b.extra = grant("CHG-1042", "2026-11-24T21:00:00Z", "2026-11-24T23:00:00Z");
  EXPECT_EQ(check(b),
            Texts{"grant CHG-1042 on link 'rdp' (2026-11-24T21:00:00Z\u2013"
                  "2026-11-24T23:00:00Z) at 2026-11-24T21:00:00Z\u20132026-11-24T22:00:00Z"
                  " is outside the ceiling's windows; it needs a customer signature"});
}

TEST(Ceiling, GrantInsideTheWindowsFits) {
  Text b;
  b.extra = grant("CHG-1042", "2026-11-24T23:00:00Z", "2026-11-25T01:00:00Z");
  EXPECT_EQ(check(b), Texts{});
}

TEST(Ceiling, GrantMatchingACeilingGrantFits) {
  Text c;
  c.extra = grant("CHG-1042", "2026-11-24T12:00:00Z", "2026-11-24T15:00:00Z");
  Text b;
  b.extra = grant("CHG-1042", "2026-11-24T12:00:00Z", "2026-11-24T14:00:00Z", R"(["10.20.0.10"])");
  EXPECT_EQ(check(b, c), Texts{});
  // Another ticket is another piece of work: the customer approved only CHG-1042.
  b.extra = grant("CHG-2000", "2026-11-24T12:00:00Z", "2026-11-24T14:00:00Z");
  EXPECT_EQ(check(b, c).size(), 1U);
  // The ceiling grant is for one host only; the bundle's covers all of the link's.
  c.extra = grant("CHG-1042", "2026-11-24T12:00:00Z", "2026-11-24T15:00:00Z", R"(["10.20.0.10"])");
  b.extra = grant("CHG-1042", "2026-11-24T12:00:00Z", "2026-11-24T14:00:00Z");
  EXPECT_EQ(check(b, c).size(), 1U);
}

TEST(Ceiling, PastGrantsIgnoredAndRunningGrantsClippedToNow) {
  Text b;
  b.extra = grant("OLD-1", "2026-11-01T12:00:00Z", "2026-11-01T14:00:00Z");
  EXPECT_EQ(check(b), Texts{});
  b.extra = grant("RUN-1", "2026-11-22T12:00:00Z", "2026-11-23T01:00:00Z");
  EXPECT_EQ(check(b), Texts{"grant RUN-1 on link 'rdp' (2026-11-23T00:00:00Z\u2013"
                            "2026-11-23T01:00:00Z) is outside the ceiling's windows; it needs a "
                            "customer signature"});
}

// --- Rules 5 and 6: guard and expiry ------------------------------------------------------------

TEST(Ceiling, GuardPortDropped) {
  Text b;
  b.guard = R"(["tcp/3389", "tcp/5900"])";
  EXPECT_EQ(check(b), Texts{"guard leaves tcp/22 unguarded, which the ceiling guards (tcp/22, "
                            "tcp/3389, tcp/5900)"});
  b.guard = R"(["tcp/22", "tcp/3389", "tcp/5901-5910"])";
  EXPECT_EQ(check(b), Texts{"guard leaves tcp/5900 unguarded, which the ceiling guards (tcp/22, "
                            "tcp/3389, tcp/5900)"});
}

TEST(Ceiling, GuardRangeNarrowed) {
  Text c;
  c.guard = R"(["tcp/5900-5910"])";
  Text b;
  b.guard = R"(["tcp/5900-5902", "tcp/5905"])";
  EXPECT_EQ(check(b, c), Texts{"guard leaves tcp/5903-5904, tcp/5906-5910 unguarded, which the "
                               "ceiling guards (tcp/5900-5910)"});
}

TEST(Ceiling, ExpiryLater) {
  Text b;
  b.expires = "expires = 2027-01-31T00:00:00Z";
  EXPECT_EQ(check(b), Texts{"the bundle expires 2027-01-31T00:00:00Z, after the ceiling's expiry "
                            "2026-12-31T00:00:00Z"});
}

TEST(Ceiling, ExpiryMissing) {
  Text b;
  b.expires = "";
  EXPECT_EQ(check(b), Texts{"the bundle never expires; the ceiling requires expiry by "
                            "2026-12-31T00:00:00Z"});
  Text c;
  c.expires = "";
  EXPECT_EQ(check(b, c), Texts{});
}

TEST(Ceiling, SeveralDimensionsReportedTogether) {
  Text b;
  b.addresses = R"(["203.0.113.0/27"])";
  b.ports = R"(["tcp/3389", "tcp/22"])";
  b.windows = R"(["always"])";
  b.guard = "[]";
  b.expires = "";
  EXPECT_EQ(check(b).size(), 5U);
}

}  // namespace
}  // namespace drawbridge
