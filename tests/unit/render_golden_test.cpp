// Golden files for the whole pipeline policy → compile → render_nft, the way nftables keeps
// `tests/shell/testcases/*/dumps/*.nft`: each policy in policies/clinic-east.toml and
// policies/valid/*.toml, compiled at one fixed instant with the default CompileOptions, must
// render exactly as tests/golden/<policy-stem>.nft.
//
// To regenerate after an intended change of the ruleset:
//
//   DRAWBRIDGE_UPDATE_GOLDEN=1 ./build/tests/enforcer_unit_tests --gtest_filter='*RenderGolden*'
//
// then read the diff (`git diff tests/golden`) line by line before committing it: a golden file
// is only worth something if a person has checked that every set, element, timeout, verdict and
// chain in it is what the policy means at that instant.
//
// The instants, each chosen so that something is open where the policy can open anything
// (local times checked with `TZ=<zone> date -d <instant>`):
//
// | policy            | instant (UTC)        | local          | open at that instant             |
// |-------------------|----------------------|----------------|----------------------------------|
// | clinic-east       | 2026-11-26T15:00:00Z | Thu 09:00 CST  | grant CHG-1042, 10.20.0.10 only, |
// |                   |                      |                | 1h left; weeknights closed       |
// | grants-only       | 2026-08-20T12:00:00Z | Thu 12:00 UTC  | grant CHG-2 until the expiry     |
// |                   |                      |                | 2026-09-01T00:00Z: 11d12h left   |
// | lockdown          | 2026-11-26T15:00:00Z | Thu 09:00 CST  | nothing: no providers, no links  |
// | rmm-outbound-ipv6 | 2026-06-01T00:00:00Z | Mon 02:00 CEST | "always", no expiry: no timeouts |
// | school-multi-     | 2027-02-28T12:30:00Z | Sun 23:30 AEDT | ssh-admin (weekend, to 23:59:    |
// | window            |                      |                | 29m), backup-agent (overnight,   |
// |                   |                      |                | to Mon 05:00: 5h30m)             |
//
// The rendered text also loads into a kernel as it is: `unshare -n nft -c -f tests/golden/X.nft`
// (root) checks that by hand; the integration tests compare with what `apply` commits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/policy_parser.h"
#include "common/window_schedule.h"
#include "enforcer/nft_render.h"
#include "enforcer/ruleset_plan.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = fs::path(DRAWBRIDGE_SOURCE_DIR);
const fs::path kGolden = kSource / "tests" / "golden";

struct GoldenCase {
  std::string policy;  // relative to policies/
  std::string at;      // RFC 3339, UTC
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const GoldenCase& c, std::ostream* os) {
  *os << c.policy << " at " << c.at;
}

const std::vector<GoldenCase> kCases = {
    {"clinic-east.toml", "2026-11-26T15:00:00Z"},
    {"valid/grants-only.toml", "2026-08-20T12:00:00Z"},
    {"valid/lockdown.toml", "2026-11-26T15:00:00Z"},
    {"valid/rmm-outbound-ipv6.toml", "2026-06-01T00:00:00Z"},
    {"valid/school-multi-window.toml", "2027-02-28T12:30:00Z"},
};

bool updating() {
  const char* v = std::getenv("DRAWBRIDGE_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The first line where the two texts differ, for a failure message that points somewhere.
std::string first_difference(const std::string& want, const std::string& got) {
  const auto a = lines(want);
  const auto b = lines(got);
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const std::string wa = i < a.size() ? a[i] : "<end of file>";
    const std::string gb = i < b.size() ? b[i] : "<end of output>";
    if (wa != gb) {
      return "line " + std::to_string(i + 1) + ":\n  golden:   " + wa + "\n  rendered: " + gb;
    }
  }
  return "texts differ only in a trailing newline";
}

std::string case_name(const testing::TestParamInfo<GoldenCase>& info) {
  std::string s = fs::path(info.param.policy).stem().string();
  for (auto& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

class RenderGolden : public testing::TestWithParam<GoldenCase> {};

TEST_P(RenderGolden, MatchesGoldenFile) {
  const GoldenCase& c = GetParam();
  const ParsedPolicy parsed = parse_policy_file((kSource / "policies" / c.policy).string());
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const auto at = parse_instant(c.at);
  ASSERT_TRUE(at.has_value()) << c.at;

  const std::string rendered = render_nft(compile(*parsed.policy, *at, CompileOptions{}));
  const fs::path golden = kGolden / (fs::path(c.policy).stem().string() + ".nft");

  if (updating()) {
    fs::create_directories(kGolden);
    std::ofstream(golden, std::ios::binary) << rendered;
    GTEST_SKIP() << "wrote " << golden.string() << "; review it before committing";
  }
  ASSERT_TRUE(fs::exists(golden)) << golden.string()
                                  << " is missing; generate it with DRAWBRIDGE_UPDATE_GOLDEN=1";
  const std::string want = read_file(golden);
  // Not EXPECT_EQ: the whole ruleset twice would bury the line that differs.
  EXPECT_TRUE(want == rendered) << golden.string() << " differs at "
                                << first_difference(want, rendered)
                                << "\n(regenerate with DRAWBRIDGE_UPDATE_GOLDEN=1 if intended)";
}

TEST_P(RenderGolden, RenderingIsDeterministic) {
  // Two compilations of the same policy at the same instant render identically: the golden
  // comparison does not depend on container order or addresses of temporaries.
  const GoldenCase& c = GetParam();
  const ParsedPolicy parsed = parse_policy_file((kSource / "policies" / c.policy).string());
  ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  const Instant at = parse_instant(c.at).value();
  EXPECT_EQ(render_nft(compile(*parsed.policy, at, CompileOptions{})),
            render_nft(compile(*parsed.policy, at, CompileOptions{})));
}

INSTANTIATE_TEST_SUITE_P(Policies, RenderGolden, testing::ValuesIn(kCases), case_name);

TEST(RenderGoldenCorpus, EveryValidPolicyHasAGoldenCase) {
  // A policy added to policies/valid/ must get an instant in the table above.
  std::set<std::string> covered;
  for (const auto& c : kCases) covered.insert(c.policy);
  for (const auto& entry : fs::directory_iterator(kSource / "policies" / "valid")) {
    if (entry.path().extension() != ".toml") continue;
    const std::string rel = "valid/" + entry.path().filename().string();
    EXPECT_TRUE(covered.count(rel)) << rel << " has no golden case";
  }
}

TEST(RenderGoldenCorpus, NoStaleGoldenFiles) {
  std::set<std::string> expected;
  for (const auto& c : kCases) expected.insert(fs::path(c.policy).stem().string() + ".nft");
  if (!fs::exists(kGolden)) GTEST_SKIP() << "no golden directory yet";
  for (const auto& entry : fs::directory_iterator(kGolden)) {
    EXPECT_TRUE(expected.count(entry.path().filename().string()))
        << entry.path().string() << " belongs to no golden case";
  }
}

// ---------------------------------------------------------------------------------------------
// Renderer details the golden files rely on

TEST(NftDuration, WritesUnitsLikeNft) {
  using std::chrono::milliseconds;
  EXPECT_EQ(nft_duration(milliseconds{0}), "0ms");
  EXPECT_EQ(nft_duration(milliseconds{1}), "1ms");
  EXPECT_EQ(nft_duration(milliseconds{3'600'000}), "1h");
  EXPECT_EQ(nft_duration(milliseconds{3'600'000 + 120'000 + 3'000 + 4}), "1h2m3s4ms");
  EXPECT_EQ(nft_duration(milliseconds{86'400'000LL * 11 + 3'600'000LL * 12}), "11d12h");
  EXPECT_EQ(nft_duration(milliseconds{86'400'000}), "1d");
  EXPECT_EQ(nft_duration(milliseconds{59'999}), "59s999ms");
}

TEST(NftElementKey, EachKeyShape) {
  SetElement e;
  e.address = AddressRange::parse("10.20.0.0/28").value();
  e.service = PortRange::parse("tcp/3389").value();
  EXPECT_EQ(nft_element_key(e, KeyShape::address_service), "10.20.0.0/28 . tcp . 3389");
  EXPECT_EQ(nft_element_key(e, KeyShape::address), "10.20.0.0/28");
  e.service = PortRange::parse("udp/8040-8041").value();
  EXPECT_EQ(nft_element_key(e, KeyShape::service), "udp . 8040-8041");
  e.address = AddressRange{Address::parse("2001:db8:aa::11").value(),
                           Address::parse("2001:db8:aa::12").value()};
  EXPECT_EQ(nft_element_key(e, KeyShape::address_service),
            "2001:db8:aa::11-2001:db8:aa::12 . udp . 8040-8041");
}

}  // namespace
}  // namespace drawbridge
