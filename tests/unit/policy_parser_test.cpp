#include "common/policy_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace drawbridge {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::sys_days;

const fs::path kPolicies = fs::path(DRAWBRIDGE_SOURCE_DIR) / "policies";

Instant utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int ms = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
         milliseconds{ms};
}

AddressRange range(std::string_view text) {
  return AddressRange::parse(text).value();
}
PortRange ports(std::string_view text) {
  return PortRange::parse(text).value();
}

std::vector<AddressRange> ranges(std::initializer_list<std::string_view> texts) {
  std::vector<AddressRange> out;
  for (auto t : texts) out.push_back(range(t));
  return out;
}

// The header every inline test document starts with (lines 1-4).
constexpr std::string_view kHeader = R"(version = 1
site = "gw1"
serial = 1
timezone = "UTC"
)";

ParsedPolicy parse(std::string_view body) {
  return parse_policy_text(std::string(kHeader) + std::string(body), "test.toml");
}

// ---------------------------------------------------------------------------------------------
// The example policy, field by field

TEST(PolicyParser, ExampleParsesIntoExactModel) {
  const std::string path = (kPolicies / "clinic-east.toml").string();
  const ParsedPolicy parsed = parse_policy_file(path);
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  EXPECT_TRUE(parsed.diagnostics.errors.empty());
  const Policy& p = *parsed.policy;

  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(p.site, "clinic-east");
  EXPECT_EQ(p.serial, 7u);
  EXPECT_EQ(p.timezone, "America/Chicago");
  EXPECT_EQ(p.expires, utc(2026, 12, 31));
  EXPECT_EQ(p.source, path);

  ASSERT_EQ(p.providers.size(), 1u);
  EXPECT_EQ(p.providers[0].name, "acme");
  EXPECT_EQ(p.providers[0].addresses, ranges({"203.0.113.0/28", "2001:db8:100::/48"}));
  EXPECT_EQ(p.providers[0].where.str(), path + ":11:1");

  ASSERT_EQ(p.windows.size(), 1u);
  const Window& w = p.windows[0];
  EXPECT_EQ(w.name, "weeknights");
  EXPECT_EQ(w.days.to_string(), "0111110");  // bit 0 = sunday, printed rightmost
  EXPECT_EQ(w.from, minutes{22 * 60});
  EXPECT_EQ(w.to, minutes{2 * 60});
  EXPECT_FALSE(w.always);
  EXPECT_EQ(w.where.str(), path + ":15:1");

  ASSERT_EQ(p.links.size(), 1u);
  const Link& l = p.links[0];
  EXPECT_EQ(l.name, "rdp-servers");
  EXPECT_EQ(l.provider, "acme");
  EXPECT_EQ(l.direction, Direction::inbound);
  EXPECT_EQ(l.hosts, ranges({"10.20.0.10", "10.20.0.0/28"}));
  EXPECT_EQ(l.ports, (std::vector<PortRange>{ports("tcp/3389"), ports("udp/3389")}));
  EXPECT_EQ(l.windows, std::vector<std::string>{"weeknights"});
  EXPECT_EQ(l.where.str(), path + ":21:1");

  ASSERT_EQ(p.grants.size(), 1u);
  const Grant& g = p.grants[0];
  EXPECT_EQ(g.link, "rdp-servers");
  EXPECT_EQ(g.ticket, "CHG-1042");
  EXPECT_EQ(g.from, utc(2026, 11, 26, 14));
  EXPECT_EQ(g.until, utc(2026, 11, 26, 16));
  EXPECT_EQ(g.hosts, ranges({"10.20.0.10"}));
  EXPECT_EQ(g.where.str(), path + ":29:1");

  EXPECT_EQ(p.guard.ports, (std::vector<PortRange>{ports("tcp/22"), ports("tcp/3389"),
                                                   ports("tcp/5900"), ports("tcp/5938")}));
  EXPECT_EQ(p.guard.where.str(), path + ":36:1");

  EXPECT_NE(p.link("rdp-servers"), nullptr);
  EXPECT_NE(p.window("weeknights"), nullptr);
  EXPECT_NE(p.provider("acme"), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Values and defaults

TEST(PolicyParser, DefaultsWhenOptionalKeysAreAbsent) {
  const auto parsed = parse(R"(
[providers.p]
addresses = ["192.0.2.0/24"]
[[links]]
name = "l"
provider = "p"
hosts = ["10.0.0.1"]
ports = ["tcp/22"]
)");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Policy& p = *parsed.policy;
  EXPECT_FALSE(p.expires.has_value());
  EXPECT_EQ(p.links[0].direction, Direction::inbound);
  EXPECT_TRUE(p.links[0].windows.empty());
  EXPECT_TRUE(p.grants.empty());
  EXPECT_TRUE(p.guard.ports.empty());
  EXPECT_TRUE(p.windows.empty());
}

TEST(PolicyParser, OutboundLinkWithAlwaysAndPortRange) {
  const auto parsed = parse(R"(
[providers.relay]
addresses = ["2001:db8:200::/48"]
[[links]]
name = "rmm"
provider = "relay"
direction = "outbound"
hosts = ["2001:db8:aa::10"]
ports = ["tcp/8040-8041"]
windows = ["always"]
)");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Link& l = parsed.policy->links[0];
  EXPECT_EQ(l.direction, Direction::outbound);
  EXPECT_EQ(l.windows, std::vector<std::string>{"always"});
  ASSERT_EQ(l.ports.size(), 1u);
  EXPECT_EQ(l.ports[0].protocol, Protocol::tcp);
  EXPECT_EQ(l.ports[0].first, 8040);
  EXPECT_EQ(l.ports[0].last, 8041);
  EXPECT_EQ(l.hosts[0].family(), Family::v6);
  // "always" is built in and never appears as a user-defined window.
  EXPECT_TRUE(parsed.policy->windows.empty());
}

TEST(PolicyParser, OffsetDateTimesAreStoredAsUtcMilliseconds) {
  const auto parsed = parse(R"(expires = 2027-01-01T01:30:00+01:30
[providers.p]
addresses = ["192.0.2.0/24"]
[[links]]
name = "l"
provider = "p"
hosts = ["10.0.0.1"]
ports = ["tcp/22"]
[[grants]]
link = "l"
ticket = "T"
from = 2026-03-01T08:00:00.123456-05:00
until = 2026-03-01T13:00:00.5Z
)");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  EXPECT_EQ(parsed.policy->expires, utc(2027, 1, 1));
  const Grant& g = parsed.policy->grants[0];
  EXPECT_EQ(g.from, utc(2026, 3, 1, 13, 0, 0, 123));  // sub-millisecond part dropped
  EXPECT_EQ(g.until, utc(2026, 3, 1, 13, 0, 0, 500));
  EXPECT_TRUE(g.hosts.empty());  // all of the link's hosts
}

TEST(PolicyParser, WindowDaysAreIndexedFromSunday) {
  const auto parsed = parse(R"(
[windows.w]
days = ["sun", "sat", "wed"]
from = "00:00"
to = "23:59"
)");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Window& w = parsed.policy->windows[0];
  EXPECT_TRUE(w.days.test(0));
  EXPECT_TRUE(w.days.test(3));
  EXPECT_TRUE(w.days.test(6));
  EXPECT_EQ(w.days.count(), 3u);
  EXPECT_EQ(w.from, minutes{0});
  EXPECT_EQ(w.to, minutes{23 * 60 + 59});
}

TEST(PolicyParser, ProvidersAndWindowsSortedByNameLinksAndGrantsInFileOrder) {
  const auto parsed = parse(R"(
[providers.zeta]
addresses = ["192.0.2.0/25"]
[providers.alpha]
addresses = ["192.0.2.128/25"]
[windows.b]
days = ["mon"]
from = "01:00"
to = "02:00"
[windows.a]
days = ["mon"]
from = "01:00"
to = "02:00"
[[links]]
name = "second-alphabetically-but-first"
provider = "zeta"
hosts = ["10.0.0.1"]
ports = ["tcp/22"]
[[links]]
name = "a-last"
provider = "alpha"
hosts = ["10.0.0.2"]
ports = ["tcp/22"]
[[grants]]
link = "a-last"
ticket = "Z"
from = 2026-01-01T00:00:00Z
until = 2026-01-01T01:00:00Z
[[grants]]
link = "a-last"
ticket = "A"
from = 2026-01-01T00:00:00Z
until = 2026-01-01T01:00:00Z
)");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Policy& p = *parsed.policy;
  EXPECT_EQ(p.providers[0].name, "alpha");
  EXPECT_EQ(p.providers[1].name, "zeta");
  EXPECT_EQ(p.windows[0].name, "a");
  EXPECT_EQ(p.links[0].name, "second-alphabetically-but-first");
  EXPECT_EQ(p.links[1].name, "a-last");
  EXPECT_EQ(p.grants[0].ticket, "Z");
  EXPECT_EQ(p.grants[1].ticket, "A");
  EXPECT_EQ(p.links[1].where.str(), "test.toml:23:1");
}

TEST(PolicyParser, NameLengthLimits) {
  const std::string name48(48, 'n');
  const std::string site64(64, 's');
  const auto ok = parse_policy_text("version = 1\nsite = \"" + site64 +
                                        "\"\nserial = 1\ntimezone = \"UTC\"\n[providers." + name48 +
                                        "]\naddresses = [\"192.0.2.1\"]\n",
                                    "t.toml");
  EXPECT_TRUE(ok.ok()) << ok.diagnostics.str();

  const auto too_long = parse_policy_text("version = 1\nsite = \"" + site64 +
                                              "x\"\nserial = 1\ntimezone = \"UTC\"\n[providers." +
                                              name48 + "x]\naddresses = [\"192.0.2.1\"]\n",
                                          "t.toml");
  ASSERT_FALSE(too_long.ok());
  ASSERT_EQ(too_long.diagnostics.errors.size(), 2u) << too_long.diagnostics.str();
  EXPECT_EQ(too_long.diagnostics.errors[0].where.str(), "t.toml:2:8");
  EXPECT_EQ(too_long.diagnostics.errors[1].where.str(), "t.toml:5:12");
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

TEST(PolicyParser, CollectsEveryErrorWithItsLocation) {
  const auto parsed = parse_policy_text(R"(version = 1
site = "gw1"
serial = "7"
timezone = "Mars/Olympus"
[providers.acme]
addresses = ["203.0.113.1/28"]
[[links]]
name = "l"
provider = "nobody"
hosts = ["10.0.0.1"]
ports = ["tcp/0"]
colour = "blue"
)",
                                        "multi.toml");
  ASSERT_FALSE(parsed.ok());
  const auto& errors = parsed.diagnostics.errors;
  // Found section by section, reported in file order.
  ASSERT_EQ(errors.size(), 6u) << parsed.diagnostics.str();
  EXPECT_EQ(errors[0].str(), "multi.toml:3:10: 'serial' must be an integer, got string \"7\"");
  EXPECT_EQ(errors[1].where.str(), "multi.toml:4:12");
  EXPECT_NE(errors[1].message.find("'Mars/Olympus'"), std::string::npos);
  EXPECT_EQ(errors[2].where.str(), "multi.toml:6:14");
  EXPECT_NE(errors[2].message.find("'203.0.113.1/28' has host bits set"), std::string::npos);
  EXPECT_EQ(errors[3].str(), "multi.toml:9:12: unknown provider 'nobody' (defined: acme)");
  EXPECT_EQ(errors[4].str(), "multi.toml:11:10: 'tcp/0' is not a port: ports are 1-65535");
  EXPECT_EQ(errors[5].str(),
            "multi.toml:12:1: unknown key 'colour' in links[0] (expected: name, provider, "
            "direction, hosts, ports, windows)");
}

TEST(PolicyParser, DiagnosticsStrJoinsLinesWithoutTrailingNewline) {
  PolicyDiagnostics d;
  EXPECT_EQ(d.str(), "");
  d.errors.push_back(make_error("first", {"f.toml", 1, 2}));
  d.errors.push_back(make_error("second"));
  EXPECT_EQ(d.str(), "f.toml:1:2: first\nsecond");
}

TEST(PolicyParser, TomlSyntaxErrorCarriesLocation) {
  const auto parsed = parse_policy_text("version = 1\nsite = \"gw1\n", "broken.toml");
  ASSERT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u);
  EXPECT_EQ(parsed.diagnostics.errors[0].where.file, "broken.toml");
  EXPECT_EQ(parsed.diagnostics.errors[0].where.line, 2);
  EXPECT_GT(parsed.diagnostics.errors[0].where.column, 0);
  EXPECT_FALSE(parsed.diagnostics.errors[0].message.empty());
}

TEST(PolicyParser, UnsupportedVersionIsTheOnlyError) {
  // A version-2 document's other keys mean nothing to this enforcer; reporting them would mislead.
  const auto parsed = parse_policy_text("version = 2\nsomething_new = true\n", "v2.toml");
  ASSERT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u) << parsed.diagnostics.str();
  EXPECT_EQ(parsed.diagnostics.str(),
            "v2.toml:1:11: unsupported policy version 2; this enforcer understands version 1");
}

TEST(PolicyParser, MisspeltRequiredKeyIsReportedOnceUnrelatedUnknownKeyIsNot) {
  const auto misspelt = parse("[windows.w]\ndays = [\"mon\"]\nfrom = \"01:00\"\ntoo = \"02:00\"\n");
  ASSERT_EQ(misspelt.diagnostics.errors.size(), 1u) << misspelt.diagnostics.str();
  EXPECT_EQ(misspelt.diagnostics.str(),
            "test.toml:8:1: unknown key 'too' in windows.w (expected: days, from, to)");

  const auto unrelated =
      parse("[windows.w]\ndays = [\"mon\"]\nfrom = \"01:00\"\ncomment = \"x\"\n");
  ASSERT_EQ(unrelated.diagnostics.errors.size(), 2u) << unrelated.diagnostics.str();
  EXPECT_EQ(unrelated.diagnostics.errors[0].str(),
            "test.toml:5:1: missing required key 'windows.w.to'");
}

TEST(PolicyParser, EmptyArraysOfTablesAndEmptyGuardAreAccepted) {
  const auto parsed = parse("links = []\ngrants = []\n[guard]\n");
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  EXPECT_TRUE(parsed.policy->links.empty());
  EXPECT_TRUE(parsed.policy->guard.ports.empty());
  EXPECT_EQ(parsed.policy->guard.where.str(), "test.toml:7:1");
}

TEST(PolicyParser, BrokenLinkHostsDoNotCascadeIntoGrantErrors) {
  // The grant's host is fine; only the link's own typo should be reported.
  const auto parsed = parse(R"(
[providers.p]
addresses = ["192.0.2.0/24"]
[[links]]
name = "l"
provider = "p"
hosts = ["10.0.0.0/24", "10.0.0.999"]
ports = ["tcp/22"]
[[grants]]
link = "l"
ticket = "T"
from = 2026-01-01T00:00:00Z
until = 2026-01-01T01:00:00Z
hosts = ["10.0.0.7"]
)");
  ASSERT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u) << parsed.diagnostics.str();
  EXPECT_EQ(parsed.diagnostics.str(),
            "test.toml:11:25: '10.0.0.999' is not an IPv4/IPv6 address or CIDR prefix");
}

TEST(PolicyParser, ProviderWithBadAddressStillCountsAsDefined) {
  const auto parsed = parse(R"(
[providers.p]
addresses = ["192.0.2.0/33"]
[[links]]
name = "l"
provider = "p"
hosts = ["10.0.0.1"]
ports = ["tcp/22"]
)");
  ASSERT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u) << parsed.diagnostics.str();
  EXPECT_NE(parsed.diagnostics.str().find("invalid prefix length"), std::string::npos);
}

TEST(PolicyParser, HostsOfDifferentFamilyDoNotOverlapProviders) {
  const auto parsed = parse(R"(
[providers.p]
addresses = ["2001:db8::/32"]
[[links]]
name = "l"
provider = "p"
hosts = ["10.0.0.0/8"]
ports = ["tcp/22"]
)");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
}

// The overlap check is a sweep over sorted addresses; these are the cases a sweep can miss if it
// only remembers the furthest-reaching address.
TEST(PolicyParser, OverlapHiddenBehindTheSameProvidersWiderRangeIsFound) {
  // x's /8 reaches furthest; y's /24 overlaps it (found), and x's /28 overlaps y's /24 while the
  // furthest reaching address is x's own /8.
  const auto parsed = parse(R"(
[providers.x]
addresses = ["10.0.0.0/8", "10.0.0.16/28"]
[providers.y]
addresses = ["10.0.0.0/24"]
)");
  ASSERT_FALSE(parsed.ok());
  const auto text = parsed.diagnostics.str();
  EXPECT_EQ(parsed.diagnostics.errors.size(), 2u) << text;
  EXPECT_NE(
      text.find("'10.0.0.0/24' of provider 'y' overlaps address '10.0.0.16/28' of provider 'x'"),
      std::string::npos)
      << text;
}

TEST(PolicyParser, DisjointProvidersInterleavedAcrossFamiliesAreAccepted) {
  const auto parsed = parse(R"(
[providers.x]
addresses = ["198.51.100.0/25", "2001:db8:1::/48", "203.0.113.0/28"]
[providers.y]
addresses = ["198.51.100.128/25", "2001:db8:2::/48", "203.0.113.16/28", "::ffff:0:0/96"]
[[links]]
name = "l"
provider = "x"
hosts = ["203.0.113.32/27", "2001:db8:3::1"]
ports = ["tcp/22"]
)");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
}

TEST(PolicyParser, HostInsideAnEarlierWideProviderRangeIsFound) {
  // The host lies after the start of a later, narrower provider address but inside the wide
  // one that starts before it: the lookup must walk back past the narrow one.
  const auto parsed = parse(R"(
[providers.x]
addresses = ["10.0.0.0/16"]
[providers.y]
addresses = ["10.1.0.0/24"]
[[links]]
name = "l"
provider = "y"
hosts = ["10.0.200.1"]
ports = ["tcp/22"]
)");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(
      parsed.diagnostics.str().find("host '10.0.200.1' of link 'l' overlaps address '10.0.0.0/16'"),
      std::string::npos)
      << parsed.diagnostics.str();
}

TEST(PolicyParser, GrantMayEndExactlyAtExpiry) {
  const auto parsed = parse(R"(expires = 2026-01-02T00:00:00Z
[providers.p]
addresses = ["192.0.2.0/24"]
[[links]]
name = "l"
provider = "p"
hosts = ["10.0.0.0/24"]
ports = ["tcp/22"]
[[grants]]
link = "l"
ticket = "T"
from = 2026-01-01T00:00:00Z
until = 2026-01-01T19:00:00-05:00
hosts = ["10.0.0.0/25"]
)");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
}

TEST(PolicyParser, UnreadableFileNamesPathAndReason) {
  const std::string path = (kPolicies / "does-not-exist.toml").string();
  const auto parsed = parse_policy_file(path);
  ASSERT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u);
  EXPECT_EQ(parsed.diagnostics.str(),
            path + ": cannot read policy file: No such file or directory");
}

TEST(PolicyParser, DirectoryIsNotAPolicyFile) {
  const auto parsed = parse_policy_file(kPolicies.string());
  ASSERT_FALSE(parsed.ok());
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u);
  EXPECT_NE(parsed.diagnostics.str().find("Is a directory"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The corpora: every valid policy parses; every invalid one fails with the error it documents

std::vector<std::string> toml_files(const fs::path& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".toml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string test_name(const testing::TestParamInfo<std::string>& info) {
  std::string name = fs::path(info.param).stem().string();
  std::replace_if(
      name.begin(), name.end(),
      [](char c) { return std::isalnum(static_cast<unsigned char>(c)) == 0; }, '_');
  return name;
}

class ValidPolicyFile : public testing::TestWithParam<std::string> {};

TEST_P(ValidPolicyFile, Parses) {
  const auto parsed = parse_policy_file(GetParam());
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
}

std::vector<std::string> valid_files() {
  auto files = toml_files(kPolicies / "valid");
  files.push_back((kPolicies / "clinic-east.toml").string());
  return files;
}

INSTANTIATE_TEST_SUITE_P(Corpus, ValidPolicyFile, testing::ValuesIn(valid_files()), test_name);

struct Expectation {
  std::string message;   // "# expect: <substring of the message>"
  std::string location;  // "# at: LINE:COL"
};

Expectation read_expectation(const std::string& path) {
  std::ifstream in(path);
  std::string expect_line;
  std::string at_line;
  std::getline(in, expect_line);
  std::getline(in, at_line);
  const std::string expect_prefix = "# expect: ";
  const std::string at_prefix = "# at: ";
  EXPECT_EQ(expect_line.rfind(expect_prefix, 0), 0u) << path << ": first line must be '# expect: '";
  EXPECT_TRUE(std::regex_match(at_line, std::regex("# at: [0-9]+:[0-9]+")))
      << path << ": second line must be '# at: LINE:COL'";
  return {expect_line.substr(std::min(expect_prefix.size(), expect_line.size())),
          at_line.substr(std::min(at_prefix.size(), at_line.size()))};
}

class InvalidPolicyFile : public testing::TestWithParam<std::string> {};

TEST_P(InvalidPolicyFile, FailsWithTheDocumentedError) {
  const std::string& path = GetParam();
  const Expectation expected = read_expectation(path);
  const auto parsed = parse_policy_file(path);
  ASSERT_FALSE(parsed.ok());
  // One error class per file: a second error would be a cascade or a mistake in the corpus.
  ASSERT_EQ(parsed.diagnostics.errors.size(), 1u) << parsed.diagnostics.str();
  const Error& error = parsed.diagnostics.errors[0];
  EXPECT_EQ(error.where.str(), path + ":" + expected.location) << error.str();
  EXPECT_NE(error.message.find(expected.message), std::string::npos)
      << "expected: " << expected.message << "\n  actual: " << error.message;
  EXPECT_NE(parsed.diagnostics.str().find(path + ":" + expected.location + ": "),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidPolicyFile,
                         testing::ValuesIn(toml_files(kPolicies / "invalid")), test_name);

}  // namespace
}  // namespace drawbridge
